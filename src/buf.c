/* buf.c: growable byte buffer (see buf.h). */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

void ddb_buf_init(ddb_buf *b) {
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = 0;
}

void ddb_buf_free(ddb_buf *b) {
    free(b->p);
    ddb_buf_init(b);
}

void ddb_buf_reset(ddb_buf *b) {
    b->len = 0;
    b->oom = 0;
    if (b->p) b->p[0] = '\0';
}

int ddb_buf_reserve(ddb_buf *b, size_t extra) {
    if (b->oom) return -1;
    if (extra >= ((size_t)-1) / 2 - b->len) {
        b->oom = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void ddb_buf_add(ddb_buf *b, const void *s, size_t n) {
    if (ddb_buf_reserve(b, n) != 0) return;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ddb_buf_addc(ddb_buf *b, char c) {
    if (ddb_buf_reserve(b, 1) != 0) return;
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

void ddb_buf_adds(ddb_buf *b, const char *s) { ddb_buf_add(b, s, strlen(s)); }

void ddb_buf_addhex(ddb_buf *b, const unsigned char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (n > ((size_t)-1) / 4 || ddb_buf_reserve(b, 2 * n) != 0) {
        b->oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        b->p[b->len++] = hex[s[i] >> 4];
        b->p[b->len++] = hex[s[i] & 15];
    }
    b->p[b->len] = '\0';
}

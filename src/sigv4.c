/* sigv4.c: AWS Signature Version 4 header signing (see sigv4.h). */
#include "sigv4.h"

#include <stdint.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define ALGORITHM "AWS4-HMAC-SHA256"
#define SHA256_LEN 32
#define HMAC_BLOCK 64 /* SHA-256 block size: longer HMAC keys are hashed first */

/* ---------------------------------------------------------------- helpers */

static inline unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static inline int is_ws(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static inline int is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 9110 token character */
static inline int is_tchar(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static inline int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void hex_fixed(const unsigned char *in, size_t n, char *out) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Non-empty, no control characters, no space, none of `forbidden`. */
static int valid_word(const char *s, const char *forbidden) {
    if (!s || !*s) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || (forbidden && strchr(forbidden, *p))) return 0;
    return 1;
}

static int digits(const char *s, int n, int *v) {
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 1;
}

int ddb_sigv4_valid_timestamp(const char *s) {
    int y, mo, d, h, mi, se;
    if (!s || strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z') return 0;
    if (!digits(s, 4, &y) || !digits(s + 4, 2, &mo) || !digits(s + 6, 2, &d) ||
        !digits(s + 9, 2, &h) || !digits(s + 11, 2, &mi) || !digits(s + 13, 2, &se))
        return 0;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[mo - 1] + (mo == 2 && leap);
}

/* Appends s[0..n) percent-encoded (RFC 3986 unreserved kept; '/' kept when
 * keep_slash). */
static void add_encoded(ddb_buf *b, const char *s, size_t n, int keep_slash) {
    static const char hex[] = "0123456789ABCDEF";
    if (n > SIZE_MAX / 4) {
        b->oom = 1;
        return;
    }
    if (ddb_buf_reserve(b, 3 * n) != 0) return;
    char *d = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            *d++ = (char)c;
        } else {
            *d++ = '%';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 15];
        }
    }
    b->len = (size_t)(d - b->p);
    b->p[b->len] = '\0';
}

/* Appends s[0..n) with %XX sequences decoded, then percent-encoded, so that
 * raw and already-encoded input give the same canonical form. */
static void add_reencoded(ddb_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    if (n > SIZE_MAX / 4) {
        b->oom = 1;
        return;
    }
    if (ddb_buf_reserve(b, 3 * n) != 0) return;
    char *d = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int hi, lo;
        if (c == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (is_unreserved(c)) {
            *d++ = (char)c;
        } else {
            *d++ = '%';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 15];
        }
    }
    b->len = (size_t)(d - b->p);
    b->p[b->len] = '\0';
}

/* Appends the value trimmed, with every run of whitespace made one space. */
static void add_trimmed(ddb_buf *b, const char *v, size_t n) {
    if (ddb_buf_reserve(b, n) != 0) return;
    char *d = b->p + b->len;
    size_t i = 0;
    int gap = 0;
    while (i < n && is_ws((unsigned char)v[i])) i++;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (is_ws(c)) {
            gap = 1;
            continue;
        }
        if (gap) {
            *d++ = ' ';
            gap = 0;
        }
        *d++ = (char)c;
    }
    b->len = (size_t)(d - b->p);
    b->p[b->len] = '\0';
}

static void add_lower(ddb_buf *b, const char *s, size_t n) {
    if (ddb_buf_reserve(b, n) != 0) return;
    char *d = b->p + b->len;
    for (size_t i = 0; i < n; i++) d[i] = (char)lower((unsigned char)s[i]);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Stable merge sort of an index array, insertion sort for short runs. */
typedef int (*cmp_fn)(const void *ctx, size_t a, size_t b);

static void msort(size_t *a, size_t *tmp, size_t n, cmp_fn cmp, const void *ctx) {
    if (n <= 12) {
        for (size_t i = 1; i < n; i++) {
            size_t x = a[i], j = i;
            while (j > 0 && cmp(ctx, a[j - 1], x) > 0) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
        return;
    }
    size_t h = n / 2;
    msort(a, tmp, h, cmp, ctx);
    msort(a + h, tmp + h, n - h, cmp, ctx);
    if (cmp(ctx, a[h - 1], a[h]) <= 0) return;
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp(ctx, a[i], a[j]) <= 0 ? a[i++] : a[j++];
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

/* Reserves scratch space for `n` items of `item` bytes followed by 2n
 * indices; returns the items (aligned for size_t) or NULL. */
static void *scratch_get(ddb_buf *s, size_t n, size_t item, size_t **idx) {
    size_t al = _Alignof(size_t);
    if (n > (SIZE_MAX / 4) / (item + 2 * sizeof(size_t) + al)) return NULL;
    size_t items = (n * item + al - 1) / al * al;
    ddb_buf_reset(s);
    if (ddb_buf_reserve(s, items + 2 * n * sizeof(size_t)) != 0) return NULL;
    *idx = (size_t *)(void *)(s->p + items);
    return s->p;
}

/* ------------------------------------------------------------- crypto */

static int crypto_ready(ddb_sigv4_out *o) {
    if (!o->md && !(o->md = EVP_MD_fetch(NULL, "SHA2-256", NULL))) return 0;
    if (!o->md_ctx && !(o->md_ctx = EVP_MD_CTX_new())) return 0;
    if (!o->mac_ctx) {
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        if (!mac) return 0;
        EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
        EVP_MAC_free(mac); /* the context holds its own reference */
        if (!ctx) return 0;
        char digest[] = "SHA2-256";
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
            OSSL_PARAM_construct_end(),
        };
        if (EVP_MAC_CTX_set_params(ctx, params) != 1) {
            EVP_MAC_CTX_free(ctx);
            return 0;
        }
        o->mac_ctx = ctx;
    }
    return 1;
}

typedef struct {
    const void *p;
    size_t n;
} part;

/* SHA-256 of the concatenation of parts. */
static int sha256(ddb_sigv4_out *o, const part *parts, size_t nparts, unsigned char md[SHA256_LEN]) {
    unsigned int len = 0;
    if (EVP_DigestInit_ex2(o->md_ctx, o->md, NULL) != 1) return 0;
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].n && EVP_DigestUpdate(o->md_ctx, parts[i].p, parts[i].n) != 1) return 0;
    return EVP_DigestFinal_ex(o->md_ctx, md, &len) == 1 && len == SHA256_LEN;
}

static int hmac(ddb_sigv4_out *o, const unsigned char *key, size_t keylen, const void *msg, size_t n,
                unsigned char mac[SHA256_LEN]) {
    size_t len = 0;
    return EVP_MAC_init(o->mac_ctx, key, keylen, NULL) == 1 &&
           EVP_MAC_update(o->mac_ctx, msg, n) == 1 &&
           EVP_MAC_final(o->mac_ctx, mac, &len, SHA256_LEN) == 1 && len == SHA256_LEN;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
static int derive_key(ddb_sigv4_out *o, const char *secret, const char *date8, const char *region,
                      const char *service, unsigned char key[SHA256_LEN]) {
    unsigned char k0[HMAC_BLOCK], k1[SHA256_LEN], k2[SHA256_LEN];
    size_t slen = strlen(secret), k0len;
    int ok;
    if (slen <= HMAC_BLOCK - 4) {
        memcpy(k0, "AWS4", 4);
        memcpy(k0 + 4, secret, slen);
        k0len = 4 + slen;
        ok = 1;
    } else { /* HMAC hashes keys longer than a block: do it here, without a copy */
        part parts[] = {{"AWS4", 4}, {secret, slen}};
        ok = sha256(o, parts, 2, k0);
        k0len = SHA256_LEN;
    }
    ok = ok && hmac(o, k0, k0len, date8, 8, k1) && hmac(o, k1, SHA256_LEN, region, strlen(region), k2) &&
         hmac(o, k2, SHA256_LEN, service, strlen(service), k1) &&
         hmac(o, k1, SHA256_LEN, "aws4_request", 12, key);
    OPENSSL_cleanse(k0, sizeof k0);
    OPENSSL_cleanse(k1, sizeof k1);
    OPENSSL_cleanse(k2, sizeof k2);
    return ok;
}

/* ---------------------------------------------------------------- cache */

void ddb_sigv4_cache_init(ddb_sigv4_cache *c) { memset(c, 0, sizeof *c); }

void ddb_sigv4_cache_clear(ddb_sigv4_cache *c) { OPENSSL_cleanse(c, sizeof *c); }

/* Writes the signing key for (secret, date, region, service) into key,
 * from the cache when present. */
static int signing_key(ddb_sigv4_out *o, ddb_sigv4_cache *c, const ddb_sigv4_req *r,
                       unsigned char key[SHA256_LEN]) {
    if (!c) return derive_key(o, r->secret_access_key, r->timestamp, r->region, r->service, key);
    /* length-prefixed fields, so that no two tuples hash the same input */
    uint64_t ls = strlen(r->secret_access_key), lr = strlen(r->region), lv = strlen(r->service);
    part parts[] = {{&ls, sizeof ls}, {r->secret_access_key, ls}, {r->timestamp, 8},
                    {&lr, sizeof lr},  {r->region, lr},            {&lv, sizeof lv},
                    {r->service, lv}};
    unsigned char id[SHA256_LEN];
    if (!sha256(o, parts, sizeof parts / sizeof parts[0], id)) return 0;
    size_t victim = 0;
    for (size_t i = 0; i < DDB_SIGV4_CACHE_SLOTS; i++) {
        if (c->slot[i].last_used && memcmp(c->slot[i].id, id, SHA256_LEN) == 0) {
            c->slot[i].last_used = ++c->tick;
            memcpy(key, c->slot[i].key, SHA256_LEN);
            return 1;
        }
        if (c->slot[i].last_used < c->slot[victim].last_used) victim = i;
    }
    if (!derive_key(o, r->secret_access_key, r->timestamp, r->region, r->service, key)) return 0;
    memcpy(c->slot[victim].id, id, SHA256_LEN);
    memcpy(c->slot[victim].key, key, SHA256_LEN);
    c->slot[victim].last_used = ++c->tick;
    return 1;
}

/* ------------------------------------------------------------------ out */

void ddb_sigv4_out_init(ddb_sigv4_out *o) {
    memset(o, 0, sizeof *o);
    ddb_buf_init(&o->canonical_request);
    ddb_buf_init(&o->string_to_sign);
    ddb_buf_init(&o->authorization);
    ddb_buf_init(&o->scratch);
    ddb_buf_init(&o->query);
}

static void buf_cleanse_free(ddb_buf *b) {
    if (b->p) OPENSSL_cleanse(b->p, b->cap);
    ddb_buf_free(b);
}

void ddb_sigv4_out_free(ddb_sigv4_out *o) {
    buf_cleanse_free(&o->canonical_request); /* holds the session token */
    buf_cleanse_free(&o->string_to_sign);
    buf_cleanse_free(&o->authorization);
    buf_cleanse_free(&o->scratch);
    buf_cleanse_free(&o->query);
    EVP_MAC_CTX_free(o->mac_ctx); /* cleanses the key it holds */
    EVP_MD_CTX_free(o->md_ctx);
    EVP_MD_free(o->md);
    OPENSSL_cleanse(o, sizeof *o);
    ddb_sigv4_out_init(o);
}

/* ------------------------------------------------- canonical request parts */

/* The canonical URI: botocore's normalisation (when asked), then encoding. */
static void add_uri(ddb_buf *b, const char *p, size_t n, int normalize) {
    size_t start = b->len;
    if (!normalize) {
        add_encoded(b, p, n, 1);
    } else {
        if (n > 0 && p[0] == '/') ddb_buf_addc(b, '/');
        size_t base = b->len, count = 0;
        for (size_t i = 0; n > 0 && i <= n && !b->oom;) {
            size_t j = i;
            while (j < n && p[j] != '/') j++;
            const char *seg = p + i;
            size_t len = j - i;
            if (len == 0 || (len == 1 && seg[0] == '.')) {
                /* dropped */
            } else if (len == 2 && seg[0] == '.' && seg[1] == '.') {
                if (count > 0) { /* pop the last segment (and its '/') */
                    size_t k = b->len;
                    while (k > base && b->p[k - 1] != '/') k--;
                    b->len = (count == 1 || k == base) ? base : k - 1;
                    if (b->p) b->p[b->len] = '\0';
                    count--;
                }
            } else {
                if (count > 0) ddb_buf_addc(b, '/');
                add_encoded(b, seg, len, 0);
                count++;
            }
            i = j + 1;
        }
        if (n > 0 && p[n - 1] == '/' && count > 0) ddb_buf_addc(b, '/');
    }
    if (b->len == start) ddb_buf_addc(b, '/');
}

typedef struct {
    size_t koff, klen, voff, vlen; /* into out->query */
} qpair;

typedef struct {
    const qpair *pairs;
    const char *text;
} qctx;

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

static int qpair_cmp(const void *ctx, size_t a, size_t b) {
    const qctx *q = ctx;
    const qpair *x = &q->pairs[a], *y = &q->pairs[b];
    int c = cmp_bytes(q->text + x->koff, x->klen, q->text + y->koff, y->klen);
    return c ? c : cmp_bytes(q->text + x->voff, x->vlen, q->text + y->voff, y->vlen);
}

static int add_query(ddb_sigv4_out *o, const char *q, size_t n) {
    ddb_buf *b = &o->canonical_request;
    if (n == 0) return 1;
    size_t npieces = 1;
    for (size_t i = 0; i < n; i++) npieces += q[i] == '&';
    size_t *idx;
    qpair *pairs = scratch_get(&o->scratch, npieces, sizeof(qpair), &idx);
    if (!pairs) return 0;
    ddb_buf_reset(&o->query);
    size_t np = 0;
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && q[j] != '&') j++;
        if (j > i) {
            const char *eq = memchr(q + i, '=', j - i);
            size_t kend = eq ? (size_t)(eq - q) : j;
            qpair *pr = &pairs[np];
            pr->koff = o->query.len;
            add_reencoded(&o->query, q + i, kend - i);
            pr->klen = o->query.len - pr->koff;
            pr->voff = o->query.len;
            if (eq) add_reencoded(&o->query, eq + 1, j - kend - 1);
            pr->vlen = o->query.len - pr->voff;
            idx[np] = np;
            np++;
        }
        i = j + 1;
    }
    if (o->query.oom) return 0;
    qctx ctx = {pairs, o->query.p};
    msort(idx, idx + npieces, np, qpair_cmp, &ctx);
    for (size_t i = 0; i < np; i++) {
        const qpair *pr = &pairs[idx[i]];
        if (i) ddb_buf_addc(b, '&');
        ddb_buf_add(b, o->query.p + pr->koff, pr->klen);
        ddb_buf_addc(b, '=');
        ddb_buf_add(b, o->query.p + pr->voff, pr->vlen);
    }
    return 1;
}

static int hdr_cmp(const void *ctx, size_t a, size_t b) {
    const ddb_header *x = &((const ddb_header *)ctx)[a], *y = &((const ddb_header *)ctx)[b];
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = lower((unsigned char)x->name[i]), d = lower((unsigned char)y->name[i]);
        if (c != d) return c < d ? -1 : 1;
    }
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static int name_is(const ddb_header *h, const char *lname, size_t n) {
    if (h->name_len != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)h->name[i]) != (unsigned char)lname[i]) return 0;
    return 1;
}

#define LIT(s) s, sizeof(s) - 1

/* Canonical headers, blank line, signed headers: the signed-headers list
 * is left at [*sh_off, *sh_off + *sh_len) of the canonical request. */
static int add_headers(ddb_sigv4_out *o, const ddb_sigv4_req *r, size_t *sh_off, size_t *sh_len,
                       const char **err) {
    ddb_buf *b = &o->canonical_request;
    int token = r->session_token && *r->session_token;
    if (r->nheaders > SIZE_MAX / 8) goto oom;
    size_t n = r->nheaders + 3;
    size_t *idx;
    ddb_header *h = scratch_get(&o->scratch, n, sizeof(ddb_header), &idx);
    if (!h) goto oom;
    size_t m = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        const ddb_header *src = &r->headers[i];
        if (!src->name || src->name_len == 0 || (!src->value && src->value_len)) {
            *err = "header name is empty or header value missing";
            return 0;
        }
        for (size_t k = 0; k < src->name_len; k++) {
            if (!is_tchar((unsigned char)src->name[k])) {
                *err = "header name is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)";
                return 0;
            }
        }
        if (name_is(src, LIT("authorization")) || name_is(src, LIT("x-amz-date")) ||
            name_is(src, LIT("x-amz-security-token")) || name_is(src, LIT("x-amz-content-sha256"))) {
            *err = "headers must not hold Authorization, X-Amz-Date, X-Amz-Security-Token or "
                   "X-Amz-Content-Sha256: sign adds them";
            return 0;
        }
        h[m] = *src;
        idx[m] = m;
        m++;
    }
    h[m] = (ddb_header){LIT("x-amz-date"), r->timestamp, 16};
    idx[m] = m;
    m++;
    if (token) {
        h[m] = (ddb_header){LIT("x-amz-security-token"), r->session_token, strlen(r->session_token)};
        idx[m] = m;
        m++;
    }
    if (r->sign_body) {
        h[m] = (ddb_header){LIT("x-amz-content-sha256"), o->content_sha256, 64};
        idx[m] = m;
        m++;
    }
    msort(idx, idx + n, m, hdr_cmp, h);

    for (size_t i = 0; i < m;) { /* name:value[,value...]\n per distinct name */
        const ddb_header *first = &h[idx[i]];
        add_lower(b, first->name, first->name_len);
        ddb_buf_addc(b, ':');
        size_t j = i;
        do {
            if (j > i) ddb_buf_addc(b, ',');
            add_trimmed(b, h[idx[j]].value, h[idx[j]].value_len);
            j++;
        } while (j < m && hdr_cmp(h, idx[i], idx[j]) == 0);
        ddb_buf_addc(b, '\n');
        i = j;
    }
    ddb_buf_addc(b, '\n');
    *sh_off = b->len;
    for (size_t i = 0; i < m; i++) {
        if (i > 0 && hdr_cmp(h, idx[i - 1], idx[i]) == 0) continue;
        if (i > 0) ddb_buf_addc(b, ';');
        add_lower(b, h[idx[i]].name, h[idx[i]].name_len);
    }
    *sh_len = b->len - *sh_off;
    return 1;
oom:
    *err = "out of memory";
    return 0;
}

/* ----------------------------------------------------------------- sign */

int ddb_sigv4_sign(const ddb_sigv4_req *r, ddb_sigv4_cache *cache, ddb_sigv4_out *o, const char **err) {
    const char *ignored;
    if (!err) err = &ignored;
    *err = NULL;
    if (!r || !o) {
        *err = "missing request or output";
        return -1;
    }
    if (!valid_word(r->method, NULL)) {
        *err = "method is empty or contains whitespace or control characters";
        return -1;
    }
    if (!ddb_sigv4_valid_timestamp(r->timestamp)) {
        *err = "timestamp must be a UTC time formatted YYYYMMDDTHHMMSSZ";
        return -1;
    }
    if (!valid_word(r->region, "/")) {
        *err = "region is empty or contains '/', whitespace or control characters";
        return -1;
    }
    if (!valid_word(r->service, "/")) {
        *err = "service is empty or contains '/', whitespace or control characters";
        return -1;
    }
    if (!valid_word(r->access_key_id, "/,")) {
        *err = "access_key_id is empty or contains '/', ',', whitespace or control characters";
        return -1;
    }
    if (!r->secret_access_key || !*r->secret_access_key) {
        *err = "secret_access_key is empty";
        return -1;
    }
    if (r->session_token) {
        for (const unsigned char *p = (const unsigned char *)r->session_token; *p; p++)
            if (*p < 0x20 || *p == 0x7f) {
                *err = "session_token contains control characters";
                return -1;
            }
    }
    if ((!r->path && r->path_len) || (!r->query && r->query_len) || (!r->body && r->body_len) ||
        (!r->headers && r->nheaders)) {
        *err = "NULL path, query, body or headers with a non-zero length";
        return -1;
    }
    if (!crypto_ready(o)) {
        *err = "OpenSSL: cannot set up SHA-256/HMAC";
        return -1;
    }

    unsigned char md[SHA256_LEN];
    memcpy(o->amz_date, r->timestamp, 17);
    part body = {r->body, r->body_len};
    if (!sha256(o, &body, 1, md)) goto crypto;
    hex_fixed(md, SHA256_LEN, o->content_sha256);

    /* canonical request */
    ddb_buf *cr = &o->canonical_request;
    ddb_buf_reset(cr);
    ddb_buf_adds(cr, r->method);
    ddb_buf_addc(cr, '\n');
    add_uri(cr, r->path, r->path_len, r->normalize_path);
    ddb_buf_addc(cr, '\n');
    if (!add_query(o, r->query, r->query_len)) goto oom;
    ddb_buf_addc(cr, '\n');
    size_t sh_off = 0, sh_len = 0;
    if (!add_headers(o, r, &sh_off, &sh_len, err)) return -1;
    ddb_buf_addc(cr, '\n');
    ddb_buf_add(cr, o->content_sha256, 64);
    if (!ddb_buf_ok(cr)) goto oom;

    /* string to sign */
    part creq = {cr->p, cr->len};
    if (!sha256(o, &creq, 1, md)) goto crypto;
    ddb_buf *sts = &o->string_to_sign;
    ddb_buf_reset(sts);
    ddb_buf_add(sts, LIT(ALGORITHM "\n"));
    ddb_buf_add(sts, r->timestamp, 16);
    ddb_buf_addc(sts, '\n');
    size_t scope_off = sts->len;
    ddb_buf_add(sts, r->timestamp, 8);
    ddb_buf_addc(sts, '/');
    ddb_buf_adds(sts, r->region);
    ddb_buf_addc(sts, '/');
    ddb_buf_adds(sts, r->service);
    ddb_buf_add(sts, LIT("/aws4_request"));
    size_t scope_len = sts->len - scope_off;
    ddb_buf_addc(sts, '\n');
    ddb_buf_addhex(sts, md, SHA256_LEN);
    if (!ddb_buf_ok(sts)) goto oom;

    /* signature */
    unsigned char key[SHA256_LEN];
    int ok = signing_key(o, cache, r, key) && hmac(o, key, SHA256_LEN, sts->p, sts->len, md);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok) goto crypto;
    hex_fixed(md, SHA256_LEN, o->signature);

    /* Authorization */
    ddb_buf *au = &o->authorization;
    ddb_buf_reset(au);
    ddb_buf_add(au, LIT(ALGORITHM " Credential="));
    ddb_buf_adds(au, r->access_key_id);
    ddb_buf_addc(au, '/');
    ddb_buf_add(au, sts->p + scope_off, scope_len);
    ddb_buf_add(au, LIT(", SignedHeaders="));
    ddb_buf_add(au, cr->p + sh_off, sh_len);
    ddb_buf_add(au, LIT(", Signature="));
    ddb_buf_add(au, o->signature, 64);
    if (!ddb_buf_ok(au)) goto oom;
    return 0;

oom:
    *err = "out of memory";
    return -1;
crypto:
    *err = "OpenSSL: SHA-256/HMAC failed";
    return -1;
}

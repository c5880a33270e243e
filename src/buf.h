/* buf.h: a growable byte buffer with a sticky out-of-memory flag.
 *
 * Contract: every append either succeeds or sets b->oom and leaves the
 * content unchanged; once oom is set every later append is a no-op, so a
 * caller may append many pieces and check buf_ok() once at the end.
 * The content is always NUL-terminated when cap > 0 (not counted in len). */
#ifndef DDB_BUF_H
#define DDB_BUF_H

#include <stddef.h>

typedef struct {
    char *p;
    size_t len;
    size_t cap;
    int oom;
} ddb_buf;

void ddb_buf_init(ddb_buf *b);
void ddb_buf_free(ddb_buf *b);
/* Empties the buffer (keeps the allocation) and clears the oom flag. */
void ddb_buf_reset(ddb_buf *b);
/* Makes room for `extra` more bytes; returns 0, or -1 and sets oom. */
int ddb_buf_reserve(ddb_buf *b, size_t extra);
void ddb_buf_add(ddb_buf *b, const void *s, size_t n);
void ddb_buf_addc(ddb_buf *b, char c);
void ddb_buf_adds(ddb_buf *b, const char *s);
/* Appends `n` bytes as lowercase hex (2n characters). */
void ddb_buf_addhex(ddb_buf *b, const unsigned char *s, size_t n);
static inline int ddb_buf_ok(const ddb_buf *b) { return !b->oom; }

#endif

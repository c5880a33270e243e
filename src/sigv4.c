/* sigv4.c: AWS Signature Version 4 header signing (see sigv4.h). */
/* SHA256_Init/Update/Final are deprecated in OpenSSL 3.0 but kept: see "crypto". */
#define OPENSSL_API_COMPAT 10101
#include "sigv4.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

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

enum { ENC_KEEP_SLASH = 1, ENC_DECODE_FIRST = 2 };

/* Appends s[0..n) percent-encoded (RFC 3986 unreserved kept; '/' kept with
 * ENC_KEEP_SLASH). With ENC_DECODE_FIRST, %XX sequences are decoded first, so
 * raw and already-encoded input give the same canonical form. */
static void add_encoded(ddb_buf *b, const char *s, size_t n, int flags) {
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
        if ((flags & ENC_DECODE_FIRST) && c == '%' && i + 2 < n &&
            (hi = hexval((unsigned char)s[i + 1])) >= 0 && (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (is_unreserved(c) || ((flags & ENC_KEEP_SLASH) && c == '/')) {
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

/* SHA-256 through OpenSSL's low-level interface (its assembly, with the CPU's
 * SHA extensions when present): unlike EVP it needs no provider fetch (whose
 * first use costs a few million instructions at start-up), allocates nothing,
 * cannot fail, and its state is a plain struct that can be copied, which is
 * what precomputed HMAC pads need. Where OpenSSL is built without its 3.0-
 * deprecated interfaces, a portable implementation stands in. */
#ifndef DDB_SHA256_PORTABLE
#ifdef OPENSSL_NO_DEPRECATED_3_0
#define DDB_SHA256_PORTABLE 1
#endif
#endif

#ifndef DDB_SHA256_PORTABLE
typedef SHA256_CTX sha_ctx;
static inline void sha_init(sha_ctx *c) { SHA256_Init(c); }
static inline void sha_update(sha_ctx *c, const void *p, size_t n) { SHA256_Update(c, p, n); }
static inline void sha_final(sha_ctx *c, unsigned char md[SHA256_LEN]) { SHA256_Final(md, c); }
#else
typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char block[64];
} sha_ctx;

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

static void sha_init(sha_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->bytes = 0;
}

static void sha_update(sha_ctx *c, const void *data, size_t n) {
    const unsigned char *p = data;
    size_t have = (size_t)(c->bytes % 64);
    c->bytes += n;
    if (have) {
        size_t take = 64 - have < n ? 64 - have : n;
        memcpy(c->block + have, p, take);
        p += take, n -= take, have += take;
        if (have < 64) return;
        sha_block(c->h, c->block);
    }
    for (; n >= 64; p += 64, n -= 64) sha_block(c->h, p);
    memcpy(c->block, p, n);
}

static void sha_final(sha_ctx *c, unsigned char md[SHA256_LEN]) {
    uint64_t bits = c->bytes * 8;
    size_t have = (size_t)(c->bytes % 64);
    c->block[have++] = 0x80;
    if (have > 56) {
        memset(c->block + have, 0, 64 - have);
        sha_block(c->h, c->block);
        have = 0;
    }
    memset(c->block + have, 0, 56 - have);
    for (int i = 0; i < 8; i++) c->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha_block(c->h, c->block);
    for (int i = 0; i < 8; i++) {
        md[4 * i] = (unsigned char)(c->h[i] >> 24);
        md[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
        md[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
        md[4 * i + 3] = (unsigned char)c->h[i];
    }
}
#endif

/* The private working state behind ddb_sigv4_out.crypto. */
struct ddb_sigv4_crypto {
    unsigned char hkey[SHA256_LEN]; /* the signing key whose HMAC pads follow */
    int hkey_set;
    sha_ctx inner, outer; /* SHA-256 states after (hkey ^ ipad) and (hkey ^ opad) */
};

static int crypto_ready(ddb_sigv4_out *o) {
    if (!o->crypto) {
        o->crypto = calloc(1, sizeof *o->crypto);
        if (!o->crypto) return 0;
    }
    return 1;
}

typedef struct {
    const void *p;
    size_t n;
} part;

/* SHA-256 of the concatenation of parts. */
static void sha256(const part *parts, size_t nparts, unsigned char md[SHA256_LEN]) {
    sha_ctx c;
    sha_init(&c);
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].n) sha_update(&c, parts[i].p, parts[i].n);
    sha_final(&c, md);
    OPENSSL_cleanse(&c, sizeof c);
}

/* HMAC-SHA-256 in two halves: the pads of a key (the states after hashing
 * key ^ ipad and key ^ opad), then a MAC from the pads. */
static void hmac_pads(const unsigned char *key, size_t keylen, sha_ctx *inner, sha_ctx *outer) {
    unsigned char k[HMAC_BLOCK], pad[HMAC_BLOCK];
    memset(k, 0, sizeof k);
    if (keylen > HMAC_BLOCK) {
        part whole = {key, keylen};
        sha256(&whole, 1, k);
    } else {
        memcpy(k, key, keylen);
    }
    for (size_t i = 0; i < HMAC_BLOCK; i++) pad[i] = k[i] ^ 0x36;
    sha_init(inner);
    sha_update(inner, pad, HMAC_BLOCK);
    for (size_t i = 0; i < HMAC_BLOCK; i++) pad[i] = k[i] ^ 0x5c;
    sha_init(outer);
    sha_update(outer, pad, HMAC_BLOCK);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
}

static void hmac_from_pads(const sha_ctx *inner, const sha_ctx *outer, const void *msg, size_t n,
                           unsigned char mac[SHA256_LEN]) {
    sha_ctx c = *inner;
    unsigned char ih[SHA256_LEN];
    sha_update(&c, msg, n);
    sha_final(&c, ih);
    c = *outer;
    sha_update(&c, ih, SHA256_LEN);
    sha_final(&c, mac);
    OPENSSL_cleanse(&c, sizeof c);
    OPENSSL_cleanse(ih, sizeof ih);
}

/* Makes cs hold the pads of the signing key `key` (kept while the key stays). */
static void crypto_use_key(struct ddb_sigv4_crypto *cs, const unsigned char key[SHA256_LEN]) {
    if (!cs->hkey_set || CRYPTO_memcmp(cs->hkey, key, SHA256_LEN) != 0) {
        hmac_pads(key, SHA256_LEN, &cs->inner, &cs->outer);
        memcpy(cs->hkey, key, SHA256_LEN);
        cs->hkey_set = 1;
    }
}

static void hmac(const unsigned char *key, size_t keylen, const void *msg, size_t n, unsigned char mac[SHA256_LEN]) {
    sha_ctx inner, outer;
    hmac_pads(key, keylen, &inner, &outer);
    hmac_from_pads(&inner, &outer, msg, n, mac);
    OPENSSL_cleanse(&inner, sizeof inner);
    OPENSSL_cleanse(&outer, sizeof outer);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
static void derive_key(const char *secret, const char *date8, const char *region, const char *service,
                       unsigned char key[SHA256_LEN]) {
    unsigned char k0[HMAC_BLOCK], k1[SHA256_LEN], k2[SHA256_LEN];
    size_t slen = strlen(secret), k0len;
    if (slen <= HMAC_BLOCK - 4) {
        memcpy(k0, "AWS4", 4);
        memcpy(k0 + 4, secret, slen);
        k0len = 4 + slen;
    } else { /* HMAC hashes keys longer than a block: do it here, without a copy */
        part parts[] = {{"AWS4", 4}, {secret, slen}};
        sha256(parts, 2, k0);
        k0len = SHA256_LEN;
    }
    hmac(k0, k0len, date8, 8, k1);
    hmac(k1, SHA256_LEN, region, strlen(region), k2);
    hmac(k2, SHA256_LEN, service, strlen(service), k1);
    hmac(k1, SHA256_LEN, "aws4_request", 12, key);
    OPENSSL_cleanse(k0, sizeof k0);
    OPENSSL_cleanse(k1, sizeof k1);
    OPENSSL_cleanse(k2, sizeof k2);
}

int ddb_sigv4_derive_key(const char *secret_access_key, const char *timestamp, const char *region,
                         const char *service, unsigned char key[32]) {
    if (!secret_access_key || !*secret_access_key || !ddb_sigv4_valid_timestamp(timestamp) ||
        !valid_word(region, "/") || !valid_word(service, "/"))
        return -1;
    derive_key(secret_access_key, timestamp, region, service, key);
    return 0;
}

/* ---------------------------------------------------------------- cache */

void ddb_sigv4_cache_init(ddb_sigv4_cache *c) { memset(c, 0, sizeof *c); }

void ddb_sigv4_cache_clear(ddb_sigv4_cache *c) { OPENSSL_cleanse(c, sizeof *c); }

/* Writes the signing key for (secret, date, region, service) into key,
 * from the cache when present. */
static void signing_key(ddb_sigv4_cache *c, const ddb_sigv4_req *r, unsigned char key[SHA256_LEN]) {
    if (r->signing_key) {
        memcpy(key, r->signing_key, SHA256_LEN);
        return;
    }
    if (!c) {
        derive_key(r->secret_access_key, r->timestamp, r->region, r->service, key);
        return;
    }
    /* length-prefixed fields, so that no two tuples hash the same input */
    uint64_t ls = strlen(r->secret_access_key), lr = strlen(r->region), lv = strlen(r->service);
    part parts[] = {{&ls, sizeof ls}, {r->secret_access_key, ls}, {r->timestamp, 8},
                    {&lr, sizeof lr},  {r->region, lr},            {&lv, sizeof lv},
                    {r->service, lv}};
    unsigned char id[SHA256_LEN];
    sha256(parts, sizeof parts / sizeof parts[0], id);
    size_t victim = 0;
    for (size_t i = 0; i < DDB_SIGV4_CACHE_SLOTS; i++) {
        if (c->slot[i].last_used && memcmp(c->slot[i].id, id, SHA256_LEN) == 0) {
            c->slot[i].last_used = ++c->tick;
            memcpy(key, c->slot[i].key, SHA256_LEN);
            return;
        }
        if (c->slot[i].last_used < c->slot[victim].last_used) victim = i;
    }
    derive_key(r->secret_access_key, r->timestamp, r->region, r->service, key);
    memcpy(c->slot[victim].id, id, SHA256_LEN);
    memcpy(c->slot[victim].key, key, SHA256_LEN);
    c->slot[victim].last_used = ++c->tick;
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
    if (o->crypto) {
        OPENSSL_cleanse(o->crypto, sizeof *o->crypto); /* holds HMAC pads of a signing key */
        free(o->crypto);
    }
    OPENSSL_cleanse(o, sizeof *o);
    ddb_sigv4_out_init(o);
}

/* ------------------------------------------------- canonical request parts */

/* The canonical URI: botocore's normalisation (when asked), then encoding. */
static void add_uri(ddb_buf *b, const char *p, size_t n, int normalize) {
    size_t start = b->len;
    if (!normalize) {
        add_encoded(b, p, n, ENC_KEEP_SLASH);
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
            add_encoded(&o->query, q + i, kend - i, ENC_DECODE_FIRST);
            pr->klen = o->query.len - pr->koff;
            pr->voff = o->query.len;
            if (eq) add_encoded(&o->query, eq + 1, j - kend - 1, ENC_DECODE_FIRST);
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

/* Headers botocore never signs (SIGNED_HEADERS_BLACKLIST): hop-by-hop ones
 * and those proxies, load balancers and tracers add or rewrite in transit. */
static const struct {
    const char *name;
    size_t len;
} unsigned_headers[] = {
    {"baggage", 7},     {"connection", 10},  {"expect", 6},           {"keep-alive", 10},
    {"proxy-authenticate", 18}, {"proxy-authorization", 19}, {"te", 2},  {"traceparent", 11},
    {"tracestate", 10}, {"trailer", 7},      {"transfer-encoding", 17}, {"upgrade", 7},
    {"user-agent", 10}, {"x-amzn-trace-id", 15},
};

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
        int skip = 0;
        for (size_t k = 0; k < sizeof unsigned_headers / sizeof unsigned_headers[0] && !skip; k++)
            skip = name_is(src, unsigned_headers[k].name, unsigned_headers[k].len);
        if (skip) continue; /* sent, but not signed */
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
        *err = "out of memory";
        return -1;
    }

    unsigned char md[SHA256_LEN];
    memcpy(o->amz_date, r->timestamp, 17);
    part body = {r->body, r->body_len};
    sha256(&body, 1, md);
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
    sha256(&creq, 1, md);
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

    /* signature: HMAC with the signing key, from its pads (kept while the key stays) */
    unsigned char key[SHA256_LEN];
    struct ddb_sigv4_crypto *cs = o->crypto;
    signing_key(cache, r, key);
    crypto_use_key(cs, key);
    OPENSSL_cleanse(key, sizeof key);
    hmac_from_pads(&cs->inner, &cs->outer, sts->p, sts->len, md);
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
}

/* ------------------------------------------------------ prepared signer */

/* The canonical request of the prepared shape, with names sorted:
 *   POST\n/\n\n
 *   content-type:application/x-amz-json-1.0\n host:<host>\n x-amz-date:<ts>\n
 *   [x-amz-security-token:<token>\n] x-amz-target:<target>\n \n
 *   content-type;host;x-amz-date;[x-amz-security-token;]x-amz-target\n <hex sha256(body)>
 * (what add_uri, add_query and add_headers make of it). */
#define PREP_SIGNED_HEADERS "content-type;host;x-amz-date;x-amz-target"
#define PREP_SIGNED_HEADERS_TOKEN "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
#define PREP_TAIL "\n\n" PREP_SIGNED_HEADERS "\n"
#define PREP_TAIL_TOKEN "\n\n" PREP_SIGNED_HEADERS_TOKEN "\n"
#define STS_TS_OFF (sizeof ALGORITHM "\n" - 1)  /* the timestamp in the string to sign */
#define STS_DATE_OFF (STS_TS_OFF + 17)          /* the scope's date in it */

struct ddb_sigv4_prep {
    sha_ctx creq;             /* SHA-256 state after the canonical request's start, "...x-amz-date:" */
    ddb_buf mid;              /* "\n[x-amz-security-token:<token>\n]x-amz-target:" (holds the token) */
    const char *tail;         /* PREP_TAIL or PREP_TAIL_TOKEN */
    size_t tail_len;
    ddb_buf sts;              /* the string to sign; timestamp, date and hash rewritten per call */
    ddb_buf auth;             /* the Authorization line; date and signature rewritten per call */
    size_t auth_date_off;     /* the scope's date in auth */
    struct ddb_sigv4_crypto crypto; /* HMAC pads of the last signing key */
};

/* The credential scope with a placeholder date: "YYYYMMDD/<region>/<service>/aws4_request". */
static void add_scope(ddb_buf *b, const char *region, const char *service) {
    ddb_buf_add(b, LIT("YYYYMMDD/"));
    ddb_buf_adds(b, region);
    ddb_buf_addc(b, '/');
    ddb_buf_adds(b, service);
    ddb_buf_add(b, LIT("/aws4_request"));
}

void ddb_sigv4_prep_free(ddb_sigv4_prep *p) {
    if (!p) return;
    buf_cleanse_free(&p->mid);
    buf_cleanse_free(&p->sts);
    buf_cleanse_free(&p->auth);
    OPENSSL_cleanse(p, sizeof *p);
    free(p);
}

void ddb_sigv4_json_request(ddb_sigv4_req *req, ddb_header hs[3], const char *host, size_t host_len,
                            const char *target, size_t target_len, const char *body, size_t body_len) {
    hs[0] = (ddb_header){"Host", 4, host, host_len};
    hs[1] = (ddb_header){"Content-Type", 12, DDB_SIGV4_JSON_CONTENT_TYPE, sizeof DDB_SIGV4_JSON_CONTENT_TYPE - 1};
    hs[2] = (ddb_header){"X-Amz-Target", 12, target, target_len};
    memset(req, 0, sizeof *req);
    req->method = "POST";
    req->path = "/";
    req->path_len = 1;
    req->query = "";
    req->query_len = 0;
    req->headers = hs;
    req->nheaders = 3;
    req->body = body;
    req->body_len = body_len;
    req->normalize_path = 1;
    req->sign_body = 0;
}

ddb_sigv4_prep *ddb_sigv4_prep_new(const char *host, size_t host_len, const char *region, const char *service,
                                   const char *access_key_id, const char *session_token, const char **err) {
    const char *ignored;
    if (!err) err = &ignored;
    *err = NULL;
    /* the checks of ddb_sigv4_sign on these values */
    if (!host && host_len) {
        *err = "NULL host with a non-zero length";
        return NULL;
    }
    if (!valid_word(region, "/") || !valid_word(service, "/")) {
        *err = "region or service is empty or contains '/', whitespace or control characters";
        return NULL;
    }
    if (!valid_word(access_key_id, "/,")) {
        *err = "access_key_id is empty or contains '/', ',', whitespace or control characters";
        return NULL;
    }
    int token = session_token && *session_token;
    if (token) {
        for (const unsigned char *q = (const unsigned char *)session_token; *q; q++)
            if (*q < 0x20 || *q == 0x7f) {
                *err = "session_token contains control characters";
                return NULL;
            }
    }
    ddb_sigv4_prep *p = calloc(1, sizeof *p);
    if (!p) {
        *err = "out of memory";
        return NULL;
    }
    ddb_buf_init(&p->mid);
    ddb_buf_init(&p->sts);
    ddb_buf_init(&p->auth);

    ddb_buf start;
    ddb_buf_init(&start);
    ddb_buf_add(&start, LIT("POST\n/\n\ncontent-type:" DDB_SIGV4_JSON_CONTENT_TYPE "\nhost:"));
    add_trimmed(&start, host ? host : "", host_len);
    ddb_buf_add(&start, LIT("\nx-amz-date:"));
    int ok = ddb_buf_ok(&start);
    if (ok) {
        sha_init(&p->creq);
        sha_update(&p->creq, start.p, start.len);
    }
    ddb_buf_free(&start);

    ddb_buf_addc(&p->mid, '\n');
    if (token) {
        ddb_buf_add(&p->mid, LIT("x-amz-security-token:"));
        add_trimmed(&p->mid, session_token, strlen(session_token));
        ddb_buf_addc(&p->mid, '\n');
    }
    ddb_buf_add(&p->mid, LIT("x-amz-target:"));
    p->tail = token ? PREP_TAIL_TOKEN : PREP_TAIL;
    p->tail_len = token ? sizeof PREP_TAIL_TOKEN - 1 : sizeof PREP_TAIL - 1;

    /* the timestamp, dates and hashes are placeholders until the first call */
    static const char zeros[] = "0000000000000000000000000000000000000000000000000000000000000000";
    _Static_assert(sizeof zeros == 2 * SHA256_LEN + 1, "64 placeholder hex digits");
    ddb_buf_add(&p->sts, LIT(ALGORITHM "\nYYYYMMDDTHHMMSSZ\n"));
    add_scope(&p->sts, region, service);
    ddb_buf_addc(&p->sts, '\n');
    ddb_buf_add(&p->sts, zeros, 2 * SHA256_LEN);

    ddb_buf_add(&p->auth, LIT(DDB_SIGV4_AUTH_LINE_PREFIX ALGORITHM " Credential="));
    ddb_buf_adds(&p->auth, access_key_id);
    ddb_buf_addc(&p->auth, '/');
    p->auth_date_off = p->auth.len;
    add_scope(&p->auth, region, service);
    ddb_buf_add(&p->auth, LIT(", SignedHeaders="));
    if (token) ddb_buf_add(&p->auth, LIT(PREP_SIGNED_HEADERS_TOKEN));
    else ddb_buf_add(&p->auth, LIT(PREP_SIGNED_HEADERS));
    ddb_buf_add(&p->auth, LIT(", Signature="));
    ddb_buf_add(&p->auth, zeros, 2 * SHA256_LEN);

    if (!ok || !ddb_buf_ok(&p->mid) || !ddb_buf_ok(&p->sts) || !ddb_buf_ok(&p->auth)) {
        ddb_sigv4_prep_free(p);
        *err = "out of memory";
        return NULL;
    }
    return p;
}

const char *ddb_sigv4_prep_sign(ddb_sigv4_prep *p, const char *timestamp, const unsigned char key[32],
                                const char *target, size_t target_len, const char *body, size_t body_len,
                                size_t *line_len) {
    if (!p || !key || !ddb_sigv4_valid_timestamp(timestamp) || (!target && target_len) || (!body && body_len))
        return NULL;
    for (size_t i = 0; i < target_len; i++) /* ddb_sigv4_sign would trim it */
        if (is_ws((unsigned char)target[i])) return NULL;

    unsigned char md[SHA256_LEN];
    char body_hex[2 * SHA256_LEN + 1];
    sha_ctx c;
    sha_init(&c);
    if (body_len) sha_update(&c, body, body_len);
    sha_final(&c, md);
    hex_fixed(md, SHA256_LEN, body_hex);

    /* the canonical request, from its prepared start */
    c = p->creq;
    sha_update(&c, timestamp, 16);
    sha_update(&c, p->mid.p, p->mid.len);
    if (target_len) sha_update(&c, target, target_len);
    sha_update(&c, p->tail, p->tail_len);
    sha_update(&c, body_hex, 2 * SHA256_LEN);
    sha_final(&c, md);
    OPENSSL_cleanse(&c, sizeof c);

    /* the string to sign: timestamp, scope date, hash */
    char *sts = p->sts.p;
    memcpy(sts + STS_TS_OFF, timestamp, 16);
    memcpy(sts + STS_DATE_OFF, timestamp, 8);
    hex_fixed(md, SHA256_LEN, sts + p->sts.len - 2 * SHA256_LEN);

    crypto_use_key(&p->crypto, key);
    hmac_from_pads(&p->crypto.inner, &p->crypto.outer, sts, p->sts.len, md);

    char *auth = p->auth.p;
    memcpy(auth + p->auth_date_off, timestamp, 8);
    hex_fixed(md, SHA256_LEN, auth + p->auth.len - 2 * SHA256_LEN); /* the last 64 characters */
    if (line_len) *line_len = p->auth.len;
    return auth;
}

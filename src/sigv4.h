/* sigv4.h: AWS Signature Version 4 (Authorization-header signing), pure C.
 *
 * ddb_sigv4_sign() fills `out` with the canonical request, string to sign,
 * signature and Authorization value of `req`; 0 on success, else -1 with
 * *err a static message (never holding a secret). `req` is only read. The
 * caller sends its headers plus X-Amz-Date (out->amz_date), X-Amz-Security-Token
 * (req->session_token, if non-empty), X-Amz-Content-Sha256 (out->content_sha256,
 * if sign_body) and Authorization (out->authorization.p); passing any of these
 * four in req->headers is an error. Header names must be HTTP tokens.
 * Canonical form: path normalized the botocore way (if asked) then encoded
 * once; query %XX-decoded, re-encoded, sorted, empty pieces dropped; header
 * names lowercased and stably sorted, repeats joined with ','; values trimmed
 * with ASCII whitespace runs made one space.
 * `out` is reusable (buffers reset, HMAC pads of the last signing key kept),
 * `cache` (may be NULL) holds derived keys keyed by a SHA-256 of (secret,
 * date, region, service), never the secret. Neither is thread-safe: one per thread.
 * ddb_sigv4_cache_clear and ddb_sigv4_out_free cleanse what they held. */
#ifndef DDB_SIGV4_H
#define DDB_SIGV4_H

#include <stddef.h>

#include "buf.h"

typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} ddb_header;

typedef struct {
    const char *method;                       /* e.g. "POST", used as given */
    const char *path; size_t path_len;        /* raw, not yet percent-encoded; "" = "/" */
    const char *query; size_t query_len;      /* raw string after '?', may be empty */
    const ddb_header *headers; size_t nheaders; /* includes Host; names may repeat */
    const char *body; size_t body_len;        /* body may be NULL when body_len == 0 */
    const char *region, *service, *access_key_id, *secret_access_key;
    const char *session_token;                /* NULL or "" = none */
    const char *timestamp;                    /* "YYYYMMDDTHHMMSSZ" (UTC) */
    int normalize_path, sign_body;
    /* optional: the signing key of (secret, date, region, service) from
     * ddb_sigv4_derive_key, for a caller that keeps it; NULL = derive it
     * (through the cache when one is given) */
    const unsigned char *signing_key;
} ddb_sigv4_req;

typedef struct {
    ddb_buf canonical_request, string_to_sign, authorization;
    char signature[65];      /* lowercase hex, NUL-terminated */
    char amz_date[17];       /* = req->timestamp */
    char content_sha256[65]; /* hex SHA-256 of the body (always filled) */
    /* private: working space kept across calls */
    ddb_buf scratch;         /* sort arrays */
    ddb_buf query;           /* encoded query pieces */
    struct ddb_sigv4_crypto *crypto; /* HMAC pads of the last signing key (made once) */
} ddb_sigv4_out;

#define DDB_SIGV4_CACHE_SLOTS 4

typedef struct ddb_sigv4_cache {
    struct {
        unsigned char id[32];  /* SHA-256 of (secret, date, region, service) */
        unsigned char key[32]; /* derived signing key */
        unsigned long long last_used; /* 0 = empty slot */
    } slot[DDB_SIGV4_CACHE_SLOTS];
    unsigned long long tick;
} ddb_sigv4_cache;

void ddb_sigv4_cache_init(ddb_sigv4_cache *c);
void ddb_sigv4_cache_clear(ddb_sigv4_cache *c); /* cleanses; usable again afterwards */

void ddb_sigv4_out_init(ddb_sigv4_out *o);
void ddb_sigv4_out_free(ddb_sigv4_out *o); /* frees and cleanses; o is re-initialised */

int ddb_sigv4_sign(const ddb_sigv4_req *req, ddb_sigv4_cache *cache, ddb_sigv4_out *out,
                   const char **err);

/* Writes the signing key of (secret, date = the first 8 characters of the
 * "YYYYMMDDTHHMMSSZ" timestamp, region, service) into key; 0, or -1 when an
 * input is invalid. A caller that signs many requests with one secret can
 * keep the key per date and pass it as req->signing_key (the caller must
 * then cleanse it). */
int ddb_sigv4_derive_key(const char *secret_access_key, const char *timestamp, const char *region,
                         const char *service, unsigned char key[32]);

/* 1 when s is a valid "YYYYMMDDTHHMMSSZ" timestamp (field ranges checked). */
int ddb_sigv4_valid_timestamp(const char *s);

#endif

/* sigv4.h: AWS Signature Version 4 (Authorization-header signing), pure C.
 *
 * ddb_sigv4_sign() fills `out` with the canonical request, string to sign,
 * signature and Authorization value of `req`; 0 on success, else -1 with
 * *err a static message (never holding a secret). `req` is only read. The
 * caller sends its headers plus X-Amz-Date (out->amz_date), X-Amz-Security-Token
 * (req->session_token, if non-empty), X-Amz-Content-Sha256 (out->content_sha256,
 * if sign_body) and Authorization (out->authorization.p); passing any of these
 * four in req->headers is an error. Header names must be HTTP tokens.
 * Headers botocore never signs (User-Agent, Expect, Connection, Keep-Alive,
 * TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authorization,
 * Proxy-Authenticate, X-Amzn-Trace-Id, traceparent, tracestate, baggage) are
 * left out of the signature: they may change in transit.
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

/* A signer prepared for the one request shape of the DynamoDB JSON protocol:
 * POST "/" (normalize_path), no query, headers Host, Content-Type
 * DDB_SIGV4_JSON_CONTENT_TYPE and X-Amz-Target, plus X-Amz-Date and (with a
 * session token) X-Amz-Security-Token; body not signed (sign_body = 0).
 * Its Authorization is byte-identical to ddb_sigv4_sign's for that request:
 * the canonical request's constant start (through "x-amz-date:") is hashed
 * once, the string to sign and the Authorization line are kept with only
 * the date, scope date and signature rewritten per call, and the HMAC pads
 * of the last signing key are kept (as ddb_sigv4_out does).
 *
 * ddb_sigv4_prep_new returns NULL, with *err, when ddb_sigv4_sign would
 * refuse these values (region, service, access key id, session token) or
 * out of memory: then sign with ddb_sigv4_sign, which gives the answer and
 * its error. The host and the token are canonicalised as ddb_sigv4_sign
 * does (trimmed, whitespace runs made one space); the session token is
 * NULL or "" for none. The secret key is never given; the prepared signer
 * keeps the signing key last passed and its HMAC pads, and the token:
 * ddb_sigv4_prep_free cleanses them. Not thread-safe: one per thread. */
#define DDB_SIGV4_JSON_CONTENT_TYPE "application/x-amz-json-1.0"
#define DDB_SIGV4_AUTH_LINE_PREFIX "Authorization: "

typedef struct ddb_sigv4_prep ddb_sigv4_prep;

/* Fills *req (cleared first) and hs with that request for ddb_sigv4_sign:
 * POST "/", no query, Host, Content-Type and X-Amz-Target (hs, which must
 * outlive req), normalize_path, sign_body 0, the body. The caller adds
 * region, service, credentials and timestamp (and a signing key). */
void ddb_sigv4_json_request(ddb_sigv4_req *req, ddb_header hs[3], const char *host, size_t host_len,
                            const char *target, size_t target_len, const char *body, size_t body_len);

ddb_sigv4_prep *ddb_sigv4_prep_new(const char *host, size_t host_len, const char *region, const char *service,
                                   const char *access_key_id, const char *session_token, const char **err);
void ddb_sigv4_prep_free(ddb_sigv4_prep *p); /* cleanses; NULL is a no-op */

/* Signs the request with X-Amz-Date `timestamp` and the signing key of its
 * date (ddb_sigv4_derive_key with the same region and service). Returns the
 * header line DDB_SIGV4_AUTH_LINE_PREFIX + Authorization value, NUL-terminated,
 * valid until the next call or the free (*line_len its length); or NULL
 * when the request is not one this signer makes exactly as ddb_sigv4_sign
 * (an invalid timestamp, a target holding whitespace, a NULL body with a
 * length): ddb_sigv4_sign then gives the answer. */
const char *ddb_sigv4_prep_sign(ddb_sigv4_prep *p, const char *timestamp, const unsigned char key[32],
                                const char *target, size_t target_len, const char *body, size_t body_len,
                                size_t *line_len);

#endif

/* transport.h: HTTP requests over one persistent libcurl easy handle (the
 * only place ddb talks to libcurl).
 *
 * Contract: a transport owns one CURL handle for its whole life, so
 * connections are kept alive and reused between calls (HTTP/1.1, TLS peer
 * and host verification on unless opts->insecure, no redirects followed,
 * http and https only). ddb_transport_request() sends one request with any
 * method and fills `resp` (reused across calls: its buffers keep their
 * allocation); ddb_transport_post() is the DynamoDB case (a POST with a
 * body). Both return DDB_T_OK when an HTTP response was received (any
 * status), or DDB_T_TIMEOUT / DDB_T_ERROR / DDB_T_TOO_BIG with a one-line
 * message in resp->error. The caller's header list is sent as given (libcurl
 * only reads it; see CURLOPT_HTTPHEADER for "Name:" removing a default
 * header). Not thread-safe: one transport per thread. */
#ifndef DDB_TRANSPORT_H
#define DDB_TRANSPORT_H

#include <curl/curl.h>
#include <stddef.h>

#include "buf.h"

enum { DDB_T_OK = 0, DDB_T_TIMEOUT = 1, DDB_T_ERROR = 2, DDB_T_TOO_BIG = 3 };

typedef struct {
    long connect_timeout_ms; /* > 0 */
    long timeout_ms;         /* whole attempt, > 0 */
    const char *ca_file;     /* NULL: the system bundle and CA directory; else this bundle only */
    int insecure;            /* 1: no TLS verification (explicit opt-in only) */
    size_t max_response_bytes;
} ddb_transport_opts;

typedef struct {
    long status;
    ddb_buf body;
    /* Set by the caller before a request to collect the response's headers:
     * then `headers` holds one "name:value\n" line per header of the final
     * response (name lowercased, value trimmed, folded lines joined; names and
     * values never hold '\n'), at most max_response_bytes of them (else
     * DDB_T_TOO_BIG). Left 0, `headers` is untouched. */
    int want_headers;
    ddb_buf headers;
    char request_id[96];   /* x-amzn-RequestId, truncated to fit, "" if absent */
    int has_crc32;         /* the response carried x-amz-crc32 */
    unsigned long crc32;   /* its value */
    char error[CURL_ERROR_SIZE + 64];
} ddb_response;

typedef struct ddb_transport ddb_transport;

/* NULL on failure, with a message in err. */
ddb_transport *ddb_transport_new(const ddb_transport_opts *opts, char *err, size_t errlen);
void ddb_transport_free(ddb_transport *t);
void ddb_response_init(ddb_response *r);
void ddb_response_free(ddb_response *r);
/* A POST of body_len bytes (body may be NULL when body_len is 0). */
int ddb_transport_post(ddb_transport *t, const char *url, const struct curl_slist *headers,
                       const char *body, size_t body_len, ddb_response *resp);
/* Any method (an HTTP token, e.g. "GET", "PUT"). body NULL: no body ("POST",
 * "PUT" and "PATCH" then send an empty one, with Content-Length: 0); a body
 * is sent with Content-Length for any method but "HEAD", which cannot have
 * one (DDB_T_ERROR). For a response to "HEAD" no body is read. */
int ddb_transport_request(ddb_transport *t, const char *method, const char *url,
                          const struct curl_slist *headers, const char *body, size_t body_len,
                          ddb_response *resp);
/* CRC32 (IEEE, as in x-amz-crc32) of a byte string. */
unsigned long ddb_crc32(const unsigned char *p, size_t n);

#endif

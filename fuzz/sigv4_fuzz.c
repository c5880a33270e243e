/* sigv4_fuzz.c: libFuzzer target for SigV4 canonicalisation (src/sigv4.c).
 *
 * Input: one flags byte, then fields separated by 0x00 (see fuzz.h):
 *   method, path, query, body, region, service, access key id, secret,
 *   session token, timestamp, then header name, header value, name, value...
 * Flags: 1 normalize_path, 2 sign_body, 4 use a key cache, 8 session token
 * from its field, 16 method/region/service/key id/secret/timestamp from
 * their fields (else fixed valid ones, so that most inputs reach the
 * canonicalisation), 32 body pointer NULL when the body is empty.
 *
 * Checked on every input, beyond "no crash, no sanitizer report":
 *   - normalize_path does not change whether signing succeeds;
 *   - a signature is deterministic: the same request signed again with the
 *     same (reused) output, with a fresh output and no cache, and with a
 *     caller-derived signing key gives the same canonical request and
 *     signature;
 *   - the canonical request has its documented shape: an encoded URI (only
 *     unreserved characters, '/' and %XX; with normalize_path no empty, "."
 *     or ".." segment), a sorted, encoded query, lowercase sorted unique
 *     signed header names including x-amz-date, the body hash last;
 *   - the canonical query is a fixed point: signing it as the query again
 *     gives the same canonical query;
 *   - with flag 64, the prepared signer of client requests (ddb_sigv4_prep,
 *     host = the first header value, target = the second) gives the same
 *     Authorization as ddb_sigv4_sign for the same POST / request, refuses
 *     only values ddb_sigv4_sign refuses, and declines a request only when
 *     ddb_sigv4_sign fails or the target holds whitespace. */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "sigv4.h"

#define MAX_FIELDS 10
#define MAX_HEADERS 64

static int is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int is_upper_hex(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

/* s[0..n) holds only unreserved characters, %XX (uppercase hex) and the
 * characters of `extra`. */
static int encoded_ok(const char *s, size_t n, const char *extra) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (c && strchr(extra, c))) continue;
        if (c == '%' && i + 2 < n && is_upper_hex((unsigned char)s[i + 1]) &&
            is_upper_hex((unsigned char)s[i + 2])) {
            i += 2;
            continue;
        }
        return 0;
    }
    return 1;
}

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

/* The line of cr starting at *pos; *pos moves past its '\n'. */
static const char *next_line(const ddb_buf *cr, size_t *pos, size_t *len) {
    const char *s = cr->p + *pos, *nl = memchr(s, '\n', cr->len - *pos);
    FUZZ_CHECK(nl != NULL, "canonical request ends early:\n%s", cr->p);
    *len = (size_t)(nl - s);
    *pos += *len + 1;
    return s;
}

static void check_uri(const char *u, size_t n, int normalize) {
    FUZZ_CHECK(n > 0, "empty canonical URI");
    FUZZ_CHECK(encoded_ok(u, n, "/"), "canonical URI not encoded: %.*s", (int)n, u);
    if (!normalize) return;
    for (size_t i = 0; i < n;) { /* segments */
        size_t j = i;
        while (j < n && u[j] != '/') j++;
        size_t len = j - i;
        int edge = i == 0 || j == n; /* before a leading or after a trailing '/' */
        FUZZ_CHECK(len > 0 || edge, "empty segment in normalised URI %.*s", (int)n, u);
        FUZZ_CHECK(!(len == 1 && u[i] == '.') && !(len == 2 && u[i] == '.' && u[i + 1] == '.'),
                   "dot segment in normalised URI %.*s", (int)n, u);
        i = j + 1;
    }
}

static void check_query(const char *q, size_t n) {
    FUZZ_CHECK(encoded_ok(q, n, "=&"), "canonical query not encoded: %.*s", (int)n, q);
    const char *prev = NULL;
    size_t prev_len = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && q[j] != '&') j++;
        const char *pair = q + i;
        size_t len = j - i;
        const char *eq = memchr(pair, '=', len);
        FUZZ_CHECK(eq && !memchr(eq + 1, '=', len - (size_t)(eq - pair) - 1),
                   "query pair without exactly one '=': %.*s", (int)n, q);
        if (prev) { /* sorted by key, then value: compare (key, value) with '=' lowest */
            size_t pk = (size_t)((const char *)memchr(prev, '=', prev_len) - prev), ck = (size_t)(eq - pair);
            int c = cmp_bytes(prev, pk, pair, ck);
            if (c == 0) c = cmp_bytes(prev + pk + 1, prev_len - pk - 1, eq + 1, len - ck - 1);
            FUZZ_CHECK(c <= 0, "query not sorted: %.*s", (int)n, q);
        }
        prev = pair;
        prev_len = len;
        i = j + 1;
    }
}

/* Checks the canonical request; returns the offset and length of its query line. */
static void check_canonical(const ddb_sigv4_out *o, const ddb_sigv4_req *r, size_t *qoff, size_t *qlen) {
    const ddb_buf *cr = &o->canonical_request;
    size_t pos = 0, len;
    /* (a NUL inside is possible: header values are taken as given, as botocore does) */
    FUZZ_CHECK(cr->p && cr->p[cr->len] == '\0', "canonical request is not NUL-terminated");
    const char *s = next_line(cr, &pos, &len);
    FUZZ_CHECK(len == strlen(r->method) && memcmp(s, r->method, len) == 0, "method line");
    s = next_line(cr, &pos, &len);
    check_uri(s, len, r->normalize_path);
    *qoff = pos;
    s = next_line(cr, &pos, &len);
    *qlen = len;
    check_query(s, len);
    /* header lines up to the blank line: "name:value", names sorted, unique */
    const char *prev = NULL;
    size_t prev_len = 0;
    for (;;) {
        s = next_line(cr, &pos, &len);
        if (len == 0) break;
        const char *colon = memchr(s, ':', len);
        FUZZ_CHECK(colon && colon > s, "header line without a name");
        size_t nl = (size_t)(colon - s);
        for (size_t i = 0; i < nl; i++)
            FUZZ_CHECK(!(s[i] >= 'A' && s[i] <= 'Z'), "header name not lowercase");
        if (prev) FUZZ_CHECK(cmp_bytes(prev, prev_len, s, nl) < 0, "header names not sorted and unique");
        prev = s;
        prev_len = nl;
    }
    s = next_line(cr, &pos, &len); /* signed headers */
    int dated = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && s[j] != ';') j++;
        dated |= j - i == 10 && memcmp(s + i, "x-amz-date", 10) == 0;
        i = j + 1;
    }
    FUZZ_CHECK(dated, "x-amz-date not signed");
    FUZZ_CHECK(cr->len - pos == 64 && memcmp(cr->p + pos, o->content_sha256, 64) == 0,
               "body hash is not the last line");
    FUZZ_CHECK(strncmp(o->authorization.p, "AWS4-HMAC-SHA256 Credential=", 28) == 0, "authorization prefix");
    FUZZ_CHECK(strlen(o->signature) == 64, "signature length");
}

static int has_ws(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\v' || s[i] == '\f') return 1;
    return 0;
}

/* Flag 64: the prepared signer against ddb_sigv4_sign for r's values. */
static void check_prepared(const ddb_sigv4_req *r, const ddb_header *h, size_t nh) {
    const char *host = nh > 0 ? h[0].value : "", *target = nh > 1 ? h[1].value : "";
    size_t host_len = nh > 0 ? h[0].value_len : 0, target_len = nh > 1 ? h[1].value_len : 0;
    ddb_header hs[3];
    ddb_sigv4_req g;
    ddb_sigv4_json_request(&g, hs, host, host_len, target, target_len, r->body, r->body_len);
    g.region = r->region;
    g.service = r->service;
    g.access_key_id = r->access_key_id;
    g.secret_access_key = r->secret_access_key;
    g.session_token = r->session_token;
    g.timestamp = r->timestamp;
    ddb_sigv4_out o;
    ddb_sigv4_out_init(&o);
    const char *err = NULL;
    int rc = ddb_sigv4_sign(&g, NULL, &o, &err);
    ddb_sigv4_prep *p = ddb_sigv4_prep_new(host, host_len, r->region, r->service, r->access_key_id,
                                           r->session_token, &err);
    if (!p) {
        FUZZ_CHECK(rc != 0, "the prepared signer refused values ddb_sigv4_sign accepts");
    } else {
        unsigned char key[32];
        const char *line = NULL;
        size_t line_len = 0;
        if (ddb_sigv4_derive_key(r->secret_access_key, r->timestamp, r->region, r->service, key) == 0)
            line = ddb_sigv4_prep_sign(p, r->timestamp, key, target, target_len, r->body, r->body_len, &line_len);
        if (line) {
            size_t plen = sizeof DDB_SIGV4_AUTH_LINE_PREFIX - 1;
            FUZZ_CHECK(rc == 0, "the prepared signer signed what ddb_sigv4_sign refuses: %s", err);
            FUZZ_CHECK(line_len == plen + o.authorization.len && memcmp(line, DDB_SIGV4_AUTH_LINE_PREFIX, plen) == 0 &&
                           memcmp(line + plen, o.authorization.p, o.authorization.len) == 0,
                       "prepared Authorization differs:\n%s\n%s", line, o.authorization.p);
        } else {
            FUZZ_CHECK(rc != 0 || has_ws(target, target_len), "the prepared signer declined a plain request");
        }
        ddb_sigv4_prep_free(p);
    }
    ddb_sigv4_out_free(&o);
}

static const char *field_or(const fuzz_field *f, int raw, const char *dflt, char **owned) {
    if (!raw) return dflt;
    *owned = fuzz_cstr(f->p, f->n); /* stops at no NUL: fields have none */
    return *owned;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned flags = data[0];
    int raw = (flags & 16) != 0;
    fuzz_field f[MAX_FIELDS + 2 * MAX_HEADERS];
    size_t nf = fuzz_fields(data + 1, size - 1, f, MAX_FIELDS + 2 * MAX_HEADERS);

    char *owned[MAX_FIELDS] = {0};
    char *path = fuzz_copy(f[1].p, f[1].n), *query = fuzz_copy(f[2].p, f[2].n), *body = fuzz_copy(f[3].p, f[3].n);
    ddb_sigv4_req r;
    memset(&r, 0, sizeof r);
    r.method = field_or(&f[0], raw || f[0].n, "POST", &owned[0]);
    r.path = path;
    r.path_len = f[1].n;
    r.query = query;
    r.query_len = f[2].n;
    r.body = (flags & 32) && f[3].n == 0 ? NULL : body;
    r.body_len = f[3].n;
    r.region = field_or(&f[4], raw, "us-east-1", &owned[4]);
    r.service = field_or(&f[5], raw, "dynamodb", &owned[5]);
    r.access_key_id = field_or(&f[6], raw, "AKIDEXAMPLE", &owned[6]);
    r.secret_access_key = field_or(&f[7], raw, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", &owned[7]);
    r.session_token = (flags & 8) ? field_or(&f[8], 1, NULL, &owned[8]) : NULL;
    r.timestamp = field_or(&f[9], raw, "20150830T123600Z", &owned[9]);
    r.normalize_path = flags & 1;
    r.sign_body = (flags & 2) != 0;

    size_t nh = nf > MAX_FIELDS ? (nf - MAX_FIELDS + 1) / 2 : 0;
    ddb_header *h = malloc((nh ? nh : 1) * sizeof *h);
    char **hcopies = calloc(2 * (nh ? nh : 1), sizeof *hcopies);
    if (!h || !hcopies) abort();
    for (size_t i = 0; i < nh; i++) {
        const fuzz_field *n = &f[MAX_FIELDS + 2 * i], *v = &f[MAX_FIELDS + 2 * i + 1];
        hcopies[2 * i] = fuzz_copy(n->p, n->n);
        hcopies[2 * i + 1] = fuzz_copy(v->p, v->n);
        h[i] = (ddb_header){hcopies[2 * i], n->n, hcopies[2 * i + 1], v->n};
    }
    r.headers = nh ? h : NULL;
    r.nheaders = nh;

    ddb_sigv4_cache cache;
    ddb_sigv4_cache_init(&cache);
    ddb_sigv4_out o1, o2;
    ddb_sigv4_out_init(&o1);
    ddb_sigv4_out_init(&o2);
    ddb_sigv4_cache *cp = (flags & 4) ? &cache : NULL;
    const char *err = NULL, *err2 = NULL;

    int rc = ddb_sigv4_sign(&r, cp, &o1, &err);
    FUZZ_CHECK((rc == 0) == (err == NULL), "rc %d with err %s", rc, err ? err : "(null)");
    /* normalize_path never decides validity */
    ddb_sigv4_req flipped = r;
    flipped.normalize_path = !r.normalize_path;
    int rc2 = ddb_sigv4_sign(&flipped, cp, &o2, &err2);
    FUZZ_CHECK(rc == rc2, "normalize_path changed the outcome: %s / %s", err ? err : "ok", err2 ? err2 : "ok");

    if (rc == 0) {
        size_t qoff, qlen;
        check_canonical(&o1, &r, &qoff, &qlen);
        size_t qoff2, qlen2;
        check_canonical(&o2, &flipped, &qoff2, &qlen2);
        char *cr1 = fuzz_copy(o1.canonical_request.p, o1.canonical_request.len);
        size_t cr1_len = o1.canonical_request.len;
        char sig1[65];
        memcpy(sig1, o1.signature, sizeof sig1);

        /* the same output reused, then a fresh one without cache, then a given key */
        FUZZ_CHECK(ddb_sigv4_sign(&r, cp, &o1, &err) == 0, "second signing failed: %s", err);
        FUZZ_CHECK(o1.canonical_request.len == cr1_len && memcmp(o1.canonical_request.p, cr1, cr1_len) == 0 &&
                       strcmp(o1.signature, sig1) == 0,
                   "signing again with the reused output differs");
        ddb_sigv4_out o3;
        ddb_sigv4_out_init(&o3);
        FUZZ_CHECK(ddb_sigv4_sign(&r, NULL, &o3, &err) == 0 && strcmp(o3.signature, sig1) == 0,
                   "signing without cache differs");
        unsigned char key[32];
        FUZZ_CHECK(ddb_sigv4_derive_key(r.secret_access_key, r.timestamp, r.region, r.service, key) == 0,
                   "derive_key refused what sign accepted");
        ddb_sigv4_req keyed = r;
        keyed.signing_key = key;
        FUZZ_CHECK(ddb_sigv4_sign(&keyed, NULL, &o3, &err) == 0 && strcmp(o3.signature, sig1) == 0,
                   "signing with a derived key differs");

        /* the canonical query is a fixed point of canonicalisation */
        char *q2 = fuzz_copy(cr1 + qoff, qlen);
        ddb_sigv4_req again = r;
        again.query = q2;
        again.query_len = qlen;
        FUZZ_CHECK(ddb_sigv4_sign(&again, cp, &o3, &err) == 0, "re-signing the canonical query failed: %s", err);
        size_t pos = 0, len;
        next_line(&o3.canonical_request, &pos, &len);
        next_line(&o3.canonical_request, &pos, &len);
        const char *q3 = next_line(&o3.canonical_request, &pos, &len);
        FUZZ_CHECK(len == qlen && memcmp(q3, q2, qlen) == 0, "canonical query is not a fixed point: %.*s -> %.*s",
                   (int)qlen, q2, (int)len, q3);
        free(q2);
        free(cr1);
        ddb_sigv4_out_free(&o3);
    }

    if (flags & 64) check_prepared(&r, h, nh);

    ddb_sigv4_out_free(&o1);
    ddb_sigv4_out_free(&o2);
    ddb_sigv4_cache_clear(&cache);
    for (size_t i = 0; i < 2 * nh; i++) free(hcopies[i]);
    free(hcopies);
    free(h);
    for (int i = 0; i < MAX_FIELDS; i++) free(owned[i]);
    free(path);
    free(query);
    free(body);
    return 0;
}

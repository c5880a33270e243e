/* curl_floor: the transport floor of the per-call benchmark.
 *
 *   curl_floor URL HEADERS_FILE BODY_FILE N [WARMUP]
 *
 * One libcurl easy handle, kept alive, POSTs BODY_FILE with the header lines
 * of HEADERS_FILE (pre-signed once: nothing is encoded, signed or decoded per
 * call) WARMUP times (default 50), then N timed times, and prints one JSON
 * line {"n":N,"cpu_s":...,"wall_s":...} (process CPU time, user+sys, and
 * wall time of the N calls). The handle has the options ddb's transport sets
 * (src/transport.c) and the response body is collected into a buffer, as a
 * client must; so this is what any libcurl client pays per call at least.
 * Every response must be HTTP 200. With N = 0 it only starts up and warms
 * up (the baseline that callgrind's per-call figure subtracts). */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *p;
    size_t len, cap;
} buf;

static void die(const char *what, const char *detail) {
    fprintf(stderr, "curl_floor: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    buf *b = ud;
    size_t len = size * n;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, len);
    b->len += len;
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    (void)p;
    (void)ud;
    return size * n;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open", path);
    buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) on_body(chunk, 1, n, &b);
    fclose(f);
    if (!b.p) on_body("", 1, 0, &b); /* an empty file: still a buffer */
    if (!b.p) die("out of memory", NULL);
    b.p[b.len] = '\0';
    *len = b.len;
    return b.p;
}

static double seconds(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void call(CURL *h, buf *resp) {
    resp->len = 0;
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) die("request failed", curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) die("response status is not 200", NULL);
}

int main(int argc, char **argv) {
    if (argc < 5) die("usage: curl_floor URL HEADERS_FILE BODY_FILE N [WARMUP]", NULL);
    const char *url = argv[1];
    long n = strtol(argv[4], NULL, 10), warmup = argc > 5 ? strtol(argv[5], NULL, 10) : 50;
    size_t hlen, body_len;
    char *htext = read_file(argv[2], &hlen), *body = read_file(argv[3], &body_len);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) die("curl_global_init failed", NULL);
    struct curl_slist *headers = NULL;
    for (char *line = strtok(htext, "\n"); line; line = strtok(NULL, "\n")) {
        headers = curl_slist_append(headers, line);
        if (!headers) die("out of memory", NULL);
    }
    CURL *h = curl_easy_init();
    if (!h) die("curl_easy_init failed", NULL);
    buf resp = {0};
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);

    for (long i = 0; i < warmup; i++) call(h, &resp);
    double c0 = seconds(CLOCK_PROCESS_CPUTIME_ID), w0 = seconds(CLOCK_MONOTONIC);
    for (long i = 0; i < n; i++) call(h, &resp);
    double c1 = seconds(CLOCK_PROCESS_CPUTIME_ID), w1 = seconds(CLOCK_MONOTONIC);
    printf("{\"n\":%ld,\"cpu_s\":%.9f,\"wall_s\":%.9f}\n", n, c1 - c0, w1 - w0);

    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    free(resp.p);
    free(htext);
    free(body);
    return 0;
}

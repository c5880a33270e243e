/* client.c: the client userdata: sign, send, decode (see client.h). */
#include "client.h"

#include <lauxlib.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "json.h"
#include "module.h"
#include "sigv4.h"
#include "transport.h"

/* Under the generational collector (which Lua's standalone interpreter
 * runs), responses from this size on (bytes) are decoded after one collector
 * step, a young collection. Without it the decode started on malloc's slow
 * path: libcurl allocates a 16 KB buffer per transfer, and glibc answers a
 * request that large by first merging all its freed small blocks, most of
 * them the previous decode's garbage; collected just before, that garbage
 * is what the decoder reuses. 20-item Query: 52.9 -> 47.0 us CPU per call.
 * Under the incremental collector the extra step only adds work (55.3 ->
 * 57.4 us), so it is not taken (bench/optimisation-log.md). Nor while the
 * program has stopped the collector. */
#define GC_STEP_BEFORE_DECODE 4096

/* Whether the program runs the generational collector, learned once per Lua
 * state (a registry flag): the C API can only tell by switching, so this
 * asks for generational mode, which changes nothing when it already is, and
 * otherwise switches back to incremental with the same parameters (the round
 * trip completes one collection cycle, once). Unknown (0, not remembered)
 * while the collector is stopped or running. */
static int generational_gc(lua_State *L) {
    static const char key = 'g';
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &key) != LUA_TNIL) {
        int gen = lua_toboolean(L, -1);
        lua_pop(L, 1);
        return gen;
    }
    lua_pop(L, 1);
    if (!lua_gc(L, LUA_GCISRUNNING)) return 0;
    int prev = lua_gc(L, LUA_GCGEN, 0, 0);
    if (prev == LUA_GCINC) lua_gc(L, LUA_GCINC, 0, 0, 0);
    else if (prev != LUA_GCGEN) return 0; /* -1: called from inside the collector */
    lua_pushboolean(L, prev == LUA_GCGEN);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key);
    return prev == LUA_GCGEN;
}

typedef struct {
    char *url, *host;
    size_t host_len;
    char *host_line;      /* "Host: <host>" */
    ddb_sigv4_prep *prep; /* the signer prepared for this host; NULL: ddb_sigv4_sign signs */
} endpoint;

/* The request headers, in the order they are sent. The list handed to
 * libcurl is made of the client's own nodes (curl_slist is a public struct
 * that libcurl only reads), so a call allocates nothing for its headers: the
 * constant lines are made once, the others rewritten in place. */
enum { H_HOST, H_CONTENT_TYPE, H_TARGET, H_DATE, H_TOKEN, H_AUTHORIZATION, H_USER_AGENT, H_EXPECT, H_COUNT };

#define DATE_PREFIX "X-Amz-Date: "
#define DATE_PREFIX_LEN (sizeof DATE_PREFIX - 1)

typedef struct {
    ddb_transport *t;
    ddb_response resp;
    ddb_sigv4_cache cache;
    ddb_sigv4_out sig;
    ddb_buf body;   /* request body */
    endpoint ep[2]; /* 0: dynamodb, 1: streams */
    char *region, *akid, *secret, *token, *user_agent;
    struct curl_slist headers[H_COUNT];
    char *content_type_line, *token_line, *user_agent_line, *expect_line; /* made once */
    ddb_buf target_line, auth_line;             /* rewritten per call (auth_line: when not prepared) */
    char date_line[DATE_PREFIX_LEN + 17];       /* "X-Amz-Date: YYYYMMDDTHHMMSSZ" */
    time_t date_second;                         /* the second date_line shows */
    unsigned char signing_key[32];              /* for signing_key_date */
    char signing_key_date[9];                   /* "YYYYMMDD", "" = none yet */
    int debug;      /* 0 off, 1 on (stderr or the sink), 2 on with bodies */
    int debug_sink; /* the debug lines go to the function in user value 1, not stderr */
    int in_sink;    /* that function is running: the client must not be reentered */
    int busy;       /* a request() is running (ddb_guard_arm: cleared however it ends) */
    int gen_gc;     /* the program ran the generational collector when c was made */
    ddb_buf dbg;    /* the debug line being built */
    int closed;
} client;

/* Request headers whose values are credentials or made from them. The debug
 * output shows each header of the list the client links for libcurl (so what
 * is sent, as built), and the value of any header named here, compared
 * case-insensitively with the name of the header line, as "<redacted>". The
 * secret key itself is in no header; bodies hold data, not credentials. */
static const char *const SENSITIVE_HEADERS[] = {"Authorization", "X-Amz-Security-Token"};

/* Secrets shorter than this are not searched for in error messages (the
 * placeholder credentials of a loopback endpoint, "local", would otherwise
 * turn "localhost" into "<redacted>host"). */
#define REDACT_MIN_LEN 8
#define REDACTED "<redacted>"
/* Bytes of a body shown by a debug line (DDB_DEBUG=body). */
#define DEBUG_BODY_MAX 65536

static char *dup_str(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* "name: value", or NULL (value NULL or out of memory). */
static char *header_line(const char *name, const char *value) {
    if (!value) return NULL;
    size_t n = strlen(name), v = strlen(value);
    char *p = malloc(n + 2 + v + 1);
    if (!p) return NULL;
    memcpy(p, name, n);
    memcpy(p + n, ": ", 2);
    memcpy(p + n + 2, value, v + 1);
    return p;
}

static void free_secret(char *s) {
    if (!s) return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static void buf_cleanse_free(ddb_buf *b) {
    if (b->p) OPENSSL_cleanse(b->p, b->cap);
    ddb_buf_free(b);
}

static void client_release(client *c) {
    if (c->closed) return;
    c->closed = 1;
    ddb_transport_free(c->t);
    c->t = NULL;
    ddb_response_free(&c->resp);
    ddb_sigv4_cache_clear(&c->cache);
    ddb_sigv4_out_free(&c->sig);
    OPENSSL_cleanse(c->signing_key, sizeof c->signing_key);
    c->signing_key_date[0] = '\0';
    buf_cleanse_free(&c->body);
    buf_cleanse_free(&c->auth_line);
    ddb_buf_free(&c->target_line);
    ddb_buf_free(&c->dbg);
    for (int i = 0; i < 2; i++) {
        free(c->ep[i].url);
        free(c->ep[i].host);
        free(c->ep[i].host_line);
        ddb_sigv4_prep_free(c->ep[i].prep);
        c->ep[i].url = c->ep[i].host = c->ep[i].host_line = NULL;
        c->ep[i].prep = NULL;
    }
    free(c->region);
    free(c->user_agent);
    free(c->content_type_line);
    free(c->user_agent_line);
    free(c->expect_line);
    free_secret(c->token_line);
    free_secret(c->akid);
    free_secret(c->secret);
    free_secret(c->token);
    c->region = c->user_agent = c->akid = c->secret = c->token = NULL;
    c->content_type_line = c->user_agent_line = c->expect_line = c->token_line = NULL;
}

static client *check_client(lua_State *L) {
    client *c = luaL_checkudata(L, 1, DDB_CLIENT_MT);
    if (c->closed) luaL_error(L, "ddb client is closed");
    if (c->in_sink) luaL_error(L, "ddb client used from its own debug function");
    if (c->busy) luaL_error(L, "ddb client used while one of its requests is running (from a finalizer?)");
    return c;
}

/* 1 when s can go into a header value: no CR, LF or NUL (no header injection). */
static int header_safe(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 0;
    return 1;
}

/* Pushes options[name] of the options table at index 1, read raw (no
 * metamethod runs), and returns it as a string; NULL when it is nil. The
 * value stays on the stack, so it stays alive until l_client_new has copied
 * it, whatever a finalizer run by an allocation in between does to the
 * table. Raises when it is not a string (or absent and required), holds a
 * NUL byte (a C string would cut it), or, for a value that goes into a
 * header line (header), a CR or LF: the check is on the very string used. */
static const char *str_field(lua_State *L, const char *name, int required, int header) {
    lua_pushstring(L, name);
    int t = lua_rawget(L, 1);
    if (t == LUA_TNIL && !required) return NULL;
    if (t != LUA_TSTRING) luaL_error(L, "client option '%s' must be a string", name);
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (header && !header_safe(s, n))
        luaL_error(L, "client option '%s' must not contain CR, LF or NUL", name);
    if (!header && memchr(s, '\0', n)) luaL_error(L, "client option '%s' must not contain NUL", name);
    return s;
}

/* options[name] (read raw) as an integer from min to 2^31 - 1; dflt when nil. */
static long int_field(lua_State *L, const char *name, long dflt, long min) {
    lua_pushstring(L, name);
    long v = dflt;
    if (lua_rawget(L, 1) != LUA_TNIL) {
        int ok;
        lua_Integer i = lua_tointegerx(L, -1, &ok);
        if (!ok || i < min || i > 0x7fffffffL)
            luaL_error(L, "client option '%s' must be an integer >= %d", name, (int)min);
        v = (long)i;
    }
    lua_pop(L, 1);
    return v;
}

/* options[name] (read raw) as a boolean (Lua truth). */
static int bool_field(lua_State *L, const char *name) {
    lua_pushstring(L, name);
    lua_rawget(L, 1);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* 1 when s is an X-Amz-Target: letters, digits, '_' and '.' only. */
static int target_safe(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.'))
            return 0;
    }
    return 1;
}

static int l_client_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int gen_gc = generational_gc(L); /* first: its collection may run finalizers */
    /* the ten strings and the debug value stay on the stack until copied (see
     * str_field), under the userdata and what building it pushes */
    luaL_checkstack(L, 16, "client options");
    const char *url = str_field(L, "url", 1, 0);
    const char *host = str_field(L, "host", 1, 1);
    const char *surl = str_field(L, "streams_url", 0, 0);
    const char *shost = str_field(L, "streams_host", 0, 1);
    const char *region = str_field(L, "region", 1, 1);
    const char *akid = str_field(L, "access_key_id", 1, 1);
    const char *secret = str_field(L, "secret_access_key", 1, 0);
    const char *token = str_field(L, "session_token", 0, 1);
    const char *ca_file = str_field(L, "ca_file", 0, 0);
    const char *ua = str_field(L, "user_agent", 0, 1);
    ddb_transport_opts to;
    to.timeout_ms = int_field(L, "timeout_ms", 30000, 1);
    to.connect_timeout_ms = int_field(L, "connect_timeout_ms", 3000, 1);
    to.max_response_bytes = (size_t)int_field(L, "max_response_bytes", 64L << 20, 1024);
    to.ca_file = ca_file;
    to.insecure = bool_field(L, "insecure");
    lua_pushliteral(L, "debug");
    int dtype = lua_rawget(L, 1); /* stays on the stack: the sink, when a function */
    int debug_idx = lua_gettop(L);
    if (dtype != LUA_TNIL && dtype != LUA_TBOOLEAN && dtype != LUA_TFUNCTION)
        return luaL_error(L, "client option 'debug' must be a boolean or a function");
    int debug = lua_toboolean(L, debug_idx);
    if (debug && bool_field(L, "debug_body")) debug = 2;

    client *c = lua_newuserdatauv(L, sizeof *c, 2);
    memset(c, 0, sizeof *c);
    c->closed = 1; /* until fully built, so __gc on a half-built client is safe */
    luaL_setmetatable(L, DDB_CLIENT_MT);
    ddb_response_init(&c->resp);
    ddb_sigv4_cache_init(&c->cache);
    ddb_sigv4_out_init(&c->sig);
    ddb_buf_init(&c->body);
    ddb_buf_init(&c->target_line);
    ddb_buf_init(&c->auth_line);
    ddb_buf_init(&c->dbg);
    ddb_guard_new(L, &c->busy); /* user value 2: request()'s guard of c->busy */
    lua_setiuservalue(L, -2, 2);
    c->closed = 0;
    c->gen_gc = gen_gc;
    c->debug = debug;
    if (dtype == LUA_TFUNCTION) { /* user value 1: the sink */
        lua_pushvalue(L, debug_idx);
        lua_setiuservalue(L, -2, 1);
        c->debug_sink = 1;
    }
    c->ep[0].url = dup_str(url);
    c->ep[0].host = dup_str(host);
    c->ep[1].url = dup_str(surl ? surl : url);
    c->ep[1].host = dup_str(shost ? shost : host);
    c->region = dup_str(region);
    c->akid = dup_str(akid);
    c->secret = dup_str(secret);
    c->token = (token && *token) ? dup_str(token) : NULL;
    c->user_agent = dup_str(ua ? ua : "ddb-lua/0.1");
    for (int i = 0; i < 2; i++) {
        c->ep[i].host_line = header_line("Host", c->ep[i].host);
        if (c->ep[i].host) c->ep[i].host_len = strlen(c->ep[i].host);
    }
    c->content_type_line = header_line("Content-Type", DDB_SIGV4_JSON_CONTENT_TYPE);
    c->token_line = header_line("X-Amz-Security-Token", c->token);
    c->user_agent_line = header_line("User-Agent", c->user_agent);
    c->expect_line = header_line("Expect", ""); /* no 100-continue round trip */
    memcpy(c->date_line, DATE_PREFIX, DATE_PREFIX_LEN);
    c->date_second = (time_t)-1;
    if (!c->ep[0].url || !c->ep[0].host || !c->ep[1].url || !c->ep[1].host || !c->region ||
        !c->akid || !c->secret || (token && *token && !c->token) || !c->user_agent ||
        !c->ep[0].host_line || !c->ep[1].host_line || !c->content_type_line || (c->token && !c->token_line) ||
        !c->user_agent_line || !c->expect_line) {
        client_release(c);
        return luaL_error(L, "out of memory");
    }
    /* the fast signer of each endpoint; where it refuses the values (or has
     * no memory), ddb_sigv4_sign signs, and says what is wrong */
    for (int i = 0; i < 2; i++)
        c->ep[i].prep = ddb_sigv4_prep_new(c->ep[i].host, c->ep[i].host_len, c->region, "dynamodb", c->akid,
                                           c->token, NULL);
    char err[256];
    c->t = ddb_transport_new(&to, err, sizeof err);
    if (!c->t) {
        client_release(c);
        return luaL_error(L, "cannot create HTTP transport: %s", err);
    }
    return 1;
}

/* Brings date_line to the current second; returns the "YYYYMMDDTHHMMSSZ"
 * part (NUL-terminated), or NULL when the clock cannot be read. */
static const char *amz_date(client *c) {
    time_t now = time(NULL);
    if (now != c->date_second) {
        struct tm tm;
        if (now == (time_t)-1 || !gmtime_r(&now, &tm) ||
            strftime(c->date_line + DATE_PREFIX_LEN, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
            return NULL;
        c->date_second = now;
    }
    return c->date_line + DATE_PREFIX_LEN;
}

/* "Name: " + value into b; 0, or -1 when out of memory. */
static int set_line(ddb_buf *b, const char *prefix, size_t plen, const char *value, size_t vlen) {
    ddb_buf_reset(b);
    ddb_buf_add(b, prefix, plen);
    ddb_buf_add(b, value, vlen);
    return ddb_buf_ok(b) ? 0 : -1;
}

/* Links the header nodes for this request (the token line only with a token).
 * libcurl only reads the lines, so the Authorization line may be constant. */
static struct curl_slist *link_headers(client *c, const endpoint *ep, const char *auth_line) {
    char *lines[H_COUNT] = {ep->host_line,     c->content_type_line, c->target_line.p,     c->date_line,
                            c->token_line,     (char *)auth_line,    c->user_agent_line,   c->expect_line};
    struct curl_slist *prev = NULL;
    for (int i = H_COUNT - 1; i >= 0; i--) {
        if (!lines[i]) continue; /* no token */
        c->headers[i].data = lines[i];
        c->headers[i].next = prev;
        prev = &c->headers[i];
    }
    return prev;
}

/* The length of the secret key or session token starting at s[i] (one of
 * REDACT_MIN_LEN bytes or more), or 0. */
static size_t secret_at(const client *c, const char *s, size_t len, size_t i) {
    const char *secrets[2] = {c->secret, c->token};
    for (int k = 0; k < 2; k++) {
        const char *x = secrets[k];
        if (!x || s[i] != x[0]) continue;
        size_t n = strlen(x);
        if (n >= REDACT_MIN_LEN && len - i >= n && memcmp(s + i, x, n) == 0) return n;
    }
    return 0;
}

/* Pushes s with every occurrence of the secret key or the session token
 * replaced by "<redacted>": for error messages, where a transport or a server
 * could echo what it was given. */
static void push_redacted(lua_State *L, const client *c, const char *s, size_t len) {
    size_t i = 0, from = 0, n;
    while (i < len && !secret_at(c, s, len, i)) i++;
    if (i == len) { /* the usual case: nothing to hide */
        lua_pushlstring(L, s, len);
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    while (i < len) {
        if ((n = secret_at(c, s, len, i)) == 0) {
            i++;
            continue;
        }
        luaL_addlstring(&b, s + from, i - from);
        luaL_addstring(&b, REDACTED);
        i += n;
        from = i;
    }
    luaL_addlstring(&b, s + from, len - from);
    luaL_pushresult(&b);
}

static int push_failure(lua_State *L, const client *c, const char *code, const char *msg, long status,
                        const char *request_id) {
    lua_pushnil(L);
    lua_pushstring(L, code);
    push_redacted(L, c, msg, strlen(msg));
    if (status <= 0) return 3;
    lua_pushinteger(L, status);
    if (request_id && *request_id) lua_pushstring(L, request_id);
    else lua_pushnil(L);
    return 5;
}

/* Debug output (c->debug): one line per request, one per response. */

/* Appends s to the debug line on one line (bytes below 0x20 and 0x7f as
 * \xNN) and without the secret key or the session token, stopping at the
 * first byte from max on that is not inside a secret (the secrets are found
 * in all of s, so one across max is redacted whole); returns the number of
 * bytes of s shown (max or more, or len). */
static size_t dbg_add_max(ddb_buf *b, const client *c, const char *s, size_t len, size_t max) {
    static const char hex[] = "0123456789abcdef";
    size_t from = 0, n, i = 0;
    while (i < len && i < max) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != 0x7f && (n = secret_at(c, s, len, i)) == 0) {
            i++;
            continue;
        }
        ddb_buf_add(b, s + from, i - from);
        if (ch >= 0x20 && ch != 0x7f) {
            ddb_buf_adds(b, REDACTED);
            i += n;
        } else {
            char e[4] = {'\\', 'x', hex[ch >> 4], hex[ch & 15]};
            ddb_buf_add(b, e, 4);
            i++;
        }
        from = i;
    }
    ddb_buf_add(b, s + from, i - from);
    return i;
}

static void dbg_add(ddb_buf *b, const client *c, const char *s, size_t len) {
    dbg_add_max(b, c, s, len, len);
}

/* The first DEBUG_BODY_MAX bytes of the body, redacted before the cut (see
 * dbg_add_max), then how many bytes were left out. */
static void dbg_add_body(ddb_buf *b, const client *c, const char *body, size_t len) {
    ddb_buf_adds(b, " body: ");
    size_t shown = dbg_add_max(b, c, body, len, DEBUG_BODY_MAX);
    if (shown < len) {
        char more[64];
        snprintf(more, sizeof more, "... (%zu more bytes)", len - shown);
        ddb_buf_adds(b, more);
    }
}

/* Length of the name of a "Name: value" header line when the header is in
 * SENSITIVE_HEADERS (or the line has no colon: then nothing of it is shown,
 * and the result is 0 with *hide set); else 0. */
static size_t sensitive_name(const char *line, int *hide) {
    const char *colon = strchr(line, ':');
    *hide = 1;
    if (!colon) return 0;
    size_t n = (size_t)(colon - line);
    for (size_t k = 0; k < sizeof SENSITIVE_HEADERS / sizeof *SENSITIVE_HEADERS; k++)
        if (strlen(SENSITIVE_HEADERS[k]) == n && strncasecmp(line, SENSITIVE_HEADERS[k], n) == 0) return n;
    *hide = 0;
    return 0;
}

/* Sends the line in c->dbg to the sink function (user value 1 of the client,
 * at stack index 1) or to stderr. An error raised by the sink propagates. */
static void dbg_emit(lua_State *L, client *c) {
    const char *line = c->dbg.p;
    size_t len = c->dbg.len;
    if (!ddb_buf_ok(&c->dbg) || !line) {
        line = "ddb: (debug line lost: out of memory)";
        len = strlen(line);
    }
    if (!c->debug_sink) {
        fwrite(line, 1, len, stderr);
        fputc('\n', stderr);
        return;
    }
    lua_getiuservalue(L, 1, 1);
    lua_pushlstring(L, line, len);
    c->in_sink = 1;
    int rc = lua_pcall(L, 1, 0, 0);
    c->in_sink = 0;
    if (rc != LUA_OK) lua_error(L);
}

static void debug_request(lua_State *L, client *c, const endpoint *ep, const char *target, size_t target_len,
                          const struct curl_slist *h, const char *body, size_t body_len) {
    ddb_buf *b = &c->dbg;
    ddb_buf_reset(b);
    ddb_buf_adds(b, "ddb: request POST ");
    dbg_add(b, c, ep->url, strlen(ep->url));
    ddb_buf_addc(b, ' ');
    dbg_add(b, c, target, target_len);
    ddb_buf_adds(b, " headers:");
    for (; h; h = h->next) {
        const char *line = h->data;
        size_t len = strlen(line);
        if (len >= 2 && line[len - 1] == ' ' && line[len - 2] == ':') continue; /* "Name: ": not sent */
        int hide;
        size_t name = sensitive_name(line, &hide);
        ddb_buf_adds(b, " [");
        if (hide) {
            dbg_add(b, c, line, name);
            ddb_buf_adds(b, ": " REDACTED);
        } else {
            dbg_add(b, c, line, len);
        }
        ddb_buf_addc(b, ']');
    }
    char size[48];
    snprintf(size, sizeof size, " body %zu bytes", body_len);
    ddb_buf_adds(b, size);
    if (c->debug > 1) dbg_add_body(b, c, body, body_len);
    dbg_emit(L, c);
}

static void debug_response(lua_State *L, client *c, int rc, const ddb_response *r, const struct timespec *t0) {
    static const char *const codes[] = {"OK", "Timeout", "TransportError", "ResponseTooLarge"};
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
    ddb_buf *b = &c->dbg;
    char num[96];
    ddb_buf_reset(b);
    if (rc == DDB_T_OK) {
        snprintf(num, sizeof num, "ddb: response %ld request-id: ", r->status);
        ddb_buf_adds(b, num);
        if (r->request_id[0]) dbg_add(b, c, r->request_id, strlen(r->request_id));
        else ddb_buf_adds(b, "-");
        snprintf(num, sizeof num, " body %zu bytes %.1f ms", r->body.len, ms);
        ddb_buf_adds(b, num);
        if (c->debug > 1) dbg_add_body(b, c, r->body.p ? r->body.p : "", r->body.len);
    } else {
        ddb_buf_adds(b, "ddb: response failed: ");
        ddb_buf_adds(b, rc >= 0 && rc <= 3 ? codes[rc] : "TransportError");
        ddb_buf_adds(b, ": ");
        dbg_add(b, c, r->error, strlen(r->error));
        snprintf(num, sizeof num, " %.1f ms", ms);
        ddb_buf_adds(b, num);
    }
    dbg_emit(L, c);
}

/* Item size (DynamoDB's count; see lua/ddb/limits.lua). The walk reads the
 * tables raw, as the JSON encoder does; a part that is not DynamoDB JSON (a
 * value of the wrong type, a name that is not a string) counts 0, whatever
 * the order of the walk. It stops once *total passes cap. -1 only when the
 * Lua stack cannot grow. */
#define ITEM_MAX_DEPTH 64
#define ITEM_MAX_BYTES 409600 /* DynamoDB's 400 KB */
#define DDB_PREFIX "DynamoDB_20120810."

static size_t number_size(const char *s, size_t n) {
    size_t end = 0, first = n, last = 0, digits = 0;
    while (end < n && s[end] != 'e' && s[end] != 'E') end++;
    for (size_t i = 0; i < end; i++) {
        if (s[i] >= '1' && s[i] <= '9') {
            if (first == n) first = i;
            last = i;
        }
    }
    if (first == n) return 1; /* zero */
    for (size_t i = first; i <= last; i++) digits += s[i] >= '0' && s[i] <= '9';
    return (digits + 1) / 2 + 1;
}

static size_t binary_size(const char *s, size_t n) {
    size_t pad = n >= 1 && s[n - 1] == '=' ? (n >= 2 && s[n - 2] == '=' ? 2 : 1) : 0;
    size_t bytes = n / 4 * 3 + (n % 4) * 3 / 4;
    return bytes > pad ? bytes - pad : 0;
}

static int av_size(lua_State *L, int idx, int depth, size_t cap, size_t *total);

/* The map (attribute name -> AttributeValue) at idx: the item itself at
 * depth 0, an M value below it, whose members cost 1 byte each as well. */
static int map_size(lua_State *L, int idx, int depth, size_t cap, size_t *total) {
    if (!lua_checkstack(L, 4)) return -1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            if (depth > 0) *total += 1;
            if (av_size(L, lua_gettop(L), depth, cap, total) != 0) {
                lua_pop(L, 2);
                return -1;
            }
            size_t n;
            lua_tolstring(L, -2, &n);
            *total += n;
        }
        lua_pop(L, 1);
        if (*total > cap) {
            lua_pop(L, 1);
            break;
        }
    }
    return 0;
}

/* The members of the array at idx: each an AttributeValue (kind 0: an L
 * value, 1 byte per element besides), or a string of kind 'S', 'N' or 'B'
 * (the sets). */
static int array_size(lua_State *L, int idx, int kind, int depth, size_t cap, size_t *total) {
    lua_Unsigned len = lua_rawlen(L, idx);
    for (lua_Unsigned i = 1; i <= len && *total <= cap; i++) {
        int t = lua_rawgeti(L, idx, (lua_Integer)i);
        if (kind == 0) {
            *total += 1;
            if (av_size(L, lua_gettop(L), depth, cap, total) != 0) {
                lua_pop(L, 1);
                return -1;
            }
        } else if (t == LUA_TSTRING) {
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            *total += kind == 'S' ? n : kind == 'N' ? number_size(s, n) : binary_size(s, n);
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* The AttributeValue at idx ({ S = "x" }, ...): its first member decides. */
static int av_size(lua_State *L, int idx, int depth, size_t cap, size_t *total) {
    if (lua_type(L, idx) != LUA_TTABLE) return 0;
    if (!lua_checkstack(L, 4)) return -1;
    lua_pushnil(L);
    if (!lua_next(L, idx)) return 0; /* {} */
    int rc = 0;
    size_t kn = 0, vn = 0;
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &kn) : "";
    int vt = lua_type(L, -1);
    const char *v = vt == LUA_TSTRING ? lua_tolstring(L, -1, &vn) : NULL;
    int top = lua_gettop(L);
    if (kn == 1 && (k[0] == 'S' || k[0] == 'N' || k[0] == 'B')) {
        if (v) *total += k[0] == 'S' ? vn : k[0] == 'N' ? number_size(v, vn) : binary_size(v, vn);
    } else if (kn == 1 && (k[0] == 'M' || k[0] == 'L')) {
        *total += 3;
        if (depth < ITEM_MAX_DEPTH && vt == LUA_TTABLE)
            rc = k[0] == 'M' ? map_size(L, top, depth + 1, cap, total)
                             : array_size(L, top, 0, depth + 1, cap, total);
    } else if (kn == 2 && k[1] == 'S' && (k[0] == 'S' || k[0] == 'N' || k[0] == 'B')) {
        if (vt == LUA_TTABLE) rc = array_size(L, top, k[0], depth, cap, total);
    } else if (kn == 4 && (memcmp(k, "BOOL", 4) == 0 || memcmp(k, "NULL", 4) == 0)) {
        *total += 1;
    }
    lua_pop(L, 2);
    return rc;
}

/* 1 when the table at idx is an item over ITEM_MAX_BYTES. */
static int item_over(lua_State *L, int idx) {
    size_t total = 0;
    return lua_type(L, idx) == LUA_TTABLE && map_size(L, idx, 0, ITEM_MAX_BYTES, &total) == 0 &&
           total > ITEM_MAX_BYTES;
}

/* Pushes t[name] (raw) for the table at idx; returns 1 when it is a table. */
static int raw_table(lua_State *L, int idx, const char *name) {
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushnil(L);
        return 0;
    }
    lua_pushstring(L, name);
    return lua_rawget(L, idx < 0 ? idx - 1 : idx) == LUA_TTABLE;
}

/* 1 when the request (params at idx, operation op) puts an item over the
 * limit: PutItem's Item, BatchWriteItem's PutRequest.Item, TransactWriteItems'
 * Put.Item. Only called for a body longer than the limit: the JSON of an item
 * is never shorter than its size, so a smaller body holds no such item. */
static int has_large_item(lua_State *L, int idx, const char *op) {
    int found = 0;
    if (!lua_checkstack(L, 12)) return 0;
    if (strcmp(op, "PutItem") == 0) {
        raw_table(L, idx, "Item");
        found = item_over(L, lua_gettop(L));
        lua_pop(L, 1);
    } else if (strcmp(op, "BatchWriteItem") == 0) {
        if (raw_table(L, idx, "RequestItems")) {
            int ri = lua_gettop(L);
            lua_pushnil(L);
            while (!found && lua_next(L, ri)) {
                int reqs = lua_gettop(L);
                lua_Unsigned n = lua_type(L, reqs) == LUA_TTABLE ? lua_rawlen(L, reqs) : 0;
                for (lua_Unsigned i = 1; i <= n && !found; i++) {
                    lua_rawgeti(L, reqs, (lua_Integer)i);
                    if (raw_table(L, -1, "PutRequest")) {
                        raw_table(L, -1, "Item");
                        found = item_over(L, lua_gettop(L));
                        lua_pop(L, 1);
                    }
                    lua_pop(L, 2);
                }
                lua_pop(L, 1);
            }
            if (found) lua_pop(L, 1); /* the key lua_next left */
        }
        lua_pop(L, 1);
    } else if (strcmp(op, "TransactWriteItems") == 0) {
        if (raw_table(L, idx, "TransactItems")) {
            int items = lua_gettop(L);
            lua_Unsigned n = lua_rawlen(L, items);
            for (lua_Unsigned i = 1; i <= n && !found; i++) {
                lua_rawgeti(L, items, (lua_Integer)i);
                if (raw_table(L, -1, "Put")) {
                    raw_table(L, -1, "Item");
                    found = item_over(L, lua_gettop(L));
                    lua_pop(L, 1);
                }
                lua_pop(L, 2);
            }
        }
        lua_pop(L, 1);
    }
    return found;
}

/* Signs the request to ep at date ("YYYYMMDDTHHMMSSZ"), with the signing key
 * of that day (derived when the day changes), and returns the Authorization
 * header line: the endpoint's prepared signer's, or, when it has none or
 * refuses the request, ddb_sigv4_sign's (in c->auth_line), which is the same
 * line (spec/sigv4_fastpath_spec.lua) or raises its error. */
static const char *sign_request(lua_State *L, client *c, const endpoint *ep, const char *date, const char *target,
                          size_t target_len, const char *body, size_t body_len) {
    if (memcmp(c->signing_key_date, date, 8) != 0) { /* a new day (or the first call) */
        if (ddb_sigv4_derive_key(c->secret, date, c->region, "dynamodb", c->signing_key) != 0)
            luaL_error(L, "signing failed: invalid secret key, region or date");
        memcpy(c->signing_key_date, date, 8);
        c->signing_key_date[8] = '\0';
    }
    if (ep->prep) {
        const char *line = ddb_sigv4_prep_sign(ep->prep, date, c->signing_key, target, target_len, body,
                                               body_len, NULL);
        if (line) return line;
    }
    ddb_header hs[3];
    ddb_sigv4_req req;
    ddb_sigv4_json_request(&req, hs, ep->host, ep->host_len, target, target_len, body, body_len);
    req.region = c->region;
    req.service = "dynamodb";
    req.access_key_id = c->akid;
    req.secret_access_key = c->secret;
    req.session_token = c->token;
    req.timestamp = date;
    req.signing_key = c->signing_key;
    const char *serr = NULL;
    if (ddb_sigv4_sign(&req, &c->cache, &c->sig, &serr) != 0)
        luaL_error(L, "signing failed: %s", serr ? serr : "unknown error");
    if (set_line(&c->auth_line, DDB_SIGV4_AUTH_LINE_PREFIX, sizeof DDB_SIGV4_AUTH_LINE_PREFIX - 1,
                 c->sig.authorization.p, c->sig.authorization.len) != 0)
        luaL_error(L, "out of memory building request headers");
    return c->auth_line.p;
}

/* c:request(target, params, streams) — see client.h. */
static int l_request(lua_State *L) {
    client *c = check_client(L);
    lua_settop(L, 4);
    ddb_guard_arm(L, 1, 2, &c->busy); /* at 5, before anything can allocate (and so run a finalizer) */
    size_t target_len;
    const char *target = luaL_checklstring(L, 2, &target_len);
    luaL_argcheck(L, target_safe(target, target_len), 2, "X-Amz-Target must be letters, digits, '_' and '.'");
    int ptype = lua_type(L, 3);
    luaL_argexpected(L, ptype == LUA_TTABLE || ptype == LUA_TSTRING, 3, "table or string");
    const endpoint *ep = &c->ep[lua_toboolean(L, 4) ? 1 : 0];

    const char *body;
    size_t body_len;
    if (ptype == LUA_TSTRING) {
        body = lua_tolstring(L, 3, &body_len);
    } else {
        char err[256];
        ddb_buf_reset(&c->body);
        if (ddb_json_encode(L, 3, &c->body, err, sizeof err) != 0)
            return push_failure(L, c, "SerializationError", err, 0, NULL);
        body = c->body.p;
        body_len = c->body.len;
        if (body_len > ITEM_MAX_BYTES && target_len > sizeof DDB_PREFIX - 1 &&
            memcmp(target, DDB_PREFIX, sizeof DDB_PREFIX - 1) == 0 &&
            has_large_item(L, 3, target + sizeof DDB_PREFIX - 1))
            return push_failure(L, c, "ItemTooLarge", "an item is over DynamoDB's 400 KB item size limit", 0,
                                NULL);
    }

    const char *date = amz_date(c);
    if (!date) return luaL_error(L, "signing failed: cannot read the clock");
    const char *auth_line = sign_request(L, c, ep, date, target, target_len, body, body_len);
    if (set_line(&c->target_line, "X-Amz-Target: ", 14, target, target_len) != 0)
        return luaL_error(L, "out of memory building request headers");
    struct curl_slist *h = link_headers(c, ep, auth_line);

    struct timespec t0 = {0, 0};
    if (c->debug) {
        debug_request(L, c, ep, target, target_len, h, body, body_len);
        clock_gettime(CLOCK_MONOTONIC, &t0);
    }
    int rc = ddb_transport_post(c->t, ep->url, h, body, body_len, &c->resp);
    ddb_response *r = &c->resp;
    if (c->debug) debug_response(L, c, rc, r, &t0);
    switch (rc) {
    case DDB_T_OK: break;
    case DDB_T_TIMEOUT: return push_failure(L, c, "Timeout", r->error, 0, NULL);
    case DDB_T_TOO_BIG: return push_failure(L, c, "ResponseTooLarge", r->error, 0, NULL);
    default: return push_failure(L, c, "TransportError", r->error, 0, NULL);
    }
    if (r->has_crc32 && ddb_crc32((const unsigned char *)r->body.p, r->body.len) != r->crc32)
        return push_failure(L, c, "CRC32CheckFailed",
                            "response body does not match its x-amz-crc32 checksum", r->status,
                            r->request_id);

    lua_pushinteger(L, r->status);
    if (r->body.len == 0) {
        lua_pushnil(L);
    } else {
        char err[256];
        if (c->gen_gc && r->body.len >= GC_STEP_BEFORE_DECODE && lua_gc(L, LUA_GCISRUNNING))
            lua_gc(L, LUA_GCSTEP, 0);
        if (ddb_json_decode(L, r->body.p, r->body.len, err, sizeof err) != 0) {
            if (r->status >= 200 && r->status < 300) {
                lua_pop(L, 1); /* the status: a failure returns its own values */
                char msg[320];
                snprintf(msg, sizeof msg, "response is not valid JSON: %s", err);
                return push_failure(L, c, "InvalidResponse", msg, r->status, r->request_id);
            }
            lua_pushlstring(L, r->body.p, r->body.len);
        }
    }
    if (r->request_id[0]) lua_pushstring(L, r->request_id);
    else lua_pushnil(L);
    return 3;
}

static int l_close(lua_State *L) {
    client *c = luaL_checkudata(L, 1, DDB_CLIENT_MT);
    if (c->in_sink) return luaL_error(L, "ddb client closed from its own debug function");
    if (c->busy) return luaL_error(L, "ddb client closed while one of its requests is running (from a finalizer?)");
    client_release(c);
    return 0;
}

/* c:redact(s) -> s with the client's secret key and session token (each when
 * 8 bytes or longer) replaced by "<redacted>"; s itself when neither occurs.
 * For messages that came from elsewhere (a server's error message). */
static int l_redact(lua_State *L) {
    client *c = luaL_checkudata(L, 1, DDB_CLIENT_MT);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    push_redacted(L, c, s, len);
    return 1;
}

static int l_tostring(lua_State *L) {
    client *c = luaL_checkudata(L, 1, DDB_CLIENT_MT);
    if (c->closed) lua_pushstring(L, "ddb.core.client (closed)");
    else lua_pushfstring(L, "ddb.core.client (%s, %s)", c->ep[0].url, c->region);
    return 1;
}

/* item_size(item[, cap]) -> the size of the item in DynamoDB JSON, counted
 * until it passes cap (default: no cap; past it, a lower bound); nil when
 * item is not a table. */
static int l_item_size(lua_State *L) {
    lua_Integer cap = luaL_optinteger(L, 2, LUA_MAXINTEGER);
    luaL_argcheck(L, cap >= 0, 2, "must be >= 0");
    size_t total = 0;
    lua_settop(L, 1);
    if (lua_type(L, 1) != LUA_TTABLE || map_size(L, 1, 0, (size_t)cap, &total) != 0) lua_pushnil(L);
    else lua_pushinteger(L, (lua_Integer)total);
    return 1;
}

void ddb_open_client(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"request", l_request},
        {"close", l_close},
        {"redact", l_redact},
        {NULL, NULL},
    };
    ddb_new_class(L, DDB_CLIENT_MT, methods, l_close, l_tostring);
    lua_pushcfunction(L, l_client_new);
    lua_setfield(L, -2, "client");
    lua_pushcfunction(L, l_item_size);
    lua_setfield(L, -2, "item_size");
}

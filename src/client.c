/* client.c: the client userdata: sign, send, decode (see client.h). */
#include "client.h"

#include <lauxlib.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "json.h"
#include "module.h"
#include "sigv4.h"
#include "transport.h"

typedef struct {
    char *url, *host;
    size_t host_len;
    char *host_line; /* "Host: <host>" */
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
    ddb_buf target_line, auth_line;             /* rewritten per call */
    char date_line[DATE_PREFIX_LEN + 17];       /* "X-Amz-Date: YYYYMMDDTHHMMSSZ" */
    time_t date_second;                         /* the second date_line shows */
    unsigned char signing_key[32];              /* for signing_key_date */
    char signing_key_date[9];                   /* "YYYYMMDD", "" = none yet */
    int debug;
    int closed;
} client;

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
    for (int i = 0; i < 2; i++) {
        free(c->ep[i].url);
        free(c->ep[i].host);
        free(c->ep[i].host_line);
        c->ep[i].url = c->ep[i].host = c->ep[i].host_line = NULL;
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
    return c;
}

/* Reads a string field; required fields raise when absent or not strings. */
static const char *str_field(lua_State *L, int idx, const char *name, int required) {
    lua_getfield(L, idx, name);
    const char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        s = lua_tostring(L, -1);
    } else if (!lua_isnil(L, -1) || required) {
        luaL_error(L, "client option '%s' must be a string", name);
    }
    lua_pop(L, 1); /* the string stays alive: it is referenced by the options table */
    return s;
}

static long int_field(lua_State *L, int idx, const char *name, long dflt, long min) {
    lua_getfield(L, idx, name);
    long v = dflt;
    if (!lua_isnil(L, -1)) {
        int ok;
        lua_Integer i = lua_tointegerx(L, -1, &ok);
        if (!ok || i < min || i > 0x7fffffffL)
            luaL_error(L, "client option '%s' must be an integer >= %d", name, (int)min);
        v = (long)i;
    }
    lua_pop(L, 1);
    return v;
}

static int bool_field(lua_State *L, int idx, const char *name) {
    lua_getfield(L, idx, name);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static int l_client_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *url = str_field(L, 1, "url", 1);
    const char *host = str_field(L, 1, "host", 1);
    const char *surl = str_field(L, 1, "streams_url", 0);
    const char *shost = str_field(L, 1, "streams_host", 0);
    const char *region = str_field(L, 1, "region", 1);
    const char *akid = str_field(L, 1, "access_key_id", 1);
    const char *secret = str_field(L, 1, "secret_access_key", 1);
    const char *token = str_field(L, 1, "session_token", 0);
    const char *ca_file = str_field(L, 1, "ca_file", 0);
    const char *ua = str_field(L, 1, "user_agent", 0);
    ddb_transport_opts to;
    to.timeout_ms = int_field(L, 1, "timeout_ms", 30000, 1);
    to.connect_timeout_ms = int_field(L, 1, "connect_timeout_ms", 3000, 1);
    to.max_response_bytes = (size_t)int_field(L, 1, "max_response_bytes", 64L << 20, 1024);
    to.ca_file = ca_file;
    to.insecure = bool_field(L, 1, "insecure");
    int debug = bool_field(L, 1, "debug");

    client *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    c->closed = 1; /* until fully built, so __gc on a half-built client is safe */
    luaL_setmetatable(L, DDB_CLIENT_MT);
    ddb_response_init(&c->resp);
    ddb_sigv4_cache_init(&c->cache);
    ddb_sigv4_out_init(&c->sig);
    ddb_buf_init(&c->body);
    ddb_buf_init(&c->target_line);
    ddb_buf_init(&c->auth_line);
    c->closed = 0;
    c->debug = debug;
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
    c->content_type_line = header_line("Content-Type", "application/x-amz-json-1.0");
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

/* Links the header nodes for this request (the token line only with a token). */
static struct curl_slist *link_headers(client *c, const endpoint *ep) {
    char *lines[H_COUNT] = {ep->host_line,     c->content_type_line, c->target_line.p,     c->date_line,
                            c->token_line,     c->auth_line.p,       c->user_agent_line,   c->expect_line};
    struct curl_slist *prev = NULL;
    for (int i = H_COUNT - 1; i >= 0; i--) {
        if (!lines[i]) continue; /* no token */
        c->headers[i].data = lines[i];
        c->headers[i].next = prev;
        prev = &c->headers[i];
    }
    return prev;
}

static int push_failure(lua_State *L, const char *code, const char *msg, long status,
                        const char *request_id) {
    lua_pushnil(L);
    lua_pushstring(L, code);
    lua_pushstring(L, msg);
    if (status <= 0) return 3;
    lua_pushinteger(L, status);
    if (request_id && *request_id) lua_pushstring(L, request_id);
    else lua_pushnil(L);
    return 5;
}

static void debug_request(client *c, const endpoint *ep, const char *target, size_t body_len) {
    /* Only non-secret facts: never the Authorization header, token or body. */
    fprintf(stderr, "ddb: POST %s X-Amz-Target=%s body=%zu bytes Authorization=<redacted>%s\n",
            ep->url, target, body_len, c->token ? " X-Amz-Security-Token=<redacted>" : "");
}

/* c:request(target, params, streams) — see client.h. */
static int l_request(lua_State *L) {
    client *c = check_client(L);
    size_t target_len;
    const char *target = luaL_checklstring(L, 2, &target_len);
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
            return push_failure(L, "SerializationError", err, 0, NULL);
        body = c->body.p;
        body_len = c->body.len;
    }

    const char *date = amz_date(c);
    if (!date) return luaL_error(L, "signing failed: cannot read the clock");
    if (memcmp(c->signing_key_date, date, 8) != 0) { /* a new day (or the first call) */
        if (ddb_sigv4_derive_key(c->secret, date, c->region, "dynamodb", c->signing_key) != 0)
            return luaL_error(L, "signing failed: invalid secret key, region or date");
        memcpy(c->signing_key_date, date, 8);
        c->signing_key_date[8] = '\0';
    }
    ddb_header hs[3] = {
        {"Host", 4, ep->host, ep->host_len},
        {"Content-Type", 12, "application/x-amz-json-1.0", 26},
        {"X-Amz-Target", 12, target, target_len},
    };
    ddb_sigv4_req req = {0};
    req.method = "POST";
    req.path = "/";
    req.path_len = 1;
    req.query = "";
    req.query_len = 0;
    req.headers = hs;
    req.nheaders = 3;
    req.body = body;
    req.body_len = body_len;
    req.region = c->region;
    req.service = "dynamodb";
    req.access_key_id = c->akid;
    req.secret_access_key = c->secret;
    req.session_token = c->token;
    req.timestamp = date;
    req.normalize_path = 1;
    req.sign_body = 0;
    req.signing_key = c->signing_key;
    const char *serr = NULL;
    if (ddb_sigv4_sign(&req, &c->cache, &c->sig, &serr) != 0)
        return luaL_error(L, "signing failed: %s", serr ? serr : "unknown error");

    if (set_line(&c->target_line, "X-Amz-Target: ", 14, target, target_len) != 0 ||
        set_line(&c->auth_line, "Authorization: ", 15, c->sig.authorization.p, c->sig.authorization.len) != 0)
        return luaL_error(L, "out of memory building request headers");
    struct curl_slist *h = link_headers(c, ep);

    if (c->debug) debug_request(c, ep, target, body_len);
    int rc = ddb_transport_post(c->t, ep->url, h, body, body_len, &c->resp);
    ddb_response *r = &c->resp;
    if (c->debug)
        fprintf(stderr, "ddb: -> %s status=%ld request_id=%s bytes=%zu\n",
                rc == DDB_T_OK ? "ok" : r->error, r->status, r->request_id, r->body.len);
    switch (rc) {
    case DDB_T_OK: break;
    case DDB_T_TIMEOUT: return push_failure(L, "Timeout", r->error, 0, NULL);
    case DDB_T_TOO_BIG: return push_failure(L, "ResponseTooLarge", r->error, 0, NULL);
    default: return push_failure(L, "TransportError", r->error, 0, NULL);
    }
    if (r->has_crc32 && ddb_crc32((const unsigned char *)r->body.p, r->body.len) != r->crc32)
        return push_failure(L, "CRC32CheckFailed",
                            "response body does not match its x-amz-crc32 checksum", r->status,
                            r->request_id);

    lua_pushinteger(L, r->status);
    if (r->body.len == 0) {
        lua_pushnil(L);
    } else {
        char err[256];
        if (ddb_json_decode(L, r->body.p, r->body.len, err, sizeof err) != 0) {
            if (r->status >= 200 && r->status < 300) {
                lua_pop(L, 1); /* the status: a failure returns its own values */
                char msg[320];
                snprintf(msg, sizeof msg, "response is not valid JSON: %s", err);
                return push_failure(L, "InvalidResponse", msg, r->status, r->request_id);
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
    client_release(c);
    return 0;
}

static int l_tostring(lua_State *L) {
    client *c = luaL_checkudata(L, 1, DDB_CLIENT_MT);
    if (c->closed) lua_pushstring(L, "ddb.core.client (closed)");
    else lua_pushfstring(L, "ddb.core.client (%s, %s)", c->ep[0].url, c->region);
    return 1;
}

void ddb_open_client(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"request", l_request},
        {"close", l_close},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, DDB_CLIENT_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_client_new);
    lua_setfield(L, -2, "client");
}

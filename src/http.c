/* http.c: ddb.core.http_client, a plain HTTP client on the shared transport
 * (src/transport.c: one keep-alive libcurl handle, TLS verification on, no
 * redirects), for the HTTP that is not DynamoDB's, e.g. the Lambda Runtime
 * API (examples/lambda/bootstrap).
 *
 * Lua:
 *   local h = core.http_client{ timeout_ms = 30000, connect_timeout_ms = 3000,
 *                               ca_file = nil, max_response_bytes = 64 MiB }
 *   status, body, headers = h:request(method, url, headers_table, body)
 *   nil, code, message    = h:request(...)   -- Timeout, TransportError, ResponseTooLarge
 *   h:close()                                -- also __gc and __close
 *
 * The options table may be omitted; an unknown option raises. Options are
 * read raw, as they are listed: a metatable's __index is never consulted.
 * request():
 * method is an HTTP token ("GET", "POST", "PUT", ...), url an http:// or
 * https:// URL (anything else is a TransportError), headers nil or a table
 * of name -> string or number (names are tokens; values hold no CR, LF or
 * NUL; Content-Length and Transfer-Encoding are made from the body, not
 * given), body nil or a string ("HEAD" takes none). Wrong types and invalid
 * names or values raise. Besides them libcurl sends Host and an Accept for
 * any type; no User-Agent, no Expect and no made-up Content-Type. The result:
 * the status (any: a 404 or a 302 is a response, not a failure), the body
 * (a string, "" when none) and the response headers as a table (names
 * lowercased; a repeated header's values joined with ", "). */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "module.h"
#include "transport.h"

#define DDB_HTTP_MT "ddb.core.http_client"

typedef struct {
    ddb_transport *t;
    ddb_response resp;
    int closed;
    int busy; /* a request() is running: no finalizer may use or close h (ddb_guard_arm) */
} http_client;

static void http_release(http_client *h) {
    if (h->closed) return;
    h->closed = 1;
    ddb_transport_free(h->t);
    h->t = NULL;
    ddb_response_free(&h->resp);
}

/* options[name] (read raw, as the unknown-option check does) as an integer
 * from min to 2^31 - 1; dflt when nil. */
static long opt_int(lua_State *L, const char *name, long dflt, long min) {
    lua_pushstring(L, name);
    long v = dflt;
    if (lua_rawget(L, 1) != LUA_TNIL) {
        int ok;
        lua_Integer i = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &ok) : (ok = 0);
        if (!ok || i < min || i > 0x7fffffffL)
            luaL_error(L, "http_client option '%s' must be an integer from %d to 2147483647", name, (int)min);
        v = (long)i;
    }
    lua_pop(L, 1);
    return v;
}

/* core.http_client([opts]) */
static int l_http_client(lua_State *L) {
    static const char *const known[] = {"timeout_ms", "connect_timeout_ms", "ca_file", "max_response_bytes", NULL};
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int i = 0;
        while (k && known[i] && strcmp(known[i], k) != 0) i++;
        if (!k || !known[i]) return luaL_error(L, "http_client: unknown option '%s'", k ? k : luaL_typename(L, -1));
    }
    ddb_transport_opts to;
    to.timeout_ms = opt_int(L, "timeout_ms", 30000, 1);
    to.connect_timeout_ms = opt_int(L, "connect_timeout_ms", 3000, 1);
    to.max_response_bytes = (size_t)opt_int(L, "max_response_bytes", 64L << 20, 1024);
    to.insecure = 0;
    lua_pushliteral(L, "ca_file");
    int ca_type = lua_rawget(L, 1);
    if (ca_type != LUA_TNIL && ca_type != LUA_TSTRING)
        return luaL_error(L, "http_client option 'ca_file' must be a string");
    size_t ca_len = 0;
    /* stays on the stack (alive, whatever a finalizer run by an allocation
     * does to the table) until ddb_transport_new has handed it to libcurl,
     * which copies it */
    to.ca_file = lua_tolstring(L, -1, &ca_len);
    if (to.ca_file && strlen(to.ca_file) != ca_len)
        return luaL_error(L, "http_client option 'ca_file' must not contain NUL bytes");

    http_client *h = lua_newuserdatauv(L, sizeof *h, 1);
    memset(h, 0, sizeof *h);
    ddb_response_init(&h->resp);
    h->resp.want_headers = 1;
    luaL_setmetatable(L, DDB_HTTP_MT);
    ddb_guard_new(L, &h->busy); /* user value 1: request()'s guard of h->busy */
    lua_setiuservalue(L, -2, 1);
    char err[256];
    h->t = ddb_transport_new(&to, err, sizeof err);
    if (!h->t) {
        http_release(h);
        return luaL_error(L, "cannot create HTTP transport: %s", err);
    }
    return 1;
}

static http_client *check_open(lua_State *L) {
    http_client *h = luaL_checkudata(L, 1, DDB_HTTP_MT);
    if (h->closed) luaL_error(L, "ddb http client is closed");
    if (h->busy) luaL_error(L, "ddb http client used while one of its requests is running (from a finalizer?)");
    return h;
}

/* An HTTP token (RFC 9110): header names and methods. */
static int is_token(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 32 || c >= 127 || strchr("\"(),/:;<=>?@[\\]{}", c)) return 0;
    }
    return 1;
}

static int has_ctl(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 1;
    return 0;
}

/* Checks the headers table at index 4 (raises on anything wrong); sets
 * *has_expect / *has_type when the caller gives those headers. */
static void check_headers(lua_State *L, int *has_expect, int *has_type) {
    *has_expect = *has_type = 0;
    if (lua_isnoneornil(L, 4)) return;
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 4)) {
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "request: header names must be strings");
        size_t nl, vl;
        const char *name = lua_tolstring(L, -2, &nl);
        int vt = lua_type(L, -1);
        if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
            luaL_error(L, "request: header '%s' must be a string or a number, got %s", name, luaL_typename(L, -1));
        const char *value = lua_tolstring(L, -1, &vl); /* a number converts on this copy only */
        if (!is_token(name, nl)) luaL_error(L, "request: invalid header name '%s'", name);
        if (has_ctl(value, vl)) luaL_error(L, "request: header '%s' holds CR, LF or NUL", name);
        if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0)
            luaL_error(L, "request: header '%s' is made from the body, not given", name);
        if (strcasecmp(name, "Expect") == 0) *has_expect = 1;
        if (strcasecmp(name, "Content-Type") == 0) *has_type = 1;
        lua_pop(L, 1);
    }
}

/* Appends "name: value" to *list, the value without its leading and trailing
 * spaces and tabs (not part of it in HTTP); "name;" when nothing is left,
 * which libcurl sends as an empty header ("name:" with only blanks would
 * remove the header instead). 0, or -1 when out of memory. */
static int append_header(struct curl_slist **list, const char *name, size_t nl, const char *value, size_t vl) {
    while (vl > 0 && (value[0] == ' ' || value[0] == '\t')) value++, vl--;
    while (vl > 0 && (value[vl - 1] == ' ' || value[vl - 1] == '\t')) vl--;
    char stack[512], *line = stack;
    size_t n = nl + 2 + vl + 1;
    if (n > sizeof stack && !(line = malloc(n))) return -1;
    memcpy(line, name, nl);
    if (vl == 0) {
        line[nl] = ';';
        line[nl + 1] = '\0';
    } else {
        memcpy(line + nl, ": ", 2);
        memcpy(line + nl + 2, value, vl);
        line[nl + 2 + vl] = '\0';
    }
    struct curl_slist *next = curl_slist_append(*list, line);
    if (line != stack) free(line);
    if (!next) return -1;
    *list = next;
    return 0;
}

/* Builds the header list from the (checked) table at index 4; no Lua error
 * can happen here (lua_next over a table with string keys and the values
 * already seen). NULL with *oom set when out of memory. */
static struct curl_slist *build_headers(lua_State *L, int has_expect, int has_type, int *oom) {
    struct curl_slist *list = NULL;
    *oom = 0;
    /* no "Expect: 100-continue" round trip; no made-up form Content-Type */
    struct curl_slist *next;
    if (!has_expect) {
        if (!(next = curl_slist_append(list, "Expect:"))) goto fail; /* "Name:" removes libcurl's own */
        list = next;
    }
    if (!has_type) {
        if (!(next = curl_slist_append(list, "Content-Type:"))) goto fail;
        list = next;
    }
    if (!lua_istable(L, 4)) return list;
    lua_pushnil(L);
    while (lua_next(L, 4)) {
        size_t nl, vl;
        const char *name = lua_tolstring(L, -2, &nl);
        lua_pushvalue(L, -1); /* convert a copy: the key must stay untouched for lua_next */
        const char *value = lua_tolstring(L, -1, &vl);
        int rc = append_header(&list, name, nl, value, vl);
        lua_pop(L, 2);
        if (rc != 0) {
            lua_pop(L, 1); /* the key */
            goto fail;
        }
    }
    return list;
fail:
    curl_slist_free_all(list);
    *oom = 1;
    return NULL;
}

/* Pushes the collected "name:value\n" lines as a table. */
static void push_headers(lua_State *L, const ddb_buf *b) {
    lua_newtable(L);
    const char *p = b->p, *end = b->p + b->len;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        const char *colon = memchr(p, ':', (size_t)(nl - p));
        if (colon) {
            lua_pushlstring(L, p, (size_t)(colon - p));
            lua_pushvalue(L, -1);
            lua_rawget(L, -3);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_pushlstring(L, colon + 1, (size_t)(nl - colon - 1));
            } else {
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, colon + 1, (size_t)(nl - colon - 1));
                lua_concat(L, 3);
            }
            lua_rawset(L, -3);
        }
        p = nl + 1;
    }
}

/* h:request(method, url, headers, body) */
static int l_request(lua_State *L) {
    http_client *h = check_open(L);
    lua_settop(L, 5);
    ddb_guard_arm(L, 1, 1, &h->busy); /* at 6, before anything can allocate (and so run a finalizer) */
    size_t ml, ul, bl = 0;
    luaL_checktype(L, 2, LUA_TSTRING); /* strings only: no number converted to a method, URL or body */
    luaL_checktype(L, 3, LUA_TSTRING);
    const char *method = lua_tolstring(L, 2, &ml);
    const char *url = lua_tolstring(L, 3, &ul);
    luaL_argcheck(L, is_token(method, ml), 2, "an HTTP method (a token such as GET) expected");
    luaL_argcheck(L, strlen(url) == ul, 3, "URL must not contain NUL bytes");
    int has_expect, has_type;
    check_headers(L, &has_expect, &has_type);
    const char *body = NULL;
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TSTRING);
        body = lua_tolstring(L, 5, &bl);
    }
    luaL_argcheck(L, !body || strcmp(method, "HEAD") != 0, 5, "a HEAD request cannot have a body");

    int oom;
    struct curl_slist *list = build_headers(L, has_expect, has_type, &oom);
    if (oom) return luaL_error(L, "out of memory building request headers");
    int rc = ddb_transport_request(h->t, method, url, list, body, bl, &h->resp);
    curl_slist_free_all(list);
    ddb_response *r = &h->resp;
    if (rc != DDB_T_OK) {
        lua_pushnil(L);
        lua_pushstring(L, rc == DDB_T_TIMEOUT ? "Timeout" : rc == DDB_T_TOO_BIG ? "ResponseTooLarge" : "TransportError");
        lua_pushstring(L, r->error);
        return 3;
    }
    lua_pushinteger(L, r->status);
    lua_pushlstring(L, r->body.len ? r->body.p : "", r->body.len);
    push_headers(L, &r->headers);
    return 3;
}

static int l_close(lua_State *L) {
    http_client *h = luaL_checkudata(L, 1, DDB_HTTP_MT);
    if (h->busy) return luaL_error(L, "ddb http client closed while one of its requests is running (from a finalizer?)");
    http_release(h);
    return 0;
}

static int l_tostring(lua_State *L) {
    http_client *h = luaL_checkudata(L, 1, DDB_HTTP_MT);
    lua_pushstring(L, h->closed ? "ddb.core.http_client (closed)" : "ddb.core.http_client");
    return 1;
}

void ddb_open_http(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"request", l_request},
        {"close", l_close},
        {NULL, NULL},
    };
    ddb_new_class(L, DDB_HTTP_MT, methods, l_close, l_tostring);
    lua_pushcfunction(L, l_http_client);
    lua_setfield(L, -2, "http_client");
}

/* sigv4_lua.c: require("ddb.core").sign(req), the Lua face of sigv4.c.
 *
 * sign(req) -> {canonical_request, string_to_sign, signature, authorization,
 *               headers = {{name, value}, ...}}  (headers to add to the request)
 * req: method, path, query?, headers ({{name, value}, ...}), body?, region,
 *      service, access_key_id, secret_access_key, session_token?,
 *      timestamp? ("YYYYMMDDTHHMMSSZ", default now), normalize_path? (true),
 *      sign_body? (false).
 *
 * The closure keeps its state (derived-key cache, reusable output buffers) in
 * a userdata upvalue whose __gc cleanses it. While a call uses that state it
 * is marked busy (reset by __close, also when an error unwinds); a nested
 * call, from a metamethod or a finalizer run by an allocation, signs with a
 * fresh private state instead.
 *
 * For the specs only (spec/sigv4_fastpath_spec.lua), the prepared signer the
 * client signs with (ddb_sigv4_prep in sigv4.h), to compare with sign():
 *   _sigv4_prep{host, region, service, access_key_id, session_token?}
 *     -> p, or nil, err when ddb_sigv4_prep_new refuses the values
 *   p:sign(timestamp, secret_access_key, target, body)
 *     -> the Authorization value, or nil when the prepared signer refuses
 *        the request (or the key cannot be derived) */
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <openssl/crypto.h>

#include "module.h"
#include "sigv4.h"

#define SIGNER_MT "ddb.sigv4.signer"
#define PREP_MT "ddb.sigv4.prep"
#define MAX_HEADERS 100000

typedef struct {
    ddb_sigv4_cache cache;
    ddb_sigv4_out out;
    ddb_buf headers; /* ddb_header array of the request being signed */
    int busy;
} signer;

static int signer_gc(lua_State *L) {
    signer *s = luaL_checkudata(L, 1, SIGNER_MT);
    ddb_sigv4_out_free(&s->out);
    ddb_sigv4_cache_clear(&s->cache);
    ddb_buf_free(&s->headers);
    s->busy = 0;
    return 0;
}

static int signer_close(lua_State *L) {
    signer *s = luaL_checkudata(L, 1, SIGNER_MT);
    s->busy = 0;
    return 0;
}

static signer *new_signer(lua_State *L) {
    signer *s = lua_newuserdatauv(L, sizeof *s, 0);
    ddb_sigv4_cache_init(&s->cache);
    ddb_sigv4_out_init(&s->out);
    ddb_buf_init(&s->headers);
    s->busy = 0;
    luaL_setmetatable(L, SIGNER_MT);
    return s;
}

static int field_error(lua_State *L, const char *k, const char *msg) {
    return luaL_argerror(L, 1, lua_pushfstring(L, "field '%s': %s", k, msg));
}

#define REQUIRED 1
#define CSTRING 2 /* handed to C as a NUL-terminated string */

/* Pushes req[k] (the stack keeps it alive) and returns it, or NULL when
 * absent and optional. */
static const char *get_string(lua_State *L, const char *k, size_t *len, int flags) {
    size_t n = 0;
    int t = lua_getfield(L, 1, k);
    if (t == LUA_TNIL && !(flags & REQUIRED)) {
        if (len) *len = 0;
        return NULL;
    }
    if (t != LUA_TSTRING)
        field_error(L, k, lua_pushfstring(L, "string expected, got %s", luaL_typename(L, -1)));
    const char *s = lua_tolstring(L, -1, &n);
    if ((flags & CSTRING) && strlen(s) != n) field_error(L, k, "must not contain NUL bytes");
    if (len) *len = n;
    return s;
}

static int get_bool(lua_State *L, const char *k, int dflt) {
    int t = lua_getfield(L, 1, k), v = dflt;
    if (t == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (t != LUA_TNIL)
        field_error(L, k, lua_pushfstring(L, "boolean expected, got %s", luaL_typename(L, -1)));
    lua_pop(L, 1);
    return v;
}

/* Reads req.headers into s->headers, leaving every name and value on the stack. */
static void get_headers(lua_State *L, signer *s, ddb_sigv4_req *r) {
    int t = lua_getfield(L, 1, "headers");
    if (t != LUA_TTABLE)
        field_error(L, "headers", lua_pushfstring(L, "table expected, got %s", luaL_typename(L, -1)));
    int hidx = lua_gettop(L);
    lua_Integer n = luaL_len(L, hidx);
    if (n < 0 || n > MAX_HEADERS) field_error(L, "headers", "too many headers");
    luaL_checkstack(L, 2 * (int)n + 8, "too many headers");
    ddb_buf_reset(&s->headers);
    if (ddb_buf_reserve(&s->headers, (size_t)n * sizeof(ddb_header)) != 0) luaL_error(L, "sign: out of memory");
    ddb_header *h = (ddb_header *)(void *)s->headers.p;
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_geti(L, hidx, i) != LUA_TTABLE || lua_geti(L, -1, 1) != LUA_TSTRING ||
            lua_geti(L, -2, 2) != LUA_TSTRING)
            luaL_argerror(L, 1,
                          lua_pushfstring(L, "field 'headers[%I]': {name, value} pair of strings expected", i));
        h[i - 1].name = lua_tolstring(L, -2, &h[i - 1].name_len);
        h[i - 1].value = lua_tolstring(L, -1, &h[i - 1].value_len);
        lua_remove(L, -3); /* the pair; name and value stay */
    }
    r->headers = h;
    r->nheaders = (size_t)n;
}

static void push_pair(lua_State *L, int at, const char *name, const char *value, size_t len) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, name);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, value, len);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, at);
}

static int l_sign(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    signer *s = lua_touserdata(L, lua_upvalueindex(1));
    if (s->busy) {
        s = new_signer(L); /* nested call: private state, collected later */
    } else {
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_toclose(L, -1); /* __close clears busy on return and on error */
        s->busy = 1;
    }

    ddb_sigv4_req r;
    memset(&r, 0, sizeof r);
    char now[17];
    r.method = get_string(L, "method", NULL, REQUIRED | CSTRING);
    r.path = get_string(L, "path", &r.path_len, REQUIRED);
    r.query = get_string(L, "query", &r.query_len, 0);
    r.body = get_string(L, "body", &r.body_len, 0);
    r.region = get_string(L, "region", NULL, REQUIRED | CSTRING);
    r.service = get_string(L, "service", NULL, REQUIRED | CSTRING);
    r.access_key_id = get_string(L, "access_key_id", NULL, REQUIRED | CSTRING);
    r.secret_access_key = get_string(L, "secret_access_key", NULL, REQUIRED | CSTRING);
    r.session_token = get_string(L, "session_token", NULL, CSTRING);
    r.timestamp = get_string(L, "timestamp", NULL, CSTRING);
    if (r.timestamp) {
        if (!ddb_sigv4_valid_timestamp(r.timestamp))
            field_error(L, "timestamp", "UTC time formatted YYYYMMDDTHHMMSSZ expected");
    } else {
        time_t t = time(NULL);
        struct tm tm;
        if (t == (time_t)-1 || !gmtime_r(&t, &tm) || strftime(now, sizeof now, "%Y%m%dT%H%M%SZ", &tm) != 16)
            return luaL_error(L, "sign: cannot read the clock");
        r.timestamp = now;
    }
    r.normalize_path = get_bool(L, "normalize_path", 1);
    r.sign_body = get_bool(L, "sign_body", 0);
    get_headers(L, s, &r);

    const char *err = NULL;
    if (ddb_sigv4_sign(&r, &s->cache, &s->out, &err) != 0) return luaL_error(L, "sign: %s", err);

    const ddb_sigv4_out *o = &s->out;
    int token = r.session_token && *r.session_token, k = 0;
    lua_createtable(L, 0, 5);
    lua_pushlstring(L, o->canonical_request.p, o->canonical_request.len);
    lua_setfield(L, -2, "canonical_request");
    lua_pushlstring(L, o->string_to_sign.p, o->string_to_sign.len);
    lua_setfield(L, -2, "string_to_sign");
    lua_pushlstring(L, o->signature, 64);
    lua_setfield(L, -2, "signature");
    lua_pushlstring(L, o->authorization.p, o->authorization.len);
    lua_setfield(L, -2, "authorization");
    lua_createtable(L, 4, 0);
    push_pair(L, ++k, "X-Amz-Date", o->amz_date, 16);
    if (token) push_pair(L, ++k, "X-Amz-Security-Token", r.session_token, strlen(r.session_token));
    if (r.sign_body) push_pair(L, ++k, "X-Amz-Content-Sha256", o->content_sha256, 64);
    push_pair(L, ++k, "Authorization", o->authorization.p, o->authorization.len);
    lua_setfield(L, -2, "headers");
    return 1;
}

/* ---- test-only: the prepared signer (see the top of this file) */

typedef struct {
    ddb_sigv4_prep *p;
} prep_ud;

static int prep_gc(lua_State *L) {
    prep_ud *u = luaL_checkudata(L, 1, PREP_MT);
    ddb_sigv4_prep_free(u->p);
    u->p = NULL;
    return 0;
}

static int prep_tostring(lua_State *L) {
    lua_pushliteral(L, PREP_MT);
    return 1;
}

static int l_prep_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    size_t host_len;
    const char *host = get_string(L, "host", &host_len, REQUIRED);
    const char *region = get_string(L, "region", NULL, REQUIRED | CSTRING);
    const char *service = get_string(L, "service", NULL, REQUIRED | CSTRING);
    const char *akid = get_string(L, "access_key_id", NULL, REQUIRED | CSTRING);
    const char *token = get_string(L, "session_token", NULL, CSTRING);
    prep_ud *u = lua_newuserdatauv(L, sizeof *u, 2); /* user values: region, service */
    u->p = NULL;
    luaL_setmetatable(L, PREP_MT);
    lua_pushstring(L, region);
    lua_setiuservalue(L, -2, 1);
    lua_pushstring(L, service);
    lua_setiuservalue(L, -2, 2);
    const char *err = NULL;
    u->p = ddb_sigv4_prep_new(host, host_len, region, service, akid, token, &err);
    if (!u->p) {
        lua_pushnil(L);
        lua_pushstring(L, err ? err : "refused");
        return 2;
    }
    return 1;
}

static int l_prep_sign(lua_State *L) {
    prep_ud *u = luaL_checkudata(L, 1, PREP_MT);
    const char *ts = luaL_checkstring(L, 2);
    const char *secret = luaL_checkstring(L, 3);
    size_t target_len, body_len;
    const char *target = luaL_checklstring(L, 4, &target_len);
    const char *body = luaL_checklstring(L, 5, &body_len);
    luaL_argcheck(L, u->p != NULL, 1, "closed");
    lua_getiuservalue(L, 1, 1);
    lua_getiuservalue(L, 1, 2);
    const char *region = lua_tostring(L, -2), *service = lua_tostring(L, -1);
    unsigned char key[32];
    const char *line = NULL;
    size_t len = 0;
    if (ddb_sigv4_derive_key(secret, ts, region, service, key) == 0)
        line = ddb_sigv4_prep_sign(u->p, ts, key, target, target_len, body, body_len, &len);
    OPENSSL_cleanse(key, sizeof key);
    if (!line) {
        lua_pushnil(L);
        return 1;
    }
    size_t skip = sizeof DDB_SIGV4_AUTH_LINE_PREFIX - 1;
    lua_pushlstring(L, line + skip, len - skip);
    return 1;
}

void ddb_open_sigv4(lua_State *L) {
    if (luaL_newmetatable(L, SIGNER_MT)) {
        lua_pushcfunction(L, signer_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, signer_close);
        lua_setfield(L, -2, "__close");
        lua_pushliteral(L, "ddb.sigv4.signer");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    new_signer(L);
    lua_pushcclosure(L, l_sign, 1);
    lua_setfield(L, -2, "sign");
    static const luaL_Reg prep_methods[] = {{"sign", l_prep_sign}, {NULL, NULL}};
    ddb_new_class(L, PREP_MT, prep_methods, prep_gc, prep_tostring);
    lua_pushcfunction(L, l_prep_new);
    lua_setfield(L, -2, "_sigv4_prep");
}

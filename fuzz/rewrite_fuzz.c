/* rewrite_fuzz.c: libFuzzer target for stream record decoding and the
 * rewrite planner (src/rewrite.c, core.rewrite), run through a lua_State.
 *
 * Input: JSON text (decoded with ddb_json_decode, as stream events are),
 *   {"records": [...], "opts": {...}, "responses": [...], "inject": [...]}
 * or just the records array. The client handed to core.rewrite is a table
 * whose `call` (C) answers each request with the next canned response:
 * {"error": e} means `return nil, e`, anything else is returned as the
 * response; once they run out it answers nil, {code = "Exhausted"}. When
 * "inject" is given, opts.inject returns its values in turn (then nil).
 *
 * Checked beyond "no crash, no sanitizer report":
 *   - core.rewrite raises only for the documented wrong-type cases (records
 *     not a table, opts not a table or with a bad field);
 *   - every request it makes is JSON-encodable; a TransactWriteItems has 2
 *     to 100 actions in Delete/Put pairs of the same pk whose Put sk is
 *     later than the Delete sk (a row never moves back), and a 32-digit hex
 *     ClientRequestToken;
 *   - the summary adds up (applied + skipped + failed = processed = the
 *     number of records, one error per failed group, batchItemFailures only
 *     with a failure) and is JSON-encodable. */
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "json.h"
#include "module.h"

/* ------------------------------------------------------------ helpers */

static const char *sfield(lua_State *L, int idx, const char *k, size_t *len) {
    /* t[k].S as a string (raw reads), pushed; NULL when absent */
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushnil(L);
        return NULL;
    }
    lua_pushstring(L, k);
    lua_rawget(L, idx);
    if (lua_type(L, -1) != LUA_TTABLE) return NULL;
    lua_pushliteral(L, "S");
    lua_rawget(L, -2);
    lua_remove(L, -2);
    return lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, len) : NULL;
}

static int rawget_type(lua_State *L, int idx, const char *k) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_pushstring(L, k);
    return lua_rawget(L, idx);
}

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

static void check_encodable(lua_State *L, int idx, const char *what) {
    ddb_buf b;
    char err[256];
    ddb_buf_init(&b);
    int rc = ddb_json_encode(L, idx, &b, err, sizeof err);
    FUZZ_CHECK(rc == 0, "%s does not encode: %s", what, err);
    ddb_buf_free(&b);
}

static void check_transaction(lua_State *L, int params) {
    int top = lua_gettop(L);
    FUZZ_CHECK(rawget_type(L, params, "TransactItems") == LUA_TTABLE, "no TransactItems");
    int items = lua_gettop(L);
    lua_Unsigned n = lua_rawlen(L, items);
    FUZZ_CHECK(n >= 2 && n <= 100 && n % 2 == 0, "%u transaction actions", (unsigned)n);
    for (lua_Unsigned i = 1; i <= n; i += 2) {
        lua_rawgeti(L, items, (lua_Integer)i);
        FUZZ_CHECK(rawget_type(L, -1, "Delete") == LUA_TTABLE, "action %u is not a Delete", (unsigned)i);
        rawget_type(L, -1, "Key");
        size_t dpk_len = 0, dsk_len = 0, ppk_len = 0, psk_len = 0;
        const char *dpk = sfield(L, -1, "pk", &dpk_len);
        const char *dsk = sfield(L, -2, "sk", &dsk_len);
        lua_rawgeti(L, items, (lua_Integer)i + 1);
        FUZZ_CHECK(rawget_type(L, -1, "Put") == LUA_TTABLE, "action %u is not a Put", (unsigned)i + 1);
        rawget_type(L, -1, "Item");
        const char *ppk = sfield(L, -1, "pk", &ppk_len);
        const char *psk = sfield(L, -2, "sk", &psk_len);
        FUZZ_CHECK(dpk && ppk && dpk_len == ppk_len && memcmp(dpk, ppk, dpk_len) == 0,
                   "Delete and Put of another pk");
        FUZZ_CHECK(dsk && psk && cmp_bytes(psk, psk_len, dsk, dsk_len) > 0, "a row moves back: %.*s -> %.*s",
                   (int)dsk_len, dsk ? dsk : "", (int)psk_len, psk ? psk : "");
        lua_settop(L, items);
    }
    size_t tl = 0;
    FUZZ_CHECK(rawget_type(L, params, "ClientRequestToken") == LUA_TSTRING, "no ClientRequestToken");
    const char *tok = lua_tolstring(L, -1, &tl);
    FUZZ_CHECK(tl == 32 && strspn(tok, "0123456789abcdef") == 32, "bad ClientRequestToken");
    lua_settop(L, top);
}

/* ------------------------------------------------------------ fake client */

/* call(self, op, params): upvalue 1 the canned responses, 2 the next index. */
static int fake_call(lua_State *L) {
    size_t oplen;
    const char *op = luaL_checklstring(L, 2, &oplen);
    FUZZ_CHECK(lua_type(L, 3) == LUA_TTABLE, "params not a table");
    int known = strcmp(op, "Query") == 0 || strcmp(op, "GetItem") == 0 || strcmp(op, "TransactWriteItems") == 0;
    FUZZ_CHECK(known, "unexpected operation %s", op);
    check_encodable(L, 3, op);
    if (strcmp(op, "TransactWriteItems") == 0) {
        check_transaction(L, 3);
    } else {
        FUZZ_CHECK(rawget_type(L, 3, "TableName") == LUA_TSTRING, "%s without TableName", op);
        lua_pop(L, 1);
    }

    lua_Integer next = lua_tointeger(L, lua_upvalueindex(2));
    lua_pushinteger(L, next + 1);
    lua_replace(L, lua_upvalueindex(2));
    if (lua_type(L, lua_upvalueindex(1)) != LUA_TTABLE || (lua_Unsigned)next > lua_rawlen(L, lua_upvalueindex(1))) {
        lua_pushnil(L);
        lua_createtable(L, 0, 2);
        lua_pushliteral(L, "Exhausted");
        lua_setfield(L, -2, "code");
        lua_pushliteral(L, "no more canned responses");
        lua_setfield(L, -2, "message");
        return 2;
    }
    lua_rawgeti(L, lua_upvalueindex(1), next);
    if (rawget_type(L, -1, "error") != LUA_TNIL) { /* {"error": e}: nil, e */
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pop(L, 1);
    return 1;
}

/* inject(stage, group): upvalue 1 the values, 2 the next index. */
static int fake_inject(lua_State *L) {
    FUZZ_CHECK(lua_type(L, 1) == LUA_TSTRING && lua_type(L, 2) == LUA_TSTRING, "inject arguments");
    lua_Integer next = lua_tointeger(L, lua_upvalueindex(2));
    lua_pushinteger(L, next + 1);
    lua_replace(L, lua_upvalueindex(2));
    if (lua_type(L, lua_upvalueindex(1)) != LUA_TTABLE) return 0;
    lua_rawgeti(L, lua_upvalueindex(1), next);
    return 1;
}

/* ------------------------------------------------------------ the run */

static lua_Integer get_int(lua_State *L, int t, const char *k) {
    FUZZ_CHECK(rawget_type(L, t, k) == LUA_TNUMBER && lua_isinteger(L, -1), "summary.%s not an integer", k);
    lua_Integer v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

static void check_summary(lua_State *L, int s, lua_Unsigned nrec) {
    FUZZ_CHECK(lua_type(L, s) == LUA_TTABLE, "summary is not a table");
    lua_Integer processed = get_int(L, s, "processed"), applied = get_int(L, s, "applied"),
                skipped = get_int(L, s, "skipped"), failed = get_int(L, s, "failed"), moved = get_int(L, s, "moved");
    FUZZ_CHECK((lua_Unsigned)processed == nrec, "processed %lld of %llu records", (long long)processed,
               (unsigned long long)nrec);
    FUZZ_CHECK(applied >= 0 && skipped >= 0 && failed >= 0 && moved >= 0, "negative count");
    FUZZ_CHECK(applied + skipped + failed == processed, "counts do not add up");
    FUZZ_CHECK(rawget_type(L, s, "errors") == LUA_TTABLE, "no errors array");
    lua_Unsigned nerr = lua_rawlen(L, -1);
    lua_pop(L, 1);
    FUZZ_CHECK((nerr > 0) == (failed > 0), "%llu errors with %lld failed records", (unsigned long long)nerr,
               (long long)failed);
    FUZZ_CHECK(rawget_type(L, s, "batchItemFailures") == LUA_TTABLE, "no batchItemFailures");
    lua_Unsigned nbf = lua_rawlen(L, -1);
    lua_pop(L, 1);
    FUZZ_CHECK(nbf == (failed > 0 ? 1u : 0u), "%llu batchItemFailures with %lld failed",
               (unsigned long long)nbf, (long long)failed);
    check_encodable(L, s, "the summary");
}

/* Allowed raises: the documented wrong-type cases. */
static int documented_raise(const char *msg) {
    return msg && (strstr(msg, "bad argument #2 to") || strstr(msg, "bad argument #3 to") ||
                   strstr(msg, "rewrite: opts."));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *in = fuzz_copy(data, size);
    lua_State *L = luaL_newstate();
    if (!L) abort();
    lua_newtable(L);
    ddb_open_json(L);
    ddb_open_rewrite(L);
    lua_getfield(L, -1, "rewrite");
    lua_replace(L, 1); /* 1: core.rewrite */

    char err[256];
    if (ddb_json_decode(L, in, size, err, sizeof err) != 0) goto done;
    int doc = lua_gettop(L); /* 2 */
    int records, opts, responses, inject;
    if (lua_type(L, doc) == LUA_TTABLE && rawget_type(L, doc, "records") != LUA_TNIL) {
        records = lua_gettop(L);
        rawget_type(L, doc, "opts");
        opts = lua_gettop(L);
        rawget_type(L, doc, "responses");
        responses = lua_gettop(L);
        rawget_type(L, doc, "inject");
        inject = lua_gettop(L);
    } else {
        if (lua_type(L, doc) == LUA_TTABLE) lua_pop(L, 1);
        records = doc;
        lua_pushnil(L);
        opts = lua_gettop(L);
        lua_pushnil(L);
        responses = lua_gettop(L);
        lua_pushnil(L);
        inject = lua_gettop(L);
    }
    if (lua_type(L, opts) == LUA_TTABLE && !lua_isnil(L, inject)) {
        lua_pushvalue(L, inject);
        lua_pushinteger(L, 1);
        lua_pushcclosure(L, fake_inject, 2);
        lua_setfield(L, opts, "inject");
    }

    lua_pushvalue(L, 1);
    lua_createtable(L, 0, 1); /* the client */
    lua_pushvalue(L, responses);
    lua_pushinteger(L, 1);
    lua_pushcclosure(L, fake_call, 2);
    lua_setfield(L, -2, "call");
    lua_pushvalue(L, records);
    lua_pushvalue(L, opts);
    int base = lua_gettop(L) - 4;
    int rc = lua_pcall(L, 3, LUA_MULTRET, 0);
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        FUZZ_CHECK(rc == LUA_ERRRUN && documented_raise(msg), "core.rewrite raised: %s", msg ? msg : "(no message)");
        goto done;
    }
    FUZZ_CHECK(lua_gettop(L) == base + 1, "core.rewrite returned %d values", lua_gettop(L) - base);
    check_summary(L, -1, lua_type(L, records) == LUA_TTABLE ? lua_rawlen(L, records) : 0);
done:
    lua_close(L);
    free(in);
    return 0;
}

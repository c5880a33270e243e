/* json_fuzz.c: libFuzzer target for the JSON codec (src/json.c).
 *
 * Input: JSON text (any bytes). Each input gets a fresh lua_State, so a
 * finding replays from its input alone. Checked beyond "no crash, no
 * sanitizer report":
 *   - ddb_json_decode leaves the stack as it was on failure and pushes one
 *     value on success, with a NUL-terminated one-line message on failure;
 *   - the round trip: v0 = decode(input) encodes (anything decoded can be
 *     encoded again) as e1; v1 = decode(e1) equals v0 (integral floats may
 *     come back as integers: json.h encodes 3.0 as 3), and is a fixed point:
 *     v2 = decode(encode(v1)) equals v1 exactly (subtypes included, -0.0
 *     kept) and its encoding has the length of e1 (key order may differ:
 *     it follows Lua's table iteration);
 *   - under an allocator that fails after a budget of allocations (taken
 *     from the input), decode and encode either succeed with the same
 *     result or fail cleanly (a Lua memory error), never crash or leak. */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "json.h"
#include "module.h"

/* ------------------------------------------------------------ allocator */

typedef struct {
    long budget; /* allocations (growths) left; < 0: unlimited */
} alloc_ud;

static void *fuzz_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    alloc_ud *a = ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (a->budget == 0 && (ptr == NULL || nsize > osize)) return NULL;
    if (a->budget > 0 && (ptr == NULL || nsize > osize)) a->budget--;
    return realloc(ptr, nsize);
}

static lua_State *new_state(alloc_ud *a) {
    lua_State *L = lua_newstate(fuzz_alloc, a);
    if (!L) abort();
    lua_newtable(L); /* the module table ddb_open_json adds to */
    ddb_open_json(L);
    lua_pop(L, 1);
    return L;
}

/* ------------------------------------------------------------ equality */

static int is_array(lua_State *L, int idx) {
    int r = 0;
    if (lua_getmetatable(L, idx)) {
        r = lua_getfield(L, -1, "__name") == LUA_TSTRING && strcmp(lua_tostring(L, -1), "ddb.array") == 0;
        lua_pop(L, 2);
    }
    return r;
}

/* Numbers a and b are the same JSON number: exact = same subtype and value
 * (floats bitwise, so -0.0 differs from 0.0); else an integer equals an
 * integral float of the same value. */
static int same_number(lua_State *L, int a, int b, int exact) {
    int ai = lua_isinteger(L, a), bi = lua_isinteger(L, b);
    if (ai && bi) return lua_tointeger(L, a) == lua_tointeger(L, b);
    if (!ai && !bi) {
        double x = lua_tonumber(L, a), y = lua_tonumber(L, b);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    if (exact) return 0;
    lua_Integer i = ai ? lua_tointeger(L, a) : lua_tointeger(L, b);
    double f = ai ? lua_tonumber(L, b) : lua_tonumber(L, a);
    return f == (double)i && fabs(f) < 9007199254740992.0 && !(f == 0 && signbit(f));
}

static int same(lua_State *L, int a, int b, int exact, int depth);

static size_t count_keys(lua_State *L, int t) {
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        n++;
    }
    return n;
}

/* Every key of table a is in b with the same value. */
static int subset(lua_State *L, int a, int b, int exact, int depth) {
    lua_pushnil(L);
    while (lua_next(L, a)) {
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        int ok = !lua_isnil(L, -1) && same(L, lua_gettop(L) - 1, lua_gettop(L), exact, depth + 1);
        lua_pop(L, 2);
        if (!ok) {
            lua_pop(L, 1);
            return 0;
        }
    }
    return 1;
}

static int same(lua_State *L, int a, int b, int exact, int depth) {
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    if (depth > DDB_JSON_MAX_DEPTH + 2 || !lua_checkstack(L, 8)) abort();
    int t = lua_type(L, a);
    if (t != lua_type(L, b)) return 0;
    switch (t) {
    case LUA_TNUMBER: return same_number(L, a, b, exact);
    case LUA_TSTRING: {
        size_t la, lb;
        const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
        return la == lb && memcmp(sa, sb, la) == 0;
    }
    case LUA_TBOOLEAN: return lua_toboolean(L, a) == lua_toboolean(L, b);
    case LUA_TLIGHTUSERDATA: return lua_touserdata(L, a) == NULL && lua_touserdata(L, b) == NULL;
    case LUA_TTABLE:
        if (is_array(L, a) != is_array(L, b)) {
            /* {} decodes as an empty plain table and [] as an empty array: both
             * kinds are kept, so a mismatch is a bug */
            return 0;
        }
        if (lua_rawlen(L, a) != lua_rawlen(L, b) || count_keys(L, a) != count_keys(L, b)) return 0;
        return subset(L, a, b, exact, depth); /* same key count: the same keys */
    default: return 0;
    }
}

/* ------------------------------------------------------------ target */

static void check_message(const char *err) {
    size_t n = strnlen(err, 256);
    FUZZ_CHECK(n > 0 && n < 256, "error message empty or unterminated");
    FUZZ_CHECK(memchr(err, '\n', n) == NULL, "error message has a newline: %s", err);
}

/* Encodes the value on top into a fresh string pushed on the stack; 0, or
 * -1 with the message in err (nothing pushed). */
static ddb_buf enc_buf; /* static: pushing the result may raise (memory) */

static int encode_top(lua_State *L, char *err, size_t errlen) {
    ddb_buf *b = &enc_buf;
    ddb_buf_reset(b);
    int top = lua_gettop(L);
    int rc = ddb_json_encode(L, -1, b, err, errlen);
    FUZZ_CHECK(lua_gettop(L) == top, "encode changed the stack");
    if (rc == 0) {
        FUZZ_CHECK(b->p != NULL && b->p[b->len] == '\0', "encode output not NUL-terminated");
        lua_pushlstring(L, b->p, b->len);
    }
    return rc;
}

/* The round trip under L; returns 1 when the input decoded and encoded.
 * Raises only on a Lua memory error (the allocator's budget). Leaves e1 on
 * the stack. Under memory pressure (!full) only decode and encode, whose
 * failures may then be any clean error ("out of Lua stack" included). */
static int round_trip(lua_State *L, const char *in, size_t n, int full) {
    char err[256];
    int top = lua_gettop(L);
    memset(err, 0x55, sizeof err);
    if (ddb_json_decode(L, in, n, err, sizeof err) != 0) {
        FUZZ_CHECK(lua_gettop(L) == top, "failed decode changed the stack");
        check_message(err);
        return 0;
    }
    FUZZ_CHECK(lua_gettop(L) == top + 1, "decode pushed %d values", lua_gettop(L) - top);
    int v0 = lua_gettop(L);
    if (encode_top(L, err, sizeof err) != 0) {
        check_message(err);
        FUZZ_CHECK(!full, "a decoded value does not encode: %s", err);
        lua_settop(L, top);
        return 0;
    }
    int e1 = lua_gettop(L);
    if (!full) {
        lua_replace(L, v0);
        return 1;
    }
    size_t l1;
    const char *s1 = lua_tolstring(L, e1, &l1);
    FUZZ_CHECK(ddb_json_decode(L, s1, l1, err, sizeof err) == 0, "encode output does not decode: %s\n%s", err,
               s1);
    int v1 = lua_gettop(L);
    FUZZ_CHECK(same(L, v0, v1, 0, 0), "decode(encode(v)) differs from v: %s", s1);
    FUZZ_CHECK(encode_top(L, err, sizeof err) == 0, "a decoded value does not encode: %s", err);
    int e2 = lua_gettop(L);
    size_t l2;
    const char *s2 = lua_tolstring(L, e2, &l2);
    FUZZ_CHECK(l2 == l1, "second encoding has another length:\n%s\n%s", s1, s2);
    FUZZ_CHECK(ddb_json_decode(L, s2, l2, err, sizeof err) == 0, "second encoding does not decode: %s", err);
    FUZZ_CHECK(same(L, v1, lua_gettop(L), 1, 0), "not a fixed point:\n%s\n%s", s1, s2);
    lua_settop(L, e1);
    lua_replace(L, v0);
    return 1;
}

typedef struct {
    const char *in;
    size_t n;
    int full, decoded;
} trip_args;

static int protected_trip(lua_State *L) {
    trip_args *t = lua_touserdata(L, 1);
    lua_settop(L, 0);
    t->decoded = round_trip(L, t->in, t->n, t->full);
    return lua_gettop(L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *in = fuzz_copy(data, size);
    alloc_ud a = {-1};
    lua_State *L = new_state(&a);
    trip_args t = {in, size, 1, 0};
    lua_pushcfunction(L, protected_trip);
    lua_pushlightuserdata(L, &t);
    int rc = lua_pcall(L, 1, 1, 0);
    FUZZ_CHECK(rc == LUA_OK, "round trip raised: %s", lua_tostring(L, -1));
    size_t elen = 0;
    const char *e1 = t.decoded ? lua_tolstring(L, -1, &elen) : NULL;
    char *expect = e1 ? fuzz_copy(e1, elen) : NULL;
    lua_close(L);

    /* again with a failing allocator: the budget from the input's length and
     * first bytes, so that every allocation point gets its turn */
    unsigned h = (unsigned)size * 31u;
    for (size_t i = 0; i < size && i < 4; i++) h = h * 131u + data[i];
    alloc_ud b = {-1};
    L = new_state(&b);
    b.budget = (long)(h % 64);
    trip_args t2 = {in, size, 0, 0};
    lua_pushcfunction(L, protected_trip);
    lua_pushlightuserdata(L, &t2);
    rc = lua_pcall(L, 1, 1, 0);
    if (rc == LUA_OK && t2.decoded) {
        FUZZ_CHECK(expect != NULL, "decoded only under memory pressure");
        size_t l;
        lua_tolstring(L, -1, &l);
        /* same encoding length (key order may differ with other table sizes) */
        FUZZ_CHECK(l == elen, "encoding under memory pressure differs");
    } else if (rc != LUA_OK) {
        FUZZ_CHECK(rc == LUA_ERRMEM, "raised other than a memory error: %s", lua_tostring(L, -1));
    }
    b.budget = -1;
    lua_close(L);
    free(expect);
    free(in);
    return 0;
}

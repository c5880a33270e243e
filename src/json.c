/* json.c: JSON codec for Lua 5.4 values (see json.h), plus the Lua API:
 *   json_encode(v) -> string          raises on values JSON cannot carry
 *   json_decode(s) -> value | nil, msg
 *   null                              lightuserdata NULL, JSON null
 *   array_mt                          metatable marking a table as an array
 *   array([t]) -> t                   sets array_mt on t (or a new table)
 *
 * Encoder: one recursive pass over the value, appending into a ddb_buf.
 * Decoder: recursive descent over the input; the elements of an array are
 * first collected on the Lua stack so the table can be created with its
 * exact size (up to CHUNK entries; beyond that they go straight in); an
 * object's table is sized by the previous object at the same depth and its
 * members go straight in; strings without escapes are pushed directly from
 * the input, short ones through a per-state cache. */
#include "json.h"

#include <errno.h>
#include <float.h>
#include <lauxlib.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

_Static_assert(sizeof(lua_Number) == sizeof(double), "ddb json assumes lua_Number is double");
_Static_assert(sizeof(lua_Integer) == 8, "ddb json assumes a 64-bit lua_Integer");

/* Registry key (its address) of the array metatable. */
static const char array_mt_key = 'a';

/* Array elements collected on the Lua stack before the table is created. */
#define CHUNK 32
/* Object tables are sized by the last object at the same depth (dec_object),
 * for this many depths, up to this many members. */
#define OBJ_HINT_DEPTH 32
#define OBJ_HINT_MAX 64

/* ------------------------------------------------------------------ */
/* Byte scanning shared by the encoder and the decoder                 */

static inline int is_plain(unsigned c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

/* First byte in [p, end) that is not plain printable ASCII (a control
 * character, '"', '\\' or a byte >= 0x80), or end. Eight bytes at a time. */
static inline const unsigned char *skip_plain(const unsigned char *p, const unsigned char *end) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (end - p >= 8) {
        uint64_t v, q, b, m;
        memcpy(&v, p, 8);
        q = v ^ (ones * '"');
        b = v ^ (ones * '\\');
        /* high bit set, byte < 0x20, byte == '"', byte == '\\': a flag in
         * every such byte (and maybe in bytes after the first one, from a
         * borrow; never before it) */
        m = (v | ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
        if (m) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + (__builtin_ctzll(m) >> 3); /* the first flagged byte is the first special one */
#else
            break;
#endif
        }
        p += 8;
    }
    size_t r = (size_t)(end - p);
    if (r >= 4) { /* the last 1..7 bytes as two overlapping 4-byte loads: none special, or find which */
        uint32_t x, y;
        memcpy(&x, p, 4);
        memcpy(&y, end - 4, 4);
        uint64_t v = x | (uint64_t)y << 32, q = v ^ (ones * '"'), b = v ^ (ones * '\\');
        if (!((v | ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs)) return end;
    }
    while (p < end && is_plain(*p)) p++;
    return p;
}

/* Length (2..4) of the well-formed UTF-8 sequence at p (*p >= 0x80), or 0
 * for anything else: stray continuation, overlong, surrogate, > U+10FFFF,
 * truncated. */
static inline int utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t avail = (size_t)(end - p);
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (avail >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (avail < 3 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
        return (p[1] >= lo && p[1] <= hi) ? 3 : 0;
    }
    if (c < 0xF5) {
        if (avail < 4 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
        return (p[1] >= lo && p[1] <= hi) ? 4 : 0;
    }
    return 0;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Encoder                                                             */

typedef struct {
    lua_State *L;
    ddb_buf *out;
    char *err;
    size_t errlen;
    int mt; /* stack index of the array metatable (or nil) */
} enc_t;

static int enc_value(enc_t *e, int idx, int depth);

/* Inline appends for the common case that the bytes fit; they leave the
 * content without its NUL, which ddb_json_encode puts back at the end. */
static inline void put(ddb_buf *b, const void *s, size_t n) {
    if (b->cap - b->len > n) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    } else {
        ddb_buf_add(b, s, n);
    }
}

static inline void put_c(ddb_buf *b, char c) {
    if (b->cap - b->len > 1) b->p[b->len++] = c;
    else ddb_buf_addc(b, c);
}

/* The string s[0..len) from p, its first byte to escape or check, on. */
static void enc_string_escaped(enc_t *e, const char *s, size_t len, const unsigned char *p, int *bad) {
    static const char hex[] = "0123456789abcdef";
    ddb_buf *b = e->out;
    const unsigned char *end = (const unsigned char *)s + len, *run = (const unsigned char *)s;
    if (ddb_buf_reserve(b, len + 2) != 0) return;
    put_c(b, '"');
    for (;;) {
        p = skip_plain(p, end);
        if (p == end) break;
        unsigned c = *p;
        if (c >= 0x80) {
            int n = utf8_len(p, end);
            if (!n) {
                *bad = 1;
                return;
            }
            p += n;
            continue;
        }
        put(b, run, (size_t)(p - run));
        char esc[6] = {'\\', 0, '0', '0', 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        put(b, esc, elen);
        run = ++p;
    }
    put(b, run, (size_t)(end - run));
    put_c(b, '"');
}

/* Appends s[0..len) as a JSON string; *bad = 1 when it is not valid UTF-8.
 * Inline: most strings are printable ASCII without quotes or backslashes,
 * copied in one piece. */
static inline void enc_string(enc_t *e, const char *s, size_t len, int *bad) {
    ddb_buf *b = e->out;
    const unsigned char *p = skip_plain((const unsigned char *)s, (const unsigned char *)s + len);
    if (p != (const unsigned char *)s + len) {
        enc_string_escaped(e, s, len, p, bad);
        return;
    }
    if (b->cap - b->len > len + 2 || ddb_buf_reserve(b, len + 2) == 0) {
        char *o = b->p + b->len;
        o[0] = '"';
        memcpy(o + 1, s, len);
        o[len + 1] = '"';
        b->len += len + 2;
    }
}

static void enc_integer(ddb_buf *b, lua_Integer v) {
    char tmp[24], *q = tmp + sizeof tmp;
    lua_Unsigned u = v < 0 ? (lua_Unsigned)0 - (lua_Unsigned)v : (lua_Unsigned)v;
    do {
        *--q = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (v < 0) *--q = '-';
    put(b, q, (size_t)(tmp + sizeof tmp - q));
}

static int enc_float(enc_t *e, double x) {
    ddb_buf *b = e->out;
    if (isnan(x) || isinf(x)) {
        set_err(e->err, e->errlen, "cannot encode %s", isnan(x) ? "NaN" : "infinity");
        return -1;
    }
    if (x == 0) { /* keep the sign of -0.0: "-0" would decode as the integer 0 */
        if (signbit(x)) put(b, "-0.0", 4);
        else put_c(b, '0');
        return 0;
    }
    if (x > -9007199254740992.0 && x < 9007199254740992.0 && x == (double)(lua_Integer)x) {
        enc_integer(b, (lua_Integer)x); /* integral and |x| < 2^53: exact */
        return 0;
    }
    /* Shortest of %.15g/%.16g/%.17g that reads back exactly (%.17g always
     * does). strtod reads what snprintf wrote in the same locale. */
    char tmp[64];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, x);
        if (prec == 17 || strtod(tmp, NULL) == x) break;
    }
    if (n < 0 || (size_t)n >= sizeof tmp) {
        set_err(e->err, e->errlen, "cannot format number");
        return -1;
    }
    /* Normalise the locale's decimal point (maybe several bytes) to '.'. */
    char out[sizeof tmp + 2];
    size_t o = 0;
    int intlike = 1;
    for (int i = 0; i < n;) {
        char c = tmp[i];
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e') {
            if (c == 'e') intlike = 0;
            out[o++] = c;
            i++;
        } else {
            out[o++] = '.';
            intlike = 0;
            while (i < n && !(tmp[i] >= '0' && tmp[i] <= '9') && tmp[i] != 'e') i++;
        }
    }
    if (intlike) { /* e.g. 2^53 -> "9007199254740992.0": stays a float */
        out[o++] = '.';
        out[o++] = '0';
    }
    put(b, out, o);
    return 0;
}

static int enc_array(enc_t *e, int idx, lua_Unsigned n, int depth) {
    lua_State *L = e->L;
    int top = lua_gettop(L);
    put_c(e->out, '[');
    for (lua_Unsigned i = 1; i <= n; i++) {
        if (i > 1) put_c(e->out, ',');
        lua_rawgeti(L, idx, (lua_Integer)i);
        if (enc_value(e, top + 1, depth + 1) != 0) return -1;
        lua_settop(L, top);
    }
    put_c(e->out, ']');
    return 0;
}

/* Encodes one object member: key at top + 1 (a string), value at top + 2
 * (at nesting depth `depth`); pops the value. */
static int enc_member(enc_t *e, int top, int first, int depth) {
    lua_State *L = e->L;
    size_t klen;
    const char *k = lua_tolstring(L, top + 1, &klen);
    int bad = 0;
    if (!first) put_c(e->out, ',');
    enc_string(e, k, klen, &bad);
    if (bad) {
        set_err(e->err, e->errlen, "invalid UTF-8 in string");
        return -1;
    }
    put_c(e->out, ':');
    if (enc_value(e, top + 2, depth) != 0) return -1;
    lua_settop(L, top + 1);
    return 0;
}

/* A table is an array when it carries array_mt (elements 1..rawlen), or
 * when its keys are exactly 1..n (n = rawlen > 0); an object when its keys
 * are all strings ({} included); anything else is an error. The first key
 * lua_next gives decides which check runs, so an object costs no rawlen. */
static int enc_table(enc_t *e, int idx, int depth) {
    lua_State *L = e->L;
    static const char mixed[] = "table has mixed or non-string keys";
    if (depth >= DDB_JSON_MAX_DEPTH) {
        set_err(e->err, e->errlen, "nesting deeper than %d levels (or a cycle)", DDB_JSON_MAX_DEPTH);
        return -1;
    }
    /* each level holds at most a key and a value, plus a metatable for a
     * moment: room for the next 8 levels (17 slots; 24 asked), checked every 8 */
    if ((depth & 7) == 0 && !lua_checkstack(L, 24)) {
        set_err(e->err, e->errlen, "out of Lua stack");
        return -1;
    }
    if (lua_getmetatable(L, idx)) {
        int is_array = lua_rawequal(L, -1, e->mt);
        lua_pop(L, 1);
        if (is_array) return enc_array(e, idx, lua_rawlen(L, idx), depth);
    }
    int top = lua_gettop(L);
    lua_pushnil(L);
    if (!lua_next(L, idx)) { /* empty: an object */
        put(e->out, "{}", 2);
        return 0;
    }
    if (lua_type(L, top + 1) == LUA_TSTRING) {
        put_c(e->out, '{');
        if (enc_member(e, top, 1, depth + 1) != 0) return -1;
        while (lua_next(L, idx)) {
            if (lua_type(L, top + 1) != LUA_TSTRING) goto bad_keys;
            if (enc_member(e, top, 0, depth + 1) != 0) return -1;
        }
        put_c(e->out, '}');
        return 0;
    }
    lua_pop(L, 2); /* the first key and value: an array if the keys are exactly 1..n */
    lua_Unsigned n = lua_rawlen(L, idx), count = 0;
    if (n == 0) goto bad_keys;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1)) goto bad_keys;
        lua_Integer k = lua_tointeger(L, -1);
        if (k < 1 || (lua_Unsigned)k > n) goto bad_keys;
        count++;
    }
    if (count != n) goto bad_keys;
    return enc_array(e, idx, n, depth);
bad_keys:
    set_err(e->err, e->errlen, "%s", mixed);
    return -1;
}

static int enc_value(enc_t *e, int idx, int depth) {
    lua_State *L = e->L;
    int t = lua_type(L, idx);
    switch (t) {
    case LUA_TNIL: put(e->out, "null", 4); return 0;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) put(e->out, "true", 4);
        else put(e->out, "false", 5);
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            enc_integer(e->out, lua_tointeger(L, idx));
            return 0;
        }
        return enc_float(e, (double)lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        int bad = 0;
        enc_string(e, s, len, &bad);
        if (bad) {
            set_err(e->err, e->errlen, "invalid UTF-8 in string");
            return -1;
        }
        return 0;
    }
    case LUA_TTABLE: return enc_table(e, idx, depth);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            put(e->out, "null", 4);
            return 0;
        }
        break;
    default: break;
    }
    set_err(e->err, e->errlen, "cannot encode a %s", lua_typename(L, t));
    return -1;
}

int ddb_json_encode(lua_State *L, int idx, ddb_buf *out, char *err, size_t errlen) {
    int top = lua_gettop(L);
    size_t start = out->len;
    idx = lua_absindex(L, idx);
    if (!lua_checkstack(L, 4)) {
        set_err(err, errlen, "out of Lua stack");
        return -1;
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    enc_t e = {L, out, err, errlen, lua_gettop(L)};
    int rc = enc_value(&e, idx, 0);
    lua_settop(L, top);
    if (rc == 0 && !ddb_buf_ok(out)) {
        set_err(err, errlen, "out of memory");
        rc = -1;
    }
    if (rc != 0) out->len = start;
    if (out->p) out->p[out->len] = '\0';
    return rc;
}

/* ------------------------------------------------------------------ */
/* Decoder                                                             */

/* Short strings the decoder made recently, so that pushing one again (a
 * key, a repeated value) is a table read instead of Lua's interning (which
 * hashes every byte). One per Lua state: a userdata (registry, key
 * &strcache_key) whose uservalue is a table holding the strings at
 * [slot + 1]; the userdata holds a copy of each one's bytes. Direct-mapped:
 * a new string replaces what its slot held. Strings are immutable and Lua
 * interns short ones anyway, so handing out the cached one is the same value. */
#define STRCACHE_SLOTS 512 /* a power of two */
#define STRCACHE_MAXLEN 40 /* LUAI_MAXSHORTLEN: longer strings are not interned by Lua either */

typedef struct {
    unsigned char len[STRCACHE_SLOTS]; /* 0xFF: empty */
    char bytes[STRCACHE_SLOTS][STRCACHE_MAXLEN];
} strcache;

static const char strcache_key = 's';

typedef struct {
    lua_State *L;
    const unsigned char *s, *p, *end;
    char *err;
    size_t errlen;
    int mt;       /* stack index of the array metatable (or nil) */
    strcache *sc; /* NULL: none */
    int sc_tab;   /* stack index of its string table */
    unsigned char obj_hint[OBJ_HINT_DEPTH]; /* members of the last object closed at each depth */
} dec_t;

/* The bytes of p[0..len) for len < 8 as one word, without a call to
 * memcpy: two overlapping 4-byte loads (len 4..7), or the first, middle and
 * last byte (len 1..3). Equal words mean equal strings of that length. */
static inline uint64_t short_word(const unsigned char *p, size_t len) {
    if (len >= 4) {
        uint32_t x, y;
        memcpy(&x, p, 4);
        memcpy(&y, p + len - 4, 4);
        return x | (uint64_t)y << 32;
    }
    if (len == 0) return 0;
    return p[0] | (uint64_t)p[len >> 1] << 8 | (uint64_t)p[len - 1] << 16;
}

/* From the first and the last 8 bytes (keys and timestamps with a common
 * prefix differ at the end). */
static inline unsigned strcache_slot(const unsigned char *p, size_t len) {
    uint64_t a, b = 0;
    if (len >= 8) {
        memcpy(&a, p, 8);
        memcpy(&b, p + len - 8, 8);
    } else {
        a = short_word(p, len);
    }
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ULL) ^ len) * 0xD6E8FEB86659FD93ULL;
    return (unsigned)(h >> 40) & (STRCACHE_SLOTS - 1);
}

/* a[0..len) == b[0..len), len <= STRCACHE_MAXLEN, in 8-byte words (the last
 * one overlapping) instead of a call to memcmp. */
static inline int short_eq(const unsigned char *a, const unsigned char *b, size_t len) {
    uint64_t x, y;
    if (len < 8) return short_word(a, len) == short_word(b, len);
    for (size_t i = 0; i + 8 < len; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y) return 0;
    }
    memcpy(&x, a + len - 8, 8);
    memcpy(&y, b + len - 8, 8);
    return x == y;
}

/* Pushes the string p[0..len) (len <= STRCACHE_MAXLEN), from the cache when
 * it is there. */
static void push_short(dec_t *d, const unsigned char *p, size_t len) {
    strcache *sc = d->sc;
    unsigned i = strcache_slot(p, len);
    if (sc->len[i] == len && short_eq((const unsigned char *)sc->bytes[i], p, len)) {
        lua_rawgeti(d->L, d->sc_tab, (lua_Integer)i + 1);
        return;
    }
    lua_pushlstring(d->L, (const char *)p, len);
    lua_pushvalue(d->L, -1);
    lua_rawseti(d->L, d->sc_tab, (lua_Integer)i + 1); /* the array part exists: cannot fail */
    sc->len[i] = (unsigned char)len;                  /* the slot changes only once the table has */
    memcpy(sc->bytes[i], p, len);
}

/* Pushes the cache's userdata and string table of this Lua state (made on
 * first use) and returns the cache. */
static strcache *strcache_push(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &strcache_key) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        strcache *sc = lua_newuserdatauv(L, sizeof *sc, 1);
        memset(sc->len, 0xFF, sizeof sc->len);
        lua_createtable(L, STRCACHE_SLOTS, 0);
        for (int i = 1; i <= STRCACHE_SLOTS; i++) {
            lua_pushboolean(L, 0);
            lua_rawseti(L, -2, i);
        }
        lua_setiuservalue(L, -2, 1);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &strcache_key);
    }
    strcache *sc = lua_touserdata(L, -1);
    lua_getiuservalue(L, -1, 1);
    return sc;
}

static int dec_value(dec_t *d, int depth);

static int dec_fail(dec_t *d, const unsigned char *at, const char *what) {
    set_err(d->err, d->errlen, "%s at byte offset %zu", what, (size_t)(at - d->s));
    return -1;
}

static int dec_unexpected(dec_t *d, const char *expected) {
    if (d->p >= d->end) {
        set_err(d->err, d->errlen, "unexpected end of input at byte offset %zu (expected %s)",
                (size_t)(d->p - d->s), expected);
    } else {
        unsigned c = *d->p;
        if (c > 0x20 && c < 0x7f)
            set_err(d->err, d->errlen, "unexpected character '%c' at byte offset %zu (expected %s)", (int)c,
                    (size_t)(d->p - d->s), expected);
        else
            set_err(d->err, d->errlen, "unexpected byte 0x%02x at byte offset %zu (expected %s)", c,
                    (size_t)(d->p - d->s), expected);
    }
    return -1;
}

static inline void skip_ws(dec_t *d) {
    const unsigned char *p = d->p, *end = d->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    d->p = p;
}

static int hex4(const unsigned char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], x;
        if (c >= '0' && c <= '9') x = c - '0';
        else if (c >= 'a' && c <= 'f') x = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') x = c - 'A' + 10;
        else return -1;
        v = v << 4 | x;
    }
    *out = v;
    return 0;
}

/* Decodes the escapes of the string body [p, end) (raw bytes already
 * validated) and pushes the result. The output is never longer. */
static int dec_unescape(dec_t *d, const unsigned char *p, const unsigned char *end) {
    luaL_Buffer lb;
    char *o0 = luaL_buffinitsize(d->L, &lb, (size_t)(end - p)), *o = o0;
    while (p < end) {
        const unsigned char *bs = memchr(p, '\\', (size_t)(end - p));
        if (!bs) bs = end;
        memcpy(o, p, (size_t)(bs - p));
        o += bs - p;
        p = bs;
        if (p == end) break;
        /* p[1] exists: the scanner never ends a body on a backslash */
        switch (p[1]) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (end - p < 6 || hex4(p + 2, &cp) != 0) return dec_fail(d, p, "invalid \\u escape");
            if (cp >= 0xDC00 && cp <= 0xDFFF) return dec_fail(d, p, "lone low surrogate escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &lo) != 0 || lo < 0xDC00 ||
                    lo > 0xDFFF)
                    return dec_fail(d, p, "lone high surrogate escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            if (cp < 0x80) {
                *o++ = (char)cp;
            } else if (cp < 0x800) {
                *o++ = (char)(0xC0 | cp >> 6);
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *o++ = (char)(0xE0 | cp >> 12);
                *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *o++ = (char)(0xF0 | cp >> 18);
                *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
                *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            }
            p += 6;
            continue;
        }
        default: return dec_fail(d, p, "invalid escape");
        }
        p += 2;
    }
    luaL_pushresultsize(&lb, (size_t)(o - o0));
    return 0;
}

/* d->p at the opening quote; pushes the string. */
static int dec_string(dec_t *d) {
    const unsigned char *start = d->p + 1, *p = start, *end = d->end;
    int escaped = 0;
    for (;;) {
        p = skip_plain(p, end);
        if (p == end) return dec_fail(d, start - 1, "unterminated string");
        unsigned c = *p;
        if (c == '"') break;
        if (c == '\\') {
            escaped = 1;
            if (end - p < 2) return dec_fail(d, start - 1, "unterminated string");
            p += 2; /* the escaped byte is checked by dec_unescape */
            continue;
        }
        if (c < 0x20) return dec_fail(d, p, "control character in string");
        int n = utf8_len(p, end);
        if (!n) return dec_fail(d, p, "invalid UTF-8 in string");
        p += n;
    }
    d->p = p + 1;
    if (!escaped) {
        size_t len = (size_t)(p - start);
        if (len <= STRCACHE_MAXLEN && d->sc) push_short(d, start, len);
        else lua_pushlstring(d->L, (const char *)start, len);
        return 0;
    }
    return dec_unescape(d, start, p);
}

/* Locale-independent strtod of the validated number token [p, p+len). */
static int dec_strtod(dec_t *d, const unsigned char *p, size_t len, double *out) {
    const char *dp = localeconv()->decimal_point;
    size_t dpl = dp ? strlen(dp) : 0;
    if (dpl == 0) {
        dp = ".";
        dpl = 1;
    }
    char small[128], *buf = small;
    size_t need = len + dpl + 1;
    if (need > sizeof small) {
        buf = malloc(need);
        if (!buf) return dec_fail(d, p, "out of memory");
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '.') {
            memcpy(buf + o, dp, dpl);
            o += dpl;
        } else {
            buf[o++] = (char)p[i];
        }
    }
    buf[o] = '\0';
    char *endp;
    errno = 0;
    double v = strtod(buf, &endp);
    int complete = endp == buf + o;
    int overflow = errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL);
    if (buf != small) free(buf);
    if (!complete) return dec_fail(d, p, "invalid number");
    if (overflow) return dec_fail(d, p, "number out of range");
    *out = v;
    return 0;
}

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline int is_digit(const unsigned char *p, const unsigned char *end) {
    return p < end && *p >= '0' && *p <= '9';
}

static int dec_number(dec_t *d) {
    const unsigned char *start = d->p, *p = start, *end = d->end;
    int neg = 0, is_float = 0, ndig = 0, frac = 0;
    uint64_t m = 0;
    long exp = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (!is_digit(p, end)) return dec_fail(d, start, "invalid number");
    if (*p == '0') {
        p++;
        ndig = 1;
        if (is_digit(p, end)) return dec_fail(d, start, "invalid number (leading zero)");
    } else {
        for (; is_digit(p, end); p++, ndig++)
            if (ndig < 19) m = m * 10 + (uint64_t)(*p - '0');
    }
    if (p < end && *p == '.') {
        is_float = 1;
        p++;
        if (!is_digit(p, end)) return dec_fail(d, start, "invalid number (digit expected after '.')");
        for (; is_digit(p, end); p++, ndig++) {
            if (ndig < 19) {
                m = m * 10 + (uint64_t)(*p - '0');
                frac++;
            }
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int eneg = 0;
        is_float = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        if (!is_digit(p, end)) return dec_fail(d, start, "invalid number (digit expected in exponent)");
        for (; is_digit(p, end); p++)
            if (exp < 100000) exp = exp * 10 + (*p - '0');
        if (eneg) exp = -exp;
    }
    d->p = p;
    if (!is_float && ndig <= 19) {
        if (!neg && m <= (uint64_t)LUA_MAXINTEGER) {
            lua_pushinteger(d->L, (lua_Integer)m);
            return 0;
        }
        if (neg && m <= (uint64_t)LUA_MAXINTEGER + 1) {
            lua_pushinteger(d->L, m == (uint64_t)LUA_MAXINTEGER + 1 ? LUA_MININTEGER : -(lua_Integer)m);
            return 0;
        }
    }
    double v;
#if FLT_EVAL_METHOD == 0
    /* Exact: m and 10^|e| are doubles, one correctly rounded operation. */
    long e10 = exp - frac;
    if (ndig <= 19 && m <= (UINT64_C(1) << 53) && e10 >= -22 && e10 <= 22) {
        v = (double)m;
        v = e10 < 0 ? v / pow10_exact[-e10] : v * pow10_exact[e10];
        lua_pushnumber(d->L, neg ? -v : v);
        return 0;
    }
#endif
    (void)pow10_exact;
    if (dec_strtod(d, start, (size_t)(p - start), &v) != 0) return -1;
    lua_pushnumber(d->L, v);
    return 0;
}

static int dec_literal(dec_t *d, const char *lit, size_t len) {
    if ((size_t)(d->end - d->p) < len || memcmp(d->p, lit, len) != 0) return dec_fail(d, d->p, "invalid literal");
    d->p += len;
    return 0;
}

static int dec_enter(dec_t *d, int depth, int slots) {
    if (depth >= DDB_JSON_MAX_DEPTH) return dec_fail(d, d->p, "nesting deeper than 512 levels");
    if (!lua_checkstack(d->L, slots)) return dec_fail(d, d->p, "out of Lua stack");
    d->p++;
    skip_ws(d);
    return 0;
}

/* Moves the n values above base into a new table of size hint at base+1. */
static void flush_array(lua_State *L, int base, int n, int hint) {
    lua_createtable(L, hint, 0);
    lua_insert(L, base + 1);
    for (int i = n; i >= 1; i--) lua_rawseti(L, base + 1, i);
}

static int dec_array(dec_t *d, int depth) {
    lua_State *L = d->L;
    int base = lua_gettop(L), n = 0, direct = 0;
    if (dec_enter(d, depth, 2 * CHUNK + 8) != 0) return -1;
    if (d->p < d->end && *d->p == ']') {
        d->p++;
    } else {
        for (;;) {
            if (dec_value(d, depth + 1) != 0) return -1;
            n++;
            if (direct) {
                lua_rawseti(L, base + 1, n);
            } else if (n == CHUNK) {
                flush_array(L, base, n, 2 * CHUNK);
                direct = 1;
            }
            skip_ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                continue;
            }
            if (d->p < d->end && *d->p == ']') {
                d->p++;
                break;
            }
            return dec_unexpected(d, "',' or ']'");
        }
    }
    if (!direct) flush_array(L, base, n, n);
    lua_pushvalue(L, d->mt);
    lua_setmetatable(L, base + 1);
    return 0;
}

/* An object's table is made when the object opens, sized by the member
 * count of the previous object closed at the same depth (objects side by
 * side tend to have the same shape: the items of a Query, the attribute
 * values in them), and each member is set as soon as it is read, in order,
 * so the last of duplicate keys wins. A wrong guess only costs a resize. */
static int dec_object(dec_t *d, int depth) {
    lua_State *L = d->L;
    int n = 0;
    if (dec_enter(d, depth, 8) != 0) return -1; /* table, key, value, and what a value needs */
    lua_createtable(L, 0, depth < OBJ_HINT_DEPTH ? d->obj_hint[depth] : 0);
    int t = lua_gettop(L);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
    } else {
        for (;;) {
            skip_ws(d);
            if (d->p >= d->end || *d->p != '"') return dec_unexpected(d, "a string key");
            if (dec_string(d) != 0) return -1;
            skip_ws(d);
            if (d->p >= d->end || *d->p != ':') return dec_unexpected(d, "':'");
            d->p++;
            if (dec_value(d, depth + 1) != 0) return -1;
            lua_rawset(L, t);
            n++;
            skip_ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                continue;
            }
            if (d->p < d->end && *d->p == '}') {
                d->p++;
                break;
            }
            return dec_unexpected(d, "',' or '}'");
        }
    }
    if (depth < OBJ_HINT_DEPTH) d->obj_hint[depth] = (unsigned char)(n < OBJ_HINT_MAX ? n : OBJ_HINT_MAX);
    return 0;
}

static int dec_value(dec_t *d, int depth) {
    skip_ws(d);
    if (d->p >= d->end) return dec_unexpected(d, "a value");
    switch (*d->p) {
    case '{': return dec_object(d, depth);
    case '[': return dec_array(d, depth);
    case '"': return dec_string(d);
    case 't':
        if (dec_literal(d, "true", 4) != 0) return -1;
        lua_pushboolean(d->L, 1);
        return 0;
    case 'f':
        if (dec_literal(d, "false", 5) != 0) return -1;
        lua_pushboolean(d->L, 0);
        return 0;
    case 'n':
        if (dec_literal(d, "null", 4) != 0) return -1;
        lua_pushlightuserdata(d->L, NULL);
        return 0;
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return dec_number(d);
    default: return dec_unexpected(d, "a value");
    }
}

int ddb_json_decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen) {
    int top = lua_gettop(L);
    if (!s) s = "";
    if (!lua_checkstack(L, 2 * CHUNK + 8)) {
        set_err(err, errlen, "out of Lua stack");
        return -1;
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    dec_t d = {L, (const unsigned char *)s, (const unsigned char *)s, (const unsigned char *)s + len,
               err, errlen, lua_gettop(L), NULL, 0, {0}};
    if (len > 2) { /* worth the cache (which costs a userdata and a table once per state) */
        d.sc = strcache_push(L);
        d.sc_tab = lua_gettop(L);
    }
    if (dec_value(&d, 0) != 0) goto fail;
    skip_ws(&d);
    if (d.p != d.end) {
        dec_fail(&d, d.p, "trailing garbage");
        goto fail;
    }
    lua_replace(L, top + 1); /* the value where the metatable was; cache entries above it go */
    lua_settop(L, top + 1);
    return 0;
fail:
    lua_settop(L, top);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Lua API                                                             */

#define BUF_MT "ddb.json.buf"
#define BUF_KEEP (256 * 1024) /* a larger scratch buffer is freed after use */

static int buf_gc(lua_State *L) {
    ddb_buf_free(luaL_checkudata(L, 1, BUF_MT));
    return 0;
}

/* json_encode(v) -> string; upvalue 1: the scratch buffer (a userdata, so it
 * is freed by the GC even if pushing the result raises). */
static int l_json_encode(lua_State *L) {
    ddb_buf *b = lua_touserdata(L, lua_upvalueindex(1));
    char err[256];
    luaL_checkany(L, 1);
    ddb_buf_reset(b);
    if (ddb_json_encode(L, 1, b, err, sizeof err) != 0) {
        if (b->cap > BUF_KEEP) ddb_buf_free(b);
        return luaL_error(L, "%s", err);
    }
    lua_pushlstring(L, b->p, b->len);
    if (b->cap > BUF_KEEP) ddb_buf_free(b);
    return 1;
}

/* json_decode(s) -> value | nil, message */
static int l_json_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char err[256];
    if (ddb_json_decode(L, s, len, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* array([t]) -> t with array_mt set (a new table if t is absent or nil) */
static int l_array(lua_State *L) {
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    lua_setmetatable(L, 1);
    return 1;
}

void ddb_open_json(lua_State *L) {
    /* One array metatable per Lua state, shared by reloads of the module. */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "ddb.array");
        lua_setfield(L, -2, "__name");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    }
    lua_setfield(L, -2, "array_mt");

    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");

    ddb_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
    ddb_buf_init(b);
    if (luaL_newmetatable(L, BUF_MT)) {
        lua_pushcfunction(L, buf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_pushcclosure(L, l_json_encode, 1);
    lua_setfield(L, -2, "json_encode");

    lua_pushcfunction(L, l_json_decode);
    lua_setfield(L, -2, "json_decode");
    lua_pushcfunction(L, l_array);
    lua_setfield(L, -2, "array");
}

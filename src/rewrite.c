/* rewrite.c: core.rewrite, the stream rewrite engine (contract in rewrite.h).
 *
 * One call, three phases:
 *   plan    every record is classified with raw table reads only (no
 *           metamethod of the input ever runs); acting records fold into one
 *           group_plan per message group: its newest message and its
 *           earliest record.
 *   apply   per group, in the order of its earliest record: read the group's
 *           rows from the GSI (every page), read consistently the rows of any
 *           participant the GSI does not show yet (participants: the rows'
 *           owners, the users they name, the message's sender), keep each
 *           owner's newest row, move the ones older than the target in one
 *           transaction (each Delete on condition that its slot still holds
 *           a row of this group); when the transaction loses a race, re-read
 *           each owner's row consistently from the base table and decide
 *           again (at most max_rounds times).
 *           When an owner's slot (GRP#owner, target) is held by that owner's
 *           row of another group, that owner's target steps 1 us later and
 *           the transaction is sent again (at most DDB_REWRITE_MAX_BUMPS
 *           steps per owner); the steps are kept across re-reads.
 *   report  the summary table.
 *
 * Memory: the plan is a userdata and every string it points to is anchored in
 * a Lua table on the stack, so an error raised by client:call or inject (a
 * longjmp through this file) leaks nothing. The one C-heap object, the digest
 * context, never lives across a Lua call. */
#include "rewrite.h"

#include <assert.h>
#include <lauxlib.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UUID_LEN 36
#define PREFIX_LEN 4          /* "MSG#", "GRP#" */
#define MAX_MESSAGE_CHARS 1024 /* ddb.model.MAX_MESSAGE_CHARS */
#define MAX_ROUNDS_LIMIT 1000 /* largest opts.max_rounds accepted */
#define MAX_RECORDS (1 << 24) /* larger batches raise (Lambda sends <= 10000) */
#define TOKEN_BYTES 16        /* ClientRequestToken: 32 hex digits of SHA-256 */
#define STACK_NEED 64         /* slots used by the deepest helper chain */
#define TS_LEN 32             /* YYYY-MM-DDTHH:MM:SS.ffffff+00:00 */

/* Debug builds check that each helper leaves the stack as its comment says. */
#ifndef NDEBUG
#define STACK_ENTER(L) const int stack_base_ = lua_gettop(L)
#define STACK_LEAVE(L, n) assert(lua_gettop(L) == stack_base_ + (n))
#else
#define STACK_ENTER(L) ((void)0)
#define STACK_LEAVE(L, n) ((void)0)
#endif

enum { OUT_NONE = 0, OUT_MOVED, OUT_FAILED };  /* a group's outcome */
enum { W_DONE, W_RACE, W_FAIL };               /* a write round's outcome */
enum { X_RACE, X_BUMPED, X_FAIL };             /* what a cancelled transaction means */
enum { SLOT_FREE, SLOT_OURS, SLOT_OTHER };     /* who holds a Put's slot */
enum { A_UUID = 1, A_SK, A_MSG, A_ID, A_SENDER, A_SLOTS }; /* anchor slots of a group */

typedef struct {
    int first_rec;  /* 1-based index of the group's earliest acting record */
    int target_rec; /* the record carrying its newest message */
    const char *uuid, *sk, *msg; /* anchored in the anchors table */
    const char *sender;          /* its message's user_uuid (a uuid), or NULL; anchored too */
    size_t sk_len, msg_len;
    lua_Integer moved; /* rows moved */
    int outcome;
} group_plan;

typedef struct {
    group_plan *groups; /* at most one per record */
    int *rec_group;     /* per record (0-based): its group, or -1 for a skip */
    int nrec, ngroups;
} plan;

typedef struct {
    lua_State *L;
    int client, records;        /* arguments */
    int table, index, inject;   /* opts, normalised (inject: nil or a function) */
    int anchors, by_uuid, errs; /* working tables */
    lua_Integer max_rounds;
    plan p;
} ctx;

/* A row that must move, for sorting by owner: its owner (pk), its current sk
 * and the sk it moves to (the group's target, or later after bumps). pk and
 * sk are anchored in the rows array, to in the targets table (or it is the
 * group's sk). */
typedef struct {
    const char *pk, *sk, *to;
    size_t pk_len, sk_len, to_len;
    int row; /* index in the rows array */
} move_ref;

static const char *const P_EVENT[] = {"eventName", NULL};
static const char *const P_EVENT_ID[] = {"eventID", NULL};
static const char *const P_SEQ[] = {"dynamodb", "SequenceNumber", NULL};
static const char *const P_PK[] = {"dynamodb", "Keys", "pk", "S", NULL};
static const char *const P_KEY_SK[] = {"dynamodb", "Keys", "sk", "S", NULL};
static const char *const P_IMAGE_SK[] = {"dynamodb", "NewImage", "sk", "S", NULL};
static const char *const P_MESSAGE[] = {"dynamodb", "NewImage", "message", "S", NULL};
static const char *const P_SENDER[] = {"dynamodb", "NewImage", "user_uuid", "S", NULL};
static const char *const P_ROW_PK[] = {"pk", "S", NULL};
static const char *const P_ROW_SK[] = {"sk", "S", NULL};
static const char *const P_ROW_GROUP[] = {"message_group_uuid", "S", NULL};
static const char *const P_ROW_OTHER[] = {"user_uuid", "S", NULL};

/* ------------------------------------------------------------------ */
/* Small pure helpers                                                  */

/* Byte order, as DynamoDB orders S values. */
static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl) {
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return (al > bl) - (al < bl);
}

static int equals(const char *s, size_t n, const char *lit) {
    size_t ln = strlen(lit);
    return s && n == ln && memcmp(s, lit, n) == 0;
}

/* A canonical lowercase UUID: 8-4-4-4-12 lowercase hex digits. */
static int is_uuid(const char *s, size_t n) {
    if (n != UUID_LEN) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* The number of characters of strict UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF), or -1 when s is not that. */
static long utf8_chars(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    long chars = 0;
    while (i < n) {
        unsigned c = s[i], cp, min;
        size_t len;
        chars++;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07, min = 0x10000;
        else return -1;
        if (n - i < len) return -1;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return -1;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
        i += len;
    }
    return chars;
}

/* n decimal digits at s into *out; 0 when one is not a digit. */
static int read_digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int days_in_month(int y, int mo) {
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return mo == 2 && leap ? 29 : dim[mo - 1];
}

/* Reads a timestamp `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` (UTC, the ddb.ids
 * format: fixed width, so byte order is time order) of a real date and time
 * (no leap second) into t[0..6] = year, month, day, hour, minute, second,
 * microsecond; returns 0 when s is not one. */
static int parse_ts(const char *s, size_t n, int t[7]) {
    if (n != TS_LEN || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        s[19] != '.' || memcmp(s + 26, "+00:00", 6) != 0)
        return 0;
    if (!read_digits(s, 4, &t[0]) || !read_digits(s + 5, 2, &t[1]) || !read_digits(s + 8, 2, &t[2]) ||
        !read_digits(s + 11, 2, &t[3]) || !read_digits(s + 14, 2, &t[4]) || !read_digits(s + 17, 2, &t[5]) ||
        !read_digits(s + 20, 6, &t[6]))
        return 0;
    return t[1] >= 1 && t[1] <= 12 && t[2] >= 1 && t[2] <= days_in_month(t[0], t[1]) && t[3] <= 23 &&
           t[4] <= 59 && t[5] <= 59;
}

/* The timestamp 1 us after s, carried through seconds, minutes, hours, days,
 * months (leap years included) and years, written to out as TS_LEN bytes and
 * a NUL. Returns 0, out untouched, when s is not a timestamp (parse_ts) or
 * the result would pass the year 9999. */
static int next_usec(const char *s, size_t n, char out[TS_LEN + 1]) {
    int t[7];
    if (!parse_ts(s, n, t)) return 0;
    int y = t[0], mo = t[1], d = t[2], h = t[3], mi = t[4], se = t[5], us = t[6];
    if (++us > 999999) {
        us = 0;
        if (++se > 59) {
            se = 0;
            if (++mi > 59) {
                mi = 0;
                if (++h > 23) {
                    h = 0;
                    if (++d > days_in_month(y, mo)) {
                        d = 1;
                        if (++mo > 12) {
                            mo = 1;
                            if (++y > 9999) return 0;
                        }
                    }
                }
            }
        }
    }
    char buf[TS_LEN + 1];
    int w = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00", y, mo, d, h, mi, se, us);
    if (w != TS_LEN) return 0;
    memcpy(out, buf, sizeof buf);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Stack helpers                                                       */

/* Pushes t[k] read raw, or nil when the value at idx is not a table.
 * Pushes exactly one value; returns its type. */
static int push_field(lua_State *L, int idx, const char *k) {
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    idx = lua_absindex(L, idx);
    lua_pushstring(L, k);
    return lua_rawget(L, idx);
}

/* Pushes the value at a path of keys under the value at idx (raw reads),
 * nil as soon as a step is missing or not a table. Pushes one value. */
static int push_path(lua_State *L, int idx, const char *const *path) {
    lua_pushvalue(L, idx);
    for (; *path; path++) {
        push_field(L, -1, *path);
        lua_remove(L, -2);
    }
    return lua_type(L, -1);
}

/* push_path, then the string it pushed (NULL when it is not a string).
 * Pushes one value: the string stays valid while it is on the stack. */
static const char *path_string(lua_State *L, int idx, const char *const *path, size_t *len) {
    if (push_path(L, idx, path) != LUA_TSTRING) return NULL;
    return lua_tolstring(L, -1, len);
}

/* Pushes {S = s}. */
static void push_s(lua_State *L, const char *s, size_t n) {
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, "S");
}

/* Pushes an engine-made error value {code =, message =} (stream.process
 * turns it into a ddb.errors value). */
static void push_error(lua_State *L, const char *code, const char *fmt, ...) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_setfield(L, -2, "message");
}

/* Gives the table at idx the array metatable (upvalue 1) when it has one, so
 * an empty array encodes as []. */
static void mark_array(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, lua_upvalueindex(1)) != LUA_TTABLE) return;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setmetatable(L, idx);
}

/* ------------------------------------------------------------------ */
/* Plan                                                                */

/* Examines the record at rec. An acting record (INSERT of a well-formed
 * MSG#<uuid> item) pushes its group uuid, sk, message, identifier and sender
 * (NewImage.user_uuid when it is a uuid, else nil: a message without one
 * still acts) (5 values) and returns 1; anything else pushes nothing and
 * returns 0. */
static int classify(lua_State *L, int rec) {
    STACK_ENTER(L);
    const int top = lua_gettop(L);
    size_t n, n2;
    const char *s, *s2;
    if (lua_type(L, rec) != LUA_TTABLE) return 0;

    s = path_string(L, rec, P_EVENT, &n);
    int insert = equals(s, n, "INSERT");
    lua_settop(L, top);
    if (!insert) return 0;

    s = path_string(L, rec, P_PK, &n); /* top+1 */
    if (!s || n != PREFIX_LEN + UUID_LEN || memcmp(s, "MSG#", PREFIX_LEN) != 0 ||
        !is_uuid(s + PREFIX_LEN, UUID_LEN))
        goto skip;
    lua_pushlstring(L, s + PREFIX_LEN, UUID_LEN);
    lua_replace(L, top + 1); /* top+1: group uuid */

    /* sk: from Keys or NewImage; present twice, the two must agree */
    int kt = push_path(L, rec, P_KEY_SK);   /* top+2 */
    int it = push_path(L, rec, P_IMAGE_SK); /* top+3 */
    if ((kt != LUA_TNIL && kt != LUA_TSTRING) || (it != LUA_TNIL && it != LUA_TSTRING)) goto skip;
    if (kt == LUA_TNIL && it == LUA_TNIL) goto skip;
    if (kt == LUA_TSTRING && it == LUA_TSTRING) {
        s = lua_tolstring(L, top + 2, &n);
        s2 = lua_tolstring(L, top + 3, &n2);
        if (cmp_bytes(s, n, s2, n2) != 0) goto skip;
    }
    if (kt == LUA_TSTRING) lua_pop(L, 1);
    else lua_remove(L, top + 2); /* top+2: sk */
    s = lua_tolstring(L, top + 2, &n);
    int ts[7];
    if (!parse_ts(s, n, ts)) goto skip; /* a message row's sk is its time */

    s = path_string(L, rec, P_MESSAGE, &n); /* top+3: message */
    if (!s) goto skip;
    long chars = utf8_chars(s, n);
    if (chars < 0 || chars > MAX_MESSAGE_CHARS) goto skip; /* not a message the API writes */

    /* identifier: SequenceNumber, else eventID, else "" (Lambda then
     * retries the whole batch); either one present but not a string is
     * malformed */
    int st = push_path(L, rec, P_SEQ);      /* top+4 */
    int et = push_path(L, rec, P_EVENT_ID); /* top+5 */
    if ((st != LUA_TNIL && st != LUA_TSTRING) || (et != LUA_TNIL && et != LUA_TSTRING)) goto skip;
    if (st == LUA_TSTRING) {
        lua_pop(L, 1);
    } else {
        lua_remove(L, top + 4);
        if (et == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushliteral(L, "");
        }
    }
    s = path_string(L, rec, P_SENDER, &n); /* top+5: sender */
    if (!s || !is_uuid(s, n)) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    STACK_LEAVE(L, 5);
    return 1;
skip:
    lua_settop(L, top);
    STACK_LEAVE(L, 0);
    return 0;
}

/* Anchors the string at idx in slot `slot` of group gi; returns it. */
static const char *anchor(ctx *c, int gi, int slot, int idx, size_t *len) {
    lua_State *L = c->L;
    lua_pushvalue(L, idx);
    lua_rawseti(L, c->anchors, (lua_Integer)gi * (A_SLOTS - 1) + slot);
    return lua_tolstring(L, idx, len);
}

/* Folds an acting record (its 5 classify values from index v) into the
 * plan; returns its group. Stack unchanged. */
static int plan_add(ctx *c, int rec_index, int v) {
    lua_State *L = c->L;
    STACK_ENTER(L);
    size_t n;
    group_plan *g;
    lua_pushvalue(L, v);
    if (lua_rawget(L, c->by_uuid) == LUA_TNUMBER) {
        int gi = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        g = &c->p.groups[gi];
        const char *sk = lua_tolstring(L, v + 1, &n);
        if (cmp_bytes(sk, n, g->sk, g->sk_len) > 0) { /* a newer message */
            g->target_rec = rec_index;
            g->sk = anchor(c, gi, A_SK, v + 1, &g->sk_len);
            g->msg = anchor(c, gi, A_MSG, v + 2, &g->msg_len);
            g->sender = anchor(c, gi, A_SENDER, v + 4, &n);
        }
        STACK_LEAVE(L, 0);
        return gi;
    }
    lua_pop(L, 1);
    int gi = c->p.ngroups++;
    g = &c->p.groups[gi];
    memset(g, 0, sizeof *g);
    g->first_rec = g->target_rec = rec_index;
    g->outcome = OUT_NONE;
    lua_pushvalue(L, v);
    lua_pushinteger(L, gi);
    lua_rawset(L, c->by_uuid);
    g->uuid = anchor(c, gi, A_UUID, v, &n);
    g->sk = anchor(c, gi, A_SK, v + 1, &g->sk_len);
    g->msg = anchor(c, gi, A_MSG, v + 2, &g->msg_len);
    anchor(c, gi, A_ID, v + 3, &n);
    g->sender = anchor(c, gi, A_SENDER, v + 4, &n);
    STACK_LEAVE(L, 0);
    return gi;
}

static void build_plan(ctx *c) {
    lua_State *L = c->L;
    STACK_ENTER(L);
    for (int i = 1; i <= c->p.nrec; i++) {
        c->p.rec_group[i - 1] = -1;
        lua_rawgeti(L, c->records, i);
        int rec = lua_gettop(L);
        if (classify(L, rec)) c->p.rec_group[i - 1] = plan_add(c, i, rec + 1);
        lua_settop(L, rec - 1);
    }
    STACK_LEAVE(L, 0);
}

/* ------------------------------------------------------------------ */
/* Calls out                                                           */

/* client:call(op, params) with params at index params. Leaves the response
 * on top and returns 1, or leaves an error value on top and returns 0. */
static int call_client(ctx *c, const char *op, int params) {
    lua_State *L = c->L;
    params = lua_absindex(L, params);
    lua_getfield(L, c->client, "call");
    lua_pushvalue(L, c->client);
    lua_pushstring(L, op);
    lua_pushvalue(L, params);
    lua_call(L, 3, 2);
    if (lua_toboolean(L, -2)) {
        lua_pop(L, 1);
        return 1;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        push_error(L, "InvalidResponse", "client:call(\"%s\") returned neither a response nor an error",
                   op);
    }
    lua_remove(L, -2);
    return 0;
}

/* Pushes {code = "InjectedFailure", message =, stage =}. */
static void push_injected(lua_State *L, const char *stage, const char *msg) {
    push_error(L, "InjectedFailure", "%s", msg);
    lua_pushstring(L, stage);
    lua_setfield(L, -2, "stage");
}

/* opts.inject(stage, group) when set: returns 1 to go on, or 0 with the
 * failure it asked for on top (a table as returned, anything else truthy
 * as an InjectedFailure error). */
static int run_inject(ctx *c, const char *stage, const group_plan *g) {
    lua_State *L = c->L;
    if (lua_isnil(L, c->inject)) return 1;
    lua_pushvalue(L, c->inject);
    lua_pushstring(L, stage);
    lua_pushlstring(L, g->uuid, UUID_LEN);
    lua_call(L, 2, 1);
    int t = lua_type(L, -1);
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        return 1;
    }
    if (t == LUA_TSTRING) {
        push_injected(L, stage, lua_tostring(L, -1));
        lua_remove(L, -2);
    } else if (t != LUA_TTABLE) {
        lua_pop(L, 1);
        push_injected(L, stage, "failure injected");
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Reading a group's rows                                              */

/* Folds one row into best[pk] when it is a group row of g newer than the one
 * there. Stack unchanged. */
static void fold_row(lua_State *L, int row, int best, const group_plan *g) {
    STACK_ENTER(L);
    const int top = lua_gettop(L);
    size_t pkl, skl, gl, bl;
    const char *pk = path_string(L, row, P_ROW_PK, &pkl);   /* top+1 */
    const char *sk = path_string(L, row, P_ROW_SK, &skl);   /* top+2 */
    const char *gu = path_string(L, row, P_ROW_GROUP, &gl); /* top+3 */
    if (pk && sk && gu && pkl > PREFIX_LEN && memcmp(pk, "GRP#", PREFIX_LEN) == 0 &&
        cmp_bytes(gu, gl, g->uuid, UUID_LEN) == 0) {
        lua_pushvalue(L, top + 1);
        lua_rawget(L, best);                                   /* top+4 */
        const char *bs = path_string(L, top + 4, P_ROW_SK, &bl); /* top+5 */
        if (!bs || cmp_bytes(sk, skl, bs, bl) > 0) {
            lua_pushvalue(L, top + 1);
            lua_pushvalue(L, row);
            lua_rawset(L, best);
        }
    }
    lua_settop(L, top);
    STACK_LEAVE(L, 0);
}

/* Whether the values at a and b are equal: raw equality, or tables with the
 * same keys whose values are equal in turn (keys a few levels deep, as an
 * ExclusiveStartKey of AttributeValues is; anything deeper counts as
 * different). Stack unchanged. */
static int same_value(lua_State *L, int a, int b, int depth) {
    if (lua_rawequal(L, a, b)) return 1;
    if (lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE || depth <= 0) return 0;
    STACK_ENTER(L);
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    lua_Unsigned na = 0, nb = 0;
    int same = 1;
    lua_pushnil(L);
    while (same && lua_next(L, a)) { /* key, value */
        na++;
        lua_pushvalue(L, -2);
        lua_rawget(L, b); /* key, value, b[key] */
        same = !lua_isnil(L, -1) && same_value(L, -2, -1, depth - 1);
        lua_pop(L, 2);
    }
    if (!same) {
        lua_pop(L, 1); /* the key lua_next left */
        STACK_LEAVE(L, 0);
        return 0;
    }
    lua_pushnil(L);
    while (lua_next(L, b)) {
        nb++;
        lua_pop(L, 1);
    }
    STACK_LEAVE(L, 0);
    return na == nb;
}

/* Runs the Query request on top of the stack (consumed) over all its pages,
 * folding its rows into best. Returns 1 with nothing left, or 0 with the
 * error in the request's place. A response whose LastEvaluatedKey is the
 * ExclusiveStartKey it was asked for (it would be followed forever), or a
 * query past DDB_REWRITE_MAX_PAGES pages, is an InvalidResponse error. */
static int query_all(ctx *c, const group_plan *g, int best) {
    lua_State *L = c->L;
    const int req = lua_gettop(L);
    for (lua_Integer page = 1;; page++) {
        if (!call_client(c, "Query", req)) { /* req+1: error */
            lua_replace(L, req);
            return 0;
        }
        push_field(L, req + 1, "Items"); /* req+2 */
        if (lua_type(L, req + 2) == LUA_TTABLE) {
            lua_Unsigned n = lua_rawlen(L, req + 2);
            for (lua_Unsigned i = 1; i <= n; i++) {
                lua_rawgeti(L, req + 2, (lua_Integer)i);
                fold_row(L, req + 3, best, g);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        if (push_field(L, req + 1, "LastEvaluatedKey") != LUA_TTABLE) { /* req+2 */
            lua_settop(L, req - 1);
            return 1;
        }
        push_field(L, req, "ExclusiveStartKey"); /* req+3: nil on the first page */
        int repeated = same_value(L, req + 2, req + 3, 4);
        lua_pop(L, 1);
        if (repeated || page >= DDB_REWRITE_MAX_PAGES) {
            if (repeated)
                push_error(L, "InvalidResponse",
                           "group %s: page %d's LastEvaluatedKey is the ExclusiveStartKey of its request: "
                           "following it would never end",
                           g->uuid, (int)page);
            else
                push_error(L, "InvalidResponse", "group %s: still a LastEvaluatedKey after %d pages: given up",
                           g->uuid, (int)DDB_REWRITE_MAX_PAGES);
            lua_pushliteral(L, "Query");
            lua_setfield(L, -2, "operation");
            lua_replace(L, req);
            lua_settop(L, req);
            return 0;
        }
        lua_setfield(L, req, "ExclusiveStartKey"); /* req is our own plain table */
        lua_pop(L, 1);
    }
}

/* Every page of the GSI for the group. Returns as query_all. */
static int read_gsi(ctx *c, const group_plan *g, int best) {
    lua_State *L = c->L;
    lua_createtable(L, 0, 5);
    lua_pushvalue(L, c->table);
    lua_setfield(L, -2, "TableName");
    lua_pushvalue(L, c->index);
    lua_setfield(L, -2, "IndexName");
    lua_pushliteral(L, "message_group_uuid = :g");
    lua_setfield(L, -2, "KeyConditionExpression");
    lua_createtable(L, 0, 1);
    push_s(L, g->uuid, UUID_LEN);
    lua_setfield(L, -2, ":g");
    lua_setfield(L, -2, "ExpressionAttributeValues");
    return query_all(c, g, best);
}

/* The rows of the group of one owner (its pk at index pk), read
 * consistently from the base table (every page). Returns as query_all. */
static int read_owner(ctx *c, const group_plan *g, int pk, int best) {
    lua_State *L = c->L;
    pk = lua_absindex(L, pk);
    lua_createtable(L, 0, 6);
    lua_pushvalue(L, c->table);
    lua_setfield(L, -2, "TableName");
    lua_pushliteral(L, "pk = :o");
    lua_setfield(L, -2, "KeyConditionExpression");
    lua_pushliteral(L, "message_group_uuid = :g");
    lua_setfield(L, -2, "FilterExpression");
    lua_createtable(L, 0, 2);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, pk);
    lua_setfield(L, -2, "S");
    lua_setfield(L, -2, ":o");
    push_s(L, g->uuid, UUID_LEN);
    lua_setfield(L, -2, ":g");
    lua_setfield(L, -2, "ExpressionAttributeValues");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "ConsistentRead");
    return query_all(c, g, best);
}

/* Each owner's rows of the group, read consistently from the base table.
 * Returns as query_all. */
static int reread_owners(ctx *c, const group_plan *g, int owners, int best) {
    lua_State *L = c->L;
    lua_Unsigned n = lua_rawlen(L, owners);
    for (lua_Unsigned i = 1; i <= n; i++) {
        lua_rawgeti(L, owners, (lua_Integer)i);
        int ok = read_owner(c, g, -1, best);
        lua_remove(L, ok ? -1 : -2); /* the pk */
        if (!ok) return 0;
    }
    return 1;
}

/* Adds "GRP#<s>" to the set at index set when s is a uuid. */
static void add_participant(lua_State *L, int set, const char *s, size_t n) {
    if (!s || !is_uuid(s, n)) return;
    lua_pushliteral(L, "GRP#");
    lua_pushlstring(L, s, n);
    lua_concat(L, 2);
    lua_pushboolean(L, 1);
    lua_rawset(L, set);
}

/* Pushes the set (pk -> true) of the group's participants that best and the
 * message tell of: the owner of each row (its pk), the other participant
 * the row names (its user_uuid), and the sender of the group's message. */
static void push_participants(lua_State *L, const group_plan *g, int best) {
    STACK_ENTER(L);
    lua_newtable(L);
    const int set = lua_gettop(L);
    if (g->sender) add_participant(L, set, g->sender, UUID_LEN);
    lua_pushnil(L);
    while (lua_next(L, best)) { /* pk, row */
        lua_pushvalue(L, -2);
        lua_pushboolean(L, 1);
        lua_rawset(L, set);
        size_t n = 0;
        const char *other = path_string(L, -1, P_ROW_OTHER, &n); /* pk, row, user_uuid */
        add_participant(L, set, other, n);
        lua_pop(L, 2);
    }
    STACK_LEAVE(L, 1);
}

/* Round 0 only. The GSI is eventually consistent: a row just created or
 * just moved may be missing from it. Each participant (push_participants)
 * without a row in best is read consistently from the base table
 * (read_owner; the rows found may name further participants), each at most
 * once. When both rows are in the GSI, as they nearly always are, this
 * makes no request. Returns 1 when every participant has a row in best, or
 * when no row of the group turned up at all (there is nothing to move: a
 * message whose group rows are gone); else 0 with the error pushed:
 * GroupRowMissing (a participant without a row even in a consistent read:
 * moving the others would leave its list behind, so the group fails and is
 * retried) or the client's. */
static int complete_rows(ctx *c, const group_plan *g, int best) {
    lua_State *L = c->L;
    STACK_ENTER(L);
    const int top = lua_gettop(L);
    lua_newtable(L); /* top+1: pks read consistently */
    for (int read = 1; read;) {
        read = 0;
        lua_settop(L, top + 1);
        push_participants(L, g, best); /* top+2 */
        lua_pushnil(L);
        while (lua_next(L, top + 2)) { /* pk, true */
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            int seen = lua_rawget(L, best) != LUA_TNIL;
            lua_pushvalue(L, -2);
            seen = seen || lua_rawget(L, top + 1) != LUA_TNIL;
            lua_pop(L, 2);
            if (seen) continue;
            lua_pushvalue(L, -1);
            lua_pushboolean(L, 1);
            lua_rawset(L, top + 1);
            if (!read_owner(c, g, -1, best)) { /* the error on top */
                lua_replace(L, top + 1);
                lua_settop(L, top + 1);
                STACK_LEAVE(L, 1);
                return 0;
            }
            read = 1;
        }
    }
    /* top+2: the participants; every one without a row was read */
    lua_pushnil(L);
    int any = lua_next(L, best);
    lua_settop(L, top + 2);
    if (any) {
        lua_pushnil(L);
        while (lua_next(L, top + 2)) { /* pk, true */
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            if (lua_rawget(L, best) != LUA_TNIL) {
                lua_pop(L, 1);
                continue;
            }
            push_error(L, "GroupRowMissing",
                       "group %s: participant %s has no row of it, neither in the GSI nor in a consistent "
                       "read of its rows; its rows not moved to %s",
                       g->uuid, lua_tostring(L, -2), g->sk);
            lua_replace(L, top + 1);
            lua_settop(L, top + 1);
            STACK_LEAVE(L, 1);
            return 0;
        }
    }
    lua_settop(L, top);
    STACK_LEAVE(L, 0);
    return 1;
}

/* Appends the keys of best (the owners seen) to the owners array. */
static void collect_owners(lua_State *L, int best, int owners) {
    STACK_ENTER(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, owners);
    lua_pushnil(L);
    while (lua_next(L, best)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, owners, ++n);
    }
    STACK_LEAVE(L, 0);
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

static int cmp_move(const void *a, const void *b) {
    const move_ref *x = a, *y = b;
    return cmp_bytes(x->pk, x->pk_len, y->pk, y->pk_len);
}

static int digest_field(EVP_MD_CTX *x, const char *s, size_t n) {
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    return EVP_DigestUpdate(x, len, sizeof len) && EVP_DigestUpdate(x, s, n);
}

/* Pushes the ClientRequestToken of a transaction: the first 16 bytes of a
 * SHA-256 over the table, the group, its target and message, and the rows
 * moved (owner, old sk and the sk it moves to, sorted by owner), in hex. The
 * same move gets the same token (a retried request is idempotent); a
 * different decision, a bumped target included, gets a different one (reusing
 * a token with other parameters is an error in DynamoDB). */
static void push_token(ctx *c, const group_plan *g, const move_ref *m, int n) {
    lua_State *L = c->L;
    size_t tl;
    const char *table = lua_tolstring(L, c->table, &tl);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    int ok = x && EVP_DigestInit_ex(x, EVP_sha256(), NULL) && digest_field(x, "ddb.rewrite/3", 13) &&
             digest_field(x, table, tl) && digest_field(x, g->uuid, UUID_LEN) &&
             digest_field(x, g->sk, g->sk_len) && digest_field(x, g->msg, g->msg_len);
    for (int k = 0; ok && k < n; k++)
        ok = digest_field(x, m[k].pk, m[k].pk_len) && digest_field(x, m[k].sk, m[k].sk_len) &&
             digest_field(x, m[k].to, m[k].to_len);
    ok = ok && EVP_DigestFinal_ex(x, md, &mdlen) && mdlen >= TOKEN_BYTES;
    EVP_MD_CTX_free(x);
    if (!ok) luaL_error(L, "rewrite: SHA-256 failed");
    static const char hex[] = "0123456789abcdef";
    char out[2 * TOKEN_BYTES];
    for (int i = 0; i < TOKEN_BYTES; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    lua_pushlstring(L, out, sizeof out);
}

/* Pushes {Delete = {...}} for the row at index row, on condition that the
 * item at its key is still a row of the group g (which implies it exists):
 * a stale read may show our row at a slot that the owner's row of another
 * group holds now, and that one must not go. */
static void push_delete(ctx *c, const group_plan *g, int row) {
    lua_State *L = c->L;
    row = lua_absindex(L, row);
    lua_createtable(L, 0, 1);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, c->table);
    lua_setfield(L, -2, "TableName");
    lua_createtable(L, 0, 2);
    push_field(L, row, "pk");
    lua_setfield(L, -2, "pk");
    push_field(L, row, "sk");
    lua_setfield(L, -2, "sk");
    lua_setfield(L, -2, "Key");
    lua_pushliteral(L, "message_group_uuid = :g");
    lua_setfield(L, -2, "ConditionExpression");
    lua_createtable(L, 0, 1);
    push_s(L, g->uuid, UUID_LEN);
    lua_setfield(L, -2, ":g");
    lua_setfield(L, -2, "ExpressionAttributeValues");
    lua_setfield(L, -2, "Delete");
}

/* Pushes {Put = {...}}: a copy of the row at index row (every attribute)
 * with the sk it moves to (mv->to) and the group's message. */
static void push_put(ctx *c, const group_plan *g, int row, const move_ref *mv) {
    lua_State *L = c->L;
    row = lua_absindex(L, row);
    lua_createtable(L, 0, 1);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, c->table);
    lua_setfield(L, -2, "TableName");
    lua_newtable(L); /* the item */
    lua_pushnil(L);
    while (lua_next(L, row)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    push_s(L, mv->to, mv->to_len);
    lua_setfield(L, -2, "sk");
    push_s(L, g->msg, g->msg_len);
    lua_setfield(L, -2, "message");
    lua_setfield(L, -2, "Item");
    lua_pushliteral(L, "attribute_not_exists(pk)");
    lua_setfield(L, -2, "ConditionExpression");
    lua_setfield(L, -2, "Put");
}

/* Pushes the TransactWriteItems request moving n rows (rows array, refs m). */
static void push_transaction(ctx *c, const group_plan *g, int rows, const move_ref *m, int n) {
    lua_State *L = c->L;
    STACK_ENTER(L);
    lua_createtable(L, 0, 2);
    lua_createtable(L, 2 * n, 0);
    mark_array(L, -1);
    for (int k = 0; k < n; k++) {
        lua_rawgeti(L, rows, m[k].row);
        push_delete(c, g, -1);
        lua_rawseti(L, -3, 2 * (lua_Integer)k + 1);
        push_put(c, g, -1, &m[k]);
        lua_rawseti(L, -3, 2 * (lua_Integer)k + 2);
        lua_pop(L, 1);
    }
    lua_setfield(L, -2, "TransactItems");
    push_token(c, g, m, n);
    lua_setfield(L, -2, "ClientRequestToken");
    STACK_LEAVE(L, 1);
}

/* Who holds the slot (mv->pk, mv->to) a Put could not take, by a consistent
 * GetItem. Returns SLOT_FREE (nothing: it left since), SLOT_OURS (a row of
 * our own group: another processor moved it there), or SLOT_OTHER with the
 * holder's message_group_uuid pushed (nil when it has none as a string), or
 * -1 with the client's error pushed. Pushes nothing in the first two cases. */
static int slot_holder(ctx *c, const group_plan *g, const move_ref *mv) {
    static const char *const p_group[] = {"message_group_uuid", "S", NULL};
    lua_State *L = c->L;
    STACK_ENTER(L);
    const int top = lua_gettop(L);
    lua_createtable(L, 0, 3); /* top+1: the request */
    lua_pushvalue(L, c->table);
    lua_setfield(L, -2, "TableName");
    lua_createtable(L, 0, 2);
    push_s(L, mv->pk, mv->pk_len);
    lua_setfield(L, -2, "pk");
    push_s(L, mv->to, mv->to_len);
    lua_setfield(L, -2, "sk");
    lua_setfield(L, -2, "Key");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "ConsistentRead");
    if (!call_client(c, "GetItem", top + 1)) { /* top+2: the error */
        lua_replace(L, top + 1);
        STACK_LEAVE(L, 1);
        return -1;
    }
    int holder = SLOT_FREE;
    if (push_field(L, top + 2, "Item") == LUA_TTABLE) { /* top+3 */
        size_t gl = 0;
        const char *gu = path_string(L, top + 3, p_group, &gl); /* top+4 */
        if (gu && cmp_bytes(gu, gl, g->uuid, UUID_LEN) == 0) {
            holder = SLOT_OURS;
        } else {
            holder = SLOT_OTHER;
            if (!gu) {
                lua_pop(L, 1);
                lua_pushnil(L);
            }
            lua_replace(L, top + 1);
        }
    }
    lua_settop(L, top + (holder == SLOT_OTHER));
    STACK_LEAVE(L, holder == SLOT_OTHER);
    return holder;
}

/* Steps the target of move mv 1 us later, after finding its slot held by a
 * row of another group (holder's group on top, popped). Returns 1, or 0 with
 * a SortKeyTaken error in the holder's place when the owner has had its
 * DDB_REWRITE_MAX_BUMPS steps already or its target is not a timestamp that
 * can step. targets/bumps: per owner pk, its target and its steps so far. */
static int bump(ctx *c, const group_plan *g, move_ref *mv, int targets, int bumps) {
    lua_State *L = c->L;
    STACK_ENTER(L);
    char next[TS_LEN + 1];
    lua_pushlstring(L, mv->pk, mv->pk_len);
    lua_rawget(L, bumps);
    lua_Integer done = lua_tointeger(L, -1); /* 0 when nil */
    lua_pop(L, 1);
    if (done >= DDB_REWRITE_MAX_BUMPS || !next_usec(mv->to, mv->to_len, next)) {
        const char *other = lua_tostring(L, -1);
        if (done >= DDB_REWRITE_MAX_BUMPS)
            push_error(L, "SortKeyTaken",
                       "%s: the row of group %s cannot move to %s nor to any of the %d microseconds after "
                       "it: rows of other groups hold them all (the last one: group %s)",
                       mv->pk, g->uuid, g->sk, (int)DDB_REWRITE_MAX_BUMPS, other ? other : "(none)");
        else
            push_error(L, "SortKeyTaken",
                       "%s already has a row at %s (group %s), and that sk is not a timestamp to step "
                       "past: the row of group %s cannot move there",
                       mv->pk, mv->to, other ? other : "(none)", g->uuid);
        lua_replace(L, -2);
        STACK_LEAVE(L, 0);
        return 0;
    }
    lua_pop(L, 1);
    lua_pushlstring(L, mv->pk, mv->pk_len);
    lua_pushinteger(L, done + 1);
    lua_rawset(L, bumps);
    lua_pushlstring(L, mv->pk, mv->pk_len);
    lua_pushlstring(L, next, TS_LEN);
    mv->to = lua_tolstring(L, -1, &mv->to_len); /* stays anchored in targets */
    lua_rawset(L, targets);
    STACK_LEAVE(L, -1);
    return 1;
}

/* What a failed TransactWriteItems (error at err, moving the n rows m) means.
 *   X_RACE    rows changed under us: a Delete's condition failed (the row
 *             moved, or the read was stale and the slot holds a row of
 *             another group now), a conflicting transaction, or a Put's
 *             slot turned out free or held by our own group's row (another
 *             processor moved it there): re-read and decide again.
 *   X_BUMPED  the only obstacles were slots held by rows of other groups:
 *             those owners' targets stepped 1 us later (m, targets, bumps
 *             updated): send the rows again.
 * Both leave the stack unchanged (steps taken are kept with X_RACE too).
 *   X_FAIL    the error to report is pushed: err itself when it is not a
 *             cancellation by conditions and conflicts, the GetItem's error,
 *             or SortKeyTaken (see bump). */
static int on_cancel(ctx *c, const group_plan *g, int err, move_ref *m, int n, int targets, int bumps) {
    static const char *const p_code[] = {"Code", NULL};
    lua_State *L = c->L;
    STACK_ENTER(L);
    const int top = lua_gettop(L);
    err = lua_absindex(L, err);
    size_t len = 0;
    int race = 0, other = 0, bumped = 0;
    push_field(L, err, "code"); /* top+1 */
    const char *code = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (!equals(code, len, "TransactionCanceledException") ||
        push_field(L, err, "cancellation_reasons") != LUA_TTABLE) /* top+2 */
        goto fail_with_err;
    const int reasons = top + 2;
    lua_Unsigned nr = lua_rawlen(L, reasons);
    for (lua_Unsigned i = 1; i <= nr && !other; i++) {
        lua_rawgeti(L, reasons, (lua_Integer)i);
        const char *r = path_string(L, -1, p_code, &len);
        if (equals(r, len, "ConditionalCheckFailed")) {
            if (i % 2 == 1) race = 1; /* a Delete's: its row moved; a Put's: below */
        } else if (equals(r, len, "TransactionConflict")) race = 1;
        else if (r && !equals(r, len, "None")) other = 1;
        lua_pop(L, 2);
    }
    if (other) goto fail_with_err;
    for (int k = 0; k < n; k++) {
        lua_rawgeti(L, reasons, 2 * (lua_Integer)k + 2); /* the reason for row k's Put */
        const char *r = path_string(L, -1, p_code, &len);
        int taken = equals(r, len, "ConditionalCheckFailed");
        lua_pop(L, 2);
        if (!taken) continue;
        int h = slot_holder(c, g, &m[k]);
        if (h < 0 || (h == SLOT_OTHER && !bump(c, g, &m[k], targets, bumps))) { /* the error on top */
            lua_replace(L, top + 1);
            lua_settop(L, top + 1);
            STACK_LEAVE(L, 1);
            return X_FAIL;
        }
        if (h == SLOT_OTHER) bumped = 1;
        else race = 1;
    }
    if (race || bumped) {
        lua_settop(L, top);
        STACK_LEAVE(L, 0);
        return race ? X_RACE : X_BUMPED;
    }
fail_with_err:
    lua_settop(L, top);
    lua_pushvalue(L, err);
    STACK_LEAVE(L, 1);
    return X_FAIL;
}

/* Moves every row of best older than the group's target, each to its owner's
 * target (targets[pk], else the group's sk; later after bumps). Returns
 * W_DONE or W_RACE with the stack unchanged, or W_FAIL with the error pushed. */
static int write_moves(ctx *c, group_plan *g, int best, int targets, int bumps) {
    lua_State *L = c->L;
    const int base = lua_gettop(L);
    size_t len;
    int n = 0;
    lua_newtable(L); /* base+1: rows to move */
    lua_pushnil(L);
    while (lua_next(L, best)) {
        const char *sk = path_string(L, -1, P_ROW_SK, &len);
        int older = sk && cmp_bytes(sk, len, g->sk, g->sk_len) < 0;
        lua_pop(L, 1);
        if (older && n < MAX_RECORDS) lua_rawseti(L, base + 1, ++n);
        else lua_pop(L, 1);
    }
    if (n == 0) {
        lua_settop(L, base);
        return W_DONE;
    }
    move_ref *m = lua_newuserdatauv(L, (size_t)n * sizeof *m, 0); /* base+2 */
    for (int k = 0; k < n; k++) {
        lua_rawgeti(L, base + 1, k + 1);
        m[k].row = k + 1;
        m[k].pk = path_string(L, -1, P_ROW_PK, &m[k].pk_len); /* fold_row checked both */
        m[k].sk = path_string(L, -2, P_ROW_SK, &m[k].sk_len);
        if (!m[k].pk || !m[k].sk) { /* only if the client changed the row since */
            m[k].pk = m[k].sk = "";
            m[k].pk_len = m[k].sk_len = 0;
        }
        /* anchored in our own array, past the rows, whatever the client
         * does with the response tables it gave us */
        lua_rawseti(L, base + 1, n + 2 * (lua_Integer)k + 2);
        lua_rawseti(L, base + 1, n + 2 * (lua_Integer)k + 1);
        lua_pop(L, 1);
        m[k].to = g->sk;
        m[k].to_len = g->sk_len;
        lua_pushlstring(L, m[k].pk, m[k].pk_len);
        if (lua_rawget(L, targets) == LUA_TSTRING) m[k].to = lua_tolstring(L, -1, &m[k].to_len);
        lua_pop(L, 1); /* a target stays anchored in targets */
    }
    qsort(m, (size_t)n, sizeof *m, cmp_move);

    if (!run_inject(c, "before_write", g)) goto fail;
    for (int from = 0; from < n;) {
        int cnt = n - from < DDB_REWRITE_ROWS_PER_TX ? n - from : DDB_REWRITE_ROWS_PER_TX;
        push_transaction(c, g, base + 1, m + from, cnt); /* base+3 */
        if (call_client(c, "TransactWriteItems", base + 3)) {
            g->moved += cnt;
            from += cnt;
            lua_settop(L, base + 2);
            continue;
        }
        /* base+4: the error */
        int x = on_cancel(c, g, base + 4, m + from, cnt, targets, bumps);
        if (x == X_FAIL) goto fail;
        lua_settop(L, base + 2);
        if (x == X_RACE) {
            lua_settop(L, base);
            return W_RACE;
        }
        /* X_BUMPED: the same rows again, to their later targets; each time
         * an owner's step count grows, so this ends */
    }
    lua_settop(L, base);
    return W_DONE;
fail: /* the error is on top */
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    return W_FAIL;
}

/* ------------------------------------------------------------------ */
/* Applying a group                                                    */

/* Sets err.group (raw, when the error is a table without one). */
static void tag_error(lua_State *L, const group_plan *g) {
    if (lua_type(L, -1) != LUA_TTABLE) return;
    if (push_field(L, -1, "group") == LUA_TNIL) {
        lua_pushliteral(L, "group");
        lua_pushlstring(L, g->uuid, UUID_LEN);
        lua_rawset(L, -4);
    }
    lua_pop(L, 1);
}

/* Reads, decides and writes until the group is at its target. Returns the
 * outcome; OUT_FAILED leaves the error pushed, the others leave nothing. */
static int apply_group(ctx *c, group_plan *g) {
    lua_State *L = c->L;
    STACK_ENTER(L);
    const int base = lua_gettop(L);
    lua_newtable(L); /* base+1: owners (pk strings) found by the first round's reads */
    lua_newtable(L); /* base+2: targets, pk -> sk, of owners bumped past the group's sk */
    lua_newtable(L); /* base+3: bumps, pk -> steps taken */
    for (lua_Integer round = 0;; round++) {
        lua_newtable(L); /* base+4: best row per owner */
        int ok = round == 0 ? read_gsi(c, g, base + 4) && complete_rows(c, g, base + 4)
                            : reread_owners(c, g, base + 1, base + 4);
        if (!ok || !run_inject(c, "after_read", g)) goto fail;
        if (round == 0) collect_owners(L, base + 4, base + 1);
        int w = write_moves(c, g, base + 4, base + 2, base + 3);
        if (w == W_FAIL) goto fail;
        lua_settop(L, base + 3);
        if (w == W_DONE) break;
        if (round >= c->max_rounds) {
            push_error(L, "RewriteContention",
                       "group %s: its rows kept changing during %d re-reads; not moved to %s",
                       g->uuid, (int)c->max_rounds, g->sk);
            goto fail;
        }
    }
    lua_settop(L, base);
    STACK_LEAVE(L, 0);
    return g->outcome = g->moved > 0 ? OUT_MOVED : OUT_NONE;
fail: /* the error is on top */
    tag_error(L, g);
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    STACK_LEAVE(L, 1);
    return g->outcome = OUT_FAILED;
}

/* ------------------------------------------------------------------ */
/* Report                                                              */

static void set_int(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void push_summary(ctx *c) {
    lua_State *L = c->L;
    STACK_ENTER(L);
    const plan *p = &c->p;
    lua_Integer moved = 0, applied = 0, skipped = 0, failed = 0;
    int first_failed = -1;
    for (int gi = 0; gi < p->ngroups; gi++) {
        const group_plan *g = &p->groups[gi];
        moved += g->moved;
        if (g->outcome == OUT_FAILED && first_failed < 0) first_failed = gi; /* earliest first */
    }
    for (int i = 0; i < p->nrec; i++) {
        int gi = p->rec_group[i];
        const group_plan *g = gi >= 0 ? &p->groups[gi] : NULL;
        if (!g) skipped++;
        else if (g->outcome == OUT_FAILED) failed++;
        else if (g->outcome == OUT_MOVED && g->target_rec == i + 1) applied++;
        else skipped++;
    }
    lua_createtable(L, 0, 8);
    set_int(L, "processed", p->nrec);
    set_int(L, "moved", moved);
    set_int(L, "applied", applied);
    set_int(L, "skipped", skipped);
    set_int(L, "failed", failed);

    lua_createtable(L, first_failed >= 0, 0);
    mark_array(L, -1);
    if (first_failed >= 0) {
        lua_createtable(L, 0, 1);
        lua_rawgeti(L, c->anchors, (lua_Integer)first_failed * (A_SLOTS - 1) + A_ID);
        lua_setfield(L, -2, "itemIdentifier");
        lua_rawseti(L, -2, 1);
    }
    lua_setfield(L, -2, "batchItemFailures");

    lua_newtable(L);
    mark_array(L, -1);
    lua_Integer k = 0;
    for (int gi = 0; gi < p->ngroups; gi++) {
        if (p->groups[gi].outcome != OUT_FAILED) continue;
        lua_rawgeti(L, c->errs, gi + 1);
        lua_rawseti(L, -2, ++k);
    }
    lua_setfield(L, -2, "errors");
    STACK_LEAVE(L, 1);
}

/* ------------------------------------------------------------------ */
/* Entry point                                                         */

/* Pushes opts[name] (a non-empty string) or the default. */
static void opt_string(lua_State *L, const char *name, const char *dflt) {
    if (lua_istable(L, 3)) lua_getfield(L, 3, name);
    else lua_pushnil(L);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushstring(L, dflt);
    } else if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0) {
        luaL_error(L, "rewrite: opts.%s must be a non-empty string", name);
    }
}

static void read_opts(ctx *c) {
    lua_State *L = c->L;
    int t = lua_type(L, 3);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 3, "table or nil");
    opt_string(L, "table", DDB_REWRITE_TABLE);
    c->table = lua_gettop(L);
    opt_string(L, "index", DDB_REWRITE_INDEX);
    c->index = lua_gettop(L);

    c->max_rounds = DDB_REWRITE_MAX_ROUNDS;
    if (t == LUA_TTABLE) lua_getfield(L, 3, "max_rounds");
    else lua_pushnil(L);
    if (!lua_isnil(L, -1)) {
        int isint;
        c->max_rounds = lua_tointegerx(L, -1, &isint);
        if (!isint || c->max_rounds < 0 || c->max_rounds > MAX_ROUNDS_LIMIT)
            luaL_error(L, "rewrite: opts.max_rounds must be an integer from 0 to %d", MAX_ROUNDS_LIMIT);
    }
    lua_pop(L, 1);

    if (t == LUA_TTABLE) lua_getfield(L, 3, "inject");
    else lua_pushnil(L);
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
        luaL_error(L, "rewrite: opts.inject must be a function");
    c->inject = lua_gettop(L);
}

/* core.rewrite(client, records[, opts]) -> summary (see rewrite.h) */
static int l_rewrite(lua_State *L) {
    ctx c;
    memset(&c, 0, sizeof c);
    c.L = L;
    int ct = lua_type(L, 1);
    luaL_argexpected(L, ct == LUA_TTABLE || ct == LUA_TUSERDATA, 1, "client");
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 3);
    luaL_checkstack(L, STACK_NEED, "rewrite");
    lua_getfield(L, 1, "call");
    luaL_argcheck(L, lua_isfunction(L, -1), 1, "client without a call method");
    lua_pop(L, 1);
    c.client = 1;
    c.records = 2;
    read_opts(&c); /* 4 table, 5 index, 6 inject */

    lua_Unsigned n = lua_rawlen(L, 2);
    luaL_argcheck(L, n <= MAX_RECORDS, 2, "too many records");
    size_t bytes = (size_t)n * (sizeof(group_plan) + sizeof(int));
    void *mem = lua_newuserdatauv(L, bytes ? bytes : 1, 0); /* 7 */
    c.p.groups = mem;
    c.p.rec_group = (int *)(void *)(c.p.groups + n);
    c.p.nrec = (int)n;
    lua_newtable(L);
    c.anchors = lua_gettop(L);
    lua_newtable(L);
    c.by_uuid = lua_gettop(L);
    lua_newtable(L);
    c.errs = lua_gettop(L);

    build_plan(&c);
    for (int gi = 0; gi < c.p.ngroups; gi++) {
        if (apply_group(&c, &c.p.groups[gi]) == OUT_FAILED) lua_rawseti(L, c.errs, gi + 1);
    }
    push_summary(&c);
    return 1;
}

void ddb_open_rewrite(lua_State *L) {
    lua_getfield(L, -1, "array_mt"); /* set by ddb_open_json when it ran first */
    lua_pushcclosure(L, l_rewrite, 1);
    lua_setfield(L, -2, "rewrite");
}

/* json.h: strict RFC 8259 JSON <-> Lua 5.4 values, exact for integers.
 *
 * Mapping: object <-> table with string keys; array <-> table carrying the
 * array metatable (core.array_mt; decoded arrays get it) or whose keys are
 * exactly 1..n (an empty plain table is {}); null <-> lightuserdata NULL
 * (core.null; nil also encodes as null, e.g. holes of an array_mt table);
 * a JSON number without fraction/exponent that fits int64 <-> Lua integer,
 * else float. Integral floats below 2^53 encode without fraction (3.0 ->
 * 3), -0.0 as -0.0, other floats as the shortest of %.15g/%.16g/%.17g that
 * reads back exactly (".0" added if that looks like an integer); NaN and
 * infinities are errors. Strings must be valid UTF-8 both ways. Metamethods
 * are never invoked. Independent of the C locale.
 * Nesting deeper than DDB_JSON_MAX_DEPTH containers is an error both ways
 * (which is also how the encoder reports a cycle).
 *
 * Both functions return 0 on success, or -1 with a one-line, NUL-terminated
 * message in err (truncated to errlen) and the Lua stack as it was. They
 * raise only on a Lua memory error (decode allocates Lua strings/tables). */
#ifndef DDB_JSON_H
#define DDB_JSON_H

#include <lua.h>
#include <stddef.h>

#include "buf.h"

#define DDB_JSON_MAX_DEPTH 512

/* Appends the JSON text of the value at stack index idx to out. On error
 * out->len is restored (out's oom flag stays set if that was the cause). */
int ddb_json_encode(lua_State *L, int idx, ddb_buf *out, char *err, size_t errlen);

/* Decodes s[0..len) (one value, whitespace around it allowed) and pushes it.
 * Error messages name the problem and its byte offset (0-based). */
int ddb_json_decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen);

#endif

/* response_fuzz.c: libFuzzer target for response decoding as client.c's
 * l_request does it after a transfer (that half of client.c is not a
 * separate function, so its steps are repeated here on the same C entry
 * points: ddb_crc32 from transport.c, ddb_json_decode from json.c).
 *
 * Input: 2 bytes status (big endian, taken modulo 600), 1 byte CRC mode
 * (mode % 3: 0 no x-amz-crc32, 1 the right value, 2 the next 4 bytes as the
 * value), then the body. Checked beyond "no crash, no sanitizer report":
 *   - ddb_crc32 equals a bitwise reference CRC-32 for the body and for every
 *     suffix starting in its first 16 bytes (the PCLMUL path at every
 *     alignment and tail length; every 7th offset for bodies over 1 KiB), and a wrong x-amz-crc32 is caught;
 *   - a body that is not JSON is an InvalidResponse with a one-line message
 *     for a 2xx status, the raw body otherwise; a JSON body decodes to one
 *     value (and the stack is balanced either way). */
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "json.h"
#include "module.h"
#include "transport.h"

static uint32_t crc_reference(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

/* A fresh state per input, so that a finding replays from its input alone. */
static lua_State *new_state(void) {
    lua_State *L = luaL_newstate();
    if (!L) abort();
    lua_newtable(L);
    ddb_open_json(L);
    lua_pop(L, 1);
    return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    long status = (long)((data[0] << 8 | data[1]) % 600);
    int mode = data[2] % 3;
    size_t skip = 3;
    unsigned long given = 0;
    if (mode == 2) {
        if (size < 7) return 0;
        given = (unsigned long)data[3] << 24 | (unsigned long)data[4] << 16 | (unsigned long)data[5] << 8 | data[6];
        skip = 7;
    }
    size_t len = size - skip;
    char *body = fuzz_copy(data + skip, len);
    const unsigned char *ub = (const unsigned char *)body;

    /* CRC-32: the whole body and its suffixes from offsets 0..15 */
    uint32_t want = crc_reference(ub, len);
    unsigned long got = ddb_crc32(ub, len);
    FUZZ_CHECK(got == want, "ddb_crc32 %lu, reference %u, length %zu", got, (unsigned)want, len);
    for (size_t off = 1; off < 16 && off < len; off += len < 1024 ? 1 : 7)
        FUZZ_CHECK(ddb_crc32(ub + off, len - off) == crc_reference(ub + off, len - off),
                   "ddb_crc32 differs at offset %zu, length %zu", off, len - off);

    int has_crc32 = mode != 0;
    unsigned long crc32 = mode == 1 ? want : given;
    if (has_crc32 && got != crc32) { /* CRC32CheckFailed: nothing decoded */
        FUZZ_CHECK(mode == 2, "the right checksum was refused");
        free(body);
        return 0;
    }
    lua_State *L = new_state();
    int top = lua_gettop(L);
    lua_pushinteger(L, status);
    if (len == 0) {
        lua_pushnil(L);
    } else {
        char err[256];
        memset(err, 0x55, sizeof err);
        if (ddb_json_decode(L, body, len, err, sizeof err) != 0) {
            FUZZ_CHECK(lua_gettop(L) == top + 1, "failed decode changed the stack");
            size_t n = strnlen(err, sizeof err);
            FUZZ_CHECK(n > 0 && n < sizeof err && !memchr(err, '\n', n), "bad error message");
            if (status >= 200 && status < 300) {
                lua_pop(L, 1);
                char msg[320];
                int w = snprintf(msg, sizeof msg, "response is not valid JSON: %s", err);
                FUZZ_CHECK(w > 0 && (size_t)w < sizeof msg, "InvalidResponse message truncated");
                lua_pushnil(L);
                lua_pushstring(L, "InvalidResponse");
                lua_pushstring(L, msg);
            } else {
                lua_pushlstring(L, body, len);
            }
        } else {
            FUZZ_CHECK(lua_gettop(L) == top + 2, "decode pushed a wrong number of values");
        }
    }
    lua_settop(L, top);
    lua_close(L);
    free(body);
    return 0;
}

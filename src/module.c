/* module.c: entry point of ddb.core, plus the small process-level helpers
 * the Lua layer needs and plain Lua lacks: a UTC clock with microseconds,
 * a sleep, cryptographically random bytes, isatty and fsync. */
#include "module.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* now() -> seconds, microseconds (UTC, since the epoch) */
static int l_now(lua_State *L) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return luaL_error(L, "clock_gettime failed");
    lua_pushinteger(L, (lua_Integer)ts.tv_sec);
    lua_pushinteger(L, (lua_Integer)(ts.tv_nsec / 1000));
    return 2;
}

/* monotonic_ms() -> milliseconds on a clock that never goes back */
static int l_monotonic_ms(lua_State *L) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return luaL_error(L, "clock_gettime failed");
    lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    return 1;
}

/* sleep_ms(n): sleeps n milliseconds (n >= 0), resuming after signals. */
static int l_sleep_ms(lua_State *L) {
    lua_Integer ms = luaL_checkinteger(L, 1);
    luaL_argcheck(L, ms >= 0, 1, "must be >= 0");
    struct timespec req = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L}, rem;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) req = rem;
    return 0;
}

/* random_bytes(n) -> string of n bytes from OpenSSL's CSPRNG (1 <= n <= 4096) */
static int l_random_bytes(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1 && n <= 4096, 1, "must be between 1 and 4096");
    unsigned char buf[4096];
    if (RAND_bytes(buf, (int)n) != 1) return luaL_error(L, "RAND_bytes failed");
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    return 1;
}

/* isatty(fd) -> boolean (0 stdin, 1 stdout, 2 stderr) */
static int l_isatty(lua_State *L) {
    lua_Integer fd = luaL_checkinteger(L, 1);
    luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "must be 0, 1 or 2");
    lua_pushboolean(L, isatty((int)fd) == 1);
    return 1;
}

/* fsync(f) -> true | nil, message: flushes the open Lua file f and makes its
 * data durable (fsync). fsync(dir) -> the same for a directory path, so that
 * a rename inside it is durable; a file system that cannot sync directories
 * (EINVAL, ENOTSUP) counts as success. Raises for a closed file or another
 * argument type. */
static int l_fsync(lua_State *L) {
    int rc, e;
    if (lua_type(L, 1) == LUA_TSTRING) {
        const char *dir = lua_tostring(L, 1);
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            e = errno;
        } else {
            rc = fsync(fd);
            e = rc != 0 && errno != EINVAL && errno != ENOTSUP ? errno : 0;
            close(fd);
        }
    } else {
        luaL_Stream *f = luaL_checkudata(L, 1, LUA_FILEHANDLE);
        luaL_argcheck(L, f->closef != NULL, 1, "file is closed");
        rc = fflush(f->f) == 0 ? fsync(fileno(f->f)) : -1;
        e = rc != 0 ? errno : 0;
    }
    if (e) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(e));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

#define GUARD_MT "ddb.core.guard"

static int guard_close(lua_State *L) {
    int **flag = luaL_checkudata(L, 1, GUARD_MT);
    **flag = 0;
    return 0;
}

void ddb_guard_new(lua_State *L, int *flag) {
    int **g = lua_newuserdatauv(L, sizeof *g, 0);
    *g = flag;
    if (luaL_newmetatable(L, GUARD_MT)) {
        lua_pushcfunction(L, guard_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
}

void ddb_guard_arm(lua_State *L, int obj, int uv, int *flag) {
    lua_getiuservalue(L, obj, uv);
    lua_toclose(L, -1);
    *flag = 1;
}

void ddb_new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction close,
                   lua_CFunction tostring) {
    if (luaL_newmetatable(L, name)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}

int luaopen_ddb_core(lua_State *L);

int luaopen_ddb_core(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"now", l_now},
        {"monotonic_ms", l_monotonic_ms},
        {"sleep_ms", l_sleep_ms},
        {"random_bytes", l_random_bytes},
        {"isatty", l_isatty},
        {"fsync", l_fsync},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    ddb_open_sigv4(L);
    ddb_open_json(L);
    ddb_open_client(L);
    ddb_open_rewrite(L);
    ddb_open_http(L);
    return 1;
}

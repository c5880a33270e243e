/* module.h: how the files of ddb.core register themselves.
 *
 * luaopen_ddb_core (module.c) creates the module table and calls each
 * ddb_open_* with that table on top of the stack; each adds its own
 * functions/fields to it and leaves the stack as it found it. */
#ifndef DDB_MODULE_H
#define DDB_MODULE_H

#include <lauxlib.h>
#include <lua.h>

void ddb_open_sigv4(lua_State *L);  /* sign(req)                      sigv4_lua.c */
void ddb_open_json(lua_State *L);   /* json_encode/json_decode/null/array_mt  json.c */
void ddb_open_client(lua_State *L); /* client(opts) userdata          client.c    */
void ddb_open_rewrite(lua_State *L); /* rewrite(client, records, opts) rewrite.c */
void ddb_open_http(lua_State *L);    /* http_client(opts) userdata     http.c      */

/* Creates the metatable `name` once (luaL_newmetatable) with `methods` as its
 * __index, `close` as __gc and __close, `tostring` as __tostring; leaves the
 * stack as it found it. For the userdata types of the files above. */
void ddb_new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction close,
                   lua_CFunction tostring);

/* A flag that is set while a C function runs and cleared however it ends
 * (return or error): for objects whose methods must not be reentered, e.g.
 * by a finalizer that the collector runs at an allocation in the middle of
 * one. ddb_guard_new(L, flag) pushes a guard for `flag` (an int in the
 * object's userdata): store it as a user value of that object so that it
 * lives as long as the flag. ddb_guard_arm(L, obj, uv, flag), inside a
 * method (obj: the object's stack index, uv: the user value holding the
 * guard), pushes the guard, marks it to-be-closed and sets *flag; its
 * __close clears it. Arm it before anything in the method that can allocate
 * (converting an argument to a string included): any allocation can run a
 * finalizer. */
void ddb_guard_new(lua_State *L, int *flag);
void ddb_guard_arm(lua_State *L, int obj, int uv, int *flag);

#endif

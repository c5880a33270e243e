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

#endif

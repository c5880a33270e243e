/* sigv4_lua.c: placeholder until implemented. */
#include "module.h"
void ddb_open_sigv4(lua_State *L) { (void)L; }

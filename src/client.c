/* client.c: placeholder until implemented. */
#include "module.h"
void ddb_open_client(lua_State *L) { (void)L; }

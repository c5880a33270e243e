/* json.c: placeholder until implemented. */
#include "module.h"
void ddb_open_json(lua_State *L) { (void)L; }

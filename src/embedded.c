/*
 * embedded.c - pipeline_preload: require "pipeline" from the Lua sources
 * compiled into the static library.
 */
#include <lauxlib.h>
#include <lua.h>

#include "../include/pipeline.h"
#include "compat.h"
#include "embedded.h"

/* package.preload loader: compiles and runs the module whose index is the
 * upvalue, passing the module name as require does. */
static int load_embedded(lua_State *L) {
  const pipeline_embedded_module *m =
      &pipeline_embedded_modules[lua_tointeger(L, lua_upvalueindex(1))];
  if (luaL_loadbuffer(L, m->code, m->size, m->chunkname) != 0) return lua_error(L);
  lua_pushstring(L, m->module);
  lua_call(L, 1, 1);
  return 1;
}

int pipeline_preload(lua_State *L) {
  lua_Integer i;
  lua_getglobal(L, "package");
  if (!lua_istable(L, -1)) return luaL_error(L, "pipeline_preload: open the package library first");
  lua_getfield(L, -1, "preload");
  if (!lua_istable(L, -1)) return luaL_error(L, "pipeline_preload: package.preload is not a table");
  for (i = 0; pipeline_embedded_modules[i].module != NULL; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, pipeline_embedded_modules[i].module);
  }
  lua_pushcfunction(L, luaopen_pipeline_core);
  lua_setfield(L, -2, "pipeline.core");
  lua_pop(L, 2);
  return 0;
}

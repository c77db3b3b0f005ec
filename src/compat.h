/*
 * compat.h - the differences between the Lua versions this module builds
 * against (5.1, LuaJIT 2.1, 5.2, 5.3, 5.4), in one place.  Code elsewhere
 * uses the Lua 5.4 API names.
 */
#ifndef PIPELINE_COMPAT_H
#define PIPELINE_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

/* PUC Lua 5.1 lacks the 5.2 auxiliary API; LuaJIT 2.1 has it (and defines
 * luaL_newlib, which tells the two apart). */
#if LUA_VERSION_NUM < 502 && !defined(luaL_newlib)
#define luaL_newlib(L, l) (lua_newtable(L), luaL_register(L, NULL, l))
#define luaL_setfuncs(L, l, n) luaL_register(L, NULL, l)
#define luaL_setmetatable(L, t) (luaL_getmetatable(L, t), lua_setmetatable(L, -2))
#define luaL_fileresult(L, stat, name) pipeline_fileresult(L, stat, name)
#include <errno.h>
#include <string.h>
/* lauxlib 5.2's luaL_fileresult: true, or nil, "name: reason", errno. */
static inline int pipeline_fileresult(lua_State *L, int stat, const char *name) {
  int saved = errno;
  if (stat) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  if (name)
    lua_pushfstring(L, "%s: %s", name, strerror(saved));
  else
    lua_pushstring(L, strerror(saved));
  lua_pushinteger(L, saved);
  return 3;
}
#endif

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen(L, i)
#define lua_absindex(L, i) ((i) > 0 || (i) <= LUA_REGISTRYINDEX ? (i) : lua_gettop(L) + (i) + 1)
#endif

/* lua_rotate appeared in 5.3; the callers only move the top n values down
 * to index i, which repeated lua_insert does. */
#if LUA_VERSION_NUM < 503
#define lua_rotate(L, i, n) pipeline_rotate(L, i, n)
static inline void pipeline_rotate(lua_State *L, int index, int n) {
  int k;
  for (k = 0; k < n; k++) lua_insert(L, index);
}
#endif

/* lua_newuserdatauv appeared in 5.4; older versions have one implicit value. */
#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, size, nuv) lua_newuserdata(L, size)
#endif

#endif

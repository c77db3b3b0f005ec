/*
 * compat.h - the differences between the Lua versions this module builds
 * against, in one place.  Code elsewhere uses the Lua 5.4 API names.
 */
#ifndef PIPELINE_COMPAT_H
#define PIPELINE_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define luaL_newlib(L, l) (lua_newtable(L), luaL_register(L, NULL, l))
#define luaL_setfuncs(L, l, n) luaL_register(L, NULL, l)
#define lua_rawlen(L, i) lua_objlen(L, i)
#endif

/* lua_newuserdatauv appeared in 5.4; older versions have one implicit value. */
#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, size, nuv) lua_newuserdata(L, size)
#endif

#endif

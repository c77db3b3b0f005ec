/*
 * os.h - signals, sleep, the monotonic clock, terminals and file modes (os.c).
 */
#ifndef PIPELINE_OS_H
#define PIPELINE_OS_H

#include <lua.h>

/* The module's functions of this file (core.c registers them): core.sleep, core.monotonic,
 * core.catch_signals, core.release_signals, core.interrupted, core.caught_signal, core.isatty,
 * core.file_mode. */
int pipeline_lua_sleep(lua_State *L);
int pipeline_lua_monotonic(lua_State *L);
int pipeline_lua_catch_signals(lua_State *L);
int pipeline_lua_release_signals(lua_State *L);
int pipeline_lua_interrupted(lua_State *L);
int pipeline_lua_caught_signal(lua_State *L);
int pipeline_lua_isatty(lua_State *L);
int pipeline_lua_file_mode(lua_State *L);

#endif

/*
 * sandbox.h - the config file's sandbox (a capped lua_State of its own) and
 * the bounded, non-blocking read of the files a configuration names.
 */
#ifndef PIPELINE_SANDBOX_H
#define PIPELINE_SANDBOX_H

#include <lua.h>

/* core.run_config(text, chunkname) -> value | nil, stage, message */
int pipeline_run_config(lua_State *L);

/* core.read_file(path, limit) -> text | nil, message, kind */
int pipeline_read_file(lua_State *L);

#endif

/*
 * pipeline.h - embedding codearts-pipeline in a host program.
 *
 * Link the static library (libcodearts-pipeline.a, with libcurl and
 * libcrypto; CMake: find_package(codearts-pipeline) and the target
 * codearts-pipeline::codearts-pipeline; or pkg-config codearts-pipeline), then
 * in each lua_State:
 *
 *     luaL_openlibs(L);
 *     pipeline_preload(L);               // no Lua files needed on disk
 *     luaL_dostring(L, "local pipeline = require 'pipeline' ...");
 *
 * The Lua modules need lua-cjson ("cjson", "cjson.safe"): have it on
 * package.cpath, or link it and preload it too (see examples/host/).
 *
 * Each lua_State is independent: several states may use the module on
 * several threads at once.  With libcurl older than 7.84.0 (no
 * CURL_VERSION_THREADSAFE), make the first require of "pipeline.core" (which
 * initialises libcurl once per process) before other threads start.
 */
#ifndef CODEARTS_PIPELINE_H
#define CODEARTS_PIPELINE_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The C module: what require "pipeline.core" runs. */
int luaopen_pipeline_core(lua_State *L);

/* Registers "pipeline", its Lua submodules and "pipeline.core" in
 * package.preload, from the sources compiled into the library, so that
 * require finds them without any file on disk.  Needs the package library
 * (luaL_openlibs).  Returns 0; raises a Lua error if package is missing, so
 * call it protected (lua_pcall) if that can happen. */
int pipeline_preload(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif

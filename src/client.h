/*
 * client.h - the client handle: one libcurl easy handle (and so its
 * kept-alive connection) and its blocking request.
 */
#ifndef PIPELINE_CLIENT_H
#define PIPELINE_CLIENT_H

#include <lauxlib.h>
#include <lua.h>

#include "transfer.h"

#define PIPELINE_CLIENT_TYPE "pipeline.client"

/* Registers the client metatable; leaves nothing on the stack. */
void pipeline_client_register(lua_State *L);

/* Registers a userdata type: the metatable name, whose __gc and __close (Lua
 * 5.4) call close, with the other metamethods meta (or NULL) and methods as
 * its __index. */
void pipeline_register_type(lua_State *L, const char *name, lua_CFunction close,
                            const luaL_Reg *meta, const luaL_Reg *methods);

/* core.client([options]) -> client */
int pipeline_client_new(lua_State *L);

/* Creates a client with the transport options o (read by
 * pipeline_transport_options_read) and pushes it. */
void pipeline_client_push(lua_State *L, const pipeline_transport_options *o);

/* The open client at index (raises for another value or a closed one). */
pipeline_transfer *pipeline_client_check(lua_State *L, int index);

/* client:request(...) with the client at index 1. */
int pipeline_client_request(lua_State *L);

/* client:close(): idempotent. */
int pipeline_client_close(lua_State *L);

#endif

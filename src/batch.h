/*
 * batch.h - many requests at once over one libcurl multi handle, advanced
 * in steps, so the Lua side can run them concurrently and a host can drive
 * them from its own loop without blocking.
 */
#ifndef PIPELINE_BATCH_H
#define PIPELINE_BATCH_H

#include <lua.h>

#define PIPELINE_BATCH_TYPE "pipeline.batch"

/* How many requests a batch may have in flight: the default, and the most
 * (core.DEFAULT_CONCURRENCY, core.MAX_CONCURRENCY for the Lua side). */
#define PIPELINE_DEFAULT_CONCURRENCY 8
#define PIPELINE_MAX_CONCURRENCY 256

/* Registers the batch metatable; leaves nothing on the stack. */
void pipeline_batch_register(lua_State *L);

/* core.batch([options]) -> batch; options: the client's transport options
 * and concurrency (how many requests may be in flight, default 8). */
int pipeline_batch_new(lua_State *L);

#endif

/*
 * signals.h - SIGINT and SIGTERM noted instead of acted on, for a program
 * (the command line's watcher) that must finish what it is doing before it
 * stops: core.catch_signals(), core.caught_signal(), core.release_signals().
 */
#ifndef PIPELINE_SIGNALS_H
#define PIPELINE_SIGNALS_H

#include <lua.h>

/* Whether a caught signal is waiting (for core.sleep, which then ends early). */
int pipeline_signal_pending(void);

int pipeline_catch_signals(lua_State *L);
int pipeline_caught_signal(lua_State *L);
int pipeline_release_signals(lua_State *L);

#endif

/*
 * os.h - signals, sleep, the monotonic clock, terminals and file modes (os.c).
 */
#ifndef PIPELINE_OS_H
#define PIPELINE_OS_H

#include <lua.h>

/* Sets core.sleep, monotonic, catch_signals, release_signals, interrupted,
 * caught_signal, isatty and file_mode in the table on top of the stack. */
void pipeline_os_register(lua_State *L);

#endif

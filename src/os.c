/*
 * os.c - what the module needs of the operating system: signals for the
 * command line, sleeping, a monotonic clock, terminals and file modes.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "compat.h"
#include "os.h"
#include "transfer.h"

/* ------------------------------------------------------------ signals
 * The command line's way to stop at once on Ctrl-C or SIGTERM: a handler
 * that only counts (pipeline_interrupts) and remembers the signal; sleeps
 * and transfers look at the count.  Installed by the command line only,
 * never by the library for a host, whose signals are its own business. */
static volatile sig_atomic_t last_signal = 0;
static int catching = 0;
static struct sigaction previous_int, previous_term;

static void on_signal(int signum) {
  last_signal = signum;
  pipeline_interrupts = pipeline_interrupts + 1;
}

/* core.catch_signals() -> true: installs the handler for SIGINT and
 * SIGTERM (without SA_RESTART, so a blocking call returns), keeping the
 * previous ones for core.release_signals. */
static int core_catch_signals(lua_State *L) {
  struct sigaction sa;
  lua_pushboolean(L, 1);
  if (catching) return 1;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  last_signal = 0; /* a run of the command line starts uninterrupted */
  sigaction(SIGINT, &sa, &previous_int);
  sigaction(SIGTERM, &sa, &previous_term);
  catching = 1;
  return 1;
}

/* core.release_signals() -> true: puts the previous handlers back and
 * forgets the last signal caught. */
static int core_release_signals(lua_State *L) {
  lua_pushboolean(L, 1);
  last_signal = 0;
  if (!catching) return 1;
  sigaction(SIGINT, &previous_int, NULL);
  sigaction(SIGTERM, &previous_term, NULL);
  catching = 0;
  return 1;
}

/* core.interrupted() -> the number of the last signal caught, or nil */
static int core_interrupted(lua_State *L) {
  if (last_signal == 0) return 0;
  lua_pushinteger(L, (lua_Integer)last_signal);
  return 1;
}

/* core.caught_signal() -> "SIGINT", "SIGTERM" or nil: the last one caught */
static int core_caught_signal(lua_State *L) {
  if (last_signal == SIGINT)
    lua_pushliteral(L, "SIGINT");
  else if (last_signal == SIGTERM)
    lua_pushliteral(L, "SIGTERM");
  else
    lua_pushnil(L);
  return 1;
}

/* core.sleep(seconds) -> true | false when a caught signal cut it short.
 * Blocks the calling thread; the default `sleep` of a client, which a host
 * replaces with one that yields to its own loop. */
static int core_sleep(lua_State *L) {
  lua_Number seconds = luaL_checknumber(L, 1);
  long at_start = (long)pipeline_interrupts;
  struct timespec ts;
  luaL_argcheck(L, seconds >= 0 && seconds < 1e9, 1, "out of range");
  while (seconds > 0) {
    /* in slices while a handler is installed: the signal may be delivered
     * to another thread (libcurl's resolver), leaving this one asleep */
    lua_Number slice = catching && seconds > 0.05 ? 0.05 : seconds;
    ts.tv_sec = (time_t)slice;
    ts.tv_nsec = (long)((slice - (lua_Number)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
      if ((long)pipeline_interrupts != at_start) break;
    }
    if ((long)pipeline_interrupts != at_start) {
      lua_pushboolean(L, 0);
      return 1;
    }
    seconds -= slice;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.monotonic() -> seconds from an arbitrary start, never going back:
 * for deadlines and elapsed times, which wall-clock changes must not skew. */
static int core_monotonic(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* core.isatty(fd) -> whether the file descriptor (0, 1, 2) is a terminal,
 * for the command line's live display. */
static int core_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)) == 1);
  return 1;
}

/* core.file_mode(path) -> permission bits, owner uid | nil, message */
static int core_file_mode(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  lua_pushinteger(L, (lua_Integer)st.st_uid);
  return 2;
}

void pipeline_os_register(lua_State *L) {
  static const luaL_Reg functions[] = {{"sleep", core_sleep},
                                       {"monotonic", core_monotonic},
                                       {"catch_signals", core_catch_signals},
                                       {"release_signals", core_release_signals},
                                       {"interrupted", core_interrupted},
                                       {"caught_signal", core_caught_signal},
                                       {"isatty", core_isatty},
                                       {"file_mode", core_file_mode},
                                       {NULL, NULL}};
  luaL_setfuncs(L, functions, 0);
}

/*
 * signals.c - SIGINT and SIGTERM noted in a flag that Lua reads between two
 * steps of its work, so a request in flight is finished (libcurl goes on
 * after an interrupted poll) and nothing is left half done.  The handlers
 * are process-wide: for programs, not for libraries inside a host.
 */
#define _POSIX_C_SOURCE 200809L

#include "signals.h"

#include <signal.h>
#include <string.h>

#include <lauxlib.h>

static volatile sig_atomic_t caught = 0;
static struct sigaction saved_int, saved_term;
static int installed = 0;

static void note_signal(int signum) { caught = signum; }

int pipeline_signal_pending(void) { return installed && caught != 0; }

/* core.catch_signals() -> true: from now on SIGINT and SIGTERM are noted,
 * not acted on; the flag starts clear. */
int pipeline_catch_signals(lua_State *L) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = note_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0; /* no SA_RESTART: a sleep ends early */
  caught = 0;
  if (!installed) {
    if (sigaction(SIGINT, &action, &saved_int) != 0 ||
        sigaction(SIGTERM, &action, &saved_term) != 0)
      return luaL_error(L, "cannot catch SIGINT and SIGTERM");
    installed = 1;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.caught_signal() -> "SIGINT", "SIGTERM" or nil: the last one noted. */
int pipeline_caught_signal(lua_State *L) {
  sig_atomic_t signum = caught;
  if (signum == SIGINT)
    lua_pushliteral(L, "SIGINT");
  else if (signum == SIGTERM)
    lua_pushliteral(L, "SIGTERM");
  else
    lua_pushnil(L);
  return 1;
}

/* core.release_signals() -> true: the handlers from before catch_signals
 * again, and the flag cleared. */
int pipeline_release_signals(lua_State *L) {
  if (installed) {
    sigaction(SIGINT, &saved_int, NULL);
    sigaction(SIGTERM, &saved_term, NULL);
    installed = 0;
  }
  caught = 0;
  lua_pushboolean(L, 1);
  return 1;
}

/*
 * fuzz_common.h - what the libFuzzer harnesses share: a Lua state with
 * pipeline.core loaded, and a check that aborts (a finding) with a message.
 */
#ifndef PIPELINE_FUZZ_COMMON_H
#define PIPELINE_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "pipeline.h"

/* A finding: the harness's rule is broken.  abort() makes libFuzzer keep the
 * input as a crash artifact. */
#define FUZZ_CHECK(cond, what)                                                                     \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", (what), __FILE__, __LINE__);              \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* One Lua state for the whole run, with pipeline.core at the top of its
 * stack (index 1); the harness keeps the stack at that height. */
static lua_State *fuzz_lua(void) {
  static lua_State *L = NULL;
  if (L == NULL) {
    L = luaL_newstate();
    FUZZ_CHECK(L != NULL, "luaL_newstate");
    luaL_openlibs(L);
    luaL_requiref(L, "pipeline.core", luaopen_pipeline_core, 0);
  }
  lua_settop(L, 1);
  return L;
}

#endif

/*
 * threads.c - several lua_States on several threads use codearts-pipeline
 * at once, each making requests to the simulator: retries one by one on its
 * own client, then a retry_many over the multi interface.  Built against the
 * static library; run under ThreadSanitizer in CI.
 *
 *   pipeline-threads THREADS PIPELINE RUN...   (runs shared out by thread)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "pipeline.h"

int luaopen_cjson(lua_State *L);
int luaopen_cjson_safe(lua_State *L);

/* lua-cjson is linked in: each state preloads its modules */
static const luaL_Reg json_modules[] = {{"cjson", luaopen_cjson},
                                        {"cjson.safe", luaopen_cjson_safe}};

#define MAX_THREADS 16

typedef struct {
  int index, threads, argc;
  char **argv;
  int failed;
  char error[256];
} worker;

static const char SCRIPT[] =
    "local index, threads, pipeline_id = ...\n"
    "local runs = { select(4, ...) }\n"
    "local pipeline = require 'pipeline'\n"
    "local client = assert(pipeline.load())\n"
    "local mine = {}\n"
    "for i = index, #runs, threads do mine[#mine + 1] = runs[i] end\n"
    "local half = math.floor(#mine / 2)\n"
    "for i = 1, half do\n"
    "  local ok, err = client:retry(pipeline_id, mine[i])\n"
    "  if not ok then error(err) end\n"
    "end\n"
    "local list = {}\n"
    "for i = half + 1, #mine do list[#list + 1] = { pipeline_id, mine[i] } end\n"
    "for i, result in ipairs(client:retry_many(list, { concurrency = 4 })) do\n"
    "  if not result.ok then error(result.message) end\n"
    "end\n"
    "client:close()\n"
    "return #mine\n";

static void *run_worker(void *arg) {
  worker *w = arg;
  size_t m;
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    w->failed = 1;
    return NULL;
  }
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (m = 0; m < sizeof json_modules / sizeof json_modules[0]; m++) {
    lua_pushcfunction(L, json_modules[m].func);
    lua_setfield(L, -2, json_modules[m].name);
  }
  lua_pop(L, 2);
  pipeline_preload(L);
  if (luaL_loadstring(L, SCRIPT) != 0) {
    snprintf(w->error, sizeof w->error, "%s", lua_tostring(L, -1));
    w->failed = 1;
  } else {
    int i;
    lua_pushinteger(L, w->index);
    lua_pushinteger(L, w->threads);
    for (i = 2; i < w->argc; i++) lua_pushstring(L, w->argv[i]);
    if (lua_pcall(L, 2 + (w->argc - 2), 1, 0) != 0) {
      snprintf(w->error, sizeof w->error, "%s", lua_tostring(L, -1));
      w->failed = 1;
    }
  }
  lua_close(L);
  return NULL;
}

int main(int argc, char **argv) {
  pthread_t ids[MAX_THREADS];
  worker workers[MAX_THREADS];
  int threads, i, failed = 0;
  if (argc < 4) {
    fprintf(stderr, "usage: %s THREADS PIPELINE RUN...\n", argv[0]);
    return 2;
  }
  threads = atoi(argv[1]);
  if (threads < 1 || threads > MAX_THREADS) threads = 4;
  /* No require happens before the threads start: each state's first
   * require "pipeline.core" initialises libcurl (once, guarded). */
  for (i = 0; i < threads; i++) {
    workers[i].index = i + 1;
    workers[i].threads = threads;
    workers[i].argc = argc;
    workers[i].argv = argv;
    workers[i].failed = 0;
    workers[i].error[0] = '\0';
    if (pthread_create(&ids[i], NULL, run_worker, &workers[i]) != 0) return 1;
  }
  for (i = 0; i < threads; i++) {
    pthread_join(ids[i], NULL);
    if (workers[i].failed) {
      fprintf(stderr, "thread %d: %s\n", i + 1, workers[i].error);
      failed++;
    }
  }
  printf("threads: %d ran, %d failed\n", threads, failed);
  return failed ? 1 : 0;
}

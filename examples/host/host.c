/*
 * host.c - a small host program that embeds Lua and codearts-pipeline the
 * way a game server, editor or gateway would: one static binary, the module
 * opened with one call, no Lua files read from disk.
 *
 *   pipeline-host retry PIPELINE RUN         retry one run
 *   pipeline-host coroutines PIPELINE RUN... one coroutine per run retries and
 *                                            follows it; their waits yield to
 *                                            this host's scheduler
 *   pipeline-host step PIPELINE RUN...       the same without coroutines of
 *                                            the host's: it calls client:step(0)
 *                                            once per frame and never blocks
 *   pipeline-host poll PIPELINE RUN... [--wait RUN...]
 *                                            a poll(2) loop watches the client's
 *                                            sockets and keeps its timer: the
 *                                            runs before --wait are retried with
 *                                            one retry_many, each after it with
 *                                            retry_and_wait; a side timer ticks
 *                                            beside them and never waits for them
 *
 * The account comes from the environment, as pipeline.load() reads it
 * (CODEARTS_PIPELINE_ENDPOINT, CODEARTS_PIPELINE_PROJECT_ID,
 * CODEARTS_PIPELINE_TOKEN, ...).
 */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "pipeline.h"

int luaopen_cjson(lua_State *L);
int luaopen_cjson_safe(lua_State *L);

#define MAX_JOBS 16

#if LUA_VERSION_NUM < 502
#define lua_rawlen lua_objlen /* renamed in 5.2 */
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pause_for(double seconds) {
  struct timespec ts;
  if (seconds <= 0) return;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  nanosleep(&ts, NULL);
}

/* Resumes co; *nresults is how many values it yielded or returned.
 * lua_resume's signature changed in 5.2 and again in 5.4. */
static int resume(lua_State *co, lua_State *from, int *nresults) {
  int status;
#if LUA_VERSION_NUM >= 504
  status = lua_resume(co, from, 0, nresults);
#elif LUA_VERSION_NUM >= 502
  status = lua_resume(co, from, 0);
  *nresults = lua_gettop(co);
#else
  (void)from;
  status = lua_resume(co, 0);
  *nresults = lua_gettop(co);
#endif
  return status;
}

/* A Lua state with the standard libraries, lua-cjson and codearts-pipeline
 * preloaded, and no search path: every module comes from this binary. */
static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return NULL;
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_cjson);
  lua_setfield(L, -2, "cjson");
  lua_pushcfunction(L, luaopen_cjson_safe);
  lua_setfield(L, -2, "cjson.safe");
  lua_pop(L, 2);
  pipeline_preload(L);
  return L;
}

static int fail(lua_State *L, const char *what) {
  fprintf(stderr, "host: %s: %s\n", what, lua_tostring(L, -1));
  lua_close(L);
  return 1;
}

/* Runs chunk with the command-line arguments (from argv[2] on) as "...". */
static int run_chunk(lua_State *L, const char *chunk, int argc, char **argv) {
  int i;
  if (luaL_loadstring(L, chunk) != 0) return -1;
  for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
  return lua_pcall(L, argc - 2, 1, 0) == 0 ? 0 : -1;
}

static const char RETRY[] = "local pipeline_id, run_id = ...\n"
                            "local pipeline = require 'pipeline'\n"
                            "local client = assert(pipeline.load())\n"
                            "local ok, err = client:retry(pipeline_id, run_id)\n"
                            "client:close()\n"
                            "print(ok and ('retried ' .. run_id) or ('failed: ' .. err))\n"
                            "return ok and 0 or 1\n";

/* Makes one job function per run: each retries its run and follows it;
 * the client's sleep is coroutine.yield, so every wait hands control back
 * to the host with the seconds it wants to wait. */
static const char COROUTINE_JOBS[] =
    "local pipeline_id = ...\n"
    "local run_ids = { select(2, ...) }\n"
    "local pipeline = require 'pipeline'\n"
    "local client = assert(pipeline.load({ sleep = coroutine.yield }))\n"
    "local jobs = {}\n"
    "for i, run_id in ipairs(run_ids) do\n"
    "  jobs[i] = function()\n"
    "    local status = client:retry_and_wait(pipeline_id, run_id, { interval = 0.05, timeout = "
    "30,\n"
    "      on_poll = function(s) print(('job %d: %s'):format(i, s)) end })\n"
    "    print(('job %d: finished %s'):format(i, tostring(status)))\n"
    "    return status == 'COMPLETED'\n"
    "  end\n"
    "end\n"
    "return jobs\n";

/* The host's scheduler: resumes each job coroutine when the time it asked
 * to wait is over, and otherwise sleeps until the next one is due. */
static int coroutines(lua_State *L, int argc, char **argv) {
  lua_State *jobs[MAX_JOBS];
  double wake[MAX_JOBS];
  int done[MAX_JOBS];
  int count, i, live, failures = 0, jobs_table;
  if (run_chunk(L, COROUTINE_JOBS, argc, argv) != 0) return fail(L, "coroutines");
  jobs_table = lua_gettop(L);
  count = (int)lua_rawlen(L, jobs_table);
  if (count > MAX_JOBS) count = MAX_JOBS;
  for (i = 0; i < count; i++) {
    jobs[i] = lua_newthread(L); /* stays on L's stack, so it is not collected */
    lua_rawgeti(L, jobs_table, i + 1);
    lua_xmove(L, jobs[i], 1);
    wake[i] = 0;
    done[i] = 0;
  }
  live = count;
  while (live > 0) {
    double next = now() + 1;
    for (i = 0; i < count; i++) {
      int status, nresults;
      if (done[i]) continue;
      if (wake[i] > now()) {
        if (wake[i] < next) next = wake[i];
        continue;
      }
      status = resume(jobs[i], L, &nresults);
      if (status == LUA_YIELD) {
        /* the job's sleep(seconds): come back to it then */
        wake[i] = now() + (nresults > 0 ? lua_tonumber(jobs[i], -nresults) : 0);
        lua_pop(jobs[i], nresults);
        if (wake[i] < next) next = wake[i];
        continue;
      }
      done[i] = 1;
      live--;
      if (status != 0) {
        fprintf(stderr, "host: job %d: %s\n", i + 1, lua_tostring(jobs[i], -1));
        failures++;
      } else if (nresults < 1 || !lua_toboolean(jobs[i], -1)) {
        failures++;
      }
    }
    if (live > 0) pause_for(next - now());
  }
  printf("host: %d jobs, %d failed\n", count, failures);
  lua_close(L);
  return failures ? 1 : 0;
}

/* Starts one retry_and_wait per run with client:start, and returns a frame
 * function that advances them all without blocking: client:step(0). */
static const char STEP_JOBS[] =
    "local pipeline_id = ...\n"
    "local run_ids = { select(2, ...) }\n"
    "local pipeline = require 'pipeline'\n"
    "local client = assert(pipeline.load())\n"
    "local jobs = {}\n"
    "for i, run_id in ipairs(run_ids) do\n"
    "  jobs[i] = client:start('retry_and_wait', pipeline_id, run_id, { interval = 0.05, timeout = "
    "30,\n"
    "    on_poll = function(s) print(('job %d: %s'):format(i, s)) end })\n"
    "end\n"
    "return function()\n"
    "  local left = client:step(0)\n"
    "  if left > 0 then return left end\n"
    "  local failed = 0\n"
    "  for i, job in ipairs(jobs) do\n"
    "    local status, err = job:result()\n"
    "    print(('job %d: finished %s'):format(i, tostring(status or err)))\n"
    "    if status ~= 'COMPLETED' then failed = failed + 1 end\n"
    "  end\n"
    "  client:close()\n"
    "  return 0, failed\n"
    "end\n";

/* The host's frame loop: one client:step(0) per frame of 5 ms; it measures
 * the longest step to show the network never blocks a frame. */
static int step(lua_State *L, int argc, char **argv) {
  int frames = 0, failed = 0, left = 1;
  double longest = 0;
  if (run_chunk(L, STEP_JOBS, argc, argv) != 0) return fail(L, "step");
  while (left > 0) {
    double started = now();
    lua_pushvalue(L, -1);
    if (lua_pcall(L, 0, 2, 0) != 0) return fail(L, "step");
    if (now() - started > longest) longest = now() - started;
    left = (int)lua_tointeger(L, -2);
    failed = (int)lua_tointeger(L, -1);
    lua_pop(L, 2);
    frames++;
    pause_for(0.005);
  }
  printf("host: %d frames, longest step %.1f ms, %d failed\n", frames, longest * 1000, failed);
  lua_close(L);
  return failed ? 1 : 0;
}

/* ------------------------------------------------------------ poll(2)
 * The client's sockets and timer on the host's own poll loop
 * (client:use_loop): watch() and timer() below only record what the client
 * asks for; the loop calls client:socket_ready / client:timeout. */

#define MAX_SOCKETS 64
#define SIDE_INTERVAL 0.1 /* seconds between the side timer's ticks */
#define POLL_LIMIT 60     /* seconds before the host gives up */

static struct pollfd sockets[MAX_SOCKETS];
static int socket_count;
static double timer_due = -1; /* monotonic seconds, -1: no timer */

/* watch(fd, what): what is "r", "w", "rw", or nil to stop watching fd. */
static int host_watch(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1), i;
  const char *what = luaL_optstring(L, 2, NULL);
  i = 0;
  while (i < socket_count && sockets[i].fd != fd) i++;
  if (what == NULL) {
    if (i < socket_count) sockets[i] = sockets[--socket_count];
    return 0;
  }
  if (i == socket_count) {
    if (socket_count == MAX_SOCKETS) return luaL_error(L, "host: too many sockets");
    socket_count++;
    sockets[i].fd = fd;
  }
  sockets[i].events = (short)((strchr(what, 'r') ? POLLIN : 0) | (strchr(what, 'w') ? POLLOUT : 0));
  return 0;
}

/* timer(seconds): the client wants timeout() called then; nil cancels. */
static int host_timer(lua_State *L) {
  timer_due = lua_isnoneornil(L, 1) ? -1 : now() + luaL_checknumber(L, 1);
  return 0;
}

/* Starts the calls on a client whose loop is this host's; returns the
 * client and a function that prints the results and returns how many runs
 * failed. */
static const char POLL_JOBS[] =
    "local watch, timer, pipeline_id = ...\n"
    "local many, each, list = {}, {}, nil\n"
    "list = many\n"
    "for i = 4, select('#', ...) do\n"
    "  local run_id = select(i, ...)\n"
    "  if run_id == '--wait' then list = each else list[#list + 1] = run_id end\n"
    "end\n"
    "local pipeline = require 'pipeline'\n"
    "local client = assert(pipeline.load())\n"
    "client:use_loop({ watch = watch, timer = timer })\n"
    "local pairs_of = {}\n"
    "for i, run_id in ipairs(many) do pairs_of[i] = { pipeline_id, run_id } end\n"
    "local many_job = #many > 0 and client:start('retry_many', pairs_of)\n"
    "local jobs = {}\n"
    "for i, run_id in ipairs(each) do\n"
    "  jobs[i] = client:start('retry_and_wait', pipeline_id, run_id, { interval = 0.05, timeout = "
    "30 })\n"
    "end\n"
    "return client, function()\n"
    "  local failed = 0\n"
    "  for i, item in ipairs(many_job and many_job:result() or {}) do\n"
    "    print(('retry_many %s: %s'):format(many[i], item.ok and 'retried' or ('failed: ' .. "
    "tostring(item.message))))\n"
    "    if not item.ok then failed = failed + 1 end\n"
    "  end\n"
    "  for i, job in ipairs(jobs) do\n"
    "    local status, err = job:result()\n"
    "    print(('retry_and_wait %s: %s'):format(each[i], tostring(status or err)))\n"
    "    if status ~= 'COMPLETED' then failed = failed + 1 end\n"
    "  end\n"
    "  client:close()\n"
    "  return failed, #many + #each\n"
    "end\n";

/* client:socket_ready(fd, what) or, with fd < 0, client:timeout(); the
 * client is at index client.  Returns how many calls are left, -1 on error. */
static int advance(lua_State *L, int client, int fd, const char *what) {
  int left;
  lua_getfield(L, client, fd >= 0 ? "socket_ready" : "timeout");
  lua_pushvalue(L, client);
  if (fd >= 0) {
    lua_pushinteger(L, fd);
    lua_pushstring(L, what);
  }
  if (lua_pcall(L, fd >= 0 ? 3 : 1, 1, 0) != 0) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  left = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return left;
}

static int poll_loop(lua_State *L, int argc, char **argv) {
  int client, left = 1, ticks = 0, failed, runs, i;
  double side_due = now() + SIDE_INTERVAL, latest = 0, give_up = now() + POLL_LIMIT;
  if (luaL_loadstring(L, POLL_JOBS) != 0) return fail(L, "poll");
  lua_pushcfunction(L, host_watch);
  lua_pushcfunction(L, host_timer);
  for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
  if (lua_pcall(L, 2 + argc - 2, 2, 0) != 0) return fail(L, "poll");
  client = lua_gettop(L) - 1;
  while (left > 0 && now() < give_up) {
    struct pollfd ready[MAX_SOCKETS];
    int count = socket_count, wait_ms;
    double next = side_due;
    if (timer_due >= 0 && timer_due < next) next = timer_due;
    wait_ms = next <= now() ? 0 : (int)((next - now()) * 1000) + 1;
    memcpy(ready, sockets, sizeof ready); /* the callbacks below change sockets[] */
    if (poll(ready, (nfds_t)count, wait_ms) < 0) continue;
    if (now() >= side_due) { /* the side timer: how late is this tick? */
      if (now() - side_due > latest) latest = now() - side_due;
      ticks++;
      while (side_due <= now()) side_due += SIDE_INTERVAL;
    }
    for (i = 0; i < count && left > 0; i++) {
      short r = ready[i].revents;
      if (r == 0) continue;
      /* an error or a hang-up alone: let libcurl find out which */
      left = advance(L, client, ready[i].fd,
                     (r & POLLIN) && (r & POLLOUT) ? "rw"
                     : (r & POLLIN)                ? "r"
                     : (r & POLLOUT)               ? "w"
                                                   : "rw");
    }
    if (left > 0 && timer_due >= 0 && now() >= timer_due) {
      timer_due = -1;
      left = advance(L, client, -1, NULL);
    }
  }
  printf("side timer: %d ticks every %d ms, latest %.1f ms late\n", ticks,
         (int)(SIDE_INTERVAL * 1000), latest * 1000);
  if (left != 0) {
    fprintf(stderr, "host: %s\n", left < 0 ? "the client raised" : "not done in time");
    lua_close(L);
    return 1;
  }
  if (lua_pcall(L, 0, 2, 0) != 0) return fail(L, "poll");
  failed = (int)lua_tointeger(L, -2);
  runs = (int)lua_tointeger(L, -1);
  printf("poll host: %d runs, %d failed, %d sockets still watched\n", runs, failed, socket_count);
  lua_close(L);
  return failed ? 1 : 0;
}

int main(int argc, char **argv) {
  lua_State *L;
  int code;
  if (argc < 4 || (strcmp(argv[1], "retry") && strcmp(argv[1], "coroutines") &&
                   strcmp(argv[1], "step") && strcmp(argv[1], "poll"))) {
    fprintf(stderr, "usage: %s retry|coroutines|step|poll PIPELINE RUN...\n", argv[0]);
    return 2;
  }
  L = new_state();
  if (L == NULL) return 1;
  if (strcmp(argv[1], "coroutines") == 0) return coroutines(L, argc, argv);
  if (strcmp(argv[1], "step") == 0) return step(L, argc, argv);
  if (strcmp(argv[1], "poll") == 0) return poll_loop(L, argc, argv);
  if (run_chunk(L, RETRY, argc, argv) != 0) return fail(L, "retry");
  code = (int)lua_tointeger(L, -1);
  lua_close(L);
  return code;
}

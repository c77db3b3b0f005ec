/*
 * core.c - luaopen_pipeline_core: registers the transport, the input checks,
 * the signer and the design-card call, retry().
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>

#include "batch.h"
#include "client.h"
#include "compat.h"
#include "sandbox.h"
#include "sign.h"
#include "transfer.h"

/* libcurl must be initialised once per process; pthread_once makes the first
 * require safe even when several threads open the module at the same time. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_OK;

static void init_curl(void) { curl_init_result = curl_global_init(CURL_GLOBAL_ALL); }

static void check_id_arg(lua_State *L, int arg, const char *name) {
  size_t len;
  const char *s = luaL_checklstring(L, arg, &len);
  if (!pipeline_is_id(s, len))
    luaL_argerror(L, arg,
                  lua_pushfstring(L,
                                  "%s must be 32 ASCII letters or "
                                  "digits",
                                  name));
}

static void check_token_arg(lua_State *L, int arg) {
  size_t len;
  const char *s = luaL_checklstring(L, arg, &len);
  if (len == 0) luaL_argerror(L, arg, "token must not be empty");
  if (!pipeline_is_header_value(s, len) || strchr(s, '\t'))
    luaL_argerror(L, arg, "token holds a control character");
}

/* core.is_id(s) -> boolean: exactly 32 ASCII letters or digits. */
static int core_is_id(lua_State *L) {
  size_t len = 0;
  /* the type first: lua_tolstring would turn a number into a string */
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  lua_pushboolean(L, s != NULL && pipeline_is_id(s, len));
  return 1;
}

/* core.is_header_value(s) -> boolean: no control characters. */
static int core_is_header_value(lua_State *L) {
  size_t len = 0;
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  lua_pushboolean(L, s != NULL && pipeline_is_header_value(s, len));
  return 1;
}

/* core.check_url(url [, allow_http [, base]]) -> true | nil, reason
 * base: url is an endpoint, to which paths are appended */
static int core_check_url(lua_State *L) {
  size_t len;
  const char *url = luaL_checklstring(L, 1, &len);
  const char *refusal = pipeline_url_refusal(url, lua_toboolean(L, 2), lua_toboolean(L, 3));
  if (refusal == NULL && (strlen(url) != len || !pipeline_is_header_value(url, len)))
    refusal = "holds a control character";
  if (refusal == NULL) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, refusal);
  return 2;
}

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

/* Pushes require(module)[field]: the policy this C code defers to lives in
 * the Lua modules. */
static void push_lua_field(lua_State *L, const char *module, const char *field) {
  lua_getglobal(L, "require");
  lua_pushstring(L, module);
  lua_call(L, 1, 1);
  lua_getfield(L, -1, field);
  lua_remove(L, -2);
}

/* Calls require("pipeline.errors").settle(op, expect, {secret}, ...) on the
 * n values on top of the stack and returns its results: the meaning of an
 * answer is policy, kept in Lua, in one place for every operation. */
static int settle(lua_State *L, const char *op, const char *expect, int secret, int n) {
  int base = lua_gettop(L) - n;
  push_lua_field(L, "pipeline.errors", "settle");
  lua_pushstring(L, op);
  lua_pushstring(L, expect);
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, secret);
  lua_rawseti(L, -2, 1);
  lua_rotate(L, base + 1, 4);
  lua_call(L, n + 3, LUA_MULTRET);
  return lua_gettop(L) - base;
}

/* The retry's result for a configuration problem described by the message
 * on top of the stack: nothing was sent. */
static int config_failure(lua_State *L) {
  lua_pushnil(L);
  lua_insert(L, -2);
  lua_pushliteral(L, "config");
  lua_insert(L, -2);
  lua_pushboolean(L, 0);
  return settle(L, "retry", "success", 4, 4);
}

static int allow_http(lua_State *L, int opts) {
  int allowed;
  if (opts == 0) return 0;
  lua_getfield(L, opts, "allow_http");
  allowed = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return allowed;
}

/* Any client option (pipeline.config.CLIENT_OPTIONS) may be passed to
 * core.retry, as to pipeline.retry; those that are not transport options or
 * endpoint/region are the Lua side's policy (retries, sleep, on_event) or
 * credentials it does not take here, and have no effect. */
static int is_client_option(lua_State *L, const char *name) {
  int known;
  push_lua_field(L, "pipeline.config", "CLIENT_OPTIONS");
  lua_getfield(L, -1, name);
  known = !lua_isnil(L, -1);
  lua_pop(L, 2);
  return known;
}

/* core.retry(project_id, pipeline_id, run_id, token [, options])
 *   -> true | nil, message, code, info
 * PUT {endpoint}/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/{run}/retry
 * options: endpoint (or region) and the transport options of core.client;
 * the other client options are accepted (see is_client_option).  One
 * attempt, never repeated: pipeline.retry adds the retry policy. */
static int core_retry(lua_State *L) {
  const char *endpoint = NULL, *refusal;
  size_t elen = 0;
  int opts = 0, client, url, n;

  check_id_arg(L, 1, "project_id");
  check_id_arg(L, 2, "pipeline_id");
  check_id_arg(L, 3, "run_id");
  check_token_arg(L, 4);
  if (!lua_isnoneornil(L, 5)) {
    luaL_checktype(L, 5, LUA_TTABLE);
    opts = 5;
    /* the same checks as pipeline.retry's, nested tables included */
    push_lua_field(L, "pipeline.config", "problem");
    lua_pushvalue(L, opts);
    push_lua_field(L, "pipeline.config", "CLIENT_OPTIONS");
    lua_pushliteral(L, "options");
    lua_call(L, 3, 1);
    if (!lua_isnil(L, -1)) return luaL_argerror(L, 5, lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, opts, "endpoint");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, 5, "options.endpoint must be a string");
    endpoint = lua_tolstring(L, -1, &elen);
    lua_pop(L, 1); /* still referenced by the options table */
  }
  lua_settop(L, 5);
  pipeline_client_push(L, opts, is_client_option); /* raises on bad options */
  client = lua_gettop(L);
  if (endpoint == NULL && opts) {
    /* no endpoint: the region's, from the region table */
    lua_getfield(L, opts, "region");
    if (lua_type(L, -1) == LUA_TSTRING) {
      int region = lua_gettop(L);
      push_lua_field(L, "pipeline.regions", "endpoint");
      lua_pushvalue(L, region);
      lua_call(L, 1, 2);
      if (lua_isnil(L, -2)) return config_failure(L); /* its message is on top */
      lua_pop(L, 1);
      lua_replace(L, region);
      endpoint = lua_tolstring(L, region, &elen); /* kept alive at that slot */
    } else {
      lua_pop(L, 1);
    }
  }
  while (endpoint && elen > 0 && endpoint[elen - 1] == '/') elen--;
  if (endpoint == NULL || elen == 0) {
    lua_pushliteral(L, "no endpoint: pass options.endpoint or options.region");
    return config_failure(L);
  }
  lua_pushlstring(L, endpoint, elen);
  lua_pushfstring(L, "/v5/%s/api/pipelines/%s/pipeline-runs/%s/retry", lua_tostring(L, 1),
                  lua_tostring(L, 2), lua_tostring(L, 3));
  lua_concat(L, 2);
  url = lua_gettop(L);
  /* the path appended has no query or fragment: any comes from the endpoint */
  refusal = pipeline_url_refusal(lua_tostring(L, url), allow_http(L, opts), 1);
  if (refusal) {
    lua_pushfstring(L, "endpoint %s", refusal);
    return config_failure(L);
  }

  lua_pushcfunction(L, pipeline_client_request);
  lua_pushvalue(L, client);
  lua_pushliteral(L, "PUT");
  lua_pushvalue(L, url);
  lua_newtable(L);
  lua_pushvalue(L, 4);
  lua_setfield(L, -2, "X-Auth-Token");
  lua_pushliteral(L, "application/json");
  lua_setfield(L, -2, "Accept");
  /* as the official SDKs send it, body or not */
  lua_pushliteral(L, "application/json");
  lua_setfield(L, -2, "Content-Type");
  lua_pushnil(L);
  lua_pushboolean(L, 1); /* a retry starts work: never sent twice */
  lua_call(L, 6, LUA_MULTRET);
  n = lua_gettop(L) - url;
  lua_pushcfunction(L, pipeline_client_close);
  lua_pushvalue(L, client);
  lua_call(L, 1, 0);
  return settle(L, "retry", "success", 4, n);
}

/* The module is built with hidden visibility; only its entry point is seen. */
#if defined(__GNUC__)
#define PIPELINE_EXPORT __attribute__((visibility("default")))
#else
#define PIPELINE_EXPORT
#endif

PIPELINE_EXPORT int luaopen_pipeline_core(lua_State *L);

PIPELINE_EXPORT int luaopen_pipeline_core(lua_State *L) {
  static const luaL_Reg functions[] = {{"client", pipeline_client_new},
                                       {"batch", pipeline_batch_new},
                                       {"retry", core_retry},
                                       {"sign", pipeline_sign},
                                       {"sign_canonical", pipeline_sign_canonical},
                                       {"is_id", core_is_id},
                                       {"is_header_value", core_is_header_value},
                                       {"file_mode", core_file_mode},
                                       {"read_file", pipeline_read_file},
                                       {"run_config", pipeline_run_config},
                                       {"check_url", core_check_url},
                                       {"sleep", core_sleep},
                                       {"catch_signals", core_catch_signals},
                                       {"release_signals", core_release_signals},
                                       {"interrupted", core_interrupted},
                                       {"caught_signal", core_caught_signal},
                                       {"monotonic", core_monotonic},
                                       {"isatty", core_isatty},
                                       {NULL, NULL}};
  pthread_once(&curl_once, init_curl);
  if (curl_init_result != CURLE_OK)
    return luaL_error(L, "libcurl initialisation failed: %s", curl_easy_strerror(curl_init_result));
  pipeline_client_register(L);
  pipeline_batch_register(L);
  luaL_newlib(L, functions);
  lua_pushliteral(L, PIPELINE_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
  lua_setfield(L, -2, "curl_version");
#ifdef CURL_VERSION_THREADSAFE
  lua_pushboolean(L, (curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_THREADSAFE) != 0);
#else
  lua_pushboolean(L, 0);
#endif
  lua_setfield(L, -2, "curl_threadsafe"); /* may the first require happen on any thread */
  lua_pushnumber(L, (lua_Number)PIPELINE_DEFAULT_TIMEOUT_MS / 1000);
  lua_setfield(L, -2, "DEFAULT_TIMEOUT"); /* seconds, per request */
  {
    /* which client options are the transport's, for the Lua side to pass on */
    int i;
    lua_newtable(L);
    for (i = 0; pipeline_transport_option_names[i]; i++) {
      lua_pushstring(L, pipeline_transport_option_names[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "TRANSPORT_OPTIONS");
  }
  return 1;
}

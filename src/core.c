/*
 * core.c - luaopen_pipeline_core: initialises libcurl once and registers the
 * module's parts: the transport (client.c, batch.c), what an answer means
 * (answer.c), the checks (text.c), the signer (sign.c), the config sandbox
 * (sandbox.c), the operating system helpers (os.c) and retry (retry.c).
 */
#include <pthread.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>

#include "answer.h"
#include "batch.h"
#include "client.h"
#include "compat.h"
#include "os.h"
#include "retry.h"
#include "sandbox.h"
#include "sign.h"
#include "text.h"
#include "transfer.h"

/* libcurl must be initialised once per process; pthread_once makes the first
 * require safe even when several threads open the module at the same time. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_OK;

static void init_curl(void) { curl_init_result = curl_global_init(CURL_GLOBAL_ALL); }

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
                                       {"retry", pipeline_retry},
                                       {"sign", pipeline_sign},
                                       {"sign_canonical", pipeline_sign_canonical},
                                       {"read_file", pipeline_read_file},
                                       {"run_config", pipeline_run_config},
                                       {"is_id", pipeline_lua_is_id},
                                       {"is_header_value", pipeline_lua_is_header_value},
                                       {"token_problem", pipeline_lua_token_problem},
                                       {"check_url", pipeline_lua_check_url},
                                       {"sleep", pipeline_lua_sleep},
                                       {"monotonic", pipeline_lua_monotonic},
                                       {"catch_signals", pipeline_lua_catch_signals},
                                       {"release_signals", pipeline_lua_release_signals},
                                       {"interrupted", pipeline_lua_interrupted},
                                       {"caught_signal", pipeline_lua_caught_signal},
                                       {"isatty", pipeline_lua_isatty},
                                       {"file_mode", pipeline_lua_file_mode},
                                       {"answer", pipeline_lua_answer},
                                       {"failure", pipeline_lua_failure},
                                       {"redact", pipeline_lua_redact},
                                       {"transport_failure", pipeline_lua_transport_failure},
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
    for (i = 0; pipeline_transport_option_list[i].name; i++) {
      lua_pushstring(L, pipeline_transport_option_list[i].name);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "TRANSPORT_OPTIONS");
  }
  /* a batch's concurrency, for the Lua side's checks and defaults */
  lua_pushinteger(L, PIPELINE_DEFAULT_CONCURRENCY);
  lua_setfield(L, -2, "DEFAULT_CONCURRENCY");
  lua_pushinteger(L, PIPELINE_MAX_CONCURRENCY);
  lua_setfield(L, -2, "MAX_CONCURRENCY");
  return 1;
}

/*
 * retry.c - the retry of a pipeline run, the call the project is named
 * after: PUT {endpoint}/v5/{project_id}/api/pipelines/{pipeline_id}/
 * pipeline-runs/{run_id}/retry, settled by the public rule (answer.h).  One
 * path for both ways in: core.retry (one call, its own handle, one attempt)
 * and client:retry on a client's handle, which the Lua wrapper's retry policy
 * drives.  Nothing here calls into Lua.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "answer.h"
#include "client.h"
#include "compat.h"
#include "retry.h"
#include "text.h"
#include "transfer.h"

/* core.retry's arguments (named stack slots) */
enum { ARG_PROJECT = 1, ARG_PIPELINE, ARG_RUN, ARG_TOKEN, ARG_OPTIONS };

/* client:retry's arguments */
enum {
  ARG_CLIENT = 1,
  ARG_ENDPOINT,
  ARG_C_PROJECT,
  ARG_C_PIPELINE,
  ARG_C_RUN,
  ARG_HEADERS,
  ARG_WITH_INFO
};

/* The retry URL for endpoint (trailing slashes dropped), written to the
 * caller's buffer when it fits (no Lua string to make and collect: this is
 * every retry's path), else pushed as a Lua string.  The ids are 32
 * characters each (checked). */
typedef struct {
  char text[1024];
} url_buffer;

static const char *retry_url(lua_State *L, url_buffer *b, const char *endpoint, const char *project,
                             const char *pipeline, const char *run) {
  static const char *const parts[] = {"/v5/", "/api/pipelines/", "/pipeline-runs/", "/retry"};
  const char *ids[3];
  size_t len = strlen(endpoint), at, i, need = 3 * 32 + 1;
  while (len > 0 && endpoint[len - 1] == '/') len--;
  for (i = 0; i < 4; i++) need += strlen(parts[i]);
  if (len + need > sizeof b->text) {
    lua_pushlstring(L, endpoint, len);
    lua_pushfstring(L, "/v5/%s/api/pipelines/%s/pipeline-runs/%s/retry", project, pipeline, run);
    lua_concat(L, 2);
    return lua_tostring(L, -1);
  }
  ids[0] = project, ids[1] = pipeline, ids[2] = run;
  memcpy(b->text, endpoint, len);
  at = len;
  for (i = 0; i < 4; i++) {
    size_t n = strlen(parts[i]);
    memcpy(b->text + at, parts[i], n);
    at += n;
    if (i < 3) {
      memcpy(b->text + at, ids[i], 32);
      at += 32;
    }
  }
  b->text[at] = '\0';
  return b->text;
}

/* The retry on transfer t (of the transport userdata at index owner) with
 * the headers table at index headers: one attempt, never repeated by
 * libcurl; leaves its results on top and returns how many (true | nil,
 * message, code, info; with_info: true, info). */
static int retry_on(lua_State *L, pipeline_transfer *t, int owner, const char *url, int headers,
                    int with_info) {
  pipeline_request r;
  CURLcode rc;
  r.method = METHOD_PUT;
  r.url = url;
  r.headers = headers;
  r.body = NULL;
  r.body_len = 0;
  r.single_send = 1; /* a retry starts work: never sent twice */
  r.timeout_ms = t->timeout_ms;
  r.expect_success = 1;
  r.success_info = with_info;
  r.op = "retry";
  pipeline_transfer_setup(L, t, &r);
  rc = curl_easy_perform(t->easy);
  return pipeline_transfer_finish(L, t, rc, owner);
}

/* client:retry(endpoint, project_id, pipeline_id, run_id, headers [, with_info])
 *   -> true | nil, message, code, info
 * The retry on the client's kept-alive handle; headers: every request header
 * (the caller's credentials among them). */
int pipeline_client_retry(lua_State *L) {
  pipeline_transfer *t = pipeline_client_check(L, ARG_CLIENT);
  size_t len;
  const char *endpoint = luaL_checklstring(L, ARG_ENDPOINT, &len), *url, *refusal;
  url_buffer buffer;
  luaL_argcheck(L, strlen(endpoint) == len, ARG_ENDPOINT, "URL holds a control character");
  pipeline_check_id_arg(L, ARG_C_PROJECT, "project_id");
  pipeline_check_id_arg(L, ARG_C_PIPELINE, "pipeline_id");
  pipeline_check_id_arg(L, ARG_C_RUN, "run_id");
  luaL_checktype(L, ARG_HEADERS, LUA_TTABLE);
  lua_settop(L, ARG_WITH_INFO); /* the URL goes above the arguments */
  url = retry_url(L, &buffer, endpoint, lua_tostring(L, ARG_C_PROJECT),
                  lua_tostring(L, ARG_C_PIPELINE), lua_tostring(L, ARG_C_RUN));
  len = strlen(url);
  refusal = pipeline_transfer_url_refusal(t, url, len);
  if (refusal) return luaL_argerror(L, ARG_ENDPOINT, lua_pushfstring(L, "URL %s", refusal));
  return retry_on(L, t, ARG_CLIENT, url, ARG_HEADERS, lua_toboolean(L, ARG_WITH_INFO));
}

/* core.retry's own options, besides the transport's: where to send it. */
typedef struct {
  const char *endpoint;
} retry_options;

static void read_endpoint(lua_State *L, int arg, int value, const char *name, void *target) {
  retry_options *r = target;
  r->endpoint = pipeline_string_option(L, arg, value, name, NULL);
}

static const pipeline_option retry_option_list[] = {{"endpoint", read_endpoint}, {NULL, NULL}};

/* core.retry(project_id, pipeline_id, run_id, token [, options])
 *   -> true | nil, message, code, info
 * options: endpoint (the service's base URL) and the transport options of
 * core.client.  One attempt on a handle of its own, never repeated:
 * pipeline.retry adds the configuration (regions, profiles) and the retry
 * policy, over the same request (client:retry). */
int pipeline_retry(lua_State *L) {
  const char *endpoint, *url, *refusal;
  url_buffer buffer;
  pipeline_transfer *t;
  pipeline_transport_options o;
  retry_options own = {NULL};
  int client, headers, n;
  pipeline_check_id_arg(L, ARG_PROJECT, "project_id");
  pipeline_check_id_arg(L, ARG_PIPELINE, "pipeline_id");
  pipeline_check_id_arg(L, ARG_RUN, "run_id");
  pipeline_check_token_arg(L, ARG_TOKEN);
  lua_settop(L, ARG_OPTIONS);
  if (!lua_isnil(L, ARG_OPTIONS)) luaL_checktype(L, ARG_OPTIONS, LUA_TTABLE);
  /* every option checked (an unknown key raises) before anything else */
  pipeline_transport_options_read(L, lua_isnil(L, ARG_OPTIONS) ? 0 : ARG_OPTIONS, &o,
                                  retry_option_list, &own);
  endpoint = own.endpoint; /* still referenced by the options table */
  pipeline_client_push(L, &o);
  client = lua_gettop(L);
  t = pipeline_client_check(L, client);
  if (endpoint == NULL || endpoint[strspn(endpoint, "/")] == '\0')
    return pipeline_push_failure(L, "retry", "config",
                                 "no endpoint: pass options.endpoint (pipeline.retry also "
                                 "takes a region or the configuration)");
  url = retry_url(L, &buffer, endpoint, lua_tostring(L, ARG_PROJECT), lua_tostring(L, ARG_PIPELINE),
                  lua_tostring(L, ARG_RUN));
  /* the path appended has no query or fragment: any comes from the endpoint
   * (which, a string option, holds no control character either) */
  refusal = pipeline_url_refusal(url, t->allow_http, 1);
  if (refusal) {
    lua_pushfstring(L, "endpoint %s", refusal);
    return pipeline_push_failure(L, "retry", "config", lua_tostring(L, -1));
  }
  /* the token is the one secret its failures must not show */
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, ARG_TOKEN);
  lua_rawseti(L, -2, 1);
  pipeline_secrets_set(L, client, -1);
  lua_pop(L, 1);
  lua_createtable(L, 0, 3);
  headers = lua_gettop(L);
  lua_pushvalue(L, ARG_TOKEN);
  lua_setfield(L, headers, "X-Auth-Token");
  lua_pushliteral(L, "application/json");
  lua_setfield(L, headers, "Accept");
  lua_pushliteral(L, "application/json"); /* as the official SDKs send it, body or not */
  lua_setfield(L, headers, "Content-Type");
  n = retry_on(L, t, client, url, headers, 0);
  pipeline_transfer_close(t); /* now, not at the next collection */
  return n;
}

/*
 * retry.c - core.retry, the call the project is named after.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "client.h"
#include "compat.h" /* lua_rotate on 5.1 */
#include "retry.h"
#include "text.h"
#include "transfer.h"

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

/* core.retry's own options, besides the transport's: where to send it. */
typedef struct {
  const char *endpoint;
  size_t endpoint_len;
} retry_options;

static void read_endpoint(lua_State *L, int arg, int value, const char *name, void *target) {
  retry_options *r = target;
  r->endpoint = pipeline_string_option(L, arg, value, name, &r->endpoint_len);
}

/* The region is read below, when there is no endpoint. */
static void read_region(lua_State *L, int arg, int value, const char *name, void *target) {
  (void)target;
  pipeline_string_option(L, arg, value, name, NULL);
}

static const pipeline_option retry_option_list[] = {
    {"endpoint", read_endpoint}, {"region", read_region}, {NULL, NULL}};

/* core.retry(project_id, pipeline_id, run_id, token [, options])
 *   -> true | nil, message, code, info
 * PUT {endpoint}/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/{run}/retry
 * options: endpoint (or region) and the transport options of core.client;
 * any other key raises.  One attempt, never repeated: pipeline.retry adds
 * the retry policy. */
int pipeline_retry(lua_State *L) {
  const char *endpoint = NULL, *refusal;
  size_t elen = 0;
  int opts = 0, client, url, n;
  pipeline_transport_options o;
  retry_options own = {NULL, 0};

  pipeline_check_id_arg(L, 1, "project_id");
  pipeline_check_id_arg(L, 2, "pipeline_id");
  pipeline_check_id_arg(L, 3, "run_id");
  pipeline_check_token_arg(L, 4);
  if (!lua_isnoneornil(L, 5)) {
    luaL_checktype(L, 5, LUA_TTABLE);
    opts = 5;
  }
  pipeline_transport_options_read(L, opts, &o, retry_option_list, &own); /* raises on bad options */
  endpoint = own.endpoint; /* still referenced by the options table */
  elen = own.endpoint_len;
  lua_settop(L, 5);
  pipeline_client_push(L, &o);
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

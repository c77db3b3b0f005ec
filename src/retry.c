/*
 * retry.c - core.retry, the call the project is named after.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "client.h"
#include "compat.h"
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
int pipeline_retry(lua_State *L) {
  const char *endpoint = NULL, *refusal;
  size_t elen = 0;
  int opts = 0, client, url, n;

  pipeline_check_id_arg(L, 1, "project_id");
  pipeline_check_id_arg(L, 2, "pipeline_id");
  pipeline_check_id_arg(L, 3, "run_id");
  pipeline_check_token_arg(L, 4);
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

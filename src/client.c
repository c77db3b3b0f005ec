/*
 * client.c - the client handle: one transfer, so the connection it opens is
 * kept alive across calls, and the one generic request every operation of
 * the Lua side is built on.
 */
#include "client.h"

#include <string.h>

#include <lauxlib.h>

#include "compat.h"
#include "retry.h"
#include "transfer.h"

pipeline_transfer *pipeline_client_check(lua_State *L, int index) {
  pipeline_transfer *t = luaL_checkudata(L, index, PIPELINE_CLIENT_TYPE);
  if (t->easy == NULL) luaL_error(L, "attempt to use a closed client");
  return t;
}

int pipeline_client_close(lua_State *L) {
  pipeline_transfer_close(luaL_checkudata(L, 1, PIPELINE_CLIENT_TYPE));
  return 0;
}

static int client_is_closed(lua_State *L) {
  pipeline_transfer *t = luaL_checkudata(L, 1, PIPELINE_CLIENT_TYPE);
  lua_pushboolean(L, t->easy == NULL);
  return 1;
}

static int client_tostring(lua_State *L) {
  pipeline_transfer *t = luaL_checkudata(L, 1, PIPELINE_CLIENT_TYPE);
  if (t->easy == NULL)
    lua_pushliteral(L, "pipeline.client (closed)");
  else
    lua_pushfstring(L, "pipeline.client (%p)", (void *)t);
  return 1;
}

void pipeline_client_push(lua_State *L, const pipeline_transport_options *o) {
  pipeline_transfer *t;
  /* Closed first, then the resource: an error below leaves a userdata that
   * __gc can release safely (liolib's pattern). */
  t = lua_newuserdatauv(L, sizeof *t, 0);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, PIPELINE_CLIENT_TYPE);
  /* The client's connections, TLS sessions and DNS answers, for the batches
   * made with it too (core.batch's share option). */
  t->share = pipeline_share_new();
  if (t->share == NULL) luaL_error(L, "libcurl could not create a share handle");
  pipeline_transfer_open(L, t, o);
  /* The cache is shared: returning the client's connection to it must not
   * close the idle ones a batch of the client opened (libcurl's default
   * keeps 5), or the next batch connects -- and handshakes -- again. */
  curl_easy_setopt(t->easy, CURLOPT_MAXCONNECTS, 256L);
}

int pipeline_client_new(lua_State *L) {
  pipeline_transport_options o;
  int opts = 0;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    opts = 1;
  }
  pipeline_transport_options_read(L, opts, &o, NULL, NULL);
  pipeline_client_push(L, &o);
  return 1;
}

/* client:request(method, url [, headers [, body [, single_send [, timeout [, expect [, op
 *   [, with_info]]]]]]]) -> true | body, info | nil, message, code, info
 * (see pipeline_transfer_prepare and pipeline_transfer_finish) */
int pipeline_client_request(lua_State *L) {
  pipeline_transfer *t = pipeline_client_check(L, 1);
  CURLcode rc;
  pipeline_transfer_prepare(L, t, 2);
  rc = curl_easy_perform(t->easy);
  return pipeline_transfer_finish(L, t, rc, 1);
}

/* client:set_secrets(list) -> client: the strings (a list, read when a
 * failure is built, so strings added later count) that its failures'
 * messages and info hide; also the batches made with share = client. */
static int client_set_secrets(lua_State *L) {
  pipeline_transfer *t = pipeline_client_check(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  (void)t;
  pipeline_secrets_set(L, 1, 2);
  lua_settop(L, 1);
  return 1;
}

void pipeline_client_register(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"request", pipeline_client_request}, {"set_secrets", client_set_secrets},
      {"retry", pipeline_client_retry},     {"close", pipeline_client_close},
      {"is_closed", client_is_closed},      {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__tostring", client_tostring}, {NULL, NULL}};
  pipeline_register_type(L, PIPELINE_CLIENT_TYPE, pipeline_client_close, meta, methods);
}

void pipeline_register_type(lua_State *L, const char *name, lua_CFunction close,
                            const luaL_Reg *meta, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__close");
#endif
  if (meta) luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

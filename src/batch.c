/*
 * batch.c - many requests at once over one libcurl multi handle.
 *
 * A batch owns a fixed pool of transfers (one per request that may be in
 * flight) on one multi handle, which shares its connection cache among them,
 * so requests to the same host reuse connections.  add() starts a request in
 * a free slot; step(timeout) waits at most that long for progress and returns
 * the requests that finished.  Nothing here calls into Lua while libcurl is
 * on the C stack.
 */
#include "batch.h"

#include <string.h>

#include <curl/curl.h>
#include <lauxlib.h>

#include "compat.h"
#include "transfer.h"

#define DEFAULT_CONCURRENCY 8
#define MAX_CONCURRENCY 256

typedef struct {
  CURLM *multi; /* NULL once closed */
  int capacity, in_flight;
  lua_Integer next_id;
  pipeline_transfer slots[1]; /* capacity of them: the userdata is sized so */
} batch;

static batch *check_batch(lua_State *L, int index) {
  batch *b = luaL_checkudata(L, index, PIPELINE_BATCH_TYPE);
  if (b->multi == NULL) luaL_error(L, "attempt to use a closed batch");
  return b;
}

static int batch_close(lua_State *L) {
  batch *b = luaL_checkudata(L, 1, PIPELINE_BATCH_TYPE);
  int i;
  for (i = 0; i < b->capacity; i++) {
    pipeline_transfer *t = &b->slots[i];
    if (b->multi && t->busy && t->easy) curl_multi_remove_handle(b->multi, t->easy);
    t->busy = 0;
    pipeline_transfer_close(t);
  }
  if (b->multi) curl_multi_cleanup(b->multi);
  b->multi = NULL;
  b->in_flight = 0;
  return 0;
}

static int is_concurrency(lua_State *L, const char *name) {
  (void)L;
  return strcmp(name, "concurrency") == 0;
}

int pipeline_batch_new(lua_State *L) {
  pipeline_transport_options o;
  int opts = 0, capacity = DEFAULT_CONCURRENCY, i;
  batch *b;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    opts = 1;
    lua_getfield(L, opts, "concurrency");
    if (!lua_isnil(L, -1)) {
      lua_Number n = lua_tonumber(L, -1);
      if (lua_type(L, -1) != LUA_TNUMBER || n != (lua_Number)(int)n || n < 1 ||
          n > MAX_CONCURRENCY)
        luaL_error(L, "option 'concurrency' must be a whole number from 1 to %d",
                   MAX_CONCURRENCY);
      capacity = (int)n;
    }
    lua_pop(L, 1);
  }
  pipeline_transport_options_read(L, opts, is_concurrency, &o);

  /* Closed first, then the resources (see client.c). */
  b = lua_newuserdatauv(L, sizeof(batch) + (size_t)(capacity - 1) * sizeof(pipeline_transfer), 0);
  memset(b, 0, sizeof(batch) + (size_t)(capacity - 1) * sizeof(pipeline_transfer));
  luaL_setmetatable(L, PIPELINE_BATCH_TYPE);
  b->multi = curl_multi_init();
  if (b->multi == NULL) luaL_error(L, "libcurl could not create a multi handle");
  b->capacity = capacity;
  curl_multi_setopt(b->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)capacity);
  /* Keep every slot's connection idle in the cache, even when few transfers
   * are added (a Retry-After pause holds them all): libcurl's default, 4 per
   * added handle, would close some and open new ones afterwards. */
  curl_multi_setopt(b->multi, CURLMOPT_MAXCONNECTS, (long)capacity);
  for (i = 0; i < capacity; i++) pipeline_transfer_open(L, &b->slots[i], &o);
  return 1;
}

/* batch:add(method, url [, headers [, body [, single_send [, timeout]]]]) -> id | nil
 * Starts a request; nil when every slot is busy. */
static int batch_add(lua_State *L) {
  batch *b = check_batch(L, 1);
  pipeline_transfer *t = NULL;
  int i;
  for (i = 0; i < b->capacity && t == NULL; i++)
    if (!b->slots[i].busy) t = &b->slots[i];
  if (t == NULL) {
    lua_pushnil(L);
    return 1;
  }
  pipeline_transfer_prepare(L, t, 2);
  if (curl_multi_add_handle(b->multi, t->easy) != CURLM_OK)
    return luaL_error(L, "libcurl could not start the request");
  t->busy = 1;
  t->id = ++b->next_id;
  b->in_flight++;
  lua_pushinteger(L, t->id);
  return 1;
}

/* Pushes {id = n, n = count, <the transfer's results>} for a finished one. */
static void push_finished(lua_State *L, batch *b, pipeline_transfer *t, CURLcode rc) {
  int n, i, top;
  curl_multi_remove_handle(b->multi, t->easy);
  t->busy = 0;
  b->in_flight--;
  lua_newtable(L);
  lua_pushinteger(L, t->id);
  lua_setfield(L, -2, "id");
  top = lua_gettop(L);
  n = pipeline_transfer_finish(L, t, rc);
  for (i = n; i >= 1; i--) lua_rawseti(L, top, i);
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
}

/* batch:step([timeout_seconds]) -> array of finished requests
 * Advances every request, waiting at most timeout (default 0) for one to
 * make progress. */
static int batch_step(lua_State *L) {
  batch *b = check_batch(L, 1);
  lua_Number timeout = luaL_optnumber(L, 2, 0);
  int running = 0, queued, finished = 0;
  CURLMsg *msg;
  luaL_argcheck(L, timeout >= 0 && timeout <= 86400, 2, "timeout out of range");
  lua_newtable(L);
  if (b->in_flight == 0) return 1;
  if (curl_multi_perform(b->multi, &running) != CURLM_OK)
    return luaL_error(L, "libcurl multi perform failed");
  if (timeout > 0 && running == b->in_flight) {
    /* nothing finished yet: wait for activity, then move on */
    curl_multi_poll(b->multi, NULL, 0, (int)(timeout * 1000), NULL);
    curl_multi_perform(b->multi, &running);
  }
  while ((msg = curl_multi_info_read(b->multi, &queued)) != NULL) {
    pipeline_transfer *t = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    if (t == NULL || !t->busy) continue;
    push_finished(L, b, t, msg->data.result);
    lua_rawseti(L, -2, ++finished);
  }
  return 1;
}

/* batch:pending() -> how many requests are in flight */
static int batch_pending(lua_State *L) {
  lua_pushinteger(L, check_batch(L, 1)->in_flight);
  return 1;
}

/* batch:capacity() -> how many may be in flight at once */
static int batch_capacity(lua_State *L) {
  lua_pushinteger(L, check_batch(L, 1)->capacity);
  return 1;
}

/* batch:timeout() -> seconds until libcurl wants step() called again (for a
 * host's own poller), or nil when it has no timer running */
static int batch_timeout(lua_State *L) {
  long ms = -1;
  curl_multi_timeout(check_batch(L, 1)->multi, &ms);
  if (ms < 0)
    lua_pushnil(L);
  else
    lua_pushnumber(L, (lua_Number)ms / 1000);
  return 1;
}

static int batch_is_closed(lua_State *L) {
  batch *b = luaL_checkudata(L, 1, PIPELINE_BATCH_TYPE);
  lua_pushboolean(L, b->multi == NULL);
  return 1;
}

void pipeline_batch_register(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"add", batch_add},           {"step", batch_step},
      {"pending", batch_pending},   {"capacity", batch_capacity},
      {"timeout", batch_timeout},   {"close", batch_close},
      {"is_closed", batch_is_closed}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__gc", batch_close},
#if LUA_VERSION_NUM >= 504
      {"__close", batch_close},
#endif
      {NULL, NULL}};
  luaL_newmetatable(L, PIPELINE_BATCH_TYPE);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

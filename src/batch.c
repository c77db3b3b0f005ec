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

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <lauxlib.h>

#include "client.h"
#include "compat.h"
#include "transfer.h"

typedef struct {
  CURLM *multi; /* NULL once closed */
  int capacity, in_flight;
  lua_Integer next_id;
  struct batch_sockets *sockets; /* socket mode (see the end of this file), or NULL */
  pipeline_transfer slots[1];    /* capacity of them: the userdata is sized so */
} batch;

static void sockets_free(batch *b);
static void push_all_finished(lua_State *L, batch *b, int owner);
static void sockets_register(lua_State *L);

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
  sockets_free(b); /* after the cleanup, whose socket callbacks write to it */
  return 0;
}

/* The batch's own options, besides the transport's. */
typedef struct {
  int capacity;
  pipeline_share *share;
} batch_options;

static void read_concurrency(lua_State *L, int arg, int value, const char *name, void *target) {
  lua_Number n;
  if (lua_type(L, value) != LUA_TNUMBER)
    luaL_argerror(L, arg,
                  lua_pushfstring(L, "option '%s' must be a whole number from 1 to %d, got %s",
                                  name, PIPELINE_MAX_CONCURRENCY, luaL_typename(L, value)));
  n = lua_tonumber(L, value);
  if (!(n >= 1 && n <= PIPELINE_MAX_CONCURRENCY) || n != (lua_Number)(int)n)
    luaL_argerror(L, arg,
                  lua_pushfstring(L, "option '%s' must be a whole number from 1 to %d, got %f",
                                  name, PIPELINE_MAX_CONCURRENCY, n));
  ((batch_options *)target)->capacity = (int)n;
}

static void read_share(lua_State *L, int arg, int value, const char *name, void *target) {
  int is_client = lua_getmetatable(L, value);
  if (is_client) {
    luaL_getmetatable(L, PIPELINE_CLIENT_TYPE);
    is_client = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  if (!is_client)
    luaL_argerror(L, arg,
                  lua_pushfstring(L, "option '%s' must be a %s, got %s", name, PIPELINE_CLIENT_TYPE,
                                  luaL_typename(L, value)));
  ((batch_options *)target)->share = pipeline_client_check(L, value)->share;
}

static const pipeline_option batch_option_list[] = {
    {"concurrency", read_concurrency}, {"share", read_share}, {NULL, NULL}};

int pipeline_batch_new(lua_State *L) {
  pipeline_transport_options o;
  batch_options own = {PIPELINE_DEFAULT_CONCURRENCY, NULL};
  pipeline_share *share;
  int opts = 0, capacity, i;
  batch *b;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    opts = 1;
  }
  pipeline_transport_options_read(L, opts, &o, batch_option_list, &own);
  capacity = own.capacity;
  share = own.share;

  /* Closed first, then the resources (see client.c). */
  b = lua_newuserdatauv(L, sizeof(batch) + (size_t)(capacity - 1) * sizeof(pipeline_transfer), 0);
  memset(b, 0, sizeof(batch) + (size_t)(capacity - 1) * sizeof(pipeline_transfer));
  luaL_setmetatable(L, PIPELINE_BATCH_TYPE);
  b->multi = curl_multi_init();
  if (b->multi == NULL) luaL_error(L, "libcurl could not create a multi handle");
  b->capacity = capacity;
  /* At most capacity requests fly at once, so at most capacity connections
   * per host are busy.  The limit is not set on a batch that shares a
   * client's connection cache: libcurl would count the connections other
   * batches of the client hold, and park this batch's requests waiting for
   * one of its own to end -- for ever, when it has none in flight. */
  if (share == NULL) curl_multi_setopt(b->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)capacity);
  /* Keep every slot's connection idle in the cache, even when few transfers
   * are added (a Retry-After pause holds them all): libcurl's default, 4 per
   * added handle, would close some and open new ones afterwards. */
  curl_multi_setopt(b->multi, CURLMOPT_MAXCONNECTS, (long)capacity);
  for (i = 0; i < capacity; i++) {
    if (share) {
      pipeline_share_retain(share);
      b->slots[i].share = share;
    }
    pipeline_transfer_open(L, &b->slots[i], &o);
  }
  if (share) { /* a batch of a client's hides what the client hides */
    int made = lua_gettop(L), secrets;
    lua_getfield(L, opts, "share");
    secrets = pipeline_secrets_push(L, made + 1);
    if (secrets) pipeline_secrets_set(L, made, secrets);
    lua_settop(L, made);
  }
  return 1;
}

/* A slot with no request in flight, or NULL when every one is busy. */
static pipeline_transfer *free_slot(batch *b) {
  int i;
  for (i = 0; i < b->capacity; i++)
    if (!b->slots[i].busy) return &b->slots[i];
  return NULL;
}

/* Starts t's prepared request as request number id. */
static void start(lua_State *L, batch *b, pipeline_transfer *t, lua_Integer id) {
  if (curl_multi_add_handle(b->multi, t->easy) != CURLM_OK)
    luaL_error(L, "libcurl could not start the request");
  t->busy = 1;
  t->id = id;
  b->in_flight++;
}

/* The next request that finished (its slot freed, its libcurl result in
 * *rc), or NULL when none is left to collect. */
static pipeline_transfer *next_finished(batch *b, CURLcode *rc) {
  int queued;
  CURLMsg *msg;
  while ((msg = curl_multi_info_read(b->multi, &queued)) != NULL) {
    pipeline_transfer *t = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    if (t == NULL || !t->busy) continue;
    *rc = msg->data.result;
    curl_multi_remove_handle(b->multi, t->easy);
    t->busy = 0;
    b->in_flight--;
    return t;
  }
  return NULL;
}

/* batch:add(method, url [, headers [, body [, single_send [, timeout [, expect [, op
 *   [, with_info]]]]]]]) -> id | nil (see pipeline_transfer_prepare)
 * Starts a request; nil when every slot is busy. */
static int batch_add(lua_State *L) {
  batch *b = check_batch(L, 1);
  pipeline_transfer *t = free_slot(b);
  if (t == NULL) {
    lua_pushnil(L);
    return 1;
  }
  pipeline_transfer_prepare(L, t, 2);
  start(L, b, t, ++b->next_id);
  lua_pushinteger(L, t->id);
  return 1;
}

/* Pushes {id = n, n = count, <the transfer's results>} for a finished one. */
static void push_finished(lua_State *L, pipeline_transfer *t, CURLcode rc, int owner) {
  int n, i, top;
  lua_createtable(L, 6, 2); /* sized for every result and id, n: no regrowth */
  lua_pushinteger(L, t->id);
  lua_setfield(L, -2, "id");
  top = lua_gettop(L);
  n = pipeline_transfer_finish(L, t, rc, owner); /* the top n values */
  for (i = n; i >= 1; i--) lua_rawseti(L, top, i);
  lua_settop(L, top); /* (what finish may leave below them) */
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
}

/* batch:step([timeout_seconds]) -> array of finished requests
 * Advances every request, waiting at most timeout (default 0) for one to
 * make progress. */
static int batch_step(lua_State *L) {
  batch *b = check_batch(L, 1);
  lua_Number timeout = luaL_optnumber(L, 2, 0);
  int running = 0;
  luaL_argcheck(L, timeout >= 0 && timeout <= 86400, 2, "timeout out of range");
  lua_newtable(L);
  if (b->in_flight == 0) return 1;
  if (b->sockets == NULL) { /* in socket mode, the host's events advance the transfers */
    if (curl_multi_perform(b->multi, &running) != CURLM_OK)
      return luaL_error(L, "libcurl multi perform failed");
    if (timeout > 0 && running == b->in_flight) {
      /* nothing finished yet: wait for activity, then move on */
      curl_multi_poll(b->multi, NULL, 0, (int)(timeout * 1000), NULL);
      curl_multi_perform(b->multi, &running);
    }
  }
  push_all_finished(L, b, 1);
  return 1;
}

/* ------------------------------------------------------------ send_all
 *
 * The whole of a long list of like requests in one call: the loop that
 * add() and step() make in Lua, here in C, for a caller that has nothing
 * else to do meanwhile (retry_many outside a host's loop).  Per request it
 * costs a URL; a plain success costs a `true`.  Everything else comes back
 * as step() gives it, for the caller's policy. */

/* Starts request r in a free slot as request number id. */
static void send_all_start(lua_State *L, batch *b, pipeline_request *r, lua_Integer id) {
  pipeline_transfer *t = free_slot(b);
  if (t == NULL) luaL_error(L, "no free slot in the batch"); /* in_flight < capacity: never */
  pipeline_transfer_setup(L, t, r);
  start(L, b, t, id);
}

/* Stores every finished request's result in the results table at index
 * results; returns whether one of them was a 429 (too many requests). */
static int send_all_collect(lua_State *L, batch *b, int results, int owner) {
  int throttled = 0;
  pipeline_transfer *t;
  CURLcode rc;
  while ((t = next_finished(b, &rc)) != NULL) {
    long status = 0;
    int n, top = lua_gettop(L);
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status == 429) throttled = 1;
    n = pipeline_transfer_finish(L, t, rc, owner);
    if (!(n == 1 && lua_toboolean(L, -1))) { /* anything but a plain success: step()'s form */
      int i;
      lua_createtable(L, n, 1);
      for (i = 1; i <= n; i++) {
        lua_pushvalue(L, -1 - n - 1 + i); /* the results are the n values below the table */
        lua_rawseti(L, -2, i);
      }
      lua_pushinteger(L, n);
      lua_setfield(L, -2, "n");
    }
    lua_rawseti(L, results, (lua_Integer)t->id);
    lua_settop(L, top);
  }
  return throttled;
}

/* batch:send_all(method, urls, headers [, expect [, op]]) -> results
 * Sends method to every URL of the list urls with the same headers, at most
 * capacity at once, and returns when all have finished: results[i] is true
 * for a plain success (with expect_success), else {n = count, <what step()
 * gives for a request>}.  After a 429, or a signal caught by the command
 * line, no new request starts: those not sent have no result (nil), and the
 * caller goes on with them at its own pace.  The batch must be idle and not
 * in socket mode; every URL is checked before the first is sent. */
static int batch_send_all(lua_State *L) {
  static const char *const send_all_expects[] = {"json", "success", NULL};
  batch *b = check_batch(L, 1);
  pipeline_request r;
  lua_Integer count, next = 1, i;
  long interrupts_at_start = (long)pipeline_interrupts;
  int stop = 0, results;
  r.method = luaL_checkoption(L, 2, NULL, pipeline_methods);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_argcheck(L, b->in_flight == 0, 1, "batch has requests in flight");
  luaL_argcheck(L, b->sockets == NULL, 1, "batch is in socket mode");
  count = (lua_Integer)lua_rawlen(L, 3);
  for (i = 1; i <= count; i++) {
    size_t len;
    const char *url, *refusal;
    lua_rawgeti(L, 3, i);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 3, "every URL must be a string");
    url = lua_tolstring(L, -1, &len);
    refusal = pipeline_transfer_url_refusal(&b->slots[0], url, len);
    if (refusal) luaL_argerror(L, 3, lua_pushfstring(L, "URL %s", refusal));
    lua_pop(L, 1);
  }
  r.headers = 4;
  r.body = NULL;
  r.body_len = 0;
  r.single_send = 1;
  r.timeout_ms = b->slots[0].timeout_ms;
  r.expect_success = luaL_checkoption(L, 5, "json", send_all_expects) == 1;
  r.success_info = 0;
  r.op = luaL_optstring(L, 6, "request");
  lua_settop(L, 6);
  lua_createtable(L, (int)(count < 1 << 24 ? count : 0), 0);
  results = lua_gettop(L);
  for (;;) {
    int running = 0;
    while (!stop && next <= count && b->in_flight < b->capacity) {
      lua_rawgeti(L, 3, next);
      r.url = lua_tostring(L, -1); /* libcurl copies it */
      send_all_start(L, b, &r, next++);
      lua_pop(L, 1);
    }
    if (b->in_flight == 0) break;
    if (curl_multi_perform(b->multi, &running) != CURLM_OK)
      return luaL_error(L, "libcurl multi perform failed");
    if (send_all_collect(L, b, results, 1)) stop = 1;
    if ((long)pipeline_interrupts != interrupts_at_start) stop = 1;
    if (b->in_flight > 0 && running == b->in_flight) curl_multi_poll(b->multi, NULL, 0, 1000, NULL);
  }
  return 1;
}

/* Appends every finished request to the table on top of the stack. */
static void push_all_finished(lua_State *L, batch *b, int owner) {
  int finished = 0;
  pipeline_transfer *t;
  CURLcode rc;
  while ((t = next_finished(b, &rc)) != NULL) {
    push_finished(L, t, rc, owner);
    lua_rawseti(L, -2, ++finished);
  }
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
      {"add", batch_add},         {"step", batch_step},           {"send_all", batch_send_all},
      {"pending", batch_pending}, {"capacity", batch_capacity},   {"timeout", batch_timeout},
      {"close", batch_close},     {"is_closed", batch_is_closed}, {NULL, NULL}};
  pipeline_register_type(L, PIPELINE_BATCH_TYPE, batch_close, NULL, methods);
  sockets_register(L);
}

/* ------------------------------------------------------------ socket mode
 *
 * For a host with an event loop of its own: instead of step() waiting on the
 * sockets, libcurl tells which sockets to watch and when to call it back
 * (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION), and the host says which
 * socket is ready or that the time came (curl_multi_socket_action).  The
 * callbacks run while libcurl is on the C stack, so they only record what
 * they were told, here; changes() hands it to Lua after libcurl returned,
 * and step() then only collects what finished, never waiting.
 */

typedef struct {
  curl_socket_t fd;
  int what; /* CURL_POLL_IN, _OUT, _INOUT or _REMOVE */
} socket_change;

struct batch_sockets {
  socket_change *changes;
  size_t count, size;
  long timer_ms;     /* libcurl's last timer: ms from when it was set, -1 none */
  int timer_changed; /* set since the last changes() */
  int out_of_memory; /* a change could not be recorded */
};

static void sockets_free(batch *b) {
  if (b->sockets == NULL) return;
  free(b->sockets->changes);
  free(b->sockets);
  b->sockets = NULL;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  struct batch_sockets *s = userp;
  (void)easy;
  (void)socketp;
  if (s->count == s->size) {
    size_t size = s->size ? s->size * 2 : 16;
    socket_change *grown = realloc(s->changes, size * sizeof *grown);
    if (grown == NULL) {
      s->out_of_memory = 1;
      return 0;
    }
    s->changes = grown;
    s->size = size;
  }
  s->changes[s->count].fd = fd;
  s->changes[s->count].what = what;
  s->count++;
  return 0;
}

static int on_timer(CURLM *multi, long ms, void *userp) {
  struct batch_sockets *s = userp;
  (void)multi;
  s->timer_ms = ms;
  s->timer_changed = 1;
  return 0;
}

static batch *check_socket_batch(lua_State *L, int index) {
  batch *b = check_batch(L, index);
  if (b->sockets == NULL) luaL_error(L, "the batch is not in socket mode (call use_sockets first)");
  return b;
}

/* batch:use_sockets() -> batch
 * Puts the batch in socket mode, for good; only while nothing is in flight. */
static int batch_use_sockets(lua_State *L) {
  batch *b = check_batch(L, 1);
  struct batch_sockets *s;
  lua_settop(L, 1);
  if (b->sockets) return 1;
  if (b->in_flight > 0) return luaL_error(L, "use_sockets: the batch has requests in flight");
  s = calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "not enough memory");
  s->timer_ms = -1;
  b->sockets = s;
  curl_multi_setopt(b->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(b->multi, CURLMOPT_SOCKETDATA, s);
  curl_multi_setopt(b->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(b->multi, CURLMOPT_TIMERDATA, s);
  return 1;
}

/* batch:socket_action([fd, what])
 * The host's news: socket fd is ready for what ("r", "w" or "rw"), or, with
 * no fd, the batch's timer fired.  An fd the batch no longer uses (the host
 * still watched it) is harmless.  Collect what finished with step(). */
static int batch_socket_action(lua_State *L) {
  batch *b = check_socket_batch(L, 1);
  curl_socket_t fd = CURL_SOCKET_TIMEOUT;
  int mask = 0, running = 0;
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *what = luaL_optstring(L, 3, "rw");
    luaL_argcheck(L, n >= 0 && n <= 0x7fffffff, 2, "not a file descriptor");
    if (strcmp(what, "r") == 0)
      mask = CURL_CSELECT_IN;
    else if (strcmp(what, "w") == 0)
      mask = CURL_CSELECT_OUT;
    else if (strcmp(what, "rw") == 0)
      mask = CURL_CSELECT_IN | CURL_CSELECT_OUT;
    else
      return luaL_argerror(L, 3, "must be \"r\", \"w\" or \"rw\"");
    fd = (curl_socket_t)n;
  }
  if (curl_multi_socket_action(b->multi, fd, mask, &running) != CURLM_OK)
    return luaL_error(L, "libcurl multi socket action failed");
  return 0;
}

/* batch:changes() -> list, timer
 * What libcurl asked for since the last call, in order: list holds pairs
 * fd, what ("r", "w", "rw", or false: stop watching fd); timer is nil
 * (unchanged), false (cancelled) or the seconds until socket_action() with
 * no fd is due. */
static int batch_changes(lua_State *L) {
  batch *b = check_socket_batch(L, 1);
  struct batch_sockets *s = b->sockets;
  size_t i;
  if (s->out_of_memory) {
    s->out_of_memory = 0;
    return luaL_error(L, "not enough memory to record libcurl's socket changes");
  }
  lua_createtable(L, (int)(s->count * 2), 0);
  for (i = 0; i < s->count; i++) {
    lua_pushinteger(L, (lua_Integer)s->changes[i].fd);
    lua_rawseti(L, -2, (int)(2 * i + 1));
    switch (s->changes[i].what) {
      case CURL_POLL_IN:
        lua_pushliteral(L, "r");
        break;
      case CURL_POLL_OUT:
        lua_pushliteral(L, "w");
        break;
      case CURL_POLL_INOUT:
        lua_pushliteral(L, "rw");
        break;
      default:
        lua_pushboolean(L, 0);
        break;
    }
    lua_rawseti(L, -2, (int)(2 * i + 2));
  }
  s->count = 0;
  if (!s->timer_changed)
    lua_pushnil(L);
  else if (s->timer_ms < 0)
    lua_pushboolean(L, 0);
  else
    lua_pushnumber(L, (lua_Number)s->timer_ms / 1000);
  s->timer_changed = 0;
  return 2;
}

static void sockets_register(lua_State *L) {
  static const luaL_Reg methods[] = {{"use_sockets", batch_use_sockets},
                                     {"socket_action", batch_socket_action},
                                     {"changes", batch_changes},
                                     {NULL, NULL}};
  luaL_getmetatable(L, PIPELINE_BATCH_TYPE);
  lua_getfield(L, -1, "__index");
  luaL_setfuncs(L, methods, 0);
  lua_pop(L, 2);
}

/*
 * transfer.c - one HTTP exchange on a libcurl easy handle.
 *
 * Rules kept here, because they must hold whatever the Lua side asks for:
 * no signals, finite timeouts, redirects never followed, TLS verified unless
 * the caller says otherwise, plain http only to loopback (or when allowed),
 * a bound on the response size, and no Lua error ever raised while libcurl
 * is on the C stack: callbacks only append to C buffers owned by the
 * transfer, and Lua values are built after the transfer has returned.
 */
#include "transfer.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "answer.h"
#include "compat.h"

#define DEFAULT_MAX_RESPONSE (8L * 1024 * 1024)
/* Response headers have a bound of their own: they are not part of the body
 * limit the caller sets, but a server must not be able to grow them freely. */
#define MAX_HEADER_BYTES (256 * 1024)

#if LIBCURL_VERSION_NUM >= 0x075000 /* 7.80.0: CURLOPT_PREREQFUNCTION */
#define HAVE_PREREQ 1
#endif

volatile sig_atomic_t pipeline_interrupts = 0;

typedef pipeline_buffer buffer;
typedef pipeline_transfer transfer;

/* --------------------------------------------------------------- secrets
 * The strings a transport's failures must not show (its client's tokens, a
 * proxy password): a list per client or batch userdata, kept in a
 * weak-keyed registry table, so the userdata needs no user value (which Lua
 * 5.1 lacks) and the list lives as long as the transport does. */

static const char SECRETS_KEY[] = "pipeline.secrets";

/* Pushes the registry's table of lists, creating it the first time. */
static void push_secret_lists(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, SECRETS_KEY);
  if (lua_istable(L, -1)) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, SECRETS_KEY);
}

void pipeline_secrets_set(lua_State *L, int owner, int list) {
  owner = lua_absindex(L, owner);
  list = lua_absindex(L, list);
  push_secret_lists(L);
  lua_pushvalue(L, owner);
  lua_pushvalue(L, list);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

int pipeline_secrets_push(lua_State *L, int owner) {
  owner = lua_absindex(L, owner);
  push_secret_lists(L);
  lua_pushvalue(L, owner);
  lua_rawget(L, -2);
  lua_remove(L, -2);
  if (lua_istable(L, -1)) return lua_gettop(L);
  return 0;
}

/* --------------------------------------------------------------- buffers */

static int buffer_append(buffer *b, const char *data, size_t n) {
  if (n > b->limit - b->len) {
    b->overflowed = 1;
    return 0;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    char *grown;
    while (cap < b->len + n + 1) cap *= 2;
    grown = realloc(b->data, cap);
    if (grown == NULL) return 0;
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 1;
}

static void buffer_reset(buffer *b) {
  b->len = 0;
  b->overflowed = 0;
  if (b->data) b->data[0] = '\0';
}

static void buffer_free(buffer *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* ------------------------------------------------------ libcurl callbacks */

static size_t on_body(char *data, size_t size, size_t count, void *ud) {
  transfer *t = ud;
  size_t n = size * count;
  return buffer_append(&t->body, data, n) ? n : 0;
}

int pipeline_header_line(pipeline_buffer *headers, const char *data, size_t n) {
  /* A new status line starts a new response (after a 100 Continue, say):
   * only the last response's headers describe the body we keep. */
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) buffer_reset(headers);
  return buffer_append(headers, data, n);
}

static size_t on_header(char *data, size_t size, size_t count, void *ud) {
  transfer *t = ud;
  size_t n = size * count;
  return pipeline_header_line(&t->headers, data, n) ? n : 0;
}

/* libcurl's progress callback, called at least once a second while a
 * transfer runs: a signal caught since the request started aborts it. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  transfer *t = ud;
  (void)dltotal;
  (void)dlnow;
  (void)ultotal;
  (void)ulnow;
  if ((long)pipeline_interrupts != t->interrupts_at_start) {
    t->interrupted = 1;
    return 1;
  }
  return 0;
}

#ifdef HAVE_PREREQ
/* Called each time libcurl is about to send the request, including the
 * silent re-send it makes when a reused connection turns out to be dead.
 * A request that must not reach the server twice aborts that second send;
 * its outcome is then unknown and the caller must find it out. */
static int on_prereq(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port) {
  transfer *t = ud;
  (void)conn_primary_ip;
  (void)conn_local_ip;
  (void)conn_primary_port;
  (void)conn_local_port;
  t->sends++;
  if (t->single_send && t->sends > 1) return CURL_PREREQFUNC_ABORT;
  return CURL_PREREQFUNC_OK;
}
#endif

/* ---------------------------------------------------------------- share */

struct pipeline_share {
  CURLSH *handle;
  int refs;
};

pipeline_share *pipeline_share_new(void) {
  pipeline_share *s = malloc(sizeof *s);
  if (s == NULL) return NULL;
  s->handle = curl_share_init();
  if (s->handle == NULL) {
    free(s);
    return NULL;
  }
  s->refs = 1;
#if LIBCURL_VERSION_NUM >= 0x074400 /* 7.68.0: a shared connection cache that works */
  curl_share_setopt(s->handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
#endif
  curl_share_setopt(s->handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_share_setopt(s->handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  return s;
}

void pipeline_share_retain(pipeline_share *s) { s->refs++; }

void pipeline_share_release(pipeline_share *s) {
  if (s == NULL || --s->refs > 0) return;
  curl_share_cleanup(s->handle);
  free(s);
}

/* ------------------------------------------------------------- options */

/* Each option's reader checks the value at index value (the options table
 * is argument arg) and stores it; a bad one raises naming the option. */

static void check_option_type(lua_State *L, int arg, int value, const char *name, int type,
                              const char *expected) {
  if (lua_type(L, value) != type)
    luaL_argerror(L, arg,
                  lua_pushfstring(L, "option '%s' must be %s, got %s", name, expected,
                                  luaL_typename(L, value)));
}

const char *pipeline_string_option(lua_State *L, int arg, int value, const char *name,
                                   size_t *len) {
  size_t n;
  const char *s;
  check_option_type(L, arg, value, name, LUA_TSTRING, "a string");
  s = lua_tolstring(L, value, &n);
  /* the value is not shown: it may be a secret (a proxy password) */
  if (!pipeline_is_header_value(s, n) || strlen(s) != n)
    luaL_argerror(L, arg, lua_pushfstring(L, "option '%s' must not hold control characters", name));
  if (len) *len = n;
  return s;
}

static int boolean_option(lua_State *L, int arg, int value, const char *name) {
  check_option_type(L, arg, value, name, LUA_TBOOLEAN, "a boolean");
  return lua_toboolean(L, value);
}

/* Seconds, as libcurl takes them: milliseconds from 1 to 2^31 - 1. */
static long milliseconds_option(lua_State *L, int arg, int value, const char *name) {
  lua_Number ms;
  check_option_type(L, arg, value, name, LUA_TNUMBER, "a number");
  ms = lua_tonumber(L, value) * 1000;
  if (!(ms >= 1 && ms <= 2147483647.0))
    luaL_argerror(L, arg,
                  lua_pushfstring(L,
                                  "option '%s' must be a number of seconds from 0.001 to "
                                  "2147483.647, got %f",
                                  name, lua_tonumber(L, value)));
  return (long)ms;
}

static long bytes_option(lua_State *L, int arg, int value, const char *name) {
  lua_Number n;
  check_option_type(L, arg, value, name, LUA_TNUMBER, "a number");
  n = lua_tonumber(L, value);
  if (!(n >= 1 && n <= 2147483647.0 && n == (lua_Number)(long)n))
    luaL_argerror(L, arg,
                  lua_pushfstring(L,
                                  "option '%s' must be a whole number of bytes from 1 to "
                                  "2147483647, got %f",
                                  name, n));
  return (long)n;
}

#define TRANSPORT(target) ((pipeline_transport_options *)(target))

static void read_timeout(lua_State *L, int arg, int value, const char *name, void *target) {
  TRANSPORT(target)->timeout_ms = milliseconds_option(L, arg, value, name);
}
static void read_connect_timeout(lua_State *L, int arg, int value, const char *name, void *target) {
  TRANSPORT(target)->connect_timeout_ms = milliseconds_option(L, arg, value, name);
}
static void read_max_response(lua_State *L, int arg, int value, const char *name, void *target) {
  TRANSPORT(target)->max_response = bytes_option(L, arg, value, name);
}
static void read_ca_file(lua_State *L, int arg, int value, const char *name, void *target) {
  TRANSPORT(target)->ca_file = pipeline_string_option(L, arg, value, name, NULL);
}
static void read_ca_path(lua_State *L, int arg, int value, const char *name, void *target) {
  TRANSPORT(target)->ca_path = pipeline_string_option(L, arg, value, name, NULL);
}
static void read_proxy(lua_State *L, int arg, int value, const char *name, void *target) {
  TRANSPORT(target)->proxy = pipeline_string_option(L, arg, value, name, NULL);
}
static void read_user_agent(lua_State *L, int arg, int value, const char *name, void *target) {
  TRANSPORT(target)->user_agent = pipeline_string_option(L, arg, value, name, NULL);
}
static void read_insecure(lua_State *L, int arg, int value, const char *name, void *target) {
  TRANSPORT(target)->insecure = boolean_option(L, arg, value, name);
}
static void read_allow_http(lua_State *L, int arg, int value, const char *name, void *target) {
  TRANSPORT(target)->allow_http = boolean_option(L, arg, value, name);
}

const pipeline_option pipeline_transport_option_list[] = {{"timeout", read_timeout},
                                                          {"connect_timeout", read_connect_timeout},
                                                          {"max_response_size", read_max_response},
                                                          {"ca_file", read_ca_file},
                                                          {"ca_path", read_ca_path},
                                                          {"insecure", read_insecure},
                                                          {"proxy", read_proxy},
                                                          {"allow_http", read_allow_http},
                                                          {"user_agent", read_user_agent},
                                                          {NULL, NULL}};

static const pipeline_option *find_option(const pipeline_option *list, const char *name) {
  for (; list && list->name; list++)
    if (strcmp(name, list->name) == 0) return list;
  return NULL;
}

void pipeline_transport_options_read(lua_State *L, int arg, pipeline_transport_options *o,
                                     const pipeline_option *own, void *own_target) {
  memset(o, 0, sizeof *o);
  o->timeout_ms = PIPELINE_DEFAULT_TIMEOUT_MS;
  o->connect_timeout_ms = PIPELINE_DEFAULT_CONNECT_TIMEOUT_MS;
  o->max_response = DEFAULT_MAX_RESPONSE;
  if (arg == 0) return;
  lua_pushnil(L);
  while (lua_next(L, arg) != 0) {
    const pipeline_option *option;
    const char *name;
    int value = lua_gettop(L);
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_argerror(
          L, arg, lua_pushfstring(L, "option names must be strings, got %s", luaL_typename(L, -2)));
    name = lua_tostring(L, -2);
    if ((option = find_option(pipeline_transport_option_list, name)) != NULL)
      option->read(L, arg, value, name, o);
    else if ((option = find_option(own, name)) != NULL)
      option->read(L, arg, value, name, own_target);
    else
      luaL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s'", name));
    lua_settop(L, value - 1); /* the key, for lua_next */
  }
}

#define SETOPT(t, opt, value)                                                                      \
  do {                                                                                             \
    if (curl_easy_setopt((t)->easy, opt, value) != CURLE_OK)                                       \
      luaL_error(L, "libcurl refused option %s", #opt);                                            \
  } while (0)

void pipeline_transfer_open(lua_State *L, transfer *t, const pipeline_transport_options *o) {
  t->allow_http = o->allow_http;
  t->timeout_ms = o->timeout_ms;
  t->set_method = -1;
  t->set_timeout_ms = -1;
  t->body.limit = (size_t)o->max_response;
  t->headers.limit = MAX_HEADER_BYTES;
  t->easy = curl_easy_init();
  if (t->easy == NULL) luaL_error(L, "libcurl could not create a handle");

  if (t->share) SETOPT(t, CURLOPT_SHARE, t->share->handle);
  SETOPT(t, CURLOPT_NOSIGNAL, 1L);
  SETOPT(t, CURLOPT_ERRORBUFFER, t->error);
  SETOPT(t, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
  SETOPT(t, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  SETOPT(t, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SETOPT(t, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
  SETOPT(t, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_response);
  SETOPT(t, CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
  SETOPT(t, CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
  if (o->ca_file) SETOPT(t, CURLOPT_CAINFO, o->ca_file);
  if (o->ca_path) SETOPT(t, CURLOPT_CAPATH, o->ca_path);
  if (o->proxy) SETOPT(t, CURLOPT_PROXY, o->proxy);
  {
    /* Loopback never goes through a proxy (a local service, the simulator):
     * the environment's no_proxy list, plus the loopback names.  Setting
     * CURLOPT_NOPROXY replaces libcurl's reading of no_proxy, hence both. */
    const char *env = getenv("no_proxy");
    if (env == NULL || *env == '\0') env = getenv("NO_PROXY");
    if (env != NULL && strcmp(env, "*") == 0) {
      SETOPT(t, CURLOPT_NOPROXY, "*");
    } else {
      lua_pushfstring(L, "%s%slocalhost,127.0.0.1,::1", env ? env : "", env && *env ? "," : "");
      SETOPT(t, CURLOPT_NOPROXY, lua_tostring(L, -1)); /* libcurl copies it */
      lua_pop(L, 1);
    }
  }
  /* No Accept-Encoding: the answers are small JSON, a compressed one could
   * expand past the size limit only after it was accepted, and libcurl's
   * decoding set-up costs a tenth of a whole call. */
  SETOPT(t, CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(t, CURLOPT_WRITEDATA, (void *)t);
  SETOPT(t, CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(t, CURLOPT_HEADERDATA, (void *)t);
  SETOPT(t, CURLOPT_PRIVATE, (void *)t);
  SETOPT(t, CURLOPT_NOPROGRESS, 0L);
  SETOPT(t, CURLOPT_XFERINFOFUNCTION, on_progress);
  SETOPT(t, CURLOPT_XFERINFODATA, (void *)t);
#ifdef HAVE_PREREQ
  SETOPT(t, CURLOPT_PREREQFUNCTION, on_prereq);
  SETOPT(t, CURLOPT_PREREQDATA, (void *)t);
#endif
  if (o->user_agent) {
    SETOPT(t, CURLOPT_USERAGENT, o->user_agent);
  } else {
    lua_pushfstring(L, "codearts-pipeline-lua/%s libcurl/%s %s", PIPELINE_VERSION,
                    curl_version_info(CURLVERSION_NOW)->version, LUA_VERSION);
    SETOPT(t, CURLOPT_USERAGENT, lua_tostring(L, -1)); /* libcurl copies it */
    lua_pop(L, 1);
  }
}

void pipeline_transfer_close(transfer *t) {
  if (t->easy) curl_easy_cleanup(t->easy);
  t->easy = NULL;
  /* after the easy handle: the share outlives every handle using it */
  pipeline_share_release(t->share);
  t->share = NULL;
  curl_slist_free_all(t->request_headers);
  t->request_headers = NULL;
  free(t->accepted_origin);
  t->accepted_origin = NULL;
  t->accepted_origin_len = 0;
  free(t->set_url);
  t->set_url = NULL;
  t->set_url_len = 0;
  buffer_free(&t->body);
  buffer_free(&t->headers);
}

/* ------------------------------------------------------------ requests */

static int append_header(transfer *t, const char *line) {
  struct curl_slist *grown = curl_slist_append(t->request_headers, line);
  if (grown == NULL) return 0;
  t->request_headers = grown;
  return 1;
}

/* Whether node holds "name: value" (or "name;" for an empty value). */
static int header_line_is(const struct curl_slist *node, const char *name, size_t nlen,
                          const char *value, size_t vlen) {
  const char *line;
  size_t len;
  if (node == NULL) return 0;
  line = node->data;
  len = strlen(line);
  if (vlen == 0) return len == nlen + 1 && memcmp(line, name, nlen) == 0 && line[nlen] == ';';
  return len == nlen + 2 + vlen && memcmp(line, name, nlen) == 0 && line[nlen] == ':' &&
         line[nlen + 1] == ' ' && memcmp(line + nlen + 2, value, vlen) == 0;
}
static int is_content_type(const char *name, size_t nlen) {
  return nlen == 12 && pipeline_strncasecmp_ascii(name, "content-type", 12) == 0;
}

/* The header pair on top of the stack (name at -2, value at -1) of the
 * headers table at index table (an argument), checked: raises an argument
 * error on a bad one.  Returns whether it is the Content-Type. */
static int checked_header(lua_State *L, int table, const char **name, size_t *nlen,
                          const char **value, size_t *vlen) {
  if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
    luaL_argerror(L, table, "bad header: names and values must be strings");
  *name = lua_tolstring(L, -2, nlen);
  *value = lua_tolstring(L, -1, vlen);
  if (!pipeline_is_header_name(*name, *nlen))
    luaL_argerror(L, table, lua_pushfstring(L, "bad header name '%s'", *name));
  if (!pipeline_is_header_value(*value, *vlen))
    luaL_argerror(
        L, table,
        lua_pushfstring(L, "bad value for header '%s': control characters are not allowed", *name));
  return is_content_type(*name, *nlen);
}

/* Whether t->request_headers already holds exactly the headers of the table
 * at index table (the same names and values in the same order, with the same
 * trailing lines): a client sends the same headers call after call, and
 * building the list costs an allocation per line.  Stops at the first
 * difference, leaving every check to set_request_headers; a line found in
 * the list passed them when it was built (its name is checked again, so a
 * name holding ": " cannot pass for a name and part of a value). */
static int request_headers_unchanged(lua_State *L, transfer *t, int table, int has_body,
                                     int has_content) {
  const struct curl_slist *node = t->request_headers;
  int content_type = 0;
  if (node == NULL || t->headers_have_body != has_body || t->headers_have_content != has_content)
    return 0;
  if (table) {
    lua_pushnil(L);
    while (lua_next(L, table) != 0) {
      size_t nlen, vlen;
      const char *name, *value;
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 2);
        return 0;
      }
      name = lua_tolstring(L, -2, &nlen);
      value = lua_tolstring(L, -1, &vlen);
      if (!pipeline_is_header_name(name, nlen) || !header_line_is(node, name, nlen, value, vlen)) {
        lua_pop(L, 2);
        return 0;
      }
      if (is_content_type(name, nlen)) content_type = 1;
      node = node->next;
      lua_pop(L, 1);
    }
  }
  if (has_content) {
    if (node == NULL || strcmp(node->data, "Expect:") != 0) return 0;
    node = node->next;
  }
  if (has_body && !content_type) {
    if (node == NULL || strcmp(node->data, "Content-Type:") != 0) return 0;
    node = node->next;
  }
  return node == NULL;
}

/* Builds the request's header list from the table at index table into
 * t->request_headers, unless it holds them already.  The transfer owns the
 * list, so a check that raises half-way leaves nothing to leak: the next
 * request or close frees it. */
static void set_request_headers(lua_State *L, transfer *t, int table, int has_body,
                                int has_content) {
  int content_type = 0;
  if (request_headers_unchanged(L, t, table, has_body, has_content)) return;
  curl_slist_free_all(t->request_headers);
  t->request_headers = NULL;
  t->headers_have_body = has_body;
  t->headers_have_content = has_content;
  if (table) {
    lua_pushnil(L);
    while (lua_next(L, table) != 0) {
      size_t nlen, vlen;
      const char *name, *value;
      if (checked_header(L, table, &name, &nlen, &value, &vlen)) content_type = 1;
      /* "Name:" with no value would remove the header; "Name;" sends it empty */
      lua_pushfstring(L, vlen ? "%s: %s" : "%s;", name, value);
      if (!append_header(t, lua_tostring(L, -1))) luaL_error(L, "not enough memory");
      lua_pop(L, 2);
    }
  }
  /* A body is sent at once: waiting for 100 Continue only costs a round trip. */
  if (has_content && !append_header(t, "Expect:")) luaL_error(L, "not enough memory");
  /* Without a Content-Type of the caller's, libcurl would claim a form. */
  if (has_body && !content_type && !append_header(t, "Content-Type:"))
    luaL_error(L, "not enough memory");
}

/* The length of url's "scheme://authority/" (up to and including the slash
 * that ends the authority), or 0 when it has no such plain form. */
static size_t origin_length(const char *url) {
  const char *p = url, *authority;
  while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.') p++;
  if (p == url || strncmp(p, "://", 3) != 0) return 0;
  for (authority = p + 3, p = authority; *p && *p != '/'; p++)
    if (strchr("?#@\\ ", *p)) return 0;
  if (*p != '/' || p == authority) return 0;
  return (size_t)(p - url) + 1;
}

/* pipeline_url_refusal, for a transfer: its verdict rests on the scheme and
 * the authority only (and on the transfer's allow_http), so a URL with the
 * same "scheme://authority/" as the last one accepted, and no space (which
 * the parser refuses anywhere), is accepted without parsing it again. */
static const char *url_refusal(transfer *t, const char *url) {
  size_t origin = origin_length(url);
  const char *refusal;
  if (origin && origin == t->accepted_origin_len && t->accepted_origin &&
      memcmp(url, t->accepted_origin, origin) == 0 && strchr(url, ' ') == NULL)
    return NULL;
  refusal = pipeline_url_refusal(url, t->allow_http, 0);
  if (refusal == NULL && origin) {
    char *copy = malloc(origin);
    if (copy) {
      memcpy(copy, url, origin);
      free(t->accepted_origin);
      t->accepted_origin = copy;
      t->accepted_origin_len = origin;
    }
  }
  return refusal;
}

/* in the order of pipeline_request's METHOD_ names */
const char *const pipeline_methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", NULL};

static const char *transport_kind(transfer *t, CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
      return "tls";
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL: /* a status line of an unknown HTTP version */
    /* libcurl's answer to a response header line over its own limit
     * (CURL_MAX_HTTP_HEADER, 100 KiB): the server's doing, not ours */
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_CONTENT_ENCODING:
      return "protocol";
    case CURLE_WRITE_ERROR:
      return (t->body.overflowed || t->headers.overflowed) ? "protocol" : "network";
    default:
      return "network";
  }
}

/* Pushes nil, message, code, info for a transfer that got no complete
 * answer (info with what had arrived: a body over the limit, say). */
static int push_transport_failure(lua_State *L, transfer *t, CURLcode rc, const pipeline_answer *a,
                                  long status) {
#ifdef HAVE_PREREQ
  int sent = t->sends > 0;
#else
  /* Without the pre-request hook we cannot tell; assume the worst. */
  int sent = rc != CURLE_COULDNT_CONNECT && rc != CURLE_COULDNT_RESOLVE_HOST &&
             rc != CURLE_COULDNT_RESOLVE_PROXY;
#endif
  const char *detail;
  /* (the push functions return nothing on Lua 5.1: the detail is read back) */
  if (rc == CURLE_FILESIZE_EXCEEDED || t->body.overflowed)
    lua_pushfstring(L, "response body is larger than the limit of %d bytes", (int)t->body.limit);
  else if (t->headers.overflowed)
    lua_pushfstring(L, "response headers are larger than %d bytes", MAX_HEADER_BYTES);
  else if (rc == CURLE_OUT_OF_MEMORY)
    lua_pushliteral(L, "libcurl could not take the response (out of memory: a response "
                       "header line over 100 KiB does this)");
  else if (rc == CURLE_ABORTED_BY_CALLBACK && t->interrupted)
    lua_pushliteral(L, "interrupted by a signal");
  else if (rc == CURLE_ABORTED_BY_CALLBACK)
    lua_pushliteral(L, "connection lost after the request was sent; "
                       "it was not sent again");
  else if (t->error[0])
    lua_pushstring(L, t->error);
  else
    lua_pushstring(L, curl_easy_strerror(rc));
  detail = lua_tostring(L, -1);
  pipeline_push_transport_failure(L, a, transport_kind(t, rc), detail, rc, sent,
                                  status > 0 ? status : 0, status > 0 ? t->headers.data : NULL);
  lua_remove(L, -5); /* the detail */
  return 4;
}

void pipeline_push_headers(lua_State *L, const char *data) {
  const char *p = data ? data : "";
  char lowered[64];
  lua_createtable(L, 0, 8);
  while (*p) {
    /* lines end in CRLF, or in a bare LF from a lax server, which libcurl
     * accepts too */
    const char *end = strchr(p, '\n'), *colon;
    size_t len = end ? (size_t)(end - p) : strlen(p);
    size_t next = end ? len + 1 : len;
    if (len > 0 && p[len - 1] == '\r') len--;
    colon = memchr(p, ':', len);
    if (colon && colon != p) {
      const char *v = colon + 1, *vend = p + len;
      size_t nlen = (size_t)(colon - p), i;
      while (v < vend && (*v == ' ' || *v == '\t')) v++;
      while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) vend--;
      if (nlen <= sizeof lowered) {
        /* the usual short name: lower-cased on the stack, one Lua string */
        for (i = 0; i < nlen; i++) lowered[i] = (char)tolower((unsigned char)p[i]);
        lua_pushlstring(L, lowered, nlen);
      } else {
        luaL_Buffer name;
        luaL_buffinit(L, &name);
        for (i = 0; i < nlen; i++) luaL_addchar(&name, (char)tolower((unsigned char)p[i]));
        luaL_pushresult(&name);
      }
      lua_pushvalue(L, -1);
      lua_rawget(L, -3);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(vend - v));
      } else {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(vend - v));
        lua_concat(L, 3);
      }
      lua_rawset(L, -3);
    }
    p += next;
  }
}

/* Why url may not be sent on t (a static string), or NULL. */
const char *pipeline_transfer_url_refusal(transfer *t, const char *url, size_t url_len) {
  if (strlen(url) != url_len || !pipeline_is_header_value(url, url_len))
    return "holds a control character";
  return url_refusal(t, url);
}

/* Whether url is the URL last set on t, remembering it when not.  (A copy
 * that cannot be made only costs the next comparison.) */
static int same_url(transfer *t, const char *url) {
  size_t len = strlen(url);
  char *copy;
  if (t->set_url && t->set_url_len == len && memcmp(t->set_url, url, len) == 0) return 1;
  copy = malloc(len + 1);
  free(t->set_url);
  t->set_url = copy;
  t->set_url_len = copy ? len : 0;
  if (copy) memcpy(copy, url, len + 1);
  return 0;
}

/* The operation's name, kept for the result, which a batch builds after
 * pipeline_transfer_setup returned (cut to the room there is). */
static void copy_op(char *to, size_t room, const char *op) {
  size_t i;
  for (i = 0; i + 1 < room && op[i]; i++) to[i] = op[i];
  to[i] = '\0';
}

void pipeline_transfer_setup(lua_State *L, transfer *t, const pipeline_request *r) {
  const char *method = pipeline_methods[r->method];
  int has_body = r->body != NULL || r->method == METHOD_POST || r->method == METHOD_PUT ||
                 r->method == METHOD_PATCH;
  int shape = r->method * 2 + has_body; /* what the method options were last set for */
  set_request_headers(L, t, r->headers, has_body, r->body_len > 0);
  /* Options only when they change: each is a call into libcurl, and most
   * calls of a client repeat the last one's. */
  if (r->timeout_ms != t->set_timeout_ms) {
    SETOPT(t, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    t->set_timeout_ms = r->timeout_ms;
  }
  if (!same_url(t, r->url)) SETOPT(t, CURLOPT_URL, r->url); /* a poll asks the same again */
  if (t->set_headers != t->request_headers) {
    SETOPT(t, CURLOPT_HTTPHEADER, t->request_headers);
    t->set_headers = t->request_headers;
  }
  if (has_body && r->body_len > 0) {
    SETOPT(t, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    SETOPT(t, CURLOPT_COPYPOSTFIELDS, r->body);
    t->set_empty_body = 0;
  } else if (has_body && !(t->set_empty_body && t->set_method == shape)) {
    SETOPT(t, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    SETOPT(t, CURLOPT_POSTFIELDS, ""); /* a static empty body: nothing to copy */
    t->set_empty_body = 1;
  } else if (!has_body && t->set_method != shape) {
    SETOPT(t, CURLOPT_HTTPGET, 1L);
  }
  if (t->set_method != shape) {
    /* libcurl's own verb is POST with a body and GET without */
    SETOPT(t, CURLOPT_CUSTOMREQUEST,
           r->method == (has_body ? METHOD_POST : METHOD_GET) ? NULL : method);
    t->set_method = shape;
  }
  buffer_reset(&t->body);
  buffer_reset(&t->headers);
  t->error[0] = '\0';
  t->sends = 0;
  t->single_send = r->single_send;
  t->expect_success = r->expect_success;
  t->success_info = r->success_info;
  copy_op(t->op, sizeof t->op, r->op ? r->op : "request");
  t->interrupts_at_start = (long)pipeline_interrupts;
  t->interrupted = 0;
}

/* What a good answer is (pipeline_request's expect_success: 0 or 1). */
static const char *const expects[] = {"json", "success", NULL};

/* The request's arguments, as offsets from the first (named stack slots). */
enum {
  REQ_METHOD,
  REQ_URL,
  REQ_HEADERS,
  REQ_BODY,
  REQ_SINGLE_SEND,
  REQ_TIMEOUT,
  REQ_EXPECT,
  REQ_OP,
  REQ_WITH_INFO
};

void pipeline_transfer_prepare(lua_State *L, transfer *t, int first) {
  pipeline_request r;
  const char *refusal;
  size_t url_len;
  r.method = luaL_checkoption(L, first + REQ_METHOD, NULL, pipeline_methods);
  r.url = luaL_checklstring(L, first + REQ_URL, &url_len);
  r.headers = 0;
  if (!lua_isnoneornil(L, first + REQ_HEADERS)) {
    luaL_checktype(L, first + REQ_HEADERS, LUA_TTABLE);
    r.headers = first + REQ_HEADERS;
  }
  r.body_len = 0;
  r.body = luaL_optlstring(L, first + REQ_BODY, NULL, &r.body_len);
  refusal = pipeline_transfer_url_refusal(t, r.url, url_len);
  if (refusal) luaL_argerror(L, first + REQ_URL, lua_pushfstring(L, "URL %s", refusal));
  r.single_send = lua_toboolean(L, first + REQ_SINGLE_SEND);
  r.timeout_ms = t->timeout_ms;
  if (!lua_isnoneornil(L, first + REQ_TIMEOUT)) {
    lua_Number seconds = luaL_checknumber(L, first + REQ_TIMEOUT);
    luaL_argcheck(L, seconds >= 0, first + REQ_TIMEOUT, "timeout must not be negative");
    if (seconds * 1000 < (lua_Number)r.timeout_ms)
      r.timeout_ms = seconds * 1000 < 1 ? 1 : (long)(seconds * 1000);
  }
  r.expect_success = luaL_checkoption(L, first + REQ_EXPECT, "json", expects) == 1;
  r.op = luaL_optstring(L, first + REQ_OP, "request");
  r.success_info = lua_toboolean(L, first + REQ_WITH_INFO);
  pipeline_transfer_setup(L, t, &r);
}

/* Whether t got the answer nearly every retry and stop gets: a 2xx whose
 * body is exactly {"success":true}.  Settled here, without building a Lua
 * value of the answer: the caller gets true, as the full rule would give. */
static int plain_success(transfer *t, long status) {
  static const char success[] = "{\"success\":true}";
  return t->expect_success && !t->success_info && status >= 200 && status < 300 &&
         t->body.len == sizeof success - 1 && memcmp(t->body.data, success, t->body.len) == 0;
}

int pipeline_transfer_finish(lua_State *L, transfer *t, CURLcode rc, int owner) {
  pipeline_answer a;
  long status = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  if (rc == CURLE_OK && plain_success(t, status)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  a.op = t->op;
  a.expect_success = t->expect_success;
  a.success_info = t->success_info;
  a.idempotent = !t->single_send;
  a.secrets = owner ? pipeline_secrets_push(L, owner) : 0; /* left below the results */
  /* Every libcurl result is an answer of the transport, never a raise: a
   * server can provoke any of them (CURLE_OUT_OF_MEMORY by one long header
   * line), and a raise would end every job of a batch. */
  if (rc != CURLE_OK) return push_transport_failure(L, t, rc, &a, status);
  return pipeline_push_answer(L, &a, status, t->body.data, t->body.len, t->headers.data);
}

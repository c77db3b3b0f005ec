/*
 * transfer.h - one HTTP exchange on a libcurl easy handle: the transport
 * options, the checks that must hold before a byte is sent, the buffers the
 * callbacks fill, and the Lua values of the result.  A client (client.c)
 * owns one transfer; a batch (batch.c) owns several on a multi handle.
 */
#ifndef PIPELINE_TRANSFER_H
#define PIPELINE_TRANSFER_H

#include <signal.h>
#include <stddef.h>

#include <curl/curl.h>
#include <lua.h>

#include "text.h"

/* Per request, unless a client says otherwise. */
#define PIPELINE_DEFAULT_TIMEOUT_MS 30000L
#define PIPELINE_DEFAULT_CONNECT_TIMEOUT_MS 10000L

/* CMake defines it from the project's version. */
#ifndef PIPELINE_VERSION
#define PIPELINE_VERSION "0.0.0"
#endif

typedef struct {
  char *data;
  size_t len, cap, limit;
  int overflowed;
} pipeline_buffer;

/* A libcurl share handle (connections, TLS sessions, DNS) with a count of
 * the transfers using it, so it is freed after the last of them, whatever
 * order the garbage collector closes them in.  One Lua state uses it: no
 * locks. */
typedef struct pipeline_share pipeline_share;

/* A new share, counted once for the caller; NULL when libcurl cannot make one. */
pipeline_share *pipeline_share_new(void);
void pipeline_share_retain(pipeline_share *s);
/* Drops one count; the last frees the share handle. */
void pipeline_share_release(pipeline_share *s);

typedef struct {
  CURL *easy;            /* NULL once closed */
  pipeline_share *share; /* counted once for this transfer, or NULL */
  struct curl_slist *request_headers;
  pipeline_buffer body, headers;
  char error[CURL_ERROR_SIZE];
  int allow_http;
  int sends;                /* how many times libcurl started to send this request */
  int single_send;          /* abort a second (silent) send of this request */
  int busy;                 /* added to a multi handle and not finished */
  long timeout_ms;          /* the client's timeout for a whole request */
  lua_Integer id;           /* the batch's id of the request in progress */
  long interrupts_at_start; /* pipeline_interrupts when the request started */
  int interrupted;          /* aborted because a signal came meanwhile */
  /* "scheme://authority/" of the last URL that passed pipeline_url_refusal
   * (malloc'd, or NULL): a URL starting with it passes too, unparsed. */
  char *accepted_origin;
  size_t accepted_origin_len;
  int headers_have_body, headers_have_content; /* what request_headers was built for */
  int expect_success;  /* a good answer is {"success": true} (else any JSON) */
  int success_info;    /* a good expect_success answer gives true and its info */
  char op[32];         /* the operation's name, for the failure's message */
  int set_method;      /* METHOD_ * 2 + has_body last set on the handle, or -1 */
  long set_timeout_ms; /* the CURLOPT_TIMEOUT_MS last set, or -1 */
  char *set_url;       /* a copy of the CURLOPT_URL last set (malloc'd), or NULL */
  size_t set_url_len;
  const struct curl_slist *set_headers; /* the CURLOPT_HTTPHEADER last set */
  int set_empty_body; /* the empty body is set (for the method options set_method tells) */
} pipeline_transfer;

/* How many SIGINT/SIGTERM the command line's handler (core.catch_signals)
 * has caught.  A transfer started before the last one is aborted, and so
 * is core.sleep; with no handler installed (the library never installs one
 * for a host) it stays 0 and nothing changes. */
extern volatile sig_atomic_t pipeline_interrupts;

/* Transport options, read from a Lua table; the strings belong to it. */
typedef struct {
  long timeout_ms, connect_timeout_ms, max_response;
  int insecure, allow_http;
  const char *ca_file, *ca_path, *proxy, *user_agent;
} pipeline_transport_options;

/* One option a call takes, as LuaSocket's options.c has them: its name, and
 * the function that checks its value (at index value; the options table is
 * argument arg, for the message) and stores it into the caller's target.
 * A bad value raises through luaL_argerror, naming the option. */
typedef struct {
  const char *name;
  void (*read)(lua_State *L, int arg, int value, const char *name, void *target);
} pipeline_option;

/* The transport options (core.client's), reading into a
 * pipeline_transport_options; ended by a {NULL, NULL} entry. */
extern const pipeline_option pipeline_transport_option_list[];

/* Sets o to the defaults, then reads the options table at index arg (0 for
 * none; arg is also the argument number in messages).  Each key is looked up
 * in the transport options (read into o), then in own, the caller's own
 * options (read into own_target; NULL for none).  A key in neither raises
 * "unknown option 'x'". */
void pipeline_transport_options_read(lua_State *L, int arg, pipeline_transport_options *o,
                                     const pipeline_option *own, void *own_target);

/* Reads a string option: raises unless the value at index value is a string
 * without control characters.  The string belongs to the options table. */
const char *pipeline_string_option(lua_State *L, int arg, int value, const char *name, size_t *len);

/* Creates t's easy handle with the options, using t->share when set (one
 * count of it belongs to t, released by pipeline_transfer_close).  t must be
 * otherwise zeroed and owned by a userdata whose __gc calls
 * pipeline_transfer_close: this may raise. */
void pipeline_transfer_open(lua_State *L, pipeline_transfer *t,
                            const pipeline_transport_options *o);

enum { METHOD_GET, METHOD_POST, METHOD_PUT, METHOD_DELETE, METHOD_PATCH };
/* Their names, NULL-terminated (for luaL_checkoption). */
extern const char *const pipeline_methods[];

/* One request, as C values; the strings and the headers table (a stack
 * index, or 0) belong to the caller's Lua values. */
typedef struct {
  int method; /* METHOD_ */
  const char *url;
  int headers;
  const char *body; /* NULL for none */
  size_t body_len;
  int single_send;    /* never let libcurl send it a second time */
  long timeout_ms;    /* the whole request */
  int expect_success; /* a good answer is {"success": true}: it finishes as true */
  int success_info;   /* ... and its info (status, request_id, headers) */
  const char *op;     /* the operation's name, for messages (NULL: "request") */
} pipeline_request;

/* Why url may not be sent on t (a static string), or NULL when it may. */
const char *pipeline_transfer_url_refusal(pipeline_transfer *t, const char *url, size_t url_len);

/* Sets up t for request r (whose URL passed pipeline_transfer_url_refusal).
 * Raises on a bad header; t's header list is its own, so nothing leaks. */
void pipeline_transfer_setup(lua_State *L, pipeline_transfer *t, const pipeline_request *r);

/* Sets up t for the request given by the Lua values at first .. first+8:
 * method, url [, headers [, body [, single_send [, timeout [, expect [, op
 * [, with_info]]]]]]]: timeout in seconds shortening the client's for this
 * request (a caller's deadline); expect "success" (a good answer is
 * {"success": true}) or "json" (the default); op names the operation in
 * messages; with_info: a good "success" answer gives its info too.  Raises on
 * misuse, with nothing sent. */
void pipeline_transfer_prepare(lua_State *L, pipeline_transfer *t, int first);

/* The list of secrets of the transport userdata at index owner: set to the
 * list at index list; push pushes it (or nil) and returns its index (0 for
 * nil), for pipeline_transfer_finish. */
void pipeline_secrets_set(lua_State *L, int owner, int list);
int pipeline_secrets_push(lua_State *L, int owner);

/* Pushes the result of t's finished transfer, in the public form, and
 * returns how many values: true (expect "success") or body, info (expect
 * "json") for a good answer; nil, message, code, info for anything else
 * (answer.h).  owner: the stack index of the transport userdata whose
 * secrets the messages hide (see pipeline_secrets_set), or 0; a value may be
 * left below the results. */
int pipeline_transfer_finish(lua_State *L, pipeline_transfer *t, CURLcode rc, int owner);

/* Releases t; safe to call more than once. */
void pipeline_transfer_close(pipeline_transfer *t);

/* The header callback's work, apart so that fuzz/ can drive it: appends one
 * header line as libcurl hands it over (a status line first empties the
 * buffer: a new response begins); 0 when the buffer's limit is reached
 * (overflowed is then set) or memory ran out. */
int pipeline_header_line(pipeline_buffer *headers, const char *data, size_t n);

/* Pushes the header lines in data (NUL-terminated, or NULL for none) as a
 * table of lower-cased names; a repeated header's values are joined with
 * ", " as HTTP allows.  Lines without a colon (the status line) are skipped. */
void pipeline_push_headers(lua_State *L, const char *data);

#endif

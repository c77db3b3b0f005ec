/*
 * answer.h - what an HTTP exchange comes to, in the form every operation
 * returns: a good answer, or nil, message, code, info.  The one classifier
 * (status, the service's error code, libcurl's code), the one message
 * builder and the one redactor (answer.c), for the transport and, as
 * core.answer, core.failure and core.redact, for the Lua side.
 *
 * Every function here leaves exactly its results on the stack, and raises
 * on nothing a server sends: only a memory error raises.
 */
#ifndef PIPELINE_ANSWER_H
#define PIPELINE_ANSWER_H

#include <stddef.h>

#include <curl/curl.h>
#include <lua.h>

typedef struct {
  const char *op;     /* operation name, first word of the message, e.g. "retry" */
  int expect_success; /* a good answer is a JSON object with success == true (else any JSON is good) */
  int secrets;        /* absolute stack index of a Lua list of secret strings to hide, or 0 */
  int success_info; /* a good expect_success answer gives true and its info (for events) */
  int idempotent;   /* the request may be repeated even if it was carried out (a read):
                         its network failures and gateway errors are retryable, sent or not */
} pipeline_answer;

/* A finished HTTP exchange (status line and body complete).  header_text: the raw response
 * header lines ("Name: value\r\n"..., NUL-terminated, may be NULL); body may hold NULs.
 * Pushes and returns the count:
 *   expect_success and a good answer: true                                  -> 1
 *   otherwise a good answer: body (the string as received), info            -> 2
 *     info = {status = n, request_id = ..., headers = <table of lower-cased names>}
 *   a failure: nil, message, code, info                                      -> 4 */
int pipeline_push_answer(lua_State *L, const pipeline_answer *a, long status, const char *body,
                         size_t body_len, const char *header_text);

/* An exchange without a complete answer (libcurl failed).  code: "network", "timeout", "tls",
 * "protocol" (the transport decides it); detail: what went wrong in words (libcurl's error
 * buffer or the transport's own reason; NULL: libcurl's text for rc); rc: libcurl's result;
 * sent: whether the request had started to go out; status/header_text: what had arrived
 * (0 / NULL when nothing).
 * Pushes nil, message, code, info and returns 4. */
int pipeline_push_transport_failure(lua_State *L, const pipeline_answer *a, const char *code,
                                    const char *detail, CURLcode rc, int sent, long status,
                                    const char *header_text);

/* Pushes text with every secret of the list at stack index secrets (0: none; strings shorter
 * than 4 bytes are ignored) replaced by "***", and every SDK-HMAC-SHA256 signature value
 * (`Signature=...`) hidden. */
void pipeline_push_redacted(lua_State *L, const char *text, size_t len, int secrets);

/* libcurl's name of rc: "CURLE_OPERATION_TIMEDOUT"; "CURLE_<number>" for one it does not know
 * (0 to 259; "CURLE_UNKNOWN" beyond, where libcurl's numbers do not reach). */
/* Pushes nil, message, code, info for a failure found before anything was
 * sent or outside an answer (a configuration problem): core.failure's rule.
 * detail: what went wrong in words, or NULL for what code means. */
int pipeline_push_failure(lua_State *L, const char *op, const char *code, const char *detail);

const char *pipeline_curl_code_name(CURLcode rc);

/* The module's functions of this file (core.c registers them): core.answer, core.failure,
 * core.redact, core.transport_failure. */
int pipeline_lua_answer(lua_State *L);
int pipeline_lua_failure(lua_State *L);
int pipeline_lua_redact(lua_State *L);
int pipeline_lua_transport_failure(lua_State *L);

#endif

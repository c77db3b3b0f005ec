/*
 * text.h - character classes and the checks of ids, headers, tokens and URLs
 * (text.c).
 */
#ifndef PIPELINE_TEXT_H
#define PIPELINE_TEXT_H

#include <stddef.h>

#include <lua.h>

/* Exactly 32 ASCII letters or digits: a project, pipeline or run id. */
int pipeline_is_id(const char *s, size_t len);
/* No control character but tab: nothing that could split a request. */
int pipeline_is_header_value(const char *s, size_t len);
/* Why s may not be sent as a token (a static string: "must not be empty",
 * "holds a control character"), or NULL when it may. */
const char *pipeline_token_problem(const char *s, size_t len);
/* A non-empty RFC 9110 token. */
int pipeline_is_header_name(const char *s, size_t len);
int pipeline_is_tchar(unsigned char c);
int pipeline_is_unreserved(unsigned char c);
/* strncasecmp for ASCII, which C99 lacks. */
int pipeline_strncasecmp_ascii(const char *a, const char *b, size_t n);

/* Why url may not be used (a static string), or NULL when it may: an
 * absolute http(s) URL without user or password, plain http only to a
 * loopback host unless allow_http; with base (an endpoint, to which paths are
 * appended) no query or fragment either. */
const char *pipeline_url_refusal(const char *url, int allow_http, int base);

/* Raise luaL_argerror unless argument arg is an id (named name in the
 * message) or a usable token. */
void pipeline_check_id_arg(lua_State *L, int arg, const char *name);
void pipeline_check_token_arg(lua_State *L, int arg);

/* The module's functions of this file (core.c registers them): core.is_id, core.is_header_value,
 * core.token_problem, core.check_url. */
int pipeline_lua_is_id(lua_State *L);
int pipeline_lua_is_header_value(lua_State *L);
int pipeline_lua_token_problem(lua_State *L);
int pipeline_lua_check_url(lua_State *L);

#endif

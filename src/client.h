/*
 * client.h - the transport: a client handle that owns one libcurl easy
 * handle (and so its kept-alive connection), and the checks that must hold
 * before a byte is sent.
 */
#ifndef PIPELINE_CLIENT_H
#define PIPELINE_CLIENT_H

#include <stddef.h>
#include <lua.h>

#define PIPELINE_CLIENT_TYPE "pipeline.client"

/* Registers the client metatable; leaves nothing on the stack. */
void pipeline_client_register(lua_State *L);

/* core.client([options]) -> client */
int pipeline_client_new(lua_State *L);

/* Creates a client from the transport option table at index opts (or none
 * when opts is 0), pushes it, and returns it.  ignore names one extra key
 * the table may hold that is the caller's own (or NULL). */
void pipeline_client_push(lua_State *L, int opts, const char *ignore);

/* client:request(...) with the client at index 1. */
int pipeline_client_request(lua_State *L);

/* client:close(): idempotent. */
int pipeline_client_close(lua_State *L);

/* Input checks shared by every entry point. */
int pipeline_is_id(const char *s, size_t len);
int pipeline_is_header_value(const char *s, size_t len);

/* NULL when url is an absolute http(s) URL a client may use (plain http only
 * to a loopback host unless allow_http), else the reason it may not. */
const char *pipeline_url_refusal(const char *url, int allow_http);

#endif

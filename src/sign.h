/*
 * sign.h - Huawei Cloud "SDK-HMAC-SHA256" AK/SK request signing.
 *
 * A pure function of its arguments: no global state, no I/O, no allocation
 * outside the Lua state (a Lua error raised mid-way leaks nothing).
 */
#ifndef PIPELINE_SIGN_H
#define PIPELINE_SIGN_H

#include <lua.h>

/*
 * core.sign(method, url, headers, body, ak, sk [, date]) -> table
 *
 *   method   string, e.g. "PUT" (upper-cased for signing)
 *   url      string, "http[s]://host[:port]/path[?query]" exactly as it will
 *            be sent (percent-encoded where needed)
 *   headers  table name -> string, or nil: the headers that will be sent and
 *            are all signed (names case-insensitive; must not include
 *            X-Sdk-Date or Authorization)
 *   body     string or nil (nil = empty body)
 *   ak, sk   non-empty strings
 *   date     optional "YYYYMMDDTHHMMSSZ" (UTC); nil = now
 *
 * Returns the headers to add to the request:
 *   { ["X-Sdk-Date"] = date,
 *     ["Authorization"] = "SDK-HMAC-SHA256 Access=<ak>, SignedHeaders=<list>,"
 *                         " Signature=<hex>" }
 * Bad arguments raise a Lua error naming the argument; no error message ever
 * contains the SK or a header value.
 */
int pipeline_sign(lua_State *L);

/*
 * core.sign_canonical(method, url, headers, body, ak, sk [, date])
 *   -> canonical_request, string_to_sign, signed_headers
 *
 * Same arguments and checks as core.sign; a debugging and testing aid.
 */
int pipeline_sign_canonical(lua_State *L);

#endif

/*
 * text.c - the character classes and checks every request must pass before a
 * byte is sent: ids, header names and values, tokens, and endpoint URLs.  One
 * home for them, used by the transport (transfer.c), the signer (sign.c) and
 * the retry (retry.c), and given to Lua as core.is_id, core.is_header_value,
 * core.token_problem and core.check_url.
 */
#include "text.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include <curl/curl.h>
#include <lauxlib.h>

#include "compat.h"

/* Each byte's classes, looked up once per byte: every request's URL, ids
 * and headers pass through these checks. */
enum { ID_CHAR = 1, VALUE_CHAR = 2, TOKEN_CHAR = 4, UNRESERVED_CHAR = 8 };
static const unsigned char classes[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    0,  0,  0,  0,  0,  0,  0,  0,  2,  6,  2,  6,  6,  6,  6,  6,  2,  2,  6,  6,  2,  14, 14, 2,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 2,  2,  2,  2,  2,  2,  2,  15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 2,  2,  2,  6,  14,
    6,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 2,  6,  2,  14, 0,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
};

int pipeline_is_id(const char *s, size_t len) {
  size_t i;
  if (len != 32) return 0;
  for (i = 0; i < len; i++)
    if (!(classes[(unsigned char)s[i]] & ID_CHAR)) return 0;
  return 1;
}

/* A header value may hold visible ASCII, spaces, tabs and UTF-8 bytes; any
 * other control character (CR, LF, NUL, DEL...) could split the request. */
int pipeline_is_header_value(const char *s, size_t len) {
  const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
  size_t i = 0;
  /* Eight bytes at a time: a word with no byte below 0x20 and no 0x7f (the
   * usual case: a URL, a token) passes whole; any other is looked at byte
   * by byte, where a tab is allowed. */
  for (; i + 8 <= len; i += 8) {
    uint64_t w, del;
    memcpy(&w, s + i, 8);
    del = w ^ (0x7f * ones);
    if ((((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & highs) {
      size_t j;
      for (j = i; j < i + 8; j++)
        if (!(classes[(unsigned char)s[j]] & VALUE_CHAR)) return 0;
    }
  }
  for (; i < len; i++)
    if (!(classes[(unsigned char)s[i]] & VALUE_CHAR)) return 0;
  return 1;
}

/* The one rule for a token (X-Auth-Token) or security token: a non-empty
 * string without control characters, tab included (a header value may hold a
 * tab, a credential never does). */
const char *pipeline_token_problem(const char *s, size_t len) {
  size_t i;
  if (len == 0) return "must not be empty";
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) return "holds a control character";
  }
  return NULL;
}

/* RFC 9110 token character (header names, methods). */
int pipeline_is_tchar(unsigned char c) { return (classes[c] & TOKEN_CHAR) != 0; }

/* RFC 3986 unreserved character: sent as it is in a signed path or query. */
int pipeline_is_unreserved(unsigned char c) { return (classes[c] & UNRESERVED_CHAR) != 0; }

int pipeline_is_header_name(const char *s, size_t len) {
  size_t i;
  if (len == 0) return 0;
  for (i = 0; i < len; i++)
    if (!pipeline_is_tchar((unsigned char)s[i])) return 0;
  return 1;
}

/* strncasecmp for ASCII, which C99 lacks. */
int pipeline_strncasecmp_ascii(const char *a, const char *b, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    int ca = tolower((unsigned char)a[i]), cb = tolower((unsigned char)b[i]);
    if (ca != cb) return ca - cb;
    if (ca == 0) return 0;
  }
  return 0;
}

static int is_loopback(const char *host) {
  if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0)
    return 1;
  /* 127.0.0.0/8 as a dotted quad: four decimal numbers up to 255 without
   * leading zeros (libcurl writes any other form of an address so).
   * Anything else, like "127.0.0.1.", "127..1" or "127.0.01.080" (no valid
   * octal), is a name: the resolver, not the loopback interface, would say
   * where it goes. */
  if (strncmp(host, "127.", 4) == 0) {
    const char *p = host + 4;
    int part;
    for (part = 0; part < 3; part++) {
      int digits = 0, value = 0;
      while (isdigit((unsigned char)*p) && digits <= 3) {
        value = value * 10 + (*p++ - '0');
        digits++;
      }
      if (digits == 0 || digits > 3 || value > 255 || (digits > 1 && p[-digits] == '0')) return 0;
      if (part < 2 && *p++ != '.') return 0;
    }
    return *p == '\0';
  }
  return 0;
}

const char *pipeline_url_refusal(const char *url, int allow_http, int base) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *user = NULL;
  const char *refusal = NULL;
  if (u == NULL) return "out of memory";
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
    refusal = "is not an absolute http(s) URL";
  } else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
    /* libcurl would send it as Basic auth, and every trace would show it */
    refusal = "must not hold a user name or password";
  } else if (strcmp(scheme, "https") == 0) {
    refusal = NULL;
  } else if (strcmp(scheme, "http") != 0) {
    refusal = "must use https (or http to a loopback host)";
  } else if (!allow_http && !is_loopback(host)) {
    refusal = "uses plain http to a host that is not loopback "
              "(set allow_http to permit it)";
  }
  if (refusal == NULL && base && strpbrk(url, "?#") != NULL)
    refusal = "must not hold a query or fragment";
  curl_free(scheme);
  curl_free(host);
  curl_free(user);
  curl_url_cleanup(u);
  return refusal;
}

/* ------------------------------------------------------------ for Lua */

void pipeline_check_id_arg(lua_State *L, int arg, const char *name) {
  size_t len;
  const char *s = luaL_checklstring(L, arg, &len);
  if (!pipeline_is_id(s, len))
    luaL_argerror(L, arg, lua_pushfstring(L, "%s must be 32 ASCII letters or digits", name));
}

void pipeline_check_token_arg(lua_State *L, int arg) {
  size_t len;
  const char *s = luaL_checklstring(L, arg, &len);
  const char *problem = pipeline_token_problem(s, len);
  if (problem != NULL) luaL_argerror(L, arg, lua_pushfstring(L, "token %s", problem));
}

/* core.is_id(s) -> boolean: exactly 32 ASCII letters or digits. */
int pipeline_lua_is_id(lua_State *L) {
  size_t len = 0;
  /* the type first: lua_tolstring would turn a number into a string */
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  lua_pushboolean(L, s != NULL && pipeline_is_id(s, len));
  return 1;
}

/* core.is_header_value(s) -> boolean: no control characters. */
int pipeline_lua_is_header_value(lua_State *L) {
  size_t len = 0;
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  lua_pushboolean(L, s != NULL && pipeline_is_header_value(s, len));
  return 1;
}

/* core.token_problem(value) -> nil | reason: nil when value may be sent as a
 * token, else why not ("must be a string", "must not be empty", "holds a
 * control character"); the reason never shows the value. */
int pipeline_lua_token_problem(lua_State *L) {
  size_t len = 0;
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  const char *problem = s == NULL ? "must be a string" : pipeline_token_problem(s, len);
  if (problem == NULL)
    lua_pushnil(L);
  else
    lua_pushstring(L, problem);
  return 1;
}

/* core.check_url(url [, allow_http [, base]]) -> true | nil, reason
 * base: url is an endpoint, to which paths are appended */
int pipeline_lua_check_url(lua_State *L) {
  size_t len;
  const char *url = luaL_checklstring(L, 1, &len);
  const char *refusal = pipeline_url_refusal(url, lua_toboolean(L, 2), lua_toboolean(L, 3));
  if (refusal == NULL && (strlen(url) != len || !pipeline_is_header_value(url, len)))
    refusal = "holds a control character";
  if (refusal == NULL) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, refusal);
  return 2;
}

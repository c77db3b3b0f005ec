/*
 * text.c - the character classes and checks every request must pass before a
 * byte is sent: ids, header names and values, tokens, and endpoint URLs.  One
 * home for them, used by the transport (transfer.c), the signer (sign.c) and
 * the retry (retry.c), and given to Lua as core.is_id, core.is_header_value,
 * core.token_problem and core.check_url.
 */
#include "text.h"

#include <ctype.h>
#include <string.h>

#include <curl/curl.h>
#include <lauxlib.h>

#include "compat.h"

int pipeline_is_id(const char *s, size_t len) {
  size_t i;
  if (len != 32) return 0;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return 0;
  }
  return 1;
}

/* A header value may hold visible ASCII, spaces, tabs and UTF-8 bytes; any
 * other control character (CR, LF, NUL, DEL...) could split the request. */
int pipeline_is_header_value(const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
  }
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
int pipeline_is_tchar(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 3986 unreserved character: sent as it is in a signed path or query. */
int pipeline_is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

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
static int core_is_id(lua_State *L) {
  size_t len = 0;
  /* the type first: lua_tolstring would turn a number into a string */
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  lua_pushboolean(L, s != NULL && pipeline_is_id(s, len));
  return 1;
}

/* core.is_header_value(s) -> boolean: no control characters. */
static int core_is_header_value(lua_State *L) {
  size_t len = 0;
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  lua_pushboolean(L, s != NULL && pipeline_is_header_value(s, len));
  return 1;
}

/* core.token_problem(value) -> nil | reason: nil when value may be sent as a
 * token, else why not ("must be a string", "must not be empty", "holds a
 * control character"); the reason never shows the value. */
static int core_token_problem(lua_State *L) {
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
static int core_check_url(lua_State *L) {
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

void pipeline_text_register(lua_State *L) {
  static const luaL_Reg functions[] = {{"is_id", core_is_id},
                                       {"is_header_value", core_is_header_value},
                                       {"token_problem", core_token_problem},
                                       {"check_url", core_check_url},
                                       {NULL, NULL}};
  luaL_setfuncs(L, functions, 0);
}

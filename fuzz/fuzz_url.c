/*
 * fuzz_url.c - the URL checks (core.check_url over pipeline_url_refusal in
 * src/transfer.c): every endpoint and request URL passes them before a byte
 * is sent.  The first input byte holds the flags (bit 0: allow_http, bit 1:
 * base), the rest is the URL.  Nothing may crash or raise; a URL accepted
 * must be http(s), free of control characters and user information, and plain
 * http only to a loopback address unless allowed, as libcurl itself parses it.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include <curl/curl.h>

#include "fuzz_common.h"

/* A loopback host as libcurl gives it: localhost, [::1] or 127.0.0.0/8. */
static int loopback_host(const char *host) {
  struct in_addr a;
  if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0) return 1;
  return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

static void check_accepted(const char *url, size_t len, int allow_http, int base) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
  size_t i;
  FUZZ_CHECK(u != NULL, "curl_url");
  FUZZ_CHECK(strlen(url) == len, "an accepted URL holds no NUL");
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)url[i];
    FUZZ_CHECK((c >= 0x20 || c == '\t') && c != 0x7f, "an accepted URL holds no control character");
  }
  FUZZ_CHECK(curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK, "libcurl parses an accepted URL");
  FUZZ_CHECK(curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK,
             "an accepted URL has a scheme");
  FUZZ_CHECK(strcmp(scheme, "https") == 0 || strcmp(scheme, "http") == 0,
             "an accepted URL is http(s)");
  FUZZ_CHECK(curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK, "an accepted URL has a host");
  FUZZ_CHECK(curl_url_get(u, CURLUPART_USER, &user, 0) != CURLUE_OK, "an accepted URL has no user");
  FUZZ_CHECK(curl_url_get(u, CURLUPART_PASSWORD, &password, 0) != CURLUE_OK,
             "an accepted URL has no password");
  if (strcmp(scheme, "http") == 0 && !allow_http)
    FUZZ_CHECK(loopback_host(host), "plain http only to loopback");
  if (base) FUZZ_CHECK(strpbrk(url, "?#") == NULL, "a base URL has no query or fragment");
  curl_free(scheme);
  curl_free(host);
  curl_free(user);
  curl_free(password);
  curl_url_cleanup(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_lua();
  int allow_http, base, status;
  const char *url;
  if (size < 1) return 0;
  allow_http = data[0] & 1;
  base = (data[0] >> 1) & 1;

  url = lua_pushlstring(L, (const char *)data + 1, size - 1); /* index 2, NUL-terminated */
  lua_getfield(L, 1, "check_url");
  lua_pushvalue(L, 2);
  lua_pushboolean(L, allow_http);
  lua_pushboolean(L, base);
  status = lua_pcall(L, 3, 2, 0);
  FUZZ_CHECK(status == LUA_OK, "check_url never raises for a string");
  if (lua_toboolean(L, -2))
    check_accepted(url, size - 1, allow_http, base);
  else
    FUZZ_CHECK(lua_isnil(L, -2) && lua_type(L, -1) == LUA_TSTRING, "a refusal is nil and a reason");
  lua_settop(L, 1);
  return 0;
}

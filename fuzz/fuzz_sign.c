/*
 * fuzz_sign.c - the AK/SK signer's canonical request (src/sign.c through
 * core.sign_canonical and core.sign).  The input is lines: method, URL, date
 * (empty: a fixed one), body, then headers as "name:value".  A secret
 * security token header is always added.  Misuse may raise, but no message
 * may hold the SK or the token; a signature must be made of a canonical
 * request of the documented shape, and be the HMAC of its string to sign.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz_common.h"
#include "text.h"

#define AK "FUZZACCESSKEY"
#define SK "fuzz-canary-secret-key-3b8e1f"
#define SECURITY_TOKEN "fuzz-canary-security-token-9d2c47"
#define DEFAULT_DATE "20261201T101010Z"

/* Lower-case hex of in[0..n), written by the C library (not the signer's
 * own code: this is the oracle). */
static void hex(const unsigned char *in, size_t n, char *out) {
  size_t i;
  for (i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* s[0..n) holds only unreserved bytes, %XX (upper-case hex) and extra. */
static int canonically_encoded(const char *s, size_t n, const char *extra) {
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%') {
      if (n - i < 3 || !strchr("0123456789ABCDEF", s[i + 1]) ||
          !strchr("0123456789ABCDEF", s[i + 2]) || s[i + 1] == '\0' || s[i + 2] == '\0')
        return 0;
      i += 2;
    } else if (!pipeline_is_unreserved(c) && (c == '\0' || !strchr(extra, c))) {
      return 0;
    }
  }
  return 1;
}

/* The next line of [*p, end): sets *line and *len, moves *p past its LF. */
static int next_line(const char **p, const char *end, const char **line, size_t *len) {
  const char *lf;
  if (*p >= end) return 0;
  lf = memchr(*p, '\n', (size_t)(end - *p));
  *line = *p;
  *len = lf ? (size_t)(lf - *p) : (size_t)(end - *p);
  *p = lf ? lf + 1 : end;
  return 1;
}

/* Checks the canonical request (index c), string to sign (c + 1) and signed
 * headers (c + 2) for the method and date given. */
static void check_canonical(lua_State *L, int c, const char *method, size_t method_len,
                            const char *date) {
  size_t clen, tlen, slen, len, i, nsigned = 1;
  const char *canonical = lua_tolstring(L, c, &clen);
  const char *to_sign = lua_tolstring(L, c + 1, &tlen);
  const char *signed_headers = lua_tolstring(L, c + 2, &slen);
  const char *p = canonical, *end = canonical + clen, *line, *name;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  char md_hex[2 * EVP_MAX_MD_SIZE + 1], expected[128];

  FUZZ_CHECK(canonical && to_sign && signed_headers, "three strings");
  FUZZ_CHECK(next_line(&p, end, &line, &len) && len == method_len, "line 1 is the method");
  for (i = 0; i < len; i++) {
    unsigned char m = (unsigned char)method[i];
    FUZZ_CHECK((unsigned char)line[i] == ((m >= 'a' && m <= 'z') ? m - 'a' + 'A' : m),
               "the method upper-cased");
  }
  FUZZ_CHECK(next_line(&p, end, &line, &len) && len >= 1 && line[0] == '/' && line[len - 1] == '/',
             "line 2 is a path from / to /");
  FUZZ_CHECK(canonically_encoded(line, len, "/"), "the path is canonically encoded");
  FUZZ_CHECK(next_line(&p, end, &line, &len), "line 3 is the query");
  FUZZ_CHECK(canonically_encoded(line, len, "=&"), "the query is canonically encoded");

  /* the signed header names: sorted, distinct, lower-case, with host,
   * x-sdk-date and the security token among them */
  for (i = 0; i < slen; i++) {
    FUZZ_CHECK(!(signed_headers[i] >= 'A' && signed_headers[i] <= 'Z'),
               "signed names are lower-case");
    if (signed_headers[i] == ';') nsigned++;
  }
  lua_pushfstring(L, ";%s;", signed_headers);
  FUZZ_CHECK(strstr(lua_tostring(L, -1), ";host;") && strstr(lua_tostring(L, -1), ";x-sdk-date;") &&
                 strstr(lua_tostring(L, -1), ";x-security-token;"),
             "host, x-sdk-date and x-security-token are signed");
  lua_pop(L, 1);

  /* then one "name:value" line per signed name, in the same order */
  name = signed_headers;
  for (i = 0; i < nsigned; i++) {
    const char *semi = memchr(name, ';', slen - (size_t)(name - signed_headers));
    size_t nlen = semi ? (size_t)(semi - name) : slen - (size_t)(name - signed_headers);
    FUZZ_CHECK(nlen > 0, "a signed name is not empty");
    if (i > 0) {
      /* strictly after the previous name */
      const char *prev = name - 1;
      while (prev > signed_headers && prev[-1] != ';') prev--;
      size_t plen = (size_t)(name - 1 - prev);
      int order = memcmp(prev, name, plen < nlen ? plen : nlen);
      FUZZ_CHECK(order < 0 || (order == 0 && plen < nlen), "signed names are sorted and distinct");
    }
    FUZZ_CHECK(next_line(&p, end, &line, &len) && len > nlen && memcmp(line, name, nlen) == 0 &&
                   line[nlen] == ':',
               "a header line per signed name");
    name += nlen + 1;
  }
  FUZZ_CHECK(next_line(&p, end, &line, &len) && len == 0, "an empty line after the headers");
  FUZZ_CHECK(next_line(&p, end, &line, &len) && len == slen &&
                 memcmp(line, signed_headers, slen) == 0,
             "then the signed names");
  FUZZ_CHECK(next_line(&p, end, &line, &len) && len > 0 && p == end, "then the payload hash, last");

  FUZZ_CHECK(EVP_Digest(canonical, clen, md, &md_len, EVP_sha256(), NULL) && md_len == 32,
             "sha256");
  hex(md, md_len, md_hex);
  snprintf(expected, sizeof expected, "SDK-HMAC-SHA256\n%s\n%s", date, md_hex);
  FUZZ_CHECK(tlen == strlen(expected) && memcmp(to_sign, expected, tlen) == 0,
             "the string to sign hashes the canonical request");
}

static void check_authorization(lua_State *L, int t, const char *to_sign, size_t tlen,
                                const char *signed_headers) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  char mac_hex[2 * EVP_MAX_MD_SIZE + 1];
  FUZZ_CHECK(HMAC(EVP_sha256(), SK, (int)strlen(SK), (const unsigned char *)to_sign, tlen, mac,
                  &mac_len) &&
                 mac_len == 32,
             "hmac");
  hex(mac, mac_len, mac_hex);
  lua_getfield(L, t, "Authorization");
  lua_pushfstring(L, "SDK-HMAC-SHA256 Access=" AK ", SignedHeaders=%s, Signature=%s",
                  signed_headers, mac_hex);
  FUZZ_CHECK(lua_rawequal(L, -1, -2), "Authorization is the HMAC of the string to sign");
  lua_pop(L, 2);
}

static void check_message(lua_State *L, const uint8_t *data, size_t size) {
  const char *message = lua_tostring(L, -1);
  FUZZ_CHECK(message != NULL, "an error is a message");
  /* no message may show the SK, nor the token (a header value), unless the
   * input itself spelt them somewhere else (in a header name, say) */
  if (memmem(data, size, SK, strlen(SK)) == NULL)
    FUZZ_CHECK(strstr(message, SK) == NULL, "no message holds the SK");
  if (memmem(data, size, SECURITY_TOKEN, strlen(SECURITY_TOKEN)) == NULL)
    FUZZ_CHECK(strstr(message, SECURITY_TOKEN) == NULL, "no message holds a header value");
}

/* Calls core[fname] with the arguments at 2 .. 8; returns lua_pcall's status,
 * its nresults results (or the message) on the stack. */
static int call(lua_State *L, const char *fname, int nresults) {
  int i;
  lua_getfield(L, 1, fname);
  for (i = 2; i <= 8; i++) lua_pushvalue(L, i);
  return lua_pcall(L, 7, nresults, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_lua();
  const char *p = (const char *)data, *end = p + size, *line, *method, *date;
  size_t len, method_len;
  int results;

  /* the arguments, at 2 .. 8: method, URL, headers, body, AK, SK, date */
  if (!next_line(&p, end, &line, &len)) return 0;
  method = lua_pushlstring(L, line, len);
  method_len = len;
  if (!next_line(&p, end, &line, &len)) return 0;
  lua_pushlstring(L, line, len);
  lua_newtable(L);
  lua_pushliteral(L, SECURITY_TOKEN);
  lua_setfield(L, -2, "X-Security-Token");
  lua_pushnil(L);
  lua_pushliteral(L, AK);
  lua_pushliteral(L, SK);
  if (next_line(&p, end, &line, &len) && len > 0) {
    date = lua_pushlstring(L, line, len);
  } else {
    lua_pushliteral(L, DEFAULT_DATE);
    date = DEFAULT_DATE;
  }
  if (next_line(&p, end, &line, &len)) {
    lua_pushlstring(L, line, len);
    lua_replace(L, 5);
  }
  while (next_line(&p, end, &line, &len)) {
    const char *colon = memchr(line, ':', len);
    size_t nlen = colon ? (size_t)(colon - line) : len;
    lua_pushlstring(L, line, nlen);
    lua_pushlstring(L, colon ? colon + 1 : "", colon ? len - nlen - 1 : 0);
    lua_settable(L, 4);
  }

  if (call(L, "sign_canonical", 3) != LUA_OK) {
    check_message(L, data, size);
    lua_settop(L, 1);
    return 0;
  }
  results = lua_gettop(L) - 2; /* canonical request, string to sign, signed headers */
  check_canonical(L, results, method, method_len, date);
  FUZZ_CHECK(call(L, "sign", 1) == LUA_OK, "sign accepts what sign_canonical accepts");
  {
    size_t tlen;
    const char *to_sign = lua_tolstring(L, results + 1, &tlen);
    check_authorization(L, lua_gettop(L), to_sign, tlen, lua_tostring(L, results + 2));
  }
  lua_settop(L, 1);
  return 0;
}

/*
 * sign.c - Huawei Cloud "SDK-HMAC-SHA256" AK/SK request signing.
 *
 * Signs a request the way the official SDKs do (Python huaweicloudsdkcore
 * signer.py and the API Gateway signer it derives from, Go core/auth/signer,
 * Node @huaweicloud/huaweicloud-sdk-core auth/AKSKSigner.js):
 *
 *   CanonicalRequest = METHOD \n CanonicalURI \n CanonicalQuery \n
 *                      CanonicalHeaders \n SignedHeaders \n hex(sha256(body))
 *   StringToSign     = "SDK-HMAC-SHA256" \n X-Sdk-Date \n hex(sha256(CR))
 *   Signature        = hex(HMAC-SHA256(SK, StringToSign))
 *
 * The URL is taken as it will be sent: path and query are percent-decoded and
 * re-encoded canonically (unreserved A-Z a-z 0-9 - _ . ~ kept, every other
 * byte %XX upper-case).  The path is decoded as a whole before it is split, so
 * an encoded "%2F" counts as a separator, as in the Python signers.
 *
 * Memory: everything lives in the Lua state (luaL_Buffer, userdata scratch
 * areas), so a Lua error raised anywhere frees everything; nothing is
 * malloc'd.  No error message contains the SK or a header value.
 */
#define _POSIX_C_SOURCE 200809L

#include "sign.h"
#include "text.h"

#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

#include "compat.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SIGN_ALGORITHM "SDK-HMAC-SHA256"
#define DATE_LEN 16 /* YYYYMMDDTHHMMSSZ */
#define SHA256_LEN 32
#define SHA256_HEX_LEN 64
#define PORT_TEXT_MAX 7 /* ":65535" and a NUL */

enum {
  ARG_METHOD = 1,
  ARG_URL,
  ARG_HEADERS,
  ARG_BODY,
  ARG_AK,
  ARG_SK,
  ARG_DATE,
  ARG_COUNT = ARG_DATE
};

/* where build_canonical leaves its results */
enum { RESULT_CANONICAL = ARG_COUNT + 1, RESULT_SIGNED, RESULT_TO_SIGN };

typedef struct {
  const char *p;
  size_t n;
} span;

/* A signed header: name lower-cased (NUL-terminated), value trimmed. */
typedef struct {
  span name;
  span value;
} sign_header;

/* A query parameter, percent-decoded. */
typedef struct {
  span key;
  span value;
} sign_param;

typedef struct {
  const char *method;
  size_t method_len;
  span host;  /* host part of the URL authority, as written */
  int port;   /* explicit port that is not the scheme's default, or 0 */
  span path;  /* as sent, up to '?' or '#'; may be empty */
  span query; /* as sent, after '?' and up to '#'; may be empty */
  const char *body;
  size_t body_len;
  const char *ak;
  const char *sk;
  size_t sk_len;
  char date[DATE_LEN + 1];
} sign_request;

/* ---------------------------------------------------------------- bytes */

static unsigned char ascii_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static unsigned char ascii_upper(unsigned char c) {
  return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 'a' + 'A') : c;
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static int span_ieq(const char *p, size_t n, const char *lit) {
  size_t i;
  if (strlen(lit) != n) return 0;
  for (i = 0; i < n; i++)
    if (ascii_lower((unsigned char)p[i]) != (unsigned char)lit[i]) return 0;
  return 1;
}

static int span_cmp(const span *a, const span *b) {
  size_t n = a->n < b->n ? a->n : b->n;
  int c = n ? memcmp(a->p, b->p, n) : 0;
  if (c != 0) return c;
  return (a->n > b->n) - (a->n < b->n);
}

/*
 * Percent-decode at *i in s[0..n): returns the byte and advances *i.  A '%'
 * not followed by two hex digits stands for itself (Python's unquote).
 */
static unsigned char decode_at(const char *s, size_t n, size_t *i) {
  unsigned char c = (unsigned char)s[*i];
  if (c == '%' && n - *i >= 3) {
    int hi = hex_value((unsigned char)s[*i + 1]);
    int lo = hex_value((unsigned char)s[*i + 2]);
    if (hi >= 0 && lo >= 0) {
      *i += 3;
      return (unsigned char)(hi * 16 + lo);
    }
  }
  *i += 1;
  return c;
}

static size_t decode_into(const char *s, size_t n, char *out) {
  size_t i = 0, o = 0;
  while (i < n) out[o++] = (char)decode_at(s, n, &i);
  return o;
}

static void add_encoded_byte(luaL_Buffer *b, unsigned char c) {
  static const char hex[] = "0123456789ABCDEF";
  if (pipeline_is_unreserved(c)) {
    luaL_addchar(b, (char)c);
  } else {
    luaL_addchar(b, '%');
    luaL_addchar(b, hex[c >> 4]);
    luaL_addchar(b, hex[c & 15]);
  }
}

static void add_encoded(luaL_Buffer *b, span s) {
  size_t i;
  for (i = 0; i < s.n; i++) add_encoded_byte(b, (unsigned char)s.p[i]);
}

static void to_hex(const unsigned char *in, size_t n, char *out) {
  static const char hex[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < n; i++) {
    out[2 * i] = hex[in[i] >> 4];
    out[2 * i + 1] = hex[in[i] & 15];
  }
  out[2 * n] = '\0';
}

static void sha256_hex(lua_State *L, const char *data, size_t n, char out[SHA256_HEX_LEN + 1]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (!EVP_Digest(data, n, md, &md_len, EVP_sha256(), NULL) || md_len != SHA256_LEN)
    luaL_error(L, "sign: SHA-256 failed");
  to_hex(md, SHA256_LEN, out);
}

/* ------------------------------------------------------------ arguments */

static const char *check_str(lua_State *L, int arg, size_t *len) {
  if (lua_type(L, arg) != LUA_TSTRING)
    luaL_argerror(L, arg, lua_pushfstring(L, "string expected, got %s", luaL_typename(L, arg)));
  return lua_tolstring(L, arg, len);
}

static void check_method(lua_State *L, sign_request *r) {
  size_t i;
  r->method = check_str(L, ARG_METHOD, &r->method_len);
  luaL_argcheck(L, r->method_len > 0 && r->method_len <= 32, ARG_METHOD, "invalid HTTP method");
  for (i = 0; i < r->method_len; i++)
    luaL_argcheck(L, pipeline_is_tchar((unsigned char)r->method[i]), ARG_METHOD,
                  "invalid HTTP method");
}

/* Splits "scheme://authority/path?query#fragment". */
static void parse_url(lua_State *L, sign_request *r) {
  size_t len, i, start, end, host_end;
  const char *u = check_str(L, ARG_URL, &len);
  const char *sep;
  const char *auth;
  size_t auth_len;
  int default_port = 0;
  long port = 0;

  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)u[i];
    if (c <= 0x20 || c == 0x7f)
      luaL_argerror(L, ARG_URL, "URL contains a space or a control character");
  }
  sep = strstr(u, "://"); /* no NUL inside: checked above */
  if (sep == NULL) luaL_argerror(L, ARG_URL, "URL must start with http:// or https://");
  if (span_ieq(u, (size_t)(sep - u), "https"))
    default_port = 443;
  else if (span_ieq(u, (size_t)(sep - u), "http"))
    default_port = 80;
  else
    luaL_argerror(L, ARG_URL, "URL scheme must be http or https");

  start = (size_t)(sep - u) + 3;
  for (end = start; end < len && u[end] != '/' && u[end] != '?' && u[end] != '#'; end++)
    ;
  auth = u + start;
  auth_len = end - start;
  if (auth_len == 0) luaL_argerror(L, ARG_URL, "URL has no host");
  if (memchr(auth, '@', auth_len) != NULL)
    luaL_argerror(L, ARG_URL, "URL must not contain user information");

  /* host, then an optional ":port" */
  if (auth[0] == '[') {
    const char *close = memchr(auth, ']', auth_len);
    if (close == NULL) luaL_argerror(L, ARG_URL, "URL has an unterminated IPv6 address");
    host_end = (size_t)(close - auth) + 1;
  } else {
    host_end = auth_len;
    for (i = auth_len; i > 0; i--) {
      if (auth[i - 1] == ':') {
        host_end = i - 1;
        break;
      }
    }
  }
  if (host_end == 0 || (host_end == 2 && auth[0] == '['))
    luaL_argerror(L, ARG_URL, "URL has no host");
  if (host_end < auth_len) {
    size_t digits = auth_len - host_end - 1;
    if (auth[host_end] != ':' || digits > 5) luaL_argerror(L, ARG_URL, "URL has an invalid port");
    for (i = host_end + 1; i < auth_len; i++) {
      if (!isdigit((unsigned char)auth[i])) luaL_argerror(L, ARG_URL, "URL has an invalid port");
      port = port * 10 + (auth[i] - '0');
    }
    /* "host:" (empty port) means the default port, as in RFC 3986 */
    if (digits > 0 && (port < 1 || port > 65535))
      luaL_argerror(L, ARG_URL, "URL has an invalid port");
  }
  r->host.p = auth;
  r->host.n = host_end;
  /* curl sends "Host: host" without the port when it is the default one */
  r->port = (port != 0 && port != default_port) ? (int)port : 0;

  start = end;
  while (end < len && u[end] != '?' && u[end] != '#') end++;
  r->path.p = u + start;
  r->path.n = end - start;
  r->query.p = u + end;
  r->query.n = 0;
  if (end < len && u[end] == '?') {
    start = end + 1;
    for (end = start; end < len && u[end] != '#'; end++)
      ;
    r->query.p = u + start;
    r->query.n = end - start;
  }
}

static int days_in_month(int year, int month) {
  static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) return 29;
  return days[month - 1];
}

static int digits_value(const char *s, int n) {
  int v = 0, i;
  for (i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
  return v;
}

static int valid_date(const char *s, size_t n) {
  static const char pattern[] = "ddddddddTddddddZ";
  int year, month, day;
  size_t i;
  if (n != DATE_LEN) return 0;
  for (i = 0; i < DATE_LEN; i++) {
    if (pattern[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pattern[i]) return 0;
  }
  year = digits_value(s, 4);
  month = digits_value(s + 4, 2);
  day = digits_value(s + 6, 2);
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return 0;
  return digits_value(s + 9, 2) < 24 && digits_value(s + 11, 2) < 60 &&
         digits_value(s + 13, 2) < 60;
}

static void check_date(lua_State *L, sign_request *r) {
  if (lua_isnoneornil(L, ARG_DATE)) {
    struct tm tm;
    time_t now = time(NULL);
    if (now == (time_t)-1 || gmtime_r(&now, &tm) == NULL ||
        strftime(r->date, sizeof r->date, "%Y%m%dT%H%M%SZ", &tm) != DATE_LEN)
      luaL_error(L, "sign: cannot read the current UTC time");
  } else {
    size_t n;
    const char *d = check_str(L, ARG_DATE, &n);
    luaL_argcheck(L, valid_date(d, n), ARG_DATE, "date must be YYYYMMDDTHHMMSSZ (UTC)");
    memcpy(r->date, d, DATE_LEN);
    r->date[DATE_LEN] = '\0';
  }
}

static void check_args(lua_State *L, sign_request *r) {
  size_t ak_len, i;

  check_method(L, r);
  parse_url(L, r);
  if (!lua_isnil(L, ARG_HEADERS) && lua_type(L, ARG_HEADERS) != LUA_TTABLE)
    luaL_argerror(
        L, ARG_HEADERS,
        lua_pushfstring(L, "table or nil expected, got %s", luaL_typename(L, ARG_HEADERS)));
  if (lua_isnil(L, ARG_BODY)) {
    r->body = "";
    r->body_len = 0;
  } else if (lua_type(L, ARG_BODY) == LUA_TSTRING) {
    r->body = lua_tolstring(L, ARG_BODY, &r->body_len);
  } else {
    luaL_argerror(L, ARG_BODY,
                  lua_pushfstring(L, "string or nil expected, got %s", luaL_typename(L, ARG_BODY)));
  }

  /* the AK goes into the Authorization header verbatim */
  r->ak = check_str(L, ARG_AK, &ak_len);
  luaL_argcheck(L, ak_len > 0, ARG_AK, "AK must not be empty");
  for (i = 0; i < ak_len; i++) {
    unsigned char c = (unsigned char)r->ak[i];
    luaL_argcheck(L, c > 0x20 && c < 0x7f && c != ',', ARG_AK,
                  "AK must be printable ASCII without spaces or commas");
  }

  /* the SK is never echoed: these messages are fixed strings */
  r->sk = check_str(L, ARG_SK, &r->sk_len);
  luaL_argcheck(L, r->sk_len > 0, ARG_SK, "SK must not be empty");
  luaL_argcheck(L, r->sk_len <= INT_MAX, ARG_SK, "SK is too long");

  check_date(L, r);
}

/* -------------------------------------------------------------- headers */

static int cmp_header(const void *a, const void *b) {
  return span_cmp(&((const sign_header *)a)->name, &((const sign_header *)b)->name);
}

/* Checks the header at stack -2 (name) / -1 (value); gives its sizes. */
static void check_header(lua_State *L, size_t *name_len, size_t *value_len, int *is_host) {
  size_t i;
  const char *name, *value;

  if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, ARG_HEADERS, "header names must be strings");
  name = lua_tolstring(L, -2, name_len);
  if (*name_len == 0) luaL_argerror(L, ARG_HEADERS, "header name is empty");
  for (i = 0; i < *name_len; i++)
    if (!pipeline_is_tchar((unsigned char)name[i]))
      luaL_argerror(L, ARG_HEADERS, "header name is not an HTTP token");
  if (span_ieq(name, *name_len, "x-sdk-date"))
    luaL_argerror(L, ARG_HEADERS,
                  "header 'X-Sdk-Date' must not be given: it comes from the date argument");
  if (span_ieq(name, *name_len, "authorization"))
    luaL_argerror(L, ARG_HEADERS, "header 'Authorization' must not be given: the signer adds it");
  *is_host = span_ieq(name, *name_len, "host");

  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_argerror(L, ARG_HEADERS,
                  lua_pushfstring(L, "header '%s' value must be a string, got %s", name,
                                  luaL_typename(L, -1)));
  value = lua_tolstring(L, -1, value_len);
  for (i = 0; i < *value_len; i++) {
    unsigned char c = (unsigned char)value[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      luaL_argerror(
          L, ARG_HEADERS,
          lua_pushfstring(L, "header '%s' value contains CR, LF, NUL or another control character",
                          name));
  }
}

/*
 * Collects the signed headers into a userdata pushed on the stack: the ones
 * given, plus host (unless given) and x-sdk-date; sorted by lower-case name.
 */
static sign_header *collect_headers(lua_State *L, const sign_request *r, size_t *count) {
  size_t n = 0, bytes = 0, filled = 0, i;
  int have_host = 0;
  sign_header *h;
  char *chars;

  if (lua_istable(L, ARG_HEADERS)) {
    lua_pushnil(L);
    while (lua_next(L, ARG_HEADERS) != 0) {
      size_t name_len, value_len;
      int is_host;
      check_header(L, &name_len, &value_len, &is_host);
      have_host |= is_host;
      if (name_len + value_len + 1 > (SIZE_MAX / 2) - bytes || n >= (SIZE_MAX / 2) / sizeof *h)
        luaL_argerror(L, ARG_HEADERS, "too many headers");
      bytes += name_len + 1 + value_len;
      n++;
      lua_pop(L, 1);
    }
  }
  if (!have_host) bytes += r->host.n + PORT_TEXT_MAX;
  n += 2; /* host and x-sdk-date */

  h = (sign_header *)lua_newuserdatauv(L, n * sizeof *h + bytes, 0);
  chars = (char *)(h + n);

  if (lua_istable(L, ARG_HEADERS)) {
    lua_pushnil(L);
    while (lua_next(L, ARG_HEADERS) != 0) {
      size_t name_len, value_len, start = 0, stop;
      const char *name = lua_tolstring(L, -2, &name_len);
      const char *value = lua_tolstring(L, -1, &value_len);
      if (filled == n - 2) { /* cannot happen: the table is unchanged */
        lua_pop(L, 1);
        continue;
      }
      h[filled].name.p = chars;
      h[filled].name.n = name_len;
      for (i = 0; i < name_len; i++) *chars++ = (char)ascii_lower((unsigned char)name[i]);
      *chars++ = '\0';
      /* trim spaces and tabs, as the SDKs' strip()/TrimSpace() */
      stop = value_len;
      while (start < stop && (value[start] == ' ' || value[start] == '\t')) start++;
      while (stop > start && (value[stop - 1] == ' ' || value[stop - 1] == '\t')) stop--;
      if (stop == start && span_ieq(name, name_len, "host"))
        luaL_argerror(L, ARG_HEADERS, "header 'Host' is empty");
      h[filled].value.p = chars;
      h[filled].value.n = stop - start;
      if (stop > start) memcpy(chars, value + start, stop - start);
      chars += stop - start;
      filled++;
      lua_pop(L, 1);
    }
  }
  if (!have_host) {
    size_t extra = 0;
    h[filled].name.p = "host";
    h[filled].name.n = 4;
    h[filled].value.p = chars;
    memcpy(chars, r->host.p, r->host.n);
    if (r->port != 0) extra = (size_t)snprintf(chars + r->host.n, PORT_TEXT_MAX, ":%d", r->port);
    h[filled].value.n = r->host.n + extra;
    filled++;
  }
  h[filled].name.p = "x-sdk-date";
  h[filled].name.n = 10;
  h[filled].value.p = r->date;
  h[filled].value.n = DATE_LEN;
  filled++;

  qsort(h, filled, sizeof *h, cmp_header);
  for (i = 1; i < filled; i++) {
    if (span_cmp(&h[i - 1].name, &h[i].name) == 0)
      luaL_argerror(
          L, ARG_HEADERS,
          lua_pushfstring(L, "header '%s' given twice (names are case-insensitive)", h[i].name.p));
  }
  *count = filled;
  return h;
}

/* ---------------------------------------------------------------- query */

static int cmp_param(const void *a, const void *b) {
  const sign_param *x = (const sign_param *)a, *y = (const sign_param *)b;
  int c = span_cmp(&x->key, &y->key);
  return c != 0 ? c : span_cmp(&x->value, &y->value);
}

/*
 * Parses the query as the API Gateway signer does: split on '&', then on the
 * first '='; "a" means a="" ; pieces with an empty name are dropped; names
 * and values percent-decoded ('+' is a literal plus).  Sorted by name, then
 * value.  The result is a userdata pushed on the stack.
 */
static sign_param *collect_params(lua_State *L, span q, size_t *count) {
  size_t n = 1, m = 0, i, start;
  sign_param *p;
  char *chars;

  for (i = 0; i < q.n; i++)
    if (q.p[i] == '&') n++;
  if (n > (SIZE_MAX - q.n - 1) / sizeof *p) luaL_argerror(L, ARG_URL, "URL query is too long");
  p = (sign_param *)lua_newuserdatauv(L, n * sizeof *p + q.n + 1, 0);
  chars = (char *)(p + n);

  start = 0;
  for (i = 0; i <= q.n; i++) {
    const char *piece, *eq;
    size_t len, key_len;
    if (i < q.n && q.p[i] != '&') continue;
    piece = q.p + start;
    len = i - start;
    start = i + 1;
    eq = len ? memchr(piece, '=', len) : NULL;
    key_len = eq ? (size_t)(eq - piece) : len;
    if (key_len == 0) continue;
    p[m].key.p = chars;
    p[m].key.n = decode_into(piece, key_len, chars);
    chars += p[m].key.n;
    p[m].value.p = chars;
    p[m].value.n = eq ? decode_into(eq + 1, len - key_len - 1, chars) : 0;
    chars += p[m].value.n;
    m++;
  }
  qsort(p, m, sizeof *p, cmp_param);
  *count = m;
  return p;
}

/* ------------------------------------------------------------- signing */

/*
 * Validates the arguments and pushes: canonical request, signed headers,
 * string to sign.
 */
static void build_canonical(lua_State *L, sign_request *r) {
  luaL_Buffer b;
  sign_header *h;
  sign_param *q;
  size_t nh, nq, i;
  int last_slash = 0;
  char payload_hex[SHA256_HEX_LEN + 1];
  char request_hex[SHA256_HEX_LEN + 1];
  span payload = {NULL, 0};
  const char *canonical;
  size_t canonical_len;

  lua_settop(L, ARG_COUNT);
  luaL_checkstack(L, 8, NULL);
  check_args(L, r);

  h = collect_headers(L, r, &nh);       /* stack: ARG_COUNT + 1 */
  q = collect_params(L, r->query, &nq); /* stack: ARG_COUNT + 2 */

  for (i = 0; i < nh; i++) {
    if (span_ieq(h[i].name.p, h[i].name.n, "x-sdk-content-sha256")) {
      /* the SDKs sign this value in place of the body's hash */
      payload = h[i].value;
      luaL_argcheck(L, payload.n > 0, ARG_HEADERS, "header 'X-Sdk-Content-Sha256' is empty");
    }
  }
  if (payload.p == NULL) {
    sha256_hex(L, r->body, r->body_len, payload_hex);
    payload.p = payload_hex;
    payload.n = SHA256_HEX_LEN;
  }

  luaL_buffinit(L, &b);
  for (i = 0; i < r->method_len; i++)
    luaL_addchar(&b, (char)ascii_upper((unsigned char)r->method[i]));
  luaL_addchar(&b, '\n');

  /* canonical URI: decoded path re-encoded, '/' kept, trailing '/' added */
  i = 0;
  while (i < r->path.n) {
    unsigned char c = decode_at(r->path.p, r->path.n, &i);
    if (c == '/')
      luaL_addchar(&b, '/');
    else
      add_encoded_byte(&b, c);
    last_slash = (c == '/');
  }
  if (!last_slash) luaL_addchar(&b, '/');
  luaL_addchar(&b, '\n');

  for (i = 0; i < nq; i++) {
    if (i > 0) luaL_addchar(&b, '&');
    add_encoded(&b, q[i].key);
    luaL_addchar(&b, '=');
    add_encoded(&b, q[i].value);
  }
  luaL_addchar(&b, '\n');

  for (i = 0; i < nh; i++) {
    luaL_addlstring(&b, h[i].name.p, h[i].name.n);
    luaL_addchar(&b, ':');
    luaL_addlstring(&b, h[i].value.p, h[i].value.n);
    luaL_addchar(&b, '\n');
  }
  luaL_addchar(&b, '\n');
  for (i = 0; i < nh; i++) {
    if (i > 0) luaL_addchar(&b, ';');
    luaL_addlstring(&b, h[i].name.p, h[i].name.n);
  }
  luaL_addchar(&b, '\n');
  luaL_addlstring(&b, payload.p, payload.n);
  luaL_pushresult(&b); /* canonical request */

  luaL_buffinit(L, &b);
  for (i = 0; i < nh; i++) {
    if (i > 0) luaL_addchar(&b, ';');
    luaL_addlstring(&b, h[i].name.p, h[i].name.n);
  }
  luaL_pushresult(&b); /* signed headers */

  canonical = lua_tolstring(L, -2, &canonical_len);
  sha256_hex(L, canonical, canonical_len, request_hex);
  lua_pushfstring(L, SIGN_ALGORITHM "\n%s\n%s", r->date, request_hex);

  /* drop the scratch userdata (h, q and payload are not used again) */
  lua_remove(L, ARG_COUNT + 2);
  lua_remove(L, ARG_COUNT + 1);
  /* stack: arguments, canonical request, signed headers, string to sign */
}

int pipeline_sign_canonical(lua_State *L) {
  sign_request r;
  build_canonical(L, &r);
  lua_pushvalue(L, RESULT_CANONICAL);
  lua_pushvalue(L, RESULT_TO_SIGN);
  lua_pushvalue(L, RESULT_SIGNED);
  return 3;
}

int pipeline_sign(lua_State *L) {
  sign_request r;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  char signature[SHA256_HEX_LEN + 1];
  const char *to_sign;
  size_t to_sign_len;

  build_canonical(L, &r);
  to_sign = lua_tolstring(L, RESULT_TO_SIGN, &to_sign_len);
  if (HMAC(EVP_sha256(), r.sk, (int)r.sk_len, (const unsigned char *)to_sign, to_sign_len, mac,
           &mac_len) == NULL ||
      mac_len != SHA256_LEN) {
    OPENSSL_cleanse(mac, sizeof mac);
    return luaL_error(L, "sign: HMAC-SHA256 failed");
  }
  to_hex(mac, SHA256_LEN, signature);
  OPENSSL_cleanse(mac, sizeof mac);

  lua_createtable(L, 0, 2);
  lua_pushstring(L, r.date);
  lua_setfield(L, -2, "X-Sdk-Date");
  lua_pushfstring(L, SIGN_ALGORITHM " Access=%s, SignedHeaders=%s, Signature=%s", r.ak,
                  lua_tostring(L, RESULT_SIGNED), signature);
  lua_setfield(L, -2, "Authorization");
  return 1;
}

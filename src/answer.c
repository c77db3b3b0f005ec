/*
 * answer.c - the error rule, in one place: every runtime failure of every
 * operation is `nil, message, code, info`.  What an answer means (its
 * status, the error code the service puts in its body, libcurl's result)
 * is decided here once, for the C transport and for Lua (core.answer,
 * core.failure, core.redact).
 *
 * A server controls every byte read here: nothing it sends may raise, and
 * the work is bounded (the JSON scanner is iterative, with lua-cjson's
 * nesting limit).  The answer's body is scanned, not decoded: only the few
 * members the rule reads are kept, as spans of the body.
 */
#include "answer.h"

#include <string.h>

#include <lauxlib.h>

#include "compat.h"
#include "transfer.h"

/* The answer nearly every retry and stop gets, settled without scanning it. */
static const char SUCCESS[] = "{\"success\":true}";

/* lua-cjson's default limit of nested arrays and objects. */
#define JSON_MAX_DEPTH 1000

/* At most this much of a request id is shown. */
#define REQUEST_ID_MAX 200

/* What each code means, the start of a message that has no detail. */
static const char *what_of(const char *code) {
  static const char *const names[][2] = {{"network", "network error"},
                                         {"timeout", "timed out"},
                                         {"tls", "TLS error"},
                                         {"auth", "authentication failed"},
                                         {"not_found", "not found"},
                                         {"throttled", "throttled"},
                                         {"server", "server error"},
                                         {"api", "refused by the service"},
                                         {"protocol", "unexpected response"},
                                         {"config", "configuration error"},
                                         {"cancelled", "cancelled"}};
  size_t i;
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(code, names[i][0]) == 0) return names[i][1];
  return NULL;
}

/* Service error codes that mean "too many requests", whatever the status. */
static int is_throttling_code(const char *code, size_t len) {
  return (len == 10 && memcmp(code, "APIGW.0308", 10) == 0) ||
         (len == 12 && memcmp(code, "COCT.0070003", 12) == 0);
}

static int is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

/* ------------------------------------------------------- libcurl names */

/* Every libcurl result by number (a number never changes its meaning);
 * the numbers libcurl has no name for are "CURLE_<number>". */
#define NAME(n) "CURLE_" #n
#define TEN(d)                                                                                     \
  NAME(d##0), NAME(d##1), NAME(d##2), NAME(d##3), NAME(d##4), NAME(d##5), NAME(d##6), NAME(d##7),  \
      NAME(d##8), NAME(d##9)
static const char *const numbered[] = {
    NAME(0), NAME(1), NAME(2), NAME(3), NAME(4), NAME(5), NAME(6), NAME(7), NAME(8),
    NAME(9), TEN(1),  TEN(2),  TEN(3),  TEN(4),  TEN(5),  TEN(6),  TEN(7),  TEN(8),
    TEN(9),  TEN(10), TEN(11), TEN(12), TEN(13), TEN(14), TEN(15), TEN(16), TEN(17),
    TEN(18), TEN(19), TEN(20), TEN(21), TEN(22), TEN(23), TEN(24), TEN(25)};
#undef TEN
#undef NAME

static const char *const named[] = {"CURLE_OK",
                                    "CURLE_UNSUPPORTED_PROTOCOL",
                                    "CURLE_FAILED_INIT",
                                    "CURLE_URL_MALFORMAT",
                                    "CURLE_NOT_BUILT_IN",
                                    "CURLE_COULDNT_RESOLVE_PROXY",
                                    "CURLE_COULDNT_RESOLVE_HOST",
                                    "CURLE_COULDNT_CONNECT",
                                    "CURLE_WEIRD_SERVER_REPLY",
                                    "CURLE_REMOTE_ACCESS_DENIED",
                                    "CURLE_FTP_ACCEPT_FAILED",
                                    "CURLE_FTP_WEIRD_PASS_REPLY",
                                    "CURLE_FTP_ACCEPT_TIMEOUT",
                                    "CURLE_FTP_WEIRD_PASV_REPLY",
                                    "CURLE_FTP_WEIRD_227_FORMAT",
                                    "CURLE_FTP_CANT_GET_HOST",
                                    "CURLE_HTTP2",
                                    "CURLE_FTP_COULDNT_SET_TYPE",
                                    "CURLE_PARTIAL_FILE",
                                    "CURLE_FTP_COULDNT_RETR_FILE",
                                    "CURLE_OBSOLETE20",
                                    "CURLE_QUOTE_ERROR",
                                    "CURLE_HTTP_RETURNED_ERROR",
                                    "CURLE_WRITE_ERROR",
                                    "CURLE_OBSOLETE24",
                                    "CURLE_UPLOAD_FAILED",
                                    "CURLE_READ_ERROR",
                                    "CURLE_OUT_OF_MEMORY",
                                    "CURLE_OPERATION_TIMEDOUT",
                                    "CURLE_OBSOLETE29",
                                    "CURLE_FTP_PORT_FAILED",
                                    "CURLE_FTP_COULDNT_USE_REST",
                                    "CURLE_OBSOLETE32",
                                    "CURLE_RANGE_ERROR",
                                    "CURLE_HTTP_POST_ERROR",
                                    "CURLE_SSL_CONNECT_ERROR",
                                    "CURLE_BAD_DOWNLOAD_RESUME",
                                    "CURLE_FILE_COULDNT_READ_FILE",
                                    "CURLE_LDAP_CANNOT_BIND",
                                    "CURLE_LDAP_SEARCH_FAILED",
                                    "CURLE_OBSOLETE40",
                                    "CURLE_FUNCTION_NOT_FOUND",
                                    "CURLE_ABORTED_BY_CALLBACK",
                                    "CURLE_BAD_FUNCTION_ARGUMENT",
                                    "CURLE_OBSOLETE44",
                                    "CURLE_INTERFACE_FAILED",
                                    "CURLE_OBSOLETE46",
                                    "CURLE_TOO_MANY_REDIRECTS",
                                    "CURLE_UNKNOWN_OPTION",
                                    "CURLE_SETOPT_OPTION_SYNTAX",
                                    "CURLE_OBSOLETE50",
                                    "CURLE_OBSOLETE51",
                                    "CURLE_GOT_NOTHING",
                                    "CURLE_SSL_ENGINE_NOTFOUND",
                                    "CURLE_SSL_ENGINE_SETFAILED",
                                    "CURLE_SEND_ERROR",
                                    "CURLE_RECV_ERROR",
                                    "CURLE_OBSOLETE57",
                                    "CURLE_SSL_CERTPROBLEM",
                                    "CURLE_SSL_CIPHER",
                                    "CURLE_PEER_FAILED_VERIFICATION",
                                    "CURLE_BAD_CONTENT_ENCODING",
                                    "CURLE_OBSOLETE62",
                                    "CURLE_FILESIZE_EXCEEDED",
                                    "CURLE_USE_SSL_FAILED",
                                    "CURLE_SEND_FAIL_REWIND",
                                    "CURLE_SSL_ENGINE_INITFAILED",
                                    "CURLE_LOGIN_DENIED",
                                    "CURLE_TFTP_NOTFOUND",
                                    "CURLE_TFTP_PERM",
                                    "CURLE_REMOTE_DISK_FULL",
                                    "CURLE_TFTP_ILLEGAL",
                                    "CURLE_TFTP_UNKNOWNID",
                                    "CURLE_REMOTE_FILE_EXISTS",
                                    "CURLE_TFTP_NOSUCHUSER",
                                    "CURLE_OBSOLETE75",
                                    "CURLE_OBSOLETE76",
                                    "CURLE_SSL_CACERT_BADFILE",
                                    "CURLE_REMOTE_FILE_NOT_FOUND",
                                    "CURLE_SSH",
                                    "CURLE_SSL_SHUTDOWN_FAILED",
                                    "CURLE_AGAIN",
                                    "CURLE_SSL_CRL_BADFILE",
                                    "CURLE_SSL_ISSUER_ERROR",
                                    "CURLE_FTP_PRET_FAILED",
                                    "CURLE_RTSP_CSEQ_ERROR",
                                    "CURLE_RTSP_SESSION_ERROR",
                                    "CURLE_FTP_BAD_FILE_LIST",
                                    "CURLE_CHUNK_FAILED",
                                    "CURLE_NO_CONNECTION_AVAILABLE",
                                    "CURLE_SSL_PINNEDPUBKEYNOTMATCH",
                                    "CURLE_SSL_INVALIDCERTSTATUS",
                                    "CURLE_HTTP2_STREAM",
                                    "CURLE_RECURSIVE_API_CALL",
                                    "CURLE_AUTH_ERROR",
                                    "CURLE_HTTP3",
                                    "CURLE_QUIC_CONNECT_ERROR",
                                    "CURLE_PROXY",
                                    "CURLE_SSL_CLIENTCERT",
                                    "CURLE_UNRECOVERABLE_POLL",
                                    "CURLE_TOO_LARGE",
                                    "CURLE_ECH_REQUIRED"};

const char *pipeline_curl_code_name(CURLcode rc) {
  long n = (long)rc;
  if (n >= 0 && n < (long)(sizeof named / sizeof named[0])) return named[n];
  if (n >= 0 && n < (long)(sizeof numbered / sizeof numbered[0])) return numbered[n];
  return "CURLE_UNKNOWN";
}

/* ---------------------------------------------------------- redaction */

/* Where w (m bytes) first occurs in s (n bytes), or NULL: Lua's own plain
 * string.find, which C99 lacks as memmem. */
static const char *find_bytes(const char *s, size_t n, const char *w, size_t m) {
  const char *hit;
  if (m == 0) return s;
  if (m > n) return NULL;
  m--;    /* the first byte is found by memchr */
  n -= m; /* where the first byte may be */
  while (n > 0 && (hit = memchr(s, *w, n)) != NULL) {
    hit++;
    if (memcmp(hit, w + 1, m) == 0) return hit - 1;
    n -= (size_t)(hit - s);
    s = hit;
  }
  return NULL;
}

/* [%w%-_]: a character of a signature. */
static int is_signature_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

/* Replaces the string at (absolute) index with its copy in which every
 * occurrence of secret is "***", scanning left to right; unchanged (no new
 * string) when there is none. */
static void hide_secret(lua_State *L, int index, const char *secret, size_t m) {
  size_t n;
  const char *text = lua_tolstring(L, index, &n), *end = text + n, *hit;
  luaL_Buffer b;
  hit = find_bytes(text, n, secret, m);
  if (hit == NULL) return;
  luaL_buffinit(L, &b);
  while (hit) {
    luaL_addlstring(&b, text, (size_t)(hit - text));
    luaL_addlstring(&b, "***", 3);
    text = hit + m;
    hit = find_bytes(text, (size_t)(end - text), secret, m);
  }
  luaL_addlstring(&b, text, (size_t)(end - text));
  luaL_pushresult(&b);
  lua_replace(L, index);
}

/* A signature of the SDK-HMAC-SHA256 scheme is as good as the key for the
 * request it signs (and tells about the key): hidden wherever it appears,
 * known secret or not.  The Lua pattern it was,
 * "(SDK%-HMAC%-SHA256.-Signature=)[%w%-_]+" -> "%1***": from each
 * "SDK-HMAC-SHA256", the nearest "Signature=" followed by a signature
 * character; its run of them is hidden. */
static void hide_signatures(lua_State *L, int index) {
  static const char scheme[] = "SDK-HMAC-SHA256", label[] = "Signature=";
  const size_t scheme_len = sizeof scheme - 1, label_len = sizeof label - 1;
  size_t n;
  const char *text = lua_tolstring(L, index, &n), *end = text + n, *kept = text, *from = text;
  luaL_Buffer b;
  int changed = 0;
  for (;;) {
    const char *start = find_bytes(from, (size_t)(end - from), scheme, scheme_len), *at, *value;
    if (start == NULL) break;
    at = start + scheme_len;
    while ((at = find_bytes(at, (size_t)(end - at), label, label_len)) != NULL &&
           !(at + label_len < end && is_signature_char((unsigned char)at[label_len])))
      at++;
    /* none here: none after either, as any later match would be one here */
    if (at == NULL) break;
    if (!changed) luaL_buffinit(L, &b);
    changed = 1;
    value = at + label_len;
    luaL_addlstring(&b, kept, (size_t)(value - kept));
    luaL_addlstring(&b, "***", 3);
    while (value < end && is_signature_char((unsigned char)*value)) value++;
    kept = from = value;
  }
  if (!changed) return;
  luaL_addlstring(&b, kept, (size_t)(end - kept));
  luaL_pushresult(&b);
  lua_replace(L, index);
}

/* Redacts the string at (absolute) index in place: each secret of the list
 * at index secrets (0: none), in the list's order, then the signatures. */
static void redact_at(lua_State *L, int index, int secrets) {
  if (secrets) {
    int i;
    for (i = 1;; i++) {
      lua_rawgeti(L, secrets, i);
      if (lua_isnil(L, -1)) break;
      if (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) >= 4) {
        size_t m;
        const char *secret = lua_tolstring(L, -1, &m);
        hide_secret(L, index, secret, m);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  hide_signatures(L, index);
}

static int absolute(lua_State *L, int index) {
  return index < 0 && index > LUA_REGISTRYINDEX ? lua_gettop(L) + index + 1 : index;
}

void pipeline_push_redacted(lua_State *L, const char *text, size_t len, int secrets) {
  if (secrets) secrets = absolute(L, secrets);
  if (secrets && lua_type(L, secrets) != LUA_TTABLE) secrets = 0;
  lua_pushlstring(L, text, len);
  redact_at(L, lua_gettop(L), secrets);
}

/* Pushes the value at index (a string) as a request id may be shown:
 * redacted, without control characters, at most REQUEST_ID_MAX bytes; nil
 * for an empty one or a value that is not a string.  Redacted again once the
 * control characters are out, as they may have split a secret. */
static void push_request_id(lua_State *L, int index, int secrets) {
  size_t n, i;
  const char *s;
  luaL_Buffer b;
  int copy;
  if (lua_type(L, index) != LUA_TSTRING) {
    lua_pushnil(L);
    return;
  }
  lua_pushvalue(L, index);
  copy = lua_gettop(L);
  redact_at(L, copy, secrets);
  s = lua_tolstring(L, copy, &n);
  for (i = 0; i < n && !is_control((unsigned char)s[i]); i++) {}
  if (i < n) {
    luaL_buffinit(L, &b);
    for (i = 0; i < n; i++)
      if (!is_control((unsigned char)s[i])) luaL_addchar(&b, s[i]);
    luaL_pushresult(&b);
    lua_replace(L, copy);
    redact_at(L, copy, secrets);
    s = lua_tolstring(L, copy, &n);
  }
  if (n == 0)
    lua_pushnil(L);
  else
    lua_pushlstring(L, s, n < REQUEST_ID_MAX ? n : REQUEST_ID_MAX);
  lua_replace(L, copy);
}

/* ------------------------------------------------------------ failures */

/* Moves the top n values down to base + 1 .. base + n and drops the rest
 * above base; returns n. */
static int leave_results(lua_State *L, int base, int n) {
  int first = lua_gettop(L) - n + 1, i;
  for (i = 0; i < n; i++) {
    lua_pushvalue(L, first + i);
    lua_replace(L, base + 1 + i);
  }
  lua_settop(L, base + n);
  return n;
}

/* info[field] = redacted(info[field]) for a string. */
static void redact_field(lua_State *L, int info, const char *field, int secrets) {
  lua_getfield(L, info, field);
  if (lua_type(L, -1) == LUA_TSTRING) {
    redact_at(L, lua_gettop(L), secrets);
    lua_setfield(L, info, field);
  } else {
    lua_pop(L, 1);
  }
}

/* Appends ", " .. piece (pushed on top) to the message just under it. */
static void append_part(lua_State *L) {
  lua_pushliteral(L, ", ");
  lua_insert(L, -2);
  lua_concat(L, 3);
}

/* The message's every run of control characters as one space. */
static void squeeze_controls(lua_State *L, int index) {
  size_t n, i;
  const char *s = lua_tolstring(L, index, &n);
  luaL_Buffer b;
  for (i = 0; i < n && !is_control((unsigned char)s[i]); i++) {}
  if (i == n) return;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, s, i);
  while (i < n) {
    if (is_control((unsigned char)s[i])) {
      luaL_addchar(&b, ' ');
      while (i < n && is_control((unsigned char)s[i])) i++;
    } else {
      luaL_addchar(&b, s[i++]);
    }
  }
  luaL_pushresult(&b);
  lua_replace(L, index);
}

/* The failure of operation op: completes the info table at index info and
 * pushes nil, message, code, info.  op and code: indexes of strings; detail:
 * index of what went wrong in words (nil or false: what the code means), or
 * 0; secrets: index of a list, or 0.  Everything in info may have come from
 * the answer (a server may echo a secret): it is redacted. */
static int push_failure(lua_State *L, int op, int code, int detail, int info, int secrets) {
  int message;
  const char *code_text = lua_tostring(L, code);
  lua_getfield(L, info, "retryable");
  if (lua_isnil(L, -1)) {
    lua_pushboolean(L, 0);
    lua_setfield(L, info, "retryable");
  }
  lua_pop(L, 1);
  lua_getfield(L, info, "attempts");
  if (!lua_toboolean(L, -1)) {
    /* a configuration failure happens before anything is sent */
    lua_pushinteger(L, strcmp(code_text, "config") == 0 ? 0 : 1);
    lua_setfield(L, info, "attempts");
  }
  lua_pop(L, 1);
  redact_field(L, info, "error_msg", secrets);
  redact_field(L, info, "error_code", secrets);
  lua_getfield(L, info, "request_id");
  push_request_id(L, lua_gettop(L), secrets);
  lua_setfield(L, info, "request_id");
  lua_pop(L, 1);

  /* op: detail, HTTP n, CODE msg (request id X) */
  lua_pushvalue(L, op);
  lua_pushliteral(L, ": ");
  if (detail && lua_toboolean(L, detail)) {
    lua_pushvalue(L, detail);
  } else {
    const char *what = what_of(code_text);
    if (what)
      lua_pushstring(L, what);
    else
      lua_pushvalue(L, code);
  }
  lua_concat(L, 3);
  message = lua_gettop(L);
  lua_getfield(L, info, "status");
  if (lua_toboolean(L, -1)) {
    lua_pushliteral(L, "HTTP ");
    lua_insert(L, -2);
    lua_concat(L, 2);
    append_part(L);
  } else {
    lua_pop(L, 1);
  }
  lua_getfield(L, info, "error_code");
  lua_getfield(L, info, "error_msg");
  if (lua_toboolean(L, -2)) {
    if (lua_toboolean(L, -1)) {
      lua_pushliteral(L, " ");
      lua_insert(L, -2);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
    }
    append_part(L);
  } else if (lua_toboolean(L, -1)) {
    lua_remove(L, -2);
    append_part(L);
  } else {
    lua_pop(L, 2);
  }
  lua_getfield(L, info, "request_id");
  if (lua_toboolean(L, -1)) {
    lua_pushliteral(L, " (request id ");
    lua_insert(L, -2);
    lua_pushliteral(L, ")");
    lua_concat(L, 4);
  } else {
    lua_pop(L, 1);
  }
  squeeze_controls(L, message);
  redact_at(L, message, secrets);
  lua_pushnil(L);
  lua_insert(L, message);
  lua_pushvalue(L, code);
  lua_pushvalue(L, info);
  return 4;
}

/* ------------------------------------------------------- JSON scanning */

enum { J_ABSENT, J_NULL, J_FALSE, J_TRUE, J_NUMBER, J_STRING, J_OBJECT, J_ARRAY };

/* A member's value: its type, and for a string its text between the quotes
 * (escapes still in), for a number its text as written. */
typedef struct {
  int type;
  const char *text;
  size_t len;
} json_value;

/* The members the rule reads: the top level's, and those of IAM's
 * {"error": {"code": ..., "message": ..., "title": ...}}. */
enum {
  M_ERROR_CODE,
  M_ERROR_MSG,
  M_REQUEST_ID,
  M_SUCCESS,
  M_ERROR,
  M_IAM_CODE,
  M_IAM_MESSAGE,
  M_IAM_TITLE,
  M_COUNT
};

static const char *const top_members[] = {"error_code", "error_msg", "request_id", "success",
                                          "error"};
static const char *const iam_members[] = {"code", "message", "title"};

static const char *skip_space(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The four hex digits at p (end permitting) as a number, or -1. */
static long hex4(const char *p, const char *end) {
  long value = 0;
  int i;
  if (end - p < 4) return -1;
  for (i = 0; i < 4; i++) {
    int d = hex_digit(p[i]);
    if (d < 0) return -1;
    value = value * 16 + d;
  }
  return value;
}

/* A string's rest from just after its opening quote: returns the position
 * after its closing quote, or NULL when it is not a JSON string.  A
 * surrogate must come as a high-low pair of \u escapes, as lua-cjson
 * decodes them; other bytes are taken as they are (UTF-8 is not checked,
 * as lua-cjson does not). */
static const char *scan_string(const char *p, const char *end) {
  while (p < end) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') return p + 1;
    if (c < 0x20) return NULL;
    if (c != '\\') {
      p++;
      continue;
    }
    if (++p == end) return NULL;
    switch (*p) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        p++;
        break;
      case 'u': {
        long unit = hex4(p + 1, end);
        if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF)) return NULL;
        p += 5;
        if (unit >= 0xD800 && unit <= 0xDBFF) {
          long low;
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return NULL;
          low = hex4(p + 2, end);
          if (low < 0xDC00 || low > 0xDFFF) return NULL;
          p += 6;
        }
        break;
      }
      default:
        return NULL;
    }
  }
  return NULL;
}

static int is_digit(const char *p, const char *end) { return p < end && *p >= '0' && *p <= '9'; }

/* A number from p: the position after it, or NULL (RFC 8259's grammar). */
static const char *scan_number(const char *p, const char *end) {
  if (p < end && *p == '-') p++;
  if (!is_digit(p, end)) return NULL;
  if (*p++ != '0')
    while (is_digit(p, end)) p++;
  if (p < end && *p == '.') {
    if (!is_digit(++p, end)) return NULL;
    while (is_digit(p, end)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (!is_digit(p, end)) return NULL;
    while (is_digit(p, end)) p++;
  }
  return p;
}

/* The UTF-8 bytes of the next character of a checked JSON string at *p,
 * written to out; returns their count and moves *p past the character. */
static size_t next_char(const char **p, char out[4]) {
  const char *s = *p;
  unsigned long c;
  if (*s != '\\') {
    out[0] = *s;
    *p = s + 1;
    return 1;
  }
  *p = s + 2;
  if (s[1] != 'u') {
    /* a one-letter escape: \b \f \n \r \t, or the character itself (" \\ /) */
    static const char letters[] = "b\bf\fn\nr\rt\t";
    const char *at = strchr(letters, s[1]);
    out[0] = at && (at - letters) % 2 == 0 ? at[1] : s[1];
    return 1;
  }
  c = (unsigned long)hex4(s + 2, s + 6);
  *p = s + 6;
  if (c >= 0xD800 && c <= 0xDBFF) {
    c = 0x10000 + ((c - 0xD800) << 10) + ((unsigned long)hex4(s + 8, s + 12) - 0xDC00);
    *p = s + 12;
  }
  if (c < 0x80) {
    out[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    out[0] = (char)(0xC0 | (c >> 6));
    out[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = (char)(0xE0 | (c >> 12));
    out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (c >> 18));
  out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
  out[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

/* Which of names (count of them) the key (a checked string's text, escapes
 * in) is, decoded; -1 for none. */
static int key_index(const char *p, size_t len, const char *const *names, int count) {
  char key[16];
  size_t n = 0;
  const char *end = p + len;
  int i;
  while (p < end) {
    char c[4];
    size_t k = next_char(&p, c);
    if (n + k > sizeof key) return -1;
    memcpy(key + n, c, k);
    n += k;
  }
  for (i = 0; i < count; i++)
    if (strlen(names[i]) == n && memcmp(names[i], key, n) == 0) return i;
  return -1;
}

/* Scans body as one JSON text (RFC 8259; nested at most JSON_MAX_DEPTH
 * deep) and fills in the members the rule reads (a repeated member: its
 * last value, as lua-cjson keeps).  Returns whether it is JSON. */
static int scan_json(const char *p, size_t n, json_value *m) {
  enum { VALUE, KEY, AFTER_VALUE } state = VALUE;
  const char *end = p + n, *q;
  char open[JSON_MAX_DEPTH]; /* '{' or '[' of each level */
  int depth = 0, top_member = -1, i;
  json_value *slot = NULL; /* where the value at p goes, if read */
  for (i = 0; i < M_COUNT; i++) m[i].type = J_ABSENT;
  for (;;) {
    p = skip_space(p, end);
    if (state == AFTER_VALUE) {
      if (depth == 0) return p == end;
      if (p == end) return 0;
      if (*p == (open[depth - 1] == '{' ? '}' : ']')) {
        depth--;
        p++;
        continue;
      }
      if (*p++ != ',') return 0;
      state = open[depth - 1] == '{' ? KEY : VALUE;
      slot = NULL;
      continue;
    }
    if (p == end) return 0;
    if (state == KEY) {
      int which;
      if (*p != '"' || (q = scan_string(p + 1, end)) == NULL) return 0;
      if (depth == 1) {
        top_member = key_index(p + 1, (size_t)(q - p - 2), top_members, 5);
        slot = top_member >= 0 ? &m[top_member] : NULL;
        if (top_member == M_ERROR)
          for (i = M_IAM_CODE; i <= M_IAM_TITLE; i++) m[i].type = J_ABSENT;
      } else if (depth == 2 && top_member == M_ERROR && open[1] == '{') {
        which = key_index(p + 1, (size_t)(q - p - 2), iam_members, 3);
        slot = which >= 0 ? &m[M_IAM_CODE + which] : NULL;
      } else {
        slot = NULL;
      }
      p = skip_space(q, end);
      if (p == end || *p++ != ':') return 0;
      state = VALUE;
      continue;
    }
    /* a value */
    if (*p == '{' || *p == '[') {
      if (depth == JSON_MAX_DEPTH) return 0;
      if (slot) slot->type = *p == '{' ? J_OBJECT : J_ARRAY;
      open[depth++] = *p++;
      p = skip_space(p, end);
      if (p < end && *p == (open[depth - 1] == '{' ? '}' : ']')) {
        depth--;
        p++;
        state = AFTER_VALUE;
      } else {
        state = open[depth - 1] == '{' ? KEY : VALUE;
      }
      slot = NULL;
      continue;
    }
    if (*p == '"') {
      if ((q = scan_string(p + 1, end)) == NULL) return 0;
      if (slot) {
        slot->type = J_STRING;
        slot->text = p + 1;
        slot->len = (size_t)(q - p - 2);
      }
    } else if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
      q = p + 4;
      if (slot) slot->type = J_TRUE;
    } else if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
      q = p + 5;
      if (slot) slot->type = J_FALSE;
    } else if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
      q = p + 4;
      if (slot) slot->type = J_NULL;
    } else {
      if ((q = scan_number(p, end)) == NULL) return 0;
      if (slot) {
        slot->type = J_NUMBER;
        slot->text = p;
        slot->len = (size_t)(q - p);
      }
    }
    p = q;
    state = AFTER_VALUE;
  }
}

/* Pushes the text of v, as the rule reads a field: a string (decoded) or a
 * number (as written); nil when absent, null, empty or anything else. */
static void push_text(lua_State *L, const json_value *v) {
  if (v->type == J_NUMBER) {
    lua_pushlstring(L, v->text, v->len);
  } else if (v->type == J_STRING && v->len > 0) {
    const char *p = v->text, *end = p + v->len;
    luaL_Buffer b;
    if (memchr(p, '\\', v->len) == NULL) {
      lua_pushlstring(L, p, v->len);
      return;
    }
    luaL_buffinit(L, &b);
    while (p < end) {
      char c[4];
      size_t k = next_char(&p, c);
      luaL_addlstring(&b, c, k);
    }
    luaL_pushresult(&b);
  } else {
    lua_pushnil(L);
  }
}

/* ------------------------------------------------------------- answers */

static const char *code_for_status(long status, int throttling_code) {
  if (throttling_code || status == 429) return "throttled";
  if (status == 401 || status == 403) return "auth";
  if (status == 404) return "not_found";
  if (status >= 500) return "server";
  return "api";
}

int pipeline_push_answer(lua_State *L, const pipeline_answer *a, long status, const char *body,
                         size_t body_len, const char *header_text) {
  json_value m[M_COUNT];
  int base, headers, info, error_code, error_msg, json, secrets = a->secrets, retryable = -1;
  int redirect = 0; /* index of the redirect's detail */
  const char *code = NULL, *detail = NULL;
  if (body == NULL) body_len = 0, body = "";
  if (a->expect_success && !a->success_info && status >= 200 && status < 300 &&
      body_len == sizeof SUCCESS - 1 && memcmp(body, SUCCESS, body_len) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (secrets) secrets = absolute(L, secrets);
  if (secrets && lua_type(L, secrets) != LUA_TTABLE) secrets = 0;
  luaL_checkstack(L, 24, "answer");
  base = lua_gettop(L);
  json = scan_json(body, body_len, m);
  pipeline_push_headers(L, header_text);
  headers = base + 1;
  lua_createtable(L, 0, 10);
  info = base + 2;
  lua_pushinteger(L, (lua_Integer)status);
  lua_setfield(L, info, "status");

  /* what the body says of an error, in the shapes the gateway, the service
   * and IAM use */
  error_code = base + 3;
  error_msg = base + 4;
  if (json) {
    push_text(L, &m[M_ERROR_CODE]);
    push_text(L, &m[M_ERROR_MSG]);
    if (lua_isnil(L, error_code) && (m[M_ERROR].type == J_OBJECT || m[M_ERROR].type == J_ARRAY)) {
      /* IAM's {"error": {"code": 401, "message": ..., "title": ...}}, whose
       * numeric code only repeats the status */
      lua_pop(L, 2);
      if (m[M_IAM_CODE].type == J_STRING)
        push_text(L, &m[M_IAM_CODE]);
      else
        lua_pushnil(L);
      push_text(L, &m[M_IAM_MESSAGE]);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        push_text(L, &m[M_IAM_TITLE]);
      }
    }
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  /* the request id: the header's, else the body's */
  lua_getfield(L, headers, "x-request-id");
  if (lua_isnil(L, -1) && json && m[M_REQUEST_ID].type == J_STRING) {
    lua_pop(L, 1);
    push_text(L, &m[M_REQUEST_ID]);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, ""); /* "" is a string too (and shown as none) */
    }
  }
  push_request_id(L, lua_gettop(L), secrets);
  lua_setfield(L, info, "request_id");
  lua_pop(L, 1);

  if (status >= 200 && status < 300) {
    int type = m[M_ERROR_CODE].type;
    if (!json) {
      code = "protocol", detail = "response is not JSON";
    } else if (type == J_OBJECT || type == J_ARRAY || type == J_TRUE || type == J_FALSE) {
      code = "protocol", detail = "response has an error_code that is not text";
    } else if (!lua_isnil(L, error_code)) {
      size_t len;
      const char *text = lua_tolstring(L, error_code, &len);
      retryable = is_throttling_code(text, len);
      code = retryable ? "throttled" : "api";
    } else if (m[M_SUCCESS].type == J_FALSE) {
      code = "api", detail = "the service answered success = false";
    } else if (a->expect_success && m[M_SUCCESS].type != J_TRUE) {
      code = "protocol", detail = "response has no \"success\": true";
    } else if (a->expect_success && a->success_info) {
      lua_pushboolean(L, 1);
      lua_pushvalue(L, info);
      lua_pushvalue(L, headers);
      lua_setfield(L, -2, "headers");
      return leave_results(L, base, 2);
    } else if (a->expect_success) {
      lua_pushboolean(L, 1);
      return leave_results(L, base, 1);
    } else {
      lua_pushlstring(L, body, body_len);
      lua_pushvalue(L, info);
      lua_pushvalue(L, headers);
      lua_setfield(L, -2, "headers");
      return leave_results(L, base, 2);
    }
  } else if (status >= 300 && status < 400) {
    lua_getfield(L, headers, "location");
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, "redirect not followed");
    } else {
      lua_pushliteral(L, "redirect to ");
      lua_insert(L, -2);
      lua_pushliteral(L, " not followed");
      lua_concat(L, 3);
    }
    code = "protocol";
    redirect = lua_gettop(L);
  } else if (status < 200) {
    code = "protocol", detail = "unexpected informational answer";
  } else {
    int throttling = 0;
    if (!lua_isnil(L, error_code)) {
      size_t len;
      const char *text = lua_tolstring(L, error_code, &len);
      throttling = is_throttling_code(text, len);
    }
    code = code_for_status(status, throttling);
    retryable = strcmp(code, "throttled") == 0 || status == 503 ||
                (a->idempotent && (status == 502 || status == 504));
  }

  /* a failure: info gets what is known of the answer */
  {
    int detail_index;
    lua_pushvalue(L, error_code);
    lua_setfield(L, info, "error_code");
    lua_pushvalue(L, error_msg);
    lua_setfield(L, info, "error_msg");
    if (retryable >= 0) {
      lua_pushboolean(L, retryable);
      lua_setfield(L, info, "retryable");
    }
    lua_pushboolean(L, 1); /* an answer came: the request was sent */
    lua_setfield(L, info, "sent");
    lua_getfield(L, headers, "retry-after");
    lua_setfield(L, info, "retry_after");
    lua_pushstring(L, a->op);
    lua_pushstring(L, code);
    if (detail)
      lua_pushstring(L, detail);
    else if (redirect)
      lua_pushvalue(L, redirect);
    else
      lua_pushnil(L);
    detail_index = lua_gettop(L);
    push_failure(L, detail_index - 2, detail_index - 1, detail_index, info, secrets);
    return leave_results(L, base, 4);
  }
}

int pipeline_push_transport_failure(lua_State *L, const pipeline_answer *a, const char *code,
                                    const char *detail, CURLcode rc, int sent, long status,
                                    const char *header_text) {
  int base, info, secrets = a->secrets, config = strcmp(code, "config") == 0;
  const char *what = what_of(code);
  if (secrets) secrets = absolute(L, secrets);
  if (secrets && lua_type(L, secrets) != LUA_TTABLE) secrets = 0;
  luaL_checkstack(L, 16, "answer");
  base = lua_gettop(L);
  lua_createtable(L, 0, 10);
  info = base + 1;
  if (status > 0) {
    lua_pushinteger(L, (lua_Integer)status);
    lua_setfield(L, info, "status");
  }
  if (header_text) {
    pipeline_push_headers(L, header_text);
    lua_getfield(L, -1, "x-request-id");
    lua_setfield(L, info, "request_id");
    lua_getfield(L, -1, "retry-after");
    lua_setfield(L, info, "retry_after");
    lua_pop(L, 1);
  }
  /* what was sent may have been carried out: sent again only when it is a
   * read (idempotent) */
  lua_pushboolean(L, !config && strcmp(code, "protocol") != 0 && strcmp(code, "tls") != 0 &&
                         (!sent || (a->idempotent && (strcmp(code, "network") == 0 ||
                                                      strcmp(code, "timeout") == 0))));
  lua_setfield(L, info, "retryable");
  lua_pushinteger(L, config ? 0 : 1);
  lua_setfield(L, info, "attempts");
  lua_pushboolean(L, sent);
  lua_setfield(L, info, "sent");
  lua_pushstring(L, pipeline_curl_code_name(rc));
  lua_setfield(L, info, "curl_code");
  lua_pushinteger(L, (lua_Integer)rc);
  lua_setfield(L, info, "curl_errno");
  lua_pushstring(L, a->op);
  lua_pushstring(L, code);
  lua_pushfstring(L, "%s: %s", what ? what : code, detail ? detail : curl_easy_strerror(rc));
  push_failure(L, base + 2, base + 3, base + 4, info, secrets);
  return leave_results(L, base, 4);
}

/* ------------------------------------------------------------- for Lua */

/* The index of the optional list of secrets at arg, or 0. */
static int optional_list(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return 0;
  luaL_checktype(L, arg, LUA_TTABLE);
  return arg;
}

/* core.answer(op, expect, status, body [, header_text [, secrets]])
 *   -> true | body, info | nil, message, code, info
 * expect: "success" (a good answer is {"success": true}) or "json". */
int pipeline_lua_answer(lua_State *L) {
  static const char *const expects[] = {"json", "success", NULL};
  pipeline_answer a;
  size_t len;
  const char *body, *header_text;
  lua_Integer status;
  a.op = luaL_checkstring(L, 1);
  a.expect_success = luaL_checkoption(L, 2, NULL, expects) == 1;
  status = luaL_checkinteger(L, 3);
  body = luaL_checklstring(L, 4, &len);
  header_text = luaL_optstring(L, 5, NULL);
  a.secrets = optional_list(L, 6);
  a.success_info = 0;
  a.idempotent = 0;
  lua_settop(L, 6);
  return pipeline_push_answer(L, &a, (long)status, body, len, header_text);
}

/* core.transport_failure(op, code, detail, curl_errno, sent [, status [, header_text
 *   [, secrets]]]) -> nil, message, code, info */
int pipeline_lua_transport_failure(lua_State *L) {
  pipeline_answer a;
  const char *code, *detail, *header_text;
  lua_Integer rc, status;
  int sent;
  a.op = luaL_checkstring(L, 1);
  a.expect_success = 0;
  code = luaL_checkstring(L, 2);
  detail = luaL_optstring(L, 3, NULL);
  rc = luaL_checkinteger(L, 4);
  sent = lua_toboolean(L, 5);
  status = luaL_optinteger(L, 6, 0);
  header_text = luaL_optstring(L, 7, NULL);
  a.secrets = optional_list(L, 8);
  a.success_info = 0;
  a.idempotent = 0;
  lua_settop(L, 8);
  return pipeline_push_transport_failure(L, &a, code, detail, (CURLcode)rc, sent, (long)status,
                                         header_text);
}

/* core.failure(op, code, detail [, info [, secrets]]) -> nil, message, code, info
 * detail: what went wrong in words (nil: what code means); info: what is
 * known of the answer (completed and returned). */
int pipeline_lua_failure(lua_State *L) {
  int detail = 0, secrets;
  luaL_checkstring(L, 1);
  luaL_checkstring(L, 2);
  if (lua_toboolean(L, 3)) {
    luaL_checkstring(L, 3);
    detail = 3;
  }
  secrets = optional_list(L, 5);
  lua_settop(L, 5);
  if (lua_isnil(L, 4)) {
    lua_newtable(L);
    lua_replace(L, 4);
  }
  luaL_checktype(L, 4, LUA_TTABLE);
  return push_failure(L, 1, 2, detail, 4, secrets);
}

int pipeline_push_failure(lua_State *L, const char *op, const char *code, const char *detail) {
  int base = lua_gettop(L);
  lua_pushstring(L, op);
  lua_pushstring(L, code);
  lua_pushstring(L, detail);
  lua_newtable(L);
  push_failure(L, base + 1, base + 2, detail ? base + 3 : 0, base + 4, 0);
  return leave_results(L, base, 4);
}

/* core.redact(text, secrets) -> text with every secret of the list (and
 * every SDK-HMAC-SHA256 signature) hidden; a value that is not a string as
 * it is. */
int pipeline_lua_redact(lua_State *L) {
  int secrets = optional_list(L, 2);
  lua_settop(L, 2);
  if (lua_type(L, 1) != LUA_TSTRING) {
    lua_settop(L, 1);
    return 1;
  }
  redact_at(L, 1, secrets);
  lua_settop(L, 1);
  return 1;
}

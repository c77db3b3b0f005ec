/*
 * fuzz_answer.c - what an answer means (src/answer.c): a status, a header
 * block and a body as a server may send them, turned into the operation's
 * result.  Nothing may crash, leak or raise; the result must have the public
 * shape, a failure's message no control character and no secret.
 *
 * Input: two bytes of status (big-endian, taken modulo 1000), one byte of
 * flags (bit 0: expect success; bit 1: no header block), two bytes of header block length, the
 * header block, then the body (the rest; NULs and all).
 */
#include <stdint.h>
#include <string.h>

#include "answer.h"
#include "fuzz_common.h"

#define SECRET "fuzz-SECRET-7f3a"

typedef struct {
  pipeline_answer answer;
  long status;
  const char *body, *header_text;
  size_t body_len;
} call;

static int push(lua_State *L) {
  const call *c = lua_touserdata(L, 1);
  pipeline_answer a = c->answer;
  lua_createtable(L, 1, 0);
  lua_pushliteral(L, SECRET);
  lua_rawseti(L, -2, 1);
  a.secrets = lua_gettop(L);
  return pipeline_push_answer(L, &a, c->status, c->body, c->body_len, c->header_text);
}

/* A string holds no secret (and, for a message, no control character). */
static void check_text(lua_State *L, int index, int message) {
  size_t len, i;
  const char *s;
  if (lua_type(L, index) != LUA_TSTRING) return;
  s = lua_tolstring(L, index, &len);
  for (i = 0; message && i < len; i++)
    FUZZ_CHECK(!((unsigned char)s[i] < 0x20 || s[i] == 0x7f), "a message has no control character");
  for (i = 0; i + sizeof SECRET - 1 <= len; i++)
    FUZZ_CHECK(memcmp(s + i, SECRET, sizeof SECRET - 1) != 0, "no secret is shown");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_lua();
  call c;
  char *headers;
  size_t header_len;
  int status, n, flags;

  if (size < 5) return 0;
  memset(&c, 0, sizeof c);
  c.status = (long)(((unsigned)data[0] << 8 | data[1]) % 1000);
  c.answer.op = "fuzz";
  flags = data[2];
  c.answer.expect_success = flags & 1;
  header_len = (size_t)data[3] << 8 | data[4];
  data += 5;
  size -= 5;
  if (header_len > size) header_len = size;
  headers = malloc(header_len + 1);
  FUZZ_CHECK(headers != NULL, "malloc");
  memcpy(headers, data, header_len);
  headers[header_len] = '\0'; /* the transport's block ends at its NUL */
  c.header_text = (flags & 2) ? NULL : headers;
  c.body = (const char *)data + header_len;
  c.body_len = size - header_len;

  lua_pushcfunction(L, push);
  lua_pushlightuserdata(L, &c);
  status = lua_pcall(L, 1, LUA_MULTRET, 0);
  FUZZ_CHECK(status == LUA_OK, "an answer never raises");
  n = lua_gettop(L) - 1;
  if (n == 1) {
    FUZZ_CHECK(c.answer.expect_success && lua_toboolean(L, 2) && lua_isboolean(L, 2),
               "one result: true, when success is expected");
    FUZZ_CHECK(c.status >= 200 && c.status < 300, "true only for 2xx");
  } else if (n == 2) {
    size_t len;
    const char *body = lua_tolstring(L, 2, &len);
    FUZZ_CHECK(!c.answer.expect_success, "a body only when any JSON is good");
    FUZZ_CHECK(body && len == c.body_len && memcmp(body, c.body, len) == 0, "the body as received");
    FUZZ_CHECK(lua_istable(L, 3), "info is a table");
    lua_getfield(L, 3, "headers");
    FUZZ_CHECK(lua_istable(L, -1), "a good answer's info has its headers");
    lua_getfield(L, 3, "request_id");
    check_text(L, -1, 1);
  } else {
    FUZZ_CHECK(n == 4, "a failure is nil, message, code, info");
    FUZZ_CHECK(lua_isnil(L, 2) && lua_type(L, 3) == LUA_TSTRING && lua_type(L, 4) == LUA_TSTRING &&
                   lua_istable(L, 5),
               "a failure's types");
    FUZZ_CHECK(strncmp(lua_tostring(L, 3), "fuzz: ", 6) == 0, "the message starts with the op");
    check_text(L, 3, 1);
    lua_getfield(L, 5, "status");
    FUZZ_CHECK(lua_tointeger(L, -1) == c.status, "info.status is the status");
    lua_getfield(L, 5, "sent");
    FUZZ_CHECK(lua_toboolean(L, -1), "an answer was sent");
    lua_getfield(L, 5, "retryable");
    FUZZ_CHECK(lua_isboolean(L, -1), "retryable is a boolean");
    lua_getfield(L, 5, "error_msg");
    check_text(L, -1, 0);
    lua_getfield(L, 5, "error_code");
    check_text(L, -1, 0);
    lua_getfield(L, 5, "request_id");
    check_text(L, -1, 1);
  }
  free(headers);
  lua_settop(L, 1);
  return 0;
}

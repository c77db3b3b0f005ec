/*
 * fuzz_headers.c - response header handling (src/transfer.c): the bytes a
 * server sends as its header block, handed over line by line as libcurl's
 * header callback gets them, then turned into the table of lower-cased names
 * every caller reads.  Nothing may crash, leak or raise; the table must hold
 * only what the rules allow.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "transfer.h"

/* Small, so that the limit is reached often; the real one is 256 KiB. */
#define FUZZ_HEADER_LIMIT 4096

static int push(lua_State *L) {
  pipeline_push_headers(L, (const char *)lua_touserdata(L, 1));
  return 1;
}

static void check_table(lua_State *L) {
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    size_t nlen, vlen, i;
    const char *name, *value;
    FUZZ_CHECK(lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING,
               "names and values are strings");
    name = lua_tolstring(L, -2, &nlen);
    value = lua_tolstring(L, -1, &vlen);
    FUZZ_CHECK(nlen > 0, "a name is not empty");
    for (i = 0; i < nlen; i++) {
      FUZZ_CHECK(!(name[i] >= 'A' && name[i] <= 'Z'), "a name is lower-case");
      FUZZ_CHECK(name[i] != ':' && name[i] != '\n' && name[i] != '\0',
                 "a name holds no colon, LF or NUL");
    }
    for (i = 0; i < vlen; i++)
      FUZZ_CHECK(value[i] != '\n' && value[i] != '\0', "a value holds no LF or NUL");
    if (vlen > 0) {
      FUZZ_CHECK(value[0] != ' ' && value[0] != '\t', "a value starts trimmed");
      /* trimmed too, but for the ", " joining an empty repeat */
      FUZZ_CHECK(value[vlen - 1] != '\t' &&
                     (value[vlen - 1] != ' ' || (vlen >= 2 && value[vlen - 2] == ',')),
                 "a value ends trimmed");
    }
    lua_pop(L, 1);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_lua();
  pipeline_buffer headers;
  const char *p = (const char *)data, *end = p + size;
  int status;

  memset(&headers, 0, sizeof headers);
  headers.limit = FUZZ_HEADER_LIMIT;
  /* libcurl hands over one line at a time, its line end included */
  while (p < end) {
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    size_t n = lf ? (size_t)(lf - p) + 1 : (size_t)(end - p);
    if (!pipeline_header_line(&headers, p, n)) {
      /* over the limit: libcurl aborts the transfer with a write error */
      FUZZ_CHECK(headers.overflowed, "a refused line is an overflow");
      break;
    }
    FUZZ_CHECK(headers.len <= headers.limit, "the buffer keeps its limit");
    FUZZ_CHECK(headers.data[headers.len] == '\0', "the buffer stays NUL-terminated");
    p += n;
  }

  lua_pushcfunction(L, push);
  lua_pushlightuserdata(L, headers.data);
  status = lua_pcall(L, 1, 1, 0);
  FUZZ_CHECK(status == LUA_OK, "turning headers into a table never raises");
  FUZZ_CHECK(lua_istable(L, -1), "headers are a table");
  check_table(L);
  free(headers.data);
  lua_settop(L, 1);
  return 0;
}

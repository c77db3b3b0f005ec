/*
 * sandbox.c - runs a config file's Lua text where it can do no harm, and
 * reads the files a configuration names without blocking or flooding.
 *
 * A config file is a Lua chunk that returns a table.  It runs in a lua_State
 * of its own (never the host's), whose allocator refuses to hold more than
 * SANDBOX_MEMORY bytes, with a count hook that stops it after
 * SANDBOX_INSTRUCTIONS instructions or SANDBOX_SECONDS seconds, whichever
 * comes first.  It sees no global at all; strings keep a few methods
 * (rep, sub, upper, lower, len, byte, char, reverse, format) but none that
 * match patterns (find, match, gmatch, gsub), whose run time a short
 * pattern can make exponential.  The value it returns is copied into the
 * caller's state: strings, numbers, booleans and tables (SANDBOX_MAX_VALUES
 * values, SANDBOX_MAX_DEPTH levels at most); a function becomes an inert
 * one, so the caller's type checks name it.
 */
#define _POSIX_C_SOURCE 200809L

#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "compat.h"

#define SANDBOX_MEMORY (16 * 1024 * 1024)
#define SANDBOX_INSTRUCTIONS 10000000L
#define SANDBOX_SECONDS 1.0
#define SANDBOX_MAX_VALUES 100000
#define SANDBOX_MAX_DEPTH 32
#define BUDGET_KEY "pipeline.sandbox"

typedef struct {
  size_t used, limit;
  int counted; /* the allocator is ours (not a fallback state's) */
  long instructions, every;
  double started;
  const char *stop; /* why the hook stopped the chunk */
} budget;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  budget *b = ud;
  void *grown;
  if (ptr == NULL) osize = 0; /* then osize tells the kind of object */
  if (nsize == 0) {
    free(ptr);
    b->used -= osize;
    return NULL;
  }
  if (nsize > osize && nsize - osize > b->limit - b->used) return NULL;
  grown = realloc(ptr, nsize);
  if (grown == NULL) return NULL;
  b->used = b->used - osize + nsize;
  return grown;
}

static void budget_hook(lua_State *L, lua_Debug *ar) {
  budget *b;
  (void)ar;
  lua_getfield(L, LUA_REGISTRYINDEX, BUDGET_KEY);
  b = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (b == NULL) return;
  b->instructions += b->every;
  /* a state whose allocator is not ours is measured here instead */
  if (!b->counted && (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 > b->limit) {
    b->stop = "uses too much memory";
    luaL_error(L, "uses too much memory (over %d MiB)", SANDBOX_MEMORY / (1024 * 1024));
  }
  if (b->instructions > SANDBOX_INSTRUCTIONS || now() - b->started > SANDBOX_SECONDS) {
    b->stop = "took too long";
    luaL_error(L, "took too long (endless loop?)");
  }
}

/* Runs in the sandbox state: gives strings their safe methods only. */
static int open_safe_strings(lua_State *L) {
  static const char *const kept[] = {"rep",  "sub",  "upper",   "lower",  "len",
                                     "byte", "char", "reverse", "format", NULL};
  int i, lib;
#if LUA_VERSION_NUM >= 502
  luaL_requiref(L, "string", luaopen_string, 0);
#else
  lua_pushcfunction(L, luaopen_string);
  lua_pushliteral(L, "string");
  lua_call(L, 1, 1);
#endif
  lib = lua_gettop(L);
  lua_newtable(L);
  for (i = 0; kept[i]; i++) {
    lua_getfield(L, lib, kept[i]);
    lua_setfield(L, -2, kept[i]);
  }
  lua_pushliteral(L, "");
  if (lua_getmetatable(L, -1)) {
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
  }
  lua_pop(L, 3);
  lua_pushnil(L);
  lua_setglobal(L, "string"); /* the chunk sees no global anyway */
  return 0;
}

static int inert(lua_State *L) {
  (void)L;
  return 0;
}

/* Copies the value at index i of from onto to; NULL, or why it cannot. */
static const char *copy_value(lua_State *from, int i, lua_State *to, int depth, int *count) {
  if (++*count > SANDBOX_MAX_VALUES) return "returns too many values";
  if (!lua_checkstack(to, 4) || !lua_checkstack(from, 4)) return "returns a table nested too deep";
  switch (lua_type(from, i)) {
    case LUA_TNIL:
      lua_pushnil(to);
      return NULL;
    case LUA_TBOOLEAN:
      lua_pushboolean(to, lua_toboolean(from, i));
      return NULL;
    case LUA_TNUMBER:
#if LUA_VERSION_NUM >= 503
      if (lua_isinteger(from, i)) {
        lua_pushinteger(to, lua_tointeger(from, i));
        return NULL;
      }
#endif
      lua_pushnumber(to, lua_tonumber(from, i));
      return NULL;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(from, i, &len);
      lua_pushlstring(to, s, len);
      return NULL;
    }
    case LUA_TFUNCTION:
      lua_pushcfunction(to, inert);
      return NULL;
    case LUA_TTABLE: {
      int table = lua_gettop(to) + 1;
      if (depth >= SANDBOX_MAX_DEPTH) return "returns a table nested too deep";
      if (i < 0) i = lua_gettop(from) + i + 1;
      lua_newtable(to);
      lua_pushnil(from);
      while (lua_next(from, i) != 0) {
        const char *why = copy_value(from, -2, to, depth + 1, count);
        if (why == NULL) why = copy_value(from, -1, to, depth + 1, count);
        if (why != NULL) {
          lua_pop(from, 2);
          return why;
        }
        if (lua_isnil(to, -2)) return "returns a table with a nil key"; /* cannot happen */
        lua_rawset(to, table);
        lua_pop(from, 1);
      }
      return NULL;
    }
    default:
      return "returns a value that is not data";
  }
}

/* core.run_config(text, chunkname)
 *   -> value | nil, stage, message   (stage: "syntax" or "run") */
int pipeline_run_config(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  const char *name = luaL_checkstring(L, 2);
  budget b;
  lua_State *S;
  int status, base = lua_gettop(L), count = 0;
  const char *why;

  memset(&b, 0, sizeof b);
  b.limit = SANDBOX_MEMORY;
  b.counted = 1;
  S = lua_newstate(capped_alloc, &b);
  if (S == NULL) {
    /* LuaJIT on 64-bit takes no allocator of ours: its own, measured by the hook */
    S = luaL_newstate();
    b.counted = 0;
  }
  if (S == NULL) return luaL_error(L, "not enough memory");
  b.every = b.counted ? 100 : 1;
  lua_pushlightuserdata(S, &b);
  lua_setfield(S, LUA_REGISTRYINDEX, BUDGET_KEY);
  lua_pushcfunction(S, open_safe_strings);
  if (lua_pcall(S, 0, 0, 0) != 0) {
    lua_close(S);
    return luaL_error(L, "not enough memory");
  }

#if LUA_VERSION_NUM >= 502
  status = luaL_loadbufferx(S, text, len, name, "t");
#else
  status = len > 0 && text[0] == LUA_SIGNATURE[0]
               ? (lua_pushliteral(S, "attempt to load a binary chunk"), LUA_ERRSYNTAX)
               : luaL_loadbuffer(S, text, len, name);
#endif
  if (status != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "syntax");
    lua_pushstring(L, status == LUA_ERRMEM ? "too large" : lua_tostring(S, -1));
    lua_close(S);
    return 3;
  }
  /* no globals: an empty environment */
  lua_newtable(S);
#if LUA_VERSION_NUM >= 502
  lua_setupvalue(S, -2, 1);
#else
  lua_setfenv(S, -2);
#endif
  b.started = now();
  lua_sethook(S, budget_hook, LUA_MASKCOUNT, (int)b.every);
  status = lua_pcall(S, 0, 1, 0);
  lua_sethook(S, NULL, 0, 0);
  if (status != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "run");
    /* (a refused allocation may have succeeded after an emergency
     * collection: only the status tells a memory error) */
    const char *message =
        lua_type(S, -1) == LUA_TSTRING ? lua_tostring(S, -1) : "an error that is not a string";
    /* (Lua 5.3's string.rep says "not enough memory for buffer allocation"
     * in an ordinary error) */
    if (b.stop == NULL && (status == LUA_ERRMEM || strstr(message, "not enough memory") != NULL))
      lua_pushfstring(L, "uses too much memory (over %d MiB)", SANDBOX_MEMORY / (1024 * 1024));
    else
      lua_pushstring(L, message);
    lua_close(S);
    return 3;
  }
  why = copy_value(S, -1, L, 0, &count);
  lua_close(S);
  if (why != NULL) {
    lua_settop(L, base);
    lua_pushnil(L);
    lua_pushliteral(L, "run");
    lua_pushstring(L, why);
    return 3;
  }
  return 1;
}

/* core.read_file(path, limit) -> text | nil, message, kind
 * Reads a regular file of at most limit bytes, without blocking: a FIFO, a
 * device (/dev/zero), a folder or a larger file is refused (kind "type" or
 * "size"); kind "absent" when there is no such file. */
int pipeline_read_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer limit = luaL_checkinteger(L, 2);
  struct stat st;
  luaL_Buffer buffer;
  size_t total = 0;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    int absent = errno == ENOENT;
    luaL_fileresult(L, 0, path); /* nil, "path: why", errno */
    lua_pop(L, 1);
    lua_pushstring(L, absent ? "absent" : "open");
    return 3;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)limit) {
    int regular = S_ISREG(st.st_mode);
    close(fd);
    lua_pushnil(L);
    if (!regular)
      lua_pushfstring(L, "%s: not a regular file", path);
    else
      lua_pushfstring(L, "%s: larger than %d bytes", path, (int)limit);
    lua_pushstring(L, regular ? "size" : "type");
    return 3;
  }
  luaL_buffinit(L, &buffer);
  for (;;) {
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    total += (size_t)n;
    if (total > (size_t)limit) break; /* it grew since: refused below */
    luaL_addlstring(&buffer, chunk, (size_t)n);
  }
  close(fd);
  luaL_pushresult(&buffer);
  if (total > (size_t)limit) {
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: larger than %d bytes", path, (int)limit);
    lua_pushliteral(L, "size");
    return 3;
  }
  return 1;
}

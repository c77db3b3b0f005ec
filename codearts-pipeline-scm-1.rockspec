rockspec_format = "3.0"
package = "codearts-pipeline"
version = "scm-1"

source = {
  url = "git+https://github.com/codearts-pipeline/codearts-pipeline.git",
}

description = {
  summary = "Drive the Huawei Cloud CodeArts Pipeline API from Lua (C on libcurl)",
  detailed = [[
    Retry, start, stop and follow CodeArts Pipeline runs from Lua: a small C
    core on libcurl (kept-alive connections, strict timeouts, no redirects,
    AK/SK signing with libcrypto) and a Lua wrapper for configuration,
    credentials, the run lifecycle and one error rule.
  ]],
  homepage = "https://github.com/codearts-pipeline/codearts-pipeline",
  license = "MIT",
  labels = { "huaweicloud", "codearts", "ci", "curl" },
}

dependencies = {
  "lua >= 5.1", -- 5.1, 5.2, 5.3, 5.4 and LuaJIT 2.1: CI runs 5.1, 5.3, 5.4 and LuaJIT
  "lua-cjson >= 2.1",
}

-- Set CURL_DIR (and OPENSSL_DIR) when the headers and libraries are not in
-- the system's usual places: luarocks make CURL_DIR=/opt/curl
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
  OPENSSL = { header = "openssl/hmac.h", library = "crypto" },
}

build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    CMAKE_INCLUDE_PATH = "$(CURL_INCDIR);$(OPENSSL_INCDIR)",
    CMAKE_LIBRARY_PATH = "$(CURL_LIBDIR);$(OPENSSL_LIBDIR)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
    BUILD_TESTING = "OFF",
    -- LuaRocks installs only the module and the command; the static library
    -- for hosts comes from a CMake install.
    PIPELINE_STATIC = "OFF",
    PIPELINE_INSTALL_BIN = "OFF",
  },
  -- The command, wrapped by LuaRocks so it finds the tree's modules.
  install = {
    bin = { ["codearts-pipeline"] = "bin/codearts-pipeline" },
    -- shell completion, under the rock's conf folder
    conf = { ["bash-completion/completions/codearts-pipeline"] = "completion/codearts-pipeline.bash",
      ["zsh/site-functions/_codearts-pipeline"] = "completion/_codearts-pipeline" },
  },
}

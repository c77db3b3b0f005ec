rockspec_format = "3.0"
package = "codearts-pipeline"
version = "0.1.0-1"

source = {
  url = "git+https://github.com/codearts-pipeline/codearts-pipeline.git",
  tag = "v0.1.0",
}

description = {
  summary = "Drive the Huawei Cloud CodeArts Pipeline API from Lua (C on libcurl)",
  detailed = [[
    Retry, start, stop and follow CodeArts Pipeline runs from Lua: a small C
    core on libcurl (kept-alive connections, strict timeouts, no redirects,
    AK/SK signing with libcrypto) and a Lua wrapper for configuration,
    credentials, the run lifecycle and one error rule.

    Building needs CMake, a C compiler, and libcurl and OpenSSL's libcrypto
    with their headers: on Debian and Ubuntu, apt-get install cmake
    libcurl4-openssl-dev libssl-dev. For a libcurl or an OpenSSL elsewhere,
    pass CURL_DIR=/opt/curl (or CURL_INCDIR and CURL_LIBDIR) and OPENSSL_DIR
    to luarocks.
  ]],
  homepage = "https://github.com/codearts-pipeline/codearts-pipeline",
  license = "MIT",
  labels = { "huaweicloud", "codearts", "ci", "curl" },
}

dependencies = {
  "lua >= 5.1", -- 5.1, 5.2, 5.3, 5.4 and LuaJIT 2.1: CI runs 5.1, 5.3, 5.4 and LuaJIT
  "lua-cjson >= 2.1",
}

-- LuaRocks checks the libraries only: its header check looks in <dir>/include
-- alone, where Debian and Ubuntu do not keep curl/curl.h (they keep it in
-- include/<multiarch>).  CMake's FindCURL and FindOpenSSL find the headers,
-- the folders LuaRocks settled on (CURL_DIR, CURL_INCDIR, ... when given)
-- searched first.
external_dependencies = {
  CURL = { library = "curl" },
  OPENSSL = { library = "crypto" },
}

build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    PIPELINE_CURL_INCDIR = "$(CURL_INCDIR)",
    PIPELINE_CURL_LIBDIR = "$(CURL_LIBDIR)",
    PIPELINE_OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
    PIPELINE_OPENSSL_LIBDIR = "$(OPENSSL_LIBDIR)",
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

-- luarocks test: builds the module for the Lua LuaRocks runs and runs the
-- busted specs against it (needs busted and python3; see tests/luarocks.lua).
test = {
  type = "command",
  script = "tests/luarocks.lua",
}

-- The version lives in one place, CMakeLists.txt's project(... VERSION x.y.z),
-- which compiles it into the core; everything that shows or ships a version
-- must agree: pipeline._VERSION, `codearts-pipeline --version`, the release
-- rockspec (and its tag), the CHANGELOG's newest version.  The release
-- rockspec is the development one with a version and a tag, nothing else.
local compat = require("pipeline.compat")
local core = require("pipeline.core")
local pipeline = require("pipeline")
local support = require("support")

local ROOT = support.ROOT

local function read(path)
  return assert(support.read_file(ROOT .. "/" .. path))
end

local VERSION = read("CMakeLists.txt"):match("project%(codearts%-pipeline VERSION (%d+%.%d+%.%d+)")

-- A rockspec's fields, as LuaRocks reads them (a chunk setting globals).
local function rockspec(path)
  local fields = {}
  assert(compat.load(read(path), "@" .. path, fields))()
  return fields
end

-- The names of the files in ROOT/dir matching the Lua pattern.
local function files(dir, pattern)
  local found = {}
  local pipe = assert(io.popen("ls -1 " .. support.quote(ROOT .. "/" .. dir)))
  for name in pipe:lines() do
    if name:match(pattern) then found[#found + 1] = name end
  end
  pipe:close()
  return found
end

describe("the version", function()
  it("is x.y.z in CMakeLists.txt", function()
    assert.is_string(VERSION)
  end)

  it("is the core's and the library's", function()
    assert.equal(VERSION, core._VERSION)
    assert.equal(VERSION, pipeline._VERSION)
  end)

  it("is what codearts-pipeline --version prints", function()
    local home = support.temp_dir()
    local out, status = support.capture(support.command({ support.LUA, ROOT .. "/bin/codearts-pipeline", "--version" },
      support.lua_environment({ PATH = os.getenv("PATH"), HOME = home })))
    support.remove(home)
    assert.equal(0, status, out)
    assert.equal(("codearts-pipeline %s (%s)\n"):format(VERSION, _VERSION), out)
  end)

  it("has a release rockspec at tag v<version>, the development rockspec's twin", function()
    -- the newest revision of this version's rockspec (a revision fixes packaging only)
    local name, newest = nil, 0
    for _, file in ipairs(files("rockspecs", "%.rockspec$")) do
      local revision = tonumber(file:match("^codearts%-pipeline%-" .. VERSION:gsub("%.", "%%.") .. "%-(%d+)%.rockspec$"))
      if revision and revision > newest then name, newest = file, revision end
    end
    assert.is_string(name, "no rockspecs/codearts-pipeline-" .. VERSION .. "-N.rockspec")
    local release = rockspec("rockspecs/" .. name)
    local scm = rockspec("codearts-pipeline-scm-1.rockspec")
    assert.equal("codearts-pipeline", release.package)
    assert.equal(VERSION .. "-" .. newest, release.version)
    assert.equal("v" .. VERSION, release.source.tag)
    assert.equal("scm-1", scm.version)
    assert.is_nil(scm.source.tag)
    release.version, scm.version, release.source.tag = nil, nil, nil
    assert.same(scm, release)
  end)

  it("is the CHANGELOG's newest version", function()
    local newest = read("CHANGELOG.md"):match("\n## %[(%d+%.%d+%.%d+)%]")
    assert.equal(VERSION, newest)
  end)
end)

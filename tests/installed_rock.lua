--- Checks a LuaRocks tree holding the rock, as its user meets it:
--   lua tests/installed_rock.lua TREE VERSION
-- run (by scripts/check-rock) from a folder outside the checkout, with the
-- search paths and PATH of `luarocks --tree TREE path`.  The modules must
-- load from TREE; a retry from the library, and one from TREE's
-- codearts-pipeline command, must reach the simulator; the command's
-- --version must name VERSION.
local tree, version = assert(arg[1], "usage: installed_rock.lua TREE VERSION"), assert(arg[2])

-- tests/ of the checkout for the simulator's helpers, after the tree's paths
local tests = assert(arg[0]:match("^(.*)/[^/]*$"), "run this file by its path")
package.path = package.path .. ";" .. tests .. "/?.lua"

local pipeline = require("pipeline")
local simulator = require("sim")
local support = require("support")

--- The file require(name) loads from path (a package.path-like list).
local function found(name, path)
  for template in path:gmatch("[^;]+") do
    local file = template:gsub("%?", (name:gsub("%.", "/")))
    if support.read_file(file) then return file end
  end
end

local function from_tree(name, path)
  local file = found(name, path)
  assert(file and file:sub(1, #tree + 1) == tree .. "/", name .. " is not loaded from the tree but from " .. tostring(file))
  return file
end

-- every module of the checkout's lua/pipeline, subfolders included (the
-- command line's pipeline.cli.*): the tree holds each one
local listing = assert(io.popen("cd " .. support.quote(tests .. "/../lua") .. " && find pipeline -name '*.lua'"))
local modules = 0
for file in listing:lines() do
  from_tree((file:gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")), package.path)
  modules = modules + 1
end
listing:close()
assert(modules > 10, "no modules found in the checkout's lua/pipeline")
from_tree("pipeline.cli.args", package.path)
local core_file = from_tree("pipeline.core", package.cpath)
assert(pipeline._VERSION == version, ("pipeline._VERSION is %s, not %s"):format(pipeline._VERSION, version))

local sim = simulator.start()
local home = support.temp_dir()
local ok, failure = pcall(function()
  -- the library
  local run = sim:failed_run()
  local retried, message, code = pipeline.retry(simulator.PROJECT, simulator.PIPELINE, run, simulator.TOKEN,
    { endpoint = sim.url })
  assert(retried == true, ("pipeline.retry: %s (%s)"):format(tostring(message), tostring(code)))
  assert(#sim:recorded("PUT", simulator.retry_path(run)) == 1, "the simulator did not receive one retry")
  assert(sim:run_state(run).status == "RUNNING", "the run is not running again")

  -- the command LuaRocks installed, found on PATH
  local program = support.which("codearts-pipeline")
  assert(program == tree .. "/bin/codearts-pipeline", "codearts-pipeline on PATH is " .. program)
  local env = {
    PATH = os.getenv("PATH"), HOME = home, LUA_PATH = os.getenv("LUA_PATH"), LUA_CPATH = os.getenv("LUA_CPATH"),
    CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = simulator.PROJECT,
    CODEARTS_PIPELINE_TOKEN = simulator.TOKEN,
  }
  local out, status = support.capture(support.command({ program, "--version" }, env))
  assert(status == 0 and out == ("codearts-pipeline %s (%s)\n"):format(version, _VERSION),
    ("codearts-pipeline --version: exit %s, %q"):format(tostring(status), out))
  run = sim:failed_run()
  out, status = support.capture(support.command({ program, "retry", simulator.PIPELINE, run }, env))
  assert(status == 0, ("codearts-pipeline retry: exit %s, %q"):format(tostring(status), out))
  assert(#sim:recorded("PUT", simulator.retry_path(run)) == 1, "the command's retry did not reach the simulator")
  assert(sim:run_state(run).status == "RUNNING", "the command's retry did not start the run again")
end)
sim:stop()
support.remove(home)
assert(ok, failure)
print(("installed rock OK on %s: pipeline %s from %s; the command's --version and retry OK"):format(
  jit and jit.version or _VERSION, pipeline._VERSION, core_file))

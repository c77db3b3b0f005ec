-- The embedding examples: static binaries with the Lua sources compiled in
-- (examples/host/host.c) and the thread test (tests/embed/threads.c), run
-- against the simulator with no Lua search path at all.
local simulator = require("sim")
local support = require("support")

local BUILD = os.getenv("PIPELINE_BUILD_DIR") or "build"
if BUILD:sub(1, 1) ~= "/" then BUILD = support.ROOT .. "/" .. BUILD end
local HOST = BUILD .. "/examples/host/pipeline-host"
local THREADS = BUILD .. "/examples/host/pipeline-threads"
local PIPELINE = simulator.PIPELINE
local unpack = table.unpack or unpack

local function exists(path)
  local file = io.open(path, "rb")
  if file then file:close() end
  return file ~= nil
end

-- Runs a binary from / with only the account in its environment; returns
-- its output (stdout and stderr) and exit status.
local function run_binary(sim, binary, args)
  local argv = { binary }
  for _, arg in ipairs(args) do argv[#argv + 1] = arg end
  return support.capture("cd / && " .. support.command(argv, { HOME = "/nonexistent",
    CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = simulator.PROJECT,
    CODEARTS_PIPELINE_TOKEN = simulator.TOKEN }))
end

local describe_built = (exists(HOST) and exists(THREADS)) and describe or pending

describe_built("embedding", function()
  local sim = simulator.fixture()

  -- count FAILED runs with the plan's fields; their ids.
  it("retries a run from a static host with no Lua files on its path", function()
    local id = sim:failed_run()
    local output, status = run_binary(sim, HOST, { "retry", PIPELINE, id })
    assert.equal(0, status, output)
    assert.matches("retried " .. id, output, 1, true)
    assert.equal("RUNNING", sim:run_state(id).status)
  end)

  it("interleaves coroutines whose sleep yields to the host's scheduler", function()
    local ids = sim:add_runs(3, { polls = 3, outcome = "COMPLETED" })
    local output, status = run_binary(sim, HOST, { "coroutines", PIPELINE, unpack(ids) })
    assert.equal(0, status, output)
    assert.matches("host: 3 jobs, 0 failed", output, 1, true)
    -- every job polled before any job finished: they ran side by side
    local first_finish = output:find("finished", 1, true)
    for i = 1, 3 do
      local poll = output:find(("job %d: RUNNING"):format(i), 1, true)
      assert.is_truthy(poll and poll < first_finish, output)
    end
  end)

  it("advances calls with client:step(0) without blocking a frame, even during a slow request", function()
    local ids = sim:add_runs(3, { polls = 2, outcome = "COMPLETED" })
    sim:fault({ kind = "slow", delay = 1, run_id = ids[2] })
    local output, status = run_binary(sim, HOST, { "step", PIPELINE, unpack(ids) })
    assert.equal(0, status, output)
    local frames, longest = output:match("host: (%d+) frames, longest step ([%d.]+) ms, 0 failed")
    assert.is_truthy(frames, output)
    -- the slow request took a second; a frame never waited for it
    assert.is_true(tonumber(frames) > 20, output)
    assert.is_true(tonumber(longest) < 250, output)
  end)

  it("serves several lua_States on several threads at once", function()
    local ids = sim:add_runs(24)
    local args = { "4", PIPELINE }
    for _, id in ipairs(ids) do args[#args + 1] = id end
    local output, status = run_binary(sim, THREADS, args)
    assert.equal(0, status, output)
    assert.matches("threads: 4 ran, 0 failed", output, 1, true)
    for _, id in ipairs(ids) do assert.equal("RUNNING", sim:run_state(id).status) end
  end)

  it("compiles every Lua module of lua/pipeline, subfolders included, into the static library", function()
    local embedded = assert(support.read_file(BUILD .. "/generated/embedded_modules.c"))
    local files = support.capture("cd " .. support.quote(support.ROOT .. "/lua") .. " && find pipeline -name '*.lua'")
    local count = 0
    for file in files:gmatch("[^\n]+") do
      local module = file:gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      support.contains(embedded, ('{"%s", "@%s",'):format(module, file))
      count = count + 1
    end
    assert.is_true(count > 10, files)
    support.contains(embedded, '{"pipeline.cli.args", "@pipeline/cli/args.lua",')
  end)
end)

-- Benchmark: prints figures, each with a ratio against a reference measured
-- in the same run (these machines are noisy: no absolute thresholds).
--
--   scripts/bench        (or: lua5.4 bench/bench.lua, with LUA_PATH/LUA_CPATH set)
--
-- 1. keep-alive: N retries on one client against N pipeline.retry calls that
--    each open a new connection;
-- 2. concurrency: N retries against a server answering in 50 ms, one after the
--    other and with retry_many (concurrency 16);
-- 3. memory: Lua heap per client and per 1000 decoded runs.
local pipeline = require("pipeline")
local core = require("pipeline.core")
local simulator = require("sim")

local N = tonumber(os.getenv("BENCH_N")) or 200
local PROJECT, PIPELINE, TOKEN = simulator.PROJECT, simulator.PIPELINE, simulator.TOKEN

local sim = simulator.start()
local function failed_runs(count)
  local ids = {}
  for i = 1, count do
    ids[i] = simulator.new_id()
    sim:add_run({ run_id = ids[i], status = "FAILED" })
  end
  return ids
end

local function timed(fn)
  local started = core.monotonic()
  fn()
  return core.monotonic() - started
end

local function connections()
  local seen, count = {}, 0
  for _, request in ipairs(sim:requests()) do
    if not seen[request.connection] then seen[request.connection], count = true, count + 1 end
  end
  return count
end

local ok, err = pcall(function()
  print(("codearts-pipeline %s, libcurl %s, %s, N = %d"):format(pipeline._VERSION, core.curl_version, _VERSION, N))

  -- 1. keep-alive
  local ids = failed_runs(N)
  sim:clear_requests()
  local fresh = timed(function()
    for _, id in ipairs(ids) do assert(core.retry(PROJECT, PIPELINE, id, TOKEN, { endpoint = sim.url })) end
  end)
  local fresh_connections = connections()
  ids = failed_runs(N)
  sim:clear_requests()
  local client = assert(pipeline.new({ endpoint = sim.url, project_id = PROJECT, token = TOKEN }))
  local kept = timed(function()
    for _, id in ipairs(ids) do assert(client:retry(PIPELINE, id)) end
  end)
  print(("keep-alive:   %d retries, one client %.3f s (%d connection), new connection each %.3f s (%d): %.2fx")
    :format(N, kept, connections(), fresh, fresh_connections, fresh / kept))

  -- 2. concurrency, against a server that takes 50 ms per answer
  local M = math.min(N, 100)
  sim:fault({ kind = "slow", delay = 0.05, times = 0 })
  ids = failed_runs(M)
  local sequential = timed(function()
    for _, id in ipairs(ids) do assert(client:retry(PIPELINE, id)) end
  end)
  ids = failed_runs(M)
  local list = {}
  for i, id in ipairs(ids) do list[i] = { PIPELINE, id } end
  local concurrent = timed(function()
    for _, result in ipairs(client:retry_many(list, { concurrency = 16 })) do assert(result.ok, result.message) end
  end)
  print(("concurrency:  %d retries at 50 ms each, sequential %.2f s, retry_many(16) %.2f s: %.1fx")
    :format(M, sequential, concurrent, sequential / concurrent))
  sim:control("DELETE", "faults")

  -- 3. memory
  collectgarbage()
  collectgarbage()
  local before = collectgarbage("count")
  local clients = {}
  for i = 1, 100 do
    clients[i] = assert(pipeline.new({ endpoint = sim.url, project_id = PROJECT, token = TOKEN }))
  end
  collectgarbage()
  local per_client = (collectgarbage("count") - before) / 100
  for _, c in ipairs(clients) do c:close() end
  local run = client:detail(PIPELINE, ids[1])
  collectgarbage()
  before = collectgarbage("count")
  local runs = {}
  local text = require("cjson").encode(run)
  for i = 1, 1000 do runs[i] = require("pipeline.json").decode(text) end
  collectgarbage()
  local per_thousand = (collectgarbage("count") - before) * 1000 / #runs
  print(("memory:       %.1f KiB of Lua heap per client (plus libcurl's handle), %.0f KiB per 1000 decoded runs "
    .. "(%d bytes of JSON each: %.1fx)"):format(per_client, per_thousand, #text, per_thousand * 1024 / 1000 / #text))
  client:close()
end)
sim:stop()
if not ok then error("bench: " .. tostring(err), 0) end

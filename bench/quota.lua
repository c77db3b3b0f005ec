-- Benchmark of the quota handling: N retries through retry_many at
-- concurrency 64 against the simulator's quota mode (Q requests per second
-- per token), with the client option `rate` (at the quota, and a little
-- below it) and with adaptive concurrency alone.  Prints, for each, the time taken, the throughput against the quota
-- (a ratio, no threshold) and the count of 429 answers received.
--
--   scripts/bench        (or: lua5.4 bench/quota.lua, with LUA_PATH/LUA_CPATH set)
local pipeline = require("pipeline")
local core = require("pipeline.core")
local simulator = require("sim")

local N = tonumber(os.getenv("BENCH_QUOTA_N")) or 1000
local QUOTA = tonumber(os.getenv("BENCH_QUOTA")) or 200
local CONCURRENCY = 64
local PROJECT, PIPELINE, TOKEN = simulator.PROJECT, simulator.PIPELINE, simulator.TOKEN

local sim = simulator.start({ "--quota", tostring(QUOTA) })

local function measure(label, extra)
  local list = {}
  for i = 1, N do list[i] = { PIPELINE, sim:failed_run() } end
  local throttled = 0
  local options = { endpoint = sim.url, project_id = PROJECT, token = TOKEN, on_event = function(event)
    if event.type == "response" and event.status == 429 then throttled = throttled + 1 end
  end }
  for name, value in pairs(extra) do options[name] = value end
  local client = assert(pipeline.new(options))
  core.sleep(1.1) -- a fresh quota window
  local started = core.monotonic()
  local results = client:retry_many(list, { concurrency = CONCURRENCY })
  local took = core.monotonic() - started
  client:close()
  local failed = 0
  for _, result in ipairs(results) do
    if not result.ok then failed = failed + 1 end
  end
  print(("quota %-28s %d retries in %.2fs: %.0f/s = %.2f x the quota of %d/s; 429 answers received: %d; failed: %d")
    :format(label, N, took, N / took, N / took / QUOTA, QUOTA, throttled, failed))
end

measure(("rate %d:"):format(QUOTA), { rate = QUOTA })
measure(("rate %d (0.9 x the quota):"):format(QUOTA * 0.9), { rate = QUOTA * 0.9 })
measure("adaptive concurrency alone:", {})
sim:stop()

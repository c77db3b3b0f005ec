-- What waiting costs a host: 32 requests parked on a server that answers
-- after 2 s, driven four ways; prints the process CPU time (os.clock) spent
-- over the wait next to the wall time.  Figures only, nothing asserted.
--
--   scripts/bench (which runs this after bench/bench.lua)
local pipeline = require("pipeline")
local core = require("pipeline.core")
local simulator = require("sim")

local COUNT, DELAY, FRAME = 32, 2, 1 / 60

local sim = simulator.start()
local ids = {}
for i = 1, COUNT do ids[i] = sim:add_run({ status = "RUNNING" }) end

local function new_client()
  return assert(pipeline.new({ endpoint = sim.url, project_id = simulator.PROJECT, token = simulator.TOKEN }))
end

-- The work: every run's detail at once, each held DELAY s by the server.
local function details(client)
  return client:map(ids, function(id) return client:detail(simulator.PIPELINE, id) end, { concurrency = COUNT })
end

local function check(results)
  for i, result in ipairs(results) do
    assert(result[1] and result[1].status, "detail " .. i .. " failed: " .. tostring(result[2]))
  end
  assert(#results == COUNT)
end

-- Runs drive(client) with the server slow; returns CPU and wall seconds.
local function measure(drive)
  sim:fault({ kind = "slow", delay = DELAY, path = "detail", times = COUNT })
  local client = new_client()
  local cpu, wall = os.clock(), core.monotonic()
  check(drive(client))
  cpu, wall = os.clock() - cpu, core.monotonic() - wall
  client:close()
  return cpu, wall
end

local ways = {}

ways[#ways + 1] = { "blocking map (waits inside libcurl)", function(client) return details(client) end }

ways[#ways + 1] = { "step(0) polled without pause", function(client)
  local job = client:start(details, client)
  while client:step(0) > 0 do end
  return job:result()
end }

ways[#ways + 1] = { ("step(0) once per %.1f ms frame"):format(FRAME * 1000), function(client)
  local job = client:start(details, client)
  while client:step(0) > 0 do core.sleep(FRAME) end
  return job:result()
end }

local has_luv = pcall(require, "luv")
if has_luv then
  local luv_host = require("luv_host") -- tests/luv_host.lua, as tests/eventloop_spec.lua uses it
  ways[#ways + 1] = { "sockets and timers on a luv loop", function(client)
    local host = luv_host.run(client)
    local job = client:start(details, client)
    local seen = host.go()
    assert(#seen.errors == 0 and not seen.gave_up, table.concat(seen.errors, "\n"))
    return job:result()
  end }
end

print(("idle CPU: %d requests parked %d s on the server (process CPU seconds over the wait)"):format(COUNT, DELAY))
local figures = {}
for _, way in ipairs(ways) do
  local cpu, wall = measure(way[2])
  figures[way[1]] = cpu
  print(("  %-38s cpu %6.3f s   wall %5.2f s"):format(way[1], cpu, wall))
end
if has_luv then
  local polled, looped = figures["step(0) polled without pause"], figures["sockets and timers on a luv loop"]
  print(("  step(0) polling / sockets and timers: %.0fx the CPU"):format(polled / math.max(looped, 1e-3)))
else
  print("  (lua-luv not installed: no figure for sockets and timers)")
end
sim:stop()

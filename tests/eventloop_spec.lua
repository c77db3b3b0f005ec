-- Started calls on a host's event loop (issue 15): client:use_loop hands the
-- host libcurl's sockets and one timer; the host calls socket_ready and
-- timeout.  A luv loop in this process, the luv example and the C poll(2)
-- host as child processes, all against the simulator's slow and dropped-
-- connection faults; and the misbehaving hosts: a socket reported ready
-- after the client stopped using it, callbacks that raise, a client or a
-- batch closed from inside a callback.
local pipeline = require("pipeline")
local simulator = require("sim")
local support = require("support")

local has_luv, uv = pcall(require, "luv")
local PROJECT, PIPELINE, TOKEN = simulator.PROJECT, simulator.PIPELINE, simulator.TOKEN
local BUILD = os.getenv("PIPELINE_BUILD_DIR") or "build"
if BUILD:sub(1, 1) ~= "/" then BUILD = support.ROOT .. "/" .. BUILD end
local HOST = BUILD .. "/examples/host/pipeline-host"
local LIMIT = 30 -- seconds a loop may run before a case gives up

local describe_luv = has_luv and describe or pending

-- Runs client's started calls on a luv loop until none is left (or LIMIT).
-- hooks.watch(fd, what) and hooks.timer(seconds) run before the host's own
-- handling; a hook returning true skips it.  Returns what happened: errors
-- (raised by the client's methods), stopped (fds told to stop), timeouts
-- (timer firings), watched (fds still watched at the end), timer_armed.
local function run_on_luv(client, hooks)
  hooks = hooks or {}
  local seen = { errors = {}, stopped = {}, timeouts = 0, watched = {} }
  local polls, timer = {}, uv.new_timer()
  local function advance(method, ...)
    local ok, left = pcall(method, client, ...)
    if not ok then
      seen.errors[#seen.errors + 1] = tostring(left)
      -- a job's error ends every call: nothing is left to wait for
      if not client._runner or client._runner:is_closed() then uv.stop() end
    elseif left == 0 then
      uv.stop()
    end
  end
  client:use_loop({
    watch = function(fd, what)
      if hooks.watch and hooks.watch(fd, what) then return end
      seen.watched[fd] = what
      if not what then
        seen.stopped[#seen.stopped + 1] = fd
        if polls[fd] then polls[fd]:stop() polls[fd]:close() polls[fd] = nil end
        return
      end
      polls[fd] = polls[fd] or uv.new_socket_poll(fd)
      polls[fd]:start(what, function(err, events)
        local ready = (not err and events) and ((events:find("r") and "r" or "") .. (events:find("w") and "w" or "")) or ""
        advance(client.socket_ready, fd, ready ~= "" and ready or "rw")
      end)
    end,
    timer = function(seconds)
      if hooks.timer and hooks.timer(seconds) then return end
      seen.timer_armed = seconds ~= nil
      timer:stop()
      if seconds then
        timer:start(math.ceil(seconds * 1000), 0, function()
          seen.timeouts = seen.timeouts + 1
          advance(client.timeout)
        end)
      end
    end,
  })
  seen.advance = advance
  seen.go = function(extra_handles)
    local give_up = uv.new_timer()
    give_up:start(LIMIT * 1000, 0, function() seen.gave_up = true uv.stop() end)
    uv.run("default")
    for _, handle in ipairs({ give_up, timer }) do handle:stop() handle:close() end
    for _, handle in ipairs(extra_handles or {}) do handle:stop() handle:close() end
    for fd, poll in pairs(polls) do poll:stop() poll:close() polls[fd] = nil end
    uv.run("nowait") -- the closes
    for fd, what in pairs(seen.watched) do if not what then seen.watched[fd] = nil end end
    return seen
  end
  return seen
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

describe_luv("client:use_loop on a luv loop", function()
  local sim = simulator.fixture()

  local function new_client()
    return assert(pipeline.new({ endpoint = sim.url, project_id = PROJECT, token = TOKEN }))
  end

  local function runs(n, plan)
    local ids = {}
    for i = 1, n do
      local run = { status = "FAILED", polls = 2, outcome = "COMPLETED" }
      for k, v in pairs(plan or {}) do run[k] = v end
      ids[i] = sim:add_run(run)
    end
    return ids
  end

  it("runs started calls, nested *_many calls included, through slow and dropped connections", function()
    local ids = runs(5)
    sim:fault({ kind = "slow", delay = 1, run_id = ids[1] })
    sim:fault({ kind = "close", path = "detail", run_id = ids[4] })
    local client = new_client()
    local host = run_on_luv(client)
    local many = client:start("retry_many", { { PIPELINE, ids[1] }, { PIPELINE, ids[2] } })
    local waited = client:start("retry_and_wait_many", { { PIPELINE, ids[3] }, { PIPELINE, ids[4] } },
      { interval = 0.05 })
    local one = client:start("retry_and_wait", PIPELINE, ids[5], { interval = 0.05 })
    local seen = host.go()
    assert.is_nil(seen.gave_up)
    assert.same({}, seen.errors)
    assert.is_true(many.done and waited.done and one.done)
    local retried = many:result()
    assert.is_true(retried[1].ok and retried[2].ok)
    assert.equal("RUNNING", sim:run_state(ids[1]).status)
    assert.equal("RUNNING", sim:run_state(ids[2]).status)
    local followed = waited:result()
    assert.equal("COMPLETED", followed[1].status)
    assert.equal("COMPLETED", followed[2].status)
    assert.equal("COMPLETED", (one:result()))
    -- every socket the client used was let go, and its timer cancelled
    client:close()
    assert.equal(0, count(seen.watched))
    assert.is_false(seen.timer_armed)
  end)

  it("does not wake the host while requests wait on a slow server", function()
    local ids = runs(8)
    local list = {}
    for i, id in ipairs(ids) do
      list[i] = { PIPELINE, id }
      sim:fault({ kind = "slow", delay = 1.5, run_id = id })
    end
    local client = new_client()
    local host = run_on_luv(client)
    local job = client:start("retry_many", list, { concurrency = 8 })
    local seen = host.go()
    assert.same({}, seen.errors)
    for _, result in ipairs(job:result()) do assert.is_true(result.ok) end
    -- polling every 10 ms, as a nested run did before, would be 150 wake-ups
    assert.is_true(seen.timeouts < 40, "timer fired " .. seen.timeouts .. " times")
    client:close()
  end)

  it("ignores sockets reported ready after the client stopped using them", function()
    local ids = runs(3)
    sim:fault({ kind = "close", path = "detail", run_id = ids[1] })
    local client = new_client()
    local stale = {}
    local host = run_on_luv(client, { watch = function(fd, what)
      if not what then stale[fd] = true end
    end })
    -- a sloppy host: every 5 ms it reports every fd it was ever told to stop
    -- watching as ready, whatever socket has that number now
    local sloppy = uv.new_timer()
    sloppy:start(5, 5, function()
      for fd in pairs(stale) do host.advance(client.socket_ready, fd, "rw") end
    end)
    local job = client:start("retry_and_wait_many", { { PIPELINE, ids[1] }, { PIPELINE, ids[2] }, { PIPELINE, ids[3] } },
      { interval = 0.05 })
    local seen = host.go({ sloppy })
    assert.same({}, seen.errors)
    for _, result in ipairs(job:result()) do assert.equal("COMPLETED", result.status) end
    client:close()
    for fd in pairs(stale) do assert.equal(0, client:socket_ready(fd, "r")) end
  end)

  it("raises a watch callback's error from the client's method and still finishes every call", function()
    local ids = runs(2)
    local client = new_client()
    local raised = 0
    local host = run_on_luv(client, { watch = function(_, what)
      if what and raised < 2 then
        raised = raised + 1
        error("host watch broke")
      end
    end })
    local job = client:start("retry_and_wait_many", { { PIPELINE, ids[1] }, { PIPELINE, ids[2] } }, { interval = 0.05 })
    local seen = host.go()
    assert.is_nil(seen.gave_up)
    assert.is_true(#seen.errors >= 1)
    for _, err in ipairs(seen.errors) do
      assert.matches("a callback of the host's loop raised: .*host watch broke", err)
    end
    for _, result in ipairs(job:result()) do assert.equal("COMPLETED", result.status) end
    client:close()
  end)

  it("refuses socket_ready and timeout from inside a callback, and goes on", function()
    local ids = runs(1)
    local client = new_client()
    local tried = false
    local host = run_on_luv(client, { watch = function(fd, what)
      if what and not tried then
        tried = true
        client:socket_ready(fd, what) -- wrong: from inside the callback
      end
    end })
    local job = client:start("retry_and_wait", PIPELINE, ids[1], { interval = 0.05 })
    local seen = host.go()
    assert.is_nil(seen.gave_up)
    assert.equal(1, #seen.errors)
    assert.matches("a callback of the host's loop raised: .*socket_ready or timeout called from inside a callback",
      seen.errors[1])
    assert.equal("COMPLETED", (job:result()))
    client:close()
  end)

  it("raises a timer callback's error from start, and goes on at the next timeout", function()
    local ids = runs(1)
    local client = new_client()
    local broken = true
    local host = run_on_luv(client, { timer = function()
      if broken then
        broken = false
        error("host timer broke")
      end
    end })
    local ok, err = pcall(client.start, client, "retry_and_wait", PIPELINE, ids[1], { interval = 0.05 })
    assert.is_false(ok)
    assert.matches("a callback of the host's loop raised: .*host timer broke", err)
    host.advance(client.timeout) -- the host goes on
    local seen = host.go()
    assert.same({}, seen.errors)
    assert.equal("COMPLETED", sim:run_state(ids[1]).status)
    client:close()
  end)

  it("stops cleanly when the host closes the client from inside its watch callback", function()
    local ids = runs(2)
    local client = new_client()
    local calls = 0
    local host = run_on_luv(client, { watch = function()
      calls = calls + 1
      if calls == 2 then
        client:close()
        return true -- and the host does not go on watching that fd
      end
    end })
    local job = client:start("retry_and_wait_many", { { PIPELINE, ids[1] }, { PIPELINE, ids[2] } }, { interval = 0.05 })
    local seen = host.go()
    assert.is_nil(seen.gave_up)
    assert.same({}, seen.errors)
    assert.is_false(job.done)
    assert.equal(0, count(seen.watched))
    assert.equal(0, client:timeout())
  end)

  it("stops cleanly when a started call closes the client (its on_poll)", function()
    local ids = runs(1, { polls = 5 })
    local client = new_client()
    local host = run_on_luv(client)
    local job = client:start("retry_and_wait", PIPELINE, ids[1], { interval = 0.05,
      on_poll = function() client:close() end })
    local seen = host.go()
    assert.is_nil(seen.gave_up)
    assert.same({}, seen.errors)
    assert.is_false(job.done)
    assert.equal(0, count(seen.watched))
  end)

  it("gives a clear error when the batch is closed from inside a callback", function()
    local ids = runs(1)
    local client = new_client()
    local host = run_on_luv(client, { watch = function(_, what)
      if what then
        client._runner.batch:close()
        return true -- the socket is gone already: nothing to watch
      end
    end })
    local job = client:start("retry_and_wait", PIPELINE, ids[1], { interval = 0.05 })
    local seen = host.go()
    assert.is_nil(seen.gave_up) -- after the error the client let go of everything: the loop ran dry
    assert.equal(1, #seen.errors, table.concat(seen.errors, "\n"))
    assert.matches("closed batch", seen.errors[1])
    assert.is_false(job.done)
    assert.equal(0, count(seen.watched))
    client:close()
  end)

  it("names the argument on misuse", function()
    local client = new_client()
    assert.has_error(function() client:use_loop({ watch = print }) end,
      "bad argument #1 to 'use_loop' (callbacks must be a table with functions watch and timer)")
    assert.has_error(function() client:timeout() end, "timeout: this client has no host loop (call use_loop first)")
    client:use_loop({ watch = function() end, timer = function() end })
    assert.has_error(function() client:socket_ready("3") end,
      "bad argument #1 to 'socket_ready' (fd must be a file descriptor, got 3)")
    assert.has_error(function() client:socket_ready(3, "x") end,
      "bad argument #2 to 'socket_ready' (what must be \"r\", \"w\" or \"rw\", got x)")
    assert.has_error(function() client:step(0) end,
      "client:step: this client runs on its host's loop (use_loop): call socket_ready and timeout")
    assert.has_error(function() client:use_loop({ watch = print, timer = print }) end,
      "use_loop: this client already runs on a host's loop")
    client:close()
    local started = new_client()
    started:start("detail", PIPELINE, simulator.new_id())
    assert.has_error(function() started:use_loop({ watch = print, timer = print }) end,
      "use_loop: started calls are running; call use_loop before start")
    started:close()
  end)
end)

-- The example hosts, as child processes: the luv one and the C poll(2) one.
describe("example hosts on an event loop", function()
  local sim = simulator.fixture()

  local function check_host(argv, env)
    local ids = {}
    for i = 1, 4 do ids[i] = sim:add_run({ status = "FAILED", polls = 2, outcome = "COMPLETED" }) end
    -- a retry held 1 s, a follow held 1 s, a dropped connection on a follow
    sim:fault({ kind = "slow", delay = 1, run_id = ids[1], method = "POST" })
    sim:fault({ kind = "slow", delay = 1, run_id = ids[3], path = "detail" })
    sim:fault({ kind = "close", path = "detail", run_id = ids[4] })
    for _, word in ipairs({ PIPELINE, ids[1], ids[2], "--wait", ids[3], ids[4] }) do argv[#argv + 1] = word end
    local variables = support.lua_environment({ HOME = "/nonexistent", CODEARTS_PIPELINE_ENDPOINT = sim.url,
      CODEARTS_PIPELINE_PROJECT_ID = PROJECT, CODEARTS_PIPELINE_TOKEN = TOKEN })
    for name, value in pairs(env or {}) do variables[name] = value end
    local output, status = support.capture(support.command(argv, variables))
    assert.equal(0, status, output)
    for _, id in ipairs({ ids[1], ids[2] }) do
      assert.matches("retry_many " .. id .. ": retried", output, 1, true)
      assert.equal("RUNNING", sim:run_state(id).status)
    end
    for _, id in ipairs({ ids[3], ids[4] }) do
      assert.matches("retry_and_wait " .. id .. ": COMPLETED", output, 1, true)
      assert.equal("COMPLETED", sim:run_state(id).status)
    end
    -- the side timer ticks every 100 ms; a loop that waited for the slow
    -- requests would have been late by most of a second
    local ticks, interval, late = output:match("side timer: (%d+) ticks every (%d+) ms, latest ([%d.]+) ms late")
    assert.is_truthy(ticks, output)
    assert.is_true(tonumber(ticks) >= 5, output)
    assert.is_true(tonumber(late) < tonumber(interval), output)
    return output
  end

  local it_luv = has_luv and it or pending
  it_luv("examples/luv/retry.lua: results right, the side timer on time", function()
    local output = check_host({ support.LUA, support.ROOT .. "/examples/luv/retry.lua" })
    assert.matches("luv host: 4 runs, 0 failed, 0 calls left", output, 1, true)
  end)

  local file = io.open(HOST, "rb")
  if file then file:close() end
  local it_host = file and it or pending
  it_host("pipeline-host poll: results right, the side timer on time, no socket left watched", function()
    -- the binary is not instrumented: no sanitizer runtime preloaded into it
    -- (under check-memory's, it deadlocks in an exit handler of libp11-kit)
    local output = check_host({ HOST, "poll" }, { LD_PRELOAD = false, ASAN_OPTIONS = false, UBSAN_OPTIONS = false })
    assert.matches("poll host: 4 runs, 0 failed, 0 sockets still watched", output, 1, true)
  end)
end)

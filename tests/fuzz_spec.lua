-- The random-call fuzzer: random calls with random options (some of them
-- misuse) against the hostile server answering at random (status lines that
-- are not HTTP, hang-ups, delays, huge headers, echoed secrets, bodies of
-- every shape).  Bounded (CALLS calls, SECONDS seconds) and seeded: the
-- seed is printed, and PIPELINE_FUZZ_SEED replays a run.  Every valid call
-- must return, by the error rule, never raise; every misuse must raise a
-- message naming it; no output may hold a canary secret.  scripts/check-memory
-- runs it under AddressSanitizer and UBSan too.
local core = require("pipeline.core")
local pipeline = require("pipeline")
local hostile_server = require("hostile")
local support = require("support")

local SEED = tonumber(os.getenv("PIPELINE_FUZZ_SEED") or "") or 20261201
local CALLS = tonumber(os.getenv("PIPELINE_FUZZ_CALLS") or "") or 600
local SECONDS = 90
local CANARY, CANARY_SK = "CANARY-fuzz-token-61b0", "CANARY-fuzz-sk-0d44e1"
local CODES = { network = true, timeout = true, tls = true, auth = true, not_found = true, throttled = true,
  server = true, api = true, protocol = true, config = true, cancelled = true }

-- Reads an each_log iterator to its end: true, or its failure.
local function collected_log(iterator)
  for page, message, code, info in iterator do
    if page == false then return nil, message, code, info end
  end
  return true
end

describe("random calls against random answers", function()
  local server = hostile_server.fixture()

  it(("return by the error rule (seed %d)"):format(SEED), function()
    local rng_seed = SEED
    -- a generator of its own (a linear congruential one), so the sequence is
    -- the same on every Lua version
    local function random(m, n)
      rng_seed = (rng_seed * 1103515245 + 12345) % 2147483648
      local x = rng_seed / 2147483648
      if not m then return x end
      if not n then m, n = 1, m end
      return m + math.floor(x * (n - m + 1))
    end
    local function pick(list) return list[random(#list)] end
    local function id() return pick({ ("a"):rep(32), ("b"):rep(32), ("0"):rep(32), ("f"):rep(32) }) end
    local function bad_id() return pick({ 5, "x", ("a"):rep(31), {}, true }) end

    server:always({ random = SEED })
    local misuse_raised, returned, codes = 0, 0, {}
    local started = core.monotonic()
    local calls = 0
    while calls < CALLS and core.monotonic() - started < SECONDS do
      calls = calls + 1
      local events = {}
      local options = {
        endpoint = server.url, project_id = ("0"):rep(32), timeout = pick({ 0.3, 0.5, 1 }),
        retries = pick({ false, { max = random(0, 2), base_delay = 0.01, max_delay = pick({ 0.05, math.huge }) } }),
        sleep = function() end,
        on_event = function(e) events[#events + 1] = e end,
      }
      if random() < 0.5 then options.token = CANARY else options.ak, options.sk = "AKFUZZ", CANARY_SK end
      local client = assert(pipeline.new(options))
      local misuse = random() < 0.15
      local function arg() if misuse and random() < 0.5 then return bad_id() end return id() end
      local wait_options = { timeout = pick({ 0.5, 1, 2, 2e9 }), interval = pick({ 0.1, 0.5, 1.5e9 }) }
      if misuse and random() < 0.3 then wait_options = pick({ 5, true, { interval = 0 }, { timeout = -1 } }) end
      local calls_table = {
        function() return client:retry(arg(), arg()) end,
        function() return client:run(arg(), pick({ nil, { description = "d" }, { variables = { { name = "a", value = "b" } } } })) end,
        function() return client:stop(arg(), arg()) end,
        function() return client:detail(arg(), arg()) end,
        function() return client:runs(arg(), pick({ nil, { limit = random(1, 100) }, { status = "FAILED" } })) end,
        function() return client:pipelines(pick({ nil, { name = "x" }, { offset = random(0, 5) } })) end,
        function() return client:latest({ arg(), arg() }) end,
        function() return client:approve(arg(), arg(), arg(), arg()) end,
        function() return client:reject(arg(), arg(), arg(), arg()) end,
        function() return client:logs(arg(), arg(), arg(), arg(), pick({ nil, { limit = random(1, 100) } })) end,
        function() return collected_log(client:each_log(arg(), arg(), arg(), arg())) end,
        function() return client:artifacts(arg(), arg()) end,
        function() return client:pipeline(arg()) end,
        function() return client:wait(arg(), arg(), wait_options) end,
        function() return client:retry_and_wait(arg(), arg(), wait_options) end,
        function() return client:retry_failed(arg(), wait_options) end,
        function()
          local results = client:wait_many({ { arg(), arg() }, { arg(), arg() } }, wait_options)
          for _, result in ipairs(results) do
            if not result.ok then return nil, result.message, result.code, result.info end
          end
          return true
        end,
        function()
          for item, message, code, info in client:each_pipeline() do
            if item == false then return nil, message, code, info end
          end
          return true
        end,
        function()
          local job = client:start("detail", arg(), arg())
          local deadline = core.monotonic() + 10
          while not job.done and core.monotonic() < deadline do client:step(misuse and pick({ 0, -1 }) or pick({ 0, 0.05 })) end
          if not job.done then
            -- only a job told to wait (a Retry-After) may still be waiting
            local told = false
            for _, event in ipairs(events) do told = told or (event.type == "retry" and event.delay >= 5) end
            assert.is_true(told, "a job neither done nor told to wait")
            return true
          end
          return job:result()
        end,
      }
      local call = random(#calls_table)
      local result = { pcall(calls_table[call]) }
      client:close()
      local what = ("call %d (kind %d, seed %d)"):format(calls, call, SEED)
      if result[1] then
        returned = returned + 1
        if result[2] == nil then
          assert.is_string(result[3], what)
          assert.is_true(CODES[result[4]] ~= nil, what .. ": code " .. tostring(result[4]))
          codes[result[4]] = (codes[result[4]] or 0) + 1
        end
      else
        -- only misuse may raise, and it says so
        assert.is_true(misuse, what .. " raised: " .. tostring(result[2]))
        assert.matches("bad argument", tostring(result[2]), 1, true)
        misuse_raised = misuse_raised + 1
      end
      local text = support.all_text(result) .. support.all_text(events)
      support.lacks(text, CANARY, what)
      support.lacks(text, CANARY_SK, what)
      assert.is_nil(text:find("Signature=%x%x%x%x"), what .. ": a signature was shown")
    end
    local seen = {}
    for code, count in pairs(codes) do seen[#seen + 1] = code .. "=" .. count end
    table.sort(seen)
    print(("  fuzz seed %d: %d calls in %.1f s, %d returned (%s), %d misuse raised"):format(SEED, calls,
      core.monotonic() - started, returned, table.concat(seen, " "), misuse_raised))
  end)
end)

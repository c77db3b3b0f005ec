-- The gateway's quota: the client option `rate` (a token bucket shared by
-- every call of a client) and the adaptive concurrency of the batches (a 429
-- halves it and its Retry-After pauses the whole batch), against the
-- simulator's quota mode (--quota: requests per second per token).
local pipeline = require("pipeline")
local simulator = require("sim")

local PROJECT, PIPELINE, TOKEN = simulator.PROJECT, simulator.PIPELINE, simulator.TOKEN
local QUOTA, RUNS, CONCURRENCY = 200, 1000, 64

describe("the gateway's quota", function()
  local sim = simulator.fixture({ "--token", TOKEN })

  local function new_client(extra)
    local options = { endpoint = sim.url, project_id = PROJECT, token = TOKEN }
    for k, v in pairs(extra or {}) do options[k] = v end
    return assert(pipeline.new(options))
  end

  local function set_quota(rate) return sim:control("POST", "quota", { rate = rate }) end

  describe("option rate", function()
    it("must be a positive number", function()
      for _, bad in ipairs({ 0, -1, math.huge, "10" }) do
        assert.has_error(function() pipeline.new({ endpoint = sim.url, project_id = PROJECT, token = TOKEN,
          rate = bad }) end)
      end
    end)

    it("spaces the requests 1/rate apart, through the client's sleep", function()
      local asked = {}
      local client = new_client({ rate = 10, sleep = function(seconds) asked[#asked + 1] = seconds end })
      local run = sim:add_run({ status = "COMPLETED" })
      for _ = 1, 5 do assert(client:detail(PIPELINE, run)) end
      client:close()
      -- the first request goes at once, each later one waits for its slot
      assert.equal(4, #asked)
      for _, seconds in ipairs(asked) do assert.is_true(seconds > 0 and seconds <= 0.1) end
    end)
  end)

  describe("adaptive concurrency", function()
    it("halves the batch's concurrency on a 429 and holds the batch for its Retry-After", function()
      local events = {}
      local client = new_client({ on_event = function(event)
        if event.type == "throttle" then events[#events + 1] = event end
      end })
      local list = {}
      for i = 1, 8 do list[i] = { PIPELINE, sim:failed_run() } end
      sim:fault({ kind = "throttled", path = "/retry", retry_after = 1 })
      local results = client:retry_many(list, { concurrency = 8 })
      client:close()
      for _, result in ipairs(results) do assert.is_true(result.ok) end
      assert.equal(1, #events)
      assert.equal(4, events[1].concurrency)
      assert.equal(1, events[1].pause)
    end)
  end)

  -- RUNS FAILED runs retried through retry_many at CONCURRENCY against a
  -- quota of QUOTA requests per second: every run retried exactly once.
  local function retry_all(options)
    set_quota(QUOTA)
    local list, ids = {}, {}
    for i = 1, RUNS do
      ids[i] = sim:failed_run()
      list[i] = { PIPELINE, ids[i] }
    end
    sim:clear_requests()
    local throttled = 0
    options.on_event = function(event)
      if event.type == "response" and event.status == 429 then throttled = throttled + 1 end
    end
    local client = new_client(options)
    local results = client:retry_many(list, { concurrency = CONCURRENCY })
    client:close()
    local failed = 0
    for _, result in ipairs(results) do
      if not result.ok then failed = failed + 1 end
    end
    -- processed retries (not refused by the quota), per run
    local processed = {}
    for _, request in ipairs(sim:recorded("PUT", "/retry")) do
      if request.fault == nil or request.fault == pipeline.null then
        local run = request.path:match("/pipeline%-runs/(%w+)/retry$")
        processed[run] = (processed[run] or 0) + 1
      end
    end
    local quota = sim:control("GET", "quota")
    set_quota(nil)
    return failed, processed, ids, throttled, quota.throttled
  end

  local function assert_each_retried_once(failed, processed, ids)
    assert.equal(0, failed)
    for _, id in ipairs(ids) do assert.equal(1, processed[id], "run " .. id) end
    assert.equal("RUNNING", sim:run_state(ids[1]).status)
    assert.equal("RUNNING", sim:run_state(ids[RUNS]).status)
  end

  it(("retries %d runs at concurrency %d under a quota of %d/s with rate: each exactly once, none failed")
    :format(RUNS, CONCURRENCY, QUOTA), function()
    local failed, processed, ids, throttled, refused = retry_all({ rate = QUOTA })
    assert_each_retried_once(failed, processed, ids)
    assert.equal(refused, throttled)
    print(("\n  with rate %d: %d answers 429"):format(QUOTA, throttled))
  end)

  it(("retries %d runs at concurrency %d under a quota of %d/s with adaptive concurrency alone")
    :format(RUNS, CONCURRENCY, QUOTA), function()
    local failed, processed, ids, throttled, refused = retry_all({})
    assert_each_retried_once(failed, processed, ids)
    -- the quota was met, and the batch got through it
    assert.is_true(refused > 0)
    assert.equal(refused, throttled)
    print(("\n  adaptive concurrency alone: %d answers 429"):format(throttled))
  end)
end)

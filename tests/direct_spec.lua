-- Calls sent straight: a client with a fixed token, no on_event and no rate
-- sends retry's and stop's first attempt from the operation itself, and
-- retry_many's first attempts all at once in one C loop (batch:send_all).
-- Whatever the server does, the results must be those of the general path
-- (Client:call for every attempt), which a client with on_event takes: each
-- row's fault is met by both, on runs of their own, and compared.
local pipeline = require("pipeline")
local simulator = require("sim")

local PROJECT, PIPELINE, TOKEN = simulator.PROJECT, simulator.PIPELINE, simulator.TOKEN

-- fault (nil: none) -> what the call must give, whichever path sends it:
-- "ok" or the failure's code.  (Whether the simulator acted on the run is
-- compared between the paths, not written here.)
local ROWS = {
  { fault = nil, gives = "ok" },
  { fault = { kind = "not_found" }, gives = "not_found" },
  { fault = { kind = "unauthorized" }, gives = "auth" },
  { fault = { kind = "forbidden" }, gives = "auth" },
  { fault = { kind = "error_code_200" }, gives = "api" },
  { fault = { kind = "success_false" }, gives = "api" },
  { fault = { kind = "not_json" }, gives = "protocol" },
  { fault = { kind = "wrong_shape" }, gives = "protocol" },
  { fault = { kind = "server_html" }, gives = "server" },
  -- repeated: the second attempt passes
  { fault = { kind = "unavailable", times = 1, retry_after = "0" }, gives = "ok" },
  { fault = { kind = "throttled", times = 1, retry_after = "0" }, gives = "ok" },
  -- sent, answer lost: never sent again; the run's status tells
  { fault = { kind = "drop_after_processing", times = 1 }, gives = "ok" },
  { fault = { kind = "close", times = 1 }, gives = "network" },
  { fault = { kind = "bad_gateway", times = 1 }, gives = "server" },
  { fault = { kind = "gateway_timeout", times = 1 }, gives = "server" },
}

describe("calls sent straight", function()
  local sim = simulator.fixture({ "--token", TOKEN })

  local function new_client(extra)
    local options = { endpoint = sim.url, project_id = PROJECT, token = TOKEN, retries = { max = 2 },
      sleep = function() end }
    for k, v in pairs(extra or {}) do options[k] = v end
    return assert(pipeline.new(options))
  end

  -- One FAILED run per row, with the row's fault on it.
  local function runs_with_faults()
    local ids, faults = {}, {}
    for i, row in ipairs(ROWS) do
      ids[i] = sim:failed_run()
      if row.fault then
        local fault = { run_id = ids[i], path = "/retry" }
        for k, v in pairs(row.fault) do fault[k] = v end
        faults[#faults + 1] = fault
      end
    end
    sim:fault({ faults = faults })
    return ids
  end

  -- What a result comes to: "ok" or its code, how many times the simulator
  -- retried the run, and how many requests it received for it.
  local function outcome(ok, code, run_id)
    return ("%s, retried %d, %d requests"):format(ok and "ok" or tostring(code), sim:run_state(run_id).retries,
      #sim:recorded("PUT", simulator.retry_path(run_id)))
  end

  local function name(i, path)
    return ("row %d (%s), %s"):format(i, ROWS[i].fault and ROWS[i].fault.kind or "no fault", path)
  end

  -- Checks each path's outcomes against the rows, then the two paths against each other.
  local function compare(direct, general)
    for i, row in ipairs(ROWS) do
      assert.equal(row.gives, direct[i]:match("^[%w_]+"), name(i, "direct"))
      assert.equal(row.gives, general[i]:match("^[%w_]+"), name(i, "general path"))
      assert.equal(general[i], direct[i], name(i, "direct against the general path"))
    end
  end

  it("client:retry gives the general path's result for every answer", function()
    local outcomes = {}
    for path, extra in pairs({ direct = {}, general = { on_event = function() end } }) do
      local client = new_client(extra)
      local ids = runs_with_faults()
      outcomes[path] = {}
      for i = 1, #ROWS do
        local ok, _, code = client:retry(PIPELINE, ids[i])
        outcomes[path][i] = outcome(ok, code, ids[i])
      end
      client:close()
    end
    compare(outcomes.direct, outcomes.general)
  end)

  it("retry_many gives the general path's results for every answer, in one C loop", function()
    local outcomes = {}
    for path, extra in pairs({ direct = {}, general = { on_event = function() end } }) do
      local client = new_client(extra)
      local firsts = 0
      local retry_first = client._retry_first
      client._retry_first = function(...)
        local answers = retry_first(...)
        if answers then firsts = firsts + 1 end
        return answers
      end
      local ids = runs_with_faults()
      local list = {}
      for i = 1, #ROWS do list[i] = { PIPELINE, ids[i] } end
      local results = client:retry_many(list, { concurrency = 4 })
      client:close()
      assert.equal(#ROWS, #results)
      outcomes[path] = {}
      for i = 1, #ROWS do
        outcomes[path][i] = outcome(results[i].ok, results[i].code, ids[i])
        if not results[i].ok then
          assert.matches("^retry: ", results[i].message)
          assert.is_table(results[i].info)
        end
      end
      -- the direct client took the C loop; the one with events never did
      assert.equal(path == "direct" and 1 or 0, firsts)
    end
    compare(outcomes.direct, outcomes.general)
  end)

  it("retry_many stops starting requests at a 429 and leaves the rest to the throttled scheduler", function()
    local client = new_client()
    local list, ids = {}, {}
    for i = 1, 40 do
      ids[i] = sim:failed_run()
      list[i] = { PIPELINE, ids[i] }
    end
    sim:fault({ kind = "throttled", run_id = ids[5], path = "/retry", times = 1, retry_after = "0" })
    local results = client:retry_many(list, { concurrency = 2 })
    client:close()
    for i = 1, 40 do
      assert.is_true(results[i].ok, "index " .. i)
      assert.equal(1, sim:run_state(ids[i]).retries, "index " .. i)
    end
    -- one PUT a run, and the throttled one's second
    assert.equal(41, #sim:recorded("PUT", "/retry"))
  end)

  it("an empty list sends nothing, and a closed client is refused as before", function()
    local client = new_client()
    assert.same({}, client:retry_many({}))
    client:close()
    assert.error_matches(function() client:retry(PIPELINE, sim:failed_run()) end, "closed client")
    local ok, failure = pcall(client.retry_many, client, { { PIPELINE, sim:failed_run() } })
    assert.is_false(ok)
    assert.matches("attempt to use a closed client", failure)
    assert.equal(0, #sim:recorded("PUT", "/retry"))
  end)
end)

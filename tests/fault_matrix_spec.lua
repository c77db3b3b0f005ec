-- The fault matrix: every fault of the simulator (tests/simulator/README.md)
-- and of the hostile server (tests/hostile_server.py) against every
-- operation of a client.  The expected code of each cell is read from the
-- table in docs/faults.md, so the page and the behaviour cannot drift apart.
-- Each call must return (never raise) within its time bound, and no canary
-- secret may appear in its results or in any event.
local core = require("pipeline.core")
local pipeline = require("pipeline")
local simulator = require("sim")
local hostile_server = require("hostile")
local support = require("support")

local CANARY = "CANARY-matrix-token-3c9e0f"
local P = simulator.PIPELINE
local RUN_A = ("a"):rep(32) -- FAILED, the latest of P (the simulator's --seed)
local RUN_B = ("b"):rep(32) -- COMPLETED
local JOB = ("9"):rep(32)   -- no job of any run
-- A call's time bound: a request may take the client's timeout (1 s), a
-- wait its own deadline (2 s), plus settling an unknown outcome; generous,
-- as machines are noisy.
local BOUND = 20

-- The operations, in the order of the table's columns: each calls the
-- client and returns what it returned (a listing's iterator collected).
local function collected(iterator)
  local items = {}
  for item, message, code, info in iterator do
    if item == false then return nil, message, code, info end
    items[#items + 1] = item
  end
  return items
end

local OPERATIONS = {
  { "retry", function(c) return c:retry(P, RUN_A) end },
  { "run", function(c) return c:run(P) end },
  { "stop", function(c) return c:stop(P, RUN_A) end },
  { "detail", function(c) return c:detail(P, RUN_A) end },
  { "runs", function(c) return c:runs(P) end },
  { "pipelines", function(c) return c:pipelines() end },
  { "latest", function(c) return c:latest({ P }) end },
  { "approve", function(c) return c:approve(P, RUN_A, JOB, JOB) end },
  { "logs", function(c) return c:logs(P, RUN_A, JOB, JOB) end },
  { "artifacts", function(c) return c:artifacts(P, RUN_A) end },
  { "pipeline", function(c) return c:pipeline(P) end },
  { "wait", function(c) return c:wait(P, RUN_B, { timeout = 2, interval = 0.2 }) end },
  { "each_run", function(c) return collected(c:each_run(P)) end },
  { "each_pipeline", function(c) return collected(c:each_pipeline()) end },
}

-- The faults, each the table row's name and how to set it up: a simulator
-- fault (applied to every request: times = 0) or a hostile server's answer
-- (to every request).
local SIMULATOR_FAULTS = {
  unauthorized = { kind = "unauthorized" }, forbidden = { kind = "forbidden" },
  not_found = { kind = "not_found" }, error_code_200 = { kind = "error_code_200" },
  success_false = { kind = "success_false" }, throttled = { kind = "throttled" },
  coct_throttled = { kind = "coct_throttled" }, server_html = { kind = "server_html" },
  unavailable = { kind = "unavailable" }, bad_gateway = { kind = "bad_gateway" },
  gateway_timeout = { kind = "gateway_timeout" }, not_json = { kind = "not_json" },
  wrong_shape = { kind = "wrong_shape" }, oversize = { kind = "oversize" }, bare_lf = { kind = "bare_lf" },
  slow = { kind = "slow", delay = 3 }, close = { kind = "close" },
  drop_after_processing = { kind = "drop_after_processing" }, redirect = { kind = "redirect" },
}

local HOSTILE_FAULTS = {
  big_header = { big_header = 200000, json = { success = true } },
  status_abc = { raw = "abc\r\nContent-Length: 2\r\n\r\n{}" },
  status_000 = { raw = "HTTP/1.1 000 X\r\nContent-Length: 2\r\n\r\n{}" },
  status_http_9_9 = { raw = "HTTP/9.9 200 OK\r\nContent-Length: 2\r\n\r\n{}" },
  hang_up = { hang_up = true },
  truncated_body = { raw = "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"succ" },
  echoed_secret = { status_line = "HTTP/1.1 400 Bad Request", headers = { { "X-Request-Id", "{{x-auth-token}}" } },
    json = { error_code = "{{x-auth-token}}", error_msg = "you sent {{x-auth-token}}" } },
  huge_retry_after = { status_line = "HTTP/1.1 429 Too Many Requests",
    headers = { { "Retry-After", "99999999999" } }, json = { error_code = "APIGW.0308" } },
  endless_pages = { pages = { field = "pipelines", total = 1e9 } },
  error_code_object = { json = { error_code = {}, success = true } },
}

-- The table of docs/faults.md: fault -> operation -> code ("ok" for success).
local function documented()
  local text = assert(support.read_file(support.ROOT .. "/docs/faults.md"))
  local columns, rows = nil, {}
  for line in text:gmatch("[^\n]+") do
    if line:match("^| fault |") then
      columns = {}
      for cell in line:gmatch("|%s*([^|]-)%s*%f[|]") do columns[#columns + 1] = cell end
    elseif columns and line:match("^| `") then
      local cells = {}
      for cell in line:gmatch("|%s*([^|]-)%s*%f[|]") do cells[#cells + 1] = cell end
      local name = cells[1]:match("^`([%w_]+)`")
      rows[name] = {}
      for i = 3, #columns do rows[name][columns[i]] = cells[i] end
    end
  end
  return rows
end

describe("fault matrix", function()
  local table_of = documented()
  local slowest = 0

  teardown(function() print(("  slowest call of the matrix: %.2f s"):format(slowest)) end)

  -- Runs every operation on a fresh client of server; checks each against
  -- the documented row.
  local function check_row(name, server)
    local row = assert(table_of[name], "docs/faults.md has no row for " .. name)
    for _, operation in ipairs(OPERATIONS) do
      local op, call = operation[1], operation[2]
      local events = {}
      local client = assert(pipeline.new({ endpoint = server.url, project_id = simulator.PROJECT, token = CANARY,
        timeout = 1, retries = false, on_event = function(e) events[#events + 1] = e end }))
      local started = core.monotonic()
      local results = { pcall(call, client) }
      local seconds = core.monotonic() - started
      client:close()
      slowest = math.max(slowest, seconds)
      assert.is_true(results[1], ("%s x %s raised: %s"):format(name, op, tostring(results[2])))
      local code = results[2] == nil and results[4] or "ok"
      assert.equal(row[op], code, ("%s x %s: %s"):format(name, op, tostring(results[3])))
      assert.is_true(seconds < BOUND, ("%s x %s took %.1f s"):format(name, op, seconds))
      support.lacks(support.all_text(results), CANARY, ("%s x %s: the results"):format(name, op))
      support.lacks(support.all_text(events), CANARY, ("%s x %s: the events"):format(name, op))
    end
  end

  describe("of the simulator", function()
    local sim = simulator.fixture({ "--seed", "--token", CANARY })
    local names = {}
    for name in pairs(SIMULATOR_FAULTS) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      it(name, function()
        local fault = {}
        for key, value in pairs(SIMULATOR_FAULTS[name]) do fault[key] = value end
        fault.times = 0
        sim:fault(fault)
        check_row(name, sim)
      end)
    end

    it("(none: the baseline)", function() check_row("none", sim) end)
  end)

  describe("of the hostile server", function()
    local server = hostile_server.fixture()
    local names = {}
    for name in pairs(HOSTILE_FAULTS) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      it(name, function()
        server:always(HOSTILE_FAULTS[name])
        check_row(name, server)
      end)
    end
  end)

  it("docs/faults.md has a row for every fault and no other", function()
    local known = { none = true }
    for name in pairs(SIMULATOR_FAULTS) do known[name] = true end
    for name in pairs(HOSTILE_FAULTS) do known[name] = true end
    for name in pairs(known) do assert.is_table(table_of[name], name) end
    for name in pairs(table_of) do assert.is_true(known[name], name) end
  end)
end)

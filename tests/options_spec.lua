-- Option schemas (lua/pipeline/options.lua) and their checks, as data: each
-- row is a call or a schema and a value, and what must come of it: nil (it
-- is taken) or a pattern of the one message format of a misuse,
--   bad argument #N to 'FNAME' (what is wrong, naming the option)
-- raised at the caller (the message starts with this file's name).  Nothing
-- here sends a request: every call that would is refused first, or points at
-- a closed port of 127.0.0.1.
local core = require("pipeline.core")
local pipeline = require("pipeline")
local config = require("pipeline.config")
local options = require("pipeline.options")
local support = require("support")

local P = ("a"):rep(32)
local NOWHERE = "http://127.0.0.1:1" -- refused at once: a call that gets through fails with network

-- Calls f; nil when it returns, else its error message (a string).
local function raised(f)
  local ok, err = pcall(f)
  if ok then return nil end
  return tostring(err)
end

-- Checks one row: expected nil (taken) or a pattern the message must match,
-- raised at the caller (this file).
local function check_row(name, f, expected, anywhere)
  local err = raised(f)
  if expected == nil then
    assert.is_nil(err, name)
    return
  end
  assert.is_string(err, name .. ": no error")
  assert.truthy(err:find(expected), ("%s: %q does not match %q"):format(name, err, expected))
  assert.truthy(err:find("bad argument #%d+ to '[%w._]+' %("), ("%s: not in lauxlib's format: %q"):format(name, err))
  if not anywhere then
    assert.truthy(err:find("^[^:]*options_spec%.lua:%d+: bad argument"), ("%s: not raised at the caller: %q"):format(name, err))
  end
end

describe("pipeline.options", function()
  -- { specs, value, expected }: options.check(options.schema(specs), value, 1, "f")
  local rows = {
    { { n = "number" }, { n = 1 }, nil },
    { { n = "number" }, {}, nil },
    { { n = "number" }, nil, nil },
    { { n = "number" }, { m = 1 }, "%(unknown option 'm'%)" },
    { { n = "number" }, { [1] = 1 }, "%(unknown option '1'%)" },
    { { n = "number" }, { n = "1" }, "%(option 'n' must be a number, got string%)" },
    { { n = "number" }, 5, "%(options must be a table, got number%)" },
    { { n = { type = "number", min = 0 } }, { n = -1 }, "option 'n' must be a number not below 0, got %-1" },
    { { n = { type = "number", min = 0 } }, { n = 0 / 0 }, "option 'n' must be a number not below 0, got" },
    { { n = { type = "number", above = 0 } }, { n = 0 }, "option 'n' must be a number above 0, got 0" },
    { { n = { type = "number", integer = true, min = 1, max = 3 } }, { n = 3 }, nil },
    { { n = { type = "number", integer = true, min = 1, max = 3 } }, { n = 4 },
      "option 'n' must be a whole number from 1 to 3, got 4" },
    { { n = { type = "number", integer = true, min = 1, max = 3 } }, { n = 1.5 }, "whole number from 1 to 3, got 1%.5" },
    { { n = { type = "number", integer = true, min = 0 } }, { n = math.huge }, "a whole number from 0, got" },
    { { f = "string|function" }, { f = print }, nil },
    { { f = "string|function" }, { f = true }, "option 'f' must be a string or a function, got boolean" },
    { { r = "table|false" }, { r = false }, nil },
    { { r = "table|false" }, { r = true }, "option 'r' must be a table or false, got boolean" },
    { { s = { type = "string", values = { "a", "b" } } }, { s = "b" }, nil },
    -- a string's value is never shown: it may be a secret
    { { s = { type = "string", values = { "a", "b" } } }, { s = "secret" }, "option 's' must be \"a\" or \"b\"%)$" },
    { { s = { type = "string", check = function(v) return v ~= "x" and "must be x" or nil end } }, { s = "y" },
      "%(option 's' must be x%)$" },
    { { s = { type = "string", expect = "a name" } }, { s = 1 }, "option 's' must be a name, got number" },
    { { a = "any" }, { a = print }, nil },
    { { t = { type = "table", fields = { x = "number" } } }, { t = { x = 1 } }, nil },
    { { t = { type = "table", fields = { x = "number" } } }, { t = { y = 1 } }, "%(unknown option 't%.y'%)" },
    { { t = { type = "table", fields = { x = "number" } } }, { t = { x = "1" } }, "option 't%.x' must be a number" },
    { { l = { type = "table", items = "string" } }, { l = { "a", "b" } }, nil },
    { { l = { type = "table", items = "string" } }, { l = { "a", 2 } }, "option 'l%[2%]' must be a string, got number" },
  }
  for i, row in ipairs(rows) do
    it(("row %d"):format(i), function()
      local schema = options.schema(row[1])
      check_row(("row %d"):format(i), function() options.check(schema, row[2], 1, "f", 1) end, row[3])
    end)
  end

  it("names query and body fields as such", function()
    local query = options.schema({ limit = "number" }, "query field")
    check_row("query", function() options.check(query, { limt = 1 }, 2, "runs", 1) end,
      "bad argument #2 to 'runs' %(unknown query field 'limt'%)")
    check_row("query", function() options.check(query, "x", 2, "runs", 1) end, "%(query must be a table, got string%)")
    local body = options.schema({ sources = "table" }, "body field")
    check_row("body", function() options.check(body, { source = 1 }, 2, "run", 1) end, "%(unknown body field 'source'%)")
  end)

  it("returns the options checked, or an empty table for none", function()
    local schema = options.schema({ n = "number" })
    local given = { n = 1 }
    assert.equal(given, options.check(schema, given, 1, "f"))
    assert.same({}, options.check(schema, nil, 1, "f"))
  end)

  it("extends a schema without changing it", function()
    local base = options.schema({ n = "number" })
    local more = options.extend(base, { m = "string" })
    assert.is_nil(options.problem(more, { n = 1, m = "x" }))
    assert.equal("unknown option 'm'", options.problem(base, { m = "x" }))
  end)
end)

describe("every misuse of an option", function()
  -- a call the check let through by mistake ends soon: no repeats, no real
  -- sleeps, a watcher stopped at once
  local client = assert(pipeline.new({ endpoint = NOWHERE, project_id = P, token = "t", retries = false,
    sleep = function() end }))
  local function stop() return true end
  local rows = {
    -- the client options (config.CLIENT_OPTIONS)
    { "pipeline.new", function() pipeline.new({ endpoint = NOWHERE, project_id = P, token = "t", timeout = 5 }) end },
    { "pipeline.new", function() pipeline.new({ timout = 1 }) end, "#1 to 'pipeline.new' %(unknown option 'timout'%)" },
    { "pipeline.new", function() pipeline.new({ timeout = 0 }) end,
      "%(option 'timeout' must be a number of seconds from 0%.001 to 2147483, got 0%)" },
    { "pipeline.new", function() pipeline.new({ retries = { maxx = 1 } }) end, "%(unknown option 'retries%.maxx'%)" },
    { "pipeline.new", function() pipeline.new({ retries = { max = -1 } }) end, "option 'retries%.max' must be a number not below 0" },
    { "pipeline.new", function() pipeline.new({ iam = { scope = "x" } }) end, "option 'iam%.scope' must be \"project\" or \"domain\"" },
    { "pipeline.new", function() pipeline.new({ project_id = "abc" }) end, "option 'project_id' must be 32 ASCII letters or digits" },
    { "pipeline.new", function() pipeline.new({ token = "secret\n" }) end, "option 'token' must be a non%-empty string without control" },
    { "pipeline.new", function() pipeline.new({ max_response_size = 1.5 }) end,
      "option 'max_response_size' must be a whole number of bytes" },
    { "pipeline.new", function() pipeline.new({ rate = 0 }) end, "option 'rate' must be a positive number" },
    { "pipeline.new", function() pipeline.new({ profile = "x" }) end, "%(unknown option 'profile'%)" },
    { "pipeline.load", function() pipeline.load({ profil = "x" }) end, "#1 to 'pipeline.load' %(unknown option 'profil'%)" },
    { "pipeline.load", function() pipeline.load({ config_file = 1 }) end, "option 'config_file' must be a string, got number" },
    { "pipeline.retry", function() pipeline.retry(P, P, P, "t", { timout = 1 }) end, "#5 to 'retry' %(unknown option 'timout'%)" },
    -- the lifecycle calls
    { "wait", function() client:wait(P, P, { timout = 1 }) end, "#3 to 'wait' %(unknown option 'timout'%)" },
    { "wait", function() client:wait(P, P, { interval = 0 }) end, "option 'interval' must be a number above 0, got 0" },
    { "wait", function() client:wait(P, P, { timeout = -1 }) end, "option 'timeout' must be a number not below 0, got %-1" },
    { "wait", function() client:wait(P, P, { on_poll = true }) end, "option 'on_poll' must be a function, got boolean" },
    { "retry_failed", function() client:retry_failed(P, { attempt = 2 }) end, "#2 to 'retry_failed' %(unknown option 'attempt'%)" },
    { "map", function() client:map({}, print, { concurrency = core.MAX_CONCURRENCY }) end },
    { "map", function() client:map({}, print, { concurrency = core.MAX_CONCURRENCY + 1 }) end,
      ("#3 to 'map' %%(option 'concurrency' must be a whole number from 1 to %d, got"):format(core.MAX_CONCURRENCY) },
    { "map", function() client:map({}, print, { timeout = 1 }) end, "%(unknown option 'timeout'%)" },
    -- (the calls on many runs raise a level too high: they tail-call the function that checks)
    { "retry_many", function() client:retry_many({}, { concurrency = 0 }) end, "option 'concurrency' must be a whole number",
      anywhere = true },
    { "wait_many", function() client:wait_many({}, 5) end, "#2 to 'wait_many' %(options must be a table, got number%)",
      anywhere = true },
    { "watch", function() client:watch({ P }, { intervl = 1, stop = stop }) end, "#2 to 'watch' %(unknown option 'intervl'%)" },
    { "watch", function() client:watch({ P }, { jobs = { "build", 2 }, stop = stop }) end,
      "option 'jobs%[2%]' must be a stage or job name" },
    { "watch", function() client:watch({ P }, { attempts = 1.5, stop = stop }) end,
      "option 'attempts' must be a whole number from 0, got 1%.5" },
    { "watch", function() client:watch({ P }, { concurrency = core.MAX_CONCURRENCY + 1, stop = stop }) end, "option 'concurrency'" },
    -- the operations' queries and bodies
    { "runs", function() client:runs(P, { stauts = "FAILED" }) end, "#2 to 'runs' %(unknown query field 'stauts'%)" },
    { "runs", function() client:runs(P, "FAILED") end, "#2 to 'runs' %(query must be a table, got string%)" },
    { "pipelines", function() client:pipelines({ nmae = "x" }) end, "#1 to 'pipelines' %(unknown query field 'nmae'%)" },
    { "each_run", function() client:each_run(P, { x = 1 }) end, "#2 to 'each_run' %(unknown query field 'x'%)" },
    { "run", function() client:run(P, { variable = {} }) end, "#2 to 'run' %(unknown body field 'variable'%)" },
    { "logs", function() client:logs(P, P, "j", "s", { offset = 1 }) end, "#5 to 'logs' %(unknown query field 'offset'%)" },
    { "latest", function() client:latest("x") end, "#1 to 'latest' %(pipeline_ids must be a table, got string%)" },
    -- the C core's: transport options, a batch's own, core.retry's own
    { "core.client", function() core.client({ timeout = 5, insecure = true, proxy = "http://127.0.0.1:1" }) end },
    { "core.client", function() core.client({ timout = 1 }) end, "#1 to '[%w.]*client' %(unknown option 'timout'%)" },
    { "core.client", function() core.client({ insecure = "yes" }) end, "%(option 'insecure' must be a boolean, got string%)" },
    { "core.client", function() core.client({ timeout = 0 }) end,
      "%(option 'timeout' must be a number of seconds from 0%.001 to 2147483%.647, got 0" },
    { "core.client", function() core.client({ max_response_size = 0.5 }) end, "option 'max_response_size' must be a whole number" },
    { "core.client", function() core.client({ proxy = "http://u:secret@h\r\n" }) end,
      "%(option 'proxy' must not hold control characters%)$" },
    { "core.client", function() core.client({ [1] = true }) end, "%(option names must be strings, got number%)" },
    { "core.client", function() core.client("x") end, "#1 to '[%w.]*client'" },
    { "core.batch", function() core.batch({ concurrency = core.MAX_CONCURRENCY, timeout = 5 }):close() end },
    { "core.batch", function() core.batch({ concurrency = core.MAX_CONCURRENCY + 1 }) end,
      ("%%(option 'concurrency' must be a whole number from 1 to %d, got"):format(core.MAX_CONCURRENCY) },
    { "core.batch", function() core.batch({ concurrency = "8" }) end,
      "option 'concurrency' must be a whole number from 1 to %d+, got string" },
    { "core.batch", function() core.batch({ share = {} }) end, "%(option 'share' must be a pipeline%.client, got table%)" },
    { "core.batch", function() core.batch({ concurency = 2 }) end, "#1 to '[%w.]*batch' %(unknown option 'concurency'%)" },
    { "core.retry", function() core.retry(P, P, P, "t", { endpoint = NOWHERE, timeout = 5 }) end },
    { "core.retry", function() core.retry(P, P, P, "t", { endpoint = NOWHERE, retries = false }) end,
      "#5 to '[%w.]*retry' %(unknown option 'retries'%)" },
    { "core.retry", function() core.retry(P, P, P, "t", { endpoint = 5 }) end, "%(option 'endpoint' must be a string, got number%)" },
    { "core.retry", function() core.retry(P, P, P, "t", { endpoint = NOWHERE .. "\n" }) end,
      "%(option 'endpoint' must not hold control characters%)" },
  }
  for i, row in ipairs(rows) do
    it(("%s, row %d: %s"):format(row[1], i, row[3] and "raises" or "is taken"), function()
      check_row(row[1], row[2], row[3], row.anywhere)
    end)
  end

  it("never shows a string option's value", function()
    for _, f in ipairs({
      function() pipeline.new({ token = "CANARY-7f3a\n" }) end,
      function() pipeline.new({ sk = "" , ak = "CANARY-7f3a with space" }) end,
      function() core.client({ proxy = "http://u:CANARY-7f3a@h\n" }) end,
    }) do
      support.lacks(raised(f), "CANARY", "message")
    end
  end)
end)

describe("the client option schema", function()
  -- a value for each option the environment sets, and what it needs beside
  local SAMPLES = {
    endpoint = { "http://127.0.0.1:9" }, region = { "cn-north-4" }, project_id = { P },
    token = { "t" }, iam_project_id = { "abc123" },
    ak = { "AK", HUAWEICLOUD_SDK_SK = "SK" }, sk = { "SK", HUAWEICLOUD_SDK_AK = "AK" },
    security_token = { "ST", HUAWEICLOUD_SDK_AK = "AK", HUAWEICLOUD_SDK_SK = "SK" },
  }

  it("names for each option the environment variable that sets it", function()
    local seen = 0
    for name, spec in pairs(config.CLIENT_OPTIONS.specs) do
      if spec.env then
        local sample = assert(SAMPLES[name], "no sample value for " .. name)
        local environment = { [spec.env] = sample[1] }
        for k, v in pairs(sample) do
          if type(k) == "string" then environment[k] = v end
        end
        local resolved, message = config.resolve({}, function(variable) return environment[variable] end)
        assert.is_table(resolved, message)
        assert.equal(sample[1], resolved[name], name .. " from " .. spec.env)
        seen = seen + 1
      end
    end
    assert.is_true(seen >= 8)
  end)

  it("names for each option the command line's flag that sets it, as the CLI and its docs have it", function()
    local completion = require("pipeline.cli").completion_script("bash")
    local docs = assert(support.read_file(support.ROOT .. "/docs/cli.md"))
    local seen = 0
    for name, spec in pairs(config.LOAD_OPTIONS.specs) do
      if spec.flag then
        assert.truthy(completion:find(spec.flag, 1, true), spec.flag .. " (" .. name .. ") is no flag of the CLI")
        assert.truthy(docs:find("`" .. spec.flag, 1, true), spec.flag .. " (" .. name .. ") is not in docs/cli.md")
        seen = seen + 1
      end
    end
    assert.is_true(seen >= 6)
  end)
end)

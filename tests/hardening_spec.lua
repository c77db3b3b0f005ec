-- Defects found by a hostile server (tests/hostile_server.py, driven
-- through tests/hostile.lua), a hostile config file and an impatient
-- person, each a regression test.  Every answer here is the
-- server's doing, so every failure must be a result (nil, message, code,
-- info), never a raise, and no output may hold a secret.
local cjson = require("cjson")
local core = require("pipeline.core")
local pipeline = require("pipeline")
local hostile_server = require("hostile")
local support = require("support")

local unpack = table.unpack or unpack

local PROJECT = ("0"):rep(32)
local P, R = ("a"):rep(32), ("b"):rep(32)
local CANARY = "CANARY-hardening-token-5d1e"
local CANARY_SK = "CANARY-hardening-sk-8b2f0c"
local CANARY_STS = "CANARY-hardening-sts-41aa"
local CANARY_PASSWORD = "CANARY-hardening-password-77"

local RUN = { id = R, status = "COMPLETED", name = "n", run_number = 1, start_time = 1764500000000,
  end_time = 1764500060000, stages = { { name = "Build", status = "COMPLETED",
    jobs = { { name = "compile", status = "COMPLETED", message = "" } } } } }

local function assert_clean(value, what)
  local text = support.all_text(value)
  for _, secret in ipairs({ CANARY, CANARY_SK, CANARY_STS, CANARY_PASSWORD }) do
    support.lacks(text, secret, what)
  end
  assert.is_nil(text:find("Signature=%x%x%x%x"), (what or "text") .. " holds a signature: " .. text)
end

describe("hardening", function()
  local server = hostile_server.fixture()
  after_each(support.remove_test_dirs)

  local function new_client(options)
    options = options or {}
    options.endpoint = options.endpoint or server.url
    options.project_id = options.project_id or PROJECT
    if not (options.ak or options.iam) then options.token = options.token or CANARY end
    options.sleep = options.sleep or function() end
    return pipeline.new(options)
  end

  -- The shell command running the command-line program with args against
  -- the hostile server, configured by the environment (extra: more
  -- variables, or false to leave one out).
  local function program_command(args, extra)
    local env = support.lua_environment({ PATH = os.getenv("PATH"), HOME = support.test_dir(),
      CODEARTS_PIPELINE_ENDPOINT = server.url, CODEARTS_PIPELINE_PROJECT_ID = PROJECT,
      CODEARTS_PIPELINE_TOKEN = CANARY })
    for name, value in pairs(extra or {}) do env[name] = value end
    return support.command({ support.LUA, support.ROOT .. "/bin/codearts-pipeline", unpack(args) }, env)
  end

  -- Runs the command-line program against the hostile server: {code, out,
  -- err}, never holding a canary.
  local function program(args, extra)
    local dir = support.test_dir()
    local code = support.execute(program_command(args, extra) .. " >" .. dir .. "/out 2>" .. dir .. "/err </dev/null")
    local result = { code = code, out = support.read_file(dir .. "/out"), err = support.read_file(dir .. "/err") }
    assert_clean(result.out, "stdout")
    assert_clean(result.err, "stderr")
    return result
  end

  local function json_program(args, extra)
    local result = program({ "--json", unpack(args) }, extra)
    local document = cjson.decode(result.out)
    assert.is_table(document, result.out)
    assert.equal(result.code, document.exit)
    return result, document
  end

  ------------------------------------------------------------------ 1

  describe("1. a response header line over 100 KiB", function()
    local BIG = { big_header = 200000, json = RUN }

    it("is a protocol failure, not a raise", function()
      server:always(BIG)
      local client = new_client()
      local ok, run, message, code, info = pcall(client.detail, client, P, R)
      assert.is_true(ok, tostring(run))
      assert.is_nil(run)
      assert.equal("protocol", code, message)
      assert.is_false(info.retryable)
      client:close()
    end)

    it("fails one job of map and wait_many, never the others", function()
      server:answer({ BIG }, { json = RUN })
      local client = new_client()
      local results = client:wait_many({ { P, R }, { P, R }, { P, R } }, { interval = 0.01 })
      local failed, passed = 0, 0
      for _, result in ipairs(results) do
        if result.ok then
          passed = passed + 1
          assert.equal("COMPLETED", result.status)
        else
          failed = failed + 1
          assert.equal("protocol", result.code, result.message)
        end
      end
      assert.same({ 1, 2 }, { failed, passed })
      client:close()
    end)

    it("makes the CLI exit 3 with code protocol, not an internal error", function()
      server:always(BIG)
      local r, document = json_program({ "status", P, R })
      assert.equal(3, r.code)
      assert.equal("protocol", document.code)
      support.lacks(document.message, "internal error")
    end)
  end)

  ------------------------------------------------------------------ 2

  describe("2. secrets a server echoes back", function()
    -- an error answer repeating what the request carried, in every place
    local function echo(what)
      return { status_line = "HTTP/1.1 400 Bad Request", headers = { { "X-Request-Id", what } },
        json = { error_code = what, error_msg = "you sent " .. what } }
    end

    local function check_call(client, answer)
      local events = {}
      client._on_event = function(event) events[#events + 1] = event end
      server:always(answer)
      local result = { client:detail(P, R) }
      assert.is_nil(result[1])
      assert_clean(result, "the failure")
      assert_clean(events, "the events")
      return result
    end

    it("hides a token echoed in X-Request-Id, error_code and error_msg", function()
      local client = new_client()
      local result = check_call(client, echo("{{x-auth-token}}"))
      assert.equal("***", result[4].request_id)
      client:close()
    end)

    it("hides an echoed Authorization signature and security token (AK/SK)", function()
      local client = new_client({ ak = "AKHARDENING", sk = CANARY_SK, security_token = CANARY_STS })
      check_call(client, echo("{{authorization}} {{x-security-token}}"))
      client:close()
    end)

    it("hides an IAM password echoed by the token endpoint", function()
      local client = new_client({ iam = { user = "u", password = CANARY_PASSWORD, domain = "d",
        project = "p", endpoint = server.url } })
      check_call(client, echo("{{body}}"))
      client:close()
    end)

    it("hides a signature even when no key is known (a signed request of one's own)", function()
      local redaction = require("pipeline.redaction")
      local text = redaction.redact("Authorization: SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, "
        .. "Signature=0123456789abcdef0123")
      support.lacks(text, "0123456789abcdef0123")
      support.contains(text, "Signature=***")
    end)

    it("strips control characters from info.request_id", function()
      server:always({ status_line = "HTTP/1.1 404 Not Found", headers = { { "X-Request-Id", "id\1\127\27[2Jok" } },
        json = { error_code = "X.1" } })
      local client = new_client()
      local _, _, code, info = client:detail(P, R)
      assert.equal("not_found", code)
      assert.is_nil(info.request_id:find("%c"), info.request_id)
      client:close()
    end)

    it("never reaches the CLI's --json document or its -v lines", function()
      server:always(echo("{{x-auth-token}}"))
      local r = json_program({ "-v", "status", P, R })
      assert.equal(3, r.code)
      support.contains(r.err, "request-id ***")
      server:always({ json = { id = R, status = "COMPLETED", name = "{{x-auth-token}}" } })
      r = json_program({ "status", P, R })
      assert.equal(0, r.code)
      r = program({ "status", P, R })
      assert.equal(0, r.code)
    end)
  end)

  ------------------------------------------------------------------ 3

  describe("3. server data of the wrong shape", function()
    local function with(fields)
      local run = cjson.decode(cjson.encode(RUN))
      for name, value in pairs(fields) do run[name] = value end
      return run
    end

    local BAD_RUNS = {
      ["stages [1]"] = with({ stages = { 1 } }),
      ["jobs [5]"] = with({ stages = { { name = "s", status = "FAILED", jobs = { 5 } } } }),
      ["end_time 1e300"] = with({ status = "FAILED", end_time = 1e300 }),
      ["start_time a table"] = with({ start_time = { 1 } }),
      ["name a table"] = with({ name = { x = 1 } }),
      ["stages an object"] = with({ stages = "Build" }),
    }

    for name, run in pairs(BAD_RUNS) do
      it(("(%s) is a protocol failure of status and wait, exit 3"):format(name), function()
        server:always({ json = run })
        for _, args in ipairs({ { "status", P, R }, { "wait", P, R, "--interval", "0.01" } }) do
          local r, document = json_program(args)
          assert.equal(3, r.code, r.out .. r.err)
          assert.equal("protocol", document.code)
          support.lacks(document.message, "internal error")
          support.contains(document.message, "unexpected response")
          r = program(args)
          assert.equal(3, r.code)
          support.lacks(r.err, "internal error")
        end
      end)
    end

    it("in a list of runs or pipelines, exit 3", function()
      server:always({ json = { total = 2, pipeline_runs = { RUN, 5 } } })
      local r, document = json_program({ "runs", P })
      assert.equal("protocol", document.code, r.out)
      server:always({ json = { total = 1, pipelines = { { pipeline_id = P, name = "n", latest_run = { start_time = "x" } } } } })
      r, document = json_program({ "pipelines" })
      assert.equal("protocol", document.code, r.out)
    end)

    it("an error_code that is an object never shows as table: 0x...", function()
      server:always({ status_line = "HTTP/1.1 400 Bad Request", json = { error_code = {}, error_msg = "m" } })
      local client = new_client()
      local _, message, code = client:detail(P, R)
      assert.equal("api", code)
      support.lacks(message, "table:")
      server:always({ json = { error_code = {}, status = "COMPLETED" } })
      _, message, code = client:detail(P, R)
      assert.equal("protocol", code, message)
      support.lacks(message, "table:")
      client:close()
      local r = program({ "status", P, R })
      support.lacks(r.err, "table:")
    end)
  end)

  ------------------------------------------------------------------ 4

  describe("4. SIGINT and SIGTERM", function()
    -- Starts the program in the background, sends each signal of signals
    -- (0.2 s apart) after a second, and waits for it: {code, out, err,
    -- seconds from the first signal to the exit}, printed.
    local function interrupted(args, signals, extra)
      local dir = support.test_dir()
      local kills = {}
      for _, signal in ipairs(signals) do kills[#kills + 1] = ("kill -%s $pid 2>/dev/null; sleep 0.2"):format(signal) end
      local script = ("%s >%s/out 2>%s/err </dev/null & pid=$!; sleep 1; start=$(date +%%s%%N); %s; wait $pid; "
        .. "code=$?; end=$(date +%%s%%N); echo \"$code $(( (end - start) / 1000000 ))\"")
        :format(program_command(args, extra), dir, dir, table.concat(kills, "; "))
      local pipe = assert(io.popen(script))
      local code, ms = pipe:read("*a"):match("^(%d+) (%d+)")
      pipe:close()
      local result = { code = tonumber(code), seconds = tonumber(ms) / 1000,
        out = support.read_file(dir .. "/out"), err = support.read_file(dir .. "/err") }
      -- the 0.2 s pauses between signals are the script's, not the program's
      result.seconds = result.seconds - 0.2 * #signals
      print(("  %s after %s: exit %d in %.3f s"):format(table.concat(args, " "), table.concat(signals, ", "),
        result.code, result.seconds))
      assert_clean(result.out, "stdout")
      assert_clean(result.err, "stderr")
      return result
    end

    local RUNNING = { json = { id = R, status = "RUNNING", stages = {} } }

    it("SIGINT during --interval 30 (off a terminal) exits 130 at once, with the JSON document", function()
      server:always(RUNNING)
      local r = interrupted({ "--json", "wait", P, R, "--interval", "30" }, { "INT" })
      assert.equal(130, r.code, r.err)
      assert.is_true(r.seconds < 5)
      local document = cjson.decode(r.out)
      assert.same({ false, 130, "interrupted" }, { document.ok, document.exit, document.code })
      support.contains(document.message, "SIGINT")
      assert.equal("RUNNING", document.last_status)
    end)

    it("SIGTERM during a slow request exits 143 at once, with the message", function()
      server:always({ delay = 30, json = RUN })
      local r = interrupted({ "status", P, R }, { "TERM" })
      assert.equal(143, r.code, r.err)
      assert.is_true(r.seconds < 5)
      support.contains(r.err, "interrupted by SIGTERM")
    end)

    it("SIGINT during a slow retry settles its outcome, then exits 130 without following", function()
      server:answer({ { delay = 30, json = { success = true } } }, { json = RUN })
      local r = interrupted({ "--json", "retry", P, R, "--wait", "--interval", "30" }, { "INT" })
      assert.equal(130, r.code, r.err)
      assert.is_true(r.seconds < 5)
      local document = cjson.decode(r.out)
      assert.equal("interrupted", document.code)
      assert.is_true(document.outcome.ok) -- the run's status showed the retry took effect
      local requests = server:requests()
      assert.equal(2, #requests) -- the retry, and the read of the run that settled it
      assert.matches("/retry$", requests[1].path)
      assert.matches("/detail", requests[2].path)
    end)

    it("a second SIGINT also exits cleanly with the message", function()
      server:answer({ { delay = 30, json = { success = true } }, { delay = 30, json = RUN } }, RUNNING)
      local r = interrupted({ "retry", P, R, "--wait" }, { "INT", "INT" })
      assert.equal(130, r.code, r.err)
      assert.is_true(r.seconds < 5)
      support.contains(r.err, "interrupted by SIGINT")
      support.lacks(r.err, "internal error")
    end)

    it("cli.main puts the previous handlers back", function()
      local out, code = support.run_lua([[
        local cli = require("pipeline.cli")
        local exit = cli.main({ "--version" }, { stdout = { write = function() end } })
        io.write("exit ", exit, "\n")
        io.stdout:flush()
        os.execute("kill -TERM $PPID") -- the default action again: the process ends here
        io.write("not reached\n")
      ]])
      assert.equal("exit 0\n", out)
      assert.not_equal(0, code)
    end)

    it("the library installs no handler for a host", function()
      local out, code = support.run_lua([[
        local pipeline = require("pipeline")
        local client = pipeline.new({ endpoint = "http://127.0.0.1:9", project_id = ("0"):rep(32), token = "t-host" })
        client:close()
        io.write(tostring((pipeline.core.interrupted())), "\n")
        io.stdout:flush()
        os.execute("kill -TERM $PPID")
        io.write("not reached\n")
      ]])
      assert.equal("nil\n", out)
      assert.not_equal(0, code)
    end)
  end)

  ------------------------------------------------------------------ 5

  describe("5. a hostile config file", function()
    -- pipeline.load on the config file at path: a config failure, quickly
    -- (the time is printed; the bound asserted is generous), saying fragment
    -- (or, a list, one of them: which bound is hit first may depend on the
    -- machine's speed).
    local function refused(path, fragment)
      local started = core.monotonic()
      local ok, client, message, code = pcall(pipeline.load, { config_file = path, token = "t-option" })
      local seconds = core.monotonic() - started
      print(("  %s: %.3f s"):format(type(fragment) == "table" and fragment[1] or fragment, seconds))
      assert.is_true(ok, tostring(client))
      assert.is_nil(client)
      assert.equal("config", code, message)
      local said = false
      for _, each in ipairs(type(fragment) == "table" and fragment or { fragment }) do
        said = said or message:find(each, 1, true) ~= nil
      end
      assert.is_true(said, message)
      assert.is_true(seconds < 5)
      return message
    end

    local function chunk(text)
      return support.write_file(support.test_dir() .. "/config.lua", text, "600")
    end

    it("pattern matching is not there (a backtracking find runs for minutes)", function()
      refused(chunk('local x = ("a"):rep(22):find(("a?"):rep(22) .. ("a"):rep(22) .. "b")\nreturn { profiles = {} }\n'),
        "error while running it")
    end)

    it("40 x ('x'):rep(2^28) hits the memory limit", function()
      refused(chunk('local t = {}\nfor i = 1, 40 do t[i] = ("x"):rep(2^28) end\nreturn { profiles = {} }\n'),
        "too much memory")
    end)

    it("a string doubled by concatenation hits the memory limit", function()
      refused(chunk('local s = "x"\nfor i = 1, 40 do s = s .. s end\nreturn { profiles = {} }\n'), "too much memory")
    end)

    it("string work that stays under the memory limit hits the time bound", function()
      -- (Lua 5.1, which collects no garbage when an allocation fails, may
      -- reach the memory limit first)
      refused(chunk('local s = ("x"):rep(4000000)\nfor i = 1, 1e9 do local t = s .. i end\nreturn { profiles = {} }\n'),
        _VERSION == "Lua 5.1" and { "took too long", "too much memory" } or "took too long")
    end)

    it("1.5M profiles hit a bound (memory, or time on a loaded machine); 1001 the profile bound", function()
      refused(chunk('local p = {}\nfor i = 1, 1500000 do p["p" .. i] = { timeout = 1 } end\nreturn { profiles = p }\n'),
        { "too much memory", "took too long" })
      refused(chunk('local p = {}\nfor i = 1, 1001 do p["p" .. i] = {} end\nreturn { profiles = p }\n'),
        "more than 1000 profiles")
    end)

    it("a config path that is /dev/zero, a folder or a FIFO is refused at once", function()
      refused("/dev/zero", "not a regular file")
      refused(support.test_dir(), "not a regular file")
      local fifo = support.test_dir() .. "/fifo"
      support.shell("mkfifo " .. support.quote(fifo))
      refused(fifo, "not a regular file")
    end)

    it("a config file over 1 MiB is refused", function()
      refused(chunk("return { profiles = {} }\n--" .. ("x"):rep(1024 * 1024) .. "\n"), "larger than")
    end)

    it("a token_file that is /dev/zero or a FIFO is refused at once", function()
      local fifo = support.test_dir() .. "/fifo"
      support.shell("mkfifo -m 600 " .. support.quote(fifo))
      for _, path in ipairs({ "/dev/zero", fifo }) do
        local config_path = chunk(("return { profiles = { default = { endpoint = %q, project_id = %q, "
          .. "token_file = %q } } }\n"):format(server.url, PROJECT, path))
        local started = core.monotonic()
        local ok, client, message, code = pcall(pipeline.load, { config_file = config_path })
        print(("  token_file %s: %.3f s"):format(path, core.monotonic() - started))
        assert.is_true(ok, tostring(client))
        assert.equal("config", code, message)
        support.contains(message, "not a regular file")
      end
    end)

    it("the host's string library and globals are untouched", function()
      refused(chunk("string = nil\nreturn { profiles = {} }\n--" .. ("x"):rep(1024 * 1024) .. "\n"), "larger than")
      local _, message, code = pipeline.load({ config_file = chunk("getmetatable('').__index = nil\n") })
      assert.equal("config", code)
      support.contains(message, "getmetatable")
      assert.equal("aa", ("a"):rep(2))
      assert.is_function(string.find)
    end)
  end)

  ------------------------------------------------------------------ 6

  describe("6. very long computed sleeps", function()
    local MAX_SLEEP = require("pipeline.client").MAX_SLEEP

    it("a wait with timeout 2e9 and interval 1.5e9 sleeps at most MAX_SLEEP at once", function()
      server:answer({ { json = { id = R, status = "RUNNING" } } }, { json = RUN })
      local slept = {}
      local client = new_client({ sleep = function(seconds) slept[#slept + 1] = seconds end })
      local ok, status = pcall(client.wait, client, P, R, { timeout = 2e9, interval = 1.5e9 })
      assert.is_true(ok, tostring(status))
      assert.equal("COMPLETED", status)
      assert.same({ MAX_SLEEP }, slept)
      client:close()
    end)

    it("a huge Retry-After with max_delay = math.huge is cut to MAX_SLEEP", function()
      server:answer({ { status_line = "HTTP/1.1 429 Too Many", headers = { { "Retry-After", "99999999999" } },
        json = { error_code = "APIGW.0308" } } }, { json = { success = true } })
      local slept = {}
      local client = new_client({ retries = { max = 1, max_delay = math.huge },
        sleep = function(seconds) slept[#slept + 1] = seconds end })
      local ok, result, message = pcall(client.retry, client, P, R)
      assert.is_true(ok, tostring(result))
      assert.is_true(result, message)
      assert.same({ MAX_SLEEP }, slept)
      client:close()
    end)

    it("a huge Retry-After inside a wait is cut by the wait's deadline", function()
      server:always({ status_line = "HTTP/1.1 503 Unavailable", headers = { { "Retry-After", "86400" } },
        json = { error_code = "APIGW.0201" } })
      local slept = {}
      local client = new_client({ retries = { max_delay = math.huge },
        sleep = function(seconds) slept[#slept + 1] = seconds end })
      local status, message, code = client:wait(P, R, { timeout = 10, interval = 1 })
      assert.is_nil(status)
      assert.equal("timeout", code, message)
      for _, seconds in ipairs(slept) do assert.is_true(seconds <= 10) end
      client:close()
    end)
  end)

  ------------------------------------------------------------------ 7

  describe("7. client:step with a bad timeout", function()
    for _, bad in ipairs({ -1, 0 / 0, "1" }) do
      it(("(%s) raises before anything changes; the job goes on"):format(tostring(bad)), function()
        server:always({ delay = 0.3, json = RUN })
        local client = new_client()
        local job = client:start("detail", P, R)
        client:step(0) -- the request is on its way
        local ok, err = pcall(client.step, client, bad)
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'step'", err)
        local deadline = core.monotonic() + 10
        while not job.done and core.monotonic() < deadline do client:step(0.05) end
        assert.is_true(job.done)
        assert.equal("COMPLETED", (job:result()).status)
        client:close()
      end)
    end
  end)

  ------------------------------------------------------------------ 8

  describe("8. *_many options of the wrong type", function()
    for _, fname in ipairs({ "wait_many", "retry_and_wait_many", "retry_many" }) do
      for _, bad in ipairs({ 5, true, function() end, "x" }) do
        it(("%s({}, %s) raises bad argument #2"):format(fname, type(bad)), function()
          local client = new_client()
          local ok, err = pcall(client[fname], client, {}, bad)
          assert.is_false(ok)
          assert.matches("bad argument #2 to '" .. fname .. "' %(options must be a table, got " .. type(bad), err)
          client:close()
        end)
      end
    end
  end)

  ------------------------------------------------------------------ 9

  describe("9. endless paging", function()
    local client_module = require("pipeline.client")

    it("the CLI stops at the documented maximum against total 1e9, with a clear message", function()
      server:always({ pages = { field = "pipelines", total = 1e9 } })
      local r, document = json_program({ "pipelines" })
      assert.equal(3, r.code)
      assert.equal("protocol", document.code)
      support.contains(document.message, ("more than %d pages"):format(client_module.MAX_PAGES))
      assert.equal(client_module.MAX_PAGES + 1, #server:requests())
    end)

    it("the CLI and each_pipeline stop at a page repeating the previous one", function()
      server:always({ pages = { field = "pipelines", total = 1e9, ["repeat"] = true } })
      local r, document = json_program({ "pipelines" })
      assert.equal("protocol", document.code, r.out)
      support.contains(document.message, "same page")
      assert.equal(2, #server:requests())
      server:always({ pages = { field = "pipeline_runs", total = 1e9, ["repeat"] = true } })
      local client = new_client()
      local seen, failure, code = 0, nil, nil
      for run, message, failure_code in client:each_run(P) do
        if run == false then failure, code = message, failure_code else seen = seen + 1 end
      end
      assert.equal(50, seen)
      assert.equal("protocol", code)
      support.contains(failure, "same page")
      client:close()
    end)

    it("each_pipeline stops at the documented maximum", function()
      server:always({ pages = { field = "pipelines", total = 1e9 } })
      local saved = client_module.MAX_PAGES
      client_module.MAX_PAGES = 5
      local client = new_client()
      local seen, code = 0, nil
      for item, _, failure_code in client:each_pipeline() do
        if item == false then code = failure_code else seen = seen + 1 end
      end
      client_module.MAX_PAGES = saved
      assert.equal(250, seen)
      assert.equal("protocol", code)
      client:close()
    end)

    it("an empty page ends the listing", function()
      server:always({ json = { total = 1e9, pipelines = {} } })
      local r, document = json_program({ "pipelines" })
      assert.equal(0, r.code, r.out)
      assert.same({}, document.pipelines)
      assert.equal(1, #server:requests())
    end)
  end)

  ------------------------------------------------------------------ 10

  describe("10. smaller ones", function()
    local function config_file(mode, profile)
      local path = support.write_file(support.test_dir() .. "/config.lua",
        ("return { profiles = { default = { endpoint = %q, project_id = %q, %s } } }\n")
          :format(server.url, PROJECT, profile), mode)
      return path
    end

    for _, mode in ipairs({ "620", "602", "630", "603" }) do
      it(("a config file with a token and mode %s (group or others may write) is refused"):format(mode), function()
        local _, message, code = pipeline.load({ config_file = config_file(mode, ("token = %q"):format(CANARY)) })
        assert.equal("config", code)
        support.contains(message, "writable")
        support.lacks(message, CANARY)
      end)
    end

    it("a token_file that group may write is refused", function()
      local dir = support.test_dir()
      support.write_file(dir .. "/token", CANARY, "620")
      local _, message, code = pipeline.load({ config_file = config_file("600", ("token_file = %q"):format(dir .. "/token")) })
      assert.equal("config", code, message)
      support.contains(message, "token_file")
    end)

    it("a proxy password in a config file readable by others is refused as a secret", function()
      local path = config_file("644", ("token_file = nil, proxy = %q"):format("http://user:" .. CANARY .. "@127.0.0.1:9"))
      local _, message, code = pipeline.load({ config_file = path, token = "t-option" })
      assert.equal("config", code, message)
      support.lacks(message, CANARY)
      support.contains(message, "chmod 600")
    end)

    it("a proxy without a password in a 0644 config file is fine", function()
      local path = config_file("644", "proxy = 'http://127.0.0.1:9'")
      local client, message = pipeline.load({ config_file = path, token = "t-option" })
      assert.is_table(client, message)
      client:close()
    end)

    for _, interval in ipairs({ 0, -1 }) do
      it(("interval = %d is misuse and raises (wait, wait_many, retry_failed)"):format(interval), function()
        local client = new_client()
        for _, call in ipairs({
          function() return client:wait(P, R, { interval = interval }) end,
          function() return client:wait_many({ { P, R } }, { interval = interval }) end,
          function() return client:retry_failed(P, { interval = interval }) end,
        }) do
          local ok, err = pcall(call)
          assert.is_false(ok)
          assert.matches("bad argument .*'interval'", err)
        end
        assert.equal(0, #server:requests())
        client:close()
      end)
    end

    it("--interval 0 is a usage error of the CLI", function()
      local r = program({ "wait", P, R, "--interval", "0" })
      assert.equal(2, r.code)
      support.contains(r.err, "--interval")
    end)
  end)

  ------------------------------------------------------------------ 10 (status lines)

  describe("10. a status line that is not HTTP/1.x", function()
    for _, line in ipairs({ "abc", "000", "HTTP/9.9 200 OK", "HTTP/1.1 abc" }) do
      it(("(%s) is protocol, not repeated"):format(line), function()
        server:always({ raw = line .. "\r\nContent-Length: 2\r\n\r\n{}" })
        local client = new_client({ retries = { max = 3 } })
        local run, message, code, info = client:detail(P, R)
        assert.is_nil(run)
        assert.equal("protocol", code, message)
        assert.is_false(info.retryable)
        assert.equal(1, #server:requests())
        client:close()
      end)
    end
  end)
end)

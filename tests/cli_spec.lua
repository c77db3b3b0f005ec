-- The command-line program against the simulator: every command,
-- option and exit status, run as a child process (bin/codearts-pipeline) with
-- stdout and stderr checked apart; --json documents parsed back; the live
-- display under a real pseudo-terminal (util-linux `script`); a canary token
-- that must never be printed; and cli.main in-process with injected streams.
-- Run plans advance per detail read, so waits use tiny intervals.
local cjson = require("cjson")
local simulator = require("sim")
local support = require("support")
local cli = require("pipeline.cli")

local PROJECT, PIPELINE = simulator.PROJECT, simulator.PIPELINE
local CANARY = "CANARY-cli-token-7f3a9c21e5"
-- the seeded demo data (tests/simulator/README.md, --seed)
local RUN_A = ("a"):rep(32) -- #3 FAILED, the latest of PIPELINE
local RUN_B = ("b"):rep(32) -- #1 COMPLETED
local RUN_C = ("c"):rep(32) -- #2 FAILED
local DEPLOY = "abcdef0123456789abcdef0123456789"

local ROOT, LUA = support.ROOT, support.LUA

describe("codearts-pipeline", function()
  local sim = simulator.fixture({ "--seed", "--token", "sim-token", "--token", CANARY })
  local home

  setup(function() home = support.temp_dir() end)
  teardown(function() support.remove(home) end)
  after_each(support.remove_test_dirs)

  -- The environment of the child process: the simulator, the canary token,
  -- an empty HOME; extra adds or (with false) removes variables.
  local function environment(extra)
    local env = support.lua_environment({
      PATH = os.getenv("PATH"),
      HOME = home,
      CODEARTS_PIPELINE_ENDPOINT = sim.url,
      CODEARTS_PIPELINE_PROJECT_ID = PROJECT,
      CODEARTS_PIPELINE_TOKEN = CANARY,
    })
    for name, value in pairs(extra or {}) do env[name] = value end
    return env
  end

  -- The shell command running the program: with the interpreter running the
  -- specs, the one given as interpreter, or (false) by its #! line.
  local function command_line(args, extra, interpreter)
    local argv = {}
    if interpreter == nil then interpreter = LUA end
    if interpreter then argv[1] = interpreter end
    argv[#argv + 1] = ROOT .. "/bin/codearts-pipeline"
    for _, arg in ipairs(args) do argv[#argv + 1] = arg end
    return support.command(argv, environment(extra))
  end

  -- Runs the program; returns {code, out, err}.  No output ever holds the
  -- canary token.
  local function program(args, extra, interpreter)
    local out_path, err_path = home .. "/stdout", home .. "/stderr"
    local code = support.execute(command_line(args, extra, interpreter) .. " >" .. support.quote(out_path)
      .. " 2>" .. support.quote(err_path) .. " </dev/null")
    local result = { code = code, out = assert(support.read_file(out_path)), err = assert(support.read_file(err_path)) }
    assert.is_nil(result.out:find(CANARY, 1, true), "the token was printed on stdout")
    assert.is_nil(result.err:find(CANARY, 1, true), "the token was printed on stderr")
    return result
  end

  -- Runs the program with --json: the result, and stdout parsed (it must be
  -- exactly one JSON document).
  local function json_program(args, extra)
    local full = { "--json" }
    for _, arg in ipairs(args) do full[#full + 1] = arg end
    local result = program(full, extra)
    assert.matches("^{.*}\n$", result.out)
    local document = cjson.decode(result.out)
    assert.is_table(document)
    assert.equal(result.code, document.exit)
    assert.equal(result.code == 0, document.ok)
    return result, document
  end

  local lines_of = support.lines

  ------------------------------------------------------------ help

  describe("help and version", function()
    it("--help answers a first user's questions on stdout, exit 0", function()
      for _, flag in ipairs({ "--help", "-h" }) do
        local r = program({ flag })
        assert.equal(0, r.code)
        assert.equal("", r.err)
        for _, command in ipairs({ "retry", "status", "wait", "runs", "run", "stop", "retry-failed", "pipelines" }) do
          assert.matches("\n  " .. command:gsub("%-", "%%-") .. " ", r.out)
        end
        for _, text in ipairs({ "CodeArts Pipeline", "CODEARTS_PIPELINE_ENDPOINT", "CODEARTS_PIPELINE_TOKEN",
          "HUAWEICLOUD_SDK_AK", "config.lua", "credentials", "docs/cli.md", "Exit status", "--json", "--profile",
          "--timeout", "--wait && " }) do
          assert.truthy(r.out:find(text, 1, true), text)
        end
        for code = 0, 5 do assert.matches("\n  " .. code .. "  ", r.out) end
      end
      assert.equal(0, #sim:requests())
    end)

    it("bin/codearts-pipeline runs by its #! line and with an explicit interpreter", function()
      local direct = io.open(ROOT .. "/bin/codearts-pipeline"):read("*l")
      assert.equal("#!/usr/bin/env lua5.4", direct)
      if LUA:match("lua5%.4$") then
        local r = program({ "--version" }, nil, false)
        assert.equal(0, r.code)
        assert.matches("^codearts%-pipeline ", r.out)
      end
      local r = program({ "--version" }, nil, LUA)
      assert.equal(0, r.code)
      assert.matches("^codearts%-pipeline ", r.out)
    end)

    it("every command has its --help (and `help COMMAND`)", function()
      for _, command in ipairs(cli.commands) do
        for _, args in ipairs({ { command.name, "--help" }, { "help", command.name }, { "-h", command.name } }) do
          local r = program(args)
          assert.equal(0, r.code)
          assert.equal("", r.err)
          assert.equal(1, r.out:find("Usage: codearts-pipeline " .. command.name .. " ", 1, true))
          assert.truthy(r.out:find("Example", 1, true))
        end
      end
      assert.equal(0, #sim:requests())
    end)

    it("--help of an unknown command is a usage error", function()
      local r = program({ "frobnicate", "--help" })
      assert.equal(2, r.code)
      assert.matches("unknown command \"frobnicate\"", r.err)
    end)

    it("--version prints the version; with --json as a document", function()
      local r = program({ "--version" })
      assert.equal(0, r.code)
      assert.matches("^codearts%-pipeline %d+%.%d+%.%d+", r.out)
      local _, document = json_program({ "--version" })
      assert.matches("^%d+%.%d+%.%d+", document.version)
    end)
  end)

  ------------------------------------------------------------ usage

  describe("bad usage", function()
    local P, A = PIPELINE, RUN_A
    local cases = {
      { args = {}, says = "no command given" },
      { args = { "bogus" }, says = "unknown command \"bogus\"" },
      { args = { "retry", P }, says = "missing RUN" },
      { args = { "retry" }, says = "missing PIPELINE" },
      { args = { "retry", P, A, "extra" }, says = "unexpected argument \"extra\"" },
      { args = { "retry", P, ("a"):rep(31) }, says = "RUN must be 32 ASCII letters or digits" },
      { args = { "status", ("a"):rep(31) .. "-", A }, says = "PIPELINE must be 32 ASCII letters or digits" },
      { args = { "wait", P, ("é"):rep(16) }, says = "RUN must be 32" },
      { args = { "retry", P, A, "--bogus" }, says = "unknown option \"--bogus\"" },
      { args = { "-x", "pipelines" }, says = "unknown option \"-x\"" },
      { args = { "runs", P, "--limit", "abc" }, says = "--limit needs a whole number" },
      { args = { "runs", P, "--limit", "0" }, says = "--limit needs a whole number of at least 1" },
      { args = { "runs", P, "--limit", "2.5" }, says = "--limit needs a whole number" },
      { args = { "runs", P, "--limit", "0x10" }, says = "--limit needs a whole number" },
      { args = { "runs", P, "--limit" }, says = "option --limit needs a value" },
      { args = { "runs", P, "--limit", "5", "--limit", "6" }, says = "option --limit given twice" },
      { args = { "runs", P, "--status", "DONE" }, says = "unknown status \"DONE\"" },
      { args = { "retry-failed", P, "--attempts", "x" }, says = "--attempts needs a whole number" },
      { args = { "wait", P, A, "--interval", "-1" }, says = "--interval needs a number" },
      { args = { "wait", P, A, "--timeout", "soon" }, says = "--timeout needs a number" },
      { args = { "wait", P, A, "--timeout", "0" }, says = "--timeout needs a number of seconds from 0.001 to 2147483" },
      { args = { "wait", P, A, "--timeout", "3000000" }, says = "--timeout needs a number of seconds from 0.001" },
      { args = { "run", P, "--var", "NOEQUALS" }, says = "--var needs NAME=VALUE" },
      { args = { "run", P, "--var", "=x" }, says = "--var needs NAME=VALUE" },
      { args = { "status", P, A, "--wait" }, says = "option --wait does not apply to 'status'" },
      { args = { "pipelines", "--attempts", "2" }, says = "option --attempts does not apply to 'pipelines'" },
      { args = { "retry", P, A, "--interval", "1" }, says = "--interval needs --wait" },
      { args = { "--project", "short", "pipelines" }, says = "--project must be 32 ASCII letters or digits" },
      { args = { "--json=yes", "pipelines" }, says = "option --json takes no value" },
    }

    it("prints a short usage line on stderr, exit 2, nothing sent", function()
      for _, case in ipairs(cases) do
        local r = program(case.args)
        assert.equal(2, r.code, table.concat(case.args, " "))
        assert.equal("", r.out)
        assert.truthy(r.err:find(case.says, 1, true), case.says .. " in " .. r.err)
        assert.matches("\nusage: codearts%-pipeline ", r.err)
        assert.is_true(#lines_of(r.err) <= 3)
      end
      assert.equal(0, #sim:requests())
    end)

    it("names the command's own usage line", function()
      local r = program({ "runs", PIPELINE, "--limit", "x" })
      assert.truthy(r.err:find("usage: codearts-pipeline runs PIPELINE [--status S] [--limit N]", 1, true))
      assert.truthy(r.err:find("codearts-pipeline runs --help", 1, true))
    end)

    it("with --json: one document {ok=false, code=usage, exit=2}, stderr empty", function()
      for _, case in ipairs(cases) do
        if case.args[1] ~= "--json=yes" then
          local r, document = json_program(case.args)
          assert.equal(2, r.code)
          assert.equal("", r.err)
          assert.equal("usage", document.code)
          assert.truthy(document.message:find(case.says, 1, true))
          assert.matches("^codearts%-pipeline ", document.usage)
        end
      end
      assert.equal(0, #sim:requests())
    end)

    it("takes --name=value, and -- ends the options", function()
      local r = program({ "runs", "--limit=1", PIPELINE })
      assert.equal(0, r.code)
      assert.equal(2, #lines_of(r.out))
      r = program({ "pipelines", "--", "--json" })
      assert.equal(2, r.code)
      assert.matches("unexpected argument \"%-%-json\"", r.err)
    end)
  end)

  ------------------------------------------------------------ configuration

  describe("configuration", function()
    it("no endpoint: exit 2, a message that says what to set, nothing sent", function()
      local r = program({ "status", PIPELINE, RUN_A }, { CODEARTS_PIPELINE_ENDPOINT = false })
      assert.equal(2, r.code)
      assert.equal("", r.out)
      assert.matches("no endpoint", r.err)
      assert.matches("CODEARTS_PIPELINE_ENDPOINT", r.err)
      assert.matches("%-%-help", r.err)
      local _, document = json_program({ "status", PIPELINE, RUN_A }, { CODEARTS_PIPELINE_ENDPOINT = false })
      assert.equal("config", document.code)
      assert.equal(0, #sim:requests())
    end)

    it("no credentials, an unknown profile, a missing config file, an unknown region: exit 2", function()
      local cases = {
        { args = { "pipelines" }, env = { CODEARTS_PIPELINE_TOKEN = false }, says = "credentials" },
        { args = { "--profile", "nope", "pipelines" }, says = "profile 'nope'" },
        { args = { "pipelines" }, env = { CODEARTS_PIPELINE_PROFILE = "nope" }, says = "profile 'nope'" },
        { args = { "--config", home .. "/absent.lua", "pipelines" }, says = "absent.lua" },
        { args = { "--region", "xx-nowhere-9", "pipelines" }, says = "xx-nowhere-9" },
      }
      for _, case in ipairs(cases) do
        local r, document = json_program(case.args, case.env)
        assert.equal(2, r.code, case.says)
        assert.equal("config", document.code)
        assert.truthy(document.message:find(case.says, 1, true), document.message)
      end
      assert.equal(0, #sim:requests())
    end)

    it("global options win over the environment", function()
      -- the environment points at a closed port and another project
      local env = { CODEARTS_PIPELINE_ENDPOINT = "http://127.0.0.1:1",
        CODEARTS_PIPELINE_PROJECT_ID = ("0"):rep(32) }
      local r = program({ "--endpoint", sim.url, "--project", PROJECT, "status", PIPELINE, RUN_A }, env)
      assert.equal(0, r.code)
      assert.matches("FAILED", r.out)
    end)

    it("reads a config file profile: --config/--profile, the environment, the default path", function()
      local dir = support.test_dir()
      local text = ([[return { default_profile = "ci", profiles = {
        ci = { endpoint = %q, project_id = %q, token = %q },
        other = { endpoint = "http://127.0.0.1:1", project_id = %q, token = "x-token" } } }]])
        :format(sim.url, PROJECT, CANARY, PROJECT)
      support.write_file(dir .. "/config.lua", text, "600")
      local bare = { CODEARTS_PIPELINE_ENDPOINT = false, CODEARTS_PIPELINE_PROJECT_ID = false,
        CODEARTS_PIPELINE_TOKEN = false }
      local r = program({ "--config", dir .. "/config.lua", "--profile", "ci", "pipelines" }, bare)
      assert.equal(0, r.code)
      assert.matches("demo%-build", r.out)
      -- the file's default_profile
      r = program({ "pipelines", "--config", dir .. "/config.lua" }, bare)
      assert.equal(0, r.code)
      -- CODEARTS_PIPELINE_CONFIG, and --profile over CODEARTS_PIPELINE_PROFILE
      bare.CODEARTS_PIPELINE_CONFIG = dir .. "/config.lua"
      bare.CODEARTS_PIPELINE_PROFILE = "other"
      r = program({ "--profile", "ci", "pipelines" }, bare)
      assert.equal(0, r.code)
      -- ${XDG_CONFIG_HOME}/codearts-pipeline/config.lua
      bare.CODEARTS_PIPELINE_CONFIG, bare.CODEARTS_PIPELINE_PROFILE = false, false
      support.write_file(dir .. "/xdg/codearts-pipeline/config.lua", text, "600")
      bare.XDG_CONFIG_HOME = dir .. "/xdg"
      r = program({ "pipelines" }, bare)
      assert.equal(0, r.code)
      -- a file holding a token that others may read is refused
      support.write_file(dir .. "/open.lua", text, "644")
      r = program({ "--config", dir .. "/open.lua", "pipelines" }, bare)
      assert.equal(2, r.code)
      assert.matches("chmod 600", r.err)
    end)

    it("a token_file holding a tab inside the token: exit 2 with the file named, never the token", function()
      local dir = support.test_dir()
      support.write_file(dir .. "/token", CANARY .. "\t" .. CANARY .. "\n", "600")
      support.write_file(dir .. "/config.lua", ([[return { profiles = { default = { endpoint = %q,
        project_id = %q, token_file = "token" } } }]]):format(sim.url, PROJECT), "600")
      local bare = { CODEARTS_PIPELINE_ENDPOINT = false, CODEARTS_PIPELINE_TOKEN = false,
        CODEARTS_PIPELINE_CONFIG = dir .. "/config.lua" }
      local r = program({ "status", PIPELINE, RUN_A }, bare)
      assert.equal(2, r.code, r.err)
      assert.equal("", r.out)
      assert.equal(1, #lines_of(r.err) - 1, r.err) -- the message, then the hint
      assert.matches("token_file " .. dir:gsub("%p", "%%%0") .. "/token holds a control character", r.err)
      assert.is_nil(r.err:find("internal error", 1, true), r.err)
      local _, document = json_program({ "status", PIPELINE, RUN_A }, bare)
      assert.equal("config", document.code)
      assert.equal(2, document.exit)
      assert.equal(0, #sim:requests(), "nothing is sent")
    end)
  end)

  ------------------------------------------------------------ retry

  describe("retry", function()
    it("retries a run: exit 0, a line on stdout, the run RUNNING", function()
      local r = program({ "retry", PIPELINE, RUN_A })
      assert.equal(0, r.code)
      assert.equal("Retried run " .. RUN_A .. " of pipeline " .. PIPELINE .. ".\n", r.out)
      assert.equal("", r.err)
      assert.equal("RUNNING", sim:run_state(RUN_A).status)
      local puts = sim:recorded("PUT", "/retry")
      assert.equal(1, #sim:requests())
      assert.equal(simulator.retry_path(RUN_A), puts[1].path)
      assert.equal(CANARY, puts[1].headers["x-auth-token"])
    end)

    it("--json: {ok, command, pipeline_id, run_id}", function()
      local r, document = json_program({ "retry", PIPELINE, RUN_A })
      assert.equal(0, r.code)
      assert.equal("", r.err)
      assert.same({ ok = true, exit = 0, command = "retry", pipeline_id = PIPELINE, run_id = RUN_A }, document)
    end)

    it("--wait follows the run: exit 0 when it ends COMPLETED", function()
      local run = sim:add_run({ status = "FAILED", polls = 2 })
      local r = program({ "retry", PIPELINE, run, "--wait", "--interval", "0.001" })
      assert.equal(0, r.code)
      assert.equal("Run " .. run .. " ended COMPLETED.\n", r.out)
      assert.matches("Retried run " .. run .. "; following it", r.err)
      assert.matches("%] run " .. run .. " RUNNING\n", r.err)
      assert.matches("%] stage Test COMPLETED\n", r.err)
      assert.equal(3, sim:run_state(run).detail_reads)
    end)

    it("--wait: exit 1 when it ends FAILED, with the failed job's message", function()
      local run = sim:add_run({ status = "FAILED", polls = 1, outcome = "FAILED" })
      local r = program({ "retry", PIPELINE, run, "--wait", "--interval", "0.001" })
      assert.equal(1, r.code)
      assert.matches("^Run " .. run .. " ended FAILED%.\n", r.out)
      assert.matches("Test / unit%-tests: FAILED: unit%-tests failed: 3 of 120 tests failed", r.out)
      run = sim:add_run({ status = "FAILED", polls = 1, outcome = "FAILED" })
      local _, document = json_program({ "retry", PIPELINE, run, "--wait", "--interval", "0.001" })
      assert.equal("FAILED", document.status)
      assert.equal("run_failed", document.code)
      assert.equal(run, document.run.id)
      assert.equal(2, #document.run.stages)
    end)

    it("`retry P R --wait && deploy` deploys only after COMPLETED", function()
      local good = sim:add_run({ status = "FAILED" })
      local bad = sim:add_run({ status = "FAILED", outcome = "FAILED" })
      for _, case in ipairs({ { run = good, deployed = true }, { run = bad, deployed = false } }) do
        local pipe = assert(io.popen(command_line({ "retry", PIPELINE, case.run, "--wait", "--interval", "0.001" })
          .. " 2>/dev/null && echo DEPLOYED"))
        local out = pipe:read("*a")
        pipe:close()
        assert.equal(case.deployed, out:find("DEPLOYED", 1, true) ~= nil)
      end
    end)

    it("a run that cannot be retried (COMPLETED): exit 3 with the service's error", function()
      local r = program({ "retry", PIPELINE, RUN_B })
      assert.equal(3, r.code)
      assert.equal("", r.out)
      assert.matches("^codearts%-pipeline: retry: refused by the service, HTTP 200, DEVPIPE%.00011203", r.err)
      local _, document = json_program({ "retry", PIPELINE, RUN_B })
      assert.equal("api", document.code)
      assert.equal("DEVPIPE.00011203", document.error_code)
      assert.equal(200, document.http_status)
      assert.equal(RUN_B, document.run_id)
    end)
  end)

  ------------------------------------------------------------ failures

  describe("exit status by failure", function()
    local cases = {
      { fault = { kind = "unauthorized" }, exit = 4, code = "auth", http_status = 401 },
      { fault = { kind = "forbidden" }, exit = 4, code = "auth", http_status = 403 },
      { fault = { kind = "not_found" }, exit = 3, code = "not_found", http_status = 404 },
      { fault = { kind = "error_code_200" }, exit = 3, code = "api", http_status = 200 },
      { fault = { kind = "success_false" }, exit = 3, code = "api", http_status = 200 },
      { fault = { kind = "not_json" }, exit = 3, code = "protocol", http_status = 200 },
      { fault = { kind = "wrong_shape" }, exit = 3, code = "protocol", http_status = 200 },
      { fault = { kind = "throttled", retry_after = 0, times = 0 }, exit = 5, code = "throttled", http_status = 429 },
      -- a server error is an API error (3): 5 is for network, timeout, throttling (docs/cli.md, Exit status)
      { fault = { kind = "unavailable", retry_after = 0, times = 0 }, exit = 3, code = "server", http_status = 503 },
      { fault = { kind = "server_html" }, exit = 3, code = "server", http_status = 500 },
    }
    for _, case in ipairs(cases) do
      it(("%s: exit %d (%s)"):format(case.fault.kind, case.exit, case.code), function()
        sim:fault(case.fault)
        local r = program({ "retry", PIPELINE, RUN_A })
        assert.equal(case.exit, r.code)
        assert.equal("", r.out)
        assert.matches("^codearts%-pipeline: retry: ", r.err)
        if case.code == "auth" then assert.matches("credentials were refused", r.err) end
        sim:reset()
        sim:fault(case.fault)
        local _, document = json_program({ "retry", PIPELINE, RUN_A })
        assert.equal(case.code, document.code)
        assert.equal(case.http_status, document.http_status)
        assert.equal("retry", document.command)
        assert.matches("^retry: ", document.message)
      end)
    end

    it("network failure: exit 5 (network)", function()
      local dir = support.test_dir()
      support.write_file(dir .. "/config.lua", ([[return { profiles = { default = { endpoint = "http://127.0.0.1:1",
        project_id = %q, token = %q, retries = { max = 0 } } } }]]):format(PROJECT, CANARY), "600")
      local bare = { CODEARTS_PIPELINE_ENDPOINT = false, CODEARTS_PIPELINE_TOKEN = false,
        CODEARTS_PIPELINE_CONFIG = dir .. "/config.lua" }
      local r = program({ "-v", "status", PIPELINE, RUN_A }, bare)
      assert.equal(5, r.code)
      assert.matches("network error", r.err)
      local _, document = json_program({ "status", PIPELINE, RUN_A }, bare)
      assert.equal("network", document.code)
    end)

    it("--timeout S is the request timeout: a slow answer gives exit 5 (timeout)", function()
      sim:fault({ kind = "slow", delay = 3, path = "/retry" })
      local started = os.time()
      local r, document = json_program({ "--timeout", "0.3", "retry", PIPELINE, RUN_A })
      assert.equal(5, r.code)
      assert.equal("timeout", document.code)
      assert.is_true(os.time() - started <= 2)
      -- not sent again blindly: the run's status was read instead
      assert.equal(1, #sim:recorded("PUT", "/retry"))
      assert.equal(1, #sim:recorded("GET", "/detail"))
    end)
  end)

  ------------------------------------------------------------ status

  describe("status", function()
    it("shows the run with its stages and jobs; exit 0 whatever the run's status", function()
      local r = program({ "status", PIPELINE, RUN_A })
      assert.equal(0, r.code)
      assert.equal("", r.err)
      local lines = lines_of(r.out)
      assert.equal("Run " .. RUN_A .. " (#3) of demo-build: FAILED", lines[1])
      assert.matches("^  started %d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d, ended .*, took 10m00s$", lines[2])
      assert.equal("  trigger Manual by sim-user", lines[3])
      assert.matches("^  https://devcloud%.sim%.invalid/", lines[4])
      assert.equal("Stages:", lines[5])
      assert.matches("^  Build +COMPLETED$", lines[6])
      assert.matches("^    compile +COMPLETED$", lines[7])
      assert.matches("^  Test +FAILED$", lines[8])
      assert.matches("^    unit%-tests +FAILED +unit%-tests failed: 3 of 120 tests failed$", lines[9])
    end)

    it("--json: {ok, status, run} with the run as the API returns it", function()
      local _, document = json_program({ "status", PIPELINE, RUN_C })
      assert.equal("FAILED", document.status)
      assert.equal(RUN_C, document.run.id)
      assert.equal(2, document.run.run_number)
      assert.equal("unit-tests", document.run.stages[2].jobs[1].name)
      assert.equal(math.floor(document.run.end_time), document.run.end_time)
      assert.equal(1, #sim:requests())
    end)

    it("an unknown run: exit 3 (not_found)", function()
      local r, document = json_program({ "status", PIPELINE, simulator.new_id() })
      assert.equal(3, r.code)
      assert.equal("not_found", document.code)
      assert.equal(404, document.http_status)
      assert.is_string(document.request_id)
    end)

    it("control characters from the service never reach the terminal", function()
      local run = sim:add_run({ status = "COMPLETED", name = "evil\27[2Jname" })
      local r = program({ "status", PIPELINE, run })
      assert.equal(0, r.code)
      assert.is_nil(r.out:find("\27", 1, true))
      assert.matches("evil %[2Jname", r.out)
    end)
  end)

  ------------------------------------------------------------ wait

  describe("wait", function()
    it("exit 0 when the run ends COMPLETED; plain progress lines off a terminal", function()
      local run = sim:add_run({ status = "RUNNING", polls = 2 })
      local r = program({ "wait", PIPELINE, run, "--interval", "0.001" })
      assert.equal(0, r.code)
      assert.equal("Run " .. run .. " ended COMPLETED.\n", r.out)
      assert.is_nil(r.err:find("\27", 1, true))
      local lines = lines_of(r.err)
      assert.same({ "run " .. run .. " RUNNING", "stage Build COMPLETED", "stage Test RUNNING",
        "run " .. run .. " COMPLETED", "stage Test COMPLETED" }, (function()
          local stripped = {}
          for i, line in ipairs(lines) do stripped[i] = line:gsub("^%[%d+s%] ", "") end
          return stripped
        end)())
      assert.equal(3, sim:run_state(run).detail_reads)
    end)

    for _, outcome in ipairs({ "FAILED", "CANCELED", "IGNORED" }) do
      it(("exit 1 when the run ends %s"):format(outcome), function()
        local run = sim:add_run({ status = "RUNNING", polls = 1, outcome = outcome })
        local r, document = json_program({ "wait", PIPELINE, run, "--interval", "0.001" })
        assert.equal(1, r.code)
        assert.equal(outcome, document.status)
        assert.equal("run_failed", document.code)
        assert.equal("run " .. run .. " ended " .. outcome, document.message)
        assert.equal(outcome, document.run.status)
      end)
    end

    it("waits through PAUSED", function()
      local run = sim:add_run({ status = "RUNNING", polls = 1, paused_polls = 2 })
      local r = program({ "wait", PIPELINE, run, "--interval", "0.001" })
      assert.equal(0, r.code)
      assert.matches("run " .. run .. " PAUSED", r.err)
      assert.equal(4, sim:run_state(run).detail_reads)
    end)

    it("--timeout S is the deadline: exit 5 (timeout) with the last status", function()
      local run = sim:add_run({ status = "RUNNING", polls = 1000000 })
      local r, document = json_program({ "wait", PIPELINE, run, "--timeout", "0.4", "--interval", "0.05" })
      assert.equal(5, r.code)
      assert.equal("timeout", document.code)
      assert.equal("RUNNING", document.last_status)
      assert.matches("still RUNNING after 0%.4s", document.message)
      r = program({ "wait", PIPELINE, run, "--timeout", "0.2", "--interval", "0.05" })
      assert.equal(5, r.code)
      assert.matches("codearts%-pipeline: wait: run " .. run .. " still RUNNING", r.err)
    end)

    it("follows a run that already ended with one look", function()
      local r = program({ "wait", PIPELINE, RUN_B, "--interval", "0.001" })
      assert.equal(0, r.code)
      assert.equal(1, #sim:requests())
    end)
  end)

  ------------------------------------------------------------ runs

  describe("runs", function()
    it("lists a pipeline's runs newest first, as a table", function()
      local r = program({ "runs", PIPELINE })
      assert.equal(0, r.code)
      assert.equal("", r.err)
      local lines = lines_of(r.out)
      assert.equal(4, #lines)
      assert.matches("^RUN ID +# +STATUS +TRIGGER +STARTED +TOOK$", lines[1])
      assert.matches("^" .. RUN_A .. "  3  FAILED +Manual +%d%d%d%d%-", lines[2])
      assert.matches("^" .. RUN_C .. "  2  FAILED ", lines[3])
      assert.matches("^" .. RUN_B .. "  1  COMPLETED  Manual ", lines[4])
      -- one request, asking for the default 10
      local requests = sim:recorded("POST", "/pipeline-runs/list")
      assert.equal(1, #requests)
      assert.same({ offset = 0, limit = 10 }, cjson.decode(requests[1].body))
    end)

    it("--status (a list, any case) and --limit are sent as filters", function()
      local r = program({ "runs", PIPELINE, "--status", "failed,Canceled", "--limit", "1" })
      assert.equal(0, r.code)
      local lines = lines_of(r.out)
      assert.equal(2, #lines)
      assert.matches("^" .. RUN_A, lines[2])
      local body = cjson.decode(sim:recorded("POST", "/pipeline-runs/list")[1].body)
      assert.same({ "FAILED", "CANCELED" }, body.status)
      assert.equal(1, body.limit)
    end)

    it("--json: {ok, pipeline_id, total, runs}", function()
      local _, document = json_program({ "runs", PIPELINE, "--status", "FAILED" })
      assert.equal(2, document.total)
      assert.equal(PIPELINE, document.pipeline_id)
      assert.equal(2, #document.runs)
      assert.equal(RUN_A, document.runs[1].id)
    end)

    it("pages through more than 100", function()
      local pipeline_id = simulator.new_id()
      for _ = 1, 101 do sim:add_run({ pipeline_id = pipeline_id, status = "COMPLETED" }) end
      local _, document = json_program({ "runs", pipeline_id, "--limit", "150" })
      assert.equal(101, #document.runs)
      assert.equal(101, document.total)
      local requests = sim:recorded("POST", "/pipeline-runs/list")
      assert.equal(2, #requests)
      assert.same({ offset = 0, limit = 100 }, cjson.decode(requests[1].body))
      assert.same({ offset = 100, limit = 50 }, cjson.decode(requests[2].body))
    end)

    it("no runs: a line for people, [] in JSON", function()
      local r = program({ "runs", PIPELINE, "--status", "SUSPEND" })
      assert.equal(0, r.code)
      assert.equal("No runs.\n", r.out)
      r = json_program({ "runs", PIPELINE, "--status", "SUSPEND" })
      assert.matches('"runs":%[%]', r.out)
    end)

    it("an unknown pipeline: exit 3", function()
      local r = program({ "runs", simulator.new_id() })
      assert.equal(3, r.code)
      assert.matches("pipeline not found", r.err)
    end)
  end)

  ------------------------------------------------------------ run

  describe("run", function()
    it("starts a run and prints only its id", function()
      local r = program({ "run", PIPELINE })
      assert.equal(0, r.code)
      assert.matches("^%x+\n$", r.out)
      local run_id = r.out:sub(1, -2)
      assert.equal(32, #run_id)
      assert.equal("RUNNING", sim:run_state(run_id).status)
      assert.same({}, cjson.decode(sim:recorded("POST", "/run")[1].body))
    end)

    it("--var NAME=VALUE (repeated) become the run's variables", function()
      local _, document = json_program({ "run", PIPELINE, "--var", "branch=main", "--var", "flags=a=b c",
        "--var", "empty=" })
      assert.equal(PIPELINE, document.pipeline_id)
      assert.equal(32, #document.run_id)
      assert.same({ variables = { { name = "branch", value = "main" }, { name = "flags", value = "a=b c" },
        { name = "empty", value = "" } } }, cjson.decode(sim:recorded("POST", "/run")[1].body))
    end)

    it("--wait follows the new run: exit 0 COMPLETED, 1 FAILED", function()
      local r = program({ "run", PIPELINE, "--wait", "--interval", "0.001" })
      assert.equal(0, r.code)
      assert.matches("^Run %x+ ended COMPLETED%.\n$", r.out)
      assert.matches("Started run %x+; following it", r.err)
      sim:add_pipeline({ outcome = "FAILED", polls = 0 })
      local _, document = json_program({ "run", PIPELINE, "--wait", "--interval", "0.001" })
      assert.equal(1, document.exit)
      assert.equal("FAILED", document.status)
      assert.equal(document.run_id, document.run.id)
    end)
  end)

  ------------------------------------------------------------ stop

  describe("stop", function()
    it("stops a running run: exit 0", function()
      local run = sim:add_run({ status = "RUNNING", polls = 10 })
      local r = program({ "stop", PIPELINE, run })
      assert.equal(0, r.code)
      assert.equal("Stopped run " .. run .. " of pipeline " .. PIPELINE .. ".\n", r.out)
      assert.equal(1, sim:run_state(run).stops)
      run = sim:add_run({ status = "RUNNING", polls = 10 })
      local _, document = json_program({ "stop", PIPELINE, run })
      assert.same({ ok = true, exit = 0, command = "stop", pipeline_id = PIPELINE, run_id = run }, document)
    end)

    it("a run that already ended: exit 3", function()
      local r, document = json_program({ "stop", PIPELINE, RUN_B })
      assert.equal(3, r.code)
      assert.equal("DEVPIPE.00011204", document.error_code)
    end)
  end)

  ------------------------------------------------------------ retry-failed

  describe("retry-failed", function()
    it("retries the latest failed run until it passes: exit 0", function()
      local pipeline_id = simulator.new_id()
      local run = sim:add_run({ pipeline_id = pipeline_id, status = "FAILED", polls = 1,
        outcomes = { "FAILED", "COMPLETED" } })
      local r = program({ "retry-failed", pipeline_id, "--attempts", "3", "--interval", "0.001" })
      assert.equal(0, r.code)
      assert.equal("Run " .. run .. " ended COMPLETED after 2 attempts.\n", r.out)
      assert.equal(2, sim:run_state(run).retries)
      -- off a terminal, each attempt's changes, the run going back to RUNNING
      local _, runnings = r.err:gsub("run " .. run .. " RUNNING", "")
      assert.equal(2, runnings)
    end)

    it("--json: {ok, status, attempts}", function()
      local pipeline_id = simulator.new_id()
      local run = sim:add_run({ pipeline_id = pipeline_id, status = "FAILED", outcomes = { "FAILED", "COMPLETED" } })
      local _, document = json_program({ "retry-failed", pipeline_id, "--interval", "0.001" })
      assert.equal("COMPLETED", document.status)
      assert.same({ { run_id = run, status = "FAILED" }, { run_id = run, status = "COMPLETED" } }, document.attempts)
    end)

    it("still failing after N attempts: exit 1", function()
      local pipeline_id = simulator.new_id()
      local run = sim:add_run({ pipeline_id = pipeline_id, status = "FAILED", outcome = "FAILED" })
      local r = program({ "retry-failed", pipeline_id, "--attempts", "2", "--interval", "0.001" })
      assert.equal(1, r.code)
      assert.matches("^Run " .. run .. " ended FAILED after 2 attempts%.\n", r.out)
      assert.matches("unit%-tests failed", r.out)
      assert.equal(2, sim:run_state(run).retries)
    end)

    it("a latest run that passed needs no attempt: exit 0", function()
      local r = program({ "retry-failed", DEPLOY, "--interval", "0.001" })
      assert.equal(0, r.code)
      assert.matches("ended COMPLETED: nothing to retry", r.out)
      assert.equal(0, #sim:recorded("PUT", "/retry"))
    end)

    it("a pipeline without runs: exit 3", function()
      local r, document = json_program({ "retry-failed", simulator.new_id() })
      assert.equal(3, r.code)
      assert.equal("not_found", document.code)
    end)
  end)

  ------------------------------------------------------------ pipelines

  describe("pipelines", function()
    it("lists the project's pipelines with their latest run", function()
      local r = program({ "pipelines" })
      assert.equal(0, r.code)
      local lines = lines_of(r.out)
      assert.equal(3, #lines)
      assert.matches("^PIPELINE ID +NAME +LATEST RUN +STATUS +STARTED$", lines[1])
      assert.truthy(r.out:find(PIPELINE .. "  demo-build   #3          FAILED", 1, true))
      assert.truthy(r.out:find(DEPLOY .. "  demo-deploy  #1          COMPLETED", 1, true))
    end)

    it("--name filters; --limit bounds; --json {ok, total, pipelines}", function()
      local r = program({ "pipelines", "--name", "deploy" })
      assert.equal(2, #lines_of(r.out))
      assert.matches("demo%-deploy", r.out)
      assert.equal("deploy", cjson.decode(sim:recorded("POST", "/pipelines/list")[1].body).name)
      local _, document = json_program({ "pipelines", "--limit", "1" })
      assert.equal(2, document.total)
      assert.equal(1, #document.pipelines)
      _, document = json_program({ "pipelines", "--name", "nothing-like-this" })
      assert.same({}, document.pipelines)
      assert.equal(0, document.total)
    end)
  end)

  ------------------------------------------------------------ global options, -v, secrets

  describe("global options", function()
    it("may come before or after the command", function()
      local outputs = {}
      for i, args in ipairs({
        { "--json", "status", PIPELINE, RUN_A },
        { "status", PIPELINE, RUN_A, "--json" },
        { "status", "--json", PIPELINE, RUN_A },
        { "--project", PROJECT, "status", PIPELINE, "--json", RUN_A, "--endpoint", sim.url },
      }) do
        local r = program(args)
        assert.equal(0, r.code)
        outputs[i] = cjson.decode(r.out)
      end
      for i = 2, #outputs do assert.same(outputs[1], outputs[i]) end
    end)

    it("-v traces each request and answer on stderr, stdout unchanged", function()
      local plain = program({ "status", PIPELINE, RUN_A })
      local r = program({ "-v", "status", PIPELINE, RUN_A })
      assert.equal(0, r.code)
      assert.equal(plain.out, r.out)
      local url = ("%s/v5/%s/api/pipelines/%s/pipeline-runs/detail?pipeline_run_id=%s"):format(sim.url, PROJECT,
        PIPELINE, RUN_A)
      local lines = lines_of(r.err)
      assert.equal("> GET " .. url, lines[1])
      assert.matches("^< 200 GET " .. url:gsub("%p", "%%%0") .. " %d+%.%d%d%ds request%-id %x+$", lines[2])
      assert.is_nil(r.err:lower():find("x-auth-token", 1, true))
      -- the retries the library makes are traced too
      sim:fault({ kind = "unavailable", retry_after = 0 })
      r = program({ "--verbose", "status", PIPELINE, RUN_A })
      assert.equal(0, r.code)
      assert.matches("< 503 GET ", r.err)
      assert.matches("detail again in 0%.0s %(server%)", r.err)
      assert.matches("> GET .* %(attempt 2%)", r.err)
    end)

    it("the token is never printed, with -v, in any command, failing or not", function()
      local P = PIPELINE
      local invocations = {
        { "retry", P, RUN_A }, { "retry", P, RUN_C, "--wait", "--interval", "0.001" }, { "retry", P, RUN_B },
        { "status", P, RUN_A }, { "wait", P, RUN_B, "--interval", "0.001" }, { "runs", P }, { "run", P, "--var", "a=b" },
        { "stop", P, RUN_B }, { "retry-failed", P, "--interval", "0.001" }, { "pipelines" },
        { "status", P, simulator.new_id() }, { "bogus", P }, { "retry", P },
      }
      local faults = { "unauthorized", "forbidden", "not_found", "not_json", "server_html" }
      local seen = 0
      for _, args in ipairs(invocations) do
        for _, json in ipairs({ false, true }) do
          local full = { "-v" }
          if json then full[2] = "--json" end
          for _, arg in ipairs(args) do full[#full + 1] = arg end
          seen = seen + 1
          program(full) -- asserts the canary is in neither stream
        end
      end
      for _, kind in ipairs(faults) do
        sim:fault({ kind = kind, times = 0 })
        program({ "-v", "retry", P, RUN_C })
        program({ "-v", "--json", "status", P, RUN_C })
        sim:reset()
      end
      -- and it was sent: the simulator knows the canary as a token
      program({ "-v", "retry", P, RUN_A })
      assert.equal(CANARY, sim:recorded("PUT", "/retry")[1].headers["x-auth-token"])
      assert.is_true(seen > 20)
    end)
  end)

  ------------------------------------------------------------ terminal

  describe("on a terminal", function()
    -- Runs the program under a pseudo-terminal: exit status and what the
    -- terminal received (stdout and stderr together).
    local function under_terminal(args)
      local inner = command_line(args, { TERM = "xterm", COLUMNS = "100" })
      local path = home .. "/terminal"
      local code = support.execute(("script -qfec %s /dev/null >%s 2>&1 </dev/null"):format(support.quote(inner),
        support.quote(path)))
      local text = assert(support.read_file(path))
      assert.is_nil(text:find(CANARY, 1, true))
      return code, text
    end

    it("shows a live display on stderr, redrawn in place", function()
      local run = sim:add_run({ status = "RUNNING", polls = 4 })
      local code, text = under_terminal({ "wait", PIPELINE, run, "--interval", "0.05" })
      assert.equal(0, code)
      assert.truthy(text:find("\27%[%d+A"), "cursor up")
      assert.truthy(text:find("\27[2K", 1, true), "erase line")
      assert.truthy(text:find("run " .. run .. " #%d+  RUNNING  %d+s"))
      assert.matches("\27%[2K  Build +COMPLETED", text)
      assert.matches("\27%[2K  Test +RUNNING +%d+s", text)
      assert.matches("\27%[2K  Test +COMPLETED", text)
      assert.truthy(text:find("Run " .. run .. " ended COMPLETED.", 1, true))
      -- no plain change lines on a terminal
      assert.is_nil(text:find("[0s] stage", 1, true))
    end)

    it("keeps the exit status (retry --wait, FAILED: 1) and traces above the display with -v", function()
      local run = sim:add_run({ status = "FAILED", polls = 2, outcome = "FAILED" })
      local code, text = under_terminal({ "-v", "retry", PIPELINE, run, "--wait", "--interval", "0.05" })
      assert.equal(1, code)
      assert.truthy(text:find("\27%[%d+A\r\27%[J> GET "), "a trace line erases the block, then it is redrawn")
      assert.truthy(text:find("Run " .. run .. " ended FAILED.", 1, true))
    end)

    it("the plain output of a list does not change on a terminal", function()
      local code, text = under_terminal({ "runs", PIPELINE })
      assert.equal(0, code)
      assert.is_nil(text:find("\27", 1, true))
      assert.matches("RUN ID", text)
    end)
  end)

  ------------------------------------------------------------ in-process

  describe("cli.main in-process", function()
    local buffer = support.buffer

    local function main(args, options)
      options = options or {}
      local out, err, slept = buffer(), buffer(), {}
      local env = { CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = PROJECT,
        CODEARTS_PIPELINE_TOKEN = CANARY, HOME = home, TERM = "xterm" }
      for name, value in pairs(options.env or {}) do env[name] = value or nil end
      local code = cli.main(args, { stdout = out, stderr = err, getenv = function(name) return env[name] end,
        isatty = function(fd) return fd == 2 and options.tty == true end,
        sleep = function(seconds) slept[#slept + 1] = seconds end })
      assert.is_nil(out.text():find(CANARY, 1, true))
      assert.is_nil(err.text():find(CANARY, 1, true))
      return code, out.text(), err.text(), slept
    end

    it("runs a command with injected streams and environment", function()
      local code, out, err = main({ "status", PIPELINE, RUN_A })
      assert.equal(0, code)
      assert.equal("", err)
      assert.matches("^Run " .. RUN_A .. " %(#3%) of demo%-build: FAILED\n", out)
      code, out = main({ "--json", "pipelines" })
      assert.equal(0, code)
      assert.equal(2, cjson.decode(out).total)
    end)

    it("reads its configuration from the injected environment", function()
      local code, _, err = main({ "pipelines" }, { env = { CODEARTS_PIPELINE_ENDPOINT = false } })
      assert.equal(2, code)
      assert.matches("no endpoint", err)
      code = main({ "pipelines" }, { env = { CODEARTS_PIPELINE_TOKEN = "not-a-registered-token" } })
      assert.equal(4, code)
    end)

    it("draws the live display when isatty(2), waiting through the injected sleep", function()
      local run = sim:add_run({ status = "RUNNING", polls = 2 })
      local code, out, err, slept = main({ "wait", PIPELINE, run, "--interval", "2" }, { tty = true })
      assert.equal(0, code)
      assert.equal("Run " .. run .. " ended COMPLETED.\n", out)
      assert.truthy(err:find("\27[2K", 1, true))
      assert.truthy(err:find("\27%[3A"))
      -- on a terminal a wait is cut in slices so the clocks keep moving
      assert.is_true(#slept >= 2)
      for _, seconds in ipairs(slept) do assert.is_true(seconds <= 0.5) end
    end)

    it("returns 2 for bad usage, with the usage line on the injected stderr", function()
      local code, out, err = main({ "retry", PIPELINE })
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("missing RUN\nusage: codearts%-pipeline retry PIPELINE RUN", err)
    end)

    it("reports an internal error as exit 3 with one line (a JSON document with --json)", function()
      local broken = { write = function() error("disk full") end }
      local code = cli.main({ "--version" }, { stdout = broken, stderr = buffer(),
        getenv = function() return nil end, isatty = function() return false end })
      assert.equal(3, code)
      local err = buffer()
      local out = buffer()
      local calls = 0
      local flaky = { write = function(_, ...)
        calls = calls + 1
        if calls == 1 then error("flaky stream") end
        return out:write(...)
      end }
      code = cli.main({ "--json", "--version" }, { stdout = flaky, stderr = err,
        getenv = function() return nil end, isatty = function() return false end })
      assert.equal(3, code)
      local document = cjson.decode(out.text())
      assert.equal("internal", document.code)
      assert.matches("flaky stream", document.message)
    end)

    it("cli.encode writes sorted objects, [] for empty tables and whole numbers in full", function()
      assert.equal('{"a":[],"b":[1,2.5],"c":1796029985706,"d":"x/y","e":null}',
        cli.encode({ a = {}, b = { 1, 2.5 }, c = 1796029985706, d = "x/y", e = cjson.null }))
    end)
  end)
end)

-- For the people on call, against the simulator: step logs paged
-- and followed, manual reviews passed and refused, artifacts, run page
-- addresses parsed and refused, and the fleet watcher (its Lua API, its
-- command, and a stop by SIGTERM with nothing half done).  cli.main runs
-- in-process with injected streams, environment and sleep, except where a
-- real process is the point (signals, the region of an address).
local cjson = require("cjson")
local pipeline = require("pipeline")
local simulator = require("sim")
local support = require("support")
local cli = require("pipeline.cli")

local PROJECT, PIPELINE, TOKEN = simulator.PROJECT, simulator.PIPELINE, simulator.TOKEN
local RUN_A = ("a"):rep(32) -- the seed's FAILED run whose run-tests log has 2,500 lines
local RUN_B = ("b"):rep(32) -- the seed's COMPLETED run, with two artifacts
local DEPLOY = "abcdef0123456789abcdef0123456789" -- the seed's second pipeline (latest run COMPLETED)

local buffer, lines_of = support.buffer, support.lines

describe("on call", function()
  local sim = simulator.fixture({ "--seed", "--token", TOKEN })
  local home
  setup(function() home = support.temp_dir() end)
  teardown(function() support.remove(home) end)
  after_each(support.remove_test_dirs)

  -- Runs cli.main in-process: {code, out, err}.  env adds variables (false
  -- removes one); sleeps return at once, and count.
  local slept
  local function run(args, env, signals)
    local variables = { HOME = home, CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = PROJECT,
      CODEARTS_PIPELINE_TOKEN = TOKEN }
    for name, value in pairs(env or {}) do variables[name] = value or nil end
    local out, err = buffer(), buffer()
    slept = 0
    local code = cli.main(args, { stdout = out, stderr = err, getenv = function(name) return variables[name] end,
      isatty = function() return false end, sleep = function() slept = slept + 1 end, signals = signals })
    return { code = code, out = out.text(), err = err.text() }
  end

  local function new_client(extra)
    local options = { endpoint = sim.url, project_id = PROJECT, token = TOKEN, sleep = function() end }
    for name, value in pairs(extra or {}) do options[name] = value end
    return assert(pipeline.new(options))
  end

  ------------------------------------------------------------ logs

  describe("logs", function()
    it("streams every step's log page by page, each headed by stage / job / step", function()
      local r = run({ "logs", PIPELINE, RUN_A })
      assert.equal(0, r.code)
      local lines = lines_of(r.out)
      local headers = {}
      for _, line in ipairs(lines) do
        if line:find("^==> ") then headers[#headers + 1] = line end
      end
      assert.same({ "==> Build / compile / checkout (COMPLETED)", "==> Build / compile / build (COMPLETED)",
        "==> Test / unit-tests / run-tests (FAILED)" }, headers)
      -- 6 + 40 + 2,500 lines, each once and in order
      assert.equal(3 + 6 + 40 + 2500, #lines)
      local numbers = {}
      for _, line in ipairs(lines) do
        local n = line:match("^%[(%d+)/2500%] run%-tests")
        if n then numbers[#numbers + 1] = tonumber(n) end
      end
      assert.equal(2500, #numbers)
      for i, n in ipairs(numbers) do assert.equal(i, n) end
      -- the long log came in pages (500 lines each), each from the previous page's offsets
      local pages = sim:recorded("POST", "/logs")
      assert.equal(1 + 1 + 5, #pages)
      local _, long_step = sim:step(RUN_A, "run-tests")
      local previous = -1
      for _, request in ipairs(sim.matching(pages, "POST", long_step)) do
        local body = cjson.decode(request.body)
        assert.is_true(body.end_offset > previous)
        previous = body.end_offset
      end
      assert.is_true(previous > 0)
    end)

    it("--failed: only the failed step; --job: only the jobs named", function()
      local r = run({ "logs", PIPELINE, RUN_A, "--failed" })
      assert.equal(0, r.code)
      assert.equal("==> Test / unit-tests / run-tests (FAILED)", lines_of(r.out)[1])
      assert.equal(2501, #lines_of(r.out))
      r = run({ "logs", PIPELINE, RUN_A, "--job", "compile" })
      assert.equal(2 + 46, #lines_of(r.out))
      assert.is_nil(r.out:find("run-tests", 1, true))
      r = run({ "logs", PIPELINE, RUN_B, "--failed" })
      assert.equal(0, r.code)
      assert.equal("", r.out)
      support.contains(r.err, "No failed step in run " .. RUN_B)
    end)

    it("--json: one JSON object per step, the log in it", function()
      local r = run({ "--json", "logs", PIPELINE, RUN_A })
      assert.equal(0, r.code)
      local objects = lines_of(r.out)
      assert.equal(3, #objects)
      local last = cjson.decode(objects[3])
      assert.equal("run-tests", last.step)
      assert.equal("FAILED", last.status)
      assert.equal("Test", last.stage)
      assert.equal(2500, #lines_of(last.log))
      assert.equal(6, #lines_of(cjson.decode(objects[1]).log))
    end)

    it("--follow: pages while the run goes on, from the previous page's offsets, no line twice; ends with it",
      function()
      local run_id = sim:add_run({ status = "RUNNING", polls = 4, outcome = "FAILED" })
      local r = run({ "logs", PIPELINE, run_id, "--follow", "--interval", "1", "--job", "unit-tests" })
      assert.equal(0, r.code)
      assert.is_true(slept >= 3)
      local numbers = {}
      for _, line in ipairs(lines_of(r.out)) do
        local n = line:match("^%[(%d+)/2500%]")
        if n then numbers[#numbers + 1] = tonumber(n) end
      end
      assert.equal(2500, #numbers)
      for i, n in ipairs(numbers) do assert.equal(i, n) end
      assert.equal("FAILED", sim:run_state(run_id).status)
      -- every request after the first went on from where the one before ended
      local requests = sim:recorded("POST", "/logs")
      assert.is_true(#requests > 5)
      local last_end = 0
      for _, request in ipairs(requests) do
        local body = cjson.decode(request.body)
        assert.is_true(body.end_offset >= last_end)
        last_end = body.end_offset
      end
    end)

    it("reports a log it cannot read by the error rule", function()
      local job_id, step_id = sim:step(RUN_A, "run-tests")
      sim:fault({ kind = "forbidden", path = step_id })
      local r = run({ "logs", PIPELINE, RUN_A, "--failed" })
      assert.equal(4, r.code)
      assert.truthy(job_id)
    end)
  end)

  ------------------------------------------------------------ reviews

  describe("approve and reject", function()
    local function paused_run()
      return sim:add_run({ status = "PAUSED" })
    end

    it("approve passes the run's pending review", function()
      local run_id = paused_run()
      local r = run({ "approve", PIPELINE, run_id })
      assert.equal(0, r.code, r.err)
      support.contains(r.out, "Passed the manual review Test / unit-tests / manual-review of run " .. run_id)
      assert.equal("pass", sim:run_state(run_id).review.decision)
      local _, step_id = sim:step(run_id, "manual-review")
      assert.equal(1, #sim:recorded("POST", step_id .. "/pass"))
    end)

    it("reject refuses it (--json)", function()
      local run_id = paused_run()
      local r = run({ "--json", "reject", PIPELINE, run_id })
      assert.equal(0, r.code)
      local document = cjson.decode(r.out)
      assert.equal("refuse", document.decision)
      assert.equal("manual-review", document.step)
      assert.equal("refuse", sim:run_state(run_id).review.decision)
      assert.equal("FAILED", sim:run_state(run_id).status)
    end)

    it("with no review waiting: exit 3, nothing sent", function()
      local r = run({ "approve", PIPELINE, RUN_A })
      assert.equal(3, r.code)
      support.contains(r.err, "no manual review waiting")
      assert.equal(0, #sim:recorded("POST", "/pass"))
    end)

    it("with several waiting: lists them and asks for --step; --step chooses one", function()
      local run_id = paused_run()
      local job_id, step_id = sim:step(run_id, "manual-review")
      -- a run detail with a second review waiting, served once in place of the real one
      local detail = sim:run_state(run_id).run
      local second = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"
      detail.stages[1].jobs[1].steps[3] = { id = second, name = "second-review", status = "PAUSED" }
      sim:fault({ kind = "wrong_shape", path = "/detail", body = detail, times = 3 })
      local r = run({ "approve", PIPELINE, run_id })
      assert.equal(2, r.code, r.err)
      support.contains(r.err, "2 manual reviews wait")
      support.contains(r.err, "--step " .. step_id)
      support.contains(r.err, "--step " .. second)
      assert.equal(0, #sim:recorded("POST", "/pass"))
      r = run({ "approve", PIPELINE, run_id, "--step", step_id })
      assert.equal(0, r.code, r.err)
      assert.equal(1, #sim:recorded("POST", job_id .. "/steps/" .. step_id .. "/pass"))
      r = run({ "approve", PIPELINE, run_id, "--step", "1234" })
      assert.equal(2, r.code)
      support.contains(r.err, "is not a manual review waiting")
    end)
  end)

  ------------------------------------------------------------ artifacts

  describe("artifacts", function()
    it("lists name, version, type, size and download address; --json gives the objects", function()
      local r = run({ "artifacts", PIPELINE, RUN_B })
      assert.equal(0, r.code)
      local lines = lines_of(r.out)
      assert.matches("^NAME +VERSION +TYPE +SIZE +DOWNLOAD$", lines[1])
      assert.matches("^demo%-app%.jar ", lines[2])
      support.contains(lines[2], "https://")
      r = run({ "--json", "artifacts", PIPELINE, RUN_B })
      local document = cjson.decode(r.out)
      assert.equal(2, #document.artifacts)
      assert.equal("demo-app.tar.gz", document.artifacts[2].name)
      r = run({ "artifacts", PIPELINE, RUN_A })
      assert.equal("No artifacts.\n", r.out)
    end)
  end)

  ------------------------------------------------------------ addresses

  describe("a run's page address", function()
    local function address(project, pipeline_id, run_id, host)
      return ("https://%s/cicd/project/%s/pipeline/detail/%s/%s?v=1"):format(host or "devcloud.cn-north-4.huaweicloud.com",
        project, pipeline_id, run_id)
    end

    it("parses the shape of Huawei's pages and the simulator's detail_url", function()
      assert.same({ project_id = PROJECT, pipeline_id = PIPELINE, run_id = RUN_A, region = "cn-east-3" },
        cli.parse_address(address(PROJECT, PIPELINE, RUN_A, "devcloud.cn-east-3.huaweicloud.com")))
      local detail_url = sim:run_state(RUN_A).run.detail_url
      assert.same({ project_id = PROJECT, pipeline_id = PIPELINE, run_id = RUN_A },
        cli.parse_address(detail_url))
    end)

    it("refuses what does not parse unambiguously, saying what was expected", function()
      for text, why in pairs({
        ["devcloud.cn-north-4.huaweicloud.com/cicd"] = "not an address",
        ["ftp://devcloud.cn-north-4.huaweicloud.com/cicd/project/" .. PROJECT .. "/pipeline/detail/" .. PIPELINE
          .. "/" .. RUN_A] = "scheme",
        [address(PROJECT, PIPELINE, RUN_A, "devcloud.north.huaweicloud.com")] = "is not a region id",
        [address(PROJECT, PIPELINE, RUN_A, "console.huaweicloud.com")] = "is not devcloud.<region>.huaweicloud.com",
        [address("short", PIPELINE, RUN_A)] = "no /project/<project id>/",
        [address(PROJECT, PIPELINE, "short")] = "no pipeline/detail/<pipeline id>/<run id>",
        ["https://devcloud.cn-north-4.huaweicloud.com/cicd/project/" .. PROJECT .. "/pipeline/detail/" .. PIPELINE
          .. "/" .. RUN_A .. "/more"] = "more path after the run id",
        ["https://devcloud.cn-north-4.huaweicloud.com/cicd/project/" .. PROJECT .. "/project/" .. PROJECT
          .. "/pipeline/detail/" .. PIPELINE .. "/" .. RUN_A] = "/project/ twice",
      }) do
        local parsed, message = cli.parse_address(text)
        assert.is_nil(parsed, text)
        support.contains(message, why)
        support.contains(message, "expected https://devcloud.<region>.huaweicloud.com/cicd/project/<project id>"
          .. "/pipeline/detail/<pipeline id>/<run id>")
      end
      local r = run({ "status", address(PROJECT, PIPELINE, "short") })
      assert.equal(2, r.code)
      support.contains(r.err, "no pipeline/detail/<pipeline id>/<run id>")
      assert.equal(0, #sim:requests())
    end)

    it("stands for PIPELINE RUN in every command that takes them; its project fills a missing one", function()
      local detail_url = sim:run_state(RUN_A).run.detail_url
      local r = run({ "status", detail_url }, { CODEARTS_PIPELINE_PROJECT_ID = false })
      assert.equal(0, r.code, r.err)
      support.contains(r.out, "Run " .. RUN_A)
      for _, command in ipairs({ "logs", "artifacts", "wait" }) do
        r = run({ command, detail_url })
        assert.equal(command == "wait" and 1 or 0, r.code, command .. ": " .. r.err)
      end
      r = run({ "approve", detail_url })
      assert.equal(3, r.code)
      r = run({ "status", detail_url, RUN_A })
      assert.equal(2, r.code)
      support.contains(r.err, "unexpected argument")
    end)

    it("a project or region different from the configuration's is a usage error", function()
      local other = ("1"):rep(32)
      local r = run({ "status", address(other, PIPELINE, RUN_A) })
      assert.equal(2, r.code)
      support.contains(r.err, "the address is in project " .. other .. " but the configuration gives project_id "
        .. PROJECT)
      r = run({ "status", address(PROJECT, PIPELINE, RUN_A), "--project", other })
      assert.equal(2, r.code)
      r = run({ "status", address(PROJECT, PIPELINE, RUN_A, "devcloud.cn-south-1.huaweicloud.com") },
        { CODEARTS_PIPELINE_ENDPOINT = false, CODEARTS_PIPELINE_REGION = "cn-north-4" })
      assert.equal(2, r.code)
      support.contains(r.err, "the address is in region cn-south-1 but the configuration gives region cn-north-4")
      assert.equal(0, #sim:requests())
    end)

    it("its region fills a missing one (a real process, the region's endpoint pointed at the simulator)", function()
      local printed, status = support.capture(support.command({ support.LUA, support.ROOT .. "/bin/codearts-pipeline",
        "status", address(PROJECT, PIPELINE, RUN_A, "devcloud.cn-south-2.huaweicloud.com") },
        support.lua_environment({ HOME = home, CODEARTS_PIPELINE_TOKEN = TOKEN,
          HUAWEICLOUD_SDK_REGION_CODEARTSPIPELINE_CN_SOUTH_2 = sim.url })))
      assert.equal(0, status, printed)
      support.contains(printed, "Run " .. RUN_A)
    end)
  end)

  ------------------------------------------------------------ watch

  describe("client:watch", function()
    it("retries a FAILED latest run, follows it to COMPLETED and ends settled and green", function()
      local events = {}
      local client = new_client()
      local summary = client:watch({ PIPELINE, DEPLOY }, { interval = 1, until_settled = true,
        on_event = function(event) events[#events + 1] = event end })
      client:close()
      assert.is_true(summary.green)
      assert.equal(1, summary.retries)
      assert.equal(1, sim:run_state(RUN_A).retries)
      assert.equal("COMPLETED", sim:run_state(RUN_A).status)
      local kinds = {}
      for _, event in ipairs(events) do kinds[#kinds + 1] = event.type end
      assert.equal("start", kinds[1])
      assert.equal("end", kinds[#kinds])
      support.contains(table.concat(kinds, " "), "retry")
      -- one batch request (latest) per look, for all the watched pipelines
      local looks = sim:recorded("POST", "/pipelines/status")
      assert.equal(summary.polls, #looks)
      assert.same({ PIPELINE, DEPLOY }, cjson.decode(looks[1].body))
    end)

    it("retries a run at most `attempts` times, then gives up: not green", function()
      local run_id = sim:add_run({ status = "FAILED", outcomes = { "FAILED", "FAILED", "FAILED" } })
      local gave_up
      local client = new_client()
      local summary = client:watch({ PIPELINE }, { attempts = 2, interval = 1, until_settled = true,
        on_event = function(event) if event.type == "gave_up" then gave_up = event end end })
      client:close()
      assert.is_false(summary.green)
      assert.equal(2, sim:run_state(run_id).retries)
      assert.equal(2, gave_up.attempts)
      assert.equal(run_id, summary.pipelines[1].run_id)
    end)

    it("asks the policy, with the run's detail and the attempts so far", function()
      local run_id = sim:add_run({ status = "FAILED" })
      local asked = {}
      local client = new_client()
      local summary = client:watch({ PIPELINE }, { interval = 1, until_settled = true,
        policy = function(detail, attempts)
          asked[#asked + 1] = { detail.id, attempts, #detail.stages }
          return false, "not today"
        end })
      client:close()
      assert.same({ { run_id, 0, 2 } }, asked)
      assert.equal(0, sim:run_state(run_id).retries)
      assert.is_false(summary.green)
    end)

    it("by default with a job list: retries only runs whose failed jobs are all named", function()
      local run_id = sim:add_run({ status = "FAILED" })
      local client = new_client()
      client:watch({ PIPELINE }, { interval = 1, until_settled = true, jobs = { "compile" } })
      assert.equal(0, sim:run_state(run_id).retries)
      client:watch({ PIPELINE }, { interval = 1, until_settled = true, jobs = { "Test/unit-tests" } })
      client:close()
      assert.equal(1, sim:run_state(run_id).retries)
    end)

    it("stops when stop() says so, waiting through the client's sleep", function()
      local sleeps, asked = 0, 0
      local client = new_client({ sleep = function() sleeps = sleeps + 1 end })
      local summary = client:watch({ DEPLOY }, { interval = 2, stop = function()
        asked = asked + 1
        return asked > 12
      end })
      client:close()
      assert.equal("stopped", summary.stopped)
      assert.is_true(sleeps > 0)
      assert.is_true(summary.polls >= 2)
      assert.equal(summary.polls, #sim:recorded("POST", "/pipelines/status"))
      assert.is_true(summary.green)
    end)

    it("runs inside a host's loop: client:start and client:step", function()
      local client = new_client()
      local job = client:start("watch", { PIPELINE, DEPLOY }, { interval = 1, until_settled = true })
      local core = require("pipeline.core")
      local deadline = core.monotonic() + 60
      while not job.done and core.monotonic() < deadline do
        local _, wake = client:step(0.05)
        if wake and wake > 0 then core.sleep(math.min(wake, 0.1)) end
      end
      local summary = job:result()
      client:close()
      assert.is_true(summary.green)
      assert.equal(1, sim:run_state(RUN_A).retries)
    end)

    it("loads a policy file in the config file's sandbox", function()
      local dir = support.test_dir()
      local good = support.write_file(dir .. "/policy.lua",
        "return function(run, attempts) return attempts < 1 and string.find(run.status, 'FAIL') ~= nil, 'once' end\n")
      local policy = assert(pipeline.watch.load_policy(good))
      assert.same({ true, "once" }, { policy({ status = "FAILED" }, 0) })
      assert.same({ false, "once" }, { policy({ status = "FAILED" }, 1) })
      local escape = support.write_file(dir .. "/escape.lua", "return function() return os.execute('true') end\n")
      policy = assert(pipeline.watch.load_policy(escape))
      assert.has_error(function() policy({}, 0) end)
      local looping = support.write_file(dir .. "/loop.lua", "return function() while true do end end\n")
      policy = assert(pipeline.watch.load_policy(looping))
      assert.has_error(function() policy({}, 0) end)
      local _, why = pipeline.watch.load_policy(support.write_file(dir .. "/bad.lua", "return 42\n"))
      support.contains(why, "must return a function(run, attempts)")
    end)
  end)

  describe("codearts-pipeline watch", function()
    it("prints one line per event and a summary; exit 0 when all ended green", function()
      local r = run({ "watch", PIPELINE, DEPLOY, "--interval", "1", "--until-settled" })
      assert.equal(0, r.code, r.err)
      support.contains(r.out, "run " .. RUN_A .. " retried (attempt 1)")
      support.contains(r.out, "Watched 2 pipelines")
      support.contains(r.out, "all green")
    end)

    it("--json: JSON lines, the summary last; --all watches every pipeline", function()
      local r = run({ "--json", "watch", "--all", "--interval", "1", "--until-settled", "--attempts", "1" })
      assert.equal(0, r.code, r.err)
      local lines = lines_of(r.out)
      for _, line in ipairs(lines) do assert.is_table(cjson.decode(line)) end
      local summary = cjson.decode(lines[#lines])
      assert.equal("summary", summary.type)
      assert.equal(2, #summary.pipelines)
      assert.is_true(summary.green)
    end)

    it("a --policy file refusing: exit 1; a broken one: exit 2", function()
      local dir = support.test_dir()
      local no = support.write_file(dir .. "/no.lua", "return function() return false, 'frozen' end\n")
      local r = run({ "watch", PIPELINE, "--interval", "1", "--until-settled", "--policy", no })
      assert.equal(1, r.code)
      support.contains(r.out, "not retried: frozen")
      r = run({ "watch", PIPELINE, "--policy", support.write_file(dir .. "/bad.lua", "return {\n") })
      assert.equal(2, r.code)
      support.contains(r.err, "syntax error")
      assert.equal(0, sim:run_state(RUN_A).retries)
    end)

    it("refuses ids with --all, and neither", function()
      assert.equal(2, run({ "watch", PIPELINE, "--all" }).code)
      assert.equal(2, run({ "watch" }).code)
      assert.equal(2, run({ "watch", "nope" }).code)
    end)

    it("is stopped by a noted signal between two looks, summary printed", function()
      local asked, caught = 0, nil
      local signals = { catch = function() end, release = function() caught = nil end,
        caught = function()
          asked = asked + 1
          if asked > 8 then caught = "SIGTERM" end
          return caught
        end }
      local r = run({ "--json", "watch", DEPLOY, "--interval", "1" }, nil, signals)
      local summary = cjson.decode(lines_of(r.out)[#lines_of(r.out)])
      assert.equal("SIGTERM", summary.stopped)
      assert.equal(0, r.code)
    end)

    it("SIGTERM during a retry in flight: the retry is settled by reading the run, nothing half done", function()
      local run_id = sim:add_run({ status = "FAILED" })
      -- the retry's answer takes 2 s: the signal comes while it is in flight
      sim:fault({ kind = "slow", path = "/retry", delay = 2 })
      local dir = support.test_dir()
      local out, rc, pid = dir .. "/out", dir .. "/rc", dir .. "/pid"
      local command = support.command({ support.LUA, support.ROOT .. "/bin/codearts-pipeline", "--json", "watch",
        PIPELINE, "--interval", "30" }, support.lua_environment({ HOME = home, CODEARTS_PIPELINE_ENDPOINT = sim.url,
        CODEARTS_PIPELINE_PROJECT_ID = PROJECT, CODEARTS_PIPELINE_TOKEN = TOKEN }))
      support.shell(("( sh -c %s & echo $! > %s; wait $!; echo $? > %s ) >/dev/null 2>&1 &"):format(
        support.quote("exec " .. command .. " > " .. support.quote(out) .. " 2>&1"), support.quote(pid),
        support.quote(rc)))
      -- wait until the retry is in flight, then SIGTERM
      local deadline = os.time() + 20
      while #sim:recorded("PUT", "/retry") == 0 and os.time() < deadline do
        require("pipeline.core").sleep(0.05)
      end
      assert.equal(1, #sim:recorded("PUT", "/retry"))
      support.shell("kill -TERM $(cat " .. support.quote(pid) .. ")")
      while not support.read_file(rc) and os.time() < deadline do require("pipeline.core").sleep(0.05) end
      local text = assert(support.read_file(out))
      local lines = lines_of(text)
      local summary = cjson.decode(lines[#lines])
      assert.equal("summary", summary.type)
      assert.equal("SIGTERM", summary.stopped)
      -- The signal ends the transfer at once; the run, read next, tells
      -- whether the retry took effect, and the summary counts what the
      -- service did: sent once, never again blindly.
      local state = sim:run_state(run_id)
      assert.equal(1, #sim:recorded("PUT", "/retry"))
      assert.equal(state.retries, summary.retries)
      assert.equal(state.retries, summary.pipelines[1].attempts)
      if state.retries == 1 then support.contains(text, '"type":"retry"') end
      -- the run is not COMPLETED: not green
      assert.equal("1", (support.read_file(rc):gsub("%s", "")))
    end)
  end)
end)

-- The run lifecycle against the simulator (issue 4): the operations (run,
-- stop, detail, runs, pipelines, latest, approve, reject, logs, each_log,
-- full_log, artifacts, pipeline, each_run, each_pipeline),
-- wait, retry_and_wait, retry_failed, the retry policy and its safety rule,
-- on_event, the *_many calls and map, the host loop (start/step), and a
-- short user script (examples/keep-green.lua) run as a child process.
-- Every case checks what the call returned and what the simulator recorded.
-- No case really sleeps: every client gets a fake sleep that records the
-- seconds it was asked to wait (run plans advance per detail read, not per
-- wall time).
local pipeline = require("pipeline")
local simulator = require("sim")
local core = require("pipeline.core")
local cjson = require("cjson")
local support = require("support")

local PROJECT, PIPELINE, TOKEN = simulator.PROJECT, simulator.PIPELINE, simulator.TOKEN
local CANARY = "CANARY-token-8c41f7e2d0"
local OTHER_PIPELINE = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
local TERMINAL = { "COMPLETED", "FAILED", "CANCELED", "IGNORED" }

describe("run lifecycle", function()
  local sim = simulator.fixture({ "--token", TOKEN, "--token", CANARY })

  -- A client on the simulator whose sleep records and never sleeps; slept
  -- is the list of the seconds asked for.
  local function new_client(extra)
    local slept = {}
    local options = { endpoint = sim.url, project_id = PROJECT, token = TOKEN, retries = false,
      sleep = function(seconds) slept[#slept + 1] = seconds end }
    for k, v in pairs(extra or {}) do options[k] = v end
    return assert(pipeline.new(options)), slept
  end

  local function sum(list)
    local total = 0
    for _, v in ipairs(list) do total = total + v end
    return total
  end

  ------------------------------------------------------------ operations

  describe("client:run", function()
    before_each(function() sim:add_pipeline({ name = "build" }) end)

    it("raises on an unknown body field, and sends nothing", function()
      local client = new_client()
      assert.error_matches(function() client:run(PIPELINE, { variable = { { name = "A", value = "1" } } }) end,
        "bad argument #2 to 'run' %(unknown body field 'variable'%)")
      client:close()
      assert.equal(0, #sim:requests())
    end)

    it("returns the new run's id and passes the body through", function()
      local client = new_client()
      local body = { description = "from the spec", variables = { { name = "VERSION", value = "1.2.3" } },
        choose_stages = { "Build" } }
      local run_id = client:run(PIPELINE, body)
      client:close()
      assert.is_string(run_id)
      assert.is_true(core.is_id(run_id))
      local state = sim:run_state(run_id)
      assert.equal("RUNNING", state.status)
      assert.equal(PIPELINE, state.pipeline_id)
      local posts = sim:recorded("POST", "/run")
      assert.equal(1, #posts)
      assert.equal(("/v5/%s/api/pipelines/%s/run"):format(PROJECT, PIPELINE), posts[1].path)
      assert.same(body, cjson.decode(posts[1].body))
      assert.matches("^application/json", posts[1].headers["content-type"])
    end)

    it("sends an empty object without a body", function()
      local client = new_client()
      assert.is_string(client:run(PIPELINE))
      client:close()
      assert.same({}, cjson.decode(sim:recorded("POST", "/run")[1].body))
    end)

    for _, kind in ipairs({ "drop_after_processing", "close" }) do
      for _, reused in ipairs({ false, true }) do
        it(("reports a run lost to %s%s as failed, not retryable, sent once"):format(kind,
          reused and " on a reused connection" or ""), function()
          local client = new_client({ retries = { max = 3, base_delay = 0.01 } })
          if reused then assert.is_string(client:run(PIPELINE)) end
          sim:clear_requests()
          sim:fault({ kind = kind, path = "/run", method = "POST" })
          local run_id, message, code, info = client:run(PIPELINE)
          client:close()
          assert.is_nil(run_id)
          assert.equal("network", code)
          assert.matches("^run: ", message)
          assert.is_false(info.retryable)
          assert.equal(1, info.attempts)
          assert.equal(1, #sim:recorded("POST", "/run"))
          assert.equal(1, #sim:requests()) -- nothing read, nothing sent again
        end)
      end
    end

    it("raises for a bad pipeline id or body and sends nothing", function()
      local client = new_client()
      assert.error_matches(function() client:run(("a"):rep(31)) end,
        "bad argument #1 to 'run' %(pipeline_id must be 32 ASCII letters or digits")
      assert.error_matches(function() client:run(PIPELINE, "body") end, "bad argument #2 to 'run'")
      client:close()
      assert.equal(0, #sim:requests())
    end)
  end)

  describe("client:stop", function()
    it("returns true and the run becomes CANCELED", function()
      local run = sim:add_run({ status = "RUNNING", polls = 5 })
      local client = new_client()
      assert.is_true(client:stop(PIPELINE, run))
      client:close()
      local state = sim:run_state(run)
      assert.equal("CANCELED", state.status)
      assert.equal(1, state.stops)
      local stops = sim:recorded("POST", "/stop")
      assert.equal(1, #stops)
      assert.equal(("/v5/%s/api/pipelines/%s/pipeline-runs/%s/stop"):format(PROJECT, PIPELINE, run), stops[1].path)
      assert.equal(TOKEN, stops[1].headers["x-auth-token"])
    end)

    it("reports a run that cannot be stopped as code api", function()
      local run = sim:add_run({ status = "COMPLETED" })
      local client = new_client()
      local ok, message, code, info = client:stop(PIPELINE, run)
      client:close()
      assert.is_nil(ok)
      assert.equal("api", code)
      assert.equal("DEVPIPE.00011204", info.error_code)
      assert.matches("^stop: ", message)
      assert.equal("COMPLETED", sim:run_state(run).status)
    end)
  end)

  describe("client:detail", function()
    it("returns the run table with its status, stages and jobs", function()
      local run = sim:add_run({ status = "FAILED" })
      local client = new_client()
      local detail = client:detail(PIPELINE, run)
      client:close()
      assert.is_table(detail)
      assert.equal(run, detail.id)
      assert.equal(PIPELINE, detail.pipeline_id)
      assert.equal("FAILED", detail.status)
      assert.equal(math.type and "integer" or "number", math.type and math.type(detail.start_time) or "number")
      assert.equal(2, #detail.stages)
      assert.equal("Test", detail.stages[2].name)
      assert.equal("FAILED", detail.stages[2].jobs[1].status)
      assert.is_true(core.is_id(detail.stages[2].jobs[1].id))
      local reads = sim:recorded("GET", "/pipeline-runs/detail")
      assert.equal(1, #reads)
      assert.equal("pipeline_run_id=" .. run, reads[1].query)
    end)

    it("reports an unknown run as code not_found", function()
      local client = new_client()
      local detail, message, code, info = client:detail(PIPELINE, simulator.new_id())
      client:close()
      assert.is_nil(detail)
      assert.equal("not_found", code)
      assert.equal(404, info.status)
      assert.matches("^detail: ", message)
    end)
  end)

  describe("client:runs", function()
    local statuses = { "COMPLETED", "FAILED", "FAILED", "RUNNING", "CANCELED", "FAILED" }
    local function six_runs()
      local ids = {}
      for i, status in ipairs(statuses) do ids[i] = sim:add_run({ status = status, polls = 3 }) end
      return ids
    end

    it("returns an array of runs and the total", function()
      local ids = six_runs()
      sim:add_run({ pipeline_id = OTHER_PIPELINE, status = "FAILED" })
      local client = new_client()
      local runs, total = client:runs(PIPELINE)
      client:close()
      assert.equal(6, total)
      assert.equal(6, #runs)
      local seen = {}
      for _, run in ipairs(runs) do seen[run.id] = run.status end
      for i, id in ipairs(ids) do assert.equal(statuses[i], seen[id]) end
      assert.same({}, cjson.decode(sim:recorded("POST", "/pipeline-runs/list")[1].body))
    end)

    it("filters by a status given as a string or as a list", function()
      six_runs()
      local client = new_client()
      local failed, total = client:runs(PIPELINE, { status = "FAILED" })
      assert.equal(3, total)
      for _, run in ipairs(failed) do assert.equal("FAILED", run.status) end
      local ended, ended_total = client:runs(PIPELINE, { status = { "COMPLETED", "CANCELED" } })
      client:close()
      assert.equal(2, ended_total)
      assert.equal(2, #ended)
      local lists = sim:recorded("POST", "/pipeline-runs/list")
      assert.same({ status = { "FAILED" } }, cjson.decode(lists[1].body))
      assert.same({ status = { "COMPLETED", "CANCELED" } }, cjson.decode(lists[2].body))
    end)

    it("takes an empty status list as no filter", function()
      six_runs()
      local client = new_client()
      local runs, total = client:runs(PIPELINE, { status = {} })
      assert.equal(6, total)
      assert.equal(6, #runs)
      local _, pipelines_total = client:pipelines({ status = {} })
      client:close()
      assert.equal(1, pipelines_total)
      for _, request in ipairs(sim:requests()) do assert.equal("{}", request.body) end
    end)

    it("passes offset, limit and the sort in the body", function()
      local ids = six_runs()
      local client = new_client()
      local query = { offset = 1, limit = 2, sort_key = "start_time", sort_dir = "asc" }
      local runs, total = client:runs(PIPELINE, query)
      client:close()
      assert.equal(6, total)
      assert.equal(2, #runs)
      -- ascending by start time, ties by run number: the creation order
      assert.equal(ids[2], runs[1].id)
      assert.equal(ids[3], runs[2].id)
      assert.same(query, cjson.decode(sim:recorded("POST", "/pipeline-runs/list")[1].body))
    end)

    it("raises on an unknown query field and sends nothing", function()
      local client = new_client()
      assert.error_matches(function() client:runs(PIPELINE, { stauts = "FAILED" }) end,
        "bad argument #2 to 'runs' %(unknown query field 'stauts'%)")
      assert.error_matches(function() client:runs(PIPELINE, "FAILED") end, "bad argument #2 to 'runs'")
      client:close()
      assert.equal(0, #sim:requests())
    end)
  end)

  describe("client:pipelines", function()
    it("returns an array of pipelines and the total, filtered by name", function()
      sim:add_pipeline({ pipeline_id = PIPELINE, name = "web-build" })
      sim:add_pipeline({ pipeline_id = OTHER_PIPELINE, name = "web-deploy" })
      sim:add_pipeline({ pipeline_id = simulator.new_id(), name = "docs" })
      local client = new_client()
      local all, total = client:pipelines()
      assert.equal(3, total)
      assert.equal(3, #all)
      local web, web_total = client:pipelines({ name = "WEB", sort_key = "name", sort_dir = "asc" })
      client:close()
      assert.equal(2, web_total)
      assert.equal(PIPELINE, web[1].pipeline_id)
      assert.equal("web-build", web[1].name)
      assert.equal(OTHER_PIPELINE, web[2].pipeline_id)
      local lists = sim:recorded("POST", "/pipelines/list")
      assert.equal(2, #lists)
      assert.same({ name = "WEB", sort_key = "name", sort_dir = "asc" }, cjson.decode(lists[2].body))
    end)

    it("raises on an unknown query field and sends nothing", function()
      local client = new_client()
      assert.error_matches(function() client:pipelines({ nmae = "x" }) end,
        "bad argument #1 to 'pipelines' %(unknown query field 'nmae'%)")
      client:close()
      assert.equal(0, #sim:requests())
    end)
  end)

  describe("client:latest", function()
    it("returns the latest run of each pipeline, in the order asked", function()
      sim:add_run({ status = "COMPLETED" })
      local last = sim:add_run({ status = "FAILED" })
      local other = sim:add_run({ pipeline_id = OTHER_PIPELINE, status = "COMPLETED" })
      local client = new_client()
      local latest = client:latest({ OTHER_PIPELINE, PIPELINE })
      client:close()
      assert.equal(2, #latest)
      assert.equal(other, latest[1].pipeline_run_id)
      assert.equal("COMPLETED", latest[1].status)
      assert.equal(last, latest[2].pipeline_run_id)
      assert.equal("FAILED", latest[2].status)
      local posts = sim:recorded("POST", "/pipelines/status")
      assert.equal(1, #posts)
      assert.same({ OTHER_PIPELINE, PIPELINE }, cjson.decode(posts[1].body))
    end)

    it("raises for an empty list or a bad id and sends nothing", function()
      local client = new_client()
      assert.error_matches(function() client:latest({}) end, "bad argument #1 to 'latest'")
      assert.error_matches(function() client:latest(PIPELINE) end, "bad argument #1 to 'latest'")
      assert.error_matches(function() client:latest({ PIPELINE, "x" }) end, "pipeline_ids%[2%]")
      client:close()
      assert.equal(0, #sim:requests())
    end)
  end)

  -- The job and step ids of the step named name in the run's detail, as a
  -- user finds them (stages[].jobs[].steps[]), and the step.
  local function find_step(detail, name)
    for _, stage in ipairs(detail.stages) do
      for _, job in ipairs(stage.jobs) do
        for _, step in ipairs(job.steps or {}) do
          if step.name == name then return job.id, step.id, step end
        end
      end
    end
  end

  -- Checks a request the simulator recorded: method, path, JSON content type,
  -- and body (nil: none).
  local function received(request, method, path, body, content_type)
    assert.equal(method, request.method)
    assert.equal(path, request.path)
    assert.equal(content_type or "application/json", request.headers["content-type"])
    if body == nil then
      assert.equal("", request.body)
    else
      assert.same(body, cjson.decode(request.body))
    end
  end

  describe("client:approve and client:reject (manual review)", function()
    it("pass a review waiting in a PAUSED run: the run goes on to its outcome", function()
      local run = sim:add_run({ status = "PAUSED", outcome = "COMPLETED" })
      local client = new_client()
      local job, step, found = find_step(assert(client:detail(PIPELINE, run)), "manual-review")
      assert.is_string(step)
      assert.equal("PAUSED", found.status)
      sim:clear_requests()
      assert.is_true(client:approve(PIPELINE, run, job, step))
      local requests = sim:requests()
      assert.equal(1, #requests)
      received(requests[1], "POST", simulator.step_path(run, job, step, "pass"))
      assert.equal("pass", sim:run_state(run).review.decision)
      assert.equal("COMPLETED", client:wait(PIPELINE, run, { interval = 1 }))
      client:close()
    end)

    it("refuse a review: the run ends FAILED", function()
      local run = sim:add_run({ status = "PAUSED" })
      local client = new_client()
      local job, step = find_step(assert(client:detail(PIPELINE, run)), "manual-review")
      sim:clear_requests()
      assert.is_true(client:reject(PIPELINE, run, job, step))
      received(sim:requests()[1], "POST", simulator.step_path(run, job, step, "refuse"))
      assert.equal("refuse", sim:run_state(run).review.decision)
      assert.equal("FAILED", (client:wait(PIPELINE, run, { interval = 1 })))
      client:close()
    end)

    it("a step that is not a waiting review is the service's refusal, code api, and not repeated", function()
      local run = sim:add_run({ status = "COMPLETED" })
      local client = new_client({ retries = { max = 3 } })
      local job, step = find_step(assert(client:detail(PIPELINE, run)), "run-tests")
      sim:clear_requests()
      local ok, message, code, info = client:approve(PIPELINE, run, job, step)
      client:close()
      assert.is_nil(ok)
      assert.equal("api", code)
      assert.equal(400, info.status)
      assert.is_string(info.error_code)
      assert.matches("^approve: ", message)
      assert.equal(1, #sim:requests())
    end)

    it("take job and step ids of any length of letters and digits; raise on others and send nothing", function()
      local client = new_client()
      local run = simulator.new_id()
      -- a short step id reaches the service (which knows no such step)
      local ok, _, code = client:reject(PIPELINE, run, "job1", "s")
      assert.is_nil(ok)
      assert.equal("not_found", code)
      assert.equal(1, #sim:requests())
      sim:clear_requests()
      assert.error_matches(function() client:approve(PIPELINE, run, "", "s") end,
        "bad argument #3 to 'approve' %(job_run_id must be a non%-empty string of ASCII letters and digits")
      assert.error_matches(function() client:approve(PIPELINE, run, "job", "a/b") end,
        "bad argument #4 to 'approve' %(step_run_id")
      assert.error_matches(function() client:reject(PIPELINE, "short", "job", "step") end,
        "bad argument #2 to 'reject' %(run_id must be 32")
      assert.error_matches(function() client:reject(PIPELINE, run, 7, "step") end, "bad argument #3 to 'reject'")
      client:close()
      assert.equal(0, #sim:requests())
    end)

    it("manual-release is gone: no such method", function()
      local client = new_client()
      assert.is_nil(client.release)
      client:close()
    end)
  end)

  describe("step logs", function()
    -- The failed run-tests step of a FAILED run: a long log.
    local function failed_step(client)
      local run = sim:add_run({ status = "FAILED" })
      local job, step = find_step(assert(client:detail(PIPELINE, run)), "run-tests")
      sim:clear_requests()
      return run, job, step
    end

    it("logs: one page, as the API answers it, with the request's exact shape", function()
      local client = new_client()
      local run, job, step = failed_step(client)
      local page = assert(client:logs(PIPELINE, run, job, step, { limit = 10 }))
      client:close()
      assert.is_string(page.log)
      assert.equal(10, select(2, page.log:gsub("\n", "")))
      assert.is_true(page.has_more)
      assert.equal(step, page.step_run_id)
      assert.is_string(page.end_offset)
      received(sim:requests()[1], "POST", simulator.step_path(run, job, step, "logs"),
        { start_offset = 0, end_offset = 0, limit = 10, sort = "asc" }, "application/json;charset=UTF-8")
    end)

    it("each_log pages through the whole log, feeding each answer's offsets into the next request", function()
      local client = new_client()
      local run, job, step = failed_step(client)
      local pages, text = 0, {}
      for page, message in client:each_log(PIPELINE, run, job, step, { limit = 500 }) do
        assert.is_truthy(page, message)
        pages = pages + 1
        text[#text + 1] = page.log
      end
      client:close()
      local log = table.concat(text)
      local lines = {}
      for line in log:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
      assert.equal(2500, #lines)
      for n = 1, 2500 do
        assert.matches(("^%%[%04d/2500%%]"):format(n), lines[n])
      end
      assert.equal(5, pages)
      local requests = sim:requests()
      assert.equal(5, #requests)
      for i = 2, #requests do
        local previous = cjson.decode(requests[i - 1].body)
        local body = cjson.decode(requests[i].body)
        assert.equal(500, body.limit)
        assert.is_true(body.end_offset > previous.end_offset)
        -- offsets go back as JSON integers, as the API's int64 fields take them
        assert.is_nil(requests[i].body:find("%d[%.eE]"), requests[i].body)
      end
    end)

    it("full_log reads the whole log, or stops at max_bytes and says it was cut", function()
      local client = new_client()
      local run, job, step = failed_step(client)
      local whole, cut = assert(client:full_log(PIPELINE, run, job, step))
      assert.is_false(cut)
      assert.equal(2500, select(2, whole:gsub("\n", "")))
      local part, part_cut = client:full_log(PIPELINE, run, job, step, { max_bytes = 1000, limit = 100 })
      client:close()
      assert.is_true(part_cut)
      assert.equal(1000, #part)
      assert.equal(whole:sub(1, 1000), part)
    end)

    it("each_log yields a failure once as false, message, code, info", function()
      local client = new_client()
      local run, job, step = failed_step(client)
      sim:fault({ kind = "not_found", path = "/logs" })
      local seen = {}
      for page, message, code in client:each_log(PIPELINE, run, job, step) do
        seen[#seen + 1] = { page, message, code }
      end
      client:close()
      assert.equal(1, #seen)
      assert.is_false(seen[1][1])
      assert.matches("^logs: ", seen[1][2])
      assert.equal("not_found", seen[1][3])
    end)

    it("raise on a bad query and send nothing", function()
      local client = new_client()
      local run = simulator.new_id()
      assert.error_matches(function() client:logs(PIPELINE, run, "j", "s", { offset = 1 }) end,
        "bad argument #5 to 'logs' %(unknown query field 'offset'%)")
      assert.error_matches(function() client:logs(PIPELINE, run, "j", "s", { limit = 0 }) end, "limit")
      assert.error_matches(function() client:logs(PIPELINE, run, "j", "s", { start_offset = 1.5 }) end,
        "start_offset")
      assert.error_matches(function() client:each_log(PIPELINE, run, "j", "s", { sort = "up" }) end, "sort")
      assert.error_matches(function() client:full_log(PIPELINE, run, "j", "s", { max_bytes = 0 }) end, "max_bytes")
      client:close()
      assert.equal(0, #sim:requests())
    end)
  end)

  describe("client:artifacts and client:pipeline", function()
    it("artifacts: the run's list, GET with no body", function()
      local run = sim:add_run({ status = "COMPLETED" })
      local client = new_client()
      local artifacts = assert(client:artifacts(PIPELINE, run))
      client:close()
      assert.is_table(artifacts)
      for _, artifact in ipairs(artifacts) do
        assert.is_string(artifact.name)
        assert.is_string(artifact.artifact_download_url_with_id)
      end
      received(sim:requests()[1], "GET", ("/v5/%s/api/pipelines/%s/pipeline-runs/%s/artifacts"):format(PROJECT,
        PIPELINE, run))
    end)

    it("pipeline: the pipeline's detail", function()
      sim:add_pipeline({ name = "build-and-test" })
      local client = new_client()
      local detail = assert(client:pipeline(PIPELINE))
      local _, _, code = client:pipeline(OTHER_PIPELINE)
      client:close()
      assert.equal(PIPELINE, detail.id)
      assert.equal("build-and-test", detail.name)
      assert.equal("not_found", code)
      received(sim:requests()[1], "GET", ("/v5/%s/api/pipelines/%s"):format(PROJECT, PIPELINE))
    end)
  end)

  describe("client:run refused by the service", function()
    it("keeps the service's error_msg in the message and in info", function()
      sim:add_pipeline({ start_error = "the pipeline is disabled" })
      local client = new_client()
      local id, message, code, info = client:run(PIPELINE)
      client:close()
      assert.is_nil(id)
      assert.equal("api", code)
      assert.equal("the pipeline is disabled", info.error_msg)
      assert.matches("the pipeline is disabled", message, 1, true)
    end)

    it("keeps an error_msg that comes in a 2xx answer without a run id", function()
      sim:add_pipeline()
      local client = new_client()
      sim:fault({ kind = "wrong_shape", path = "/run", body = { pipeline_run_id = "", error_msg = "quota used up" } })
      local id, message, code, info = client:run(PIPELINE)
      client:close()
      assert.is_nil(id)
      assert.equal("api", code)
      assert.equal("quota used up", info.error_msg)
      assert.matches("quota used up", message, 1, true)
    end)
  end)

  describe("requests as the SDKs send them", function()
    it("every call sends Content-Type: application/json, with a body or not", function()
      local run = sim:add_run({ status = "FAILED" })
      local client = new_client()
      assert.is_true(client:retry(PIPELINE, run))
      assert.is_true(client:stop(PIPELINE, run))
      assert(client:detail(PIPELINE, run))
      assert(client:runs(PIPELINE))
      client:close()
      for _, request in ipairs(sim:requests()) do
        assert.equal("application/json", request.headers["content-type"], request.method .. " " .. request.path)
      end
    end)

    it("list queries take the SDKs' fields, no more", function()
      sim:add_pipeline()
      local client = new_client()
      assert(client:pipelines({ project_id = PROJECT, creator_id = OTHER_PIPELINE, group_path_id = "g1",
        security_level_list = { 0, 1 } }))
      assert(client:runs(PIPELINE, { sort_key = "update_time", sort_dir = "desc", limit = 5,
        update_time = "2026-01-01 00:00:00", trigger_type = { "Manual" } }))
      assert.error_matches(function() client:runs(PIPELINE, { updated = "2026-01-01 00:00:00" }) end,
        "unknown query field 'updated'")
      assert.error_matches(function() client:pipelines({ bogus = 1 }) end, "unknown query field 'bogus'")
      client:close()
      local requests = sim:requests()
      assert.equal(2, #requests)
      local body = cjson.decode(requests[1].body)
      assert.equal(PROJECT, body.project_id)
      assert.equal("g1", body.group_path_id)
      assert.same({ 0, 1 }, body.security_level_list)
      body = cjson.decode(requests[2].body)
      assert.equal("2026-01-01 00:00:00", body.update_time)
      assert.same({ "Manual" }, body.trigger_type)
    end)
  end)

  describe("paging", function()
    it("each_run sees every one of 120 runs exactly once, over 3 list requests", function()
      local ids = {}
      for i = 1, 120 do ids[i] = sim:add_run({ status = i % 3 == 0 and "FAILED" or "COMPLETED" }) end
      local client = new_client()
      local seen, count = {}, 0
      for run, message in client:each_run(PIPELINE) do
        assert.is_table(run, message)
        assert.is_nil(seen[run.id])
        seen[run.id], count = true, count + 1
      end
      assert.equal(120, count)
      for _, id in ipairs(ids) do assert.is_true(seen[id]) end
      local lists = sim:recorded("POST", "/pipeline-runs/list")
      assert.equal(3, #lists)
      for i, list in ipairs(lists) do
        local body = cjson.decode(list.body)
        assert.equal((i - 1) * 50, body.offset)
        assert.equal(50, body.limit)
      end

      -- with a filter and a page size of its own
      sim:clear_requests()
      local failed = 0
      for run in client:each_run(PIPELINE, { status = "FAILED", limit = 15 }) do
        assert.equal("FAILED", run.status)
        failed = failed + 1
      end
      client:close()
      assert.equal(40, failed)
      lists = sim:recorded("POST", "/pipeline-runs/list")
      assert.equal(3, #lists)
      assert.same({ status = { "FAILED" }, offset = 30, limit = 15 }, cjson.decode(lists[3].body))
    end)

    it("each_run yields a failure mid-way once, as false, message, code, info", function()
      for _ = 1, 70 do sim:add_run({ status = "FAILED" }) end
      local client = new_client()
      local items, failures = 0, {}
      for run, message, code, info in client:each_run(PIPELINE) do
        if run == false then
          failures[#failures + 1] = { message = message, code = code, info = info }
        else
          items = items + 1
          -- the first page is in hand: the next list request fails
          if items == 1 then sim:fault({ kind = "not_found", path = "/pipeline-runs/list" }) end
        end
      end
      client:close()
      assert.equal(50, items)
      assert.equal(1, #failures)
      assert.equal("not_found", failures[1].code)
      assert.matches("^runs: ", failures[1].message)
      assert.equal(404, failures[1].info.status)
      assert.equal(2, #sim:recorded("POST", "/pipeline-runs/list"))
    end)

    it("each_pipeline sees every pipeline once", function()
      local ids = {}
      for i = 1, 61 do
        ids[i] = simulator.new_id()
        sim:add_pipeline({ pipeline_id = ids[i], name = "p" .. i })
      end
      local client = new_client()
      local seen, count = {}, 0
      for item in client:each_pipeline({ name = "p" }) do
        assert.is_table(item)
        assert.is_nil(seen[item.pipeline_id])
        seen[item.pipeline_id], count = true, count + 1
      end
      client:close()
      assert.equal(61, count)
      for _, id in ipairs(ids) do assert.is_true(seen[id]) end
      assert.equal(2, #sim:recorded("POST", "/pipelines/list"))
    end)

    it("each_pipeline yields a first-page failure once", function()
      local client = new_client()
      sim:fault({ kind = "unauthorized", path = "/pipelines/list" })
      local results = {}
      for item, message, code in client:each_pipeline() do results[#results + 1] = { item, message, code } end
      client:close()
      assert.equal(1, #results)
      assert.is_false(results[1][1])
      assert.equal("auth", results[1][3])
    end)

    it("each_run and each_pipeline raise on an unknown query field", function()
      local client = new_client()
      assert.error_matches(function() client:each_run(PIPELINE, { page = 2 }) end, "unknown query field 'page'")
      assert.error_matches(function() client:each_pipeline({ page = 2 }) end, "unknown query field 'page'")
      assert.error_matches(function() client:each_run("x") end, "bad argument #1 to 'each_run'")
      client:close()
      assert.equal(0, #sim:requests())
    end)
  end)

  describe("each operation checks the shape of its answer", function()
    local operations = {
      { "run", "/run", function(c) sim:add_pipeline() return c:run(PIPELINE) end },
      { "stop", "/stop", function(c, run) return c:stop(PIPELINE, run) end },
      { "detail", "/detail", function(c, run) return c:detail(PIPELINE, run) end },
      { "runs", "/pipeline-runs/list", function(c) return c:runs(PIPELINE) end },
      { "pipelines", "/pipelines/list", function(c) return c:pipelines() end },
      { "latest", "/pipelines/status", function(c) return c:latest({ PIPELINE }) end },
      { "approve", "/pass", function(c, run) return c:approve(PIPELINE, run, run, run) end },
      { "reject", "/refuse", function(c, run) return c:reject(PIPELINE, run, run, run) end },
      { "logs", "/logs", function(c, run) return c:logs(PIPELINE, run, run, run) end },
      { "artifacts", "/artifacts", function(c, run) return c:artifacts(PIPELINE, run) end },
      { "pipeline", "/api/pipelines/" .. PIPELINE, function(c) return c:pipeline(PIPELINE) end },
      { "retry", "/retry", function(c, run) return c:retry(PIPELINE, run) end },
    }
    for _, op in ipairs(operations) do
      it(("%s: a wrong_shape answer is code protocol"):format(op[1]), function()
        local run = sim:add_run({ status = "RUNNING" })
        local client = new_client()
        sim:fault({ kind = "wrong_shape", path = op[2] })
        local value, message, code, info = op[3](client, run)
        client:close()
        assert.is_nil(value)
        assert.equal("protocol", code)
        assert.matches("^" .. op[1] .. ": ", message)
        assert.equal(200, info.status)
        assert.is_false(info.retryable)
        local requests = sim:requests()
        assert.equal(1, #requests)
        assert.equal("wrong_shape", requests[1].fault)
      end)
    end

    it("a wrong shape after a repeated request counts both attempts", function()
      local client, slept = new_client({ retries = { max = 2 } })
      sim:fault({ kind = "throttled", path = "/detail", retry_after = "1" })
      sim:fault({ kind = "wrong_shape", path = "/detail" })
      local run, _, code, info = client:detail(PIPELINE, simulator.new_id())
      client:close()
      assert.is_nil(run)
      assert.equal("protocol", code)
      assert.equal(2, info.attempts)
      assert.same({ 1 }, slept)
    end)

    it("a list answer whose list is not an array is code protocol", function()
      local client = new_client()
      sim:fault({ kind = "wrong_shape", path = "/pipeline-runs/list", body = { total = 1, pipeline_runs = { a = 1 } } })
      sim:fault({ kind = "wrong_shape", path = "/pipelines/status", body = { id = PIPELINE } })
      local _, _, code = client:runs(PIPELINE)
      local _, _, latest_code = client:latest({ PIPELINE })
      client:close()
      assert.equal("protocol", code)
      assert.equal("protocol", latest_code)
    end)
  end)

  describe("bad ids", function()
    it("raise in every operation and nothing is sent", function()
      local client = new_client()
      local bad, good = "0123456789abcdef0123456789abcde!", simulator.new_id()
      local calls = {
        { "stop", function() client:stop(bad, good) end },
        { "stop", function() client:stop(good, bad) end },
        { "detail", function() client:detail(good, bad .. "x") end },
        { "runs", function() client:runs(nil) end },
        { "approve", function() client:approve(good, bad, good, good) end },
        { "logs", function() client:logs(bad, good, good, good) end },
        { "artifacts", function() client:artifacts(good, bad) end },
        { "pipeline", function() client:pipeline(bad) end },
        { "wait", function() client:wait(good, 42) end },
        { "retry_and_wait", function() client:retry_and_wait(bad, good) end },
        { "retry_failed", function() client:retry_failed(bad) end },
        { "retry_many", function() client:retry_many({ { good, bad } }) end },
        { "wait_many", function() client:wait_many({ { pipeline_id = good } }) end },
      }
      for _, call in ipairs(calls) do
        local ok, err = pcall(call[2])
        assert.is_false(ok, call[1])
        assert.matches("bad argument #%d to '" .. call[1] .. "'", err)
      end
      client:close()
      assert.equal(0, #sim:requests())
    end)

    it("unknown options of the lifecycle calls raise", function()
      local client = new_client()
      local run = simulator.new_id()
      assert.error_matches(function() client:wait(PIPELINE, run, { timout = 3 }) end, "unknown option 'timout'")
      assert.error_matches(function() client:wait(PIPELINE, run, { interval = -1 }) end, "option 'interval'")
      assert.error_matches(function() client:retry_failed(PIPELINE, { attempt = 2 }) end, "unknown option 'attempt'")
      assert.error_matches(function() client:retry_many({}, { concurency = 2 }) end, "unknown option 'concurency'")
      client:close()
      assert.equal(0, #sim:requests())
    end)
  end)

  ------------------------------------------------------------ wait

  describe("client:wait", function()
    it("counts a sleep that returns at once as the wait it was asked for", function()
      -- a test's fake sleep, or a host's that only yields: the deadline still
      -- comes after timeout / interval polls, not after a flood of them
      local run = sim:add_run({ status = "RUNNING", polls = 1000 })
      local client = new_client({ sleep = function() end })
      local status, _, code = client:wait(PIPELINE, run, { timeout = 2, interval = 1 })
      client:close()
      assert.is_nil(status)
      assert.equal("timeout", code)
      assert.is_true(#sim:recorded("GET", "/pipeline-runs/detail") <= 3)
    end)
    it("polls until the run ends, sleeping through the client's sleep", function()
      local run = sim:add_run({ status = "RUNNING", polls = 2 })
      local client, slept = new_client()
      local seen = {}
      local status, detail = client:wait(PIPELINE, run, { interval = 3, timeout = 60,
        on_poll = function(s, r)
          assert.equal(run, r.id)
          seen[#seen + 1] = s
        end })
      client:close()
      assert.equal("COMPLETED", status)
      assert.equal(run, detail.id)
      assert.equal("COMPLETED", detail.status)
      assert.same({ "RUNNING", "RUNNING", "COMPLETED" }, seen)
      assert.same({ 3, 3 }, slept)
      assert.equal(3, #sim:recorded("GET", "/pipeline-runs/detail"))
      assert.equal(3, #sim:requests())
    end)

    for _, outcome in ipairs(TERMINAL) do
      it(("ends at %s"):format(outcome), function()
        local run = sim:add_run({ status = "RUNNING", polls = 1, outcome = outcome })
        local client, slept = new_client()
        local status, detail = client:wait(PIPELINE, run, { interval = 0.5 })
        client:close()
        assert.equal(outcome, status)
        assert.equal(outcome, detail.status)
        assert.same({ 0.5 }, slept)
        assert.equal(2, #sim:recorded("GET", "/pipeline-runs/detail"))
      end)
    end

    it("keeps waiting through PAUSED and reports it to on_poll", function()
      local run = sim:add_run({ status = "RUNNING", polls = 1, paused_polls = 2, outcome = "FAILED" })
      local client, slept = new_client()
      local seen, events = {}, {}
      client._on_event = function(e) if e.type == "poll" then events[#events + 1] = e.status end end
      local status = client:wait(PIPELINE, run, { interval = 1, on_poll = function(s) seen[#seen + 1] = s end })
      client:close()
      assert.equal("FAILED", status)
      assert.same({ "RUNNING", "PAUSED", "PAUSED", "FAILED" }, seen)
      assert.same(seen, events)
      assert.same({ 1, 1, 1 }, slept)
    end)

    it("stops with code cancelled when on_poll returns false", function()
      local run = sim:add_run({ status = "SUSPEND" }) -- waits on a person: never ends by itself
      local client, slept = new_client()
      local polls = 0
      local status, message, code, info = client:wait(PIPELINE, run, { interval = 2,
        on_poll = function(s)
          assert.equal("SUSPEND", s)
          polls = polls + 1
          if polls == 3 then return false end
        end })
      client:close()
      assert.is_nil(status)
      assert.equal("cancelled", code)
      assert.matches("^wait: cancelled by on_poll", message)
      assert.matches("SUSPEND", message)
      assert.equal(3, info.attempts)
      assert.same({ 2, 2 }, slept)
      assert.equal(3, #sim:recorded("GET", "/pipeline-runs/detail"))
    end)

    it("ends with code timeout at the deadline", function()
      local run = sim:add_run({ status = "RUNNING", polls = 100 })
      local client, slept = new_client()
      local status, message, code, info = client:wait(PIPELINE, run, { timeout = 0, interval = 1 })
      client:close()
      assert.is_nil(status)
      assert.equal("timeout", code)
      assert.matches("^wait: run " .. run .. " still RUNNING", message)
      assert.is_true(info.retryable)
      assert.same({}, slept)
      assert.equal(1, #sim:recorded("GET", "/pipeline-runs/detail"))
    end)

    it("polls every 5 s by default", function()
      local run = sim:add_run({ status = "RUNNING", polls = 2 })
      local client, slept = new_client()
      assert.equal("COMPLETED", client:wait(PIPELINE, run))
      client:close()
      assert.same({ 5, 5 }, slept)
    end)

    it("ends with code timeout when transient failures last past the deadline", function()
      local run = sim:add_run({ status = "RUNNING", polls = 2 })
      local client, slept = new_client({ retries = { max = 3 } })
      sim:fault({ kind = "unavailable", path = "/detail", retry_after = "2", times = 0 })
      local status, message, code = client:wait(PIPELINE, run, { timeout = 0, interval = 1 })
      client:close()
      assert.is_nil(status)
      assert.equal("timeout", code)
      assert.matches("still unknown", message, 1, true)
      assert.same({}, slept) -- its Retry-After would end past the deadline: not waited for
      assert.equal(1, #sim:requests())
    end)

    it("does not let one slow poll run far past the deadline", function()
      local run = sim:add_run({ status = "RUNNING", polls = 100 })
      local client = new_client({ timeout = 30 })
      sim:fault({ kind = "slow", delay = 3, path = "/detail" })
      local started = core.monotonic()
      local status, _, code = client:wait(PIPELINE, run, { timeout = 0.3, interval = 0.1 })
      client:close()
      assert.is_nil(status)
      assert.equal("timeout", code)
      -- the poll in flight is cut at a second, not at the client's 30 s
      assert.is_true(core.monotonic() - started < 2, tostring(core.monotonic() - started))
    end)

    it("never sleeps past the deadline", function()
      local run = sim:add_run({ status = "RUNNING", polls = 1 })
      local client, slept = new_client()
      assert.equal("COMPLETED", client:wait(PIPELINE, run, { timeout = 100, interval = 500 }))
      client:close()
      assert.equal(1, #slept)
      assert.is_true(slept[1] <= 100 and slept[1] > 90, tostring(slept[1]))
    end)

    it("polls through transient failures within the deadline", function()
      local run = sim:add_run({ status = "RUNNING", polls = 2 })
      local client, slept = new_client({ retries = { max = 2, base_delay = 0.25 } })
      sim:fault({ kind = "unavailable", path = "/detail", retry_after = "4" })
      sim:fault({ kind = "close", path = "/detail" })
      sim:fault({ kind = "throttled", path = "/detail", retry_after = "1" })
      local status = client:wait(PIPELINE, run, { interval = 2 })
      client:close()
      assert.equal("COMPLETED", status)
      local reads = sim:recorded("GET", "/pipeline-runs/detail")
      local faults = {}
      for _, read in ipairs(reads) do
        if read.fault ~= cjson.null then faults[#faults + 1] = read.fault end
      end
      assert.same({ "unavailable", "close", "throttled" }, faults)
      assert.equal(6, #reads)
      -- The GET lost to `close` went out on a reused connection: libcurl
      -- sent it again at once on a new one (fine for a GET), so no backoff.
      assert.are_not.equal(reads[2].connection, reads[3].connection)
      -- Retry-After 4, Retry-After 1, then the poll interval twice
      assert.same({ 4, 1, 2, 2 }, slept)
    end)

    it("polls through transient failures with retries off, by its own interval", function()
      local run = sim:add_run({ status = "RUNNING", polls = 1 })
      local client, slept = new_client()
      sim:fault({ kind = "close", path = "/detail" })
      sim:fault({ kind = "server_html", path = "/detail" })
      local polls = 0
      local status = client:wait(PIPELINE, run, { interval = 1, on_poll = function() polls = polls + 1 end })
      client:close()
      assert.equal("COMPLETED", status)
      assert.equal(2, polls) -- only answers are reported
      assert.same({ 1, 1, 1 }, slept)
      assert.equal(4, #sim:recorded("GET", "/pipeline-runs/detail"))
    end)

    for _, case in ipairs({ { "not_found", "not_found" }, { "unauthorized", "auth" }, { "wrong_shape", "protocol" } }) do
      it(("stops at once on %s"):format(case[1]), function()
        local run = sim:add_run({ status = "RUNNING", polls = 2 })
        local client, slept = new_client({ retries = { max = 3 } })
        sim:fault({ kind = case[1], path = "/detail" })
        local status, message, code = client:wait(PIPELINE, run, { interval = 1 })
        client:close()
        assert.is_nil(status)
        assert.equal(case[2], code)
        assert.matches("^detail: ", message)
        assert.same({}, slept)
        assert.equal(1, #sim:requests())
      end)
    end
  end)

  ------------------------------------------------------------ retry_and_wait, retry_failed

  describe("client:retry_and_wait", function()
    it("retries the run and follows it to the end", function()
      local run = sim:add_run({ status = "FAILED" })
      local client, slept = new_client()
      local status, detail = client:retry_and_wait(PIPELINE, run, { interval = 4 })
      client:close()
      assert.equal("COMPLETED", status)
      assert.equal(run, detail.id)
      assert.same({ 4, 4 }, slept)
      local requests = sim:requests()
      assert.equal(4, #requests)
      assert.equal("PUT", requests[1].method)
      for i = 2, 4 do assert.equal("GET", requests[i].method) end
      assert.equal(1, sim:run_state(run).retries)
    end)

    it("reports a retry the service refuses and does not wait", function()
      local run = sim:add_run({ status = "COMPLETED" })
      local client, slept = new_client()
      local status, message, code, info = client:retry_and_wait(PIPELINE, run)
      client:close()
      assert.is_nil(status)
      assert.equal("api", code)
      assert.matches("^retry: ", message)
      assert.equal("DEVPIPE.00011203", info.error_code)
      assert.same({}, slept)
      assert.equal(1, #sim:requests())
    end)
  end)

  describe("client:retry_failed", function()
    it("retries until the run passes: COMPLETED on the second attempt", function()
      local run = sim:add_run({ status = "FAILED", polls = 1, outcomes = { "FAILED", "COMPLETED" } })
      local client, slept = new_client()
      local status, history = client:retry_failed(PIPELINE, { attempts = 3, interval = 1, timeout = 60 })
      client:close()
      assert.equal("COMPLETED", status)
      assert.same({ { run_id = run, status = "FAILED" }, { run_id = run, status = "COMPLETED" } }, history)
      assert.same({ 1, 1 }, slept)
      assert.equal(1, #sim:recorded("POST", "/pipelines/status"))
      assert.equal(2, #sim:recorded("PUT", "/retry"))
      assert.equal(4, #sim:recorded("GET", "/detail"))
      assert.equal(2, sim:run_state(run).retries)
    end)

    it("gives up after attempts: FAILED with attempts = 1", function()
      local run = sim:add_run({ status = "FAILED", polls = 0, outcomes = { "FAILED", "COMPLETED" } })
      local client = new_client()
      local status, history = client:retry_failed(PIPELINE, { attempts = 1 })
      client:close()
      assert.equal("FAILED", status)
      assert.same({ { run_id = run, status = "FAILED" } }, history)
      assert.equal(1, #sim:recorded("PUT", "/retry"))
    end)

    it("needs no attempt when the latest run already COMPLETED", function()
      sim:add_run({ status = "FAILED" })
      sim:add_run({ status = "COMPLETED" })
      local client, slept = new_client()
      local status, history = client:retry_failed(PIPELINE)
      client:close()
      assert.equal("COMPLETED", status)
      assert.same({}, history)
      assert.same({}, slept)
      local requests = sim:requests()
      assert.equal(1, #requests)
      assert.matches("/pipelines/status$", requests[1].path)
    end)

    it("follows a latest run that is still going before retrying it", function()
      local run = sim:add_run({ status = "RUNNING", polls = 1, outcomes = { "CANCELED" } })
      local client = new_client()
      local status, history = client:retry_failed(PIPELINE, { interval = 1 })
      client:close()
      assert.equal("COMPLETED", status)
      assert.same({ { run_id = run, status = "COMPLETED" } }, history)
      assert.equal(1, #sim:recorded("PUT", "/retry"))
    end)

    it("reports a pipeline with no run as code not_found", function()
      local client = new_client()
      local status, message, code = client:retry_failed(OTHER_PIPELINE)
      client:close()
      assert.is_nil(status)
      assert.equal("not_found", code)
      assert.matches(OTHER_PIPELINE, message)
      assert.equal(1, #sim:requests())
    end)

    it("reports a failed attempt with the history so far", function()
      local run = sim:add_run({ status = "FAILED", polls = 0, outcomes = { "FAILED", "COMPLETED" } })
      local client = new_client()
      sim:fault({ kind = "forbidden", path = "/retry", method = "PUT" })
      -- the first retry passes (the fault is for the next one)
      sim:control("DELETE", "faults")
      local status, history = client:retry_failed(PIPELINE, { attempts = 1 })
      assert.equal("FAILED", status)
      assert.equal(1, #history)
      sim:fault({ kind = "forbidden", path = "/retry", method = "PUT" })
      local none, message, code, info = client:retry_failed(PIPELINE, { attempts = 2 })
      client:close()
      assert.is_nil(none)
      assert.equal("auth", code)
      assert.matches("^retry: ", message)
      assert.same({}, info.history)
      assert.equal(1, sim:run_state(run).retries)
    end)
  end)

  ------------------------------------------------------------ retry policy

  describe("the retry policy", function()
    it("takes a 2xx with an empty error_code as a success", function()
      local run = sim:add_run({ status = "RUNNING" })
      local client = new_client()
      sim:fault({ kind = "wrong_shape", body = { success = true, error_code = "", error_msg = "" } })
      assert.is_true(client:stop(PIPELINE, run))
      client:close()
    end)

    it("marks a read that timed out as retryable", function()
      local run = sim:add_run({ status = "RUNNING" })
      local client = new_client({ timeout = 0.3 })
      sim:fault({ kind = "slow", delay = 1, path = "/detail" })
      local detail, _, code, info = client:detail(PIPELINE, run)
      client:close()
      assert.is_nil(detail)
      assert.equal("timeout", code)
      assert.is_true(info.retryable)
    end)
    it("repeats a 429 after Retry-After in seconds", function()
      local run = sim:add_run({ status = "FAILED" })
      local events = {}
      local client, slept = new_client({ retries = { max = 3 },
        on_event = function(e) if e.type == "retry" then events[#events + 1] = e end end })
      sim:fault({ kind = "throttled", retry_after = "3", times = 2 })
      assert.is_true(client:retry(PIPELINE, run))
      client:close()
      assert.same({ 3, 3 }, slept)
      assert.equal(3, #sim:recorded("PUT", "/retry"))
      assert.equal(2, #events)
      assert.equal("throttled", events[1].reason)
      assert.equal(429, events[1].status)
      assert.equal(3, events[1].delay)
      assert.equal(1, events[1].attempt)
      assert.equal(2, events[2].attempt)
      assert.equal("RUNNING", sim:run_state(run).status)
    end)

    it("repeats a 503 after Retry-After as an HTTP date", function()
      local run = sim:add_run({ status = "FAILED" })
      local client, slept = new_client({ retries = { max = 3 } })
      local at = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 6)
      sim:fault({ kind = "unavailable", retry_after = at })
      sim:fault({ kind = "unavailable", retry_after = "Thu, 01 Jan 1970 00:00:00 GMT" })
      assert.is_true(client:retry(PIPELINE, run))
      client:close()
      assert.equal(1, #slept) -- a date already past means no wait
      assert.is_true(slept[1] >= 4 and slept[1] <= 6, tostring(slept[1]))
      assert.equal(3, #sim:recorded("PUT", "/retry"))
    end)

    it("caps Retry-After at retries.max_delay", function()
      local client, slept = new_client({ retries = { max = 1, max_delay = 7 } })
      sim:fault({ kind = "throttled", retry_after = "3600" })
      assert.is_true(client:retry(PIPELINE, sim:add_run({ status = "FAILED" })))
      client:close()
      assert.same({ 7 }, slept)
    end)

    it("backs off exponentially with full jitter, bounded by retries.max", function()
      local client, slept = new_client({ retries = { max = 5, base_delay = 1, max_delay = 6 } })
      sim:fault({ kind = "unavailable", retry_after = cjson.null, times = 0 })
      local ok, message, code, info = client:retry(PIPELINE, sim:add_run({ status = "FAILED" }))
      client:close()
      assert.is_nil(ok)
      assert.equal("server", code)
      assert.matches("HTTP 503", message, 1, true)
      assert.equal(6, info.attempts)
      assert.is_true(info.retryable)
      assert.equal(6, #sim:recorded("PUT", "/retry"))
      assert.equal(5, #slept)
      local ceilings = { 1, 2, 4, 6, 6 }
      local all_at_ceiling = true
      for i, delay in ipairs(slept) do
        assert.is_true(delay >= 0 and delay <= ceilings[i], ("delay %d: %s"):format(i, delay))
        if delay ~= ceilings[i] then all_at_ceiling = false end
      end
      assert.is_false(all_at_ceiling)
    end)

    it("does not repeat with retries = false", function()
      local client, slept = new_client({ retries = false })
      sim:fault({ kind = "throttled" })
      local ok, _, code, info = client:retry(PIPELINE, sim:add_run({ status = "FAILED" }))
      client:close()
      assert.is_nil(ok)
      assert.equal("throttled", code)
      assert.equal(1, info.attempts)
      assert.same({}, slept)
      assert.equal(1, #sim:requests())
    end)

    for _, op in ipairs({
      { "retry", function(c) return c:retry(PIPELINE, simulator.new_id()) end },
      { "run", function(c) return c:run(PIPELINE) end },
      { "stop", function(c) return c:stop(PIPELINE, simulator.new_id()) end },
      { "detail", function(c) return c:detail(PIPELINE, simulator.new_id()) end },
    }) do
      it(op[1] .. " repeats a connection that failed before the request was sent", function()
        local events = {}
        local client, slept = new_client({ endpoint = "http://127.0.0.1:1", retries = { max = 2, base_delay = 0.1 },
          on_event = function(e) events[#events + 1] = e.type end })
        local value, message, code, info = op[2](client)
        client:close()
        assert.is_nil(value)
        assert.equal("network", code)
        assert.matches("^" .. op[1] .. ": network error", message)
        assert.equal(3, info.attempts)
        assert.is_true(info.retryable)
        assert.equal(2, #slept)
        for _, delay in ipairs(slept) do assert.is_true(delay >= 0 and delay <= 0.2) end
        assert.same({ "request", "response", "retry", "request", "response", "retry", "request", "response" }, events)
      end)
    end

    it("repeats a GET that timed out", function()
      local run = sim:add_run({ status = "FAILED" })
      local client = new_client({ timeout = 0.3, retries = { max = 1 } })
      sim:fault({ kind = "slow", delay = 1, path = "/detail" })
      local detail = client:detail(PIPELINE, run)
      client:close()
      assert.equal("FAILED", detail.status)
    end)

    it("repeats a GET after a 502, not a retry: its run's status is read instead", function()
      local run = sim:add_run({ status = "FAILED" })
      local client, slept = new_client({ retries = { max = 3, base_delay = 0.1 } })
      sim:fault({ kind = "bad_gateway", path = "/detail" })
      assert.equal("FAILED", assert(client:detail(PIPELINE, run)).status)
      assert.equal(1, #slept)
      sim:clear_requests()
      sim:fault({ kind = "bad_gateway", path = "/retry" })
      local ok, _, code, info = client:retry(PIPELINE, run)
      client:close()
      assert.is_nil(ok)
      assert.equal("server", code)
      assert.equal(502, info.status)
      assert.is_false(info.retryable)
      local requests = sim:requests()
      assert.equal(2, #requests)
      assert.equal("PUT", requests[1].method)
      assert.equal("GET", requests[2].method)
    end)
  end)

  ------------------------------------------------------------ safety

  describe("an outcome that is unknown", function()
    it("a retry processed then dropped is not sent again: its status is read, and it succeeds", function()
      local run = sim:add_run({ status = "FAILED" })
      local client, slept = new_client({ retries = { max = 3 } })
      sim:fault({ kind = "throttled", run_id = run, method = "PUT", times = 2, retry_after = "1" })
      sim:fault({ kind = "drop_after_processing", run_id = run, method = "PUT" })
      assert.is_true(client:retry(PIPELINE, run))
      client:close()
      assert.same({ 1, 1 }, slept)
      local methods, faults = {}, {}
      for _, request in ipairs(sim:requests()) do
        methods[#methods + 1] = request.method
        faults[#faults + 1] = request.fault ~= cjson.null and request.fault or "none"
      end
      assert.same({ "PUT", "PUT", "PUT", "GET" }, methods)
      assert.same({ "throttled", "throttled", "drop_after_processing", "none" }, faults)
      assert.equal(1, sim:run_state(run).retries)
      assert.equal("RUNNING", sim:run_state(run).status)
    end)

    it("a retry_and_wait whose retry was dropped after processing follows the run", function()
      local run = sim:add_run({ status = "FAILED" })
      local client = new_client({ retries = { max = 3 } })
      assert.is_true(client:retry(PIPELINE, sim:add_run({ status = "FAILED" }))) -- the connection is reused next
      sim:clear_requests()
      sim:fault({ kind = "drop_after_processing", run_id = run, method = "PUT" })
      assert.equal("COMPLETED", client:retry_and_wait(PIPELINE, run, { interval = 1 }))
      client:close()
      assert.equal(1, #sim:recorded("PUT", "/retry"))
      assert.equal(3, #sim:recorded("GET", "/detail"))
      assert.equal(1, sim:run_state(run).retries)
    end)

    it("a stop processed then dropped is not sent again: its status is read, and it succeeds", function()
      local run = sim:add_run({ status = "RUNNING", polls = 10 })
      local events = {}
      local client = new_client({ retries = { max = 3 }, on_event = function(e) events[#events + 1] = e end })
      sim:fault({ kind = "drop_after_processing", path = "/stop" })
      assert.is_true(client:stop(PIPELINE, run))
      client:close()
      local requests = sim:requests()
      assert.equal(2, #requests)
      assert.equal("POST", requests[1].method)
      assert.matches("/stop$", requests[1].path)
      assert.equal("GET", requests[2].method)
      assert.equal("pipeline_run_id=" .. run, requests[2].query)
      local state = sim:run_state(run)
      assert.equal("CANCELED", state.status)
      assert.equal(1, state.stops)
      local verify = events[#events]
      assert.equal("verify", verify.type)
      assert.equal("stop", verify.op)
      assert.is_true(verify.took_effect)
    end)

    it("a stop lost before processing is reported, not retryable, and not sent again", function()
      local run = sim:add_run({ status = "RUNNING", polls = 10 })
      local client, slept = new_client({ retries = { max = 3 } })
      sim:fault({ kind = "close", path = "/stop" })
      local ok, message, code, info = client:stop(PIPELINE, run)
      client:close()
      assert.is_nil(ok)
      assert.equal("network", code)
      assert.matches("^stop: ", message)
      assert.is_false(info.retryable)
      assert.same({}, slept)
      assert.equal(1, #sim:recorded("POST", "/stop"))
      assert.equal("RUNNING", sim:run_state(run).status)
    end)
  end)

  ------------------------------------------------------------ events

  describe("on_event", function()
    it("sees request, response, retry and poll events, with secrets redacted", function()
      local run = sim:add_run({ status = "FAILED", polls = 1 })
      local events = {}
      local client = new_client({ token = CANARY, retries = { max = 2 },
        on_event = function(e) events[#events + 1] = e end })
      sim:fault({ kind = "throttled", run_id = run, method = "PUT", retry_after = "1" })
      assert.equal("COMPLETED", client:retry_and_wait(PIPELINE, run, { interval = 1 }))
      sim:fault({ kind = "unauthorized", path = "/detail" })
      assert.is_nil(client:detail(PIPELINE, run))
      client:close()

      local types = {}
      for _, e in ipairs(events) do types[#types + 1] = e.type end
      assert.same({
        "request", "response", "retry", "request", "response", -- the retry, throttled once
        "request", "response", "poll", "request", "response", "poll", -- RUNNING, COMPLETED
        "request", "response", -- the refused detail read
      }, types)
      assert.equal("retry", events[1].op)
      assert.equal("PUT", events[1].method)
      assert.equal(1, events[1].attempt)
      assert.equal("***", events[1].headers["X-Auth-Token"])
      assert.equal(429, events[2].status)
      assert.equal("throttled", events[2].code)
      assert.is_string(events[2].request_id)
      assert.is_number(events[2].elapsed)
      assert.equal("throttled", events[3].reason)
      assert.equal(1, events[3].delay)
      assert.equal(2, events[4].attempt)
      assert.equal(200, events[5].status)
      assert.is_nil(events[5].error)
      assert.same({ "wait", PIPELINE, run, "RUNNING", 1 },
        { events[8].op, events[8].pipeline_id, events[8].run_id, events[8].status, events[8].poll })
      assert.equal("COMPLETED", events[11].status)
      assert.equal(2, events[11].poll)
      assert.equal(401, events[13].status)
      assert.equal("auth", events[13].code)
      assert.matches("^detail: authentication failed", events[13].error)
      for _, e in ipairs(events) do
        if e.type == "request" then assert.equal("***", e.headers["X-Auth-Token"]) end
      end
      -- the token did reach the simulator, and nowhere in the events
      assert.equal(CANARY, sim:requests()[1].headers["x-auth-token"])
      assert.is_nil(cjson.encode(events):find(CANARY, 1, true))
    end)

    it("sees a token event from a token function, without the token", function()
      local events = {}
      local client = new_client({ token = function() return CANARY, os.time() + 3600 end,
        on_event = function(e) events[#events + 1] = e end })
      sim:fault({ kind = "not_found", path = "/detail" })
      assert.is_nil(client:detail(PIPELINE, simulator.new_id()))
      client:close()
      assert.equal("token", events[1].type)
      assert.equal("***", events[2].headers["X-Auth-Token"])
      assert.is_nil(cjson.encode(events):find(CANARY, 1, true))
    end)
  end)

  ------------------------------------------------------------ many at once

  describe("many at once", function()
    it("raises on options a call does not take, and on a concurrency out of range", function()
      local client = new_client()
      assert.error_matches(function() client:map({}, print, { timeout = 1 }) end, "unknown option 'timeout'")
      assert.error_matches(function() client:retry_many({}, { interval = 1 }) end, "unknown option 'interval'")
      for _, bad in ipairs({ 0, 1.5, 257 }) do
        assert.error_matches(function() client:retry_many({}, { concurrency = bad }) end,
          "'concurrency' must be a whole number from 1 to 256")
      end
      assert.error_matches(function() client:retry_many({ { "short", "ids" } }) end,
        "list%[1%]%.pipeline_id must be 32 ASCII letters or digits")
      client:close()
    end)
    it("retry_many: 200 runs, 16 at a time, results aligned, failures isolated, connections reused", function()
      local list, ids = {}, {}
      for i = 1, 200 do
        local pipeline_id = i % 2 == 0 and OTHER_PIPELINE or PIPELINE
        ids[i] = sim:add_run({ pipeline_id = pipeline_id, status = i % 5 == 0 and "CANCELED" or "FAILED" })
        list[i] = i % 3 == 0 and { pipeline_id = pipeline_id, run_id = ids[i] } or { pipeline_id, ids[i] }
      end
      local expected = { [7] = "not_found", [50] = "auth", [101] = "api", [150] = "api", [199] = "auth" }
      sim:fault({ faults = {
        { kind = "not_found", run_id = ids[7] },
        { kind = "unauthorized", run_id = ids[50] },
        { kind = "error_code_200", run_id = ids[101] },
        { kind = "success_false", run_id = ids[150] },
        { kind = "forbidden", run_id = ids[199] },
        { kind = "throttled", run_id = ids[120], retry_after = "2" },
      } })
      local client, slept = new_client({ retries = { max = 2 } })
      local results = client:retry_many(list, { concurrency = 16 })
      client:close()

      assert.equal(200, #results)
      for i = 1, 200 do
        local result, state = results[i], sim:run_state(ids[i])
        if expected[i] then
          assert.is_false(result.ok, "index " .. i)
          assert.equal(expected[i], result.code, "index " .. i)
          assert.matches("^retry: ", result.message)
          assert.is_table(result.info)
          assert.equal(0, state.retries, "index " .. i)
        else
          assert.is_true(result.ok, "index " .. i)
          assert.is_nil(result.code)
          assert.equal(1, state.retries, "index " .. i)
          assert.equal("RUNNING", state.status)
        end
      end
      assert.equal("DEVPIPE.00011201", results[101].info.error_code)
      assert.equal(404, results[7].info.status)
      -- the throttled one waited its Retry-After (less what the others took)
      assert.equal(1, #slept)
      assert.is_true(slept[1] > 1.5 and slept[1] <= 2, tostring(slept[1]))

      local puts = sim:recorded("PUT", "/retry")
      assert.equal(201, #puts)
      local connections, count = {}, 0
      for _, request in ipairs(sim:requests()) do
        if not connections[request.connection] then connections[request.connection], count = true, count + 1 end
      end
      assert.is_true(count <= 16, count .. " connections")
    end)

    it("retry_many after retry goes on over the client's connection, and retry after it over the batch's", function()
      local client = new_client()
      local first = sim:add_run({ status = "FAILED" })
      assert(client:retry(PIPELINE, first))
      local results = client:retry_many({ { PIPELINE, sim:add_run({ status = "FAILED" }) } }, { concurrency = 1 })
      assert.is_true(results[1].ok)
      assert(client:retry(PIPELINE, sim:add_run({ status = "FAILED" })))
      -- a long list on few workers: every job done, in order of the list
      local list, ids = {}, {}
      for i = 1, 300 do
        ids[i] = sim:add_run({ status = "FAILED" })
        list[i] = { PIPELINE, ids[i] }
      end
      results = client:retry_many(list, { concurrency = 2 })
      client:close()
      for i = 1, 300 do
        assert.is_true(results[i].ok, "index " .. i)
        assert.equal(1, sim:run_state(ids[i]).retries, "index " .. i)
      end
      local requests = sim:requests()
      assert.equal(303, #requests)
      assert.equal(requests[1].connection, requests[2].connection)
      assert.equal(requests[1].connection, requests[3].connection)
      local connections, count = {}, 0
      for _, request in ipairs(requests) do
        if not connections[request.connection] then connections[request.connection], count = true, count + 1 end
      end
      assert.is_true(count <= 2, count .. " connections")
    end)

    it("retry_many with an empty list returns an empty array and sends nothing", function()
      local client = new_client()
      assert.same({}, client:retry_many({}))
      client:close()
      assert.equal(0, #sim:requests())
    end)

    it("wait_many follows several runs at once", function()
      local plans = {
        { status = "RUNNING", polls = 3, outcome = "COMPLETED" },
        { status = "RUNNING", polls = 1, outcome = "FAILED" },
        { status = "RUNNING", polls = 2, paused_polls = 2, outcome = "COMPLETED" },
        { status = "COMPLETED" },
        { status = "RUNNING", polls = 0, outcome = "IGNORED" },
      }
      local list, ids = {}, {}
      for i, plan in ipairs(plans) do
        ids[i] = sim:add_run(plan)
        list[i] = { PIPELINE, ids[i] }
      end
      list[#list + 1] = { PIPELINE, simulator.new_id() } -- unknown
      local polls = {}
      local client, slept = new_client()
      local results = client:wait_many(list, { concurrency = 3, interval = 2,
        on_poll = function(_, run) polls[run.id] = (polls[run.id] or 0) + 1 end })
      client:close()
      assert.equal(6, #results)
      local want = { "COMPLETED", "FAILED", "COMPLETED", "COMPLETED", "IGNORED" }
      local reads = { 4, 2, 5, 1, 1 }
      for i = 1, 5 do
        assert.is_true(results[i].ok, "index " .. i)
        assert.equal(want[i], results[i].status)
        assert.equal(ids[i], results[i].run.id)
        assert.equal(reads[i], sim:run_state(ids[i]).detail_reads, "index " .. i)
        assert.equal(reads[i], polls[ids[i]])
      end
      assert.is_false(results[6].ok)
      assert.equal("not_found", results[6].code)
      -- Waits went through the client's sleep, and the jobs waited side by
      -- side: less time asked for than the 8 poll intervals of 2 s one after
      -- the other, and at least the 4 intervals of the longest run.
      for _, seconds in ipairs(slept) do assert.is_true(seconds > 0 and seconds <= 2) end
      assert.is_true(sum(slept) >= 7.9 and sum(slept) < 16, sum(slept) .. " s")
    end)

    it("retry_and_wait_many retries several runs and follows each to its end", function()
      local list, ids = {}, {}
      local outcomes = { "COMPLETED", "FAILED", "COMPLETED", "CANCELED" }
      for i, outcome in ipairs(outcomes) do
        ids[i] = sim:add_run({ status = "FAILED", polls = i, outcome = outcome })
        list[i] = { PIPELINE, ids[i] }
      end
      ids[5] = sim:add_run({ status = "COMPLETED" }) -- cannot be retried
      list[5] = { PIPELINE, ids[5] }
      local client = new_client()
      local results = client:retry_and_wait_many(list, { concurrency = 4, interval = 1 })
      client:close()
      for i, outcome in ipairs(outcomes) do
        assert.is_true(results[i].ok)
        assert.equal(outcome, results[i].status)
        assert.equal(1, sim:run_state(ids[i]).retries)
        assert.equal(i + 1, sim:run_state(ids[i]).detail_reads)
      end
      assert.is_false(results[5].ok)
      assert.equal("api", results[5].code)
      assert.equal(0, sim:run_state(ids[5]).detail_reads)
      assert.equal(5, #sim:recorded("PUT", "/retry"))
    end)

    it("map runs arbitrary client code concurrently, results aligned", function()
      local pipelines = { PIPELINE, OTHER_PIPELINE, simulator.new_id(), simulator.new_id() }
      for i, id in ipairs(pipelines) do
        for _ = 1, i do sim:add_run({ pipeline_id = id, status = "FAILED" }) end
        -- each pipeline's list answer takes 0.5 s: one after the other they would take 2 s
        sim:fault({ kind = "slow", delay = 0.5, path = id .. "/pipeline-runs/list" })
      end
      local client = new_client()
      local started = core.monotonic()
      local results = client:map(pipelines, function(id, index)
        local runs, total = assert(client:runs(id, { status = "FAILED" }))
        local detail = assert(client:detail(id, runs[1].id))
        return index, total, detail.status, nil, "fifth", "sixth", "seventh", nil
      end, { concurrency = 4 })
      local elapsed = core.monotonic() - started
      client:close()
      assert.is_true(elapsed < 1.5, elapsed .. " s")
      assert.equal(4, #results)
      for i = 1, 4 do
        assert.same({ n = 8, i, i, "FAILED", nil, "fifth", "sixth", "seventh" }, results[i])
      end
      assert.equal(4, #sim:recorded("POST", "/pipeline-runs/list"))
      assert.equal(4, #sim:recorded("GET", "/detail"))
    end)

    it("map raises an error raised inside a job, and the client still works", function()
      local run = sim:add_run({ status = "FAILED" })
      local calls = 0
      local client = new_client({ on_event = function(e)
        if e.type == "response" then
          calls = calls + 1
          if calls == 3 then error("boom from on_event") end
        end
      end })
      local list = {}
      for i = 1, 6 do list[i] = i end
      local ok, err = pcall(client.map, client, list, function() return client:detail(PIPELINE, run) end,
        { concurrency = 2 })
      assert.is_false(ok)
      assert.matches("lifecycle_spec.lua:%d+: boom from on_event", err)
      assert.matches("stack traceback", err, 1, true) -- the job's, to find the bug
      assert.equal(3, calls) -- the other jobs stopped there
      -- a non-string error value is not lost either
      ok, err = pcall(client.map, client, { 1 }, function() error({ code = 42 }) end)
      assert.is_false(ok)
      assert.matches("^table: ", err)
      client._on_event = nil
      assert.equal("FAILED", assert(client:detail(PIPELINE, run)).status)
      client:close()
    end)

    it("map inside map: the inner calls run inside the outer scheduler", function()
      local pipelines = { PIPELINE, OTHER_PIPELINE }
      local ids = {}
      for p, pipeline_id in ipairs(pipelines) do
        ids[p] = {}
        for r = 1, 3 do ids[p][r] = sim:add_run({ pipeline_id = pipeline_id, status = "RUNNING", polls = r }) end
      end
      local client, slept = new_client()
      local results = client:map(pipelines, function(pipeline_id, p)
        local inner = client:wait_many({ { pipeline_id, ids[p][1] }, { pipeline_id, ids[p][2] },
          { pipeline_id, ids[p][3] } }, { interval = 1 })
        return inner[1].status, inner[2].status, inner[3].status
      end)
      client:close()
      assert.same({ { n = 3, "COMPLETED", "COMPLETED", "COMPLETED" }, { n = 3, "COMPLETED", "COMPLETED", "COMPLETED" } },
        results)
      -- the waits went through the client's sleep (the outer run's), never blocking
      assert.is_true(#slept >= 3)
      assert.equal(18, #sim:recorded("GET", "/detail"))
    end)

    it("map raises for misuse", function()
      local client = new_client()
      assert.error_matches(function() client:map("x", print) end, "bad argument #1 to 'map'")
      assert.error_matches(function() client:map({}, "print") end, "bad argument #2 to 'map'")
      assert.error_matches(function() client:map({}, print, { concurrency = "8" }) end, "option 'concurrency'")
      client:close()
    end)
  end)

  ------------------------------------------------------------ host loop

  describe("the host loop", function()
    it("start + step(0) never blocks, even while a request is slow", function()
      local run = sim:add_run({ status = "FAILED", polls = 2 })
      local client = new_client()
      sim:fault({ kind = "slow", delay = 1, method = "PUT", run_id = run })
      local job = client:start("retry_and_wait", PIPELINE, run, { interval = 0.05 })
      assert.is_false(job.done)
      assert.is_nil(job:result())
      local steps, slowest, started = 0, 0, core.monotonic()
      while not job.done do
        local before = core.monotonic()
        local running, wake = client:step(0)
        slowest = math.max(slowest, core.monotonic() - before)
        steps = steps + 1
        assert.is_number(running)
        if wake then assert.is_true(wake >= 0 and wake <= 0.05) end
        assert.is_true(core.monotonic() - started < 10, "the job did not end")
        core.sleep(0.005) -- the host's own work
      end
      client:close()
      assert.is_true(slowest < 0.1, "a step took " .. slowest .. " s")
      assert.is_true(steps > 20, steps .. " steps") -- the slow PUT alone spans a second of steps
      local status, detail = job:result()
      assert.equal("COMPLETED", status)
      assert.equal(run, detail.id)
      assert.equal(1, #sim:recorded("PUT", "/retry"))
      assert.equal(3, #sim:recorded("GET", "/detail"))
    end)

    it("a started *_many call never blocks step(0) either", function()
      local list = {}
      for i = 1, 3 do list[i] = { PIPELINE, sim:add_run({ status = "FAILED", polls = 1 }) } end
      local client, slept = new_client()
      sim:fault({ kind = "slow", delay = 1, method = "PUT", run_id = list[2][2] })
      local job = client:start("retry_and_wait_many", list, { concurrency = 3, interval = 0.02 })
      local slowest, started = 0, core.monotonic()
      while not job.done do
        local before = core.monotonic()
        client:step(0)
        slowest = math.max(slowest, core.monotonic() - before)
        assert.is_true(core.monotonic() - started < 10, "the job did not end")
        core.sleep(0.005)
      end
      client:close()
      assert.is_true(slowest < 0.1, "a step took " .. slowest .. " s")
      assert.same({}, slept) -- the host loop did the waiting
      local results = job:result()
      for i = 1, 3 do
        assert.is_true(results[i].ok)
        assert.equal("COMPLETED", results[i].status)
        assert.equal(2, sim:run_state(list[i][2]).detail_reads)
      end
    end)

    it("runs several started jobs side by side, functions too", function()
      local a, b = sim:add_run({ status = "FAILED", polls = 1 }), sim:add_run({ status = "RUNNING", polls = 3 })
      local client = new_client()
      local jobs = {
        client:start("retry_and_wait", PIPELINE, a, { interval = 0.01 }),
        client:start("wait", PIPELINE, b, { interval = 0.01 }),
        client:start(function() return client:runs(PIPELINE) end),
        client:start("detail", PIPELINE, simulator.new_id()),
      }
      local deadline = core.monotonic() + 10
      local left = client:step(0)
      while left > 0 and core.monotonic() < deadline do left = client:step(0.01) end
      client:close()
      assert.equal(0, left)
      for _, job in ipairs(jobs) do assert.is_true(job.done) end
      assert.equal("COMPLETED", (jobs[1]:result()))
      assert.equal("COMPLETED", (jobs[2]:result()))
      local runs, total = jobs[3]:result()
      assert.equal(2, total)
      assert.equal(2, #runs)
      local none, _, code = jobs[4]:result()
      assert.is_nil(none)
      assert.equal("not_found", code)
    end)

    it("step with nothing started returns 0; start raises for an unknown or private method", function()
      local client = new_client()
      assert.equal(0, client:step(0))
      assert.error_matches(function() client:start("retyr", PIPELINE) end, "no client method \"retyr\"")
      assert.error_matches(function() client:start("_send") end, "no client method")
      client:close()
      assert.equal(0, #sim:requests())
    end)

    it("step raises an error raised inside a job, and a new start works again", function()
      local run = sim:add_run({ status = "FAILED" })
      local client = new_client()
      client:start(function() error("job failed loudly") end)
      assert.error_matches(function()
        for _ = 1, 100 do client:step(0.01) end
      end, "job failed loudly")
      local job = client:start("detail", PIPELINE, run)
      for _ = 1, 500 do
        if job.done then break end
        client:step(0.01)
      end
      client:close()
      assert.equal("FAILED", job:result().status)
    end)
  end)

  ------------------------------------------------------------ user scripts

  describe("a short user script", function()
    -- Three pipelines, each with failed runs; retry_outcome is what a retry
    -- of that run ends with.  Returns the pipelines and the runs expected to
    -- stay red.
    local function three_red_pipelines()
      local pipelines = { PIPELINE, OTHER_PIPELINE, simulator.new_id() }
      local stays_red = {}
      for p, pipeline_id in ipairs(pipelines) do
        sim:add_run({ pipeline_id = pipeline_id, status = "COMPLETED" })
        for r = 1, p + 1 do
          local outcome = (p + r) % 3 == 0 and "FAILED" or "COMPLETED"
          local id = sim:add_run({ pipeline_id = pipeline_id, status = "FAILED", polls = 1, outcome = outcome })
          if outcome == "FAILED" then stays_red[id] = true end
        end
      end
      return pipelines, stays_red
    end

    it("retries every failed run of 3 pipelines at once and tells which stayed red", function()
      local pipelines, stays_red = three_red_pipelines()
      local client = new_client()

      -- the script, as a new user would write it
      local failed = {}
      for _, pipeline_id in ipairs(pipelines) do
        for _, run in ipairs(assert(client:runs(pipeline_id, { status = "FAILED" }))) do
          failed[#failed + 1] = { pipeline_id, run.id }
        end
      end
      local red = {}
      for i, result in ipairs(client:retry_and_wait_many(failed, { concurrency = 8, interval = 5 })) do
        if result.status ~= "COMPLETED" then red[failed[i][2]] = result.status or result.message end
      end
      client:close()

      assert.equal(9, #failed)
      local expected = {}
      for id in pairs(stays_red) do expected[id] = "FAILED" end
      assert.same(expected, red)
      assert.equal(9, #sim:recorded("PUT", "/retry"))
      assert.equal(3, #sim:recorded("POST", "/pipeline-runs/list"))
    end)

    -- Runs examples/keep-green.lua with the simulator as its configuration
    -- (environment only: no config file, no credentials file, nothing of the
    -- caller's).  Returns its output and exit status.
    local function keep_green(args, environment)
      local env = support.lua_environment(environment)
      env.HOME = support.test_dir()
      local argv = { support.LUA, "examples/keep-green.lua" }
      for _, arg in ipairs(args) do argv[#argv + 1] = arg end
      return support.capture(support.command(argv, env))
    end
    after_each(support.remove_test_dirs)

    local function simulator_environment()
      return { CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = PROJECT,
        CODEARTS_PIPELINE_TOKEN = CANARY }
    end

    it("examples/keep-green.lua keeps 3 pipelines green, run as a child process", function()
      local green_once = sim:add_run({ status = "FAILED", polls = 1, outcome = "COMPLETED" })
      local green_twice = sim:add_run({ pipeline_id = OTHER_PIPELINE, status = "FAILED", polls = 1,
        outcomes = { "FAILED", "COMPLETED" } })
      local third = simulator.new_id()
      local red = sim:add_run({ pipeline_id = third, status = "FAILED", polls = 1, outcome = "FAILED" })
      local started = core.monotonic()
      local output, status = keep_green({ "--interval", "0.05", PIPELINE, OTHER_PIPELINE, third },
        simulator_environment())
      assert.is_true(core.monotonic() - started < 10)
      assert.equal(1, status, output)
      local lines = {}
      for line in output:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.same({
        ("green %s (1 retry)"):format(PIPELINE),
        ("green %s (2 retries)"):format(OTHER_PIPELINE),
        ("red   %s FAILED after 3 retries"):format(third),
      }, lines)
      assert.equal(1, sim:run_state(green_once).retries)
      assert.equal(2, sim:run_state(green_twice).retries)
      assert.equal(3, sim:run_state(red).retries)
      assert.equal("COMPLETED", sim:run_state(green_twice).status)
      for _, request in ipairs(sim:requests()) do assert.equal(CANARY, request.headers["x-auth-token"]) end
      assert.is_nil(output:find(CANARY, 1, true))
    end)

    it("examples/keep-green.lua exits 0 when all are green, and reports failures", function()
      sim:add_run({ status = "COMPLETED" })
      local output, status = keep_green({ PIPELINE }, simulator_environment())
      assert.equal(0, status, output)
      assert.equal(("green %s (0 retries)\n"):format(PIPELINE), output)

      sim:fault({ kind = "unauthorized", path = "/pipelines/status" })
      output, status = keep_green({ PIPELINE }, simulator_environment())
      assert.equal(1, status, output)
      assert.matches("^red   " .. PIPELINE .. " latest: authentication failed, HTTP 401", output)
      assert.matches("%[auth%]\n$", output)
    end)

    it("examples/keep-green.lua exits 2 without pipelines or configuration", function()
      local output, status = keep_green({}, simulator_environment())
      assert.equal(2, status)
      assert.matches("^usage: ", output)
      output, status = keep_green({ "nope" }, simulator_environment())
      assert.equal(2, status)
      assert.matches("not a pipeline id: nope", output, 1, true)
      output, status = keep_green({ PIPELINE }, {})
      assert.equal(2, status)
      assert.matches("no endpoint", output, 1, true)
      assert.equal(0, #sim:requests())
    end)
  end)
end)

-- The lifecycle's methods on a stand-in for the client: only the interface
-- they use (_now, _pause, _emit, _detail, and retry), a fake clock, and the
-- run details each poll reads, as rows.  No simulator, no network.
describe("the lifecycle alone", function()
  local lifecycle = require("pipeline.lifecycle")
  local RUN = ("b"):rep(32)

  -- A stand-in reading answers[i] at the i-th detail (a status, or {nil,
  -- message, code}); its clock moves only by its pauses.
  local function stand_in(answers)
    local fake = { t = 0, pauses = {}, events = {}, polls = 0, deadlines = {} }
    function fake:_now() return self.t end
    function fake:_pause(seconds)
      self.pauses[#self.pauses + 1] = seconds
      self.t = self.t + seconds
    end
    function fake:_emit(event) self.events[#self.events + 1] = event.type .. ":" .. tostring(event.status) end
    function fake:_detail(_, run_id, deadline)
      self.polls = self.polls + 1
      self.deadlines[#self.deadlines + 1] = deadline
      local answer = answers[math.min(self.polls, #answers)]
      if type(answer) == "table" then return nil, answer[2], answer[3], {} end
      return { id = run_id, status = answer }
    end
    function fake:retry() self.retried = true return true end
    for name, method in pairs(lifecycle.methods) do fake[name] = method end
    return fake
  end

  local WAITS = {
    { "polls until the run ends, pausing the interval between",
      answers = { "RUNNING", "QUEUED", "COMPLETED" }, options = { interval = 5 },
      results = { "COMPLETED" }, pauses = { 5, 5 }, events = { "poll:RUNNING", "poll:QUEUED", "poll:COMPLETED" } },
    { "ends on a status written in small letters", answers = { "failed" },
      results = { "failed" }, pauses = {}, events = { "poll:failed" } },
    { "polls through a transient failure", answers = { { nil, "busy", "throttled" }, "CANCELED" },
      options = { interval = 2 }, results = { "CANCELED" }, pauses = { 2 }, events = { "poll:CANCELED" } },
    { "gives up at once on a failure that polling does not mend", answers = { "RUNNING", { nil, "no", "auth" } },
      options = { interval = 1 }, results = { nil, "no", "auth" }, pauses = { 1 }, events = { "poll:RUNNING" } },
    { "times out at the deadline, the last pause cut to it", answers = { "RUNNING" },
      options = { interval = 5, timeout = 12 }, results = { nil, "wait: run " .. RUN .. " still RUNNING after 12s", "timeout" },
      pauses = { 5, 5, 2 }, events = { "poll:RUNNING", "poll:RUNNING", "poll:RUNNING", "poll:RUNNING" },
      attempts = 4 },
    { "stops when on_poll returns false", answers = { "RUNNING" },
      options = { on_poll = function() return false end },
      results = { nil, "wait: cancelled by on_poll (run " .. RUN .. " was RUNNING)", "cancelled" }, pauses = {},
      events = { "poll:RUNNING" }, attempts = 1 },
  }

  for _, row in ipairs(WAITS) do
    it("wait " .. row[1], function()
      local fake = stand_in(row.answers)
      local status, second, code, info = fake:wait(PIPELINE, RUN, row.options)
      local results = { status, status == nil and second or nil, code }
      if status then results = { status } end
      assert.same(row.results, results)
      if status then assert.equal(RUN, second.id) end
      assert.same(row.pauses, fake.pauses)
      assert.same(row.events, fake.events)
      if row.attempts then assert.equal(row.attempts, info.attempts) end
      -- every poll is bounded by the one deadline of the wait
      local timeout = row.options and row.options.timeout or lifecycle.DEFAULT_WAIT_TIMEOUT
      for _, deadline in ipairs(fake.deadlines) do assert.equal(timeout, deadline) end
    end)
  end

  it("retry_and_wait retries through the client, then waits", function()
    local fake = stand_in({ "COMPLETED" })
    assert.equal("COMPLETED", (fake:retry_and_wait(PIPELINE, RUN)))
    assert.is_true(fake.retried)
  end)
end)

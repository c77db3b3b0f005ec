--- Starts and drives the API simulator (tests/simulator/codearts_sim.py) for
-- the specs: a separate process on 127.0.0.1, an ephemeral port, stopped by
-- the spec that started it.  sim.fixture gives a describe block one.
local core = require("pipeline.core")
local cjson = require("cjson")
local json_values = require("pipeline.json")
local support = require("support")

local sim = {}
sim.__index = sim

-- found from any folder: scripts/check-rock runs outside the checkout
local SCRIPT = support.ROOT .. "/tests/simulator/codearts_sim.py"
sim.TOKEN = "sim-token"
sim.PROJECT = "0123456789abcdef0123456789abcdef"
sim.PIPELINE = "fedcba9876543210fedcba9876543210"
-- The simulated region and its IAM project (the simulator's defaults; a
-- started simulator's own are its region and iam_project_id fields).  AK/SK
-- requests must send that IAM project, signed, as X-Project-Id.
sim.REGION = "cn-north-4"
sim.IAM_PROJECT = "5f2a3b4c6d7e8f901a2b3c4d5e6f7a8b"

-- Starts the simulator (or the server self.script names, which takes the
-- same --port, --parent-pid and --port-file) with self.extra (a list of
-- command-line arguments), and fills in self's fields.
local function launch(self)
  local dir = support.temp_dir()
  local port_file = dir .. "/port.json"
  local args = {}
  for _, arg in ipairs(self.extra or {}) do args[#args + 1] = support.quote(arg) end
  local python = os.getenv("PYTHON") or "python3"
  -- $PPID, in the shell that starts it, is this process: the simulator ends
  -- with it, even if a test runner is killed before its teardown
  support.shell(("%s %s --port 0 --parent-pid $PPID --port-file %s %s >/dev/null 2>%s &"):format(
    python, support.quote(self.script or SCRIPT), support.quote(port_file), table.concat(args, " "),
    support.quote(dir .. "/stderr.log")))
  local deadline = core.monotonic() + 15
  local text = support.read_file(port_file)
  while not text and core.monotonic() <= deadline do
    core.sleep(0.02)
    text = support.read_file(port_file)
  end
  assert(text, "the simulator did not start within 15 s (see " .. dir .. "/stderr.log)")
  local info = json_values.decode(text)
  self.dir = dir
  self.port = info.port
  self.redirect_port = info.redirect_port
  self.pid = info.pid
  self.seed = info.seed
  self.region = info.region
  self.iam_project_id = info.iam_project_id
  self.url = "http://127.0.0.1:" .. info.port
  self.control_client = core.client({ timeout = 10 })
  return self
end

sim.launch = launch

--- Starts a simulator; extra is a list of command-line arguments.
function sim.start(extra)
  return launch(setmetatable({ extra = extra }, sim))
end

--- In a describe block: a simulator (extra as for sim.start) started in its
-- setup, stopped in its teardown and reset before each of its tests.
-- Returns it at once; its fields (url, ...) are there from setup on.  class:
-- another server's class built on this one (tests/hostile.lua).
function sim.fixture(extra, class)
  local busted = require("busted")
  local self = setmetatable({ extra = extra }, class or sim)
  busted.setup(function() launch(self) end)
  busted.teardown(function() self:stop() end)
  busted.before_each(function() self:reset() end)
  return self
end

--- Calls the control API: method, path under /_sim/, optional body table.
function sim:control(method, path, body)
  local response, message, _, info = self.control_client:request(method, self.url .. "/_sim/" .. path,
    { ["Content-Type"] = "application/json" }, body and cjson.encode(body) or nil, nil, nil, "json", "control")
  if response == nil then
    -- an empty body is not JSON, and some control calls answer with none
    assert(info.status and info.status < 300 and info.error_code == nil,
      ("simulator control %s %s: %s"):format(method, path, message))
    return nil
  end
  return json_values.decode(response)
end

function sim:reset() return self:control("POST", "reset") end

-- fields (a new table when nil), in sim.PROJECT and sim.PIPELINE unless they
-- name others.
local function in_pipeline(fields)
  fields = fields or {}
  fields.project_id = fields.project_id or sim.PROJECT
  fields.pipeline_id = fields.pipeline_id or sim.PIPELINE
  return fields
end

--- Creates a run: fields as the control API's POST /_sim/runs, in sim.PROJECT
-- and sim.PIPELINE with a fresh run_id unless they say otherwise.  Returns
-- the run's id.
function sim:add_run(fields)
  fields = in_pipeline(fields)
  fields.run_id = fields.run_id or sim.new_id()
  self:control("POST", "runs", fields)
  return fields.run_id
end

--- Creates count runs, each FAILED unless fields (copied for each) say
-- otherwise; returns the list of their ids.
function sim:add_runs(count, fields)
  local ids = {}
  for i = 1, count do
    local run = { status = "FAILED" }
    for name, value in pairs(fields or {}) do run[name] = value end
    ids[i] = self:add_run(run)
  end
  return ids
end

--- Creates a FAILED run of sim.PIPELINE, ready to be retried; returns its id.
function sim:failed_run()
  return self:add_run({ status = "FAILED" })
end

--- Creates (or updates) a pipeline and its plan for runs started through the
-- API: fields as POST /_sim/pipelines, sim.PROJECT and sim.PIPELINE unless
-- they say otherwise.  Returns the pipeline's id.
function sim:add_pipeline(fields)
  fields = in_pipeline(fields)
  self:control("POST", "pipelines", fields)
  return fields.pipeline_id
end

function sim:run_state(run_id) return self:control("GET", "runs/" .. run_id) end

function sim:fault(fault) return self:control("POST", "faults", fault) end

--- Replaces the IAM projects GET /v3/projects answers from: a list of
-- { id = ..., name = ..., domain_id = ... } (reset restores the default).
function sim:set_iam_projects(projects)
  return self:control("POST", "iam/projects", { projects = projects })
end

--- The job run id, step run id and step object of the step named step_name
-- (e.g. "run-tests", "manual-review") in run_id's current detail, read
-- without advancing its plan; nil when the run has no such step.
function sim:step(run_id, step_name)
  for _, stage in ipairs(self:run_state(run_id).run.stages) do
    for _, job in ipairs(stage.jobs) do
      for _, step in ipairs(job.steps) do
        if step.name == step_name then return job.id, step.id, step end
      end
    end
  end
end

--- Every request the listeners received since the last clear, in order.
function sim:requests() return self:control("GET", "requests").requests end

--- The requests of the list with that method (nil: any) whose path holds
-- part (plain text; nil: any), in order.
function sim.matching(requests, method, part)
  local found = {}
  for _, request in ipairs(requests) do
    if (method == nil or request.method == method) and (part == nil or request.path:find(part, 1, true)) then
      found[#found + 1] = request
    end
  end
  return found
end

--- The recorded requests with that method whose path holds part (as
-- sim.matching).
function sim:recorded(method, part) return sim.matching(self:requests(), method, part) end

function sim:clear_requests() return self:control("DELETE", "requests") end

function sim:stop()
  if not self.control_client or self.control_client:is_closed() then return end
  self.control_client:close()
  os.execute(("kill %d 2>/dev/null"):format(self.pid))
  -- wait for the process to go so no test leaves it behind
  local deadline = core.monotonic() + 5
  while core.monotonic() < deadline and support.execute(("kill -0 %d 2>/dev/null"):format(self.pid)) == 0 do
    core.sleep(0.02)
  end
  support.remove(self.dir)
end

--- The path of the API call retrying run_id, a run of sim.PIPELINE.
function sim.retry_path(run_id)
  return ("/v5/%s/api/pipelines/%s/pipeline-runs/%s/retry"):format(sim.PROJECT, sim.PIPELINE, run_id)
end

--- The path of a step operation (action "pass", "refuse" or "logs") on a
-- step of run_id, a run of sim.PIPELINE.
function sim.step_path(run_id, job_run_id, step_run_id, action)
  return ("/v5/%s/api/pipelines/%s/pipeline-runs/%s/jobs/%s/steps/%s/%s"):format(sim.PROJECT, sim.PIPELINE,
    run_id, job_run_id, step_run_id, action)
end

--- A fresh 32-hex id, different each call.
local counter = 0
function sim.new_id()
  counter = counter + 1
  return ("%08x%024x"):format(os.time() % 0xffffffff, counter)
end

return sim

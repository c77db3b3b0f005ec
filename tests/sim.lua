--- Starts and drives the API simulator (tests/simulator/codearts_sim.py) for
-- the specs: a separate process on 127.0.0.1, an ephemeral port, stopped by
-- the spec that started it.
local core = require("pipeline.core")
local cjson = require("cjson")
local pipeline_errors = require("pipeline.errors")

local sim = {}
sim.__index = sim

local SCRIPT = "tests/simulator/codearts_sim.py"
sim.TOKEN = "sim-token"
sim.PROJECT = "0123456789abcdef0123456789abcdef"
sim.PIPELINE = "fedcba9876543210fedcba9876543210"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- os.execute's success: true on 5.2+, 0 on 5.1 and LuaJIT.
local function succeeded(result) return result == true or result == 0 end

--- Starts a simulator; extra is a list of command-line arguments.
function sim.start(extra)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. shell_quote(dir)))
  local port_file = dir .. "/port.json"
  local args = {}
  for _, arg in ipairs(extra or {}) do args[#args + 1] = shell_quote(arg) end
  local python = os.getenv("PYTHON") or "python3"
  local command = ("%s %s --port 0 --port-file %s %s >/dev/null 2>%s &"):format(
    python, SCRIPT, shell_quote(port_file), table.concat(args, " "), shell_quote(dir .. "/stderr.log"))
  assert(os.execute(command))
  local deadline = core.monotonic() + 15
  local text
  repeat
    local file = io.open(port_file, "r")
    if file then
      text = file:read("*a")
      file:close()
    else
      core.sleep(0.02)
    end
  until text or core.monotonic() > deadline
  assert(text, "the simulator did not start within 15 s (see " .. dir .. "/stderr.log)")
  local info = pipeline_errors.decode(text)
  local self = setmetatable({
    dir = dir,
    port = info.port,
    redirect_port = info.redirect_port,
    pid = info.pid,
    seed = info.seed,
    url = "http://127.0.0.1:" .. info.port,
    control_client = core.client({ timeout = 10 }),
  }, sim)
  return self
end

--- Calls the control API: method, path under /_sim/, optional body table.
function sim:control(method, path, body)
  local status, response = self.control_client:request(method, self.url .. "/_sim/" .. path,
    { ["Content-Type"] = "application/json" }, body and cjson.encode(body) or nil)
  assert(status, "simulator control call failed: " .. tostring(response))
  assert(status < 300, ("simulator control %s %s: HTTP %d %s"):format(method, path, status, response))
  if response ~= "" then return pipeline_errors.decode(response) end
end

function sim:reset() return self:control("POST", "reset") end

--- Creates a run: fields as the control API's POST /_sim/runs.
function sim:add_run(run)
  run.project_id = run.project_id or sim.PROJECT
  run.pipeline_id = run.pipeline_id or sim.PIPELINE
  return self:control("POST", "runs", run)
end

function sim:run_state(run_id) return self:control("GET", "runs/" .. run_id) end

function sim:fault(fault) return self:control("POST", "faults", fault) end

--- Every request the listeners received since the last clear, in order.
function sim:requests() return self:control("GET", "requests").requests end

function sim:clear_requests() return self:control("DELETE", "requests") end

function sim:stop()
  if self.control_client:is_closed() then return end
  self.control_client:close()
  os.execute(("kill %d 2>/dev/null"):format(self.pid))
  -- wait for the process to go so no test leaves it behind
  local deadline = core.monotonic() + 5
  while core.monotonic() < deadline and succeeded(os.execute(("kill -0 %d 2>/dev/null"):format(self.pid))) do
    core.sleep(0.02)
  end
  os.execute("rm -rf " .. shell_quote(self.dir))
end

--- A fresh 32-hex id, different each call.
local counter = 0
function sim.new_id()
  counter = counter + 1
  return ("%08x%024x"):format(os.time() % 0xffffffff, counter)
end

return sim

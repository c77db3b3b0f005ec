--- Starts and drives the hostile server (tests/hostile_server.py) for the
-- specs: a server that answers exactly what a test scripts (status lines
-- that are not HTTP, oversized header lines, echoed secrets, endless pages,
-- random answers).  Started, stopped and reset like the simulator
-- (tests/sim.lua), whose process handling it shares.
local cjson = require("cjson")
local sim = require("sim")

local hostile = setmetatable({}, { __index = sim })
hostile.__index = hostile
hostile.SCRIPT = "tests/hostile_server.py"

--- Starts a hostile server.
function hostile.start()
  return sim.launch(setmetatable({ script = hostile.SCRIPT }, hostile))
end

--- In a describe block: a hostile server started in its setup, stopped in
-- its teardown, and with nothing scripted before each test.
function hostile.fixture()
  local self = sim.fixture(nil, hostile)
  self.script = hostile.SCRIPT
  return self
end

local function control(self, method, path, body)
  local response, message = self.control_client:request(method, self.url .. "/_hostile/" .. path,
    { ["Content-Type"] = "application/json" }, body and cjson.encode(body) or nil, nil, nil, "json", "control")
  assert(response, "hostile server control call failed: " .. tostring(message))
  return cjson.decode(response)
end

--- Scripts the answers: answers (a list, each used once, in order), then
-- default for every request (nil: 500 "nothing scripted").  See the
-- server's docstring for an answer's fields.  Clears the recorded requests.
function hostile:answer(answers, default)
  return control(self, "POST", "script", { answers = answers or {}, default = default })
end

--- Answers every request with answer.
function hostile:always(answer) return self:answer(nil, answer) end

function hostile:reset() return self:answer() end

--- The requests received since the last script: {method, path, headers}.
function hostile:requests() return control(self, "GET", "requests").requests end

return hostile

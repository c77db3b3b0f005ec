-- pipeline.retry and client:retry against the simulator: success, every
-- failure class of the error rule, and what the simulator received.
local pipeline = require("pipeline")
local simulator = require("sim")
local support = require("support")

local PROJECT, PIPELINE, TOKEN = simulator.PROJECT, simulator.PIPELINE, simulator.TOKEN
local CANARY = "CANARY-token-5d1e0b7a93"

describe("retry", function()
  local sim = simulator.fixture({ "--token", TOKEN, "--token", CANARY })

  local function new_client(extra)
    local options = { endpoint = sim.url, project_id = PROJECT, token = TOKEN, retries = false }
    for k, v in pairs(extra or {}) do options[k] = v end
    return assert(pipeline.new(options))
  end

  describe("pipeline.retry", function()
    it("returns true and the run is RUNNING", function()
      local run = sim:failed_run()
      assert.is_true(pipeline.retry(PROJECT, PIPELINE, run, TOKEN, { endpoint = sim.url }))
      assert.equal("RUNNING", sim:run_state(run).status)
      local requests = sim:requests()
      assert.equal(1, #requests)
      assert.equal("PUT", requests[1].method)
      assert.equal(TOKEN, requests[1].headers["x-auth-token"])
    end)

    it("with an endpoint in the options, reads no configuration layer", function()
      -- a broken credentials file and an unreadable config file would fail pipeline.load()
      local home = support.temp_dir()
      support.write_file(home .. "/cred", "[basic]\nthis line is not key = value\nak\n")
      local printed, status = support.run_lua(([[
        local pipeline = require "pipeline"
        print(pipeline.retry(%q, %q, %q, %q, { endpoint = %q }))
      ]]):format(PROJECT, PIPELINE, sim:failed_run(), TOKEN, sim.url),
        { HOME = home, HUAWEICLOUD_SDK_CREDENTIALS_FILE = home .. "/cred",
          CODEARTS_PIPELINE_CONFIG = home .. "/missing.lua" })
      support.remove(home)
      support.remove_test_dirs()
      assert.equal(0, status, printed)
      assert.matches("^true", printed)
    end)

    it("names itself in a configuration error, and never shows a password in a URL", function()
      local ok, message, code = pipeline.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN,
        { endpoint = "https://user:" .. CANARY .. "@pipeline.example.com" })
      assert.is_nil(ok)
      assert.equal("config", code)
      assert.matches("^retry: endpoint https://%*%*%*@pipeline.example.com must not hold a user name", message)
      assert.is_nil(message:find(CANARY, 1, true))
    end)

    it("raises for a bad id and sends nothing", function()
      assert.error_matches(function()
        pipeline.retry(PROJECT, PIPELINE, ("a"):rep(31), TOKEN, { endpoint = sim.url })
      end, "bad argument #3 to 'retry' %(run_id must be 32 ASCII letters or digits")
      assert.error_matches(function()
        pipeline.retry(PROJECT, "../" .. ("a"):rep(29), sim:failed_run(), TOKEN, { endpoint = sim.url })
      end, "bad argument #2")
      assert.equal(0, #sim:requests())
    end)

    it("raises for a token with CR/LF without showing it", function()
      local ok, err = pcall(pipeline.retry, PROJECT, PIPELINE, sim:failed_run(), CANARY .. "\r\nX: y",
        { endpoint = sim.url })
      assert.is_false(ok)
      assert.matches("bad argument #4", err, 1, true)
      assert.is_nil(err:find(CANARY, 1, true))
      assert.equal(0, #sim:requests())
    end)

    it("raises on an unknown option", function()
      assert.error_matches(function()
        pipeline.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN, { endpoint = sim.url, timout = 3 })
      end, "unknown option 'timout'")
    end)
  end)

  -- fault -> expected code, HTTP status, service error code
  local cases = {
    { fault = "unauthorized", code = "auth", status = 401, error_code = "APIGW.0301" },
    { fault = "forbidden", code = "auth", status = 403, error_code = "APIGW.0302" },
    { fault = "not_found", code = "not_found", status = 404, error_code = "DEVPIPE.00011104" },
    { fault = "error_code_200", code = "api", status = 200, error_code = "DEVPIPE.00011201" },
    { fault = "success_false", code = "api", status = 200 },
    { fault = "throttled", code = "throttled", status = 429, error_code = "APIGW.0308", retryable = true },
    { fault = "coct_throttled", code = "throttled", status = 500, error_code = "COCT.0070003", retryable = true },
    { fault = "server_html", code = "server", status = 500 },
    { fault = "unavailable", code = "server", status = 503, error_code = "APIGW.0201", retryable = true },
    { fault = "not_json", code = "protocol", status = 200 },
    { fault = "wrong_shape", code = "protocol", status = 200 },
    -- the status line and headers arrived before the body went over the limit
    { fault = "oversize", code = "protocol", status = 200 },
    -- the retry may have reached the server: its run's status is read, and
    -- shows it did not take effect
    { fault = "close", code = "network", requests = 2 },
    { fault = "redirect", code = "protocol", status = 302 },
  }

  describe("client:retry reports", function()
    for _, case in ipairs(cases) do
      it(("%s as code %s"):format(case.fault, case.code), function()
        local client = new_client({ token = CANARY })
        sim:fault({ kind = case.fault })
        local ok, message, code, info = client:retry(PIPELINE, sim:failed_run())
        client:close()
        assert.is_nil(ok)
        assert.equal(case.code, code)
        assert.is_string(message)
        assert.matches("^retry: ", message)
        assert.is_nil(message:find("\n", 1, true))
        assert.is_nil(message:find(CANARY, 1, true))
        assert.is_table(info)
        assert.equal(case.status, info.status)
        assert.equal(case.error_code, info.error_code)
        assert.equal(1, info.attempts)
        assert.equal(case.retryable or false, info.retryable)
        if case.status then
          assert.matches("HTTP " .. case.status, message, 1, true)
          assert.is_string(info.request_id)
          assert.matches("request id " .. info.request_id, message, 1, true)
        end
        if case.error_code then assert.matches(case.error_code, message, 1, true) end
        local requests = sim:requests()
        assert.equal(case.requests or 1, #requests)
        assert.equal("PUT", requests[1].method)
        if case.requests then
          assert.equal("GET", requests[2].method)
          assert.matches("/pipeline%-runs/detail$", requests[2].path)
        end
      end)
    end

    it("a timeout as code timeout", function()
      local client = new_client({ timeout = 0.5 })
      sim:fault({ kind = "slow", delay = 3 })
      local ok, _, code, info = client:retry(PIPELINE, sim:failed_run())
      client:close()
      assert.is_nil(ok)
      assert.equal("timeout", code)
      assert.is_false(info.retryable)
    end)

    it("a refused connection as code network", function()
      local client = assert(pipeline.new({ endpoint = "http://127.0.0.1:1", project_id = PROJECT,
        token = TOKEN, retries = false }))
      local ok, _, code = client:retry(PIPELINE, sim:failed_run())
      assert.is_nil(ok)
      assert.equal("network", code)
    end)

    it("a run that cannot be retried as code api, with the service's message", function()
      local run = sim:add_run({ status = "COMPLETED" })
      local client = new_client()
      local ok, message, code, info = client:retry(PIPELINE, run)
      assert.is_nil(ok)
      assert.equal("api", code)
      assert.equal("DEVPIPE.00011203", info.error_code)
      assert.matches(info.error_msg, message, 1, true)
    end)

    it("a wrong token as code auth", function()
      local client = new_client({ token = "not-a-valid-token" })
      local ok, _, code, info = client:retry(PIPELINE, sim:failed_run())
      assert.is_nil(ok)
      assert.equal("auth", code)
      assert.equal("APIGW.0301", info.error_code)
    end)
  end)

  describe("a client", function()
    it("uses one connection for many calls", function()
      local client = new_client()
      for _ = 1, 10 do assert.is_true(client:retry(PIPELINE, sim:failed_run())) end
      client:close()
      local requests = sim:requests()
      assert.equal(10, #requests)
      for i = 2, #requests do assert.equal(requests[1].connection, requests[i].connection) end
    end)

    it("raises after close, and closes by <close> and more than once", function()
      local escaped = new_client()
      if with_close then
        escaped = with_close(new_client)
        assert.is_true(escaped._transport:is_closed())
      end
      escaped:close()
      escaped:close()
      assert.error_matches(function() escaped:retry(PIPELINE, sim:failed_run()) end, "closed client")
    end)

    it("repeats a throttled retry after Retry-After, through its sleep function", function()
      local slept = {}
      local client = new_client({ retries = { max = 3 }, sleep = function(s) slept[#slept + 1] = s end })
      sim:fault({ kind = "throttled", retry_after = "2" })
      local run = sim:failed_run()
      assert.is_true(client:retry(PIPELINE, run))
      assert.same({ 2 }, slept)
      assert.equal(2, #sim:requests())
      assert.equal("RUNNING", sim:run_state(run).status)
    end)

    it("gives up after retries.max and reports the attempts", function()
      local slept = {}
      local client = new_client({ retries = { max = 2, base_delay = 0.01 },
        sleep = function(s) slept[#slept + 1] = s end })
      sim:fault({ kind = "unavailable", times = 0 })
      local ok, _, code, info = client:retry(PIPELINE, sim:failed_run())
      assert.is_nil(ok)
      assert.equal("server", code)
      assert.equal(3, info.attempts)
      assert.equal(2, #slept)
      assert.equal(3, #sim:requests())
    end)

    it("does not send a retry again after the connection dropped: it reads the run's status", function()
      local events = {}
      local client = new_client({ retries = { max = 3 }, sleep = function() end,
        on_event = function(e) events[#events + 1] = e.type end })
      sim:fault({ kind = "drop_after_processing" })
      local run = sim:failed_run()
      assert.is_true(client:retry(PIPELINE, run))
      local requests = sim:requests()
      assert.equal(2, #requests)
      assert.equal("PUT", requests[1].method)
      assert.equal("GET", requests[2].method)
      assert.equal("pipeline_run_id=" .. run, requests[2].query)
      assert.equal("RUNNING", sim:run_state(run).status)
      assert.same({ "request", "response", "request", "response", "verify" }, events)
    end)

    it("reports a retry whose outcome stays unknown, without sending it again", function()
      local client = new_client({ retries = { max = 3 }, sleep = function() end })
      sim:fault({ kind = "close" })
      sim:fault({ kind = "close" })
      local ok, _, code, info = client:retry(PIPELINE, sim:failed_run())
      assert.is_nil(ok)
      assert.equal("network", code)
      assert.is_false(info.retryable)
      local methods = {}
      for _, request in ipairs(sim:requests()) do methods[#methods + 1] = request.method end
      assert.equal("PUT", methods[1])
      for i = 2, #methods do assert.equal("GET", methods[i]) end
    end)

    it("does not let libcurl silently re-send a retry on a reused connection", function()
      local client = new_client({ retries = { max = 3 }, sleep = function() end })
      assert.is_true(client:retry(PIPELINE, sim:failed_run()))
      sim:fault({ kind = "drop_after_processing" })
      local run = sim:failed_run()
      assert.is_true(client:retry(PIPELINE, run))
      assert.equal(1, #sim:recorded("PUT", run))
      assert.equal("RUNNING", sim:run_state(run).status)
    end)

    it("tells on_event of each request and response, with the token redacted", function()
      local events = {}
      local client = new_client({ token = CANARY, on_event = function(e) events[#events + 1] = e end })
      assert.is_true(client:retry(PIPELINE, sim:failed_run()))
      assert.equal(2, #events)
      assert.equal("request", events[1].type)
      assert.equal("***", events[1].headers["X-Auth-Token"])
      assert.equal("response", events[2].type)
      assert.equal(200, events[2].status)
      local seen = require("cjson").encode(events)
      assert.is_nil(seen:find(CANARY, 1, true))
    end)
  end)
end)

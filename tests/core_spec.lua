-- pipeline.core: the C transport and core.retry (one retry with a token), against the
-- simulator, asserting both what is returned and what the simulator received.
local core = require("pipeline.core")
local simulator = require("sim")
local support = require("support")

local PROJECT, PIPELINE, TOKEN = simulator.PROJECT, simulator.PIPELINE, simulator.TOKEN

describe("pipeline.core", function()
  local sim = simulator.fixture()

  describe("retry()", function()
    it("retries a failed run and returns true", function()
      local run = sim:failed_run()
      local ok, message = core.retry(PROJECT, PIPELINE, run, TOKEN, { endpoint = sim.url })
      assert.is_true(ok, message)
      local requests = sim:requests()
      assert.equal(1, #requests)
      assert.equal("PUT", requests[1].method)
      assert.equal(simulator.retry_path(run), requests[1].path)
      assert.equal(TOKEN, requests[1].headers["x-auth-token"])
      assert.matches("^codearts%-pipeline%-lua/%d+%.%d+%.%d+ libcurl/", requests[1].headers["user-agent"])
      -- no body, but Content-Type: application/json, as the official SDKs send it
      assert.equal("application/json", requests[1].headers["content-type"])
      assert.equal("0", requests[1].headers["content-length"])
      assert.equal("RUNNING", sim:run_state(run).status)
    end)

    it("accepts an endpoint with a trailing slash", function()
      local run = sim:failed_run()
      assert.is_true(core.retry(PROJECT, PIPELINE, run, TOKEN, { endpoint = sim.url .. "/" }))
      assert.equal(simulator.retry_path(run), sim:requests()[1].path)
    end)

    it("returns nil, message, code, info on an HTTP failure", function()
      local ok, message, code, info = core.retry(PROJECT, PIPELINE, simulator.new_id(), TOKEN,
        { endpoint = sim.url })
      assert.is_nil(ok)
      assert.equal("not_found", code)
      assert.equal(404, info.status)
      assert.equal("DEVPIPE.00011104", info.error_code)
      assert.is_string(info.request_id)
      assert.matches("retry", message)
      assert.matches("HTTP 404", message, 1, true)
      assert.matches(info.request_id, message, 1, true)
    end)

    it("reports a missing endpoint as a config error and sends nothing", function()
      local ok, message, code, info = core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN, {})
      assert.is_nil(ok)
      assert.equal("config", code)
      assert.matches("endpoint", message)
      assert.equal(0, info.attempts)
      assert.equal(0, #sim:requests())
    end)

    it("refuses an endpoint with a query or fragment, which would swallow the path", function()
      for _, endpoint in ipairs({ sim.url .. "/#x", sim.url .. "?a=b" }) do
        local ok, message, code = core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN, { endpoint = endpoint })
        assert.is_nil(ok)
        assert.equal("config", code)
        assert.matches("query or fragment", message)
        ok, message, code = require("pipeline").retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN,
          { endpoint = endpoint })
        assert.is_nil(ok)
        assert.equal("config", code)
        assert.matches("query or fragment", message)
      end
      assert.equal(0, #sim:requests())
    end)

    it("takes the endpoint and the transport options only: the rest is pipeline.retry's", function()
      for _, options in ipairs({ { endpoint = sim.url, retries = { maxx = 1 } }, { region = "cn-north-4" },
        { endpoint = sim.url, timout = 5 }, { endpoint = sim.url, on_event = function() end } }) do
        assert.error_matches(function()
          core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN, options)
        end, "bad argument #5 to '[%w.]*retry' %(unknown option '[%w_]+'%)")
      end
      -- no endpoint: a configuration error, and nothing is sent
      local ok, message, code, info = core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN)
      assert.is_nil(ok)
      assert.equal("config", code)
      assert.matches("^retry: no endpoint", message)
      assert.equal(0, info.attempts)
      assert.equal(0, #sim:requests())
      -- the transport options are taken
      assert.is_true(core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN,
        { endpoint = sim.url, timeout = 5, connect_timeout = 2, user_agent = "core-spec/1" }))
      assert.equal(1, #sim:requests())
    end)

    it("keeps its token out of every failure, the server's echo included", function()
      local run = sim:failed_run()
      sim:fault({ kind = "not_found", run_id = run, error_msg = "no run for token " .. TOKEN })
      local ok, message, code, info = core.retry(PROJECT, PIPELINE, run, TOKEN, { endpoint = sim.url })
      assert.is_nil(ok)
      assert.equal("not_found", code)
      assert.not_matches(TOKEN, message, 1, true)
      assert.not_matches(TOKEN, info.error_msg, 1, true)
      assert.matches("***", info.error_msg, 1, true)
    end)

    local bad_ids = {
      ["31 characters"] = ("a"):rep(31),
      ["33 characters"] = ("a"):rep(33),
      ["a slash"] = ("a"):rep(15) .. "/" .. ("a"):rep(16),
      ["dot-dot"] = ("a"):rep(30) .. "..",
      ["a percent sign"] = ("a"):rep(29) .. "%2F",
      ["a space"] = ("a"):rep(31) .. " ",
      ["non-ASCII letters"] = ("a"):rep(30) .. "é",
    }
    for what, id in pairs(bad_ids) do
      for position, name in ipairs({ "project_id", "pipeline_id", "run_id" }) do
        it(("raises for a %s with %s and sends nothing"):format(name, what), function()
          local args = { PROJECT, PIPELINE, sim:failed_run(), TOKEN, { endpoint = sim.url } }
          args[position] = id
          local ok, err = pcall(core.retry, table.unpack(args, 1, 5))
          assert.is_false(ok)
          assert.matches("bad argument #" .. position, err, 1, true)
          assert.matches(name, err, 1, true)
          assert.equal(0, #sim:requests())
        end)
      end
    end

    it("core.token_problem is the one token rule: nil, or the reason without the value", function()
      for _, case in ipairs({
        { "t", nil }, { "CANARY-token 42/+=~", nil }, { "\226\130\172uro", nil },
        { "", "must not be empty" }, { "abc\tdef", "holds a control character" },
        { "abc\0def", "holds a control character" }, { "abc\r\n", "holds a control character" },
        { "abc\127", "holds a control character" }, { 42, "must be a string" }, { nil, "must be a string" },
      }) do
        assert.equal(case[2], core.token_problem(case[1]), ("%q"):format(tostring(case[1])))
      end
    end)

    it("raises for a non-string id", function()
      assert.error_matches(function() core.retry(PROJECT, 42, sim:failed_run(), TOKEN) end, "bad argument #2")
    end)

    for what, token in pairs({ ["CR/LF"] = "abc\r\nX-Injected: 1", LF = "abc\nd", NUL = "abc\0def",
      tab = "abc\tdef", empty = "" }) do
      it(("raises for a token with %s and never shows the token"):format(what), function()
        local ok, err = pcall(core.retry, PROJECT, PIPELINE, sim:failed_run(), token, { endpoint = sim.url })
        assert.is_false(ok)
        assert.matches("bad argument #4", err, 1, true)
        if token ~= "" then assert.is_nil(err:find(token, 1, true)) end
        assert.equal(0, #sim:requests())
      end)
    end

    it("raises on an unknown option key, naming it, and sends nothing", function()
      assert.error_matches(function()
        core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN, { endpoint = sim.url, timout = 5 })
      end, "timout")
      assert.equal(0, #sim:requests())
    end)

    it("raises on an option of the wrong type", function()
      assert.error_matches(function()
        core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN, { endpoint = sim.url, timeout = "5" })
      end, "option 'timeout' must be")
    end)

    it("never puts the token in a message", function()
      local canary = "CANARY-token-7f3a9c1e5b"
      for _, fault in ipairs({ "unauthorized", "server_html", "not_json", "close" }) do
        sim:fault({ kind = fault })
        local ok, message = core.retry(PROJECT, PIPELINE, sim:failed_run(), canary, { endpoint = sim.url })
        assert.is_nil(ok)
        assert.is_nil(message:find(canary, 1, true), fault)
      end
    end)
  end)

  describe("transport rules", function()
    it("refuses plain http to a host that is not loopback", function()
      local ok, message, code = core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN,
        { endpoint = "http://pipeline.example.com" })
      assert.is_nil(ok)
      assert.equal("config", code)
      assert.matches("plain http", message)
      assert.is_nil(core.check_url("http://10.1.2.3/"))
      assert.is_true(core.check_url("http://10.1.2.3/", true))
      assert.is_true(core.check_url("http://[::1]:8080/"))
      assert.is_true(core.check_url("http://localhost:8080/"))
      assert.is_true(core.check_url("https://pipeline.example.com"))
      assert.is_nil(core.check_url("ftp://127.0.0.1/"))
      assert.is_nil(core.check_url("http://127.evil.example.com/"))
      -- user info would go out as Basic auth and show in every trace
      assert.is_nil(core.check_url("https://user:secret@pipeline.example.com/"))
    end)

    it("takes only a dotted quad in 127.0.0.0/8 as loopback, not a name of digits (found by fuzz_url)", function()
      -- a trailing dot or an empty part makes a name the resolver looks up,
      -- which could send the token in clear to another host
      for _, host in ipairs({ "127.0.0.1.", "127.0.01.", "127..1", "127.0.01.080", "127.0.0.256", "127.0.0.1.5",
        "localhost." }) do
        local ok, refusal = core.check_url("http://" .. host .. ":8080/")
        assert.is_nil(ok, host)
        assert.matches("not loopback", refusal)
      end
      -- what libcurl writes as 127.x.y.z stays loopback
      for _, host in ipairs({ "127.0.0.1", "127.1", "127.255.255.255", "0x7f.1", "2130706433", "127.0.0.010" }) do
        assert.is_true(core.check_url("http://" .. host .. ":8080/"), host)
      end
    end)

    it("never sends a loopback request through a proxy from the environment", function()
      local printed, status = support.run_lua(([[
        print(require("pipeline.core").retry(%q, %q, %q, %q, { endpoint = %q }))
      ]]):format(PROJECT, PIPELINE, sim:failed_run(), TOKEN, sim.url),
        { http_proxy = "http://127.0.0.1:9", HTTP_PROXY = "http://127.0.0.1:9", no_proxy = "example.com" })
      support.remove_test_dirs()
      assert.equal(0, status, printed)
      assert.matches("^true", printed)
      assert.equal(1, #sim:requests())
    end)

    it("does not follow a redirect, and the target receives nothing", function()
      sim:fault({ kind = "redirect" })
      local ok, message, code, info = core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN, { endpoint = sim.url })
      assert.is_nil(ok)
      assert.equal("protocol", code)
      assert.equal(302, info.status)
      assert.matches("redirect", message)
      for _, request in ipairs(sim:requests()) do
        assert.not_equal("redirect_target", request.listener)
      end
      assert.equal(1, #sim:requests())
    end)

    it("fails with protocol when the response is over the size limit", function()
      sim:fault({ kind = "oversize" })
      local ok, message, code = core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN, { endpoint = sim.url })
      assert.is_nil(ok)
      assert.equal("protocol", code)
      assert.matches("larger than the limit of 8388608 bytes", message, 1, true)
    end)

    it("applies a smaller max_response_size", function()
      local client = core.client({ max_response_size = 10 })
      local value, message, code, info = client:request("PUT", sim.url .. simulator.retry_path(sim:failed_run()),
        { ["X-Auth-Token"] = TOKEN })
      assert.is_nil(value)
      assert.equal("protocol", code)
      assert.matches("limit of 10 bytes", message, 1, true)
      assert.equal("CURLE_FILESIZE_EXCEEDED", info.curl_code)
      client:close()
    end)

    it("times out a slow answer", function()
      sim:fault({ kind = "slow", delay = 3 })
      local started = core.monotonic()
      local ok, message, code, info = core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN,
        { endpoint = sim.url, timeout = 0.5 })
      assert.is_nil(ok)
      assert.equal("timeout", code)
      assert.matches("timed out", message)
      assert.is_false(info.retryable) -- the retry may have reached the server
      assert.is_true(core.monotonic() - started < 2.5)
    end)

    it("reports a connection closed without an answer as a network error", function()
      sim:fault({ kind = "close" })
      local ok, _, code = core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN, { endpoint = sim.url })
      assert.is_nil(ok)
      assert.equal("network", code)
    end)

    it("reports a refused connection as a network error that may be retried", function()
      local ok, _, code, info = core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN,
        { endpoint = "http://127.0.0.1:1" })
      assert.is_nil(ok)
      assert.equal("network", code)
      assert.is_true(info.retryable)
    end)
  end)

  describe("client handle", function()
    it("returns a good answer's body and info: status, request id and lower-cased headers", function()
      local client = core.client()
      local body, info = client:request("PUT", sim.url .. simulator.retry_path(sim:failed_run()),
        { ["X-Auth-Token"] = TOKEN })
      assert.equal(200, info.status)
      assert.same({ success = true }, require("cjson").decode(body))
      assert.matches("^[%x-]+$", info.headers["x-request-id"])
      assert.equal(info.headers["x-request-id"], info.request_id)
      assert.matches("application/json", info.headers["content-type"])
      -- expecting {"success": true}: true alone, or with its info when asked
      assert.is_true(client:request("PUT", sim.url .. simulator.retry_path(sim:failed_run()),
        { ["X-Auth-Token"] = TOKEN }, nil, true, nil, "success", "retry"))
      local ok, with = client:request("PUT", sim.url .. simulator.retry_path(sim:failed_run()),
        { ["X-Auth-Token"] = TOKEN }, nil, true, nil, "success", "retry", true)
      assert.is_true(ok)
      assert.equal(200, with.status)
      client:close()
    end)

    it("returns any other answer as the operation's failure, classified and redacted", function()
      local client = core.client()
      client:set_secrets({ "a-secret-the-server-echoes" })
      local run = sim:failed_run()
      sim:fault({ kind = "not_found", run_id = run, error_msg = "a-secret-the-server-echoes was here" })
      local value, message, code, info = client:request("PUT", sim.url .. simulator.retry_path(run),
        { ["X-Auth-Token"] = TOKEN }, nil, true, nil, "success", "retry")
      client:close()
      assert.is_nil(value)
      assert.equal("not_found", code)
      assert.matches("^retry: not found, HTTP 404, DEVPIPE.00011104 %*%*%* was here %(request id ", message)
      assert.same({ 404, "DEVPIPE.00011104", "*** was here", true, false },
        { info.status, info.error_code, info.error_msg, info.sent, info.retryable })
    end)

    it("reads headers whose lines end in a bare LF", function()
      sim:fault({ kind = "bare_lf" })
      local client = core.client()
      local body, info = client:request("PUT", sim.url .. simulator.retry_path(sim:failed_run()),
        { ["X-Auth-Token"] = TOKEN })
      client:close()
      local headers = info.headers
      assert.equal(200, info.status)
      assert.same({ success = true }, require("cjson").decode(body))
      assert.matches("^[%x-]+$", headers["x-request-id"])
      assert.matches("application/json", headers["content-type"])
      for name in pairs(headers) do assert.is_nil(name:find("[\r\n ]")) end
    end)

    it("keeps one connection alive across calls", function()
      local client = core.client()
      for _ = 1, 5 do
        local _, info = client:request("PUT", sim.url .. simulator.retry_path(sim:failed_run()),
          { ["X-Auth-Token"] = TOKEN })
        assert.equal(200, info.status)
      end
      client:close()
      local requests = sim:requests()
      assert.equal(5, #requests)
      for i = 2, 5 do assert.equal(requests[1].connection, requests[i].connection) end
    end)

    it("sends the headers of each request, when the same list is reused and when it changes", function()
      local client = core.client()
      local url = sim.url .. "/echo"
      client:request("GET", url, { ["X-Auth-Token"] = "first-token", Accept = "application/json" })
      client:request("GET", url, { ["X-Auth-Token"] = "first-token", Accept = "application/json" })
      client:request("GET", url, { ["X-Auth-Token"] = "second-token", Accept = "application/json" })
      client:request("GET", url, { ["X-Auth-Token"] = "second-token" })
      client:request("POST", url, { ["X-Auth-Token"] = "second-token" }, "x")
      client:close()
      local requests = sim:requests()
      assert.equal(5, #requests)
      assert.equal("first-token", requests[2].headers["x-auth-token"])
      assert.equal("second-token", requests[3].headers["x-auth-token"])
      assert.equal("application/json", requests[3].headers["accept"])
      assert.equal("second-token", requests[4].headers["x-auth-token"])
      assert.is_not.equal("application/json", requests[4].headers["accept"])
      assert.equal("1", requests[5].headers["content-length"])
      assert.is_nil(requests[5].headers["content-type"])
    end)

    it("checks every URL, also one with the scheme and host of a URL it accepted", function()
      local client = core.client()
      assert.is_true(client:request("PUT", sim.url .. simulator.retry_path(sim:failed_run()),
        { ["X-Auth-Token"] = TOKEN }, nil, true, nil, "success"))
      local userinfo = sim.url:gsub("^http://", "http://user:secret@")
      assert.error_matches(function() client:request("GET", userinfo .. "/x") end, "user name or password")
      assert.error_matches(function() client:request("GET", sim.url .. "/a b") end, "URL")
      assert.error_matches(function() client:request("GET", "http://example.com/x") end, "not loopback")
      client:close()
      assert.equal(1, #sim:requests())
    end)

    it("shares its connections with a batch made with share = client", function()
      local client = core.client()
      local path = simulator.retry_path(sim:failed_run())
      assert.is_true(client:request("PUT", sim.url .. path, { ["X-Auth-Token"] = TOKEN }, nil, true, nil, "success"))
      local batch = core.batch({ concurrency = 1, share = client })
      assert(batch:add("PUT", sim.url .. simulator.retry_path(sim:failed_run()), { ["X-Auth-Token"] = TOKEN }))
      local finished = {}
      while batch:pending() > 0 do
        for _, done in ipairs(batch:step(1)) do finished[#finished + 1] = done end
      end
      assert.equal(200, finished[1][2].status)
      -- the client closed first: the batch still works, and closing both in
      -- either order (or leaving them to the collector) is safe
      client:close()
      assert(batch:add("PUT", sim.url .. simulator.retry_path(sim:failed_run()), { ["X-Auth-Token"] = TOKEN }))
      while batch:pending() > 0 do batch:step(1) end
      batch:close()
      local requests = sim:requests()
      assert.equal(3, #requests)
      assert.equal(requests[1].connection, requests[2].connection)
      assert.equal(requests[1].connection, requests[3].connection)
      for _ = 1, 20 do core.batch({ concurrency = 2, share = core.client() }) end
      collectgarbage()
      collectgarbage()
    end)

    it("raises on a share option that is not an open client", function()
      assert.error_matches(function() core.batch({ share = {} }) end, "'share' must be a pipeline.client")
      local closed = core.client()
      closed:close()
      assert.error_matches(function() core.batch({ share = closed }) end, "closed client")
    end)

    it("sends a body with its length and no Expect header", function()
      local client = core.client()
      local body = '{"message":"ok"}'
      client:request("POST", sim.url .. "/echo", { ["Content-Type"] = "application/json" }, body)
      client:close()
      local request = sim:requests()[1]
      assert.equal(body, request.body)
      assert.equal(tostring(#body), request.headers["content-length"])
      assert.is_nil(request.headers["expect"])
    end)

    it("shortens its timeout for one request, for a caller's deadline", function()
      local client = core.client({ timeout = 30 })
      sim:fault({ kind = "slow", delay = 2 })
      local started = core.monotonic()
      local value, _, code, info = client:request("PUT", sim.url .. simulator.retry_path(sim:failed_run()),
        { ["X-Auth-Token"] = TOKEN }, nil, true, 0.3)
      assert.is_nil(value)
      assert.equal("timeout", code)
      assert.equal("CURLE_OPERATION_TIMEDOUT", info.curl_code)
      assert.equal(28, info.curl_errno)
      assert.is_true(core.monotonic() - started < 1.5)
      -- and the next request has the client's own timeout again
      assert.is_true(client:request("PUT", sim.url .. simulator.retry_path(sim:failed_run()),
        { ["X-Auth-Token"] = TOKEN }, nil, true, nil, "success"))
      client:close()
    end)

    it("raises on a header value with CR or LF, sending nothing", function()
      local client = core.client()
      assert.error_matches(function()
        client:request("GET", sim.url .. "/x", { ["X-Auth-Token"] = "a\r\nb" })
      end, "control characters")
      assert.error_matches(function()
        client:request("GET", sim.url .. "/x", { ["Bad Name"] = "a" })
      end, "bad header name")
      assert.error_matches(function() client:request("TRACE", sim.url .. "/x") end, "invalid option 'TRACE'")
      client:close()
      assert.equal(0, #sim:requests())
    end)

    it("closes idempotently, by close(), <close> and the garbage collector", function()
      local client = core.client()
      client:close()
      client:close()
      assert.is_true(client:is_closed())
      assert.matches("closed", tostring(client))
      assert.error_matches(function() client:request("GET", sim.url .. "/x") end, "closed client")

      if with_close then
        local escaped = with_close(core.client)
        assert.is_true(escaped:is_closed())
      end

      for _ = 1, 50 do core.client() end
      collectgarbage()
      collectgarbage()
    end)

    it("raises on unknown client options", function()
      assert.error_matches(function() core.client({ timout = 1 }) end, "unknown option 'timout'")
      assert.error_matches(function() core.client({ insecure = "yes" }) end, "'insecure' must be a boolean")
      assert.error_matches(function() core.client({ timeout = -1 }) end,
        "bad argument #1 to '[%w.]*client' %(option 'timeout' must be a number of seconds from 0.001")
    end)
  end)

  describe("checks", function()
    it("is_id accepts exactly 32 ASCII letters or digits", function()
      assert.is_true(core.is_id(("aZ09"):rep(8)))
      assert.is_false(core.is_id(("a"):rep(31)))
      assert.is_false(core.is_id(("a"):rep(33)))
      assert.is_false(core.is_id(("a"):rep(31) .. "-"))
      assert.is_false(core.is_id(32))
    end)
  end)
end)

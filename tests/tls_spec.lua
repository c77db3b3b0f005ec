-- TLS against a real server: nginx on loopback with certificates from a
-- throwaway CA made by openssl in the setup.  Verification is on by default,
-- ca_file and ca_path name the CA, and a wrong host name or an expired
-- certificate fails with `tls` whatever CA is given.
local core = require("pipeline.core")
local pipeline = require("pipeline")
local simulator = require("sim")
local support = require("support")
local servers = require("servers")

local PROJECT, PIPELINE = simulator.PROJECT, simulator.PIPELINE
local TOKEN = "tls-spec-canary-token-7f3a9c"

servers.describe_if_installed({ "nginx", "openssl" }, describe, pending)("TLS against nginx on loopback", function()
  local pki, nginx

  setup(function()
    pki = servers.pki()
    nginx = servers.nginx(pki)
  end)

  teardown(function()
    if nginx then nginx.stop() end
    if pki then support.remove(pki.dir) end
  end)

  local function endpoint(server, host)
    return ("https://%s:%d"):format(host or "127.0.0.1", nginx.ports[server])
  end

  -- core.retry of a fresh run id against that endpoint: its four results
  local function retry(server, options, host)
    options = options or {}
    options.endpoint = endpoint(server, host)
    options.connect_timeout = 5
    options.timeout = 10
    return core.retry(PROJECT, PIPELINE, simulator.new_id(), TOKEN, options)
  end

  local function assert_tls_failure(ok, message, code, info)
    assert.is_nil(ok, "expected a failure")
    assert.equal("tls", code, message)
    assert.is_string(message)
    support.lacks(message, TOKEN, "the message")
    assert.is_table(info)
  end

  -- How much nginx has logged: nginx.logged_since(it) gives the requests
  -- answered after (method, URI and token, one per line).  nginx writes a
  -- line once it has answered, so the request of the test before may land
  -- late: a marker request logged first means every earlier one is in.
  local function log_size()
    nginx.logged_since(#(support.read_file(nginx.access_log) or ""))
    return #(support.read_file(nginx.access_log) or "")
  end

  it("answers the retry call with ca_file (the server works)", function()
    local before = log_size()
    local ok, message, code = retry("good", { ca_file = pki.ca_file })
    assert.is_true(ok, message or code)
    support.contains(nginx.logged_since(before), "PUT /v5/" .. PROJECT .. "/api/pipelines/" .. PIPELINE)
  end)

  it("fails with tls for a certificate no trusted CA signed (the default store)", function()
    local before = log_size()
    assert_tls_failure(retry("good"))
    -- refused during the handshake: no request reached the server
    assert.equal("", nginx.logged_since(before))
  end)

  it("passes with ca_path, a hashed folder holding the CA", function()
    local ok, message, code = retry("good", { ca_path = pki.ca_path })
    assert.is_true(ok, message or code)
  end)

  it("checks the host name: localhost and 127.0.0.1 are in the certificate", function()
    local ok, message, code = retry("good", { ca_file = pki.ca_file }, "localhost")
    assert.is_true(ok, message or code)
  end)

  it("fails with tls when the certificate names another host, even with the right CA", function()
    local before = log_size()
    assert_tls_failure(retry("wrong_host", { ca_file = pki.ca_file }))
    assert_tls_failure(retry("wrong_host", { ca_path = pki.ca_path }))
    assert.equal("", nginx.logged_since(before))
  end)

  it("fails with tls for an expired certificate, even with the right CA", function()
    local before = log_size()
    local ok, message, code, info = retry("expired", { ca_file = pki.ca_file })
    assert_tls_failure(ok, message, code, info)
    assert.matches("expired", message)
    assert.equal("", nginx.logged_since(before))
  end)

  it("insecure = true passes with any certificate (untrusted, wrong host, expired)", function()
    for _, server in ipairs({ "good", "wrong_host", "expired" }) do
      local ok, message, code = retry(server, { insecure = true })
      assert.is_true(ok, server .. ": " .. tostring(message or code))
    end
  end)

  describe("pipeline clients", function()
    local function new(options, events)
      options.endpoint = options.endpoint or endpoint("good")
      options.token = TOKEN
      options.project_id = PROJECT
      options.retries = false
      options.on_event = function(event) events[#events + 1] = event end
      return assert(pipeline.new(options))
    end

    local function of_type(events, kind)
      local found = {}
      for _, event in ipairs(events) do
        if event.type == kind then found[#found + 1] = event end
      end
      return found
    end

    it("verify by default and with ca_file, ca_path; no warning then", function()
      local events = {}
      local c = new({}, events)
      local ok, message, code = c:retry(PIPELINE, simulator.new_id())
      assert.is_nil(ok)
      assert.equal("tls", code, message)
      c:close()
      for _, options in ipairs({ { ca_file = pki.ca_file }, { ca_path = pki.ca_path } }) do
        c = new(options, events)
        ok, message, code = c:retry(PIPELINE, simulator.new_id())
        assert.is_true(ok, message or code)
        c:close()
      end
      assert.same({}, of_type(events, "warning"))
    end)

    it("insecure = true passes and emits one warning event, which names no secret", function()
      local events = {}
      local c = new({ insecure = true, endpoint = endpoint("wrong_host") }, events)
      local warnings = of_type(events, "warning")
      assert.equal(1, #warnings)
      assert.equal("pipeline.new", warnings[1].op)
      assert.equal("insecure", warnings[1].option)
      assert.matches("TLS verification is off", warnings[1].message)
      local ok, message, code = c:retry(PIPELINE, simulator.new_id())
      assert.is_true(ok, message or code)
      c:close()
      assert.equal(1, #of_type(events, "warning"))
      for _, event in ipairs(events) do
        for _, value in pairs(event) do
          if type(value) == "string" then support.lacks(value, TOKEN, "an event") end
        end
      end
    end)

    it("the command line shows the warning with -v", function()
      local function run(profile)
        local config = support.write_file(pki.dir .. "/cli/config.lua", ([[
return {
  profiles = {
    verified = { ca_file = %q },
    insecure = { insecure = true },
  },
}
]]):format(pki.ca_file))
        return support.capture(support.command(
          { support.LUA, support.ROOT .. "/bin/codearts-pipeline", "-v", "--config", config, "--profile", profile,
            "retry", PIPELINE, simulator.new_id() },
          support.lua_environment({
            CODEARTS_PIPELINE_ENDPOINT = endpoint("good"), CODEARTS_PIPELINE_PROJECT_ID = PROJECT,
            CODEARTS_PIPELINE_TOKEN = TOKEN, HOME = pki.dir .. "/cli",
          })))
      end
      local output, status = run("verified")
      assert.equal(0, status, output)
      support.lacks(output, "warning", "the output without insecure")
      support.lacks(output, TOKEN, "the output")
      output, status = run("insecure")
      assert.equal(0, status, output)
      support.contains(output, "warning: TLS verification is off")
      support.lacks(output, TOKEN, "the output")
    end)
  end)
end)

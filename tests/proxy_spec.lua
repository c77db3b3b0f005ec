-- Proxies against a real one: tinyproxy on loopback in front of nginx.  The
-- targets are on 127.0.0.2, loopback but not one of the names the transport
-- keeps away from proxies (localhost, 127.0.0.1, ::1), so a request can be
-- seen going through the proxy or around it.  tinyproxy logs each request
-- line: over HTTPS it sees only CONNECT host:port, never the path or a token.
local core = require("pipeline.core")
local simulator = require("sim")
local support = require("support")
local servers = require("servers")

local PROJECT, PIPELINE = simulator.PROJECT, simulator.PIPELINE
local TOKEN = "proxy-spec-canary-token-5e1b2d"

servers.describe_if_installed({ "nginx", "openssl", "tinyproxy" }, describe, pending)(
  "proxies: tinyproxy on loopback", function()
  local pki, nginx, proxy

  setup(function()
    pki = servers.pki()
    nginx = servers.nginx(pki)
    proxy = servers.tinyproxy()
  end)

  teardown(function()
    if proxy then proxy.stop() end
    if nginx then nginx.stop() end
    if pki then support.remove(pki.dir) end
  end)

  local function http_endpoint(host) return ("http://%s:%d"):format(host, nginx.ports.http) end
  local function https_endpoint(host) return ("https://%s:%d"):format(host, nginx.ports.good) end

  -- What the proxy and nginx logged during f(): the proxy's connection and
  -- request lines (not the lines of earlier connections it closes late),
  -- nginx's requests, and the proxy's whole log of the time.
  local function logged_during(f)
    local proxy_before = #proxy.read_log()
    local nginx_before = #(support.read_file(nginx.access_log) or "")
    f()
    local text = proxy.read_log():sub(proxy_before + 1)
    local requests = {}
    for line in text:gmatch("[^\n]+") do
      if line:find("Connect (file descriptor", 1, true) or line:find("Request (file descriptor", 1, true) then
        requests[#requests + 1] = line
      end
    end
    return table.concat(requests, "\n"), nginx.logged_since(nginx_before), text
  end

  -- core.retry of a fresh run; asserts it succeeded; returns the run's id.
  local function retry(options)
    local run = simulator.new_id()
    options.timeout, options.connect_timeout = 10, 5
    local ok, message, code = core.retry(PROJECT, PIPELINE, run, TOKEN, options)
    assert.is_true(ok, tostring(message) .. " " .. tostring(code))
    return run
  end

  -- The same in a child process with exactly the environment env (proxy
  -- variables are read by libcurl from the process's environment).
  local function retry_in_child(env, options)
    local run = simulator.new_id()
    local lines = {}
    for name, value in pairs(options) do lines[#lines + 1] = ("%s = %q,"):format(name, value) end
    local output, status = support.run_lua(([[
local core = require("pipeline.core")
local ok, message, code = core.retry(%q, %q, %q, %q, { timeout = 10, connect_timeout = 5, %s })
print(ok, message, code)
]]):format(PROJECT, PIPELINE, run, TOKEN, table.concat(lines, " ")), env)
    assert.equal(0, status, output)
    assert.equal("true\tnil\tnil\n", output)
    return run
  end

  local function api_path(run) return simulator.retry_path(run):gsub("^/", "") end

  -- Over HTTPS the proxy saw only the CONNECT (no path, run id or token in
  -- its log), and run's retry reached the server with its token.
  local function tunnelled_only(run, seen, arrived, log)
    support.contains(seen, ("CONNECT 127.0.0.2:%d"):format(nginx.ports.good))
    support.lacks(log, run, "the proxy's log")
    support.lacks(log, "/v5/", "the proxy's log")
    support.lacks(log, TOKEN, "the proxy's log")
    support.contains(arrived, "PUT /" .. api_path(run) .. " token=" .. TOKEN)
  end

  it("the proxy option: plain http goes through the proxy, which sees the request", function()
    local run
    local seen, arrived = logged_during(function()
      run = retry({ endpoint = http_endpoint("127.0.0.2"), proxy = proxy.url })
    end)
    support.contains(seen, ("PUT http://127.0.0.2:%d/%s"):format(nginx.ports.http, api_path(run)))
    support.contains(arrived, "PUT /" .. api_path(run) .. " token=" .. TOKEN)
  end)

  it("the proxy option: over https the proxy sees only CONNECT, no path and no token", function()
    local run
    local seen, arrived, log = logged_during(function()
      run = retry({ endpoint = https_endpoint("127.0.0.2"), proxy = proxy.url, ca_file = pki.ca_file })
    end)
    -- the request and its token did reach the server, through the tunnel
    tunnelled_only(run, seen, arrived, log)
  end)

  it("the proxy option: TLS is still verified end to end through the tunnel", function()
    local ok, message, code = core.retry(PROJECT, PIPELINE, simulator.new_id(), TOKEN,
      { endpoint = https_endpoint("127.0.0.2"), proxy = proxy.url, timeout = 10 })
    assert.is_nil(ok)
    assert.equal("tls", code, message)
  end)

  it("loopback names are never proxied, even with the proxy option", function()
    for _, endpoint in ipairs({ http_endpoint("127.0.0.1"), http_endpoint("localhost") }) do
      local run
      local seen, arrived = logged_during(function() run = retry({ endpoint = endpoint, proxy = proxy.url }) end)
      assert.equal("", seen)
      support.contains(arrived, "PUT /" .. api_path(run))
    end
  end)

  it("a proxy that does not answer is a network failure naming no secret", function()
    local closed = "http://127.0.0.1:" .. servers.free_ports(1)[1] -- nothing listens there
    local ok, message, code = core.retry(PROJECT, PIPELINE, simulator.new_id(), TOKEN,
      { endpoint = https_endpoint("127.0.0.2"), proxy = closed, ca_file = pki.ca_file, timeout = 10 })
    assert.is_nil(ok)
    assert.equal("network", code, message)
    support.lacks(message, TOKEN, "the message")
  end)

  describe("the environment", function()
    it("https_proxy: an https request goes through the proxy as CONNECT only", function()
      local run
      local seen, arrived, log = logged_during(function()
        run = retry_in_child({ https_proxy = proxy.url },
          { endpoint = https_endpoint("127.0.0.2"), ca_file = pki.ca_file })
      end)
      tunnelled_only(run, seen, arrived, log)
    end)

    it("no_proxy: a listed host is reached directly", function()
      for _, no_proxy in ipairs({ "127.0.0.2", "example.com,127.0.0.2", "*" }) do
        local run
        local seen, arrived = logged_during(function()
          run = retry_in_child({ https_proxy = proxy.url, no_proxy = no_proxy },
            { endpoint = https_endpoint("127.0.0.2"), ca_file = pki.ca_file })
        end)
        assert.equal("", seen, "no_proxy=" .. no_proxy)
        support.contains(arrived, "PUT /" .. api_path(run))
      end
    end)

    it("no_proxy naming another host leaves the proxy in use", function()
      local seen = logged_during(function()
        retry_in_child({ https_proxy = proxy.url, no_proxy = "example.com" },
          { endpoint = https_endpoint("127.0.0.2"), ca_file = pki.ca_file })
      end)
      support.contains(seen, "CONNECT 127.0.0.2:")
    end)

    it("http_proxy: plain http goes through the proxy, but never for 127.0.0.1 or localhost", function()
      local seen = logged_during(function()
        retry_in_child({ http_proxy = proxy.url }, { endpoint = http_endpoint("127.0.0.2") })
      end)
      support.contains(seen, ("http://127.0.0.2:%d/v5/"):format(nginx.ports.http))
      for _, host in ipairs({ "127.0.0.1", "localhost" }) do
        seen = logged_during(function()
          retry_in_child({ http_proxy = proxy.url, https_proxy = proxy.url }, { endpoint = http_endpoint(host) })
        end)
        assert.equal("", seen, host)
      end
    end)

    it("the proxy option wins over https_proxy", function()
      local other = "http://127.0.0.1:9" -- the discard port: nothing answers there
      local seen = logged_during(function()
        retry_in_child({ https_proxy = other },
          { endpoint = https_endpoint("127.0.0.2"), ca_file = pki.ca_file, proxy = proxy.url })
      end)
      support.contains(seen, "CONNECT 127.0.0.2:")
    end)
  end)
end)

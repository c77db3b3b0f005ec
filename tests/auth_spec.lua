-- Authentication against the simulator: AK/SK signing, core.sign,
-- IAM tokens, token functions, credential sources through pipeline.load, and
-- canary secrets that must never show.  The simulator's signature verifier is
-- an independent Python implementation; what it recorded is checked too.
--
-- Every secret here is a canary: a distinctive string searched for in every
-- message, every encoded on_event event and the simulator's records.
local pipeline = require("pipeline")
local core = require("pipeline.core")
local cjson = require("cjson")
local simulator = require("sim")
local support = require("support")

local PROJECT, PIPELINE = simulator.PROJECT, simulator.PIPELINE
local IAM_PROJECT, REGION = simulator.IAM_PROJECT, simulator.REGION
local OTHER_PROJECT = "ffffffffffffffffffffffffffffffff"

local AK = "SIMAK0000000000000001"
local SK = "CANARY-sk-7c41e2a9d0"
local TEMP_AK = "SIMTEMPAK000000000001"
local TEMP_SK = "CANARY-tempsk-93bd10f6"
local SECURITY_TOKEN = "CANARY-sectoken-5be8f4a1"
local WRONG_SECURITY_TOKEN = "CANARY-wrongsectoken-0d77"
local USER, DOMAIN = "alice", "acme"
local PASSWORD = "CANARY-pass:word-2d9f7b" -- a ':' inside, as --iam-user allows
local TOKEN = "CANARY-token-a61f03c8"
local WRONG_SK = "CANARY-wrongsk-44c0e2"
local WRONG_PASSWORD = "CANARY-wrongpw-e17b5a"
local PROVIDED = { "CANARY-provided-1-0b1d", "CANARY-provided-2-8e2f", "CANARY-provided-3-3c4a" }
local VAULT_SECRET = "CANARY-vault-6f0e19"

local CANARIES = { SK, TEMP_SK, SECURITY_TOKEN, WRONG_SECURITY_TOKEN, PASSWORD, TOKEN, WRONG_SK, WRONG_PASSWORD, VAULT_SECRET,
  PROVIDED[1], PROVIDED[2], PROVIDED[3] }

local IAM_PATH = "/v3/auth/tokens"

------------------------------------------------------------------ helpers

-- Everything a user could see in this file's scenarios: messages and encoded
-- events (checked for canaries once more at the end), and the IAM-issued
-- tokens seen in the records (secrets too).
local observed, issued_tokens = {}, {}

local function observe(text)
  observed[#observed + 1] = tostring(text)
  return text
end

local contains, lacks = support.contains, support.lacks

local function lacks_all(text, secrets, what)
  for _, secret in ipairs(secrets) do lacks(text, secret, what) end
end

-- "SDK-HMAC-SHA256 Access=.., SignedHeaders=.., Signature=.." as a table.
local function parse_authorization(value)
  local access, signed, signature = tostring(value)
    :match("^SDK%-HMAC%-SHA256 Access=([^,]+), SignedHeaders=([^,]+), Signature=(%x+)$")
  assert(access, "not an SDK-HMAC-SHA256 Authorization header: " .. tostring(value))
  local names = {}
  for name in signed:gmatch("[^;]+") do names[name] = true end
  return { access = access, list = signed, signed = names, signature = signature }
end

local function api_requests(requests) return simulator.matching(requests, nil, "/v5/") end

local function iam_requests(requests) return simulator.matching(requests, nil, IAM_PATH) end

local PROJECTS_PATH = "/v3/projects"

local function paths(requests)
  local list = {}
  for _, request in ipairs(requests) do
    list[#list + 1] = request.path == IAM_PATH and "iam" or request.path == PROJECTS_PATH and "projects"
      or request.method
  end
  return list
end

-- The records hold no secret outside the one header (or IAM body) meant to
-- carry it; the SKs are never sent at all.
local function records_clean(requests)
  for _, request in ipairs(requests) do
    local where = ("record %d (%s %s)"):format(request.seq, request.method, request.path)
    local token = request.headers["x-auth-token"]
    if token and token:find("^MIIsim") then issued_tokens[#issued_tokens + 1] = token end
    for name, value in pairs(request.headers) do
      for _, secret in ipairs(CANARIES) do
        local allowed = (name == "x-auth-token" and value == secret)
          or (name == "x-security-token" and value == secret)
        if not allowed then lacks(value, secret, where .. " header " .. name) end
      end
    end
    local body_secrets = {}
    for _, secret in ipairs(CANARIES) do
      if not (request.path == IAM_PATH and (secret == PASSWORD or secret == WRONG_PASSWORD)) then
        body_secrets[#body_secrets + 1] = secret
      end
    end
    lacks_all(request.body, body_secrets, where .. " body")
    lacks_all(request.path .. "?" .. request.query, CANARIES, where .. " URL")
  end
end

-- Checks nil, message, code, info: code, one line, no canary; returns them.
local function failure(expected_code, ok, message, code, info)
  assert.is_nil(ok)
  assert.equal(expected_code, code)
  assert.is_string(message)
  assert.is_table(info)
  assert.is_nil(message:find("\n", 1, true))
  observe(message)
  lacks_all(message, CANARIES, "message")
  lacks_all(cjson.encode(info), CANARIES, "info")
  return message, info
end

local function events_clean(events)
  local text = observe(cjson.encode(events))
  lacks_all(text, CANARIES, "events")
  lacks_all(text, issued_tokens, "events")
  return text
end

local BUSTED = support.which("busted", "/usr/bin/busted")

-- Runs a Lua script in a child process with exactly the environment vars
-- (plus HOME, by default a fresh folder, and what support.run_lua adds);
-- returns everything it printed.
local function run_child(script_text, vars, home)
  local env = {}
  for name, value in pairs(vars or {}) do env[name] = value end
  env.HOME = env.HOME or home or support.test_dir()
  return (support.run_lua(script_text, env))
end

------------------------------------------------------------------ specs

describe("authentication", function()
  local sim = simulator.fixture({ "--token", TOKEN, "--ak", AK, "--sk", SK,
    "--iam-user", USER .. ":" .. PASSWORD .. ":" .. DOMAIN })
  local transport

  setup(function() transport = core.client({ timeout = 10 }) end)
  teardown(function() transport:close() end)
  after_each(function()
    records_clean(sim:requests())
    support.remove_test_dirs()
  end)

  -- A client on the simulator with options, and the events it emits.
  local function new_client(options)
    local events = {}
    local all = { endpoint = sim.url, project_id = PROJECT, retries = false,
      on_event = function(event) events[#events + 1] = event end }
    for k, v in pairs(options) do all[k] = v end
    return assert(pipeline.new(all)), events
  end

  local function iam_options(password)
    return { user = USER, password = password or PASSWORD, domain = DOMAIN, project = "cn-north-4",
      endpoint = sim.url }
  end

  local function set_tokens(tokens)
    sim:control("POST", "tokens", { tokens = tokens })
  end

  -- Sends a recorded request again, byte for byte where it was signed, so the
  -- simulator verifies its signature (again, or for the first time when a
  -- fault answered it).
  local function replay(record)
    local authorization = parse_authorization(record.headers.authorization)
    local headers = { Authorization = record.headers.authorization }
    for name in pairs(authorization.signed) do
      if name ~= "host" then headers[name] = record.headers[name] end
    end
    local url = sim.url .. record.path .. (record.query ~= "" and ("?" .. record.query) or "")
    -- status and body (or message) of the answer, whatever it was
    local value, second, _, info = transport:request(record.method, url, headers,
      record.body ~= "" and record.body or nil)
    if value == nil then return info.status, second end
    return second.status, value
  end

  --------------------------------------------------------------- AK/SK

  describe("AK/SK signing", function()
    it("signs a retry the simulator accepts: host, x-sdk-date and the IAM project's x-project-id signed", function()
      local client, events = new_client({ ak = AK, sk = SK, iam_project_id = IAM_PROJECT })
      local run = sim:failed_run()
      assert.is_true(client:retry(PIPELINE, run))
      client:close()
      assert.equal("RUNNING", sim:run_state(run).status)
      local requests = sim:requests()
      assert.equal(1, #requests)
      local r = requests[1]
      assert.equal("PUT", r.method)
      local a = parse_authorization(r.headers.authorization)
      assert.equal(AK, a.access)
      for _, name in ipairs({ "host", "x-sdk-date", "x-project-id" }) do
        assert.is_true(a.signed[name], name .. " is not signed: " .. a.list)
      end
      -- no body, but a signed Content-Type all the same, as the SDKs send it
      assert.equal("0", r.headers["content-length"])
      assert.is_true(a.signed["content-type"])
      assert.equal("application/json", r.headers["content-type"])
      assert.is_nil(a.signed["x-security-token"])
      -- the IAM project of the region, never the CodeArts project of the path
      assert.equal(IAM_PROJECT, r.headers["x-project-id"])
      assert.matches("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$", r.headers["x-sdk-date"])
      assert.is_nil(r.headers["x-auth-token"])
      -- the event shows the request with the Authorization header redacted
      assert.equal("***", events[1].headers.Authorization)
      events_clean(events)
    end)

    it("signs a run's JSON body and its Content-Type", function()
      sim:add_run({ status = "COMPLETED" })
      local client = new_client({ ak = AK, sk = SK, iam_project_id = IAM_PROJECT })
      local id = assert(client:run(PIPELINE, { description = "signed start" }))
      client:close()
      assert.equal("RUNNING", sim:run_state(id).status)
      local r = sim:requests()[1]
      assert.equal("POST", r.method)
      assert.same({ description = "signed start" }, cjson.decode(r.body))
      local a = parse_authorization(r.headers.authorization)
      for _, name in ipairs({ "content-type", "host", "x-sdk-date", "x-project-id" }) do
        assert.is_true(a.signed[name], name .. " is not signed: " .. a.list)
      end
    end)

    it("signs each attempt anew with a fresh X-Sdk-Date: throttled, then accepted", function()
      sim:failed_run()
      local slept = {}
      local client, events = new_client({ ak = AK, sk = SK, iam_project_id = IAM_PROJECT, retries = { max = 1 },
        sleep = function(s)
          slept[#slept + 1] = s
          core.sleep(s)
        end })
      sim:fault({ kind = "throttled", path = "/pipeline-runs/list", retry_after = "1" })
      local runs, total = client:runs(PIPELINE)
      client:close()
      assert.is_table(runs)
      assert.equal(1, total)
      assert.same({ 1 }, slept)
      local requests = sim:requests()
      assert.equal(2, #requests)
      assert.equal("throttled", requests[1].fault)
      local first = parse_authorization(requests[1].headers.authorization)
      local second = parse_authorization(requests[2].headers.authorization)
      assert.is_true(first.signed["content-type"] and second.signed["content-type"])
      assert.is_true(requests[2].headers["x-sdk-date"] > requests[1].headers["x-sdk-date"])
      assert.are_not.equal(first.signature, second.signature)
      -- the simulator verifies both signatures (the first was answered by the fault)
      for i = 1, 2 do
        local status, body = replay(requests[i])
        assert.equal(200, status, ("attempt %d not accepted: %s"):format(i, tostring(body)))
      end
      events_clean(events)
    end)

    it("signs X-Security-Token with temporary credentials", function()
      sim:control("POST", "credentials", { credentials = { { ak = AK, sk = SK },
        { ak = TEMP_AK, sk = TEMP_SK, security_token = SECURITY_TOKEN } } })
      sim:add_run({ status = "COMPLETED" })
      local client, events = new_client({ ak = TEMP_AK, sk = TEMP_SK, security_token = SECURITY_TOKEN,
        iam_project_id = IAM_PROJECT })
      local id = assert(client:run(PIPELINE))
      client:close()
      assert.equal("RUNNING", sim:run_state(id).status)
      local r = sim:requests()[1]
      assert.equal(SECURITY_TOKEN, r.headers["x-security-token"])
      local a = parse_authorization(r.headers.authorization)
      assert.equal(TEMP_AK, a.access)
      assert.is_true(a.signed["x-security-token"], a.list)
      assert.is_true(a.signed["content-type"], a.list)
      assert.equal("***", events[1].headers["X-Security-Token"])
      events_clean(events)

      -- the simulator does insist on it
      local bare = new_client({ ak = TEMP_AK, sk = TEMP_SK })
      local message = failure("auth", bare:run(PIPELINE))
      contains(message, "security token")
      bare:close()
    end)

    it("reports a wrong SK as code auth (401 APIGW.0301), sent once, the SK nowhere", function()
      local client, events = new_client({ ak = AK, sk = WRONG_SK, retries = { max = 3 }, sleep = function() end })
      local run = sim:failed_run()
      local message, info = failure("auth", client:retry(PIPELINE, run))
      client:close()
      assert.equal(401, info.status)
      assert.equal("APIGW.0301", info.error_code)
      assert.equal(1, info.attempts)
      contains(message, "HTTP 401")
      contains(message, "APIGW.0301")
      contains(message, "verify aksk signature fail")
      assert.equal(1, #sim:requests())
      assert.equal("FAILED", sim:run_state(run).status)
      events_clean(events)
    end)

    it("refuses bad credentials when the client is made, naming the option, not the value", function()
      local cases = {
        { option = "sk", values = { sk = "", ak = AK } },
        { option = "ak", values = { ak = "AK WITH SPACE", sk = SK } },
        { option = "ak", values = { ak = "AK,1", sk = SK } },
        { option = "security_token", values = { ak = AK, sk = SK, security_token = SECURITY_TOKEN .. "\r\nX: y" } },
        { option = "token", values = { token = "" } },
        { option = "token", values = { token = TOKEN .. "\n" } },
      }
      for _, case in ipairs(cases) do
        local options = { endpoint = sim.url, project_id = PROJECT }
        for k, v in pairs(case.values) do options[k] = v end
        local ok, err = pcall(pipeline.new, options)
        assert.is_false(ok)
        contains(err, "option '" .. case.option .. "'")
        lacks_all(err, CANARIES, "error")
        observe(err)
      end
      assert.equal(0, #sim:requests())
    end)
  end)

  --------------------------------------------------------------- core.sign

  --------------------------------------------------------------- X-Project-Id

  describe("X-Project-Id: the IAM project of the region", function()
    local function projects_requests(requests) return simulator.matching(requests, "GET", PROJECTS_PATH) end

    -- A client that must find the IAM project: a region, IAM on the simulator.
    local function region_client(options)
      local all = { ak = AK, sk = SK, region = REGION, iam_endpoint = sim.url }
      for k, v in pairs(options or {}) do all[k] = v end
      return new_client(all)
    end

    it("is looked up once by region through IAM, signed without one, then sent signed", function()
      local client, events = region_client()
      local first, second = sim:failed_run(), sim:failed_run()
      assert.is_true(client:retry(PIPELINE, first))
      assert.is_true(client:retry(PIPELINE, second))
      client:close()
      local requests = sim:requests()
      assert.same({ "projects", "PUT", "PUT" }, paths(requests))
      local lookup = requests[1]
      assert.equal("name=" .. REGION, lookup.query)
      local a = parse_authorization(lookup.headers.authorization)
      assert.equal(AK, a.access)
      assert.is_nil(lookup.headers["x-project-id"])
      assert.is_nil(a.signed["x-project-id"])
      for i = 2, 3 do
        assert.equal(IAM_PROJECT, requests[i].headers["x-project-id"])
        assert.is_true(parse_authorization(requests[i].headers.authorization).signed["x-project-id"])
      end
      local found
      for _, event in ipairs(events) do
        if event.type == "iam_project" then found = event end
      end
      assert.same({ type = "iam_project", op = "retry", region = REGION, iam_project_id = IAM_PROJECT }, found)
      events_clean(events)
    end)

    it("is looked up once for many concurrent calls", function()
      local client = region_client()
      local list = {}
      for i = 1, 6 do list[i] = { PIPELINE, sim:failed_run() } end
      local results = client:retry_many(list, { concurrency = 4 })
      client:close()
      for i = 1, 6 do assert.is_true(results[i].ok, results[i].message) end
      assert.equal(1, #projects_requests(sim:requests()))
      for _, put in ipairs(simulator.matching(sim:requests(), "PUT", "/retry")) do
        assert.equal(IAM_PROJECT, put.headers["x-project-id"])
      end
    end)

    it("is not looked up when given", function()
      local client = region_client({ iam_project_id = IAM_PROJECT })
      assert.is_true(client:retry(PIPELINE, sim:failed_run()))
      client:close()
      assert.same({ "PUT" }, paths(sim:requests()))
    end)

    it("fails with config when IAM has no project of that name, saying to set it; nothing else is sent", function()
      sim:set_iam_projects({ { id = "0000000000000000000000000000aaaa", name = "cn-south-1", domain_id = "d" } })
      local client = region_client()
      local run = sim:failed_run()
      local message, info = failure("config", client:retry(PIPELINE, run))
      client:close()
      contains(message, REGION)
      contains(message, "iam_project_id")
      contains(message, "HUAWEICLOUD_SDK_PROJECT_ID")
      assert.equal(1, info.attempts)
      assert.same({ "projects" }, paths(sim:requests()))
      assert.equal("FAILED", sim:run_state(run).status)
    end)

    it("fails with config when IAM has several projects of that name, naming them", function()
      sim:set_iam_projects({ { id = "1111111111111111111111111111aaaa", name = REGION, domain_id = "d" },
        { id = "2222222222222222222222222222bbbb", name = REGION, domain_id = "d" } })
      local client = region_client()
      local message = failure("config", client:retry(PIPELINE, sim:failed_run()))
      client:close()
      contains(message, "1111111111111111111111111111aaaa")
      contains(message, "2222222222222222222222222222bbbb")
      contains(message, "iam_project_id")
      assert.same({ "projects" }, paths(sim:requests()))
    end)

    it("fails with auth when IAM refuses the signature, and looks again on the next call", function()
      local client = region_client({ sk = WRONG_SK })
      failure("auth", client:retry(PIPELINE, sim:failed_run()))
      failure("auth", client:retry(PIPELINE, sim:failed_run()))
      client:close()
      assert.same({ "projects", "projects" }, paths(sim:requests()))
    end)

    it("is never the CodeArts project, and not sent without a region", function()
      local client = new_client({ ak = AK, sk = SK })
      local run = sim:failed_run()
      local message = failure("auth", client:retry(PIPELINE, run))
      client:close()
      contains(message, "APIGW.0301")
      local requests = sim:requests()
      assert.same({ "PUT" }, paths(requests))
      assert.is_nil(requests[1].headers["x-project-id"])
      assert.equal("FAILED", sim:run_state(run).status)
    end)

    it("is not sent with a token, even when given", function()
      local client = new_client({ token = TOKEN, iam_project_id = IAM_PROJECT, region = REGION })
      assert.is_true(client:retry(PIPELINE, sim:failed_run()))
      client:close()
      local requests = sim:requests()
      assert.same({ "PUT" }, paths(requests))
      assert.is_nil(requests[1].headers["x-project-id"])
    end)
  end)

  --------------------------------------------------------------- endpoints

  describe("endpoints as the SDKs name them", function()
    local regions = require("pipeline.regions")

    it("reads a host without a scheme, and a comma-separated list", function()
      assert.same({ "https://a.example.com" }, regions.endpoint_list("a.example.com"))
      assert.same({ "https://a.example.com", "http://127.0.0.1:9" },
        regions.endpoint_list(" a.example.com , http://127.0.0.1:9 ,"))
      assert.is_nil(regions.endpoint_list(" , "))
      assert.is_nil(regions.endpoint_list(nil))
    end)

    it("takes a region's IAM host only where the SDKs list one, else the global IAM endpoint", function()
      local none = function() return nil end
      assert.same({ "https://iam.cn-north-4.myhuaweicloud.com" }, regions.iam_endpoints_of("cn-north-4", none))
      assert.same({ "https://iam.tr-west-1.myhuaweicloud.com" }, regions.iam_endpoints_of("tr-west-1", none))
      assert.same({ "https://iam.myhuaweicloud.com" }, regions.iam_endpoints_of("af-north-1", none))
      assert.same({ "https://iam.myhuaweicloud.com" }, regions.iam_endpoints_of(nil, none))
      local env = function(name) return name == "HUAWEICLOUD_SDK_IAM_ENDPOINT" and "iam.lab.example.com" or nil end
      assert.same({ "https://iam.lab.example.com" }, regions.iam_endpoints_of("cn-north-4", env))
    end)

    it("reads the region override as a list", function()
      local env = function(name)
        return name == "HUAWEICLOUD_SDK_REGION_CODEARTSPIPELINE_CN_NORTH_4" and "p1.example.com,p2.example.com" or nil
      end
      assert.same({ "https://p1.example.com", "https://p2.example.com" }, regions.endpoints_of("cn-north-4", env))
      assert.equal("https://p1.example.com", regions.endpoint("cn-north-4", env))
    end)

    it("moves on to the next endpoint when a connection cannot be made, and keeps it", function()
      local dead = "http://127.0.0.1:1" -- nothing listens there: the connection is refused
      local run = sim:failed_run()
      local out = run_child(([[
local pipeline = require "pipeline"
local events = {}
local client = assert(pipeline.load({ on_event = function(e) events[#events + 1] = e end }))
local ok, message = client:retry(%q, %q)
local second = client:detail(%q, %q)
print(ok, message, second and second.status, client.endpoint)
for _, e in ipairs(events) do if e.type == "failover" then print("failover", e.from:match("^[^/]+//[^/]+"), e.to) end end
client:close()
]]):format(PIPELINE, run, PIPELINE, run), {
        CODEARTS_PIPELINE_REGION = "xx-lab-1", CODEARTS_PIPELINE_PROJECT_ID = PROJECT,
        CODEARTS_PIPELINE_TOKEN = TOKEN,
        HUAWEICLOUD_SDK_REGION_CODEARTSPIPELINE_XX_LAB_1 = dead .. "," .. sim.url })
      observe(out)
      lacks_all(out, CANARIES, "child output")
      local lines = {}
      for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.equal(table.concat({ "true", "nil", "RUNNING", sim.url }, "\t"), lines[1], out)
      assert.equal(table.concat({ "failover", dead, sim.url }, "\t"), lines[2], out)
      assert.is_nil(lines[3], out)
      assert.same({ "PUT", "GET" }, paths(sim:requests()))
    end)
  end)

  describe("core.sign with core.client():request", function()
    local function retry_url(run)
      return sim.url .. simulator.retry_path(run)
    end

    local function signed(method, url, date)
      local headers = { ["X-Project-Id"] = IAM_PROJECT, Accept = "application/json" }
      for name, value in pairs(core.sign(method, url, headers, nil, AK, SK, date)) do headers[name] = value end
      return headers
    end

    it("sends a request the simulator accepts", function()
      local run = sim:failed_run()
      local body, info = transport:request("PUT", retry_url(run), signed("PUT", retry_url(run)))
      assert.equal(200, info.status, body)
      assert.is_true(cjson.decode(body).success)
      assert.equal("RUNNING", sim:run_state(run).status)
    end)

    it("is refused (401) with a date 20 minutes old", function()
      local run = sim:failed_run()
      local date = os.date("!%Y%m%dT%H%M%SZ", os.time() - 20 * 60)
      local headers = signed("PUT", retry_url(run), date)
      assert.equal(date, headers["X-Sdk-Date"])
      local value, _, code, info = transport:request("PUT", retry_url(run), headers)
      assert.is_nil(value)
      assert.equal("auth", code)
      assert.equal(401, info.status)
      assert.equal("APIGW.0301", info.error_code)
      contains(info.error_msg, "signature expired")
      assert.equal("FAILED", sim:run_state(run).status)
    end)

    it("is refused (401) when a signed header is changed afterwards", function()
      local run = sim:failed_run()
      local headers = signed("PUT", retry_url(run))
      headers["X-Project-Id"] = OTHER_PROJECT
      local value, _, code, info = transport:request("PUT", retry_url(run), headers)
      assert.is_nil(value)
      assert.equal("auth", code)
      assert.equal(401, info.status)
      assert.equal("APIGW.0301", info.error_code)
      contains(info.error_msg, "verify aksk signature fail")
      assert.equal("FAILED", sim:run_state(run).status)
    end)
  end)

  --------------------------------------------------------------- IAM

  describe("IAM", function()
    it("never shows a password written into the IAM endpoint", function()
      local options = iam_options()
      options.endpoint = "https://user:" .. PASSWORD .. "@iam.example.com"
      local client, message, code = pipeline.new({ endpoint = sim.url, project_id = PROJECT, iam = options })
      assert.is_nil(client)
      assert.equal("config", code)
      assert.matches("IAM endpoint https://%*%*%*@iam.example.com must not hold", message)
      lacks(message, PASSWORD)
    end)

    it("gets its token inside concurrent calls too, once, through the multi handle", function()
      local client = new_client({ iam = iam_options() })
      local list = {}
      for i = 1, 6 do list[i] = { PIPELINE, sim:failed_run() } end
      local results = client:retry_many(list, { concurrency = 3 })
      client:close()
      for i = 1, 6 do assert.is_true(results[i].ok, results[i].message) end
      -- the first job fetches it while the others wait for that fetch
      assert.equal(1, #iam_requests(sim:requests()))
      assert.equal(6, #simulator.matching(sim:requests(), "PUT", "/retry"))
    end)

    it("gets a token by password, scoped to the project, and sends it", function()
      local client, events = new_client({ iam = iam_options() })
      local run = sim:failed_run()
      assert.is_true(client:retry(PIPELINE, run))
      client:close()
      assert.equal("RUNNING", sim:run_state(run).status)
      local requests = sim:requests()
      assert.same({ "iam", "PUT" }, paths(requests))
      local iam = requests[1]
      assert.equal("POST", iam.method)
      assert.equal("application/json;charset=utf8", iam.headers["content-type"])
      local body = cjson.decode(iam.body).auth
      assert.same({ "password" }, body.identity.methods)
      assert.equal(USER, body.identity.password.user.name)
      assert.equal(PASSWORD, body.identity.password.user.password)
      assert.equal(DOMAIN, body.identity.password.user.domain.name)
      assert.equal("cn-north-4", body.scope.project.name)
      assert.is_nil(body.scope.project.id)
      assert.equal("nocatalog=true", iam.query)
      -- a token sign-in sends no X-Project-Id, to IAM or to the service
      assert.is_nil(iam.headers["x-project-id"])
      assert.is_nil(requests[2].headers["x-project-id"])
      local token = requests[2].headers["x-auth-token"]
      assert.matches("^MIIsim", token)
      issued_tokens[#issued_tokens + 1] = token
      -- events: the IAM request, the token (without its value), the call
      local types = {}
      for _, event in ipairs(events) do types[#types + 1] = event.type .. ":" .. event.op end
      assert.same({ "request:retry: IAM token", "response:retry: IAM token", "token:retry", "request:retry",
        "response:retry" }, types)
      assert.equal("iam", events[3].kind)
      assert.is_true(math.abs(events[3].expires_at - (os.time() + 86400)) < 5)
      assert.equal("***", events[4].headers["X-Auth-Token"])
      events_clean(events)
    end)

    it("scopes the token by project id, or to the domain, as the SDKs can", function()
      local scopes = {
        { { project_id = IAM_PROJECT }, { project = { id = IAM_PROJECT } } },
        { { project_id = IAM_PROJECT, project = REGION }, { project = { id = IAM_PROJECT, name = REGION } } },
        { { scope = "domain" }, { domain = { name = DOMAIN } } },
      }
      for _, case in ipairs(scopes) do
        sim:clear_requests()
        local options = { user = USER, password = PASSWORD, domain = DOMAIN, endpoint = sim.url }
        for k, v in pairs(case[1]) do options[k] = v end
        local client = new_client({ iam = options })
        local run = sim:failed_run()
        assert.is_true(client:retry(PIPELINE, run))
        client:close()
        local iam = iam_requests(sim:requests())[1]
        assert.same(case[2], cjson.decode(iam.body).auth.scope)
        assert.equal("nocatalog=true", iam.query)
      end
    end)

    it("refuses an iam scope that is neither project nor domain, and one with nothing to scope to", function()
      assert.error_matches(function()
        pipeline.new({ endpoint = sim.url, iam = { user = USER, password = PASSWORD, domain = DOMAIN, scope = "x" } })
      end, "iam.scope")
      local client, message, code = pipeline.new({ endpoint = sim.url,
        iam = { user = USER, password = PASSWORD, domain = DOMAIN } })
      assert.is_nil(client)
      assert.equal("config", code)
      contains(message, "iam needs a scope")
      lacks(message, PASSWORD)
    end)

    it("caches the token: many calls, one IAM request", function()
      local client, events = new_client({ iam = iam_options() })
      local run = sim:failed_run()
      assert.is_true(client:retry(PIPELINE, run))
      for _ = 1, 4 do assert.is_table(client:detail(PIPELINE, run)) end
      assert.is_table(client:runs(PIPELINE))
      client:close()
      local requests = sim:requests()
      assert.equal(1, #iam_requests(requests))
      local api = api_requests(requests)
      assert.equal(6, #api)
      for _, r in ipairs(api) do assert.equal(api[1].headers["x-auth-token"], r.headers["x-auth-token"]) end
      events_clean(events)
    end)

    it("refreshes the token shortly before it expires, without a 401", function()
      sim:control("POST", "iam/users", { token_ttl = 2 })
      sim:failed_run()
      local client, events = new_client({ iam = iam_options() })
      local started = core.monotonic()
      assert.is_table(client:runs(PIPELINE))
      assert.is_table(client:runs(PIPELINE))
      assert.equal(1, #iam_requests(sim:requests()))
      -- call until the client fetches a new token; the first lives 2 s and
      -- is replaced in its last tenth (0.2 s)
      core.sleep(math.max(0, started + 1.5 - core.monotonic()))
      local tokens = 1
      while tokens == 1 and core.monotonic() < started + 4 do
        assert.is_table(client:runs(PIPELINE))
        tokens = #iam_requests(sim:requests())
        if tokens == 1 then core.sleep(0.04) end
      end
      client:close()
      local requests = sim:requests()
      local iam = iam_requests(requests)
      assert.equal(2, #iam)
      local first_expiry
      for _, event in ipairs(events) do
        if event.type == "token" then first_expiry = first_expiry or event.expires_at end
        if event.type == "response" then assert.equal(event.op:find("IAM token", 1, true) and 201 or 200, event.status) end
      end
      -- fetched again before the first expired, and not long before
      assert.is_true(iam[2].time < first_expiry, "the token was replaced after it expired")
      assert.is_true(iam[2].time > iam[1].time + 1.5, "the token was replaced too early")
      -- after the new token arrived, the call used it
      local last = requests[#requests]
      assert.equal(requests[#requests - 1].path, IAM_PATH)
      assert.are_not.equal(requests[2].headers["x-auth-token"], last.headers["x-auth-token"])
      events_clean(events)
    end)

    it("survives its token expiring mid-script: after the 401 it gets a new one and repeats the call once", function()
      local client, events = new_client({ iam = iam_options() })
      local run = sim:failed_run()
      assert.is_table(client:detail(PIPELINE, run))
      sim:control("POST", "tokens/expire")
      assert.is_true(client:retry(PIPELINE, run))
      client:close()
      local state = sim:run_state(run)
      assert.equal("RUNNING", state.status)
      assert.equal(1, state.retries)
      local requests = sim:requests()
      assert.same({ "iam", "GET", "PUT", "iam", "PUT" }, paths(requests))
      assert.equal(requests[2].headers["x-auth-token"], requests[3].headers["x-auth-token"])
      assert.are_not.equal(requests[3].headers["x-auth-token"], requests[5].headers["x-auth-token"])
      local statuses = {}
      for _, event in ipairs(events) do
        if event.type == "response" and event.op == "retry" then statuses[#statuses + 1] = event.status end
      end
      assert.same({ 401, 200 }, statuses)
      events_clean(events)
    end)

    it("repeats only once: a second 401 is reported as code auth", function()
      local client, events = new_client({ iam = iam_options() })
      sim:fault({ kind = "unauthorized", path = "/retry", times = 0 })
      local run = sim:failed_run()
      local _, info = failure("auth", client:retry(PIPELINE, run))
      client:close()
      assert.equal(401, info.status)
      assert.equal(2, info.attempts)
      assert.same({ "iam", "PUT", "iam", "PUT" }, paths(sim:requests()))
      assert.equal("FAILED", sim:run_state(run).status)
      events_clean(events)
    end)

    it("reports IAM's refusal (wrong password) as code auth with IAM's message, without the password", function()
      local client, events = new_client({ iam = iam_options(WRONG_PASSWORD) })
      local message, info = failure("auth", client:retry(PIPELINE, sim:failed_run()))
      client:close()
      assert.equal(401, info.status)
      contains(message, "IAM")
      contains(message, "The username or password is wrong.")
      assert.same({ "iam" }, paths(sim:requests()))
      events_clean(events)
    end)
  end)

  --------------------------------------------------------------- token functions

  describe("a token function", function()
    it("is called once while its token is valid, again when it expires, again after a 401", function()
      set_tokens(PROVIDED)
      sim:failed_run()
      local calls = 0
      local expiry
      local client, events = new_client({ token = function()
        calls = calls + 1
        -- the first token lives 2 s; the others an hour
        local expires_at = os.time() + (calls == 1 and 2 or 3600)
        expiry = expiry or expires_at
        return PROVIDED[calls], expires_at
      end })
      for _ = 1, 3 do assert.is_table(client:runs(PIPELINE)) end
      assert.equal(1, calls)

      while os.time() < expiry do core.sleep(0.05) end
      assert.is_table(client:runs(PIPELINE))
      assert.equal(2, calls)
      assert.equal(4, #sim:requests())

      set_tokens({ PROVIDED[1], PROVIDED[3] }) -- the second is revoked early
      assert.is_table(client:runs(PIPELINE))
      assert.equal(3, calls)
      client:close()

      local sent = {}
      for _, r in ipairs(sim:requests()) do sent[#sent + 1] = r.headers["x-auth-token"] end
      assert.same({ PROVIDED[1], PROVIDED[1], PROVIDED[1], PROVIDED[2], PROVIDED[2], PROVIDED[3] }, sent)
      local token_events = 0
      for _, event in ipairs(events) do
        if event.type == "token" then
          token_events = token_events + 1
          assert.equal("token function", event.kind)
        end
      end
      assert.equal(3, token_events)
      events_clean(events)
    end)

    it("raising an error gives code auth, without the secret it quotes", function()
      set_tokens(PROVIDED)
      sim:failed_run()
      local calls = 0
      local client, events = new_client({ token = function()
        calls = calls + 1
        if calls == 1 then return PROVIDED[1], os.time() - 1 end -- expired at once: asked again next time
        error("vault refused " .. PROVIDED[1] .. " with " .. VAULT_SECRET)
      end })
      assert.is_table(client:runs(PIPELINE))
      local message, info = failure("auth", client:runs(PIPELINE))
      contains(message, "token function raised an error")
      contains(message, "_spec.lua:")
      assert.equal(1, info.attempts)
      -- an error value that is not a string
      local raising = new_client({ token = function() error({ secret = VAULT_SECRET }) end })
      failure("auth", raising:runs(PIPELINE))
      client:close()
      raising:close()
      assert.equal(1, #sim:requests())
      events_clean(events)
    end)

    it("returning nothing usable gives code auth, and nothing is sent", function()
      local answers = {
        function() end,
        function() return nil, os.time() + 60 end,
        function() return "" end,
        function() return 42 end,
        function() return { TOKEN } end,
        function() return TOKEN .. "\r\nX-Injected: 1" end,
        function() return TOKEN .. "\tx" end,
      }
      for _, answer in ipairs(answers) do
        local client, events = new_client({ token = answer })
        local message = failure("auth", client:retry(PIPELINE, sim:failed_run()))
        contains(message, "the token function returned no usable token")
        client:close()
        events_clean(events)
      end
      assert.equal(0, #sim:requests())
    end)
  end)

  --------------------------------------------------------------- pipeline.load

  describe("credential sources through pipeline.load (child processes)", function()
    -- The child loads a client (options: Lua source), retries a run and
    -- prints one line: OK <kind>, or FAIL <stage> <code> <message>, or RAISED.
    local CHILD = [=[
local pipeline = require "pipeline"
local ok, client, message, code = pcall(pipeline.load, %s)
if not ok then io.write("RAISED\t", tostring(client), "\n") return end
if not client then io.write("FAIL\tload\t", tostring(code), "\t", tostring(message), "\n") return end
local kind = client._auth.kind
local done, why, why_code = client:retry(%q, %q)
client:close()
if done then io.write("OK\t", kind, "\n") else io.write("FAIL\tretry\t", tostring(why_code), "\t", tostring(why), "\n") end
]=]

    local home

    before_each(function() home = support.test_dir() end)

    local function load_and_retry(vars, options, run)
      local out = run_child(CHILD:format(options or "nil", PIPELINE, run or sim:failed_run()), vars, home)
      observe(out)
      lacks_all(out, CANARIES, "child output")
      return support.fields(out), out
    end

    local function succeeded(kind, fields, out)
      assert.equal("OK", fields[1], out)
      assert.equal(kind, fields[2])
    end

    local function signed_by(ak, request)
      local a = parse_authorization(request.headers.authorization)
      assert.equal(ak, a.access)
      assert.is_true(a.signed["x-project-id"] and a.signed.host and a.signed["x-sdk-date"])
      assert.equal(IAM_PROJECT, request.headers["x-project-id"])
      assert.is_nil(request.headers["x-auth-token"])
    end

    it("signs with HUAWEICLOUD_SDK_AK/SK (endpoint and both project ids from the environment)", function()
      local run = sim:failed_run()
      succeeded("ak/sk", load_and_retry({ HUAWEICLOUD_SDK_AK = AK, HUAWEICLOUD_SDK_SK = SK,
        CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = PROJECT,
        HUAWEICLOUD_SDK_PROJECT_ID = IAM_PROJECT }, nil, run))
      local requests = sim:requests()
      assert.equal(1, #requests)
      signed_by(AK, requests[1])
      assert.equal("RUNNING", sim:run_state(run).status)
    end)

    it("as a new user: AK/SK from the environment and a CodeArts project id; the IAM project found by region", function()
      local run = sim:failed_run()
      succeeded("ak/sk", load_and_retry({ HUAWEICLOUD_SDK_AK = AK, HUAWEICLOUD_SDK_SK = SK,
        CODEARTS_PIPELINE_PROJECT_ID = PROJECT, CODEARTS_PIPELINE_REGION = REGION,
        HUAWEICLOUD_SDK_REGION_CODEARTSPIPELINE_CN_NORTH_4 = sim.url,
        HUAWEICLOUD_SDK_IAM_ENDPOINT = sim.url }, nil, run))
      local requests = sim:requests()
      assert.same({ "projects", "PUT" }, paths(requests))
      assert.equal(simulator.retry_path(run), requests[2].path)
      signed_by(AK, requests[2])
      assert.equal("RUNNING", sim:run_state(run).status)
    end)

    it("never takes HUAWEICLOUD_SDK_PROJECT_ID for the CodeArts project: a config failure naming what gives it", function()
      local fields = load_and_retry({ CODEARTS_PIPELINE_TOKEN = TOKEN, CODEARTS_PIPELINE_ENDPOINT = sim.url,
        HUAWEICLOUD_SDK_PROJECT_ID = PROJECT })
      assert.same({ "FAIL", "retry", "config" }, { fields[1], fields[2], fields[3] })
      contains(fields[4], "CodeArts project id")
      contains(fields[4], "CODEARTS_PIPELINE_PROJECT_ID")
      contains(fields[4], "--project")
      assert.equal(0, #sim:requests())
    end)

    it("signs with HUAWEICLOUD_SDK_SECURITY_TOKEN too", function()
      sim:control("POST", "credentials", { credentials = {
        { ak = TEMP_AK, sk = TEMP_SK, security_token = SECURITY_TOKEN } } })
      succeeded("ak/sk", load_and_retry({ HUAWEICLOUD_SDK_AK = TEMP_AK, HUAWEICLOUD_SDK_SK = TEMP_SK,
        HUAWEICLOUD_SDK_SECURITY_TOKEN = SECURITY_TOKEN, HUAWEICLOUD_SDK_PROJECT_ID = IAM_PROJECT,
        CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = PROJECT }))
      local r = sim:requests()[1]
      signed_by(TEMP_AK, r)
      assert.equal(SECURITY_TOKEN, r.headers["x-security-token"])
    end)

    it("signs with ~/.huaweicloud/credentials [basic]", function()
      support.write_file(home .. "/.huaweicloud/credentials", table.concat({
        "[other]", "ak = UNKNOWNAK", "sk = " .. WRONG_SK, "",
        "[basic]", "ak = " .. AK, "sk = " .. SK, "project_id = " .. IAM_PROJECT, "" }, "\n"))
      succeeded("ak/sk", load_and_retry({ CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = PROJECT }))
      signed_by(AK, sim:requests()[1])
    end)

    it("reads HUAWEICLOUD_SDK_CREDENTIALS_FILE instead of ~/.huaweicloud/credentials", function()
      support.write_file(home .. "/.huaweicloud/credentials", "[basic]\nak = UNKNOWNAK\nsk = " .. WRONG_SK .. "\n")
      local named = support.write_file(support.test_dir() .. "/creds.ini",
        "[basic]\nak = " .. AK .. "\nsk = " .. SK .. "\nproject_id = " .. IAM_PROJECT .. "\n")
      succeeded("ak/sk", load_and_retry({ HUAWEICLOUD_SDK_CREDENTIALS_FILE = named,
        CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = PROJECT }))
      signed_by(AK, sim:requests()[1])
    end)

    local function iam_profile_file(extra)
      return support.write_file(support.test_dir() .. "/config.lua", ([[
return { profiles = { ci = {
  endpoint = %q, project_id = %q, %s
  iam = { user = %q, password = %q, domain = %q, project = "cn-north-4", endpoint = %q },
} } }
]]):format(sim.url, PROJECT, extra or "", USER, PASSWORD, DOMAIN, sim.url))
    end

    it("gets an IAM token for a config profile with iam", function()
      local run = sim:failed_run()
      succeeded("iam", load_and_retry({ CODEARTS_PIPELINE_CONFIG = iam_profile_file(),
        CODEARTS_PIPELINE_PROFILE = "ci" }, nil, run))
      local requests = sim:requests()
      assert.same({ "iam", "PUT" }, paths(requests))
      assert.matches("^MIIsim", requests[2].headers["x-auth-token"])
      assert.equal("RUNNING", sim:run_state(run).status)
    end)

    it("takes CODEARTS_PIPELINE_TOKEN over the credentials file", function()
      support.write_file(home .. "/.huaweicloud/credentials", "[basic]\nak = " .. AK .. "\nsk = " .. SK .. "\n")
      succeeded("token", load_and_retry({ CODEARTS_PIPELINE_TOKEN = TOKEN,
        CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = PROJECT }))
      local r = sim:requests()[1]
      assert.equal(TOKEN, r.headers["x-auth-token"])
      assert.is_nil(r.headers.authorization)
    end)

    it("takes the options' ak/sk over CODEARTS_PIPELINE_TOKEN", function()
      succeeded("ak/sk", load_and_retry({ CODEARTS_PIPELINE_TOKEN = "not-a-registered-token",
        CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = PROJECT },
        ("{ ak = %q, sk = %q, iam_project_id = %q }"):format(AK, SK, IAM_PROJECT)))
      signed_by(AK, sim:requests()[1])
    end)

    it("takes HUAWEICLOUD_SDK_AK/SK over a profile's iam: no IAM request", function()
      succeeded("ak/sk", load_and_retry({ CODEARTS_PIPELINE_CONFIG = iam_profile_file(),
        CODEARTS_PIPELINE_PROFILE = "ci", HUAWEICLOUD_SDK_AK = AK, HUAWEICLOUD_SDK_SK = SK,
        HUAWEICLOUD_SDK_PROJECT_ID = IAM_PROJECT }))
      local requests = sim:requests()
      assert.same({ "PUT" }, paths(requests))
      signed_by(AK, requests[1])
    end)

    it("refuses two kinds at the same level with code config naming both, and sends nothing", function()
      local fields = load_and_retry({ CODEARTS_PIPELINE_CONFIG = iam_profile_file(
        ("ak = %q, sk = %q,"):format(AK, SK)), CODEARTS_PIPELINE_PROFILE = "ci" })
      assert.same("FAIL", fields[1])
      assert.equal("load", fields[2])
      assert.equal("config", fields[3])
      contains(fields[4], "ak/sk and iam")
      contains(fields[4], "profile 'ci'")

      fields = load_and_retry({ CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = PROJECT },
        ("{ token = %q, iam = { user = %q, password = %q, domain = %q, endpoint = %q, project = 'x' } }")
          :format(TOKEN, USER, PASSWORD, DOMAIN, sim.url))
      assert.same({ "FAIL", "load", "config" }, { fields[1], fields[2], fields[3] })
      contains(fields[4], "token and iam")
      assert.equal(0, #sim:requests())
    end)

    it("refuses a bad HUAWEICLOUD_SDK_AK with code config before sending", function()
      local fields = load_and_retry({ HUAWEICLOUD_SDK_AK = "AK WITH SPACES", HUAWEICLOUD_SDK_SK = SK,
        CODEARTS_PIPELINE_ENDPOINT = sim.url, CODEARTS_PIPELINE_PROJECT_ID = PROJECT })
      assert.same({ "FAIL", "load", "config" }, { fields[1], fields[2], fields[3] })
      contains(fields[4], "environment")
      contains(fields[4], "ak")
      assert.equal(0, #sim:requests())
    end)
  end)

  --------------------------------------------------------------- canaries

  describe("canary secrets", function()
    -- Every kind of credentials, succeeding and failing, with every message
    -- and event kept.
    local function scenarios()
      local seen = {}
      local function keep(...)
        local results = { ... }
        for i = 2, 4 do
          if results[i] ~= nil then seen[#seen + 1] = type(results[i]) == "table" and cjson.encode(results[i])
            or tostring(results[i]) end
        end
        return ...
      end
      local clients = {}
      local function client_with(options)
        local client, events = new_client(options)
        clients[#clients + 1] = { client = client, events = events }
        return client
      end
      sim:control("POST", "credentials", { credentials = { { ak = AK, sk = SK },
        { ak = TEMP_AK, sk = TEMP_SK, security_token = SECURITY_TOKEN } } })
      set_tokens({ TOKEN, PROVIDED[1] })
      local run = sim:failed_run()

      local c = client_with({ token = TOKEN })
      keep(c:retry(PIPELINE, run))
      keep(c:retry(PIPELINE, run)) -- refused: not FAILED any more (api)
      keep(client_with({ token = PROVIDED[2] }):retry(PIPELINE, sim:failed_run()))
      c = client_with({ ak = AK, sk = SK, retries = { max = 1 }, sleep = function() end })
      sim:fault({ kind = "throttled", times = 2 })
      keep(c:runs(PIPELINE))
      keep(client_with({ ak = AK, sk = WRONG_SK }):retry(PIPELINE, sim:failed_run()))
      keep(client_with({ ak = TEMP_AK, sk = TEMP_SK, security_token = SECURITY_TOKEN }):run(PIPELINE))
      keep(client_with({ ak = TEMP_AK, sk = TEMP_SK, security_token = WRONG_SECURITY_TOKEN }):run(PIPELINE))
      c = client_with({ iam = iam_options() })
      keep(c:detail(PIPELINE, run))
      sim:control("POST", "tokens/expire")
      keep(c:detail(PIPELINE, run))
      sim:fault({ kind = "unauthorized", times = 2 })
      keep(c:detail(PIPELINE, run))
      keep(client_with({ iam = iam_options(WRONG_PASSWORD) }):retry(PIPELINE, sim:failed_run()))
      local calls = 0
      c = client_with({ token = function()
        calls = calls + 1
        if calls == 1 then return PROVIDED[1], os.time() - 1 end
        error(PROVIDED[1] .. " " .. VAULT_SECRET .. " " .. PASSWORD)
      end })
      keep(c:detail(PIPELINE, run))
      keep(c:detail(PIPELINE, run))
      keep(client_with({ token = function() return nil end }):detail(PIPELINE, run))
      keep(client_with({ token = TOKEN, proxy = "http://user:" .. VAULT_SECRET .. "@127.0.0.1:1" })
        :detail(PIPELINE, run))
      for _, entry in ipairs(clients) do
        seen[#seen + 1] = cjson.encode(entry.events)
        seen[#seen + 1] = tostring(entry.client)
        entry.client:close()
      end
      return seen
    end

    it("never appear in messages, info or events, and only where due in the records", function()
      local seen = scenarios()
      assert.is_true(#seen > 20)
      local requests = sim:requests()
      assert.is_true(#requests > 10)
      records_clean(requests)
      for _, text in ipairs(seen) do
        observe(text)
        lacks_all(text, CANARIES, "observed text")
        lacks_all(text, issued_tokens, "observed text")
      end
      -- and nothing any earlier test of this file showed a user
      for _, text in ipairs(observed) do
        lacks_all(text, CANARIES, "observed text")
        lacks_all(text, issued_tokens, "observed text")
      end
    end)

    it("never appear in the output of a failing busted run", function()
      local dir = support.test_dir()
      local run = sim:failed_run()
      local spec = support.write_file(dir .. "/failing_spec.lua", ([==[
local pipeline = require "pipeline"
local cjson = require "cjson"
local URL, PROJECT, PIPELINE, RUN = %q, %q, %q, %q
local function client(options)
  local events = {}
  options.endpoint, options.project_id, options.retries = URL, PROJECT, false
  options.on_event = function(e) events[#events + 1] = e end
  return assert(pipeline.new(options)), events
end
describe("a failing scenario", function()
  it("with a wrong SK", function()
    local c, events = client({ ak = %q, sk = %q })
    local results = { c:retry(PIPELINE, RUN) }
    print(cjson.encode(events))
    assert.same({ true }, results)
  end)
  it("with a wrong IAM password", function()
    local c, events = client({ iam = { user = %q, password = %q, domain = %q, project = "p", endpoint = URL } })
    local ok, message, code, info = c:retry(PIPELINE, RUN)
    print(cjson.encode(events))
    assert.is_true(ok, message)
    assert.same({}, info)
  end)
  it("with a token function that raises", function()
    local c = client({ token = function() error("vault: " .. %q) end })
    local ok, message = c:retry(PIPELINE, RUN)
    error(message)
  end)
  it("with a refused token", function()
    local c = client({ token = %q })
    assert(c:retry(PIPELINE, RUN))
  end)
  it("with a token holding a line break", function()
    client({ token = %q .. "\r\n" })
  end)
end)
]==]):format(sim.url, PROJECT, PIPELINE, run, AK, WRONG_SK, USER, WRONG_PASSWORD, DOMAIN, VAULT_SECRET,
        PROVIDED[3], TOKEN))
      local out = support.capture(("cd %s && %s %s --cpath=%s -o plainTerminal %s"):format(support.quote(support.ROOT),
        support.quote(support.LUA), support.quote(BUSTED), support.quote(package.cpath), support.quote(spec)))
      observe(out)
      -- it did fail, and showed what went wrong
      contains(out, "0 successes /")
      contains(out, "APIGW.0301")
      contains(out, "The username or password is wrong.")
      contains(out, "token function raised an error")
      contains(out, "option 'token'")
      lacks_all(out, CANARIES, "busted output")
      local issued = {}
      for _, r in ipairs(sim:requests()) do issued[#issued + 1] = r.headers["x-auth-token"] end
      lacks_all(out, issued, "busted output")
    end)

    -- luassert dumps a client when a test fails on it (assert.is_nil(client)):
    -- the secrets live in closures, never in a field a dump shows.
    it("never appear in a dump of a client (luassert's table formatter)", function()
      for _, options in ipairs({ { ak = AK, sk = SK, security_token = SECURITY_TOKEN },
        { token = TOKEN, proxy = "http://user:" .. SK .. "@127.0.0.1:9" } }) do
        local client = new_client(options)
        local dump = require("luassert.state").format_argument(client)
        client:close()
        lacks_all(dump, CANARIES, "client dump")
      end
    end)
  end)
end)

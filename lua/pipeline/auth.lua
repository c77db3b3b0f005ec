--- Credentials: how a request is authenticated.  Each kind is an object with
-- `apply(client, op, method, url, headers, body)`, which adds its headers to
-- `headers` (or returns nil, message, code, info); `secrets`, a keeper
-- (redaction.keeper) of the strings that must never reach a message or an event;
-- and, for tokens, `invalidate()`, called after a 401 so the next attempt
-- fetches a fresh one.  Secrets live only in closures.
local core = require("pipeline.core")
local errors = require("pipeline.errors")
local redaction = require("pipeline.redaction")
local dates = require("pipeline.dates")
local regions = require("pipeline.regions")
local compat = require("pipeline.compat")

local pack, unpack = compat.pack, compat.unpack

local auth = {}

-- How often a job waiting for another's token fetch looks again (seconds).
local FETCH_WAIT = 0.005

--- Names of the headers whose values are secrets, lower-cased.
auth.SECRET_HEADERS = { ["x-auth-token"] = true, ["authorization"] = true, ["x-security-token"] = true,
  ["x-subject-token"] = true }

-- How long before its expiry a cached token is replaced: a minute, or a tenth
-- of its lifetime when that is shorter.
local function refresh_margin(lifetime)
  return math.min(60, math.max(0, lifetime) / 10)
end

-- One fetch at a time: concurrent jobs of one client share one fetch (of a
-- token, of the IAM project).  gate.wait(client) parks a job of client's
-- while another job is fetching (unless that job died of an error
-- meanwhile); gate.run(fetch, client, ...) fetches, marking the running job
-- as the one fetching.
local function gate()
  local fetching
  local self = {}
  function self.wait(client)
    while fetching and coroutine.status(fetching) ~= "dead" and client:_job() do
      client:_pause(FETCH_WAIT)
    end
  end
  function self.run(fetch, client, ...)
    fetching = client:_job() and coroutine.running() or nil
    local results = pack(fetch(client, ...))
    fetching = nil
    return unpack(results, 1, results.n)
  end
  return self
end

-- A token obtained by fetch(client, op) -> token, expires_at [, lifetime] |
-- nil, ...; cached until shortly before it expires.  expires_at is in epoch
-- seconds; lifetime, when known, is how long the token lives from the moment
-- fetch was called.  The refresh time is kept on the monotonic clock: os.time()
-- counts whole seconds (a short-lived token would be used up to a second too
-- long) and the wall clock may be changed meanwhile.
local function cached_token(kind, secrets, fetch)
  local self = { kind = kind, secrets = secrets }
  local token, refresh_at
  local one_fetch = gate()
  function self.apply(client, op, _, _, headers)
    one_fetch.wait(client)
    if token == nil or (refresh_at and core.monotonic() >= refresh_at) then
      local started = core.monotonic()
      local value, expiry, lifetime, info = one_fetch.run(fetch, client, op)
      if value == nil then return nil, expiry, lifetime, info end
      local expires_at = tonumber(expiry)
      lifetime = tonumber(lifetime)
      -- os.time() may be up to a second behind: count that second as gone
      if not lifetime and expires_at then lifetime = expires_at - os.time() - 1 end
      token, refresh_at = value, lifetime and started + lifetime - refresh_margin(lifetime)
      self.secrets.add(value)
      client:_emit({ type = "token", op = op, kind = kind, expires_at = expires_at })
    end
    headers["X-Auth-Token"] = token
    return true
  end
  function self.invalidate() token = nil end
  return self
end

local function token_auth(token)
  if type(token) == "string" then
    local secrets = redaction.keeper(token)
    return {
      kind = "token",
      secrets = secrets,
      -- the same on every request: a client can build its headers once
      -- (a function: a dump of the client shows no token)
      static_headers = function() return { ["X-Auth-Token"] = token } end,
      apply = function(_, _, _, _, headers)
        headers["X-Auth-Token"] = token
        return true
      end,
    }
  end
  -- A provider function: called when there is no token yet, when the one it
  -- gave last is about to expire, and after a 401.
  local secrets = redaction.keeper()
  return cached_token("token function", secrets, function(_, op)
    local ok, value, expiry = pcall(token)
    if not ok then
      -- Its text is arbitrary and may quote a secret the client never saw (a
      -- vault's answer, a command line): only where it was raised is shown.
      local where = type(value) == "string" and value:match("^([^\n]-:%d+): ")
      return errors.failure(op, "auth", "the token function raised an error"
        .. (where and (" at " .. where) or "") .. " (its text is not shown: it may hold a secret)", nil, secrets)
    end
    if core.token_problem(value) then
      return errors.failure(op, "auth", "the token function returned no usable token")
    end
    return value, expiry
  end)
end

--- A set of endpoints tried in order: a connection that cannot be made moves
-- the set on to the next one, which is then kept (as the official SDKs do).
function auth.endpoint_set(urls)
  local set = { urls = {}, index = 1 }
  for i, url in ipairs(urls) do set.urls[i] = (url:gsub("/+$", "")) end
  return set
end

--- The IAM endpoints of resolved client options: iam.endpoint, the
-- iam_endpoint option, HUAWEICLOUD_SDK_IAM_ENDPOINT, the region's own IAM
-- host, or the global one; or nil and a message.
function auth.iam_endpoints(options)
  local iam = type(options.iam) == "table" and options.iam or {}
  local urls = regions.endpoint_list(iam.endpoint) or regions.endpoint_list(options.iam_endpoint)
    or regions.iam_endpoints_of(options.region)
  for _, url in ipairs(urls) do
    local ok, refusal = core.check_url(url, options.allow_http, true)
    if not ok then return nil, ("IAM endpoint %s %s"):format(redaction.shown_url(url), refusal) end
  end
  return auth.endpoint_set(urls)
end

local function url_encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end
auth.url_encode = url_encode

-- The IAM project named region, as the official SDKs find it when the
-- credentials do not name one: GET /v3/projects?name=<region> on IAM, signed
-- with the same AK/SK.  Exactly one project must come back.
local function find_iam_project(client, op, iam_endpoints, region)
  local what = op .. ": IAM project of region " .. region
  local json, info, code, failure_info = client:call({ op = what, method = "GET", endpoints = iam_endpoints,
    path = "v3/projects", query = "name=" .. url_encode(region), expect = "json", idempotent = true,
    iam = true })
  if json == nil then return nil, info, code, failure_info end
  local projects = json.projects
  if type(projects) ~= "table" then
    return errors.failure(what, "protocol", "IAM answered without a projects list",
      { status = info.status, request_id = info.request_id, attempts = info.attempts })
  end
  local how = "set iam_project_id (or HUAWEICLOUD_SDK_PROJECT_ID, or project_id in the credentials file)"
  if #projects == 0 then
    return errors.failure(what, "config", ("IAM has no project named %q for this AK: check the region, or %s")
      :format(region, how), { status = info.status, request_id = info.request_id, attempts = info.attempts })
  end
  local ids = {}
  for i, project in ipairs(projects) do
    local id = type(project) == "table" and project.id
    if type(id) ~= "string" or not id:find("^%w+$") then
      return errors.failure(what, "protocol", "IAM answered with a project without a usable id",
        { status = info.status, request_id = info.request_id, attempts = info.attempts })
    end
    ids[i] = id
  end
  if #ids > 1 then
    return errors.failure(what, "config", ("IAM has several projects named %q (%s): %s to the one to use")
      :format(region, table.concat(ids, ", "), how), { status = info.status, request_id = info.request_id, attempts = info.attempts })
  end
  client:_emit({ type = "iam_project", op = op, region = region, iam_project_id = ids[1] })
  return ids[1]
end

-- AK/SK signing (SDK-HMAC-SHA256), anew for every attempt with a fresh date.
-- Requests to the service carry the IAM project of the region as
-- X-Project-Id (signed with the other headers): the one given, else the one
-- IAM names for the region, looked up once per client; with neither (no
-- region), none.  Requests to IAM itself carry none.
local function aksk_auth(options)
  local ak, sk, security_token = options.ak, options.sk, options.security_token
  local project, region = options.iam_project_id, options.region
  local iam_endpoints, why
  if project == nil and region ~= nil then
    iam_endpoints, why = auth.iam_endpoints(options)
    if not iam_endpoints then return nil, why end
  end
  local one_lookup = gate()
  return {
    kind = "ak/sk",
    secrets = redaction.keeper(sk, security_token),
    apply = function(client, op, method, url, headers, body, to_iam)
      if not to_iam and project == nil and iam_endpoints then
        one_lookup.wait(client)
        if project == nil then
          local found, message, code, info = one_lookup.run(find_iam_project, client, op, iam_endpoints, region)
          if found == nil then return nil, message, code, info end
          project = found
        end
      end
      if project and not to_iam then headers["X-Project-Id"] = project end
      if security_token then headers["X-Security-Token"] = security_token end
      for name, value in pairs(core.sign(method, url, headers, body, ak, sk)) do
        headers[name] = value
      end
      return true
    end,
  }
end

-- An IAM user's token: POST /v3/auth/tokens?nocatalog=true with the password
-- method, scoped to a project (by name: iam.project or the region; or by id:
-- iam.project_id) or, with iam.scope = "domain", to the domain.  The token is
-- the X-Subject-Token header.
local function iam_auth(options)
  local iam, region = options.iam, options.region
  if not (iam.user and iam.password and iam.domain) then
    return nil, "iam needs user, password and domain"
  end
  local scope
  if iam.scope == "domain" then
    scope = { domain = { name = iam.domain } }
  elseif iam.project_id then
    scope = { project = { id = iam.project_id, name = iam.project } }
  elseif iam.project or region then
    scope = { project = { name = iam.project or region } }
  else
    return nil, "iam needs a scope: iam.project, iam.project_id, a region, or iam.scope = \"domain\""
  end
  local endpoints, why = auth.iam_endpoints(options)
  if not endpoints then return nil, why end
  local body = { auth = {
    identity = { methods = { "password" },
      password = { user = { name = iam.user, password = iam.password, domain = { name = iam.domain } } } },
    scope = scope,
  } }
  local secrets = redaction.keeper(iam.password)
  return cached_token("iam", secrets, function(client, op)
    local what = op .. ": IAM token"
    -- Through the client's own request path: events, repeats of what may be
    -- repeated (asking for a token again is harmless), and the scheduler's
    -- multi handle inside concurrent calls.
    local json, info, code, failure_info = client:call({ op = what, method = "POST", endpoints = endpoints,
      path = "v3/auth/tokens", query = "nocatalog=true", body = body,
      content_type = "application/json;charset=utf8", expect = "json", idempotent = true, anonymous = true })
    if json == nil then
      -- IAM's refusal of the user is an authentication failure, whatever its status.
      local status = failure_info.status
      -- (Throttling stays throttling.)
      if status and status >= 400 and status < 500 and code ~= "throttled" then code = "auth" end
      return nil, info, code, failure_info
    end
    local token = info.headers["x-subject-token"]
    if not token or core.token_problem(token) then
      return errors.failure(what, "protocol", "IAM answered without an X-Subject-Token header",
        { status = info.status, request_id = info.request_id }, secrets)
    end
    local expires_at = type(json.token) == "table" and dates.iso8601(json.token.expires_at)
    if not expires_at then return token, os.time() + 3600, 3600 end
    -- IAM's own issued_at gives the lifetime without trusting the local clock
    local issued_at = dates.iso8601(json.token.issued_at)
    return token, expires_at, issued_at and expires_at - issued_at
  end)
end

--- The credentials of resolved client options, or nil and a message.
function auth.new(options)
  if options.token ~= nil then return token_auth(options.token) end
  if options.ak ~= nil or options.sk ~= nil then
    if not (options.ak and options.sk) then return nil, "ak and sk must be given together" end
    return aksk_auth(options)
  end
  if options.iam ~= nil then return iam_auth(options) end
  return nil, "no credentials: give token, ak/sk or iam (options, CODEARTS_PIPELINE_TOKEN, "
    .. "HUAWEICLOUD_SDK_AK/SK, a config profile or ~/.huaweicloud/credentials)"
end

return auth

--- Credentials: how a request is authenticated.  Each kind is an object with
-- `apply(client, op, method, url, headers, body)`, which adds its headers to
-- `headers` (or returns nil, message, code, info); `secrets`, a keeper
-- (errors.keeper) of the strings that must never reach a message or an event;
-- and, for tokens, `invalidate()`, called after a 401 so the next attempt
-- fetches a fresh one.  Secrets live only in closures.
local core = require("pipeline.core")
local errors = require("pipeline.errors")
local clock = require("pipeline.clock")
local scheduler = require("pipeline.scheduler")

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

-- A token obtained by fetch(client, op) -> token, expires_at [, lifetime] |
-- nil, ...; cached until shortly before it expires.  expires_at is in epoch
-- seconds; lifetime, when known, is how long the token lives from the moment
-- fetch was called.  The refresh time is kept on the monotonic clock: os.time()
-- counts whole seconds (a short-lived token would be used up to a second too
-- long) and the wall clock may be changed meanwhile.
local function cached_token(kind, secrets, fetch)
  local self = { kind = kind, secrets = secrets }
  local token, refresh_at, fetching
  function self.apply(client, op, _, _, headers)
    -- Concurrent jobs of one client share one fetch: the others wait for the
    -- job fetching it (unless that job died of an error meanwhile).
    while fetching and coroutine.status(fetching) ~= "dead" and scheduler.current() do
      scheduler.sleep(FETCH_WAIT)
    end
    if token == nil or (refresh_at and core.monotonic() >= refresh_at) then
      local started = core.monotonic()
      fetching = scheduler.current() and coroutine.running() or nil
      local value, expiry, lifetime, info = fetch(client, op)
      fetching = nil
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
    local secrets = errors.keeper(token)
    return {
      kind = "token",
      secrets = secrets,
      apply = function(_, _, _, _, headers)
        headers["X-Auth-Token"] = token
        return true
      end,
    }
  end
  -- A provider function: called when there is no token yet, when the one it
  -- gave last is about to expire, and after a 401.
  local secrets = errors.keeper()
  return cached_token("token function", secrets, function(_, op)
    local ok, value, expiry = pcall(token)
    if not ok then
      -- Its text is arbitrary and may quote a secret the client never saw (a
      -- vault's answer, a command line): only where it was raised is shown.
      local where = type(value) == "string" and value:match("^([^\n]-:%d+): ")
      return errors.failure(op, "auth", "the token function raised an error"
        .. (where and (" at " .. where) or "") .. " (its text is not shown: it may hold a secret)", nil, secrets)
    end
    if type(value) ~= "string" or value == "" or not core.is_header_value(value) or value:find("\t", 1, true) then
      return errors.failure(op, "auth", "the token function returned no usable token")
    end
    return value, expiry
  end)
end

-- AK/SK signing (SDK-HMAC-SHA256), anew for every attempt with a fresh date.
local function aksk_auth(ak, sk, security_token, project_id)
  return {
    kind = "ak/sk",
    secrets = errors.keeper(sk, security_token),
    apply = function(_, _, method, url, headers, body)
      if project_id then headers["X-Project-Id"] = project_id end
      if security_token then headers["X-Security-Token"] = security_token end
      for name, value in pairs(core.sign(method, url, headers, body, ak, sk)) do
        headers[name] = value
      end
      return true
    end,
  }
end

--- The IAM endpoint for a region: HUAWEICLOUD_SDK_IAM_ENDPOINT, else
-- https://iam.<region>.myhuaweicloud.com.
function auth.iam_endpoint(region, getenv)
  local override = (getenv or os.getenv)("HUAWEICLOUD_SDK_IAM_ENDPOINT")
  if override and override ~= "" then return override end
  if region then return ("https://iam.%s.myhuaweicloud.com"):format(region) end
  return nil
end

-- An IAM user's token: POST /v3/auth/tokens with the password method,
-- scoped to a project (by name); the token is the X-Subject-Token header.
local function iam_auth(iam, region, allow_http)
  local endpoint = iam.endpoint or auth.iam_endpoint(region)
  local project = iam.project or region
  if not (iam.user and iam.password and iam.domain) then
    return nil, "iam needs user, password and domain"
  end
  if not endpoint then return nil, "iam needs an endpoint (iam.endpoint, HUAWEICLOUD_SDK_IAM_ENDPOINT or region)" end
  if not project then return nil, "iam needs a project name to scope the token (iam.project or region)" end
  local ok, refusal = core.check_url(endpoint, allow_http, true)
  if not ok then return nil, ("iam endpoint %s %s"):format(errors.shown_url(endpoint), refusal) end
  local url = endpoint:gsub("/+$", "") .. "/v3/auth/tokens"
  local body = { auth = {
    identity = { methods = { "password" },
      password = { user = { name = iam.user, password = iam.password, domain = { name = iam.domain } } } },
    scope = { project = { name = project } },
  } }
  local secrets = errors.keeper(iam.password)
  return cached_token("iam", secrets, function(client, op)
    local what = op .. ": IAM token"
    -- Through the client's own request path: events, repeats of what may be
    -- repeated (asking for a token again is harmless), and the scheduler's
    -- multi handle inside concurrent calls.
    local json, info, code, failure_info = client:call({ op = what, method = "POST", url = url, body = body,
      content_type = "application/json;charset=utf8", expect = "json", idempotent = true, anonymous = true })
    if json == nil then
      -- IAM's refusal of the user is an authentication failure, whatever its status.
      local status = failure_info.status
      -- (Throttling stays throttling.)
      if status and status >= 400 and status < 500 and code ~= "throttled" then code = "auth" end
      return nil, info, code, failure_info
    end
    local token = info.headers["x-subject-token"]
    if not token or token == "" or not core.is_header_value(token) then
      return errors.failure(what, "protocol", "IAM answered without an X-Subject-Token header",
        { status = info.status, request_id = info.request_id }, secrets)
    end
    local expires_at = type(json.token) == "table" and clock.iso8601(json.token.expires_at)
    if not expires_at then return token, os.time() + 3600, 3600 end
    -- IAM's own issued_at gives the lifetime without trusting the local clock
    local issued_at = clock.iso8601(json.token.issued_at)
    return token, expires_at, issued_at and expires_at - issued_at
  end)
end

--- The credentials of resolved client options, or nil and a message.
function auth.new(options)
  if options.token ~= nil then return token_auth(options.token) end
  if options.ak ~= nil or options.sk ~= nil then
    if not (options.ak and options.sk) then return nil, "ak and sk must be given together" end
    return aksk_auth(options.ak, options.sk, options.security_token, options.project_id)
  end
  if options.iam ~= nil then return iam_auth(options.iam, options.region, options.allow_http) end
  return nil, "no credentials: give token, ak/sk or iam (options, CODEARTS_PIPELINE_TOKEN, "
    .. "HUAWEICLOUD_SDK_AK/SK, a config profile or ~/.huaweicloud/credentials)"
end

return auth

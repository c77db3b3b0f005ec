--- Clients: one kept-alive transport, the credentials, and the operations,
-- each a few lines over one request function.
local core = require("pipeline.core")
local errors = require("pipeline.errors")
local config = require("pipeline.config")
local regions = require("pipeline.regions")
local auth = require("pipeline.auth")
local cjson = require("cjson.safe").new()

local client = {}

local Client = {}
Client.__index = Client

local TRANSPORT_OPTIONS = { "timeout", "connect_timeout", "max_response_size", "ca_file",
  "ca_path", "insecure", "proxy", "allow_http", "user_agent" }

local DEFAULT_RETRIES = { max = 3, base_delay = 0.5, max_delay = 30 }

local function fail(detail)
  return errors.failure("pipeline.new", "config", detail)
end

local function check_id(value, arg, name, fname)
  if not core.is_id(value) then
    error(("bad argument #%d to '%s' (%s must be 32 ASCII letters or digits, got %s)")
      :format(arg, fname, name, type(value) == "string" and ("%q"):format(value) or type(value)), 3)
  end
end
client.check_id = check_id

--- Builds a client from complete options (see config.CLIENT_OPTIONS).
-- Misuse raises; a missing endpoint, project or credentials returns
-- nil, message, "config", info.
function client.new(options, level)
  level = (level or 1) + 1
  config.check(options, config.CLIENT_OPTIONS, "pipeline.new", level)
  options = options or {}

  local endpoint = options.endpoint
  if endpoint == nil and options.region ~= nil then
    local why
    endpoint, why = regions.endpoint(options.region)
    if not endpoint then return fail(why) end
  end
  if endpoint == nil then
    return fail("no endpoint: set endpoint or region (in the options, CODEARTS_PIPELINE_ENDPOINT "
      .. "or CODEARTS_PIPELINE_REGION, or a config file profile)")
  end
  local ok, refusal = core.check_url(endpoint, options.allow_http)
  if not ok then return fail(("endpoint %s %s"):format(endpoint, refusal)) end
  if options.project_id == nil then
    return fail("no project_id: set project_id (in the options, CODEARTS_PIPELINE_PROJECT_ID, "
      .. "or a config file profile)")
  end
  local credentials, why = auth.new(options)
  if not credentials then return fail(why) end

  local transport_options = {}
  for _, name in ipairs(TRANSPORT_OPTIONS) do transport_options[name] = options[name] end
  local retries = options.retries
  if retries == false then
    retries = { max = 0, base_delay = 0, max_delay = 0 }
  else
    retries = retries or {}
    retries = {
      max = retries.max or DEFAULT_RETRIES.max,
      base_delay = retries.base_delay or DEFAULT_RETRIES.base_delay,
      max_delay = retries.max_delay or DEFAULT_RETRIES.max_delay,
    }
  end

  -- The credentials' own list, which grows as a token provider hands out
  -- new tokens, and a proxy password if the proxy URL holds one.
  local secrets = credentials.secrets
  local proxy_password = options.proxy and options.proxy:match("^%a[%w+.-]*://[^:/@]*:([^@/]*)@")
  if proxy_password then secrets[#secrets + 1] = proxy_password end

  return setmetatable({
    endpoint = endpoint:gsub("/+$", ""),
    project_id = options.project_id,
    _transport = core.client(transport_options),
    _auth = credentials,
    _secrets = secrets,
    _retries = retries,
    _on_event = options.on_event,
    _sleep = options.sleep or core.sleep,
  }, Client)
end

--------------------------------------------------------------- events

local function redacted_headers(headers)
  local copy = {}
  for name, value in pairs(headers) do
    copy[name] = auth.SECRET_HEADERS[name:lower()] and "***" or value
  end
  return copy
end

function Client:_emit(event)
  if self._on_event then self._on_event(event) end
end

--------------------------------------------------------------- retries

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
  Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Days since 1970-01-01 of a civil date (proleptic Gregorian calendar).
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- Seconds to wait from a Retry-After value: delay-seconds or an HTTP date.
function client.retry_after(value, now)
  if type(value) ~= "string" then return nil end
  local seconds = value:match("^%s*(%d+)%s*$")
  if seconds then return tonumber(seconds) end
  local d, mon, y, h, mi, s = value:match("^%a+, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not (d and MONTHS[mon]) then return nil end
  local at = days_from_civil(tonumber(y), MONTHS[mon], tonumber(d)) * 86400 + h * 3600 + mi * 60 + s
  return math.max(0, at - (now or os.time()))
end

-- How long to wait before attempt+1 of a failed request, or nil to give up.
-- Only answers that say "try later" (429, 503, throttling codes) and
-- failures that never reached the server are repeated here; a request that
-- may have been processed is not sent again.
function Client:_retry_delay(code, info, headers, attempt, idempotent, sent)
  if attempt > self._retries.max then return nil end
  local again = code == "throttled" or info.status == 503
    or ((code == "network" or code == "timeout") and (idempotent or not sent))
    or (idempotent and (info.status == 502 or info.status == 504))
  if not again then return nil end
  local retry_after = headers and client.retry_after(headers["retry-after"])
  local ceiling = math.min(self._retries.max_delay, self._retries.base_delay * 2 ^ (attempt - 1))
  local delay = retry_after or math.random() * ceiling -- full jitter
  return math.min(delay, self._retries.max_delay)
end

--------------------------------------------------------------- requests

--- One operation's request: builds the URL under /v5/{project_id}/api/,
-- authenticates each attempt anew, repeats what may be repeated, and settles
-- the answer by the error rule.  spec: op, method, path, query, body,
-- expect ("success" or "json"), idempotent.
function Client:call(spec)
  if not self._transport or self._transport:is_closed() then
    error(("%s: attempt to use a closed client"):format(spec.op), 3)
  end
  local url = ("%s/v5/%s/api/%s"):format(self.endpoint, self.project_id, spec.path)
  if spec.query and spec.query ~= "" then url = url .. "?" .. spec.query end
  local body = spec.body ~= nil and assert(cjson.encode(spec.body)) or nil
  local attempt = 0
  while true do
    attempt = attempt + 1
    local headers = { Accept = "application/json" }
    if body then headers["Content-Type"] = "application/json;charset=UTF-8" end
    local ok, message, code, info = self._auth.apply(spec.op, spec.method, url, headers, body)
    if not ok then
      info.attempts = attempt
      return nil, message, code, info
    end
    self:_emit({ type = "request", op = spec.op, method = spec.method, url = url,
      headers = redacted_headers(headers), attempt = attempt })
    local started = core.monotonic()
    local status, response, response_headers, sent =
      self._transport:request(spec.method, url, headers, body, not spec.idempotent)
    local result = table.pack(errors.settle(spec.op, spec.expect, self._secrets,
      status, response, response_headers, sent))
    local failed = result[1] == nil
    local failure_info = failed and result[4] or nil
    self:_emit({ type = "response", op = spec.op, method = spec.method, url = url,
      status = status, request_id = status and (response_headers["x-request-id"]) or nil,
      error = failed and result[2] or nil, code = failed and result[3] or nil,
      elapsed = core.monotonic() - started, attempt = attempt })
    if not failed then return table.unpack(result, 1, result.n) end
    failure_info.attempts = attempt
    if result[3] == "auth" and self._auth.invalidate then self._auth.invalidate() end
    local delay = self:_retry_delay(result[3], failure_info, status and response_headers,
      attempt, spec.idempotent, sent)
    if not delay then return table.unpack(result, 1, result.n) end
    self:_emit({ type = "retry", op = spec.op, method = spec.method, url = url,
      reason = result[3], status = status, delay = delay, attempt = attempt })
    self._sleep(delay)
  end
end

--------------------------------------------------------------- operations

--- Retries a pipeline run: true, or nil, message, code, info.
function Client:retry(pipeline_id, run_id)
  check_id(pipeline_id, 1, "pipeline_id", "retry")
  check_id(run_id, 2, "run_id", "retry")
  return self:call({
    op = "retry", method = "PUT", expect = "success",
    path = ("pipelines/%s/pipeline-runs/%s/retry"):format(pipeline_id, run_id),
  })
end

--- Releases the connections; the client cannot be used afterwards.  Safe to
-- call more than once.
function Client:close()
  if self._transport then self._transport:close() end
end

Client.__close = Client.close
Client.__gc = Client.close

function Client:__tostring()
  return ("pipeline client (%s, project %s%s)"):format(self.endpoint, self.project_id,
    self._transport:is_closed() and ", closed" or "")
end

client.Client = Client

return client

--- The error rule, in one place: every runtime failure of every operation is
-- `nil, message, code, info`.  `settle` turns what the transport returned into
-- the operation's result or that failure; the C core's retry() uses it too.
local cjson = require("cjson.safe").new()
local compat = require("pipeline.compat")

local errors = {}

-- Service error codes that mean "too many requests", whatever the HTTP status.
local THROTTLING_CODES = { ["APIGW.0308"] = true, ["COCT.0070003"] = true }

local WHAT = {
  network = "network error",
  timeout = "timed out",
  tls = "TLS error",
  auth = "authentication failed",
  not_found = "not found",
  throttled = "throttled",
  server = "server error",
  api = "refused by the service",
  protocol = "unexpected response",
  config = "configuration error",
  cancelled = "cancelled",
}

-- A signature of the SDK-HMAC-SHA256 scheme is as good as the key for the
-- request it signs (and tells about the key): hidden wherever it appears,
-- known secret or not.
local function without_signatures(text)
  return (text:gsub("(SDK%-HMAC%-SHA256.-Signature=)[%w%-_]+", "%1***"))
end

--- Replaces every secret in text with "***", and any SDK-HMAC-SHA256
-- signature.  secrets: a list of strings, or a keeper (errors.keeper).
function errors.redact(text, secrets)
  if type(text) ~= "string" then return text end
  if secrets and type(secrets.redact) == "function" then return secrets.redact(text) end
  for _, secret in ipairs(secrets or {}) do
    if type(secret) == "string" and #secret >= 4 then
      local from, to = text:find(secret, 1, true)
      while from do
        text = text:sub(1, from - 1) .. "***" .. text:sub(to + 1)
        from, to = text:find(secret, from + 3, true)
      end
    end
  end
  return without_signatures(text)
end

--- A copy of value (a string, or a table of them, deep: a decoded answer,
-- an event) with every secret redacted; other values as they are.
function errors.redact_all(value, secrets, depth)
  depth = depth or 0
  if type(value) == "string" then return errors.redact(value, secrets) end
  if type(value) ~= "table" or depth > 100 then return value end
  local copy = {}
  for k, v in pairs(value) do copy[errors.redact_all(k, secrets, depth + 1)] = errors.redact_all(v, secrets, depth + 1) end
  return setmetatable(copy, getmetatable(value))
end

--- What the server sent as a request id, as it may be shown: redacted, with
-- no control characters, and not too long.
function errors.request_id(value, secrets)
  if type(value) ~= "string" then return nil end
  value = errors.redact(value, secrets):gsub("%c", ""):sub(1, 200)
  if value == "" then return nil end
  return value
end

--- A URL as it may be shown: any user:password@ part hidden.
function errors.shown_url(url)
  return (tostring(url):gsub("^(%a[%w+.-]*://)[^/@]*@", "%1***@"))
end

--- A keeper of secrets: keeper.add(secret) and keeper.redact(text).  The
-- secrets live in a closure, so a dump of a client (a debugger, a test
-- framework printing a table) shows none of them.
function errors.keeper(...)
  local list = {}
  local keeper = {}
  function keeper.add(secret)
    if type(secret) ~= "string" or #secret < 4 then return end
    for _, known in ipairs(list) do
      if known == secret then return end
    end
    list[#list + 1] = secret
  end
  function keeper.redact(text) return errors.redact(text, list) end
  for i = 1, select("#", ...) do keeper.add((select(i, ...))) end
  return keeper
end

--- Builds the failure for operation op: nil, message, code, info.
-- detail is what went wrong in words; info holds what is known of the answer.
function errors.failure(op, code, detail, info, secrets)
  info = info or {}
  if info.retryable == nil then info.retryable = false end
  -- a configuration failure happens before anything is sent
  info.attempts = info.attempts or (code == "config" and 0 or 1)
  -- everything in info came from the answer: a server may echo a secret
  info.error_msg = errors.redact(info.error_msg, secrets)
  info.error_code = errors.redact(info.error_code, secrets)
  info.request_id = errors.request_id(info.request_id, secrets)
  local parts = { op .. ": " .. (detail or WHAT[code] or code) }
  if info.status then parts[#parts + 1] = "HTTP " .. info.status end
  if info.error_code then
    parts[#parts + 1] = info.error_code .. (info.error_msg and (" " .. info.error_msg) or "")
  elseif info.error_msg then
    parts[#parts + 1] = info.error_msg
  end
  local message = table.concat(parts, ", ")
  if info.request_id then message = message .. " (request id " .. info.request_id .. ")" end
  message = message:gsub("[%c]+", " ")
  return nil, errors.redact(message, secrets), code, info
end

local function code_for_status(status, error_code)
  if THROTTLING_CODES[error_code] or status == 429 then return "throttled" end
  if status == 401 or status == 403 then return "auth" end
  if status == 404 then return "not_found" end
  if status >= 500 then return "server" end
  return "api"
end

-- A field's text, or nil when it is absent, null or empty: some services
-- send "error_code": "" or null on success.
local function text_of(value)
  if type(value) ~= "string" and type(value) ~= "number" then return nil end
  value = tostring(value)
  if value == "" then return nil end
  return value
end

-- What the body says of an error, in the shapes the gateway, the service and
-- IAM use.
local function service_error(body)
  if type(body) ~= "table" then return nil, nil end
  local code, msg = text_of(body.error_code), text_of(body.error_msg)
  if code == nil and type(body.error) == "table" then
    -- IAM's shape: {"error": {"code": 401, "message": ..., "title": ...}},
    -- whose code only repeats the HTTP status
    code, msg = body.error.code, text_of(body.error.message) or text_of(body.error.title)
    code = type(code) ~= "number" and text_of(code) or nil
  end
  return code, msg
end

-- lua-cjson 2.1 decodes every number as a float; whole numbers (ids, counts,
-- epoch milliseconds) are turned into integers, as Lua 5.4 users expect.
local function integers(value, depth)
  if type(value) == "number" then return compat.tointeger(value) or value end
  if type(value) == "table" and depth < 1000 then
    for k, v in pairs(value) do
      if type(v) == "number" or type(v) == "table" then value[k] = integers(v, depth + 1) end
    end
  end
  return value
end

--- Decodes JSON text: the value, or nil and a message.
function errors.decode(text)
  local value, message = cjson.decode(text)
  if value == nil then return nil, message end
  return integers(value, 0)
end

local SUCCESS = '{"success":true}'

--- Turns a transport result into an operation result.
-- op: the operation's name, for messages; expect: "success" when a good answer
-- is `{"success": true}`, else "json" (the decoded body is returned);
-- secrets: strings to keep out of messages; then what client:request returned:
-- `status, body, headers` or `nil, kind, message, sent [, status, headers]`.
function errors.settle(op, expect, secrets, status, body, headers, sent, partial_status, partial_headers)
  if status == true then return true end -- the transport's plain {"success":true}
  if status == nil then
    local kind, message = body, headers
    return errors.failure(op, kind, WHAT[kind] .. ": " .. tostring(message),
      { retryable = kind ~= "config" and kind ~= "protocol" and kind ~= "tls" and not sent,
        status = partial_status, request_id = partial_headers and partial_headers["x-request-id"],
        attempts = kind ~= "config" and 1 or 0 }, secrets)
  end
  -- The answer nearly every retry and stop gets, settled without decoding
  -- it: the same result as the general path below.
  if expect == "success" and body == SUCCESS and status >= 200 and status < 300 then return true end
  headers = headers or {}
  local json = nil
  if body ~= nil and body:find("%S") then json = errors.decode(body) end
  local error_code, error_msg = service_error(json)
  local info = {
    status = status,
    error_code = error_code,
    error_msg = error_msg,
    request_id = errors.request_id(headers["x-request-id"]
      or (type(json) == "table" and type(json.request_id) == "string" and json.request_id) or nil, secrets),
  }

  if status >= 200 and status < 300 then
    if json == nil then
      return errors.failure(op, "protocol", "response is not JSON", info, secrets)
    end
    if type(json) == "table" and (type(json.error_code) == "table" or type(json.error_code) == "boolean") then
      return errors.failure(op, "protocol", "response has an error_code that is not text", info, secrets)
    end
    if error_code then
      local code = THROTTLING_CODES[error_code] and "throttled" or "api"
      info.retryable = code == "throttled"
      return errors.failure(op, code, WHAT[code], info, secrets)
    end
    if type(json) == "table" and json.success == false then
      return errors.failure(op, "api", "the service answered success = false", info, secrets)
    end
    if expect == "success" then
      if type(json) ~= "table" or json.success ~= true then
        return errors.failure(op, "protocol", "response has no \"success\": true", info, secrets)
      end
      return true
    end
    return json, info
  end
  if status >= 300 and status < 400 then
    local location = headers.location and (" to " .. headers.location) or ""
    return errors.failure(op, "protocol", "redirect" .. location .. " not followed", info, secrets)
  end
  if status < 200 then
    return errors.failure(op, "protocol", "unexpected informational answer", info, secrets)
  end
  local code = code_for_status(status, error_code)
  info.retryable = code == "throttled" or status == 503
  return errors.failure(op, code, WHAT[code], info, secrets)
end

errors.null = cjson.null

return errors

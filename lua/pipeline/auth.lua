--- Credentials: how a request is authenticated.  Each kind is an object with
-- `apply(method, url, headers, body)`, which adds its headers to `headers`
-- (or returns nil, message, code, info), and `secrets`, the strings that must
-- never reach a message or an event.
local core = require("pipeline.core")
local errors = require("pipeline.errors")

local auth = {}

-- A token given as a string, or by a function returning token, expires_at.
local function token_auth(token)
  local self = { kind = "token", secrets = {} }
  if type(token) == "string" then
    self.secrets[1] = token
    function self.apply(_, _, _, headers)
      headers["X-Auth-Token"] = token
      return true
    end
    return self
  end
  -- A provider is called when there is no token yet or the one it gave last
  -- expires within a minute; it may do I/O, so it is not called needlessly.
  local cached, expires_at
  function self.apply(op, _, _, headers)
    if cached == nil or (expires_at and os.time() >= expires_at - 60) then
      local ok, value, expiry = pcall(token)
      if not ok then
        return errors.failure(op, "auth", "the token function raised an error: "
          .. errors.redact(tostring(value), self.secrets))
      end
      if type(value) ~= "string" or value == "" or not core.is_header_value(value) then
        return errors.failure(op, "auth", "the token function returned no usable token")
      end
      cached, expires_at = value, tonumber(expiry)
      self.secrets[#self.secrets + 1] = value
    end
    headers["X-Auth-Token"] = cached
    return true
  end
  -- After a 401 the next call asks the provider again.
  function self.invalidate() cached = nil end
  return self
end

-- AK/SK signing (SDK-HMAC-SHA256), anew for every attempt with a fresh date.
local function aksk_auth(ak, sk, security_token, project_id)
  local self = { kind = "ak/sk", secrets = { sk, security_token } }
  function self.apply(_, method, url, headers, body)
    if project_id then headers["X-Project-Id"] = project_id end
    if security_token then headers["X-Security-Token"] = security_token end
    for name, value in pairs(core.sign(method, url, headers, body, ak, sk)) do
      headers[name] = value
    end
    return true
  end
  return self
end

--- The credentials of resolved client options, or nil and a message.
function auth.new(options)
  if options.token ~= nil then return token_auth(options.token) end
  if options.ak ~= nil or options.sk ~= nil then
    if not (options.ak and options.sk) then return nil, "ak and sk must be given together" end
    return aksk_auth(options.ak, options.sk, options.security_token, options.project_id)
  end
  if options.iam ~= nil then
    return nil, "iam credentials are not supported by this version"
  end
  return nil, "no credentials: give token, ak/sk or iam (options, CODEARTS_PIPELINE_TOKEN, "
    .. "HUAWEICLOUD_SDK_AK/SK, a config profile or ~/.huaweicloud/credentials)"
end

--- Names of the headers whose values are secrets, lower-cased.
auth.SECRET_HEADERS = { ["x-auth-token"] = true, ["authorization"] = true, ["x-security-token"] = true }

return auth

--- Secrets kept out of everything shown: keepers (the strings a client must
-- never show, in a closure) and the redaction of text, tables and URLs.  The
-- rule itself (the secrets, and any SDK-HMAC-SHA256 signature) is the C
-- core's, core.redact, which the transport's failures use too.
local core = require("pipeline.core")

local redaction = {}

-- keeper -> its list of secrets, out of the keeper's own fields (see
-- redaction.keeper); weak, so a keeper still goes with its client.
local keeper_lists = setmetatable({}, { __mode = "k" })

--- The list of strings secrets holds, as the C core takes it: a keeper's
-- (redaction.keeper), a list as it is, or nil.
function redaction.secret_list(secrets)
  if secrets == nil then return nil end
  return keeper_lists[secrets] or secrets
end

--- Replaces every secret in text with "***", and any SDK-HMAC-SHA256
-- signature.  secrets: a list of strings, or a keeper (redaction.keeper).
function redaction.redact(text, secrets)
  if type(text) ~= "string" then return text end
  return core.redact(text, redaction.secret_list(secrets))
end

--- A copy of value (a string, or a table of them, deep: a decoded answer,
-- an event) with every secret redacted; other values as they are.
function redaction.redact_all(value, secrets, depth)
  depth = depth or 0
  if type(value) == "string" then return redaction.redact(value, secrets) end
  if type(value) ~= "table" or depth > 100 then return value end
  local copy = {}
  for k, v in pairs(value) do copy[redaction.redact_all(k, secrets, depth + 1)] = redaction.redact_all(v, secrets, depth + 1) end
  return setmetatable(copy, getmetatable(value))
end

--- A URL as it may be shown: any user:password@ part hidden.
function redaction.shown_url(url)
  return (tostring(url):gsub("^(%a[%w+.-]*://)[^/@]*@", "%1***@"))
end

--- A keeper of secrets: keeper.add(secret) and keeper.redact(text).  The
-- secrets live in a closure, so a dump of a client (a debugger, a test
-- framework printing a table) shows none of them.
function redaction.keeper(...)
  local list = {}
  local keeper = {}
  function keeper.add(secret)
    if type(secret) ~= "string" or #secret < 4 then return end
    for _, known in ipairs(list) do
      if known == secret then return end
    end
    list[#list + 1] = secret
  end
  function keeper.redact(text) return core.redact(text, list) end
  keeper_lists[keeper] = list
  for i = 1, select("#", ...) do keeper.add((select(i, ...))) end
  return keeper
end

return redaction

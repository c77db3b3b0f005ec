--- The error rule, in one place: every runtime failure of every operation is
-- `nil, message, code, info`.  What an answer means, the message and the
-- redaction are the C core's (src/answer.c: core.answer, core.failure,
-- core.redact); this module gives them to the Lua side, keeps secrets, and
-- decodes JSON.
local cjson = require("cjson.safe").new()
local compat = require("pipeline.compat")
local core = require("pipeline.core")

local errors = {}

-- keeper -> its list of secrets, out of the keeper's own fields (see
-- errors.keeper); weak, so a keeper still goes with its client.
local keeper_lists = setmetatable({}, { __mode = "k" })

--- The list of strings secrets holds, as the C core takes it: a keeper's
-- (errors.keeper), a list as it is, or nil.
function errors.secret_list(secrets)
  if secrets == nil then return nil end
  return keeper_lists[secrets] or secrets
end

--- Replaces every secret in text with "***", and any SDK-HMAC-SHA256
-- signature.  secrets: a list of strings, or a keeper (errors.keeper).
function errors.redact(text, secrets)
  if type(text) ~= "string" then return text end
  return core.redact(text, errors.secret_list(secrets))
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
  function keeper.redact(text) return core.redact(text, list) end
  keeper_lists[keeper] = list
  for i = 1, select("#", ...) do keeper.add((select(i, ...))) end
  return keeper
end

--- Builds the failure for operation op: nil, message, code, info.
-- detail is what went wrong in words (nil: what code means); info holds
-- what is known of the answer, completed (retryable, attempts) and redacted.
function errors.failure(op, code, detail, info, secrets)
  return core.failure(op, code, detail, info, errors.secret_list(secrets))
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

errors.null = cjson.null

return errors

--- JSON answers as Lua values: lua-cjson's decoding, with whole numbers as
-- integers, and its null.
local cjson = require("cjson.safe").new()
local compat = require("pipeline.compat")

local json = {}

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
function json.decode(text)
  local value, message = cjson.decode(text)
  if value == nil then return nil, message end
  return integers(value, 0)
end

--- The value that stands for JSON's null.
json.null = cjson.null

return json

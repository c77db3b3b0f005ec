--- Option schemas, and the one check of a table against one.
--
-- A schema is one table per call, built by options.schema(specs [, noun]):
-- specs maps each name the call takes to what its value must be, either the
-- type(s) alone ("number", "string|function", "table|false") or a table:
--
--   type     the Lua type(s) it may have, "|" between them; "false" is the
--            value false, "any" anything
--   min, max  a number's range, both ends included
--   above     a number's lower bound, itself excluded
--   integer   a number must be whole
--   values    the values it may take (a list)
--   check     function(value) -> nil, or what the value must be (after its
--             type fits): a rule no field above says
--   expect    what the value must be, for messages, when the fields above
--             do not say it well ("a number of seconds from 0.001 to ...")
--   fields    a table's own specs (a nested schema: "retries.max")
--   items     the spec of each item of a list ("jobs[1]")
--   env, flag  what else sets a client option: the environment variable
--             pipeline.load reads, the command line's flag (documentation,
--             checked by tests/options_spec.lua)
--
-- From a schema come both checks: unknown keys, and values.  The messages
-- name the option and what was expected, never a string's value (it may be
-- a secret); misuse raises them as lauxlib's luaL_argerror does:
--   bad argument #3 to 'wait' (unknown option 'timout')
--   bad argument #1 to 'pipeline.new' (option 'timeout' must be a number of seconds ..., got 0)
-- noun names the keys: "option" (the default), "query field", "body field".
local options = {}

local Schema = {}
Schema.__index = Schema

local CONTAINER = { option = "options", ["query field"] = "query", ["body field"] = "body" }

local function normalize(spec)
  if type(spec) == "string" then spec = { type = spec } end
  local normal = {}
  for k, v in pairs(spec) do normal[k] = v end
  normal.types = {}
  for kind in normal.type:gmatch("[^|]+") do normal.types[#normal.types + 1] = kind end
  if normal.fields then normal.fields = options.schema(normal.fields).specs end
  if normal.items then normal.items = normalize(normal.items) end
  return normal
end

--- A schema from specs (see above); noun: what its keys are called.
function options.schema(specs, noun)
  noun = noun or "option"
  local schema = setmetatable({ specs = {}, noun = noun, container = CONTAINER[noun] or noun }, Schema)
  for name, spec in pairs(specs) do schema.specs[name] = normalize(spec) end
  return schema
end

--- A new schema: schema's specs and more's (more wins).
function options.extend(schema, more)
  local specs = {}
  for name, spec in pairs(schema.specs) do specs[name] = spec end
  for name, spec in pairs(more) do specs[name] = normalize(spec) end
  local extended = setmetatable({ specs = specs, noun = schema.noun, container = schema.container }, Schema)
  return extended
end

local ARTICLE = { number = "a number", string = "a string", table = "a table", boolean = "a boolean",
  ["function"] = "a function", ["false"] = "false", userdata = "a userdata", any = "any value" }

-- What a value of spec must be, in words.
local function expected(spec)
  if spec.expect then return spec.expect end
  if spec.values then
    local quoted = {}
    for i, v in ipairs(spec.values) do quoted[i] = ("%q"):format(v) end
    return table.concat(quoted, " or ")
  end
  if #spec.types == 1 and spec.types[1] == "number" then
    local noun = spec.integer and "a whole number" or "a number"
    if spec.min and spec.max then return ("%s from %s to %s"):format(noun, spec.min, spec.max) end
    if spec.min and spec.integer then return ("%s from %s"):format(noun, spec.min) end
    if spec.min then return ("%s not below %s"):format(noun, spec.min) end
    if spec.above then return ("%s above %s"):format(noun, spec.above) end
    return noun
  end
  local words = {}
  for i, kind in ipairs(spec.types) do words[i] = ARTICLE[kind] or kind end
  return table.concat(words, " or ")
end

local function type_fits(spec, value)
  local t = type(value)
  for _, kind in ipairs(spec.types) do
    if kind == t or kind == "any" or (kind == "false" and value == false) then return true end
  end
  return false
end

-- Whether a number fits spec's range.
local function in_range(spec, n)
  if n ~= n then return false end
  if spec.min and n < spec.min then return false end
  if spec.max and n > spec.max then return false end
  if spec.above and n <= spec.above then return false end
  if spec.integer and (n ~= math.floor(n) or n == math.huge or n == -math.huge) then return false end
  return true
end

--- The keys of t, sorted by their text: messages and listings in a stable order.
function options.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end
local sorted_keys = options.sorted_keys

local check_fields

-- What is wrong with value for spec (full name: name), or nil.
local function value_problem(spec, value, name, noun)
  local must = ("%s '%s' must be %s"):format(noun, name, expected(spec))
  if not type_fits(spec, value) then return ("%s, got %s"):format(must, type(value)) end
  if type(value) == "number" and not in_range(spec, value) then
    return ("%s, got %s"):format(must, tostring(value))
  end
  if spec.values then
    local found = false
    for _, v in ipairs(spec.values) do found = found or v == value end
    -- a string's value is not shown: it may be a secret
    if not found then return must end
  end
  if spec.check then
    local why = spec.check(value)
    if why then return ("%s '%s' %s"):format(noun, name, why) end
  end
  if type(value) == "table" and spec.fields then return check_fields(spec.fields, value, name .. ".", noun) end
  if type(value) == "table" and spec.items then
    for i, item in ipairs(value) do
      local why = value_problem(spec.items, item, ("%s[%d]"):format(name, i), noun)
      if why then return why end
    end
  end
  return nil
end

-- The first problem of t's keys and values against specs, in the keys'
-- order (so one table gives one message), or nil.  prefix: the enclosing
-- option's name and a dot, for a nested table.
function check_fields(specs, t, prefix, noun)
  for _, key in ipairs(sorted_keys(t)) do
    local spec = type(key) == "string" and specs[key]
    if not spec then return ("unknown %s '%s%s'"):format(noun, prefix, tostring(key)) end
    local why = value_problem(spec, t[key], prefix .. key, noun)
    if why then return why end
  end
  return nil
end

--- What is wrong with t (a table) for schema: a message naming the key
-- ("unknown option 'timout'", "option 'timeout' must be ..."), or nil.
function options.problem(schema, t)
  return check_fields(schema.specs, t, "", schema.noun)
end

--- The message of a misuse of argument arg of function fname, as lauxlib's
-- luaL_argerror makes it.
function options.argument_message(arg, fname, message)
  return ("bad argument #%d to '%s' (%s)"):format(arg, fname, message)
end

--- Raises, as luaL_argerror would, unless value (argument arg of fname,
-- called what in the message) is a table or nil.  level as for error() in
-- the function that calls this.
function options.check_table(value, arg, fname, what, level)
  if value ~= nil and type(value) ~= "table" then
    error(options.argument_message(arg, fname, ("%s must be a table, got %s"):format(what, type(value))),
      (level or 1) + 1)
  end
end

--- Checks t, argument arg of function fname, against schema; raises at
-- level (as for error() in the function that calls this; default 2: its
-- caller) when t is neither nil nor a table that fits.  Returns t, or an
-- empty table for nil.
function options.check(schema, t, arg, fname, level)
  level = (level or 2) + 1
  if t == nil then return {} end
  options.check_table(t, arg, fname, schema.container, level)
  local why = options.problem(schema, t)
  if why then error(options.argument_message(arg, fname, why), level) end
  return t
end

return options

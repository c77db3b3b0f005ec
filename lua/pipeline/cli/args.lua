--- The command line's arguments: splitting them into the command, its
-- positional arguments and options, and checking them against the command
-- table (cli/commands.lua), run page addresses included.  Every mistake
-- raises a Usage error (args.usage), which cli.main reports with exit 2.
local core = require("pipeline.core")
local commands = require("pipeline.cli.commands")

local args = {}

local GLOBAL_OPTIONS, COMMAND_OPTIONS, COMMAND = commands.GLOBAL_OPTIONS, commands.COMMAND_OPTIONS, commands.by_name
local RUN_STATUSES = commands.RUN_STATUSES

--- The metatable of a Usage error.
local Usage = {}
args.Usage = Usage

--- Raises a Usage error: message, and the command whose usage line goes with it.
function args.usage(message, command)
  error(setmetatable({ message = message, command = command }, Usage), 0)
end
local usage = args.usage

--- text for a message: quoted, and cut after 40 characters.
function args.quoted(text)
  if #text > 40 then text = text:sub(1, 40) .. "..." end
  return (("%q"):format(text):gsub("\\\n", "\\n"))
end
local quoted = args.quoted

-- A number from option text: decimal digits only (no hex, no exponent).
local function number_option(name, text, integer, minimum, command)
  local looks
  if integer then
    looks = text:match("^%d+$")
  else
    looks = text:match("^%d+%.?%d*$") or text:match("^%.%d+$")
  end
  local value = looks and tonumber(text)
  -- seconds go to libcurl as milliseconds: 2^31 - 1 of them at the most
  if value and not integer and value > 2147483 then value = nil end
  if not value or value < minimum then
    usage(("%s needs %s, got %s"):format(name, integer and ("a whole number of at least " .. minimum)
      or ("a number of seconds" .. (minimum > 0 and (" from " .. minimum .. " to 2147483") or "")), quoted(text)),
      command)
  end
  return value
end

-- Raises unless value is an id (core.is_id, the library's one test).
local function check_id(what, value, command)
  if not core.is_id(value) then
    usage(("%s must be 32 ASCII letters or digits, got %s"):format(what, quoted(value)), command)
  end
  return value
end

--- Whether value is the id of a part of a run (a job's, a step's): ASCII
-- letters and digits, of any length.
function args.is_part_id(value)
  return type(value) == "string" and value:find("^%w+$") ~= nil
end

------------------------------------------------------------------ run addresses

local ADDRESS_SHAPE = "https://devcloud.<region>.huaweicloud.com/cicd/project/<project id>/pipeline/detail/"
  .. "<pipeline id>/<run id>"

--- Reads a run's page address as people copy it from the browser:
-- {project_id, pipeline_id, run_id, region (nil for a host that names
-- none)}, or nil and what is wrong, with the shape expected.
function args.parse_address(text)
  local function wrong(why)
    return nil, ("cannot read the run's page address %s: %s; expected %s (ids of 32 ASCII letters or digits)")
      :format(quoted(text), why, ADDRESS_SHAPE)
  end
  local scheme, host, path, rest = text:match("^(%a[%w+.-]*)://([^/?#]*)([^?#]*)(.*)$")
  if not scheme then return wrong("not an address") end
  if scheme:lower() ~= "https" and scheme:lower() ~= "http" then return wrong("scheme " .. quoted(scheme)) end
  if host:find("@", 1, true) then return wrong("a user name in the address") end
  host = host:lower():gsub(":%d+$", "")
  local region
  local named = host:match("^devcloud%.(.+)%.huaweicloud%.com$")
  if named then
    if not named:find("^%l%l%-%l+%-%d+$") then
      return wrong(("host %s: %s is not a region id"):format(quoted(host), quoted(named)))
    end
    region = named
  elseif host:find("huaweicloud", 1, true) then
    return wrong(("host %s is not devcloud.<region>.huaweicloud.com"):format(quoted(host)))
  end
  if rest ~= "" and not rest:find("^[?#]") then return wrong("text after the path") end
  local segments = {}
  for segment in path:gmatch("[^/]+") do segments[#segments + 1] = segment end
  local project_at, detail_at
  for i, segment in ipairs(segments) do
    if segment == "project" then
      if project_at then return wrong("/project/ twice in the path") end
      project_at = i
    elseif segment == "pipeline" and segments[i + 1] == "detail" then
      if detail_at then return wrong("pipeline/detail/ twice in the path") end
      detail_at = i
    end
  end
  if not project_at or not core.is_id(segments[project_at + 1]) then
    return wrong("no /project/<project id>/ in the path")
  end
  if not detail_at or not (core.is_id(segments[detail_at + 2]) and core.is_id(segments[detail_at + 3])) then
    return wrong("no pipeline/detail/<pipeline id>/<run id> in the path")
  end
  if #segments > detail_at + 3 then return wrong("more path after the run id") end
  if project_at > detail_at then return wrong("the project after the run in the path") end
  return { project_id = segments[project_at + 1], pipeline_id = segments[detail_at + 2],
    run_id = segments[detail_at + 3], region = region }
end

-- Where a command takes PIPELINE RUN, a page address in the first place
-- stands for both: the ids replace it, the project and region go to
-- options.address for the client (cli/context.lua).
function args.expand_address(positional, options, command)
  local first = positional[1]
  if type(first) ~= "string" or not first:find("://", 1, true) then return end
  local address, why = args.parse_address(first)
  if not address then usage(why, command) end
  table.remove(positional, 1)
  table.insert(positional, 1, address.run_id)
  table.insert(positional, 1, address.pipeline_id)
  options.address = address
end

-- Raises unless value is one of the command's choices.
function args.check_choice(what, value, command)
  for _, choice in ipairs(command.choices) do
    if value == choice then return end
  end
  usage(("%s must be one of %s, got %s"):format(what, table.concat(command.choices, ", "), quoted(value)), command)
end

-- PIPELINE... of watch: ids, or --all instead.
function args.check_variadic(command, positional, options)
  if options.all and #positional > 0 then usage("give PIPELINE ids or --all, not both", command) end
  if not options.all and #positional == 0 then usage("missing PIPELINE (or --all)", command) end
  for _, id in ipairs(positional) do check_id("PIPELINE", id, command) end
end

------------------------------------------------------------------ parsing

--- Splits the words into the command, its positional arguments and the
-- options.  Options may come anywhere; "--" ends them.  Raises a Usage error.
function args.parse(words)
  local positional, options, given = {}, { vars = {}, jobs = {} }, {}
  local i, only_positional = 1, false
  while i <= #words do
    local word = words[i]
    if type(word) ~= "string" then usage("argument #" .. i .. " is not a string") end
    if not only_positional and word == "--" then
      only_positional = true
    elseif not only_positional and word:sub(1, 1) == "-" and word ~= "-" then
      local name, inline = word:match("^(%-%-[^=]+)=(.*)$")
      name = name or word
      local spec = GLOBAL_OPTIONS[name] or COMMAND_OPTIONS[name]
      if not spec then usage("unknown option " .. quoted(name), COMMAND[positional[1]]) end
      local value = true
      if spec.arg then
        value = inline
        if value == nil then
          i = i + 1
          value = words[i]
        end
        if type(value) ~= "string" then
          usage(("option %s needs a value (%s)"):format(name, spec.arg), COMMAND[positional[1]])
        end
      elseif inline then
        usage(("option %s takes no value"):format(name), COMMAND[positional[1]])
      end
      if spec.list then
        options[spec.key][#options[spec.key] + 1] = value
      elseif given[spec.key] and spec.arg then
        usage(("option %s given twice"):format(name), COMMAND[positional[1]])
      else
        options[spec.key] = value
      end
      given[spec.key] = name
    else
      positional[#positional + 1] = word
    end
    i = i + 1
  end
  local name = table.remove(positional, 1)
  return name, positional, options, given
end

--- Checks the command's arguments and options; returns the command.
function args.validate(name, positional, options, given)
  local command = COMMAND[name]
  if not command then usage(("unknown command %s"):format(quoted(name))) end
  local allowed = {}
  for _, option in ipairs(command.options) do allowed[COMMAND_OPTIONS[option].key] = true end
  for _, option in pairs(COMMAND_OPTIONS) do
    if given[option.key] and not allowed[option.key] then
      usage(("option %s does not apply to '%s'"):format(given[option.key], name), command)
    end
  end
  if command.args[2] == "RUN" then args.expand_address(positional, options, command) end
  for i, what in ipairs(command.variadic and {} or command.args) do
    if positional[i] == nil then usage("missing " .. what, command) end
    if command.choices then
      args.check_choice(what, positional[i], command)
    else
      check_id(what, positional[i], command)
    end
  end
  if command.variadic then
    args.check_variadic(command, positional, options)
  elseif #positional > #command.args then
    usage("unexpected argument " .. quoted(positional[#command.args + 1]), command)
  end
  if options.interval and allowed.wait and not options.wait then
    usage("--interval needs --wait", command)
  end
  if options.interval and allowed.follow and not options.follow then
    usage("--interval needs --follow", command)
  end
  if options.step and not args.is_part_id(options.step) then
    usage(("--step needs a step id (ASCII letters and digits), got %s"):format(quoted(options.step)), command)
  end
  if options.project then check_id("--project", options.project, command) end
  if options.timeout then options.timeout = number_option("--timeout", options.timeout, false, 0.001, command) end
  if options.interval then options.interval = number_option("--interval", options.interval, false, 0.001, command) end
  if options.limit then options.limit = number_option("--limit", options.limit, true, 1, command) end
  if options.attempts then options.attempts = number_option("--attempts", options.attempts, true, 1, command) end
  if options.status then
    local known, list = {}, {}
    for _, status in ipairs(RUN_STATUSES) do known[status] = true end
    for status in options.status:gmatch("[^,]+") do
      status = status:upper():match("^%s*(.-)%s*$")
      if not known[status] then
        usage(("--status: unknown status %s (one of %s)"):format(quoted(status), table.concat(RUN_STATUSES, ", ")),
          command)
      end
      list[#list + 1] = status
    end
    if #list == 0 then usage("--status needs at least one status", command) end
    options.status = list
  end
  local variables = {}
  for _, pair in ipairs(options.vars) do
    local var, value = pair:match("^([^=]+)=(.*)$")
    if not var then usage(("--var needs NAME=VALUE, got %s"):format(quoted(pair)), command) end
    variables[#variables + 1] = { name = var, value = value }
  end
  options.vars = variables
  return command
end

return args

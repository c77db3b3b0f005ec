--- Configuration: the client option schema, and the layers a client is built
-- from.  First found wins: options > environment (CODEARTS_PIPELINE_*, then
-- HUAWEICLOUD_SDK_*, then ~/.huaweicloud/credentials) > config file profile >
-- defaults.
local core = require("pipeline.core")
local errors = require("pipeline.errors")
local compat = require("pipeline.compat")

local option_schema = require("pipeline.options")

local config = {}

-- Values must also fit these rules, checked once their type is right, so a
-- bad one is refused where it is given, before anything is sent (the C core
-- or core.sign would otherwise raise later, from inside the library).  No
-- message shows the value: it may be a secret.
local function header_safe(value)
  return core.token_problem(value) == nil
end
local function secret_string(value)
  if type(value) == "string" and not header_safe(value) then
    return "must be a non-empty string without control characters"
  end
end
local function plain_string(value)
  if not core.is_header_value(value) then return "must not hold control characters" end
end
local function project_id(value)
  if not core.is_id(value) then return "must be 32 ASCII letters or digits" end
end
-- an IAM project id, as IAM gives them (32 hex digits; any length is taken)
local function iam_id(value)
  if not value:find("^%w+$") then return "must be a non-empty string of ASCII letters and digits" end
end
local function access_key(value)
  if value == "" or value:find("[^!-~]") or value:find(",", 1, true) then
    return "must be non-empty printable ASCII without spaces or commas"
  end
end
local function secret_key(value)
  if value == "" then return "must not be empty" end
end

-- seconds, as libcurl takes them (milliseconds from 1 to 2^31 - 1)
local SECONDS = { type = "number", min = 0.001, max = 2147483,
  expect = "a number of seconds from 0.001 to 2147483" }
local PLAIN_STRING = { type = "string", check = plain_string }

--- The client options (pipeline.new; pipeline.load and pipeline.retry add
-- profile and config_file).  Every one whose type is data is also a key of
-- a config file profile; env and flag say what else sets it (README,
-- "Configuration").
config.CLIENT_OPTIONS = option_schema.schema({
  endpoint = { type = "string", check = plain_string, env = "CODEARTS_PIPELINE_ENDPOINT", flag = "--endpoint" },
  region = { type = "string", env = "CODEARTS_PIPELINE_REGION", flag = "--region" },
  project_id = { type = "string", check = project_id, expect = "32 ASCII letters or digits",
    env = "CODEARTS_PIPELINE_PROJECT_ID", flag = "--project" },
  iam_project_id = { type = "string", check = iam_id, env = "HUAWEICLOUD_SDK_PROJECT_ID" },
  token = { type = "string|function", check = secret_string, env = "CODEARTS_PIPELINE_TOKEN" },
  ak = { type = "string", check = access_key, env = "HUAWEICLOUD_SDK_AK" },
  sk = { type = "string", check = secret_key, env = "HUAWEICLOUD_SDK_SK" },
  security_token = { type = "string", check = secret_string, env = "HUAWEICLOUD_SDK_SECURITY_TOKEN" },
  iam = { type = "table", fields = { user = "string", password = "string", domain = "string",
    project = "string", project_id = "string", scope = { type = "string", values = { "project", "domain" } },
    endpoint = "string" } },
  iam_endpoint = PLAIN_STRING,
  timeout = { type = "number", min = SECONDS.min, max = SECONDS.max, expect = SECONDS.expect, flag = "--timeout" },
  connect_timeout = SECONDS,
  max_response_size = { type = "number", integer = true, min = 1, max = 2147483647,
    expect = "a whole number of bytes from 1 to 2147483647" },
  retries = { type = "table|false", fields = { max = { type = "number", min = 0 },
    base_delay = { type = "number", min = 0 }, max_delay = { type = "number", min = 0 } } },
  ca_file = PLAIN_STRING, ca_path = PLAIN_STRING, proxy = PLAIN_STRING, user_agent = PLAIN_STRING,
  insecure = "boolean", allow_http = "boolean",
  rate = { type = "number", check = function(value)
    if not (value > 0 and value < math.huge) then return "must be a positive number of requests per second" end
  end },
  on_event = "function", sleep = "function",
})

--- pipeline.load's and pipeline.retry's: the client options, and where the
-- configuration layers are.
config.LOAD_OPTIONS = option_schema.extend(config.CLIENT_OPTIONS, {
  profile = { type = "string", env = "CODEARTS_PIPELINE_PROFILE", flag = "--profile" },
  config_file = { type = "string", env = "CODEARTS_PIPELINE_CONFIG", flag = "--config" },
  -- the environment to read instead of os.getenv (a host's, a test's)
  getenv = "function",
})

-- What a config file profile (or the environment) may hold: the data
-- options, and token_file.
local PROFILE_SPECS = { token_file = "string" }
for name, spec in pairs(config.CLIENT_OPTIONS.specs) do
  local data = {}
  for _, kind in ipairs(spec.types) do
    if kind ~= "function" then data[#data + 1] = kind end
  end
  if #data > 0 then
    local copy = {}
    for k, v in pairs(spec) do copy[k] = v end
    copy.type, copy.types = table.concat(data, "|"), nil
    PROFILE_SPECS[name] = copy
  end
end
local PROFILE_OPTIONS = option_schema.schema(PROFILE_SPECS)

local sorted_keys = option_schema.sorted_keys

--- What is wrong with t for schema (a pipeline.options schema, or its specs),
-- prefixed with what (where t comes from), or nil: a config file's problem
-- is a config failure, not misuse.
function config.problem(t, schema, what)
  if getmetatable(schema) == nil then schema = option_schema.schema(schema) end
  local why = option_schema.problem(schema, t)
  return why and ("%s: %s"):format(what, why)
end

--- Raises, as misuse of argument arg (default 1) of function fname, unless
-- options fit schema.  level as for error().
function config.check(t, schema, fname, level, arg)
  option_schema.check(schema, t, arg or 1, fname, level + 1)
end

------------------------------------------------------------------ files

local function expand_home(path, getenv)
  if path:sub(1, 2) == "~/" then
    local home = getenv("HOME")
    if home then return home .. path:sub(2) end
  end
  return path
end

--- The largest file a configuration reads (config file, token_file,
-- credentials file), in bytes.
config.MAX_FILE_SIZE = 1024 * 1024

-- Reads a regular file of at most MAX_FILE_SIZE bytes, never blocking (a
-- FIFO, /dev/zero or a folder is refused): text, or nil, message, kind
-- ("absent" when there is no such file).
local function read_file(path)
  return core.read_file(path, config.MAX_FILE_SIZE)
end

-- Refuses a file holding a secret that group or others may read or write
-- (a writer can put their own token or endpoint in), as ssh refuses such
-- keys.
local function private_enough(path, what)
  local mode = core.file_mode(path) or 0
  -- bits 040, 020 (group read, write) and 004, 002 (others), without 5.3's operators
  local group = math.floor(mode / 8) % 8
  local others = mode % 8
  if group >= 2 or others >= 2 then
    local how = (group >= 4 or others >= 4) and "readable" or "writable"
    return nil, ("%s %s holds a secret and is %s by group or others (mode %03o): run chmod 600 %s")
      :format(what, path, how, mode % 512, path)
  end
  return true
end

local SECRET_FIELDS = { "token", "sk", "security_token" }

--- The password of a proxy URL ("user:password@host:port", with or without
-- a scheme, as libcurl takes it), or nil.
function config.proxy_password(proxy)
  if type(proxy) ~= "string" then return nil end
  return proxy:match("^%a[%w+.-]*://[^:/@]*:([^@/]*)@") or proxy:match("^[^:/@]*:([^@/]*)@")
end

local function holds_secret(profile)
  for _, name in ipairs(SECRET_FIELDS) do
    if profile[name] ~= nil then return true end
  end
  -- a proxy URL with a password (user:password@host) is a secret too
  if config.proxy_password(profile.proxy) then return true end
  return type(profile.iam) == "table" and profile.iam.password ~= nil
end

--- The most profiles a config file may hold.
config.MAX_PROFILES = 1000

-- Runs a chunk of the main state with a budget of instructions, so a policy
-- with an endless loop fails instead of hanging the host.  (A config file
-- runs apart, in core.run_config's sandbox; a policy's function is called
-- in this state, so it is loaded here.)
local POLICY_INSTRUCTION_BUDGET = 10000000
local function run_bounded(chunk)
  local co = coroutine.create(chunk)
  debug.sethook(co, function() error("took too long (endless loop?)", 2) end, "", POLICY_INSTRUCTION_BUDGET)
  local ok, result = coroutine.resume(co)
  if ok and coroutine.status(co) ~= "dead" then return false, "must not yield" end
  return ok, result
end

--- Runs the Lua file path (what names it in messages: "policy file") as
-- text only, with env (default: empty) as its globals, under an instruction
-- budget, after the same file checks as a config file's.  Returns
-- true and what the chunk returns, or false when an optional file is
-- absent, or nil and a message naming the file and the stage that failed.
function config.run_file(path, what, required, env)
  local text, err = read_file(path)
  if not text then
    if not required and core.file_mode(path) == nil then return false end
    return nil, ("cannot read %s: %s"):format(what, tostring(err))
  end
  local chunk, syntax = compat.load(text, "@" .. path, env or {})
  if not chunk then
    -- Lua quotes the text it stopped at ("near '...'"), which may be a secret.
    return nil, ("%s %s: syntax error: %s"):format(what, path, (syntax:gsub("%s+near%s.*$", "")))
  end
  local ok, result = run_bounded(chunk)
  if not ok then return nil, ("%s %s: error while running it: %s"):format(what, path, tostring(result)) end
  return true, result
end

--- Calls fn(...) under the sandbox's instruction budget: true and its first
-- result, or false and the error.
function config.run_bounded(fn, ...)
  local args = compat.pack(...)
  return run_bounded(function() return fn(compat.unpack(args, 1, args.n)) end)
end

--- Loads a config file: a Lua chunk run as text in an empty environment,
-- returning `{ default_profile = "...", profiles = { name = {...} } }`.
-- Returns the table, or false when an optional file is absent, or nil and a
-- message naming the file and the stage that failed.
function config.read_file(path, required)
  local text, err, kind = read_file(path)
  if not text then
    if not required and kind == "absent" then return false end
    return nil, ("cannot read config file: %s"):format(tostring(err))
  end
  -- run in a sandbox of its own: no globals, no pattern matching, bounded
  -- memory, instructions and time (src/sandbox.c)
  local result, stage, message = core.run_config(text, "@" .. path)
  if result == nil and stage == "syntax" then
    -- Lua quotes the text it stopped at ("near '...'"), which may be a secret.
    return nil, ("config file %s: syntax error: %s"):format(path, (message:gsub("%s+near%s.*$", "")))
  end
  if result == nil and stage == "run" then
    return nil, ("config file %s: error while running it: %s"):format(path, message)
  end
  if type(result) ~= "table" then
    return nil, ("config file %s: must return a table (got %s)"):format(path, type(result))
  end
  local why = config.problem(result, { default_profile = "string", profiles = "table" }, "config file " .. path)
  if why then return nil, why end
  local secret = false
  local count = 0
  for _ in pairs(result.profiles or {}) do count = count + 1 end
  if count > config.MAX_PROFILES then
    return nil, ("config file %s: more than %d profiles"):format(path, config.MAX_PROFILES)
  end
  for _, name in ipairs(sorted_keys(result.profiles or {})) do
    local profile = result.profiles[name]
    local what = ("config file %s: profile '%s'"):format(path, tostring(name))
    if type(profile) ~= "table" then return nil, what .. " must be a table" end
    why = config.problem(profile, PROFILE_OPTIONS, what)
    if why then return nil, why end
    secret = secret or holds_secret(profile)
  end
  if secret then
    local ok_mode, refusal = private_enough(path, "config file")
    if not ok_mode then return nil, refusal end
  end
  return result
end

--- Parses the official SDKs' credentials file (INI); returns its [basic]
-- section as a table, or false when the file is absent, or nil and a message.
function config.read_credentials(path)
  local text, err, kind = read_file(path)
  if not text then
    -- one that cannot be opened is another tool's business, as before; one
    -- that is no regular file or too large is refused
    if kind == "absent" or kind == "open" then return false end
    return nil, ("cannot read credentials file: %s"):format(tostring(err))
  end
  local section, basic = nil, {}
  local number = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    number = number + 1
    line = line:gsub("\r$", ""):match("^%s*(.-)%s*$")
    if line ~= "" and not line:find("^[#;]") then
      local name = line:match("^%[%s*(.-)%s*%]$")
      if name then
        section = name
      else
        -- only [basic] is ours to judge: other tools' sections are theirs
        local key, value = line:match("^([^=]-)%s*=%s*(.*)$")
        if section == "basic" then
          if not key then
            return nil, ("credentials file %s: line %d is not 'key = value'"):format(path, number)
          end
          basic[key:lower()] = value
        end
      end
    end
  end
  return basic
end

------------------------------------------------------------------ layers

local CREDENTIAL_KINDS = {
  { name = "token", fields = { "token", "token_file" } },
  { name = "ak/sk", fields = { "ak", "sk", "security_token" } },
  { name = "iam", fields = { "iam" } },
}

local LOCATION_FIELDS = { "endpoint", "region" }
-- as sets, for the merge
local LOCATION, CREDENTIAL = {}, {}
for _, field in ipairs(LOCATION_FIELDS) do LOCATION[field] = true end
for _, kind in ipairs(CREDENTIAL_KINDS) do
  for _, field in ipairs(kind.fields) do CREDENTIAL[field] = true end
end

local function has_any(layer, fields)
  for _, field in ipairs(fields) do
    if layer[field] ~= nil then return true end
  end
  return false
end

--- The kind of credentials a layer gives ("token", "ak/sk", "iam" or nil),
-- or nil and a message when it gives two kinds or an incomplete pair.
-- where names the layer in that message.
function config.credential_kind(layer, where)
  local found
  for _, kind in ipairs(CREDENTIAL_KINDS) do
    if has_any(layer, kind.fields) then
      if found then
        return nil, ("%s: two kinds of credentials at once (%s and %s): give only one"):format(where, found, kind.name)
      end
      found = kind.name
    end
  end
  if found == "ak/sk" and (layer.ak == nil or layer.sk == nil) then
    local missing = layer.ak == nil and (layer.sk == nil and "ak and sk" or "ak") or "sk"
    return nil, ("%s: %s missing (ak and sk go together)"):format(where, missing)
  end
  return found
end

local function nonempty(value)
  if value ~= nil and value ~= "" then return value end
end

-- The environment, in the README's order: this project's variables, then
-- the official SDKs' (each a layer of its own: first found wins, so a
-- CODEARTS_PIPELINE_TOKEN beats HUAWEICLOUD_SDK_AK/SK set for other tools).
-- Each layer: its name, and option -> the variable that sets it.
local PROJECT_VARIABLES = { "environment (CODEARTS_PIPELINE_*)", endpoint = "CODEARTS_PIPELINE_ENDPOINT",
  region = "CODEARTS_PIPELINE_REGION", project_id = "CODEARTS_PIPELINE_PROJECT_ID",
  token = "CODEARTS_PIPELINE_TOKEN" }
local SDK_VARIABLES = { "environment (HUAWEICLOUD_SDK_*)",
  -- the IAM project of the region (X-Project-Id), never the CodeArts project
  iam_project_id = "HUAWEICLOUD_SDK_PROJECT_ID",
  ak = "HUAWEICLOUD_SDK_AK", sk = "HUAWEICLOUD_SDK_SK", security_token = "HUAWEICLOUD_SDK_SECURITY_TOKEN" }

local function environment_layer(variables, getenv)
  local layer = { _name = variables[1] }
  for option, variable in pairs(variables) do
    if option ~= 1 then layer[option] = nonempty(getenv(variable)) end
  end
  return layer
end

-- The SDKs' credentials file: its [basic] section as a layer, false when
-- there is none, or nil and a message.
local function credentials_file(getenv)
  local named = nonempty(getenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE"))
  local path = named or (nonempty(getenv("HOME")) and getenv("HOME") .. "/.huaweicloud/credentials")
  if not path then return false end
  local basic, err = config.read_credentials(path)
  if basic == nil then return nil, err end
  if basic == false then
    if named then
      return nil, ("cannot read credentials file %s (named by HUAWEICLOUD_SDK_CREDENTIALS_FILE)"):format(named)
    end
    return false
  end
  return {
    _name = "credentials file " .. path,
    ak = nonempty(basic.ak), sk = nonempty(basic.sk),
    security_token = nonempty(basic.security_token), iam_project_id = nonempty(basic.project_id),
  }
end

local function default_config_path(getenv)
  local base = nonempty(getenv("XDG_CONFIG_HOME"))
  if not base then
    local home = nonempty(getenv("HOME"))
    if not home then return nil end
    base = home .. "/.config"
  end
  return base .. "/codearts-pipeline/config.lua"
end

--- The profile names of the config file that resolve() would read (path:
-- the one asked for, else CODEARTS_PIPELINE_CONFIG, else the default), in
-- order; an empty list when there is no such file; or nil and a message.
function config.profile_names(path, getenv)
  getenv = getenv or os.getenv
  path = path or nonempty(getenv("CODEARTS_PIPELINE_CONFIG"))
  path = path and expand_home(path, getenv) or default_config_path(getenv)
  if not path then return {} end
  local file, err = config.read_file(path, false)
  if file == nil then return nil, err end
  return file and sorted_keys(file.profiles or {}) or {}
end

-- Reads a profile's token_file (relative to the config file's folder).
local function read_token_file(path, config_path, getenv)
  path = expand_home(path, getenv)
  if path:sub(1, 1) ~= "/" and config_path then
    path = (config_path:match("^(.*)/[^/]*$") or ".") .. "/" .. path
  end
  local text, err = read_file(path)
  if not text then return nil, ("cannot read token_file: %s"):format(tostring(err)) end
  local ok, refusal = private_enough(path, "token_file")
  if not ok then return nil, refusal end
  local token = text:match("^%s*(.-)%s*$")
  if token == "" then return nil, ("token_file %s is empty"):format(path) end
  -- the token rule of every other token (core.token_problem): a tab inside
  -- is refused here, as a config failure, not later by the client
  if core.token_problem(token) then
    return nil, ("token_file %s holds a control character inside the token"):format(path)
  end
  return token
end

--- Resolves the layers into one table of client options, or returns
-- nil, message, "config", info.  The environment is read through getenv,
-- else options.getenv, else os.getenv; op names the call in messages
-- (default "pipeline.load").
function config.resolve(options, getenv, op)
  options = options or {}
  getenv = getenv or options.getenv or os.getenv
  local function fail(detail) return errors.failure(op or "pipeline.load", "config", detail) end

  local path = options.config_file or nonempty(getenv("CODEARTS_PIPELINE_CONFIG"))
  local required = path ~= nil
  path = path and expand_home(path, getenv) or default_config_path(getenv)
  local file = false
  if path then
    local err
    file, err = config.read_file(path, required)
    if file == nil then return fail(err) end
  end

  local wanted = options.profile or nonempty(getenv("CODEARTS_PIPELINE_PROFILE"))
  local profile_name = wanted or (file and file.default_profile) or "default"
  local profile = file and file.profiles and file.profiles[profile_name]
  if not profile and (wanted or (file and file.default_profile)) then
    if file then
      return fail(("profile '%s' is not in config file %s"):format(profile_name, path))
    end
    return fail(("profile '%s' was asked for but there is no config file%s"):format(profile_name,
      path and (" (looked for " .. path .. ")") or " (neither HOME nor XDG_CONFIG_HOME is set)"))
  end

  local top = { _name = "options" }
  for name, value in pairs(options) do top[name] = value end
  top.getenv = nil -- how to read the environment, not a client option
  local copy = false
  if profile then
    copy = { _name = ("profile '%s' of %s"):format(profile_name, path) }
    for name, value in pairs(profile) do copy[name] = value end
  end
  -- options > environment (this project's, the SDKs', their credentials
  -- file) > config file profile.  The credentials file is read only when
  -- what it could give is still missing: credentials, or the IAM project of
  -- AK/SK credentials found before it.
  local merged = {}
  local layers = {
    function() return top end,
    function() return environment_layer(PROJECT_VARIABLES, getenv) end,
    function() return environment_layer(SDK_VARIABLES, getenv) end,
    function(credentials_done)
      if credentials_done and (merged.ak == nil or merged.iam_project_id ~= nil) then return false end
      return credentials_file(getenv)
    end,
    function() return copy end,
  }

  -- Where and who are each taken whole from the first layer that has them,
  -- so a token in the options is never mixed with an SK from a file.
  local location_done, credentials_done = false, false
  for _, make_layer in ipairs(layers) do
    local layer, layer_err = make_layer(credentials_done)
    if layer == nil then return fail(layer_err) end
    if not layer then layer = {} end
    -- Values from the environment or a file are checked here, as the
    -- options were when given: a bad one is a config failure naming its place.
    if layer ~= top then
      local values = {}
      for name, value in pairs(layer) do
        if name ~= "_name" then values[name] = value end
      end
      local why = config.problem(values, PROFILE_OPTIONS, layer._name)
      if why then return fail(why) end
    end
    local kind
    if not credentials_done then
      local why
      kind, why = config.credential_kind(layer, layer._name)
      if why then return fail(why) end
    end
    for name, value in pairs(layer) do
      if LOCATION[name] then
        if not location_done then merged[name] = value end
      elseif CREDENTIAL[name] then
        if not credentials_done then merged[name] = value end
      elseif merged[name] == nil and name ~= "_name" then
        merged[name] = value
      end
    end
    location_done = location_done or has_any(layer, LOCATION_FIELDS)
    credentials_done = credentials_done or kind ~= nil
  end

  if merged.token_file then
    local token, token_err = read_token_file(merged.token_file, path, getenv)
    if not token then return fail(token_err) end
    merged.token, merged.token_file = token, nil
  end
  merged.profile, merged.config_file = nil, nil
  if merged.project_id ~= nil and not core.is_id(merged.project_id) then
    return fail("project_id must be 32 ASCII letters or digits")
  end
  return merged
end

return config

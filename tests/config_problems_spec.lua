-- Specs for the misuse and configuration problems pipeline.new and
-- pipeline.load report, as data tables: each row is an options table (and,
-- for pipeline.load, an environment) -> how the call ends:
--   "raise":  misuse, a raised error (the options are wrong as written);
--   "config": nil, message, "config", info (nothing was sent);
--   "ok":     a client.
-- Messages are matched on fragments that name the option and the rule, not
-- on their whole wording.  pipeline.load reads its environment through
-- os.getenv: each row replaces it for the call with a table of its own, with
-- no HOME, so no file of the user is read.  Nothing is sent: building a
-- client does not connect.

local pipeline = require "pipeline"
local support = require "support"

local CANARY = "CANARY-secret-value-1234" -- a secret: never in a message
local E = "http://127.0.0.1:9"
local P = ("0"):rep(32)

-- Calls pipeline[entry](options) with os.getenv reading env only; returns
-- "raise", message or "config"/"ok", then what the call returned.
local function outcome(entry, options, env)
  local real_getenv = os.getenv
  os.getenv = function(name) return env[name] end -- luacheck: ignore 122
  local results = { pcall(pipeline[entry], options) }
  os.getenv = real_getenv -- luacheck: ignore 122
  local ok, client, message, code, info = results[1], results[2], results[3], results[4], results[5]
  if not ok then return "raise", tostring(client) end
  if client then
    client:close()
    return "ok"
  end
  assert.are.equal("config", code, "a failure other than config: " .. tostring(message))
  assert.is_table(info)
  return "config", message
end

-- Rows for both entry points: options -> kind, fragments of the message.
local OPTION_ROWS = {
  -- the options' shape: misuse
  { { timout = 1 }, "raise", { "unknown option", "timout" } },
  { { endpoint = E, token = "t", [1] = 2 }, "raise", { "unknown option", "1" } },
  { { endpoint = E, retries = { maxx = 1 } }, "raise", { "unknown option", "maxx" } },
  { { endpoint = E, iam = { usr = "u" } }, "raise", { "unknown option", "usr" } },
  { { endpoint = E, timeout = "1" }, "raise", { "timeout", "number" } },
  { { endpoint = E, project_id = 5 }, "raise", { "project_id", "32 ASCII letters or digits", "got number" } },
  { { endpoint = E, retries = true }, "raise", { "retries", "table" } },
  { { endpoint = E, token = "t", sleep = 3 }, "raise", { "sleep", "function" } },
  { { endpoint = E, on_event = "print" }, "raise", { "on_event", "function" } },
  -- values out of range: misuse
  { { endpoint = E, timeout = 0 }, "raise", { "timeout", "0.001" } },
  { { endpoint = E, timeout = 1e9 }, "raise", { "timeout", "2147483" } },
  { { endpoint = E, connect_timeout = -1 }, "raise", { "connect_timeout", "seconds" } },
  { { endpoint = E, rate = 0 }, "raise", { "rate", "positive" } },
  { { endpoint = E, rate = math.huge }, "raise", { "rate", "positive" } },
  { { endpoint = E, max_response_size = 1.5 }, "raise", { "max_response_size", "whole number" } },
  { { endpoint = E, max_response_size = 0 }, "raise", { "max_response_size", "whole number" } },
  { { endpoint = E, retries = { max = -1 } }, "raise", { "retries.max", "not below 0" } },
  { { endpoint = E, retries = { base_delay = 0 / 0 } }, "raise", { "retries.base_delay", "not below 0" } },
  { { endpoint = E, iam = { user = "u", scope = "x" } }, "raise", { "scope", "project", "domain" } },
  { { endpoint = E, project_id = "short" }, "raise", { "project_id", "32 ASCII letters or digits" } },
  { { endpoint = E, iam_project_id = "a-b" }, "raise", { "iam_project_id", "letters and digits" } },
  { { endpoint = E, user_agent = "a\nb" }, "raise", { "user_agent", "control characters" } },
  { { endpoint = E, ca_file = "a\0b" }, "raise", { "ca_file", "control characters" } },
  -- secrets: refused without being shown
  { { endpoint = E, token = CANARY .. "\tx" }, "raise", { "token", "control characters" } },
  { { endpoint = E, token = "" }, "raise", { "token", "non-empty" } },
  { { endpoint = E, security_token = CANARY .. "\n" }, "raise", { "security_token", "control characters" } },
  { { endpoint = E, ak = "A K", sk = CANARY }, "raise", { "ak", "printable ASCII" } },
  { { endpoint = E, ak = "AK", sk = "" }, "raise", { "sk", "empty" } },
  -- well-formed options that do not make a client: config failures
  { { endpoint = E, ak = "AK" }, "config", { "sk missing" } },
  { { endpoint = E, sk = CANARY }, "config", { "ak missing" } },
  { { endpoint = E, ak = "AK", sk = CANARY, token = CANARY }, "config", { "two kinds of credentials", "token", "ak/sk" } },
  { { endpoint = E, token = CANARY, iam = { user = "u", password = CANARY, domain = "d" } }, "config",
    { "two kinds of credentials" } },
  { { endpoint = E, iam = { user = "u" } }, "config", { "iam needs user, password and domain" } },
  { { region = "xx-none-1", token = CANARY }, "config", { 'unknown region "xx-none-1"', "cn-north-4" } },
  { { token = CANARY }, "config", { "no endpoint", "endpoint or region" } },
  { { endpoint = "ftp://example.com", token = CANARY }, "config", { "endpoint", "https" } },
  { { endpoint = "http://example.com", token = CANARY }, "config", { "endpoint", "plain http", "allow_http" } },
  -- and some that do
  { { endpoint = E, token = CANARY }, "ok" },
  { { endpoint = E, project_id = P, ak = "AK", sk = CANARY, retries = false }, "ok" },
  { { endpoint = "http://example.com", allow_http = true, token = CANARY }, "ok" },
  { { region = "cn-north-4", token = function() return CANARY end }, "ok" },
  { { endpoint = E, iam = { user = "u", password = CANARY, domain = "d" } }, "config", { "iam needs a scope" } },
  { { endpoint = E, iam = { user = "u", password = CANARY, domain = "d", scope = "domain" } }, "ok" },
  { { region = "cn-north-4", iam = { user = "u", password = CANARY, domain = "d" } }, "ok" },
}

-- Rows for pipeline.load alone: options, environment -> kind, fragments.
local LOAD_ROWS = {
  { { profile = "x" }, {}, "config", { "profile 'x'", "no config file" } },
  { {}, { CODEARTS_PIPELINE_REGION = "xx-none-1", CODEARTS_PIPELINE_TOKEN = CANARY }, "config",
    { 'unknown region "xx-none-1"' } },
  { {}, { CODEARTS_PIPELINE_TOKEN = CANARY }, "config", { "no endpoint", "CODEARTS_PIPELINE_ENDPOINT" } },
  { {}, { CODEARTS_PIPELINE_ENDPOINT = E, CODEARTS_PIPELINE_PROJECT_ID = "short", CODEARTS_PIPELINE_TOKEN = CANARY },
    "config", { "project_id", "32 ASCII letters or digits" } },
  { {}, { CODEARTS_PIPELINE_ENDPOINT = E, CODEARTS_PIPELINE_TOKEN = CANARY .. "\tx" }, "config",
    { "environment (CODEARTS_PIPELINE_*)", "token", "control characters" } },
  { {}, { CODEARTS_PIPELINE_ENDPOINT = E, HUAWEICLOUD_SDK_AK = "AK" }, "config",
    { "environment (HUAWEICLOUD_SDK_*)", "sk missing" } },
  { {}, { CODEARTS_PIPELINE_ENDPOINT = E, HUAWEICLOUD_SDK_AK = "A K", HUAWEICLOUD_SDK_SK = CANARY }, "config",
    { "environment (HUAWEICLOUD_SDK_*)", "ak", "printable ASCII" } },
  { {}, { CODEARTS_PIPELINE_CONFIG = "/nonexistent/codearts-pipeline.lua", CODEARTS_PIPELINE_TOKEN = CANARY },
    "config", { "/nonexistent/codearts-pipeline.lua" } },
  { {}, { CODEARTS_PIPELINE_ENDPOINT = E, CODEARTS_PIPELINE_TOKEN = CANARY }, "ok" },
  -- the options win over the environment, taken as one unit
  { { endpoint = E, token = CANARY }, { CODEARTS_PIPELINE_REGION = "xx-none-1", HUAWEICLOUD_SDK_AK = "AK" }, "ok" },
  { { config_file = 42 }, {}, "raise", { "config_file", "string" } },
}

-- A row's options as a test's name (a secret shown as SECRET).
local function shown(value)
  if type(value) == "string" then return (("%q"):format(value):gsub(CANARY:gsub("%-", "%%-"), "SECRET")) end
  if type(value) ~= "table" then return tostring(value) end
  local words = {}
  for name, field in pairs(value) do words[#words + 1] = ("%s=%s"):format(tostring(name), shown(field)) end
  table.sort(words)
  return "{ " .. table.concat(words, ", ") .. " }"
end

local function describe_row(options, env, kind, fragments)
  local names = {}
  for name in pairs(env or {}) do names[#names + 1] = "$" .. name end
  table.sort(names)
  return ("%s%s -> %s %s"):format(shown(options), #names > 0 and (" with " .. table.concat(names, " ")) or "",
    kind, table.concat(fragments or {}, " / "))
end

local function check(entry, options, env, kind, fragments)
  local got, message = outcome(entry, options, env)
  assert.are.equal(kind, got, ("%s: expected %s, got %s: %s"):format(entry, kind, got, tostring(message)))
  for _, fragment in ipairs(fragments or {}) do support.contains(message, fragment) end
  if message then support.lacks(message, CANARY) end
end

for _, entry in ipairs({ "new", "load" }) do
  describe("pipeline." .. entry, function()
    for _, row in ipairs(OPTION_ROWS) do
      local options, kind, fragments = row[1], row[2], row[3]
      it(describe_row(options, nil, kind, fragments), function()
        check(entry, options, {}, kind, fragments)
      end)
    end

    it("raises for options that are not a table", function()
      for _, options in ipairs({ "endpoint", 42, true }) do
        local got, message = outcome(entry, options, {})
        assert.are.equal("raise", got)
        support.contains(message, "table")
      end
    end)
  end)
end

describe("pipeline.load with an environment", function()
  for _, row in ipairs(LOAD_ROWS) do
    local options, env, kind, fragments = row[1], row[2], row[3], row[4]
    it(describe_row(options, env, kind, fragments), function()
      check("load", options, env, kind, fragments)
    end)
  end
end)

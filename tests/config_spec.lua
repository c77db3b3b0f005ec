-- Specs for the configuration layers (lua/pipeline/config.lua) and for
-- pipeline.load / pipeline.retry built on them.
--
-- config.resolve and pipeline.load are driven in-process with a fake
-- environment (a getenv function over a table) and temporary files; what
-- reads os.getenv itself (pipeline.load without getenv, the SDKs' endpoint
-- overrides, pipeline.retry) runs in child processes started with `env -i`,
-- each with its own environment.
-- Every HOME is an empty temporary folder, so nothing of the real user's
-- ~/.config or ~/.huaweicloud is read.  Endpoints are loopback addresses and
-- nothing is sent: building a client does not connect.

local config = require "pipeline.config"
local pipeline = require "pipeline"
local support = require "support"

local CANARY = "CANARY-secret-value-1234"

local P_OPT     = "0ption5000000000000000000000000a"
local P_ENV     = "env00000000000000000000000000000"
local P_SDK     = "sdk00000000000000000000000000000"
local P_PROFILE = "pr0f11e0000000000000000000000000"
local P_CRED    = "cred0000000000000000000000000000"
local PIPE      = "p1pe0000000000000000000000000000"
local RUN       = "run00000000000000000000000000000"

local EP_OPT     = "http://127.0.0.1:9/options"
local EP_ENV     = "http://127.0.0.1:9/env"
local EP_PROFILE = "http://127.0.0.1:9/profile"

------------------------------------------------------------------ helpers

local write, contains, lacks = support.write_file, support.contains, support.lacks

local function no_canary(text) lacks(text, CANARY) end

-- Checks `nil, message, "config", info`, the fragments in message, and that
-- no secret got in.  Returns the message.
local function config_error(fragments, ok, message, code, info)
  assert.is_nil(ok, "expected a failure, got a result")
  assert.are.equal("config", code)
  assert.is_table(info)
  for _, fragment in ipairs(fragments) do contains(message, fragment) end
  no_canary(message)
  lacks(message, "\n")
  return message
end

-- A result of config.resolve; fails the test with the message otherwise.
local function resolved(ok, message)
  assert(ok, "expected a resolved table, got: " .. tostring(message))
  assert.is_table(ok)
  return ok
end

local function deep_copy(t)
  if type(t) ~= "table" then return t end
  local copy = {}
  for k, v in pairs(t) do copy[k] = deep_copy(v) end
  return copy
end

-- config.resolve with a fake environment; HOME is an empty folder unless
-- vars names one.
local home
local function resolve(options, vars)
  vars = vars or {}
  if vars.HOME == nil then vars.HOME = home end
  if vars.HOME == false then vars.HOME = nil end
  return config.resolve(options, function(name) return vars[name] end)
end

-- Gives each test of the describe block a fresh empty HOME (home), removed
-- after it with every other test_dir.
local function each_test_in_its_home()
  before_each(function() home = support.test_dir() end)
  after_each(support.remove_test_dirs)
end

-- A config file text returning profiles (a table of Lua source strings).
local function config_text(default_profile, profiles)
  local parts = { "return {" }
  if default_profile then parts[#parts + 1] = ("  default_profile = %q,"):format(default_profile) end
  parts[#parts + 1] = "  profiles = {"
  for name, body in pairs(profiles) do
    parts[#parts + 1] = ("    [%q] = { %s },"):format(name, body)
  end
  parts[#parts + 1] = "  },"
  parts[#parts + 1] = "}"
  return table.concat(parts, "\n") .. "\n"
end

------------------------------------------------------------------ child processes

local CHILD = [=[
local pipeline = require "pipeline"
local function report(ok, a, message, code)
  if not ok then
    io.write("RAISED\t", tostring(a), "\n")
  elseif a == true then
    io.write("TRUE\n")
  elseif a then
    io.write("OK\t", tostring(a.endpoint), "\t", tostring(a.project_id), "\t", tostring(a._auth.kind), "\n")
    a:close()
  else
    io.write("FAIL\t", tostring(code), "\t", tostring(message), "\n")
  end
end
report(pcall(function() return %s end))
]=]

-- Runs `call` (a Lua expression, default pipeline.load()) in a child with
-- exactly the environment vars (plus HOME and what support.run_lua adds).  Returns
-- the kind (OK, FAIL, RAISED, TRUE) and the fields that follow it.
local function child(vars, call)
  vars = deep_copy(vars or {})
  if vars.HOME == nil then vars.HOME = home end
  local out = support.run_lua(CHILD:format(call or "pipeline.load()"), vars)
  local fields = support.fields(out)
  assert(({ OK = true, FAIL = true, RAISED = true, TRUE = true })[fields[1]],
    "unexpected child output: " .. out)
  return table.unpack(fields)
end

-- pipeline.load in this process, its environment vars (plus HOME) given as
-- options.getenv; the same kinds and fields as child().
local function load_in_process(vars, options)
  vars = deep_copy(vars or {})
  if vars.HOME == nil then vars.HOME = home end
  options = deep_copy(options or {})
  options.getenv = function(name) return vars[name] end
  local ok, a, message, code = pcall(pipeline.load, options)
  if not ok then return "RAISED", tostring(a) end
  if a then
    local fields = { "OK", tostring(a.endpoint), tostring(a.project_id), tostring(a._auth.kind) }
    a:close()
    return table.unpack(fields)
  end
  return "FAIL", tostring(code), tostring(message)
end

------------------------------------------------------------------ specs

describe("config.resolve", function()
  each_test_in_its_home()

  describe("endpoint and region, taken as one unit", function()
    it("fails with config, not an error, on a control character in an environment value", function()
      config_error({ "environment", "endpoint", "control characters" },
        resolve({}, { CODEARTS_PIPELINE_ENDPOINT = "http://127.0.0.1:9\r\nX: y", CODEARTS_PIPELINE_TOKEN = "tok1" }))
    end)

    it("takes options.region over CODEARTS_PIPELINE_ENDPOINT, and drops the env endpoint", function()
      local r = resolved(resolve({ region = "cn-north-4" }, { CODEARTS_PIPELINE_ENDPOINT = EP_ENV }))
      assert.are.equal("cn-north-4", r.region)
      assert.is_nil(r.endpoint)
    end)

    it("takes options.endpoint over CODEARTS_PIPELINE_REGION, and drops the env region", function()
      local r = resolved(resolve({ endpoint = EP_OPT }, { CODEARTS_PIPELINE_REGION = "cn-north-1" }))
      assert.are.equal(EP_OPT, r.endpoint)
      assert.is_nil(r.region)
    end)

    it("takes CODEARTS_PIPELINE_ENDPOINT over the profile's endpoint and region", function()
      local path = write(home .. "/c.lua", config_text(nil,
        { default = ("endpoint = %q, region = 'cn-south-1'"):format(EP_PROFILE) }), "644")
      local r = resolved(resolve({ config_file = path }, { CODEARTS_PIPELINE_ENDPOINT = EP_ENV }))
      assert.are.equal(EP_ENV, r.endpoint)
      assert.is_nil(r.region)
    end)

    it("takes CODEARTS_PIPELINE_REGION over the profile's endpoint", function()
      local path = write(home .. "/c.lua", config_text(nil, { default = ("endpoint = %q"):format(EP_PROFILE) }), "644")
      local r = resolved(resolve({ config_file = path }, { CODEARTS_PIPELINE_REGION = "cn-east-3" }))
      assert.are.equal("cn-east-3", r.region)
      assert.is_nil(r.endpoint)
    end)

    it("ignores an empty CODEARTS_PIPELINE_ENDPOINT", function()
      local path = write(home .. "/c.lua", config_text(nil, { default = ("endpoint = %q"):format(EP_PROFILE) }), "644")
      local r = resolved(resolve({ config_file = path }, { CODEARTS_PIPELINE_ENDPOINT = "" }))
      assert.are.equal(EP_PROFILE, r.endpoint)
    end)

    it("uses the profile when nothing above gives a place", function()
      local path = write(home .. "/c.lua", config_text(nil,
        { default = ("endpoint = %q, region = 'cn-south-1'"):format(EP_PROFILE) }), "644")
      local r = resolved(resolve({ config_file = path }, {}))
      assert.are.equal(EP_PROFILE, r.endpoint)
      assert.are.equal("cn-south-1", r.region)
    end)

    it("gives neither when no layer has one", function()
      local r = resolved(resolve({}, {}))
      assert.is_nil(r.endpoint)
      assert.is_nil(r.region)
    end)
  end)

  describe("credentials, taken as one unit", function()
    it("takes options.token over HUAWEICLOUD_SDK_AK/SK, leaving no ak/sk", function()
      local r = resolved(resolve({ token = "opt-token" },
        { HUAWEICLOUD_SDK_AK = "envak", HUAWEICLOUD_SDK_SK = CANARY, HUAWEICLOUD_SDK_SECURITY_TOKEN = "st-env" }))
      assert.are.equal("opt-token", r.token)
      assert.is_nil(r.ak)
      assert.is_nil(r.sk)
      assert.is_nil(r.security_token)
    end)

    it("takes options ak/sk over CODEARTS_PIPELINE_TOKEN, leaving no token", function()
      local r = resolved(resolve({ ak = "optak", sk = "optsk" }, { CODEARTS_PIPELINE_TOKEN = CANARY }))
      assert.are.equal("optak", r.ak)
      assert.are.equal("optsk", r.sk)
      assert.is_nil(r.token)
    end)

    it("keeps a token function given in the options", function()
      local f = function() return "t" end
      local r = resolved(resolve({ token = f }, { CODEARTS_PIPELINE_TOKEN = "env-token" }))
      assert.are.equal(f, r.token)
    end)

    it("takes CODEARTS_PIPELINE_TOKEN over the profile's token", function()
      local path = write(home .. "/c.lua", config_text(nil, { default = "token = 'profile-token'" }))
      local r = resolved(resolve({ config_file = path }, { CODEARTS_PIPELINE_TOKEN = "env-token" }))
      assert.are.equal("env-token", r.token)
    end)

    it("takes CODEARTS_PIPELINE_TOKEN over the profile's ak/sk", function()
      local path = write(home .. "/c.lua", config_text(nil, { default = "ak = 'pak', sk = 'psk'" }))
      local r = resolved(resolve({ config_file = path }, { CODEARTS_PIPELINE_TOKEN = "env-token" }))
      assert.are.equal("env-token", r.token)
      assert.is_nil(r.ak)
      assert.is_nil(r.sk)
    end)

    it("takes HUAWEICLOUD_SDK_AK/SK/SECURITY_TOKEN together", function()
      local r = resolved(resolve({}, { HUAWEICLOUD_SDK_AK = "envak", HUAWEICLOUD_SDK_SK = "envsk",
        HUAWEICLOUD_SDK_SECURITY_TOKEN = "envst" }))
      assert.are.equal("envak", r.ak)
      assert.are.equal("envsk", r.sk)
      assert.are.equal("envst", r.security_token)
      assert.is_nil(r.token)
    end)

    -- the credentials file belongs to the environment layer, which comes
    -- before the config file profile (README, Configuration)
    it("takes the credentials file's ak/sk over the profile's, with the file's security_token", function()
      local path = write(home .. "/c.lua", config_text(nil, { default = "ak = 'pak', sk = 'psk'" }))
      local cred = write(home .. "/cred", "[basic]\nak = fak\nsk = fsk\nsecurity_token = fst\n")
      local r = resolved(resolve({ config_file = path }, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = cred }))
      assert.are.equal("fak", r.ak)
      assert.are.equal("fsk", r.sk)
      assert.are.equal("fst", r.security_token)
    end)

    it("takes the profile's ak/sk when there is no credentials file", function()
      local path = write(home .. "/c.lua", config_text(nil, { default = "ak = 'pak', sk = 'psk'" }))
      local r = resolved(resolve({ config_file = path }, {}))
      assert.are.equal("pak", r.ak)
      assert.are.equal("psk", r.sk)
    end)

    it("does not read a losing profile's token_file, even a missing one", function()
      local path = write(home .. "/c.lua", config_text(nil, { default = "token_file = 'no-such-file'" }))
      local r = resolved(resolve({ config_file = path }, { CODEARTS_PIPELINE_TOKEN = "env-token" }))
      assert.are.equal("env-token", r.token)
      assert.is_nil(r.token_file)
    end)

    it("uses the [basic] section of HUAWEICLOUD_SDK_CREDENTIALS_FILE last", function()
      local cred = write(home .. "/elsewhere/creds.ini", table.concat({
        "# a comment",
        "; another",
        "[other]",
        "ak = wrong-ak",
        "[basic]\r",
        "  AK = fak  ",
        "sk=fsk",
        "project_id = " .. P_CRED,
        "",
      }, "\n"))
      local r = resolved(resolve({}, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = cred }))
      assert.are.equal("fak", r.ak)
      assert.are.equal("fsk", r.sk)
      assert.are.equal(P_CRED, r.iam_project_id)
      assert.is_nil(r.project_id)
      assert.is_nil(r.token)
    end)

    it("reads ~/.huaweicloud/credentials by default", function()
      write(home .. "/.huaweicloud/credentials", "[basic]\nak = homeak\nsk = homesk\n")
      local r = resolved(resolve({}, {}))
      assert.are.equal("homeak", r.ak)
      assert.are.equal("homesk", r.sk)
    end)

    it("prefers HUAWEICLOUD_SDK_CREDENTIALS_FILE to ~/.huaweicloud/credentials", function()
      write(home .. "/.huaweicloud/credentials", "[basic]\nak = homeak\nsk = homesk\n")
      local cred = write(home .. "/other", "[basic]\nak = fak\nsk = fsk\n")
      local r = resolved(resolve({}, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = cred }))
      assert.are.equal("fak", r.ak)
      assert.are.equal("fsk", r.sk)
    end)

    it("is fine without HOME and without a credentials file", function()
      local r = resolved(resolve({ token = "t" }, { HOME = false }))
      assert.are.equal("t", r.token)
    end)

    it("reports a credentials file line that is not key = value, naming file and line", function()
      local cred = write(home .. "/cred", "[basic]\nak = fak\n" .. CANARY .. "\n")
      config_error({ cred, "line 3" }, resolve({}, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = cred }))
    end)
  end)

  describe("two kinds of credentials", function()
    -- In the environment, the README's order decides: CODEARTS_PIPELINE_TOKEN,
    -- then the SDKs' HUAWEICLOUD_SDK_* (often set for other tools).
    it("takes CODEARTS_PIPELINE_TOKEN over HUAWEICLOUD_SDK_AK/SK", function()
      local r = resolved(resolve({}, { CODEARTS_PIPELINE_TOKEN = CANARY, HUAWEICLOUD_SDK_AK = "envak",
        HUAWEICLOUD_SDK_SK = CANARY .. "-sk" }))
      assert.are.equal(CANARY, r.token)
      assert.is_nil(r.ak)
      assert.is_nil(r.sk)
    end)

    it("takes CODEARTS_PIPELINE_TOKEN over a lone HUAWEICLOUD_SDK_SECURITY_TOKEN", function()
      local r = resolved(resolve({}, { CODEARTS_PIPELINE_TOKEN = CANARY,
        HUAWEICLOUD_SDK_SECURITY_TOKEN = CANARY .. "st" }))
      assert.are.equal(CANARY, r.token)
      assert.is_nil(r.security_token)
    end)

    it("refuses a profile with a token and ak/sk, naming the profile, the file and both kinds", function()
      local path = write(home .. "/c.lua", config_text(nil,
        { work = ("token = %q, ak = 'pak', sk = %q"):format(CANARY, CANARY .. "-sk") }))
      config_error({ "profile 'work'", path, "two kinds", "token", "ak/sk" },
        resolve({ config_file = path, profile = "work" }, {}))
    end)

    it("refuses a profile with a token_file and ak/sk", function()
      write(home .. "/tok", CANARY, "600")
      local path = write(home .. "/c.lua", config_text(nil,
        { default = ("token_file = 'tok', ak = 'pak', sk = %q"):format(CANARY) }))
      config_error({ "two kinds", "token", "ak/sk" }, resolve({ config_file = path }, {}))
    end)

    it("refuses options with a token and ak/sk", function()
      config_error({ "options", "two kinds", "token", "ak/sk" },
        resolve({ token = CANARY, ak = "a", sk = CANARY .. "sk" }, {}))
    end)

    it("accepts two kinds in the environment when the options give credentials", function()
      local r = resolved(resolve({ token = "opt-token" },
        { CODEARTS_PIPELINE_TOKEN = CANARY, HUAWEICLOUD_SDK_AK = "envak", HUAWEICLOUD_SDK_SK = CANARY }))
      assert.are.equal("opt-token", r.token)
      assert.is_nil(r.ak)
      assert.is_nil(r.sk)
    end)

    it("accepts two kinds in a profile when the environment gives credentials", function()
      local path = write(home .. "/c.lua", config_text(nil,
        { default = ("token = %q, ak = 'pak', sk = %q"):format(CANARY, CANARY) }))
      local r = resolved(resolve({ config_file = path }, { HUAWEICLOUD_SDK_AK = "envak", HUAWEICLOUD_SDK_SK = "envsk" }))
      assert.are.equal("envak", r.ak)
      assert.are.equal("envsk", r.sk)
      assert.is_nil(r.token)
    end)
  end)

  describe("half of an ak/sk pair", function()
    it("refuses HUAWEICLOUD_SDK_AK without HUAWEICLOUD_SDK_SK", function()
      config_error({ "environment", "sk missing" }, resolve({}, { HUAWEICLOUD_SDK_AK = "envak" }))
    end)

    it("refuses HUAWEICLOUD_SDK_SK without HUAWEICLOUD_SDK_AK", function()
      config_error({ "environment", "ak missing" }, resolve({}, { HUAWEICLOUD_SDK_SK = CANARY }))
    end)

    it("refuses a profile with ak and no sk", function()
      local path = write(home .. "/c.lua", config_text(nil, { default = "ak = 'pak'" }), "644")
      config_error({ "profile 'default'", path, "sk missing" }, resolve({ config_file = path }, {}))
    end)

    it("refuses a credentials file with ak and no sk", function()
      local cred = write(home .. "/cred", "[basic]\nak = fak\n")
      config_error({ cred, "sk missing" }, resolve({}, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = cred }))
    end)

    it("refuses a security_token alone without claiming an sk was given", function()
      local msg = config_error({ "ak and sk missing" }, resolve({}, { HUAWEICLOUD_SDK_SECURITY_TOKEN = CANARY }))
      lacks(msg, CANARY)
    end)
  end)

  -- Two project ids, never mixed: the CodeArts project of the paths, and the
  -- IAM project of the region that AK/SK requests carry as X-Project-Id.
  local function project_layers(field, drop)
    local path = write(home .. "/c.lua", config_text(nil, {
      default = ("project_id = %q, iam_project_id = %q"):format(P_PROFILE, P_PROFILE) }), "644")
    local cred = write(home .. "/cred", ("[basic]\nproject_id = %s\n"):format(P_CRED))
    local options = { config_file = path, project_id = P_OPT, iam_project_id = P_OPT }
    local vars = { CODEARTS_PIPELINE_PROJECT_ID = P_ENV, HUAWEICLOUD_SDK_PROJECT_ID = P_SDK,
      HUAWEICLOUD_SDK_CREDENTIALS_FILE = cred }
    for _, what in ipairs(drop) do
      if what == "options" then options[field] = nil
      elseif what == "profile" then write(path, config_text(nil, { default = "" }), "644")
      elseif what == "credentials file" then vars.HUAWEICLOUD_SDK_CREDENTIALS_FILE = nil
      else vars[what] = nil end
    end
    return resolved(resolve(options, vars))[field]
  end

  describe("project_id (the CodeArts project, in paths)", function()
    local function layers(drop) return project_layers("project_id", drop) end

    it("takes options.project_id first", function()
      assert.are.equal(P_OPT, layers({}))
    end)

    it("then CODEARTS_PIPELINE_PROJECT_ID", function()
      assert.are.equal(P_ENV, layers({ "options" }))
    end)

    it("then the profile, never the IAM project of HUAWEICLOUD_SDK_PROJECT_ID or the credentials file", function()
      assert.are.equal(P_PROFILE, layers({ "options", "CODEARTS_PIPELINE_PROJECT_ID" }))
    end)

    it("else none, even with HUAWEICLOUD_SDK_PROJECT_ID and the credentials file's project_id set", function()
      assert.is_nil(layers({ "options", "CODEARTS_PIPELINE_PROJECT_ID", "profile" }))
    end)

    it("refuses a malformed CODEARTS_PIPELINE_PROJECT_ID", function()
      config_error({ "project_id", "32" }, resolve({ token = "t" }, { CODEARTS_PIPELINE_PROJECT_ID = "abc-123" }))
    end)

    it("refuses a malformed project_id in a profile, naming the file", function()
      local path = write(home .. "/c.lua", config_text(nil, { default = "project_id = 'short'" }), "644")
      config_error({ path, "project_id", "32 ASCII letters or digits" }, resolve({ config_file = path }, {}))
    end)
  end)

  describe("iam_project_id (the IAM project of the region, X-Project-Id)", function()
    local function layers(drop) return project_layers("iam_project_id", drop) end

    it("takes options.iam_project_id first", function()
      assert.are.equal(P_OPT, layers({}))
    end)

    it("then HUAWEICLOUD_SDK_PROJECT_ID", function()
      assert.are.equal(P_SDK, layers({ "options" }))
    end)

    it("then the credentials file's project_id", function()
      assert.are.equal(P_CRED, layers({ "options", "HUAWEICLOUD_SDK_PROJECT_ID" }))
    end)

    it("then the profile", function()
      assert.are.equal(P_PROFILE, layers({ "options", "HUAWEICLOUD_SDK_PROJECT_ID", "credentials file" }))
    end)

    it("never CODEARTS_PIPELINE_PROJECT_ID", function()
      assert.is_nil(layers({ "options", "HUAWEICLOUD_SDK_PROJECT_ID", "credentials file", "profile" }))
    end)

    it("reads the credentials file for the IAM project of AK/SK given in the environment", function()
      local cred = write(home .. "/cred", ("[basic]\nak = fak\nsk = fsk\nproject_id = %s\n"):format(P_CRED))
      local r = resolved(resolve({}, { HUAWEICLOUD_SDK_AK = "eak", HUAWEICLOUD_SDK_SK = "esk",
        HUAWEICLOUD_SDK_CREDENTIALS_FILE = cred }))
      assert.are.equal("eak", r.ak)
      assert.are.equal(P_CRED, r.iam_project_id)
      assert.is_nil(r.project_id)
    end)

    it("refuses a malformed HUAWEICLOUD_SDK_PROJECT_ID", function()
      config_error({ "iam_project_id", "letters and digits" },
        resolve({ token = "t" }, { HUAWEICLOUD_SDK_PROJECT_ID = "../" .. P_SDK }))
    end)

    it("refuses a malformed project_id in the credentials file", function()
      local cred = write(home .. "/cred", "[basic]\nak = a\nsk = s\nproject_id = ../../etc\n")
      config_error({ "iam_project_id" }, resolve({}, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = cred }))
    end)

    it("refuses a malformed iam_project_id option as misuse", function()
      assert.error_matches(function() pipeline.new({ endpoint = EP_OPT, token = "t", iam_project_id = "a b" }) end,
        "iam_project_id")
    end)
  end)

  describe("profile selection", function()
    local path
    before_each(function()
      path = write(home .. "/c.lua", config_text("fromfile", {
        default = "endpoint = 'http://127.0.0.1:9/default'",
        fromfile = "endpoint = 'http://127.0.0.1:9/fromfile'",
        fromenv = "endpoint = 'http://127.0.0.1:9/fromenv'",
        fromoptions = "endpoint = 'http://127.0.0.1:9/fromoptions'",
      }), "644")
    end)

    it("takes options.profile over CODEARTS_PIPELINE_PROFILE", function()
      local r = resolved(resolve({ config_file = path, profile = "fromoptions" },
        { CODEARTS_PIPELINE_PROFILE = "fromenv" }))
      assert.are.equal("http://127.0.0.1:9/fromoptions", r.endpoint)
    end)

    it("takes CODEARTS_PIPELINE_PROFILE over the file's default_profile", function()
      local r = resolved(resolve({ config_file = path }, { CODEARTS_PIPELINE_PROFILE = "fromenv" }))
      assert.are.equal("http://127.0.0.1:9/fromenv", r.endpoint)
    end)

    it("takes the file's default_profile over 'default'", function()
      local r = resolved(resolve({ config_file = path }, {}))
      assert.are.equal("http://127.0.0.1:9/fromfile", r.endpoint)
    end)

    it("takes 'default' when nothing names a profile", function()
      write(path, config_text(nil, {
        default = "endpoint = 'http://127.0.0.1:9/default'",
        other = "endpoint = 'http://127.0.0.1:9/other'",
      }), "644")
      local r = resolved(resolve({ config_file = path }, {}))
      assert.are.equal("http://127.0.0.1:9/default", r.endpoint)
    end)

    it("is fine when there is no 'default' profile and none is named", function()
      write(path, config_text(nil, { other = "endpoint = 'http://127.0.0.1:9/other'" }), "644")
      local r = resolved(resolve({ config_file = path }, {}))
      assert.is_nil(r.endpoint)
    end)

    it("refuses a profile named in the options that is not in the file, naming both", function()
      config_error({ "'nope'", path }, resolve({ config_file = path, profile = "nope" }, {}))
    end)

    it("refuses a CODEARTS_PIPELINE_PROFILE that is not in the file", function()
      config_error({ "'ghost'", path }, resolve({ config_file = path }, { CODEARTS_PIPELINE_PROFILE = "ghost" }))
    end)

    it("refuses a default_profile that is not in the file", function()
      write(path, config_text("missing", { default = "" }), "644")
      config_error({ "'missing'", path }, resolve({ config_file = path }, {}))
    end)

    it("refuses a named profile when there is no config file at all", function()
      config_error({ "'work'" }, resolve({ profile = "work" }, {}))
    end)
  end)

  describe("which config file", function()
    it("is fine when the default file is absent", function()
      local r = resolved(resolve({ token = "t" }, {}))
      assert.are.equal("t", r.token)
    end)

    it("reads $XDG_CONFIG_HOME/codearts-pipeline/config.lua", function()
      local xdg = support.test_dir()
      write(xdg .. "/codearts-pipeline/config.lua", config_text(nil, { default = ("endpoint = %q"):format(EP_PROFILE) }))
      write(home .. "/.config/codearts-pipeline/config.lua", config_text(nil, { default = "endpoint = 'http://127.0.0.1:9/home'" }))
      local r = resolved(resolve({}, { XDG_CONFIG_HOME = xdg }))
      assert.are.equal(EP_PROFILE, r.endpoint)
    end)

    it("reads ~/.config/codearts-pipeline/config.lua without XDG_CONFIG_HOME", function()
      write(home .. "/.config/codearts-pipeline/config.lua", config_text(nil, { default = ("endpoint = %q"):format(EP_PROFILE) }))
      local r = resolved(resolve({}, {}))
      assert.are.equal(EP_PROFILE, r.endpoint)
    end)

    it("treats an empty XDG_CONFIG_HOME as unset", function()
      write(home .. "/.config/codearts-pipeline/config.lua", config_text(nil, { default = ("endpoint = %q"):format(EP_PROFILE) }))
      local r = resolved(resolve({}, { XDG_CONFIG_HOME = "" }))
      assert.are.equal(EP_PROFILE, r.endpoint)
    end)

    it("takes CODEARTS_PIPELINE_CONFIG over the default file", function()
      write(home .. "/.config/codearts-pipeline/config.lua", config_text(nil, { default = "endpoint = 'http://127.0.0.1:9/home'" }))
      local named = write(home .. "/named.lua", config_text(nil, { default = ("endpoint = %q"):format(EP_PROFILE) }))
      local r = resolved(resolve({}, { CODEARTS_PIPELINE_CONFIG = named }))
      assert.are.equal(EP_PROFILE, r.endpoint)
    end)

    it("takes options.config_file over CODEARTS_PIPELINE_CONFIG", function()
      local a = write(home .. "/a.lua", config_text(nil, { default = "endpoint = 'http://127.0.0.1:9/a'" }))
      local b = write(home .. "/b.lua", config_text(nil, { default = "endpoint = 'http://127.0.0.1:9/b'" }))
      local r = resolved(resolve({ config_file = a }, { CODEARTS_PIPELINE_CONFIG = b }))
      assert.are.equal("http://127.0.0.1:9/a", r.endpoint)
    end)

    it("expands ~/ in options.config_file", function()
      write(home .. "/sub/c.lua", config_text(nil, { default = ("endpoint = %q"):format(EP_PROFILE) }))
      local r = resolved(resolve({ config_file = "~/sub/c.lua" }, {}))
      assert.are.equal(EP_PROFILE, r.endpoint)
    end)

    it("refuses an absent options.config_file, naming it", function()
      local missing = home .. "/no/such/config.lua"
      config_error({ missing }, resolve({ config_file = missing }, {}))
    end)

    it("refuses an absent CODEARTS_PIPELINE_CONFIG, naming it", function()
      local missing = home .. "/missing.lua"
      config_error({ missing }, resolve({}, { CODEARTS_PIPELINE_CONFIG = missing }))
    end)
  end)

  describe("config file errors name the file and the stage", function()
    local function bad(text, fragments, mode)
      local path = write(home .. "/bad.lua", text, mode or "600")
      local all = { path }
      for _, f in ipairs(fragments) do all[#all + 1] = f end
      return config_error(all, resolve({ config_file = path }, {}))
    end

    it("a syntax error", function()
      bad("return { profiles = { default = { endpoint = } }\n", { "syntax error" })
    end)

    it("a runtime error", function()
      bad("local t = nil\nreturn t.x\n", { "error while running it", "nil" })
    end)

    it("a chunk returning no table", function()
      bad("return 'profiles'\n", { "must return a table", "string" })
    end)

    it("a chunk returning nothing", function()
      bad("local x = 1\n", { "must return a table", "nil" })
    end)

    it("a binary chunk", function()
      local dumped = string.dump((loadstring or load)("return { profiles = {} }")) -- luacheck: ignore 113
      bad(dumped, { "binary" })
    end)

    it("an unknown top-level key", function()
      bad("return { profile = { default = {} } }\n", { "unknown option 'profile'" })
    end)

    it("profiles that are not a table", function()
      bad("return { profiles = 'default' }\n", { "'profiles'", "table" })
    end)

    it("a default_profile that is not a string", function()
      bad("return { default_profile = 1, profiles = {} }\n", { "'default_profile'", "string" })
    end)

    it("a profile that is not a table", function()
      bad("return { profiles = { work = 'http://127.0.0.1:9' } }\n", { "profile 'work'", "must be a table" })
    end)

    it("an unknown key in a profile (timout)", function()
      bad(config_text(nil, { default = "timout = 5" }), { "profile 'default'", "unknown option 'timout'" })
    end)

    it("an unknown key in a profile that is not selected", function()
      bad(config_text(nil, { default = "", other = "endpiont = 'x'" }), { "profile 'other'", "'endpiont'" })
    end)

    it("a wrong type in a profile", function()
      bad(config_text(nil, { default = "timeout = '30'" }), { "profile 'default'", "'timeout'", "number", "string" })
    end)

    it("a wrong type inside retries", function()
      bad(config_text(nil, { default = "retries = { max = 'three' }" }), { "'retries.max'", "number", "string" })
    end)

    it("an unknown key inside iam", function()
      bad(config_text(nil, { default = "iam = { usr = 'u' }" }), { "unknown option 'iam.usr'" })
    end)

    it("a function where data is expected (on_event is not a profile option)", function()
      bad(config_text(nil, { default = "on_event = function() end" }), { "'on_event'" })
    end)
  end)

  describe("the config file sandbox", function()
    local function run(text)
      local path = write(home .. "/box.lua", text, "644")
      return path, resolve({ config_file = path }, {})
    end

    it("has no os", function()
      local path, ok, msg, code, info = run("return { profiles = { default = { endpoint = os.getenv('HOME') } } }\n")
      config_error({ path, "error while running it", "'os'" }, ok, msg, code, info)
    end)

    it("has no io", function()
      local path, ok, msg, code, info = run("local f = io.open('/etc/passwd')\nreturn { profiles = {} }\n")
      config_error({ path, "error while running it", "'io'" }, ok, msg, code, info)
    end)

    it("has no require", function()
      local path, ok, msg, code, info = run("local os = require('os')\nreturn { profiles = {} }\n")
      config_error({ path, "error while running it", "'require'" }, ok, msg, code, info)
    end)

    it("has no load, dofile, _G or getmetatable", function()
      for _, name in ipairs({ "load", "dofile", "loadfile", "_G", "getmetatable", "rawget", "package", "debug" }) do
        local path, ok, msg, code, info = run(("local x = %s.x\nreturn { profiles = {} }\n"):format(name))
        config_error({ path, "error while running it", "'" .. name .. "'" }, ok, msg, code, info)
      end
    end)

    it("does not let the file set the caller's globals", function()
      assert.is_nil(rawget(_G, "CONFIG_SPEC_LEAK"))
      resolved(select(2, run("CONFIG_SPEC_LEAK = 'leaked'\nreturn { profiles = {} }\n")))
      assert.is_nil(rawget(_G, "CONFIG_SPEC_LEAK"))
    end)

    it("still runs plain Lua (locals, tables, string methods)", function()
      local _, r = run([[
local base = "http://127.0.0.1:9"
local p = { endpoint = base .. ("/x"):rep(2), timeout = 2 * 5 }
return { profiles = { default = p } }
]])
      r = resolved(r)
      assert.are.equal("http://127.0.0.1:9/x/x", r.endpoint)
      assert.are.equal(10, r.timeout)
    end)
  end)

  describe("token_file", function()
    it("is read and trimmed, and token_file is not in the result", function()
      write(home .. "/tok", "\n  " .. CANARY .. " \r\n\n", "600")
      local path = write(home .. "/c.lua", config_text(nil, { default = "token_file = '" .. home .. "/tok'" }), "644")
      local r = resolved(resolve({ config_file = path }, {}))
      assert.are.equal(CANARY, r.token)
      assert.is_nil(r.token_file)
    end)

    it("is relative to the config file's folder, not the working folder", function()
      local dir = support.test_dir()
      write(dir .. "/conf/secrets/tok", "relative-token", "600")
      local path = write(dir .. "/conf/config.lua", config_text(nil, { default = "token_file = 'secrets/tok'" }), "644")
      local r = resolved(resolve({ config_file = path }, {}))
      assert.are.equal("relative-token", r.token)
    end)

    it("expands ~/ with HOME", function()
      write(home .. "/.secrets/tok", "home-token", "600")
      local dir = support.test_dir()
      local path = write(dir .. "/config.lua", config_text(nil, { default = "token_file = '~/.secrets/tok'" }), "644")
      local r = resolved(resolve({ config_file = path }, {}))
      assert.are.equal("home-token", r.token)
    end)

    it("refuses a missing token_file, naming it", function()
      local path = write(home .. "/c.lua", config_text(nil, { default = "token_file = 'absent-tok'" }), "644")
      config_error({ "token_file", "absent-tok" }, resolve({ config_file = path }, {}))
    end)

    it("refuses an empty token_file", function()
      write(home .. "/tok", " \n\t\n", "600")
      local path = write(home .. "/c.lua", config_text(nil, { default = "token_file = 'tok'" }), "644")
      config_error({ "token_file", home .. "/tok", "empty" }, resolve({ config_file = path }, {}))
    end)

    it("refuses a token_file readable by group and others (644), saying so", function()
      write(home .. "/tok", CANARY, "644")
      local path = write(home .. "/c.lua", config_text(nil, { default = "token_file = 'tok'" }), "644")
      config_error({ home .. "/tok", "readable by group or others", "chmod 600" }, resolve({ config_file = path }, {}))
    end)

    it("refuses a token_file readable by group (640)", function()
      write(home .. "/tok", CANARY, "640")
      local path = write(home .. "/c.lua", config_text(nil, { default = "token_file = 'tok'" }), "644")
      config_error({ "readable by group or others" }, resolve({ config_file = path }, {}))
    end)

    it("refuses a token_file readable by others (604)", function()
      write(home .. "/tok", CANARY, "604")
      local path = write(home .. "/c.lua", config_text(nil, { default = "token_file = 'tok'" }), "644")
      config_error({ "readable by group or others" }, resolve({ config_file = path }, {}))
    end)

    it("accepts a token_file at 600 (and 400)", function()
      for _, mode in ipairs({ "600", "400" }) do
        write(home .. "/tok", "private-token", mode)
        local path = write(home .. "/c.lua", config_text(nil, { default = "token_file = 'tok'" }), "644")
        local r = resolved(resolve({ config_file = path }, {}))
        assert.are.equal("private-token", r.token)
        support.chmod(home .. "/tok", "600")
      end
    end)

    it("refuses a token_file with a control character inside the token", function()
      write(home .. "/tok", CANARY .. "\nsecond-line", "600")
      local path = write(home .. "/c.lua", config_text(nil, { default = "token_file = 'tok'" }), "644")
      config_error({ "token_file", "control character" }, resolve({ config_file = path }, {}))
    end)
  end)

  describe("a config file holding a secret", function()
    local SECRETS = {
      token = ("token = %q"):format(CANARY),
      sk = ("ak = 'pak', sk = %q"):format(CANARY),
      security_token = ("ak = 'pak', sk = 'psk', security_token = %q"):format(CANARY),
      ["iam.password"] = ("iam = { user = 'u', domain = 'd', password = %q }"):format(CANARY),
    }
    local names = {}
    for name in pairs(SECRETS) do names[#names + 1] = name end
    table.sort(names)

    for _, name in ipairs(names) do
      for _, mode in ipairs({ "644", "640", "604" }) do
        it(("is refused with %s at mode %s, naming the file and suggesting chmod 600"):format(name, mode), function()
          local path = write(home .. "/c.lua", config_text(nil, { default = SECRETS[name] }), mode)
          config_error({ path, "chmod 600", "readable by group or others" },
            resolve({ config_file = path }, {}))
        end)
      end

      it(("is accepted with %s at mode 600"):format(name), function()
        local path = write(home .. "/c.lua", config_text(nil, { default = SECRETS[name] }), "600")
        local r = resolved(resolve({ config_file = path }, {}))
        if name == "iam.password" then
          assert.are.equal(CANARY, r.iam.password)
        else
          assert.are.equal(CANARY, r[name])
        end
      end)
    end

    it("is refused when the secret is in a profile that is not selected", function()
      local path = write(home .. "/c.lua", config_text(nil, {
        default = ("endpoint = %q"):format(EP_PROFILE),
        other = ("token = %q"):format(CANARY),
      }), "644")
      config_error({ path, "chmod 600" }, resolve({ config_file = path }, {}))
    end)

    it("is refused from the default location too", function()
      local path = write(home .. "/.config/codearts-pipeline/config.lua",
        config_text(nil, { default = ("token = %q"):format(CANARY) }), "644")
      config_error({ path, "chmod 600" }, resolve({}, {}))
    end)

    it("is refused even when the environment's credentials win", function()
      local path = write(home .. "/c.lua", config_text(nil, { default = ("token = %q"):format(CANARY) }), "644")
      config_error({ path }, resolve({ config_file = path }, { CODEARTS_PIPELINE_TOKEN = "env-token" }))
    end)

    it("is accepted at 644 when it holds no secret (endpoint, ak, token_file)", function()
      write(home .. "/tok", "file-token", "600")
      local path = write(home .. "/c.lua", config_text(nil, {
        default = ("endpoint = %q, project_id = %q, token_file = 'tok'"):format(EP_PROFILE, P_PROFILE),
        keyonly = "iam = { user = 'u', domain = 'd' }",
      }), "644")
      local r = resolved(resolve({ config_file = path }, {}))
      assert.are.equal(EP_PROFILE, r.endpoint)
      assert.are.equal(P_PROFILE, r.project_id)
      assert.are.equal("file-token", r.token)
    end)

    it("keeps the secret out of a syntax error (unfinished string)", function()
      local path = write(home .. "/c.lua",
        "return { profiles = { default = {\n  token = \"" .. CANARY .. ",\n  endpoint = 'http://127.0.0.1:9',\n} } }\n",
        "600")
      config_error({ path, "syntax error" }, resolve({ config_file = path }, {}))
    end)

    it("keeps the secret out of a syntax error (bad escape in the secret)", function()
      -- a decimal escape too large is an error in every Lua version
      local path = write(home .. "/c.lua",
        "return { profiles = { default = { token = \"" .. CANARY .. "\\999\" } } }\n", "600")
      config_error({ path, "syntax error" }, resolve({ config_file = path }, {}))
    end)

    it("keeps the secret out of a type error", function()
      local path = write(home .. "/c.lua",
        ("return { profiles = { default = { token = { %q } } } }\n"):format(CANARY), "600")
      config_error({ path, "'token'" }, resolve({ config_file = path }, {}))
    end)
  end)

  describe("the result", function()
    it("never holds token_file, profile or config_file", function()
      write(home .. "/tok", "file-token", "600")
      local path = write(home .. "/c.lua", config_text(nil, {
        work = ("endpoint = %q, token_file = 'tok'"):format(EP_PROFILE),
      }), "644")
      local r = resolved(resolve({ config_file = path, profile = "work" }, {}))
      assert.are.equal("file-token", r.token)
      assert.is_nil(r.token_file)
      assert.is_nil(r.profile)
      assert.is_nil(r.config_file)
      assert.is_nil(r._name)
    end)

    it("leaves the options table as it was", function()
      write(home .. "/tok", "file-token", "600")
      local path = write(home .. "/c.lua", config_text(nil, {
        work = ("endpoint = %q, token_file = 'tok', timeout = 5, retries = { max = 1 }"):format(EP_PROFILE),
      }), "644")
      local options = { config_file = path, profile = "work", connect_timeout = 2, retries = { max = 7 } }
      local before = deep_copy(options)
      local retries = options.retries
      resolved(resolve(options, { CODEARTS_PIPELINE_PROJECT_ID = P_ENV }))
      assert.are.same(before, options)
      assert.are.equal(retries, options.retries)
    end)

    it("merges the other options field by field, first layer first", function()
      local path = write(home .. "/c.lua", config_text(nil, {
        default = "timeout = 5, connect_timeout = 3, retries = { max = 1 }, insecure = true, user_agent = 'file'",
      }), "644")
      local r = resolved(resolve({ config_file = path, timeout = 60, retries = false, insecure = false }, {}))
      assert.are.equal(60, r.timeout)
      assert.are.equal(3, r.connect_timeout)
      assert.are.equal(false, r.retries)
      assert.are.equal(false, r.insecure)
      assert.are.equal("file", r.user_agent)
    end)

    it("works with nil options and the real os.getenv when no file is named", function()
      -- Only checks the call shape: the real environment decides the contents.
      local ok, _, code = config.resolve(nil, function(name) return name == "HOME" and home or nil end)
      assert.is_table(ok, tostring(code))
    end)
  end)
end)

describe("pipeline.load (environment given as options.getenv)", function()
  each_test_in_its_home()

  local BASE = { CODEARTS_PIPELINE_ENDPOINT = "http://127.0.0.1:9", CODEARTS_PIPELINE_PROJECT_ID = P_ENV }

  local function with(extra)
    local vars = deep_copy(BASE)
    for k, v in pairs(extra) do vars[k] = v ~= false and v or nil end
    return vars
  end

  it("builds a client from the environment alone (token)", function()
    local kind, endpoint, project, auth = load_in_process(with({ CODEARTS_PIPELINE_TOKEN = CANARY }))
    assert.are.equal("OK", kind)
    assert.are.equal("http://127.0.0.1:9", endpoint)
    assert.are.equal(P_ENV, project)
    assert.are.equal("token", auth)
  end)

  it("builds a client from the environment alone (AK/SK)", function()
    local kind, endpoint, project, auth = load_in_process(with({ HUAWEICLOUD_SDK_AK = "envak", HUAWEICLOUD_SDK_SK = CANARY }))
    assert.are.equal("OK", kind)
    assert.are.equal("http://127.0.0.1:9", endpoint)
    assert.are.equal(P_ENV, project)
    assert.are.equal("ak/sk", auth)
  end)

  it("raises on an unknown option key, naming it", function()
    local kind, message = load_in_process(with({ CODEARTS_PIPELINE_TOKEN = "t" }), { timout = 1 })
    assert.are.equal("RAISED", kind)
    contains(message, "timout")
  end)

  it("raises on a wrong option type, naming it", function()
    local kind, message = load_in_process(with({ CODEARTS_PIPELINE_TOKEN = "t" }), { timeout = '1' })
    assert.are.equal("RAISED", kind)
    contains(message, "timeout")
  end)

  it("raises on token_file in the options (a config file key only)", function()
    local kind, message = load_in_process(with({ CODEARTS_PIPELINE_TOKEN = "t" }), { token_file = '/x' })
    assert.are.equal("RAISED", kind)
    contains(message, "token_file")
  end)

  it("fails with config when there is no endpoint", function()
    local kind, code, message = load_in_process(with({ CODEARTS_PIPELINE_ENDPOINT = false, CODEARTS_PIPELINE_TOKEN = CANARY }))
    assert.are.equal("FAIL", kind)
    assert.are.equal("config", code)
    contains(message, "endpoint")
    no_canary(message)
  end)

  it("fails with config when there are no credentials", function()
    local kind, code, message = load_in_process(with({}))
    assert.are.equal("FAIL", kind)
    assert.are.equal("config", code)
    contains(message, "credentials")
  end)

  -- project_id is optional for a client (README, Two project ids): the calls that need
  -- it (all of the API's) fail with config, before anything is sent
  it("makes a client without project_id, whose calls fail with config", function()
    local vars = with({ CODEARTS_PIPELINE_PROJECT_ID = false, CODEARTS_PIPELINE_TOKEN = CANARY })
    local kind = child(vars)
    assert.are.equal("OK", kind)
    local code, message
    kind, code, message = child(vars, "(pipeline.load()):retry(('a'):rep(32), ('b'):rep(32))")
    assert.are.equal("FAIL", kind)
    assert.are.equal("config", code)
    contains(message, "project_id")
    no_canary(message)
  end)

  it("maps CODEARTS_PIPELINE_REGION to the region table's endpoint", function()
    local kind, endpoint = load_in_process(with({ CODEARTS_PIPELINE_ENDPOINT = false, CODEARTS_PIPELINE_REGION = "cn-north-4",
      CODEARTS_PIPELINE_TOKEN = "t" }))
    assert.are.equal("OK", kind)
    assert.are.equal("https://cloudpipeline-ext.cn-north-4.myhuaweicloud.com", endpoint)
  end)

  it("maps options.region over CODEARTS_PIPELINE_ENDPOINT", function()
    local kind, endpoint = load_in_process(with({ CODEARTS_PIPELINE_TOKEN = "t" }), { region = 'tr-west-1' })
    assert.are.equal("OK", kind)
    assert.are.equal("https://pipeline-external.tr-west-1.myhuaweicloud.com", endpoint)
  end)

  it("fails with config on an unknown region, listing the known ones", function()
    local kind, code, message = load_in_process(with({ CODEARTS_PIPELINE_ENDPOINT = false, CODEARTS_PIPELINE_REGION = "xx-nowhere-9",
      CODEARTS_PIPELINE_TOKEN = CANARY }))
    assert.are.equal("FAIL", kind)
    assert.are.equal("config", code)
    contains(message, "xx-nowhere-9")
    contains(message, "cn-north-4")
    contains(message, "af-south-1")
    no_canary(message)
  end)

  -- pipeline.new reads the SDKs' endpoint overrides from the process's own
  -- environment: in a child process
  it("lets HUAWEICLOUD_SDK_REGION_CODEARTSPIPELINE_CN_NORTH_4 override the table", function()
    local kind, endpoint = child(with({ CODEARTS_PIPELINE_ENDPOINT = false, CODEARTS_PIPELINE_REGION = "cn-north-4",
      CODEARTS_PIPELINE_TOKEN = "t",
      HUAWEICLOUD_SDK_REGION_CODEARTSPIPELINE_CN_NORTH_4 = "http://127.0.0.1:9/override,http://127.0.0.1:10" }))
    assert.are.equal("OK", kind)
    assert.are.equal("http://127.0.0.1:9/override", endpoint)
  end)

  it("lets the override name a region that is not in the table", function()
    local kind, endpoint = child(with({ CODEARTS_PIPELINE_ENDPOINT = false, CODEARTS_PIPELINE_REGION = "xx-lab-1",
      CODEARTS_PIPELINE_TOKEN = "t", HUAWEICLOUD_SDK_REGION_CODEARTSPIPELINE_XX_LAB_1 = "http://127.0.0.1:9" }))
    assert.are.equal("OK", kind)
    assert.are.equal("http://127.0.0.1:9", endpoint)
  end)

  it("takes CODEARTS_PIPELINE_TOKEN over HUAWEICLOUD_SDK_AK/SK set beside it", function()
    local kind, _, _, auth_kind = load_in_process(with({ CODEARTS_PIPELINE_TOKEN = CANARY, HUAWEICLOUD_SDK_AK = "envak",
      HUAWEICLOUD_SDK_SK = CANARY .. "-sk" }))
    assert.are.equal("OK", kind)
    assert.are.equal("token", auth_kind)
  end)

  it("fails with config on two kinds of credentials in one layer, without the secrets", function()
    local kind, code, message = load_in_process(with({}), { token = CANARY, ak = "oak", sk = CANARY .. "-sk" })
    assert.are.equal("FAIL", kind)
    assert.are.equal("config", code)
    contains(message, "token")
    contains(message, "ak/sk")
    no_canary(message)
  end)

  it("reads a profile from CODEARTS_PIPELINE_CONFIG and CODEARTS_PIPELINE_PROFILE", function()
    write(home .. "/tok", "file-token", "600")
    local path = write(home .. "/c.lua", config_text(nil, {
      work = ("endpoint = %q, project_id = %q, token_file = 'tok'"):format(EP_PROFILE, P_PROFILE),
    }), "644")
    local kind, endpoint, project, auth = load_in_process({ CODEARTS_PIPELINE_CONFIG = path, CODEARTS_PIPELINE_PROFILE = "work" })
    assert.are.equal("OK", kind)
    assert.are.equal(EP_PROFILE, endpoint)
    assert.are.equal(P_PROFILE, project)
    assert.are.equal("token", auth)
  end)

  it("reads the default config file under HOME and ~/.huaweicloud/credentials", function()
    write(home .. "/.config/codearts-pipeline/config.lua",
      config_text(nil, { default = ("endpoint = %q"):format(EP_PROFILE) }), "644")
    write(home .. "/.huaweicloud/credentials", ("[basic]\nak = fak\nsk = %s\nproject_id = %s\n"):format(CANARY, P_CRED))
    local kind, endpoint, project, auth = load_in_process({})
    assert.are.equal("OK", kind)
    assert.are.equal(EP_PROFILE, endpoint)
    -- the file's project_id is the IAM project: never the CodeArts project
    assert.are.equal("nil", project)
    assert.are.equal("ak/sk", auth)
  end)

  it("refuses an insecure config file, without the secret", function()
    local path = write(home .. "/c.lua", config_text(nil, { default = ("token = %q"):format(CANARY) }), "644")
    local kind, code, message = load_in_process(with({ CODEARTS_PIPELINE_CONFIG = path }))
    assert.are.equal("FAIL", kind)
    assert.are.equal("config", code)
    contains(message, path)
    contains(message, "chmod 600")
    no_canary(message)
  end)

  it("refuses an absent CODEARTS_PIPELINE_CONFIG", function()
    local kind, code, message = load_in_process(with({ CODEARTS_PIPELINE_TOKEN = "t", CODEARTS_PIPELINE_CONFIG = home .. "/none.lua" }))
    assert.are.equal("FAIL", kind)
    assert.are.equal("config", code)
    contains(message, home .. "/none.lua")
  end)

  it("refuses a malformed CODEARTS_PIPELINE_PROJECT_ID", function()
    local kind, code, message = load_in_process(with({ CODEARTS_PIPELINE_TOKEN = CANARY, CODEARTS_PIPELINE_PROJECT_ID = "nope" }))
    assert.are.equal("FAIL", kind)
    assert.are.equal("config", code)
    contains(message, "project_id")
    no_canary(message)
  end)

  it("reads os.getenv when no getenv is given (child process)", function()
    local kind, endpoint, project, auth = child(with({ CODEARTS_PIPELINE_TOKEN = CANARY }))
    assert.are.equal("OK", kind)
    assert.are.equal("http://127.0.0.1:9", endpoint)
    assert.are.equal(P_ENV, project)
    assert.are.equal("token", auth)
  end)

  it("reads nothing of the process's environment when getenv is given", function()
    -- the child has a complete environment; the getenv given has none
    local kind, code, message = child(with({ CODEARTS_PIPELINE_TOKEN = CANARY }),
      ("pipeline.load({ getenv = function(name) return name == 'HOME' and %q or nil end })"):format(home))
    assert.are.equal("FAIL", kind)
    assert.are.equal("config", code)
    contains(message, "endpoint")
    no_canary(message)
  end)

  it("raises when getenv is not a function", function()
    local ok, raised = pcall(pipeline.load, { getenv = "os.getenv" })
    assert.is_false(ok)
    contains(tostring(raised), "getenv")
  end)

  describe("a token_file", function()
    local function profile_with_token_file(content)
      write(home .. "/tok", content, "600")
      return write(home .. "/c.lua", config_text(nil, {
        default = ("endpoint = %q, project_id = %q, token_file = 'tok'"):format(EP_PROFILE, P_PROFILE) }), "644")
    end

    it("holding a tab inside the token (abc<TAB>def) is the config failure, not an error", function()
      for _, content in ipairs({ "abc\tdef", CANARY .. "\t" .. CANARY }) do
        local kind, code, message = load_in_process({}, { config_file = profile_with_token_file(content) })
        assert.are.equal("FAIL", kind, code)
        assert.are.equal("config", code)
        contains(message, "token_file")
        contains(message, "control character")
        no_canary(message)
      end
    end)

    it("never makes pipeline.load raise, whatever its bytes", function()
      local contents = { "", " ", "\0", "\t", "abc\tdef", "abc\0def", "abc\r\ndef", "a\127b", "\255\254",
        ("x"):rep(4096), "tok\n", " tok \t\n" }
      -- every control character, space, DEL and bytes around them (the other
      -- bytes are judged as these are)
      for byte = 0, 33 do contents[#contents + 1] = CANARY .. string.char(byte) .. CANARY end
      for _, byte in ipairs({ 126, 127, 128, 254, 255 }) do
        contents[#contents + 1] = CANARY .. string.char(byte) .. CANARY
      end
      for _, content in ipairs(contents) do
        local kind, code, message = load_in_process({}, { config_file = profile_with_token_file(content) })
        assert(kind == "OK" or (kind == "FAIL" and code == "config"),
          ("token_file %q: %s %s %s"):format(content, kind, tostring(code), tostring(message)))
        if kind == "FAIL" then no_canary(message) end
      end
    end)

    it("is held to the rule of every token: the option's check agrees with core.token_problem", function()
      local core = require("pipeline.core")
      for _, token in ipairs({ "t", "abc\tdef", "abc\0def", "a\127b", "\255\254", "abc def", "x\r\ny" }) do
        local refused = core.token_problem(token) ~= nil
        local kind = load_in_process({}, { config_file = profile_with_token_file(token) })
        assert.equal(refused, kind ~= "OK", ("token_file %q"):format(token))
        local why = config.problem({ token = token }, config.CLIENT_OPTIONS, "options")
        assert.equal(refused, why ~= nil, ("option token %q"):format(token))
      end
    end)

    it("holding a token with spaces around it is trimmed and used", function()
      local kind, endpoint, _, auth = load_in_process({}, { config_file = profile_with_token_file(" tok \t\n") })
      assert.are.equal("OK", kind)
      assert.are.equal(EP_PROFILE, endpoint)
      assert.are.equal("token", auth)
    end)
  end)
end)


describe("pipeline.retry configuration (child processes, nothing sent)", function()
  each_test_in_its_home()

  local CALL = ("pipeline.retry(%q, %q, %q, %q)"):format(P_OPT, PIPE, RUN, CANARY)

  it("fails with config, before sending, when no endpoint is known", function()
    local kind, code, message = child({}, CALL)
    assert.are.equal("FAIL", kind)
    assert.are.equal("config", code)
    contains(message, "endpoint")
    no_canary(message)
  end)

  it("fails with config on an unknown region in its options", function()
    local call = ("pipeline.retry(%q, %q, %q, %q, { region = 'xx-none-1' })"):format(P_OPT, PIPE, RUN, CANARY)
    local kind, code, message = child({}, call)
    assert.are.equal("FAIL", kind)
    assert.are.equal("config", code)
    contains(message, "xx-none-1")
    no_canary(message)
  end)

  it("raises on an unknown option key", function()
    local call = ("pipeline.retry(%q, %q, %q, %q, { timout = 1 })"):format(P_OPT, PIPE, RUN, CANARY)
    local kind, message = child({}, call)
    assert.are.equal("RAISED", kind)
    contains(message, "timout")
    no_canary(message)
  end)

  it("lets its token argument win over two kinds of credentials in the environment", function()
    -- The environment's mixed credentials lose to the token argument, so
    -- the failure is the missing endpoint, not the credentials.
    local kind, code, message = child({ CODEARTS_PIPELINE_TOKEN = "x", HUAWEICLOUD_SDK_AK = "a",
      HUAWEICLOUD_SDK_SK = "b" }, CALL)
    assert.are.equal("FAIL", kind)
    assert.are.equal("config", code)
    contains(message, "endpoint")
    lacks(message, "two kinds")
  end)
end)

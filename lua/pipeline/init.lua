--- codearts-pipeline: drive the Huawei Cloud CodeArts Pipeline API from Lua.
--
--     local pipeline = require "pipeline"
--     local ok, err, code, info = pipeline.retry(project_id, pipeline_id, run_id, token,
--                                                { region = "cn-north-4" })
--
-- Misuse raises an error naming the argument; every runtime failure returns
-- nil, message, code, info (see docs/api.md).
local core = require("pipeline.core")
local config = require("pipeline.config")
local client = require("pipeline.client")
local regions = require("pipeline.regions")
local json_values = require("pipeline.json")
local compat = require("pipeline.compat")
local watch = require("pipeline.watch")

local pipeline = {
  _VERSION = core._VERSION,
  core = core,
  regions = regions,
  null = json_values.null,
  -- SDK-HMAC-SHA256 signing, for requests of one's own: the headers to add
  sign = core.sign,
  -- the fleet watcher's helpers (client:watch is the watcher itself):
  -- load_policy(path), default_policy(names), failed_jobs(run)
  watch = watch,
}

--- A client from options alone (no environment, no config file).
function pipeline.new(options)
  -- not a tail call: a misuse is raised at the caller, two levels up
  local c, message, code, info = client.new(options, 2)
  return c, message, code, info
end

--- A client from the configuration layers: options > environment (this
-- project's variables, the SDKs', ~/.huaweicloud/credentials) > config file
-- profile > defaults.  options.getenv(name), when given, is the environment
-- those layers read instead of os.getenv.
function pipeline.load(options)
  config.check(options, config.LOAD_OPTIONS, "pipeline.load", 2)
  local resolved, message, code, info = config.resolve(options)
  if not resolved then return nil, message, code, info end
  return client.new(resolved, 2, "pipeline.load")
end

--- Retries one run with a token: the call this project is named after.  The endpoint comes from
-- options.endpoint, else options.region, else the configuration layers.
function pipeline.retry(project_id, pipeline_id, run_id, token, options)
  client.check_id(project_id, 1, "project_id", "retry")
  client.check_id(pipeline_id, 2, "pipeline_id", "retry")
  client.check_id(run_id, 3, "run_id", "retry")
  if core.token_problem(token) then
    error(("bad argument #4 to 'retry' (token must be a non-empty string without control characters, got %s)")
      :format(type(token) == "string" and (token == "" and "an empty string" or "a string with control characters")
        or type(token)), 2)
  end
  config.check(options, config.LOAD_OPTIONS, "retry", 2, 5)
  options = options or {}
  local given = {}
  for name, value in pairs(options) do given[name] = value end
  given.project_id, given.token, given.getenv = project_id, token, nil
  -- An endpoint or region in the options is all this call needs: the
  -- configuration layers are read only to find one (or when a profile or
  -- config file is asked for).
  local resolved = given
  if not (options.endpoint or options.region) or options.profile or options.config_file then
    local message, code, info
    resolved, message, code, info = config.resolve(given, options.getenv, "retry")
    if not resolved then return nil, message, code, info end
  end
  local c, message, code, info = client.new(resolved, 2, "retry", 5)
  if not c then return nil, message, code, info end
  local results = compat.pack(c:retry(pipeline_id, run_id))
  c:close()
  return compat.unpack(results, 1, results.n)
end

return pipeline

--- Clients: one kept-alive transport, the credentials, and the operations,
-- each a few lines over one request function.
local core = require("pipeline.core")
local errors = require("pipeline.errors")
local redaction = require("pipeline.redaction")
local json_values = require("pipeline.json")
local config = require("pipeline.config")
local regions = require("pipeline.regions")
local auth = require("pipeline.auth")
local dates = require("pipeline.dates")
local scheduler = require("pipeline.scheduler")
local lifecycle = require("pipeline.lifecycle")
local option_schema = require("pipeline.options")
local cjson = require("cjson.safe").new()

local compat = require("pipeline.compat")

local job_of = scheduler.job_of

local client = {}

local Client = {}
Client.__index = Client

local DEFAULT_RETRIES = { max = 3, base_delay = 0.5, max_delay = 30 }

--- The longest the library sleeps at once (seconds): a retry delay
-- (Retry-After, retries.max_delay) is cut to it, and a longer wait interval
-- looks at the run at least this often.  Deadlines cut sleeps shorter still.
client.MAX_SLEEP = 3600

--- The most pages a listing fetches (each_run, each_pipeline, the CLI's
-- lists): a server that keeps sending full pages is stopped there.
client.MAX_PAGES = 1000

local function fail(op, detail)
  return errors.failure(op, "config", detail)
end

-- Raises unless value is an id, naming argument arg of function fname; level
-- (default 3: the caller of the function that checks) as for error().
local function check_id(value, arg, name, fname, level)
  if not core.is_id(value) then
    error(("bad argument #%d to '%s' (%s must be 32 ASCII letters or digits, got %s)")
      :format(arg, fname, name, type(value) == "string" and ("%q"):format(value) or type(value)), level or 3)
  end
end
client.check_id = check_id

--- Builds a client from complete options (see config.CLIENT_OPTIONS).
-- Misuse raises; a missing endpoint or credentials returns nil, message,
-- "config", info.  op names the call in messages (default "pipeline.new"),
-- arg the options' argument number in it (default 1).
function client.new(options, level, op, arg)
  level = (level or 1) + 1
  op = op or "pipeline.new"
  config.check(options, config.CLIENT_OPTIONS, op, level, arg)
  options = options or {}

  local endpoints = options.endpoint and { options.endpoint }
  if endpoints == nil and options.region ~= nil then
    local why
    endpoints, why = regions.endpoints_of(options.region)
    if not endpoints then return fail(op, why) end
  end
  if endpoints == nil then
    return fail(op, "no endpoint: set endpoint or region" .. (op == "pipeline.new" and "" or
      " (in the options, CODEARTS_PIPELINE_ENDPOINT or CODEARTS_PIPELINE_REGION, or a config file profile)"))
  end
  for _, endpoint in ipairs(endpoints) do
    local ok, refusal = core.check_url(endpoint, options.allow_http, true)
    if not ok then return fail(op, ("endpoint %s %s"):format(redaction.shown_url(endpoint), refusal)) end
  end
  local _, two_kinds = config.credential_kind(options, "options")
  if two_kinds then return fail(op, two_kinds) end
  local credentials, why = auth.new(options)
  if not credentials then return fail(op, why) end

  local transport_options = {}
  for _, name in ipairs(core.TRANSPORT_OPTIONS) do transport_options[name] = options[name] end
  local retries = options.retries
  if retries == false then
    retries = { max = 0, base_delay = 0, max_delay = 0 }
  else
    retries = retries or {}
    retries = {
      max = retries.max or DEFAULT_RETRIES.max,
      base_delay = retries.base_delay or DEFAULT_RETRIES.base_delay,
      max_delay = retries.max_delay or DEFAULT_RETRIES.max_delay,
    }
  end

  -- The credentials' keeper, which learns each token a provider hands out,
  -- and a proxy password if the proxy URL holds one.
  local secrets = credentials.secrets
  secrets.add(config.proxy_password(options.proxy))

  local transport = core.client(transport_options)
  -- its failures hide every secret the keeper learns, as it learns them
  transport:set_secrets(redaction.secret_list(secrets))
  local created = setmetatable({
    -- a batch (multi handle) with the same transport options, for the
    -- concurrent calls, sharing the client's connections, TLS sessions and
    -- DNS answers; a closure, as the options may hold a proxy password
    _new_batch = function(concurrency)
      local batch_options = { concurrency = concurrency, share = not transport:is_closed() and transport or nil }
      for name, value in pairs(transport_options) do batch_options[name] = value end
      return core.batch(batch_options)
    end,
    -- the endpoint in use, and the set it comes from (a region's may hold
    -- several, tried in order when a connection cannot be made)
    endpoint = endpoints[1]:gsub("/+$", ""),
    _endpoints = auth.endpoint_set(endpoints),
    project_id = options.project_id,
    _transport = transport,
    _auth = credentials,
    _secrets = secrets,
    _retries = retries,
    _on_event = options.on_event,
    _sleep = options.sleep or core.sleep,
    _rate = options.rate, -- requests per second, for every call of this client
    _next_slot = nil,     -- on the _now() clock: when the next request may go
    _skew = 0, -- seconds _now() runs ahead of core.monotonic (see _pause)
    -- the job of one of this client's schedulers being resumed now, as
    -- running.worker (set by the scheduler): its calls go through it
    _running = {},
  }, Client)
  created:_plan_direct()
  if options.insecure then
    -- said once, where the client is made: every request of it is exposed
    created:_emit({ type = "warning", op = op, option = "insecure",
      message = "TLS verification is off (insecure = true): any server can pose as the endpoint" })
  end
  return created
end

--------------------------------------------------------------- direct calls

-- A client whose requests all carry the same headers (a fixed token), with
-- no events to report and no rate to keep, sends an operation's first
-- attempt straight from the operation (see Client:_run_action): the
-- request's URL and headers are ready, and a plain success needs nothing
-- more.  Anything else goes on in Client:call with that attempt's answer.
-- Called again whenever what it rests on changes (endpoint, close).
-- (Kept outside the client, whose dump must show no token: client -> plan.)
local direct_plans = setmetatable({}, { __mode = "k" })

function Client:_plan_direct()
  local static = self._auth.static_headers
  if not static or self._on_event or self._rate or not self.project_id
    or not self._transport or self._transport:is_closed() then
    direct_plans[self] = nil
    return
  end
  local headers = { Accept = "application/json", ["Content-Type"] = "application/json" }
  for name, value in pairs(static()) do headers[name] = value end
  local endpoint = self._endpoints.urls[self._endpoints.index]
  direct_plans[self] = { headers = headers, endpoint = endpoint,
    api = ("%s/v5/%s/api/"):format(endpoint, self.project_id) }
end

--------------------------------------------------------------- events

local function redacted_headers(headers)
  local copy = {}
  for name, value in pairs(headers) do
    copy[name] = auth.SECRET_HEADERS[name:lower()] and "***" or value
  end
  return copy
end

-- Events carry what the server sent (a request id, a message): a secret it
-- echoed back is hidden here, for every handler.
function Client:_emit(event)
  if self._on_event then self._on_event(redaction.redact_all(event, self._secrets)) end
end

--------------------------------------------------------------- retries

--- Seconds to wait from a Retry-After value: delay-seconds or an HTTP date.
function client.retry_after(value, now)
  if type(value) ~= "string" then return nil end
  local seconds = value:match("^%s*(%d+)%s*$")
  if seconds then return tonumber(seconds) end
  local at = dates.http_date(value)
  return at and math.max(0, at - (now or os.time()))
end

-- How long to wait before attempt+1 of a failed request, or nil to give up.
-- Only answers that say "try later" (429, 503, throttling codes) and
-- failures that never reached the server are repeated here; a request that
-- may have been processed is not sent again.
function Client:_retry_delay(code, info, attempt, idempotent, sent)
  if attempt > self._retries.max then return nil end
  local again = code == "throttled" or info.status == 503
    or ((code == "network" or code == "timeout") and (idempotent or not sent))
    or (idempotent and (info.status == 502 or info.status == 504))
  if not again then return nil end
  local retry_after = client.retry_after(info.retry_after)
  local ceiling = math.min(self._retries.max_delay, self._retries.base_delay * 2 ^ (attempt - 1))
  local delay = retry_after or math.random() * ceiling -- full jitter
  return math.min(delay, self._retries.max_delay, client.MAX_SLEEP)
end

--------------------------------------------------------------- requests

------------------------------------------------- what the modules use
-- The lifecycle (pipeline.lifecycle), the watcher and the credentials use
-- the client through these methods: _now, _pause, _emit, _job, _scheduler,
-- and the operations.  Nothing else of the client is theirs to read.

--- The job of one of this client's schedulers (a worker) when the calling
-- code runs as one, else nil.
function Client:_job()
  return job_of(self._running)
end

--- A new scheduler whose jobs' calls of this client run side by side: over
-- a batch sharing the client's connections, on the client's clock, held by
-- its retries.max_delay after a 429.  nested: made from inside a job of
-- another one (it then never blocks: see scheduler.new).
function Client:_scheduler(concurrency, nested)
  return scheduler.new({ concurrency = concurrency, nested = nested, running = self._running,
    new_batch = self._new_batch,
    now = function() return self:_now() end,
    pause = function(seconds) return self:_pause(seconds) end,
    on_throttle = function(event) return self:_emit(event) end,
    max_hold = self._retries.max_delay })
end

--- Sends one request: when the calling code is a job of one of the client's
-- schedulers, through that scheduler (concurrently with the others), else
-- on the client's own handle.  timeout (seconds, or nil) shortens the
-- client's own for this request.
function Client:_send(method, url, headers, body, single_send, timeout, expect, op, with_info)
  if job_of(self._running) then
    return scheduler.send(method, url, headers, body, single_send, timeout, expect, op, with_info)
  end
  return self._transport:request(method, url, headers, body, single_send, timeout, expect, op, with_info)
end

--- The client's clock, for deadlines: monotonic seconds, moved ahead by
-- whatever its sleep function claimed to wait beyond what really passed.  A
-- sleep that returns early (a test's fake, a host that only yields to its
-- loop) then counts as the wait asked of it, so a loop against a deadline
-- ends instead of polling as fast as it can.  Its schedulers keep time by it.
function Client:_now()
  return core.monotonic() + self._skew
end

--- Waits for the client's turn under options.rate (requests per second): a
-- token bucket of one token, shared by every call of the client (batches,
-- the watcher and IAM calls included).  Each request takes the next free
-- slot, 1/rate after the one before, so jobs running side by side queue up
-- in order instead of bursting against the gateway's quota.
function Client:_take_slot()
  local rate = self._rate
  if not rate then return end
  local now = self:_now()
  local slot = math.max(now, self._next_slot or now)
  self._next_slot = slot + 1 / rate
  if slot > now then self:_pause(slot - now) end
end

--- Waits seconds (at most client.MAX_SLEEP): in a job of one of the
-- client's schedulers it parks the job, else it is the client's sleep.
function Client:_pause(seconds)
  seconds = math.min(seconds, client.MAX_SLEEP)
  if job_of(self._running) then return scheduler.sleep(seconds) end
  local due = self:_now() + seconds
  self._sleep(seconds)
  local short = due - self:_now()
  if short > 0 then self._skew = self._skew + short end
end

-- A failure after which nobody knows whether the server acted on the request:
-- the connection failed or timed out after it was sent, or a gateway (502,
-- 504) lost the answer.
local function outcome_unknown(code, info, sent)
  return ((code == "network" or code == "timeout") and sent) or info.status == 502 or info.status == 504
end

--- One operation's request: builds the URL under /v5/{project_id}/api/,
-- authenticates each attempt anew, repeats what may be repeated, and settles
-- the answer by the error rule.  spec: op, method, path, query, body,
-- expect ("success" or "json"), idempotent, deadline (on the _now() clock);
-- endpoints (an auth.endpoint_set) for a request outside the API (IAM), with
-- path under it, and iam for one signed without the service's X-Project-Id;
-- anonymous for one that carries no credentials, content_type for a body that
-- is not the API's; for a request that must not be sent twice blindly,
-- verify(client, spec): after an unknown outcome it tells whether the request
-- took effect (true), did not (false), or cannot tell (nil).
function Client:call(spec)
  if not self._transport or self._transport:is_closed() then
    error(("%s: attempt to use a closed client"):format(spec.op), 3)
  end
  if not spec.endpoints and not self.project_id then
    return errors.failure(spec.op, "config", "no project_id (the CodeArts project id, 32 letters or digits, "
      .. "in the project's page address): set project_id (in the options, CODEARTS_PIPELINE_PROJECT_ID, "
      .. "--project, or a config file profile)")
  end
  local endpoints = spec.endpoints or self._endpoints
  local path = spec.endpoints and spec.path or ("v5/%s/api/%s"):format(self.project_id, spec.path)
  if spec.query and spec.query ~= "" then path = path .. "?" .. spec.query end
  local body = spec.body ~= nil and assert(cjson.encode(spec.body)) or nil
  local attempt, failovers, refreshed = 0, 0, false
  while true do
    attempt = attempt + 1
    if self._rate then self:_take_slot() end
    local url = endpoints.urls[endpoints.index] .. "/" .. path
    -- Content-Type as the official SDKs send it: on every call, with a body or
    -- not.  (The constructor sizes the table for the headers the credentials
    -- add, which a nil field does not fill.)
    local headers = { Accept = "application/json", ["X-Auth-Token"] = nil,
      ["Content-Type"] = spec.content_type or "application/json" }
    if not spec.anonymous and not (attempt == 1 and spec.answered) then
      local ok, message, code, info = self._auth.apply(self, spec.op, spec.method, url, headers, body, spec.iam)
      if not ok then
        info.attempts = attempt
        return nil, message, code, info
      end
    end
    if self._on_event then
      self:_emit({ type = "request", op = spec.op, method = spec.method, url = url,
        headers = redacted_headers(headers), attempt = attempt })
    end
    local started = self._on_event and core.monotonic()
    -- A caller's deadline bounds the request itself, not only the waits; a
    -- second at least, so a deadline just reached still allows one answer.
    local timeout = spec.deadline and math.max(1, spec.deadline - self:_now())
    -- the transport's result: true (a good "success" answer, with its info
    -- when events want it), body and info (a good "json" answer), or nil,
    -- message, code, info (anything else, already classified)
    local value, second, code, failure_info
    local answered = attempt == 1 and spec.answered
    if answered then
      -- the first attempt, made directly (Client:_run_action, _retry_first)
      value, second, code, failure_info = answered[1], answered[2], answered[3], answered[4]
    elseif spec.op == "retry" and not job_of(self._running) then
      -- the C retry (retry.c), the request core.retry sends
      value, second, code, failure_info = self._transport:retry(endpoints.urls[endpoints.index], self.project_id,
        spec.pipeline_id, spec.run_id, headers, self._on_event ~= nil)
    else
      value, second, code, failure_info = self:_send(spec.method, url, headers, body, not spec.idempotent,
        timeout, spec.expect, spec.op, self._on_event ~= nil)
    end
    local failed = value == nil
    local info = failed and failure_info or second
    if self._on_event then
      self:_emit({ type = "response", op = spec.op, method = spec.method, url = url,
        status = info and info.status, request_id = info and info.request_id,
        error = failed and second or nil, code = failed and code or nil,
        elapsed = core.monotonic() - started, attempt = attempt })
    end
    if value == true then return true end
    if not failed then
      -- A decoded answer comes with its info: count the attempts there too,
      -- for a failure _fetch finds in its shape; info.headers holds the
      -- answer's headers, for one whose news is in one (IAM's X-Subject-Token).
      local json, why = json_values.decode(value)
      if json == nil then
        return errors.failure(spec.op, "protocol", "response is not JSON: " .. tostring(why),
          { status = info.status, request_id = info.request_id, attempts = attempt }, self._secrets)
      end
      info.attempts = attempt
      return json, info
    end
    local message, status, sent = second, failure_info.status, failure_info.sent
    failure_info.attempts = attempt
    local delay, moved
    if code == "network" and not sent and endpoints.index < #endpoints.urls then
      -- No connection, nothing sent: the next endpoint of the set, at once,
      -- and kept for the calls after this one.
      endpoints.index = endpoints.index + 1
      if endpoints == self._endpoints then
        self.endpoint = endpoints.urls[endpoints.index]
        self:_plan_direct()
      end
      failovers, delay, moved = failovers + 1, 0, true
      self:_emit({ type = "failover", op = spec.op, from = url, to = endpoints.urls[endpoints.index],
        reason = message, attempt = attempt })
    elseif status == 401 and self._auth.invalidate and not refreshed and not spec.anonymous then
      -- The token was refused (expired or revoked early): fetch a new one and
      -- repeat the call once; a 401 means the call was not carried out.
      self._auth.invalidate()
      refreshed, delay = true, 0
    elseif not spec.idempotent and outcome_unknown(code, failure_info, sent) then
      -- Never sent again blindly: the run's status tells whether it took
      -- effect.  When it shows no effect the server may still be working on
      -- it (a timeout), so it is reported, not repeated.
      local took = spec.verify and spec.verify(self, spec)
      self:_emit({ type = "verify", op = spec.op, url = url, reason = code, status = status,
        took_effect = took, attempt = attempt })
      if took then return true end
    else
      delay = self:_retry_delay(code, failure_info, attempt - failovers, spec.idempotent, sent)
    end
    if delay and spec.deadline and self:_now() + delay > spec.deadline then delay = nil end
    if not delay then return nil, message, code, failure_info end
    if not moved then
      self:_emit({ type = "retry", op = spec.op, method = spec.method, url = url,
        reason = code, status = status, delay = delay, attempt = attempt })
    end
    if delay > 0 then self:_pause(delay) end
  end
end

--------------------------------------------------------------- operations

-- Calls spec, then checks the decoded answer: shape(json) returns the
-- operation's results, or nil and what is wrong (a protocol failure), or
-- nil, what is wrong, "api" and the service's error_msg (a refusal the
-- service explains in a 2xx answer).
function Client:_fetch(spec, shape)
  local json, info, code, failure_info = self:call(spec)
  if json == nil then return nil, info, code, failure_info end
  local value, extra, refusal, error_msg = shape(json)
  if value == nil then
    -- the answer's info, less its headers (internal, and not redacted)
    return errors.failure(spec.op, refusal or "protocol", refusal and extra or ("unexpected response: " .. extra),
      { status = info.status, request_id = info.request_id, attempts = info.attempts, error_msg = error_msg },
      self._secrets)
  end
  return value, extra
end

local url_encode = auth.url_encode

-- level as for error() (default 3: the caller of the function that checks).
local function check_table(value, arg, fname, what, level)
  option_schema.check_table(value, arg, fname, what, level or 3)
end

-- Raises unless query (a list call's query, a run's body: a schema of
-- "query field" or "body field") fits its schema.  level as for error()
-- (default 3).
local function check_query(query, schema, arg, fname, level)
  option_schema.check(schema, query, arg, fname, level or 3)
end

-- The fields of the official SDKs' ListPipelineRunsQuery and ListPipelineQuery
-- (the Python SDK's, a superset of the Go SDK's); the API checks their values.
local function query_fields(names, noun)
  local specs = {}
  for name in names:gmatch("%S+") do specs[name] = "any" end
  return option_schema.schema(specs, noun or "query field")
end
local RUNS_QUERY = query_fields([[status start_time end_time update_time trigger_type executor_ids offset limit
  sort_key sort_dir show_job_details stage_id job_id]])
local PIPELINES_QUERY = query_fields([[project_id project_ids component_id name status is_publish creator_id
  creator_ids executor_ids start_time end_time pipeline_run_update_time exclude_pipeline_id include_pipeline_id
  tag_list manifest_version_list offset limit sort_key sort_dir group_path_id by_group is_banned query_new
  security_level_list dev_uc_security_level_list]])

-- The list body for query: a status given as one string becomes a list.  An
-- empty status list means no filter and is left out: lua-cjson would send it
-- as an empty object, {}, which the service refuses ("invalid status").
local function list_body(query)
  local body = {}
  for name, value in pairs(query or {}) do body[name] = value end
  if type(body.status) == "string" then body.status = { body.status } end
  if type(body.status) == "table" and next(body.status) == nil then body.status = nil end
  return body
end

local function is_list(value)
  return type(value) == "table" and (next(value) == nil or value[1] ~= nil)
end

-- The items and total of a list answer, or nil and what is wrong.
local function list_of(json, field)
  if type(json) ~= "table" or not is_list(json[field]) then return nil, "no " .. field .. " list" end
  return json[field], compat.tointeger(tonumber(json.total)) or #json[field]
end

local function run_path(pipeline_id, run_id, action)
  return "pipelines/" .. pipeline_id .. "/pipeline-runs/" .. run_id .. "/" .. action
end

-- Whether a run's status shows that a retry (or stop) took effect: true,
-- false, or nil when the status cannot be read.
local function status_shows(self, pipeline_id, run_id, effect)
  local run = self:detail(pipeline_id, run_id)
  if not run then return nil end
  return effect(run.status)
end

-- For each action on a run: its method, and the statuses after which it has
-- taken effect.
local RUN_ACTIONS = {
  retry = { method = "PUT", shows = function(status) return status ~= "FAILED" and status ~= "CANCELED" end },
  stop = { method = "POST",
    shows = function(status) return status ~= "RUNNING" and status ~= "PAUSED" and status ~= "SUSPEND" end },
}

-- Retries or stops a run.  An action whose outcome is unknown is never sent
-- again: the run's status is read, and the call succeeds if it shows the
-- action took effect.
-- (verify is one function for every call, reading the run from the spec:
-- no closure per call.)
local function verify_run_action(self, spec)
  return status_shows(self, spec.pipeline_id, spec.run_id, RUN_ACTIONS[spec.op].shows)
end

-- answered: the first attempt's answer when it was already made (see
-- Client:_retry_first).
function Client:_run_action(action, pipeline_id, run_id, answered)
  local method = RUN_ACTIONS[action].method
  local direct = not answered and direct_plans[self]
  if direct and not job_of(self._running) then
    local value, message, code, info
    if action == "retry" then
      value, message, code, info = self._transport:retry(direct.endpoint, self.project_id, pipeline_id, run_id,
        direct.headers)
    else
      value, message, code, info = self._transport:request(method, direct.api .. run_path(pipeline_id, run_id,
        action), direct.headers, nil, true, nil, "success", action)
    end
    if value == true then return true end
    answered = { value, message, code, info }
  end
  return self:call({ op = action, method = method, expect = "success",
    path = run_path(pipeline_id, run_id, action), pipeline_id = pipeline_id, run_id = run_id,
    verify = verify_run_action, answered = answered })
end

--- The first attempt of a retry of each run (pipeline_ids[i], run_ids[i]),
-- all at once over a batch of concurrency transfers, in one C loop: per
-- index, true for a plain success, else the attempt's answer (for
-- _retry_after); none for a request not sent (after a 429 the rest go on
-- under the scheduler's throttling).  nil when the client sends no direct
-- requests (see _plan_direct) or the caller is a job of a scheduler.
function Client:_retry_first(pipeline_ids, run_ids, concurrency)
  local direct = direct_plans[self]
  if not direct or job_of(self._running) or #pipeline_ids == 0 then return nil end
  local urls, api = {}, direct.api
  for index = 1, #pipeline_ids do
    -- run_path's path in the same concatenation as the base: one string a
    -- call, not two (this loop runs once per run of the list)
    urls[index] = api .. "pipelines/" .. pipeline_ids[index] .. "/pipeline-runs/" .. run_ids[index] .. "/retry"
  end
  local batch = self._new_batch(math.min(concurrency, #urls))
  local ok, answers = pcall(batch.send_all, batch, "PUT", urls, direct.headers, "success", "retry")
  batch:close()
  if not ok then error(answers, 0) end
  return answers
end

--- A retry whose first attempt was made by _retry_first (answered: its
-- answer, or nil when it was not sent).
function Client:_retry_after(pipeline_id, run_id, _, answered)
  return self:_run_action("retry", pipeline_id, run_id, answered)
end

-- The method for an action on a run (retry, stop): true, or nil, message,
-- code, info.
local function run_action_method(action)
  return function(self, pipeline_id, run_id)
    check_id(pipeline_id, 1, "pipeline_id", action)
    check_id(run_id, 2, "run_id", action)
    return self:_run_action(action, pipeline_id, run_id)
  end
end

--- Retries a pipeline run: true, or nil, message, code, info.
Client.retry = run_action_method("retry")

local RUN_BODY = query_fields("sources description variables choose_jobs choose_stages", "body field")

-- The start body, with empty lists left out: lua-cjson would send them as
-- empty objects, and an absent list means the same as an empty one.
local function run_body(body)
  local copy = {}
  for name, value in pairs(body or {}) do
    if not (type(value) == "table" and next(value) == nil) then copy[name] = value end
  end
  return copy
end

--- Starts a run: the new run's id.  body: sources, description, variables
-- ({name, value} pairs), choose_jobs, choose_stages, as the API takes them.
function Client:run(pipeline_id, body)
  check_id(pipeline_id, 1, "pipeline_id", "run")
  check_query(body, RUN_BODY, 2, "run")
  return self:_fetch({ op = "run", method = "POST", expect = "json",
    path = ("pipelines/%s/run"):format(pipeline_id), body = run_body(body) }, function(json)
    if type(json) == "table" and core.is_id(json.pipeline_run_id) then return json.pipeline_run_id end
    -- a start the service refused, saying why
    if type(json) == "table" and type(json.error_msg) == "string" and json.error_msg ~= "" then
      return nil, "the run was not started", "api", json.error_msg
    end
    return nil, "no pipeline_run_id"
  end)
end

--- Stops a run: true, or nil, message, code, info.
Client.stop = run_action_method("stop")

--- A run with its stages and jobs, as the API returns it.
function Client:detail(pipeline_id, run_id)
  check_id(pipeline_id, 1, "pipeline_id", "detail")
  check_id(run_id, 2, "run_id", "detail")
  return self:_detail(pipeline_id, run_id)
end

-- detail, with an optional deadline for its own retries.
function Client:_detail(pipeline_id, run_id, deadline)
  return self:_fetch({ op = "detail", method = "GET", expect = "json", idempotent = true, deadline = deadline,
    path = ("pipelines/%s/pipeline-runs/detail"):format(pipeline_id),
    query = "pipeline_run_id=" .. url_encode(run_id) }, function(json)
    if type(json) == "table" and type(json.status) == "string" then return json end
    return nil, "no run status"
  end)
end

--- One page of a pipeline's runs: runs, total.  query: status (a string or a
-- list), start_time, end_time, offset, limit, sort_key, sort_dir.
function Client:runs(pipeline_id, query)
  check_id(pipeline_id, 1, "pipeline_id", "runs")
  check_query(query, RUNS_QUERY, 2, "runs")
  return self:_fetch({ op = "runs", method = "POST", expect = "json", idempotent = true,
    path = ("pipelines/%s/pipeline-runs/list"):format(pipeline_id), body = list_body(query) },
    function(json) return list_of(json, "pipeline_runs") end)
end

--- One page of the project's pipelines: pipelines, total.  query: name,
-- status, offset, limit, sort_key, sort_dir and the API's other filters.
function Client:pipelines(query)
  check_query(query, PIPELINES_QUERY, 1, "pipelines")
  return self:_fetch({ op = "pipelines", method = "POST", expect = "json",
    idempotent = true, path = "pipelines/list", body = list_body(query) },
    function(json) return list_of(json, "pipelines") end)
end

--- The latest run of each of several pipelines: an array of runs.
function Client:latest(pipeline_ids)
  check_table(pipeline_ids, 1, "latest", "pipeline_ids")
  if pipeline_ids == nil or #pipeline_ids == 0 then
    error("bad argument #1 to 'latest' (pipeline_ids must be a non-empty list)", 2)
  end
  for i, id in ipairs(pipeline_ids) do check_id(id, 1, ("pipeline_ids[%d]"):format(i), "latest") end
  return self:_fetch({ op = "latest", method = "POST", expect = "json",
    idempotent = true, path = "pipelines/status", body = pipeline_ids }, function(json)
    if is_list(json) then return json end
    return nil, "not a list of runs"
  end)
end

--- The pipeline's detail, as the API returns it.
function Client:pipeline(pipeline_id)
  check_id(pipeline_id, 1, "pipeline_id", "pipeline")
  return self:_fetch({ op = "pipeline", method = "GET", expect = "json", idempotent = true,
    path = "pipelines/" .. pipeline_id }, function(json)
    if type(json) == "table" and (type(json.id) == "string" or type(json.name) == "string") then return json end
    return nil, "not a pipeline (no id or name)"
  end)
end

-- Raises unless value is a job or step id of a run: ids of the run detail's
-- stages[].jobs[].id and jobs[].steps[].id, usually 32 characters but of no
-- fixed length, so any non-empty run of ASCII letters and digits.
local function check_part_id(value, arg, name, fname)
  if type(value) ~= "string" or not value:find("^%w+$") then
    error(("bad argument #%d to '%s' (%s must be a non-empty string of ASCII letters and digits, got %s)")
      :format(arg, fname, name, type(value) == "string" and ("%q"):format(value) or type(value)), 4)
  end
end

-- The path of a step's action, its ids checked (level 4: the caller of the
-- method that asks).
local function step_path(fname, pipeline_id, run_id, job_run_id, step_run_id, action)
  check_id(pipeline_id, 1, "pipeline_id", fname, 4)
  check_id(run_id, 2, "run_id", fname, 4)
  check_part_id(job_run_id, 3, "job_run_id", fname)
  check_part_id(step_run_id, 4, "step_run_id", fname)
  return run_path(pipeline_id, run_id, ("jobs/%s/steps/%s/%s"):format(job_run_id, step_run_id, action))
end

--- Passes a manual review step waiting in a run: true, or nil, message, code,
-- info.  The job and step ids are the run detail's jobs[].id and steps[].id.
function Client:approve(pipeline_id, run_id, job_run_id, step_run_id)
  return self:call({ op = "approve", method = "POST", expect = "success",
    path = step_path("approve", pipeline_id, run_id, job_run_id, step_run_id, "pass") })
end

--- Refuses a manual review step waiting in a run (as approve).
function Client:reject(pipeline_id, run_id, job_run_id, step_run_id)
  return self:call({ op = "reject", method = "POST", expect = "success",
    path = step_path("reject", pipeline_id, run_id, job_run_id, step_run_id, "refuse") })
end

local LOG_QUERY = query_fields("start_offset end_offset limit sort")
local LOG_PAGE_LINES = 500

-- The body of a log request: query's fields checked, the API's defaults
-- filled in (from the start, 500 lines a page, oldest first).
local function log_body(query, arg, fname)
  check_query(query, LOG_QUERY, arg, fname, 4)
  query = query or {}
  local body = { start_offset = query.start_offset or 0, end_offset = query.end_offset or 0,
    limit = query.limit or LOG_PAGE_LINES, sort = query.sort or "asc" }
  for _, name in ipairs({ "start_offset", "end_offset", "limit" }) do
    local n = body[name]
    if type(n) ~= "number" or n < 0 or n ~= math.floor(n) or (name == "limit" and n < 1) then
      error(("bad argument #%d to '%s' (%s must be a whole number%s, got %s)"):format(arg, fname, name,
        name == "limit" and " of lines from 1" or " from 0", tostring(n)), 3)
    end
    body[name] = compat.tointeger(n) or n
  end
  if body.sort ~= "asc" and body.sort ~= "desc" then
    error(("bad argument #%d to '%s' (sort must be \"asc\" or \"desc\")"):format(arg, fname), 3)
  end
  return body
end

-- One page of a step's log: the answer, or nil and what is wrong.
local function log_page(json)
  if type(json) ~= "table" or json.log == nil then return nil, "not a log page (no log)" end
  if json.log ~= json_values.null and type(json.log) ~= "string" then return nil, "log is not a string" end
  if json.has_more ~= nil and type(json.has_more) ~= "boolean" then return nil, "has_more is not a boolean" end
  for _, name in ipairs({ "start_offset", "end_offset" }) do
    local offset = json[name]
    if offset ~= nil and not (type(offset) == "string" or type(offset) == "number") then
      return nil, name .. " is not an offset"
    end
  end
  if type(json.log) ~= "string" then json.log = "" end
  json.has_more = json.has_more == true
  return json
end

function Client:_log_page(path, body)
  return self:_fetch({ op = "logs", method = "POST", expect = "json", idempotent = true, path = path,
    body = body, content_type = "application/json;charset=UTF-8" }, log_page)
end

--- One page of a step's log: {log, has_more, start_offset, end_offset,
-- step_run_id} as the API returns it.  query: start_offset, end_offset (both
-- 0, the default, mean the whole log), limit (lines, default 500), sort
-- ("asc", the default, or "desc").  To read the next page, pass the answer's
-- start_offset and end_offset back (each_log does).
function Client:logs(pipeline_id, run_id, job_run_id, step_run_id, query)
  local path = step_path("logs", pipeline_id, run_id, job_run_id, step_run_id, "logs")
  return self:_log_page(path, log_body(query, 5, "logs"))
end

--- Iterates over the pages of a step's log (query as for logs):
--   for page, err, code in client:each_log(pipeline_id, run_id, job_id, step_id) do
--     io.write(page.log)
--   end
-- On failure the loop sees page == false once, with message, code, info.
function Client:each_log(pipeline_id, run_id, job_run_id, step_run_id, query)
  local path = step_path("each_log", pipeline_id, run_id, job_run_id, step_run_id, "logs")
  return self:_log_pages(path, log_body(query, 5, "each_log"))
end

-- The iterator of each_log, from the first request's path and body.
function Client:_log_pages(path, body)
  local done = false
  return function()
    if done then return nil end
    local page, message, code, info = self:_log_page(path, body)
    if page == nil then
      done = true
      return false, message, code, info
    end
    local next_start, next_end = tonumber(page.start_offset), tonumber(page.end_offset)
    -- the end, or offsets that would give the same page forever
    if not page.has_more or not (next_start and next_end)
      or (next_start == body.start_offset and next_end == body.end_offset) then
      done = true
      return page
    end
    -- as the API says: the answer's offsets go into the next request
    body = { start_offset = compat.tointeger(next_start) or next_start,
      end_offset = compat.tointeger(next_end) or next_end, limit = body.limit, sort = body.sort }
    return page
  end
end

local DEFAULT_LOG_BYTES = 8 * 1024 * 1024

--- A step's whole log as one string, read page by page up to max_bytes
-- (default 8 MiB): text, and whether it was cut there; or nil, message,
-- code, info.  options: max_bytes, and the query fields of logs.
function Client:full_log(pipeline_id, run_id, job_run_id, step_run_id, options)
  check_table(options, 5, "full_log", "options")
  local query, max_bytes = {}, DEFAULT_LOG_BYTES
  for name, value in pairs(options or {}) do
    if name == "max_bytes" then max_bytes = value else query[name] = value end
  end
  if type(max_bytes) ~= "number" or max_bytes ~= max_bytes or max_bytes < 1 or max_bytes == math.huge then
    error("bad argument #5 to 'full_log' (max_bytes must be a positive number of bytes)", 2)
  end
  local path = step_path("full_log", pipeline_id, run_id, job_run_id, step_run_id, "logs")
  local body = log_body(query, 5, "full_log")
  local parts, size = {}, 0
  for page, message, code, info in self:_log_pages(path, body) do
    if page == false then return nil, message, code, info end
    if size + #page.log >= max_bytes then
      parts[#parts + 1] = page.log:sub(1, max_bytes - size)
      return table.concat(parts), size + #page.log > max_bytes or page.has_more
    end
    parts[#parts + 1] = page.log
    size = size + #page.log
  end
  return table.concat(parts), false
end

--- The artifacts a run produced: an array of {name, artifact_version,
-- artifact_type, artifact_download_url_with_id, file_size, build_no, ...}.
function Client:artifacts(pipeline_id, run_id)
  check_id(pipeline_id, 1, "pipeline_id", "artifacts")
  check_id(run_id, 2, "run_id", "artifacts")
  return self:_fetch({ op = "artifacts", method = "GET", expect = "json", idempotent = true,
    path = run_path(pipeline_id, run_id, "artifacts") }, function(json)
    if type(json) == "table" and json.artifacts == json_values.null then return {} end
    if type(json) ~= "table" or not is_list(json.artifacts) then return nil, "no artifacts list" end
    return json.artifacts
  end)
end

-- Why paging must stop after a page of items (the server sent the same page
-- again, or more than client.MAX_PAGES pages came), or nil.  pages counts the
-- pages so far; previous is the fingerprint of the page before.
local function paging_problem(items, pages, previous)
  local keys = {}
  for i, item in ipairs(items) do
    local key = type(item) == "table" and (item.id or item.pipeline_run_id or item.pipeline_id) or nil
    keys[i] = type(key) == "string" and key or (cjson.encode(item) or tostring(item))
  end
  local fingerprint = table.concat(keys, "\n")
  if #items > 0 and fingerprint == previous then
    return ("the server sent the same page twice (page %d): paging stopped"):format(pages), fingerprint
  end
  if pages > client.MAX_PAGES then
    return ("more than %d pages: paging stopped (use a filter or a limit)"):format(client.MAX_PAGES), fingerprint
  end
  return nil, fingerprint
end

--- The one iterator over a paged list (each_run, each_pipeline and the
-- command line's lists): fetch(page) returns items, total for the query
-- plus offset and limit.  page_size is the limit asked for (query.limit,
-- when given, wins); most, when given, the most items it yields (the last
-- page asks for no more than are still wanted).  Returns the iterator and
-- the listing, whose total is the total the server gave last.  A failure is
-- yielded once as false, message, code, info (op names it).
function client.pages(op, fetch, query, page_size, most)
  local listing = {}
  local offset = query and query.offset or 0
  local size = query and query.limit or page_size
  local items, index, yielded, done = {}, 0, 0, false
  local pages, previous = 0, nil
  return function()
    if most and yielded >= most then return nil end
    if index >= #items then
      if done or (listing.total and offset >= listing.total) then return nil end
      local page = list_body(query)
      page.offset, page.limit = offset, most and math.min(size, most - yielded) or size
      local got, count_or_message, code, info = fetch(page)
      if got == nil then
        done = true
        return false, count_or_message, code, info
      end
      pages = pages + 1
      local stop
      stop, previous = paging_problem(got, pages, previous)
      if stop then
        done = true
        local _, message, failure_code, failure_info = errors.failure(op, "protocol", "unexpected response: " .. stop)
        return false, message, failure_code, failure_info
      end
      items, index, listing.total = got, 0, count_or_message
      offset = offset + #got
      if #got < page.limit then done = true end
      if #got == 0 then return nil end
    end
    index = index + 1
    yielded = yielded + 1
    return items[index]
  end, listing
end

--- Iterates over all runs of a pipeline, page by page:
--   for run, err, code in client:each_run(pipeline_id, {status = "FAILED"}) do
-- On failure the loop sees run == false once, with message, code, info.
function Client:each_run(pipeline_id, query)
  check_id(pipeline_id, 1, "pipeline_id", "each_run")
  check_query(query, RUNS_QUERY, 2, "each_run")
  return client.pages("each_run", function(page) return self:runs(pipeline_id, page) end, query, 50)
end

--- Iterates over all pipelines of the project, page by page (as each_run).
function Client:each_pipeline(query)
  check_query(query, PIPELINES_QUERY, 1, "each_pipeline")
  return client.pages("each_pipeline", function(page) return self:pipelines(page) end, query, 50)
end

--- Releases the connections; the client cannot be used afterwards.  Safe to
-- call more than once.
function Client:close()
  direct_plans[self] = nil
  if self._transport then self._transport:close() end
  if self._loop then self._loop:close() end -- the host stops watching its sockets
  if self._runner then
    self._runner:close()
    self._runner = nil
  end
end

Client.__close = Client.close
Client.__gc = Client.close

function Client:__tostring()
  return ("pipeline client (%s, project %s%s)"):format(self.endpoint, self.project_id,
    self._transport:is_closed() and ", closed" or "")
end

lifecycle.extend(Client, check_id)
require("pipeline.watch").install(Client, check_id)

client.Client = Client

return client

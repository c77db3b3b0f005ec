--- A fleet watcher: keeps many pipelines green within the gateway's quota.
-- Every interval, one batch request (latest) reads the latest run of every
-- watched pipeline; a run that ended FAILED is retried (and so followed by
-- the next looks) at most `attempts` times, when a policy says so.  It waits
-- through the client's sleep, so it runs inside a host's loop too
-- (client:start("watch", ...)).  Of the client it uses the operations and
-- the clock and pause of the interface the lifecycle documents (_now, _pause).
local core = require("pipeline.core")
local config = require("pipeline.config")
local lifecycle = require("pipeline.lifecycle")
local option_schema = require("pipeline.options")

local watch = {}

watch.DEFAULT_ATTEMPTS = 3
watch.DEFAULT_INTERVAL = 30
local DEFAULT_CONCURRENCY = core.DEFAULT_CONCURRENCY
-- Longest single wait between two looks at the stop function (seconds).
local STOP_CHECK = 0.5

local OPTIONS = option_schema.schema({
  attempts = { type = "number", integer = true, min = 0 },
  interval = { type = "number", min = 0, check = function(value)
    if value == math.huge then return "must be a finite number of seconds" end
  end },
  policy = "function",
  jobs = { type = "table", items = { type = "string", expect = "a stage or job name" } },
  on_event = "function", stop = "function", until_settled = "boolean",
  concurrency = lifecycle.CONCURRENCY,
})

local FAILED_JOB = { FAILED = true, ASYNC_FAILED = true }

--- The failed jobs of a run detail: a list of {stage = , job = } names.
function watch.failed_jobs(run)
  local failed = {}
  for _, stage in ipairs(type(run) == "table" and type(run.stages) == "table" and run.stages or {}) do
    for _, job in ipairs(type(stage) == "table" and type(stage.jobs) == "table" and stage.jobs or {}) do
      if type(job) == "table" and FAILED_JOB[job.status] then
        failed[#failed + 1] = { stage = tostring(stage.name), job = tostring(job.name) }
      end
    end
  end
  return failed
end

--- The default policy: retry a FAILED run; with names (stage or job names,
-- or "stage/job"), only when every failed job matches one of them.
function watch.default_policy(names)
  local wanted
  if names and #names > 0 then
    wanted = {}
    for _, name in ipairs(names) do wanted[name] = true end
  end
  return function(run)
    if not wanted then return true, "the run failed" end
    local failed = watch.failed_jobs(run)
    if #failed == 0 then return false, "no failed job named in the run" end
    for _, item in ipairs(failed) do
      if not (wanted[item.job] or wanted[item.stage] or wanted[item.stage .. "/" .. item.job]) then
        return false, ("failed job %s/%s is not among the jobs to retry"):format(item.stage, item.job)
      end
    end
    return true, "every failed job is among the jobs to retry"
  end
end

-- What a policy file's functions may use besides their arguments: pure
-- functions only (the sandbox of the config file has nothing at all).
local function policy_environment()
  local function copy(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
  end
  return { ipairs = ipairs, pairs = pairs, next = next, type = type, tostring = tostring, tonumber = tonumber,
    select = select, error = error, string = copy(string), table = copy(table), math = copy(math) }
end

--- Loads a policy file: a Lua chunk returning function(run, attempts),
-- loaded in the config file's sandbox (config.run_file).  Returns the
-- policy, each call of it bounded as the file was; or nil and a message.
function watch.load_policy(path)
  local ran, result = config.run_file(path, "policy file", true, policy_environment())
  if not ran then return nil, result end
  if type(result) ~= "function" then
    return nil, ("policy file %s: must return a function(run, attempts) (got %s)"):format(path, type(result))
  end
  return function(run, attempts)
    local ok, decided = config.run_bounded(function(...)
      local decision, why = result(...)
      return { decision, why }
    end, run, attempts)
    if not ok then error(("policy file %s: %s"):format(path, tostring(decided)), 0) end
    return decided[1], decided[2]
  end
end

local function run_id_of(run)
  return run.pipeline_run_id or run.id
end

-- The pipelines of the project, for "all".
local function all_pipelines(client)
  local ids = {}
  for item, message, code, info in client:each_pipeline() do
    if item == false then return nil, message, code, info end
    local id = item.pipeline_id or item.id
    if core.is_id(id) then ids[#ids + 1] = id end
  end
  return ids
end

--- watch.run(client, pipeline_ids, options): the same as client:watch.
function watch.run(client, pipeline_ids, options)
  return client:watch(pipeline_ids, options)
end

--- Adds client:watch to the client class.
function watch.install(Client, check_id)
  --- Watches pipeline_ids (a list, or "all": every pipeline of the project)
  -- until options.stop() returns true or, with options.until_settled, every
  -- watched pipeline has settled (its latest run ended and is not retried
  -- again).  options: attempts (retries per run, default 3), interval
  -- (seconds, default 30), policy(run, attempts) -> retry, reason (default
  -- watch.default_policy(options.jobs)), on_event(event), stop(),
  -- until_settled, concurrency (of the retries of one look, default 8).
  -- Returns the summary: {green, pipelines = {{pipeline_id, run_id, status,
  -- attempts}...}, retries, polls, stopped}, or nil, message, code, info
  -- when the pipelines cannot be listed.
  function Client:watch(pipeline_ids, options)
    options = option_schema.check(OPTIONS, options, 2, "watch")
    if pipeline_ids == "all" then
      local message, code, info
      pipeline_ids, message, code, info = all_pipelines(self)
      if not pipeline_ids then return nil, message, code, info end
    elseif type(pipeline_ids) ~= "table" or #pipeline_ids == 0 then
      error("bad argument #1 to 'watch' (pipeline_ids must be a non-empty list, or \"all\")", 2)
    else
      for i, id in ipairs(pipeline_ids) do check_id(id, 1, ("pipeline_ids[%d]"):format(i), "watch") end
    end
    local attempts_allowed = options.attempts or watch.DEFAULT_ATTEMPTS
    local interval = options.interval or watch.DEFAULT_INTERVAL
    local policy = options.policy or watch.default_policy(options.jobs)
    local stop = options.stop or function() return false end
    local emit = function(event)
      event.time = os.time()
      if options.on_event then options.on_event(event) end
    end

    -- per pipeline: the run seen last, its status, the retries of each run,
    -- and whether that run has been decided on (not retried again)
    local state, order = {}, {}
    for _, id in ipairs(pipeline_ids) do
      if not state[id] then
        state[id] = { pipeline_id = id, retries = {}, decided = {} }
        order[#order + 1] = id
      end
    end
    local summary = { polls = 0, retries = 0, stopped = nil }
    emit({ type = "start", pipelines = #order, attempts = attempts_allowed, interval = interval })

    -- Reads a run to learn whether a retry whose answer was lost took effect.
    local function settle(pipeline_id, run_id)
      local run = self:detail(pipeline_id, run_id)
      if not run then return nil end
      return run.status ~= "FAILED" and run.status ~= "CANCELED"
    end

    -- One look: the latest runs, then the retries it calls for.
    local function look()
      summary.polls = summary.polls + 1
      local runs, message, code = self:latest(order)
      if not runs then
        emit({ type = "error", message = message, code = code })
        return
      end
      local function seen(item, run_id, status)
        if run_id ~= item.run_id or status ~= item.status then
          emit({ type = "status", pipeline_id = item.pipeline_id, run_id = run_id, status = status,
            previous = run_id == item.run_id and item.status or nil })
        end
        item.run_id, item.status = run_id, status
      end
      local concurrency = { concurrency = options.concurrency or DEFAULT_CONCURRENCY }
      local followed = {}
      for _, run in ipairs(runs) do
        local item = type(run) == "table" and state[run.pipeline_id]
        local run_id = item and run_id_of(run)
        if item and core.is_id(run_id) and type(run.status) == "string" then
          item.detail = nil
          seen(item, run_id, run.status)
          -- a run retried here and still going is followed by its detail,
          -- as retry_and_wait follows one
          if item.retries[run_id] and not lifecycle.TERMINAL[run.status] then followed[#followed + 1] = item end
        end
      end
      local read = self:map(followed, function(item) return self:detail(item.pipeline_id, item.run_id) end,
        concurrency)
      for i, item in ipairs(followed) do
        local run = read[i][1]
        if run then
          item.detail = run
          seen(item, item.run_id, run.status)
        end
      end
      local failed = {}
      for _, id in ipairs(order) do
        local item = state[id]
        if item.status == "FAILED" and not item.decided[item.run_id] then failed[#failed + 1] = item end
      end
      -- decide on each failed run, from its detail (the latest runs carry no jobs)
      local details = self:map(failed, function(item)
        if item.detail then return item.detail end
        return self:detail(item.pipeline_id, item.run_id)
      end, concurrency)
      local to_retry = {}
      for i, item in ipairs(failed) do
        local run, why = details[i][1], details[i][2]
        local done = item.retries[item.run_id] or 0
        if not run then
          emit({ type = "error", pipeline_id = item.pipeline_id, run_id = item.run_id, message = why,
            code = details[i][3] })
        elseif done >= attempts_allowed then
          item.decided[item.run_id] = true
          emit({ type = "gave_up", pipeline_id = item.pipeline_id, run_id = item.run_id, attempts = done })
        else
          local retry, reason = policy(run, done)
          if retry then
            to_retry[#to_retry + 1] = { item = item, reason = reason }
          else
            item.decided[item.run_id] = true
            emit({ type = "skip", pipeline_id = item.pipeline_id, run_id = item.run_id, attempts = done,
              reason = reason ~= nil and tostring(reason) or nil })
          end
        end
      end
      local results = self:map(to_retry, function(entry)
        return self:retry(entry.item.pipeline_id, entry.item.run_id)
      end, concurrency)
      for i, entry in ipairs(to_retry) do
        local item, result = entry.item, results[i]
        local ok = result[1]
        if not ok and (result[3] == "network" or result[3] == "timeout" or result[3] == "server") then
          -- the answer was lost: the run's status says whether it took effect
          ok = settle(item.pipeline_id, item.run_id)
          if ok == nil then ok = true end -- cannot tell: counted, never sent again blindly
        end
        local attempt = (item.retries[item.run_id] or 0) + 1
        if ok then
          item.retries[item.run_id] = attempt
          item.status = "RUNNING"
          summary.retries = summary.retries + 1
          emit({ type = "retry", pipeline_id = item.pipeline_id, run_id = item.run_id, attempt = attempt,
            reason = entry.reason ~= nil and tostring(entry.reason) or nil })
        else
          emit({ type = "retry_failed", pipeline_id = item.pipeline_id, run_id = item.run_id, attempt = attempt,
            message = result[2], code = result[3] })
        end
      end
    end

    -- Whether every pipeline's latest run ended and will not be retried.
    local function settled()
      for _, id in ipairs(order) do
        local item = state[id]
        local status = item.status
        if not status or not lifecycle.TERMINAL[status] then return false end
        if status == "FAILED" and not item.decided[item.run_id] then return false end
      end
      return true
    end

    while true do
      if stop() then summary.stopped = "stopped" break end
      look()
      if options.until_settled and settled() then summary.stopped = "settled" break end
      if stop() then summary.stopped = "stopped" break end
      -- waits in short slices, so a stop is seen soon
      local due = self:_now() + interval
      repeat
        local left = due - self:_now()
        if left > 0 then self:_pause(math.min(left, STOP_CHECK)) end
      until left <= 0 or stop()
    end

    summary.green = true
    summary.pipelines = {}
    for _, id in ipairs(order) do
      local item = state[id]
      summary.pipelines[#summary.pipelines + 1] = { pipeline_id = id, run_id = item.run_id,
        status = item.status, attempts = item.run_id and item.retries[item.run_id] or 0 }
      if item.status ~= "COMPLETED" then summary.green = false end
    end
    emit({ type = "end", green = summary.green, retries = summary.retries, polls = summary.polls,
      reason = summary.stopped })
    return summary
  end
end

return watch

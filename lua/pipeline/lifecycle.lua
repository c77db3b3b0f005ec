--- The run lifecycle on top of the operations: waiting for a run to end,
-- retrying and following it, retrying a pipeline's failed run until it
-- passes, and doing any of these for many runs at once.
local core = require("pipeline.core")
local errors = require("pipeline.errors")
local compat = require("pipeline.compat")
local loop = require("pipeline.loop")
local option_schema = require("pipeline.options")

local unpack = compat.unpack

local lifecycle = {}

--- Statuses after which a run does not change by itself.
lifecycle.TERMINAL = { COMPLETED = true, FAILED = true, CANCELED = true, IGNORED = true }

-- Failures worth polling through while the deadline allows.
local TRANSIENT = { network = true, timeout = true, throttled = true, server = true }

--- How long a wait lasts, and how often it polls, unless told (seconds).
lifecycle.DEFAULT_WAIT_TIMEOUT = 3600
lifecycle.DEFAULT_INTERVAL = 5
local DEFAULT_WAIT_TIMEOUT, DEFAULT_INTERVAL = lifecycle.DEFAULT_WAIT_TIMEOUT, lifecycle.DEFAULT_INTERVAL
local DEFAULT_CONCURRENCY = core.DEFAULT_CONCURRENCY

-- The options of each call (see pipeline.options).  The concurrency's range
-- is the C batch's (core.MAX_CONCURRENCY), which runs the jobs.
local TIMEOUT = { type = "number", min = 0 }
-- a zero interval would poll as fast as the network allows
local INTERVAL = { type = "number", above = 0 }
local CONCURRENCY = { type = "number", integer = true, min = 1, max = core.MAX_CONCURRENCY }
local WAIT_OPTIONS = option_schema.schema({ timeout = TIMEOUT, interval = INTERVAL, on_poll = "function" })
local RETRY_FAILED_OPTIONS = option_schema.extend(WAIT_OPTIONS, { attempts = { type = "number", min = 0 } })
local CONCURRENCY_OPTIONS = option_schema.schema({ concurrency = CONCURRENCY })
local WAIT_MANY_OPTIONS = option_schema.extend(WAIT_OPTIONS, { concurrency = CONCURRENCY })
lifecycle.CONCURRENCY = CONCURRENCY

-- Raises unless options (argument arg of fname) fit the schema allowed;
-- returns them, or an empty table.  level as for error() (default 3).
local function check_options(options, allowed, arg, fname, level)
  local checked = option_schema.check(allowed, options, arg, fname, level or 3)
  return checked -- (not a tail call: level counts this function)
end

-- The wait options among the options of a call that also waits.
-- (Options of the wrong type are left to check_options, which names them.)
local function wait_options_of(options)
  if type(options) ~= "table" then return nil end
  return { timeout = options.timeout, interval = options.interval, on_poll = options.on_poll }
end

------------------------------------------------------------ the methods

-- The client's methods that the lifecycle gives (lifecycle.extend puts them
-- in the client class; a spec may call them on a stand-in).  Of the client
-- they use the operations retry and latest, and this interface:
--   self:_now()                 the clock deadlines are counted on (seconds)
--   self:_pause(seconds)        waits; in a job of the client's, parks the job
--   self:_emit(event)           hands an event to the user's on_event
--   self:_detail(pipeline_id, run_id, deadline)  a run, or nil, message, code, info
--   self:_job()                 the job (a scheduler's worker) running now, or nil
--   self:_scheduler(concurrency, nested)  a new scheduler for the client's calls
-- The started calls' scheduler and the host's loop are the lifecycle's own:
-- self._runner and self._loop (the client closes them with itself).
local Lifecycle = {}
lifecycle.methods = Lifecycle

-- The client's id check (see lifecycle.extend).
local check_id

--- Follows a run until it ends: final status, run.  options: timeout
-- (seconds, default 3600), interval (seconds between polls, default 5),
-- on_poll(status, run) (returning false cancels).  PAUSED and SUSPEND keep
-- waiting.  Failures of single polls are retried within the deadline.
function Lifecycle:wait(pipeline_id, run_id, options)
  check_id(pipeline_id, 1, "pipeline_id", "wait")
  check_id(run_id, 2, "run_id", "wait")
  options = check_options(options, WAIT_OPTIONS, 3, "wait")
  local timeout = options.timeout or DEFAULT_WAIT_TIMEOUT
  local interval = options.interval or DEFAULT_INTERVAL
  local deadline = self:_now() + timeout
  local polls, last = 0, nil
  while true do
    polls = polls + 1
    local run, message, code, info = self:_detail(pipeline_id, run_id, deadline)
    if run then
      last = run
      self:_emit({ type = "poll", op = "wait", pipeline_id = pipeline_id, run_id = run_id,
        status = run.status, poll = polls })
      if options.on_poll and options.on_poll(run.status, run) == false then
        return errors.failure("wait", "cancelled", ("cancelled by on_poll (run %s was %s)")
          :format(run_id, run.status), { attempts = polls })
      end
      -- (compared in capitals: a server writing "completed" still ends the wait)
      if lifecycle.TERMINAL[run.status:upper()] then return run.status, run end
    elseif not TRANSIENT[code] then
      return nil, message, code, info
    end
    local left = deadline - self:_now()
    if left <= 0 then
      return errors.failure("wait", "timeout", ("run %s still %s after %gs"):format(run_id,
        last and last.status or "unknown", timeout), { attempts = polls, retryable = true })
    end
    self:_pause(math.min(interval, left))
  end
end

--- Retries a run and follows it: final status, run.
function Lifecycle:retry_and_wait(pipeline_id, run_id, options)
  check_id(pipeline_id, 1, "pipeline_id", "retry_and_wait")
  check_id(run_id, 2, "run_id", "retry_and_wait")
  check_options(options, WAIT_OPTIONS, 3, "retry_and_wait")
  local ok, message, code, info = self:retry(pipeline_id, run_id)
  if not ok then return nil, message, code, info end
  return self:wait(pipeline_id, run_id, options)
end

--- Keeps a pipeline green: takes its latest run; while that ended FAILED (or
-- CANCELED), retries it and follows it, up to options.attempts times
-- (default 3).  Returns the final status, the attempts, each
-- { run_id = ..., status = ... }, and the latest run's id.  A latest run
-- still going is followed first; one that passed needs no attempt.
function Lifecycle:retry_failed(pipeline_id, options)
  check_id(pipeline_id, 1, "pipeline_id", "retry_failed")
  options = check_options(options, RETRY_FAILED_OPTIONS, 2, "retry_failed")
  local attempts = options.attempts or 3
  local wait_options = wait_options_of(options)
  local latest, message, code, info = self:latest({ pipeline_id })
  if not latest then return nil, message, code, info end
  local run = latest[1]
  if type(run) ~= "table" or type(run.status) ~= "string" then
    return errors.failure("retry_failed", "not_found", ("pipeline %s has no run to retry"):format(pipeline_id),
      { retryable = false })
  end
  local run_id = run.pipeline_run_id or run.id
  if not core.is_id(run_id) then
    return errors.failure("retry_failed", "protocol", "unexpected response: the latest run has no id")
  end
  local status = run.status
  if not lifecycle.TERMINAL[status:upper()] then
    status, message, code, info = self:wait(pipeline_id, run_id, wait_options)
    if not status then return nil, message, code, info end
  end
  local history = {}
  while (status:upper() == "FAILED" or status:upper() == "CANCELED") and #history < attempts do
    status, message, code, info = self:retry_and_wait(pipeline_id, run_id, wait_options)
    if not status then
      info.history = history
      return nil, message, code, info
    end
    history[#history + 1] = { run_id = run_id, status = status }
  end
  return status, history, run_id
end

-------------------------------------------------------- many at once

-- Runs add(runner) -- which adds the jobs and returns them in a list -- on
-- a new scheduler of self's, and returns the list of their results
-- (table.pack of each), aligned with the jobs.  count: how many jobs (for
-- the scheduler's size).
local function run_jobs(self, count, concurrency, add)
  local outer = self:_job() -- when called from a job: the worker running it
  local runner = self:_scheduler(math.min(concurrency, math.max(count, 1)), outer ~= nil)
  local jobs = add(runner)
  local ok, failure = true, nil
  local host_loop = outer and outer.scheduler.loop
  if host_loop then
    -- on a host's loop: this runner's sockets go to the host too
    host_loop:attach(runner)
    runner:run_parked(outer)
  elseif outer then
    -- Inside a job, run() parks that job between its steps, and Lua 5.1
    -- cannot yield across pcall; a failing job closes the runner anyway.
    runner:run()
  else
    ok, failure = pcall(runner.run, runner)
  end
  runner:close()
  if not ok then error(failure, 0) end
  for index = 1, #jobs do jobs[index] = jobs[index].results end
  return jobs
end

--- Calls fn(item, index) for every item of list, concurrently (at most
-- options.concurrency at once, default 8) over one multi handle.  Client
-- calls inside fn run side by side; a failure of one never stops the
-- others.  Returns an array aligned with list: table.pack of each result.
function Lifecycle:map(list, fn, options)
  if type(list) ~= "table" then
    error(("bad argument #1 to 'map' (list must be a table, got %s)"):format(type(list)), 2)
  end
  if type(fn) ~= "function" then
    error(("bad argument #2 to 'map' (fn must be a function, got %s)"):format(type(fn)), 2)
  end
  options = check_options(options, CONCURRENCY_OPTIONS, 3, "map")
  return run_jobs(self, #list, options.concurrency or DEFAULT_CONCURRENCY, function(runner)
    local jobs = {}
    for index, item in ipairs(list) do jobs[index] = runner:add(fn, item, index) end
    return jobs
  end)
end

-- Reads a {pipeline_id, run_id} pair (or {pipeline_id = , run_id = }),
-- raising for a malformed one.
local function pair(item, index, fname)
  if type(item) ~= "table" then
    error(("bad argument #1 to '%s' (list[%d] must be a {pipeline_id, run_id} pair)"):format(fname, index), 4)
  end
  local pipeline_id, run_id = item.pipeline_id or item[1], item.run_id or item[2]
  -- (the argument's name is only made for a bad id: a list may be long)
  if not core.is_id(pipeline_id) then
    check_id(pipeline_id, 1, ("list[%d].pipeline_id"):format(index), fname, 5)
  end
  if not core.is_id(run_id) then check_id(run_id, 1, ("list[%d].run_id"):format(index), fname, 5) end
  return pipeline_id, run_id
end

-- allowed: the options fname takes.  Every pair is checked before any call
-- starts; then self:method(pipeline_id, run_id, extra) runs for each, as jobs.
-- first (optional): first(self, pipeline_ids, run_ids, concurrency) makes
-- every call's first attempt at once and returns, per index, true (done) or
-- that attempt's answer, given to the job as method's fifth argument; or
-- returns nil when it cannot (the jobs then make every attempt).
local function many(self, fname, list, options, allowed, method, extra, first)
  if type(list) ~= "table" then
    error(("bad argument #1 to '%s' (list must be a table, got %s)"):format(fname, type(list)), 3)
  end
  options = check_options(options, allowed, 2, fname, 4)
  local pipeline_ids, run_ids = {}, {}
  for index, item in ipairs(list) do pipeline_ids[index], run_ids[index] = pair(item, index, fname) end
  local concurrency = options.concurrency or DEFAULT_CONCURRENCY
  local answers = first and first(self, pipeline_ids, run_ids, concurrency) or {}
  local results, indexes = {}, {} -- indexes: of the calls left to the jobs
  for index = 1, #pipeline_ids do
    if answers[index] == true then
      results[index] = { ok = true }
    else
      indexes[#indexes + 1] = index
    end
  end
  local left = #indexes == 0 and {} or run_jobs(self, #indexes, concurrency, function(runner)
    local jobs = {}
    for i, index in ipairs(indexes) do
      jobs[i] = runner:add(method, self, pipeline_ids[index], run_ids[index], extra, answers[index])
    end
    return jobs
  end)
  for i, result in ipairs(left) do
    if result[1] == nil then
      results[indexes[i]] = { ok = false, message = result[2], code = result[3], info = result[4] }
    else
      results[indexes[i]] = { ok = true, status = type(result[1]) == "string" and result[1] or nil,
        run = type(result[2]) == "table" and result[2] or nil }
    end
  end
  return results
end

--- Retries many runs at once: list of {pipeline_id, run_id}.  Returns an
-- array aligned with list, each {ok = true} or {ok = false, message, code, info}.
function Lifecycle:retry_many(list, options)
  return many(self, "retry_many", list, options, CONCURRENCY_OPTIONS, self._retry_after, nil, self._retry_first)
end

--- Follows many runs at once: results aligned with list, each
-- {ok = true, status, run} or {ok = false, message, code, info}.
function Lifecycle:wait_many(list, options)
  return many(self, "wait_many", list, options, WAIT_MANY_OPTIONS, self.wait, wait_options_of(options))
end

--- Retries many runs at once and follows each to its end: results as wait_many.
function Lifecycle:retry_and_wait_many(list, options)
  return many(self, "retry_and_wait_many", list, options, WAIT_MANY_OPTIONS, self.retry_and_wait,
    wait_options_of(options))
end

------------------------------------------------------------ host loop

-- job:result() of a started call: what it returned, once done.
local function started_result(job)
  if not job.done then return nil end
  return unpack(job.results, 1, job.results.n)
end

--- Starts a call without blocking: client:start("retry_and_wait", p, r)
-- returns a job; the host advances every started job with client:step().
-- job.done tells when it ended, job:result() gives what the call returned.
function Lifecycle:start(method, ...)
  local fn = type(method) == "function" and method or self[method]
  if type(fn) ~= "function" or type(method) == "string" and method:sub(1, 1) == "_" then
    error(("bad argument #1 to 'start' (no client method %q)"):format(tostring(method)), 2)
  end
  local runner = self._runner
  if not runner or runner:is_closed() then -- (closed by a job's error on the host's loop)
    runner = self:_scheduler(DEFAULT_CONCURRENCY)
    self._runner = runner
    if self._loop then self._loop:serve(runner) end
  end
  local job
  if type(method) == "function" then
    job = runner:add(fn, ...)
  else
    job = runner:add(fn, self, ...)
  end
  job.result = started_result
  if self._loop then self._loop:kick() end
  return job
end

--- Advances the started jobs, waiting at most timeout seconds (default 0:
-- never blocks) for the network.  Returns how many are still running and
-- the seconds until one of them wants time (a poll interval, a backoff),
-- or nil.
function Lifecycle:step(timeout)
  -- checked before anything moves: a bad timeout must not cost a job
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    error(("bad argument #1 to 'step' (timeout must be a number not below 0, got %s)")
      :format(type(timeout) == "number" and tostring(timeout) or type(timeout)), 2)
  end
  local runner = self._runner
  if self._loop then
    error("client:step: this client runs on its host's loop (use_loop): call socket_ready and timeout", 2)
  end
  if not runner then return 0 end
  local ok, left = pcall(runner.step, runner, timeout or 0)
  if not ok then
    self._runner = nil -- closed by the failure; the next start() makes a new one
    error(left, 0)
  end
  return left, runner:next_wake()
end

------------------------------------------------------- host event loop

local WHAT = { r = true, w = true, rw = true }

--- Hands the started calls' sockets and timer to the host's event loop
-- instead of step(): callbacks.watch(fd, what) asks the host to watch fd
-- for "r", "w" or "rw" (replacing what it watched fd for), or with nil to
-- stop; callbacks.timer(seconds) sets the host's one timer (replacing the
-- last one), nil cancels it.  The host answers with socket_ready(fd, what)
-- and timeout().  Call it before start(); once per client.
function Lifecycle:use_loop(callbacks)
  if type(callbacks) ~= "table" or type(callbacks.watch) ~= "function"
    or type(callbacks.timer) ~= "function" then
    error("bad argument #1 to 'use_loop' (callbacks must be a table with functions watch and timer)", 2)
  end
  if self._loop then error("use_loop: this client already runs on a host's loop", 2) end
  if self._runner then
    if self._runner.unfinished > 0 then
      error("use_loop: started calls are running; call use_loop before start", 2)
    end
    self._runner:close()
    self._runner = nil
  end
  self._loop = loop.new(callbacks.watch, callbacks.timer)
end

local function loop_of(self, fname)
  if not self._loop then error(("%s: this client has no host loop (call use_loop first)"):format(fname), 3) end
  return self._loop
end

--- The host's news that fd is ready for what ("r", "w" or "rw"; nil: both
-- may be).  Advances the started calls; returns how many are not finished.
-- An fd the client no longer uses is ignored.  An error a started call
-- raised, or one of the host's callbacks raised, is raised here.
function Lifecycle:socket_ready(fd, what)
  if type(fd) ~= "number" or fd < 0 or fd % 1 ~= 0 then
    error(("bad argument #1 to 'socket_ready' (fd must be a file descriptor, got %s)"):format(tostring(fd)), 2)
  end
  if what ~= nil and not WHAT[what] then
    error(("bad argument #2 to 'socket_ready' (what must be \"r\", \"w\" or \"rw\", got %s)"):format(tostring(what)), 2)
  end
  return loop_of(self, "socket_ready"):socket_ready(fd, what)
end

--- The host's timer fired: advances the started calls (as socket_ready).
function Lifecycle:timeout()
  return loop_of(self, "timeout"):timeout()
end

--- Puts the lifecycle's methods in the client class; check_id(value, arg,
-- name, fname, level) is the client's id check.
function lifecycle.extend(Client, client_check_id)
  check_id = client_check_id
  for name, method in pairs(Lifecycle) do Client[name] = method end
end

return lifecycle

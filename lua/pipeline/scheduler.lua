--- Runs many client calls at once.  Each job is a coroutine running ordinary
-- client code; where that code would send a request or wait, it yields to the
-- scheduler instead, which sends the request over a batch (libcurl's multi
-- interface: concurrent transfers, shared connections) or parks the job until
-- its time comes.  step(timeout) advances everything once, so a host can
-- drive the jobs from its own loop; run() steps until every job is done.
local core = require("pipeline.core")

local compat = require("pipeline.compat")

local unpack, pack = compat.unpack, compat.pack

local scheduler = {}

-- The scheduler of each running job's coroutine (weak: finished jobs go).
local owner_of = setmetatable({}, { __mode = "k" })

--- The scheduler running the calling coroutine's job, or nil.
function scheduler.current()
  local co = coroutine.running()
  return co and owner_of[co]
end

local Scheduler = {}
Scheduler.__index = Scheduler

--- A scheduler for client; concurrency: how many jobs run (and requests
-- fly) at once, over a batch the client makes.
function scheduler.new(client, concurrency)
  return setmetatable({
    client = client,
    batch = client._new_batch(concurrency),
    concurrency = concurrency,
    queued = {},     -- jobs not started yet, in order
    running = 0,     -- jobs started and not finished
    ready = {},      -- { job, values... } to resume
    sending = {},    -- batch request id -> job
    sleeping = {},   -- jobs parked until job.wake_at
    unfinished = 0,
    parent = scheduler.current(), -- when made inside a job: whose clock to keep
  }, Scheduler)
end

--- The scheduler's clock: the client's own (see Client:_now, which counts a
-- sleep that returns early as the wait it was asked for), or, for one made
-- inside a job, its parent's.
function Scheduler:now()
  if self.parent then return self.parent:now() end
  return core.monotonic() + self.client._skew
end

--- Adds a job: fn(...) runs as client code.  Returns the job, whose fields
-- `done` and `results` (a table.pack of fn's results) tell how it ended.
function Scheduler:add(fn, ...)
  local job = { fn = fn, args = pack(...), done = false }
  self.queued[#self.queued + 1] = job
  self.unfinished = self.unfinished + 1
  return job
end

--- Called from inside a job: sends a request and returns its result.
function scheduler.send(...)
  return coroutine.yield("send", ...)
end

--- Called from inside a job: parks it for seconds.
function scheduler.sleep(seconds)
  return coroutine.yield("sleep", seconds)
end

-- Resumes job with values; acts on what it yields next.
function Scheduler:resume(job, ...)
  -- Every value kept: a job may return (or yield) any number of them.
  local resumed = pack(coroutine.resume(job.co, ...))
  local ok, what, a = resumed[1], resumed[2], resumed[3]
  if not ok then
    -- An error raised inside a job (a bug, or a host's callback) is not lost:
    -- it ends the whole run, raised again by step() with the job's traceback.
    job.done, self.failure = true, debug.traceback(job.co, tostring(what))
    self.running, self.unfinished = self.running - 1, self.unfinished - 1
    return
  end
  if coroutine.status(job.co) == "dead" then
    job.done = true
    job.results = pack(unpack(resumed, 2, resumed.n))
    self.running, self.unfinished = self.running - 1, self.unfinished - 1
  elseif what == "send" then
    local id = self.batch:add(unpack(resumed, 3, resumed.n))
    -- A job has at most one request in flight and there are as many batch
    -- slots as jobs, so a slot is always free.
    self.sending[id] = job
  elseif what == "sleep" then
    job.wake_at = self:now() + math.max(0, a or 0)
    self.sleeping[#self.sleeping + 1] = job
  else
    job.done, self.failure = true, "a job yielded outside the scheduler: " .. tostring(what)
    self.running, self.unfinished = self.running - 1, self.unfinished - 1
  end
end

local function start(self)
  while self.running < self.concurrency and #self.queued > 0 do
    local job = table.remove(self.queued, 1)
    job.co = coroutine.create(function() return job.fn(unpack(job.args, 1, job.args.n)) end)
    owner_of[job.co] = self
    self.running = self.running + 1
    self.ready[#self.ready + 1] = { job }
  end
end

-- Seconds until the first parked job wakes, or nil.
function Scheduler:next_wake()
  local first
  for _, job in ipairs(self.sleeping) do
    if not first or job.wake_at < first then first = job.wake_at end
  end
  return first and math.max(0, first - self:now())
end

--- Advances every job once, waiting at most timeout seconds (default 0)
-- for network progress.  Returns how many jobs are not finished.
function Scheduler:step(timeout)
  start(self)
  while #self.ready > 0 do
    local entry = table.remove(self.ready, 1)
    self:resume(entry[1], unpack(entry, 2, entry.n or #entry))
    if self.failure then self:close() error(self.failure, 0) end
    start(self)
  end
  if self.batch:pending() > 0 then
    local wake = self:next_wake()
    for _, finished in ipairs(self.batch:step(math.min(timeout or 0, wake or math.huge))) do
      local job = self.sending[finished.id]
      self.sending[finished.id] = nil
      local entry = { job, unpack(finished, 1, finished.n) }
      entry.n = finished.n + 1
      self.ready[#self.ready + 1] = entry
    end
  end
  local now, still = self:now(), {}
  for _, job in ipairs(self.sleeping) do
    if job.wake_at <= now then self.ready[#self.ready + 1] = { job } else still[#still + 1] = job end
  end
  self.sleeping = still
  return self.unfinished
end

-- How often a scheduler run from inside another one's job looks at its
-- requests in flight (seconds).
local NESTED_POLL = 0.01

--- Steps until every job is done.  When jobs only wait for time to pass, it
-- waits through the client's sleep function (which a host may have made
-- yield to its own loop).  Run from inside a job of another scheduler (a
-- *_many call started with client:start, or map inside map), it never
-- blocks: it parks that job between its steps, so the outer scheduler, and
-- the host's step(), go on.
function Scheduler:run()
  local nested = scheduler.current() ~= nil
  while self:step(0) > 0 do
    if #self.ready == 0 then
      local wake = self:next_wake()
      if nested then
        if self.batch:pending() > 0 then wake = math.min(wake or NESTED_POLL, NESTED_POLL) end
        scheduler.sleep(wake or 0)
      elseif self.batch:pending() > 0 then
        self:step(math.min(wake or 1, 1))
      elseif wake and wake > 0 then
        self.client:_pause(wake) -- not in a job here: the client's sleep, on its clock
      end
    end
  end
end

--- run() for a scheduler on a host's loop (see pipeline.loop), from inside a
-- job of another one: between its steps the job sleeps until one of this
-- scheduler's jobs wakes, or until the loop wakes it early because this
-- scheduler's batch saw activity.  No polling.
function Scheduler:run_parked()
  local outer = scheduler.current()
  while self:step(0) > 0 do
    if #self.ready == 0 then
      self.parked = { scheduler = outer, co = coroutine.running() }
      scheduler.sleep(self:next_wake() or math.huge)
      self.parked = nil
    end
  end
end

--- Wakes a job sleeping in this scheduler before its time: co is the job's
-- coroutine.  Returns whether it was sleeping.
function Scheduler:wake(co)
  for i, job in ipairs(self.sleeping) do
    if job.co == co then
      table.remove(self.sleeping, i)
      self.ready[#self.ready + 1] = { job }
      return true
    end
  end
  return false
end

function Scheduler:close()
  self.batch:close()
end

return scheduler

--- Runs many client calls at once.  Each job is a coroutine running ordinary
-- client code; where that code would send a request or wait, it yields to the
-- scheduler instead (scheduler.send, scheduler.sleep), which sends the request
-- over a batch (libcurl's multi interface: concurrent transfers, shared
-- connections) or parks the job until its time comes.  step(timeout) advances
-- everything once, so a host can drive the jobs from its own loop; run()
-- steps until every job is done.
--
-- A scheduler knows nothing of the client: whoever makes it passes in the
-- batch maker, the clock and the pause (scheduler.new), and learns which job
-- is running from the `running` table it passed, whose field `worker` the
-- scheduler sets while it resumes a job (scheduler.job_of reads it).
local dates = require("pipeline.dates")

local compat = require("pipeline.compat")

local unpack, pack = compat.unpack, compat.pack

local scheduler = {}

local Scheduler = {}
Scheduler.__index = Scheduler

-- First-in first-out queues of jobs: head and tail indexes, so taking the
-- first costs the same whatever the length (table.remove(q, 1) shifts them all).
local function push(queue, job)
  local tail = queue.tail + 1
  queue[tail], queue.tail = job, tail
end

local function shift(queue)
  local head = queue.head
  if head > queue.tail then return nil end
  local job = queue[head]
  queue[head], queue.head = nil, head + 1
  return job
end

local function queue_length(queue)
  return queue.tail - queue.head + 1
end

--- A scheduler.  options:
--   concurrency         how many jobs run (and requests fly) at once
--   new_batch(n)        makes the batch the requests go over, with n slots:
--                       add(...) -> id, step(timeout) -> the finished ones
--                       ({id = , n = , the request's results...}),
--                       pending() -> how many fly, close()
--   now()               the clock (seconds) parked jobs and Retry-After
--                       pauses are timed on
--   pause(seconds)      waits, when every job only waits for time (run)
--   nested              run() is called from inside a job of another
--                       scheduler: it never blocks, and pause parks that job
--   running             a table (default: a new one) whose field `worker` is
--                       the worker being resumed, nil between resumes;
--                       shared by the schedulers of one client
--   on_throttle(event)  told of each 429: {type = "throttle", concurrency, pause}
--   max_hold            the longest a Retry-After holds the requests (seconds)
-- Jobs run on workers, one coroutine each, which take the queued jobs one
-- after the other: a job costs no coroutine of its own.
function scheduler.new(options)
  local concurrency = options.concurrency
  return setmetatable({
    batch = options.new_batch(concurrency),
    now = options.now,
    pause = options.pause,
    nested = options.nested or false,
    running = options.running or {},
    on_throttle = options.on_throttle,
    max_hold = options.max_hold,
    concurrency = concurrency,
    queued = { head = 1, tail = 0 }, -- jobs not started yet, in order
    workers = 0,     -- workers running (each has a job until the queue is empty)
    ready = { head = 1, tail = 0 },  -- workers to resume, each with worker.resume_with (or none)
    sending = {},    -- batch request id -> worker
    sleeping = {},   -- workers parked until worker.wake_at
    unfinished = 0,
    -- Adaptive concurrency: at most `limit` requests in flight.  A 429 halves
    -- it and its Retry-After holds every request of the batch until
    -- paused_until; each `limit` answers in a row that are not 429 grow it
    -- by one, back up to `concurrency`.
    limit = concurrency,
    in_flight = 0,
    held = {},       -- { worker, request arguments... } waiting for a slot or the pause's end
    paused_until = nil,
    cut_at = nil,    -- when limit was last halved: 429s to requests sent before it do not halve it again
    grown = 0,
    throttled = 0,   -- 429 answers seen
  }, Scheduler)
end

--- The worker running now, as the `running` table given to scheduler.new
-- tells, when the calling code is its job (not a coroutine of its own that
-- the job made); else nil.  Its field `scheduler` is the one it runs in.
function scheduler.job_of(running)
  local worker = running.worker
  if worker and worker.co == coroutine.running() then return worker end
  return nil
end

--- Adds a job: fn(...) runs as client code.  Returns the job, whose fields
-- `done` and `results` (a table.pack of fn's results) tell how it ended.
-- (The job table holds its arguments too, as [1..n].)
function Scheduler:add(fn, ...)
  local job = pack(...)
  job.fn, job.done = fn, false
  push(self.queued, job)
  self.unfinished = self.unfinished + 1
  return job
end

--- Called from inside a job: sends a request over the batch and returns
-- what batch:step gave for it.
function scheduler.send(...)
  return coroutine.yield("send", ...)
end

--- Called from inside a job: parks it for seconds.
function scheduler.sleep(seconds)
  return coroutine.yield("sleep", seconds)
end

-- A worker's body: runs job, then each queued job in turn, until none is
-- left.  An error raised by a job ends the worker (and the run: see resumed).
local function work(self, worker)
  local queued, job = self.queued, worker.job
  repeat
    worker.job = job
    job.results = pack(job.fn(unpack(job, 1, job.n)))
    job.done = true
    self.unfinished = self.unfinished - 1
    job = shift(queued)
  until not job
  worker.job = nil
end

-- A worker ended; failed: its job with it, by an error.
local function stopped(self, worker, failed)
  self.workers = self.workers - 1
  if failed then
    worker.job.done = true
    self.unfinished = self.unfinished - 1
  end
end

-- Acts on what a resumed worker returned or yielded: first the worker that
-- was running before it (a job of an outer scheduler, or nil), then ok and
-- the values.
local function resumed(self, worker, outer, ok, ...)
  self.running.worker = outer
  local what = ...
  if not ok then
    -- An error raised inside a job (a bug, or a host's callback) is not lost:
    -- it ends the whole run, raised again by step() with the job's traceback.
    self.failure = debug.traceback(worker.co, tostring(what))
    stopped(self, worker, true)
  elseif coroutine.status(worker.co) == "dead" then
    stopped(self, worker) -- no job left in the queue
  elseif what == "send" then
    -- Held until the batch has room under its limit and no pause holds it;
    -- a request repeated after a 429 goes first: it has waited its turn.
    local request = pack(worker, select(2, ...))
    table.insert(self.held, worker.throttled and 1 or #self.held + 1, request)
    self:_release()
  elseif what == "sleep" then
    worker.wake_at = self.now() + math.max(0, select(2, ...) or 0)
    self.sleeping[#self.sleeping + 1] = worker
  else
    self.failure = "a job yielded outside the scheduler: " .. tostring(what)
    stopped(self, worker, true)
  end
end

-- Resumes worker with what it waited for: its first job when it starts, a
-- request's results (worker.resume_with, as batch:step gave them), or
-- nothing.  While it runs, running.worker names it.
local function resume(self, worker)
  local running = self.running
  local outer = running.worker
  running.worker = worker
  local with = worker.resume_with
  if with then
    worker.resume_with = nil
    return resumed(self, worker, outer, coroutine.resume(worker.co, unpack(with, 1, with.n)))
  end
  if not worker.started then
    worker.started = true
    return resumed(self, worker, outer, coroutine.resume(worker.co, self, worker))
  end
  return resumed(self, worker, outer, coroutine.resume(worker.co))
end

-- Sends held requests while the batch is not paused and has room under its
-- limit.  A worker has at most one request in flight and there are as many
-- batch slots as workers, so a slot is always free.  (At most one request
-- a worker is held: the list is never longer than the concurrency.)
function Scheduler:_release()
  if self.paused_until and self.now() < self.paused_until then return end
  self.paused_until = nil
  while #self.held > 0 and self.in_flight < self.limit do
    local request = table.remove(self.held, 1)
    local worker = request[1]
    local id = self.batch:add(unpack(request, 2, request.n))
    worker.sent_at = self.now()
    self.sending[id] = worker
    self.in_flight = self.in_flight + 1
  end
end

-- Seconds a Retry-After value asks for (delay-seconds or an HTTP date), or nil.
local function retry_after(value)
  if type(value) ~= "string" then return nil end
  local seconds = tonumber(value:match("^%s*(%d+)%s*$") or "")
  if seconds then return seconds end
  local at = dates.http_date(value)
  return at and math.max(0, at - os.time())
end

-- Adapts the limit to the answer to worker's request: finished is what the
-- batch gave for it (a failure without a status had no answer at all).
function Scheduler:_observe(worker, finished)
  -- the transport's result: true, or body and info, or nil, message, code, info
  local value = finished[1]
  local info = value == nil and finished[4] or finished[2]
  local status = type(info) == "table" and info.status or (value ~= nil and 200 or nil)
  if status == 429 then
    self.throttled = self.throttled + 1
    worker.throttled = true
    local now = self.now()
    if not self.cut_at or (worker.sent_at or now) >= self.cut_at then
      self.limit = math.max(1, math.floor(self.limit / 2))
      self.cut_at, self.grown = now, 0
    end
    local wait = retry_after(info.retry_after)
    if wait then
      wait = math.min(wait, self.max_hold or wait)
      self.paused_until = math.max(self.paused_until or 0, now + wait)
    end
    if self.on_throttle then self.on_throttle({ type = "throttle", concurrency = self.limit, pause = wait }) end
  elseif status then
    worker.throttled = nil
    self.grown = self.grown + 1
    if self.grown >= self.limit and self.limit < self.concurrency then
      self.limit, self.grown = self.limit + 1, 0
    end
  end
end

-- Starts workers for the queued jobs, up to the concurrency.
local function start(self)
  local queued = self.queued
  while self.workers < self.concurrency do
    local job = shift(queued)
    if not job then return end
    local worker = { co = coroutine.create(work), job = job, scheduler = self }
    self.workers = self.workers + 1
    push(self.ready, worker)
  end
end

-- Seconds until the first parked job wakes, or nil.
function Scheduler:next_wake()
  local first
  for _, worker in ipairs(self.sleeping) do
    if not first or worker.wake_at < first then first = worker.wake_at end
  end
  -- requests held by a pause go when it ends
  if #self.held > 0 and self.paused_until and (not first or self.paused_until < first) then
    first = self.paused_until
  end
  return first and math.max(0, first - self.now())
end

-- Moves the parked workers whose time has come to the ready queue.
local function wake_parked(self)
  local sleeping = self.sleeping
  if #sleeping == 0 then return end
  local now, kept = self.now(), 0
  for i = 1, #sleeping do
    local worker = sleeping[i]
    sleeping[i] = nil
    if worker.wake_at <= now then
      push(self.ready, worker)
    else
      kept = kept + 1
      sleeping[kept] = worker
    end
  end
end

--- Advances every job once, waiting at most timeout seconds (default 0)
-- for network progress.  Returns how many jobs are not finished.
function Scheduler:step(timeout)
  local ready = self.ready
  start(self)
  while true do
    local worker = shift(ready)
    if not worker then break end
    resume(self, worker)
    if self.failure then self:close() error(self.failure, 0) end
    start(self)
  end
  if self.batch:pending() > 0 then
    local wake_in = self:next_wake()
    local sending = self.sending
    -- (a day at most, as the batch takes: a host may pass math.huge)
    for _, finished in ipairs(self.batch:step(math.min(timeout or 0, wake_in or math.huge, 86400))) do
      local worker = sending[finished.id]
      sending[finished.id] = nil
      self.in_flight = self.in_flight - 1
      self:_observe(worker, finished)
      worker.resume_with = finished
      push(ready, worker)
    end
  end
  self:_release()
  wake_parked(self)
  return self.unfinished
end

--- Whether jobs wait to be resumed (so the next step has work without
-- waiting).
function Scheduler:has_ready()
  return queue_length(self.ready) > 0
end

-- How often a nested scheduler looks at its requests in flight (seconds).
local NESTED_POLL = 0.01

--- Steps until every job is done.  When jobs only wait for time to pass, it
-- waits through the pause it was given (a client's sleep, which a host may
-- have made yield to its own loop).  A nested one (made for a call inside
-- another scheduler's job: a *_many call started with client:start, or map
-- inside map) never blocks: it pauses between its steps, which parks that
-- job, so the outer scheduler, and the host's step(), go on.
function Scheduler:run()
  local nested = self.nested
  -- How long the next step may wait for the network: only when no job is
  -- ready to go on (a step resumes those first, then waits), so each round
  -- drives libcurl once and waits once.
  local timeout = 0
  while self:step(timeout) > 0 do
    timeout = 0
    if not self:has_ready() then
      local wake = self:next_wake()
      if nested then
        if self.batch:pending() > 0 then wake = math.min(wake or NESTED_POLL, NESTED_POLL) end
        self.pause(wake or 0)
      elseif self.batch:pending() > 0 then
        timeout = math.min(wake or 1, 1)
      elseif wake and wake > 0 then
        self.pause(wake)
      end
    end
  end
end

--- run() for a nested scheduler on a host's loop (see pipeline.loop), from
-- the job `outer` (a worker of another scheduler): between its steps the job
-- sleeps until one of this scheduler's jobs wakes, or until the loop wakes
-- it early because this scheduler's batch saw activity.  No polling.
function Scheduler:run_parked(outer)
  while self:step(0) > 0 do
    if not self:has_ready() then
      self.parked = outer
      scheduler.sleep(self:next_wake() or math.huge)
      self.parked = nil
    end
  end
end

--- Wakes one of this scheduler's workers sleeping before its time.  Returns
-- whether it was sleeping.
function Scheduler:wake(worker)
  for i, sleeping in ipairs(self.sleeping) do
    if sleeping == worker then
      table.remove(self.sleeping, i)
      push(self.ready, worker)
      return true
    end
  end
  return false
end

function Scheduler:close()
  self.batch:close()
end

--- Whether close() was called (or a job's error closed it).
function Scheduler:is_closed()
  return self.batch:is_closed()
end

return scheduler

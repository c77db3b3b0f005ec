--- Runs many client calls at once.  Each job is a coroutine running ordinary
-- client code; where that code would send a request or wait, it yields to the
-- scheduler instead, which sends the request over a batch (libcurl's multi
-- interface: concurrent transfers, shared connections) or parks the job until
-- its time comes.  step(timeout) advances everything once, so a host can
-- drive the jobs from its own loop; run() steps until every job is done.
local core = require("pipeline.core")
local clock = require("pipeline.clock")

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

--- A scheduler for client; concurrency: how many jobs run (and requests
-- fly) at once, over a batch the client makes.  Jobs run on workers, one
-- coroutine each, which take the queued jobs one after the other: a job
-- costs no coroutine of its own.
function scheduler.new(client, concurrency)
  return setmetatable({
    client = client,
    batch = client._new_batch(concurrency),
    concurrency = concurrency,
    queued = { head = 1, tail = 0 }, -- jobs not started yet, in order
    running = 0,     -- workers running (each has a job until the queue is empty)
    ready = { head = 1, tail = 0 },  -- workers to resume, each with worker.resume_with (or none)
    sending = {},    -- batch request id -> worker
    sleeping = {},   -- workers parked until worker.wake_at
    unfinished = 0,
    parent = scheduler.current(), -- when made inside a job: whose clock to keep
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

--- The scheduler's clock: the client's own (see Client:_now, which counts a
-- sleep that returns early as the wait it was asked for), or, for one made
-- inside a job, its parent's.
function Scheduler:now()
  if self.parent then return self.parent:now() end
  return core.monotonic() + self.client._skew
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

--- Called from inside a job: sends a request and returns its result.
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
  owner_of[worker.co] = nil
  self.running = self.running - 1
  if failed then
    worker.job.done = true
    self.unfinished = self.unfinished - 1
  end
end

-- Acts on what a resumed worker returned or yielded: ok, then the values.
local function resumed(self, worker, ok, ...)
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
    worker.wake_at = self:now() + math.max(0, select(2, ...) or 0)
    self.sleeping[#self.sleeping + 1] = worker
  else
    self.failure = "a job yielded outside the scheduler: " .. tostring(what)
    stopped(self, worker, true)
  end
end

-- Resumes worker with what it waited for: its first job when it starts, a
-- request's results (worker.resume_with, as batch:step gave them), or nothing.
local function resume(self, worker)
  local with = worker.resume_with
  if with then
    worker.resume_with = nil
    return resumed(self, worker, coroutine.resume(worker.co, unpack(with, 1, with.n)))
  end
  if not worker.started then
    worker.started = true
    return resumed(self, worker, coroutine.resume(worker.co, self, worker))
  end
  return resumed(self, worker, coroutine.resume(worker.co))
end

-- Sends held requests while the batch is not paused and has room under its
-- limit.  A worker has at most one request in flight and there are as many
-- batch slots as workers, so a slot is always free.  (At most one request
-- a worker is held: the list is never longer than the concurrency.)
function Scheduler:_release()
  if self.paused_until and self:now() < self.paused_until then return end
  self.paused_until = nil
  while #self.held > 0 and self.in_flight < self.limit do
    local request = table.remove(self.held, 1)
    local worker = request[1]
    local id = self.batch:add(unpack(request, 2, request.n))
    worker.sent_at = self:now()
    self.sending[id] = worker
    self.in_flight = self.in_flight + 1
  end
end

-- Seconds a Retry-After value asks for (delay-seconds or an HTTP date), or nil.
local function retry_after(value)
  if type(value) ~= "string" then return nil end
  local seconds = tonumber(value:match("^%s*(%d+)%s*$") or "")
  if seconds then return seconds end
  local at = clock.http_date(value)
  return at and math.max(0, at - os.time())
end

-- Adapts the limit to one answer to worker's request (status nil: no
-- answer at all).
function Scheduler:_observe(worker, status, headers)
  if status == 429 then
    self.throttled = self.throttled + 1
    worker.throttled = true
    local now = self:now()
    if not self.cut_at or (worker.sent_at or now) >= self.cut_at then
      self.limit = math.max(1, math.floor(self.limit / 2))
      self.cut_at, self.grown = now, 0
    end
    local wait = retry_after(type(headers) == "table" and headers["retry-after"] or nil)
    if wait then
      wait = math.min(wait, self.client._retries and self.client._retries.max_delay or wait)
      self.paused_until = math.max(self.paused_until or 0, now + wait)
    end
    self.client:_emit({ type = "throttle", concurrency = self.limit, pause = wait })
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
  while self.running < self.concurrency do
    local job = shift(queued)
    if not job then return end
    local worker = { co = coroutine.create(work), job = job }
    owner_of[worker.co] = self
    self.running = self.running + 1
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
  return first and math.max(0, first - self:now())
end

-- Moves the parked workers whose time has come to the ready queue.
local function wake_parked(self)
  local sleeping = self.sleeping
  if #sleeping == 0 then return end
  local now, kept = self:now(), 0
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
      self:_observe(worker, finished[1], finished[3])
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
        scheduler.sleep(wake or 0)
      elseif self.batch:pending() > 0 then
        timeout = math.min(wake or 1, 1)
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
    if not self:has_ready() then
      self.parked = { scheduler = outer, co = coroutine.running() }
      scheduler.sleep(self:next_wake() or math.huge)
      self.parked = nil
    end
  end
end

--- Wakes a job sleeping in this scheduler before its time: co is the job's
-- coroutine.  Returns whether it was sleeping.
function Scheduler:wake(co)
  for i, worker in ipairs(self.sleeping) do
    if worker.co == co then
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

return scheduler

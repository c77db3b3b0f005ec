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
    -- Adaptive concurrency: at most `limit` requests in flight.  A 429 halves
    -- it and its Retry-After holds every request of the batch until
    -- paused_until; each `limit` answers in a row that are not 429 grow it
    -- by one, back up to `concurrency`.
    limit = concurrency,
    in_flight = 0,
    held = {},       -- { job, request arguments... } waiting for a slot or the pause's end
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
    local request = { job, unpack(resumed, 3, resumed.n) }
    request.n = resumed.n - 1
    -- A request retried after a 429 goes first: it has waited its turn.
    table.insert(self.held, job.throttled and 1 or #self.held + 1, request)
    self:_release()
  elseif what == "sleep" then
    job.wake_at = self:now() + math.max(0, a or 0)
    self.sleeping[#self.sleeping + 1] = job
  else
    job.done, self.failure = true, "a job yielded outside the scheduler: " .. tostring(what)
    self.running, self.unfinished = self.running - 1, self.unfinished - 1
  end
end

-- Sends held requests while the batch is not paused and has room under its
-- limit.  A job has at most one request in flight and there are as many
-- batch slots as jobs, so a slot is always free.
function Scheduler:_release()
  if self.paused_until and self:now() < self.paused_until then return end
  self.paused_until = nil
  while #self.held > 0 and self.in_flight < self.limit do
    local request = table.remove(self.held, 1)
    local job = request[1]
    local id = self.batch:add(unpack(request, 2, request.n))
    job.sent_at = self:now()
    self.sending[id] = job
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

-- Adapts the limit to one answer (status nil: no answer at all).
function Scheduler:_observe(job, status, headers)
  if status == 429 then
    self.throttled = self.throttled + 1
    job.throttled = true
    local now = self:now()
    if not self.cut_at or (job.sent_at or now) >= self.cut_at then
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
    job.throttled = nil
    self.grown = self.grown + 1
    if self.grown >= self.limit and self.limit < self.concurrency then
      self.limit, self.grown = self.limit + 1, 0
    end
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
  -- requests held by a pause go when it ends
  if #self.held > 0 and self.paused_until and (not first or self.paused_until < first) then
    first = self.paused_until
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
      self.in_flight = self.in_flight - 1
      self:_observe(job, finished[1], finished[3])
      local entry = { job, unpack(finished, 1, finished.n) }
      entry.n = finished.n + 1
      self.ready[#self.ready + 1] = entry
    end
  end
  self:_release()
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

function Scheduler:close()
  self.batch:close()
end

return scheduler

--- Drives a client's started calls from a host's event loop (client:use_loop):
-- the batches run in socket mode (libcurl's multi_socket interface), the host
-- watches the sockets libcurl names and keeps one timer, and tells the client
-- when a socket is ready or the timer fired.  Nothing here waits.
--
-- The host's callbacks run only from here, after libcurl returned: the C core
-- queues what libcurl asked for, and deliver() hands it on.
local core = require("pipeline.core")

local loop = {}

-- Rounds of resuming jobs that one host event may run before the rest is
-- left to a timer of 0 s, so a busy client never starves the host's loop.
local MAX_ROUNDS = 64
-- A timer that fires this much early still counts as due (loop clocks round).
local EARLY = 0.002

local Loop = {}
Loop.__index = Loop

--- A loop: watch(fd, what) and timer(seconds) are the host's.  It serves
-- the scheduler of the started calls (serve) and the nested ones their jobs
-- make (attach).
function loop.new(watch, timer)
  return setmetatable({
    runner = nil,     -- the started calls' scheduler (nil after a job's error)
    watch = watch,
    timer = timer,
    entries = {},     -- one per batch in socket mode: { scheduler, curl_due }
    owner = {},       -- fd -> the entry whose batch uses it
    watched = {},     -- fd -> what the host was told to watch it for
    wanted = {},      -- fd -> what libcurl last asked for it
    unsettled = {},   -- fd -> true: the host's watch callback raised for it
    told_due = nil,   -- the monotonic time the host's timer is set for
    kicked = false,   -- a job was started: the host's timer fires at once
    closed = false,
  }, Loop)
end

--- Puts a scheduler's batch in socket mode and serves it.
function Loop:attach(runner)
  runner.batch:use_sockets()
  runner.loop = self
  local entry = { scheduler = runner }
  self.entries[#self.entries + 1] = entry
end

--- Serves runner as the started calls' scheduler: the one socket_ready and
-- timeout advance.
function Loop:serve(runner)
  self:attach(runner)
  self.runner = runner
end

-- Forgets an entry: the host stops watching its sockets.
function Loop:_detach(entry)
  for i, other in ipairs(self.entries) do
    if other == entry then table.remove(self.entries, i) break end
  end
  for fd, owner in pairs(self.owner) do
    if owner == entry then
      self.owner[fd], self.wanted[fd] = nil, nil
      if self.watched[fd] or self.unsettled[fd] then self:_watch(fd, nil) end
    end
  end
end

-- Calls a host callback; the first error is kept for deliver() to raise
-- once everything else was handed on.
function Loop:_call(fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok and not self.callback_error then self.callback_error = tostring(err) end
  return ok
end

-- Tells the host to watch fd for what (nil: stop).  When its callback
-- raises, the host's state is unknown: the call is repeated at the next
-- delivery, which the host's timer brings at once.
function Loop:_watch(fd, what)
  if self:_call(self.watch, fd, what) then
    self.watched[fd], self.unsettled[fd] = what, nil
  else
    self.unsettled[fd], self.kicked = true, true
  end
end

-- Activity on a nested scheduler's batch: the job running it (a worker
-- parked in its own scheduler) is woken, and so on outwards.
local function wake_outwards(runner)
  while runner and runner.parked do
    local parked = runner.parked
    parked.scheduler:wake(parked)
    runner = parked.scheduler
  end
end

--- A job was started: the host's timer is asked to fire at once.
function Loop:kick()
  self.kicked = true
  if self.busy then return end -- _advance delivers
  self.busy = true
  local ok, err = pcall(self._deliver, self)
  self.busy = false
  if not ok then error(err, 0) end
end

-- Runs the client's started jobs until none is ready (or MAX_ROUNDS).
function Loop:_run()
  local runner = self.runner
  if not runner then return end
  for _ = 1, MAX_ROUNDS do
    runner:step(0)
    if self.closed or not runner:has_ready() then return end
  end
  self.kicked = true -- more to do: on the next turn of the host's loop
end

-- Common end of socket_ready and timeout: run, then hand the host the
-- changes.  Returns how many started calls are not finished.
function Loop:_advance()
  self.busy = true -- until the callbacks below returned
  local ok, err = pcall(self._run, self)
  if not ok and not self.closed then
    -- A job raised: the scheduler closed itself; stop serving it and its
    -- nested ones, then raise the job's error.
    self.runner = nil
    for _, entry in ipairs(self.entries) do entry.scheduler:close() end
  end
  local delivered, callback_error = pcall(self._deliver, self)
  self.busy = false
  if not ok and not self.closed then error(err, 0) end
  if not delivered then error(callback_error, 0) end
  local runner = self.runner
  return runner and runner.unfinished or 0
end

-- The host's callbacks must not drive the loop: they run in the middle of it.
local function refuse_from_callback(self)
  if self.busy then error("pipeline: socket_ready or timeout called from inside a callback", 4) end
end

--- The host's news: fd is ready for what ("r", "w" or "rw"; nil: either).
function Loop:socket_ready(fd, what)
  refuse_from_callback(self)
  if self.closed then return 0 end
  local entry = self.owner[fd]
  if entry and not entry.scheduler.batch:is_closed() then
    entry.scheduler.batch:socket_action(fd, what or "rw")
    wake_outwards(entry.scheduler)
  end
  -- an fd no batch uses any more (the host still watched it) is ignored
  return self:_advance()
end

--- The host's timer fired.
function Loop:timeout()
  refuse_from_callback(self)
  if self.closed then return 0 end
  self.told_due, self.kicked = nil, false -- the host's timer is spent
  local due = core.monotonic() + EARLY
  for _, entry in ipairs(self.entries) do
    if entry.curl_due and entry.curl_due <= due and not entry.scheduler.batch:is_closed() then
      entry.curl_due = nil
      entry.scheduler.batch:socket_action()
      wake_outwards(entry.scheduler)
      entry.fired = true
    end
  end
  return self:_advance()
end

-- Hands the host what the batches asked for, and sets its timer.
function Loop:_deliver()
  if self.closed then return end
  self.callback_error = nil
  -- Closed batches first: their sockets are gone, and their fds may already
  -- be another batch's, whose changes come below.
  for i = #self.entries, 1, -1 do
    local entry = self.entries[i]
    if entry.scheduler.batch:is_closed() then self:_detach(entry) end
  end
  -- Watches whose callback raised last time, again.
  for fd in pairs(self.unsettled) do
    self:_watch(fd, self.wanted[fd])
    if self.closed then return end
  end
  local now = core.monotonic()
  for _, entry in ipairs(self.entries) do
    if self.closed then return end
    local batch = entry.scheduler.batch
    if not batch:is_closed() then
      local list, timer = batch:changes()
      for i = 1, #list, 2 do
        local fd, what = list[i], list[i + 1] or nil
        if what then
          self.owner[fd], self.wanted[fd] = entry, what
        elseif self.owner[fd] == entry then
          self.owner[fd], self.wanted[fd] = nil, nil
        end
        -- in order, a stop included: the fd may be a new socket's already
        if self.watched[fd] ~= what or self.unsettled[fd] then
          self:_watch(fd, what)
          if self.closed then return end
        end
      end
      if batch:is_closed() then
        -- by a callback just now: the next turn's _run tells what became of its calls
        entry.curl_due, self.kicked = nil, true
      elseif timer == false then
        entry.curl_due = nil
      elseif timer then
        entry.curl_due = now + timer
      elseif entry.fired then
        -- libcurl fired without naming a new timer: ask it
        local left = batch:timeout()
        entry.curl_due = left and now + left or nil
      end
      entry.fired = nil
    end
  end
  self:_set_timer(now)
  local err = self.callback_error
  self.callback_error = nil
  if err then error("pipeline: a callback of the host's loop raised: " .. err, 0) end
end

-- Sets the host's timer to the first of libcurl's timers and the started
-- jobs' waits (a poll interval, a backoff), when that changed.
function Loop:_set_timer(now)
  local due = self.kicked and now or nil
  for _, entry in ipairs(self.entries) do
    if entry.curl_due and (not due or entry.curl_due < due) then due = entry.curl_due end
  end
  local runner = self.runner
  local wake = runner and runner.unfinished > 0 and runner:next_wake()
  if wake and wake < math.huge and (not due or now + wake < due) then due = now + wake end
  if due ~= self.told_due or self.timer_unsettled then
    self.told_due = due
    -- when it raised, the host's timer is in an unknown state: set it again next time
    self.timer_unsettled = not self:_call(self.timer, due and math.max(0, due - now) or nil)
  end
end

--- Stops: the host stops watching every socket and its timer is cancelled
-- (errors of these last callbacks are ignored), the batches are closed.
function Loop:close()
  if self.closed then return end
  self.closed, self.runner = true, nil
  for _, entry in ipairs(self.entries) do entry.scheduler:close() end
  for fd in pairs(self.watched) do pcall(self.watch, fd, nil) end
  self.watched, self.unsettled = {}, {}
  if self.told_due then pcall(self.timer, nil) end
  self.told_due = nil
end

return loop

-- The scheduler alone: jobs that send requests and sleep, over a fake batch
-- on a fake clock (no network, no client, no simulator).  Each row gives the
-- jobs as scripts and what must come of them: the order in which their steps
-- ended, on the fake clock, and what the jobs returned.
local scheduler = require("pipeline.scheduler")

-- A fake clock: now() and pause(seconds), which moves it on at once.
local function fake_clock()
  local clock = { t = 0, pauses = {} }
  function clock.now() return clock.t end
  function clock.pause(seconds)
    clock.pauses[#clock.pauses + 1] = seconds
    clock.t = clock.t + seconds
  end
  return clock
end

-- A fake batch on clock: a request's "url" is its answer, {seconds, status,
-- retry_after}: it finishes that many seconds after it was added, with a
-- status below 400 as a good answer, else as a failure.  step()
-- waiting for an answer moves the clock to it (at most timeout).  Keeps each
-- request's send time in sent, and the largest number in flight.
local function fake_batch(clock, slots)
  local batch = { flying = {}, sent = {}, most = 0, slots = slots, next_id = 0, closed = false }
  function batch.add(_, method, answer)
    assert(#batch.flying < slots, "more requests than slots")
    batch.next_id = batch.next_id + 1
    local id = batch.next_id
    batch.flying[#batch.flying + 1] = { id = id, due = clock.t + answer[1], answer = answer }
    batch.sent[#batch.sent + 1] = { method = method, at = clock.t }
    batch.most = math.max(batch.most, #batch.flying)
    return id
  end
  function batch.pending() return #batch.flying end
  function batch.step(_, timeout)
    local first
    for _, request in ipairs(batch.flying) do first = math.min(first or math.huge, request.due) end
    if first and first > clock.t then clock.t = math.min(first, clock.t + (timeout or 0)) end
    local finished, kept = {}, {}
    for _, request in ipairs(batch.flying) do
      if request.due <= clock.t then
        -- the transport's shapes: body, info for a good answer; nil,
        -- message, code, info for a failure
        local answer = request.answer
        if answer[2] < 400 then
          finished[#finished + 1] = { id = request.id, n = 2, "body", { status = answer[2] } }
        else
          finished[#finished + 1] = { id = request.id, n = 4, nil, "HTTP " .. answer[2], "server",
            { status = answer[2], retry_after = answer[3] } }
        end
      else
        kept[#kept + 1] = request
      end
    end
    batch.flying = kept
    return finished
  end
  function batch.close() batch.closed = true end
  function batch.is_closed() return batch.closed end
  return batch
end

-- A scheduler over a fake batch and clock; returns it, the clock, the batch
-- and the throttle events it told of.
local function fake_scheduler(concurrency, extra)
  local clock, batch, throttles = fake_clock(), nil, {}
  local options = { concurrency = concurrency, now = clock.now, pause = clock.pause,
    new_batch = function(slots) batch = fake_batch(clock, slots) return batch end,
    on_throttle = function(event) throttles[#throttles + 1] = event end }
  for name, value in pairs(extra or {}) do options[name] = value end
  return scheduler.new(options), clock, batch, throttles
end

-- Runs job scripts: each a name and a list of steps, {"send", seconds,
-- status [, retry_after]} or {"sleep", seconds}.  Returns the log ("name:
-- step at time" for each step that ended, in order), the jobs' results (the
-- statuses each got, joined), the clock, the batch and the throttles.
local function run_scripts(concurrency, scripts, extra)
  local runner, clock, batch, throttles = fake_scheduler(concurrency, extra)
  local log = {}
  local jobs = {}
  for index, script in ipairs(scripts) do
    jobs[index] = runner:add(function(name, steps)
      local got = {}
      for _, step in ipairs(steps) do
        if step[1] == "send" then
          local value, second, _, failure_info = scheduler.send("PUT", { step[2], step[3], step[4] })
          got[#got + 1] = tostring((value == nil and failure_info or second).status)
        else
          scheduler.sleep(step[2])
        end
        log[#log + 1] = ("%s:%s at %g"):format(name, step[1], clock.t)
      end
      return table.concat(got, ",")
    end, script[1], script[2])
  end
  runner:run()
  local results = {}
  for index, job in ipairs(jobs) do
    assert.is_true(job.done)
    results[index] = job.results[1]
  end
  return log, results, clock, batch, throttles
end

describe("scheduler (fake batch, fake clock)", function()
  local ROWS = {
    { "two jobs side by side: the shorter answer resumes first", concurrency = 2,
      jobs = { { "a", { { "send", 2, 200 } } }, { "b", { { "send", 1, 200 } } } },
      log = { "b:send at 1", "a:send at 2" }, results = { "200", "200" } },
    { "a concurrency of 1 runs the jobs one after the other", concurrency = 1,
      jobs = { { "a", { { "send", 2, 200 } } }, { "b", { { "send", 1, 404 } } } },
      log = { "a:send at 2", "b:send at 3" }, results = { "200", "404" } },
    { "more jobs than workers: the queue is taken in order", concurrency = 2,
      jobs = { { "a", { { "send", 3, 200 } } }, { "b", { { "send", 1, 200 } } },
        { "c", { { "send", 1, 200 } } }, { "d", { { "send", 5, 200 } } } },
      log = { "b:send at 1", "c:send at 2", "a:send at 3", "d:send at 7" },
      results = { "200", "200", "200", "200" } },
    { "a sleeping job wakes on the clock, after a request that ends first", concurrency = 2,
      jobs = { { "a", { { "sleep", 5 }, { "send", 1, 200 } } }, { "b", { { "send", 1, 500 } } } },
      log = { "b:send at 1", "a:sleep at 5", "a:send at 6" }, results = { "200", "500" },
      pauses = { 4 } },
    { "jobs that only sleep: run waits through pause, once per wake", concurrency = 3,
      jobs = { { "a", { { "sleep", 2 } } }, { "b", { { "sleep", 1 } } }, { "c", { { "sleep", 2 } } } },
      log = { "b:sleep at 1", "a:sleep at 2", "c:sleep at 2" }, results = { "", "", "" },
      pauses = { 1, 1 } },
    { "a 429 halves the limit and its Retry-After holds every request", concurrency = 4,
      jobs = { { "a", { { "send", 1, 429, "3" }, { "send", 1, 200 } } }, { "b", { { "send", 2, 200 } } },
        { "c", { { "send", 2, 200 }, { "send", 1, 200 } } } },
      log = { "a:send at 1", "b:send at 2", "c:send at 2", "a:send at 5", "c:send at 5" },
      results = { "429,200", "200", "200,200" },
      throttles = { { type = "throttle", concurrency = 2, pause = 3 } },
      sent_at = { 0, 0, 0, 4, 4 } },
    { "max_hold cuts a long Retry-After", concurrency = 2, max_hold = 1,
      jobs = { { "a", { { "send", 1, 429, "60" }, { "send", 1, 200 } } } },
      log = { "a:send at 1", "a:send at 3" }, results = { "429,200" },
      throttles = { { type = "throttle", concurrency = 1, pause = 1 } }, sent_at = { 0, 2 } },
  }

  for _, row in ipairs(ROWS) do
    it(row[1], function()
      local log, results, clock, batch, throttles = run_scripts(row.concurrency, row.jobs,
        { max_hold = row.max_hold })
      assert.same(row.log, log)
      assert.same(row.results, results)
      assert.is_true(batch.most <= row.concurrency)
      if row.pauses then assert.same(row.pauses, clock.pauses) end
      assert.same(row.throttles or {}, throttles)
      if row.sent_at then
        local at = {}
        for i, sent in ipairs(batch.sent) do at[i] = sent.at end
        assert.same(row.sent_at, at)
      end
    end)
  end

  it("gives each job's results as table.pack, its arguments as given", function()
    local runner = fake_scheduler(2)
    local first = runner:add(function(x, y) return y, nil, x end, 1, 2)
    local second = runner:add(function(...) return select("#", ...) end, nil, nil)
    runner:run()
    assert.same({ n = 3, 2, nil, 1 }, first.results)
    assert.same({ n = 1, 2 }, second.results)
  end)

  it("steps without blocking: a host may drive it", function()
    local runner, clock = fake_scheduler(1)
    local job = runner:add(function() return scheduler.send("GET", { 10, 200 }) end)
    assert.equal(1, runner:step(0))
    assert.equal(0, clock.t) -- nothing waited
    assert.is_false(job.done)
    assert.equal(1, runner:step(60)) -- waits for the answer, no longer
    assert.equal(10, clock.t)
    assert.equal(0, runner:step(0)) -- the job is resumed with it
    assert.same(200, job.results[2].status)
  end)

  it("says when the first parked job wakes", function()
    local runner, clock = fake_scheduler(2)
    runner:add(scheduler.sleep, 7)
    runner:add(scheduler.sleep, 3)
    assert.is_nil(runner:next_wake())
    runner:step(0)
    assert.equal(3, runner:next_wake())
    clock.t = 5
    assert.equal(0, runner:next_wake())
  end)

  local FAILURES = {
    { "a job's error ends the run, with the job's traceback", function() error("boom") end, "boom.*traceback" },
    { "a job yielding to someone else ends the run", function() coroutine.yield("elsewhere") end,
      "a job yielded outside the scheduler: elsewhere" },
  }
  for _, row in ipairs(FAILURES) do
    it(row[1], function()
      local runner, _, batch = fake_scheduler(2)
      runner:add(function() return scheduler.send("GET", { 1, 200 }) end)
      runner:add(row[2])
      local ok, err = pcall(runner.run, runner)
      assert.is_false(ok)
      assert.matches(row[3], err)
      assert.is_true(batch.closed)
      assert.is_true(runner:is_closed())
    end)
  end

  describe("which job is running", function()
    it("is known from the running table while a job runs, and only then", function()
      local running = {}
      local runner = fake_scheduler(2, { running = running })
      local seen = {}
      runner:add(function()
        seen.job = scheduler.job_of(running)
        -- a coroutine of the job's own is not the job
        seen.inner = coroutine.wrap(function() return scheduler.job_of(running) or false end)()
        scheduler.sleep(0)
        seen.after_sleep = scheduler.job_of(running)
      end)
      assert.is_nil(scheduler.job_of(running))
      runner:run()
      assert.is_table(seen.job)
      assert.equal(runner, seen.job.scheduler)
      assert.is_false(seen.inner)
      assert.equal(seen.job, seen.after_sleep)
      assert.is_nil(scheduler.job_of(running))
      assert.is_nil(running.worker)
    end)

    it("a scheduler stepped inside another's job gives the outer job back", function()
      local running = {}
      local outer = fake_scheduler(1, { running = running })
      local inner = fake_scheduler(1, { running = running })
      local seen = {}
      inner:add(function() seen.inner = scheduler.job_of(running) end)
      outer:add(function()
        seen.before = scheduler.job_of(running)
        inner:run()
        seen.after = scheduler.job_of(running)
      end)
      outer:run()
      assert.equal(inner, seen.inner.scheduler)
      assert.equal(outer, seen.before.scheduler)
      assert.equal(seen.before, seen.after)
    end)
  end)

  it("a nested scheduler never blocks: it pauses between its steps", function()
    local runner, clock, batch = fake_scheduler(1, { nested = true })
    local job = runner:add(function() return scheduler.send("GET", { 0.045, 200 }) end)
    runner:run()
    assert.equal(200, job.results[2].status)
    -- polled in steps of 10 ms through pause, each step waiting 0 s
    assert.same({ 0.01, 0.01, 0.01, 0.01, 0.01 }, clock.pauses)
    assert.equal(0, batch.pending())
  end)
end)

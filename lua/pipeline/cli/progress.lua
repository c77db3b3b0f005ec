--- The live display of a followed run on stderr: on a terminal, one line for
-- the run and one per stage, redrawn in place; elsewhere, one plain line per
-- change.
local lifecycle = require("pipeline.lifecycle")
local output = require("pipeline.cli.output")

local progress = {}

local TERMINAL = lifecycle.TERMINAL
local clean, duration, epoch_ms, run_id_of = output.clean, output.duration, output.epoch_ms, output.run_id_of

-- Stage and job statuses after which their clock stops.
local STAGE_DONE = { COMPLETED = true, FAILED = true, CANCELED = true, IGNORED = true, SKIPPED = true,
  UNSELECTED = true, ASYNC_FAILED = true }
local STAGE_WAITING = { INIT = true, QUEUED = true }

local Display = {}
Display.__index = Display

--- A display for ctx (its err stream, tty, width and clock).
function progress.new(ctx)
  return setmetatable({ ctx = ctx, out = ctx.err, tty = ctx.tty, width = ctx.width,
    started = ctx.clock(), drawn = 0, stages = {} }, Display)
end

local function stage_elapsed(stage, now)
  local started = epoch_ms(stage.start_ms)
  if started then
    return duration(((epoch_ms(stage.end_ms) or os.time() * 1000) - started) / 1000)
  end
  if stage.since then return duration((stage.done or now) - stage.since) end
  return ""
end

function Display:_lines(now)
  local run = self.run
  local lines = { ("run %s%s  %s  %s"):format(clean(run_id_of(run)),
    run.run_number and (" #" .. clean(run.run_number)) or "", clean(run.status),
    duration(now - self.started)) }
  local width = 0
  for _, stage in ipairs(self.stages) do width = math.max(width, #stage.name) end
  for _, stage in ipairs(self.stages) do
    lines[#lines + 1] = ("  %s  %-10s %s"):format(stage.name .. (" "):rep(width - #stage.name),
      stage.status, stage_elapsed(stage, now)):gsub(" +$", "")
  end
  return lines
end

-- Moves the cursor back to the top of the block drawn last and clears it.
function Display:_erase()
  if self.drawn > 0 then self.out:write(("\27[%dA\r\27[J"):format(self.drawn)) end
  self.drawn, self.screen = 0, nil
end

function Display:draw()
  if not (self.tty and self.run) then return end
  local lines = self:_lines(self.ctx.clock())
  local text = {}
  if self.drawn > 0 then text[1] = ("\27[%dA"):format(self.drawn) end
  for _, line in ipairs(lines) do
    if #line > self.width - 1 then line = line:sub(1, self.width - 1) end
    text[#text + 1] = "\r\27[2K" .. line .. "\n"
  end
  if #lines < self.drawn then text[#text + 1] = "\27[J" end
  local screen = table.concat(lines, "\n")
  if screen == self.screen and #lines == self.drawn then return end -- nothing moved
  self.screen = screen
  self.out:write(table.concat(text))
  if self.out.flush then self.out:flush() end
  self.drawn = #lines
end

--- Writes a line above the live block (or plainly off a terminal).
function Display:note(text)
  if self.tty then self:_erase() end
  self.out:write(text, "\n")
  self:draw()
end

--- Takes a new look at the run: records what changed and shows it.
function Display:update(run)
  local now = self.ctx.clock()
  if self.run and TERMINAL[self.run.status] and not TERMINAL[run.status] then
    -- The run was retried (retry-failed): a new block, the last one stays.
    self.drawn, self.stages, self.started, self.screen = 0, {}, now, nil
    self.last_status = nil
  end
  local changes = {}
  if run.status ~= self.last_status then
    changes[#changes + 1] = "run " .. clean(run_id_of(run)) .. " " .. clean(run.status)
    self.last_status = run.status
  end
  for i, stage in ipairs(type(run.stages) == "table" and run.stages or {}) do
    local seen = self.stages[i]
    if not seen then
      seen = { name = clean(stage.name) }
      if seen.name == "" then seen.name = "stage " .. i end
      self.stages[i] = seen
    end
    local status = clean(stage.status)
    if status ~= seen.status then
      seen.status = status
      if not STAGE_DONE[status] and not STAGE_WAITING[status] and not seen.since then seen.since = now end
      if STAGE_DONE[status] and seen.since then seen.done = now end
      if not STAGE_DONE[status] then seen.done = nil end
      changes[#changes + 1] = ("stage %s %s"):format(seen.name, status)
    end
    seen.start_ms, seen.end_ms = stage.start_time, stage.end_time
  end
  self.run = run
  if self.tty then
    self:draw()
  else
    local stamp = duration(now - self.started)
    for _, change in ipairs(changes) do self.out:write(("[%s] %s\n"):format(stamp, change)) end
  end
end

--- Redraws (elapsed times move on while waiting between looks).
function Display:tick()
  if self.tty and self.run and not self.finished then self:draw() end
end

function Display:finish()
  self:tick()
  self.finished = true
end

return progress

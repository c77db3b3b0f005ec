-- A host on libuv (luv): retries runs and follows them from a luv loop, with
-- the client's sockets and timer on the loop.  Nothing blocks the loop: a
-- side timer ticking beside the calls keeps its rhythm however slow the
-- requests are.
--
--   lua5.4 examples/luv/retry.lua PIPELINE_ID RUN_ID... [--wait RUN_ID...]
--
-- The runs before --wait are retried together with one retry_many call; each
-- run after it is retried and followed with its own retry_and_wait.  The
-- account comes from pipeline.load() (CODEARTS_PIPELINE_ENDPOINT, ...).
local uv = require("luv")
local pipeline = require("pipeline")

local SIDE_INTERVAL = 0.1 -- seconds between the side timer's ticks
local LIMIT = 60          -- seconds before the example gives up

local pipeline_id = arg[1]
local many, each = {}, {}
local list = many
for i = 2, #arg do
  if arg[i] == "--wait" then list = each else list[#list + 1] = arg[i] end
end
local client, message = nil, "usage: lua5.4 examples/luv/retry.lua PIPELINE_ID RUN_ID... [--wait RUN_ID...]"
if pipeline_id and #many + #each > 0 then client, message = pipeline.load() end
if not client then io.stderr:write(message, "\n") os.exit(2) end

local failure -- set when the client raised: the loop then stops
local left = 1

-- Every call into the client from a luv callback goes through here: an
-- error must not escape into luv (which would end the process).
local function advance(fn, ...)
  local ok, result = pcall(fn, client, ...)
  if not ok then
    failure = failure or result
    uv.stop()
  else
    left = result
    if left == 0 then uv.stop() end
  end
end

-- The client's sockets: one uv poll handle per fd it asks to watch.
local polls = {}
-- The client's timer: libcurl's timeouts and the client's own waits
-- (poll intervals, backoff), one uv timer for both.
local timer = uv.new_timer()

client:use_loop({
  watch = function(fd, what)
    local poll = polls[fd]
    if not what then
      if poll then
        polls[fd] = nil
        poll:stop()
        poll:close()
      end
      return
    end
    if not poll then
      poll = uv.new_socket_poll(fd)
      polls[fd] = poll
    end
    poll:start(what, function(err, events)
      -- a poll error or a hang-up ("d") alone: let libcurl find out which
      local ready = (not err and events) and ((events:find("r") and "r" or "") .. (events:find("w") and "w" or "")) or ""
      advance(client.socket_ready, fd, ready ~= "" and ready or "rw")
    end)
  end,
  timer = function(seconds)
    timer:stop()
    if seconds then
      timer:start(math.ceil(seconds * 1000), 0, function() advance(client.timeout) end)
    end
  end,
})

local jobs = {}
if #many > 0 then
  local pairs_of = {}
  for i, run_id in ipairs(many) do pairs_of[i] = { pipeline_id, run_id } end
  jobs[#jobs + 1] = { name = "retry_many", job = client:start("retry_many", pairs_of) }
end
for _, run_id in ipairs(each) do
  jobs[#jobs + 1] = { name = "retry_and_wait " .. run_id,
    job = client:start("retry_and_wait", pipeline_id, run_id, { interval = 0.05, timeout = 30 }) }
end

-- The side timer: how late is each tick against the one before?
local side = uv.new_timer()
local ticks, latest, last = 0, 0, uv.hrtime()
side:start(math.floor(SIDE_INTERVAL * 1000), math.floor(SIDE_INTERVAL * 1000), function()
  local now = uv.hrtime()
  local late = (now - last) / 1e9 - SIDE_INTERVAL
  if late > latest then latest = late end
  ticks, last = ticks + 1, now
end)

local give_up = uv.new_timer()
give_up:start(LIMIT * 1000, 0, function()
  failure = failure or ("not done after " .. LIMIT .. " s")
  uv.stop()
end)

uv.run("default")

side:stop()
give_up:stop()
client:close() -- stops the watches and the timer the client still holds
print(("side timer: %d ticks every %d ms, latest %.1f ms late"):format(ticks, SIDE_INTERVAL * 1000, latest * 1000))
if failure then
  io.stderr:write("luv host: ", tostring(failure), "\n")
  os.exit(1)
end

local failed = 0
for _, entry in ipairs(jobs) do
  local result, err = entry.job:result()
  if entry.name == "retry_many" then
    for i, item in ipairs(result) do
      print(("retry_many %s: %s"):format(many[i], item.ok and "retried" or ("failed: " .. tostring(item.message))))
      if not item.ok then failed = failed + 1 end
    end
  else
    print(("%s: %s"):format(entry.name, tostring(result or err)))
    if result ~= "COMPLETED" then failed = failed + 1 end
  end
end
print(("luv host: %d runs, %d failed, %d calls left"):format(#many + #each, failed, left))
os.exit(failed == 0 and 0 or 1)

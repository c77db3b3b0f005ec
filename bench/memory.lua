-- The benchmark's memory figures (bench/limits.lua runs it in a process of
-- its own): resident memory and open descriptors over many calls on one
-- client, and after many clients created, used once and closed.
--   lua5.4 bench/memory.lua HTTP_BASE HTTPS_BASE CA_FILE CALLS CLIENTS
local target = require("target")

local HTTP, HTTPS, CA = arg[1], arg[2], arg[3]
local MEMORY_CALLS, MEMORY_CLIENTS = tonumber(arg[4]), tonumber(arg[5])
local PIPELINE, RUN = target.PIPELINE, target.RUN
local BASE = { http = HTTP, https = HTTPS }

local function new_client(scheme)
  return target.client(BASE[scheme], scheme == "https" and CA or nil)
end

local function sh(command)
  local pipe = assert(io.popen(command))
  local out = pipe:read("a")
  pipe:close()
  return out
end

local say = print

local function resident_kib()
  for line in io.lines("/proc/self/status") do
    local kib = line:match("^VmRSS:%s*(%d+)")
    if kib then return tonumber(kib) end
  end
end

local function open_fds()
  local pid = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
  -- (counted from outside: the pipe to ls is one of them, every time)
  return tonumber(sh("ls /proc/" .. pid .. "/fd | wc -l"))
end

do
  collectgarbage()
  local client = new_client("http")
  local chunk = math.min(MEMORY_CALLS, 10000)
  local list = target.pairs(chunk)
  local samples = {}
  local done = 0
  local start = ("before: %d KiB, %d fds"):format(resident_kib(), open_fds())
  while done < MEMORY_CALLS do
    for _, result in ipairs(client:retry_many(list, { concurrency = 32 })) do assert(result.ok) end
    for _ = 1, 100 do assert(client:retry(PIPELINE, RUN)) end
    done = done + chunk + 100
    collectgarbage()
    samples[#samples + 1] = ("%d calls: %d KiB, %d fds"):format(done, resident_kib(), open_fds())
  end
  client:close()
  say(("Resident memory and descriptors, one client, retry_many(%d) + 100 retries per round:"):format(chunk))
  say("  " .. start .. " | " .. samples[1] .. (#samples > 2 and (" | " .. samples[#samples // 2]) or "") .. " | " .. samples[#samples])
end
do
  collectgarbage()
  local before_kib, before_fds = resident_kib(), open_fds()
  local mid
  for i = 1, MEMORY_CLIENTS do
    local client = new_client(i % 2 == 0 and "http" or "https")
    assert(client:retry(PIPELINE, RUN))
    client:close()
    if i == MEMORY_CLIENTS // 2 then
      collectgarbage()
      mid = ("%d clients: %d KiB, %d fds"):format(i, resident_kib(), open_fds())
    end
  end
  collectgarbage()
  say(("Clients created, used once (HTTP and HTTPS alternately) and closed:"))
  say(("  before: %d KiB, %d fds | %s | %d clients: %d KiB, %d fds"):format(before_kib, before_fds, mid,
    MEMORY_CLIENTS, resident_kib(), open_fds()))
end


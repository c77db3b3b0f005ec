-- Keep pipelines green: for every pipeline given, while its latest run ended
-- FAILED (or CANCELED), retry it and follow it to its end, up to 3 times; all
-- the pipelines at once.  Then tell which stayed red.
--
--   lua5.4 examples/keep-green.lua [--interval SECONDS] PIPELINE_ID...
--
-- Configured by pipeline.load(), as every example: options > environment
-- (CODEARTS_PIPELINE_ENDPOINT or _REGION, CODEARTS_PIPELINE_PROJECT_ID,
-- CODEARTS_PIPELINE_TOKEN or HUAWEICLOUD_SDK_AK/SK) > config file profile.
-- Exit status: 0 all green, 1 some stayed red, 2 usage or configuration error.
local pipeline = require("pipeline")

local interval, ids = 10, {}
local i = 1
while arg[i] do
  if arg[i] == "--interval" and tonumber(arg[i + 1]) then
    interval, i = tonumber(arg[i + 1]), i + 2
  else
    ids[#ids + 1], i = arg[i], i + 1
  end
end
local client, message = nil, "usage: lua5.4 examples/keep-green.lua [--interval SECONDS] PIPELINE_ID..."
for _, id in ipairs(ids) do
  if not pipeline.core.is_id(id) then message, ids = ("not a pipeline id: %s"):format(id), {} end
end
if #ids > 0 then client, message = pipeline.load() end
if not client then io.stderr:write(message, "\n") os.exit(2) end

-- The heart of it: client:map runs retry_failed for every pipeline side by side.
local results = client:map(ids, function(id)
  return client:retry_failed(id, { attempts = 3, interval = interval, timeout = 3600 })
end, { concurrency = 8 })
client:close()

local function retries(history)
  return #history == 1 and "1 retry" or ("%d retries"):format(#history)
end

local red = 0
for n, id in ipairs(ids) do
  -- each result: a final status and the attempts, or nil, message, code
  local status, history, code = results[n][1], results[n][2], results[n][3]
  if status == "COMPLETED" then
    print(("green %s (%s)"):format(id, retries(history)))
  else
    red = red + 1
    print(("red   %s %s"):format(id, status and ("%s after %s"):format(status, retries(history))
      or ("%s [%s]"):format(history, code)))
  end
end
os.exit(red == 0 and 0 or 1)

-- Retry one pipeline run with whatever configures pipeline.load():
-- options > environment > config file profile > ~/.huaweicloud/credentials.
--
--   lua5.4 examples/retry.lua PIPELINE_ID RUN_ID
local pipeline = require("pipeline")

local pipeline_id, run_id = arg[1], arg[2]
local client, message = nil, "usage: lua5.4 examples/retry.lua PIPELINE_ID RUN_ID"
if pipeline_id and run_id then client, message = pipeline.load() end
if not client then io.stderr:write(message, "\n") os.exit(2) end

local ok, err, code, info = client:retry(pipeline_id, run_id)
client:close()
if ok then
  print(("retried run %s of pipeline %s"):format(run_id, pipeline_id))
else
  io.stderr:write(("%s (code %s, request id %s)\n"):format(err, code, tostring(info.request_id)))
  os.exit(1)
end

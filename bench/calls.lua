-- One batch of calls, for the benchmark's measures in a process of their own
-- (valgrind's instruction counts):
--   lua5.4 bench/calls.lua seq|many BASE_URL COUNT [CA_FILE]
local pipeline = require("pipeline")
local mode, base, count, ca_file = arg[1], arg[2], tonumber(arg[3]), arg[4]
local PROJECT, PIPELINE, RUN = ("c"):rep(32), ("a"):rep(32), ("b"):rep(32)
local client = assert(pipeline.new({ endpoint = base, project_id = PROJECT,
  token = "bench-token-not-a-secret", ca_file = ca_file }))
if mode == "seq" then
  for _ = 1, count do assert(client:retry(PIPELINE, RUN)) end
else
  local list = {}
  for i = 1, count do list[i] = { PIPELINE, RUN } end
  for _, result in ipairs(client:retry_many(list, { concurrency = 32 })) do assert(result.ok, result.message) end
end
client:close()

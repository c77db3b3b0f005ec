--- What the benchmarks against plain servers (bench/limits.lua, memory.lua,
-- calls.lua) retry: one run of one pipeline, which nginx (bench/servers.sh)
-- answers with {"success":true}, and the clients that send it.
local pipeline = require("pipeline")

local target = {
  PROJECT = ("c"):rep(32),
  PIPELINE = ("a"):rep(32),
  RUN = ("b"):rep(32),
  TOKEN = "bench-token-not-a-secret",
}
target.PATH = ("/v5/%s/api/pipelines/%s/pipeline-runs/%s/retry"):format(target.PROJECT, target.PIPELINE, target.RUN)

--- A client of the server at base (ca_file: its CA, for https).
function target.client(base, ca_file)
  return assert(pipeline.new({ endpoint = base, project_id = target.PROJECT, token = target.TOKEN,
    ca_file = ca_file }))
end

--- The list of count { pipeline, run } pairs retry_many takes.
function target.pairs(count)
  local list = {}
  for i = 1, count do list[i] = { target.PIPELINE, target.RUN } end
  return list
end

return target

-- One batch of calls, for the benchmark's measures in a process of their own
-- (valgrind's instruction counts):
--   lua5.4 bench/calls.lua seq|many BASE_URL COUNT [CA_FILE]
local target = require("target")
local mode, base, count, ca_file = arg[1], arg[2], tonumber(arg[3]), arg[4]
local client = target.client(base, ca_file)
if mode == "seq" then
  for _ = 1, count do assert(client:retry(target.PIPELINE, target.RUN)) end
else
  for _, result in ipairs(client:retry_many(target.pairs(count), { concurrency = 32 })) do
    assert(result.ok, result.message)
  end
end
client:close()

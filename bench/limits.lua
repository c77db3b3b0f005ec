-- The benchmark against the limits and the peers (scripts/bench runs it, with
-- nginx started on loopback; see bench/servers.sh).  Every figure is measured
-- in this run; the table gives calls/s (medians over BENCH_REPS repetitions)
-- and ratios.  Nothing here asserts a speed: the ratios are printed.
--
-- Each ratio to a limit is the median of the ratios of runs taken in turns
-- (limit, project, limit, project...), so load from elsewhere weighs on both.
--
-- Environment: BENCH_HTTP, BENCH_HTTPS (base URLs), BENCH_CA (the CA of the
-- HTTPS server), BENCH_LIMIT (the built bench/limit.c), BENCH_SHORT=1 (CI's
-- small counts), BENCH_DOCS (a directory: write performance.md and
-- performance.png there).
local pipeline = require("pipeline")
local core = require("pipeline.core")
local target = require("target")

local HTTP, HTTPS, CA = os.getenv("BENCH_HTTP"), os.getenv("BENCH_HTTPS"), os.getenv("BENCH_CA")
local LIMIT, DOCS = os.getenv("BENCH_LIMIT"), os.getenv("BENCH_DOCS")
if DOCS == "" then DOCS = nil end
local SHORT = os.getenv("BENCH_SHORT") == "1"
assert(HTTP and HTTPS and CA and LIMIT, "run by scripts/bench")

local REPS = tonumber(os.getenv("BENCH_REPS")) or (SHORT and 1 or 3)
local SEQUENTIAL = SHORT and 300 or 20000
local SIZES = SHORT and { 100, 300, 1000 } or { 1000, 10000, 100000 }
local CONCURRENCIES = SHORT and { 1, 8, 32 } or { 1, 4, 8, 16, 32, 64 }
local SWEEP_SIZE = SHORT and 300 or 10000
local PEER_CALLS = { http = SHORT and 100 or 2000, https = SHORT and 10 or 200 }
local CURL_CALLS = SHORT and 10 or 100
local MEMORY_CALLS, MEMORY_CLIENTS = SHORT and 2000 or 100000, SHORT and 200 or 10000
local IR_CALLS = SHORT and 100 or 1000
local WRK_SECONDS = SHORT and 1 or 3

local PIPELINE, RUN, TOKEN, PATH = target.PIPELINE, target.RUN, target.TOKEN, target.PATH
local BASE = { http = HTTP, https = HTTPS }

local function sh(command)
  local pipe = assert(io.popen(command .. " 2>&1"))
  local out = pipe:read("a")
  local ok = pipe:close()
  if not ok then error("bench: failed: " .. command .. "\n" .. out, 0) end
  return out
end

local function median(values)
  table.sort(values)
  local n = #values
  if n % 2 == 1 then return values[(n + 1) // 2] end
  return (values[n // 2] + values[n // 2 + 1]) / 2
end

-- calls/s of fn() doing count calls, median over REPS runs
local function rate(count, fn, reps)
  local rates = {}
  for i = 1, reps or REPS do
    collectgarbage()
    local started = core.monotonic()
    fn()
    rates[i] = count / (core.monotonic() - started)
  end
  return median(rates)
end

local function ca_arg(scheme) return scheme == "https" and (" " .. CA) or "" end

-- The limit programs print their own rate (measured inside, without the process start).
local function limit_rate(args, reps)
  local rates = {}
  for i = 1, reps or REPS do
    rates[i] = tonumber(sh(LIMIT .. " " .. args):match("calls/s ([%d.]+)"))
  end
  return median(rates)
end
local function limit_easy(scheme, count, reps)
  return limit_rate(("easy %s%s %d%s"):format(BASE[scheme], PATH, count, ca_arg(scheme)), reps)
end
local function limit_multi(scheme, count, concurrency, reps)
  return limit_rate(("multi %s%s %d %d%s"):format(BASE[scheme], PATH, count, concurrency, ca_arg(scheme)), reps)
end

-- Two measures taken in turns, one repetition of each at a time, so a burst
-- of load from elsewhere weighs on both: their medians, and the median of
-- the ratios b/a of the runs taken side by side.
local function paired(a, b)
  local as, bs, ratios = {}, {}, {}
  for i = 1, REPS do
    as[i], bs[i] = a(1), b(1)
    ratios[i] = bs[i] / as[i]
  end
  return median(as), median(bs), median(ratios)
end

local function new_client(scheme)
  return target.client(BASE[scheme], scheme == "https" and CA or nil)
end

local function project_sequential(scheme, count, reps)
  return rate(count, function()
    local client = new_client(scheme)
    for _ = 1, count do assert(client:retry(PIPELINE, RUN)) end
    client:close()
  end, reps)
end

local function project_many(scheme, count, concurrency, reps)
  local list = target.pairs(count)
  return rate(count, function()
    local client = new_client(scheme)
    for _, result in ipairs(client:retry_many(list, { concurrency = concurrency })) do
      assert(result.ok, result.message)
    end
    client:close()
  end, reps)
end

local function project_map(scheme, count, concurrency, trivial, reps)
  local list = target.pairs(count)
  return rate(count, function()
    local client = new_client(scheme)
    local fn = trivial and function(ids) return ids[1] end
      or function(ids) return client:retry(ids[1], ids[2]) end
    for _, result in ipairs(client:map(list, fn, { concurrency = concurrency })) do assert(result[1]) end
    client:close()
  end, reps)
end

local function luasocket(scheme, count)
  local ok, http = pcall(require, scheme == "https" and "ssl.https" or "socket.http")
  if not ok then return nil end
  local ltn12 = require("ltn12")
  return rate(count, function()
    for _ = 1, count do
      local chunks = {}
      local request = { url = BASE[scheme] .. PATH, method = "PUT", sink = ltn12.sink.table(chunks),
        source = ltn12.source.string(""),
        headers = { ["Accept"] = "application/json", ["X-Auth-Token"] = TOKEN, ["Content-Length"] = "0" } }
      if scheme == "https" then request.cafile, request.verify = CA, "peer" end
      local _, status = http.request(request)
      assert(status == 200 and table.concat(chunks):find('"success":true', 1, true), tostring(status))
    end
  end)
end

local function curl_command(scheme, count)
  return rate(count, function()
    sh(("for i in $(seq %d); do curl -sf -o /dev/null -X PUT -H 'Accept: application/json' "
      .. "-H 'X-Auth-Token: %s'%s '%s%s' || exit 1; done")
      :format(count, TOKEN, scheme == "https" and (" --cacert " .. CA) or "", BASE[scheme], PATH))
  end)
end

local function wrk(scheme)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(('wrk.method = "PUT"\nwrk.headers["Accept"] = "application/json"\n'
    .. 'wrk.headers["X-Auth-Token"] = "%s"\n'):format(TOKEN))
  f:close()
  local out = sh(("wrk -t1 -c32 -d%ds -s %s %s%s"):format(WRK_SECONDS, script, BASE[scheme], PATH))
  os.remove(script)
  return tonumber(out:match("Requests/sec:%s*([%d.]+)"))
end

-- Instructions per call (valgrind callgrind) of a command making count
-- calls, from two runs (count and 2 x count), so start-up cancels out; and,
-- per object file, the second run's extra instructions per call.
local function instructions(command)
  local function run(count)
    local out = os.tmpname()
    sh(("valgrind --tool=callgrind --compress-strings=no --compress-pos=no --callgrind-out-file=%s %s")
      :format(out, command:gsub("@N", tostring(count))))
    local by_object, object, skip, total = {}, "?", false, 0
    for line in io.lines(out) do
      local ob = line:match("^ob=(.*)")
      if ob then
        object = ob:match("([^/]+)$")
      elseif line:match("^calls=") then
        skip = true
      elseif line:match("^%d") then
        if skip then
          skip = false
        else
          local cost = tonumber(line:match("^%d+ (%d+)"))
          if cost then
            by_object[object] = (by_object[object] or 0) + cost
            total = total + cost
          end
        end
      end
    end
    os.remove(out)
    return total, by_object
  end
  local total1, objects1 = run(IR_CALLS)
  local total2, objects2 = run(2 * IR_CALLS)
  local per_object = {}
  for object, cost in pairs(objects2) do per_object[object] = (cost - (objects1[object] or 0)) / IR_CALLS end
  return (total2 - total1) / IR_CALLS, per_object
end

----------------------------------------------------------------------- run

local out = {}
local function say(text)
  print(text)
  out[#out + 1] = text
end

local function fmt(n) return n and ("%.0f"):format(n) or "-" end
local function ratio(a, b) return (a and b) and ("%.2fx"):format(a / b) or "-" end
local function times(r) return ("%.2fx"):format(r) end

local versions = sh("{ nginx -v; curl --version | head -1 | cut -d' ' -f1-2; wrk -v | head -1 | cut -d' ' -f1-2; }")
  :gsub("\n+$", "")
local machine = sh("uname -srm; nproc; (grep -m1 'model name' /proc/cpuinfo || true)"):gsub("\n+$", "")
say(("codearts-pipeline %s, libcurl %s, %s; %s; %d repetition(s), medians"):format(pipeline._VERSION,
  core.curl_version, _VERSION, SHORT and "SHORT run (CI)" or "full run", REPS))
say("machine: " .. machine:gsub("model name%s*:%s*", ""):gsub("\n", ", "))
say("servers: " .. versions:gsub("\n", "; "))

local figures = {}
for _, scheme in ipairs({ "http", "https" }) do
  local f = {}
  figures[scheme] = f
  f.limit_easy, f.retry, f.retry_ratio = paired(function(reps) return limit_easy(scheme, SEQUENTIAL, reps) end,
    function(reps) return project_sequential(scheme, SEQUENTIAL, reps) end)
  f.luasocket = luasocket(scheme, PEER_CALLS[scheme])
  f.curl = curl_command(scheme, CURL_CALLS)
  f.wrk = wrk(scheme)
  f.limit_multi, f.many, f.many_ratio = {}, {}, {}
  for _, size in ipairs(SIZES) do
    f.limit_multi[size], f.many[size], f.many_ratio[size] = paired(
      function(reps) return limit_multi(scheme, size, 32, reps) end,
      function(reps) return project_many(scheme, size, 32, reps) end)
  end
  local middle = SIZES[2]
  f.many_beside_map, f.map, f.map_ratio = paired(function(reps) return project_many(scheme, middle, 32, reps) end,
    function(reps) return project_map(scheme, middle, 32, false, reps) end)
  f.map_trivial = project_map(scheme, middle, 32, true)
end

local sweep = { limit = {}, project = {}, ratio = {} }
for _, concurrency in ipairs(CONCURRENCIES) do
  sweep.limit[concurrency], sweep.project[concurrency], sweep.ratio[concurrency] = paired(
    function(reps) return limit_multi("http", SWEEP_SIZE, concurrency, reps) end,
    function(reps) return project_many("http", SWEEP_SIZE, concurrency, reps) end)
end

local rows = {}
local function row(name, http, https, note_http, note_https)
  rows[#rows + 1] = ("| %s | %s%s | %s%s |"):format(name, fmt(http), note_http and (" (" .. note_http .. ")") or "",
    fmt(https), note_https and (" (" .. note_https .. ")") or "")
end
local h, s = figures.http, figures.https
row("raw libcurl, one easy handle reused (the limit, sequential)", h.limit_easy, s.limit_easy)
row("this project `client:retry`", h.retry, s.retry,
  times(h.retry_ratio) .. " the limit", times(s.retry_ratio) .. " the limit")
row(("LuaSocket `socket.http` / LuaSec `ssl.https` (%d / %d calls)"):format(PEER_CALLS.http, PEER_CALLS.https),
  h.luasocket, s.luasocket,
  "project " .. ratio(h.retry, h.luasocket), "project " .. ratio(s.retry, s.luasocket))
row(("the curl command once per call (%d calls)"):format(CURL_CALLS), h.curl, s.curl,
  "project " .. ratio(h.retry, h.curl), "project " .. ratio(s.retry, s.curl))
row(("wrk -c32, %d s (the server's ceiling)"):format(WRK_SECONDS), h.wrk, s.wrk)
for _, size in ipairs(SIZES) do
  row(("raw libcurl multi, concurrency 32, %d calls (the limit, concurrent)"):format(size),
    h.limit_multi[size], s.limit_multi[size])
  row(("this project `retry_many`, concurrency 32, %d calls"):format(size), h.many[size], s.many[size],
    times(h.many_ratio[size]) .. " the limit", times(s.many_ratio[size]) .. " the limit")
end
local first, last = SIZES[1], SIZES[#SIZES]
rows[#rows + 1] = ("| ratio at %d calls / ratio at %d calls | %s | %s |"):format(last, first,
  ratio(h.many_ratio[last], h.many_ratio[first]), ratio(s.many_ratio[last], s.many_ratio[first]))
-- The project's own cost per call at each size (the limit's includes its
-- start-up, which weighs on a short list): flat, or the batch is not O(1).
local function costs(f)
  local parts = {}
  for _, size in ipairs(SIZES) do parts[#parts + 1] = ("%.1f"):format(1e6 / f.many[size]) end
  return table.concat(parts, " / ") .. (" (%s at %d calls)"):format(ratio(1 / f.many[last], 1 / f.many[first]), last)
end
rows[#rows + 1] = ("| `retry_many` µs per call at %s calls | %s | %s |"):format(
  table.concat(SIZES, " / "), costs(h), costs(s))
row(("`map` calling `client:retry`, concurrency 32, %d calls (beside retry_many: %s / %s)")
  :format(SIZES[2], fmt(h.many_beside_map), fmt(s.many_beside_map)), h.map, s.map,
  times(h.map_ratio) .. " retry_many", times(s.map_ratio) .. " retry_many")
row(("`map` with a trivial function (no request), %d jobs: jobs/s"):format(SIZES[2]), h.map_trivial, s.map_trivial,
  ratio(h.map_trivial, h.many[SIZES[2]]) .. " retry_many", ratio(s.map_trivial, s.many[SIZES[2]]) .. " retry_many")

say("")
say("| client | HTTP calls/s | HTTPS calls/s |")
say("|---|---|---|")
for _, line in ipairs(rows) do say(line) end

say("")
say(("Concurrency (HTTP, %d calls): concurrency | raw multi | retry_many | ratio"):format(SWEEP_SIZE))
for _, concurrency in ipairs(CONCURRENCIES) do
  say(("  %3d | %7s | %7s | %s"):format(concurrency, fmt(sweep.limit[concurrency]), fmt(sweep.project[concurrency]),
    times(sweep.ratio[concurrency])))
end

-- instructions per call
local lua_cmd = ("lua5.4 bench/calls.lua %%s %s @N"):format(HTTP)
local ir_seq, seq_objects = instructions(lua_cmd:format("seq"))
local ir_easy = instructions(("%s easy %s%s @N"):format(LIMIT, HTTP, PATH))
local ir_many, many_objects = instructions(lua_cmd:format("many"))
local ir_multi = instructions(("%s multi %s%s @N 32"):format(LIMIT, HTTP, PATH))
local function split(objects)
  local names = {}
  for object, cost in pairs(objects) do
    if cost >= 500 then names[#names + 1] = object end
  end
  table.sort(names, function(a, b) return objects[a] > objects[b] end)
  local parts = {}
  for _, object in ipairs(names) do parts[#parts + 1] = ("%s %.0f"):format(object, objects[object]) end
  return table.concat(parts, ", ")
end
say("")
say(("Instructions per call (valgrind callgrind, HTTP, %d and %d calls):"):format(IR_CALLS, 2 * IR_CALLS))
say(("  client:retry %.0f, raw easy %.0f: the module's own %.0f per call"):format(ir_seq, ir_easy, ir_seq - ir_easy))
say("    by object: " .. split(seq_objects))
say(("  retry_many(32) %.0f, raw multi %.0f: the module's own %.0f per call"):format(ir_many, ir_multi,
  ir_many - ir_multi))
say("    by object: " .. split(many_objects))

-- memory and descriptors, in a process of their own (so the peak of the
-- long lists above is not in its figures)
say("")
for line in sh(("lua5.4 bench/memory.lua %s %s %s %d %d"):format(HTTP, HTTPS, CA, MEMORY_CALLS, MEMORY_CLIENTS))
  :gmatch("[^\n]+") do
  say(line)
end

if DOCS then
  local data = os.tmpname()
  local f = assert(io.open(data, "w"))
  f:write("# size limit project\n")
  for _, size in ipairs(SIZES) do f:write(("%d %f %f\n"):format(size, h.limit_multi[size], h.many[size])) end
  f:write("\n\n# concurrency limit project\n")
  for _, c in ipairs(CONCURRENCIES) do f:write(("%d %f %f\n"):format(c, sweep.limit[c], sweep.project[c])) end
  f:close()
  local plot = assert(io.popen("gnuplot", "w"))
  plot:write(([[
set terminal pngcairo size 1000,420 noenhanced
set output '%s/performance.png'
set multiplot layout 1,2 title 'calls/s over HTTP on loopback nginx (medians of %d), concurrency 32 unless shown'
set logscale x
set yrange [0:*]
set key bottom right
set grid
set xlabel 'calls in the list'
set ylabel 'calls/s'
plot '%s' index 0 using 1:2 with linespoints title 'raw libcurl multi (limit)', '' index 0 using 1:3 with linespoints title 'retry_many'
set xlabel 'concurrency (%d calls)'
set logscale x 2
plot '%s' index 1 using 1:2 with linespoints title 'raw libcurl multi (limit)', '' index 1 using 1:3 with linespoints title 'retry_many'
unset multiplot
]]):format(DOCS, REPS, data, SWEEP_SIZE, data))
  plot:close()
  os.remove(data)
  local md = assert(io.open(DOCS .. "/performance.md", "w"))
  md:write("# Performance\n\nThe latest full run of `scripts/bench` (", os.date("!%Y-%m-%d %H:%M UTC"),
    "), as it printed it. Every figure comes from the same run, on loopback; the machine is shared and noisy, ",
    "so read the ratios and the instruction counts rather than the absolute rates. The limit programs ",
    "(bench/limit.c) send the project's exact request: the same headers and its default User-Agent.\n\n",
    "![calls/s against list size and concurrency](performance.png)\n\n```\n", table.concat(out, "\n"), "\n```\n")
  md:close()
  -- the README's performance section: between its markers, the latest table
  local readme_path = DOCS .. "/../README.md"
  local readme = assert(io.open(readme_path)):read("a")
  local table_lines = {}
  for _, line in ipairs(out) do
    if line:sub(1, 1) == "|" then table_lines[#table_lines + 1] = line end
  end
  local block = ("<!-- performance: written by scripts/bench (a full run) -->\nThe latest full run (%s, %s; a "
    .. "shared, noisy machine: the ratios and instruction counts\nsay more than the rates):\n\n%s\n\n"
    .. "![calls/s against list size and concurrency](docs/performance.png)\n<!-- /performance -->")
    :format(os.date("!%Y-%m-%d %H:%M UTC"), machine:gsub("model name%s*:%s*", ""):gsub("\n", ", "),
      table.concat(table_lines, "\n"))
  local from = readme:find("<!-- performance: written by scripts/bench", 1, true)
  local _, to = readme:find("<!-- /performance -->", 1, true)
  if from and to then
    local f2 = assert(io.open(readme_path, "w"))
    f2:write(readme:sub(1, from - 1), block, readme:sub(to + 1))
    f2:close()
  end
end

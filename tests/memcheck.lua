-- A representative workload for valgrind (scripts/check-memory): every path
-- of the C core, successes and failures, errors raised inside it, closing
-- by every means and the garbage collector.  Exits non-zero on a surprise.
local pipeline = require("pipeline")
local core = require("pipeline.core")
local simulator = require("sim")

local sim = simulator.start()
local ok_all, err = pcall(function()
  local PROJECT, PIPELINE, TOKEN = simulator.PROJECT, simulator.PIPELINE, simulator.TOKEN
  -- one retry with a token (core.retry, pipeline.retry), success and failure
  assert(core.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN, { endpoint = sim.url }))
  assert(pipeline.retry(PROJECT, PIPELINE, sim:failed_run(), TOKEN, { endpoint = sim.url }))
  assert(core.retry(PROJECT, PIPELINE, simulator.new_id(), TOKEN, { endpoint = sim.url }) == nil)

  -- one client through every fault
  local client = assert(pipeline.new({ endpoint = sim.url, project_id = PROJECT, token = TOKEN,
    retries = false, timeout = 1 }))
  for _, kind in ipairs({ "unauthorized", "not_found", "error_code_200", "success_false", "throttled",
    "server_html", "not_json", "wrong_shape", "oversize", "close", "redirect" }) do
    sim:fault({ kind = kind })
    assert(client:retry(PIPELINE, sim:failed_run()) == nil, kind)
    assert(client:retry(PIPELINE, sim:failed_run()), kind .. " (then success)")
  end
  -- processed, then the connection dropped: the run's status shows it worked
  sim:fault({ kind = "drop_after_processing" })
  assert(client:retry(PIPELINE, sim:failed_run()), "drop_after_processing")

  -- signals noted, not acted on; a noted one ends a sleep at once
  assert(core.catch_signals() and core.caught_signal() == nil)
  os.execute("kill -TERM " .. tostring(assert(io.open("/proc/self/stat")):read("*l"):match("^(%d+)")))
  core.sleep(5)
  assert(core.caught_signal() == "SIGTERM")
  assert(core.release_signals() and core.caught_signal() == nil)

  -- many at once over the multi interface, with failures among them
  local list = {}
  for i = 1, 40 do list[i] = { PIPELINE, i % 5 == 0 and simulator.new_id() or sim:failed_run() } end
  sim:fault({ kind = "close", times = 3 })
  for i, result in ipairs(client:retry_many(list, { concurrency = 8 })) do
    assert(result.ok == (i % 5 ~= 0) or result.code == "network", tostring(result.message))
  end
  local job = client:start("retry_and_wait", PIPELINE, sim:failed_run(), { interval = 0.01 })
  while client:step(0.05) > 0 do end
  assert(job.done)
  sim:fault({ kind = "slow", delay = 2 })
  assert(client:retry(PIPELINE, sim:failed_run()) == nil)
  assert(client:detail(PIPELINE, sim:failed_run()))

  -- sockets and timers (client:use_loop), driven by a crude loop that
  -- reports every watched socket ready; then batches in socket mode closed
  -- and collected with requests in flight
  local looped = assert(pipeline.new({ endpoint = sim.url, project_id = PROJECT, token = TOKEN }))
  local watched, due = {}, nil
  looped:use_loop({ watch = function(fd, what) watched[fd] = what end,
    timer = function(seconds) due = seconds and core.monotonic() + seconds end })
  local many = looped:start("retry_many", { { PIPELINE, sim:failed_run() }, { PIPELINE, sim:failed_run() } })
  local left, rounds = 1, 0
  while left > 0 and rounds < 2000 do
    rounds = rounds + 1
    for fd, what in pairs(watched) do left = looped:socket_ready(fd, what) end
    if due and core.monotonic() >= due then due = nil left = looped:timeout() end
    core.sleep(0.002)
  end
  assert(many.done and many:result()[1].ok and many:result()[2].ok, "use_loop")
  looped:start("detail", PIPELINE, sim:failed_run())
  looped:timeout()
  looped:close()
  for _ = 1, 5 do
    local b = core.batch({ concurrency = 2 }):use_sockets()
    b:add("GET", sim.url .. "/x")
    b:socket_action()
    b:changes()
    if _ % 2 == 0 then b:close() end
  end

  -- AK/SK signing, including raised argument errors
  local signed = assert(pipeline.new({ endpoint = sim.url, project_id = PROJECT, ak = "AKEXAMPLE",
    sk = "SKEXAMPLE", retries = false }))
  signed:retry(PIPELINE, sim:failed_run())
  signed:close()
  for _ = 1, 20 do
    assert(not pcall(core.sign, "GET", "http://h/p", { ["X-A"] = "a\nb" }, nil, "ak", "sk"))
    assert(core.sign("POST", "http://h/p?b=2&a=1", { ["Content-Type"] = "application/json" }, "{}", "ak", "sk"))
  end

  -- what an answer means, every branch, with secrets to hide; misuse raised
  for _ = 1, 20 do
    local secrets = { TOKEN, "SDK-secret" }
    for _, case in ipairs({ { 200, '{"success":true}' }, { 200, '{"id":"a\\u00e9\\ud83d\\ude00"}' },
      { 200, '{"error_code":"APIGW.0308"}' }, { 200, '{"success":false}' }, { 200, "[" }, { 200, "{}" },
      { 302, "" }, { 100, "" }, { 401, '{"error":{"code":401,"message":"m ' .. TOKEN .. '"}}' },
      { 503, '{"error_code":"E","error_msg":"SDK-HMAC-SHA256 Signature=abc","request_id":"r"}' } }) do
      core.answer("get", "json", case[1], case[2], "X-Request-Id: id\1\r\nLocation: /x\r\nRetry-After: 1\r\n",
        secrets)
      core.answer("retry", "success", case[1], case[2], nil, secrets)
    end
    core.transport_failure("retry", "timeout", "slow " .. TOKEN, 28, false, 200, "X-Request-Id: r\r\n", secrets)
    core.failure("get", "api", "d\n", { status = 400, error_msg = TOKEN, request_id = "r" }, secrets)
    core.redact("x " .. TOKEN .. " SDK-HMAC-SHA256 Signature=a", secrets)
    assert(not pcall(core.answer, "get", "maybe", 200, ""))
    assert(not pcall(core.failure, "get", "api", nil, "info"))
  end

  -- misuse raised from inside the C core leaks nothing
  for _ = 1, 20 do
    assert(not pcall(client.retry, client, "short", sim:failed_run()))
    assert(not pcall(core.retry, PROJECT, PIPELINE, ("a"):rep(31), TOKEN))
    assert(not pcall(core.client, { timout = 1 }))
    assert(not pcall(client._transport.request, client._transport, "GET", sim.url, { ["X"] = "a\r\n" }))
  end

  -- closing by close(), <close> and the collector
  client:close()
  client:close()
  do
    local scoped <close> = core.client()
    scoped:request("GET", sim.url .. "/x")
  end
  for _ = 1, 20 do
    local c = core.client({ timeout = 5 })
    c:request("GET", sim.url .. "/x")
  end
  -- a share handle outlives every handle using it, whatever order they close
  -- or are collected in
  for round = 1, 3 do
    local c = core.client()
    local b = core.batch({ concurrency = 2, share = c })
    c:request("GET", sim.url .. "/x")
    b:add("GET", sim.url .. "/x")
    b:add("GET", sim.url .. "/y")
    while b:pending() > 0 do b:step(0.5) end
    if round == 1 then c:close() b:add("GET", sim.url .. "/z") b:close() end
    if round == 2 then b:add("GET", sim.url .. "/z") b:close() c:close() end
    -- round 3: both left to the collector, a request still in flight
    if round == 3 then b:add("GET", sim.url .. "/z") end
  end
  collectgarbage()
  collectgarbage()
end)
sim:stop()
if not ok_all then
  io.stderr:write("memcheck: ", tostring(err), "\n")
  os.exit(1)
end
print("memcheck: done")

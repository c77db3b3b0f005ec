--- What each command of the command line does, given its context
-- (cli/context.lua), the client and its positional arguments; each returns
-- the exit status.  The table of commands, their options and help, is
-- cli/commands.lua.
local pipeline = require("pipeline")
local config = require("pipeline.config")
local core = require("pipeline.core")
local compat = require("pipeline.compat")
local lifecycle = require("pipeline.lifecycle")
local client_module = require("pipeline.client")
local commands = require("pipeline.cli.commands")
local args = require("pipeline.cli.args")
local output = require("pipeline.cli.output")
local progress = require("pipeline.cli.progress")
local completion = require("pipeline.cli.completion")

local TERMINAL = lifecycle.TERMINAL
local DEFAULT_WAIT_TIMEOUT = lifecycle.DEFAULT_WAIT_TIMEOUT
local DEFAULT_INTERVAL = lifecycle.DEFAULT_INTERVAL
local PAGE = 100 -- the largest page the list calls take

local COMMAND, usage, is_part_id = commands.by_name, args.usage, args.is_part_id
local encode, clean, json_text = output.encode, output.clean, output.json_text
local misfit, misshapen, RUN_SHAPE, PIPELINE_SHAPE = output.misfit, output.misshapen, output.RUN_SHAPE,
  output.PIPELINE_SHAPE
local when, took, render_table, render_run = output.when, output.took, output.render_table, output.render_run
local run_id_of, failed_jobs = output.run_id_of, output.failed_jobs
local new_display = progress.new

-- run_id, when known: the id the display shows if an answer lacks one.
local function wait_options(ctx, run_id)
  return {
    timeout = ctx.options.timeout or DEFAULT_WAIT_TIMEOUT,
    interval = ctx.options.interval or DEFAULT_INTERVAL,
    on_poll = function(_, run)
      ctx.misfit = misfit(run, RUN_SHAPE, "run")
      if ctx.misfit then return false end -- the wait ends; the caller reports it
      if run_id and run_id_of(run) == nil then
        local copy = { id = run_id }
        for name, value in pairs(run) do copy[name] = value end
        run = copy
      end
      ctx.last_run = run
      ctx.display:update(run)
    end,
  }
end

-- How the run ended, for people.
local function ended_text(run_id, status, run)
  local lines = { ("Run %s ended %s."):format(run_id, clean(status)) }
  if status ~= "COMPLETED" and run then
    for _, line in ipairs(failed_jobs(run)) do lines[#lines + 1] = line end
    if run.detail_url then lines[#lines + 1] = "  " .. clean(run.detail_url) end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- Follows pipeline_id/run_id to its end; document holds what the command
-- reports besides the outcome.
local function follow(ctx, client, pipeline_id, run_id, document)
  ctx.display = new_display(ctx)
  local status, run, code, info = client:wait(pipeline_id, run_id, wait_options(ctx, run_id))
  ctx.display:finish()
  if not status then
    document.last_status = ctx.last_run and ctx.last_run.status or nil
    if ctx.misfit then return misshapen(ctx, "wait", ctx.misfit, document) end
    return ctx:fail(run, code, info, document)
  end
  ctx.display = nil
  document.ok, document.status, document.run = status == "COMPLETED", status, run
  document.exit = status == "COMPLETED" and 0 or 1
  if status ~= "COMPLETED" then
    document.code, document.message = "run_failed", ("run %s ended %s"):format(run_id, status)
  end
  ctx:result(document, ended_text(run_id, status, run))
  return document.exit
end

-- Items of a paged list, up to limit (nil: all), and the total the server
-- gave, through client.pages, the library's pager.  fetch(query) returns
-- items, total; op names the listing in messages.
local function collect(op, fetch, query, limit)
  local items = {}
  local next_item, listing = client_module.pages(op, fetch, query, PAGE, limit)
  for item, message, code, info in next_item do
    if item == false then return nil, message, code, info end
    items[#items + 1] = item
  end
  return items, listing.total
end

local RUN = {}

RUN.retry = function(ctx, client, pipeline_id, run_id)
  local ok, message, code, info = client:retry(pipeline_id, run_id)
  local document = { ok = true, exit = 0, command = "retry", pipeline_id = pipeline_id, run_id = run_id }
  if not ok then return ctx:fail(message, code, info, { pipeline_id = pipeline_id, run_id = run_id }) end
  if ctx.options.wait and not core.interrupted() then
    ctx:say(("Retried run %s; following it."):format(run_id))
    return follow(ctx, client, pipeline_id, run_id, document)
  end
  ctx:result(document, ("Retried run %s of pipeline %s.\n"):format(run_id, pipeline_id))
  return 0
end

RUN.status = function(ctx, client, pipeline_id, run_id)
  local run, message, code, info = client:detail(pipeline_id, run_id)
  if not run then return ctx:fail(message, code, info, { pipeline_id = pipeline_id, run_id = run_id }) end
  local why = misfit(run, RUN_SHAPE, "run")
  if why then return misshapen(ctx, "detail", why, { pipeline_id = pipeline_id, run_id = run_id }) end
  ctx:result({ ok = true, exit = 0, command = "status", pipeline_id = pipeline_id, run_id = run_id,
    status = run.status, run = run }, render_run(run, run_id))
  return 0
end

RUN.wait = function(ctx, client, pipeline_id, run_id)
  return follow(ctx, client, pipeline_id, run_id,
    { ok = true, exit = 0, command = "wait", pipeline_id = pipeline_id, run_id = run_id })
end

RUN.runs = function(ctx, client, pipeline_id)
  local runs, total, code, info = collect("runs", function(query) return client:runs(pipeline_id, query) end,
    { status = ctx.options.status }, ctx.options.limit or 10)
  if not runs then return ctx:fail(total, code, info, { pipeline_id = pipeline_id }) end
  local why = misfit(runs, { RUN_SHAPE }, "pipeline_runs")
  if why then return misshapen(ctx, "runs", why, { pipeline_id = pipeline_id }) end
  local text
  if #runs == 0 then
    text = "No runs.\n"
  else
    local rows = { { "RUN ID", "#", "STATUS", "TRIGGER", "STARTED", "TOOK" } }
    for _, run in ipairs(runs) do
      rows[#rows + 1] = { clean(run_id_of(run)), clean(run.run_number), clean(run.status), clean(run.trigger_type),
        when(run.start_time), took(run) }
    end
    text = render_table(rows)
  end
  ctx:result({ ok = true, exit = 0, command = "runs", pipeline_id = pipeline_id, total = total, runs = runs }, text)
  return 0
end

RUN.run = function(ctx, client, pipeline_id)
  local body = nil
  if #ctx.options.vars > 0 then body = { variables = ctx.options.vars } end
  local run_id, message, code, info = client:run(pipeline_id, body)
  if not run_id then return ctx:fail(message, code, info, { pipeline_id = pipeline_id }) end
  local document = { ok = true, exit = 0, command = "run", pipeline_id = pipeline_id, run_id = run_id }
  if ctx.options.wait and not core.interrupted() then
    ctx:say(("Started run %s; following it."):format(run_id))
    return follow(ctx, client, pipeline_id, run_id, document)
  end
  ctx:result(document, run_id .. "\n")
  return 0
end

RUN.stop = function(ctx, client, pipeline_id, run_id)
  local ok, message, code, info = client:stop(pipeline_id, run_id)
  if not ok then return ctx:fail(message, code, info, { pipeline_id = pipeline_id, run_id = run_id }) end
  ctx:result({ ok = true, exit = 0, command = "stop", pipeline_id = pipeline_id, run_id = run_id },
    ("Stopped run %s of pipeline %s.\n"):format(run_id, pipeline_id))
  return 0
end

RUN["retry-failed"] = function(ctx, client, pipeline_id)
  local options = wait_options(ctx)
  options.attempts = ctx.options.attempts or 3
  ctx.display = new_display(ctx)
  local result = compat.pack(client:retry_failed(pipeline_id, options))
  ctx.display:finish()
  if not result[1] and ctx.misfit then return misshapen(ctx, "retry_failed", ctx.misfit, { pipeline_id = pipeline_id }) end
  if not result[1] then
    local message, code, info = result[2], result[3], result[4]
    return ctx:fail(message, code, info, { pipeline_id = pipeline_id,
      attempts = type(info) == "table" and info.history or nil })
  end
  local status, history, latest_run_id = result[1], result[2], result[3]
  ctx.display = nil
  local exit = status == "COMPLETED" and 0 or 1
  local document = { ok = exit == 0, exit = exit, command = "retry-failed", pipeline_id = pipeline_id,
    status = status, attempts = history, run_id = latest_run_id }
  local lines = {}
  if #history == 0 then
    lines[1] = ("The latest run of pipeline %s (%s) ended %s: nothing to retry."):format(pipeline_id,
      tostring(latest_run_id), status)
  else
    lines[1] = ("Run %s ended %s after %d attempt%s."):format(history[1].run_id, status, #history,
      #history == 1 and "" or "s")
  end
  if exit ~= 0 then
    document.code = "run_failed"
    document.message = lines[1]:gsub("%.$", "")
    if ctx.last_run then
      for _, line in ipairs(failed_jobs(ctx.last_run)) do lines[#lines + 1] = line end
    end
  end
  ctx:result(document, table.concat(lines, "\n") .. "\n")
  return exit
end

RUN.pipelines = function(ctx, client)
  local pipelines, total, code, info = collect("pipelines", function(query) return client:pipelines(query) end,
    { name = ctx.options.name }, ctx.options.limit)
  if not pipelines then return ctx:fail(total, code, info) end
  local why = misfit(pipelines, { PIPELINE_SHAPE }, "pipelines")
  if why then return misshapen(ctx, "pipelines", why) end
  local text
  if #pipelines == 0 then
    text = "No pipelines.\n"
  else
    local rows = { { "PIPELINE ID", "NAME", "LATEST RUN", "STATUS", "STARTED" } }
    for _, item in ipairs(pipelines) do
      local latest = type(item.latest_run) == "table" and item.latest_run or {}
      rows[#rows + 1] = { clean(item.pipeline_id or item.id), clean(item.name),
        latest.run_number and ("#" .. clean(latest.run_number)) or "-", clean(latest.status or "-"),
        when(latest.start_time) }
    end
    text = render_table(rows)
  end
  ctx:result({ ok = true, exit = 0, command = "pipelines", total = total, pipelines = pipelines }, text)
  return 0
end

------------------------------------------------------------------ step logs

local STEP_FAILED = { FAILED = true, ASYNC_FAILED = true }

-- The steps of a run detail, in order, each {stage, job, step, job_run_id,
-- step_run_id, status, failed}.  A failed job none of whose steps failed
-- counts all its steps as failed (the log of one of them says why).
local function steps_of(run)
  local list = {}
  for _, stage in ipairs(type(run.stages) == "table" and run.stages or {}) do
    local jobs = type(stage) == "table" and type(stage.jobs) == "table" and stage.jobs or {}
    for _, job in ipairs(jobs) do
      local steps = type(job) == "table" and type(job.steps) == "table" and job.steps or {}
      local a_step_failed = false
      for _, step in ipairs(steps) do
        if type(step) == "table" and STEP_FAILED[step.status] then a_step_failed = true end
      end
      for _, step in ipairs(steps) do
        if type(step) == "table" and is_part_id(step.id) and is_part_id(job.id) then
          list[#list + 1] = { stage = clean(stage.name), job = clean(job.name), step = clean(step.name),
            job_run_id = job.id, step_run_id = step.id, status = clean(step.status),
            failed = STEP_FAILED[step.status] or (STEP_FAILED[job.status] and not a_step_failed) or false }
        end
      end
    end
  end
  return list
end

local function step_wanted(ctx, step)
  if ctx.options.failed and not step.failed then return false end
  if #ctx.options.jobs == 0 then return true end
  for _, name in ipairs(ctx.options.jobs) do
    if name == step.job or name == step.stage or name == step.stage .. "/" .. step.job then return true end
  end
  return false
end

RUN.logs = function(ctx, client, pipeline_id, run_id)
  local ids = { pipeline_id = pipeline_id, run_id = run_id }
  local run, message, code, info = client:detail(pipeline_id, run_id)
  if not run then return ctx:fail(message, code, info, ids) end
  local json, following = ctx.options.json, ctx.options.follow
  local offsets = {}   -- step_run_id -> { start_offset, end_offset } of the page read last
  local headed         -- the step whose lines were printed last
  local out = ctx.out

  -- Prints what is new in step's log, page by page as it comes: from the
  -- offsets of the page read last, so no line comes twice.  Without
  -- --follow every step gets its header (its JSON object) even when empty.
  local function read(step)
    local at = offsets[step.step_run_id] or { 0, 0 }
    offsets[step.step_run_id] = at
    local opened = false
    local function open()
      if opened then return end
      opened = true
      if json then
        local head = encode({ pipeline_id = pipeline_id, run_id = run_id, stage = step.stage, job = step.job,
          step = step.step, job_run_id = step.job_run_id, step_run_id = step.step_run_id, status = step.status })
        out:write(head:sub(1, -2), ',"log":"')
      elseif headed ~= step.step_run_id then
        out:write(("==> %s / %s / %s (%s)\n"):format(step.stage, step.job, step.step, step.status))
        headed = step.step_run_id
      end
    end
    if not following then open() end
    while true do
      local page, why, failure, details = client:logs(pipeline_id, run_id, step.job_run_id, step.step_run_id,
        { start_offset = at[1], end_offset = at[2] })
      if not page then
        if opened and json then out:write('"}\n') end
        return nil, why, failure, details
      end
      if page.log ~= "" then
        open()
        out:write(json and json_text(page.log) or page.log)
        if out.flush then out:flush() end
      end
      local start_offset, end_offset = tonumber(page.start_offset), tonumber(page.end_offset)
      local same = start_offset == at[1] and end_offset == at[2]
      if start_offset and end_offset then at[1], at[2] = start_offset, end_offset end
      if not page.has_more or same or not (start_offset and end_offset) then break end
    end
    if opened and json then out:write('"}\n') end
    return true
  end

  local interval = ctx.options.interval or DEFAULT_INTERVAL
  local matched
  while true do
    local ended = TERMINAL[run.status]
    matched = 0
    for _, step in ipairs(steps_of(run)) do
      if step_wanted(ctx, step) then
        matched = matched + 1
        local ok, why, failure, details = read(step)
        if not ok then return ctx:fail(why, failure, details, ids) end
      end
    end
    if not following or ended then break end
    ctx.sleep(interval)
    run, message, code, info = client:detail(pipeline_id, run_id)
    if not run then return ctx:fail(message, code, info, ids) end
  end
  if matched == 0 then
    ctx:say(("No %sstep%s in run %s (%s)."):format(ctx.options.failed and "failed " or "",
      #ctx.options.jobs > 0 and (" of job " .. table.concat(ctx.options.jobs, ", ")) or "", run_id,
      clean(run.status)))
  end
  return 0
end

------------------------------------------------------------------ reviews

-- Passes (action "approve") or refuses ("reject") the run's pending review.
local function review(ctx, client, pipeline_id, run_id, action)
  local ids = { pipeline_id = pipeline_id, run_id = run_id }
  local command = COMMAND[ctx.name]
  local run, message, code, info = client:detail(pipeline_id, run_id)
  if not run then return ctx:fail(message, code, info, ids) end
  local pending = {}
  for _, step in ipairs(steps_of(run)) do
    if step.status == "PAUSED" then pending[#pending + 1] = step end
  end
  local function listed()
    local lines = {}
    for _, step in ipairs(pending) do
      lines[#lines + 1] = ("  --step %s  (%s / %s / %s)"):format(step.step_run_id, step.stage, step.job, step.step)
    end
    return table.concat(lines, "\n")
  end
  if #pending == 0 then
    return ctx:fail(("run %s has no manual review waiting for a decision (the run is %s)")
      :format(run_id, clean(run.status)), "not_found", nil, ids)
  end
  local chosen
  if ctx.options.step then
    for _, step in ipairs(pending) do
      if step.step_run_id == ctx.options.step then chosen = step end
    end
    if not chosen then
      usage(("--step %s is not a manual review waiting in run %s; waiting:\n%s"):format(ctx.options.step, run_id,
        listed()), command)
    end
  elseif #pending > 1 then
    usage(("%d manual reviews wait in run %s: choose one with\n%s"):format(#pending, run_id, listed()), command)
  else
    chosen = pending[1]
  end
  ids.job_run_id, ids.step_run_id, ids.step = chosen.job_run_id, chosen.step_run_id, chosen.step
  local ok
  ok, message, code, info = client[action](client, pipeline_id, run_id, chosen.job_run_id, chosen.step_run_id)
  if not ok then return ctx:fail(message, code, info, ids) end
  local document = { ok = true, exit = 0, command = ctx.name, decision = action == "approve" and "pass" or "refuse" }
  for name, value in pairs(ids) do document[name] = value end
  ctx:result(document, ("%s the manual review %s / %s / %s of run %s.\n"):format(
    action == "approve" and "Passed" or "Refused", chosen.stage, chosen.job, chosen.step, run_id))
  return 0
end

RUN.approve = function(ctx, client, pipeline_id, run_id) return review(ctx, client, pipeline_id, run_id, "approve") end
RUN.reject = function(ctx, client, pipeline_id, run_id) return review(ctx, client, pipeline_id, run_id, "reject") end

------------------------------------------------------------------ artifacts

RUN.artifacts = function(ctx, client, pipeline_id, run_id)
  local artifacts, message, code, info = client:artifacts(pipeline_id, run_id)
  if not artifacts then return ctx:fail(message, code, info, { pipeline_id = pipeline_id, run_id = run_id }) end
  local text = "No artifacts.\n"
  if #artifacts > 0 then
    local rows = { { "NAME", "VERSION", "TYPE", "SIZE", "DOWNLOAD" } }
    for _, item in ipairs(artifacts) do
      if type(item) == "table" then
        rows[#rows + 1] = { clean(item.name), clean(item.artifact_version),
          clean(item.artifact_type or item.artifact_package_type), clean(item.file_size),
          clean(item.artifact_download_url_with_id or item.artifact_uri) }
      end
    end
    text = render_table(rows)
  end
  ctx:result({ ok = true, exit = 0, command = "artifacts", pipeline_id = pipeline_id, run_id = run_id,
    artifacts = artifacts }, text)
  return 0
end

------------------------------------------------------------------ watch

local DEFAULT_SIGNALS = { catch = core.catch_signals, caught = core.caught_signal, release = core.release_signals }

-- One line for a person per watcher event (nil: none).
local function event_line(event)
  local p, r = clean(event.pipeline_id), clean(event.run_id)
  local kind = event.type
  if kind == "start" then
    return ("watching %d pipeline%s: at most %d retr%s a run, a look every %gs"):format(event.pipelines,
      event.pipelines == 1 and "" or "s", event.attempts, event.attempts == 1 and "y" or "ies", event.interval)
  elseif kind == "status" then
    return ("pipeline %s: run %s %s"):format(p, r, clean(event.status))
  elseif kind == "retry" then
    return ("pipeline %s: run %s retried (attempt %d)%s"):format(p, r, event.attempt,
      event.reason and (": " .. clean(event.reason)) or "")
  elseif kind == "skip" then
    return ("pipeline %s: run %s FAILED, not retried%s"):format(p, r, event.reason and (": " .. clean(event.reason)) or "")
  elseif kind == "gave_up" then
    return ("pipeline %s: run %s still FAILED after %d retr%s"):format(p, r, event.attempts,
      event.attempts == 1 and "y" or "ies")
  elseif kind == "retry_failed" then
    return ("pipeline %s: the retry of run %s failed: %s"):format(p, r, clean(event.message))
  elseif kind == "error" then
    return ("%s%s (%s)"):format(event.pipeline_id and ("pipeline " .. p .. ": ") or "a look failed: ",
      clean(event.message), clean(event.code))
  end
end

RUN.watch = function(ctx, client)
  local options = ctx.options
  local policy
  if options.policy then
    local why
    policy, why = pipeline.watch.load_policy(options.policy)
    if not policy then return ctx:fail(why, "config") end
  end
  local signals = ctx.signals or DEFAULT_SIGNALS
  local function on_event(event)
    if options.json then
      ctx.out:write(encode(event), "\n")
    else
      local line = event_line(event)
      if line then ctx.out:write(os.date("!%H:%M:%S ", event.time), line, "\n") end
    end
    if ctx.out.flush then ctx.out:flush() end
  end
  signals.catch()
  local done = compat.pack(pcall(client.watch, client, options.all and "all" or ctx.positional, {
    attempts = options.attempts, interval = options.interval, policy = policy,
    jobs = #options.jobs > 0 and options.jobs or nil, on_event = on_event, until_settled = options.until_settled,
    stop = function() return signals.caught() ~= nil end }))
  local caught = signals.caught()
  signals.release()
  if not done[1] then
    if tostring(done[2]):find("^policy file ") then return ctx:fail(tostring(done[2]), "config") end
    error(done[2], 0)
  end
  local summary = done[2]
  if not summary then return ctx:fail(done[3], done[4], done[5]) end
  local exit = summary.green and 0 or 1
  local document = { type = "summary", ok = summary.green, exit = exit, command = "watch", green = summary.green,
    pipelines = summary.pipelines, retries = summary.retries, polls = summary.polls,
    stopped = caught or summary.stopped }
  local lines = { ("Watched %d pipeline%s, %d look%s, %d retr%s%s: %s."):format(#summary.pipelines,
    #summary.pipelines == 1 and "" or "s", summary.polls, summary.polls == 1 and "" or "s", summary.retries,
    summary.retries == 1 and "y" or "ies", caught and (", stopped by " .. caught) or "",
    summary.green and "all green" or "not all green") }
  for _, item in ipairs(summary.pipelines) do
    lines[#lines + 1] = ("  %s  %s  %s  %d retr%s"):format(item.pipeline_id, item.run_id or "-",
      clean(item.status or "no run"), item.attempts, item.attempts == 1 and "y" or "ies")
  end
  ctx:result(document, table.concat(lines, "\n") .. "\n")
  return exit
end

------------------------------------------------------------------ completion

RUN.completion = function(ctx, what)
  if what == "profiles" then
    local names, why = config.profile_names(ctx.options.config, ctx.getenv)
    if not names then return ctx:fail(why, "config") end
    ctx:result({ ok = true, exit = 0, command = "completion", profiles = names },
      #names > 0 and (table.concat(names, "\n") .. "\n") or "")
    return 0
  end
  local script = completion.script(what)
  ctx:result({ ok = true, exit = 0, command = "completion", shell = what, script = script }, script)
  return 0
end

return RUN

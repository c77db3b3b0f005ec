--- How a command runs: its context (streams, options, how to say things and
-- how to fail, by the exit statuses docs/cli.md lists), the client it opens
-- from the configuration layers, and what a caught signal does to it.
local pipeline = require("pipeline")
local config = require("pipeline.config")
local core = require("pipeline.core")
local compat = require("pipeline.compat")
local redaction = require("pipeline.redaction")
local client_module = require("pipeline.client")
local commands = require("pipeline.cli.commands")
local args = require("pipeline.cli.args")
local output = require("pipeline.cli.output")

local context = {}

local PROGRAM = commands.PROGRAM
local encode, clean = output.encode, output.clean
local usage = args.usage

local DEFAULT_REQUEST_TIMEOUT = core.DEFAULT_TIMEOUT -- when none is configured

-- A caught SIGINT (2) or SIGTERM (15): its name, and the exit status a shell
-- gives a process the signal ended (128 + the signal's number).
local SIGNALS = { [2] = { name = "SIGINT", exit = 130 }, [15] = { name = "SIGTERM", exit = 143 } }

-- Raised (as this very table) from the program's sleep or before a request
-- once a signal came: it unwinds the command to cli.main, which reports it.
local INTERRUPTED = setmetatable({}, { __tostring = function() return "interrupted" end })

-- Error code (the library's, plus the program's own) -> exit status, as the
-- docs/cli.md lists them: 5 is for network, timeout or throttling only, so a
-- server error (5xx) is an API error, 3.  A TLS failure is a failure to
-- reach the service: network, 5.
local EXIT_FOR = {
  run_failed = 1,
  usage = 2, config = 2,
  api = 3, not_found = 3, protocol = 3, cancelled = 3, server = 3, internal = 3,
  auth = 4,
  network = 5, timeout = 5, tls = 5, throttled = 5,
  interrupted = 130,
}
context.INTERRUPTED = INTERRUPTED

-- The command's context: streams, options, and how to say things.
local Context = {}
Context.__index = Context

--- A context over fields: out, err (streams), getenv, sleep, clock,
-- signals, tty, width, options.
function context.new(fields)
  return setmetatable(fields, Context)
end

--- A human message on stderr (above the live display if one is on).
function Context:say(text)
  if self.display then return self.display:note(text) end
  self.err:write(text, "\n")
end

-- The interrupted failure, once a signal came: whatever the command had to
-- say goes into the document as `outcome` (a retry whose outcome was unknown
-- is settled first, as always).
function Context:interrupted(extra)
  local signal = SIGNALS[core.interrupted()] or SIGNALS[2]
  self.interrupt_exit = signal.exit
  return self:fail("interrupted by " .. signal.name, "interrupted", nil, extra)
end

local function document_outcome(document)
  local extra, outcome = {}, {}
  for key, value in pairs(document) do
    if key == "pipeline_id" or key == "run_id" or key == "command" then extra[key] = value else outcome[key] = value end
  end
  extra.outcome = outcome
  return extra
end

--- The result: a JSON document, or text for people.
function Context:result(document, text)
  if core.interrupted() then return self:interrupted(document_outcome(document)) end
  if self.options.json then
    self.out:write(encode(document), "\n")
  elseif text and text ~= "" then
    self.out:write(text)
  end
end

--- A failure by the error rule: message on stderr (or a JSON document), and
-- the exit status for code.
function Context:fail(message, code, info, extra)
  if code ~= "interrupted" and core.interrupted() then
    local document = {}
    for key, value in pairs(extra or {}) do document[key] = value end
    document.ok, document.code, document.message = false, code, message
    return self:interrupted(document_outcome(document))
  end
  info = type(info) == "table" and info or {}
  local exit = EXIT_FOR[code] or EXIT_FOR.internal
  if code == "interrupted" then exit = self.interrupt_exit or exit end
  if self.display then self.display:finish() end
  if self.options.json then
    local document = {}
    for key, value in pairs(extra or {}) do document[key] = value end
    document.ok, document.exit, document.code, document.message = false, exit, code, message
    document.command = self.name
    document.http_status, document.error_code = info.status, info.error_code
    document.request_id = info.request_id
    self.out:write(encode(document), "\n")
  else
    local hint = ""
    if code == "config" then
      hint = ("\n(configuration: see '%s --help' or docs/cli.md)"):format(PROGRAM)
    elseif code == "auth" then
      hint = "\n(the credentials were refused: check the token or keys, and the project id)"
    end
    self.err:write(PROGRAM, ": ", tostring(message), hint, "\n")
  end
  return exit
end

-- -v: one line per request and per answer; headers (and so tokens) never.
local function tracer(ctx)
  return function(event)
    local line
    if event.type == "request" then
      line = ("> %s %s%s"):format(event.method, event.url,
        (event.attempt or 1) > 1 and (" (attempt " .. event.attempt .. ")") or "")
    elseif event.type == "response" then
      line = ("< %s %s %s %.3fs%s%s"):format(event.status or event.code or "?", event.method, event.url,
        event.elapsed or 0, event.request_id and (" request-id " .. event.request_id) or "",
        event.error and (" (" .. tostring(event.code) .. ")") or "")
    elseif event.type == "retry" then
      line = ("  %s again in %.1fs (%s)"):format(event.op, event.delay or 0, tostring(event.reason))
    elseif event.type == "verify" then
      line = ("  %s: outcome unknown (%s); the run's status says it %s"):format(event.op, tostring(event.reason),
        event.took_effect == true and "took effect" or event.took_effect == false and "did not take effect"
          or "cannot be told")
    elseif event.type == "token" then
      line = ("  new token (%s)"):format(tostring(event.kind))
    elseif event.type == "failover" then
      line = ("  no connection to %s: on to %s"):format(tostring(event.from):match("^[^/]*//[^/]*") or "?",
        tostring(event.to))
    elseif event.type == "iam_project" then
      line = ("  IAM project of %s: %s (sent as X-Project-Id)"):format(tostring(event.region),
        tostring(event.iam_project_id))
    elseif event.type == "warning" then
      line = "  warning: " .. tostring(event.message)
    end
    if line then ctx:say(clean(line)) end
  end
end

-- Whether the command follows a run to its end.
local function follows(ctx)
  return ctx.name == "wait" or ctx.name == "retry-failed" or ctx.options.wait == true
end

--- Load options from the global options: whatever configures pipeline.load()
-- configures the command, the environment (ctx.getenv) included.
function context.load_options(ctx)
  local options = ctx.options
  local loaded = { profile = options.profile, config_file = options.config, endpoint = options.endpoint,
    region = options.region, project_id = options.project, getenv = ctx.getenv }
  if options.timeout then
    if not follows(ctx) then
      loaded.timeout = options.timeout
    elseif options.timeout < DEFAULT_REQUEST_TIMEOUT then
      loaded.timeout = options.timeout
    end
  end
  local trace = options.verbose and tracer(ctx)
  -- A signal ends a command at once; the watcher instead asks for it between
  -- two steps of its work (its stop function), so it ends with its summary.
  local function interrupted() return core.interrupted() and ctx.name ~= "watch" end
  loaded.on_event = function(event)
    -- After a signal no new request starts, but for the one that settles an
    -- unknown outcome (a retry or stop that failed on the way: the library
    -- reads the run next).
    if event.type == "response" then
      ctx.may_verify = (event.op == "retry" or event.op == "stop") and event.error ~= nil
    elseif event.type == "request" and interrupted() then
      if not (ctx.may_verify and event.op == "detail") then error(INTERRUPTED, 0) end
      ctx.may_verify = false
    end
    if trace then trace(event) end
  end
  loaded.sleep = function(seconds)
    if interrupted() then error(INTERRUPTED, 0) end
    if not ctx.tty then
      ctx.sleep(seconds)
      if interrupted() then error(INTERRUPTED, 0) end
      return
    end
    -- On a terminal the live display keeps its clocks going while it waits.
    local left = seconds
    repeat
      local slice = math.min(left, 0.5)
      ctx.sleep(slice)
      left = left - slice
      if ctx.display then ctx.display:tick() end
      if interrupted() then error(INTERRUPTED, 0) end
    until left <= 0
  end
  return loaded
end


--- stream, writing through the client's keeper of secrets: whatever the
-- program prints comes from the server in part (a run's fields, a request
-- id, a message), and a server may echo a secret back.
function context.redacting(stream, secrets)
  return setmetatable({
    write = function(_, ...)
      local parts = compat.pack(...)
      for i = 1, parts.n do parts[i] = redaction.redact(tostring(parts[i]), secrets) end
      stream:write(compat.unpack(parts, 1, parts.n))
      return _
    end,
    flush = stream.flush and function() return stream:flush() end or nil,
  }, { __index = stream })
end

-- The client for a command given a page address: its project id and region
-- fill what the configuration leaves out; a different one there is a usage
-- error.
local function open_for_address(ctx, options)
  local address, command = ctx.address, commands.by_name[ctx.name]
  local resolved, message, code, info = config.resolve(options)
  if not resolved then return nil, message, code, info end
  if resolved.project_id and resolved.project_id ~= address.project_id then
    usage(("the address is in project %s but the configuration gives project_id %s (from --project, "
      .. "CODEARTS_PIPELINE_PROJECT_ID or the config file): drop one"):format(address.project_id,
      resolved.project_id), command)
  end
  resolved.project_id = address.project_id
  if address.region then
    if resolved.region and resolved.region ~= address.region then
      usage(("the address is in region %s but the configuration gives region %s: drop one")
        :format(address.region, resolved.region), command)
    elseif not resolved.endpoint then
      -- (a configured endpoint decides where requests go: the region is not needed)
      resolved.region = address.region
    end
  end
  return client_module.new(resolved, 2, "pipeline.load")
end

--- The client, from the configuration layers (ctx.getenv is their
-- environment: options.getenv, as load_options gives it).
function context.open_client(ctx, options)
  if ctx.address then return open_for_address(ctx, options) end
  return pipeline.load(options)
end

return context

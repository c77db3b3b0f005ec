--- The command-line program: `codearts-pipeline COMMAND ...` over the library.
--
--     local cli = require "pipeline.cli"
--     os.exit(cli.main(arg))
--
-- cli.main(args [, env]) runs one command and returns its exit status.  env
-- may replace what the program touches, for tests and embedding: stdout,
-- stderr (objects with :write), getenv, isatty(fd), sleep(seconds), clock()
-- (monotonic seconds).  See docs/cli.md for the user's side.
--
-- The program is in lua/pipeline/cli/: commands.lua (the table of commands,
-- their options and help), args.lua (parsing and checking the arguments),
-- context.lua (streams, failures, signals, the client), actions.lua (what
-- each command does), output.lua and progress.lua (what it prints), and
-- completion.lua (the shell completion scripts).
local pipeline = require("pipeline")
local core = require("pipeline.core")
local commands = require("pipeline.cli.commands")
local args_module = require("pipeline.cli.args")
local context = require("pipeline.cli.context")
local actions = require("pipeline.cli.actions")
local output = require("pipeline.cli.output")
local completion = require("pipeline.cli.completion")

local cli = {}

local PROGRAM = commands.PROGRAM
local COMMAND = commands.by_name
local Usage, usage, quoted = args_module.Usage, args_module.usage, args_module.quoted
local INTERRUPTED = context.INTERRUPTED
local encode = output.encode

--- Exit statuses, as docs/cli.md lists them.
cli.EXIT = { ok = 0, run_failed = 1, usage = 2, api = 3, auth = 4, transient = 5, interrupted = 130,
  terminated = 143 }

-- Parses, checks, loads the client and runs the command.
local function execute(ctx, args)
  local name, positional, options, given = args_module.parse(args)
  ctx.options, ctx.positional = options, positional
  if name == "help" then options.help, name = true, table.remove(positional, 1) end
  ctx.name = name
  if options.help then
    local command = COMMAND[name]
    if name and not command then usage(("unknown command %s"):format(quoted(name))) end
    local text = command and commands.help(command) or commands.overview()
    if options.json then text = encode({ ok = true, exit = 0, help = text }) .. "\n" end
    ctx.out:write(text)
    return 0
  end
  if options.version then
    ctx:result({ ok = true, exit = 0, version = pipeline._VERSION },
      ("%s %s (%s)\n"):format(PROGRAM, pipeline._VERSION, _VERSION))
    return 0
  end
  if not name then usage("no command given") end
  local command = args_module.validate(name, positional, options, given)
  ctx.address = options.address
  if command.offline then return actions[command.name](ctx, positional[1]) end
  local client, message, code, info = context.open_client(ctx, context.load_options(ctx))
  if not client then return ctx:fail(message, code, info) end
  ctx.out, ctx.err = context.redacting(ctx.out, client._secrets), context.redacting(ctx.err, client._secrets)
  local results = { pcall(actions[command.name], ctx, client, positional[1], positional[2]) }
  client:close()
  if not results[1] then error(results[2], 0) end
  if ctx.interrupt_exit then return ctx.interrupt_exit end
  return results[2]
end

local cli_outcome -- (below)

--- Runs the program with args (a list of strings, as `arg`); returns the exit
-- status.  env: optional stdout, stderr, getenv, isatty, sleep, clock.
function cli.main(args, env)
  env = env or {}
  local getenv = env.getenv or os.getenv
  local isatty = env.isatty or core.isatty
  local ctx = context.new({
    out = env.stdout or io.stdout,
    err = env.stderr or io.stderr,
    getenv = getenv,
    sleep = env.sleep or core.sleep,
    clock = env.clock or core.monotonic,
    signals = env.signals, -- catch, caught, release: the watcher's (default: core's)
    tty = false,
    width = 80,
    options = {},
  })
  args = args or {}
  for _, word in ipairs(args) do
    if word == "--" then break end
    if word == "--json" then ctx.options.json = true end
  end
  -- Ctrl-C and SIGTERM end sleeps and transfers at once (env.signals =
  -- false leaves the process's handlers alone)
  if env.signals ~= false then core.catch_signals() end
  local ok, result = xpcall(function()
    ctx.tty = isatty(2) and getenv("TERM") ~= "dumb"
    ctx.width = math.max(20, tonumber(getenv("COLUMNS") or "") or 80)
    return execute(ctx, args)
  end, function(failure)
    if getmetatable(failure) == Usage or failure == INTERRUPTED then return failure end
    return debug.traceback(tostring(failure), 2)
  end)
  local exit = cli_outcome(ctx, ok, result)
  if env.signals ~= false then core.release_signals() end
  return exit
end

-- The exit status of a run of execute (ok, result as xpcall returned them),
-- with what it leaves to say said.
function cli_outcome(ctx, ok, result)
  if ok then return result end
  if getmetatable(result) == Usage then
    local line = result.command and (PROGRAM .. " " .. result.command.usage)
      or (PROGRAM .. " [options] COMMAND ARGS...")
    if ctx.options.json then
      ctx.out:write(encode({ ok = false, exit = 2, code = "usage", message = result.message, usage = line }), "\n")
    else
      ctx.err:write(("%s: %s\nusage: %s\nRun '%s %s--help' for more.\n"):format(PROGRAM, result.message, line,
        PROGRAM, result.command and (result.command.name .. " ") or ""))
    end
    return cli.EXIT.usage
  end
  if ctx.display then ctx.display:finish() end
  if result == INTERRUPTED then
    return ctx:interrupted({ command = ctx.name, last_status = ctx.last_run and ctx.last_run.status or nil })
  end
  if tostring(result):find("interrupted!", 1, true) then
    return ctx:fail("interrupted", "interrupted")
  end
  local message = tostring(result)
  if not ctx.options.verbose then message = message:match("^[^\n]*") end
  return ctx:fail("internal error (a bug, please report it): " .. message, "internal")
end

--- JSON text for a value, as --json prints it: objects with sorted keys,
-- empty tables as [], whole numbers in full.
cli.encode = encode
--- The table of commands (name, args, options, usage, summary, help).
cli.commands = commands.list
--- A run's page address read: {project_id, pipeline_id, run_id, region}, or
-- nil and what is wrong.
cli.parse_address = args_module.parse_address
--- The completion script for "bash" or "zsh".
cli.completion_script = completion.script

return cli

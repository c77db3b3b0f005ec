--- The command-line program: `codearts-pipeline COMMAND ...` over the library.
--
--     local cli = require "pipeline.cli"
--     os.exit(cli.main(arg))
--
-- cli.main(args [, env]) runs one command and returns its exit status.  env
-- may replace what the program touches, for tests and embedding: stdout,
-- stderr (objects with :write), getenv, isatty(fd), sleep(seconds), clock()
-- (monotonic seconds).  See docs/cli.md for the user's side.
local pipeline = require("pipeline")
local config = require("pipeline.config")
local core = require("pipeline.core")
local compat = require("pipeline.compat")
local lifecycle = require("pipeline.lifecycle")
local errors = require("pipeline.errors")
local client_module = require("pipeline.client")
local cjson = require("cjson.safe")

local cli = {}

local PROGRAM = "codearts-pipeline"

--- Exit statuses, as the contract lists them.
cli.EXIT = { ok = 0, run_failed = 1, usage = 2, api = 3, auth = 4, transient = 5, interrupted = 130,
  terminated = 143 }

-- A caught SIGINT (2) or SIGTERM (15): its name, and the exit status a shell
-- gives a process the signal ended (128 + the signal's number).
local SIGNALS = { [2] = { name = "SIGINT", exit = 130 }, [15] = { name = "SIGTERM", exit = 143 } }

-- Raised (as this very table) from the program's sleep or before a request
-- once a signal came: it unwinds the command to cli.main, which reports it.
local INTERRUPTED = setmetatable({}, { __tostring = function() return "interrupted" end })

-- Error code (the library's, plus the program's own) -> exit status, as the
-- contract lists them: 5 is for network, timeout or throttling only, so a
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

local TERMINAL = lifecycle.TERMINAL
local RUN_STATUSES = { "COMPLETED", "RUNNING", "FAILED", "CANCELED", "PAUSED", "SUSPEND", "IGNORED" }
-- Stage and job statuses after which their clock stops.
local STAGE_DONE = { COMPLETED = true, FAILED = true, CANCELED = true, IGNORED = true, SKIPPED = true,
  UNSELECTED = true, ASYNC_FAILED = true }
local STAGE_WAITING = { INIT = true, QUEUED = true }

local DEFAULT_REQUEST_TIMEOUT = core.DEFAULT_TIMEOUT -- when none is configured
local DEFAULT_WAIT_TIMEOUT = lifecycle.DEFAULT_WAIT_TIMEOUT
local DEFAULT_INTERVAL = lifecycle.DEFAULT_INTERVAL
local PAGE = 100 -- the largest page the list calls take

------------------------------------------------------------------ commands

-- Options that apply to every command; `key` is where the parsed value goes,
-- `arg` names the value (options without it are flags).
local GLOBAL_OPTIONS = {
  ["--profile"] = { key = "profile", arg = "P" },
  ["--config"] = { key = "config", arg = "F" },
  ["--endpoint"] = { key = "endpoint", arg = "URL" },
  ["--region"] = { key = "region", arg = "R" },
  ["--project"] = { key = "project", arg = "ID" },
  ["--timeout"] = { key = "timeout", arg = "S" },
  ["--json"] = { key = "json" },
  ["-v"] = { key = "verbose" },
  ["--verbose"] = { key = "verbose" },
  ["-h"] = { key = "help" },
  ["--help"] = { key = "help" },
  ["--version"] = { key = "version" },
}

local COMMAND_OPTIONS = {
  ["--wait"] = { key = "wait" },
  ["--interval"] = { key = "interval", arg = "S" },
  ["--status"] = { key = "status", arg = "S" },
  ["--limit"] = { key = "limit", arg = "N" },
  ["--var"] = { key = "vars", arg = "NAME=VALUE", list = true },
  ["--attempts"] = { key = "attempts", arg = "N" },
  ["--name"] = { key = "name", arg = "TEXT" },
}

-- Each command: positional arguments, its own options, one-line summary, and
-- the text of its --help.  `run` is filled in below.
local COMMANDS = {
  {
    name = "retry", args = { "PIPELINE", "RUN" }, options = { "--wait", "--interval" },
    usage = "retry PIPELINE RUN [--wait [--timeout S] [--interval S]]",
    summary = "retry a FAILED or CANCELED run; with --wait, follow it to the end",
    help = [[
Retries the run RUN of pipeline PIPELINE (it must have ended FAILED or
CANCELED). Without --wait it returns once the service has accepted the retry.

Options:
  --wait          follow the run until it ends; exit 0 only if it ends COMPLETED,
                  1 if it ends FAILED, CANCELED or IGNORED
  --timeout S     with --wait: give up after S seconds (default 3600), exit 5
  --interval S    with --wait: seconds between two looks at the run (default 5)

Examples:
  codearts-pipeline retry $PIPELINE $RUN
  codearts-pipeline retry $PIPELINE $RUN --wait && ./deploy.sh]],
  },
  {
    name = "status", args = { "PIPELINE", "RUN" }, options = {},
    usage = "status PIPELINE RUN",
    summary = "show a run with its stages and jobs",
    help = [[
Shows the run RUN of pipeline PIPELINE: its status, times, trigger, link, and
each stage with its jobs (a failed job's message too). Exit 0 whatever the
run's status; use `wait` to make the exit status follow the run.

Example:
  codearts-pipeline status $PIPELINE $RUN --json | jq -r .status]],
  },
  {
    name = "wait", args = { "PIPELINE", "RUN" }, options = { "--interval" },
    usage = "wait PIPELINE RUN [--timeout S] [--interval S]",
    summary = "follow a run until it ends",
    help = [[
Follows the run RUN of pipeline PIPELINE until it ends (PAUSED and SUSPEND
runs are waited for too). Exit 0 if it ends COMPLETED, 1 if FAILED, CANCELED
or IGNORED, 5 if the timeout passes first.

Options:
  --timeout S     give up after S seconds (default 3600)
  --interval S    seconds between two looks at the run (default 5)

Example:
  codearts-pipeline wait $PIPELINE $RUN --timeout 1800 && ./deploy.sh]],
  },
  {
    name = "runs", args = { "PIPELINE" }, options = { "--status", "--limit" },
    usage = "runs PIPELINE [--status S] [--limit N]",
    summary = "list a pipeline's runs, newest first",
    help = [[
Lists the runs of pipeline PIPELINE, newest first.

Options:
  --status S      only runs with this status; several separated by commas
                  (COMPLETED, RUNNING, FAILED, CANCELED, PAUSED, SUSPEND, IGNORED)
  --limit N       at most N runs (default 10)

Example:
  codearts-pipeline runs $PIPELINE --status FAILED,CANCELED --limit 5]],
  },
  {
    name = "run", args = { "PIPELINE" }, options = { "--var", "--wait", "--interval" },
    usage = "run PIPELINE [--var NAME=VALUE]... [--wait [--timeout S] [--interval S]]",
    summary = "start a run",
    help = [[
Starts a run of pipeline PIPELINE and prints the new run's id on stdout, so
RUN=$(codearts-pipeline run $PIPELINE) works. A start is never sent twice: if
the answer is lost, check with `runs` before starting again.

Options:
  --var NAME=VALUE  a run variable; repeat for more (VALUE may contain '=')
  --wait            follow the new run until it ends (exit statuses as `wait`)
  --timeout S       with --wait: give up after S seconds (default 3600)
  --interval S      with --wait: seconds between two looks (default 5)

Examples:
  codearts-pipeline run $PIPELINE --var branch=main --var version=1.2.3
  codearts-pipeline run $PIPELINE --wait --timeout 1800]],
  },
  {
    name = "stop", args = { "PIPELINE", "RUN" }, options = {},
    usage = "stop PIPELINE RUN",
    summary = "stop a run",
    help = [[
Stops the run RUN of pipeline PIPELINE (it must still be going). A run that
has already ended gives exit status 3.

Example:
  codearts-pipeline stop $PIPELINE $RUN]],
  },
  {
    name = "retry-failed", args = { "PIPELINE" }, options = { "--attempts", "--interval" },
    usage = "retry-failed PIPELINE [--attempts N] [--timeout S] [--interval S]",
    summary = "retry the pipeline's latest run while it fails, up to N times",
    help = [[
Takes the latest run of pipeline PIPELINE (waiting for it if it is still
going); while it ends FAILED or CANCELED, retries it and follows it, up to N
times. Exit 0 if it ends COMPLETED (also when no retry was needed), 1 if it
still failed after N attempts.

Options:
  --attempts N    at most N retries (default 3)
  --timeout S     give up following any one attempt after S seconds (default 3600)
  --interval S    seconds between two looks at the run (default 5)

Example:
  codearts-pipeline retry-failed $PIPELINE --attempts 2 && ./deploy.sh]],
  },
  {
    name = "pipelines", args = {}, options = { "--name", "--limit" },
    usage = "pipelines [--name TEXT] [--limit N]",
    summary = "list the project's pipelines with their latest run",
    help = [[
Lists the pipelines of the project, each with the status of its latest run.

Options:
  --name TEXT     only pipelines whose name contains TEXT
  --limit N       at most N pipelines (default: all)

Example:
  codearts-pipeline pipelines --name deploy]],
  },
}

-- The commands for the people on call: why a run failed, its reviews and
-- artifacts, a fleet watcher, and shell completion.
COMMAND_OPTIONS["--failed"] = { key = "failed" }
COMMAND_OPTIONS["--job"] = { key = "jobs", arg = "NAME", list = true }
COMMAND_OPTIONS["--follow"] = { key = "follow" }
COMMAND_OPTIONS["--step"] = { key = "step", arg = "ID" }
COMMAND_OPTIONS["--all"] = { key = "all" }
COMMAND_OPTIONS["--policy"] = { key = "policy", arg = "FILE.lua" }
COMMAND_OPTIONS["--until-settled"] = { key = "until_settled" }

local ADDRESS_NOTE = [[

PIPELINE RUN may also be the run's page address, copied from the browser
(https://devcloud.<region>.huaweicloud.com/cicd/project/<project id>/pipeline/detail/<pipeline id>/<run id>):
its project id and region fill what the configuration does not give.]]

for _, command in ipairs({
  {
    name = "logs", args = { "PIPELINE", "RUN" }, options = { "--failed", "--job", "--follow", "--interval" },
    usage = "logs PIPELINE RUN [--failed] [--job NAME]... [--follow [--interval S]]",
    summary = "print the run's step logs, each headed by stage / job / step",
    help = [[
Prints the logs of the steps of run RUN of pipeline PIPELINE, each headed by
"==> stage / job / step (STATUS)". Logs are read page by page and printed as
they come, never held whole in memory.

Options:
  --failed        only the steps that failed (what to read after a red run)
  --job NAME      only the jobs named NAME (a job name, a stage name or
                  "stage/job"); repeat for more
  --follow        keep reading while the run goes on, each page from where
                  the previous one ended (no line printed twice); ends with
                  the run
  --interval S    with --follow: seconds between two looks (default 5)
  --json          one JSON object per step (with --follow: per step and page):
                  {stage, job, step, job_run_id, step_run_id, status, log}

Examples:
  codearts-pipeline logs $PIPELINE $RUN --failed
  codearts-pipeline logs "$RUN_PAGE_ADDRESS" --follow]] .. ADDRESS_NOTE,
  },
  {
    name = "approve", args = { "PIPELINE", "RUN" }, options = { "--step" },
    usage = "approve PIPELINE RUN [--step ID]",
    summary = "pass the run's pending manual review",
    help = [[
Passes the manual review waiting in run RUN of pipeline PIPELINE (a step
PAUSED for a decision). When several wait, they are listed and --step ID
chooses one. Exit 3 when none waits.

Options:
  --step ID       the review step's id, as listed

Example:
  codearts-pipeline approve $PIPELINE $RUN]] .. ADDRESS_NOTE,
  },
  {
    name = "reject", args = { "PIPELINE", "RUN" }, options = { "--step" },
    usage = "reject PIPELINE RUN [--step ID]",
    summary = "refuse the run's pending manual review",
    help = [[
Refuses the manual review waiting in run RUN of pipeline PIPELINE (the run
then ends FAILED). When several wait, they are listed and --step ID chooses
one. Exit 3 when none waits.

Options:
  --step ID       the review step's id, as listed

Example:
  codearts-pipeline reject $PIPELINE $RUN --step $STEP]] .. ADDRESS_NOTE,
  },
  {
    name = "artifacts", args = { "PIPELINE", "RUN" }, options = {},
    usage = "artifacts PIPELINE RUN",
    summary = "list the artifacts a run produced",
    help = [[
Lists the artifacts of run RUN of pipeline PIPELINE: name, version, type,
size in bytes and download address. --json gives the API's objects.

Example:
  codearts-pipeline artifacts $PIPELINE $RUN --json | jq -r '.artifacts[].name']] .. ADDRESS_NOTE,
  },
  {
    name = "watch", args = { "PIPELINE" }, variadic = true,
    options = { "--all", "--attempts", "--interval", "--policy", "--job", "--until-settled" },
    usage = "watch PIPELINE... | --all [--attempts N] [--interval S] [--policy FILE.lua] [--job NAME]... [--until-settled]",
    summary = "keep pipelines green: retry their failed runs, within the quota",
    help = [[
Watches pipelines: every S seconds one request reads the latest run of all of
them; a run that ended FAILED is retried (and followed), at most N times per
run, when the policy says so. One line per event (JSON lines with --json), a
summary at the end. Runs until SIGINT or SIGTERM (or, with --until-settled,
until every latest run has ended and none is retried again); a retry in
flight is finished and settled first. Exit 0 when every watched pipeline's
latest run ended COMPLETED, 1 otherwise.

Options:
  --all             every pipeline of the project
  --attempts N      at most N retries of a run (default 3)
  --interval S      seconds between two looks (default 30)
  --policy FILE.lua a file returning function(run, attempts) -> retry, reason
                    (run: the run's detail; loaded in the config file's sandbox
                    with string, table, math, pairs, ipairs, type, tostring,
                    tonumber, select, next, error)
  --job NAME        without --policy: retry only runs whose failed jobs are all
                    named (job, stage or "stage/job"); repeat for more
  --until-settled   end once every latest run has ended and none is retried again

Examples:
  codearts-pipeline watch --all --attempts 2 --interval 60
  codearts-pipeline watch $P1 $P2 --job unit-tests --json >> watch.log]],
  },
  {
    name = "completion", args = { "SHELL" }, choices = { "bash", "zsh", "profiles" }, options = {}, offline = true,
    usage = "completion bash|zsh|profiles",
    summary = "print the shell completion script (or the config file's profiles)",
    help = [[
Prints the completion script for bash or zsh, made from the same table as
this help (commands, options), completing profile names from the config file
(`completion profiles` prints them, one a line). Installed with the program:
bash: share/bash-completion/completions/codearts-pipeline,
zsh: share/zsh/site-functions/_codearts-pipeline.

Examples:
  source <(codearts-pipeline completion bash)
  codearts-pipeline completion zsh > ~/.zfunc/_codearts-pipeline]],
  },
}) do COMMANDS[#COMMANDS + 1] = command end

local COMMAND = {}
for _, command in ipairs(COMMANDS) do COMMAND[command.name] = command end

local SYNOPSIS = PROGRAM .. " [--profile P] [--config F] [--endpoint URL] [--region R] [--project ID]\n"
  .. "                         [--timeout S] [--json] [-v] COMMAND ARGS..."

local function overview()
  local lines = {
    PROGRAM .. ": retry, start, stop and follow Huawei Cloud CodeArts Pipeline runs.",
    "",
    "Usage: " .. SYNOPSIS,
    "       " .. PROGRAM .. " COMMAND --help     (or: " .. PROGRAM .. " help COMMAND)",
    "",
    "Commands:",
  }
  for _, command in ipairs(COMMANDS) do
    lines[#lines + 1] = ("  %-13s %s"):format(command.name, command.summary)
  end
  for _, line in ipairs({
    "",
    "PIPELINE and RUN are 32-character ids (ASCII letters and digits), as in a run's",
    "page address: .../pipeline/detail/PIPELINE/RUN. That address may stand for both.",
    "",
    "Global options (before or after the command):",
    "  --profile P     use profile P of the config file",
    "  --config F      read the config file F",
    "  --endpoint URL  the API's base URL, e.g. https://cloudpipeline-ext.cn-north-4.myhuaweicloud.com",
    "  --region R      a region id, e.g. cn-north-4 (instead of --endpoint)",
    "  --project ID    the CodeArts project id (32 letters and digits, in the",
    "                  project's page address: .../project/ID/...)",
    "  --timeout S     seconds each request may take (default 30); for commands that",
    "                  follow a run (wait, --wait, retry-failed) the deadline for",
    "                  following it (default 3600), no request taking longer than S",
    "  --json          print one JSON document on stdout, also on failure",
    "  -v, --verbose   trace each request and response on stderr (secrets hidden)",
    "  -h, --help      this help; COMMAND --help for a command's",
    "  --version       the program's version",
    "",
    "Configuration, first found wins: the options above, the environment (then",
    "~/.huaweicloud/credentials), the config file's profile.",
    "  CODEARTS_PIPELINE_ENDPOINT or CODEARTS_PIPELINE_REGION   where the API is",
    "  CODEARTS_PIPELINE_PROJECT_ID                            the CodeArts project id",
    "  CODEARTS_PIPELINE_TOKEN                                 an IAM token (X-Auth-Token), or",
    "  HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK                  an access key pair (signed requests)",
    "  HUAWEICLOUD_SDK_PROJECT_ID                              the IAM project of the region, sent",
    "                                                          with signed requests (X-Project-Id);",
    "                                                          looked up by region when not set",
    "  CODEARTS_PIPELINE_PROFILE, CODEARTS_PIPELINE_CONFIG     profile name, config file path",
    "  Config file (default ~/.config/codearts-pipeline/config.lua, mode 600):",
    "    return { profiles = { default = { region = \"cn-north-4\",",
    "      project_id = \"...\", token_file = \"~/.codearts-token\" } } }",
    "  A profile may hold token, token_file, ak/sk or iam = {user, password, domain}.",
    "  The credentials file's [basic] section gives ak, sk (and project_id: the IAM",
    "  project of the region, never the CodeArts project).",
    "  See docs/cli.md for the details.",
    "",
    "Exit status:",
    "  0  success (where the command waits: the run ended COMPLETED)",
    "  1  the run ended FAILED, CANCELED or IGNORED",
    "  2  usage or configuration error (nothing was sent)",
    "  3  API error: refused, not found, a server error (5xx), or an unexpected answer",
    "  4  authentication error (token or keys refused)",
    "  5  network, TLS, timeout or throttling: try again later",
    "  130  interrupted by Ctrl-C (143: by SIGTERM)",
    "",
    "Example, in a CI job:",
    "  codearts-pipeline retry $PIPELINE $RUN --wait && ./deploy.sh",
  }) do lines[#lines + 1] = line end
  return table.concat(lines, "\n") .. "\n"
end

local function command_help(command)
  return ("Usage: %s %s\n\n%s\n\nGlobal options (--profile, --config, --endpoint, --region, --project, --timeout,\n"
    .. "--json, -v) and exit statuses: %s --help.\n"):format(PROGRAM, command.usage, command.help, PROGRAM)
end

------------------------------------------------------------------ output

-- JSON text for value: objects with sorted keys, empty tables as [], whole
-- numbers without exponent (lua-cjson 2.1 writes 14 digits at most).
local function encode(value, depth)
  depth = depth or 0
  local kind = type(value)
  if value == nil or value == cjson.null then return "null" end
  if kind == "boolean" then return tostring(value) end
  if kind == "number" then
    if value ~= value or value == math.huge or value == -math.huge then return "null" end
    if math.type and math.type(value) == "integer" then return ("%d"):format(value) end
    if value == math.floor(value) and math.abs(value) < 2 ^ 53 then return ("%.0f"):format(value) end
    return ("%.17g"):format(value)
  end
  if kind == "string" then return (cjson.encode(value):gsub("\\/", "/")) end
  if kind ~= "table" or depth > 100 then return (cjson.encode(tostring(value))) end
  local count = 0
  for _ in pairs(value) do count = count + 1 end
  local parts = {}
  if count == #value then
    for i = 1, count do parts[i] = encode(value[i], depth + 1) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for key in pairs(value) do keys[#keys + 1] = tostring(key) end
  table.sort(keys)
  for _, key in ipairs(keys) do
    local item = value[key]
    if item == nil then item = value[tonumber(key)] end
    parts[#parts + 1] = cjson.encode(key) .. ":" .. encode(item, depth + 1)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
cli.encode = encode

-- Text from the service, made safe for a terminal: no control characters.
local function clean(value)
  if value == nil or value == cjson.null or type(value) == "table" then return "" end
  return (tostring(value):gsub("%c", " "))
end

------------------------------------------------------------------ shapes

-- What the program shows of an answer must have the shape it expects: a
-- field of another shape is the server's fault, a protocol failure, never
-- a crash of the display.  Times are epoch milliseconds up to the year 9999.
local MAX_EPOCH_MS = 253402300799999

local function is_null(value) return value == nil or value == cjson.null end

local FITS = {
  text = function(value)
    return is_null(value) or type(value) == "string"
      or (type(value) == "number" and value == value and math.abs(value) < 2 ^ 53)
  end,
  time = function(value)
    return is_null(value) or (type(value) == "number" and value >= 0 and value <= MAX_EPOCH_MS)
  end,
}

local JOB_SHAPE = { name = "text", status = "text", message = "text" }
local STAGE_SHAPE = { name = "text", status = "text", start_time = "time", end_time = "time", jobs = { JOB_SHAPE } }
local RUN_SHAPE = { id = "text", pipeline_run_id = "text", pipeline_id = "text", name = "text", status = "text",
  run_number = "text", trigger_type = "text", executor_name = "text", detail_url = "text",
  start_time = "time", end_time = "time", stages = { STAGE_SHAPE } }
local PIPELINE_SHAPE = { pipeline_id = "text", id = "text", name = "text", latest_run = RUN_SHAPE }

local function shown(value)
  if type(value) == "number" then return ("the number %.17g"):format(value) end
  if type(value) == "table" then return "an object or list" end
  if type(value) == "string" then return "a string" end
  return type(value) == "userdata" and "null" or ("a " .. type(value))
end

--- nil when value fits shape (a kind's name, a table of fields, or { item
-- shape } for a list), else what is wrong, naming the field from where.
local function misfit(value, shape, where)
  if type(shape) == "string" then
    if FITS[shape](value) then return nil end
    return ("%s is %s, not %s"):format(where, shown(value), shape == "time" and "a time" or "text")
  end
  if is_null(value) then return nil end
  if type(value) ~= "table" then return ("%s is %s, not %s"):format(where, shown(value),
    shape[1] and "a list" or "an object") end
  if shape[1] then
    for i, item in ipairs(value) do
      if type(item) ~= "table" then return ("%s[%d] is %s, not an object"):format(where, i, shown(item)) end
      local why = misfit(item, shape[1], ("%s[%d]"):format(where, i))
      if why then return why end
    end
    return nil
  end
  for name, field in pairs(shape) do
    local why = misfit(value[name], field, where .. "." .. name)
    if why then return why end
  end
  return nil
end

-- The protocol failure for an answer of the wrong shape.
local function misshapen(ctx, op, why, extra)
  local _, message, code, info = errors.failure(op, "protocol", "unexpected response: " .. why)
  return ctx:fail(message, code, info, extra)
end

local function duration(seconds)
  if type(seconds) ~= "number" or seconds < 0 then return "" end
  seconds = math.floor(seconds + 0.5)
  if seconds < 60 then return seconds .. "s" end
  if seconds < 3600 then return ("%dm%02ds"):format(math.floor(seconds / 60), seconds % 60) end
  return ("%dh%02dm%02ds"):format(math.floor(seconds / 3600), math.floor(seconds / 60) % 60, seconds % 60)
end

local function epoch_ms(value)
  if type(value) == "number" and value > 0 then return value end
end

local function when(ms)
  ms = epoch_ms(ms)
  -- a time os.date cannot show (past the year 9999, say) is no time at all
  local ok, text = pcall(os.date, "%Y-%m-%d %H:%M:%S", ms and math.floor(ms / 1000))
  return (ms and ok and text) or "-"
end

local function took(run)
  local started, ended = epoch_ms(run.start_time), epoch_ms(run.end_time)
  if not started then return "-" end
  if not ended then return TERMINAL[run.status] and "-" or "running" end
  return duration((ended - started) / 1000)
end

-- Lines of a table: rows of cells, the first row the header.
local function render_table(rows)
  local widths = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do widths[i] = math.max(widths[i] or 0, #cell) end
  end
  local out = {}
  for _, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      cells[i] = i < #row and cell .. (" "):rep(widths[i] - #cell) or cell
    end
    out[#out + 1] = table.concat(cells, "  ")
  end
  return table.concat(out, "\n") .. "\n"
end

local function run_id_of(run)
  return run.id or run.pipeline_run_id
end

-- A run for people: header lines, then each stage and its jobs.  run_id: the
-- id asked for, shown when the answer does not carry one.
local function render_run(run, run_id)
  local lines = {
    ("Run %s%s of %s: %s"):format(clean(run_id_of(run) or run_id),
      run.run_number and (" (#" .. clean(run.run_number) .. ")") or "",
      run.name and clean(run.name) or ("pipeline " .. clean(run.pipeline_id)), clean(run.status)),
    ("  started %s, ended %s, took %s"):format(when(run.start_time), when(run.end_time), took(run)),
  }
  if run.trigger_type or run.executor_name then
    lines[#lines + 1] = ("  trigger %s%s"):format(clean(run.trigger_type),
      run.executor_name and (" by " .. clean(run.executor_name)) or "")
  end
  if run.detail_url then lines[#lines + 1] = "  " .. clean(run.detail_url) end
  local rows = {}
  for _, stage in ipairs(type(run.stages) == "table" and run.stages or {}) do
    rows[#rows + 1] = { "  " .. clean(stage.name), clean(stage.status), "" }
    for _, job in ipairs(type(stage.jobs) == "table" and stage.jobs or {}) do
      rows[#rows + 1] = { "    " .. clean(job.name), clean(job.status), clean(job.message) }
    end
  end
  local text = table.concat(lines, "\n") .. "\n"
  if #rows > 0 then
    text = text .. "Stages:\n" .. render_table(rows):gsub(" +\n", "\n")
  end
  return text
end

-- The jobs that ended badly, for the line after "ended FAILED".
local function failed_jobs(run)
  local lines = {}
  for _, stage in ipairs(type(run.stages) == "table" and run.stages or {}) do
    for _, job in ipairs(type(stage.jobs) == "table" and stage.jobs or {}) do
      if job.status == "FAILED" or job.status == "ASYNC_FAILED" or job.status == "CANCELED" then
        local message = clean(job.message)
        lines[#lines + 1] = ("  %s / %s: %s%s"):format(clean(stage.name), clean(job.name), clean(job.status),
          message ~= "" and (": " .. message) or "")
      end
    end
  end
  return lines
end

------------------------------------------------------------------ progress

-- Follows a run on stderr: on a terminal, one line for the run and one per
-- stage, redrawn in place; elsewhere, one plain line per change.
local Display = {}
Display.__index = Display

local function new_display(ctx)
  return setmetatable({ ctx = ctx, out = ctx.err, tty = ctx.tty, width = ctx.width,
    started = ctx.clock(), drawn = 0, stages = {} }, Display)
end

local function stage_elapsed(stage, now)
  local started = epoch_ms(stage.start_ms)
  if started then
    return duration(((epoch_ms(stage.end_ms) or os.time() * 1000) - started) / 1000)
  end
  if stage.since then return duration((stage.done or now) - stage.since) end
  return ""
end

function Display:_lines(now)
  local run = self.run
  local lines = { ("run %s%s  %s  %s"):format(clean(run_id_of(run)),
    run.run_number and (" #" .. clean(run.run_number)) or "", clean(run.status),
    duration(now - self.started)) }
  local width = 0
  for _, stage in ipairs(self.stages) do width = math.max(width, #stage.name) end
  for _, stage in ipairs(self.stages) do
    lines[#lines + 1] = ("  %s  %-10s %s"):format(stage.name .. (" "):rep(width - #stage.name),
      stage.status, stage_elapsed(stage, now)):gsub(" +$", "")
  end
  return lines
end

-- Moves the cursor back to the top of the block drawn last and clears it.
function Display:_erase()
  if self.drawn > 0 then self.out:write(("\27[%dA\r\27[J"):format(self.drawn)) end
  self.drawn, self.screen = 0, nil
end

function Display:draw()
  if not (self.tty and self.run) then return end
  local lines = self:_lines(self.ctx.clock())
  local text = {}
  if self.drawn > 0 then text[1] = ("\27[%dA"):format(self.drawn) end
  for _, line in ipairs(lines) do
    if #line > self.width - 1 then line = line:sub(1, self.width - 1) end
    text[#text + 1] = "\r\27[2K" .. line .. "\n"
  end
  if #lines < self.drawn then text[#text + 1] = "\27[J" end
  local screen = table.concat(lines, "\n")
  if screen == self.screen and #lines == self.drawn then return end -- nothing moved
  self.screen = screen
  self.out:write(table.concat(text))
  if self.out.flush then self.out:flush() end
  self.drawn = #lines
end

--- Writes a line above the live block (or plainly off a terminal).
function Display:note(text)
  if self.tty then self:_erase() end
  self.out:write(text, "\n")
  self:draw()
end

--- Takes a new look at the run: records what changed and shows it.
function Display:update(run)
  local now = self.ctx.clock()
  if self.run and TERMINAL[self.run.status] and not TERMINAL[run.status] then
    -- The run was retried (retry-failed): a new block, the last one stays.
    self.drawn, self.stages, self.started, self.screen = 0, {}, now, nil
    self.last_status = nil
  end
  local changes = {}
  if run.status ~= self.last_status then
    changes[#changes + 1] = "run " .. clean(run_id_of(run)) .. " " .. clean(run.status)
    self.last_status = run.status
  end
  for i, stage in ipairs(type(run.stages) == "table" and run.stages or {}) do
    local seen = self.stages[i]
    if not seen then
      seen = { name = clean(stage.name) }
      if seen.name == "" then seen.name = "stage " .. i end
      self.stages[i] = seen
    end
    local status = clean(stage.status)
    if status ~= seen.status then
      seen.status = status
      if not STAGE_DONE[status] and not STAGE_WAITING[status] and not seen.since then seen.since = now end
      if STAGE_DONE[status] and seen.since then seen.done = now end
      if not STAGE_DONE[status] then seen.done = nil end
      changes[#changes + 1] = ("stage %s %s"):format(seen.name, status)
    end
    seen.start_ms, seen.end_ms = stage.start_time, stage.end_time
  end
  self.run = run
  if self.tty then
    self:draw()
  else
    local stamp = duration(now - self.started)
    for _, change in ipairs(changes) do self.out:write(("[%s] %s\n"):format(stamp, change)) end
  end
end

--- Redraws (elapsed times move on while waiting between looks).
function Display:tick()
  if self.tty and self.run and not self.finished then self:draw() end
end

function Display:finish()
  self:tick()
  self.finished = true
end

------------------------------------------------------------------ parsing

local Usage = {}
local function usage(message, command)
  error(setmetatable({ message = message, command = command }, Usage), 0)
end

local function quoted(text)
  if #text > 40 then text = text:sub(1, 40) .. "..." end
  return (("%q"):format(text):gsub("\\\n", "\\n"))
end

-- A number from option text: decimal digits only (no hex, no exponent).
local function number_option(name, text, integer, minimum, command)
  local looks
  if integer then
    looks = text:match("^%d+$")
  else
    looks = text:match("^%d+%.?%d*$") or text:match("^%.%d+$")
  end
  local value = looks and tonumber(text)
  -- seconds go to libcurl as milliseconds: 2^31 - 1 of them at the most
  if value and not integer and value > 2147483 then value = nil end
  if not value or value < minimum then
    usage(("%s needs %s, got %s"):format(name, integer and ("a whole number of at least " .. minimum)
      or ("a number of seconds" .. (minimum > 0 and (" from " .. minimum .. " to 2147483") or "")), quoted(text)),
      command)
  end
  return value
end

local function check_id(what, value, command)
  if not core.is_id(value) then
    usage(("%s must be 32 ASCII letters or digits, got %s"):format(what, quoted(value)), command)
  end
  return value
end

-- Splits args into the command, its positional arguments and the options.
-- Options may come anywhere; "--" ends them.  Raises a Usage error.
local function parse(args)
  local positional, options, given = {}, { vars = {}, jobs = {} }, {}
  local i, only_positional = 1, false
  while i <= #args do
    local word = args[i]
    if type(word) ~= "string" then usage("argument #" .. i .. " is not a string") end
    if not only_positional and word == "--" then
      only_positional = true
    elseif not only_positional and word:sub(1, 1) == "-" and word ~= "-" then
      local name, inline = word:match("^(%-%-[^=]+)=(.*)$")
      name = name or word
      local spec = GLOBAL_OPTIONS[name] or COMMAND_OPTIONS[name]
      if not spec then usage("unknown option " .. quoted(name), COMMAND[positional[1]]) end
      local value = true
      if spec.arg then
        value = inline
        if value == nil then
          i = i + 1
          value = args[i]
        end
        if type(value) ~= "string" then
          usage(("option %s needs a value (%s)"):format(name, spec.arg), COMMAND[positional[1]])
        end
      elseif inline then
        usage(("option %s takes no value"):format(name), COMMAND[positional[1]])
      end
      if spec.list then
        options[spec.key][#options[spec.key] + 1] = value
      elseif given[spec.key] and spec.arg then
        usage(("option %s given twice"):format(name), COMMAND[positional[1]])
      else
        options[spec.key] = value
      end
      given[spec.key] = name
    else
      positional[#positional + 1] = word
    end
    i = i + 1
  end
  local name = table.remove(positional, 1)
  return name, positional, options, given
end

-- Checks the command's arguments and options; returns the command.
local function validate(name, positional, options, given)
  local command = COMMAND[name]
  if not command then usage(("unknown command %s"):format(quoted(name))) end
  local allowed = {}
  for _, option in ipairs(command.options) do allowed[COMMAND_OPTIONS[option].key] = true end
  for _, option in pairs(COMMAND_OPTIONS) do
    if given[option.key] and not allowed[option.key] then
      usage(("option %s does not apply to '%s'"):format(given[option.key], name), command)
    end
  end
  if command.args[2] == "RUN" then cli.expand_address(positional, options, command) end
  for i, what in ipairs(command.variadic and {} or command.args) do
    if positional[i] == nil then usage("missing " .. what, command) end
    if command.choices then
      cli.check_choice(what, positional[i], command)
    else
      check_id(what, positional[i], command)
    end
  end
  if command.variadic then
    cli.check_variadic(command, positional, options)
  elseif #positional > #command.args then
    usage("unexpected argument " .. quoted(positional[#command.args + 1]), command)
  end
  if options.interval and allowed.wait and not options.wait then
    usage("--interval needs --wait", command)
  end
  if options.interval and allowed.follow and not options.follow then
    usage("--interval needs --follow", command)
  end
  if options.step and not options.step:find("^%w+$") then
    usage(("--step needs a step id (ASCII letters and digits), got %s"):format(quoted(options.step)), command)
  end
  if options.project then check_id("--project", options.project, command) end
  if options.timeout then options.timeout = number_option("--timeout", options.timeout, false, 0.001, command) end
  if options.interval then options.interval = number_option("--interval", options.interval, false, 0.001, command) end
  if options.limit then options.limit = number_option("--limit", options.limit, true, 1, command) end
  if options.attempts then options.attempts = number_option("--attempts", options.attempts, true, 1, command) end
  if options.status then
    local known, list = {}, {}
    for _, status in ipairs(RUN_STATUSES) do known[status] = true end
    for status in options.status:gmatch("[^,]+") do
      status = status:upper():match("^%s*(.-)%s*$")
      if not known[status] then
        usage(("--status: unknown status %s (one of %s)"):format(quoted(status), table.concat(RUN_STATUSES, ", ")),
          command)
      end
      list[#list + 1] = status
    end
    if #list == 0 then usage("--status needs at least one status", command) end
    options.status = list
  end
  local variables = {}
  for _, pair in ipairs(options.vars) do
    local var, value = pair:match("^([^=]+)=(.*)$")
    if not var then usage(("--var needs NAME=VALUE, got %s"):format(quoted(pair)), command) end
    variables[#variables + 1] = { name = var, value = value }
  end
  options.vars = variables
  return command
end

------------------------------------------------------------------ running

-- The command's context: streams, options, and how to say things.
local Context = {}
Context.__index = Context

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

-- Load options from the global options: whatever configures pipeline.load()
-- configures the command.
local function load_options(ctx)
  local options = ctx.options
  local loaded = { profile = options.profile, config_file = options.config, endpoint = options.endpoint,
    region = options.region, project_id = options.project }
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

-- stream, writing through the client's keeper of secrets: whatever the
-- program prints comes from the server in part (a run's fields, a request
-- id, a message), and a server may echo a secret back.
local function redacting(stream, secrets)
  return setmetatable({
    write = function(_, ...)
      local parts = compat.pack(...)
      for i = 1, parts.n do parts[i] = errors.redact(tostring(parts[i]), secrets) end
      stream:write(compat.unpack(parts, 1, parts.n))
      return _
    end,
    flush = stream.flush and function() return stream:flush() end or nil,
  }, { __index = stream })
end

-- The client, from the configuration chain.  With an injected getenv the
-- same chain runs over it (pipeline.load reads os.getenv).
local function open_client(ctx, options)
  if ctx.address then return cli.open_for_address(ctx, options) end
  if ctx.getenv == os.getenv then return pipeline.load(options) end
  local resolved, message, code, info = config.resolve(options, ctx.getenv)
  if not resolved then return nil, message, code, info end
  return pipeline.new(resolved)
end

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

------------------------------------------------------------------ run addresses

local ADDRESS_SHAPE = "https://devcloud.<region>.huaweicloud.com/cicd/project/<project id>/pipeline/detail/"
  .. "<pipeline id>/<run id>"

--- Reads a run's page address as people copy it from the browser:
-- {project_id, pipeline_id, run_id, region (nil for a host that names
-- none)}, or nil and what is wrong, with the shape expected.
function cli.parse_address(text)
  local function wrong(why)
    return nil, ("cannot read the run's page address %s: %s; expected %s (ids of 32 ASCII letters or digits)")
      :format(quoted(text), why, ADDRESS_SHAPE)
  end
  local scheme, host, path, rest = text:match("^(%a[%w+.-]*)://([^/?#]*)([^?#]*)(.*)$")
  if not scheme then return wrong("not an address") end
  if scheme:lower() ~= "https" and scheme:lower() ~= "http" then return wrong("scheme " .. quoted(scheme)) end
  if host:find("@", 1, true) then return wrong("a user name in the address") end
  host = host:lower():gsub(":%d+$", "")
  local region
  local named = host:match("^devcloud%.(.+)%.huaweicloud%.com$")
  if named then
    if not named:find("^%l%l%-%l+%-%d+$") then
      return wrong(("host %s: %s is not a region id"):format(quoted(host), quoted(named)))
    end
    region = named
  elseif host:find("huaweicloud", 1, true) then
    return wrong(("host %s is not devcloud.<region>.huaweicloud.com"):format(quoted(host)))
  end
  if rest ~= "" and not rest:find("^[?#]") then return wrong("text after the path") end
  local segments = {}
  for segment in path:gmatch("[^/]+") do segments[#segments + 1] = segment end
  local project_at, detail_at
  for i, segment in ipairs(segments) do
    if segment == "project" then
      if project_at then return wrong("/project/ twice in the path") end
      project_at = i
    elseif segment == "pipeline" and segments[i + 1] == "detail" then
      if detail_at then return wrong("pipeline/detail/ twice in the path") end
      detail_at = i
    end
  end
  if not project_at or not core.is_id(segments[project_at + 1]) then
    return wrong("no /project/<project id>/ in the path")
  end
  if not detail_at or not (core.is_id(segments[detail_at + 2]) and core.is_id(segments[detail_at + 3])) then
    return wrong("no pipeline/detail/<pipeline id>/<run id> in the path")
  end
  if #segments > detail_at + 3 then return wrong("more path after the run id") end
  if project_at > detail_at then return wrong("the project after the run in the path") end
  return { project_id = segments[project_at + 1], pipeline_id = segments[detail_at + 2],
    run_id = segments[detail_at + 3], region = region }
end

-- Where a command takes PIPELINE RUN, a page address in the first place
-- stands for both: the ids replace it, the project and region go to
-- options.address for open_for_address.
function cli.expand_address(positional, options, command)
  local first = positional[1]
  if type(first) ~= "string" or not first:find("://", 1, true) then return end
  local address, why = cli.parse_address(first)
  if not address then usage(why, command) end
  table.remove(positional, 1)
  table.insert(positional, 1, address.run_id)
  table.insert(positional, 1, address.pipeline_id)
  options.address = address
end

--- The client for a command given a page address: its project id and region
-- fill what the configuration leaves out; a different one there is a usage
-- error.
function cli.open_for_address(ctx, options)
  local address, command = ctx.address, COMMAND[ctx.name]
  local resolved, message, code, info = config.resolve(options, ctx.getenv)
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
  return require("pipeline.client").new(resolved, 2, "pipeline.load")
end

-- Raises unless value is one of the command's choices.
function cli.check_choice(what, value, command)
  for _, choice in ipairs(command.choices) do
    if value == choice then return end
  end
  usage(("%s must be one of %s, got %s"):format(what, table.concat(command.choices, ", "), quoted(value)), command)
end

-- PIPELINE... of watch: ids, or --all instead.
function cli.check_variadic(command, positional, options)
  if options.all and #positional > 0 then usage("give PIPELINE ids or --all, not both", command) end
  if not options.all and #positional == 0 then usage("missing PIPELINE (or --all)", command) end
  for _, id in ipairs(positional) do check_id("PIPELINE", id, command) end
end

------------------------------------------------------------------ step logs

local STEP_FAILED = { FAILED = true, ASYNC_FAILED = true }

local function is_part_id(value)
  return type(value) == "string" and value:find("^%w+$") ~= nil
end

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

-- Text as the inside of a JSON string.
local function json_text(text)
  return (cjson.encode(text):sub(2, -2):gsub("\\/", "/"))
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

local function sorted_keys(t)
  local keys = {}
  for key in pairs(t) do keys[#keys + 1] = key end
  table.sort(keys)
  return keys
end

-- The option names of a command, and which of all options take a value.
local function option_words()
  local global, with_value = {}, {}
  for _, name in ipairs(sorted_keys(GLOBAL_OPTIONS)) do
    global[#global + 1] = name
    if GLOBAL_OPTIONS[name].arg then with_value[#with_value + 1] = name end
  end
  for _, name in ipairs(sorted_keys(COMMAND_OPTIONS)) do
    if COMMAND_OPTIONS[name].arg then with_value[#with_value + 1] = name end
  end
  return global, with_value
end

-- Options whose values complete: profiles, files.
local FILE_OPTIONS = { ["--config"] = true, ["--policy"] = true }

local function bash_script()
  local global, with_value = option_words()
  local names = {}
  for _, command in ipairs(COMMANDS) do names[#names + 1] = command.name end
  names[#names + 1] = "help"
  local others = {}
  for _, name in ipairs(with_value) do
    if name ~= "--profile" and name ~= "--config" and not FILE_OPTIONS[name] then others[#others + 1] = name end
  end
  local cases = {}
  for _, command in ipairs(COMMANDS) do
    local line = ("    %s) options=\"$options %s\""):format(command.name, table.concat(command.options, " "))
    if command.choices then
      line = line .. ("\n      [[ $cur != -* ]] && { COMPREPLY=($(compgen -W %q -- \"$cur\")); return; }")
        :format(table.concat(command.choices, " "))
    end
    cases[#cases + 1] = line .. " ;;"
  end
  return table.concat({
    "# bash completion for " .. PROGRAM .. ": generated by `" .. PROGRAM .. " completion bash` from the",
    "# program's command table (the one --help shows); regenerate, do not edit.",
    "_codearts_pipeline() {",
    "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
    "  local command='' config='' i word options",
    "  for ((i = 1; i < COMP_CWORD; i++)); do",
    "    word=${COMP_WORDS[i]}",
    "    case $word in",
    "      --config) config=${COMP_WORDS[i+1]}; ((i++)) ;;",
    "      " .. table.concat(with_value, "|") .. ") ((i++)) ;;",
    "      -*) ;;",
    "      *) [[ -z $command ]] && command=$word ;;",
    "    esac",
    "  done",
    "  case $prev in",
    "    --profile)",
    "      COMPREPLY=($(compgen -W \"$(" .. PROGRAM .. " ${config:+--config \"$config\"} completion profiles "
      .. "2>/dev/null)\" -- \"$cur\"))",
    "      return ;;",
    "    --config|--policy) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;",
    "    " .. table.concat(others, "|") .. ") COMPREPLY=(); return ;;",
    "  esac",
    "  options=" .. ("%q"):format(table.concat(global, " ")),
    "  case $command in",
    "    '') [[ $cur != -* ]] && { COMPREPLY=($(compgen -W " .. ("%q"):format(table.concat(names, " "))
      .. " -- \"$cur\")); return; } ;;",
    "    help) COMPREPLY=($(compgen -W " .. ("%q"):format(table.concat(names, " ")) .. " -- \"$cur\")); return ;;",
    table.concat(cases, "\n"),
    "  esac",
    "  COMPREPLY=($(compgen -W \"$options\" -- \"$cur\"))",
    "}",
    "complete -F _codearts_pipeline " .. PROGRAM,
    "",
  }, "\n")
end

-- zsh wants ':' and '[' ']' escaped in descriptions, and quotes doubled.
local function zsh_word(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

local function zsh_option(name)
  local spec = GLOBAL_OPTIONS[name] or COMMAND_OPTIONS[name]
  if not spec.arg then return zsh_word(name) end
  local action = " "
  if name == "--profile" then action = "_codearts_pipeline_profiles"
  elseif FILE_OPTIONS[name] then action = "_files" end
  -- (a leading * lets an option that gathers a list come again)
  return zsh_word(("%s%s=:%s:%s"):format(spec.list and "*" or "", name, spec.arg, action))
end

local function zsh_script()
  local global = option_words()
  local global_words = {}
  for _, name in ipairs(global) do global_words[#global_words + 1] = "    " .. zsh_option(name) end
  local commands = {}
  for _, command in ipairs(COMMANDS) do
    commands[#commands + 1] = "    " .. zsh_word(command.name .. ":" .. command.summary:gsub(":", "\\:"))
  end
  commands[#commands + 1] = "    " .. zsh_word("help:a command's help")
  local cases = {}
  for _, command in ipairs(COMMANDS) do
    local words = {}
    for _, name in ipairs(command.options) do words[#words + 1] = zsh_option(name) end
    if command.choices then
      words[#words + 1] = zsh_word("1:" .. command.args[1]:lower() .. ":(" .. table.concat(command.choices, " ") .. ")")
    else
      words[#words + 1] = zsh_word("*:" .. table.concat(command.args, " "):lower() .. ": ")
    end
    cases[#cases + 1] = ("        %s) _arguments $global %s ;;"):format(command.name, table.concat(words, " "))
  end
  return table.concat({
    "#compdef " .. PROGRAM,
    "# zsh completion for " .. PROGRAM .. ": generated by `" .. PROGRAM .. " completion zsh` from the",
    "# program's command table (the one --help shows); regenerate, do not edit.",
    "_codearts_pipeline_profiles() {",
    "  local -a profiles",
    "  profiles=(${(f)\"$(" .. PROGRAM .. " completion profiles 2>/dev/null)\"})",
    "  compadd -a profiles",
    "}",
    "_codearts-pipeline() {",
    "  local curcontext=$curcontext state line",
    "  local -a global commands",
    "  global=(",
    table.concat(global_words, "\n"),
    "  )",
    "  commands=(",
    table.concat(commands, "\n"),
    "  )",
    "  _arguments -C $global '1:command:->command' '*::argument:->argument'",
    "  case $state in",
    "    command) _describe command commands ;;",
    "    argument)",
    "      case $line[1] in",
    "        help) _describe command commands ;;",
    table.concat(cases, "\n"),
    "      esac ;;",
    "  esac",
    "}",
    "_codearts-pipeline \"$@\"",
    "",
  }, "\n")
end

--- The completion script for shell ("bash" or "zsh"), made from the
-- command table that --help shows.
function cli.completion_script(shell)
  if shell == "bash" then return bash_script() end
  if shell == "zsh" then return zsh_script() end
  error(("bad argument #1 to 'completion_script' (shell must be \"bash\" or \"zsh\", got %s)"):format(tostring(shell)), 2)
end

RUN.completion = function(ctx, what)
  if what == "profiles" then
    local names, why = config.profile_names(ctx.options.config, ctx.getenv)
    if not names then return ctx:fail(why, "config") end
    ctx:result({ ok = true, exit = 0, command = "completion", profiles = names },
      #names > 0 and (table.concat(names, "\n") .. "\n") or "")
    return 0
  end
  local script = cli.completion_script(what)
  ctx:result({ ok = true, exit = 0, command = "completion", shell = what, script = script }, script)
  return 0
end

-- Parses, checks, loads the client and runs the command.
local function execute(ctx, args)
  local name, positional, options, given = parse(args)
  ctx.options, ctx.positional = options, positional
  if name == "help" then options.help, name = true, table.remove(positional, 1) end
  ctx.name = name
  if options.help then
    local command = COMMAND[name]
    if name and not command then usage(("unknown command %s"):format(quoted(name))) end
    local text = command and command_help(command) or overview()
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
  local command = validate(name, positional, options, given)
  ctx.address = options.address
  if command.offline then return RUN[command.name](ctx, positional[1]) end
  local client, message, code, info = open_client(ctx, load_options(ctx))
  if not client then return ctx:fail(message, code, info) end
  ctx.out, ctx.err = redacting(ctx.out, client._secrets), redacting(ctx.err, client._secrets)
  local results = { pcall(RUN[command.name], ctx, client, positional[1], positional[2]) }
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
  local ctx = setmetatable({
    out = env.stdout or io.stdout,
    err = env.stderr or io.stderr,
    getenv = getenv,
    sleep = env.sleep or core.sleep,
    clock = env.clock or core.monotonic,
    signals = env.signals, -- catch, caught, release: the watcher's (default: core's)
    tty = false,
    width = 80,
    options = {},
  }, Context)
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

cli.commands = COMMANDS

return cli

--- The command line's table of commands: each command's arguments, options,
-- summary and --help text, the options every command takes, and the
-- overview --help prints.  The parser (cli/args.lua), --help and the
-- completion scripts (cli/completion.lua) are all made from it; what each
-- command does is in cli/actions.lua.
local commands = {}

local PROGRAM = "codearts-pipeline"

-- The run statuses --status takes.
local RUN_STATUSES = { "COMPLETED", "RUNNING", "FAILED", "CANCELED", "PAUSED", "SUSPEND", "IGNORED" }

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
-- the text of its --help.
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

commands.PROGRAM = PROGRAM
commands.RUN_STATUSES = RUN_STATUSES
commands.GLOBAL_OPTIONS = GLOBAL_OPTIONS
commands.COMMAND_OPTIONS = COMMAND_OPTIONS
--- The commands in the order --help lists them.
commands.list = COMMANDS
--- name -> command.
commands.by_name = COMMAND
commands.overview = overview
commands.help = command_help

return commands

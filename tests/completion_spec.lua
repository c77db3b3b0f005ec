-- Shell completion: the scripts in completion/ are what `codearts-pipeline
-- completion bash|zsh` makes from the command table (--help's), and the bash
-- one completes commands, options and the config file's profile names in a
-- real bash (complete -p, compgen through the completion function).
local support = require("support")
local cli = require("pipeline.cli")

local ROOT = support.ROOT
local BASH_FILE, ZSH_FILE = ROOT .. "/completion/codearts-pipeline.bash", ROOT .. "/completion/_codearts-pipeline"

describe("shell completion", function()
  after_each(support.remove_test_dirs)

  -- A folder with a `codearts-pipeline` that runs this tree's program with
  -- the specs' interpreter, and a config file with two profiles.
  local function setup_program()
    local dir = support.test_dir()
    support.write_file(dir .. "/bin/codearts-pipeline", ("#!/bin/sh\nexec %s %s \"$@\"\n"):format(
      support.quote(support.LUA), support.quote(ROOT .. "/bin/codearts-pipeline")), "755")
    support.write_file(dir .. "/config.lua",
      "return { profiles = { staging = { region = 'cn-north-4' }, production = { region = 'cn-east-3' } } }\n")
    return dir
  end

  -- Runs a bash script (bash --norc) with the program on PATH; returns its
  -- output and exit status.
  local function bash(dir, script)
    local path = support.write_file(dir .. "/test.bash", script)
    return support.capture(support.command({ "bash", "--norc", "--noprofile", path }, support.lua_environment({
      PATH = dir .. "/bin:" .. os.getenv("PATH"), HOME = dir, CODEARTS_PIPELINE_CONFIG = dir .. "/config.lua" })))
  end

  it("the installed scripts are the ones the command table makes", function()
    assert.equal(cli.completion_script("bash"), support.read_file(BASH_FILE))
    assert.equal(cli.completion_script("zsh"), support.read_file(ZSH_FILE))
    local dir = setup_program()
    local printed, status = bash(dir, "codearts-pipeline completion bash")
    assert.equal(0, status)
    assert.equal(support.read_file(BASH_FILE), printed)
  end)

  it("every command and option of --help is in them", function()
    local bash_script, zsh_script = support.read_file(BASH_FILE), support.read_file(ZSH_FILE)
    for _, command in ipairs(cli.commands) do
      support.contains(bash_script, "[" .. command.name .. "]=")
      support.contains(zsh_script, "'" .. command.name .. ":")
      for _, option in ipairs(command.options) do
        support.contains(bash_script, option)
        support.contains(zsh_script, option)
      end
    end
  end)

  it("completes commands, options, choices and profile names in a real bash", function()
    local dir = setup_program()
    local printed, status = bash(dir, ([[
set -u
source %s
complete -p codearts-pipeline
words() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _codearts_pipeline; echo "[${COMPREPLY[*]}]"; }
words codearts-pipeline re
words codearts-pipeline logs --f
words codearts-pipeline --json watch --po
words codearts-pipeline --profile ''
words codearts-pipeline --profile st
words codearts-pipeline completion ''
words codearts-pipeline --timeout 3 ap
words codearts-pipeline logs --interval ''
compgen -W "$(codearts-pipeline completion profiles)" -- pro
]]):format(support.quote(BASH_FILE)))
    assert.equal(0, status, printed)
    local lines = {}
    for line in printed:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal("complete -F _codearts_pipeline codearts-pipeline", lines[1])
    assert.equal("[retry retry-failed reject]", lines[2])
    assert.equal("[--failed --follow]", lines[3])
    assert.equal("[--policy]", lines[4])
    assert.equal("[production staging]", lines[5])
    assert.equal("[staging]", lines[6])
    assert.equal("[bash zsh profiles]", lines[7])
    assert.equal("[approve]", lines[8])
    assert.equal("[]", lines[9])
    assert.equal("production", lines[10])
  end)

  it("the zsh script is valid zsh (when zsh is installed)", function()
    if support.execute("command -v zsh >/dev/null 2>&1") ~= 0 then
      pending("zsh is not installed (scripts/install-deps installs it)")
      return
    end
    local printed, status = support.capture("zsh -n " .. support.quote(ZSH_FILE))
    assert.equal(0, status, printed)
  end)
end)

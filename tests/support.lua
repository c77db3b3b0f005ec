--- What the specs share: shell words and commands, temporary folders and
-- files, child processes with a clean environment, and text checks; the same
-- on Lua 5.1, LuaJIT and 5.2+.  The simulator and its fixtures are in
-- tests/sim.lua.  Needs nothing of busted: tests/sim.lua, and so
-- tests/memcheck.lua and bench/, load it outside busted too.
local support = {}

------------------------------------------------------------ shell

--- s as one shell word.
function support.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs command (through the shell); returns its exit status.  os.execute
-- gives true/nil, "exit", code on 5.2+, and on 5.1 and LuaJIT the wait
-- status (code * 256).
function support.execute(command)
  local first, _, code = os.execute(command)
  if type(first) == "number" then return math.floor(first / 256) end
  return code
end

--- Runs command; raises unless it exits 0.
function support.shell(command)
  local status = support.execute(command)
  assert(status == 0, ("exit status %s from: %s"):format(tostring(status), command))
end

--- The first line command prints, or nil when it prints nothing.
local function first_line(command)
  local pipe = assert(io.popen(command))
  local line = pipe:read("*l")
  pipe:close()
  if line ~= "" then return line end
end

--- The path of program as the shell finds it, else fallback (else program).
function support.which(program, fallback)
  return first_line("command -v " .. support.quote(program)) or fallback or program
end

------------------------------------------------------------ files

--- Removes a file, or a folder and all it holds.
function support.remove(path)
  os.execute("rm -rf " .. support.quote(path))
end

--- A fresh private folder (mode 700); whoever makes it removes it.
function support.temp_dir()
  local name = os.tmpname()
  os.remove(name)
  support.shell("mkdir -m 700 " .. support.quote(name))
  return name
end

local test_dirs = {}

--- A fresh private folder for one test: remove_test_dirs takes it away
-- (`after_each(support.remove_test_dirs)` in the describe block).
function support.test_dir()
  local dir = support.temp_dir()
  test_dirs[#test_dirs + 1] = dir
  return dir
end

--- Removes every folder test_dir made.
function support.remove_test_dirs()
  for i = #test_dirs, 1, -1 do
    support.remove(test_dirs[i])
    test_dirs[i] = nil
  end
end

--- chmod mode (octal digits, a string) path.
function support.chmod(path, mode)
  support.shell("chmod " .. mode .. " " .. support.quote(path))
end

--- Writes text to path, making its folder first, with mode (default "600");
-- returns path.
function support.write_file(path, text, mode)
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then support.shell("mkdir -p " .. support.quote(dir)) end
  local file = assert(io.open(path, "wb"))
  file:write(text)
  file:close()
  support.chmod(path, mode or "600")
  return path
end

--- The whole of a file; nil and io.open's message when it cannot be opened.
function support.read_file(path)
  local file, message = io.open(path, "rb")
  if not file then return nil, message end
  local text = file:read("*a")
  file:close()
  return text
end

------------------------------------------------------------ child processes

--- The top of the tree, absolute: the folder above this file's tests/ (the
-- specs run from there, and so do their children).
support.ROOT = (function()
  local source = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = source:match("^(.*)/tests/[^/]*$") or "."
  if dir:sub(1, 1) == "/" then return dir end
  local cwd = first_line("pwd")
  return dir == "." and cwd or (cwd .. "/" .. dir)
end)()

--- The interpreter running the specs (ctest names it in PIPELINE_LUA), so a
-- Lua child loads the core built for it.
support.LUA = support.which(os.getenv("PIPELINE_LUA") or (jit and "luajit") or ("lua" .. _VERSION:match("%d+%.%d+")))

-- Set where the specs run under a sanitizer (scripts/check-memory,
-- scripts/check-threads): a child keeps them.
local SANITIZER_VARIABLES = { "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS" }

--- The shell command running argv (a list of words) with exactly the
-- variables of env (name -> value; false leaves the name out) and the
-- sanitizers' from this process: `env -i NAME=VALUE... WORD...`.
function support.command(argv, env)
  local all = {}
  for _, name in ipairs(SANITIZER_VARIABLES) do all[name] = os.getenv(name) end
  for name, value in pairs(env or {}) do all[name] = value or nil end
  local names = {}
  for name in pairs(all) do names[#names + 1] = name end
  table.sort(names)
  local words = { "env", "-i" }
  for _, name in ipairs(names) do words[#words + 1] = support.quote(name .. "=" .. all[name]) end
  for _, word in ipairs(argv) do words[#words + 1] = support.quote(word) end
  return table.concat(words, " ")
end

--- env and LUA_PATH, LUA_CPATH: this process's search paths, so a Lua child
-- loads the sources and the core the specs load.
function support.lua_environment(env)
  local all = { LUA_PATH = package.path, LUA_CPATH = package.cpath }
  for name, value in pairs(env or {}) do all[name] = value end
  return all
end

--- Runs command with its stderr joined to its stdout; returns what it
-- printed and its exit status.
function support.capture(command)
  local pipe = assert(io.popen("(" .. command .. ") 2>&1; echo \"exit:$?\""))
  local output = pipe:read("*a")
  pipe:close()
  local printed, status = output:match("^(.*)exit:(%d+)\n$")
  return printed, tonumber(status)
end

--- Runs the Lua chunk text (a file in a test_dir) on support.LUA with exactly
-- the variables of env and support.lua_environment's; returns what it printed
-- (stdout and stderr) and its exit status.
function support.run_lua(text, env)
  local script = support.write_file(support.test_dir() .. "/child.lua", text)
  return support.capture(support.command({ support.LUA, script }, support.lua_environment(env)))
end

------------------------------------------------------------ text

--- Asserts text is a string holding fragment (plain text).
--- The non-empty lines of text, in order.
function support.lines(text)
  local lines = {}
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

--- A stand-in for a file written to: write(...) keeps what it is given,
-- text() returns it all.
function support.buffer()
  local parts = {}
  return { write = function(self, ...)
    for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
    return self
  end, text = function() return table.concat(parts) end }
end

--- Every string of a value, deep (keys and values, cycles cut), joined:
-- what to search for a secret that must appear nowhere.
function support.all_text(value, seen)
  seen = seen or {}
  if type(value) ~= "table" then return tostring(value) end
  if seen[value] then return "" end
  seen[value] = true
  local parts = {}
  for k, v in pairs(value) do
    parts[#parts + 1] = support.all_text(k, seen) .. "=" .. support.all_text(v, seen)
  end
  return table.concat(parts, "\n")
end

function support.contains(text, fragment)
  assert(type(text) == "string", "expected a string, got " .. type(text))
  assert(text:find(fragment, 1, true), ("expected %q in %q"):format(fragment, text))
end

--- Asserts text is a string without fragment (plain text); what names the
-- text in the failure.
function support.lacks(text, fragment, what)
  assert(type(text) == "string", "expected a string, got " .. type(text))
  assert(not text:find(fragment, 1, true), ("%s holds %q: %q"):format(what or "text", fragment, text))
end

--- The tab-separated fields of a child's one line of output.
function support.fields(line)
  local fields = {}
  for field in (line:gsub("\n$", "") .. "\t"):gmatch("(.-)\t") do fields[#fields + 1] = field end
  return fields
end

return support

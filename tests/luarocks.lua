--- `luarocks test`: LuaRocks runs this file with the Lua it is configured for
-- (5.4, 5.3, 5.1 or LuaJIT).  It builds the module for that Lua into
-- build-test-<version>/ and runs every busted spec under ctest with that same
-- interpreter, as scripts/test does for Lua 5.4.  Needs CMake, busted and
-- python3 (the API simulator).  Arguments go to ctest: luarocks test -- -R core
local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function run(command)
  local first, _, code = os.execute(command)
  if type(first) == "number" then return first == 0, math.floor(first / 256) end -- 5.1, LuaJIT
  return first == true, code
end

local function output(command)
  local pipe = io.popen(command)
  local text = pipe and pipe:read("*a") or ""
  if pipe then pipe:close() end
  return (text:gsub("%s+$", ""))
end

local function fail(message)
  io.stderr:write("luarocks test: ", message, "\n")
  os.exit(1)
end

-- The checkout: the folder above this file's.
local root = (debug.getinfo(1, "S").source:match("^@(.*)tests/luarocks%.lua$") or "")
if root == "" then root = "." end
local lua = arg[-1]
local i = -1
while arg[i - 1] do i = i - 1; lua = arg[i] end -- the interpreter, before any of its options
if not lua:find("/", 1, true) then lua = output("command -v " .. quote(lua)) end
local version = _VERSION:match("%d+%.%d+")
local name = jit and "luajit" or version

if output("command -v busted") == "" then
  fail("busted not found: apt-get install lua-busted (Debian, Ubuntu) or luarocks install busted")
end
if output("command -v python3") == "" then
  fail("python3 not found (it runs the API simulator the specs use): apt-get install python3")
end

-- The headers LuaRocks builds with for this Lua (a LuaJIT setup names its
-- own), unless LUA_INCDIR says otherwise.
local incdir = os.getenv("LUA_INCDIR")
if not incdir or incdir == "" then
  incdir = output("luarocks --lua-version=" .. version .. " config variables.LUA_INCDIR 2>/dev/null")
end
local build = root .. "/build-test-" .. name
local configure = ("cmake -S %s -B %s -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUA_VERSION=%s -DLUA_EXECUTABLE=%s")
  :format(quote(root), quote(build), version, quote(lua))
if incdir ~= "" then configure = configure .. " -DLUA_INCDIR=" .. quote(incdir) end
print(("== %s: building into %s"):format(jit and jit.version or _VERSION, build))
io.stdout:flush() -- before the children's output
if not run(configure .. " >/dev/null") then fail("cmake could not configure the build (see above)") end
if not run("cmake --build " .. quote(build) .. " -j2 >/dev/null") then fail("the build failed (see above)") end

local ctest_args = {}
for _, a in ipairs(arg) do ctest_args[#ctest_args + 1] = quote(a) end
local ok, code = run(("cd %s && ctest --output-on-failure --no-tests=error -j2 %s")
  :format(quote(build), table.concat(ctest_args, " ")))
os.exit(ok and 0 or (code or 1))

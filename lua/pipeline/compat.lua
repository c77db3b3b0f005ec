--- What differs between Lua 5.1 (and LuaJIT), 5.2, 5.3 and 5.4, in one
-- place; the other modules use these names.
local compat = {}

compat.unpack = table.unpack or unpack
compat.pack = table.pack or function(...) return { n = select("#", ...), ... } end

--- A whole number as an integer where the language has integers.
compat.tointeger = math.tointeger or function(n)
  if type(n) == "number" and n == math.floor(n) then return n end
  return nil
end

--- Loads text as a chunk named name, as text only, with env as its globals.
-- On LuaJIT the chunk and the functions it defines stay interpreted: the
-- count hook that bounds their instructions does not fire in compiled code.
function compat.load(text, name, env)
  if setfenv and loadstring then -- Lua 5.1 and LuaJIT
    if text:byte(1) == 27 then return nil, "attempt to load a binary chunk" end
    local chunk, message = loadstring(text, name)
    if chunk then
      setfenv(chunk, env)
      if jit then jit.off(chunk, true) end
    end
    return chunk, message
  end
  return load(text, name, "t", env)
end

return compat

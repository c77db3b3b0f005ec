-- busted helper: makes every spec deterministic where it can be, and gives
-- the specs what differs between the Lua versions they run on.
math.randomseed(20261130)

-- with_close(make): on Lua 5.4, makes a value with make(), holds it in a
-- `<close>` variable until the end of a block and returns it (closed by then);
-- nil on versions without to-be-closed variables (their parser would reject
-- the syntax, so it is compiled from text).
with_close = _VERSION == "Lua 5.4" and assert(load([[
  local make = ...
  local escaped
  do
    local value <close> = make()
    escaped = value
  end
  return escaped
]])) or nil

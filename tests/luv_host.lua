--- A host on a luv loop for a client's started calls (client:use_loop): one
-- uv poll handle per socket the client asks to watch, one uv timer for its
-- timer, every call into the client guarded so an error does not escape into
-- luv.  tests/eventloop_spec.lua drives the client through it, misbehaving
-- hosts included (hooks), and bench/idle_cpu.lua measures what it costs.
-- Needs lua-luv; nothing of busted.
local uv = require("luv")

local luv_host = {}

--- Puts client's started calls on the default luv loop.  hooks.watch(fd,
-- what) and hooks.timer(seconds) run before the host's own handling; a hook
-- returning true skips it.  limit: seconds the loop may run (default 30).
-- Returns a table: advance(method, ...) calls a client method as the loop
-- does; go(extra_handles) runs the loop until no call is left (or limit),
-- closes the handles, and returns the table, which then says what happened:
-- errors (raised by the client's methods), stopped (fds told to stop),
-- timeouts (timer firings), watched (fds still watched), timer_armed,
-- gave_up (the limit ran out).
function luv_host.run(client, hooks, limit)
  hooks = hooks or {}
  local seen = { errors = {}, stopped = {}, timeouts = 0, watched = {} }
  local polls, timer = {}, uv.new_timer()
  local function advance(method, ...)
    local ok, left = pcall(method, client, ...)
    if not ok then
      seen.errors[#seen.errors + 1] = tostring(left)
      -- a job's error ends every call: nothing is left to wait for
      if not client._runner or client._runner:is_closed() then uv.stop() end
    elseif left == 0 then
      uv.stop()
    end
  end
  client:use_loop({
    watch = function(fd, what)
      if hooks.watch and hooks.watch(fd, what) then return end
      seen.watched[fd] = what
      if not what then
        seen.stopped[#seen.stopped + 1] = fd
        if polls[fd] then polls[fd]:stop() polls[fd]:close() polls[fd] = nil end
        return
      end
      polls[fd] = polls[fd] or uv.new_socket_poll(fd)
      polls[fd]:start(what, function(err, events)
        -- a poll error or a hang-up ("d") alone: let libcurl find out which
        local ready = (not err and events) and ((events:find("r") and "r" or "") .. (events:find("w") and "w" or "")) or ""
        advance(client.socket_ready, fd, ready ~= "" and ready or "rw")
      end)
    end,
    timer = function(seconds)
      if hooks.timer and hooks.timer(seconds) then return end
      seen.timer_armed = seconds ~= nil
      timer:stop()
      if seconds then
        timer:start(math.ceil(seconds * 1000), 0, function()
          seen.timeouts = seen.timeouts + 1
          advance(client.timeout)
        end)
      end
    end,
  })
  seen.advance = advance
  seen.go = function(extra_handles)
    local give_up = uv.new_timer()
    give_up:start((limit or 30) * 1000, 0, function() seen.gave_up = true uv.stop() end)
    uv.run("default")
    for _, handle in ipairs({ give_up, timer }) do handle:stop() handle:close() end
    for _, handle in ipairs(extra_handles or {}) do handle:stop() handle:close() end
    for fd, poll in pairs(polls) do poll:stop() poll:close() polls[fd] = nil end
    uv.run("nowait") -- the closes
    for fd, what in pairs(seen.watched) do if not what then seen.watched[fd] = nil end end
    return seen
  end
  return seen
end

return luv_host

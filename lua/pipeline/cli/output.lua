--- What the command line prints: JSON documents, text made safe for a
-- terminal, the shapes an answer must have to be shown, and the tables and
-- run summaries people read.
local cjson = require("cjson.safe")
local errors = require("pipeline.errors")
local lifecycle = require("pipeline.lifecycle")

local TERMINAL = lifecycle.TERMINAL

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

-- Text from the service, made safe for a terminal: no control characters.
local function clean(value)
  if value == nil or value == cjson.null or type(value) == "table" then return "" end
  return (tostring(value):gsub("%c", " "))
end

-- Text as the inside of a JSON string.
local function json_text(text)
  return (cjson.encode(text):sub(2, -2):gsub("\\/", "/"))
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

-- What the command line's other parts use.
return { encode = encode, clean = clean, json_text = json_text, RUN_SHAPE = RUN_SHAPE,
  PIPELINE_SHAPE = PIPELINE_SHAPE, misfit = misfit, misshapen = misshapen, duration = duration,
  epoch_ms = epoch_ms, when = when, took = took, render_table = render_table, run_id_of = run_id_of,
  render_run = render_run, failed_jobs = failed_jobs }

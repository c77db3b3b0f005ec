--- Time stamps the service and IAM send, as seconds since the epoch (UTC),
-- without os.time's local-time interpretation.
local clock = {}

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
  Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

--- Seconds since 1970-01-01T00:00:00Z of a UTC civil time (proleptic
-- Gregorian calendar; H. Hinnant's days_from_civil).
function clock.epoch(year, month, day, hour, min, sec)
  local y = month <= 2 and year - 1 or year
  local floor = math.floor
  local era = floor((y >= 0 and y or y - 399) / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (month + (month > 2 and -3 or 9)) + 2) / 5) + day - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + (hour or 0) * 3600 + (min or 0) * 60 + (sec or 0)
end

--- An HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT") as epoch seconds, or nil.
function clock.http_date(text)
  local d, mon, y, h, mi, s = tostring(text):match("^%s*%a+, (%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT%s*$")
  if not (d and MONTHS[mon]) then return nil end
  return clock.epoch(tonumber(y), MONTHS[mon], tonumber(d), tonumber(h), tonumber(mi), tonumber(s))
end

--- An ISO 8601 UTC time ("2020-01-04T09:05:22.701000Z") as epoch seconds, or nil.
function clock.iso8601(text)
  local y, mo, d, h, mi, s, frac = tostring(text):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(%.?%d*)Z$")
  if not y then return nil end
  local seconds = clock.epoch(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s))
  if frac ~= "" and frac ~= "." then seconds = seconds + tonumber("0" .. frac) end
  return seconds
end

return clock

--- Time stamps the service and IAM send, as seconds since the epoch (UTC),
-- without os.time's local-time interpretation.
local dates = {}

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
  Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

--- Seconds since 1970-01-01T00:00:00Z of a UTC civil time (proleptic
-- Gregorian calendar; H. Hinnant's days_from_civil).
function dates.epoch(year, month, day, hour, min, sec)
  local y = month <= 2 and year - 1 or year
  local floor = math.floor
  local era = floor((y >= 0 and y or y - 399) / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (month + (month > 2 and -3 or 9)) + 2) / 5) + day - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + (hour or 0) * 3600 + (min or 0) * 60 + (sec or 0)
end

local DAYS = { Mon = true, Tue = true, Wed = true, Thu = true, Fri = true, Sat = true, Sun = true }
local FULL_DAYS = { Monday = true, Tuesday = true, Wednesday = true, Thursday = true, Friday = true,
  Saturday = true, Sunday = true }

local function leap(year)
  return year % 4 == 0 and (year % 100 ~= 0 or year % 400 == 0)
end
local DAYS_IN_MONTH = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- epoch() of a civil time whose fields are in range (a second of 60 is a
-- leap second), else nil: "31 Feb" or "25:00" is no time at all.
local function valid_time(year, month, day, hour, min, sec)
  local days = DAYS_IN_MONTH[month]
  if not days then return nil end
  if month == 2 and leap(year) then days = 29 end
  if day < 1 or day > days or hour > 23 or min > 59 or sec > 60 then return nil end
  return dates.epoch(year, month, day, hour, min, sec)
end

--- An HTTP date as epoch seconds, or nil.  RFC 9110 (section 5.6.7) has a
-- recipient accept all three forms a server may send, e.g. in Retry-After:
-- IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", the obsolete RFC 850 form
-- "Sunday, 06-Nov-94 08:49:37 GMT" (a two-digit year more than 50 years
-- ahead of now is the century before) and asctime's "Sun Nov  6 08:49:37 1994".
-- now (epoch seconds, default os.time()) only places a two-digit year.
function dates.http_date(text, now)
  text = tostring(text):match("^%s*(.-)%s*$")
  local wday, d, mon, y, h, mi, s = text:match("^(%a+), (%d%d?) (%a+) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not wday then
    wday, mon, d, h, mi, s, y = text:match("^(%a+) (%a+) ([ %d]%d) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  end
  if not wday then
    local day_name, yy
    day_name, d, mon, yy, h, mi, s = text:match("^(%a+), (%d%d)%-(%a+)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
    if not FULL_DAYS[day_name] then return nil end
    local this_year = tonumber(os.date("!%Y", now or os.time()))
    y = this_year - this_year % 100 + tonumber(yy)
    if y > this_year + 50 then y = y - 100 end
    wday = day_name:sub(1, 3)
  end
  if not (DAYS[wday] and MONTHS[mon]) then return nil end
  return valid_time(tonumber(y), MONTHS[mon], tonumber(d), tonumber(h), tonumber(mi), tonumber(s))
end

--- An ISO 8601 UTC time ("2020-01-04T09:05:22.701000Z") as epoch seconds, or nil.
function dates.iso8601(text)
  local y, mo, d, h, mi, s, frac = tostring(text):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(%.?%d*)Z$")
  if not y then return nil end
  local seconds = valid_time(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s))
  if not seconds then return nil end
  if frac ~= "" and frac ~= "." then seconds = seconds + tonumber("0" .. frac) end
  return seconds
end

return dates

-- Specs for lua/pipeline/dates.lua: the dates the service, IAM and HTTP
-- send, as epoch seconds (UTC).  Each table is rows of input -> expected
-- result, run by one loop, one test a row.  The expected epoch seconds were
-- computed apart from this code (Python's calendar.timegm).

local dates = require "pipeline.dates"

-- 2026-05-28T00:00:00Z: the "now" that places an RFC 850 two-digit year
local NOW = 1779926400

-- text -> epoch seconds (nil: not a date)
local HTTP_DATES = {
  -- IMF-fixdate, the form servers send today
  { "Sun, 06 Nov 1994 08:49:37 GMT", 784111777 },
  { "Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 },
  { "Thu, 29 Feb 2024 23:59:59 GMT", 1709251199 },
  { "Thu, 01 Jan 1970 00:00:00 GMT", 0 },
  { "Sat, 31 Dec 2016 23:59:60 GMT", 1483228800 }, -- a leap second
  { "Tue, 19 Jan 2038 03:14:08 GMT", 2147483648 }, -- past 32-bit time_t
  { "  Sun, 06 Nov 1994 08:49:37 GMT  ", 784111777 }, -- white space around the value
  { "Sun, 6 Nov 1994 08:49:37 GMT", 784111777 }, -- one-digit day, as some servers send it
  -- RFC 850, obsolete: full day name, two-digit year
  { "Sunday, 06-Nov-94 08:49:37 GMT", 784111777 },
  { "Wednesday, 01-Jun-50 00:00:00 GMT", 2537654400 }, -- 24 years ahead: this century
  { "Wednesday, 01-Jan-76 00:00:00 GMT", 3345062400 }, -- 50 years ahead: still this century
  { "Saturday, 01-Jan-77 00:00:00 GMT", 220924800 }, -- 51 years ahead: the century before
  -- asctime, obsolete: day padded with a space, year last, no zone
  { "Sun Nov  6 08:49:37 1994", 784111777 },
  { "Wed Oct 21 07:28:00 2015", 1445412480 },
  -- not dates
  { "", nil },
  { "120", nil },
  { "Sun, 06 Nov 1994 08:49:37", nil }, -- no zone
  { "Sun, 06 Nov 1994 08:49:37 UTC", nil }, -- the only zone is GMT
  { "Sun, 06 Nov 1994 08:49:37 +0000", nil },
  { "Sun, 06 Foo 1994 08:49:37 GMT", nil }, -- no such month
  { "Xyz, 06 Nov 1994 08:49:37 GMT", nil }, -- no such day
  { "Sun, 32 Oct 1994 08:49:37 GMT", nil }, -- day out of range
  { "Fri, 29 Feb 2023 00:00:00 GMT", nil }, -- 2023 is not a leap year
  { "Thu, 31 Apr 2015 00:00:00 GMT", nil },
  { "Sun, 06 Nov 1994 24:00:00 GMT", nil },
  { "Sun, 06 Nov 1994 08:60:00 GMT", nil },
  { "Sun, 06 Nov 1994 08:49:61 GMT", nil },
  { "Sun, 06 Nov 94 08:49:37 GMT", nil }, -- IMF-fixdate has four digits
  { "Sun, 06-Nov-94 08:49:37 GMT", nil }, -- RFC 850 has the full day name
  { "Sunday, 06-Nov-1994 08:49:37 GMT", nil },
  { "Sun Nov 6 08:49:37 1994", nil }, -- asctime pads the day to two places
  { "2015-10-21T07:28:00Z", nil }, -- ISO 8601 is not an HTTP date
  { "Sun, 06 Nov 1994 08:49:37 GMT; x", nil },
}

-- text -> epoch seconds (nil: not a date), as IAM gives token.expires_at
local ISO_DATES = {
  { "2020-01-04T09:05:22.701000Z", 1578128722.701 },
  { "2020-01-04T09:05:22Z", 1578128722 },
  { "2020-01-04T09:05:22.5Z", 1578128722.5 },
  { "2000-01-01T00:00:00.000Z", 946684800 },
  { "2100-03-01T00:00:00Z", 4107542400 }, -- 2100 is not a leap year: Feb has 28 days
  { "2024-02-29T23:59:59Z", 1709251199 },
  { "2020-01-04T09:05:22", nil }, -- no zone
  { "2020-01-04T09:05:22+08:00", nil }, -- IAM sends UTC only
  { "2020-01-04 09:05:22Z", nil },
  { "2020-1-4T09:05:22Z", nil },
  { "2020-13-01T00:00:00Z", nil },
  { "2023-02-29T00:00:00Z", nil },
  { "2100-02-29T00:00:00Z", nil },
  { "2020-01-00T00:00:00Z", nil },
  { "2020-01-04T25:00:00Z", nil },
  { "", nil },
  { "Sun, 06 Nov 1994 08:49:37 GMT", nil },
}

-- year, month, day, hour, min, sec -> epoch seconds
local CIVIL = {
  { { 1970, 1, 1, 0, 0, 0 }, 0 },
  { { 1994, 11, 6, 8, 49, 37 }, 784111777 },
  { { 2000, 1, 1 }, 946684800 }, -- hour, min and sec default to 0
  { { 1995, 12, 31, 23, 59, 59 }, 820454399 },
  { { 2038, 1, 19, 3, 14, 8 }, 2147483648 },
  { { 1969, 12, 31, 23, 59, 59 }, -1 },
}

local function shown(value)
  return value == nil and "nil" or ("%q"):format(value)
end

describe("dates.http_date", function()
  for _, row in ipairs(HTTP_DATES) do
    local text, expected = row[1], row[2]
    it(("%s -> %s"):format(shown(text), tostring(expected)), function()
      assert.are.equal(expected, dates.http_date(text, NOW))
    end)
  end

  it("places a two-digit year from now, by default the current time", function()
    local this_year = tonumber(os.date("!%Y"))
    local yy = ("%02d"):format((this_year + 1) % 100)
    local at = dates.http_date("Monday, 01-Jan-" .. yy .. " 00:00:00 GMT")
    assert.are.equal(this_year + 1, tonumber(os.date("!%Y", at)))
  end)
end)

describe("dates.iso8601", function()
  for _, row in ipairs(ISO_DATES) do
    local text, expected = row[1], row[2]
    it(("%s -> %s"):format(shown(text), tostring(expected)), function()
      local got = dates.iso8601(text)
      if expected == nil then
        assert.is_nil(got)
      else
        assert.is_number(got)
        assert.is_true(math.abs(got - expected) < 1e-6, ("got %s"):format(tostring(got)))
      end
    end)
  end
end)

describe("dates.epoch", function()
  for _, row in ipairs(CIVIL) do
    local fields, expected = row[1], row[2]
    it(("%s -> %d"):format(table.concat(fields, " "), expected), function()
      assert.are.equal(expected, dates.epoch((table.unpack or unpack)(fields)))
    end)
  end
end)

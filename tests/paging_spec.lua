-- client.pages, the one iterator over a paged list (each_run, each_pipeline
-- and the command line's lists), driven by a fake fetch: no server.  Each
-- case gives the list the server holds, the query, page size and most; the
-- pages asked for and the items yielded are checked.
local client = require("pipeline.client")

-- A fetch over items (total: what the server says, default #items) that
-- records each page asked for as "offset/limit".
local function server(items, total)
  local asked = {}
  local function fetch(page)
    asked[#asked + 1] = page.offset .. "/" .. page.limit
    local got = {}
    for i = page.offset + 1, math.min(page.offset + page.limit, #items) do got[#got + 1] = items[i] end
    return got, total or #items
  end
  return fetch, asked
end

local function numbered(count)
  local items = {}
  for i = 1, count do items[i] = { id = ("%032d"):format(i) } end
  return items
end

-- Every item the iterator yields until it ends (or a failure: false, ...).
local function drain(next_item)
  local items, failure = {}, nil
  for item, message, code in next_item do
    if item == false then
      failure = { message = message, code = code }
    else
      items[#items + 1] = item
    end
  end
  return items, failure
end

describe("client.pages", function()
  for _, case in ipairs({
    { what = "an empty list: one page", count = 0, size = 50, asked = { "0/50" }, yielded = 0 },
    { what = "a short page ends it", count = 7, size = 50, asked = { "0/50" }, yielded = 7 },
    { what = "full pages until the total", count = 100, size = 50, asked = { "0/50", "50/50" }, yielded = 100 },
    { what = "a last short page", count = 120, size = 50, asked = { "0/50", "50/50", "100/50" }, yielded = 120 },
    { what = "most cuts the last page's limit", count = 300, size = 100, most = 250,
      asked = { "0/100", "100/100", "200/50" }, yielded = 250 },
    { what = "most below a page", count = 300, size = 100, most = 10, asked = { "0/10" }, yielded = 10 },
    { what = "query.limit is the page size", count = 40, size = 50, query = { limit = 15 },
      asked = { "0/15", "15/15", "30/15" }, yielded = 40 },
    { what = "query.offset is where it starts", count = 40, size = 50, query = { offset = 30 },
      asked = { "30/50" }, yielded = 10 },
  }) do
    it(case.what, function()
      local items = numbered(case.count)
      local fetch, asked = server(items)
      local next_item, listing = client.pages("list", fetch, case.query, case.size, case.most)
      local got, failure = drain(next_item)
      assert.is_nil(failure)
      assert.same(case.asked, asked)
      assert.equal(case.yielded, #got)
      local first = case.query and case.query.offset or 0
      for i, item in ipairs(got) do assert.equal(items[first + i], item) end
      assert.equal(case.count, listing.total)
    end)
  end

  it("stops when the total is reached, even if the server would send more", function()
    local fetch, asked = server(numbered(100), 50)
    local got = drain(client.pages("list", fetch, nil, 50))
    assert.equal(50, #got)
    assert.same({ "0/50" }, asked)
  end)

  it("yields a failure once, as false, message, code, info, and then ends", function()
    local calls = 0
    local next_item = client.pages("list", function()
      calls = calls + 1
      return nil, "list: network error", "network", {}
    end, nil, 50)
    local first, message, code, info = next_item()
    assert.equal(false, first)
    assert.equal("list: network error", message)
    assert.equal("network", code)
    assert.same({}, info)
    assert.is_nil(next_item())
    assert.equal(1, calls)
  end)

  it("stops, as a protocol failure, at a page that repeats the one before", function()
    local page = numbered(50)
    local next_item = client.pages("runs", function() return page, 1e9 end, nil, 50)
    local got, failure = drain(next_item)
    assert.equal(50, #got)
    assert.equal("protocol", failure.code)
    assert.matches("^runs: .*same page twice", failure.message)
  end)

  it("stops, as a protocol failure, after client.MAX_PAGES pages", function()
    local saved = client.MAX_PAGES
    client.MAX_PAGES = 3
    local fetch, asked = server(numbered(1000), 1e9)
    local ok, got, failure = pcall(drain, client.pages("pipelines", fetch, nil, 10))
    client.MAX_PAGES = saved
    assert.is_true(ok, tostring(got))
    assert.equal(30, #got)
    assert.equal(4, #asked)
    assert.equal("protocol", failure.code)
    assert.matches("more than 3 pages", failure.message)
  end)
end)

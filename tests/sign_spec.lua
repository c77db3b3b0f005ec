-- Specs for core.sign, the SDK-HMAC-SHA256 signer (src/sign.c): its date,
-- its argument errors, and what the signature depends on.  The canonical
-- requests and signatures, against the published vectors and the official
-- SDKs, are rows of tests/sign_vectors_spec.lua.

local core = require "pipeline.core"

local function signature(auth)
  return (auth:match("Signature=(%x+)$"))
end

local function signed_headers(auth)
  return (auth:match("SignedHeaders=([^,]+),"))
end

describe("core.sign", function()

  describe("date", function()
    it("defaults to the current UTC time", function()
      local before = os.time()
      local h = core.sign("GET", "https://example.com/p", nil, nil, "AK", "SK")
      local y, mo, d, hh, mi, ss = h["X-Sdk-Date"]:match("^(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)Z$")
      assert.truthy(y)
      local now = os.date("!*t", before)
      assert.are.equal(string.format("%04d%02d%02d", now.year, now.month, now.day), y .. mo .. d)
      assert.truthy(tonumber(hh) and tonumber(mi) and tonumber(ss))
    end)

    it("rejects a malformed date", function()
      for _, bad in ipairs({ "2024-01-02T03:04:05Z", "20240102T030405", "20241302T030405Z",
                              "20230229T030405Z", "20240102T240405Z", "20240102T036005Z", "" }) do
        assert.has_error(function()
          core.sign("GET", "https://example.com/p", nil, nil, "AK", "SK", bad)
        end)
      end
      assert.has_no.errors(function()
        core.sign("GET", "https://example.com/p", nil, nil, "AK", "SK", "20240229T235959Z")
      end)
    end)
  end)

  describe("errors", function()
    local SK = "VerySecretKeyValue123"
    local function err_of(...)
      local ok, e = pcall(core.sign, ...)
      assert.is_false(ok)
      return tostring(e)
    end

    it("rejects CR, LF and NUL in a header value without showing the SK or the value", function()
      for _, v in ipairs({ "a\r\nInjected: 1", "a\nb", "a\0b", "a\rb" }) do
        local e = err_of("GET", "https://example.com/p", { ["X-Project-Id"] = v }, nil, "AK", SK)
        assert.truthy(e:find("bad argument #3", 1, true), e)
        assert.truthy(e:find("X-Project-Id", 1, true), e)
        assert.is_nil(e:find(SK, 1, true))
        assert.is_nil(e:find("Injected", 1, true))
      end
    end)

    it("rejects a missing or empty AK", function()
      assert.truthy(err_of("GET", "https://example.com/p", nil, nil, nil, SK):find("bad argument #5", 1, true))
      assert.truthy(err_of("GET", "https://example.com/p", nil, nil, "", SK):find("bad argument #5", 1, true))
      assert.truthy(err_of("GET", "https://example.com/p", nil, nil, "A K", SK):find("bad argument #5", 1, true))
    end)

    it("rejects a missing or empty SK without echoing it", function()
      assert.truthy(err_of("GET", "https://example.com/p", nil, nil, "AK", nil):find("bad argument #6", 1, true))
      assert.truthy(err_of("GET", "https://example.com/p", nil, nil, "AK", ""):find("bad argument #6", 1, true))
      assert.truthy(err_of("GET", "https://example.com/p", nil, nil, "AK", 12345):find("bad argument #6", 1, true))
    end)

    it("rejects bad header tables", function()
      local function e3(headers)
        local e = err_of("GET", "https://example.com/p", headers, nil, "AK", SK)
        assert.truthy(e:find("bad argument #3", 1, true), e)
        assert.is_nil(e:find(SK, 1, true))
        return e
      end
      e3({ ["X-Num"] = 1 })
      e3({ ["X-Bool"] = true })
      e3({ [1] = "value" })
      e3({ ["Bad Name"] = "v" })
      e3({ ["Bad:Name"] = "v" })
      e3({ [""] = "v" })
      e3({ ["X-Sdk-Date"] = "20240102T030405Z" })
      e3({ ["authorization"] = "x" })
      e3({ ["X-Dup"] = "1", ["x-dup"] = "2" })
      e3({ ["Host"] = "a", ["host"] = "b" })
      e3({ ["Host"] = "  " })
      e3({ ["X-Sdk-Content-Sha256"] = "" })
      e3("Content-Type: x")
    end)

    it("rejects bad method, URL and body", function()
      assert.truthy(err_of(nil, "https://example.com/p", nil, nil, "AK", SK):find("bad argument #1", 1, true))
      assert.truthy(err_of("", "https://example.com/p", nil, nil, "AK", SK):find("bad argument #1", 1, true))
      assert.truthy(err_of("G T", "https://example.com/p", nil, nil, "AK", SK):find("bad argument #1", 1, true))
      for _, url in ipairs({ "example.com/p", "ftp://example.com/p", "https:///p", "https://u:p@example.com/p",
                             "https://example.com:99999/p", "https://example.com:8x/p", "https://example.com/a b",
                             "https://example.com/a\nb", "https://[::1/p" }) do
        assert.truthy(err_of("GET", url, nil, nil, "AK", SK):find("bad argument #2", 1, true), url)
      end
      assert.truthy(err_of("POST", "https://example.com/p", nil, 42, "AK", SK):find("bad argument #4", 1, true))
    end)
  end)

  describe("the signature depends on", function()
    local base = {
      method = "POST",
      url = "https://example.com/v5/p/api/run?a=1",
      headers = { ["Content-Type"] = "application/json", ["X-Project-Id"] = "p" },
      body = '{"x":1}',
      ak = "AK",
      sk = "SK",
      date = "20240102T030405Z",
    }
    local function sign_with(changes)
      local a = {}
      for k, v in pairs(base) do a[k] = v end
      for k, v in pairs(changes or {}) do a[k] = v end
      return signature(core.sign(a.method, a.url, a.headers, a.body, a.ak, a.sk, a.date).Authorization)
    end
    local reference = sign_with()

    it("is deterministic", function()
      assert.are.equal(reference, sign_with())
      assert.are.equal(64, #reference)
    end)

    it("the SK", function()
      assert.are_not.equal(reference, sign_with({ sk = "SK2" }))
    end)

    it("the date", function()
      assert.are_not.equal(reference, sign_with({ date = "20240102T030406Z" }))
    end)

    it("a signed header value", function()
      assert.are_not.equal(reference, sign_with({
        headers = { ["Content-Type"] = "application/json", ["X-Project-Id"] = "q" } }))
    end)

    it("the body", function()
      assert.are_not.equal(reference, sign_with({ body = '{"x":2}' }))
      assert.are_not.equal(reference, sign_with({ body = "" }))
    end)

    it("the query", function()
      assert.are_not.equal(reference, sign_with({ url = "https://example.com/v5/p/api/run?a=2" }))
      assert.are_not.equal(reference, sign_with({ url = "https://example.com/v5/p/api/run" }))
    end)

    it("the method and the path", function()
      assert.are_not.equal(reference, sign_with({ method = "PUT" }))
      assert.are_not.equal(reference, sign_with({ url = "https://example.com/v5/p/api/stop?a=1" }))
    end)

    it("but not the order of query parameters or header name case", function()
      local a = "https://example.com/v5/p/api/run?b=2&a=1"
      local b = "https://example.com/v5/p/api/run?a=1&b=2"
      assert.are.equal(sign_with({ url = a }), sign_with({ url = b }))
      assert.are.equal(reference, sign_with({
        headers = { ["content-type"] = "application/json", ["x-project-id"] = "p" } }))
    end)

    it("and the AK only through the Authorization header", function()
      local h = core.sign(base.method, base.url, base.headers, base.body, "OTHERAK", base.sk, base.date)
      assert.are.equal(reference, signature(h.Authorization))
      assert.are.equal("content-type;host;x-project-id;x-sdk-date", signed_headers(h.Authorization))
      assert.truthy(h.Authorization:find("Access=OTHERAK,", 1, true))
    end)
  end)
end)

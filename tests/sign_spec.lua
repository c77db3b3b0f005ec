-- Specs for core.sign, the SDK-HMAC-SHA256 signer (src/sign.c), and its debug
-- twin core.sign_canonical (same arguments; returns the canonical request,
-- the string to sign and the signed header list).

local core = require "pipeline.core"

local function signature(auth)
  return (auth:match("Signature=(%x+)$"))
end

local function signed_headers(auth)
  return (auth:match("SignedHeaders=([^,]+),"))
end

-- line n (1-based) of the canonical request
local function canonical_line(canonical, n)
  local i = 0
  for line in (canonical .. "\n"):gmatch("(.-)\n") do
    i = i + 1
    if i == n then return line end
  end
end

describe("core.sign", function()

  describe("published vectors", function()
    it("matches the Huawei signing guide example", function()
      local h = core.sign("GET",
        "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
          .. "?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0",
        { ["Content-Type"] = "application/json", ["Host"] = "service.region.example.com" },
        nil, "QTWAOYTTINDUT2QVKYUC", "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc", "20191115T033655Z")
      assert.are.equal("20191115T033655Z", h["X-Sdk-Date"])
      assert.are.equal("SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, "
        .. "SignedHeaders=content-type;host;x-sdk-date, "
        .. "Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe", h.Authorization)
    end)

    it("matches the Python SDK test vector (host derived from the URL)", function()
      local h = core.sign("GET", "https://service.endpoint.myhuaweicloud.com/resources?size=1", {},
        nil, "AccessKey", "SecretKey", "20200608T023900Z")
      assert.are.equal("SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, "
        .. "Signature=cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842", h.Authorization)
    end)

    it("matches the SDKs' canonical query vector", function()
      -- params limit=1, enable=true, test="一 (&=?!#%.*)", path="/tmp/123", multi=1,2,3,
      -- sent in a caller's order and percent-encoded as a caller would send them
      local url = "https://example.com/v1/items?limit=1&enable=true"
        .. "&test=%E4%B8%80%20(%26%3D%3F!%23%25.*)&path=%2Ftmp%2F123&multi=3&multi=1&multi=2"
      local canonical = core.sign_canonical("GET", url, nil, nil, "AK", "SK", "20200608T023900Z")
      assert.are.equal("enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123"
        .. "&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29", canonical_line(canonical, 3))
    end)
  end)

  -- Expected values below came from the official Node.js SDK signer,
  -- @huaweicloud/huaweicloud-sdk-core 3.1.211, AKSKSigner.sign(request, credential),
  -- with X-Sdk-Date 20240102T030405Z, AK TESTAK0123456789,
  -- SK test/SK+secret=0123456789abcdef.  The SDK takes the path raw and the query
  -- as a name -> value(s) object; here the same request is given as the URL a
  -- caller sends (percent-encoded, parameters in any order).
  describe("agrees with the official Node.js SDK (3.1.211)", function()
    local AK, SK, DATE = "TESTAK0123456789", "test/SK+secret=0123456789abcdef", "20240102T030405Z"
    local P = "0123456789abcdef0123456789abcdef"
    local PL = "fedcba9876543210fedcba9876543210"
    local R = "aaaabbbbccccddddeeeeffff00001111"
    local PIPELINE = "/v5/" .. P .. "/api/pipelines/" .. PL

    local function check(expected_signed, expected_sig, ...)
      local h = core.sign(...)
      assert.are.equal(DATE, h["X-Sdk-Date"])
      assert.are.equal("SDK-HMAC-SHA256 Access=" .. AK .. ", SignedHeaders=" .. expected_signed
        .. ", Signature=" .. expected_sig, h.Authorization)
    end

    it("signs a retry PUT without body to 127.0.0.1 on a port", function()
      check("content-type;host;x-project-id;x-sdk-date",
        "2b183821e6d88e70017cb3e9347b68e88e4470981b1a1c27db4d50aab3506994",
        "PUT", "http://127.0.0.1:8081" .. PIPELINE .. "/pipeline-runs/" .. R .. "/retry",
        { ["Content-Type"] = "application/json", ["X-Project-Id"] = P }, nil, AK, SK, DATE)
    end)

    it("signs a POST with a JSON body and a security token", function()
      check("content-type;host;x-project-id;x-sdk-date;x-security-token",
        "4cf6a6af2ef3571d4eca274b217e652e887901bae07428ce815bbbcbccacde11",
        "POST", "https://cloudpipeline-ext.cn-north-4.myhuaweicloud.com" .. PIPELINE .. "/run",
        { ["Content-Type"] = "application/json;charset=UTF-8", ["X-Project-Id"] = P,
          ["X-Security-Token"] = "tok/en+with=chars" },
        '{"description":"run é 一","variables":[{"name":"a","value":"1 2"}]}', AK, SK, DATE)
    end)

    it("signs a query with repeated names, UTF-8, empty values, on a non-default port", function()
      check("host;x-project-id;x-sdk-date",
        "30d1efefd8ed51a71511cf9f36434b05c3edef5fe03276a7cf896769b65eedb6",
        "GET", "https://cloudpipeline-ext.cn-north-4.myhuaweicloud.com:8443" .. PIPELINE
          .. "/pipeline-runs/detail?pipeline_run_id=" .. R
          .. "&multi=b&multi=a&name=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29&multi=c&empty="
          .. "&a.b~c=x%2By%2Fz&multi=a%20b",
        { ["X-Project-Id"] = P }, nil, AK, SK, DATE)
    end)

    it("signs a path with characters that need encoding, encoded or not", function()
      local sig = "e0e2025f8915d55905a5e7bf80d743d3738cfbdf006ba10a0357cae93c726229"
      local headers = { ["Content-Type"] = "application/json" }
      check("content-type;host;x-sdk-date", sig, "DELETE",
        "https://example.com/v5/" .. P .. "/api/x%3Ay%40z%21%281%29%2A%2C%3B%3D%2B%24/%C3%BC%E4%B8%80/end",
        headers, nil, AK, SK, DATE)
      check("content-type;host;x-sdk-date", sig, "DELETE",
        "https://example.com/v5/" .. P .. "/api/x:y@z!(1)*,;=+$/ü一/end", headers, nil, AK, SK, DATE)
    end)

    it("signs X-Sdk-Content-Sha256 in place of the body hash", function()
      check("content-type;host;x-sdk-content-sha256;x-sdk-date",
        "4b3baae80248b241755e24ebc49541ecc2b75d92bcdd9f88264b0e06f8fd40b6",
        "POST", "https://example.com/upload",
        { ["Content-Type"] = "application/octet-stream", ["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD" },
        "any body at all", AK, SK, DATE)
    end)

    it("signs a Host header given by the caller instead of the URL's host", function()
      check("host;x-project-id;x-sdk-date",
        "444eda252fc7f59c60fdb4810e85197b64394d8eb83fe7d5eef5e2e6ad5ad19e",
        "GET", "http://10.0.0.1:8080" .. "/v5/" .. P .. "/api/pipelines/list?limit=10&offset=0",
        { host = "cloudpipeline-ext.cn-north-4.myhuaweicloud.com", ["X-Project-Id"] = P }, nil, AK, SK, DATE)
    end)
  end)

  describe("canonical form", function()
    local DATE = "20240102T030405Z"
    local function canon(method, url, headers, body)
      return core.sign_canonical(method, url, headers, body, "AK", "SK", DATE)
    end

    it("upper-cases the method and appends a trailing slash to the path", function()
      local c = canon("put", "https://example.com/v1/a/b")
      assert.are.equal("PUT", canonical_line(c, 1))
      assert.are.equal("/v1/a/b/", canonical_line(c, 2))
      assert.are.equal("/v1/a/b/", canonical_line(canon("GET", "https://example.com/v1/a/b/"), 2))
      assert.are.equal("/", canonical_line(canon("GET", "https://example.com"), 2))
      assert.are.equal("/", canonical_line(canon("GET", "https://example.com?x=1"), 2))
    end)

    it("decodes then re-encodes the path byte by byte", function()
      assert.are.equal("/a%20b/%C3%A9/~-_./", canonical_line(canon("GET", "https://example.com/a%20b/%c3%a9/~-_."), 2))
      -- a '%' without two hex digits stands for itself
      assert.are.equal("/50%25/x%25zz/", canonical_line(canon("GET", "https://example.com/50%25/x%zz"), 2))
      -- an encoded '/' is a separator once decoded, as in the Python signers
      assert.are.equal("/a/b/", canonical_line(canon("GET", "https://example.com/a%2Fb"), 2))
    end)

    it("ignores a fragment", function()
      local c = canon("GET", "https://example.com/p?a=1#frag?b=2")
      assert.are.equal("/p/", canonical_line(c, 2))
      assert.are.equal("a=1", canonical_line(c, 3))
    end)

    it("gives an empty canonical query when there is none", function()
      assert.are.equal("", canonical_line(canon("GET", "https://example.com/p"), 3))
      assert.are.equal("", canonical_line(canon("GET", "https://example.com/p?"), 3))
    end)

    it("treats a name without '=' as an empty value and drops empty names", function()
      assert.are.equal("a=&b=&c=1", canonical_line(canon("GET", "https://example.com/p?c=1&b=&a&&=x"), 3))
    end)

    it("keeps '+' as a literal plus and splits on the first '='", function()
      assert.are.equal("a=b%2Bc%3Dd", canonical_line(canon("GET", "https://example.com/p?a=b+c=d"), 3))
    end)

    it("sorts by name, then value, by bytes", function()
      assert.are.equal("a=1&a=1&a=10&a=2&ab=0&b=",
        canonical_line(canon("GET", "https://example.com/p?b&ab=0&a=2&a=10&a=1&a=1"), 3))
    end)

    it("lower-cases header names, trims values, sorts them", function()
      local c, _, signed = canon("GET", "https://example.com/p",
        { ["X-Project-Id"] = "  p1\t", ["content-TYPE"] = "application/json", ["X-Empty"] = "" })
      assert.are.equal("content-type;host;x-empty;x-project-id;x-sdk-date", signed)
      assert.are.equal("content-type:application/json", canonical_line(c, 4))
      assert.are.equal("host:example.com", canonical_line(c, 5))
      assert.are.equal("x-empty:", canonical_line(c, 6))
      assert.are.equal("x-project-id:p1", canonical_line(c, 7))
      assert.are.equal("x-sdk-date:" .. DATE, canonical_line(c, 8))
      assert.are.equal("", canonical_line(c, 9))
      assert.are.equal(signed, canonical_line(c, 10))
      assert.are.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", canonical_line(c, 11))
    end)

    it("derives host with the port only when it is not the scheme's default (as curl sends it)", function()
      local function host(url) return canonical_line(canon("GET", url), 4) end
      assert.are.equal("host:example.com", host("https://example.com:443/p"))
      assert.are.equal("host:example.com", host("http://example.com:80/p"))
      assert.are.equal("host:example.com:80", host("https://example.com:80/p"))
      assert.are.equal("host:127.0.0.1:8081", host("http://127.0.0.1:8081/p"))
      assert.are.equal("host:127.0.0.1:8081", host("http://127.0.0.1:08081/p"))
      assert.are.equal("host:[::1]:8081", host("http://[::1]:8081/p"))
      assert.are.equal("host:[::1]", host("HTTPS://[::1]:443/p"))
      assert.are.equal("host:Example.COM", host("https://Example.COM/p"))
    end)

    it("hashes the body", function()
      local c = canon("POST", "https://example.com/p", nil, "abc")
      assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", canonical_line(c, 8))
    end)

    it("builds the string to sign from the date and the canonical request's hash", function()
      local _, to_sign = canon("GET", "https://example.com/p")
      assert.truthy(to_sign:match("^SDK%-HMAC%-SHA256\n" .. DATE .. "\n%x+$"))
      assert.are.equal(64, #to_sign:match("\n(%x+)$"))
    end)
  end)

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

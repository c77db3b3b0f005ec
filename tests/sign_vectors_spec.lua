-- Specs for core.sign, the SDK-HMAC-SHA256 signer (src/sign.c), and its
-- debug twin core.sign_canonical, as data tables: rows of a request ->
-- the expected canonical request, signed headers and signature, each run by
-- one loop, one test a row.  Argument errors and what the signature depends
-- on are in tests/sign_spec.lua.
--
-- Where the expected values come from:
--   PUBLISHED: the vectors of Huawei's signing guide and of the Python SDK's
--     tests.
--   NODE_SDK: the official Node.js SDK signer, @huaweicloud/huaweicloud-sdk-core
--     3.1.211, AKSKSigner.sign(request, credential).  The SDK takes the path
--     raw and the query as a name -> value(s) object; a row gives the same
--     request as the URL a caller sends (percent-encoded, any order).
--   GO_SDK: the official Go SDK's signer, core/auth/signer/signer.go,
--     transcribed line by line in tests/go_signer_oracle.py (ctest runs it:
--     it checks that it gives the Go SDK's own vectors of signer_test.go).
--     The Go signer signs exactly the headers it is given (it adds no host
--     and never signs Content-Type); these rows give it a Host header equal
--     to the one core.sign derives from the URL, and no Content-Type, so
--     both sign the same set.
--   LINES: lines of the canonical request for URLs and headers at the edges
--     (percent-decoding, ports, fragments, empty names).

local core = require "pipeline.core"

local unpack = table.unpack or unpack

-- line n (1-based) of a canonical request
local function canonical_line(canonical, n)
  local i = 0
  for line in (canonical .. "\n"):gmatch("(.-)\n") do
    i = i + 1
    if i == n then return line end
  end
end

-- { name, method, url, headers, body, ak, sk, date, signed headers, signature }
local PUBLISHED = {
  { "Huawei signing guide",
    "GET", "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
      .. "?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0",
    { ["Content-Type"] = "application/json", ["Host"] = "service.region.example.com" }, nil,
    "QTWAOYTTINDUT2QVKYUC", "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc", "20191115T033655Z",
    "content-type;host;x-sdk-date", "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe" },
  { "Python SDK (host derived from the URL)",
    "GET", "https://service.endpoint.myhuaweicloud.com/resources?size=1", {}, nil,
    "AccessKey", "SecretKey", "20200608T023900Z",
    "host;x-sdk-date", "cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842" },
}

local AK, SK, DATE = "TESTAK0123456789", "test/SK+secret=0123456789abcdef", "20240102T030405Z"
local P = "0123456789abcdef0123456789abcdef"
local PL = "fedcba9876543210fedcba9876543210"
local R = "aaaabbbbccccddddeeeeffff00001111"
local PIPELINE = "/v5/" .. P .. "/api/pipelines/" .. PL

-- { name, method, url, headers, body, signed headers, signature }, signed
-- with AK, SK and DATE
local NODE_SDK = {
  { "a retry PUT without body to 127.0.0.1 on a port",
    "PUT", "http://127.0.0.1:8081" .. PIPELINE .. "/pipeline-runs/" .. R .. "/retry",
    { ["Content-Type"] = "application/json", ["X-Project-Id"] = P }, nil,
    "content-type;host;x-project-id;x-sdk-date", "2b183821e6d88e70017cb3e9347b68e88e4470981b1a1c27db4d50aab3506994" },
  { "a POST with a JSON body and a security token",
    "POST", "https://cloudpipeline-ext.cn-north-4.myhuaweicloud.com" .. PIPELINE .. "/run",
    { ["Content-Type"] = "application/json;charset=UTF-8", ["X-Project-Id"] = P,
      ["X-Security-Token"] = "tok/en+with=chars" },
    '{"description":"run é 一","variables":[{"name":"a","value":"1 2"}]}',
    "content-type;host;x-project-id;x-sdk-date;x-security-token",
    "4cf6a6af2ef3571d4eca274b217e652e887901bae07428ce815bbbcbccacde11" },
  { "a query with repeated names, UTF-8, empty values, on a non-default port",
    "GET", "https://cloudpipeline-ext.cn-north-4.myhuaweicloud.com:8443" .. PIPELINE
      .. "/pipeline-runs/detail?pipeline_run_id=" .. R
      .. "&multi=b&multi=a&name=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29&multi=c&empty="
      .. "&a.b~c=x%2By%2Fz&multi=a%20b",
    { ["X-Project-Id"] = P }, nil,
    "host;x-project-id;x-sdk-date", "30d1efefd8ed51a71511cf9f36434b05c3edef5fe03276a7cf896769b65eedb6" },
  { "a path with characters that need encoding, encoded",
    "DELETE", "https://example.com/v5/" .. P .. "/api/x%3Ay%40z%21%281%29%2A%2C%3B%3D%2B%24/%C3%BC%E4%B8%80/end",
    { ["Content-Type"] = "application/json" }, nil,
    "content-type;host;x-sdk-date", "e0e2025f8915d55905a5e7bf80d743d3738cfbdf006ba10a0357cae93c726229" },
  { "the same path not encoded",
    "DELETE", "https://example.com/v5/" .. P .. "/api/x:y@z!(1)*,;=+$/ü一/end",
    { ["Content-Type"] = "application/json" }, nil,
    "content-type;host;x-sdk-date", "e0e2025f8915d55905a5e7bf80d743d3738cfbdf006ba10a0357cae93c726229" },
  { "X-Sdk-Content-Sha256 signed in place of the body hash",
    "POST", "https://example.com/upload",
    { ["Content-Type"] = "application/octet-stream", ["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD" },
    "any body at all",
    "content-type;host;x-sdk-content-sha256;x-sdk-date",
    "4b3baae80248b241755e24ebc49541ecc2b75d92bcdd9f88264b0e06f8fd40b6" },
  { "a Host header given by the caller instead of the URL's host",
    "GET", "http://10.0.0.1:8080" .. "/v5/" .. P .. "/api/pipelines/list?limit=10&offset=0",
    { host = "cloudpipeline-ext.cn-north-4.myhuaweicloud.com", ["X-Project-Id"] = P }, nil,
    "host;x-project-id;x-sdk-date", "444eda252fc7f59c60fdb4810e85197b64394d8eb83fe7d5eef5e2e6ad5ad19e" },
}

-- { name, method, url, headers, body, canonical request, signature }, signed
-- with AK, SK and DATE; the canonical request as its parts: method, path,
-- query, the headers (each line ending in "\n"), signed headers, body hash
local HOST = "cloudpipeline-ext.cn-north-4.myhuaweicloud.com"
local EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" -- of no body
local GO_SDK = {
  { "query: sorted by name then value, by bytes of the decoded text",
    "GET", "https://" .. HOST .. "/v5/" .. P .. "/api/pipelines/" .. PL
      .. "/pipeline-runs/detail?pipeline_run_id=" .. R .. "&b=2&a=1&a=0&a=10&a.b=x&ab=y",
    {}, nil,
    { "GET", "/v5/" .. P .. "/api/pipelines/" .. PL
      .. "/pipeline-runs/detail/", "a=0&a=1&a=10&a.b=x&ab=y&b=2&pipeline_run_id=" .. R,
      "host:" .. HOST .. "\nx-sdk-date:" .. DATE .. "\n",
      "host;x-sdk-date", EMPTY_SHA256 },
    "2d17852e73d4a6d63fb473cf3cde35e720b36ace977587ee2c7eede0d6220f65" },
  { "query: names sorted before they are encoded (a~ before aé)",
    "GET", "https://" .. HOST .. "/v1/items?a%C3%A9=1&a~=2&a%20b=3&a-b=4",
    {}, nil,
    { "GET", "/v1/items/", "a%20b=3&a-b=4&a~=2&a%C3%A9=1",
      "host:" .. HOST .. "\nx-sdk-date:" .. DATE .. "\n",
      "host;x-sdk-date", EMPTY_SHA256 },
    "83e6db63838bdf32b73e70d1c2ecdeb9d9b80072fad7be489a9df523b3e227c1" },
  { "query: values encoded, unreserved kept, space as %20, + and * encoded",
    "GET", "https://" .. HOST .. "/v1/items?q=a%20b%2Bc%2Ad~e.f_g-h&u=%E4%B8%80%2F%3F%3D%26%23%25&empty=",
    {}, nil,
    { "GET", "/v1/items/", "empty=&q=a%20b%2Bc%2Ad~e.f_g-h&u=%E4%B8%80%2F%3F%3D%26%23%25",
      "host:" .. HOST .. "\nx-sdk-date:" .. DATE .. "\n",
      "host;x-sdk-date", EMPTY_SHA256 },
    "6f94f012075ceeafc674268f8c6348791f96e742282628fe3ec9c966c26ddede" },
  { "query: the Go SDK's own vector",
    "GET", "https://example.com/v1/items?limit=1&enable=true"
      .. "&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29&path=%2Ftmp%2F123&multi=3&multi=1&multi=2",
    {}, nil,
    { "GET", "/v1/items/",
      "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29",
      "host:example.com\nx-sdk-date:" .. DATE .. "\n",
      "host;x-sdk-date", EMPTY_SHA256 },
    "d6d09c27051258b42864f5ffbb201afa666a16c12f23de6a55e9e5f5c4044717" },
  { "path: a trailing slash kept, not doubled",
    "PUT", "https://" .. HOST .. "/v5/" .. P .. "/api/pipelines/" .. PL .. "/pipeline-runs/" .. R .. "/retry/",
    { ["X-Project-Id"] = P }, nil,
    { "PUT", "/v5/" .. P .. "/api/pipelines/" .. PL .. "/pipeline-runs/" .. R .. "/retry/", "",
      "host:" .. HOST .. "\nx-project-id:" .. P .. "\nx-sdk-date:" .. DATE .. "\n",
      "host;x-project-id;x-sdk-date", EMPTY_SHA256 },
    "e78bd29326c8da1cdc4f54e77214d5a2352d2ba18387ea9cf162e9b4588971db" },
  { "path: none at all is /",
    "GET", "https://example.com",
    {}, nil,
    { "GET", "/", "",
      "host:example.com\nx-sdk-date:" .. DATE .. "\n",
      "host;x-sdk-date", EMPTY_SHA256 },
    "7768867156289964e1e214a23d4536021c9966456466c8aec64074ce2231a63c" },
  { "path: an empty segment kept",
    "GET", "https://example.com//a//b",
    {}, nil,
    { "GET", "//a//b/", "",
      "host:example.com\nx-sdk-date:" .. DATE .. "\n",
      "host;x-sdk-date", EMPTY_SHA256 },
    "24054e1c69d9998f0f9f39b7579b401f6c103e3e4ef47c81e05b317a120898fc" },
  { "path: segments encoded byte by byte",
    "DELETE", "https://example.com/v5/" .. P .. "/api/x%20y%3A%40%21%24/%C3%BC%E4%B8%80/~._-",
    {}, nil,
    { "DELETE", "/v5/" .. P .. "/api/x%20y%3A%40%21%24/%C3%BC%E4%B8%80/~._-/", "",
      "host:example.com\nx-sdk-date:" .. DATE .. "\n",
      "host;x-sdk-date", EMPTY_SHA256 },
    "98628db373ca9cba4e7f8fdaf2010fa628096a9e4a32e9b6b9643f817f5c9937" },
  { "body: none hashes as the empty string",
    "PUT", "http://127.0.0.1:8081/v5/" .. P .. "/api/pipelines/" .. PL .. "/pipeline-runs/" .. R .. "/retry",
    { ["X-Project-Id"] = P }, nil,
    { "PUT", "/v5/" .. P .. "/api/pipelines/" .. PL .. "/pipeline-runs/" .. R .. "/retry/", "",
      "host:127.0.0.1:8081\nx-project-id:" .. P .. "\nx-sdk-date:" .. DATE .. "\n",
      "host;x-project-id;x-sdk-date", EMPTY_SHA256 },
    "d05c01b4a2f4be7a82891808332db6e531059e2d927fbb9b4f87a1dfe9fef219" },
  { "body: a JSON body hashed as sent",
    "POST", "https://" .. HOST .. "/v5/" .. P .. "/api/pipelines/" .. PL .. "/run",
    { ["X-Project-Id"] = P }, "{\"description\":\"run \195\169 \228\184\128\",\"variables\":[{\"name\":\"a\",\"value\":\"1 2\"}]}",
    { "POST", "/v5/" .. P .. "/api/pipelines/" .. PL .. "/run/", "",
      "host:" .. HOST .. "\nx-project-id:" .. P .. "\nx-sdk-date:" .. DATE .. "\n",
      "host;x-project-id;x-sdk-date", "f9ce09abd3b950f8488aecb25d5fa9e5343df54be9087c0d8c5831725999d4b1" },
    "40eba2d1276f6bc24dc3d5ebb16f4832b01ceb67fb752763e6999f4f4d4eabf8" },
  { "headers: names lower-cased and sorted, values trimmed",
    "PUT", "https://" .. HOST .. "/v5/" .. P .. "/api/pipelines/" .. PL .. "/pipeline-runs/" .. R .. "/retry",
    { ["x-PROJECT-id"] = "  " .. P .. "\t", ["X-Security-Token"] = "\ttok/en+with=chars ", ["X-Empty"] = "" }, nil,
    { "PUT", "/v5/" .. P .. "/api/pipelines/" .. PL .. "/pipeline-runs/" .. R .. "/retry/", "",
      "host:" .. HOST .. "\nx-empty:\nx-project-id:" .. P .. "\nx-sdk-date:" .. DATE
        .. "\nx-security-token:tok/en+with=chars\n",
      "host;x-empty;x-project-id;x-sdk-date;x-security-token", EMPTY_SHA256 },
    "8f3fda085047ef55877bb590fbe839c623d214eebe9e6fc374176be3d5dd0c37" },
}

-- { method, url, headers, body, line number, expected line }; signed with
-- "AK", "SK" and DATE.  Lines: 1 method, 2 path, 3 query, then the headers.
local LINES = {
  { "put", "https://example.com/v1/a/b", nil, nil, 1, "PUT" }, -- the method upper-cased
  { "GET", "https://example.com/v1/a/b", nil, nil, 2, "/v1/a/b/" },
  { "GET", "https://example.com/v1/a/b/", nil, nil, 2, "/v1/a/b/" },
  { "GET", "https://example.com", nil, nil, 2, "/" },
  { "GET", "https://example.com?x=1", nil, nil, 2, "/" },
  -- the path decoded then re-encoded byte by byte
  { "GET", "https://example.com/a%20b/%c3%a9/~-_.", nil, nil, 2, "/a%20b/%C3%A9/~-_./" },
  -- a '%' without two hex digits stands for itself
  { "GET", "https://example.com/50%25/x%zz", nil, nil, 2, "/50%25/x%25zz/" },
  -- an encoded '/' is a separator once decoded, as in the Python signers
  { "GET", "https://example.com/a%2Fb", nil, nil, 2, "/a/b/" },
  -- a fragment is not sent
  { "GET", "https://example.com/p?a=1#frag?b=2", nil, nil, 2, "/p/" },
  { "GET", "https://example.com/p?a=1#frag?b=2", nil, nil, 3, "a=1" },
  { "GET", "https://example.com/p", nil, nil, 3, "" },
  { "GET", "https://example.com/p?", nil, nil, 3, "" },
  -- a name without '=' has an empty value; an empty name is dropped
  { "GET", "https://example.com/p?c=1&b=&a&&=x", nil, nil, 3, "a=&b=&c=1" },
  -- '+' is a literal plus; a name ends at the first '='
  { "GET", "https://example.com/p?a=b+c=d", nil, nil, 3, "a=b%2Bc%3Dd" },
  { "GET", "https://example.com/p?b&ab=0&a=2&a=10&a=1&a=1", nil, nil, 3, "a=1&a=1&a=10&a=2&ab=0&b=" },
  -- host with the port only when it is not the scheme's default, as curl sends it
  { "GET", "https://example.com:443/p", nil, nil, 4, "host:example.com" },
  { "GET", "http://example.com:80/p", nil, nil, 4, "host:example.com" },
  { "GET", "https://example.com:80/p", nil, nil, 4, "host:example.com:80" },
  { "GET", "http://127.0.0.1:8081/p", nil, nil, 4, "host:127.0.0.1:8081" },
  { "GET", "http://127.0.0.1:08081/p", nil, nil, 4, "host:127.0.0.1:8081" },
  { "GET", "http://[::1]:8081/p", nil, nil, 4, "host:[::1]:8081" },
  { "GET", "HTTPS://[::1]:443/p", nil, nil, 4, "host:[::1]" },
  { "GET", "https://Example.COM/p", nil, nil, 4, "host:Example.COM" },
  -- header names lower-cased, values trimmed, sorted; an empty value kept
  { "GET", "https://example.com/p", { ["X-Project-Id"] = "  p1\t", ["content-TYPE"] = "application/json",
    ["X-Empty"] = "" }, nil, 4, "content-type:application/json" },
  { "GET", "https://example.com/p", { ["X-Project-Id"] = "  p1\t", ["X-Empty"] = "" }, nil, 5, "x-empty:" },
  { "GET", "https://example.com/p", { ["X-Project-Id"] = "  p1\t", ["X-Empty"] = "" }, nil, 6, "x-project-id:p1" },
  { "GET", "https://example.com/p", { ["X-Project-Id"] = "p1" }, nil, 8, "host;x-project-id;x-sdk-date" },
  -- the body's hash, the empty string's when there is none
  { "POST", "https://example.com/p", nil, "abc", 8,
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
  { "POST", "https://example.com/p", nil, "", 8,
    EMPTY_SHA256 },
  { "PUT", "https://example.com/p", nil, nil, 8,
    EMPTY_SHA256 },
}

local function check_signature(method, url, headers, body, ak, sk, date, signed, signature)
  local h = core.sign(method, url, headers, body, ak, sk, date)
  assert.are.equal(date, h["X-Sdk-Date"])
  assert.are.equal("SDK-HMAC-SHA256 Access=" .. ak .. ", SignedHeaders=" .. signed .. ", Signature=" .. signature,
    h.Authorization)
end

describe("core.sign", function()
  describe("gives the published vectors", function()
    for _, row in ipairs(PUBLISHED) do
      it(row[1], function() check_signature(unpack(row, 2, 10)) end)
    end
  end)

  describe("agrees with the official Node.js SDK (3.1.211)", function()
    for _, row in ipairs(NODE_SDK) do
      local name, method, url, headers, body, signed, signature = unpack(row, 1, 7)
      it(name, function() check_signature(method, url, headers, body, AK, SK, DATE, signed, signature) end)
    end
  end)

  describe("agrees with the official Go SDK's signer", function()
    for _, row in ipairs(GO_SDK) do
      local name, method, url, headers, body, parts, signature = unpack(row, 1, 7)
      it(name, function()
        local canonical, to_sign, signed = core.sign_canonical(method, url, headers, body, AK, SK, DATE)
        assert.are.equal(table.concat(parts, "\n"), canonical)
        assert.are.equal(parts[5], signed)
        assert.truthy(to_sign:match("^SDK%-HMAC%-SHA256\n" .. DATE .. "\n%x+$"), to_sign)
        check_signature(method, url, headers, body, AK, SK, DATE, signed, signature)
      end)
    end
  end)
end)

describe("core.sign_canonical", function()
  for _, row in ipairs(LINES) do
    local method, url, headers, body, n, expected = unpack(row, 1, 6)
    it(("%s %s: line %d is %q"):format(method, url, n, expected), function()
      local canonical = core.sign_canonical(method, url, headers, body, "AK", "SK", DATE)
      assert.are.equal(expected, canonical_line(canonical, n))
    end)
  end
end)

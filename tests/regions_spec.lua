-- Specs for lua/pipeline/regions.lua: which endpoints a region, a setting or
-- the SDKs' override variables name.  Each table is rows of input ->
-- expected result, run by one loop, one test a row; every row gives its own
-- environment (a table read through a getenv function), so nothing of the
-- real environment is read.

local regions = require "pipeline.regions"

local function getenv_of(env)
  return function(name) return env[name] end
end

local PIPELINE_OVERRIDE = "HUAWEICLOUD_SDK_REGION_CODEARTSPIPELINE_"

-- setting -> the endpoint list (nil: the setting names none)
local ENDPOINT_LISTS = {
  { "https://a.example.com", { "https://a.example.com" } },
  { "http://127.0.0.1:8080/base", { "http://127.0.0.1:8080/base" } },
  { "a.example.com", { "https://a.example.com" } }, -- no scheme: https
  { "a.example.com:8443", { "https://a.example.com:8443" } },
  { "127.0.0.1:9", { "https://127.0.0.1:9" } },
  { "https://a.example.com,https://b.example.com", { "https://a.example.com", "https://b.example.com" } },
  { " a.example.com , http://b.example.com ", { "https://a.example.com", "http://b.example.com" } },
  { "a.example.com,,b.example.com,", { "https://a.example.com", "https://b.example.com" } },
  { "HTTPS://a.example.com", { "HTTPS://a.example.com" } }, -- a scheme in any case is kept
  { "", nil },
  { " , ,", nil },
  { 42, nil },
  { false, nil },
}

-- region id, environment -> endpoints, or the fragments of the message
local SERVICE_ENDPOINTS = {
  { "cn-north-4", {}, { "https://cloudpipeline-ext.cn-north-4.myhuaweicloud.com" } },
  { "tr-west-1", {}, { "https://pipeline-external.tr-west-1.myhuaweicloud.com" } },
  { "af-north-1", {}, { "https://pipeline.af-north-1.myhuaweicloud.com" } },
  { "cn-north-4", { [PIPELINE_OVERRIDE .. "CN_NORTH_4"] = "p.example.com,q.example.com" },
    { "https://p.example.com", "https://q.example.com" } },
  -- an override makes a region known that the table has not
  { "xx-test-9", { [PIPELINE_OVERRIDE .. "XX_TEST_9"] = "http://127.0.0.1:9" }, { "http://127.0.0.1:9" } },
  -- an override that names nothing leaves the table's entry
  { "cn-north-4", { [PIPELINE_OVERRIDE .. "CN_NORTH_4"] = " , " },
    { "https://cloudpipeline-ext.cn-north-4.myhuaweicloud.com" } },
  -- another region's override is not this one's
  { "cn-north-1", { [PIPELINE_OVERRIDE .. "CN_NORTH_4"] = "p.example.com" },
    { "https://cloudpipeline-ext.cn-north-1.myhuaweicloud.com" } },
  { "xx-none-1", {}, nil, { 'unknown region "xx-none-1"', "known: ", "cn-north-4", "af-south-1" } },
  { "CN-NORTH-4", {}, nil, { 'unknown region "CN-NORTH-4"' } }, -- region ids are lower case
  { "", {}, nil, { 'unknown region ""' } },
}

-- region id, environment -> IAM endpoints
local IAM_ENDPOINTS = {
  { "cn-north-4", {}, { "https://iam.cn-north-4.myhuaweicloud.com" } },
  { "ap-southeast-1", {}, { "https://iam.ap-southeast-1.myhuaweicloud.com" } },
  { "tr-west-1", {}, { "https://iam.tr-west-1.myhuaweicloud.com" } },
  -- regions the SDKs give no IAM host of its own: the global one
  { "af-north-1", {}, { "https://iam.myhuaweicloud.com" } },
  { "xx-none-1", {}, { "https://iam.myhuaweicloud.com" } },
  { nil, {}, { "https://iam.myhuaweicloud.com" } },
  -- HUAWEICLOUD_SDK_IAM_ENDPOINT wins for every region, scheme-less hosts taking https://
  { "cn-north-4", { HUAWEICLOUD_SDK_IAM_ENDPOINT = "iam.example.com" }, { "https://iam.example.com" } },
  { nil, { HUAWEICLOUD_SDK_IAM_ENDPOINT = "http://127.0.0.1:9,iam.example.com" },
    { "http://127.0.0.1:9", "https://iam.example.com" } },
  { "cn-north-4", { HUAWEICLOUD_SDK_IAM_ENDPOINT = "" }, { "https://iam.cn-north-4.myhuaweicloud.com" } },
}

local function shown(value)
  return type(value) == "string" and ("%q"):format(value) or tostring(value)
end

describe("regions.endpoint_list", function()
  for _, row in ipairs(ENDPOINT_LISTS) do
    local value, expected = row[1], row[2]
    it(("%s -> %s"):format(shown(value), expected and table.concat(expected, " ") or "nil"), function()
      assert.are.same(expected, (regions.endpoint_list(value)))
    end)
  end
end)

describe("regions.endpoints_of", function()
  for _, row in ipairs(SERVICE_ENDPOINTS) do
    local id, env, expected, fragments = row[1], row[2], row[3], row[4]
    local name = next(env) and ("%s with %s=%s"):format(id, next(env), env[next(env)]) or id
    it(("%s -> %s"):format(name, expected and table.concat(expected, " ") or "a message"), function()
      local list, message = regions.endpoints_of(id, getenv_of(env))
      assert.are.same(expected, list)
      if fragments then
        assert.is_string(message)
        for _, fragment in ipairs(fragments) do
          assert.truthy(message:find(fragment, 1, true), ("%q lacks %q"):format(message, fragment))
        end
      end
      -- the primary endpoint is the list's first
      assert.are.equal(expected and expected[1], (regions.endpoint(id, getenv_of(env))))
    end)
  end

  it("names every region of the table as known, sorted", function()
    local _, message = regions.endpoints_of("xx-none-1", getenv_of({}))
    local known = message:match("known: (.*)%)$")
    assert.are.equal(table.concat(regions.list(), ", "), known)
    local count = 0
    for _ in pairs(regions.endpoints) do count = count + 1 end
    assert.are.equal(count, #regions.list())
  end)
end)

describe("regions.iam_endpoints_of", function()
  for _, row in ipairs(IAM_ENDPOINTS) do
    local id, env, expected = row[1], row[2], row[3]
    local name = next(env) and ("%s with %s=%q"):format(tostring(id), next(env), env[next(env)]) or tostring(id)
    it(("%s -> %s"):format(name, table.concat(expected, " ")), function()
      assert.are.same(expected, regions.iam_endpoints_of(id, getenv_of(env)))
    end)
  end
end)

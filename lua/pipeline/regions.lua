--- Endpoints of the CodeArts Pipeline service by region.  The host name is
-- not one template, so this is a table.  As the official SDKs allow, the
-- environment variable HUAWEICLOUD_SDK_REGION_CODEARTSPIPELINE_<REGION>
-- (region id upper-cased, "-" as "_") overrides an entry; it may hold a
-- comma-separated list, tried in order when a connection cannot be made.
local regions = {}

regions.endpoints = {
  ["cn-north-1"] = "https://cloudpipeline-ext.cn-north-1.myhuaweicloud.com",
  ["cn-north-4"] = "https://cloudpipeline-ext.cn-north-4.myhuaweicloud.com",
  ["cn-south-1"] = "https://cloudpipeline-ext.cn-south-1.myhuaweicloud.com",
  ["cn-south-2"] = "https://cloudpipeline-ext.cn-south-2.myhuaweicloud.com",
  ["cn-east-2"] = "https://cloudpipeline-ext.cn-east-2.myhuaweicloud.com",
  ["cn-east-3"] = "https://cloudpipeline-ext.cn-east-3.myhuaweicloud.com",
  ["cn-southwest-2"] = "https://cloudpipeline-ext.cn-southwest-2.myhuaweicloud.com",
  ["ap-southeast-3"] = "https://cloudpipeline-ext.ap-southeast-3.myhuaweicloud.com",
  ["sa-brazil-1"] = "https://cloudpipeline-ext.sa-brazil-1.myhuaweicloud.com",
  ["la-north-2"] = "https://cloudpipeline-ext.la-north-2.myhuaweicloud.com",
  ["tr-west-1"] = "https://pipeline-external.tr-west-1.myhuaweicloud.com",
  ["la-south-2"] = "https://pipeline-external.la-south-2.myhuaweicloud.com",
  ["af-north-1"] = "https://pipeline.af-north-1.myhuaweicloud.com",
  ["me-east-1"] = "https://pipeline.me-east-1.myhuaweicloud.com",
  ["af-south-1"] = "https://pipeline.af-south-1.myhuaweicloud.com",
}

-- Regions whose IAM has a host of its own, as the official SDKs list them
-- (core/auth/internal/iam_endpoint.go); every other region uses the global
-- IAM endpoint.
local IAM_REGIONS = {
  "cn-north-1", "cn-north-2", "cn-north-4", "cn-north-9", "cn-north-12",
  "cn-east-2", "cn-east-3", "cn-east-4", "cn-east-5", "cn-south-1", "cn-south-2", "cn-southwest-2",
  "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
  "af-south-1", "sa-brazil-1", "la-south-2", "la-north-2", "na-mexico-1", "eu-west-0",
  "my-kualalumpur-1", "ru-moscow-1", "me-east-1", "ae-ad-1", "tr-west-1",
}
regions.iam_endpoints = {}
for _, id in ipairs(IAM_REGIONS) do
  regions.iam_endpoints[id] = ("https://iam.%s.myhuaweicloud.com"):format(id)
end
regions.GLOBAL_IAM_ENDPOINT = "https://iam.myhuaweicloud.com"

--- The sorted list of known region ids.
function regions.list()
  local ids = {}
  for id in pairs(regions.endpoints) do ids[#ids + 1] = id end
  table.sort(ids)
  return ids
end

--- The endpoints a setting names, as the official SDKs read them: one URL or
-- a comma-separated list (primary first), a host without a scheme taking
-- https://.  Returns a list, or nil when the setting holds none.
function regions.endpoint_list(value)
  if type(value) ~= "string" then return nil end
  local list = {}
  for item in value:gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then
      if not item:find("^%a[%w+.-]*://") then item = "https://" .. item end
      list[#list + 1] = item
    end
  end
  if #list > 0 then return list end
end

-- The override variable of region id for service, as the SDKs name it.
local function override(service, id, getenv)
  return getenv(("HUAWEICLOUD_SDK_REGION_%s_%s"):format(service, id:upper():gsub("-", "_")))
end

--- The endpoints of region id (a list, primary first), or nil and a message.
-- getenv defaults to os.getenv (tests pass their own).
function regions.endpoints_of(id, getenv)
  local list = regions.endpoint_list(override("CODEARTSPIPELINE", id, getenv or os.getenv))
  if list then return list end
  local endpoint = regions.endpoints[id]
  if endpoint then return { endpoint } end
  return nil, ("unknown region %q (known: %s)"):format(id, table.concat(regions.list(), ", "))
end

--- The primary endpoint of region id, or nil and a message.
function regions.endpoint(id, getenv)
  local list, why = regions.endpoints_of(id, getenv)
  if not list then return nil, why end
  return list[1]
end

--- The IAM endpoints for a region (a list, primary first):
-- HUAWEICLOUD_SDK_IAM_ENDPOINT, else the region's own IAM host where the SDKs
-- list one, else the global IAM endpoint.  region may be nil.
function regions.iam_endpoints_of(region, getenv)
  return regions.endpoint_list((getenv or os.getenv)("HUAWEICLOUD_SDK_IAM_ENDPOINT"))
    or { region and regions.iam_endpoints[region] or regions.GLOBAL_IAM_ENDPOINT }
end

return regions

--- Endpoints of the CodeArts Pipeline service by region.  The host name is
-- not one template, so this is a table.  As the official SDKs allow, the
-- environment variable HUAWEICLOUD_SDK_REGION_CODEARTSPIPELINE_<REGION>
-- (region id upper-cased, "-" as "_") overrides an entry; when it holds a
-- comma-separated list, the first URL is used.
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

--- The sorted list of known region ids.
function regions.list()
  local ids = {}
  for id in pairs(regions.endpoints) do ids[#ids + 1] = id end
  table.sort(ids)
  return ids
end

--- The endpoint of region id, or nil and a message.  getenv defaults to
-- os.getenv (tests pass their own).
function regions.endpoint(id, getenv)
  getenv = getenv or os.getenv
  local override = getenv("HUAWEICLOUD_SDK_REGION_CODEARTSPIPELINE_" .. id:upper():gsub("-", "_"))
  if override and override:find("%S") then
    return (override:match("^%s*([^,%s]+)"))
  end
  local endpoint = regions.endpoints[id]
  if endpoint then return endpoint end
  return nil, ("unknown region %q (known: %s)"):format(id, table.concat(regions.list(), ", "))
end

return regions

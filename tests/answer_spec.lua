-- The rule that turns an HTTP exchange into an operation's result (src/answer.c):
-- core.answer (status, body, header lines -> true | body, info | nil, message,
-- code, info), core.transport_failure, core.failure and core.redact, specified
-- as data tables, as lua-cjson's tests are written.  No server: the rows are the
-- answers.
local core = require("pipeline.core")
local cjson = require("cjson.safe")

local SUCCESS = '{"success":true}'
local TOKEN = "tok-SECRET-0123456789"

-- Header lines as libcurl hands them over, from a list of "Name: value".
local function header_text(list)
  if list == nil then return nil end
  local lines = { "HTTP/1.1 000 X\r\n" }
  for _, line in ipairs(list) do lines[#lines + 1] = line .. "\r\n" end
  return table.concat(lines) .. "\r\n"
end

-- What a failure's info holds, less what a row says otherwise: `NONE` for a
-- field that must be absent.
local NONE = {}
local function failure_info(status, fields)
  local info = { status = status, retryable = false, attempts = 1, sent = true }
  for k, v in pairs(fields or {}) do
    if v == NONE then info[k] = nil else info[k] = v end
  end
  return info
end

-- errors.settle as it was in Lua before the rule moved to C (with lua-cjson),
-- the reference the C rule must agree with, message for message.
local former = {}
do
  local THROTTLING_CODES = { ["APIGW.0308"] = true, ["COCT.0070003"] = true }
  local WHAT = { network = "network error", timeout = "timed out", tls = "TLS error", auth = "authentication failed",
    not_found = "not found", throttled = "throttled", server = "server error", api = "refused by the service",
    protocol = "unexpected response", config = "configuration error", cancelled = "cancelled" }
  local function redact(text, secrets)
    if type(text) ~= "string" then return text end
    for _, secret in ipairs(secrets or {}) do
      if type(secret) == "string" and #secret >= 4 then
        local from, to = text:find(secret, 1, true)
        while from do
          text = text:sub(1, from - 1) .. "***" .. text:sub(to + 1)
          from, to = text:find(secret, from + 3, true)
        end
      end
    end
    return (text:gsub("(SDK%-HMAC%-SHA256.-Signature=)[%w%-_]+", "%1***"))
  end
  former.redact = redact
  local function request_id(value, secrets)
    if type(value) ~= "string" then return nil end
    value = redact(value, secrets):gsub("%c", ""):sub(1, 200)
    if value == "" then return nil end
    return value
  end
  local function failure(op, code, detail, info, secrets)
    info = info or {}
    if info.retryable == nil then info.retryable = false end
    info.attempts = info.attempts or (code == "config" and 0 or 1)
    info.error_msg = redact(info.error_msg, secrets)
    info.error_code = redact(info.error_code, secrets)
    info.request_id = request_id(info.request_id, secrets)
    local parts = { op .. ": " .. (detail or WHAT[code] or code) }
    if info.status then parts[#parts + 1] = "HTTP " .. info.status end
    if info.error_code then
      parts[#parts + 1] = info.error_code .. (info.error_msg and (" " .. info.error_msg) or "")
    elseif info.error_msg then
      parts[#parts + 1] = info.error_msg
    end
    local message = table.concat(parts, ", ")
    if info.request_id then message = message .. " (request id " .. info.request_id .. ")" end
    message = message:gsub("[%c]+", " ")
    return nil, redact(message, secrets), code, info
  end
  local function code_for_status(status, error_code)
    if THROTTLING_CODES[error_code] or status == 429 then return "throttled" end
    if status == 401 or status == 403 then return "auth" end
    if status == 404 then return "not_found" end
    if status >= 500 then return "server" end
    return "api"
  end
  local function text_of(value)
    if type(value) ~= "string" and type(value) ~= "number" then return nil end
    value = tostring(value)
    if value == "" then return nil end
    return value
  end
  local function service_error(body)
    if type(body) ~= "table" then return nil, nil end
    local code, msg = text_of(body.error_code), text_of(body.error_msg)
    if code == nil and type(body.error) == "table" then
      code, msg = body.error.code, text_of(body.error.message) or text_of(body.error.title)
      code = type(code) ~= "number" and text_of(code) or nil
    end
    return code, msg
  end
  local function decode(text)
    local value = cjson.decode(text)
    -- whole numbers as integers, as json_values.decode gives them
    local function integers(v)
      if type(v) == "number" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
        return math.tointeger and math.tointeger(v) or v
      end
      if type(v) == "table" then for k, x in pairs(v) do v[k] = integers(x) end end
      return v
    end
    return integers(value)
  end
  former.decode = decode
  function former.settle(op, expect, secrets, status, body, headers)
    if expect == "success" and body == SUCCESS and status >= 200 and status < 300 then return true end
    headers = headers or {}
    local json = nil
    if body ~= nil and body:find("%S") then json = decode(body) end
    local error_code, error_msg = service_error(json)
    local info = { status = status, error_code = error_code, error_msg = error_msg,
      request_id = request_id(headers["x-request-id"]
        or (type(json) == "table" and type(json.request_id) == "string" and json.request_id) or nil, secrets) }
    if status >= 200 and status < 300 then
      if json == nil then return failure(op, "protocol", "response is not JSON", info, secrets) end
      if type(json) == "table" and (type(json.error_code) == "table" or type(json.error_code) == "boolean") then
        return failure(op, "protocol", "response has an error_code that is not text", info, secrets)
      end
      if error_code then
        local code = THROTTLING_CODES[error_code] and "throttled" or "api"
        info.retryable = code == "throttled"
        return failure(op, code, WHAT[code], info, secrets)
      end
      if type(json) == "table" and json.success == false then
        return failure(op, "api", "the service answered success = false", info, secrets)
      end
      if expect == "success" then
        if type(json) ~= "table" or json.success ~= true then
          return failure(op, "protocol", "response has no \"success\": true", info, secrets)
        end
        return true
      end
      return json, info
    end
    if status >= 300 and status < 400 then
      local location = headers.location and (" to " .. headers.location) or ""
      return failure(op, "protocol", "redirect" .. location .. " not followed", info, secrets)
    end
    if status < 200 then return failure(op, "protocol", "unexpected informational answer", info, secrets) end
    local code = code_for_status(status, error_code)
    info.retryable = code == "throttled" or status == 503
    return failure(op, code, WHAT[code], info, secrets)
  end
end

-- Calls core.answer for row and checks what it returns.
local function check_answer(row)
  local label = ("%s %s: %q"):format(row.expect or "success", tostring(row.status), row.body)
  local results = { n = 0 }
  local function keep(...) results = { n = select("#", ...), ... } end
  keep(core.answer(row.op or "retry", row.expect or "success", row.status, row.body,
    header_text(row.headers), row.secrets))
  if row.ok == true then
    assert.equal(1, results.n, label)
    assert.is_true(results[1], label)
  elseif row.ok == "body" then
    assert.equal(2, results.n, label)
    assert.equal(row.body, results[1], label)
    local info = results[2]
    assert.is_table(info.headers, label)
    if row.header_table then assert.same(row.header_table, info.headers, label) end
    info.headers = nil
    assert.same({ status = row.status, request_id = row.request_id }, info, label)
    -- what is good JSON here lua-cjson decodes too: the caller's decoding step
    -- never meets a body this rule let through and cannot read
    assert.is_not_nil(cjson.decode(row.body), label)
  else
    assert.equal(4, results.n, label)
    local ok, message, code, info = results[1], results[2], results[3], results[4]
    assert.is_nil(ok, label)
    assert.equal(row.code, code, label)
    if row.message then
      assert.equal(row.message, message, label)
    else
      assert.matches(row.pattern, message, 1, false)
    end
    assert.same(failure_info(row.status, row.info), info, label)
  end
end

describe("core.answer", function()
  describe("a good answer", function()
    local rows = {
      { status = 200, body = SUCCESS, ok = true },
      { status = 204, body = SUCCESS, ok = true },
      { status = 200, body = ' { "success" : true } \r\n', ok = true },
      { status = 200, body = '{"success":true,"data":[1,{"a":null,"b":[]}],"error_code":null}', ok = true },
      { status = 200, body = '{"error_code":"","error_msg":"","success":true}', ok = true },
      { status = 200, body = '{"success":false,"success":true}', ok = true }, -- the last one counts
      { status = 200, body = '{"error_code":"X","error_code":null,"success":true}', ok = true },
      { status = 200, body = '{"data":{"error_code":"X","success":false},"success":true}', ok = true },
      { status = 200, body = '{"id":"abc","n":12}', expect = "json", ok = "body" },
      { status = 201, body = "[]", expect = "json", ok = "body" },
      { status = 200, body = '[{"error_code":"X","success":false}]', expect = "json", ok = "body" },
      { status = 200, body = '"text"', expect = "json", ok = "body" },
      { status = 200, body = "null", expect = "json", ok = "body" },
      { status = 200, body = SUCCESS, expect = "json", ok = "body" },
      { status = 200, body = '{"error_msg":"all fine"}', expect = "json", ok = "body" },
      { status = 200, body = '{"request_id":"from-body"}', expect = "json", ok = "body", request_id = "from-body" },
      { status = 200, body = '{"request_id":"from-body"}', expect = "json", ok = "body", request_id = "from-header",
        headers = { "X-Request-Id: from-header" } },
      { status = 200, body = "{}", expect = "json", ok = "body", headers = { "X-Request-Id: a", "x-request-id: b",
        "Retry-After: 3", "Content-Type:  application/json " },
        header_table = { ["x-request-id"] = "a, b", ["retry-after"] = "3", ["content-type"] = "application/json" },
        request_id = "a, b" },
      -- a secret split by a control character is whole once the id is cleaned: hidden all the same
      { status = 200, body = "{}", expect = "json", ok = "body", secrets = { TOKEN }, request_id = "***",
        headers = { "X-Request-Id: " .. TOKEN:sub(1, 5) .. "\1" .. TOKEN:sub(6) } },
    }
    for i, row in ipairs(rows) do
      it(("row %d: %d %s"):format(i, row.status, row.body:sub(1, 50)), function() check_answer(row) end)
    end
  end)

  describe("a failure", function()
    local rows = {
      -- 2xx that is not what was asked for
      { status = 200, body = "", code = "protocol", message = "retry: response is not JSON, HTTP 200" },
      { status = 200, body = " \r\n\t", code = "protocol", message = "retry: response is not JSON, HTTP 200" },
      { status = 200, body = "<html>ok</html>", code = "protocol", message = "retry: response is not JSON, HTTP 200" },
      { status = 200, body = '{"error_code":{}}', code = "protocol",
        message = "retry: response has an error_code that is not text, HTTP 200" },
      { status = 200, body = '{"error_code":["A"],"success":true}', code = "protocol",
        message = "retry: response has an error_code that is not text, HTTP 200" },
      { status = 200, body = '{"error_code":true}', code = "protocol",
        message = "retry: response has an error_code that is not text, HTTP 200" },
      { status = 200, body = '{"error_code":false}', expect = "json", code = "protocol",
        message = "retry: response has an error_code that is not text, HTTP 200" },
      { status = 200, body = '{"error_code":"DEV.1","error_msg":"bad run"}', code = "api",
        message = "retry: refused by the service, HTTP 200, DEV.1 bad run",
        info = { error_code = "DEV.1", error_msg = "bad run" } },
      { status = 200, body = '{"error_code":"DEV.1","success":true}', expect = "json", code = "api",
        message = "retry: refused by the service, HTTP 200, DEV.1", info = { error_code = "DEV.1" } },
      { status = 200, body = '{"error_code":"APIGW.0308","error_msg":"slow down"}', code = "throttled",
        message = "retry: throttled, HTTP 200, APIGW.0308 slow down",
        info = { error_code = "APIGW.0308", error_msg = "slow down", retryable = true } },
      { status = 200, body = '{"error_code":"COCT.0070003"}', code = "throttled",
        message = "retry: throttled, HTTP 200, COCT.0070003",
        info = { error_code = "COCT.0070003", retryable = true } },
      -- a number is text as written
      { status = 200, body = '{"error_code":12345,"error_msg":-1.5e3}', code = "api",
        message = "retry: refused by the service, HTTP 200, 12345 -1.5e3",
        info = { error_code = "12345", error_msg = "-1.5e3" } },
      { status = 200, body = '{"success":false}', code = "api",
        message = "retry: the service answered success = false, HTTP 200" },
      { status = 200, body = '{"success":false,"error_msg":"no"}', expect = "json", code = "api",
        message = "retry: the service answered success = false, HTTP 200, no", info = { error_msg = "no" } },
      { status = 200, body = '{"success":"true"}', code = "protocol",
        message = 'retry: response has no "success": true, HTTP 200' },
      { status = 200, body = "{}", code = "protocol", message = 'retry: response has no "success": true, HTTP 200' },
      { status = 200, body = "null", code = "protocol", message = 'retry: response has no "success": true, HTTP 200' },
      { status = 200, body = '[{"success":true}]', code = "protocol",
        message = 'retry: response has no "success": true, HTTP 200' },
      { status = 200, body = '{"success":true,"success":1}', code = "protocol",
        message = 'retry: response has no "success": true, HTTP 200' },
      -- not 2xx
      { status = 302, body = "", headers = { "Location: https://elsewhere.example/x" }, code = "protocol",
        message = "retry: redirect to https://elsewhere.example/x not followed, HTTP 302" },
      { status = 301, body = "moved", code = "protocol", message = "retry: redirect not followed, HTTP 301" },
      { status = 307, body = "", headers = { "Location:" }, code = "protocol",
        message = "retry: redirect to  not followed, HTTP 307" },
      { status = 100, body = "", code = "protocol", message = "retry: unexpected informational answer, HTTP 100" },
      { status = 401, body = '{"error":{"code":401,"message":"The token expired","title":"Unauthorized"}}',
        code = "auth", message = "retry: authentication failed, HTTP 401, The token expired",
        info = { error_msg = "The token expired" } },
      { status = 403, body = '{"error":{"code":"IAM.0002","title":"Forbidden"}}', code = "auth",
        message = "retry: authentication failed, HTTP 403, IAM.0002 Forbidden",
        info = { error_code = "IAM.0002", error_msg = "Forbidden" } },
      { status = 404, body = '{"error_code":"DEVPIPE.00011104","error_msg":"run not found"}', code = "not_found",
        message = "retry: not found, HTTP 404, DEVPIPE.00011104 run not found",
        info = { error_code = "DEVPIPE.00011104", error_msg = "run not found" } },
      { status = 429, body = "", code = "throttled", message = "retry: throttled, HTTP 429",
        info = { retryable = true } },
      { status = 400, body = '{"error_code":"APIGW.0308"}', code = "throttled",
        message = "retry: throttled, HTTP 400, APIGW.0308", info = { error_code = "APIGW.0308", retryable = true } },
      { status = 500, body = "<html>oops</html>", code = "server", message = "retry: server error, HTTP 500" },
      { status = 502, body = "", code = "server", message = "retry: server error, HTTP 502" },
      { status = 503, body = "", headers = { "Retry-After: 7" }, code = "server",
        message = "retry: server error, HTTP 503", info = { retryable = true, retry_after = "7" } },
      { status = 599, body = '{"error_code":"X.1"}', code = "server", message = "retry: server error, HTTP 599, X.1",
        info = { error_code = "X.1" } },
      { status = 418, body = "", code = "api", message = "retry: refused by the service, HTTP 418" },
      { status = 400, body = '{"error_code":"DEV.2","error_msg":"bad"}', op = "run", code = "api",
        message = "run: refused by the service, HTTP 400, DEV.2 bad", info = { error_code = "DEV.2", error_msg = "bad" } },
      -- IAM's shape only when error_code says nothing; its message replaces error_msg
      { status = 400, body = '{"error_code":{},"error":{"code":"E.1","message":"m"}}', code = "api",
        message = "retry: refused by the service, HTTP 400, E.1 m", info = { error_code = "E.1", error_msg = "m" } },
      { status = 400, body = '{"error_msg":"top","error":{"code":400}}', code = "api",
        message = "retry: refused by the service, HTTP 400" },
      { status = 400, body = '{"error_msg":"top","error":[1]}', code = "api",
        message = "retry: refused by the service, HTTP 400" },
      { status = 400, body = '{"error_msg":"top","error":"string"}', code = "api",
        message = "retry: refused by the service, HTTP 400, top", info = { error_msg = "top" } },
      { status = 400, body = '{"error_code":"A","error":{"code":"B","message":"m"}}', code = "api",
        message = "retry: refused by the service, HTTP 400, A", info = { error_code = "A" } },
      { status = 400, body = '{"error":{"code":"B","message":"m"},"error":{"title":"t"}}', code = "api",
        message = "retry: refused by the service, HTTP 400, t", info = { error_msg = "t" } },
      { status = 400, body = '{"error":{"inner":{"code":"B"}},"code":"C"}', code = "api",
        message = "retry: refused by the service, HTTP 400" },
      { status = 400, body = '{"error":{"code":true,"message":"","title":12}}', code = "api",
        message = "retry: refused by the service, HTTP 400, 12", info = { error_msg = "12" } },
      -- request ids: the header's, else the body's, shown cleaned
      { status = 500, body = '{"request_id":"body-id"}', code = "server",
        message = "retry: server error, HTTP 500 (request id body-id)", info = { request_id = "body-id" } },
      { status = 500, body = '{"request_id":"body-id"}', headers = { "x-REQUEST-id: header-id" }, code = "server",
        message = "retry: server error, HTTP 500 (request id header-id)", info = { request_id = "header-id" } },
      { status = 500, body = '{"request_id":"body-id"}', headers = { "X-Request-Id:" }, code = "server",
        message = "retry: server error, HTTP 500" },
      { status = 500, body = '{"request_id":"a\\u0001b\\nc"}', code = "server",
        message = "retry: server error, HTTP 500 (request id abc)", info = { request_id = "abc" } },
      { status = 500, body = '{"request_id":"' .. ("r"):rep(300) .. '"}', code = "server",
        message = "retry: server error, HTTP 500 (request id " .. ("r"):rep(200) .. ")",
        info = { request_id = ("r"):rep(200) } },
      { status = 500, body = '{"request_id":12}', code = "server", message = "retry: server error, HTTP 500" },
      -- escapes, decoded; control characters squeezed in the message only
      { status = 400, body = '{"error_code":"E","error_msg":"\\"q\\" \\\\ \\/ \\b\\f\\n\\r\\t end"}', code = "api",
        message = 'retry: refused by the service, HTTP 400, E "q" \\ /   end',
        info = { error_code = "E", error_msg = '"q" \\ / \b\f\n\r\t end' } },
      { status = 400, body = '{"error_msg":"\\u00e9\\u20ac\\ud83d\\ude00 \\u0000x"}', code = "api",
        message = "retry: refused by the service, HTTP 400, \195\169\226\130\172\240\159\152\128  x",
        info = { error_msg = "\195\169\226\130\172\240\159\152\128 \0x" } },
      { status = 400, body = '{"error\\u005fcode":"E.3"}', code = "api",
        message = "retry: refused by the service, HTTP 400, E.3", info = { error_code = "E.3" } },
      { status = 400, body = '{"error_msg":"raw \226\130\172 and \255 bytes"}', code = "api",
        message = "retry: refused by the service, HTTP 400, raw \226\130\172 and \255 bytes",
        info = { error_msg = "raw \226\130\172 and \255 bytes" } },
      -- what the server echoes is redacted, in the message and in info
      { status = 401, body = '{"error_code":"APIGW.0301","error_msg":"bad token ' .. TOKEN .. '"}',
        secrets = { TOKEN }, code = "auth", message = "retry: authentication failed, HTTP 401, APIGW.0301 bad token ***",
        info = { error_code = "APIGW.0301", error_msg = "bad token ***" } },
      { status = 400, body = '{"error_code":"' .. TOKEN .. '"}', secrets = { "abc", TOKEN }, code = "api",
        message = "retry: refused by the service, HTTP 400, ***", info = { error_code = "***" } },
      { status = 500, body = "", headers = { "X-Request-Id: id-" .. TOKEN }, secrets = { TOKEN }, code = "server",
        message = "retry: server error, HTTP 500 (request id id-***)", info = { request_id = "id-***" } },
      -- a secret split by a control character is whole once the id is cleaned: hidden all the same
      { status = 500, body = "", headers = { "X-Request-Id: " .. TOKEN:sub(1, 5) .. "\1" .. TOKEN:sub(6) },
        secrets = { TOKEN }, code = "server", message = "retry: server error, HTTP 500 (request id ***)",
        info = { request_id = "***" } },
      { status = 403, body = '{"error_msg":"got SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=0a1b2c"}',
        code = "auth", message = "retry: authentication failed, HTTP 403, got SDK-HMAC-SHA256 Access=AK, "
          .. "SignedHeaders=host, Signature=***",
        info = { error_msg = "got SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=***" } },
      { status = 400, body = '{"error_msg":"short abc"}', secrets = { "abc" }, code = "api",
        message = "retry: refused by the service, HTTP 400, short abc", info = { error_msg = "short abc" } },
    }
    for i, row in ipairs(rows) do
      it(("row %d: %d %s -> %s"):format(i, row.status, row.body:sub(1, 40), row.code), function() check_answer(row) end)
    end
  end)

  -- JSON as RFC 8259 has it, at most 1000 levels deep as lua-cjson takes it
  describe("JSON", function()
    local function nested(depth) return ("["):rep(depth) .. ("]"):rep(depth) end
    local rows = {
      { "0", true }, { "-0", true }, { "1.5", true }, { "-12.5e-3", true }, { "1E+2", true }, { "1e999", true },
      { "01", false }, { "1.", false }, { ".5", false }, { "+1", false }, { "1e", false }, { "-", false },
      { "0x10", false }, { "NaN", false }, { "Infinity", false }, { "- 1", false },
      { "true", true }, { "false", true }, { "null", true }, { "tru", false }, { "nul", false }, { "True", false },
      { "truex", false }, { '"a"', true }, { '""', true }, { '"a', false }, { "'a'", false },
      { '"\\u0041\\u00e9"', true }, { '"\\uD83D\\uDE00"', true }, { '"\\ud83d"', false }, { '"\\ude00"', false },
      { '"\\ud83d\\u0041"', false }, { '"\\ud83dx"', false }, { '"\\u12"', false }, { '"\\u12g4"', false },
      { '"\\x"', false }, { '"\\\'"', false }, { '"tab\there"', false }, { '"nl\nhere"', false },
      { '"nul\0here"', false }, { '"\127 del is fine"', true },
      { " \t\r\n{}\n", true }, { "\v{}", false }, { "{}\f", false },
      { "{}", true }, { "{} {}", false }, { "{}x", false }, { "{}\0", false }, { "\0{}", false },
      { '{"a":1,}', false }, { "[1,]", false }, { "[,1]", false }, { "{,}", false }, { '{"a" 1}', false },
      { '{"a":}', false }, { '{"a"}', false }, { "{1:2}", false }, { "[1 2]", false }, { '{"a":1 "b":2}', false },
      { "[", false }, { "{", false }, { "]", false }, { '{"a":[}', false }, { "[{]}", false },
      { '{"a":{"b":{"c":[1,2,{"d":null}]}},"e":[[],{}]}', true },
      { nested(1000), true }, { nested(1001), false },
      { '{"success":true,"d":' .. nested(999) .. "}", true }, { '{"success":true,"d":' .. nested(1000) .. "}", false },
      { ("["):rep(100000), false },
    }
    for i, row in ipairs(rows) do
      local body, valid = row[1], row[2]
      it(("row %d: %q is %sJSON"):format(i, body:sub(1, 40), valid and "" or "not "), function()
        local value, message = core.answer("get", "json", 200, body)
        if valid then
          assert.equal(body, value)
          assert.is_not_nil(cjson.decode(body), "lua-cjson decodes it too")
        else
          assert.is_nil(value)
          assert.equal("get: response is not JSON, HTTP 200", message)
        end
      end)
    end
  end)

  it("raises on nothing a server sends: random bodies and header blocks", function()
    local pieces = { "{", "}", "[", "]", '"', ":", ",", "\\", "u", "d8", "00", "dc", "true", "null", "-", "1", "e",
      '"error_code"', '"error_msg"', '"success"', '"error"', '"code"', '"message"', '"request_id"', " ", "\0",
      "\r\n", "X-Request-Id: ", "Location: ", "Retry-After: ", "\255", "SDK-HMAC-SHA256 ", "Signature=", TOKEN }
    local statuses = { 0, 100, 200, 204, 302, 401, 404, 429, 500, 503, 999, -1 }
    for _ = 1, 3000 do
      local body, headers = {}, {}
      for _ = 1, math.random(0, 30) do body[#body + 1] = pieces[math.random(#pieces)] end
      for _ = 1, math.random(0, 6) do headers[#headers + 1] = pieces[math.random(#pieces)] end
      body = table.concat(body)
      local status = statuses[math.random(#statuses)]
      local ok, value, message, code, info = pcall(core.answer, "get", math.random(2) == 1 and "json" or "success",
        status, body, (table.concat(headers):gsub("%z", "")), { TOKEN })
      assert.is_true(ok, value)
      if value == nil then
        assert.is_string(message)
        assert.is_nil(message:find("%c"), message)
        assert.is_nil(message:find(TOKEN, 1, true), message)
        assert.is_string(code)
        assert.is_table(info)
        assert.equal(status, info.status)
        assert.is_nil(tostring(info.error_msg):find(TOKEN, 1, true))
      end
    end
  end)

  it("raises on misuse, naming the argument", function()
    assert.has_error(function() core.answer("get", "maybe", 200, "") end)
    assert.matches("#3", select(2, pcall(core.answer, "get", "json", "two hundred", "")))
    assert.matches("#4", select(2, pcall(core.answer, "get", "json", 200, {})))
    assert.matches("#6", select(2, pcall(core.answer, "get", "json", 200, "", nil, "secret")))
  end)
end)

describe("core.transport_failure", function()
  local rows = {
    { "timeout", "Operation timed out after 1000 milliseconds", 28, false,
      message = "retry: timed out: Operation timed out after 1000 milliseconds",
      info = { retryable = true, sent = false, curl_code = "CURLE_OPERATION_TIMEDOUT", curl_errno = 28 } },
    { "timeout", "Operation timed out", 28, true, message = "retry: timed out: Operation timed out",
      info = { retryable = false, sent = true, curl_code = "CURLE_OPERATION_TIMEDOUT", curl_errno = 28 } },
    { "network", "Failed to connect to 127.0.0.1 port 9: Connection refused", 7, false,
      message = "retry: network error: Failed to connect to 127.0.0.1 port 9: Connection refused",
      info = { retryable = true, sent = false, curl_code = "CURLE_COULDNT_CONNECT", curl_errno = 7 } },
    { "network", "connection lost after the request was sent; it was not sent again", 42, true,
      message = "retry: network error: connection lost after the request was sent; it was not sent again",
      info = { retryable = false, sent = true, curl_code = "CURLE_ABORTED_BY_CALLBACK", curl_errno = 42 } },
    { "tls", "SSL certificate problem: self-signed certificate", 60, false,
      message = "retry: TLS error: SSL certificate problem: self-signed certificate",
      info = { retryable = false, sent = false, curl_code = "CURLE_PEER_FAILED_VERIFICATION", curl_errno = 60 } },
    { "protocol", "response body is larger than the limit of 10 bytes", 63, true, 200,
      { "X-Request-Id: rid-1", "Retry-After: 3" },
      message = "retry: unexpected response: response body is larger than the limit of 10 bytes, HTTP 200 "
        .. "(request id rid-1)",
      info = { retryable = false, sent = true, curl_code = "CURLE_FILESIZE_EXCEEDED", curl_errno = 63, status = 200,
        request_id = "rid-1", retry_after = "3" } },
    { "network", "token " .. TOKEN .. " in a proxy's answer\r\n", 56, true, secrets = { TOKEN },
      message = "retry: network error: token *** in a proxy's answer ",
      info = { retryable = false, sent = true, curl_code = "CURLE_RECV_ERROR", curl_errno = 56 } },
    { "config", "no endpoint", 0, false, message = "retry: configuration error: no endpoint",
      info = { retryable = false, sent = false, attempts = 0, curl_code = "CURLE_OK", curl_errno = 0 } },
  }
  for i, row in ipairs(rows) do
    it(("row %d: %s %s"):format(i, row[1], row[2]), function()
      local ok, message, code, info = core.transport_failure("retry", row[1], row[2], row[3], row[4], row[5],
        header_text(row[6]), row.secrets)
      assert.is_nil(ok)
      assert.equal(row[1], code)
      assert.equal(row.message, message)
      local expected = { attempts = 1 }
      for k, v in pairs(row.info) do expected[k] = v end
      assert.same(expected, info)
    end)
  end

  it("says what libcurl says when the transport has no words of its own", function()
    local _, message = core.transport_failure("retry", "network", nil, 7, false)
    assert.equal("retry: network error: " .. "Couldn't connect to server", message)
  end)

  it("names libcurl's codes as libcurl does, and numbers it does not know", function()
    local names = { [0] = "CURLE_OK", [1] = "CURLE_UNSUPPORTED_PROTOCOL", [6] = "CURLE_COULDNT_RESOLVE_HOST",
      [20] = "CURLE_OBSOLETE20", [23] = "CURLE_WRITE_ERROR", [27] = "CURLE_OUT_OF_MEMORY",
      [35] = "CURLE_SSL_CONNECT_ERROR", [47] = "CURLE_TOO_MANY_REDIRECTS", [52] = "CURLE_GOT_NOTHING",
      [55] = "CURLE_SEND_ERROR", [61] = "CURLE_BAD_CONTENT_ENCODING", [77] = "CURLE_SSL_CACERT_BADFILE",
      [90] = "CURLE_SSL_PINNEDPUBKEYNOTMATCH", [97] = "CURLE_PROXY", [99] = "CURLE_UNRECOVERABLE_POLL",
      [101] = "CURLE_ECH_REQUIRED", [102] = "CURLE_102", [150] = "CURLE_150", [255] = "CURLE_255",
      [260] = "CURLE_UNKNOWN", [100000] = "CURLE_UNKNOWN" }
    for number, name in pairs(names) do
      local _, _, _, info = core.transport_failure("get", "network", "x", number, false)
      assert.equal(name, info.curl_code, number)
      assert.equal(number, info.curl_errno)
    end
  end)
end)

describe("core.failure", function()
  local LONG = ("i"):rep(250)
  local rows = {
    { "pipeline.load", "config", "no token", message = "pipeline.load: no token",
      info = { retryable = false, attempts = 0 } },
    { "run", "network", nil, message = "run: network error", info = { retryable = false, attempts = 1 } },
    { "run", "network", false, message = "run: network error", info = { retryable = false, attempts = 1 } },
    { "run", "odd_code", nil, message = "run: odd_code", info = { retryable = false, attempts = 1 } },
    { "wait", "timeout", "run x still RUNNING after 5s", { retryable = true, attempts = 4 },
      message = "wait: run x still RUNNING after 5s", info = { retryable = true, attempts = 4 } },
    { "stop", "api", nil, { status = 400, error_code = "E.1", error_msg = "no", request_id = "r\n1" },
      message = "stop: refused by the service, HTTP 400, E.1 no (request id r1)",
      info = { retryable = false, attempts = 1, status = 400, error_code = "E.1", error_msg = "no", request_id = "r1" } },
    { "stop", "api", "d", { status = 400, error_msg = 7 }, message = "stop: d, HTTP 400, 7",
      info = { retryable = false, attempts = 1, status = 400, error_msg = 7 } },
    { "stop", "api", "d", { status = 400, error_code = 12 }, message = "stop: d, HTTP 400, 12",
      info = { retryable = false, attempts = 1, status = 400, error_code = 12 } },
    { "get", "protocol", "a\r\n\tb\0c", message = "get: a b c", info = { retryable = false, attempts = 1 } },
    { "get", "api", nil, { request_id = LONG }, message = "get: refused by the service (request id "
      .. LONG:sub(1, 200) .. ")", info = { retryable = false, attempts = 1, request_id = LONG:sub(1, 200) } },
    { "get", "api", nil, { request_id = "" }, message = "get: refused by the service",
      info = { retryable = false, attempts = 1 } },
    { "get", "auth", "token " .. TOKEN .. " refused", { error_msg = "echo " .. TOKEN, request_id = TOKEN },
      { TOKEN }, message = "get: token *** refused, echo *** (request id ***)",
      info = { retryable = false, attempts = 1, error_msg = "echo ***", request_id = "***" } },
  }
  for i, row in ipairs(rows) do
    it(("row %d: %s %s"):format(i, row[1], row[2]), function()
      local given = row[4]
      local ok, message, code, info = core.failure(row[1], row[2], row[3], given, row[5])
      assert.is_nil(ok)
      assert.equal(row[2], code)
      assert.equal(row.message, message)
      assert.same(row.info, info)
      if given then assert.equal(given, info, "the table given, completed") end
    end)
  end

  it("raises on misuse, naming the argument", function()
    assert.matches("#1", select(2, pcall(core.failure, nil, "api")))
    assert.matches("#2", select(2, pcall(core.failure, "get", {})))
    assert.matches("#4", select(2, pcall(core.failure, "get", "api", nil, "info")))
    assert.matches("#5", select(2, pcall(core.failure, "get", "api", nil, nil, "secret")))
  end)
end)

describe("core.redact", function()
  local SIG = "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature="
  local rows = {
    { "a secret1 b secret1c", { "secret1" }, "a *** b ***c" },
    { "aaaaa", { "aaaa" }, "***a" },
    { "aaaaaaaa", { "aaaa" }, "******" },
    { "abcdef", { "abcdef", "cdef" }, "***" },
    { "abcdef", { "cdef", "abcdef" }, "ab***" },
    { "x abc y", { "abc" }, "x abc y" },
    { "x abcd y", { "abc", 1234, "abcd" }, "x *** y" },
    { "x abcd y", { "ab", nil, "abcd" }, "x abcd y" }, -- a list ends at its first hole
    { "nul\0 and secret\0x", { "secret\0x" }, "nul\0 and ***" },
    { "plain", nil, "plain" },
    { SIG .. "0a1B-c_9 tail", nil, SIG .. "*** tail" },
    { SIG .. "aa, Signature=ff", nil, SIG .. "***, Signature=ff" },
    { SIG .. ", Signature=ff", nil, SIG .. ", Signature=***" },
    { "SDK-HMAC-SHA256 Signature=, Signature=zz", nil, "SDK-HMAC-SHA256 Signature=, Signature=***" },
    { "Signature=abc", nil, "Signature=abc" },
    { "SDK-HMAC-SHA256 Signature=", nil, "SDK-HMAC-SHA256 Signature=" },
    { SIG .. "aa\n" .. SIG .. "bb", nil, SIG .. "***\n" .. SIG .. "***" },
    { "SDK-HMAC-SHA256 x SDK-HMAC-SHA256 Signature=q", nil, "SDK-HMAC-SHA256 x SDK-HMAC-SHA256 Signature=***" },
  }
  for i, row in ipairs(rows) do
    it(("row %d: %q"):format(i, row[1]:sub(1, 40)), function()
      assert.equal(row[3], core.redact(row[1], row[2]))
    end)
  end

  it("returns what is not a string as it is", function()
    local t = {}
    assert.equal(42, core.redact(42, { "4242" }))
    assert.equal(t, core.redact(t))
    assert.is_nil(core.redact(nil))
  end)

  it("agrees with the Lua rule it replaces on random text", function()
    local pieces = { "SDK-HMAC-SHA256", "Signature=", "ab", "abab", "ba", "-", "_", ",", " ", "\0", "\n", "x9",
      "***", "*" }
    for _ = 1, 3000 do
      local text, secrets = {}, {}
      for _ = 1, math.random(0, 14) do text[#text + 1] = pieces[math.random(#pieces)] end
      for _ = 1, math.random(0, 3) do
        secrets[#secrets + 1] = pieces[math.random(#pieces)] .. pieces[math.random(#pieces)]
      end
      text = table.concat(text)
      assert.equal(former.redact(text, secrets), core.redact(text, secrets), ("%q"):format(text))
    end
  end)
end)

describe("pipeline.errors and pipeline.redaction over the C rule", function()
  local errors = require("pipeline.errors")
  local redaction = require("pipeline.redaction")

  it("builds failures and redacts with a keeper's secrets", function()
    local keeper = redaction.keeper(TOKEN)
    local _, message, code, info = errors.failure("get", "auth", "bad " .. TOKEN, { error_msg = TOKEN }, keeper)
    assert.equal("get: bad ***, ***", message)
    assert.equal("auth", code)
    assert.equal("***", info.error_msg)
    assert.equal("x *** y", keeper.redact("x " .. TOKEN .. " y"))
    assert.equal("x *** y", redaction.redact("x " .. TOKEN .. " y", keeper))
    assert.same({ TOKEN }, redaction.secret_list(keeper))
    -- the keeper's own fields hold no secret
    for _, value in pairs(keeper) do assert.equal("function", type(value)) end
  end)
end)

describe("core.answer against the Lua rule it replaces", function()
  -- Random answers made of what the rule reads, in JSON both rules read alike
  -- (integers as numbers, no raw control characters in strings: lua-cjson
  -- takes those, RFC 8259 does not).
  local TEXTS = { '""', '"x"', '"APIGW.0308"', '"COCT.0070003"', '"DEV.1"', '"a\\nb"', '"\\u00e9\\ud83d\\ude00"',
    '"' .. TOKEN .. '"', '"SDK-HMAC-SHA256 Signature=abc"', "12", "-3", "0", "true", "false", "null", "{}", "[]",
    '[1,"a"]', '{"x":1}' }
  local KEYS = { "error_code", "error_msg", "request_id", "success", "error", "data", "error\\u005fcode" }
  local INNER = { "code", "message", "title", "other" }
  local function pick(list) return list[math.random(#list)] end
  local function object(keys, depth)
    local members = {}
    for _ = 1, math.random(0, 4) do
      local value = pick(TEXTS)
      if depth == 1 and math.random(4) == 1 then value = object(INNER, 2) end
      members[#members + 1] = '"' .. pick(keys) .. '":' .. value
    end
    return "{" .. table.concat(members, ",") .. "}"
  end
  local function body()
    local r = math.random(12)
    if r == 1 then return SUCCESS end
    if r == 2 then return pick({ "", " ", "<html>", "[]", "null", '"s"', "{", '{"success":true} x' }) end
    if r == 3 then return "[" .. object(KEYS, 1) .. "]" end
    return object(KEYS, 1)
  end
  local STATUSES = { 100, 200, 201, 204, 301, 302, 400, 401, 403, 404, 418, 429, 500, 502, 503, 504 }
  local HEADERS = { "X-Request-Id: hid", "X-Request-Id: ", "X-Request-Id: id-" .. TOKEN, "Location: https://e/x",
    "Retry-After: 5", "Other: 1" }

  it("agrees on 5000 random answers, message for message", function()
    for _ = 1, 5000 do
      local text, status, expect = body(), pick(STATUSES), math.random(2) == 1 and "json" or "success"
      local lines, headers = {}, {}
      for _ = 1, math.random(0, 2) do
        local line = pick(HEADERS)
        lines[#lines + 1] = line
        local name, value = line:match("^([^:]+): ?(.*)$")
        name = name:lower()
        headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
      end
      local label = ("%s %d %s %s"):format(expect, status, text, table.concat(lines, "|"))
      local ok, message, code, info = former.settle("get", expect, { TOKEN }, status, text, headers)
      local ok2, message2, code2, info2 = core.answer("get", expect, status, text, header_text(lines), { TOKEN })
      if ok == true then
        assert.is_true(ok2, label)
      elseif ok ~= nil then
        assert.equal(text, ok2, label)
        assert.same(ok, former.decode(ok2), label)
        assert.equal(message.request_id, message2.request_id, label)
      else
        assert.is_nil(ok2, label)
        assert.equal(message, message2, label)
        assert.equal(code, code2, label)
        info2.sent, info2.retry_after = nil, nil
        assert.same(info, info2, label)
      end
    end
  end)
end)

--- The error rule, in one place: every runtime failure of every operation is
-- `nil, message, code, info`.  What an answer means and the message are the C
-- core's (src/answer.c: core.answer, core.failure); this module gives the Lua
-- side the same failure for what it finds itself (configuration, the shape of
-- an answer).
local core = require("pipeline.core")
local redaction = require("pipeline.redaction")

local errors = {}

--- Builds the failure for operation op: nil, message, code, info.
-- detail is what went wrong in words (nil: what code means); info holds
-- what is known of the answer, completed (retryable, attempts) and redacted.
function errors.failure(op, code, detail, info, secrets)
  return core.failure(op, code, detail, info, redaction.secret_list(secrets))
end

return errors

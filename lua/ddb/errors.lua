--- Error values returned by ddb as the second result of a failed call.
--
-- Every expected failure (network, service, validation) is returned as
-- `nil, err` where `err` is a table with at least `code` and `message`
-- and a `__tostring` that renders one line. Programmer errors (wrong
-- argument types) raise instead.
-- @module ddb.errors
local M = {}

local Error = {}
Error.__index = Error

--- `s` on one line: every control character written as an escape (`\n`,
-- else `\xNN`), so that a message quoting outside text (a name with a
-- newline, a service message) stays one line.
-- @tparam string s
-- @treturn string
function M.one_line(s)
  return (s:gsub("[%z\1-\31\127]", function(c)
    return c == "\n" and "\\n" or ("\\x%02x"):format(c:byte())
  end))
end

--- Renders the error as one line:
-- `[operation failed: ]code: message[ (HTTP status, request id)]`.
function Error:__tostring()
  local s = tostring(self.code) .. ": " .. tostring(self.message)
  if self.operation then s = tostring(self.operation) .. " failed: " .. s end
  local extra = {}
  if self.status then extra[#extra + 1] = "HTTP " .. tostring(self.status) end
  if self.request_id then extra[#extra + 1] = "request " .. tostring(self.request_id) end
  if #extra > 0 then s = s .. " (" .. table.concat(extra, ", ") .. ")" end
  return M.one_line(s)
end

--- Creates an error value.
-- @tparam string code short machine-readable code (e.g. `ResourceNotFoundException`)
-- @tparam string message one human-readable line (control characters in it
--   are escaped, see `one_line`)
-- @tparam[opt] table fields extra fields copied into the error (`status`, `request_id`, `retryable`, ...)
-- @treturn table the error, with `retryable` defaulting to false
function M.new(code, message, fields)
  assert(type(code) == "string", "error code must be a string")
  local e = { code = code, message = M.one_line(message ~= nil and tostring(message) or code), retryable = false }
  if fields then
    for k, v in pairs(fields) do e[k] = v end
  end
  return setmetatable(e, Error)
end

--- `v` quoted for a one-line message: `%q` with newlines written `\n`,
-- cut after `max` bytes (default 64) with `...` after the closing quote.
-- @param v any value (`tostring` is applied)
-- @tparam[opt=64] integer max
-- @treturn string
function M.quote(v, max)
  local s = tostring(v)
  max = max or 64
  local cut = #s > max
  if cut then s = s:sub(1, max) end
  s = ("%q"):format(s):gsub("\\\n", "\\n")
  return cut and s .. "..." or s
end

--- True when `v` is an error value made by this module.
function M.is(v)
  return getmetatable(v) == Error
end

--- Shorthand for `return nil, errors.new(...)`.
function M.fail(code, message, fields)
  return nil, M.new(code, message, fields)
end

return M

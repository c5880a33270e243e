--- Identifiers and timestamps of the messaging layer.
--
-- Times are UTC ISO-8601 with fixed-width microseconds and `+00:00`
-- (`2026-11-26T22:00:46.123456+00:00`), so string order is time order.
-- Ids are canonical lowercase UUIDs; anything else is refused before it
-- can become part of a key.
-- @module ddb.ids
local core = require("ddb.core")

local M = {}

local UUID_PATTERN = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local TIME_PATTERN = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%d%+00:00$"

--- True when `s` is a canonical lowercase UUID (36 characters, hex and dashes).
-- @param s any value
-- @treturn boolean
function M.is_uuid(s)
  return type(s) == "string" and #s == 36 and s:match(UUID_PATTERN) ~= nil and s:lower() == s
end

--- A new random (version 4) UUID, from OpenSSL's CSPRNG.
-- @treturn string
function M.uuid()
  local b = { core.random_bytes(16):byte(1, 16) }
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  return ("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x"):format(table.unpack(b))
end

--- Formats a time as `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`.
-- @tparam integer sec seconds since the epoch (a time in the years 1000..9999)
-- @tparam[opt=0] integer usec microseconds (0..999999)
-- @treturn string
-- @raise when `sec` is not an integer, `usec` not an integer 0..999999, or
--   the time falls outside the years 1000..9999 (the format has four digits)
function M.timestamp(sec, usec)
  if math.type(sec) ~= "integer" then
    error("ids.timestamp: sec must be an integer, got " .. (type(sec) == "number" and tostring(sec) or type(sec)), 2)
  end
  usec = usec or 0
  if math.type(usec) ~= "integer" or usec < 0 or usec > 999999 then
    error("ids.timestamp: usec must be an integer 0..999999, got " .. tostring(usec):sub(1, 40), 2)
  end
  local ok, date = pcall(os.date, "!%Y-%m-%dT%H:%M:%S", sec)
  local s = ok and date .. (".%06d+00:00"):format(usec)
  if not s or not M.is_timestamp(s) then
    error(("ids.timestamp: %d seconds is not a time in the years 1000..9999"):format(sec), 2)
  end
  return s
end

-- The last time M.now gave (seconds, microseconds), in this Lua state.
local last_sec, last_usec = 0, -1

--- The current UTC time as a timestamp string, always later than the last
-- one this function gave in this process: when the system clock is set back
-- (NTP) or two calls fall in one microsecond, the time is the last one plus
-- 1 µs, so messages written one after the other keep their order.
-- @treturn string
function M.now()
  local sec, usec = core.now()
  if sec < last_sec or (sec == last_sec and usec <= last_usec) then
    sec, usec = last_sec + (last_usec + 1) // 1000000, (last_usec + 1) % 1000000
  end
  last_sec, last_usec = sec, usec
  return M.timestamp(sec, usec)
end

--- True when `s` is a timestamp in the format above.
-- @param s any value
-- @treturn boolean
function M.is_timestamp(s)
  return type(s) == "string" and s:match(TIME_PATTERN) ~= nil
end

--- Parses a timestamp into seconds and microseconds (nil when malformed).
-- @tparam string s
-- @treturn integer|nil seconds since the epoch
-- @treturn integer|nil microseconds
function M.parse_timestamp(s)
  if not M.is_timestamp(s) then return nil end
  local y, mo, d, h, mi, se, us = s:match("^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)%.(%d+)")
  y, mo, d, h, mi, se = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(se)
  -- days from civil (Howard Hinnant's algorithm), independent of the local time zone
  local yy = mo <= 2 and y - 1 or y
  local era = (yy >= 0 and yy or yy - 399) // 400
  local yoe = yy - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + h * 3600 + mi * 60 + se, tonumber(us)
end

--- The timestamp `n` microseconds after `s` (used to give two messages
-- written in the same microsecond distinct, still ordered, times).
-- @tparam string s a timestamp
-- @tparam[opt=1] integer n microseconds
-- @treturn string
function M.after(s, n)
  local sec, usec = M.parse_timestamp(s)
  if not sec then error("ids.after: not a timestamp", 2) end
  if n ~= nil and math.type(n) ~= "integer" then error("ids.after: n must be an integer", 2) end
  usec = usec + (n or 1)
  return M.timestamp(sec + usec // 1000000, usec % 1000000)
end

return M

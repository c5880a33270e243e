--- Lua values <-> DynamoDB AttributeValues.
--
-- `marshal.item{ pk = "x", n = 3 }` gives `{ pk = { S = "x" }, n = { N = "3" } }`,
-- the shape DynamoDB's JSON protocol uses; `marshal.unitem` reverses it.
--
-- How Lua values map to the ten AttributeValue types:
--
-- * string -> `S` (must be valid UTF-8; use `marshal.binary` for bytes);
--   boolean -> `BOOL`; `marshal.null` -> `{ NULL = true }`.
-- * number -> `N`, without losing precision: an integer is sent as its exact
--   decimal text; a float as the shortest of `%.15g`/`%.16g`/`%.17g` that
--   reads back to the same float (always with a `.` decimal point, whatever
--   the C locale), and an integral float within 2^53 as an integer (`3.0`
--   is sent as `"3"`, so it comes back as the integer `3`; subnormals try
--   shorter precisions too, so `5e-324` is `"5e-324"`). NaN and
--   infinities cannot be sent. `marshal.number("123456789012345678901234567890.5")`
--   wraps a decimal string to send exactly as written.
--   Reading `N`: integer text that fits an int64 gives a Lua integer; other
--   text gives a float when that float marshals back to the same decimal
--   value; anything else (more digits than a double holds, 2^63, ...) gives
--   a `marshal.number` wrapper, so no precision is ever lost silently.
-- * `marshal.binary(bytes)` -> `B` (base64 on the wire); `B` reads back as
--   a binary wrapper with a `.bytes` field.
-- * `marshal.set("S"|"N"|"B", list)` -> `SS`/`NS`/`BS`; sets read back as a
--   set wrapper with `.kind` and `.values` (sorted). DynamoDB rejects empty
--   sets and duplicate members, so both raise here.
-- * tables -> `M` or `L`. A Lua table cannot tell an empty list from an empty
--   map, so the rule is explicit: **an empty plain table is an empty map
--   (`M {}`)**, and a table marked with `marshal.list(t)` is a list, so
--   `marshal.list{}` is `L []`. An unmarked non-empty table is a list when
--   its keys are exactly 1..n, a map when they are all strings, and an error
--   when it has both (or holes, or keys of other types). The marker is the
--   metatable `marshal.array_mt`, which is `ddb.core.array_mt`: the `L`
--   value produced here carries it, so the JSON encoder writes `[]` for an
--   empty list, and `L` values read back carry it too, so unmarshal ->
--   marshal keeps `L []` and `M {}` apart.
--
-- `marshal.null` is `ddb.core.null` (the JSON codec's `null`), so a JSON
-- `null` and a DynamoDB `NULL` are one sentinel.
--
-- Wrappers (number, binary, set) have `__tostring` and `__eq`; `__eq` only
-- compares wrappers with wrappers (Lua never calls `__eq` for a table and a
-- number), e.g. `marshal.number("1.50") == marshal.number("1.5")`.
--
-- Values that cannot be marshalled (functions, threads, userdata other than
-- `marshal.null`, NaN/inf, tables with mixed or non-string keys, reference
-- cycles, invalid UTF-8 strings, empty or duplicate sets) are programmer
-- errors and raise, naming the attribute path with Lua's 1-based indices,
-- e.g. `attribute "a.b[2]": cannot marshal a function`. Malformed
-- AttributeValues given to `unitem`/`unvalue` raise the same way.
--
-- Number syntax is checked (`-?digits[.digits][(e|E)[+-]digits]`); DynamoDB's
-- own limits (38 significant digits, magnitudes 1E-130 to 1E+126) are left to
-- the service, which reports them as a ValidationException.
-- @module ddb.marshal

local core = require("ddb.core")

local byte, char, format = string.byte, string.char, string.format
local concat, sort, unpack = table.concat, table.sort, table.unpack
local math_type, tointeger, huge = math.type, math.tointeger, math.huge
local utf8_len = utf8.len
local error, getmetatable, setmetatable, next, pcall, tonumber, type, tostring, ipairs =
  error, getmetatable, setmetatable, next, pcall, tonumber, type, tostring, ipairs

local M = {}

--- The sentinel for a DynamoDB `NULL` (and JSON `null`): `ddb.core.null`.
M.null = core.null
local NULL = M.null

--- The metatable marking a table as a list (`L`): `ddb.core.array_mt`.
M.array_mt = core.array_mt
local ARRAY = M.array_mt

---------------------------------------------------------------------------
-- Failures: internal code raises a Failure (message + path); the public
-- entry points turn it into a string error at the caller's level.

local Failure = {}

local function path_text(st, d)
  local parts = {}
  for i = 1, d do
    local k = st.path[i]
    if math_type(k) == "integer" then
      parts[#parts + 1] = "[" .. k .. "]"
    elseif i == 1 then
      parts[#parts + 1] = k
    else
      parts[#parts + 1] = "." .. k
    end
  end
  return concat(parts)
end

local function fail(st, d, msg)
  local where
  if d == 0 then
    where = st.root
  else
    where = 'attribute "' .. path_text(st, d) .. '"'
  end
  error(setmetatable({ message = where .. ": " .. msg }, Failure), 0)
end

local function new_state(root)
  return { root = root, path = {}, seen = {} }
end

-- Calls f(...) and re-raises a Failure as a string at the level of whoever
-- called the public function that called guard (level 3).
local function guard(f, ...)
  local ok, res = pcall(f, ...)
  if ok then return res end
  if getmetatable(res) == Failure then error(res.message, 3) end
  error(res, 0)
end

---------------------------------------------------------------------------
-- Base64 (RFC 4648, standard alphabet, padded).

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local enc1, enc2, dec = {}, {}, {}
for i = 0, 63 do
  enc1[i] = B64:sub(i + 1, i + 1)
  dec[byte(B64, i + 1)] = i
end
for i = 0, 4095 do enc2[i] = enc1[i >> 6] .. enc1[i & 63] end

--- Encodes bytes as padded standard base64 (RFC 4648 section 4).
-- @tparam string s any bytes
-- @treturn string the base64 text
function M.base64_encode(s)
  if type(s) ~= "string" then error("base64_encode: expected a string, got " .. type(s), 2) end
  local n = #s
  local full = n - n % 3
  local out, j = {}, 0
  local i = 1
  -- 12 bytes per step: fewer table slots and calls than 3 at a time
  while i + 11 <= full do
    local a1, b1, c1, a2, b2, c2, a3, b3, c3, a4, b4, c4 = byte(s, i, i + 11)
    local v1 = a1 << 16 | b1 << 8 | c1
    local v2 = a2 << 16 | b2 << 8 | c2
    local v3 = a3 << 16 | b3 << 8 | c3
    local v4 = a4 << 16 | b4 << 8 | c4
    j = j + 1
    out[j] = enc2[v1 >> 12] .. enc2[v1 & 4095] .. enc2[v2 >> 12] .. enc2[v2 & 4095]
      .. enc2[v3 >> 12] .. enc2[v3 & 4095] .. enc2[v4 >> 12] .. enc2[v4 & 4095]
    i = i + 12
  end
  while i <= full do
    local a, b, c = byte(s, i, i + 2)
    local v = a << 16 | b << 8 | c
    j = j + 1
    out[j] = enc2[v >> 12] .. enc2[v & 4095]
    i = i + 3
  end
  local r = n - full
  if r == 1 then
    local v = byte(s, n) << 16
    out[j + 1] = enc2[v >> 12] .. "=="
  elseif r == 2 then
    local a, b = byte(s, n - 1, n)
    local v = a << 16 | b << 8
    out[j + 1] = enc2[v >> 12] .. enc1[(v >> 6) & 63] .. "="
  end
  return concat(out)
end

local CHUNK = 3 * 1024 -- bytes turned into a string per string.char call

--- Decodes padded standard base64, strictly.
-- Rejects a length that is not a multiple of 4, characters outside the
-- alphabet (including whitespace), misplaced padding, and non-zero pad bits.
-- @tparam string s base64 text
-- @treturn[1] string the bytes
-- @treturn[2] nil
-- @treturn[2] string why the input is not valid base64
function M.base64_decode(s)
  if type(s) ~= "string" then error("base64_decode: expected a string, got " .. type(s), 2) end
  local n = #s
  if n % 4 ~= 0 then return nil, "invalid base64: length is not a multiple of 4" end
  if n == 0 then return "" end
  local pad = 0
  if byte(s, n) == 61 then pad = byte(s, n - 1) == 61 and 2 or 1 end
  local full = pad > 0 and n - 4 or n
  local parts, np = {}, 0
  local buf, j = {}, 0
  for i = 1, full, 4 do
    local a, b, c, d = byte(s, i, i + 3)
    a, b, c, d = dec[a], dec[b], dec[c], dec[d]
    if not (a and b and c and d) then
      return nil, "invalid base64: bad character near offset " .. i
    end
    local v = a << 18 | b << 12 | c << 6 | d
    buf[j + 1], buf[j + 2], buf[j + 3] = v >> 16, (v >> 8) & 255, v & 255
    j = j + 3
    if j >= CHUNK then
      np = np + 1
      parts[np] = char(unpack(buf, 1, j))
      j = 0
    end
  end
  if pad > 0 then
    local a, b, c = byte(s, n - 3, n - 1)
    a, b = dec[a], dec[b]
    if pad == 1 then c = dec[c] else c = 0 end
    if not (a and b and c) then
      return nil, "invalid base64: bad character near offset " .. (n - 3)
    end
    if pad == 2 then
      if b & 15 ~= 0 then return nil, "invalid base64: non-zero padding bits" end
      buf[j + 1] = (a << 2) | (b >> 4)
      j = j + 1
    else
      if c & 3 ~= 0 then return nil, "invalid base64: non-zero padding bits" end
      local v = a << 18 | b << 12 | c << 6
      buf[j + 1], buf[j + 2] = v >> 16, (v >> 8) & 255
      j = j + 2
    end
  end
  if j > 0 then
    np = np + 1
    parts[np] = char(unpack(buf, 1, j))
  end
  return concat(parts)
end

---------------------------------------------------------------------------
-- Decimal numbers.

-- Splits decimal text into sign ("" or "-"), all digits, and the exponent
-- that applies to them as an integer (value = sign digits * 10^exp).
-- Returns nil when the text is not in DynamoDB's number syntax.
local function parse_decimal(s)
  local sign, int, rest = s:match("^(%-?)(%d+)(.*)$")
  if not sign then return nil end
  local frac = ""
  if rest:sub(1, 1) == "." then
    frac, rest = rest:match("^%.(%d+)(.*)$")
    if not frac then return nil end
  end
  local exp = 0
  if rest ~= "" then
    local esign, edigits = rest:match("^[eE]([-+]?)(%d+)$")
    if not esign then return nil end
    edigits = edigits:gsub("^0+", "")
    if #edigits > 9 then return nil end
    exp = edigits == "" and 0 or tointeger(tonumber(edigits))
    if esign == "-" then exp = -exp end
  end
  return sign, int .. frac, exp - #frac
end

-- The canonical text of a decimal: "0", or [-]D...De<exp> with no leading or
-- trailing zeros in the digits. Two texts have the same canonical form iff
-- they denote the same number. Returns nil for invalid text.
local function canonical(s)
  local sign, digits, exp = parse_decimal(s)
  if not sign then return nil end
  digits = digits:gsub("^0+", "")
  if digits == "" then return "0" end
  local stripped = digits:gsub("0+$", "")
  return sign .. stripped .. "e" .. (exp + #digits - #stripped)
end

-- Orders canonical texts numerically: returns true when a < b.
local function canonical_less(a, b)
  if a == b then return false end
  local function split(c)
    if c == "0" then return 0, "", 0 end
    local sign, digits, exp = c:match("^(%-?)(%d+)e(%-?%d+)$")
    -- magnitude: position of the leading digit
    return sign == "-" and -1 or 1, digits, tointeger(tonumber(exp)) + #digits
  end
  local sa, da, ma = split(a)
  local sb, db, mb = split(b)
  if sa ~= sb then return sa < sb end
  if sa == 0 then return false end
  local less
  if ma ~= mb then
    less = ma < mb
  else
    local w = #da > #db and #da or #db
    da, db = da .. ("0"):rep(w - #da), db .. ("0"):rep(w - #db)
    less = da < db
  end
  if sa < 0 then return not less end
  return less
end

local FLOAT_FORMATS = {}
for p = 1, 17 do FLOAT_FORMATS[p] = "%." .. p .. "g" end
local TWO53 = 2.0 ^ 53
local MIN_NORMAL = 2.0 ^ -1022

-- The N text for a Lua number, or nil for NaN/inf.
local function number_text(v)
  if math_type(v) == "integer" then return format("%d", v) end
  if v ~= v or v == huge or v == -huge then return nil end
  if v >= -TWO53 and v <= TWO53 then
    local i = tointeger(v)
    if i then return format("%d", i) end
  end
  -- Any decimal of at most 15 significant digits survives a trip through a
  -- normal double, so %.15g already is the shortest text when it reads back;
  -- subnormals have less precision, so for them shorter texts are tried too.
  local first = (v > -MIN_NORMAL and v < MIN_NORMAL) and 1 or 15
  for p = first, 17 do
    -- whatever the C locale's decimal point is, write "."
    local s = format(FLOAT_FORMATS[p], v):gsub("[^%d%-+eE]+", ".")
    if tonumber(s) == v then return s end
  end
end

local Number = { __name = "ddb.number" }
Number.__index = Number

--- A number wrapper renders as its decimal text.
function Number.__tostring(n) return n.text end

--- Two number wrappers are equal when they denote the same decimal value.
function Number.__eq(a, b)
  if getmetatable(a) ~= Number or getmetatable(b) ~= Number then return false end
  return canonical(a.text) == canonical(b.text)
end

local function new_number(text)
  return setmetatable({ text = text }, Number)
end

-- The Lua value for N text: integer, float, or a Number wrapper; nil if invalid.
local function from_number_text(s)
  local c = canonical(s)
  if not c then return nil end
  local v = tonumber(s)
  if math_type(v) == "integer" then return v end
  if v then
    local t = number_text(v)
    if t and canonical(t) == c then return v + 0.0 end
  end
  return new_number(s)
end

--- Wraps a decimal number to be sent exactly as written (`N`).
-- Use it for values a Lua number cannot hold, e.g.
-- `marshal.number("123456789012345678901234567890.5")`. The text is checked
-- against DynamoDB's number syntax: `-?digits[.digits][(e|E)[+-]digits]`.
-- A Lua number is accepted too and converted as `marshal.value` would.
-- @tparam string|number|table text decimal text, a Lua number, or a number wrapper
-- @treturn table a number wrapper: field `text`, `__tostring`, `__eq`
-- @raise when the text is not a valid number (or the number is NaN/inf)
function M.number(text)
  if getmetatable(text) == Number then return text end
  if type(text) == "number" then
    local t = number_text(text)
    if not t then error("marshal.number: cannot marshal " .. (text ~= text and "NaN" or tostring(text)), 2) end
    return new_number(t)
  end
  if type(text) ~= "string" then
    error("marshal.number: expected a decimal string, got " .. type(text), 2)
  end
  if not canonical(text) then
    error(format("marshal.number: %q is not a valid DynamoDB number", text), 2)
  end
  return new_number(text)
end

--- True when `v` is a number wrapper (made by `marshal.number` or read from `N`).
function M.is_number(v) return getmetatable(v) == Number end

---------------------------------------------------------------------------
-- Binary.

local Binary = { __name = "ddb.binary" }
Binary.__index = Binary

--- A binary wrapper renders as a short description, never its raw bytes.
function Binary.__tostring(b) return format("binary(%d bytes)", #b.bytes) end

--- Two binary wrappers are equal when their bytes are.
function Binary.__eq(a, b)
  return getmetatable(a) == Binary and getmetatable(b) == Binary and a.bytes == b.bytes
end

--- Wraps bytes to be sent as a binary attribute (`B`, base64 on the wire).
-- @tparam string bytes any bytes
-- @treturn table a binary wrapper: field `bytes`, `__tostring`, `__eq`
function M.binary(bytes)
  if type(bytes) ~= "string" then error("marshal.binary: expected a string, got " .. type(bytes), 2) end
  return setmetatable({ bytes = bytes }, Binary)
end

--- True when `v` is a binary wrapper.
function M.is_binary(v) return getmetatable(v) == Binary end

---------------------------------------------------------------------------
-- Sets.

local Set = { __name = "ddb.set" }
Set.__index = Set

--- A set wrapper renders as e.g. `SS set of 3`.
function Set.__tostring(s) return format("%sS set of %d", tostring(s.kind), #s.values) end

--- The number of members.
function Set.__len(s) return #s.values end

local SET_KINDS = { S = "S", N = "N", B = "B", SS = "S", NS = "N", BS = "B" }

-- Counts a table's entries and checks they are exactly 1..n; returns n or nil.
local function sequence_length(t)
  local count = 0
  for _ in next, t do count = count + 1 end
  for i = 1, count do
    if t[i] == nil then return nil end
  end
  return count
end

-- Checks and normalizes set members. Returns the members (sorted) as Lua
-- values, their wire texts (same order) and their comparison keys.
local function set_members(kind, list, st, d)
  if type(list) ~= "table" then fail(st, d, "set members must be a list, got " .. type(list)) end
  local n = sequence_length(list)
  if not n then fail(st, d, "set members must be a list with keys 1..n") end
  if n == 0 then fail(st, d, "empty set (DynamoDB rejects empty sets)") end
  local entries, seen = {}, {}
  for i = 1, n do
    local v = list[i]
    local value, wire, key
    if kind == "S" then
      if type(v) ~= "string" then fail(st, d, format("string set member %d is a %s", i, type(v))) end
      if not utf8_len(v) then fail(st, d, format("string set member %d is not valid UTF-8", i)) end
      value, wire, key = v, v, v
    elseif kind == "N" then
      if getmetatable(v) == Number then
        wire = v.text
      elseif type(v) == "number" then
        wire = number_text(v)
        if not wire then fail(st, d, "cannot marshal " .. (v ~= v and "NaN" or tostring(v)) .. " in a number set") end
      elseif type(v) == "string" then
        wire = v
      else
        fail(st, d, format("number set member %d is a %s", i, type(v)))
      end
      key = canonical(wire)
      if not key then fail(st, d, format("number set member %d (%q) is not a valid number", i, wire)) end
      value = from_number_text(wire)
    else
      if getmetatable(v) == Binary then v = v.bytes end
      if type(v) ~= "string" then fail(st, d, format("binary set member %d is a %s", i, type(v))) end
      value, wire, key = v, nil, v
    end
    if seen[key] then
      if kind == "B" then
        fail(st, d, format("duplicate member in binary set (members %d and %d)", seen[key], i))
      end
      fail(st, d, format("duplicate member %q in set (DynamoDB rejects duplicates)", wire))
    end
    seen[key] = i
    entries[i] = { value = value, wire = wire, key = key }
  end
  if kind == "N" then
    sort(entries, function(a, b) return canonical_less(a.key, b.key) end)
  else
    sort(entries, function(a, b) return a.key < b.key end)
  end
  local values, wires = {}, {}
  for i, e in ipairs(entries) do
    values[i] = e.value
    wires[i] = e.wire or M.base64_encode(e.key)
  end
  return values, wires
end

local function new_set(kind, values)
  return setmetatable({ kind = kind, values = setmetatable(values, ARRAY) }, Set)
end

--- Two set wrappers are equal when they have the same kind and members.
function Set.__eq(a, b)
  if getmetatable(a) ~= Set or getmetatable(b) ~= Set then return false end
  if a.kind ~= b.kind or #a.values ~= #b.values then return false end
  local ok, _, wa = pcall(set_members, a.kind, a.values, new_state("set"), 0)
  local ok2, _, wb = pcall(set_members, b.kind, b.values, new_state("set"), 0)
  if not (ok and ok2) then return false end
  for i = 1, #wa do
    local x, y = wa[i], wb[i]
    if a.kind == "N" then x, y = canonical(x), canonical(y) end
    if x ~= y then return false end
  end
  return true
end

--- Makes a set (`SS`, `NS` or `BS`).
-- Members: strings for `"S"`; Lua numbers, number wrappers or decimal strings
-- for `"N"`; byte strings or binary wrappers for `"B"`. The wrapper's
-- `values` are normalized (numbers as `unvalue` would give them, binaries
-- as raw byte strings) and sorted (byte order for S and B, numeric for N).
-- @tparam string kind `"S"`, `"N"` or `"B"` (`"SS"`, `"NS"`, `"BS"` also accepted)
-- @tparam table list the members, keys 1..n
-- @treturn table a set wrapper: fields `kind` and `values`, `__tostring`, `__eq`, `__len`
-- @raise on an unknown kind, an empty list, a duplicate, or a member of the wrong type
function M.set(kind, list)
  local k = SET_KINDS[kind]
  if not k then error("marshal.set: kind must be \"S\", \"N\" or \"B\", got " .. tostring(kind), 2) end
  local values = guard(set_members, k, list, new_state("marshal.set"), 0)
  return new_set(k, values)
end

--- True when `v` is a set wrapper.
function M.is_set(v) return getmetatable(v) == Set end

---------------------------------------------------------------------------
-- Lists.

--- Marks a table as a list, so it marshals to `L` even when empty.
-- Sets the metatable `marshal.array_mt` (`ddb.core.array_mt`).
-- @tparam[opt] table t the table (a new empty one when nil)
-- @treturn table `t`
-- @raise when `t` already has another metatable
function M.list(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then error("marshal.list: expected a table, got " .. type(t), 2) end
  local mt = getmetatable(t)
  if mt ~= nil and mt ~= ARRAY then error("marshal.list: table already has a metatable", 2) end
  return setmetatable(t, ARRAY)
end

--- True when `t` is a table marked as a list.
function M.is_list(t) return type(t) == "table" and getmetatable(t) == ARRAY end

---------------------------------------------------------------------------
-- Marshalling.

local marshal_value

-- Classifies a table's keys: returns "M" or "L" (and n for a list).
local function table_kind(t, st, d)
  local is_list = getmetatable(t) == ARRAY
  local nstr, nint, maxint = 0, 0, 0
  local first_str
  for k in next, t do
    if type(k) == "string" then
      nstr = nstr + 1
      first_str = first_str or k
    elseif math_type(k) == "integer" then
      nint = nint + 1
      if k > maxint then maxint = k end
      if k < 1 then fail(st, d, format("table has integer key %d; a list needs keys exactly 1..n", k)) end
    else
      local what = type(k) == "number" and tostring(k) or "a " .. type(k)
      fail(st, d, "non-string map key (" .. what .. ")")
    end
  end
  if is_list then
    if nstr > 0 then fail(st, d, format("list has a string key %q", first_str)) end
    if maxint ~= nint then fail(st, d, "list has holes; keys must be exactly 1..n") end
    return "L", nint
  end
  if nint > 0 then
    if nstr > 0 then fail(st, d, "table has both string and integer keys") end
    if maxint ~= nint then fail(st, d, "table's integer keys are not exactly 1..n (holes)") end
    return "L", nint
  end
  return "M"
end

local function marshal_map(t, st, d)
  local out = {}
  local path = st.path
  for k, v in next, t do
    if not utf8_len(k) then fail(st, d, "map key is not valid UTF-8") end
    path[d + 1] = k
    out[k] = marshal_value(v, st, d + 1)
  end
  return out
end

-- Deepest nesting accepted (as the JSON codec's): a deeper value, or a
-- runaway recursion, is refused with a clear message, not a stack overflow.
local MAX_DEPTH = 512
M.MAX_DEPTH = MAX_DEPTH

local function too_deep(st, d)
  fail(st, d, format("nesting deeper than %d levels", MAX_DEPTH))
end

marshal_value = function(v, st, d)
  if d > MAX_DEPTH then too_deep(st, d) end
  if v == NULL then return { NULL = true } end
  local tv = type(v)
  if tv == "string" then
    if not utf8_len(v) then fail(st, d, "string is not valid UTF-8 (use marshal.binary for bytes)") end
    return { S = v }
  elseif tv == "number" then
    local t = number_text(v)
    if not t then fail(st, d, "cannot marshal " .. (v ~= v and "NaN" or tostring(v))) end
    return { N = t }
  elseif tv == "boolean" then
    return { BOOL = v }
  elseif tv == "table" then
    local mt = getmetatable(v)
    if mt == Number then
      if type(v.text) ~= "string" or not canonical(v.text) then
        fail(st, d, format("%q is not a valid number", tostring(v.text)))
      end
      return { N = v.text }
    elseif mt == Binary then
      if type(v.bytes) ~= "string" then fail(st, d, "binary wrapper without bytes") end
      return { B = M.base64_encode(v.bytes) }
    elseif mt == Set then
      local kind = SET_KINDS[v.kind]
      if not kind then fail(st, d, "set wrapper with unknown kind " .. tostring(v.kind)) end
      local _, wires = set_members(kind, v.values, st, d)
      return { [kind .. "S"] = setmetatable(wires, ARRAY) }
    end
    if st.seen[v] then fail(st, d, "table contains a reference cycle") end
    st.seen[v] = true
    local kind, n = table_kind(v, st, d)
    local out
    if kind == "L" then
      local list = {}
      local path = st.path
      for i = 1, n do
        path[d + 1] = i
        list[i] = marshal_value(v[i], st, d + 1)
      end
      out = { L = setmetatable(list, ARRAY) }
    else
      out = { M = marshal_map(v, st, d) }
    end
    st.seen[v] = nil
    return out
  elseif v == nil then
    fail(st, d, "cannot marshal nil (use marshal.null)")
  end
  fail(st, d, "cannot marshal a " .. tv)
end

local function marshal_item(t, st)
  if type(t) ~= "table" then fail(st, 0, "expected a table, got " .. type(t)) end
  local mt = getmetatable(t)
  if mt == ARRAY or mt == Number or mt == Binary or mt == Set or t == NULL then
    fail(st, 0, "an item must be a map with string keys")
  end
  st.seen[t] = true
  if table_kind(t, st, 0) ~= "M" then fail(st, 0, "an item must be a map with string keys") end
  return marshal_map(t, st, 0)
end

--- Marshals a Lua table (string keys) into an AttributeValue map (an item).
-- @tparam table t e.g. `{ pk = "x", n = 3 }`
-- @treturn table e.g. `{ pk = { S = "x" }, n = { N = "3" } }`
-- @raise on a value that cannot be marshalled, naming its attribute path
function M.item(t)
  local r = guard(marshal_item, t, new_state("item"))
  return r
end

--- Marshals one Lua value into an AttributeValue.
-- @param v a string, number, boolean, `marshal.null`, table or wrapper
-- @treturn table e.g. `{ S = "x" }`, `{ L = { ... } }`
-- @raise on a value that cannot be marshalled, naming its attribute path
function M.value(v)
  local r = guard(marshal_value, v, new_state("value"), 0)
  return r
end

---------------------------------------------------------------------------
-- Unmarshalling.

local unmarshal_value

local function unmarshal_map(m, st, d)
  if type(m) ~= "table" then fail(st, d, "expected an AttributeValue map, got " .. type(m)) end
  local out = {}
  local path = st.path
  for k, av in next, m do
    if type(k) ~= "string" then fail(st, d, "non-string attribute name (" .. type(k) .. ")") end
    path[d + 1] = k
    out[k] = unmarshal_value(av, st, d + 1)
  end
  return out
end

unmarshal_value = function(av, st, d)
  if d > MAX_DEPTH then too_deep(st, d) end
  if type(av) ~= "table" then fail(st, d, "expected an AttributeValue table, got " .. type(av)) end
  local tag, x = next(av)
  if tag == nil then fail(st, d, "empty AttributeValue") end
  if next(av, tag) ~= nil then fail(st, d, "AttributeValue has more than one type") end
  if tag == "S" then
    if type(x) ~= "string" then fail(st, d, "S value is not a string") end
    return x
  elseif tag == "N" then
    if type(x) ~= "string" then fail(st, d, "N value is not a string") end
    local v = from_number_text(x)
    if v == nil then fail(st, d, format("invalid number %q", x)) end
    return v
  elseif tag == "BOOL" then
    if type(x) ~= "boolean" then fail(st, d, "BOOL value is not a boolean") end
    return x
  elseif tag == "NULL" then
    if x ~= true then fail(st, d, "NULL value is not true") end
    return NULL
  elseif tag == "B" then
    if type(x) ~= "string" then fail(st, d, "B value is not a string") end
    local bytes, err = M.base64_decode(x)
    if not bytes then fail(st, d, err) end
    return setmetatable({ bytes = bytes }, Binary)
  elseif tag == "M" then
    return unmarshal_map(x, st, d)
  elseif tag == "L" then
    if type(x) ~= "table" then fail(st, d, "L value is not a table") end
    local n = sequence_length(x)
    if not n then fail(st, d, "L value is not a list") end
    local out = {}
    local path = st.path
    for i = 1, n do
      path[d + 1] = i
      out[i] = unmarshal_value(x[i], st, d + 1)
    end
    return setmetatable(out, ARRAY)
  elseif tag == "SS" or tag == "NS" or tag == "BS" then
    local kind = tag:sub(1, 1)
    if type(x) ~= "table" then fail(st, d, tag .. " value is not a table") end
    local list = x
    if kind == "B" then
      list = {}
      for i, b in ipairs(x) do
        if type(b) ~= "string" then fail(st, d, format("BS member %d is not a string", i)) end
        local bytes, err = M.base64_decode(b)
        if not bytes then fail(st, d, format("BS member %d: %s", i, err)) end
        list[i] = bytes
      end
      if #list ~= sequence_length(x) then fail(st, d, "BS value is not a list") end
    end
    return new_set(kind, (set_members(kind, list, st, d)))
  end
  fail(st, d, "unknown AttributeValue type " .. format("%q", tostring(tag)))
end

--- Unmarshals an AttributeValue map (an item) into a plain Lua table.
-- @tparam table av_map e.g. `{ pk = { S = "x" }, n = { N = "3" } }`
-- @treturn table e.g. `{ pk = "x", n = 3 }`
-- @raise on a malformed AttributeValue, naming its attribute path
function M.unitem(av_map)
  local r = guard(unmarshal_map, av_map, new_state("item"), 0)
  return r
end

--- Unmarshals one AttributeValue into a Lua value.
-- `L` gives a table marked with `marshal.array_mt`; `M` a plain table; `N`
-- an integer, float or number wrapper; `B` a binary wrapper; `SS`/`NS`/`BS`
-- a set wrapper; `NULL` gives `marshal.null`.
-- @tparam table av e.g. `{ N = "3" }`
-- @return the Lua value
-- @raise on a malformed AttributeValue, naming its attribute path
function M.unvalue(av)
  local r = guard(unmarshal_value, av, new_state("value"), 0)
  return r
end

---------------------------------------------------------------------------
-- Plain values.

local function plain(v, d)
  if type(v) ~= "table" or v == NULL then return v end
  if d > MAX_DEPTH then
    error(format("marshal.plain: nesting deeper than %d levels (or a reference cycle)", MAX_DEPTH), 0)
  end
  local mt = getmetatable(v)
  if mt == Number then return v.text end
  if mt == Binary then return M.base64_encode(v.bytes) end
  if mt == Set then
    local out = {}
    for i, x in ipairs(v.values) do
      if v.kind == "B" then
        out[i] = M.base64_encode(getmetatable(x) == Binary and x.bytes or x)
      else
        out[i] = plain(x, d + 1)
      end
    end
    return setmetatable(out, ARRAY)
  end
  local out = {}
  for k, x in next, v do out[k] = plain(x, d + 1) end
  if mt == ARRAY then setmetatable(out, ARRAY) end
  return out
end

--- Converts an unmarshalled value into something JSON-friendly.
-- Number wrapper -> its decimal string; binary -> base64 string; set ->
-- list of its members (numbers as numbers or decimal strings, binaries as
-- base64); lists stay marked as lists; maps are copied; `marshal.null`,
-- strings, numbers and booleans are returned as they are.
-- @param v a value as returned by `unvalue`/`unitem`
-- @return a new value without wrappers
function M.plain(v)
  return plain(v, 0)
end

return M

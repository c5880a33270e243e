-- Specs for the JSON codec of ddb.core (src/json.c): json_encode,
-- json_decode, null, array_mt, array.
local core = require("ddb.core")

local encode, decode = core.json_encode, core.json_decode
local null, array, array_mt = core.null, core.array, core.array_mt

-- Raises with the decode error so a failure shows the message.
local function dec(s)
  local v, err = decode(s)
  if v == nil then error("decode failed: " .. tostring(err), 2) end
  return v
end

local function encode_error(v)
  local ok, err = pcall(encode, v)
  assert.is_false(ok, "expected json_encode to raise")
  return err
end

local function decode_error(s)
  local ok, v, err = pcall(decode, s)
  assert.is_true(ok, "json_decode raised instead of returning nil, message: " .. tostring(v))
  assert.is_nil(v, "expected a decode failure for " .. string.format("%q", s))
  assert.is_string(err)
  return err
end

-- string.find-based match, with a context line on failure
local function assert_match(pat, s, ctx)
  assert(type(s) == "string" and s:find(pat), string.format("%q does not match %q (%s)", tostring(s), pat,
    tostring(ctx or "")))
end

-- String equality whose failure message shows the strings escaped (%q), so
-- raw control bytes never reach the terminal or the summary parser.
local function assert_str(expected, actual)
  if expected ~= actual then
    error(string.format("expected %q, got %q", tostring(expected), tostring(actual)):gsub("\n", "\\n"), 2)
  end
end

local function is_sequence(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  if n == 0 then return false end
  for i = 1, n do if rawget(t, i) == nil then return false end end
  return true
end

-- Deep equality that also checks number subtypes, the sign of zero and that
-- tables which must decode as arrays carry array_mt.
local function same(a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) == "number" then
    local want = math.type(a)
    if want == "float" and a == math.floor(a) and math.abs(a) < 2 ^ 53 and not (a == 0 and 1 / a < 0) then
      want = "integer" -- integral floats below 2^53 are encoded without a fraction
    end
    if want ~= math.type(b) then return false, path .. ": " .. want .. " vs " .. math.type(b) end
    if a ~= b then return false, path .. ": " .. string.format("%.17g vs %.17g", a, b) end
    if a == 0 and 1 / a ~= 1 / b then return false, path .. ": sign of zero" end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  local want_array = getmetatable(a) == array_mt or is_sequence(a)
  if want_array ~= (getmetatable(b) == array_mt) then return false, path .. ": array-ness differs" end
  for k, v in pairs(a) do
    local ok, why = same(v, b[k], path .. "[" .. tostring(k) .. "]")
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. ": extra key " .. tostring(k) end
  end
  return true
end

local function assert_same(a, b)
  local ok, why = same(a, b)
  assert(ok, why)
end

local function roundtrip(v)
  local s = encode(v)
  assert.is_string(s)
  local back = dec(s)
  assert_same(v, back)
  return s, back
end

local function nest(depth, open, close, inner)
  return string.rep(open, depth) .. (inner or "") .. string.rep(close, depth)
end

describe("ddb.core JSON", function()
  describe("module fields", function()
    it("exposes null as the NULL lightuserdata", function()
      assert.equal("userdata", type(null))
      assert.equal(null, dec("null"))
      assert.equal("null", encode(null))
    end)

    it("exposes array_mt and array()", function()
      assert.is_table(array_mt)
      local t = {}
      assert.equal(t, array(t))
      assert.equal(array_mt, getmetatable(t))
      local n = array()
      assert.equal(array_mt, getmetatable(n))
      assert.is_nil(next(n))
      assert.equal(array_mt, getmetatable(array(nil)))
      assert.has_error(function() array(42) end)
    end)

    it("leaves the stack balanced over many calls", function()
      for _ = 1, 20000 do
        encode({ a = { 1, 2, "x" } })
        decode('{"a":[1,2,"x"]}')
        decode("[1,]")
        pcall(encode, { a = print })
      end
      assert.equal('{"a":[1,2,"x"]}', encode(dec('{"a":[1,2,"x"]}')))
    end)
  end)

  describe("scalars", function()
    it("encodes booleans, null, strings and numbers", function()
      assert.equal("true", encode(true))
      assert.equal("false", encode(false))
      assert.equal("null", encode(nil))
      assert.equal('"abc"', encode("abc"))
      assert.equal('""', encode(""))
      assert.equal("0", encode(0))
      assert.equal("-17", encode(-17))
      assert.equal("1.5", encode(1.5))
      assert.equal("-0.25", encode(-0.25))
    end)

    it("decodes scalars with whitespace around", function()
      assert.is_true(dec(" \t\r\n true \n"))
      assert.is_false(dec("false"))
      assert.equal("x", dec('  "x"  '))
      assert.equal(42, dec("\n42\t"))
    end)
  end)

  describe("integers", function()
    it("are exact up to the int64 limits", function()
      assert.equal("9223372036854775807", encode(math.maxinteger))
      assert.equal("-9223372036854775808", encode(math.mininteger))
      for _, i in ipairs({ math.maxinteger, math.mininteger, math.maxinteger - 1, math.mininteger + 1,
                           (1 << 53) + 1, -(1 << 53) - 1, 100000000000000001, 0, 1, -1 }) do
        local back = dec(encode(i))
        assert.equal("integer", math.type(back))
        assert.equal(i, back)
      end
    end)

    it("decode as Lua integers when they fit int64", function()
      local v = dec("[0, -0, 20, 9223372036854775807, -9223372036854775808, 12345678901234567]")
      for i = 1, #v do assert.equal("integer", math.type(v[i])) end
      assert.equal(20, v[3])
      assert.equal(math.maxinteger, v[4])
      assert.equal(math.mininteger, v[5])
      assert.equal(12345678901234567, v[6])
    end)

    it("decode as floats beyond int64", function()
      local v = dec("[9223372036854775808, -9223372036854775809, 123456789012345678901234567890]")
      assert.equal("float", math.type(v[1]))
      assert.equal(2.0 ^ 63, v[1])
      assert.equal("float", math.type(v[2]))
      assert.equal(-(2.0 ^ 63), v[2])
      assert.equal(1.2345678901234568e29, v[3])
    end)
  end)

  describe("floats", function()
    it("round-trip exactly: -0.0, 0.1, 1e300, 5e-324 and friends", function()
      for _, x in ipairs({ -0.0, 0.1, 1e300, 5e-324, -5e-324, 1 / 3, 2 ^ -1074, 1.7976931348623157e308,
                           -1.7976931348623157e308, 2.2250738585072014e-308, 0.30000000000000004, 123.456,
                           1e21, 1e22, 1e23, 2 ^ 53, 2 ^ 60, 2 ^ 63, -(2 ^ 64), 9007199254740993.0 }) do
        local back = dec(encode(x))
        assert.equal("float", math.type(back), "not a float: " .. encode(x))
        assert.equal(x, back)
        assert.equal(1 / x, 1 / back) -- sign of zero
      end
    end)

    it("encode -0.0 keeping its sign", function()
      assert.equal("-0.0", encode(-0.0))
      assert.equal("0", encode(0.0))
    end)

    it("encode integral floats below 2^53 without a fraction", function()
      assert.equal("3", encode(3.0))
      assert.equal("-2", encode(-2.0))
      assert.equal("1000000", encode(1e6))
      assert.equal("9007199254740991", encode(2.0 ^ 53 - 1))
      assert.equal("integer", math.type(dec(encode(20.0))))
    end)

    it("encode integral floats from 2^53 so they stay floats", function()
      assert.equal("9007199254740992.0", encode(2.0 ^ 53))
      assert.equal("1e+300", encode(1e300))
    end)

    it("use the shortest of %.15g/%.16g/%.17g that round-trips", function()
      assert.equal("0.1", encode(0.1))
      assert.equal("0.30000000000000004", encode(0.1 + 0.2))
      assert.equal("0.3333333333333333", encode(1 / 3))
      assert.equal("1.5e-07", encode(1.5e-7))
    end)

    it("reject NaN and infinities", function()
      assert_match("NaN", encode_error(0 / 0))
      assert_match("infinity", encode_error(math.huge))
      assert_match("infinity", encode_error(-math.huge))
      assert_match("infinity", encode_error({ a = { math.huge } }))
    end)

    it("decode fractions and exponents as floats", function()
      local v = dec("[1.0, 1e2, 1E2, 1e+2, 1e-2, -0.0, 2.5e-3, 0.1, 1e-400, 0e99999999]")
      for i = 1, #v do assert.equal("float", math.type(v[i])) end
      assert.equal(1.0, v[1])
      assert.equal(100.0, v[2])
      assert.equal(100.0, v[3])
      assert.equal(100.0, v[4])
      assert.equal(0.01, v[5])
      assert.equal(-math.huge, 1 / v[6])
      assert.equal(0.0025, v[7])
      assert.equal(0.1, v[8])
      assert.equal(0.0, v[9])
      assert.equal(0.0, v[10])
    end)

    it("decode long and extreme numbers exactly (strtod fallback)", function()
      assert.equal(0.1, dec("0.1000000000000000000000000000000000000001"))
      assert.equal(1 / 3, dec("0.333333333333333314829616256247390992939472198486328125"))
      assert.equal(1e300, dec("1" .. string.rep("0", 300) .. ".0"))
      assert.equal(5e-324, dec("4.9406564584124654e-324"))
      assert.equal(1.7976931348623157e308, dec("1.7976931348623157e308"))
      assert.equal(123.0, dec("1230000000000000000000000000000e-28"))
    end)

    it("reject numbers out of the double range", function()
      assert_match("out of range", decode_error("1e400"))
      assert_match("out of range", decode_error("[-1e99999]"))
    end)

    it("do not depend on the C locale's decimal point", function()
      local old = os.setlocale(nil, "numeric")
      local found
      for _, name in ipairs({ "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "de_DE", "fr_FR" }) do
        if os.setlocale(name, "numeric") and string.format("%.1f", 0.5) == "0,5" then
          found = name
          break
        end
      end
      if not found then
        os.setlocale(old, "numeric")
        pending("no locale with a decimal comma is installed")
        return
      end
      local ok, err = pcall(function()
        assert.equal("0.5", encode(0.5))
        assert.equal("[1.25,-3.5e-10,0.1]", encode({ 1.25, -3.5e-10, 0.1 }))
        assert.equal(0.5, dec("0.5"))
        assert.equal(0.1, dec("0.1000000000000000000000000000001"))
        assert.equal(1e300, dec("1" .. string.rep("0", 300) .. ".0"))
        assert.equal(2.5e-300, dec("2.5e-300"))
      end)
      os.setlocale(old, "numeric")
      assert(ok, err)
    end)
  end)

  describe("strings", function()
    it("escape quote, backslash and every control character, not '/'", function()
      assert_str([["a\"b\\c/d"]], encode('a"b\\c/d'))
      local short = { [8] = "\\b", [9] = "\\t", [10] = "\\n", [12] = "\\f", [13] = "\\r" }
      for c = 0, 31 do
        local want = short[c] or string.format("\\u%04x", c)
        assert_str('"' .. want .. '"', encode(string.char(c)))
        assert_str(string.char(c), dec('"' .. want .. '"'))
      end
      assert_str('"\127"', encode("\127"))
    end)

    it("find special bytes at every position of long strings", function()
      local pad = string.rep("abcdefgh", 3)
      for pos = 0, 17 do
        local pre, post = pad:sub(1, pos), pad:sub(pos + 1)
        for _, c in ipairs({ 0, 1, 9, 10, 31 }) do
          local ch = string.char(c)
          assert_str('"' .. pre .. string.format("\\u%04x", c):gsub("\\u0009", "\\t"):gsub("\\u000a", "\\n")
            .. post .. '"', encode(pre .. ch .. post))
          assert_match("control character in string at byte offset " .. (pos + 1),
            decode_error('"' .. pre .. ch .. post .. '"'))
        end
        assert_str('"' .. pre .. '\\"' .. post .. '"', encode(pre .. '"' .. post))
        assert_str('"' .. pre .. "\\\\" .. post .. '"', encode(pre .. "\\" .. post))
        assert_str(pre .. '"' .. post, dec('"' .. pre .. '\\"' .. post .. '"'))
        assert_match("invalid UTF%-8 in string$", encode_error(pre .. "\xff" .. post))
        assert_match("invalid UTF%-8 in string at byte offset " .. (pos + 1),
          decode_error('"' .. pre .. "\xc0\xaf" .. post .. '"'))
        assert_str(pre .. "é" .. post, dec('"' .. pre .. "é" .. post .. '"'))
        assert_match("unterminated string", decode_error('"' .. pre))
      end
    end)

    it("find a special byte at every position of strings of every length up to 41", function()
      for len = 1, 41 do
        for pos = 1, len do
          local s = string.rep("a", pos - 1) .. '"' .. string.rep("b", len - pos)
          assert_str('"' .. s:gsub('"', '\\"') .. '"', encode(s))
          local c = string.rep("a", pos - 1) .. "\1" .. string.rep("b", len - pos)
          assert_str('"' .. c:gsub("\1", "\\u0001") .. '"', encode(c))
          assert_match("control character in string at byte offset " .. pos, decode_error('"' .. c .. '"'))
        end
        assert_str('"' .. string.rep("z", len) .. '"', encode(string.rep("z", len)))
      end
    end)

    it("keep short strings that differ in one byte apart (the decoder's string cache)", function()
      local list, n = {}, 0
      for len = 1, 41 do
        for pos = 1, len do
          for _, c in ipairs({ "x", "y" }) do
            n = n + 1
            list[n] = string.rep("k", pos - 1) .. c .. string.rep("k", len - pos)
          end
        end
      end
      local doc = '["' .. table.concat(list, '","') .. '"]'
      for _ = 1, 3 do -- the second and third pass hit the cache
        local got = dec(doc)
        assert.equal(n, #got)
        for i = 1, n do assert_str(list[i], got[i]) end
      end
    end)

    it("round-trip all bytes 0..127 and embedded NULs", function()
      local t = {}
      for c = 0, 127 do t[#t + 1] = string.char(c) end
      local s = table.concat(t)
      assert_str(s, dec(encode(s)))
      assert_str("a\0b", dec(encode("a\0b")))
      assert_str('"a\\u0000b"', encode("a\0b"))
    end)

    it("decode every simple escape", function()
      assert.equal("\"\\/\b\f\n\r\t", dec([["\"\\\/\b\f\n\r\t"]]))
      assert.equal("x/y", dec([["x\/y"]]))
    end)

    it("decode \\u escapes, both cases of hex, and surrogate pairs", function()
      assert.equal("A", dec([["\u0041"]]))
      assert.equal("é", dec([["\u00e9"]]))
      assert.equal("é", dec([["\u00E9"]]))
      assert.equal("€", dec([["\u20ac"]]))
      assert.equal("\u{FFFF}", dec([["\uffff"]]))
      assert.equal("😀", dec([["\ud83d\ude00"]]))
      assert.equal("😀", dec([["\uD83D\uDE00"]]))
      assert.equal("\u{10FFFF}", dec([["\udbff\udfff"]]))
      assert.equal("\u{10000}", dec([["\ud800\udc00"]]))
      assert.equal("a😀b€c", dec([["a\ud83d\ude00b\u20acc"]]))
    end)

    it("pass valid UTF-8 through unescaped", function()
      local s = "héllo wörld € 😀 \u{10FFFF} \u{7FF} \u{800} \u{FFFD}"
      assert.equal('"' .. s .. '"', encode(s))
      assert.equal(s, dec('"' .. s .. '"'))
    end)

    local bad_utf8 = {
      { "\xff", "0xff" },
      { "\xfe", "0xfe" },
      { "\x80", "stray continuation" },
      { "\xbf", "stray continuation" },
      { "\xc0\x80", "overlong NUL" },
      { "\xc1\xbf", "overlong 2-byte" },
      { "\xe0\x80\x80", "overlong 3-byte" },
      { "\xe0\x9f\xbf", "overlong 3-byte" },
      { "\xf0\x80\x80\x80", "overlong 4-byte" },
      { "\xf0\x8f\xbf\xbf", "overlong 4-byte" },
      { "\xed\xa0\x80", "surrogate U+D800" },
      { "\xed\xbf\xbf", "surrogate U+DFFF" },
      { "\xf4\x90\x80\x80", "U+110000" },
      { "\xf5\x80\x80\x80", "lead 0xf5" },
      { "\xc3", "truncated 2-byte" },
      { "\xe2\x82", "truncated 3-byte" },
      { "\xf0\x9f\x98", "truncated 4-byte" },
      { "\xc3\x28", "bad continuation" },
      { "\xe2\x28\xa1", "bad continuation" },
      { "ok\xe9", "latin-1" },
    }

    it("reject invalid UTF-8 when encoding values and keys", function()
      for _, case in ipairs(bad_utf8) do
        local s = case[1]
        assert_match("invalid UTF%-8", encode_error(s), case[2])
        assert_match("invalid UTF%-8", encode_error("abcdefghij" .. s .. "klmnopqrstuvwxyz"), case[2])
        assert_match("invalid UTF%-8", encode_error({ [s] = 1 }), case[2])
        assert_match("invalid UTF%-8", encode_error({ 1, { x = s } }), case[2])
      end
    end)

    it("reject invalid UTF-8 when decoding", function()
      for _, case in ipairs(bad_utf8) do
        local s = case[1]
        assert_match("invalid UTF%-8", decode_error('"' .. s .. '"'), case[2])
        assert_match("invalid UTF%-8", decode_error('{"' .. s .. '":1}'), case[2])
        assert_match("invalid UTF%-8", decode_error('["abcdefghijk' .. s .. 'lmnopqrstuvw"]'), case[2])
      end
      assert_match("invalid UTF%-8 in string at byte offset 3", decode_error('"ab\xffc"'))
    end)

    it("reject lone surrogate escapes", function()
      for _, s in ipairs({ [["\ud800"]], [["\udbff"]], [["\udc00"]], [["\udfff"]], [["\ud800\u0041"]],
                           [["\ud800x"]], [["\udc00\ud800"]], [["\ud800\ud800"]], [["a\ud83d"]],
                           [["\ud83d\"]] }) do
        local err = decode_error(s)
        assert.is_truthy(err:find("surrogate", 1, true) or err:find("unterminated", 1, true), s .. ": " .. err)
      end
      assert_match("surrogate escape at byte offset 2", decode_error([[ "\ud800" ]]))
    end)
  end)

  describe("tables", function()
    it("encode {} as an object and array_mt tables as arrays", function()
      assert.equal("{}", encode({}))
      assert.equal("[]", encode(array()))
      assert.equal("[]", encode(setmetatable({}, array_mt)))
      local s = encode({ a = array(), b = {} })
      assert.is_true(s == '{"a":[],"b":{}}' or s == '{"b":{},"a":[]}', s)
    end)

    it("decode [] with array_mt and {} without, so both round-trip", function()
      local a, o = dec("[]"), dec("{}")
      assert.equal(array_mt, getmetatable(a))
      assert.is_nil(getmetatable(o))
      assert.equal("[]", encode(a))
      assert.equal("{}", encode(o))
      assert.equal("[[],{},[[]]]", encode(dec(" [ [ ] , { } , [ [ ] ] ] ")))
      assert.equal(array_mt, getmetatable(dec("[1,2]")))
    end)

    it("encode sequences as arrays", function()
      assert.equal("[1,2,3]", encode({ 1, 2, 3 }))
      assert.equal('["a",true,null,{"k":[1]}]', encode({ "a", true, null, { k = { 1 } } }))
      local t = {}
      for i = 1, 1000 do t[i] = i end
      local back = dec(encode(t))
      assert.equal(1000, #back)
      for i = 1, 1000 do assert.equal(i, back[i]) end
    end)

    it("encode array_mt tables by 1..rawlen, holes as null", function()
      assert.equal("[1,2,3]", encode(array({ 1, 2, 3, name = "ignored" })))
      local t = array({ 1 })
      t[2] = null
      t[3] = 3
      assert.equal("[1,null,3]", encode(t))
    end)

    it("reject sparse and mixed tables", function()
      local msg = "table has mixed or non%-string keys"
      assert_match(msg, encode_error({ 1, nil, 3 }))
      assert_match(msg, encode_error({ [2] = "x" }))
      assert_match(msg, encode_error({ [1] = "a", [3] = "c" }))
      assert_match(msg, encode_error({ [0] = "a", "b" }))
      assert_match(msg, encode_error({ [-1] = "a" }))
      assert_match(msg, encode_error({ 1, 2, a = 3 }))
      assert_match(msg, encode_error({ a = 1, [1.5] = 2 }))
      assert_match(msg, encode_error({ [true] = 1 }))
      assert_match(msg, encode_error({ [{}] = 1 }))
      assert_match(msg, encode_error({ ok = { [10] = 1 } }))
    end)

    it("round-trip nested structures", function()
      local v = {
        name = "ddb",
        list = { 1, 2.5, "three", { four = 4 }, array(), {}, false, null },
        map = { ["with space"] = { nested = { deeper = { deepest = { math.maxinteger, -0.0, 1e-300 } } } } },
        empty_string = "",
        unicode = "日本語 ✓",
      }
      roundtrip(v)
      roundtrip({ Items = { { pk = { S = "a" }, n = { N = "1" } }, { pk = { S = "b" }, l = { L = array() } } } })
    end)

    it("round-trip objects and arrays larger than the stack chunk", function()
      for _, n in ipairs({ 1, 31, 32, 33, 63, 64, 65, 100, 1000, 100000 }) do
        local a, o = {}, {}
        for i = 1, n do
          a[i] = i % 3 == 0 and "s" .. i or i
          o["k" .. i] = { i }
        end
        roundtrip(a)
        roundtrip(o)
      end
    end)

    it("let the last duplicate key win", function()
      assert.equal(2, dec('{"a":1,"a":2}').a)
      assert.equal(3, dec('{"a":1,"b":0,"a":2,"a":3}').a)
      local parts = { '"dup":"first"' }
      for i = 1, 40 do parts[#parts + 1] = '"k' .. i .. '":' .. i end
      parts[#parts + 1] = '"dup":"last"'
      local t = dec("{" .. table.concat(parts, ",") .. "}")
      assert.equal("last", t.dup)
      assert.equal(40, t.k40)
      parts = {}
      for i = 1, 100 do parts[#parts + 1] = '"d":' .. i end
      assert.equal(100, dec("{" .. table.concat(parts, ",") .. "}").d)
    end)

    it("never invoke metamethods", function()
      local boom = function() error("metamethod called") end
      local mt = { __index = boom, __newindex = boom, __len = boom, __pairs = boom, __tostring = boom }
      assert.equal('{"a":1}', encode(setmetatable({ a = 1 }, mt)))
      assert.equal("[1,2]", encode(setmetatable({ 1, 2 }, mt)))
      assert.equal("{}", encode(setmetatable({}, { __len = function() return 3 end, __index = boom })))
      local proxy = setmetatable({}, { __index = { a = 1 }, __pairs = function() return next, { a = 1 } end })
      assert.equal("{}", encode(proxy))
    end)

    it("reject values JSON cannot carry, naming the type", function()
      assert_match("function", encode_error(print))
      assert_match("function", encode_error({ f = print }))
      assert_match("thread", encode_error(coroutine.create(print)))
      assert_match("userdata", encode_error(io.stdout))
      assert_match("userdata", encode_error({ io.stdout }))
    end)
  end)

  describe("nesting", function()
    it("accepts 512 levels and rejects 513 when encoding", function()
      local function deep(n)
        local t = {}
        for _ = 2, n do t = { t } end
        return t
      end
      assert.equal(nest(511, "[", "]", "{}"), encode(deep(512)))
      assert_match("nesting", encode_error(deep(513)))
    end)

    it("accepts 512 levels and rejects 513 when decoding", function()
      assert.is_table(dec(nest(512, "[", "]")))
      assert_match("nesting deeper than 512 levels at byte offset 512", decode_error(nest(513, "[", "]")))
      assert.is_table(dec(nest(511, '{"a":', "}", "{}")))
      assert_match("nesting", decode_error(nest(512, '{"a":', "}", "{}")))
      assert_match("nesting", decode_error(string.rep("[", 100000)))
    end)

    it("reports cycles as an error instead of looping", function()
      local t = {}
      t[1] = t
      assert_match("cycle", encode_error(t))
      local a = { b = {} }
      a.b.a = a
      assert_match("cycle", encode_error(a))
      -- a shared (acyclic) subtable is fine
      local shared = { x = 1 }
      assert.equal('[{"x":1},{"x":1}]', encode({ shared, shared }))
    end)
  end)

  describe("strict grammar", function()
    local bad = {
      "", "   ", "[1,]", '{"a":1,}', "[1 2]", '{"a" 1}', '{"a":}', "{a:1}", "{1:1}", '{"a":1', "[1", "[",
      "01", "-01", "00", "1.", ".5", "-", "+1", "1e", "1e+", "1.e5", "0x10", "NaN", "-NaN", "Infinity",
      "-Infinity", "'x'", '"\\x"', '"\\u12"', '"\\u12G4"', '"\\U0041"', '"abc', '"abc\\"', "[1]x", "{} {}",
      "1 2", "tru", "truth", "nul", "True", "FALSE", "[1,,2]", "[,1]", '"a\tb"', '"a\nb"', '"\0"',
      "// c\n1", "/* c */ 1", "1 // c", "\239\187\191{}", "[1]\0", "\0", '{"a":1 "b":2}', "[\"a\":1]",
      '{"a"}', '{,}', "\v1", "\f1",
    }

    it("rejects " .. #bad .. " malformed documents with nil, message", function()
      for _, s in ipairs(bad) do
        local err = decode_error(s)
        assert_match("at byte offset %d+", err, string.format("%q", s))
      end
    end)

    it("says where the problem is", function()
      assert_match("at byte offset 3", decode_error("[1,]"))
      assert_match("at byte offset 7", decode_error('{"a":1,}'))
      assert_match("invalid number %(leading zero%) at byte offset 1", decode_error("[01]"))
      assert_match("unexpected character 'x' at byte offset 2", decode_error("  x"))
      assert_match("trailing garbage at byte offset 4", decode_error("[1] 2"))
      assert_match("unterminated string at byte offset 1", decode_error('["abc'))
      assert_match("control character in string at byte offset 2", decode_error('"a\nb"'))
      assert_match("invalid escape at byte offset 2", decode_error('"a\\x"'))
      assert_match("unexpected end of input at byte offset 0", decode_error(""))
      assert_match("unexpected end of input at byte offset 5", decode_error('{"a":'))
    end)

    it("accepts the whole grammar", function()
      assert_same({ a = { 1, -2, 3.5, -4e-2, 2.5E-1, true, false, null, "", "\u{1F600}" }, b = {} },
        dec(' { "a" : [ 1 , -2 , 3.5 , -4e-2 , 2.5E-1 , true , false , null , "" , "\\ud83d\\ude00" ] ,'
          .. '\r\n\t"b":{} } '))
      assert.equal(0, dec("0"))
      assert.equal(-0.5, dec("-0.5"))
      assert.equal(10.0, dec("1.0e1"))
      assert.equal("", dec('""'))
    end)
  end)

  describe("API contract", function()
    it("json_decode returns nil, message and never raises on bad input", function()
      local ok, v, err = pcall(decode, "[1,")
      assert.is_true(ok)
      assert.is_nil(v)
      assert.is_string(err)
      assert.has_error(function() decode({}) end)
    end)

    it("json_encode raises with a one-line message", function()
      local ok, err = pcall(encode, { a = { b = print } })
      assert.is_false(ok)
      assert.equal("cannot encode a function", err)
    end)

    it("json_encode needs an argument", function()
      assert.has_error(function() encode() end)
    end)
  end)

  describe("randomized round-trip", function()
    local function rand_string()
      local n = math.random(0, 12)
      local parts = {}
      for i = 1, n do
        local r = math.random(1, 10)
        if r <= 4 then
          parts[i] = string.char(math.random(32, 126))
        elseif r == 5 then
          parts[i] = string.char(math.random(0, 31))
        elseif r == 6 then
          parts[i] = ({ '"', "\\", "/", "\127" })[math.random(1, 4)]
        elseif r == 7 then
          parts[i] = utf8.char(math.random(0x80, 0x7FF))
        elseif r == 8 then
          local cp = math.random(0x800, 0xFFFD)
          if cp >= 0xD800 and cp <= 0xDFFF then cp = cp - 0x800 end
          parts[i] = utf8.char(cp)
        elseif r == 9 then
          parts[i] = utf8.char(math.random(0x10000, 0x10FFFF))
        else
          parts[i] = string.rep("a", math.random(1, 40))
        end
      end
      return table.concat(parts)
    end

    local function rand_float()
      local r = math.random(1, 4)
      if r == 1 then return (math.random() - 0.5) * 10 ^ math.random(-20, 20) end
      if r == 2 then return math.random(-1000000, 1000000) / 1000 end
      if r == 3 then return ({ -0.0, 0.1, 5e-324, 2 ^ 53, 1e300, -1e-300 })[math.random(1, 6)] end
      while true do -- any bit pattern that is finite
        local x = string.unpack("<d", string.pack("<i8", math.random(math.mininteger, math.maxinteger)))
        if x == x and x ~= math.huge and x ~= -math.huge then return x end
      end
    end

    local function rand_value(depth)
      local r = math.random(1, depth < 4 and 10 or 7)
      if r == 1 then return math.random(math.mininteger, math.maxinteger) end
      if r == 2 then return math.random(-1000, 1000) end
      if r == 3 then return rand_float() end
      if r == 4 then return rand_string() end
      if r == 5 then return math.random(1, 2) == 1 end
      if r == 6 then return null end
      if r == 7 then return rand_string() end
      local n = math.random(0, 6)
      if r == 8 then
        local t = array()
        for i = 1, n do t[i] = rand_value(depth + 1) end
        return t
      end
      if r == 9 then -- a plain sequence (or {} when n == 0: an object)
        local t = {}
        for i = 1, n do t[i] = rand_value(depth + 1) end
        return t
      end
      local t = {}
      for _ = 1, n do t[rand_string()] = rand_value(depth + 1) end
      return t
    end

    it("decode(encode(v)) == v for 5000 generated values (seeded)", function()
      math.randomseed(20240601)
      for i = 1, 5000 do
        local v = rand_value(0)
        local s = encode(v)
        local back, err = decode(s)
        assert(back ~= nil, "case " .. i .. ": " .. tostring(err) .. " in " .. s)
        local ok, why = same(v, back)
        assert(ok, "case " .. i .. ": " .. tostring(why) .. " in " .. s)
        assert.equal(s:len(), encode(back):len())
      end
    end)

    it("float text is exact for 20000 random bit patterns", function()
      math.randomseed(7)
      for _ = 1, 20000 do
        local x = rand_float()
        local s = encode(x)
        local back = dec(s)
        assert(back == x and 1 / back == 1 / x, s)
        local integral = x == math.floor(x) and math.abs(x) < 2 ^ 53 and not (x == 0 and 1 / x < 0)
        assert(math.type(back) == (integral and "integer" or "float"), s)
      end
    end)
  end)
end)

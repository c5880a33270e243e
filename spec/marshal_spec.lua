-- luacheck: std +busted
-- Specs for ddb.marshal: Lua values <-> DynamoDB AttributeValues.
local marshal = require("ddb.marshal")

local core_ok, core = pcall(require, "ddb.core")
if not core_ok then core = {} end

local ARRAY = marshal.array_mt

local function is_list(t) return getmetatable(t) == ARRAY end

-- Deep equality that also tells lists (array marker) from maps and compares
-- wrappers with their __eq.
local function same(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  local ma, mb = getmetatable(a), getmetatable(b)
  if ma ~= mb then return false end
  if ma ~= nil and ma ~= ARRAY then return a == b end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function assert_same(expected, actual)
  assert.is_true(same(expected, actual), "values differ")
end

-- Expects f(...) to raise a message containing `text` (plain match).
local function raises(text, f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error containing: " .. text)
  assert.is_string(err)
  assert.is_truthy(err:find(text, 1, true), "error was: " .. tostring(err))
end

describe("marshal", function()
  describe("scalars", function()
    it("marshals strings, booleans and null", function()
      assert_same({ S = "héllo" }, marshal.value("héllo"))
      assert_same({ S = "" }, marshal.value(""))
      assert_same({ BOOL = true }, marshal.value(true))
      assert_same({ BOOL = false }, marshal.value(false))
      assert_same({ NULL = true }, marshal.value(marshal.null))
    end)

    it("unmarshals strings, booleans and null", function()
      assert.equal("héllo", marshal.unvalue({ S = "héllo" }))
      assert.equal(true, marshal.unvalue({ BOOL = true }))
      assert.equal(false, marshal.unvalue({ BOOL = false }))
      assert.equal(marshal.null, marshal.unvalue({ NULL = true }))
    end)

    it("shares the null sentinel with the C core when it has one", function()
      if core.null ~= nil then
        assert.equal(core.null, marshal.null)
      else
        assert.is_not_nil(marshal.null)
      end
    end)

    it("rejects strings that are not valid UTF-8", function()
      raises('attribute "s": string is not valid UTF-8', marshal.item, { s = "a\255b" })
    end)
  end)

  describe("numbers", function()
    local function N(v) return marshal.value(v).N end

    it("sends integers as exact decimal text", function()
      assert.equal("0", N(0))
      assert.equal("-17", N(-17))
      assert.equal("9223372036854775807", N(math.maxinteger))
      assert.equal("-9223372036854775808", N(math.mininteger))
    end)

    it("reads integer text that fits an int64 as a Lua integer", function()
      local max = marshal.unvalue({ N = "9223372036854775807" })
      assert.equal("integer", math.type(max))
      assert.equal(math.maxinteger, max)
      local min = marshal.unvalue({ N = "-9223372036854775808" })
      assert.equal("integer", math.type(min))
      assert.equal(math.mininteger, min)
      assert.equal(0, marshal.unvalue({ N = "-0" }))
      assert.equal(42, marshal.unvalue({ N = "0042" }))
    end)

    it("sends floats as the shortest text that reads back exactly", function()
      assert.equal("0.1", N(0.1))
      assert.equal("1e-300", N(1e-300))
      assert.equal("0.30000000000000004", N(0.1 + 0.2))
      assert.equal("0.3333333333333333", N(1 / 3))
      assert.equal("-2.5", N(-2.5))
      assert.equal("1.7976931348623157e+308", N(math.huge > 0 and 1.7976931348623157e308))
      assert.equal("1e-310", N(1e-310))
      assert.equal("5e-324", N(5e-324))
      for _, f in ipairs({ 0.1, 1e-300, 1 / 3, 2 / 3, 123.456, 5e-324, 1.7976931348623157e308, 2 ^ 60 + 0.0 }) do
        assert.equal(f, tonumber(N(f)))
      end
    end)

    it("sends integral floats within 2^53 without a fraction", function()
      assert.equal("3", N(3.0))
      assert.equal("0", N(-0.0))
      assert.equal("-1000000", N(-1e6))
      assert.equal("9007199254740992", N(2.0 ^ 53))
      assert.equal("-9007199254740992", N(-(2.0 ^ 53)))
      assert.equal("1e+20", N(1e20))
    end)

    it("round-trips floats exactly, including 0.1 and 1e-300", function()
      for _, f in ipairs({ 0.1, 1e-300, -1e-300, 1 / 3, 2.5, 1e20, 2.0 ^ 63, 5e-324, 1.7976931348623157e308 }) do
        local back = marshal.unvalue(marshal.value(f))
        assert.equal("float", math.type(back))
        assert.equal(f, back)
      end
    end)

    it("rejects NaN and infinities", function()
      raises('attribute "x": cannot marshal NaN', marshal.item, { x = 0 / 0 })
      raises('attribute "x": cannot marshal inf', marshal.item, { x = math.huge })
      raises('attribute "x": cannot marshal -inf', marshal.item, { x = -math.huge })
    end)

    it("reads text a float cannot hold exactly as a number wrapper", function()
      for _, text in ipairs({
        "123456789012345678901234567890.5",
        "9223372036854775808",   -- 2^63: one past int64
        "-9223372036854775809",
        "0.12345678901234567890123456789",
        "1e-400",                -- underflows a double
        "1e400",                 -- overflows a double
      }) do
        local v = marshal.unvalue({ N = text })
        assert.is_true(marshal.is_number(v), text)
        assert.equal(text, tostring(v))
        assert.equal(text, marshal.value(v).N)
      end
    end)

    it("reads other text that a float holds exactly as a float", function()
      local v = marshal.unvalue({ N = "100000000000000000000" })
      assert.equal("float", math.type(v))
      assert.equal(1e20, v)
      assert.equal(1.5, marshal.unvalue({ N = "1.50" }))
      assert.equal(100.0, marshal.unvalue({ N = "1E2" }))
      assert.equal(0.1, marshal.unvalue({ N = "0.1" }))
    end)

    it("sends wrapped decimal strings exactly", function()
      local n = marshal.number("123456789012345678901234567890.5")
      assert_same({ N = "123456789012345678901234567890.5" }, marshal.value(n))
      assert.equal("123456789012345678901234567890.5", tostring(n))
      assert.equal("-1.5E-7", marshal.value(marshal.number("-1.5E-7")).N)
      assert.equal("0.1", marshal.number(0.1).text)
      assert.equal("42", marshal.number(42).text)
    end)

    it("compares number wrappers by value", function()
      assert.equal(marshal.number("1.50"), marshal.number("1.5"))
      assert.equal(marshal.number("100"), marshal.number("1e2"))
      assert.equal(marshal.number("0"), marshal.number("-0.000"))
      assert.are_not.equal(marshal.number("1.5"), marshal.number("1.51"))
      assert.are_not.equal(marshal.number("-1"), marshal.number("1"))
    end)

    it("validates wrapped text against DynamoDB's number syntax", function()
      for _, bad in ipairs({ "", "-", "abc", "1e", "1e+", ".5", "5.", "+1", "0x10", "1,5", " 1", "1 ",
                             "inf", "NaN", "1.2.3", "1e5.5", "--1" }) do
        raises("is not a valid DynamoDB number", marshal.number, bad)
      end
      raises("expected a decimal string", marshal.number, true)
      raises("cannot marshal NaN", marshal.number, 0 / 0)
    end)

    it("rejects invalid N text when unmarshalling", function()
      raises('attribute "n": invalid number "1..2"', marshal.unitem, { n = { N = "1..2" } })
      raises('attribute "n": N value is not a string', marshal.unitem, { n = { N = 5 } })
    end)

    it("writes a '.' decimal point whatever the C locale", function()
      local old = os.setlocale(nil, "numeric")
      local found
      for _, name in ipairs({ "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "nl_NL.UTF-8" }) do
        if os.setlocale(name, "numeric") then found = name break end
      end
      if not found then
        pending("no locale with a ',' decimal point is installed")
        return
      end
      local ok, err = pcall(function()
        assert.equal("0.1", marshal.value(0.1).N)
        assert.equal("1.5e-300", marshal.value(1.5e-300).N)
        assert.equal(2.5, marshal.unvalue({ N = "2.5" }))
      end)
      os.setlocale(old, "numeric")
      assert(ok, err)
    end)
  end)

  describe("base64", function()
    local vectors = { -- RFC 4648 section 10
      { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
      { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    }

    it("encodes and decodes the RFC 4648 test vectors", function()
      for _, v in ipairs(vectors) do
        assert.equal(v[2], marshal.base64_encode(v[1]))
        assert.equal(v[1], marshal.base64_decode(v[2]))
      end
    end)

    it("handles all 256 byte values", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local all = table.concat(bytes)
      local expected = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQ"
        .. "kNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJi"
        .. "ouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR"
        .. "0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w=="
      assert.equal(expected, marshal.base64_encode(all))
      assert.equal(all, marshal.base64_decode(expected))
      -- every single byte and every length mod 3, at every offset of the data
      for i = 0, 255 do
        local s = string.char(i)
        assert.equal(s, marshal.base64_decode(marshal.base64_encode(s)))
        local s2 = string.char(i, 255 - i)
        assert.equal(s2, marshal.base64_decode(marshal.base64_encode(s2)))
      end
      for len = 0, 40 do
        local s = all:sub(100, 99 + len)
        assert.equal(s, marshal.base64_decode(marshal.base64_encode(s)))
      end
    end)

    it("round-trips a large random buffer", function()
      math.randomseed(7)
      local t = {}
      for i = 1, 100003 do t[i] = string.char(math.random(0, 255)) end
      local s = table.concat(t)
      local e = marshal.base64_encode(s)
      assert.equal(math.ceil(#s / 3) * 4, #e)
      assert.equal(s, marshal.base64_decode(e))
    end)

    it("rejects invalid input", function()
      for _, bad in ipairs({ "Z", "Zg", "Zg=", "Zg===", "Z===", "====", "Zm9v\n", "Zm 9v", "Zm9=v===",
                             "Zm=v", "-_8=", "Zh==", "Zm9=", "Zm9vYmF=", "Zg==Zg==", "Zm9v====" }) do
        local r, err = marshal.base64_decode(bad)
        assert.is_nil(r, bad)
        assert.is_truthy(err:find("invalid base64", 1, true), bad)
      end
    end)
  end)

  describe("binary", function()
    it("marshals to B with base64 and reads back a wrapper", function()
      local b = marshal.binary("\0\1\2\255")
      assert_same({ B = "AAEC/w==" }, marshal.value(b))
      local back = marshal.unvalue({ B = "AAEC/w==" })
      assert.is_true(marshal.is_binary(back))
      assert.equal("\0\1\2\255", back.bytes)
      assert.equal(b, back)
      assert_same({ B = "AAEC/w==" }, marshal.value(back))
    end)

    it("describes itself without dumping the bytes", function()
      local s = tostring(marshal.binary("\0secret\255"))
      assert.equal("binary(8 bytes)", s)
    end)

    it("allows empty binaries", function()
      assert_same({ B = "" }, marshal.value(marshal.binary("")))
      assert.equal("", marshal.unvalue({ B = "" }).bytes)
    end)

    it("rejects invalid base64 when unmarshalling, naming the path", function()
      raises('attribute "doc.blob": invalid base64', marshal.unitem, { doc = { M = { blob = { B = "!!!!" } } } })
    end)
  end)

  describe("sets", function()
    it("marshals string, number and binary sets", function()
      assert_same({ SS = marshal.list({ "a", "b", "c" }) }, marshal.value(marshal.set("S", { "c", "a", "b" })))
      assert_same({ NS = marshal.list({ "-2", "0.5", "3", "1e+20" }) },
        marshal.value(marshal.set("N", { 3, 0.5, -2, 1e20 })))
      assert_same({ BS = marshal.list({ "AA==", "Zg==" }) },
        marshal.value(marshal.set("B", { "f", marshal.binary("\0") })))
    end)

    it("marks the member list as an array", function()
      assert.is_true(is_list(marshal.value(marshal.set("S", { "x" })).SS))
    end)

    it("sorts members for determinism (numerically for N)", function()
      local s = marshal.set("N", { "10", 9, marshal.number("123456789012345678901234567890"), -1, "-1.5", 0 })
      assert.equal("N", s.kind)
      assert.equal(6, #s)
      local texts = {}
      for i, v in ipairs(s.values) do texts[i] = tostring(v) end
      assert.same({ "-1.5", "-1", "0", "9", "10", "123456789012345678901234567890" }, texts)
    end)

    it("unmarshals to set wrappers that round-trip", function()
      for _, av in ipairs({
        { SS = { "z", "a", "é" } },
        { NS = { "1", "2.5", "123456789012345678901234567890.5" } },
        { BS = { "Zm9v", "AA==" } },
      }) do
        local s = marshal.unvalue(av)
        assert.is_true(marshal.is_set(s))
        local again = marshal.unvalue(marshal.value(s))
        assert.equal(s, again)
        local tag = next(av)
        assert.equal(#av[tag], #marshal.value(s)[tag])
      end
      local ss = marshal.unvalue({ SS = { "z", "a" } })
      assert.equal("S", ss.kind)
      assert.same({ "a", "z" }, { ss.values[1], ss.values[2] })
      assert.equal("SS set of 2", tostring(ss))
    end)

    it("compares sets by kind and members", function()
      assert.equal(marshal.set("N", { 1, 2 }), marshal.set("N", { "2.0", 1 }))
      assert.are_not.equal(marshal.set("S", { "1" }), marshal.set("N", { 1 }))
      assert.are_not.equal(marshal.set("S", { "a" }), marshal.set("S", { "a", "b" }))
    end)

    it("rejects empty sets", function()
      raises("empty set", marshal.set, "S", {})
      raises('attribute "tags": empty set', marshal.unitem, { tags = { SS = {} } })
      local s = marshal.set("S", { "a" })
      s.values = {}
      raises('attribute "x.tags": empty set', marshal.item, { x = { tags = s } })
    end)

    it("rejects duplicates", function()
      raises('duplicate member "a"', marshal.set, "S", { "a", "b", "a" })
      raises("duplicate member", marshal.set, "N", { 1, 1.0 })
      raises("duplicate member", marshal.set, "N", { "1.50", 1.5 })
      raises("duplicate member in binary set", marshal.set, "B", { "x", marshal.binary("x") })
      raises('attribute "n": duplicate member', marshal.unitem, { n = { NS = { "1", "1.0" } } })
    end)

    it("rejects unknown kinds and members of the wrong type", function()
      raises("kind must be", marshal.set, "X", { "a" })
      raises("string set member 2 is a number", marshal.set, "S", { "a", 1 })
      raises("number set member 1 is a boolean", marshal.set, "N", { true })
      raises("is not a valid number", marshal.set, "N", { "one" })
      raises("binary set member 1 is a number", marshal.set, "B", { 5 })
      raises("must be a list", marshal.set, "S", "a")
    end)
  end)

  describe("maps and lists", function()
    it("marshals an empty plain table as an empty map", function()
      local av = marshal.value({})
      assert_same({ M = {} }, av)
      assert.is_false(is_list(av.M))
      assert_same({}, marshal.item({}))
    end)

    it("marshals marshal.list{} as an empty list carrying the array marker", function()
      local av = marshal.value(marshal.list({}))
      assert.is_true(is_list(av.L))
      assert.is_nil(next(av.L))
      assert.is_true(is_list(marshal.list()))
    end)

    it("keeps the empty map / empty list distinction through unmarshal and back", function()
      local item = marshal.item({ m = {}, l = marshal.list({}) })
      local back = marshal.unitem(item)
      assert.is_false(is_list(back.m))
      assert.is_true(is_list(back.l))
      local again = marshal.item(back)
      assert.is_truthy(again.m.M)
      assert.is_truthy(again.l.L)
      assert_same(item, again)
    end)

    it("marshals sequences as L and string-keyed tables as M", function()
      assert_same({ L = marshal.list({ { N = "1" }, { S = "two" }, { BOOL = true } }) },
        marshal.value({ 1, "two", true }))
      assert_same({ M = { a = { N = "1" }, b = { L = marshal.list({ { NULL = true } }) } } },
        marshal.value({ a = 1, b = { marshal.null } }))
    end)

    it("marshals and unmarshals items", function()
      local item = { pk = "x", n = 3 }
      assert_same({ pk = { S = "x" }, n = { N = "3" } }, marshal.item(item))
      assert_same(item, marshal.unitem({ pk = { S = "x" }, n = { N = "3" } }))
    end)

    it("gives unmarshalled lists the marker and maps none", function()
      local v = marshal.unvalue({ M = { xs = { L = { { N = "1" }, { L = {} } } } } })
      assert.is_nil(getmetatable(v))
      assert.is_true(is_list(v.xs))
      assert.is_true(is_list(v.xs[2]))
      assert.equal(1, v.xs[1])
    end)

    it("rejects tables with mixed keys, holes or non-string keys", function()
      raises('attribute "a": table has both string and integer keys', marshal.item, { a = { 1, x = 2 } })
      raises('attribute "a": table\'s integer keys are not exactly 1..n', marshal.item, { a = { [1] = 1, [3] = 3 } })
      raises('attribute "a": table has integer key 0', marshal.item, { a = { [0] = 1 } })
      raises('attribute "a": non-string map key (a boolean)', marshal.item, { a = { [true] = 1 } })
      raises('attribute "a": non-string map key (1.5)', marshal.item, { a = { [1.5] = 1 } })
      raises('attribute "a": list has a string key "x"', marshal.item, { a = marshal.list({ x = 1 }) })
      raises('attribute "a": list has holes', marshal.item, { a = marshal.list({ [2] = 1 }) })
    end)

    it("rejects an item that is not a map", function()
      raises("item: an item must be a map", marshal.item, { 1, 2 })
      raises("item: an item must be a map", marshal.item, marshal.list({}))
      raises("item: expected a table, got string", marshal.item, "x")
    end)

    it("names the attribute path in errors", function()
      raises('attribute "a.b[2]": cannot marshal a function', marshal.item, { a = { b = { 1, print } } })
      raises('attribute "a[1].c": cannot marshal a thread', marshal.item,
        { a = { { c = coroutine.create(print) } } })
      raises('attribute "f": cannot marshal a userdata', marshal.item, { f = io.stdout })
      raises("value: cannot marshal a function", marshal.value, print)
      raises('attribute "[3]": cannot marshal a function', marshal.value, { 1, 2, print })
      raises("value: cannot marshal nil", marshal.value, nil)
    end)

    it("raises at the caller's line", function()
      local ok, err = pcall(function()
        local r = marshal.item({ a = print })
        return r
      end)
      assert.is_false(ok)
      assert.is_truthy(err:match("marshal_spec%.lua:%d+: attribute \"a\""), err)
    end)

    it("rejects reference cycles", function()
      local t = {}
      t.self = t
      raises('attribute "x.self": table contains a reference cycle', marshal.item, { x = t })
      -- the same table twice (not a cycle) is fine
      local shared = { 1 }
      local one = { L = marshal.list({ { N = "1" } }) }
      assert_same({ L = marshal.list({ one, one }) }, marshal.value({ shared, shared }))
    end)

    it("refuses to mark a table that has another metatable", function()
      raises("already has a metatable", marshal.list, setmetatable({}, {}))
    end)

    it("rejects malformed AttributeValues, naming the path", function()
      raises('attribute "a": empty AttributeValue', marshal.unitem, { a = {} })
      raises('attribute "a": AttributeValue has more than one type', marshal.unitem, { a = { S = "x", N = "1" } })
      raises('attribute "a.b[2]": unknown AttributeValue type "X"', marshal.unitem,
        { a = { M = { b = { L = { { S = "ok" }, { X = "?" } } } } } })
      raises('attribute "a": BOOL value is not a boolean', marshal.unitem, { a = { BOOL = "true" } })
      raises('attribute "a": NULL value is not true', marshal.unitem, { a = { NULL = false } })
      raises("value: expected an AttributeValue table", marshal.unvalue, "x")
      raises("item: expected an AttributeValue map", marshal.unitem, nil)
    end)
  end)

  describe("plain", function()
    it("turns wrappers into their natural JSON-friendly form", function()
      local v = marshal.unitem({
        big = { N = "123456789012345678901234567890.5" },
        n = { N = "7" },
        bin = { B = "Zm9v" },
        ss = { SS = { "b", "a" } },
        ns = { NS = { "2", "1.5", "123456789012345678901234567890" } },
        bs = { BS = { "Zm9v" } },
        l = { L = {} },
        m = { M = {} },
        null = { NULL = true },
      })
      local p = marshal.plain(v)
      assert.equal("123456789012345678901234567890.5", p.big)
      assert.equal(7, p.n)
      assert.equal("Zm9v", p.bin)
      assert.same({ "a", "b" }, { p.ss[1], p.ss[2] })
      assert.is_true(is_list(p.ss))
      assert.equal(1.5, p.ns[1])
      assert.equal(2, p.ns[2])
      assert.equal("123456789012345678901234567890", p.ns[3])
      assert.equal("Zm9v", p.bs[1])
      assert.is_true(is_list(p.l))
      assert.is_false(is_list(p.m))
      assert.equal(marshal.null, p.null)
      assert.equal("x", marshal.plain("x"))
    end)
  end)

  describe("random round-trips", function()
    local function random_string()
      local n = math.random(0, 12)
      local cps = {}
      for i = 1, n do
        local r = math.random()
        local cp
        if r < 0.6 then cp = math.random(32, 126)
        elseif r < 0.8 then cp = math.random(0x80, 0x7FF)
        elseif r < 0.95 then cp = math.random(0x800, 0xD7FF)
        else cp = math.random(0x10000, 0x10FFFF) end
        cps[i] = utf8.char(cp)
      end
      return table.concat(cps)
    end

    local function random_number()
      local r = math.random(1, 7)
      if r == 1 then return math.random(-1000, 1000)
      elseif r == 2 then return math.random(math.mininteger, math.maxinteger)
      elseif r == 3 then return (math.random() - 0.5) * 10 ^ math.random(-300, 300)
      elseif r == 4 then return math.random() * 1000
      elseif r == 5 then
        return ({ 0.1, 1e-300, math.maxinteger, math.mininteger, 2.0 ^ 53, 5e-324 })[math.random(1, 6)]
      elseif r == 6 then
        local digits = {}
        for i = 1, math.random(20, 38) do digits[i] = tostring(math.random(i == 1 and 1 or 0, 9)) end
        local text = table.concat(digits)
        local cut = math.random(1, #text - 1)
        local sign = math.random() < 0.5 and "-" or ""
        return marshal.number(sign .. text:sub(1, cut) .. "." .. text:sub(cut + 1) .. "1")
      else return math.random(0, 1) == 0 and -0.0 or 3.0
      end
    end

    local random_value

    local function random_table(depth)
      local t = {}
      local n = math.random(0, 5)
      if math.random() < 0.5 then
        for i = 1, n do t[i] = random_value(depth + 1) end
        if n == 0 then marshal.list(t) end
      else
        for _ = 1, n do t[random_string()] = random_value(depth + 1) end
      end
      return t
    end

    random_value = function(depth)
      local r = math.random(1, depth >= 4 and 8 or 10)
      if r == 1 then return random_string()
      elseif r == 2 then return random_number()
      elseif r == 3 then return math.random() < 0.5
      elseif r == 4 then return marshal.null
      elseif r == 5 then
        local b = {}
        for i = 1, math.random(0, 20) do b[i] = string.char(math.random(0, 255)) end
        return marshal.binary(table.concat(b))
      elseif r == 6 then
        local kind = ({ "S", "N", "B" })[math.random(1, 3)]
        local members, seen = {}, {}
        for _ = 1, math.random(1, 6) do
          local m = kind == "N" and math.random(-50, 50) or random_string()
          if not seen[m] then seen[m] = true members[#members + 1] = m end
        end
        return marshal.set(kind, members)
      elseif r == 7 then return random_string()
      elseif r == 8 then return random_number()
      else return random_table(depth)
      end
    end

    -- Lua equality of the original and the read-back value (3.0 comes back as 3).
    local function equivalent(a, b)
      if type(a) == "number" and type(b) == "number" then return a == b end
      if type(a) ~= "table" or type(b) ~= "table" then return a == b end
      local ma, mb = getmetatable(a), getmetatable(b)
      if ma ~= mb then
        -- an unmarked non-empty sequence reads back as a marked list
        if not (ma == nil and mb == ARRAY and next(a) ~= nil) then return false end
      elseif ma ~= nil and ma ~= ARRAY then
        return a == b
      end
      for k, v in pairs(a) do
        if not equivalent(v, b[k]) then return false end
      end
      for k in pairs(b) do
        if a[k] == nil then return false end
      end
      return true
    end

    it("round-trips a few hundred seeded random nested items", function()
      math.randomseed(20240611)
      for i = 1, 400 do
        local item = {}
        for _ = 1, math.random(1, 6) do item[random_string() .. "k"] = random_value(1) end
        local av = marshal.item(item)
        local back = marshal.unitem(av)
        assert.is_true(equivalent(item, back), "item " .. i .. " did not round-trip")
        -- and the wire form is stable: marshal(unmarshal(av)) == av
        assert.is_true(same(av, marshal.item(back)), "item " .. i .. ": wire form changed")
      end
    end)

    it("round-trips random items through the JSON codec", function()
      math.randomseed(99)
      for i = 1, 200 do
        local item = {}
        for _ = 1, math.random(1, 6) do item[random_string() .. "k"] = random_value(1) end
        local av = marshal.item(item)
        local back = marshal.unitem(core.json_decode(core.json_encode(av)))
        assert.is_true(equivalent(item, back), "item " .. i .. " did not round-trip through JSON")
      end
    end)
  end)

  describe("JSON encoding", function()
    it("encodes an empty list as [] and an empty map as {}", function()
      assert.equal(core.array_mt, marshal.array_mt)
      local l = core.json_encode(marshal.item({ l = marshal.list({}) }))
      assert.equal('{"l":{"L":[]}}', (l:gsub("%s", "")))
      local m = core.json_encode(marshal.item({ m = {} }))
      assert.equal('{"m":{"M":{}}}', (m:gsub("%s", "")))
      local v = marshal.unitem(core.json_decode('{"l":{"L":[]},"m":{"M":{}}}'))
      assert.is_true(is_list(v.l))
      assert.is_false(is_list(v.m))
    end)
  end)
end)

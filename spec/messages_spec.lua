-- ddb.messages (access patterns A-C) against a real DynamoDB emulator (moto).
-- Every describe block works on its own fresh table made by ddb.schema.
local moto = require("support.moto")
local fault_server = require("spec.support.fault_server")
local cjson = require("cjson")
local errors = require("ddb.errors")
local ids = require("ddb.ids")
local messages = require("ddb.messages")
local model = require("ddb.model")
local schema = require("ddb.schema")

local ORLA = { uuid = "1af65f48-6c6d-489d-b94d-44a152814656", handle = "orlaquill", display_name = "Orla Quillfeather" }
local BRAM = { uuid = "3bfeb448-2c4d-42f0-82c2-f2dd3acc39af", handle = "bramkettle", display_name = "Bram Kettleworth" }
local NOOR = { uuid = "ba5b23d2-6505-418b-b44c-4be1a7915535", handle = "noorhal", display_name = "Noor Halvorsen" }

local function new_table(client, prefix)
  local name = moto.table_name(prefix)
  assert(schema.load(client, { table = name }))
  return name
end

local function rows_with_prefix(client, name, prefix)
  local out = {}
  for _, r in ipairs(moto.scan(client, name)) do
    if r.pk:sub(1, #prefix) == prefix then out[#out + 1] = r end
  end
  table.sort(out, function(a, b) return a.pk .. a.sk < b.pk .. b.sk end)
  return out
end

-- A group between two users written directly (both group rows, the pair
-- row unless `legacy`), as the seed does; no messages.
local function seed_group(client, name, a, b, sk, text, legacy)
  local g = ids.uuid()
  moto.put(client, name, model.group_row(a, b, g, sk, text or "last"))
  moto.put(client, name, model.group_row(b, a, g, sk, text or "last"))
  if not legacy then moto.put(client, name, model.pair_row(a.uuid, b.uuid, g, sk)) end
  return g
end

-- A timestamp `i` minutes after a fixed time in `year`.
local function at(year, i, usec)
  local sec = ids.parse_timestamp(("%04d-03-01T12:00:00.000000+00:00"):format(year))
  return ids.timestamp(sec + 60 * i, usec or 0)
end

-- A client that counts (and records) the operations sent through it.
local function counting(client)
  local ops = {}
  local c = setmetatable({ ops = ops }, { __index = client })
  function c.call(_, op, params)
    ops[#ops + 1] = op
    return client:call(op, params)
  end
  return c
end

local function frozen(t)
  return function() return t end
end

describe("ddb.ids.now", function()
  local R = require("support.run")

  -- ids.now in a fresh process (its last time is per Lua state), with
  -- core.now answering the times given, in turn: the timestamps it gave.
  local function now_with_clock(times)
    local script = ([[
      local core = require("ddb.core")
      local times, i = %s, 0
      core.now = function() i = i + 1; return table.unpack(times[i]) end
      local ids = require("ddb.ids")
      for _ = 1, #times do io.write(ids.now(), "\n") end
    ]]):format(cjson.encode(times):gsub("%[", "{"):gsub("%]", "}"))
    local how, code, out, err = R.capture(R.NO_LUA_PATH .. " LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
      .. "LUA_CPATH='build/?.so;;' lua5.4 -e " .. R.quote(script) .. " </dev/null")
    assert.same({ "exit", 0 }, { how, code }, err)
    return R.whole_lines(out)
  end

  it("never goes back, nor repeats, when the system clock is set back or stands still", function()
    local base = 1795000000
    assert.same({
      ids.timestamp(base, 500000), ids.timestamp(base, 500001), ids.timestamp(base, 500002),
      ids.timestamp(base, 500003), ids.timestamp(base, 999999), ids.timestamp(base + 1, 5),
    }, now_with_clock({ { base, 500000 }, { base, 500000 }, { base - 2, 0 }, { base - 1, 999999 },
      { base, 999999 }, { base + 1, 5 } }))
  end)

  it("carries a microsecond into the next second", function()
    local base = 1795000100
    assert.same({ ids.timestamp(base, 999999), ids.timestamp(base + 1, 0) },
      now_with_clock({ { base, 999999 }, { base, 999999 } }))
  end)
end)

describe("ddb.messages", function()
  local client

  setup(function()
    client = moto.client()
  end)

  teardown(function()
    client:close()
  end)

  describe("new", function()
    it("raises on wrong argument types", function()
      assert.has_error(function() messages.new(nil) end)
      assert.has_error(function() messages.new({}) end)
      -- call alone is not enough: is_member and the legacy lookup page with client:pages
      assert.has_error(function() messages.new({ call = function() end }) end, "messages.new: client expected "
        .. "(a ddb.client, or a table with its call and pages methods)")
      assert.has_error(function() messages.new(client, "cruddur-messages") end)
      assert.has_error(function() messages.new(client, { table = 42 }) end)
      assert.has_error(function() messages.new(client, { table = "" }) end)
      assert.has_error(function() messages.new(client, { now = "2024" }) end)
    end)

    it("defaults to the cruddur-messages table and ids.now", function()
      local repo = messages.new(client)
      assert.equal("cruddur-messages", repo.table)
      assert.equal(ids.now, repo.now)
    end)
  end)

  describe("list_messages (A)", function()
    local name, repo, group

    setup(function()
      name = new_table(client, "msg-a")
      repo = messages.new(client, { table = name })
      group = seed_group(client, name, ORLA, BRAM, at(2024, 7), "message 7")
      for i = 1, 7 do
        local sender = i % 2 == 1 and ORLA or BRAM
        moto.put(client, name, model.message_row(group, at(2024, i), ids.uuid(), sender, "message " .. i))
      end
    end)

    teardown(function()
      schema.drop(client, { table = name })
    end)

    it("returns the newest messages oldest first, as records with the bootcamp's fields", function()
      local records, cursor = repo:list_messages(group, ORLA.uuid)
      assert.is_nil(cursor)
      assert.equal(7, #records)
      for i, r in ipairs(records) do
        assert.equal("message " .. i, r.message)
        assert.equal(at(2024, i), r.created_at)
        assert.equal(group, r.message_group_uuid)
        assert.is_true(ids.is_uuid(r.uuid))
      end
      assert.same({ "Orla Quillfeather", "orlaquill", ORLA.uuid },
        { records[1].display_name, records[1].handle, records[1].user_uuid })
      assert.same({ "Bram Kettleworth", "bramkettle", BRAM.uuid },
        { records[2].display_name, records[2].handle, records[2].user_uuid })
    end)

    it("pages back in time with a cursor: no overlap, no gap, oldest first in each page", function()
      local pages, cursor = {}, nil
      repeat
        local records, next_cursor = repo:list_messages(group, BRAM.uuid, { limit = 3, cursor = cursor })
        assert.is_table(records, tostring(next_cursor))
        pages[#pages + 1] = records
        cursor = next_cursor
        assert.is_true(#pages <= 4, "too many pages")
      until cursor == nil
      assert.equal(3, #pages)
      local texts = {}
      for p, records in ipairs(pages) do
        texts[p] = {}
        for i, r in ipairs(records) do
          texts[p][i] = r.message
          if i > 1 then assert.is_true(records[i - 1].created_at < r.created_at) end
        end
      end
      assert.same({ { "message 5", "message 6", "message 7" }, { "message 2", "message 3", "message 4" },
        { "message 1" } }, texts)
    end)

    it("returns a cursor that is the last key's time, and only times are accepted", function()
      local records, cursor = repo:list_messages(group, ORLA.uuid, { limit = 2 })
      assert.equal(2, #records)
      assert.equal(at(2024, 6), cursor)
      for _, bad in ipairs({ "", "x", "GRP#" .. ORLA.uuid, "MSG#" .. group, at(2024, 6) .. "#x",
        "2024-03-01T12:06Z", "2024-03-01 12:06:00.000000+00:00", "2024-03-01T12:06:00.+00:00",
        "2024-03-01T12:06:00+0400", at(2024, 6) .. "\n", "2024-03-01T12:06:00." .. ("1"):rep(60) .. "+00:00" }) do
        local res, err = repo:list_messages(group, ORLA.uuid, { cursor = bad })
        assert.is_nil(res)
        assert.equal("invalid_cursor", err.code)
      end
    end)

    it("lists messages from any year (no begins_with on the year)", function()
      local old = seed_group(client, name, ORLA, NOOR, at(2019, 2))
      moto.put(client, name, model.message_row(old, at(2019, 1), ids.uuid(), NOOR, "from 2019"))
      moto.put(client, name, model.message_row(old, at(2019, 2), ids.uuid(), ORLA, "reply from 2019"))
      local records = assert(repo:list_messages(old, NOOR.uuid))
      assert.same({ "from 2019", "reply from 2019" }, { records[1].message, records[2].message })
    end)

    it("returns the newest 40 by default", function()
      local g = seed_group(client, name, BRAM, NOOR, at(2025, 45))
      for i = 1, 45 do moto.put(client, name, model.message_row(g, at(2025, i), ids.uuid(), BRAM, "n" .. i)) end
      local records, cursor = repo:list_messages(g, NOOR.uuid)
      assert.equal(40, #records)
      assert.equal("n6", records[1].message)
      assert.equal("n45", records[40].message)
      assert.equal(at(2025, 6), cursor)
      local rest, last = repo:list_messages(g, NOOR.uuid, { cursor = cursor })
      assert.equal(5, #rest)
      assert.equal("n1", rest[1].message)
      assert.is_nil(last)
    end)

    it("refuses a reader who is not a participant (forbidden)", function()
      local g = seed_group(client, name, ORLA, BRAM, at(2024, 100))
      local res, err = repo:list_messages(g, NOOR.uuid)
      assert.is_nil(res)
      assert.equal("forbidden", err.code)
      assert.is_truthy(err.message:find("participant"))
      -- an unknown group is refused the same way
      res, err = repo:list_messages(ids.uuid(), ORLA.uuid)
      assert.is_nil(res)
      assert.equal("forbidden", err.code)
    end)

    it("validates ids before any request", function()
      local c = counting(client)
      local r = messages.new(c, { table = name })
      local cases = {
        { nil, ORLA.uuid, "message_group_uuid_blank" },
        { "", ORLA.uuid, "message_group_uuid_blank" },
        { "GRP#x", ORLA.uuid, "invalid_uuid" },
        { group:upper(), ORLA.uuid, "invalid_uuid" },
        { group .. "#x", ORLA.uuid, "invalid_uuid" },
        { group, nil, "invalid_uuid" },
        { group, "abc#def", "invalid_uuid" },
        { group, ORLA.uuid:upper(), "invalid_uuid" },
      }
      for i, case in ipairs(cases) do
        local res, err = r:list_messages(case[1], case[2])
        assert.is_nil(res, "case " .. i)
        assert.equal(case[3], err.code, "case " .. i)
      end
      assert.same({}, c.ops)
    end)

    it("raises on wrong argument types and limits", function()
      assert.has_error(function() repo:list_messages(42, ORLA.uuid) end)
      assert.has_error(function() repo:list_messages(group, {}) end)
      assert.has_error(function() repo:list_messages(group, ORLA.uuid, 5) end)
      for _, limit in ipairs({ 0, -1, 1001, 2.5, "3" }) do
        assert.has_error(function() repo:list_messages(group, ORLA.uuid, { limit = limit }) end)
      end
      assert.has_error(function() repo:list_messages(group, ORLA.uuid, { cursor = 5 }) end)
    end)

    it("returns the service's error as nil, err", function()
      local missing = messages.new(client, { table = "no-such-table-" .. name })
      local res, err = missing:list_messages(group, ORLA.uuid)
      assert.is_nil(res)
      assert.equal("ResourceNotFoundException", err.code)
    end)
  end)

  describe("is_member", function()
    local name, repo, group, front

    setup(function()
      name = new_table(client, "msg-member")
      repo = messages.new(client, { table = name })
      group = seed_group(client, name, ORLA, BRAM, at(2024, 1))
      front = fault_server.start { upstream = moto.endpoint() }
    end)

    teardown(function()
      front:stop()
      schema.drop(client, { table = name })
    end)

    it("says who takes part", function()
      assert.is_true(repo:is_member(group, ORLA.uuid))
      assert.is_true(repo:is_member(group, BRAM.uuid))
      assert.is_false(repo:is_member(group, NOOR.uuid))
      local res, err = repo:is_member("GRP#" .. ORLA.uuid, ORLA.uuid)
      assert.is_nil(res)
      assert.equal("invalid_uuid", err.code)
    end)

    it("confirms a 'no' from the (eventually consistent) GSI with a consistent read", function()
      local c = moto.client { endpoint = front.url }
      local r = messages.new(c, { table = name })
      -- the index has not caught up yet: it answers no rows
      front:script { { status = 200, body = '{"Count":0,"ScannedCount":0,"Items":[]}' } }
      assert.is_true(r:is_member(group, BRAM.uuid))
      local log = front:log()
      assert.equal(2, #log)
      local gsi, base = cjson.decode(log[1].body), cjson.decode(log[2].body)
      assert.equal(model.GSI, gsi.IndexName)
      assert.is_nil(base.IndexName)
      assert.is_true(base.ConsistentRead)
      c:close()
    end)

    it("follows every page of the consistent read", function()
      front:reset()
      local c = moto.client { endpoint = front.url }
      local r = messages.new(c, { table = name })
      front:script {
        { status = 200, body = '{"Count":0,"ScannedCount":0,"Items":[]}' },
        { status = 200, body = cjson.encode { Count = 0, ScannedCount = 1, Items = {},
          LastEvaluatedKey = { pk = { S = "GRP#" .. BRAM.uuid }, sk = { S = "0000" } } } },
      }
      assert.is_true(r:is_member(group, BRAM.uuid))
      local log = front:log()
      assert.equal(3, #log)
      assert.same({ pk = { S = "GRP#" .. BRAM.uuid }, sk = { S = "0000" } },
        cjson.decode(log[3].body).ExclusiveStartKey)
      c:close()
    end)
  end)

  describe("list_message_groups (B)", function()
    local name, repo, groups

    setup(function()
      name = new_table(client, "msg-b")
      repo = messages.new(client, { table = name })
      groups = {
        old = seed_group(client, name, ORLA, BRAM, at(2019, 1), "last year's news"),
        mid = seed_group(client, name, ORLA, NOOR, at(2024, 5), "spring"),
      }
      -- a third conversation, with a user who is only in this table
      local zed = { uuid = ids.uuid(), handle = "zed", display_name = "Zed Ämmälä" }
      groups.new = seed_group(client, name, zed, ORLA, at(2025, 1), "newest 🎉")
    end)

    teardown(function()
      schema.drop(client, { table = name })
    end)

    it("lists every conversation, newest first, from any year", function()
      local records, cursor = repo:list_message_groups(ORLA.uuid)
      assert.is_nil(cursor)
      assert.equal(3, #records)
      assert.same({ groups.new, groups.mid, groups.old }, { records[1].uuid, records[2].uuid, records[3].uuid })
      assert.same({ "zed", "noorhal", "bramkettle" }, { records[1].handle, records[2].handle, records[3].handle })
      assert.same({ "Zed Ämmälä", "newest 🎉", at(2025, 1), groups.new },
        { records[1].display_name, records[1].message, records[1].created_at, records[1].message_group_uuid })
      assert.equal("last year's news", records[3].message) -- the one a begins_with(sk, year) would hide
    end)

    it("pages with a cursor", function()
      local first, cursor = repo:list_message_groups(ORLA.uuid, { limit = 2 })
      assert.equal(2, #first)
      assert.equal(at(2024, 5), cursor)
      local second, last = repo:list_message_groups(ORLA.uuid, { limit = 2, cursor = cursor })
      assert.equal(1, #second)
      assert.equal(groups.old, second[1].uuid)
      assert.is_nil(last)
    end)

    it("shows the other participant to each side", function()
      local records = assert(repo:list_message_groups(BRAM.uuid))
      assert.equal(1, #records)
      assert.same({ groups.old, "orlaquill", ORLA.uuid }, { records[1].uuid, records[1].handle, records[1].user_uuid })
    end)

    it("returns an empty list for a user without conversations", function()
      local records, cursor = repo:list_message_groups(ids.uuid())
      assert.same({}, records)
      assert.is_nil(cursor)
    end)

    it("validates the user and the cursor, and raises on wrong types", function()
      for _, bad in ipairs({ "", "GRP#" .. ORLA.uuid, ORLA.uuid .. "#x" }) do
        local res, err = repo:list_message_groups(bad)
        assert.is_nil(res)
        assert.equal("invalid_uuid", err.code)
      end
      local res, err = repo:list_message_groups(ORLA.uuid, { cursor = "2024" })
      assert.is_nil(res)
      assert.equal("invalid_cursor", err.code)
      assert.has_error(function() repo:list_message_groups(1) end)
      assert.has_error(function() repo:list_message_groups(ORLA.uuid, { limit = 0 }) end)
    end)
  end)

  describe("create_message (C)", function()
    local name, repo, group

    setup(function()
      name = new_table(client, "msg-c")
      repo = messages.new(client, { table = name })
      group = seed_group(client, name, ORLA, BRAM, at(2024, 1))
    end)

    teardown(function()
      schema.drop(client, { table = name })
    end)

    it("writes the message row (only) and returns its record", function()
      local before = #moto.scan(client, name)
      local record = assert(repo:create_message(group, BRAM, "Ünïcode ✓ \"quoted\", fine"))
      assert.is_true(ids.is_uuid(record.uuid))
      assert.is_true(ids.is_timestamp(record.created_at))
      assert.same({ group, "Bram Kettleworth", "bramkettle", BRAM.uuid, "Ünïcode ✓ \"quoted\", fine" },
        { record.message_group_uuid, record.display_name, record.handle, record.user_uuid, record.message })
      assert.equal(before + 1, #moto.scan(client, name))
      local got = assert(client:call("GetItem", { TableName = name, ConsistentRead = true,
        Key = { pk = { S = "MSG#" .. group }, sk = { S = record.created_at } } }))
      assert.equal(record.uuid, got.Item.message_uuid.S)
      local records = assert(repo:list_messages(group, ORLA.uuid))
      assert.equal(record.uuid, records[#records].uuid)
    end)

    it("accepts exactly 1024 characters (counted as UTF-8 characters)", function()
      local text = string.rep("é", model.MAX_MESSAGE_CHARS)
      assert.equal(2048, #text)
      local record = assert(repo:create_message(group, ORLA, text))
      assert.equal(text, record.message)
    end)

    it("keeps two messages written at the same time: the second moves 1 µs later", function()
      local t = at(2024, 30)
      local g = seed_group(client, name, ORLA, BRAM, t)
      local r = messages.new(client, { table = name, now = frozen(t) })
      local a = assert(r:create_message(g, ORLA, "first"))
      local b = assert(r:create_message(g, BRAM, "second"))
      assert.equal(t, a.created_at)
      assert.equal(ids.after(t), b.created_at)
      local rows = rows_with_prefix(client, name, "MSG#" .. g)
      assert.equal(2, #rows)
      assert.same({ "first", "second" }, { rows[1].message, rows[2].message })
      assert.same({ a.uuid, b.uuid }, { rows[1].message_uuid, rows[2].message_uuid })
    end)

    it("gives up with time_collision after MAX_TIME_COLLISIONS taken times, writing nothing", function()
      local t = at(2024, 40)
      local g = seed_group(client, name, ORLA, BRAM, t)
      local s = t
      for _ = 1, messages.MAX_TIME_COLLISIONS do
        moto.put(client, name, model.message_row(g, s, ids.uuid(), ORLA, "taken"))
        s = ids.after(s)
      end
      local before = #moto.scan(client, name)
      local r = messages.new(client, { table = name, now = frozen(t) })
      local res, err = r:create_message(g, BRAM, "no room")
      assert.is_nil(res)
      assert.equal("time_collision", err.code)
      assert.equal(before, #moto.scan(client, name))
    end)

    it("refuses a sender who is not a participant (forbidden) and writes nothing", function()
      local before = #moto.scan(client, name)
      local res, err = repo:create_message(group, NOOR, "let me in")
      assert.is_nil(res)
      assert.equal("forbidden", err.code)
      assert.equal(before, #moto.scan(client, name))
    end)

    it("a retried put of the same message is idempotent (one row)", function()
      local front = fault_server.start { upstream = moto.endpoint() }
      local c = moto.client { endpoint = front.url, retry_base_ms = 1 }
      local r = messages.new(c, { table = name })
      local g = seed_group(client, name, ORLA, BRAM, at(2024, 50))
      -- the GSI query is forwarded; the PutItem reaches moto but its answer is lost
      front:script { { action = "forward" },
        { action = "forward_then", status = 500, body = '{"__type":"InternalServerError","message":"lost"}' } }
      local record = assert(r:create_message(g, ORLA, "once"))
      local log = front:log()
      front:stop()
      c:close()
      local targets = {}
      for i, e in ipairs(log) do targets[i] = e.headers["x-amz-target"] end
      assert.same({ "DynamoDB_20120810.Query", "DynamoDB_20120810.PutItem", "DynamoDB_20120810.PutItem" }, targets)
      assert.equal(log[2].body, log[3].body) -- the very same request, retried
      local rows = rows_with_prefix(client, name, "MSG#" .. g)
      assert.equal(1, #rows)
      assert.same({ record.uuid, record.created_at, "once" }, { rows[1].message_uuid, rows[1].sk, rows[1].message })
    end)
  end)

  describe("validation", function()
    local name, repo, group, c

    setup(function()
      name = new_table(client, "msg-valid")
      c = counting(client)
      repo = messages.new(c, { table = name })
      group = seed_group(client, name, ORLA, BRAM, at(2024, 1))
    end)

    teardown(function()
      schema.drop(client, { table = name })
    end)

    local function with(user, field, value)
      local u = {}
      for k, v in pairs(user) do u[k] = v end
      u[field] = value
      return u
    end

    local long = string.rep("a", model.MAX_MESSAGE_CHARS + 1)
    local long_utf8 = string.rep("ü", model.MAX_MESSAGE_CHARS) .. "ü"

    -- { description, function(group) -> res, err, expected code }
    local cases = {
      { "message nil", function(g) return repo:create_message(g, ORLA, nil) end, "message_blank" },
      { "message empty", function(g) return repo:create_message(g, ORLA, "") end, "message_blank" },
      { "message whitespace", function(g) return repo:create_message(g, ORLA, " \t\r\n ") end, "message_blank" },
      { "message unicode spaces", function(g) return repo:create_message(g, ORLA, "\u{A0}\u{3000}\u{2009}") end,
        "message_blank" },
      { "message too long", function(g) return repo:create_message(g, ORLA, long) end, "message_exceed_max_chars" },
      { "message too long in UTF-8 chars", function(g) return repo:create_message(g, ORLA, long_utf8) end,
        "message_exceed_max_chars" },
      { "message invalid UTF-8", function(g) return repo:create_message(g, ORLA, "bad \xff byte") end,
        "message_invalid_utf8" },
      { "message surrogate", function(g) return repo:create_message(g, ORLA, "\xed\xa0\x80") end,
        "message_invalid_utf8" },
      { "message overlong", function(g) return repo:create_message(g, ORLA, "\xc0\xaf") end, "message_invalid_utf8" },
      { "group nil", function() return repo:create_message(nil, ORLA, "hi") end, "message_group_uuid_blank" },
      { "group empty", function() return repo:create_message("", ORLA, "hi") end, "message_group_uuid_blank" },
      { "group forging a key", function() return repo:create_message("GRP#x", ORLA, "hi") end, "invalid_uuid" },
      { "group with #", function() return repo:create_message("abc#def", ORLA, "hi") end, "invalid_uuid" },
      { "group uppercase", function(g) return repo:create_message(g:upper(), ORLA, "hi") end, "invalid_uuid" },
      { "group with suffix", function(g) return repo:create_message(g .. "#" .. ORLA.uuid, ORLA, "hi") end,
        "invalid_uuid" },
      { "sender uuid forging a key", function(g) return repo:create_message(g, with(ORLA, "uuid", "GRP#x"), "hi") end,
        "invalid_uuid" },
      { "sender uuid missing", function(g) return repo:create_message(g, with(ORLA, "uuid", nil), "hi") end,
        "invalid_uuid" },
      { "sender handle missing", function(g) return repo:create_message(g, with(ORLA, "handle", nil), "hi") end,
        "invalid_user" },
      { "sender display_name not a string", function(g)
        return repo:create_message(g, with(ORLA, "display_name", 7), "hi") end, "invalid_user" },
      { "sender display_name invalid UTF-8", function(g)
        return repo:create_message(g, with(ORLA, "display_name", "\xff"), "hi") end, "invalid_user" },
      { "receiver nil", function() return repo:create_message_group(ORLA, nil, "hi") end,
        "user_receiver_handle_blank" },
      { "receiver handle empty", function() return repo:create_message_group(ORLA, with(NOOR, "handle", ""), "hi") end,
        "user_receiver_handle_blank" },
      { "receiver handle nil", function() return repo:create_message_group(ORLA, with(NOOR, "handle", nil), "hi") end,
        "user_receiver_handle_blank" },
      { "receiver uuid with #", function()
        return repo:create_message_group(ORLA, with(NOOR, "uuid", "abc#def"), "hi") end, "invalid_uuid" },
      { "receiver uuid uppercase", function()
        return repo:create_message_group(ORLA, with(NOOR, "uuid", NOOR.uuid:upper()), "hi") end, "invalid_uuid" },
      { "sender uuid forging a pair key", function()
        return repo:create_message_group(with(ORLA, "uuid", BRAM.uuid .. "#" .. ORLA.uuid), NOOR, "hi") end,
        "invalid_uuid" },
      { "receiver is the sender", function() return repo:create_message_group(ORLA, ORLA, "hi") end,
        "invalid_receiver" },
      { "new group, blank message", function() return repo:create_message_group(ORLA, NOOR, "  ") end,
        "message_blank" },
      { "new group, message too long", function() return repo:create_message_group(ORLA, NOOR, long) end,
        "message_exceed_max_chars" },
      { "new group, invalid UTF-8", function() return repo:create_message_group(ORLA, NOOR, "\x80") end,
        "message_invalid_utf8" },
    }

    for _, case in ipairs(cases) do
      it(case[1] .. " -> " .. case[3] .. ", and nothing is sent or written", function()
        local before = moto.scan(client, name)
        local n_ops = #c.ops
        local res, err = case[2](group)
        assert.is_nil(res)
        assert.equal(case[3], err.code)
        assert.is_string(err.message)
        assert.is_nil(err.message:find("\n"))
        assert.equal(n_ops, #c.ops) -- rejected before any request
        assert.same(before, moto.scan(client, name))
      end)
    end

    it("raises on wrong argument types", function()
      assert.has_error(function() repo:create_message(group, "orlaquill", "hi") end)
      assert.has_error(function() repo:create_message(group, ORLA, 42) end)
      assert.has_error(function() repo:create_message(42, ORLA, "hi") end)
      assert.has_error(function() repo:create_message(group, with(ORLA, "uuid", 5), "hi") end)
      assert.has_error(function() repo:create_message_group(nil, NOOR, "hi") end)
      assert.has_error(function() repo:create_message_group(ORLA, "noorhal", "hi") end)
      assert.has_error(function() repo:create_message_group(ORLA, NOOR, {}) end)
    end)
  end)

  describe("create_message_group (C)", function()
    local name, repo

    before_each(function()
      name = new_table(client, "msg-cg")
      repo = messages.new(client, { table = name })
    end)

    after_each(function()
      schema.drop(client, { table = name })
    end)

    it("creates the pair row, both group rows and the first message in one go", function()
      local record = assert(repo:create_message_group(ORLA, BRAM, "Hello Bram"))
      local g = record.message_group_uuid
      assert.is_true(ids.is_uuid(g))
      assert.same({ "Hello Bram", "orlaquill", ORLA.uuid }, { record.message, record.handle, record.user_uuid })
      local rows = moto.scan(client, name)
      assert.equal(4, #rows)
      local orla = assert(repo:list_message_groups(ORLA.uuid))
      local bram = assert(repo:list_message_groups(BRAM.uuid))
      assert.same({ g, "bramkettle", "Hello Bram", record.created_at },
        { orla[1].uuid, orla[1].handle, orla[1].message, orla[1].created_at })
      assert.same({ g, "orlaquill" }, { bram[1].uuid, bram[1].handle })
      local pair = rows_with_prefix(client, name, "PAIR#")
      assert.equal(1, #pair)
      assert.equal(g, pair[1].group_uuid)
      local msgs = assert(repo:list_messages(g, BRAM.uuid))
      assert.equal(1, #msgs)
      assert.equal(record.uuid, msgs[1].uuid)
    end)

    it("waits before starting over after a conflict or throttling, not after a time collision", function()
      -- every TransactWriteItems cancelled for the reason given; sleeps recorded
      local function attempt(reason)
        local sleeps, cancels = {}, 0
        local c = setmetatable({}, { __index = client })
        function c.call(_, op, params)
          if op ~= "TransactWriteItems" then return client:call(op, params) end
          cancels = cancels + 1
          return nil, errors.new("TransactionCanceledException", "Transaction cancelled", { status = 400,
            cancellation_reasons = { { Code = "None" }, { Code = reason }, { Code = "None" } } })
        end
        local r = messages.new(c, { table = name, sleep = function(ms) sleeps[#sleeps + 1] = ms end })
        local res, err = r:create_message_group(ORLA, BRAM, "busy")
        assert.is_nil(res)
        assert.equal("TransactionCanceledException", err.code)
        assert.equal(messages.MAX_GROUP_ATTEMPTS, cancels)
        return sleeps
      end
      for _, reason in ipairs({ "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded" }) do
        local sleeps = attempt(reason)
        assert.equal(messages.MAX_GROUP_ATTEMPTS - 1, #sleeps, reason) -- none after the last attempt
        for i, ms in ipairs(sleeps) do -- full jitter under the client's doubling cap
          assert.is_true(ms >= 0 and ms <= client.retry_base_ms * 2 ^ (i - 1), reason .. " " .. ms)
        end
      end
      assert.same({}, attempt("ConditionalCheckFailed")) -- a group row's time taken: a new time, at once
    end)

    it("called twice for the same pair (either way round): one group, two then three messages", function()
      local a = assert(repo:create_message_group(ORLA, BRAM, "one"))
      local b = assert(repo:create_message_group(ORLA, BRAM, "two"))
      local c = assert(repo:create_message_group(BRAM, ORLA, "three"))
      assert.equal(a.message_group_uuid, b.message_group_uuid)
      assert.equal(a.message_group_uuid, c.message_group_uuid)
      assert.equal(1, #rows_with_prefix(client, name, "PAIR#"))
      assert.equal(1, #rows_with_prefix(client, name, "GRP#" .. ORLA.uuid))
      assert.equal(1, #rows_with_prefix(client, name, "GRP#" .. BRAM.uuid))
      local msgs = rows_with_prefix(client, name, "MSG#")
      assert.equal(3, #msgs)
      assert.same({ "one", "two", "three" }, { msgs[1].message, msgs[2].message, msgs[3].message })
    end)

    it("continues a legacy group that has no pair row, and backfills the pair row", function()
      local g = seed_group(client, name, ORLA, BRAM, at(2023, 1), "from the bootcamp seed", true)
      assert.equal(0, #rows_with_prefix(client, name, "PAIR#"))
      local record = assert(repo:create_message_group(BRAM, ORLA, "still here"))
      assert.equal(g, record.message_group_uuid)
      local pair = rows_with_prefix(client, name, "PAIR#")
      assert.equal(1, #pair)
      assert.equal(g, pair[1].group_uuid)
      assert.equal(2, #rows_with_prefix(client, name, "GRP#"))
      assert.equal(1, #rows_with_prefix(client, name, "MSG#"))
    end)

    it("uses the group a pair row names when a backfill loses the race", function()
      local legacy = seed_group(client, name, ORLA, BRAM, at(2023, 1), nil, true)
      local other = ids.uuid()
      -- a concurrent caller wrote the pair row (pointing elsewhere) after our lookups
      local c = setmetatable({}, { __index = client })
      local r = messages.new(c, { table = name })
      function c.call(_, op, params)
        if op == "PutItem" and params.Item.pk.S:find("^PAIR#") then
          moto.put(client, name, model.pair_row(ORLA.uuid, BRAM.uuid, other, at(2023, 2)))
          moto.put(client, name, model.group_row(ORLA, BRAM, other, at(2023, 2), "x"))
          moto.put(client, name, model.group_row(BRAM, ORLA, other, at(2023, 2), "x"))
        end
        return client:call(op, params)
      end
      local record = assert(r:create_message_group(ORLA, BRAM, "which one?"))
      assert.equal(other, record.message_group_uuid)
      assert.is_not.equal(legacy, other)
    end)

    it("does not overwrite another conversation's group row that has the same time", function()
      local t = at(2024, 10)
      local noor_group = seed_group(client, name, ORLA, NOOR, t, "Noor's last words")
      local r = messages.new(client, { table = name, now = frozen(t) })
      local record = assert(r:create_message_group(ORLA, BRAM, "new chat"))
      assert.equal(ids.after(t), record.created_at)
      local orla = assert(repo:list_message_groups(ORLA.uuid))
      assert.equal(2, #orla)
      assert.same({ record.message_group_uuid, "new chat" }, { orla[1].uuid, orla[1].message })
      assert.same({ noor_group, "Noor's last words", t }, { orla[2].uuid, orla[2].message, orla[2].created_at })
      assert.equal(2, #rows_with_prefix(client, name, "PAIR#"))
    end)

    it("a lost response to the transaction still gives one group and one message", function()
      local front = fault_server.start { upstream = moto.endpoint() }
      local c = moto.client { endpoint = front.url, retry_base_ms = 1 }
      local r = messages.new(c, { table = name })
      -- GetItem (pair) and Query (legacy) are forwarded; the transaction
      -- reaches moto but the client sees a 500 and retries it
      front:script { { action = "forward" }, { action = "forward" },
        { action = "forward_then", status = 500, body = '{"__type":"InternalServerError","message":"lost"}' } }
      local record, err = r:create_message_group(ORLA, BRAM, "only once")
      local log = front:log()
      front:stop()
      c:close()
      assert.is_table(record, tostring(err))
      local targets = {}
      for i, e in ipairs(log) do targets[i] = e.headers["x-amz-target"]:match("%.(%a+)$") end
      assert.same({ "GetItem", "Query", "TransactWriteItems", "TransactWriteItems", "GetItem" }, targets)
      local first, retried = cjson.decode(log[3].body), cjson.decode(log[4].body)
      assert.equal(record.message_group_uuid, first.ClientRequestToken)
      assert.equal(first.ClientRequestToken, retried.ClientRequestToken)
      assert.equal(4, #first.TransactItems)

      assert.equal(1, #rows_with_prefix(client, name, "PAIR#"))
      assert.equal(2, #rows_with_prefix(client, name, "GRP#"))
      local msgs = rows_with_prefix(client, name, "MSG#")
      assert.equal(1, #msgs)
      assert.same({ record.uuid, "only once" }, { msgs[1].message_uuid, msgs[1].message })
    end)

    it("a transaction cancelled by a concurrent create sends the message into that group", function()
      -- the other call's transaction lands between our lookups and ours
      local other
      local c = setmetatable({}, { __index = client })
      local r = messages.new(c, { table = name })
      function c.call(_, op, params)
        if op == "TransactWriteItems" and not other then
          local o = messages.new(client, { table = name })
          other = assert(o:create_message_group(BRAM, ORLA, "I was first"))
        end
        return client:call(op, params)
      end
      local record = assert(r:create_message_group(ORLA, BRAM, "me too"))
      assert.equal(other.message_group_uuid, record.message_group_uuid)
      assert.equal(1, #rows_with_prefix(client, name, "PAIR#"))
      assert.equal(2, #rows_with_prefix(client, name, "GRP#"))
      local msgs = rows_with_prefix(client, name, "MSG#")
      assert.same({ "I was first", "me too" }, { msgs[1].message, msgs[2].message })
    end)

    it("returns the service's error as nil, err", function()
      local missing = messages.new(client, { table = "no-such-table-" .. name })
      local res, err = missing:create_message_group(ORLA, BRAM, "hi")
      assert.is_nil(res)
      assert.equal("ResourceNotFoundException", err.code)
    end)
  end)
end)

-- ddb.seed: fixtures, and seeding a real table on the emulator (moto), with
-- UnprocessedItems injected through the fault server.
local seed = require("ddb.seed")
local schema = require("ddb.schema")
local ids = require("ddb.ids")
local marshal = require("ddb.marshal")
local model = require("ddb.model")
local moto = require("support.moto")
local fault_server = require("spec.support.fault_server")
local cjson = require("cjson")
local core = require("ddb.core")
local messages = require("ddb.messages")
local stream = require("ddb.stream")

local function write_temp(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function by_kind(items)
  local out = { MSG = {}, GRP = {}, PAIR = {}, other = {} }
  for _, it in ipairs(items) do
    local kind = it.pk:match("^(%u+)#")
    table.insert(out[kind] or out.other, it)
  end
  table.sort(out.MSG, function(a, b) return a.sk < b.sk end)
  return out
end

local function key_of(item) return item.pk .. " " .. item.sk end

-- The stream record of an INSERT of `row`, shaped as DynamoDB Streams sends
-- it (NEW_IMAGE) and decoded from JSON as a Lambda event is.
local function insert_record(row)
  return core.json_decode(core.json_encode({
    eventID = "1", eventName = "INSERT", eventVersion = "1.1", eventSource = "aws:dynamodb", awsRegion = "us-east-1",
    dynamodb = { SequenceNumber = "4200000000000000000001", SizeBytes = 256, StreamViewType = "NEW_IMAGE",
      Keys = { pk = { S = row.pk }, sk = { S = row.sk } }, NewImage = marshal.item(row) },
  }))
end

-- The group rows of `group` in the table, by owner pk.
local function group_rows(client, name, group)
  local out, n = {}, 0
  for _, it in ipairs(moto.scan(client, name)) do
    if it.pk:find("^GRP#") and it.message_group_uuid == group then
      assert.is_nil(out[it.pk], "two group rows of one owner")
      out[it.pk], n = it, n + 1
    end
  end
  return out, n
end

local USERS_OK = [[return {
  { uuid = "1af65f48-6c6d-489d-b94d-44a152814656", handle = "a", display_name = "A" },
  { uuid = "3bfeb448-2c4d-42f0-82c2-f2dd3acc39af", handle = "b", display_name = "B" },
}]]

local function conversation(lines_src, extra)
  return ([[return { message_group_uuid = "328e8ddd-35d0-4381-81c3-f4fced185aed",
    participants = { "a", "b" }, lines = { %s }, %s }]]):format(lines_src, extra or "")
end

describe("seed.load_fixtures", function()
  local temps = {}
  local function temp(text)
    local p = write_temp(text)
    temps[#temps + 1] = p
    return p
  end
  teardown(function()
    for _, p in ipairs(temps) do os.remove(p) end
  end)

  it("loads the repository's fixtures: two participants, valid uuids, non-blank lines", function()
    local fx = assert(seed.load_fixtures())
    assert.is_true(ids.is_uuid(fx.message_group_uuid))
    assert.equal(2, #fx.participants)
    assert.are_not.equal(fx.participants[1].uuid, fx.participants[2].uuid)
    for _, u in ipairs(fx.users) do
      assert.is_true(ids.is_uuid(u.uuid), u.uuid)
      assert.equal(u, fx.by_handle[u.handle])
    end
    assert.is_true(#fx.lines >= 90)
    local seen = {}
    for _, line in ipairs(fx.lines) do
      assert.matches("%S", line.text)
      assert.is_true(line.user == fx.participants[1] or line.user == fx.participants[2])
      seen[line.handle] = true
    end
    assert.is_true(seen[fx.participants[1].handle] and seen[fx.participants[2].handle])
  end)

  it("takes other paths", function()
    local fx = assert(seed.load_fixtures {
      users = temp(USERS_OK),
      conversation = temp(conversation([[{ handle = "a", text = "hi" }, { handle = "b", text = "héllo ✓" }]])),
    })
    assert.equal(2, #fx.lines)
    assert.equal("héllo ✓", fx.lines[2].text)
    assert.equal("b", fx.lines[2].user.handle)
  end)

  local bad = {
    { "a missing file", function() return { users = "/nonexistent/users.lua" } end, "cannot load" },
    { "a syntax error", function() return { users = temp("return {") } end, "cannot load" },
    { "a fixture that uses globals (loaded with an empty environment)",
      function() return { users = temp("os.exit(3)") } end, "error while evaluating" },
    { "a fixture that returns no table", function() return { users = temp("return 42") } end, "must return a table" },
    { "a user uuid in upper case", function()
      return { users = temp(USERS_OK:gsub("1af65f48", "1AF65F48")) } end, "uuid" },
    { "a user without handle", function()
      return { users = temp(USERS_OK:gsub('handle = "a", ', "")) } end, "handle" },
    { "a participant missing from the users", function()
      return { users = temp(USERS_OK), conversation = temp(conversation('{ handle = "a", text = "x" }')
        :gsub('"a", "b"', '"a", "zed"')) } end, "zed" },
    { "a blank line", function()
      return { users = temp(USERS_OK), conversation = temp(conversation('{ handle = "a", text = " \\t\\n " }')) }
    end, "line 1" },
    { "a line by a non-participant", function()
      return { users = temp(USERS_OK), conversation = temp(conversation('{ handle = "c", text = "x" }')) }
    end, "not a participant" },
    { "no lines", function()
      return { users = temp(USERS_OK), conversation = temp(conversation("")) } end, "non-empty" },
    { "a line over 1024 characters", function()
      return { users = temp(USERS_OK), conversation = temp(conversation(
        ('{ handle = "a", text = "%s" }'):format(("é"):rep(1025)))) } end, "longer than 1024" },
    { "a bad group uuid", function()
      return { users = temp(USERS_OK), conversation = temp(conversation('{ handle = "a", text = "x" }')
        :gsub("328e8ddd%-35d0", "328e8ddd#35d0")) } end, "message_group_uuid" },
  }
  for _, case in ipairs(bad) do
    it("refuses " .. case[1] .. " with invalid_fixture", function()
      local opts = case[2]()
      local fx, err = seed.load_fixtures(opts)
      assert.is_nil(fx)
      assert.equal("invalid_fixture", err.code)
      assert.matches(case[3], err.message, 1, true)
      assert.is_nil(tostring(err):find("\n"))
    end)
  end

  it("raises on wrong argument types", function()
    assert.has_error(function() seed.load_fixtures(42) end)
    assert.has_error(function() seed.load_fixtures({ users = 1 }) end)
    assert.has_error(function() seed.run(nil) end)
    assert.has_error(function() seed.run({}, {}) end)
    assert.has_error(function() seed.run(moto.client(), { table = 7 }) end)
    assert.has_error(function() seed.run(moto.client(), { max_rounds = "3" }) end)
    assert.has_error(function() seed.message_uuid("x", "1") end)
  end)
end)

describe("seed.message_uuid", function()
  it("is deterministic, canonical, version 4 and distinct per line", function()
    local g = "328e8ddd-35d0-4381-81c3-f4fced185aed"
    local seen = {}
    for i = 1, 2000 do
      local u = seed.message_uuid(g, i)
      assert.is_true(ids.is_uuid(u), u)
      assert.equal("4", u:sub(15, 15))
      assert.truthy(("89ab"):find(u:sub(20, 20), 1, true))
      assert.is_nil(seen[u])
      seen[u] = true
      assert.equal(u, seed.message_uuid(g, i))
    end
    assert.are_not.equal(seed.message_uuid(g, 1), seed.message_uuid("ba5b23d2-6505-418b-b44c-4be1a7915535", 1))
  end)
end)

describe("seed.run against moto", function()
  local client, fx
  local tables = {}

  local function new_table()
    local name = moto.table_name("seed")
    assert(schema.load(client, { table = name, on_demand = true }))
    tables[#tables + 1] = name
    return name
  end

  setup(function()
    client = moto.client()
    fx = assert(seed.load_fixtures())
  end)

  teardown(function()
    for _, name in ipairs(tables) do schema.drop(client, { table = name }) end
    client:close()
  end)

  it("writes every message, both group rows and the pair row", function()
    local name = new_table()
    local lines = {}
    local summary = assert(seed.run(client, { table = name, progress = {
      write = function(_, ...) for _, s in ipairs({ ... }) do lines[#lines + 1] = s end end,
    } }))
    local n = #fx.lines
    assert.same({ messages = n, groups = 2, pairs = 1, retries = 0, removed = 0, table = name,
      requests = math.ceil((n + 3) / 25), message_group_uuid = fx.message_group_uuid }, summary)

    local items = moto.scan(client, name)
    assert.equal(n + 3, #items)
    local k = by_kind(items)
    assert.equal(n, #k.MSG)
    assert.equal(2, #k.GRP)
    assert.equal(1, #k.PAIR)
    assert.equal(0, #k.other)

    -- messages: the fixture's lines in order, senders, one minute apart, valid times, distinct uuids
    local uuids = {}
    for i, m in ipairs(k.MSG) do
      local line = fx.lines[i]
      assert.equal(model.message_pk(fx.message_group_uuid), m.pk)
      assert.equal(line.text, m.message)
      assert.equal(line.user.uuid, m.user_uuid)
      assert.equal(line.user.handle, m.user_handle)
      assert.equal(line.user.display_name, m.user_display_name)
      assert.is_true(ids.is_timestamp(m.sk), m.sk)
      assert.is_true(ids.is_uuid(m.message_uuid))
      assert.is_nil(uuids[m.message_uuid])
      uuids[m.message_uuid] = true
      if i > 1 then
        local s1, u1 = ids.parse_timestamp(k.MSG[i - 1].sk)
        local s2, u2 = ids.parse_timestamp(m.sk)
        assert.equal(60, s2 - s1)
        assert.equal(u1, u2)
        assert.is_true(k.MSG[i - 1].sk < m.sk)
      end
    end
    -- the first message about a day ago (within the minute the test takes)
    local first = ids.parse_timestamp(k.MSG[1].sk)
    local now = require("ddb.core").now()
    assert.is_true(math.abs((now - 86400 + 60) - first) < 120, k.MSG[1].sk)

    -- group rows: one per participant, the last message, the other participant
    local last = k.MSG[n]
    local a, b = fx.participants[1], fx.participants[2]
    local grp = {}
    for _, g in ipairs(k.GRP) do grp[g.pk] = g end
    for _, pair in ipairs({ { a, b }, { b, a } }) do
      local g = grp[model.group_pk(pair[1].uuid)]
      assert.is_table(g)
      assert.equal(last.sk, g.sk)
      assert.equal(last.message, g.message)
      assert.equal(fx.message_group_uuid, g.message_group_uuid)
      assert.equal(pair[2].uuid, g.user_uuid)
      assert.equal(pair[2].handle, g.user_handle)
      assert.equal(pair[2].display_name, g.user_display_name)
    end

    -- pair row
    local p = k.PAIR[1]
    assert.same(model.pair_key(a.uuid, b.uuid), { pk = p.pk, sk = p.sk })
    assert.equal(fx.message_group_uuid, p.group_uuid)

    -- progress: updating lines, the last one complete, then a newline
    assert.is_true(#lines >= 2)
    assert.equal("\n", lines[#lines])
    assert.equal(("\rseeding %d/%d items"):format(n + 3, n + 3), lines[#lines - 1])
    for i = 1, #lines - 1 do assert.matches("^\rseeding %d+/%d+ items$", lines[i]) end
  end)

  it("does not duplicate when seeding twice: the earlier rows are replaced", function()
    local name = new_table()
    local n = #fx.lines
    local t1, t2 = 1700000000, 1700000000 + 7 * 86400
    assert(seed.run(client, { table = name, now = t1 }))
    local before = by_kind(moto.scan(client, name))
    local again = assert(seed.run(client, { table = name, now = t2 }))
    assert.equal(n + 2, again.removed) -- n messages and two group rows at other times
    local after = by_kind(moto.scan(client, name))
    assert.equal(n, #after.MSG)
    assert.equal(2, #after.GRP)
    assert.equal(1, #after.PAIR)
    for i = 1, n do
      assert.equal(before.MSG[i].message_uuid, after.MSG[i].message_uuid)
      assert.equal(ids.timestamp(t2 - 86400 + i * 60, 0), after.MSG[i].sk)
    end
    for _, g in ipairs(after.GRP) do assert.equal(after.MSG[n].sk, g.sk) end

    -- an hour later: the times overlap the previous seed's; still one row per line
    local third = assert(seed.run(client, { table = name, now = t2 + 3600 }))
    assert.equal(60 + 2, third.removed) -- the first 60 minutes of the last seed, and the group rows
    local k = by_kind(moto.scan(client, name))
    assert.equal(n, #k.MSG)
    for i = 1, n do assert.equal(fx.lines[i].text, k.MSG[i].message) end

    -- the same time again: everything overwritten in place, nothing to remove
    local fourth = assert(seed.run(client, { table = name, now = t2 + 3600 }))
    assert.equal(0, fourth.removed)
    assert.equal(n + 3, #moto.scan(client, name))
  end)

  it("leaves messages the application wrote into the group alone", function()
    local name = new_table()
    local sender = fx.participants[1]
    local own = model.message_row(fx.message_group_uuid, ids.now(), ids.uuid(), sender, "written by the app")
    assert(client:call("PutItem", { TableName = name, Item = marshal.item(own) }))
    assert(seed.run(client, { table = name }))
    assert(seed.run(client, { table = name }))
    local items = moto.scan(client, name)
    assert.equal(#fx.lines + 4, #items)
    local found = false
    for _, it in ipairs(items) do found = found or it.message_uuid == own.message_uuid end
    assert.is_true(found)
  end)

  describe("with a newer message the application wrote into the group", function()
    local T1 = 1700000000

    -- A message of the fixture's second participant written at `at` through
    -- ddb.messages; returns its stream record.
    local function app_message(name, at, text)
      local b = fx.participants[2]
      local repo = messages.new(client, { table = name, now = function() return at end })
      local r = assert(repo:create_message(fx.message_group_uuid, b, text))
      return insert_record(model.message_row(fx.message_group_uuid, r.created_at, r.uuid, b, r.message))
    end

    -- Applies a stream record as the stream processor does.
    local function apply(name, rec)
      local summary = stream.process(client, { rec }, { table = name })
      assert.equal(0, summary.failed)
      return summary
    end

    it("re-seeding leaves the group rows at it: they never move back", function()
      local name = new_table()
      assert(seed.run(client, { table = name, now = T1 }))
      local at = ids.timestamp(T1, 0) -- a day after the first seeded line, later than the last
      apply(name, app_message(name, at, "newest, from the app"))
      local rows, n = group_rows(client, name, fx.message_group_uuid)
      assert.equal(2, n)
      for _, g in pairs(rows) do assert.same({ at, "newest, from the app" }, { g.sk, g.message }) end

      -- an hour later (the first 60 lines move), and again (nothing moves):
      -- the group rows stay
      for _, removed in ipairs({ 60, 0 }) do
        local summary = assert(seed.run(client, { table = name, now = T1 + 3600 }))
        assert.equal(removed, summary.removed)
        rows, n = group_rows(client, name, fx.message_group_uuid)
        assert.equal(2, n)
        local a, b = fx.participants[1], fx.participants[2]
        for _, pair in ipairs({ { a, b }, { b, a } }) do
          local g = rows[model.group_pk(pair[1].uuid)]
          assert.same({ at, "newest, from the app", pair[2].uuid }, { g.sk, g.message, g.user_uuid })
        end
        assert.equal(#fx.lines + 4, #moto.scan(client, name))
      end
    end)

    it("re-seeding points the group rows at it when the stream has not moved them yet", function()
      local name = new_table()
      assert(seed.run(client, { table = name, now = T1 }))
      local at = ids.timestamp(T1, 0)
      local rec = app_message(name, at, "not applied yet")
      assert(seed.run(client, { table = name, now = T1 + 3600 }))
      local rows, n = group_rows(client, name, fx.message_group_uuid)
      assert.equal(2, n)
      for _, g in pairs(rows) do assert.same({ at, "not applied yet" }, { g.sk, g.message }) end
      -- then the stream has nothing left to do
      assert.equal(0, apply(name, rec).moved)
      rows, n = group_rows(client, name, fx.message_group_uuid)
      assert.equal(2, n)
      for _, g in pairs(rows) do assert.equal(at, g.sk) end
    end)

    it("a group row the stream moved past a taken time is left there", function()
      local name = new_table()
      assert(seed.run(client, { table = name, now = T1 }))
      local a, b = fx.participants[1], fx.participants[2]
      local at = ids.timestamp(T1, 0)
      -- b's row of another conversation holds the time of the app's message
      local zed = { uuid = ids.uuid(), handle = "zed", display_name = "Zed" }
      local other = ids.uuid()
      moto.put(client, name, model.group_row(b, zed, other, at, "elsewhere"))
      moto.put(client, name, model.group_row(zed, b, other, at, "elsewhere"))
      apply(name, app_message(name, at, "bumped"))
      local rows = group_rows(client, name, fx.message_group_uuid)
      assert.equal(at, rows[model.group_pk(a.uuid)].sk)
      assert.equal(ids.after(at), rows[model.group_pk(b.uuid)].sk)

      assert(seed.run(client, { table = name, now = T1 + 3600 }))
      local n
      rows, n = group_rows(client, name, fx.message_group_uuid)
      assert.equal(2, n)
      assert.same({ at, "bumped" }, { rows[model.group_pk(a.uuid)].sk, rows[model.group_pk(a.uuid)].message })
      assert.same({ ids.after(at), "bumped" },
        { rows[model.group_pk(b.uuid)].sk, rows[model.group_pk(b.uuid)].message })
      local held = assert(client:call("GetItem", { TableName = name, ConsistentRead = true,
        Key = { pk = { S = model.group_pk(b.uuid) }, sk = { S = at } } })).Item
      assert.same({ other, "elsewhere" }, { held.message_group_uuid.S, held.message.S })
    end)
  end)

  describe("when the participants already share a conversation", function()
    it("created by the application: conversation_exists, and nothing is written", function()
      local name = new_table()
      local a, b = fx.participants[1], fx.participants[2]
      local repo = messages.new(client, { table = name })
      local created = assert(repo:create_message_group(a, b, "hello before seeding"))
      local before = moto.snapshot(client, name)
      local res, err = seed.run(client, { table = name })
      assert.is_nil(res)
      assert.equal("conversation_exists", err.code)
      assert.equal(created.message_group_uuid, err.message_group_uuid)
      assert.matches(created.message_group_uuid, err.message, 1, true)
      assert.same(before, moto.snapshot(client, name))
      assert.equal(1, #assert(repo:list_message_groups(a.uuid)))
      assert.equal(created.message_group_uuid, assert(repo:create_message_group(b, a, "still one")).message_group_uuid)
    end)

    it("written before pair rows existed (group rows only): conversation_exists as well", function()
      local name = new_table()
      local a, b = fx.participants[1], fx.participants[2]
      local legacy, at = ids.uuid(), ids.now()
      moto.put(client, name, model.group_row(a, b, legacy, at, "from the bootcamp"))
      moto.put(client, name, model.group_row(b, a, legacy, at, "from the bootcamp"))
      local before = moto.snapshot(client, name)
      local res, err = seed.run(client, { table = name })
      assert.is_nil(res)
      assert.equal("conversation_exists", err.code)
      assert.equal(legacy, err.message_group_uuid)
      assert.same(before, moto.snapshot(client, name))
    end)

    it("the fixture's own conversation is seeded again", function()
      local name = new_table()
      assert(seed.run(client, { table = name }))
      local repo = messages.new(client, { table = name })
      local r = assert(repo:create_message_group(fx.participants[1], fx.participants[2], "into the seeded one"))
      assert.equal(fx.message_group_uuid, r.message_group_uuid)
      assert(seed.run(client, { table = name }))
      assert.equal(1, #by_kind(moto.scan(client, name)).PAIR)
    end)
  end)

  it("returns the client's error for a missing table", function()
    local res, err = seed.run(client, { table = moto.table_name("seed-missing") })
    assert.is_nil(res)
    assert.equal("ResourceNotFoundException", err.code)
  end)

  it("returns invalid_fixture before writing anything", function()
    local path = write_temp("return {}")
    local res, err = seed.run(client, { table = "never-used", users = path })
    os.remove(path)
    assert.is_nil(res)
    assert.equal("invalid_fixture", err.code)
  end)

  describe("with UnprocessedItems (through the fault server)", function()
    local srv
    local NOW = 1700000000

    setup(function()
      srv = fault_server.start({ upstream = moto.endpoint() })
    end)
    teardown(function()
      if srv then srv:stop() end
    end)
    before_each(function() srv:reset() end)

    -- The PutRequests of the first batch seed.run sends with `now = NOW`
    -- (the first 25 message rows).
    local function first_batch()
      local reqs = {}
      for i = 1, 25 do
        local line = fx.lines[i]
        local row = model.message_row(fx.message_group_uuid, ids.timestamp(NOW - 86400 + i * 60, 0),
          seed.message_uuid(fx.message_group_uuid, i), line.user, line.text)
        reqs[i] = { PutRequest = { Item = marshal.item(row) } }
      end
      return reqs
    end

    local function unprocessed(name, reqs)
      return { status = 200, body = cjson.encode({ UnprocessedItems = { [name] = reqs } }) }
    end

    -- seed.run first reads what the table holds (on a fresh table: a GetItem
    -- of the pair row, then one Query per pk: the messages and the two
    -- participants' group rows); let those through.
    local function script(steps)
      local all = { { action = "forward" }, { action = "forward" }, { action = "forward" }, { action = "forward" } }
      for _, s in ipairs(steps) do all[#all + 1] = s end
      srv:script(all)
    end

    local function targets()
      local out = {}
      for _, r in ipairs(srv:log()) do out[#out + 1] = (r.headers["x-amz-target"] or ""):match("%.(%a+)$") end
      return out
    end

    local function proxied_client()
      return moto.client({ endpoint = srv.url })
    end

    it("sends unprocessed items again until every item is written", function()
      local name = new_table()
      script({ unprocessed(name, first_batch()) }) -- the first batch answered, not written
      local c = proxied_client()
      local summary = assert(seed.run(c, { table = name, now = NOW, backoff_base_ms = 1, backoff_max_ms = 5 }))
      c:close()
      assert.is_true(summary.retries > 0)
      assert.equal(1, summary.retries)
      assert.equal(math.ceil((#fx.lines + 3) / 25) + 1, summary.requests)
      local t = targets()
      assert.same({ "GetItem", "Query", "Query", "Query", "BatchWriteItem", "BatchWriteItem" },
        { table.unpack(t, 1, 6) })
      -- the retry carried the 25 unprocessed items
      local retry_body = cjson.decode(srv:log()[6].body)
      assert.equal(25, #retry_body.RequestItems[name])
      assert.equal(#fx.lines + 3, #moto.scan(client, name))
      local items = by_kind(moto.scan(client, name))
      for i = 1, #fx.lines do assert.equal(fx.lines[i].text, items.MSG[i].message) end
    end)

    it("sends again only the items reported unprocessed", function()
      local name = new_table()
      local batch = first_batch()
      local some = { batch[3], batch[4], batch[5], batch[6], batch[7] }
      script({ unprocessed(name, some) }) -- the response claims the other 20 were written
      local c = proxied_client()
      local summary = assert(seed.run(c, { table = name, now = NOW, backoff_base_ms = 1, backoff_max_ms = 5 }))
      c:close()
      assert.equal(1, summary.retries)
      local retry_body = cjson.decode(srv:log()[6].body)
      local sent = {}
      for _, r in ipairs(retry_body.RequestItems[name]) do sent[#sent + 1] = r.PutRequest.Item.sk.S end
      local want = {}
      for _, r in ipairs(some) do want[#want + 1] = r.PutRequest.Item.sk.S end
      assert.same(want, sent)
      -- in the table: the five retried ones, not the twenty the fake response claimed
      local present = {}
      for _, it in ipairs(moto.scan(client, name)) do present[key_of(it)] = true end
      for i, r in ipairs(batch) do
        local key = key_of(marshal.unitem(r.PutRequest.Item))
        assert.equal(i >= 3 and i <= 7, present[key] == true, key)
      end
    end)

    it("gives up with unprocessed_items after a bounded number of rounds", function()
      local name = new_table()
      local stuck = unprocessed(name, { first_batch()[1] })
      script({ stuck, stuck, stuck, stuck, stuck, stuck }) -- more than allowed
      local c = proxied_client()
      local res, err = seed.run(c, { table = name, now = NOW, max_rounds = 2,
        backoff_base_ms = 1, backoff_max_ms = 5 })
      c:close()
      assert.is_nil(res)
      assert.equal("unprocessed_items", err.code)
      assert.matches("after 2 retries", err.message, 1, true)
      assert.equal(1, err.unprocessed)
      -- the first call and two retries, then nothing more
      assert.same({ "GetItem", "Query", "Query", "Query", "BatchWriteItem", "BatchWriteItem", "BatchWriteItem" },
        targets())
    end)
  end)
end)

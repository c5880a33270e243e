-- ddb.stream / ddb.core.rewrite (the stream rewrite, pattern D) against moto.
-- Every test works on its own fresh table made by ddb.schema; group rows and
-- messages are written directly with ddb.model + ddb.marshal, and stream
-- records are built the way DynamoDB Streams shapes them (and, in one block,
-- read from moto's own stream).
local core = require("ddb.core")
local errors = require("ddb.errors")
local ids = require("ddb.ids")
local marshal = require("ddb.marshal")
local model = require("ddb.model")
local schema = require("ddb.schema")
local stream = require("ddb.stream")
local moto = require("support.moto")
local fault_server = require("spec.support.fault_server")
local stream_rows = require("support.stream_rows")

local ALICE, BOB, CARO = stream_rows.ALICE, stream_rows.BOB, stream_rows.CARO
local at, copy = stream_rows.at, stream_rows.copy

local TX = "DynamoDB_20120810.TransactWriteItems"

local function seq_of(rec) return rec.dynamodb.SequenceNumber end

-- Fisher-Yates with math.random (seeded by the caller).
local function shuffle(t)
  for i = #t, 2, -1 do
    local j = math.random(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

-- A client that records every call (op and params) it passes on; with
-- `query_limit`, Query requests get that Limit, so every page must be followed.
local function recording(client, query_limit)
  local calls = {}
  local c = { calls = calls }
  function c.call(_, op, params)
    if op == "Query" and query_limit then
      local p = {}
      for k, v in pairs(params) do p[k] = v end
      p.Limit = query_limit
      params = p
    end
    calls[#calls + 1] = { op = op, params = params }
    return client:call(op, params)
  end
  function c.count(_, op)
    local n = 0
    for _, x in ipairs(calls) do
      if x.op == op then n = n + 1 end
    end
    return n
  end
  return c
end

describe("ddb.stream", function()
  local client, name

  local on_table = stream_rows.on(function() return client, name end)
  local put, seed_group, post = on_table.put, on_table.seed_group, on_table.post

  -- Every item, as plain rows in key order (a snapshot to compare).
  local function snapshot() return moto.snapshot(client, name) end

  -- The group rows of g, by owner pk order.
  local function group_rows(g)
    local out = {}
    for _, r in ipairs(snapshot()) do
      if r.message_group_uuid == g then out[#out + 1] = r end
    end
    return out
  end

  -- Asserts g has exactly one row per participant, all at sk with text.
  local function assert_group_at(g, owners, sk, text)
    local rows = group_rows(g)
    local want = {}
    for _, u in ipairs(owners) do want[#want + 1] = model.group_pk(u.uuid) end
    table.sort(want)
    local got = {}
    for i, r in ipairs(rows) do
      got[i] = r.pk
      assert.equal(sk, r.sk, "row of " .. r.pk)
      assert.equal(text, r.message, "row of " .. r.pk)
    end
    assert.same(want, got)
  end

  -- Moves owner's row of g from `from` to `to` behind the engine's back.
  local function competing_move(owner, g, from, to, text)
    local got = assert(client:call("GetItem", { TableName = name, ConsistentRead = true,
      Key = { pk = { S = model.group_pk(owner.uuid) }, sk = { S = from } } }))
    assert(got.Item, "no row to move")
    local item = got.Item
    assert.equal(g, item.message_group_uuid.S)
    item.sk, item.message = { S = to }, { S = text }
    assert(client:call("TransactWriteItems", { TransactItems = {
      { Delete = { TableName = name, Key = { pk = item.pk, sk = { S = from } },
                   ConditionExpression = "attribute_exists(pk)" } },
      { Put = { TableName = name, Item = item, ConditionExpression = "attribute_not_exists(pk)" } },
    } }))
  end

  local function process(records, opts)
    opts = opts or {}
    opts.table = name
    return stream.process(opts.client or client, records, opts)
  end

  local assert_counts = stream_rows.assert_counts

  local function assert_no_failures(s)
    assert.equal(0, #s.batchItemFailures)
    assert.equal(core.array_mt, getmetatable(s.batchItemFailures)) -- encodes as []
    assert.equal(0, #s.errors)
  end

  setup(function()
    client = moto.client()
  end)

  teardown(function()
    client:close()
  end)

  before_each(function()
    name = moto.table_name("stream")
    assert(schema.load(client, { table = name }))
  end)

  after_each(function()
    schema.drop(client, { table = name })
  end)

  describe("process", function()
    it("moves both group rows of one message: old rows gone, new ones at its sk with its text", function()
      local g = seed_group(ALICE, BOB, at(0), "hi", { muted = true, stars = 3 })
      local rec = post(g, at(5), BOB, "hello there")
      local rc = recording(client)
      local s = process({ rec }, { client = rc })
      assert_counts({ processed = 1, moved = 2, applied = 1, skipped = 0, failed = 0 }, s)
      assert_no_failures(s)
      assert_group_at(g, { ALICE, BOB }, at(5), "hello there")
      local rows = group_rows(g)
      local by_pk = {}
      for _, r in ipairs(rows) do by_pk[r.pk] = r end
      local a, b = by_pk[model.group_pk(ALICE.uuid)], by_pk[model.group_pk(BOB.uuid)]
      -- every other attribute kept, the other participant's details included
      assert.same({ pk = a.pk, sk = at(5), message = "hello there", message_group_uuid = g, user_uuid = BOB.uuid,
        user_display_name = "Bob Brook", user_handle = "bob", muted = true, stars = 3 }, a)
      assert.same(model.group_row(BOB, ALICE, g, at(5), "hello there"), b)

      -- one atomic transaction for both participants, each row a conditional
      -- Delete (of a row of this group only) + Put, with a short
      -- deterministic token; one GSI Query before it and nothing else
      assert.equal(1, rc:count("TransactWriteItems"))
      assert.equal(1, rc:count("Query"))
      assert.equal(2, #rc.calls)
      local tx
      for _, c in ipairs(rc.calls) do
        if c.op == "TransactWriteItems" then tx = c.params end
      end
      assert.equal(4, #tx.TransactItems)
      assert.matches("^%x+$", tx.ClientRequestToken)
      assert.is_true(#tx.ClientRequestToken <= 36)
      for i = 1, 4, 2 do
        local d, p = tx.TransactItems[i].Delete, tx.TransactItems[i + 1].Put
        assert.equal("message_group_uuid = :g", d.ConditionExpression)
        assert.same({ [":g"] = { S = g } }, d.ExpressionAttributeValues)
        assert.equal("attribute_not_exists(pk)", p.ConditionExpression)
        assert.equal(at(0), d.Key.sk.S)
        assert.equal(d.Key.pk.S, p.Item.pk.S)
      end
    end)

    it("ends a batch with several messages for one group at the newest, in one move", function()
      local g = seed_group(ALICE, BOB, at(0), "start")
      local r1, r3, r2 = post(g, at(1), ALICE, "one"), post(g, at(3), BOB, "three"), post(g, at(2), ALICE, "two")
      local rc = recording(client)
      local s = process({ r1, r3, r2 }, { client = rc })
      assert_counts({ processed = 3, moved = 2, applied = 1, skipped = 2, failed = 0 }, s)
      assert_group_at(g, { ALICE, BOB }, at(3), "three")
      assert.equal(1, rc:count("TransactWriteItems"))
    end)

    it("follows every page of the GSI query", function()
      local g = seed_group(ALICE, BOB, at(0), "start")
      local rc = recording(client, 1) -- one row per page
      local s = process({ post(g, at(1), ALICE, "paged") }, { client = rc })
      assert.equal(2, s.moved)
      assert.is_true(rc:count("Query") >= 2)
      assert_group_at(g, { ALICE, BOB }, at(1), "paged")
    end)

    it("moves a group with more owners than one transaction holds, in chunks", function()
      local g = ids.uuid()
      local owners = {}
      for i = 1, 60 do
        local u = { uuid = ids.uuid(), handle = "u" .. i, display_name = "User " .. i }
        owners[i] = u
        put(model.group_row(u, ALICE, g, at(0), "start"))
      end
      -- ALICE, whom every row names and who sends, is a participant with a row too
      owners[61] = ALICE
      put(model.group_row(ALICE, owners[1], g, at(0), "start"))
      local rc = recording(client)
      local s = process({ post(g, at(9), ALICE, "to all") }, { client = rc })
      assert_counts({ processed = 1, moved = 61, applied = 1, skipped = 0, failed = 0 }, s)
      assert.equal(2, rc:count("TransactWriteItems"))
      assert_group_at(g, owners, at(9), "to all")
    end)

    it("converges to the newest message whatever the order and duplication of deliveries", function()
      math.randomseed(20261126)
      for round = 1, 4 do
        -- (an owner's rows of two groups cannot share an sk, it is their key:
        -- each round has its own times)
        local t0 = round * 100
        local g1 = seed_group(ALICE, BOB, at(t0), "start")
        local g2 = seed_group(ALICE, CARO, at(t0, 1), "start")
        local recs, text_at = {}, {}
        for j = 1, 6 do
          local i = t0 + j
          local g, other = (i + round) % 2 == 0 and g1 or g2, (i + round) % 2 == 0 and BOB or CARO
          local text = ("round %d message %d"):format(round, i)
          recs[j] = post(g, at(i), i % 3 == 0 and ALICE or other, text)
          text_at[at(i)] = text
        end
        -- every record at least once, about half of them twice, in any order
        local deliveries = {}
        for _, r in ipairs(recs) do
          deliveries[#deliveries + 1] = r
          if math.random() < 0.5 then deliveries[#deliveries + 1] = copy(r) end
        end
        shuffle(deliveries)
        local newest = { [g1] = at(t0), [g2] = at(t0, 1) }
        local i = 1
        while i <= #deliveries do
          local last = math.min(#deliveries, i + math.random(0, 2))
          local batch = { table.unpack(deliveries, i, last) }
          i = last + 1
          local s = process(batch)
          assert.equal(0, s.failed, tostring(s.errors[1]))
          for _, r in ipairs(batch) do
            local g = r.dynamodb.Keys.pk.S:sub(5)
            if r.dynamodb.Keys.sk.S > newest[g] then newest[g] = r.dynamodb.Keys.sk.S end
          end
          -- after every batch: exactly at the newest message delivered so far,
          -- never behind it and never moved back
          assert_group_at(g1, { ALICE, BOB }, newest[g1], text_at[newest[g1]] or "start")
          assert_group_at(g2, { ALICE, CARO }, newest[g2], text_at[newest[g2]] or "start")
        end
        local last1, last2 = t0 + (round % 2 == 0 and 6 or 5), t0 + (round % 2 == 0 and 5 or 6)
        assert_group_at(g1, { ALICE, BOB }, at(last1), text_at[at(last1)])
        assert_group_at(g2, { ALICE, CARO }, at(last2), text_at[at(last2)])
      end
    end)

    it("changes nothing for a replayed old record or a repeated current one", function()
      local g = seed_group(ALICE, BOB, at(0), "start")
      local r1, r2 = post(g, at(1), ALICE, "one"), post(g, at(2), BOB, "two")
      assert.equal(2, process({ r2 }).moved)
      local before = snapshot()
      for _, batch in ipairs({ { r1 }, { r2 }, { r1, r2, r1 } }) do
        local s = process(batch)
        assert_counts({ processed = #batch, moved = 0, applied = 0, skipped = #batch, failed = 0 }, s)
        assert_no_failures(s)
        assert.same(before, snapshot())
      end
    end)

    it("skips, without error, a message whose group rows are missing", function()
      local g = seed_group(ALICE, BOB, at(0), "start")
      local orphan = post(ids.uuid(), at(3), ALICE, "nobody listens")
      local before = snapshot()
      local s = process({ orphan })
      assert_counts({ processed = 1, moved = 0, applied = 0, skipped = 1, failed = 0 }, s)
      assert_no_failures(s)
      assert.same(before, snapshot())
      -- and it does not stand in the way of the records after it
      s = process({ orphan, post(g, at(4), BOB, "hi") })
      assert_counts({ processed = 2, moved = 2, applied = 1, skipped = 1, failed = 0 }, s)
    end)

    describe("records that must change nothing", function()
      local g, good

      before_each(function()
        g = seed_group(ALICE, BOB, at(0), "start")
        good = post(g, at(7), ALICE, "the real one")
      end)

      local function raising_mt()
        return { __index = function() error("a metamethod of the input ran") end,
                 __len = function() error("a metamethod of the input ran") end }
      end

      -- Each case turns a copy of a valid INSERT record into something that
      -- must be skipped. A case naming a bogus group id returns it: that
      -- "group" then gets rows too, so only the check itself can skip it.
      local cases = {
        { "REMOVE of a message", function(r) r.eventName = "REMOVE"; r.dynamodb.NewImage = nil end },
        { "MODIFY of a message", function(r) r.eventName = "MODIFY" end },
        { "INSERT of a group row (the rewrite's own write)", function(r)
          local row = model.group_row(ALICE, BOB, g, at(9), "mine")
          r.dynamodb.Keys = { pk = { S = row.pk }, sk = { S = row.sk } }
          r.dynamodb.NewImage = marshal.item(row)
        end },
        { "INSERT of a pair row", function(r)
          local row = model.pair_row(ALICE.uuid, BOB.uuid, g, at(9))
          r.dynamodb.Keys = { pk = { S = row.pk }, sk = { S = row.sk } }
          r.dynamodb.NewImage = marshal.item(row)
        end },
        { "unknown eventName", function(r) r.eventName = "UPSERT" end },
        { "lowercase eventName", function(r) r.eventName = "insert" end },
        { "missing eventName", function(r) r.eventName = nil end },
        { "eventName a number", function(r) r.eventName = 1 end },
        { "missing dynamodb", function(r) r.dynamodb = nil end },
        { "dynamodb a string", function(r) r.dynamodb = "INSERT" end },
        { "missing Keys", function(r) r.dynamodb.Keys = nil end },
        { "Keys not a table", function(r) r.dynamodb.Keys = "MSG#" .. g end },
        { "pk not an AttributeValue", function(r) r.dynamodb.Keys.pk = "MSG#" .. g end },
        { "pk.S a number", function(r) r.dynamodb.Keys.pk = { S = 42 } end },
        { "pk an N", function(r) r.dynamodb.Keys.pk = { N = "42" } end },
        { "group id not a uuid", function(r)
          r.dynamodb.Keys.pk.S = "MSG#not-a-uuid"
          return "not-a-uuid"
        end },
        { "group id in uppercase", function(r)
          r.dynamodb.Keys.pk.S = "MSG#" .. g:upper()
          return g:upper()
        end },
        { "group id with trailing text", function(r)
          r.dynamodb.Keys.pk.S = "MSG#" .. g .. "x"
          return g .. "x"
        end },
        { "group id without dashes", function(r)
          local bogus = g:gsub("-", "") .. "abcd"
          r.dynamodb.Keys.pk.S = "MSG#" .. bogus
          return bogus
        end },
        { "group id with other separators", function(r)
          local bogus = g:gsub("-", "_")
          r.dynamodb.Keys.pk.S = "MSG#" .. bogus
          return bogus
        end },
        { "prefix in lowercase", function(r) r.dynamodb.Keys.pk.S = "msg#" .. g end },
        { "no sk anywhere", function(r) r.dynamodb.Keys.sk = nil; r.dynamodb.NewImage.sk = nil end },
        { "sk a number", function(r) r.dynamodb.Keys.sk = { S = 7 } end },
        { "sk in NewImage a number", function(r) r.dynamodb.Keys.sk = nil; r.dynamodb.NewImage.sk = { S = 7 } end },
        { "Keys.sk and NewImage.sk disagree", function(r) r.dynamodb.NewImage.sk = { S = at(8) } end },
        { "empty sk", function(r) r.dynamodb.Keys.sk.S = ""; r.dynamodb.NewImage.sk.S = "" end },
        { "missing NewImage", function(r) r.dynamodb.NewImage = nil end },
        { "NewImage a list", function(r) r.dynamodb.NewImage = core.array({ 1, 2 }) end },
        { "missing message", function(r) r.dynamodb.NewImage.message = nil end },
        { "message a number", function(r) r.dynamodb.NewImage.message = { S = 7 } end },
        { "message an N", function(r) r.dynamodb.NewImage.message = { N = "7" } end },
        { "message not UTF-8", function(r) r.dynamodb.NewImage.message.S = "caf\xe9" end },
        { "SequenceNumber a number", function(r) r.dynamodb.SequenceNumber = 12 end },
        { "eventID a table", function(r) r.eventID = {} end },
        { "fields behind raising metamethods", function(r)
          setmetatable(r.dynamodb, raising_mt())
          r.dynamodb.Keys = nil
        end },
      }

      for _, case in ipairs(cases) do
        it(case[1], function()
          local rec = copy(good)
          local bogus = case[2](rec)
          if bogus then
            local u = { uuid = ids.uuid(), handle = "u", display_name = "U" }
            local v = { uuid = ids.uuid(), handle = "v", display_name = "V" }
            put(model.group_row(u, v, bogus, at(0), "bogus"))
            put(model.group_row(v, u, bogus, at(0), "bogus"))
          end
          local before = snapshot()
          local s = process({ rec })
          assert_counts({ processed = 1, moved = 0, applied = 0, skipped = 1, failed = 0 }, s)
          assert_no_failures(s)
          assert.same(before, snapshot())
        end)
      end

      it("records that are not tables, or hide behind metamethods", function()
        local before = snapshot()
        for _, rec in ipairs({ "INSERT", 42, true, setmetatable({}, raising_mt()) }) do
          local s = process({ rec })
          assert_counts({ processed = 1, moved = 0, applied = 0, skipped = 1, failed = 0 }, s)
        end
        local s = process(setmetatable({ 1, 2, 3 }, raising_mt()))
        assert_counts({ processed = 3, moved = 0, applied = 0, skipped = 3, failed = 0 }, s)
        assert.same(before, snapshot())
      end)

      it("all of them in one batch do not stop the valid record after them", function()
        local batch = {}
        for i, case in ipairs(cases) do
          batch[i] = copy(good)
          case[2](batch[i])
        end
        batch[#batch + 1] = "garbage"
        batch[#batch + 1] = good
        local s = process(batch)
        assert_counts({ processed = #cases + 2, moved = 2, applied = 1, skipped = #cases + 1, failed = 0 }, s)
        assert_group_at(g, { ALICE, BOB }, at(7), "the real one")
      end)
    end)

    describe("failures", function()
      it("fails only the group whose write fails (injected), names its first record, and converges on redelivery",
        function()
        local g1 = seed_group(ALICE, BOB, at(0), "start")
        local g2 = seed_group(ALICE, CARO, at(0, 1), "start")
        local batch = { post(g2, at(1), CARO, "for g2"), post(g1, at(2), BOB, "g1 a"), post(g1, at(3), ALICE, "g1 b"),
          post(g2, at(0, 500), CARO, "older g2") }
        local g1_before = group_rows(g1)
        local stages = {}
        local s = process(batch, { inject = function(stage, g)
          stages[#stages + 1] = stage .. " " .. (g == g1 and "g1" or "g2")
          if stage == "before_write" and g == g1 then return "disk on fire" end
        end })
        assert.same({ "after_read g2", "before_write g2", "after_read g1", "before_write g1" }, stages)
        assert_counts({ processed = 4, moved = 2, applied = 1, skipped = 1, failed = 2 }, s)
        assert.same({ { itemIdentifier = seq_of(batch[2]) } }, s.batchItemFailures)
        assert.equal(1, #s.errors)
        assert.is_true(errors.is(s.errors[1]))
        assert.equal("InjectedFailure", s.errors[1].code)
        assert.equal("disk on fire", s.errors[1].message)
        assert.equal("before_write", s.errors[1].stage)
        assert.equal(g1, s.errors[1].group)
        assert.same(g1_before, group_rows(g1)) -- not a row lost or moved
        assert_group_at(g2, { ALICE, CARO }, at(1), "for g2")

        -- Lambda redelivers the batch from the reported record on; moves are idempotent
        s = process({ batch[2], batch[3], batch[4] })
        assert_counts({ processed = 3, moved = 2, applied = 1, skipped = 2, failed = 0 }, s)
        assert_no_failures(s)
        assert_group_at(g1, { ALICE, BOB }, at(3), "g1 b")
        assert_group_at(g2, { ALICE, CARO }, at(1), "for g2")
        -- and the whole batch again changes nothing more
        local after = snapshot()
        s = process(batch)
        assert_counts({ processed = 4, moved = 0, applied = 0, skipped = 4, failed = 0 }, s)
        assert.same(after, snapshot())
      end)

      it("reports the earliest record of all the failed groups", function()
        local g1 = seed_group(ALICE, BOB, at(0), "start")
        local g2 = seed_group(ALICE, CARO, at(0, 1), "start")
        local g3 = seed_group(BOB, CARO, at(0, 2), "start")
        local batch = { post(g3, at(1), BOB, "ok"), post(g2, at(2), CARO, "x"), post(g1, at(3), BOB, "y"),
          post(g2, at(4), ALICE, "z") }
        local s = process(batch, { inject = function(stage, g)
          if stage == "after_read" and g ~= g3 then return "no" end
        end })
        assert_counts({ processed = 4, moved = 2, applied = 1, skipped = 0, failed = 3 }, s)
        assert.same({ { itemIdentifier = seq_of(batch[2]) } }, s.batchItemFailures)
        assert.same({ g2, g1 }, { s.errors[1].group, s.errors[2].group }) -- in the order of their first records
      end)

      it("reports the eventID of a failed record without a SequenceNumber, and an error table as given", function()
        local g = seed_group(ALICE, BOB, at(0), "start")
        local rec = post(g, at(1), ALICE, "hi")
        rec.dynamodb.SequenceNumber = nil
        local mine = errors.new("Mine", "as returned")
        local s = process({ rec }, { inject = function(stage)
          if stage == "after_read" then return mine end
        end })
        assert.same({ { itemIdentifier = rec.eventID } }, s.batchItemFailures)
        assert.equal(mine, s.errors[1])
        assert.equal(g, mine.group)
        rec.eventID = nil
        s = process({ rec }, { inject = function() return true end })
        assert.same({ { itemIdentifier = "" } }, s.batchItemFailures) -- Lambda retries the whole batch
        assert.equal("InjectedFailure", s.errors[1].code)
        assert_group_at(g, { ALICE, BOB }, at(0), "start")
      end)

      it("loses no row when every TransactWriteItems fails (loopback proxy), and converges afterwards", function()
        local srv = fault_server.start { upstream = moto.endpoint() }
        local ok, err = pcall(function()
          srv:default { action = "by_target", targets = { [TX] = { status = 500,
            body = '{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"boom"}' } } }
          local g = seed_group(ALICE, BOB, at(0), "start")
          local rec = post(g, at(1), ALICE, "through the proxy")
          local before = snapshot()
          local flaky = moto.client { endpoint = srv.url, max_attempts = 1 }
          local s = process({ rec }, { client = flaky })
          assert_counts({ processed = 1, moved = 0, applied = 0, skipped = 0, failed = 1 }, s)
          assert.same({ { itemIdentifier = seq_of(rec) } }, s.batchItemFailures)
          assert.equal("InternalServerError", s.errors[1].code)
          assert.equal(500, s.errors[1].status)
          assert.equal(g, s.errors[1].group)
          assert.same(before, snapshot())

          -- the client's own retries resend the same request with the same token
          srv:reset()
          srv:default { action = "by_target", targets = { [TX] = { status = 500,
            body = '{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"boom"}' } } }
          local retrying = moto.client { endpoint = srv.url, max_attempts = 3, retry_base_ms = 1 }
          s = process({ rec }, { client = retrying })
          assert.equal(1, s.failed)
          local tokens = {}
          for _, entry in ipairs(srv:log()) do
            if entry.headers["x-amz-target"] == TX then
              tokens[#tokens + 1] = core.json_decode(entry.body).ClientRequestToken
            end
          end
          assert.equal(3, #tokens)
          assert.is_string(tokens[1])
          assert.same({ tokens[1], tokens[1], tokens[1] }, tokens)
          assert.same(before, snapshot())

          s = process({ rec })
          assert_counts({ processed = 1, moved = 2, applied = 1, skipped = 0, failed = 0 }, s)
          assert_group_at(g, { ALICE, BOB }, at(1), "through the proxy")
          flaky:close()
          retrying:close()
        end)
        srv:stop()
        assert(ok, err)
      end)

      it("a lost TransactWriteItems response is reported, and redelivery finds the move done", function()
        local srv = fault_server.start { upstream = moto.endpoint() }
        local ok, err = pcall(function()
          srv:default { action = "by_target", targets = { [TX] = { action = "forward_then", status = 500,
            body = '{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"lost"}' } } }
          local g = seed_group(ALICE, BOB, at(0), "start")
          local rec = post(g, at(1), BOB, "done twice?")
          local lossy = moto.client { endpoint = srv.url, max_attempts = 1 }
          local s = process({ rec }, { client = lossy })
          assert.equal(1, s.failed)
          assert_group_at(g, { ALICE, BOB }, at(1), "done twice?") -- moved, though the engine never heard
          s = process({ rec })
          assert_counts({ processed = 1, moved = 0, applied = 0, skipped = 1, failed = 0 }, s)
          assert_group_at(g, { ALICE, BOB }, at(1), "done twice?")
          lossy:close()
        end)
        srv:stop()
        assert(ok, err)
      end)
    end)

    describe("races", function()
      it("re-reads and still converges when a row moves between its read and its write", function()
        local g = seed_group(ALICE, BOB, at(0), "start", { muted = true })
        local rec = post(g, at(2), BOB, "target")
        local writes = 0
        local rc = recording(client, 1) -- the consistent re-reads page too
        local s = process({ rec }, { client = rc, inject = function(stage, gg)
          assert.equal(g, gg)
          if stage ~= "before_write" then return end
          writes = writes + 1
          if writes == 1 then competing_move(ALICE, g, at(0), at(1), "competing") end
        end })
        assert.equal(2, writes)
        assert_counts({ processed = 1, moved = 2, applied = 1, skipped = 0, failed = 0 }, s)
        assert_group_at(g, { ALICE, BOB }, at(2), "target")
        assert.is_true(group_rows(g)[1].muted or group_rows(g)[2].muted)
        local consistent = 0
        for _, c in ipairs(rc.calls) do
          if c.op == "Query" and c.params.ConsistentRead then
            consistent = consistent + 1
            assert.is_nil(c.params.IndexName)
            assert.equal("message_group_uuid = :g", c.params.FilterExpression)
          end
        end
        assert.is_true(consistent >= 2) -- one owner each, at least
      end)

      it("leaves alone a row another processor moved past the target, and moves the other", function()
        local g = seed_group(ALICE, BOB, at(0), "start")
        local rec, newer = post(g, at(2), BOB, "target"), post(g, at(3), ALICE, "newer")
        local moved_behind = false
        local s = process({ rec }, { inject = function(stage)
          if stage == "before_write" and not moved_behind then
            moved_behind = true
            competing_move(ALICE, g, at(0), at(3), "newer")
          end
        end })
        assert_counts({ processed = 1, moved = 1, applied = 1, skipped = 0, failed = 0 }, s)
        local rows = group_rows(g)
        assert.equal(2, #rows)
        for _, r in ipairs(rows) do
          if r.pk == model.group_pk(ALICE.uuid) then assert.equal(at(3), r.sk) else assert.equal(at(2), r.sk) end
        end
        s = process({ newer })
        assert.equal(1, s.moved)
        assert_group_at(g, { ALICE, BOB }, at(3), "newer")
      end)

      it("gives up after max_rounds when the rows keep changing, with no row lost", function()
        local g = seed_group(ALICE, BOB, at(0), "start")
        local rec = post(g, at(9), BOB, "target")
        local current, writes = at(0), 0
        local s = process({ rec }, { max_rounds = 2, inject = function(stage)
          if stage ~= "before_write" then return end
          writes = writes + 1
          local to = at(1, writes)
          competing_move(ALICE, g, current, to, "busy " .. writes)
          current = to
        end })
        assert.equal(3, writes) -- the first read and 2 re-reads
        assert_counts({ processed = 1, moved = 0, applied = 0, skipped = 0, failed = 1 }, s)
        assert.equal("RewriteContention", s.errors[1].code)
        assert.is_true(errors.is(s.errors[1]))
        assert.same({ { itemIdentifier = seq_of(rec) } }, s.batchItemFailures)
        local rows = group_rows(g)
        assert.equal(2, #rows) -- one per participant: the cancelled transactions took nothing
        s = process({ rec })
        assert.equal(2, s.moved)
        assert_group_at(g, { ALICE, BOB }, at(9), "target")
      end)
    end)

    describe("an owner's row of another group at the target sk", function()
      -- An owner has one row per sk, whatever the group: two conversations of
      -- Alice cannot both sit at the same microsecond. The moving row steps
      -- 1 us later instead, and the other group's row is never overwritten.
      local function user(name_)
        return { uuid = ids.uuid(), handle = name_, display_name = name_:upper() }
      end

      local function row_of(g, owner)
        for _, r in ipairs(group_rows(g)) do
          if r.pk == model.group_pk(owner.uuid) then return r end
        end
      end

      local function calls_of(rc, op)
        local out = {}
        for _, c in ipairs(rc.calls) do
          if c.op == op then out[#out + 1] = c.params end
        end
        return out
      end

      it("moves the owner's row to T+1us, leaves the other group alone, ignores a replay, moves on later", function()
        local T = "2024-02-29T23:59:59.999999+00:00"
        local T1 = "2024-03-01T00:00:00.000000+00:00" -- across a leap day, a month and every clock field
        local g = seed_group(ALICE, BOB, "2024-02-29T10:00:00.000000+00:00", "start", { muted = true, stars = 3 })
        local h = seed_group(ALICE, CARO, T, "the other conversation", { pinned = true, note = "keep me" })
        local h_before = group_rows(h)
        local rec = post(g, T, BOB, "same microsecond")
        local rc = recording(client)
        local s = process({ rec }, { client = rc })
        assert_counts({ processed = 1, moved = 2, applied = 1, skipped = 0, failed = 0 }, s)
        assert_no_failures(s)
        -- Alice's row of g one microsecond later, every attribute kept; Bob's at T
        assert.same({ pk = model.group_pk(ALICE.uuid), sk = T1, message = "same microsecond", message_group_uuid = g,
          user_uuid = BOB.uuid, user_display_name = "Bob Brook", user_handle = "bob", muted = true, stars = 3 },
          row_of(g, ALICE))
        assert.same(model.group_row(BOB, ALICE, g, T, "same microsecond"), row_of(g, BOB))
        assert.equal(2, #group_rows(g))
        assert.same(h_before, group_rows(h)) -- untouched, every attribute
        assert.equal(true, row_of(h, ALICE).pinned)

        -- how: the Put's failed condition, then a consistent read of the slot,
        -- then the same rows again with Alice's target bumped (no re-read)
        local gets = calls_of(rc, "GetItem")
        assert.equal(1, #gets)
        assert.is_true(gets[1].ConsistentRead)
        assert.same({ pk = { S = model.group_pk(ALICE.uuid) }, sk = { S = T } }, gets[1].Key)
        local txs = calls_of(rc, "TransactWriteItems")
        assert.equal(2, #txs)
        assert.equal(1, rc:count("Query")) -- the GSI read only: no re-read
        local puts = {}
        for i = 2, 4, 2 do
          local put_ = txs[2].TransactItems[i].Put
          puts[put_.Item.pk.S] = put_.Item.sk.S
          assert.equal("attribute_not_exists(pk)", put_.ConditionExpression)
        end
        assert.same({ [model.group_pk(ALICE.uuid)] = T1, [model.group_pk(BOB.uuid)] = T }, puts)
        assert.are_not.equal(txs[1].ClientRequestToken, txs[2].ClientRequestToken) -- the token covers the targets

        -- a replay (Alice's row at T+1us is not older than T) changes nothing
        local before = snapshot()
        for _, batch in ipairs({ { rec }, { copy(rec), rec } }) do
          s = process(batch)
          assert_counts({ processed = #batch, moved = 0, applied = 0, skipped = #batch, failed = 0 }, s)
          assert_no_failures(s)
          assert.same(before, snapshot())
        end

        -- a later message moves both participants as usual
        local T5 = ids.after(T, 5)
        assert.equal("2024-03-01T00:00:00.000004+00:00", T5)
        s = process({ post(g, T5, ALICE, "later") })
        assert_counts({ processed = 1, moved = 2, applied = 1, skipped = 0, failed = 0 }, s)
        assert_group_at(g, { ALICE, BOB }, T5, "later")
        assert.same(h_before, group_rows(h))
      end)

      it("steps as many times as needed, each owner on its own (two bumps for one, one for the other)", function()
        local T = "2023-12-31T23:59:59.999999+00:00"
        local T1, T2 = "2024-01-01T00:00:00.000000+00:00", "2024-01-01T00:00:00.000001+00:00"
        local dave, erin, fay = user("dave"), user("erin"), user("fay")
        local g = seed_group(ALICE, BOB, "2023-12-31T00:00:00.000000+00:00", "start")
        local h1 = seed_group(ALICE, CARO, T, "h1") -- Alice: T and T+1us taken
        local h2 = seed_group(ALICE, dave, T1, "h2")
        local h3 = seed_group(BOB, erin, T, "h3")   -- Bob: T taken
        local h4 = seed_group(fay, BOB, T2, "h4")   -- (T+2us taken for Bob, not on his way)
        local others = {}
        for _, h in ipairs({ h1, h2, h3, h4 }) do others[h] = group_rows(h) end
        local rc = recording(client)
        local s = process({ post(g, T, ALICE, "crowded") }, { client = rc })
        assert_counts({ processed = 1, moved = 2, applied = 1, skipped = 0, failed = 0 }, s)
        assert_no_failures(s)
        assert.same(model.group_row(ALICE, BOB, g, T2, "crowded"), row_of(g, ALICE))
        assert.same(model.group_row(BOB, ALICE, g, T1, "crowded"), row_of(g, BOB))
        assert.equal(2, #group_rows(g))
        for h, rows in pairs(others) do assert.same(rows, group_rows(h)) end
        assert.equal(3, rc:count("TransactWriteItems")) -- T/T, then T+1/T+1, then T+2/T+1
        assert.equal(3, rc:count("GetItem"))
        assert.equal(1, rc:count("Query"))
      end)

      it("carries the microsecond through seconds, minutes, hours, days, months, years and leap years", function()
        local cases = {
          { "2026-03-01T12:00:00.000041+00:00", "2026-03-01T12:00:00.000042+00:00" },
          { "2026-03-01T12:00:00.999999+00:00", "2026-03-01T12:00:01.000000+00:00" },
          { "2026-03-01T12:34:59.999999+00:00", "2026-03-01T12:35:00.000000+00:00" },
          { "2026-03-01T09:59:59.999999+00:00", "2026-03-01T10:00:00.000000+00:00" },
          { "2026-03-01T23:59:59.999999+00:00", "2026-03-02T00:00:00.000000+00:00" },
          { "2026-01-31T23:59:59.999999+00:00", "2026-02-01T00:00:00.000000+00:00" },
          { "2026-04-30T23:59:59.999999+00:00", "2026-05-01T00:00:00.000000+00:00" },
          { "2026-02-28T23:59:59.999999+00:00", "2026-03-01T00:00:00.000000+00:00" }, -- common year
          { "2024-02-28T23:59:59.999999+00:00", "2024-02-29T00:00:00.000000+00:00" }, -- leap year
          { "2024-02-29T23:59:59.999999+00:00", "2024-03-01T00:00:00.000000+00:00" },
          { "2100-02-28T23:59:59.999999+00:00", "2100-03-01T00:00:00.000000+00:00" }, -- century: common
          { "2000-02-28T23:59:59.999999+00:00", "2000-02-29T00:00:00.000000+00:00" }, -- 400 years: leap
          { "2026-12-31T23:59:59.999999+00:00", "2027-01-01T00:00:00.000000+00:00" },
          { "1999-12-31T23:59:59.999999+00:00", "2000-01-01T00:00:00.000000+00:00" },
        }
        local batch, groups = {}, {}
        for i, case in ipairs(cases) do
          assert.equal(case[2], ids.after(case[1])) -- the expectation agrees with ddb.ids
          local o, p, q = user("o" .. i), user("p" .. i), user("q" .. i)
          local g = seed_group(o, p, "1990-01-01T00:00:00.000000+00:00", "start")
          seed_group(o, q, case[1], "in the way")
          groups[i] = { g = g, o = o, p = p }
          batch[i] = post(g, case[1], p, "case " .. i)
        end
        local s = process(batch) -- one batch, one group per record
        assert_counts({ processed = #cases, moved = 2 * #cases, applied = #cases, skipped = 0, failed = 0 }, s)
        for i, case in ipairs(cases) do
          local x = groups[i]
          assert.equal(case[2], row_of(x.g, x.o).sk, case[1])
          assert.equal(case[1], row_of(x.g, x.p).sk, case[1])
          assert.equal("case " .. i, row_of(x.g, x.o).message)
        end
      end)

      it("fails the group with SortKeyTaken, overwriting nothing, when every step is taken too", function()
        local T = "2026-03-01T12:00:00.999990+00:00"
        local g = seed_group(ALICE, BOB, at(0), "start")
        for i = 0, 16 do -- T and the 16 microseconds after it (across a second)
          seed_group(ALICE, user("x" .. i), ids.after(T, i), "busy " .. i)
        end
        local rec = post(g, T, BOB, "no room")
        local before = snapshot()
        local rc = recording(client)
        local s = process({ rec }, { client = rc })
        assert_counts({ processed = 1, moved = 0, applied = 0, skipped = 0, failed = 1 }, s)
        assert.same({ { itemIdentifier = seq_of(rec) } }, s.batchItemFailures)
        assert.equal("SortKeyTaken", s.errors[1].code)
        assert.is_true(errors.is(s.errors[1]))
        assert.equal(g, s.errors[1].group)
        assert.matches(model.group_pk(ALICE.uuid), s.errors[1].message, 1, true)
        assert.matches(T, s.errors[1].message, 1, true)
        assert.equal(17, rc:count("TransactWriteItems")) -- T, then 16 steps
        assert.same(before, snapshot()) -- Bob's row not moved either: one transaction
      end)

      it("fails the group with SortKeyTaken when the taken sk is the last timestamp there is", function()
        local T = "9999-12-31T23:59:59.999999+00:00"
        local g = seed_group(ALICE, BOB, at(0), "start")
        local h = seed_group(ALICE, CARO, T, "other")
        local rec = post(g, T, BOB, "at the end of time")
        local before = snapshot()
        local s = process({ rec })
        assert_counts({ processed = 1, moved = 0, applied = 0, skipped = 0, failed = 1 }, s)
        assert.equal("SortKeyTaken", s.errors[1].code)
        assert.matches(h, s.errors[1].message, 1, true)
        assert.same(before, snapshot())
      end)

      it("treats the slot held by its own group's row (another processor's move) as a race, not a bump", function()
        local g = seed_group(ALICE, BOB, at(0), "start")
        local rec = post(g, at(2), BOB, "target")
        local raced = false
        local rc = recording(client)
        local s = process({ rec }, { client = rc, inject = function(stage)
          if stage == "before_write" and not raced then
            raced = true
            competing_move(ALICE, g, at(0), at(2), "target")
          end
        end })
        assert_counts({ processed = 1, moved = 1, applied = 1, skipped = 0, failed = 0 }, s)
        assert_group_at(g, { ALICE, BOB }, at(2), "target") -- nobody stepped to at(2) + 1us
        assert.equal(1, rc:count("GetItem"))
        assert.equal(2, rc:count("TransactWriteItems"))
      end)

      it("keeps a step across a re-read, and leaves a row another processor already stepped", function()
        local T = at(3)
        local g = seed_group(ALICE, BOB, at(0), "start")
        local h = seed_group(ALICE, CARO, T, "other")
        local rec = post(g, T, BOB, "target")
        local raced = false
        local s = process({ rec }, { inject = function(stage)
          if stage == "before_write" and not raced then
            raced = true -- another processor of the same record got there first, Alice's row only
            competing_move(ALICE, g, at(0), ids.after(T), "target")
          end
        end })
        assert_counts({ processed = 1, moved = 1, applied = 1, skipped = 0, failed = 0 }, s)
        assert_no_failures(s)
        assert.equal(ids.after(T), row_of(g, ALICE).sk)
        assert.equal(T, row_of(g, BOB).sk)
        assert.equal(2, #group_rows(g))
        assert.equal(2, #group_rows(h))
        assert.equal("other", row_of(h, ALICE).message)
      end)
    end)

    it("raises on arguments of the wrong type", function()
      assert.has_error(function() stream.process(nil, {}) end)
      assert.has_error(function() stream.process({}, {}) end)
      assert.has_error(function() stream.process(client, "records") end)
      assert.has_error(function() stream.process(client, {}, "opts") end)
      assert.has_error(function() stream.process(client, {}, { table = "" }) end)
      assert.has_error(function() stream.process(client, {}, { index = 3 }) end)
      assert.has_error(function() stream.process(client, {}, { max_rounds = -1 }) end)
      assert.has_error(function() stream.process(client, {}, { max_rounds = 1.5 }) end)
      assert.has_error(function() stream.process(client, {}, { inject = "x" }) end)
      assert.has_error(function() core.rewrite(client) end)
      assert.has_error(function() core.rewrite({}, {}) end)
      assert.has_error(function() core.rewrite(client, {}, { max_rounds = 5000 }) end)
      assert.has_error(function() core.rewrite(client, {}, { table = false }) end)
      -- an empty batch is fine
      local s = stream.process(client, {})
      assert_counts({ processed = 0, moved = 0, applied = 0, skipped = 0, failed = 0 }, s)
      assert.equal("[]", core.json_encode(s.batchItemFailures))
      assert.equal("[]", core.json_encode(s.errors))
    end)
  end)

  describe("with records read from moto's stream", function()
    local function read_stream()
      local desc = assert(client:call("DescribeTable", { TableName = name }))
      local arn = desc.Table.LatestStreamArn
      local records = {}
      for page, err in client:pages("DescribeStream", { StreamArn = arn }) do
        assert(page, tostring(err))
        for _, shard in ipairs(page.StreamDescription.Shards) do
          local it = assert(client:call("GetShardIterator", { StreamArn = arn, ShardId = shard.ShardId,
            ShardIteratorType = "TRIM_HORIZON" })).ShardIterator
          for _ = 1, 20 do
            local res = assert(client:call("GetRecords", { ShardIterator = it }))
            for _, r in ipairs(res.Records) do records[#records + 1] = r end
            it = res.NextShardIterator
            if #res.Records == 0 or type(it) ~= "string" then break end
          end
        end
      end
      return records
    end

    it("moves the group for the real INSERT and skips everything else, its own writes included", function()
      local g = seed_group(ALICE, BOB, at(0), "start")
      local other = seed_group(ALICE, CARO, at(0, 1), "start")
      put(model.pair_row(ALICE.uuid, BOB.uuid, g, at(0)))
      post(g, at(4), ALICE, "from the stream")
      assert(client:call("UpdateItem", { TableName = name, -- a MODIFY
        Key = marshal.item(model.pair_key(ALICE.uuid, BOB.uuid)),
        UpdateExpression = "SET note = :n", ExpressionAttributeValues = { [":n"] = { S = "x" } } }))
      assert(client:call("DeleteItem", { TableName = name, -- a REMOVE
        Key = { pk = { S = model.group_pk(CARO.uuid) }, sk = { S = at(0, 1) } } }))

      local records = read_stream()
      local kinds = {}
      for _, r in ipairs(records) do
        local k = r.eventName .. " " .. r.dynamodb.Keys.pk.S:match("^(%u+)#")
        kinds[k] = (kinds[k] or 0) + 1
      end
      assert.same({ ["INSERT GRP"] = 4, ["INSERT PAIR"] = 1, ["INSERT MSG"] = 1, ["MODIFY PAIR"] = 1,
        ["REMOVE GRP"] = 1 }, kinds)

      local s = process(records)
      assert_counts({ processed = #records, moved = 2, applied = 1, skipped = #records - 1, failed = 0 }, s)
      assert_no_failures(s)
      assert_group_at(g, { ALICE, BOB }, at(4), "from the stream")
      assert.equal(1, #group_rows(other))

      -- the whole stream again, now with the rewrite's own REMOVE/INSERT of
      -- GRP# rows in it: nothing changes (no feedback loop, replay is a no-op)
      local before = snapshot()
      local again = read_stream()
      assert.is_true(#again > #records)
      s = process(again)
      assert_counts({ processed = #again, moved = 0, applied = 0, skipped = #again, failed = 0 }, s)
      assert.same(before, snapshot())
    end)
  end)

  describe("handler", function()
    local saved

    before_each(function()
      saved = { client_factory = stream.client_factory, getenv = stream.getenv, log = stream.log }
      stream.getenv = function(k)
        if k == "DDB_TABLE" then return name end
        return os.getenv(k)
      end
    end)

    after_each(function()
      for k, v in pairs(saved) do stream[k] = v end
    end)

    it("returns an empty batchItemFailures for a good event, reusing its client", function()
      local made = 0
      stream.client_factory = function()
        made = made + 1
        return client
      end
      local g = seed_group(ALICE, BOB, at(0), "start")
      local res = stream.handler({ Records = { post(g, at(1), BOB, "one") } }, {})
      assert.equal('{"batchItemFailures":[]}', core.json_encode(res))
      res = stream.handler({ Records = { post(g, at(2), ALICE, "two") } }, {})
      assert.equal('{"batchItemFailures":[]}', core.json_encode(res))
      assert.equal(1, made)
      assert_group_at(g, { ALICE, BOB }, at(2), "two")
    end)

    it("names the first record of the failed group in the partial-batch response, and logs it", function()
      local srv = fault_server.start { upstream = moto.endpoint() }
      local ok, err = pcall(function()
        srv:default { action = "by_target", targets = { [TX] = { status = 500,
          body = '{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"boom"}' } } }
        local flaky = moto.client { endpoint = srv.url, max_attempts = 1 }
        stream.client_factory = function() return flaky end
        local lines = {}
        stream.log = function(line) lines[#lines + 1] = line end
        local g = seed_group(ALICE, BOB, at(0), "start")
        local orphan = post(ids.uuid(), at(1), ALICE, "no rows")
        local first, second = post(g, at(2), ALICE, "a"), post(g, at(3), BOB, "b")
        local res = stream.handler({ Records = { orphan, first, second } }, {})
        assert.same({ batchItemFailures = { { itemIdentifier = seq_of(first) } } }, res)
        assert.equal(('{"batchItemFailures":[{"itemIdentifier":"%s"}]}'):format(seq_of(first)),
          core.json_encode(res))
        assert.equal(1, #lines)
        assert.matches(g, lines[1], 1, true)
        assert.matches("InternalServerError", lines[1], 1, true)
        assert_group_at(g, { ALICE, BOB }, at(0), "start")
        flaky:close()
      end)
      srv:stop()
      assert(ok, err)
    end)

    it("reports nothing failed for an event without records, and raises for a non-table event", function()
      stream.client_factory = function() error("no client needed") end
      assert.equal('{"batchItemFailures":[]}', core.json_encode(stream.handler({}, {})))
      assert.equal('{"batchItemFailures":[]}', core.json_encode(stream.handler({ Records = "x" }, {})))
      assert.equal('{"batchItemFailures":[]}', core.json_encode(stream.handler({ Records = {} }, {})))
      assert.has_error(function() stream.handler(nil, {}) end)
      assert.has_error(function() stream.handler("event", {}) end)
    end)

    it("raises (so Lambda retries the batch) when it cannot make a client", function()
      stream.client_factory = function() return nil, errors.new("ConfigError", "no region") end
      local g = seed_group(ALICE, BOB, at(0), "start")
      local ok, err = pcall(stream.handler, { Records = { post(g, at(1), ALICE, "x") } }, {})
      assert.is_false(ok)
      assert.matches("no region", tostring(err), 1, true)
    end)

    it("runs from the environment alone: ddb.client() and DDB_TABLE (a fresh process)", function()
      local g = seed_group(ALICE, BOB, at(0), "start")
      local event = { Records = { post(g, at(6), BOB, "from lambda") } }
      local event_file, script_file = os.tmpname(), os.tmpname()
      local f = assert(io.open(event_file, "wb"))
      f:write(core.json_encode(event))
      f:close()
      f = assert(io.open(script_file, "wb"))
      f:write([[
        local core, stream = require("ddb.core"), require("ddb.stream")
        local f = assert(io.open(arg[1], "rb"))
        local event = core.json_decode(f:read("a"))
        f:close()
        io.write(core.json_encode(stream.handler(event, {})))
      ]])
      f:close()
      local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
      local cmd = ("env -u AWS_PROFILE -u AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL=%s AWS_REGION=us-east-1 "
        .. "DDB_TABLE=%s lua5.4 %s %s 2>&1"):format(q(moto.endpoint()), q(name), q(script_file), q(event_file))
      local p = assert(io.popen(cmd))
      local out = p:read("a")
      local ok = p:close()
      os.remove(event_file)
      os.remove(script_file)
      assert.is_true(ok, out)
      assert.equal('{"batchItemFailures":[]}', out)
      assert_group_at(g, { ALICE, BOB }, at(6), "from lambda")
    end)
  end)
end)

-- ddb.stream / ddb.core.rewrite where what it reads is not what is there, against
-- moto: the GSI message-group-sk-index is eventually consistent (a row just
-- moved may still show at its old sk, a row just created or moved may not
-- show at all), and a server may answer a Query with a LastEvaluatedKey that
-- never ends. moto's GSI is always up to date, so a wrapper client edits its
-- GSI answers; every write and every condition is moto's own.
local core = require("ddb.core")
local errors = require("ddb.errors")
local ids = require("ddb.ids")
local marshal = require("ddb.marshal")
local model = require("ddb.model")
local schema = require("ddb.schema")
local stream = require("ddb.stream")
local moto = require("support.moto")
local stream_rows = require("support.stream_rows")

local ALICE, BOB, CARO = stream_rows.ALICE, stream_rows.BOB, stream_rows.CARO
local at, copy = stream_rows.at, stream_rows.copy

local MAX_PAGES = 10000 -- DDB_REWRITE_MAX_PAGES (src/rewrite.h)

local function is_gsi(op, params) return op == "Query" and params.IndexName ~= nil end
local function is_consistent(op, params) return op == "Query" and params.ConsistentRead == true end

-- A client over `client` that logs every call and lets `hooks.gsi(items,
-- params)` rewrite the items of a GSI Query answer, and `hooks.query(params,
-- n)` (n: Query calls so far) answer a Query itself. It refuses to go on past
-- `limit` Queries (a spec that would loop forever fails instead).
local function wrapped(client, hooks, limit)
  local w = { calls = {} }
  local queries = 0
  function w.call(_, op, params)
    w.calls[#w.calls + 1] = { op = op, params = copy(params) }
    if op == "Query" then
      queries = queries + 1
      if queries > (limit or 100) then error(("still querying after %d Query calls"):format(queries - 1)) end
      if hooks.query then
        local res = hooks.query(params, queries)
        if res then return res end
      end
    end
    local res, err = client:call(op, params)
    if res and hooks.gsi and is_gsi(op, params) then
      res.Items = hooks.gsi(res.Items, params)
      res.Count = #res.Items
    end
    return res, err
  end
  function w.count(_, pred)
    local n = 0
    for _, c in ipairs(w.calls) do
      if pred(c.op, c.params) then n = n + 1 end
    end
    return n
  end
  function w.ops(_)
    local out = {}
    for i, c in ipairs(w.calls) do
      out[i] = c.op .. (is_gsi(c.op, c.params) and " GSI" or "")
        .. (is_consistent(c.op, c.params) and " " .. c.params.ExpressionAttributeValues[":o"].S or "")
    end
    return out
  end
  return w
end

describe("ddb.stream when reads lag behind writes", function()
  local client, name

  local on_table = stream_rows.on(function() return client, name end)
  local put, seed_group, post = on_table.put, on_table.seed_group, on_table.post

  -- owner's group rows, as "<group> <sk> <message>" in key order.
  local function rows_of(owner)
    local out = {}
    for _, r in ipairs(moto.snapshot(client, name)) do
      if r.pk == model.group_pk(owner.uuid) then
        out[#out + 1] = ("%s %s %s"):format(r.message_group_uuid, r.sk, r.message)
      end
    end
    return out
  end

  local function process(c, records)
    return stream.process(c, records, { table = name })
  end

  local assert_counts = stream_rows.assert_counts

  setup(function()
    client = moto.client()
  end)

  teardown(function()
    client:close()
  end)

  before_each(function()
    name = moto.table_name("races")
    assert(schema.load(client, { table = name }))
  end)

  after_each(function()
    schema.drop(client, { table = name })
  end)

  describe("a stale GSI row", function()
    it("never deletes the owner's row of another group at the sk it shows: the cancelled move re-reads and "
      .. "moves the real row", function()
      -- g1 (Alice, Bob) moved from at(1) to at(3); then a g2 (Alice, Caro)
      -- message at at(1) put g2's rows there (the same microsecond as g1's
      -- old message). The GSI still shows Alice's g1 row at at(1).
      local g1 = seed_group(ALICE, BOB, at(3), "g1 at 3")
      local g2 = seed_group(ALICE, CARO, at(1), "g2 at 1")
      local stale = marshal.item(model.group_row(ALICE, BOB, g1, at(1), "g1 at 1"))
      local w = wrapped(client, { gsi = function(items, params)
        if params.ExpressionAttributeValues[":g"].S ~= g1 then return items end
        for i, it in ipairs(items) do
          if it.pk.S == model.group_pk(ALICE.uuid) then items[i] = copy(stale) end
        end
        return items
      end })
      local s = process(w, { post(g1, at(5), BOB, "g1 at 5") })
      assert_counts({ processed = 1, moved = 2, applied = 1, skipped = 0, failed = 0 }, s)
      assert.same({}, s.errors)
      assert.same({ g2 .. " " .. at(1) .. " g2 at 1", g1 .. " " .. at(5) .. " g1 at 5" }, rows_of(ALICE))
      assert.same({ g1 .. " " .. at(5) .. " g1 at 5" }, rows_of(BOB))
      assert.same({ g2 .. " " .. at(1) .. " g2 at 1" }, rows_of(CARO))
      -- the first transaction was cancelled by the Delete's condition (a row
      -- of g1 only), the rows re-read consistently, the second one moved them
      local ops = w:ops()
      table.sort(ops, function(a, b) return a < b end) -- the re-reads' order is not specified
      assert.same({ "Query " .. model.group_pk(BOB.uuid), "Query " .. model.group_pk(ALICE.uuid), "Query GSI",
        "TransactWriteItems", "TransactWriteItems" }, ops)
      assert.same({ "Query GSI", "TransactWriteItems" }, { table.unpack(w:ops(), 1, 2) })
      local delete
      for _, a in ipairs(w.calls[2].params.TransactItems) do
        if a.Delete and a.Delete.Key.pk.S == model.group_pk(ALICE.uuid) then delete = a.Delete end
      end
      assert.equal(at(1), delete.Key.sk.S)
      assert.equal("message_group_uuid = :g", delete.ConditionExpression)
      assert.same({ [":g"] = { S = g1 } }, delete.ExpressionAttributeValues)
    end)
  end)

  describe("a row missing from the GSI", function()
    -- A GSI hook hiding the rows of the given owners.
    local function hiding(...)
      local hidden = {}
      for _, u in ipairs({ ... }) do hidden[model.group_pk(u.uuid)] = true end
      return function(items)
        local out = {}
        for _, it in ipairs(items) do
          if not hidden[it.pk.S] then out[#out + 1] = it end
        end
        return out
      end
    end

    it("is read consistently and moved with the other (a row just moved or created)", function()
      local g = seed_group(ALICE, BOB, at(0), "first")
      local w = wrapped(client, { gsi = hiding(ALICE) })
      local s = process(w, { post(g, at(2), BOB, "reply") })
      assert_counts({ processed = 1, moved = 2, applied = 1, skipped = 0, failed = 0 }, s)
      assert.same({ g .. " " .. at(2) .. " reply" }, rows_of(ALICE))
      assert.same({ g .. " " .. at(2) .. " reply" }, rows_of(BOB))
      assert.same({ "Query GSI", "Query " .. model.group_pk(ALICE.uuid), "TransactWriteItems" }, w:ops())
      local q = w.calls[2].params
      assert.same({ TableName = name, ConsistentRead = true, KeyConditionExpression = "pk = :o",
        FilterExpression = "message_group_uuid = :g",
        ExpressionAttributeValues = { [":o"] = { S = model.group_pk(ALICE.uuid) }, [":g"] = { S = g } } }, q)
    end)

    it("both rows, when the GSI shows neither yet: the sender's is read, then the one it names", function()
      local g = seed_group(ALICE, BOB, at(0), "first")
      local w = wrapped(client, { gsi = hiding(ALICE, BOB) })
      local s = process(w, { post(g, at(1), ALICE, "quick reply") })
      assert_counts({ processed = 1, moved = 2, applied = 1, skipped = 0, failed = 0 }, s)
      assert.same({ g .. " " .. at(1) .. " quick reply" }, rows_of(ALICE))
      assert.same({ g .. " " .. at(1) .. " quick reply" }, rows_of(BOB))
      assert.same({ "Query GSI", "Query " .. model.group_pk(ALICE.uuid), "Query " .. model.group_pk(BOB.uuid),
        "TransactWriteItems" }, w:ops())
    end)

    it("fails the group, writing nothing, when a participant has no row even in a consistent read; a "
      .. "redelivery once it has one moves both", function()
      local g = ids.uuid()
      put(model.group_row(ALICE, BOB, g, at(0), "first")) -- Bob's row is not there (yet)
      local g2 = seed_group(CARO, BOB, at(0, 1), "other")
      local rec, other = post(g, at(2), ALICE, "hello?"), post(g2, at(3), CARO, "other group")
      local w = wrapped(client, {})
      local s = process(w, { rec, other })
      assert_counts({ processed = 2, moved = 2, applied = 1, skipped = 0, failed = 1 }, s)
      assert.same({ { itemIdentifier = rec.dynamodb.SequenceNumber } }, s.batchItemFailures)
      local e = s.errors[1]
      assert.is_true(errors.is(e))
      assert.equal("GroupRowMissing", e.code)
      assert.equal(g, e.group)
      assert.matches(model.group_pk(BOB.uuid), e.message, 1, true)
      assert.same({ g .. " " .. at(0) .. " first" }, rows_of(ALICE)) -- not moved without Bob's
      assert.equal(1, w:count(function(op) return op == "TransactWriteItems" end)) -- the other group's
      assert.same({ "Query GSI", "Query " .. model.group_pk(BOB.uuid), "Query GSI", "TransactWriteItems" }, w:ops())

      put(model.group_row(BOB, ALICE, g, at(0), "first"))
      s = process(client, { rec })
      assert_counts({ processed = 1, moved = 2, applied = 1, skipped = 0, failed = 0 }, s)
      assert.same({ g .. " " .. at(2) .. " hello?", g2 .. " " .. at(3) .. " other group" }, rows_of(BOB))
    end)

    it("costs nothing more when the GSI shows every participant's row: one Query and one transaction a group",
      function()
      local records = {}
      for i = 1, 3 do
        local g = seed_group(ALICE, i == 2 and CARO or BOB, at(i * 10, i), "start")
        records[#records + 1] = post(g, at(i * 10 + 1), ALICE, "message " .. i)
      end
      local w = wrapped(client, {})
      local s = process(w, records)
      assert_counts({ processed = 3, moved = 6, applied = 3, skipped = 0, failed = 0 }, s)
      assert.same({ "Query GSI", "TransactWriteItems", "Query GSI", "TransactWriteItems", "Query GSI",
        "TransactWriteItems" }, w:ops())
    end)
  end)

  describe("a Query whose LastEvaluatedKey never ends", function()
    local function key(g, i)
      return { pk = { S = "GRP#" .. ALICE.uuid }, sk = { S = at(i) }, message_group_uuid = { S = g } }
    end

    it("fails only its group with InvalidResponse when a page's key is the one its request started from",
      function()
      local g = seed_group(ALICE, BOB, at(0), "start")
      local h = seed_group(CARO, BOB, at(0, 1), "start")
      local w = wrapped(client, { query = function(params)
        if params.ExpressionAttributeValues[":g"].S == g then
          return { Items = core.array(), Count = 0, LastEvaluatedKey = key(g, 7) } -- a new table each time
        end
      end })
      local rec = post(g, at(5), BOB, "m5")
      local s = process(w, { rec, post(h, at(6), CARO, "m6") })
      assert_counts({ processed = 2, moved = 2, applied = 1, skipped = 0, failed = 1 }, s)
      assert.same({ { itemIdentifier = rec.dynamodb.SequenceNumber } }, s.batchItemFailures)
      local e = s.errors[1]
      assert.equal("InvalidResponse", e.code)
      assert.equal("Query", e.operation)
      assert.equal(g, e.group)
      assert.matches("ExclusiveStartKey", e.message, 1, true)
      -- the first page, then the page asked from its key, which names it again
      assert.same({ "Query GSI", "Query GSI", "Query GSI", "TransactWriteItems" }, w:ops())
      assert.is_nil(w.calls[1].params.ExclusiveStartKey)
      assert.same(key(g, 7), w.calls[2].params.ExclusiveStartKey)
      assert.same({ g .. " " .. at(0) .. " start" }, rows_of(ALICE))
    end)

    it("in a consistent read too (a row missing from the GSI)", function()
      local g = seed_group(ALICE, BOB, at(0), "start")
      local w = wrapped(client, { query = function(params)
        if params.ConsistentRead then
          return { Items = core.array(), Count = 0, LastEvaluatedKey = key(g, 8) }
        end
      end, gsi = function(items)
        local out = {}
        for _, it in ipairs(items) do
          if it.pk.S ~= model.group_pk(ALICE.uuid) then out[#out + 1] = it end
        end
        return out
      end })
      local s = process(w, { post(g, at(5), BOB, "m5") })
      assert_counts({ processed = 1, moved = 0, applied = 0, skipped = 0, failed = 1 }, s)
      assert.equal("InvalidResponse", s.errors[1].code)
      assert.same({ "Query GSI", "Query " .. model.group_pk(ALICE.uuid), "Query " .. model.group_pk(ALICE.uuid) },
        w:ops())
    end)

    it("gives up after " .. MAX_PAGES .. " pages when the keys go round in a cycle", function()
      local g = seed_group(ALICE, BOB, at(0), "start")
      local w = wrapped(client, { query = function(_, n)
        return { Items = core.array(), Count = 0, LastEvaluatedKey = key(g, n % 2) }
      end }, MAX_PAGES + 10)
      local s = process(w, { post(g, at(5), BOB, "m5") })
      assert_counts({ processed = 1, moved = 0, applied = 0, skipped = 0, failed = 1 }, s)
      assert.equal("InvalidResponse", s.errors[1].code)
      assert.matches(tostring(MAX_PAGES), s.errors[1].message, 1, true)
      assert.equal(MAX_PAGES, #w.calls)
    end)
  end)
end)

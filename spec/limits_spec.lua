-- The 400 KB item size limit (issue 6, part 7): items over 409,600 bytes, as
-- DynamoDB counts them, are refused before anything is sent (the fault
-- server's log stays empty); items at the limit go through.
local ddb = require("ddb")
local limits = require("ddb.limits")
local core = require("ddb.core")
local fault_server = require("spec.support.fault_server")
local moto = require("support.moto")
local messages = require("ddb.messages")
local schema = require("ddb.schema")

local LIMIT = 409600

-- An item of exactly `size` bytes: pk "p" (3 bytes) and a "data" string.
local function item_of(size)
  return { pk = { S = "p" }, data = { S = string.rep("x", size - 3 - 4) } }
end

describe("ddb.limits.item_size", function()
  local size = limits.item_size

  it("is 409,600 bytes at most", function()
    assert.equal(LIMIT, limits.MAX_ITEM_BYTES)
  end)

  it("counts names and string values in UTF-8 bytes, not characters", function()
    assert.equal(0, size({}))
    assert.equal(2 + 3, size({ pk = { S = "abc" } }))
    assert.equal(2 + 2, size({ pk = { S = "é" } }))
    assert.equal(6 + 4, size({ ["名前"] = { S = "😀" } }))
  end)

  it("counts numbers as ceil(significant digits / 2) + 1", function()
    local cases = {
      ["0"] = 1, ["1"] = 2, ["12"] = 2, ["123"] = 3, ["1234"] = 3, ["-1.50"] = 2, ["1000"] = 2,
      ["0.001"] = 2, ["00012"] = 2, ["1.23E+5"] = 3, ["-9.9e-130"] = 2, ["100.001"] = 4,
      [string.rep("9", 38)] = 20, ["12345678901234567890"] = 11,
    }
    for n, want in pairs(cases) do
      assert.equal(1 + want, size({ n = { N = n } }), n)
    end
  end)

  it("counts binary values in raw bytes, booleans and nulls as 1", function()
    assert.equal(1 + 3, size({ b = { B = "AAAA" } }))
    assert.equal(1 + 2, size({ b = { B = "AAA=" } }))
    assert.equal(1 + 1, size({ b = { B = "AA==" } }))
    assert.equal(1 + 0, size({ b = { B = "" } }))
    assert.equal(1 + 1, size({ b = { BOOL = false } }))
    assert.equal(1 + 1, size({ b = { NULL = true } }))
  end)

  it("counts maps and lists as 3 bytes plus their elements, 1 byte each (and names), sets as their members", function()
    assert.equal(1 + 3, size({ m = { M = {} } }))
    assert.equal(1 + 3, size({ l = { L = {} } }))
    assert.equal(1 + 3 + (1 + 1 + 1) + (1 + 2 + 2), size({ m = { M = { a = { S = "x" }, bb = { N = "12" } } } }))
    assert.equal(1 + 3 + (1 + 2) + (1 + 1) + (1 + 3),
      size({ l = { L = { { S = "ab" }, { BOOL = true }, { L = {} } } } }))
    assert.equal(2 + 3, size({ ss = { SS = { "ab", "c" } } }))
    assert.equal(2 + 2 + 2, size({ ns = { NS = { "1", "-2.50" } } }))
    assert.equal(2 + 3 + 1, size({ bs = { BS = { "AAAA", "AA==" } } }))
    local nested = {
      pk = { S = "p" },                                                          -- 2 + 1
      m = { M = {                                                                -- 1 + 3 + ...
        a = { L = { { N = "12345" }, { BOOL = true }, { NULL = true }, { B = "AAAA" } } }, -- 1+1 + 3+4+1+1+3 + 4
        s = { SS = { "ab", "c" } },                                              -- 1+1 + 3
        n = { NS = { "1", "-2.50" } },                                           -- 1+1 + 4
        b = { BS = { "AAA=" } },                                                 -- 1+1 + 2
      } },
    }
    assert.equal(3 + 29 + 4 + 4, size(nested)) -- + 1 byte per member of m and per element of a
  end)

  it("counts values of the wrong shape as nothing, gives nil for a non-table, and stops on a cycle", function()
    assert.equal(1 + 0 + 1 + 3, size({ a = { S = 42 }, b = { S = "xyz" } }))
    assert.equal(1 + 0, size({ a = 42 }))
    assert.equal(1 + 0, size({ a = {} }))
    assert.equal(1 + 3, size({ a = { M = "x" } }))
    assert.equal(1 + 1, size({ a = { SS = { "x", 7, {} } } }))
    assert.equal(2, size({ [1] = { S = "x" }, b = { BOOL = true } }))
    assert.equal(1 + 0, size({ a = { X = "y" } }))
    assert.is_nil(size("not a table"))
    assert.is_nil(size(nil))
    local cyc = {}
    cyc.M = { a = cyc, b = cyc }
    local t0 = core.monotonic_ms()
    assert.is_true(size({ c = cyc }) > LIMIT)
    assert.is_true(core.monotonic_ms() - t0 < 5000)
  end)
end)

describe("the item size check", function()
  local server

  setup(function() server = fault_server.start() end)
  teardown(function() server:stop() end)
  before_each(function()
    server:reset()
    server:default({ status = 200, body = "{}" })
  end)

  local function client()
    return assert(ddb.client({ endpoint = server.url, max_attempts = 1 }))
  end

  local function refused(op, res, err)
    assert.is_nil(res)
    assert.equal("ItemTooLarge", err.code)
    assert.equal(op, err.operation)
    assert.is_false(err.retryable)
    assert.equal(0, err.attempts)
    assert.equal(LIMIT, err.limit)
    assert.matches("^" .. op .. " item", err.message)
    assert.matches("409600 bytes", err.message, 1, true)
    assert.equal(0, #server:log(), "nothing was sent")
    return err
  end

  it("sends a PutItem item of exactly 409,600 bytes, refuses one of 409,601 before sending", function()
    local c = client()
    assert.equal(LIMIT, limits.item_size(item_of(LIMIT)))
    assert(c:call("PutItem", { TableName = "t", Item = item_of(LIMIT) }))
    assert.equal(1, #server:log())
    server:reset()
    local err = refused("PutItem", c:call("PutItem", { TableName = "t", Item = item_of(LIMIT + 1) }))
    assert.equal(LIMIT + 1, err.size)
    assert.matches("is 409601 bytes", err.message, 1, true)
    assert.equal("PutItem failed: ItemTooLarge: " .. err.message, tostring(err))
    -- a 1.5 MB item is counted in full for the message; past 1.6 MB, counting stops
    err = refused("PutItem", c:call("PutItem", { TableName = "t", Item = item_of(1500000) }))
    assert.equal(1500000, err.size)
    err = refused("PutItem", c:call("PutItem", { TableName = "t", Item = item_of(10 * 1024 * 1024) }))
    assert.is_true(err.size > 4 * LIMIT and err.size <= 10 * 1024 * 1024)
    assert.matches("PutItem item is at least " .. err.size .. " bytes", err.message, 1, true)
  end)

  it("counts multi-byte names and values in bytes", function()
    local c = client()
    -- 3 + 6 + 2 * 204795 + 1 = 409600 bytes, but only 204,799 characters
    local item = { pk = { S = "p" }, ["名前"] = { S = string.rep("é", 204795) .. "x" } }
    assert.equal(LIMIT, limits.item_size(item))
    assert(c:call("PutItem", { TableName = "t", Item = item }))
    assert.equal(1, #server:log())
    server:reset()
    item["名前"].S = item["名前"].S .. "x"
    local err = refused("PutItem", c:call("PutItem", { TableName = "t", Item = item }))
    assert.equal(LIMIT + 1, err.size)
    item["名前"] = nil
    item["名"] = { S = string.rep("é", 204795) .. "xxxx" } -- one 3-byte character less in the name
    assert.equal(LIMIT, limits.item_size(item))
    assert(c:call("PutItem", { TableName = "t", Item = item }))
  end)

  it("counts nested maps, lists and sets", function()
    local c = client()
    local item = {
      pk = { S = "p" },
      m = { M = {
        a = { L = { { N = "12345" }, { BOOL = true }, { NULL = true }, { B = "AAAA" } } },
        s = { SS = { "ab", "c" } },
        n = { NS = { "1", "-2.50" } },
        b = { BS = { "AAA=" } },
        deep = { M = { x = { L = { { M = {
          -- 12: 1 byte per element of a list or member of a nested map (5 + 4 + 1 + 1 + 1)
          y = { S = string.rep("z", LIMIT - 32 - 4 - 3 - 1 - 3 - 3 - 1 - 12) },
        } } } } } },
      } },
    }
    assert.equal(LIMIT, limits.item_size(item))
    assert(c:call("PutItem", { TableName = "t", Item = item }))
    server:reset()
    item.m.M.deep.M.x.L[1].M.y.S = item.m.M.deep.M.x.L[1].M.y.S .. "z"
    refused("PutItem", c:call("PutItem", { TableName = "t", Item = item }))
  end)

  it("sends a write whose body is over the limit when no item is", function()
    local c = client()
    local items = {}
    for i = 1, 3 do items[i] = { PutRequest = { Item = item_of(300000) } } end
    assert(c:call("BatchWriteItem", { RequestItems = { t = items } }))
    assert(c:call("TransactWriteItems", { TransactItems = {
      { Put = { TableName = "t", Item = item_of(300000) } }, { Put = { TableName = "t", Item = item_of(300000) } } } }))
    assert.equal(2, #server:log())
    assert.is_true(#server:log()[1].body > 900000)
  end)

  it("checks every PutRequest of a BatchWriteItem", function()
    local c = client()
    local small = item_of(100)
    local function batch(big)
      return { RequestItems = {
        t1 = { { PutRequest = { Item = small } }, { DeleteRequest = { Key = { pk = { S = "p" } } } } },
        t2 = { { PutRequest = { Item = small } }, { PutRequest = { Item = item_of(big) } } },
      } }
    end
    assert(c:call("BatchWriteItem", batch(LIMIT)))
    assert.equal(1, #server:log())
    server:reset()
    local err = refused("BatchWriteItem", c:call("BatchWriteItem", batch(LIMIT + 1)))
    assert.equal("t2", err.table)
    assert.equal(2, err.index)
    assert.matches('BatchWriteItem item (RequestItems["t2"][2].PutRequest.Item) is 409601 bytes', err.message, 1, true)
  end)

  it("checks every Put of a TransactWriteItems, not its Updates", function()
    local c = client()
    local function transact(big)
      return { TransactItems = {
        { ConditionCheck = { TableName = "t", Key = { pk = { S = "a" } },
          ConditionExpression = "attribute_exists(pk)" } },
        { Update = { TableName = "t", Key = { pk = { S = "b" } }, UpdateExpression = "SET d = :d",
          ExpressionAttributeValues = { [":d"] = { S = string.rep("u", LIMIT) } } } },
        { Put = { TableName = "t", Item = item_of(big) } },
      } }
    end
    assert(c:call("TransactWriteItems", transact(LIMIT)))
    assert.equal(1, #server:log())
    server:reset()
    local err = refused("TransactWriteItems", c:call("TransactWriteItems", transact(LIMIT + 1)))
    assert.equal(3, err.index)
    assert.matches("(TransactItems[3].Put.Item) is 409601 bytes", err.message, 1, true)
  end)

  it("leaves UpdateItem and reads to the service", function()
    local c = client()
    assert(c:call("UpdateItem", { TableName = "t", Key = { pk = { S = "p" } }, UpdateExpression = "SET d = :d",
      ExpressionAttributeValues = { [":d"] = { S = string.rep("u", LIMIT + 1) } } }))
    assert(c:call("GetItem", { TableName = "t", Key = { pk = { S = string.rep("k", LIMIT + 1) } } }))
    assert.equal(2, #server:log())
    local ops = {}
    for op in pairs(limits.CHECKED) do ops[#ops + 1] = op end
    table.sort(ops)
    assert.same({ "BatchWriteItem", "PutItem", "TransactWriteItems" }, ops)
    assert.is_nil(limits.check("GetItem", { Item = item_of(LIMIT + 1) }))
    assert.is_nil(limits.check("UpdateItem", { Item = item_of(LIMIT + 1) }))
    assert.equal("ItemTooLarge", limits.check("PutItem", { Item = item_of(LIMIT + 1) }).code)
  end)

  it("leaves malformed writes to the service, and refuses a cyclic item without hanging", function()
    local c = client()
    assert(c:call("PutItem", { TableName = "t", Item = "not a table" }))
    assert(c:call("BatchWriteItem", { RequestItems = { t = "x" } }))
    assert(c:call("TransactWriteItems", { TransactItems = { { Put = "x" } } }))
    assert(c:call("PutItem", { TableName = "t", Item = string.rep("x", LIMIT + 1) }))
    assert(c:call("BatchWriteItem", { RequestItems = { t = { { PutRequest = string.rep("x", LIMIT + 1) } } } }))
    assert.equal(5, #server:log())
    server:reset()
    -- the well-formed part alone is over the limit, whatever the order of the walk
    local res, err = c:call("PutItem", { TableName = "t",
      Item = { a = { S = 42 }, b = { S = string.rep("x", LIMIT) } } })
    assert.is_nil(res)
    assert.equal("ItemTooLarge", err.code)
    assert.equal(1 + 1 + LIMIT, err.size)
    server:reset()
    local cyc = {}
    cyc.M = { a = cyc, b = cyc }
    res, err = c:call("PutItem", { TableName = "t", Item = { c = cyc } })
    assert.is_nil(res)
    assert.equal("SerializationError", err.code) -- the encoder finds the cycle first
    assert.equal(0, #server:log())
  end)
end)

describe("the item size limit against moto", function()
  local client, name

  setup(function()
    client = moto.client()
    name = moto.table_name("limits")
    assert(client:call("CreateTable", { TableName = name, BillingMode = "PAY_PER_REQUEST",
      KeySchema = { { AttributeName = "pk", KeyType = "HASH" } },
      AttributeDefinitions = { { AttributeName = "pk", AttributeType = "S" } } }))
  end)

  teardown(function()
    client:call("DeleteTable", { TableName = name })
    client:close()
  end)

  local function item(pk, size)
    local it = { pk = { S = pk } }
    it.data = { S = string.rep("x", size - 2 - #pk - 4) }
    assert.equal(size, limits.item_size(it))
    return it
  end

  local function stored(pk)
    local got = assert(client:call("GetItem", { TableName = name, Key = { pk = { S = pk } }, ConsistentRead = true }))
    return got.Item and limits.item_size(got.Item)
  end

  it("stores a 400,000-byte item and refuses a 409,601-byte one without sending it", function()
    assert(client:call("PutItem", { TableName = name, Item = item("ok", 400000) }))
    assert.equal(400000, stored("ok"))
    local res, err = client:call("PutItem", { TableName = name, Item = item("big", LIMIT + 1) })
    assert.is_nil(res)
    assert.equal("ItemTooLarge", err.code)
    assert.is_nil(stored("big"))
  end)

  it("sends an item of exactly 409,600 bytes: the service decides (moto's own limit is lower)", function()
    -- moto refuses items over 405,000 bytes by its count, below DynamoDB's
    -- 409,600: it answers ValidationException. What matters here is that the
    -- client sent it.
    local res, err = client:call("PutItem", { TableName = name, Item = item("edge", LIMIT) })
    if res then
      assert.equal(LIMIT, stored("edge"))
    else
      assert.equal("ValidationException", err.code)
      assert.equal(400, err.status)
      assert.matches("size", err.message)
    end
  end)

  it("writes large items through BatchWriteItem and TransactWriteItems", function()
    assert(client:call("BatchWriteItem", { RequestItems = { [name] = {
      { PutRequest = { Item = item("b1", 400000) } }, { PutRequest = { Item = item("b2", 300000) } } } } }))
    assert(client:call("TransactWriteItems", { TransactItems = {
      { Put = { TableName = name, Item = item("t1", 400000) } },
      { Put = { TableName = name, Item = item("t2", 1000) } } } }))
    assert.same({ 400000, 300000, 400000, 1000 }, { stored("b1"), stored("b2"), stored("t1"), stored("t2") })
    local _, err = client:call("BatchWriteItem", { RequestItems = { [name] = {
      { PutRequest = { Item = item("b3", 10) } }, { PutRequest = { Item = item("b4", LIMIT + 1) } } } } })
    assert.equal("ItemTooLarge", err.code)
    _, err = client:call("TransactWriteItems", { TransactItems = {
      { Put = { TableName = name, Item = item("t3", 10) } },
      { Put = { TableName = name, Item = item("t4", LIMIT + 1) } } } })
    assert.equal("ItemTooLarge", err.code)
    assert.same({}, { stored("b3"), stored("b4"), stored("t3"), stored("t4") })
  end)

  it("changes nothing for ddb.messages: a 1024-character message of 4-byte characters is written", function()
    local tname = moto.table_name("limits-msg")
    assert(schema.load(client, { table = tname }))
    local repo = messages.new(client, { table = tname })
    local orla = { uuid = "1af65f48-6c6d-489d-b94d-44a152814656", handle = "orlaquill", display_name = "Orla" }
    local bram = { uuid = "3bfeb448-2c4d-42f0-82c2-f2dd3acc39af", handle = "bramkettle", display_name = "Bram" }
    local text = string.rep("😀", 1024)
    local first = assert(repo:create_message_group(orla, bram, text))
    assert.equal(text, first.message)
    local second = assert(repo:create_message(first.message_group_uuid, bram, text))
    assert.equal(text, second.message)
    local page = assert(repo:list_messages(first.message_group_uuid, orla.uuid))
    assert.equal(2, #page)
    local _, err = repo:create_message(first.message_group_uuid, bram, text .. "x")
    assert.equal("message_exceed_max_chars", err.code)
    schema.drop(client, { table = tname })
  end)
end)

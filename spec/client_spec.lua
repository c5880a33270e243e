-- The client against a real DynamoDB emulator (moto in server mode).
local ddb = require("ddb")
local moto = require("support.moto")

local function create_table(client, name, extra)
  local params = {
    TableName = name,
    KeySchema = { { AttributeName = "pk", KeyType = "HASH" }, { AttributeName = "sk", KeyType = "RANGE" } },
    AttributeDefinitions = {
      { AttributeName = "pk", AttributeType = "S" }, { AttributeName = "sk", AttributeType = "S" },
    },
    BillingMode = "PAY_PER_REQUEST",
  }
  for k, v in pairs(extra or {}) do params[k] = v end
  return assert(client:call("CreateTable", params))
end

describe("client against moto", function()
  local client, name

  setup(function()
    client = moto.client()
    name = moto.table_name("client")
    create_table(client, name)
  end)

  teardown(function()
    client:call("DeleteTable", { TableName = name })
    client:close()
  end)

  it("lists tables, including the new one", function()
    local res = assert(client:call("ListTables", {}))
    local found = false
    for _, t in ipairs(res.TableNames) do found = found or t == name end
    assert.is_true(found)
  end)

  it("describes the table with integer counts", function()
    local res = assert(client:call("DescribeTable", { TableName = name }))
    assert.equal(name, res.Table.TableName)
    assert.equal("integer", math.type(res.Table.ItemCount))
  end)

  it("puts, gets, overwrites and deletes an item", function()
    local key = { pk = { S = "p1" }, sk = { S = "s1" } }
    assert(client:call("PutItem", { TableName = name,
      Item = { pk = key.pk, sk = key.sk, text = { S = "héllo \"world\" ✓" }, n = { N = "12345678901234567890" } } }))
    local got = assert(client:call("GetItem", { TableName = name, Key = key, ConsistentRead = true }))
    assert.equal("héllo \"world\" ✓", got.Item.text.S)
    assert.equal("12345678901234567890", got.Item.n.N)
    local old = assert(client:call("PutItem", { TableName = name, ReturnValues = "ALL_OLD",
      Item = { pk = key.pk, sk = key.sk, text = { S = "second" } } }))
    assert.equal("héllo \"world\" ✓", old.Attributes.text.S)
    assert(client:call("DeleteItem", { TableName = name, Key = key }))
    local gone = assert(client:call("GetItem", { TableName = name, Key = key }))
    assert.is_nil(gone.Item)
  end)

  it("queries in key order, forwards and backwards", function()
    for i = 1, 5 do
      assert(client:call("PutItem", { TableName = name,
        Item = { pk = { S = "q" }, sk = { S = ("k%02d"):format(i) } } }))
    end
    local fwd = assert(client:call("Query", { TableName = name,
      KeyConditionExpression = "pk = :p", ExpressionAttributeValues = { [":p"] = { S = "q" } } }))
    assert.equal(5, fwd.Count)
    assert.equal("integer", math.type(fwd.Count))
    assert.equal("k01", fwd.Items[1].sk.S)
    local back = assert(client:call("Query", { TableName = name, ScanIndexForward = false,
      KeyConditionExpression = "pk = :p", ExpressionAttributeValues = { [":p"] = { S = "q" } } }))
    assert.equal("k05", back.Items[1].sk.S)
  end)

  it("paginates Scan and Query with a small Limit, following LastEvaluatedKey", function()
    for i = 1, 7 do
      assert(client:call("PutItem", { TableName = name,
        Item = { pk = { S = "page" }, sk = { S = ("p%02d"):format(i) } } }))
    end
    local params = { TableName = name, Limit = 3,
      KeyConditionExpression = "pk = :p", ExpressionAttributeValues = { [":p"] = { S = "page" } } }
    local seen, pages = {}, 0
    for page, err in client:pages("Query", params) do
      assert.is_truthy(page, tostring(err))
      pages = pages + 1
      assert.is_true(#page.Items <= 3)
      for _, it in ipairs(page.Items) do seen[#seen + 1] = it.sk.S end
    end
    assert.is_true(pages >= 3)
    assert.same({ "p01", "p02", "p03", "p04", "p05", "p06", "p07" }, seen)
    assert.is_nil(params.ExclusiveStartKey) -- the caller's params are not modified

    local scanned = 0
    for page in client:pages("Scan", { TableName = name, Limit = 2 }) do
      assert.is_true(page.Count <= 2)
      scanned = scanned + page.Count
    end
    local all = assert(client:call("Scan", { TableName = name, Select = "COUNT" }))
    assert.equal(all.Count, scanned)
  end)

  it("paginates ListTables following LastEvaluatedTableName", function()
    local extra = { moto.table_name("lt-a"), moto.table_name("lt-b") }
    for _, t in ipairs(extra) do create_table(client, t) end
    local names = {}
    for page, err in client:pages("ListTables", { Limit = 1 }) do
      assert.is_truthy(page, tostring(err))
      assert.is_true(#page.TableNames <= 1)
      for _, t in ipairs(page.TableNames) do names[t] = true end
    end
    for _, t in ipairs(extra) do
      assert.is_true(names[t], t)
      assert(client:call("DeleteTable", { TableName = t }))
    end
    assert.is_true(names[name])
  end)

  it("decodes a service error: ResourceNotFoundException, not retried", function()
    local res, err = client:call("GetItem", { TableName = "no-such-table-" .. name,
      Key = { pk = { S = "x" }, sk = { S = "y" } } })
    assert.is_nil(res)
    assert.equal("ResourceNotFoundException", err.code)
    assert.equal(400, err.status)
    assert.is_false(err.retryable)
    assert.equal(1, err.attempts)
    assert.equal("GetItem", err.operation)
    assert.is_string(err.message)
    assert.matches("GetItem failed: ResourceNotFoundException: ", tostring(err), 1, true)
  end)

  it("returns ConditionalCheckFailedException without retrying", function()
    local item = { pk = { S = "cond" }, sk = { S = "1" } }
    assert(client:call("PutItem", { TableName = name, Item = item }))
    local res, err = client:call("PutItem", { TableName = name, Item = item,
      ConditionExpression = "attribute_not_exists(pk)" })
    assert.is_nil(res)
    assert.equal("ConditionalCheckFailedException", err.code)
    assert.equal(1, err.attempts)
    assert.is_false(err.retryable)
  end)

  it("returns a validation error for a malformed request", function()
    local res, err = client:call("PutItem", { TableName = name, Item = { pk = { S = "only-pk" } } })
    assert.is_nil(res)
    assert.equal("ValidationException", err.code)
    assert.is_false(err.retryable)
  end)

  it("runs a transaction and reports cancellation reasons", function()
    local a = { pk = { S = "tx" }, sk = { S = "a" } }
    assert(client:call("TransactWriteItems", { TransactItems = {
      { Put = { TableName = name, Item = a } },
      { Put = { TableName = name, Item = { pk = { S = "tx" }, sk = { S = "b" } } } },
    } }))
    local res, err = client:call("TransactWriteItems", { TransactItems = {
      { Put = { TableName = name, Item = a, ConditionExpression = "attribute_not_exists(pk)" } },
    } })
    assert.is_nil(res)
    assert.equal("TransactionCanceledException", err.code)
    assert.is_table(err.cancellation_reasons)
    assert.equal("ConditionalCheckFailed", err.cancellation_reasons[1].Code)
  end)

  it("refuses parameters that cannot be encoded, before sending", function()
    local res, err = client:call("PutItem", { TableName = name,
      Item = { pk = { S = "bad\xff" }, sk = { S = "x" } } })
    assert.is_nil(res)
    assert.equal("SerializationError", err.code)
    assert.is_false(err.retryable)
  end)

  it("calls DynamoDB Streams operations on a table with a stream", function()
    local sname = moto.table_name("streams")
    create_table(client, sname, { StreamSpecification = { StreamEnabled = true, StreamViewType = "NEW_IMAGE" } })
    local desc = assert(client:call("DescribeTable", { TableName = sname }))
    local arn = desc.Table.LatestStreamArn
    assert.is_string(arn)
    local listed = assert(client:call("ListStreams", { TableName = sname }))
    assert.equal(arn, listed.Streams[1].StreamArn)
    local shards = {}
    for page, err in client:pages("DescribeStream", { StreamArn = arn }) do
      assert.is_truthy(page, tostring(err))
      for _, s in ipairs(page.StreamDescription.Shards) do shards[#shards + 1] = s end
    end
    assert.is_true(#shards >= 1)
    assert(client:call("PutItem", { TableName = sname, Item = { pk = { S = "MSG#1" }, sk = { S = "t" } } }))
    local it = assert(client:call("GetShardIterator", { StreamArn = arn, ShardId = shards[1].ShardId,
      ShardIteratorType = "TRIM_HORIZON" }))
    local recs = assert(client:call("GetRecords", { ShardIterator = it.ShardIterator }))
    assert.equal("INSERT", recs.Records[1].eventName)
    assert.equal("MSG#1", recs.Records[1].dynamodb.Keys.pk.S)
    assert(client:call("DeleteTable", { TableName = sname }))
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() client:call(42) end)
    assert.has_error(function() client:call("PutItem", "nope") end)
    assert.has_error(function() client:pages("GetItem", {}) end)
    assert.has_error(function() client.call(nil, "ListTables", {}) end,
      "client:call: call it as client:call(op, params), on a client from ddb.client")
    assert.has_error(function() client.pages({}, "Scan", {}) end)
    assert.has_error(function() client:call(("A"):rep(65), {}) end)
    assert.has_error(function() ddb.client("http://x") end)
  end)

  it("refuses header injection at the core: CR/LF/NUL in header values, odd characters in the target", function()
    local core = require("ddb.core")
    local base = { url = "http://127.0.0.1:1/", host = "127.0.0.1:1", region = "us-east-1",
      access_key_id = "AKID", secret_access_key = "secret" }
    for _, field in ipairs({ "host", "streams_host", "user_agent", "session_token", "access_key_id", "region" }) do
      for _, bad in ipairs({ "a\r\nX-Injected: yes", "a\nb", "a\0b" }) do
        local opts = {}
        for k, v in pairs(base) do opts[k] = v end
        opts[field] = bad
        assert.has_error(function() core.client(opts) end,
          "client option '" .. field .. "' must not contain CR, LF or NUL")
      end
    end
    local h = core.client(base)
    for _, bad in ipairs({ "DynamoDB_20120810.ListTables\r\nX-Injected: yes", "", "A B", "A\0" }) do
      assert.has_error(function() h:request(bad, {}) end)
    end
    h:close()
  end)

  it("can be closed, after which calls raise", function()
    local c = moto.client()
    assert(c:call("ListTables", {}))
    c:close()
    assert.has_error(function() c:call("ListTables", {}) end)
  end)
end)

describe("client and the Lua collector", function()
  local fault_server = require("spec.support.fault_server")
  local finalizers = require("spec.support.finalizers")
  local R = require("spec.support.run")
  local server, client
  -- a Query response over 4 KB: the client runs a collector step before decoding it
  local items = {}
  for i = 1, 40 do
    items[i] = { pk = { S = "MSG#" .. i }, sk = { S = ("2026-11-27T00:00:%02d.000000+00:00"):format(i % 60) },
      message = { S = string.rep("words ", 20) } }
  end
  local big = require("cjson").encode({ Count = 40, Items = items })

  setup(function()
    server = fault_server.start()
    server:default({ status = 200, body = big })
    client = assert(ddb.client({ endpoint = server.url, region = "us-east-1",
      access_key_id = "AKIDGC", secret_access_key = "secret", max_attempts = 1 }))
  end)

  teardown(function()
    client:close()
    server:stop()
  end)

  it("decodes large responses whole, and leaves a stopped collector stopped", function()
    assert.is_true(#big > 4096)
    collectgarbage("stop")
    local ok, err = pcall(function()
      local last = collectgarbage("count")
      for _ = 1, 200 do
        for _ = 1, 100 do local _ = {} end -- garbage a collector step would free
        local res = assert(client:call("Query", { TableName = "t" }))
        assert.equal(40, #res.Items)
        assert.equal(string.rep("words ", 20), res.Items[40].message.S)
        local now = collectgarbage("count")
        assert(now >= last, "memory went down while the collector was stopped")
        last = now
      end
      assert.is_false(collectgarbage("isrunning"))
    end)
    collectgarbage("restart")
    assert(ok, err)
  end)

  it("leaves the program's collector in the mode it found it (the client asks which one it is)", function()
    -- a fresh interpreter each: the answer is remembered per Lua state
    for _, mode in ipairs({ "incremental", "generational" }) do
      local code = ("collectgarbage(%q); local c = require('ddb').client{ endpoint = %q, region = 'us-east-1',"
        .. " access_key_id = 'a', secret_access_key = 'b' }; c:close(); io.write(collectgarbage(%q))")
        :format(mode, server.url, mode)
      local p = assert(io.popen("lua5.4 -e " .. R.quote(code) .. " 2>&1"))
      local out = p:read("a")
      p:close()
      assert.equal(mode, out) -- collectgarbage(mode) returns the mode it switched from
    end
  end)

  it("refuses to be closed or used by a finalizer that runs in the middle of one of its requests", function()
    local c = assert(ddb.client({ endpoint = server.url, region = "us-east-1",
      access_key_id = "AKIDGC", secret_access_key = "secret", max_attempts = 1 }))
    -- the core client's request() itself, so that the allocations between
    -- two requests (where the collector would run the finalizers instead)
    -- are only its own
    local h, target, params = c._h, "DynamoDB_20120810.Query", { TableName = "t" }
    local text = string.rep("words ", 20)
    local inside, wrong = finalizers.run_inside("request", 300, function()
      local status, res = h:request(target, params, false)
      assert(status == 200 and #res.Items == 40 and res.Items[40].message.S == text)
    end, function()
      local closed, cerr = pcall(c.close, c)
      if closed or not tostring(cerr):find("closed while one of its requests is running", 1, true) then
        return "close: " .. tostring(cerr)
      end
      local used, uerr = pcall(c.call, c, "ListTables", {})
      if used or not tostring(uerr):find("used while one of its requests is running", 1, true) then
        return "call: " .. tostring(uerr)
      end
    end)
    assert.is_true(inside > 0, "no finalizer ran inside a request")
    assert.same({}, wrong)
    c:close()
  end)
end)

describe("client and a server's odd answers", function()
  local fault_server = require("spec.support.fault_server")
  local server

  setup(function() server = fault_server.start() end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)

  local function client(extra)
    local opts = { endpoint = server.url, region = "us-east-1", access_key_id = "AKIDODD",
      secret_access_key = "odd-answers-secret", retry_base_ms = 1, retry_max_backoff_ms = 2 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(ddb.client(opts))
  end

  it("reads an error code as botocore does: the part of __type after '#', without a ':<uri>' suffix", function()
    local throttled = '{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException:'
      .. 'http://internal.amazon.com/coral/com.amazon.coral.availability/","message":"slow down"}'
    server:script({ { status = 400, body = throttled }, { status = 200, body = '{"Item":{"k":{"S":"v"}}}' } })
    local c = client({ max_attempts = 3 })
    local res, err = c:call("GetItem", { TableName = "t", Key = { k = { S = "v" } } })
    assert.is_nil(err)
    assert.equal("v", res.Item.k.S)
    assert.equal(2, #server:log()) -- a throttling error: retried

    for type_, code in pairs({
      ["ResourceNotFoundException:http://internal.amazon.com/coral/"] = "ResourceNotFoundException",
      ["com.amazon.coral.validate#ValidationException:x:y"] = "ValidationException",
      ["a#b#ConditionalCheckFailedException"] = "ConditionalCheckFailedException",
      ["ResourceInUseException"] = "ResourceInUseException",
    }) do
      server:script({ { status = 400, body = require("cjson").encode({ __type = type_, message = "m" }) } })
      local r, e = c:call("GetItem", { TableName = "t" })
      assert.is_nil(r)
      assert.equal(code, e.code, type_)
      assert.is_false(e.retryable)
      assert.equal("m", e.message)
    end
    for _, empty in ipairs({ "ns#", ":http://x", "" }) do
      server:script({ { status = 400, body = require("cjson").encode({ __type = empty }) } })
      local _, e = c:call("GetItem", { TableName = "t" })
      assert.equal("InvalidResponse", e.code, empty)
    end
    c:close()
  end)

  it("fails with InvalidResponse on a 2xx whose JSON is not an object", function()
    local c = client({ max_attempts = 3 })
    for body, what in pairs({ ["null"] = "null", ['"hello"'] = "a string", ["[1]"] = "an array", ["[]"] = "an array",
      ["3"] = "a number", ["1.5"] = "a number", ["true"] = "a boolean" }) do
      server:reset()
      server:default({ status = 200, body = body, headers = { ["x-amzn-RequestId"] = "RID-ODD" } })
      local res, err = c:call("GetItem", { TableName = "t" })
      assert.is_nil(res, body)
      assert.equal("InvalidResponse", err.code, body)
      assert.equal("response is " .. what .. ", not a JSON object", err.message)
      assert.equal(200, err.status)
      assert.equal("RID-ODD", err.request_id)
      assert.equal("GetItem", err.operation)
      assert.is_false(err.retryable)
      assert.equal(1, err.attempts)
      assert.equal(1, #server:log())
    end
    -- an object, even empty, and an empty body are responses
    server:default({ status = 200, body = "{}" })
    assert.same({}, assert(c:call("GetItem", { TableName = "t" })))
    server:default({ status = 200, body = "" })
    assert.same({}, assert(c:call("GetItem", { TableName = "t" })))
    c:close()
  end)

  it("ends pages with PaginationError when the server sends the token it was given", function()
    local c = client()
    local key = '{"pk":{"S":"a"},"sk":{"S":"b"}}'
    server:script({
      { status = 200, body = '{"Items":[],"Count":0,"LastEvaluatedKey":' .. key .. "}" },
      { status = 200, body = '{"Items":[],"Count":0,"LastEvaluatedKey":' .. key .. "}" },
      { status = 200, body = '{"Items":[],"Count":0,"LastEvaluatedKey":{"pk":{"S":"a"},"sk":{"S":"c"}}}' },
    })
    local got, n = {}, 0
    for page, err in c:pages("Query", { TableName = "t" }) do
      n = n + 1
      assert(n <= 5, "the loop does not end")
      got[#got + 1] = page and "page" or err.code
      if not page then
        assert.equal("the same LastEvaluatedKey was received twice", err.message)
        assert.equal("Query", err.operation)
        assert.is_false(err.retryable)
      end
    end
    assert.same({ "page", "page", "PaginationError" }, got) -- the repeated page is received, then the error
    assert.equal(2, #server:log())
    assert.same({ pk = { S = "a" }, sk = { S = "b" } }, require("cjson").decode(server:log()[2].body).ExclusiveStartKey)

    -- a string token repeated, and a start token the server sends back at once
    server:reset()
    server:default({ status = 200, body = '{"TableNames":["x"],"LastEvaluatedTableName":"x"}' })
    got = {}
    for page, err in c:pages("ListTables", { ExclusiveStartTableName = "x" }) do
      got[#got + 1] = page and "page" or err.code
      assert(#got <= 5, "the loop does not end")
    end
    assert.same({ "page", "PaginationError" }, got)

    -- tokens that change: followed to the end
    server:reset()
    server:script({
      { status = 200, body = '{"TableNames":["a"],"LastEvaluatedTableName":"a"}' },
      { status = 200, body = '{"TableNames":["b"],"LastEvaluatedTableName":"b"}' },
      { status = 200, body = '{"TableNames":["c"]}' },
    })
    got = {}
    for page, err in c:pages("ListTables", {}) do got[#got + 1] = page and page.TableNames[1] or err.code end
    assert.same({ "a", "b", "c" }, got)
    c:close()
  end)
end)

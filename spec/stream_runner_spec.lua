-- ddb.stream.run and bin/ddb/stream: the local stream runner (pattern D)
-- against moto and its stream. Every test has a fresh table (ddb.schema) and
-- a fresh checkpoint directory (from os.tmpname), both removed afterwards.
-- Conversations are written through ddb.messages, as the application does.
-- moto's streams have a single, never-closing shard; the shard lineage
-- (parents before children, pagination of DescribeStream, closed shards) is
-- exercised with a stub of the Streams operations that serves moto's own
-- records and passes every other call to moto.
local cjson = require("cjson")
local socket = require("socket")
local core = require("ddb.core")
local errors = require("ddb.errors")
local messages = require("ddb.messages")
local schema = require("ddb.schema")
local stream = require("ddb.stream")
local moto = require("support.moto")
local R = require("support.run")
local script = require("support.stream_script")
local fault_server = require("spec.support.fault_server")

local ALICE = { uuid = "6f1c2f44-3f7e-4c1b-9f55-0b6a1d0c2a11", handle = "alice", display_name = "Alice Arden" }
local BOB = { uuid = "0d9e8b7a-6c5d-4e3f-8a1b-2c3d4e5f6a7b", handle = "bob", display_name = "Bob Brook" }
local CARO = { uuid = "a4b3c2d1-e0f9-4a8b-9c7d-6e5f4a3b2c1d", handle = "caro", display_name = "Caro Cole" }

local EXPIRED = cjson.encode({ __type = "com.amazonaws.dynamodb.v20120810#ExpiredIteratorException",
  message = "Iterator expired. The iterator was created at time X while right now it's time Y." })

-- Polls cond() (every 20 ms) until it is true; fails after `seconds`. A
-- guard against hanging, not a timing assertion.
local function wait_for(what, cond, seconds)
  local deadline = socket.gettime() + (seconds or 30)
  while not cond() do
    if socket.gettime() > deadline then error("gave up waiting for " .. what, 2) end
    socket.sleep(0.02)
  end
end

-- Runs bin/ddb/stream (support.stream_script: a clean environment); returns
-- exit code, stdout, stderr.
local function run_script(args)
  local how, code, stdout, stderr = script.run(args)
  assert(how == "exit", "killed by signal " .. tostring(code))
  return code, stdout, stderr
end

local function assert_one_line(s, pattern)
  assert.equal(1, select(2, s:gsub("\n", "")), "expected one line, got: " .. s)
  if pattern then assert.matches(pattern, s, 1, true) end
end

describe("ddb.stream.run", function()
  local client, name, dir, repo

  setup(function()
    client = moto.client()
  end)

  teardown(function()
    client:close()
  end)

  before_each(function()
    name = moto.table_name("runner")
    assert(schema.load(client, { table = name }))
    dir = R.tmpdir()
    repo = messages.new(client, { table = name })
  end)

  after_each(function()
    schema.drop(client, { table = name })
    R.rmrf(dir)
  end)

  local function run(opts)
    opts = opts or {}
    opts.table = name
    opts.checkpoint_dir = opts.checkpoint_dir or dir
    return stream.run(opts.client or client, opts)
  end

  -- A new conversation from a to b; returns its group uuid.
  local function converse(a, b, text)
    return assert(repo:create_message_group(a, b, text)).message_group_uuid
  end

  local function say(g, sender, text)
    return assert(repo:create_message(g, sender, text))
  end

  -- Every item of the table, as plain rows sorted by key.
  local function snapshot() return moto.snapshot(client, name) end

  -- group uuid -> { newest = message row, rows = its group rows }
  local function groups()
    local out = {}
    local function of(g)
      out[g] = out[g] or { rows = {} }
      return out[g]
    end
    for _, r in ipairs(snapshot()) do
      local g = r.pk:match("^MSG#(.+)$")
      if g then
        local e = of(g)
        if not e.newest or r.sk > e.newest.sk then e.newest = r end
      elseif r.message_group_uuid then
        table.insert(of(r.message_group_uuid).rows, r)
      end
    end
    return out
  end

  -- Every group has one row per participant (two), and each shows the
  -- group's newest message: what a runner that has read everything gives.
  local function assert_converged()
    local n = 0
    for g, e in pairs(groups()) do
      n = n + 1
      assert.equal(2, #e.rows, "group rows of " .. g)
      assert.are_not.equal(e.rows[1].pk, e.rows[2].pk)
      for _, r in ipairs(e.rows) do
        assert.equal(e.newest.sk, r.sk, "sk of " .. r.pk .. " in " .. g)
        assert.equal(e.newest.message, r.message, "message of " .. r.pk .. " in " .. g)
      end
    end
    return n
  end

  -- The stream's records as moto has them (all of them, oldest first).
  local function read_stream()
    local desc = assert(client:call("DescribeTable", { TableName = name }))
    local arn = desc.Table.LatestStreamArn
    local records = {}
    for page, err in client:pages("DescribeStream", { StreamArn = arn }) do
      assert(page, tostring(err))
      for _, shard in ipairs(page.StreamDescription.Shards) do
        local it = assert(client:call("GetShardIterator", { StreamArn = arn, ShardId = shard.ShardId,
          ShardIteratorType = "TRIM_HORIZON" })).ShardIterator
        while true do
          local res = assert(client:call("GetRecords", { ShardIterator = it }))
          for _, r in ipairs(res.Records) do records[#records + 1] = r end
          it = res.NextShardIterator
          if #res.Records == 0 or type(it) ~= "string" then break end
        end
      end
    end
    return records, arn
  end

  local function seq(rec) return rec.dynamodb.SequenceNumber end

  -- The index of the first record that is the INSERT of a message of g.
  local function first_message_of(records, g)
    for i, r in ipairs(records) do
      if r.eventName == "INSERT" and r.dynamodb.Keys.pk.S == "MSG#" .. g then return i end
    end
  end

  local function checkpoint_of(summary)
    local text = assert(R.read_file(summary.checkpoint), "no checkpoint file")
    return cjson.decode(text), text
  end

  describe("--once", function()
    it("moves both group rows of each group to its newest message, checkpoints, and then has nothing to do",
      function()
      local g1 = converse(ALICE, BOB, "hi Bob")
      say(g1, BOB, "hi Alice")
      say(g1, ALICE, "how are things?")
      local g2 = converse(CARO, ALICE, "hello Alice")
      say(g2, ALICE, "hello Caro")

      local batches = {}
      local s = assert(run({ on_batch = function(r, shard) batches[#batches + 1] = { r = r, shard = shard } end }))
      assert.equal(2, assert_converged())
      assert.equal(4, s.moved) -- one move of both rows per group: the batch's newest message wins
      assert.same({ 0, 0, 0, 1 }, { s.failed, s.retries, s.renewed, s.shards })
      -- it read the whole stream, its own writes (a REMOVE and an INSERT per row moved) included
      local records, arn = read_stream()
      assert.equal(#records, s.records)
      assert.equal(s.records, s.applied + s.skipped)
      assert.equal(2, s.applied)
      assert.equal(#batches, s.batches)
      assert.equal(arn, s.stream)
      assert.equal(name, s.table)

      -- the checkpoint: this stream, its shard at the last record
      local cp, text = checkpoint_of(s)
      assert.equal(dir .. "/" .. stream.checkpoint_name(arn), s.checkpoint)
      assert.equal("\n", text:sub(-1))
      assert.equal(1, cp.version)
      assert.equal(arn, cp.stream_arn)
      local shard = batches[1].shard
      assert.same({ [shard] = { sequence_number = seq(records[#records]) } }, cp.shards)
      assert.equal(seq(records[#records]), batches[#batches].r.checkpoint)
      assert.same({ stream.checkpoint_name(arn) }, R.ls(dir)) -- no temporary file left behind

      -- a second run finds nothing new, and changes nothing
      local before = snapshot()
      local again = assert(run())
      assert.same({ 0, 0, 0 }, { again.batches, again.records, again.moved })
      assert.same(before, snapshot())
      assert.equal(text, R.read_file(s.checkpoint))

      -- a new message is picked up by the next run
      local m = say(g2, CARO, "see you")
      local third = assert(run())
      assert.equal(2, third.moved)
      assert.equal(1 + 2 * 2, third.records) -- the message, then the rewrite's own writes
      assert.equal(2, assert_converged())
      for _, r in ipairs(groups()[g2].rows) do assert.equal(m.created_at, r.sk) end
    end)

    it("reads batch_size records at a time and checkpoints each batch before the next", function()
      local g = converse(ALICE, BOB, "one")
      for i = 2, 6 do say(g, i % 2 == 0 and BOB or ALICE, "message " .. i) end
      local records, arn = read_stream()
      local path = dir .. "/" .. stream.checkpoint_name(arn)
      local seen = {}
      local s = assert(run({ batch_size = 2, on_batch = function(r)
        local cp = cjson.decode(R.read_file(path)) -- the file as the hook sees it
        seen[#seen + 1] = { r.processed, r.checkpoint, cp.shards[r.shard].sequence_number }
      end }))
      assert.is_true(#records >= 9)
      for i = 1, math.floor(#records / 2) do
        assert.same({ 2, seq(records[2 * i]), seq(records[2 * i]) }, seen[i])
      end
      assert.equal(s.batches, #seen)
      assert.equal(math.ceil(s.records / 2), s.batches)
      assert_converged()
    end)

    it("with start = LATEST and no checkpoint, skips what is already in the stream", function()
      local g = converse(ALICE, BOB, "one")
      say(g, BOB, "two")
      local before = snapshot()
      local s = assert(run({ start = "LATEST" }))
      assert.same({ 0, 0, 1 }, { s.records, s.moved, s.shards })
      assert.same(before, snapshot())
    end)

    it("returns no_stream for a table without a stream", function()
      local plain = moto.table_name("nostream")
      local def = schema.definition({ table = plain })
      def.StreamSpecification = nil
      assert(client:call("CreateTable", def))
      local s, err = stream.run(client, { table = plain, checkpoint_dir = dir })
      client:call("DeleteTable", { TableName = plain })
      assert.is_nil(s)
      assert.is_true(errors.is(err))
      assert.equal("no_stream", err.code)
      assert.matches("table " .. plain .. " has no stream", err.message, 1, true)
      -- and a missing table is the service's own error
      s, err = stream.run(client, { table = plain, checkpoint_dir = dir })
      assert.is_nil(s)
      assert.equal("ResourceNotFoundException", err.code)
    end)

    it("refuses a corrupt checkpoint with bad_checkpoint naming the file, and changes nothing", function()
      local g = converse(ALICE, BOB, "one")
      local s = assert(run())
      local path = s.checkpoint
      local good = R.read_file(path)
      say(g, BOB, "two")
      local before = snapshot()
      local cases = {
        "", "{", "garbage", "[]", "null", "42",
        '{"version":2,"stream_arn":"x","shards":{}}',
        (good:gsub('"stream_arn":"[^"]*"', '"stream_arn":"arn:aws:dynamodb:us-east-1:1:table/other/stream/x"')),
        (good:gsub('"sequence_number":"%d+"', '"sequence_number":"12ab"')),
        (good:gsub('"sequence_number":"%d+"', '"sequence_number":12')),
        (good:gsub('"shards":{', '"shards":{"s":7,')),
        (good:gsub('"shards":{.*}}', '"shards":[1]}')),
      }
      for _, text in ipairs(cases) do
        R.write_file(path, text)
        local res, err = run()
        assert.is_nil(res, text)
        assert.equal("bad_checkpoint", err.code, text)
        assert.equal(path, err.path)
        assert.matches("checkpoint " .. path .. " is unusable", err.message, 1, true)
      end
      assert.same(before, snapshot())
      R.write_file(path, good) -- the real one again: it resumes
      s = assert(run())
      assert.equal(2, s.moved)
      assert_converged()
    end)

    it("creates a missing checkpoint directory, and fails with checkpoint_io where it cannot write", function()
      converse(ALICE, BOB, "one")
      local nested = dir .. "/a/b"
      local s = assert(run({ checkpoint_dir = nested }))
      assert.truthy(R.read_file(s.checkpoint))
      R.write_file(dir .. "/file", "x")
      local res, err = run({ checkpoint_dir = dir .. "/file" })
      assert.is_nil(res)
      assert.equal("checkpoint_io", err.code)
    end)

    it("raises on wrong argument types", function()
      assert.has_error(function() stream.run(nil) end)
      assert.has_error(function() stream.run({}) end)
      assert.has_error(function() stream.run(client, "opts") end)
      for _, bad in ipairs({
        { once = true, follow = true }, { once = 1 }, { follow = "yes" }, { start = "AT_SEQUENCE_NUMBER" },
        { batch_size = 0 }, { batch_size = 1001 }, { batch_size = 1.5 }, { idle_max_ms = -1 },
        { batch_attempts = 0 }, { retry_base_ms = "x" }, { checkpoint_dir = "" }, { checkpoint_dir = 3 },
        { should_stop = true }, { on_batch = {} }, { table = 5 }, { inject = "x" }, { max_rounds = -1 },
      }) do
        assert.has_error(function() stream.run(client, bad) end, nil, cjson.encode(bad))
      end
      assert.has_error(function() stream.checkpoint_name("") end)
    end)
  end)

  describe("failed batches", function()
    -- g1 (Alice-Bob) and g2 (Alice-Caro), then a message in g2, one in g1,
    -- one more in g2: the records of the stream and the groups.
    local function two_groups()
      local g1 = converse(ALICE, BOB, "start 1")
      local g2 = converse(ALICE, CARO, "start 2")
      say(g2, CARO, "g2 first")
      say(g1, BOB, "g1 news")
      say(g2, ALICE, "g2 second")
      return g1, g2
    end

    it("checkpoints up to the record before the first failed one; the next run completes it", function()
      local g1, g2 = two_groups()
      local records = read_stream()
      local k = first_message_of(records, g1)
      local g1_before = groups()[g1].rows
      local res, err = run({ batch_attempts = 1, inject = function(stage, g)
        if stage == "before_write" and g == g1 then return "disk on fire" end
      end })
      assert.is_nil(res)
      assert.equal("batch_failed", err.code)
      assert.equal(seq(records[k]), err.item)
      assert.equal("InjectedFailure", err.cause.code)
      assert.matches("disk on fire", err.message, 1, true)
      local path = dir .. "/" .. stream.checkpoint_name(select(2, read_stream()))
      local cp = cjson.decode(R.read_file(path))
      local _, shard = next(cp.shards)
      assert.equal(seq(records[k - 1]), shard.sequence_number)
      assert.same(g1_before, groups()[g1].rows) -- not a row lost or moved
      for _, r in ipairs(groups()[g2].rows) do assert.equal("g2 second", r.message) end

      -- the next run starts at the failed record and completes the group
      local now = read_stream() -- with the rewrite's writes for g2 at the end
      assert.equal(#records + 4, #now)
      local first
      local s = assert(run({ on_batch = function(r) first = first or r end }))
      assert.equal(#now - k + 1, first.processed)
      assert.equal(2, s.moved)
      assert.equal(#now - k + 1 + 2 * 2, s.records)
      assert_converged()
    end)

    it("retries the rest of the batch after a backoff, within the run", function()
      local g1 = two_groups()
      local records = read_stream()
      local k = first_message_of(records, g1)
      local failures, attempts = 0, {}
      local s = assert(run({ retry_base_ms = 0, on_batch = function(r)
        attempts[#attempts + 1] = { r.attempt, r.processed, r.failed, r.checkpoint }
      end, inject = function(stage, g)
        if stage == "after_read" and g == g1 and failures == 0 then
          failures = 1
          return "once"
        end
      end }))
      assert.equal(1, s.retries)
      assert.equal(4, s.moved)
      -- attempt 1: the whole page, checkpointed before g1's message; attempt 2: the rest
      assert.same({ 1, #records, 2, seq(records[k - 1]) }, attempts[1])
      assert.same({ 2, #records - k + 1, 0, seq(records[#records]) }, attempts[2])
      assert_converged()
    end)

    it("gives up after batch_attempts, never skipping the failed record", function()
      local g1 = two_groups()
      local records = read_stream()
      local k = first_message_of(records, g1)
      local calls = 0
      local res, err = run({ batch_attempts = 3, retry_base_ms = 0, on_batch = function() calls = calls + 1 end,
        inject = function(stage, g) if stage == "after_read" and g == g1 then return "always" end end })
      assert.is_nil(res)
      assert.equal("batch_failed", err.code)
      assert.matches("after 3 attempts", err.message, 1, true)
      assert.equal(3, calls)
      local cp = cjson.decode(R.read_file(dir .. "/" .. stream.checkpoint_name(select(2, read_stream()))))
      local _, shard = next(cp.shards)
      assert.equal(seq(records[k - 1]), shard.sequence_number)
    end)
  end)

  describe("expired iterators", function()
    local srv, proxied

    before_each(function()
      srv = fault_server.start { upstream = moto.endpoint() }
      proxied = moto.client({ endpoint = srv.url })
    end)

    after_each(function()
      proxied:close()
      srv:stop()
    end)

    local function requests()
      local out = {}
      for _, r in ipairs(srv:log()) do
        out[#out + 1] = { op = r.headers["x-amz-target"]:match("%.(%a+)$"), body = cjson.decode(r.body) }
      end
      return out
    end

    -- The Streams operations through the proxy, the others (DescribeTable,
    -- the rewrite's reads and writes) straight to moto.
    local STREAMS = { DescribeStream = true, GetShardIterator = true, GetRecords = true }
    local function split()
      return { call = function(_, op, p) return (STREAMS[op] and proxied or client):call(op, p) end }
    end

    local FORWARD = { action = "forward" }
    local EXPIRE = { status = 400, body = EXPIRED }

    it("are renewed from the checkpoint, at the start and in the middle of a shard", function()
      local g = converse(ALICE, BOB, "one")
      local first = assert(run())
      local cp = checkpoint_of(first)
      local _, shard = next(cp.shards)
      local from = shard.sequence_number
      say(g, BOB, "two")
      say(g, ALICE, "three")

      -- DescribeStream, GetShardIterator, GetRecords (expired), GetShardIterator,
      -- GetRecords (one record), GetRecords (expired), GetShardIterator, ...
      srv:script({ FORWARD, FORWARD, EXPIRE, FORWARD, FORWARD, EXPIRE })
      local checkpoints = {}
      local s = assert(run({ client = split(), batch_size = 1,
        on_batch = function(r) checkpoints[#checkpoints + 1] = r.checkpoint end }))
      assert.equal(2, s.renewed)
      assert.equal(4, s.moved) -- one batch per message: each moves both rows
      assert_converged()
      local log = requests()
      local ops = {}
      for i = 1, 8 do ops[i] = log[i].op end
      assert.same({ "DescribeStream", "GetShardIterator", "GetRecords", "GetShardIterator", "GetRecords",
        "GetRecords", "GetShardIterator", "GetRecords" }, ops)
      for _, i in ipairs({ 2, 4 }) do
        assert.equal("AFTER_SEQUENCE_NUMBER", log[i].body.ShardIteratorType)
        assert.equal(from, log[i].body.SequenceNumber)
      end
      assert.equal("AFTER_SEQUENCE_NUMBER", log[7].body.ShardIteratorType)
      assert.equal(checkpoints[1], log[7].body.SequenceNumber) -- after the batch read in between
      assert.are_not.equal(from, checkpoints[1])
    end)

    it("fail the run when they keep expiring", function()
      converse(ALICE, BOB, "one")
      srv:default({ action = "by_target", targets = { ["DynamoDBStreams_20120810.GetRecords"] = EXPIRE },
        otherwise = FORWARD })
      local before = snapshot()
      local res, err = run({ client = split() })
      assert.is_nil(res)
      assert.equal("ExpiredIteratorException", err.code)
      local n = 0
      for _, r in ipairs(requests()) do
        if r.op == "GetShardIterator" then n = n + 1 end
      end
      assert.equal(1 + stream.MAX_RENEWALS, n)
      assert.same(before, snapshot())
    end)
  end)

  describe("shard lineage (a stub of the Streams operations over moto's records)", function()
    -- shards: in listing order, { id, parent, records, closed, empty, trailing };
    -- DescribeStream answers one shard per page (a closed shard with its
    -- EndingSequenceNumber). Every new iterator first serves `empty` pages
    -- without records (as DynamoDB Streams may, before records further on);
    -- a closed shard serves `trailing` more after its records before its end.
    -- Every other operation goes to moto.
    local function stub(shards)
      local c = { calls = {} }
      local by_id = {}
      for i, s in ipairs(shards) do by_id[s.id] = { shard = s, index = i } end
      local function iterator(id, pos, empty) return id .. "|" .. pos .. "|" .. (empty or 0) end
      function c.call(_, op, p)
        c.calls[#c.calls + 1] = { op = op, params = p }
        if op == "DescribeTable" then
          local res, err = client:call(op, p)
          if res then res.Table.LatestStreamArn = res.Table.TableArn .. "/stream/stub" end
          return res, err
        elseif op == "DescribeStream" then
          local i = p.ExclusiveStartShardId and by_id[p.ExclusiveStartShardId].index + 1 or 1
          local s = shards[i]
          return { StreamDescription = { StreamArn = p.StreamArn, Shards = { { ShardId = s.id,
            ParentShardId = s.parent, SequenceNumberRange = { StartingSequenceNumber = "1",
              EndingSequenceNumber = s.closed and "99999999999999999999" or nil } } },
            LastEvaluatedShardId = shards[i + 1] and s.id or nil } }
        elseif op == "GetShardIterator" then
          local s = by_id[p.ShardId].shard
          local pos = 1
          if p.ShardIteratorType == "LATEST" then pos = (s.latest or #s.records) + 1 end
          if p.ShardIteratorType == "AFTER_SEQUENCE_NUMBER" then
            for i, r in ipairs(s.records) do
              if seq(r) == p.SequenceNumber then pos = i + 1 end
            end
          end
          return { ShardIterator = iterator(s.id, pos, s.empty) }
        elseif op == "GetRecords" then
          local id, pos, empty = p.ShardIterator:match("^(.*)|(%d+)|(%d+)$")
          local s = by_id[id].shard
          pos, empty = tonumber(pos), tonumber(empty)
          if empty > 0 then return { Records = core.array(), NextShardIterator = iterator(id, pos, empty - 1) } end
          local out = table.move(s.records, pos, math.min(#s.records, pos + p.Limit - 1), 1, core.array())
          local nxt = pos + #out
          if not s.closed then return { Records = out, NextShardIterator = iterator(id, nxt) } end
          if #out == 0 then nxt = pos + 1 end -- past the records: `trailing` empty pages, then the end
          local ends = nxt > #s.records + (s.trailing or 0)
          return { Records = out, NextShardIterator = not ends and iterator(id, nxt) or nil }
        end
        return client:call(op, p)
      end
      function c.opened(_)
        local out = {}
        for _, x in ipairs(c.calls) do
          if x.op == "GetShardIterator" then out[#out + 1] = x.params.ShardId end
        end
        return out
      end
      return c
    end

    -- moto's records of two conversations with several messages, split in
    -- three: a grandparent, its child, and the child's child.
    local function lineage()
      local g = converse(ALICE, BOB, "one")
      say(g, BOB, "two")
      local h = converse(CARO, BOB, "uno")
      say(g, ALICE, "three")
      say(h, BOB, "dos")
      say(g, BOB, "four")
      local records = read_stream()
      local a, b = math.floor(#records / 3), math.floor(2 * #records / 3)
      return table.move(records, 1, a, 1, {}), table.move(records, a + 1, b, 1, {}),
        table.move(records, b + 1, #records, 1, {})
    end

    it("reads parents before children whatever the listing order, across DescribeStream pages", function()
      local r1, r2, r3 = lineage()
      local shards = {
        { id = "shard-3", parent = "shard-2", records = r3, closed = false },
        { id = "shard-2", parent = "shard-1", records = r2, closed = true },
        { id = "shard-1", parent = "shard-0-trimmed", records = r1, closed = true },
      }
      local c = stub(shards)
      local order = {}
      local s = assert(run({ client = c, batch_size = 3, on_batch = function(_, shard)
        if order[#order] ~= shard then order[#order + 1] = shard end
      end }))
      assert.same({ "shard-1", "shard-2", "shard-3" }, c:opened())
      assert.same({ "shard-1", "shard-2", "shard-3" }, order)
      assert.equal(3, s.shards)
      assert.equal(#r1 + #r2 + #r3, s.records)
      assert_converged()
      local cp = checkpoint_of(s)
      assert.same({
        ["shard-1"] = { sequence_number = seq(r1[#r1]), finished = true },
        ["shard-2"] = { sequence_number = seq(r2[#r2]), finished = true },
        ["shard-3"] = { sequence_number = seq(r3[#r3]) },
      }, cp.shards)

      -- the next run reads only the open shard, after its checkpoint; a
      -- shard no longer listed (trimmed) leaves the checkpoint
      local known = #read_stream()
      say(converse(ALICE, CARO, "new"), CARO, "newer")
      local all = read_stream()
      table.move(all, known + 1, #all, #r3 + 1, r3)
      table.remove(shards, 3)
      c = stub(shards)
      s = assert(run({ client = c }))
      assert.same({ "shard-3" }, c:opened())
      assert.equal(#all - known, s.records)
      assert.equal("AFTER_SEQUENCE_NUMBER", c.calls[4].params.ShardIteratorType)
      assert.equal(cp.shards["shard-3"].sequence_number, c.calls[4].params.SequenceNumber)
      assert.same({
        ["shard-2"] = { sequence_number = seq(r2[#r2]), finished = true },
        ["shard-3"] = { sequence_number = seq(r3[#r3]) },
      }, checkpoint_of(s).shards)
      assert_converged()
    end)

    it("does not read a child while its parent is open", function()
      local r1, r2 = lineage()
      local c = stub({
        { id = "child", parent = "parent", records = r2, closed = false },
        { id = "parent", records = r1, closed = false },
      })
      local s = assert(run({ client = c }))
      assert.same({ "parent" }, c:opened())
      assert.equal(#r1, s.records)
      assert.is_nil(checkpoint_of(s).shards.parent.finished)
    end)

    it("with start = LATEST, starts at LATEST only while the checkpoint is empty: a new child starts at "
      .. "TRIM_HORIZON", function()
      local r1, r2 = lineage()
      -- LATEST is two records before the end of the parent (they arrive after the runner starts)
      local shards = { { id = "parent", records = r1, closed = false, latest = #r1 - 2 } }
      local c = stub(shards)
      local s = assert(run({ client = c, start = "LATEST" }))
      assert.equal(2, s.records)
      -- the parent closes and a child appears
      shards[1].closed = true
      shards[2] = { id = "child", parent = "parent", records = r2, closed = false, latest = #r2 }
      local calls = c.calls
      c = stub(shards)
      table.move(calls, 1, #calls, 1, c.calls) -- one log for both runs
      s = assert(run({ client = c, start = "LATEST" }))
      assert.equal(#r2, s.records)
      local types = {}
      for _, x in ipairs(c.calls) do
        if x.op == "GetShardIterator" then types[#types + 1] = x.params.ShardId .. " " .. x.params.ShardIteratorType end
      end
      assert.same({ "parent LATEST", "parent AFTER_SEQUENCE_NUMBER", "child TRIM_HORIZON" }, types)
      assert.is_true(checkpoint_of(s).shards.parent.finished)
    end)

    -- GetRecords calls per shard id.
    local function get_records(c)
      local n = {}
      for _, x in ipairs(c.calls) do
        if x.op == "GetRecords" then
          local id = x.params.ShardIterator:match("^(.*)|%d+|%d+$")
          n[id] = (n[id] or 0) + 1
        end
      end
      return n
    end

    it("--once reads past pages without records to the records after them, and leaves an open shard after "
      .. "ONCE_EMPTY_PAGES of them in a row", function()
      local E = stream.ONCE_EMPTY_PAGES
      assert.equal(5, E)
      local r1, r2, r3 = lineage()
      local records = table.move(r2, 1, #r2, #r1 + 1, table.move(r1, 1, #r1, 1, {}))
      table.move(r3, 1, #r3, #records + 1, records)
      local shard = { id = "open", records = records, closed = false, empty = E - 1 }
      local c = stub({ shard })
      local s = assert(run({ client = c, batch_size = 1000 }))
      assert.equal(#records, s.records)
      assert_converged()
      -- E - 1 empty pages, the page of records, then E empty pages: drained
      assert.same({ open = (E - 1) + 1 + E }, get_records(c))
      assert.is_nil(checkpoint_of(s).shards.open.finished)
      -- as many empty pages as the bound: a run stops there (follow mode goes on)
      shard.empty = E
      c = stub({ shard })
      s = assert(run({ client = c }))
      assert.same({ 0, 0 }, { s.records, s.batches })
      assert.same({ open = E }, get_records(c))
    end)

    it("--once reads a closed shard to its end through any number of pages without records, then its child",
      function()
      local E = stream.ONCE_EMPTY_PAGES
      local r1, r2, r3 = lineage()
      local child = table.move(r3, 1, #r3, #r2 + 1, table.move(r2, 1, #r2, 1, {}))
      local c = stub({
        { id = "parent", records = r1, closed = true, empty = E + 2, trailing = E + 3 },
        { id = "child", parent = "parent", records = child, closed = false },
      })
      local s = assert(run({ client = c, batch_size = 1000 }))
      assert.same({ "parent", "child" }, c:opened())
      assert.equal(#r1 + #child, s.records)
      assert_converged()
      assert.equal((E + 2) + 1 + (E + 3), get_records(c).parent)
      assert.same({ sequence_number = seq(r1[#r1]), finished = true }, checkpoint_of(s).shards.parent)
    end)
  end)

  describe("--follow", function()
    it("keeps polling until should_stop, sleeping when idle", function()
      local g = converse(ALICE, BOB, "one")
      local polls, wrote = 0, false
      local s = assert(run({ follow = true, idle_max_ms = 0, should_stop = function()
        polls = polls + 1
        if polls == 40 and not wrote then
          wrote = true
          say(g, BOB, "while following")
        end
        return polls > 80
      end }))
      assert.is_true(wrote)
      assert.equal(2, s.moved)
      assert_converged()
    end)
  end)

  describe("bin/ddb/stream", function()
    local function args(...)
      local t = { "--endpoint", moto.endpoint(), "--table", name, "--checkpoint-dir", dir }
      for _, a in ipairs({ ... }) do t[#t + 1] = a end
      return t
    end

    it("prints its usage on --help, refuses unknown or conflicting options with exit 2", function()
      local code, out, err = run_script({ "--help" })
      assert.equal(0, code)
      assert.matches("Usage: bin/ddb/stream", out, 1, true)
      assert.matches("--checkpoint-dir DIR", out, 1, true)
      assert.equal("", err)
      for _, bad in ipairs({ { "--no-such-flag" }, { "--once", "--follow" }, { "--from", "yesterday" },
        { "--batch-size", "0" }, { "surplus" } }) do
        code, out, err = run_script(bad)
        assert.equal(2, code, table.concat(bad, " "))
        assert.equal("", out)
        assert_one_line(err, "stream: ")
      end
    end)

    it("--once (the default): one line per batch and a summary; --json: the summary", function()
      local g = converse(ALICE, BOB, "one")
      say(g, BOB, "two")
      local code, out, err = run_script(args())
      assert.equal(0, code, err)
      assert.equal("", err)
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.is_true(#lines >= 2)
      assert.matches("^shard [^:]+: %d+ records, moved 2 rows, skipped %d+$", lines[1])
      assert.matches("^%d+ batch[es]*, %d+ records, moved 2 rows, skipped %d+ from 1 shard %(checkpoint .+%)$",
        lines[#lines])
      assert_converged()

      say(g, ALICE, "three")
      code, out, err = run_script(args("--once", "--json"))
      assert.equal(0, code, err)
      assert_one_line(out)
      local s = cjson.decode(out)
      assert.same({ "applied", "batches", "checkpoint", "failed", "moved", "records", "renewed", "retries", "shards",
        "skipped", "stream", "table" }, (function()
        local keys = {}
        for k in pairs(s) do keys[#keys + 1] = k end
        table.sort(keys)
        return keys
      end)())
      assert.equal(2, s.moved)
      assert.equal(5, s.records)
      assert.equal(name, s.table)
      assert_converged()
    end)

    it("fails with one line and exit 1 on a corrupt checkpoint or a table without a stream", function()
      converse(ALICE, BOB, "one")
      local code, out = run_script(args("--json"))
      assert.equal(0, code)
      local path = cjson.decode(out).checkpoint
      R.write_file(path, "{\"version\":")
      local err
      code, out, err = run_script(args())
      assert.equal(1, code)
      assert.equal("", out)
      assert_one_line(err, "stream: bad_checkpoint: checkpoint " .. path .. " is unusable")

      local plain = moto.table_name("nostream")
      local def = schema.definition({ table = plain })
      def.StreamSpecification = nil
      assert(client:call("CreateTable", def))
      code, out, err = run_script({ "--endpoint", moto.endpoint(), "--table", plain, "--checkpoint-dir", dir })
      client:call("DeleteTable", { TableName = plain })
      assert.equal(1, code)
      assert.equal("", out)
      assert_one_line(err, "stream: no_stream: table " .. plain .. " has no stream")
    end)

    it("stops on Ctrl-C (SIGINT) while following: one line, exit 130, a checkpoint to resume from", function()
      local g = converse(ALICE, BOB, "before the interrupt")
      local out = os.tmpname()
      local proc = script.start(args("--follow"), out)
      local ok, err = pcall(wait_for, "the first batch", function()
        return (R.read_file(out) or ""):find("records, moved", 1, true)
      end)
      local how, code = proc:kill("INT")
      local text = R.read_file(out) or ""
      os.remove(out)
      assert(ok, tostring(err) .. ": " .. text)
      assert.same({ "exit", 130 }, { how, code }, text)
      local lines = R.whole_lines(text)
      assert.equal("stream: stopped (interrupted); the checkpoint keeps the position: run again to resume",
        lines[#lines])
      assert.is_nil(text:find("traceback", 1, true), text)
      -- resuming moves only what came after
      say(g, BOB, "after the interrupt")
      local c, json, e = run_script(args("--once", "--json"))
      assert.equal(0, c, e)
      assert.equal(2, cjson.decode(json).moved)
      assert_converged()
    end)

    it("killed (SIGKILL) while following and restarted with --once, ends where a fresh runner would", function()
      local g1 = converse(ALICE, BOB, "a1")
      local g2 = converse(BOB, CARO, "b1")
      local g3 = converse(CARO, ALICE, "c1")
      local gs = { { g1, ALICE, BOB }, { g2, BOB, CARO }, { g3, CARO, ALICE } }
      local function wave(n, tag)
        for i = 1, n do
          local x = gs[i % 3 + 1]
          say(x[1], i % 2 == 0 and x[2] or x[3], tag .. " " .. i)
        end
      end
      wave(6, "first")

      local out = os.tmpname()
      local proc = script.start(args("--follow", "--batch-size", "1"), out)
      local function kill() proc:kill() end
      local ok, err = pcall(function()
        local arn = select(2, read_stream())
        local path = dir .. "/" .. stream.checkpoint_name(arn)
        -- it has processed something ...
        wait_for("a checkpoint", function()
          local text = R.read_file(path)
          return text and text:find("sequence_number", 1, true)
        end)
        -- ... then more arrives, and it dies somewhere in the middle of it
        local function lines() return select(2, (R.read_file(out) or ""):gsub("\n", "")) end
        local seen = lines()
        wave(9, "second")
        wait_for("more batches", function() return lines() >= seen + 3 end)
        kill()

        local text = R.read_file(path)
        local cp = cjson.decode(text) -- always a whole file
        local _, shard = next(cp.shards)
        local at = shard.sequence_number
        local records = read_stream()
        local pending = 0
        for _, r in ipairs(records) do
          if #seq(r) > #at or (#seq(r) == #at and seq(r) > at) then pending = pending + 1 end
        end
        local code, json, stderr = run_script(args("--once", "--json"))
        assert.equal(0, code, stderr)
        local s = cjson.decode(json)
        -- it resumed after the checkpoint: what was left, plus its own writes
        assert.equal(pending + 2 * s.moved, s.records)
        assert.equal(3, assert_converged())

        -- a fresh runner from TRIM_HORIZON over the whole stream changes nothing
        local before = snapshot()
        local fresh = R.tmpdir()
        local again = stream.run(client, { table = name, checkpoint_dir = fresh })
        R.rmrf(fresh)
        assert.truthy(again)
        assert.equal(0, again.moved)
        assert.same(before, snapshot())
      end)
      kill()
      os.remove(out)
      assert(ok, err)
    end)
  end)
end)

describe("ddb.core.fsync (the checkpoint writer's durability)", function()
  it("flushes and syncs an open file, and syncs a directory", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    assert(f:write("checkpoint"))
    assert.is_true(core.fsync(f)) -- flushed: the bytes are in the file before close
    local r = assert(io.open(path, "rb"))
    assert.equal("checkpoint", r:read("a"))
    r:close()
    f:close()
    os.remove(path)
    assert.is_true(core.fsync(path:match("^(.*)/")))
  end)

  it("returns nil and the system's message when the data cannot be written or the directory is missing", function()
    local f = assert(io.open("/dev/full", "wb"))
    assert(f:write("x")) -- buffered; the flush fails
    local ok, msg = core.fsync(f)
    assert.is_nil(ok)
    assert.matches("No space left on device", msg, 1, true)
    f:close()
    ok, msg = core.fsync("/nonexistent-ddb-dir")
    assert.is_nil(ok)
    assert.matches("No such file or directory", msg, 1, true)
  end)

  it("raises for a closed file or something that is not a file", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:close()
    os.remove(path)
    local ok, err = pcall(core.fsync, f)
    assert.is_false(ok)
    assert.matches("bad argument #1 to '.*fsync' %(file is closed%)", err)
    assert.has_error(function() core.fsync(3) end)
    assert.has_error(function() core.fsync({}) end)
  end)
end)

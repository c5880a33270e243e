-- ddb.messages paging against moto: cursors of rows in the bootcamp's time
-- formats, and pages larger than one Query response (1 MB).
local moto = require("support.moto")
local ids = require("ddb.ids")
local messages = require("ddb.messages")
local model = require("ddb.model")
local schema = require("ddb.schema")

local ORLA = { uuid = "1af65f48-6c6d-489d-b94d-44a152814656", handle = "orlaquill", display_name = "Orla Quillfeather" }
local BRAM = { uuid = "3bfeb448-2c4d-42f0-82c2-f2dd3acc39af", handle = "bramkettle", display_name = "Bram Kettleworth" }

-- A timestamp `i` seconds after a fixed time.
local function at(i)
  return ids.timestamp(ids.parse_timestamp("2025-06-01T08:00:00.000000+00:00") + i, 0)
end

-- A client that passes every call on and keeps the Query requests' params.
local function recording(client)
  local c = setmetatable({ queries = {} }, { __index = client })
  function c.call(_, op, params)
    if op == "Query" and not params.IndexName and not params.FilterExpression then
      c.queries[#c.queries + 1] = params
    end
    return client:call(op, params)
  end
  return c
end

-- Every page of `list(cursor)` until no cursor is left: the records in the
-- order the pages give them, and the number of pages.
local function all_pages(list)
  local out, cursor, pages = {}, nil, 0
  repeat
    local records, next_cursor = list(cursor)
    assert.is_table(records, tostring(next_cursor))
    for _, r in ipairs(records) do out[#out + 1] = r end
    pages = pages + 1
    assert.is_true(pages <= 50, "too many pages")
    cursor = next_cursor
  until cursor == nil
  return out, pages
end

describe("ddb.messages paging", function()
  local client, name, repo

  setup(function()
    client = moto.client()
    name = moto.table_name("msg-paging")
    assert(schema.load(client, { table = name }))
    repo = messages.new(client, { table = name })
  end)

  teardown(function()
    schema.drop(client, { table = name })
    client:close()
  end)

  describe("through rows in the bootcamp's time formats", function()
    -- times as the bootcamp's Python wrote them (datetime.isoformat(): a
    -- local offset, no microseconds when they were 0, naive times), ours,
    -- and ISO-8601 with Z; newest first by sort key
    local TIMES = {
      "2023-03-18T23:50:00.000000+00:00",
      "2023-03-18T19:49:12.345678-04:00",
      "2023-03-18T19:48:12-04:00",
      "2023-03-18T19:47:12.345678",
      "2023-03-18T19:46:12",
      "2023-03-18T19:45:12.345Z",
      "2023-03-18T19:44:12.345678+05:30",
      "2023-03-18T19:43:12+05:30:15.5",
    }

    it("list_message_groups accepts back every cursor it returned", function()
      local user = ids.uuid()
      local want = {}
      for i, t in ipairs(TIMES) do
        local g = ids.uuid()
        moto.put(client, name, model.group_row({ uuid = user }, BRAM, g, t, "legacy " .. i))
        want[i] = g
      end
      local got, pages = all_pages(function(cursor)
        return repo:list_message_groups(user, { limit = 1, cursor = cursor })
      end)
      local uuids = {}
      for i, r in ipairs(got) do uuids[i] = r.uuid end
      assert.same(want, uuids)
      assert.is_true(pages >= #TIMES)
    end)

    it("list_messages accepts back every cursor it returned", function()
      local g = ids.uuid()
      moto.put(client, name, model.group_row(ORLA, BRAM, g, TIMES[1], "last"))
      moto.put(client, name, model.group_row(BRAM, ORLA, g, TIMES[1], "last"))
      for i, t in ipairs(TIMES) do
        moto.put(client, name, model.message_row(g, t, ids.uuid(), BRAM, "legacy " .. i))
      end
      local got = all_pages(function(cursor)
        return repo:list_messages(g, ORLA.uuid, { limit = 2, cursor = cursor })
      end)
      -- pages go back in time, each page oldest first
      local texts = {}
      for i, r in ipairs(got) do texts[i] = r.message end
      assert.same({ "legacy 2", "legacy 1", "legacy 4", "legacy 3", "legacy 6", "legacy 5", "legacy 8", "legacy 7" },
        texts)
    end)

    it("a page ending on a row whose sort key is not a time is corrupt_item", function()
      local user = ids.uuid()
      moto.put(client, name, model.group_row({ uuid = user }, BRAM, ids.uuid(), at(1), "fine"))
      moto.put(client, name, model.group_row({ uuid = user }, BRAM, ids.uuid(), "not a time", "broken"))
      local res, err = repo:list_message_groups(user, { limit = 1 })
      assert.is_nil(res)
      assert.equal("corrupt_item", err.code)
      assert.matches("not a time", err.message, 1, true)
      -- a page that does not end on it is fine
      local records = assert(repo:list_message_groups(user, { limit = 2 }))
      assert.equal(2, #records)
    end)
  end)

  describe("past DynamoDB's 1 MB per response", function()
    -- 1024 four-byte characters, the longest message: about 4.2 KB a row,
    -- so 300 rows are more than one response holds
    local N, BIG = 300, string.rep("\u{1F600}", model.MAX_MESSAGE_CHARS)

    it("list_messages returns `limit` messages, asking only for the rest, and a cursor that continues", function()
      local g = ids.uuid()
      moto.put(client, name, model.group_row(ORLA, BRAM, g, at(N), BIG))
      moto.put(client, name, model.group_row(BRAM, ORLA, g, at(N), BIG))
      for i = 1, N do moto.put(client, name, model.message_row(g, at(i), ids.uuid(), ORLA, BIG)) end
      local c = recording(client)
      local r = messages.new(c, { table = name })
      local limit = N - 20
      local records, cursor = r:list_messages(g, BRAM.uuid, { limit = limit })
      assert.is_table(records, tostring(cursor))
      assert.equal(limit, #records)
      for k, rec in ipairs(records) do assert.equal(at(20 + k), rec.created_at) end -- the newest, oldest first
      assert.equal(at(21), cursor)
      -- one response was not enough: the next Query asked for the rest, from where the first stopped
      assert.is_true(#c.queries >= 2)
      local first = c.queries[1]
      assert.equal(limit, first.Limit)
      assert.is_nil(first.ExclusiveStartKey)
      local second = c.queries[2]
      assert.is_true(second.Limit < limit)
      assert.equal("MSG#" .. g, second.ExclusiveStartKey.pk.S)
      assert.equal(at(N - (limit - second.Limit) + 1), second.ExclusiveStartKey.sk.S)
      -- the cursor gives the 20 older ones, no overlap, no gap
      local rest = assert(r:list_messages(g, BRAM.uuid, { limit = limit, cursor = cursor }))
      assert.equal(20, #rest)
      for k, rec in ipairs(rest) do assert.equal(at(k), rec.created_at) end
    end)

    it("list_message_groups returns `limit` conversations and a cursor that continues", function()
      local user = ids.uuid()
      for i = 1, N do moto.put(client, name, model.group_row({ uuid = user }, BRAM, ids.uuid(), at(i), BIG)) end
      local c = recording(client)
      local r = messages.new(c, { table = name })
      local limit = N - 20
      local records, cursor = r:list_message_groups(user, { limit = limit })
      assert.is_table(records, tostring(cursor))
      assert.equal(limit, #records)
      for k, rec in ipairs(records) do assert.equal(at(N + 1 - k), rec.created_at) end -- newest first
      assert.equal(at(21), cursor)
      assert.is_true(#c.queries >= 2)
      assert.equal(limit, c.queries[1].Limit)
      assert.is_true(c.queries[2].Limit < limit)
      local rest = assert(r:list_message_groups(user, { limit = limit, cursor = cursor }))
      assert.equal(20, #rest)
      assert.equal(at(20), rest[1].created_at)
      assert.equal(at(1), rest[20].created_at)
    end)
  end)
end)

-- The rows and stream records the ddb.stream specs (stream_spec,
-- stream_races_spec) build: three test users, timestamps after a fixed time,
-- a deep copy, DynamoDB Streams INSERT/MODIFY/REMOVE records, and the group
-- rows and messages of a conversation written to a table.
--
--     local stream_rows = require("support.stream_rows")
--     local ALICE, BOB, at = stream_rows.ALICE, stream_rows.BOB, stream_rows.at
--     describe("...", function()
--       local client, name -- set in setup / before_each
--       local t = stream_rows.on(function() return client, name end)
--       local put, seed_group, post = t.put, t.seed_group, t.post
--       it("...", function()
--         local g = seed_group(ALICE, BOB, at(0), "hi")
--         local rec = post(g, at(5), BOB, "hello") -- its INSERT record
--       end)
--     end)
--
-- Require it as "support.stream_rows" from a spec (as "support.moto").
local core = require("ddb.core")
local ids = require("ddb.ids")
local marshal = require("ddb.marshal")
local model = require("ddb.model")
local moto = require("support.moto")
local luassert = require("luassert")

local M = {}

--- The test users: tables with `uuid`, `handle` and `display_name`.
M.ALICE = { uuid = "6f1c2f44-3f7e-4c1b-9f55-0b6a1d0c2a11", handle = "alice", display_name = "Alice Arden" }
M.BOB = { uuid = "0d9e8b7a-6c5d-4e3f-8a1b-2c3d4e5f6a7b", handle = "bob", display_name = "Bob Brook" }
M.CARO = { uuid = "a4b3c2d1-e0f9-4a8b-9c7d-6e5f4a3b2c1d", handle = "caro", display_name = "Caro Cole" }

--- The fixed time `at` counts from (epoch seconds).
M.BASE = ids.parse_timestamp("2026-03-01T12:00:00.000000+00:00")

--- The timestamp `i` seconds (+ `usec`) after `BASE`.
function M.at(i, usec)
  return ids.timestamp(M.BASE + i, usec or 0)
end

--- A deep copy of `v`; the copied tables keep their metatables.
function M.copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = M.copy(x) end
  return setmetatable(out, getmetatable(v))
end

-- Records made so far (per spec file: busted loads this module afresh for
-- each, and a file's records only meet each other).
local seq = 0

--- The stream record of `item` for `event_name` ("INSERT", "MODIFY",
-- "REMOVE"), built as DynamoDB Streams builds it (NEW_IMAGE view; no image for
-- REMOVE) and passed through the JSON codec the way a Lambda event or a
-- GetRecords page is. Every record gets the next eventID and SequenceNumber.
function M.record(event_name, item)
  seq = seq + 1
  local sequence = ("%021d"):format(4200000000000000000 + seq)
  local rec = {
    eventID = ("%032x"):format(seq), eventName = event_name, eventVersion = "1.1",
    eventSource = "aws:dynamodb", awsRegion = "us-east-1",
    dynamodb = {
      ApproximateCreationDateTime = 1772366400, SequenceNumber = sequence, SizeBytes = 256,
      StreamViewType = "NEW_IMAGE",
      Keys = { pk = { S = item.pk }, sk = { S = item.sk } },
      NewImage = event_name ~= "REMOVE" and marshal.item(item) or nil,
    },
  }
  return core.json_decode(core.json_encode(rec))
end

--- The writers on one table. `current` returns the client and the table
-- name at call time (a spec sets them in setup / before_each).
-- @treturn table `put(row)`: writes the plain row; `seed_group(a, b, sk, text
-- [, extra_a])`: writes both group rows of a new conversation between users
-- a and b at sk with text (a's row also gets the fields of `extra_a`) and
-- returns its group uuid; `post(g, sk, sender, text)`: writes a message row
-- of group g and returns its INSERT record.
--- Asserts the summary `s` of `ddb.stream.process` holds the counts of
-- `want` (e.g. `{ processed = 2, moved = 2 }`), and that its processed
-- records are all accounted for: applied + skipped + failed.
function M.assert_counts(want, s)
  local got = {}
  for k in pairs(want) do got[k] = s[k] end
  luassert.same(want, got)
  luassert.equal(s.processed, s.applied + s.skipped + s.failed)
end

function M.on(current)
  local t = {}

  function t.put(row)
    local client, name = current()
    moto.put(client, name, row)
  end

  function t.seed_group(a, b, sk, text, extra_a)
    local g = ids.uuid()
    local ra = model.group_row(a, b, g, sk, text)
    for k, v in pairs(extra_a or {}) do ra[k] = v end
    t.put(ra)
    t.put(model.group_row(b, a, g, sk, text))
    return g
  end

  function t.post(g, sk, sender, text)
    local row = model.message_row(g, sk, ids.uuid(), sender, text)
    t.put(row)
    return M.record("INSERT", row)
  end

  return t
end

return M

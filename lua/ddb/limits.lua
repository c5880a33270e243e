--- DynamoDB's item size limit, checked before a write is sent.
--
-- An item may hold at most 400 KB (409,600 bytes), counted as DynamoDB
-- documents it: the sum over the attributes of the UTF-8 length of the name
-- plus the size of the value, where
--
-- * `S`: its UTF-8 bytes; `B`: its raw bytes (the base64 text decoded);
-- * `N`: 1 byte per two significant digits, rounded up, plus 1
--   (`ceil(digits / 2) + 1`; leading and trailing zeros, sign, decimal point
--   and exponent do not count);
-- * `BOOL`, `NULL`: 1 byte;
-- * `M`, `L`: 3 bytes plus the sizes of the elements, 1 byte per element
--   (and, for `M`, the UTF-8 lengths of their names);
-- * `SS`, `NS`, `BS`: the sum of the sizes of the members.
--
-- The client refuses a `PutItem` whose `Item`, a `BatchWriteItem` with a
-- `PutRequest.Item`, or a `TransactWriteItems` with a `Put.Item` over the limit,
-- with `ItemTooLarge` and no request. `UpdateItem` (and `TransactWriteItems`'
-- `Update`) cannot be checked here: the size of the updated item depends on
-- what is stored, and the service enforces the limit on them.
--
-- The size is counted by the C core (`core.item_size`, src/client.c) in one
-- pass over the tables, read raw as the JSON encoder reads them, and only for
-- a request body over 409,600 bytes (no item of a smaller body can be over
-- the limit): the check costs nothing to reads and to ordinary writes. Values of the wrong shape
-- count as 0 (the encoder or the service rejects them, with its own
-- message), and an `Item` that is not a table is not checked. It does not go
-- deeper than 64 levels
-- (DynamoDB allows 32) and stops once past the limit (an item found too large
-- is then counted again for the message, up to 4 times the limit), so a
-- cyclic table cannot make it loop: it is refused by the JSON encoder, or
-- here.
-- @module ddb.limits
local errors = require("ddb.errors")

local M = {}

--- The largest item DynamoDB stores, in bytes (400 KB).
M.MAX_ITEM_BYTES = 409600

local LIMIT = M.MAX_ITEM_BYTES
local REPORT_CAP = 4 * LIMIT -- counting an item found too large stops past this

local type, ipairs = type, ipairs
-- The size of `item` counted up to `cap` (a lower bound past it), or nil
-- when it is not a table.
local size_or_nil = require("ddb.core").item_size

--- The size of an item as DynamoDB counts it (see above).
-- @tparam table item attribute name -> AttributeValue
-- @treturn integer|nil bytes (past 1,638,400, 4 times the limit, counting
--   stops and the result is a lower bound), or nil when `item` is not a table
function M.item_size(item)
  return size_or_nil(item, REPORT_CAP)
end

local function too_large(op, where, item, fields)
  local size = size_or_nil(item, REPORT_CAP)
  fields = fields or {}
  fields.operation, fields.attempts, fields.size, fields.limit = op, 0, size, LIMIT
  return errors.new("ItemTooLarge", ("%s item%s is %s%d bytes, over DynamoDB's 400 KB item size limit "
    .. "of %d bytes; nothing was sent"):format(op, where, size > REPORT_CAP and "at least " or "", size, LIMIT),
    fields)
end

local function over(item)
  local size = size_or_nil(item, LIMIT)
  return size ~= nil and size > LIMIT
end

-- Per operation, a function `(op, params) -> err|nil` that finds an item
-- over the limit in the parameters of a write.
local finders = {
  PutItem = function(op, params)
    local item = params.Item
    if over(item) then return too_large(op, "", item) end
  end,
  BatchWriteItem = function(op, params)
    local ri = params.RequestItems
    if type(ri) ~= "table" then return nil end
    for tname, reqs in pairs(ri) do
      if type(reqs) == "table" then
        for i, req in ipairs(reqs) do
          local put = type(req) == "table" and req.PutRequest
          if type(put) == "table" and over(put.Item) then
            return too_large(op, (" (RequestItems[%s][%d].PutRequest.Item)"):format(errors.quote(tname), i),
              put.Item, { table = tname, index = i })
          end
        end
      end
    end
  end,
  TransactWriteItems = function(op, params)
    local items = params.TransactItems
    if type(items) ~= "table" then return nil end
    for i, ti in ipairs(items) do
      local put = type(ti) == "table" and ti.Put
      if type(put) == "table" and over(put.Item) then
        return too_large(op, (" (TransactItems[%d].Put.Item)"):format(i), put.Item, { index = i })
      end
    end
  end,
}

--- The operations whose items are checked: `PutItem`, `BatchWriteItem`,
-- `TransactWriteItems` (a set: name -> true).
M.CHECKED = { PutItem = true, BatchWriteItem = true, TransactWriteItems = true }

--- Finds an item over the limit in the parameters of a write.
-- The client does not call this for every write: its C core refuses a
-- request whose body is over the limit and holds such an item (the body of
-- a request is never shorter than the size of an item in it), and this
-- builds the error that says which item.
-- @tparam string op the operation
-- @tparam table params its parameters (DynamoDB JSON)
-- @treturn table|nil an `ItemTooLarge` error (`operation`, `size`, `limit`,
--   `attempts` 0, and `table` and `index` for a batch or a transaction), or
--   nil when no item is over the limit (or `op` is not checked)
function M.check(op, params)
  local find = finders[op]
  return find and type(params) == "table" and find(op, params) or nil
end

return M

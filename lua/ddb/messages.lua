--- Cruddur's direct messages: the access patterns over the messages table.
--
--     local messages = require("ddb.messages")
--     local repo = messages.new(client, { table = "cruddur-messages" })
--     local records, cursor = repo:list_messages(group_uuid, reader_uuid, { limit = 40 })
--     local groups, cursor = repo:list_message_groups(user_uuid)
--     local record, err = repo:create_message(group_uuid, sender, "hello")
--     local record, err = repo:create_message_group(sender, receiver, "hi there")
--
-- Users are tables `{ uuid, handle, display_name }`. Records are plain
-- tables with the bootcamp's field names: `uuid`, `message_group_uuid`,
-- `display_name`, `handle`, `user_uuid`, `message`, `created_at`
-- (see `ddb.model.message_record` and `ddb.model.group_record`).
--
-- Expected failures return `nil, err` (a `ddb.errors` value). Besides the
-- service's own errors (`ResourceNotFoundException`, `TransportError`, ...)
-- the codes are:
--
-- * `message_blank`, `message_exceed_max_chars`, `message_invalid_utf8`,
--   `message_group_uuid_blank`, `user_receiver_handle_blank` (the bootcamp
--   backend's validation codes, plus invalid UTF-8);
-- * `invalid_uuid` (an id that is not a canonical lowercase UUID; checked
--   before any key is built, so nothing user-supplied can forge a key),
--   `invalid_user` (a user table without string `handle`/`display_name`),
--   `invalid_receiver` (a conversation with oneself), `invalid_cursor`;
-- * `forbidden`: the reader or sender is not a participant of the group;
-- * `time_collision` (`create_message` found `MAX_TIME_COLLISIONS` messages
--   at the times it tried), `corrupt_item` (a pair row without a valid
--   `group_uuid`, or a page ending on a row whose `sk` is not a time).
--
-- Nothing is written when validation fails. Wrong argument types (a
-- number where an id or the text goes, a user that is not a table, bad
-- options) raise.
--
-- Cursors are the `sk` (a time) of DynamoDB's `LastEvaluatedKey`: an `ids`
-- timestamp, or a time of a row the bootcamp's Python wrote
-- (`datetime.isoformat()`: another UTC offset or none, no microseconds when
-- they were 0). An incoming cursor must be such a time, at most
-- `MAX_CURSOR_BYTES` long (`invalid_cursor` otherwise), and the key is
-- rebuilt from it with the caller's own partition, so a cursor cannot point
-- into another partition. Every cursor returned is accepted back: a page
-- that ends on a row whose `sk` is not such a time is `corrupt_item`.
-- @module ddb.messages
local core = require("ddb.core")
local errors = require("ddb.errors")
local ids = require("ddb.ids")
local marshal = require("ddb.marshal")
local model = require("ddb.model")
local retry = require("ddb.retry")

local M = {}

--- Default page size of `list_messages`.
M.DEFAULT_MESSAGES_LIMIT = 40
--- Default page size of `list_message_groups`.
M.DEFAULT_GROUPS_LIMIT = 20
--- Largest page size accepted.
M.MAX_LIMIT = 1000
--- How many times `create_message` moves a colliding time 1 µs later.
M.MAX_TIME_COLLISIONS = 10
--- Longest cursor accepted, in bytes (an `ids` timestamp has 32).
M.MAX_CURSOR_BYTES = 64
--- How many times `create_message_group` starts over after a transaction
-- conflict or a time collision on a group row. After a conflict or
-- throttling it waits first, as the client's retries do (`ddb.retry`).
M.MAX_GROUP_ATTEMPTS = 5

local Repo = {}
Repo.__index = Repo

local fail = errors.fail

---------------------------------------------------------------------------
-- Validation (returns nil, err for bad values; raises for wrong types).

-- The Unicode White_Space code points (besides ASCII, handled by %s).
local UNICODE_SPACE = {
  [0x85] = true, [0xA0] = true, [0x1680] = true, [0x2028] = true, [0x2029] = true,
  [0x202F] = true, [0x205F] = true, [0x3000] = true,
}
for c = 0x2000, 0x200A do UNICODE_SPACE[c] = true end

local function only_whitespace(s)
  if s:find("^%s*$") then return true end
  for _, c in utf8.codes(s) do
    if not (c < 0x80 and string.char(c):find("^%s$")) and not UNICODE_SPACE[c] then return false end
  end
  return true
end

local function check_text(text, fname)
  if text ~= nil and type(text) ~= "string" then
    error(("messages.%s: message must be a string, got %s"):format(fname, type(text)), 3)
  end
  if text == nil or text == "" then
    return fail("message_blank", "the message is blank")
  end
  local n = utf8.len(text)
  if not n then
    return fail("message_invalid_utf8", "the message is not valid UTF-8 text")
  end
  if only_whitespace(text) then
    return fail("message_blank", "the message is blank (only whitespace)")
  end
  if n > model.MAX_MESSAGE_CHARS then
    return fail("message_exceed_max_chars", ("the message has %d characters, more than the %d allowed"):format(
      n, model.MAX_MESSAGE_CHARS))
  end
  return true
end

-- An id given by the caller: nil/"" is `blank_code` when given, else
-- `invalid_uuid`; a non-string raises.
local function check_uuid(v, what, fname, blank_code)
  if v ~= nil and type(v) ~= "string" then
    error(("messages.%s: %s must be a string, got %s"):format(fname, what, type(v)), 3)
  end
  if (v == nil or v == "") and blank_code then
    return fail(blank_code, what .. " is blank")
  end
  if not ids.is_uuid(v) then
    return fail("invalid_uuid", what .. " is not a canonical lowercase UUID")
  end
  return true
end

local function is_text(v)
  return type(v) == "string" and utf8.len(v) ~= nil
end

-- A user table `{uuid, handle, display_name}`; `role` names it in messages.
local function check_user(u, role, fname)
  if type(u) ~= "table" then
    error(("messages.%s: %s must be a table {uuid, handle, display_name}, got %s"):format(fname, role, type(u)), 3)
  end
  if u.uuid ~= nil and type(u.uuid) ~= "string" then
    error(("messages.%s: %s.uuid must be a string, got %s"):format(fname, role, type(u.uuid)), 3)
  end
  if not ids.is_uuid(u.uuid) then
    return fail("invalid_uuid", role .. "'s uuid is not a canonical lowercase UUID")
  end
  if not is_text(u.handle) or not u.handle:find("%S") or not is_text(u.display_name) then
    return fail("invalid_user", role .. " must have a non-empty handle and a display_name (UTF-8 strings)")
  end
  return true
end

-- Methods called with `.` instead of `:` (or on something else) raise clearly.
local function check_self(self, fname)
  if getmetatable(self) ~= Repo then
    error(("messages.%s: call it as a method, repo:%s(...), on a repository from messages.new"):format(
      fname, fname), 3)
  end
end

local function check_opts(opts, fname)
  if opts ~= nil and type(opts) ~= "table" then
    error(("messages.%s: opts must be a table, got %s"):format(fname, type(opts)), 3)
  end
  return opts or {}
end

local function check_limit(limit, default, fname)
  if limit == nil then return default end
  if math.type(limit) ~= "integer" or limit < 1 or limit > M.MAX_LIMIT then
    error(("messages.%s: limit must be an integer 1..%d, got %s"):format(fname, M.MAX_LIMIT, tostring(limit)), 3)
  end
  return limit
end

-- What may follow the seconds of a row's time (after an optional fraction):
-- `ids` writes `+00:00`; Python's `isoformat()` any offset, or none.
local TIME_ZONES = { "", "Z", "[+-]%d%d:%d%d", "[+-]%d%d:%d%d:%d%d", "[+-]%d%d:%d%d:%d%d%.%d+" }

-- True for a time a cursor may hold: ISO-8601 `YYYY-MM-DDTHH:MM:SS`, an
-- optional fraction and one of TIME_ZONES, at most MAX_CURSOR_BYTES long.
local function is_cursor(s)
  if type(s) ~= "string" or #s > M.MAX_CURSOR_BYTES then return false end
  local rest = s:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d(.*)$")
  if not rest then return false end
  rest = rest:match("^%.%d+(.*)$") or rest
  for _, zone in ipairs(TIME_ZONES) do
    if rest:find("^" .. zone .. "$") then return true end
  end
  return false
end

local function check_cursor(cursor, fname)
  if cursor ~= nil and type(cursor) ~= "string" then
    error(("messages.%s: cursor must be a string, got %s"):format(fname, type(cursor)), 3)
  end
  if cursor ~= nil and not is_cursor(cursor) then
    return fail("invalid_cursor", "the cursor is not one this API returned")
  end
  return true
end

---------------------------------------------------------------------------
-- Requests.

local function S(s) return { S = s } end

local function is_ccf(err)
  return err.code == "ConditionalCheckFailedException"
end

-- GetItem of the pair row of two users (consistent); returns its plain item or false.
function Repo:_get_pair(a_uuid, b_uuid)
  local key = model.pair_key(a_uuid, b_uuid)
  local res, err = self.client:call("GetItem", {
    TableName = self.table, ConsistentRead = true, Key = { pk = S(key.pk), sk = S(key.sk) },
  })
  if not res then return nil, err end
  if not res.Item then return false end
  return marshal.unitem(res.Item)
end

-- The group the pair row names, checked before it becomes part of a key.
local function pair_group(pair)
  if not ids.is_uuid(pair.group_uuid) then
    return fail("corrupt_item", ("the pair row %s has no valid group_uuid"):format(tostring(pair.pk)))
  end
  return pair.group_uuid
end

-- Queries one page of `pk` newest first: `limit` items, or fewer when no
-- more are left (a response stops at 1 MB, so this follows
-- `LastEvaluatedKey`, asking for the rest only; a response with a key but
-- no items ends the page there), mapped with `record`.
function Repo:_page(pk, limit, cursor, record)
  local records, last = {}, cursor
  repeat
    local params = {
      TableName = self.table,
      KeyConditionExpression = "pk = :pk",
      ExpressionAttributeValues = { [":pk"] = S(pk) },
      ScanIndexForward = false,
      Limit = limit - #records,
    }
    if last then params.ExclusiveStartKey = { pk = S(pk), sk = S(last) } end
    local res, err = self.client:call("Query", params)
    if not res then return nil, err end
    local items = res.Items or {}
    for _, item in ipairs(items) do records[#records + 1] = record(marshal.unitem(item)) end
    local lek = res.LastEvaluatedKey
    last = type(lek) == "table" and type(lek.sk) == "table" and type(lek.sk.S) == "string" and lek.sk.S or nil
  until not last or #records >= limit or #items == 0
  if last and not is_cursor(last) then
    return fail("corrupt_item", ("the row %s %s has a sort key that is not a time: cannot page past it"):format(
      pk, errors.quote(last)))
  end
  return records, last
end

---------------------------------------------------------------------------
-- The repository.

--- Creates a repository over the messages table.
-- @tparam table client a `ddb.client` (anything with its `call` and `pages` methods)
-- @tparam[opt] table opts `table` (name, default `cruddur-messages`);
--   `now` (a function returning the current time as an `ids` timestamp;
--   default `ids.now`, injectable for tests); `sleep` (a function of
--   milliseconds; default `ddb.core.sleep_ms`, injectable for tests)
-- @treturn table the repository
-- @raise on wrong argument types
function M.new(client, opts)
  if type(client) ~= "table" or type(client.call) ~= "function" or type(client.pages) ~= "function" then
    error("messages.new: client expected (a ddb.client, or a table with its call and pages methods)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("messages.new: opts must be a table, got " .. type(opts), 2)
  end
  opts = opts or {}
  if opts.table ~= nil and not model.is_table_name(opts.table) then
    error("messages.new: opts.table must be a table name (3 to 255 characters of A-Z, a-z, 0-9, '_', '-', '.')", 2)
  end
  if opts.now ~= nil and type(opts.now) ~= "function" then
    error("messages.new: opts.now must be a function", 2)
  end
  if opts.sleep ~= nil and type(opts.sleep) ~= "function" then
    error("messages.new: opts.sleep must be a function", 2)
  end
  return setmetatable({ client = client, table = opts.table or model.TABLE, now = opts.now or ids.now,
    sleep = opts.sleep or core.sleep_ms }, Repo)
end

function Repo:_now()
  local t = self.now()
  if not ids.is_timestamp(t) then
    error("messages: the clock returned " .. errors.quote(t) .. ", not an ids timestamp", 3)
  end
  return t
end

--- Whether `user_uuid` is a participant of the group `group_uuid` (owns
-- one of its group rows). Asks the GSI first; as it is eventually
-- consistent, a "no" is confirmed with a strongly consistent query of the
-- user's group rows before it is believed.
-- @tparam string group_uuid
-- @tparam string user_uuid
-- @treturn boolean|nil
-- @treturn table|nil error (`invalid_uuid`, `message_group_uuid_blank`, or the service's)
function Repo:is_member(group_uuid, user_uuid)
  check_self(self, "is_member")
  local ok, err = check_uuid(group_uuid, "message_group_uuid", "is_member", "message_group_uuid_blank")
  if not ok then return nil, err end
  ok, err = check_uuid(user_uuid, "user uuid", "is_member")
  if not ok then return nil, err end
  local want = model.group_pk(user_uuid)
  for page, perr in self.client:pages("Query", {
    TableName = self.table, IndexName = model.GSI,
    KeyConditionExpression = "message_group_uuid = :g",
    ExpressionAttributeValues = { [":g"] = S(group_uuid) },
  }) do
    if not page then return nil, perr end
    for _, item in ipairs(page.Items or {}) do
      if item.pk and item.pk.S == want then return true end
    end
  end
  for page, perr in self.client:pages("Query", {
    TableName = self.table, ConsistentRead = true,
    KeyConditionExpression = "pk = :p",
    FilterExpression = "message_group_uuid = :g",
    ExpressionAttributeValues = { [":p"] = S(want), [":g"] = S(group_uuid) },
  }) do
    if not page then return nil, perr end
    if (page.Count or #(page.Items or {})) > 0 then return true end
  end
  return false
end

-- Refuses a non-participant with `forbidden`.
function Repo:_require_member(group_uuid, user_uuid)
  local member, err = self:is_member(group_uuid, user_uuid)
  if member == nil then return nil, err end
  if not member then
    return fail("forbidden", "the user is not a participant of this message group")
  end
  return true
end

--- Access pattern A: the messages of a group, a page at a time.
-- Returns the newest `limit` messages before the cursor, oldest first
-- (ready to display), and a cursor for the page before them when there
-- may be more. The reader must be a participant of the group.
-- @tparam string message_group_uuid
-- @tparam string user_uuid the reader
-- @tparam[opt] table opts `limit` (integer 1..1000, default 40), `cursor`
--   (from a previous call)
-- @treturn table|nil records (`ddb.model.message_record`), oldest first
-- @treturn string|table|nil the cursor of the previous (older) page, or nil
--   when there is none; the error when the first result is nil
--   (`message_group_uuid_blank`, `invalid_uuid`, `invalid_cursor`, `forbidden`,
--   `corrupt_item`, ...)
-- @raise on wrong argument types or a bad `limit`
function Repo:list_messages(message_group_uuid, user_uuid, opts)
  check_self(self, "list_messages")
  opts = check_opts(opts, "list_messages")
  local limit = check_limit(opts.limit, M.DEFAULT_MESSAGES_LIMIT, "list_messages")
  local ok, err = check_uuid(message_group_uuid, "message_group_uuid", "list_messages", "message_group_uuid_blank")
  if not ok then return nil, err end
  ok, err = check_uuid(user_uuid, "user uuid", "list_messages")
  if not ok then return nil, err end
  ok, err = check_cursor(opts.cursor, "list_messages")
  if not ok then return nil, err end
  ok, err = self:_require_member(message_group_uuid, user_uuid)
  if not ok then return nil, err end
  local records, cursor = self:_page(model.message_pk(message_group_uuid), limit, opts.cursor, model.message_record)
  if not records then return nil, cursor end
  local n = #records
  for i = 1, n // 2 do records[i], records[n + 1 - i] = records[n + 1 - i], records[i] end
  return records, cursor
end

--- Access pattern B: a user's conversations, newest first, a page at a time.
-- No filter on the year (or any time): every conversation is listed.
-- @tparam string user_uuid
-- @tparam[opt] table opts `limit` (integer 1..1000, default 20), `cursor`
-- @treturn table|nil records (`ddb.model.group_record`), newest first
-- @treturn string|table|nil the cursor of the next (older) page, or nil; the
--   error when the first result is nil (`invalid_uuid`, `invalid_cursor`, `corrupt_item`, ...)
-- @raise on wrong argument types or a bad `limit`
function Repo:list_message_groups(user_uuid, opts)
  check_self(self, "list_message_groups")
  opts = check_opts(opts, "list_message_groups")
  local limit = check_limit(opts.limit, M.DEFAULT_GROUPS_LIMIT, "list_message_groups")
  local ok, err = check_uuid(user_uuid, "user uuid", "list_message_groups")
  if not ok then return nil, err end
  ok, err = check_cursor(opts.cursor, "list_message_groups")
  if not ok then return nil, err end
  return self:_page(model.group_pk(user_uuid), limit, opts.cursor, model.group_record)
end

-- Writes a message row into a group known to exist, after the checks.
function Repo:_put_message(group_uuid, sender, text)
  local message_uuid = ids.uuid()
  local sk = self:_now()
  local last_err
  for _ = 1, M.MAX_TIME_COLLISIONS do
    local row = model.message_row(group_uuid, sk, message_uuid, sender, text)
    -- A retry of this very put (same message_uuid) may overwrite itself; a
    -- different message that has the same time is never overwritten.
    local res, err = self.client:call("PutItem", {
      TableName = self.table, Item = marshal.item(row),
      ConditionExpression = "attribute_not_exists(pk) OR message_uuid = :u",
      ExpressionAttributeValues = { [":u"] = S(message_uuid) },
    })
    if res then return model.message_record(row) end
    if not is_ccf(err) then return nil, err end
    last_err = err
    sk = ids.after(sk)
  end
  return fail("time_collision", ("%d messages already have the times tried; try again"):format(
    M.MAX_TIME_COLLISIONS), { cause = last_err })
end

--- Access pattern C: sends a message into an existing group.
-- Writes only the message row (the stream processor moves the group rows).
-- Two messages with the same time are both kept: the second one moves 1 µs
-- later. The sender must be a participant of the group.
-- @tparam string message_group_uuid
-- @tparam table sender `{uuid, handle, display_name}`
-- @tparam string text 1..1024 UTF-8 characters, not only whitespace
-- @treturn table|nil the record written (`ddb.model.message_record`)
-- @treturn table|nil error (`message_*`, `invalid_uuid`, `invalid_user`, `forbidden`, ...)
-- @raise on wrong argument types
function Repo:create_message(message_group_uuid, sender, text)
  check_self(self, "create_message")
  local ok, err = check_user(sender, "sender", "create_message")
  if not ok then return nil, err end
  ok, err = check_uuid(message_group_uuid, "message_group_uuid", "create_message", "message_group_uuid_blank")
  if not ok then return nil, err end
  ok, err = check_text(text, "create_message")
  if not ok then return nil, err end
  ok, err = self:_require_member(message_group_uuid, sender.uuid)
  if not ok then return nil, err end
  return self:_put_message(message_group_uuid, sender, text)
end

-- A group the two users share without a pair row (data written before
-- pair rows existed, e.g. by the bootcamp's seed): its uuid, or false.
function Repo:_legacy_group(sender_uuid, receiver_uuid)
  for page, err in self.client:pages("Query", {
    TableName = self.table, ConsistentRead = true,
    KeyConditionExpression = "pk = :p",
    FilterExpression = "user_uuid = :r",
    ExpressionAttributeValues = { [":p"] = S(model.group_pk(sender_uuid)), [":r"] = S(receiver_uuid) },
  }) do
    if not page then return nil, err end
    for _, item in ipairs(page.Items or {}) do
      local g = item.message_group_uuid and item.message_group_uuid.S
      if ids.is_uuid(g) then return g end
    end
  end
  return false
end

-- Records the pair row of a legacy group; returns the group the pair row
-- names afterwards (ours, or one written concurrently).
function Repo:_backfill_pair(sender_uuid, receiver_uuid, group_uuid)
  local row = model.pair_row(sender_uuid, receiver_uuid, group_uuid, self:_now())
  local res, err = self.client:call("PutItem", {
    TableName = self.table, Item = marshal.item(row), ConditionExpression = "attribute_not_exists(pk)",
  })
  if res then return group_uuid end
  if not is_ccf(err) then return nil, err end
  local pair, perr = self:_get_pair(sender_uuid, receiver_uuid)
  if pair == nil then return nil, perr end
  if not pair then return group_uuid end
  return pair_group(pair)
end

-- The transaction creating a group: pair row, both group rows, first message.
function Repo:_transact_new_group(sender, receiver, text, sk)
  local group_uuid, message_uuid = ids.uuid(), ids.uuid()
  local message = model.message_row(group_uuid, sk, message_uuid, sender, text)
  local rows = {
    model.pair_row(sender.uuid, receiver.uuid, group_uuid, sk),
    model.group_row(sender, receiver, group_uuid, sk, text),
    model.group_row(receiver, sender, group_uuid, sk, text),
    message,
  }
  local items = {}
  for i, row in ipairs(rows) do
    items[i] = { Put = {
      TableName = self.table, Item = marshal.item(row), ConditionExpression = "attribute_not_exists(pk)",
    } }
  end
  -- The token makes the client's automatic retries of this request (same
  -- params) idempotent on DynamoDB; each logical attempt has its own.
  local res, err = self.client:call("TransactWriteItems", {
    TransactItems = items, ClientRequestToken = group_uuid,
  })
  return res, err, group_uuid, model.message_record(message)
end

local function reason_code(err, i)
  local reasons = err.cancellation_reasons
  local r = type(reasons) == "table" and reasons[i]
  return type(r) == "table" and r.Code or nil
end

-- Cancellation reasons that mean "too busy now": another transaction on the
-- same items, or throttling. Worth a pause before starting over.
local CONTENDED = { TransactionConflict = true, ThrottlingError = true, ProvisionedThroughputExceeded = true }

local function contended(err)
  local reasons = err.cancellation_reasons
  for _, r in ipairs(type(reasons) == "table" and reasons or {}) do
    if type(r) == "table" and CONTENDED[r.Code] then return true end
  end
  return false
end

--- Access pattern C: starts a conversation, or continues the one the two
-- users already share.
--
-- When the users share no group, one `TransactWriteItems` writes the pair
-- row, both group rows and the first message, with a `ClientRequestToken`
-- (the new group's uuid) so that a retried request creates one group. When
-- they already share one (a pair row, or a group written before pair rows
-- existed), the message goes into it (`create_message`). If a concurrent
-- call created the group first, the message goes into that one.
-- @tparam table sender `{uuid, handle, display_name}`
-- @tparam table receiver `{uuid, handle, display_name}` (nil or a blank
--   handle: `user_receiver_handle_blank`)
-- @tparam string text
-- @treturn table|nil the record of the message written, with its `message_group_uuid`
-- @treturn table|nil error (`message_*`, `user_receiver_handle_blank`,
--   `invalid_uuid`, `invalid_user`, `invalid_receiver`, ...)
-- @raise on wrong argument types
function Repo:create_message_group(sender, receiver, text)
  check_self(self, "create_message_group")
  local ok, err = check_user(sender, "sender", "create_message_group")
  if not ok then return nil, err end
  if receiver == nil or (type(receiver) == "table" and (receiver.handle == nil or receiver.handle == ""
      or (type(receiver.handle) == "string" and receiver.handle:find("^%s*$")))) then
    return fail("user_receiver_handle_blank", "the receiver's handle is blank")
  end
  ok, err = check_user(receiver, "receiver", "create_message_group")
  if not ok then return nil, err end
  ok, err = check_text(text, "create_message_group")
  if not ok then return nil, err end
  if sender.uuid == receiver.uuid then
    return fail("invalid_receiver", "a conversation needs two different users")
  end

  local last_err, sk
  for attempt = 1, M.MAX_GROUP_ATTEMPTS do
    local pair, perr = self:_get_pair(sender.uuid, receiver.uuid)
    if pair == nil then return nil, perr end
    if pair then
      local group_uuid, gerr = pair_group(pair)
      if not group_uuid then return nil, gerr end
      return self:create_message(group_uuid, sender, text)
    end
    local legacy, lerr = self:_legacy_group(sender.uuid, receiver.uuid)
    if legacy == nil then return nil, lerr end
    if legacy then
      local group_uuid, berr = self:_backfill_pair(sender.uuid, receiver.uuid, legacy)
      if not group_uuid then return nil, berr end
      return self:create_message(group_uuid, sender, text)
    end

    -- a fresh time, and always later than a time that collided before
    local now = self:_now()
    sk = (sk == nil or now > sk) and now or ids.after(sk)
    local res, terr, group_uuid, record = self:_transact_new_group(sender, receiver, text, sk)
    if res then return record end
    if terr.code ~= "TransactionCanceledException" then return nil, terr end
    last_err = terr
    -- Cancelled: did the pair row exist already? Either our own earlier
    -- attempt of this very request succeeded (its response was lost and the
    -- service does not honour the token), or someone created the group
    -- concurrently. Anything else (a conflicting transaction, a group row
    -- of another conversation with the same time) starts over.
    local now_pair, gerr = self:_get_pair(sender.uuid, receiver.uuid)
    if now_pair == nil then return nil, gerr end
    if now_pair and now_pair.group_uuid == group_uuid then return record end
    if not now_pair and reason_code(terr, 1) == "ConditionalCheckFailed" then
      return nil, terr -- the pair row was there and is gone again: do not guess
    end
    if contended(terr) and attempt < M.MAX_GROUP_ATTEMPTS then
      local c = self.client
      self.sleep(retry.backoff_ms(attempt, tonumber(c.retry_base_ms) or 50, tonumber(c.retry_max_backoff_ms) or 20000))
    end
    -- loop: a pair row now found is used at the top
  end
  return nil, last_err
end

return M

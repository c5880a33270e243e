--- The layout of Cruddur's messages table: key formats and the rows the
-- seed and the access patterns write, in one place.
--
-- * Group row, one per participant: `pk = GRP#<owner uuid>`, `sk = <last
--   message time>`, `message_group_uuid`, `message` (last text), and
--   `user_uuid` / `user_display_name` / `user_handle` of the *other*
--   participant. These are the only rows with `message_group_uuid`, so the
--   GSI `message-group-sk-index` holds exactly the group rows.
-- * Message row: `pk = MSG#<group uuid>`, `sk = <created time>`,
--   `message_uuid`, `message`, and the sender's `user_uuid` /
--   `user_display_name` / `user_handle`.
-- * Pair row, one per pair of users who share a group: `pk = PAIR#<uuid>#<uuid>`
--   (the two uuids in sorted order), `sk = PAIR`, `group_uuid`. It makes
--   "do these two already share a group?" one consistent read and lets a
--   transaction refuse a second group for the same pair. It has no
--   `message_group_uuid`, so it stays out of the GSI and the stream rewrite.
--
-- Times are `ddb.ids` timestamps; ids are validated canonical UUIDs before
-- any key is built from them.
-- @module ddb.model
local errors = require("ddb.errors")

local M = {}

--- Default table name.
M.TABLE = "cruddur-messages"
--- The GSI over group rows (hash `message_group_uuid`, range `sk`).
M.GSI = "message-group-sk-index"
--- Longest message, in UTF-8 characters.
M.MAX_MESSAGE_CHARS = 1024

--- True when `name` is a valid DynamoDB table name: 3 to 255 characters of
-- `A-Z a-z 0-9 _ - .` (checked before a name from outside reaches a request).
-- @param name any value
-- @treturn boolean
function M.is_table_name(name)
  return type(name) == "string" and #name >= 3 and #name <= 255 and not name:find("[^A-Za-z0-9_.%-]")
end

--- `true`, or `nil, err` (code `invalid_table_name`) for a string that
-- `is_table_name` refuses.
-- @tparam string name
function M.check_table_name(name)
  if M.is_table_name(name) then return true end
  return errors.fail("invalid_table_name", ("invalid table name %s: a table name is 3 to 255 characters of "
    .. "A-Z, a-z, 0-9, '_', '-' and '.'"):format(errors.quote(name)))
end

--- `GRP#<user uuid>`
function M.group_pk(user_uuid) return "GRP#" .. user_uuid end
--- `MSG#<group uuid>`
function M.message_pk(group_uuid) return "MSG#" .. group_uuid end
--- The pair row's key for two user uuids (order does not matter).
function M.pair_key(a_uuid, b_uuid)
  if b_uuid < a_uuid then a_uuid, b_uuid = b_uuid, a_uuid end
  return { pk = "PAIR#" .. a_uuid .. "#" .. b_uuid, sk = "PAIR" }
end

--- The group row `owner` sees for a conversation with `other`.
-- @tparam table owner user `{uuid, handle, display_name}`
-- @tparam table other user
-- @tparam string group_uuid
-- @tparam string sk time of the last message
-- @tparam string message its text
-- @treturn table plain item (marshal with `ddb.marshal.item`)
function M.group_row(owner, other, group_uuid, sk, message)
  return {
    pk = M.group_pk(owner.uuid), sk = sk, message_group_uuid = group_uuid, message = message,
    user_uuid = other.uuid, user_display_name = other.display_name, user_handle = other.handle,
  }
end

--- A message row.
-- @tparam string group_uuid
-- @tparam string sk created time
-- @tparam string message_uuid
-- @tparam table sender user `{uuid, handle, display_name}`
-- @tparam string message text
-- @treturn table plain item
function M.message_row(group_uuid, sk, message_uuid, sender, message)
  return {
    pk = M.message_pk(group_uuid), sk = sk, message_uuid = message_uuid, message = message,
    user_uuid = sender.uuid, user_display_name = sender.display_name, user_handle = sender.handle,
  }
end

--- The pair row recording that `a` and `b` share `group_uuid`.
function M.pair_row(a_uuid, b_uuid, group_uuid, created_at)
  local key = M.pair_key(a_uuid, b_uuid)
  key.group_uuid = group_uuid
  key.created_at = created_at
  return key
end

--- The record returned for a group row (the bootcamp's field names).
-- @tparam table row plain group row
-- @treturn table `{uuid, message_group_uuid, display_name, handle, user_uuid, message, created_at}`
function M.group_record(row)
  return {
    uuid = row.message_group_uuid, message_group_uuid = row.message_group_uuid,
    display_name = row.user_display_name, handle = row.user_handle, user_uuid = row.user_uuid,
    message = row.message, created_at = row.sk,
  }
end

--- The record returned for a message row.
-- @tparam table row plain message row
-- @treturn table `{uuid, message_group_uuid, display_name, handle, user_uuid, message, created_at}`
function M.message_record(row)
  return {
    uuid = row.message_uuid, message_group_uuid = row.pk:match("^MSG#(.*)$"),
    display_name = row.user_display_name, handle = row.user_handle, user_uuid = row.user_uuid,
    message = row.message, created_at = row.sk,
  }
end

return M

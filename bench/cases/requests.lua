-- The request parameters of the per-call benchmark, in DynamoDB JSON, one
-- per operation. The ddb loop sends these tables; `ddb_loop.lua dump` writes
-- them as JSON for the boto3 loop and as the exact body for the libcurl floor.
local GROUP = "328e8ddd-35d0-4381-81c3-f4fced185aed"
local ORLA = { uuid = "1af65f48-6c6d-489d-b94d-44a152814656", handle = "orlaquill", name = "Orla Quillfeather" }
local BRAM = { uuid = "3bfeb448-2c4d-42f0-82c2-f2dd3acc39af", handle = "bramkettle", name = "Bram Kettleworth" }
local TABLE = "cruddur-messages"
local NOW = "2026-11-26T22:00:46.123456+00:00"
local TEXT = "Newest first, twenty per page, ScanIndexForward false, and a cursor the client passes back."

local function message_row()
  return {
    pk = { S = "MSG#" .. GROUP }, sk = { S = NOW },
    message_uuid = { S = "0b7c3c1e-56a4-4d2e-9c61-3f1e8f5d2a90" },
    message = { S = TEXT },
    user_uuid = { S = ORLA.uuid }, user_display_name = { S = ORLA.name }, user_handle = { S = ORLA.handle },
  }
end

local function group_row(owner, other)
  return {
    pk = { S = "GRP#" .. owner.uuid }, sk = { S = NOW },
    message_group_uuid = { S = GROUP }, message = { S = TEXT },
    user_uuid = { S = other.uuid }, user_display_name = { S = other.name }, user_handle = { S = other.handle },
  }
end

return {
  ListTables = {},
  -- pattern A: the newest 20 messages of a conversation
  Query = {
    TableName = TABLE,
    KeyConditionExpression = "pk = :pk",
    ExpressionAttributeValues = { [":pk"] = { S = "MSG#" .. GROUP } },
    ScanIndexForward = false,
    Limit = 20,
  },
  -- pattern C: one message row
  PutItem = {
    TableName = TABLE,
    Item = message_row(),
    ConditionExpression = "attribute_not_exists(pk)",
  },
  -- a new conversation: both group rows and the first message, atomically
  TransactWriteItems = {
    TransactItems = {
      { Put = { TableName = TABLE, Item = group_row(ORLA, BRAM), ConditionExpression = "attribute_not_exists(pk)" } },
      { Put = { TableName = TABLE, Item = group_row(BRAM, ORLA), ConditionExpression = "attribute_not_exists(pk)" } },
      { Put = { TableName = TABLE, Item = message_row(), ConditionExpression = "attribute_not_exists(pk)" } },
    },
    ClientRequestToken = "bench-5f0e2c7a-9d41-4b8e-a3c6-1e2f3a4b5c6d",
  },
}

#!/usr/bin/env lua5.4
-- A first look at ddb: create a table, write an item, read it back, page
-- through a query, and show what an error looks like.
--   lua5.4 examples/basic.lua [ENDPOINT]     (default: AWS_ENDPOINT_URL or http://localhost:8000)
local root = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/.." -- the checkout, from any directory
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local ddb = require("ddb")

local endpoint = arg[1] or os.getenv("AWS_ENDPOINT_URL") or "http://localhost:8000"
local client = assert(ddb.client({ endpoint = endpoint }))
local name = "ddb-example-" .. os.time()

local function check(res, err)
  if not res then
    io.stderr:write("error: ", tostring(err), "\n")
    os.exit(1)
  end
  return res
end

check(client:call("CreateTable", {
  TableName = name,
  KeySchema = { { AttributeName = "pk", KeyType = "HASH" }, { AttributeName = "sk", KeyType = "RANGE" } },
  AttributeDefinitions = {
    { AttributeName = "pk", AttributeType = "S" }, { AttributeName = "sk", AttributeType = "S" },
  },
  BillingMode = "PAY_PER_REQUEST",
}))
print(("created table %s on %s"):format(name, client.endpoint))

for i = 1, 5 do
  check(client:call("PutItem", { TableName = name, Item = {
    pk = { S = "greeting" }, sk = { S = ("%02d"):format(i) }, text = { S = "hello #" .. i .. " from Lua" },
  } }))
end
local got = check(client:call("GetItem", { TableName = name, ConsistentRead = true,
  Key = { pk = { S = "greeting" }, sk = { S = "03" } } }))
print("GetItem 03 ->", got.Item.text.S)

local n = 0
for page, err in client:pages("Query", { TableName = name, Limit = 2,
  KeyConditionExpression = "pk = :p", ExpressionAttributeValues = { [":p"] = { S = "greeting" } } }) do
  page = check(page, err)
  n = n + 1
  local keys = {}
  for _, item in ipairs(page.Items) do keys[#keys + 1] = item.sk.S end
  print(("Query page %d: %s"):format(n, table.concat(keys, ", ")))
end

local _, err = client:call("GetItem", { TableName = name .. "-missing", Key = { pk = { S = "x" }, sk = { S = "y" } } })
print("an expected error ->", tostring(err))

check(client:call("DeleteTable", { TableName = name }))
print("deleted table " .. name)

-- Table set-up for the seeding benchmark, straight to the server (not through
-- the counting proxy):
--   lua5.4 bench/cases/table.lua create ENDPOINT   the messages table (ddb.schema), ACTIVE
--   lua5.4 bench/cases/table.lua count ENDPOINT    prints the number of items (Scan, COUNT)
local ddb = require("ddb")
local schema = require("ddb.schema")

local mode, endpoint = arg[1], arg[2]
local client = assert(ddb.client{ endpoint = endpoint })
if mode == "create" then
  assert(schema.load(client, { timeout_s = 60 }))
elseif mode == "count" then
  local n = 0
  for page, err in client:pages("Scan", { TableName = "cruddur-messages", Select = "COUNT" }) do
    if not page then error(tostring(err)) end
    n = n + page.Count
  end
  print(n)
else
  error("usage: table.lua create|count ENDPOINT")
end

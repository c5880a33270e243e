--- Creating and dropping Cruddur's messages table.
-- @module ddb.schema
local core = require("ddb.core")
local errors = require("ddb.errors")
local model = require("ddb.model")

local M = {}

local function check_client(client, fname)
  if type(client) ~= "table" or type(client.call) ~= "function" then
    error("schema." .. fname .. ": client expected", 3)
  end
end

local function check_opts(opts, fname)
  if opts ~= nil and type(opts) ~= "table" then error("schema." .. fname .. ": opts must be a table", 3) end
  opts = opts or {}
  local function bad(k, what) error(("schema.%s: opts.%s must be %s"):format(fname, k, what), 4) end
  if opts.table ~= nil and type(opts.table) ~= "string" then bad("table", "a string") end
  if opts.on_demand ~= nil and type(opts.on_demand) ~= "boolean" then bad("on_demand", "a boolean") end
  for _, k in ipairs({ "read_capacity", "write_capacity" }) do
    local v = opts[k]
    if v ~= nil and (math.type(v) ~= "integer" or v < 1) then bad(k, "a positive integer") end
  end
  local t = opts.timeout_s
  if t ~= nil and (type(t) ~= "number" or t ~= t or t <= 0 or t == math.huge) then
    bad("timeout_s", "a positive number")
  end
  return opts
end

--- The CreateTable request for the messages table.
-- @tparam[opt] table opts `table` (name), `on_demand` (PAY_PER_REQUEST instead
--   of provisioned), `read_capacity`, `write_capacity` (default 5 and 5)
-- @treturn table
function M.definition(opts)
  opts = check_opts(opts, "definition")
  local name = opts.table or model.TABLE
  local def = {
    TableName = name,
    AttributeDefinitions = {
      { AttributeName = "pk", AttributeType = "S" },
      { AttributeName = "sk", AttributeType = "S" },
      { AttributeName = "message_group_uuid", AttributeType = "S" },
    },
    KeySchema = { { AttributeName = "pk", KeyType = "HASH" }, { AttributeName = "sk", KeyType = "RANGE" } },
    GlobalSecondaryIndexes = { {
      IndexName = model.GSI,
      KeySchema = {
        { AttributeName = "message_group_uuid", KeyType = "HASH" },
        { AttributeName = "sk", KeyType = "RANGE" },
      },
      Projection = { ProjectionType = "ALL" },
    } },
    StreamSpecification = { StreamEnabled = true, StreamViewType = "NEW_IMAGE" },
  }
  if opts.on_demand then
    def.BillingMode = "PAY_PER_REQUEST"
  else
    local throughput = {
      ReadCapacityUnits = opts.read_capacity or 5, WriteCapacityUnits = opts.write_capacity or 5,
    }
    def.BillingMode = "PROVISIONED"
    def.ProvisionedThroughput = throughput
    def.GlobalSecondaryIndexes[1].ProvisionedThroughput = throughput
  end
  return def
end

local function all_active(t)
  if t.TableStatus ~= "ACTIVE" then return false end
  for _, gsi in ipairs(t.GlobalSecondaryIndexes or {}) do
    if gsi.IndexStatus ~= "ACTIVE" then return false end
  end
  return true
end

--- Waits until the table and all its indexes are ACTIVE.
-- @tparam table client
-- @tparam string name
-- @tparam[opt=120] number timeout_s
-- @treturn table|nil the table description
-- @treturn table|nil error (`Timeout` when it did not become active in time)
function M.wait_active(client, name, timeout_s)
  local deadline = core.monotonic_ms() + (timeout_s or 120) * 1000
  local delay = 50
  while true do
    local res, err = client:call("DescribeTable", { TableName = name })
    if not res then return nil, err end
    if all_active(res.Table) then return res.Table end
    if core.monotonic_ms() >= deadline then
      return errors.fail("Timeout", ("table %s is not ACTIVE after %ds (status %s)"):format(
        name, timeout_s or 120, tostring(res.Table.TableStatus)))
    end
    core.sleep_ms(delay)
    delay = math.min(delay * 2, 2000)
  end
end

--- Creates the table with its GSI and stream, and waits until it and the
-- index are ACTIVE.
-- @tparam table client a `ddb.client`
-- @tparam[opt] table opts as `definition`, plus `timeout_s` (default 120)
-- @treturn table|nil the table description
-- @treturn table|nil error; code `table_exists` (with a clear message) when
--   the table is already there
function M.load(client, opts)
  check_client(client, "load")
  opts = check_opts(opts, "load")
  local def = M.definition(opts)
  local ok, err = model.check_table_name(def.TableName)
  if not ok then return nil, err end
  local res
  res, err = client:call("CreateTable", def)
  if not res then
    if err.code == "ResourceInUseException" then
      return errors.fail("table_exists", ("table %s already exists (drop it first with bin/ddb/drop)"):format(
        def.TableName), { status = err.status, request_id = err.request_id })
    end
    return nil, err
  end
  return M.wait_active(client, def.TableName, opts.timeout_s)
end

--- Deletes the table.
-- @tparam table client
-- @tparam[opt] table opts `table` (name)
-- @treturn table|nil the DeleteTable response
-- @treturn table|nil error; code `table_missing` when there is no such table
function M.drop(client, opts)
  check_client(client, "drop")
  opts = check_opts(opts, "drop")
  local name = opts.table or model.TABLE
  local ok, err = model.check_table_name(name)
  if not ok then return nil, err end
  local res
  res, err = client:call("DeleteTable", { TableName = name })
  if not res and err.code == "ResourceNotFoundException" then
    return errors.fail("table_missing", ("table %s does not exist"):format(name),
      { status = err.status, request_id = err.request_id })
  end
  return res, err
end

return M

-- Where the integration specs find the emulator: scripts/with-moto (run by
-- `make test`) starts moto on a free loopback port and exports
-- DDB_TEST_ENDPOINT. Without it the integration specs fail loudly rather
-- than skip. Also the table helpers the specs share: a fresh table name, a
-- row written, the rows read back (`scan`, `snapshot`).
local marshal = require("ddb.marshal")

local M = {}

--- The emulator's URL, or an error telling how to run the specs.
function M.endpoint()
  local url = os.getenv("DDB_TEST_ENDPOINT")
  if not url or url == "" then
    error("DDB_TEST_ENDPOINT is not set: run the suite with `make test` "
      .. "(or scripts/with-moto scripts/run-specs spec)", 2)
  end
  assert(url:match("^http://127%.0%.0%.1:%d+$") or url:match("^http://localhost:%d+$"),
    "DDB_TEST_ENDPOINT must be a loopback URL, got " .. url)
  return url
end

--- A client on the emulator (extra options merged in).
function M.client(extra)
  local ddb = require("ddb")
  local opts = { endpoint = M.endpoint(), region = "us-east-1" }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(ddb.client(opts))
end

local counter = 0
--- A table name no other spec uses.
function M.table_name(prefix)
  counter = counter + 1
  local sec, usec = require("ddb.core").now()
  return ("%s-%d-%d-%d"):format(prefix or "spec", sec, usec, counter)
end

--- Writes the plain row `row` (marshalled) to the table `name`.
function M.put(client, name, row)
  assert(client:call("PutItem", { TableName = name, Item = marshal.item(row) }))
end

--- Every item of the table `name`, as plain rows in the order Scan gives.
function M.scan(client, name)
  local rows = {}
  for page, err in client:pages("Scan", { TableName = name, ConsistentRead = true }) do
    assert(page, tostring(err))
    for _, item in ipairs(page.Items) do rows[#rows + 1] = marshal.unitem(item) end
  end
  return rows
end

--- Every item of the table `name`, as plain rows in key order: a snapshot
-- to compare.
function M.snapshot(client, name)
  local rows = M.scan(client, name)
  table.sort(rows, function(x, y) return x.pk .. "\0" .. x.sk < y.pk .. "\0" .. y.sk end)
  return rows
end

return M

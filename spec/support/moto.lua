-- Where the integration specs find the emulator: scripts/with-moto (run by
-- `make test`) starts moto on a free loopback port and exports
-- DDB_TEST_ENDPOINT. Without it the integration specs fail loudly rather
-- than skip.
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

return M

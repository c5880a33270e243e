-- ca_file (AWS_CA_BUNDLE, the profile's ca_bundle) is the only trust anchor
-- when given: a server the system's CA directory trusts, but the bundle does
-- not, is refused, as botocore's verify=<bundle> refuses it.
--
-- The system's trust store cannot be changed for a test, so the probe runs in
-- a private user and mount namespace (unshare -rm) where /etc/ssl/certs is a
-- copy that also trusts the test server's self-signed certificate. Without
-- unshare the spec is pending (reported as such, not counted as passed).
local R = require("support.run")
local tls_server = require("spec.support.tls_server")

local can_unshare = os.execute("unshare -rm true >/dev/null 2>&1")
local ns_it = can_unshare and it or pending

-- Prints one line per case: the case, then OK or the error code.
local PROBE = [[
local ddb = require("ddb")
local url, ca = arg[1], arg[2]
for _, case in ipairs({ { "system", nil }, { "ca_file", ca } }) do
  local c = assert(ddb.client({ endpoint = url, region = "us-east-1", access_key_id = "AKIDEXAMPLE",
    secret_access_key = "secret-key-for-tls", ca_file = case[2], max_attempts = 1 }))
  local res, err = c:call("ListTables", {})
  io.write(case[1], " ", res and "OK" or err.code, "\n")
  c:close()
end
local http = require("ddb.core").http_client({ ca_file = ca })
local status = http:request("POST", url .. "/", {}, "{}")
io.write("http_client ", status and "OK" or "refused", "\n")
]]

describe("a client given ca_file", function()
  ns_it("trusts that bundle only, not the system's CA directory besides", function()
    local srv = tls_server.start()
    local dir = R.tmpdir()
    local ok, err = pcall(function()
      -- an unrelated CA: what the client is told to trust
      local ca = dir .. "/other-ca.pem"
      assert(os.execute(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s "
        .. "-out %s -days 2 -subj /CN=other-ca >/dev/null 2>&1"):format(R.quote(dir .. "/other-ca.key"), R.quote(ca))))
      -- the system directory, plus the server's certificate as a trusted CA
      local certs = dir .. "/certs"
      local link = "$(openssl x509 -hash -noout -in " .. R.quote(srv.cert) .. ").0"
      assert(os.execute(("mkdir %s && cp -a /etc/ssl/certs/. %s/ && cp %s %s/ddb-test-server.pem && "
        .. "ln -sf ddb-test-server.pem %s/%s"):format(R.quote(certs), R.quote(certs), R.quote(srv.cert),
        R.quote(certs), R.quote(certs), link)))
      R.write_file(dir .. "/probe.lua", PROBE)
      local root = R.cwd()
      local inner = ("mount --bind %s /etc/ssl/certs && exec env -u AWS_CA_BUNDLE AWS_CONFIG_FILE=/dev/null "
        .. "AWS_SHARED_CREDENTIALS_FILE=/dev/null LUA_PATH=%s LUA_CPATH=%s lua5.4 %s %s %s"):format(
        R.quote(certs), R.quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"),
        R.quote(root .. "/build/?.so;;"), R.quote(dir .. "/probe.lua"), R.quote(srv.url), R.quote(ca))
      local how, code, out, stderr = R.capture("unshare -rm sh -c " .. R.quote(inner) .. " </dev/null")
      assert.equal("exit", how)
      assert.equal(0, code, stderr)
      -- the control: the system directory (the copy) trusts the server ...
      -- ... and the bundle given instead does not: refused, by both clients
      assert.same({ "system OK", "ca_file TransportError", "http_client refused" }, R.whole_lines(out))
    end)
    srv:stop()
    R.rmrf(dir)
    assert(ok, err)
  end)
end)

--- Busted-side controller for spec/support/tls_server.py: an HTTPS server on
-- loopback with a self-signed certificate made for the occasion.
--
--     local tls_server = require("spec.support.tls_server")
--     local srv = tls_server.start()   -- srv.url "https://127.0.0.1:<port>", srv.cert (PEM path)
--     ...
--     srv:stop()
--
-- start() makes a key and a self-signed certificate for 127.0.0.1 with the
-- `openssl` command (an EC P-256 key; CN=127.0.0.1 and the subjectAltName
-- IP:127.0.0.1 that host verification of an address needs) in a fresh temp
-- directory, then runs the server through io.popen(cmd, "w"): it exits when
-- :stop() closes the pipe or when this Lua process dies. Every POST gets
-- 200 {"TableNames":["tls-ok"]}. What it shares with fault_server.lua is in
-- py_server.lua.
local R = require("spec.support.run")
local py = require("spec.support.py_server")

local M = {}

-- Seconds start() waits for the "PORT <n>" line.
local START_TIMEOUT = 5

local Server = {}
Server.__index = Server

--- Stops the server and removes its files. Idempotent.
function Server:stop()
  if not self.pipe then return end
  self.pipe:close()
  self.pipe = nil
  R.rmrf(self.dir)
end

Server.__close = Server.stop
function Server:__gc() pcall(Server.stop, self) end

--- Makes a certificate and starts a server.
-- @return `{ url, port, cert, dir, stop }`
function M.start()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 700 " .. R.quote(dir)), "tls_server: cannot make " .. dir)
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  local ok = os.execute(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
    .. "-keyout %s -out %s -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >%s 2>&1")
    :format(R.quote(key), R.quote(cert), R.quote(dir .. "/openssl.log")))
  if not ok then error("tls_server: openssl failed: " .. (R.read_file(dir .. "/openssl.log") or ""), 2) end
  local out, err = dir .. "/out", dir .. "/err"
  local cmd = ("exec %s %s %s %s >%s 2>%s"):format(R.quote(py.python()), R.quote(py.DIR .. "/tls_server.py"),
    R.quote(cert), R.quote(key), R.quote(out), R.quote(err))
  local self = setmetatable({ pipe = assert(io.popen(cmd, "w")), dir = dir, cert = cert }, Server)
  local port, msg = py.wait_port(out, err, START_TIMEOUT)
  if not port then
    self:stop()
    error("tls_server: no PORT line within 5 s: " .. msg, 2)
  end
  self.port = port
  self.url = "https://127.0.0.1:" .. port
  return self
end

return M

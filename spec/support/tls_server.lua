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
-- 200 {"TableNames":["tls-ok"]}.
local socket = require("socket")

local M = {}

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function abspath(path)
  if path:sub(1, 1) == "/" then return path end
  local p = io.popen("pwd")
  local pwd = p and p:read("*l") or os.getenv("PWD") or "."
  if p then p:close() end
  return pwd .. "/" .. path:gsub("^%./", "")
end

local here = abspath(dirname(debug.getinfo(1, "S").source:gsub("^@", "")))
local repo_root = dirname(dirname(here))

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a") or ""
  f:close()
  return s
end

local function python()
  local venv = repo_root .. "/.venv/bin/python"
  local f = io.open(venv, "rb")
  if f then
    f:close()
    return venv
  end
  return "python3"
end

local Server = {}
Server.__index = Server

--- Stops the server and removes its files. Idempotent.
function Server:stop()
  if not self.pipe then return end
  self.pipe:close()
  self.pipe = nil
  os.execute("rm -rf " .. q(self.dir))
end

Server.__close = Server.stop
function Server:__gc() pcall(Server.stop, self) end

--- Makes a certificate and starts a server.
-- @return `{ url, port, cert, dir, stop }`
function M.start()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 700 " .. q(dir)), "tls_server: cannot make " .. dir)
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  local ok = os.execute(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
    .. "-keyout %s -out %s -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >%s 2>&1")
    :format(q(key), q(cert), q(dir .. "/openssl.log")))
  if not ok then error("tls_server: openssl failed: " .. read_file(dir .. "/openssl.log"), 2) end
  local out, err = dir .. "/out", dir .. "/err"
  local cmd = ("exec %s %s %s %s >%s 2>%s"):format(q(python()), q(here .. "/tls_server.py"), q(cert), q(key),
    q(out), q(err))
  local self = setmetatable({ pipe = assert(io.popen(cmd, "w")), dir = dir, cert = cert }, Server)
  local deadline = socket.gettime() + 5
  while true do
    local port = read_file(out):match("PORT (%d+)\n")
    if port then
      self.port = tonumber(port)
      self.url = "https://127.0.0.1:" .. port
      return self
    end
    if socket.gettime() > deadline then
      local msg = read_file(err)
      self:stop()
      error("tls_server: no PORT line within 5 s: " .. msg, 2)
    end
    socket.sleep(0.02)
  end
end

return M

--- Busted-side controller for spec/support/fault_server.py, a scriptable
-- loopback HTTP/1.1 server for retry/timeout/fault specs.
--
--     local fault_server = require("spec.support.fault_server")
--     local srv = fault_server.start()              -- or start{ upstream = url }
--     srv:script{ { status = 500 }, { action = "reset" } }
--     -- point the client under test at srv.url ...
--     local log = srv:log()                         -- what the client sent
--     srv:stop()
--
-- Require it as "spec.support.fault_server": busted runs specs from the
-- repository root, and Lua's default path entry `./?.lua` (kept by the `;;` in
-- `LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;'` and in the Makefile's
-- LUA_PATH) finds it there, even with no LUA_PATH at all (plain
-- scripts/run-specs). It finds fault_server.py next to itself, so after
-- loading, the cwd no longer matters.
--
-- The server runs as `python fault_server.py` through io.popen(cmd, "w"):
-- its stdin is the pipe, so it exits when :stop() closes the pipe or when
-- this Lua process dies. It uses .venv/bin/python when present, else python3
-- (spec/support/py_server.lua, shared with tls_server.lua).
-- Steps and endpoints are documented in fault_server.py.
--
-- Control calls use luasocket (socket.http) and lua-cjson; they raise a Lua
-- error (with the server's message) when the server rejects a call.
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson")
local R = require("spec.support.run")
local py = require("spec.support.py_server")

local M = {}

-- Seconds start() waits for the "PORT <n>" line.
M.START_TIMEOUT = 5

local script_path = py.DIR .. "/fault_server.py"

local Server = {}
Server.__index = Server

-- One control request; returns the decoded JSON body or raises.
function Server:_call(method, path, payload)
  if not self.pipe then error("fault_server: " .. path .. " on a stopped server", 3) end
  local body = payload
  local chunks = {}
  local ok, code = http.request {
    url = self.url .. path,
    method = method,
    headers = body and { ["content-type"] = "application/json",
                         ["content-length"] = tostring(#body) } or nil,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  }
  local text = table.concat(chunks)
  if not ok then
    error(string.format("fault_server: %s %s failed: %s", method, path, tostring(code)), 3)
  end
  if code ~= 200 then
    local decoded_ok, decoded = pcall(cjson.decode, text)
    local msg = decoded_ok and type(decoded) == "table" and decoded.error or text
    error(string.format("fault_server: %s %s: HTTP %s: %s", method, path, tostring(code), tostring(msg)), 3)
  end
  return cjson.decode(text)
end

--- Replaces the pending script: each following non-control request consumes
-- the next step, in order; then the default applies.
-- @tparam {table,...} steps array of step tables (see fault_server.py)
function Server:script(steps)
  assert(type(steps) == "table", "script(steps): steps must be an array of step tables")
  -- cjson encodes an empty Lua table as an object: send [] explicitly.
  self:_call("POST", "/__script", #steps == 0 and "[]" or cjson.encode(steps))
  return self
end

--- Sets what happens when no script step is pending.
-- @tparam table step one step table
function Server:default(step)
  assert(type(step) == "table", "default(step): step must be a table")
  self:_call("POST", "/__default", cjson.encode(step))
  return self
end

--- The non-control requests received so far, oldest first: an array of
-- `{ method =, path =, headers = { [lowercased name] = value }, body = }`.
function Server:log()
  return self:_call("GET", "/__log")
end

--- Clears the pending script and the log, restores the initial default.
function Server:reset()
  self:_call("POST", "/__reset", "")
  return self
end

--- Stops the server (closes its stdin and waits for it to exit). Idempotent.
-- Anything the server wrote on stderr (tracebacks) is copied to io.stderr.
function Server:stop(quiet)
  if not self.pipe then return end
  local pipe = self.pipe
  self.pipe = nil
  pipe:close()
  local err = R.read_file(self._err) or ""
  if err ~= "" and quiet ~= true then
    io.stderr:write("fault_server stderr:\n", err, "\n")
  end
  os.remove(self._out)
  os.remove(self._err)
end

Server.__close = Server.stop
-- A forgotten server still goes away with the test process (its stdin closes);
-- collecting the object stops it earlier. Never raise from a finalizer.
function Server:__gc() pcall(Server.stop, self) end

--- Starts a server.
-- @tparam[opt] table opts `upstream` (URL for `{action = "forward"}`; also the
-- initial default), `python` (interpreter, default .venv/bin/python or python3),
-- `verbose` (server logs each request on stderr, shown at stop)
-- @return a server object with `url` ("http://127.0.0.1:<port>"), `port`,
-- and the methods script, default, log, reset, stop
function M.start(opts)
  opts = opts or {}
  local out, err = os.tmpname(), os.tmpname()
  local args = { "exec", R.quote(opts.python or py.python()), R.quote(script_path) }
  if opts.upstream then
    args[#args + 1] = "--upstream " .. R.quote(opts.upstream)
  end
  if opts.verbose then args[#args + 1] = "--verbose" end
  args[#args + 1] = ">" .. R.quote(out) .. " 2>" .. R.quote(err)
  local cmd = table.concat(args, " ")
  local pipe = assert(io.popen(cmd, "w"))
  local self = setmetatable({ pipe = pipe, _out = out, _err = err }, Server)

  local port, msg, waited = py.wait_port(out, err, M.START_TIMEOUT, true)
  if not port then
    self:stop(true)
    error(string.format("fault_server: no PORT line from `%s` within %.1fs%s", cmd,
      waited, msg ~= "" and (":\n" .. msg) or ""), 2)
  end
  self.port = port
  self.url = "http://127.0.0.1:" .. port
  return self
end

--- A loopback port nobody listens on (a connection to it is refused).
function M.closed_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

return M

--- What the controllers of the Python servers in this folder
-- (spec/support/fault_server.lua, tls_server.lua) share: where the scripts
-- are, the interpreter, and waiting for a started server's port.
--
-- A controller runs its server as `exec python <script> ... >out 2>err`
-- through io.popen(cmd, "w"): the server's stdin is the pipe, so it exits when
-- the controller closes the pipe or when this Lua process dies. Once it
-- listens, the server writes "PORT <n>" on stdout.
--
-- Require it as "spec.support.py_server" (see fault_server.lua).
local socket = require("socket")
local R = require("spec.support.run")

local M = {}

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function abspath(path)
  if path:sub(1, 1) == "/" then return path end
  return R.cwd() .. "/" .. path:gsub("^%./", "")
end

--- This folder (spec/support), absolute: after loading, the cwd no longer
-- matters.
M.DIR = abspath(dirname(debug.getinfo(1, "S").source:gsub("^@", "")))

--- The repository root, absolute.
M.REPO_ROOT = dirname(dirname(M.DIR))

--- The interpreter: the repository's .venv/bin/python when present, else python3.
function M.python()
  local venv = M.REPO_ROOT .. "/.venv/bin/python"
  local f = io.open(venv, "rb")
  if not f then return "python3" end
  f:close()
  return venv
end

--- Waits for the "PORT <n>" line a started server writes to the file `out`.
-- Returns the port (a number); or, after `timeout` seconds (or, with
-- `fail_fast`, half a second after the server wrote anything to the file
-- `err`, which it does before PORT only when it is failing), nil, what the
-- server wrote to `err` and the seconds waited.
function M.wait_port(out, err, timeout, fail_fast)
  local start = socket.gettime()
  local deadline = start + timeout
  local err_seen_at
  while true do
    local port = (R.read_file(out) or ""):match("PORT (%d+)\n")
    if port then return tonumber(port) end
    local now = socket.gettime()
    if fail_fast and not err_seen_at and (R.read_file(err) or "") ~= "" then err_seen_at = now end
    if now > deadline or (err_seen_at and now - err_seen_at > 0.5) then
      return nil, R.read_file(err) or "", now - start
    end
    socket.sleep(0.02)
  end
end

return M

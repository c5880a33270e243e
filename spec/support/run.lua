-- Runs a bin/ddb script as a subprocess, the way a developer runs it from a
-- checkout: no LUA_PATH (its bootstrap must find the checkout), and no
-- endpoint, table or users file from the environment unless given.
local M = {}

--- The environment prefix: the variables a script would otherwise pick up.
M.CLEAN_ENV = "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u AWS_ENDPOINT_URL"
  .. " -u AWS_ENDPOINT_URL_DYNAMODB -u DDB_TABLE -u DDB_USERS_FILE -u AWS_PROFILE"

--- Exit code `timeout(1)` gives a run it had to stop.
M.TIMED_OUT = 124

--- `s` quoted for sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  os.remove(path)
  return s
end

--- Runs `script` (a path relative to the repository root, e.g.
-- `bin/ddb/scan`) with `args`; returns its exit code, stdout and stderr.
-- opts: `env` (list of "NAME=value"), `stdin` (path, default /dev/null),
-- `timeout` (seconds, default 60: a hang ends with `TIMED_OUT`).
function M.script(script, args, opts)
  opts = opts or {}
  local out, err = os.tmpname(), os.tmpname()
  local parts = { "timeout -k 5", tostring(opts.timeout or 60), M.CLEAN_ENV }
  for _, e in ipairs(opts.env or {}) do parts[#parts + 1] = M.quote(e) end
  parts[#parts + 1] = M.quote(script)
  for _, a in ipairs(args or {}) do parts[#parts + 1] = M.quote(a) end
  local cmd = table.concat(parts, " ") .. " <" .. M.quote(opts.stdin or "/dev/null")
    .. " >" .. M.quote(out) .. " 2>" .. M.quote(err)
  local _, how, code = os.execute(cmd)
  local stdout, stderr = slurp(out), slurp(err)
  assert(how == "exit", "killed by signal " .. tostring(code))
  return code, stdout, stderr
end

--- The lines of `s` (each ended by a newline; a last unterminated line counts too).
function M.lines(s)
  local out = {}
  for l in s:gmatch("([^\n]*)\n") do out[#out + 1] = l end
  local tail = s:match("[^\n]+$")
  if tail then out[#out + 1] = tail end
  return out
end

return M

--- bin/ddb/stream as a child process, for the specs that run the script:
-- to completion (`run`), or in the background to be killed with SIGKILL
-- (`start`, then `proc:kill()`, or `proc:kill("INT")` for a Ctrl-C).
--
--     local script = require("support.stream_script")
--     local how, code, out, err = script.run({ "--once", "--json", ... }, { timeout_s = 60 })
--     local proc = script.start({ "--follow", ... }, "/tmp/out")  -- stdout and stderr to the file
--     local how, code = proc:kill()  -- "signal", 9 when it was still running
--
-- The script runs from the repository root (busted's cwd) with a clean
-- environment (support.run's CLEAN_ENV): no LUA_PATH/LUA_CPATH (its bootstrap
-- must find the checkout), no endpoint, table or profile from the environment.
local R = require("support.run")

local M = {}

M.SCRIPT = "bin/ddb/stream"

--- The shell command running the script with `args` (each quoted).
-- @tparam table args
-- @tparam[opt] number timeout_s when given, the command is run under
--   `timeout -s KILL`, so that a hang ends as a kill (exit 137) instead of
--   hanging the spec
function M.command(args, timeout_s)
  local parts = { R.CLEAN_ENV }
  if timeout_s then parts[#parts + 1] = ("timeout -s KILL %d"):format(math.ceil(timeout_s)) end
  parts[#parts + 1] = M.SCRIPT
  for _, a in ipairs(args) do parts[#parts + 1] = R.quote(a) end
  return table.concat(parts, " ")
end

--- Runs the script to its end, stdin from /dev/null.
-- @tparam table args
-- @tparam[opt] table opts `timeout_s` (see `command`)
-- @return how it ended as os.execute gives it (`"exit"` or `"signal"`), its
--   code, its stdout, its stderr
function M.run(args, opts)
  opts = opts or {}
  return R.capture(M.command(args, opts.timeout_s) .. " </dev/null")
end

--- Starts the script in the background, its stdout and stderr to the file
-- `out`. The returned process has `pid` (a string) and `kill([signal])`: sends
-- the signal (a name, default `"KILL"`), then waits for it; returns how it
-- ended and its code (`"signal", 9` when SIGKILL found it running, `"exit",
-- n` when it exited, by itself or handling the signal). Calling `kill` again
-- returns the same.
-- @tparam table args
-- @tparam string out
-- @treturn table the process
function M.start(args, out)
  -- `exec` at both levels: the pid echoed is the child of this process, and
  -- the script (env, then lua) runs as that very pid.
  local inner = "echo $$; exec " .. M.command(args) .. " </dev/null >" .. R.quote(out) .. " 2>&1"
  local p = assert(io.popen("exec sh -c " .. R.quote(inner), "r"))
  local line = p:read("l")
  local pid = line and line:match("^(%d+)$")
  if not pid then
    p:close()
    error("stream_script.start: no pid from the shell (got " .. tostring(line) .. ")", 2)
  end
  local proc = { pid = pid }
  function proc.kill(_, signal)
    if not proc.how then
      assert(signal == nil or tostring(signal):match("^%u+$"), "kill: a signal name like INT")
      os.execute("kill -" .. (signal or "KILL") .. " " .. pid .. " 2>/dev/null")
      local _, how, code = p:close()
      proc.how, proc.code = how, code
    end
    return proc.how, proc.code
  end
  return proc
end

return M

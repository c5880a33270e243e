-- Subprocesses for the specs, and the files around them: quoting for sh, the
-- repository root, reading and writing files, temporary directories, running
-- a command line with its stdout and stderr captured, and running a script
-- the way a developer runs it from a checkout: no LUA_PATH (its bootstrap must
-- find the checkout), and no endpoint, table or users file from the
-- environment unless given.
--
-- Require it as "support.run" from a spec; the server controllers
-- (fault_server, tls_server, py_server) require it as "spec.support.run", which
-- Lua's default `./?.lua` finds from the repository root with no LUA_PATH.
local M = {}

--- The `env` prefix that drops the module paths of this run (a script must
-- find the checkout by itself) and keeps everything else.
M.NO_LUA_PATH = "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4"

--- The environment prefix: the variables a script would otherwise pick up.
M.CLEAN_ENV = M.NO_LUA_PATH .. " -u AWS_ENDPOINT_URL"
  .. " -u AWS_ENDPOINT_URL_DYNAMODB -u DDB_TABLE -u DDB_USERS_FILE -u AWS_PROFILE"

--- Exit code `timeout(1)` gives a run it had to stop.
M.TIMED_OUT = 124

--- `s` quoted for sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The current directory (busted's: the repository root), absolute.
function M.cwd()
  local p = assert(io.popen("pwd"))
  local dir = p:read("l")
  p:close()
  return dir
end

--- The contents of the file at `path`, or nil when it cannot be opened.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- Writes `text` to the file at `path` (replacing it); returns `path`.
function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
  return path
end

--- A new empty directory (the name os.tmpname reserved); remove it with `rmrf`.
function M.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir " .. M.quote(p)))
  return p
end

--- Removes `path` (a temporary one, below /tmp as os.tmpname makes them) and
-- everything below it.
function M.rmrf(path)
  assert(path:match("^/tmp/"), "rmrf: not a temporary path: " .. path)
  os.execute("rm -rf " .. M.quote(path))
end

--- The names in the directory `path` (hidden ones too), in the order `ls` gives.
function M.ls(path)
  local p = assert(io.popen("ls -A " .. M.quote(path)))
  local names = {}
  for l in p:lines() do names[#names + 1] = l end
  p:close()
  return names
end

local function slurp(path)
  local s = assert(M.read_file(path))
  os.remove(path)
  return s
end

--- Runs the sh command line `cmd` (its stdin is the caller's to redirect)
-- with stdout and stderr to temporary files; returns how it ended as
-- os.execute gives it (`"exit"` or `"signal"`), its code, its stdout and its
-- stderr.
function M.capture(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local _, how, code = os.execute(cmd .. " >" .. M.quote(out) .. " 2>" .. M.quote(err))
  return how, code, slurp(out), slurp(err)
end

--- The command line running `script` (a path, relative to the repository
-- root unless `cd` is given, or a command on PATH) with `args`, each quoted.
-- opts: `env` (list of "NAME=value"), `stdin` (path, default /dev/null),
-- `timeout` (seconds, default 60: a hang ends with `TIMED_OUT`; false: none),
-- `clean` (the `env` command the variables go to, default `CLEAN_ENV`; e.g.
-- `NO_LUA_PATH`, or "env -i" for nothing but `env`), `cd` (a directory to
-- run it from).
function M.command(script, args, opts)
  opts = opts or {}
  local parts = {}
  if opts.cd then parts[#parts + 1] = "cd " .. M.quote(opts.cd) .. " &&" end
  if opts.timeout ~= false then parts[#parts + 1] = "timeout -k 5 " .. tostring(opts.timeout or 60) end
  parts[#parts + 1] = opts.clean or M.CLEAN_ENV
  for _, e in ipairs(opts.env or {}) do parts[#parts + 1] = M.quote(e) end
  parts[#parts + 1] = M.quote(script)
  for _, a in ipairs(args or {}) do parts[#parts + 1] = M.quote(a) end
  return table.concat(parts, " ") .. " <" .. M.quote(opts.stdin or "/dev/null")
end

--- Runs `script` (e.g. `bin/ddb/scan`) with `args` and the options of
-- `command`; returns its exit code, stdout and stderr (an error when it was
-- killed by a signal).
function M.script(script, args, opts)
  local how, code, stdout, stderr = M.capture(M.command(script, args, opts))
  assert(how == "exit", "killed by signal " .. tostring(code))
  return code, stdout, stderr
end

--- The lines of `s` ended by a newline (a last unterminated line is left out).
function M.whole_lines(s)
  local out = {}
  for l in s:gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

--- The lines of `s` (each ended by a newline; a last unterminated line counts too).
function M.lines(s)
  local out = M.whole_lines(s)
  local tail = s:match("[^\n]+$")
  if tail then out[#out + 1] = tail end
  return out
end

return M

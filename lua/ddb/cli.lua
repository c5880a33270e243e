--- What the `bin/ddb` scripts share: arguments, the client, users, output
-- and failing with one clear line.
--
-- Every script takes: an optional first argument `prod` (target AWS instead
-- of the local server), `--endpoint URL`, `--region REGION`, `--table NAME`,
-- `--users FILE`, `--json`, `--help`. Without `prod` or `--endpoint` the
-- scripts target the endpoint the environment or the profile configures
-- (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`, the profile's
-- `endpoint_url`: see `ddb.config`), else the local server
-- `http://localhost:8000`; never AWS.
-- @module ddb.cli
local ddb = require("ddb")
local core = require("ddb.core")
local errors = require("ddb.errors")
local model = require("ddb.model")

local M = {}

--- The default table name (`DDB_TABLE` or `cruddur-messages`).
M.DEFAULT_TABLE = "cruddur-messages"
--- The local server the scripts target by default.
M.LOCAL_ENDPOINT = "http://localhost:8000"

local COMMON = {
  endpoint = "string", region = "string", table = "string", users = "string",
  json = "boolean", help = "boolean",
}

local function script_name()
  return ((arg and arg[0]) or "ddb"):match("([^/]+)$")
end

local one_line = errors.one_line

--- Prints `name: message` on stderr and exits with `code` (default 1).
-- `err` may be an error value (its `tostring` is used, plus a hint for
-- common causes) or a string.
function M.fail(err, code)
  local msg = tostring(err)
  if type(err) == "table" then
    if err.code == "ResourceNotFoundException" then
      msg = msg .. " (does the table exist? run bin/ddb/schema-load)"
    elseif err.code == "TransportError" and err.message:find("onnect") then
      msg = msg .. " (is DynamoDB running there? start it, e.g. `make demo`, or pass --endpoint URL)"
    end
  end
  io.stderr:write(script_name(), ": ", one_line(msg), "\n")
  os.exit(code or 1)
end

--- Parses the script's arguments.
-- @tparam table argv the script's `arg`
-- @tparam table spec `{ usage = "text for --help", flags = { name = "string"|"boolean" },
--   positional = max count (default 0) }`
-- @treturn table the options by name, `prod` (boolean), `args` (positional
--   list), `table` (resolved name), `usage`
function M.parse(argv, spec)
  local flags = {}
  for k, v in pairs(COMMON) do flags[k] = v end
  for k, v in pairs(spec.flags or {}) do flags[k] = v end
  local o = { args = {}, usage = spec.usage }
  local i = 1
  if argv[1] == "prod" then
    o.prod = true
    i = 2
  end
  local function usage_error(msg)
    io.stderr:write(script_name(), ": ", one_line(msg), " (see --help)\n")
    os.exit(2)
  end
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if a == "--" then
      for j = i + 1, #argv do o.args[#o.args + 1] = argv[j] end
      break
    elseif name then
      local key = name:gsub("%-", "_")
      local kind = flags[key]
      if not kind then usage_error("unknown option --" .. name) end
      if kind == "boolean" then
        if inline then usage_error("--" .. name .. " takes no value") end
        o[key] = true
      else
        local v = inline
        if not v then
          i = i + 1
          v = argv[i]
          if v == nil then usage_error("--" .. name .. " needs a value") end
        end
        o[key] = v
      end
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      usage_error("unknown option " .. a)
    else
      o.args[#o.args + 1] = a
    end
    i = i + 1
  end
  if o.help then
    local usage, name = spec.usage, script_name()
    if name:sub(1, 4) == "ddb-" then -- installed by the rock: its own name, not the checkout's path
      usage = usage:gsub("^([Uu]sage: )%S+", function(head) return head .. name end)
    end
    io.stdout:write(usage, "\n")
    M.done()
    os.exit(0)
  end
  if #o.args > (spec.positional or 0) then
    usage_error("unexpected argument " .. o.args[(spec.positional or 0) + 1])
  end
  if o.prod and o.endpoint then usage_error("'prod' and --endpoint exclude each other") end
  o.table = o.table or os.getenv("DDB_TABLE") or M.DEFAULT_TABLE
  if not model.is_table_name(o.table) then
    usage_error(select(2, model.check_table_name(o.table)).message)
  end
  return o
end

--- The client the options ask for; exits with one line when it cannot be made.
-- @tparam table o options from `parse`
function M.client(o)
  local opts = { region = o.region, endpoint = o.endpoint }
  if not o.prod then opts.fallback_endpoint = M.LOCAL_ENDPOINT end
  local ok, client, err = pcall(ddb.client, opts)
  if not ok then M.fail(client, 2) end
  if not client and err.missing == "region" then -- say it with the scripts' option
    M.fail("no AWS region: pass --region REGION or set AWS_REGION (or add region to your AWS profile)")
  end
  if not client then M.fail(err) end
  return client
end

--- Loads the users fixture (`--users`, `DDB_USERS_FILE`, or the bundled
-- `ddb/fixtures/users.lua`) as a list of `{uuid, handle, display_name}`.
-- @tparam table o options from `parse`
function M.users(o)
  local path = o.users or os.getenv("DDB_USERS_FILE") or require("ddb.seed").fixture_path("users")
    or "ddb/fixtures/users.lua"
  local users, err = require("ddb.seed").load_data(path)
  if not users then M.fail("cannot read the users file: " .. err.message .. " (pass --users FILE)") end
  for i, u in ipairs(users) do
    if type(u) ~= "table" or type(u.uuid) ~= "string" or type(u.handle) ~= "string"
      or type(u.display_name) ~= "string" then
      M.fail(("the users file %s must return a list of {uuid, handle, display_name} (strings); user %d is not")
        :format(path, i))
    end
  end
  return users
end

--- Finds a user by handle; exits with one line when there is none.
function M.find_user(users, handle, flag)
  if handle == nil or handle == "" then M.fail("--" .. (flag or "user") .. " HANDLE is required", 2) end
  for _, u in ipairs(users) do
    if u.handle == handle then return u end
  end
  M.fail(("no user with handle %s in the users file"):format(errors.quote(handle)))
end

local function text(v)
  if type(v) == "string" then return v end
  if v == nil then return "" end
  return tostring(v)
end

--- The fields the pattern scripts print of a record, as strings whatever a
-- row holds (a row written by another tool may lack one, or hold a number).
-- @tparam table r a `ddb.messages` record
-- @treturn table `{uuid, display_name, handle, message, created_at}`
function M.record(r)
  return { uuid = text(r.uuid), display_name = text(r.display_name), handle = text(r.handle),
           message = text(r.message), created_at = text(r.created_at) }
end

--- Checks that everything the script printed reached its stdout (a full
-- disk, a closed file): flushes it, and on failure exits with one line, like
-- `fail`. Every script calls it last.
function M.done()
  local ok, err = io.stdout:flush()
  if not ok then M.fail("cannot write the output: " .. tostring(err)) end
end

-- Characters a terminal would act on instead of showing: C0 controls but the
-- newline (and tab), DEL, C1 controls, the line and paragraph separators and
-- the bidirectional controls (they reorder what follows).
local INVISIBLE = {
  "\194[\128-\159]",     -- U+0080..U+009F
  "\226\128[\168\169]", -- U+2028, U+2029
  "\226\128[\170-\174]", -- U+202A..U+202E
  "\226\128[\142\143]", -- U+200E, U+200F
  "\226\129[\166-\169]", -- U+2066..U+2069
  "\216\156",             -- U+061C
}

--- `s` safe to show on a terminal: controls (see above) written as escapes
-- (`\r`, `\x1b`, `\u{202e}`), so that text from the table (a message, a
-- name) cannot move the cursor, fake a line or reorder the output. Newlines
-- are kept when `keep_newlines`, else written `\n`. For human output only:
-- `--json` output stays as stored.
-- @tparam string s
-- @tparam[opt] boolean keep_newlines
-- @treturn string
function M.printable(s, keep_newlines)
  s = s:gsub("[%z\1-\8\10-\31\127]", function(c)
    if c == "\n" and keep_newlines then return c end
    if c == "\n" then return "\\n" end
    if c == "\r" then return "\\r" end
    return ("\\x%02x"):format(c:byte())
  end)
  for _, pattern in ipairs(INVISIBLE) do
    s = s:gsub(pattern, function(c) return ("\\u{%x}"):format(utf8.codepoint(c)) end)
  end
  return s
end

--- Writes `v` as JSON on stdout (a table of records is written as an array).
function M.print_json(v)
  io.stdout:write(core.json_encode(v), "\n")
end

--- A JSON array of `list` (so that an empty list prints `[]`).
function M.array(list)
  return core.array(list)
end

local function width(s)
  return utf8.len(s) or #s
end

--- Prints `rows` (records) as an aligned table with a header line.
-- @tparam table rows list of tables
-- @tparam table columns list of `{ key, title }`
function M.print_table(rows, columns)
  local widths = {}
  for c, col in ipairs(columns) do
    widths[c] = width(col[2])
    for _, r in ipairs(rows) do
      widths[c] = math.max(widths[c], width(M.printable(tostring(r[col[1]] or ""))))
    end
  end
  local function line(cells)
    local out = {}
    for c, s in ipairs(cells) do
      out[c] = c < #cells and s .. string.rep(" ", widths[c] - width(s)) or s
    end
    io.stdout:write(table.concat(out, "  "), "\n")
  end
  local head = {}
  for c, col in ipairs(columns) do head[c] = col[2] end
  line(head)
  for _, r in ipairs(rows) do
    local cells = {}
    for c, col in ipairs(columns) do cells[c] = M.printable(tostring(r[col[1]] or "")) end
    line(cells)
  end
end

return M

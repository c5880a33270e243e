--- Seeding the messages table from the fixtures in the repository.
--
--     local seed = require("ddb.seed")
--     local summary, err = seed.run(client, { table = "cruddur-messages", progress = true })
--     -- summary = { messages = 101, groups = 2, pairs = 1, requests = 5, retries = 0, ... }
--
-- `ddb/fixtures/users.lua` returns a list of users `{uuid, handle, display_name}`;
-- `ddb/fixtures/conversation.lua` returns `{ message_group_uuid, participants =
-- { handle, handle }, lines = { { handle, text }, ... } }`. Both are loaded
-- as data: `loadfile(path, "t", {})`, no globals, no bytecode.
--
-- What is written: one message row per line (`model.message_row`), message
-- `i` at `(now - 1 day) + i minutes`; both group rows (`model.group_row`,
-- `sk` = the time of the group's newest message, `message` = its text, the
-- *other* participant's user fields); the pair row (`model.pair_row`). The
-- newest message is the last line, or a later one the application wrote
-- into the group; a group row already at that time or later (moved there by
-- the stream) is left as it is: a group row never moves back.
--
-- Re-seeding replaces instead of duplicating: message uuids are derived
-- from the group uuid and the line number (`seed.message_uuid`), and the
-- rows a previous seed wrote at other times (message rows carrying one of
-- those uuids, and this group's group rows) are deleted in the same batches.
-- Messages written by the application into the group are left alone.
--
-- Two users have one conversation: when the participants already share
-- another group (a pair row naming it, or its group rows), nothing is
-- written and `run` returns `conversation_exists`.
--
-- Writes use BatchWriteItem, 25 requests per call; `UnprocessedItems` are
-- sent again after an exponential backoff with full jitter, for a bounded
-- number of rounds per batch.
-- @module ddb.seed
local core = require("ddb.core")
local errors = require("ddb.errors")
local ids = require("ddb.ids")
local marshal = require("ddb.marshal")
local model = require("ddb.model")
local retry = require("ddb.retry")

local M = {}

--- DynamoDB's item size limit (400 KB, attribute names included).
M.MAX_ITEM_BYTES = 400 * 1024
--- Requests per BatchWriteItem call (DynamoDB's maximum).
M.BATCH_SIZE = 25
--- Default bound on the UnprocessedItems rounds of one batch (retries after the first call).
M.MAX_ROUNDS = 8
--- Default backoff base and cap for UnprocessedItems, in milliseconds.
M.BACKOFF_BASE_MS = 50
M.BACKOFF_MAX_MS = 5000

--- The path of a bundled fixture (`"users"` or `"conversation"`): the file
-- `ddb/fixtures/NAME.lua` found on `package.path`, so the same lookup works
-- from a checkout and from an installed rock.
-- @tparam string name
-- @treturn string|nil the path, nil when not found
function M.fixture_path(name)
  return package.searchpath("ddb.fixtures." .. name, package.path)
end

local function check_opts(opts, fname)
  if opts ~= nil and type(opts) ~= "table" then
    error("seed." .. fname .. ": opts must be a table, got " .. type(opts), 3)
  end
  opts = opts or {}
  for _, k in ipairs({ "users", "conversation", "table" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      error(("seed.%s: opts.%s must be a string, got %s"):format(fname, k, type(opts[k])), 3)
    end
  end
  return opts
end

local function invalid(path, msg)
  return errors.fail("invalid_fixture", ("%s: %s"):format(path, msg), { path = path })
end

-- The first line of a load or run error, its `file:line:` written `file,
-- line N:` (a place in the data file, not a Lua stack position).
local function where(err)
  return (tostring(err):gsub("\n.*", ""):gsub("^(.-):(%d+): ", "%1, line %2: "))
end

--- Most Lua VM instructions a fixture file may take to evaluate: data does
-- not loop, and a file that does is refused instead of hanging the seed.
M.MAX_FIXTURE_STEPS = 10000000

--- Loads a data file (a Lua chunk returning a table, no globals, no
-- bytecode, at most `MAX_FIXTURE_STEPS` instructions), as the fixtures and
-- the scripts' `--users` file are loaded.
-- @tparam string path
-- @treturn table|nil the table the file returns
-- @treturn table|nil error, code `invalid_fixture`, with `path`
function M.load_data(path)
  if type(path) ~= "string" then error("seed.load_data: path must be a string, got " .. type(path), 2) end
  if path:find("\0", 1, true) then return invalid((path:gsub("%z.*", "")), "the path contains a NUL byte") end
  local chunk, err = loadfile(path, "t", {})
  if not chunk then
    return errors.fail("invalid_fixture", "cannot load fixture: " .. where(err), { path = path })
  end
  local co = coroutine.create(chunk)
  debug.sethook(co, function()
    error(("more than %d instructions (a fixture is data, not a program)"):format(M.MAX_FIXTURE_STEPS), 0)
  end, "", M.MAX_FIXTURE_STEPS)
  local ok, v = coroutine.resume(co)
  if not ok then return invalid(path, "error while evaluating: " .. where(v)) end
  if type(v) ~= "table" then return invalid(path, "must return a table, got " .. type(v)) end
  return v
end
local load_data = M.load_data

local function is_text(s)
  return type(s) == "string" and s:find("%S") ~= nil and utf8.len(s) ~= nil
end

local function validate_users(path, users)
  if #users == 0 then return invalid(path, "must return a non-empty list of users") end
  local by_handle, by_uuid = {}, {}
  for i, u in ipairs(users) do
    if type(u) ~= "table" then return invalid(path, ("user %d is not a table"):format(i)) end
    if not ids.is_uuid(u.uuid) then
      return invalid(path, ("user %d: uuid %s is not a canonical lowercase UUID"):format(i, tostring(u.uuid)))
    end
    if type(u.handle) ~= "string" or not u.handle:match("^[%w_%.%-]+$") then
      return invalid(path, ("user %d: handle must be a non-empty word (letters, digits, _ . -)"):format(i))
    end
    if not is_text(u.display_name) then
      return invalid(path, ("user %d (%s): display_name must be non-blank UTF-8 text"):format(i, u.handle))
    end
    if by_handle[u.handle] then return invalid(path, ("duplicate handle %s"):format(u.handle)) end
    if by_uuid[u.uuid] then return invalid(path, ("duplicate uuid %s"):format(u.uuid)) end
    by_handle[u.handle], by_uuid[u.uuid] = u, true
  end
  return by_handle
end

local function validate_conversation(path, conv, by_handle)
  if not ids.is_uuid(conv.message_group_uuid) then
    return invalid(path, "message_group_uuid must be a canonical lowercase UUID")
  end
  local p = conv.participants
  if type(p) ~= "table" or #p ~= 2 or type(p[1]) ~= "string" or type(p[2]) ~= "string" or p[1] == p[2] then
    return invalid(path, "participants must be a list of two different handles")
  end
  local members = {}
  for i = 1, 2 do
    local u = by_handle[p[i]]
    if not u then return invalid(path, ("participant %s is not in the users fixture"):format(p[i])) end
    members[i], members[p[i]] = u, u
  end
  if type(conv.lines) ~= "table" or #conv.lines == 0 then
    return invalid(path, "lines must be a non-empty list")
  end
  for i, line in ipairs(conv.lines) do
    if type(line) ~= "table" then return invalid(path, ("line %d is not a table"):format(i)) end
    if not members[line.handle] then
      return invalid(path, ("line %d: handle %s is not a participant"):format(i, tostring(line.handle)))
    end
    if not is_text(line.text) then
      return invalid(path, ("line %d: text must be non-blank UTF-8 text"):format(i))
    end
    if utf8.len(line.text) > model.MAX_MESSAGE_CHARS then
      return invalid(path, ("line %d: longer than %d characters"):format(i, model.MAX_MESSAGE_CHARS))
    end
  end
  return { members[1], members[2] }
end

-- The fixtures table from validated users and conversation.
local function fixtures_of(users, by_handle, participants, conv)
  local lines = {}
  for i, line in ipairs(conv.lines) do
    lines[i] = { handle = line.handle, text = line.text, user = by_handle[line.handle] }
  end
  return {
    users = users, by_handle = by_handle, participants = participants,
    message_group_uuid = conv.message_group_uuid, lines = lines,
  }
end

--- Loads and validates the fixtures.
-- @tparam[opt] table opts `users` (path, default `fixture_path("users")`),
--   `conversation` (path, default `fixture_path("conversation")`)
-- @treturn table|nil `{ users = list, by_handle = map, participants = { user, user },
--   message_group_uuid = uuid, lines = { { handle, text, user }, ... } }`
-- @treturn table|nil error, code `invalid_fixture` (a file that cannot be
--   read or evaluated, a bad uuid, a missing handle, a blank line, ...), with `path`
-- @raise when `opts` or one of its fields has the wrong type
function M.load_fixtures(opts)
  opts = check_opts(opts, "load_fixtures")
  local users_path = opts.users or M.fixture_path("users") or "ddb/fixtures/users.lua"
  local conv_path = opts.conversation or M.fixture_path("conversation") or "ddb/fixtures/conversation.lua"
  local users, err = load_data(users_path)
  if not users then return nil, err end
  local by_handle
  by_handle, err = validate_users(users_path, users)
  if not by_handle then return nil, err end
  local conv
  conv, err = load_data(conv_path)
  if not conv then return nil, err end
  local participants
  participants, err = validate_conversation(conv_path, conv, by_handle)
  if not participants then return nil, err end
  return fixtures_of(users, by_handle, participants, conv)
end

-- Fixtures handed to `run` (opts.fixtures) are checked as the files are, and
-- the rows are built from what passed (the users of `users`), never from
-- the caller's other fields: returns the fixtures to use, or nil, err.
local function check_fixtures(fx)
  local place = "opts.fixtures"
  if type(fx.users) ~= "table" then return invalid(place, "users must be a list (pass seed.load_fixtures's result)") end
  local by_handle, err = validate_users(place, fx.users)
  if not by_handle then return nil, err end
  local p = type(fx.participants) == "table" and fx.participants or {}
  local handles = {}
  for i = 1, 2 do handles[i] = type(p[i]) == "table" and p[i].handle or p[i] end
  local conv = { message_group_uuid = fx.message_group_uuid, participants = handles, lines = fx.lines }
  local participants
  participants, err = validate_conversation(place, conv, by_handle)
  if not participants then return nil, err end
  return fixtures_of(fx.users, by_handle, participants, conv)
end

---------------------------------------------------------------------------
-- Deterministic ids: FNV-1a 64 over the text, finished with splitmix64's
-- mixer, twice with different seeds for 128 bits.

local function fnv1a64(s, seed)
  local h = 0xcbf29ce484222325 ~ seed
  for i = 1, #s do h = (h ~ s:byte(i)) * 0x100000001b3 end
  return h
end

local function mix64(h)
  h = (h ~ (h >> 30)) * 0xbf58476d1ce4e5b9
  h = (h ~ (h >> 27)) * 0x94d049bb133111eb
  return h ~ (h >> 31)
end

--- The uuid of the message on line `index` of the group's fixture: a
-- canonical lowercase UUID with version 4 and RFC 4122 variant bits, derived
-- deterministically from `group_uuid` and `index` (not random; not for secrets).
-- @tparam string group_uuid
-- @tparam integer index
-- @treturn string
function M.message_uuid(group_uuid, index)
  if type(group_uuid) ~= "string" then error("seed.message_uuid: group_uuid must be a string", 2) end
  if math.type(index) ~= "integer" then error("seed.message_uuid: index must be an integer", 2) end
  local s = "ddb.seed:" .. group_uuid .. "#" .. index
  local hi = mix64(fnv1a64(s, 0))
  local lo = mix64(fnv1a64(s, 0x2545f4914f6cdd1d) ~ hi)
  hi = (hi & ~0xf000) | 0x4000
  lo = (lo & 0x3fffffffffffffff) | (1 << 63)
  local h = ("%016x%016x"):format(hi, lo)
  return ("%s-%s-%s-%s-%s"):format(h:sub(1, 8), h:sub(9, 12), h:sub(13, 16), h:sub(17, 20), h:sub(21, 32))
end

---------------------------------------------------------------------------
-- Writing.

local function check_client(client)
  if type(client) ~= "table" or type(client.call) ~= "function" or type(client.pages) ~= "function" then
    error("seed.run: client expected (from ddb.client)", 3)
  end
end

local function count_requests(map)
  local n = 0
  if type(map) == "table" then
    for _, list in pairs(map) do
      if type(list) == "table" then n = n + #list end
    end
  end
  return n
end

-- A progress line on `out` (io.stderr or anything with :write).
local function progress_reporter(out, total)
  if not out then return function() end, function() end end
  local done = 0
  local function show(n)
    done = done + n
    out:write(("\rseeding %d/%d items"):format(done, total))
    if out.flush then out:flush() end
  end
  local function finish() out:write("\n") end
  return show, finish
end

-- Sends one batch, then its UnprocessedItems until none are left or the
-- rounds run out.
local function write_batch(client, name, requests, st)
  local pending = { [name] = requests }
  local sent = #requests
  local round = 0
  while true do
    st.requests = st.requests + 1
    local res, err = client:call("BatchWriteItem", { RequestItems = pending })
    if not res then return nil, err end
    local un = res.UnprocessedItems
    local left = count_requests(un)
    st.show(sent - left)
    if left == 0 then return true end
    round = round + 1
    if round > st.max_rounds then
      return errors.fail("unprocessed_items", ("%d of %d items still unprocessed after %d retries"):format(
        left, #requests, st.max_rounds), { unprocessed = left })
    end
    st.retries = st.retries + 1
    core.sleep_ms(retry.backoff_ms(round, st.base_ms, st.max_ms))
    pending, sent = un, left
  end
end

-- The pair row of `a` and `b` (a consistent read): its plain item, or false.
local function get_pair(client, name, a, b)
  local res, err = client:call("GetItem", {
    TableName = name, ConsistentRead = true, Key = marshal.item(model.pair_key(a.uuid, b.uuid)),
  })
  if not res then return nil, err end
  return res.Item and marshal.unitem(res.Item) or false
end

-- What the table holds of the fixture's conversation: `seeded`, the keys of
-- the message rows carrying a seeded uuid; `newest`, the sk of the newest
-- other message row (the application's), or nil; `groups[user uuid]`, the
-- keys of that participant's group rows of the group, oldest first;
-- `other`, a group the two participants share besides this one (group rows
-- written before pair rows existed), or nil.
local function read_existing(client, name, fx)
  local group = fx.message_group_uuid
  local seeded = {}
  for i = 1, #fx.lines do seeded[M.message_uuid(group, i)] = true end
  local found = { seeded = {}, groups = {} }
  for page, err in client:pages("Query", {
    TableName = name, ConsistentRead = true, KeyConditionExpression = "pk = :pk",
    ProjectionExpression = "pk, sk, message_uuid",
    ExpressionAttributeValues = { [":pk"] = { S = model.message_pk(group) } },
  }) do
    if not page then return nil, err end
    for _, item in ipairs(page.Items or {}) do
      local key = { pk = item.pk.S, sk = item.sk.S }
      if item.message_uuid ~= nil and seeded[item.message_uuid.S] then
        found.seeded[#found.seeded + 1] = key
      elseif ids.is_timestamp(key.sk) then
        found.newest = key.sk -- the query is in sk order
      end
    end
  end
  local p = fx.participants
  for i, u in ipairs(p) do
    local rows = {}
    found.groups[u.uuid] = rows
    for page, err in client:pages("Query", {
      TableName = name, ConsistentRead = true, KeyConditionExpression = "pk = :pk",
      FilterExpression = "message_group_uuid = :g OR user_uuid = :o",
      ProjectionExpression = "pk, sk, message_group_uuid",
      ExpressionAttributeValues = { [":pk"] = { S = model.group_pk(u.uuid) }, [":g"] = { S = group },
        [":o"] = { S = p[3 - i].uuid } },
    }) do
      if not page then return nil, err end
      for _, item in ipairs(page.Items or {}) do
        local g = item.message_group_uuid and item.message_group_uuid.S
        if g == group then
          rows[#rows + 1] = { pk = item.pk.S, sk = item.sk.S }
        else
          found.other = found.other or g
        end
      end
    end
  end
  return found
end

-- The text of the message row at (`pk`, `sk`), or false.
local function message_text(client, name, pk, sk)
  local res, err = client:call("GetItem", {
    TableName = name, ConsistentRead = true, Key = { pk = { S = pk }, sk = { S = sk } },
  })
  if not res then return nil, err end
  local text = res.Item and res.Item.message and res.Item.message.S
  return type(text) == "string" and text or false
end

-- True for an object `progress` can write to (a table or userdata with a write method).
local function has_write(v)
  local t = type(v)
  if t ~= "table" and t ~= "userdata" then return false end
  local ok, write = pcall(function() return v.write end)
  return ok and type(write) == "function"
end

local function positive_integer(v, what, default)
  if v == nil then return default end
  if math.type(v) ~= "integer" or v < 0 then
    error(("seed.run: opts.%s must be a non-negative integer"):format(what), 3)
  end
  return v
end

--- Seeds the table: every message row, both group rows, the pair row.
-- @tparam table client a `ddb.client`
-- @tparam[opt] table opts
--   `table` (name, default `cruddur-messages`);
--   `users`, `conversation` (fixture paths, as `load_fixtures`), or
--   `fixtures` (the result of `load_fixtures`);
--   `progress` (true: an updating `seeding n/N items` line on stderr, ended
--   by a newline; or any object with a `write` method to write it to);
--   `now` (seconds since the epoch, default the current time; microseconds are
--   taken from the clock unless `now` is given);
--   `max_rounds` (UnprocessedItems retries per batch, default 8),
--   `backoff_base_ms` (default 50), `backoff_max_ms` (default 5000)
-- @treturn table|nil `{ messages = n, groups = 2, pairs = 1, requests = BatchWriteItem calls,
--   retries = UnprocessedItems retries, removed = stale rows of an earlier seed deleted,
--   table = name, message_group_uuid = uuid }`
-- @treturn table|nil error: `invalid_fixture`, `conversation_exists` (the
--   participants share another group, its uuid in `message_group_uuid`;
--   nothing written), `unprocessed_items` (after the bounded retries; nothing
--   is rolled back), or a client error
-- @raise when `client` is not a client or an option has the wrong type
function M.run(client, opts)
  check_client(client)
  opts = check_opts(opts, "run")
  if opts.fixtures ~= nil and type(opts.fixtures) ~= "table" then
    error("seed.run: opts.fixtures must be a table (from seed.load_fixtures)", 2)
  end
  local progress = opts.progress
  if progress ~= nil and type(progress) ~= "boolean" and not has_write(progress) then
    error("seed.run: opts.progress must be a boolean or an object with a write method", 2)
  end
  local name = opts.table or model.TABLE
  local st = {
    requests = 0, retries = 0,
    max_rounds = positive_integer(opts.max_rounds, "max_rounds", M.MAX_ROUNDS),
    base_ms = positive_integer(opts.backoff_base_ms, "backoff_base_ms", M.BACKOFF_BASE_MS),
    max_ms = positive_integer(opts.backoff_max_ms, "backoff_max_ms", M.BACKOFF_MAX_MS),
  }
  local ok, err = model.check_table_name(name)
  if not ok then return nil, err end
  local fx = opts.fixtures
  if fx then
    fx, err = check_fixtures(fx)
  else
    fx, err = M.load_fixtures({ users = opts.users, conversation = opts.conversation })
  end
  if not fx then return nil, err end

  local sec, usec
  if opts.now ~= nil then
    if math.type(opts.now) ~= "integer" then error("seed.run: opts.now must be an integer", 2) end
    sec, usec = opts.now, 0
  else
    sec, usec = core.now()
  end
  local base = sec - 86400
  local group = fx.message_group_uuid
  local rows = {}
  local last_time, last_text, first_time
  for i, line in ipairs(fx.lines) do
    local t = ids.timestamp(base + i * 60, usec)
    first_time = first_time or t
    last_time, last_text = t, line.text
    rows[#rows + 1] = model.message_row(group, t, M.message_uuid(group, i), line.user, line.text)
  end
  local a, b = fx.participants[1], fx.participants[2]

  -- One group per pair: a conversation the two already share is not doubled.
  local pair
  pair, err = get_pair(client, name, a, b)
  if pair == nil then return nil, err end
  local found
  found, err = read_existing(client, name, fx)
  if not found then return nil, err end
  local shared = pair and pair.group_uuid ~= group and tostring(pair.group_uuid) or found.other
  if shared then
    return errors.fail("conversation_exists", ("%s and %s already share the conversation %s: seeding would give "
      .. "them a second one (%s); seed another table, or drop this one first"):format(a.handle, b.handle,
      errors.quote(shared), group), { message_group_uuid = shared })
  end

  -- The group rows show the newest message of the group, the application's
  -- included; a group row already at that time or later (moved there by the
  -- stream, or by an earlier seed with a later clock) is left as it is.
  local at, text = last_time, last_text
  if found.newest and found.newest > last_time then
    local t
    t, err = message_text(client, name, model.message_pk(group), found.newest)
    if t == nil then return nil, err end
    if t then at, text = found.newest, t end
  end
  local keep = {}
  for _, u in ipairs({ { a, b }, { b, a } }) do
    local own = found.groups[u[1].uuid]
    local newest = own[#own]
    if newest and newest.sk > at then
      keep[newest.pk .. "\0" .. newest.sk] = true
    else
      rows[#rows + 1] = model.group_row(u[1], u[2], group, at, text)
    end
  end
  rows[#rows + 1] = model.pair_row(a.uuid, b.uuid, group, first_time)

  -- Nothing is written unless every row fits: a batch refused for one row
  -- would leave the batches before it written.
  for _, r in ipairs(rows) do
    local size = 0
    for k, v in pairs(r) do size = size + #k + #v end
    if size > M.MAX_ITEM_BYTES then
      return errors.fail("invalid_fixture", ("the row %s %s would have %d bytes, more than DynamoDB's %d "
        .. "(a handle or display_name too long?)"):format(r.pk, r.sk, size, M.MAX_ITEM_BYTES))
    end
  end

  for _, r in ipairs(rows) do keep[r.pk .. "\0" .. r.sk] = true end
  local stale = {}
  for _, list in ipairs({ found.seeded, found.groups[a.uuid], found.groups[b.uuid] }) do
    for _, k in ipairs(list) do
      if not keep[k.pk .. "\0" .. k.sk] then stale[#stale + 1] = k end
    end
  end

  local requests = {}
  for _, r in ipairs(rows) do requests[#requests + 1] = { PutRequest = { Item = marshal.item(r) } } end
  for _, k in ipairs(stale) do requests[#requests + 1] = { DeleteRequest = { Key = marshal.item(k) } } end

  local out = progress == true and io.stderr or progress or nil
  local finish
  st.show, finish = progress_reporter(out, #requests)
  for first = 1, #requests, M.BATCH_SIZE do
    local batch = table.move(requests, first, math.min(first + M.BATCH_SIZE - 1, #requests), 1, {})
    ok, err = write_batch(client, name, batch, st)
    if not ok then
      finish()
      return nil, err
    end
  end
  finish()
  return {
    messages = #fx.lines, groups = 2, pairs = 1, requests = st.requests, retries = st.retries,
    removed = #stale, table = name, message_group_uuid = group,
  }
end

return M

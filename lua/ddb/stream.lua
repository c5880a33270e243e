--- The stream rewrite (messaging pattern D): when a message row is inserted,
-- every group row of its conversation moves to that message, so both
-- participants see the conversation at the top of their list.
--
-- The work is done by the C engine `ddb.core.rewrite` (src/rewrite.h):
--
-- * every record of the batch is examined, in order; only an `INSERT` of a
--   `MSG#<uuid>` item acts (its `sk` a `ddb.ids` timestamp, its `message`
--   UTF-8 of at most 1024 characters, as `ddb.messages` writes them).
--   `REMOVE`, `MODIFY`, `GRP#`/`PAIR#` items (the rewrite's own writes among
--   them, so there is no feedback loop) and malformed records are counted
--   skips, never errors;
-- * per message group the newest message of the batch wins; the group's rows
--   are read from the GSI (every page; as the GSI is eventually consistent, a
--   participant it shows no row of, the message's sender or the user a row
--   names, is read with a consistent read, and one without a row even then
--   fails the group, `GroupRowMissing`), and each owner's newest row older
--   than that message moves to it in one `TransactWriteItems`: a `Delete` of
--   the old row on condition it is still there as a row of this group (a
--   stale read never deletes another group's row) and a `Put` of its copy
--   (every attribute kept, `sk` and `message` replaced) on condition it is not
--   there yet, for both participants at once, with a deterministic
--   `ClientRequestToken`;
-- * a row never moves to an older or equal `sk`, so replays and out-of-order
--   deliveries change nothing;
-- * a transaction cancelled by a failed condition (or a conflicting
--   transaction) means the rows changed under us: each owner's row is re-read
--   with a consistent read and the decision is taken again, at most
--   `max_rounds` times (then `RewriteContention`). A target `sk` already held
--   by the owner's row of *another* group (an owner has one row per `sk`)
--   moves that owner's row to the first free microsecond after it (at most
--   16 steps, and never past the year 9999, then `SortKeyTaken`); nothing is
--   ever overwritten. Any other failure fails the group, and only that group.
--
-- A failed group is reported with the earliest record it owns, the way a
-- Lambda partial-batch response wants it; redelivering from there is safe
-- because moves are idempotent.
--
-- Three ways to feed it: `process` (records in hand), `handler` (a Lambda
-- event source mapping) and `run` (a local runner reading the table's stream
-- with a checkpoint file; `bin/ddb/stream`).
-- @module ddb.stream
local core = require("ddb.core")
local errors = require("ddb.errors")
local model = require("ddb.model")

local M = {}

--- Default for `opts.max_rounds`: consistent re-reads after a lost race, per group.
M.MAX_ROUNDS = 5

---------------------------------------------------------------------------
-- Shared checks (also for the runner).

local function check_client(client, fname)
  local t = type(client)
  if (t ~= "table" and t ~= "userdata") or type(client.call) ~= "function" then
    error(("stream.%s: client expected (an object with a call method), got %s"):format(fname, t), 3)
  end
end

-- Copies and checks the options core.rewrite understands.
local function rewrite_opts(opts, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(("stream.%s: opts must be a table or nil"):format(fname), 3) end
  local out = {}
  for _, k in ipairs({ "table", "index" }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "string" or v == "") then
      error(("stream.%s: opts.%s must be a non-empty string"):format(fname, k), 3)
    end
    out[k] = v
  end
  local rounds = opts.max_rounds
  if rounds ~= nil and (math.type(rounds) ~= "integer" or rounds < 0 or rounds > 1000) then
    error(("stream.%s: opts.max_rounds must be an integer from 0 to 1000"):format(fname), 3)
  end
  out.max_rounds = rounds
  if opts.inject ~= nil and type(opts.inject) ~= "function" then
    error(("stream.%s: opts.inject must be a function"):format(fname), 3)
  end
  out.inject = opts.inject
  return out
end

-- The engine's own errors (plain {code, message, ...}) become ddb.errors
-- values; the client's errors already are.
local function to_error(e)
  if errors.is(e) or (type(e) == "table" and getmetatable(e) ~= nil) then return e end
  if type(e) ~= "table" then return errors.new("InjectedFailure", tostring(e)) end
  local fields = {}
  for k, v in pairs(e) do
    if k ~= "code" and k ~= "message" then fields[k] = v end
  end
  return errors.new(type(e.code) == "string" and e.code or "InjectedFailure", e.message, fields)
end

---------------------------------------------------------------------------
-- Processing a batch.

--- Applies a batch of stream records.
-- @tparam table client a `ddb.client` (anything with `client:call(op, params)`)
-- @tparam table records stream records as decoded JSON: a Lambda event's
--   `Records` or a `GetRecords` response's `Records`
-- @tparam[opt] table opts `table` (default `"cruddur-messages"`), `index`
--   (default `"message-group-sk-index"`), `max_rounds` (default 5), `inject`
--   (specs only: `inject(stage, group_uuid)` is called at `"after_read"` and
--   `"before_write"`, each round; a truthy result, a string or an error table,
--   fails that group with it)
-- @treturn table the summary: `processed` (records examined), `moved` (group
--   rows moved), `applied` (records whose message moved rows), `skipped`
--   (records that changed nothing: other events, malformed, superseded,
--   replayed, no group rows), `failed` (records whose group failed);
--   `processed == applied + skipped + failed`. `batchItemFailures` is
--   `{ { itemIdentifier = <SequenceNumber, else eventID, else ""> } }` for the
--   earliest record of a failed group, or an empty array (encodes as `[]`);
--   `errors` holds one `ddb.errors` value per failed group (field `group`).
-- @raise when client, records or opts have the wrong type
function M.process(client, records, opts)
  check_client(client, "process")
  if type(records) ~= "table" then
    error("stream.process: records must be an array of stream records, got " .. type(records), 2)
  end
  local summary = core.rewrite(client, records, rewrite_opts(opts, "process"))
  for i, e in ipairs(summary.errors) do summary.errors[i] = to_error(e) end
  return summary
end

---------------------------------------------------------------------------
-- The Lambda handler.

--- Makes the handler's client; called without arguments, once per process
-- (the client is kept across invocations until this function is replaced).
-- Default: `ddb.client()` configured from the environment. Specs replace it.
-- @treturn table|nil a client
-- @treturn table|nil an error
function M.client_factory()
  return require("ddb").client()
end

--- How the handler reads its environment (`DDB_TABLE`); replaceable like
-- `client_factory`. Default `os.getenv`.
M.getenv = os.getenv

--- Where the handler reports each failed group, one line each. Default: stderr.
-- @tparam string line
function M.log(line)
  io.stderr:write(line, "\n")
end

local cache = {} -- factory -> client, kept across invocations

local function handler_client()
  local factory = M.client_factory
  local client = cache.client
  if client and cache.factory == factory then return client end
  local err
  client, err = factory()
  if not client then
    -- a function error: Lambda retries the whole batch
    error("stream.handler: cannot create the DynamoDB client: " .. tostring(err), 0)
  end
  cache.factory, cache.client = factory, client
  return client
end

--- A Lambda-compatible handler for the table's DynamoDB stream (event source
-- mapping with `ReportBatchItemFailures`).
-- The table is `DDB_TABLE` or `"cruddur-messages"`. An event without a
-- `Records` array has nothing to fail.
-- @tparam table event the Lambda event
-- @param[opt] context the Lambda context (unused)
-- @treturn table `{ batchItemFailures = { { itemIdentifier = <SequenceNumber
--   of the earliest record of a failed group> } } }`, or with an empty array
-- @raise when the event is not a table, or when no client can be made
function M.handler(event, context) -- luacheck: no unused args
  if type(event) ~= "table" then
    error("stream.handler: event must be a table, got " .. type(event), 2)
  end
  local records = event.Records
  if type(records) ~= "table" or next(records) == nil then
    return { batchItemFailures = core.array() } -- nothing to do: no client needed
  end
  local name = M.getenv("DDB_TABLE")
  if name == "" then name = nil end
  local summary = M.process(handler_client(), records, { table = name or model.TABLE })
  for _, e in ipairs(summary.errors) do
    M.log(("ddb.stream: group %s failed: %s"):format(tostring(e.group), tostring(e)))
  end
  return { batchItemFailures = summary.batchItemFailures }
end

---------------------------------------------------------------------------
-- The local stream runner.
--
-- `run` reads the table's stream the way the Lambda event source mapping
-- would, and hands each `GetRecords` page to `process`. Its position is a
-- checkpoint file per stream: for every shard, the sequence number of the
-- last record processed and whether the shard is finished (closed and read to
-- its end). The file is replaced atomically after every batch: a temporary
-- file in the same directory, written and synced to disk (fsync), then
-- renamed over the old one, and the directory synced, so that a crash of the
-- machine leaves the old checkpoint or the new one, never an empty file.

--- Default for `opts.batch_size`: records per `GetRecords` call (the `Limit`).
M.BATCH_SIZE = 100
--- Default for `opts.idle_max_ms`: the longest sleep of `follow` between
-- passes that found nothing (the sleep doubles from 50 ms up to it).
M.IDLE_MAX_MS = 1000
--- Default for `opts.batch_attempts`: `process` calls per batch before `run`
-- gives up on a batch whose group keeps failing.
M.BATCH_ATTEMPTS = 5
--- Default for `opts.retry_base_ms`: the sleep before the second attempt at a
-- batch; it doubles for each further attempt (at most 10 s).
M.RETRY_BASE_MS = 100
--- Default for `opts.checkpoint_dir`.
M.CHECKPOINT_DIR = ".ddb-stream"
--- Default for `opts.refresh_ms`: how often `follow` lists the shards again
-- to find new ones (it also does so whenever a shard closes).
M.REFRESH_MS = 60000
--- Expired iterators renewed in a row, per shard, before `run` gives up.
M.MAX_RENEWALS = 3
--- In `once` mode, pages without records in a row after which an open shard
-- counts as drained. (DynamoDB Streams may answer a page without records, with
-- a next iterator, while records lie further on: stopping at the first one
-- would leave every `once` run where the last one started.)
M.ONCE_EMPTY_PAGES = 5

local CHECKPOINT_VERSION = 1
local FOLLOW_BATCHES_PER_PASS = 100 -- in follow mode, a busy shard lets the others have a turn
local IDLE_MIN_MS = 50
local RETRY_MAX_MS = 10000
local START_TYPES = { TRIM_HORIZON = true, LATEST = true }

-- Copies and checks the runner's own options (raises on wrong types).
local function run_opts(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("stream.run: opts must be a table or nil", 3) end
  local function int(k, lo, hi, default)
    local v = opts[k]
    if v == nil then return default end
    if math.type(v) ~= "integer" or v < lo or (hi and v > hi) then
      error(("stream.run: opts.%s must be an integer from %d%s"):format(k, lo,
        hi and (" to " .. hi) or " up"), 4)
    end
    return v
  end
  local o = {
    batch_size = int("batch_size", 1, 1000, M.BATCH_SIZE),
    idle_max_ms = int("idle_max_ms", 0, 3600000, M.IDLE_MAX_MS),
    batch_attempts = int("batch_attempts", 1, 100, M.BATCH_ATTEMPTS),
    retry_base_ms = int("retry_base_ms", 0, 60000, M.RETRY_BASE_MS),
    refresh_ms = int("refresh_ms", 0, nil, M.REFRESH_MS),
  }
  for _, k in ipairs({ "once", "follow" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
      error(("stream.run: opts.%s must be a boolean"):format(k), 3)
    end
  end
  if opts.once and opts.follow then error("stream.run: opts.once and opts.follow exclude each other", 3) end
  o.follow = opts.follow == true
  local start = opts.start
  if start == nil then start = "TRIM_HORIZON" end
  if not START_TYPES[start] then
    error("stream.run: opts.start must be \"TRIM_HORIZON\" or \"LATEST\", got " .. tostring(start), 3)
  end
  o.start = start
  local dir = opts.checkpoint_dir
  if dir == nil then dir = M.CHECKPOINT_DIR end
  if type(dir) ~= "string" or dir == "" or dir:find("\0", 1, true) then
    error("stream.run: opts.checkpoint_dir must be a non-empty string without NUL bytes", 3)
  end
  o.checkpoint_dir = dir
  for _, k in ipairs({ "should_stop", "on_batch" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then
      error(("stream.run: opts.%s must be a function"):format(k), 3)
    end
    o[k] = opts[k]
  end
  return o
end

---------------------------------------------------------------------------
-- The checkpoint file.

-- FNV-1a, 64 bits, as 16 hex digits.
local function fnv1a64(s)
  local h = -3750763034362895579 -- 0xcbf29ce484222325
  for i = 1, #s do
    h = (h ~ s:byte(i)) * 1099511628211
  end
  return ("%016x"):format(h)
end

--- The checkpoint file name for a stream ARN: the ARN with every character
-- other than letters, digits, `.`, `-` and `_` replaced by `_`, plus
-- `.json`; a long ARN is cut and given a hash of the whole ARN, so the name
-- stays under 255 bytes. (The ARN is also stored in the file and checked.)
-- @tparam string arn
-- @treturn string
function M.checkpoint_name(arn)
  if type(arn) ~= "string" or arn == "" then error("stream.checkpoint_name: arn must be a non-empty string", 2) end
  local safe = arn:gsub("[^%w%.%-_]", "_")
  if safe:sub(1, 1) == "." then safe = "_" .. safe:sub(2) end
  if #safe > 200 then safe = safe:sub(1, 183) .. "-" .. fnv1a64(arn) end
  return safe .. ".json"
end

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function io_error(path, what, msg)
  return errors.fail("checkpoint_io", ("cannot %s the checkpoint %s: %s"):format(what, path, tostring(msg)),
    { path = path })
end

-- Creates the directory (and its parents) when it is not there.
local function ensure_dir(dir)
  if os.rename(dir, dir) then return true end
  os.execute("mkdir -p -- " .. sh_quote(dir) .. " 2>/dev/null")
  if os.rename(dir, dir) then return true end
  return errors.fail("checkpoint_io", ("cannot create the checkpoint directory %s"):format(dir), { path = dir })
end

-- Reads a checkpoint: a table shard id -> { seq = string|nil, finished = bool }
-- (empty when there is no file yet), or nil, err (bad_checkpoint, checkpoint_io).
local function read_checkpoint(path, arn)
  local f, oerr, errno = io.open(path, "rb")
  if not f then
    if errno == 2 then return {} end -- ENOENT: a first run
    return io_error(path, "read", oerr)
  end
  local text, rerr = f:read("a")
  f:close()
  local function bad(why)
    return errors.fail("bad_checkpoint", ("checkpoint %s is unusable: %s (move it away to start over)"):format(
      path, why), { path = path })
  end
  if not text then return bad(tostring(rerr)) end
  local doc, jerr = core.json_decode(text)
  if doc == nil then return bad("not JSON (" .. tostring(jerr) .. ")") end
  if type(doc) ~= "table" or getmetatable(doc) == core.array_mt then return bad("not a JSON object") end
  if doc.version ~= CHECKPOINT_VERSION then return bad("unknown version " .. tostring(doc.version)) end
  if doc.stream_arn ~= arn then
    return bad(("it belongs to stream %s, not %s"):format(tostring(doc.stream_arn), arn))
  end
  if type(doc.shards) ~= "table" or getmetatable(doc.shards) == core.array_mt then return bad("no shards object") end
  local shards = {}
  for id, s in pairs(doc.shards) do
    if type(id) ~= "string" or id == "" then return bad("a shard id that is not a string") end
    if type(s) ~= "table" then return bad("shard " .. id .. " is not an object") end
    local seq = s.sequence_number
    if seq ~= nil and (type(seq) ~= "string" or not seq:match("^%d+$") or #seq > 64) then
      return bad("shard " .. id .. " has an invalid sequence_number")
    end
    if s.finished ~= nil and type(s.finished) ~= "boolean" then
      return bad("shard " .. id .. " has an invalid finished flag")
    end
    shards[id] = { seq = seq, finished = s.finished == true }
  end
  return shards
end

-- Replaces the checkpoint file atomically. Only shards still listed by the
-- stream are kept (a trimmed shard's entry goes).
local function write_checkpoint(st)
  local shards = {}
  for id, c in pairs(st.cp) do
    if st.listed[id] then
      shards[id] = { sequence_number = c.seq, finished = c.finished or nil }
    end
  end
  local text = core.json_encode({ version = CHECKPOINT_VERSION, stream_arn = st.arn, table = st.table,
    shards = shards }) .. "\n"
  local path, tmp = st.path, st.tmp
  local f, err = io.open(tmp, "wb")
  if not f then return io_error(tmp, "write", err) end
  local ok, werr = f:write(text)
  if ok then ok, werr = core.fsync(f) end
  local closed, cerr = f:close()
  if not ok or not closed then
    os.remove(tmp)
    return io_error(tmp, "write", werr or cerr)
  end
  local renamed, nerr = os.rename(tmp, path)
  if not renamed then
    os.remove(tmp)
    return io_error(path, "replace", nerr)
  end
  local synced, serr = core.fsync(st.dir)
  if not synced then return io_error(st.dir, "sync the directory of", serr) end
  return true
end

---------------------------------------------------------------------------
-- Shards.

-- Every shard of the stream, in DescribeStream's order, following
-- LastEvaluatedShardId. (By hand rather than with client:pages, so that any
-- object with a call method does, as for process.)
local function list_shards(client, arn)
  local list, seen, req = {}, {}, { StreamArn = arn }
  while true do
    local res, err = client:call("DescribeStream", req)
    if not res then return nil, err end
    local d = res.StreamDescription
    if type(d) ~= "table" then
      return errors.fail("InvalidResponse", "DescribeStream returned no StreamDescription",
        { operation = "DescribeStream" })
    end
    for _, s in ipairs(type(d.Shards) == "table" and d.Shards or {}) do
      local id = type(s) == "table" and s.ShardId
      if type(id) == "string" and id ~= "" and not seen[id] then
        seen[id] = true
        local range = s.SequenceNumberRange
        list[#list + 1] = { id = id, parent = type(s.ParentShardId) == "string" and s.ParentShardId or nil,
          closed = type(range) == "table" and type(range.EndingSequenceNumber) == "string" }
      end
    end
    local last = d.LastEvaluatedShardId
    if type(last) ~= "string" or last == "" then return list end
    if last == req.ExclusiveStartShardId then
      return errors.fail("InvalidResponse", "DescribeStream returned the same LastEvaluatedShardId twice",
        { operation = "DescribeStream" })
    end
    req = { StreamArn = arn, ExclusiveStartShardId = last }
  end
end

-- The shards with every listed parent before its children (otherwise in
-- listing order), and the set of listed ids.
local function order_shards(list)
  local by_id, order, visited = {}, {}, {}
  for _, s in ipairs(list) do by_id[s.id] = s end
  local function visit(s)
    if visited[s.id] then return end
    visited[s.id] = true
    local parent = s.parent and by_id[s.parent]
    if parent then visit(parent) end
    order[#order + 1] = s
  end
  for _, s in ipairs(list) do visit(s) end
  local listed = {}
  for id in pairs(by_id) do listed[id] = true end
  return order, listed
end

local function entry(st, id)
  local c = st.cp[id]
  if not c then
    c = { finished = false }
    st.cp[id] = c
  end
  return c
end

-- A shard may be read once its parent is finished or no longer listed (trimmed).
local function parent_done(st, shard)
  if not shard.parent or not st.listed[shard.parent] then return true end
  local c = st.cp[shard.parent]
  return c ~= nil and c.finished
end

-- GetShardIterator for the shard: after the checkpoint when there is one;
-- else `opts.start` for a shard listed at start-up while the checkpoint was
-- empty, TRIM_HORIZON for any other (a child found later, a renewal), so that
-- nothing is skipped that `start` did not ask to skip. Returns the iterator,
-- false when the shard has nothing more to read, or nil, err.
local function open_iterator(st, shard, live)
  local c = st.cp[shard.id]
  local req = { StreamArn = st.arn, ShardId = shard.id }
  if c and c.seq then
    req.ShardIteratorType, req.SequenceNumber = "AFTER_SEQUENCE_NUMBER", c.seq
  elseif st.fresh and st.initial[shard.id] and not live.opened then
    req.ShardIteratorType = st.o.start
  else
    req.ShardIteratorType = "TRIM_HORIZON"
  end
  local res, err = st.client:call("GetShardIterator", req)
  if not res then return nil, err end
  if not live.opened then
    live.opened = true
    st.summary.shards = st.summary.shards + 1
  end
  local it = res.ShardIterator
  if type(it) ~= "string" or it == "" then return false end -- a closed shard with nothing left
  return it
end

local function seq_of(rec)
  local d = type(rec) == "table" and rec.dynamodb
  local s = type(d) == "table" and d.SequenceNumber
  if type(s) == "string" and s:match("^%d+$") then return s end
  return nil
end

-- The sequence number of the last record of records[1..n] that has one.
local function last_seq(records, n)
  for i = n, 1, -1 do
    local s = seq_of(records[i])
    if s then return s end
  end
  return nil
end

-- The index of the record named by a batchItemFailures itemIdentifier (1
-- when it names none of them: then the whole rest is retried).
local function failed_index(records, id)
  for i, rec in ipairs(records) do
    if seq_of(rec) == id or (type(rec) == "table" and rec.eventID == id and id ~= "") then return i end
  end
  return 1
end

-- Processes one non-empty page; checkpoints after each attempt. Returns true,
-- "stopped" when should_stop asked to stop between attempts, or nil, err.
local function handle_batch(st, shard, records)
  local s, o = st.summary, st.o
  s.batches = s.batches + 1
  s.records = s.records + #records
  local pending = records
  for attempt = 1, o.batch_attempts do
    local r = M.process(st.client, pending, st.ropts)
    s.moved, s.applied = s.moved + r.moved, s.applied + r.applied
    s.skipped, s.failed = s.skipped + r.skipped, s.failed + r.failed
    local failure = r.batchItemFailures[1]
    local k = failure and failed_index(pending, failure.itemIdentifier)
    local seq = last_seq(pending, failure and k - 1 or #pending)
    if seq then
      entry(st, shard.id).seq = seq
      local ok, err = write_checkpoint(st)
      if not ok then return nil, err end
    end
    r.shard, r.attempt, r.checkpoint = shard.id, attempt, seq
    if o.on_batch then o.on_batch(r, shard.id) end
    if not failure then return true end
    if attempt == o.batch_attempts then
      local cause = r.errors[1]
      return errors.fail("batch_failed", ("shard %s: record %s still fails after %d attempt%s: %s"):format(
        shard.id, failure.itemIdentifier, attempt, attempt == 1 and "" or "s", tostring(cause)),
        { shard = shard.id, item = failure.itemIdentifier, cause = cause, errors = r.errors })
    end
    if st.stop() then return true, "stopped" end
    s.retries = s.retries + 1
    pending = table.move(pending, k, #pending, 1, {})
    local delay = math.min(RETRY_MAX_MS, o.retry_base_ms * 2 ^ (attempt - 1))
    if delay > 0 then core.sleep_ms(math.floor(delay)) end
  end
end

-- Reads a shard until its end, a stop, or: following, a page without records
-- or a fair share of pages; in once mode, for a shard the listing shows open,
-- ONCE_EMPTY_PAGES pages without records in a row (a shard the listing shows
-- closed is read to its end). Returns true and "closed" when the shard is
-- finished, true when it was left open, nil, err on a failure.
local function drain(st, shard)
  local live = st.live[shard.id]
  if not live then
    live = {}
    st.live[shard.id] = live
  end
  local renewals, pages, empties = 0, 0, 0
  local function finish()
    live.iterator = nil
    entry(st, shard.id).finished = true
    local ok, err = write_checkpoint(st)
    if not ok then return nil, err end
    return true, "closed"
  end
  while not st.stop() do
    if not live.iterator then
      local it, err = open_iterator(st, shard, live)
      if it == nil then return nil, err end
      if it == false then return finish() end
      live.iterator = it
    end
    local res, err = st.client:call("GetRecords", { ShardIterator = live.iterator, Limit = st.o.batch_size })
    if not res then
      live.iterator = nil
      if err.code ~= "ExpiredIteratorException" or renewals >= M.MAX_RENEWALS then return nil, err end
      renewals = renewals + 1
      st.summary.renewed = st.summary.renewed + 1
    else
      renewals = 0
      local records = type(res.Records) == "table" and res.Records or {}
      local nxt = res.NextShardIterator
      if #records > 0 then
        local ok, why = handle_batch(st, shard, records)
        if not ok then
          live.iterator = nil
          return nil, why
        end
        if why == "stopped" then
          live.iterator = nil -- reopen from the checkpoint, before the failed record
          return true
        end
      end
      if type(nxt) ~= "string" or nxt == "" then return finish() end
      live.iterator = nxt
      pages = pages + 1
      empties = #records == 0 and empties + 1 or 0
      if st.o.follow then
        if #records == 0 or pages >= FOLLOW_BATCHES_PER_PASS then return true end
      elseif empties >= M.ONCE_EMPTY_PAGES and not shard.closed then
        return true
      end
    end
  end
  return true
end

--- Runs the stream processor locally: reads the table's DynamoDB stream and
-- applies every record with `process`, keeping its position in a checkpoint
-- file, so that a restart (after a crash, a kill, a failed batch) resumes
-- where the last run stopped: nothing is lost and nothing already
-- checkpointed is applied again.
--
-- * `DescribeTable` gives the table's latest stream (none: `no_stream`);
--   `DescribeStream` lists its shards (every page). A shard is read only when
--   its parent is finished or no longer listed (trimmed), so the records of a
--   key are applied in order across shard splits.
-- * Each shard is read from just after its checkpointed sequence number;
--   without one, from `opts.start` when the checkpoint is empty (a first run),
--   else from `TRIM_HORIZON` (a shard that appeared since, or a renewal: a
--   replay is harmless, a gap is not).
-- * Each non-empty `GetRecords` page goes to `process` (with `opts`, so
--   `table`, `index`, `max_rounds` and `inject` apply). Then the checkpoint
--   moves to its last record; when the summary names a failed record
--   (`batchItemFailures`), only to the record before it, and the records from
--   the failed one on are processed again after a backoff, at most
--   `opts.batch_attempts` times in all before `run` fails with
--   `batch_failed`: a record is never skipped.
-- * An `ExpiredIteratorException` reopens the shard from the checkpoint (at
--   most `MAX_RENEWALS` times in a row). A shard without a next iterator is
--   closed and read to its end: it is marked finished in the checkpoint.
--
-- The checkpoint file is `opts.checkpoint_dir/<checkpoint_name(arn)>`, JSON:
-- `{ "version": 1, "stream_arn": ..., "table": ..., "shards": { "<shard id>":
-- { "sequence_number": "...", "finished": true } } }`, written to a
-- temporary file in the same directory and renamed over the old one after
-- every batch, so it is always a whole, valid file (a kill at the wrong moment
-- can leave a stray `*.tmp` file, which can be deleted). A crash between
-- `process` and the checkpoint write means that batch is processed again on
-- restart, which is harmless: the rewrite is idempotent (a replayed record
-- moves nothing). For the same reason two runners on one stream are wasteful
-- but safe. `--from latest` (`opts.start = "LATEST"`) only matters while the
-- checkpoint is empty.
--
-- Note that the rewrite's own writes (a `REMOVE` and an `INSERT` per group
-- row moved) are records of the stream too: the run after one that moved
-- rows reads them, and skips them.
-- @tparam table client a `ddb.client` (anything with `client:call(op, params)`)
-- @tparam[opt] table opts
--   `table` (default `"cruddur-messages"`), `index`, `max_rounds`, `inject`
--   (as for `process`);
--   `once` (default) drains every shard that can be read and returns: an open
--   shard until `ONCE_EMPTY_PAGES` (5) pages in a row without records (a page
--   without records may come before records further on) or its end, a shard
--   the listing shows closed to its end; `follow = true` keeps polling
--   until `should_stop()` returns true (checked between pages; default:
--   forever), sleeping when idle (from 50 ms, doubling up to `idle_max_ms`,
--   default 1000) and listing the shards again when one closes or every
--   `refresh_ms` (default 60000);
--   `start`: `"TRIM_HORIZON"` (default) or `"LATEST"`;
--   `batch_size`: `GetRecords` `Limit`, 1..1000 (default 100);
--   `batch_attempts`: `process` calls per batch (default 5), `retry_base_ms`:
--   first backoff between them (default 100, doubling);
--   `checkpoint_dir` (default `".ddb-stream"`, created when missing);
--   `on_batch(summary, shard_id)`: called after every `process` call with
--   its summary, plus `shard`, `attempt` and `checkpoint` (the sequence
--   number now checkpointed, nil when none moved)
-- @treturn table|nil the summary: `batches` (non-empty pages), `records` (records
--   read), `moved` (group rows moved), `applied`, `skipped`, `failed` (records,
--   as in `process`, summed over the attempts: without retries `records ==
--   applied + skipped`), `retries` (attempts after a failure), `renewed` (expired
--   iterators renewed), `shards` (shards read), `stream` (the ARN),
--   `checkpoint` (the file), `table`
-- @treturn table|nil an error: `no_stream` (the table has no stream),
--   `bad_checkpoint` (the file is not a checkpoint of this stream; its path is
--   in the message and in `err.path`), `checkpoint_io`, `batch_failed`
--   (`err.shard`, `err.item`, `err.cause`), or the client's error (e.g.
--   `TrimmedDataAccessException` when the checkpoint is older than what the
--   stream keeps, 24 hours)
-- @raise when client or opts have the wrong type
function M.run(client, opts)
  check_client(client, "run")
  local o = run_opts(opts)
  local ropts = rewrite_opts(opts, "run")
  local name = ropts.table or model.TABLE
  ropts.table = name

  local desc, err = client:call("DescribeTable", { TableName = name })
  if not desc then return nil, err end
  local arn = type(desc.Table) == "table" and desc.Table.LatestStreamArn
  if type(arn) ~= "string" or arn == "" then
    return errors.fail("no_stream", ("table %s has no stream: it needs StreamSpecification "
      .. "{ StreamEnabled = true, StreamViewType = NEW_IMAGE } (bin/ddb/schema-load creates it so)"):format(name),
      { table = name })
  end

  local ok
  ok, err = ensure_dir(o.checkpoint_dir)
  if not ok then return nil, err end
  local path = o.checkpoint_dir:gsub("/+$", "") .. "/" .. M.checkpoint_name(arn)
  if o.checkpoint_dir:match("^/+$") then path = "/" .. M.checkpoint_name(arn) end
  local cp
  cp, err = read_checkpoint(path, arn)
  if not cp then return nil, err end

  local summary = { batches = 0, records = 0, moved = 0, applied = 0, skipped = 0, failed = 0, retries = 0,
    renewed = 0,
    shards = 0, stream = arn, checkpoint = path, table = name }
  local should_stop = o.should_stop
  local st = {
    client = client, o = o, ropts = ropts, arn = arn, table = name, path = path, dir = o.checkpoint_dir,
    tmp = ("%s.%s.tmp"):format(path, fnv1a64(core.random_bytes(8))),
    cp = cp, fresh = next(cp) == nil, live = {}, summary = summary,
    stop = should_stop and function() return should_stop() == true end or function() return false end,
  }

  local list
  list, err = list_shards(client, arn)
  if not list then return nil, err end
  st.initial = {}
  for _, s in ipairs(list) do st.initial[s.id] = true end
  local listed_at, idle = core.monotonic_ms(), 0
  while true do
    local order
    order, st.listed = order_shards(list)
    local before, closed = summary.records, false
    for _, shard in ipairs(order) do
      if st.stop() then break end
      local c = cp[shard.id]
      if not (c and c.finished) and parent_done(st, shard) then
        local why
        ok, why = drain(st, shard)
        if not ok then return nil, why end
        closed = closed or why == "closed"
      end
    end
    if not o.follow or st.stop() then return summary end
    if closed or core.monotonic_ms() - listed_at >= o.refresh_ms then
      list, err = list_shards(client, arn)
      if not list then return nil, err end
      listed_at = core.monotonic_ms()
    end
    if summary.records == before and not closed then
      idle = idle + 1
      local delay = math.min(o.idle_max_ms, IDLE_MIN_MS * 2 ^ math.min(idle - 1, 20))
      if delay > 0 and not st.stop() then core.sleep_ms(math.floor(delay)) end
    else
      idle = 0
    end
  end
end

return M

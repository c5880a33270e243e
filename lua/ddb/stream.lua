--- The stream rewrite (messaging pattern D): when a message row is inserted,
-- every group row of its conversation moves to that message, so both
-- participants see the conversation at the top of their list.
--
-- The work is done by the C engine `ddb.core.rewrite` (src/rewrite.h):
--
-- * every record of the batch is examined, in order; only an `INSERT` of a
--   `MSG#<uuid>` item acts. `REMOVE`, `MODIFY`, `GRP#`/`PAIR#` items (the
--   rewrite's own writes among them, so there is no feedback loop) and
--   malformed records are counted skips, never errors;
-- * per message group the newest message of the batch wins; the group's rows
--   are read from the GSI (every page), and each owner's newest row older than
--   that message moves to it in one `TransactWriteItems`: a `Delete` of the
--   old row on condition it is still there and a `Put` of its copy (every
--   attribute kept, `sk` and `message` replaced) on condition it is not there
--   yet, for both participants at once, with a deterministic
--   `ClientRequestToken`;
-- * a row never moves to an older or equal `sk`, so replays and out-of-order
--   deliveries change nothing;
-- * a transaction cancelled by a failed condition (or a conflicting
--   transaction) means the rows changed under us: each owner's row is re-read
--   with a consistent read and the decision is taken again, at most
--   `max_rounds` times (then `RewriteContention`). A target `sk` already held
--   by the owner's row of *another* group (an owner has one row per `sk`) fails
--   at once with `SortKeyTaken`; nothing is overwritten. Any other failure
--   fails the group, and only that group.
--
-- A failed group is reported with the earliest record it owns, the way a
-- Lambda partial-batch response wants it; redelivering from there is safe
-- because moves are idempotent.
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
  if type(records) ~= "table" then return { batchItemFailures = core.array() } end
  local name = M.getenv("DDB_TABLE")
  if name == "" then name = nil end
  local summary = M.process(handler_client(), records, { table = name or model.TABLE })
  for _, e in ipairs(summary.errors) do
    M.log(("ddb.stream: group %s failed: %s"):format(tostring(e.group), tostring(e)))
  end
  return { batchItemFailures = summary.batchItemFailures }
end

---------------------------------------------------------------------------
-- The local stream runner (`run`) builds on `process`: it hands each
-- GetRecords page's Records to it and checkpoints up to (not including) the
-- record named in batchItemFailures. check_client and rewrite_opts above are
-- meant for it too.

return M

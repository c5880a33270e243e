--- The DynamoDB client: one signed JSON call per operation, with the
-- retries, errors and pagination of a production SDK.
-- @module ddb.client
local core = require("ddb.core")
local config = require("ddb.config")
local errors = require("ddb.errors")
local limits = require("ddb.limits")
local retry = require("ddb.retry")

local M = {}

local Client = {}
Client.__index = Client

local STREAMS_OPS = { DescribeStream = true, GetShardIterator = true, GetRecords = true, ListStreams = true }

-- How each paginated operation names its continuation token:
-- { field in the response (dotted path), parameter of the next request }.
local PAGINATION = {
  Query = { "LastEvaluatedKey", "ExclusiveStartKey" },
  Scan = { "LastEvaluatedKey", "ExclusiveStartKey" },
  ListTables = { "LastEvaluatedTableName", "ExclusiveStartTableName" },
  ListStreams = { "LastEvaluatedStreamArn", "ExclusiveStartStreamArn" },
  DescribeStream = { "StreamDescription.LastEvaluatedShardId", "ExclusiveStartShardId" },
  ListBackups = { "LastEvaluatedBackupArn", "ExclusiveStartBackupArn" },
  ListGlobalTables = { "LastEvaluatedGlobalTableName", "ExclusiveStartGlobalTableName" },
  ListTagsOfResource = { "NextToken", "NextToken" },
  ListExports = { "NextToken", "NextToken" },
  ListImports = { "NextToken", "NextToken" },
  ListContributorInsights = { "NextToken", "NextToken" },
}

-- X-Amz-Target of each operation name seen so far (so: only valid names),
-- at most MAX_TARGETS of them (DynamoDB has about 60 operations).
local targets, ntargets, MAX_TARGETS = {}, 0, 256
local function target_of(op)
  local t = targets[op]
  if not t then
    t = (STREAMS_OPS[op] and "DynamoDBStreams_20120810." or "DynamoDB_20120810.") .. op
    if ntargets < MAX_TARGETS then
      targets[op] = t
      ntargets = ntargets + 1
    end
  end
  return t
end

-- The error code in an error body's `__type` (or `code`), as botocore reads
-- it: without a `:<uri>` suffix (awsJson allows `ns#Code:http://...`), then
-- after the last '#'; nil when nothing is left.
local function error_code(t)
  if type(t) ~= "string" then return nil end
  local code = t:match("^[^:]*"):match("[^#]*$")
  return code ~= "" and code or nil
end

-- Builds the error for an HTTP response that is not a 2xx. `h` (the core
-- client) removes the secret key and session token from the server's message.
local function service_error(h, op, status, body, request_id)
  local code, message
  if type(body) == "table" then
    code = error_code(body.__type or body.code)
    message = body.message or body.Message
  end
  local fields = { status = status, request_id = request_id, operation = op }
  if type(body) == "table" then
    fields.cancellation_reasons = body.CancellationReasons
    fields.item = body.Item
  end
  if not code then
    code = "InvalidResponse"
    message = ("HTTP %d with a body that is not a DynamoDB error"):format(status)
  end
  fields.retryable = retry.is_retryable(code, status) or (code == "InvalidResponse" and status == 429)
  return errors.new(code, type(message) == "string" and h:redact(message) or ("HTTP " .. status), fields)
end

--- Creates a client. See README for every option and environment variable.
--
-- The client's fields (`endpoint`, `region`, `credentials_source`, ...) hold
-- no credential: those live in the C core only, and are wiped by `close`.
-- With `insecure_tls = true`, one warning line goes to stderr.
-- @tparam[opt] table opts `endpoint`, `fallback_endpoint` (used instead of
--   AWS's when no endpoint is given or configured), `region`, `profile`, `access_key_id`,
--   `secret_access_key`, `session_token`, `timeout_ms`, `connect_timeout_ms`,
--   `max_attempts`, `ca_file`, `retry_base_ms`, `retry_max_backoff_ms`,
--   `debug` (true: a line per request and per response on stderr, credentials
--   redacted; or a function called with each line instead), `debug_body`
--   (the debug lines show the bodies), `insecure_tls` (no TLS certificate
--   verification: only for testing)
-- @treturn table|nil the client
-- @treturn table|nil an error (code `ConfigError`) when the configuration is unusable
function M.new(opts)
  local cfg, err = config.resolve(opts, nil, 2)
  if not cfg then return nil, err end
  local creds = cfg.credentials
  if cfg.insecure_tls then
    local where = cfg.endpoint.url
    if cfg.streams_endpoint.url ~= where then where = where .. " and " .. cfg.streams_endpoint.url end
    io.stderr:write("ddb: WARNING: TLS certificate verification is OFF for ", where, "\n")
  end
  local handle = core.client({
    url = cfg.endpoint.url, host = cfg.endpoint.host,
    streams_url = cfg.streams_endpoint.url, streams_host = cfg.streams_endpoint.host,
    region = cfg.region,
    access_key_id = creds.access_key_id, secret_access_key = creds.secret_access_key,
    session_token = creds.session_token,
    timeout_ms = cfg.timeout_ms, connect_timeout_ms = cfg.connect_timeout_ms,
    ca_file = cfg.ca_file, insecure = cfg.insecure_tls,
    debug = cfg.debug, debug_body = cfg.debug_body,
  })
  return setmetatable({
    _h = handle,
    _quota = retry.quota(),
    endpoint = cfg.endpoint.url,
    region = cfg.region,
    credentials_source = cfg.credentials_source,
    max_attempts = cfg.max_attempts,
    retry_base_ms = cfg.retry_base_ms,
    retry_max_backoff_ms = cfg.retry_max_backoff_ms,
  }, Client)
end

local EMPTY = setmetatable({}, { __newindex = function() error("read-only", 2) end })
local ARRAY_MT = core.array_mt

-- What a decoded JSON value that is not an object is, for a message.
local function json_kind(v)
  if v == core.null then return "null" end
  if type(v) == "table" then return "an array" end
  return "a " .. type(v) -- a string, a number or a boolean
end

--- Calls one DynamoDB or DynamoDB Streams operation, retrying what the
-- standard retry mode retries.
-- @tparam string op the operation name, e.g. `"PutItem"`, `"GetRecords"`
-- @tparam[opt] table params the request, in DynamoDB JSON form
-- @treturn table|nil the decoded response
-- @treturn table|nil an error (`code`, `message`, `status`, `request_id`, `retryable`, `attempts`);
--   `ItemTooLarge` (with `size` and `limit`, no request made) for a `PutItem`,
--   `BatchWriteItem` or `TransactWriteItems` putting an item over 400 KB;
--   `InvalidResponse` for a 2xx response whose JSON is not an object
function Client:call(op, params)
  if type(self) ~= "table" or self._h == nil then
    error("client:call: call it as client:call(op, params), on a client from ddb.client", 2)
  end
  local target = targets[op] -- a name already checked
  if not target then
    if type(op) ~= "string" or #op > 64 or not op:match("^%u%a+$") then
      error("client:call: operation must be a name like \"PutItem\"", 2)
    end
    target = target_of(op)
  end
  if params ~= nil and type(params) ~= "table" then
    error("client:call: params must be a table", 2)
  end
  local h = self._h
  local streams = STREAMS_OPS[op] == true
  local attempt, cost = 0, nil
  while true do
    attempt = attempt + 1
    local status, body, request_id, rstatus, rid = h:request(target, params or EMPTY, streams)
    local err
    if status == nil then
      local code = body
      if code == "ItemTooLarge" then -- refused by the core before sending: say which item
        return nil, limits.check(op, params) or errors.new(code, request_id,
          { operation = op, attempts = 0, limit = limits.MAX_ITEM_BYTES })
      end
      err = errors.new(code, request_id, {
        status = rstatus, request_id = rid, operation = op,
        retryable = retry.is_retryable(code, rstatus),
      })
    elseif status >= 200 and status < 300 then
      if body == nil or (type(body) == "table" and getmetatable(body) ~= ARRAY_MT) then
        self._quota:success(cost)
        return body or {}
      end
      -- valid JSON, but not an object: not a DynamoDB response
      err = errors.new("InvalidResponse", ("response is %s, not a JSON object"):format(json_kind(body)), {
        status = status, request_id = request_id, operation = op,
        retryable = retry.is_retryable("InvalidResponse", status),
      })
    else
      err = service_error(h, op, status, body, request_id)
    end
    err.attempts = attempt
    if not err.retryable or attempt >= self.max_attempts then return nil, err end
    cost = self._quota:acquire(err)
    if not cost then
      err.message = err.message .. " (retry quota exhausted)"
      return nil, err
    end
    core.sleep_ms(retry.backoff_ms(attempt, self.retry_base_ms, self.retry_max_backoff_ms))
  end
end

-- Whether a and b are equal decoded JSON values (tables compared by their
-- members, as a LastEvaluatedKey is a new table each time).
local function same_value(a, b, depth)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  depth = (depth or 0) + 1
  if depth > 64 then return false end
  for k, v in next, a do
    if not same_value(v, rawget(b, k), depth) then return false end
  end
  for k in next, b do
    if rawget(a, k) == nil then return false end
  end
  return true
end

local function get_path(t, path)
  for key in path:gmatch("[^.]+") do
    if type(t) ~= "table" then return nil end
    t = t[key]
  end
  return t
end

--- Iterates the pages of a paginated operation, following its
-- continuation token (`LastEvaluatedKey`, `LastEvaluatedTableName`,
-- `LastEvaluatedShardId`, ...). `params` is not modified.
-- On failure the loop receives `false, err` once and then ends:
--   `for page, err in client:pages(...) do if not page then ... end end`
-- A page whose token is the one its request sent (a server that would make
-- the loop endless) is still received; then comes `false, err` with code
-- `PaginationError`, as botocore's paginator raises.
-- @tparam string op a paginated operation
-- @tparam[opt] table params the first request
-- @treturn function iterator yielding each decoded page
function Client:pages(op, params)
  if type(self) ~= "table" or type(self.call) ~= "function" then
    error("client:pages: call it as client:pages(op, params), on a client", 2)
  end
  local spec = PAGINATION[op]
  if not spec then
    error("client:pages: " .. (type(op) == "string" and op:sub(1, 64) or type(op))
      .. " is not a paginated operation", 2)
  end
  if params ~= nil and type(params) ~= "table" then
    error("client:pages: params must be a table", 2)
  end
  local req = {}
  for k, v in pairs(params or {}) do req[k] = v end
  local done, pending = false, nil
  return function()
    if done then return nil end
    if pending then
      done = true
      return false, pending
    end
    local page, err = self:call(op, req)
    if not page then
      done = true
      return false, err
    end
    local token = get_path(page, spec[1])
    if token == nil or token == core.null then
      done = true
    elseif same_value(token, req[spec[2]]) then
      pending = errors.new("PaginationError", ("the same %s was received twice"):format(spec[1]),
        { operation = op })
    else
      req[spec[2]] = token
    end
    return page
  end
end

--- Closes the connection and wipes the credentials; the client is unusable after.
function Client:close()
  self._h:close()
end

Client.__close = Client.close

function Client:__tostring()
  return ("ddb.client(%s, %s)"):format(self.endpoint, self.region)
end

return M

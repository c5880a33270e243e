--- Retry policy of the AWS SDKs' "standard" mode.
--
-- Which errors are retried, how long to wait before the next attempt
-- (exponential backoff with full jitter) and the client-wide retry quota
-- that stops a failing service from being hammered.
-- @module ddb.retry
local M = {}

local THROTTLING = {
  Throttling = true, ThrottlingException = true, ThrottledException = true,
  RequestThrottledException = true, TooManyRequestsException = true,
  ProvisionedThroughputExceededException = true, TransactionInProgressException = true,
  RequestLimitExceeded = true, BandwidthLimitExceeded = true, LimitExceededException = true,
  RequestThrottled = true, SlowDown = true, EC2ThrottledException = true,
}

local TRANSIENT = {
  RequestTimeout = true, RequestTimeoutException = true, PriorRequestNotComplete = true,
  InternalServerError = true, ServiceUnavailable = true,
  TransportError = true, Timeout = true, CRC32CheckFailed = true,
}

local TRANSIENT_STATUS = { [500] = true, [502] = true, [503] = true, [504] = true }

--- True for a throttling error code.
-- @tparam string code
function M.is_throttling(code)
  return THROTTLING[code] == true
end

--- Whether an error (code, HTTP status) may be retried: throttling,
-- transient network/service errors and 5xx. Validation errors and
-- `ConditionalCheckFailedException` never are.
-- @tparam string code
-- @tparam[opt] integer status
function M.is_retryable(code, status)
  if code == "ConditionalCheckFailedException" then return false end
  return THROTTLING[code] == true or TRANSIENT[code] == true
    or (status ~= nil and TRANSIENT_STATUS[status] == true)
end

--- Delay before attempt `attempt + 1`, in milliseconds: full jitter,
-- `random() * min(max_ms, base_ms * 2^(attempt-1))`.
-- @tparam integer attempt the attempt that just failed (1 = first)
-- @tparam number base_ms
-- @tparam number max_ms
-- @treturn integer
function M.backoff_ms(attempt, base_ms, max_ms)
  local cap = math.min(max_ms, base_ms * 2 ^ (attempt - 1))
  return math.floor(math.random() * cap)
end

local Quota = {}
Quota.__index = Quota

local QUOTA_MAX, RETRY_COST, TIMEOUT_COST, NO_RETRY_INCREMENT = 500, 5, 10, 1

--- A retry quota (token bucket of 500; a retry costs 5, after a timeout 10;
-- a success returns what its retries took, or 1 when it needed none).
-- @treturn table with `acquire(err)` -> cost or nil, and `success(cost)`
function M.quota()
  return setmetatable({ tokens = QUOTA_MAX }, Quota)
end

--- Takes the cost of retrying after `err`; nil when the quota is spent.
function Quota:acquire(err)
  local cost = err.code == "Timeout" and TIMEOUT_COST or RETRY_COST
  if self.tokens < cost then return nil end
  self.tokens = self.tokens - cost
  return cost
end

--- Records a success; `cost` is what the last retry acquired (nil if none).
function Quota:success(cost)
  self.tokens = math.min(QUOTA_MAX, self.tokens + (cost or NO_RETRY_INCREMENT))
end

return M

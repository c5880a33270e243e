-- Retries, timeouts and transport failures, against the loopback fault server.
local ddb = require("ddb")
local core = require("ddb.core")
local fault_server = require("spec.support.fault_server")

local function err_body(code, message)
  return ('{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":"%s"}'):format(code, message)
end

describe("retries and timeouts", function()
  local server

  setup(function() server = fault_server.start() end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)

  local function client(extra)
    local opts = { endpoint = server.url, region = "us-east-1", retry_base_ms = 1, retry_max_backoff_ms = 5 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(ddb.client(opts))
  end

  it("sends a signed DynamoDB request over one kept-alive connection", function()
    server:default({ status = 200, body = '{"TableNames":["a","b"]}', headers = { ["x-amzn-RequestId"] = "RID1" } })
    local c = client()
    for _ = 1, 3 do
      local res = assert(c:call("ListTables", { Limit = 5 }))
      assert.same({ "a", "b" }, res.TableNames)
    end
    local log = server:log()
    assert.equal(3, #log)
    local h = log[1].headers
    assert.equal("POST", log[1].method)
    assert.equal("/", log[1].path)
    assert.equal("DynamoDB_20120810.ListTables", h["x-amz-target"])
    assert.equal("application/x-amz-json-1.0", h["content-type"])
    assert.equal(server.url:match("//(.*)$"), h["host"])
    assert.matches("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$", h["x-amz-date"])
    assert.matches("^AWS4%-HMAC%-SHA256 Credential=local/%d+/us%-east%-1/dynamodb/aws4_request, "
      .. "SignedHeaders=content%-type;host;x%-amz%-date;x%-amz%-target, Signature=%x+$", h["authorization"])
    assert.is_nil(h["expect"])
    assert.equal('{"Limit":5}', log[1].body)
    assert.equal(log[1].peer_port, log[2].peer_port)
    assert.equal(log[1].peer_port, log[3].peer_port)
  end)

  it("sends Streams operations with the DynamoDBStreams target", function()
    local c = client()
    assert(c:call("GetRecords", { ShardIterator = "it" }))
    assert.equal("DynamoDBStreams_20120810.GetRecords", server:log()[1].headers["x-amz-target"])
  end)

  it("retries 500 and 503 and then succeeds", function()
    server:script({ { status = 500, body = err_body("InternalServerError", "boom") },
      { status = 503, body = "<html>busy</html>" } })
    server:default({ status = 200, body = '{"TableNames":[]}' })
    local res = assert(client():call("ListTables", {}))
    assert.same({}, res.TableNames)
    assert.equal(3, #server:log())
  end)

  for _, code in ipairs({ "ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded" }) do
    it("retries " .. code, function()
      server:script({ { status = 400, body = err_body(code, "slow down") } })
      assert(client():call("PutItem", { TableName = "t" }))
      assert.equal(2, #server:log())
    end)
  end

  it("gives up after max_attempts with the last error", function()
    server:default({ status = 400, body = err_body("ThrottlingException", "slow down"),
      headers = { ["x-amzn-RequestId"] = "REQ-9" } })
    local res, err = client({ max_attempts = 4 }):call("PutItem", { TableName = "t" })
    assert.is_nil(res)
    assert.equal("ThrottlingException", err.code)
    assert.equal(4, err.attempts)
    assert.is_true(err.retryable)
    assert.equal("REQ-9", err.request_id)
    assert.equal(400, err.status)
    assert.equal(4, #server:log())
  end)

  it("takes max_attempts from AWS_MAX_ATTEMPTS", function()
    server:default({ status = 500, body = err_body("InternalServerError", "x") })
    local cmd = ("AWS_MAX_ATTEMPTS=2 LUA_PATH=%q LUA_CPATH=%q lua5.4 -e %q"):format(
      package.path, package.cpath,
      ("local c = assert(require('ddb').client{endpoint=%q, retry_base_ms=1}); "
        .. "local _, e = c:call('ListTables', {}); io.write(e.attempts)"):format(server.url))
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    assert.equal("2", out)
    assert.equal(2, #server:log())
  end)

  for _, code in ipairs({ "ValidationException", "ConditionalCheckFailedException", "AccessDeniedException" }) do
    it("never retries " .. code, function()
      server:default({ status = 400, body = err_body(code, "no") })
      local res, err = client():call("PutItem", { TableName = "t" })
      assert.is_nil(res)
      assert.equal(code, err.code)
      assert.equal("no", err.message)
      assert.is_false(err.retryable)
      assert.equal(1, #server:log())
    end)
  end

  it("times out a stalled attempt within the configured bound, and retries it", function()
    server:script({ { action = "stall", seconds = 3 }, { action = "stall", seconds = 3 } })
    local t0 = core.monotonic_ms()
    local res, err = client({ timeout_ms = 300, max_attempts = 2 }):call("ListTables", {})
    local elapsed = core.monotonic_ms() - t0
    assert.is_nil(res)
    assert.equal("Timeout", err.code)
    assert.is_true(err.retryable)
    assert.equal(2, err.attempts)
    assert.is_true(elapsed >= 600 and elapsed < 2000, "elapsed " .. elapsed .. " ms")
  end)

  it("recovers from a stall when the next attempt answers", function()
    server:script({ { action = "stall", seconds = 3 } })
    local res = assert(client({ timeout_ms = 300 }):call("ListTables", {}))
    assert.is_table(res)
  end)

  it("reports a refused connection as a retryable TransportError", function()
    local url = server.url
    local dead = fault_server.start()
    local dead_url = dead.url
    dead:stop()
    local c = assert(ddb.client({ endpoint = dead_url, retry_base_ms = 1, max_attempts = 2 }))
    local res, err = c:call("ListTables", {})
    assert.is_nil(res)
    assert.equal("TransportError", err.code)
    assert.is_true(err.retryable)
    assert.equal(2, err.attempts)
    assert.is_truthy(url)
  end)

  it("retries a connection reset", function()
    server:script({ { action = "reset" } })
    assert(client():call("ListTables", {}))
    assert.is_true(#server:log() >= 2)
  end)

  it("reports a truncated body as a TransportError", function()
    server:default({ action = "truncate", status = 200, body = '{"TableNames":[]}', send = 4 })
    local res, err = client({ max_attempts = 1 }):call("ListTables", {})
    assert.is_nil(res)
    assert.equal("TransportError", err.code)
  end)

  it("reports a 200 with a non-JSON body as InvalidResponse, not retried", function()
    server:default({ status = 200, body = "<html>hello</html>" })
    local res, err = client():call("ListTables", {})
    assert.is_nil(res)
    assert.equal("InvalidResponse", err.code)
    assert.equal(1, #server:log())
  end)

  it("reports a 4xx with a non-DynamoDB body as InvalidResponse with its status", function()
    server:default({ status = 403, body = "Forbidden" })
    local res, err = client():call("ListTables", {})
    assert.is_nil(res)
    assert.equal("InvalidResponse", err.code)
    assert.equal(403, err.status)
    assert.is_false(err.retryable)
  end)

  it("checks x-amz-crc32 and retries a mismatch", function()
    local body = '{"TableNames":["crc"]}'
    server:script({ { status = 200, body = body, headers = { ["x-amz-crc32"] = "12345" } } })
    server:default({ status = 200, body = body, headers = { ["x-amz-crc32"] = "3868934122" } })
    local res = assert(client():call("ListTables", {}))
    assert.same({ "crc" }, res.TableNames)
    assert.equal(2, #server:log())
  end)

  it("refuses an oversized response without reading it all", function()
    server:default({ action = "big", status = 200, bytes = 80 * 1024 * 1024 })
    local res, err = client({ max_attempts = 1 }):call("ListTables", {})
    assert.is_nil(res)
    assert.equal("ResponseTooLarge", err.code)
  end)

  it("stops retrying when the retry quota is spent", function()
    server:default({ status = 500, body = err_body("InternalServerError", "down") })
    local c = client({ max_attempts = 10 })
    local attempts = 0
    for _ = 1, 20 do
      local _, err = c:call("ListTables", {})
      attempts = attempts + err.attempts
    end
    -- 500 tokens at 5 per retry: at most 100 retries on top of the 20 first attempts.
    assert.is_true(attempts <= 120, "attempts " .. attempts)
    local _, err = c:call("ListTables", {})
    assert.equal(1, err.attempts)
    assert.matches("retry quota", err.message)
  end)
end)

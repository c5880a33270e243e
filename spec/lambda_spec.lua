-- core.http_client (src/http.c over src/transport.c) against the fault server,
-- and examples/lambda/bootstrap, the custom Lambda runtime, run as a
-- subprocess against a stub Runtime API on loopback (the fault server with a
-- script: each GET /next consumes a step holding an event and the Lambda
-- headers, each POST a 202) and moto.
--
-- The bootstrap runs with `env -i`: no LUA_PATH (it must find the package
-- from LAMBDA_TASK_ROOT, here the repository), no AWS settings but the ones
-- given, and DDB_LAMBDA_MAX_INVOCATIONS so that it exits after the events of
-- the script. The credentials are markers that must never show up in its
-- output or in any request it sends to the Runtime API.
local core = require("ddb.core")
local ids = require("ddb.ids")
local marshal = require("ddb.marshal")
local model = require("ddb.model")
local schema = require("ddb.schema")
local moto = require("support.moto")
local R = require("support.run")
local fault_server = require("spec.support.fault_server")
local finalizers = require("spec.support.finalizers")

local ROOT = R.cwd()
local BOOTSTRAP = ROOT .. "/examples/lambda/bootstrap"
local SECRET = "SECRETMARKER/lambda-spec/0123456789abcdefghijkl"
local TOKEN = "TOKENMARKER-lambda-spec-9876543210"
local ACCESS_KEY = "AKIDLAMBDASPEC000001"
local ARN = "arn:aws:lambda:us-east-1:123456789012:function:cruddur-stream"

local function now_ms()
  local s, us = core.now()
  return s * 1000 + us // 1000
end

describe("core.http_client", function()
  local srv, h

  setup(function()
    srv = fault_server.start()
  end)

  teardown(function()
    srv:stop()
  end)

  before_each(function()
    srv:reset()
    h = core.http_client { timeout_ms = 2000, connect_timeout_ms = 1000 }
  end)

  after_each(function()
    h:close()
  end)

  it("sends GET, POST and PUT with their headers and bodies, and returns status, body and headers", function()
    srv:script {
      { status = 201, body = "created", headers = { ["X-Custom-Header"] = "One", ["Content-Type"] = "text/plain" } },
      { status = 200, body = '{"ok":true}' },
      { status = 404, body = "missing" },
    }
    local status, body, headers = h:request("GET", srv.url .. "/a/b?x=1&y=2", { ["X-Req"] = "v1", Empty = "",
      Blank = " \t ", Padded = "  x y\t" })
    assert.equal(201, status)
    assert.equal("created", body)
    assert.equal("One", headers["x-custom-header"])
    assert.equal("text/plain", headers["content-type"])
    assert.equal("7", headers["content-length"])
    for name in pairs(headers) do assert.equal(name:lower(), name) end

    status, body = h:request("POST", srv.url .. "/post", { ["Content-Type"] = "application/json", N = 42 }, '{"a":1}')
    assert.equal(200, status)
    assert.equal('{"ok":true}', body)
    status, body = h:request("PUT", srv.url .. "/put", nil, "put body")
    assert.equal(404, status) -- a response, whatever its status
    assert.equal("missing", body)

    local log = srv:log()
    assert.equal(3, #log)
    assert.same({ "GET", "/a/b?x=1&y=2", "" }, { log[1].method, log[1].path, log[1].body })
    assert.equal("v1", log[1].headers["x-req"])
    assert.equal("", log[1].headers["empty"]) -- an empty value is sent, not dropped
    assert.equal("", log[1].headers["blank"]) -- nor one of blanks only (libcurl would drop "Blank:  ")
    assert.equal("x y", log[1].headers["padded"])
    assert.is_nil(log[1].headers["content-length"])
    assert.same({ "POST", "/post", '{"a":1}' }, { log[2].method, log[2].path, log[2].body })
    assert.equal("application/json", log[2].headers["content-type"])
    assert.equal("42", log[2].headers["n"])
    assert.same({ "PUT", "/put", "put body", "8" }, { log[3].method, log[3].path, log[3].body,
      log[3].headers["content-length"] })
    for _, e in ipairs(log) do
      assert.is_nil(e.headers["expect"])     -- no 100-continue
      assert.is_nil(e.headers["user-agent"]) -- nothing made up
    end
    assert.is_nil(log[3].headers["content-type"]) -- not libcurl's form type
  end)

  it("keeps one connection alive across methods", function()
    for _, m in ipairs({ "GET", "POST", "PUT", "DELETE", "HEAD", "GET", "PATCH", "OPTIONS" }) do
      local status, body = h:request(m, srv.url .. "/k", nil, (m == "POST" or m == "PATCH") and "x" or nil)
      assert.equal(200, status, m)
      assert.equal(m == "HEAD" and "" or "{}", body, m)
    end
    local log = srv:log()
    assert.equal(8, #log)
    for i, e in ipairs(log) do
      assert.equal(log[1].peer_port, e.peer_port, "request " .. i .. " " .. e.method)
    end
    assert.same({ "GET", "POST", "PUT", "DELETE", "HEAD", "GET", "PATCH", "OPTIONS" },
      (function()
        local ms = {}
        for i, e in ipairs(log) do ms[i] = e.method end
        return ms
      end)())
    assert.equal("0", log[3].headers["content-length"]) -- a PUT without body sends an empty one
    assert.is_nil(log[4].headers["content-length"])     -- a DELETE without body sends none
  end)

  it("returns Timeout for a stalled response, then works again on a new connection", function()
    local short = core.http_client { timeout_ms = 300 }
    srv:script { { action = "stall", seconds = 2 }, { status = 200, body = "after" } }
    local t0 = core.monotonic_ms()
    local ok, code, msg = short:request("GET", srv.url .. "/stall")
    assert.is_nil(ok)
    assert.equal("Timeout", code)
    assert.is_string(msg)
    assert.is_true(core.monotonic_ms() - t0 < 1500)
    local status, body = short:request("GET", srv.url .. "/again")
    assert.equal(200, status)
    assert.equal("after", body)
    short:close()
  end)

  it("follows no redirect, and reports transport failures and oversized responses as values", function()
    srv:script { { status = 302, body = "", headers = { Location = srv.url .. "/elsewhere" } } }
    local status, _, headers = h:request("GET", srv.url .. "/moved")
    assert.equal(302, status)
    assert.equal(srv.url .. "/elsewhere", headers.location)
    assert.equal(1, #srv:log()) -- not followed

    local small = core.http_client { max_response_bytes = 1024 }
    srv:script { { action = "big", bytes = 5000 } }
    local ok, code, msg = small:request("GET", srv.url .. "/big")
    assert.is_nil(ok)
    assert.equal("ResponseTooLarge", code)
    assert.matches("body larger than 1024 bytes", msg, 1, true)
    srv:script { { status = 200, body = "", headers = { ["X-Big"] = ("h"):rep(2000) } } }
    ok, code, msg = small:request("GET", srv.url .. "/big-headers")
    assert.is_nil(ok)
    assert.equal("ResponseTooLarge", code)
    assert.matches("headers larger than 1024 bytes", msg, 1, true)
    small:close()

    -- a port nobody listens on (bound, then closed)
    local socket = require("socket")
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    ok, code = h:request("GET", ("http://127.0.0.1:%d/"):format(port))
    assert.is_nil(ok)
    assert.equal("TransportError", code)
    ok, code = h:request("GET", "ftp://127.0.0.1/")
    assert.is_nil(ok)
    assert.equal("TransportError", code)
    -- a plain-HTTP server cannot pass a TLS handshake
    ok, code = h:request("GET", (srv.url:gsub("^http:", "https:")) .. "/tls")
    assert.is_nil(ok)
    assert.equal("TransportError", code)
  end)

  it("verifies TLS: a self-signed server fails, and passes with it as ca_file", function()
    local tls_server = require("spec.support.tls_server")
    local tls = tls_server.start()
    local ok, err = pcall(function()
      local status, code = h:request("POST", tls.url .. "/", nil, "{}")
      assert.is_nil(status)
      assert.equal("TransportError", code)
      local trusting = core.http_client { ca_file = tls.cert }
      local body
      status, body = trusting:request("POST", tls.url .. "/", { ["Content-Type"] = "application/json" }, "{}")
      assert.equal(200, status)
      assert.matches("tls-ok", body, 1, true)
      trusting:close()
    end)
    tls:stop()
    assert(ok, err)
  end)

  it("raises for wrong argument types and invalid names or values", function()
    local url = srv.url .. "/"
    local bad = {
      function() h:request(nil, url) end,
      function() h:request(42, url) end,
      function() h:request("GE T", url) end,
      function() h:request("GET", nil) end,
      function() h:request("GET", url .. "\0x") end,
      function() h:request("GET", url, "headers") end,
      function() h:request("GET", url, { [1] = "x" }) end,
      function() h:request("GET", url, { X = {} }) end,
      function() h:request("GET", url, { ["Bad Name"] = "x" }) end,
      function() h:request("GET", url, { X = "a\r\nInjected: 1" }) end,
      function() h:request("GET", url, { X = "a\0b" }) end,
      function() h:request("POST", url, { ["content-length"] = "3" }, "abc") end,
      function() h:request("POST", url, { ["Transfer-Encoding"] = "chunked" }, "abc") end,
      function() h:request("POST", url, nil, {}) end,
      function() h:request("POST", url, nil, 12) end,
      function() h:request("HEAD", url, nil, "body") end,
      function() core.http_client("x") end,
      function() core.http_client { timeout_ms = -1 } end,
      function() core.http_client { timeout_ms = "1" } end,
      function() core.http_client { ca_file = 1 } end,
      function() core.http_client { timeout = 1 } end,
    }
    for i, f in ipairs(bad) do
      assert.has_error(f, nil, "case " .. i)
    end
    assert.equal(0, #srv:log()) -- nothing was sent

    local c = core.http_client()
    assert.equal(200, (c:request("GET", url)))
    c:close()
    c:close() -- idempotent
    assert.has_error(function() c:request("GET", url) end, "ddb http client is closed")
    assert.matches("closed", tostring(c))
    do
      local scoped <close> = core.http_client()
      assert.equal(200, (scoped:request("GET", url)))
    end
  end)

  it("refuses to be closed by a finalizer that runs in the middle of one of its requests", function()
    -- header values that are numbers are converted to strings: allocations
    -- inside request() at which the collector may run a finalizer
    local headers, url = {}, srv.url .. "/gc"
    for i = 1, 40 do headers["X-N" .. i] = i * 1.5 end
    local inside, wrong = finalizers.run_inside("request", 300, function()
      assert(h:request("GET", url, headers) == 200)
    end, function()
      local ok, err = pcall(h.close, h)
      if ok or not tostring(err):find("closed while one of its requests is running", 1, true) then
        return tostring(err)
      end
    end)
    assert.is_true(inside > 0, "no finalizer ran inside a request")
    assert.same({}, wrong)
  end)
end)

describe("examples/lambda/bootstrap", function()
  local client, name, srv

  setup(function()
    client = moto.client()
    srv = fault_server.start()
  end)

  teardown(function()
    srv:stop()
    client:close()
  end)

  before_each(function()
    srv:reset()
    name = moto.table_name("lambda")
    assert(schema.load(client, { table = name }))
  end)

  after_each(function()
    schema.drop(client, { table = name })
  end)

  -- Runs the bootstrap; returns exit code, stdout, stderr, the stub's log.
  local function run(opts)
    local env = {
      "PATH=" .. os.getenv("PATH"),
      "HOME=/nonexistent-ddb-lambda-spec",
      "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
      "AWS_LAMBDA_RUNTIME_API=127.0.0.1:" .. srv.port,
      "LAMBDA_TASK_ROOT=" .. ROOT,
      "AWS_ENDPOINT_URL=" .. moto.endpoint(),
      "AWS_REGION=us-east-1",
      "AWS_ACCESS_KEY_ID=" .. ACCESS_KEY, "AWS_SECRET_ACCESS_KEY=" .. SECRET, "AWS_SESSION_TOKEN=" .. TOKEN,
      "AWS_LAMBDA_FUNCTION_NAME=cruddur-stream",
      "DDB_TABLE=" .. (opts.table or name),
    }
    if opts.handler then env[#env + 1] = "_HANDLER=" .. opts.handler end
    if opts.max then env[#env + 1] = "DDB_LAMBDA_MAX_INVOCATIONS=" .. opts.max end
    local how, code, stdout, stderr = R.capture(R.command(BOOTSTRAP, {}, { clean = "env -i", env = env }))
    assert.equal("exit", how)
    local log = srv:log()
    -- never a credential: not on stdout/stderr, not in any request to the Runtime API
    for _, secret in ipairs({ SECRET, TOKEN }) do
      assert.is_nil(stdout:find(secret, 1, true), "secret on stdout")
      assert.is_nil(stderr:find(secret, 1, true), "secret on stderr")
      for _, e in ipairs(log) do
        local seen = e.path .. "\n" .. e.body
        for k, v in pairs(e.headers) do seen = seen .. "\n" .. k .. ": " .. v end
        assert.is_nil(seen:find(secret, 1, true), "secret sent to the Runtime API")
      end
    end
    return code, stdout, stderr, log
  end

  -- A /next answer carrying an event, and the 202 of a /response or /error.
  local function invocation(id, event, trace)
    return { status = 200, body = type(event) == "string" and event or core.json_encode(event), headers = {
      ["Content-Type"] = "application/json",
      ["Lambda-Runtime-Aws-Request-Id"] = id,
      ["Lambda-Runtime-Deadline-Ms"] = tostring(now_ms() + 60000),
      ["Lambda-Runtime-Invoked-Function-Arn"] = ARN,
      ["Lambda-Runtime-Trace-Id"] = trace or ("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0;Lineage=" .. id),
    } }
  end
  local ACCEPTED = { status = 202, body = '{"status":"OK"}', headers = { ["Content-Type"] = "application/json" } }

  local seq = 0
  -- A stream record as DynamoDB Streams makes it (NEW_IMAGE).
  local function record(event_name, item)
    seq = seq + 1
    return {
      eventID = ("%032x"):format(seq), eventName = event_name, eventVersion = "1.1",
      eventSource = "aws:dynamodb", awsRegion = "us-east-1",
      eventSourceARN = "arn:aws:dynamodb:us-east-1:123456789012:table/" .. name .. "/stream/2026-03-01T00:00:00.000",
      dynamodb = {
        ApproximateCreationDateTime = 1772366400, SequenceNumber = ("%021d"):format(4300000000000000000 + seq),
        SizeBytes = 256, StreamViewType = "NEW_IMAGE",
        Keys = { pk = { S = item.pk }, sk = { S = item.sk } },
        NewImage = marshal.item(item),
      },
    }
  end

  local ALICE = { uuid = "6f1c2f44-3f7e-4c1b-9f55-0b6a1d0c2a11", handle = "alice", display_name = "Alice Arden" }
  local BOB = { uuid = "0d9e8b7a-6c5d-4e3f-8a1b-2c3d4e5f6a7b", handle = "bob", display_name = "Bob Brook" }
  local BASE = ids.parse_timestamp("2026-03-01T12:00:00.000000+00:00")
  local function at(i) return ids.timestamp(BASE + i, 0) end

  local function put(row) moto.put(client, name, row) end

  local function seed_group()
    local g = ids.uuid()
    put(model.group_row(ALICE, BOB, g, at(0), "start"))
    put(model.group_row(BOB, ALICE, g, at(0), "start"))
    return g
  end

  local function post(g, sk, sender, text)
    local row = model.message_row(g, sk, ids.uuid(), sender, text)
    put(row)
    return record("INSERT", row)
  end

  -- { [owner pk] = { sk, message } } of g's group rows.
  local function group_rows(g)
    local out, n = {}, 0
    for _, r in ipairs(moto.scan(client, name)) do
      if r.message_group_uuid == g and r.pk:sub(1, 4) == "GRP#" then
        out[r.pk] = { r.sk, r.message }
        n = n + 1
      end
    end
    return out, n
  end

  local function decoded(e) return assert(core.json_decode(e.body)) end

  it("runs ddb.stream.handler: moves both group rows and posts an empty batchItemFailures", function()
    local g = seed_group()
    local e1 = { Records = { post(g, at(1), BOB, "one") } }
    local e2 = { Records = { post(g, at(2), ALICE, "two"), post(g, at(3), BOB, "three") } }
    srv:script { invocation("req-1", e1), ACCEPTED, invocation("req-2", e2), ACCEPTED }
    local code, stdout, stderr, log = run { max = 2 }
    assert.equal(0, code, stderr)
    assert.equal("", stdout)
    assert.equal(4, #log)
    assert.same({ "GET", "/2018-06-01/runtime/invocation/next" }, { log[1].method, log[1].path })
    assert.same({ "POST", "/2018-06-01/runtime/invocation/req-1/response" }, { log[2].method, log[2].path })
    assert.equal('{"batchItemFailures":[]}', log[2].body)
    assert.equal("application/json", log[2].headers["content-type"])
    assert.same({ "GET", "/2018-06-01/runtime/invocation/next" }, { log[3].method, log[3].path })
    assert.same({ "POST", "/2018-06-01/runtime/invocation/req-2/response" }, { log[4].method, log[4].path })
    assert.equal('{"batchItemFailures":[]}', log[4].body)
    for _, e in ipairs(log) do assert.equal(log[1].peer_port, e.peer_port) end -- one keep-alive connection

    local rows, n = group_rows(g)
    assert.equal(2, n)
    assert.same({ at(3), "three" }, rows[model.group_pk(ALICE.uuid)])
    assert.same({ at(3), "three" }, rows[model.group_pk(BOB.uuid)])

    assert.matches("req%-1 done in %d+ ms, records=1, failed_items=0", stderr)
    assert.matches("req%-2 done in %d+ ms, records=2, failed_items=0", stderr)
  end)

  it("posts a partial-batch response naming the first record of the failed group", function()
    local g = seed_group()
    local skipped = record("MODIFY", model.group_row(ALICE, BOB, g, at(0), "start"))
    local first, second = post(g, at(1), ALICE, "a"), post(g, at(2), BOB, "b")
    srv:script { invocation("req-f", { Records = { skipped, first, second } }), ACCEPTED }
    -- the table does not exist: the group's Query fails, so the group fails
    local code, _, stderr, log = run { max = 1, table = name .. "-missing" }
    assert.equal(0, code, stderr)
    assert.equal(2, #log)
    assert.equal("/2018-06-01/runtime/invocation/req-f/response", log[2].path)
    assert.equal(('{"batchItemFailures":[{"itemIdentifier":"%s"}]}'):format(first.dynamodb.SequenceNumber),
      log[2].body)
    assert.matches("ResourceNotFoundException", stderr, 1, true) -- ddb.stream's line for the failed group
    assert.matches("req%-f done in %d+ ms, records=3, failed_items=1", stderr)
    local rows = group_rows(g)
    assert.same({ at(0), "start" }, rows[model.group_pk(ALICE.uuid)]) -- nothing moved
  end)

  it("posts a handler's error to /error with its type and a one-line message, and goes on", function()
    srv:script {
      invocation("req-e1", { kind = "plain" }), ACCEPTED,
      invocation("req-e2", { kind = "ddb" }), ACCEPTED,
      invocation("req-e3", "{not json"), ACCEPTED,
    }
    local code, _, stderr, log = run { max = 3, handler = "spec.support.lambda_handlers.raise" }
    assert.equal(0, code, stderr)
    assert.equal(6, #log)
    local e1, e2, e3 = log[2], log[4], log[6]
    assert.same({ "POST", "/2018-06-01/runtime/invocation/req-e1/error" }, { e1.method, e1.path })
    assert.equal("Unhandled", e1.headers["lambda-runtime-function-error-type"])
    local doc = decoded(e1)
    assert.equal("LuaError", doc.errorType)
    assert.matches("handler exploded with a second line", doc.errorMessage, 1, true)
    assert.is_nil(doc.errorMessage:find("\n", 1, true))
    assert.is_true(#doc.stackTrace > 0)
    doc = decoded(e2)
    assert.equal("/2018-06-01/runtime/invocation/req-e2/error", e2.path)
    assert.equal("ConditionalCheckFailedException", doc.errorType)
    assert.matches("The conditional request failed", doc.errorMessage, 1, true)
    doc = decoded(e3)
    assert.equal("/2018-06-01/runtime/invocation/req-e3/error", e3.path)
    assert.equal("Runtime.InvalidEvent", doc.errorType)
    assert.matches("req%-e1 failed in %d+ ms: LuaError: .*handler exploded with a second line", stderr)
    assert.matches("req%-e2 failed in %d+ ms: ConditionalCheckFailedException", stderr)
  end)

  it("gives the handler its context, the trace id through os.getenv, and reports a result JSON cannot hold",
    function()
      srv:script {
        invocation("req-c", { x = 1 }, "Root=1-trace-for-spec"), ACCEPTED,
      }
      local code, _, stderr, log = run { max = 1, handler = "spec.support.lambda_handlers.context" }
      assert.equal(0, code, stderr)
      local res = decoded(log[2])
      assert.same({ x = 1 }, res.event)
      assert.equal("req-c", res.aws_request_id)
      assert.equal(ARN, res.invoked_function_arn)
      assert.equal("Root=1-trace-for-spec", res.trace_id)
      assert.equal("Root=1-trace-for-spec", res.trace_env)
      assert.equal("cruddur-stream", res.function_name)
      assert.equal("integer", math.type(res.deadline_ms))
      assert.is_true(res.remaining_is_integer)
      assert.is_true(res.remaining_positive)

      srv:reset()
      srv:script { invocation("req-u", {}), ACCEPTED }
      code, _, stderr, log = run { max = 1, handler = "spec.support.lambda_handlers.unencodable" }
      assert.equal(0, code, stderr)
      assert.equal("/2018-06-01/runtime/invocation/req-u/error", log[2].path)
      assert.equal("Runtime.MarshalError", decoded(log[2]).errorType)
    end)

  it("reports a handler that cannot be loaded to /init/error and exits non-zero", function()
    srv:script { ACCEPTED }
    local code, _, stderr, log = run { max = 1, handler = "spec.support.no_such_module.handler" }
    assert.equal(1, code)
    assert.equal(1, #log) -- no /next
    assert.same({ "POST", "/2018-06-01/runtime/init/error" }, { log[1].method, log[1].path })
    assert.equal("Runtime.ImportModuleError", log[1].headers["lambda-runtime-function-error-type"])
    local doc = decoded(log[1])
    assert.equal("Runtime.ImportModuleError", doc.errorType)
    assert.matches("spec.support.no_such_module", doc.errorMessage, 1, true)
    assert.matches("init failed: Runtime.ImportModuleError", stderr, 1, true)

    srv:reset()
    srv:script { ACCEPTED }
    code, _, _, log = run { max = 1, handler = "ddb.stream.no_such_function" }
    assert.equal(1, code)
    assert.equal("/2018-06-01/runtime/init/error", log[1].path)
    assert.equal("Runtime.HandlerNotFound", decoded(log[1]).errorType)

    srv:reset()
    srv:script { ACCEPTED }
    code, _, _, log = run { max = 1, handler = "nodot" }
    assert.equal(1, code)
    assert.equal("Runtime.MalformedHandlerName", decoded(log[1]).errorType)
  end)

  it("exits non-zero with a clear line when the Runtime API keeps failing", function()
    srv:default { action = "close" }
    local code, _, stderr, log = run {}
    assert.equal(1, code)
    assert.equal(3, #log)
    assert.matches("cannot get the next invocation after 3 attempts: .+; exiting", stderr)

    srv:reset()
    srv:default { status = 500, body = "no" }
    code, _, stderr = run {}
    assert.equal(1, code)
    assert.matches("cannot get the next invocation after 3 attempts: HTTP 500; exiting", stderr)

    srv:reset()
    srv:default { status = 200, body = "{}" } -- no request id
    code, _, stderr = run {}
    assert.equal(1, code)
    assert.matches("without Lambda-Runtime-Aws-Request-Id", stderr, 1, true)
  end)
end)

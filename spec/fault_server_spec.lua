-- luacheck: std +busted
-- The fault server (spec/support/fault_server.py + .lua) is infrastructure the
-- retry/timeout specs rely on: this proves each step does what it says, using
-- luasocket only (never the ddb client under test).
local fault_server = require("spec.support.fault_server")
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson")

-- One request through luasocket's http client.
-- @return ok_or_nil, code_or_err, headers, body
local function request(url, opts)
  opts = opts or {}
  local chunks = {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local source
  if opts.body then
    headers["content-length"] = tostring(#opts.body)
    source = ltn12.source.string(opts.body)
  end
  local ok, code, resp_headers = http.request {
    url = url,
    method = opts.method or (opts.body and "POST" or "GET"),
    headers = headers,
    source = source,
    sink = ltn12.sink.table(chunks),
  }
  return ok, code, resp_headers, table.concat(chunks)
end

local function connect(srv, timeout)
  local c = socket.tcp()
  c:settimeout(timeout or 2)
  assert(c:connect("127.0.0.1", srv.port))
  return c
end

local function send_get(c, path, extra)
  assert(c:send("GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n" .. (extra or "") .. "\r\n"))
end

-- Reads a response's status line and headers from a raw socket.
local function read_head(c)
  local line = assert(c:receive("*l"))
  local status = tonumber(line:match("^HTTP/1%.1 (%d%d%d)"))
  local headers = {}
  while true do
    local h = assert(c:receive("*l"))
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    headers[name:lower()] = value
  end
  return status, headers
end

-- Reads one whole response (Content-Length body) from a raw socket.
local function read_response(c)
  local status, headers = read_head(c)
  local len = tonumber(headers["content-length"])
  local body = len and len > 0 and assert(c:receive(len)) or ""
  return status, headers, body
end

describe("fault_server", function()
  local srv

  lazy_setup(function()
    srv = fault_server.start()
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
  end)

  it("starts on a loopback port and answers the default 200 {}", function()
    assert.is_truthy(srv.url:match("^http://127%.0%.0%.1:%d+$"))
    assert.are.equal(srv.url, "http://127.0.0.1:" .. srv.port)
    local ok, code, headers, body = request(srv.url .. "/")
    assert.are.equal(1, ok)
    assert.are.equal(200, code)
    assert.are.equal("{}", body)
    assert.are.equal("application/x-amz-json-1.0", headers["content-type"])
    assert.are.equal("2", headers["content-length"])
  end)

  it("sends a plain step's status, body and headers, and nothing else", function()
    srv:script { { status = 500, body = '{"__type":"InternalServerError"}',
                   headers = { ["x-amzn-RequestId"] = "abc" } } }
    local _, code, headers, body = request(srv.url .. "/")
    assert.are.equal(500, code)
    assert.are.equal('{"__type":"InternalServerError"}', body)
    assert.are.equal("abc", headers["x-amzn-requestid"])
    assert.are.equal("application/x-amz-json-1.0", headers["content-type"])
    assert.are.equal(tostring(#body), headers["content-length"])
    assert.is_nil(headers["server"])
    assert.is_nil(headers["date"])
  end)

  it("lets a step replace Content-Type and defaults status 200, body empty", function()
    srv:script { { headers = { ["Content-Type"] = "text/plain" } } }
    local _, code, headers, body = request(srv.url .. "/")
    assert.are.equal(200, code)
    assert.are.equal("", body)
    assert.are.equal("text/plain", headers["content-type"])
    assert.are.equal("0", headers["content-length"])
  end)

  it("consumes script steps in order, then applies the default", function()
    srv:script { { status = 500 }, { status = 503, body = "slow down" }, { status = 200, body = "third" } }
    local got = {}
    for i = 1, 4 do
      local _, code, _, body = request(srv.url .. "/r" .. i, { body = "{}" })
      got[i] = code .. " " .. body
    end
    assert.are.same({ "500 ", "503 slow down", "200 third", "200 {}" }, got)

    srv:default { status = 418, body = "teapot" }
    srv:script { { status = 201 } }
    local _, c1 = request(srv.url .. "/")
    local _, c2, _, b2 = request(srv.url .. "/")
    local _, c3 = request(srv.url .. "/")
    assert.are.same({ 201, 418, "teapot", 418 }, { c1, c2, b2, c3 })
  end)

  it("keeps the connection alive across requests (HTTP/1.1)", function()
    srv:script { { status = 500, body = "err" }, { status = 200, body = "ok" } }
    local c = connect(srv)
    send_get(c, "/one")
    local s1, _, b1 = read_response(c)
    send_get(c, "/two")
    local s2, _, b2 = read_response(c)
    send_get(c, "/three")
    local s3, _, b3 = read_response(c)
    c:close()
    assert.are.same({ 500, "err", 200, "ok", 200, "{}" }, { s1, b1, s2, b2, s3, b3 })
    assert.are.equal(3, #srv:log())
  end)

  it("logs method, path, lowercased headers and body of non-control requests only", function()
    local body = '{"TableName":"t","Key":{"pk":{"S":"\226\130\172"}}}'
    request(srv.url .. "/some/path?x=1", {
      body = body,
      headers = { ["X-Amz-Target"] = "DynamoDB_20120810.GetItem",
                  ["Content-Type"] = "application/x-amz-json-1.0" },
    })
    request(srv.url .. "/other", { method = "DELETE" })
    srv:script {}
    srv:default { status = 200, body = "{}" }
    local log = srv:log()
    assert.are.equal(2, #log)
    assert.are.equal("POST", log[1].method)
    assert.are.equal("/some/path?x=1", log[1].path)
    assert.are.equal("DynamoDB_20120810.GetItem", log[1].headers["x-amz-target"])
    assert.are.equal("application/x-amz-json-1.0", log[1].headers["content-type"])
    assert.are.equal(tostring(#body), log[1].headers["content-length"])
    assert.are.equal("127.0.0.1:" .. srv.port, log[1].headers["host"])
    assert.are.equal(body, log[1].body)
    assert.are.equal("DELETE", log[2].method)
    assert.are.equal("/other", log[2].path)
    assert.are.equal("", log[2].body)
  end)

  it("reset clears the script, the default and the log", function()
    srv:script { { status = 500 }, { status = 500 } }
    srv:default { status = 404 }
    request(srv.url .. "/")
    assert.are.equal(1, #srv:log())
    srv:reset()
    assert.are.same({}, srv:log())
    local _, code, _, body = request(srv.url .. "/")
    assert.are.equal(200, code)
    assert.are.equal("{}", body)
    assert.are.equal(1, #srv:log())
  end)

  it("stall sends nothing for the given time, then closes", function()
    srv:script { { action = "stall", seconds = 1 } }
    local c = connect(srv)
    local t0 = socket.gettime()
    send_get(c, "/stall")
    c:settimeout(0.3)
    local data, err = c:receive(1)
    assert.is_nil(data)
    assert.are.equal("timeout", err)
    c:settimeout(3)
    local rest, err2, partial = c:receive("*a")
    local elapsed = socket.gettime() - t0
    c:close()
    -- luasocket: "*a" with nothing received before the close is an error
    assert.are.same({ nil, "closed", "" }, { rest, err2, partial })
    assert.is_true(elapsed >= 0.95, "closed after " .. elapsed .. "s")
    assert.is_true(elapsed < 2.5, "closed after " .. elapsed .. "s")
  end)

  it("stall makes a client with a short timeout time out", function()
    srv:script { { action = "stall", seconds = 1 } }
    local saved = http.TIMEOUT
    finally(function() http.TIMEOUT = saved end)
    http.TIMEOUT = 0.3
    local t0 = socket.gettime()
    local ok, err = request(srv.url .. "/")
    local elapsed = socket.gettime() - t0
    assert.is_nil(ok)
    assert.are.equal("timeout", err)
    assert.is_true(elapsed >= 0.25 and elapsed < 0.9, "timed out after " .. elapsed .. "s")
    assert.are.equal(1, #srv:log())
  end)

  it("reset aborts the connection with RST", function()
    srv:script { { action = "reset" }, { action = "reset" } }
    local ok, err = request(srv.url .. "/")
    assert.is_nil(ok)
    assert.are.equal("closed", err) -- luasocket reports ECONNRESET as "closed"
    -- tell RST from FIN: a pending socket error and a failing first send
    local c = connect(srv)
    send_get(c, "/reset")
    socket.select({ c }, nil, 2)
    local pending = c:getoption("error")
    local sent = c:send("x")
    c:close()
    assert.is_not_nil(pending)
    assert.is_nil(sent)
  end)

  it("close ends the connection (FIN) without any response", function()
    srv:script { { action = "close" }, { action = "close" } }
    local ok, err = request(srv.url .. "/")
    assert.is_nil(ok)
    assert.are.equal("closed", err)
    local c = connect(srv)
    send_get(c, "/close")
    socket.select({ c }, nil, 2)
    assert.is_nil(c:getoption("error"))
    local data, rerr, partial = c:receive("*a")
    c:close()
    assert.are.same({ nil, "closed", "" }, { data, rerr, partial })
  end)

  it("truncate announces the full Content-Length but sends a short body", function()
    srv:script { { action = "truncate", status = 200, body = '{"a":1}', send = 3 },
                 { action = "truncate", body = '{"a":1}', send = 3 } }
    local ok, err = request(srv.url .. "/")
    assert.is_nil(ok)
    assert.are.equal("closed", err)
    local c = connect(srv)
    send_get(c, "/truncate")
    local raw = c:receive("*a")
    c:close()
    local head, body = raw:match("^(.-\r\n)\r\n(.*)$")
    assert.is_truthy(head:match("^HTTP/1%.1 200"))
    assert.is_truthy(head:lower():match("\ncontent%-length: 7\r\n"))
    assert.are.equal('{"a', body)
  end)

  it("big streams a body of exactly the given size", function()
    local n = 50000000
    srv:script { { action = "big", status = 200, bytes = n } }
    local c = connect(srv, 5)
    send_get(c, "/big")
    local status, headers = read_head(c)
    assert.are.equal(200, status)
    assert.are.equal(tostring(n), headers["content-length"])
    local got, bad = 0, false
    while got < n do
      local chunk, err, partial = c:receive(math.min(1048576, n - got))
      chunk = chunk or partial
      assert.is_nil(err)
      if chunk:find("[^x]") then bad = true end
      got = got + #chunk
    end
    c:close()
    assert.are.equal(n, got)
    assert.is_false(bad)
  end)

  it("big with json = true is a valid JSON document of that size", function()
    srv:script { { action = "big", bytes = 100000, json = true } }
    local _, code, headers, body = request(srv.url .. "/")
    assert.are.equal(200, code)
    assert.are.equal("100000", headers["content-length"])
    assert.are.equal(100000, #body)
    assert.are.equal(100000 - 8, #cjson.decode(body).x)
  end)

  it("rejects invalid steps and forward without --upstream", function()
    assert.has_error(function() srv:script { { action = "explode" } } end)
    local ok, err = pcall(srv.script, srv, { { action = "forward" } })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):match("upstream"))
    ok, err = pcall(srv.script, srv, { { action = "forward_then", status = 500 } })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):match("forward_then needs"))
    ok, err = pcall(srv.default, srv, { action = "stall" })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):match("seconds"))
    -- a rejected script leaves the previous state alone
    local _, code = request(srv.url .. "/")
    assert.are.equal(200, code)
  end)

  describe("with --upstream", function()
    local up, front

    lazy_setup(function()
      up = fault_server.start()
      front = fault_server.start { upstream = up.url }
    end)

    lazy_teardown(function()
      if front then front:stop() end
      if up then up:stop() end
    end)

    before_each(function()
      up:reset()
      front:reset()
    end)

    it("forwards by default and relays status, headers and body", function()
      up:script { { status = 400, body = '{"__type":"ValidationException"}',
                    headers = { ["x-amzn-RequestId"] = "up-1" } } }
      local ok, code, headers, body = request(front.url .. "/fwd?x=1", {
        body = '{"TableName":"t"}',
        headers = { ["X-Amz-Target"] = "DynamoDB_20120810.PutItem" },
      })
      assert.are.equal(1, ok)
      assert.are.equal(400, code)
      assert.are.equal('{"__type":"ValidationException"}', body)
      assert.are.equal("up-1", headers["x-amzn-requestid"])
      assert.are.equal("application/x-amz-json-1.0", headers["content-type"])

      local seen = up:log()
      assert.are.equal(1, #seen)
      assert.are.equal("POST", seen[1].method)
      assert.are.equal("/fwd?x=1", seen[1].path)
      assert.are.equal('{"TableName":"t"}', seen[1].body)
      assert.are.equal("DynamoDB_20120810.PutItem", seen[1].headers["x-amz-target"])
      assert.are.equal("127.0.0.1:" .. front.port, seen[1].headers["host"]) -- original Host kept
      assert.are.equal(1, #front:log())
    end)

    it("mixes scripted faults with forwarding", function()
      front:script { { status = 503 }, { action = "forward" } }
      front:default { status = 200, body = "front" }
      local _, c1 = request(front.url .. "/")
      local _, c2, _, b2 = request(front.url .. "/")
      local _, c3, _, b3 = request(front.url .. "/")
      assert.are.same({ 503, 200, "{}", 200, "front" }, { c1, c2, b2, c3, b3 })
      assert.are.equal(1, #up:log())
      assert.are.equal(3, #front:log())
    end)

    it("forward_then forwards, discards the upstream's answer and sends its own", function()
      up:script { { status = 200, body = '{"done":true}', headers = { ["x-amzn-RequestId"] = "up-2" } } }
      front:script { { action = "forward_then", status = 500, body = '{"__type":"InternalServerError"}' } }
      local _, code, headers, body = request(front.url .. "/tx", { body = '{"TransactItems":[]}' })
      assert.are.equal(500, code)
      assert.are.equal('{"__type":"InternalServerError"}', body)
      assert.is_nil(headers["x-amzn-requestid"]) -- nothing of the upstream's answer leaks through
      local seen = up:log()
      assert.are.equal(1, #seen) -- but the upstream did get the request
      assert.are.equal("/tx", seen[1].path)
      assert.are.equal('{"TransactItems":[]}', seen[1].body)
      -- the next request forwards normally (the default)
      local _, c2, _, b2 = request(front.url .. "/")
      assert.are.same({ 200, "{}" }, { c2, b2 })
      assert.are.equal(2, #up:log())
    end)

    it("forward_then still answers when the upstream is down", function()
      local dead = fault_server.start()
      local dead_url = dead.url
      dead:stop()
      local lonely = fault_server.start { upstream = dead_url }
      lonely:script { { action = "forward_then", status = 503, body = "later" } }
      local _, code, _, body = request(lonely.url .. "/")
      lonely:stop()
      assert.are.same({ 503, "later" }, { code, body })
    end)

    it("by_target picks the step by X-Amz-Target, else otherwise, else the initial default", function()
      local tx = "DynamoDB_20120810.TransactWriteItems"
      front:default { action = "by_target", targets = { [tx] = { status = 500, body = "no" } } }
      local function send(target)
        local _, code, _, body = request(front.url .. "/", { body = "{}", headers = { ["X-Amz-Target"] = target } })
        return code, body
      end
      assert.are.same({ 500, "no" }, { send(tx) })
      assert.are.same({ 200, "{}" }, { send("DynamoDB_20120810.Query") }) -- forwarded
      assert.are.same({ 500, "no" }, { send(tx) })                        -- every time
      assert.are.equal(1, #up:log())
      assert.are.equal(3, #front:log())

      front:script { { action = "by_target", targets = { [tx] = { action = "forward" } },
                       otherwise = { status = 418 } } }
      assert.are.same({ 418, "" }, { send("DynamoDB_20120810.GetItem") })
      assert.are.equal(1, #up:log())

      for _, bad in ipairs({
        { action = "by_target" },
        { action = "by_target", targets = { [tx] = { action = "explode" } } },
        { action = "by_target", targets = {}, otherwise = { action = "stall" } },
        { action = "by_target", targets = { [tx] = { action = "by_target", targets = {} } } },
      }) do
        assert.is_false((pcall(front.script, front, { bad })))
      end
    end)
  end)

  describe("lifecycle", function()
    it("stop makes the server exit and is idempotent", function()
      local s = fault_server.start()
      local port = s.port
      local _, code = request(s.url .. "/")
      assert.are.equal(200, code)
      s:stop()
      s:stop()
      local c = socket.tcp()
      c:settimeout(1)
      local ok, err = c:connect("127.0.0.1", port)
      c:close()
      assert.is_nil(ok)
      assert.are.equal("connection refused", err)
      assert.has_error(function() s:log() end)
    end)

    it("start fails with a clear error when the server cannot run", function()
      local ok, err = pcall(fault_server.start, { python = "/nonexistent/python3" })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):match("fault_server: no PORT line"))
      assert.is_truthy(tostring(err):match("nonexistent"))
    end)
  end)
end)

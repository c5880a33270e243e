-- Secrets (issue 6, part 6): the secret key and the session token never
-- appear in errors, debug output, the client's fields or its string form;
-- the debug mode shows every request header but redacts Authorization and
-- X-Amz-Security-Token; TLS verification is off only through insecure_tls,
-- with a warning.
--
-- Marker credentials are random per run, so a leak cannot hide behind a
-- value that happens to be elsewhere. The access key id is not a secret (it
-- is in the Authorization header's credential scope by design): the
-- assertions are on the secret key and the token.
local ddb = require("ddb")
local core = require("ddb.core")
local config = require("ddb.config")
local fault_server = require("spec.support.fault_server")
local tls_server = require("spec.support.tls_server")
local R = require("support.run")

local function hex(n)
  return (core.random_bytes(n):gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local AKID = "AKIDMARK" .. hex(6):upper()
local SECRET = "secret+Mark/" .. hex(16)
local TOKEN = "tokenMark" .. hex(24)

-- Every string reachable from v: tostring of each value, table keys and
-- values, metatables, and the user values of userdata.
local function strings_of(v, out, seen)
  out, seen = out or {}, seen or {}
  local t = type(v)
  if t == "string" then
    out[#out + 1] = v
    return out
  end
  if t ~= "table" and t ~= "userdata" and t ~= "function" then
    out[#out + 1] = tostring(v)
    return out
  end
  if seen[v] then return out end
  seen[v] = true
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then out[#out + 1] = s end
  if t == "table" then
    for k, x in next, v do
      strings_of(k, out, seen)
      strings_of(x, out, seen)
    end
  elseif t == "userdata" then
    for i = 1, 4 do
      local uv, present = debug.getuservalue(v, i)
      if not present then break end
      strings_of(uv, out, seen)
    end
  end
  local mt = debug.getmetatable(v)
  if mt then strings_of(mt, out, seen) end
  return out
end

-- Asserts that neither the secret key nor the token occurs in any string of v.
local function assert_clean(v, what)
  for _, s in ipairs(strings_of(v)) do
    assert(not s:find(SECRET, 1, true), what .. " shows the secret key: " .. s)
    assert(not s:find(TOKEN, 1, true), what .. " shows the session token: " .. s)
  end
end

-- Runs a Lua chunk in a fresh lua5.4 with this run's module paths and the
-- given environment (a list of "NAME=value"); returns exit code, stdout, stderr.
local function run_lua(code, env)
  local script = R.write_file(os.tmpname(), code)
  local parts = { "env -u DDB_DEBUG -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN",
    "-u AWS_PROFILE -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_DYNAMODB",
    R.quote("LUA_PATH=" .. package.path), R.quote("LUA_CPATH=" .. package.cpath) }
  for _, e in ipairs(env or {}) do parts[#parts + 1] = R.quote(e) end
  parts[#parts + 1] = "timeout 60 lua5.4 " .. R.quote(script) .. " </dev/null"
  local _, rc, o, e = R.capture(table.concat(parts, " "))
  os.remove(script)
  return rc, o, e
end

describe("secrets", function()
  local server

  setup(function() server = fault_server.start() end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)

  -- A client with the marker credentials and an in-process debug sink.
  local function client(extra)
    local lines = {}
    local opts = { endpoint = server.url, region = "us-east-1", access_key_id = AKID, secret_access_key = SECRET,
      session_token = TOKEN, retry_base_ms = 1, retry_max_backoff_ms = 2,
      debug = function(line) lines[#lines + 1] = line end }
    for k, v in pairs(extra or {}) do opts[k] = v end
    if opts.session_token == false then opts.session_token = nil end
    return assert(ddb.client(opts)), lines
  end

  describe("debug output", function()
    it("shows each request's headers with Authorization and X-Amz-Security-Token redacted", function()
      server:default({ status = 200, body = '{"TableNames":["t1"]}', headers = { ["x-amzn-RequestId"] = "RID-OK-1" } })
      local c, lines = client()
      assert.same({ "t1" }, assert(c:call("ListTables", { Limit = 7 })).TableNames)
      c:close()

      -- what the server received: the token and the signature (so this is not vacuous)
      local log = server:log()
      assert.equal(1, #log)
      local sent = log[1].headers
      assert.equal(TOKEN, sent["x-amz-security-token"])
      assert.matches("Credential=" .. AKID .. "/", sent["authorization"], 1, true)
      local signature = assert(sent["authorization"]:match("Signature=(%x+)$"))

      assert.equal(2, #lines)
      local req, resp = lines[1], lines[2]
      assert.matches("^ddb: request POST " .. server.url:gsub("%p", "%%%0") .. "/ DynamoDB_20120810%.ListTables ", req)
      assert.matches("[X-Amz-Security-Token: <redacted>]", req, 1, true)
      assert.matches("[Authorization: <redacted>]", req, 1, true)
      assert.matches("[Host: " .. sent["host"] .. "]", req, 1, true)
      assert.matches("[Content-Type: application/x-amz-json-1.0]", req, 1, true)
      assert.matches("[X-Amz-Target: DynamoDB_20120810.ListTables]", req, 1, true)
      assert.matches("[X-Amz-Date: " .. sent["x-amz-date"] .. "]", req, 1, true)
      assert.matches("[User-Agent: " .. sent["user-agent"] .. "]", req, 1, true)
      assert.matches(" body 11 bytes$", req)
      assert.is_nil(req:find(signature, 1, true))
      assert.is_nil(req:find(AKID, 1, true)) -- not secret, but the header is redacted whole
      assert.matches("^ddb: response 200 request%-id: RID%-OK%-1 body 21 bytes %d+%.%d ms$", resp)
      assert_clean(lines, "the debug lines")
    end)

    it("shows no token header without a token, and the bodies with debug_body", function()
      server:default({ status = 200, body = '{"TableNames":[]}' })
      local c, lines = client({ session_token = false, debug_body = true })
      assert(c:call("DescribeTable", { TableName = "t" }))
      assert.is_nil(server:log()[1].headers["x-amz-security-token"])
      assert.is_nil(lines[1]:find("X-Amz-Security-Token", 1, true))
      assert.matches("[Authorization: <redacted>]", lines[1], 1, true)
      assert.matches(' body 17 bytes body: {"TableName":"t"}$', lines[1])
      assert.matches(' body 17 bytes %d+%.%d ms body: {"TableNames":%[%]}$', lines[2])
    end)

    it("keeps each line on one line and shows failures with their elapsed time", function()
      server:script({ { status = 500, body = "line one\nline two" } })
      server:default({ action = "stall", seconds = 1 })
      local c, lines = client({ debug_body = true, max_attempts = 2, timeout_ms = 200 })
      local _, err = c:call("ListTables", {})
      assert.equal("Timeout", err.code)
      assert.equal(4, #lines)
      assert.matches(" body: line one\\x0aline two$", lines[2])
      assert.matches("^ddb: response failed: Timeout: .* %d+%.%d ms$", lines[4])
      for _, l in ipairs(lines) do assert.is_nil(l:find("\n", 1, true)) end
    end)

    it("redacts the secret and the token wherever else they would show", function()
      local echo = ('{"__type":"x#ValidationException","message":"token %s, secret %s"}'):format(TOKEN, SECRET)
      server:default({ status = 400, body = echo })
      local c, lines = client({ debug_body = true })
      local _, err = c:call("ListTables", {})
      assert.equal("ValidationException", err.code)
      assert.equal("token <redacted>, secret <redacted>", err.message)
      assert.matches("token <redacted>, secret <redacted>", lines[2], 1, true)
      assert_clean({ err, tostring(err), lines }, "an echoed secret")
    end)

    it("cuts a body after 64 KiB only once redacted: a secret across the cut shows none of its bytes", function()
      local CUT = 65536
      -- the response: the token starts 10 bytes before the cut
      local resp = '{"x":"' .. ("b"):rep(CUT - 6 - 10) .. TOKEN .. '"}'
      server:default({ status = 200, body = resp })
      local c, lines = client({ debug_body = true })
      -- the request: {"TableName":"aaa...<secret>"}, the secret 10 bytes before the cut
      local name = ("a"):rep(CUT - 14 - 10) .. SECRET
      assert(c:call("DescribeTable", { TableName = name }))
      assert.equal(#('{"TableName":""}') + #name, #server:log()[1].body)
      assert.equal(2, #lines)
      assert.matches("a<redacted>%.%.%. %(2 more bytes%)$", lines[1])
      assert.matches("b<redacted>%.%.%. %(2 more bytes%)$", lines[2])
      for _, l in ipairs(lines) do
        assert.is_nil(l:find(SECRET:sub(1, 8), 1, true), "a prefix of the secret shows")
        assert.is_nil(l:find(TOKEN:sub(1, 8), 1, true), "a prefix of the token shows")
      end
      -- no secret at the cut: 64 KiB shown, then how many bytes were not
      lines[1], lines[2] = nil, nil
      server:default({ status = 200, body = '{"x":"' .. ("b"):rep(CUT + 100) .. '"}' })
      assert(c:call("DescribeTable", { TableName = ("a"):rep(CUT) }))
      assert.matches(' body: {"TableName":"a+%.%.%. %(16 more bytes%)$', lines[1])
      assert.equal(CUT, #lines[1]:match(" body: (.*)%.%.%. %(16 more bytes%)$"))
      assert.matches("b%.%.%. %(108 more bytes%)$", lines[2])
      assert_clean(lines, "the debug lines")
      c:close()
    end)

    it("propagates an error raised by the debug function, and forbids using the client from it", function()
      local c = assert(ddb.client({ endpoint = server.url, debug = function() error("sink broke", 0) end }))
      assert.has_error(function() c:call("ListTables", {}) end, "sink broke")
      local inner
      local reentrant
      reentrant = assert(ddb.client({ endpoint = server.url, debug = function()
        local ok, msg = pcall(reentrant.call, reentrant, "ListTables", {})
        inner = inner or { ok, msg }
      end }))
      assert(reentrant:call("ListTables", {}))
      assert.is_false(inner[1])
      assert.matches("used from its own debug function", inner[2], 1, true)
      local closer
      closer = assert(ddb.client({ endpoint = server.url, debug = function() closer:close() end }))
      assert.has_error(function() closer:call("ListTables", {}) end, nil)
      assert.matches("%(http", tostring(closer._h)) -- not closed from inside
      closer:close()
      assert.equal("ddb.core.client (closed)", tostring(closer._h))
    end)

    it("goes to stderr with DDB_DEBUG=1 (bodies with DDB_DEBUG=body), and nowhere without it", function()
      server:default({ status = 200, body = '{"TableNames":["stderr"]}' })
      local code = ([[
        local ddb = require("ddb")
        local c = assert(ddb.client{ endpoint = %q })
        local res = assert(c:call("ListTables", { Limit = 3 }))
        io.stdout:write(res.TableNames[1], "\n")
      ]]):format(server.url)
      local creds = { "AWS_ACCESS_KEY_ID=" .. AKID, "AWS_SECRET_ACCESS_KEY=" .. SECRET, "AWS_SESSION_TOKEN=" .. TOKEN }
      local function env(extra)
        local t = { table.unpack(creds) }
        t[#t + 1] = extra
        return t
      end

      local rc, out, err = run_lua(code, env("DDB_DEBUG=1"))
      assert.equal(0, rc, err)
      assert.equal("stderr\n", out)
      local lines = R.whole_lines(err)
      assert.equal(2, #lines, err)
      assert.matches("^ddb: request POST .*%[X%-Amz%-Security%-Token: <redacted>%] %[Authorization: <redacted>%]",
        lines[1])
      assert.matches(" body 11 bytes$", lines[1])
      assert.matches("^ddb: response 200 ", lines[2])
      assert_clean(err, "stderr with DDB_DEBUG=1")
      assert.equal(TOKEN, server:log()[1].headers["x-amz-security-token"])

      rc, out, err = run_lua(code, env("DDB_DEBUG=body"))
      assert.equal(0, rc, err)
      assert.equal("stderr\n", out)
      lines = R.whole_lines(err)
      assert.equal(2, #lines, err)
      assert.matches(' body: {"Limit":3}$', lines[1])
      assert.matches(' body: {"TableNames":%["stderr"%]}$', lines[2])
      assert_clean(err, "stderr with DDB_DEBUG=body")

      for _, e in ipairs({ creds, env("DDB_DEBUG=0") }) do
        rc, out, err = run_lua(code, e)
        assert.equal(0, rc, err)
        assert.same({ "stderr\n", "" }, { out, err })
      end
    end)

    it("is resolved from the options first, then DDB_DEBUG", function()
      local function env(t) return function(k) return t[k] end end
      local E = { endpoint = "http://localhost:8000" }
      local function with(o) local t = { endpoint = E.endpoint } for k, v in pairs(o) do t[k] = v end return t end
      local cfg = assert(config.resolve(E, env({ DDB_DEBUG = "1" })))
      assert.same({ true, false }, { cfg.debug, cfg.debug_body })
      cfg = assert(config.resolve(E, env({ DDB_DEBUG = "body" })))
      assert.same({ true, true }, { cfg.debug, cfg.debug_body })
      cfg = assert(config.resolve(with({ debug = false }), env({ DDB_DEBUG = "body" })))
      assert.same({ false, false }, { cfg.debug, cfg.debug_body })
      cfg = assert(config.resolve(E, env({ DDB_DEBUG = "false" })))
      assert.same({ false, false }, { cfg.debug, cfg.debug_body })
      local sink = function() end
      cfg = assert(config.resolve(with({ debug = sink, debug_body = true }), env({})))
      assert.same({ sink, true }, { cfg.debug, cfg.debug_body })
      local _, err = config.resolve(E, env({ DDB_DEBUG = "verbose" }))
      assert.equal("ConfigError", err.code)
      assert.matches("DDB_DEBUG must be 1, true, body, 0 or false", err.message, 1, true)
      assert.has_error(function() config.resolve(with({ debug = "yes" }), env({})) end)
      assert.has_error(function() config.resolve(with({ debug_body = 1 }), env({})) end)
    end)
  end)

  describe("errors", function()
    local function check(err, lines, what)
      assert.is_table(err, what)
      assert_clean(err, what .. ": the error")
      assert_clean(tostring(err), what .. ": tostring(err)")
      assert_clean(lines, what .. ": the debug lines")
    end

    it("of every kind show neither the secret nor the token", function()
      local cases = {
        { "a service error", "ValidationException", function()
          server:default({ status = 400, body = '{"__type":"x#ValidationException","message":"bad"}' })
        end },
        { "retries exhausted", "InternalServerError", function()
          server:default({ status = 500, body = '{"__type":"x#InternalServerError","message":"boom"}' })
        end },
        { "a non-DynamoDB error body", "InvalidResponse", function()
          server:default({ status = 403, body = "<html>" .. TOKEN .. "</html>" })
        end },
        { "a timeout", "Timeout", function() server:default({ action = "stall", seconds = 1 }) end },
        { "a connection reset", "TransportError", function() server:default({ action = "reset" }) end },
        { "a response that is not JSON", "InvalidResponse", function()
          server:default({ status = 200, body = "not json " .. TOKEN })
        end },
        { "a CRC32 mismatch", "CRC32CheckFailed", function()
          server:default({ status = 200, body = "{}", headers = { ["x-amz-crc32"] = "1" } })
        end },
      }
      for _, case in ipairs(cases) do
        server:reset()
        case[3]()
        local c, lines = client({ timeout_ms = 300, max_attempts = 2 })
        local res, err = c:call("ListTables", {})
        assert.is_nil(res, case[1])
        assert.equal(case[2], err.code, case[1])
        assert.is_true(#lines >= 2, case[1])
        check(err, lines, case[1])
        c:close()
      end
      -- what the server saw carried the token all along
      server:reset()
      local c = client()
      assert(c:call("ListTables", {}))
      assert.equal(TOKEN, server:log()[1].headers["x-amz-security-token"])
    end)

    it("of a closed port (TransportError) and of unencodable params (SerializationError) are clean", function()
      local lines = {}
      local c = assert(ddb.client({ endpoint = "http://127.0.0.1:" .. fault_server.closed_port(), access_key_id = AKID,
        secret_access_key = SECRET, session_token = TOKEN, max_attempts = 1,
        debug = function(l) lines[#lines + 1] = l end }))
      local _, err = c:call("ListTables", {})
      assert.equal("TransportError", err.code)
      check(err, lines, "a closed port")

      local c2, lines2 = client()
      _, err = c2:call("PutItem", { TableName = "t", Item = { pk = { S = "\xff" .. SECRET } } })
      assert.equal("SerializationError", err.code)
      check(err, lines2, "invalid UTF-8")
      _, err = c2:call("PutItem", { TableName = "t", Item = { pk = { S = string.rep("x", 409600) } } })
      assert.equal("ItemTooLarge", err.code)
      check(err, lines2, "an item over 400 KB")
      assert.equal(0, #server:log())
    end)

    it("of the configuration (ConfigError, or a raised option error) are clean", function()
      local function env(t) return function(k) return t[k] end end
      local dir = os.tmpname()
      local function cfg_err(opts, vars)
        local ok, res, err = pcall(config.resolve, opts, env(vars or {}))
        if not ok then return res end -- raised
        assert.is_nil(res)
        assert.equal("ConfigError", err.code)
        return err
      end
      local function with(extra)
        local t = { access_key_id = AKID, secret_access_key = SECRET, session_token = TOKEN }
        for k, v in pairs(extra) do t[k] = v end
        return t
      end
      local cases = {
        cfg_err({ endpoint = "https://" .. AKID .. ":" .. SECRET .. "@example.com/" }),
        cfg_err({ endpoint = "https://example.com/?X-Amz-Security-Token=" .. TOKEN }),
        cfg_err({ endpoint = "https://example.com/#" .. SECRET }),
        cfg_err({ endpoint = "https://" .. AKID .. ":" .. SECRET }),
        cfg_err(with({ endpoint = "http://localhost:8000", secret_access_key = SECRET .. "\n" })),
        cfg_err(with({ endpoint = "http://localhost:8000", session_token = TOKEN .. "\r\nX: y" })),
        cfg_err(with({ endpoint = "http://localhost:8000", access_key_id = AKID .. " " .. SECRET })),
        cfg_err(with({ endpoint = "http://localhost:8000", secret_acces_key = SECRET })),
        cfg_err({ endpoint = "http://localhost:8000", session_token = TOKEN }),
        cfg_err({ endpoint = "http://localhost:8000", secret_access_key = SECRET }),
        cfg_err({ endpoint = "http://localhost:8000", access_key_id = AKID, secret_access_key = 42 }),
        cfg_err({ endpoint = "http://localhost:8000" }, { AWS_SECRET_ACCESS_KEY = SECRET }),
        cfg_err({ endpoint = "http://localhost:8000" }, { AWS_ACCESS_KEY_ID = AKID .. "/" .. SECRET,
          AWS_SECRET_ACCESS_KEY = SECRET }),
        cfg_err({}, { AWS_ENDPOINT_URL = "http://u:" .. SECRET .. "@localhost:8000" }),
      }
      -- shared files: a secret with no key id, and a parse error right after a secret
      R.write_file(dir, "[default]\naws_secret_access_key = " .. SECRET .. "\naws_session_token = " .. TOKEN .. "\n")
      cases[#cases + 1] = cfg_err({ region = "us-east-1" }, { AWS_SHARED_CREDENTIALS_FILE = dir })
      R.write_file(dir, "[default]\naws_access_key_id = " .. AKID .. "\naws_secret_access_key = " .. SECRET
        .. "\n" .. TOKEN .. "\n")
      cases[#cases + 1] = cfg_err({ region = "us-east-1" }, { AWS_SHARED_CREDENTIALS_FILE = dir })
      R.write_file(dir, "[profile p]\naws_access_key_id = " .. AKID .. "\naws_secret_access_key = " .. SECRET
        .. "\naws_session_token = " .. TOKEN .. "\nregion = not a region!\n")
      cases[#cases + 1] = cfg_err({ profile = "p" },
        { AWS_CONFIG_FILE = dir, AWS_SHARED_CREDENTIALS_FILE = dir .. ".none" })
      os.remove(dir)
      assert.equal(17, #cases)
      for i, e in ipairs(cases) do assert_clean(e, "config case " .. i) end
    end)
  end)

  describe("the client", function()
    it("keeps no credential in its fields, metatable or string forms", function()
      local c = client()
      assert.equal("ddb.client(" .. server.url .. "/, us-east-1)", tostring(c))
      assert.equal("ddb.core.client (" .. server.url .. "/, us-east-1)", tostring(c._h))
      local names = {}
      for k in pairs(c) do names[#names + 1] = k end
      table.sort(names)
      assert.same({ "_h", "_quota", "credentials_source", "endpoint", "max_attempts", "region", "retry_base_ms",
        "retry_max_backoff_ms" }, names)
      assert.equal("options", c.credentials_source)
      assert_clean(c, "the client")
      assert_clean(getmetatable(c), "the client's metatable")
      assert(c:call("ListTables", {}))
      assert_clean(c, "the client after a call")
      c:close()
      assert.equal("ddb.core.client (closed)", tostring(c._h))
      assert.has_error(function() c:call("ListTables", {}) end, "ddb client is closed")
    end)

    it("has no credential in what config.resolve leaves behind but cfg.credentials", function()
      local cfg = assert(config.resolve({ endpoint = server.url, access_key_id = AKID, secret_access_key = SECRET,
        session_token = TOKEN }, function() return nil end))
      local creds = cfg.credentials
      cfg.credentials = nil
      assert_clean(cfg, "the resolved configuration")
      assert.same({ AKID, SECRET, TOKEN }, { creds.access_key_id, creds.secret_access_key, creds.session_token })
    end)
  end)
end)

describe("TLS", function()
  local srv

  setup(function() srv = tls_server.start() end)
  teardown(function() srv:stop() end)

  -- Creates a client on the HTTPS server in a subprocess, makes one call and
  -- prints "ok <first table>" or "err <code>: <message>"; returns stdout, stderr.
  local function try(opts_src, env)
    local code = ([[
      local ddb = require("ddb")
      local c = assert(ddb.client(%s))
      local res, err = c:call("ListTables", {})
      if res then print("ok " .. res.TableNames[1]) else print("err " .. err.code .. ": " .. err.message) end
    ]]):format(opts_src)
    local rc, out, err = run_lua(code, env)
    assert.equal(0, rc, err)
    return out, err
  end

  local function opts(extra)
    return ("{ endpoint = %q, max_attempts = 1, retry_base_ms = 1 %s }"):format(srv.url, extra or "")
  end

  it("verifies the certificate by default: a self-signed one fails with TransportError, no warning", function()
    local out, err = try(opts())
    assert.matches("^err TransportError: .*certificate", out)
    assert.equal("", err)
  end)

  it("accepts the certificate through ca_file", function()
    local out, err = try(opts((", ca_file = %q"):format(srv.cert)))
    assert.equal("ok tls-ok\n", out)
    assert.equal("", err)
  end)

  it("skips verification only with insecure_tls = true, and then warns once on stderr", function()
    local out, err = try(opts(", insecure_tls = true"))
    assert.equal("ok tls-ok\n", out)
    assert.equal("ddb: WARNING: TLS certificate verification is OFF for " .. srv.url .. "/\n", err)
    out, err = try(opts(", insecure_tls = false"))
    assert.matches("^err TransportError: ", out)
    assert.equal("", err)
  end)

  it("has no environment variable that turns verification off", function()
    local env = {}
    for _, name in ipairs({ "DDB_INSECURE_TLS", "DDB_TLS_VERIFY", "DDB_INSECURE", "AWS_INSECURE_TLS",
      "AWS_VERIFY_SSL", "INSECURE_TLS", "CURL_INSECURE", "SSL_VERIFY", "PYTHONHTTPSVERIFY" }) do
      env[#env + 1] = name .. (name:find("VERIFY") and "=0" or "=1")
    end
    env[#env + 1] = "DDB_DEBUG=1"
    local out, err = try(opts(), env)
    assert.matches("^err TransportError: .*certificate", out)
    assert.is_nil(err:find("WARNING", 1, true))
    -- nor does the resolved configuration read any
    local cfg = assert(config.resolve({ endpoint = srv.url }, function(k)
      return (k:find("INSECURE") or k:find("VERIFY") or k:find("TLS") or k:find("SSL")) and "1" or nil
    end))
    assert.is_false(cfg.insecure_tls)
  end)

  it("takes insecure_tls as a boolean only", function()
    local ok, msg = pcall(ddb.client, { endpoint = srv.url, insecure_tls = "yes" })
    assert.is_false(ok)
    assert.matches("ddb: option 'insecure_tls' must be a boolean, got string", msg, 1, true)
    assert.has_error(function() ddb.client({ endpoint = srv.url, insecure_tls = 1 }) end)
  end)
end)

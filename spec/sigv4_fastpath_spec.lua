-- The client's prepared SigV4 signer (ddb_sigv4_prep in src/sigv4.h) against
-- the general one (core.sign): the same Authorization, byte for byte.
--
-- 1. core._sigv4_prep (a test-only binding of the prepared signer) beside
--    core.sign, for many random requests: hosts (ports, IPv6, whitespace to
--    trim, every length mod 64), tokens (none, long, with spaces), targets,
--    bodies (empty, {}, unicode, binary, large, around SHA-256 block
--    sizes), timestamps over several days and secrets, signed one after
--    another with the same prepared signer (its kept state: scope date,
--    HMAC pads). What the general signer refuses, the prepared one refuses.
-- 2. The client end to end: requests captured by the loopback fault server,
--    their Authorization recomputed with core.sign from the X-Amz-Date sent.
local core = require("ddb.core")
local fault_server = require("spec.support.fault_server")

local SEED = tonumber(os.getenv("DDB_SPEC_SEED") or "") or 20240601
local CT = "application/x-amz-json-1.0"

local function rnd_string(n, alphabet)
  local t = {}
  for i = 1, n do
    local k = math.random(1, #alphabet)
    t[i] = alphabet:sub(k, k)
  end
  return table.concat(t)
end

local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local TARGET_CHARS = ALNUM .. "_."
local TOKEN_CHARS = ALNUM .. "+/="

local function rnd_bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, 255)) end
  return table.concat(t)
end

local function rnd_timestamp()
  return ("%04d%02d%02dT%02d%02d%02dZ"):format(math.random(2000, 2099), math.random(1, 12),
    math.random(1, 28), math.random(0, 23), math.random(0, 59), math.random(0, 59))
end

local function rnd_host()
  local r = math.random(1, 8)
  if r == 1 then return "127.0.0.1:" .. math.random(1, 65535) end
  if r == 2 then return "[::1]:" .. math.random(1, 65535) end
  if r == 3 then return "dynamodb." .. rnd_string(9, "abcdefghijklmnop-") .. ".amazonaws.com" end
  if r == 4 then return "" end
  if r == 5 then -- whitespace the general signer trims and folds
    local ws = { " ", "\t", "\v", "\f", "  \t " }
    return ws[math.random(#ws)] .. "a" .. ws[math.random(#ws)] .. "b:1" .. ws[math.random(#ws)]
  end
  return rnd_string(math.random(1, 140), ALNUM .. ".-:[]")
end

local function rnd_token()
  local r = math.random(1, 5)
  if r == 1 then return nil end
  if r == 2 then return "" end
  if r == 3 then return "  " .. rnd_string(20, TOKEN_CHARS) .. "   " .. rnd_string(5, TOKEN_CHARS) .. " " end
  if r == 4 then return "   " end
  return rnd_string(math.random(1, 1200), TOKEN_CHARS)
end

local function rnd_target()
  local r = math.random(1, 6)
  if r == 1 then return "DynamoDB_20120810.ListTables" end
  if r == 2 then return "DynamoDBStreams_20120810.GetRecords" end
  if r == 3 then return "" end
  if r == 4 then return rnd_string(math.random(1, 3), TARGET_CHARS) end
  if r == 5 then return "x\1y\127\255" end -- kept as is by both (no whitespace)
  return rnd_string(math.random(1, 200), TARGET_CHARS)
end

local function rnd_body()
  local r = math.random(1, 8)
  if r == 1 then return "" end
  if r == 2 then return "{}" end
  if r == 3 then return '{"S":"é漢字🙂 \\u0000","N":"-1.5e10"}' end
  if r == 4 then return rnd_bytes(math.random(0, 300)) end
  if r == 5 then return rnd_string(math.random(50, 70), ALNUM) end -- around one block
  if r == 6 then -- large: a random piece repeated, cut at a random length
    return (rnd_string(997, ALNUM .. "{}\":,"):rep(301)):sub(1, math.random(100000, 300000))
  end
  if r == 7 then return "\0" end
  return rnd_string(math.random(0, 2000), ALNUM)
end

local function general(req, timestamp, secret, target, body)
  local headers = { { "Host", req.host }, { "Content-Type", CT }, { "X-Amz-Target", target } }
  return core.sign {
    method = "POST", path = "/", query = "", headers = headers, body = body, region = req.region,
    service = req.service, access_key_id = req.access_key_id, secret_access_key = secret,
    session_token = req.session_token, timestamp = timestamp, normalize_path = true, sign_body = false,
  }.authorization
end

local function show(v)
  return (("%q"):format(v):gsub("\\\n", "\\n"))
end

describe("the prepared SigV4 signer", function()
  setup(function() math.randomseed(SEED) end)

  it("signs exactly as core.sign, for random requests signed in turn by one prepared signer", function()
    local fast_calls = 0
    for case = 1, 300 do
      local req = {
        host = rnd_host(), region = math.random(2) == 1 and "us-east-1" or rnd_string(math.random(1, 20), ALNUM .. "-"),
        service = math.random(3) > 1 and "dynamodb" or rnd_string(math.random(1, 12), ALNUM),
        access_key_id = math.random(2) == 1 and "AKIDEXAMPLE" or rnd_string(math.random(1, 40), ALNUM),
        session_token = rnd_token(),
      }
      local p = assert(core._sigv4_prep(req))
      local secrets = { rnd_string(40, TOKEN_CHARS), rnd_string(math.random(1, 100), TOKEN_CHARS) }
      local day = rnd_timestamp()
      for _ = 1, math.random(1, 6) do
        -- the same day (kept scope and pads), another second, another day, another secret
        local r = math.random(1, 4)
        local ts = r == 1 and day or r == 2 and (day:sub(1, 9) .. rnd_timestamp():sub(10)) or rnd_timestamp()
        local secret = secrets[math.random(1, 2)]
        local target, body = rnd_target(), rnd_body()
        local want = general(req, ts, secret, target, body)
        local got = p:sign(ts, secret, target, body)
        if got ~= want then
          error(("case %d (seed %d): host %s token %s target %s body of %d bytes at %s:\n  prepared %s\n  general  %s")
            :format(case, SEED, show(req.host), show(tostring(req.session_token)), show(target), #body, ts,
              tostring(got), want))
        end
        fast_calls = fast_calls + 1
      end
    end
    assert.is_true(fast_calls > 900)
  end)

  it("covers every position of the prepared start and of the target in a SHA-256 block", function()
    local secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    for hl = 0, 140 do
      local req = { host = rnd_string(hl, ALNUM .. ".:"), region = "us-east-1", service = "dynamodb",
        access_key_id = "AKIDEXAMPLE", session_token = hl % 2 == 0 and rnd_string(hl * 7, TOKEN_CHARS) or nil }
      local p = assert(core._sigv4_prep(req))
      for tl = 0, 70, 7 do
        local target = rnd_string(tl, TARGET_CHARS)
        local body = rnd_string((hl + tl) % 130, ALNUM)
        local ts = "20150830T123600Z"
        assert.equal(general(req, ts, secret, target, body), p:sign(ts, secret, target, body))
      end
    end
  end)

  it("matches a fixed vector (so that both signers cannot drift together)", function()
    local p = assert(core._sigv4_prep { host = "dynamodb.us-east-1.amazonaws.com", region = "us-east-1",
      service = "dynamodb", access_key_id = "AKIDEXAMPLE" })
    local got = p:sign("20150830T123600Z", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      "DynamoDB_20120810.ListTables", "{}")
    assert.equal(general({ host = "dynamodb.us-east-1.amazonaws.com", region = "us-east-1", service = "dynamodb",
      access_key_id = "AKIDEXAMPLE" }, "20150830T123600Z", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      "DynamoDB_20120810.ListTables", "{}"), got)
    assert.matches("^AWS4%-HMAC%-SHA256 Credential=AKIDEXAMPLE/20150830/us%-east%-1/dynamodb/aws4_request, "
      .. "SignedHeaders=content%-type;host;x%-amz%-date;x%-amz%-target, Signature=%x+$", got)
    local canonical = table.concat({
      "POST", "/", "", "content-type:" .. CT, "host:dynamodb.us-east-1.amazonaws.com",
      "x-amz-date:20150830T123600Z", "x-amz-target:DynamoDB_20120810.ListTables", "",
      "content-type;host;x-amz-date;x-amz-target",
      "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", -- sha256("{}")
    }, "\n")
    local full = core.sign { method = "POST", path = "/", headers = { { "Host", "dynamodb.us-east-1.amazonaws.com" },
      { "Content-Type", CT }, { "X-Amz-Target", "DynamoDB_20120810.ListTables" } }, body = "{}",
      region = "us-east-1", service = "dynamodb", access_key_id = "AKIDEXAMPLE",
      secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", timestamp = "20150830T123600Z" }
    assert.equal(canonical, full.canonical_request)
  end)

  it("refuses what core.sign refuses, and requests it would not sign the same way", function()
    local ok = { host = "h", region = "us-east-1", service = "dynamodb", access_key_id = "AKID" }
    local function with(k, v)
      local t = {}
      for a, b in pairs(ok) do t[a] = b end
      t[k] = v
      return t
    end
    local bad = {
      with("session_token", "tok\tx"), with("session_token", "tok\1"), with("session_token", "tok\127"),
      with("region", "us/east"), with("region", "us east"), with("region", ""),
      with("service", "dynamo/db"), with("service", ""), with("access_key_id", "AK,ID"),
      with("access_key_id", "AK/ID"), with("access_key_id", ""), with("access_key_id", "AK ID"),
    }
    for _, req in ipairs(bad) do
      local p, err = core._sigv4_prep(req)
      assert.is_nil(p)
      assert.is_string(err)
      assert.has_error(function() general(req, "20150830T123600Z", "secret", "T", "{}") end)
    end
    local p = assert(core._sigv4_prep(ok))
    -- an invalid timestamp: both refuse
    assert.is_nil(p:sign("20150230T123600Z", "secret", "T", "{}"))
    assert.has_error(function() general(ok, "20150230T123600Z", "secret", "T", "{}") end)
    -- a target with whitespace (core.sign trims it): left to the general signer
    for _, target in ipairs({ " T", "T ", "A B", "A\tB", "\n" }) do
      assert.is_nil(p:sign("20150830T123600Z", "secret", target, "{}"))
    end
    -- an empty secret: no signing key, so nothing to sign with
    assert.is_nil(p:sign("20150830T123600Z", "", "T", "{}"))
    -- and still signs right after the refusals
    assert.equal(general(ok, "20150830T123600Z", "secret", "T", "{}"), p:sign("20150830T123600Z", "secret", "T", "{}"))
  end)
end)

describe("the client's signed requests", function()
  local server

  setup(function()
    math.randomseed(SEED + 1)
    server = fault_server.start()
  end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)

  local function client(opts)
    local o = { url = server.url, host = server.url:match("//(.*)$"), region = "us-east-1",
      access_key_id = "AKIDEXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
    for k, v in pairs(opts or {}) do o[k] = v end
    return core.client(o), o
  end

  -- Sends each request, then checks every logged one against core.sign.
  local function check(c, o, requests)
    for _, r in ipairs(requests) do
      local status = c:request(r.target, r.body, r.streams)
      assert.equal(200, status)
    end
    local log = server:log()
    assert.equal(#requests, #log)
    for i, r in ipairs(requests) do
      local h = log[i].headers
      assert.equal(r.target, h["x-amz-target"])
      assert.matches("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$", h["x-amz-date"])
      local body = type(r.body) == "string" and r.body or log[i].body
      local req = { host = r.streams and (o.streams_host or o.host) or o.host, region = o.region, service = "dynamodb",
        access_key_id = o.access_key_id, session_token = o.session_token }
      local want = general(req, h["x-amz-date"], o.secret_access_key, r.target, body)
      if h["authorization"] ~= want then
        error(("request %d (seed %d): target %s, body of %d bytes, host %s:\n  sent    %s\n  general %s"):format(
          i, SEED, r.target, #body, show(req.host), tostring(h["authorization"]), want))
      end
      if o.session_token and o.session_token ~= "" then -- as sent, but for the server's trimming (HTTP OWS)
        assert.equal(o.session_token:match("^%s*(.-)%s*$"), h["x-amz-security-token"]:match("^%s*(.-)%s*$"))
      else
        assert.is_nil(h["x-amz-security-token"])
      end
    end
  end

  local function random_requests(n)
    local out = {}
    for i = 1, n do
      local body
      local r = math.random(1, 6)
      if r == 1 then body = "{}"
      elseif r == 2 then body = { TableName = "t" .. i, Item = { pk = { S = "é漢字🙂" .. rnd_string(10, ALNUM) } } }
      elseif r == 3 then body = ""
      elseif r == 4 then
        body = '{"Key":{"pk":{"S":"' .. rnd_string(1009, ALNUM):rep(200):sub(1, math.random(1, 200000)) .. '"}}}'
      elseif r == 5 then body = rnd_bytes(math.random(0, 100))
      else body = { Limit = i } end
      out[i] = { target = "DynamoDB_20120810." .. rnd_string(math.random(1, 30), ALNUM .. "_."), body = body,
        streams = math.random(4) == 1 }
    end
    return out
  end

  it("are signed exactly as core.sign signs them, without a session token", function()
    local c, o = client()
    check(c, o, random_requests(40))
    c:close()
  end)

  it("are signed exactly as core.sign signs them, with a session token and a streams host", function()
    local c, o = client { session_token = rnd_string(900, TOKEN_CHARS), streams_host = "streams.example:8443",
      streams_url = server.url }
    check(c, o, random_requests(40))
    c:close()
  end)

  it("are signed exactly as core.sign signs them, with a token and host the signer trims", function()
    local c, o = client { session_token = "  tok  en " .. rnd_string(30, TOKEN_CHARS) .. "  ",
      host = " \t" .. server.url:match("//(.*)$") .. "  ", access_key_id = rnd_string(20, ALNUM),
      region = "eu-west-3", secret_access_key = rnd_string(60, TOKEN_CHARS) }
    check(c, o, random_requests(20))
    c:close()
  end)

  it("still fail as the general signer fails, where it would refuse the credentials", function()
    local c = client { session_token = "tok\tx" }
    assert.has_error(function() c:request("DynamoDB_20120810.ListTables", "{}") end,
      "signing failed: session_token contains control characters")
    c:close()
    c = client { access_key_id = "AK,ID" }
    assert.has_error(function() c:request("DynamoDB_20120810.ListTables", "{}") end,
      "signing failed: access_key_id is empty or contains '/', ',', whitespace or control characters")
    c:close()
    assert.equal(0, #server:log())
  end)
end)

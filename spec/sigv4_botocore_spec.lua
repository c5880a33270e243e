-- ddb.core.sign against botocore's SigV4Auth on a few hundred random,
-- DynamoDB-style requests (seeded, so every run signs the same ones).
-- botocore comes from the project venv (`make deps`); without it this spec
-- fails: it never skips.
local core = require "ddb.core"
local cjson = require "cjson"

local PYTHON = ".venv/bin/python"
local HELPER = "spec/support/botocore_sign.py"
local COUNT = 300
local SEED = 0x5EED5167

-- xorshift64: a private generator, so math.random's state is left alone.
local function generator(seed)
  local s = seed
  local rng = {}
  function rng.int(lo, hi) -- lo..hi inclusive
    s = s ~ (s << 13)
    s = s ~ (s >> 7)
    s = s ~ (s << 17)
    return lo + (s % (hi - lo + 1))
  end
  function rng.pick(list) return list[rng.int(1, #list)] end
  function rng.chance(p) return rng.int(1, 1000) <= p * 1000 end
  function rng.word(alphabet, lo, hi)
    local t = {}
    for i = 1, rng.int(lo, hi) do
      local k = rng.int(1, #alphabet)
      t[i] = alphabet:sub(k, k)
    end
    return table.concat(t)
  end
  return rng
end

local UPPER, LOWER, DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "0123456789"
local B64 = UPPER .. LOWER .. DIGITS .. "+/"
local VALUE_CHARS = UPPER .. LOWER .. DIGITS .. "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
local OPS = { "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
              "BatchWriteItem", "TransactWriteItems", "TransactGetItems", "CreateTable", "DescribeTable" }
local REGIONS = { "us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2", "sa-east-1",
                  "local", "cn-north-1", "us-gov-west-1" }
local WS = { " ", "  ", "\t", " \t ", "   ", "\n ", "\r\n\t" }
local UNICODE = { 0xE9, 0xFC, 0x3B1, 0x416, 0x5D0, 0x627, 0x20AC, 0x2603, 0x65E5, 0x672C, 0xAC00,
                  0x1F600, 0x1F4A9, 0x10348, 0xFFFD }

local function random_text(rng, maxlen)
  local t = {}
  for i = 1, rng.int(0, maxlen) do
    if rng.chance(0.25) then
      t[i] = utf8.char(rng.pick(UNICODE))
    else
      t[i] = rng.word(VALUE_CHARS .. "    ", 1, 1)
    end
  end
  return table.concat(t)
end

local function random_json(rng, depth)
  local kind = rng.int(1, depth > 2 and 4 or 6)
  if kind == 1 then return { S = random_text(rng, 24) } end
  if kind == 2 then return { N = tostring(rng.int(-100000, 100000)) } end
  if kind == 3 then return { BOOL = rng.chance(0.5) } end
  if kind == 4 then return { NULL = true } end
  local t = {}
  for _ = 1, rng.int(0, 4) do t[random_text(rng, 8)] = random_json(rng, depth + 1) end
  return kind == 5 and { M = t } or t
end

local function random_body(rng, op)
  local r = rng.int(1, 10)
  if r == 1 then return "" end
  if r == 2 then -- arbitrary bytes, not even UTF-8
    local t = {}
    for i = 1, rng.int(1, 64) do t[i] = string.char(rng.int(0, 255)) end
    return table.concat(t)
  end
  return cjson.encode({ TableName = "t-" .. rng.word(LOWER, 1, 10), Operation = op,
                        Item = random_json(rng, 0), Note = random_text(rng, 40) })
end

local function odd_spacing(rng, words)
  local t = { rng.chance(0.5) and rng.pick(WS) or "" }
  for i, w in ipairs(words) do
    if i > 1 then t[#t + 1] = rng.chance(0.5) and rng.pick(WS) or " " end
    t[#t + 1] = w
  end
  t[#t + 1] = rng.chance(0.5) and rng.pick(WS) or ""
  return table.concat(t)
end

local function random_case(rng, s)
  return (s:gsub("%a", function(c)
    if rng.chance(0.3) then return rng.chance(0.5) and c:upper() or c:lower() end
  end))
end

local function random_timestamp(rng, day)
  local t = day and (day + rng.int(0, 86399)) or rng.int(946684800, 4102444799) -- 2000..2099
  return os.date("!%Y%m%dT%H%M%SZ", t)
end

-- Credential tuples from small sets that differ in one part at a time (16
-- combinations, more than the signer's cache holds), so that its derived-key
-- cache hits, misses and evicts along the batch.
local function make_pool(rng)
  local today = 1700000000 - 1700000000 % 86400
  return {
    access_key_id = "AKIA" .. rng.word(UPPER .. DIGITS, 16, 16),
    secrets = { rng.word(B64, 40, 40), rng.word(B64, 40, 40) },
    regions = { "us-east-1", "us-east-2" },
    services = { "dynamodb", "dynamodbx" },
    days = { today, today + 86400 },
  }
end

local function random_request(rng, id, pool)
  local req = { id = id, method = "POST", path = "/" }
  local host = rng.pick({
    function() return "localhost:" .. rng.int(1, 65535) end,
    function() return "127.0.0.1:" .. rng.int(1024, 65535) end,
    function() return "dynamodb." .. rng.pick(REGIONS) .. ".amazonaws.com" end,
    function() return rng.word(LOWER .. DIGITS .. "-", 1, 20) .. ".example:" .. rng.int(1, 65535) end,
  })()
  req.url = "https://" .. host .. "/"
  local op = rng.pick(OPS)
  local headers = {
    { rng.chance(0.2) and "host" or "Host", host },
    { "Content-Type", "application/x-amz-json-1.0" },
    { "X-Amz-Target", "DynamoDB_20120810." .. op },
  }
  for _ = 1, rng.int(0, 4) do
    local name = random_case(rng, rng.pick({ "X-Custom-", "X-Amz-Meta-", "Accept-", "X-" })
      .. rng.word(LOWER .. DIGITS .. "-", 1, 12))
    local words = {}
    for i = 1, rng.int(0, 4) do words[i] = rng.word(VALUE_CHARS, 1, 10) end
    headers[#headers + 1] = { name, odd_spacing(rng, words) }
    if rng.chance(0.2) then -- the same name again, maybe in another case
      headers[#headers + 1] = { random_case(rng, name), odd_spacing(rng, { rng.word(VALUE_CHARS, 0, 8) }) }
    end
  end
  if rng.chance(0.3) then headers[#headers + 1] = { "Accept-Encoding", "identity" } end
  if rng.chance(0.4) then -- one botocore never signs (sent, left out of SignedHeaders)
    headers[#headers + 1] = { random_case(rng, rng.pick({ "User-Agent", "Expect", "Connection", "Keep-Alive", "TE",
      "Transfer-Encoding", "Upgrade", "X-Amzn-Trace-Id", "traceparent", "tracestate", "baggage", "Trailer",
      "Proxy-Authorization", "Proxy-Authenticate" })), rng.word(VALUE_CHARS, 1, 20) }
  end
  req.body = random_body(rng, op)
  if rng.chance(0.3) then headers[#headers + 1] = { "Content-Length", tostring(#req.body) } end
  for i = #headers, 2, -1 do -- shuffle
    local j = rng.int(1, i)
    headers[i], headers[j] = headers[j], headers[i]
  end
  req.headers = headers

  if rng.chance(0.5) then
    req.access_key_id, req.secret_access_key = pool.access_key_id, rng.pick(pool.secrets)
    req.region, req.service = rng.pick(pool.regions), rng.pick(pool.services)
    req.timestamp = random_timestamp(rng, rng.pick(pool.days))
  else
    req.access_key_id = rng.pick({ "AKIA", "ASIA", "AKID" }) .. rng.word(UPPER .. DIGITS, 12, 20)
    local secret = rng.word(B64, 1, rng.pick({ 40, 60, 61, 100 })) -- around the 64-byte HMAC block
    if rng.chance(0.1) then secret = secret .. utf8.char(rng.pick(UNICODE)) end
    req.secret_access_key = secret
    req.region = rng.chance(0.8) and rng.pick(REGIONS) or rng.word(LOWER, 2, 4) .. "-" .. rng.word(LOWER, 3, 9)
      .. "-" .. rng.int(1, 9)
    req.service = rng.chance(0.8) and "dynamodb" or rng.word(LOWER, 2, 12)
    req.timestamp = random_timestamp(rng)
  end
  if rng.chance(0.35) then req.session_token = rng.word(B64, 16, 400) .. rng.pick({ "", "=", "==" }) end
  req.sign_body = rng.chance(0.25)
  return req
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- Signs every request with botocore in one Python process; returns results by id.
local function botocore_sign(requests)
  local py = io.open(PYTHON, "rb")
  if not py then
    error(PYTHON .. " not found: the botocore differential needs the project venv; run `make deps` "
      .. "(or `make test`, which creates it)", 0)
  end
  py:close()
  local input, errfile = os.tmpname(), os.tmpname()
  local f = assert(io.open(input, "wb"))
  for _, r in ipairs(requests) do
    f:write(cjson.encode({
      id = r.id, method = r.method, url = r.url, headers = r.headers, body_hex = hex(r.body),
      region = r.region, service = r.service, access_key_id = r.access_key_id,
      secret_access_key = r.secret_access_key, session_token = r.session_token,
      timestamp = r.timestamp, sign_body = r.sign_body,
    }), "\n")
  end
  f:close()
  local p = assert(io.popen(table.concat({ PYTHON, HELPER, shell_quote(input), "2>" .. shell_quote(errfile) }, " ")))
  local text = p:read("a")
  local ok, how, code = p:close()
  local stderr = read_all(errfile)
  os.remove(input)
  os.remove(errfile)
  if not ok then
    error(string.format("%s %s failed (%s %s):\n%s", PYTHON, HELPER, tostring(how), tostring(code), stderr), 0)
  end
  local results = {}
  for line in text:gmatch("[^\n]+") do
    local r = cjson.decode(line)
    results[r.id] = r
  end
  return results
end

local function describe_request(r)
  local lines = { string.format("request #%d (seed 0x%X): %s %s region=%s service=%s timestamp=%s "
    .. "session_token=%s sign_body=%s body=%d bytes", r.id, SEED, r.method, r.url, r.region, r.service,
    r.timestamp, r.session_token and "yes" or "no", tostring(r.sign_body), #r.body) }
  for _, h in ipairs(r.headers) do lines[#lines + 1] = string.format("  %q: %q", h[1], h[2]) end
  return table.concat(lines, "\n")
end

describe("sigv4 against botocore SigV4Auth", function()
  it("signs " .. COUNT .. " random DynamoDB-style requests exactly like botocore", function()
    local rng = generator(SEED)
    local pool = make_pool(rng)
    local requests = {}
    for id = 1, COUNT do requests[id] = random_request(rng, id, pool) end

    local expected = botocore_sign(requests)
    local compared, mismatches = 0, {}
    for _, r in ipairs(requests) do
      local want = expected[r.id]
      assert.is_table(want, "botocore returned no result for request #" .. r.id)
      local got = core.sign({
        method = r.method, path = r.path, headers = r.headers, body = r.body, region = r.region,
        service = r.service, access_key_id = r.access_key_id, secret_access_key = r.secret_access_key,
        session_token = r.session_token, timestamp = r.timestamp, sign_body = r.sign_body,
      })
      for _, field in ipairs({ "canonical_request", "string_to_sign", "signature", "authorization" }) do
        if got[field] ~= want[field] then
          mismatches[#mismatches + 1] = string.format("%s\n%s differs:\n--- botocore\n%s\n--- ddb\n%s",
            describe_request(r), field, want[field], got[field])
          break
        end
      end
      compared = compared + 1
    end
    assert.are.equal(COUNT, compared)
    if #mismatches > 0 then
      error(string.format("%d of %d requests differ from botocore; the first:\n%s", #mismatches, COUNT,
        mismatches[1]), 0)
    end
  end)
end)

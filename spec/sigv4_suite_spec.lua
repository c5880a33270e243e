-- ddb.core.sign: the AWS SigV4 header-signing test suite (when present in
-- ../shared/sigv4-suite), fixed vectors copied from it (always run), and the
-- Lua API contract: argument checking, derived-key cache, secrets.
local core = require "ddb.core"
local cjson = require "cjson"
local R = require "support.run"

local SUITE = "../shared/sigv4-suite"

-- Parses an HTTP/1.1 request as written in the suite: request line, header
-- lines (a line starting with whitespace continues the previous value, a name
-- may repeat), blank line, body.
local function parse_request(text)
  local head, body = text:match("^(.-)\n\n(.*)$")
  if not head then head, body = text:gsub("\n$", ""), "" end
  local lines = {}
  for line in (head .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  local reqline = table.remove(lines, 1)
  local method = reqline:match("^(%S+) ")
  local version = reqline:match(" (%S+)$")
  local target = reqline:sub(#method + 2, #reqline - #version - 1)
  local path, query = target:match("^([^?]*)%??(.*)$")
  local headers = {}
  for _, line in ipairs(lines) do
    if line:match("^[ \t]") then
      local last = headers[#headers]
      last[2] = last[2] .. "\n" .. line
    else
      local name, value = line:match("^([^:]+):(.*)$")
      assert(name, "bad header line: " .. line)
      headers[#headers + 1] = { name, value }
    end
  end
  return { method = method, path = path, query = query, headers = headers, body = body }
end

local function header_lines(list)
  local out = {}
  for _, h in ipairs(list) do out[#out + 1] = h[1]:lower() .. ":" .. h[2] end
  table.sort(out)
  return out
end

local function find_header(list, name)
  for _, h in ipairs(list) do
    if h[1]:lower() == name then return h[2] end
  end
end

local function list_cases()
  local ok, lfs = pcall(require, "lfs")
  assert(ok, "lfs (luafilesystem) is needed to list the suite")
  local names = {}
  for name in lfs.dir(SUITE) do
    local dir = SUITE .. "/" .. name
    if name:sub(1, 1) ~= "." and lfs.attributes(dir .. "/context.json", "mode") == "file"
        and lfs.attributes(dir .. "/header-canonical-request.txt", "mode") == "file" then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  return names
end

-- get-vanilla, get-vanilla-with-session-token and post-x-www-form-urlencoded
-- from the suite (awslabs/aws-c-auth, Apache License 2.0), embedded so that
-- the signer is checked even when the suite is absent.
local AKID = "AKIDEXAMPLE"
local SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
local function vanilla(over)
  local req = {
    method = "GET", path = "/", headers = { { "Host", "example.amazonaws.com" } },
    region = "us-east-1", service = "service", access_key_id = AKID,
    secret_access_key = SECRET, timestamp = "20150830T123600Z",
  }
  for k, v in pairs(over or {}) do req[k] = v end
  return req
end
local VANILLA_SIG = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
local VANILLA_CREQ = table.concat({
  "GET", "/", "", "host:example.amazonaws.com", "x-amz-date:20150830T123600Z", "",
  "host;x-amz-date", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
}, "\n")
local VANILLA_STS = table.concat({
  "AWS4-HMAC-SHA256", "20150830T123600Z", "20150830/us-east-1/service/aws4_request",
  "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
}, "\n")
local VANILLA_AUTH = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
  .. "SignedHeaders=host;x-amz-date, Signature=" .. VANILLA_SIG

describe("sigv4 fixed vectors", function()
  it("get-vanilla", function()
    local out = core.sign(vanilla())
    assert.are.equal(VANILLA_CREQ, out.canonical_request)
    assert.are.equal(VANILLA_STS, out.string_to_sign)
    assert.are.equal(VANILLA_SIG, out.signature)
    assert.are.equal(VANILLA_AUTH, out.authorization)
    assert.are.same({ { "X-Amz-Date", "20150830T123600Z" }, { "Authorization", VANILLA_AUTH } }, out.headers)
  end)

  it("get-vanilla-with-session-token", function()
    local token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
    local out = core.sign(vanilla({ session_token = token }))
    assert.are.equal("07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8", out.signature)
    assert.matches("SignedHeaders=host;x-amz-date;x-amz-security-token,", out.authorization, 1, true)
    assert.are.same({ "X-Amz-Security-Token", token }, out.headers[2])
    assert.are.equal(3, #out.headers)
  end)

  it("post-x-www-form-urlencoded (sign_body)", function()
    local out = core.sign(vanilla({
      method = "POST", body = "Param1=value1", sign_body = true,
      headers = {
        { "Content-Type", "application/x-www-form-urlencoded" },
        { "Host", "example.amazonaws.com" }, { "Content-Length", "13" },
      },
    }))
    local body_sha = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
    assert.are.equal(table.concat({
      "POST", "/", "", "content-length:13", "content-type:application/x-www-form-urlencoded",
      "host:example.amazonaws.com", "x-amz-content-sha256:" .. body_sha, "x-amz-date:20150830T123600Z", "",
      "content-length;content-type;host;x-amz-content-sha256;x-amz-date", body_sha,
    }, "\n"), out.canonical_request)
    assert.are.equal("d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b", out.signature)
    assert.are.same({ "X-Amz-Content-Sha256", body_sha }, out.headers[2])
  end)
end)

local suite_present = R.read_file(SUITE .. "/README.md") ~= nil
if suite_present then
  describe("sigv4 test suite (" .. SUITE .. ")", function()
    local cases = list_cases()

    it("has cases", function()
      assert.is_true(#cases >= 30, "only " .. #cases .. " cases found in " .. SUITE)
    end)

    for _, name in ipairs(cases) do
      it(name, function()
        local dir = SUITE .. "/" .. name .. "/"
        local ctx = cjson.decode(R.read_file(dir .. "context.json"))
        local req = parse_request(R.read_file(dir .. "request.txt"))
        local token = ctx.credentials.token
        if ctx.omit_session_token then token = nil end
        local out = core.sign({
          method = req.method, path = req.path, query = req.query, headers = req.headers, body = req.body,
          region = ctx.region, service = ctx.service,
          access_key_id = ctx.credentials.access_key_id,
          secret_access_key = ctx.credentials.secret_access_key,
          session_token = token,
          timestamp = ctx.timestamp:gsub("[-:]", ""),
          normalize_path = ctx.normalize, sign_body = ctx.sign_body,
        })
        assert.are.equal(R.read_file(dir .. "header-canonical-request.txt"), out.canonical_request)
        assert.are.equal(R.read_file(dir .. "header-string-to-sign.txt"), out.string_to_sign)
        assert.are.equal(R.read_file(dir .. "header-signature.txt"), out.signature)

        local signed = parse_request(R.read_file(dir .. "header-signed-request.txt"))
        assert.are.equal(find_header(signed.headers, "authorization"), out.authorization)
        -- the request as sent: its own headers plus those sign returned (plus
        -- the token, added unsigned after signing, for the omit_session_token case)
        local sent = {}
        for _, h in ipairs(req.headers) do sent[#sent + 1] = h end
        for _, h in ipairs(out.headers) do sent[#sent + 1] = h end
        if ctx.omit_session_token and ctx.credentials.token then
          sent[#sent + 1] = { "X-Amz-Security-Token", ctx.credentials.token }
        end
        assert.are.same(header_lines(signed.headers), header_lines(sent))
      end)
    end
  end)
end

describe("sign() API", function()
  local function sign_error(req)
    local ok, err = pcall(core.sign, req)
    assert.is_false(ok, "sign should have raised")
    assert.is_string(err)
    return err
  end

  it("rejects wrong argument types, naming the field", function()
    assert.matches("table expected", sign_error(nil), 1, true)
    assert.matches("table expected", sign_error("GET /"), 1, true)
    local cases = {
      { { method = 1 }, "field 'method': string expected, got number" },
      { { method = false }, "field 'method': string expected, got boolean" },
      { { path = {} }, "field 'path': string expected, got table" },
      { { query = 3 }, "field 'query': string expected, got number" },
      { { body = true }, "field 'body': string expected, got boolean" },
      { { region = false }, "field 'region': string expected, got boolean" },
      { { service = 1 }, "field 'service': string expected, got number" },
      { { access_key_id = {} }, "field 'access_key_id': string expected, got table" },
      { { secret_access_key = 42 }, "field 'secret_access_key': string expected, got number" },
      { { session_token = false }, "field 'session_token': string expected, got boolean" },
      { { timestamp = 20150830 }, "field 'timestamp': string expected, got number" },
      { { normalize_path = "yes" }, "field 'normalize_path': boolean expected, got string" },
      { { sign_body = 1 }, "field 'sign_body': boolean expected, got number" },
      { { headers = "Host: x" }, "field 'headers': table expected, got string" },
      { { headers = { "Host: x" } }, "field 'headers[1]': {name, value} pair of strings expected" },
      { { headers = { { "Host", "h" }, { "X-A" } } }, "field 'headers[2]': {name, value} pair" },
      { { headers = { { "X-A", 1 } } }, "field 'headers[1]': {name, value} pair" },
      { { region = "us\0east" }, "field 'region': must not contain NUL bytes" },
    }
    for _, c in ipairs(cases) do
      assert.matches(c[2], sign_error(vanilla(c[1])), 1, true)
    end
    local missing = vanilla()
    missing.secret_access_key = nil
    assert.matches("field 'secret_access_key': string expected, got nil", sign_error(missing), 1, true)
    missing = vanilla()
    missing.headers = nil
    assert.matches("field 'headers': table expected, got nil", sign_error(missing), 1, true)
  end)

  it("rejects invalid values", function()
    for _, ts in ipairs({ "2015-08-30T12:36:00Z", "20150830T123600", "20151330T123600Z",
                          "20150230T123600Z", "20150830T246000Z", "20150830t123600z", "" }) do
      assert.matches("field 'timestamp'", sign_error(vanilla({ timestamp = ts })), 1, true)
    end
    assert.is_string(core.sign(vanilla({ timestamp = "20160229T235959Z" })).signature)
    assert.matches("sign: region", sign_error(vanilla({ region = "us/east" })), 1, true)
    assert.matches("sign: service", sign_error(vanilla({ service = "" })), 1, true)
    assert.matches("sign: method", sign_error(vanilla({ method = "GET X" })), 1, true)
    assert.matches("sign: access_key_id", sign_error(vanilla({ access_key_id = "A/B" })), 1, true)
    assert.matches("sign: secret_access_key is empty", sign_error(vanilla({ secret_access_key = "" })), 1, true)
    assert.matches("sign: session_token", sign_error(vanilla({ session_token = "a\r\nb" })), 1, true)
    assert.matches("header name", sign_error(vanilla({ headers = { { "Bad Name", "x" } } })), 1, true)
    assert.matches("header name", sign_error(vanilla({ headers = { { "", "x" } } })), 1, true)
    assert.matches("header name", sign_error(vanilla({ headers = { { "X:Y", "x" } } })), 1, true)
    assert.matches("header name", sign_error(vanilla({ headers = { { "Caf\u{e9}", "x" } } })), 1, true)
    for _, name in ipairs({ "Authorization", "X-Amz-Date", "x-amz-security-token", "X-AMZ-CONTENT-SHA256" }) do
      assert.matches("sign adds them", sign_error(vanilla({ headers = { { name, "x" } } })), 1, true)
    end
  end)

  it("defaults the timestamp to now", function()
    local req = vanilla()
    req.timestamp = nil
    local before = os.time()
    local out = core.sign(req)
    local after = os.time()
    local date = out.headers[1][2]
    assert.are.equal("X-Amz-Date", out.headers[1][1])
    assert.is_truthy(date == os.date("!%Y%m%dT%H%M%SZ", before) or date == os.date("!%Y%m%dT%H%M%SZ", after),
      "X-Amz-Date " .. date .. " is not the current time")
    assert.matches("x-amz-date:" .. date, out.canonical_request, 1, true)
  end)

  it("canonicalises headers, path and query", function()
    local out = core.sign(vanilla({
      path = "/a b/./c/../ü", query = "b=2&a=%7e x&&a=1&c",
      headers = {
        { "Host", "example.amazonaws.com" }, { "X-B", "  two \t  spaces\n  folded  " },
        { "x-a", "1" }, { "X-A", " 2 " }, { "x-empty", "   " },
      },
    }))
    local lines = {}
    for line in (out.canonical_request .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
    assert.are.equal("/a%20b/%C3%BC", lines[2])
    assert.are.equal("a=1&a=~%20x&b=2&c=", lines[3])
    assert.are.same({ "host:example.amazonaws.com", "x-a:1,2", "x-amz-date:20150830T123600Z",
                      "x-b:two spaces folded", "x-empty:", "" }, { table.unpack(lines, 4, 9) })
    assert.are.equal("host;x-a;x-amz-date;x-b;x-empty", lines[10])
    local raw = core.sign(vanilla({ path = "/a//./b/", normalize_path = false }))
    assert.matches("^GET\n/a//%./b/\n", raw.canonical_request)
  end)

  it("gives the same signature twice and keys its cache by secret, date, region and service", function()
    local first = core.sign(vanilla())
    assert.are.equal(VANILLA_SIG, first.signature)
    assert.are.equal(VANILLA_SIG, core.sign(vanilla()).signature)
    -- each variant differs from get-vanilla in one part of the cache key. With
    -- get-vanilla's key evicted and the variant's cached, a cache that ignored
    -- that part would hand get-vanilla the variant's key.
    local variants = {
      { secret_access_key = SECRET .. "x" },
      { secret_access_key = SECRET:sub(1, -2) },
      { timestamp = "20150831T123600Z" },
      { timestamp = "20140830T123600Z" },
      { region = "us-east-2" },
      { service = "dynamodb" },
      { region = "us-east-1s", service = "ervice" },
      { region = "us-east-", service = "1service" },
    }
    local function evict()
      for i = 1, 64 do core.sign(vanilla({ service = "evict" .. i })) end
    end
    for i, v in ipairs(variants) do
      evict()
      local other = core.sign(vanilla(v)).signature
      assert.are_not.equal(VANILLA_SIG, other, "variant " .. i)
      assert.are.equal(VANILLA_SIG, core.sign(vanilla()).signature, "after variant " .. i)
      evict()
      assert.are.equal(other, core.sign(vanilla(v)).signature, "variant " .. i .. " signed cold")
    end
    -- same date, other time: same derived key, other signature
    local later = core.sign(vanilla({ timestamp = "20150830T235959Z" }))
    assert.are_not.equal(VANILLA_SIG, later.signature)
    assert.are.equal(later.signature, core.sign(vanilla({ timestamp = "20150830T235959Z" })).signature)
    -- a long secret (HMAC key longer than a block) is cached apart from its prefix
    local long = ("k"):rep(200)
    local a = core.sign(vanilla({ secret_access_key = long })).signature
    local b = core.sign(vanilla({ secret_access_key = long .. "k" })).signature
    assert.are_not.equal(a, b)
    assert.are.equal(a, core.sign(vanilla({ secret_access_key = long })).signature)
  end)

  it("never returns the secret", function()
    local secret = "s3cr3t/Key+" .. ("Z"):rep(30)
    local out = core.sign(vanilla({ secret_access_key = secret, session_token = "tok", sign_body = true,
                                     body = "{}", query = "a=b" }))
    local function check(s, what)
      assert.is_nil(s:find(secret, 1, true), what .. " holds the secret")
    end
    for k, v in pairs(out) do
      if type(v) == "string" then check(v, k) end
    end
    for i, h in ipairs(out.headers) do
      check(h[1], "headers[" .. i .. "][1]")
      check(h[2], "headers[" .. i .. "][2]")
    end
    check(sign_error(vanilla({ secret_access_key = secret, region = "" })), "error message")
    check(sign_error(vanilla({ secret_access_key = secret, timestamp = "x" })), "error message")
  end)

  it("survives a nested call from a metamethod", function()
    local req = setmetatable({}, {
      __index = function(_, k)
        local nested = core.sign(vanilla())
        assert.are.equal(VANILLA_SIG, nested.signature)
        return vanilla()[k]
      end,
    })
    assert.are.equal(VANILLA_SIG, core.sign(req).signature)
    -- the shared state is usable again after nested and failed calls
    sign_error(vanilla({ method = 1 }))
    assert.are.equal(VANILLA_SIG, core.sign(vanilla()).signature)
  end)
end)

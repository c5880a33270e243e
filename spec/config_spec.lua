-- Specs for ddb.config: endpoint parsing and SDK-style resolution of endpoint,
-- region, profile, credentials and options. Pure Lua, no C module, no network.
local config = require("ddb.config")
local errors = require("ddb.errors")
local R = require("support.run")

-- Fake environment: getenv reading from a table.
local function fake_env(vars)
  return function(name) return vars[name] end
end

-- Resolves and asserts success.
local function ok(opts, vars)
  local cfg, err = config.resolve(opts, fake_env(vars or {}))
  assert.is_nil(err and tostring(err))
  assert.is_table(cfg)
  return cfg
end

-- Resolves and asserts a ConfigError; returns its message.
local function fails(opts, vars)
  local cfg, err = config.resolve(opts, fake_env(vars or {}))
  assert.is_nil(cfg)
  assert.is_true(errors.is(err))
  assert.are.equal("ConfigError", err.code)
  return tostring(err)
end

-- Raises; returns the error message.
local function raises(fn, ...)
  local ok_, msg = pcall(fn, ...)
  assert.is_false(ok_)
  assert.is_string(msg)
  return msg
end

local CREDS = { access_key_id = "AKIDOPTS", secret_access_key = "opts-secret" }
local function with(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

describe("ddb.config.parse_endpoint", function()
  it("parses a loopback URL with a port and defaults the path", function()
    local e = assert(config.parse_endpoint("http://localhost:8000"))
    assert.are.same({
      url = "http://localhost:8000/", scheme = "http", host = "localhost:8000",
      hostname = "localhost", port = 8000, path = "/", loopback = true,
    }, e)
  end)

  it("lowercases the scheme and host and drops the default port from host and url", function()
    local e = assert(config.parse_endpoint("HTTPS://Dynamodb.US-East-1.amazonaws.com:443/"))
    assert.are.equal("https", e.scheme)
    assert.are.equal("dynamodb.us-east-1.amazonaws.com", e.host)
    assert.are.equal(443, e.port)
    assert.are.equal("https://dynamodb.us-east-1.amazonaws.com/", e.url)
    assert.is_false(e.loopback)
    e = assert(config.parse_endpoint("http://example.com:80"))
    assert.are.equal("example.com", e.host)
    assert.are.equal(80, e.port)
    e = assert(config.parse_endpoint("https://example.com"))
    assert.are.equal(443, e.port)
    assert.are.equal("example.com", e.host)
  end)

  it("keeps a non-default port, including the other scheme's default", function()
    local e = assert(config.parse_endpoint("http://example.com:443"))
    assert.are.equal("example.com:443", e.host)
    e = assert(config.parse_endpoint("https://example.com:80/"))
    assert.are.equal("example.com:80", e.host)
    assert.are.equal("https://example.com:80/", e.url)
  end)

  it("rejects a path other than / (requests are signed for /, so one would never verify)", function()
    for _, u in ipairs({ "https://proxy.example.com:8443/dynamo/v1/", "http://localhost:8000/x", "http://h//" }) do
      local e, err = config.parse_endpoint(u)
      assert.is_nil(e, u)
      assert.are.equal("ConfigError", err.code)
      assert.matches("must not have a path", tostring(err), 1, true)
    end
    assert.are.equal("/", assert(config.parse_endpoint("https://proxy.example.com:8443/")).path)
  end)

  it("handles IPv6 literals", function()
    local e = assert(config.parse_endpoint("http://[::1]:8000"))
    assert.are.equal("[::1]:8000", e.host)
    assert.are.equal("::1", e.hostname)
    assert.are.equal(8000, e.port)
    assert.are.equal("http://[::1]:8000/", e.url)
    assert.is_true(e.loopback)
    e = assert(config.parse_endpoint("http://[0:0:0:0:0:0:0:1]/"))
    assert.is_true(e.loopback)
    assert.are.equal("[0:0:0:0:0:0:0:1]", e.host)
    e = assert(config.parse_endpoint("https://[2001:DB8::1]:443/"))
    assert.are.equal("[2001:db8::1]", e.host)
    assert.is_false(e.loopback)
    assert.is_false(assert(config.parse_endpoint("http://[::]:8000")).loopback)
  end)

  it("recognises loopback hosts", function()
    for _, u in ipairs({ "http://localhost", "http://LOCALHOST:1", "http://db.localhost:8000",
      "http://127.0.0.1:8000", "http://127.255.3.4", "http://[::ffff:127.0.0.1]" }) do
      assert.is_true(assert(config.parse_endpoint(u)).loopback, u)
    end
    for _, u in ipairs({ "http://128.0.0.1", "http://localhost.example.com", "http://mylocalhost",
      "http://127.0.0.1.nip.io", "http://10.0.0.1:8000", "http://dynamodb-local:8000" }) do
      assert.is_false(assert(config.parse_endpoint(u)).loopback, u)
    end
  end)

  it("rejects what is not an http(s) URL with a host", function()
    for _, u in ipairs({
      "", "   ", "localhost:8000", "//localhost:8000", "ftp://example.com", "file:///etc/passwd",
      "http://", "http:///path", "http://:8000", "http://host:", "http://host:abc", "http://host:0",
      "http://host:65536", "http://host:8000:9000", "http://[::1", "http://[::1]x", "http://[nope]",
      "http://[fe80::1%25eth0]", "http://host name", "http://a..b", "http://.a",
      "http://host/?a=b", "http://host?x", "http://host/#frag",
    }) do
      local e, err = config.parse_endpoint(u)
      assert.is_nil(e, u)
      assert.is_true(errors.is(err), u)
      assert.are.equal("ConfigError", err.code)
    end
  end)

  it("rejects userinfo without echoing the password", function()
    for _, u in ipairs({ "AKIAEXAMPLE:hunter2@dynamodb.example.com", "http:/AKIA:hunter2@h", "AKIA:a/hunter2@h/x" }) do
      local _, err = config.parse_endpoint(u)
      assert.are.equal("ConfigError", err.code, u)
      assert.is_nil(tostring(err):find("hunter2", 1, true), tostring(err))
    end
    local e, err = config.parse_endpoint("http://admin:hunter2@localhost:8000")
    assert.is_nil(e)
    assert.are.equal("ConfigError", err.code)
    assert.matches("user info", tostring(err), 1, true)
    assert.is_nil(tostring(err):find("hunter2", 1, true))
    local _, err2 = config.parse_endpoint("http://localhost:8000/?X-Amz-Signature=topsecret")
    assert.is_nil(tostring(err2):find("topsecret", 1, true))
  end)

  it("raises on a non-string", function()
    raises(config.parse_endpoint, nil)
    raises(config.parse_endpoint, 8000)
  end)
end)

describe("ddb.config.resolve options", function()
  it("fills defaults", function()
    local cfg = ok({ endpoint = "http://localhost:8000" })
    assert.are.equal(30000, cfg.timeout_ms)
    assert.are.equal(3000, cfg.connect_timeout_ms)
    assert.are.equal(3, cfg.max_attempts)
    assert.are.equal(50, cfg.retry_base_ms)
    assert.are.equal(20000, cfg.retry_max_backoff_ms)
    assert.is_false(cfg.debug)
    assert.is_nil(cfg.ca_file)
    assert.are.equal("default", cfg.profile)
  end)

  it("takes the numeric and boolean options", function()
    local cfg = ok({ endpoint = "http://localhost:8000", timeout_ms = 500, connect_timeout_ms = 100.0,
      max_attempts = 1, retry_base_ms = 5, retry_max_backoff_ms = 100, debug = true })
    assert.are.equal(500, cfg.timeout_ms)
    assert.are.equal(100, cfg.connect_timeout_ms)
    assert.are.equal("integer", math.type(cfg.connect_timeout_ms))
    assert.are.equal(1, cfg.max_attempts)
    assert.are.equal(5, cfg.retry_base_ms)
    assert.are.equal(100, cfg.retry_max_backoff_ms)
    assert.is_true(cfg.debug)
  end)

  it("raises on unknown options, naming them", function()
    local msg = raises(config.resolve, { endpont = "http://localhost:8000" }, fake_env({}))
    assert.matches("endpont", msg, 1, true)
    assert.matches("did you mean 'endpoint'", msg, 1, true)
    msg = raises(config.resolve, { colour = "blue" }, fake_env({}))
    assert.matches("unknown option 'colour'", msg, 1, true)
    raises(config.resolve, { "http://localhost:8000" }, fake_env({}))
  end)

  it("raises on wrong types, naming the option, at the caller's level", function()
    local cases = {
      { "endpoint", 8000 }, { "region", true }, { "profile", {} }, { "access_key_id", 1 },
      { "secret_access_key", false }, { "session_token", 7 }, { "timeout_ms", "30" }, { "timeout_ms", 0 },
      { "timeout_ms", 1.5 }, { "connect_timeout_ms", -1 }, { "max_attempts", 0 }, { "ca_file", false },
      { "retry_base_ms", "50" }, { "retry_max_backoff_ms", true }, { "debug", 1 }, { "region", "" },
    }
    for _, case in ipairs(cases) do
      local name = case[1]
      local opts = with(CREDS, { endpoint = "http://localhost:8000", [name] = case[2] })
      local msg = raises(config.resolve, opts, fake_env({}))
      assert.matches("'" .. name .. "'", msg, 1, true)
    end
    local _, msg = pcall(function()
      local cfg = config.resolve({ debug = "yes" }, fake_env({}))  -- not a tail call: keeps this frame
      return cfg
    end)
    assert.matches("config_spec.lua:%d+:", msg)
    raises(config.resolve, "http://localhost", fake_env({}))
    raises(config.resolve, {}, "not a function")
  end)

  it("raises when only one of the key pair (or a token alone) is given", function()
    raises(config.resolve, { access_key_id = "AKID" }, fake_env({}))
    raises(config.resolve, { secret_access_key = "s3cr3t-only" }, fake_env({}))
    raises(config.resolve, { session_token = "tok" }, fake_env({}))
    local msg = raises(config.resolve, { secret_access_key = "s3cr3t-only" }, fake_env({}))
    assert.is_nil(msg:find("s3cr3t-only", 1, true))
  end)

  it("defaults getenv to os.getenv", function()
    local cfg = assert(config.resolve(with(CREDS, { endpoint = "http://localhost:8000", region = "eu-west-1",
      max_attempts = 2, ca_file = "/dev/null" })))
    assert.are.equal("eu-west-1", cfg.region)
  end)
end)

describe("ddb.config.resolve endpoint and region", function()
  local CRED_ENV = { AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "env-secret" }

  it("opts.endpoint beats AWS_ENDPOINT_URL_DYNAMODB", function()
    local cfg = ok({ endpoint = "http://localhost:1111" }, with(CRED_ENV, {
      AWS_ENDPOINT_URL_DYNAMODB = "http://localhost:2222", AWS_ENDPOINT_URL = "http://localhost:3333" }))
    assert.are.equal("http://localhost:1111/", cfg.endpoint.url)
    assert.are.same(cfg.endpoint, cfg.streams_endpoint)
  end)

  it("AWS_ENDPOINT_URL_DYNAMODB beats AWS_ENDPOINT_URL, which still applies to the streams service", function()
    local cfg = ok(nil, with(CRED_ENV, {
      AWS_ENDPOINT_URL_DYNAMODB = "http://localhost:2222", AWS_ENDPOINT_URL = "http://localhost:3333" }))
    assert.are.equal("http://localhost:2222/", cfg.endpoint.url)
    assert.are.equal("http://localhost:3333/", cfg.streams_endpoint.url)
    cfg = ok(nil, with(CRED_ENV, { AWS_ENDPOINT_URL_DYNAMODB = "http://localhost:2222" }))
    assert.are.equal("http://localhost:2222/", cfg.streams_endpoint.url) -- nothing for streams: follows DynamoDB
  end)

  it("treats empty endpoint variables as unset", function()
    local cfg = ok(nil, with(CRED_ENV, { AWS_ENDPOINT_URL_DYNAMODB = "", AWS_ENDPOINT_URL = "",
      AWS_ENDPOINT_URL_DYNAMODB_STREAMS = "", AWS_REGION = "eu-west-1" }))
    assert.are.equal("https://dynamodb.eu-west-1.amazonaws.com/", cfg.endpoint.url)
    assert.are.equal("https://streams.dynamodb.eu-west-1.amazonaws.com/", cfg.streams_endpoint.url)
  end)

  it("fallback_endpoint replaces only the AWS default", function()
    local fb = { fallback_endpoint = "http://localhost:8000" }
    local cfg = ok(fb, { AWS_REGION = "eu-west-1" })
    assert.are.equal("http://localhost:8000/", cfg.endpoint.url)
    assert.are.equal("http://localhost:8000/", cfg.streams_endpoint.url)
    assert.are.equal("placeholder (loopback endpoint)", cfg.credentials_source)
    cfg = ok(fb, { AWS_ENDPOINT_URL = "" })
    assert.are.equal("http://localhost:8000/", cfg.endpoint.url)
    assert.are.equal("us-east-1", cfg.region)
    cfg = ok(fb, { AWS_ENDPOINT_URL = "http://localhost:3333", AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "true" })
    assert.are.equal("http://localhost:8000/", cfg.endpoint.url)
    cfg = ok(fb, with(CRED_ENV, { AWS_ENDPOINT_URL = "http://localhost:3333" }))
    assert.are.equal("http://localhost:3333/", cfg.endpoint.url)
    cfg = ok(with(fb, { endpoint = "http://localhost:1111" }), {})
    assert.are.equal("http://localhost:1111/", cfg.endpoint.url)
    assert.matches("fallback_endpoint", fails({ fallback_endpoint = "localhost:8000" }, {}), 1, true)
  end)

  it("AWS_ENDPOINT_URL beats the default", function()
    local cfg = ok(nil, with(CRED_ENV, { AWS_ENDPOINT_URL = "http://localhost:3333", AWS_REGION = "eu-west-1" }))
    assert.are.equal("http://localhost:3333/", cfg.endpoint.url)
    assert.are.equal("http://localhost:3333/", cfg.streams_endpoint.url)
    assert.are.equal("eu-west-1", cfg.region)
  end)

  it("AWS_ENDPOINT_URL_DYNAMODB_STREAMS sets only the streams endpoint", function()
    local cfg = ok(nil, with(CRED_ENV, { AWS_ENDPOINT_URL = "http://localhost:3333",
      AWS_ENDPOINT_URL_DYNAMODB_STREAMS = "http://localhost:4444" }))
    assert.are.equal("http://localhost:3333/", cfg.endpoint.url)
    assert.are.equal("http://localhost:4444/", cfg.streams_endpoint.url)
  end)

  it("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS skips the environment endpoints", function()
    local cfg = ok(nil, with(CRED_ENV, { AWS_ENDPOINT_URL = "http://localhost:3333", AWS_REGION = "eu-west-1",
      AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "true" }))
    assert.are.equal("https://dynamodb.eu-west-1.amazonaws.com/", cfg.endpoint.url)
  end)

  it("defaults to the regional AWS endpoints", function()
    local cfg = ok(nil, with(CRED_ENV, { AWS_REGION = "ap-southeast-2" }))
    assert.are.equal("https://dynamodb.ap-southeast-2.amazonaws.com/", cfg.endpoint.url)
    assert.are.equal("dynamodb.ap-southeast-2.amazonaws.com", cfg.endpoint.host)
    assert.are.equal("https://streams.dynamodb.ap-southeast-2.amazonaws.com/", cfg.streams_endpoint.url)
    assert.is_false(cfg.endpoint.loopback)
    cfg = ok(nil, with(CRED_ENV, { AWS_REGION = "cn-north-1" }))
    assert.are.equal("https://dynamodb.cn-north-1.amazonaws.com.cn/", cfg.endpoint.url)
    assert.are.equal("https://streams.dynamodb.cn-north-1.amazonaws.com.cn/", cfg.streams_endpoint.url)
  end)

  it("returns a ConfigError for a bad endpoint, naming where it came from", function()
    local msg = fails({ endpoint = "ftp://localhost" }, CRED_ENV)
    assert.matches("option endpoint", msg, 1, true)
    msg = fails(nil, with(CRED_ENV, { AWS_ENDPOINT_URL = "localhost:8000" }))
    assert.matches("AWS_ENDPOINT_URL", msg, 1, true)
    msg = fails(nil, with(CRED_ENV, { AWS_ENDPOINT_URL_DYNAMODB = "http://u:pw-secret@localhost" }))
    assert.matches("AWS_ENDPOINT_URL_DYNAMODB", msg, 1, true)
    assert.is_nil(msg:find("pw-secret", 1, true))
  end)

  it("region: opts beats AWS_REGION beats AWS_DEFAULT_REGION", function()
    local env = with(CRED_ENV, { AWS_REGION = "eu-west-1", AWS_DEFAULT_REGION = "eu-central-1" })
    assert.are.equal("us-west-2", ok({ region = "us-west-2" }, env).region)
    assert.are.equal("eu-west-1", ok(nil, env).region)
    env.AWS_REGION = nil
    assert.are.equal("eu-central-1", ok(nil, env).region)
    env.AWS_REGION = ""  -- empty counts as unset
    assert.are.equal("eu-central-1", ok(nil, env).region)
  end)

  it("defaults the region to us-east-1 when an endpoint was given", function()
    assert.are.equal("us-east-1", ok({ endpoint = "http://localhost:8000" }).region)
    assert.are.equal("us-east-1", ok(nil, { AWS_ENDPOINT_URL = "http://127.0.0.1:8000" }).region)
  end)

  it("returns a ConfigError when there is no region and no endpoint", function()
    local msg = fails(CREDS, {})
    assert.matches("no AWS region", msg, 1, true)
    assert.are.equal("region", select(2, config.resolve(CREDS, fake_env({}))).missing)
    assert.matches("AWS_REGION", msg, 1, true)
    assert.matches("region=", msg, 1, true)
  end)

  it("returns a ConfigError for a region that cannot be a host name label", function()
    local msg = fails(CREDS, { AWS_REGION = "us east 1" })
    assert.matches("AWS_REGION", msg, 1, true)
  end)
end)

describe("ddb.config.resolve credentials without files", function()
  it("opts beat the environment", function()
    local cfg = ok(with(CREDS, { region = "us-east-1", session_token = "opts-token" }), {
      AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "env-secret", AWS_SESSION_TOKEN = "env-token" })
    assert.are.same({ access_key_id = "AKIDOPTS", secret_access_key = "opts-secret", session_token = "opts-token" },
      cfg.credentials)
    assert.are.equal("options", cfg.credentials_source)
  end)

  it("does not mix the environment's session token into option credentials", function()
    local cfg = ok(with(CREDS, { region = "us-east-1" }), { AWS_SESSION_TOKEN = "env-token" })
    assert.is_nil(cfg.credentials.session_token)
  end)

  it("takes the environment, with the session token", function()
    local cfg = ok({ region = "us-east-1" }, {
      AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "env-secret", AWS_SESSION_TOKEN = "env-token" })
    assert.are.same({ access_key_id = "AKIDENV", secret_access_key = "env-secret", session_token = "env-token" },
      cfg.credentials)
    assert.are.equal("environment", cfg.credentials_source)
  end)

  it("returns a ConfigError for a session token of spaces only", function()
    local msg = fails(nil, { AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "env-secret",
      AWS_SESSION_TOKEN = "   ", AWS_REGION = "us-east-1" })
    assert.matches("session token (from environment) is only spaces", msg, 1, true)
    msg = fails(with(CREDS, { session_token = " " }), { AWS_REGION = "us-east-1" })
    assert.matches("session token (from options) is only spaces", msg, 1, true)
  end)

  it("returns a ConfigError for half the environment pair, without the secret", function()
    local msg = fails({ region = "us-east-1" }, { AWS_SECRET_ACCESS_KEY = "lonely-secret" })
    assert.matches("AWS_ACCESS_KEY_ID", msg, 1, true)
    assert.is_nil(msg:find("lonely-secret", 1, true))
    msg = fails({ region = "us-east-1" }, { AWS_ACCESS_KEY_ID = "AKIDLONELY" })
    assert.matches("AWS_SECRET_ACCESS_KEY", msg, 1, true)
  end)

  it("uses placeholder credentials for a loopback endpoint", function()
    for _, url in ipairs({ "http://localhost:8000", "http://127.0.0.1:4566", "http://[::1]:8000" }) do
      local cfg = ok({ endpoint = url })
      assert.are.same({ access_key_id = "local", secret_access_key = "local" }, cfg.credentials)
      assert.are.equal("placeholder (loopback endpoint)", cfg.credentials_source)
    end
  end)

  it("returns a ConfigError for a real endpoint without credentials", function()
    local msg = fails({ endpoint = "http://dynamodb.internal:8000" })
    assert.matches("no AWS credentials found", msg, 1, true)
    assert.matches("AWS_ACCESS_KEY_ID", msg, 1, true)
    msg = fails({ region = "eu-west-1" }, { AWS_PROFILE = nil })
    assert.matches("no AWS credentials found", msg, 1, true)
    assert.matches("profile default", msg, 1, true)
  end)
end)

describe("ddb.config.resolve with shared files", function()
  local home, aws

  local CREDENTIALS = [[
# credentials for tests
[default]
aws_access_key_id = AKIDFILEDEFAULT
aws_secret_access_key = file-default-secret

; a named profile, with odd spacing
[work]
  aws_access_key_id=AKIDFILEWORK
aws_secret_access_key   =   file-work-secret
aws_session_token = file-work-token

[credsonly]
aws_access_key_id = AKIDCREDSONLY
aws_secret_access_key = credsonly-secret

[half]
aws_access_key_id = AKIDHALF
]]

  local CONFIG = [[
[default]
region = eu-west-3
# max_attempts = 9
max_attempts = 5
s3 =
  max_concurrent_requests = 20
  addressing_style = path
ca_bundle = ~/ca.pem

[profile work]
region = ap-northeast-1
endpoint_url = http://localhost:9999

[profile configkeys]
region = sa-east-1
aws_access_key_id = AKIDCONFIGKEYS
aws_secret_access_key = configkeys-secret

[profile svc]
region = us-west-1
services = local-ddb
endpoint_url = http://localhost:1000

[services local-ddb]
dynamodb =
  endpoint_url = http://localhost:2000

[profile sso]
region = us-east-2
sso_session = corp
sso_account_id = 123456789012

[profile badattempts]
region = us-east-2
max_attempts = lots

[notaprofile]
region = af-south-1
aws_access_key_id = AKIDWRONGSECTION
aws_secret_access_key = wrong-section-secret
]]

  before_each(function()
    home = os.tmpname()
    os.remove(home)
    aws = home .. "/.aws"
    assert(os.execute("mkdir -p '" .. aws .. "'"))
    R.write_file(aws .. "/credentials", CREDENTIALS)
    R.write_file(aws .. "/config", CONFIG)
    R.write_file(home .. "/ca.pem", "-----BEGIN CERTIFICATE-----\n")
  end)

  after_each(function()
    assert(home:match("^/tmp/") or home:match("^/var/tmp/"), "unexpected temp dir " .. home)
    os.execute("rm -rf '" .. home .. "'")
  end)

  local function env(extra) return with({ HOME = home }, extra) end

  it("reads the default profile from ~/.aws, skipping comments and the nested section", function()
    local cfg = ok(nil, env())
    assert.are.equal("default", cfg.profile)
    assert.are.equal("eu-west-3", cfg.region)
    assert.are.equal("https://dynamodb.eu-west-3.amazonaws.com/", cfg.endpoint.url)
    assert.are.same({ access_key_id = "AKIDFILEDEFAULT", secret_access_key = "file-default-secret" },
      cfg.credentials)
    assert.are.equal("shared files (profile default)", cfg.credentials_source)
    assert.are.equal(5, cfg.max_attempts)
    assert.are.equal(home .. "/ca.pem", cfg.ca_file)
  end)

  it("profile: opts beats AWS_PROFILE beats default", function()
    local cfg = ok({ profile = "work" }, env({ AWS_PROFILE = "configkeys" }))
    assert.are.equal("work", cfg.profile)
    assert.are.equal("ap-northeast-1", cfg.region)
    assert.are.same({ access_key_id = "AKIDFILEWORK", secret_access_key = "file-work-secret",
      session_token = "file-work-token" }, cfg.credentials)
    assert.are.equal("shared files (profile work)", cfg.credentials_source)
    cfg = ok(nil, env({ AWS_PROFILE = "configkeys" }))
    assert.are.equal("configkeys", cfg.profile)
    assert.are.equal("sa-east-1", cfg.region)
  end)

  it("takes the profile's endpoint_url (and us-east-1 is not forced when the profile has a region)", function()
    local cfg = ok({ profile = "work" }, env())
    assert.are.equal("http://localhost:9999/", cfg.endpoint.url)
    assert.are.equal("http://localhost:9999/", cfg.streams_endpoint.url)
    assert.are.equal("ap-northeast-1", cfg.region)
  end)

  it("AWS_ENDPOINT_URL beats the profile's endpoint_url", function()
    local cfg = ok({ profile = "work" }, env({ AWS_ENDPOINT_URL = "http://localhost:3333" }))
    assert.are.equal("http://localhost:3333/", cfg.endpoint.url)
  end)

  it("the profile's services section beats its endpoint_url (which streams, not named there, take)", function()
    local cfg = ok({ profile = "svc" }, env({ AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "env-secret" }))
    assert.are.equal("http://localhost:2000/", cfg.endpoint.url)
    assert.are.equal("http://localhost:1000/", cfg.streams_endpoint.url)
  end)

  it("AWS_ENDPOINT_URL beats the services section for the streams service too", function()
    R.write_file(aws .. "/config", CONFIG .. [[

[profile svcstreams]
region = us-west-1
services = local-streams

[services local-streams]
dynamodb_streams =
  endpoint_url = http://localhost:8002
]])
    local cfg = ok({ profile = "svcstreams" }, env({ AWS_ENDPOINT_URL = "http://localhost:7000" }))
    assert.are.equal("http://localhost:7000/", cfg.endpoint.url)
    assert.are.equal("http://localhost:7000/", cfg.streams_endpoint.url)
    cfg = ok({ profile = "svcstreams" }, env({ AWS_ENDPOINT_URL_DYNAMODB = "http://localhost:7000" }))
    assert.are.equal("http://localhost:8002/", cfg.streams_endpoint.url)
  end)

  it("reads keys in any case, as botocore does", function()
    R.write_file(aws .. "/credentials", "[upper]\nAWS_ACCESS_KEY_ID = AKIDUPPER\nAws_Secret_Access_Key=upper-secret\n")
    R.write_file(aws .. "/config", "[profile upper]\nRegion = eu-central-1\nMAX_ATTEMPTS = 7\n")
    local cfg = ok({ profile = "upper" }, env())
    assert.are.equal("eu-central-1", cfg.region)
    assert.are.equal(7, cfg.max_attempts)
    assert.are.same({ access_key_id = "AKIDUPPER", secret_access_key = "upper-secret" }, cfg.credentials)
  end)

  it("region: AWS_DEFAULT_REGION beats the profile's region", function()
    assert.are.equal("eu-central-1", ok(nil, env({ AWS_DEFAULT_REGION = "eu-central-1" })).region)
  end)

  it("credentials: the environment beats the credentials file", function()
    local cfg = ok(nil, env({ AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "env-secret" }))
    assert.are.equal("AKIDENV", cfg.credentials.access_key_id)
    assert.are.equal("environment", cfg.credentials_source)
  end)

  it("credentials: the credentials file beats the config file", function()
    R.write_file(aws .. "/config", CONFIG .. "\n[profile credsonly]\nregion = eu-north-1\n"
      .. "aws_access_key_id = AKIDFROMCONFIG\naws_secret_access_key = from-config-secret\n")
    local cfg = ok({ profile = "credsonly" }, env())
    assert.are.equal("AKIDCREDSONLY", cfg.credentials.access_key_id)
    assert.are.equal("eu-north-1", cfg.region)
  end)

  it("credentials: the config file is used when the credentials file has nothing", function()
    local cfg = ok({ profile = "configkeys" }, env())
    assert.are.same({ access_key_id = "AKIDCONFIGKEYS", secret_access_key = "configkeys-secret" }, cfg.credentials)
    assert.are.equal("shared files (profile configkeys)", cfg.credentials_source)
  end)

  it("credentials: the config file profile beats placeholder credentials", function()
    local cfg = ok({ profile = "configkeys", endpoint = "http://localhost:8000" }, env())
    assert.are.equal("AKIDCONFIGKEYS", cfg.credentials.access_key_id)
  end)

  it("reads a non-default config profile only from [profile name], not [name]", function()
    local msg = fails({ profile = "notaprofile" }, env())
    assert.matches("notaprofile", msg, 1, true)
    assert.is_nil(msg:find("wrong-section-secret", 1, true))
  end)

  it("honours AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE", function()
    R.write_file(home .. "/creds2", "[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other-secret\n")
    R.write_file(home .. "/config2", "[default]\nregion = me-south-1\nmax_attempts: 7\n")
    local cfg = ok(nil, env({ AWS_SHARED_CREDENTIALS_FILE = home .. "/creds2", AWS_CONFIG_FILE = "~/config2" }))
    assert.are.equal("AKIDOTHER", cfg.credentials.access_key_id)
    assert.are.equal("me-south-1", cfg.region)
    assert.are.equal(7, cfg.max_attempts)
    assert.is_nil(cfg.ca_file)
  end)

  it("treats missing files as empty", function()
    local cfg = ok({ endpoint = "http://localhost:8000" }, {
      HOME = home, AWS_SHARED_CREDENTIALS_FILE = home .. "/nope", AWS_CONFIG_FILE = home .. "/nope2" })
    assert.are.equal("us-east-1", cfg.region)
    assert.are.equal("placeholder (loopback endpoint)", cfg.credentials_source)
    assert.is_nil(cfg.ca_file)
    local msg = fails(nil, { HOME = home .. "/missing-home" })
    assert.matches("no AWS region", msg, 1, true)
  end)

  it("does not open the files when everything comes from options and the environment", function()
    R.write_file(aws .. "/config", "this line is not INI\n")
    R.write_file(aws .. "/credentials", "neither is this\n")
    local cfg = ok(with(CREDS, { endpoint = "http://dynamodb.internal:8000", max_attempts = 2,
      region = "eu-west-1", ca_file = home .. "/ca.pem" }), env())
    assert.are.equal("options", cfg.credentials_source)
    cfg = ok(nil, env({ AWS_ENDPOINT_URL = "http://localhost:8000", AWS_REGION = "eu-west-1",
      AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "env-secret", AWS_MAX_ATTEMPTS = "4",
      AWS_CA_BUNDLE = home .. "/ca.pem", AWS_ENDPOINT_URL_DYNAMODB_STREAMS = "http://localhost:8001" }))
    assert.are.equal(4, cfg.max_attempts)
    -- but a value needed from them makes the parse error visible
    local msg = fails(with(CREDS, { endpoint = "http://localhost:8000" }), env())
    assert.matches("cannot parse AWS config file ~/.aws/config at line 1", msg, 1, true)
  end)

  it("returns a ConfigError for a file that cannot be read", function()
    local msg = fails({ region = "us-east-1" }, env({ AWS_SHARED_CREDENTIALS_FILE = home }))
    assert.matches("cannot read AWS credentials file", msg, 1, true)
    assert.matches("AWS_SHARED_CREDENTIALS_FILE", msg, 1, true)
  end)

  it("returns a ConfigError for an explicitly named profile that is missing when it was needed", function()
    local msg = fails({ profile = "nosuch" }, env())
    assert.matches("profile 'nosuch'", msg, 1, true)
    assert.matches("not found", msg, 1, true)
    msg = fails({ endpoint = "http://localhost:8000" }, env({ AWS_PROFILE = "nosuch" }))
    assert.matches("AWS_PROFILE", msg, 1, true)
  end)

  it("ignores a missing named profile when nothing was needed from it", function()
    local cfg = ok(with(CREDS, { profile = "nosuch", region = "eu-west-1" }), env())
    assert.are.equal("nosuch", cfg.profile)
    assert.are.equal(3, cfg.max_attempts)
    assert.are.equal("https://dynamodb.eu-west-1.amazonaws.com/", cfg.endpoint.url)
  end)

  it("returns a ConfigError for a profile with half a key pair, without secrets", function()
    local msg = fails({ profile = "half", region = "us-east-1" }, env())
    assert.matches("aws_secret_access_key", msg, 1, true)
    assert.is_nil(msg:find("AKIDHALF", 1, true))
  end)

  it("explains unsupported credential providers", function()
    local msg = fails({ profile = "sso" }, env())
    assert.matches("sso_session", msg, 1, true)
    assert.matches("export-credentials", msg, 1, true)
  end)

  it("max_attempts: opts beats AWS_MAX_ATTEMPTS beats the profile beats 3", function()
    assert.are.equal(2, ok({ max_attempts = 2 }, env({ AWS_MAX_ATTEMPTS = "4" })).max_attempts)
    assert.are.equal(4, ok(nil, env({ AWS_MAX_ATTEMPTS = "4" })).max_attempts)
    assert.are.equal(5, ok(nil, env()).max_attempts)
    assert.are.equal(3, ok({ profile = "work" }, env()).max_attempts)
  end)

  it("returns a ConfigError for a bad AWS_MAX_ATTEMPTS or profile max_attempts", function()
    for _, v in ipairs({ "0", "-1", "abc", "2.5" }) do
      local msg = fails(nil, env({ AWS_MAX_ATTEMPTS = v }))
      assert.matches("AWS_MAX_ATTEMPTS", msg, 1, true)
    end
    local msg = fails({ profile = "badattempts" }, env({ AWS_ACCESS_KEY_ID = "AKIDENV",
      AWS_SECRET_ACCESS_KEY = "env-secret" }))
    assert.matches("max_attempts in profile 'badattempts'", msg, 1, true)
  end)

  it("ca_file: opts beats AWS_CA_BUNDLE beats the profile's ca_bundle", function()
    R.write_file(home .. "/a.pem", "a")
    R.write_file(home .. "/b.pem", "b")
    assert.are.equal(home .. "/a.pem", ok({ ca_file = home .. "/a.pem" }, env({ AWS_CA_BUNDLE = home .. "/b.pem" }))
      .ca_file)
    assert.are.equal(home .. "/b.pem", ok(nil, env({ AWS_CA_BUNDLE = home .. "/b.pem" })).ca_file)
    assert.are.equal(home .. "/ca.pem", ok(nil, env()).ca_file)
    local msg = fails(nil, env({ AWS_CA_BUNDLE = home .. "/missing.pem" }))
    assert.matches("CA bundle", msg, 1, true)
    assert.matches("AWS_CA_BUNDLE", msg, 1, true)
  end)

  it("never puts a secret in an error message", function()
    local secrets = { "opts-secret", "env-secret", "file-default-secret", "file-work-secret", "file-work-token",
      "configkeys-secret", "credsonly-secret", "wrong-section-secret", "pw-secret" }
    local cases = {
      { with(CREDS, { endpoint = "ftp://x" }), env() },
      { with(CREDS, {}), { AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "env-secret" } },
      { nil, env({ AWS_SECRET_ACCESS_KEY = "env-secret" }) },
      { nil, env({ AWS_ENDPOINT_URL = "http://k:pw-secret@localhost", AWS_SECRET_ACCESS_KEY = "env-secret",
        AWS_ACCESS_KEY_ID = "AKIDENV" }) },
      { { profile = "half", region = "us-east-1" }, env() },
      { { profile = "notaprofile" }, env() },
      { { profile = "sso" }, env() },
      { with(CREDS, { session_token = "opts-secret" }), env({ AWS_MAX_ATTEMPTS = "x" }) },
      { with(CREDS, { region = "bad region" }), env() },
    }
    local seen = 0
    for _, c in ipairs(cases) do
      local cfg, err = config.resolve(c[1], fake_env(c[2]))
      assert.is_nil(cfg)
      local msg = tostring(err)
      seen = seen + 1
      for _, s in ipairs(secrets) do
        assert.is_nil(msg:find(s, 1, true), "secret leaked in: " .. msg)
      end
    end
    for _, opts in ipairs({ { access_key_id = "AKIDX", secret_access_key = 42 }, { secret_access_key = "opts-secret" },
      { session_token = "opts-secret" }, with(CREDS, { colour = "opts-secret" }) }) do
      local msg = raises(config.resolve, opts, fake_env({}))
      seen = seen + 1
      for _, s in ipairs(secrets) do assert.is_nil(msg:find(s, 1, true), "secret leaked in: " .. msg) end
    end
    assert.are.equal(#cases + 4, seen)
  end)
end)

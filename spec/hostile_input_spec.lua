-- Hostile input at the public Lua entry points of the client and its tools
-- (issue 6, part 2): ddb.client options, client:call/pages, ddb.core.sign,
-- the JSON codec, ddb.marshal, ddb.ids, ddb.schema and ddb.seed. Wrong types,
-- nil, huge strings, invalid UTF-8, NUL bytes, key-forging strings. Each case
-- expects a clear raise, a nil, err with a meaningful code, or a checked
-- result (see spec/support/hostile.lua), and every batch ends with a Scan of
-- the describe's seeded table: nothing written. The messaging layer and the
-- stream are in hostile_messaging_spec.lua, the bin/ddb scripts in
-- hostile_scripts_spec.lua.
local moto = require("support.moto")
local R = require("support.run")
local H = require("support.hostile").bind(_ENV)
local core = require("ddb.core")
local ddb = require("ddb")
local ids = require("ddb.ids")
local marshal = require("ddb.marshal")
local schema = require("ddb.schema")
local seed = require("ddb.seed")

local RAISES, FAILS, RETURNS = H.RAISES, H.FAILS, H.RETURNS
local MB10, UUID, TS, with, deep_table, one_line = H.MB10, H.UUID, H.TS, H.with, H.deep_table, H.one_line
local ORLA, BRAM, FX = H.ORLA, H.BRAM, H.FX

describe("hostile input", function()
  local ctx = H.seeded("hostile")
  local function batch(title, cases) H.batch(ctx, title, cases) end
  local tmp = R.tmpdir()
  teardown(function() R.rmrf(tmp) end)

  -- ddb.client ---------------------------------------------------------------
  local E = moto.endpoint()
  local KEYS = { access_key_id = "AKIDEXAMPLE", secret_access_key = "hostile-secret-value" }
  local function client_with(opts) return function() return ddb.client(opts) end end
  local function config_error(opts, forbidden)
    return { opts[1], RETURNS(function(c, err)
      assert.is_nil(c)
      assert.equal("ConfigError", err.code)
      one_line(err.message, "err.message")
      assert.is_true(#err.message < 1000, "a message of " .. #err.message .. " bytes")
      if forbidden then assert.is_nil(err.message:find(forbidden, 1, true), "the message shows " .. forbidden) end
    end), client_with(opts[2]) }
  end
  batch("ddb.client options", {
    { "options a string", RAISES("options must be a table"), client_with("http://localhost") },
    { "options a number", RAISES("options must be a table"), client_with(42) },
    { "an unknown option", RAISES("unknown option 'endpont'"), client_with({ endpont = E }) },
    { "an integer key", RAISES("unknown option [1]"), client_with({ E }) },
    { "endpoint a number", RAISES("'endpoint' must be a string"), client_with({ endpoint = 8000 }) },
    { "region a table", RAISES("'region' must be a string"), client_with({ endpoint = E, region = {} }) },
    { "region empty", RAISES("'region' must not be empty"), client_with({ endpoint = E, region = "" }) },
    { "timeout_ms a string", RAISES("'timeout_ms'"), client_with({ endpoint = E, timeout_ms = "5" }) },
    { "timeout_ms NaN", RAISES("'timeout_ms'"), client_with({ endpoint = E, timeout_ms = 0 / 0 }) },
    { "timeout_ms 1.5", RAISES("'timeout_ms'"), client_with({ endpoint = E, timeout_ms = 1.5 }) },
    { "timeout_ms past 32 bits", RAISES("'timeout_ms' must be an integer from 1 to 2147483647"),
      client_with({ endpoint = E, timeout_ms = math.maxinteger }) },
    { "connect_timeout_ms -1", RAISES("'connect_timeout_ms'"), client_with({ endpoint = E, connect_timeout_ms = -1 }) },
    { "max_attempts 0", RAISES("'max_attempts'"), client_with({ endpoint = E, max_attempts = 0 }) },
    { "retry_base_ms NaN", RAISES("'retry_base_ms' must be a finite number >= 0"),
      client_with({ endpoint = E, retry_base_ms = 0 / 0 }) },
    { "retry_base_ms negative", RAISES("'retry_base_ms'"), client_with({ endpoint = E, retry_base_ms = -5 }) },
    { "retry_max_backoff_ms infinite", RAISES("'retry_max_backoff_ms'"),
      client_with({ endpoint = E, retry_max_backoff_ms = math.huge }) },
    { "debug a string", RAISES("'debug' must be a boolean"), client_with({ endpoint = E, debug = "yes" }) },
    { "a key id without its secret", RAISES("must be given together"),
      client_with({ endpoint = E, access_key_id = "AK" }) },
    config_error({ "endpoint 10 MB", { endpoint = MB10 } }),
    config_error({ "endpoint with a NUL byte", { endpoint = E .. "\0/x" } }),
    config_error({ "endpoint with a newline inside", { endpoint = "http://local\nhost:8000" } }),
    config_error({ "endpoint invalid UTF-8", { endpoint = "http://\xff\xfe/" } }),
    config_error({ "endpoint GRP#x", { endpoint = "GRP#x" } }),
    config_error({ "endpoint with a fragment", { endpoint = E .. "/#MSG#x" } }),
    config_error({ "endpoint with a password", { endpoint = "http://user:pa55word@localhost:8000" } }, "pa55word"),
    config_error({ "region with a NUL byte", { endpoint = E, region = "us-east-1\0" } }),
    config_error({ "region with a newline", { endpoint = E, region = "us\neast-1" } }),
    config_error({ "region invalid UTF-8", { endpoint = E, region = "\xff" } }),
    config_error({ "region 10 MB", { endpoint = E, region = MB10 } }),
    config_error({ "region GRP#x", { endpoint = E, region = "GRP#x" } }),
    config_error({ "a key id with CRLF and a header", with(KEYS, { endpoint = E, access_key_id = "AK\r\nX-Evil: 1" }) },
      "X-Evil"),
    config_error({ "a key id with a NUL byte", with(KEYS, { endpoint = E, access_key_id = "AK\0ID" }) }),
    config_error({ "a key id with a slash", with(KEYS, { endpoint = E, access_key_id = "AK/ID" }) }),
    config_error({ "a secret with a NUL byte", with(KEYS, { endpoint = E, secret_access_key = "s3cr\0t" }) }, "s3cr"),
    config_error({ "a session token with a newline", with(KEYS, { endpoint = E, session_token = "t0k\nen" }) }, "t0k"),
    config_error({ "ca_file with a NUL byte", { endpoint = E, ca_file = "/etc/hostname\0.pem" } }),
    config_error({ "ca_file a directory", { endpoint = E, ca_file = "/" } }),
    config_error({ "ca_file missing", { endpoint = E, ca_file = "/nonexistent/ca.pem" } }),
  })

  -- client:call and client:pages -------------------------------------------
  -- TABLE in params stands for the describe's table (known once set up).
  local TABLE = {}
  local function resolve(params)
    if type(params) ~= "table" or params.TableName ~= TABLE then return params end
    return with(params, { TableName = ctx.name })
  end
  local function call(op, params) return function() return ctx.client:call(op, resolve(params)) end end
  local KEY = { pk = { S = "MSG#" .. UUID }, sk = { S = TS } }
  local function put(item) return call("PutItem", { TableName = TABLE, Item = item }) end
  local function first_page(op, params)
    return function()
      local it = ctx.client:pages(op, resolve(params))
      local page, err = it()
      assert.is_nil(it(), "the loop goes on after a failure")
      return page, err
    end
  end
  local cyc = { S = "x" }
  cyc.M = cyc
  batch("client:call and client:pages", {
    { "operation nil", RAISES("operation must be a name"), call(nil, {}) },
    { "operation a number", RAISES("operation must be a name"), call(42, {}) },
    { "operation empty", RAISES("operation must be a name"), call("", {}) },
    { "operation with a NUL byte", RAISES("operation must be a name"), call("PutItem\0", {}) },
    { "operation with a space", RAISES("operation must be a name"), call("Put Item", {}) },
    { "operation with a target prefix", RAISES("operation must be a name"), call("DynamoDB_20120810.PutItem", {}) },
    { "params a string", RAISES("params must be a table"), call("PutItem", "{}") },
    { "params a number", RAISES("params must be a table"), call("PutItem", 42) },
    { "an invalid UTF-8 value", FAILS("SerializationError"), put(with(KEY, { message = { S = "\xff" } })) },
    { "an invalid UTF-8 attribute name", FAILS("SerializationError"), put(with(KEY, { ["\xff"] = { S = "x" } })) },
    { "a function in the item", FAILS("SerializationError"), put(with(KEY, { message = { S = print } })) },
    { "a userdata in the item", FAILS("SerializationError"), put(with(KEY, { message = { S = io.stdout } })) },
    { "a cycle in the item", FAILS("SerializationError"), put(with(KEY, { message = cyc })) },
    { "nesting 1000 deep", FAILS("SerializationError"), put(with(KEY, { message = deep_table(1000, "M") })) },
    { "NaN in the item", FAILS("SerializationError"), put(with(KEY, { n = { N = 0 / 0 } })) },
    { "a 10 MB attribute (over the item limit)", FAILS(true), put(with(KEY, { message = { S = MB10 } })) },
    { "a table name with a NUL byte", FAILS(true), function()
      return ctx.client:call("PutItem", { TableName = ctx.name .. "\0", Item = KEY })
    end },
    { "a 10 MB table name", FAILS(true), call("PutItem", { TableName = MB10, Item = KEY }) },
    { "Item a string", FAILS(true), call("PutItem", { TableName = TABLE, Item = "GRP#x" }) },
    { "a key with invalid UTF-8", FAILS("SerializationError"),
      call("GetItem", { TableName = TABLE, Key = { pk = { S = "\xc0\xaf" }, sk = KEY.sk } }) },
    { "pages: not a paginated operation", RAISES("GetItem is not a paginated operation"),
      function() return ctx.client:pages("GetItem", {}) end },
    { "pages: operation nil", RAISES("is not a paginated operation"), function() return ctx.client:pages(nil) end },
    { "pages: params a string", RAISES("params must be a table"), function() return ctx.client:pages("Scan", "x") end },
    { "pages: invalid UTF-8 in the request", FAILS("SerializationError"),
      first_page("Scan", { TableName = TABLE, ExclusiveStartKey = { pk = { S = "\xff" }, sk = KEY.sk } }) },
    { "pages: a 10 MB table name", FAILS(true), first_page("Scan", { TableName = MB10 }) },
  })

  -- ddb.core.sign -------------------------------------------------------------
  local REQ = { method = "POST", path = "/", headers = { { "host", "example.com" } }, region = "us-east-1",
    service = "dynamodb", access_key_id = "AKIDEXAMPLE", secret_access_key = "secret", timestamp = "20240101T000000Z" }
  local function sign(over) return function() return core.sign(with(REQ, over)) end end
  local function signs(check_result)
    return RETURNS(function(res)
      assert.matches("^%x+$", res.signature)
      assert.equal(64, #res.signature)
      if check_result then check_result(res) end
    end)
  end
  batch("ddb.core.sign", {
    { "no request", RAISES("table expected, got no value"), function() return core.sign() end },
    { "a string request", RAISES("table expected, got string"), function() return core.sign("POST /") end },
    { "method nil", RAISES("field 'method': string expected, got nil"), sign({ method = false }) },
    { "method a number", RAISES("field 'method': string expected, got number"), sign({ method = 1 }) },
    { "method with a NUL byte", RAISES("field 'method': must not contain NUL bytes"), sign({ method = "PO\0ST" }) },
    { "method with a newline", RAISES("method is empty or contains whitespace"), sign({ method = "POST\nX" }) },
    { "path a table", RAISES("field 'path': string expected"), sign({ path = {} }) },
    { "headers a string", RAISES("field 'headers': table expected"), sign({ headers = "host: x" }) },
    { "a header not a pair", RAISES("field 'headers[1]': {name, value} pair"), sign({ headers = { { "host" } } }) },
    { "a header name with a NUL byte", RAISES("header name is not an HTTP token"),
      sign({ headers = { { "ho\0st", "x" } } }) },
    { "headers claiming 10^9 entries", RAISES("too many headers"),
      sign({ headers = setmetatable({}, { __len = function() return 1000000000 end }) }) },
    { "a malformed timestamp", RAISES("field 'timestamp'"), sign({ timestamp = "2024" }) },
    { "month 13", RAISES("field 'timestamp'"), sign({ timestamp = "20241301T000000Z" }) },
    { "region with a newline", RAISES("region is empty or contains"), sign({ region = "us\neast-1" }) },
    { "access key id with CRLF", RAISES("access_key_id is empty or contains"), sign({ access_key_id = "AK\r\nX: y" }) },
    { "secret nil", RAISES("field 'secret_access_key'"), sign({ secret_access_key = false }) },
    { "normalize_path a string", RAISES("field 'normalize_path': boolean expected"), sign({ normalize_path = "yes" }) },
    { "body a table", RAISES("field 'body': string expected"), sign({ body = {} }) },
    { "a 10 MB path", signs(), sign({ path = "/" .. MB10 }) },
    { "a path with invalid UTF-8 and NUL bytes", signs(), sign({ path = "/\xff\0/GRP#x/../.." }) },
    { "a query of junk", signs(), sign({ query = "a=%zz&&=&%&GRP#=MSG#" }) },
    { "a 10 MB body, signed", signs(), sign({ body = MB10, sign_body = true }) },
    { "a header value with CRLF cannot add a header line", signs(function(res)
      assert.is_nil(res.canonical_request:find("\r", 1, true))
      assert.is_nil(res.canonical_request:find("\nx-evil", 1, true))
      assert.matches("a:b X-Evil: 1\n", res.canonical_request, 1, true)
    end), sign({ headers = { { "a", "b\r\nX-Evil: 1" } } }) },
  })

  -- ddb.core.json_encode / json_decode ----------------------------------------
  local function enc(v) return function() return core.json_encode(v) end end
  local function dec(s) return function() return core.json_decode(s) end end
  local function decode_fails(text)
    return RETURNS(function(v, msg)
      assert.is_nil(v)
      one_line(msg, "the message")
      if text then assert.matches(text, msg, 1, true) end
    end)
  end
  local jcycle = {}
  jcycle[1] = jcycle
  batch("ddb.core.json_encode and json_decode", {
    { "encode: nothing", RAISES("value expected"), function() return core.json_encode() end },
    { "encode: a function", RAISES("cannot encode a function"), enc(print) },
    { "encode: a coroutine", RAISES("cannot encode a thread"), enc(coroutine.create(print)) },
    { "encode: a userdata", RAISES("cannot encode a userdata"), enc(io.stdout) },
    { "encode: invalid UTF-8", RAISES("invalid UTF-8 in string"), enc("caf\xe9") },
    { "encode: an invalid UTF-8 key", RAISES("invalid UTF-8 in string"), enc({ ["\xff"] = 1 }) },
    { "encode: NaN", RAISES("cannot encode NaN"), enc(0 / 0) },
    { "encode: infinity", RAISES("cannot encode"), enc(math.huge) },
    { "encode: 600 levels", RAISES("nesting deeper than 512 levels"), enc(deep_table(600)) },
    { "encode: a cycle", RAISES("nesting deeper than 512 levels (or a cycle)"), enc(jcycle) },
    { "encode: mixed keys", RAISES("mixed or non-string keys"), enc({ 1, a = 2 }) },
    { "encode: a table key", RAISES("mixed or non-string keys"), enc({ [{}] = 1 }) },
    { "encode: NUL bytes are escaped", RETURNS(function(s) assert.equal('"a\\u0000b"', s) end), enc("a\0b") },
    { "encode: 10 MB", RETURNS(function(s) assert.equal(#MB10 + 2, #s) end), enc(MB10) },
    { "decode: nil", RAISES("string expected, got nil"), dec(nil) },
    { "decode: a table", RAISES("string expected, got table"), dec({}) },
    { "decode: 10 MB of garbage", decode_fails("unexpected character"), dec(MB10) },
    { "decode: an unterminated 10 MB string", decode_fails(), dec('"' .. MB10) },
    { "decode: 10 MB of [", decode_fails("nesting deeper than 512 levels"), dec(string.rep("[", #MB10)) },
    { "decode: a raw NUL byte in a string", decode_fails("control character"), dec('"a\0b"') },
    { "decode: a NUL byte after the value", decode_fails("trailing garbage"), dec("{}\0") },
    { "decode: invalid UTF-8", decode_fails("invalid UTF-8"), dec('"\xff"') },
    { "decode: a lone surrogate", decode_fails(), dec('"\\ud800"') },
    { "decode: empty", decode_fails("unexpected end of input"), dec("") },
    { "decode: a trailing comma", decode_fails(), dec('{"pk":"GRP#x",}') },
    { "decode: \\u0000 decodes to a NUL byte", RETURNS(function(s) assert.equal("a\0b", s) end), dec('"a\\u0000b"') },
  })

  -- ddb.marshal ------------------------------------------------------------------
  local function m(fname, ...)
    local args = table.pack(...)
    return function() return marshal[fname](table.unpack(args, 1, args.n)) end
  end
  local mcycle = {}
  mcycle.a = mcycle
  local function deep_av(n)
    local root = { M = {} }
    local t = root
    for _ = 1, n do
      t.M.x = { M = {} }
      t = t.M.x
    end
    return root
  end
  batch("ddb.marshal", {
    { "item nil", RAISES("item: expected a table, got nil"), m("item", nil) },
    { "item a string", RAISES("item: expected a table, got string"), m("item", "GRP#x") },
    { "item a list", RAISES("an item must be a map"), m("item", { 1, 2 }) },
    { "item invalid UTF-8", RAISES('attribute "a": string is not valid UTF-8'), m("item", { a = "\xff" }) },
    { "item an invalid UTF-8 key", RAISES("map key is not valid UTF-8"), m("item", { ["\xff"] = 1 }) },
    { "item a function", RAISES('attribute "a": cannot marshal a function'), m("item", { a = print }) },
    { "item a userdata", RAISES("cannot marshal a userdata"), m("item", { a = io.stdout }) },
    { "item NaN", RAISES("cannot marshal NaN"), m("item", { a = 0 / 0 }) },
    { "item mixed keys", RAISES("both string and integer keys"), m("item", { a = { 1, b = 2 } }) },
    { "item a cycle", RAISES("reference cycle"), m("item", { a = mcycle }) },
    { "item 100000 levels", RAISES("nesting deeper than 512 levels"), m("item", { a = deep_table(100000, "x") }) },
    { "value 100000 levels", RAISES("nesting deeper than 512 levels"), m("value", deep_table(100000)) },
    { "item with NUL bytes", RETURNS(function(av) assert.equal("\0GRP#\0", av.a.S) end),
      m("item", { a = "\0GRP#\0" }) },
    { "item 10 MB", RETURNS(function(av) assert.equal(#MB10, #av.a.S) end), m("item", { a = MB10 }) },
    { "unitem nil", RAISES("item: expected an AttributeValue map, got nil"), m("unitem", nil) },
    { "unitem a bare string", RAISES('attribute "a": expected an AttributeValue table'), m("unitem", { a = "x" }) },
    { "unitem S a number", RAISES("S value is not a string"), m("unitem", { a = { S = 1 } }) },
    { "unitem N junk", RAISES('invalid number "1e99999999999"'), m("unitem", { a = { N = "1e99999999999" } }) },
    { "unitem N with a NUL byte", RAISES("invalid number"), m("unitem", { a = { N = "1\0" } }) },
    { "unitem B not base64", RAISES("invalid base64"), m("unitem", { a = { B = "!!!" } }) },
    { "unitem a duplicate SS member", RAISES("duplicate member"), m("unitem", { a = { SS = { "a", "a" } } }) },
    { "unitem SS invalid UTF-8", RAISES("not valid UTF-8"), m("unitem", { a = { SS = { "\xff" } } }) },
    { "unitem an unknown type", RAISES('unknown AttributeValue type "X"'), m("unitem", { a = { X = 1 } }) },
    { "unitem two types", RAISES("more than one type"), m("unitem", { a = { S = "1", N = "1" } }) },
    { "unitem a number key", RAISES("non-string attribute name"), m("unitem", { [1] = { S = "1" } }) },
    { "unitem an L with holes", RAISES("L value is not a list"),
      m("unitem", { a = { L = { [1] = { S = "a" }, [3] = { S = "b" } } } }) },
    { "unitem NULL false", RAISES("NULL value is not true"), m("unitem", { a = { NULL = false } }) },
    { "unvalue 100000 levels", RAISES("nesting deeper than 512 levels"), m("unvalue", deep_av(100000)) },
    { "unvalue a string", RAISES("expected an AttributeValue table, got string"), m("unvalue", "S") },
    { "number nil", RAISES("expected a decimal string, got nil"), m("number", nil) },
    { "number junk", RAISES('"1e" is not a valid DynamoDB number'), m("number", "1e") },
    { "number hex", RAISES("is not a valid DynamoDB number"), m("number", "0x10") },
    { "number with a space", RAISES("is not a valid DynamoDB number"), m("number", " 1") },
    { "number with a NUL byte", RAISES("is not a valid DynamoDB number"), m("number", "1\0") },
    { "number a 10-digit exponent", RAISES("is not a valid DynamoDB number"), m("number", "1e9999999999") },
    { "number NaN", RAISES("cannot marshal NaN"), m("number", 0 / 0) },
    { "binary a number", RAISES("marshal.binary: expected a string"), m("binary", 42) },
    { "set an unknown kind", RAISES('kind must be "S", "N" or "B"'), m("set", "X", { "a" }) },
    { "set nil members", RAISES("set members must be a list"), m("set", "S", nil) },
    { "set empty", RAISES("empty set"), m("set", "S", {}) },
    { "set a duplicate", RAISES("duplicate member"), m("set", "S", { "GRP#x", "GRP#x" }) },
    { "set a junk number", RAISES("is not a valid number"), m("set", "N", { "abc" }) },
    { "set invalid UTF-8", RAISES("not valid UTF-8"), m("set", "S", { "\xff" }) },
    { "list a string", RAISES("marshal.list: expected a table"), m("list", "x") },
    { "list a table with a metatable", RAISES("already has a metatable"), m("list", setmetatable({}, {})) },
    { "plain a cycle", RAISES("nesting deeper than 512 levels (or a reference cycle)"), m("plain", mcycle) },
    { "base64_encode nil", RAISES("base64_encode: expected a string"), m("base64_encode", nil) },
    { "base64_decode a table", RAISES("base64_decode: expected a string"), m("base64_decode", {}) },
    { "base64_decode junk", RETURNS(function(v, msg)
      assert.is_nil(v)
      assert.matches("invalid base64", msg, 1, true)
    end), m("base64_decode", "a\0==") },
  })

  -- ddb.ids -------------------------------------------------------------------------
  local ids_cases = {}
  for _, case in ipairs(H.hostile_ids(UUID)) do
    ids_cases[#ids_cases + 1] = { "is_uuid: " .. case[1], RETURNS(function(v) assert.is_false(v) end),
      function() return ids.is_uuid(case[2]) end }
  end
  for _, case in ipairs({ { "nil", nil }, { "a number", 42 }, { "a table", {} }, { "empty", "" },
    { "a trailing newline", TS .. "\n" }, { "a NUL byte", TS .. "\0" }, { "a uuid", UUID }, { "10 MB", MB10 } }) do
    ids_cases[#ids_cases + 1] = { "is_timestamp: " .. case[1], RETURNS(function(v) assert.is_false(v) end),
      function() return ids.is_timestamp(case[2]) end }
  end
  local function ts(...)
    local args = table.pack(...)
    return function() return ids.timestamp(table.unpack(args, 1, args.n)) end
  end
  local function after(...)
    local args = table.pack(...)
    return function() return ids.after(table.unpack(args, 1, args.n)) end
  end
  for _, case in ipairs({
    { "timestamp: sec nil", RAISES("sec must be an integer, got nil"), ts(nil) },
    { "timestamp: sec a string", RAISES("sec must be an integer, got string"), ts("0") },
    { "timestamp: sec 1.5", RAISES("sec must be an integer, got 1.5"), ts(1.5) },
    { "timestamp: usec 1000000", RAISES("usec must be an integer 0..999999"), ts(0, 1000000) },
    { "timestamp: usec -1", RAISES("usec must be an integer 0..999999"), ts(0, -1) },
    { "timestamp: usec 0.5", RAISES("usec must be an integer 0..999999"), ts(0, 0.5) },
    { "timestamp: the year 10000", RAISES("is not a time in the years 1000..9999"), ts(253402300800) },
    { "timestamp: maxinteger", RAISES("is not a time in the years 1000..9999"), ts(math.maxinteger) },
    { "after: nil", RAISES("ids.after: not a timestamp"), after(nil) },
    { "after: a forged key", RAISES("ids.after: not a timestamp"), after("GRP#" .. UUID) },
    { "after: n a string", RAISES("ids.after: n must be an integer"), after(TS, "1") },
    { "after: n 0.5", RAISES("ids.after: n must be an integer"), after(TS, 0.5) },
    { "after: past the year 9999", RAISES("is not a time in the years 1000..9999"), after(TS, math.maxinteger) },
    { "parse_timestamp of a forged key", RETURNS(function(v) assert.is_nil(v) end),
      function() return ids.parse_timestamp("MSG#" .. TS) end },
    { "uuid ignores arguments", RETURNS(function(v) assert.is_true(ids.is_uuid(v)) end),
      function() return ids.uuid("GRP#x", 42) end },
  }) do
    ids_cases[#ids_cases + 1] = case
  end
  batch("ddb.ids", ids_cases)

  -- ddb.schema.load / drop ----------------------------------------------------------
  local NEVER = moto.table_name("hostile-never-created")
  local function load(opts) return function() return schema.load(ctx.client, opts) end end
  local function drop(opts) return function() return schema.drop(ctx.client, opts) end end
  local schema_cases = {
    { "load: client nil", RAISES("schema.load: client expected"), function() return schema.load(nil) end },
    { "load: client a string", RAISES("schema.load: client expected"), function() return schema.load("http://x") end },
    { "load: opts a string", RAISES("opts must be a table"), load(NEVER) },
    { "load: table a number", RAISES("opts.table must be a string"), load({ table = 42 }) },
    { "load: on_demand a string", RAISES("opts.on_demand must be a boolean"),
      load({ table = NEVER, on_demand = "yes" }) },
    { "load: read_capacity a string", RAISES("opts.read_capacity must be a positive integer"),
      load({ table = NEVER, read_capacity = "5" }) },
    { "load: write_capacity -5", RAISES("opts.write_capacity must be a positive integer"),
      load({ table = NEVER, write_capacity = -5 }) },
    { "load: timeout_s a string", RAISES("opts.timeout_s must be a positive number"),
      load({ table = NEVER, timeout_s = "x" }) },
    { "load: timeout_s NaN", RAISES("opts.timeout_s must be a positive number"),
      load({ table = NEVER, timeout_s = 0 / 0 }) },
    { "load: the seeded table again", FAILS("table_exists"), function()
      return schema.load(ctx.client, { table = ctx.name })
    end },
    { "drop: client nil", RAISES("schema.drop: client expected"), function() return schema.drop(nil) end },
    { "drop: opts a string", RAISES("opts must be a table"), drop(NEVER) },
    { "drop: table a number", RAISES("opts.table must be a string"), drop({ table = 42 }) },
    { "drop: a table that is not there", FAILS("table_missing"), drop({ table = NEVER }) },
  }
  for _, case in ipairs({
    { "empty", "" }, { "2 characters", "ab" }, { "GRP#x", "GRP#x" }, { "MSG#<uuid>", "MSG#" .. UUID },
    { "a NUL byte", "tab\0le" }, { "a newline", "tab\nle" }, { "a space", "ta ble" }, { "invalid UTF-8", "tab\xffle" },
    { "256 characters", string.rep("t", 256) }, { "10 MB", MB10 },
  }) do
    schema_cases[#schema_cases + 1] = { "load: a table name with " .. case[1], FAILS("invalid_table_name"),
      load({ table = case[2] }) }
    schema_cases[#schema_cases + 1] = { "drop: a table name with " .. case[1], FAILS("invalid_table_name"),
      drop({ table = case[2] }) }
  end
  batch("ddb.schema.load and drop", schema_cases)

  -- ddb.seed.load_fixtures / run -------------------------------------------------------
  local function users_file(label, list)
    local parts = {}
    for _, u in ipairs(list) do
      parts[#parts + 1] = ("{ uuid = %q, handle = %q, display_name = %q }"):format(u.uuid, u.handle, u.display_name)
    end
    return R.write_file(tmp .. "/" .. label .. ".lua", "return { " .. table.concat(parts, ", ") .. " }")
  end
  local function conv_file(label, over, line)
    local conv = with({ message_group_uuid = UUID, participants = '{ "orlaquill", "bramkettle" }' }, over)
    line = line or '{ handle = "orlaquill", text = "hi" }'
    return R.write_file(tmp .. "/" .. label .. ".lua", ("return { message_group_uuid = %q, participants = %s, "
      .. "lines = { %s } }"):format(conv.message_group_uuid, conv.participants, line))
  end
  local function line_file(label, text)
    return conv_file(label, {}, ('{ handle = "orlaquill", text = %q }'):format(text))
  end
  local USERS = seed.fixture_path("users")
  local function fixtures(label, users, conv)
    return { "load_fixtures: " .. label, FAILS("invalid_fixture"), function()
      return seed.load_fixtures({ users = users, conversation = conv })
    end }
  end
  local function users_with(over) return { with(ORLA, over), BRAM } end
  local function run_with(opts)
    return function() return seed.run(ctx.client, with({ table = ctx.name }, opts)) end
  end
  local seed_cases = {
    { "load_fixtures: opts a string", RAISES("seed.load_fixtures: opts must be a table"),
      function() return seed.load_fixtures("users.lua") end },
    { "load_fixtures: users a number", RAISES("opts.users must be a string"),
      function() return seed.load_fixtures({ users = 42 }) end },
    { "load_fixtures: conversation a table", RAISES("opts.conversation must be a string"),
      function() return seed.load_fixtures({ conversation = {} }) end },
    { "load_data: path nil", RAISES("seed.load_data: path must be a string"), function() return seed.load_data() end },
    fixtures("a missing users file", tmp .. "/missing.lua"),
    fixtures("a directory", tmp),
    fixtures("a path with a NUL byte", USERS .. "\0.lua"),
    fixtures("a syntax error", R.write_file(tmp .. "/syntax.lua", "return {{")),
    fixtures("a file returning a string", R.write_file(tmp .. "/string.lua", 'return "GRP#x"')),
    fixtures("a file that loops forever", R.write_file(tmp .. "/loop.lua", "while true do end")),
    fixtures("a file that fills memory", R.write_file(tmp .. "/memory.lua",
      "local t = {} for i = 1, 1e9 do t[i] = i end return t")),
    fixtures("bytecode", R.write_file(tmp .. "/bytecode.lua", string.dump(function() return {} end))),
    fixtures("a handle GRP#x", users_file("handle", users_with({ handle = "GRP#x" }))),
    fixtures("a handle with a newline", users_file("handle-nl", users_with({ handle = "orla\nquill" }))),
    fixtures("a blank display_name", users_file("blank", users_with({ display_name = " \t " }))),
    fixtures("an invalid UTF-8 display_name", users_file("utf8", users_with({ display_name = "\xff" }))),
    fixtures("a duplicate handle", users_file("dup", { ORLA, with(BRAM, { handle = "orlaquill" }) })),
    fixtures("a group uuid GRP#x", USERS, conv_file("conv-grp", { message_group_uuid = "GRP#x" })),
    fixtures("a group uuid in uppercase", USERS, conv_file("conv-upper", { message_group_uuid = UUID:upper() })),
    fixtures("one participant twice", USERS, conv_file("conv-self", { participants = '{ "orlaquill", "orlaquill" }' })),
    fixtures("an unknown participant", USERS, conv_file("conv-unknown", { participants = '{ "orlaquill", "GRP#x" }' })),
    fixtures("a line of 1025 characters", USERS, line_file("conv-long", string.rep("a", 1025))),
    fixtures("a line of 1025 emoji", USERS, line_file("conv-emoji", string.rep("\u{1F600}", 1025))),
    fixtures("a line of 10 MB", USERS, line_file("conv-10mb", MB10)),
    fixtures("a line of invalid UTF-8", USERS, line_file("conv-utf8", "caf\xe9")),
    fixtures("a blank line", USERS, line_file("conv-blank", " \n\t ")),
    fixtures("a line by an outsider", USERS, conv_file("conv-noor", {}, '{ handle = "noorhal", text = "hi" }')),
    { "run: client nil", RAISES("seed.run: client expected"), function() return seed.run(nil, {}) end },
    { "run: opts a string", RAISES("seed.run: opts must be a table"), function() return seed.run(ctx.client, "t") end },
    { "run: table a number", RAISES("opts.table must be a string"), run_with({ table = 42 }) },
    { "run: fixtures a string", RAISES("opts.fixtures must be a table"), run_with({ fixtures = "fx" }) },
    { "run: progress a string", RAISES("opts.progress must be a boolean or an object with a write method"),
      run_with({ progress = "yes" }) },
    { "run: progress a table without write", RAISES("opts.progress must be a boolean or an object with a write"),
      run_with({ progress = {} }) },
    { "run: max_rounds -1", RAISES("opts.max_rounds must be a non-negative integer"), run_with({ max_rounds = -1 }) },
    { "run: now 1.5", RAISES("opts.now must be an integer"), run_with({ now = 1.5 }) },
    { "run: now past the year 9999", RAISES("is not a time in the years 1000..9999"),
      run_with({ now = math.maxinteger }) },
    { "run: a table name GRP#x", FAILS("invalid_table_name"), run_with({ table = "GRP#x" }) },
    { "run: a table name with a NUL byte", FAILS("invalid_table_name"), function()
      return seed.run(ctx.client, { table = ctx.name .. "\0" })
    end },
    { "run: a users file that loops forever", FAILS("invalid_fixture"), run_with({ users = tmp .. "/loop.lua" }) },
    { "run: fixtures {}", FAILS("invalid_fixture"), run_with({ fixtures = {} }) },
    { "run: fixtures whose participant forges a key", FAILS("invalid_fixture"),
      run_with({ fixtures = with(FX, { users = { with(ORLA, { uuid = "GRP#" .. ORLA.uuid }), BRAM } }) }) },
    { "run: fixtures with a line by an outsider", FAILS("invalid_fixture"),
      run_with({ fixtures = with(FX, { lines = { { handle = "noorhal", text = "let me in", user = H.NOOR } } }) }) },
    { "run: fixtures with a line of 1025 characters", FAILS("invalid_fixture"),
      run_with({ fixtures = with(FX, { lines = { { handle = "orlaquill", text = ("a"):rep(1025), user = ORLA } } }) }),
    },
    { "run: a display_name past DynamoDB's 400 KB item", FAILS("invalid_fixture"),
      run_with({ users = users_file("huge", users_with({ display_name = string.rep("n", 400 * 1024) })) }) },
  }
  for _, case in ipairs(H.hostile_ids(ORLA.uuid)) do
    if #case[2] < 1000 then
      seed_cases[#seed_cases + 1] = fixtures("a user uuid with " .. case[1],
        users_file("uuid-" .. #seed_cases, users_with({ uuid = case[2] })))
    end
  end
  batch("ddb.seed.load_fixtures and run", seed_cases)
end)

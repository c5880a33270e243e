-- Hostile input at the messaging layer (ddb.messages) and the stream rewrite
-- (ddb.stream.process/handler/run, ddb.stream.checkpoint_name): wrong types,
-- key-forging and near-miss ids, over-long and invalid texts, malformed
-- stream records at every level, hostile checkpoint files. Expectations as in
-- spec/support/hostile.lua; every batch ends with a Scan of the describe's
-- seeded table (the fixture conversation, plus one newer message only the
-- stream would move the group rows to): nothing written. The last batch
-- sends the valid counterparts and shows they do write.
local H = require("support.hostile").bind(_ENV)
local moto = require("support.moto")
local R = require("support.run")
local core = require("ddb.core")
local messages = require("ddb.messages")
local model = require("ddb.model")
local stream = require("ddb.stream")

local RAISES, FAILS, SKIPS, RETURNS = H.RAISES, H.FAILS, H.SKIPS, H.RETURNS
local MB10, UUID, TS, with, deep_table = H.MB10, H.UUID, H.TS, H.with, H.deep_table
local ORLA, BRAM, NOOR, GROUP = H.ORLA, H.BRAM, H.NOOR, H.GROUP
local BIG_NAME = string.rep("n", 500 * 1024) -- past DynamoDB's 400 KB item

describe("hostile input to the messaging layer", function()
  local ctx = H.seeded("hostile-msg")
  local function batch(title, cases) H.batch(ctx, title, cases) end
  local repo, strict, good, arn
  local tmp = R.tmpdir()

  -- A client that fails the case if a request is sent: validation must come first.
  local no_requests = {
    call = function(_, op) error("a request was sent: " .. tostring(op)) end,
    pages = function(_, op) error("a request was sent: " .. tostring(op)) end,
  }

  setup(function()
    repo = messages.new(ctx.client, { table = ctx.name })
    strict = messages.new(no_requests, { table = ctx.name })
    -- written by the API: only the stream moves the group rows to it
    local newest = assert(repo:create_message(GROUP, BRAM, "the newest message"))
    local got = assert(ctx.client:call("GetItem", { TableName = ctx.name, ConsistentRead = true,
      Key = { pk = { S = model.message_pk(GROUP) }, sk = { S = newest.created_at } } }))
    good = core.json_decode(core.json_encode({
      eventID = "e-good", eventName = "INSERT", eventSource = "aws:dynamodb",
      dynamodb = { SequenceNumber = "4200000000000000000001", StreamViewType = "NEW_IMAGE",
        Keys = { pk = got.Item.pk, sk = got.Item.sk }, NewImage = got.Item },
    }))
    local desc = assert(ctx.client:call("DescribeTable", { TableName = ctx.name }))
    arn = desc.Table.LatestStreamArn
  end)

  teardown(function() R.rmrf(tmp) end)

  -- ddb.messages.new and the methods' argument types -----------------------
  local function new(client, opts)
    return function() return messages.new(client == true and ctx.client or client, opts) end
  end
  local function on(method, ...)
    local args = table.pack(...)
    return function() return strict[method](strict, table.unpack(args, 1, args.n)) end
  end
  local function self_call(method, self)
    return { method .. " not called as a method", RAISES("call it as a method, repo:" .. method),
      function() return messages.new(no_requests)[method](self, GROUP, ORLA.uuid) end }
  end
  local type_cases = {
    { "new: client nil", RAISES("messages.new: client expected"), new(nil) },
    { "new: client without call", RAISES("messages.new: client expected"), new({}) },
    { "new: client a string", RAISES("messages.new: client expected"), new("http://localhost:8000") },
    { "new: opts a string", RAISES("opts must be a table"), new(true, "cruddur-messages") },
    { "new: table a number", RAISES("opts.table must be a table name"), new(true, { table = 42 }) },
    { "new: table empty", RAISES("opts.table must be a table name"), new(true, { table = "" }) },
    { "new: table GRP#x", RAISES("opts.table must be a table name"), new(true, { table = "GRP#x" }) },
    { "new: table with a NUL byte", RAISES("opts.table must be a table name"), new(true, { table = "tab\0le" }) },
    { "new: table 10 MB", RAISES("opts.table must be a table name"), new(true, { table = MB10 }) },
    { "new: now a string", RAISES("opts.now must be a function"), new(true, { now = TS }) },
    self_call("list_messages", nil), self_call("list_message_groups", "repo"), self_call("is_member", {}),
    self_call("create_message", nil), self_call("create_message_group", 42),
    { "list_messages: group a number", RAISES("message_group_uuid must be a string, got number"),
      on("list_messages", 42, ORLA.uuid) },
    { "list_messages: reader a table", RAISES("user uuid must be a string, got table"),
      on("list_messages", GROUP, ORLA) },
    { "list_messages: opts a string", RAISES("opts must be a table"), on("list_messages", GROUP, ORLA.uuid, "40") },
    { "list_messages: cursor a number", RAISES("cursor must be a string"),
      on("list_messages", GROUP, ORLA.uuid, { cursor = 1 }) },
    { "list_message_groups: user true", RAISES("user uuid must be a string, got boolean"),
      on("list_message_groups", true) },
    { "list_message_groups: cursor a table", RAISES("cursor must be a string"),
      on("list_message_groups", ORLA.uuid, { cursor = {} }) },
    { "is_member: user a number", RAISES("user uuid must be a string, got number"), on("is_member", GROUP, 42) },
    { "create_message: sender a handle", RAISES("sender must be a table"),
      on("create_message", GROUP, "orlaquill", "hi") },
    { "create_message: sender nil", RAISES("sender must be a table"), on("create_message", GROUP, nil, "hi") },
    { "create_message: sender.uuid a number", RAISES("sender.uuid must be a string"),
      on("create_message", GROUP, with(ORLA, { uuid = 5 }), "hi") },
    { "create_message: text a number", RAISES("message must be a string, got number"),
      on("create_message", GROUP, ORLA, 42) },
    { "create_message: text a table", RAISES("message must be a string, got table"),
      on("create_message", GROUP, ORLA, { "hi" }) },
    { "create_message: group a number", RAISES("message_group_uuid must be a string"),
      on("create_message", 42, ORLA, "hi") },
    { "create_message_group: sender nil", RAISES("sender must be a table"),
      on("create_message_group", nil, BRAM, "hi") },
    { "create_message_group: receiver a handle", RAISES("receiver must be a table"),
      on("create_message_group", ORLA, "bramkettle", "hi") },
    { "create_message_group: text a number", RAISES("message must be a string"),
      on("create_message_group", ORLA, BRAM, 42) },
  }
  for _, limit in ipairs({ 0, -1, 1001, 1.5, "5", math.huge, 0 / 0 }) do
    type_cases[#type_cases + 1] = { "list_messages: limit " .. tostring(limit),
      RAISES("limit must be an integer 1..1000"),
      on("list_messages", GROUP, ORLA.uuid, { limit = limit }) }
    type_cases[#type_cases + 1] = { "list_message_groups: limit " .. tostring(limit),
      RAISES("limit must be an integer 1..1000"), on("list_message_groups", ORLA.uuid, { limit = limit }) }
  end
  batch("ddb.messages: wrong types raise", type_cases)

  -- Every hostile id in every place an id goes: invalid_uuid before any request.
  local id_cases = {}
  local places = {
    { "list_messages group", GROUP, function(x) return on("list_messages", x, ORLA.uuid) end },
    { "list_messages reader", ORLA.uuid, function(x) return on("list_messages", GROUP, x) end },
    { "list_message_groups user", ORLA.uuid, function(x) return on("list_message_groups", x) end },
    { "is_member group", GROUP, function(x) return on("is_member", x, ORLA.uuid) end },
    { "is_member user", ORLA.uuid, function(x) return on("is_member", GROUP, x) end },
    { "create_message group", GROUP, function(x) return on("create_message", x, ORLA, "hi") end },
    { "create_message sender.uuid", ORLA.uuid, function(x)
      return on("create_message", GROUP, with(ORLA, { uuid = x }), "hi")
    end },
    { "create_message_group sender.uuid", ORLA.uuid, function(x)
      return on("create_message_group", with(ORLA, { uuid = x }), NOOR, "hi")
    end },
    { "create_message_group receiver.uuid", NOOR.uuid, function(x)
      return on("create_message_group", ORLA, with(NOOR, { uuid = x }), "hi")
    end },
  }
  for _, place in ipairs(places) do
    for _, id in ipairs(H.hostile_ids(place[2])) do
      id_cases[#id_cases + 1] = { place[1] .. ": " .. id[1], FAILS("invalid_uuid"), place[3](id[2]) }
    end
  end
  for _, case in ipairs({
    { "list_messages group nil", FAILS("message_group_uuid_blank"), on("list_messages", nil, ORLA.uuid) },
    { "list_messages group empty", FAILS("message_group_uuid_blank"), on("list_messages", "", ORLA.uuid) },
    { "is_member group empty", FAILS("message_group_uuid_blank"), on("is_member", "", ORLA.uuid) },
    { "create_message group nil", FAILS("message_group_uuid_blank"), on("create_message", nil, ORLA, "hi") },
    { "list_messages reader nil", FAILS("invalid_uuid"), on("list_messages", GROUP, nil) },
    { "list_message_groups user empty", FAILS("invalid_uuid"), on("list_message_groups", "") },
    { "create_message sender.uuid missing", FAILS("invalid_uuid"),
      on("create_message", GROUP, with(ORLA, { uuid = false }), "hi") },
  }) do
    id_cases[#id_cases + 1] = case
  end
  batch("ddb.messages: ids that are not canonical UUIDs", id_cases)

  -- Texts, users and cursors -------------------------------------------------------
  local TEXTS = {
    { "nil", nil, "message_blank" }, { "empty", "", "message_blank" }, { "whitespace", " \t\r\n ", "message_blank" },
    { "Unicode spaces", "\u{3000}\u{A0}\u{2009}", "message_blank" },
    { "2000 ideographic spaces", string.rep("\u{3000}", 2000), "message_blank" },
    { "10 MB of spaces", string.rep(" ", #MB10), "message_blank" },
    { "a lone byte 0xff", "\xff", "message_invalid_utf8" }, { "an overlong /", "\xc0\xaf", "message_invalid_utf8" },
    { "a surrogate", "\xed\xa0\x80", "message_invalid_utf8" }, { "a NUL then 0xff", "a\0\xff", "message_invalid_utf8" },
    { "a truncated emoji", "\xf0\x9f\x98", "message_invalid_utf8" },
    { "10 MB then 0xff", MB10 .. "\xff", "message_invalid_utf8" },
    { "1025 characters", string.rep("a", 1025), "message_exceed_max_chars" },
    { "1025 two-byte characters", string.rep("ü", 1025), "message_exceed_max_chars" },
    { "1025 emoji", string.rep("\u{1F600}", 1025), "message_exceed_max_chars" },
    { "10 MB", MB10, "message_exceed_max_chars" },
  }
  local value_cases = {}
  for _, t in ipairs(TEXTS) do
    value_cases[#value_cases + 1] = { "create_message text: " .. t[1], FAILS(t[3]),
      on("create_message", GROUP, ORLA, t[2]) }
    value_cases[#value_cases + 1] = { "create_message_group text: " .. t[1], FAILS(t[3]),
      on("create_message_group", ORLA, BRAM, t[2]) }
  end
  local USERS = {
    { "handle nil", { handle = false } }, { "handle empty", { handle = "" } }, { "handle blank", { handle = " \t" } },
    { "handle a number", { handle = 42 } }, { "handle invalid UTF-8", { handle = "\xff" } },
    { "display_name nil", { display_name = false } }, { "display_name a table", { display_name = {} } },
    { "display_name invalid UTF-8", { display_name = "Orla \xc0" } },
  }
  for _, u in ipairs(USERS) do
    value_cases[#value_cases + 1] = { "create_message sender " .. u[1], FAILS("invalid_user"),
      on("create_message", GROUP, with(ORLA, u[2]), "hi") }
    value_cases[#value_cases + 1] = { "create_message_group sender " .. u[1], FAILS("invalid_user"),
      on("create_message_group", with(ORLA, u[2]), BRAM, "hi") }
  end
  for _, case in ipairs({
    { "receiver nil", FAILS("user_receiver_handle_blank"), on("create_message_group", ORLA, nil, "hi") },
    { "receiver handle empty", FAILS("user_receiver_handle_blank"),
      on("create_message_group", ORLA, with(BRAM, { handle = "" }), "hi") },
    { "receiver handle blank", FAILS("user_receiver_handle_blank"),
      on("create_message_group", ORLA, with(BRAM, { handle = "\t " }), "hi") },
    { "receiver display_name invalid UTF-8", FAILS("invalid_user"),
      on("create_message_group", ORLA, with(BRAM, { display_name = "\xff" }), "hi") },
    { "receiver is the sender", FAILS("invalid_receiver"), on("create_message_group", ORLA, ORLA, "hi") },
    { "receiver is the sender under another handle", FAILS("invalid_receiver"),
      on("create_message_group", ORLA, with(ORLA, { handle = "orla2", display_name = "Orla II" }), "hi") },
  }) do
    value_cases[#value_cases + 1] = case
  end
  for _, c in ipairs({
    { "empty", "" }, { "GRP#<uuid>", "GRP#" .. ORLA.uuid }, { "MSG#<group>", "MSG#" .. GROUP }, { "a uuid", UUID },
    { "a trailing newline", TS .. "\n" }, { "a NUL byte", TS .. "\0" }, { "a leading newline", "\n" .. TS },
    { "a key suffix", TS .. "#" .. UUID }, { "MSG#<group>#<time>", "MSG#" .. GROUP .. "#" .. TS }, { "10 MB", MB10 },
  }) do
    value_cases[#value_cases + 1] = { "list_messages cursor: " .. c[1], FAILS("invalid_cursor"),
      on("list_messages", GROUP, ORLA.uuid, { cursor = c[2] }) }
    value_cases[#value_cases + 1] = { "list_message_groups cursor: " .. c[1], FAILS("invalid_cursor"),
      on("list_message_groups", ORLA.uuid, { cursor = c[2] }) }
  end
  batch("ddb.messages: texts, users and cursors refused before any request", value_cases)

  local function live(method, ...)
    local args = table.pack(...)
    return function() return repo[method](repo, table.unpack(args, 1, args.n)) end
  end
  batch("ddb.messages: refused by the service or the membership check", {
    { "an outsider reads the group", FAILS("forbidden"), live("list_messages", GROUP, NOOR.uuid) },
    { "an outsider writes into the group", FAILS("forbidden"), live("create_message", GROUP, NOOR, "let me in") },
    { "an outsider is no member", RETURNS(function(v) assert.is_false(v) end), live("is_member", GROUP, NOOR.uuid) },
    { "a group that does not exist", FAILS("forbidden"), live("create_message", UUID, ORLA, "hello?") },
    { "a cursor of a valid format that was never returned", RETURNS(function(records)
      assert.is_table(records)
    end), live("list_messages", GROUP, ORLA.uuid, { cursor = "1999-01-01T00:00:00.000000+00:00" }) },
    { "a 500 KB display_name into the group", FAILS(true),
      live("create_message", GROUP, with(ORLA, { display_name = BIG_NAME }), "hi") },
    { "a 500 KB display_name starting a group", FAILS(true),
      live("create_message_group", with(ORLA, { display_name = BIG_NAME }), NOOR, "hi") },
    { "a 500 KB handle starting a group", FAILS(true),
      live("create_message_group", NOOR, with(BRAM, { handle = BIG_NAME }), "hi") },
  })

  -- ddb.stream.process: malformed records are counted skips --------------------------
  -- Each variant turns a copy of the valid record into a malformed one.
  local function copy(v)
    if type(v) ~= "table" then return v end
    local out = {}
    for k, x in pairs(v) do out[k] = copy(x) end
    return setmetatable(out, getmetatable(v))
  end
  local function d(r) return r.dynamodb end
  local VARIANTS = {
    { "eventName missing", function(r) r.eventName = nil end },
    { "eventName a number", function(r) r.eventName = 1 end },
    { "eventName lowercase", function(r) r.eventName = "insert" end },
    { "eventName unknown", function(r) r.eventName = "UPSERT" end },
    { "eventName with a NUL byte", function(r) r.eventName = "INSERT\0" end },
    { "eventName with a space", function(r) r.eventName = "INSERT " end },
    { "eventName 10 MB", function(r) r.eventName = MB10 end },
    { "REMOVE", function(r) r.eventName = "REMOVE" end },
    { "MODIFY", function(r) r.eventName = "MODIFY" end },
    { "dynamodb missing", function(r) r.dynamodb = nil end },
    { "dynamodb a string", function(r) r.dynamodb = "INSERT" end },
    { "dynamodb an array", function(r) r.dynamodb = core.array({ d(r) }) end },
    { "dynamodb 100000 levels of junk", function(r) r.dynamodb = deep_table(100000, "Keys") end },
    { "Keys missing", function(r) d(r).Keys = nil end },
    { "Keys a string", function(r) d(r).Keys = "MSG#" .. GROUP end },
    { "pk missing", function(r) d(r).Keys.pk = nil end },
    { "pk a bare string", function(r) d(r).Keys.pk = "MSG#" .. GROUP end },
    { "pk.S a number", function(r) d(r).Keys.pk = { S = 42 } end },
    { "pk an N", function(r) d(r).Keys.pk = { N = "42" } end },
    { "pk.S deeply nested", function(r) d(r).Keys.pk = { S = deep_table(100000) } end },
    { "pk GRP#<user>", function(r) d(r).Keys.pk.S = "GRP#" .. ORLA.uuid end },
    { "pk PAIR#", function(r) d(r).Keys.pk.S = "PAIR#" .. ORLA.uuid .. "#" .. BRAM.uuid end },
    { "pk msg# lowercase", function(r) d(r).Keys.pk.S = "msg#" .. GROUP end },
    { "pk MSG#GRP#", function(r) d(r).Keys.pk.S = "MSG#GRP#" .. GROUP:sub(5) end },
    { "pk 10 MB", function(r) d(r).Keys.pk.S = "MSG#" .. MB10 end },
    { "sk missing everywhere", function(r) d(r).Keys.sk = nil; d(r).NewImage.sk = nil end },
    { "sk a number", function(r) d(r).Keys.sk = { S = 7 } end },
    { "sk empty", function(r) d(r).Keys.sk.S = ""; d(r).NewImage.sk.S = "" end },
    { "sk not a time", function(r) d(r).Keys.sk.S = "zzzz"; d(r).NewImage.sk.S = "zzzz" end },
    { "sk GRP#<user>", function(r) d(r).Keys.sk.S = "GRP#" .. ORLA.uuid; d(r).NewImage.sk.S = "GRP#" .. ORLA.uuid end },
    { "sk a time with a newline", function(r) d(r).Keys.sk.S = TS .. "\n"; d(r).NewImage.sk.S = TS .. "\n" end },
    { "sk month 13", function(r)
      local bad = "2999-13-01T00:00:00.000000+00:00"
      d(r).Keys.sk.S, d(r).NewImage.sk.S = bad, bad
    end },
    { "sk 10 MB", function(r) d(r).Keys.sk.S = MB10; d(r).NewImage.sk.S = MB10 end },
    { "sk Keys and NewImage disagree", function(r) d(r).NewImage.sk.S = TS end },
    { "NewImage missing", function(r) d(r).NewImage = nil end },
    { "NewImage a string", function(r) d(r).NewImage = "hi" end },
    { "NewImage a list", function(r) d(r).NewImage = core.array({ 1, 2 }) end },
    { "message missing", function(r) d(r).NewImage.message = nil end },
    { "message a number", function(r) d(r).NewImage.message = { S = 7 } end },
    { "message an N", function(r) d(r).NewImage.message = { N = "7" } end },
    { "message deeply nested", function(r) d(r).NewImage.message = { S = deep_table(100000) } end },
    { "message invalid UTF-8", function(r) d(r).NewImage.message.S = "caf\xe9" end },
    { "message 1025 characters", function(r) d(r).NewImage.message.S = string.rep("a", 1025) end },
    { "message 1025 emoji", function(r) d(r).NewImage.message.S = string.rep("\u{1F600}", 1025) end },
    { "message 10 MB", function(r) d(r).NewImage.message.S = MB10 end },
    { "SequenceNumber a number", function(r) d(r).SequenceNumber = 12 end },
    { "eventID a table", function(r) d(r).SequenceNumber = nil; r.eventID = {} end },
  }
  for _, id in ipairs(H.hostile_ids(GROUP)) do
    VARIANTS[#VARIANTS + 1] = { "group id " .. id[1], function(r) d(r).Keys.pk.S = "MSG#" .. id[2] end }
  end
  local function variant(v)
    local r = copy(good)
    v[2](r)
    return r
  end
  local function process(records, opts)
    return function() return stream.process(ctx.client, records(), with({ table = ctx.name }, opts or {})) end
  end
  local process_cases = {
    { "client nil", RAISES("stream.process: client expected"), function() return stream.process(nil, {}) end },
    { "client a string", RAISES("stream.process: client expected"), function() return stream.process("c", {}) end },
    { "client with call a number", RAISES("client expected"), function() return stream.process({ call = 42 }, {}) end },
    { "records nil", RAISES("records must be an array of stream records, got nil"),
      process(function() return nil end) },
    { "records a string", RAISES("got string"), process(function() return "Records" end) },
    { "opts a string", RAISES("opts must be a table or nil"),
      function() return stream.process(ctx.client, {}, "t") end },
    { "opts.table a number", RAISES("opts.table must be a non-empty string"),
      process(function() return {} end, { table = 42 }) },
    { "opts.index a table", RAISES("opts.index must be a non-empty string"),
      process(function() return {} end, { index = {} }) },
    { "opts.max_rounds -1", RAISES("opts.max_rounds must be an integer"),
      process(function() return {} end, { max_rounds = -1 }) },
    { "opts.max_rounds 1.5", RAISES("opts.max_rounds must be an integer"),
      process(function() return {} end, { max_rounds = 1.5 }) },
    { "opts.inject a string", RAISES("opts.inject must be a function"),
      process(function() return {} end, { inject = "x" }) },
    { "records a map", SKIPS(0), process(function() return { Records = good } end) },
    { "a record that is a string", SKIPS(1), process(function() return { "INSERT" } end) },
    { "records of every other type", SKIPS(6),
      process(function() return { 42, true, print, io.stdout, core.null, 1.5 } end) },
  }
  for _, v in ipairs(VARIANTS) do
    process_cases[#process_cases + 1] = { v[1], SKIPS(1), process(function() return { variant(v) } end) }
  end
  process_cases[#process_cases + 1] = { "all of them in one batch", SKIPS(#VARIANTS), process(function()
    local all = {}
    for i, v in ipairs(VARIANTS) do all[i] = variant(v) end
    return all
  end) }
  batch("ddb.stream.process", process_cases)

  -- ddb.stream.handler ---------------------------------------------------------------
  describe("with the handler's client and table", function()
    local factory, getenv
    setup(function()
      factory, getenv = stream.client_factory, stream.getenv
      stream.client_factory = function() return ctx.client end
      stream.getenv = function(k) return k == "DDB_TABLE" and ctx.name or nil end
    end)
    teardown(function()
      stream.client_factory, stream.getenv = factory, getenv
    end)
    local function handles(event)
      return { RETURNS(function(res) assert.equal('{"batchItemFailures":[]}', core.json_encode(res)) end),
        function() return stream.handler(event()) end }
    end
    local cases = {
      { "event nil", RAISES("stream.handler: event must be a table, got nil"), function() return stream.handler() end },
      { "event a string", RAISES("event must be a table, got string"), function() return stream.handler("{}") end },
      { "event a number", RAISES("event must be a table, got number"), function() return stream.handler(42) end },
    }
    for _, e in ipairs({
      { "an empty event", function() return {} end },
      { "Records a string", function() return { Records = "x" } end },
      { "Records a number", function() return { Records = 42 } end },
      { "Records a map", function() return { Records = { first = good } } end },
      { "Records of junk", function() return { Records = { "x", 42, true, print, core.null } } end },
      { "Records nested 100000 deep", function() return { Records = deep_table(100000) } end },
      { "every malformed record", function()
        local all = {}
        for i, v in ipairs(VARIANTS) do all[i] = variant(v) end
        return { Records = all }
      end },
    }) do
      local h = handles(e[2])
      cases[#cases + 1] = { e[1], h[1], h[2] }
    end
    batch("ddb.stream.handler", cases)
  end)

  -- ddb.stream.run and checkpoint_name -------------------------------------------------
  local function run(opts)
    return function() return stream.run(ctx.client, with({ table = ctx.name, checkpoint_dir = tmp .. "/cp" }, opts)) end
  end
  -- Runs with a checkpoint file holding `text(arn)`; the file must be left as it was.
  local n_cp = 0
  local function run_with_checkpoint(text)
    return function()
      n_cp = n_cp + 1
      local dir = tmp .. "/bad-" .. n_cp
      assert(os.execute("mkdir -p " .. dir))
      local path = dir .. "/" .. stream.checkpoint_name(arn)
      local content = type(text) == "function" and text(arn) or text
      R.write_file(path, content)
      local res, err = stream.run(ctx.client, { table = ctx.name, checkpoint_dir = dir })
      local f = assert(io.open(path, "rb"))
      assert.equal(content, f:read("a"), "the checkpoint file changed")
      f:close()
      return res, err
    end
  end
  local function cp_json(shards, over)
    return function(a)
      return core.json_encode(with({ version = 1, stream_arn = a, table = "t", shards = shards }, over or {}))
    end
  end
  local run_cases = {
    { "client nil", RAISES("stream.run: client expected"), function() return stream.run(nil) end },
    { "opts a string", RAISES("stream.run: opts must be a table or nil"),
      function() return stream.run(ctx.client, "x") end },
    { "start lowercase", RAISES("opts.start must be"), run({ start = "latest" }) },
    { "start a number", RAISES("opts.start must be"), run({ start = 1 }) },
    { "batch_size 0", RAISES("opts.batch_size must be an integer from 1 to 1000"), run({ batch_size = 0 }) },
    { "batch_size 1001", RAISES("opts.batch_size must be an integer from 1 to 1000"), run({ batch_size = 1001 }) },
    { "batch_size a string", RAISES("opts.batch_size"), run({ batch_size = "5" }) },
    { "idle_max_ms -1", RAISES("opts.idle_max_ms"), run({ idle_max_ms = -1 }) },
    { "refresh_ms 1.5", RAISES("opts.refresh_ms"), run({ refresh_ms = 1.5 }) },
    { "checkpoint_dir empty", RAISES("opts.checkpoint_dir must be a non-empty string"), run({ checkpoint_dir = "" }) },
    { "checkpoint_dir a number", RAISES("opts.checkpoint_dir must be"), run({ checkpoint_dir = 42 }) },
    { "checkpoint_dir with a NUL byte", RAISES("without NUL bytes"), run({ checkpoint_dir = tmp .. "/cp\0/../x" }) },
    { "once a string", RAISES("opts.once must be a boolean"), run({ once = "yes" }) },
    { "once and follow", RAISES("exclude each other"), run({ once = true, follow = true }) },
    { "on_batch a string", RAISES("opts.on_batch must be a function"), run({ on_batch = "print" }) },
    { "should_stop a number", RAISES("opts.should_stop must be a function"), run({ should_stop = 5 }) },
    { "table a number", RAISES("opts.table must be a non-empty string"), run({ table = 42 }) },
    { "max_rounds 1001", RAISES("opts.max_rounds must be an integer"), run({ max_rounds = 1001 }) },
    { "a table GRP#x", FAILS(true), run({ table = "GRP#x" }) },
    { "a table that is not there", FAILS("ResourceNotFoundException"),
      run({ table = moto.table_name("hostile-none") }) },
    { "checkpoint_dir a file", FAILS("checkpoint_io"), run({ checkpoint_dir = R.write_file(tmp .. "/a-file", "x") }) },
    { "checkpoint 10 MB of garbage", FAILS("bad_checkpoint"), run_with_checkpoint(MB10) },
    { "checkpoint with NUL bytes", FAILS("bad_checkpoint"), run_with_checkpoint('{"version":1\0}') },
    { "checkpoint an array", FAILS("bad_checkpoint"), run_with_checkpoint("[]") },
    { "checkpoint 100000 levels deep", FAILS("bad_checkpoint"), run_with_checkpoint(string.rep("[", 100000)) },
    { "checkpoint invalid UTF-8", FAILS("bad_checkpoint"), run_with_checkpoint('{"version":1,"x":"\xff"}') },
    { "checkpoint version 2", FAILS("bad_checkpoint"), run_with_checkpoint(cp_json({}, { version = 2 })) },
    { "checkpoint of another stream", FAILS("bad_checkpoint"),
      run_with_checkpoint(cp_json({}, { stream_arn = "GRP#x" })) },
    { "checkpoint shards an array", FAILS("bad_checkpoint"), run_with_checkpoint(cp_json(core.array({}))) },
    { "checkpoint shards a string", FAILS("bad_checkpoint"), run_with_checkpoint(cp_json("shard-1")) },
    { "checkpoint shard id empty", FAILS("bad_checkpoint"), run_with_checkpoint(cp_json({ [""] = {} })) },
    { "checkpoint shard a string", FAILS("bad_checkpoint"), run_with_checkpoint(cp_json({ s = "42" })) },
    { "checkpoint sequence number a shell command", FAILS("bad_checkpoint"),
      run_with_checkpoint(cp_json({ s = { sequence_number = "1; touch /tmp/ddb-pwned" } })) },
    { "checkpoint sequence number a number", FAILS("bad_checkpoint"),
      run_with_checkpoint(cp_json({ s = { sequence_number = 42 } })) },
    { "checkpoint sequence number of 65 digits", FAILS("bad_checkpoint"),
      run_with_checkpoint(cp_json({ s = { sequence_number = string.rep("9", 65) } })) },
    { "checkpoint sequence number negative", FAILS("bad_checkpoint"),
      run_with_checkpoint(cp_json({ s = { sequence_number = "-1" } })) },
    { "checkpoint finished a string", FAILS("bad_checkpoint"),
      run_with_checkpoint(cp_json({ s = { finished = "yes" } })) },
    { "checkpoint_name: nil", RAISES("arn must be a non-empty string"),
      function() return stream.checkpoint_name() end },
    { "checkpoint_name: empty", RAISES("arn must be a non-empty string"),
      function() return stream.checkpoint_name("") end },
  }
  for _, a in ipairs({ { "a path", "../../etc/passwd" }, { "a NUL byte", "arn\0/x" }, { "a dot file", ".hidden" },
    { "a newline", "arn\n/x" }, { "10 MB", MB10 }, { "only slashes", "///" } }) do
    run_cases[#run_cases + 1] = { "checkpoint_name: " .. a[1], RETURNS(function(n)
      assert.matches("^[%w%.%-_]+%.json$", n)
      assert.is_true(#n <= 255)
      assert.not_equal(".", n:sub(1, 1))
    end), function() return stream.checkpoint_name(a[2]) end }
  end
  batch("ddb.stream.run and checkpoint_name", run_cases)

  -- The valid counterparts write -----------------------------------------------------
  describe("the valid counterparts", function()
    local before
    setup(function() before = moto.snapshot(ctx.client, ctx.name) end)

    it("write the messages at the limits as given, and no key from a user table's extra fields", function()
      local texts = {
        string.rep("ü", 1024), string.rep("\u{1F600}", 1000), string.rep("\u{1F600}", 1024), "a\0b GRP#x MSG#y",
      }
      local written = {}
      for i, text in ipairs(texts) do
        local sender = i % 2 == 1 and ORLA or BRAM
        written[i] = assert(repo:create_message(GROUP, sender, text))
      end
      local forged = with(ORLA, { pk = "GRP#" .. NOOR.uuid, sk = TS, message_group_uuid = UUID, message_uuid = UUID })
      written[#written + 1] = assert(repo:create_message_group(forged, with(BRAM, { pk = "PAIR#x" }), "extra fields"))
      texts[#texts + 1] = "extra fields"
      local after = moto.snapshot(ctx.client, ctx.name)
      assert.equal(#before + #texts, #after)
      local by_uuid = {}
      for _, row in ipairs(after) do
        if row.pk == model.message_pk(GROUP) then by_uuid[row.message_uuid] = row end
        assert.is_nil(row.pk:find(NOOR.uuid, 1, true), "a key from a user table's field: " .. row.pk)
      end
      for i, rec in ipairs(written) do
        local row = assert(by_uuid[rec.uuid], "message " .. i .. " not written")
        assert.equal(texts[i], row.message)
        assert.equal(rec.created_at, row.sk)
        assert.equal(GROUP, rec.message_group_uuid)
      end
    end)

    it("process the valid record among every malformed one: it alone moves both group rows", function()
      local all = {}
      for i, v in ipairs(VARIANTS) do all[i] = variant(v) end
      all[#all + 1] = "junk"
      all[#all + 1] = good
      local s = stream.process(ctx.client, all, { table = ctx.name })
      assert.same({ #VARIANTS + 2, #VARIANTS + 1, 1, 2, 0 }, { s.processed, s.skipped, s.applied, s.moved, s.failed })
      local rows = repo:list_message_groups(ORLA.uuid)
      assert.equal(good.dynamodb.Keys.sk.S, rows[1].created_at)
      assert.equal("the newest message", rows[1].message)
    end)

    it("run with a checkpoint directory named like a shell command: no command runs", function()
      local marker = tmp .. "/pwned"
      local dir = tmp .. "/$(touch " .. marker .. ")'; touch " .. marker .. "; '"
      local s = assert(stream.run(ctx.client, { table = ctx.name, checkpoint_dir = dir }))
      assert.is_true(s.records > 0)
      assert.is_nil(io.open(marker), "a shell command ran")
      assert.is_truthy(io.open(s.checkpoint), "the checkpoint is in the directory as named")
      assert.equal(dir .. "/" .. stream.checkpoint_name(arn), s.checkpoint)
    end)
  end)
end)

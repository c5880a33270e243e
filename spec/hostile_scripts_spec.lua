-- Hostile arguments, environment and files for every bin/ddb script, run as
-- subprocesses (spec/support/run.lua) against moto: each failure must exit
-- non-zero (2 for a usage error, else 1) with nothing on stdout and exactly
-- one line on stderr naming the script (no Lua stack trace, no ".lua:NN:"),
-- and write nothing (a Scan of the seeded table and the list of tables are
-- compared before and after each batch). The valid counterparts at the
-- limits run at the end and do write.
local H = require("support.hostile").bind(_ENV)
local R = require("support.run")
local moto = require("support.moto")
local ids = require("ddb.ids")
local model = require("ddb.model")
local stream = require("ddb.stream")

local UUID, GROUP, ORLA = H.UUID, H.GROUP, H.ORLA
local K100 = string.rep("k", 100 * 1024) -- argv takes up to 128 KiB per argument
local ALL = { "schema-load", "drop", "list-tables", "scan", "seed", "stream", "patterns/list-conversations",
  "patterns/get-conversation", "patterns/create-message", "patterns/create-conversation" }

local function base(script) return script:match("([^/]+)$") end

-- Asserts a one-line failure of `script` with exit `code` mentioning `text`.
local function assert_failure(script, code, text, got, out, err)
  if got == R.TIMED_OUT then error(script .. " hung (stopped by timeout)") end
  assert.equal(code, got, "exit code; stderr: " .. err)
  assert.equal("", out, "stdout of a failure")
  local lines = R.lines(err)
  assert.equal(1, #lines, "stderr is not one line: " .. err)
  assert.equal("\n", err:sub(-1), "stderr does not end with a newline")
  assert.is_nil(err:find("stack traceback", 1, true), err)
  assert.is_nil(err:find("%.lua:%d+:"), "a Lua error position: " .. err)
  assert.is_nil(err:find("attempt to ", 1, true), "a Lua runtime error: " .. err)
  assert.equal(base(script) .. ": ", err:sub(1, #base(script) + 2), "stderr does not name the script")
  if text then assert.matches(text, err, 1, true) end
end

describe("hostile input to the bin/ddb scripts", function()
  local ctx = H.seeded("hostile-scripts")
  local tmp = R.tmpdir()
  teardown(function() R.rmrf(tmp) end)

  -- The common options, before the case's own (the last of a repeated
  -- option wins, so a hostile --table in the case is the one used).
  local function common(args, no_table)
    local out = { "--endpoint", moto.endpoint() }
    if not no_table then
      out[#out + 1] = "--table"
      out[#out + 1] = ctx.name
    end
    for _, a in ipairs(args) do out[#out + 1] = a end
    return out
  end

  -- A batch of `{ script, args, exit code, text, opts }` cases; `args` is a
  -- list or a function returning one (for what is known after the setup);
  -- opts: `env`, `raw` (no --endpoint/--table added).
  local function batch(title, cases)
    describe(title, function()
      local before, tables
      setup(function()
        before, tables = moto.snapshot(ctx.client, ctx.name), H.table_names(ctx.client)
      end)
      for _, c in ipairs(cases) do
        local script, args, code, text, opts = c[1], c[2], c[3], c[4], c[5] or {}
        local label = ("%s %s"):format(script, opts.label or (type(args) == "table" and table.concat(args, " ")
          or "...")):gsub("[%c]", "\\n")
        if #label > 100 then label = label:sub(1, 100) .. "..." end
        it(label, function()
          local argv = type(args) == "function" and args() or args
          if not opts.raw then argv = common(argv, opts.no_table) end
          local got, out, err = R.script("bin/ddb/" .. script, argv, { env = opts.env, timeout = 30 })
          assert_failure(script, code, text, got, out, err)
        end)
      end
      it("wrote nothing (" .. #cases .. " runs)", function()
        assert.same(tables, H.table_names(ctx.client))
        assert.same(before, moto.snapshot(ctx.client, ctx.name))
      end)
    end)
  end

  -- Options every script takes, after the arguments that make the rest of
  -- the command valid (so that the hostile option is what fails).
  local VALID = {
    ["patterns/list-conversations"] = { "--user", "orlaquill" },
    ["patterns/get-conversation"] = { "--user", "orlaquill" },
    ["patterns/create-message"] = { "--user", "orlaquill", "--group", GROUP, "hi" },
    ["patterns/create-conversation"] = { "--user", "orlaquill", "--to", "bramkettle", "hi" },
  }
  local common_cases = {}
  for _, script in ipairs(ALL) do
    local function valid(...)
      local out = {}
      for _, a in ipairs(VALID[script] or {}) do out[#out + 1] = a end
      for _, a in ipairs({ ... }) do out[#out + 1] = a end
      return out
    end
    for _, c in ipairs({
      { { "--table", "" }, 2, "invalid table name" },
      { { "--table", "GRP#x" }, 2, 'invalid table name "GRP#x"' },
      { { "--table", "MSG#" .. GROUP }, 2, "invalid table name" },
      { { "--table", "tab\nle" }, 2, 'invalid table name "tab\\nle"' },
      { { "--table", "tab\xffle" }, 2, "invalid table name" },
      { { "--table", K100 }, 2, "invalid table name" },
      { { "--x\ny" }, 2, "unknown option --x\\ny" },
      { { "--json=yes" }, 2, "--json takes no value" },
      { { "un\nexpected" }, 2, "unexpected argument un\\nexpected" },
      { { "--region", "us\neast-1" }, 1, "ConfigError: invalid AWS region" },
      { { "--region", "" }, 2, "option 'region' must not be empty" },
      { { "--endpoint", "http://local\nhost:8000" }, 1, "ConfigError: invalid endpoint URL" },
      { { "--endpoint", "GRP#x" }, 1, "ConfigError: invalid endpoint URL" },
      { { "--endpoint", K100 }, 1, "ConfigError: invalid endpoint URL" },
    }) do
      local args = c[1]
      local raw = args[1] == "--endpoint"
      local argv = raw and valid("--table", "tbl-ok", table.unpack(args)) or valid(table.unpack(args))
      common_cases[#common_cases + 1] = { script, argv, c[2], c[3],
        { raw = raw, label = table.concat(args, " "):sub(1, 60) } }
    end
    common_cases[#common_cases + 1] = { script, valid(), 2, "invalid table name", {
      env = { "DDB_TABLE=a\nb" }, no_table = true, label = "DDB_TABLE with a newline" } }
  end
  batch("every script: hostile common options", common_cases)

  -- The admin scripts -------------------------------------------------------
  local function users_file(label, text) return R.write_file(tmp .. "/" .. label .. ".lua", text) end
  local function user_list(over)
    local u = H.with(ORLA, over)
    return ("return { { uuid = %q, handle = %q, display_name = %q }, "
      .. "{ uuid = '3bfeb448-2c4d-42f0-82c2-f2dd3acc39af', handle = 'bramkettle', display_name = 'Bram' } }")
      :format(u.uuid, u.handle, u.display_name)
  end
  local LOOP = users_file("loop", "while true do end")
  local SYNTAX = users_file("syntax", "return {{")
  local NOT_TABLES = users_file("not-tables", "return { 42, 'orlaquill' }")
  local UUID_NUMBER = users_file("uuid-number", "return { { uuid = 5, handle = 'orlaquill', display_name = 'O' } }")
  local FORGED = users_file("forged", user_list({ uuid = "GRP#" .. ORLA.uuid }))
  local HUGE = users_file("huge", user_list({ display_name = string.rep("n", 400 * 1024) }))
  local function conv(label, line)
    return users_file(label, ("return { message_group_uuid = %q, participants = { 'orlaquill', 'bramkettle' }, "
      .. "lines = { { handle = 'orlaquill', text = %q } } }"):format(UUID, line))
  end
  batch("the admin scripts", {
    { "schema-load", function() return { "--table", ctx.name } end, 1, "table_exists", { label = "the seeded table" } },
    { "schema-load", { "--on-demand=yes" }, 2, "--on-demand takes no value" },
    { "scan", { "--limit", "0" }, 2, "--limit needs a positive integer" },
    { "scan", { "--limit", "-1" }, 2, "--limit needs a positive integer" },
    { "scan", { "--limit", "1e3" }, 2, "--limit needs a positive integer" },
    { "scan", { "--limit", "0x10" }, 2, "--limit needs a positive integer" },
    { "scan", { "--limit", "99999999999999999999" }, 2, "--limit needs a positive integer" },
    { "scan", { "--limit", "" }, 2, "--limit needs a positive integer" },
    { "scan", { "--limit" }, 2, "--limit needs a value", { raw = true } },
    { "seed", { "--users", tmp .. "/missing.lua" }, 1, "invalid_fixture" },
    { "seed", { "--users", tmp }, 1, "invalid_fixture" },
    { "seed", { "--users", LOOP }, 1, "a fixture is data, not a program" },
    { "seed", { "--users", SYNTAX }, 1, "invalid_fixture" },
    { "seed", { "--users", NOT_TABLES }, 1, "user 1 is not a table" },
    { "seed", { "--users", FORGED }, 1, "is not a canonical lowercase UUID" },
    { "seed", { "--users", HUGE }, 1, "more than DynamoDB's" },
    { "seed", {}, 1, "invalid_fixture", { env = { "DDB_USERS_FILE=" .. LOOP }, label = "DDB_USERS_FILE looping" } },
    { "seed", { "--conversation", conv("long", string.rep("a", 1025)) }, 1, "longer than 1024 characters" },
    { "seed", { "--conversation", conv("utf8", "caf\xe9") }, 1, "non-blank UTF-8 text" },
    { "seed", { "--conversation", conv("blank", " \n ") }, 1, "non-blank UTF-8 text" },
    { "stream", { "--batch-size", "0" }, 2, "--batch-size must be an integer 1..1000" },
    { "stream", { "--batch-size", "1001" }, 2, "--batch-size must be an integer 1..1000" },
    { "stream", { "--batch-size", "1e2" }, 2, "--batch-size must be an integer 1..1000" },
    { "stream", { "--batch-size", "\n5" }, 2, "--batch-size must be an integer 1..1000" },
    { "stream", { "--from", "LATEST" }, 2, "--from must be trim-horizon or latest" },
    { "stream", { "--from", "latest\n" }, 2, "--from must be trim-horizon or latest" },
    { "stream", { "--once", "--follow" }, 2, "--once and --follow exclude each other" },
    { "stream", { "--checkpoint-dir", "" }, 2, "--checkpoint-dir needs a directory" },
    { "stream", { "--checkpoint-dir", R.write_file(tmp .. "/a-file", "x") }, 1, "checkpoint_io" },
    { "stream", function()
      local dir = tmp .. "/bad-checkpoint"
      os.execute("mkdir -p " .. dir)
      local arn = assert(ctx.client:call("DescribeTable", { TableName = ctx.name })).Table.LatestStreamArn
      R.write_file(dir .. "/" .. stream.checkpoint_name(arn), '{"version":1,"shards":"\n"}')
      return { "--checkpoint-dir", dir }
    end, 1, "bad_checkpoint", { label = "a corrupt checkpoint" } },
    { "list-tables", { "--table", "GRP#x" }, 2, "invalid table name", { raw = true } },
  })

  -- The pattern scripts -------------------------------------------------------
  local pattern_cases = {}
  local function add(c) pattern_cases[#pattern_cases + 1] = c end
  for _, id in ipairs(H.hostile_ids(GROUP)) do
    if #id[2] < 1000 and not id[2]:find("\0", 1, true) then -- argv holds neither
      add({ "patterns/get-conversation", { "--user", "orlaquill", "--group", id[2] }, 1, "invalid_uuid",
        { label = "--group " .. id[1] } })
      add({ "patterns/create-message", { "--user", "orlaquill", "--group", id[2], "hi" }, 1, "invalid_uuid",
        { label = "--group " .. id[1] } })
    end
  end
  for _, t in ipairs({
    { "empty", "", "message_blank" }, { "blank", " \t\n ", "message_blank" },
    { "ideographic spaces", string.rep("\u{3000}", 3), "message_blank" },
    { "invalid UTF-8", "caf\xe9", "message_invalid_utf8" }, { "a surrogate", "\xed\xa0\x80", "message_invalid_utf8" },
    { "1025 characters", string.rep("a", 1025), "message_exceed_max_chars" },
    { "1025 emoji", string.rep("\u{1F600}", 1025), "message_exceed_max_chars" },
    { "100 KB", K100, "message_exceed_max_chars" },
  }) do
    add({ "patterns/create-message", { "--user", "orlaquill", "--group", GROUP, t[2] }, 1, t[3],
      { label = "TEXT " .. t[1] } })
    add({ "patterns/create-conversation", { "--user", "orlaquill", "--to", "bramkettle", t[2] }, 1, t[3],
      { label = "TEXT " .. t[1] } })
  end
  for _, script in ipairs({ "patterns/list-conversations", "patterns/get-conversation" }) do
    for _, l in ipairs({ "0", "1001", "-5", "1.5", "1e2", "", "10\n" }) do
      add({ script, { "--user", "orlaquill", "--limit", l }, 2, "--limit must be an integer 1..1000",
        { label = "--limit " .. l } })
    end
  end
  for _, script in ipairs({ "patterns/list-conversations", "patterns/get-conversation", "patterns/create-message",
    "patterns/create-conversation" }) do
    local rest = script:find("create%-message") and { "--group", GROUP, "hi" }
      or script:find("create%-conversation") and { "--to", "bramkettle", "hi" } or {}
    local function args(user, more)
      local a = { "--user", user }
      for _, x in ipairs(more or {}) do a[#a + 1] = x end
      for _, x in ipairs(rest) do a[#a + 1] = x end
      return a
    end
    add({ script, args(""), 2, "--user HANDLE is required", { label = "--user empty" } })
    add({ script, args("orla\nquill"), 1, 'no user with handle "orla\\nquill"', { label = "--user with a newline" } })
    add({ script, args("GRP#" .. ORLA.uuid), 1, "no user with handle", { label = "--user GRP#<uuid>" } })
    add({ script, args(ORLA.uuid), 1, "no user with handle", { label = "--user <uuid>" } })
    add({ script, args(K100), 1, "no user with handle", { label = "--user 100 KB" } })
    for _, f in ipairs({ { "missing", tmp .. "/missing.lua", "cannot read the users file" },
      { "a directory", tmp, "cannot read the users file" }, { "a syntax error", SYNTAX, "cannot read the users file" },
      { "that loops forever", LOOP, "a fixture is data, not a program" },
      { "with entries that are not users", NOT_TABLES, "user 1 is not" },
      { "with a uuid that is a number", UUID_NUMBER, "user 1 is not" },
      { "with a forged uuid", FORGED, "invalid_uuid" } }) do
      add({ script, args("orlaquill", { "--users", f[2] }), 1, f[3], { label = "--users " .. f[1] } })
    end
  end
  add({ "patterns/get-conversation", { "--user", "noorhal", "--group", GROUP }, 1, "forbidden" })
  add({ "patterns/get-conversation", { "--user", "orlaquill", "--group", UUID }, 1, "forbidden" })
  add({ "patterns/create-message", { "--user", "noorhal", "--group", GROUP, "let me in" }, 1, "forbidden" })
  add({ "patterns/create-message", { "--user", "orlaquill", "--group", GROUP }, 1, "message_blank",
    { label = "no TEXT" } })
  add({ "patterns/create-message", { "--user", "orlaquill", "--group", GROUP, "a", "b" }, 2, "unexpected argument b" })
  add({ "patterns/create-conversation", { "--user", "orlaquill", "--to", "", "hi" }, 1, "user_receiver_handle_blank" })
  add({ "patterns/create-conversation", { "--user", "orlaquill", "--to", "orlaquill", "hi" }, 1, "invalid_receiver" })
  add({ "patterns/create-conversation", { "--user", "orlaquill", "--to", "brам\nkettle", "hi" }, 1,
    "no user with handle" })
  batch("the pattern scripts", pattern_cases)

  -- The valid counterparts write ---------------------------------------------------
  describe("the valid counterparts at the limits", function()
    it("create-message writes 1024 two-byte characters and 1000 emoji as given; get-conversation shows them",
      function()
        local before = #moto.snapshot(ctx.client, ctx.name)
        local texts = { string.rep("ü", 1024), string.rep("\u{1F600}", 1000) }
        for _, text in ipairs(texts) do
          local code, out, err = R.script("bin/ddb/patterns/create-message",
            common({ "--user", "orlaquill", "--group", GROUP, "--json", text }))
          assert.equal(0, code, err)
          assert.equal("", err)
          local rec = require("cjson").decode(out)
          assert.equal(text, rec.message)
          assert.is_true(ids.is_timestamp(rec.created_at))
        end
        local rows = moto.snapshot(ctx.client, ctx.name)
        assert.equal(before + 2, #rows)
        local found = 0
        for _, row in ipairs(rows) do
          if row.pk == model.message_pk(GROUP) and (row.message == texts[1] or row.message == texts[2]) then
            found = found + 1
          end
        end
        assert.equal(2, found)
        local code, out, err = R.script("bin/ddb/patterns/get-conversation",
          common({ "--user", "bramkettle", "--limit", "3" }))
        assert.equal(0, code, err)
        assert.matches(texts[2], out, 1, true)
      end)
  end)
end)

-- bin/ddb/patterns/* run as subprocesses against moto, the way a developer
-- runs them from a checkout (no LUA_PATH needed).
local moto = require("support.moto")
local R = require("support.run")
local cjson = require("cjson")
local ids = require("ddb.ids")
local marshal = require("ddb.marshal")
local messages = require("ddb.messages")
local schema = require("ddb.schema")

local ORLA = { uuid = "1af65f48-6c6d-489d-b94d-44a152814656", handle = "orlaquill", display_name = "Orla Quillfeather" }
local BRAM = { uuid = "3bfeb448-2c4d-42f0-82c2-f2dd3acc39af", handle = "bramkettle", display_name = "Bram Kettleworth" }
local NOOR = { uuid = "ba5b23d2-6505-418b-b44c-4be1a7915535", handle = "noorhal", display_name = "Noor Halvorsen" }

local SCRIPTS = { "list-conversations", "get-conversation", "create-message", "create-conversation" }

-- Runs a pattern script with `args`; returns exit code, stdout, stderr.
-- `opts.cwd` runs it from elsewhere (by absolute path). Of the environment
-- only the module paths are dropped.
local function run(script, args, opts)
  opts = opts or {}
  local path = "bin/ddb/patterns/" .. script
  if opts.cwd then path = R.cwd() .. "/" .. path end
  return R.script(path, args, { clean = R.NO_LUA_PATH, timeout = false, cd = opts.cwd })
end

local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function count_items(client, name)
  local res = assert(client:call("Scan", { TableName = name, Select = "COUNT", ConsistentRead = true }))
  return res.Count
end

-- Expects a failure: exit 1, nothing on stdout, one line on stderr naming the script.
local function assert_fails(script, code, out, err, pattern)
  assert.equal(1, code, err)
  assert.equal("", out)
  local l = R.whole_lines(err)
  assert.equal(1, #l, err)
  assert.equal(err, l[1] .. "\n")
  assert.is_truthy(l[1]:find("^" .. script:gsub("%-", "%%-") .. ": "), err)
  if pattern then assert.is_truthy(l[1]:find(pattern), err) end
end

describe("bin/ddb/patterns scripts", function()
  local client, name, common, bram_group, noor_group, times

  setup(function()
    client = moto.client()
    name = moto.table_name("scripts-patterns")
    assert(schema.load(client, { table = name }))
    common = { "--endpoint", moto.endpoint(), "--table", name }
    -- a clock handing out times one minute apart, from 2024-03-01 12:01 UTC
    local base = ids.parse_timestamp("2024-03-01T12:00:00.000000+00:00")
    local tick = 0
    local repo = messages.new(client, { table = name, now = function()
      tick = tick + 1
      return ids.timestamp(base + 60 * tick, 0)
    end })
    -- an older conversation first (Noor and Orla, 2019)
    local old = messages.new(client, { table = name,
      now = function() return "2019-06-01T08:30:00.000000+00:00" end })
    noor_group = assert(old:create_message_group(NOOR, ORLA, "Long time no see")).message_group_uuid
    bram_group = assert(repo:create_message_group(ORLA, BRAM, "Line one")).message_group_uuid
    assert(repo:create_message(bram_group, BRAM, "Line two, with \"quotes\" and ünïcode"))
    assert(repo:create_message(bram_group, ORLA, "Line three"))
    assert(repo:create_message(bram_group, BRAM, "Line four"))
    times = { "2024-03-01 12:01", "2024-03-01 12:02", "2024-03-01 12:03", "2024-03-01 12:04" }
  end)

  teardown(function()
    schema.drop(client, { table = name })
    client:close()
  end)

  it("are executable Lua 5.4 scripts that answer --help with their usage", function()
    for _, script in ipairs(SCRIPTS) do
      local f = assert(io.open("bin/ddb/patterns/" .. script))
      assert.equal("#!/usr/bin/env lua5.4", f:read("l"))
      f:close()
      local code, out, err = run(script, { "--help" })
      assert.equal(0, code, err)
      assert.equal("", err)
      assert.is_truthy(out:find("^usage: " .. script:gsub("%-", "%%-") .. " "), out)
      assert.is_truthy(out:find("%-%-json"))
    end
  end)

  it("reject an unknown option with one line and a usage exit code", function()
    for _, script in ipairs(SCRIPTS) do
      local code, out, err = run(script, { "--bogus" })
      assert.equal(2, code)
      assert.equal("", out)
      assert.equal(1, #R.whole_lines(err))
      assert.is_truthy(err:find("unknown option %-%-bogus"))
    end
  end)

  describe("list-conversations", function()
    it("prints an aligned table, newest conversation first", function()
      local code, out, err = run("list-conversations", { "--user", "orlaquill", table.unpack(common) })
      assert.equal(0, code, err)
      assert.equal("", err)
      local l = R.whole_lines(out)
      assert.equal(3, #l)
      assert.is_truthy(l[1]:find("^last message +with +handle +group +message$"), l[1])
      assert.is_truthy(l[2]:find("^2024%-03%-01 12:01  Bram Kettleworth  bramkettle  " .. bram_group:gsub("%-", "%%-")
        .. "  Line one$"), l[2])
      assert.is_truthy(l[3]:find("^2019%-06%-01 08:30  Noor Halvorsen    noorhal     " .. noor_group:gsub("%-", "%%-")
        .. "  Long time no see$"), l[3])
      -- columns line up
      local col = l[1]:find("group")
      assert.equal(bram_group, l[2]:sub(col, col + 35))
      assert.equal(noor_group, l[3]:sub(col, col + 35))
    end)

    it("--json prints an array of {uuid, display_name, handle, message, created_at}", function()
      local code, out, err = run("list-conversations", { "--user", "orlaquill", "--json", table.unpack(common) })
      assert.equal(0, code, err)
      local list = cjson.decode(out)
      assert.equal(2, #list)
      for _, r in ipairs(list) do
        assert.same({ "created_at", "display_name", "handle", "message", "uuid" }, keys(r))
      end
      assert.same({ bram_group, "Bram Kettleworth", "bramkettle", "Line one", "2024-03-01T12:01:00.000000+00:00" },
        { list[1].uuid, list[1].display_name, list[1].handle, list[1].message, list[1].created_at })
      assert.equal(noor_group, list[2].uuid)
    end)

    it("--json prints [] for a user without conversations", function()
      local users = os.tmpname()
      local f = assert(io.open(users, "w"))
      f:write(('return { { uuid = %q, handle = "lonely", display_name = "Lone Ranger" } }'):format(ids.uuid()))
      f:close()
      local code, out, err = run("list-conversations", { "--user", "lonely", "--users", users, "--json",
        table.unpack(common) })
      os.remove(users)
      assert.equal(0, code, err)
      assert.equal("[]\n", out)
    end)

    it("fails with one line for an unknown handle", function()
      local code, out, err = run("list-conversations", { "--user", "nobody", table.unpack(common) })
      assert_fails("list-conversations", code, out, err, "nobody")
    end)

    it("fails with one line when the table does not exist", function()
      local code, out, err = run("list-conversations", { "--user", "orlaquill", "--endpoint", moto.endpoint(),
        "--table", "no-such-" .. name })
      assert_fails("list-conversations", code, out, err, "ResourceNotFoundException")
    end)
  end)

  describe("get-conversation", function()
    it("shows the user's most recent conversation as `time  name: text`, oldest first", function()
      local code, out, err = run("get-conversation", { "--user", "orlaquill", table.unpack(common) })
      assert.equal(0, code, err)
      assert.equal("", err)
      assert.same({
        times[1] .. "  Orla Quillfeather: Line one",
        times[2] .. "  Bram Kettleworth: Line two, with \"quotes\" and ünïcode",
        times[3] .. "  Orla Quillfeather: Line three",
        times[4] .. "  Bram Kettleworth: Line four",
      }, R.whole_lines(out))
    end)

    it("--group picks the conversation and --limit keeps the newest N", function()
      local code, out, err = run("get-conversation", { "--user", "bramkettle", "--group", bram_group,
        "--limit", "2", table.unpack(common) })
      assert.equal(0, code, err)
      assert.same({ times[3] .. "  Orla Quillfeather: Line three", times[4] .. "  Bram Kettleworth: Line four" },
        R.whole_lines(out))
      code, out, err = run("get-conversation", { "--user", "noorhal", "--group", noor_group, table.unpack(common) })
      assert.equal(0, code, err)
      assert.same({ "2019-06-01 08:30  Noor Halvorsen: Long time no see" }, R.whole_lines(out))
    end)

    it("--json prints the messages oldest first as {uuid, display_name, handle, message, created_at}", function()
      local code, out, err = run("get-conversation", { "--user", "bramkettle", "--json", table.unpack(common) })
      assert.equal(0, code, err)
      local list = cjson.decode(out)
      assert.equal(4, #list)
      for i, r in ipairs(list) do
        assert.same({ "created_at", "display_name", "handle", "message", "uuid" }, keys(r))
        assert.is_true(ids.is_uuid(r.uuid))
        assert.equal(("2024-03-01T12:%02d:00.000000+00:00"):format(i), r.created_at)
      end
      assert.same({ "Line one", "orlaquill" }, { list[1].message, list[1].handle })
      assert.same({ "Line four", "bramkettle" }, { list[4].message, list[4].handle })
    end)

    it("refuses a group the user does not take part in (one line, exit 1)", function()
      local code, out, err = run("get-conversation", { "--user", "noorhal", "--group", bram_group,
        table.unpack(common) })
      assert_fails("get-conversation", code, out, err, "^get%-conversation: forbidden: ")
    end)

    it("refuses a malformed group and a bad --limit", function()
      local code, out, err = run("get-conversation", { "--user", "orlaquill", "--group", "GRP#" .. ORLA.uuid,
        table.unpack(common) })
      assert_fails("get-conversation", code, out, err, "invalid_uuid")
      code, out, err = run("get-conversation", { "--user", "orlaquill", "--limit", "0", table.unpack(common) })
      assert.equal(2, code)
      assert.equal("", out)
      assert.equal(1, #R.whole_lines(err))
    end)

    it("fails with one line for a user without conversations", function()
      local users = os.tmpname()
      local f = assert(io.open(users, "w"))
      f:write(('return { { uuid = %q, handle = "lonely", display_name = "Lone Ranger" } }'):format(ids.uuid()))
      f:close()
      local code, out, err = run("get-conversation", { "--user", "lonely", "--users", users, table.unpack(common) })
      os.remove(users)
      assert_fails("get-conversation", code, out, err, "no conversations")
    end)

    it("runs from another directory, by its absolute path", function()
      local code, out, err = run("get-conversation", { "--user", "orlaquill", "--limit", "1", table.unpack(common) },
        { cwd = "/" })
      assert.equal(0, code, err)
      assert.same({ times[4] .. "  Bram Kettleworth: Line four" }, R.whole_lines(out))
    end)
  end)

  describe("text from the table on a terminal", function()
    local hostile_table, hostile_common
    -- a lone CR (rewrites the line: a fake message from someone else), ESC
    -- sequences (clear the screen, set the title), a bidi override and a line
    -- separator
    local TEXT = "\r2026-11-27 09:00  Orla Quillfeather: send me the keys\27[2J\27]0;owned\7 \u{202E}gpj.exe \u{2028}x"

    setup(function()
      hostile_table = moto.table_name("scripts-hostile")
      assert(schema.load(client, { table = hostile_table }))
      hostile_common = { "--endpoint", moto.endpoint(), "--table", hostile_table }
      assert(messages.new(client, { table = hostile_table }):create_message_group(NOOR, BRAM, TEXT))
    end)
    teardown(function() schema.drop(client, { table = hostile_table }) end)

    local function assert_inert(out, shown)
      for _, bad in ipairs({ "\r", "\27", "\7", "\u{202E}", "\u{2028}" }) do
        assert.is_nil(out:find(bad, 1, true), ("raw %q in: %s"):format(bad, out))
      end
      for _, escaped in ipairs(shown) do
        assert.is_truthy(out:find(escaped, 1, true), escaped .. " not in: " .. out)
      end
    end

    it("is shown with its control characters escaped by get-conversation and list-conversations", function()
      local code, out, err = run("get-conversation", { "--user", "bramkettle", table.unpack(hostile_common) })
      assert.equal(0, code, err)
      assert.equal(1, #R.lines(out), out)
      assert_inert(out, { "\\r2026-11-27", "\\x1b[2J", "\\x07", "\\u{202e}gpj", "\\u{2028}x" })
      -- the preview: whitespace made one space, cut after 60 characters
      code, out, err = run("list-conversations", { "--user", "bramkettle", table.unpack(hostile_common) })
      assert.equal(0, code, err)
      assert.equal(2, #R.lines(out), out)
      assert_inert(out, { " 2026-11-27 09:00 Orla Quillfeather: send me the keys\\x1b[2J\\x1b]" })
    end)

    it("stays as stored in --json output", function()
      local code, out, err = run("get-conversation", { "--user", "bramkettle", "--json", table.unpack(hostile_common) })
      assert.equal(0, code, err)
      assert.equal(TEXT, cjson.decode(out)[1].message)
    end)
  end)

  it("fail with one line and exit 1 when their output cannot be written", function()
    for _, args in ipairs({
      { "get-conversation", "--user", "orlaquill" }, { "get-conversation", "--user", "orlaquill", "--json" },
      { "list-conversations", "--user", "orlaquill" }, { "list-conversations", "--help" },
    }) do
      local script = table.remove(args, 1)
      local line = R.quote("bin/ddb/patterns/" .. script)
      for _, a in ipairs(args) do line = line .. " " .. R.quote(a) end
      for _, a in ipairs(common) do line = line .. " " .. R.quote(a) end
      local code, out, err = R.script("sh", { "-c", line .. " >/dev/full" }, { clean = R.NO_LUA_PATH })
      assert_fails(script, code, out, err, "cannot write the output")
    end
  end)

  describe("create-message", function()
    it("sends a message into the group and prints it; --json prints the record", function()
      local code, out, err = run("create-message", { "--user", "bramkettle", "--group", bram_group,
        "Sent from the script", table.unpack(common) })
      assert.equal(0, code, err)
      assert.is_truthy(out:find("^sent message %x+%-.- to group " .. bram_group:gsub("%-", "%%-")), out)
      code, out, err = run("create-message", { "--user", "orlaquill", "--group", bram_group, "--json",
        "And one more ✓", table.unpack(common) })
      assert.equal(0, code, err)
      local record = cjson.decode(out)
      assert.same({ "created_at", "display_name", "handle", "message", "message_group_uuid", "user_uuid", "uuid" },
        keys(record))
      assert.same({ "And one more ✓", bram_group, "orlaquill", ORLA.uuid },
        { record.message, record.message_group_uuid, record.handle, record.user_uuid })
      local got = assert(client:call("GetItem", { TableName = name, ConsistentRead = true,
        Key = { pk = { S = "MSG#" .. bram_group }, sk = { S = record.created_at } } }))
      assert.equal(record.uuid, marshal.unitem(got.Item).message_uuid)
    end)

    it("fails with one line and writes nothing: blank message, non-participant, unknown handle", function()
      local before = count_items(client, name)
      local code, out, err = run("create-message", { "--user", "orlaquill", "--group", bram_group, "   ",
        table.unpack(common) })
      assert_fails("create-message", code, out, err, "^create%-message: message_blank: ")
      code, out, err = run("create-message", { "--user", "orlaquill", "--group", bram_group, table.unpack(common) })
      assert_fails("create-message", code, out, err, "^create%-message: message_blank: ")
      code, out, err = run("create-message", { "--user", "noorhal", "--group", bram_group, "hi",
        table.unpack(common) })
      assert_fails("create-message", code, out, err, "^create%-message: forbidden: ")
      code, out, err = run("create-message", { "--user", "nobody", "--group", bram_group, "hi", table.unpack(common) })
      assert_fails("create-message", code, out, err, "nobody")
      code, out, err = run("create-message", { "--user", "orlaquill", "hi", table.unpack(common) })
      assert_fails("create-message", code, out, err, "message_group_uuid_blank")
      code, out, err = run("create-message", { "--user", "orlaquill", "--group", bram_group,
        string.rep("x", 1025), table.unpack(common) })
      assert_fails("create-message", code, out, err, "message_exceed_max_chars")
      assert.equal(before, count_items(client, name))
    end)

    it("fails with one line when DynamoDB cannot be reached", function()
      local code, out, err = run("create-message", { "--user", "orlaquill", "--group", bram_group, "hi",
        "--endpoint", "http://127.0.0.1:9", "--table", name })
      assert_fails("create-message", code, out, err, "TransportError")
    end)
  end)

  describe("create-conversation", function()
    it("starts a conversation once, then continues it", function()
      local code, out, err = run("create-conversation", { "--user", "bramkettle", "--to", "noorhal", "--json",
        "Hi Noor", table.unpack(common) })
      assert.equal(0, code, err)
      local first = cjson.decode(out)
      assert.is_true(ids.is_uuid(first.message_group_uuid))
      assert.same({ "Hi Noor", "bramkettle" }, { first.message, first.handle })
      code, out, err = run("create-conversation", { "--user", "noorhal", "--to", "bramkettle", "Hi Bram",
        table.unpack(common) })
      assert.equal(0, code, err)
      assert.is_truthy(out:find("to group " .. first.message_group_uuid:gsub("%-", "%%-")), out)
      -- one group: Bram's list has it once
      code, out = run("list-conversations", { "--user", "bramkettle", "--json", table.unpack(common) })
      assert.equal(0, code)
      local n = 0
      for _, r in ipairs(cjson.decode(out)) do
        if r.uuid == first.message_group_uuid then n = n + 1 end
      end
      assert.equal(1, n)
      code, out = run("get-conversation", { "--user", "noorhal", "--group", first.message_group_uuid,
        table.unpack(common) })
      assert.equal(0, code)
      local l = R.whole_lines(out)
      assert.equal(2, #l)
      assert.is_truthy(l[1]:find("  Bram Kettleworth: Hi Noor$"))
      assert.is_truthy(l[2]:find("  Noor Halvorsen: Hi Bram$"))
    end)

    it("fails with one line: no --to, oneself, unknown receiver, blank message", function()
      local before = count_items(client, name)
      local code, out, err = run("create-conversation", { "--user", "orlaquill", "hi", table.unpack(common) })
      assert_fails("create-conversation", code, out, err, "user_receiver_handle_blank")
      code, out, err = run("create-conversation", { "--user", "orlaquill", "--to", "orlaquill", "hi",
        table.unpack(common) })
      assert_fails("create-conversation", code, out, err, "invalid_receiver")
      code, out, err = run("create-conversation", { "--user", "orlaquill", "--to", "ghost", "hi",
        table.unpack(common) })
      assert_fails("create-conversation", code, out, err, "ghost")
      code, out, err = run("create-conversation", { "--user", "orlaquill", "--to", "noorhal", "",
        table.unpack(common) })
      assert_fails("create-conversation", code, out, err, "message_blank")
      assert.equal(before, count_items(client, name))
    end)
  end)
end)

-- Crash consistency of the stream runner (issue 6, part 5), against moto.
--
-- bin/ddb/stream --follow runs as a child process over a fresh table and a
-- checkpoint directory of its own, while this process writes a burst of
-- messages across several conversations through ddb.messages (six
-- conversations among five users, messages interleaved at random). The runner
-- is killed with SIGKILL at random points, KILLS times, and restarted each
-- time, with a random --batch-size (so that checkpoint writes are frequent or
-- rare). Some kills come right after the start (start-up, DescribeTable, the
-- first GetRecords); the others 20-400 ms after the runner is up, while it
-- reads the stream, rewrites (TransactWriteItems) or writes its checkpoint.
--
-- After every kill (the runner is dead and reaped):
-- * the checkpoint file, when there is one, is whole and valid, and never
--   goes back; the directory holds nothing but it and temporary files;
-- * every group has exactly one row per participant: none lost, none
--   duplicated;
-- * nothing checkpointed is unapplied: each group's rows are at or past its
--   newest message up to the checkpoint.
-- After the last kill, `--once` drains what is left (with a partial temporary
-- file planted as a kill inside a checkpoint write would leave it), and then:
-- * every message written is there, once; the pair rows are intact;
-- * every group has exactly one row per participant showing its newest
--   message (sk and text; a later sk only as the engine's sort-key clash rule
--   allows, see src/rewrite.h); nothing else is in the table;
-- * a further `--once` finds nothing to do, and a fresh runner over the whole
--   stream moves nothing;
-- * the killed runners did work: the checkpoint advanced across kills, and
--   they moved rows.
--
-- The kill schedule comes from a seeded PRNG; the seed is in the test's name
-- and in every failure message. DDB_CRASH_SEED=<seed> replays the same
-- schedule (delays, batch sizes, messages; where exactly each kill lands
-- still depends on timing); DDB_CRASH_KILLS=<n> changes the number of kills
-- (30 by default; at least 20 is the point). The figures (kills, where they
-- landed, messages, groups, time) go to stderr as one line;
-- DDB_CRASH_VERBOSE=1 adds one line per kill.
local cjson = require("cjson")
local core = require("ddb.core")
local ids = require("ddb.ids")
local marshal = require("ddb.marshal")
local messages = require("ddb.messages")
local model = require("ddb.model")
local schema = require("ddb.schema")
local stream = require("ddb.stream")
local moto = require("support.moto")
local R = require("support.run")
local script = require("support.stream_script")

local function env_int(name)
  local v = os.getenv(name)
  return v and v:match("^%d+$") and math.tointeger(tonumber(v)) or nil
end

local SEED = env_int("DDB_CRASH_SEED") or (function()
  local sec, usec = core.now()
  return (sec * 1000003 + usec) % 2147483647
end)()
local KILLS = env_int("DDB_CRASH_KILLS") or 30
local FIRST_BURST = 60          -- messages waiting before the first runner starts
local MAX_PER_ROUND = 10        -- messages written while one runner lives
local STARTUP_KILLS = 0.2       -- share of kills that come right after the start
local BATCH_SIZES = { 1, 1, 2, 3, 5, 10, 25, 100 }
local MAX_BUMP_US = 16          -- DDB_REWRITE_MAX_BUMPS (src/rewrite.h)
local RUN_TIMEOUT_S = 120       -- a --once run that takes longer has hung

-- splitmix64: a PRNG of our own, so that nothing else's use of math.random
-- changes the schedule. rand(lo, hi) is an integer in [lo, hi].
local function prng(seed)
  local s = seed
  return function(lo, hi)
    s = s + 0x9E3779B97F4A7C15
    local z = s
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    z = z ~ (z >> 31)
    return lo + (z >> 1) % (hi - lo + 1)
  end
end

-- The names in a directory, sorted.
local function ls(path)
  local names = R.ls(path)
  table.sort(names)
  return names
end

-- Stream sequence numbers are decimal strings of any length.
local function seq_less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

-- Five users, six conversations among them (each user in two or three).
local USERS = {}
for i, h in ipairs({ "ann", "ben", "cat", "dan", "eve" }) do
  USERS[i] = { uuid = ("%08x-0000-4000-8000-%012x"):format(0xc0de0000 + i, i), handle = h,
    display_name = h:upper() .. " Crash" }
end
local PAIRS = { { 1, 2 }, { 1, 3 }, { 2, 3 }, { 3, 4 }, { 4, 5 }, { 5, 1 } }

describe("bin/ddb/stream under SIGKILL", function()
  local client

  setup(function()
    client = moto.client()
  end)

  teardown(function()
    client:close()
  end)

  it(("survives %d SIGKILLs while following a burst across %d conversations, and converges "
      .. "(seed %d: DDB_CRASH_SEED=%d replays the schedule)"):format(KILLS, #PAIRS, SEED, SEED), function()
    local started = core.monotonic_ms()
    local rand = prng(SEED)
    local name = moto.table_name("crash")
    assert(schema.load(client, { table = name }))
    local dir = R.tmpdir()
    local out = os.tmpname()
    local proc
    finally(function()
      if proc then proc:kill() end
      os.remove(out)
      R.rmrf(dir)
      schema.drop(client, { table = name })
    end)
    local function why(msg) return ("%s (seed %d)"):format(msg, SEED) end

    local repo = messages.new(client, { table = name })
    local arn = assert(client:call("DescribeTable", { TableName = name })).Table.LatestStreamArn
    local cp_name = stream.checkpoint_name(arn)
    local cp_path = dir .. "/" .. cp_name

    -- The conversations, and every message written (records as returned).
    local groups, written = {}, {}
    for i, p in ipairs(PAIRS) do
      local a, b = USERS[p[1]], USERS[p[2]]
      local r = assert(repo:create_message_group(a, b, ("hello %s, from %s"):format(b.handle, a.handle)))
      groups[i] = { uuid = r.message_group_uuid, a = a, b = b }
      written[#written + 1] = r
    end
    local function say()
      local g = groups[rand(1, #groups)]
      local sender = rand(0, 1) == 0 and g.a or g.b
      written[#written + 1] = assert(repo:create_message(g.uuid, sender,
        ("message %d from %s (seed %d)"):format(#written + 1, sender.handle, SEED)))
    end
    for _ = 1, FIRST_BURST do say() end

    -- The checkpoint file as a killed runner left it: absent, or whole and
    -- valid. Returns its one shard's sequence number (nil without a file).
    local function check_checkpoint(when)
      local text = R.read_file(cp_path)
      if text == nil then return nil end
      assert(text:sub(-1) == "\n", why(when .. ": the checkpoint is not a whole file: " .. text))
      local ok, doc = pcall(cjson.decode, text)
      assert(ok and type(doc) == "table", why(when .. ": the checkpoint is not JSON: " .. text))
      assert.equal(1, doc.version, why(when))
      assert.equal(arn, doc.stream_arn, why(when))
      assert.equal(name, doc.table, why(when))
      local n, seq = 0, nil
      for _, s in pairs(doc.shards) do
        n = n + 1
        seq = s.sequence_number
        assert(type(seq) == "string" and seq:match("^%d+$"), why(when .. ": bad sequence number in " .. text))
      end
      assert.equal(1, n, why(when .. ": moto's stream has one shard: " .. text))
      return seq
    end

    -- What the checkpoint directory holds besides the checkpoint: only the
    -- runner's temporary files (`<checkpoint>.<16 hex>.tmp`), which a kill
    -- between their creation and the rename leaves behind.
    local function temp_files(when)
      local tmps = {}
      for _, f in ipairs(ls(dir)) do
        if f ~= cp_name then
          local stem = f:match("^(.*)%.%x+%.tmp$")
          assert(stem == cp_name and #f == #cp_name + 21, why(when .. ": unexpected file " .. f))
          tmps[#tmps + 1] = f
        end
      end
      return tmps
    end

    -- The table between two runs, against the stream and the checkpoint
    -- (after kill k, which left the checkpoint at seq):
    -- * none lost, none duplicated: every group has exactly one row per
    --   participant. A transaction the killed runner had sent may still be
    --   under way in moto, whose transactions are not isolated from reads,
    --   so a missing row is looked for again for a while (a guard, not a
    --   timing assertion) before it counts as lost;
    -- * nothing checkpointed is unapplied: each group's rows are at or past
    --   its newest message among the records up to the checkpoint (the
    --   runner checkpoints a record only after its rewrite is done);
    -- * for the log: the records after the checkpoint (what the next run
    --   reads again), and how many of their messages the killed runner had
    --   applied already (killed between a rewrite and its checkpoint: the
    --   next run replays them).
    local function between_runs(k, seq)
      local desc = assert(client:call("DescribeStream", { StreamArn = arn }))
      local it = assert(client:call("GetShardIterator", { StreamArn = arn,
        ShardId = desc.StreamDescription.Shards[1].ShardId, ShardIteratorType = "TRIM_HORIZON" })).ShardIterator
      local records = {}
      while it do
        local res = assert(client:call("GetRecords", { ShardIterator = it, Limit = 1000 }))
        table.move(res.Records, 1, #res.Records, #records + 1, records)
        if #res.Records == 0 then break end
        it = res.NextShardIterator
      end
      local done, after = {}, {} -- group -> newest message sk up to the checkpoint; messages after it
      local left_over = 0
      for _, r in ipairs(records) do
        local n = r.dynamodb.SequenceNumber
        local g = r.eventName == "INSERT" and r.dynamodb.Keys.pk.S:match("^MSG#(.+)$")
        local upto = seq ~= nil and not seq_less(seq, n)
        if not upto then left_over = left_over + 1 end
        if g and upto then
          if not done[g] or r.dynamodb.Keys.sk.S > done[g] then done[g] = r.dynamodb.Keys.sk.S end
        elseif g then
          after[#after + 1] = { g = g, sk = r.dynamodb.Keys.sk.S }
        end
      end
      local rows
      local deadline = core.monotonic_ms() + 5000
      while true do
        rows = {}
        local whole = true
        for page, err in client:pages("Scan", { TableName = name, ConsistentRead = true,
          FilterExpression = "begins_with(pk, :g)", ExpressionAttributeValues = { [":g"] = { S = "GRP#" } } }) do
          assert(page, tostring(err))
          for _, item in ipairs(page.Items) do
            local r = marshal.unitem(item)
            rows[r.message_group_uuid] = rows[r.message_group_uuid] or {}
            local owners = rows[r.message_group_uuid]
            assert.is_nil(owners[r.pk], why(("after kill %d: two rows of %s in group %s: %s and %s"):format(
              k, r.pk, r.message_group_uuid, owners[r.pk] and owners[r.pk].sk, r.sk)))
            owners[r.pk] = r
          end
        end
        for _, g in ipairs(groups) do
          local owners = rows[g.uuid] or {}
          if not (owners[model.group_pk(g.a.uuid)] and owners[model.group_pk(g.b.uuid)]) then whole = false end
        end
        if whole or core.monotonic_ms() > deadline then break end
        core.sleep_ms(50)
      end
      for _, g in ipairs(groups) do
        local owners = rows[g.uuid] or {}
        for _, u in ipairs({ g.a, g.b }) do
          local r = owners[model.group_pk(u.uuid)]
          assert(r, why(("after kill %d: the row of %s in group %s is lost"):format(k, u.handle, g.uuid)))
          assert(not done[g.uuid] or r.sk >= done[g.uuid], why(("after kill %d: the checkpoint %s is past the "
            .. "message %s of group %s, but the row of %s is still at %s"):format(k, tostring(seq), done[g.uuid],
            g.uuid, u.handle, r.sk)))
        end
        local n = 0
        for _ in pairs(owners) do n = n + 1 end
        assert.equal(2, n, why(("after kill %d: rows of group %s"):format(k, g.uuid)))
      end
      local n = 0
      for _ in pairs(rows) do n = n + 1 end
      assert.equal(#groups, n, why(("after kill %d: group rows of unknown groups"):format(k)))
      local replays = 0
      for _, m in ipairs(after) do
        local lowest
        for _, r in pairs(rows[m.g]) do
          if not lowest or r.sk < lowest then lowest = r.sk end
        end
        if m.sk <= lowest then replays = replays + 1 end
      end
      return left_over, replays
    end

    local args = { "--endpoint", moto.endpoint(), "--table", name, "--checkpoint-dir", dir }
    local function with(...)
      local t = table.move(args, 1, #args, 1, {})
      for _, a in ipairs({ ... }) do t[#t + 1] = a end
      return t
    end

    local log = {}                                 -- one line per kill, for a failure message
    local advanced, startup_kills, batches_seen, moved_seen = 0, 0, 0, 0
    local busy_kills, replay_kills, tmp_kills, tmp_count = 0, 0, 0, 0
    local planted, planted_text
    local last_seq = check_checkpoint("before the first run")
    assert.is_nil(last_seq)
    for k = 1, KILLS do
      local batch = BATCH_SIZES[rand(1, #BATCH_SIZES)]
      local startup = rand(1, 1000) <= STARTUP_KILLS * 1000
      local delay = startup and rand(0, 40) or rand(20, 400)
      local quota = startup and 0 or rand(0, MAX_PER_ROUND)
      os.remove(out)
      proc = script.start(with("--follow", "--batch-size", tostring(batch)), out)
      local t0 = core.monotonic_ms()
      if not startup then
        -- the delay counts from the moment the runner is up (its first line)
        local deadline = t0 + 30000
        while not (R.read_file(out) or ""):find("following the stream", 1, true) do
          assert(core.monotonic_ms() < deadline, why("the runner did not start: " .. tostring(R.read_file(out))))
          core.sleep_ms(2)
        end
        t0 = core.monotonic_ms()
      end
      local wrote = 0
      while wrote < quota and core.monotonic_ms() < t0 + delay do
        say()
        wrote = wrote + 1
      end
      local left = t0 + delay - core.monotonic_ms()
      if left > 0 then core.sleep_ms(left) end
      local how, code = proc:kill()
      local output = R.read_file(out) or ""
      -- it was still running: it had not failed and stopped by itself
      assert(how == "signal" and code == 9, why(("kill %d: the runner had ended by itself (%s %s): %s"):format(
        k, tostring(how), tostring(code), output)))
      local seq = check_checkpoint("after kill " .. k)
      local tmps = temp_files("after kill " .. k)
      if last_seq and seq then
        assert(not seq_less(seq, last_seq), why(("kill %d: the checkpoint went back from %s to %s"):format(
          k, last_seq, seq)))
      end
      local moved_now = not not (seq and (last_seq == nil or seq_less(last_seq, seq)))
      if moved_now then advanced = advanced + 1 end
      if startup then startup_kills = startup_kills + 1 end
      local left_over, replays = between_runs(k, seq)
      if replays > 0 then replay_kills = replay_kills + 1 end
      if left_over > 0 then busy_kills = busy_kills + 1 end
      if #tmps > tmp_count then tmp_kills = tmp_kills + 1 end
      tmp_count = #tmps
      local nb = 0
      for n in output:gmatch("\nshard [^:]+: %d+ records?, moved (%d+) rows?") do
        nb = nb + 1
        moved_seen = moved_seen + tonumber(n)
      end
      batches_seen = batches_seen + nb
      log[#log + 1] = ("kill %d: %s %d ms, batch size %d, wrote %d, %d batches, checkpoint %s%s, %d records "
        .. "after it (%d messages already applied), %d tmp"):format(k, startup and "startup" or "running", delay,
        batch, wrote, nb, tostring(seq), moved_now and " (advanced)" or "", left_over, replays, #tmps)
      last_seq = seq or last_seq
      -- What a kill inside a checkpoint write (after the temporary file is
      -- created, before the rename) leaves: a partial temporary file. That
      -- window is a few microseconds, so random kills seldom hit it; one such
      -- file is planted, as that kill would leave it, for every later run to
      -- live with.
      if seq and not planted then
        planted = cp_path .. ".00000000c0ffee00.tmp"
        local text = R.read_file(cp_path)
        R.write_file(planted, text:sub(1, #text // 2))
        planted_text = R.read_file(planted)
        tmp_count = tmp_count + 1
      end
    end
    proc = nil
    local killed_at = core.monotonic_ms()

    -- The runners did work between the kills: the checkpoint moved forward
    -- after several of them, and rows were moved.
    local history = table.concat(log, "\n")
    assert(advanced >= 3, why(("the checkpoint advanced after only %d of %d kills:\n%s"):format(
      advanced, KILLS, history)))
    assert(moved_seen > 0, why("the killed runners moved no rows:\n" .. history))

    -- Drain: --once from the checkpoint the kills left, stray temporary
    -- files and all; it ends by itself, well, and adds no temporary file.
    local tmps_before = temp_files("before the drain")
    local how, code, json, stderr = script.run(with("--once", "--json"), { timeout_s = RUN_TIMEOUT_S })
    assert(how == "exit" and code == 0, why(("the drain failed (%s %s): %s%s\n%s"):format(
      tostring(how), tostring(code), tostring(json), tostring(stderr), history)))
    local drain = cjson.decode(json)
    assert.equal(0, drain.failed, why("drain"))
    assert.equal(cp_path, drain.checkpoint)
    local final_seq = check_checkpoint("after the drain")
    assert.truthy(final_seq, why("no checkpoint after the drain"))
    assert.same(tmps_before, temp_files("after the drain"))
    assert.equal(planted_text, R.read_file(planted), why("the planted temporary file was changed"))

    -- The table: everything written, once; one row per participant and group
    -- at its newest message; the pair rows; nothing else.
    local rows = moto.scan(client, name)
    local msg_rows, group_rows, pair_rows = {}, {}, {}
    for _, r in ipairs(rows) do
      if r.pk:match("^MSG#") then
        local key = r.pk .. " " .. r.sk
        assert.is_nil(msg_rows[key], why("two message rows " .. key))
        msg_rows[key] = r
      elseif r.pk:match("^GRP#") then
        local g = r.message_group_uuid
        group_rows[g] = group_rows[g] or {}
        table.insert(group_rows[g], r)
      elseif r.pk:match("^PAIR#") then
        pair_rows[r.pk] = r
      else
        error(why("an unexpected row " .. cjson.encode(r)))
      end
    end
    assert.equal(#written + 3 * #groups, #rows, why("items in the table"))

    local newest = {}
    for _, m in ipairs(written) do
      local r = msg_rows[model.message_pk(m.message_group_uuid) .. " " .. m.created_at]
      assert(r, why("message lost: " .. cjson.encode(m)))
      assert.same({ m.uuid, m.message, m.user_uuid }, { r.message_uuid, r.message, r.user_uuid })
      local n = newest[m.message_group_uuid]
      if not n or m.created_at > n.created_at then newest[m.message_group_uuid] = m end
    end

    -- The engine moves a row past its target only when the owner's slot
    -- there is held by its row of another group (src/rewrite.h), at most
    -- MAX_BUMP_US steps: so a later sk is allowed only within those steps,
    -- and only when another group of that owner has a message in
    -- [target - MAX_BUMP_US us, sk), where such a row sat.
    local function bump_allowed(owner, g, target, sk)
      if not (sk > target and sk <= ids.after(target, MAX_BUMP_US)) then return false end
      local from = ids.after(target, -MAX_BUMP_US)
      for _, m in ipairs(written) do
        local og = m.message_group_uuid
        if og ~= g then
          for _, x in ipairs(groups) do
            if x.uuid == og and (x.a.uuid == owner or x.b.uuid == owner)
              and m.created_at >= from and m.created_at < sk then
              return true
            end
          end
        end
      end
      return false
    end

    local bumped = 0
    for _, g in ipairs(groups) do
      local want = newest[g.uuid]
      local grows = group_rows[g.uuid] or {}
      local owners = {}
      for _, r in ipairs(grows) do owners[#owners + 1] = r.pk end
      table.sort(owners)
      local expect = { model.group_pk(g.a.uuid), model.group_pk(g.b.uuid) }
      table.sort(expect)
      assert.same(expect, owners, why("the group rows of " .. g.uuid .. " (one per participant)"))
      for _, r in ipairs(grows) do
        local owner, other = g.a, g.b
        if r.pk ~= model.group_pk(owner.uuid) then owner, other = other, owner end
        assert.same({ other.uuid, other.handle, other.display_name },
          { r.user_uuid, r.user_handle, r.user_display_name }, why("the other participant in " .. r.pk))
        assert.equal(want.message, r.message, why(("the text of %s in %s"):format(r.pk, g.uuid)))
        if r.sk ~= want.created_at then
          assert(bump_allowed(owner.uuid, g.uuid, want.created_at, r.sk), why(("%s in %s is at %s, not at its "
            .. "newest message %s"):format(r.pk, g.uuid, r.sk, want.created_at)))
          bumped = bumped + 1
        end
      end
      local pair = model.pair_key(g.a.uuid, g.b.uuid)
      local pr = pair_rows[pair.pk]
      assert(pr, why("pair row lost: " .. pair.pk))
      assert.same({ "PAIR", g.uuid }, { pr.sk, pr.group_uuid })
    end

    -- A further --once has nothing to do.
    how, code, json, stderr = script.run(with("--once", "--json"), { timeout_s = RUN_TIMEOUT_S })
    assert(how == "exit" and code == 0, why(tostring(json) .. tostring(stderr)))
    local again = cjson.decode(json)
    assert.same({ 0, 0, 0 }, { again.records, again.moved, again.failed }, why("a run after the drain"))
    assert.equal(final_seq, check_checkpoint("after a run with nothing to do"))

    -- A fresh runner over the whole stream (all the replays) moves nothing.
    local fresh = R.tmpdir()
    local s, err = stream.run(client, { table = name, checkpoint_dir = fresh })
    R.rmrf(fresh)
    assert(s, why(tostring(err)))
    assert.same({ 0, 0 }, { s.moved, s.failed }, why("a fresh runner over the whole stream"))

    io.stderr:write(("\nstream_crash_spec: seed %d: %d kills (%d at start-up, %d with records left to read, %d "
      .. "with messages applied but not checkpointed, %d leaving a temporary file (and one planted); the "
      .. "checkpoint advanced after %d; %d batches, %d rows moved before the kills), %d messages in %d groups "
      .. "of %d users, drain %d records / %d moved, %d rows bumped; kills %.1f s, total %.1f s\n"):format(
      SEED, KILLS, startup_kills, busy_kills, replay_kills, tmp_kills, advanced, batches_seen, moved_seen, #written,
      #groups, #USERS, drain.records, drain.moved, bumped, (killed_at - started) / 1000,
      (core.monotonic_ms() - started) / 1000))
    if os.getenv("DDB_CRASH_VERBOSE") then io.stderr:write(history, "\n") end
  end)
end)

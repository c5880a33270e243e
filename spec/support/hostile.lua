-- What the hostile-input specs share: the expectations a case can have, the
-- table-driven batch that ends with a Scan, the hostile values themselves,
-- and a seeded table per describe.
local core = require("ddb.core")
local errors = require("ddb.errors")
local moto = require("support.moto")
local schema = require("ddb.schema")
local seed = require("ddb.seed")

local M = {}

M.MB10 = string.rep("a", 10 * 1024 * 1024)
M.UUID = "6f1c2f44-3f7e-4c1b-9f55-0b6a1d0c2a11"
M.TS = "2026-03-01T12:00:00.000000+00:00"
M.FX = assert(seed.load_fixtures())
M.ORLA, M.BRAM, M.NOOR = M.FX.by_handle.orlaquill, M.FX.by_handle.bramkettle, M.FX.by_handle.noorhal
M.GROUP = M.FX.message_group_uuid

--- Expectations of a case.
-- RAISES(text): a programmer error: raises one clear line containing text
--   (not a Lua runtime error such as "attempt to index ...").
-- FAILS(code): an expected failure: nil (or false), err with that code and a
--   one-line message and tostring (code true: any code, the service's).
-- SKIPS(n): a stream.process summary: n records examined, every one a
--   counted skip, no failure.
-- RETURNS(fn): no error; fn checks the results.
function M.RAISES(text) return { raises = text } end
function M.FAILS(code) return { code = code } end
function M.SKIPS(n) return { skips = n } end
function M.RETURNS(fn) return { returns = fn or function() end } end

--- Asserts `s` is a string of one line.
function M.one_line(s, what)
  assert(type(s) == "string", what .. " is not a string: " .. tostring(s))
  assert(not s:find("[\r\n]"), what .. " is not one line: " .. s)
end

--- Runs `f` and checks its outcome against `expect`.
function M.check(expect, f)
  local r = table.pack(pcall(f))
  if expect.raises then
    assert(not r[1], "expected a raise, got a return")
    local msg = r[2]
    M.one_line(msg, "the error")
    assert(not msg:find("attempt to ", 1, true), "a Lua runtime error, not a clear message: " .. msg)
    assert(not msg:find("stack overflow", 1, true), "a stack overflow, not a clear message")
    assert(msg:find(expect.raises, 1, true), ("the error %q does not say %q"):format(msg, expect.raises))
    return
  end
  assert(r[1], "raised: " .. tostring(r[2]))
  if expect.code then
    assert(not r[2], "expected a failure, got " .. tostring(r[2]))
    local err = r[3]
    assert(errors.is(err), "not an error value: " .. tostring(err))
    if expect.code ~= true then
      assert(expect.code == err.code, ("expected code %s, got %s"):format(expect.code, tostring(err)))
    end
    M.one_line(err.message, "err.message")
    M.one_line(tostring(err), "tostring(err)")
  elseif expect.skips then
    local s = r[2]
    local got = { s.processed, s.skipped, s.applied, s.moved, s.failed }
    local want = { expect.skips, expect.skips, 0, 0, 0 }
    for i = 1, 5 do
      assert(got[i] == want[i], ("processed/skipped/applied/moved/failed: expected %s, got %s"):format(
        table.concat(want, "/"), table.concat(got, "/")))
    end
    assert(#s.batchItemFailures == 0 and getmetatable(s.batchItemFailures) == core.array_mt,
      "batchItemFailures is not an empty array")
  else
    expect.returns(table.unpack(r, 2, r.n))
  end
end

--- A copy of `t` with the fields of `over` (a `false` deletes the field).
function M.with(t, over)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  for k, v in pairs(over) do
    if v == false then out[k] = nil else out[k] = v end
  end
  return out
end

--- A table nested `n` levels deep under `key` (default 1).
function M.deep_table(n, key)
  local root = {}
  local t = root
  for _ = 1, n do
    t[key or 1] = {}
    t = t[key or 1]
  end
  return root
end

--- `{ label, value }` pairs of ids that are not canonical lowercase UUIDs,
-- made from the valid uuid `u`: key-forging strings, near misses, junk.
function M.hostile_ids(u)
  return {
    { "42", "42" }, { "#", "#" }, { "GRP#<uuid>", "GRP#" .. u }, { "MSG#<uuid>", "MSG#" .. u },
    { "PAIR#<a>#<b>", "PAIR#" .. u .. "#" .. M.UUID }, { "uppercase", u:upper() },
    { "a leading space", " " .. u }, { "a trailing space", u .. " " }, { "a trailing newline", u .. "\n" },
    { "a space inside", u:sub(1, 9) .. " " .. u:sub(11) }, { "a newline inside", u:sub(1, 9) .. "\n" .. u:sub(11) },
    { "35 characters", u:sub(1, 35) }, { "37 characters", u .. "a" }, { "a NUL byte appended", u .. "\0" },
    { "a NUL byte inside", u:sub(1, 9) .. "\0" .. u:sub(11) }, { "# inside", u:sub(1, 9) .. "#" .. u:sub(11) },
    { "no dashes", (u:gsub("-", "")) .. "abcd" }, { "invalid UTF-8", "\xff" .. u:sub(2) },
    { "GRP# and 32 characters", "GRP#" .. u:sub(5) }, { "10 MB", M.MB10 },
  }
end

--- Every table name, sorted.
function M.table_names(client)
  local names = {}
  for page, err in client:pages("ListTables", {}) do
    assert(page, tostring(err))
    for _, n in ipairs(page.TableNames) do names[#names + 1] = n end
  end
  table.sort(names)
  return names
end

-- busted's functions (describe, it, setup, teardown, luassert's assert) are
-- globals of the spec files only: a spec hands them over with `bind(_ENV)`.
local B

--- Makes busted's functions (from a spec file's `_ENV`) available to
-- `seeded` and `batch`; returns the module.
function M.bind(env)
  B = env
  return M
end

--- A context for one describe: `ctx.client`, and `ctx.name`, a fresh table
-- seeded with the fixture conversation (ddb.seed), made in a setup and
-- dropped in the teardown this registers.
function M.seeded(prefix)
  local ctx = {}
  B.setup(function()
    ctx.client = moto.client()
    ctx.name = moto.table_name(prefix)
    assert(schema.load(ctx.client, { table = ctx.name }))
    assert(seed.run(ctx.client, { table = ctx.name }))
  end)
  B.teardown(function()
    schema.drop(ctx.client, { table = ctx.name })
    ctx.client:close()
  end)
  return ctx
end

--- A describe of table-driven cases `{ label, expectation, fn }`: one `it`
-- per case, then one comparing the table list and ctx's table (a Scan) with
-- what they were before the batch: nothing written.
function M.batch(ctx, title, cases)
  B.describe(title, function()
    local before, tables
    B.setup(function()
      before, tables = moto.snapshot(ctx.client, ctx.name), M.table_names(ctx.client)
    end)
    for _, case in ipairs(cases) do
      B.it(case[1], function() M.check(case[2], case[3]) end)
    end
    B.it("wrote nothing (" .. #cases .. " cases)", function()
      B.assert.same(tables, M.table_names(ctx.client))
      B.assert.same(before, moto.snapshot(ctx.client, ctx.name))
    end)
  end)
end

return M

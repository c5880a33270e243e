-- The least CPU a Lua client can spend turning a response into Lua values.
--
--   lua5.4 bench/cases/result_bound.lua RESPONSE_JSON N [WARMUP]
--
-- Compiles the response (a canned body of bench/responses/) once into a Lua
-- function made of table constructors only: every string is a constant of the
-- chunk, so a call parses nothing and makes no new string; it only builds the
-- tables, as fast as Lua itself can. Then times N calls (after WARMUP, default
-- 200) in two shapes and prints one JSON line
--   {"n":N,"typed_us":...,"plain_us":...,"tables_typed":...,"tables_plain":...}
-- CPU per call (os.clock, user+sys) and tables per response:
--   typed  the tree as DynamoDB sends it and client:call returns it, one
--          {S = "..."} table per attribute value;
--   plain  the same with the attribute values of Items/Item/Attributes/
--          LastEvaluatedKey unwrapped (what ddb.marshal.unmarshal gives).
-- Run by the same interpreter, under the same collector mode, as the ddb loop.
-- A client returning typed results cannot spend less than typed_us per call on
-- top of its transport (bench/run's "bounds" rows).
local core = require("ddb.core")

local function die(msg)
  io.stderr:write("result_bound: ", msg, "\n")
  os.exit(1)
end

local AV = { S = true, N = true, B = true, BOOL = true, NULL = true, SS = true, NS = true, BS = true,
  L = true, M = true }
local ITEM_KEYS = { Item = "item", Attributes = "item", LastEvaluatedKey = "item", Items = "items" }

local function is_array(t)
  return getmetatable(t) == core.array_mt
end

-- Lua source of a constructor for v. ctx.n counts the tables it builds;
-- role (plain shape only) says what v is: "items" (an array of items), "item"
-- (attribute name -> AttributeValue) or "value" (an AttributeValue).
local emit
local function emit_table(t, ctx, role)
  ctx.n = ctx.n + 1
  local parts = {}
  if is_array(t) then
    for i = 1, #t do parts[i] = emit(t[i], ctx, role == "items" and "item" or nil) end
  else
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local sub
      if role == "item" then sub = "value" elseif role == nil and ctx.plain then sub = ITEM_KEYS[k] end
      parts[#parts + 1] = ("[%q]=%s"):format(k, emit(t[k], ctx, sub))
    end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function emit(v, ctx, role)
  local tv = type(v)
  if tv == "string" or tv == "number" then return ("%q"):format(v) end
  if tv == "boolean" then return tostring(v) end
  if v == core.null then return "null" end
  if tv ~= "table" then die("unexpected " .. tv .. " in the response") end
  if role == "value" then -- an AttributeValue: its plain value
    local k, inner = next(v)
    if not AV[k] or next(v, k) ~= nil then die("not an AttributeValue: " .. core.json_encode(v)) end
    if k == "N" then return ("%q"):format(math.tointeger(tonumber(inner)) or tonumber(inner)) end
    if k == "NULL" then return "null" end
    if k == "M" then return emit_table(inner, ctx, "item") end
    if k == "L" then
      local parts = {}
      ctx.n = ctx.n + 1
      for i = 1, #inner do parts[i] = emit(inner[i], ctx, "value") end
      return "{" .. table.concat(parts, ",") .. "}"
    end
    return emit(inner, ctx, nil) -- S, B, BOOL, SS, NS, BS
  end
  return emit_table(v, ctx, role)
end

local function compile(value, plain)
  local ctx = { n = 0, plain = plain }
  local src = "local null = ...; return function() return " .. emit(value, ctx, nil) .. " end"
  local chunk = assert(load(src, "=response", "t"))
  return chunk(core.null), ctx.n
end

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function time_calls(f, n, warmup)
  for _ = 1, warmup do f() end
  local t0 = os.clock()
  for _ = 1, n do f() end
  return (os.clock() - t0) / n * 1e6
end

local path, n, warmup = arg[1], tonumber(arg[2]), tonumber(arg[3] or "200")
if not path or not n or n < 1 or not warmup then die("usage: result_bound.lua RESPONSE_JSON N [WARMUP]") end
local f = io.open(path, "rb") or die("cannot open " .. path)
local body = f:read("a")
f:close()
local value = core.json_decode(body)
if type(value) ~= "table" then die(path .. " is not a JSON object") end

local typed, tables_typed = compile(value, false)
local plain, tables_plain = compile(value, true)
-- the constructors must rebuild the decoded response exactly
if not same(typed(), value) then die("typed constructor differs from the response") end
local typed_us = time_calls(typed, n, warmup)
local plain_us = time_calls(plain, n, warmup)
io.stdout:write(('{"n":%d,"typed_us":%.4f,"plain_us":%.4f,"tables_typed":%d,"tables_plain":%d}\n'):format(
  n, typed_us, plain_us, tables_typed, tables_plain))

-- The ddb side of the per-call benchmark.
--
--   lua5.4 bench/cases/ddb_loop.lua run ENDPOINT OP N [WARMUP]
--     creates one client, makes WARMUP calls (default 50), then N timed
--     calls of client:call(OP, params) and prints one JSON line
--     {"n":N,"cpu_s":...,"wall_s":...}: process CPU time (user+sys, os.clock)
--     and wall time of the N calls. With N = 0 it only starts up and warms
--     up (the baseline that callgrind's per-call figure subtracts).
--   lua5.4 bench/cases/ddb_loop.lua dump ENDPOINT DIR
--     for each operation writes DIR/OP.params.json (the parameters, for the
--     boto3 loop), DIR/OP.body (the request body exactly as ddb encodes it)
--     and DIR/OP.headers (the header lines ddb sends, signed once: the
--     libcurl floor replays them).
local ddb = require("ddb")
local core = require("ddb.core")

local here = arg[0]:match("^(.*)/[^/]*$") or "."
local requests = dofile(here .. "/requests.lua")

local ACCESS_KEY, SECRET_KEY, REGION = "AKIDBENCHMARK0000000", "benchmark/secret/key/0000000000000000000", "us-east-1"

local function die(msg)
  io.stderr:write("ddb_loop: ", msg, "\n")
  os.exit(1)
end

local function check(op, res)
  local ok
  if op == "ListTables" then ok = #res.TableNames == 5
  elseif op == "Query" then ok = res.Count == 20 and #res.Items == 20
  else ok = type(res) == "table" end
  if not ok then die(op .. ": unexpected response " .. core.json_encode(res)) end
end

local function now_s()
  local s, us = core.now()
  return s + us / 1e6
end

local function run(endpoint, op, n, warmup)
  local params = requests[op] or die("unknown operation " .. tostring(op))
  local client = assert(ddb.client{
    endpoint = endpoint, region = REGION, access_key_id = ACCESS_KEY, secret_access_key = SECRET_KEY,
  })
  for i = 1, warmup do
    local res, err = client:call(op, params)
    if not res then die(tostring(err)) end
    if i == 1 then check(op, res) end
  end
  local c0, w0 = os.clock(), now_s()
  for _ = 1, n do
    local res, err = client:call(op, params)
    if not res then die(tostring(err)) end
  end
  local c1, w1 = os.clock(), now_s()
  client:close()
  io.stdout:write(('{"n":%d,"cpu_s":%.9f,"wall_s":%.9f}\n'):format(n, c1 - c0, w1 - w0))
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function dump(endpoint, dir)
  local host = endpoint:match("^https?://([^/]+)") or die("bad endpoint " .. endpoint)
  for op, params in pairs(requests) do
    local body = core.json_encode(params)
    local target = "DynamoDB_20120810." .. op
    local headers = { { "Host", host }, { "Content-Type", "application/x-amz-json-1.0" }, { "X-Amz-Target", target } }
    local signed = core.sign{
      method = "POST", path = "/", headers = headers, body = body, region = REGION, service = "dynamodb",
      access_key_id = ACCESS_KEY, secret_access_key = SECRET_KEY,
    }
    for _, h in ipairs(signed.headers) do headers[#headers + 1] = h end
    headers[#headers + 1] = { "User-Agent", "ddb-lua/0.1" }
    headers[#headers + 1] = { "Expect", "" }
    local lines = {}
    for i, h in ipairs(headers) do lines[i] = h[1] .. ": " .. h[2] end
    write(dir .. "/" .. op .. ".headers", table.concat(lines, "\n") .. "\n")
    write(dir .. "/" .. op .. ".body", body)
    write(dir .. "/" .. op .. ".params.json", body)
  end
end

local mode = arg[1]
if mode == "run" then
  run(arg[2], arg[3], math.tointeger(tonumber(arg[4])) or die("N expected"), math.tointeger(tonumber(arg[5] or 50)))
elseif mode == "dump" then
  dump(arg[2], arg[3])
else
  die("usage: ddb_loop.lua run ENDPOINT OP N [WARMUP] | dump ENDPOINT DIR")
end

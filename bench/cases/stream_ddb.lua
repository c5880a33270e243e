-- The ddb side of the stream rewrite benchmark.
--   lua5.4 bench/cases/stream_ddb.lua ENDPOINT EVENT_JSON
-- Decodes the Lambda event (not timed), makes one client and one warm-up
-- call (ListTables), then times require("ddb.stream").process(client,
-- event.Records) and prints {"records":N,"cpu_s":...,"wall_s":...,
-- "processed":...,"moved":...,"applied":...,"skipped":...,"failed":...}.
local ddb = require("ddb")
local core = require("ddb.core")
local stream = require("ddb.stream")

local endpoint, path = arg[1], arg[2]
local f = assert(io.open(path, "rb"))
local event = assert(core.json_decode(f:read("a")))
f:close()
local client = assert(ddb.client{
  endpoint = endpoint, region = "us-east-1",
  access_key_id = "AKIDBENCHMARK0000000", secret_access_key = "benchmark/secret/key/0000000000000000000",
})
assert(client:call("ListTables", {}))

local function now_s()
  local s, us = core.now()
  return s + us / 1e6
end

local c0, w0 = os.clock(), now_s()
local summary = stream.process(client, event.Records)
local c1, w1 = os.clock(), now_s()
if summary.failed > 0 then
  io.stderr:write("stream_ddb: ", tostring(summary.errors[1]), "\n")
  os.exit(1)
end
io.stdout:write(('{"records":%d,"cpu_s":%.9f,"wall_s":%.9f,"processed":%d,"moved":%d,"applied":%d,'
  .. '"skipped":%d,"failed":%d}\n'):format(#event.Records, c1 - c0, w1 - w0, summary.processed,
  summary.moved, summary.applied, summary.skipped, summary.failed))

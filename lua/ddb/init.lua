--- ddb: a DynamoDB client for Lua 5.4 with a C core.
--
--     local ddb = require("ddb")
--     local client = assert(ddb.client{ endpoint = "http://localhost:8000" })
--     local res, err = client:call("ListTables", {})
--
-- @module ddb
local core = require("ddb.core")
local client = require("ddb.client")
local errors = require("ddb.errors")

local M = { _VERSION = "ddb 0.1.0" }

--- Creates a client (see `ddb.client.new`).
-- @function client
M.client = client.new

--- The error helpers (`ddb.errors`).
M.errors = errors

--- Sentinel for JSON `null`.
M.null = core.null

--- Marks a table as a JSON array, so that an empty one encodes as `[]`.
-- @function array
M.array = core.array

return M

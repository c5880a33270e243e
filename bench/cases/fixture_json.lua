-- Writes the seed fixture (users.lua and conversation.lua, the ones
-- bin/ddb/seed writes by default) as one JSON document
-- {"users": [...], "conversation": {...}} on stdout, for the Python side of
-- the seeding benchmark.
--   lua5.4 bench/cases/fixture_json.lua ROOT
local core = require("ddb.core")
local root = arg[1] or "."

local function load(name)
  for _, dir in ipairs({ "/lua/ddb/fixtures/", "/fixtures/" }) do
    local chunk = loadfile(root .. dir .. name, "t", {})
    if chunk then return chunk() end
  end
  error("fixture " .. name .. " not found under " .. root)
end

io.stdout:write(core.json_encode({ users = load("users.lua"), conversation = load("conversation.lua") }), "\n")

--- Specs of C methods that a finalizer may reenter: any Lua allocation inside
-- a method can make the collector run one.
--
--     local finalizers = require("spec.support.finalizers")
--     local inside, wrong = finalizers.run_inside("request", 300, call, on_inside)
local M = {}

-- True when a function named `name` (a C method such as "request") is on
-- the call stack.
local function on_stack(name)
  for level = 3, 40 do
    local info = debug.getinfo(level, "n")
    if not info then return false end
    if info.name == name then return true end
  end
  return false
end

--- Calls `call()` `calls` times, dropping one finalizable object before
-- each call, with the incremental collector stepping every KiB and its
-- cycles back to back, so that the calls' own allocations drive the
-- collector and most finalizers run inside the method named `method`.
-- `on_inside()` runs in each finalizer that runs there and returns nil, or a
-- string saying what went wrong (an error in a finalizer is only a warning).
-- Restores the collector's mode and Lua's default parameters after.
-- @treturn integer how many finalizers ran inside `method`
-- @treturn table the strings `on_inside` returned
function M.run_inside(method, calls, call, on_inside)
  local inside, wrong = 0, {}
  local mt = { __gc = function()
    if not on_stack(method) then return end
    inside = inside + 1
    local what = on_inside()
    if what then wrong[#wrong + 1] = what end
  end }
  local objs = {}
  for i = 1, calls do objs[i] = setmetatable({}, mt) end
  local mode = collectgarbage("incremental", 10, 1000, 10)
  collectgarbage() -- from a finished cycle
  local ok, err = pcall(function()
    for i = 1, calls do
      objs[i] = nil -- garbage for the next cycle
      call()
    end
  end)
  collectgarbage("incremental", 200, 100, 13) -- Lua 5.4's defaults
  if mode == "generational" then collectgarbage("generational") end
  collectgarbage()
  assert(ok, err)
  assert(#objs == 0)
  return inside, wrong
end

return M

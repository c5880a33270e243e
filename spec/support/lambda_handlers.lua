--- Handlers for spec/lambda_spec.lua, loaded by examples/lambda/bootstrap
-- through `_HANDLER=spec.support.lambda_handlers.<name>` (LAMBDA_TASK_ROOT is
-- the repository, and the bootstrap puts `$LAMBDA_TASK_ROOT/?.lua` on the path).
local errors = require("ddb.errors")

local M = {}

--- Raises a plain string error spanning two lines.
function M.raise(event)
  if type(event) == "table" and event.kind == "ddb" then
    error(errors.new("ConditionalCheckFailedException", "The conditional request failed"))
  end
  error("handler exploded\nwith a second line")
end

--- Returns what the handler saw of its context.
function M.context(event, context)
  local remaining = context.get_remaining_time_in_millis()
  return {
    event = event,
    aws_request_id = context.aws_request_id,
    deadline_ms = context.deadline_ms,
    invoked_function_arn = context.invoked_function_arn,
    trace_id = context.trace_id,
    trace_env = os.getenv("_X_AMZN_TRACE_ID"),
    function_name = context.function_name,
    remaining_is_integer = math.type(remaining) == "integer",
    remaining_positive = remaining > 0,
  }
end

--- Returns a value JSON cannot hold.
function M.unencodable()
  return { f = function() end }
end

return M

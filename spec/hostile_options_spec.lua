-- Hostile options tables at the C constructors core.client and
-- core.http_client (src/client.h, src/http.c): an __index metamethod that
-- builds (or changes) the values, and finalizers that replace the values
-- while the constructor runs. The constructors read each option raw and
-- once, and keep each string alive until they have copied it: no metamethod runs, the
-- string checked for CR/LF is the string sent, and no freed string is read
-- (which is what the finalizer cases show under scripts/sanitize asan).
-- No server: a client on a closed port shows its request headers through its
-- debug function.
local core = require("ddb.core")
local finalizers = require("spec.support.finalizers")

local BASE = { url = "http://127.0.0.1:1/", host = "127.0.0.1:1", region = "us-east-1",
  access_key_id = "AKIDEXAMPLE", secret_access_key = "hostile-options-secret" }

local function copy(t, extra)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  for k, v in pairs(extra or {}) do out[k] = v end
  return out
end

describe("core.client options", function()
  it("are read raw: an __index is never consulted, even one that builds fresh strings", function()
    local calls = 0
    local opts = setmetatable({}, { __index = function(_, k)
      calls = calls + 1
      collectgarbage() -- would free a string only the C side still pointed at
      local v = BASE[k]
      return type(v) == "string" and v:sub(1, 1) .. v:sub(2) or v
    end })
    assert.has_error(function() core.client(opts) end, "client option 'url' must be a string")
    assert.equal(0, calls)
    -- given in the table itself, the same options work
    local c = core.client(copy(BASE))
    c:close()
  end)

  it("check for CR/LF the very header value they use (an __index answering twice cannot inject)", function()
    for _, field in ipairs({ "host", "streams_host", "user_agent", "session_token", "access_key_id", "region" }) do
      local n, lines = 0, {}
      local given = copy(BASE, { timeout_ms = 2000, connect_timeout_ms = 1000,
        debug = function(l) lines[#lines + 1] = l end })
      given[field] = nil
      local opts = setmetatable(given, { __index = function(_, k)
        if k ~= field then return nil end
        n = n + 1
        return n == 1 and "a\r\nX-Injected: yes" or "harmless"
      end })
      local ok, res = pcall(core.client, opts)
      if field == "host" or field == "access_key_id" or field == "region" then
        assert.is_false(ok)
        assert.matches("client option '" .. field .. "' must be a string", res, 1, true)
      else -- optional: absent from the table, so absent from the request
        assert.is_true(ok, res)
        res:request("DynamoDB_20120810.ListTables", "{}", field == "streams_host")
        res:close()
        assert.matches("[Host: 127.0.0.1:1]", lines[1], 1, true)
        assert.is_nil(lines[1]:find("Injected", 1, true), lines[1])
        assert.is_nil(lines[1]:find("harmless", 1, true), lines[1])
      end
      assert.equal(0, n, field)
    end
  end)

  it("refuse a NUL byte in any string option, not only in header values", function()
    for _, field in ipairs({ "url", "streams_url", "secret_access_key", "ca_file" }) do
      assert.has_error(function() core.client(copy(BASE, { [field] = "a\0b" })) end,
        "client option '" .. field .. "' must not contain NUL")
    end
  end)

  it("stay alive until copied when a finalizer replaces them during core.client", function()
    -- Each option string a fresh object (long, or with unique contents), so
    -- only the table (and what core.client holds) references it; made
    -- beforehand, so that the collector steps come from core.client's own
    -- allocations. A finalizer running inside core.client replaces every
    -- string of the table with a new one and leaves garbage for the next
    -- step to collect: what core.client copies must be the old string or
    -- the new one, never freed memory.
    local N = 400
    local all, given = {}, {}
    for i = 1, N do
      local tail = ("%06d"):format(i)
      all[i] = {
        url = "http://127.0.0.1:1/" .. ("u"):rep(48) .. tail,
        host = "127.0.0.1:1" .. ("h"):rep(40) .. tail,
        streams_url = "http://127.0.0.1:1/" .. ("s"):rep(48) .. tail,
        streams_host = "127.0.0.1:1" .. ("t"):rep(40) .. tail,
        region = "us-east-1" .. ("r"):rep(40) .. tail,
        access_key_id = "AKID" .. ("k"):rep(40) .. tail,
        secret_access_key = "secret" .. ("x"):rep(40) .. tail,
        session_token = "token" .. ("z"):rep(40) .. tail,
        ca_file = "/nonexistent/" .. ("c"):rep(40) .. tail,
        user_agent = "ua" .. ("a"):rep(40) .. tail,
      }
      given[i] = { url = all[i].url, region = all[i].region }
    end
    local function of(got, want)
      return got:sub(1, #want) == want and got:sub(#want + 1):match("^!*$") ~= nil
    end
    local i, bad = 0, {}
    local inside, wrong = finalizers.run_inside("client", N, function()
      i = i + 1
      local c = core.client(all[i])
      local url, region = tostring(c):match("^ddb%.core%.client %((.*), (.*)%)$")
      if not (of(url, given[i].url) and of(region, given[i].region)) then bad[#bad + 1] = tostring(c) end
      c:close()
    end, function()
      local cur = all[i]
      for k, v in pairs(cur) do cur[k] = v .. "!" end
      for _ = 1, 64 do local _ = {} end -- a debt that the next step pays with a whole cycle
    end)
    assert.is_true(inside > 0, "no finalizer ran inside core.client")
    assert.same({}, wrong)
    assert.same({}, bad)
  end)
end)

describe("core.http_client options", function()
  it("are read raw: an __index is never consulted", function()
    local calls = 0
    local opts = setmetatable({}, { __index = function(_, k)
      calls = calls + 1
      if k == "ca_file" then return "/etc/ssl/certs/" .. ("x"):rep(80) .. tostring(os.time()) end
      if k == "timeout_ms" then return "not a number" end
    end })
    local h = core.http_client(opts)
    h:close()
    assert.equal(0, calls)
  end)

  it("keep ca_file alive until copied when a finalizer replaces it during core.http_client", function()
    local N = 400
    local all = {}
    for i = 1, N do all[i] = { ca_file = "/nonexistent/" .. ("c"):rep(80) .. i, timeout_ms = 1000 } end
    local i = 0
    local inside, wrong = finalizers.run_inside("http_client", N, function()
      i = i + 1
      core.http_client(all[i]):close()
    end, function()
      all[i].ca_file = all[i].ca_file .. "!"
      for _ = 1, 64 do local _ = {} end
    end)
    assert.is_true(inside > 0, "no finalizer ran inside core.http_client")
    assert.same({}, wrong)
  end)
end)

-- The bin/ddb admin scripts (schema-load, drop, list-tables, scan, seed), run
-- as subprocesses against the emulator: exit codes, --help, --json, one-line
-- failures on stderr.
local moto = require("support.moto")
local R = require("support.run")
local fault_server = require("spec.support.fault_server")
local seed = require("ddb.seed")
local cjson = require("cjson")

local SCRIPTS = { "schema-load", "drop", "list-tables", "scan", "seed" }

-- Runs a script; returns exit code, stdout, stderr.
-- opts: `env` (list of "NAME=value"), `stdin` (path, default /dev/null),
-- `script` (path, default bin/ddb/<name> relative to the repo root), `cd` (directory).
local function run(name, args, opts)
  opts = opts or {}
  return R.script(opts.script or ("bin/ddb/" .. name), args,
    { env = opts.env, stdin = opts.stdin, cd = opts.cd, timeout = false })
end

local function assert_one_line(s, pattern)
  assert.equal(1, select(2, s:gsub("\n", "")), "expected one line, got: " .. s)
  assert.equal("\n", s:sub(-1))
  if pattern then assert.matches(pattern, s, 1, true) end
end

local function json(s)
  local ok, v = pcall(cjson.decode, s)
  assert(ok, "not JSON: " .. s)
  return v
end

local function contains(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

describe("bin/ddb scripts", function()
  it("are executable and print their usage on --help (exit 0, nothing on stderr)", function()
    for _, name in ipairs(SCRIPTS) do
      local code, out, err = run(name, { "--help" })
      assert.equal(0, code, name)
      assert.matches("Usage: bin/ddb/" .. name, out, 1, true)
      assert.matches("--endpoint URL", out, 1, true)
      assert.equal("", err)
    end
  end)

  it("refuse an unknown option with exit 2 and one line on stderr", function()
    for _, name in ipairs(SCRIPTS) do
      local code, out, err = run(name, { "--no-such-flag" })
      assert.equal(2, code, name)
      assert.equal("", out)
      assert_one_line(err, name .. ": unknown option --no-such-flag")
    end
    local code, _, err = run("list-tables", { "surplus" })
    assert.equal(2, code)
    assert_one_line(err, "unexpected argument surplus")
    code, _, err = run("scan", { "--limit", "many" })
    assert.equal(2, code)
    assert_one_line(err, "--limit needs a positive integer")
  end)

  it("fail with one line and exit 1 when nothing listens at the endpoint", function()
    local url = "http://127.0.0.1:" .. fault_server.closed_port()
    for _, name in ipairs({ "list-tables", "scan", "seed", "schema-load", "drop" }) do
      local code, out, err = run(name, { "--endpoint", url, "--table", "tbl" })
      assert.equal(1, code, name)
      assert.equal("", out)
      assert_one_line(err, name .. ": ")
      assert.matches("TransportError", err, 1, true)
    end
  end)

  it("target the local server, never AWS, without prod: empty or ignored endpoint variables", function()
    -- what cli.client resolves, in a process with the variables given
    local function endpoint_of(env, prod)
      local t = { "LUA_PATH=lua/?.lua;lua/?/init.lua;;", "LUA_CPATH=build/?.so;;", "AWS_REGION=eu-west-1",
        "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=dummy", "AWS_CONFIG_FILE=/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE=/dev/null" }
      for _, e in ipairs(env) do t[#t + 1] = e end
      local code, out, err = run(nil, { "-e", ("io.write(require('ddb.cli').client({ prod = %s }).endpoint)")
        :format(tostring(prod == true)) }, { script = "lua5.4", env = t })
      assert.equal(0, code, err)
      return out
    end
    assert.equal("http://localhost:8000/", endpoint_of({}))
    assert.equal("http://localhost:8000/", endpoint_of({ "AWS_ENDPOINT_URL=", "AWS_ENDPOINT_URL_DYNAMODB=" }))
    assert.equal("http://localhost:8000/", endpoint_of({ "AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:9",
      "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true" }))
    assert.equal("http://127.0.0.1:9/", endpoint_of({ "AWS_ENDPOINT_URL=http://127.0.0.1:9" }))
    assert.equal("https://dynamodb.eu-west-1.amazonaws.com/", endpoint_of({ "AWS_ENDPOINT_URL=" }, true))
  end)

  it("show their installed name (ddb-*) in --help", function()
    local dir = R.tmpdir()
    local link = dir .. "/ddb-list-tables"
    assert(os.execute("ln -s " .. R.quote(R.cwd() .. "/bin/ddb/list-tables") .. " " .. R.quote(link)))
    local root = R.cwd()
    local code, out, err = run(nil, { "--help" }, { script = link, env = {
      "LUA_PATH=" .. root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;", "LUA_CPATH=" .. root .. "/build/?.so;;" } })
    R.rmrf(dir)
    assert.equal(0, code, err)
    assert.matches("^Usage: ddb%-list%-tables %[prod%]", out)
    code, out = run("list-tables", { "--help" })
    assert.equal(0, code)
    assert.matches("^Usage: bin/ddb/list%-tables %[prod%]", out)
  end)

  it("name their --region option when prod has no region", function()
    local code, out, err = run("list-tables", { "prod" }, { env = { "AWS_REGION=", "AWS_DEFAULT_REGION=",
      "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null" } })
    assert.equal(1, code)
    assert.equal("", out)
    assert_one_line(err, "list-tables: no AWS region: pass --region REGION or set AWS_REGION")
  end)

  it("fail with one line and exit 1 when their output cannot be written", function()
    local cases = { { "list-tables", "--json", "--endpoint", moto.endpoint() } } -- "[]" at least
    for _, name in ipairs(SCRIPTS) do cases[#cases + 1] = { name, "--help" } end
    for _, c in ipairs(cases) do
      local name = table.remove(c, 1)
      local line = R.quote("bin/ddb/" .. name)
      for _, a in ipairs(c) do line = line .. " " .. R.quote(a) end
      local code, out, err = run(nil, { "-c", line .. " >/dev/full" }, { script = "sh" })
      assert.equal(1, code, name .. " " .. table.concat(c, " "))
      assert.equal("", out)
      assert_one_line(err, name .. ": cannot write the output")
    end
  end)

  it("run from another directory through an absolute path", function()
    local code, out, err = run("list-tables", { "--endpoint", moto.endpoint(), "--json" },
      { script = R.cwd() .. "/bin/ddb/list-tables", cd = "/" })
    assert.equal(0, code, err)
    assert.is_table(json(out))
  end)

  it("find the checkout's modules from inside bin/ddb and bin/ddb/patterns", function()
    -- no default module path: only what the script's own bootstrap adds
    local env = { "LUA_PATH=/nonexistent/?.lua", "LUA_CPATH=/nonexistent/?.so" }
    local cases = {
      { "bin/ddb", "./list-tables", { "--endpoint", moto.endpoint(), "--json" } },
      { "bin/ddb", "patterns/list-conversations", { "--help" } },
      { "bin/ddb/patterns", "./get-conversation", { "--help" } },
      { "bin", "ddb/scan", { "--help" } },
    }
    for _, c in ipairs(cases) do
      local code, out, err = run(nil, c[3], { script = c[2], cd = R.cwd() .. "/" .. c[1], env = env })
      assert.equal(0, code, c[1] .. " " .. c[2] .. ": " .. err)
      assert.equal("", err)
      if c[3][1] == "--help" then assert.matches("usage:", out:lower(), 1, true)
      else assert.is_table(json(out)) end
    end
  end)

  describe("against the emulator", function()
    local name = moto.table_name("scripts")
    local common = { "--endpoint", moto.endpoint(), "--table", name }
    local fx = assert(seed.load_fixtures())
    local n = #fx.lines

    local function args(...)
      local t = { table.unpack(common) }
      for _, a in ipairs({ ... }) do t[#t + 1] = a end
      return t
    end

    teardown(function()
      run("drop", args())
    end)

    it("schema-load creates the table, then refuses an existing one", function()
      local code, out, err = run("schema-load", args())
      assert.equal(0, code, err)
      assert.equal("", err)
      local quoted = name:gsub("%-", "%%-")
      assert.matches("^created table " .. quoted .. " %(ACTIVE, stream arn:aws:dynamodb:[^)]+%)\n$", out)

      code, out, err = run("schema-load", args())
      assert.equal(1, code)
      assert.equal("", out)
      assert_one_line(err, "schema-load: ")
      assert.matches(name, err, 1, true)
      assert.matches("already exists", err, 1, true)
    end)

    it("list-tables shows it, as lines and as a JSON array", function()
      local code, out, err = run("list-tables", { "--endpoint", moto.endpoint(), "--json" })
      assert.equal(0, code, err)
      assert.is_true(contains(json(out), name))
      code, out = run("list-tables", { "--endpoint", moto.endpoint() })
      assert.equal(0, code)
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.is_true(contains(lines, name))
    end)

    it("seed --json reports the fixture's counts; seed prints one summary line", function()
      local code, out, err = run("seed", args("--json"))
      assert.equal(0, code, err)
      assert.equal("", err) -- stderr is not a terminal: no progress line
      local s = json(out)
      assert.equal(n, s.messages)
      assert.equal(2, s.groups)
      assert.equal(1, s.pairs)
      assert.equal(math.ceil((n + 3) / 25), s.requests)
      assert.equal(0, s.retries)

      code, out, err = run("seed", args()) -- again: replaces, does not duplicate
      assert.equal(0, code, err)
      local pattern = ("^seeded %d messages, 2 groups into %s %%(%%d+ requests%%)\n$"):format(n, name:gsub("%-", "%%-"))
      assert.matches(pattern, out)
    end)

    it("scan --json returns every item as plain values", function()
      local code, out, err = run("scan", args("--json"))
      assert.equal(0, code, err)
      local items = json(out)
      assert.equal(n + 3, #items)
      local texts, kinds = {}, {}
      for _, it in ipairs(items) do
        assert.is_string(it.pk)
        assert.is_string(it.sk)
        for k, v in pairs(it) do assert.is_true(type(v) == "string", k .. " is " .. type(v)) end
        local kind = it.pk:match("^(%u+)#")
        kinds[kind] = (kinds[kind] or 0) + 1
        if kind == "MSG" then texts[it.message] = true end
      end
      assert.same({ MSG = n, GRP = 2, PAIR = 1 }, kinds)
      for _, line in ipairs(fx.lines) do assert.is_true(texts[line.text], line.text) end

      code, out = run("scan", args("--json", "--limit", "5"))
      assert.equal(0, code)
      assert.equal(5, #json(out))
    end)

    it("scan prints an aligned table with a count", function()
      local code, out, err = run("scan", args())
      assert.equal(0, code, err)
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.equal(n + 3 + 2, #lines) -- header, items, count
      assert.matches("^pk%s+sk%s+attributes$", lines[1])
      assert.equal(("(%d items)"):format(n + 3), lines[#lines])
      local col = lines[1]:find("sk", 1, true)
      for i = 2, #lines - 1 do
        assert.equal(" ", lines[i]:sub(col - 1, col - 1))
        local rest = lines[i]:sub(col) -- every sk starts in the sk column
        assert.is_truthy(rest:match("^%d%d%d%d%-%d%d%-%d%dT") or rest:match("^PAIR "), lines[i])
      end
    end)

    it("drop deletes it; a second drop fails with one line", function()
      local code, out, err = run("drop", args())
      assert.equal(0, code, err)
      assert.equal("deleted table " .. name .. "\n", out)
      code, out = run("list-tables", { "--endpoint", moto.endpoint(), "--json" })
      assert.equal(0, code)
      assert.is_false(contains(json(out), name))
      code, out, err = run("drop", args())
      assert.equal(1, code)
      assert.equal("", out)
      assert_one_line(err, "does not exist")
    end)

    it("scan and seed on a missing table fail with one line and a hint", function()
      for _, script in ipairs({ "scan", "seed" }) do
        local code, out, err = run(script, args())
        assert.equal(1, code, script)
        assert.equal("", out)
        assert_one_line(err, "ResourceNotFoundException")
        assert.matches("schema-load", err, 1, true)
      end
    end)
  end)

  describe("drop against AWS (prod)", function()
    local srv
    -- A fake region and dummy credentials, and the DynamoDB endpoint pointed
    -- at the fault server, so that any request the script sends is logged.
    local function env()
      return { "AWS_REGION=xx-fake-1", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=dummy",
        "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_CONFIG_FILE=/dev/null",
        "AWS_ENDPOINT_URL_DYNAMODB=" .. srv.url }
    end

    setup(function() srv = fault_server.start() end)
    teardown(function() if srv then srv:stop() end end)
    before_each(function() srv:reset() end)

    it("refuses without --yes when stdin is not a terminal, before any request", function()
      local code, out, err = run("drop", { "prod", "--table", "cruddur-messages" }, { env = env() })
      assert.equal(1, code)
      assert.equal("", out)
      assert_one_line(err, "refusing to delete table cruddur-messages at " .. srv.url .. "/ (xx-fake-1)")
      assert.matches("--yes", err, 1, true)
      assert.same({}, srv:log())
    end)

    it("with --yes sends DeleteTable to AWS's endpoint (the control for the test above)", function()
      local code, out, err = run("drop", { "prod", "--yes", "--table", "cruddur-messages" }, { env = env() })
      assert.equal(0, code, err)
      assert.equal("deleted table cruddur-messages\n", out)
      local log = srv:log()
      assert.equal(1, #log)
      assert.equal("DynamoDB_20120810.DeleteTable", log[1].headers["x-amz-target"])
      assert.matches("/xx-fake-1/dynamodb/aws4_request", log[1].headers["authorization"], 1, true)
    end)

    it("asks without prod too when the endpoint is not on this machine", function()
      -- http_proxy: were a request sent, it would reach the fault server, not the host named
      local e = { "AWS_REGION=xx-fake-1", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=dummy",
        "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_CONFIG_FILE=/dev/null", "http_proxy=" .. srv.url,
        "no_proxy=", "NO_PROXY=" }
      local far = { "--endpoint", "http://dynamodb.example.invalid", "--table", "cruddur-messages" }
      local code, out, err = run("drop", far, { env = e })
      assert.equal(1, code)
      assert.equal("", out)
      assert_one_line(err, "refusing to delete table cruddur-messages at http://dynamodb.example.invalid/ (xx-fake-1)")
      assert.same({}, srv:log())
      -- the control: with --yes it sends DeleteTable (to the proxy)
      table.insert(far, "--yes")
      run("drop", far, { env = e })
      assert.equal(1, #srv:log())
      assert.equal("DynamoDB_20120810.DeleteTable", srv:log()[1].headers["x-amz-target"])
      -- and a local endpoint still needs no confirmation
      local code2, _, err2 = run("drop", { "--endpoint", srv.url, "--table", "cruddur-messages" }, { env = e })
      assert.equal(0, code2, err2)
      assert.equal(2, #srv:log())
    end)

    -- The confirmation on a terminal, through script(1)'s pseudo-terminal.
    local has_script = os.execute("command -v script >/dev/null 2>&1")
    local pty_it = has_script and it or pending
    pty_it("asks on a terminal: anything but y/yes keeps the table", function()
      local function answer(text)
        local input = os.tmpname()
        local f = assert(io.open(input, "w"))
        f:write(text)
        f:close()
        local inner = table.concat({ "bin/ddb/drop", "prod", "--table", "cruddur-messages" }, " ")
        local code, out = run("drop", { "-qec", inner, "/dev/null" },
          { script = "script", env = env(), stdin = input })
        os.remove(input)
        return code, out
      end
      local code, out = answer("n\n")
      assert.equal(1, code)
      assert.matches("Delete table cruddur-messages at " .. srv.url .. "/ (xx-fake-1)? [y/N]", out, 1, true)
      assert.matches("not confirmed", out, 1, true)
      assert.same({}, srv:log())
      code, out = answer("y\n")
      assert.equal(0, code, out)
      assert.matches("deleted table cruddur-messages", out, 1, true)
      assert.equal(1, #srv:log())
    end)
  end)
end)

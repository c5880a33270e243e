--- Resolves endpoint, region, credentials and options the way the AWS SDKs do.
--
-- Pure Lua; reads the environment (through a `getenv` function) and, only when
-- something is still missing, the shared AWS files (`~/.aws/credentials`,
-- `~/.aws/config`). Programmer errors (wrong option names or types) raise;
-- everything else that can go wrong is returned as `nil, err` with
-- `err.code == "ConfigError"`. No secret ever appears in a message.
--
-- Precedence (first wins):
--
-- * endpoint: `opts.endpoint`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`,
--   the profile's `services` section (`dynamodb = / endpoint_url = ...`), the
--   profile's `endpoint_url`, then `opts.fallback_endpoint` when given (the
--   `bin/ddb` scripts' local server), then
--   `https://dynamodb.<region>.amazonaws.com` (`amazonaws.com.cn` for `cn-*`
--   regions). Setting `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` skips the
--   environment and file levels, as in the SDKs (the profile's
--   `ignore_configured_endpoint_urls` is not read). Empty variables count as
--   unset.
-- * streams endpoint: `opts.endpoint`, `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`,
--   `AWS_ENDPOINT_URL`, the profile's `services` `dynamodb_streams` entry, the
--   profile's `endpoint_url`, then the DynamoDB endpoint when one was given
--   or configured (emulators serve both), else
--   `https://streams.dynamodb.<region>.amazonaws.com`.
-- * region: `opts.region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's
--   `region`; when still missing, `us-east-1` if an endpoint was given, else a
--   ConfigError.
-- * profile: `opts.profile`, `AWS_PROFILE`, `default`.
-- * credentials: `opts` (`access_key_id` + `secret_access_key`
--   [+ `session_token`]), `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY`
--   [+ `AWS_SESSION_TOKEN`], the credentials file profile, the config file
--   profile; when none and the endpoint is loopback, placeholder credentials
--   (`local`/`local`), else a ConfigError. Keys from different levels are never
--   mixed.
-- * `max_attempts`: `opts`, `AWS_MAX_ATTEMPTS`, profile `max_attempts`, 3.
-- * `ca_file`: `opts`, `AWS_CA_BUNDLE`, profile `ca_bundle`, nil. When set, it
--   must be readable.
-- * `debug`, `debug_body`: `opts`, then `DDB_DEBUG` (`1`/`true`: debug;
--   `body`: debug with bodies; `0`/`false`: off), false.
-- * `insecure_tls` (no TLS certificate verification): `opts` only, false.
--   No environment variable or file setting turns verification off.
--
-- Files: `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`, sections
-- `[name]`) and `AWS_CONFIG_FILE` (default `~/.aws/config`, sections
-- `[default]` and `[profile name]`), `~` expanded with `HOME`. Each file is read
-- at most once per `resolve` call, and only if a value is still needed from it.
-- A missing file counts as empty. A profile named explicitly (by
-- `opts.profile` or `AWS_PROFILE`) that exists in neither file is a
-- ConfigError only when the region or the credentials had to come from it; for
-- optional values (endpoint, max_attempts, ca_bundle) it is silently ignored.
--
-- Environment variables set to the empty string count as unset.
-- @module ddb.config
local errors = require("ddb.errors")

local M = {}

local DEFAULTS = {
  timeout_ms = 30000,
  connect_timeout_ms = 3000,
  max_attempts = 3,
  retry_base_ms = 50,
  retry_max_backoff_ms = 20000,
  debug = false,
  debug_body = false,
  insecure_tls = false,
}

-- Option name -> kind. "secret" is a string whose value never appears anywhere.
local OPTION_KINDS = {
  endpoint = "string",
  fallback_endpoint = "string", -- instead of AWS when no endpoint is given or configured
  region = "string",
  profile = "string",
  access_key_id = "secret",
  secret_access_key = "secret",
  session_token = "secret",
  timeout_ms = "posint",
  connect_timeout_ms = "posint",
  max_attempts = "posint",
  ca_file = "string",
  retry_base_ms = "number",
  retry_max_backoff_ms = "number",
  debug = "debug",      -- a boolean, or a function that receives each debug line
  debug_body = "boolean",
  insecure_tls = "boolean",
}

-- Largest "posint" option (the C core keeps timeouts in a 32-bit int).
local MAX_POSINT = 0x7fffffff

local OPTION_NAMES = {}
for name in pairs(OPTION_KINDS) do OPTION_NAMES[#OPTION_NAMES + 1] = name end
table.sort(OPTION_NAMES)

local DEFAULT_PORTS = { http = 80, https = 443 }

local UNSUPPORTED_CREDENTIAL_KEYS = {
  "credential_process", "role_arn", "sso_session", "sso_start_url", "web_identity_token_file",
}

-- Thrown inside do_resolve and turned into `nil, err` by resolve.
local function fail(msg, fields)
  error(errors.new("ConfigError", msg, fields), 0)
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Levenshtein distance, for "did you mean" on unknown option names.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

----------------------------------------------------------------------------
-- Endpoints
----------------------------------------------------------------------------

-- Hides what may be secret in a URL (userinfo, query, fragment) for messages.
-- Userinfo is cut up to the LAST '@' (a secret key may hold '/' and '+', so
-- `https://AKID:abc/def@host` must not show `abc/def`), and a "port" that is
-- not a number is not shown (`https://AKID:secret` without a host).
local function redact_url(url)
  local s = url:gsub("[?#].*$", "")
  s = s:gsub("^([^/]*//).*@", "%1")
  if not s:find("//", 1, true) then s = s:gsub("^.*@", "") end -- no scheme: up to the last '@' too
  local head, authority, rest = s:match("^([^/]*//)([^/]*)(.*)$")
  if authority and authority:sub(1, 1) ~= "[" then
    local host, port = authority:match("^([^:]*):(.*)$")
    if port and port:find("%D") then s = head .. host .. ":<not shown>" .. (rest ~= "" and "/..." or "") end
  end
  if #s > 200 then s = s:sub(1, 200) .. "..." end
  return s
end

-- Parses a textual IPv6 address into 8 integers, or nil.
local function parse_ipv6(s)
  local pre, a, b, c, d = s:match("^(.*:)(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if pre then
    a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
    if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
    s = pre .. string.format("%x:%x", a * 256 + b, c * 256 + d)
  end
  local function groups_of(part)
    local t = {}
    if part == "" then return t end
    for g in (part .. ":"):gmatch("([^:]*):") do
      if not g:match("^%x%x?%x?%x?$") then return nil end
      t[#t + 1] = tonumber(g, 16)
    end
    return t
  end
  local dbl = s:find("::", 1, true)
  if not dbl then
    local g = groups_of(s)
    if not g or #g ~= 8 then return nil end
    return g
  end
  if s:find("::", dbl + 1, true) then return nil end
  local left, right = groups_of(s:sub(1, dbl - 1)), groups_of(s:sub(dbl + 2))
  if not left or not right or #left + #right > 7 then return nil end
  local g = left
  for _ = 1, 8 - #left - #right do g[#g + 1] = 0 end
  for _, v in ipairs(right) do g[#g + 1] = v end
  return g
end

local function ipv4_octets(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  local t = { tonumber(a), tonumber(b), tonumber(c), tonumber(d) }
  for _, v in ipairs(t) do
    if v > 255 then return nil end
  end
  return t
end

local function ipv6_is_loopback(g)
  for i = 1, 5 do
    if g[i] ~= 0 then return false end
  end
  if g[6] == 0 and g[7] == 0 and g[8] == 1 then return true end  -- ::1
  return g[6] == 0xffff and (g[7] >> 8) == 127                    -- ::ffff:127.x.x.x
end

--- Parses and normalises an endpoint URL.
-- Accepts `http` and `https` URLs with a host and an optional port and path;
-- rejects userinfo (`user:pass@`), queries and fragments. The scheme and host
-- name are lowercased; the path defaults to `/`.
-- @tparam string url e.g. `"http://localhost:8000"`
-- @treturn table `{ url, scheme, host, hostname, port, path, loopback }` where
--   `host` is the Host header value (`:port` only when not the scheme's
--   default, IPv6 in brackets), `hostname` is the bare name or address,
--   `port` a number and `loopback` is true for `localhost`, `*.localhost`,
--   127.0.0.0/8 and `::1`
-- @return[2] nil
-- @treturn[2] table ConfigError
function M.parse_endpoint(url)
  if type(url) ~= "string" then
    error("ddb: endpoint URL must be a string, got " .. type(url), 2)
  end
  local function bad(reason)
    return errors.fail("ConfigError", string.format(
      "invalid endpoint URL '%s': %s; use e.g. http://localhost:8000 or https://dynamodb.us-east-1.amazonaws.com",
      redact_url(url), reason))
  end
  local s = trim(url)
  if s == "" then return bad("it is empty") end
  if s:find("[%s%c]") then return bad("it contains whitespace or control characters") end
  local scheme, rest = s:match("^(%a[%w+.%-]*)://(.*)$")
  if not scheme then return bad("it has no scheme (http:// or https://)") end
  scheme = scheme:lower()
  if not DEFAULT_PORTS[scheme] then return bad("the scheme must be http or https") end
  if rest:find("@", 1, true) then return bad("it must not contain user info (user:password@)") end
  if rest:find("?", 1, true) then return bad("it must not have a query (?...)") end
  if rest:find("#", 1, true) then return bad("it must not have a fragment (#...)") end
  local authority, path = rest:match("^([^/]*)(.*)$")
  if path == "" then path = "/" end
  if path ~= "/" then return bad("it must not have a path (DynamoDB is served at /)") end
  if authority:find("@", 1, true) then return bad("it must not contain user info (user:password@)") end
  if authority == "" then return bad("it has no host") end

  local hostname, port_text, ipv6
  if authority:sub(1, 1) == "[" then
    local inner, after = authority:match("^%[([^%]]*)%](.*)$")
    if not inner then return bad("unterminated IPv6 address (missing ']')") end
    if inner:find("%", 1, true) then return bad("IPv6 zone identifiers are not supported") end
    ipv6 = parse_ipv6(inner)
    if not ipv6 then return bad("invalid IPv6 address") end
    if after ~= "" then
      port_text = after:match("^:(.*)$")
      if not port_text then return bad("unexpected text after the IPv6 address") end
    end
    hostname = inner:lower()
  else
    hostname, port_text = authority:match("^([^:]*):(.*)$")
    if not hostname then hostname = authority end
    if hostname == "" then return bad("it has no host") end
    if not hostname:match("^[%w%-_%.]+$") or hostname:sub(1, 1) == "." or hostname:find("..", 1, true) then
      return bad("invalid host name")
    end
    hostname = hostname:lower()
  end

  local port = DEFAULT_PORTS[scheme]
  if port_text then
    if not port_text:match("^%d+$") then return bad("the port must be a number") end
    port = tonumber(port_text)
    if #port_text > 5 or port < 1 or port > 65535 then return bad("the port must be between 1 and 65535") end
  end

  local loopback
  if ipv6 then
    loopback = ipv6_is_loopback(ipv6)
  else
    local bare = hostname:gsub("%.$", "")
    local v4 = ipv4_octets(bare)
    if v4 then
      loopback = v4[1] == 127
    else
      loopback = bare == "localhost" or bare:sub(-10) == ".localhost"
    end
  end

  local host = ipv6 and ("[" .. hostname .. "]") or hostname
  if port ~= DEFAULT_PORTS[scheme] then host = host .. ":" .. port end
  return {
    url = scheme .. "://" .. host .. path,
    scheme = scheme,
    host = host,
    hostname = hostname,
    port = port,
    path = path,
    loopback = loopback,
  }
end

local function copy_endpoint(e)
  local t = {}
  for k, v in pairs(e) do t[k] = v end
  return t
end

----------------------------------------------------------------------------
-- Shared files
----------------------------------------------------------------------------

-- INI parsing like botocore (configparser): `key = value` or `key: value`,
-- full-line comments `#`/`;`, no inline comments, whitespace trimmed, keys
-- lower-cased (configparser's default: `Region = x` is `region`; keys of a
-- nested sub-section are kept as written, as botocore does). An indented line
-- after `key =` (empty value) opens a nested sub-section (`s3 =` /
-- `  max_concurrent_requests = 10`), stored as a table; an indented line after
-- a non-empty value continues it. Returns
-- `{ [section] = { key = value } }` or nil, line number.
local function parse_ini(text)
  local sections = {}
  local cur, key, key_indent
  local lineno = 0
  text = text:gsub("^\239\187\191", "")  -- UTF-8 BOM
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    line = line:gsub("\r$", "")
    local indent = #line:match("^%s*")
    local stripped = trim(line)
    if stripped == "" or stripped:find("^[#;]") then  -- luacheck: ignore 542
      -- blank line or comment: keeps the current key open, like configparser
    elseif cur and key and indent > key_indent then
      local v = cur[key]
      if type(v) == "table" or v == "" then
        if v == "" then
          v = {}
          cur[key] = v
        end
        local k, val = stripped:match("^(.-)%s*[=:]%s*(.*)$")
        if k and k ~= "" then v[k] = val end  -- anything else in a nested section is skipped
      else
        cur[key] = v .. "\n" .. stripped
      end
    else
      local header = stripped:match("^%[(.+)%]")
      if header then
        header = trim(header)
        cur = sections[header] or {}
        sections[header] = cur
        key = nil
      else
        local k, val = stripped:match("^(.-)%s*[=:]%s*(.*)$")
        if not cur or not k or k == "" then return nil, lineno end
        k = k:lower()
        cur[k] = val
        key, key_indent = k, indent
      end
    end
  end
  return sections
end

-- Reads a whole file: text, or nil when missing, or nil, message.
local function read_file(path)
  local f, msg, code = io.open(path, "rb")
  if not f then
    if code == 2 or code == 20 then return nil end  -- ENOENT, ENOTDIR: missing
    return nil, msg or "cannot open"
  end
  local text, rmsg = f:read("a")
  f:close()
  if not text then return nil, rmsg or "cannot read" end
  return text
end

local function unquote(s)
  return s:match('^"(.*)"$') or s:match("^'(.*)'$") or s
end

-- Lazily loaded shared files for one resolve call.
local function shared_files(env, profile)
  local home = env("HOME")
  -- Returns the path to open (nil when `~` cannot be expanded) and the name shown in messages.
  local function locate(var, default)
    local name = env(var) or default
    if name == "~" or name:sub(1, 2) == "~/" then
      if not home then return nil, name end
      return home .. name:sub(2), name
    end
    return name, name
  end
  local cred_path, cred_name = locate("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
  local conf_path, conf_name = locate("AWS_CONFIG_FILE", "~/.aws/config")

  local F = { cred_name = cred_name, conf_name = conf_name }
  local cache = {}

  local function load(path, name, kind)
    if not path then return {} end
    local text, msg = read_file(path)
    if not text then
      if msg then
        fail(string.format("cannot read AWS %s file %s (%s); fix it or point %s elsewhere", kind, name,
          msg:gsub("^.*: ", ""), kind == "config" and "AWS_CONFIG_FILE" or "AWS_SHARED_CREDENTIALS_FILE"))
      end
      return {}
    end
    local sections, lineno = parse_ini(text)
    if not sections then
      fail(string.format("cannot parse AWS %s file %s at line %d: expected [section], key = value or a comment",
        kind, name, lineno))
    end
    return sections
  end

  --- Section of the credentials file for the profile, or nil.
  function F.credentials()
    if cache.cred == nil then
      local sections = load(cred_path, cred_name, "credentials")
      cache.cred = sections[profile] or false
    end
    return cache.cred or nil
  end

  local function config_sections()
    if cache.conf == nil then
      local sections = load(conf_path, conf_name, "config")
      local profiles, services = {}, {}
      for header, values in pairs(sections) do
        local name
        if header == "default" then
          name = "default"
        else
          name = header:match("^profile%s+(.+)$")
          if name then name = unquote(trim(name)) end
        end
        if name then
          local p = profiles[name] or {}
          -- `[profile default]` wins over `[default]` when both exist
          for k, v in pairs(values) do
            if header ~= "default" or p[k] == nil then p[k] = v end
          end
          profiles[name] = p
        else
          local sname = header:match("^services%s+(.+)$")
          if sname then services[unquote(trim(sname))] = values end
        end
      end
      cache.conf = { profile = profiles[profile] or false, services = services }
    end
    return cache.conf
  end

  --- Section of the config file for the profile, or nil.
  function F.config()
    return config_sections().profile or nil
  end

  --- String value `key` of the profile in the config file, or nil.
  function F.conf_value(key)
    local p = F.config()
    local v = p and p[key]
    if type(v) == "string" and v ~= "" then return v end
    return nil
  end

  --- `endpoint_url` for `service` from the profile's services section, or nil.
  function F.service_endpoint(service)
    local sname = F.conf_value("services")
    local svc = sname and config_sections().services[sname]
    local entry = svc and svc[service]
    local v = type(entry) == "table" and entry.endpoint_url
    if type(v) == "string" and v ~= "" then return v end
    return nil
  end

  --- True when the profile exists in neither file.
  function F.profile_missing()
    return F.credentials() == nil and F.config() == nil
  end

  return F
end

----------------------------------------------------------------------------
-- Resolution
----------------------------------------------------------------------------

local function check_options(opts, level)
  -- level 3 + n: raise -> check_options -> resolve -> n callers up
  local function raise(msg) error("ddb: " .. msg, 3 + level) end
  if opts == nil then return {} end
  if type(opts) ~= "table" then raise("options must be a table, got " .. type(opts)) end
  local out = {}
  for name, v in pairs(opts) do
    local kind = OPTION_KINDS[name]
    if not kind then
      local shown = type(name) == "string" and ("'" .. name .. "'") or ("[" .. tostring(name) .. "]")
      local best, best_d
      if type(name) == "string" then
        for _, cand in ipairs(OPTION_NAMES) do
          local d = distance(name:lower(), cand)
          if d <= 2 and (not best_d or d < best_d) then best, best_d = cand, d end
        end
      end
      if best then
        raise(string.format("unknown option %s (did you mean '%s'?)", shown, best))
      end
      raise(string.format("unknown option %s; known options: %s", shown, table.concat(OPTION_NAMES, ", ")))
    end
    if kind == "string" or kind == "secret" then
      if type(v) ~= "string" then
        raise(string.format("option '%s' must be a string, got %s", name, type(v)))
      elseif v == "" then
        raise(string.format("option '%s' must not be empty", name))
      end
    elseif kind == "posint" then
      local n = type(v) == "number" and math.tointeger(v)
      if not n or n < 1 or n > MAX_POSINT then
        raise(string.format("option '%s' must be an integer from 1 to %d, got %s", name, MAX_POSINT,
          type(v) == "number" and tostring(v) or type(v)))
      end
      v = n
    elseif kind == "number" then
      if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then
        raise(string.format("option '%s' must be a finite number >= 0, got %s", name,
          type(v) == "number" and tostring(v) or type(v)))
      end
    elseif kind == "debug" then
      if type(v) ~= "boolean" and type(v) ~= "function" then
        raise(string.format("option '%s' must be a boolean or a function, got %s", name, type(v)))
      end
    elseif type(v) ~= kind then
      raise(string.format("option '%s' must be a %s, got %s", name, kind, type(v)))
    end
    out[name] = v
  end
  if (out.access_key_id == nil) ~= (out.secret_access_key == nil) then
    raise("options 'access_key_id' and 'secret_access_key' must be given together")
  end
  if out.session_token and not out.access_key_id then
    raise("option 'session_token' needs 'access_key_id' and 'secret_access_key'")
  end
  return out
end

local function truthy(v)
  return v ~= nil and (v:lower() == "true" or v == "1")
end

local function parse_count(text, what)
  local n = text:match("^%s*(%d+)%s*$")
  n = n and math.tointeger(tonumber(n))
  if not n or n < 1 then
    fail(string.format("%s must be an integer >= 1, got '%s'", what,
      #text > 40 and text:sub(1, 40) .. "..." or text))
  end
  return n
end

local function endpoint_from(url, source)
  local e, err = M.parse_endpoint(url)
  if not e then fail(err.message .. " (from " .. source .. ")") end
  return e
end

local function aws_domain(region)
  return region:sub(1, 3) == "cn-" and "amazonaws.com.cn" or "amazonaws.com"
end

local function do_resolve(o, env)
  local profile = o.profile or env("AWS_PROFILE") or "default"
  local profile_explicit = o.profile ~= nil or env("AWS_PROFILE") ~= nil
  local files = shared_files(env, profile)
  local function profile_where()
    return string.format("profile '%s' of %s", profile, files.conf_name)
  end
  local function check_profile_needed(what)
    if profile_explicit and files.profile_missing() then
      fail(string.format("AWS profile '%s' (from %s) not found in %s or %s, and the %s had to come from it; "
        .. "fix the profile name or set the %s directly", profile, o.profile and "option profile" or "AWS_PROFILE",
        files.cred_name, files.conf_name, what, what))
    end
  end

  -- endpoint (the region comes next, but a given endpoint changes its default)
  local endpoint, streams_endpoint
  if o.endpoint then
    endpoint = endpoint_from(o.endpoint, "option endpoint")
    streams_endpoint = copy_endpoint(endpoint)
  else
    local ignore_configured = truthy(env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"))
    if not ignore_configured then
      -- per service, as the SDKs: its variable, AWS_ENDPOINT_URL, the profile's
      -- services entry, the profile's endpoint_url
      local global = env("AWS_ENDPOINT_URL")
      local function configured(var, service)
        local v = env(var)
        if v then return endpoint_from(v, var) end
        if global then return endpoint_from(global, "AWS_ENDPOINT_URL") end
        v = files.service_endpoint(service)
        if v then return endpoint_from(v, "services " .. service .. " endpoint_url in " .. profile_where()) end
        return nil
      end
      endpoint = configured("AWS_ENDPOINT_URL_DYNAMODB", "dynamodb")
      streams_endpoint = configured("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "dynamodb_streams")
      if not (endpoint and streams_endpoint) then
        local v = files.conf_value("endpoint_url")
        if v then
          endpoint = endpoint or endpoint_from(v, "endpoint_url in " .. profile_where())
          streams_endpoint = streams_endpoint or (endpoint_from(v, "endpoint_url in " .. profile_where()))
        end
      end
    end
    if not endpoint and o.fallback_endpoint then
      endpoint = endpoint_from(o.fallback_endpoint, "option fallback_endpoint")
    end
    if endpoint and not streams_endpoint then streams_endpoint = copy_endpoint(endpoint) end
  end

  -- region
  local region, region_source = o.region, "option region"
  if not region then
    region, region_source = env("AWS_REGION"), "AWS_REGION"
  end
  if not region then
    region, region_source = env("AWS_DEFAULT_REGION"), "AWS_DEFAULT_REGION"
  end
  if not region then
    region, region_source = files.conf_value("region"), "region in " .. profile_where()
    if not region then check_profile_needed("region") end
  end
  if not region then
    if not endpoint then
      fail("no AWS region: set AWS_REGION or pass region=... (or add region to profile '"
        .. profile .. "' in " .. files.conf_name .. ")", { missing = "region" })
    end
    region = "us-east-1"
  end
  if not region:match("^%w[%w%-]*$") or #region > 64 then
    fail(string.format("invalid AWS region '%s' (from %s): expected something like us-east-1",
      #region > 64 and region:sub(1, 64) .. "..." or region, region_source))
  end
  if not endpoint then
    endpoint = endpoint_from("https://dynamodb." .. region .. "." .. aws_domain(region), "region " .. region)
  end
  if not streams_endpoint then
    streams_endpoint = endpoint_from("https://streams.dynamodb." .. region .. "." .. aws_domain(region),
      "region " .. region)
  end

  -- credentials
  local creds, creds_source
  if o.access_key_id then
    creds = { access_key_id = o.access_key_id, secret_access_key = o.secret_access_key,
      session_token = o.session_token }
    creds_source = "options"
  else
    local id, secret = env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")
    if id and secret then
      creds = { access_key_id = id, secret_access_key = secret,
        session_token = env("AWS_SESSION_TOKEN") or env("AWS_SECURITY_TOKEN") }
      creds_source = "environment"
    elseif id or secret then
      fail(string.format("%s is set but %s is not; set both (or neither)",
        id and "AWS_ACCESS_KEY_ID" or "AWS_SECRET_ACCESS_KEY", id and "AWS_SECRET_ACCESS_KEY" or "AWS_ACCESS_KEY_ID"))
    else
      for _, which in ipairs({ "credentials", "config" }) do
        local section = files[which]()
        if section then
          local function get(k)
            local v = section[k]
            if type(v) == "string" and v ~= "" then return v end
            return nil
          end
          local fid, fsecret = get("aws_access_key_id"), get("aws_secret_access_key")
          if fid and fsecret then
            creds = { access_key_id = fid, secret_access_key = fsecret,
              session_token = get("aws_session_token") or get("aws_security_token") }
            creds_source = "shared files (profile " .. profile .. ")"
            break
          elseif fid or fsecret then
            fail(string.format("profile '%s' in %s has %s but no %s; add it or remove the other",
              profile, which == "config" and files.conf_name or files.cred_name,
              fid and "aws_access_key_id" or "aws_secret_access_key",
              fid and "aws_secret_access_key" or "aws_access_key_id"))
          end
        end
      end
      if not creds then
        check_profile_needed("credentials")
        if endpoint.loopback then
          creds = { access_key_id = "local", secret_access_key = "local" }
          creds_source = "placeholder (loopback endpoint)"
        else
          for _, which in ipairs({ "config", "credentials" }) do
            local section = files[which]()
            for _, k in ipairs(UNSUPPORTED_CREDENTIAL_KEYS) do
              if section and section[k] then
                fail(string.format("profile '%s' uses %s, which ddb does not support; export static credentials "
                  .. "(e.g. eval \"$(aws configure export-credentials --profile %s --format env)\")",
                  profile, k, profile))
              end
            end
          end
          fail(string.format("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            .. "or add profile %s to %s", profile, files.cred_name))
        end
      end
    end
  end

  -- The signer refuses these (and C strings end at a NUL): refuse them here,
  -- as a ConfigError, instead of failing every request. Never shows a value.
  if creds.access_key_id:find("[%z\1-\32\127/,]") then
    fail(("the access key id (from %s) is empty or contains whitespace, control characters, '/' or ','")
      :format(creds_source))
  end
  if creds.secret_access_key:find("[%z\1-\31\127]") then
    fail(("the secret access key (from %s) contains control characters"):format(creds_source))
  end
  if creds.session_token and creds.session_token:find("[%z\1-\31\127]") then
    fail(("the session token (from %s) contains control characters"):format(creds_source))
  end
  if creds.session_token and not creds.session_token:find("%S") then -- would be signed but not sent
    fail(("the session token (from %s) is only spaces"):format(creds_source))
  end

  -- numbers and the CA bundle
  local max_attempts = o.max_attempts
  if not max_attempts then
    local v = env("AWS_MAX_ATTEMPTS")
    if v then
      max_attempts = parse_count(v, "AWS_MAX_ATTEMPTS")
    else
      v = files.conf_value("max_attempts")
      max_attempts = v and parse_count(v, "max_attempts in " .. profile_where()) or DEFAULTS.max_attempts
    end
  end

  local ca_file, ca_source = o.ca_file, "option ca_file"
  if not ca_file then ca_file, ca_source = env("AWS_CA_BUNDLE"), "AWS_CA_BUNDLE" end
  if not ca_file then ca_file, ca_source = files.conf_value("ca_bundle"), "ca_bundle in " .. profile_where() end
  if ca_file then
    local home = env("HOME")
    if home and (ca_file == "~" or ca_file:sub(1, 2) == "~/") then ca_file = home .. ca_file:sub(2) end
    if ca_file:find("%z") then fail(string.format("the CA bundle path (from %s) contains a NUL byte", ca_source)) end
    local f, msg = io.open(ca_file, "rb")
    if f then
      local _, rmsg = f:read(0) -- a directory opens, but cannot be read (nil without a message: empty)
      f:close()
      if rmsg then f, msg = nil, rmsg end
    end
    if not f then
      fail(string.format("cannot read CA bundle %s (from %s): %s", ca_file, ca_source,
        (msg or "cannot open"):gsub("^.*: ", "")))
    end
  end

  local function pick(name)
    if o[name] ~= nil then return o[name] end
    return DEFAULTS[name]
  end

  -- debug: the options, else DDB_DEBUG
  local debug_env = (o.debug == nil or o.debug_body == nil) and env("DDB_DEBUG")
  local env_debug, env_body = false, false
  if debug_env then
    local v = debug_env:lower()
    if v == "1" or v == "true" then
      env_debug = true
    elseif v == "body" then
      env_debug, env_body = true, true
    elseif v ~= "0" and v ~= "false" then
      fail(string.format("DDB_DEBUG must be 1, true, body, 0 or false, got %s", errors.quote(debug_env, 20)))
    end
  end
  local debug, debug_body = o.debug, o.debug_body
  if debug == nil then debug = env_debug end
  if debug_body == nil then debug_body = env_body end

  return {
    endpoint = endpoint,
    streams_endpoint = streams_endpoint,
    region = region,
    credentials = creds,
    credentials_source = creds_source,
    profile = profile,
    timeout_ms = pick("timeout_ms"),
    connect_timeout_ms = pick("connect_timeout_ms"),
    max_attempts = max_attempts,
    ca_file = ca_file,
    retry_base_ms = pick("retry_base_ms"),
    retry_max_backoff_ms = pick("retry_max_backoff_ms"),
    debug = debug,
    debug_body = debug_body and debug ~= false,
    insecure_tls = pick("insecure_tls"),
  }
end

--- Resolves the client configuration.
-- @tparam[opt] table opts user options: `endpoint`, `fallback_endpoint`, `region`, `profile`,
--   `access_key_id`, `secret_access_key`, `session_token`, `timeout_ms`,
--   `connect_timeout_ms`, `max_attempts`, `ca_file`, `retry_base_ms`,
--   `retry_max_backoff_ms`, `debug` (boolean or function), `debug_body`,
--   `insecure_tls`. Unknown names and wrong types raise.
-- @tparam[opt] function getenv name -> string or nil (default `os.getenv`)
-- @tparam[opt] integer level where option errors point: 1 (default) the
--   caller of `resolve`, 2 its caller, ...
-- @treturn table `{ endpoint, streams_endpoint, region, credentials = {
--   access_key_id, secret_access_key, session_token }, credentials_source,
--   profile, timeout_ms, connect_timeout_ms, max_attempts, ca_file,
--   retry_base_ms, retry_max_backoff_ms, debug, debug_body, insecure_tls }`;
--   endpoints are
--   `parse_endpoint` results
-- @return[2] nil
-- @treturn[2] table ConfigError
function M.resolve(opts, getenv, level)
  local o = check_options(opts, level or 1)
  if getenv ~= nil and type(getenv) ~= "function" then
    error("ddb: getenv must be a function, got " .. type(getenv), 2)
  end
  getenv = getenv or os.getenv
  local function env(name)
    local v = getenv(name)
    if type(v) ~= "string" or v == "" then return nil end
    return v
  end
  local ok, res = pcall(do_resolve, o, env)
  if ok then return res end
  if errors.is(res) and res.code == "ConfigError" then return nil, res end
  error(res, 0)
end

return M

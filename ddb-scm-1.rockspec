rockspec_format = "3.0"
package = "ddb"
version = "scm-1"
source = { url = "git+file:///dev/null" }
description = {
  summary = "A fast, correct DynamoDB client for Lua 5.4 with a C core (SigV4, libcurl)",
  detailed = [[
ddb signs requests with AWS Signature V4 (OpenSSL), sends them over a
persistent libcurl connection, speaks the DynamoDB and DynamoDB Streams JSON
protocols with SDK-grade retries and errors, and carries the Cruddur
direct-messaging data layer on top.]],
  license = "MIT",
}
dependencies = { "lua >= 5.4" }
external_dependencies = {
  CURL = { library = "curl" },
  OPENSSL = { header = "openssl/evp.h" },
}
build = {
  type = "builtin",
  modules = {
    ["ddb.core"] = {
      sources = {
        "src/buf.c", "src/client.c", "src/http.c", "src/json.c", "src/module.c",
        "src/rewrite.c", "src/sigv4.c", "src/sigv4_lua.c", "src/transport.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl", "ssl", "crypto" },
      incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
    ["ddb"] = "lua/ddb/init.lua",
    ["ddb.client"] = "lua/ddb/client.lua",
    ["ddb.config"] = "lua/ddb/config.lua",
    ["ddb.errors"] = "lua/ddb/errors.lua",
    ["ddb.retry"] = "lua/ddb/retry.lua",
    ["ddb.limits"] = "lua/ddb/limits.lua",
    ["ddb.marshal"] = "lua/ddb/marshal.lua",
    ["ddb.ids"] = "lua/ddb/ids.lua",
    ["ddb.model"] = "lua/ddb/model.lua",
    ["ddb.schema"] = "lua/ddb/schema.lua",
    ["ddb.cli"] = "lua/ddb/cli.lua",
    ["ddb.messages"] = "lua/ddb/messages.lua",
    ["ddb.seed"] = "lua/ddb/seed.lua",
    ["ddb.stream"] = "lua/ddb/stream.lua",
    ["ddb.fixtures.users"] = "lua/ddb/fixtures/users.lua",
    ["ddb.fixtures.conversation"] = "lua/ddb/fixtures/conversation.lua",
  },
  install = {
    bin = {
      ["ddb-list-conversations"] = "bin/ddb/patterns/list-conversations",
      ["ddb-get-conversation"] = "bin/ddb/patterns/get-conversation",
      ["ddb-create-message"] = "bin/ddb/patterns/create-message",
      ["ddb-create-conversation"] = "bin/ddb/patterns/create-conversation",
      ["ddb-schema-load"] = "bin/ddb/schema-load",
      ["ddb-drop"] = "bin/ddb/drop",
      ["ddb-list-tables"] = "bin/ddb/list-tables",
      ["ddb-scan"] = "bin/ddb/scan",
      ["ddb-seed"] = "bin/ddb/seed",
      ["ddb-stream"] = "bin/ddb/stream",
    },
  },
}

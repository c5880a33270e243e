/* client.h: the ddb.core client userdata (one signed DynamoDB JSON call per
 * request()).
 *
 * Lua: core.client{ url=, host=, streams_url=, streams_host=, region=,
 *   access_key_id=, secret_access_key=, session_token=?, timeout_ms=,
 *   connect_timeout_ms=, ca_file=?, insecure=?, user_agent=?, debug=?,
 *   debug_body=? }
 * Options are read raw, so a metatable's __index is never consulted (give
 * every option in the table itself), and each only once: the string checked
 * is the string used. A string option must hold no NUL byte, and those that
 * go into a header line (host, streams_host, region, access_key_id,
 * session_token, user_agent) no CR or LF either; an option of the wrong type
 * or value raises.
 * core.client returns a client; c:request(target, params, streams) makes ONE
 * attempt (no retries: the Lua layer owns retry policy) and returns
 *   status, decoded_body_or_nil, request_id        an HTTP response with a
 *                                                   JSON (or empty) body
 *   status, raw_body_string, request_id             a non-2xx, non-JSON body
 *   nil, code, message[, status, request_id]        no usable response:
 *     code is Timeout, TransportError, InvalidResponse, CRC32CheckFailed,
 *     ResponseTooLarge, SerializationError (params not encodable) or
 *     ItemTooLarge (nothing sent: a PutItem, BatchWriteItem or
 *     TransactWriteItems body over 409,600 bytes that puts an item over
 *     DynamoDB's 400 KB; smaller bodies are not walked, since the JSON of an
 *     item is never shorter than its size).
 * core.item_size(item[, cap]) -> an item's size as DynamoDB counts it
 * (lua/ddb/limits.lua), counted until it passes cap; nil for a non-table.
 * The client keeps one libcurl handle (keep-alive), a cached signing key, a
 * SigV4 signer prepared per endpoint (ddb_sigv4_prep, sigv4.h: the same
 * Authorization as ddb_sigv4_sign, which signs where the prepared signer
 * refuses the values) and reusable buffers, so a warm call allocates little. Credentials are held in
 * C memory, cleansed on close, and never printed. While a request() runs,
 * the client cannot be used or closed (an error): a finalizer run by the
 * collector in the middle of a request would free what it reads.
 *
 * Secrets: the messages of the failures above, and c:redact(s) for messages
 * from elsewhere, have the secret key and the session token (when 8 bytes or
 * longer) replaced by "<redacted>". `insecure` (no TLS verification) is only
 * ever set by an explicit option of the Lua layer.
 *
 * Debug (debug = true, or a function): one line per request (method, URL,
 * X-Amz-Target, the headers as linked for libcurl, body size) and one per
 * response (status, request id, body size, elapsed ms; or the failure), to
 * stderr or to the function (called with the line, no newline; its errors
 * propagate; the client cannot be used or closed from inside it). Headers
 * named in SENSITIVE_HEADERS (Authorization, X-Amz-Security-Token) show
 * "<redacted>" as their value. debug_body = true adds the bodies (the first
 * 64 KiB of each, cut after redaction: a secret across the cut shows whole as
 * "<redacted>", and the cut comes after it). Control bytes are shown as
 * \xNN, and the secret key and token are redacted anywhere else in a line
 * too. */
#ifndef DDB_CLIENT_H
#define DDB_CLIENT_H

#include <lua.h>

#define DDB_CLIENT_MT "ddb.core.client"

#endif

/* client.h: the ddb.core client userdata (one signed DynamoDB JSON call per
 * request()).
 *
 * Lua: core.client{ url=, host=, streams_url=, streams_host=, region=,
 *   access_key_id=, secret_access_key=, session_token=?, timeout_ms=,
 *   connect_timeout_ms=, ca_file=?, insecure=?, user_agent=?, debug=? }
 * returns a client; c:request(target, params, streams) makes ONE attempt
 * (no retries: the Lua layer owns retry policy) and returns
 *   status, decoded_body_or_nil, request_id        an HTTP response with a
 *                                                   JSON (or empty) body
 *   status, raw_body_string, request_id             a non-2xx, non-JSON body
 *   nil, code, message[, status, request_id]        no usable response:
 *     code is Timeout, TransportError, InvalidResponse, CRC32CheckFailed,
 *     ResponseTooLarge or SerializationError (params not encodable).
 * The client keeps one libcurl handle (keep-alive), a cached signing key and
 * reusable buffers, so a warm call allocates little. Credentials are held in
 * C memory, cleansed on close, and never printed (debug output redacts). */
#ifndef DDB_CLIENT_H
#define DDB_CLIENT_H

#include <lua.h>

#define DDB_CLIENT_MT "ddb.core.client"

#endif

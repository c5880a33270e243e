/* rewrite.h: the stream rewrite engine (messaging pattern D) of ddb.core.
 *
 * Lua: core.rewrite(client, records[, opts]) -> summary
 *   client   a table (or userdata) with client:call(op, params) -> response
 *            | nil, err (lua/ddb/client.lua): every request goes through it,
 *            so retries, signing and error values stay in one place.
 *   records  array of DynamoDB stream records (a Lambda event's Records or a
 *            GetRecords response's Records, decoded JSON), read raw.
 *   opts     nil or { table = "cruddur-messages", index =
 *            "message-group-sk-index", max_rounds = 5, inject = fn? }.
 * Only INSERTs of well-formed MSG#<uuid> items act (sk a real ddb.ids
 * timestamp, message valid UTF-8 of at most 1024 characters, as the API
 * writes them); any other or malformed record is a counted skip. Per message
 * group the newest message of the batch (sk T) wins. Its rows are read from
 * the GSI (every page); as the GSI is eventually consistent, every
 * participant it shows no row of (participants: the owners of the rows
 * seen, the users those rows name in user_uuid, and the sender, the
 * message's user_uuid) is read consistently from the base table (Query pk =
 * GRP#owner filtered on message_group_uuid, every page), so the usual case,
 * both rows in the GSI, costs one Query. A participant without a row even
 * then fails the group (GroupRowMissing, nothing written; retried with the
 * record); a group without any row found is a skip (nothing to move). Each
 * owner's newest group row older than T moves there with one
 * TransactWriteItems (per row a Delete on condition that its slot still
 * holds a row of this group, message_group_uuid = :g, so a stale read never
 * deletes another group's row, and a Put on condition attribute_not_exists;
 * up to DDB_REWRITE_ROWS_PER_TX rows, deterministic ClientRequestToken over
 * the actual target sks); a row never moves back. A transaction lost to a
 * race (a condition failed, a conflict) means a consistent re-read and a new
 * decision, at most max_rounds times (then RewriteContention); any other
 * error fails the group. Nothing else is retried. A Query whose
 * LastEvaluatedKey is the ExclusiveStartKey it was sent, or that still has
 * one after DDB_REWRITE_MAX_PAGES pages, fails the group (InvalidResponse).
 * Bump: an owner has one row per sk, whatever the group. When a Put fails its
 * condition, a consistent GetItem of its slot (GRP#owner, target) tells who
 * holds it: our group's row (another processor moved it) or nothing any more
 * is a race as above; a row of ANOTHER group is never overwritten: that
 * owner's target steps to target + 1 us (timestamps
 * YYYY-MM-DDTHH:MM:SS.ffffff+00:00, carried through days, months, leap years
 * and years) and the transaction is sent again, at most DDB_REWRITE_MAX_BUMPS
 * steps per owner and group (steps are kept across re-reads). So an owner's
 * row may end a few us after T, and the participants of one transaction at
 * different sks; "never back" still holds (a replay targets T <= the row's
 * sk). SortKeyTaken fails the group, overwriting nothing, when an owner's
 * steps run out or would pass the year 9999.
 * summary = { processed, moved, applied, skipped, failed,
 *             batchItemFailures = {{itemIdentifier=}} | [], errors = {...} }
 * with errors as the client returned them, or plain {code, message, group}
 * tables made here. Raises only for arguments of the wrong type, or when
 * client:call or inject raises (no C memory is held across those calls). */
#ifndef DDB_REWRITE_H
#define DDB_REWRITE_H

#include "module.h" /* ddb_open_rewrite(L) adds `rewrite` to the module table */

#define DDB_REWRITE_TABLE "cruddur-messages"
#define DDB_REWRITE_INDEX "message-group-sk-index"
#define DDB_REWRITE_MAX_ROUNDS 5
#define DDB_REWRITE_MAX_BUMPS 16   /* 1 us steps per owner past a taken sk */
#define DDB_REWRITE_ROWS_PER_TX 50 /* TransactWriteItems takes 100 actions, 2 per row */
#define DDB_REWRITE_MAX_PAGES 10000 /* pages of one Query before it is given up */

#endif

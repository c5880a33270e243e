#!/usr/bin/env bash
# The Cruddur messaging demo, with the bin/ddb utilities, against
# AWS_ENDPOINT_URL (or http://localhost:8000). `make demo` runs it on a
# moto server of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
d=bin/ddb p=bin/ddb/patterns
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi # no escapes in a log
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
err=$(mktemp -t ddb-demo.XXXXXX)
ckpt=$(mktemp -d -t ddb-demo-stream.XXXXXX) # the stream processor's checkpoint
trap 'rm -rf "$err" "$ckpt"' EXIT
echo "DynamoDB endpoint: ${AWS_ENDPOINT_URL:-http://localhost:8000}"

step "create the table (GSI message-group-sk-index, stream)"
if ! $d/schema-load 2>"$err"; then
  grep -q "already exists" "$err" || { cat "$err" >&2; exit 1; }
  echo "(the table is already there)"
fi
step "seed two users and one long conversation"
$d/seed
step "orlaquill's conversations (pattern B)"
$p/list-conversations --user orlaquill
group=$($p/list-conversations --user orlaquill --json | lua5.4 -e '
  for o in io.read("a"):gmatch("{[^{}]*}") do -- the conversation with bramkettle
    if o:find([["handle":"bramkettle"]], 1, true) then print((o:match([["uuid":"([%x-]+)"]]))) end
  end')
step "the last lines of the conversation (pattern A)"
$p/get-conversation --user orlaquill --group "$group" --limit 5
step "orlaquill starts a second conversation, with noorhal (pattern C)"
$p/create-conversation --user orlaquill --to noorhal "Hi Noor, are you coming on Friday?"
step "the stream processor reads the stream from its start (pattern D): nothing to move yet"
$d/stream --once --checkpoint-dir "$ckpt"
step "orlaquill's conversations: the new one is on top"
$p/list-conversations --user orlaquill
step "bramkettle replies in the first conversation (pattern C)"
$p/create-message --user bramkettle --group "$group" "Demo reply, sent at $(date -u +%H:%M:%S) UTC."
$p/get-conversation --user orlaquill --group "$group" --limit 3
step "the stream processor moves both participants' rows of that conversation to the reply (pattern D)"
$d/stream --once --checkpoint-dir "$ckpt"
step "the first conversation is back on top for orlaquill, with the reply as its last message"
$p/list-conversations --user orlaquill
step "and for bramkettle"
$p/list-conversations --user bramkettle
step "noorhal is not in the first conversation: reading it is refused"
if $p/get-conversation --user noorhal --group "$group" --limit 3; then echo "unexpected: allowed" >&2; exit 1; fi

#!/usr/bin/env bash
# The Cruddur messaging demo, with the bin/ddb utilities, against
# AWS_ENDPOINT_URL (or http://localhost:8000). `make demo` runs it on a
# moto server of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
d=bin/ddb p=bin/ddb/patterns
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
err=$(mktemp -t ddb-demo.XXXXXX)
trap 'rm -f "$err"' EXIT
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
group=$($p/list-conversations --user orlaquill --json | lua5.4 -e 'print((io.read("a"):match([["uuid":"([%x-]+)"]])))')
step "the last lines of the conversation (pattern A)"
$p/get-conversation --user orlaquill --group "$group" --limit 5
step "bramkettle replies (pattern C)"
$p/create-message --user bramkettle --group "$group" "Demo time: this message was written by make demo at $(date -u +%H:%M:%S) UTC."
$p/get-conversation --user orlaquill --group "$group" --limit 3
step "noorhal is not in this conversation: reading it is refused"
if $p/get-conversation --user noorhal --group "$group" --limit 3; then echo "unexpected: allowed" >&2; exit 1; fi

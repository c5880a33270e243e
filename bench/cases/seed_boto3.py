"""The bootcamp's way of seeding the conversation: one boto3 put_item per row.

    seed_boto3.py ENDPOINT FIXTURE_JSON [TABLE]

As the bootcamp's bin/ddb/seed did it: a put_item for each participant's
group row, then one put_item per message line (times one minute apart,
starting a day ago), with the same rows ddb.seed writes (ddb.model). The
fixture is fixtures/users.lua + fixtures/conversation.lua, dumped as JSON by
bench/cases/fixture_json.lua. Prints the number of rows written.
"""
import json
import sys
import uuid
from datetime import datetime, timedelta, timezone

import boto3


def main():
    endpoint, fixture = sys.argv[1], sys.argv[2]
    table = sys.argv[3] if len(sys.argv) > 3 else "cruddur-messages"
    with open(fixture, encoding="utf-8") as f:
        data = json.load(f)
    users = {u["handle"]: u for u in data["users"]}
    conv = data["conversation"]
    group = conv["message_group_uuid"]
    a, b = (users[h] for h in conv["participants"])
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    start = datetime.now(timezone.utc) - timedelta(days=1)
    lines = conv["lines"]

    def ts(i):
        return (start + timedelta(minutes=i)).isoformat(timespec="microseconds")

    last = ts(len(lines) - 1)
    written = 0
    for owner, other in ((a, b), (b, a)):
        client.put_item(TableName=table, Item={
            "pk": {"S": f"GRP#{owner['uuid']}"}, "sk": {"S": last},
            "message_group_uuid": {"S": group}, "message": {"S": lines[-1]["text"]},
            "user_uuid": {"S": other["uuid"]}, "user_display_name": {"S": other["display_name"]},
            "user_handle": {"S": other["handle"]},
        })
        written += 1
    for i, line in enumerate(lines):
        sender = users[line["handle"]]
        client.put_item(TableName=table, Item={
            "pk": {"S": f"MSG#{group}"}, "sk": {"S": ts(i)},
            "message_uuid": {"S": str(uuid.uuid4())}, "message": {"S": line["text"]},
            "user_uuid": {"S": sender["uuid"]}, "user_display_name": {"S": sender["display_name"]},
            "user_handle": {"S": sender["handle"]},
        })
        written += 1
    print(written)


if __name__ == "__main__":
    main()

"""The bootcamp's stream handler logic in boto3, for the rewrite benchmark.

    stream_boto3.py ENDPOINT EVENT_JSON

The bootcamp Lambda (cruddur-messaging-stream) with one change: it looks at
every record instead of Records[0] only. Per INSERT of a MSG# item: query the
GSI for the message group, then for each group row delete_item it and
put_item a copy with the message's sk and text (boto3's resource API, as the
bootcamp wrote it). Makes the client and one warm-up call (list_tables), then
times the handler over the event and prints {"records":N,"cpu_s":...,
"wall_s":...,"moved":...}.
"""
import json
import sys
import time

import boto3
from boto3.dynamodb.conditions import Key


def handle(table, record):
    """The bootcamp handler's body, for one record; returns rows moved."""
    if record.get("eventName") != "INSERT":  # the bootcamp skipped REMOVE
        return 0
    pk = record["dynamodb"]["Keys"]["pk"]["S"]
    sk = record["dynamodb"]["Keys"]["sk"]["S"]
    if not pk.startswith("MSG#"):
        return 0
    group_uuid = pk.replace("MSG#", "")
    message = record["dynamodb"]["NewImage"]["message"]["S"]
    data = table.query(IndexName="message-group-sk-index",
                       KeyConditionExpression=Key("message_group_uuid").eq(group_uuid))
    moved = 0
    for i in data["Items"]:
        table.delete_item(Key={"pk": i["pk"], "sk": i["sk"]})
        table.put_item(Item={
            "pk": i["pk"], "sk": sk, "message_group_uuid": i["message_group_uuid"], "message": message,
            "user_display_name": i["user_display_name"], "user_handle": i["user_handle"],
            "user_uuid": i["user_uuid"],
        })
        moved += 1
    return moved


def main():
    endpoint, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        event = json.load(f)
    resource = boto3.resource("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="AKIDBENCHMARK0000000",
                              aws_secret_access_key="benchmark/secret/key/0000000000000000000")
    resource.meta.client.list_tables()
    table = resource.Table("cruddur-messages")
    c0, w0 = time.process_time(), time.perf_counter()
    moved = sum(handle(table, r) for r in event["Records"])
    c1, w1 = time.process_time(), time.perf_counter()
    print(json.dumps({"records": len(event["Records"]), "cpu_s": c1 - c0, "wall_s": w1 - w0, "moved": moved}))


if __name__ == "__main__":
    main()

"""The boto3 side of the per-call benchmark (run with bench/.venv/bin/python).

    boto3_loop.py ENDPOINT OP PARAMS_JSON N [WARMUP]

Creates one DynamoDB client (endpoint_url = the null endpoint, placeholder
credentials, standard retries), makes WARMUP calls (default 20), then N timed
calls of client.<op>(**params) and prints one JSON line
{"n":N,"cpu_s":...,"wall_s":...}: process CPU time (user+sys) and wall
time of the N calls. PARAMS_JSON is written by `ddb_loop.lua dump`, so both
clients send the same request.
"""
import json
import sys
import time

import boto3
from botocore import xform_name
from botocore.config import Config


def main():
    endpoint, op, params_file, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    warmup = int(sys.argv[5]) if len(sys.argv) > 5 else 20
    with open(params_file, encoding="utf-8") as f:
        params = json.load(f)
    session = boto3.session.Session(aws_access_key_id="AKIDBENCHMARK0000000",
                                    aws_secret_access_key="benchmark/secret/key/0000000000000000000",
                                    region_name="us-east-1")
    client = session.client("dynamodb", endpoint_url=endpoint,
                            config=Config(retries={"mode": "standard", "max_attempts": 3}))
    call = getattr(client, xform_name(op))
    for i in range(warmup):
        res = call(**params)
        if i == 0 and op == "Query" and (res["Count"] != 20 or len(res["Items"]) != 20):
            sys.exit(f"boto3_loop: unexpected Query response {res!r}")
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        call(**params)
    c1, w1 = time.process_time(), time.perf_counter()
    print(json.dumps({"n": n, "cpu_s": c1 - c0, "wall_s": w1 - w0}))


if __name__ == "__main__":
    main()

"""`aws dynamodb list-tables` as a Python boto3 script: the utilities
benchmark's comparison for bin/ddb/list-tables.

    list_tables_boto3.py ENDPOINT

Prints the table names, one per line, following LastEvaluatedTableName.
Credentials and region come from the environment, as for the AWS CLI.
"""
import sys

import boto3


def main():
    client = boto3.client("dynamodb", endpoint_url=sys.argv[1])
    for page in client.get_paginator("list_tables").paginate():
        for name in page["TableNames"]:
            print(name)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The deployed stack, for the Makefile: its outputs, its items, and emptying its bucket.

    stack.py outputs STACK        print the outputs and the curl line
    stack.py output STACK KEY     print one output's value (nothing if the stack is gone)
    stack.py items STACK [STATUS] the deployed API's GET /items, newest first, every page (index
                                  queries, never a scan), one JSON item per line; STATUS: uploaded,
                                  processed, notified, failed, pending or stalled
    stack.py export STACK         the whole table by a consistent Scan, one JSON item per line (a
                                  full export: reads, and pays for, every item)
    stack.py stalled STACK        the items marked stalled (records given up on), newest first, by
                                  a Query on the ByStalled index
    stack.py redrive STACK        clear every stall mark: each item's change goes through the stream,
                                  and the filters offer it to the function that gave up on it again
    stack.py empty-bucket STACK   delete every object in the stack's bucket (CloudFormation cannot
                                  delete a bucket that holds objects)

Uses boto3 from the SAM CLI's venv, with the usual AWS_* credentials, profile and region.
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError


def outputs(stack):
    try:
        desc = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as e:
        if "does not exist" in str(e):
            return {}
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "as_integer_ratio") and not isinstance(value, (int, float)):  # Decimal
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def stalled(table):
    """Items marked stalled, newest first: a Query on the sparse ByStalled index, never a Scan."""
    deser = TypeDeserializer()
    pages = boto3.client("dynamodb").get_paginator("query").paginate(
        TableName=table,
        IndexName="ByStalled",
        KeyConditionExpression="stalled_pk = :s",
        ExpressionAttributeValues={":s": {"S": "stalled"}},
        ScanIndexForward=False,
    )
    for page in pages:
        for item in page["Items"]:
            yield plain({k: deser.deserialize(v) for k, v in item.items()})


def redrive(table):
    """Clears each stall mark, as `uploader redrive` does locally: a conditional UpdateItem, so an
    item that moved on meanwhile is left alone."""
    client = boto3.client("dynamodb")
    cleared = 0
    for item in list(stalled(table)):
        try:
            client.update_item(
                TableName=table,
                Key={"id": {"S": item["id"]}},
                UpdateExpression="REMOVE stalled_at, stalled_by, stalled_reason, stalled_pk",
                ConditionExpression="attribute_exists(stalled_at)",
            )
        except ClientError as e:
            if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            continue
        cleared += 1
        print(json.dumps({"redriven": item["id"], "status": item.get("status"),
                          "stalled_by": item.get("stalled_by"), "reason": item.get("stalled_reason")}))
    print(f"{cleared} item(s) offered again to their functions", file=sys.stderr)


def api_items(out, status):
    """Every item GET /items lists (with `status`, those at it), following the cursors."""
    url = out.get("ItemsUrl") or sys.exit("the stack has no ItemsUrl output")
    key = boto3.client("apigateway").get_api_key(apiKey=out["ApiKeyId"], includeValue=True)["value"]
    cursor = None
    while True:
        params = {"limit": "100"}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        req = urllib.request.Request(f"{url}?{urllib.parse.urlencode(params)}", headers={"x-api-key": key})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                page = json.load(resp)
        except urllib.error.HTTPError as e:
            sys.exit(f"GET /items: {e.code} {e.read().decode(errors='replace')}")
        for item in page["items"]:
            yield item
        cursor = page.get("next")
        if not cursor:
            return


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    cmd, stack = argv[1], argv[2]
    out = outputs(stack)
    if cmd == "output":
        print(out.get(argv[3], ""))
    elif cmd == "outputs":
        if not out:
            sys.exit(f"stack {stack} not found")
        for key in sorted(out):
            if key != "CurlCommand":
                print(f"{key:18} {out[key]}")
        key_id = out.get("ApiKeyId", "<ApiKeyId>")
        print("\nThe API needs its key (x-api-key header). Read it once:")
        print(f"  export API_KEY=$(aws apigateway get-api-key --api-key {key_id} --include-value --query value --output text)")
        print("\nUpload an image:\n  " + out["CurlCommand"])
        if "PageUrl" in out:
            print(f"\nOr open {out['PageUrl']} in a browser: it asks for that key once.")
        print("\nConfirm the SNS subscription emails (notices, and alarms) first, or nothing arrives.")
    elif cmd == "items":
        if not out:
            sys.exit(f"stack {stack} not found")
        for item in api_items(out, argv[3] if len(argv) > 3 else ""):
            print(json.dumps(item, sort_keys=True))
    elif cmd == "export":
        table = out.get("TableName") or sys.exit(f"stack {stack} not found")
        deser = TypeDeserializer()
        for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page["Items"]:
                print(json.dumps(plain({k: deser.deserialize(v) for k, v in item.items()}), sort_keys=True))
    elif cmd in ("stalled", "redrive"):
        # TABLE_NAME skips the stack lookup (a table of your own, or DynamoDB Local).
        table = os.environ.get("TABLE_NAME") or out.get("TableName") or sys.exit(f"stack {stack} not found")
        if cmd == "stalled":
            for item in stalled(table):
                print(json.dumps(item, sort_keys=True))
        else:
            redrive(table)
    elif cmd == "empty-bucket":
        bucket = out.get("BucketName")
        if not bucket:
            return
        objects = boto3.resource("s3").Bucket(bucket).objects.all()
        deleted = sum(len(r.get("Deleted", [])) for r in objects.delete())
        print(f"emptied s3://{bucket} ({deleted} objects)")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

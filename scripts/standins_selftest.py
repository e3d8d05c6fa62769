#!/usr/bin/env python3
"""Self-test of the DynamoDB Streams path on each stand-in (used by `scripts/standins.sh selftest`).

Usage: standins_selftest.py NAME=ENDPOINT ...   (run with .tools/moto/bin/python, which has boto3)

For each endpoint: CreateTable (NEW_AND_OLD_IMAGES stream), conditional PutItem, conditional UpdateItem
(uploaded -> processed), then read the stream with the dynamodbstreams client and expect INSERT then MODIFY
with the right images; a second conditional update must fail. The scratch table is always deleted.
Prints one line per endpoint; exits non-zero on the first failure.
"""
import sys
import time
import uuid

import boto3
from botocore.config import Config

CFG = Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=10)


def check(name, endpoint):
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, config=CFG)
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, config=CFG)
    table = f"selftest-{uuid.uuid4().hex[:12]}"
    t0 = time.monotonic()
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    try:
        ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
        stream_arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        ddb.put_item(TableName=table, Item={"id": {"S": "a"}, "status": {"S": "uploaded"}},
                     ConditionExpression="attribute_not_exists(id)")
        upd = dict(TableName=table, Key={"id": {"S": "a"}}, UpdateExpression="SET #s = :to",
                   ConditionExpression="#s = :from", ExpressionAttributeNames={"#s": "status"},
                   ExpressionAttributeValues={":from": {"S": "uploaded"}, ":to": {"S": "processed"}})
        ddb.update_item(**upd)
        try:
            ddb.update_item(**upd)
            raise AssertionError("repeated conditional update did not fail")
        except ddb.exceptions.ConditionalCheckFailedException:
            pass

        shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        assert shards, "stream has no shards"
        records = []
        deadline = time.monotonic() + 10
        for shard in shards:
            it = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"],
                                            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while it and len(records) < 2 and time.monotonic() < deadline:
                out = streams.get_records(ShardIterator=it, Limit=100)
                records += out["Records"]
                it = out.get("NextShardIterator")
                if not out["Records"]:
                    time.sleep(0.1)
        kinds = [r["eventName"] for r in records]
        assert kinds == ["INSERT", "MODIFY"], f"expected INSERT, MODIFY; got {kinds}"
        ins, mod = records[0]["dynamodb"], records[1]["dynamodb"]
        assert ins["NewImage"]["status"] == {"S": "uploaded"} and "OldImage" not in ins, ins
        assert mod["OldImage"]["status"] == {"S": "uploaded"}, mod
        assert mod["NewImage"]["status"] == {"S": "processed"}, mod
        assert mod["StreamViewType"] == "NEW_AND_OLD_IMAGES", mod
    finally:
        ddb.delete_table(TableName=table)
    return time.monotonic() - t0, stream_arn


def main(argv):
    if not argv:
        sys.exit(__doc__)
    for spec in argv:
        name, _, endpoint = spec.partition("=")
        try:
            secs, arn = check(name, endpoint)
        except Exception as e:  # noqa: BLE001 - report any failure with its message
            print(f"FAIL {name} ({endpoint}): streams self-test: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"ok   {name} ({endpoint}): INSERT+MODIFY read from {arn.split('/stream/')[0]}/stream ({secs:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

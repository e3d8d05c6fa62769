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
    stack.py cdn-key STACK        the key that signs the stack's rendition URLs: the secret
                                  STACK/cdn-signing-key, made on first use (a 2048-bit RSA key, made
                                  here in memory, never written to disk), and printed as the template
                                  parameter CdnPublicKey=<fingerprint>:<its public PEM's lines, joined
                                  by commas>
    stack.py delete-cdn-key STACK schedule that secret's deletion (7 days; cdn-key takes it back)

Uses boto3 (and, for cdn-key, cryptography) from the SAM CLI's venv, with the usual AWS_*
credentials, profile and region.
"""
import base64
import hashlib
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


def cdn_key_name(stack):
    return f"{stack}/cdn-signing-key"  # template.yaml: UploadRole, CDN_SIGNING_KEY_SECRET


def cdn_key(stack):
    """The CdnPublicKey parameter for the stack's signing key, making the key if there is none."""
    # `cryptography` comes with the SAM CLI (through pyOpenSSL).
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    client = boto3.client("secretsmanager")
    name = cdn_key_name(stack)
    try:
        if client.describe_secret(SecretId=name).get("DeletedDate"):
            client.restore_secret(SecretId=name)  # make undeploy scheduled it; the stack is back
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        client.create_secret(Name=name, SecretString=pem,
                             Description=f"Signs the rendition URLs of stack {stack} (CloudFront key group)")
        print(f"made the rendition signing key: secret {name}", file=sys.stderr)
    pem = client.get_secret_value(SecretId=name)["SecretString"]
    public = serialization.load_pem_private_key(pem.encode(), password=None).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    lines = [line for line in public.splitlines() if line and not line.startswith("-----")]
    fingerprint = hashlib.sha256(base64.b64decode("".join(lines))).hexdigest()[:16]
    return f"CdnPublicKey={fingerprint}:" + ",".join(lines)


def delete_cdn_key(stack):
    try:
        boto3.client("secretsmanager").delete_secret(SecretId=cdn_key_name(stack), RecoveryWindowInDays=7)
        print(f"scheduled the deletion of secret {cdn_key_name(stack)} (7 days)", file=sys.stderr)
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceNotFoundException":
            raise


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
    if cmd == "cdn-key":
        return print(cdn_key(stack))
    if cmd == "delete-cdn-key":
        return delete_cdn_key(stack)
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

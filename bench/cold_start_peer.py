"""The peer of bench/cold_start.py: what a Python Lambda function of this pipeline does before its
first event. It imports boto3, builds the DynamoDB, S3 and SNS clients from the Lambda environment,
then polls the Runtime API for events, as the Rust bootstraps do. The harness never sends one: it
takes its measurements at the first poll and kills the process."""

import http.client
import os

import boto3

dynamodb = boto3.client("dynamodb")
s3 = boto3.client("s3")
sns = boto3.client("sns")

host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].partition(":")
runtime = http.client.HTTPConnection(host, int(port))
while True:
    runtime.request("GET", "/2018-06-01/runtime/invocation/next")
    event = runtime.getresponse()
    request_id = event.getheader("Lambda-Runtime-Aws-Request-Id")
    event.read()
    runtime.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body=b"{}")
    runtime.getresponse().read()

#!/usr/bin/env bash
# make run-dynamodb: the whole pipeline on this machine, its table on DynamoDB Local and its
# bucket, topic and queues on moto, so the items can be inspected with the AWS CLI as on AWS.
#
# Starts the stand-ins as `make test` does (scripts/standins.sh), runs `uploader serve --backend aws
# --provision` on them (the table made as template.yaml declares it, the bucket, a topic and the
# queues that stand in for S3's and SNS's deliveries), prints the aws CLI lines to paste, and on
# Ctrl-C stops the engine and the stand-ins it started (stand-ins already running are left so).
#
#   UPLOADER=target/local/uploader ADDR=127.0.0.1:3000 DATA_DIR=.data/dynamodb scripts/run-dynamodb.sh
# TABLE and BUCKET name the table and the bucket (default: images).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
UPLOADER=${UPLOADER:?UPLOADER must name the built uploader (make run-dynamodb builds it)}
ADDR=${ADDR:-127.0.0.1:3000}
DATA_DIR=${DATA_DIR:-.data/dynamodb}
TABLE=${TABLE:-images}
BUCKET=${BUCKET:-images}
AWS_CLI="$ROOT/.tools/awscli/bin/aws"

running() { scripts/standins.sh status | grep -q "^$1: pid"; }
started=false
if ! running moto || ! running ddb; then
  started=true
fi
engine=
stop() {
  trap - EXIT INT TERM
  if [[ -n "$engine" ]] && kill -0 "$engine" 2>/dev/null; then
    kill -TERM "$engine" 2>/dev/null || true
    wait "$engine" 2>/dev/null || true
  fi
  if $started; then
    echo "stopping DynamoDB Local and moto" >&2
    scripts/standins.sh stop
  fi
}
trap stop EXIT
trap 'exit 130' INT TERM

scripts/standins.sh start
eval "$(scripts/standins.sh env)"
export AWS_ENDPOINT_URL_DYNAMODB=$DYNAMODB_LOCAL_ENDPOINT
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS=$DYNAMODB_LOCAL_ENDPOINT
export AWS_ENDPOINT_URL_S3=$MOTO_ENDPOINT AWS_ENDPOINT_URL_SNS=$MOTO_ENDPOINT AWS_ENDPOINT_URL_SQS=$MOTO_ENDPOINT
# Fresh stand-ins keep nothing (DynamoDB Local runs in memory): the mappings' checkpoints and the
# stream mirror start over with them.
if $started; then
  rm -rf "$DATA_DIR"
fi

"$UPLOADER" serve --data-dir "$DATA_DIR" --addr "$ADDR" --backend aws --provision \
  --table "$TABLE" --bucket "$BUCKET" --s3-path-style &
engine=$!
until curl -fsS --noproxy '*' -o /dev/null "http://$ADDR/metrics" 2>/dev/null; do
  kill -0 "$engine" 2>/dev/null || { wait "$engine" || true; echo "run-dynamodb: the engine did not start" >&2; exit 1; }
  sleep 0.2
done

creds="AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=$AWS_REGION"
mail=$(env $creds "$AWS_CLI" sqs get-queue-url --queue-name "$TABLE-mail" --endpoint-url "$MOTO_ENDPOINT" \
  --query QueueUrl --output text)
cat <<LINES

The table is on DynamoDB Local, the bucket and topic on moto. Inspect them as on AWS:
  $creds $AWS_CLI dynamodb scan --table-name $TABLE --endpoint-url $DYNAMODB_LOCAL_ENDPOINT
  $creds $AWS_CLI s3 ls s3://$BUCKET --recursive --endpoint-url $MOTO_ENDPOINT
The topic's notices (an SQS queue stands in for the email subscription):
  $creds $AWS_CLI sqs receive-message --queue-url $mail --max-number-of-messages 10 --endpoint-url $MOTO_ENDPOINT
Ctrl-C stops the engine$($started && echo " and the stand-ins").

LINES
wait "$engine"

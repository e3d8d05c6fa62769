#!/usr/bin/env bash
# Local AWS stand-ins for tests: moto server (DynamoDB, Streams, S3, SNS, SQS) and DynamoDB Local
# (Amazon's jar, in memory, -sharedDb; higher-fidelity DynamoDB + Streams). No Docker, no AWS account.
#
#   scripts/standins.sh start     install if needed (scripts/tools.sh moto ddb), start both on free
#                                 127.0.0.1 ports, wait until each answers; reuses running ones
#   scripts/standins.sh env       print `export` lines for a Makefile recipe:  eval "$(scripts/standins.sh env)"
#   scripts/standins.sh selftest  prove the Streams path on both (CreateTable NEW_AND_OLD_IMAGES, PutItem,
#                                 UpdateItem, read INSERT+MODIFY via dynamodbstreams; scratch table deleted)
#   scripts/standins.sh status    show pids/ports
#   scripts/standins.sh stop      stop both (safe to call twice)
#
# No global AWS_ENDPOINT_URL is exported: tests pick MOTO_ENDPOINT or DYNAMODB_LOCAL_ENDPOINT per service.
# State lives in .tools/run/ ({moto,ddb}.{pid,port,log}). STANDINS_TIMEOUT (seconds, default 30).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
RUN="$TOOLS/run"
TIMEOUT=${STANDINS_TIMEOUT:-30}

die() { echo "standins.sh: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# alive NAME: the recorded pid runs and is the process we started (guards against pid reuse).
alive() {
  local name=$1 pid
  [[ -f "$RUN/$name.pid" ]] || return 1
  pid=$(cat "$RUN/$name.pid")
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  case $name in
    moto) grep -qa moto_server "/proc/$pid/cmdline" 2>/dev/null ;;
    ddb) grep -qa DynamoDBLocal.jar "/proc/$pid/cmdline" 2>/dev/null ;;
  esac
}

# answers NAME PORT: one HTTP probe.
answers() {
  local name=$1 port=$2
  case $name in
    moto) curl -fsS --noproxy '*' -m 2 -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null ;;
    # DynamoDB Local answers an unsigned GET with HTTP 400 (MissingAuthenticationToken): any HTTP code is up.
    ddb) local code
         code=$(curl -sS --noproxy '*' -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" 2>/dev/null) || true
         [[ "$code" =~ ^[1-5][0-9][0-9]$ ]] ;;
  esac
}

wait_ready() {
  local name=$1 port=$2 deadline=$((SECONDS + TIMEOUT))
  until answers "$name" "$port"; do
    if ! alive "$name"; then
      tail -n 30 "$RUN/$name.log" >&2 || true
      rm -f "$RUN/$name.pid" "$RUN/$name.port"
      die "$name exited during startup (log: $RUN/$name.log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$RUN/$name.log" >&2 || true
      stop_one "$name"
      die "$name did not answer on 127.0.0.1:$port within ${TIMEOUT}s (log: $RUN/$name.log)"
    fi
    sleep 0.1
  done
}

start_one() {
  local name=$1 port pid jar
  if alive "$name" && answers "$name" "$(cat "$RUN/$name.port")"; then
    return 0
  fi
  stop_one "$name"
  port=$(free_port)
  case $name in
    moto)
      nohup "$TOOLS/moto/bin/moto_server" -H 127.0.0.1 -p "$port" >"$RUN/moto.log" 2>&1 </dev/null {lockfd}>&- &
      pid=$! ;;
    ddb)
      jar=$("$ROOT/scripts/tools.sh" ddb-jar)
      # DynamoDB Local has no bind-address option: it listens on all interfaces; we only ever use 127.0.0.1.
      (exec {lockfd}>&- && cd "$(dirname "$jar")" &&
        exec nohup java -Xms64m -Xmx512m -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
          -inMemory -sharedDb -disableTelemetry -port "$port" >"$RUN/ddb.log" 2>&1 </dev/null) &
      pid=$! ;;
  esac
  echo "$pid" >"$RUN/$name.pid"
  echo "$port" >"$RUN/$name.port"
  wait_ready "$name" "$port"
}

stop_one() {
  local name=$1 pid i
  if alive "$name"; then
    pid=$(cat "$RUN/$name.pid")
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid" "$RUN/$name.port"
}

port_of() {
  alive "$1" && [[ -s "$RUN/$1.port" ]] || die "$1 is not running: run scripts/standins.sh start"
  cat "$RUN/$1.port"
}

cmd=${1:-}
case "$cmd" in
  start)
    "$ROOT/scripts/tools.sh" moto ddb
    mkdir -p "$RUN"
    exec {lockfd}>"$RUN/.lock"
    flock "$lockfd"
    start_one moto
    start_one ddb
    ;;
  stop)
    mkdir -p "$RUN"
    stop_one moto
    stop_one ddb
    ;;
  env)
    moto_port=$(port_of moto)
    ddb_port=$(port_of ddb)
    cat <<EOF
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export MOTO_ENDPOINT=http://127.0.0.1:$moto_port
export DYNAMODB_LOCAL_ENDPOINT=http://127.0.0.1:$ddb_port
EOF
    ;;
  status)
    for n in moto ddb; do
      if alive "$n"; then echo "$n: pid $(cat "$RUN/$n.pid"), http://127.0.0.1:$(cat "$RUN/$n.port")"
      else echo "$n: stopped"; fi
    done
    ;;
  selftest)
    moto_port=$(port_of moto)
    ddb_port=$(port_of ddb)
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
      AWS_EC2_METADATA_DISABLED=true NO_PROXY='*' no_proxy='*' \
      "$TOOLS/moto/bin/python" "$ROOT/scripts/standins_selftest.py" \
      "dynamodb-local=http://127.0.0.1:$ddb_port" "moto=http://127.0.0.1:$moto_port"
    ;;
  *) die "usage: $0 start|stop|env|status|selftest" ;;
esac

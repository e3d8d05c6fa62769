#!/usr/bin/env bash
# Load on the running engine over HTTP (make bench-load): tiny images (engine overhead) and a real
# photo, on disk and on tmpfs, plus SQLite's own commit rate in the same place. Everything runs on
# this machine: the load generator shares the cores with the engine. Prints a table.
#   SECONDS_PER_RUN=10 bench/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
RUN_S=${SECONDS_PER_RUN:-10}
$CARGO build --profile local --quiet -p local --bin uploader
U=$PWD/target/local/uploader
work=$(mktemp -d "$PWD/bench/.load.XXXXXX")
ram=$(mktemp -d /dev/shm/uploader-load.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work" "$ram"; }
trap cleanup EXIT

"$U" process tests/fixtures/FreshFlower.jpg --out "$work/img" --renditions tiny:fit=64x48:jpeg >/dev/null
tiny=$work/img/FreshFlower.tiny.jpg
photo=$PWD/tests/fixtures/Aqua.jpg
results=$work/results.jsonl

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run NAME DATA_DIR IMAGE LOAD_ARGS...
run() {
  local name=$1 dir=$2 image=$3; shift 3
  local port; port=$(free_port)
  "$U" --data-dir "$dir" serve --addr "127.0.0.1:$port" >/dev/null 2>"$work/$name.log" &
  local pid=$!; pids+=("$pid")
  until curl -fsS --noproxy '*' -o /dev/null "http://127.0.0.1:$port/metrics" 2>/dev/null; do sleep 0.1; done
  "$U" load --url "http://127.0.0.1:$port" --image "$image" --seconds "$RUN_S" --pid "$pid" "$@" \
    | python3 -c "import json,sys; r=json.load(sys.stdin); r['scenario']='$name'; print(json.dumps(r))" >>"$results"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "sqlite single-row commits/s (disk): $("$U" --data-dir "$work/commit" commit-rate --seconds 3)"
echo "sqlite single-row commits/s (tmpfs): $("$U" --data-dir "$ram/commit" commit-rate --seconds 3)"
run tiny-max-disk "$work/d1" "$tiny" --concurrency 32
run tiny-max-tmpfs "$ram/d1" "$tiny" --concurrency 32
half=$(python3 -c "import json; r=[json.loads(l) for l in open('$results')]; print(round(min(x['end_to_end_per_s'] for x in r if x['scenario']=='tiny-max-disk')/2))")
run "tiny-at-${half}-per-s-disk" "$work/d2" "$tiny" --rate "$half" --concurrency 32
run tiny-at-500-per-s-tmpfs "$ram/d2" "$tiny" --rate 500 --concurrency 32
run photo-max-disk "$work/d3" "$photo" --concurrency 4

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cols = [("scenario", "{}"), ("uploads_per_s", "{:.0f}"), ("end_to_end_per_s", "{:.0f}"), ("notified_p50_ms", "{:.0f}"),
        ("notified_p99_ms", "{:.0f}"), ("upload_p99_ms", "{:.1f}"), ("engine_cpu_ms_per_item", "{:.2f}"), ("failed_items", "{}")]
print("| " + " | ".join(c for c, _ in cols) + " |")
print("|" + "---|" * len(cols))
for r in rows:
    print("| " + " | ".join(f.format(r[c]) if r.get(c) is not None else "-" for c, f in cols) + " |")
PY

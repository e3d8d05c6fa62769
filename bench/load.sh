#!/usr/bin/env bash
# Load on the running engine over HTTP (make bench-load): tiny images (engine overhead) and a real
# photo, on disk and on tmpfs, plus SQLite's own commit rate in the same place. Each scenario runs
# RUNS times on a fresh data dir, in rounds; the table gives the median and the spread (min-max),
# and a verdict on collapse under overload for each medium. With two or
# more cores, the engine and the load generator are pinned to different cores (taskset) so that
# neither steals the other's. Prints a Markdown table; the raw runs are kept in bench/.load.runs.jsonl.
#   SECONDS_PER_RUN=10 RUNS=3 FIXED_RATE=150 bench/load.sh
#   SCENARIOS=tiny-overload-disk,tiny-fixed-disk bench/load.sh    (a subset)
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
RUN_S=${SECONDS_PER_RUN:-10}
RUNS=${RUNS:-3}
# The fixed offered rate, uploads/s (tiny images): one the engine sustains, to compare overload with.
FIXED_RATE=${FIXED_RATE:-500}
SCENARIOS=${SCENARIOS:-tiny-overload-disk,tiny-overload-tmpfs,tiny-fixed-disk,tiny-fixed-tmpfs,photo-overload-disk}
U=$(CARGO="$CARGO" scripts/cargo-exe.sh --profile local --quiet -p local --bin uploader)
B=$(CARGO="$CARGO" scripts/cargo-exe.sh --profile local --quiet -p bench-tools --bin bench-tools)
work=$(mktemp -d "$PWD/bench/.load.XXXXXX")
ram=$(mktemp -d /dev/shm/uploader-load.XXXXXX)
pids=()
# On ext4 without a journal (this project's build machine), a new inode skips the ones deleted in
# the last 60-300 s, so a disk run started within 5 minutes of the last bench's cleanup (about 1.5
# GB of small files) spends its CPU in inode allocation: 312 against 720 tiny items/s six minutes later.
# The cleanup leaves the time it ran, and the next bench says when it starts inside that window.
cleaned_at=bench/.load.cleaned-at
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work" "$ram"
  date +%s >"$cleaned_at"
}
trap cleanup EXIT

cores=$(nproc)
if [ "$cores" -ge 2 ] && command -v taskset >/dev/null; then
  # The engine on the last core, the load generator on the one before it.
  engine_on=(taskset -c $((cores - 1)))
  load_on=(taskset -c $((cores - 2)))
  pinning="engine pinned to CPU $((cores - 1)), load generator to CPU $((cores - 2)) (taskset)"
else
  engine_on=()
  load_on=()
  pinning="not pinned: $cores core(s) or no taskset; the load generator shares the engine's cores"
fi
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(uname -srm), $cores x $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
echo "# $pinning; $RUNS runs of ${RUN_S} s per scenario; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
since_cleanup=$([ -f "$cleaned_at" ] && echo $(($(date +%s) - $(cat "$cleaned_at"))) || echo 300)
if [ "$since_cleanup" -lt 300 ]; then
  echo "# warning: the last bench deleted its files $since_cleanup s ago; on ext4" \
    "without a journal the disk rows are slowed for up to 300 s after that (bench/load.sh, cleanup)"
fi

"$U" process tests/fixtures/FreshFlower.jpg --out "$work/img" --renditions tiny:fit=64x48:jpeg >/dev/null
tiny=$work/img/FreshFlower.tiny.jpg
photo=$PWD/tests/fixtures/Aqua.jpg
results=$work/results.jsonl

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run NAME RUN DATA_DIR IMAGE LOAD_ARGS...
run() {
  local name=$1 n=$2 dir=$3 image=$4; shift 4
  local port; port=$(free_port)
  "${engine_on[@]}" "$U" --data-dir "$dir" serve --addr "127.0.0.1:$port" >/dev/null 2>"$work/$name.$n.log" &
  local pid=$!; pids+=("$pid")
  until curl -fsS --noproxy '*' -o /dev/null "http://127.0.0.1:$port/metrics" 2>/dev/null; do sleep 0.1; done
  "${load_on[@]}" "$B" load --url "http://127.0.0.1:$port" --image "$image" --seconds "$RUN_S" --pid "$pid" "$@" \
    | python3 -c "import json,sys; r=json.load(sys.stdin); r['scenario']='$name'; r['run']=$n; print(json.dumps(r))" >>"$results"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # The run's files are written back now, not during the next run: a 60 s tiny run leaves about
  # 1.5 GB of dirty pages, and the run after it paid for their writeback in its own CPU (1,110
  # items/s for the first of three 60 s runs, 960/s for the two after it, 2026-11-23 04:10 UTC).
  sync
  # Every run's files stay until the end (about 1.5 GB with the photo runs): this disk's ext4 has no
  # journal, so for up to 6 minutes after a file is deleted every new inode is checked against it
  # (recently_deleted() in perf), and deleting a run's files before the next run would charge that
  # run for them. A photo run's profile after the previous one's files were deleted had 9.8% of
  # the engine's CPU in ext4's inode allocation; with them kept, 0.2%.
}

# scenario NAME RUN BASE IMAGE LOAD_ARGS...: one run of NAME, if SCENARIOS has it.
scenario() {
  local name=$1 n=$2; shift 2
  case ",$SCENARIOS," in *",$name,"*) ;; *) return 0 ;; esac
  local base=$1 image=$2; shift 2
  echo "# $name, run $n of $RUNS" >&2
  run "$name" "$n" "$base/$name.$n" "$image" "$@"
}

echo "# sqlite single-row commits/s: disk $("$B" commit-rate --dir "$work/commit" --seconds 3 2>/dev/null | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["sqlite_commits_per_s"]))'), tmpfs $("$B" commit-rate --dir "$ram/commit" --seconds 3 2>/dev/null | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["sqlite_commits_per_s"]))')"
# Overload: 32 connections, each uploading again as soon as it is answered (or its Retry-After
# has passed): offered more than the engine can finish. Round by round, every scenario once a
# round, so that a change in the machine's pace falls on all of them rather than on one.
for n in $(seq 1 "$RUNS"); do
  scenario tiny-overload-disk "$n" "$work" "$tiny" --concurrency 32
  scenario tiny-overload-tmpfs "$n" "$ram" "$tiny" --concurrency 32
  scenario tiny-fixed-disk "$n" "$work" "$tiny" --rate "$FIXED_RATE" --concurrency 32
  scenario tiny-fixed-tmpfs "$n" "$ram" "$tiny" --rate "$FIXED_RATE" --concurrency 32
  scenario photo-overload-disk "$n" "$work" "$photo" --concurrency 4
done

cp "$results" bench/.load.runs.jsonl
python3 - "$results" "$FIXED_RATE" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
fixed = sys.argv[2]
names = {
    "tiny-overload-disk": "tiny JPEG (64x48), 32 connections as fast as they go, disk",
    "tiny-overload-tmpfs": "tiny, 32 connections as fast as they go, tmpfs",
    "tiny-fixed-disk": f"tiny at {fixed}/s, disk",
    "tiny-fixed-tmpfs": f"tiny at {fixed}/s, tmpfs",
    "photo-overload-disk": "real photo (Aqua.jpg, 2560x1600), 4 connections, disk",
}
cols = [("uploads_per_s", "{:.0f}"), ("end_to_end_per_s", "{:.0f}"), ("notified_p50_ms", "{:.0f}"),
        ("notified_p99_ms", "{:.0f}"), ("engine_cpu_ms_per_item", "{:.2f}"), ("throttled", "{:.0f}"),
        ("failed_items", "{:.0f}")]
def cell(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = fmt.format(statistics.median(values))
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return med if lo == hi else f"{med} ({lo}–{hi})"
print()
print("| scenario | uploads/s | end to end/s | notified p50 ms | notified p99 ms | engine CPU ms/item | 503s (throttled) | failed |")
print("| --- | --: | --: | --: | --: | --: | --: | --: |")
order = [s for s in names if any(r["scenario"] == s for r in rows)]
finished = {}
for s in order:
    runs = [r for r in rows if r["scenario"] == s]
    finished[s] = [r["end_to_end_per_s"] for r in runs]
    print(f"| {names.get(s, s)} | " + " | ".join(cell([r.get(c) for r in runs], f) for c, f in cols) + " |")
print(f"\nmedian (min–max) of {len(runs)} runs each")
# A collapse is overload finishing less than a fixed rate does. Runs of the same scenario spread by
# tens of percent on a shared machine, so a lower median alone is not one: it takes every overload
# run below every fixed-rate run to say so, and overlapping runs are reported as undecided.
for medium in ("disk", "tmpfs"):
    over, at = finished.get(f"tiny-overload-{medium}"), finished.get(f"tiny-fixed-{medium}")
    if over and at:
        mo, ma = statistics.median(over), statistics.median(at)
        if mo >= ma:
            verdict = "no collapse"
        elif max(over) < min(at):
            verdict = "COLLAPSE: every overload run finished less than every fixed-rate run"
        else:
            verdict = (f"undecided: a lower median, but the runs overlap ({min(over):.0f}–{max(over):.0f} "
                       f"against {min(at):.0f}–{max(at):.0f}); run again, or with more RUNS")
        print(f"{medium}: end to end under overload {mo:.0f}/s vs at {fixed}/s offered {ma:.0f}/s: {verdict}")
PY

"""python batch.py OUT.json ROUNDS WARMUP -- CMD_A... -- CMD_B...: the whole process of two batch
commands, side by side on the same files, in turn (A B, then B A, round after round), each run a
process of its own. Per run: wall time, CPU time (user + system, every thread, from wait4) and peak
RSS (the VmHWM the command prints itself as `peak_rss_kb` on its last JSON line: the parent's own
peak can leak into a child's ru_maxrss). Writes every run and the medians, and for wall and CPU the
median of the per-round ratios A/B, to OUT.json."""
import json
import os
import statistics
import subprocess
import sys
import time


def run(cmd):
    started = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"batch: {cmd[0]} failed ({status})")
    lines = [json.loads(l) for l in out.decode().splitlines() if l.startswith("{")]
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_kb": lines[-1]["peak_rss_kb"]}


def main():
    out, rounds, warmup, rest = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    split = [i for i, a in enumerate(rest) if a == "--"]
    a, b = rest[split[0] + 1:split[1]], rest[split[1] + 1:]
    for _ in range(warmup):
        run(a), run(b)
    runs = {"a": [], "b": []}
    for r in range(rounds):
        order = [("a", a), ("b", b)] if r % 2 == 0 else [("b", b), ("a", a)]
        for name, cmd in order:
            runs[name].append(run(cmd))
    med = lambda xs: statistics.median(xs)
    summary = {name: {k: med([x[k] for x in rs]) for k in ("wall_s", "cpu_s", "peak_rss_kb")}
               for name, rs in runs.items()}
    ratios = {k: med([x[k] / y[k] for x, y in zip(runs["a"], runs["b"])]) for k in ("wall_s", "cpu_s")}
    ratios["peak_rss_kb"] = summary["a"]["peak_rss_kb"] / summary["b"]["peak_rss_kb"]
    json.dump({"a": a, "b": b, "runs": runs, "median": summary, "ratio": ratios}, open(out, "w"))


if __name__ == "__main__":
    main()

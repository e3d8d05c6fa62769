#!/usr/bin/env python3
"""make bench-cold-start: how long each Lambda bootstrap takes from process start to ready for its
first event, and how much memory it holds then, against a Python 3 + boto3 peer.

The harness serves a minimal Lambda Runtime API on 127.0.0.1 and starts each program with the
environment Lambda gives a function (AWS_LAMBDA_RUNTIME_API, AWS_LAMBDA_FUNCTION_*, AWS_REGION, fake
credentials, the function's own variables) and nothing else: an empty HOME, so no ~/.aws files.
"Ready" is the moment the program's first `GET /2018-06-01/runtime/invocation/next` arrives. The
harness then reads VmRSS and VmHWM from /proc/<pid>/status, while the program waits for its event,
kills it, and takes its CPU time (user + system) from wait4. No event is ever sent.

The programs run interleaved, each round in a rotated order, so machine noise hits all of them.
Before timing, each one runs once under `strace -f -e trace=connect` to prove its start calls
nothing but the harness (no network at init); a connect anywhere else stops the bench.

Only the Python standard library; the peer (bench/cold_start_peer.py) needs boto3.
    bench/cold_start.py --bin-dir target/release --python .tools/moto/bin/python [--runs 20]
"""

import argparse
import datetime
import http.server
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

NEXT = "/2018-06-01/runtime/invocation/next"
HERE = os.path.dirname(os.path.abspath(__file__))
PEER = "Python 3 + boto3"


class Run:
    """One start of one program, filled in by the Runtime API handler."""

    def __init__(self):
        self.pid = None
        self.spawned = threading.Event()
        self.ready = threading.Event()  # set at the first /next, or at anything unexpected
        self.killed = threading.Event()
        self.ready_at = None
        self.status = {}
        self.errors = []


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        now = time.perf_counter()
        run = self.server.run
        if run is None or self.path != NEXT or run.ready_at is not None:
            if run is not None and self.path != NEXT:
                run.errors.append(f"unexpected GET {self.path}")
                run.ready.set()
            self.close_connection = True
            return
        run.spawned.wait(10)
        run.ready_at = now
        run.status = proc_status(run.pid)
        run.ready.set()
        # Hold the poll open, as Lambda does until an event comes, until the program is killed.
        run.killed.wait(30)
        self.close_connection = True

    def do_POST(self):
        # An init error (or anything else posted) means the program did not start as it should.
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        run = self.server.run
        if run is not None:
            run.errors.append(f"POST {self.path}: {body[:800].decode(errors='replace')}")
            run.ready.set()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


class Program:
    def __init__(self, name, argv, env):
        self.name, self.argv, self.env = name, argv, env
        self.samples = []  # (ready_ms, cpu_ms, rss_kb, hwm_kb)


def lambda_env(api, home, function_name, own):
    """The variables Lambda sets for a function (provided.al2023), with fake credentials."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "HOME": home,
        "LAMBDA_TASK_ROOT": home,
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        # Informational only: nothing here limits memory the way Lambda's sandbox does.
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]00000000000000000000000000000000",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN": "cold-start-bench-fake-token",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.update(own)
    return env


def start(server, program, log_path, timeout_s, wrap=()):
    """Start the program once; returns the finished Run and the rusage of the killed process."""
    run = Run()
    server.run = run
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        # A session of its own, so that the kill also reaches the program under strace.
        proc = subprocess.Popen([*wrap, *program.argv], env=program.env, cwd=program.env["HOME"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        run.pid = proc.pid
        run.spawned.set()
        got = run.ready.wait(timeout_s)
        exited = proc.poll()
        rusage = None
        if exited is None:
            os.killpg(proc.pid, signal.SIGKILL)
            _, _, rusage = os.wait4(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
        run.killed.set()
    server.run = None
    if not got or run.errors or run.ready_at is None or rusage is None:
        with open(log_path, errors="replace") as f:
            tail = f.read()[-2000:]
        why = "; ".join(run.errors) or (f"exited with {exited}" if exited is not None
                                        else f"no {NEXT} within {timeout_s} s")
        sys.exit(f"cold_start: {program.name} did not get ready: {why}\n--- its output ---\n{tail}")
    return run, (run.ready_at - t0) * 1000, rusage


CONNECT = re.compile(r'connect\(\d+, \{sa_family=(AF_\w+)(?:, (?:sun_path="([^"]*)"|'
                     r'sin6?_port=htons\((\d+)\)[^}]*?inet_(?:addr|pton)\((?:AF_INET6, )?"([^"]+)"))?')


def check_no_network(server, program, api_port, workdir, timeout_s):
    """Start the program once under strace; every connect() must go to the harness."""
    trace = os.path.join(workdir, f"{program.name}.strace")
    start(server, program, os.path.join(workdir, f"{program.name}.strace.log"), timeout_s,
          wrap=("strace", "-f", "-qq", "-e", "trace=connect", "-o", trace))
    outside, local = [], []
    with open(trace) as f:
        for line in f:
            m = CONNECT.search(line)
            if not m:
                continue
            family, path, port, addr = m.groups()
            if family == "AF_UNIX":
                local.append(path)
            elif family in ("AF_INET", "AF_INET6") and (addr, port) != ("127.0.0.1", str(api_port)):
                outside.append(f"{addr}:{port}")
            elif family not in ("AF_INET", "AF_INET6", "AF_UNSPEC"):  # AF_UNSPEC: a disconnect
                outside.append(line.strip())
    if outside:
        sys.exit(f"cold_start: {program.name} connected outside the harness at init: {outside}")
    extra = f" (and unix sockets {sorted(set(local))})" if local else ""
    print(f"  {program.name}: every connect() at init went to the harness{extra}", file=sys.stderr)


def describe_machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} vCPU {model}, Linux {platform.release()}, load average {os.getloadavg()[0]:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", required=True, help="folder with the upload, process and notice bootstraps")
    ap.add_argument("--python", required=True,
                    help="a Python 3 with boto3 (scripts/tools.sh moto: .tools/moto/bin/python)")
    ap.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", 20)),
                    help="measured starts of each program (RUNS, 20)")
    ap.add_argument("--warmup", type=int, default=int(os.environ.get("WARMUP", 2)),
                    help="unmeasured starts of each first (WARMUP, 2)")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds a program may take to get ready")
    ap.add_argument("--no-strace", action="store_true", help="skip the no-network check under strace")
    ap.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                    help="one more variable for every program, to try a setting (e.g. SSL_CERT_DIR=/empty)")
    args = ap.parse_args()
    # The programs run in an empty folder; their paths must not depend on ours.
    args.bin_dir, args.python = os.path.abspath(args.bin_dir), os.path.abspath(args.python)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads = True
    server.run = None
    api_port = server.server_address[1]
    api = f"127.0.0.1:{api_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()

    workdir = tempfile.mkdtemp(prefix="cold-start.")
    home = os.path.join(workdir, "home")  # empty: no ~/.aws/config or credentials to read
    os.mkdir(home)
    # Globals of the template: every function gets the table and its metrics' namespace.
    table = {"TABLE_NAME": "image-pipeline-ImagesTable-EXAMPLE", "METRICS_NAMESPACE": "image-pipeline"}
    bucket = {"BUCKET_NAME": "image-pipeline-imagesbucket-example"}
    topic = {"TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:image-pipeline-NoticeTopic-EXAMPLE"}
    # The stack names the cursor key's secret (CURSOR_KEY_SECRET), which upload reads from Secrets
    # Manager as it starts; here, with no network, it is given the key itself (CURSOR_KEY), so the
    # figures leave out that one GetSecretValue round trip.
    cursor = {"CURSOR_KEY": "a cold-start key for page cursors"}
    programs = [
        *(Program(name, [os.path.join(args.bin_dir, name)], lambda_env(api, home, name, own))
          for name, own in [("upload", {**table, **bucket, **cursor}), ("process", {**table, **bucket}),
                            ("notice", {**table, **topic})]),
        Program(PEER, [args.python, os.path.join(HERE, "cold_start_peer.py")],
                lambda_env(api, home, "python-peer", {**table, **bucket, **topic})),
    ]
    extra = dict(kv.split("=", 1) for kv in args.set)
    for p in programs:
        p.env.update(extra)
        if not os.access(p.argv[0], os.X_OK):
            sys.exit(f"cold_start: {p.argv[0]} is missing (build it first)")

    boto3_version = subprocess.run(
        [args.python, "-c", "import sys, boto3; print(boto3.__version__, sys.version.split()[0])"],
        capture_output=True, text=True, check=True).stdout.split()
    print(f"machine: {describe_machine()}", file=sys.stderr)
    print(f"peer: Python {boto3_version[1]}, boto3 {boto3_version[0]} ({args.python})", file=sys.stderr)

    try:
        if args.no_strace:
            print("no-network check skipped (--no-strace)", file=sys.stderr)
        elif shutil.which("strace") is None:
            print("no-network check skipped: strace is not installed", file=sys.stderr)
        else:
            print("no-network check (strace -f -e trace=connect):", file=sys.stderr)
            for p in programs:
                check_no_network(server, p, api_port, workdir, args.timeout)

        rounds = args.warmup + args.runs
        print(f"{args.warmup} warm-up + {args.runs} measured starts of each, interleaved", file=sys.stderr)
        for r in range(rounds):
            order = programs[r % len(programs):] + programs[:r % len(programs)]
            for p in order:
                run, ready_ms, ru = start(server, p, os.path.join(workdir, f"{p.name}.log"), args.timeout)
                if r >= args.warmup:
                    cpu_ms = (ru.ru_utime + ru.ru_stime) * 1000
                    p.samples.append((ready_ms, cpu_ms, run.status["VmRSS"], run.status["VmHWM"]))
    finally:
        server.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)

    peer_ms = statistics.median(s[0] for s in programs[-1].samples)
    print(f"\n{datetime.date.today()}, {describe_machine()}; {args.runs} starts each, "
          f"peer Python {boto3_version[1]} + boto3 {boto3_version[0]}"
          + (f"; with {' '.join(args.set)}" if args.set else "") + "\n")
    print(f"| program | ready ms, median (min–max) | vs {PEER} | CPU ms, median | RSS at ready | peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for p in programs:
        ready = [s[0] for s in p.samples]
        med = statistics.median(ready)
        cpu = statistics.median(s[1] for s in p.samples)
        rss = statistics.median(s[2] for s in p.samples) / 1024
        hwm = max(s[3] for s in p.samples) / 1024
        ratio = med / peer_ms
        digits = 3 if ratio < 0.1 else 2
        print(f"| {p.name} | {med:.1f} ({min(ready):.1f}–{max(ready):.1f}) | {ratio:.{digits}f}x | "
              f"{cpu:.1f} | {rss:.1f} MB | {hwm:.1f} MB |")


if __name__ == "__main__":
    main()

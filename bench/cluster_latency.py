"""The dashboard's queries on a Ballista cluster vs the embedded engine, on S3.

    python3 bench/cluster_latency.py [--rows 10000000] [--runs 20] [--skip-build]

For each size: generates the ledger (citybooks-bench gen, the same files as bench/run.py),
starts a real S3-compatible server (s3s-fs, as the tests do) and loads the ledger into a
project on it. Then, in the same run, starts `citybooks serve` with its result cache off
three times — on the embedded engine; on a cluster of `citybooks scheduler` + one
`citybooks executor`; on the same cluster with a second executor — and times every
request the dashboard page makes (the four charts and the original users' query, the
explorer at each hierarchy and one level down, the trend, the year list): 3 warm-up
requests, then --runs timed ones, sequential, over one keep-alive connection. Every
cluster answer is compared with the embedded one.

The cost of the snapshot mechanism (Parquet listings over the Delta snapshot's files,
see crates/warehouse TableScans::Files) is measured too: it adds nothing to a load (no
file is written); what it costs is building the listings when a session opens or a load
is seen, measured as `citybooks query` of a meta.* statement (which runs in-process on
both engines) with each engine.

Prints a Markdown table and writes it to bench/out/cluster-latency.md (and --json FILE).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard_latency as dl  # noqa: E402

ROOT = dl.ROOT
OUT = dl.OUT
CB = dl.CB


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3s_fs():
    for p in [os.path.join(os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")), "bin", "s3s-fs"),
              shutil.which("s3s-fs") or ""]:
        if p and os.path.exists(p):
            return p
    sys.exit("s3s-fs is needed: cargo install s3s-fs@0.14.1 --locked --features binary")


def wait_port(port, what):
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not start")


def drain(p):
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()


def start_cluster(project, executors, work):
    procs = []
    sched = subprocess.Popen([CB, "--project", project, "scheduler", "--bind-host", "127.0.0.1", "--bind-port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(sched)
    port = None
    for line in sched.stdout:
        if "listening on" in line:
            port = int(line.rsplit(":", 1)[1])
        if line.startswith("ready"):
            break
    drain(sched)
    for i in range(executors):
        flight, grpc, health = free_port(), free_port(), free_port()
        e = subprocess.Popen([CB, "--project", project, "executor", "--scheduler-host", "127.0.0.1",
                              "--scheduler-port", str(port), "--bind-host", "127.0.0.1", "--external-host", "127.0.0.1",
                              "--bind-port", str(flight), "--bind-grpc-port", str(grpc), "--bind-health-port", str(health),
                              "--executor-heartbeat-interval-seconds", "2", "--work-dir", os.path.join(work, f"executor-{i}")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(e)
        deadline = time.time() + 60
        while True:
            try:
                import urllib.request
                if urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit(f"executor {i} did not become ready")
            time.sleep(0.1)
    return procs, f"df://127.0.0.1:{port}"


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def timed_query(project, env_extra, sql, runs=5):
    env = dict(os.environ, **env_extra)
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([CB, "--project", project, "query", sql], check=True, stdout=subprocess.DEVNULL, env=env)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="10000000")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--json", help="also write every figure to this file")
    args = ap.parse_args()
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "-p", "citybooks", "-p", "citybooks-bench"], cwd=ROOT, check=True)
    os.makedirs(OUT, exist_ok=True)
    lines = ["| rows | request | embedded p50 ms | embedded p95 ms | 1 executor p50 ms | 1 executor p95 ms | "
             "2 executors p50 ms | 2 executors p95 ms | 2 executors / embedded p95 |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    records, notes = [], []
    for n in [int(x) for x in args.rows.split(",")]:
        ledger = os.path.join(OUT, f"ledger-{n}-api.csv")
        if not os.path.exists(ledger):
            subprocess.run([os.path.join(dl.RELEASE, "citybooks-bench"), "gen", "--rows", str(n), "--dialect", "api",
                            "--out", ledger], check=True)
        s3root = os.path.join(OUT, f"s3-{n}")
        shutil.rmtree(s3root, ignore_errors=True)
        os.makedirs(os.path.join(s3root, "books"))
        s3port = free_port()
        s3 = subprocess.Popen([s3s_fs(), "--host", "127.0.0.1", "--port", str(s3port), "--access-key", "citybooks",
                               "--secret-key", "citybooks-secret", s3root],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs = []
        try:
            wait_port(s3port, "s3s-fs")
            project = os.path.join(OUT, f"cluster-{n}")
            shutil.rmtree(project, ignore_errors=True)
            subprocess.run([CB, "init", project], check=True, stdout=subprocess.DEVNULL)
            with open(os.path.join(project, "citybooks.toml"), "w") as f:
                f.write(f'[store]\nurl = "s3://books/city"\nendpoint = "http://127.0.0.1:{s3port}"\n'
                        'region = "us-east-1"\naccess_key_id = "citybooks"\n'
                        'secret_access_key = "citybooks-secret"\nallow_http = true\n')
            t = time.perf_counter()
            subprocess.run([CB, "--project", project, "load", "--no-progress", ledger], check=True,
                           stdout=subprocess.DEVNULL)
            load_s = time.perf_counter() - t
            timings, answers = {}, {}
            for setup, executors in (("embedded", 0), ("1 executor", 1), ("2 executors", 2)):
                env = {}
                if executors:
                    procs, url = start_cluster(project, executors, os.path.join(project, "work"))
                    env = {"CITYBOOKS_QUERY_ENGINE": "ballista", "CITYBOOKS_QUERY_SCHEDULER": url}
                server, port = dl.start_server(project, False, env)
                try:
                    api = dl.Api(port)
                    reqs = [(name, path) for name, path, _ in dl.dashboard_requests(api)]
                    for name, path in reqs:
                        timings.setdefault(name, {})[setup] = dl.timed(lambda: api.get(path), args.runs)
                        got = api.get(path)
                        got.pop("sql", None)
                        answers.setdefault(name, {})[setup] = got
                    # A whole `citybooks query` run: opening the session (Delta providers, or
                    # the listings of the snapshot's files) plus a meta.* statement, which
                    # runs in-process on every engine: the difference is the listings' cost.
                    timings.setdefault("citybooks query of meta.loads (session set-up)", {})[setup] = \
                        timed_query(project, env, "select count(*) from meta.loads")
                finally:
                    stop([server])
                    stop(procs)
                    procs = []
            for name, by in answers.items():
                for setup in ("1 executor", "2 executors"):
                    if name in by and by[setup] != by["embedded"]:
                        dl.warn(notes, f"{n:,} {name}: the cluster's answer ({setup}) differs from the embedded one")
            notes.append(f"{n:,} rows generated and loaded into s3s-fs in {load_s:.1f} s; the cluster's "
                         "answers equal the embedded engine's for every request"
                         if not any("differs" in x for x in notes) else f"{n:,} rows: see the warnings")
            for name, t in timings.items():
                e50, e95 = dl.pct(t["embedded"], 50), dl.pct(t["embedded"], 95)
                a50, a95 = dl.pct(t["1 executor"], 50), dl.pct(t["1 executor"], 95)
                b50, b95 = dl.pct(t["2 executors"], 50), dl.pct(t["2 executors"], 95)
                lines.append(f"| {n:,} | {name} | {e50:.1f} | {e95:.1f} | {a50:.1f} | {a95:.1f} | {b50:.1f} | {b95:.1f} | {b95 / e95:.2f} |")
                records.append({"rows": n, "request": name, "embedded_p50_ms": e50, "embedded_p95_ms": e95,
                                "one_executor_p50_ms": a50, "one_executor_p95_ms": a95,
                                "two_executors_p50_ms": b50, "two_executors_p95_ms": b95})
                print(lines[-1], flush=True)
        finally:
            stop(procs)
            stop([s3])
    notes.append("All processes (s3s-fs, scheduler, executors, serve) share this machine's cores; "
                 "a cluster's gains need executors on other machines.")
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {x}" for x in notes) + "\n"
    print(text)
    with open(os.path.join(OUT, "cluster-latency.md"), "w") as f:
        f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()

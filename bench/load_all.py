"""Everything at once: 64 psql clients, 20 dashboard users, 50 SFTP uploads and a load.

    python3 bench/load_all.py [--rows 1000000] [--seconds 300] [--skip-build]

Needs pgbench (Debian postgresql-contrib), oha (`cargo install oha`), OpenSSH's sftp and
ssh-keygen. Loads the generated ledger (as bench/run.py) into a fresh project, starts
`citybooks serve` with its defaults, and then, all at once for `--seconds`:

- `pgbench -n -c 64 -T SECONDS` against port 5439's protocol: each transaction one of the
  dashboard's chart queries, the original users' query or an analyst's query (group-bys
  over each hierarchy, a fiscal-year filter, top-N departments, count(distinct), a join
  of all four dimensions), chosen at random;
- 20 HTTP dashboard users: four `oha` runs of 5 connections each on the overview's
  charts, the explorer and the trend;
- 50 SFTP uploads at once (OpenSSH sftp, ten users, five sessions each) of the newest
  fiscal year, each one amount different, so each is a real load of the year, queued
  one at a time behind each other;
- and `citybooks load` of the same year in another version, from the command line.

Reports errors (must be 0), p50/p95/p99 latency and throughput of the SQL and HTTP
clients, the uploads' and loads' outcomes, and `serve`'s RSS before, during (peak) and
after. Writes bench/out/load_all.md. Not a CI test: it takes minutes and all the cores.
"""
import argparse
import csv
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from urllib.parse import urlencode

from ledger import CB, arguments, fresh_project, publish
from soak_kill import citybooks
from soak_serve import Serve

USER, PASSWORD = "analyst", "a long passphrase"
UPLOADERS = [f"clerk{i}" for i in range(10)]

ANALYST = [
    # The original users' query.
    "select p.organization_group, p.department, sum(t.amount) as total from report.transaction t "
    "join report.program p on t.program_id = p.program_id join report.finance f on t.finance_id = f.finance_id "
    "where f.revenue_or_spending = 'Spending' group by 1, 2 order by 3 desc",
    "select p.organization_group, sum(t.amount) from report.transaction t join report.program p "
    "on t.program_id = p.program_id group by 1 order by 2 desc",
    "select ty.character, ty.object, sum(t.amount) from report.transaction t join report.type ty "
    "on t.type_id = ty.type_id group by 1, 2 order by 3 desc limit 50",
    "select fu.fund_type, fu.fund, sum(t.amount) from report.transaction t join report.fund fu "
    "on t.fund_id = fu.fund_id where t.fiscal_year = {year} group by 1, 2 order by 3 desc",
    "select p.department, sum(t.amount) as s from report.transaction t join report.program p "
    "on t.program_id = p.program_id where t.fiscal_year = {year} group by 1 order by 2 desc limit 10",
    "select fiscal_year, count(distinct program_id), count(*) from report.transaction group by 1 order by 1",
    "select p.department, ty.character, fu.fund_type, f.revenue_or_spending, sum(t.amount) "
    "from report.transaction t join report.program p on t.program_id = p.program_id "
    "join report.type ty on t.type_id = ty.type_id join report.fund fu on t.fund_id = fu.fund_id "
    "join report.finance f on t.finance_id = f.finance_id where t.fiscal_year = {year} "
    "group by 1, 2, 3, 4 order by 5 desc limit 100",
]


def get(base, path):
    with urllib.request.urlopen(base + path, timeout=60) as r:
        return json.load(r)


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def percentiles(values):
    values = sorted(values)
    if not values:
        return {"p50": 0, "p95": 0, "p99": 0}
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=300)
    for tool in ("pgbench", "oha", "sftp", "ssh-keygen"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed: pgbench from postgresql-contrib, oha from "
                     "`cargo install oha`, sftp and ssh-keygen from openssh-client")
    args, ledger = arguments(ap)
    project = fresh_project(f"load-all-{args.rows}")
    subprocess.run([CB, "sql-user", "add", USER], cwd=project,
                   input=PASSWORD + "\n", text=True, check=True, stdout=subprocess.DEVNULL)
    keys = {}
    for u in UPLOADERS:
        key = os.path.join(project, f"{u}-key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        citybooks(project, "user", "add", u, "--key", key + ".pub")
        keys[u] = key
    citybooks(project, "load", "--no-progress", ledger)

    # The newest fiscal year: 50 upload files, each one amount different, and the
    # command-line load's version (every amount one cent up).
    with open(ledger, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        fy, amount = header.index("fiscal_year"), header.index("amount")
        rows = [r for r in reader]
    year = max(r[fy] for r in rows)
    mine = [r for r in rows if r[fy] == year]
    work = os.path.join(project, "uploads")
    os.makedirs(work)

    def write(path, bump_row, bump):
        with open(path, "w", newline="") as f:
            w = csv.writer(f, quoting=csv.QUOTE_ALL)
            w.writerow(header)
            for i, r in enumerate(mine):
                if bump_row is None or i == bump_row:
                    r = list(r)
                    r[amount] = f"{(round(float(r[amount]) * 100) + bump) / 100:.2f}"
                w.writerow(r)

    for n in range(50):
        write(os.path.join(work, f"week-{n:02}.csv"), n, n + 1)
    cli_file = os.path.join(work, "cli.csv")
    write(cli_file, None, 1)

    # serve with its defaults, on loopback.
    serve = Serve(project, env=dict(os.environ, CITYBOOKS_SFTP_LISTEN="127.0.0.1",
                                    CITYBOOKS_SQL_LISTEN="127.0.0.1",
                                    CITYBOOKS_HTTP_LISTEN="127.0.0.1"))
    http = next(int(l.rsplit(":", 1)[1]) for l in serve.lines if "HTTP" in l and "listening on" in l)
    sql = next(int(l.rsplit(":", 1)[1]) for l in serve.lines if "SQL" in l and "listening on" in l)
    base = f"http://127.0.0.1:{http}"
    charts = get(base, "/api/charts")["charts"]
    scripts = os.path.join(project, "pgbench")
    os.makedirs(scripts)
    statements = [c["sql"] for c in charts] + [q.format(year=year) for q in ANALYST]
    for i, s in enumerate(statements):
        with open(os.path.join(scripts, f"q{i:02}.sql"), "w") as f:
            # One line for pgbench: the comments go first, or they would swallow the rest.
            f.write(" ".join(re.sub(r"--[^\n]*", "", s).split()).rstrip(";") + ";\n")
    explore = "/api/explore?" + urlencode({"side": "Spending", "h": "organization", "year": year})
    trend = "/api/trend?" + urlencode({"side": "Spending", "h": "organization"})
    http_paths = [f"/api/charts/{charts[0]['id']}", f"/api/charts/{charts[2]['id']}", explore, trend]

    rss = {"before": rss_mib(serve.proc.pid), "peak": 0.0}
    disk = {"least free": shutil.disk_usage(project).free}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            rss["peak"] = max(rss["peak"], rss_mib(serve.proc.pid))
            disk["least free"] = min(disk["least free"], shutil.disk_usage(project).free)
            time.sleep(0.5)

    threading.Thread(target=sample, daemon=True).start()
    print(f"serve up ({rss['before']:.0f} MiB); {len(statements)} SQL statements, "
          f"{len(http_paths)} dashboard routes; running for {args.seconds} s", file=sys.stderr)

    logs = os.path.join(project, "pgbench-log")
    os.makedirs(logs)
    env = dict(os.environ, PGPASSWORD=PASSWORD)
    pgbench = subprocess.Popen(
        ["pgbench", "-n", "-c", "64", "-j", "2", "-T", str(args.seconds), "-h", "127.0.0.1",
         "-p", str(sql), "-U", USER, "-l", "--log-prefix", os.path.join(logs, "tx")]
        + [a for i in range(len(statements)) for a in ("-f", os.path.join(scripts, f"q{i:02}.sql"))]
        + ["citybooks"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ohas = [subprocess.Popen(
        ["oha", "-c", "5", "-z", f"{args.seconds}s", "--no-tui", "--output-format", "json",
         base + path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for path in http_paths]
    time.sleep(min(10, args.seconds / 10))

    # 50 uploads at once, five sessions per user; then the command-line load.
    upload_results = []

    def upload(user, name):
        p = subprocess.run(
            ["sftp", "-b", "-", "-P", str(serve.sftp), "-i", keys[user],
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=yes", f"{user}@127.0.0.1"],
            input=f"put {os.path.join(work, name)} {name}\n", capture_output=True, text=True)
        upload_results.append((user, name, p.returncode, p.stderr.strip()))

    threads = [threading.Thread(target=upload, args=(UPLOADERS[n % 10], f"week-{n:02}.csv"))
               for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load = subprocess.run([CB, "load", "--no-progress", "--json", cli_file], cwd=project,
                          capture_output=True, text=True)

    pg_out, _ = pgbench.communicate()
    oha_out = [json.loads(o.communicate()[0]) for o in ohas]
    with open(os.path.join(project, "pgbench.out"), "w") as f:
        f.write(pg_out)
    with open(os.path.join(project, "oha.json"), "w") as f:
        json.dump(oha_out, f, indent=1)
    stop.set()
    # The upload queue may still be loading: wait for every report.
    reports = {}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        reports = {}
        for path in glob.glob(os.path.join(project, "store", "raw", "clerk*", "*.load.json")):
            with open(path) as f:
                reports[os.path.basename(path)] = json.load(f)["status"]
        if len(reports) == 50:
            break
        time.sleep(1)
    time.sleep(2)
    rss["after"] = rss_mib(serve.proc.pid)
    serve.kill()
    with open(os.path.join(project, "serve.log"), "w") as f:
        f.writelines(serve.lines)

    # pgbench: per-transaction latencies from its logs (column 3, microseconds).
    latencies, failed_tx = [], 0
    for path in glob.glob(os.path.join(logs, "tx*")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    if parts[2] == "failed":
                        failed_tx += 1
                    else:
                        latencies.append(int(parts[2]) / 1000)
    pg_p = percentiles(latencies)
    pg_errors = failed_tx + (0 if pgbench.returncode == 0 else 1)
    tps = next((l for l in pg_out.splitlines() if l.startswith("tps")), "tps = 0")

    http_rows, http_errors = [], 0
    for path, o in zip(http_paths, oha_out):
        codes = o.get("statusCodeDistribution", {})
        # oha counts the requests still in flight when -z runs out as "aborted due to
        # deadline": they were cut by the load generator, not refused by the server.
        bad = sum(v for k, v in codes.items() if k != "200") + sum(
            v for k, v in o.get("errorDistribution", {}).items() if k != "aborted due to deadline")
        http_errors += bad
        lat = o.get("latencyPercentiles", {})
        summary = o.get("summary", {})
        http_rows.append(
            f"| GET {path.split('?')[0]} (5 users) | {sum(codes.values()):,} | "
            f"{summary.get('requestsPerSec', 0):.1f}/s | {lat.get('p50', 0) * 1000:.0f} | "
            f"{lat.get('p95', 0) * 1000:.0f} | {lat.get('p99', 0) * 1000:.0f} | {bad} |")

    upload_errors = [r for r in upload_results if r[2] != 0]
    statuses = {}
    for s in reports.values():
        statuses[s] = statuses.get(s, 0) + 1
    load_status = json.loads(load.stdout.splitlines()[-1])["status"] if load.returncode in (0, 3) and load.stdout else f"exit {load.returncode}: {load.stderr[-300:]}"
    errors = pg_errors + http_errors + len(upload_errors) + (0 if load.returncode == 0 else 1) \
        + sum(v for k, v in statuses.items() if k == "failed") + (50 - len(reports))

    text = "\n".join([
        f"All at once for {args.seconds} s on a {args.rows:,}-row warehouse: 64 pgbench clients, "
        f"20 HTTP dashboard users (oha), 50 SFTP uploads of fiscal year {year} "
        f"({len(mine):,} rows each) and a command-line load of it.",
        "",
        "| clients | requests | throughput | p50 ms | p95 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| pgbench, 64 clients, {len(statements)} statements | {len(latencies):,} | "
        f"{float(tps.split('(')[0].replace('tps = ', '').strip() or 0):.1f}/s | {pg_p['p50']:.0f} | "
        f"{pg_p['p95']:.0f} | {pg_p['p99']:.0f} | {pg_errors} |",
    ] + http_rows + [
        "",
        f"SFTP: {len(upload_results) - len(upload_errors)} of 50 uploads succeeded; their loads: "
        + ", ".join(f"{v} {k}" for k, v in sorted(statuses.items()))
        + f". Command-line load: {load_status}.",
        "",
        f"serve RSS: {rss['before']:.0f} MiB before, {rss['peak']:.0f} MiB peak, "
        f"{rss['after']:.0f} MiB after. Least free disk during the run: "
        f"{disk['least free'] / 2**30:.1f} GiB.",
        "",
        f"Errors: {errors}",
    ] + [f"- upload {u}/{n}: exit {c}: {e[-200:]}" for u, n, c, e in upload_errors])
    publish("load_all.md", text)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()

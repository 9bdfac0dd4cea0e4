"""Latency of the dashboard's HTTP requests, citybooks vs DuckDB on the same data.

    pip install duckdb
    python3 bench/dashboard_latency.py [--rows 1000000,10000000] [--runs 30] [--skip-build] [--json FILE]

For each size: generates the ledger (citybooks-bench gen, the same files as bench/run.py),
loads it into a fresh project, starts `citybooks serve` twice — with the dashboard's result
cache off (every request computed by DataFusion) and on (the default: answers kept until
the next load) — and each time times every request the
dashboard page makes (the four charts and the original query, the explorer's views at
each hierarchy and one level down, the trend, the year list): 3 warm-up requests, then
--runs timed ones, sequential, over one keep-alive HTTP connection, body read included.
In the same run DuckDB (in-process, its default threads) loads the warehouse's own
Parquet files into in-memory tables and runs the same SQL (the explorer's SQL is taken
from the API's answer, the charts' from /api/charts); results are compared. citybooks'
figures include HTTP and JSON encoding; DuckDB's do not. Prints a Markdown table and
writes it to bench/out/dashboard-latency.md; --json FILE also writes every figure of the
table there (one object per row: rows, request, computed_p95_ms, duckdb_p95_ms, ...).
After the cached runs it loads one more fiscal year while the server runs and measures
how soon after the load's commit the first views are warm again (`warm after a load`:
warm_delay_after_commit_ms, warm_ms, and how many of the warmed views then hit the cache).
"""
import argparse
import glob
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
RELEASE = os.path.join(ROOT, "target", "release")
CB = os.path.join(RELEASE, "citybooks")


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def start_server(project, cache, env_extra=None):
    env = dict(os.environ, CITYBOOKS_HTTP_LISTEN="127.0.0.1", CITYBOOKS_SQL_LISTEN="127.0.0.1",
               CITYBOOKS_SFTP_LISTEN="127.0.0.1", CITYBOOKS_HTTP_CACHE=str(cache).lower(), **(env_extra or {}))
    p = subprocess.Popen([CB, "--project", project, "serve", "--sftp-port", "0", "--sql-port", "0",
                          "--http-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    # Every port serve announces ("citybooks SQL ... listening on 127.0.0.1:PORT"), by
    # the server's name; the HTTP one is returned.
    p.ports = {}
    for line in p.stdout:
        if "listening on" in line:
            kind = {"HTTP": "http", "SQL": "sql", "SFTP": "sftp"}.get(line.split()[1], line.split()[1])
            p.ports[kind] = int(line.rsplit(":", 1)[1])
        if line.startswith("ready"):
            break
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    return p, p.ports.get("http")


class Api:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def get(self, path):
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit(f"GET {path}: {r.status} {body[:300]!r}")
        return json.loads(body)

    def metric(self, name):
        """The value of a /metrics line (0 if it is not there yet)."""
        self.conn.request("GET", "/metrics")
        r = self.conn.getresponse()
        text = r.read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def cache_state(self, path):
        """GET path; the server's x-citybooks-cache header (hit or miss)."""
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        r.read()
        return r.getheader("x-citybooks-cache")

    def sql(self, statement):
        self.conn.request("POST", "/api/sql", body=json.dumps({"sql": statement}),
                          headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit(f"POST /api/sql {statement!r}: {r.status} {body[:300]!r}")
        return json.loads(body)["rows"]


def timed(fn, runs):
    for _ in range(3):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def dashboard_requests(api):
    """Every request the dashboard page makes: (name, path, the SQL it runs)."""
    year = api.get("/api/years")["fiscal_years"][0]
    charts = api.get("/api/charts")["charts"]
    base = {"side": "Spending", "related": "exclude"}
    explore = [("explore organization", dict(base, year=year, h="organization")),
               ("explore type", dict(base, year=year, h="type")),
               ("explore fund", dict(base, year=year, h="fund"))]
    first = api.get("/api/explore?" + urlencode(explore[0][1]))["rows"][0]["name"]
    explore.append(("explore organization > " + first[:24], dict(base, year=year, h="organization", path=first)))
    requests = [("years", "/api/years", "select distinct fiscal_year from report.transaction order by fiscal_year desc")]
    requests += [(f"chart {c['id']}", f"/api/charts/{c['id']}", c["sql"]) for c in charts]
    for name, q in explore:
        path = "/api/explore?" + urlencode(q)
        requests.append((name, path, api.get(path)["sql"]))
    tpath = "/api/trend?" + urlencode(dict(base, h="organization"))
    requests.append(("trend organization", tpath, api.get(tpath)["sql"]))
    return requests


def wait_for_warm(api, count, deadline_s=600):
    """Waits until the server warmed the dashboard `count` times; the time it saw it."""
    end = time.perf_counter() + deadline_s
    while api.metric("citybooks_http_warms_total") < count:
        if time.perf_counter() > end:
            sys.exit(f"the dashboard was not warmed {count} time(s) within {deadline_s} s")
        time.sleep(0.01)
    return time.perf_counter()


def warm_after_a_load(api, project, requests):
    """Loads a new fiscal year (the committed sample as fiscal year 1990) while the
    server runs with its cache on, and measures how long after the load's commit (the
    load command's end) the dashboard's first views were warm; checks they then answer
    from the cache. Returns (delay after commit ms, the warm-up's own ms, hits, views)."""
    import csv
    wait_for_warm(api, 1)
    extra = os.path.join(project, "..", "fy1990.csv")
    with open(os.path.join(ROOT, "data", "datasf-fy2025-sample.csv"), newline="") as src, \
            open(extra, "w", newline="") as dst:
        rows = csv.reader(src)
        header = next(rows)
        fy = header.index("fiscal_year")
        out = csv.writer(dst)
        out.writerow(header)
        for r in rows:
            r[fy] = "1990"
            out.writerow(r)
    spent = api.metric("citybooks_http_warm_duration_seconds_sum")
    subprocess.run([CB, "--project", project, "load", "--no-progress", extra], check=True, stdout=subprocess.DEVNULL)
    committed = time.perf_counter()
    warmed = wait_for_warm(api, 2)
    own = api.metric("citybooks_http_warm_duration_seconds_sum") - spent
    # The views the warm-up asks for: the years, the charts, the first explorer and trend.
    views = [path for name, path, _ in requests if name == "years" or name.startswith("chart ")
             or name in ("explore organization", "trend organization")]
    hits = sum(api.cache_state(path) == "hit" for path in views)
    return (warmed - committed) * 1000, own * 1000, hits, len(views)


def duckdb_tables(con, project):
    base = os.path.join(project, "store", "warehouse", "report")
    con.execute("create schema report")
    for t in ["program", "type", "fund", "finance", "transaction"]:
        files = glob.glob(os.path.join(base, t, "**", "*.parquet"), recursive=True)
        con.execute(f"create table report.{t} as select * from read_parquet(?, hive_partitioning=true)", [files])


def duck_sql(sql):
    """DuckDB runs the dashboard's SQL unchanged (kept as the one place to adapt it)."""
    return sql


def warn(notes, text):
    print(f"WARNING: {text}", file=sys.stderr, flush=True)
    notes.append(f"WARNING: {text}")


def norm(v):
    if isinstance(v, (Decimal, float)):
        return f"{Decimal(str(v)):.2f}"
    return str(v)


def server_env_of(pairs):
    """`--server-env KEY=VALUE` arguments as a dict."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"--server-env {pair}: expected KEY=VALUE")
        env[key] = value
    return env


def parse_args(runs):
    """The options both benchmark scripts take; (args, the --server-env variables)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="1000000,10000000")
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the table's figures to FILE as JSON")
    ap.add_argument("--server-env", metavar="KEY=VALUE", action="append", default=[],
                    help="an environment variable for citybooks serve, e.g. CITYBOOKS_SQL_TABLE_MEMORY_MIB=0 "
                         "to measure without the tables held in memory (repeatable)")
    args = ap.parse_args()
    return args, server_env_of(args.server_env)


def main():
    args, server_env = parse_args(30)
    import duckdb
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "-p", "citybooks", "-p", "citybooks-bench"], cwd=ROOT, check=True)
    os.makedirs(OUT, exist_ok=True)
    lines = ["| rows | request | computed p50 ms | computed p95 ms | cached p50 ms | cached p95 ms | DuckDB p50 ms | DuckDB p95 ms | computed / DuckDB p95 | cached / DuckDB p95 |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    notes = []
    figures = []
    for n in [int(x) for x in args.rows.split(",")]:
        ledger = os.path.join(OUT, f"ledger-{n}-api.csv")
        if not os.path.exists(ledger):
            subprocess.run([os.path.join(RELEASE, "citybooks-bench"), "gen", "--rows", str(n), "--dialect", "api",
                            "--out", ledger], check=True)
        project = os.path.join(OUT, f"latency-{n}")
        subprocess.run(["rm", "-rf", project], check=True)
        subprocess.run([CB, "init", project], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([CB, "--project", project, "load", "--no-progress", ledger], check=True, stdout=subprocess.DEVNULL)
        con = duckdb.connect()
        duckdb_tables(con, project)
        timings = {}
        rss_mib = {}
        for cache in (False, True):
            server, port = start_server(project, cache, server_env)
            try:
                api = Api(port)
                requests = dashboard_requests(api)
                for name, path, sql in requests:
                    timings.setdefault(name, {})[cache] = timed(lambda: api.get(path), args.runs)
                    if cache:
                        continue
                    sql = duck_sql(sql)
                    timings[name]["duckdb"] = timed(lambda: con.execute(sql).fetchall(), args.runs)
                    got = api.get(path)
                    duck = con.execute(sql).fetchall()
                    if "rows" in got and got["rows"] and isinstance(got["rows"][0], dict):
                        a = [(str(r.get("name", r.get("fiscal_year"))), norm(r["amount"])) for r in got["rows"]]
                        b = [(str(r[0]), norm(r[1])) for r in duck]
                        if sorted(a) != sorted(b):
                            warn(notes, f"{n:,} {name}: results differ from DuckDB's")
                    elif "row_count" in got and got["row_count"] != len(duck):
                        warn(notes, f"{n:,} {name}: {got['row_count']} rows vs DuckDB {len(duck)}")
                rss = [l for l in open(f"/proc/{server.pid}/status") if l.startswith("VmRSS")][0].split()[1]
                rss_mib[cache] = int(rss) // 1024
                if cache:
                    delay, own, hits, views = warm_after_a_load(api, project, requests)
                    notes.append(f"{n:,} rows: after a load committed while serving (a new fiscal year of 2,186 rows), "
                                 f"the dashboard's first views were warm {delay:.0f} ms after the load command ended "
                                 f"(the warm-up itself: {own:.0f} ms); then {hits} of those {views} views answered "
                                 f"from the cache")
                    figures.append({"rows": n, "request": "warm after a load", "warm_delay_after_commit_ms": round(delay, 1),
                                    "warm_ms": round(own, 1), "views_cached": hits, "views": views})
                if not cache:
                    loaded = con.execute("select count(*) from report.transaction").fetchone()[0]
                    api_rows = int(api.sql("select count(*) from report.transaction")[0][0])
                    if loaded != api_rows:
                        warn(notes, f"{n:,}: DuckDB read {loaded:,} rows, report.transaction has {api_rows:,}")
            finally:
                server.terminate()
                server.wait()
        notes.append(f"{n:,} rows generated, {api_rows:,} in report.transaction ({n - api_rows:,} quarantined), "
                     f"{loaded:,} read by DuckDB from the same Parquet files; citybooks serve RSS after the runs: "
                     f"{rss_mib[False]} MiB (cache off), {rss_mib[True]} MiB (cache on)")
        for name, t in timings.items():
            c50, c95 = pct(t[False], 50), pct(t[False], 95)
            h50, h95 = pct(t[True], 50), pct(t[True], 95)
            d50, d95 = pct(t["duckdb"], 50), pct(t["duckdb"], 95)
            lines.append(f"| {n:,} | {name} | {c50:.1f} | {c95:.1f} | {h50:.1f} | {h95:.1f} | {d50:.1f} | {d95:.1f} | {c95 / d95:.2f} | {h95 / d95:.2f} |")
            figures.append({"rows": n, "request": name, "computed_p50_ms": round(c50, 2),
                            "computed_p95_ms": round(c95, 2), "cached_p50_ms": round(h50, 2),
                            "cached_p95_ms": round(h95, 2), "duckdb_p50_ms": round(d50, 2),
                            "duckdb_p95_ms": round(d95, 2), "computed_over_duckdb_p95": round(c95 / d95, 3),
                            "cached_over_duckdb_p95": round(h95 / d95, 3)})
            print(lines[-1], flush=True)
    notes += ["citybooks' figures are whole HTTP requests over one keep-alive connection (JSON encoding and "
              "body read included); DuckDB's are in-process `con.execute(sql).fetchall()` on in-memory tables.",
              "Every statement ran unchanged on DuckDB."]
    report("dashboard-latency.md", lines, notes, server_env, figures, args.json)


def report(name, lines, notes, server_env, figures, json_path):
    """Prints the table and its notes, writes them to bench/out/NAME, and the figures to
    json_path (if given)."""
    if server_env:
        notes.append("citybooks serve ran with " + ", ".join(f"{k}={v}" for k, v in server_env.items()))
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {x}" for x in notes) + "\n"
    print(text)
    with open(os.path.join(OUT, name), "w") as f:
        f.write(text)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()

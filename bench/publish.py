"""citybooks publish into a local PostgreSQL vs psql's \\copy, same run.

    python3 bench/publish.py [--rows 1000000,10000000] [--skip-build]

For each size: generates the ledger (citybooks-bench gen, the same files as
bench/run.py) and loads it into a fresh project; starts a throw-away PostgreSQL
(Debian's initdb/pg_ctl, as the postgres user when run as root; fsync on, as a real
server) on loopback. Then, in the same run:

- **citybooks publish** of everything into an empty database (`--json`: rows, seconds);
- **psql \\copy**, the way a user does it by hand: the five tables exported from
  citybooks to CSV beforehand (`citybooks query --format csv`, not timed), then, timed,
  one psql session that creates the same tables with the same DDL (citybooks' own, with
  keys) and `\\copy`s the five CSV files in, in one transaction;
- **an incremental publish**: one fiscal year restated (its rows of the generated file,
  loaded again: a load that replaces that year), then `citybooks publish`, which sends
  that year only;
- **a publish with nothing to send**: what every publish pays whatever it sends —
  connecting, checking the tables, and reading the whole fact table's per-year rows
  and totals to compare them with what was published.

Prints a Markdown table and writes it to bench/out/publish.md.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
RELEASE = os.path.join(ROOT, "target", "release")
CB = os.path.join(RELEASE, "citybooks")
PASSWORD = "bench password"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A throw-away cluster; fsync stays on (a publish is measured as on a real server)."""

    def __init__(self):
        bins = sorted(d for d in os.listdir("/usr/lib/postgresql"))
        self.bin = os.path.join("/usr/lib/postgresql", bins[-1], "bin")
        self.tmp = tempfile.mkdtemp(prefix="citybooks-pg-", dir=OUT)
        os.chmod(self.tmp, 0o755)
        self.dir = os.path.join(self.tmp, "data")
        os.mkdir(self.dir)
        pwfile = os.path.join(self.tmp, "pwfile")
        with open(pwfile, "w") as f:
            f.write(PASSWORD)
        self.root = os.geteuid() == 0
        if self.root:
            subprocess.run(["chown", "-R", "postgres:postgres", self.dir, pwfile], check=True)
        self.port = free_port()
        self.tool("initdb", "-D", self.dir, "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", f"--pwfile={pwfile}")
        self.tool("pg_ctl", "-D", self.dir, "-l", os.path.join(self.dir, "log"), "-w", "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c shared_buffers=1GB -c max_wal_size=8GB",
                  "start")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def tool(self, name, *args):
        cmd = [os.path.join(self.bin, name), *args]
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def psql(self, *args, **kw):
        env = dict(os.environ, PGPASSWORD=PASSWORD)
        return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                               "-p", str(self.port), "-U", "postgres", "-d", "postgres", *args],
                              env=env, check=True, capture_output=True, text=True, **kw)

    def stop(self):
        self.tool("pg_ctl", "-D", self.dir, "-m", "fast", "-w", "stop")
        shutil.rmtree(self.tmp, ignore_errors=True)


def citybooks(project, *args, env=None):
    e = dict(os.environ, PGPASSWORD=PASSWORD, **(env or {}))
    p = subprocess.run([CB, *args], cwd=project, env=e, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"citybooks {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


TABLES = ["program", "type", "fund", "finance", "transaction"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="1000000,10000000")
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "-p", "citybooks", "-p", "citybooks-bench"],
                       cwd=ROOT, check=True)
    os.makedirs(OUT, exist_ok=True)
    results = []
    for n in [int(x) for x in args.rows.split(",")]:
        ledger = os.path.join(OUT, f"ledger-{n}-api.csv")
        if not os.path.exists(ledger):
            subprocess.run([os.path.join(RELEASE, "citybooks-bench"), "gen", "--rows", str(n),
                            "--dialect", "api", "--out", ledger], check=True)
        project = os.path.join(OUT, f"publish-{n}")
        shutil.rmtree(project, ignore_errors=True)
        subprocess.run([CB, "init", project], check=True, stdout=subprocess.DEVNULL)
        citybooks(project, "load", "--no-progress", ledger)
        print(f"{n:,} rows loaded", file=sys.stderr)

        # The CSV files a user would \copy (exported before the clock starts).
        csvs = {}
        for t in TABLES:
            path = os.path.join(project, f"{t}.csv")
            with open(path, "w") as f:
                subprocess.run([CB, "query", "--format", "csv", f"select * from report.{t}"],
                               cwd=project, stdout=f, check=True)
            csvs[t] = path

        pg = Postgres()
        try:
            # citybooks publish, everything, into an empty database.
            full_s, out = timed(lambda: citybooks(project, "publish", pg.url, "--json"))
            full = json.loads(out)
            assert full["rows"] == n, full
            # psql \copy of the same rows into the same tables (citybooks' DDL, keys
            # and all), in one transaction, into another schema of the same server.
            ddl = subprocess.run(["pg_dump", "-s", "-n", "report", "-h", "127.0.0.1", "-p", str(pg.port),
                                  "-U", "postgres", "postgres"], env=dict(os.environ, PGPASSWORD=PASSWORD),
                                 capture_output=True, text=True, check=True).stdout
            ddl = ddl.replace("report.", "byhand.").replace("SCHEMA report", "SCHEMA byhand")
            script = os.path.join(project, "byhand.sql")
            with open(script, "w") as f:
                f.write("BEGIN;\n")
                f.write(ddl)
                for t in TABLES:
                    f.write(f"\\copy byhand.{t} from '{csvs[t]}' with (format csv, header true)\n")
                f.write("COMMIT;\n")
            copy_s, _ = timed(lambda: pg.psql("-f", script))
            counts = pg.psql("-At", "-c", "select count(*) from byhand.transaction").stdout.strip()
            assert int(counts) == n, counts

            # An incremental publish: one fiscal year restated.
            year = 2013
            one = os.path.join(project, f"fy{year}.csv")
            with open(ledger) as src, open(one, "w") as dst:
                header = src.readline()
                dst.write(header)
                rows = 0
                for line in src:
                    if line.startswith(f'"{year}"'):
                        dst.write(line)
                        rows += 1
            citybooks(project, "load", "--no-progress", one)
            inc_s, out = timed(lambda: citybooks(project, "publish", pg.url, "--json"))
            inc = json.loads(out)
            assert inc["years"] == [year] and inc["rows"] == rows, inc
            # A publish with nothing to send: connecting, checking the tables and the
            # whole fact table's per-year figures, the part that grows with the table.
            idle_s, out = timed(lambda: citybooks(project, "publish", pg.url, "--json"))
            assert json.loads(out)["up_to_date"], out
            results.append((n, full_s, copy_s, rows, inc_s, idle_s))
        finally:
            pg.stop()
            shutil.rmtree(project, ignore_errors=True)

    lines = [
        "| rows | citybooks publish (full) | psql \\copy, same rows and DDL | publish / \\copy | one fiscal year restated | incremental publish | incremental / full | publish with nothing to send |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, full_s, copy_s, rows, inc_s, idle_s in results:
        lines.append(f"| {n:,} | {full_s:.2f} s | {copy_s:.2f} s | {full_s / copy_s:.2f} | {rows:,} rows ({rows / n:.1%}) | {inc_s:.2f} s | {inc_s / full_s:.1%} | {idle_s:.2f} s |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(OUT, "publish.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()

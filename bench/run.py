"""citybooks' load benchmark: one command, figures for the README.

    python3 bench/run.py [--rows 1000000,10000000] [--dialect api] [--json FILE]

Builds citybooks in release mode, generates deterministic ledgers (citybooks-bench gen)
under bench/out/, then for each size loads the file into a fresh project with
`citybooks load` and does the same job with DuckDB (bench/duckdb_load.py), in the same
run, measuring wall time and peak RSS (wait4 rusage) of each. Prints a Markdown table
and writes it to bench/out/results.md; --json FILE also writes every figure of the table
there (a list of objects, one per row, keys named after the columns), for a script that
compares runs.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
RELEASE = os.path.join(ROOT, "target", "release")


def measure(cmd, **kw):
    """Runs cmd; returns (seconds, peak RSS in MiB, stdout)."""
    start = time.perf_counter()
    with open(os.path.join(OUT, "stdout.txt"), "w+b") as fo, open(os.path.join(OUT, "stderr.txt"), "w+b") as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, **kw)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - start
        fo.seek(0)
        fe.seek(0)
        out = fo.read().decode()
        err = fe.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out}\n{err}")
    return seconds, usage.ru_maxrss / 1024, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="1000000,10000000")
    ap.add_argument("--dialect", default="api", choices=["api", "portal"])
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the table's figures to FILE as JSON")
    args = ap.parse_args()
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "-p", "citybooks", "-p", "citybooks-bench"], cwd=ROOT, check=True)
    os.makedirs(OUT, exist_ok=True)
    import duckdb  # noqa: F401  (fail early if the peer is missing: pip install duckdb)

    rows_out = []
    for n in [int(x) for x in args.rows.split(",")]:
        ledger = os.path.join(OUT, f"ledger-{n}-{args.dialect}.csv")
        if not os.path.exists(ledger):
            subprocess.run([os.path.join(RELEASE, "citybooks-bench"), "gen", "--rows", str(n),
                            "--dialect", args.dialect, "--out", ledger], check=True)
        size_mb = os.path.getsize(ledger) / 1e6
        # Warm the page cache for both tools alike.
        with open(ledger, "rb") as f:
            while f.read(1 << 24):
                pass
        project = os.path.join(OUT, f"project-{n}")
        shutil.rmtree(project, ignore_errors=True)
        subprocess.run([os.path.join(RELEASE, "citybooks"), "init", project], check=True, stdout=subprocess.DEVNULL)
        cb_s, cb_rss, out = measure([os.path.join(RELEASE, "citybooks"), "load", "--no-progress", ledger], cwd=project)
        print(out.strip().splitlines()[0], file=sys.stderr)
        duck_dir = os.path.join(OUT, f"duckdb-{n}")
        shutil.rmtree(duck_dir, ignore_errors=True)
        dk_s, dk_rss, _ = measure([sys.executable, os.path.join(ROOT, "bench", "duckdb_load.py"), ledger, duck_dir])
        rows_out.append((n, size_mb, cb_s, cb_rss, dk_s, dk_rss))
        shutil.rmtree(project, ignore_errors=True)
        shutil.rmtree(duck_dir, ignore_errors=True)

    lines = [
        f"| rows | file ({args.dialect}) | citybooks load | rows/s | MB/s | peak RSS | DuckDB same job | DuckDB RSS | citybooks / DuckDB time |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, mb, cs, cr, ds, dr in rows_out:
        lines.append(f"| {n:,} | {mb:,.0f} MB | {cs:.2f} s | {n / cs:,.0f} | {mb / cs:,.0f} | {cr:,.0f} MiB | {ds:.2f} s | {dr:,.0f} MiB | {cs / ds:.2f} |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(table + "\n")
    if args.json:
        figures = [{"rows": n, "dialect": args.dialect, "file_mb": round(mb, 1), "citybooks_s": round(cs, 3),
                    "rows_per_s": round(n / cs), "mb_per_s": round(mb / cs, 1), "citybooks_rss_mib": round(cr),
                    "duckdb_s": round(ds, 3), "duckdb_rss_mib": round(dr), "citybooks_over_duckdb": round(cs / ds, 3)}
                   for n, mb, cs, cr, ds, dr in rows_out]
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()

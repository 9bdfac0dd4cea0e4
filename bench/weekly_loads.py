"""A warehouse that lives for years: many consecutive weekly loads, with and without
`citybooks vacuum`, and whether load time, query time and the files a query reads stay
flat.

    python3 bench/weekly_loads.py [--rows 1000000] [--weeks 500] [--vacuum-every 52] [--skip-build]

Loads the generated ledger (citybooks-bench gen, as bench/run.py), then replays
`--weeks` weekly files of its newest fiscal year: week w holds the first
(1 - (weeks - w) / (4 * weeks)) of the year's rows, so the year grows a little every
week as a real one does (the shrink guard never holds it), with the amounts of one
row in a hundred restated. Every `--vacuum-every` weeks `citybooks vacuum
--retention-hours 0` runs (0: never). Every 25 weeks it measures a dashboard query's
time (`citybooks query`, so process start included), and counts the Parquet files of
`report.transaction` in the store and its Delta log entries.

Prints a Markdown table (one row per 25 weeks) and writes bench/out/weekly_loads.md.
"""
import argparse
import csv
import os
import subprocess
import sys
import time

from ledger import CB, OUT, arguments, fresh_project, publish
QUERY = ("select o.organization_group, sum(t.amount) from report.transaction t "
         "join report.program o on t.program_id = o.program_id group by 1 order by 2 desc")


def run(project, *args):
    started = time.monotonic()
    p = subprocess.run([CB, *args], cwd=project, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"citybooks {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return time.monotonic() - started


def count_files(project):
    root = os.path.join(project, "store", "warehouse", "report", "transaction")
    data = log = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            if "_delta_log" in dirpath:
                log += n.endswith(".json")
            elif n.endswith(".parquet"):
                data += 1
    return data, log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weeks", type=int, default=500)
    ap.add_argument("--vacuum-every", type=int, default=52)
    args, ledger = arguments(ap)
    with open(ledger, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        fy, amount = header.index("fiscal_year"), header.index("amount")
        rows = list(reader)
        year = max(r[fy] for r in rows)
        year_rows = [r for r in rows if r[fy] == year]
    project = fresh_project(f"weekly-{args.rows}")
    run(project, "load", "--no-progress", ledger)
    weekly = os.path.join(OUT, "weekly-file.csv")
    table, load_times = [], []
    for week in range(1, args.weeks + 1):
        n = round(len(year_rows) * (1 - (args.weeks - week) / (4 * args.weeks)))
        with open(weekly, "w", newline="") as f:
            w = csv.writer(f, quoting=csv.QUOTE_ALL)
            w.writerow(header)
            for i, r in enumerate(year_rows[:n]):
                if i % 100 == week % 100:
                    r = list(r)
                    cents = round(float(r[amount]) * 100) + week
                    r[amount] = f"{cents / 100:.2f}"
                w.writerow(r)
        # Week 1 holds three quarters of the year the ledger has whole: a deliberate
        # restart of the year, past the shrink guard; every later week grows it.
        force = ["--replace-years"] if week == 1 else []
        load_times.append(run(project, "load", "--no-progress", *force, weekly))
        if args.vacuum_every and week % args.vacuum_every == 0:
            run(project, "vacuum", "--retention-hours", "0")
        if week % 25 == 0 or week == 1:
            query = min(run(project, "query", "--format", "csv", QUERY) for _ in range(3))
            data, log = count_files(project)
            recent = load_times[-25:]
            table.append((week, sum(recent) / len(recent), query, data, log))
            print(f"week {week}: load {recent[-1]:.2f} s, query {query:.2f} s, "
                  f"{data} data files, {log} log entries", file=sys.stderr)
    lines = [
        f"{args.weeks} weekly loads of fiscal year {year} ({len(year_rows):,} rows at the end) "
        f"into a {args.rows:,}-row warehouse; vacuum every {args.vacuum_every or 'never'} weeks.",
        "",
        "| week | mean load (last 25), s | dashboard query, s | report.transaction data files | log entries |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ] + [f"| {w} | {l:.2f} | {q:.2f} | {d} | {g} |" for w, l, q, d, g in table]
    publish(f"weekly_loads_{'vacuum' if args.vacuum_every else 'novacuum'}.md", "\n".join(lines))


if __name__ == "__main__":
    main()

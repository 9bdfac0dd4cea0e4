"""Soak test: `citybooks load` killed with SIGKILL at random moments, again and again.

    python3 bench/soak_kill.py [--rows 1000000] [--iterations 100] [--seed 1] [--whole] [--skip-build]

Generates the ledger (citybooks-bench gen, the same file as bench/run.py) and loads it
into a fresh project. Then two versions of its newest fiscal year are made — the year's
rows as generated (V1) and the same rows with every amount raised by one cent (V2): the
same row counts, so the shrink guard never holds them (with --whole: two versions of the
whole ledger, so every kill lands in a load of all its rows). Each iteration loads the other
version, kills the load (`kill -9`) at a random moment between its start and its
measured duration, and checks:

- the warehouse equals either the state before that load or the state after it
  (per-year row counts, sums and distinct transaction ids; no fact row without its
  dimension members; no duplicated member) — never anything else;
- the next load of the same file, not killed, is correct (the state after it).

Prints how many kills landed before the commit (state before) and after it (state
after), and the failures (must be 0); writes bench/out/soak_kill.md.
"""
import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import time

from ledger import CB, OUT, arguments, fresh_project
# A killed load's writer lease runs out after [load] lease_secs; short, so the next
# load does not wait the default 30 s.
ENV = dict(os.environ, CITYBOOKS_LOAD_LEASE_SECS="3")

FINGERPRINT = [
    "select fiscal_year, count(*), sum(amount), count(distinct transaction_id) from report.transaction group by fiscal_year order by fiscal_year",
    "select count(*) from report.transaction t left join report.program p on t.program_id = p.program_id left join report.type ty on t.type_id = ty.type_id left join report.fund fu on t.fund_id = fu.fund_id where p.program_id is null or ty.type_id is null or fu.fund_id is null",
    "select (select count(*) - count(distinct program_id) from report.program) + (select count(*) - count(distinct type_id) from report.type) + (select count(*) - count(distinct fund_id) from report.fund)",
]


def citybooks(project, *args):
    p = subprocess.run([CB, *args], cwd=project, capture_output=True, text=True, env=ENV)
    if p.returncode != 0:
        sys.exit(f"citybooks {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


def fingerprint(project):
    return [citybooks(project, "query", "--format", "csv", sql) for sql in FINGERPRINT]


def year_versions(ledger, out_dir, whole=False):
    """The newest fiscal year's rows (every row with `whole`) as generated, and with
    every amount + 0.01."""
    with open(ledger, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        fy, amount = header.index("fiscal_year"), header.index("amount")
        rows = list(reader)
    year = "all" if whole else max(r[fy] for r in rows)
    mine = rows if whole else [r for r in rows if r[fy] == year]
    paths = []
    for name, bump in [("v1", 0), ("v2", 1)]:
        path = os.path.join(out_dir, f"soak-{year}-{name}.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f, quoting=csv.QUOTE_ALL)
            w.writerow(header)
            for r in mine:
                r = list(r)
                if bump:
                    cents = round(float(r[amount]) * 100) + bump
                    r[amount] = f"{cents / 100:.2f}"
                w.writerow(r)
        paths.append(path)
    return year, len(mine), paths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--whole", action="store_true",
                    help="kill loads of the whole ledger, not of its newest year")
    args, ledger = arguments(ap)
    project = fresh_project(f"soak-{args.rows}")
    citybooks(project, "load", "--no-progress", ledger)
    year, year_rows, versions = year_versions(ledger, OUT, args.whole)
    print(f"{args.rows:,} rows loaded; fiscal year {year} ({year_rows:,} rows) in two versions",
          file=sys.stderr)

    # The two states, and how long a load of one version takes (not killed).
    states, durations = [], []
    for path in versions:
        started = time.monotonic()
        citybooks(project, "load", "--no-progress", path)
        durations.append(time.monotonic() - started)
        states.append(fingerprint(project))
    assert states[0] != states[1], "the two versions must differ"
    load_s = max(durations)
    print(f"a load of one version takes {load_s:.2f} s", file=sys.stderr)

    rng = random.Random(args.seed)
    current = 1  # the state now: version 2 is in
    landed = {"before": 0, "after": 0, "finished": 0}
    failures = []
    started_all = time.monotonic()
    for i in range(args.iterations):
        target = 1 - current
        delay = rng.uniform(0, load_s)
        child = subprocess.Popen([CB, "load", "--no-progress", versions[target]], cwd=project,
                                 env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.wait()
            killed = True
        else:
            killed = False
        seen = fingerprint(project)
        if seen == states[current]:
            landed["before"] += 1
        elif seen == states[target]:
            landed["after" if killed else "finished"] += 1
        else:
            failures.append(f"iteration {i}: kill after {delay:.2f} s left a state that is neither")
        # The next load is correct. A lease left by the killed load runs out first
        # ([load] lease_secs), which this waits for.
        citybooks(project, "load", "--no-progress", versions[target])
        if fingerprint(project) != states[target]:
            failures.append(f"iteration {i}: the load after the kill is wrong")
        current = target
        print(f"iteration {i + 1}/{args.iterations}: kill at {delay:.2f} s, {landed}",
              file=sys.stderr)
    elapsed = time.monotonic() - started_all

    table = "\n".join([
        f"Soak: {args.iterations} loads of {year_rows:,} rows (fiscal years {year} of a "
        f"{args.rows:,}-row warehouse) killed with SIGKILL at a random moment of their "
        f"{load_s:.1f} s, seed {args.seed}, {elapsed / 60:.1f} min.",
        "",
        "| outcome | iterations |",
        "| --- | --- |",
        f"| killed, state before the load | {landed['before']} |",
        f"| killed after the commit, state after the load | {landed['after']} |",
        f"| finished before the kill | {landed['finished']} |",
        f"| **failures** (another state, or a wrong next load) | **{len(failures)}** |",
    ])
    print(table)
    for f in failures:
        print(f)
    name = "soak_kill_whole.md" if args.whole else "soak_kill.md"
    with open(os.path.join(OUT, name), "a") as f:
        f.write(table + "\n")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

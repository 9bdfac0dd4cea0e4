"""What explaining the numbers costs: the line index and change summary of a load, a
`citybooks changes` of a full restatement, a load's quality report, and a row's original
line, on generated ledgers.

    python3 bench/lineage.py [--rows 1000000]

Uses the release binaries (cargo build --release first). Generates two ledgers of the
same size with different seeds (every fiscal year's figures differ: a restatement of
every year), loads them one after the other into a fresh project, and times each step.
"""
import argparse
import json
import os
import shutil
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
CB = os.path.join(ROOT, "target", "release", "citybooks")
GEN = os.path.join(ROOT, "target", "release", "citybooks-bench")


def timed(cmd, cwd):
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    rows = ap.parse_args().rows
    os.makedirs(OUT, exist_ok=True)
    files = []
    for seed in (1, 2):
        path = os.path.join(OUT, f"ledger-{rows}-api-seed{seed}.csv")
        if not os.path.exists(path):
            subprocess.run([GEN, "gen", "--rows", str(rows), "--dialect", "api", "--seed", str(seed), "--out", path],
                           check=True, stdout=subprocess.DEVNULL)
        files.append(path)
    project = os.path.join(OUT, "lineage-project")
    shutil.rmtree(project, ignore_errors=True)
    subprocess.run([CB, "init", project], check=True, stdout=subprocess.DEVNULL)
    print(f"| step ({rows:,} rows) | seconds | note |")
    print("| --- | ---: | --- |")
    for n, path in enumerate(files, 1):
        wall, out = timed([CB, "load", "--no-progress", "--json", path], project)
        report = json.loads(out)
        index = os.path.join(project, "store", "index", "lines", report["content_hash"] + ".json")
        print(f"| load {n}: wall | {wall:.2f} | the load itself {report['seconds']:.2f} s; the rest is the change "
              f"summary and the process; line index {os.path.getsize(index) / 1024:.0f} KiB |")
    wall, out = timed([CB, "changes", "--format", "json"], project)
    years = len(json.loads(out)["years"])
    print(f"| citybooks changes, load 1 → 2 | {wall:.2f} | {years} fiscal years restated, compared grain by grain |")
    wall, _ = timed([CB, "status", "--load", "2", "--json"], project)
    print(f"| citybooks status --load 2 | {wall:.2f} | quarantine, placeholders, jumps against load 1 |")


if __name__ == "__main__":
    main()

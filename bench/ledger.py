"""What the benchmarks share: the release build and the generated ledgers
(citybooks-bench gen, the same files bench/run.py loads)."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
RELEASE = os.path.join(ROOT, "target", "release")


def build(skip):
    """Builds citybooks and citybooks-bench in release mode unless `skip`."""
    if not skip:
        subprocess.run(["cargo", "build", "--release", "-p", "citybooks", "-p", "citybooks-bench"],
                       cwd=ROOT, check=True)
    os.makedirs(OUT, exist_ok=True)


def api_ledger(rows):
    """The generated API-dialect ledger of `rows` rows in bench/out, made if missing."""
    path = os.path.join(OUT, f"ledger-{rows}-api.csv")
    if not os.path.exists(path):
        subprocess.run([os.path.join(RELEASE, "citybooks-bench"), "gen", "--rows", str(rows),
                        "--dialect", "api", "--out", path], check=True)
    return path

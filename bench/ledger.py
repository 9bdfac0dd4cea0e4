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


CB = os.path.join(RELEASE, "citybooks")


def arguments(ap):
    """Adds what every soak and load benchmark takes (--rows, --skip-build) to `ap`,
    parses the command line, makes the release build and the generated ledger of
    --rows rows. Returns (args, the ledger's path)."""
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    build(args.skip_build)
    return args, api_ledger(args.rows)


def fresh_project(name):
    """An empty citybooks project in bench/out/NAME (whatever was there goes)."""
    import shutil
    project = os.path.join(OUT, name)
    shutil.rmtree(project, ignore_errors=True)
    subprocess.run([CB, "init", project], check=True, stdout=subprocess.DEVNULL)
    return project


def publish(name, text):
    """Prints a benchmark's Markdown report and writes it to bench/out/NAME."""
    print(text)
    with open(os.path.join(OUT, name), "w") as f:
        f.write(text + "\n")

"""Soak test: `citybooks serve` killed with SIGKILL during SFTP uploads, again and again.

    python3 bench/soak_serve.py [--rows 1000000] [--iterations 100] [--seed 1] [--skip-build]

Loads the generated ledger (as bench/soak_kill.py) into a fresh project with an SFTP
user, and makes the same two versions of its newest fiscal year (V1 as generated, V2
with every amount one cent up). Each iteration starts `serve`, waits until every upload
in the user's home has its load report, uploads the other version with OpenSSH's `sftp`
(at 40 Mbit/s) under a new name, and kills `serve` (`kill -9`) at a random moment between the start of
the upload and the measured end of its load. Then, with `serve` down, it checks:

- no upload is half-published: every `.csv` in the home is byte-identical to V1 or V2,
  and nothing else is there but load reports and the parts of unfinished uploads the
  local store stages beside them (`name#N`: no listing, read or load sees them);
- the warehouse is the state before or after that upload's load (per-year counts, sums
  and distinct transaction ids; no orphan facts; no duplicated member);

and after the restart (an upload published but not reported is loaded again when serve
starts): the warehouse is the state after the upload if it was published, before it if
not, and the parts of killed uploads are removed (serve sweeps parts older than the
SFTP idle timeout, 2 s here). Prints where the kills landed and the failures (must be 0); writes
bench/out/soak_serve.md.
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time

from ledger import CB, OUT, arguments, fresh_project, publish
from soak_kill import ENV, citybooks, fingerprint, year_versions

# A short SFTP idle timeout: serve removes the parts killed uploads left once they are
# older than it (the default, 600 s, would outlast the soak).
SERVE_ENV = dict(ENV, CITYBOOKS_SFTP_LISTEN="127.0.0.1", CITYBOOKS_SQL_LISTEN="127.0.0.1",
                 CITYBOOKS_HTTP_LISTEN="127.0.0.1", CITYBOOKS_SFTP_IDLE_TIMEOUT_SECS="2")
USER = "alice"
# The uploads' bandwidth (sftp -l, Kbit/s): 40 Mbit/s, so an upload of the year takes a
# few seconds, as over a city office's link, and the kills land in it as often as in the
# load after it (on loopback it takes 0.2 s against the load's 0.6 s).
LINK_KBITS = 40_000


class Serve:
    """`citybooks serve` on ports the system picks; its output kept in `lines`."""

    def __init__(self, project, env=SERVE_ENV):
        self.proc = subprocess.Popen(
            [CB, "serve", "--sftp-port", "0", "--sql-port", "0", "--http-port", "0"],
            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        self.lines, self.sftp = [], None
        deadline = time.monotonic() + 120
        for line in self.proc.stdout:
            self.lines.append(line)
            if "SFTP" in line and "listening on" in line:
                self.sftp = int(line.rsplit(":", 1)[1])
            if line.startswith("ready"):
                break
            if time.monotonic() > deadline:
                break
        if self.sftp is None:
            sys.exit("serve did not start:\n" + "".join(self.lines))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def home(project):
    return os.path.join(project, "store", "raw", USER)


def is_part(name):
    """A part of an unfinished multipart upload in a local store: `name#N`."""
    stem, _, n = name.rpartition("#")
    return bool(stem) and n.isdigit()


def settled(project, timeout=180):
    """Waits until every .csv in the home has its load report."""
    deadline = time.monotonic() + timeout
    while True:
        names = set(os.listdir(home(project))) if os.path.isdir(home(project)) else set()
        waiting = [n for n in names if n.endswith(".csv") and n + ".load.json" not in names]
        if not waiting:
            return
        if time.monotonic() > deadline:
            sys.exit(f"uploads never reported: {waiting}")
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args, ledger = arguments(ap)
    project = fresh_project(f"soak-serve-{args.rows}")
    key = os.path.join(project, "alice-key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    citybooks(project, "user", "add", USER, "--key", key + ".pub")
    citybooks(project, "load", "--no-progress", ledger)
    year, year_rows, versions = year_versions(ledger, OUT)
    sources = [open(v, "rb").read() for v in versions]
    print(f"{args.rows:,} rows loaded; fiscal year {year} ({year_rows:,} rows, "
          f"{len(sources[0]):,} bytes) in two versions", file=sys.stderr)

    def put(serve, version, name):
        p = subprocess.Popen(
            ["sftp", "-b", "-", "-l", str(LINK_KBITS), "-P", str(serve.sftp), "-i", key,
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=yes", f"{USER}@127.0.0.1"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True)
        p.stdin.write(f"put {versions[version]} {name}\n")
        p.stdin.close()
        return p

    # Calibration: both versions uploaded and loaded, not killed; the two states, and
    # how long an upload and its load take.
    serve = Serve(project)
    states, durations = [], []
    for v in (0, 1):
        started = time.monotonic()
        client = put(serve, v, f"calibrate-{v}.csv")
        client.wait()
        settled(project)
        durations.append(time.monotonic() - started)
        states.append(fingerprint(project))
    serve.kill()
    assert states[0] != states[1], "the two versions must differ"
    window = max(durations)
    print(f"an upload and its load take {window:.2f} s", file=sys.stderr)

    rng = random.Random(args.seed)
    current = 1
    landed = {"unpublished": 0, "published, loaded on restart": 0,
              "published and loaded": 0}
    failures = []
    parts_seen = 0
    started_all = time.monotonic()
    for i in range(args.iterations):
        serve = Serve(project)
        settled(project)
        target = 1 - current
        name = f"week-{i:04}.csv"
        delay = rng.uniform(0, window)
        client = put(serve, target, name)
        time.sleep(delay)
        serve.kill()
        client.wait()
        # With serve down: nothing half-published, and the state before or after.
        names = os.listdir(home(project))
        for n in names:
            path = os.path.join(home(project), n)
            if n.endswith(".load.json"):
                continue
            if is_part(n):
                parts_seen += 1  # never visible: listings, reads and loads skip it
            elif not n.endswith(".csv"):
                failures.append(f"iteration {i}: a stray file in the home: {n}")
            elif open(path, "rb").read() not in sources:
                failures.append(f"iteration {i}: {n} is half-published "
                                f"({os.path.getsize(path):,} bytes)")
        published = name in names
        reported = name + ".load.json" in names
        seen = fingerprint(project)
        if seen not in (states[current], states[target]):
            failures.append(f"iteration {i}: kill after {delay:.2f} s left a state that is neither")
        if not published:
            landed["unpublished"] += 1
        elif reported and seen == states[target]:
            landed["published and loaded"] += 1
        else:
            landed["published, loaded on restart"] += 1
        # After a restart the queue settles: a published upload is loaded.
        serve = Serve(project)
        settled(project)
        expected = target if published else current
        if fingerprint(project) != states[expected]:
            failures.append(f"iteration {i}: after the restart the warehouse is not the state "
                            f"{'after' if published else 'before'} the upload")
        # ... and removes the parts killed uploads left, once older than the idle timeout.
        deadline = time.monotonic() + 15
        while any(is_part(n) for n in os.listdir(home(project))):
            if time.monotonic() > deadline:
                failures.append(f"iteration {i}: parts of killed uploads were never removed")
                break
            time.sleep(0.2)
        serve.kill()
        current = expected
        print(f"iteration {i + 1}/{args.iterations}: kill at {delay:.2f} s, {landed}, "
              f"{len(failures)} failures", file=sys.stderr)
    elapsed = time.monotonic() - started_all

    # The next upload, not killed, is loaded correctly.
    serve = Serve(project)
    settled(project)
    target = 1 - current
    put(serve, target, "final.csv").wait()
    settled(project)
    if fingerprint(project) != states[target]:
        failures.append("the upload after the last kill is loaded wrong")
    serve.kill()

    text = "\n".join([
        f"Soak: `serve` killed with SIGKILL {args.iterations} times during an SFTP upload of "
        f"fiscal year {year} ({year_rows:,} rows, {len(sources[0]):,} bytes) into a "
        f"{args.rows:,}-row warehouse, at a random moment of the {window:.1f} s an upload and "
        f"its load take; seed {args.seed}, {elapsed / 60:.1f} min.",
        "",
        "| where the kill landed | iterations |",
        "| --- | ---: |",
    ] + [f"| {k} | {v} |" for k, v in landed.items()] + [
        "",
        f"Parts of killed uploads seen while serve was down: {parts_seen} (never listed, "
        "read or loaded; all removed after the restart).",
        "",
        f"Failures: {len(failures)}",
    ] + [f"- {f}" for f in failures])
    publish("soak_serve.md", text)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

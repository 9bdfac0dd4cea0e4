"""citybooks' SFTP upload benchmark: one command, figures for the README.

    python3 bench/sftp_upload.py [--mib 1024]

Uploads the same file (default 1 GiB) over loopback with OpenSSH's `sftp` client, in
the same run, to:
  1. citybooks serve (release build), storing into a fresh project's local store, and
  2. OpenSSH's own sshd + sftp-server (Debian openssh-server), started here on a spare
     port with its own host key and `UsePAM no`, writing to local disk.
Reports wall time, MB/s, the ratio, and citybooks' RSS before and at its peak during
the upload (VmRSS / VmHWM from /proc). The file is not a CSV, so no load runs.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CITYBOOKS = os.path.join(ROOT, "target", "release", "citybooks")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def upload(port, key, user, src, workdir):
    batch = os.path.join(workdir, "batch")
    with open(batch, "w") as f:
        f.write(f"put {src} upload.bin\n")
    start = time.perf_counter()
    subprocess.run(
        ["sftp", "-b", batch, "-P", str(port), "-i", key,
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "IdentitiesOnly=yes", f"{user}@127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    args = ap.parse_args()
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        sys.exit("OpenSSH's server is needed: apt-get install openssh-server")
    sftp_server = next((p for p in ["/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server"] if os.path.exists(p)), None)
    if not os.path.exists(CITYBOOKS):
        sys.exit("build first: cargo build --release")
    tmp = tempfile.mkdtemp(prefix="citybooks-sftp-bench-")
    try:
        src = os.path.join(tmp, "payload.bin")
        with open(src, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(args.mib):
                f.write(block)
        key = os.path.join(tmp, "key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)

        # citybooks
        project = os.path.join(tmp, "books")
        subprocess.run([CITYBOOKS, "init", project], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([CITYBOOKS, "user", "add", "bench", "--key", key + ".pub"], cwd=project, check=True, stdout=subprocess.DEVNULL)
        cb_port = free_port()
        env = dict(os.environ, CITYBOOKS_SFTP_LISTEN="127.0.0.1")
        server = subprocess.Popen([CITYBOOKS, "serve", "--sftp-port", str(cb_port)], cwd=project, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(cb_port)
        rss_before = rss_kib(server.pid, "VmRSS")
        cb_s = upload(cb_port, key, "bench", src, tmp)
        rss_peak = rss_kib(server.pid, "VmHWM")
        server.terminate()
        server.wait()
        stored = os.path.join(project, "store", "raw", "bench", "upload.bin")
        assert os.path.getsize(stored) == args.mib << 20, "citybooks stored the whole file"

        # OpenSSH sshd + sftp-server, writing to local disk
        home = os.path.join(tmp, "sshd-home")
        os.makedirs(home)
        host_key = os.path.join(tmp, "ssh_host_ed25519_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key], check=True)
        auth = os.path.join(tmp, "authorized_keys")
        shutil.copy(key + ".pub", auth)
        os.chmod(auth, 0o600)
        user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        port = free_port()
        config = os.path.join(tmp, "sshd_config")
        with open(config, "w") as f:
            f.write(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
AuthorizedKeysFile {auth}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
PidFile {tmp}/sshd.pid
Subsystem sftp {sftp_server} -d {home}
""")
        os.makedirs("/run/sshd", exist_ok=True)
        sshd_proc = subprocess.Popen([sshd, "-D", "-e", "-f", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        ssh_s = upload(port, key, user, src, tmp)
        sshd_proc.terminate()
        sshd_proc.wait()
        assert os.path.getsize(os.path.join(home, "upload.bin")) == args.mib << 20

        mb = (args.mib << 20) / 1e6
        lines = [
            f"| upload of {args.mib} MiB over loopback (OpenSSH sftp client) | time | MB/s |",
            "| --- | ---: | ---: |",
            f"| citybooks serve → local store | {cb_s:.2f} s | {mb / cb_s:,.0f} |",
            f"| OpenSSH sshd + sftp-server → local disk | {ssh_s:.2f} s | {mb / ssh_s:,.0f} |",
            "",
            f"citybooks / OpenSSH throughput: {(mb / cb_s) / (mb / ssh_s):.2f}; "
            f"citybooks RSS {rss_before / 1024:.0f} MiB before, peak {rss_peak / 1024:.0f} MiB during the upload "
            f"(growth {(rss_peak - rss_before) / 1024:.0f} MiB).",
        ]
        print("\n".join(lines))
        os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
        with open(os.path.join(ROOT, "bench", "out", "sftp-results.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Hostile SFTP requests for tests/sftp.rs, through paramiko (PyPI).

Usage: python3 sftp_attacks.py PORT USER KEYFILE LOCAL_CSV
Tries each request below on one session and prints one JSON object: for each, whether
the server refused it ("refused") or carried it out ("done"). The Rust test checks that
every one was refused and that nothing outside the user's home changed.
"""
import io
import json
import sys

import paramiko

from sftp_session import connect


def main():
    port, user, keyfile, local = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    transport, sftp = connect(port, user, keyfile)
    with open(local, "rb") as f:
        data = f.read()
    sftp.put(local, "mine.csv")

    def put(name):
        return lambda: sftp.putfo(io.BytesIO(data), name, confirm=False)

    attempts = {
        "put ../escape.csv": put("../escape.csv"),
        "put /../../escape.csv": put("/../../escape.csv"),
        "put ../other/x.csv": put("../other/x.csv"),
        # The home is store/raw/USER: ../../../citybooks.toml is the project's own
        # configuration, a file that exists (the Rust test checks), so only the jail
        # can refuse these.
        "get ../../../citybooks.toml": lambda: sftp.getfo("../../../citybooks.toml", io.BytesIO()),
        "get /../../../citybooks.toml": lambda: sftp.getfo("/../../../citybooks.toml", io.BytesIO()),
        "stat ../other": lambda: sftp.stat("../other"),
        "listdir ..": lambda: sftp.listdir(".."),
        "symlink to citybooks.toml": lambda: sftp.symlink("../../../citybooks.toml", "link.csv"),
        "symlink out of the home": lambda: sftp.symlink("/etc/passwd", "passwd.csv"),
        "readlink": lambda: sftp.readlink("mine.csv"),
        "put a forged load report": put("mine.csv.load.json"),
        "rename onto a load report": lambda: sftp.rename("mine.csv", "other.csv.load.json"),
        "put a folder marker": put(".folder"),
        "mkdir a folder marker": lambda: sftp.mkdir(".folder"),
        "put a 4096-character name": put("x" * 4092 + ".csv"),
        "put a name with a NUL": put("a\x00b.csv"),
        "rename out of the home": lambda: sftp.rename("mine.csv", "../moved.csv"),
        "remove out of the home": lambda: sftp.remove("../other/x.csv"),
        "rmdir the home": lambda: sftp.rmdir("."),
        "chmod out of the home": lambda: sftp.chmod("../other/x.csv", 0o777),
    }
    seen = {}
    for name, attempt in attempts.items():
        try:
            attempt()
            seen[name] = "done"
        except (IOError, OSError, paramiko.SSHException, UnicodeError):
            seen[name] = "refused"
    # A name that is not UTF-8, on a session of its own: a server may end the session
    # that sent it, and the attempts above must not pass for refused because of that.
    other, other_sftp = connect(port, user, keyfile)
    try:
        other_sftp.putfo(
            io.BytesIO(data), b"\xff\xfe-latin-1-caf\xe9.csv", confirm=False)
        seen["put a non-UTF-8 name"] = "done"
    except (IOError, OSError, paramiko.SSHException, UnicodeError, EOFError):
        seen["put a non-UTF-8 name"] = "refused"
    other.close()
    listing = sorted(sftp.listdir("."))
    sftp.close()
    transport.close()
    print(json.dumps({"attempts": seen, "listing": listing}))


if __name__ == "__main__":
    main()

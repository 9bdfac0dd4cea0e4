"""A second SFTP client for tests/sftp.rs: paramiko (PyPI).

Usage: python3 paramiko_client.py PORT USER KEYFILE LOCAL_CSV
Uploads LOCAL_CSV as upload.csv, lists the home, stats and downloads it back, renames
a copy and removes it, then prints one JSON object describing what it saw.
"""
import hashlib
import io
import json
import sys

from sftp_session import connect


def main():
    port, user, keyfile, local = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    transport, sftp = connect(port, user, keyfile)
    sftp.put(local, "upload.csv")
    listing = sorted(sftp.listdir("."))
    size = sftp.stat("upload.csv").st_size
    back = io.BytesIO()
    sftp.getfo("upload.csv", back)
    sftp.put(local, "copy.txt")
    sftp.rename("copy.txt", "renamed.txt")
    sftp.remove("renamed.txt")
    try:
        sftp.stat("../other-user/secret.csv")
        escaped = True
    except IOError:
        escaped = False
    after = sorted(sftp.listdir("."))
    sftp.close()
    transport.close()
    with open(local, "rb") as f:
        original = f.read()
    print(json.dumps({
        "listing": listing,
        "size": size,
        "same": hashlib.sha256(back.getvalue()).hexdigest() == hashlib.sha256(original).hexdigest(),
        "after": after,
        "escaped": escaped,
    }))


if __name__ == "__main__":
    main()

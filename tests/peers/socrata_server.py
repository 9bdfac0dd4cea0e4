"""A Socrata open-data portal, as far as citybooks fetch uses one, over a CSV file, on
loopback, with faults on demand. The behaviour it copies is Socrata's SODA 2.0 API
(dev.socrata.com/docs: paging.html, queries/, app-tokens.html, response-codes.html):

- GET /resource/<id>.json?$select=count(*) AS n[&$where=...] -> [{"n": "<count>"}]
  (numbers come back as strings, as Socrata sends them);
- GET /resource/<id>.csv?$limit=&$offset=&$order=&$where= -> a header row, then the rows,
  every field quoted; $order=:id keeps the file's order;
- $where understands fiscal_year = 'Y' and fiscal_year >= 'Y'; anything else is a 400
  {"code": "query.soql.invalid", "error": true, "message": ...};
- with --token, a request whose X-App-Token differs gets 403
  {"code": "permission_denied", "error": true, "message": "Invalid app_token specified"}.

Faults come from --fault-file, read at every request (so a test can change them while
the server runs); one per line:
  slow N        the next N page requests wait 4 s before answering
  500 N         the next N page requests answer 500 {"message": "Internal error..."}
  cut N         the next N requests for a page after the first send half the body, close
  truncated N   the next N requests for a page after the first drop half their rows
  reorder       pages after the first come with two columns swapped (a changed header)
  html          pages answer 200 with an HTML error page
  fail-from P   every request for page index >= P answers 503
  empty         the data set has no rows
  only N        the data set holds only its first N rows (a truncated publication)
Every request is logged to --log as a JSON line {"path", "params", "token"}.

Usage: socrata_server.py --csv FILE --port-file F --log F [--fault-file F] [--token T]
"""
import argparse
import csv
import io
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ap = argparse.ArgumentParser()
ap.add_argument("--csv", required=True)
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--fault-file")
ap.add_argument("--token")
args = ap.parse_args()

with open(args.csv, newline="", encoding="utf-8") as f:
    reader = csv.reader(f)
    HEADER = next(reader)
    ROWS = list(reader)
YEAR = HEADER.index("fiscal_year")

lock = threading.Lock()
used = {}  # fault -> times used


def faults():
    if not args.fault_file:
        return {}
    try:
        text = open(args.fault_file).read()
    except FileNotFoundError:
        return {}
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if parts:
            out[parts[0]] = int(parts[1]) if len(parts) > 1 else 1
    return out


def take(name, active):
    """Uses one of the N occurrences of fault `name`, if any are left."""
    with lock:
        if name in active and used.get(name, 0) < active[name]:
            used[name] = used.get(name, 0) + 1
            return True
    return False


def matching(where):
    if not where:
        return ROWS
    m = re.fullmatch(r"fiscal_year\s*(=|>=)\s*'(\d{4})'", where.strip())
    if not m:
        return None
    op, year = m.group(1), m.group(2)
    if op == "=":
        return [r for r in ROWS if r[YEAR] == year]
    return [r for r in ROWS if r[YEAR] >= year]


def to_csv(header, rows):
    out = io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue().encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, body, kind="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, code, message):
        self.send(status, json.dumps({"code": code, "error": True, "message": message}).encode())

    def do_GET(self):
        url = urlparse(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        token = self.headers.get("X-App-Token")
        with lock, open(args.log, "a") as log:
            log.write(json.dumps({"path": url.path, "params": params, "token": token}) + "\n")
        if args.token and token != args.token:
            return self.error(403, "permission_denied", "Invalid app_token specified")
        m = re.fullmatch(r"/resource/([a-z0-9]{4}-[a-z0-9]{4})\.(json|csv)", url.path)
        if not m:
            return self.error(404, "not_found", f"Unknown resource {url.path}")
        active = faults()
        rows = [] if "empty" in active else matching(params.get("$where"))
        if rows is not None and "only" in active:
            rows = rows[:active["only"]]
        if rows is None:
            return self.error(400, "query.soql.invalid", f"Could not parse SoQL query \"{params.get('$where')}\"")
        if m.group(2) == "json":
            if params.get("$select", "").replace(" ", "").lower() != "count(*)asn":
                return self.error(400, "query.soql.invalid", "this test portal answers only $select=count(*) AS n")
            return self.send(200, json.dumps([{"n": str(len(rows))}]).encode())

        limit = int(params.get("$limit", "1000"))
        offset = int(params.get("$offset", "0"))
        page = offset // max(limit, 1)
        if "fail-from" in active and page >= active["fail-from"]:
            return self.error(503, "service_unavailable", "The portal is under maintenance")
        if take("slow", active):
            time.sleep(4)
        if take("500", active):
            return self.error(500, "internal", "Internal error: please retry")
        if "html" in active:
            return self.send(200, b"<html><body><h1>We'll be back soon</h1></body></html>", "text/html")
        header, chunk = HEADER, rows[offset:offset + limit]
        if "reorder" in active and offset > 0:
            order = list(range(len(HEADER)))
            order[0], order[1] = order[1], order[0]
            header = [HEADER[i] for i in order]
            chunk = [[r[i] for i in order] for r in chunk]
        if offset > 0 and take("truncated", active):
            chunk = chunk[: len(chunk) // 2]
        body = to_csv(header, chunk)
        if offset > 0 and take("cut", active):
            self.send_response(200)
            self.send_header("Content-Type", "text/csv; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send(200, body, "text/csv; charset=UTF-8")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402
os.replace(args.port_file + ".tmp", args.port_file)
server.serve_forever()

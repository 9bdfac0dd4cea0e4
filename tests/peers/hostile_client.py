"""Hostile statements through psycopg 3, as a driver sends them: each with the
extended protocol (Parse/Bind/Execute) and as a prepared statement, on one
connection. Reads a JSON list of statements on stdin; prints, for each, the SQLSTATE
of each try ("" when it ran). Usage: hostile_client.py PORT USER PASSWORD"""

import json
import sys

import psycopg

port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
statements = json.load(sys.stdin)
seen = []

with psycopg.connect(
    host="127.0.0.1", port=port, user=user, password=password, dbname="citybooks", autocommit=True
) as conn:
    for sql in statements:
        codes = []
        for prepare in (False, True):
            try:
                # psycopg sends a statement without parameters with the extended
                # protocol unless it holds several; prepare=True names it on the server.
                conn.execute(sql, prepare=prepare)
                codes.append("")
            except psycopg.Error as e:
                codes.append(e.sqlstate or "?")
        seen.append({"sql": sql, "codes": codes})

print(json.dumps(seen))

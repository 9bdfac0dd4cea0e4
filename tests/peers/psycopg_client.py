"""A PostgreSQL client as analysts use it: psycopg 3 and pandas.read_sql against
`citybooks serve`. Prints one JSON object of what it saw; the Rust test compares it
with the warehouse. Usage: psycopg_client.py PORT USER PASSWORD"""

import json
import sys
import threading
import time
import warnings

import pandas as pd
import psycopg

port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
seen = {}

with psycopg.connect(
    host="127.0.0.1", port=port, user=user, password=password, dbname="citybooks", autocommit=True
) as conn:
    rows, total = conn.execute(
        "select count(*), sum(amount) from report.transaction"
    ).fetchone()
    seen["rows"] = rows
    seen["sum"] = str(total)  # a Decimal: exact
    # A parameter bound by the driver (extended protocol).
    (n,) = conn.execute(
        "select count(*) from report.transaction where fiscal_year = %s", (2025,)
    ).fetchone()
    seen["rows_2025"] = n

    warnings.simplefilter("ignore")  # pandas prefers SQLAlchemy; a DBAPI connection works
    frame = pd.read_sql(
        "select t.transaction_id, t.amount, p.organization_group "
        "from report.transaction t join report.program p on t.program_id = p.program_id",
        conn,
    )
    seen["pandas_shape"] = list(frame.shape)
    seen["pandas_groups"] = int(frame["organization_group"].nunique())
    seen["pandas_sum_cents"] = int(round(frame["amount"].astype(float).sum() * 100))

    try:
        conn.execute("insert into report.finance values (3, 'Other')")
        seen["write"] = "accepted"
    except psycopg.Error as e:
        seen["write"] = f"{e.sqlstate}: {e}"

    # Cancel from another thread while a long statement runs.
    timer = threading.Timer(1.0, conn.cancel)
    timer.start()
    started = time.time()
    try:
        conn.execute("select sum(value) from generate_series(1, 50000000000)")
        seen["cancel"] = "finished"
    except psycopg.Error as e:
        seen["cancel"] = f"{e.sqlstate}: {e}"
    seen["cancel_secs"] = round(time.time() - started, 2)

    # The connection is still usable after a cancel.
    seen["after_cancel"] = conn.execute("select 1").fetchone()[0]

print(json.dumps(seen))

"""SQLAlchemy 2 and pandas against `citybooks serve`, as a notebook user or a BI tool
built on SQLAlchemy (Superset, dbt, Jupyter SQL magics) meets it: connect, reflect the
star schema through the inspector, read a whole table with pandas, run a query with a
bound parameter. Both PostgreSQL drivers: psycopg2 and psycopg 3.

Usage: sqlalchemy_client.py PORT USER PASSWORD
Prints one JSON object: for each driver, what each call returned (or the error).
"""

import json
import sys
import urllib.parse
from decimal import Decimal

import pandas
import sqlalchemy as sa

port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]


def attempt(f):
    try:
        return {"ok": f()}
    except Exception as e:  # the test shows the error text
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}


def exercise(driver):
    url = (
        f"postgresql+{driver}://{urllib.parse.quote(user)}:"
        f"{urllib.parse.quote(password)}@127.0.0.1:{port}/citybooks"
    )
    engine = sa.create_engine(url)
    out = {}
    with engine.connect() as c:
        out["version"] = list(engine.dialect.server_version_info)
        out["who"] = list(
            c.execute(sa.text("select current_user, session_user, current_database()")).one()
        )
    i = sa.inspect(engine)
    out["schemas"] = attempt(i.get_schema_names)
    out["tables"] = attempt(lambda: sorted(i.get_table_names(schema="report")))
    out["meta_tables"] = attempt(lambda: sorted(i.get_table_names(schema="meta")))
    out["views"] = attempt(lambda: i.get_view_names(schema="report"))
    out["columns"] = attempt(
        lambda: [
            {
                "name": c["name"],
                "type": str(c["type"]),
                "nullable": c["nullable"],
                "comment": c["comment"],
            }
            for c in i.get_columns("transaction", schema="report")
        ]
    )
    out["pk"] = attempt(lambda: i.get_pk_constraint("transaction", schema="report"))
    out["fks"] = attempt(
        lambda: sorted(
            (
                fk["constrained_columns"],
                fk["referred_schema"],
                fk["referred_table"],
                fk["referred_columns"],
            )
            for fk in i.get_foreign_keys("transaction", schema="report")
        )
    )
    out["indexes"] = attempt(lambda: i.get_indexes("transaction", schema="report"))
    out["table_comment"] = attempt(
        lambda: i.get_table_comment("transaction", schema="report")["text"]
    )
    out["has_table"] = attempt(lambda: i.has_table("program", schema="report"))

    def read_table():
        # read_sql_table turns NUMERIC into float on purpose (pandas sets asdecimal
        # off on reflected Numeric columns), whatever the server: rows and columns.
        df = pandas.read_sql_table("transaction", engine, schema="report")
        return {"rows": len(df), "columns": list(df.columns)}

    def read_query():
        df = pandas.read_sql_query(
            "select amount from report.transaction", engine, coerce_float=False
        )
        amounts = df["amount"]
        return {
            "rows": len(df),
            "all_decimal": bool(amounts.map(lambda a: isinstance(a, Decimal)).all()),
            "sum": str(sum(amounts, Decimal("0"))),
        }

    out["read_sql_table"] = attempt(read_table)
    out["read_sql_query"] = attempt(read_query)

    def bound():
        with engine.connect() as c:
            row = c.execute(
                sa.text(
                    "select count(*) as n, sum(t.amount) as total from report.transaction t "
                    "join report.finance f on t.finance_id = f.finance_id "
                    "where f.revenue_or_spending = :side"
                ),
                {"side": "Revenue"},
            ).one()
            return {"n": row.n, "total": str(row.total)}

    out["bound"] = attempt(bound)

    def savepoint():
        with engine.connect() as c:
            with c.begin():
                with c.begin_nested():
                    return c.execute(sa.text("select 1")).scalar()

    out["savepoint"] = attempt(savepoint)
    return out


print(json.dumps({d: exercise(d) for d in ("psycopg2", "psycopg")}, default=str))

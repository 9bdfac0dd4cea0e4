"""Apache Superset against `citybooks serve`, through Superset's own code (not its web
UI): the calls it makes when a user adds the database, browses it in SQL Lab, creates
a dataset on `report.transaction` and draws a chart of it. Superset 6 sits on
SQLAlchemy 1.4 and psycopg2, so this also checks the catalog queries of SQLAlchemy
1.4's PostgreSQL dialect.

Runs in its own virtualenv (Superset pins SQLAlchemy 1.4, the other Python clients use
2): see .ci/run. Superset's metadata database is a SQLite file in a temporary folder;
nothing is written to it (the event log is switched off), so no `superset db upgrade`.

Usage: superset_client.py PORT USER PASSWORD
Prints one JSON object: what each call returned (or the error).
"""

import contextlib
import importlib.metadata
import json
import os
import sys
import tempfile
import urllib.parse

port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]

home = tempfile.mkdtemp(prefix="superset-")
config = os.path.join(home, "superset_config.py")
with open(config, "w") as f:
    f.write(
        "from superset.utils.log import AbstractEventLogger\n"
        "class Quiet(AbstractEventLogger):\n"
        "    def log(self, *args, **kwargs):\n"
        "        pass\n"
        "EVENT_LOGGER = Quiet()\n"
        f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{home}/superset.db'\n"
    )
os.environ["SUPERSET_HOME"] = home
os.environ["SUPERSET_CONFIG_PATH"] = config
os.environ.setdefault("SUPERSET_SECRET_KEY", "citybooks-test-only-secret-key-0123456789")

# Superset prints to stdout as it starts ("Loaded your LOCAL configuration ..."):
# keep stdout for the answer.
with contextlib.redirect_stdout(sys.stderr):
    from superset.app import create_app

    app = create_app()


def attempt(f):
    try:
        return {"ok": f()}
    except Exception as e:  # the test shows the error text
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}


out = {}
with app.app_context():
    from superset.connectors.sqla.models import SqlaTable, SqlMetric, TableColumn
    from superset.models.core import Database
    from superset.sql.parse import Table

    out["superset"] = importlib.metadata.version("apache-superset")
    out["sqlalchemy"] = importlib.metadata.version("sqlalchemy")
    db = Database(
        database_name="citybooks",
        sqlalchemy_uri=(
            f"postgresql+psycopg2://{urllib.parse.quote(user)}:"
            f"{urllib.parse.quote(password)}@127.0.0.1:{port}/citybooks"
        ),
    )

    # "Test connection" in the Add database dialog.
    def ping():
        with db.get_sqla_engine() as engine:
            with engine.connect() as c:
                return bool(engine.dialect.do_ping(c.connection))

    out["ping"] = attempt(ping)

    # SQL Lab's left pane: schemas, tables, a table's columns, keys, indexes, comment.
    out["schemas"] = attempt(lambda: sorted(db.get_all_schema_names()))
    out["tables"] = attempt(
        lambda: sorted(
            t[0] for t in db.get_all_table_names_in_schema(catalog=None, schema="report")
        )
    )
    out["views"] = attempt(
        lambda: sorted(v[0] for v in db.get_all_view_names_in_schema(catalog=None, schema="report"))
    )
    transaction = Table("transaction", "report")
    out["columns"] = attempt(
        lambda: [(c["column_name"], str(c["type"])) for c in db.get_columns(transaction)]
    )

    # Superset's own get_pk_constraint passes every value through its JSON converter,
    # which gives None for a str or a list (against PostgreSQL too): SQL Lab shows the
    # inspector's answer, so ask the inspector Superset hands out.
    def pk():
        with db.get_inspector(catalog=None, schema="report") as inspector:
            return inspector.get_pk_constraint("transaction", "report")

    out["pk"] = attempt(pk)
    out["fks"] = attempt(
        lambda: sorted(
            (fk["constrained_columns"], fk["referred_schema"], fk["referred_table"])
            for fk in db.get_foreign_keys(transaction)
        )
    )
    out["indexes"] = attempt(lambda: db.get_indexes(transaction))
    out["comment"] = attempt(lambda: db.get_table_comment(transaction))
    out["select_star"] = attempt(lambda: db.select_star(transaction, limit=5))

    # A SQL Lab query, as a DataFrame.
    out["sql_lab"] = attempt(
        lambda: [
            [int(r["fiscal_year"]), str(r["total"]), int(r["rows"])]
            for r in db.get_df(
                "select fiscal_year, sum(amount) as total, count(*) as rows "
                "from report.transaction group by fiscal_year order by fiscal_year",
                "report",
            ).to_dict("records")
        ]
    )

    # A dataset on report.transaction and a table chart of it: a metric by a column,
    # with a filter, as Explore builds it (the SQL is Superset's).
    dataset = SqlaTable(table_name="transaction", schema="report", database=db)
    dataset.columns = [
        TableColumn(column_name="fiscal_year", type="INTEGER", groupby=True, filterable=True),
        TableColumn(column_name="amount", type="NUMERIC(20, 2)"),
    ]
    dataset.metrics = [
        SqlMetric(metric_name="total", expression="SUM(amount)"),
        SqlMetric(metric_name="spent", expression="SUM(CASE WHEN amount > 0 THEN amount END)"),
    ]

    def chart():
        result = dataset.query(
            {
                "groupby": ["fiscal_year"],
                "metrics": ["total", "spent"],
                "is_timeseries": False,
                "filter": [{"col": "fiscal_year", "op": ">=", "val": 1999}],
                "extras": {},
                "row_limit": 100,
                "orderby": [("total", False)],
            }
        )
        if result.status != "success":
            raise RuntimeError(f"{result.error_message}\n{result.query}")
        return {
            "sql": result.query,
            "rows": [
                [int(r["fiscal_year"]), str(r["total"]), str(r["spent"])]
                for r in result.df.to_dict("records")
            ],
        }

    out["chart"] = attempt(chart)

print(json.dumps(out, default=str))

"""An analyst's ad-hoc SQL over the PostgreSQL protocol, citybooks vs DuckDB on the same data.

    pip install duckdb "psycopg[binary]"
    python3 bench/adhoc_sql.py [--rows 1000000,10000000] [--runs 20] [--skip-build] [--json FILE]

For each size: generates the ledger (citybooks-bench gen, the same files as bench/run.py),
loads it into a fresh project, adds a SQL user and starts `citybooks serve` with its
defaults (the result cache only serves the dashboard's own routes, never SQL). Then
runs each of QUERIES below — what the original users and their successors type into
psql: the original users' query, group-bys over every level of the three hierarchies,
a fiscal-year filter, top-N departments, a year-over-year window, count(distinct), a
join of all four dimensions, the largest rows with every name — over one psycopg
connection (the wire protocol psql speaks; no server-side prepared statements): 3
warm-up runs, then --runs timed ones, each fetching every row. In the same run DuckDB
(in-process, its default threads) loads the warehouse's own Parquet files into
in-memory tables and runs the same SQL; every result is compared (numbers to the
cent). citybooks' figures include the wire protocol and the client's decoding;
DuckDB's do not. Prints a Markdown table and writes it to bench/out/adhoc-sql.md;
--json FILE writes every figure (one object per row: rows, query, citybooks_p95_ms,
duckdb_p95_ms, ...).
"""
import os
import subprocess
import sys
import time
from decimal import ROUND_HALF_UP, Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard_latency as dl  # noqa: E402

CB = dl.CB
OUT = dl.OUT
USER, PASSWORD = "analyst", "a long passphrase"

# {year} is the newest fiscal year of the data. Every ORDER BY that a LIMIT cuts is
# total (ties broken by name), so both engines must return the same rows.
QUERIES = [
    ("original users' query", """
select f.revenue_or_spending, avg(t.amount) as average_amount
from report.transaction as t
join report.finance as f on t.finance_id = f.finance_id
group by f.revenue_or_spending
order by f.revenue_or_spending"""),
    ("spending by organization group", """
select p.organization_group, sum(t.amount) as spending
from report.transaction t
join report.program p on t.program_id = p.program_id
join report.finance f on t.finance_id = f.finance_id
where f.revenue_or_spending = 'Spending'
group by p.organization_group
order by spending desc, p.organization_group"""),
    ("top 10 departments, newest year", """
select p.department, sum(t.amount) as spending
from report.transaction t
join report.program p on t.program_id = p.program_id
join report.finance f on t.finance_id = f.finance_id
where f.revenue_or_spending = 'Spending' and t.fiscal_year = {year}
group by p.department
order by spending desc, p.department
limit 10"""),
    ("programs of the largest department", """
select p.program, count(*) as transactions, sum(t.amount) as amount
from report.transaction t
join report.program p on t.program_id = p.program_id
where p.department = (
  select p2.department from report.transaction t2
  join report.program p2 on t2.program_id = p2.program_id
  group by p2.department order by sum(t2.amount) desc, p2.department limit 1)
group by p.program
order by amount desc, p.program"""),
    ("by character", """
select ty.character, f.revenue_or_spending, sum(t.amount) as amount
from report.transaction t
join report.type ty on t.type_id = ty.type_id
join report.finance f on t.finance_id = f.finance_id
group by ty.character, f.revenue_or_spending
order by amount desc, ty.character, f.revenue_or_spending"""),
    ("by object, newest year", """
select ty.object, sum(t.amount) as amount
from report.transaction t
join report.type ty on t.type_id = ty.type_id
where t.fiscal_year = {year}
group by ty.object
order by amount desc, ty.object"""),
    ("top 20 sub-objects", """
select ty.sub_object, sum(t.amount) as amount, count(*) as transactions
from report.transaction t
join report.type ty on t.type_id = ty.type_id
group by ty.sub_object
order by amount desc, ty.sub_object
limit 20"""),
    ("by fund type", """
select fu.fund_type, sum(t.amount) as amount
from report.transaction t
join report.fund fu on t.fund_id = fu.fund_id
group by fu.fund_type
order by amount desc, fu.fund_type"""),
    ("by fund, spending", """
select fu.fund, sum(t.amount) as spending
from report.transaction t
join report.fund fu on t.fund_id = fu.fund_id
join report.finance f on t.finance_id = f.finance_id
where f.revenue_or_spending = 'Spending'
group by fu.fund
order by spending desc, fu.fund"""),
    ("by fund category", """
select fu.fund_category, count(*) as transactions, sum(t.amount) as amount
from report.transaction t
join report.fund fu on t.fund_id = fu.fund_id
group by fu.fund_category
order by amount desc, fu.fund_category"""),
    ("one fiscal year's totals", """
select f.revenue_or_spending, count(*) as transactions, sum(t.amount) as amount
from report.transaction t
join report.finance f on t.finance_id = f.finance_id
where t.fiscal_year = {year}
group by f.revenue_or_spending
order by f.revenue_or_spending"""),
    ("totals by year and side", """
select t.fiscal_year, f.revenue_or_spending, sum(t.amount) as amount
from report.transaction t
join report.finance f on t.finance_id = f.finance_id
group by t.fiscal_year, f.revenue_or_spending
order by t.fiscal_year, f.revenue_or_spending"""),
    ("year over year by department", """
with d as (
  select p.department, t.fiscal_year, sum(t.amount) as spending
  from report.transaction t
  join report.program p on t.program_id = p.program_id
  join report.finance f on t.finance_id = f.finance_id
  where f.revenue_or_spending = 'Spending'
  group by p.department, t.fiscal_year
)
select department, fiscal_year, spending,
       spending - lag(spending) over (partition by department order by fiscal_year) as change
from d
order by department, fiscal_year"""),
    ("count distinct programs by year", """
select t.fiscal_year, count(distinct t.program_id) as programs, count(distinct p.department) as departments
from report.transaction t
join report.program p on t.program_id = p.program_id
group by t.fiscal_year
order by t.fiscal_year"""),
    ("all four dimensions", """
select p.organization_group, ty.character, fu.fund_type, f.revenue_or_spending,
       count(*) as transactions, sum(t.amount) as amount
from report.transaction t
join report.program p on t.program_id = p.program_id
join report.type ty on t.type_id = ty.type_id
join report.fund fu on t.fund_id = fu.fund_id
join report.finance f on t.finance_id = f.finance_id
group by p.organization_group, ty.character, fu.fund_type, f.revenue_or_spending
order by amount desc, p.organization_group, ty.character, fu.fund_type, f.revenue_or_spending"""),
    ("net by department, newest year", """
select p.department,
       sum(case when f.revenue_or_spending = 'Revenue' then t.amount else -t.amount end) as net
from report.transaction t
join report.program p on t.program_id = p.program_id
join report.finance f on t.finance_id = f.finance_id
where t.fiscal_year = {year}
group by p.department
order by net, p.department"""),
    ("spending without related units, by year", """
select t.fiscal_year, sum(t.amount) as spending
from report.transaction t
join report.program p on t.program_id = p.program_id
join report.finance f on t.finance_id = f.finance_id
where f.revenue_or_spending = 'Spending' and p.related_govt_units = 'No'
group by t.fiscal_year
order by t.fiscal_year"""),
    ("largest 20 rows with their names", """
select t.fiscal_year, p.department, p.program, ty.object, fu.fund, t.amount
from report.transaction t
join report.program p on t.program_id = p.program_id
join report.type ty on t.type_id = ty.type_id
join report.fund fu on t.fund_id = fu.fund_id
order by t.amount desc, t.transaction_id
limit 20"""),
]


def norm(value):
    """A value as both engines must agree on it: numbers to the cent."""
    if isinstance(value, (Decimal, float)):
        return str(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    return str(value)


def rows_of(rows):
    return [tuple(norm(v) for v in r) for r in rows]


def start(project, env):
    """`citybooks serve` on free ports; (process, SQL port)."""
    server, _ = dl.start_server(project, False, env)
    return server, server.ports["sql"]


def main():
    args, server_env = dl.parse_args(20)
    import duckdb
    import psycopg
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "-p", "citybooks", "-p", "citybooks-bench"],
                       cwd=dl.ROOT, check=True)
    os.makedirs(OUT, exist_ok=True)
    lines = ["| rows | query | citybooks p50 ms | citybooks p95 ms | DuckDB p50 ms | DuckDB p95 ms | citybooks / DuckDB p95 |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    notes, figures = [], []
    for n in [int(x) for x in args.rows.split(",")]:
        ledger = os.path.join(OUT, f"ledger-{n}-api.csv")
        if not os.path.exists(ledger):
            subprocess.run([os.path.join(dl.RELEASE, "citybooks-bench"), "gen", "--rows", str(n),
                            "--dialect", "api", "--out", ledger], check=True)
        project = os.path.join(OUT, f"adhoc-{n}")
        subprocess.run(["rm", "-rf", project], check=True)
        subprocess.run([CB, "init", project], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([CB, "--project", project, "load", "--no-progress", ledger], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([CB, "--project", project, "sql-user", "add", USER], input=PASSWORD + "\n",
                       text=True, check=True, stdout=subprocess.DEVNULL)
        duck = duckdb.connect()
        dl.duckdb_tables(duck, project)
        server, port = start(project, server_env)
        try:
            pg = psycopg.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD,
                                 dbname="citybooks", sslmode="disable", autocommit=True,
                                 prepare_threshold=None)
            year = pg.execute("select max(fiscal_year) from report.transaction").fetchone()[0]
            for name, sql in QUERIES:
                sql = sql.format(year=year)
                ours = dl.timed(lambda: pg.execute(sql).fetchall(), args.runs)
                theirs = dl.timed(lambda: duck.execute(sql).fetchall(), args.runs)
                a, b = rows_of(pg.execute(sql).fetchall()), rows_of(duck.execute(sql).fetchall())
                if a != b:
                    dl.warn(notes, f"{n:,} {name}: results differ from DuckDB's "
                                   f"({len(a)} rows vs {len(b)}; first difference: "
                                   f"{next(((x, y) for x, y in zip(a, b) if x != y), None)})")
                c50, c95 = dl.pct(ours, 50), dl.pct(ours, 95)
                d50, d95 = dl.pct(theirs, 50), dl.pct(theirs, 95)
                lines.append(f"| {n:,} | {name} | {c50:.1f} | {c95:.1f} | {d50:.1f} | {d95:.1f} | {c95 / d95:.2f} |")
                figures.append({"rows": n, "query": name, "citybooks_p50_ms": round(c50, 2),
                                "citybooks_p95_ms": round(c95, 2), "duckdb_p50_ms": round(d50, 2),
                                "duckdb_p95_ms": round(d95, 2), "citybooks_over_duckdb_p95": round(c95 / d95, 3),
                                "result_rows": len(a)})
                print(lines[-1], flush=True)
            rss = [l for l in open(f"/proc/{server.pid}/status") if l.startswith("VmRSS")][0].split()[1]
            notes.append(f"{n:,} rows: citybooks serve RSS after the runs {int(rss) // 1024} MiB")
            pg.close()
        finally:
            server.terminate()
            server.wait()
    ratios = [f["citybooks_over_duckdb_p95"] for f in figures]
    notes.append(f"{len(QUERIES)} queries; p95 ratio citybooks / DuckDB: min {min(ratios):.2f}, "
                 f"max {max(ratios):.2f}; within 1.5x: {sum(r <= 1.5 for r in ratios)} of {len(ratios)}")
    notes.append("citybooks' figures are whole statements over one psycopg connection (wire protocol and "
                 "decoding included); DuckDB's are in-process `con.execute(sql).fetchall()` on in-memory tables. "
                 "Every statement ran unchanged on both.")
    dl.report("adhoc-sql.md", lines, notes, server_env, figures, args.json)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

Seeds come from the real sample (data/datasf-fy2025-sample.csv: the API dialect, and
the same rows rewritten in the portal dialect), the dashboard's queries
(crates/query/src/dashboard.rs) and hand-written hostile inputs. run.sh calls this
only when a target's corpus folder is missing; the committed corpus is the minimized
result of a run.
"""
import csv, hashlib, io, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(os.path.dirname(HERE), "corpus")

PORTAL = ["Fiscal Year", "Related Govt Units", "Organization Group Code", "Organization Group",
          "Department Code", "Department", "Program Code", "Program", "Character Code", "Character",
          "Object Code", "Object", "Sub-object Code", "Sub-object", "Fund Type Code", "Fund Type",
          "Fund Code", "Fund", "Fund Category Code", "Fund Category", "Revenue or Spending", "Amount"]


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def thousands(amount):
    neg = amount.startswith("-")
    a = amount.lstrip("-")
    whole, _, frac = a.partition(".")
    whole = f"{int(whole):,}" if whole else "0"
    s = whole + ("." + frac if frac else "")
    return ("-" if neg else "") + s


def main():
    with open(os.path.join(ROOT, "data", "datasf-fy2025-sample.csv"), newline="") as f:
        text = f.read()
    lines = text.splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    records = list(csv.reader(io.StringIO(text)))
    head, body = records[0], records[1:]

    # --- csv_records: small slices of both dialects -------------------------------
    for start, n in [(0, 1), (10, 3), (500, 5), (2000, 2)]:
        put("csv_records", header + "".join(rows[start:start + n]))
    # Portal dialect: human headers, quotes only where needed, thousands separators,
    # CRLF and a BOM, Revenue or Spending second (older exports).
    for variant in range(4):
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\r\n" if variant % 2 else "\n")
        cols = list(range(22))
        if variant >= 2:
            cols = [0, 20] + [c for c in range(1, 22) if c != 20]
        w.writerow([PORTAL[c] if not (variant == 3 and c == 1) else "Related Gov't Units" for c in cols])
        for r in body[variant * 7: variant * 7 + 3]:
            r = r[:22]
            r[21] = thousands(r[21])
            w.writerow([r[c] for c in cols])
        data = out.getvalue()
        if variant % 2:
            data = "\ufeff" + data
        put("csv_records", data)
    # Awkward shapes: embedded newlines, a short row, blank lines, lone CR, no final newline.
    h = header.rstrip("\n")
    r = rows[3].rstrip("\n")
    put("csv_records", h + "\n" + r.replace('"ADP Adult Probation"', '"ADP\nAdult\r\nProbation"') + "\n\n2025,short\n" + r)
    put("csv_records", h + "\r\n\r\n" + r + "\r" + r + "\r\n")
    put("csv_records", h + "\n" + r + "\n" + '"unterminated,' + r)

    # --- header_dialect -----------------------------------------------------------
    put("header_dialect", header.rstrip("\n").replace('"', ""))
    put("header_dialect", ",".join(PORTAL))
    put("header_dialect", "\ufeff" + ",".join(reversed(PORTAL)))
    put("header_dialect", ",".join(PORTAL).replace("Related Govt Units", "Related Government Units"))
    put("header_dialect", ",".join(PORTAL).replace("Related Govt Units", "Related Gov\u2019t Units").upper())
    put("header_dialect", ",".join(PORTAL + ["Amount"]))
    put("header_dialect", ",".join(PORTAL[:-1]) + ",Extra Column, Subobject Code ")
    put("header_dialect", "\n".join(h.lower().replace(" ", "_") for h in PORTAL))
    put("header_dialect", "A\u00f1o Fiscal,Stra\u00dfe,\u0130l Kodu,\u03a3\u03a5\u039d\u039f\u039b\u039f,Fiscal Year")
    put("header_dialect", "fiscal_year,AMOUNT,Amount\u00a0,\u212aelvin,\u0130\u0307")

    # --- conform_row ----------------------------------------------------------------
    for r in body[:: max(1, len(body) // 12)][:12]:
        put("conform_row", "|".join(r[:23]))
    base = body[0][:22]
    for change in [(21, "(1,234.50)"), (0, "2025.0"), (2, "01.0"), (18, "1.0"), (13, ""), (12, "NKEY"),
                   (5, ""), (1, "y"), (20, "SPENDING"), (21, "$-999,999,999,999,999,999.99")]:
        r = list(base)
        r[change[0]] = change[1]
        put("conform_row", "|".join(r))

    # --- money_fiscal -----------------------------------------------------------------
    amounts = sorted({r[21] for r in body}, key=len)
    for a in amounts[:: max(1, len(amounts) // 20)][:20]:
        put("money_fiscal", a)
        put("money_fiscal", thousands(a))
    for t in ["2169166.5", "-10242888.26", "1,234.56", "$1,234.56", "-$1,234", "$-1,234", "(1,234.50)",
              " 42 ", "+7.", ".5", "0", "12.500", "1,000,000.00", "999999999999999999.99",
              "123456789012345678901", "1,2345.00", "(-1)", "2025", " 1999 ", "2025.0", "FY25", "-0.00"]:
        put("money_fiscal", t)

    # --- sftp_jail ----------------------------------------------------------------------
    for p in ["/", ".", "..", "/a/./b//c.csv", "a/../b", "/../other/x.csv", "a/../../b",
              "/../../etc/passwd", "uploads/2025/ledger.csv", "./x/.././y/", "a/b/c/../../..",
              "a/b/c/../../../..", "/.folder", "x/.load.json", "a\0b.csv", "..\\..\\win",
              "//server/share", "/a/%2e%2e/b", "\u00e9t\u00e9/\u2019.csv", "a/" * 40 + ".." + "/.." * 40]:
        put("sftp_jail", p)

    # --- sql_gate -----------------------------------------------------------------------
    with open(os.path.join(ROOT, "crates", "query", "src", "dashboard.rs")) as f:
        dash = f.read()
    for q in re.findall(r'sql: "((?:[^"\\]|\\.)*)"', dash, re.S):
        put("sql_gate", q.replace('\\"', '"'))
    hostile = [
        "select 1",
        "select * from report.transaction",
        "show tables",
        "show all",
        "select * from information_schema.tables",
        "select * from information_schema.df_settings",
        "explain select * from report.fund",
        "explain analyze select count(*) from report.transaction",
        "values (1, 'a'), (2, 'b')",
        "with x as (select 1 as a) select * from x",
        "insert into report.transaction select * from report.transaction",
        "insert into report.finance values (3, 'Both')",
        "delete from report.transaction",
        "update report.fund set fund = 'x'",
        "truncate report.transaction",
        "drop table report.transaction",
        "drop schema report cascade",
        "drop view if exists v",
        "create table t as select 1",
        "create table report.evil (a int)",
        "create view v as select * from report.transaction",
        "create or replace view report.transaction as select 1",
        "create schema evil",
        "create database evil",
        "create external table e stored as csv location '/etc/passwd'",
        "create external table e (a int) stored as parquet location 'out/'",
        "create unbounded external table e stored as csv location '/dev/zero'",
        "create function f(int) returns int return $1 + 1",
        "drop function f",
        "copy (select 1) to 'out.csv'",
        "copy report.transaction to 'out.parquet' stored as parquet",
        "copy (select * from report.fund) to '/tmp/x.json' stored as json",
        "explain copy (select 1) to 'out.csv'",
        "explain analyze copy (select 1) to 'out.csv'",
        "explain analyze insert into report.finance values (3, 'x')",
        "explain create table t as select 1",
        "set datafusion.execution.batch_size = 1",
        "set datafusion.catalog.information_schema = false",
        "set time zone 'UTC'",
        "reset datafusion.execution.batch_size",
        "prepare p as select 1",
        "prepare p(int) as insert into report.finance values ($1, 'x')",
        "execute p(1)",
        "deallocate p",
        "begin",
        "commit",
        "rollback",
        "start transaction",
        "select 1; drop table report.transaction",
        "drop table report.transaction; select 1",
        "select 1; select 2",
        "with x as (insert into report.finance values (3, 'x') returning *) select * from x",
        "select * from 'data.csv'",
        "select * from read_csv('/etc/passwd')",
        "select * from read_parquet('x.parquet')",
        "select * from (select 1) t where exists (select 1 from report.transaction)",
        "select * from report.transaction t, report.fund f where t.fund_id = f.fund_id limit 5",
        "select table_catalog, table_schema, table_name from information_schema.columns",
        "describe report.transaction",
        "select current_schema(), version()",
        "analyze table report.transaction compute statistics",
        "vacuum",
        "attach database 'x.db' as x",
        "use evil",
        "grant all on report.transaction to public",
        "alter table report.transaction add column x int",
        "merge into report.finance f using (select 1 as a) s on true when matched then delete",
        "select arrow_cast(1, 'Int8')",
        "select array_agg(fund) from report.fund",
    ]
    for q in hostile:
        put("sql_gate", q)

    # --- line_index: (stride byte, buffer byte, file bytes) -------------------------
    # Slices of the sample, a Windows export with a BOM, a quoted field with line
    # breaks, blank lines, no final newline.
    put("line_index", bytes([2, 16]) + "".join(lines[:12]).encode())
    put("line_index", bytes([0, 255]) + ("\ufeff" + "".join(lines[:6]).replace("\n", "\r\n")).encode())
    r = lines[3].rstrip("\n")
    broken = r.replace('"ADP Adult Probation"', '"ADP\nAdult\r\nProbation"')
    put("line_index", bytes([1, 3]) + (header + broken + "\n\n" + r).encode())
    put("line_index", bytes([7, 1]) + b'a,"b\n\nc"\n\n\nd\r\ne')


if __name__ == "__main__":
    main()

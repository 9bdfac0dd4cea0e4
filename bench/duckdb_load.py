"""The peer of `citybooks load` for the benchmark: the same job in DuckDB.

Reads a ledger CSV (API dialect) with read_csv, applies the conformance rules of
DOMAIN.md in SQL (rule 1 Yes/No, rule 2 no-department rows set aside, rules 3-5
placeholders, rule 6 most frequent code per name within its parent, ties to the
smallest), builds the program / type / fund / finance dimensions with ids and the
fact table with exact DECIMAL(20,2) amounts, and writes all of them to Parquet.

Usage: python3 bench/duckdb_load.py LEDGER.csv OUT_DIR
"""
import os
import sys
import time

import duckdb


def run(csv_path: str, out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    con = duckdb.connect()
    q = con.execute
    q(f"""
    create temp table raw as
    select * from read_csv('{csv_path}', header = true, all_varchar = true)
    """)
    q("""
    create temp table conformed as
    select
      cast(fiscal_year as integer) as fiscal_year,
      case when upper(trim(related_govt_units)) in ('YES', 'Y') then 'Yes' else 'No' end as related_govt_units,
      cast(organization_group_code as integer) as organization_group_code,
      organization_group,
      coalesce(nullif(trim(department_code), ''), 'No Department Code') as department_code,
      coalesce(nullif(trim(department), ''), 'No Department') as department,
      coalesce(nullif(trim(program_code), ''), 'No Program Code') as program_code,
      coalesce(nullif(trim(program), ''), 'No Program') as program,
      coalesce(nullif(trim(character_code), ''), 'No Character Code') as character_code,
      coalesce(nullif(trim("character"), ''), 'No Character') as "character",
      coalesce(nullif(trim(object_code), ''), 'No Object Code') as object_code,
      coalesce(nullif(trim(object), ''), 'No Object') as object,
      coalesce(nullif(trim(sub_object_code), ''), 'No Sub Object Code') as sub_object_code,
      coalesce(nullif(trim(sub_object), ''), 'No Sub Object') as sub_object,
      fund_type_code, fund_type, fund_code, fund,
      coalesce(nullif(regexp_replace(trim(fund_category_code), '\\.0$', ''), ''), 'No Fund Category Code') as fund_category_code,
      coalesce(nullif(trim(fund_category), ''), 'No Fund Category') as fund_category,
      case when revenue_or_spending = 'Spending' then 1 else 2 end as finance_id,
      cast(replace(replace(amount, ',', ''), '$', '') as decimal(20, 2)) as amount
    from raw
    where coalesce(trim(department), '') <> '' or coalesce(trim(department_code), '') <> ''
    """)

    # Rule 6, level by level: the most frequent code per (parent names, name).
    def choose(name, code, parents):
        keys = ", ".join(parents + [name])
        q(f"""
        create or replace temp table pick as
        select {keys}, {code} as chosen from (
          select *, row_number() over (partition by {keys} order by n desc, {code}) as rk
          from (select {keys}, {code}, count(*) as n from conformed group by all)
        ) where rk = 1
        """)
        on = " and ".join(f'c.{k} = p.{k}' for k in parents + [name])
        q(f"update conformed c set {code} = p.chosen from pick p where {on} and c.{code} <> p.chosen")

    for name, code, parents in [
        ("organization_group", "organization_group_code", []),
        ("department", "department_code", ["organization_group"]),
        ("program", "program_code", ["organization_group", "department"]),
        ('"character"', "character_code", []),
        ("object", "object_code", ['"character"']),
        ("sub_object", "sub_object_code", ['"character"', "object"]),
        ("fund_type", "fund_type_code", []),
        ("fund", "fund_code", ["fund_type"]),
        ("fund_category", "fund_category_code", ["fund_type", "fund"]),
    ]:
        choose(name, code, parents)

    dims = {
        "program": ["program", "program_code", "department", "department_code",
                    "organization_group", "organization_group_code", "related_govt_units"],
        "type": ["sub_object", "sub_object_code", "object", "object_code", '"character"', "character_code"],
        "fund": ["fund_category", "fund_category_code", "fund", "fund_code", "fund_type", "fund_type_code"],
    }
    for table, cols in dims.items():
        c = ", ".join(cols)
        q(f"create temp table dim_{table} as select row_number() over (order by {c}) as {table}_id, {c} from (select distinct {c} from conformed)")
        q(f"copy dim_{table} to '{out_dir}/{table}.parquet' (format parquet)")
    q(f"copy (select 1 as finance_id, 'Spending' as revenue_or_spending union all select 2, 'Revenue') to '{out_dir}/finance.parquet' (format parquet)")
    joins = []
    for table, cols in dims.items():
        on = " and ".join(f"c.{k} = d_{table}.{k}" for k in cols)
        joins.append(f"join dim_{table} d_{table} on {on}")
    q(f"""
    copy (
      select row_number() over () as transaction_id, c.fiscal_year, d_program.program_id, d_type.type_id,
             d_fund.fund_id, c.finance_id, c.amount
      from conformed c {' '.join(joins)}
    ) to '{out_dir}/transaction.parquet' (format parquet)
    """)


if __name__ == "__main__":
    start = time.perf_counter()
    run(sys.argv[1], sys.argv[2])
    print(f"duckdb {duckdb.__version__}: {time.perf_counter() - start:.2f} s", file=sys.stderr)

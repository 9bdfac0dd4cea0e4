//! The SQL a publish sends, for PostgreSQL and for Amazon Redshift.
//!
//! Everything is generated from the model's one description of the tables
//! ([`Table::schema`], [`Table::foreign_keys`], [`Table::description`]), so the target
//! gets the same columns, keys and comments the SQL server shows. Fiscal years and load
//! ids are integers and are written into the statements; every name is quoted.
//!
//! The two dialects differ in:
//! - **types**: Redshift's `text` is `varchar(256)`, so text columns are
//!   `varchar(1024)` there (wider than any name or path in the ledger; a longer value
//!   makes `COPY` fail, never truncates);
//! - **distribution**: dimensions are `DISTSTYLE ALL` (a copy on every node, so every
//!   join of the fact to them is node-local), and the fact is
//!   `DISTKEY (program_id) COMPOUND SORTKEY (fiscal_year, program_id)` (see
//!   [`REDSHIFT_FACT_LAYOUT`]);
//! - **bulk path**: PostgreSQL reads binary `COPY ... FROM STDIN`; Redshift reads
//!   Parquet files from S3 with `COPY ... IAM_ROLE ... FORMAT AS PARQUET`, into a
//!   temporary staging table (Parquet `COPY` takes no column list);
//! - **locking**: `LOCK TABLE ... IN EXCLUSIVE MODE` vs Redshift's `LOCK` (always
//!   exclusive).

use arrow::datatypes::DataType;
use citybooks_model::schema::Table;

use crate::target::Flavor;

/// The tables a publish sends, dimensions before the fact (the order keys need).
pub fn published() -> Vec<Table> {
    let mut tables = dimensions();
    tables.push(Table::Transaction);
    tables
}

/// The tables a publish sends whole every time: every dimension and `finance`.
pub fn dimensions() -> Vec<Table> {
    let mut tables: Vec<Table> = Table::dimensions().collect();
    tables.push(Table::Finance);
    tables
}

/// The table in the target schema that says which load of citybooks the target holds
/// (one row), written in the same transaction as the data.
pub const STATE_TABLE: &str = "citybooks_publish";
/// The rows and total of every fiscal year as last published, to tell a target edited
/// by hand from one that is as citybooks left it.
pub const YEARS_TABLE: &str = "citybooks_publish_years";

/// Why the fact table is laid out as it is on Redshift (written into its DDL).
pub const REDSHIFT_FACT_LAYOUT: &str = "The dimensions are DISTSTYLE ALL, so every join of the fact to them is node-local whatever the fact's distribution. The fact is distributed on program_id: the dashboard's group-bys run over the program hierarchy (organization group, department, program), which then aggregate on the node holding each program's rows, and ~1,300 programs spread evenly enough over the slices. It is sorted on fiscal_year first: every dashboard view and every publish filters on fiscal years, and the zone maps then skip the other years' blocks.";

/// A name, quoted.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.table`, quoted.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quoted(schema), quoted(table))
}

/// A string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The SQL type of an Arrow column on the target.
pub fn sql_type(flavor: Flavor, dt: &DataType) -> String {
    match dt {
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Decimal128(p, s) => format!("numeric({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => match flavor {
            Flavor::Postgres => "text".into(),
            Flavor::Redshift => "varchar(1024)".into(),
        },
        other => unreachable!("no report column is {other}"),
    }
}

/// The columns of a published table, comma-separated and quoted, in the model's order.
pub fn column_list(table: Table) -> String {
    table
        .schema()
        .fields()
        .iter()
        .map(|f| quoted(f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statements that create every published table and the two state tables in
/// `schema`, with keys and comments: run in one transaction.
pub fn create_tables(flavor: Flavor, schema: &str) -> Vec<String> {
    let mut out = vec![format!("CREATE SCHEMA IF NOT EXISTS {}", quoted(schema))];
    for table in published() {
        out.extend(create_table(flavor, schema, table));
    }
    out.extend(create_state_tables(flavor, schema));
    out
}

/// `CREATE TABLE` for one published table, then its comments.
pub fn create_table(flavor: Flavor, schema: &str, table: Table) -> Vec<String> {
    let name = table.name();
    let layout = match (flavor, table) {
        (Flavor::Postgres, _) => String::new(),
        (Flavor::Redshift, Table::Transaction) => format!(
            "\nDISTSTYLE KEY DISTKEY ({}) COMPOUND SORTKEY ({}, {})",
            quoted("program_id"),
            quoted("fiscal_year"),
            quoted("program_id")
        ),
        (Flavor::Redshift, _) => "\nDISTSTYLE ALL".into(),
    };
    let mut out = vec![format!(
        "CREATE TABLE {} (\n{}\n){layout}",
        qualified(schema, name),
        columns_and_keys(flavor, schema, table).join(",\n")
    )];
    out.extend(comments(flavor, schema, table));
    if flavor == Flavor::Postgres && table == Table::Transaction {
        // Every publish deletes by fiscal year, and the dashboard's queries filter on
        // it (Redshift has its sort key instead).
        out.push(format!(
            "CREATE INDEX {} ON {} ({})",
            quoted("transaction_fiscal_year_idx"),
            qualified(schema, name),
            quoted("fiscal_year")
        ));
    }
    out
}

/// The lines inside a `CREATE TABLE`: each column, the primary key, the foreign keys
/// to the published tables.
fn columns_and_keys(flavor: Flavor, schema: &str, table: Table) -> Vec<String> {
    let name = table.name();
    let mut lines: Vec<String> = table
        .schema()
        .fields()
        .iter()
        .map(|f| {
            format!(
                "  {} {}{}",
                quoted(f.name()),
                sql_type(flavor, f.data_type()),
                if f.is_nullable() { "" } else { " NOT NULL" }
            )
        })
        .collect();
    let id = table.id_column().expect("report tables have keys");
    lines.push(format!(
        "  CONSTRAINT {} PRIMARY KEY ({})",
        quoted(&format!("{name}_pkey")),
        quoted(id)
    ));
    for (column, referenced) in table.foreign_keys() {
        // meta.loads is not published: load_id stays a plain column there.
        if !published().contains(&referenced) {
            continue;
        }
        lines.push(format!(
            "  CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
            quoted(&format!("{name}_{column}_fkey")),
            quoted(column),
            qualified(schema, referenced.name()),
            quoted(referenced.id_column().expect("dimensions have keys"))
        ));
    }
    lines
}

/// `COMMENT ON` the table and each of its columns.
fn comments(flavor: Flavor, schema: &str, table: Table) -> Vec<String> {
    let name = table.name();
    let mut description = table.description().to_string();
    if flavor == Flavor::Redshift && table == Table::Transaction {
        description = format!("{description} Layout: {REDSHIFT_FACT_LAYOUT}");
    }
    let mut out = vec![format!(
        "COMMENT ON TABLE {} IS {}",
        qualified(schema, name),
        literal(&description)
    )];
    for f in table.schema().fields() {
        if let Some(d) = table.column_description(f.name()) {
            out.push(format!(
                "COMMENT ON COLUMN {}.{} IS {}",
                qualified(schema, name),
                quoted(f.name()),
                literal(d)
            ));
        }
    }
    out
}

/// The two state tables ([`STATE_TABLE`], [`YEARS_TABLE`]).
pub fn create_state_tables(flavor: Flavor, schema: &str) -> Vec<String> {
    let text = sql_type(flavor, &DataType::Utf8);
    let all = match flavor {
        Flavor::Postgres => "",
        Flavor::Redshift => "\nDISTSTYLE ALL",
    };
    vec![
        format!(
            "CREATE TABLE {} (\n  \"load_id\" bigint NOT NULL,\n  \"published_at\" timestamptz NOT NULL,\n  \"source\" {text} NOT NULL\n){all}",
            qualified(schema, STATE_TABLE)
        ),
        format!(
            "COMMENT ON TABLE {} IS {}",
            qualified(schema, STATE_TABLE),
            literal("Written by citybooks publish, in the transaction that publishes: the citybooks load this schema holds. Do not edit.")
        ),
        format!(
            "CREATE TABLE {} (\n  \"fiscal_year\" integer NOT NULL,\n  \"row_count\" bigint NOT NULL,\n  \"amount\" numeric(20,2) NOT NULL,\n  \"load_id\" bigint NOT NULL,\n  CONSTRAINT {} PRIMARY KEY (\"fiscal_year\")\n){all}",
            qualified(schema, YEARS_TABLE),
            quoted(&format!("{YEARS_TABLE}_pkey"))
        ),
        format!(
            "COMMENT ON TABLE {} IS {}",
            qualified(schema, YEARS_TABLE),
            literal("Written by citybooks publish: each fiscal year's rows and total in transaction as published, to detect a target changed by other hands. Do not edit.")
        ),
    ]
}

/// Locks the state table until the transaction ends, so two publishers to one target
/// take turns (readers of the tables are not blocked).
pub fn lock(flavor: Flavor, schema: &str) -> String {
    match flavor {
        Flavor::Postgres => format!(
            "LOCK TABLE {} IN EXCLUSIVE MODE",
            qualified(schema, STATE_TABLE)
        ),
        Flavor::Redshift => format!("LOCK {}", qualified(schema, STATE_TABLE)),
    }
}

/// `IN (...)` of fiscal years.
pub fn years_in(years: &[i32]) -> String {
    let list: Vec<String> = years.iter().map(|y| y.to_string()).collect();
    format!("IN ({})", list.join(", "))
}

/// The staging table of `table` for this transaction.
pub fn stage_name(table: Table) -> String {
    format!("citybooks_stage_{}", table.name())
}

/// A temporary table shaped like the target's `table`, gone at the end of the
/// transaction (Redshift: at the end of the session, and dropped by [`drop_stage`]).
pub fn create_stage(flavor: Flavor, schema: &str, table: Table) -> String {
    match flavor {
        Flavor::Postgres => format!(
            "CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP",
            quoted(&stage_name(table)),
            qualified(schema, table.name())
        ),
        Flavor::Redshift => format!(
            "CREATE TEMP TABLE {} (LIKE {})",
            quoted(&stage_name(table)),
            qualified(schema, table.name())
        ),
    }
}

/// Drops a staging table (Redshift keeps temporary tables until the session ends).
pub fn drop_stage(table: Table) -> String {
    format!("DROP TABLE IF EXISTS {}", quoted(&stage_name(table)))
}

/// PostgreSQL's binary `COPY` of `table`'s columns into `into` (a table or a stage).
pub fn copy_from_stdin(into: &str, table: Table) -> String {
    format!(
        "COPY {into} ({}) FROM STDIN (FORMAT binary)",
        column_list(table)
    )
}

/// Redshift's `COPY` of the Parquet files under `s3_prefix` into `table`'s stage.
pub fn copy_from_s3(table: Table, s3_prefix: &str, iam_role: &str) -> String {
    format!(
        "COPY {} FROM {} IAM_ROLE {} FORMAT AS PARQUET",
        quoted(&stage_name(table)),
        literal(s3_prefix),
        literal(iam_role)
    )
}

/// Brings a dimension up to its stage: members whose attributes changed are updated,
/// new members inserted. Returns (update, insert). Members are never deleted: the
/// fact rows of years not republished may still refer to them.
pub fn merge_dimension(schema: &str, table: Table) -> (String, String) {
    let id = quoted(table.id_column().expect("dimensions have keys"));
    let stage = quoted(&stage_name(table));
    let target = qualified(schema, table.name());
    let attributes: Vec<String> = table
        .schema()
        .fields()
        .iter()
        .map(|f| quoted(f.name()))
        .filter(|c| *c != id)
        .collect();
    let set: Vec<String> = attributes.iter().map(|c| format!("{c} = s.{c}")).collect();
    // Every dimension column is NOT NULL, so <> is exact (Redshift has no IS DISTINCT
    // FROM).
    let changed: Vec<String> = attributes
        .iter()
        .map(|c| format!("t.{c} <> s.{c}"))
        .collect();
    let update = format!(
        "UPDATE {target} AS t SET {} FROM {stage} AS s WHERE t.{id} = s.{id} AND ({})",
        set.join(", "),
        changed.join(" OR ")
    );
    let columns = column_list(table);
    let insert = format!(
        "INSERT INTO {target} ({columns}) SELECT {} FROM {stage} AS s WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE t.{id} = s.{id})",
        table
            .schema()
            .fields()
            .iter()
            .map(|f| format!("s.{}", quoted(f.name())))
            .collect::<Vec<_>>()
            .join(", ")
    );
    (update, insert)
}

/// Deletes the fact rows of `years` (all of them when `years` is None).
pub fn delete_years(schema: &str, years: Option<&[i32]>) -> String {
    let target = qualified(schema, Table::Transaction.name());
    match years {
        Some(years) => format!(
            "DELETE FROM {target} WHERE \"fiscal_year\" {}",
            years_in(years)
        ),
        None => format!("DELETE FROM {target}"),
    }
}

/// The fact table's foreign keys in the target, as the target defines them: name and
/// `pg_get_constraintdef` (PostgreSQL).
pub fn fact_foreign_keys(schema: &str) -> String {
    format!(
        "SELECT conname::varchar, pg_get_constraintdef(oid)::varchar FROM pg_catalog.pg_constraint WHERE conrelid = to_regclass({}) AND contype = 'f' ORDER BY conname",
        literal(&qualified(schema, Table::Transaction.name()))
    )
}

/// Drops the fact table's constraints `keys` (name, definition) for a bulk load.
pub fn drop_constraints(schema: &str, keys: &[(String, String)]) -> String {
    let drops: Vec<String> = keys
        .iter()
        .map(|(name, _)| format!("DROP CONSTRAINT {}", quoted(name)))
        .collect();
    format!(
        "ALTER TABLE {} {}",
        qualified(schema, Table::Transaction.name()),
        drops.join(", ")
    )
}

/// Puts back what [`drop_constraints`] dropped; checks every row against them.
pub fn add_constraints(schema: &str, keys: &[(String, String)]) -> String {
    let adds: Vec<String> = keys
        .iter()
        .map(|(name, definition)| format!("ADD CONSTRAINT {} {definition}", quoted(name)))
        .collect();
    format!(
        "ALTER TABLE {} {}",
        qualified(schema, Table::Transaction.name()),
        adds.join(", ")
    )
}

/// Moves the fact stage into the fact table (Redshift).
pub fn insert_facts_from_stage(schema: &str) -> String {
    let columns = column_list(Table::Transaction);
    format!(
        "INSERT INTO {} ({columns}) SELECT {columns} FROM {}",
        qualified(schema, Table::Transaction.name()),
        quoted(&stage_name(Table::Transaction))
    )
}

/// Each fiscal year's rows and total in the target's fact table, as text (exact).
pub fn year_figures(schema: &str) -> String {
    format!(
        "SELECT \"fiscal_year\", count(*)::bigint, CAST(COALESCE(sum(\"amount\"), 0) AS varchar) FROM {} GROUP BY \"fiscal_year\" ORDER BY \"fiscal_year\"",
        qualified(schema, Table::Transaction.name())
    )
}

/// What the state tables say, as text.
pub fn read_state(schema: &str) -> (String, String) {
    (
        format!(
            "SELECT \"load_id\" FROM {} ORDER BY \"load_id\" DESC",
            qualified(schema, STATE_TABLE)
        ),
        format!(
            "SELECT \"fiscal_year\", \"row_count\", CAST(\"amount\" AS varchar) FROM {} ORDER BY \"fiscal_year\"",
            qualified(schema, YEARS_TABLE)
        ),
    )
}

/// Replaces the state: the load now held, and the figures of the years just sent
/// (`years` None: of every year).
pub fn write_state(
    schema: &str,
    load_id: i64,
    published_at: &str,
    source: &str,
    years: Option<&[i32]>,
    figures: &[(i32, i64, String)],
) -> Vec<String> {
    let state = qualified(schema, STATE_TABLE);
    let per_year = qualified(schema, YEARS_TABLE);
    let mut out = vec![
        format!("DELETE FROM {state}"),
        format!(
            "INSERT INTO {state} (\"load_id\", \"published_at\", \"source\") VALUES ({load_id}, CAST({} AS timestamptz), {})",
            literal(published_at),
            literal(source)
        ),
    ];
    out.push(match years {
        Some(years) => format!(
            "DELETE FROM {per_year} WHERE \"fiscal_year\" {}",
            years_in(years)
        ),
        None => format!("DELETE FROM {per_year}"),
    });
    if !figures.is_empty() {
        let rows: Vec<String> = figures
            .iter()
            .map(|(year, rows, amount)| format!("({year}, {rows}, {amount}, {load_id})"))
            .collect();
        out.push(format!(
            "INSERT INTO {per_year} (\"fiscal_year\", \"row_count\", \"amount\", \"load_id\") VALUES {}",
            rows.join(", ")
        ));
    }
    out
}

/// The target's columns of `table`: name, `data_type`, precision, scale, nullable.
pub fn columns_query(schema: &str, table: &str) -> String {
    format!(
        "SELECT column_name::varchar, data_type::varchar, CAST(numeric_precision AS integer), CAST(numeric_scale AS integer), is_nullable::varchar FROM information_schema.columns WHERE table_schema = {} AND table_name = {} ORDER BY ordinal_position",
        literal(schema),
        literal(table)
    )
}

/// What `information_schema.columns.data_type` says for a column citybooks publishes
/// as `dt`: the type name and, for numerics, (precision, scale).
pub fn expected_type(flavor: Flavor, dt: &DataType) -> (&'static str, Option<(i32, i32)>) {
    match dt {
        DataType::Int32 => ("integer", None),
        DataType::Int64 => ("bigint", None),
        DataType::Decimal128(p, s) => ("numeric", Some((*p as i32, *s as i32))),
        _ => match flavor {
            Flavor::Postgres => ("text", None),
            Flavor::Redshift => ("character varying", None),
        },
    }
}

/// Every statement of a publish in the order it runs, for `flavor`, as one script
/// (the golden files `crates/publish/golden/*.sql`; what a reviewer reads to see what
/// a target is sent). The scenario: a target holding load 3 gets load 5, which
/// replaced fiscal years 2024 and 2025; the rows go over COPY (PostgreSQL) or from
/// `s3://bucket/city/publish/.../5/` with `arn:aws:iam::123456789012:role/citybooks`.
pub fn script(flavor: Flavor, schema: &str) -> String {
    let years = [2024, 2025];
    let s3 = |t: Table| format!("s3://bucket/city/publish/cluster-5439-dev/5/{}/", t.name());
    let role = "arn:aws:iam::123456789012:role/citybooks";
    let mut out: Vec<String> = match flavor {
        Flavor::Postgres => vec![
            "-- What `citybooks publish postgres://...` sends (crates/publish/src/sql.rs).".into(),
            "-- The COPY statements are fed Arrow batches in PostgreSQL's binary COPY format.".into(),
        ],
        Flavor::Redshift => vec![
            "-- What `citybooks publish redshift://...` sends (crates/publish/src/sql.rs), written".into(),
            "-- against the Amazon Redshift Database Developer Guide: CREATE TABLE (table".into(),
            "-- constraints; DISTSTYLE ALL | KEY, DISTKEY, COMPOUND SORTKEY), CREATE TEMP TABLE".into(),
            "-- (LIKE parent), COPY ... FROM 's3://prefix/' IAM_ROLE 'arn' FORMAT AS PARQUET, LOCK,".into(),
            "-- UPDATE ... [AS] alias SET ... FROM ..., COMMENT ON. Never run on Redshift: no".into(),
            "-- cluster is reachable from where it was built (see the README).".into(),
        ],
    };
    out.push("-- once, if the schema has none of the tables (its own transaction)".into());
    out.push("BEGIN".into());
    out.extend(create_tables(flavor, schema));
    out.push("COMMIT".into());
    out.push("-- every publish: one transaction".into());
    out.push("BEGIN".into());
    out.push(lock(flavor, schema));
    let (held, per_year) = read_state(schema);
    out.extend([held, per_year, year_figures(schema)]);
    for table in &dimensions() {
        out.push(create_stage(flavor, schema, *table));
        out.push(match flavor {
            Flavor::Postgres => copy_from_stdin(&quoted(&stage_name(*table)), *table),
            Flavor::Redshift => copy_from_s3(*table, &s3(*table), role),
        });
        let (update, insert) = merge_dimension(schema, *table);
        out.extend([update, insert, drop_stage(*table)]);
    }
    match flavor {
        Flavor::Postgres => {
            out.push(delete_years(schema, Some(&years)));
            out.push(copy_from_stdin(
                &qualified(schema, Table::Transaction.name()),
                Table::Transaction,
            ));
        }
        Flavor::Redshift => {
            out.push(create_stage(flavor, schema, Table::Transaction));
            out.push(copy_from_s3(
                Table::Transaction,
                &s3(Table::Transaction),
                role,
            ));
            out.push(delete_years(schema, Some(&years)));
            out.push(insert_facts_from_stage(schema));
            out.push(drop_stage(Table::Transaction));
        }
    }
    out.extend(write_state(
        schema,
        5,
        "2026-11-30 08:00:00.000000+00",
        "citybooks 0.1.0 load 5",
        Some(&years),
        &[
            (2024, 1266, "3701234567.89".into()),
            (2025, 2186, "3850095730.53".into()),
        ],
    ));
    out.push("COMMIT".into());
    let mut text = String::new();
    for s in out {
        text.push_str(&s);
        text.push_str(if s.starts_with("--") { "\n" } else { ";\n" });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements as the golden files hold them; `CITYBOOKS_BLESS=1` rewrites the
    /// files (then read the diff before committing it).
    fn golden(flavor: Flavor, name: &str) {
        let path = format!("{}/golden/{name}", env!("CARGO_MANIFEST_DIR"));
        let now = script(flavor, "report");
        if std::env::var_os("CITYBOOKS_BLESS").is_some() {
            std::fs::write(&path, &now).unwrap();
        }
        let held = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            held == now,
            "{path} differs from what citybooks sends (CITYBOOKS_BLESS=1 rewrites it):\n{now}"
        );
    }

    #[test]
    fn postgresql_statements_are_the_golden_ones() {
        golden(Flavor::Postgres, "postgres.sql");
    }

    #[test]
    fn redshift_statements_are_the_golden_ones() {
        golden(Flavor::Redshift, "redshift.sql");
    }

    #[test]
    fn names_and_literals_are_quoted() {
        assert_eq!(quoted("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(qualified("report", "type"), "\"report\".\"type\"");
        assert_eq!(years_in(&[2024, 2025]), "IN (2024, 2025)");
    }
}

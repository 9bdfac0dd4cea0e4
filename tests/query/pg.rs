//! The PostgreSQL wire front door (port 5439): psql, psycopg, pandas, SQLAlchemy with
//! both drivers, Superset, node-postgres, Go's lib/pq and pgjdbc; refusals, passwords,
//! TLS, timeouts, cancel, and a load becoming visible without a restart.

use super::*;

#[test]
fn psql_runs_the_original_query_and_describes_the_schema() {
    if !have_psql() {
        return;
    }
    let (_p, s) = served(&[]);
    let out = psql(
        s.sql,
        USER,
        Some(PASSWORD),
        &["-A", "-F", ",", "-t", "-c", ORIGINAL],
    );
    assert!(out.status.success(), "{}", text(&out));
    let got: Vec<(String, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (side, avg) = l.split_once(',').unwrap();
            (side.to_string(), avg.parse().unwrap())
        })
        .collect();
    let expected = sample_by_side();
    assert_eq!(got.len(), 2, "{got:?}");
    for (side, avg) in got {
        let (sum, n) = expected[&side];
        let exact = sum as f64 / 100.0 / n as f64;
        assert!((avg - exact).abs() < 1e-6, "{side}: {avg} vs {exact}");
    }

    let out = psql(s.sql, USER, Some(PASSWORD), &["-c", r"\dt report.*"]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = text(&out);
    for table in ["program", "type", "fund", "finance", "transaction"] {
        assert!(
            listing.contains(&format!("report | {table}")),
            "\\dt lists report.{table}:\n{listing}"
        );
    }
    let out = psql(
        s.sql,
        USER,
        Some(PASSWORD),
        &["-c", r"\d report.transaction"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let described = text(&out);
    assert!(
        described.contains("amount") && described.contains("numeric"),
        "{described}"
    );
    assert!(described.contains("fiscal_year"), "{described}");
}

/// What psql's describe commands print, one command at a time (each must succeed).
fn described(port: u16, command: &str) -> String {
    let out = psql(port, USER, Some(PASSWORD), &["-c", command]);
    assert!(out.status.success(), "{command}: {}", text(&out));
    text(&out)
}

#[test]
fn psql_describes_every_table_with_its_keys_and_comments() {
    if !have_psql() {
        return;
    }
    let (_p, s) = served(&[]);
    // Who and what psql is talking to, as PostgreSQL answers.
    let out = psql(
        s.sql,
        USER,
        Some(PASSWORD),
        &[
            "-A",
            "-t",
            "-c",
            "select version(), current_user, session_user, current_database()",
            "-c",
            "show server_version",
            "-c",
            "begin; savepoint a; select 1; rollback to savepoint a; release savepoint a; commit",
            // A quoted literal compared with a boolean is a boolean, as in PostgreSQL
            // (SQLAlchemy 1.4's index query): one primary key index per table.
            "-c",
            "select count(*) from pg_catalog.pg_index where indisprimary = 't' and indisunique <> 'no'",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    let who: Vec<&str> = lines[0].split('|').collect();
    assert!(who[0].starts_with("PostgreSQL 15.0 on "), "{who:?}");
    assert!(
        who[0].contains("citybooks") && who[0].contains("DataFusion"),
        "{who:?}"
    );
    assert_eq!(&who[1..], [USER, USER, "citybooks"]);
    assert_eq!(lines[1], "15.0");
    assert_eq!(
        lines[2..8],
        ["BEGIN", "SAVEPOINT", "1", "ROLLBACK", "RELEASE", "COMMIT"]
    );
    let keyed = citybooks_model::schema::Table::all()
        .iter()
        .filter(|t| t.id_column().is_some())
        .count();
    assert_eq!(lines[8], keyed.to_string());
    // Text no boolean reads as stays text, and the comparison fails as it does there.
    let out = psql(
        s.sql,
        USER,
        Some(PASSWORD),
        &[
            "-c",
            "select count(*) from pg_catalog.pg_index where indisprimary = 'maybe'",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));

    let l = described(s.sql, r"\l");
    assert!(l.contains("citybooks"), "{l}");
    let dn = described(s.sql, r"\dn+");
    assert!(
        dn.contains("report") && dn.contains("The star schema of the original ERD"),
        "{dn}"
    );
    let dt = described(s.sql, r"\dt+ report.*");
    for table in ["program", "type", "fund", "finance", "transaction"] {
        assert!(dt.contains(&format!("report | {table}")), "{dt}");
    }
    assert!(dt.contains("The ledger's facts"), "{dt}");
    for (table, key) in [
        ("program", "program_id"),
        ("type", "type_id"),
        ("fund", "fund_id"),
        ("finance", "finance_id"),
        ("transaction", "transaction_id"),
    ] {
        let d = described(s.sql, &format!(r"\d+ report.{table}"));
        assert!(
            d.contains(&format!("\"{table}_pkey\" PRIMARY KEY, btree ({key})")),
            "{table}: {d}"
        );
        if table == "transaction" {
            assert!(d.contains("| numeric(20,2) |"), "{d}");
            assert!(
                d.contains("Signed amount in dollars, exact to the cent"),
                "{d}"
            );
            for (column, dim) in [
                ("program_id", "program"),
                ("type_id", "type"),
                ("fund_id", "fund"),
                ("finance_id", "finance"),
            ] {
                assert!(
                    d.contains(&format!(
                        "FOREIGN KEY ({column}) REFERENCES report.{dim}({column})"
                    )),
                    "{d}"
                );
            }
        } else {
            assert!(
                d.contains(&format!(
                    "TABLE \"transaction\" CONSTRAINT \"transaction_{key}_fkey\""
                )),
                "{table}: {d}"
            );
        }
    }
    for table in ["loads", "quarantine", "publishes"] {
        described(s.sql, &format!(r"\d+ meta.{table}"));
    }
    // The SQL users are the roles: each can log in, none is a superuser.
    let du = described(s.sql, r"\du");
    let line = du
        .lines()
        .find(|l| l.trim_start().starts_with(USER))
        .unwrap_or_else(|| panic!("\\du lists {USER}:\n{du}"));
    assert!(!line.contains("Superuser"), "{du}");
    let out = psql(
        s.sql,
        USER,
        Some(PASSWORD),
        &[
            "-At",
            "-c",
            "select usename, usesuper, passwd from pg_catalog.pg_user",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{USER}|f|********"),
        "{}",
        text(&out)
    );
    // information_schema's views of the keys, as tools that avoid pg_catalog read them.
    let out = psql(
        s.sql,
        USER,
        Some(PASSWORD),
        &[
            "-At",
            "-c",
            "select kcu.column_name, ccu.table_schema, ccu.table_name, ccu.column_name, rc.unique_constraint_name \
             from information_schema.table_constraints tc \
             join information_schema.key_column_usage kcu on tc.constraint_name = kcu.constraint_name and tc.table_schema = kcu.table_schema \
             join information_schema.constraint_column_usage ccu on ccu.constraint_name = tc.constraint_name and ccu.constraint_schema = tc.constraint_schema \
             join information_schema.referential_constraints rc on rc.constraint_name = tc.constraint_name \
             where tc.constraint_type = 'FOREIGN KEY' and tc.table_schema = 'report' and tc.table_name = 'transaction' order by 1",
            "-c",
            "select count(*) from information_schema.table_constraints where constraint_type = 'PRIMARY KEY'",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>(),
        [
            "finance_id|report|finance|finance_id|finance_pkey",
            "fund_id|report|fund|fund_id|fund_pkey",
            "load_id|meta|loads|load_id|loads_pkey",
            "program_id|report|program|program_id|program_pkey",
            "type_id|report|type|type_id|type_pkey",
            "7",
        ],
        "{}",
        text(&out)
    );
    let dv = described(s.sql, r"\dv");
    assert!(dv.contains("Did not find any relations"), "{dv}");
    described(s.sql, r"\df");
}

/// The project and server of [`python_peer_on_sample`], what its client printed, and
/// the sample's sums by side.
type PeerOnSample = (
    Project,
    Served,
    serde_json::Value,
    BTreeMap<String, (i128, i128)>,
);

/// Serves the sample and runs the Python client `script` on it, when the Python
/// modules `imports` are installed (else says what to install, see [`have_peer`]):
/// the project, the server, what the client printed, the sample's sums by side.
fn python_peer_on_sample(
    what: &str,
    imports: &str,
    install: &str,
    script: &str,
) -> Option<PeerOnSample> {
    let probe = format!("import {imports}");
    if !have_peer(what, Command::new("python3").args(["-c", &probe]), install) {
        return None;
    }
    let (p, s) = served(&[]);
    let seen = python_peer(script, s.sql);
    Some((p, s, seen, sample_by_side()))
}

#[test]
fn sqlalchemy_and_pandas_reflect_and_read_the_star_schema_with_both_drivers() {
    let Some((_p, _s, seen, by)) = python_peer_on_sample(
        "SQLAlchemy with psycopg2 and psycopg",
        "sqlalchemy, psycopg2, psycopg, pandas",
        "pip install sqlalchemy psycopg2-binary 'psycopg[binary]' pandas",
        "sqlalchemy_client.py",
    ) else {
        return;
    };
    let (sum, rows) = totals(&by);
    for driver in ["psycopg2", "psycopg"] {
        let d = &seen[driver];
        let ok = |k: &str| -> &serde_json::Value {
            assert!(d[k].get("error").is_none(), "{driver} {k}: {}", d[k]);
            &d[k]["ok"]
        };
        assert_eq!(d["version"], serde_json::json!([15, 0]), "{driver}");
        assert_eq!(
            d["who"],
            serde_json::json!([USER, USER, "citybooks"]),
            "{driver}"
        );
        assert_eq!(
            ok("schemas"),
            &serde_json::json!(["meta", "report"]),
            "{driver}"
        );
        assert_eq!(
            ok("tables"),
            &serde_json::json!(["finance", "fund", "program", "transaction", "type"]),
            "{driver}"
        );
        assert_eq!(
            ok("meta_tables"),
            &serde_json::json!(["loads", "publishes", "quarantine"])
        );
        assert_eq!(ok("views"), &serde_json::json!([]));
        let columns = ok("columns").as_array().unwrap();
        let amount = columns.iter().find(|c| c["name"] == "amount").unwrap();
        assert_eq!(amount["type"], "NUMERIC(20, 2)", "{driver}");
        assert_eq!(amount["nullable"], false);
        assert!(amount["comment"]
            .as_str()
            .unwrap()
            .contains("exact to the cent"));
        assert_eq!(
            columns
                .iter()
                .map(|c| c["name"].as_str().unwrap())
                .collect::<Vec<_>>()[..7],
            [
                "transaction_id",
                "fiscal_year",
                "program_id",
                "type_id",
                "fund_id",
                "finance_id",
                "amount"
            ]
        );
        assert_eq!(
            ok("pk")["constrained_columns"],
            serde_json::json!(["transaction_id"])
        );
        assert_eq!(ok("pk")["name"], "transaction_pkey");
        let fks: Vec<String> = ok("fks")
            .as_array()
            .unwrap()
            .iter()
            .map(|fk| fk.to_string())
            .collect();
        assert_eq!(
            fks,
            [
                r#"[["finance_id"],"report","finance",["finance_id"]]"#,
                r#"[["fund_id"],"report","fund",["fund_id"]]"#,
                r#"[["load_id"],"meta","loads",["load_id"]]"#,
                r#"[["program_id"],"report","program",["program_id"]]"#,
                r#"[["type_id"],"report","type",["type_id"]]"#,
            ],
            "{driver}"
        );
        // The primary key's index is the key itself: no other index.
        assert_eq!(ok("indexes"), &serde_json::json!([]));
        assert!(ok("table_comment")
            .as_str()
            .unwrap()
            .starts_with("The ledger's facts"));
        assert_eq!(ok("has_table"), true);
        assert_eq!(ok("read_sql_table")["rows"], rows as i64, "{driver}");
        let read = ok("read_sql_query");
        assert_eq!(read["rows"], rows as i64);
        assert_eq!(read["all_decimal"], true, "{driver}: amounts are Decimal");
        assert_eq!(
            cents(read["sum"].as_str().unwrap()),
            sum,
            "{driver}: exact to the cent"
        );
        let (revenue, revenue_rows) = by["Revenue"];
        assert_eq!(ok("bound")["n"], revenue_rows as i64, "{driver}");
        assert_eq!(cents(ok("bound")["total"].as_str().unwrap()), revenue);
        assert_eq!(ok("savepoint"), 1);
    }
}

/// Checks what the Node.js and Go clients printed: SCRAM login, the version and login,
/// a bound parameter, the revenue total exact to the cent.
fn check_driver(name: &str, out: &Output, total_key: &str, n_key: &str) -> serde_json::Value {
    assert!(out.status.success(), "{name}: {}", text(out));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (revenue, revenue_rows) = sample_by_side()["Revenue"];
    assert!(
        seen["version"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL 15.0 on "),
        "{name}: {seen}"
    );
    assert_eq!(
        cents(seen[total_key].as_str().unwrap()),
        revenue,
        "{name}: {seen}"
    );
    assert_eq!(
        seen[n_key].to_string().trim_matches('"'),
        revenue_rows.to_string()
    );
    seen
}

/// The Python of the virtualenv Apache Superset is installed in (it pins SQLAlchemy
/// 1.4, so it has its own: see .ci/run): `CITYBOOKS_SUPERSET_PYTHON`, or the one
/// .ci/run makes.
fn superset_python() -> PathBuf {
    std::env::var_os("CITYBOOKS_SUPERSET_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/citybooks/superset-venv/bin/python")
        })
}

#[test]
fn superset_adds_browses_and_charts_the_warehouse() {
    let python = superset_python();
    if !have_peer(
        "Apache Superset",
        Command::new(&python).args(["-c", "import superset, psycopg2"]),
        ".ci/run makes its virtualenv",
    ) {
        return;
    }
    let (_p, s) = served(&[]);
    let seen = python_peer_with(&python, "superset_client.py", s.sql);
    let ok = |k: &str| -> &serde_json::Value {
        assert!(seen[k].get("error").is_none(), "{k}: {}", seen[k]);
        &seen[k]["ok"]
    };
    // Superset 6 reflects through SQLAlchemy 1.4's PostgreSQL dialect.
    assert!(
        seen["sqlalchemy"].as_str().unwrap().starts_with("1.4"),
        "{seen}"
    );
    assert_eq!(ok("ping"), true);
    assert_eq!(ok("schemas"), &serde_json::json!(["meta", "report"]));
    assert_eq!(
        ok("tables"),
        &serde_json::json!(["finance", "fund", "program", "transaction", "type"])
    );
    assert_eq!(ok("views"), &serde_json::json!([]));
    let columns = ok("columns").as_array().unwrap();
    assert_eq!(columns[0], serde_json::json!(["transaction_id", "BIGINT"]));
    assert!(columns.contains(&serde_json::json!(["amount", "NUMERIC(20, 2)"])));
    assert_eq!(
        ok("pk"),
        &serde_json::json!({"constrained_columns": ["transaction_id"], "name": "transaction_pkey"})
    );
    assert_eq!(
        ok("fks"),
        &serde_json::json!([
            [["finance_id"], "report", "finance"],
            [["fund_id"], "report", "fund"],
            [["load_id"], "meta", "loads"],
            [["program_id"], "report", "program"],
            [["type_id"], "report", "type"]
        ])
    );
    // SQLAlchemy 1.4's index query compares `indisprimary = 'f'`: answered, and the
    // primary key's index is the only one, so there is none to list.
    assert_eq!(ok("indexes"), &serde_json::json!([]));
    assert!(ok("comment")
        .as_str()
        .unwrap()
        .starts_with("The ledger's facts"));
    assert!(ok("select_star")
        .as_str()
        .unwrap()
        .contains("FROM report.transaction"));

    // SQL Lab and the chart, against the test's own arithmetic over the raw CSV, to
    // the cent.
    let (header, rows) = sample_records();
    let (year, amount) = (col(&header, "fiscal_year"), col(&header, "amount"));
    let mut by_year: BTreeMap<i64, (i128, i128, i128)> = BTreeMap::new();
    for r in &rows {
        let e = by_year.entry(r[year].parse().unwrap()).or_default();
        let c = cents(&r[amount]);
        e.0 += c;
        e.1 += c.max(0);
        e.2 += 1;
    }
    let sql_lab: Vec<(i64, i128, i128)> = ok("sql_lab")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_i64().unwrap(),
                cents(r[1].as_str().unwrap()),
                r[2].as_i64().unwrap() as i128,
            )
        })
        .collect();
    let expected: Vec<(i64, i128, i128)> = by_year
        .iter()
        .map(|(y, (total, _, n))| (*y, *total, *n))
        .collect();
    assert_eq!(sql_lab, expected, "SQL Lab's totals by fiscal year");
    let chart = ok("chart");
    let drawn: Vec<(i64, i128, i128)> = chart["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_i64().unwrap(),
                cents(r[1].as_str().unwrap()),
                cents(r[2].as_str().unwrap()),
            )
        })
        .collect();
    let mut expected: Vec<(i64, i128, i128)> = by_year
        .iter()
        .map(|(y, (total, spent, _))| (*y, *total, *spent))
        .collect();
    expected.sort_by_key(|(_, total, _)| std::cmp::Reverse(*total));
    assert_eq!(drawn, expected, "the chart: {}", chart["sql"]);
}

#[test]
fn node_pg_and_go_lib_pq_connect_and_query_exactly() {
    let node_ready = have_peer(
        "node with the pg driver",
        Command::new("node").args([
            "-e",
            concat!(
                "require.resolve('pg', {paths: ['",
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/node']})"
            ),
        ]),
        "npm ci --prefix tests/peers/node",
    );
    let go_ready = have_peer(
        "go with lib/pq",
        Command::new("test").args(["-d", "/usr/share/gocode/src/github.com/lib/pq"]),
        "apt-get install golang-go golang-github-lib-pq-dev",
    );
    if !node_ready && !go_ready {
        return;
    }
    let (p, s) = served(&[]);
    if node_ready {
        let out = Command::new("node")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/node/client.mjs"
            ))
            .args([&s.sql.to_string(), USER, PASSWORD])
            .output()
            .unwrap();
        let seen = check_driver("node pg", &out, "bound_total", "bound_n");
        assert_eq!(
            seen["who"],
            serde_json::json!({"u": USER, "d": "citybooks"})
        );
        assert_eq!(
            seen["amount_type"], "string",
            "numeric arrives as exact text"
        );
        let fks = seen["foreign_keys"].as_array().unwrap();
        let declared: usize = citybooks_model::schema::Table::all()
            .iter()
            .map(|t| t.foreign_keys().len())
            .sum();
        assert_eq!(fks.len(), declared, "{seen}");
        assert!(
            fks.contains(&"transaction_program_id_fkey".into()),
            "{seen}"
        );
    }
    if go_ready {
        let out = Command::new("go")
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/go"))
            .env("GOPATH", "/usr/share/gocode")
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("GOCACHE", p.tmp.path().join("gocache"))
            .args(["run", "client.go", &s.sql.to_string(), USER, PASSWORD])
            .output()
            .unwrap();
        let seen = check_driver("go lib/pq", &out, "total", "n");
        assert_eq!(seen["who"], USER);
    }
}

#[test]
fn pgjdbc_syncs_tables_columns_and_keys_like_a_bi_tool() {
    const JAR: &str = "/usr/share/java/postgresql.jar";
    if !have_peer(
        "java with pgjdbc",
        Command::new("sh").args(["-c", &format!("command -v javac && test -f {JAR}")]),
        "apt-get install default-jdk-headless libpostgresql-jdbc-java",
    ) {
        return;
    }
    let (_p, s) = served(&[]);
    let out = Command::new("java")
        .args(["-cp", JAR])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/jdbc/Client.java"
        ))
        .args([&s.sql.to_string(), USER, PASSWORD])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let found = |key: &str| -> Vec<String> {
        printed
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}\t")))
            .map(String::from)
            .collect()
    };
    assert_eq!(found("error"), Vec::<String>::new(), "{printed}");
    assert_eq!(found("product"), ["PostgreSQL 15.0"]);
    assert_eq!(found("schema"), ["meta", "pg_catalog", "report"]);
    let tables = found("table");
    assert_eq!(tables.len(), 5, "{printed}");
    assert!(
        tables
            .iter()
            .any(|t| t.starts_with("transaction|The ledger's facts")),
        "{printed}"
    );
    assert!(
        found("column").contains(&"amount|numeric|20|2|NO".to_string()),
        "{printed}"
    );
    assert_eq!(found("pk"), ["transaction_id|transaction_pkey"]);
    let mut imported = found("imported");
    imported.sort();
    assert_eq!(
        imported,
        [
            "finance_id|report|finance|finance_id|transaction_finance_id_fkey",
            "fund_id|report|fund|fund_id|transaction_fund_id_fkey",
            "load_id|meta|loads|load_id|transaction_load_id_fkey",
            "program_id|report|program|program_id|transaction_program_id_fkey",
            "type_id|report|type|type_id|transaction_type_id_fkey",
        ]
    );
    assert_eq!(found("exported"), ["transaction|program_id|program_id"]);
    let (revenue, revenue_rows) = sample_by_side()["Revenue"];
    let prepared = found("prepared");
    let (n, total) = prepared[0].split_once('|').unwrap();
    assert_eq!(n, revenue_rows.to_string());
    assert_eq!(cents(total), revenue, "BigDecimal exact to the cent");
}

#[test]
fn psql_is_refused_writes_wrong_and_missing_passwords() {
    if !have_psql() {
        return;
    }
    let (p, s) = served(&[]);
    for write in [
        "create table report.x as select 1",
        "insert into report.finance values (3, 'Other')",
        "drop table report.fund",
        "copy report.finance to 'stolen.csv'",
        "set datafusion.execution.batch_size = 1",
    ] {
        let out = psql(s.sql, USER, Some(PASSWORD), &["-c", write]);
        assert!(!out.status.success(), "{write} was refused");
        let t = text(&out);
        assert!(t.contains("read-only"), "{write}: {t}");
    }
    assert!(!p.dir.join("stolen.csv").exists());
    // Client settings are still fine (drivers send them).
    let out = psql(
        s.sql,
        USER,
        Some(PASSWORD),
        &["-c", "set application_name = 'report'", "-c", "select 1"],
    );
    assert!(out.status.success(), "{}", text(&out));

    let out = psql(s.sql, USER, Some("not the password"), &["-c", "select 1"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("authentication failed for user \"analyst\""),
        "{}",
        text(&out)
    );
    let out = psql(s.sql, USER, None, &["-c", "select 1"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no password supplied"),
        "{}",
        text(&out)
    );
    let out = psql(s.sql, "nobody", Some(PASSWORD), &["-c", "select 1"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("authentication failed"),
        "{}",
        text(&out)
    );

    // Removing a user stops their next login.
    p.ok(&["sql-user", "remove", USER]);
    let out = psql(s.sql, USER, Some(PASSWORD), &["-c", "select 1"]);
    assert!(!out.status.success());
    assert!(p.ok(&["sql-user", "list"]).contains("no SQL users"));
}

#[test]
fn statements_time_out_and_the_server_limit_wins() {
    if !have_psql() {
        return;
    }
    let (_p, s) = served(&[("CITYBOOKS_SQL_STATEMENT_TIMEOUT_SECS", "2")]);
    let endless = "select sum(value) from generate_series(1, 50000000000)";
    let started = Instant::now();
    let out = psql(s.sql, USER, Some(PASSWORD), &["-c", endless]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("statement timeout (2000 ms)"),
        "{}",
        text(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // A client may ask for less.
    let out = psql(
        s.sql,
        USER,
        Some(PASSWORD),
        &["-c", "set statement_timeout = 300", "-c", endless],
    );
    assert!(
        text(&out).contains("statement timeout (300 ms)"),
        "{}",
        text(&out)
    );
}

#[test]
fn psycopg_and_pandas_read_the_warehouse_and_can_cancel() {
    let Some((_p, _s, seen, by)) = python_peer_on_sample(
        "psycopg and pandas",
        "psycopg, pandas",
        "pip install 'psycopg[binary]' pandas",
        "psycopg_client.py",
    ) else {
        return;
    };
    let (sum, rows) = totals(&by);
    assert_eq!(seen["rows"], rows as i64);
    assert_eq!(seen["rows_2025"], rows as i64);
    assert_eq!(
        cents(seen["sum"].as_str().unwrap()),
        sum,
        "exact to the cent"
    );
    assert_eq!(seen["pandas_shape"], serde_json::json!([rows as i64, 3]));
    assert_eq!(seen["pandas_sum_cents"], sum as i64);
    assert!(seen["pandas_groups"].as_i64().unwrap() >= 5);
    let write = seen["write"].as_str().unwrap();
    assert!(
        write.starts_with("25006") && write.contains("read-only"),
        "{write}"
    );
    let cancel = seen["cancel"].as_str().unwrap();
    assert!(
        cancel.starts_with("57014") && cancel.contains("user request"),
        "{cancel}"
    );
    assert!(seen["cancel_secs"].as_f64().unwrap() < 10.0);
    assert_eq!(seen["after_cancel"], 1);
}

#[test]
fn a_new_load_is_visible_without_a_restart() {
    if !have_psql() {
        return;
    }
    let (p, s) = served(&[]);
    let count = || {
        let out = psql(
            s.sql,
            USER,
            Some(PASSWORD),
            &["-A", "-t", "-c", "select count(*) from report.transaction"],
        );
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(count(), 2186);
    // The dashboard's answers are cached until the next load.
    assert_eq!(
        http_get(&s, "/api/years").1["fiscal_years"],
        serde_json::json!([2025])
    );
    let again = ureq::get(&s.url("/api/years")).call().unwrap();
    assert_eq!(again.header("x-citybooks-cache"), Some("hit"));
    // The server warmed the dashboard for the sample's load when it started.
    let warmed = |n: u64| {
        s.wait_for_metric(
            "citybooks_http_warms_total ",
            n,
            60,
            "the dashboard was never warmed",
        )
    };
    warmed(1);
    // Fiscal year 2024: the sample's rows, moved a year back.
    let (header, rows) = sample_records();
    let moved = in_year(&header, &rows[..100], 2024);
    let file = p.tmp.path().join("fy2024.csv");
    std::fs::write(&file, api_csv(&header, &moved)).unwrap();
    p.load(&[&file]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() != 2286 {
        assert!(Instant::now() < deadline, "the new load never showed up");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The dashboard's first views were computed after the load, ahead of any visitor
    // (the first warm-up ran at start, the second after this load): each comes from
    // the cache on its first request, asked with its parameters in the page's order or
    // in another.
    warmed(2);
    let hit = |path: &str| {
        let r = ureq::get(&s.url(path)).call().unwrap();
        assert_eq!(r.header("x-citybooks-cache"), Some("hit"), "{path}");
        r.into_json::<serde_json::Value>().unwrap()
    };
    assert_eq!(
        hit("/api/years")["fiscal_years"],
        serde_json::json!([2025, 2024])
    );
    let charts = http_get(&s, "/api/charts").1["charts"].clone();
    assert_eq!(charts.as_array().unwrap().len(), 5);
    for chart in charts.as_array().unwrap() {
        hit(&format!("/api/charts/{}", chart["id"].as_str().unwrap()));
    }
    let explore = hit("/api/explore?year=2025&side=Spending&related=exclude&h=organization");
    assert!(!explore["rows"].as_array().unwrap().is_empty());
    hit("/api/explore?h=organization&related=exclude&side=Revenue&year=2025");
    hit("/api/trend?side=Spending&related=exclude&h=organization");
    assert_eq!(
        s.metric("citybooks_http_requests_total{route=\"/api/years\",status=\"200\"} "),
        3,
        "the warm-ups are not counted as visitors' requests"
    );
}

fn openssl_cert(dir: &std::path::Path) {
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(dir.join("server.crt"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// `psql` with a connection string (`sslmode`), the password in `PGPASSWORD`.
fn psql_conn(port: u16, password: &str, sslmode: &str, sql: &str) -> Output {
    Command::new("psql")
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-w", "-X", "-A", "-t", "-c", sql])
        .arg(format!(
            "host=127.0.0.1 port={port} user={USER} dbname=citybooks sslmode={sslmode}"
        ))
        .output()
        .unwrap()
}

/// `citybooks serve` on free ports with `env`, a configuration that must stop it:
/// what it printed.
fn serve_refused(p: &Project, env: &[(&str, &str)]) -> Output {
    let out = p
        .cmd()
        .envs(env.iter().copied())
        .args(["serve", "--sftp-port", "0", "--sql-port", "0"])
        .args(["--http-port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "serve started: {}", text(&out));
    out
}

/// Whether psql and openssl (for a test certificate) are both installed.
fn have_psql_and_openssl() -> bool {
    have_psql()
        && have_peer(
            "openssl",
            Command::new("openssl").arg("version"),
            "apt-get install openssl",
        )
}

#[test]
fn psql_logs_in_with_md5_and_cleartext_passwords_where_configured() {
    if !have_psql_and_openssl() {
        return;
    }
    let p = Project::new();
    p.load(&[&sample_path()]);
    // A user added while password_auth is md5 gets PostgreSQL's MD5 verifier too.
    let md5 = ("CITYBOOKS_SQL_PASSWORD_AUTH", "md5");
    let mut add = p
        .cmd()
        .env(md5.0, md5.1)
        .args(["sql-user", "add", USER])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    }
    assert!(add.wait().unwrap().success());
    let stored = std::fs::read_to_string(p.dir.join("sql-users").join(USER)).unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    let md5_line = stored.lines().nth(1).unwrap();
    assert_eq!(md5_line.len(), 3 + 32, "{stored}");
    {
        let s = p.serve(&[md5]);
        let out = psql_conn(s.sql, PASSWORD, "disable", "select current_user");
        assert!(out.status.success(), "md5: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), USER);
        let out = psql_conn(s.sql, "not the password", "disable", "select 1");
        assert!(!out.status.success());
        assert!(
            text(&out)
                .to_lowercase()
                .contains("password authentication failed"),
            "{}",
            text(&out)
        );
    }
    // Cleartext only over TLS: without it the server refuses to start, and says why.
    let out = serve_refused(
        &p,
        &[
            ("CITYBOOKS_SQL_PASSWORD_AUTH", "cleartext"),
            ("CITYBOOKS_SQL_LISTEN", "127.0.0.1"),
        ],
    );
    assert!(
        text(&out).contains("password_auth = \"cleartext\" sends passwords as they are"),
        "{}",
        text(&out)
    );
    openssl_cert(&p.dir);
    let s = p.serve(&[
        ("CITYBOOKS_SQL_PASSWORD_AUTH", "cleartext"),
        ("CITYBOOKS_SQL_TLS_CERT", "server.crt"),
        ("CITYBOOKS_SQL_TLS_KEY", "server.key"),
        ("CITYBOOKS_SQL_TLS_REQUIRED", "true"),
    ]);
    let out = psql_conn(s.sql, PASSWORD, "require", "select current_user");
    assert!(out.status.success(), "cleartext: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), USER);
    let out = psql_conn(s.sql, "not the password", "require", "select 1");
    assert!(!out.status.success());
    assert!(
        text(&out)
            .to_lowercase()
            .contains("password authentication failed"),
        "{}",
        text(&out)
    );
}

#[test]
fn tls_is_offered_required_and_fails_closed() {
    if !have_psql_and_openssl() {
        return;
    }
    let p = Project::new();
    p.load(&[&sample_path()]);
    add_sql_user(&p, USER, PASSWORD);
    openssl_cert(&p.dir);
    let tls = [
        ("CITYBOOKS_SQL_TLS_CERT", "server.crt"),
        ("CITYBOOKS_SQL_TLS_KEY", "server.key"),
        ("CITYBOOKS_SQL_TLS_REQUIRED", "true"),
    ];
    {
        let s = p.serve(&tls);
        assert!(s.banner.contains("TLS"), "{}", s.banner);
        let sql = "select ssl from (select 1) x, (select 'on' as ssl) y";
        let out = psql_conn(s.sql, PASSWORD, "require", sql);
        assert!(out.status.success(), "{}", text(&out));
        let out = psql_conn(s.sql, PASSWORD, "disable", "select 1");
        assert!(!out.status.success());
        assert!(text(&out).contains("only TLS"), "{}", text(&out));
    }
    // A certificate that cannot be used stops the server: no plain-text fallback.
    std::fs::write(
        p.dir.join("server.crt"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let out = serve_refused(&p, &tls);
    let t = text(&out);
    assert!(t.contains("TLS") && t.contains("server.crt"), "{t}");
    assert!(!t.contains("ready"), "{t}");
}

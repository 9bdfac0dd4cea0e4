//! `citybooks publish` into a real PostgreSQL 15 (Debian's server, a throw-away
//! cluster per test): the star schema created with its keys and comments, the same
//! answers as citybooks' own to the cent, only the replaced fiscal years rewritten,
//! twice a no-op, a target changed by hand refused, every failure leaving the target
//! as it was — including a server stopped and a client killed in the middle of a
//! million-row publish — and `citybooks serve` publishing an SFTP upload by itself.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use citybooks_query::dashboard::{CHARTS, ORIGINAL_QUERY};
use common::*;

/// `citybooks publish ARGS` with the server's password in PGPASSWORD.
fn publish(p: &Project, args: &[&str]) -> Output {
    publish_cmd(p, args).output().unwrap()
}

fn publish_cmd(p: &Project, args: &[&str]) -> Command {
    let mut c = p.cmd();
    c.env("PGPASSWORD", Postgres::PASSWORD)
        .env_remove("PGPASSFILE")
        .arg("publish")
        .args(args);
    c
}

/// The JSON report of a publish that must succeed.
fn published(out: Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "publish failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The sample (fiscal year 2025) and the same rows restated as fiscal year 2024.
fn two_years(p: &Project) -> std::path::PathBuf {
    let (header, rows) = sample_records();
    let year = col(&header, "fiscal_year");
    let fy2024: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r[year] = "2024".into();
            r
        })
        .collect();
    p.file("fy2024.csv", &api_csv(&header, &fy2024))
}

/// Each fiscal year's rows and total in cents, as a query over `transaction` says.
fn per_year(rows: Vec<Vec<String>>) -> BTreeMap<i32, (i64, i128)> {
    rows.into_iter()
        .map(|r| (r[0].parse().unwrap(), (r[1].parse().unwrap(), cents(&r[2]))))
        .collect()
}

const PER_YEAR: &str = "select fiscal_year, count(*), sum(amount) from report.transaction group by fiscal_year order by fiscal_year";

/// A number written either way (`12.5`, `12.50`, `1.25e1`...) rounded half away from
/// zero to the cent, as text; anything else as it is.
fn to_cent(text: &str) -> String {
    let t = text.trim();
    if t.parse::<f64>().is_err() || t.contains(['e', 'E']) {
        return t.to_string();
    }
    let negative = t.starts_with('-');
    let t = t.trim_start_matches(['-', '+']);
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(3).collect();
    let mut cents: i128 =
        int.parse::<i128>().unwrap_or(0) * 100 + frac[..2].parse::<i128>().unwrap();
    if frac.as_bytes()[2] >= b'5' {
        cents += 1;
    }
    let sign = if negative && cents != 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

/// The dashboard's SQL as PostgreSQL takes it: the histogram computes on `double`,
/// and PostgreSQL has no `round(double precision, int)`, so it computes on `numeric`
/// (exact; the bins are compared rounded to the cent).
fn on_postgres(sql: &str) -> String {
    sql.replace(" as double)", " as numeric)")
}

#[test]
fn publish_keeps_a_postgresql_in_step_year_by_year() {
    if !Postgres::available() {
        return;
    }
    let pg = Postgres::start();
    let p = Project::new();
    let fy2024 = two_years(&p);
    p.load(&[&sample_path(), &fy2024]);

    // A first publish creates the tables and sends everything.
    let r = published(publish(&p, &[&pg.url(), "--json"]));
    let (header, rows) = sample_records();
    let n = rows.len() as i64;
    let amount = col(&header, "amount");
    let sample_total: i128 = rows.iter().map(|r| cents(&r[amount])).sum();
    assert_eq!(r["created"], true, "{r}");
    assert_eq!(r["load_id"], 2);
    assert_eq!(r["years"], serde_json::json!([2024, 2025]));
    assert_eq!(r["rows"], 2 * n);

    // The same answers as citybooks' own, to the cent: the original users' query and
    // the four charts, run by psql on PostgreSQL.
    for q in std::iter::once(&ORIGINAL_QUERY).chain(CHARTS.iter()) {
        let ours: Vec<Vec<String>> = p
            .rows(q.sql)
            .iter()
            .map(|r| r.iter().map(|v| to_cent(v)).collect())
            .collect();
        let theirs: Vec<Vec<String>> = pg
            .rows(&on_postgres(q.sql))
            .iter()
            .map(|r| r.iter().map(|v| to_cent(v)).collect())
            .collect();
        assert!(!ours.is_empty(), "{}", q.id);
        assert_eq!(ours, theirs, "{}", q.id);
    }
    // Exact totals, against the test's own arithmetic over the raw CSV.
    assert_eq!(
        per_year(pg.rows(PER_YEAR)),
        BTreeMap::from([(2024, (n, sample_total)), (2025, (n, sample_total))])
    );
    // The original ERD's shape: numeric(20,2), keys, comments.
    assert_eq!(
        pg.rows("select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'report.transaction'::regclass and attname = 'amount'"),
        [["numeric(20,2)"]]
    );
    assert_eq!(
        pg.rows("select conname from pg_constraint where conrelid = 'report.transaction'::regclass order by conname"),
        [
            ["transaction_finance_id_fkey"],
            ["transaction_fund_id_fkey"],
            ["transaction_pkey"],
            ["transaction_program_id_fkey"],
            ["transaction_type_id_fkey"]
        ]
    );
    assert!(
        pg.rows("select obj_description('report.program'::regclass)")[0][0]
            .starts_with("Who spends or receives")
    );

    // Twice is a no-op.
    let r = published(publish(&p, &[&pg.url(), "--json"]));
    assert_eq!(
        (r["up_to_date"].clone(), r["rows"].clone()),
        (true.into(), 0.into())
    );

    // Restate fiscal year 2024 (one amount changes by a cent): only its rows are
    // rewritten; 2025's rows are physically untouched (same xmin and ctid).
    let untouched = "select transaction_id::text, xmin::text || ' ' || ctid::text from report.transaction where fiscal_year = 2025 order by 1";
    let before = pg.rows(untouched);
    let mut restated: Vec<Vec<String>> = rows.clone();
    for r in &mut restated {
        r[col(&header, "fiscal_year")] = "2024".into();
    }
    let old = cents(&restated[0][amount]);
    restated[0][amount] = citybooks_model::money::format_cents(old + 1);
    let f = p.file("fy2024-restated.csv", &api_csv(&header, &restated));
    p.load(&[&f]);
    let r = published(publish(&p, &[&pg.url(), "--json"]));
    assert_eq!(r["load_id"], 3);
    assert_eq!(r["previous_load_id"], 2);
    assert_eq!(r["years"], serde_json::json!([2024]));
    assert_eq!(r["rows"], n);
    assert_eq!(pg.rows(untouched), before, "fiscal year 2025 was rewritten");
    assert_eq!(
        per_year(pg.rows(PER_YEAR)),
        BTreeMap::from([(2024, (n, sample_total + 1)), (2025, (n, sample_total))])
    );
    assert_eq!(per_year(pg.rows(PER_YEAR)), per_year(p.rows(PER_YEAR)));

    // A target changed by other hands is refused, saying what differs; --full puts
    // citybooks' rows back.
    let edit = pg.psql("update report.transaction set amount = amount + 1 where transaction_id = (select min(transaction_id) from report.transaction where fiscal_year = 2025)");
    assert!(edit.status.success());
    let out = publish(&p, &[&pg.url()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("changed since citybooks published it")
            && err.contains("fiscal year 2025 has")
            && err.contains("--full"),
        "{err}"
    );
    let r = published(publish(&p, &[&pg.url(), "--full", "--json"]));
    assert_eq!(r["years"], serde_json::json!([2024, 2025]));
    assert_eq!(per_year(pg.rows(PER_YEAR)), per_year(p.rows(PER_YEAR)));

    // Every publish is recorded, the failed one too; the target has no password.
    let log = p.rows(
        "select status, years, rows, load_id, target, coalesce(error, '') from meta.publishes order by publish_id",
    );
    let statuses: Vec<&str> = log.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        statuses,
        [
            "published",
            "up to date",
            "published",
            "failed",
            "published"
        ],
        "{log:?}"
    );
    assert_eq!(log[2][1], "2024");
    assert_eq!(log[2][2], n.to_string());
    assert_eq!(log[3][3], "", "a failed publish holds no load");
    // The status is a word; why it failed is its own column.
    assert!(!log[3][5].is_empty(), "{log:?}");
    assert!(
        log.iter()
            .enumerate()
            .all(|(i, r)| (i == 3) != r[5].is_empty()),
        "{log:?}"
    );
    assert!(log.iter().all(|r| r[4] == pg.url()), "{log:?}");
}

#[test]
fn publish_refuses_what_it_must_not_change_in_one_sentence() {
    if !Postgres::available() {
        return;
    }
    let pg = Postgres::start();
    let p = Project::new();
    p.load(&[&sample_path()]);
    let fails = |out: Output, wanted: &[&str]| {
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{err}");
        for w in wanted {
            assert!(err.contains(w), "{w:?} not in: {err}");
        }
        assert!(!err.contains(Postgres::PASSWORD), "{err}");
        err
    };
    // A wrong password, an unreachable server, a password in the target.
    let out = p
        .cmd()
        .env("PGPASSWORD", "not the password")
        .args(["publish", &pg.url()])
        .output()
        .unwrap();
    fails(
        out,
        &["password authentication failed for user \"postgres\""],
    );
    let (_refusing, port) = refusing_port();
    let nowhere = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    fails(publish(&p, &[&nowhere]), &["cannot connect"]);
    fails(
        publish(
            &p,
            &[&format!(
                "postgres://postgres:hunter22@127.0.0.1:{}/postgres",
                pg.port
            )],
        ),
        &["PGPASSWORD"],
    );
    // The password from ~/.pgpass's format (PGPASSFILE) works as libpq's does.
    let pgpass = p.file(
        "pgpass",
        format!(
            "127.0.0.1:{}:postgres:postgres:{}\n",
            pg.port,
            Postgres::PASSWORD
        )
        .as_bytes(),
    );
    let out = p
        .cmd()
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", &pgpass)
        .args(["publish", &pg.url(), "--schema", "ledger", "--json"])
        .output()
        .unwrap();
    assert_eq!(published(out)["created"], true);

    // Redshift's path needs an IAM role and a store on S3: refused before the target
    // is touched (this port is PostgreSQL's; nothing is sent to it).
    let redshift = format!("redshift://postgres@127.0.0.1:{}/postgres", pg.port);
    fails(
        publish(&p, &[&redshift]),
        &["Redshift reads the rows from S3 with an IAM role"],
    );
    fails(
        publish(
            &p,
            &[
                &redshift,
                "--iam-role",
                "arn:aws:iam::123456789012:role/citybooks",
            ],
        ),
        &["this project's store is a local folder"],
    );

    // A table whose columns are not citybooks' is left alone, named.
    assert!(pg
        .psql("alter table ledger.transaction alter column amount type double precision")
        .status
        .success());
    fails(
        publish(&p, &[&pg.url(), "--schema", "ledger", "--full"]),
        &["ledger.transaction.amount is double precision where citybooks publishes numeric(20,2)"],
    );
    assert!(pg.psql("alter table ledger.transaction alter column amount type numeric(20,2); alter table ledger.fund add column note text").status.success());
    fails(
        publish(&p, &[&pg.url(), "--schema", "ledger"]),
        &["ledger.fund has a column note that citybooks does not publish"],
    );
    // A partial schema (some of the five tables made by hand) is left alone too.
    assert!(pg
        .psql(
            "create schema partial; create table partial.program (program_id integer primary key)"
        )
        .status
        .success());
    fails(
        publish(&p, &[&pg.url(), "--schema", "partial"]),
        &["schema partial has program but not type, fund, finance, transaction"],
    );
    // A role that may not create in the database: the privilege error, in words.
    assert!(pg
        .psql("create role reader login password 'reader password'")
        .status
        .success());
    let out = p
        .cmd()
        .env("PGPASSWORD", "reader password")
        .args([
            "publish",
            &format!("postgres://reader@127.0.0.1:{}/postgres", pg.port),
            "--schema",
            "elsewhere",
        ])
        .output()
        .unwrap();
    fails(
        out,
        &[
            "creating the tables failed",
            "permission denied",
            "the target is as it was",
        ],
    );

    // A target holding a newer load than this warehouse (published from another
    // store) is refused.
    let other = Project::new();
    let fy2024 = two_years(&other);
    other.load(&[&sample_path(), &fy2024]);
    published(publish(
        &other,
        &[&pg.url(), "--schema", "shared", "--json"],
    ));
    fails(
        publish(&p, &[&pg.url(), "--schema", "shared"]),
        &["it holds citybooks load 2, newer than this warehouse's newest load 1"],
    );

    // `load --publish` publishes to [publish] target after the load.
    let fy2024 = two_years(&p);
    let out = p
        .cmd()
        .env("PGPASSWORD", Postgres::PASSWORD)
        .env("CITYBOOKS_PUBLISH_TARGET", pg.url())
        .args(["load", "--publish"])
        .arg(&fy2024)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("published load 2 to ")
            && printed.contains("tables created")
            && printed.contains("fiscal years 2024, 2025"),
        "{printed}"
    );
}

/// Waits until the server runs the publish's `COPY` into the fact table.
fn wait_for_fact_copy(pg: &Postgres, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let busy = pg.rows("select count(*) from pg_stat_activity where application_name = 'citybooks publish' and query like 'COPY \"report\".\"transaction\"%'");
        if busy[0][0] != "0" {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the publish ended ({status}) before its COPY was seen");
        }
        assert!(Instant::now() < deadline, "no COPY within 300 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_publish_cut_short_leaves_the_target_as_it_was_and_the_next_completes() {
    if !Postgres::available() {
        return;
    }
    let pg = Postgres::start();
    let p = Project::new();
    p.load(&[&sample_path()]);
    published(publish(&p, &[&pg.url(), "--json"]));
    let first = per_year(pg.rows(PER_YEAR));
    let state = "select load_id from report.citybooks_publish";
    assert_eq!(pg.rows(state), [["1"]]);

    // A million generated rows over 29 fiscal years (2025 among them).
    let big = p.tmp.path().join("million.csv");
    citybooks_bench::Generator::new()
        .write(
            1_000_000,
            citybooks_bench::Dialect::Api,
            7,
            std::fs::File::create(&big).unwrap(),
        )
        .unwrap();
    p.load(&[&big]);
    let wanted = per_year(p.rows(PER_YEAR));
    assert_eq!(wanted.values().map(|(n, _)| n).sum::<i64>(), 1_000_000);

    // 1. The server stops (as in a crash) while the rows stream in.
    let mut child = publish_cmd(&p, &[&pg.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_fact_copy(&pg, &mut child);
    pg.stop("immediate");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("the target is as it was before this publish"),
        "{err}"
    );
    pg.start_again();
    assert_eq!(per_year(pg.rows(PER_YEAR)), first);
    assert_eq!(pg.rows(state), [["1"]]);

    // 2. The client is killed (SIGKILL) while the rows stream in.
    let mut child = publish_cmd(&p, &[&pg.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_fact_copy(&pg, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(per_year(pg.rows(PER_YEAR)), first);
    assert_eq!(pg.rows(state), [["1"]]);

    // 3. The next publish completes: every year as citybooks has it.
    let r = published(publish(&p, &[&pg.url(), "--json"]));
    assert_eq!(r["load_id"], 2);
    assert_eq!(r["rows"], 1_000_000);
    assert_eq!(per_year(pg.rows(PER_YEAR)), wanted);
}

#[test]
fn serve_publishes_an_sftp_upload_by_itself() {
    if !Postgres::available() {
        return;
    }
    let pg = Postgres::start();
    let p = Project::new();
    let key = add_user(&p, "alice", "alice_key", &["-t", "ed25519"]);
    let target = pg.url();
    let s = p.serve(&[
        ("CITYBOOKS_PUBLISH_TARGET", target.as_str()),
        ("PGPASSWORD", Postgres::PASSWORD),
    ]);
    let work = p.tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::copy(sample_path(), work.join("ledger.csv")).unwrap();
    let out = sftp(s.sftp, &key, "alice", &work, "put ledger.csv\n", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The load, then the publish, happen in the server's upload queue.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let held = pg.psql("select load_id from report.citybooks_publish");
        if held.status.success() && String::from_utf8_lossy(&held.stdout).trim() == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not publish the upload"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The target commits first, then serve records the publish in meta.publishes: wait
    // for that record before stopping the server.
    let recorded = || p.rows("select status, years from meta.publishes");
    wait_until(60, "serve did not record the publish", || {
        !recorded().is_empty()
    });
    drop(s);
    assert_eq!(per_year(pg.rows(PER_YEAR)), per_year(p.rows(PER_YEAR)));
    assert_eq!(recorded(), [["published", "2025"]]);
}

/// Redshift cannot be reached from here. Its statements are golden files in
/// crates/publish (checked against AWS's syntax); this runs every one of them that
/// PostgreSQL also accepts — the DDL without its DISTSTYLE/DISTKEY/SORTKEY clauses,
/// the staging tables, the merge of a dimension, the delete + insert of the facts and
/// the state — in one transaction on the real PostgreSQL, with plain INSERTs standing
/// in for the COPY from S3.
#[test]
fn redshift_statements_run_on_postgresql_where_it_accepts_them() {
    use citybooks_model::schema::Table;
    use citybooks_publish::sql;
    use citybooks_publish::Flavor::Redshift;
    if !Postgres::available() {
        return;
    }
    let pg = Postgres::start();
    let without_layout = |s: String| -> String {
        match s.find("\nDISTSTYLE") {
            Some(i) => s[..i].to_string(),
            None => s,
        }
    };
    let ddl: Vec<String> = sql::create_tables(Redshift, "rs")
        .into_iter()
        .map(without_layout)
        .collect();
    let out = pg.psql(&format!("BEGIN; {}; COMMIT", ddl.join(";\n")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut script = vec![
        "BEGIN".to_string(),
        sql::lock(Redshift, "rs"),
        sql::create_stage(Redshift, "rs", Table::Finance),
        "INSERT INTO \"citybooks_stage_finance\" VALUES (1, 'Spending'), (2, 'Revenue')".into(),
    ];
    let (update, insert) = sql::merge_dimension("rs", Table::Finance);
    script.extend([update, insert, sql::drop_stage(Table::Finance)]);
    for (table, row) in [
        (
            Table::named("report.program").unwrap(),
            "(7, 'Operating', 'OPR', 'Adult Probation', 'ADP', 'Public Protection', 1, 'No')",
        ),
        (
            Table::named("report.type").unwrap(),
            "(3, 'Sub', 'S1', 'Obj', 'O1', 'Salaries', 'C1')",
        ),
        (
            Table::named("report.fund").unwrap(),
            "(4, 'Operating', '1', 'GF', 'GF~1', 'General Fund', 'GEN')",
        ),
    ] {
        let (update, insert) = sql::merge_dimension("rs", table);
        script.extend([
            sql::create_stage(Redshift, "rs", table),
            format!(
                "INSERT INTO \"citybooks_stage_{}\" VALUES {row}",
                table.name()
            ),
            update,
            insert,
            sql::drop_stage(table),
        ]);
    }
    script.extend([
        sql::create_stage(Redshift, "rs", Table::Transaction),
        "INSERT INTO \"citybooks_stage_transaction\" VALUES (10, 2025, 7, 3, 4, 1, 1234.56, 1, 'raw/a.csv', 2, NULL), (11, 2025, 7, 3, 4, 2, -0.01, 1, 'raw/a.csv', 3, NULL)".into(),
        sql::delete_years("rs", Some(&[2025])),
        sql::insert_facts_from_stage("rs"),
        sql::drop_stage(Table::Transaction),
    ]);
    script.extend(sql::write_state(
        "rs",
        1,
        "2026-11-30 08:00:00+00",
        "citybooks test",
        Some(&[2025]),
        &[(2025, 2, "1234.55".into())],
    ));
    script.push("COMMIT".into());
    let out = pg.psql(&script.join(";\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pg.rows("select count(*), sum(amount) from rs.transaction"),
        [["2", "1234.55"]]
    );
    assert_eq!(
        pg.rows("select fiscal_year, row_count, amount, load_id from rs.citybooks_publish_years"),
        [["2025", "2", "1234.55", "1"]]
    );
    // The year figures and state queries publish reads, on the same tables.
    let (load, _years) = sql::read_state("rs");
    assert_eq!(pg.rows(&load), [["1"]]);
    assert_eq!(
        pg.rows(&sql::year_figures("rs")),
        [["2025", "2", "1234.55"]]
    );
}

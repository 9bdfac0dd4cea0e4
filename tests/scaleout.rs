//! Scale-out: several processes on one store. Loads take turns through the writer
//! lease in the store (real processes, on a local store and on a real S3-compatible
//! server); a load that waits says for whom; a killed writer frees the lease.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// File `i` of process `who`: 300 rows of the sample moved to `year`, amounts shifted
/// by a few cents so every file's sums differ, two programs only this file has and one
/// program every file has (all processes race to create it).
fn variant(p: &Project, who: &str, i: usize, year: i32) -> PathBuf {
    let (header, rows) = sample_records();
    let start = (i * 211) % (rows.len() - 300);
    let mut out: Vec<Vec<String>> = rows[start..start + 300].to_vec();
    let (fy, amount, program) = (
        col(&header, "fiscal_year"),
        col(&header, "amount"),
        col(&header, "program"),
    );
    for (n, r) in out.iter_mut().enumerate() {
        r[fy] = year.to_string();
        let cents = cents(&r[amount]) + (i as i128 + 1) * if who == "a" { 1 } else { 7 };
        r[amount] = format!(
            "{}{}.{:02}",
            if cents < 0 { "-" } else { "" },
            cents.abs() / 100,
            cents.abs() % 100
        );
        if n < 2 {
            r[program] = format!("Program {who}{i}-{n}");
        } else if n == 2 {
            // The same member in every file: its whole hierarchy from one sample row.
            for c in [
                "related_govt_units",
                "organization_group_code",
                "organization_group",
                "department_code",
                "department",
                "program_code",
            ] {
                r[col(&header, c)] = rows[0][col(&header, c)].clone();
            }
            r[program] = "Program Every File Has".into();
        }
    }
    p.file(&format!("{who}{i}.csv"), &api_csv(&header, &out))
}

/// What must be equal between two warehouses that ran the same loads in the same
/// order: every row of every table with its ids (raw file names aside).
fn exact_state(p: &Project) -> Vec<Vec<Vec<String>>> {
    [
        "select load_id, status, rows_loaded, rows_quarantined, years_replaced from meta.loads order by load_id",
        "select transaction_id, load_id, fiscal_year, program_id, type_id, fund_id, finance_id, amount from report.transaction order by transaction_id",
        "select * from report.program order by program_id",
        "select * from report.type order by type_id",
        "select * from report.fund order by fund_id",
        "select * from report.finance order by finance_id",
    ]
    .iter()
    .map(|q| p.rows(q))
    .collect()
}

/// Two processes, five loads each, started at once on `p`'s store (fiscal years
/// 2021→2025 and 2025→2021: the same year in both at the same moment, and different
/// years). Afterwards: ten loads with distinct ids, unique transaction ids and members,
/// and exactly the warehouse the same loads give run one after another in the order
/// they committed.
/// (`--replace-years`: the variants of one year differ in gross amount by more than the
/// shrink guard allows; here the order of the loads is what is tested.)
fn concurrent_loads_equal_serial_ones(p: &Project, configure: impl Fn(&Project)) {
    let mut files = Vec::new();
    for (who, years) in [
        ("a", [2021, 2022, 2023, 2024, 2025]),
        ("b", [2025, 2024, 2023, 2022, 2021]),
    ] {
        let batch: Vec<PathBuf> = years
            .iter()
            .enumerate()
            .map(|(i, y)| variant(p, who, i, *y))
            .collect();
        files.push(batch);
    }
    let children: Vec<Child> = files
        .iter()
        .map(|batch| {
            p.cmd()
                .args(["load", "--json", "--no-progress", "--replace-years"])
                .args(batch)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut reports = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(r["status"], "loaded", "{r}");
            reports.push(r);
        }
    }
    assert_eq!(reports.len(), 10);

    // Ids: ten distinct loads, every transaction id once, every member once.
    let mut load_ids: Vec<i64> = reports
        .iter()
        .map(|r| r["load_id"].as_i64().unwrap())
        .collect();
    load_ids.sort();
    assert_eq!(load_ids, (1..=10).collect::<Vec<i64>>());
    assert_eq!(
        p.rows("select count(*) - count(distinct transaction_id) from report.transaction"),
        vec![vec!["0".to_string()]]
    );
    assert_eq!(
        p.rows("select count(*) from report.program where program = 'Program Every File Has'"),
        vec![vec!["1".to_string()]]
    );
    for (table, natural) in [
        ("program", "program, program_code, department, department_code, organization_group, organization_group_code, related_govt_units"),
        ("type", "sub_object, sub_object_code, object, object_code, character, character_code"),
        ("fund", "fund_category, fund_category_code, fund, fund_code, fund_type, fund_type_code"),
    ] {
        assert_eq!(
            p.value(&format!("select count(*) - (select count(*) from (select distinct {natural} from report.{table})) from report.{table}")),
            "0",
            "{table}: a member exists twice under different ids"
        );
    }
    assert_eq!(p.fingerprint()["dup_members"], vec![vec!["0".to_string()]]);
    assert_eq!(p.fingerprint()["dangling"], vec![vec!["0".to_string()]]);
    // Each year holds the rows of the load that replaced it last: 300 rows.
    assert_eq!(
        p.rows("select fiscal_year, count(*) from report.transaction group by fiscal_year order by fiscal_year"),
        (2021..=2025).map(|y| vec![y.to_string(), "300".to_string()]).collect::<Vec<_>>()
    );

    // The same loads, one after another, in the order they committed.
    let order: Vec<String> = p
        .rows("select source_file from meta.loads order by load_id")
        .into_iter()
        .map(|r| r[0].rsplit('-').next().unwrap().to_string())
        .collect();
    let serial = Project::new();
    configure(&serial);
    for name in &order {
        let path = p.tmp.path().join(name);
        let out = serial.ok(&["load", "--json", "--replace-years", path.to_str().unwrap()]);
        let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(r["status"], "loaded", "{r}");
    }
    assert_eq!(exact_state(p), exact_state(&serial));
}

#[test]
fn concurrent_loads_on_a_local_store_take_turns() {
    let p = Project::new();
    concurrent_loads_equal_serial_ones(&p, |_| {});
}

#[test]
fn concurrent_loads_on_s3_take_turns() {
    let Some(server) = start_s3() else { return };
    let p = Project::new();
    server.configure(&p);
    // The serial twin gets a store of its own on the same server.
    concurrent_loads_equal_serial_ones(&p, |twin| {
        let text = std::fs::read_to_string(p.dir.join("citybooks.toml")).unwrap();
        std::fs::write(
            twin.dir.join("citybooks.toml"),
            text.replace("s3://books/city", "s3://books/serial"),
        )
        .unwrap();
    });
}

#[test]
fn a_waiting_load_says_for_whom_and_a_killed_writer_frees_the_lease() {
    let p = Project::new();
    let a = variant(&p, "a", 0, 2024);
    let b = variant(&p, "b", 1, 2025);
    // A takes the lease and stops after committing its new members.
    let mut writer = p
        .cmd()
        .env("CITYBOOKS_FAILPOINT", "after-dimensions:pause")
        .args(["load", "--no-progress"])
        .arg(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let writer_err = lines_of(writer.stderr.take().unwrap());
    wait_for_line(
        &writer_err,
        "fail point after-dimensions reached",
        "the first load",
    );

    let mut waiting = p
        .cmd()
        .args(["load", "--json", "--no-progress"])
        .arg(&b)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting_err = lines_of(waiting.stderr.take().unwrap());
    let said = wait_for_line(
        &waiting_err,
        "waiting for the writer lease",
        "the second load",
    );
    assert!(
        said.contains("held by load of raw/cli/")
            && said.contains("a0.csv")
            && said.contains(&format!("pid {}", writer.id())),
        "{said}"
    );
    // It really waits: nothing of B is committed while A holds the lease.
    assert_eq!(p.value("select count(*) from meta.loads"), "0");

    // A is killed: its lease is free at once (same host, process gone), B goes on.
    writer.kill().unwrap();
    writer.wait().unwrap();
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "loaded", "{r}");
    let waited = &r["lease_wait"]["for_holders"];
    assert_eq!(waited.as_array().unwrap().len(), 1, "{r}");
    assert!(waited[0].as_str().unwrap().contains("a0.csv"), "{r}");
    assert!(r["lease_wait"]["seconds"].as_f64().unwrap() > 0.0, "{r}");
    // The warehouse is B's alone, and A's file loads cleanly afterwards.
    let twin = Project::new();
    twin.load(&[&b]);
    assert_eq!(p.fingerprint(), twin.fingerprint());
    assert_eq!(p.load(&[&a])[0]["status"], "loaded");
    assert_eq!(p.value("select count(*) from meta.loads"), "2");
}

// ---------------------------------------------------------------------------------
// The Ballista cluster: `citybooks scheduler` and `citybooks executor` as separate
// processes on loopback, the project on a real S3-compatible server.

/// A scheduler and its executors, killed when dropped.
struct Cluster {
    scheduler: Option<Child>,
    port: u16,
    executors: Vec<Child>,
    _work: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.scheduler.iter_mut().chain(self.executors.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cluster {
    /// Starts `citybooks scheduler` and `executors` × `citybooks executor` (one task
    /// slot each, so work spreads over both) in `p`'s folder, and waits until every
    /// executor's heartbeat reached the scheduler (`/readyz`).
    fn start(p: &Project, executors: usize) -> Cluster {
        let mut scheduler = p
            .cmd()
            .args(["scheduler", "--bind-host", "127.0.0.1", "--bind-port", "0"])
            .args(["--executor-timeout-seconds", "6"])
            .args(["--expire-dead-executor-interval-seconds", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = lines_of(scheduler.stdout.take().unwrap());
        let line = wait_for_line(&lines, "listening on", "the scheduler");
        let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        wait_for_line(&lines, "ready", "the scheduler");
        let work = tempfile::tempdir().unwrap();
        let mut cluster = Cluster {
            scheduler: Some(scheduler),
            port,
            executors: Vec::new(),
            _work: work,
        };
        for i in 0..executors {
            cluster.add_executor(p, i);
        }
        cluster
    }

    /// Starts executor `i` and waits for its `/readyz`. Ballista advertises the port it
    /// was given, so an executor cannot bind port 0 and report the real one.
    fn add_executor(&mut self, p: &Project, i: usize) {
        let log_path = self._work.path().join(format!("executor-{i}.log"));
        let child = on_free_ports("an executor", |[flight, grpc, health]| {
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = p
                .cmd()
                .args(["executor", "--scheduler-host", "127.0.0.1"])
                .args(["--scheduler-port", &self.port.to_string()])
                .args(["--bind-host", "127.0.0.1", "--external-host", "127.0.0.1"])
                .args(["--bind-port", &flight.to_string()])
                .args(["--bind-grpc-port", &grpc.to_string()])
                .args(["--bind-health-port", &health.to_string()])
                .args([
                    "--vcores",
                    "1",
                    "--executor-heartbeat-interval-seconds",
                    "1",
                ])
                .arg("--work-dir")
                .arg(self._work.path().join(format!("executor-{i}")))
                .env("CITYBOOKS_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(r) = ureq::get(&format!("http://127.0.0.1:{health}/readyz")).call() {
                    if r.status() == 200 {
                        return Ok(child);
                    }
                }
                if child.try_wait().unwrap().is_some() {
                    return Err(log());
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("not ready within 60 s:\n{}", log()));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        self.executors.push(child);
    }

    fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.port)
    }

    /// The environment that points citybooks at this cluster.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CITYBOOKS_QUERY_ENGINE", "ballista".into()),
            ("CITYBOOKS_QUERY_SCHEDULER", self.url()),
        ]
    }

    fn stop_scheduler(&mut self) {
        let mut s = self.scheduler.take().unwrap();
        s.kill().unwrap();
        s.wait().unwrap();
    }
}

/// The job folders in the executors' work dirs.
fn job_folders(cluster: &Cluster) -> std::collections::BTreeSet<PathBuf> {
    (0..cluster.executors.len())
        .flat_map(|i| {
            std::fs::read_dir(cluster._work.path().join(format!("executor-{i}")))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
        })
        .collect()
}

/// Starts `psql` running [`LONG_QUERY`] as the test's SQL user.
fn long_query(port: u16) -> Child {
    Command::new("psql")
        .env("PGPASSWORD", "a long passphrase")
        .args([
            "-w",
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["-U", "analyst", "-d", "citybooks", "-c", LONG_QUERY])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until an executor's work dir holds a job folder not in `before`: a job of
/// the cluster is running.
fn wait_for_new_job(cluster: &Cluster, before: &std::collections::BTreeSet<PathBuf>) {
    wait_until(60, "the long query did not start on the cluster", || {
        job_folders(cluster) != *before
    });
}

/// `psql` as the test's SQL user.
fn analyst(port: u16, args: &[&str]) -> std::process::Output {
    psql(port, "analyst", Some("a long passphrase"), args)
}

/// `citybooks query --format csv` with `env`: the CSV text (header included).
fn query_csv(p: &Project, env: &[(&str, String)], sql: &str) -> String {
    let out = run_ok(
        p.cmd()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["query", "--format", "csv", sql]),
        sql,
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Analysts' queries: joins of every dimension, fiscal-year filters, windows,
/// `count(distinct)`, rollups, subqueries. Each orders its rows completely.
const ADHOC: &[&str] = &[
    "select fiscal_year, count(*), sum(amount), min(amount), max(amount) from report.transaction group by fiscal_year order by fiscal_year",
    "select p.organization_group, ty.character, fu.fund_type, f.revenue_or_spending, sum(t.amount) as total, count(*) as n from report.transaction t join report.program p on t.program_id = p.program_id join report.type ty on t.type_id = ty.type_id join report.fund fu on t.fund_id = fu.fund_id join report.finance f on t.finance_id = f.finance_id group by 1, 2, 3, 4 order by 1, 2, 3, 4",
    "select sum(amount), count(*) from report.transaction where fiscal_year = 2024",
    "select p.department, sum(t.amount) as total from report.transaction t join report.program p on t.program_id = p.program_id where t.fiscal_year between 2023 and 2024 group by p.department order by total desc, p.department",
    "select fiscal_year, department, total, rank() over (partition by fiscal_year order by total desc, department) as r from (select t.fiscal_year, p.department, sum(t.amount) as total from report.transaction t join report.program p on t.program_id = p.program_id group by 1, 2) x order by fiscal_year, r",
    "select fiscal_year, count(distinct program_id), count(distinct type_id), count(distinct fund_id) from report.transaction group by fiscal_year order by fiscal_year",
    "select count(distinct p.department) from report.transaction t join report.program p on t.program_id = p.program_id",
    "select fiscal_year, total, total - lag(total) over (order by fiscal_year) as change from (select fiscal_year, sum(amount) as total from report.transaction group by fiscal_year) y order by fiscal_year",
    "select p.department, sum(t.amount) as spending from report.transaction t join report.program p on t.program_id = p.program_id join report.finance f on t.finance_id = f.finance_id where f.revenue_or_spending = 'Spending' group by p.department order by spending desc, p.department limit 10",
    "select f.revenue_or_spending, avg(t.amount), min(t.amount), max(t.amount), count(*) from report.transaction t join report.finance f on t.finance_id = f.finance_id group by 1 order by 1",
    "select fu.fund_category, sum(t.amount) as total from report.transaction t join report.fund fu on t.fund_id = fu.fund_id group by fu.fund_category having count(*) > 10 order by total, fu.fund_category",
    "select case when amount < 0 then 'negative' when amount < 1000000 then 'small' else 'large' end as size, count(*), sum(amount) from report.transaction group by 1 order by 1",
    "select count(*), sum(amount) from report.transaction where program_id in (select program_id from report.program where organization_group_code = 1)",
    "select count(*) from report.transaction t left join report.program p on t.program_id = p.program_id where p.program_id is null",
    "select 'revenue' as side, sum(t.amount) from report.transaction t where t.finance_id = 2 union all select 'spending', sum(t.amount) from report.transaction t where t.finance_id = 1 order by 1",
    "select transaction_id, fiscal_year, amount from report.transaction order by amount desc, transaction_id limit 20",
    "select upper(p.department) as d, count(*) from report.transaction t join report.program p on t.program_id = p.program_id where upper(p.department) like '%POLICE%' or p.department like 'Public%' group by 1 order by 1",
    "select fiscal_year, median(amount) from report.transaction group by fiscal_year order by fiscal_year",
    "select fiscal_year, transaction_id, sum(amount) over (partition by fiscal_year order by transaction_id rows between unbounded preceding and current row) as running from report.transaction where program_id < 20 order by fiscal_year, transaction_id",
    "select count(*) from report.program p where exists (select 1 from report.transaction t where t.program_id = p.program_id and t.fiscal_year = 2023)",
    "select fiscal_year, finance_id, sum(amount) from report.transaction group by rollup (fiscal_year, finance_id) order by fiscal_year nulls last, finance_id nulls last",
    "select ty.object, fu.fund, sum(t.amount) as total from report.transaction t join report.type ty on t.type_id = ty.type_id join report.fund fu on t.fund_id = fu.fund_id where t.fiscal_year = 2025 group by 1, 2 order by total desc, 1, 2 limit 25",
    "select t.source_file is not null as has_file, count(distinct t.load_id), min(t.source_line), max(t.source_line) from report.transaction t group by 1 order by 1",
];

/// The sample as fiscal year 2025, and two earlier years made from it (amounts shifted
/// by a cent per row, so every year's figures differ).
fn three_years(p: &Project) -> Vec<PathBuf> {
    let (header, rows) = sample_records();
    let (fy, amount) = (col(&header, "fiscal_year"), col(&header, "amount"));
    let mut files = vec![sample_path()];
    for (year, shift) in [(2024, 1i128), (2023, -3)] {
        let moved: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r[fy] = year.to_string();
                let c = cents(&r[amount]) + shift;
                r[amount] = format!(
                    "{}{}.{:02}",
                    if c < 0 { "-" } else { "" },
                    c.abs() / 100,
                    c.abs() % 100
                );
                r
            })
            .collect();
        files.push(p.file(&format!("fy{year}.csv"), &api_csv(&header, &moved)));
    }
    files
}

/// Every query of the dashboard and the analysts: the original users' query, the four
/// charts and [`ADHOC`].
fn all_queries() -> Vec<&'static str> {
    let mut q = vec![citybooks_query::dashboard::ORIGINAL_QUERY.sql];
    q.extend(citybooks_query::dashboard::CHARTS.iter().map(|c| c.sql));
    q.extend_from_slice(ADHOC);
    q
}

/// The explorer's requests at each level of each hierarchy, and the trend.
fn explorer_paths(embedded: &Served) -> Vec<String> {
    let mut paths = Vec::new();
    for h in ["organization", "type", "fund"] {
        let top = format!("/api/explore?year=2025&side=Spending&h={h}");
        let (_, view) = http_get(embedded, &top);
        let first = view["rows"][0]["name"].as_str().unwrap().to_string();
        let second_url = format!("{top}&path={}", url_encode(&first));
        let (_, second) = http_get(embedded, &second_url);
        let next = second["rows"][0]["name"].as_str().unwrap().to_string();
        paths.push(top);
        paths.push(second_url.clone());
        paths.push(format!("{second_url}&path={}", url_encode(&next)));
        paths.push(format!(
            "/api/trend?side=Spending&h={h}&path={}",
            url_encode(&first)
        ));
    }
    paths.push("/api/explore?year=2024&side=Revenue&h=organization&related=include".into());
    paths
}

/// An HTTP answer without what may differ between engines: its timing, and the Arrow
/// type of string columns (the embedded engine reads strings as `Utf8View`, the cluster
/// as `Utf8`; the JSON values are the same).
fn comparable(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("elapsed_ms");
        if let Some(cols) = o.get_mut("columns").and_then(|c| c.as_array_mut()) {
            for c in cols {
                if c["type"] == "Utf8View" {
                    c["type"] = "Utf8".into();
                }
            }
        }
    }
    v
}

/// A counter of `/metrics`.
#[test]
fn the_cluster_answers_exactly_as_the_embedded_engine_on_s3() {
    let Some(server) = start_s3() else { return };
    let p = Project::new();
    server.configure(&p);
    for f in three_years(&p) {
        assert_eq!(p.load(&[&f])[0]["status"], "loaded");
    }
    add_sql_user(&p, "analyst", "a long passphrase");
    let cluster = Cluster::start(&p, 2);
    let env = cluster.env();
    let embedded: Vec<(&str, String)> = Vec::new();

    // `citybooks query`: the original query and the charts, both engines, the same
    // CSV to the cent (every query follows through psql below, which is quicker).
    for sql in all_queries().into_iter().take(5) {
        assert_eq!(
            query_csv(&p, &env, sql),
            query_csv(&p, &embedded, sql),
            "{sql}"
        );
    }

    // `citybooks serve` on the cluster, beside one on the embedded engine.
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let on_cluster = p.serve(&env_refs);
    assert!(
        on_cluster.banner.contains(&cluster.url()),
        "{}",
        on_cluster.banner
    );
    let local = p.serve(&[]);
    let mut paths: Vec<String> = citybooks_query::dashboard::CHARTS
        .iter()
        .map(|c| format!("/api/charts/{}", c.id))
        .collect();
    paths.extend(explorer_paths(&local));
    for path in &paths {
        let (status, got) = http_get(&on_cluster, path);
        assert_eq!(status, 200, "{path}: {got}");
        assert_eq!(
            comparable(got),
            comparable(http_get(&local, path).1),
            "{path}"
        );
    }
    // psql through the PostgreSQL protocol: every query, the same rows (psql's
    // unaligned output, decimals as text).
    let same_through_psql = || {
        for sql in all_queries() {
            let args = ["-A", "-c", sql];
            let a = analyst(on_cluster.sql, &args);
            let b = analyst(local.sql, &args);
            assert!(
                a.status.success(),
                "{sql}: {}",
                String::from_utf8_lossy(&a.stderr)
            );
            assert_eq!(a.stdout, b.stdout, "{sql}");
        }
    };
    same_through_psql();
    // Catalog queries stay in the server: psql's \dt works on the cluster engine.
    let dt = analyst(on_cluster.sql, &["-c", "\\dt report.*"]);
    assert!(String::from_utf8_lossy(&dt.stdout).contains("transaction"));
    // The report.* queries really ran on the cluster.
    let sent = on_cluster.metric("citybooks_cluster_queries_total{ran=\"cluster\"}");
    assert!(
        sent as usize >= paths.len() + all_queries().len(),
        "{sent} plans went to the cluster"
    );

    // A fiscal-year replacement while the cluster serves: the next query sees the new
    // rows and none of the retired ones.
    let (header, rows) = sample_records();
    let (fy, amount) = (col(&header, "fiscal_year"), col(&header, "amount"));
    let replacement: Vec<Vec<String>> = rows[..500]
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r[fy] = "2024".into();
            r[amount] = "1.00".into();
            r
        })
        .collect();
    let f = p.file("fy2024-restated.csv", &api_csv(&header, &replacement));
    // Every amount 1.00: far past the shrink guard, replaced on purpose.
    let out = p.ok(&["load", "--json", "--replace-years", f.to_str().unwrap()]);
    assert!(out.contains("\"status\":\"loaded\""), "{out}");
    // (The server looks for a new load at most every 0.5 s: poll, with a deadline.)
    let q =
        "select fiscal_year, count(*), sum(amount) from report.transaction group by 1 order by 1";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = analyst(on_cluster.sql, &["-A", "-t", "-c", q]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("2024|500|500.00") {
            assert!(
                text.contains("2023|2186|") && text.contains("2025|2186|"),
                "{text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replacement was not seen: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // (The embedded server has seen the load too once it answers the new count.)
    wait_until(30, "the embedded server missed the load", || {
        String::from_utf8_lossy(&analyst(local.sql, &["-A", "-t", "-c", q]).stdout)
            .contains("2024|500|500.00")
    });
    same_through_psql();
}

/// A query that keeps the cluster busy for a while (seconds per fiscal year in a debug
/// build): every pair of rows of a fiscal year, formatted.
const LONG_QUERY: &str = "select count(*) from report.transaction a join report.transaction b on a.fiscal_year = b.fiscal_year where length(concat(cast(a.transaction_id as varchar), cast(b.transaction_id as varchar))) > 7";

#[test]
fn cluster_failures_end_in_clear_errors_and_serve_survives() {
    let Some(server) = start_s3() else { return };
    let p = Project::new();
    server.configure(&p);
    // Two fiscal years of the sample (4,372 rows), so LONG_QUERY runs for a while (on one
    // executor after the other is killed: tens of seconds in a debug build, minutes on a
    // busy machine).
    let (header, rows) = sample_records();
    let all: Vec<Vec<String>> = (2024..2026)
        .flat_map(|year| in_year(&header, &rows, year))
        .collect();
    let f = p.file("two-years.csv", &api_csv(&header, &all));
    assert_eq!(p.load(&[&f])[0]["status"], "loaded");
    add_sql_user(&p, "analyst", "a long passphrase");
    let original = citybooks_query::dashboard::ORIGINAL_QUERY.sql;
    let want = query_csv(&p, &[], original);

    let mut cluster = Cluster::start(&p, 2);
    let env = cluster.env();
    let mut env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // serve's log says when it cancels a cluster job.
    let mut logged = env_refs.clone();
    logged.push(("CITYBOOKS_LOG", "warn,citybooks_query=info"));
    let (s, log_path) = p.serve_logged(&logged);
    let login = ["-A", "-c"];

    // A statement cancelled while its job runs (psql's Ctrl-C: a cancel request)
    // ends, and serve cancels the job on the cluster.
    let before = job_folders(&cluster);
    let cancelled = long_query(s.sql);
    wait_for_new_job(&cluster, &before);
    let sigint = Command::new("kill")
        .args(["-INT", &cancelled.id().to_string()])
        .status()
        .unwrap();
    assert!(sigint.success());
    let out = cancelled.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("cancel"), "{err}");
    wait_for_text(
        &log_path,
        "cancelled the cluster job",
        60,
        "serve did not cancel the job",
    );

    // An executor killed during a long query: the query fails or Ballista retries it
    // on the other executor; serve stays up and the next query succeeds.
    let before = job_folders(&cluster);
    let mut long = long_query(s.sql);
    wait_for_new_job(&cluster, &before);
    let killed_mid_query = long.try_wait().unwrap().is_none();
    cluster.executors[0].kill().unwrap();
    cluster.executors[0].wait().unwrap();
    poll_until(
        480,
        || long.try_wait().unwrap().is_some(),
        || {
            format!(
                "the long query neither ended nor failed within 480 s; serve's log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            )
        },
    );
    let out = long.wait_with_output().unwrap();
    eprintln!(
        "long query after the kill (mid-query: {killed_mid_query}): {} {}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    assert!(
        killed_mid_query,
        "the long query ended before the executor was killed"
    );
    let next = analyst(s.sql, &[&login[..], &[original]].concat());
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&next.stdout).lines().nth(1),
        want.lines().nth(1).map(|l| l.replace(',', "|")).as_deref()
    );

    // The scheduler stopped: a clear error that names it; serve stays up, and what
    // runs in the server (catalog, meta.*) still works.
    cluster.stop_scheduler();
    let failed = analyst(s.sql, &[&login[..], &[original]].concat());
    let err = String::from_utf8_lossy(&failed.stderr).to_string();
    assert!(!failed.status.success());
    assert!(
        err.contains(&format!(
            "the Ballista scheduler {} cannot be reached",
            cluster.url()
        )),
        "{err}"
    );
    // (A view the dashboard's warm-up never asks for: the warmed ones may answer from
    // the result cache, filled while the cluster was up.)
    let (status, body) = http_get(
        &s,
        "/api/explore?year=2024&side=Revenue&related=include&h=fund",
    );
    assert!(
        status != 200
            && body["error"]
                .as_str()
                .unwrap()
                .contains("cannot be reached"),
        "{status} {body}"
    );
    let meta = analyst(
        s.sql,
        &["-A", "-t", "-c", "select count(*) from meta.loads"],
    );
    assert_eq!(String::from_utf8_lossy(&meta.stdout).trim(), "1");
    assert_eq!(http_get(&s, "/health").0, 200);
    drop(s);

    // Started with engine = "ballista" and no scheduler at all: the command line and
    // the server say so; with fallback = "embedded" the query runs here instead.
    let out = p
        .cmd()
        .envs(env_refs.iter().copied())
        .args(["query", original])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be reached"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env_refs.push(("CITYBOOKS_QUERY_FALLBACK", "embedded"));
    let s = p.serve(&env_refs);
    // The dashboard's warm-up after start runs its queries here too; count from after it.
    s.wait_for_metric(
        "citybooks_http_warms_total ",
        1,
        120,
        "the dashboard was never warmed",
    );
    let fell_back = || s.metric("citybooks_cluster_queries_total{ran=\"fallback\"}");
    let before = fell_back();
    assert!(before >= 1, "the warm-up's queries did not fall back");
    let ok = analyst(s.sql, &[&login[..], &[original]].concat());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(fell_back() - before, 1);
}

#[test]
fn two_servers_on_one_s3_store_see_each_others_loads() {
    let Some(server) = start_s3() else { return };
    // Two projects (two hosts, in effect) with the same [store].
    let (a, b) = (Project::new(), Project::new());
    server.configure(&a);
    server.configure(&b);
    add_sql_user(&b, "analyst", "a long passphrase");
    let key = add_user(&a, "finance", "finance_key", &["-t", "ed25519"]);
    let (sa, sb) = (a.serve(&[]), b.serve(&[]));
    let count = |s: &Served| {
        let out = analyst(
            s.sql,
            &["-A", "-t", "-c", "select count(*) from report.transaction"],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(count(&sb), "0");
    // An SFTP upload through A loads itself; B sees it at its next statement.
    let work = a.tmp.path().join("upload");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(sample_path(), work.join("ledger.csv")).unwrap();
    let out = sftp(sa.sftp, &key, "finance", &work, "put ledger.csv\n", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(60, "B never saw A's load", || count(&sb) == "2186");
    // A load from a third process is seen by both.
    let (header, rows) = sample_records();
    let moved = in_year(&header, &rows, 2024);
    let f = a.file("fy2024.csv", &api_csv(&header, &moved));
    assert_eq!(b.load(&[&f])[0]["status"], "loaded");
    wait_until(30, "B never saw the third load", || count(&sb) == "4372");
    let (_, health) = http_get(&sa, "/health");
    assert_eq!(health["loads"], 2, "{health}");
}

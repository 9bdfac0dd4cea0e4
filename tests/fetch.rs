//! `citybooks fetch` and the scheduled refresh against a Socrata portal on loopback
//! (tests/peers/socrata_server.py, over the real sample), with faults: slow answers,
//! 500s, connections cut mid-page, truncated bodies, a changed header, an answer that is
//! not the ledger, an empty result, a portal that stops half-way (resume), a refused
//! token and no portal at all. Every case ends with the right new warehouse or the
//! previous one intact. Nothing here touches the internet.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Portal {
    child: Child,
    port: u16,
    log: PathBuf,
    faults: PathBuf,
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Portal {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set_faults(&self, text: &str) {
        std::fs::write(&self.faults, text).unwrap();
    }

    /// The requests it answered: (path, params).
    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `$offset`s of the CSV pages requested so far.
    fn page_offsets(&self) -> Vec<u64> {
        self.requests()
            .iter()
            .filter(|r| r["path"].as_str().unwrap().ends_with(".csv"))
            .map(|r| r["params"]["$offset"].as_str().unwrap().parse().unwrap())
            .collect()
    }
}

fn have_python() -> bool {
    have_peer(
        "python3",
        Command::new("python3").arg("--version"),
        "apt-get install python3",
    )
}

/// Starts the test portal over `csv` in `dir`.
fn portal(dir: &Path, csv: &Path, token: Option<&str>) -> Portal {
    let port_file = dir.join("portal.port");
    let _ = std::fs::remove_file(&port_file);
    let log = dir.join("portal.log");
    let faults = dir.join("portal.faults");
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/socrata_server.py"
    ))
    .arg("--csv")
    .arg(csv)
    .arg("--port-file")
    .arg(&port_file)
    .arg("--log")
    .arg(&log)
    .arg("--fault-file")
    .arg(&faults)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let port = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            break text.trim().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "the test portal did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    Portal {
        child,
        port,
        log,
        faults,
    }
}

/// Pages of 500 rows (the sample's 2,186 rows: 5 pages), short waits.
const FAST: &[(&str, &str)] = &[
    ("CITYBOOKS_FETCH_PAGE_ROWS", "500"),
    ("CITYBOOKS_FETCH_TIMEOUT_SECS", "2"),
    ("CITYBOOKS_FETCH_BACKOFF_MS", "20"),
    ("CITYBOOKS_FETCH_ATTEMPTS", "4"),
];

fn fetch(
    p: &Project,
    portal: &Portal,
    extra_env: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    p.cmd()
        .envs(FAST.iter().copied())
        .envs(extra_env.iter().copied())
        .args(["fetch", "--portal", &portal.url(), "--json"])
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn report(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().last().unwrap()).unwrap()
}

/// The warehouse a plain `citybooks load` of the sample gives.
fn loaded_directly() -> std::collections::BTreeMap<String, Vec<Vec<String>>> {
    let p = Project::new();
    p.load(&[&sample_path()]);
    p.fingerprint()
}

fn raw_datasf_files(p: &Project) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let root = p.dir.join("store/raw/datasf");
    for dir in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(f.path());
        }
    }
    out
}

fn staging_is_empty(p: &Project) -> bool {
    files_under(&p.dir.join("store/fetch")).is_empty()
}

#[test]
fn fetch_pages_the_portal_and_loads_what_load_would() {
    if !have_python() {
        return;
    }
    let p = Project::new();
    let portal = portal(p.tmp.path(), &sample_path(), Some("app-token-1"));
    let out = fetch(
        &p,
        &portal,
        &[("CITYBOOKS_FETCH_APP_TOKEN", "app-token-1")],
        &["--fiscal-year", "2025"],
    );
    let r = report(&out);
    assert_eq!(r["fetch"]["rows"], 2186);
    assert_eq!(r["fetch"]["pages"], 5);
    assert_eq!(r["load"]["status"], "loaded");
    assert_eq!(r["load"]["rows_loaded"], 2186);
    assert_eq!(
        p.fingerprint(),
        loaded_directly(),
        "the same warehouse as citybooks load"
    );

    // What the portal saw: one count, then five pages in a stable order, the filter and
    // the app token on every request.
    let requests = portal.requests();
    assert!(requests[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("/resource/bpnb-jwfb.json"));
    assert_eq!(requests[0]["params"]["$select"], "count(*) AS n");
    assert_eq!(portal.page_offsets(), vec![0, 500, 1000, 1500, 2000]);
    for r in &requests {
        assert_eq!(r["token"], "app-token-1");
        assert_eq!(r["params"]["$where"], "fiscal_year = '2025'");
    }
    for r in requests.iter().skip(1) {
        assert_eq!(r["params"]["$order"], ":id");
        assert_eq!(r["params"]["$limit"], "500");
    }
    let files = raw_datasf_files(&p);
    assert_eq!(files.len(), 1, "one published file: {files:?}");
    assert!(files[0].ends_with("bpnb-jwfb.csv"));
    assert!(staging_is_empty(&p));

    // The same content again: a recorded no-op, and its duplicate raw copy removed.
    let again = report(&fetch(
        &p,
        &portal,
        &[("CITYBOOKS_FETCH_APP_TOKEN", "app-token-1")],
        &["--fiscal-year", "2025"],
    ));
    assert_eq!(again["load"]["status"], "unchanged");
    assert_eq!(raw_datasf_files(&p).len(), 1);
    let status = p.ok(&["status"]);
    assert!(status.contains("unchanged"), "{status}");
}

#[test]
fn slow_answers_500s_cut_connections_and_truncated_bodies_are_retried() {
    if !have_python() {
        return;
    }
    let expected = loaded_directly();
    for fault in [
        "slow 1",
        "500 2",
        "cut 2",
        "truncated 1",
        "slow 1\n500 1\ncut 1\ntruncated 1",
    ] {
        let p = Project::new();
        let portal = portal(p.tmp.path(), &sample_path(), None);
        portal.set_faults(fault);
        let r = report(&fetch(&p, &portal, &[], &[]));
        assert_eq!(r["fetch"]["rows"], 2186, "{fault}");
        assert_eq!(p.fingerprint(), expected, "{fault}: the complete warehouse");
        assert!(
            portal.page_offsets().len() > 5,
            "{fault}: some page was asked again"
        );
        assert!(staging_is_empty(&p));
    }
}

/// A project with the sample loaded, and its fingerprint.
fn previous_state() -> (
    Project,
    std::collections::BTreeMap<String, Vec<Vec<String>>>,
) {
    let p = Project::new();
    p.load(&[&sample_path()]);
    let f = p.fingerprint();
    (p, f)
}

#[test]
fn a_changed_header_html_or_an_empty_result_leave_the_previous_warehouse() {
    if !have_python() {
        return;
    }
    for (fault, says) in [
        ("reorder", "columns changed during the fetch"),
        ("html", "not the ledger's CSV"),
        ("empty", "no rows for all fiscal years"),
    ] {
        let (p, before) = previous_state();
        let portal = portal(p.tmp.path(), &sample_path(), None);
        portal.set_faults(fault);
        let out = fetch(&p, &portal, &[], &[]);
        assert!(!out.status.success(), "{fault}");
        assert!(text(&out).contains(says), "{fault}: {}", text(&out));
        assert_eq!(
            p.fingerprint(),
            before,
            "{fault}: the previous warehouse, intact"
        );
        assert!(
            raw_datasf_files(&p).is_empty(),
            "{fault}: nothing published"
        );
        if fault != "html" {
            assert!(staging_is_empty(&p), "{fault}: nothing to resume");
        }
    }
}

#[test]
fn an_interrupted_fetch_resumes_from_its_last_complete_page() {
    if !have_python() {
        return;
    }
    let (p, before) = previous_state();
    let portal = portal(p.tmp.path(), &sample_path(), None);
    portal.set_faults("fail-from 3");
    let out = fetch(&p, &portal, &[], &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("HTTP 503") && t.contains("The portal is under maintenance"),
        "{t}"
    );
    assert!(t.contains("next fetch resumes from page 4"), "{t}");
    assert_eq!(p.fingerprint(), before);
    assert!(
        raw_datasf_files(&p).is_empty(),
        "no partial file is visible"
    );
    assert_eq!(
        files_under(&p.dir.join("store/fetch")).len(),
        4,
        "3 pages and the state"
    );

    portal.set_faults("");
    let asked_before = portal.page_offsets().len();
    let r = report(&fetch(&p, &portal, &[], &[]));
    assert_eq!(r["fetch"]["resumed_pages"], 3);
    assert_eq!(
        portal.page_offsets()[asked_before..].to_vec(),
        vec![1500, 2000],
        "only the missing pages are asked for"
    );
    assert_eq!(
        r["load"]["status"], "unchanged",
        "the same content as the loaded sample"
    );
    assert_eq!(p.fingerprint(), before);
    assert!(staging_is_empty(&p));
}

#[test]
fn refused_tokens_and_unreachable_portals_are_clear_errors() {
    if !have_python() {
        return;
    }
    let (p, before) = previous_state();
    let portal = portal(p.tmp.path(), &sample_path(), Some("right"));
    let out = fetch(&p, &portal, &[("CITYBOOKS_FETCH_APP_TOKEN", "wrong")], &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("HTTP 403") && t.contains("Invalid app_token specified"),
        "{t}"
    );
    assert_eq!(portal.requests().len(), 1, "a refusal is not retried");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = p
        .cmd()
        .envs(FAST.iter().copied())
        .args(["fetch", "--portal", &format!("http://127.0.0.1:{closed}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("cannot reach the portal") && t.contains("gave up after 4 attempts"),
        "{t}"
    );
    assert_eq!(p.fingerprint(), before);
}

#[test]
fn serve_refreshes_the_current_fiscal_year_on_schedule() {
    if !have_python() {
        return;
    }
    // The portal's rows, moved to the fiscal year we are in.
    let year = {
        let out = Command::new("date").arg("+%Y %m").output().unwrap();
        let t = String::from_utf8_lossy(&out.stdout).to_string();
        let (y, m) = t.trim().split_once(' ').unwrap();
        let (y, m): (i32, u32) = (y.parse().unwrap(), m.parse().unwrap());
        if m >= 7 {
            y + 1
        } else {
            y
        }
    };
    let (header, rows) = sample_records();
    let moved = in_year(&header, &rows, year);
    let p = Project::new();
    let csv = p.tmp.path().join("current.csv");
    std::fs::write(&csv, api_csv(&header, &moved)).unwrap();
    let portal = portal(p.tmp.path(), &csv, None);
    portal.set_faults("fail-from 0");
    let url = portal.url();
    let mut env: Vec<(&str, &str)> = FAST.to_vec();
    env.extend([
        ("CITYBOOKS_FETCH_PORTAL", url.as_str()),
        ("CITYBOOKS_FETCH_SCHEDULE", "*/2 * * * * *"),
        ("CITYBOOKS_FETCH_ATTEMPTS", "1"),
        ("CITYBOOKS_FETCH_BACKOFF_MS", "300"),
        ("CITYBOOKS_FETCH_RETRY_MAX_SECS", "1"),
    ]);
    let s = p.serve(&env);
    assert!(s.banner.contains("scheduled refresh"), "{}", s.banner);
    let status_file = p.dir.join("fetch-status.json");
    let wait_for = |what: &str, ok: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(text) = std::fs::read_to_string(&status_file) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    if ok(&v) {
                        return v;
                    }
                }
            }
            assert!(Instant::now() < deadline, "never saw {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let failed = wait_for("a failed refresh", &|v| v["last_error"].is_string());
    assert!(
        failed["last_error"].as_str().unwrap().contains("HTTP 503"),
        "{failed}"
    );
    let status_with_env = || {
        let out = p
            .cmd()
            .envs(env.iter().copied())
            .arg("status")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let status = status_with_env();
    assert!(
        status.contains("last failure") && status.contains("next:"),
        "{status}"
    );
    assert!(
        status.contains("no loads yet"),
        "the previous (empty) warehouse stays: {status}"
    );

    portal.set_faults("");
    let done = wait_for("a refresh that loaded", &|v| {
        v["last_result"]
            .as_str()
            .is_some_and(|r| r.contains("loaded"))
            && v["last_error"].is_null()
    });
    let result = done["last_result"].as_str().unwrap();
    assert!(result.contains(&format!("fiscal year {year}")), "{result}");
    // The refresh's status says what the load changed.
    let changed = format!("; what changed: fiscal year {year} new: ");
    assert!(result.contains(&changed), "{result}");
    assert_eq!(p.value("select count(*) from report.transaction"), "2186");
    let status = status_with_env();
    assert!(
        status.contains("refresh */2 * * * * *") && status.contains("last: 20"),
        "{status}"
    );
    assert!(portal
        .requests()
        .iter()
        .all(|r| r["params"]["$where"] == format!("fiscal_year = '{year}'")));

    // The portal now publishes one row of the year (a truncated publication): the
    // refresh is held by the shrink guard, says so as its error with the way to settle
    // it, and the year keeps its rows.
    portal.set_faults("only 1");
    let held = wait_for("a held refresh", &|v| {
        v["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("would go from"))
    });
    let error = held["last_error"].as_str().unwrap();
    assert!(
        error.contains(&format!("fiscal year {year} would go from 2,186 rows to 1"))
            && error.contains("citybooks release"),
        "{held}"
    );
    assert_eq!(p.value("select count(*) from report.transaction"), "2186");
}

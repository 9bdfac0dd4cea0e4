//! Crash safety: a `citybooks load` killed at any point leaves the previous state
//! queryable (or the new one, once the facts are committed — never a mix), and the
//! next load of the same file ends in exactly the state of a clean load.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// The points `citybooks-warehouse` can abort at (`CITYBOOKS_FAILPOINT`), in load
/// order, and whether the new facts are visible after a crash there.
const POINTS: &[(&str, bool)] = &[
    ("after-raw", false),
    ("after-scan", false),
    ("after-dimensions", false),
    ("mid-facts", false),
    ("after-facts", true),
    ("after-quarantine", true),
    ("after-loads", true),
];

/// File A: the sample. File B: the sample moved to 2024 plus a new program and one bad row,
/// and the sample again as 2025 with one amount restated (so B replaces 2025 — without
/// shrinking it, which the shrink guard would hold — and adds 2024).
fn files(p: &Project) -> (std::path::PathBuf, std::path::PathBuf) {
    let (header, rows) = sample_records();
    let a = p.file("a.csv", &api_csv(&header, &rows));
    let mut b_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r[col(&header, "fiscal_year")] = "2024".into();
            r
        })
        .collect();
    b_rows[3][col(&header, "program")] = "Crash Recovery Program".into();
    b_rows[4][col(&header, "amount")] = "not money".into();
    let restated = b_rows.len();
    b_rows.extend(rows.iter().cloned());
    b_rows[restated][col(&header, "amount")] = "1.23".into();
    let b = p.file("b.csv", &api_csv(&header, &b_rows));
    (a, b)
}

#[test]
fn a_load_aborted_at_every_fail_point_leaves_a_consistent_warehouse_and_recovers() {
    // The reference states, from clean loads.
    let reference = Project::new();
    let (a, b) = files(&reference);
    reference.load(&[&a]);
    let state_a = reference.fingerprint();
    reference.load(&[&b]);
    let state_b = reference.fingerprint();
    assert_ne!(state_a, state_b);
    let quarantined_b = reference.value("select count(*) from meta.quarantine");
    assert_eq!(quarantined_b, "1");

    for (point, facts_visible) in POINTS {
        let p = Project::new();
        let (a, b) = files(&p);
        p.load(&[&a]);
        let out = p
            .cmd()
            .env("CITYBOOKS_FAILPOINT", point)
            .args(["load", b.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{point}: the load should have aborted"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("fail point {point}")),
            "{point}"
        );
        let after_crash = p.fingerprint();
        let want = if *facts_visible { &state_b } else { &state_a };
        assert_eq!(&after_crash, want, "{point}: state after the crash");
        // The next load is correct.
        let r = &p.load(&[&b])[0];
        let status = r["status"].as_str().unwrap();
        if *point == "after-loads" {
            assert_eq!(status, "unchanged", "{point}");
        } else {
            assert_eq!(status, "loaded", "{point}");
        }
        assert_eq!(
            p.fingerprint(),
            state_b,
            "{point}: state after the next load"
        );
        assert_eq!(
            p.value("select count(*) from meta.quarantine"),
            quarantined_b,
            "{point}: quarantine once"
        );
        assert_eq!(
            p.value("select count(*) from report.program where program = 'Crash Recovery Program'"),
            "1",
            "{point}: the new member exists once"
        );
    }
}

/// The number of the newest writer-lease object of `p`'s store (0 before any): a load
/// takes the lease after its scan, so a higher number says the load is past its scan
/// and into its decisions and commits.
fn newest_lease(p: &Project) -> u64 {
    std::fs::read_dir(p.dir.join("store/leases/writer"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.path().file_stem()?.to_str()?.parse().ok())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Waits (polling, with a deadline) until `p`'s writer lease is newer than `than`, or
/// `child` ended; returns whether the lease moved.
fn wait_for_lease(p: &Project, than: u64, child: &mut std::process::Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if newest_lease(p) > than {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "the load never took the lease");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_load_killed_at_random_moments_never_leaves_half_a_load() {
    let p = Project::new();
    let (header, rows) = sample_records();
    let a = p.file("a.csv", &api_csv(&header, &rows));
    p.load(&[&a]);
    let state_a = p.fingerprint();
    // A bigger file (25 fiscal years of the sample) so kills land mid-load.
    let mut big = Vec::new();
    for year in 2000..2025 {
        for r in &rows {
            let mut r = r.clone();
            r[col(&header, "fiscal_year")] = year.to_string();
            big.push(r);
        }
    }
    let b = p.file("big.csv", &api_csv(&header, &big));
    let load_b = |p: &Project| {
        p.cmd()
            .args(["load", "--no-progress", b.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long a clean load's scan and its commit phase take here, measured on a
    // twin project: start to the writer lease, lease to the end.
    let twin = Project::new();
    twin.load(&[&a]);
    let (start, lease) = (Instant::now(), newest_lease(&twin));
    let mut child = load_b(&twin);
    assert!(wait_for_lease(&twin, lease, &mut child));
    let scan = start.elapsed();
    let leased = Instant::now();
    assert!(child.wait().unwrap().success());
    let commits = leased.elapsed();
    let state_b = twin.fingerprint();

    // Two kills during the scan, then three after the load took the lease (the kill
    // waits for that marker, then a part of the measured commit phase), in load order.
    let moments: Vec<(bool, Duration)> = [(false, scan / 3), (false, scan * 2 / 3)]
        .into_iter()
        .chain((1..=3u32).map(|j| (true, commits * j / 5)))
        .collect();
    let (mut mid_load, mut mid_commit, mut outcomes) = (0, 0, Vec::new());
    for (after_lease, delay) in moments {
        let lease = newest_lease(&p);
        let mut child = load_b(&p);
        if after_lease && !wait_for_lease(&p, lease, &mut child) {
            outcomes.push((after_lease, delay, "ended before its lease was seen"));
            break;
        }
        std::thread::sleep(delay);
        // Killed while still running: the kill landed mid-load.
        let running = child.try_wait().unwrap().is_none();
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let state = p.fingerprint();
        assert!(
            state == state_a || state == state_b,
            "kill {delay:?} after {} ({status}): a half state",
            if after_lease {
                "the lease"
            } else {
                "the start"
            }
        );
        if running && state == state_a {
            mid_load += 1;
            mid_commit += after_lease as u32;
        }
        outcomes.push((
            after_lease,
            delay,
            if state == state_b {
                "loaded"
            } else {
                "not loaded"
            },
        ));
        if state == state_b {
            break;
        }
    }
    // The kills really interrupted loads, commit phases among them.
    assert!(
        mid_load >= 3 && mid_commit >= 1,
        "{mid_load} kills landed mid-load, {mid_commit} after the lease: {outcomes:?}"
    );
    p.load(&[&b]);
    assert_eq!(p.fingerprint(), state_b, "after kills at {outcomes:?}");
}

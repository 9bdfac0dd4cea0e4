//! The query servers of `citybooks serve` against real clients: `psql` (the original
//! users' query verbatim, its describe commands with keys and comments), Python's
//! psycopg and pandas, SQLAlchemy 2 with both PostgreSQL drivers, and plain HTTP.
//! Read-only refusals, passwords, TLS, timeouts, cancel, and a load becoming visible
//! without a restart.
//!
//! One test binary, one module per front door: [`pg`] (the PostgreSQL wire with psql
//! and every driver), [`http`] (the HTTP API), [`dashboard`] (the explorer, the
//! browser tests and the demo). The helpers they share are here.

#[path = "../common/mod.rs"]
mod common;
mod dashboard;
mod http;
mod pg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const USER: &str = "analyst";

const PASSWORD: &str = "a long passphrase";

/// The original users' query, verbatim from DOMAIN.md.
const ORIGINAL: &str = "select f.revenue_or_spending, avg(t.amount) as average_amount
from report.transaction as t
join report.finance as f on t.finance_id = f.finance_id
group by f.revenue_or_spending
order by f.revenue_or_spending;";

/// A project with the sample loaded and one SQL user, served with `env`.
fn served(env: &[(&str, &str)]) -> (Project, Served) {
    served_sample(USER, PASSWORD, env)
}

fn have_psql() -> bool {
    have_peer(
        "psql",
        Command::new("psql").arg("--version"),
        "apt-get install postgresql-client",
    )
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Sum (cents) and count of the sample's rows per revenue_or_spending.
fn sample_by_side() -> BTreeMap<String, (i128, i128)> {
    let (header, rows) = sample_records();
    let (side, amount) = (col(&header, "revenue_or_spending"), col(&header, "amount"));
    let mut by = BTreeMap::new();
    for r in &rows {
        let e = by.entry(r[side].clone()).or_insert((0i128, 0i128));
        e.0 += cents(&r[amount]);
        e.1 += 1;
    }
    by
}

/// Sum (cents) and count of all the sample's rows, from [`sample_by_side`].
fn totals(by: &BTreeMap<String, (i128, i128)>) -> (i128, i128) {
    by.values()
        .fold((0, 0), |(s, n), (vs, vn)| (s + vs, n + vn))
}

/// Runs the Python client `tests/peers/SCRIPT PORT USER PASSWORD` and returns the JSON
/// it printed.
fn python_peer(script: &str, port: u16) -> serde_json::Value {
    python_peer_with(Path::new("python3"), script, port)
}

/// [`python_peer`] with the given interpreter (a virtualenv's).
fn python_peer_with(python: &Path, script: &str, port: u16) -> serde_json::Value {
    let out = Command::new(python)
        .arg(format!(
            "{}/tests/peers/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args([&port.to_string(), USER, PASSWORD])
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

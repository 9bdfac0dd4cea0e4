//! Crash injection for the crash tests: `CITYBOOKS_FAILPOINT=<name>` makes the process
//! abort (no unwinding, no cleanup, as a `kill -9` would) when it reaches that point of a
//! load. Without the variable a fail point costs one environment lookup per load step.

/// The named points of a load, in the order a load reaches them.
pub const POINTS: &[&str] = &[
    "after-raw",
    "after-scan",
    "after-dimensions",
    "mid-facts",
    "after-facts",
    "after-quarantine",
    "after-loads",
];

/// Aborts the process if `CITYBOOKS_FAILPOINT` names `point`.
pub fn hit(point: &str) {
    if std::env::var("CITYBOOKS_FAILPOINT").is_ok_and(|p| p == point) {
        eprintln!("citybooks: fail point {point} reached, aborting");
        std::process::abort();
    }
}

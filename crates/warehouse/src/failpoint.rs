//! Crash injection for the crash tests: `CITYBOOKS_FAILPOINT=<name>` makes the process
//! abort (no unwinding, no cleanup, as a `kill -9` would) when it reaches that point of a
//! load; `CITYBOOKS_FAILPOINT=<name>:pause` makes it stop there (holding the writer
//! lease) until it is killed, so a test can run another process against it. Without
//! the variable a fail point costs one environment lookup per load step.

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
    let Ok(wanted) = std::env::var("CITYBOOKS_FAILPOINT") else {
        return;
    };
    if wanted == point {
        eprintln!("citybooks: fail point {point} reached, aborting");
        std::process::abort();
    }
    if wanted.strip_suffix(":pause") == Some(point) {
        eprintln!("citybooks: fail point {point} reached, pausing until killed");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

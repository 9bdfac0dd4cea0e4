//! The scheduled refresh of `citybooks serve`: a cron expression (local time), a loop
//! that refreshes at each occurrence and retries a failed refresh with backoff until
//! it succeeds or the next occurrence comes, and `fetch-status.json` in the project
//! folder, which `citybooks status` shows.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Local};
use croner::Cron;
use serde::{Deserialize, Serialize};

/// The file of a project that records the refreshes.
pub const STATUS_FILE: &str = "fetch-status.json";

/// A parsed `[fetch] schedule`.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl Schedule {
    /// Parses a cron expression ("0 6 * * MON", "@weekly", or with seconds first).
    pub fn parse(text: &str) -> Result<Schedule, String> {
        // Five fields (minute ... weekday) as cron has them, or six with seconds first.
        let cron = Cron::new(text)
            .with_seconds_optional()
            .parse()
            .map_err(|e| format!("[fetch] schedule {text:?} is not a cron expression ({e}); e.g. \"0 6 * * MON\" for Mondays at 06:00"))?;
        Ok(Schedule {
            text: text.to_string(),
            cron,
        })
    }

    /// The next occurrence after `now`.
    pub fn next_after(&self, now: DateTime<Local>) -> Option<DateTime<Local>> {
        self.cron.find_next_occurrence(&now, false).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// What `fetch-status.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RefreshStatus {
    pub schedule: String,
    pub next_refresh: Option<String>,
    pub last_attempt: Option<String>,
    /// The last refresh that succeeded, and what it did.
    pub last_success: Option<String>,
    pub last_result: Option<String>,
    /// The last failure (cleared by a success).
    pub last_error: Option<String>,
    pub failures_in_a_row: u32,
}

impl RefreshStatus {
    /// The status recorded in `project_dir`, if any.
    pub fn read(project_dir: &Path) -> Option<RefreshStatus> {
        let text = std::fs::read(project_dir.join(STATUS_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn write(&self, path: &Path) {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("status serializes");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }
}

/// The wait before retry number `failures` (1, 2, ...): a minute, doubled each time,
/// at most `max`.
pub fn backoff(failures: u32, first: Duration, max: Duration) -> Duration {
    first
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(max)
}

/// Runs `refresh` at every occurrence of `schedule` until `shutdown` completes. A
/// failed refresh is retried after [`backoff`] (from `first_retry`, at most
/// `retry_max`) until it succeeds or the next occurrence is due. `refresh` returns a
/// sentence of what it did, or of why it failed.
pub async fn run<F, Fut>(
    schedule: Schedule,
    project_dir: PathBuf,
    first_retry: Duration,
    retry_max: Duration,
    mut refresh: F,
    shutdown: impl Future<Output = ()>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let path = project_dir.join(STATUS_FILE);
    let mut status = RefreshStatus::read(&project_dir).unwrap_or_default();
    status.schedule = schedule.as_str().to_string();
    tokio::pin!(shutdown);
    loop {
        let Some(next) = schedule.next_after(Local::now()) else {
            tracing::warn!(
                "[fetch] schedule {:?} has no next occurrence",
                schedule.as_str()
            );
            return;
        };
        status.next_refresh = Some(next.to_rfc3339());
        status.write(&path);
        let wait = (next - Local::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => return,
        }
        // Refresh, retrying until it works or the next occurrence is due.
        let following = schedule.next_after(Local::now());
        loop {
            status.last_attempt = Some(Local::now().to_rfc3339());
            status.write(&path);
            match refresh().await {
                Ok(done) => {
                    tracing::info!("scheduled refresh: {done}");
                    status.last_success = status.last_attempt.clone();
                    status.last_result = Some(done);
                    status.last_error = None;
                    status.failures_in_a_row = 0;
                    break;
                }
                Err(e) => {
                    status.failures_in_a_row += 1;
                    let wait = backoff(status.failures_in_a_row, first_retry, retry_max);
                    tracing::warn!(
                        "scheduled refresh failed ({} in a row): {e}; retrying in {wait:?}",
                        status.failures_in_a_row
                    );
                    status.last_error = Some(e);
                    let retry_at =
                        Local::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    if following.is_some_and(|f| retry_at >= f) {
                        break; // the next occurrence takes over
                    }
                    status.next_refresh = Some(retry_at.to_rfc3339());
                    status.write(&path);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = &mut shutdown => { status.write(&path); return; }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike};

    #[test]
    fn schedules_parse_and_say_when() {
        let s = Schedule::parse("0 6 * * MON").unwrap();
        let friday = Local.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let next = s.next_after(friday).unwrap();
        assert_eq!(
            (next.weekday(), next.hour(), next.minute()),
            (chrono::Weekday::Mon, 6, 0)
        );
        assert_eq!(next.day(), 30);
        assert!(Schedule::parse("every monday")
            .unwrap_err()
            .contains("0 6 * * MON"));
        assert!(Schedule::parse("@weekly").is_ok());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let m = Duration::from_secs(60);
        let cap = Duration::from_secs(3600);
        assert_eq!(backoff(1, m, cap), m);
        assert_eq!(backoff(3, m, cap), 4 * m);
        assert_eq!(backoff(30, m, cap), cap);
    }
}

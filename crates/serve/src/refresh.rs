//! The scheduled refresh of `[fetch] schedule`: fetch the current fiscal year, load it,
//! publish a committed load. The previous warehouse stays live whatever happens (a load
//! commits atomically or not at all).

use std::time::Duration;

use anyhow::Result;
use citybooks_fetch::{Schedule, Years};
use citybooks_store::Project;
use citybooks_warehouse::LoadStatus;

use crate::jobs::{current_fiscal_year, fetch_and_load, publish_after_load};
use crate::{Shared, Task};

/// Starts the refresh if a schedule is set; the task ends at `shutdown`.
pub fn start(shared: &Shared) -> Result<Option<Task>> {
    let cfg = &shared.project.config.fetch;
    let Some(schedule) = &cfg.schedule else {
        return Ok(None);
    };
    let schedule = Schedule::parse(schedule).map_err(anyhow::Error::msg)?;
    let next = schedule
        .next_after(chrono::Local::now())
        .map_or_else(|| "never".to_string(), |t| t.to_rfc3339());
    println!(
        "scheduled refresh of the current fiscal year from {}: {} (next {next})",
        cfg.portal,
        schedule.as_str()
    );
    let first_retry = Duration::from_millis(cfg.backoff_ms);
    let retry_max = Duration::from_secs(cfg.retry_max_secs);
    let project = shared.project.clone();
    let shutdown = shared.shutdown.clone().cancelled_owned();
    Ok(Some(tokio::spawn(async move {
        citybooks_fetch::schedule::run(
            schedule,
            project.dir.clone(),
            first_retry,
            retry_max,
            || refresh(&project),
            shutdown,
        )
        .await;
        Ok(())
    })))
}

/// One refresh: a sentence of what it did, or of why it failed (or was held).
async fn refresh(project: &Project) -> Result<String, String> {
    let year = current_fiscal_year();
    let (fetched, report) = fetch_and_load(project, Years::One(year), None, |_| {}, false)
        .await
        .map_err(|e| format!("fiscal year {year}: {e:#}"))?;
    if report.status == LoadStatus::Loaded {
        match crate::warehouse(project) {
            Ok(wh) => publish_after_load(project, &wh).await,
            Err(e) => println!("publish: {e:#}"),
        }
    }
    let mut summary = format!(
        "fiscal year {year}: {} rows fetched, load {} {:?} ({} loaded, {} quarantined)",
        fetched.rows, report.load_id, report.status, report.rows_loaded, report.rows_quarantined
    )
    .to_lowercase();
    if let Some(changes) = &report.changes {
        summary = format!("{summary}; what changed: {changes}");
    }
    match &report.hold {
        Some(hold) => Err(format!("{summary}: {hold}")),
        None => Ok(summary),
    }
}

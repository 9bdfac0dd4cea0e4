//! What a server and a command both run: fetch then load (`citybooks fetch`, the
//! scheduled refresh), publish after a load (`citybooks serve` after each load).

use anyhow::{Context, Result};
use chrono::Datelike;
use citybooks_fetch::download::Options;
use citybooks_fetch::{FetchOutcome, Progress, Query, Years};
use citybooks_publish::Options as PublishOptions;
use citybooks_store::Project;
use citybooks_warehouse::{LoadReport, Warehouse};

/// The fiscal year today is in (July to June).
pub fn current_fiscal_year() -> i32 {
    let today = chrono::Local::now();
    citybooks_model::fiscal::fiscal_year_of(today.year(), today.month())
}

/// Fetches `years` from the configured portal (or `portal`) into the store and loads
/// the file. `progress` is told after the count and every page; with `show_load`
/// the load draws its own progress bar on the terminal.
pub async fn fetch_and_load(
    project: &Project,
    years: Years,
    portal: Option<&str>,
    progress: impl FnMut(&Progress),
    show_load: bool,
) -> Result<(FetchOutcome, LoadReport)> {
    let cfg = &project.config.fetch;
    let query = Query::from_config(cfg, years, portal)?;
    let portal = portal.unwrap_or(&cfg.portal);
    let wh = crate::warehouse(project)?;
    let outcome = citybooks_fetch::fetch(wh.store(), &query, Options::from_config(cfg), progress)
        .await
        .with_context(|| format!("fetching {} from {portal}", years.describe()))?;
    let report = wh
        .load_object(&outcome.file, true, show_load)
        .await
        .with_context(|| format!("loading {}", outcome.file))?;
    Ok((outcome, report))
}

/// After a load committed: publishes to `[publish] target` if one is set, and says how
/// it went (a failure leaves the target as it was; the next load's publish catches up).
pub async fn publish_after_load(project: &Project, wh: &Warehouse) {
    let cfg = &project.config.publish;
    let (target, options) = match PublishOptions::from_config(cfg, None, None, None, false) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            println!("publish: {e}");
            return;
        }
    };
    match citybooks_publish::publish_and_record(wh, &target, &options).await {
        Ok(r) => println!("{}", r.describe(&options.schema)),
        Err(e) => println!("publish FAILED: {e}"),
    }
}

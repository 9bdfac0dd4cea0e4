//! `citybooks fetch` and the scheduled refresh of `citybooks serve`: the portal client
//! (crates/fetch) downloads into the store, the warehouse's loader loads the file.

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Datelike;
use citybooks_fetch::download::Options;
use citybooks_fetch::{FetchOutcome, Query, Years};
use citybooks_store::Project;
use citybooks_warehouse::LoadReport;

use crate::warehouse;

/// The fiscal year today is in (July to June).
pub fn current_fiscal_year() -> i32 {
    let today = chrono::Local::now();
    citybooks_model::fiscal::fiscal_year_of(today.year(), today.month())
}

/// Fetches `years` from the configured portal (or `portal`) and loads the file.
pub async fn fetch_and_load(
    project: &Project,
    years: Years,
    portal: Option<&str>,
    show_progress: bool,
) -> Result<(FetchOutcome, LoadReport)> {
    let cfg = &project.config.fetch;
    let portal = portal.unwrap_or(&cfg.portal);
    let query = Query {
        portal: url::Url::parse(portal).with_context(|| {
            format!("the portal {portal:?} is not a URL (e.g. https://data.sfgov.org)")
        })?,
        dataset: cfg.dataset.clone(),
        years,
        page_rows: cfg.page_rows.clamp(1, 50_000),
    };
    let options = Options {
        attempts: cfg.attempts.max(1),
        backoff: Duration::from_millis(cfg.backoff_ms),
        timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
        app_token: cfg.app_token.clone(),
    };
    let wh = warehouse(project)?;
    let bar = show_progress.then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} fetching {msg} [{bar:30}] {pos}/{len} rows, {binary_bytes} ({elapsed})",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        bar.set_message(query.years.describe());
        bar
    });
    let outcome = citybooks_fetch::fetch(wh.store(), &query, options, |p| {
        if let Some(bar) = &bar {
            bar.set_length(p.total_rows);
            bar.set_position(p.rows);
            bar.set_message(format!(
                "{} (page {}/{}, {} bytes)",
                query.years.describe(),
                p.pages_done,
                p.pages,
                p.bytes
            ));
        }
    })
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let outcome =
        outcome.with_context(|| format!("fetching {} from {portal}", query.years.describe()))?;
    let report = wh
        .load_object(&outcome.file, true, show_progress)
        .await
        .with_context(|| format!("loading {}", outcome.file))?;
    Ok((outcome, report))
}

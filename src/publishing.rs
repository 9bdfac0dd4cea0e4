//! `citybooks publish`, `citybooks load --publish` and the publish `citybooks serve`
//! runs after every committed load: the project's `[publish]` settings handed to
//! citybooks-publish, and its report printed.

use anyhow::{bail, Result};
use citybooks_publish::{Options, PublishError, Report, Target};
use citybooks_store::Project;
use citybooks_warehouse::Warehouse;

/// Where and how to publish: the command line's choices over `[publish]`. None when
/// neither names a target.
pub fn settings(
    project: &Project,
    target: Option<&str>,
    schema: Option<String>,
    iam_role: Option<String>,
    full: bool,
) -> Result<Option<(Target, Options)>> {
    let cfg = &project.config.publish;
    let Some(text) = target.or(cfg.target.as_deref()) else {
        return Ok(None);
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let target = Target::parse(text)?;
    let options = Options {
        schema: schema.unwrap_or_else(|| cfg.schema.clone()),
        full,
        iam_role: iam_role.or_else(|| cfg.iam_role.clone()),
        password: cfg.password.clone(),
    };
    if options.schema.trim().is_empty() {
        bail!("[publish] schema is empty: name the schema of the target (default report)");
    }
    Ok(Some((target, options)))
}

/// Publishes and records the outcome in `meta.publishes`.
pub async fn publish(
    wh: &Warehouse,
    target: &Target,
    options: &Options,
) -> std::result::Result<Report, PublishError> {
    citybooks_publish::publish_and_record(wh, target, options).await
}

/// The report as a person reads it.
pub fn print(r: &Report, schema: &str) {
    if r.up_to_date {
        println!(
            "publish to {} (schema {schema}): up to date, it already holds load {}",
            r.target, r.load_id
        );
        return;
    }
    let years: Vec<String> = r.years.iter().map(|y| y.to_string()).collect();
    println!(
        "published load {} to {} (schema {schema}{}): fiscal years {}, {} rows, {} dimension members added or changed, in {:.2} s",
        r.load_id,
        r.target,
        match (r.created, r.previous) {
            (true, _) => ", tables created".to_string(),
            (false, Some(p)) => format!(", it held load {p}"),
            (false, None) => String::new(),
        },
        if years.is_empty() { "none".into() } else { years.join(", ") },
        r.rows,
        r.members,
        r.seconds
    );
}

/// After a load `serve` committed: publishes to `[publish] target` if one is set, and
/// says how it went (a failure leaves the target as it was; the next load's publish
/// catches up).
pub async fn after_load(project: &Project, wh: &Warehouse) {
    let (target, options) = match settings(project, None, None, None, false) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            println!("publish: {e:#}");
            return;
        }
    };
    match publish(wh, &target, &options).await {
        Ok(r) => print(&r, &options.schema),
        Err(e) => println!("publish FAILED: {e}"),
    }
}

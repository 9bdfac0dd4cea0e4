//! `GET /feed.xml`: an Atom feed of the loads and what each changed, so a newsroom or an
//! analyst can subscribe to the ledger's weekly refresh.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use citybooks_warehouse::{LoadRecord, LoadStatus};

use super::{ApiError, App};

/// Loads the feed lists, newest first.
const ENTRIES: usize = 30;

pub(super) async fn feed(State(app): State<App>) -> Result<Response, ApiError> {
    let wh = app.live.warehouse();
    let loads = wh.loads().await?;
    let mut entries = String::new();
    for load in loads.iter().rev().take(ENTRIES) {
        let text = match load.status {
            LoadStatus::Loaded => match wh.change_summary_of(&loads, load.load_id).await {
                Ok(summary) => summary,
                Err(e) => format!("(what it changed could not be summarised: {e})"),
            },
            _ => load
                .error
                .clone()
                .or_else(|| load.hold.clone())
                .unwrap_or_else(|| "nothing was replaced".into()),
        };
        entries.push_str(&entry(load, &text));
    }
    let updated = loads.last().map_or_else(|| time(0), |l| time(l.finished));
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>citybooks: loads of the ledger</title>
  <subtitle>Each load of the Spending and Revenue ledger and what it changed</subtitle>
  <id>urn:citybooks:loads</id>
  <link rel="self" href="/feed.xml"/>
  <updated>{updated}</updated>
  <generator>citybooks {version}</generator>
{entries}</feed>
"#,
        version = env!("CARGO_PKG_VERSION"),
    );
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/atom+xml; charset=utf-8"),
    );
    Ok(response)
}

/// One load as an Atom entry: its status and file as the title, `text` as the summary.
fn entry(load: &LoadRecord, text: &str) -> String {
    let title = format!(
        "Load {}: {} {}",
        load.load_id,
        load.status.as_str(),
        load.source_file
    );
    format!(
        "  <entry>
    <title>{title}</title>
    <id>urn:citybooks:load:{id}:{hash}</id>
    <updated>{updated}</updated>
    <link href=\"/?view=explore\"/>
    <summary>{text}</summary>
  </entry>
",
        title = escape(&title),
        id = load.load_id,
        hash = escape(&load.content_hash),
        updated = time(load.finished),
        text = escape(text),
    )
}

/// Microseconds since the epoch as RFC 3339.
fn time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

//! Where a number comes from: `GET /api/rows` (the fact rows behind a number of the
//! dashboard, [`crate::rows`]), `GET /api/source-line` (a row's original line in its
//! raw file, [`citybooks_warehouse::lineage`]) and `GET /api/changes` (what changed
//! between two loads, [`citybooks_warehouse::changes`]).

use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use citybooks_model::format_cents;
use citybooks_query::format::result_json;
use citybooks_query::{OutputFormat, QueryResult};
use serde_json::json;

use super::dashboard::{cents, ints, pairs};
use super::sql::Lane;
use super::{ApiError, App};
use crate::rows::{Filter, Rows, RowsError};

impl From<RowsError> for ApiError {
    fn from(e: RowsError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
    }
}

/// `GET /api/rows?<the number's filter>&offset=&limit=&sort=[&format=csv]`: a page of
/// the rows (`rows`), how many there are in all (`total_rows`) and their sum
/// (`total_amount`, exact); with `format=csv`, every row as a CSV download.
pub(super) async fn rows(
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = pairs(&query);
    // Like the explorer: without a year, the newest (a chart's rows are of every year).
    let default_year = match pairs.iter().any(|(k, _)| k == "year" || k == "chart") {
        true => None,
        false => app.fiscal_years().await?.first().copied(),
    };
    let request = Rows::from_pairs(&pairs, default_year)?;
    if pairs.iter().any(|(k, v)| k == "format" && v == "csv") {
        if request.as_of_load.is_none() {
            return app
                .download(&request.all_sql(), None, None, OutputFormat::Csv)
                .await;
        }
        let all = app
            .rows_query(&request.all_sql(), request.as_of_load)
            .await?;
        let mut csv = Vec::new();
        citybooks_query::write_batches(&all, OutputFormat::Csv, &mut csv)?;
        let headers = [
            (header::CONTENT_TYPE, OutputFormat::Csv.content_type()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"citybooks-rows.csv\"",
            ),
        ];
        return Ok((headers, csv).into_response());
    }
    let started = Instant::now();
    let totals = app
        .rows_query(&request.totals_sql(), request.as_of_load)
        .await?;
    let page = app.rows_query(&request.sql(), request.as_of_load).await?;
    let (mut total_rows, mut total_amount) = (0i64, 0i128);
    if let Some(batch) = totals.batches.iter().find(|b| b.num_rows() > 0) {
        total_rows = ints(batch.column(0))?[0];
        if batch.column(1).is_valid(0) {
            total_amount = cents(batch.column(1), 0)?;
        }
    }
    let mut answer = result_json(&page, false, started.elapsed());
    let filter = match &request.filter {
        Filter::View(v) => json!({"h": v.hierarchy.hierarchy.id, "year": v.year,
            "side": v.side.as_str(), "path": v.path,
            "related": if v.include_related { "include" } else { "exclude" }}),
        Filter::Chart { id, key } => json!({"chart": id, "key": key}),
    };
    answer["filter"] = filter;
    answer["offset"] = json!(request.offset);
    answer["limit"] = json!(request.limit);
    answer["sort"] = json!(format!(
        "{}{}",
        if request.descending { "-" } else { "" },
        request.sort
    ));
    answer["total_rows"] = json!(total_rows);
    answer["total_amount"] = json!(format_cents(total_amount));
    answer["sql"] = json!(request.sql());
    Ok(Json(answer).into_response())
}

impl App {
    /// Runs the SQL of a rows request: on the live warehouse like every dashboard query,
    /// or on the warehouse as it was after load `as_of` (a session of its own, within
    /// the same timeout).
    async fn rows_query(&self, sql: &str, as_of: Option<i64>) -> Result<QueryResult, ApiError> {
        let Some(load) = as_of else {
            return Ok(self.execute(sql, None, None, Lane::Dashboard).await?.0);
        };
        let run =
            citybooks_query::query(self.live.engine(), self.live.warehouse(), sql, Some(load));
        match tokio::time::timeout(self.options.timeout, run).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("the rows as of load {load} took longer than [http] timeout_secs"),
            )),
        }
    }
}

/// `GET /api/source-line?load=N&line=L`: line L of the raw file load N read, as it
/// stands in the store (read by a byte range through the file's line index), with the
/// file's header.
pub(super) async fn source_line(
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let pairs = pairs(&query);
    let number = |key: &str| -> Result<i64, ApiError> {
        let value = pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("give {key}=N (GET /api/source-line?load=LOAD_ID&line=LINE)"),
                )
            })?;
        value.parse().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{key}={value:?}: not a number"),
            )
        })
    };
    let (load, line) = (number("load")?, number("line")?);
    let line = u64::try_from(line).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "line: 1 is the header, rows follow",
        )
    })?;
    let found = app.live.warehouse().source_line(load, line).await?;
    Ok(Json(serde_json::to_value(found).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    })?))
}

/// `GET /api/changes?from=A&to=B&by=organization&top=20`: what changed from load A to
/// load B (default: the latest load that loaded data and the one before), by the
/// members of hierarchy `by`, with the summary paragraph.
pub(super) async fn changes(
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut from = None;
    let mut to = None;
    let mut by = &citybooks_model::ledger().layouts[0];
    let mut top = citybooks_warehouse::changes::TOP;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    for (k, v) in pairs(&query) {
        let number = || {
            v.parse::<i64>()
                .map_err(|_| bad(format!("{k}={v:?}: not a number")))
        };
        match k.as_str() {
            "from" => from = Some(number()?),
            "to" => to = Some(number()?),
            "top" => top = number()?.clamp(1, 1000) as usize,
            "by" | "h" => {
                by = citybooks_model::ledger()
                    .hierarchy(&v)
                    .ok_or_else(|| bad(format!("by={v:?}: use {}", hierarchy_ids())))?
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter {other:?}: use from, to, by, top"
                )))
            }
        }
    }
    let changes = app.live.warehouse().changes(from, to, by, top).await?;
    let summary = changes.summary();
    let mut answer = serde_json::to_value(&changes)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    answer["summary"] = json!(summary);
    Ok(Json(answer))
}

fn hierarchy_ids() -> String {
    let ids: Vec<&str> = citybooks_model::ledger()
        .layouts
        .iter()
        .map(|l| l.hierarchy.id)
        .collect();
    ids.join(", ")
}

/// `GET /api/quality?load=N` (default: the latest load): what the load read, loaded and
/// set aside by reason (with the lines), its rule-6 choices, the rows that got each
/// placeholder, and jumps against the previous load of the same source.
pub(super) async fn quality(
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut load = None;
    for (k, v) in pairs(&query) {
        match k.as_str() {
            "load" if v != "latest" => {
                load = Some(v.parse::<i64>().map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("load={v:?}: a load id, or latest"),
                    )
                })?)
            }
            "load" => {}
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {other:?}: use load"),
                ))
            }
        }
    }
    let q = app.live.warehouse().quality(load).await?;
    Ok(Json(serde_json::to_value(q).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    })?))
}

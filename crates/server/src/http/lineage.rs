//! Where a number comes from: `GET /api/rows` (the fact rows behind a number of the
//! dashboard, [`crate::rows`]) and `GET /api/source-line` (a row's original line in its
//! raw file, [`citybooks_warehouse::lineage`]).

use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use citybooks_model::format_cents;
use citybooks_query::format::result_json;
use citybooks_query::OutputFormat;
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
        return app
            .download(&request.all_sql(), None, None, OutputFormat::Csv)
            .await;
    }
    let started = Instant::now();
    let (totals, _) = app
        .execute(&request.totals_sql(), None, None, Lane::Dashboard)
        .await?;
    let (page, _) = app
        .execute(&request.sql(), None, None, Lane::Dashboard)
        .await?;
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

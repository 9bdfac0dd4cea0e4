//! The dashboard's routes: fiscal years, the schema, the original charts, the explorer
//! and the trend.

use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Decimal128Type, Int64Type};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use citybooks_model::format_cents;
use citybooks_query::dashboard::{CHARTS, ORIGINAL_QUERY};
use citybooks_query::format::{column_json, result_json};
use serde_json::{json, Value};

use super::sql::Lane;
use super::{ApiError, App};
use crate::explore::{self, View};

impl App {
    /// The fiscal years in the warehouse, newest first.
    pub(super) async fn fiscal_years(&self) -> Result<Vec<i32>, ApiError> {
        let (result, _) = self
            .execute(
                "select distinct fiscal_year from report.transaction order by fiscal_year desc",
                None,
                None,
                Lane::Dashboard,
            )
            .await?;
        let mut years = Vec::new();
        for batch in &result.batches {
            years.extend(ints(batch.column(0))?.into_iter().map(|y| y as i32));
        }
        Ok(years)
    }
}

pub(super) async fn years(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "fiscal_years": app.fiscal_years().await? })))
}

pub(super) async fn schema(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    let ctx = app.live.context().await?;
    let mut tables = Vec::new();
    let catalog = ctx.catalog(citybooks_warehouse::CATALOG).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the session has no catalog",
        )
    })?;
    for schema_name in ["report", "meta"] {
        let Some(schema) = catalog.schema(schema_name) else {
            continue;
        };
        let mut names = schema.table_names();
        names.sort();
        for name in names {
            let Ok(Some(table)) = schema.table(&name).await else {
                continue;
            };
            let columns: Vec<Value> = table
                .schema()
                .fields()
                .iter()
                .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
                .collect();
            tables.push(json!({"schema": schema_name, "name": name, "columns": columns}));
        }
    }
    Ok(Json(json!({ "tables": tables })))
}

pub(super) async fn charts() -> Json<Value> {
    let charts: Vec<Value> = CHARTS
        .iter()
        .chain([&ORIGINAL_QUERY])
        .map(|c| json!({"id": c.id, "title": c.title, "sql": c.sql}))
        .collect();
    Json(json!({ "charts": charts }))
}

pub(super) async fn chart(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let chart = CHARTS
        .iter()
        .chain([&ORIGINAL_QUERY])
        .find(|c| c.id == id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no chart {id:?}: GET /api/charts lists them"),
            )
        })?;
    let started = Instant::now();
    let (result, truncated) = app
        .execute(
            chart.sql,
            Some(app.options.row_limit),
            None,
            Lane::Dashboard,
        )
        .await?;
    Ok(Json(result_json(&result, truncated, started.elapsed())))
}

pub(super) fn pairs(query: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// An integer column of an answer as i64 values (nulls as 0: the explorer's counts and
/// years are never null).
pub(super) fn ints(array: &ArrayRef) -> Result<Vec<i64>, ApiError> {
    let wide = arrow::compute::cast(array, &DataType::Int64)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(wide
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

/// The exact cents of a decimal column's value (scale 2 in every amount the explorer sums).
pub(super) fn cents(array: &ArrayRef, i: usize) -> Result<i128, ApiError> {
    match array.data_type() {
        DataType::Decimal128(_, 2) => Ok(array.as_primitive::<Decimal128Type>().value(i)),
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("amount came back as {other}, not a 2-place decimal"),
        )),
    }
}

async fn view_of(app: &App, query: &Option<String>) -> Result<View, ApiError> {
    let pairs = pairs(query);
    let asks_year = pairs.iter().any(|(k, _)| k == "year");
    let default_year = if asks_year {
        None
    } else {
        app.fiscal_years().await?.first().copied()
    };
    Ok(View::from_pairs(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        default_year,
    )?)
}

pub(super) async fn explore(
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let view = view_of(&app, &query).await?;
    let sql = view.sql();
    let (result, _) = app.execute(&sql, None, None, Lane::Dashboard).await?;
    let mut rows = Vec::new();
    let mut total: i128 = 0;
    let mut transactions: i64 = 0;
    for batch in &result.batches {
        let names = column_json(batch.column(0));
        let counts = ints(batch.column(2))?;
        for (i, name) in names.into_iter().enumerate() {
            let amount = cents(batch.column(1), i)?;
            total += amount;
            transactions += counts[i];
            rows.push(
                json!({"name": name, "amount": format_cents(amount), "transactions": counts[i]}),
            );
        }
    }
    Ok(Json(json!({
        "h": view.hierarchy.hierarchy.id,
        "year": view.year,
        "side": view.side.as_str(),
        "related": if view.include_related { "include" } else { "exclude" },
        "path": view.path,
        "levels": levels_json(view.hierarchy),
        "depth": view.path.len(),
        "column": view.column(),
        "rows": rows,
        "total": format_cents(total),
        "transactions": transactions,
        "sql": sql,
    })))
}

/// A hierarchy's levels as the page reads them: `[{column, label}]`, broadest first.
fn levels_json(layout: &citybooks_model::Layout) -> Vec<Value> {
    explore::levels(layout)
        .map(|(column, label)| json!({"column": column, "label": label}))
        .collect()
}

/// The explorer's hierarchies, so the page lists them and labels its breadcrumb
/// before a view has answered: `{hierarchies: [{id, table, levels}]}`.
pub(super) async fn hierarchies() -> Json<Value> {
    let list: Vec<Value> = explore::hierarchies()
        .iter()
        .map(
            |l| json!({"id": l.hierarchy.id, "table": l.hierarchy.table, "levels": levels_json(l)}),
        )
        .collect();
    Json(json!({ "hierarchies": list }))
}

pub(super) async fn trend(
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let view = View::from_pairs(
        pairs(&query)
            .iter()
            .filter(|(k, _)| k != "year")
            .map(|(k, v)| (k.as_str(), v.as_str())),
        None,
    )?;
    let sql = view.trend_sql();
    let (result, _) = app.execute(&sql, None, None, Lane::Dashboard).await?;
    let mut rows = Vec::new();
    for batch in &result.batches {
        let (years, counts) = (ints(batch.column(0))?, ints(batch.column(2))?);
        for i in 0..batch.num_rows() {
            rows.push(json!({
                "fiscal_year": years[i],
                "amount": format_cents(cents(batch.column(1), i)?),
                "transactions": counts[i],
            }));
        }
    }
    Ok(Json(json!({ "rows": rows, "sql": sql })))
}

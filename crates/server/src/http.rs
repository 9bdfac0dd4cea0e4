//! The HTTP API and the web dashboard (`citybooks serve`, port 8080).
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` , `GET /assets/{file}` | the dashboard, built into the binary |
//! | `GET /health` | `{"status":"ok", "held": [...], ...}`, 503 when the warehouse cannot be read |
//! | `GET /metrics` | Prometheus text format |
//! | `POST /api/sql` | `{"sql", "format"?: json/csv/parquet/arrow, "limit"?, "query_id"?}` |
//! | `DELETE /api/queries/{id}` | cancels a running `POST /api/sql` with that `query_id` |
//! | `GET /api/years`, `/api/schema`, `/api/charts`, `/api/charts/{id}` | dashboard data |
//! | `GET /api/explore`, `/api/trend` | the explorer ([`crate::explore`]) |
//!
//! With `[http] token` set, every `/api` route needs `Authorization: Bearer <token>`.
//! Errors are `{"error": "..."}` with a 4xx/5xx status.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type, SchemaRef, UInt64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use citybooks_model::format_cents;
use citybooks_query::dashboard::{CHARTS, ORIGINAL_QUERY};
use citybooks_query::{OutputFormat, QueryError, QueryResult};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::explore::{View, ViewError};
use crate::live::Live;
use crate::metrics::Metrics;

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Settings of the HTTP server.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Bearer token every `/api` request must carry; None: open.
    pub token: Option<String>,
    /// Most rows a JSON result carries.
    pub row_limit: usize,
    /// Longest a request's query may run.
    pub timeout: Duration,
    /// Serve the dashboard from this folder instead of the built-in copy.
    pub assets_dir: Option<PathBuf>,
    /// Keep the dashboard routes' answers until the next load.
    pub cache: bool,
}

#[derive(Clone)]
struct App {
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    options: Arc<HttpOptions>,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    cache: Arc<ResultCache>,
}

/// Answers of the dashboard's routes, for the warehouse generation they were computed
/// at (like Redshift's result cache): every analyst opening the dashboard asks the same
/// questions, and they only change with a load. Cleared whole when a load lands.
#[derive(Default)]
struct ResultCache {
    entries: Mutex<(String, HashMap<String, Bytes>)>,
}

/// Most answers kept (then the cache starts over).
const CACHE_ENTRIES: usize = 512;
/// Largest answer kept.
const CACHE_ENTRY_BYTES: usize = 4 << 20;

/// Largest request body (a `POST /api/sql` of a long query is a few KiB).
const MAX_BODY_BYTES: usize = 1 << 20;

/// The HTTP server's routes.
pub fn router(live: Arc<Live>, metrics: Arc<Metrics>, options: HttpOptions) -> Router {
    let app = App {
        live,
        metrics,
        options: Arc::new(options),
        running: Arc::default(),
        cache: Arc::default(),
    };
    let dashboard = Router::new()
        .route("/years", get(years))
        .route("/charts/{id}", get(chart))
        .route("/explore", get(explore))
        .route("/trend", get(trend))
        .layer(middleware::from_fn_with_state(app.clone(), cached));
    let api = Router::new()
        .route("/sql", post(sql))
        .route("/queries", get(running_queries))
        .route("/queries/{id}", delete(cancel))
        .route("/schema", get(schema))
        .route("/charts", get(charts))
        .merge(dashboard)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such API route: see the README's HTTP API section",
            )
        })
        .layer(middleware::from_fn_with_state(app.clone(), authorize));
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .nest("/api", api)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(app.clone(), measure))
        .with_state(app)
}

/// An error answered as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let status = match &e {
            QueryError::ReadOnly(_) => StatusCode::FORBIDDEN,
            QueryError::Engine(e) if citybooks_query::engine::cluster_unreachable(e) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            QueryError::Engine(e) if citybooks_query::budget::out_of_memory(e) => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            QueryError::Engine(_) => StatusCode::BAD_REQUEST,
            QueryError::Warehouse(_) | QueryError::Output(_) | QueryError::Config(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<citybooks_warehouse::WarehouseError> for ApiError {
    fn from(e: citybooks_warehouse::WarehouseError) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the warehouse cannot be read: {e}"),
        )
    }
}

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
    }
}

async fn authorize(State(app): State<App>, request: Request, next: Next) -> Response {
    if let Some(token) = &app.options.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this API needs its token: send the header `Authorization: Bearer <token>` (the [http] token of citybooks.toml)",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves a dashboard route from the [`ResultCache`] when the answer for this URL at
/// this warehouse generation is there (header `x-citybooks-cache: hit`), otherwise
/// computes and keeps it.
async fn cached(State(app): State<App>, request: Request, next: Next) -> Response {
    if !app.options.cache {
        return next.run(request).await;
    }
    if let Err(e) = app.live.context().await {
        return ApiError::from(e).into_response();
    }
    let generation = app.live.generation().await;
    let key = request.uri().to_string();
    {
        let mut entries = app.cache.entries.lock().expect("cache");
        if entries.0 != generation {
            *entries = (generation.clone(), HashMap::new());
        }
        if let Some(body) = entries.1.get(&key) {
            return (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::HeaderName::from_static("x-citybooks-cache"), "hit"),
                ],
                body.clone(),
            )
                .into_response();
        }
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, CACHE_ENTRY_BYTES).await else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the answer was too large to send",
        )
        .into_response();
    };
    {
        let mut entries = app.cache.entries.lock().expect("cache");
        if entries.0 == generation {
            if entries.1.len() >= CACHE_ENTRIES {
                entries.1.clear();
            }
            entries.1.insert(key, bytes.clone());
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

async fn measure(State(app): State<App>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    app.metrics.inc(
        "citybooks_http_requests_total",
        &[("route", &route), ("status", &status)],
    );
    app.metrics.observe(
        "citybooks_http_request_duration_seconds",
        &[("route", &route)],
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn metrics_text(State(app): State<App>) -> impl IntoResponse {
    let mut text = app.metrics.render();
    // Loads by any process (citybooks load, fetch, SFTP uploads), from meta.loads.
    if let Ok(loads) = app.live.warehouse().loads().await {
        let mut by_status: std::collections::BTreeMap<&str, u64> = Default::default();
        for l in &loads {
            *by_status
                .entry(l.status.split(':').next().unwrap_or("failed"))
                .or_default() += 1;
        }
        text.push_str("# HELP citybooks_warehouse_loads Loads recorded in meta.loads, by status.\n# TYPE citybooks_warehouse_loads gauge\n");
        for (status, n) in by_status {
            text.push_str(&format!(
                "citybooks_warehouse_loads{{status=\"{status}\"}} {n}\n"
            ));
        }
        if let Some(last) = loads.last() {
            text.push_str(&format!(
                "# HELP citybooks_warehouse_last_load_timestamp_seconds When the last load finished.\n# TYPE citybooks_warehouse_last_load_timestamp_seconds gauge\ncitybooks_warehouse_last_load_timestamp_seconds {}\n",
                last.finished as f64 / 1e6
            ));
        }
    }
    if let citybooks_query::Engine::Ballista(cluster) = app.live.engine() {
        let (sent, fell_back) = cluster.counts();
        text.push_str(&format!(
            "# HELP citybooks_cluster_queries_total Plans of report.* queries by where they ran: on the Ballista cluster, or here because the scheduler could not be reached ([query] fallback).\n# TYPE citybooks_cluster_queries_total counter\ncitybooks_cluster_queries_total{{ran=\"cluster\"}} {sent}\ncitybooks_cluster_queries_total{{ran=\"fallback\"}} {fell_back}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn health(State(app): State<App>) -> Response {
    let answer = async {
        app.live.context().await?;
        let loads = app.live.warehouse().loads().await?;
        Ok::<_, citybooks_warehouse::WarehouseError>(json!({
            "status": "ok",
            "loads": loads.len(),
            "last_load": loads.last().map(|l| json!({
                "load_id": l.load_id,
                "status": l.status,
                "source_file": l.source_file,
                "finished": chrono::DateTime::from_timestamp_micros(l.finished).map(|t| t.to_rfc3339()),
            })),
            // Loads held by the shrink guard that nobody released yet.
            "held": citybooks_warehouse::loads::waiting(&loads).iter().map(|l| json!({
                "load_id": l.load_id,
                "source_file": l.source_file,
                "reason": l.status.strip_prefix("held: ").unwrap_or(&l.status),
            })).collect::<Vec<_>>(),
        }))
    };
    match answer.await {
        Ok(body) => Json(body).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn index(State(app): State<App>) -> Response {
    asset_response(&app, "index.html").await
}

async fn asset(State(app): State<App>, Path(file): Path<String>) -> Response {
    asset_response(&app, &file).await
}

async fn asset_response(app: &App, name: &str) -> Response {
    let content = match &app.options.assets_dir {
        Some(dir) if name != "echarts.min.js" => {
            if name.contains('/') || name.contains("..") {
                None
            } else {
                tokio::fs::read(dir.join(name)).await.ok()
            }
        }
        _ => ASSETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bytes)| bytes.to_vec()),
    };
    let Some(content) = content else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no file {name:?} in the dashboard"),
        )
        .into_response();
    };
    let kind = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let cache = if name == "echarts.min.js" {
        "public, max-age=86400"
    } else {
        "no-cache"
    };
    (
        [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, cache)],
        content,
    )
        .into_response()
}

/// A result as the dashboard reads it: column names and types, rows as arrays.
fn result_json(result: &QueryResult, truncated: bool, elapsed: Duration) -> Value {
    let columns: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let mut rows: Vec<Vec<Value>> = Vec::with_capacity(result.num_rows());
    for batch in &result.batches {
        let columns: Vec<Vec<Value>> = batch.columns().iter().map(column_json).collect();
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
        }
    }
    json!({
        "columns": columns,
        "row_count": rows.len(),
        "rows": rows,
        "truncated": truncated,
        "elapsed_ms": (elapsed.as_secs_f64() * 1e5).round() / 100.0,
    })
}

/// One column as JSON values: numbers for integers and floats, exact strings for
/// decimals (a JSON number would lose cents beyond 2^53), text for the rest.
fn column_json(array: &ArrayRef) -> Vec<Value> {
    // Null where the array is null, else `value(i)`.
    let each = |value: &dyn Fn(usize) -> Value| -> Vec<Value> {
        (0..array.len())
            .map(|i| {
                if array.is_null(i) {
                    Value::Null
                } else {
                    value(i)
                }
            })
            .collect()
    };
    let cast = |to: &DataType| arrow::compute::cast(array, to).expect("numbers widen losslessly");
    match array.data_type() {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let a = cast(&DataType::Int64);
            let a = a.as_primitive::<Int64Type>();
            each(&|i| json!(a.value(i)))
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let a = cast(&DataType::UInt64);
            let a = a.as_primitive::<UInt64Type>();
            each(&|i| json!(a.value(i)))
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let a = cast(&DataType::Float64);
            let a = a.as_primitive::<Float64Type>();
            each(&|i| serde_json::Number::from_f64(a.value(i)).map_or(Value::Null, Value::Number))
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            each(&|i| json!(a.value(i)))
        }
        _ => {
            let options = FormatOptions::default();
            match ArrayFormatter::try_new(array.as_ref(), &options) {
                Ok(f) => each(&|i| Value::String(f.value(i).to_string())),
                Err(_) => vec![Value::Null; array.len()],
            }
        }
    }
}

/// Removes a query from the running ones when its request ends, however it ends.
struct Running {
    id: Option<String>,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(id) = &self.id {
            self.running.lock().expect("running queries").remove(id);
        }
    }
}

/// Which queries a request's query waits behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// The dashboard's own routes: fixed queries on the shared session, never queued.
    Dashboard,
    /// `POST /api/sql`: a session with its own memory pool, and one of
    /// `[sql] max_concurrent_queries` slots.
    AdHoc,
}

/// What ends a request's query early: a cancel by its `query_id`, or the timeout.
type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = ApiError> + Send>>;

fn stop(
    token: CancellationToken,
    timeout: Duration,
    memory: Option<(CancellationToken, usize)>,
) -> Stop {
    Box::pin(async move {
        let (memory, stop_mib) = memory.unwrap_or_default();
        let memory = async {
            match stop_mib {
                0 => std::future::pending().await,
                _ => memory.cancelled().await,
            }
        };
        tokio::select! {
            () = token.cancelled() => ApiError::new(StatusCode::BAD_REQUEST, "the query was cancelled"),
            () = memory => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                citybooks_query::budget::stopped_for_memory(stop_mib),
            ),
            () = tokio::time::sleep(timeout) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("the query ran longer than {} s ([http] timeout_secs) and was stopped; narrow it down or add a limit", timeout.as_secs()),
            ),
        }
    })
}

/// A started query: its rows as they come, and what it holds until they end.
struct Started {
    schema: SchemaRef,
    stream: datafusion::execution::SendableRecordBatchStream,
    stop: Stop,
    _held: (
        Running,
        Option<(
            tokio::sync::OwnedSemaphorePermit,
            citybooks_query::budget::Watch,
        )>,
        Arc<datafusion::prelude::SessionContext>,
    ),
}

impl App {
    /// Plans and starts a read-only statement in `lane`, cancellable by `query_id`,
    /// stopped after the timeout.
    async fn start(
        &self,
        sql: &str,
        query_id: Option<String>,
        lane: Lane,
    ) -> Result<Started, ApiError> {
        let token = CancellationToken::new();
        if let Some(id) = &query_id {
            let mut running = self.running.lock().expect("running queries");
            if running.contains_key(id) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("a query with id {id:?} is already running"),
                ));
            }
            running.insert(id.clone(), token.clone());
        }
        let running = Running {
            id: query_id,
            running: self.running.clone(),
        };
        let budget = self.live.budget();
        let (ctx, slot) = match lane {
            Lane::Dashboard => (self.live.context().await?, None),
            Lane::AdHoc => {
                let slot = budget
                    .slot()
                    .await
                    .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
                let ctx = Arc::new(self.live.query_session().await?);
                (ctx, Some((slot, budget.watch())))
            }
        };
        let memory = slot
            .as_ref()
            .map(|(_, watch)| (watch.stopped.clone(), budget.memory_stop_mib()));
        let mut stop = stop(token, self.options.timeout, memory);
        let planned = async {
            let df = citybooks_query::plan(&ctx, sql).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let stream = df.execute_stream().await.map_err(QueryError::Engine)?;
            Ok::<_, QueryError>((schema, stream))
        };
        let (schema, stream) = tokio::select! {
            r = planned => r?,
            e = &mut stop => return Err(e),
        };
        Ok(Started {
            schema,
            stream,
            stop,
            _held: (running, slot, ctx),
        })
    }

    /// Runs a read-only statement: at most `limit` rows (None: all), within the
    /// timeout, cancellable by `query_id`.
    async fn execute(
        &self,
        sql: &str,
        limit: Option<usize>,
        query_id: Option<String>,
        lane: Lane,
    ) -> Result<(QueryResult, bool), ApiError> {
        let mut started = self.start(sql, query_id, lane).await?;
        let mut batches: Vec<RecordBatch> = Vec::new();
        let mut rows = 0usize;
        let mut truncated = false;
        loop {
            let batch = tokio::select! {
                b = started.stream.next() => b,
                e = &mut started.stop => return Err(e),
            };
            let Some(batch) = batch else { break };
            let batch = batch.map_err(QueryError::Engine)?;
            if let Some(limit) = limit {
                if rows + batch.num_rows() > limit {
                    batches.push(batch.slice(0, limit - rows));
                    truncated = true;
                    break;
                }
            }
            rows += batch.num_rows();
            batches.push(batch);
        }
        let result = QueryResult {
            schema: started.schema,
            batches,
        };
        Ok((result, truncated))
    }

    /// Runs an ad-hoc statement and sends its rows as a file of `format` while they
    /// come: what the server holds is a batch and the writer's buffer, however large
    /// the result. An error after the first bytes (the timeout, a cancel, the query
    /// running out of memory) aborts the transfer, so a client never takes a cut-off
    /// file for a whole one.
    async fn download(
        &self,
        sql: &str,
        limit: Option<usize>,
        query_id: Option<String>,
        format: OutputFormat,
    ) -> Result<Response, ApiError> {
        let mut started = self.start(sql, query_id, Lane::AdHoc).await?;
        // The first batch before the answer: most errors still get their status.
        let first = tokio::select! {
            b = started.stream.next() => b.transpose().map_err(QueryError::Engine)?,
            e = &mut started.stop => return Err(e),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        tokio::spawn(async move {
            let sent = send_file(&mut started, first, limit, format, &tx).await;
            if let Err(e) = sent {
                tracing::warn!("HTTP download stopped: {}", e.message);
                let _ = tx.send(Err(std::io::Error::other(e.message))).await;
            }
        });
        let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        }));
        let disposition = format!(
            "attachment; filename=\"citybooks-result.{}\"",
            format.extension()
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition).expect("ASCII header"),
        );
        Ok((headers, body).into_response())
    }
}

/// Bytes a [`citybooks_query::format::BatchWriter`] wrote since they were last taken.
#[derive(Clone, Default)]
struct Chunks(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("chunks").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Chunks {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.0.lock().expect("chunks")))
    }
}

/// Writes the rows of `started` (beginning with `first`) to `tx` as a file of
/// `format`, batch by batch. Returns early and quietly if the client went away.
async fn send_file(
    started: &mut Started,
    first: Option<RecordBatch>,
    limit: Option<usize>,
    format: OutputFormat,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), ApiError> {
    let chunks = Chunks::default();
    let mut writer =
        citybooks_query::format::BatchWriter::new(format, &started.schema, chunks.clone())?;
    let mut next = first;
    let mut left = limit.unwrap_or(usize::MAX);
    while let Some(batch) = next.take() {
        let batch = batch.slice(0, batch.num_rows().min(left));
        left -= batch.num_rows();
        writer.write(&batch)?;
        let chunk = chunks.take();
        if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
            return Ok(());
        }
        if left == 0 {
            break;
        }
        next = tokio::select! {
            b = started.stream.next() => b.transpose().map_err(QueryError::Engine)?,
            e = &mut started.stop => return Err(e),
        };
    }
    writer.finish()?;
    let _ = tx.send(Ok(chunks.take())).await;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    query_id: Option<String>,
}

async fn sql(State(app): State<App>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be JSON like {{\"sql\": \"select 1\"}} (optional: format, limit, query_id): {e}"),
        )
    })?;
    let format = match request.format.as_deref().unwrap_or("json") {
        "json" => None,
        other => match other.parse::<OutputFormat>() {
            Ok(f @ (OutputFormat::Csv | OutputFormat::Parquet | OutputFormat::Arrow)) => Some(f),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("format {other:?}: use json, csv, parquet or arrow"),
                ))
            }
        },
    };
    let started = Instant::now();
    match format {
        None => {
            let limit = request
                .limit
                .unwrap_or(app.options.row_limit)
                .min(app.options.row_limit);
            let (result, truncated) = app
                .execute(&request.sql, Some(limit), request.query_id, Lane::AdHoc)
                .await?;
            Ok(Json(result_json(&result, truncated, started.elapsed())).into_response())
        }
        Some(format) => {
            app.download(&request.sql, request.limit, request.query_id, format)
                .await
        }
    }
}

/// The ids of the `POST /api/sql` queries running now (those sent with a `query_id`).
async fn running_queries(State(app): State<App>) -> Json<Value> {
    let mut ids: Vec<String> = app
        .running
        .lock()
        .expect("running queries")
        .keys()
        .cloned()
        .collect();
    ids.sort();
    Json(json!({ "running": ids }))
}

async fn cancel(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let token = app
        .running
        .lock()
        .expect("running queries")
        .get(&id)
        .cloned();
    match token {
        Some(token) => {
            token.cancel();
            Ok(Json(json!({"cancelled": true})))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no running query with id {id:?}"),
        )),
    }
}

impl App {
    /// The fiscal years in the warehouse, newest first.
    async fn fiscal_years(&self) -> Result<Vec<i32>, ApiError> {
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

async fn years(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "fiscal_years": app.fiscal_years().await? })))
}

async fn schema(State(app): State<App>) -> Result<Json<Value>, ApiError> {
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

async fn charts() -> Json<Value> {
    let charts: Vec<Value> = CHARTS
        .iter()
        .chain([&ORIGINAL_QUERY])
        .map(|c| json!({"id": c.id, "title": c.title, "sql": c.sql}))
        .collect();
    Json(json!({ "charts": charts }))
}

async fn chart(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
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

fn pairs(query: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// An integer column of an answer as i64 values (nulls as 0: the explorer's counts and
/// years are never null).
fn ints(array: &ArrayRef) -> Result<Vec<i64>, ApiError> {
    let wide = arrow::compute::cast(array, &DataType::Int64)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(wide
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

/// The exact cents of a decimal column's value (scale 2 in every amount the explorer sums).
fn cents(array: &ArrayRef, i: usize) -> Result<i128, ApiError> {
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

async fn explore(
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
    let levels: Vec<Value> = view
        .hierarchy
        .levels
        .iter()
        .map(|(column, label)| json!({"column": column, "label": label}))
        .collect();
    Ok(Json(json!({
        "h": view.hierarchy.id,
        "year": view.year,
        "side": view.side.as_str(),
        "related": if view.include_related { "include" } else { "exclude" },
        "path": view.path,
        "levels": levels,
        "depth": view.path.len(),
        "column": view.column(),
        "rows": rows,
        "total": format_cents(total),
        "transactions": transactions,
        "sql": sql,
    })))
}

async fn trend(State(app): State<App>, RawQuery(query): RawQuery) -> Result<Json<Value>, ApiError> {
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

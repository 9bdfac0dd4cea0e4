//! `POST /api/sql` and its running queries: ad-hoc SQL with a row limit, a timeout,
//! a cancel by id, and downloads as CSV, Parquet or Arrow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use citybooks_query::format::result_json;
use citybooks_query::{OutputFormat, QueryError, QueryResult};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{ApiError, App};

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
pub(super) enum Lane {
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
    pub(super) async fn execute(
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
    pub(super) async fn download(
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

pub(super) async fn sql(
    State(app): State<App>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
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
pub(super) async fn running_queries(State(app): State<App>) -> Json<Value> {
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

pub(super) async fn cancel(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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

//! The HTTP API and the web dashboard (`citybooks serve`, port 8080).
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` , `GET /assets/{file}` | the dashboard, built into the binary |
//! | `GET /health` | `{"status":"ok", "held": [...], ...}`, 503 when the warehouse cannot be read |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /feed.xml` | an Atom feed of the loads and what each changed |
//! | `POST /api/sql` | `{"sql", "format"?: json/csv/parquet/arrow, "limit"?, "query_id"?}` |
//! | `DELETE /api/queries/{id}` | cancels a running `POST /api/sql` with that `query_id` |
//! | `GET /api/years`, `/api/schema`, `/api/charts`, `/api/charts/{id}` | dashboard data |
//! | `GET /api/explore`, `/api/trend` | the explorer ([`crate::explore`]) |
//! | `GET /api/hierarchies` | the explorer's hierarchies and their levels, from the ledger's description |
//! | `GET /api/rows` | the fact rows behind a number: its filter (a view, or `chart` and `key`), `offset`, `limit`, `sort`, `format=csv` ([`crate::rows`]) |
//! | `GET /api/source-line` | `load`, `line`: a row's original line in its raw file |
//! | `GET /api/changes` | `from`, `to`, `by`, `top`: what changed between two loads |
//! | `GET /api/quality` | `load`: the quality of one load (quarantine by reason, placeholders, rule 6, jumps) |
//!
//! With `[http] token` set, every `/api` route needs `Authorization: Bearer <token>`.
//! Errors are `{"error": "..."}` with a 4xx/5xx status.

mod assets;
mod dashboard;
mod error;
mod feed;
mod lineage;
mod middleware;
mod sql;
mod status;
mod warm;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::live::Live;
use crate::metrics::Metrics;
pub use error::ApiError;
pub use warm::keep_warm;

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

impl HttpOptions {
    /// The settings `[http]` of `project` describes (`assets_dir` relative to the
    /// project folder).
    pub fn from_config(project: &citybooks_store::Project) -> HttpOptions {
        let cfg = &project.config.http;
        HttpOptions {
            token: cfg.token.clone(),
            row_limit: cfg.row_limit,
            timeout: Duration::from_secs(cfg.timeout_secs),
            assets_dir: cfg.assets_dir.as_ref().map(|d| project.dir.join(d)),
            cache: cfg.cache,
        }
    }
}

#[derive(Clone)]
pub(crate) struct App {
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub options: Arc<HttpOptions>,
    pub running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    pub cache: Arc<ResultCache>,
}

/// Answers of the dashboard's routes, for the warehouse generation they were computed
/// at (like Redshift's result cache): every analyst opening the dashboard asks the same
/// questions, and they only change with a load. Cleared whole when a load lands.
#[derive(Default)]
pub(crate) struct ResultCache {
    pub entries: Mutex<(String, HashMap<String, Bytes>)>,
}

/// Most answers kept (then the cache starts over).
pub(crate) const CACHE_ENTRIES: usize = 512;
/// Largest answer kept.
pub(crate) const CACHE_ENTRY_BYTES: usize = 4 << 20;

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
        .route("/years", get(dashboard::years))
        .route("/charts/{id}", get(dashboard::chart))
        .route("/explore", get(dashboard::explore))
        .route("/hierarchies", get(dashboard::hierarchies))
        .route("/trend", get(dashboard::trend))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            middleware::cached,
        ));
    let api = Router::new()
        .route("/sql", post(sql::sql))
        .route("/queries", get(sql::running_queries))
        .route("/queries/{id}", delete(sql::cancel))
        .route("/schema", get(dashboard::schema))
        .route("/charts", get(dashboard::charts))
        .route("/rows", get(lineage::rows))
        .route("/source-line", get(lineage::source_line))
        .route("/changes", get(lineage::changes))
        .route("/quality", get(lineage::quality))
        .merge(dashboard)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such API route: see the README's HTTP API section",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            middleware::authorize,
        ));
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::asset))
        .route("/health", get(status::health))
        .route("/metrics", get(status::metrics_text))
        .route(
            "/feed.xml",
            get(feed::feed).layer(axum::middleware::from_fn_with_state(
                app.clone(),
                middleware::authorize,
            )),
        )
        .nest("/api", api)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            middleware::measure,
        ))
        .with_state(app)
}

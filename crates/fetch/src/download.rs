//! A fetch: the count, then page after page into a staging folder of the store
//! (`fetch/<query key>/page-NNNNNN.csv` and `state.json`), then one file published
//! under `raw/datasf/<UTC time>/<dataset>.csv`. Nothing under `raw/` exists until
//! every page is in; a fetch that stops keeps its complete pages and the next fetch of
//! the same query resumes after them (unless the portal's row count changed).

use std::time::Duration;

use bytes::Bytes;
use citybooks_store::config::FetchConfig;
use citybooks_store::{Store, StoreError};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::soda::{check_page, PageError, Query};

/// How a fetch talks to the portal.
#[derive(Debug, Clone)]
pub struct Options {
    /// Attempts per request before giving up.
    pub attempts: u32,
    /// First wait between attempts; doubles each time.
    pub backoff: Duration,
    /// Longest one request may take.
    pub timeout: Duration,
    /// Sent as `X-App-Token`.
    pub app_token: Option<String>,
}

impl Options {
    /// The settings of `[fetch]` (already kept within what works by the configuration).
    pub fn from_config(cfg: &FetchConfig) -> Options {
        Options {
            attempts: cfg.attempts,
            backoff: Duration::from_millis(cfg.backoff_ms),
            timeout: Duration::from_secs(cfg.timeout_secs),
            app_token: cfg.app_token.clone(),
        }
    }
}

/// Where a fetch is.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub rows: u64,
    pub total_rows: u64,
    pub bytes: u64,
    pub pages_done: u64,
    pub pages: u64,
}

/// A finished fetch.
#[derive(Debug, Clone, Serialize)]
pub struct FetchOutcome {
    /// The published file, relative to the store.
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub pages: u64,
    /// Pages a previous, interrupted fetch had already brought.
    pub resumed_pages: u64,
}

/// A fetch that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: cannot reach the portal: {message}")]
    Network { url: String, message: String },
    #[error("{url}: the portal answered HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: {source}")]
    Page { url: String, source: PageError },
    #[error("{url}: the portal's columns changed during the fetch (this page's header differs from the first page's); the partial download was discarded, fetch again")]
    HeaderChanged { url: String },
    #[error("{url}: the count is not the expected [{{\"n\": ...}}]: {body}")]
    BadCount { url: String, body: String },
    #[error("the portal has no rows for {0}: nothing to load, the warehouse is unchanged")]
    Empty(String),
    #[error("gave up after {attempts} attempts: {last}; {kept}")]
    GaveUp {
        attempts: u32,
        kept: String,
        last: Box<FetchError>,
    },
    #[error("the portal {portal:?} is not a URL (e.g. https://data.sfgov.org): {source}")]
    BadPortal {
        portal: String,
        source: url::ParseError,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl FetchError {
    /// Worth asking again: the network, the server's own trouble, throttling, a
    /// broken page. Not: a request the portal refuses, or an answer that is not the
    /// ledger.
    fn retryable(&self) -> bool {
        match self {
            FetchError::Network { .. } => true,
            FetchError::Http { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            FetchError::Page { source, .. } => matches!(source, PageError::Incomplete(_)),
            _ => false,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    query: String,
    total: u64,
    pages_done: u64,
    bytes: u64,
    header: Option<String>,
}

/// The error chain of a request failure, in words.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no complete answer within {} s", timeout.as_secs_f64());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_body() || e.is_decode() {
        format!("the connection broke while reading the answer ({text})")
    } else {
        text
    }
}

/// The portal's own words from an error body: Socrata sends `{"message": ...}`.
fn portal_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)])
        .trim()
        .to_string();
    if text.is_empty() {
        "(no message)".into()
    } else {
        text
    }
}

struct Client {
    http: reqwest::Client,
    options: Options,
}

impl Client {
    fn new(options: Options) -> Client {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .user_agent(concat!("citybooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS-capable HTTP client");
        Client { http, options }
    }

    /// One GET: the body of a 2xx answer.
    async fn get(&self, url: &Url) -> Result<Bytes, FetchError> {
        let mut request = self.http.get(url.clone());
        if let Some(token) = &self.options.app_token {
            request = request.header("X-App-Token", token);
        }
        let network = |e: reqwest::Error| FetchError::Network {
            url: url.to_string(),
            message: describe(&e, self.options.timeout),
        };
        let response = request.send().await.map_err(network)?;
        let status = response.status();
        let body = response.bytes().await.map_err(network)?;
        if !status.is_success() {
            return Err(FetchError::Http {
                url: url.to_string(),
                status: status.as_u16(),
                message: portal_message(&body),
            });
        }
        Ok(body)
    }

    /// Runs `attempt` until it succeeds, fails for good, or the attempts run out.
    async fn retrying<T, F, Fut>(
        &self,
        what: &str,
        kept: &str,
        mut attempt: F,
    ) -> Result<T, FetchError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, FetchError>>,
    {
        let mut wait = self.options.backoff;
        let attempts = self.options.attempts.max(1);
        for n in 1..=attempts {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if e.retryable() && n < attempts => {
                    tracing::warn!("{what}, attempt {n} of {attempts}: {e}; again in {wait:?}");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) if e.retryable() => {
                    return Err(FetchError::GaveUp {
                        attempts,
                        kept: kept.to_string(),
                        last: Box::new(e),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("at least one attempt")
    }

    async fn count(&self, query: &Query) -> Result<u64, FetchError> {
        let url = query.count_url();
        let body = self.get(&url).await?;
        let bad = || FetchError::BadCount {
            url: url.to_string(),
            body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        };
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|_| bad())?;
        let n = v.get(0).and_then(|row| row.get("n")).ok_or_else(bad)?;
        // Socrata sends numbers as strings in JSON.
        match n {
            serde_json::Value::String(s) => s.parse().map_err(|_| bad()),
            serde_json::Value::Number(n) => n.as_u64().ok_or_else(bad),
            _ => Err(bad()),
        }
    }

    async fn page(
        &self,
        query: &Query,
        page: u64,
        expected: u64,
    ) -> Result<(Bytes, String), FetchError> {
        let url = query.page_url(page);
        let body = self.get(&url).await?;
        let header = check_page(&body, expected).map_err(|source| FetchError::Page {
            url: url.to_string(),
            source,
        })?;
        Ok((body, header))
    }
}

/// The state of an interrupted fetch of the same query, when the portal still counts
/// the same rows; otherwise a fresh state, with the staging area emptied.
async fn resume_or_start(
    store: &Store,
    query: &Query,
    staging: &str,
    state_rel: &str,
    total: u64,
) -> Result<State, FetchError> {
    let previous: Option<State> = match store.exists(state_rel).await? {
        true => serde_json::from_slice(&store.get(state_rel).await?).ok(),
        false => None,
    };
    match previous {
        Some(s) if s.total == total => {
            if s.pages_done > 0 {
                tracing::info!(
                    "resuming {}: {} page(s) already here",
                    s.query,
                    s.pages_done
                );
            }
            Ok(s)
        }
        other => {
            if other.is_some() {
                tracing::info!(
                    "the portal's row count changed since the interrupted fetch: starting over"
                );
            }
            store.delete_prefix(staging).await?;
            Ok(State {
                query: format!(
                    "{} of {} at {}",
                    query.years.describe(),
                    query.dataset,
                    query.portal
                ),
                total,
                pages_done: 0,
                bytes: 0,
                header: None,
            })
        }
    }
}

/// Publishes the staged pages as one file under `raw/datasf/<UTC time>/`, the header
/// once; returns its path and size.
async fn publish_pages(
    store: &Store,
    staging: &str,
    pages: u64,
    dataset: &str,
) -> Result<(String, u64), FetchError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
    let file = format!("raw/datasf/{stamp}/{dataset}.csv");
    let reader_store = store.clone();
    let staging = staging.to_string();
    let chunks = futures::stream::iter(0..pages).then(move |page| {
        let store = reader_store.clone();
        let rel = page_rel(&staging, page);
        async move {
            let body = store.get(&rel).await.map_err(std::io::Error::other)?;
            if page == 0 {
                return Ok::<Bytes, std::io::Error>(body);
            }
            let skip = body
                .iter()
                .position(|b| *b == b'\n')
                .map_or(body.len(), |i| i + 1);
            Ok(body.slice(skip..))
        }
    });
    let bytes = store
        .put_stream(
            &file,
            tokio_util::io::StreamReader::new(Box::pin(chunks)),
            |_| {},
        )
        .await?;
    Ok((file, bytes))
}

fn page_rel(staging: &str, page: u64) -> String {
    format!("{staging}/page-{page:06}.csv")
}

/// Fetches `query` into the store and publishes it as one file under
/// `raw/datasf/<UTC time>/`. `progress` is called after the count and every page.
pub async fn fetch(
    store: &Store,
    query: &Query,
    options: Options,
    mut progress: impl FnMut(&Progress),
) -> Result<FetchOutcome, FetchError> {
    let client = Client::new(options);
    let staging = format!("fetch/{}", query.key());
    let state_rel = format!("{staging}/state.json");
    let total = client
        .retrying("counting the rows", "nothing was downloaded", || {
            client.count(query)
        })
        .await?;
    if total == 0 {
        return Err(FetchError::Empty(query.years.describe()));
    }
    let mut state = resume_or_start(store, query, &staging, &state_rel, total).await?;
    let resumed_pages = state.pages_done;
    let pages = query.pages(total);
    let mut shown = Progress {
        rows: (state.pages_done * query.page_rows).min(total),
        total_rows: total,
        bytes: state.bytes,
        pages_done: state.pages_done,
        pages,
    };
    progress(&shown);
    for page in state.pages_done..pages {
        let expected = query.rows_of_page(page, total);
        let kept = match state.pages_done {
            0 => "no page was complete yet".to_string(),
            done => format!(
                "the {done} complete page(s) are kept and the next fetch resumes from page {}",
                done + 1
            ),
        };
        let (body, header) = client
            .retrying(&format!("page {} of {pages}", page + 1), &kept, || {
                client.page(query, page, expected)
            })
            .await?;
        match &state.header {
            Some(first) if *first != header => {
                store.delete_prefix(&staging).await?;
                return Err(FetchError::HeaderChanged {
                    url: query.page_url(page).to_string(),
                });
            }
            Some(_) => {}
            None => state.header = Some(header),
        }
        store
            .put_stream(&page_rel(&staging, page), &body[..], |_| {})
            .await?;
        state.pages_done = page + 1;
        state.bytes += body.len() as u64;
        let json = serde_json::to_vec_pretty(&state).expect("state serializes");
        store.put_stream(&state_rel, &json[..], |_| {}).await?;
        shown.rows += expected;
        shown.bytes = state.bytes;
        shown.pages_done = state.pages_done;
        progress(&shown);
    }

    let (file, bytes) = publish_pages(store, &staging, pages, &query.dataset).await?;
    store.delete_prefix(&staging).await?;
    Ok(FetchOutcome {
        file,
        rows: total,
        bytes,
        pages,
        resumed_pages,
    })
}

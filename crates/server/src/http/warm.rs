//! The dashboard's first page, answered from memory after every load.
//!
//! The result cache starts over when a load lands, so without help the first visitor
//! after each weekly load would wait for every chart to be computed. [`keep_warm`]
//! watches the load generation (as often as [`Live`] looks for loads) and, when it
//! moves, asks the router for the answers the dashboard's first views need — the
//! fiscal years, the hierarchies, the four charts and the original query, the explorer
//! of the newest year on both sides and the trend — so they sit in the cache before
//! anyone asks. The requests are the router's own, marked [`Warming`]: they pass the
//! token check and fill the cache exactly as a visitor's request would; they are not
//! counted as visitors' requests (`citybooks_http_warms_total` and
//! `citybooks_http_warm_duration_seconds` count the warm-ups).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use citybooks_query::dashboard::{CHARTS, ORIGINAL_QUERY};
use futures::future::join_all;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::explore;
use crate::live::{Live, CHECK_INTERVAL};
use crate::metrics::Metrics;

/// Marks a request the server makes to itself to fill the result cache.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Warming;

/// Fills the result cache with the dashboard's default views after each load, until
/// `stop`. Run it beside the server of `router` when the result cache is on.
pub async fn keep_warm(
    router: Router,
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut warmed = String::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
        if let Err(e) = live.refresh(false).await {
            tracing::warn!("warming the dashboard: looking for a new load failed: {e}");
            continue;
        }
        let generation = live.generation().await;
        if generation == warmed || generation.is_empty() {
            continue;
        }
        let started = Instant::now();
        match warm(&router).await {
            Ok(answers) => {
                let seconds = started.elapsed().as_secs_f64();
                metrics.inc("citybooks_http_warms_total", &[]);
                metrics.observe("citybooks_http_warm_duration_seconds", &[], seconds);
                tracing::info!(
                    answers,
                    "dashboard warmed for the new load in {:.0} ms",
                    seconds * 1e3
                );
                warmed = generation;
            }
            // Tried again at the next look (a table may still be being replaced).
            Err(e) => tracing::warn!("warming the dashboard failed: {e}"),
        }
    }
}

/// Asks for every default view once; returns how many answers were computed.
async fn warm(router: &Router) -> Result<usize, String> {
    let years = get(router, "/api/years".to_string()).await?;
    let Some(year) = years["fiscal_years"].get(0).and_then(|y| y.as_i64()) else {
        return Ok(1); // nothing loaded yet: nothing else to show
    };
    let hierarchy = explore::hierarchies()
        .first()
        .map(|l| l.hierarchy.id)
        .unwrap_or("organization");
    let mut uris = vec!["/api/hierarchies".to_string()];
    uris.extend(
        CHARTS
            .iter()
            .chain([&ORIGINAL_QUERY])
            .map(|c| format!("/api/charts/{}", c.id)),
    );
    for side in ["Spending", "Revenue"] {
        uris.push(format!(
            "/api/explore?year={year}&side={side}&related=exclude&h={hierarchy}"
        ));
    }
    uris.push(format!(
        "/api/trend?side=Spending&related=exclude&h={hierarchy}"
    ));
    let answers = join_all(uris.into_iter().map(|uri| get(router, uri))).await;
    let computed = answers.len() + 1;
    answers.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(computed)
}

/// One request to the router, as [`Warming`]; its JSON answer.
async fn get(router: &Router, uri: String) -> Result<serde_json::Value, String> {
    let mut request = Request::get(&uri)
        .body(Body::empty())
        .map_err(|e| format!("{uri}: {e}"))?;
    request.extensions_mut().insert(Warming);
    let response = router
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), super::CACHE_ENTRY_BYTES)
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    if status != StatusCode::OK {
        return Err(format!(
            "{uri}: {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{uri}: {e}"))
}

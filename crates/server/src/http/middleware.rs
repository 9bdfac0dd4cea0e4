//! What wraps the routes: the token check of `/api`, the result cache of the
//! dashboard's routes, and the request metrics.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::warm::Warming;
use super::{ApiError, App, CACHE_ENTRIES, CACHE_ENTRY_BYTES};

pub(super) async fn authorize(State(app): State<App>, request: Request, next: Next) -> Response {
    // The server's own warm-up requests (an extension no client can set).
    let warming = request.extensions().get::<Warming>().is_some();
    if let (Some(token), false) = (&app.options.token, warming) {
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
pub(super) async fn cached(State(app): State<App>, request: Request, next: Next) -> Response {
    if !app.options.cache {
        return next.run(request).await;
    }
    if let Err(e) = app.live.context().await {
        return ApiError::from(e).into_response();
    }
    let generation = app.live.generation().await;
    let key = cache_key(request.uri());
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

/// The cache's key of a request: its path and its parameters ordered by name (a
/// name's repeated values, the explorer's drill-down path, keep their order), so the
/// same view asked with its parameters in another order is the same answer.
fn cache_key(uri: &Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_string();
    };
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_by_key(|p| p.split('=').next().unwrap_or(""));
    format!("{}?{}", uri.path(), pairs.join("&"))
}

pub(super) async fn measure(State(app): State<App>, request: Request, next: Next) -> Response {
    if request.extensions().get::<Warming>().is_some() {
        return next.run(request).await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uri: &str) -> String {
        cache_key(&uri.parse().unwrap())
    }

    #[test]
    fn cache_keys_order_parameters_by_name_and_keep_a_paths_order() {
        assert_eq!(key("/years"), "/years");
        assert_eq!(
            key("/explore?year=2026&side=Spending&h=organization"),
            key("/explore?h=organization&side=Spending&year=2026")
        );
        // The drill-down path is an ordered list: another order is another view.
        assert_ne!(
            key("/explore?path=A&path=B&h=organization"),
            key("/explore?path=B&path=A&h=organization")
        );
        assert_eq!(
            key("/explore?path=A&h=organization&path=B"),
            "/explore?h=organization&path=A&path=B"
        );
    }
}

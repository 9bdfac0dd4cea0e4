//! What wraps the routes: the token check of `/api`, the result cache of the
//! dashboard's routes, and the request metrics.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, App, CACHE_ENTRIES, CACHE_ENTRY_BYTES};

pub(super) async fn authorize(State(app): State<App>, request: Request, next: Next) -> Response {
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
pub(super) async fn cached(State(app): State<App>, request: Request, next: Next) -> Response {
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

pub(super) async fn measure(State(app): State<App>, request: Request, next: Next) -> Response {
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

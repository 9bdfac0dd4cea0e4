//! The dashboard's files: built into the binary, or read from `[http] assets_dir`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ApiError, App};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

pub(super) async fn index(State(app): State<App>) -> Response {
    asset_response(&app, "index.html").await
}

pub(super) async fn asset(State(app): State<App>, Path(file): Path<String>) -> Response {
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

//! `GET /metrics` and `GET /health`: what an operator's monitoring reads.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::App;

pub(super) async fn metrics_text(State(app): State<App>) -> impl IntoResponse {
    let mut text = app.metrics.render();
    // Loads by any process (citybooks load, fetch, SFTP uploads), from meta.loads.
    if let Ok(loads) = app.live.warehouse().loads().await {
        let mut by_status: std::collections::BTreeMap<&str, u64> = Default::default();
        for l in &loads {
            *by_status.entry(l.status.as_str()).or_default() += 1;
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

pub(super) async fn health(State(app): State<App>) -> Response {
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
                "reason": l.hold,
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

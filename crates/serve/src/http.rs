//! The HTTP API and dashboard, started from `[http]`.

use std::sync::Arc;

use anyhow::{Context, Result};
use citybooks_server::{HttpOptions, Live, Metrics};
use citybooks_store::Project;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{shown_host, Task};

/// Starts the HTTP API and dashboard on `listener`; the task ends at `shutdown`.
pub fn start(
    project: &Project,
    live: &Arc<Live>,
    listener: TcpListener,
    metrics: &Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<Task> {
    let options = HttpOptions::from_config(project);
    let router = citybooks_server::router(live.clone(), metrics.clone(), options);
    let addr = listener.local_addr()?;
    println!("citybooks HTTP API and dashboard listening on {addr}");
    println!("  dashboard: http://{}:{}/", shown_host(addr), addr.port());
    Ok(tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("HTTP server")
    }))
}

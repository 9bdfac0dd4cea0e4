//! The HTTP API and dashboard, started from `[http]`.

use std::sync::Arc;

use anyhow::{Context, Result};
use citybooks_server::{HttpOptions, Live};
use tokio::net::TcpListener;

use crate::{shown_host, Shared, Task};

/// Starts the HTTP API and dashboard on `listener`; the task ends at `shutdown`.
pub fn start(shared: &Shared, live: &Arc<Live>, listener: TcpListener) -> Result<Task> {
    let options = HttpOptions::from_config(shared.project);
    let cache = options.cache;
    let router = citybooks_server::router(live.clone(), shared.metrics.clone(), options);
    if cache {
        tokio::spawn(citybooks_server::keep_warm(
            router.clone(),
            live.clone(),
            shared.metrics.clone(),
            shared.shutdown.clone(),
        ));
    }
    let addr = listener.local_addr()?;
    println!("citybooks HTTP API and dashboard listening on {addr}");
    println!("  dashboard: http://{}:{}/", shown_host(addr), addr.port());
    let shutdown = shared.shutdown.clone().cancelled_owned();
    Ok(tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTP server")
    }))
}

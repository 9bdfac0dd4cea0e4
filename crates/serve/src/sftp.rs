//! The SFTP drop-box, started from `[sftp]`, and its after-upload worker: each
//! finished upload is loaded, counted, and a committed load published.

use std::sync::Arc;

use anyhow::Result;
use citybooks_server::Metrics;
use citybooks_sftp::server::{LoadUpload, Uploaded};
use citybooks_sftp::SftpServer;
use citybooks_store::Project;
use citybooks_warehouse::{LoadStatus, Warehouse};
use tokio::net::TcpListener;

use crate::{Shared, Task};

/// Starts the drop-box on `listener` with its after-upload worker; the task ends after
/// the shutdown's grace period.
pub async fn start(shared: &Shared<'_>, wh: &Warehouse, listener: TcpListener) -> Result<Task> {
    let project = shared.project;
    let loader = UploadLoader {
        warehouse: wh.clone(),
        project: project.clone(),
        metrics: shared.metrics.clone(),
    };
    let server = SftpServer::start(
        &project.dir,
        &project.config.sftp,
        wh.store().clone(),
        loader,
    )
    .await?;
    let addr = listener.local_addr()?;
    println!("citybooks SFTP drop-box listening on {addr}");
    for fp in server.fingerprints() {
        println!("  host key {fp}");
    }
    println!(
        "  upload with: sftp -P {} -i KEY USER@HOST   then   put data/*.csv",
        addr.port()
    );
    if server.requeued > 0 {
        println!(
            "  {} upload(s) have no load report (the server stopped before loading them): queued again",
            server.requeued
        );
    }
    let shutdown = shared.shutdown.clone().cancelled_owned();
    Ok(tokio::spawn(async move {
        Ok(server.run(listener, shutdown).await?)
    }))
}

/// Loads the drop-box's finished uploads into the warehouse: counts them, prints one
/// line each, and publishes a load that committed.
struct UploadLoader {
    warehouse: Warehouse,
    project: Project,
    metrics: Arc<Metrics>,
}

impl LoadUpload for UploadLoader {
    async fn load(&self, up: &Uploaded) -> String {
        self.metrics.inc("citybooks_uploads_total", &[]);
        let json = match self.warehouse.load_object(&up.path, false, false).await {
            Ok(r) => {
                let status = r.status.as_str();
                self.metrics
                    .inc("citybooks_loads_total", &[("status", status)]);
                println!(
                    "load {}: {status} {} ({} rows loaded, {} quarantined)",
                    r.load_id, up.path, r.rows_loaded, r.rows_quarantined
                );
                if r.status == LoadStatus::Loaded {
                    crate::jobs::publish_after_load(&self.project, &self.warehouse).await;
                }
                serde_json::to_string_pretty(&r)
            }
            Err(e) => {
                self.metrics
                    .inc("citybooks_loads_total", &[("status", "failed")]);
                println!("load of {} failed: {e}", up.path);
                serde_json::to_string_pretty(
                    &serde_json::json!({"status": "failed", "error": e.to_string()}),
                )
            }
        };
        json.unwrap_or_default()
    }
}

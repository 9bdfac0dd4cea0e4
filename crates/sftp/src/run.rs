//! The drop-box as one server: built from the project folder and `[sftp]`, run until a
//! shutdown, then given the grace period to finish the uploads already open.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use citybooks_store::config::SftpConfig;
use citybooks_store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::guard::{Audit, Throttle};
use crate::hostkeys::HostKeys;
use crate::server::{self, DropBox, LoadUpload, Uploaded};
use crate::users::{UserError, Users};

/// Folder of a project holding the SFTP users' public keys (`<name>.pub`).
pub const USERS_DIR: &str = "users";
/// Folder of a project holding the SSH host keys.
pub const HOST_KEYS_DIR: &str = "keys";

/// Why the drop-box could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("SFTP host keys: {0}")]
    HostKeys(#[from] UserError),
    #[error("opening the audit log {path}: {source}")]
    Audit {
        path: String,
        source: std::io::Error,
    },
}

/// A drop-box ready to serve: its shared state, host keys and after-upload worker.
pub struct SftpServer {
    dropbox: Arc<DropBox>,
    host_keys: HostKeys,
    worker: JoinHandle<()>,
    idle: Duration,
    grace: Duration,
    /// Uploads found without a load report at start (the server stopped before loading
    /// them), queued again.
    pub requeued: usize,
}

impl SftpServer {
    /// The drop-box of the project in `project_dir` with the settings of `[sftp]`: its
    /// host keys (made if missing), users, audit log, ban and limits. Starts the
    /// after-upload worker (one load at a time, in arrival order, by `loader`), sweeps
    /// parts a killed server left, and queues again the uploads that have no report.
    pub async fn start(
        project_dir: &Path,
        cfg: &SftpConfig,
        store: Store,
        loader: impl LoadUpload,
    ) -> Result<SftpServer, StartError> {
        let host_keys = HostKeys::ensure(&project_dir.join(HOST_KEYS_DIR))?;
        let audit =
            Audit::open(&project_dir.join(&cfg.audit_log)).map_err(|source| StartError::Audit {
                path: cfg.audit_log.clone(),
                source,
            })?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Uploaded>();
        let dropbox = Arc::new(DropBox {
            users: Users::new(&project_dir.join(USERS_DIR)),
            store: store.clone(),
            uploads: tx,
            audit,
            throttle: Throttle::new(cfg.max_auth_failures, Duration::from_secs(cfg.ban_secs)),
            limits: server::Limits {
                max_file_bytes: cfg.max_file_mib << 20,
                quota_bytes: cfg.quota_mib << 20,
                max_sessions_per_user: cfg.max_sessions_per_user,
            },
            sessions: Default::default(),
        });
        let worker = tokio::spawn(DropBox::acknowledge(store, rx, loader));
        let idle = Duration::from_secs(cfg.idle_timeout_secs);
        dropbox.sweep_stale_parts(idle);
        let requeued = dropbox.requeue_unreported().await;
        Ok(SftpServer {
            dropbox,
            host_keys,
            worker,
            idle,
            grace: Duration::from_secs(cfg.shutdown_grace_secs),
            requeued,
        })
    }

    /// The host keys' fingerprints, as `ssh-keygen -lf` prints them.
    pub fn fingerprints(&self) -> Vec<String> {
        self.host_keys.fingerprints()
    }

    /// Serves on `listener` until `shutdown`; then accepts no new connection, gives
    /// open sessions the grace period to finish their uploads (uploads still open after
    /// it are discarded, never half-published), and lets the loads of finished uploads
    /// end within the same grace.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let config = server::ssh_config(&self.host_keys, self.idle);
        server::serve(listener, config, self.dropbox.clone(), shutdown).await?;
        self.dropbox.wait_for_sessions(self.grace).await;
        // The worker ends once the last sender of the upload channel (the drop-box's)
        // is gone.
        drop(self.dropbox);
        let _ = tokio::time::timeout(self.grace, self.worker).await;
        Ok(())
    }
}

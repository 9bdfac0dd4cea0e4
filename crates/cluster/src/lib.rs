//! The cluster roles of `citybooks scheduler` and `citybooks executor`: Apache
//! DataFusion Ballista 55's own scheduler and executor (the `ballista-scheduler` and
//! `ballista-executor` library crates, what the stock binaries run), started with the
//! stock binaries' flags and defaults, and given the project's store.
//!
//! What citybooks adds is only access to the store: the scheduler lists and reads
//! Parquet footers while it plans, the executors read the files. For a project on S3
//! both get the project's S3 client (endpoint and credentials from `citybooks.toml`,
//! else the usual AWS variables) registered for `s3://bucket`; a local store needs
//! nothing (every process reads `file://` paths, so they must share the folder).
//!
//! Queries reach the cluster from `citybooks-query` (its `Engine::Ballista`); nothing
//! here knows a ledger.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_executor::health::ExecutorHealth;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use citybooks_store::Store;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

/// A cluster role that could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{role}: {message}")]
    Start { role: &'static str, message: String },
    #[error("{role} stopped: {source}")]
    Ballista {
        role: &'static str,
        #[source]
        source: ballista_core::error::BallistaError,
    },
}

/// The flags of the stock `ballista-scheduler` that citybooks takes over.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Address to listen on (stock default 0.0.0.0).
    pub bind_host: String,
    /// gRPC port (stock default 50050; 0 picks a free one).
    pub bind_port: u16,
    /// The host name executors and clients reach the scheduler by.
    pub external_host: String,
    /// `push-staged` (default) or `pull-staged`; executors must use the same.
    pub pull_staged: bool,
    /// An executor silent for this long is lost and its tasks run elsewhere.
    pub executor_timeout_seconds: u64,
    /// How often the scheduler looks for lost executors.
    pub expire_dead_executor_interval_seconds: u64,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            bind_host: "0.0.0.0".into(),
            bind_port: 50050,
            external_host: "localhost".into(),
            pull_staged: false,
            executor_timeout_seconds: 180,
            expire_dead_executor_interval_seconds: 15,
        }
    }
}

/// The flags of the stock `ballista-executor` that citybooks takes over.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub scheduler_host: String,
    pub scheduler_port: u16,
    /// Address to listen on (stock default 0.0.0.0).
    pub bind_host: String,
    /// The host name the scheduler and clients reach this executor by (default: the
    /// address the scheduler sees it connect from).
    pub external_host: Option<String>,
    /// Arrow Flight port: results and shuffle data (stock default 50051).
    pub bind_port: u16,
    /// gRPC port for tasks pushed by the scheduler (stock default 50052).
    pub bind_grpc_port: u16,
    /// HTTP `/healthz` and `/readyz` (stock default 50053).
    pub bind_health_port: u16,
    /// Task slots (0: one per core).
    pub vcores: usize,
    /// Where shuffle files and spills go.
    pub work_dir: std::path::PathBuf,
    /// `pull-staged` to poll the scheduler for work instead of being pushed tasks.
    pub pull_staged: bool,
    /// Seconds between heartbeats to the scheduler (stock default 60).
    pub heartbeat_interval_seconds: u64,
    /// Seconds to keep retrying the scheduler at start (stock default 0: fail at once).
    pub scheduler_connect_timeout_seconds: u16,
}

fn policy(pull_staged: bool) -> TaskSchedulingPolicy {
    if pull_staged {
        TaskSchedulingPolicy::PullStaged
    } else {
        TaskSchedulingPolicy::PushStaged
    }
}

/// A runtime that reads the store's files by their URLs.
fn runtime(
    store: Option<&Store>,
    work_dir: Option<&std::path::Path>,
) -> datafusion::error::Result<Arc<RuntimeEnv>> {
    let mut builder = RuntimeEnvBuilder::new();
    if let Some(dir) = work_dir {
        builder = builder.with_temp_file_path(dir);
    }
    let runtime = builder.build()?;
    if let Some(store) = store {
        if let Some(url) = store.bucket_url() {
            runtime.register_object_store(&url, store.object_store());
        }
    }
    Ok(Arc::new(runtime))
}

/// Runs a Ballista scheduler until `shutdown` completes. `on_listening` gets the
/// address it listens on (the port, when 0 was asked for).
pub async fn run_scheduler(
    options: SchedulerOptions,
    store: Option<Store>,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ClusterError> {
    let start = |message: String| ClusterError::Start {
        role: "scheduler",
        message,
    };
    // Bind first, so a busy port is reported at once and port 0 works.
    let listener = tokio::net::TcpListener::bind((options.bind_host.as_str(), options.bind_port))
        .await
        .map_err(|e| {
            start(format!(
                "cannot listen on {}:{}: {e}",
                options.bind_host, options.bind_port
            ))
        })?;
    let addr = listener.local_addr().map_err(|e| start(e.to_string()))?;
    let store = Arc::new(store);
    let session_builder = move |config: SessionConfig| {
        let state = ballista_core::utils::default_session_builder(config)?;
        Ok(SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(runtime(store.as_ref().as_ref(), None)?)
            .build())
    };
    let config = SchedulerConfig {
        bind_host: options.bind_host.clone(),
        executor_timeout_seconds: options.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: options.expire_dead_executor_interval_seconds,
        no_executors_grace_period_seconds: options.executor_timeout_seconds,
        ..SchedulerConfig::default()
    }
    .with_hostname(options.external_host.clone())
    .with_port(addr.port())
    .with_scheduler_policy(policy(options.pull_staged))
    .with_override_session_builder(Arc::new(session_builder));
    config.validate().map_err(|source| ClusterError::Ballista {
        role: "scheduler",
        source,
    })?;
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|source| ClusterError::Ballista {
            role: "scheduler",
            source,
        })?;
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config))
            .await
            .map_err(|source| ClusterError::Ballista {
                role: "scheduler",
                source,
            })?;
    on_listening(addr);
    let serve = start_grpc_service_with_listener(listener, scheduler);
    tokio::select! {
        result = serve => result.map_err(|source| ClusterError::Ballista { role: "scheduler", source }),
        () = shutdown => Ok(()),
    }
}

/// Runs a Ballista executor until it is stopped (Ctrl-C or SIGTERM: it then tells the
/// scheduler and finishes its running tasks, as the stock executor does).
pub async fn run_executor(
    options: ExecutorOptions,
    store: Option<Store>,
) -> Result<(), ClusterError> {
    let start = |message: String| ClusterError::Start {
        role: "executor",
        message,
    };
    std::fs::create_dir_all(&options.work_dir)
        .map_err(|e| start(format!("work dir {}: {e}", options.work_dir.display())))?;
    let health = ExecutorHealth::new();
    let health_listener =
        tokio::net::TcpListener::bind((options.bind_host.as_str(), options.bind_health_port))
            .await
            .map_err(|e| {
                start(format!(
                    "cannot listen on {}:{} (health): {e}",
                    options.bind_host, options.bind_health_port
                ))
            })?;
    tokio::spawn(serve_health(health_listener, health.clone()));
    let store = Arc::new(store);
    let work_dir = options.work_dir.clone();
    let producer = move |_: &SessionConfig| runtime(store.as_ref().as_ref(), Some(&work_dir));
    let config = ExecutorProcessConfig {
        bind_host: options.bind_host.clone(),
        external_host: options.external_host.clone(),
        port: options.bind_port,
        grpc_port: options.bind_grpc_port,
        scheduler_host: options.scheduler_host.clone(),
        scheduler_port: options.scheduler_port,
        scheduler_connect_timeout_seconds: options.scheduler_connect_timeout_seconds,
        vcores: options.vcores,
        task_scheduling_policy: policy(options.pull_staged),
        work_dir: Some(options.work_dir.display().to_string()),
        executor_heartbeat_interval_seconds: options.heartbeat_interval_seconds,
        override_runtime_producer: Some(Arc::new(producer)),
        health,
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|source| ClusterError::Ballista {
            role: "executor",
            source,
        })
}

/// `/healthz` (the process is up) and `/readyz` (its last heartbeat reached the
/// scheduler), as the stock executor serves them.
async fn serve_health(listener: tokio::net::TcpListener, health: ExecutorHealth) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let router = axum::Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route(
            "/readyz",
            get(move || {
                let ready = health.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        );
    if let Err(e) = axum::serve(listener, router).await {
        tracing::warn!("executor health server stopped: {e}");
    }
}

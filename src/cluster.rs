//! `citybooks scheduler` and `citybooks executor`: the Ballista cluster roles, with
//! the stock `ballista-scheduler` / `ballista-executor` 55 flags and defaults. Wiring
//! only: the roles live in crates/cluster.

use std::path::{Path, PathBuf};

use anyhow::Result;
use citybooks_cluster::{ExecutorOptions, SchedulerOptions};
use citybooks_store::{Project, ProjectError, Store};

/// Flags of `citybooks scheduler` (those of the stock `ballista-scheduler`).
#[derive(clap::Args, Debug, Clone)]
pub struct SchedulerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_host: String,
    /// gRPC port for clients and executors (0 picks a free one).
    #[arg(long, short = 'p', default_value_t = 50050)]
    pub bind_port: u16,
    /// The host name executors and clients reach the scheduler by.
    #[arg(long, default_value = "localhost")]
    pub external_host: String,
    /// Task scheduling policy: push-staged or pull-staged (executors must match).
    #[arg(long, short = 's', default_value = "push-staged", value_parser = ["push-staged", "pull-staged"])]
    pub scheduler_policy: String,
    /// Seconds without a heartbeat after which an executor is lost and its tasks run
    /// elsewhere.
    #[arg(long, default_value_t = 180)]
    pub executor_timeout_seconds: u64,
    /// How often to look for lost executors, in seconds.
    #[arg(long, default_value_t = 15)]
    pub expire_dead_executor_interval_seconds: u64,
}

/// Flags of `citybooks executor` (those of the stock `ballista-executor`).
#[derive(clap::Args, Debug, Clone)]
pub struct ExecutorArgs {
    /// Host of the scheduler.
    #[arg(long, default_value = "localhost")]
    pub scheduler_host: String,
    /// Port of the scheduler.
    #[arg(long, default_value_t = 50050)]
    pub scheduler_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_host: String,
    /// The host name the scheduler and clients reach this executor by (default: the
    /// address the scheduler sees).
    #[arg(long)]
    pub external_host: Option<String>,
    /// Arrow Flight port: query results and shuffle data.
    #[arg(long, short = 'p', default_value_t = 50051)]
    pub bind_port: u16,
    /// gRPC port for tasks the scheduler pushes.
    #[arg(long, default_value_t = 50052)]
    pub bind_grpc_port: u16,
    /// HTTP port of /healthz and /readyz.
    #[arg(long, default_value_t = 50053)]
    pub bind_health_port: u16,
    /// Task slots (0: one per core).
    #[arg(long, short = 'c', default_value_t = 0)]
    pub vcores: usize,
    /// Folder for shuffle files and spills (default: a folder under the system's temp).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Task scheduling policy: push-staged or pull-staged (as the scheduler).
    #[arg(long, short = 's', default_value = "push-staged", value_parser = ["push-staged", "pull-staged"])]
    pub task_scheduling_policy: String,
    /// Seconds between heartbeats to the scheduler.
    #[arg(long, default_value_t = 60)]
    pub executor_heartbeat_interval_seconds: u64,
    /// Seconds to keep trying the scheduler at start (0: fail at once).
    #[arg(long, default_value_t = 0)]
    pub scheduler_connect_timeout_seconds: u16,
}

/// The store the roles read: the project's, if there is a project (its [store], with
/// CITYBOOKS_STORE_* overrides); without one, only file:// paths can be read.
fn store(flag: Option<&Path>) -> Result<Option<Store>> {
    let dir = flag
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    match Project::open(&dir) {
        Ok(project) => {
            let store = project.store()?;
            println!("store: {}", store.root());
            Ok(Some(store))
        }
        Err(ProjectError::NotAProject { .. }) => {
            println!("store: none (no citybooks.toml here): only local files can be read");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs the scheduler until Ctrl-C / SIGTERM.
pub async fn scheduler(project: Option<&Path>, args: SchedulerArgs) -> Result<()> {
    let store = store(project)?;
    let options = SchedulerOptions {
        bind_host: args.bind_host,
        bind_port: args.bind_port,
        external_host: args.external_host,
        pull_staged: args.scheduler_policy == "pull-staged",
        executor_timeout_seconds: args.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: args.expire_dead_executor_interval_seconds,
    };
    citybooks_cluster::run_scheduler(
        options,
        store,
        |addr| {
            println!("Ballista scheduler listening on {addr}");
            println!("ready");
        },
        crate::stop_signal(),
    )
    .await?;
    println!("scheduler stopped");
    Ok(())
}

/// Runs an executor until Ctrl-C / SIGTERM.
pub async fn executor(project: Option<&Path>, args: ExecutorArgs) -> Result<()> {
    let store = store(project)?;
    let work_dir = args.work_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("citybooks-executor-{}", args.bind_port))
    });
    println!(
        "Ballista executor: scheduler {}:{}, Flight port {}, gRPC port {}, health port {}, work dir {}",
        args.scheduler_host,
        args.scheduler_port,
        args.bind_port,
        args.bind_grpc_port,
        args.bind_health_port,
        work_dir.display()
    );
    let options = ExecutorOptions {
        scheduler_host: args.scheduler_host,
        scheduler_port: args.scheduler_port,
        bind_host: args.bind_host,
        external_host: args.external_host,
        bind_port: args.bind_port,
        bind_grpc_port: args.bind_grpc_port,
        bind_health_port: args.bind_health_port,
        vcores: args.vcores,
        work_dir,
        pull_staged: args.task_scheduling_policy == "pull-staged",
        heartbeat_interval_seconds: args.executor_heartbeat_interval_seconds,
        scheduler_connect_timeout_seconds: args.scheduler_connect_timeout_seconds,
    };
    citybooks_cluster::run_executor(options, store).await?;
    println!("executor stopped");
    Ok(())
}

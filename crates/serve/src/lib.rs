//! The long-running citybooks process (`citybooks serve`, and the serving part of
//! `citybooks demo`), and the jobs it shares with the command line.
//!
//! [`serve`] binds every enabled port first (a port in use stops the process before any
//! part starts), then starts each server in its own task, and stops them all at one
//! shutdown. Each server has the same shape, `start(&Shared, ..., listener)` returning
//! a task that ends after the [`Shared`] shutdown:
//!
//! | module | server | built from |
//! | --- | --- | --- |
//! | [`sql`] | the PostgreSQL wire protocol | `[sql]`, `sql-users/`, citybooks-server's `PgServer` |
//! | [`http`] | the HTTP API and dashboard | `[http]`, citybooks-server's router |
//! | [`sftp`] | the drop-box, and its upload → load → publish worker | `[sftp]`, `users/`, `keys/`, citybooks-sftp |
//! | [`refresh`] | the scheduled fetch → load → publish | `[fetch] schedule`, citybooks-fetch |
//!
//! [`jobs`] holds what a server and a command both run: fetch then load, publish after
//! a load.

pub mod http;
pub mod jobs;
pub mod refresh;
pub mod sftp;
pub mod sql;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use citybooks_server::{Live, Metrics, SqlUsers};
use citybooks_store::Project;
use citybooks_warehouse::Warehouse;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running server: ends after the shutdown, with its error if it failed.
pub type Task = JoinHandle<Result<()>>;

/// Ports given on the command line (None: the config's). 0 picks a free port.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Ports {
    /// TCP port of the SFTP drop-box (default: [sftp] port, 2222).
    #[arg(long)]
    pub sftp_port: Option<u16>,
    /// TCP port of the PostgreSQL wire protocol (default: [sql] port, 5439).
    #[arg(long)]
    pub sql_port: Option<u16>,
    /// TCP port of the HTTP API and web dashboard (default: [http] port, 8080).
    #[arg(long)]
    pub http_port: Option<u16>,
}

/// The SQL login `citybooks demo` made, printed as a ready psql command line.
pub struct DemoLogin {
    pub user: &'static str,
    pub password: String,
}

/// The three listeners, bound before anything starts; None where a server is disabled.
struct Listeners {
    sftp: Option<TcpListener>,
    sql: Option<TcpListener>,
    http: Option<TcpListener>,
}

impl Listeners {
    /// Binds every enabled server's port. The demo (`local_only`) listens on 127.0.0.1
    /// whatever the config says.
    async fn bind(project: &Project, ports: &Ports, local_only: bool) -> Result<Listeners> {
        let cfg = &project.config;
        let wanted = [
            (
                "SFTP",
                cfg.sftp.enabled,
                &cfg.sftp.listen,
                ports.sftp_port.unwrap_or(cfg.sftp.port),
            ),
            (
                "SQL",
                cfg.sql.enabled,
                &cfg.sql.listen,
                ports.sql_port.unwrap_or(cfg.sql.port),
            ),
            (
                "HTTP",
                cfg.http.enabled,
                &cfg.http.listen,
                ports.http_port.unwrap_or(cfg.http.port),
            ),
        ];
        let mut bound = Vec::new();
        for (what, enabled, listen, port) in wanted {
            let listen = if local_only { "127.0.0.1" } else { listen };
            bound.push(match enabled {
                true => Some(TcpListener::bind((listen, port)).await.with_context(|| {
                    format!("{what}: cannot listen on {listen}:{port} (in use? choose another port in citybooks.toml or on the command line)")
                })?),
                false => None,
            });
        }
        let [sftp, sql, http] = bound.try_into().expect("three servers");
        if sftp.is_none() && sql.is_none() && http.is_none() {
            bail!("nothing to serve: [sftp], [sql] and [http] are all disabled (enabled = false) in citybooks.toml");
        }
        Ok(Listeners { sftp, sql, http })
    }
}

/// What every server of one process shares: the project, the metrics they count into,
/// and the shutdown they all end at.
pub struct Shared<'a> {
    pub project: &'a Project,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
}

/// Serves `project` until `stop` completes (the binary passes Ctrl-C / SIGTERM), then
/// shuts every server down and waits for them.
pub async fn serve(
    project: &Project,
    ports: &Ports,
    demo: Option<DemoLogin>,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    let bound = Listeners::bind(project, ports, demo.is_some()).await?;
    let wh = warehouse(project)?;
    let shared = Shared {
        project,
        metrics: Arc::new(Metrics::default()),
        shutdown: CancellationToken::new(),
    };
    let mut tasks: Vec<Task> = Vec::new();
    if let Some(listener) = bound.sftp {
        tasks.push(sftp::start(&shared, &wh, listener).await?);
    }
    if bound.sql.is_some() || bound.http.is_some() {
        let live = live(project, &wh).await?;
        if let Some(listener) = bound.sql {
            tasks.push(sql::start(&shared, &live, listener, demo.as_ref())?);
        }
        if let Some(listener) = bound.http {
            tasks.push(http::start(&shared, &live, listener)?);
        }
    }
    tasks.extend(refresh::start(&shared)?);
    println!("ready (Ctrl-C stops)");

    stop.await;
    shared.shutdown.cancel();
    for task in tasks {
        task.await.context("a server task panicked")??;
    }
    println!("stopped");
    Ok(())
}

/// The warehouse of `project`.
pub fn warehouse(project: &Project) -> Result<Warehouse> {
    Ok(Warehouse::new(
        project.store()?,
        project.config.load.clone(),
    ))
}

/// The live view the SQL and HTTP servers share: the engine `[query]` names, the SQL
/// users, and the memory budget of `[sql]` with its watchdog.
async fn live(project: &Project, wh: &Warehouse) -> Result<Arc<Live>> {
    let cfg = &project.config;
    let engine = citybooks_query::Engine::from_config(&cfg.query)?;
    if let citybooks_query::Engine::Ballista(cluster) = &engine {
        println!(
            "queries of report.* run on the Ballista cluster at {}",
            cluster.url
        );
    }
    let live = Live::open(
        wh.clone(),
        engine,
        SqlUsers::of_project(project),
        citybooks_query::budget::Budget::from_config(&cfg.sql),
        cfg.sql.table_memory_mib,
    )
    .await?;
    live.budget().spawn_watchdog();
    Ok(live)
}

/// Where a person on this machine reaches an address.
fn shown_host(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    }
}

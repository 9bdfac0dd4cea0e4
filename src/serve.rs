//! `citybooks serve` (and the serving part of `citybooks demo`): the SFTP drop-box,
//! the PostgreSQL wire protocol and the HTTP API with the dashboard, around one
//! warehouse, with one shutdown. Wiring only: the servers live in crates/sftp and
//! crates/server.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use citybooks_server::{tls_acceptor, HttpOptions, Live, Metrics, PgOptions, PgServer, SqlUsers};
use citybooks_sftp::{guard, server, HostKeys, Users};
use citybooks_store::Project;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{warehouse, HOST_KEYS_DIR, USERS_DIR};

/// Folder of a project holding the SQL users' SCRAM verifiers.
const SQL_USERS_DIR: &str = "sql-users";

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

/// The project's SQL users.
pub fn sql_users(project: &Project) -> SqlUsers {
    SqlUsers::new(project.dir.join(SQL_USERS_DIR))
        .keeping_md5(project.config.sql.password_auth == citybooks_store::config::PasswordAuth::Md5)
}

/// A password of 20 letters and digits.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..20)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn bind(listen: &str, port: u16, what: &str) -> Result<TcpListener> {
    TcpListener::bind((listen, port)).await.with_context(|| {
        format!("{what}: cannot listen on {listen}:{port} (in use? choose another port in citybooks.toml or on the command line)")
    })
}

/// The SQL login `citybooks demo` made, printed as a ready psql command line.
pub struct DemoLogin {
    pub user: &'static str,
    pub password: String,
}

/// Serves until Ctrl-C / SIGTERM. The demo (`demo` is Some) listens on 127.0.0.1
/// whatever the config says.
pub async fn serve(project: &Project, ports: &Ports, demo: Option<DemoLogin>) -> Result<()> {
    let local_only = demo.is_some();
    let cfg = &project.config;
    let listen = |configured: &str| {
        if local_only {
            "127.0.0.1".to_string()
        } else {
            configured.to_string()
        }
    };
    // Bind everything first: a port in use stops the server before any part starts.
    let mut bound = Vec::new();
    for (what, enabled, configured, port, given) in [
        (
            "SFTP",
            cfg.sftp.enabled,
            &cfg.sftp.listen,
            cfg.sftp.port,
            ports.sftp_port,
        ),
        (
            "SQL",
            cfg.sql.enabled,
            &cfg.sql.listen,
            cfg.sql.port,
            ports.sql_port,
        ),
        (
            "HTTP",
            cfg.http.enabled,
            &cfg.http.listen,
            cfg.http.port,
            ports.http_port,
        ),
    ] {
        bound.push(match enabled {
            true => Some(bind(&listen(configured), given.unwrap_or(port), what).await?),
            false => None,
        });
    }
    let [sftp, sql, http]: [Option<TcpListener>; 3] =
        bound.try_into().expect("three servers were bound");
    if sftp.is_none() && sql.is_none() && http.is_none() {
        bail!("nothing to serve: [sftp], [sql] and [http] are all disabled (enabled = false) in citybooks.toml");
    }
    let wh = warehouse(project)?;
    let engine = citybooks_query::Engine::from_config(&cfg.query)?;
    if let citybooks_query::Engine::Ballista(cluster) = &engine {
        println!(
            "queries of report.* run on the Ballista cluster at {}",
            cluster.url
        );
    }
    let metrics = Arc::new(Metrics::default());
    let shutdown = CancellationToken::new();
    let mut tasks: Vec<JoinHandle<Result<()>>> = Vec::new();

    if let Some(listener) = sftp {
        tasks.push(sftp_server(project, &wh, listener, metrics.clone(), shutdown.clone()).await?);
    }
    let live = match sql.is_some() || http.is_some() {
        true => Some(
            Live::open(
                wh.clone(),
                engine,
                sql_users(project),
                citybooks_query::budget::Budget::from_config(&cfg.sql),
            )
            .await?,
        ),
        false => None,
    };
    if let Some(live) = &live {
        live.budget().spawn_watchdog();
    }
    if let (Some(listener), Some(live)) = (sql, &live) {
        tasks.push(sql_server(
            project,
            live,
            listener,
            &metrics,
            shutdown.clone(),
            demo.as_ref(),
        )?);
    }
    if let (Some(listener), Some(live)) = (http, &live) {
        tasks.push(http_server(
            project,
            live,
            listener,
            &metrics,
            shutdown.clone(),
        )?);
    }
    tasks.extend(refresh_task(project, shutdown.clone())?);
    println!("ready (Ctrl-C stops)");

    stop_signal().await;
    shutdown.cancel();
    for task in tasks {
        task.await.context("a server task panicked")??;
    }
    println!("stopped");
    Ok(())
}

/// Starts the PostgreSQL wire protocol on `listener`; the task ends at `shutdown`.
fn sql_server(
    project: &Project,
    live: &Arc<Live>,
    listener: TcpListener,
    metrics: &Arc<Metrics>,
    shutdown: CancellationToken,
    demo: Option<&DemoLogin>,
) -> Result<JoinHandle<Result<()>>> {
    let cfg = &project.config;
    // Both files or neither: the configuration checked that.
    let tls = match (&cfg.sql.tls_cert, &cfg.sql.tls_key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(
            &project.dir.join(cert),
            &project.dir.join(key),
        )?),
        _ => None,
    };
    let tls_note = if tls.is_some() { ", TLS" } else { "" };
    let server = PgServer::new(
        live.clone(),
        sql_users(project),
        tls,
        PgOptions {
            statement_timeout: Duration::from_secs(cfg.sql.statement_timeout_secs),
            max_connections: cfg.sql.max_connections,
            tls_required: cfg.sql.tls_required,
            password_auth: cfg.sql.password_auth,
        },
        metrics.clone(),
    )?;
    let addr = listener.local_addr()?;
    println!("citybooks SQL (PostgreSQL protocol{tls_note}) listening on {addr}");
    match demo {
        Some(login) => println!(
            "  psql: PGPASSWORD={} psql -h {} -p {} -U {} -d citybooks",
            login.password,
            shown_host(addr),
            addr.port(),
            login.user
        ),
        None => println!(
            "  connect with: psql -h {} -p {} -U USER -d citybooks   (users: citybooks sql-user add USER)",
            shown_host(addr),
            addr.port()
        ),
    }
    Ok(tokio::spawn(async move {
        server.serve(listener, shutdown.cancelled_owned()).await;
        Ok(())
    }))
}

/// Starts the HTTP API and dashboard on `listener`; the task ends at `shutdown`.
fn http_server(
    project: &Project,
    live: &Arc<Live>,
    listener: TcpListener,
    metrics: &Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<JoinHandle<Result<()>>> {
    let cfg = &project.config;
    let options = HttpOptions {
        token: cfg.http.token.clone(),
        row_limit: cfg.http.row_limit,
        timeout: Duration::from_secs(cfg.http.timeout_secs),
        assets_dir: cfg.http.assets_dir.as_ref().map(|d| project.dir.join(d)),
        cache: cfg.http.cache,
    };
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

/// Starts the scheduled refresh of `[fetch] schedule`, if one is set; the task ends at
/// `shutdown`.
fn refresh_task(
    project: &Project,
    shutdown: CancellationToken,
) -> Result<Option<JoinHandle<Result<()>>>> {
    let cfg = &project.config;
    let Some(schedule) = &cfg.fetch.schedule else {
        return Ok(None);
    };
    let schedule = citybooks_fetch::Schedule::parse(schedule).map_err(anyhow::Error::msg)?;
    let next = schedule
        .next_after(chrono::Local::now())
        .map_or_else(|| "never".to_string(), |t| t.to_rfc3339());
    println!(
        "scheduled refresh of the current fiscal year from {}: {} (next {next})",
        cfg.fetch.portal,
        schedule.as_str()
    );
    let project = project.clone();
    Ok(Some(tokio::spawn(async move {
        let dir = project.dir.clone();
        let first = Duration::from_millis(project.config.fetch.backoff_ms.max(1));
        let max = Duration::from_secs(project.config.fetch.retry_max_secs.max(1));
        citybooks_fetch::schedule::run(
            schedule,
            dir,
            first,
            max,
            || refresh(&project),
            shutdown.cancelled_owned(),
        )
        .await;
        Ok(())
    })))
}

/// One scheduled refresh: fetch the current fiscal year and load it. The previous
/// warehouse stays live whatever happens (a load commits atomically or not at all).
async fn refresh(project: &Project) -> std::result::Result<String, String> {
    let year = crate::fetching::current_fiscal_year();
    match crate::fetching::fetch_and_load(project, citybooks_fetch::Years::One(year), None, false)
        .await
    {
        Ok((fetched, report)) => {
            if report.status == citybooks_warehouse::LoadStatus::Loaded {
                match crate::warehouse(project) {
                    Ok(wh) => crate::publishing::after_load(project, &wh).await,
                    Err(e) => println!("publish: {e:#}"),
                }
            }
            let summary = format!(
                "fiscal year {year}: {} rows fetched, load {} {:?} ({} loaded, {} quarantined)",
                fetched.rows,
                report.load_id,
                report.status,
                report.rows_loaded,
                report.rows_quarantined
            )
            .to_lowercase();
            match &report.hold {
                Some(hold) => Err(format!("{summary}: {hold}")),
                None => Ok(summary),
            }
        }
        Err(e) => Err(format!("fiscal year {year}: {e:#}")),
    }
}

/// Where a person on this machine reaches an address.
fn shown_host(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    }
}

/// Loads the drop-box's finished uploads into the warehouse: counts them, prints one
/// line each, and publishes a load that committed.
struct UploadLoader {
    warehouse: citybooks_warehouse::Warehouse,
    project: Project,
    metrics: Arc<Metrics>,
}

impl server::LoadUpload for UploadLoader {
    async fn load(&self, up: &server::Uploaded) -> String {
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
                if r.status == citybooks_warehouse::LoadStatus::Loaded {
                    crate::publishing::after_load(&self.project, &self.warehouse).await;
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

/// Starts the SFTP drop-box and its after-upload loader; the task ends after the
/// shutdown's grace period.
async fn sftp_server(
    project: &Project,
    wh: &citybooks_warehouse::Warehouse,
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<JoinHandle<Result<()>>> {
    let cfg = project.config.sftp.clone();
    let host_keys = HostKeys::ensure(&project.dir.join(HOST_KEYS_DIR))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<server::Uploaded>();
    let dropbox = Arc::new(server::DropBox {
        users: Users::new(&project.dir.join(USERS_DIR)),
        store: wh.store().clone(),
        uploads: tx,
        audit: guard::Audit::open(&project.dir.join(&cfg.audit_log))
            .with_context(|| format!("opening the audit log {}", cfg.audit_log))?,
        throttle: guard::Throttle::new(cfg.max_auth_failures, Duration::from_secs(cfg.ban_secs)),
        limits: server::Limits {
            max_file_bytes: cfg.max_file_mib << 20,
            quota_bytes: cfg.quota_mib << 20,
            max_sessions_per_user: cfg.max_sessions_per_user,
        },
        sessions: Default::default(),
    });
    println!("citybooks SFTP drop-box listening on {addr}");
    for fp in host_keys.fingerprints() {
        println!("  host key {fp}");
    }
    println!(
        "  upload with: sftp -P {} -i KEY USER@HOST   then   put data/*.csv",
        addr.port()
    );
    // The after-upload queue: one load at a time, in arrival order; each committed
    // load is then published to [publish] target, if one is set.
    let worker = tokio::spawn(server::DropBox::acknowledge(
        wh.store().clone(),
        rx,
        UploadLoader {
            warehouse: wh.clone(),
            project: project.clone(),
            metrics,
        },
    ));
    dropbox.sweep_stale_parts(Duration::from_secs(cfg.idle_timeout_secs));
    let requeued = dropbox.requeue_unreported().await;
    if requeued > 0 {
        println!(
            "  {requeued} upload(s) have no load report (the server stopped before loading them): queued again"
        );
    }
    let config = server::ssh_config(&host_keys, Duration::from_secs(cfg.idle_timeout_secs));
    Ok(tokio::spawn(async move {
        server::serve(
            listener,
            config,
            dropbox.clone(),
            shutdown.cancelled_owned(),
        )
        .await?;
        // No new connections from here on; open sessions get the grace period to finish
        // their uploads. Uploads still open after it are discarded, never half-published.
        let grace = Duration::from_secs(cfg.shutdown_grace_secs);
        dropbox.wait_for_sessions(grace).await;
        // Let the loads of finished uploads end, and aborted uploads clean up.
        drop(dropbox);
        let _ = tokio::time::timeout(grace, worker).await;
        Ok(())
    }))
}

pub async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

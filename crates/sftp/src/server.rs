//! The SSH server: public-key logins against [`Users`], bans of addresses that fail
//! too often, a limit of SFTP sessions per user, and one SFTP subsystem
//! ([`crate::session`]) per admitted session. What the connections share is the
//! [`DropBox`]; finished `.csv` uploads leave it as [`Uploaded`] for the loader.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use citybooks_store::Store;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::sync::mpsc;

use crate::guard::{Audit, Event, Operation, Outcome, Throttle};
use crate::hostkeys::HostKeys;
use crate::paths::REPORT_SUFFIX;
use crate::session::Sftp;
use crate::users::Users;

/// A finished upload of a `.csv` file: the user and the store path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub user: String,
    pub path: String,
}

/// What the server shares between connections.
pub struct DropBox {
    pub users: Users,
    pub store: Store,
    pub uploads: mpsc::UnboundedSender<Uploaded>,
    pub audit: Audit,
    pub throttle: Throttle,
    pub limits: Limits,
    /// Open SFTP sessions per user.
    pub sessions: std::sync::Mutex<HashMap<String, u32>>,
}

impl DropBox {
    /// Open SFTP sessions, all users together.
    pub fn open_sessions(&self) -> u32 {
        self.sessions.lock().map(|s| s.values().sum()).unwrap_or(0)
    }

    /// The `.csv` uploads in the users' homes that have no load report beside them: the
    /// server stopped (or was killed) after publishing them and before their load
    /// reported. The report is an upload's acknowledgement, so serve queues these again
    /// when it starts; one whose content is already in the warehouse is found unchanged
    /// and gets its report. Oldest first, by user.
    pub async fn unreported_uploads(&self) -> Vec<Uploaded> {
        let users = match self.users.list() {
            Ok(users) => users,
            Err(e) => {
                tracing::warn!("listing the SFTP users to find unreported uploads: {e}");
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for (user, _) in users {
            let home = match self.store.list(&format!("raw/{user}")).await {
                Ok(home) => home,
                Err(e) => {
                    tracing::warn!("listing raw/{user} to find unreported uploads: {e}");
                    continue;
                }
            };
            let names: std::collections::HashSet<&str> =
                home.iter().map(|(name, _)| name.as_str()).collect();
            let mut unreported: Vec<&str> = names
                .iter()
                .copied()
                .filter(|name| name.to_ascii_lowercase().ends_with(".csv"))
                .filter(|name| !names.contains(format!("{name}{REPORT_SUFFIX}").as_str()))
                .collect();
            unreported.sort_unstable();
            found.extend(unreported.into_iter().map(|path| Uploaded {
                user: user.clone(),
                path: path.to_string(),
            }));
        }
        found
    }
}

/// Loads a finished upload for the after-upload queue ([`DropBox::acknowledge`]):
/// citybooks-serve implements it with the warehouse (this crate does not touch it).
pub trait LoadUpload: Send + Sync + 'static {
    /// Loads `upload`; returns the load's report as JSON text (a failure too, as
    /// `{"status": "failed", "error": ...}`), which the uploader finds beside the file.
    fn load(&self, upload: &Uploaded) -> impl std::future::Future<Output = String> + Send;
}

impl DropBox {
    /// The after-upload queue: loads each finished `.csv` upload with `loader`, one at a
    /// time in arrival order, and writes its report beside it as `<file>.load.json` —
    /// the uploader's acknowledgement. Ends when every sender of `uploads` is gone.
    pub async fn acknowledge(
        store: Store,
        mut uploads: mpsc::UnboundedReceiver<Uploaded>,
        loader: impl LoadUpload,
    ) {
        while let Some(upload) = uploads.recv().await {
            let json = loader.load(&upload).await;
            let rel = format!("{}{REPORT_SUFFIX}", upload.path);
            if let Err(e) = store.put_stream(&rel, json.as_bytes(), |_| {}).await {
                tracing::error!("cannot write the load report {rel}: {e}");
                eprintln!("citybooks: cannot write {rel}: {e}");
            }
        }
    }

    /// Removes, every `idle`, the parts of uploads a killed server left in a local
    /// store: never visible, only disk; a live upload writes its part every MiB, so
    /// parts older than `idle` are dead. (On S3 a bucket lifecycle rule reclaims
    /// unfinished uploads: nothing runs there.) Runs until the runtime stops.
    pub fn sweep_stale_parts(&self, idle: Duration) {
        let store = self.store.clone();
        if store.local_dir().is_none() {
            return;
        }
        tokio::spawn(async move {
            let mut every = tokio::time::interval(idle);
            loop {
                every.tick().await;
                let sweep = store.clone();
                let removed =
                    tokio::task::spawn_blocking(move || sweep.remove_stale_parts("raw", idle))
                        .await
                        .unwrap_or(0);
                if removed > 0 {
                    println!(
                        "removed {removed} part(s) of uploads a stopped server never finished"
                    );
                }
            }
        });
    }

    /// Waits until no SFTP session is open, or `grace` has passed; says how many it
    /// waits for.
    pub async fn wait_for_sessions(&self, grace: Duration) {
        let deadline = std::time::Instant::now() + grace;
        let open = self.open_sessions();
        if open > 0 {
            println!(
                "shutting down: waiting up to {}s for {open} open session(s)",
                grace.as_secs()
            );
        }
        while self.open_sessions() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Queues again every upload that has no load report ([`DropBox::unreported_uploads`]);
    /// returns how many.
    pub async fn requeue_unreported(&self) -> usize {
        let unreported = self.unreported_uploads().await;
        let n = unreported.len();
        for upload in unreported {
            let _ = self.uploads.send(upload);
        }
        n
    }
}

/// Per-file, per-user and per-session limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub quota_bytes: u64,
    pub max_sessions_per_user: u32,
}

/// SSH server settings: public-key authentication only.
pub fn ssh_config(host_keys: &HostKeys, idle: Duration) -> russh::server::Config {
    russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        keys: host_keys.keys.clone(),
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: Some(idle),
        ..Default::default()
    }
}

/// Accepts connections on `listener` until `shutdown` completes. Each connection runs
/// in its own task, so sessions already open outlive the accept loop and can finish
/// their uploads (`DropBox::open_sessions` tells when they have).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: russh::server::Config,
    dropbox: Arc<DropBox>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let config = Arc::new(config);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let handler = Connection {
                    dropbox: dropbox.clone(),
                    user: None,
                    peer: Some(peer),
                    channels: HashMap::new(),
                };
                let config = config.clone();
                let idle = config.inactivity_timeout.unwrap_or_default();
                tokio::spawn(async move {
                    match russh::server::run_stream(config, socket, handler).await {
                        Ok(session) => match session.await {
                            Ok(()) => {}
                            Err(ServerError::Ssh(russh::Error::InactivityTimeout)) => {
                                tracing::info!(
                                    %peer,
                                    "closed a connection idle for {} s ([sftp] idle_timeout_secs)",
                                    idle.as_secs()
                                );
                            }
                            Err(e) => tracing::debug!(%peer, "session ended: {e}"),
                        },
                        Err(e) => tracing::debug!(%peer, "handshake failed: {e}"),
                    }
                });
            }
        }
    }
}

/// One SSH connection.
pub struct Connection {
    dropbox: Arc<DropBox>,
    user: Option<String>,
    peer: Option<SocketAddr>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl Connection {
    /// Records what happened to `user`'s login or session in the audit log.
    fn audit(&self, user: &str, operation: Operation, outcome: Outcome) {
        self.dropbox.audit.record(Event {
            user,
            client: self.peer,
            operation,
            path: "",
            bytes: 0,
            outcome,
        });
    }

    /// Whether the client's address is banned (and records the attempt if so).
    fn banned(&self, user: &str) -> bool {
        let banned = self
            .peer
            .is_some_and(|p| self.dropbox.throttle.banned(p.ip()));
        if banned {
            self.audit(
                user,
                Operation::Login,
                Outcome::Refused("address banned".into()),
            );
        }
        banned
    }

    /// Records a failed authentication and counts it towards a ban.
    fn refused(&self, user: &str, method: &str, why: &str) {
        tracing::warn!(user, peer = ?self.peer, method, why, "authentication refused");
        let outcome = Outcome::RefusedLogin {
            method: method.into(),
            why: why.into(),
        };
        self.audit(user, Operation::Login, outcome);
        if let Some(peer) = self.peer {
            if self.dropbox.throttle.failed(peer.ip()) {
                tracing::warn!(peer = %peer.ip(), "address banned after repeated failures");
                self.audit(user, Operation::Ban, Outcome::Banned);
            }
        }
    }
}

/// Errors that end a connection.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
}

impl russh::server::Handler for Connection {
    type Error = ServerError;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.banned(user) {
            return Ok(Auth::reject());
        }
        if self.dropbox.users.authorizes(user, offer.public_key) {
            return Ok(Auth::Accept);
        }
        self.refused(user, "publickey", "key not authorized");
        Ok(Auth::reject())
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.banned(user) {
            return Ok(Auth::reject());
        }
        if self.dropbox.users.authorizes(user, key.public_key) {
            if let Some(peer) = self.peer {
                self.dropbox.throttle.succeeded(peer.ip());
            }
            self.audit(user, Operation::Login, Outcome::Ok);
            self.user = Some(user.to_string());
            return Ok(Auth::Accept);
        }
        self.refused(user, "publickey", "key not authorized");
        Ok(Auth::reject())
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        self.refused(user, "password", "password authentication is not offered");
        Ok(Auth::reject())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match (name, self.user.clone(), self.channels.remove(&id)) {
            ("sftp", Some(user), Some(channel)) => {
                let admitted = match self.dropbox.sessions.lock() {
                    Ok(mut open) => {
                        let n = open.entry(user.clone()).or_insert(0);
                        if *n >= self.dropbox.limits.max_sessions_per_user {
                            false
                        } else {
                            *n += 1;
                            true
                        }
                    }
                    Err(_) => false,
                };
                if !admitted {
                    self.audit(
                        &user,
                        Operation::Session,
                        Outcome::Refused("too many sessions".into()),
                    );
                    session.channel_failure(id)?;
                    return Ok(());
                }
                session.channel_success(id)?;
                let sftp = Sftp::new(self.dropbox.clone(), user, self.peer);
                russh_sftp::server::run(channel.into_stream(), sftp).await;
            }
            _ => session.channel_failure(id)?,
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.close(channel)?;
        Ok(())
    }
}

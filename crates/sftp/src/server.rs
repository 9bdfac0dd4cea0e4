//! The SSH server and its SFTP subsystem over the project's store.
//!
//! Each user sees their home `raw/<user>/` as `/`. Paths are normalised before any
//! store access; `..` above the home is refused, so no path reaches another user's
//! files. An upload streams into a multipart upload that is published under its name
//! only when the client closes the file; a `.csv` upload is then handed to the
//! after-upload queue (`Uploaded`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use citybooks_store::Store;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use tokio::sync::mpsc;

use crate::guard::{Audit, Throttle};
use crate::hostkeys::HostKeys;
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
                tokio::spawn(async move {
                    match russh::server::run_stream(config, socket, handler).await {
                        Ok(session) => {
                            if let Err(e) = session.await {
                                tracing::debug!(%peer, "session ended: {e}");
                            }
                        }
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
    /// Whether the client's address is banned (and records the attempt if so).
    fn banned(&self, user: &str) -> bool {
        let banned = self
            .peer
            .is_some_and(|p| self.dropbox.throttle.banned(p.ip()));
        if banned {
            self.dropbox
                .audit
                .record(user, self.peer, "login", "", 0, "refused: address banned");
        }
        banned
    }

    /// Records a failed authentication and counts it towards a ban.
    fn refused(&self, user: &str, method: &str, why: &str) {
        tracing::warn!(user, peer = ?self.peer, method, why, "authentication refused");
        self.dropbox.audit.record(
            user,
            self.peer,
            "login",
            "",
            0,
            &format!("refused ({method}): {why}"),
        );
        if let Some(peer) = self.peer {
            if self.dropbox.throttle.failed(peer.ip()) {
                tracing::warn!(peer = %peer.ip(), "address banned after repeated failures");
                self.dropbox
                    .audit
                    .record(user, self.peer, "ban", "", 0, "address banned");
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
            self.dropbox
                .audit
                .record(user, self.peer, "login", "", 0, "ok");
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
                    self.dropbox.audit.record(
                        &user,
                        self.peer,
                        "session",
                        "",
                        0,
                        "refused: too many sessions",
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

/// An open file or directory of one SFTP session.
enum Open {
    Read {
        path: String,
        size: u64,
    },
    Write {
        path: String,
        /// In a Mutex only to make the session `Sync`; it is reached through `&mut`.
        upload: std::sync::Mutex<WriteMultipart>,
        written: u64,
        /// Most bytes this upload may write: the file limit or what is left of the quota.
        limit: u64,
    },
    Dir {
        entries: Option<Vec<File>>,
    },
}

/// The SFTP subsystem of one session, jailed in `raw/<user>/`.
struct Sftp {
    dropbox: Arc<DropBox>,
    user: String,
    peer: Option<SocketAddr>,
    handles: HashMap<String, Open>,
    next: u64,
}

fn status(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

fn fail(code: StatusCode, message: impl Into<String>) -> StatusReply {
    StatusReply::new(code).with_message(message)
}

fn store_err(e: object_store::Error) -> StatusReply {
    match e {
        object_store::Error::NotFound { .. } => fail(StatusCode::NoSuchFile, "no such file"),
        other => fail(StatusCode::Failure, other.to_string()),
    }
}

fn dir_attrs() -> FileAttributes {
    let mut a = FileAttributes::empty();
    a.set_dir(true);
    a.permissions = Some(a.permissions.unwrap_or(0) | 0o755);
    a
}

fn file_attrs(size: u64, modified: i64) -> FileAttributes {
    let mut a = FileAttributes::empty();
    a.set_regular(true);
    a.permissions = Some(a.permissions.unwrap_or(0) | 0o644);
    a.size = Some(size);
    a.mtime = Some(modified.max(0) as u32);
    a.atime = a.mtime;
    a
}

/// The marker that keeps an empty folder visible in an object store.
const DIR_MARKER: &str = ".folder";

/// The ending of the load reports citybooks writes beside each upload: a user may read
/// them, never write one (a forged report would tell the uploader a load went well).
const REPORT_SUFFIX: &str = ".load.json";

/// Refuses to write `path` if it is a name citybooks keeps for itself.
fn writable(path: &str) -> Result<(), StatusReply> {
    if path.to_ascii_lowercase().ends_with(REPORT_SUFFIX) {
        return Err(fail(
            StatusCode::PermissionDenied,
            format!("{path}: names ending in {REPORT_SUFFIX} are citybooks' load reports"),
        ));
    }
    Ok(())
}

/// Normalises a client path to a path below the home ("" is the home itself), or
/// refuses one that climbs out of it.
pub fn jail(path: &str) -> Result<String, StatusReply> {
    // No file name holds a NUL byte (POSIX; OpenSSH refuses one): refuse the probe
    // instead of carrying it into store paths, listings and the audit log.
    if path.contains('\0') {
        return Err(fail(
            StatusCode::PermissionDenied,
            format!(
                "{}: a file name cannot hold a NUL byte",
                path.escape_debug()
            ),
        ));
    }
    // The SFTP library decodes a name that is not UTF-8 lossily, every bad byte
    // becoming U+FFFD: stored as is, two different names would land on one object.
    // Refuse it (and with it the rare UTF-8 name that holds U+FFFD itself).
    if path.contains(char::REPLACEMENT_CHARACTER) {
        return Err(fail(
            StatusCode::PermissionDenied,
            format!(
                "{}: a file name must be UTF-8 (this one has bytes that are not)",
                path.escape_debug()
            ),
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(fail(
                        StatusCode::PermissionDenied,
                        format!("{path}: outside your home folder"),
                    ));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

impl Drop for Sftp {
    /// A session that ends with uploads still open (client killed, connection lost)
    /// aborts them: nothing is published under their names.
    fn drop(&mut self) {
        if let Ok(mut open) = self.dropbox.sessions.lock() {
            if let Some(n) = open.get_mut(&self.user) {
                *n = n.saturating_sub(1);
            }
        }
        for (_, open) in self.handles.drain() {
            if let Open::Write {
                path,
                upload,
                written,
                ..
            } = open
            {
                tracing::warn!(user = %self.user, path, bytes = written, "upload aborted: the session ended before close");
                self.dropbox.audit.record(
                    &self.user,
                    self.peer,
                    "upload",
                    &path,
                    written,
                    "aborted: session ended before close",
                );
                if let (Ok(upload), Ok(rt)) =
                    (upload.into_inner(), tokio::runtime::Handle::try_current())
                {
                    rt.spawn(async move {
                        let _ = upload.abort().await;
                    });
                }
            }
        }
    }
}

impl Sftp {
    fn new(dropbox: Arc<DropBox>, user: String, peer: Option<SocketAddr>) -> Self {
        Sftp {
            dropbox,
            user,
            peer,
            handles: HashMap::new(),
            next: 0,
        }
    }

    /// Appends a file operation to the audit log.
    fn audit<T>(&self, operation: &str, path: &str, bytes: u64, result: &Result<T, StatusReply>) {
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!(
                "{:?}: {}",
                e.status_code,
                e.error_message.as_deref().unwrap_or("")
            ),
        };
        self.dropbox
            .audit
            .record(&self.user, self.peer, operation, path, bytes, &outcome);
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        self.dropbox.store.object_store()
    }

    /// Store path (relative to the store root) of a client path.
    fn rel(&self, path: &str) -> Result<String, StatusReply> {
        let inner = jail(path)?;
        if inner.split('/').any(|p| p == DIR_MARKER) {
            return Err(fail(StatusCode::PermissionDenied, "reserved name"));
        }
        Ok(if inner.is_empty() {
            format!("raw/{}", self.user)
        } else {
            format!("raw/{}/{inner}", self.user)
        })
    }

    fn handle(&mut self, open: Open) -> String {
        self.next += 1;
        let h = format!("h{}", self.next);
        self.handles.insert(h.clone(), open);
        h
    }
}

/// Attributes of a store path: a file, or a folder (the home, or a prefix with objects).
async fn attrs(
    store: Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    is_home: bool,
) -> Result<FileAttributes, StatusReply> {
    match store.head(&path).await {
        Ok(meta) => return Ok(file_attrs(meta.size, meta.last_modified.timestamp())),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(store_err(e)),
    }
    let listed = store
        .list_with_delimiter(Some(&path))
        .await
        .map_err(store_err)?;
    if is_home || !listed.objects.is_empty() || !listed.common_prefixes.is_empty() {
        return Ok(dir_attrs());
    }
    Err(fail(StatusCode::NoSuchFile, "no such file or folder"))
}

impl russh_sftp::server::Handler for Sftp {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        fail(StatusCode::OpUnsupported, "not supported by citybooks")
    }

    async fn init(
        &mut self,
        _version: u32,
        _ext: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let inner = jail(&path)?;
        Ok(Name {
            id,
            files: vec![File::dummy(format!("/{inner}"))],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let rel = self.rel(&path)?;
        let is_home = rel.matches('/').count() == 1;
        let attrs = attrs(self.store(), self.dropbox.store.path(&rel), is_home).await?;
        Ok(Attrs { id, attrs })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let attrs = match self.handles.get(&handle) {
            Some(Open::Read { size, .. }) => file_attrs(*size, 0),
            Some(Open::Write { written, .. }) => file_attrs(*written, 0),
            Some(Open::Dir { .. }) => dir_attrs(),
            None => return Err(fail(StatusCode::Failure, "unknown handle")),
        };
        Ok(Attrs { id, attrs })
    }

    /// Attributes are not kept (clients set modes after a `put`): accepted without
    /// effect, for paths inside the home only.
    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        self.rel(&path)?;
        Ok(status(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        _handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Ok(status(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let audited_path = path.clone();
        let result = async {
            let rel = self.rel(&path)?;
            let store = self.store();
            let listed = store
                .list_with_delimiter(Some(&self.dropbox.store.path(&rel)))
                .await
                .map_err(store_err)?;
            let mut files = vec![File::new(".", dir_attrs()), File::new("..", dir_attrs())];
            for p in listed.common_prefixes {
                if let Some(name) = p.filename() {
                    files.push(File::new(name, dir_attrs()));
                }
            }
            for o in listed.objects {
                if let Some(name) = o.location.filename().filter(|n| *n != DIR_MARKER) {
                    files.push(File::new(
                        name,
                        file_attrs(o.size, o.last_modified.timestamp()),
                    ));
                }
            }
            let handle = self.handle(Open::Dir {
                entries: Some(files),
            });
            Ok(Handle { id, handle })
        }
        .await;
        self.audit("list", &audited_path, 0, &result);
        result
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.handles.get_mut(&handle) {
            Some(Open::Dir { entries }) => match entries.take() {
                Some(files) => Ok(Name { id, files }),
                None => Err(StatusReply::new(StatusCode::Eof)),
            },
            _ => Err(fail(StatusCode::Failure, "not a folder handle")),
        }
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        flags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let audited_path = filename.clone();
        let result = async {
            let rel = self.rel(&filename)?;
            if rel.matches('/').count() < 2 {
                return Err(fail(StatusCode::Failure, "that is your home folder"));
            }
            let path = self.dropbox.store.path(&rel);
            if flags.contains(OpenFlags::WRITE) {
                writable(&filename)?;
                // What the home holds now, less the file being replaced, against the quota.
                let home = self.dropbox.store.path(&format!("raw/{}", self.user));
                let objects: Vec<_> =
                    futures::TryStreamExt::try_collect(self.store().list(Some(&home)))
                        .await
                        .map_err(store_err)?;
                let used: u64 = objects
                    .iter()
                    .filter(|o| o.location != path)
                    .map(|o| o.size)
                    .sum();
                let limits = self.dropbox.limits;
                let limit = limits
                    .max_file_bytes
                    .min(limits.quota_bytes.saturating_sub(used));
                let upload = self.store().put_multipart(&path).await.map_err(store_err)?;
                let writer =
                    WriteMultipart::new_with_chunk_size(upload, self.dropbox.store.part_size());
                let handle = self.handle(Open::Write {
                    path: rel,
                    upload: std::sync::Mutex::new(writer),
                    written: 0,
                    limit,
                });
                return Ok(Handle { id, handle });
            }
            let meta = self.store().head(&path).await.map_err(store_err)?;
            let handle = self.handle(Open::Read {
                path: rel,
                size: meta.size,
            });
            Ok(Handle { id, handle })
        }
        .await;
        self.audit("open", &audited_path, 0, &result);
        result
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        // An upload that breaks a limit or skips ahead is aborted at once, so the client's
        // following close cannot publish a truncated file.
        let refusal = match self.handles.get(&handle) {
            Some(Open::Write { written, limit, .. }) if *written + data.len() as u64 > *limit => {
                let limits = self.dropbox.limits;
                Some(format!(
                    "upload refused: over the limit (a file at most {} MiB, a home at most {} MiB)",
                    limits.max_file_bytes >> 20,
                    limits.quota_bytes >> 20
                ))
            }
            Some(Open::Write { written, .. }) if offset != *written => Some(format!(
                "write at offset {offset}, expected {written}: uploads must be sequential (no resume)"
            )),
            _ => None,
        };
        if let Some(message) = refusal {
            if let Some(Open::Write {
                path,
                upload,
                written,
                ..
            }) = self.handles.remove(&handle)
            {
                self.dropbox.audit.record(
                    &self.user,
                    self.peer,
                    "upload",
                    &path,
                    written,
                    &format!("aborted: {message}"),
                );
                if let Ok(upload) = upload.into_inner() {
                    let _ = upload.abort().await;
                }
            }
            return Err(fail(StatusCode::Failure, message));
        }
        match self.handles.get_mut(&handle) {
            Some(Open::Write {
                upload, written, ..
            }) => {
                let upload = upload
                    .get_mut()
                    .map_err(|_| fail(StatusCode::Failure, "upload state poisoned"))?;
                upload.wait_for_capacity(4).await.map_err(store_err)?;
                upload.write(&data);
                *written += data.len() as u64;
                Ok(status(id))
            }
            _ => Err(fail(StatusCode::Failure, "not a file opened for writing")),
        }
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let (rel, size) = match self.handles.get(&handle) {
            Some(Open::Read { path, size }) => (path.clone(), *size),
            _ => return Err(fail(StatusCode::Failure, "not a file opened for reading")),
        };
        if offset >= size {
            return Err(StatusReply::new(StatusCode::Eof));
        }
        let end = (offset + u64::from(len)).min(size);
        let bytes = self
            .store()
            .get_range(&self.dropbox.store.path(&rel), offset..end)
            .await
            .map_err(store_err)?;
        Ok(Data {
            id,
            data: bytes.to_vec(),
        })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(Open::Write {
                path,
                upload,
                written,
                ..
            }) => {
                let upload = upload
                    .into_inner()
                    .map_err(|_| fail(StatusCode::Failure, "upload state poisoned"))?;
                let finished = upload.finish().await.map_err(store_err);
                self.audit("upload", &path, written, &finished);
                finished?;
                tracing::info!(user = %self.user, path, bytes = written, "upload complete");
                if path.to_ascii_lowercase().ends_with(".csv") {
                    let _ = self.dropbox.uploads.send(Uploaded {
                        user: self.user.clone(),
                        path,
                    });
                }
                Ok(status(id))
            }
            Some(Open::Read { path, size }) => {
                self.audit("download", &path, size, &Ok::<(), StatusReply>(()));
                Ok(status(id))
            }
            Some(_) => Ok(status(id)),
            None => Err(fail(StatusCode::Failure, "unknown handle")),
        }
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let audited_path = filename.clone();
        let result = async {
            let rel = self.rel(&filename)?;
            let path = self.dropbox.store.path(&rel);
            self.store().head(&path).await.map_err(store_err)?;
            self.store().delete(&path).await.map_err(store_err)?;
            Ok(status(id))
        }
        .await;
        self.audit("remove", &audited_path, 0, &result);
        result
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let audited_path = path.clone();
        let result = async {
            let rel = self.rel(&path)?;
            let marker = self.dropbox.store.path(&format!("{rel}/{DIR_MARKER}"));
            self.store()
                .put(&marker, bytes::Bytes::new().into())
                .await
                .map_err(store_err)?;
            Ok(status(id))
        }
        .await;
        self.audit("mkdir", &audited_path, 0, &result);
        result
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        let audited_path = path.clone();
        let result = async {
            let rel = self.rel(&path)?;
            let prefix = self.dropbox.store.path(&rel);
            let listed = self
                .store()
                .list_with_delimiter(Some(&prefix))
                .await
                .map_err(store_err)?;
            let others = listed
                .objects
                .iter()
                .filter(|o| o.location.filename() != Some(DIR_MARKER))
                .count();
            if others > 0 || !listed.common_prefixes.is_empty() {
                return Err(fail(StatusCode::Failure, "folder is not empty"));
            }
            if listed.objects.is_empty() {
                return Err(fail(StatusCode::NoSuchFile, "no such folder"));
            }
            let marker = self.dropbox.store.path(&format!("{rel}/{DIR_MARKER}"));
            self.store().delete(&marker).await.map_err(store_err)?;
            // A local store keeps the emptied folder on disk, where listings would still see it.
            if let Some(dir) = self.dropbox.store.local_dir() {
                let _ = std::fs::remove_dir(dir.join(&rel));
            }
            Ok(status(id))
        }
        .await;
        self.audit("rmdir", &audited_path, 0, &result);
        result
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let audited_path = format!("{oldpath} -> {newpath}");
        let result = async {
            writable(&newpath)?;
            let (from, to) = (self.rel(&oldpath)?, self.rel(&newpath)?);
            let (from, to) = (self.dropbox.store.path(&from), self.dropbox.store.path(&to));
            // SFTP v3 rename refuses an existing target. Not every S3-compatible store offers
            // copy-if-not-exists, so check, then copy and delete.
            match self.store().head(&to).await {
                Ok(_) => return Err(fail(StatusCode::Failure, format!("{newpath} exists"))),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_err(e)),
            }
            self.store().head(&from).await.map_err(store_err)?;
            self.store().rename(&from, &to).await.map_err(store_err)?;
            Ok(status(id))
        }
        .await;
        self.audit("rename", &audited_path, 0, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_in_the_home_folder() {
        assert_eq!(jail("/a/./b//c.csv").unwrap(), "a/b/c.csv");
        assert_eq!(jail("a/../b").unwrap(), "b");
        assert_eq!(jail("/").unwrap(), "");
        for escape in ["..", "/../other/x.csv", "a/../../b", "/../../etc/passwd"] {
            let e = jail(escape).unwrap_err();
            assert_eq!(e.status_code, StatusCode::PermissionDenied, "{escape}");
        }
    }

    /// Found by fuzz/fuzz_targets/sftp_jail.rs: a path with a NUL byte was accepted
    /// and passed on as it was (`"a\0b.csv"` -> `Ok("a\0b.csv")`).
    #[test]
    fn a_nul_byte_in_a_path_is_refused() {
        for path in ["a\0b.csv", "/\0", "dir/\0/../x.csv", "\0"] {
            let e = jail(path).unwrap_err();
            assert_eq!(e.status_code, StatusCode::PermissionDenied, "{path:?}");
        }
        assert_eq!(jail("dir/x.csv").unwrap(), "dir/x.csv");
    }

    /// What the SFTP library makes of a name that is not UTF-8 (`\xff\xfe.csv`, a
    /// Latin-1 `caf\xe9.csv`): lossy text, refused rather than stored under a name the
    /// client never sent.
    #[test]
    fn a_name_that_is_not_utf8_is_refused() {
        for bytes in [&b"\xff\xfe.csv"[..], b"caf\xe9.csv", b"dir/\x80/x.csv"] {
            let lossy = String::from_utf8_lossy(bytes);
            let e = jail(&lossy).unwrap_err();
            assert_eq!(e.status_code, StatusCode::PermissionDenied, "{lossy}");
            let message = e.error_message.unwrap_or_default();
            assert!(message.contains("must be UTF-8"), "{message}");
        }
        assert_eq!(jail("café.csv").unwrap(), "café.csv");
    }
}

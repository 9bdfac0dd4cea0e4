//! Defence: the audit log of every login attempt and file operation, and the ban of
//! client addresses that fail authentication too often.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The audit log: one JSON object per line — time, user, client address, operation,
/// path, bytes, result.
pub struct Audit {
    file: Mutex<std::fs::File>,
}

/// What a client did or tried: the audit log's `operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// An authentication attempt.
    Login,
    /// An address banned after repeated failed logins.
    Ban,
    /// An SFTP session asked for.
    Session,
    List,
    Open,
    Upload,
    Download,
    Remove,
    Mkdir,
    Rmdir,
    Rename,
}

impl Operation {
    /// The word the audit log writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Login => "login",
            Operation::Ban => "ban",
            Operation::Session => "session",
            Operation::List => "list",
            Operation::Open => "open",
            Operation::Upload => "upload",
            Operation::Download => "download",
            Operation::Remove => "remove",
            Operation::Mkdir => "mkdir",
            Operation::Rmdir => "rmdir",
            Operation::Rename => "rename",
        }
    }
}

/// How an operation ended: the audit log's `result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `ok`.
    Ok,
    /// `refused: <why>` — e.g. a banned address, too many sessions.
    Refused(String),
    /// `refused (<method>): <why>` — an authentication that failed.
    RefusedLogin { method: String, why: String },
    /// `address banned`.
    Banned,
    /// `aborted: <why>` — an upload that was not published.
    Aborted(String),
    /// `<SFTP status>: <message>` — a file operation the server answered with an error.
    Failed { status: String, message: String },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Refused(why) => write!(f, "refused: {why}"),
            Outcome::RefusedLogin { method, why } => write!(f, "refused ({method}): {why}"),
            Outcome::Banned => f.write_str("address banned"),
            Outcome::Aborted(why) => write!(f, "aborted: {why}"),
            Outcome::Failed { status, message } => write!(f, "{status}: {message}"),
        }
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub user: &'a str,
    pub client: Option<std::net::SocketAddr>,
    pub operation: Operation,
    /// The path as the client named it (empty for logins and sessions).
    pub path: &'a str,
    pub bytes: u64,
    pub outcome: Outcome,
}

impl Audit {
    /// Opens (appending) the audit log at `path`.
    pub fn open(path: &Path) -> std::io::Result<Audit> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Audit {
            file: Mutex::new(file),
        })
    }

    /// Appends one entry. A failing disk is logged, never fatal to the session.
    pub fn record(&self, event: Event<'_>) {
        let entry = serde_json::json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "user": event.user,
            "client": event.client.map(|c| c.to_string()),
            "operation": event.operation.as_str(),
            "path": event.path,
            "bytes": event.bytes,
            "result": event.outcome.to_string(),
        });
        if let Ok(mut f) = self.file.lock() {
            if let Err(e) = writeln!(f, "{entry}") {
                tracing::error!("audit log: {e}");
            }
        }
    }
}

/// Failed authentications per client address, and bans.
pub struct Throttle {
    max_failures: u32,
    ban: Duration,
    state: Mutex<HashMap<IpAddr, (u32, Option<Instant>)>>,
}

impl Throttle {
    pub fn new(max_failures: u32, ban: Duration) -> Self {
        Throttle {
            max_failures: max_failures.max(1),
            ban,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` is banned now.
    pub fn banned(&self, ip: IpAddr) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        match state.get(&ip) {
            Some((_, Some(until))) if Instant::now() < *until => true,
            Some((_, Some(_))) => {
                state.remove(&ip);
                false
            }
            _ => false,
        }
    }

    /// Counts a failure; returns true when this failure starts a ban.
    pub fn failed(&self, ip: IpAddr) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let entry = state.entry(ip).or_insert((0, None));
        entry.0 += 1;
        if entry.0 >= self.max_failures && entry.1.is_none() {
            entry.1 = Some(Instant::now() + self.ban);
            return true;
        }
        false
    }

    /// A successful login forgets the address's failures.
    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut state) = self.state.lock() {
            state.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_banned_after_n_failures_for_a_while() {
        let t = Throttle::new(3, Duration::from_millis(200));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(!t.failed(ip));
        assert!(!t.failed(ip));
        assert!(t.failed(ip), "the third failure bans");
        assert!(t.banned(ip));
        assert!(!t.banned(other));
        std::thread::sleep(Duration::from_millis(250));
        assert!(!t.banned(ip), "the ban ends");
        t.failed(other);
        t.succeeded(other);
        assert!(
            !t.failed(other) && !t.failed(other),
            "success resets the count"
        );
    }
}

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
    pub fn record(
        &self,
        user: &str,
        client: Option<std::net::SocketAddr>,
        operation: &str,
        path: &str,
        bytes: u64,
        result: &str,
    ) {
        let entry = serde_json::json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "user": user,
            "client": client.map(|c| c.to_string()),
            "operation": operation,
            "path": path,
            "bytes": bytes,
            "result": result,
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

//! A lease in the store: one holder at a time across processes and hosts.
//!
//! Several citybooks processes may share one store (two `serve` replicas, a
//! `citybooks load` on another host). The loader picks new ids from what it read, so
//! two loads that overlap would hand out the same `load_id`s, `transaction_id`s and
//! member ids. The writer lease serialises them with nothing but the store itself:
//!
//! - A lease is a numbered sequence of small JSON objects, `leases/<name>/<n>.json`.
//!   The highest number is the current lease. To take it, a process creates
//!   `<n+1>.json` with a **conditional put** (`If-None-Match: *` on S3, a hard link on
//!   a local folder): exactly one of several contenders succeeds, the others see
//!   "already exists" and look again. Not every S3 server makes that create atomic
//!   (s3s-fs checks for the object, then writes it: two contenders can both "create"
//!   it, the last write wins), so on S3 a contender reads its record back after a
//!   short settling time and goes back to waiting if another record replaced it; the
//!   heartbeat and [`Lease::check`] read it back too.
//! - It may take `<n+1>` only when `<n>` is released, or stale: its object has not
//!   changed for `ttl` on the contender's own clock (so clocks of different hosts need
//!   not agree), or its holder's `renewed_ms` is more than two `ttl` in the past, or
//!   its holder ran on this very machine and process namespace and is gone (a killed
//!   `citybooks load` on the same host need not be waited out).
//! - The holder renews its object every `ttl / 4` (a heartbeat), so a live holder's
//!   lease never goes stale, and a crashed holder's lease runs out after `ttl`.
//! - Before each commit the holder checks ([`Lease::check`]) that it still holds the
//!   lease (no `<n+1>` exists, its last renewal succeeded within `ttl`): a writer that
//!   was paused longer than its lease stops instead of committing over the next one.
//!
//! Old objects are removed by the next holder (the last [`KEEP`] stay for diagnosis).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// How many old lease objects the next holder leaves in place.
const KEEP: u64 = 8;

/// Who holds (or held) a lease: what a waiting process reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Host name of the holding process.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// What it holds the lease for ("load raw/cli/...").
    pub purpose: String,
    /// When it took the lease (Unix milliseconds, the holder's clock).
    pub since_ms: u64,
    /// When it last renewed it (Unix milliseconds, the holder's clock).
    pub renewed_ms: u64,
    /// Set when the holder gave the lease up.
    #[serde(default)]
    pub released: bool,
    /// The holder's machine and process namespace (boot id and pid namespace): where
    /// its `pid` means something.
    #[serde(default)]
    pub node: String,
    /// The holder's start time in clock ticks since boot (tells a reused pid apart).
    #[serde(default)]
    pub process_start: u64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let age = now_ms().saturating_sub(self.since_ms) as f64 / 1000.0;
        write!(
            f,
            "{} (pid {} on {}, for {age:.0} s)",
            self.purpose, self.pid, self.host
        )
    }
}

/// This process's record for a new lease taken for `purpose`.
fn our_holder(purpose: &str) -> Holder {
    let now = now_ms();
    Holder {
        host: host_name(),
        pid: std::process::id(),
        purpose: purpose.to_string(),
        since_ms: now,
        renewed_ms: now,
        released: false,
        node: node(),
        process_start: process_start(std::process::id()).unwrap_or(0),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// This machine's name, for the lease's holder record.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown host".into())
}

/// Where a pid means something: this machine's boot id and our pid namespace.
fn node() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!("{}/{ns}", boot.trim())
}

/// The start time of process `pid` (field 22 of /proc/PID/stat), None if it is gone.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

impl Holder {
    /// Whether `other` is a record of the same holding (the same process taking the
    /// lease at the same moment; renewals change only `renewed_ms` and `released`).
    fn same_holding(&self, other: &Holder) -> bool {
        self.host == other.host
            && self.pid == other.pid
            && self.node == other.node
            && self.process_start == other.process_start
            && self.since_ms == other.since_ms
            && self.purpose == other.purpose
    }

    /// Whether the holder is known to be gone: it ran here (same machine, same pid
    /// namespace) and its process no longer exists.
    fn gone(&self) -> bool {
        let here = node();
        !self.node.is_empty()
            && !here.starts_with('/')
            && self.node == here
            && process_start(self.pid) != Some(self.process_start)
    }
}

/// What a lease wait reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waited {
    /// Seconds spent waiting.
    pub seconds: f64,
    /// Every holder waited for, in order.
    pub for_holders: Vec<String>,
}

/// A held lease. Renewed in the background until [`Lease::release`] (or drop: the
/// heartbeat stops and the lease runs out after its `ttl`).
#[derive(Debug)]
pub struct Lease {
    store: Store,
    dir: String,
    number: u64,
    holder: Holder,
    ttl: Duration,
    /// When the last renewal succeeded (the heartbeat writes it).
    renewed: Arc<Mutex<Instant>>,
    /// Set by the heartbeat when it found another holder's record in ours.
    replaced: Arc<Mutex<Option<String>>>,
    heartbeat: tokio::task::JoinHandle<()>,
    /// How long taking it took, and for whom it waited.
    pub waited: Waited,
}

/// A lease that was lost: the holder paused longer than its `ttl` and another process
/// took over. The holder must stop before committing anything.
#[derive(Debug, thiserror::Error)]
#[error("the writer lease {name} was lost ({reason}); nothing more is committed by this process, run it again")]
pub struct LeaseLost {
    pub name: String,
    pub reason: String,
}

impl Store {
    fn lease_object(dir: &str, n: u64) -> String {
        format!("{dir}/{n:020}.json")
    }

    /// The highest-numbered lease object under `dir` and its content (None: never held).
    async fn current_lease(
        &self,
        dir: &str,
    ) -> Result<Option<(u64, Holder, bytes::Bytes)>, StoreError> {
        let numbers = self.lease_numbers(dir).await?;
        let Some(&n) = numbers.last() else {
            return Ok(None);
        };
        let bytes = match self.get(&Self::lease_object(dir, n)).await {
            Ok(b) => b,
            // Removed by a holder's clean-up between our list and get: look again.
            Err(StoreError::ObjectStore {
                source: object_store::Error::NotFound { .. },
                ..
            }) => return Box::pin(self.current_lease(dir)).await,
            Err(e) => return Err(e),
        };
        // An unreadable record (cut by a crash of a store without atomic puts) is
        // held by nobody known: it goes stale when it has not changed for `ttl`.
        let holder = serde_json::from_slice(&bytes).unwrap_or_else(|_| Holder {
            host: "?".into(),
            pid: 0,
            purpose: "an unreadable lease record".into(),
            since_ms: now_ms(),
            renewed_ms: now_ms(),
            released: false,
            node: String::new(),
            process_start: 0,
        });
        Ok(Some((n, holder, bytes)))
    }

    /// The record of lease object `n` under `dir` as it stands (None: gone or unreadable).
    async fn lease_record(&self, dir: &str, n: u64) -> Result<Option<Holder>, StoreError> {
        match self.get(&Self::lease_object(dir, n)).await {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(StoreError::ObjectStore {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn lease_numbers(&self, dir: &str) -> Result<Vec<u64>, StoreError> {
        let mut numbers: Vec<u64> = self
            .list(dir)
            .await?
            .into_iter()
            .filter_map(|(p, _)| {
                p.rsplit('/')
                    .next()?
                    .strip_suffix(".json")?
                    .parse::<u64>()
                    .ok()
            })
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Takes the lease `name` (e.g. `writer`) for `purpose`, waiting while another
    /// process holds it. `on_wait` is called once for every holder waited for.
    pub async fn acquire_lease(
        &self,
        name: &str,
        purpose: &str,
        ttl: Duration,
        mut on_wait: impl FnMut(&Holder),
    ) -> Result<Lease, StoreError> {
        let dir = format!("leases/{name}");
        let started = Instant::now();
        let poll = (ttl / 20).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut waited_for: Vec<String> = Vec::new();
        let mut reported: Option<u64> = None;
        // The content we last saw of the current lease, and since when (our clock).
        let mut seen: Option<(u64, bytes::Bytes, Instant)> = None;
        loop {
            let current = self.current_lease(&dir).await?;
            let next = match &current {
                None => 1,
                Some((n, holder, bytes)) => {
                    let unchanged_since = match &seen {
                        Some((sn, sb, since)) if sn == n && sb == bytes => *since,
                        _ => {
                            seen = Some((*n, bytes.clone(), Instant::now()));
                            Instant::now()
                        }
                    };
                    let stale = unchanged_since.elapsed() >= ttl
                        || now_ms().saturating_sub(holder.renewed_ms) > 2 * ttl.as_millis() as u64
                        || holder.gone();
                    if !holder.released && !stale {
                        if reported != Some(*n) {
                            on_wait(holder);
                            waited_for.push(holder.to_string());
                            reported = Some(*n);
                        }
                        tokio::time::sleep(poll).await;
                        continue;
                    }
                    n + 1
                }
            };
            let holder = our_holder(purpose);
            if !self.claim(&dir, next, &holder, poll).await? {
                continue;
            }
            let waited = Waited {
                seconds: started.elapsed().as_secs_f64(),
                for_holders: waited_for,
            };
            return Ok(self.holding(dir, next, holder, ttl, waited).await);
        }
    }

    /// Writes `holder` as lease number `next`: true when the lease is ours, false
    /// when another contender took that number first (look again).
    async fn claim(
        &self,
        dir: &str,
        next: u64,
        holder: &Holder,
        poll: Duration,
    ) -> Result<bool, StoreError> {
        let rel = Self::lease_object(dir, next);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .object_store()
            .put_opts(&self.path(&rel), record(holder), opts)
            .await
        {
            Ok(_) => {
                // On a store whose create may race (see the module's doc), another
                // contender's record may land on ours just after: let it settle, and
                // wait again if ours was replaced.
                if self.local_dir().is_none() {
                    tokio::time::sleep(poll).await;
                    match self.lease_record(dir, next).await? {
                        Some(r) if r.same_holding(holder) => {}
                        _ => return Ok(false),
                    }
                }
                Ok(true)
            }
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(source) => Err(StoreError::ObjectStore {
                store: self.root().to_string(),
                source,
            }),
        }
    }

    /// The lease `next` of `dir`, now ours: older records pruned, its heartbeat
    /// started.
    async fn holding(
        &self,
        dir: String,
        next: u64,
        holder: Holder,
        ttl: Duration,
        waited: Waited,
    ) -> Lease {
        self.prune_leases(&dir, next).await;
        let renewed = Arc::new(Mutex::new(Instant::now()));
        let replaced = Arc::new(Mutex::new(None));
        let heartbeat = tokio::spawn(heartbeat(
            self.clone(),
            (dir.clone(), next),
            holder.clone(),
            ttl,
            renewed.clone(),
            replaced.clone(),
        ));
        Lease {
            store: self.clone(),
            dir,
            number: next,
            holder,
            ttl,
            renewed,
            replaced,
            heartbeat,
            waited,
        }
    }

    /// Removes lease objects older than the last [`KEEP`] (best effort).
    async fn prune_leases(&self, dir: &str, newest: u64) {
        if let Ok(numbers) = self.lease_numbers(dir).await {
            for n in numbers.into_iter().filter(|n| n + KEEP < newest) {
                let _ = self.delete(&Self::lease_object(dir, n)).await;
            }
        }
    }
}

fn record(holder: &Holder) -> PutPayload {
    PutPayload::from(serde_json::to_vec(holder).unwrap_or_default())
}

/// Renews the lease object `n` under `dir` every `ttl / 4` until the task is aborted,
/// or until it finds another holder's record there (then it stops and says so in
/// `replaced`).
async fn heartbeat(
    store: Store,
    (dir, n): (String, u64),
    mut holder: Holder,
    ttl: Duration,
    renewed: Arc<Mutex<Instant>>,
    replaced: Arc<Mutex<Option<String>>>,
) {
    let every = (ttl / 4).max(Duration::from_millis(10));
    let rel = Store::lease_object(&dir, n);
    loop {
        tokio::time::sleep(every).await;
        if let Ok(Some(other)) = store.lease_record(&dir, n).await {
            if !other.same_holding(&holder) {
                *replaced.lock().unwrap_or_else(|e| e.into_inner()) = Some(other.to_string());
                return;
            }
        }
        holder.renewed_ms = now_ms();
        let put = store
            .object_store()
            .put(&store.path(&rel), record(&holder))
            .await;
        match put {
            Ok(_) => *renewed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now(),
            Err(e) => tracing::warn!("could not renew the lease {rel}: {e}"),
        }
    }
}

impl Lease {
    /// Who holds it (this process).
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Ok while this process still holds the lease: its last renewal is within `ttl`
    /// and no later lease exists. Call it right before each commit.
    pub async fn check(&self) -> Result<(), LeaseLost> {
        let lost = |reason: String| LeaseLost {
            name: self.dir.clone(),
            reason,
        };
        let since = self
            .renewed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        if since >= self.ttl {
            return Err(lost(format!(
                "not renewed for {:.1} s, longer than its {} s",
                since.as_secs_f64(),
                self.ttl.as_secs_f64()
            )));
        }
        if let Some(other) = self
            .replaced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(lost(format!("its record was replaced by {other}")));
        }
        match self.store.lease_numbers(&self.dir).await {
            Ok(numbers) if numbers.last().copied().unwrap_or(0) > self.number => {
                return Err(lost(
                    "another process took it after this one stopped renewing it".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(lost(format!("the store could not be read: {e}"))),
        }
        match self.store.lease_record(&self.dir, self.number).await {
            Ok(Some(r)) if r.same_holding(&self.holder) => Ok(()),
            Ok(Some(other)) => Err(lost(format!("its record was replaced by {other}"))),
            Ok(None) => Err(lost("its record is gone from the store".into())),
            Err(e) => Err(lost(format!("the store could not be read: {e}"))),
        }
    }

    /// Gives the lease up so the next process need not wait for it to run out.
    pub async fn release(self) {
        self.heartbeat.abort();
        let mut holder = self.holder.clone();
        holder.renewed_ms = now_ms();
        holder.released = true;
        let rel = Store::lease_object(&self.dir, self.number);
        // Only if it is still ours: a later lease means ours ran out and was taken.
        if let Ok(numbers) = self.store.lease_numbers(&self.dir).await {
            if numbers.last().copied() == Some(self.number) {
                let _ = self
                    .store
                    .object_store()
                    .put(&self.store.path(&rel), record(&holder))
                    .await;
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;

    fn store(dir: &std::path::Path) -> Store {
        Store::open(&StoreConfig::default(), Some(dir.join("store"))).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_holder_at_a_time_and_the_next_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let ttl = Duration::from_secs(5);
        let first = s
            .acquire_lease("writer", "first", ttl, |_| {})
            .await
            .unwrap();
        assert!(first.waited.for_holders.is_empty());
        first.check().await.unwrap();

        let s2 = s.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut tx = Some(tx);
        let second = tokio::spawn(async move {
            s2.acquire_lease("writer", "second", ttl, move |h| {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(h.purpose.clone());
                }
            })
            .await
        });
        // The second contender reports whom it waits for, and gets the lease only
        // after the first releases it.
        assert_eq!(rx.await.unwrap(), "first");
        assert!(!second.is_finished());
        first.release().await;
        let second = second.await.unwrap().unwrap();
        assert_eq!(second.holder().purpose, "second");
        assert_eq!(second.waited.for_holders.len(), 1);
        assert!(second.waited.for_holders[0].starts_with("first (pid "));
        second.check().await.unwrap();
        second.release().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn contenders_never_hold_it_together() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (s, inside) = (s.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..3 {
                    let lease = s
                        .acquire_lease(
                            "writer",
                            &format!("task {i}"),
                            Duration::from_secs(5),
                            |_| {},
                        )
                        .await
                        .unwrap();
                    let n = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    assert_eq!(n, 0, "two holders at once");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    lease.release().await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // 24 leases taken; old records pruned down to the last few.
        let left = s.lease_numbers("leases/writer").await.unwrap();
        assert_eq!(left.last(), Some(&24));
        assert!(left.len() as u64 <= KEEP + 2, "{left:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crashed_holders_lease_runs_out_and_a_taken_lease_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let ttl = Duration::from_millis(600);
        let crashed = s
            .acquire_lease("writer", "crashed", ttl, |_| {})
            .await
            .unwrap();
        // A crash: the heartbeat stops, nothing is released.
        crashed.heartbeat.abort();
        let clock = Instant::now();
        let next = s
            .acquire_lease("writer", "next", ttl, |_| {})
            .await
            .unwrap();
        assert!(clock.elapsed() >= ttl, "taken after {:?}", clock.elapsed());
        assert_eq!(next.waited.for_holders.len(), 1);
        // The paused holder finds out before it commits anything.
        let err = crashed.check().await.unwrap_err().to_string();
        assert!(err.contains("lease") && err.contains("lost"), "{err}");
        next.check().await.unwrap();
        next.release().await;
    }

    /// What a racing contender on an S3 server without an atomic create leaves behind:
    /// its own record written over ours. The holder must find out before committing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_holder_whose_record_was_overwritten_has_lost_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let ttl = Duration::from_millis(400);
        let lease = s
            .acquire_lease("writer", "first", ttl, |_| {})
            .await
            .unwrap();
        lease.check().await.unwrap();
        let intruder = Holder {
            purpose: "second".into(),
            since_ms: lease.holder().since_ms + 1,
            ..lease.holder().clone()
        };
        let rel = Store::lease_object("leases/writer", lease.number);
        s.object_store()
            .put(&s.path(&rel), record(&intruder))
            .await
            .unwrap();
        let err = lease.check().await.unwrap_err().to_string();
        assert!(err.contains("replaced by second"), "{err}");
        // The heartbeat finds it too, and stops renewing the other's record.
        tokio::time::sleep(ttl / 2).await;
        assert!(lease.replaced.lock().unwrap().is_some());
        let now: Holder = serde_json::from_slice(&s.get(&rel).await.unwrap()).unwrap();
        assert_eq!(now, intruder);
    }

    #[test]
    fn a_holder_is_gone_only_when_its_process_here_is() {
        let me = Holder {
            host: host_name(),
            pid: std::process::id(),
            purpose: "test".into(),
            since_ms: now_ms(),
            renewed_ms: now_ms(),
            released: false,
            node: node(),
            process_start: process_start(std::process::id()).unwrap(),
        };
        assert!(!me.gone());
        // The same pid started at another time: a reused pid, so the holder is gone.
        let reused = Holder {
            process_start: me.process_start + 1,
            ..me.clone()
        };
        assert!(reused.gone());
        // A holder on another machine is never judged by our process table.
        let elsewhere = Holder {
            node: "another-boot/pid:[1]".into(),
            pid: u32::MAX,
            ..me.clone()
        };
        assert!(!elsewhere.gone());
        let old_record = Holder {
            node: String::new(),
            ..reused
        };
        assert!(!old_record.gone());
    }
}

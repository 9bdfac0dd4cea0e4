//! The loader: read → conform → model → commit, one step per module.
//!
//! A load reads its raw file **twice**, streaming both times, so memory does not grow
//! with the file: the *scan* checks every row, counts the codes each name carries
//! (rule 6 needs the whole file) and collects the distinct dimension members; the
//! *write* re-reads the file and streams fact batches straight into the Delta writer.
//!
//! [`Warehouse::load_object`] runs the steps in this order:
//!
//! | step | module | what |
//! | --- | --- | --- |
//! | scan | [`scan`] | first pass: check and conform every row, collect members, hash |
//! | decide | [`decide`] | unchanged? nothing loadable? would it shrink a year? (pure) |
//! | dimensions | [`dimensions`] | rule 6, a stable id per member, commit new members |
//! | facts | [`facts`] | second pass streamed into one commit replacing the file's years |
//! | quarantine | [`record`] | the rows set aside, with their reasons |
//! | record | [`record`] | the `meta.loads` row: status, counts, every table's version |
//!
//! [`lookup`] reads what the warehouse holds now (ids, year sizes). One Delta commit per
//! table, in that order: new dimension members (append-only, so readers of the old
//! facts are unaffected), the facts (the publish point of the data), the quarantined
//! rows, the `meta.loads` row. A crash anywhere leaves every table at a committed
//! version; a crash before the `meta.loads` row only means the next load of the file
//! redoes it.

mod decide;
mod dimensions;
mod facts;
mod lookup;
mod record;
mod scan;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Result, WarehouseError};
use crate::failpoint;
use crate::loads::LoadRecord;
pub use crate::loads::LoadStatus;
use crate::tables::Warehouse;
use citybooks_store::{Lease, Waited};
use scan::Scan;

/// The name of the lease every load takes in the store (`leases/writer/`).
pub const WRITER_LEASE: &str = "writer";

/// A row that went to `meta.quarantine`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantinedRow {
    pub line: u64,
    pub field: Option<String>,
    pub reason: String,
    pub raw: String,
}

/// What a load did, for the terminal, `.load.json` files and tests.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub load_id: i64,
    pub status: LoadStatus,
    /// The raw file, relative to the store root.
    pub source_file: String,
    pub content_hash: String,
    pub dialect: Option<String>,
    pub bytes: u64,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_quarantined: u64,
    pub years_replaced: Vec<i32>,
    pub data_as_of: Option<String>,
    /// Every name rule 6 conformed, as a sentence.
    pub conformed: Vec<String>,
    /// New members per dimension table.
    pub new_members: BTreeMap<String, usize>,
    /// The first quarantined rows (all of them are in `meta.quarantine`).
    pub quarantine_sample: Vec<QuarantinedRow>,
    pub error: Option<String>,
    /// Why the load was held, and how to release it.
    pub hold: Option<String>,
    pub seconds: f64,
    /// How long the load waited for the writer lease, and for which other loads.
    pub lease_wait: Waited,
    /// What a load that loaded data changed, in one paragraph
    /// ([`Warehouse::change_summary`]).
    pub changes: Option<String>,
}

/// How many quarantined rows a report repeats (the table has them all).
const SAMPLE: usize = 20;

impl LoadReport {
    /// The report of load `load_id` of `source_file` before anything is known of it.
    fn new(load_id: i64, source_file: &str, bytes: u64, lease: &Lease) -> Self {
        LoadReport {
            load_id,
            status: LoadStatus::Failed,
            source_file: source_file.to_string(),
            content_hash: String::new(),
            dialect: None,
            bytes,
            rows_read: 0,
            rows_loaded: 0,
            rows_quarantined: 0,
            years_replaced: Vec::new(),
            data_as_of: None,
            conformed: Vec::new(),
            new_members: BTreeMap::new(),
            quarantine_sample: Vec::new(),
            error: None,
            hold: None,
            seconds: 0.0,
            lease_wait: lease.waited.clone(),
            changes: None,
        }
    }

    /// What the scan found.
    fn scanned(&mut self, scan: &Scan) {
        self.content_hash = scan.hash.clone();
        self.dialect = Some(scan.dialect.clone());
        self.bytes = scan.bytes;
        self.rows_read = scan.rows_read;
        self.rows_quarantined = scan.quarantine.len() as u64;
        self.data_as_of = scan.data_as_of.clone();
        self.quarantine_sample = scan.quarantine.iter().take(SAMPLE).cloned().collect();
    }

    /// The file repeats load `previous`: nothing changes.
    fn unchanged(&mut self, previous: &LoadRecord) {
        self.status = LoadStatus::Unchanged;
        self.rows_quarantined = 0;
        self.quarantine_sample.clear();
        self.years_replaced = previous.years();
    }
}

/// One load under way: what every step needs to know about it.
struct Job<'a> {
    /// The raw file, relative to the store root.
    rel: &'a str,
    /// The file was stored for this load alone (a no-op load removes it again).
    copied: bool,
    show_progress: bool,
    /// The raw file's size in bytes.
    total: u64,
    lease: &'a Lease,
    clock: Instant,
    /// Microseconds since the epoch, for `meta.loads.started`.
    started: i64,
}

/// The Delta version each table reached by a commit of this load.
type Committed = BTreeMap<String, i64>;

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Where `citybooks load` keeps a file it was given: `raw/cli/<UTC time>-<name>`.
fn raw_cli_path(name: &str) -> String {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
    format!("raw/cli/{stamp}-{name}")
}

impl Warehouse {
    /// This warehouse, replacing the fiscal years of every file it loads even when that
    /// shrinks one past `[load] max_shrink_percent` (`citybooks load --replace-years`).
    pub fn replacing_years(mut self) -> Warehouse {
        self.replace_years = true;
        self
    }

    /// Loads a local file: copies it into the store under `raw/cli/`, then loads it.
    pub async fn load_path(&self, path: &Path, show_progress: bool) -> Result<LoadReport> {
        if !path.is_file() {
            return Err(WarehouseError::Io {
                file: path.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "upload.csv".into());
        let rel = raw_cli_path(&name);
        self.store().put_file(&rel, path).await?;
        failpoint::hit("after-raw");
        self.load_object(&rel, true, show_progress).await
    }

    /// Loads a source given as a local path or an `s3://` URL.
    pub async fn load_source(&self, source: &str, show_progress: bool) -> Result<LoadReport> {
        if let Some(rel) = self.store().relative(source) {
            return self.load_object(&rel, false, show_progress).await;
        }
        if source.starts_with("s3://") {
            let reader = self.store().foreign_reader(source).await?;
            let name = source
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("upload.csv")
                .to_string();
            return self.load_reader(reader, &name, show_progress).await;
        }
        self.load_path(Path::new(source), show_progress).await
    }

    /// Stores `reader` under `raw/cli/<time>-<name>` and loads it.
    pub async fn load_reader<R: tokio::io::AsyncRead + Unpin>(
        &self,
        reader: R,
        name: &str,
        show_progress: bool,
    ) -> Result<LoadReport> {
        let rel = raw_cli_path(name);
        self.store().put_stream(&rel, reader, |_| {}).await?;
        failpoint::hit("after-raw");
        self.load_object(&rel, true, show_progress).await
    }

    /// Loads a raw file already in the store. `copied` says the file was stored for this
    /// load alone, so a no-op load may remove it again (its content is in the store
    /// under the earlier load's name).
    pub async fn load_object(
        &self,
        rel: &str,
        copied: bool,
        show_progress: bool,
    ) -> Result<LoadReport> {
        let clock = Instant::now();
        let started = now_micros();
        let total = self.store().size(rel).await?;
        let store = self.store().clone();
        let file = rel.to_string();
        let scanned = tokio::task::spawn_blocking(move || {
            let reader = store.blocking_reader(&file)?;
            scan::scan(reader, &file, total, show_progress)
        })
        .await
        .map_err(|e| WarehouseError::Internal(format!("the scan of {rel} stopped: {e}")))?;
        if let Ok(scan) = &scanned {
            self.keep_line_index(&scan.hash, &scan.lines).await;
        }
        // Everything from here reads ids and members and commits: one writer at a time
        // on the store, whichever process or host it runs in.
        let lease = self.writer_lease(&format!("load of {rel}")).await?;
        let job = Job {
            rel,
            copied,
            show_progress,
            total,
            lease: &lease,
            clock,
            started,
        };
        let result = self.load_scanned(&job, scanned).await;
        lease.release().await;
        let mut report = result?;
        if report.status == LoadStatus::Loaded {
            // After the commit and the lease: a summary that cannot be made is logged,
            // never a failed load.
            match self.change_summary(report.load_id).await {
                Ok(summary) => report.changes = Some(summary),
                Err(e) => tracing::warn!("summarising what load {} changed: {e}", report.load_id),
            }
        }
        Ok(report)
    }

    /// The part of a load that holds the writer lease: decide from the warehouse as it
    /// is now, then dimensions → facts → quarantine → record.
    async fn load_scanned(&self, job: &Job<'_>, scanned: Result<Scan>) -> Result<LoadReport> {
        let now = lookup::Now::read(self).await?;
        let mut report = LoadReport::new(now.load_id, job.rel, job.total, job.lease);
        let mut scan = match scanned {
            Ok(scan) => scan,
            Err(e) if e.is_unreadable_input() => {
                // Nothing loadable: record the attempt; the raw file stays in the store.
                report.error = Some(e.to_string());
                return self.finish(job, report, Committed::new()).await;
            }
            Err(e) => return Err(e),
        };
        failpoint::hit("after-scan");
        report.scanned(&scan);
        if let Some(committed) = self.ends_early(job, &now, &scan, &mut report).await? {
            return self.finish(job, report, committed).await;
        }
        let mut committed = Committed::new();
        let keys = self
            .dimensions(job, &now, &scan, &mut report, &mut committed)
            .await?;
        failpoint::hit("after-dimensions");
        let written = self
            .facts(job, &now, &mut scan, keys, &mut committed)
            .await?;
        failpoint::hit("after-facts");
        self.quarantine(job, &now, &scan, &mut committed).await?;
        failpoint::hit("after-quarantine");
        report.status = LoadStatus::Loaded;
        report.rows_loaded = written;
        report.years_replaced = scan.years.iter().copied().collect();
        let report = self.finish(job, report, committed).await?;
        failpoint::hit("after-loads");
        Ok(report)
    }

    /// Whether the load ends before it replaces anything, and what it committed then:
    /// its content is already the warehouse's, no row is loadable (its bad rows still
    /// go to quarantine), or it would shrink a fiscal year too far (held).
    async fn ends_early(
        &self,
        job: &Job<'_>,
        now: &lookup::Now,
        scan: &Scan,
        report: &mut LoadReport,
    ) -> Result<Option<Committed>> {
        if let Some(previous) = decide::repeats(&now.loads, &scan.hash) {
            if job.copied && previous.source_file != job.rel {
                self.store().delete(job.rel).await?;
                report.source_file = previous.source_file.clone();
            }
            report.unchanged(previous);
            return Ok(Some(Committed::new()));
        }
        if scan.rows_ok == 0 {
            report.error = Some(decide::nothing_loadable(
                job.rel,
                now.load_id,
                scan.quarantine.len(),
                scan.rows_read,
            ));
            let mut committed = Committed::new();
            self.quarantine(job, now, scan, &mut committed).await?;
            return Ok(Some(committed));
        }
        if !self.replace_years {
            let before = lookup::year_sizes(&now.ctx, &scan.years).await?;
            let limit = self.config.max_shrink_percent;
            if let Some(hold) = decide::hold(&before, &scan.year_sizes, limit, now.load_id) {
                report.status = LoadStatus::Held;
                report.hold = Some(hold);
                return Ok(Some(Committed::new()));
            }
        }
        Ok(None)
    }

    /// Settles held load `load_id`: loads its raw file anyway (its fiscal years are
    /// replaced, as a new load), or with `discard` records that it was let go.
    pub async fn release(
        &self,
        load_id: i64,
        discard: bool,
        show_progress: bool,
    ) -> Result<LoadReport> {
        let loads = self.loads().await?;
        let held = loads
            .iter()
            .find(|l| l.load_id == load_id)
            .ok_or(WarehouseError::NoSuchLoad(load_id))?;
        if !held.is_held() {
            return Err(WarehouseError::NotHeld {
                load_id,
                status: held.status.to_string(),
            });
        }
        if !crate::loads::waiting(&loads)
            .iter()
            .any(|l| l.load_id == load_id)
        {
            return Err(WarehouseError::AlreadySettled(load_id));
        }
        if !discard {
            return self
                .clone()
                .replacing_years()
                .load_object(&held.source_file, false, show_progress)
                .await;
        }
        let clock = Instant::now();
        let started = now_micros();
        let lease = self
            .writer_lease(&format!("discard of held load {load_id}"))
            .await?;
        let job = Job {
            rel: &held.source_file,
            copied: false,
            show_progress,
            total: 0,
            lease: &lease,
            clock,
            started,
        };
        let result = async {
            let now = lookup::Now::read(self).await?;
            let mut report = LoadReport::new(now.load_id, job.rel, 0, &lease);
            report.status = LoadStatus::Discarded;
            report.content_hash = held.content_hash.clone();
            report.dialect = Some(held.dialect.clone());
            report.data_as_of = held.data_as_of.clone();
            report.hold = Some(format!("held load {load_id} let go without loading it"));
            self.finish(&job, report, Committed::new()).await
        }
        .await;
        lease.release().await;
        result
    }
}

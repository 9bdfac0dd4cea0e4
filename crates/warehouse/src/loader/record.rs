//! The last steps: the quarantined rows, and the `meta.loads` row that records the
//! load — its status, counts, and the Delta version of every table after it (what
//! time travel reads).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use citybooks_model::Table;
use datafusion::logical_expr::{col, lit};

use super::dimensions::str_arr;
use super::lookup::Now;
use super::scan::Scan;
use super::{now_micros, Committed, Job, LoadReport, LoadStatus, QuarantinedRow};
use crate::error::{Result, WarehouseError};
use crate::loads::LoadRecord;
use crate::tables::{Input, Warehouse, WriteMode};

impl Warehouse {
    /// Commits the scan's quarantined rows, if any. The commit also removes rows of
    /// loads that crashed before their `meta.loads` row (ids above the last recorded
    /// load), so a load redone after a crash leaves its bad rows once.
    pub(super) async fn quarantine(
        &self,
        job: &Job<'_>,
        now: &Now,
        scan: &Scan,
        committed: &mut Committed,
    ) -> Result<()> {
        if scan.quarantine.is_empty() {
            return Ok(());
        }
        let b = quarantine_batch(now.load_id, job.rel, &scan.quarantine)?;
        let last_recorded = now.loads.iter().map(|l| l.load_id).max().unwrap_or(0);
        let orphans = col("load_id").gt(lit(last_recorded));
        let v = self
            .commit(
                job.lease,
                Table::Quarantine,
                Input::Batches(vec![b]),
                WriteMode::Replace(orphans),
                now.load_id,
            )
            .await?;
        committed.insert(Table::Quarantine.qualified_name(), v);
        Ok(())
    }

    /// Ends a load, however it went: records it in `meta.loads` with what it
    /// `committed` and the current version of every other table, and returns its
    /// report with the time it took.
    pub(super) async fn finish(
        &self,
        job: &Job<'_>,
        mut report: LoadReport,
        committed: Committed,
    ) -> Result<LoadReport> {
        let versions = self.versions_now(committed).await?;
        self.record(job, &report, versions).await?;
        report.seconds = job.clock.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The versions after this load: what it committed, and the current version of
    /// every table it did not touch, as JSON.
    async fn versions_now(&self, mut versions: Committed) -> Result<String> {
        for table in Table::all() {
            if table == Table::Loads || versions.contains_key(&table.qualified_name()) {
                continue;
            }
            if let Some(t) = self.table(table).await? {
                if let Some(v) = t.version() {
                    versions.insert(table.qualified_name(), v as i64);
                }
            }
        }
        serde_json::to_string(&versions).map_err(|e| WarehouseError::Internal(e.to_string()))
    }

    /// Appends the load's row to `meta.loads`. A `meta.loads` written by an older
    /// citybooks (status text with the reason, no `error` and `hold` columns) is
    /// rewritten once in today's shape, with this row.
    async fn record(&self, job: &Job<'_>, report: &LoadReport, versions: String) -> Result<()> {
        let replaced: BTreeSet<i32> = match report.status {
            LoadStatus::Loaded => report.years_replaced.iter().copied().collect(),
            _ => BTreeSet::new(),
        };
        let row = LoadRecord {
            load_id: report.load_id,
            source_file: report.source_file.clone(),
            content_hash: report.content_hash.clone(),
            dialect: report.dialect.clone().unwrap_or_default(),
            status: report.status,
            rows_read: report.rows_read as i64,
            rows_loaded: report.rows_loaded as i64,
            rows_quarantined: report.rows_quarantined as i64,
            years_replaced: years_text(&replaced),
            data_as_of: report.data_as_of.clone(),
            conformed: serde_json::to_string(&report.conformed).unwrap_or_else(|_| "[]".into()),
            table_versions: versions,
            started: job.started,
            finished: now_micros(),
            error: report.error.clone(),
            hold: report.hold.clone(),
        };
        let (rows, mode) = if self.needs_migration(Table::Loads).await? {
            let mut rows = self.loads().await?;
            tracing::info!(
                "meta.loads: rewriting its {} rows with the error and hold columns",
                rows.len()
            );
            rows.push(row);
            (rows, WriteMode::Rewrite)
        } else {
            (vec![row], WriteMode::Append)
        };
        let batch = LoadRecord::to_batch(&rows)?;
        self.commit(
            job.lease,
            Table::Loads,
            Input::Batches(vec![batch]),
            mode,
            report.load_id,
        )
        .await?;
        Ok(())
    }
}

fn quarantine_batch(load_id: i64, file: &str, rows: &[QuarantinedRow]) -> Result<RecordBatch> {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![load_id; rows.len()])),
        str_arr(rows.iter().map(|_| file)),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.line as i64).collect::<Vec<_>>(),
        )),
        Arc::new(
            rows.iter()
                .map(|r| r.field.as_deref())
                .collect::<StringArray>(),
        ),
        str_arr(rows.iter().map(|r| r.reason.as_str())),
        str_arr(rows.iter().map(|r| r.raw.as_str())),
    ];
    Ok(RecordBatch::try_new(Table::Quarantine.schema(), cols)?)
}

fn years_text(years: &BTreeSet<i32>) -> String {
    years
        .iter()
        .map(|y| y.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use citybooks_store::config::{LoadConfig, StoreConfig};
    use citybooks_store::Store;

    use super::*;
    use crate::loads::tests::old_shape_batch;

    #[tokio::test]
    async fn a_meta_loads_of_an_older_citybooks_reads_and_is_rewritten_once_by_the_next_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::default(), Some(dir.path().join("store"))).unwrap();
        let wh = Warehouse::new(store, LoadConfig::default());
        let lease = wh.writer_lease("test").await.unwrap();
        let old = Input::Batches(vec![old_shape_batch()]);
        wh.commit(&lease, Table::Loads, old, WriteMode::Append, 4)
            .await
            .unwrap();
        lease.release().await;
        let reasons = "select load_id, status, coalesce(error, hold, '-') as reason from meta.loads order by load_id";
        let text = |batches: &[arrow::array::RecordBatch]| {
            arrow::util::pretty::pretty_format_batches(batches)
                .unwrap()
                .to_string()
        };
        // SQL sees today's shape before any new load.
        let ctx = wh.session(None).await.unwrap();
        let before = text(&ctx.sql(reasons).await.unwrap().collect().await.unwrap());
        for expected in [
            "| 1       | loaded    | -",
            "| 2       | failed    | raw/cli/x.csv: nothing could be loaded",
            "| 3       | held      | fiscal year 2024 would shrink by 90%",
            "| 4       | discarded | held load 3 let go without loading it",
        ] {
            assert!(before.contains(expected), "{before}");
        }
        // The next load rewrites the table once, in today's shape, with its own row.
        let sample =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/datasf-fy2025-sample.csv");
        let report = wh.load_path(&sample, false).await.unwrap();
        assert_eq!((report.load_id, report.status), (5, LoadStatus::Loaded));
        assert!(!wh.needs_migration(Table::Loads).await.unwrap());
        let loads = wh.loads().await.unwrap();
        let statuses: Vec<_> = loads.iter().map(|l| l.status).collect();
        use LoadStatus::*;
        assert_eq!(statuses, [Loaded, Failed, Held, Discarded, Loaded]);
        assert_eq!(
            loads[1].error.as_deref(),
            Some("raw/cli/x.csv: nothing could be loaded")
        );
        let ctx = wh.session(None).await.unwrap();
        assert_eq!(
            text(&ctx.sql(reasons).await.unwrap().collect().await.unwrap())
                .lines()
                .count(),
            before.lines().count() + 1
        );
        // The old version stays for time travel, and the one after it is appended to.
        let delta = wh.table(Table::Loads).await.unwrap().unwrap();
        assert_eq!(delta.version(), Some(1));
        assert!(wh.table_at(Table::Loads, Some(0)).await.unwrap().is_some());
        let again = wh.load_path(&sample, false).await.unwrap();
        assert_eq!(again.status, LoadStatus::Unchanged);
        assert_eq!(wh.loads().await.unwrap().len(), 6);
    }
}

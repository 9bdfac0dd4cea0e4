//! Housekeeping of a warehouse that lives for years of weekly loads: every load leaves
//! the files of the fiscal years it replaced in the store (time travel reads them), a
//! small file in each table it appended to (`meta.loads` gains one per load, the
//! dimensions one per load that met new members), and a commit file in each table's
//! Delta log. `citybooks vacuum`, per table:
//! 1. compacts the small files of each partition into files of up to
//!    `[load] target_file_mib` (Delta's `optimize`; the rows do not change, so the
//!    commit changes no query's answer);
//! 2. writes a checkpoint of the log;
//! 3. removes the data files no version within the retention period references any
//!    more, the compacted ones included once they are older than the retention.
//!
//! Time travel (`--as-of-load`) to a load older than the retention may then fail: its
//! files are gone. The log itself is never shortened.
//!
//! Loads do the first two steps on their own every [`CHECKPOINT_EVERY`](crate::tables::CHECKPOINT_EVERY) commits to a
//! table (compaction there only for the tables that grow by small appends:
//! [`Warehouse::tidy_log`]), so a warehouse nobody vacuums still opens fast; what they
//! leave behind is only disk, and `citybooks vacuum` reclaims it.

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use citybooks_model::Table;
use deltalake::DeltaTable;
use serde::Serialize;

use crate::error::Result;
use crate::tables::{commit_properties, writer_properties, Warehouse};

/// What a vacuum did (or, dry, would do) to one table.
#[derive(Debug, Clone, Serialize)]
pub struct Vacuumed {
    /// Small files the compaction merged (0 in a dry run, which compacts nothing).
    pub compacted: u64,
    /// The files it merged them into.
    pub compacted_into: u64,
    /// Data files no longer referenced within the retention: removed (or listed).
    pub files: usize,
    /// Whether a checkpoint of the log was written.
    pub checkpoint: bool,
}

impl Warehouse {
    /// Compacts the small files of `delta` (Delta's `optimize`, bins of up to
    /// `[load] target_file_mib`). The rows do not change.
    pub(crate) async fn compact(
        &self,
        table: Table,
        delta: DeltaTable,
    ) -> Result<(DeltaTable, deltalake::operations::optimize::Metrics)> {
        let target = NonZeroU64::new(self.config.target_file_mib << 20).expect("at least one MiB");
        delta
            .optimize()
            .with_target_size(target)
            .with_writer_properties(writer_properties())
            .with_commit_properties(commit_properties(
                "citybooks.operation",
                serde_json::json!("compact"),
            ))
            .await
            .map_err(Self::delta_err(table))
    }

    /// What a load does to a table every [`CHECKPOINT_EVERY`](crate::tables::CHECKPOINT_EVERY) commits: compacts its
    /// small files unless it is the fact table (whose weekly loads write one file per
    /// replaced fiscal year; compacting it is `citybooks vacuum`'s, off the load path),
    /// then checkpoints its log. Either failing costs only speed, the commit stands: a
    /// warning.
    pub(crate) async fn tidy_log(&self, table: Table, delta: DeltaTable) {
        let name = table.qualified_name();
        let delta = if table == Table::Transaction {
            delta
        } else {
            match self.compact(table, delta.clone()).await {
                Ok((compacted, _)) => compacted,
                Err(e) => {
                    tracing::warn!(
                        "{name}: compacting its small files failed (the load stands): {e}"
                    );
                    delta
                }
            }
        };
        if let Err(e) = deltalake::checkpoints::create_checkpoint(&delta, None).await {
            tracing::warn!("{name}: the checkpoint of its log failed (the load stands): {e}");
        }
    }

    /// Compacts every table's small files, checkpoints its log and removes the data
    /// files no version younger than `retention` references (`dry_run`: only counts
    /// them, and compacts nothing), under the writer lease.
    pub async fn vacuum(
        &self,
        retention: chrono::Duration,
        dry_run: bool,
    ) -> Result<BTreeMap<String, Vacuumed>> {
        let lease = self.writer_lease("vacuum").await?;
        let result = async {
            let mut done = BTreeMap::new();
            for table in Table::all() {
                let Some(delta) = self.table(table).await? else {
                    continue;
                };
                let name = table.qualified_name();
                let err = Self::delta_err(table);
                lease.check().await?;
                let (delta, compacted, compacted_into) = if dry_run {
                    (delta, 0, 0)
                } else {
                    let (delta, metrics) = self.compact(table, delta).await?;
                    (delta, metrics.num_files_removed, metrics.num_files_added)
                };
                lease.check().await?;
                let checkpoint = !dry_run;
                if checkpoint {
                    deltalake::checkpoints::create_checkpoint(&delta, None)
                        .await
                        .map_err(&err)?;
                }
                let (_, metrics) = delta
                    .vacuum()
                    .with_retention_period(retention)
                    .with_enforce_retention_duration(false)
                    .with_dry_run(dry_run)
                    .await
                    .map_err(err)?;
                done.insert(
                    name.clone(),
                    Vacuumed {
                        compacted,
                        compacted_into,
                        files: metrics.files_deleted.len(),
                        checkpoint,
                    },
                );
            }
            Ok(done)
        }
        .await;
        lease.release().await;
        result
    }
}

//! Housekeeping of a warehouse that lives for years of weekly loads: every load leaves
//! the files of the fiscal years it replaced in the store (time travel reads them), and
//! a commit file in each table's Delta log. `citybooks vacuum` writes a checkpoint of
//! each log (so opening a table reads one Parquet file, not every commit since the
//! first) and removes data files that no version within the retention period
//! references any more. Time travel (`--as-of-load`) to a load older than the retention
//! may then fail: its files are gone.

use std::collections::BTreeMap;

use citybooks_model::Table;
use serde::Serialize;

use crate::error::{Result, WarehouseError};
use crate::loader::WRITER_LEASE;
use crate::tables::Warehouse;

/// What a vacuum did (or, dry, would do) to one table.
#[derive(Debug, Clone, Serialize)]
pub struct Vacuumed {
    /// Data files no longer referenced within the retention: removed (or listed).
    pub files: usize,
    /// Whether a checkpoint of the log was written.
    pub checkpoint: bool,
}

impl Warehouse {
    /// Checkpoints every table's log and removes the data files no version younger than
    /// `retention` references (`dry_run`: only counts them), under the writer lease.
    pub async fn vacuum(
        &self,
        retention: chrono::Duration,
        dry_run: bool,
    ) -> Result<BTreeMap<String, Vacuumed>> {
        let ttl = std::time::Duration::from_secs(self.config.lease_secs.max(1));
        let lease = self
            .store()
            .acquire_lease(WRITER_LEASE, "vacuum", ttl, |holder| {
                tracing::warn!("vacuum: waiting for the writer lease, held by {holder}")
            })
            .await?;
        let result = async {
            let mut done = BTreeMap::new();
            for table in Table::ALL {
                let Some(delta) = self.table(table).await? else {
                    continue;
                };
                let name = table.qualified_name();
                let err = |e: deltalake::DeltaTableError| {
                    WarehouseError::Other(format!("vacuum of {name}: {e}"))
                };
                lease.check().await?;
                let checkpoint = !dry_run;
                if checkpoint {
                    deltalake::checkpoints::create_checkpoint(&delta, None)
                        .await
                        .map_err(err)?;
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

//! `meta.publishes`: one row per publish of the star schema to a PostgreSQL or Redshift
//! (the `citybooks-publish` crate), whatever its outcome.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use citybooks_model::Table;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::error::Result;
use crate::loader::max_of;
use crate::tables::{Input, Warehouse, WriteMode};

/// One row of `meta.publishes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishRecord {
    /// Set by [`Warehouse::record_publish`]: the next number.
    pub publish_id: i64,
    /// The target, without a password.
    pub target: String,
    pub target_schema: String,
    /// The load the target held afterwards (None: the publish failed).
    pub load_id: Option<i64>,
    /// Fiscal years sent, comma-separated.
    pub years: String,
    pub rows: i64,
    pub seconds: f64,
    /// `published`, `up to date` or `failed: <reason>`.
    pub status: String,
    /// Microseconds since the epoch, UTC.
    pub started: i64,
    pub finished: i64,
}

impl PublishRecord {
    /// The rows as one batch of `meta.publishes`' schema.
    pub fn to_batch(rows: &[PublishRecord]) -> Result<RecordBatch> {
        let s = |f: fn(&PublishRecord) -> &str| {
            Arc::new(rows.iter().map(f).map(Some).collect::<StringArray>()) as ArrayRef
        };
        let ts = |f: fn(&PublishRecord) -> i64| {
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(f).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ) as ArrayRef
        };
        let columns = vec![
            Arc::new(rows.iter().map(|r| r.publish_id).collect::<Int64Array>()) as ArrayRef,
            s(|r| &r.target),
            s(|r| &r.target_schema),
            Arc::new(rows.iter().map(|r| r.load_id).collect::<Int64Array>()) as ArrayRef,
            s(|r| &r.years),
            Arc::new(rows.iter().map(|r| r.rows).collect::<Int64Array>()) as ArrayRef,
            Arc::new(rows.iter().map(|r| r.seconds).collect::<Float64Array>()) as ArrayRef,
            s(|r| &r.status),
            ts(|r| r.started),
            ts(|r| r.finished),
        ];
        Ok(RecordBatch::try_new(Table::Publishes.schema(), columns)?)
    }
}

impl Warehouse {
    /// Appends `row` to `meta.publishes` with the next `publish_id`, under the writer
    /// lease (so the number is never handed out twice). Returns the number.
    pub async fn record_publish(&self, mut row: PublishRecord) -> Result<i64> {
        let lease = self
            .writer_lease(&format!("recording a publish to {}", row.target))
            .await?;
        let result = async {
            row.publish_id = self.last_publish_id().await? + 1;
            let batch = PublishRecord::to_batch(std::slice::from_ref(&row))?;
            self.commit(
                &lease,
                Table::Publishes,
                Input::Batches(vec![batch]),
                WriteMode::Append,
                row.load_id.unwrap_or_default(),
            )
            .await?;
            Ok(row.publish_id)
        }
        .await;
        lease.release().await;
        result
    }

    async fn last_publish_id(&self) -> Result<i64> {
        let Some(table) = self.table(Table::Publishes).await? else {
            return Ok(0);
        };
        let ctx = SessionContext::new();
        table
            .update_datafusion_session(&ctx.state())
            .map_err(Self::delta_err(Table::Publishes))?;
        ctx.register_table("publishes", table.table_provider().await?)?;
        max_of(&ctx, "select publish_id from publishes", "publish_id").await
    }
}

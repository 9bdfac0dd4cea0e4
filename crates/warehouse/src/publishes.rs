//! `meta.publishes`: one row per publish of the star schema to a PostgreSQL or Redshift
//! (the `citybooks-publish` crate), whatever its outcome.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use citybooks_model::Table;
use serde::Serialize;

use crate::error::{Result, WarehouseError};
use crate::loads::{ints, status_and_reason, strings};
use crate::tables::{Input, Warehouse, WriteMode};

/// How a publish ended: the word `meta.publishes.status` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishStatus {
    /// The target now holds the load.
    Published,
    /// The target already held it: nothing was sent.
    UpToDate,
    /// Nothing changed in the target; `error` says why.
    Failed,
}

impl PublishStatus {
    const ALL: [PublishStatus; 3] = [
        PublishStatus::Published,
        PublishStatus::UpToDate,
        PublishStatus::Failed,
    ];

    /// The word `meta.publishes.status` holds.
    pub fn as_str(self) -> &'static str {
        match self {
            PublishStatus::Published => "published",
            PublishStatus::UpToDate => "up to date",
            PublishStatus::Failed => "failed",
        }
    }

    /// Reads a stored status: the word, or the `failed: <reason>` text stores written
    /// before `error` had a column of its own (the reason is returned).
    pub fn parse(text: &str) -> Option<(PublishStatus, Option<String>)> {
        let (word, reason) = status_and_reason(text);
        let status = PublishStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == word)?;
        Some((status, reason))
    }
}

impl Serialize for PublishStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for PublishStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    pub status: PublishStatus,
    /// Microseconds since the epoch, UTC.
    pub started: i64,
    pub finished: i64,
    /// Why it failed (status failed).
    pub error: Option<String>,
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
            s(|r| r.status.as_str()),
            ts(|r| r.started),
            ts(|r| r.finished),
            Arc::new(
                rows.iter()
                    .map(|r| r.error.as_deref())
                    .collect::<StringArray>(),
            ) as ArrayRef,
        ];
        Ok(RecordBatch::try_new(Table::Publishes.schema(), columns)?)
    }

    /// The rows of `meta.publishes` batches, today's shape or the one before `error`
    /// had a column (`failed: <reason>` in `status`).
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Vec<PublishRecord>> {
        let mut out = Vec::new();
        for b in batches {
            let (s, i) = (|name: &str| strings(b, name), |name: &str| ints(b, name));
            let (ids, targets, schemas, loads, years) = (
                i("publish_id")?,
                s("target")?,
                s("target_schema")?,
                i("load_id")?,
                s("years")?,
            );
            let (rows, statuses, started, finished) =
                (i("rows")?, s("status")?, i("started")?, i("finished")?);
            let seconds = b
                .column_by_name("seconds")
                .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
                .ok_or_else(|| WarehouseError::corrupt("column seconds", "not a float"))?;
            let errors = match b.column_by_name("error") {
                Some(_) => s("error")?,
                None => vec![None; b.num_rows()],
            };
            for r in 0..b.num_rows() {
                let text = statuses[r].clone().unwrap_or_default();
                let (status, reason) = PublishStatus::parse(&text).ok_or_else(|| {
                    WarehouseError::corrupt(
                        Table::Publishes.qualified_name(),
                        format!("status {text:?} of publish {:?}", ids[r]),
                    )
                })?;
                out.push(PublishRecord {
                    publish_id: ids[r].unwrap_or_default(),
                    target: targets[r].clone().unwrap_or_default(),
                    target_schema: schemas[r].clone().unwrap_or_default(),
                    load_id: loads[r],
                    years: years[r].clone().unwrap_or_default(),
                    rows: rows[r].unwrap_or_default(),
                    seconds: seconds.value(r),
                    status,
                    started: started[r].unwrap_or_default(),
                    finished: finished[r].unwrap_or_default(),
                    error: errors[r].clone().or(reason),
                });
            }
        }
        Ok(out)
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
            let id = row.publish_id;
            // A table of an older citybooks is rewritten once, in today's shape.
            let (rows, mode) = if self.needs_migration(Table::Publishes).await? {
                let mut rows = self.publishes().await?;
                rows.push(row.clone());
                (rows, WriteMode::Rewrite)
            } else {
                (vec![row.clone()], WriteMode::Append)
            };
            self.commit(
                &lease,
                Table::Publishes,
                Input::Batches(vec![PublishRecord::to_batch(&rows)?]),
                mode,
                row.load_id.unwrap_or_default(),
            )
            .await?;
            Ok(id)
        }
        .await;
        lease.release().await;
        result
    }

    async fn last_publish_id(&self) -> Result<i64> {
        let rows = self.publishes().await?;
        Ok(rows.iter().map(|r| r.publish_id).max().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use citybooks_store::config::{LoadConfig, StoreConfig};
    use citybooks_store::Store;

    use super::*;

    fn record(status: PublishStatus, error: Option<&str>) -> PublishRecord {
        PublishRecord {
            publish_id: 0,
            target: "postgres://city@db:5432/finance".into(),
            target_schema: "report".into(),
            load_id: (status != PublishStatus::Failed).then_some(1),
            years: "2025".into(),
            rows: 10,
            seconds: 0.5,
            status,
            started: 1,
            finished: 2,
            error: error.map(str::to_string),
        }
    }

    /// `meta.publishes` as citybooks wrote it before `error` had a column.
    fn old_shape_batch() -> RecordBatch {
        let mut rows = vec![record(PublishStatus::Published, None)];
        rows[0].publish_id = 1;
        let today = PublishRecord::to_batch(&rows).unwrap();
        let mut old = today
            .project(&(0..today.num_columns() - 1).collect::<Vec<_>>())
            .unwrap();
        let status = Arc::new(StringArray::from(vec!["failed: the target refused"])) as ArrayRef;
        let mut columns = old.columns().to_vec();
        let at = old.schema().index_of("status").unwrap();
        columns[at] = status;
        old = RecordBatch::try_new(old.schema(), columns).unwrap();
        old
    }

    #[tokio::test]
    async fn a_meta_publishes_of_an_older_citybooks_reads_and_is_rewritten_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::default(), Some(dir.path().join("store"))).unwrap();
        let wh = Warehouse::new(store, LoadConfig::default());
        let lease = wh.writer_lease("test").await.unwrap();
        let old = Input::Batches(vec![old_shape_batch()]);
        wh.commit(&lease, Table::Publishes, old, WriteMode::Append, 0)
            .await
            .unwrap();
        lease.release().await;
        assert!(wh.needs_migration(Table::Publishes).await.unwrap());
        // Read in today's shape: the reason moved out of the status.
        let rows = wh.publishes().await.unwrap();
        assert_eq!(rows[0].status, PublishStatus::Failed);
        assert_eq!(rows[0].error.as_deref(), Some("the target refused"));
        let ctx = wh.session(None).await.unwrap();
        let sql = "select publish_id, status, error from meta.publishes order by publish_id";
        let text = |b: &[RecordBatch]| {
            arrow::util::pretty::pretty_format_batches(b)
                .unwrap()
                .to_string()
        };
        let before = text(&ctx.sql(sql).await.unwrap().collect().await.unwrap());
        assert!(
            before.contains("| 1          | failed | the target refused |"),
            "{before}"
        );
        // The next publish rewrites the table once, with its own row.
        let id = wh
            .record_publish(record(PublishStatus::Failed, Some("no route to host")))
            .await
            .unwrap();
        assert_eq!(id, 2);
        assert!(!wh.needs_migration(Table::Publishes).await.unwrap());
        let id = wh
            .record_publish(record(PublishStatus::UpToDate, None))
            .await
            .unwrap();
        assert_eq!(id, 3);
        let statuses: Vec<(PublishStatus, Option<String>)> = wh
            .publishes()
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.status, r.error))
            .collect();
        assert_eq!(
            statuses,
            [
                (PublishStatus::Failed, Some("the target refused".into())),
                (PublishStatus::Failed, Some("no route to host".into())),
                (PublishStatus::UpToDate, None)
            ]
        );
    }
}

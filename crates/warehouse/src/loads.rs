//! `meta.loads`: one row per load — what was read, what was loaded, which fiscal years
//! were replaced, and the table versions it left (for time travel).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use citybooks_model::Table;
use serde::Serialize;

use crate::error::{Result, WarehouseError};

/// The status of a load that committed data.
pub const LOADED: &str = "loaded";
/// The status of a load whose content was already the warehouse's (a no-op).
pub const UNCHANGED: &str = "unchanged";
/// The status of a load from which nothing could be loaded.
pub const FAILED: &str = "failed";
/// The status of a load that would have shrunk a fiscal year too far: nothing was
/// replaced until someone releases it (`held: <reason>`).
pub const HELD: &str = "held";
/// The status of the record that lets a held load go without loading it
/// (`discarded: ...`).
pub const DISCARDED: &str = "discarded";

/// One row of `meta.loads`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadRecord {
    pub load_id: i64,
    pub source_file: String,
    pub content_hash: String,
    pub dialect: String,
    /// `loaded`, `unchanged`, `failed: <reason>`, `held: <reason>` or
    /// `discarded: <which held load>`.
    pub status: String,
    pub rows_read: i64,
    pub rows_loaded: i64,
    pub rows_quarantined: i64,
    /// Fiscal years replaced, comma-separated, ascending.
    pub years_replaced: String,
    pub data_as_of: Option<String>,
    /// The names rule 6 conformed, as a JSON array of sentences.
    pub conformed: String,
    /// `{"report.transaction": 3, ...}`: each table's Delta version after this load.
    pub table_versions: String,
    /// Microseconds since the epoch, UTC.
    pub started: i64,
    pub finished: i64,
}

impl LoadRecord {
    /// The fiscal years this load replaced.
    pub fn years(&self) -> Vec<i32> {
        self.years_replaced
            .split(',')
            .filter_map(|y| y.trim().parse().ok())
            .collect()
    }

    /// Whether this load was held (see [`HELD`]).
    pub fn is_held(&self) -> bool {
        self.status.starts_with(HELD)
    }

    /// Whether this load committed data.
    pub fn is_loaded(&self) -> bool {
        self.status == LOADED
    }

    /// The Delta version of each table right after this load.
    pub fn table_versions(&self) -> Result<HashMap<String, i64>> {
        serde_json::from_str(&self.table_versions).map_err(|e| {
            WarehouseError::Other(format!(
                "meta.loads row {}: table_versions: {e}",
                self.load_id
            ))
        })
    }

    /// The rows as one batch of `meta.loads`' schema.
    pub fn to_batch(rows: &[LoadRecord]) -> Result<RecordBatch> {
        let s = |f: fn(&LoadRecord) -> &str| {
            Arc::new(rows.iter().map(f).map(Some).collect::<StringArray>()) as ArrayRef
        };
        let i = |f: fn(&LoadRecord) -> i64| {
            Arc::new(rows.iter().map(f).collect::<Int64Array>()) as ArrayRef
        };
        let ts = |f: fn(&LoadRecord) -> i64| {
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(f).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ) as ArrayRef
        };
        let columns = vec![
            i(|r| r.load_id),
            s(|r| &r.source_file),
            s(|r| &r.content_hash),
            s(|r| &r.dialect),
            s(|r| &r.status),
            i(|r| r.rows_read),
            i(|r| r.rows_loaded),
            i(|r| r.rows_quarantined),
            s(|r| &r.years_replaced),
            Arc::new(
                rows.iter()
                    .map(|r| r.data_as_of.as_deref())
                    .collect::<StringArray>(),
            ) as ArrayRef,
            s(|r| &r.conformed),
            s(|r| &r.table_versions),
            ts(|r| r.started),
            ts(|r| r.finished),
        ];
        Ok(RecordBatch::try_new(Table::Loads.schema(), columns)?)
    }

    /// Reads rows back from batches of `meta.loads` (whatever string or timestamp
    /// encoding the engine returned).
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Vec<LoadRecord>> {
        let mut out = Vec::new();
        for b in batches {
            let s = |name: &str| strings(b, name);
            let i = |name: &str| ints(b, name);
            let (ids, files, hashes, dialects, statuses) = (
                i("load_id")?,
                s("source_file")?,
                s("content_hash")?,
                s("dialect")?,
                s("status")?,
            );
            let (read, loaded, quarantined) =
                (i("rows_read")?, i("rows_loaded")?, i("rows_quarantined")?);
            let (years, as_of, conformed, versions) = (
                s("years_replaced")?,
                s("data_as_of")?,
                s("conformed")?,
                s("table_versions")?,
            );
            let (started, finished) = (i("started")?, i("finished")?);
            for r in 0..b.num_rows() {
                out.push(LoadRecord {
                    load_id: ids[r].unwrap_or_default(),
                    source_file: files[r].clone().unwrap_or_default(),
                    content_hash: hashes[r].clone().unwrap_or_default(),
                    dialect: dialects[r].clone().unwrap_or_default(),
                    status: statuses[r].clone().unwrap_or_default(),
                    rows_read: read[r].unwrap_or_default(),
                    rows_loaded: loaded[r].unwrap_or_default(),
                    rows_quarantined: quarantined[r].unwrap_or_default(),
                    years_replaced: years[r].clone().unwrap_or_default(),
                    data_as_of: as_of[r].clone(),
                    conformed: conformed[r].clone().unwrap_or_default(),
                    table_versions: versions[r].clone().unwrap_or_default(),
                    started: started[r].unwrap_or_default(),
                    finished: finished[r].unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }
}

fn column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| WarehouseError::Other(format!("column {name} is missing")))?;
    let col = match col.data_type() {
        DataType::Timestamp(_, _) if to == &DataType::Int64 => cast(
            col,
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        )?,
        _ => col.clone(),
    };
    Ok(cast(&col, to)?)
}

/// A column as optional strings, whatever its string encoding.
pub fn strings(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let col = column(batch, name, &DataType::Utf8)?;
    let col = col
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| WarehouseError::Other(format!("column {name} is not text")))?;
    Ok((0..col.len())
        .map(|i| col.is_valid(i).then(|| col.value(i).to_string()))
        .collect())
}

/// A column as optional 64-bit integers (timestamps as microseconds).
pub fn ints(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>> {
    let col = column(batch, name, &DataType::Int64)?;
    let col = col
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| WarehouseError::Other(format!("column {name} is not an integer")))?;
    Ok((0..col.len())
        .map(|i| col.is_valid(i).then(|| col.value(i)))
        .collect())
}

/// The held loads nobody has released or discarded yet: a held load is settled by a
/// later load of the same content that loaded it (or found it loaded), or by a
/// `discarded` record of it.
pub fn waiting(loads: &[LoadRecord]) -> Vec<&LoadRecord> {
    loads
        .iter()
        .filter(|held| held.is_held())
        .filter(|held| {
            !loads.iter().any(|l| {
                l.load_id > held.load_id
                    && l.content_hash == held.content_hash
                    && (l.is_loaded() || l.status == UNCHANGED || l.status.starts_with(DISCARDED))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_arrow() {
        let r = LoadRecord {
            load_id: 3,
            source_file: "raw/cli/a.csv".into(),
            content_hash: "ab".into(),
            dialect: "api".into(),
            status: LOADED.into(),
            rows_read: 10,
            rows_loaded: 9,
            rows_quarantined: 1,
            years_replaced: "2024,2025".into(),
            data_as_of: None,
            conformed: "[]".into(),
            table_versions: r#"{"report.transaction": 4}"#.into(),
            started: 1_700_000_000_000_000,
            finished: 1_700_000_001_000_000,
        };
        let batch = LoadRecord::to_batch(std::slice::from_ref(&r)).unwrap();
        assert_eq!(LoadRecord::from_batches(&[batch]).unwrap(), vec![r.clone()]);
        assert_eq!(r.years(), vec![2024, 2025]);
        assert_eq!(r.table_versions().unwrap()["report.transaction"], 4);
    }
}

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

/// How a load ended: `meta.loads.status`, as one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadStatus {
    /// Data committed (possibly with quarantined rows).
    Loaded,
    /// The content was already the warehouse's: nothing changed.
    Unchanged,
    /// Nothing could be loaded; the reason is in `error`, bad rows in quarantine.
    Failed,
    /// It would have shrunk a fiscal year past `[load] max_shrink_percent`: nothing was
    /// replaced; the reason is in `hold` (see [`crate::Warehouse::release`]).
    Held,
    /// A held load was let go without loading it ([`crate::Warehouse::release`]).
    Discarded,
}

impl LoadStatus {
    /// Every status, in the order of the enum.
    pub const ALL: [LoadStatus; 5] = [
        LoadStatus::Loaded,
        LoadStatus::Unchanged,
        LoadStatus::Failed,
        LoadStatus::Held,
        LoadStatus::Discarded,
    ];

    /// The word `meta.loads.status` holds.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadStatus::Loaded => "loaded",
            LoadStatus::Unchanged => "unchanged",
            LoadStatus::Failed => "failed",
            LoadStatus::Held => "held",
            LoadStatus::Discarded => "discarded",
        }
    }

    /// Reads a stored status: the word, or the `<word>: <reason>` text stores written
    /// before `error` and `hold` had columns of their own (the reason is returned).
    pub fn parse(text: &str) -> Option<(LoadStatus, Option<String>)> {
        let (word, reason) = status_and_reason(text);
        let status = LoadStatus::ALL.into_iter().find(|s| s.as_str() == word)?;
        Some((status, reason))
    }
}

impl std::fmt::Display for LoadStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `meta.loads`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadRecord {
    pub load_id: i64,
    pub source_file: String,
    pub content_hash: String,
    pub dialect: String,
    pub status: LoadStatus,
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
    /// Why nothing could be loaded (status `failed`).
    pub error: Option<String>,
    /// Why the load was held and how to settle it (status `held`), or which held load
    /// was let go (status `discarded`).
    pub hold: Option<String>,
}

impl LoadRecord {
    /// The fiscal years this load replaced.
    pub fn years(&self) -> Vec<i32> {
        self.years_replaced
            .split(',')
            .filter_map(|y| y.trim().parse().ok())
            .collect()
    }

    /// Whether this load was held (see [`LoadStatus::Held`]).
    pub fn is_held(&self) -> bool {
        self.status == LoadStatus::Held
    }

    /// Whether this load committed data.
    pub fn is_loaded(&self) -> bool {
        self.status == LoadStatus::Loaded
    }

    /// The Delta version of each table right after this load.
    pub fn table_versions(&self) -> Result<HashMap<String, i64>> {
        serde_json::from_str(&self.table_versions).map_err(|e| {
            WarehouseError::corrupt(
                Table::Loads.qualified_name(),
                format!("row {}: table_versions: {e}", self.load_id),
            )
        })
    }

    /// The rows as one batch of `meta.loads`' schema.
    pub fn to_batch<'a>(rows: impl IntoIterator<Item = &'a LoadRecord>) -> Result<RecordBatch> {
        let rows: Vec<&LoadRecord> = rows.into_iter().collect();
        let s = |f: fn(&LoadRecord) -> &str| {
            Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>()) as ArrayRef
        };
        let i = |f: fn(&LoadRecord) -> i64| {
            Arc::new(rows.iter().map(|r| f(r)).collect::<Int64Array>()) as ArrayRef
        };
        let ts = |f: fn(&LoadRecord) -> i64| {
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| f(r)).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ) as ArrayRef
        };
        let o = |f: fn(&LoadRecord) -> Option<&str>| {
            Arc::new(rows.iter().map(|r| f(r)).collect::<StringArray>()) as ArrayRef
        };
        let columns = vec![
            i(|r| r.load_id),
            s(|r| &r.source_file),
            s(|r| &r.content_hash),
            s(|r| &r.dialect),
            s(|r| r.status.as_str()),
            i(|r| r.rows_read),
            i(|r| r.rows_loaded),
            i(|r| r.rows_quarantined),
            s(|r| &r.years_replaced),
            o(|r| r.data_as_of.as_deref()),
            s(|r| &r.conformed),
            s(|r| &r.table_versions),
            ts(|r| r.started),
            ts(|r| r.finished),
            o(|r| r.error.as_deref()),
            o(|r| r.hold.as_deref()),
        ];
        Ok(RecordBatch::try_new(Table::Loads.schema(), columns)?)
    }

    /// Reads rows back from batches of `meta.loads` (whatever string or timestamp
    /// encoding the engine returned). Batches of a store written before `error` and
    /// `hold` had columns read too: their status text `failed: <reason>` becomes
    /// status `failed` and that error, `held: ...` and `discarded: ...` a hold.
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
            let optional = |name: &str| match b.column_by_name(name) {
                Some(_) => s(name),
                None => Ok(vec![None; b.num_rows()]),
            };
            let (errors, holds) = (optional("error")?, optional("hold")?);
            for r in 0..b.num_rows() {
                let text = statuses[r].clone().unwrap_or_default();
                let (status, reason) = LoadStatus::parse(&text).ok_or_else(|| {
                    WarehouseError::corrupt(
                        Table::Loads.qualified_name(),
                        format!(
                            "row {}: status {text:?} is none of {}",
                            ids[r].unwrap_or_default(),
                            LoadStatus::ALL.map(LoadStatus::as_str).join(", ")
                        ),
                    )
                })?;
                let (mut error, mut hold) = (errors[r].clone(), holds[r].clone());
                match status {
                    LoadStatus::Failed => error = error.or(reason),
                    LoadStatus::Held | LoadStatus::Discarded => hold = hold.or(reason),
                    LoadStatus::Loaded | LoadStatus::Unchanged => {}
                }
                out.push(LoadRecord {
                    load_id: ids[r].unwrap_or_default(),
                    source_file: files[r].clone().unwrap_or_default(),
                    content_hash: hashes[r].clone().unwrap_or_default(),
                    dialect: dialects[r].clone().unwrap_or_default(),
                    status,
                    rows_read: read[r].unwrap_or_default(),
                    rows_loaded: loaded[r].unwrap_or_default(),
                    rows_quarantined: quarantined[r].unwrap_or_default(),
                    years_replaced: years[r].clone().unwrap_or_default(),
                    data_as_of: as_of[r].clone(),
                    conformed: conformed[r].clone().unwrap_or_default(),
                    table_versions: versions[r].clone().unwrap_or_default(),
                    started: started[r].unwrap_or_default(),
                    finished: finished[r].unwrap_or_default(),
                    error,
                    hold,
                });
            }
        }
        Ok(out)
    }
}

fn column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| WarehouseError::corrupt(format!("column {name}"), "missing"))?;
    let col = match col.data_type() {
        DataType::Timestamp(_, _) if to == &DataType::Int64 => cast(
            col,
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        )?,
        _ => col.clone(),
    };
    Ok(cast(&col, to)?)
}

/// A stored status: the word, and the reason older stores wrote after it
/// (`failed: <reason>`) before the reason had a column of its own.
pub(crate) fn status_and_reason(text: &str) -> (&str, Option<String>) {
    match text.split_once(':') {
        Some((word, reason)) => (word.trim(), Some(reason.trim().to_string())),
        None => (text.trim(), None),
    }
}

/// A column as optional strings, whatever its string encoding.
pub fn strings(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let col = column(batch, name, &DataType::Utf8)?;
    let col = col
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| WarehouseError::corrupt(format!("column {name}"), "not text"))?;
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
        .ok_or_else(|| WarehouseError::corrupt(format!("column {name}"), "not an integer"))?;
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
                    && matches!(
                        l.status,
                        LoadStatus::Loaded | LoadStatus::Unchanged | LoadStatus::Discarded
                    )
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `meta.loads` as citybooks wrote it until the reasons had columns of their own:
    /// loads 1–4 of one content, loaded, failed, held and discarded, each status with
    /// its reason after a colon.
    pub(crate) fn old_shape_batch() -> RecordBatch {
        let old = arrow::datatypes::Schema::new(
            Table::Loads
                .schema()
                .fields()
                .iter()
                .filter(|f| !["error", "hold"].contains(&f.name().as_str()))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let statuses = [
            "loaded",
            "failed: raw/cli/x.csv: nothing could be loaded",
            "held: fiscal year 2024 would shrink by 90%",
            "discarded: held load 3 let go without loading it",
        ];
        let n = statuses.len();
        let text = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
        let int = |v: i64| Arc::new(Int64Array::from(vec![v; n])) as ArrayRef;
        let ts = Arc::new(TimestampMicrosecondArray::from(vec![0; n]).with_timezone("UTC"));
        RecordBatch::try_new(
            Arc::new(old),
            vec![
                Arc::new(Int64Array::from((1..=n as i64).collect::<Vec<_>>())),
                text("raw/cli/x.csv"),
                text("ab"),
                text("api"),
                Arc::new(StringArray::from(statuses.to_vec())),
                int(1),
                int(0),
                int(1),
                text(""),
                Arc::new(StringArray::from(vec![None::<&str>; n])),
                text("[]"),
                text("{}"),
                ts.clone(),
                ts,
            ],
        )
        .unwrap()
    }

    #[test]
    fn records_round_trip_through_arrow() {
        let r = LoadRecord {
            load_id: 3,
            source_file: "raw/cli/a.csv".into(),
            content_hash: "ab".into(),
            dialect: "api".into(),
            status: LoadStatus::Loaded,
            rows_read: 10,
            rows_loaded: 9,
            rows_quarantined: 1,
            years_replaced: "2024,2025".into(),
            data_as_of: None,
            conformed: "[]".into(),
            table_versions: r#"{"report.transaction": 4}"#.into(),
            started: 1_700_000_000_000_000,
            finished: 1_700_000_001_000_000,
            error: None,
            hold: None,
        };
        let batch = LoadRecord::to_batch(std::slice::from_ref(&r)).unwrap();
        assert_eq!(LoadRecord::from_batches(&[batch]).unwrap(), vec![r.clone()]);
        assert_eq!(r.years(), vec![2024, 2025]);
        assert_eq!(r.table_versions().unwrap()["report.transaction"], 4);
    }

    #[test]
    fn a_store_written_before_the_error_and_hold_columns_still_reads() {
        let batch = old_shape_batch();
        let rows = LoadRecord::from_batches(&[batch]).unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.status, r.error.as_deref(), r.hold.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (LoadStatus::Loaded, None, None),
                (
                    LoadStatus::Failed,
                    Some("raw/cli/x.csv: nothing could be loaded"),
                    None
                ),
                (
                    LoadStatus::Held,
                    None,
                    Some("fiscal year 2024 would shrink by 90%")
                ),
                (
                    LoadStatus::Discarded,
                    None,
                    Some("held load 3 let go without loading it")
                ),
            ]
        );
        // Written again, they have the columns of today.
        let again = LoadRecord::to_batch(&rows).unwrap();
        assert_eq!(again.schema(), Table::Loads.schema());
        assert_eq!(LoadRecord::from_batches(&[again]).unwrap(), rows);
    }

    #[test]
    fn an_unknown_status_is_named_not_guessed() {
        assert_eq!(
            LoadStatus::parse("loaded"),
            Some((LoadStatus::Loaded, None))
        );
        assert_eq!(LoadStatus::parse("skipped"), None);
    }
}

//! The quality of a load: what it read, loaded and set aside and why, the names rule 6
//! conformed, how many of its rows got each placeholder (`No Program`, `No Fund
//! Category`, ...), and how these compare with the previous load of the same source —
//! a jump in quarantined rows or placeholders is flagged in a sentence.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use citybooks_model::ledger::Missing;
use citybooks_model::{format_count, ledger};
use serde::Serialize;

use crate::error::{Result, WarehouseError};
use crate::loads::{ints, strings, LoadRecord};
use crate::tables::Warehouse;

/// Lines listed per quarantine reason.
pub const LINES_PER_REASON: usize = 50;

/// One load's quality report.
#[derive(Debug, Clone, Serialize)]
pub struct Quality {
    pub load_id: i64,
    pub status: String,
    pub source_file: String,
    pub rows_read: i64,
    pub rows_loaded: i64,
    pub rows_quarantined: i64,
    pub years_replaced: Vec<i32>,
    /// Why nothing was loaded, or why the load was held.
    pub reason: Option<String>,
    /// Quarantined rows by reason, most first.
    pub quarantine: Vec<Reason>,
    /// Every name rule 6 conformed, as a sentence.
    pub conformed: Vec<String>,
    /// The rows of this load that got each placeholder.
    pub placeholders: Vec<Placeholder>,
    /// The previous load of the same source (the same folder of the store), if any.
    pub previous: Option<i64>,
    /// Jumps against it, as sentences.
    pub flags: Vec<String>,
}

/// The quarantined rows of one reason.
#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub reason: String,
    pub rows: u64,
    /// The first lines (with the field at fault, if one), for their original text.
    pub lines: Vec<QuarantineLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuarantineLine {
    pub line: i64,
    pub field: Option<String>,
}

/// How many rows of a load got one placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placeholder {
    /// The dimension table and column (`program`, `program`).
    pub table: &'static str,
    pub column: &'static str,
    pub placeholder: &'static str,
    pub rows: u64,
}

/// Where a load's file came from: the store folder under `raw/` (`cli`, `datasf`, an
/// SFTP user's name).
fn origin(source_file: &str) -> &str {
    source_file
        .strip_prefix("raw/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(source_file)
}

/// A share that grew past twice what it was and by at least half a percentage point.
fn jumped(before: f64, after: f64) -> bool {
    after > 2.0 * before && after - before >= 0.005
}

fn share(part: u64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Warehouse {
    /// The quality of load `load_id` (None: the latest load).
    pub async fn quality(&self, load_id: Option<i64>) -> Result<Quality> {
        let loads = self.loads().await?;
        let load = match load_id {
            Some(id) => loads.iter().find(|l| l.load_id == id),
            None => loads.last(),
        }
        .ok_or(match load_id {
            Some(id) => WarehouseError::NoSuchLoad(id),
            None => WarehouseError::NothingLoaded,
        })?;
        let previous = loads
            .iter()
            .rev()
            .filter(|l| l.load_id < load.load_id && l.is_loaded())
            .find(|l| origin(&l.source_file) == origin(&load.source_file));
        let placeholders = self.placeholders(load).await?;
        let mut flags = Vec::new();
        if let Some(prev) = previous {
            let (was, is) = (
                share(prev.rows_quarantined as u64, prev.rows_read),
                share(load.rows_quarantined as u64, load.rows_read),
            );
            if jumped(was, is) {
                flags.push(format!(
                    "quarantined rows went from {:.2}% of the rows read to {:.2}% ({} of {}; load {} of the same source had {})",
                    100.0 * was,
                    100.0 * is,
                    format_count(load.rows_quarantined as u64),
                    format_count(load.rows_read as u64),
                    prev.load_id,
                    format_count(prev.rows_quarantined as u64)
                ));
            }
            let before = self.placeholders(prev).await?;
            for p in &placeholders {
                let had = before
                    .iter()
                    .find(|b| (b.table, b.column) == (p.table, p.column))
                    .map_or(0, |b| b.rows);
                let (was, is) = (
                    share(had, prev.rows_loaded),
                    share(p.rows, load.rows_loaded),
                );
                if jumped(was, is) {
                    flags.push(format!(
                        "{} rows got the placeholder {:?} in {}.{}: {:.2}% of the rows loaded, {:.2}% in load {}",
                        format_count(p.rows),
                        p.placeholder,
                        p.table,
                        p.column,
                        100.0 * is,
                        100.0 * was,
                        prev.load_id
                    ));
                }
            }
        }
        Ok(Quality {
            load_id: load.load_id,
            status: load.status.as_str().to_string(),
            source_file: load.source_file.clone(),
            rows_read: load.rows_read,
            rows_loaded: load.rows_loaded,
            rows_quarantined: load.rows_quarantined,
            years_replaced: load.years(),
            reason: load.error.clone().or_else(|| load.hold.clone()),
            quarantine: self.quarantine_reasons(load.load_id).await?,
            conformed: serde_json::from_str(&load.conformed).unwrap_or_default(),
            placeholders,
            previous: previous.map(|l| l.load_id),
            flags,
        })
    }

    /// The load's quarantined rows grouped by reason, most first.
    async fn quarantine_reasons(&self, load_id: i64) -> Result<Vec<Reason>> {
        let ctx = self.session(None).await?;
        let sql = format!(
            "select reason, line, field from meta.quarantine where load_id = {load_id} order by line"
        );
        let mut by: BTreeMap<String, Reason> = BTreeMap::new();
        for batch in ctx.sql(&sql).await?.collect().await? {
            let (reasons, lines) = (strings(&batch, "reason")?, ints(&batch, "line")?);
            let fields = strings(&batch, "field")?;
            for ((reason, line), field) in reasons.into_iter().zip(lines).zip(fields) {
                let reason = reason.unwrap_or_default();
                let entry = by.entry(reason.clone()).or_insert(Reason {
                    reason,
                    rows: 0,
                    lines: Vec::new(),
                });
                entry.rows += 1;
                if entry.lines.len() < LINES_PER_REASON {
                    entry.lines.push(QuarantineLine {
                        line: line.unwrap_or_default(),
                        field,
                    });
                }
            }
        }
        let mut reasons: Vec<Reason> = by.into_values().collect();
        reasons.sort_by(|a, b| b.rows.cmp(&a.rows).then_with(|| a.reason.cmp(&b.reason)));
        Ok(reasons)
    }

    /// How many of the load's facts (as of the load: a later load may have replaced
    /// them since) have a member with each placeholder of the ledger.
    async fn placeholders(&self, load: &LoadRecord) -> Result<Vec<Placeholder>> {
        let mut wanted = Vec::new();
        for layout in &ledger().layouts {
            let h = layout.hierarchy;
            let columns = h.levels.iter().flat_map(|l| [l.name, l.code]);
            for c in columns.chain(h.attributes.iter().copied()) {
                if let Missing::Placeholder(text) = c.missing {
                    wanted.push((layout, c.name, text));
                }
            }
        }
        if !load.is_loaded() || wanted.is_empty() {
            return Ok(Vec::new());
        }
        let counts: Vec<String> = wanted
            .iter()
            .map(|(l, column, text)| {
                format!(
                    "sum(case when {}.{column} = '{}' then 1 else 0 end)",
                    l.hierarchy.alias,
                    text.replace('\'', "''")
                )
            })
            .collect();
        let joins: String = ledger()
            .layouts
            .iter()
            .map(|l| {
                let (alias, key) = (l.hierarchy.alias, l.key);
                format!(
                    " join report.{} {alias} on t.{key} = {alias}.{key}",
                    l.hierarchy.table
                )
            })
            .collect();
        let sql = format!(
            "select {} from report.transaction t{joins} where t.load_id = {}",
            counts.join(", "),
            load.load_id
        );
        let ctx = self.session(Some(load.load_id)).await?;
        let batches = ctx.sql(&sql).await?.collect().await?;
        let mut out = Vec::new();
        for (i, (layout, column, text)) in wanted.into_iter().enumerate() {
            let rows = batches
                .iter()
                .find(|b| b.num_rows() > 0)
                .map(|b| {
                    let c = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Int64)
                        .map(|a| a.as_primitive::<Int64Type>().value(0))
                        .unwrap_or(0);
                    c.max(0) as u64
                })
                .unwrap_or(0);
            if rows > 0 {
                out.push(Placeholder {
                    table: layout.hierarchy.table,
                    column,
                    placeholder: text,
                    rows,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_is_twice_the_share_and_half_a_point_more() {
        assert!(jumped(0.0, 0.01));
        assert!(!jumped(0.0, 0.004));
        assert!(!jumped(0.02, 0.03));
        assert!(jumped(0.02, 0.05));
        assert_eq!(origin("raw/datasf/20260101/bpnb-jwfb.csv"), "datasf");
        assert_eq!(origin("raw/finance/weekly.csv"), "finance");
    }
}

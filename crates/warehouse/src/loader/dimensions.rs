//! The dimensions step: rule 6 over the file's distinct members, then a stable id for
//! each — its id in the dimension table, or the next free one — and one append-only
//! commit of each dimension's new members (readers of the old facts are unaffected).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use citybooks_model::conform::{REVENUE_ID, SPENDING_ID};
use citybooks_model::{ledger, CodeChooser, Layout, Member, Table};
use datafusion::prelude::SessionContext;

use super::facts::Keys;
use super::lookup::{max_of, query_batches, Now};
use super::scan::{Interner, Scan};
use super::{decide, Committed, Job, LoadReport};
use crate::error::Result;
use crate::loads::{ints, strings};
use crate::tables::{Input, Warehouse, WriteMode};

impl Warehouse {
    /// Conforms the file's members (rule 6), gives each an id, and commits the new
    /// ones (and the two rows of `report.finance` on the first load).
    pub(super) async fn dimensions(
        &self,
        job: &Job<'_>,
        now: &Now,
        scan: &Scan,
        report: &mut LoadReport,
        committed: &mut Committed,
    ) -> Result<Keys> {
        let layouts = &ledger().layouts;
        let mut chooser = CodeChooser::new();
        for (layout, interned) in layouts.iter().zip(&scan.members) {
            for (m, n) in &interned.members {
                chooser.observe_member(layout, m, *n);
            }
        }
        report.conformed = chooser.decide().iter().map(|c| c.to_string()).collect();
        let mut keys = Vec::with_capacity(layouts.len());
        for (layout, interned) in layouts.iter().zip(&scan.members) {
            let conform = |m: &Member| chooser.conform(layout, m);
            keys.push(
                self.members(job, now, layout, interned, conform, report, committed)
                    .await?,
            );
        }
        if max_of(&now.ctx, "select count(*) as m from report.finance", "m").await? == 0 {
            let b = RecordBatch::try_new(
                Table::Finance.schema(),
                vec![
                    int_arr(vec![SPENDING_ID, REVENUE_ID]),
                    str_arr(["Spending", "Revenue"].into_iter()),
                ],
            )?;
            self.append(job, now, Table::Finance, b, committed).await?;
            report
                .new_members
                .insert(Table::Finance.qualified_name(), 2);
        }
        Ok(keys)
    }

    /// The ids of one dimension's `interned` members after `conform`; commits the
    /// members the dimension does not have yet.
    #[allow(clippy::too_many_arguments)]
    async fn members(
        &self,
        job: &Job<'_>,
        now: &Now,
        layout: &Layout,
        interned: &Interner<Member>,
        conform: impl Fn(&Member) -> Member,
        report: &mut LoadReport,
        committed: &mut Committed,
    ) -> Result<Vec<i32>> {
        let table = Table::dimension(layout);
        let (mut known, max) = existing(&now.ctx, table).await?;
        let members = interned.members.iter().map(|(m, _)| m);
        let (ids, new) = decide::assign(members, conform, &mut known, max);
        report.new_members.insert(table.qualified_name(), new.len());
        if !new.is_empty() {
            self.append(job, now, table, dimension_batch(table, &new)?, committed)
                .await?;
        }
        Ok(ids)
    }

    /// Appends `batch` to `table` as this load, noting the version it made.
    pub(super) async fn append(
        &self,
        job: &Job<'_>,
        now: &Now,
        table: Table,
        batch: RecordBatch,
        committed: &mut Committed,
    ) -> Result<()> {
        let v = self
            .commit(
                job.lease,
                table,
                Input::Batches(vec![batch]),
                WriteMode::Append,
                now.load_id,
            )
            .await?;
        committed.insert(table.qualified_name(), v);
        Ok(())
    }
}

pub(super) fn int_arr(v: Vec<i32>) -> ArrayRef {
    Arc::new(Int32Array::from(v))
}

pub(super) fn str_arr<'a>(v: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

/// New rows of a dimension table, built from the members' values in schema order.
fn dimension_batch(table: Table, rows: &[(i32, Member)]) -> Result<RecordBatch> {
    let schema = table.schema();
    let mut columns = vec![int_arr(rows.iter().map(|r| r.0).collect())];
    for (i, field) in schema.fields().iter().skip(1).enumerate() {
        let values = rows.iter().map(|(_, m)| m.0[i].as_str());
        columns.push(match field.data_type() {
            arrow::datatypes::DataType::Int32 => {
                int_arr(values.map(|v| v.parse().unwrap_or_default()).collect())
            }
            _ => str_arr(values),
        });
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The rows of a dimension table as (id, member).
fn parse_members(table: Table, b: &RecordBatch) -> Result<Vec<(i32, Member)>> {
    let schema = table.schema();
    let id = ids(b, schema.field(0).name())?;
    let columns: Vec<Vec<Option<String>>> = schema
        .fields()
        .iter()
        .skip(1)
        .map(|f| strings(b, f.name()))
        .collect::<Result<_>>()?;
    Ok((0..b.num_rows())
        .map(|r| {
            let values = columns.iter().map(|c| c[r].clone().unwrap_or_default());
            (id[r], Member(values.collect()))
        })
        .collect())
}

/// Existing members of a dimension, by member, and the largest id in use.
async fn existing(ctx: &SessionContext, table: Table) -> Result<(HashMap<Member, i32>, i32)> {
    let sql = format!("select * from {}", table.qualified_name());
    let mut map = HashMap::new();
    let mut max = 0;
    for b in query_batches(ctx, &sql).await? {
        for (id, m) in parse_members(table, &b)? {
            max = max.max(id);
            map.insert(m, id);
        }
    }
    Ok((map, max))
}

fn ids(b: &RecordBatch, name: &str) -> Result<Vec<i32>> {
    Ok(ints(b, name)?
        .into_iter()
        .map(|v| v.unwrap_or_default() as i32)
        .collect())
}

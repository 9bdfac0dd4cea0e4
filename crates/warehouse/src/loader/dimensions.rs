//! The dimensions step: rule 6 over the file's distinct members, then a stable id for
//! each — its id in the dimension table, or the next free one — and one append-only
//! commit of each dimension's new members (readers of the old facts are unaffected).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use citybooks_model::conform::{REVENUE_ID, SPENDING_ID};
use citybooks_model::{CodeChooser, Member, Table};
use datafusion::prelude::SessionContext;

use super::facts::Keys;
use super::lookup::{max_of, query_batches, Now};
use super::scan::{Interner, Scan};
use super::{decide, Committed, Job, LoadReport};
use crate::error::{Result, WarehouseError};
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
        let mut chooser = CodeChooser::new();
        for (m, n) in &scan.programs.members {
            chooser.observe_program(m, *n);
        }
        for (m, n) in &scan.types.members {
            chooser.observe_type(m, *n);
        }
        for (m, n) in &scan.funds.members {
            chooser.observe_fund(m, *n);
        }
        report.conformed = chooser.decide().iter().map(|c| c.to_string()).collect();
        let keys = Keys {
            program: self
                .members(
                    job,
                    now,
                    &scan.programs,
                    |m| chooser.conform_program(m),
                    report,
                    committed,
                )
                .await?,
            types: self
                .members(
                    job,
                    now,
                    &scan.types,
                    |m| chooser.conform_type(m),
                    report,
                    committed,
                )
                .await?,
            fund: self
                .members(
                    job,
                    now,
                    &scan.funds,
                    |m| chooser.conform_fund(m),
                    report,
                    committed,
                )
                .await?,
        };
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
    async fn members<M: Member>(
        &self,
        job: &Job<'_>,
        now: &Now,
        interned: &Interner<M>,
        conform: impl Fn(&M) -> M,
        report: &mut LoadReport,
        committed: &mut Committed,
    ) -> Result<Vec<i32>> {
        let (mut known, max) = existing::<M>(&now.ctx).await?;
        let members = interned.members.iter().map(|(m, _)| m);
        let (ids, new) = decide::assign(members, conform, &mut known, max);
        report
            .new_members
            .insert(M::TABLE.qualified_name(), new.len());
        if !new.is_empty() {
            self.append(job, now, M::TABLE, dimension_batch(&new)?, committed)
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

/// New rows of a dimension table, built from the members' attributes in schema order.
fn dimension_batch<M: Member>(rows: &[(i32, M)]) -> Result<RecordBatch> {
    let schema = M::TABLE.schema();
    let attributes: Vec<Vec<String>> = rows.iter().map(|(_, m)| m.attributes()).collect();
    let mut columns = vec![int_arr(rows.iter().map(|r| r.0).collect())];
    for (i, field) in schema.fields().iter().skip(1).enumerate() {
        let values = attributes.iter().map(|a| a[i].as_str());
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
fn parse_members<M: Member>(b: &RecordBatch) -> Result<Vec<(i32, M)>> {
    let schema = M::TABLE.schema();
    let id = ids(b, schema.field(0).name())?;
    let columns: Vec<Vec<Option<String>>> = schema
        .fields()
        .iter()
        .skip(1)
        .map(|f| strings(b, f.name()))
        .collect::<Result<_>>()?;
    (0..b.num_rows())
        .map(|r| {
            let values: Vec<String> = columns
                .iter()
                .map(|c| c[r].clone().unwrap_or_default())
                .collect();
            let member = M::from_attributes(&values).ok_or_else(|| {
                WarehouseError::corrupt(
                    M::TABLE.qualified_name(),
                    format!("row {} does not fit its schema", id[r]),
                )
            })?;
            Ok((id[r], member))
        })
        .collect()
}

/// Existing members of a dimension, by member, and the largest id in use.
async fn existing<M: Member>(ctx: &SessionContext) -> Result<(HashMap<M, i32>, i32)> {
    let sql = format!("select * from {}", M::TABLE.qualified_name());
    let mut map = HashMap::new();
    let mut max = 0;
    for b in query_batches(ctx, &sql).await? {
        for (id, m) in parse_members::<M>(&b)? {
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

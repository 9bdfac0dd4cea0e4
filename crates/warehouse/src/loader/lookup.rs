//! What the warehouse holds now, as a load needs it: the loads so far, the next load
//! id, each fiscal year's size.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Decimal128Array, Int32Array, RecordBatch};
use datafusion::prelude::SessionContext;

use crate::error::{Result, WarehouseError};
use crate::loads::{ints, LoadRecord};
use crate::shrink::YearSize;
use crate::tables::Warehouse;

/// The warehouse as a load under the writer lease finds it.
pub(super) struct Now {
    /// Every row of `meta.loads`, oldest first.
    pub loads: Vec<LoadRecord>,
    /// A session over the tables as they are.
    pub ctx: SessionContext,
    /// The id this load gets: one past any id in `meta.loads`, the facts or the
    /// quarantine (a load that crashed before its `meta.loads` row left its id there).
    pub load_id: i64,
}

impl Now {
    pub(super) async fn read(warehouse: &Warehouse) -> Result<Now> {
        let ctx = warehouse.session(None).await?;
        // The session registered meta.loads from its rows: read them back from there,
        // not from the store a second time.
        let loads = LoadRecord::from_batches(
            &query_batches(&ctx, "select * from meta.loads order by load_id").await?,
        )?;
        let max = max_of(&ctx, "select max(load_id) as m from meta.loads union all select max(load_id) as m from report.transaction union all select max(load_id) as m from meta.quarantine", "m").await?;
        Ok(Now {
            loads,
            ctx,
            load_id: max + 1,
        })
    }
}

pub(super) async fn query_batches(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// The largest value of `column` in the rows of `sql` (0 when there are none).
pub(crate) async fn max_of(ctx: &SessionContext, sql: &str, column: &str) -> Result<i64> {
    let batches = query_batches(ctx, sql).await?;
    Ok(batches
        .iter()
        .map(|b| ints(b, column))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .flatten()
        .max()
        .unwrap_or(0))
}

/// Rows and gross amount per fiscal year of `years` in the warehouse now.
pub(super) async fn year_sizes(
    ctx: &SessionContext,
    years: &BTreeSet<i32>,
) -> Result<BTreeMap<i32, YearSize>> {
    if years.is_empty() {
        return Ok(BTreeMap::new());
    }
    let list = years
        .iter()
        .map(|y| y.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!("select fiscal_year, count(*) as n, sum(abs(amount)) as gross from report.transaction where fiscal_year in ({list}) group by fiscal_year");
    let mut sizes = BTreeMap::new();
    for b in query_batches(ctx, &sql).await? {
        let years = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Int32)?;
        let years = years.as_any().downcast_ref::<Int32Array>().ok_or_else(|| {
            WarehouseError::corrupt("report.transaction", "fiscal_year is not an integer")
        })?;
        let rows = ints(&b, "n")?;
        let gross = b
            .column(2)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .ok_or_else(|| {
                WarehouseError::corrupt("report.transaction", "amount is not a decimal")
            })?;
        for (i, n) in rows.iter().enumerate() {
            sizes.insert(
                years.value(i),
                YearSize {
                    rows: n.unwrap_or(0).max(0) as u64,
                    gross_cents: if arrow::array::Array::is_null(gross, i) {
                        0
                    } else {
                        gross.value(i)
                    },
                },
            );
        }
    }
    Ok(sizes)
}

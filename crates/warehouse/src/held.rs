//! The tables' most-read columns, held decoded in memory for a long-running server.
//!
//! A dashboard chart or an analyst's group-by over `report.transaction` reads the
//! same few columns every time — the fiscal year, the dimension keys, the finance id
//! and the amount — and with the Parquet files as the only copy, every query decodes
//! them again (the fixed-length `Decimal(20,2)` amount most of all). Under
//! [`TableScans::Memory`](crate::TableScans::Memory) a session holds those columns
//! (and the small dimension tables whole) as Arrow arrays, read once when the tables
//! are registered, that is at start and after each load. A query whose columns are
//! all held is answered from memory; one that needs any other column (the lineage of
//! `/api/rows`, `source_file`, ...) reads Parquet exactly as before, through the same
//! Delta provider. Both paths see the same snapshot: the arrays are read from the
//! provider they stand in front of.
//!
//! What is held is bounded (`[sql] table_memory_mib`): tables are read in order,
//! dimensions first, and a table whose columns would pass the bound is not held at
//! all (its queries read Parquet; the server logs it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use citybooks_model::{ledger, Table};
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::{execute_stream_partitioned, ExecutionPlan};
use datafusion::prelude::SessionContext;
use futures::future::try_join_all;
use futures::TryStreamExt;

/// The columns of `table` worth holding: all of a dimension's or `report.finance`'s;
/// of the fact table, those every aggregate over it reads (the lineage and the
/// transaction id stay on disk).
pub fn held_columns(table: Table) -> Vec<String> {
    match table {
        Table::Transaction => {
            let mut columns = vec!["fiscal_year".to_string()];
            columns.extend(ledger().layouts.iter().map(|l| l.key.to_string()));
            columns.extend(["finance_id".to_string(), "amount".to_string()]);
            columns
        }
        _ => table.column_names(),
    }
}

/// Why a table was not held.
#[derive(Debug)]
pub enum NotHeld {
    /// Its columns would pass what is left of the bound (bytes read before stopping).
    TooLarge { read_bytes: usize },
    /// The provider's columns are not of the types the table declares.
    Unexpected(String),
}

/// `inner`'s [`held_columns`], read into memory through `ctx`, if they fit in
/// `budget` bytes (taken from it when they do).
pub async fn hold(
    ctx: &SessionContext,
    table: Table,
    inner: Arc<dyn TableProvider>,
    budget: &mut usize,
) -> DfResult<Result<Arc<HeldTable>, NotHeld>> {
    let schema = inner.schema();
    let wanted = held_columns(table);
    let mut indices = Vec::with_capacity(wanted.len());
    for name in &wanted {
        match schema.index_of(name) {
            Ok(i) => indices.push(i),
            Err(_) => return Ok(Err(NotHeld::Unexpected(format!("no column {name}")))),
        }
    }
    let held_schema: SchemaRef = Arc::new(schema.project(&indices)?);
    let state = ctx.state();
    let plan = inner.scan(&state, Some(&indices), &[], None).await?;
    let used = Arc::new(AtomicUsize::new(0));
    let limit = *budget;
    let streams = execute_stream_partitioned(plan, ctx.task_ctx())?;
    let read = try_join_all(streams.into_iter().map(|stream| {
        let used = used.clone();
        let held_schema = held_schema.clone();
        async move {
            let mut batches = Vec::new();
            let mut stream = stream;
            while let Some(batch) = stream.try_next().await? {
                let bytes = batch.get_array_memory_size();
                if used.fetch_add(bytes, Ordering::Relaxed) + bytes > limit {
                    return Ok(None);
                }
                // The provider's own field metadata and nullability, so a scan of the
                // held columns has exactly the schema a scan of the provider has.
                batches.push(RecordBatch::try_new(
                    held_schema.clone(),
                    batch.columns().to_vec(),
                )?);
            }
            Ok::<_, DataFusionError>(Some(batches))
        }
    }))
    .await;
    let parts = match read {
        Ok(parts) => parts,
        Err(DataFusionError::ArrowError(e, _)) => {
            return Ok(Err(NotHeld::Unexpected(e.to_string())))
        }
        Err(e) => return Err(e),
    };
    let read_bytes = used.load(Ordering::Relaxed);
    let Some(parts) = parts.into_iter().collect::<Option<Vec<_>>>() else {
        return Ok(Err(NotHeld::TooLarge { read_bytes }));
    };
    *budget -= read_bytes;
    // As many partitions as the session runs in parallel, whatever the files were.
    let n = state.config().target_partitions().max(1);
    let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
    for (i, batch) in parts.into_iter().flatten().enumerate() {
        partitions[i % n].push(batch);
    }
    let memory = MemTable::try_new(held_schema.clone(), partitions)?;
    let positions = indices
        .iter()
        .enumerate()
        .map(|(held, &column)| (column, held))
        .collect();
    Ok(Ok(Arc::new(HeldTable {
        inner,
        memory: Arc::new(memory),
        positions,
        bytes: read_bytes,
    })))
}

/// A table whose most-read columns are in memory: see the module doc.
#[derive(Debug)]
pub struct HeldTable {
    inner: Arc<dyn TableProvider>,
    memory: Arc<MemTable>,
    /// Column index in the table → index among the held columns.
    positions: HashMap<usize, usize>,
    bytes: usize,
}

impl HeldTable {
    /// The bytes the held columns take.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The held columns' positions for `projection` of the table's columns, if every
    /// one is held (a query of no columns, `count(*)`, needs none).
    fn held_projection(&self, projection: Option<&Vec<usize>>) -> Option<Vec<usize>> {
        match projection {
            Some(columns) => columns
                .iter()
                .map(|c| self.positions.get(c).copied())
                .collect(),
            None => (0..self.inner.schema().fields().len())
                .map(|c| self.positions.get(&c).copied())
                .collect(),
        }
    }
}

#[async_trait::async_trait]
impl TableProvider for HeldTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// What the provider on disk can use, but never `Exact`: a filter stays above the
    /// scan, so a scan of the held columns (which filters nothing) is as right as one
    /// of the files (which may skip files and row groups by it).
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(self
            .inner
            .supports_filters_pushdown(filters)?
            .into_iter()
            .map(|p| match p {
                TableProviderFilterPushDown::Exact => TableProviderFilterPushDown::Inexact,
                other => other,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match self.held_projection(projection) {
            Some(held) => self.memory.scan(state, Some(&held), filters, limit).await,
            None => self.inner.scan(state, projection, filters, limit).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Int32Array, Int64Array, StringArray};
    use arrow::util::pretty::pretty_format_batches;

    /// The provider below the held one, counting the scans that reach it.
    #[derive(Debug)]
    struct Disk {
        table: MemTable,
        scans: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TableProvider for Disk {
        fn schema(&self) -> SchemaRef {
            self.table.schema()
        }
        fn table_type(&self) -> TableType {
            TableType::Base
        }
        async fn scan(
            &self,
            state: &dyn Session,
            projection: Option<&Vec<usize>>,
            filters: &[Expr],
            limit: Option<usize>,
        ) -> DfResult<Arc<dyn ExecutionPlan>> {
            self.scans.fetch_add(1, Ordering::Relaxed);
            self.table.scan(state, projection, filters, limit).await
        }
    }

    /// A fact table of three rows with every column of report.transaction.
    fn facts() -> (SchemaRef, RecordBatch) {
        let schema = Table::Transaction.schema();
        let rows = 3;
        let columns = schema
            .fields()
            .iter()
            .map(|f| -> Arc<dyn arrow::array::Array> {
                match f.data_type() {
                    arrow::datatypes::DataType::Int32 => Arc::new(Int32Array::from_iter_values(
                        (0..rows).map(|i| 2024 + i % 2),
                    )),
                    arrow::datatypes::DataType::Int64 => {
                        Arc::new(Int64Array::from_iter_values(0..rows as i64))
                    }
                    arrow::datatypes::DataType::Decimal128(p, s) => Arc::new(
                        Decimal128Array::from_iter_values([12345, -5, 10_000_000_001])
                            .with_precision_and_scale(*p, *s)
                            .unwrap(),
                    ),
                    _ => Arc::new(StringArray::from_iter_values(
                        (0..rows).map(|i| format!("{}-{i}", f.name())),
                    )),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        (schema, batch)
    }

    async fn answer(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    #[tokio::test]
    async fn held_columns_answer_as_the_files_do_and_other_columns_fall_back() {
        let (schema, batch) = facts();
        let table = MemTable::try_new(schema.clone(), vec![vec![batch.clone()]]).unwrap();
        let disk = Arc::new(Disk {
            table,
            scans: AtomicUsize::new(0),
        });
        let plain = SessionContext::new();
        let all = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        plain.register_table("t", Arc::new(all)).unwrap();
        let ctx = SessionContext::new();
        let mut budget = 1 << 20;
        let held = hold(&ctx, Table::Transaction, disk.clone(), &mut budget)
            .await
            .unwrap()
            .unwrap();
        assert!(budget < 1 << 20, "the held columns were counted");
        assert_eq!(disk.scans.load(Ordering::Relaxed), 1, "read once to hold");
        ctx.register_table("t", held).unwrap();
        // (query, whether it needs a column that is not held)
        for (sql, on_disk) in [
            ("select fiscal_year, sum(amount) s, count(*) n from t group by fiscal_year order by 1", false),
            ("select count(*) from t where fiscal_year = 2025", false),
            ("select sum(amount) from t where amount < 0 and finance_id = 2025", false),
            ("select source_file, amount from t order by source_line", true),
            ("select * from t order by transaction_id", true),
            ("select count(distinct transaction_id) from t", true),
        ] {
            let before = disk.scans.load(Ordering::Relaxed);
            assert_eq!(answer(&ctx, sql).await, answer(&plain, sql).await, "{sql}");
            let read = disk.scans.load(Ordering::Relaxed) > before;
            assert_eq!(read, on_disk, "{sql}: read the provider below: {read}");
        }
    }

    #[tokio::test]
    async fn a_table_past_the_bound_is_not_held() {
        let (schema, batch) = facts();
        let disk = Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap());
        let ctx = SessionContext::new();
        let mut budget = 10;
        match hold(&ctx, Table::Transaction, disk, &mut budget)
            .await
            .unwrap()
        {
            Err(NotHeld::TooLarge { read_bytes }) => assert!(read_bytes > 10),
            other => panic!("held past the bound: {other:?}"),
        }
        assert_eq!(budget, 10, "nothing was taken from the bound");
    }
}

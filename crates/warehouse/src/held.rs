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
//! A scan of the held columns skips the batches its filters rule out, by each
//! batch's minimum and maximum per column (DataFusion's own pruning predicate, as
//! for Parquet row groups): the batches come from one fiscal year's file each, so a
//! year's view reads that year only.
//!
//! What is held is bounded (`[sql] table_memory_mib`): tables are read in order,
//! dimensions first, and a table whose columns would pass the bound is not held at
//! all (its queries read Parquet; the server logs it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt64Array};
use arrow::datatypes::SchemaRef;
use citybooks_model::{ledger, Table};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Accumulator, Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
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
    let batches: Vec<RecordBatch> = parts.into_iter().flatten().collect();
    let statistics = BatchStatistics::of(&held_schema, &batches)?;
    let positions = indices
        .iter()
        .enumerate()
        .map(|(held, &column)| (column, held))
        .collect();
    Ok(Ok(Arc::new(HeldTable {
        inner,
        schema: held_schema,
        batches,
        statistics,
        positions,
        bytes: read_bytes,
    })))
}

/// Each held batch's minimum, maximum and null count per column, so a scan skips
/// the batches its filters rule out, as a Parquet reader skips row groups. The
/// batches come from the files of one fiscal year each, so a year's filter reads
/// that year's batches only (at 10M rows, 1/29 of them).
#[derive(Debug)]
struct BatchStatistics {
    /// Per held column: one value per batch (None where a type has no minimum).
    mins: Vec<Option<ArrayRef>>,
    maxs: Vec<Option<ArrayRef>>,
    nulls: Vec<ArrayRef>,
    rows: ArrayRef,
    schema: SchemaRef,
}

impl BatchStatistics {
    fn of(schema: &SchemaRef, batches: &[RecordBatch]) -> DfResult<Self> {
        let mut mins = Vec::new();
        let mut maxs = Vec::new();
        let mut nulls = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            let (mut lo, mut hi) = (Vec::new(), Vec::new());
            for batch in batches {
                let column = batch.column(i);
                let mut min = MinAccumulator::try_new(field.data_type())?;
                let mut max = MaxAccumulator::try_new(field.data_type())?;
                min.update_batch(std::slice::from_ref(column))?;
                max.update_batch(std::slice::from_ref(column))?;
                lo.push(min.evaluate()?);
                hi.push(max.evaluate()?);
            }
            let array = |values: Vec<ScalarValue>| {
                (!values.is_empty())
                    .then(|| ScalarValue::iter_to_array(values).ok())
                    .flatten()
            };
            mins.push(array(lo));
            maxs.push(array(hi));
            nulls.push(Arc::new(UInt64Array::from_iter_values(
                batches.iter().map(|b| b.column(i).null_count() as u64),
            )) as ArrayRef);
        }
        let rows = Arc::new(UInt64Array::from_iter_values(
            batches.iter().map(|b| b.num_rows() as u64),
        ));
        Ok(BatchStatistics {
            mins,
            maxs,
            nulls,
            rows,
            schema: schema.clone(),
        })
    }

    fn index(&self, column: &Column) -> Option<usize> {
        self.schema.index_of(&column.name).ok()
    }
}

impl PruningStatistics for BatchStatistics {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.mins[self.index(column)?].clone()
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.maxs[self.index(column)?].clone()
    }

    fn num_containers(&self) -> usize {
        self.rows.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        Some(self.nulls[self.index(column)?].clone())
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(self.rows.clone())
    }

    fn contained(
        &self,
        _column: &Column,
        _values: &std::collections::HashSet<ScalarValue>,
    ) -> Option<BooleanArray> {
        None
    }
}

/// A table whose most-read columns are in memory: see the module doc.
#[derive(Debug)]
pub struct HeldTable {
    inner: Arc<dyn TableProvider>,
    /// The held columns' schema, and their batches.
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    statistics: BatchStatistics,
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
        let Some(held) = self.held_projection(projection) else {
            return self.inner.scan(state, projection, filters, limit).await;
        };
        let keep = self.batches_to_read(state, filters);
        // As many partitions as the session runs in parallel, the batches dealt out
        // in turn.
        let n = state.config().target_partitions().max(1);
        let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
        let read = self.batches.iter().zip(keep).filter(|(_, keep)| *keep);
        for (i, (batch, _)) in read.enumerate() {
            partitions[i % n].push(batch.clone());
        }
        let source = MemorySourceConfig::try_new(&partitions, self.schema.clone(), Some(held))?
            .with_show_sizes(state.config_options().explain.show_sizes);
        Ok(DataSourceExec::from_data_source(source))
    }
}

impl HeldTable {
    /// Which batches may hold rows passing `filters` (all, if the filters cannot
    /// be read against the batches' statistics).
    fn batches_to_read(&self, state: &dyn Session, filters: &[Expr]) -> Vec<bool> {
        let all = vec![true; self.batches.len()];
        let Some(predicate) = conjunction(filters.iter().map(unqualified)) else {
            return all;
        };
        let Ok(df_schema) = DFSchema::try_from(self.schema.clone()) else {
            return all;
        };
        let Ok(predicate) = state.create_physical_expr(predicate, &df_schema) else {
            return all;
        };
        let pruning = PruningPredicateBuilder::new()
            .with_file_schema(self.schema.clone())
            .build(predicate);
        match pruning.map(|p| p.prune(&self.statistics)) {
            Some(Ok(keep)) if keep.len() == self.batches.len() => keep,
            _ => all,
        }
    }
}

/// `filter` with its columns' table names taken off (the held schema has none).
fn unqualified(filter: &Expr) -> Expr {
    filter
        .clone()
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) if c.relation.is_some() => {
                    Transformed::yes(Expr::Column(Column::from_name(c.name)))
                }
                e => Transformed::no(e),
            })
        })
        .map_or_else(|_| filter.clone(), |t| t.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Int32Array, Int64Array, StringArray};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::catalog::MemTable;
    use datafusion::physical_plan::collect;

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

    /// A scan reads only the held batches its filters may match, and the answers
    /// are those of the unpruned table.
    #[tokio::test]
    async fn filters_skip_the_batches_they_rule_out() {
        let (schema, batch) = facts();
        // Three batches: fiscal years 2024 and 2025 mixed, then all 2024, all 2025.
        let year = schema.index_of("fiscal_year").unwrap();
        let of_year = |y: i32| {
            let mut columns = batch.columns().to_vec();
            columns[year] = Arc::new(Int32Array::from(vec![y; 3]));
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        };
        let batches = vec![batch.clone(), of_year(2024), of_year(2025)];
        let disk = Arc::new(MemTable::try_new(schema.clone(), vec![batches.clone()]).unwrap());
        let plain = SessionContext::new();
        plain
            .register_table(
                "t",
                Arc::new(MemTable::try_new(schema, vec![batches]).unwrap()),
            )
            .unwrap();
        let ctx = SessionContext::new();
        let held = hold(&ctx, Table::Transaction, disk, &mut (1 << 20))
            .await
            .unwrap()
            .unwrap();
        // (filter, rows the scan reads: the pruning alone, before the filter)
        for (filter, read) in [
            ("fiscal_year = 2025", 6),
            ("t.fiscal_year = 2024", 6),
            ("fiscal_year in (2023, 2026)", 0),
            ("fiscal_year > 2024 and finance_id >= 0", 6),
            ("fiscal_year + 1 = 2026", 9),
            ("amount > 200000000", 0),
        ] {
            let state = ctx.state();
            // Qualified, as the planner's filters may be.
            let df_schema = DFSchema::try_from_qualified_schema("t", &held.schema()).unwrap();
            let expr = state.create_logical_expr(filter, &df_schema).unwrap();
            let columns: Vec<usize> = held_columns(Table::Transaction)
                .iter()
                .map(|c| held.schema().index_of(c).unwrap())
                .collect();
            let scan = held.scan(&state, Some(&columns), &[expr], None).await;
            let scan = match scan {
                Ok(scan) => scan,
                Err(e) => panic!("{filter}: {e}"),
            };
            let rows: usize = collect(scan, ctx.task_ctx())
                .await
                .unwrap()
                .iter()
                .map(RecordBatch::num_rows)
                .sum();
            assert_eq!(rows, read, "{filter}");
        }
        ctx.register_table("t", held).unwrap();
        for sql in [
            "select fiscal_year, count(*), sum(amount) from t where fiscal_year = 2025 group by 1",
            "select count(*) from t where fiscal_year in (2023, 2026)",
            "select min(amount) from t where amount < 0 or fiscal_year = 2024",
        ] {
            assert_eq!(answer(&ctx, sql).await, answer(&plain, sql).await, "{sql}");
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

//! Queries over the warehouse: the read-only SQL gate, result formats, and the named
//! queries of the original dashboard (DOMAIN.md).
//!
//! The tables come from `citybooks-warehouse` (it knows where they live and how to
//! travel in time); this crate decides which engine plans a session ([`Engine`]:
//! DataFusion in-process, or a Ballista cluster), what may run on it and how results
//! leave it. Servers (PostgreSQL wire, HTTP) build on this crate.

pub mod dashboard;
pub mod engine;
pub mod format;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use citybooks_warehouse::Warehouse;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionContext};

pub use engine::Engine;
pub use format::{write_batches, OutputFormat};

/// A query that could not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Warehouse(Box<citybooks_warehouse::WarehouseError>),
    #[error("{}", engine_text(.0))]
    Engine(datafusion::error::DataFusionError),
    #[error("{0}")]
    Output(String),
    #[error("{0}")]
    Config(String),
    #[error("citybooks is read-only: only queries run (SELECT, WITH, VALUES, EXPLAIN, SHOW); the warehouse changes only through loads ({0})")]
    ReadOnly(String),
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        QueryError::Engine(e)
    }
}

/// An engine error as a sentence: one of ours carried through DataFusion (an
/// unreachable scheduler, ...) without DataFusion's "External error: " wrapping.
fn engine_text(e: &DataFusionError) -> String {
    match e.find_root() {
        DataFusionError::External(inner) => inner.to_string(),
        _ => e.to_string(),
    }
}

impl From<citybooks_warehouse::WarehouseError> for QueryError {
    fn from(e: citybooks_warehouse::WarehouseError) -> Self {
        QueryError::Warehouse(Box::new(e))
    }
}

/// What a read-only session accepts: queries only — no DDL, no DML, no `SET`.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A query's result: its schema (known even when no rows came back) and its rows.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Plans one read-only statement on `ctx`: a DataFrame ready to execute, or
/// [`QueryError::ReadOnly`] for anything that would change state.
pub async fn plan(ctx: &SessionContext, sql: &str) -> Result<DataFrame, QueryError> {
    ctx.sql_with_options(sql, read_only())
        .await
        .map_err(read_only_error)
}

/// Checks an already planned statement against [`read_only`] (for servers that plan
/// statements themselves, like the PostgreSQL wire protocol's).
pub fn verify_read_only(plan: &LogicalPlan) -> Result<(), QueryError> {
    read_only().verify_plan(plan).map_err(read_only_error)
}

/// Turns DataFusion's refusal of a DDL/DML/statement plan into [`QueryError::ReadOnly`].
fn read_only_error(e: DataFusionError) -> QueryError {
    let text = e.to_string();
    if [
        "DDL not supported",
        "DML not supported",
        "Statement not supported",
    ]
    .iter()
    .any(|m| text.contains(m))
    {
        QueryError::ReadOnly(text.lines().next().unwrap_or_default().to_string())
    } else {
        QueryError::Engine(e)
    }
}

/// Runs one read-only statement on `ctx`.
pub async fn run(ctx: &SessionContext, sql: &str) -> Result<QueryResult, QueryError> {
    let df = plan(ctx, sql).await?;
    let schema: SchemaRef = std::sync::Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(QueryResult { schema, batches })
}

/// Runs one read-only statement on the warehouse with `engine`, optionally as of an
/// earlier load.
pub async fn query(
    engine: &Engine,
    warehouse: &Warehouse,
    sql: &str,
    as_of_load: Option<i64>,
) -> Result<QueryResult, QueryError> {
    let ctx = engine.session(warehouse, as_of_load).await?;
    run(&ctx, sql).await
}

//! Queries over the warehouse: the read-only SQL gate, result formats, and the named
//! queries of the original dashboard (DOMAIN.md).
//!
//! The tables come from `citybooks-warehouse` (it knows where they live and how to
//! travel in time); this crate decides which engine plans a session ([`Engine`]:
//! DataFusion in-process, or a Ballista cluster), what may run on it and how results
//! leave it. Servers (PostgreSQL wire, HTTP) build on this crate.

pub mod budget;
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
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;

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
/// unreachable scheduler, a query past its memory, ...) without DataFusion's
/// wrapping.
fn engine_text(e: &DataFusionError) -> String {
    match e.find_root() {
        DataFusionError::External(inner) => inner.to_string(),
        // Our own sentence (budget.rs), not the operator's advice about DataFusion's
        // settings, which a user cannot change.
        DataFusionError::ResourcesExhausted(text) => format!("out of memory: {text}"),
        DataFusionError::SQL(e, _) => format!("sql parser error: {e}"),
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
///
/// Two gates: before planning, every statement of `sql` must be a query
/// ([`is_query`]; this also catches what DataFusion cannot plan, like `CREATE
/// FUNCTION`); after planning, the plan must hold no DDL, DML or statement
/// ([`read_only`]).
pub async fn plan(ctx: &SessionContext, sql: &str) -> Result<DataFrame, QueryError> {
    only_queries(sql)?;
    ctx.sql_with_options(sql, read_only())
        .await
        .map_err(read_only_error)
}

/// Whether `statement` only reads: a query (`SELECT`, `WITH`, `VALUES`), `SHOW`, or
/// `EXPLAIN` of one of those.
pub fn is_query(statement: &Statement) -> bool {
    match statement {
        Statement::Query(q) => reads_only(q),
        Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ExplainTable { .. } => true,
        Statement::Explain { statement, .. } => is_query(statement),
        _ => false,
    }
}

/// Whether a query and its common table expressions only read: `WITH gone AS (DELETE
/// ... RETURNING *) SELECT ...` does not.
fn reads_only(query: &Query) -> bool {
    fn body(set: &SetExpr) -> bool {
        match set {
            SetExpr::Query(q) => reads_only(q),
            SetExpr::SetOperation { left, right, .. } => body(left) && body(right),
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                false
            }
            _ => true,
        }
    }
    let ctes = query
        .with
        .as_ref()
        .is_none_or(|with| with.cte_tables.iter().all(|cte| reads_only(&cte.query)));
    ctes && body(&query.body)
}

/// The first words of a statement, to name it in a refusal (`CREATE TABLE`).
pub fn statement_kind(statement: &impl std::fmt::Display) -> String {
    statement
        .to_string()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// Refuses `sql` unless it is one statement and a query (see [`plan`]). Text that
/// does not parse is left to the planner, which names the syntax error.
fn only_queries(sql: &str) -> Result<(), QueryError> {
    let Ok(statements) = DFParser::parse_sql_with_dialect(sql, &GenericDialect {}) else {
        return Ok(());
    };
    for statement in &statements {
        let query = match statement {
            DFStatement::Statement(s) => is_query(s),
            DFStatement::Explain(e) => match e.statement.as_ref() {
                DFStatement::Statement(s) => is_query(s),
                _ => false,
            },
            _ => false,
        };
        if !query {
            return Err(QueryError::ReadOnly(format!(
                "`{}` is not a query",
                statement_kind(statement)
            )));
        }
    }
    if statements.len() > 1 {
        return Err(QueryError::Engine(DataFusionError::Plan(format!(
            "send one statement at a time ({} were sent)",
            statements.len()
        ))));
    }
    Ok(())
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

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
pub mod stop_points;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use citybooks_warehouse::Warehouse;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
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
    #[error(transparent)]
    ReadOnly(#[from] ReadOnly),
}

/// A statement the read-only gate refused. Front doors map it by type — SQLSTATE
/// 25006 on the PostgreSQL wire, HTTP 403 — never by its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("citybooks is read-only: only queries run (SELECT, WITH, VALUES, EXPLAIN, SHOW); the warehouse changes only through loads ({what})")]
pub struct ReadOnly {
    /// What was refused, e.g. "`CREATE TABLE` is not a query" or "DML not supported:
    /// Insert Into".
    pub what: String,
}

impl ReadOnly {
    pub fn new(what: impl Into<String>) -> Self {
        ReadOnly { what: what.into() }
    }
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
/// ([`verify_read_only`]).
pub async fn plan(ctx: &SessionContext, sql: &str) -> Result<DataFrame, QueryError> {
    only_queries(sql)?;
    let plan = ctx.state().create_logical_plan(sql).await?;
    verify_read_only(&plan)?;
    Ok(ctx.execute_logical_plan(plan).await?)
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
            return Err(
                ReadOnly::new(format!("`{}` is not a query", statement_kind(statement))).into(),
            );
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

/// Refuses a planned statement that holds DDL, DML (`COPY ... TO` included) or a
/// statement (`SET`, transactions) anywhere in its plan, as a typed [`ReadOnly`]. Servers that plan statements themselves (the PostgreSQL
/// wire protocol's) call it too.
pub fn verify_read_only(plan: &LogicalPlan) -> Result<(), ReadOnly> {
    let mut refused = None;
    plan.apply(|node| {
        refused = match node {
            LogicalPlan::Ddl(ddl) => Some(format!("DDL not supported: {}", ddl.name())),
            LogicalPlan::Dml(dml) => Some(format!("DML not supported: {}", dml.op)),
            LogicalPlan::Copy(_) => Some("DML not supported: COPY".to_string()),
            LogicalPlan::Statement(s) => Some(format!("Statement not supported: {}", s.name())),
            _ => None,
        };
        Ok(if refused.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })
    .expect("the visit returns no error");
    refused.map_or(Ok(()), |what| Err(ReadOnly::new(what)))
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

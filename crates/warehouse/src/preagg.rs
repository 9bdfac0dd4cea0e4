//! Aggregate the facts by their keys before joining the dimensions.
//!
//! Nearly every question asked of the star schema — a chart, an explorer view, an
//! analyst's group-by — is an aggregate over `report.transaction` joined to dimensions
//! by their keys: `sum(t.amount)` by organization group, `count(*)` by fund type. As
//! written, the join runs once per fact row (a million probes of the program table for
//! a million rows) and the group-by then hashes the dimension's text. But the facts
//! need not be joined one by one: a fact row's dimension members depend only on its
//! keys, so the facts can first be aggregated by those keys (and whatever other fact
//! columns the query uses, such as the fiscal year) — a few thousand groups — and the
//! groups joined instead. This is the textbook eager aggregation (Yan and Larson,
//! "Eager Aggregation and Lazy Aggregation", VLDB 1995); DataFusion 55 does not do it
//! itself. Measured before it was written: the organization-group chart at 10M rows,
//! p95 141 → 50 ms.
//!
//! [`PreAggregate`] rewrites
//! `Aggregate(G; f(x)...) over inner equi-joins of report.transaction and other tables`
//! into
//! `Aggregate(G; f'(partial)...) over the same joins of
//!  Aggregate(the fact columns the joins, filters and G use; partial = f(x)...)`
//! when it is exactly right:
//! - every aggregate is, without DISTINCT, FILTER or ORDER BY, one of
//!   - `sum`, `count`, `min` or `max` of an expression of fact columns only (so it can
//!     be computed before the join): a sum of sums, a sum of counts, a min of mins and
//!     a max of maxes are the same numbers — the same `decimal(20,2)` cents — whatever
//!     the join does to the rows, since all rows of a pre-aggregated group join the
//!     same dimension rows;
//!   - `sum(CASE WHEN c THEN x ELSE -x END)` where the conditions may read dimension
//!     columns and every result is `x`, `-x`, NULL or zero (the net chart's revenue
//!     minus spending): the partial is `sum(x)` and the final sums the CASE of the
//!     partials, as a group's rows all meet the same conditions;
//!   - `avg(x)` of a decimal, in a session whose plans run in this process: partials
//!     `sum(x)` and `count(x)`, and a final step that does DataFusion's own decimal
//!     division ([`DecimalAvg`]), so the digits are the same as the plain plan's;
//! - the joins are inner equi-joins, and the aggregated columns are used by nothing but
//!   the aggregates;
//! - the fact columns it groups by are the fiscal year and the keys (low cardinality:
//!   grouping by `transaction_id` would aggregate nothing).
//!
//! A dimension joined by its key only to filter the facts — nothing above the join
//! reads its columns, as with the explorer's `p.related_govt_units = 'No'` and
//! `f.revenue_or_spending = 'Spending'` — is joined to the facts *below* the
//! pre-aggregation, as a semi-join ([`Semi`]), so its key is not a grouping column of
//! the partial unless something else reads it. Grouping by every joined key made the
//! partial nearly as large as its input where keys combine freely (the explorer's
//! type view at 10M generated rows: 345K rows into 337K groups).
//!
//! Anything else (an aggregate of a dimension column, a CASE with two different
//! results, outer joins, windows between, `avg` of a float) is left exactly as
//! planned. The result's schema is the original's: a projection casts each
//! re-aggregated value back to the original type (a sum of `decimal(30,2)` sums is
//! `decimal(38,2)`) and name.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Decimal128Array};
use arrow::datatypes::{DataType, Decimal128Type, DecimalType, Int64Type};
use citybooks_model::{ledger, Table};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{
    exec_err, Column, DataFusionError, Result as DfResult, ScalarValue, TableReference,
};
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::expr::{AggregateFunction, Case, ScalarFunction};
use datafusion::logical_expr::{
    cast, col, lit, Aggregate, ColumnarValue, Expr, ExprSchemable, Filter, Join, JoinType,
    LogicalPlan, Projection, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The optimizer rule: see the module doc.
#[derive(Debug)]
pub struct PreAggregate {
    /// Whether `avg` of a decimal is rewritten too: its final step is a function of
    /// citybooks' own ([`DecimalAvg`]), which a session that sends its plans to an
    /// outside engine (a Ballista cluster) must not use, as the other side would not
    /// know it.
    pub exact_avg: bool,
}

/// How an aggregate is computed from its partials.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Sum,
    Count,
    Min,
    Max,
    /// `sum(CASE WHEN c THEN x ELSE -x END)` (results `x`, `-x`, NULL or zero; the
    /// conditions read no aggregated column): the partial is `sum(x)`, and the final
    /// sums the same CASE of the partials — a group's rows all meet the same
    /// conditions, since they join the same dimension rows. The net chart's shape.
    SumCase {
        case: Case,
        x: Expr,
    },
    /// `avg(x)` of a decimal: partials `sum(x)` and `count(x)`, and the final is
    /// DataFusion's own decimal average of their sums ([`DecimalAvg`]).
    Avg,
}

/// An aggregate of the query: how it is re-aggregated, from which partials.
struct Agg {
    kind: Kind,
    /// Its first partial's index (an average has two).
    first: usize,
}

impl OptimizerRule for PreAggregate {
    fn name(&self) -> &str {
        "citybooks_pre_aggregate_facts"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = &plan else {
            return Ok(Transformed::no(plan));
        };
        // Any plan it cannot rewrite, or any error while rewriting, leaves the plan as
        // it was: this rule only ever makes a query faster, never fails one.
        match self.rewrite(aggregate) {
            Ok(Some(rewritten)) => Ok(Transformed::yes(rewritten)),
            Ok(None) | Err(_) => Ok(Transformed::no(plan)),
        }
    }
}

/// The fact columns a pre-aggregation may group by.
fn groupable(name: &str) -> bool {
    name == "fiscal_year" || name == "finance_id" || ledger().layouts.iter().any(|l| l.key == name)
}

fn is_fact(table: &TableReference) -> bool {
    table.table() == Table::Transaction.name()
        && table
            .schema()
            .is_none_or(|s| s == Table::Transaction.schema_name())
}

/// What the rewrite needs to know on its way down.
struct Rewrite {
    /// The aggregates, and every partial they need (aliased `{PARTIAL}{i}`).
    aggs: Vec<Agg>,
    partials: Vec<Expr>,
    /// The columns the aggregates read (they disappear below the joins).
    aggregated: HashSet<Column>,
    /// The dimensions joined only to filter the facts: joined to the facts below
    /// the pre-aggregation, as semi-joins, instead of above it.
    semis: Vec<Semi>,
    /// The columns that disappear with them: the dimensions' own, and the fact keys
    /// nothing else reads.
    removed: HashSet<Column>,
}

/// An inner join of the facts to a dimension by its key, of which nothing above
/// reads a column: it only keeps the fact rows whose key the dimension (as
/// filtered) has. The dimension's key is unique (the loader gives each member one
/// key), so each such row joins exactly one dimension row and the inner join is the
/// semi-join. Done below the pre-aggregation, the fact key need not be a grouping
/// column of the partial: the explorer's type view (types of the programs that are
/// not related government units, spending only) groups the partials by the type
/// alone, not by (program, type, finance), which at 10M generated rows aggregated
/// 345K rows into 337K groups.
struct Semi {
    /// The join's dimension side, as planned (its filters included).
    dimension: Arc<LogicalPlan>,
    /// The fact key and the dimension's key column.
    fact_key: Column,
    dimension_key: Column,
    null_equality: datafusion::common::NullEquality,
}

const PARTIAL: &str = "__citybooks_partial_";
const FINAL: &str = "__citybooks_final_";

fn partial(i: usize) -> Expr {
    col(Column::from_name(format!("{PARTIAL}{i}")))
}

fn final_column(i: usize) -> Expr {
    col(Column::from_name(format!("{FINAL}{i}")))
}

/// `x` if `case` is `CASE WHEN .. THEN r .. [ELSE r] END` whose every result `r` is
/// the same `x`, its negation, NULL or zero (`x` may be a constant: `THEN 1 ELSE 0`
/// counts rows, and its partial `sum(1)` counts each group's rows).
fn signed_case(case: &Case) -> Option<Expr> {
    if case.expr.is_some() {
        return None;
    }
    let mut x: Option<&Expr> = None;
    let results = case.when_then_expr.iter().map(|(_, then)| then.as_ref());
    for result in results.chain(case.else_expr.as_deref()) {
        let term = match result {
            Expr::Literal(value, _) if is_null_or_zero(value) => continue,
            Expr::Negative(e) => e.as_ref(),
            e => e,
        };
        match x {
            None => x = Some(term),
            Some(seen) if seen == term => {}
            Some(_) => return None,
        }
    }
    x.cloned()
}

fn is_null_or_zero(value: &ScalarValue) -> bool {
    value.is_null() || ScalarValue::new_zero(&value.data_type()).is_ok_and(|zero| &zero == value)
}

impl PreAggregate {
    fn rewrite(&self, aggregate: &Aggregate) -> DfResult<Option<LogicalPlan>> {
        if aggregate
            .group_expr
            .iter()
            .any(|e| matches!(e, Expr::GroupingSet(_)))
        {
            return Ok(None);
        }
        let input_schema = aggregate.input.schema();
        let mut aggs = Vec::new();
        let mut partials = Vec::new();
        let mut aggregated = HashSet::new();
        // Columns that must reach the final aggregate: its grouping, and the
        // conditions of a CASE re-applied to the partials.
        let mut kept: Vec<Expr> = aggregate.group_expr.clone();
        for e in &aggregate.aggr_expr {
            let e = match e {
                Expr::Alias(alias) => alias.expr.as_ref(),
                e => e,
            };
            let Expr::AggregateFunction(AggregateFunction { func, params }) = e else {
                return Ok(None);
            };
            if params.distinct
                || params.filter.is_some()
                || !params.order_by.is_empty()
                || params.null_treatment.is_some()
                || params.args.len() != 1
            {
                return Ok(None);
            }
            let arg = params.args[0].clone();
            let first = partials.len();
            let (kind, arg) = match (func.name(), &arg) {
                ("sum", Expr::Case(case)) => {
                    let Some(x) = signed_case(case) else {
                        return Ok(None);
                    };
                    kept.extend(case.when_then_expr.iter().map(|(when, _)| *when.clone()));
                    partials.push(sum(x.clone()));
                    let kind = Kind::SumCase {
                        case: case.clone(),
                        x: x.clone(),
                    };
                    (kind, x)
                }
                ("sum", _) => (Kind::Sum, arg),
                ("count", _) => (Kind::Count, arg),
                ("min", _) => (Kind::Min, arg),
                ("max", _) => (Kind::Max, arg),
                ("avg", _)
                    if self.exact_avg
                        && matches!(
                            arg.get_type(input_schema.as_ref())?,
                            DataType::Decimal128(..)
                        ) =>
                {
                    partials.push(sum(arg.clone()));
                    partials.push(count(arg.clone()));
                    (Kind::Avg, arg)
                }
                _ => return Ok(None),
            };
            match kind {
                Kind::Sum | Kind::Count | Kind::Min | Kind::Max => partials.push(match kind {
                    Kind::Sum => sum(arg.clone()),
                    Kind::Count => count(arg.clone()),
                    Kind::Min => min(arg.clone()),
                    _ => max(arg.clone()),
                }),
                Kind::SumCase { .. } | Kind::Avg => {}
            }
            aggregated.extend(arg.column_refs().into_iter().cloned());
            aggs.push(Agg { kind, first });
        }
        // The grouping and the re-applied conditions must not read what is aggregated away.
        if kept
            .iter()
            .any(|e| e.column_refs().iter().any(|c| aggregated.contains(*c)))
        {
            return Ok(None);
        }
        let partials = partials
            .into_iter()
            .enumerate()
            .map(|(i, e)| e.alias(format!("{PARTIAL}{i}")))
            .collect();
        // Only a join with the facts below it is worth it (and is what this is for).
        if !has_join(&aggregate.input) || !contains_fact(&aggregate.input) {
            return Ok(None);
        }
        let (semis, removed) = semi_joins(aggregate, &kept, &aggregated);
        let plan = Rewrite {
            aggs,
            partials,
            aggregated,
            semis,
            removed,
        };
        let Some(input) = plan.push_down(&aggregate.input)? else {
            return Ok(None);
        };
        // Re-aggregate the partials with the original grouping...
        let mut finals = Vec::new();
        for agg in &plan.aggs {
            let p = partial(agg.first);
            let e = match &agg.kind {
                Kind::Sum | Kind::Count => sum(p),
                Kind::Min => min(p),
                Kind::Max => max(p),
                Kind::SumCase { case, x } => {
                    // The partials are sums: wider decimals than `x`.
                    let wide = sum(x.clone()).get_type(input_schema.as_ref())?;
                    // (`signed_case` let through nothing but these.)
                    let result = |r: &Expr| match r {
                        r if r == x => p.clone(),
                        Expr::Negative(_) => Expr::Negative(Box::new(p.clone())),
                        _ => cast(r.clone(), wide.clone()),
                    };
                    sum(Expr::Case(Case {
                        expr: None,
                        when_then_expr: case
                            .when_then_expr
                            .iter()
                            .map(|(when, then)| (when.clone(), Box::new(result(then))))
                            .collect(),
                        else_expr: case.else_expr.as_deref().map(|e| Box::new(result(e))),
                    }))
                }
                Kind::Avg => {
                    finals.push(sum(p).alias(format!("{FINAL}{}", finals.len())));
                    sum(partial(agg.first + 1))
                }
            };
            finals.push(e.alias(format!("{FINAL}{}", finals.len())));
        }
        let regrouped = LogicalPlan::Aggregate(Aggregate::try_new(
            Arc::new(input),
            aggregate.group_expr.clone(),
            finals,
        )?);
        // ...then give every output the original's name and type.
        let groups = aggregate.group_expr.len();
        let mut outputs = Vec::with_capacity(aggregate.schema.fields().len());
        let mut next_final = 0;
        for (i, (qualifier, field)) in aggregate.schema.iter().enumerate() {
            if i < groups {
                outputs.push(Expr::Column(Column::new(qualifier.cloned(), field.name())));
                continue;
            }
            let value = match &plan.aggs[i - groups].kind {
                // A sum of no counts is NULL; a count of no rows is 0.
                Kind::Count => coalesce(vec![final_column(next_final), lit(0i64)]),
                Kind::Avg => {
                    next_final += 1;
                    let DataType::Decimal128(precision, scale) = field.data_type() else {
                        return Ok(None);
                    };
                    let avg = DecimalAvg::new(*precision, *scale);
                    Expr::ScalarFunction(ScalarFunction::new_udf(
                        Arc::new(ScalarUDF::new_from_impl(avg)),
                        vec![final_column(next_final - 1), final_column(next_final)],
                    ))
                }
                _ => final_column(next_final),
            };
            next_final += 1;
            outputs.push(cast(value, field.data_type().clone()).alias(field.name()));
        }
        Ok(Some(LogicalPlan::Projection(Projection::try_new(
            outputs,
            Arc::new(regrouped),
        )?)))
    }
}

/// DataFusion 55's decimal `avg` computed from a sum and a count: the sum scaled to
/// the result's scale, divided by the count, truncated toward zero; NULL for no
/// values; an overflow is an error, as in DataFusion's `DecimalAverager::avg`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DecimalAvg {
    signature: Signature,
    precision: u8,
    scale: i8,
}

impl DecimalAvg {
    fn new(precision: u8, scale: i8) -> Self {
        DecimalAvg {
            signature: Signature::any(2, Volatility::Immutable),
            precision,
            scale,
        }
    }
}

impl ScalarUDFImpl for DecimalAvg {
    fn name(&self) -> &str {
        "citybooks_decimal_avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Decimal128(self.precision, self.scale))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (DataType::Decimal128(_, sum_scale), DataType::Int64) =
            (arrays[0].data_type(), arrays[1].data_type())
        else {
            return exec_err!("citybooks_decimal_avg(decimal sum, bigint count)");
        };
        let Some(shift) = self
            .scale
            .checked_sub(*sum_scale)
            .and_then(|d| u32::try_from(d).ok())
            .and_then(|d| 10i128.checked_pow(d))
        else {
            return exec_err!("Arithmetic Overflow in AvgAccumulator");
        };
        let sums = arrays[0].as_primitive::<Decimal128Type>();
        let counts = arrays[1].as_primitive::<Int64Type>();
        let mut out = Vec::with_capacity(sums.len());
        for i in 0..sums.len() {
            if sums.is_null(i) || counts.is_null(i) || counts.value(i) == 0 {
                out.push(None);
                continue;
            }
            let value = sums
                .value(i)
                .checked_mul(shift)
                .map(|v| v / i128::from(counts.value(i)))
                .filter(|v| Decimal128Type::is_valid_decimal_precision(*v, self.precision));
            match value {
                Some(v) => out.push(Some(v)),
                None => {
                    return Err(DataFusionError::Execution(
                        "Arithmetic Overflow in AvgAccumulator".into(),
                    ))
                }
            }
        }
        let array =
            Decimal128Array::from(out).with_precision_and_scale(self.precision, self.scale)?;
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

fn has_join(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Join(_)) || plan.inputs().into_iter().any(has_join)
}

fn contains_fact(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => is_fact(&scan.table_name),
        _ => plan.inputs().into_iter().any(contains_fact),
    }
}

/// Whether `plan` reads the fact table and nothing else, through scans, filters,
/// projections and aliases only.
fn is_fact_subtree(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => is_fact(&scan.table_name),
        LogicalPlan::Filter(_) | LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {
            plan.inputs().into_iter().all(is_fact_subtree)
        }
        _ => false,
    }
}

/// The inner joins below `aggregate` that are semi-joins in disguise ([`Semi`]),
/// and the columns that disappear when they are done as such.
fn semi_joins(
    aggregate: &Aggregate,
    kept: &[Expr],
    aggregated: &HashSet<Column>,
) -> (Vec<Semi>, HashSet<Column>) {
    // Every column something reads — a grouping, an aggregate, a condition, a join
    // other than a candidate's own — not counting projections passing a column on.
    let mut uses: HashSet<Column> = aggregated.clone();
    for e in kept {
        uses.extend(e.column_refs().into_iter().cloned());
    }
    let mut candidates = Vec::new();
    find_semis(&aggregate.input, &mut uses, &mut candidates);
    let (semis, refused): (Vec<Semi>, Vec<Semi>) = candidates.into_iter().partition(|s| {
        s.dimension
            .schema()
            .columns()
            .iter()
            .all(|c| !uses.contains(c))
    });
    for s in refused {
        uses.extend([s.fact_key, s.dimension_key]);
    }
    let mut removed = HashSet::new();
    for s in &semis {
        removed.extend(s.dimension.schema().columns());
        if !uses.contains(&s.fact_key) {
            removed.insert(s.fact_key.clone());
        }
    }
    (semis, removed)
}

/// Walks what [`Rewrite::push_down`] walks, noting the columns read in `uses` and
/// each join of the facts to a dimension by its key in `candidates`.
fn find_semis(plan: &LogicalPlan, uses: &mut HashSet<Column>, candidates: &mut Vec<Semi>) {
    match plan {
        LogicalPlan::Join(join) if join.join_type == JoinType::Inner => {
            if let Some(semi) = semi_candidate(join) {
                let facts = if Arc::ptr_eq(&semi.dimension, &join.left) {
                    &join.right
                } else {
                    &join.left
                };
                candidates.push(semi);
                find_semis(facts, uses, candidates);
                return;
            }
            for (l, r) in &join.on {
                uses.extend(l.column_refs().into_iter().cloned());
                uses.extend(r.column_refs().into_iter().cloned());
            }
            if let Some(f) = &join.filter {
                uses.extend(f.column_refs().into_iter().cloned());
            }
            find_semis(&join.left, uses, candidates);
            find_semis(&join.right, uses, candidates);
        }
        LogicalPlan::Projection(projection) => {
            for e in &projection.expr {
                if !matches!(e, Expr::Column(_)) {
                    uses.extend(e.column_refs().into_iter().cloned());
                }
            }
            find_semis(&projection.input, uses, candidates);
        }
        LogicalPlan::Filter(filter) => {
            uses.extend(filter.predicate.column_refs().into_iter().cloned());
            find_semis(&filter.input, uses, candidates);
        }
        _ => {
            for e in plan.expressions() {
                uses.extend(e.column_refs().into_iter().cloned());
            }
            for input in plan.inputs() {
                find_semis(input, uses, candidates);
            }
        }
    }
}

/// `join` as a [`Semi`] if it is an equi-join of one column of the facts to the
/// key of a dimension (or of report.finance) read through nothing but filters and
/// projections, whatever reads its columns above.
fn semi_candidate(join: &Join) -> Option<Semi> {
    let [(l, r)] = join.on.as_slice() else {
        return None;
    };
    let (Expr::Column(l), Expr::Column(r)) = (l, r) else {
        return None;
    };
    if join.filter.is_some() {
        return None;
    }
    for (facts, dimension, fact_key, dimension_key) in [
        (&join.left, &join.right, l, r),
        (&join.right, &join.left, r, l),
    ] {
        if contains_fact(dimension) || !contains_fact(facts) {
            continue;
        }
        let Some(table) = dimension_scanned(dimension) else {
            continue;
        };
        let keyed = Table::Transaction
            .foreign_keys()
            .into_iter()
            .any(|(column, t)| t == table && column == fact_key.name);
        if keyed
            && matches!(table, Table::Dimension(_) | Table::Finance)
            && table.id_column() == Some(dimension_key.name.as_str())
            && dimension.schema().has_column(dimension_key)
            && facts.schema().has_column(fact_key)
        {
            return Some(Semi {
                dimension: dimension.clone(),
                fact_key: fact_key.clone(),
                dimension_key: dimension_key.clone(),
                null_equality: join.null_equality,
            });
        }
    }
    None
}

/// The table `plan` reads, if it reads one report table through filters,
/// projections and aliases only (no limit: every row of it that passes the filters).
fn dimension_scanned(plan: &LogicalPlan) -> Option<Table> {
    match plan {
        LogicalPlan::TableScan(scan) if scan.fetch.is_none() => {
            let table = &scan.table_name;
            let schema = table.schema().unwrap_or("report");
            Table::named(&format!("{schema}.{}", table.table()))
        }
        LogicalPlan::Filter(_) | LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {
            match plan.inputs().as_slice() {
                [input] => dimension_scanned(input),
                _ => None,
            }
        }
        _ => None,
    }
}

impl Rewrite {
    fn reads_aggregated(&self, e: &Expr) -> bool {
        e.column_refs().iter().any(|c| self.aggregated.contains(*c))
    }

    /// `plan` with the facts aggregated where they enter it; None if that would not
    /// be exactly right (see the module doc).
    fn push_down(&self, plan: &Arc<LogicalPlan>) -> DfResult<Option<LogicalPlan>> {
        if !contains_fact(plan) {
            return Ok(Some(plan.as_ref().clone()));
        }
        if is_fact_subtree(plan) {
            return self.pre_aggregate(plan);
        }
        match plan.as_ref() {
            LogicalPlan::Join(join) if join.join_type == JoinType::Inner => {
                if contains_fact(&join.left) && contains_fact(&join.right) {
                    return Ok(None); // the facts joined with themselves
                }
                // A dimension only filtering: joined where the facts are aggregated.
                for (facts, other) in [(&join.left, &join.right), (&join.right, &join.left)] {
                    if self.semis.iter().any(|s| Arc::ptr_eq(&s.dimension, other)) {
                        return self.push_down(facts);
                    }
                }
                if join
                    .on
                    .iter()
                    .any(|(l, r)| self.reads_aggregated(l) || self.reads_aggregated(r))
                    || join
                        .filter
                        .as_ref()
                        .is_some_and(|f| self.reads_aggregated(f))
                {
                    return Ok(None);
                }
                let (Some(left), Some(right)) =
                    (self.push_down(&join.left)?, self.push_down(&join.right)?)
                else {
                    return Ok(None);
                };
                Ok(Some(LogicalPlan::Join(Join::try_new(
                    Arc::new(left),
                    Arc::new(right),
                    join.on.clone(),
                    join.filter.clone(),
                    join.join_type,
                    join.join_constraint,
                    join.null_equality,
                    join.null_aware,
                )?)))
            }
            LogicalPlan::Filter(filter) => {
                if self.reads_aggregated(&filter.predicate) {
                    return Ok(None);
                }
                let Some(input) = self.push_down(&filter.input)? else {
                    return Ok(None);
                };
                Ok(Some(LogicalPlan::Filter(Filter::try_new(
                    filter.predicate.clone(),
                    Arc::new(input),
                )?)))
            }
            // A projection of columns (what the optimiser puts between joins): the
            // same columns less the aggregated ones, plus the partials.
            LogicalPlan::Projection(projection) => {
                let mut exprs = Vec::with_capacity(projection.expr.len());
                for e in &projection.expr {
                    match e {
                        Expr::Column(c)
                            if self.aggregated.contains(c) || self.removed.contains(c) => {}
                        Expr::Column(_) => exprs.push(e.clone()),
                        _ => return Ok(None),
                    }
                }
                let Some(input) = self.push_down(&projection.input)? else {
                    return Ok(None);
                };
                exprs.extend((0..self.partials.len()).map(partial));
                Ok(Some(LogicalPlan::Projection(Projection::try_new(
                    exprs,
                    Arc::new(input),
                )?)))
            }
            _ => Ok(None),
        }
    }

    /// The fact subtree `facts` aggregated by its columns that are not aggregated.
    fn pre_aggregate(&self, facts: &Arc<LogicalPlan>) -> DfResult<Option<LogicalPlan>> {
        let schema = facts.schema();
        // Every aggregated column must come from the facts.
        if self.aggregated.iter().any(|c| !schema.has_column(c)) {
            return Ok(None);
        }
        let mut groups = Vec::new();
        for column in schema.columns() {
            if self.aggregated.contains(&column) || self.removed.contains(&column) {
                continue;
            }
            if !groupable(&column.name) {
                return Ok(None);
            }
            groups.push(Expr::Column(column));
        }
        // The filtering dimensions, each joined as `dimension RIGHT SEMI facts`: the
        // dimension (a few thousand rows at most) is the side hashed.
        let mut input = facts.clone();
        for semi in &self.semis {
            if !schema.has_column(&semi.fact_key) {
                return Ok(None);
            }
            input = Arc::new(LogicalPlan::Join(Join::try_new(
                semi.dimension.clone(),
                input,
                vec![(
                    Expr::Column(semi.dimension_key.clone()),
                    Expr::Column(semi.fact_key.clone()),
                )],
                None,
                JoinType::RightSemi,
                datafusion::logical_expr::JoinConstraint::On,
                semi.null_equality,
                false,
            )?));
        }
        Ok(Some(LogicalPlan::Aggregate(Aggregate::try_new(
            input,
            groups,
            self.partials.clone(),
        )?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Int32Array, RecordBatch, StringArray};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::catalog::MemTable;
    use datafusion::prelude::SessionContext;

    /// report.transaction, report.program and report.finance with a few rows, in a
    /// session with the rule (`with`) or without.
    async fn session(with: bool) -> SessionContext {
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new()
                .with_default_catalog_and_schema("datafusion", "report"),
        );
        if with {
            ctx.add_optimizer_rule(Arc::new(PreAggregate { exact_avg: true }));
        }
        let facts = Table::Transaction.schema();
        let n = 10;
        let columns = facts
            .fields()
            .iter()
            .map(|f| -> Arc<dyn arrow::array::Array> {
                match (f.name().as_str(), f.data_type()) {
                    ("fiscal_year", _) => {
                        Arc::new(Int32Array::from_iter_values((0..n).map(|i| 2024 + i % 2)))
                    }
                    ("finance_id", _) => {
                        Arc::new(Int32Array::from_iter_values((0..n).map(|i| 1 + i % 2)))
                    }
                    (_, arrow::datatypes::DataType::Int32) => {
                        Arc::new(Int32Array::from_iter_values((0..n).map(|i| i % 3)))
                    }
                    (_, arrow::datatypes::DataType::Int64) => Arc::new(
                        arrow::array::Int64Array::from_iter_values((0..n).map(i64::from)),
                    ),
                    (_, arrow::datatypes::DataType::Decimal128(p, s)) => Arc::new(
                        Decimal128Array::from_iter_values(
                            (0..n).map(|i| i128::from(i) * 100_001 - 250_000),
                        )
                        .with_precision_and_scale(*p, *s)
                        .unwrap(),
                    ),
                    _ => Arc::new(StringArray::from_iter_values(
                        (0..n).map(|i| format!("f{i}")),
                    )),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(facts.clone(), columns).unwrap();
        ctx.register_table(
            "report.transaction",
            Arc::new(MemTable::try_new(facts, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
        // Programs 0..3 in two groups; program 2 twice, so a join may repeat rows.
        ctx.sql(
            "create table report.program as values (0, 'A', 'x'), (1, 'B', 'x'), (2, 'C', 'y'), (2, 'C2', 'y')",
        )
        .await
        .unwrap();
        ctx.sql("create table report.finance as values (1, 'Spending'), (2, 'Revenue')")
            .await
            .unwrap();
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> (String, String) {
        let df = ctx.sql(sql).await.unwrap();
        let plan = df
            .clone()
            .into_optimized_plan()
            .unwrap()
            .display_indent()
            .to_string();
        let rows = pretty_format_batches(&df.collect().await.unwrap())
            .unwrap()
            .to_string();
        (rows, plan)
    }

    #[tokio::test]
    async fn pre_aggregated_answers_equal_the_plain_ones() {
        let (plain, with) = (session(false).await, session(true).await);
        // (query, whether the rule applies)
        let cases = [
            ("select p.column3 g, sum(t.amount) s, count(*) n, min(t.amount) lo, max(t.amount) hi from transaction t join program p on t.program_id = p.column1 group by p.column3 order by 1", true),
            ("select p.column2, f.column2, sum(t.amount) from transaction t join program p on t.program_id = p.column1 join finance f on t.finance_id = f.column1 where f.column2 = 'Spending' and t.fiscal_year = 2025 group by 1, 2 order by 1, 2", true),
            ("select t.fiscal_year, count(t.amount) from transaction t join finance f on t.finance_id = f.column1 group by t.fiscal_year order by 1", true),
            ("select count(*) from transaction t join program p on t.program_id = p.column1 where p.column2 = 'nobody'", true),
            ("select sum(t.amount) from transaction t join program p on t.program_id = p.column1 where p.column2 = 'nobody'", true),
            // The net chart's CASE, with a missing ELSE, with zero, with a fact column
            // in the condition.
            ("select p.column3, sum(case when f.column2 = 'Revenue' then t.amount else -t.amount end) net from transaction t join program p on t.program_id = p.column1 join finance f on t.finance_id = f.column1 group by p.column3 order by net", true),
            ("select sum(case when f.column2 = 'Revenue' then t.amount end), sum(case when f.column2 = 'Nothing' then t.amount end) from transaction t join finance f on t.finance_id = f.column1", true),
            ("select p.column2, sum(case when p.column3 = 'x' and t.fiscal_year = 2024 then -t.amount else 0 end) from transaction t join program p on t.program_id = p.column1 group by 1 order by 1", true),
            // avg of a decimal, to DataFusion's digits (negative and positive means,
            // truncated), and of nothing.
            ("select p.column3, avg(t.amount), count(*) from transaction t join program p on t.program_id = p.column1 group by 1 order by 1", true),
            ("select f.column2, avg(t.amount) from transaction t join finance f on t.finance_id = f.column1 where t.fiscal_year = 2025 group by 1 order by 1", true),
            ("select avg(t.amount) from transaction t join program p on t.program_id = p.column1 where p.column2 = 'nobody'", true),
            ("select sum(case when f.column2 = 'Revenue' then 1 else 0 end) from transaction t join finance f on t.finance_id = f.column1", true),
            // Not rewritten: a CASE of two results; a CASE whose condition reads the
            // aggregated column; an aggregate of a dimension column; avg of a float;
            // DISTINCT; a grouping by an aggregated column; by the transaction id; an
            // outer join.
            ("select sum(case when f.column2 = 'Revenue' then 1 else 2 end) from transaction t join finance f on t.finance_id = f.column1", false),
            ("select sum(case when t.amount > 0 then t.amount else 0 end) from transaction t join finance f on t.finance_id = f.column1", false),
            ("select sum(length(f.column2)) from transaction t join finance f on t.finance_id = f.column1", false),
            ("select avg(cast(t.amount as double)) from transaction t join finance f on t.finance_id = f.column1", false),
            ("select count(distinct t.fund_id) from transaction t join finance f on t.finance_id = f.column1", false),
            ("select t.amount, count(*) from transaction t join finance f on t.finance_id = f.column1 group by t.amount order by 1", false),
            ("select t.transaction_id, sum(t.amount) from transaction t join finance f on t.finance_id = f.column1 group by 1 order by 1", false),
            ("select p.column3, sum(t.amount) from transaction t left join program p on t.program_id = p.column1 group by 1 order by 1", false),
        ];
        for (sql, rewritten) in cases {
            let (expected, _) = run(&plain, sql).await;
            let (got, plan) = run(&with, sql).await;
            assert_eq!(got, expected, "{sql}\n{plan}");
            assert_eq!(plan.contains(PARTIAL), rewritten, "{sql}\n{plan}");
        }
    }

    /// Dimensions joined only to filter the facts are semi-joined below the partial
    /// (so it is not grouped by their keys), with the same answers.
    #[tokio::test]
    async fn filtering_dimensions_are_semi_joined_under_the_partial() {
        let (plain, with) = (session(false).await, session(true).await);
        for ctx in [&plain, &with] {
            // Keys unique, as the loader writes them; fund 2 is missing, so the
            // join drops facts.
            ctx.sql("create table report.type as select cast(column1 as int) as type_id, column2 as type_name, column3 as grp from (values (0, 'T0', 'a'), (1, 'T1', 'b'), (2, 'T2', 'a'))")
                .await
                .unwrap();
            ctx.sql("create table report.fund as select cast(column1 as int) as fund_id, column2 as fund_type from (values (0, 'x'), (1, 'y'))")
                .await
                .unwrap();
        }
        // (query, whether a semi-join is planned, the partial's grouping)
        let cases = [
            // The explorer's shape: list one dimension, filter by two others.
            ("select ty.grp, sum(t.amount) s, count(*) n from transaction t join type ty on t.type_id = ty.type_id join fund fu on t.fund_id = fu.fund_id join finance f on t.finance_id = f.column1 where fu.fund_type = 'x' and t.fiscal_year = 2025 group by ty.grp order by 1", true, "groupBy=[[t.type_id, t.finance_id]]"),
            ("select count(*) from transaction t join fund fu on t.fund_id = fu.fund_id", true, "groupBy=[[]]"),
            ("select ty.type_name, sum(t.amount) from transaction t join type ty on t.type_id = ty.type_id join fund fu on t.fund_id = fu.fund_id where fu.fund_type <> 'x' group by 1 order by 1", true, "groupBy=[[t.type_id]]"),
            // The fund key read elsewhere stays a grouping column.
            ("select t.fund_id, sum(t.amount) from transaction t join fund fu on t.fund_id = fu.fund_id where fu.fund_type = 'y' group by 1 order by 1", true, "groupBy=[[t.fund_id]]"),
            // A dimension column read above: a plain inner join under the rule.
            ("select fu.fund_type, sum(t.amount) from transaction t join fund fu on t.fund_id = fu.fund_id group by 1 order by 1", false, "groupBy=[[t.fund_id]]"),
            ("select ty.grp, max(t.amount) from transaction t join type ty on t.type_id = ty.type_id join fund fu on t.fund_id = fu.fund_id where fu.fund_type = ty.grp group by 1 order by 1", false, "groupBy=[[t.type_id, t.fund_id]]"),
            // Not the dimension's key: not a semi-join (report.program's column1
            // repeats a key).
            ("select ty.grp, sum(t.amount) from transaction t join type ty on t.type_id = ty.type_id join program p on t.program_id = p.column1 where p.column3 = 'y' group by 1 order by 1", false, "groupBy=[[t.program_id, t.type_id]]"),
        ];
        for (sql, semi, grouping) in cases {
            let (expected, _) = run(&plain, sql).await;
            let (got, plan) = run(&with, sql).await;
            assert_eq!(got, expected, "{sql}\n{plan}");
            assert!(plan.contains(PARTIAL), "{sql}\n{plan}");
            assert_eq!(plan.contains("RightSemi"), semi, "{sql}\n{plan}");
            assert!(plan.contains(grouping), "{sql}: {grouping}\n{plan}");
        }
    }

    #[tokio::test]
    async fn avg_is_left_alone_where_plans_leave_the_process() {
        let ctx = session(false).await;
        ctx.add_optimizer_rule(Arc::new(PreAggregate { exact_avg: false }));
        let sql = "select p.column3, avg(t.amount) from transaction t join program p on t.program_id = p.column1 group by 1";
        let (_, plan) = run(&ctx, sql).await;
        assert!(!plan.contains(PARTIAL), "{plan}");
        let sql = "select p.column3, sum(t.amount) from transaction t join program p on t.program_id = p.column1 group by 1";
        let (_, plan) = run(&ctx, sql).await;
        assert!(plan.contains(PARTIAL), "{plan}");
    }
}

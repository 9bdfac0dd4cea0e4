//! PostgreSQL's untyped string literals, where DataFusion types them as text.
//!
//! In PostgreSQL a quoted literal has no type until its context gives it one, so
//! `indisprimary = 'f'` compares two booleans. DataFusion reads every quoted literal as
//! text, and its type coercion then refuses `Boolean = Utf8`. SQLAlchemy 1.4 (the
//! version Apache Superset pins) sends exactly that in its index query, and so do
//! older tools and hand-written catalog queries.
//!
//! [`UntypedLiterals`] runs before DataFusion's type coercion: where a boolean
//! expression is compared with a text literal that PostgreSQL's boolean input accepts
//! (`t`, `true`, `yes`, `on`, `1`, `f`, ... in any case, with surrounding spaces), the
//! literal becomes that boolean. Any other text stays text, so the comparison fails as
//! it would have, and text columns (`contype = 'f'`) are never touched.

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{BinaryExpr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::Expr;

/// The analyzer rule: see the module doc.
#[derive(Debug, Default)]
pub struct UntypedLiterals;

impl AnalyzerRule for UntypedLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let schema = merge_schema(&plan.inputs());
            plan.map_expressions(|expr| expr.transform_up(|e| Ok(typed(e, &schema))))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "untyped_literals"
    }
}

/// `e` with a text literal compared to a boolean turned into a boolean.
fn typed(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if compares(op) => {
            let (l, r) = (
                boolean(&left, &right, schema),
                boolean(&right, &left, schema),
            );
            match (l, r) {
                (None, None) => Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })),
                (l, r) => Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                    left: Box::new(l.unwrap_or(*left)),
                    op,
                    right: Box::new(r.unwrap_or(*right)),
                })),
            }
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) if is_boolean(&expr, schema) => {
            let typed: Option<Vec<Expr>> = list.iter().map(boolean_literal).collect();
            match typed {
                Some(list) => Transformed::yes(Expr::InList(InList {
                    expr,
                    list,
                    negated,
                })),
                None => Transformed::no(Expr::InList(InList {
                    expr,
                    list,
                    negated,
                })),
            }
        }
        other => Transformed::no(other),
    }
}

fn compares(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    )
}

/// `literal` as a boolean, when `other` (the side it is compared with) is boolean.
fn boolean(literal: &Expr, other: &Expr, schema: &DFSchema) -> Option<Expr> {
    if !is_boolean(other, schema) {
        return None;
    }
    boolean_literal(literal)
}

fn is_boolean(e: &Expr, schema: &DFSchema) -> bool {
    matches!(e.get_type(schema), Ok(DataType::Boolean))
}

/// A text literal PostgreSQL's `boolin` accepts, as a boolean literal.
fn boolean_literal(e: &Expr) -> Option<Expr> {
    let Expr::Literal(
        ScalarValue::Utf8(Some(text))
        | ScalarValue::Utf8View(Some(text))
        | ScalarValue::LargeUtf8(Some(text)),
        _,
    ) = e
    else {
        return None;
    };
    parse_bool(text).map(|b| Expr::Literal(ScalarValue::Boolean(Some(b)), None))
}

/// PostgreSQL's boolean input (`boolin`): `true`, `yes`, `on`, `1` and their
/// opposites, in any case, with spaces around, and any unique prefix of the words
/// (`t`, `tr`, `of`; `o` alone is ambiguous between `on` and `off`).
fn parse_bool(text: &str) -> Option<bool> {
    let word = text.trim().to_ascii_lowercase();
    if word.is_empty() {
        return None;
    }
    match word.as_str() {
        "1" => return Some(true),
        "0" => return Some(false),
        // `o` alone is ambiguous between `on` and `off`.
        "o" => return None,
        _ => {}
    }
    let prefix_of = |full: &str| full.starts_with(word.as_str());
    if prefix_of("true") || prefix_of("yes") || (word.len() >= 2 && prefix_of("on")) {
        Some(true)
    } else if prefix_of("false") || prefix_of("no") || (word.len() >= 2 && prefix_of("off")) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bool;

    #[test]
    fn reads_booleans_as_postgresql_does() {
        for t in ["t", "true", "TRUE", " yes ", "y", "on", "1", "tr"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["f", "false", "No", "n", "off", "of", "0", "fal"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for neither in ["", "o", "maybe", "2", "truth", "offf"] {
            assert_eq!(parse_bool(neither), None, "{neither}");
        }
    }
}

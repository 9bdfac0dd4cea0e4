//! Statements rewritten into forms DataFusion plans ([`rewrite`], the [`Rewriter`]
//! visitor), and savepoints recognised ([`is_savepoint`]).

use datafusion::sql::sqlparser::ast::{
    AccessExpr, Expr, FunctionArguments, Ident, ObjectName, Query, SelectItem, SetExpr, Statement,
    Value, ValueWithSpan, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::constraint_views::{CONSTRAINT_VIEWS, HIDDEN_PREFIX};
use super::overlay::{ACL_ARRAYS, MISSING};

/// Whether `statement` is a savepoint command (`SAVEPOINT`, `RELEASE`, `ROLLBACK TO`),
/// and its command tag.
pub fn is_savepoint(statement: &Statement) -> Option<&'static str> {
    match statement {
        Statement::Savepoint { .. } => Some("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Some("RELEASE"),
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Some("ROLLBACK"),
        _ => None,
    }
}

/// `statement` with the PostgreSQL forms DataFusion cannot plan replaced (see the
/// module's doc); `login` is the connection's user. None: nothing to change.
pub fn rewrite(statement: &Statement, login: &str) -> Option<Statement> {
    let mut copy = statement.clone();
    let mut visitor = Rewriter {
        login,
        changed: false,
    };
    let _ = copy.visit(&mut visitor);
    if !visitor.changed {
        return None;
    }
    keep_placeholders(statement, &mut copy);
    Some(copy)
}

/// The placeholders (`$1`, ...) `statement` uses.
fn placeholders(statement: &Statement) -> std::collections::BTreeSet<String> {
    use datafusion::sql::sqlparser::ast::{Visit, Visitor};
    struct Found(std::collections::BTreeSet<String>);
    impl Visitor for Found {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
            if let Expr::Value(ValueWithSpan {
                value: Value::Placeholder(p),
                ..
            }) = e
            {
                self.0.insert(p.clone());
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut found = Found(Default::default());
    let _ = statement.visit(&mut found);
    found.0
}

/// Parameters are matched to placeholders by position: a rewrite that dropped one
/// (a lookup known to find nothing) keeps it in a condition that is always true.
fn keep_placeholders(original: &Statement, rewritten: &mut Statement) {
    let lost: Vec<String> = placeholders(original)
        .difference(&placeholders(rewritten))
        .cloned()
        .collect();
    if lost.is_empty() {
        return;
    }
    let Statement::Query(q) = rewritten else {
        return;
    };
    let SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    let keep = lost
        .iter()
        .map(|p| format!("{p} IS NULL"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let Some(keep) = parse_expr(&format!("({keep} OR TRUE)")) else {
        return;
    };
    select.selection = Some(match select.selection.take() {
        Some(w) => Expr::BinaryOp {
            left: Box::new(Expr::Nested(Box::new(w))),
            op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
            right: Box::new(keep),
        },
        None => keep,
    });
}

struct Rewriter<'a> {
    login: &'a str,
    changed: bool,
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .ok()?
        .parse_expr()
        .ok()
}

fn function_name(name: &ObjectName) -> String {
    name.0
        .last()
        .map(|p| p.to_string().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Whether `query` reads only `unnest(c)` of an array column `c` that is always NULL
/// here ([`ACL_ARRAYS`], `reloptions`): it has no rows. (psql's `\d+` asks
/// `ARRAY(SELECT 'toast.' || x FROM unnest(tc.reloptions) x)`, a correlated form
/// DataFusion cannot run.)
fn unnests_a_null_array(query: &Query) -> bool {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, TableFactor};
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let [from] = select.from.as_slice() else {
        return false;
    };
    let TableFactor::Table {
        name,
        args: Some(args),
        ..
    } = &from.relation
    else {
        return false;
    };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = args.args.as_slice() else {
        return false;
    };
    let column = match arg {
        Expr::Identifier(i) => i.value.to_ascii_lowercase(),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map(|i| i.value.to_ascii_lowercase())
            .unwrap_or_default(),
        _ => return false,
    };
    from.joins.is_empty()
        && function_name(name) == "unnest"
        && (ACL_ARRAYS.contains(&column.as_str()) || MISSING.iter().any(|(_, c)| *c == column))
}

/// `ARRAY(SELECT x FROM ... ORDER BY o)` as `(SELECT array_agg(x ORDER BY o) FROM ...)`.
fn array_of_subquery(query: &Query) -> Option<Expr> {
    let mut q = query.clone();
    let SetExpr::Select(select) = q.body.as_mut() else {
        return None;
    };
    let [item] = select.projection.as_slice() else {
        return None;
    };
    let expr = match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    let order = q
        .order_by
        .take()
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    let agg = parse_expr(&format!("array_agg({expr}{order})"))?;
    select.projection = vec![SelectItem::ExprWithAlias {
        expr: agg,
        alias: Ident::new("array"),
    }];
    Some(Expr::Subquery(Box::new(q)))
}

/// datafusion-postgres turns `'name'::regclass` into a lookup that finds an unqualified
/// name only in `current_schema()` (`report`); PostgreSQL looks in `pg_catalog` first
/// and then the search path (pgjdbc writes `'pg_class'::regclass`). Such a lookup
/// becomes `to_regclass(name)`, which does.
fn regclass_lookup(query: &Query) -> Option<Expr> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, Visit, Visitor};
    let text = query.to_string();
    if !text.starts_with("SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n")
        || !text.contains("parse_ident(")
    {
        return None;
    }
    struct Operand(Option<Expr>);
    impl Visitor for Operand {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
            if let Expr::Function(f) = e {
                if function_name(&f.name) == "parse_ident" {
                    if let FunctionArguments::List(l) = &f.args {
                        if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(a))) = l.args.first()
                        {
                            self.0 = Some(a.clone());
                        }
                    }
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut operand = Operand(None);
    let _ = query.visit(&mut operand);
    parse_expr(&format!("to_regclass({})", operand.0?))
}

/// Aggregate functions: a subquery that projects one of them returns one row.
const AGGREGATES: [&str; 12] = [
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "json_agg",
    "every",
    "first_value",
];

/// Catalog tables that are always empty here: citybooks has no sequences, column
/// defaults, triggers, rules, policies or inheritance.
const EMPTY: [&str; 7] = [
    "pg_sequence",
    "pg_attrdef",
    "pg_trigger",
    "pg_rewrite",
    "pg_policy",
    "pg_inherits",
    "pg_partitioned_table",
];

/// Whether a table named `name` is one of the catalog's (`pg_catalog.*`,
/// `information_schema.*`, or a bare `pg_*` name the search path finds there).
fn catalog_table(name: &ObjectName) -> bool {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.to_string().to_ascii_lowercase())
        .collect();
    match parts.as_slice() {
        [table] => table.starts_with("pg_"),
        [.., schema, _] => schema == "pg_catalog" || schema == "information_schema",
        [] => false,
    }
}

/// A scalar subquery over the catalog that looks one value up, `(SELECT e FROM pg_x
/// WHERE ...)`, as `(SELECT max(e) ...)`: DataFusion runs a correlated scalar subquery
/// only when it is aggregated. Keyed catalog lookups find one row at most, for which
/// `max` is the row's value; user queries over the warehouse's tables are left alone.
fn aggregated_lookup(query: &Query) -> Option<Expr> {
    let mut q = query.clone();
    let SetExpr::Select(select) = q.body.as_mut() else {
        return None;
    };
    // A lookup whose FROM list has a catalog table that is empty here (the first of
    // its joins, or one of its comma-separated items) finds nothing, whatever it asks.
    if select.from.iter().any(|t| {
        matches!(&t.relation, datafusion::sql::sqlparser::ast::TableFactor::Table { name, args: None, .. }
            if name.0.last().is_some_and(|l| EMPTY.contains(&l.to_string().to_ascii_lowercase().as_str())))
    }) {
        return parse_expr("NULL");
    }
    let only_catalog = !select.from.is_empty()
        && select.from.iter().all(|t| {
            std::iter::once(&t.relation)
                .chain(t.joins.iter().map(|j| &j.relation))
                .all(|r| {
                    matches!(r, datafusion::sql::sqlparser::ast::TableFactor::Table { name, .. } if catalog_table(name))
                })
        });
    let grouped = !matches!(
        &select.group_by,
        datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty()
    );
    if !only_catalog || grouped || select.distinct.is_some() {
        return None;
    }
    let [item] = select.projection.as_mut_slice() else {
        return None;
    };
    let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = item else {
        return None;
    };
    if let Expr::Function(f) = &*e {
        if AGGREGATES.contains(&function_name(&f.name).as_str()) {
            return None;
        }
    }
    *e = parse_expr(&format!("max({e})"))?;
    // Conditions on the outer row alone (`WHERE outer.flag AND inner.k = outer.k`)
    // stop DataFusion's decorrelation inside a CASE: test them outside the subquery.
    let names = relation_names(&select.from);
    let mut outer_only = Vec::new();
    if let Some(selection) = select.selection.take() {
        let mut kept = Vec::new();
        for c in conjuncts(selection) {
            if refers_only_outside(&c, &names) {
                outer_only.push(c);
            } else {
                kept.push(c);
            }
        }
        select.selection = kept.into_iter().reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
            right: Box::new(b),
        });
    }
    let lookup = Expr::Subquery(Box::new(q));
    if outer_only.is_empty() {
        return Some(lookup);
    }
    let condition = outer_only
        .iter()
        .map(|c| format!("({c})"))
        .collect::<Vec<_>>()
        .join(" AND ");
    parse_expr(&format!("CASE WHEN {condition} THEN {lookup} END"))
}

/// The conjuncts of `e` (`a AND b AND c` → `[a, b, c]`).
fn conjuncts(e: Expr) -> Vec<Expr> {
    match e {
        Expr::BinaryOp {
            left,
            op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
            right,
        } => {
            let mut v = conjuncts(*left);
            v.extend(conjuncts(*right));
            v
        }
        Expr::Nested(inner)
            if matches!(
                *inner,
                Expr::BinaryOp {
                    op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            conjuncts(*inner)
        }
        other => vec![other],
    }
}

/// The names a subquery's FROM gives its relations: aliases, full names and their
/// last parts, lower case.
fn relation_names(from: &[datafusion::sql::sqlparser::ast::TableWithJoins]) -> Vec<String> {
    use datafusion::sql::sqlparser::ast::TableFactor;
    let mut names = Vec::new();
    for t in from {
        for r in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
            if let TableFactor::Table { name, alias, .. } = r {
                names.push(name.to_string().to_ascii_lowercase());
                if let Some(last) = name.0.last() {
                    names.push(last.to_string().to_ascii_lowercase());
                }
                if let Some(a) = alias {
                    names.push(a.name.value.to_ascii_lowercase());
                }
            }
        }
    }
    names
}

/// Whether every column `e` names is qualified by a relation not in `names` (so it
/// is the outer query's), and it names at least one.
fn refers_only_outside(e: &Expr, names: &[String]) -> bool {
    use datafusion::sql::sqlparser::ast::{Visit, Visitor};
    struct Columns<'a> {
        names: &'a [String],
        outside: usize,
        inside: usize,
    }
    impl Visitor for Columns<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
            match e {
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                    let qualifier = parts[..parts.len() - 1]
                        .iter()
                        .map(|p| p.value.to_ascii_lowercase())
                        .collect::<Vec<_>>()
                        .join(".");
                    if self.names.contains(&qualifier) {
                        self.inside += 1;
                    } else {
                        self.outside += 1;
                    }
                }
                Expr::Identifier(_) | Expr::Subquery(_) | Expr::Exists { .. } => self.inside += 1,
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut v = Columns {
        names,
        outside: 0,
        inside: 0,
    };
    let _ = e.visit(&mut v);
    v.outside > 0 && v.inside == 0
}

/// `like` (a `LIKE` or `ILIKE`) with `pattern` and no `ESCAPE` clause.
fn without_escape(like: &Expr, pattern: Expr) -> Expr {
    let mut e = like.clone();
    if let Expr::Like {
        pattern: p,
        escape_char,
        ..
    }
    | Expr::ILike {
        pattern: p,
        escape_char,
        ..
    } = &mut e
    {
        **p = pattern;
        *escape_char = None;
    }
    e
}

/// `c` as a regular expression that matches it, quoted for an SQL string.
fn regex_quote(c: char) -> String {
    let quoted = if c.is_ascii_alphanumeric() {
        c.to_string()
    } else {
        format!("\\{c}")
    };
    quoted.replace('\'', "''")
}

/// A `LIKE` pattern with escape character `escape` rewritten to backslash escapes.
fn backslash_pattern(pattern: &str, escape: char) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            match chars.next() {
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push(c),
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

/// The text of a constant string expression: a literal, or literals joined by `||`
/// (SQLAlchemy sends `'pg/_' || '%'`).
fn string_value(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s),
            ..
        }) => Some(s.clone()),
        Expr::Nested(e) => string_value(e),
        Expr::BinaryOp {
            left,
            op: datafusion::sql::sqlparser::ast::BinaryOperator::StringConcat,
            right,
        } => Some(string_value(left)? + &string_value(right)?),
        _ => None,
    }
}

/// The name PostgreSQL gives the column of `current_user` and its kin, if `e` is one.
fn login_function(e: &Expr) -> Option<String> {
    let Expr::Function(f) = e else { return None };
    let name = function_name(&f.name);
    let bare = match &f.args {
        FunctionArguments::None => true,
        FunctionArguments::List(l) => l.args.is_empty() && name != "user",
        FunctionArguments::Subquery(_) => false,
    };
    (bare
        && matches!(
            name.as_str(),
            "session_user" | "current_user" | "user" | "current_role"
        ))
    .then_some(name)
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    /// `FROM unnest(a) x`: PostgreSQL names the column `x` too (psql's `\d+`).
    fn pre_visit_table_factor(
        &mut self,
        table: &mut datafusion::sql::sqlparser::ast::TableFactor,
    ) -> std::ops::ControlFlow<()> {
        // information_schema's constraint views, which DataFusion's information_schema
        // lacks: read from pg_catalog, where `OverlaySchema` keeps them (unlisted).
        if let datafusion::sql::sqlparser::ast::TableFactor::Table {
            name, args: None, ..
        } = table
        {
            let parts: Vec<String> = name
                .0
                .iter()
                .map(|p| p.to_string().trim_matches('"').to_ascii_lowercase())
                .collect();
            if let [.., schema, view] = parts.as_slice() {
                if schema == "information_schema" && CONSTRAINT_VIEWS.contains(&view.as_str()) {
                    *name = ObjectName::from(vec![
                        Ident::new("pg_catalog"),
                        Ident::new(format!("{HIDDEN_PREFIX}{view}")),
                    ]);
                    self.changed = true;
                }
            }
        }
        if let datafusion::sql::sqlparser::ast::TableFactor::Table {
            name,
            args: Some(_),
            alias: Some(alias),
            ..
        } = table
        {
            if function_name(name) == "unnest" && alias.columns.is_empty() {
                alias.columns = vec![
                    datafusion::sql::sqlparser::ast::TableAliasColumnDef::from_name(
                        alias.name.value.clone(),
                    ),
                ];
                self.changed = true;
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    /// `select current_user, session_user`: the login twice, so each needs the name
    /// PostgreSQL gives its column (DataFusion refuses two unnamed equal columns).
    fn pre_visit_query(&mut self, query: &mut Query) -> std::ops::ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            // datafusion-postgres' parser already made `current_user` `session_user`:
            // a second one takes the other name.
            let mut used: Vec<String> = Vec::new();
            for item in select.projection.iter_mut() {
                // `conrelid::regclass` shown as a result: the relation's name.
                if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item
                {
                    if let Expr::Cast {
                        expr: inner,
                        data_type,
                        ..
                    } = &*e
                    {
                        let literal = matches!(**inner, Expr::Value(_));
                        if !literal
                            && data_type
                                .to_string()
                                .to_ascii_lowercase()
                                .ends_with("regclass")
                        {
                            if let Some(named) = parse_expr(&format!("regclass_name({inner})")) {
                                *e = named;
                                self.changed = true;
                            }
                        }
                    }
                }
                if let SelectItem::UnnamedExpr(e) = item {
                    if let Some(mut name) = login_function(e) {
                        if used.contains(&name) {
                            name = ["current_user", "session_user", "user", "current_role"]
                                .iter()
                                .find(|n| !used.iter().any(|u| u == *n))
                                .map_or(name, |n| n.to_string());
                        }
                        used.push(name.clone());
                        *item = SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: Ident::new(name),
                        };
                        self.changed = true;
                    }
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> std::ops::ControlFlow<()> {
        let replacement = match &*expr {
            e if login_function(e).is_some() => Some(Expr::Value(
                Value::SingleQuotedString(self.login.to_string()).into(),
            )),
            Expr::Subquery(q) => regclass_lookup(q).or_else(|| aggregated_lookup(q)),
            Expr::CompoundFieldAccess { root, access_chain } => field_access(root, access_chain),
            // `$1::regclass`: the name is known only when the statement runs.
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } if matches!(
                **inner,
                Expr::Value(ValueWithSpan {
                    value: Value::Placeholder(_),
                    ..
                })
            ) && data_type.to_string().eq_ignore_ascii_case("regclass") =>
            {
                parse_expr(&format!("to_regclass({inner})"))
            }
            Expr::Function(f) => catalog_function(&function_name(&f.name), &f.args),
            Expr::Like {
                escape_char: Some(escape),
                pattern,
                ..
            }
            | Expr::ILike {
                escape_char: Some(escape),
                pattern,
                ..
            } => like_with_escape(expr, escape, pattern),
            _ => None,
        };
        if let Some(r) = replacement {
            *expr = r;
            self.changed = true;
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// `(composite).field` on an expression: DataFusion reads fields with get_field.
fn field_access(root: &Expr, access_chain: &[AccessExpr]) -> Option<Expr> {
    let mut sql = root.to_string();
    for a in access_chain {
        let AccessExpr::Dot(Expr::Identifier(i)) = a else {
            return None;
        };
        sql = format!("get_field({sql}, '{}')", i.value.to_ascii_lowercase());
    }
    parse_expr(&sql)
}

/// Catalog functions of PostgreSQL that clients call and DataFusion lacks, as
/// expressions it has.
fn catalog_function(name: &str, args: &FunctionArguments) -> Option<Expr> {
    match (name, args) {
        // pgjdbc's getPrimaryKeys expands pg_index.indkey into (x, n) rows.
        // Every key here has one column, so the expansion is one row; a
        // longer array (none exists) gives NULL rather than a wrong row.
        ("_pg_expandarray", FunctionArguments::List(l)) if l.args.len() == 1 => {
            let a = &l.args[0];
            parse_expr(&format!(
                "CASE WHEN array_length({a}, 1) = 1 THEN named_struct('x', {a}[1], 'n', 1) END"
            ))
        }
        // No table here is partitioned: a table's only ancestor is itself.
        ("pg_partition_ancestors", FunctionArguments::List(l)) if l.args.len() == 1 => {
            parse_expr(&format!("CAST({} AS INTEGER)", l.args[0]))
        }
        ("array", FunctionArguments::Subquery(q)) if unnests_a_null_array(q) => parse_expr("NULL"),
        ("array", FunctionArguments::Subquery(q)) => array_of_subquery(q),
        // No column here has a sequence: the answer is known without the
        // outer row, which keeps lookups that compare with it decorrelatable.
        ("pg_get_serial_sequence", _) => parse_expr("CAST(NULL AS TEXT)"),
        ("generate_subscripts", FunctionArguments::List(l)) if l.args.len() == 2 => {
            let (a, dim) = (&l.args[0], &l.args[1]);
            parse_expr(&format!(
                "unnest(range(1, CAST(array_length({a}, CAST({dim} AS BIGINT)) AS BIGINT) + 1))"
            ))
        }
        _ => None,
    }
}

/// `LIKE pattern ESCAPE 'c'` (c not a backslash) as a LIKE with DataFusion's backslash
/// escapes: the pattern rewritten now when it is a literal, by the engine when it is a
/// bound parameter.
fn like_with_escape(like: &Expr, escape: &ValueWithSpan, pattern: &Expr) -> Option<Expr> {
    let escape_char = match &escape.value {
        Value::SingleQuotedString(s) if s.chars().count() == 1 => s.chars().next(),
        _ => None,
    };
    match (escape_char, string_value(pattern)) {
        (Some('\\'), _) | (None, _) => None,
        (Some(c), None) => {
            let quoted = regex_quote(c);
            let translated = parse_expr(&format!(
                r"regexp_replace(replace({pattern}, '\', '\\'), '{quoted}(.)', '\${{1}}', 'g')"
            ))?;
            Some(without_escape(like, translated))
        }
        (Some(c), Some(p)) => {
            let rewritten = backslash_pattern(&p, c);
            Some(without_escape(
                like,
                Expr::Value(Value::SingleQuotedString(rewritten).into()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&statement, "analyst")
            .map(|s| s.to_string())
            .unwrap_or_else(|| statement.to_string())
    }

    #[test]
    fn postgres_forms_become_ones_datafusion_plans() {
        assert_eq!(
            rewritten("select session_user, current_user"),
            "SELECT 'analyst' AS session_user, 'analyst' AS current_user"
        );
        assert_eq!(
            rewritten("select 1 where 'pg_x' like 'pg/_%' escape '/'"),
            r"SELECT 1 WHERE 'pg_x' LIKE 'pg\_%'"
        );
        assert_eq!(
            rewritten("select 1 where 'a' not like 'pg/_' || '%' escape '/'"),
            r"SELECT 1 WHERE 'a' NOT LIKE 'pg\_%'"
        );
        assert_eq!(
            rewritten("select array(select relname from pg_class order by relname desc)"),
            "SELECT (SELECT array_agg(relname ORDER BY relname DESC) AS array FROM pg_class)"
        );
        assert_eq!(
            rewritten("select generate_subscripts(conkey, 1) from pg_constraint"),
            "SELECT unnest(range(1, CAST(array_length(conkey, CAST(1 AS BIGINT)) AS BIGINT) + 1)) FROM pg_constraint"
        );
        assert_eq!(
            rewritten("select (select typname from pg_catalog.pg_type t where t.oid = a.atttypid) from pg_attribute a"),
            "SELECT (SELECT max(typname) FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid) FROM pg_attribute a"
        );
        assert_eq!(
            rewritten("select (select t.typname from pg_type t where a.atthasdef and t.oid = a.atttypid) from pg_attribute a"),
            "SELECT CASE WHEN (a.atthasdef) THEN (SELECT max(t.typname) FROM pg_type t WHERE t.oid = a.atttypid) END FROM pg_attribute a"
        );
        assert_eq!(
            rewritten("select (select d.adbin from pg_attrdef d where d.adrelid = a.attrelid) from pg_attribute a"),
            "SELECT NULL FROM pg_attribute a"
        );
        assert_eq!(
            rewritten("select (select amount from report.transaction limit 1)"),
            "SELECT (SELECT amount FROM report.transaction LIMIT 1)"
        );
        assert_eq!(rewritten("select 1"), "SELECT 1");
        assert_eq!(
            rewritten("select 1 from pg_constraint c where confrelid in (select pg_catalog.pg_partition_ancestors('16455') union all values (16455))"),
            "SELECT 1 FROM pg_constraint c WHERE confrelid IN (SELECT CAST('16455' AS INTEGER) UNION ALL VALUES (16455))"
        );
        assert_eq!(
            rewritten("select array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ') from pg_class c"),
            "SELECT array_to_string(c.reloptions || NULL, ', ') FROM pg_class c"
        );
        assert_eq!(
            rewritten("select x from pg_catalog.unnest(tc.reloptions) x"),
            "SELECT x FROM pg_catalog.unnest(tc.reloptions) x (x)"
        );
        assert_eq!(
            rewritten("select (select s.seqstart from pg_sequence s where s.seqmin = $1) from pg_class where relname = $2"),
            "SELECT NULL FROM pg_class WHERE (relname = $2) AND ($1 IS NULL OR true)"
        );
        assert_eq!(
            rewritten("select 1 from pg_namespace where nspname not like $1 || '%' escape '/'"),
            r"SELECT 1 FROM pg_namespace WHERE nspname NOT LIKE regexp_replace(replace($1 || '%', '\', '\\'), '\/(.)', '\${1}', 'g')"
        );
        assert_eq!(
            rewritten("select 1 from pg_description where classoid = $1::regclass"),
            "SELECT 1 FROM pg_description WHERE classoid = to_regclass($1)"
        );
    }

    #[test]
    fn the_forms_the_catalog_rules_leave_are_rewritten_too() {
        let parser =
            datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser::new();
        let statement = parser
            .parse("select current_user, session_user")
            .unwrap()
            .remove(0);
        assert_eq!(
            rewrite(&statement, "analyst").unwrap().to_string(),
            "SELECT 'analyst' AS session_user, 'analyst' AS current_user"
        );
    }

    #[test]
    fn a_like_pattern_keeps_its_meaning_with_backslash_escapes() {
        assert_eq!(backslash_pattern("a/_b/%c//d%", '/'), r"a\_b\%c\/d%");
        assert_eq!(backslash_pattern(r"a\b", '/'), r"a\\b");
    }
}

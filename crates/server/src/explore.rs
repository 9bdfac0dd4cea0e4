//! The dashboard's explorer, OpenBook style: totals of one fiscal year (or every
//! year) for Revenue or Spending, related government units excluded unless asked
//! for, drilled down one of the ledger's hierarchies (program, type, fund). Each view is one
//! SQL statement over `report.*`, returned with the result so a user can run it
//! elsewhere.

use citybooks_model::ledger::{Column, Kind};
use citybooks_model::{ledger, Layout};

/// The drill-down hierarchies: the ledger's ([`citybooks_model::ledger`]), as the
/// dashboard lists them (`GET /api/hierarchies`).
pub fn hierarchies() -> &'static [Layout] {
    &ledger().layouts
}

/// The yes/no attribute the "related" switch filters on, and its hierarchy: the first
/// the ledger describes (San Francisco's `related_govt_units` of `report.program`:
/// entities related to but separate from the City are left out unless asked for).
fn related() -> Option<(&'static Layout, &'static Column)> {
    hierarchies().iter().find_map(|l| {
        let c = l
            .hierarchy
            .attributes
            .iter()
            .find(|c| c.kind == Kind::YesNo)?;
        Some((l, c))
    })
}

/// The (column, label) of each level of a hierarchy, the broadest first.
pub fn levels(layout: &Layout) -> impl Iterator<Item = (&'static str, &'static str)> {
    layout
        .hierarchy
        .levels
        .iter()
        .map(|l| (l.name.name, l.label))
}

/// Revenue or spending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Revenue,
    Spending,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Revenue => "Revenue",
            Side::Spending => "Spending",
        }
    }
}

/// What a view shows.
#[derive(Debug, Clone)]
pub struct View {
    /// None: every fiscal year together.
    pub year: Option<i32>,
    pub side: Side,
    pub include_related: bool,
    pub hierarchy: &'static Layout,
    /// The names chosen at each level so far (the last level is the leaf: it lists).
    pub path: Vec<String>,
}

/// A request the explorer cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("year {0:?} is not a fiscal year: use a year like 2025, or `all`")]
    Year(String),
    #[error("side {0:?}: use Revenue or Spending")]
    Side(String),
    #[error("related {0:?}: use include or exclude")]
    Related(String),
    #[error("h {0:?}: use {ids}", ids = ids())]
    Hierarchy(String),
    #[error("path has {chosen} levels; hierarchy {hierarchy} has {levels}, so at most {} can be chosen", .levels - 1)]
    Depth {
        chosen: usize,
        hierarchy: &'static str,
        levels: usize,
    },
    #[error("unknown parameter {0:?}: use year, side, related, h, path")]
    Unknown(String),
}

/// The hierarchies' `h=` ids, for messages: `organization, type or fund`.
fn ids() -> String {
    let mut ids: Vec<&str> = hierarchies().iter().map(|l| l.hierarchy.id).collect();
    let last = ids.pop().unwrap_or_default();
    if ids.is_empty() {
        last.to_string()
    } else {
        format!("{} or {last}", ids.join(", "))
    }
}

/// `text` as an SQL string literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl View {
    /// Reads a view from URL query pairs (`path` repeats, in order).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        default_year: Option<i32>,
    ) -> Result<View, ViewError> {
        View::read(pairs, default_year, 0)
    }

    /// Like [`View::from_pairs`], with a `path` that may name a member of every level:
    /// the rows of one bar of a view.
    pub fn from_pairs_to_leaf<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        default_year: Option<i32>,
    ) -> Result<View, ViewError> {
        View::read(pairs, default_year, 1)
    }

    /// A view whose path may be `deeper` levels longer than a listing allows.
    fn read<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        default_year: Option<i32>,
        deeper: usize,
    ) -> Result<View, ViewError> {
        let mut view = View {
            year: default_year,
            side: Side::Spending,
            include_related: false,
            hierarchy: &hierarchies()[0],
            path: Vec::new(),
        };
        for (key, value) in pairs {
            match key {
                "year" => {
                    view.year = match value {
                        "all" => None,
                        y => Some(
                            y.parse::<i32>()
                                .ok()
                                .filter(|y| (1900..=2200).contains(y))
                                .ok_or_else(|| ViewError::Year(y.to_string()))?,
                        ),
                    }
                }
                "side" => {
                    view.side = match value.to_ascii_lowercase().as_str() {
                        "revenue" => Side::Revenue,
                        "spending" => Side::Spending,
                        _ => return Err(ViewError::Side(value.to_string())),
                    }
                }
                "related" => {
                    view.include_related = match value {
                        "include" => true,
                        "exclude" => false,
                        _ => return Err(ViewError::Related(value.to_string())),
                    }
                }
                "h" => {
                    view.hierarchy = ledger()
                        .hierarchy(value)
                        .ok_or_else(|| ViewError::Hierarchy(value.to_string()))?
                }
                "path" => view.path.push(value.to_string()),
                // Parameters of the page itself may travel along.
                "view" | "mode" => {}
                other => return Err(ViewError::Unknown(other.to_string())),
            }
        }
        let levels = view.hierarchy.hierarchy.levels.len();
        if view.path.len() >= levels + deeper {
            return Err(ViewError::Depth {
                chosen: view.path.len(),
                hierarchy: view.hierarchy.hierarchy.id,
                levels,
            });
        }
        Ok(view)
    }

    /// The level listed: the column below the chosen path.
    pub fn column(&self) -> &'static str {
        self.hierarchy.hierarchy.levels[self.path.len()].name.name
    }

    fn filters(&self, with_year: bool) -> String {
        let layout = self.hierarchy;
        // Join order matters to DataFusion 55 here: without row estimates for a join's
        // result it builds the hash table on the left side, so the fact table is joined
        // to the larger dimensions first and to report.finance (two rows) last. The
        // other order made the 10M-row trend 8x slower (bench/dashboard_latency.py).
        let join = |l: &Layout| {
            let (alias, key) = (l.hierarchy.alias, l.key);
            format!(
                "join report.{} {alias} on t.{key} = {alias}.{key}\n",
                l.hierarchy.table
            )
        };
        let related = related();
        let mut sql = String::from("from report.transaction t\n");
        if related.is_none_or(|(r, _)| r.number != layout.number) {
            sql.push_str(&join(layout));
        }
        if let Some((r, _)) = related {
            sql.push_str(&join(r));
        }
        sql.push_str("join report.finance f on t.finance_id = f.finance_id\n");
        sql.push_str(&self.conditions(with_year));
        sql
    }

    /// The view's `where` clause (over `t`, `f` and every dimension's alias), ending in a
    /// newline.
    pub fn conditions(&self, with_year: bool) -> String {
        let h = self.hierarchy.hierarchy;
        let mut sql = format!(
            "where f.revenue_or_spending = {}",
            literal(self.side.as_str())
        );
        if with_year {
            if let Some(year) = self.year {
                sql.push_str(&format!("\n  and t.fiscal_year = {year}"));
            }
        }
        if let Some((r, column)) = related().filter(|_| !self.include_related) {
            sql.push_str(&format!(
                "\n  and {}.{} = 'No'",
                r.hierarchy.alias, column.name
            ));
        }
        for (level, name) in self.path.iter().enumerate() {
            sql.push_str(&format!(
                "\n  and {}.{} = {}",
                h.alias,
                h.levels[level].name.name,
                literal(name)
            ));
        }
        sql.push('\n');
        sql
    }

    /// The SQL of the view's table: one row per member of the listed level
    /// (`name`, `amount`, `transactions`), largest amount first.
    pub fn sql(&self) -> String {
        let column = format!("{}.{}", self.hierarchy.hierarchy.alias, self.column());
        format!(
            "select {column} as name, sum(t.amount) as amount, count(*) as transactions\n{}group by {column}\norder by amount desc, name",
            self.filters(true)
        )
    }

    /// The SQL of the view's trend: the selection's total per fiscal year.
    pub fn trend_sql(&self) -> String {
        format!(
            "select t.fiscal_year, sum(t.amount) as amount, count(*) as transactions\n{}group by t.fiscal_year\norder by t.fiscal_year",
            self.filters(false)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_read_from_the_url_and_quote_names() {
        let v = View::from_pairs(
            [
                ("year", "2024"),
                ("side", "Revenue"),
                ("h", "type"),
                ("path", "Taxes"),
                ("path", "O'Farrell's"),
            ],
            Some(2025),
        )
        .unwrap();
        assert_eq!(v.year, Some(2024));
        assert_eq!(v.column(), "sub_object");
        let sql = v.sql();
        assert!(
            sql.contains("join report.type ty on t.type_id = ty.type_id"),
            "{sql}"
        );
        assert!(sql.contains("ty.object = 'O''Farrell''s'"), "{sql}");
        assert!(sql.contains("p.related_govt_units = 'No'"), "{sql}");
        assert!(!v.trend_sql().contains("fiscal_year ="));
        let all = View::from_pairs([("year", "all"), ("related", "include")], Some(2025)).unwrap();
        assert!(!all.sql().contains("fiscal_year =") && !all.sql().contains("related_govt_units"));
        assert!(matches!(
            View::from_pairs([("path", "a"), ("path", "b"), ("path", "c")], None),
            Err(ViewError::Depth { chosen: 3, .. })
        ));
        assert!(matches!(
            View::from_pairs([("year", "1; drop")], None),
            Err(ViewError::Year(_))
        ));
        assert!(matches!(
            View::from_pairs([("colour", "red")], None),
            Err(ViewError::Unknown(_))
        ));
    }
}

//! The rows behind a number of the dashboard: the fact rows a bar, slice, table cell
//! or trend point was computed from, with their dimension names and lineage (load,
//! source file and line, `data_as_of`), paged and sorted, with their count and sum.
//!
//! A number is named by the filter it was computed with:
//! - an explorer view ([`View`]: `year`, `side`, `related`, `h`, `path`), where `path`
//!   may go one level deeper than the view to name a bar of it (the whole hierarchy);
//!   the trend's points are views of one `year`;
//! - an original chart and one of its categories: `chart=<id>&key=<category>` (the
//!   organization group, the fund type, or the histogram's bin number).

use citybooks_query::dashboard::CHARTS;

use crate::explore::{self, literal, View, ViewError};

/// Most rows one page carries.
pub const MAX_PAGE: u64 = 1000;

/// Which rows.
#[derive(Debug, Clone)]
pub enum Filter {
    View(View),
    Chart { id: &'static str, key: String },
}

/// A page of the rows behind a number (`as_of_load`: as they were after that load).
#[derive(Debug, Clone)]
pub struct Rows {
    pub filter: Filter,
    pub offset: u64,
    pub limit: u64,
    /// A column of [`columns`], descending when `descending`.
    pub sort: &'static str,
    pub descending: bool,
    /// The warehouse as it was right after this load (time travel), None: as it is.
    pub as_of_load: Option<i64>,
}

/// A request for rows the API cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    #[error(transparent)]
    View(#[from] ViewError),
    #[error("chart {0:?}: GET /api/charts lists the charts")]
    Chart(String),
    #[error("chart {chart}: give the category clicked as key=...")]
    NoKey { chart: String },
    #[error("{key}={value:?}: not a count (use a number like 0 or 100)")]
    Count { key: String, value: String },
    #[error("sort={0:?}: sort by one of the columns of the rows, `-` before it for descending")]
    Sort(String),
}

/// The columns of a row, in order: its id and year, revenue or spending, each
/// hierarchy's level names (broadest first) and attributes, the amount, the lineage.
pub fn columns() -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("transaction_id", "t.transaction_id".to_string()),
        ("fiscal_year", "t.fiscal_year".to_string()),
        ("revenue_or_spending", "f.revenue_or_spending".to_string()),
    ];
    for layout in explore::hierarchies() {
        let h = layout.hierarchy;
        let names = h.levels.iter().map(|l| l.name.name);
        for name in names.chain(h.attributes.iter().map(|c| c.name)) {
            out.push((name, format!("{}.{name}", h.alias)));
        }
    }
    for lineage in [
        "amount",
        "load_id",
        "source_file",
        "source_line",
        "data_as_of",
    ] {
        out.push((lineage, format!("t.{lineage}")));
    }
    out
}

impl Rows {
    /// Reads a request from URL query pairs: the number's filter, and `offset`, `limit`
    /// (at most [`MAX_PAGE`]), `sort` (`-amount` by default).
    pub fn from_pairs(
        pairs: &[(String, String)],
        default_year: Option<i32>,
    ) -> Result<Rows, RowsError> {
        let mut rows = Rows {
            filter: Filter::Chart {
                id: "",
                key: String::new(),
            },
            offset: 0,
            limit: 100,
            sort: "amount",
            descending: true,
            as_of_load: None,
        };
        let mut view_pairs = Vec::new();
        let (mut chart, mut key) = (None, None);
        for (k, v) in pairs {
            match k.as_str() {
                "offset" => rows.offset = count(k, v)?,
                "as_of_load" => rows.as_of_load = Some(count(k, v)? as i64),
                "limit" => rows.limit = count(k, v)?.min(MAX_PAGE),
                "sort" => {
                    let (descending, name) = match v.strip_prefix('-') {
                        Some(name) => (true, name),
                        None => (false, v.as_str()),
                    };
                    rows.sort = columns()
                        .into_iter()
                        .map(|(c, _)| c)
                        .find(|c| *c == name)
                        .ok_or_else(|| RowsError::Sort(v.clone()))?;
                    rows.descending = descending;
                }
                "chart" => chart = Some(v.clone()),
                "key" => key = Some(v.clone()),
                "format" => {}
                _ => view_pairs.push((k.as_str(), v.as_str())),
            }
        }
        rows.filter = match chart {
            Some(id) => {
                let chart = CHARTS
                    .iter()
                    .find(|c| c.id == id)
                    .ok_or(RowsError::Chart(id.clone()))?;
                let key = key.ok_or(RowsError::NoKey { chart: id })?;
                Filter::Chart { id: chart.id, key }
            }
            None => Filter::View(View::from_pairs_to_leaf(view_pairs, default_year)?),
        };
        Ok(rows)
    }

    /// The page's SQL.
    pub fn sql(&self) -> String {
        format!(
            "{}\nlimit {} offset {}",
            self.all_sql(),
            self.limit,
            self.offset
        )
    }

    /// The SQL of every row, in the page's order, for a download.
    pub fn all_sql(&self) -> String {
        let select: Vec<String> = columns()
            .into_iter()
            .map(|(name, expr)| format!("{expr} as {name}"))
            .collect();
        let order = columns()
            .into_iter()
            .find(|(c, _)| *c == self.sort)
            .map(|(_, expr)| expr)
            .unwrap_or_else(|| "t.amount".into());
        format!(
            "select {}\n{}order by {order}{}, t.transaction_id",
            select.join(", "),
            self.tables_and_filter(),
            if self.descending { " desc" } else { "" },
        )
    }

    /// The SQL of every row's count and sum (`rows`, `amount`).
    pub fn totals_sql(&self) -> String {
        format!(
            "select count(*) as rows, sum(t.amount) as amount\n{}",
            self.tables_and_filter()
        )
    }

    /// Every dimension joined, and the filter.
    fn tables_and_filter(&self) -> String {
        let mut sql = String::from("from report.transaction t\n");
        for layout in explore::hierarchies() {
            let (alias, key) = (layout.hierarchy.alias, layout.key);
            sql.push_str(&format!(
                "join report.{} {alias} on t.{key} = {alias}.{key}\n",
                layout.hierarchy.table
            ));
        }
        sql.push_str("join report.finance f on t.finance_id = f.finance_id\n");
        match &self.filter {
            Filter::View(view) => sql.push_str(&view.conditions(true)),
            Filter::Chart { id, key } => {
                let (join, conditions) = chart_filter(id, key);
                sql.push_str(&join);
                sql.push_str(&conditions);
            }
        }
        sql
    }
}

fn count(key: &str, value: &str) -> Result<u64, RowsError> {
    value.parse().map_err(|_| RowsError::Count {
        key: key.to_string(),
        value: value.to_string(),
    })
}

/// The rows of one category of an original chart, as the chart's SQL counts them
/// (`crates/query/src/dashboard.rs`, whose San Francisco columns and aliases these
/// repeat): a join the filter needs, and the filter.
fn chart_filter(id: &str, key: &str) -> (String, String) {
    const TAXES: &str = "f.revenue_or_spending = 'Revenue' and ty.character like '%Taxes'";
    match id {
        "transactions_by_organization_group" | "net_by_organization_group" => (
            String::new(),
            format!("where p.organization_group = {}\n", literal(key)),
        ),
        "top_fund_types_by_max_spending" => (
            String::new(),
            format!(
                "where f.revenue_or_spending = 'Spending' and fu.fund_type = {}\n",
                literal(key)
            ),
        ),
        // The histogram's bin: the chart's bounds and arithmetic.
        "tax_revenue_distribution" => {
            let bounds = format!(
                "cross join (select min(cast(t.amount as double)) as lo, max(cast(t.amount as double)) as hi\n  from report.transaction t\n  join report.type ty on t.type_id = ty.type_id\n  join report.finance f on t.finance_id = f.finance_id\n  where {TAXES}) b\n"
            );
            let bin = key.parse::<i64>().unwrap_or(-1);
            (
                bounds,
                format!("where {TAXES}\n  and least(cast(floor((cast(t.amount as double) - b.lo) / greatest((b.hi - b.lo) / 10, 0.01)) as bigint), 9) = {bin}\n"),
            )
        }
        _ => (String::new(), "where false\n".to_string()),
    }
}

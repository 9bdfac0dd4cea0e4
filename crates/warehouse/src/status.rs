//! What `citybooks status` shows of the warehouse, as SQL over `report.*` and
//! `meta.*`: every load, the rows of every table, the facts per fiscal year and the
//! quarantine per load. The binary prints each answer; any SQL client can run them.

use citybooks_model::Table;

/// One section of the status: its title and the SQL that answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusQuery {
    pub title: &'static str,
    pub sql: String,
}

/// Every load, with why it failed or was held.
pub const LOADS: &str = "select load_id, status, source_file, rows_read, rows_loaded, rows_quarantined, years_replaced, finished, coalesce(error, hold) as reason from meta.loads order by load_id";

/// The sections after the loads, in the order they are shown.
pub fn tables() -> Vec<StatusQuery> {
    let counts: Vec<String> = Table::all()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "select {i} as n, '{0}' as table_name, count(*) as row_count from {0}",
                t.qualified_name()
            )
        })
        .collect();
    vec![
        StatusQuery {
            title: "rows per table",
            sql: format!(
                "select table_name, row_count from ({}) order by n",
                counts.join(" union all ")
            ),
        },
        StatusQuery {
            title: "report.transaction per fiscal year",
            sql: "select fiscal_year, count(*) as row_count, sum(amount) as net_amount, max(load_id) as load_id from report.transaction group by fiscal_year order by fiscal_year".into(),
        },
        StatusQuery {
            title: "quarantine",
            sql: "select load_id, count(*) as rows_quarantined from meta.quarantine group by load_id order by load_id".into(),
        },
    ]
}

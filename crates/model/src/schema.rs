//! The one definition of every warehouse table: its schema (`report` or `meta`), its
//! name, its columns as Arrow types, and where it lives in the store.
//!
//! `report.*` has exactly the columns of the original ERD (DOMAIN.md); the fact table
//! adds lineage columns after them (`load_id`, `source_file`, `source_line`,
//! `data_as_of`).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::ledger::{ledger, Kind, Layout};
use crate::money::{PRECISION, SCALE};

/// The SQL schemas and what each holds (SQL clients show it as the schema's comment).
pub const SCHEMAS: &[(&str, &str)] = &[
    (
        "report",
        "The star schema of the original ERD: the ledger's facts (transaction) and its dimensions (program, type, fund, finance).",
    ),
    (
        "meta",
        "How the warehouse was built and where it went: every load (loads), every row a load set aside (quarantine), every publish to a PostgreSQL or Redshift (publishes).",
    ),
];

/// A table of the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// The dimension table of the ledger's hierarchy number `n` ([`Layout::number`]):
    /// `report.program`, `report.type` and `report.fund` for San Francisco.
    Dimension(u8),
    Finance,
    Transaction,
    Loads,
    Quarantine,
    Publishes,
}

/// The Arrow type of every amount: `numeric(20,2)`.
pub fn money_type() -> DataType {
    DataType::Decimal128(PRECISION, SCALE)
}

/// The Arrow type of load timestamps.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn col(name: &str, dt: DataType, nullable: bool) -> Field {
    Field::new(name, dt, nullable)
}

fn text(name: &str) -> Field {
    col(name, DataType::Utf8, false)
}

impl Table {
    /// Every table, dimensions before facts (the order a load commits them).
    pub fn all() -> Vec<Table> {
        let mut all: Vec<Table> = Table::dimensions().collect();
        all.extend([
            Table::Finance,
            Table::Transaction,
            Table::Quarantine,
            Table::Loads,
            Table::Publishes,
        ]);
        all
    }

    /// The dimension tables, one per hierarchy of the ledger, in its order.
    pub fn dimensions() -> impl Iterator<Item = Table> {
        ledger().layouts.iter().map(Table::dimension)
    }

    /// The dimension table of a hierarchy.
    pub fn dimension(layout: &Layout) -> Table {
        Table::Dimension(layout.number as u8)
    }

    /// The table called `schema.name`.
    pub fn named(qualified: &str) -> Option<Table> {
        Table::all()
            .into_iter()
            .find(|t| t.qualified_name() == qualified)
    }

    /// The hierarchy of a dimension table.
    pub fn layout(self) -> Option<&'static Layout> {
        match self {
            Table::Dimension(n) => ledger().layouts.get(n as usize),
            _ => None,
        }
    }

    /// The SQL schema: `report` or `meta`.
    pub fn schema_name(self) -> &'static str {
        match self {
            Table::Loads | Table::Quarantine | Table::Publishes => "meta",
            _ => "report",
        }
    }

    /// The table name inside its schema.
    pub fn name(self) -> &'static str {
        match self {
            Table::Dimension(_) => self.layout().map_or("", |l| l.hierarchy.table),
            Table::Finance => "finance",
            Table::Transaction => "transaction",
            Table::Loads => "loads",
            Table::Quarantine => "quarantine",
            Table::Publishes => "publishes",
        }
    }

    /// `schema.name`, as SQL names it.
    pub fn qualified_name(self) -> String {
        format!("{}.{}", self.schema_name(), self.name())
    }

    /// Where the Delta table lives, relative to the project's store root.
    pub fn store_path(self) -> String {
        format!("warehouse/{}/{}", self.schema_name(), self.name())
    }

    /// The primary key column of a report table.
    pub fn id_column(self) -> Option<&'static str> {
        match self {
            Table::Dimension(_) => self.layout().map(|l| l.key),
            Table::Finance => Some("finance_id"),
            Table::Transaction => Some("transaction_id"),
            Table::Loads => Some("load_id"),
            Table::Publishes => Some("publish_id"),
            Table::Quarantine => None,
        }
    }

    /// The columns of this table that refer to another table's key: `(column,
    /// referenced table)`; the referenced column is that table's [`Table::id_column`].
    pub fn foreign_keys(self) -> Vec<(&'static str, Table)> {
        match self {
            Table::Transaction => {
                let mut keys: Vec<(&'static str, Table)> = ledger()
                    .layouts
                    .iter()
                    .map(|l| (l.key, Table::dimension(l)))
                    .collect();
                keys.extend([("finance_id", Table::Finance), ("load_id", Table::Loads)]);
                keys
            }
            Table::Quarantine | Table::Publishes => vec![("load_id", Table::Loads)],
            _ => vec![],
        }
    }

    /// What the table holds, in a sentence (SQL clients show it as the table's comment).
    pub fn description(self) -> &'static str {
        match self {
            Table::Dimension(_) => self.layout().map_or("", |l| l.hierarchy.description),
            Table::Finance => "Revenue or spending: Spending = 1, Revenue = 2.",
            Table::Transaction => "The ledger's facts: one row per fiscal year, program, type, fund and revenue-or-spending, with a signed amount in exact dollars and cents, and the lineage of the row (load, source file and line).",
            Table::Loads => "Every load into the warehouse: its source file, outcome, row counts, fiscal years replaced and the Delta version of every table it committed.",
            Table::Quarantine => "Rows a load could not accept, with the file, line, field and reason, and the raw line as it was.",
            Table::Publishes => "Every publish of the star schema to a PostgreSQL or Redshift (citybooks publish): the target, the load it then held, the fiscal years and rows sent, and how it ended.",
        }
    }

    /// What a column holds (SQL clients show it as the column's comment).
    pub fn column_description(self, column: &str) -> Option<&'static str> {
        let d = match (self, column) {
            (Table::Transaction, "transaction_id") => "Key of the row; stable across loads of the same fiscal year content.",
            (Table::Transaction, "fiscal_year") => "Fiscal year: July 1 to June 30, named by the year it ends in (2025 = 2024-07-01 to 2025-06-30).",
            (Table::Transaction, "amount") => "Signed amount in dollars, exact to the cent (numeric(20,2)). Transfer adjustments are negative and must stay in totals.",
            (Table::Publishes, "load_id") => "The warehouse load the target held after the publish (empty if it failed).",
            (_, "load_id") => "The load that brought the row (meta.loads).",
            (Table::Transaction, "source_file") | (Table::Loads, "source_file") | (Table::Quarantine, "source_file") => "The raw file in the store the row came from.",
            (Table::Transaction, "source_line") => "Line of the row in its source file (1 is the header).",
            (_, "data_as_of") => "When the publisher last updated the row (the API export's data_as_of), if the file said.",
            (_, "finance_id") => "Key of report.finance.",
            (Table::Dimension(_), _) => {
                let layout = self.layout()?;
                return layout
                    .columns
                    .iter()
                    .find(|c| c.name == column)
                    .map(|c| c.description)
                    .or((column == layout.key).then_some(layout.key_description));
            }
            (Table::Transaction, _) => {
                return ledger()
                    .layouts
                    .iter()
                    .find(|l| l.key == column)
                    .map(|l| l.key_description)
            }
            (Table::Finance, "revenue_or_spending") => "Revenue or Spending.",
            (Table::Loads, "content_hash") => "SHA-256 of the raw file.",
            (Table::Loads, "dialect") => "Which export the file was: the portal's CSV or the API's.",
            (Table::Loads, "status") => "loaded; unchanged (same content as an earlier load); failed (see error); held (see hold); or discarded (a held load let go).",
            (Table::Loads, "rows_read") => "Data rows in the file.",
            (Table::Loads, "rows_loaded") => "Rows committed to report.transaction.",
            (Table::Loads, "rows_quarantined") => "Rows set aside in meta.quarantine.",
            (Table::Loads, "years_replaced") => "Fiscal years the load replaced whole.",
            (Table::Loads, "conformed") => "Conformance decisions of the load (rule 6: one code per name).",
            (Table::Loads, "table_versions") => "The Delta version of every table after the load (for time travel).",
            (Table::Loads, "started") => "When the load started.",
            (Table::Loads, "finished") => "When the load ended.",
            (Table::Loads, "error") => "Why nothing could be loaded (status failed).",
            (Table::Loads, "hold") => "Why the load was held and how to settle it (status held), or which held load was let go (status discarded).",
            (Table::Quarantine, "line") => "Line of the row in its source file (1 is the header).",
            (Table::Quarantine, "field") => "The field that was wrong, if one was.",
            (Table::Quarantine, "reason") => "Why the row was not accepted.",
            (Table::Quarantine, "raw") => "The line as it stood in the file.",
            (Table::Publishes, "publish_id") => "Number of the publish, from 1.",
            (Table::Publishes, "target") => "Where it went: postgres://user@host:port/db or redshift://... (never a password).",
            (Table::Publishes, "target_schema") => "The schema of the target the tables are in.",
            (Table::Publishes, "years") => "Fiscal years sent, comma-separated (all of them for a first or --full publish; empty when up to date).",
            (Table::Publishes, "rows") => "Fact rows sent.",
            (Table::Publishes, "seconds") => "How long the publish took.",
            (Table::Publishes, "status") => "published, up to date (nothing to send) or failed (see error); a failed publish leaves the target as it was.",
            (Table::Publishes, "error") => "Why the publish failed (status failed).",
            (Table::Publishes, "started") => "When the publish started.",
            (Table::Publishes, "finished") => "When the publish ended.",
            _ => return None,
        };
        Some(d)
    }

    /// Partition columns of the Delta table.
    pub fn partition_columns(self) -> &'static [&'static str] {
        match self {
            Table::Transaction => &["fiscal_year"],
            _ => &[],
        }
    }

    /// The names of the columns, in order.
    pub fn column_names(self) -> Vec<String> {
        self.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// The Arrow schema.
    pub fn schema(self) -> SchemaRef {
        let fields = match self {
            Table::Dimension(_) => match self.layout() {
                Some(layout) => dimension_fields(layout),
                None => return Arc::new(Schema::empty()),
            },
            Table::Finance => vec![
                col("finance_id", DataType::Int32, false),
                text("revenue_or_spending"),
            ],
            Table::Transaction => transaction_fields(),
            Table::Loads => vec![
                col("load_id", DataType::Int64, false),
                text("source_file"),
                text("content_hash"),
                text("dialect"),
                text("status"),
                col("rows_read", DataType::Int64, false),
                col("rows_loaded", DataType::Int64, false),
                col("rows_quarantined", DataType::Int64, false),
                text("years_replaced"),
                col("data_as_of", DataType::Utf8, true),
                text("conformed"),
                text("table_versions"),
                col("started", timestamp_type(), false),
                col("finished", timestamp_type(), false),
                col("error", DataType::Utf8, true),
                col("hold", DataType::Utf8, true),
            ],
            Table::Publishes => vec![
                col("publish_id", DataType::Int64, false),
                text("target"),
                text("target_schema"),
                col("load_id", DataType::Int64, true),
                text("years"),
                col("rows", DataType::Int64, false),
                col("seconds", DataType::Float64, false),
                text("status"),
                col("started", timestamp_type(), false),
                col("finished", timestamp_type(), false),
                col("error", DataType::Utf8, true),
            ],
            Table::Quarantine => vec![
                col("load_id", DataType::Int64, false),
                text("source_file"),
                col("line", DataType::Int64, false),
                col("field", DataType::Utf8, true),
                text("reason"),
                text("raw"),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

/// A dimension's key, then its member's columns (levels finest first, name then code,
/// then the attributes).
fn dimension_fields(layout: &Layout) -> Vec<Field> {
    let mut fields = vec![col(layout.key, DataType::Int32, false)];
    fields.extend(layout.columns.iter().map(|c| match c.kind {
        Kind::Integer => col(c.name, DataType::Int32, false),
        Kind::Text | Kind::Code | Kind::YesNo => text(c.name),
    }));
    fields
}

/// The fact's id and year, a key per dimension, the amount, then the lineage.
fn transaction_fields() -> Vec<Field> {
    let mut fields = vec![
        col("transaction_id", DataType::Int64, false),
        col("fiscal_year", DataType::Int32, false),
    ];
    fields.extend(
        ledger()
            .layouts
            .iter()
            .map(|l| col(l.key, DataType::Int32, false)),
    );
    fields.extend([
        col("finance_id", DataType::Int32, false),
        col("amount", money_type(), false),
        col("load_id", DataType::Int64, false),
        text("source_file"),
        col("source_line", DataType::Int64, false),
        col("data_as_of", DataType::Utf8, true),
    ]);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_tables_have_the_columns_of_the_original_erd() {
        let names = Table::column_names;
        assert_eq!(
            names(Table::named("report.program").unwrap()),
            [
                "program_id",
                "program",
                "program_code",
                "department",
                "department_code",
                "organization_group",
                "organization_group_code",
                "related_govt_units"
            ]
        );
        assert_eq!(names(Table::Finance), ["finance_id", "revenue_or_spending"]);
        assert_eq!(
            names(Table::Transaction)[..7],
            [
                "transaction_id",
                "fiscal_year",
                "program_id",
                "type_id",
                "fund_id",
                "finance_id",
                "amount"
            ]
        );
        assert_eq!(
            Table::Transaction.store_path(),
            "warehouse/report/transaction"
        );
        assert_eq!(Table::Quarantine.qualified_name(), "meta.quarantine");
    }

    #[test]
    fn every_column_is_described_and_every_key_refers_to_a_key() {
        for t in Table::all() {
            assert!(!t.description().is_empty());
            for f in t.schema().fields() {
                assert!(
                    t.column_description(f.name()).is_some(),
                    "{}.{} has no description",
                    t.qualified_name(),
                    f.name()
                );
            }
            for (column, target) in t.foreign_keys() {
                assert!(t.schema().field_with_name(column).is_ok());
                assert_eq!(target.id_column(), Some(column));
            }
        }
    }
}

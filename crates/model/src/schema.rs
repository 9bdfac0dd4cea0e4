//! The one definition of every warehouse table: its schema (`report` or `meta`), its
//! name, its columns as Arrow types, and where it lives in the store.
//!
//! `report.*` has exactly the columns of the original ERD (DOMAIN.md); the fact table
//! adds lineage columns after them (`load_id`, `source_file`, `source_line`,
//! `data_as_of`).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::money::{PRECISION, SCALE};

/// A table of the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Program,
    Type,
    Fund,
    Finance,
    Transaction,
    Loads,
    Quarantine,
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
    pub const ALL: [Table; 7] = [
        Table::Program,
        Table::Type,
        Table::Fund,
        Table::Finance,
        Table::Transaction,
        Table::Quarantine,
        Table::Loads,
    ];

    /// The SQL schema: `report` or `meta`.
    pub fn schema_name(self) -> &'static str {
        match self {
            Table::Loads | Table::Quarantine => "meta",
            _ => "report",
        }
    }

    /// The table name inside its schema.
    pub fn name(self) -> &'static str {
        match self {
            Table::Program => "program",
            Table::Type => "type",
            Table::Fund => "fund",
            Table::Finance => "finance",
            Table::Transaction => "transaction",
            Table::Loads => "loads",
            Table::Quarantine => "quarantine",
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
            Table::Program => Some("program_id"),
            Table::Type => Some("type_id"),
            Table::Fund => Some("fund_id"),
            Table::Finance => Some("finance_id"),
            Table::Transaction => Some("transaction_id"),
            Table::Loads => Some("load_id"),
            Table::Quarantine => None,
        }
    }

    /// Partition columns of the Delta table.
    pub fn partition_columns(self) -> &'static [&'static str] {
        match self {
            Table::Transaction => &["fiscal_year"],
            _ => &[],
        }
    }

    /// The Arrow schema.
    pub fn schema(self) -> SchemaRef {
        let fields = match self {
            Table::Program => vec![
                col("program_id", DataType::Int32, false),
                text("program"),
                text("program_code"),
                text("department"),
                text("department_code"),
                text("organization_group"),
                col("organization_group_code", DataType::Int32, false),
                text("related_govt_units"),
            ],
            Table::Type => vec![
                col("type_id", DataType::Int32, false),
                text("sub_object"),
                text("sub_object_code"),
                text("object"),
                text("object_code"),
                text("character"),
                text("character_code"),
            ],
            Table::Fund => vec![
                col("fund_id", DataType::Int32, false),
                text("fund_category"),
                text("fund_category_code"),
                text("fund"),
                text("fund_code"),
                text("fund_type"),
                text("fund_type_code"),
            ],
            Table::Finance => vec![
                col("finance_id", DataType::Int32, false),
                text("revenue_or_spending"),
            ],
            Table::Transaction => vec![
                col("transaction_id", DataType::Int64, false),
                col("fiscal_year", DataType::Int32, false),
                col("program_id", DataType::Int32, false),
                col("type_id", DataType::Int32, false),
                col("fund_id", DataType::Int32, false),
                col("finance_id", DataType::Int32, false),
                col("amount", money_type(), false),
                col("load_id", DataType::Int64, false),
                text("source_file"),
                col("source_line", DataType::Int64, false),
                col("data_as_of", DataType::Utf8, true),
            ],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_tables_have_the_columns_of_the_original_erd() {
        let names = |t: Table| -> Vec<String> {
            t.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        };
        assert_eq!(
            names(Table::Program),
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
}

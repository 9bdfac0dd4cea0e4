//! information_schema's views of keys (`table_constraints`, `key_column_usage`,
//! `referential_constraints`, `constraint_column_usage`), which DataFusion's
//! information_schema lacks, built from the model's keys.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use citybooks_model::schema::Table;
use citybooks_warehouse::CATALOG;
use datafusion::common::Result as DfResult;
use datafusion::datasource::MemTable;

/// information_schema's views of keys, which DataFusion's information_schema has not:
/// statements naming them read `pg_catalog.citybooks_information_schema_<view>`
/// instead (see [`rewrite`](fn@super::rewrite)), tables that are not listed anywhere.
pub(super) const CONSTRAINT_VIEWS: [&str; 4] = [
    "table_constraints",
    "key_column_usage",
    "referential_constraints",
    "constraint_column_usage",
];
pub(super) const HIDDEN_PREFIX: &str = "citybooks_information_schema_";

/// One of [`CONSTRAINT_VIEWS`], from the model's keys: every table's primary key, and
/// the foreign keys of [`Table::foreign_keys`], named as `pg_constraint` names them.
pub(super) fn constraint_view(view: &str) -> DfResult<Option<MemTable>> {
    let keys = model_keys();
    let (fields, columns) = match view {
        "table_constraints" => table_constraints(&keys),
        "key_column_usage" => key_column_usage(&keys),
        "referential_constraints" => referential_constraints(keys),
        "constraint_column_usage" => constraint_column_usage(&keys),
        _ => return Ok(None),
    };
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Some(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// A key of one column; `refers`: the referenced schema, table, column and key.
struct Key {
    name: String,
    schema: &'static str,
    table: &'static str,
    kind: &'static str,
    column: &'static str,
    refers: Option<(&'static str, &'static str, &'static str, String)>,
}

/// The fields and columns of a view.
type View = (Vec<Field>, Vec<ArrayRef>);

/// The keys of the model: every table's primary key, then its foreign keys.
fn model_keys() -> Vec<Key> {
    let mut keys = Vec::new();
    for t in Table::all() {
        if let Some(id) = t.id_column() {
            keys.push(Key {
                name: format!("{}_pkey", t.name()),
                schema: t.schema_name(),
                table: t.name(),
                kind: "PRIMARY KEY",
                column: id,
                refers: None,
            });
        }
        for (column, target) in t.foreign_keys() {
            let Some(target_id) = target.id_column() else {
                continue;
            };
            keys.push(Key {
                name: format!("{}_{column}_fkey", t.name()),
                schema: t.schema_name(),
                table: t.name(),
                kind: "FOREIGN KEY",
                column,
                refers: Some((
                    target.schema_name(),
                    target.name(),
                    target_id,
                    format!("{}_pkey", target.name()),
                )),
            });
        }
    }
    keys
}

/// A text field.
fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

/// An int4 field.
fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

/// A text column of `f` of every key.
fn all(keys: &[Key], f: &dyn Fn(&Key) -> Option<String>) -> ArrayRef {
    let values: Vec<Option<String>> = keys.iter().map(f).collect();
    Arc::new(StringArray::from(values))
}

fn catalog() -> Option<String> {
    Some(CATALOG.to_string())
}

/// The columns table_constraints and key_column_usage begin with.
const CONSTRAINT_AND_TABLE: [&str; 6] = [
    "constraint_catalog",
    "constraint_schema",
    "constraint_name",
    "table_catalog",
    "table_schema",
    "table_name",
];

/// The values of [`CONSTRAINT_AND_TABLE`].
fn constraint_and_table(keys: &[Key]) -> Vec<ArrayRef> {
    vec![
        all(keys, &|_| catalog()),
        all(keys, &|k| Some(k.schema.into())),
        all(keys, &|k| Some(k.name.clone())),
        all(keys, &|_| catalog()),
        all(keys, &|k| Some(k.schema.into())),
        all(keys, &|k| Some(k.table.into())),
    ]
}

fn table_constraints(keys: &[Key]) -> View {
    (
        [
            &CONSTRAINT_AND_TABLE[..],
            &[
                "constraint_type",
                "is_deferrable",
                "initially_deferred",
                "enforced",
                "nulls_distinct",
            ],
        ]
        .concat()
        .into_iter()
        .map(text)
        .collect(),
        [
            constraint_and_table(keys),
            vec![
                all(keys, &|k| Some(k.kind.into())),
                all(keys, &|_| Some("NO".into())),
                all(keys, &|_| Some("NO".into())),
                all(keys, &|_| Some("YES".into())),
                all(keys, &|k| (k.kind == "PRIMARY KEY").then(|| "YES".into())),
            ],
        ]
        .concat(),
    )
}

fn key_column_usage(keys: &[Key]) -> View {
    (
        CONSTRAINT_AND_TABLE
            .iter()
            .chain(&["column_name"])
            .map(|n| text(n))
            .chain([
                int("ordinal_position"),
                int("position_in_unique_constraint"),
            ])
            .collect(),
        [
            constraint_and_table(keys),
            vec![
                all(keys, &|k| Some(k.column.into())),
                Arc::new(Int32Array::from(vec![1; keys.len()])),
                Arc::new(Int32Array::from(
                    keys.iter()
                        .map(|k| k.refers.as_ref().map(|_| 1))
                        .collect::<Vec<_>>(),
                )),
            ],
        ]
        .concat(),
    )
}

/// The foreign keys among `keys`, with the primary keys they refer to.
fn referential_constraints(mut keys: Vec<Key>) -> View {
    keys.retain(|k| k.refers.is_some());
    let keys = &keys[..];
    (
        vec![
            text("constraint_catalog"),
            text("constraint_schema"),
            text("constraint_name"),
            text("unique_constraint_catalog"),
            text("unique_constraint_schema"),
            text("unique_constraint_name"),
            text("match_option"),
            text("update_rule"),
            text("delete_rule"),
        ],
        vec![
            all(keys, &|_| catalog()),
            all(keys, &|k| Some(k.schema.into())),
            all(keys, &|k| Some(k.name.clone())),
            all(keys, &|_| catalog()),
            all(keys, &|k| k.refers.as_ref().map(|r| r.0.into())),
            all(keys, &|k| k.refers.as_ref().map(|r| r.3.clone())),
            all(keys, &|_| Some("NONE".into())),
            all(keys, &|_| Some("NO ACTION".into())),
            all(keys, &|_| Some("NO ACTION".into())),
        ],
    )
}

/// The columns a constraint uses: its own for a primary key, the referenced one for
/// a foreign key (as PostgreSQL shows them).
fn constraint_column_usage(keys: &[Key]) -> View {
    (
        vec![
            text("table_catalog"),
            text("table_schema"),
            text("table_name"),
            text("column_name"),
            text("constraint_catalog"),
            text("constraint_schema"),
            text("constraint_name"),
        ],
        vec![
            all(keys, &|_| catalog()),
            all(keys, &|k| {
                Some(k.refers.as_ref().map_or(k.schema, |r| r.0).into())
            }),
            all(keys, &|k| {
                Some(k.refers.as_ref().map_or(k.table, |r| r.1).into())
            }),
            all(keys, &|k| {
                Some(k.refers.as_ref().map_or(k.column, |r| r.2).into())
            }),
            all(keys, &|_| catalog()),
            all(keys, &|k| Some(k.schema.into())),
            all(keys, &|k| Some(k.name.clone())),
        ],
    )
}

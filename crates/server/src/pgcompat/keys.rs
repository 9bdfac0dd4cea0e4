//! The star schema's primary and foreign keys as the catalog shows them: each
//! [`Key`] with the oids of its table and constraint, and [`Keys`], everything the
//! overlaid catalog tables and the catalog functions answer from.

use std::collections::BTreeMap;

use citybooks_model::schema::Table;

/// Oids of the keys' indexes and constraints: far above those the catalog hands out.
pub(super) const KEY_OID_BASE: i32 = 1_000_000_000;

/// One key of the star schema, with the oids the catalog gave its tables.
#[derive(Debug, Clone)]
pub(super) struct Key {
    pub(super) oid: i32,
    pub(super) name: String,
    pub(super) namespace: i32,
    pub(super) table: Table,
    pub(super) relid: i32,
    /// `p` or `f`.
    pub(super) kind: char,
    pub(super) column: &'static str,
    pub(super) attnum: i16,
    /// For a foreign key: the referenced table, its oid, column and attnum, and the
    /// oid of its primary key's index.
    pub(super) references: Option<(Table, i32, &'static str, i16, i32)>,
}

/// The keys and descriptions of the warehouse's tables, as oids and attnums of the
/// catalog as it is now.
#[derive(Debug, Default)]
pub(super) struct Keys {
    pub(super) keys: Vec<Key>,
    /// `(objoid, objsubid)` → description; `objsubid` 0 is the table itself.
    pub(super) descriptions: BTreeMap<(i32, i32), &'static str>,
    /// Table oid → the row of `pg_class` that describes it (for its index's row).
    pub(super) class_rows: BTreeMap<i32, (usize, usize)>,
    /// The oids `pg_class` gives `pg_catalog.pg_class` and `pg_catalog.pg_constraint`:
    /// the `classoid` of comments on tables and columns, and on constraints
    /// (`'pg_catalog.pg_class'::regclass` is what clients compare it with).
    pub(super) class_oid: i32,
    pub(super) constraint_oid: i32,
    /// The warehouse's tables by oid.
    pub(super) tables: BTreeMap<i32, Table>,
    /// `pg_type`: type name → oid (`to_regtype`).
    pub(super) types: BTreeMap<String, i32>,
    /// Relation names (`schema.name`, and the bare name where the search path finds
    /// it) → oid (`to_regclass`).
    pub(super) relations: BTreeMap<String, i32>,
    /// Relation oid → its name as `regclass` prints it (bare on the search path).
    pub(super) relation_names: BTreeMap<i32, String>,
}

impl Keys {
    pub(super) fn constraint_def(&self, oid: i32) -> Option<String> {
        let k = self.keys.iter().find(|k| k.oid == oid)?;
        Some(match &k.references {
            None => format!("PRIMARY KEY ({})", k.column),
            Some((t, _, column, _, _)) => format!(
                "FOREIGN KEY ({}) REFERENCES {}({})",
                k.column,
                t.qualified_name(),
                column
            ),
        })
    }

    pub(super) fn index_def(&self, oid: i32) -> Option<String> {
        let k = self
            .keys
            .iter()
            .find(|k| k.kind == 'p' && index_oid(k.oid) == oid)?;
        Some(format!(
            "CREATE UNIQUE INDEX {} ON {} USING btree ({})",
            k.name,
            k.table.qualified_name(),
            k.column
        ))
    }
}

/// The oid of the index behind primary key constraint `constraint`.
pub(super) fn index_oid(constraint: i32) -> i32 {
    constraint + 1
}

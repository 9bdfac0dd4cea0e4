//! What PostgreSQL clients and BI tools expect of a server, beyond what
//! datafusion-postgres answers: the version they parse, who is logged in, savepoints,
//! and a catalog that knows the star schema's keys and what every table and column
//! means.
//!
//! - [`install`] sets up `pg_catalog` on a session (datafusion-postgres' emulation),
//!   with [`KeyOverlay`] in front of it: `pg_constraint` holds the primary keys of
//!   every table and the foreign keys from `report.transaction` to its dimensions,
//!   `pg_index` and `pg_class` the primary keys' indexes, `pg_description` the
//!   descriptions of [`Table::description`] and [`Table::column_description`]. It
//!   also registers the functions client catalog queries call that the crate lacks
//!   (`version()`, `obj_description`, `col_description`, `pg_get_constraintdef`,
//!   `pg_get_indexdef`, `pg_get_serial_sequence`, `current_setting`, ...).
//! - [`rewrite`] turns the PostgreSQL forms DataFusion cannot plan into equivalent
//!   ones, per statement and connection: `current_user`/`session_user` become the
//!   login, `ARRAY(subquery)` an `array_agg` subquery, `LIKE ... ESCAPE 'c'` a pattern
//!   with backslash escapes, `generate_subscripts(a, 1)` the list of subscripts.
//! - [`UntypedLiterals`] reads a quoted literal compared with a boolean as PostgreSQL
//!   does (`indisprimary = 'f'`), where DataFusion would refuse `Boolean = Utf8`.
//! - Savepoints are accepted and do nothing ([`is_savepoint`]): every transaction
//!   here is read-only, so there is nothing to roll back to.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int16Array, Int16Builder, Int32Array, ListBuilder,
    RecordBatch, StringArray, StringBuilder,
};
use arrow::compute::{cast, concat_batches, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use citybooks_model::schema::Table;
use citybooks_warehouse::CATALOG;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArguments, Ident, ObjectName, Query, SelectItem, SetExpr, Statement, Value,
    ValueWithSpan, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::PgCatalogContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;

mod untyped_literals;
pub use untyped_literals::UntypedLiterals;

/// The PostgreSQL release whose catalog and protocol citybooks follows. Clients parse
/// it (SQLAlchemy reads `version()`, psql and pgjdbc the `server_version` parameter)
/// to choose which catalog queries to send.
pub const SERVER_VERSION: &str = "15.0";
/// [`SERVER_VERSION`] as `server_version_num` says it.
pub const SERVER_VERSION_NUM: &str = "150000";

/// What `select version()` answers: PostgreSQL's shape, then what really answers.
pub fn version() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} on x86_64-pc-linux-gnu, compiled by rustc (citybooks {}, Apache DataFusion {})",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    )
}

/// The btree access method (`pg_am.oid`).
const BTREE_OID: i32 = 403;
/// Oids of the keys' indexes and constraints: far above those the catalog hands out.
const KEY_OID_BASE: i32 = 1_000_000_000;

/// One key of the star schema, with the oids the catalog gave its tables.
#[derive(Debug, Clone)]
struct Key {
    oid: i32,
    name: String,
    namespace: i32,
    table: Table,
    relid: i32,
    /// `p` or `f`.
    kind: char,
    column: &'static str,
    attnum: i16,
    /// For a foreign key: the referenced table, its oid, column and attnum, and the
    /// oid of its primary key's index.
    references: Option<(Table, i32, &'static str, i16, i32)>,
}

/// The keys and descriptions of the warehouse's tables, as oids and attnums of the
/// catalog as it is now.
#[derive(Debug, Default)]
struct Keys {
    keys: Vec<Key>,
    /// `(objoid, objsubid)` → description; `objsubid` 0 is the table itself.
    descriptions: BTreeMap<(i32, i32), &'static str>,
    /// Table oid → the row of `pg_class` that describes it (for its index's row).
    class_rows: BTreeMap<i32, (usize, usize)>,
    /// The oids `pg_class` gives `pg_catalog.pg_class` and `pg_catalog.pg_constraint`:
    /// the `classoid` of comments on tables and columns, and on constraints
    /// (`'pg_catalog.pg_class'::regclass` is what clients compare it with).
    class_oid: i32,
    constraint_oid: i32,
    /// The warehouse's tables by oid.
    tables: BTreeMap<i32, Table>,
    /// `pg_type`: type name → oid (`to_regtype`).
    types: BTreeMap<String, i32>,
    /// Relation names (`schema.name`, and the bare name where the search path finds
    /// it) → oid (`to_regclass`).
    relations: BTreeMap<String, i32>,
    /// Relation oid → its name as `regclass` prints it (bare on the search path).
    relation_names: BTreeMap<i32, String>,
}

impl Keys {
    fn constraint_def(&self, oid: i32) -> Option<String> {
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

    fn index_def(&self, oid: i32) -> Option<String> {
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
fn index_oid(constraint: i32) -> i32 {
    constraint + 1
}

/// Sets up `pg_catalog` on `ctx` (whose default catalog is [`CATALOG`]) with the keys,
/// descriptions and functions of this module and `roles` in `pg_roles`, and returns
/// the session that also reads PostgreSQL's untyped literals ([`UntypedLiterals`],
/// ahead of type coercion).
pub async fn install(
    ctx: SessionContext,
    roles: impl PgCatalogContextProvider,
) -> DfResult<SessionContext> {
    let mut state = SessionStateBuilder::new_from_existing(ctx.state());
    if let Some(analyzer) = state.analyzer() {
        analyzer.rules.insert(0, Arc::new(UntypedLiterals));
    }
    let ctx = SessionContext::new_with_state(state.build());
    setup_pg_catalog(&ctx, CATALOG, roles).map_err(|e| *e)?;
    let catalog = ctx
        .catalog(CATALOG)
        .ok_or_else(|| DataFusionError::Plan(format!("no catalog {CATALOG}")))?;
    let inner = catalog
        .schema("pg_catalog")
        .ok_or_else(|| DataFusionError::Plan("no pg_catalog".into()))?;
    let overlay = Arc::new(KeyOverlay::new(inner)?);
    overlay.keys().await?;
    catalog.register_schema("pg_catalog", Arc::new(OverlaySchema(overlay.clone())))?;
    for udf in functions(overlay.state.clone()) {
        ctx.register_udf(udf);
    }
    Ok(ctx)
}

/// `pg_catalog` with the warehouse's keys and descriptions added; every other table
/// is datafusion-postgres' own.
pub struct KeyOverlay {
    inner: Arc<dyn SchemaProvider>,
    /// A private session over `inner`, to read the oids it hands out.
    lookup: SessionContext,
    state: Arc<RwLock<Keys>>,
}

/// The overlaid tables built from the keys and descriptions ([`KeyOverlay::keys`]).
const KEYED: [&str; 5] = [
    "pg_constraint",
    "pg_index",
    "pg_class",
    "pg_attribute",
    "pg_description",
];

impl std::fmt::Debug for KeyOverlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyOverlay").finish_non_exhaustive()
    }
}

const OVERLAID: [&str; 9] = [
    "pg_settings",
    "pg_attribute",
    "pg_constraint",
    "pg_index",
    "pg_class",
    "pg_description",
    "pg_namespace",
    "pg_database",
    "pg_proc",
];

impl KeyOverlay {
    fn new(inner: Arc<dyn SchemaProvider>) -> DfResult<KeyOverlay> {
        let lookup = SessionContext::new_with_config(
            SessionConfig::new().with_default_catalog_and_schema(CATALOG, "pg_catalog"),
        );
        lookup
            .catalog(CATALOG)
            .ok_or_else(|| DataFusionError::Plan(format!("no catalog {CATALOG}")))?
            .register_schema("pg_catalog", inner.clone())?;
        Ok(KeyOverlay {
            inner,
            lookup,
            state: Arc::default(),
        })
    }

    async fn rows(&self, sql: &str) -> DfResult<Vec<RecordBatch>> {
        self.lookup.sql(sql).await?.collect().await
    }

    /// Reads the oids of the warehouse's tables and attnums of their columns, and
    /// derives the keys and descriptions from them. Returns `pg_class` as read.
    async fn keys(&self) -> DfResult<Vec<RecordBatch>> {
        let classes = self.rows("select * from pg_catalog.pg_class").await?;
        let namespaces = self
            .rows("select oid, nspname from pg_catalog.pg_namespace")
            .await?;
        let attributes = self
            .rows("select attrelid, attname, attnum from pg_catalog.pg_attribute")
            .await?;
        let mut ns_of: BTreeMap<String, i32> = BTreeMap::new();
        for b in &namespaces {
            let oid = int32(b, "oid")?;
            let name = utf8(b, "nspname")?;
            for i in 0..b.num_rows() {
                ns_of.insert(name.value(i).to_string(), oid.value(i));
            }
        }
        // (namespace oid, relname) → (table oid, batch, row)
        let mut rel: BTreeMap<(i32, String), (i32, usize, usize)> = BTreeMap::new();
        let mut catalog_oids: BTreeMap<String, i32> = BTreeMap::new();
        let mut relations: BTreeMap<String, i32> = BTreeMap::new();
        let mut relation_names: BTreeMap<i32, String> = BTreeMap::new();
        let namespace_name: BTreeMap<i32, String> =
            ns_of.iter().map(|(n, o)| (*o, n.clone())).collect();
        let pg_catalog = ns_of.get("pg_catalog").copied();
        for (bi, b) in classes.iter().enumerate() {
            let (oid, name, ns, kind) = (
                int32(b, "oid")?,
                utf8(b, "relname")?,
                int32(b, "relnamespace")?,
                utf8(b, "relkind")?,
            );
            for i in 0..b.num_rows() {
                if Some(ns.value(i)) == pg_catalog {
                    catalog_oids.insert(name.value(i).to_string(), oid.value(i));
                }
                if let Some(schema) = namespace_name.get(&ns.value(i)) {
                    relations.insert(format!("{schema}.{}", name.value(i)), oid.value(i));
                    if ["pg_catalog", "report", "meta"].contains(&schema.as_str()) {
                        relations
                            .entry(name.value(i).to_string())
                            .or_insert(oid.value(i));
                        relation_names.insert(oid.value(i), name.value(i).to_string());
                    } else {
                        relation_names.insert(oid.value(i), format!("{schema}.{}", name.value(i)));
                    }
                }
                if kind.value(i) == "r" {
                    rel.insert(
                        (ns.value(i), name.value(i).to_string()),
                        (oid.value(i), bi, i),
                    );
                }
            }
        }
        let mut attnum: BTreeMap<(i32, String), i16> = BTreeMap::new();
        for b in &attributes {
            let (relid, name) = (int32(b, "attrelid")?, utf8(b, "attname")?);
            let num = b
                .column_by_name("attnum")
                .map(|c| cast(c, &DataType::Int16))
                .transpose()?
                .ok_or_else(|| DataFusionError::Plan("pg_attribute has no attnum".into()))?;
            let num = num.as_primitive::<arrow::datatypes::Int16Type>();
            for i in 0..b.num_rows() {
                attnum.insert((relid.value(i), name.value(i).to_string()), num.value(i));
            }
        }
        let mut schema_descriptions = BTreeMap::new();
        for (schema, description) in citybooks_model::schema::SCHEMAS {
            if let Some(oid) = ns_of.get(*schema) {
                schema_descriptions.insert((*oid, 0), *description);
            }
        }
        let find = |t: Table| -> Option<(i32, i32, usize, usize)> {
            let ns = *ns_of.get(t.schema_name())?;
            let (oid, bi, i) = *rel.get(&(ns, t.name().to_string()))?;
            Some((ns, oid, bi, i))
        };
        let mut types = BTreeMap::new();
        for b in &self
            .rows("select oid, typname from pg_catalog.pg_type")
            .await?
        {
            let oid = cast(b.column(0), &DataType::Int32)?;
            let oid = oid.as_primitive::<arrow::datatypes::Int32Type>();
            let name = cast(b.column(1), &DataType::Utf8)?;
            let name = name.as_string::<i32>();
            for i in 0..b.num_rows() {
                types.insert(name.value(i).to_string(), oid.value(i));
            }
        }
        let mut keys = Keys {
            types,
            relations,
            relation_names,
            class_oid: catalog_oids.get("pg_class").copied().unwrap_or(1259),
            constraint_oid: catalog_oids.get("pg_constraint").copied().unwrap_or(2606),
            ..Keys::default()
        };
        keys.descriptions.extend(schema_descriptions);
        let mut next = KEY_OID_BASE;
        let mut pk_constraint: std::collections::HashMap<Table, i32> = Default::default();
        for t in Table::all() {
            let Some((ns, relid, bi, i)) = find(t) else {
                continue;
            };
            keys.class_rows.insert(relid, (bi, i));
            keys.tables.insert(relid, t);
            keys.descriptions.insert((relid, 0), t.description());
            for f in t.schema().fields() {
                if let (Some(d), Some(n)) = (
                    t.column_description(f.name()),
                    attnum.get(&(relid, f.name().clone())),
                ) {
                    keys.descriptions.insert((relid, *n as i32), d);
                }
            }
            if let Some(column) = t.id_column() {
                let Some(n) = attnum.get(&(relid, column.to_string())) else {
                    continue;
                };
                keys.keys.push(Key {
                    oid: next,
                    name: format!("{}_pkey", t.name()),
                    namespace: ns,
                    table: t,
                    relid,
                    kind: 'p',
                    column,
                    attnum: *n,
                    references: None,
                });
                pk_constraint.insert(t, next);
                next += 2;
            }
        }
        for t in Table::all() {
            let Some((ns, relid, _, _)) = find(t) else {
                continue;
            };
            for (column, target) in t.foreign_keys() {
                let (Some(n), Some((_, target_relid, _, _)), Some(target_column), Some(pk)) = (
                    attnum.get(&(relid, column.to_string())),
                    find(target),
                    target.id_column(),
                    pk_constraint.get(&target),
                ) else {
                    continue;
                };
                let Some(target_n) = attnum.get(&(target_relid, target_column.to_string())) else {
                    continue;
                };
                keys.keys.push(Key {
                    oid: next,
                    name: format!("{}_{column}_fkey", t.name()),
                    namespace: ns,
                    table: t,
                    relid,
                    kind: 'f',
                    column,
                    attnum: *n,
                    references: Some((
                        target,
                        target_relid,
                        target_column,
                        *target_n,
                        index_oid(*pk),
                    )),
                });
                next += 2;
            }
        }
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(classes)
    }

    fn pg_constraint(&self, template: SchemaRef) -> DfResult<RecordBatch> {
        let keys = self.state.read().unwrap_or_else(|e| e.into_inner());
        let k = &keys.keys;
        let int2_list = |values: Vec<Option<i16>>| -> ArrayRef {
            let mut b = ListBuilder::new(Int16Builder::new());
            for v in values {
                match v {
                    Some(v) => {
                        b.values().append_value(v);
                        b.append(true);
                    }
                    None => b.append(false),
                }
            }
            Arc::new(b.finish())
        };
        let chars = |f: &dyn Fn(&Key) -> &'static str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(k.iter().map(f)))
        };
        let ints = |f: &dyn Fn(&Key) -> i32| -> ArrayRef {
            Arc::new(Int32Array::from_iter_values(k.iter().map(f)))
        };
        let bools = |v: bool| -> ArrayRef { Arc::new(BooleanArray::from(vec![v; k.len()])) };
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("oid", ints(&|k| k.oid)),
            (
                "conname",
                Arc::new(StringArray::from_iter_values(k.iter().map(|k| &k.name))),
            ),
            ("connamespace", ints(&|k| k.namespace)),
            ("contype", chars(&|k| if k.kind == 'p' { "p" } else { "f" })),
            ("condeferrable", bools(false)),
            ("condeferred", bools(false)),
            ("convalidated", bools(true)),
            ("conrelid", ints(&|k| k.relid)),
            ("contypid", ints(&|_| 0)),
            (
                "conindid",
                ints(&|k| match &k.references {
                    None => index_oid(k.oid),
                    Some((.., index)) => *index,
                }),
            ),
            ("conparentid", ints(&|_| 0)),
            (
                "confrelid",
                ints(&|k| k.references.as_ref().map_or(0, |r| r.1)),
            ),
            (
                "confupdtype",
                chars(&|k| if k.kind == 'f' { "a" } else { " " }),
            ),
            (
                "confdeltype",
                chars(&|k| if k.kind == 'f' { "a" } else { " " }),
            ),
            (
                "confmatchtype",
                chars(&|k| if k.kind == 'f' { "s" } else { " " }),
            ),
            ("conislocal", bools(true)),
            (
                "coninhcount",
                Arc::new(Int16Array::from(vec![0i16; k.len()])) as ArrayRef,
            ),
            ("connoinherit", bools(true)),
            (
                "conkey",
                int2_list(k.iter().map(|k| Some(k.attnum)).collect()),
            ),
            (
                "confkey",
                int2_list(
                    k.iter()
                        .map(|k| k.references.as_ref().map(|r| r.3))
                        .collect(),
                ),
            ),
        ];
        batch_like(&template, k.len(), columns)
    }

    fn pg_index(&self, template: SchemaRef) -> DfResult<RecordBatch> {
        let keys = self.state.read().unwrap_or_else(|e| e.into_inner());
        let pks: Vec<&Key> = keys.keys.iter().filter(|k| k.kind == 'p').collect();
        let n = pks.len();
        let mut indkey = ListBuilder::new(Int16Builder::new());
        let mut indoption = ListBuilder::new(Int16Builder::new());
        let mut indclass = ListBuilder::new(arrow::array::Int32Builder::new());
        let mut indcollation = ListBuilder::new(arrow::array::Int32Builder::new());
        for k in &pks {
            indkey.values().append_value(k.attnum);
            indkey.append(true);
            indoption.values().append_value(0);
            indoption.append(true);
            // int4_ops or int8_ops, the btree operator classes of the key's type.
            let opclass = match k
                .table
                .schema()
                .field_with_name(k.column)
                .map(|f| f.data_type().clone())
            {
                Ok(DataType::Int64) => 3124,
                _ => 1978,
            };
            indclass.values().append_value(opclass);
            indclass.append(true);
            indcollation.values().append_value(0);
            indcollation.append(true);
        }
        let bools = |v: bool| -> ArrayRef { Arc::new(BooleanArray::from(vec![v; n])) };
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "indexrelid",
                Arc::new(Int32Array::from_iter_values(
                    pks.iter().map(|k| index_oid(k.oid)),
                )),
            ),
            (
                "indrelid",
                Arc::new(Int32Array::from_iter_values(pks.iter().map(|k| k.relid))),
            ),
            ("indnatts", Arc::new(Int16Array::from(vec![1i16; n]))),
            ("indnkeyatts", Arc::new(Int16Array::from(vec![1i16; n]))),
            ("indisunique", bools(true)),
            ("indnullsnotdistinct", bools(false)),
            ("indisprimary", bools(true)),
            ("indisexclusion", bools(false)),
            ("indimmediate", bools(true)),
            ("indisclustered", bools(false)),
            ("indisvalid", bools(true)),
            ("indcheckxmin", bools(false)),
            ("indisready", bools(true)),
            ("indislive", bools(true)),
            ("indisreplident", bools(false)),
            ("indkey", Arc::new(indkey.finish())),
            ("indoption", Arc::new(indoption.finish())),
            ("indclass", Arc::new(indclass.finish())),
            ("indcollation", Arc::new(indcollation.finish())),
        ];
        batch_like(&template, n, columns)
    }

    /// `pg_class` as read, plus one row per primary key index (a copy of its table's
    /// row with the index's oid, name and kind).
    fn pg_class(&self, classes: Vec<RecordBatch>, schema: SchemaRef) -> DfResult<RecordBatch> {
        let all = in_schema(&schema, &classes)?;
        let keys = self.state.read().unwrap_or_else(|e| e.into_inner());
        let offsets: Vec<usize> = classes
            .iter()
            .scan(0, |acc, b| {
                let start = *acc;
                *acc += b.num_rows();
                Some(start)
            })
            .collect();
        let pks: Vec<&Key> = keys.keys.iter().filter(|k| k.kind == 'p').collect();
        let rows: Vec<u32> = pks
            .iter()
            .filter_map(|k| keys.class_rows.get(&k.relid))
            .map(|(bi, i)| (offsets[*bi] + i) as u32)
            .collect();
        if rows.len() != pks.len() {
            return Ok(all);
        }
        let picked = arrow::array::UInt32Array::from(rows);
        let mut columns: Vec<ArrayRef> = all
            .columns()
            .iter()
            .map(|c| take(c, &picked, None))
            .collect::<Result<_, _>>()?;
        let n = pks.len();
        let set = |columns: &mut Vec<ArrayRef>, name: &str, array: ArrayRef| -> DfResult<()> {
            let i = schema.index_of(name)?;
            columns[i] = cast(&array, schema.field(i).data_type())?;
            Ok(())
        };
        set(
            &mut columns,
            "oid",
            Arc::new(Int32Array::from_iter_values(
                pks.iter().map(|k| index_oid(k.oid)),
            )),
        )?;
        set(
            &mut columns,
            "relname",
            Arc::new(StringArray::from_iter_values(pks.iter().map(|k| &k.name))),
        )?;
        set(
            &mut columns,
            "relkind",
            Arc::new(StringArray::from(vec!["i"; n])),
        )?;
        set(
            &mut columns,
            "relam",
            Arc::new(Int32Array::from(vec![BTREE_OID; n])),
        )?;
        set(
            &mut columns,
            "relnatts",
            Arc::new(Int16Array::from(vec![1i16; n])),
        )?;
        set(
            &mut columns,
            "reltype",
            Arc::new(Int32Array::from(vec![0; n])),
        )?;
        set(
            &mut columns,
            "relhasindex",
            Arc::new(BooleanArray::from(vec![false; n])),
        )?;
        let indexes = RecordBatch::try_new(schema.clone(), columns)?;
        // psql describes a table's indexes only if relhasindex says it has some, and
        // its foreign keys (both ways) only if relhastriggers says so.
        let oids = int32(&all, "oid")?.clone();
        let keyed: std::collections::HashSet<i32> = keys
            .keys
            .iter()
            .flat_map(|k| [Some(k.relid), k.references.as_ref().map(|r| r.1)])
            .flatten()
            .collect();
        let mut columns = all.columns().to_vec();
        for name in ["relhasindex", "relhastriggers"] {
            let i = schema.index_of(name)?;
            let old = columns[i].as_boolean().clone();
            columns[i] = Arc::new(BooleanArray::from_iter((0..all.num_rows()).map(|r| {
                Some(keyed.contains(&oids.value(r)) || (old.is_valid(r) && old.value(r)))
            })));
        }
        let all = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(concat_batches(&schema, &[all, indexes])?)
    }

    /// `pg_attribute` with the type modifier of every `numeric(p,s)` column of the
    /// warehouse (`format_type` then says `numeric(20,2)`, as clients expect).
    fn pg_attribute(&self, rows: Vec<RecordBatch>, schema: SchemaRef) -> DfResult<RecordBatch> {
        let all = in_schema(&schema, &rows)?;
        let keys = self.state.read().unwrap_or_else(|e| e.into_inner());
        let (relid, name) = (int32(&all, "attrelid")?, utf8(&all, "attname")?);
        let typmod = cast(all.column(schema.index_of("atttypmod")?), &DataType::Int32)?;
        let typmod = typmod.as_primitive::<arrow::datatypes::Int32Type>();
        let fixed: Int32Array = (0..all.num_rows())
            .map(|r| {
                let decimal = keys.tables.get(&relid.value(r)).and_then(|t| {
                    match t.schema().field_with_name(name.value(r)).ok()?.data_type() {
                        DataType::Decimal128(p, s) => Some(((*p as i32) << 16 | *s as i32) + 4),
                        _ => None,
                    }
                });
                decimal.or(typmod.is_valid(r).then(|| typmod.value(r)))
            })
            .collect();
        let mut columns = all.columns().to_vec();
        let i = schema.index_of("atttypmod")?;
        columns[i] = cast(&(Arc::new(fixed) as ArrayRef), schema.field(i).data_type())?;
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    fn pg_description(&self, inner: Vec<RecordBatch>, schema: SchemaRef) -> DfResult<RecordBatch> {
        let keys = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<(i32, i32, i32, &str)> = keys
            .descriptions
            .iter()
            .map(|((oid, sub), d)| (*oid, keys.class_oid, *sub, *d))
            .collect();
        rows.extend(keys.keys.iter().map(|k| {
            (
                k.oid,
                keys.constraint_oid,
                0,
                if k.kind == 'p' {
                    "Primary key."
                } else {
                    "Foreign key to a dimension or load."
                },
            )
        }));
        let n = rows.len();
        let ours = batch_like(
            &schema,
            n,
            vec![
                ("objoid", int32s(rows.iter().map(|r| r.0))),
                ("classoid", int32s(rows.iter().map(|r| r.1))),
                ("objsubid", int32s(rows.iter().map(|r| r.2))),
                ("description", texts(rows.iter().map(|r| r.3))),
            ],
        )?;
        let inner = in_schema(&schema, &inner)?;
        Ok(concat_batches(&schema, &[inner, ours])?)
    }
}

/// A batch of `n` rows in `template`: the given columns (cast to the template's types)
/// and NULL in every other column.
fn batch_like(
    template: &SchemaRef,
    n: usize,
    columns: Vec<(&str, ArrayRef)>,
) -> DfResult<RecordBatch> {
    let given: BTreeMap<&str, ArrayRef> = columns.into_iter().collect();
    let mut arrays = Vec::new();
    for f in template.fields() {
        arrays.push(match given.get(f.name().as_str()) {
            // Text standing for an array (the crate's ACL columns): NULL.
            Some(a)
                if matches!(f.data_type(), DataType::List(_))
                    && !matches!(a.data_type(), DataType::List(_)) =>
            {
                arrow::array::new_null_array(f.data_type(), n)
            }
            Some(a) => cast(a, f.data_type())?,
            None => arrow::array::new_null_array(f.data_type(), n),
        });
    }
    Ok(RecordBatch::try_new(template.clone(), arrays)?)
}

/// A text column.
fn texts<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// An int4 column.
fn int32s(values: impl Iterator<Item = i32>) -> ArrayRef {
    Arc::new(Int32Array::from_iter_values(values))
}

/// `batches` as one batch in `schema`: columns by name, NULL where they have none.
fn in_schema(schema: &SchemaRef, batches: &[RecordBatch]) -> DfResult<RecordBatch> {
    let Some(first) = batches.first() else {
        return Ok(RecordBatch::new_empty(schema.clone()));
    };
    let inner = first.schema();
    let all = concat_batches(&inner, batches)?;
    let columns = inner
        .fields()
        .iter()
        .zip(all.columns())
        .map(|(f, c)| (f.name().as_str(), c.clone()))
        .collect();
    batch_like(schema, all.num_rows(), columns)
}

fn int32<'a>(b: &'a RecordBatch, name: &str) -> DfResult<&'a Int32Array> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Int32Array>())
        .ok_or_else(|| DataFusionError::Plan(format!("pg_catalog: {name} is not an int4 column")))
}

fn utf8<'a>(b: &'a RecordBatch, name: &str) -> DfResult<&'a StringArray> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| DataFusionError::Plan(format!("pg_catalog: {name} is not a text column")))
}

/// The columns PostgreSQL types `int2[]`/`int2vector` that clients unnest; the
/// crate's static tables hold them as text.
const INT2_ARRAYS: [&str; 4] = ["conkey", "confkey", "indkey", "indoption"];
/// The columns PostgreSQL types `oid[]`/`oidvector`.
const OID_ARRAYS: [&str; 2] = ["indclass", "indcollation"];
/// Access privileges (`aclitem[]`), which clients pass to `array_to_string`: NULL
/// here (the default privileges; read-only access is citybooks' own rule).
const ACL_ARRAYS: [&str; 5] = ["nspacl", "relacl", "datacl", "proacl", "attacl"];

/// Columns of PostgreSQL's catalog tables the crate's lack (`text[]`, always NULL
/// here): SQLAlchemy's index reflection reads `pg_class.reloptions`.
const MISSING: [(&str, &str); 2] = [("pg_class", "reloptions"), ("pg_class", "relacl")];

/// The schema of overlaid table `name`: `inner`'s, with [`INT2_ARRAYS`] and
/// [`OID_ARRAYS`] as lists and [`MISSING`] added, every column nullable.
fn overlay_schema(name: &str, inner: &SchemaRef) -> SchemaRef {
    let missing = MISSING
        .iter()
        .filter(|(t, c)| *t == name && inner.field_with_name(c).is_err())
        .map(|(_, c)| {
            Field::new(
                *c,
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            )
        });
    Arc::new(Schema::new(
        inner
            .fields()
            .iter()
            .map(|f| {
                let dt = if INT2_ARRAYS.contains(&f.name().as_str()) {
                    DataType::List(Arc::new(Field::new("item", DataType::Int16, true)))
                } else if OID_ARRAYS.contains(&f.name().as_str()) {
                    DataType::List(Arc::new(Field::new("item", DataType::Int32, true)))
                } else if ACL_ARRAYS.contains(&f.name().as_str()) {
                    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
                } else {
                    f.data_type().clone()
                };
                Field::new(f.name(), dt, true)
            })
            .chain(missing)
            .collect::<Vec<_>>(),
    ))
}

impl KeyOverlay {
    /// The rows of overlaid table `name`, in `schema` (see [`overlay_schema`]).
    async fn build(&self, name: &str, schema: SchemaRef) -> DfResult<RecordBatch> {
        // Only the tables that show keys, comments or type modifiers need the catalog's
        // oids read again.
        if KEYED.contains(&name) {
            let classes = self.keys().await?;
            return match name {
                "pg_constraint" => self.pg_constraint(schema),
                "pg_index" => self.pg_index(schema),
                "pg_class" => self.pg_class(classes, schema),
                "pg_attribute" => {
                    let rows = self.rows("select * from pg_catalog.pg_attribute").await?;
                    self.pg_attribute(rows, schema)
                }
                _ => {
                    let rows = self.rows("select * from pg_catalog.pg_description").await?;
                    self.pg_description(rows, schema)
                }
            };
        }
        match name {
            PG_USER => {
                let rows = self
                    .rows("select rolname as usename, oid as usesysid, rolcreatedb as usecreatedb, rolsuper as usesuper, rolreplication as userepl, rolbypassrls as usebypassrls, '********' as passwd, rolvaliduntil as valuntil, rolconfig as useconfig from pg_catalog.pg_roles")
                    .await?;
                in_schema(&schema, &rows)
            }
            "pg_settings" => batch_like(
                &schema,
                SETTINGS.len(),
                vec![
                    ("name", texts(SETTINGS.iter().map(|s| s.0))),
                    ("setting", texts(SETTINGS.iter().map(|s| s.1))),
                    ("short_desc", texts(SETTINGS.iter().map(|s| s.2))),
                ],
            ),
            // The crate's rows, with its text ACL columns as the arrays they are.
            other => {
                let rows = self
                    .rows(&format!("select * from pg_catalog.{other}"))
                    .await?;
                in_schema(&schema, &rows)
            }
        }
    }
}

/// information_schema's views of keys, which DataFusion's information_schema has not:
/// statements naming them read `pg_catalog.citybooks_information_schema_<view>`
/// instead (see [`rewrite`]), tables that are not listed anywhere.
const CONSTRAINT_VIEWS: [&str; 4] = [
    "table_constraints",
    "key_column_usage",
    "referential_constraints",
    "constraint_column_usage",
];
const HIDDEN_PREFIX: &str = "citybooks_information_schema_";

/// One of [`CONSTRAINT_VIEWS`], from the model's keys: every table's primary key, and
/// the foreign keys of [`Table::foreign_keys`], named as `pg_constraint` names them.
fn constraint_view(view: &str) -> DfResult<Option<MemTable>> {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let int = |name: &str| Field::new(name, DataType::Int32, true);
    // A key of one column; `refers`: the referenced schema, table, column and key.
    struct Key {
        name: String,
        schema: &'static str,
        table: &'static str,
        kind: &'static str,
        column: &'static str,
        refers: Option<(&'static str, &'static str, &'static str, String)>,
    }
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
    let column = |values: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    let all = |f: &dyn Fn(&Key) -> Option<String>| column(keys.iter().map(f).collect());
    let catalog = || Some(CATALOG.to_string());
    // The columns table_constraints and key_column_usage begin with.
    const CONSTRAINT_AND_TABLE: [&str; 6] = [
        "constraint_catalog",
        "constraint_schema",
        "constraint_name",
        "table_catalog",
        "table_schema",
        "table_name",
    ];
    let constraint_and_table = || {
        vec![
            all(&|_| catalog()),
            all(&|k| Some(k.schema.into())),
            all(&|k| Some(k.name.clone())),
            all(&|_| catalog()),
            all(&|k| Some(k.schema.into())),
            all(&|k| Some(k.table.into())),
        ]
    };
    let (fields, columns): (Vec<Field>, Vec<ArrayRef>) = match view {
        "table_constraints" => (
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
                constraint_and_table(),
                vec![
                    all(&|k| Some(k.kind.into())),
                    all(&|_| Some("NO".into())),
                    all(&|_| Some("NO".into())),
                    all(&|_| Some("YES".into())),
                    all(&|k| (k.kind == "PRIMARY KEY").then(|| "YES".into())),
                ],
            ]
            .concat(),
        ),
        "key_column_usage" => (
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
                constraint_and_table(),
                vec![
                    all(&|k| Some(k.column.into())),
                    Arc::new(Int32Array::from(vec![1; keys.len()])),
                    Arc::new(Int32Array::from(
                        keys.iter()
                            .map(|k| k.refers.as_ref().map(|_| 1))
                            .collect::<Vec<_>>(),
                    )),
                ],
            ]
            .concat(),
        ),
        "referential_constraints" => {
            keys.retain(|k| k.refers.is_some());
            let all = |f: &dyn Fn(&Key) -> Option<String>| column(keys.iter().map(f).collect());
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
                    all(&|_| catalog()),
                    all(&|k| Some(k.schema.into())),
                    all(&|k| Some(k.name.clone())),
                    all(&|_| catalog()),
                    all(&|k| k.refers.as_ref().map(|r| r.0.into())),
                    all(&|k| k.refers.as_ref().map(|r| r.3.clone())),
                    all(&|_| Some("NONE".into())),
                    all(&|_| Some("NO ACTION".into())),
                    all(&|_| Some("NO ACTION".into())),
                ],
            )
        }
        "constraint_column_usage" => {
            // The columns a constraint uses: its own for a primary key, the referenced
            // one for a foreign key (as PostgreSQL shows them).
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
                    all(&|_| catalog()),
                    all(&|k| Some(k.refers.as_ref().map_or(k.schema, |r| r.0).into())),
                    all(&|k| Some(k.refers.as_ref().map_or(k.table, |r| r.1).into())),
                    all(&|k| Some(k.refers.as_ref().map_or(k.column, |r| r.2).into())),
                    all(&|_| catalog()),
                    all(&|k| Some(k.schema.into())),
                    all(&|k| Some(k.name.clone())),
                ],
            )
        }
        _ => return Ok(None),
    };
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Some(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// `pg_user`, which the crate lacks: PostgreSQL's view of the login roles, here the
/// SQL users of `pg_roles` (the password never shown).
const PG_USER: &str = "pg_user";

fn pg_user_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("usename", DataType::Utf8, true),
        Field::new("usesysid", DataType::Int32, true),
        Field::new("usecreatedb", DataType::Boolean, true),
        Field::new("usesuper", DataType::Boolean, true),
        Field::new("userepl", DataType::Boolean, true),
        Field::new("usebypassrls", DataType::Boolean, true),
        Field::new("passwd", DataType::Utf8, true),
        Field::new(
            "valuntil",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(
            "useconfig",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
    ]))
}

/// The `pg_catalog` schema provider: [`KeyOverlay`]'s tables for [`OVERLAID`] and
/// `pg_user`, the crate's own for every other.
#[derive(Debug)]
struct OverlaySchema(Arc<KeyOverlay>);

#[async_trait]
impl SchemaProvider for OverlaySchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.0.inner.table_names();
        names.push(PG_USER.into());
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let lower = name.to_ascii_lowercase();
        if let Some(view) = lower.strip_prefix(HIDDEN_PREFIX) {
            return Ok(constraint_view(view)?.map(|t| Arc::new(t) as Arc<dyn TableProvider>));
        }
        if lower == PG_USER {
            return Ok(Some(Arc::new(KeyTable {
                overlay: self.0.clone(),
                schema: pg_user_schema(),
                name: lower,
            })));
        }
        if !OVERLAID.contains(&lower.as_str()) {
            return self.0.inner.table(name).await;
        }
        let Some(inner) = self.0.inner.table(name).await? else {
            return Ok(None);
        };
        // Built when scanned, not here: building reads the crate's pg_class, which
        // asks every schema (this one too) for its tables' schemas.
        Ok(Some(Arc::new(KeyTable {
            overlay: self.0.clone(),
            schema: overlay_schema(&lower, &inner.schema()),
            name: lower,
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(PG_USER) || self.0.inner.table_exist(name)
    }
}

/// An overlaid catalog table, built from the catalog as it is when a query scans it.
#[derive(Debug)]
struct KeyTable {
    overlay: Arc<KeyOverlay>,
    name: String,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for KeyTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::View
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::prelude::Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let batch = self.overlay.build(&self.name, self.schema.clone()).await?;
        MemTable::try_new(self.schema.clone(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// A function of the catalog that answers from the keys and descriptions, or a
/// constant.
struct CatalogFunction {
    name: &'static str,
    signature: Signature,
    /// What it returns (the answers are text, cast to this).
    returns: DataType,
    state: Arc<RwLock<Keys>>,
    answer: fn(&Keys, &[Option<ScalarValue>]) -> Option<String>,
}

impl std::fmt::Debug for CatalogFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for CatalogFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for CatalogFunction {}

impl std::hash::Hash for CatalogFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for CatalogFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let keys = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut out = StringBuilder::new();
        for row in 0..n.max(if arrays.is_empty() { 1 } else { 0 }) {
            let values: Vec<Option<ScalarValue>> = arrays
                .iter()
                .map(|a| {
                    let v = ScalarValue::try_from_array(a, row).ok()?;
                    (!v.is_null()).then_some(v)
                })
                .collect();
            out.append_option((self.answer)(&keys, &values));
        }
        let answers: ArrayRef = Arc::new(out.finish());
        Ok(ColumnarValue::Array(cast(&answers, &self.returns)?))
    }
}

/// An argument as an oid or number.
fn number(v: &Option<ScalarValue>) -> Option<i64> {
    let v = v.as_ref()?;
    let cast = v.cast_to(&DataType::Int64).ok()?;
    match cast {
        ScalarValue::Int64(n) => n,
        _ => None,
    }
}

fn text(v: &Option<ScalarValue>) -> Option<String> {
    let v = v.as_ref()?;
    match v.cast_to(&DataType::Utf8).ok()? {
        ScalarValue::Utf8(s) => s,
        _ => None,
    }
}

/// The settings `current_setting(name)` and `pg_settings` show: name, value, what it is.
const SETTINGS: [(&str, &str, &str); 15] = [
    (
        "server_version",
        SERVER_VERSION,
        "The PostgreSQL release citybooks answers as.",
    ),
    (
        "server_version_num",
        SERVER_VERSION_NUM,
        "server_version as a number.",
    ),
    ("server_encoding", "UTF8", "The encoding of all text."),
    ("client_encoding", "UTF8", "The client's encoding."),
    (
        "search_path",
        "report, meta",
        "Schemas searched for unqualified names.",
    ),
    (
        "default_transaction_read_only",
        "on",
        "Every transaction is read-only.",
    ),
    (
        "transaction_read_only",
        "on",
        "This transaction is read-only.",
    ),
    (
        "standard_conforming_strings",
        "on",
        "Backslashes in '...' strings are literal.",
    ),
    (
        "integer_datetimes",
        "on",
        "Date and time values are integers.",
    ),
    ("datestyle", "ISO, MDY", "How dates are written."),
    ("timezone", "UTC", "The time zone of timestamps."),
    ("max_identifier_length", "63", "The longest identifier."),
    (
        "max_index_keys",
        "32",
        "The most columns an index may have.",
    ),
    ("block_size", "8192", "The size of a disk block."),
    ("is_superuser", "off", "No login is a superuser."),
];

/// The value of a setting `current_setting(name)` may read.
fn setting(name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    SETTINGS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, v, _)| v.to_string())
}

/// A byte count as PostgreSQL's `pg_size_pretty` writes it.
fn size_pretty(bytes: i64) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes;
    let mut unit = 0;
    // PostgreSQL moves to the next unit from 10240 of the current one, rounding half up.
    while value.abs() >= 10 * 1024 && unit + 1 < units.len() {
        value = (value + value.signum() * 512) / 1024;
        unit += 1;
    }
    format!("{value} {}", units[unit])
}

/// `pg_*_is_visible(oid)`: every object citybooks shows is on the search path.
fn always_visible(name: &str) -> ScalarUDF {
    datafusion::logical_expr::create_udf(
        name,
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let n = match &args[0] {
                ColumnarValue::Array(a) => a.len(),
                ColumnarValue::Scalar(_) => 1,
            };
            Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![
                true;
                n
            ]))))
        }),
    )
}

fn functions(state: Arc<RwLock<Keys>>) -> Vec<ScalarUDF> {
    let f = |name: &'static str, answer: fn(&Keys, &[Option<ScalarValue>]) -> Option<String>| {
        ScalarUDF::from(CatalogFunction {
            name,
            signature: Signature::variadic_any(Volatility::Stable),
            returns: DataType::Utf8,
            state: state.clone(),
            answer,
        })
    };
    let nullary = |name: &'static str,
                   answer: fn(&Keys, &[Option<ScalarValue>]) -> Option<String>| {
        ScalarUDF::from(CatalogFunction {
            name,
            signature: Signature::nullary(Volatility::Stable),
            returns: DataType::Utf8,
            state: state.clone(),
            answer,
        })
    };
    vec![
        always_visible("pg_collation_is_visible"),
        always_visible("pg_type_is_visible"),
        always_visible("pg_function_is_visible"),
        nullary("version", |_, _| Some(version())),
        f("obj_description", |k, a| {
            let oid = number(a.first()?)? as i32;
            k.descriptions.get(&(oid, 0)).map(|d| d.to_string())
        }),
        f("col_description", |k, a| {
            let oid = number(a.first()?)? as i32;
            let sub = number(a.get(1)?)? as i32;
            k.descriptions.get(&(oid, sub)).map(|d| d.to_string())
        }),
        f("shobj_description", |_, _| None),
        f("pg_get_constraintdef", |k, a| {
            k.constraint_def(number(a.first()?)? as i32)
        }),
        f("pg_get_indexdef", |k, a| {
            let def = k.index_def(number(a.first()?)? as i32)?;
            // pg_get_indexdef(oid, column, pretty): column > 0 asks for that key column.
            match a.get(1).and_then(number) {
                Some(c) if c > 0 => def
                    .rsplit_once('(')
                    .map(|(_, cols)| cols.trim_end_matches(')').to_string()),
                _ => Some(def),
            }
        }),
        f("pg_get_serial_sequence", |_, _| None),
        // citybooks has no triggers, rules or views, and defines no functions of its
        // own: nothing to describe.
        f("pg_get_triggerdef", |_, _| None),
        f("pg_get_ruledef", |_, _| None),
        f("pg_get_viewdef", |_, _| None),
        f("pg_get_function_result", |_, _| None),
        f("pg_get_function_arguments", |_, _| None),
        f("pg_get_function_identity_arguments", |_, _| None),
        // Sizes live in the lake, not in relation files: unknown here.
        ScalarUDF::from(CatalogFunction {
            name: "pg_table_size",
            signature: Signature::variadic_any(Volatility::Stable),
            returns: DataType::Int64,
            state: state.clone(),
            answer: |_, _| None,
        }),
        f("pg_size_pretty", |_, a| {
            Some(size_pretty(number(a.first()?)?))
        }),
        f("current_setting", |_, a| setting(&text(a.first()?)?)),
        ScalarUDF::from(CatalogFunction {
            name: "to_regclass",
            signature: Signature::variadic_any(Volatility::Stable),
            returns: DataType::Int32,
            state: state.clone(),
            answer: |k, a| {
                let name = text(a.first()?)?.to_ascii_lowercase().replace('"', "");
                k.relations.get(&name).map(|oid| oid.to_string())
            },
        }),
        f("regclass_name", |k, a| {
            let oid = number(a.first()?)? as i32;
            Some(
                k.relation_names
                    .get(&oid)
                    .cloned()
                    .unwrap_or(oid.to_string()),
            )
        }),
        ScalarUDF::from(CatalogFunction {
            name: "to_regtype",
            signature: Signature::variadic_any(Volatility::Stable),
            returns: DataType::Int32,
            state: state.clone(),
            answer: |k, a| {
                let name = text(a.first()?)?.to_ascii_lowercase();
                let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
                k.types.get(name).map(|oid| oid.to_string())
            },
        }),
        f("json_build_object", |_, a| {
            let mut object = serde_json::Map::new();
            for pair in a.chunks(2) {
                let key = text(&pair[0])?;
                let value = match pair.get(1).and_then(|v| v.as_ref()) {
                    None => serde_json::Value::Null,
                    Some(ScalarValue::Boolean(Some(b))) => serde_json::Value::Bool(*b),
                    Some(v) if v.data_type().is_numeric() => v
                        .to_string()
                        .parse::<serde_json::Number>()
                        .map(serde_json::Value::Number)
                        .unwrap_or_else(|_| serde_json::Value::String(v.to_string())),
                    Some(v) => serde_json::Value::String(text(&Some(v.clone()))?),
                };
                object.insert(key, value);
            }
            Some(serde_json::Value::Object(object).to_string())
        }),
    ]
}

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
            // `(composite).field` on an expression: DataFusion reads fields with get_field.
            Expr::CompoundFieldAccess { root, access_chain }
                if access_chain.iter().all(|a| {
                    matches!(
                        a,
                        datafusion::sql::sqlparser::ast::AccessExpr::Dot(Expr::Identifier(_))
                    )
                }) =>
            {
                let mut sql = root.to_string();
                for a in access_chain {
                    if let datafusion::sql::sqlparser::ast::AccessExpr::Dot(Expr::Identifier(i)) = a
                    {
                        sql = format!("get_field({sql}, '{}')", i.value.to_ascii_lowercase());
                    }
                }
                parse_expr(&sql)
            }
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
            Expr::Function(f) => {
                let name = function_name(&f.name);
                match (name.as_str(), &f.args) {
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
                    ("array", FunctionArguments::Subquery(q)) if unnests_a_null_array(q) => {
                        parse_expr("NULL")
                    }
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
            Expr::Like {
                escape_char: Some(escape),
                pattern,
                ..
            }
            | Expr::ILike {
                escape_char: Some(escape),
                pattern,
                ..
            } => {
                let escape_char = match &escape.value {
                    Value::SingleQuotedString(s) if s.chars().count() == 1 => s.chars().next(),
                    _ => None,
                };
                match (escape_char, string_value(pattern)) {
                    (Some('\\'), _) | (None, _) => None,
                    // A pattern known only when the statement runs (a bound parameter):
                    // the same translation, done by the engine.
                    (Some(c), None) => {
                        let quoted = regex_quote(c);
                        let Some(translated) = parse_expr(&format!(
                            r"regexp_replace(replace({pattern}, '\', '\\'), '{quoted}(.)', '\${{1}}', 'g')"
                        )) else {
                            return std::ops::ControlFlow::Continue(());
                        };
                        Some(without_escape(expr, translated))
                    }
                    (Some(c), Some(p)) => {
                        let rewritten = backslash_pattern(&p, c);
                        Some(without_escape(
                            expr,
                            Expr::Value(Value::SingleQuotedString(rewritten).into()),
                        ))
                    }
                }
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *expr = r;
            self.changed = true;
        }
        std::ops::ControlFlow::Continue(())
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
    fn sizes_read_as_postgres_writes_them() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10239), "10239 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(1_500_000), "1465 kB");
        assert_eq!(size_pretty(20 * 1024 * 1024), "20 MB");
    }

    #[test]
    fn a_like_pattern_keeps_its_meaning_with_backslash_escapes() {
        assert_eq!(backslash_pattern("a/_b/%c//d%", '/'), r"a\_b\%c\/d%");
        assert_eq!(backslash_pattern(r"a\b", '/'), r"a\\b");
    }
}

//! The overlaid `pg_catalog`: [`KeyOverlay`] reads the crate's catalog and adds the
//! warehouse's keys and descriptions to `pg_constraint`, `pg_index`, `pg_class`,
//! `pg_attribute` and `pg_description`, types the columns PostgreSQL types as arrays
//! as such, and adds `pg_user`; [`OverlaySchema`] serves these tables (built when
//! scanned, as [`KeyTable`]s) in place of the crate's.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int16Array, Int16Builder, Int32Array, ListBuilder,
    RecordBatch, StringArray,
};
use arrow::compute::{cast, concat_batches, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use citybooks_model::schema::Table;
use citybooks_warehouse::CATALOG;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::constraint_views::{constraint_view, HIDDEN_PREFIX};
use super::functions::SETTINGS;
use super::keys::{index_oid, Key, Keys, KEY_OID_BASE};

/// The btree access method (`pg_am.oid`).
const BTREE_OID: i32 = 403;

/// `pg_catalog` with the warehouse's keys and descriptions added; every other table
/// is datafusion-postgres' own.
pub struct KeyOverlay {
    inner: Arc<dyn SchemaProvider>,
    /// A private session over `inner`, to read the oids it hands out.
    lookup: SessionContext,
    pub(super) state: Arc<RwLock<Keys>>,
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
    pub(super) fn new(inner: Arc<dyn SchemaProvider>) -> DfResult<KeyOverlay> {
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
    pub(super) async fn keys(&self) -> DfResult<Vec<RecordBatch>> {
        let classes = self.rows("select * from pg_catalog.pg_class").await?;
        let namespaces = self
            .rows("select oid, nspname from pg_catalog.pg_namespace")
            .await?;
        let attributes = self
            .rows("select attrelid, attname, attnum from pg_catalog.pg_attribute")
            .await?;
        let types = self
            .rows("select oid, typname from pg_catalog.pg_type")
            .await?;
        let ns_of = namespace_oids(&namespaces)?;
        let Relations {
            tables,
            catalog_oids,
            relations,
            relation_names,
        } = Relations::read(&classes, &ns_of)?;
        let attnum = attribute_numbers(&attributes)?;
        let mut keys = Keys {
            types: type_oids(&types)?,
            class_oid: catalog_oids.get("pg_class").copied().unwrap_or(1259),
            constraint_oid: catalog_oids.get("pg_constraint").copied().unwrap_or(2606),
            relations,
            relation_names,
            ..Keys::default()
        };
        for (schema, description) in citybooks_model::schema::SCHEMAS {
            if let Some(oid) = ns_of.get(*schema) {
                keys.descriptions.insert((*oid, 0), *description);
            }
        }
        let find = |t: Table| -> Option<(i32, i32, usize, usize)> {
            let ns = *ns_of.get(t.schema_name())?;
            let (oid, bi, i) = *tables.get(&(ns, t.name().to_string()))?;
            Some((ns, oid, bi, i))
        };
        let pk_constraint = keys.add_tables(&find, &attnum);
        keys.add_foreign_keys(&find, &attnum, &pk_constraint);
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(classes)
    }

    fn pg_constraint(&self, template: SchemaRef) -> DfResult<RecordBatch> {
        let keys = self.state.read().unwrap_or_else(|e| e.into_inner());
        let k = &keys.keys;
        let bools = |v: bool| -> ArrayRef { Arc::new(BooleanArray::from(vec![v; k.len()])) };
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("oid", int32s(k.iter().map(|k| k.oid))),
            ("conname", texts(k.iter().map(|k| k.name.as_str()))),
            ("connamespace", int32s(k.iter().map(|k| k.namespace))),
            (
                "contype",
                texts(k.iter().map(|k| if k.kind == 'p' { "p" } else { "f" })),
            ),
            ("condeferrable", bools(false)),
            ("condeferred", bools(false)),
            ("convalidated", bools(true)),
            ("conrelid", int32s(k.iter().map(|k| k.relid))),
            ("contypid", int32s(k.iter().map(|_| 0))),
            (
                "conindid",
                int32s(k.iter().map(|k| match &k.references {
                    None => index_oid(k.oid),
                    Some((.., index)) => *index,
                })),
            ),
            ("conparentid", int32s(k.iter().map(|_| 0))),
            (
                "confrelid",
                int32s(k.iter().map(|k| k.references.as_ref().map_or(0, |r| r.1))),
            ),
            (
                "confupdtype",
                texts(k.iter().map(|k| if k.kind == 'f' { "a" } else { " " })),
            ),
            (
                "confdeltype",
                texts(k.iter().map(|k| if k.kind == 'f' { "a" } else { " " })),
            ),
            (
                "confmatchtype",
                texts(k.iter().map(|k| if k.kind == 'f' { "s" } else { " " })),
            ),
            ("conislocal", bools(true)),
            (
                "coninhcount",
                Arc::new(Int16Array::from(vec![0i16; k.len()])) as ArrayRef,
            ),
            ("connoinherit", bools(true)),
            ("conkey", int2_list(k.iter().map(|k| Some(k.attnum)))),
            (
                "confkey",
                int2_list(k.iter().map(|k| k.references.as_ref().map(|r| r.3))),
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
        let Some(indexes) = primary_key_indexes(&keys, &classes, &all, &schema)? else {
            return Ok(all);
        };
        let all = flag_keyed_tables(&keys, &all, &schema)?;
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
pub(super) const ACL_ARRAYS: [&str; 5] = ["nspacl", "relacl", "datacl", "proacl", "attacl"];

/// Columns of PostgreSQL's catalog tables the crate's lack (`text[]`, always NULL
/// here): SQLAlchemy's index reflection reads `pg_class.reloptions`.
pub(super) const MISSING: [(&str, &str); 2] = [("pg_class", "reloptions"), ("pg_class", "relacl")];

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
pub(super) struct OverlaySchema(pub(super) Arc<KeyOverlay>);

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
/// Where a table of ours sits in the catalog: (namespace oid, table oid, batch, row of
/// `pg_class`).
type Found = (i32, i32, usize, usize);
/// (table oid, column name) → `attnum`.
type AttNums = BTreeMap<(i32, String), i16>;

impl Keys {
    /// Every table's row of `pg_class`, its descriptions and its primary key; returns
    /// the oid of each primary key constraint.
    fn add_tables(
        &mut self,
        find: &impl Fn(Table) -> Option<Found>,
        attnum: &AttNums,
    ) -> std::collections::HashMap<Table, i32> {
        let mut pk_constraint = std::collections::HashMap::new();
        for t in Table::all() {
            let Some((ns, relid, bi, i)) = find(t) else {
                continue;
            };
            self.class_rows.insert(relid, (bi, i));
            self.tables.insert(relid, t);
            self.descriptions.insert((relid, 0), t.description());
            for f in t.schema().fields() {
                if let (Some(d), Some(n)) = (
                    t.column_description(f.name()),
                    attnum.get(&(relid, f.name().clone())),
                ) {
                    self.descriptions.insert((relid, *n as i32), d);
                }
            }
            let Some(column) = t.id_column() else {
                continue;
            };
            let Some(n) = attnum.get(&(relid, column.to_string())) else {
                continue;
            };
            let oid = self.next_oid();
            self.keys.push(Key {
                oid,
                name: format!("{}_pkey", t.name()),
                namespace: ns,
                table: t,
                relid,
                kind: 'p',
                column,
                attnum: *n,
                references: None,
            });
            pk_constraint.insert(t, oid);
        }
        pk_constraint
    }

    /// The foreign keys of every table to the primary keys `add_tables` made.
    fn add_foreign_keys(
        &mut self,
        find: &impl Fn(Table) -> Option<Found>,
        attnum: &AttNums,
        pk_constraint: &std::collections::HashMap<Table, i32>,
    ) {
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
                let oid = self.next_oid();
                self.keys.push(Key {
                    oid,
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
            }
        }
    }

    /// The oid of the next key: two apart, the odd one is its index ([`index_oid`]).
    fn next_oid(&self) -> i32 {
        KEY_OID_BASE + 2 * self.keys.len() as i32
    }
}

/// Namespace name → oid.
fn namespace_oids(namespaces: &[RecordBatch]) -> DfResult<BTreeMap<String, i32>> {
    let mut ns_of = BTreeMap::new();
    for b in namespaces {
        let oid = int32(b, "oid")?;
        let name = utf8(b, "nspname")?;
        for i in 0..b.num_rows() {
            ns_of.insert(name.value(i).to_string(), oid.value(i));
        }
    }
    Ok(ns_of)
}

/// (table oid, column name) → `attnum`, from `pg_attribute`.
fn attribute_numbers(attributes: &[RecordBatch]) -> DfResult<AttNums> {
    let mut attnum = BTreeMap::new();
    for b in attributes {
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
    Ok(attnum)
}

/// Type name → oid, from `pg_type`.
fn type_oids(types: &[RecordBatch]) -> DfResult<BTreeMap<String, i32>> {
    let mut out = BTreeMap::new();
    for b in types {
        let oid = cast(b.column(0), &DataType::Int32)?;
        let oid = oid.as_primitive::<arrow::datatypes::Int32Type>();
        let name = cast(b.column(1), &DataType::Utf8)?;
        let name = name.as_string::<i32>();
        for i in 0..b.num_rows() {
            out.insert(name.value(i).to_string(), oid.value(i));
        }
    }
    Ok(out)
}

/// What `pg_class` says of the relations, by the names clients use.
struct Relations {
    /// (namespace oid, relname) → (table oid, batch, row), for ordinary tables.
    tables: BTreeMap<(i32, String), (i32, usize, usize)>,
    /// `pg_catalog`'s tables by name.
    catalog_oids: BTreeMap<String, i32>,
    /// `schema.name`, and the bare name for pg_catalog, report and meta → oid.
    relations: BTreeMap<String, i32>,
    /// oid → the name `::regclass` shows.
    relation_names: BTreeMap<i32, String>,
}

impl Relations {
    fn read(classes: &[RecordBatch], ns_of: &BTreeMap<String, i32>) -> DfResult<Relations> {
        let namespace_name: BTreeMap<i32, String> =
            ns_of.iter().map(|(n, o)| (*o, n.clone())).collect();
        let pg_catalog = ns_of.get("pg_catalog").copied();
        let mut r = Relations {
            tables: BTreeMap::new(),
            catalog_oids: BTreeMap::new(),
            relations: BTreeMap::new(),
            relation_names: BTreeMap::new(),
        };
        for (bi, b) in classes.iter().enumerate() {
            let (oid, name, ns, kind) = (
                int32(b, "oid")?,
                utf8(b, "relname")?,
                int32(b, "relnamespace")?,
                utf8(b, "relkind")?,
            );
            for i in 0..b.num_rows() {
                let (oid, name, ns) = (oid.value(i), name.value(i), ns.value(i));
                if Some(ns) == pg_catalog {
                    r.catalog_oids.insert(name.to_string(), oid);
                }
                if let Some(schema) = namespace_name.get(&ns) {
                    r.relations.insert(format!("{schema}.{name}"), oid);
                    if ["pg_catalog", "report", "meta"].contains(&schema.as_str()) {
                        r.relations.entry(name.to_string()).or_insert(oid);
                        r.relation_names.insert(oid, name.to_string());
                    } else {
                        r.relation_names.insert(oid, format!("{schema}.{name}"));
                    }
                }
                if kind.value(i) == "r" {
                    r.tables.insert((ns, name.to_string()), (oid, bi, i));
                }
            }
        }
        Ok(r)
    }
}

/// An `int2[]` column of one-element arrays (None: a null array).
fn int2_list(values: impl Iterator<Item = Option<i16>>) -> ArrayRef {
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
}

/// One `pg_class` row per primary key's index (relkind `i`), copied from its table's
/// row with the index's oid and name. None when a key's table has no row in `classes`.
fn primary_key_indexes(
    keys: &Keys,
    classes: &[RecordBatch],
    all: &RecordBatch,
    schema: &SchemaRef,
) -> DfResult<Option<RecordBatch>> {
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
        return Ok(None);
    }
    let picked = arrow::array::UInt32Array::from(rows);
    let mut columns: Vec<ArrayRef> = all
        .columns()
        .iter()
        .map(|c| take(c, &picked, None))
        .collect::<Result<_, _>>()?;
    let n = pks.len();
    let index_columns: [(&str, ArrayRef); 7] = [
        (
            "oid",
            Arc::new(Int32Array::from_iter_values(
                pks.iter().map(|k| index_oid(k.oid)),
            )),
        ),
        (
            "relname",
            Arc::new(StringArray::from_iter_values(pks.iter().map(|k| &k.name))),
        ),
        ("relkind", Arc::new(StringArray::from(vec!["i"; n]))),
        ("relam", Arc::new(Int32Array::from(vec![BTREE_OID; n]))),
        ("relnatts", Arc::new(Int16Array::from(vec![1i16; n]))),
        ("reltype", Arc::new(Int32Array::from(vec![0; n]))),
        ("relhasindex", Arc::new(BooleanArray::from(vec![false; n]))),
    ];
    for (name, array) in index_columns {
        let i = schema.index_of(name)?;
        columns[i] = cast(&array, schema.field(i).data_type())?;
    }
    Ok(Some(RecordBatch::try_new(schema.clone(), columns)?))
}

/// `all` with relhasindex and relhastriggers set on every table that has a key or is
/// referenced by one: psql describes a table's indexes only if relhasindex says it has
/// some, and its foreign keys (both ways) only if relhastriggers says so.
fn flag_keyed_tables(keys: &Keys, all: &RecordBatch, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let oids = int32(all, "oid")?.clone();
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
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

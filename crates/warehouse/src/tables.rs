//! The Delta tables of a project, and the DataFusion session that reads them.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use citybooks_model::Table;
use citybooks_store::config::LoadConfig;
use citybooks_store::{Lease, Store};
use datafusion::catalog::{MemTable, MemorySchemaProvider, SchemaProvider, Session, TableProvider};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{provider_as_source, ViewTable};
use datafusion::logical_expr::{
    col, lit, Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};

use crate::error::{Result, WarehouseError};
use crate::held::{self, NotHeld};
use crate::loads::LoadRecord;
use crate::publishes::PublishRecord;

/// Rows per Parquet row group. The writer buffers one open row group per fiscal-year
/// partition, so this (times the years in a file) bounds a load's memory.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Parquet settings of every table: Snappy (fast to write and read) and row groups
/// small enough that a 10M-row load stays well under 1 GiB (measured at 10M rows:
/// 128 Ki rows 528 MiB peak; 32 Ki rows 391 MiB, but scans prefer larger row groups).
pub(crate) fn writer_properties() -> deltalake::parquet::file::properties::WriterProperties {
    deltalake::parquet::file::properties::WriterProperties::builder()
        .set_compression(deltalake::parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// How a session reads the `report` tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableScans {
    /// delta-rs' own table providers (the embedded engine).
    #[default]
    Delta,
    /// Plain Parquet tables (`ListingTable`) over exactly the files the Delta snapshot
    /// says are current: what a Ballista scheduler can ship to its executors (a Delta
    /// provider cannot be serialised, delta-io/delta-rs#4171). delta-rs leaves the
    /// partition column out of the files, so the fact table is one listing per fiscal
    /// year with the year as a literal column, unioned in a view. Files a fiscal-year
    /// replacement retired are never listed: the tables name files, not folders.
    Files,
    /// delta-rs' providers, with the columns queries read most held in memory, up to
    /// `max_bytes` in all (a long-running server's embedded engine, `[sql]
    /// table_memory_mib`): see [`crate::held`].
    Memory { max_bytes: usize },
}

/// The catalog every session names its schemas in: the database name SQL clients
/// see (`current_database()`, `psql -d citybooks`, `information_schema.*.table_catalog`).
pub const CATALOG: &str = "citybooks";

/// The fact table under [`TableScans::Files`]: the union of its per-year listings. A
/// view to the optimiser, which inlines its plan; a table to catalogs (psql's `\dt`,
/// `information_schema.tables`), as `report.transaction` is with the embedded engine.
#[derive(Debug)]
struct YearUnion(ViewTable);

#[async_trait::async_trait]
impl TableProvider for YearUnion {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        self.0.get_logical_plan()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }
}

/// A project's warehouse: its store and the tables in it.
#[derive(Debug, Clone)]
pub struct Warehouse {
    store: Store,
    pub(crate) config: LoadConfig,
    /// Replace the fiscal years of a file even when that shrinks one past
    /// `[load] max_shrink_percent` (`citybooks load --replace-years`, a release).
    pub(crate) replace_years: bool,
    /// The tables found in today's shape (no migration needed): checked once per
    /// process, not once per load.
    current_shape: Arc<std::sync::Mutex<std::collections::HashSet<Table>>>,
}

/// How a load's data goes into a table.
pub(crate) enum WriteMode {
    /// Add rows (dimensions, quarantine, loads).
    Append,
    /// Replace exactly the rows matching the predicate (facts of some fiscal years).
    Replace(Expr),
    /// Replace every row, and the table's schema with the input's: the migration of a
    /// table written by an older citybooks (earlier versions stay for time travel).
    Rewrite,
}

/// What a load writes to a table.
pub(crate) enum Input {
    Batches(Vec<RecordBatch>),
    Plan(LogicalPlan),
}

impl Warehouse {
    /// The warehouse in `store`.
    pub fn new(store: Store, config: LoadConfig) -> Self {
        // S3 (and S3-compatible) stores need Delta's S3 handlers; registering is idempotent.
        crate::delta_s3::register();
        Warehouse {
            store,
            config,
            replace_years: false,
            current_shape: Arc::default(),
        }
    }

    /// The store the warehouse lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn delta_err(table: Table) -> impl Fn(DeltaTableError) -> WarehouseError {
        move |source| WarehouseError::Delta {
            table: table.qualified_name(),
            source,
        }
    }

    /// The Delta table, at its latest version, or None if no load has created it yet.
    pub async fn table(&self, table: Table) -> Result<Option<DeltaTable>> {
        self.table_at(table, None).await
    }

    /// The Delta table at `version` (None: latest); None if it does not exist (yet).
    pub async fn table_at(&self, table: Table, version: Option<i64>) -> Result<Option<DeltaTable>> {
        // A table exists once its first commit is in its log (or, were the log's oldest
        // commits cleaned up by another Delta writer, once it has a checkpoint). Two
        // lookups, not a listing: the log grows by a file per load, forever.
        let log = format!("{}/_delta_log", table.store_path());
        if !self
            .store
            .exists(&format!("{log}/00000000000000000000.json"))
            .await?
            && !self
                .store
                .exists(&format!("{log}/_last_checkpoint"))
                .await?
        {
            return Ok(None);
        }
        let url = self.store.url(&format!("{}/", table.store_path()));
        let mut t = deltalake::DeltaTableBuilder::from_url(url)
            .map_err(Self::delta_err(table))?
            .with_storage_options(self.store.storage_options())
            .build()
            .map_err(Self::delta_err(table))?;
        let loaded = match version {
            Some(v) => t.load_version(v.max(0) as u64).await,
            None => t.load().await,
        };
        match loaded {
            Ok(()) => Ok(Some(t)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(Self::delta_err(table)(e)),
        }
    }

    /// Takes the store's writer lease for `what` (waiting, with a warning, while
    /// another load, vacuum or publish record holds it).
    pub(crate) async fn writer_lease(&self, what: &str) -> Result<Lease> {
        let ttl = std::time::Duration::from_secs(self.config.lease_secs);
        Ok(self
            .store()
            .acquire_lease(crate::loader::WRITER_LEASE, what, ttl, |holder| {
                tracing::warn!("{what}: waiting for the writer lease, held by {holder}")
            })
            .await?)
    }

    /// Commits `input` to `table` in one Delta commit, creating the table on first use.
    /// Returns the table's new version. Only the holder of the writer lease commits,
    /// and only while it still holds it.
    pub(crate) async fn commit(
        &self,
        lease: &Lease,
        table: Table,
        input: Input,
        mode: WriteMode,
        load_id: i64,
    ) -> Result<i64> {
        lease.check().await?;
        let err = Self::delta_err(table);
        let existing = self.table(table).await?;
        let delta = match existing {
            Some(t) => t,
            None => {
                self.store.ensure_dir(&table.store_path())?;
                let url = self.store.url(&format!("{}/", table.store_path()));
                DeltaTable::try_from_url_with_storage_options(url, self.store.storage_options())
                    .await
                    .map_err(&err)?
            }
        };
        let is_new = delta.version().is_none();
        let mut builder = match input {
            Input::Batches(batches) => delta.write(batches),
            Input::Plan(plan) => delta.write(Vec::new()).with_input_plan(plan),
        }
        .with_commit_properties(commit_properties(
            "citybooks.load_id",
            serde_json::json!(load_id),
        ))
        .with_target_file_size(NonZeroU64::new(self.config.target_file_mib << 20))
        .with_writer_properties(writer_properties());
        if is_new {
            builder = builder
                .with_save_mode(SaveMode::Append)
                .with_table_name(table.qualified_name())
                .with_partition_columns(table.partition_columns().iter().map(|s| s.to_string()));
        } else {
            builder = match mode {
                WriteMode::Append => builder.with_save_mode(SaveMode::Append),
                WriteMode::Replace(predicate) => builder
                    .with_save_mode(SaveMode::Overwrite)
                    .with_replace_where(predicate),
                WriteMode::Rewrite => builder
                    .with_save_mode(SaveMode::Overwrite)
                    .with_schema_mode(SchemaMode::Overwrite),
            };
        }
        let written = builder.await.map_err(&err)?;
        let version = written.version().map(|v| v as i64).ok_or_else(|| {
            WarehouseError::Internal(format!(
                "{}: no version after commit",
                table.qualified_name()
            ))
        })?;
        if version > 0 && version % CHECKPOINT_EVERY == 0 {
            self.tidy_log(table, written).await;
        }
        Ok(version)
    }

    /// A provider for `table` at `version` (None: latest); an empty table of the right
    /// schema when it does not exist yet, so every query can name every table.
    pub(crate) async fn provider(
        &self,
        ctx: &SessionContext,
        table: Table,
        version: Option<i64>,
        scans: TableScans,
    ) -> Result<Arc<dyn TableProvider>> {
        match self.table_at(table, version).await? {
            Some(t) if scans == TableScans::Files && table.schema_name() == "report" => {
                self.files_provider(table, &t)
            }
            Some(t) => {
                t.update_datafusion_session(&ctx.state())
                    .map_err(Self::delta_err(table))?;
                Ok(t.table_provider().await?)
            }
            None => Ok(Arc::new(MemTable::try_new(table.schema(), vec![vec![]])?)),
        }
    }

    /// [`TableScans::Files`]: `table` as Parquet listings over the active files of the
    /// snapshot `delta` holds.
    fn files_provider(&self, table: Table, delta: &DeltaTable) -> Result<Arc<dyn TableProvider>> {
        let schema = table.schema();
        let partition = table.partition_columns().first().copied();
        let groups = Self::files_by_partition(table, delta)?;
        let file_schema: SchemaRef = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .filter(|f| Some(f.name().as_str()) != partition)
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let Some(column) = partition else {
            let all: Vec<String> = groups.into_values().flatten().collect();
            if all.is_empty() {
                return Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?));
            }
            return parquet_listing(&all, &file_schema);
        };
        if groups.is_empty() {
            return Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?));
        }
        // One listing per partition value, the value as a literal column, in the
        // table's column order; unioned into a view the optimiser inlines (a filter on
        // the column drops the other years' scans before anything is read).
        let mut plan: Option<LogicalPlanBuilder> = None;
        for (value, uris) in &groups {
            let year = value.unwrap_or_default();
            let source = provider_as_source(parquet_listing(uris, &file_schema)?);
            let projection: Vec<Expr> = schema
                .fields()
                .iter()
                .map(|f| match f.name() == column {
                    true => lit(year).alias(column),
                    false => col(f.name().as_str()),
                })
                .collect();
            let branch = LogicalPlanBuilder::scan(
                format!("{}_{column}_{year}", table.name()),
                source,
                None,
            )?
            .project(projection)?
            .build()?;
            plan = Some(match plan {
                None => LogicalPlanBuilder::from(branch),
                Some(p) => p.union(branch)?,
            });
        }
        let plan = plan.expect("at least one partition").build()?;
        Ok(Arc::new(YearUnion(ViewTable::new(plan, None))))
    }

    /// The URIs of the snapshot's active files by partition value (one group, None, for
    /// an unpartitioned table).
    fn files_by_partition(
        table: Table,
        delta: &DeltaTable,
    ) -> Result<BTreeMap<Option<i32>, Vec<String>>> {
        let partition = table.partition_columns().first().copied();
        let log_store = delta.log_store();
        let mut groups: BTreeMap<Option<i32>, Vec<String>> = BTreeMap::new();
        for file in delta
            .snapshot()
            .map_err(Self::delta_err(table))?
            .log_data()
            .iter()
        {
            let key = match partition {
                None => None,
                Some(column) => {
                    let value = file.partition_values_map().get(column).cloned().flatten();
                    let year = value.as_deref().and_then(|v| v.parse::<i32>().ok());
                    Some(year.ok_or_else(|| {
                        WarehouseError::corrupt(
                            table.qualified_name(),
                            format!(
                                "file {} has no readable {column} ({value:?})",
                                file.object_store_path()
                            ),
                        )
                    })?)
                }
            };
            groups
                .entry(key)
                .or_default()
                .push(log_store.to_uri(&file.object_store_path()));
        }
        Ok(groups)
    }

    /// The session configuration every citybooks session starts from.
    pub fn session_config() -> SessionConfig {
        SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG, "report")
    }

    /// citybooks' own optimizer rules, after DataFusion's: the facts aggregated by
    /// their keys before the dimensions are joined ([`crate::preagg`]). `local`: the
    /// plans run in this process (not sent to a cluster), so they may use citybooks'
    /// own functions.
    pub fn add_rules(ctx: &SessionContext, local: bool) {
        ctx.add_optimizer_rule(Arc::new(crate::preagg::PreAggregate { exact_avg: local }));
    }

    /// A DataFusion session with every table registered under its schema
    /// (`report.transaction`, `meta.loads`, ...). With `as_of_load`, the tables are as
    /// they were right after that load (Delta time travel).
    pub async fn session(&self, as_of_load: Option<i64>) -> Result<SessionContext> {
        self.session_scanning(as_of_load, TableScans::Delta).await
    }

    /// [`Warehouse::session`], its `report` tables read as `scans` says.
    pub async fn session_scanning(
        &self,
        as_of_load: Option<i64>,
        scans: TableScans,
    ) -> Result<SessionContext> {
        let ctx = SessionContext::new_with_config(Self::session_config());
        Self::add_rules(&ctx, true);
        self.register_tables(&ctx, as_of_load, scans).await?;
        Ok(ctx)
    }

    /// (Re-)registers every table on `ctx` at its latest version, or as of
    /// `as_of_load`, read as `scans` says. Each schema (`report`, `meta`) is replaced
    /// whole, in one step, so a query never sees a mix of versions or a missing table;
    /// queries already running keep the versions they started with.
    pub async fn register_tables(
        &self,
        ctx: &SessionContext,
        as_of_load: Option<i64>,
        scans: TableScans,
    ) -> Result<()> {
        if scans == TableScans::Files {
            // The listings name the store's own URLs (s3://bucket/...); local files
            // need nothing, DataFusion reads file:// itself.
            if let Some(url) = self.store.bucket_url() {
                ctx.register_object_store(&url, self.store.object_store());
            }
        }
        // meta.loads and meta.publishes are read whole (a row per load, per publish):
        // in today's shape whatever citybooks wrote them (see `from_batches`), and as
        // of a load meta.loads holds the loads up to that one.
        let loads = self.loads().await?;
        let versions: Option<HashMap<String, i64>> = match as_of_load {
            None => None,
            Some(n) => {
                let record = loads
                    .iter()
                    .find(|l| l.load_id == n)
                    .ok_or(WarehouseError::NoSuchLoad(n))?;
                Some(record.table_versions()?)
            }
        };
        let schemas: HashMap<&str, Arc<MemorySchemaProvider>> = ["report", "meta"]
            .into_iter()
            .map(|name| (name, Arc::new(MemorySchemaProvider::new())))
            .collect();
        let mut hold_left = match scans {
            TableScans::Memory { max_bytes } => max_bytes,
            _ => 0,
        };
        for table in Table::all() {
            let provider: Arc<dyn TableProvider> = match (&versions, table) {
                (_, Table::Loads) => {
                    let n = as_of_load.unwrap_or(i64::MAX);
                    let rows: Vec<&LoadRecord> = loads.iter().filter(|l| l.load_id <= n).collect();
                    Arc::new(MemTable::try_new(
                        table.schema(),
                        vec![vec![LoadRecord::to_batch(rows)?]],
                    )?)
                }
                (None, Table::Publishes) => Arc::new(MemTable::try_new(
                    table.schema(),
                    vec![vec![PublishRecord::to_batch(&self.publishes().await?)?]],
                )?),
                (None, _) => self.provider(ctx, table, None, scans).await?,
                (Some(v), _) => match v.get(&table.qualified_name()) {
                    Some(version) => self.provider(ctx, table, Some(*version), scans).await?,
                    None => Arc::new(MemTable::try_new(table.schema(), vec![vec![]])?),
                },
            };
            let provider = match (scans, &versions) {
                (TableScans::Memory { .. }, None) if table.schema_name() == "report" => {
                    self.held(ctx, table, provider, &mut hold_left).await?
                }
                _ => provider,
            };
            schemas[table.schema_name()].register_table(table.name().to_string(), provider)?;
        }
        let catalog = ctx
            .catalog(CATALOG)
            .ok_or_else(|| WarehouseError::Internal("the default catalog is missing".into()))?;
        for (name, schema) in schemas {
            catalog.register_schema(name, schema)?;
        }
        Ok(())
    }

    /// `provider` of `table` with its most-read columns in memory if they fit in
    /// `left` bytes (taken from it), else `provider` itself (logged).
    async fn held(
        &self,
        ctx: &SessionContext,
        table: Table,
        provider: Arc<dyn TableProvider>,
        left: &mut usize,
    ) -> Result<Arc<dyn TableProvider>> {
        let started = std::time::Instant::now();
        let name = table.qualified_name();
        let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
        Ok(
            match held::hold(ctx, table, provider.clone(), left).await? {
                Ok(held) => {
                    tracing::debug!(
                        "{name}: {:.1} MiB held in memory in {:.0} ms",
                        mib(held.bytes()),
                        started.elapsed().as_secs_f64() * 1e3
                    );
                    let held: Arc<dyn TableProvider> = held;
                    held
                }
                Err(NotHeld::TooLarge { read_bytes }) => {
                    tracing::warn!(
                    "{name}: its columns take more than the {:.1} MiB left of [sql] table_memory_mib (stopped at {:.1} MiB); its queries read Parquet",
                    mib(*left),
                    mib(read_bytes)
                );
                    provider
                }
                Err(NotHeld::Unexpected(why)) => {
                    tracing::warn!("{name}: not held in memory ({why}); its queries read Parquet");
                    provider
                }
            },
        )
    }

    /// A token that changes whenever a load or a publish is recorded: the newest
    /// commit files of `meta.loads` (every load, even a no-op, ends with one) and
    /// `meta.publishes`. Empty before the first load. Two listings of small folders:
    /// cheap enough to ask before queries.
    pub async fn generation(&self) -> Result<String> {
        let mut token = String::new();
        for table in [Table::Loads, Table::Publishes] {
            let log = format!("{}/_delta_log", table.store_path());
            let newest = self
                .store
                .list(&log)
                .await?
                .into_iter()
                .map(|(name, _)| name)
                .filter(|name| name.ends_with(".json"))
                .max()
                .unwrap_or_default();
            if !newest.is_empty() {
                token = if token.is_empty() {
                    newest
                } else {
                    format!("{token} {newest}")
                };
            }
        }
        Ok(token)
    }

    /// Every row of `meta.loads`, oldest first.
    pub async fn loads(&self) -> Result<Vec<LoadRecord>> {
        let batches = self.read_whole(Table::Loads).await?;
        let mut rows = LoadRecord::from_batches(&batches)?;
        rows.sort_by_key(|r| r.load_id);
        Ok(rows)
    }

    /// Every row of `meta.publishes`, oldest first.
    pub async fn publishes(&self) -> Result<Vec<PublishRecord>> {
        let batches = self.read_whole(Table::Publishes).await?;
        let mut rows = PublishRecord::from_batches(&batches)?;
        rows.sort_by_key(|r| r.publish_id);
        Ok(rows)
    }

    /// The latest version of a small table, whole, in the shape it was written in
    /// (nothing when it does not exist yet).
    pub(crate) async fn read_whole(&self, t: Table) -> Result<Vec<RecordBatch>> {
        let Some(table) = self.table(t).await? else {
            return Ok(Vec::new());
        };
        let ctx = SessionContext::new();
        table
            .update_datafusion_session(&ctx.state())
            .map_err(Self::delta_err(t))?;
        let provider = table.table_provider().await?;
        Ok(ctx.read_table(provider)?.collect().await?)
    }

    /// Whether table `t` exists in a shape older than its schema (a column citybooks
    /// added since is missing): its next write rewrites it whole. A table found in
    /// today's shape is remembered, so loads after the first do not open it again.
    pub(crate) async fn needs_migration(&self, t: Table) -> Result<bool> {
        let shapes = || self.current_shape.lock().unwrap_or_else(|e| e.into_inner());
        if shapes().contains(&t) {
            return Ok(false);
        }
        let Some(table) = self.table(t).await? else {
            return Ok(false);
        };
        let stored = table.snapshot().map_err(Self::delta_err(t))?.schema();
        let old = t
            .schema()
            .fields()
            .iter()
            .any(|f| stored.field(f.name()).is_none());
        if !old {
            // Nothing writes an older shape again once a table has today's.
            shapes().insert(t);
        }
        Ok(old)
    }

    /// Removes every table and raw file of the project's store. Returns the number of
    /// objects deleted.
    pub async fn destroy(&self) -> Result<usize> {
        let mut n = self.store.delete_prefix("warehouse").await?;
        n += self.store.delete_prefix("raw").await?;
        n += self.store.delete_prefix("index").await?;
        Ok(n)
    }
}

/// Every this many commits to a table, the loader tidies it up
/// ([`Warehouse::tidy_log`]): it compacts the small files of the tables that grow by
/// small appends and writes a checkpoint of the log. Opening a table (every load and
/// every refresh does, several times) reads the newest checkpoint, the commits after
/// it and every data file, so this bounds both. (Delta's own checkpoint interval is
/// 100. Measured over 150 weekly loads of a 100,000-row warehouse: a load at version
/// 150 took 1.0 s with 50 commits to replay, 0.66 s right after a checkpoint, 0.40 s
/// with `meta.loads`' 151 files compacted into one; the first week's took 0.27 s.)
pub const CHECKPOINT_EVERY: i64 = 10;

/// The properties of every commit citybooks makes: what made it (`citybooks.load_id`,
/// or `citybooks.operation` for housekeeping), no
/// checkpoint from Delta's own post-commit hook (citybooks writes them on its own
/// cadence, [`CHECKPOINT_EVERY`]) and no clean-up of "expired" log entries, which would
/// silently break time travel (`--as-of-load`) to loads older than Delta's 30-day log
/// retention. The history is the warehouse's to keep; `citybooks vacuum` is the one
/// place that removes anything.
pub(crate) fn commit_properties(key: &str, value: serde_json::Value) -> CommitProperties {
    CommitProperties::default()
        .with_metadata([(key.to_string(), value)])
        .with_create_checkpoint(false)
        .with_cleanup_expired_logs(Some(false))
}

/// A Parquet listing over exactly `uris`, read with `file_schema`.
fn parquet_listing(uris: &[String], file_schema: &SchemaRef) -> Result<Arc<dyn TableProvider>> {
    let urls = uris
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(file_schema.clone());
    Ok(Arc::new(ListingTable::try_new(config)?))
}

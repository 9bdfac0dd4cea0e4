//! Publishing the star schema into a PostgreSQL or Amazon Redshift the city already
//! runs: `citybooks publish TARGET`, `citybooks load --publish`, and `citybooks serve`
//! after every committed load when `[publish] target` is set.
//!
//! A publish brings the target up to the warehouse's newest load, in **one
//! transaction** on the target, so its readers never see a missing year or a duplicate
//! row:
//!
//! 1. **Tables** ([`sql::create_tables`]): the original ERD's five tables in the target
//!    schema, with `numeric(20,2)` amounts, primary keys, the fact's foreign keys to its
//!    dimensions, the lineage columns and every comment — created if missing (in their
//!    own transaction), checked if present: a target whose columns differ is refused
//!    with a sentence naming the column, never altered.
//! 2. **State**: two small tables beside them ([`sql::STATE_TABLE`],
//!    [`sql::YEARS_TABLE`]) say which citybooks load the target holds and each fiscal
//!    year's rows and total as published. They are written in the same transaction as
//!    the data, so they cannot disagree with it.
//! 3. **What changed**: the fiscal years replaced by the loads after the one the target
//!    holds, and any dimension member new or changed. Publishing twice is a no-op.
//!    Before anything is sent, the target's per-year rows and totals are compared with
//!    the state: a target edited by other hands, or one holding a newer load than this
//!    warehouse, is refused with what differs (`--full` republishes everything).
//! 4. **The rows**: PostgreSQL gets Arrow batches as binary `COPY ... FROM STDIN`
//!    (pgpq), streamed from a snapshot of the warehouse at the published load, a few
//!    batches in memory at a time: dimensions through temporary staging tables (update
//!    the changed members, insert the new), facts straight into the fact table after
//!    deleting the years they replace. Redshift gets Parquet files written under the
//!    store's `publish/` folder, `COPY`ed from S3 into staging tables, then the same
//!    delete and insert; the files are removed afterwards.
//!
//! Any failure — unreachable target, wrong password, missing privilege, a `COPY` that
//! fails half-way, the connection lost — ends the transaction without a commit: the
//! target is as it was, and the next publish starts from the same state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{Decimal128Type, Int32Type, SchemaRef};
use bytes::BytesMut;
use citybooks_model::money::format_cents;
use citybooks_model::schema::Table;
use citybooks_store::config::PublishConfig;
use citybooks_warehouse::publishes::{PublishRecord, PublishStatus};
use citybooks_warehouse::{Warehouse, WarehouseError};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::{SinkExt, StreamExt};
use pgpq::ArrowToPostgresBinaryEncoder;
use tokio_postgres::{Client, NoTls};

pub mod sql;
pub mod target;

pub use target::{Flavor, Target};

/// How to publish.
#[derive(Debug, Clone)]
pub struct Options {
    /// The schema in the target (`[publish] schema`, default `report`).
    pub schema: String,
    /// Republish every year and every member, whatever the target holds.
    pub full: bool,
    /// Redshift: the IAM role its `COPY` reads the store with.
    pub iam_role: Option<String>,
    /// `[publish] password`, used when neither PGPASSWORD nor ~/.pgpass has one.
    pub password: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            schema: "report".into(),
            full: false,
            iam_role: None,
            password: None,
        }
    }
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The target, without a password.
    pub target: String,
    /// The warehouse load the target holds now.
    pub load_id: i64,
    /// The load it held before (None: nothing published there yet).
    pub previous: Option<i64>,
    /// The fiscal years sent (every year for a first or `--full` publish).
    pub years: Vec<i32>,
    /// Fact rows sent.
    pub rows: u64,
    /// Dimension members inserted or updated.
    pub members: u64,
    /// Whether the tables were created by this publish.
    pub created: bool,
    /// Whether there was nothing to send.
    pub up_to_date: bool,
    pub seconds: f64,
}

impl Options {
    /// Where and how to publish: the command line's choices (`target`, `schema`,
    /// `iam_role`, `full`) over `[publish]`. None when neither names a target.
    pub fn from_config(
        cfg: &PublishConfig,
        target: Option<&str>,
        schema: Option<String>,
        iam_role: Option<String>,
        full: bool,
    ) -> Result<Option<(Target, Options)>, PublishError> {
        let Some(text) = target.or(cfg.target.as_deref()) else {
            return Ok(None);
        };
        if text.trim().is_empty() {
            return Ok(None);
        }
        let target = Target::parse(text)?;
        let options = Options {
            schema: schema.unwrap_or_else(|| cfg.schema.clone()),
            full,
            iam_role: iam_role.or_else(|| cfg.iam_role.clone()),
            password: cfg.password.clone(),
        };
        if options.schema.trim().is_empty() {
            return Err(PublishError::BadTarget {
                target: target.to_string(),
                why: "[publish] schema is empty: name the schema of the target (default report)"
                    .into(),
            });
        }
        Ok(Some((target, options)))
    }
}

impl Report {
    /// The report as a person reads it, one line; `schema` is the one published into.
    pub fn describe(&self, schema: &str) -> String {
        if self.up_to_date {
            return format!(
                "publish to {} (schema {schema}): up to date, it already holds load {}",
                self.target, self.load_id
            );
        }
        let years: Vec<String> = self.years.iter().map(|y| y.to_string()).collect();
        format!(
            "published load {} to {} (schema {schema}{}): fiscal years {}, {} rows, {} dimension members added or changed, in {:.2} s",
            self.load_id,
            self.target,
            match (self.created, self.previous) {
                (true, _) => ", tables created".to_string(),
                (false, Some(p)) => format!(", it held load {p}"),
                (false, None) => String::new(),
            },
            if years.is_empty() { "none".into() } else { years.join(", ") },
            self.rows,
            self.members,
            self.seconds
        )
    }
}

/// Why a publish did not happen; the target is as it was before it.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("publish target {target}: {why}")]
    BadTarget { target: String, why: String },
    #[error("nothing to publish: no load has committed data to this warehouse yet")]
    NothingLoaded,
    #[error("{target}: cannot connect: {message}")]
    Connect { target: String, message: String },
    #[error("{target}: {sentence}")]
    Refused { target: String, sentence: String },
    #[error("{target}: {step} failed: {message}; the target is as it was before this publish")]
    Failed {
        target: String,
        step: String,
        message: String,
    },
    #[error("{0}")]
    Warehouse(Box<WarehouseError>),
    /// Rows of `table` that could not be encoded for the target (a fault of ours).
    #[error("encoding {table} for the target: {message}")]
    Encode { table: String, message: String },
}

impl PublishError {
    fn encode(table: &str) -> impl Fn(&dyn std::fmt::Debug) -> PublishError + '_ {
        move |e| PublishError::Encode {
            table: table.to_string(),
            message: format!("{e:?}"),
        }
    }
}

impl From<WarehouseError> for PublishError {
    fn from(e: WarehouseError) -> Self {
        PublishError::Warehouse(Box::new(e))
    }
}

/// A PostgreSQL error in one sentence: the server's message (with its detail and hint
/// when it gave them), or the client's.
fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = db.message().to_string();
            if let Some(d) = db.detail() {
                m = format!("{m} ({d})");
            }
            if let Some(h) = db.hint() {
                m = format!("{m}; hint: {h}");
            }
            m
        }
        None => {
            // "error connecting to server: Connection refused (os error 111)", or
            // "db error" wrappers: show the innermost cause.
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                m = format!("{m}: {s}");
                source = s.source();
            }
            m
        }
    }
}

/// One connection to the target, with the target's name for errors.
struct Session {
    client: Client,
    target: String,
}

impl Session {
    async fn open(target: &Target, options: &Options) -> Result<Session, PublishError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&target.host)
            .port(target.port)
            .user(&target.user)
            .dbname(&target.database)
            .application_name("citybooks publish")
            .connect_timeout(Duration::from_secs(10));
        if let Some(password) = target.password(options.password.as_deref()) {
            config.password(password);
        }
        let (client, connection) =
            config
                .connect(NoTls)
                .await
                .map_err(|e| PublishError::Connect {
                    target: target.to_string(),
                    message: pg_message(&e),
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("publish connection ended: {e}");
            }
        });
        Ok(Session {
            client,
            target: target.to_string(),
        })
    }

    fn failed(&self, step: &str, e: &tokio_postgres::Error) -> PublishError {
        PublishError::Failed {
            target: self.target.clone(),
            step: step.to_string(),
            message: pg_message(e),
        }
    }

    async fn exec(&self, step: &str, statement: &str) -> Result<u64, PublishError> {
        tracing::debug!(%statement, "publish");
        self.client
            .execute(statement, &[])
            .await
            .map_err(|e| self.failed(step, &e))
    }

    async fn rows(
        &self,
        step: &str,
        statement: &str,
    ) -> Result<Vec<tokio_postgres::Row>, PublishError> {
        self.client
            .query(statement, &[])
            .await
            .map_err(|e| self.failed(step, &e))
    }

    fn refused(&self, sentence: String) -> PublishError {
        PublishError::Refused {
            target: self.target.clone(),
            sentence,
        }
    }
}

/// Publishes the warehouse's newest load to `target`: see the module doc.
pub async fn publish(
    warehouse: &Warehouse,
    target: &Target,
    options: &Options,
) -> Result<Report, PublishError> {
    let started = Instant::now();
    let loads = warehouse.loads().await?;
    let latest = loads
        .iter()
        .filter(|l| l.is_loaded())
        .map(|l| l.load_id)
        .max()
        .ok_or(PublishError::NothingLoaded)?;
    // Before touching the target: what the rows' path needs (Redshift: an IAM role and
    // a store on S3).
    let mut bulk = Bulk::new(warehouse, target, options, latest)?;
    let session = Session::open(target, options).await?;
    let flavor = target.flavor;
    let schema = options.schema.as_str();
    let created = ensure_tables(&session, flavor, schema).await?;

    session.exec("starting the transaction", "BEGIN").await?;
    let outcome = publish_in_transaction(
        warehouse, &session, &mut bulk, target, options, &loads, latest,
    )
    .await;
    match outcome {
        Ok(mut report) => {
            session.exec("committing", "COMMIT").await?;
            report.created = created;
            report.seconds = started.elapsed().as_secs_f64();
            Ok(report)
        }
        Err(e) => {
            // Best effort: a lost connection rolls back by itself.
            let _ = session.client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn publish_in_transaction(
    warehouse: &Warehouse,
    session: &Session,
    bulk: &mut Bulk<'_>,
    target: &Target,
    options: &Options,
    loads: &[citybooks_warehouse::loads::LoadRecord],
    latest: i64,
) -> Result<Report, PublishError> {
    let flavor = target.flavor;
    let schema = options.schema.as_str();
    let state = locked_state(session, flavor, schema, options.full, latest).await?;
    let years = years_to_send(&state, loads, latest, options.full);
    let mut report = Report {
        target: target.to_string(),
        load_id: latest,
        previous: state.load_id,
        years: years.clone().unwrap_or_default(),
        rows: 0,
        members: 0,
        created: false,
        up_to_date: false,
        seconds: 0.0,
    };
    if state.load_id == Some(latest) && years.as_ref().is_some_and(|y| y.is_empty()) {
        report.up_to_date = true;
        return Ok(report);
    }

    let ctx = warehouse.session(Some(latest)).await?;
    let sent = async {
        for table in &sql::dimensions() {
            report.members += send_dimension(session, &ctx, bulk, flavor, schema, *table).await?;
        }
        send_facts(session, &ctx, bulk, flavor, schema, years.as_deref()).await
    }
    .await;
    // The staged files are not needed once COPY read them, whatever happened next.
    bulk.finish().await;
    let figures = sent?;
    report.rows = figures.values().map(|(rows, _)| *rows as u64).sum();
    if years.is_none() {
        report.years = figures.keys().copied().collect();
    }
    record_state(session, schema, latest, years.as_deref(), figures).await?;
    Ok(report)
}

/// Locks the target's publish state and reads it. Refused, unless `full`: a target
/// holding a load newer than `latest` (published from another store), or one whose
/// rows differ from what the state says was published.
async fn locked_state(
    session: &Session,
    flavor: Flavor,
    schema: &str,
    full: bool,
    latest: i64,
) -> Result<State, PublishError> {
    session
        .exec("locking the publish state", &sql::lock(flavor, schema))
        .await?;
    let state = read_state(session, schema).await?;
    if let (Some(held), false) = (state.load_id, full) {
        if held > latest {
            return Err(session.refused(format!(
                "it holds citybooks load {held}, newer than this warehouse's newest load {latest}: it was published from another citybooks store. `citybooks publish --full` replaces it with this warehouse's data"
            )));
        }
        check_untouched(session, schema, &state).await?;
    }
    Ok(state)
}

/// The fiscal years to send: those replaced by the loads after the one the target
/// holds, up to `latest`; None = every year (a first or `full` publish).
fn years_to_send(
    state: &State,
    loads: &[citybooks_warehouse::loads::LoadRecord],
    latest: i64,
    full: bool,
) -> Option<Vec<i32>> {
    match state.load_id {
        Some(held) if !full => Some(
            loads
                .iter()
                .filter(|l| l.is_loaded() && l.load_id > held && l.load_id <= latest)
                .flat_map(|l| l.years())
                .collect::<BTreeSet<i32>>()
                .into_iter()
                .collect(),
        ),
        _ => None,
    }
}

/// Writes the state tables: the load the target now holds, and each sent year's rows
/// and total (`figures`: year → (rows, cents)).
async fn record_state(
    session: &Session,
    schema: &str,
    latest: i64,
    years: Option<&[i32]>,
    figures: BTreeMap<i32, (i64, i128)>,
) -> Result<(), PublishError> {
    let figures: Vec<(i32, i64, String)> = figures
        .into_iter()
        .map(|(year, (rows, cents))| (year, rows, format_cents(cents)))
        .collect();
    let now = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f+00")
        .to_string();
    let source = format!("citybooks {} load {latest}", env!("CARGO_PKG_VERSION"));
    for statement in sql::write_state(schema, latest, &now, &source, years, &figures) {
        session
            .exec("recording the published load", &statement)
            .await?;
    }
    Ok(())
}

/// What the target's state tables say.
struct State {
    load_id: Option<i64>,
    /// Year → (rows, total as text).
    years: BTreeMap<i32, (i64, String)>,
}

async fn read_state(session: &Session, schema: &str) -> Result<State, PublishError> {
    let (load, years) = sql::read_state(schema);
    let load_id = session
        .rows("reading the publish state", &load)
        .await?
        .first()
        .map(|r| r.get::<_, i64>(0));
    let years = year_rows(session, "reading the publish state", &years).await?;
    Ok(State { load_id, years })
}

/// Rows of (fiscal year, rows, total as text), by year.
async fn year_rows(
    session: &Session,
    step: &str,
    statement: &str,
) -> Result<BTreeMap<i32, (i64, String)>, PublishError> {
    Ok(session
        .rows(step, statement)
        .await?
        .iter()
        .map(|r| {
            (
                r.get::<_, i32>(0),
                (r.get::<_, i64>(1), r.get::<_, String>(2)),
            )
        })
        .collect())
}

/// Refuses a target whose fact table no longer matches what was published: a year
/// added, removed, or with other rows or another total.
async fn check_untouched(
    session: &Session,
    schema: &str,
    state: &State,
) -> Result<(), PublishError> {
    let now = year_rows(
        session,
        "reading the target's yearly totals",
        &sql::year_figures(schema),
    )
    .await?;
    let cents = |text: &str| citybooks_model::money::parse_amount(text).ok();
    let years: BTreeSet<i32> = now.keys().chain(state.years.keys()).copied().collect();
    let mut differences = Vec::new();
    for year in years {
        let describe = |f: Option<&(i64, String)>| match f {
            None => "no rows".to_string(),
            Some((rows, total)) => format!("{rows} rows totalling {total}"),
        };
        let (held, published) = (now.get(&year), state.years.get(&year));
        let same = match (held, published) {
            (Some((a, x)), Some((b, y))) => a == b && cents(x) == cents(y),
            (None, None) => true,
            _ => false,
        };
        if !same {
            differences.push(format!(
                "fiscal year {year} has {} where citybooks published {}",
                describe(held),
                describe(published)
            ));
        }
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(session.refused(format!(
        "{schema}.transaction was changed since citybooks published it: {}. Nothing was sent; `citybooks publish --full` replaces the target's rows with the warehouse's",
        differences.join("; ")
    )))
}

/// Creates the tables if the schema has none of them; checks them if it has. Returns
/// whether they were created.
async fn ensure_tables(
    session: &Session,
    flavor: Flavor,
    schema: &str,
) -> Result<bool, PublishError> {
    let mut found = Vec::new();
    for table in sql::published() {
        let columns = session
            .rows(
                "reading the target's tables",
                &sql::columns_query(schema, table.name()),
            )
            .await?;
        if !columns.is_empty() {
            found.push((table, columns));
        }
    }
    let present: Vec<&str> = found.iter().map(|(t, _)| t.name()).collect();
    if !present.is_empty() && present.len() < sql::published().len() {
        let missing: Vec<&str> = sql::published()
            .iter()
            .map(|t| t.name())
            .filter(|n| !present.contains(n))
            .collect();
        return Err(session.refused(format!(
            "schema {schema} has {} but not {}: citybooks creates all five tables or none, so it leaves a partial schema alone",
            present.join(", "),
            missing.join(", ")
        )));
    }
    for (table, columns) in &found {
        check_columns(session, flavor, schema, *table, columns)?;
    }
    let state_present = !session
        .rows(
            "reading the target's tables",
            &sql::columns_query(schema, sql::STATE_TABLE),
        )
        .await?
        .is_empty();
    if !present.is_empty() && state_present {
        return Ok(false);
    }
    session.exec("starting the transaction", "BEGIN").await?;
    let statements = if present.is_empty() {
        sql::create_tables(flavor, schema)
    } else {
        // The tables exist (made by hand to citybooks' shape): only the state is new,
        // and then the first publish is a full one.
        sql::create_state_tables(flavor, schema)
    };
    for statement in statements {
        if let Err(e) = session.exec("creating the tables", &statement).await {
            let _ = session.client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    }
    session.exec("creating the tables", "COMMIT").await?;
    Ok(present.is_empty())
}

/// Refuses a table whose columns are not citybooks' (by name, type and nullability).
fn check_columns(
    session: &Session,
    flavor: Flavor,
    schema: &str,
    table: Table,
    columns: &[tokio_postgres::Row],
) -> Result<(), PublishError> {
    let name = format!("{schema}.{}", table.name());
    let found: BTreeMap<String, (String, Option<i32>, Option<i32>, String)> = columns
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                (
                    r.get::<_, String>(1),
                    r.get::<_, Option<i32>>(2),
                    r.get::<_, Option<i32>>(3),
                    r.get::<_, String>(4),
                ),
            )
        })
        .collect();
    let arrow = table.schema();
    for field in arrow.fields() {
        let wanted = sql::sql_type(flavor, field.data_type());
        let Some((data_type, precision, scale, nullable)) = found.get(field.name()) else {
            return Err(session.refused(format!(
                "{name} has no column {} ({wanted}), which citybooks publishes; the table is left as it is",
                field.name()
            )));
        };
        let (expected, numeric) = sql::expected_type(flavor, field.data_type());
        let type_ok = data_type == expected
            && numeric.is_none_or(|(p, s)| *precision == Some(p) && *scale == Some(s));
        if !type_ok {
            let shown = match (precision, scale) {
                (Some(p), Some(s)) if data_type == "numeric" => format!("numeric({p},{s})"),
                _ => data_type.clone(),
            };
            return Err(session.refused(format!(
                "{name}.{} is {shown} where citybooks publishes {wanted}; the table is left as it is",
                field.name()
            )));
        }
        if nullable == "NO" && field.is_nullable() {
            return Err(session.refused(format!(
                "{name}.{} is NOT NULL but citybooks publishes NULLs in it; the table is left as it is",
                field.name()
            )));
        }
    }
    if let Some(extra) = found.keys().find(|c| arrow.field_with_name(c).is_err()) {
        return Err(session.refused(format!(
            "{name} has a column {extra} that citybooks does not publish; the table is left as it is"
        )));
    }
    Ok(())
}

/// The rows of `table` at the session's load, `filter` applied, as batches of the
/// model's exact types.
async fn stream(
    ctx: &SessionContext,
    table: Table,
    filter: &str,
) -> Result<SendableRecordBatchStream, PublishError> {
    let statement = format!(
        "SELECT {} FROM {}{filter}",
        sql::column_list(table),
        table.qualified_name()
    );
    let df = ctx.sql(&statement).await.map_err(WarehouseError::from)?;
    Ok(df.execute_stream().await.map_err(WarehouseError::from)?)
}

/// `batch` with the model's column types (scans may read text as views).
fn conform(
    table: Table,
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, PublishError> {
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PublishError::encode(table.name())(&e))?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| PublishError::encode(table.name())(&e))
}

/// How rows reach the target: see the module doc.
enum Bulk<'a> {
    /// PostgreSQL: binary `COPY ... FROM STDIN`.
    Stdin,
    /// Redshift: Parquet files under `publish/<target>/<load>/<table>/` in the store.
    S3 {
        warehouse: &'a Warehouse,
        prefix: String,
        bucket_prefix: String,
        iam_role: String,
    },
}

impl<'a> Bulk<'a> {
    fn new(
        warehouse: &'a Warehouse,
        target: &Target,
        options: &Options,
        load_id: i64,
    ) -> Result<Bulk<'a>, PublishError> {
        match target.flavor {
            Flavor::Postgres => Ok(Bulk::Stdin),
            Flavor::Redshift => {
                let refused = |sentence: &str| PublishError::Refused {
                    target: target.to_string(),
                    sentence: sentence.to_string(),
                };
                let Some(iam_role) = options.iam_role.clone() else {
                    return Err(refused("Redshift reads the rows from S3 with an IAM role: give it with --iam-role ARN or [publish] iam_role"));
                };
                let store = warehouse.store();
                if store.bucket_url().is_none() {
                    return Err(refused("Redshift's COPY reads from S3, and this project's store is a local folder: put the store on S3 (in the cluster's region) to publish to Redshift"));
                }
                let slug: String = format!("{}-{}-{}", target.host, target.port, target.database)
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let prefix = format!("publish/{slug}/{load_id}");
                let bucket_prefix = store.url(&prefix).to_string();
                Ok(Bulk::S3 {
                    warehouse,
                    prefix,
                    bucket_prefix,
                    iam_role,
                })
            }
        }
    }

    /// Removes what the publish left in the store.
    async fn finish(&mut self) {
        if let Bulk::S3 {
            warehouse, prefix, ..
        } = self
        {
            if let Err(e) = warehouse.store().delete_prefix(prefix).await {
                tracing::warn!("publish: could not remove {prefix}: {e}");
            }
        }
    }
}

/// Sends `table`'s rows (`filter` applied) into `into`: binary COPY for PostgreSQL, or
/// Parquet files and COPY from S3 for Redshift (into `table`'s stage). Calls `seen` on
/// every batch sent. Returns the rows sent.
async fn send_rows(
    session: &Session,
    ctx: &SessionContext,
    bulk: &mut Bulk<'_>,
    table: Table,
    filter: &str,
    into: &str,
    seen: impl FnMut(&RecordBatch),
) -> Result<u64, PublishError> {
    let batches = stream(ctx, table, filter).await?;
    match bulk {
        Bulk::Stdin => copy_from_stdin(session, table, batches, into, seen).await,
        Bulk::S3 {
            warehouse,
            prefix,
            bucket_prefix,
            iam_role,
        } => {
            let folder = format!("{prefix}/{}", table.name());
            let rows = stage_parquet(warehouse, table, batches, &folder, seen).await?;
            let s3 = format!("{}/{}/", bucket_prefix.trim_end_matches('/'), table.name());
            session
                .exec(
                    &format!("sending {}", table.name()),
                    &sql::copy_from_s3(table, &s3, iam_role),
                )
                .await?;
            Ok(rows)
        }
    }
}

/// PostgreSQL: `batches` as one binary `COPY into FROM STDIN`, a batch at a time.
async fn copy_from_stdin(
    session: &Session,
    table: Table,
    mut batches: SendableRecordBatchStream,
    into: &str,
    mut seen: impl FnMut(&RecordBatch),
) -> Result<u64, PublishError> {
    let schema = table.schema();
    let step = format!("sending {}", table.name());
    let encode = PublishError::encode(table.name());
    let sink = session
        .client
        .copy_in::<_, bytes::Bytes>(&sql::copy_from_stdin(into, table))
        .await
        .map_err(|e| session.failed(&step, &e))?;
    futures::pin_mut!(sink);
    let mut encoder = ArrowToPostgresBinaryEncoder::try_new(&schema).map_err(|e| encode(&e))?;
    let mut buf = BytesMut::new();
    encoder.write_header(&mut buf).map_err(|e| encode(&e))?;
    while let Some(batch) = batches.next().await {
        let batch = conform(table, &batch.map_err(WarehouseError::from)?, &schema)?;
        seen(&batch);
        encoder
            .write_batch(&batch, &mut buf)
            .map_err(|e| encode(&e))?;
        sink.send(buf.split().freeze())
            .await
            .map_err(|e| session.failed(&step, &e))?;
    }
    encoder.write_footer(&mut buf).map_err(|e| encode(&e))?;
    sink.send(buf.split().freeze())
        .await
        .map_err(|e| session.failed(&step, &e))?;
    sink.finish().await.map_err(|e| session.failed(&step, &e))
}

/// Redshift: `batches` as Parquet files `folder/part-NNNNN.parquet` in the store, one
/// per batch, for a `COPY` from S3; returns the rows written.
async fn stage_parquet(
    warehouse: &Warehouse,
    table: Table,
    mut batches: SendableRecordBatchStream,
    folder: &str,
    mut seen: impl FnMut(&RecordBatch),
) -> Result<u64, PublishError> {
    let schema = table.schema();
    let encode = PublishError::encode(table.name());
    let mut rows = 0u64;
    let mut part = 0usize;
    while let Some(batch) = batches.next().await {
        let batch = conform(table, &batch.map_err(WarehouseError::from)?, &schema)?;
        seen(&batch);
        rows += batch.num_rows() as u64;
        let mut file = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut file, schema.clone(), None)
            .map_err(|e| encode(&e))?;
        writer.write(&batch).map_err(|e| encode(&e))?;
        writer.close().map_err(|e| encode(&e))?;
        let rel = format!("{folder}/part-{part:05}.parquet");
        warehouse
            .store()
            .put_stream(&rel, file.as_slice(), |_| {})
            .await
            .map_err(WarehouseError::from)?;
        part += 1;
    }
    Ok(rows)
}

/// Brings one dimension up to the warehouse's: returns the members updated or inserted.
async fn send_dimension(
    session: &Session,
    ctx: &SessionContext,
    bulk: &mut Bulk<'_>,
    flavor: Flavor,
    schema: &str,
    table: Table,
) -> Result<u64, PublishError> {
    let step = format!("merging {}", table.name());
    session
        .exec(&step, &sql::create_stage(flavor, schema, table))
        .await?;
    let stage = sql::quoted(&sql::stage_name(table));
    send_rows(session, ctx, bulk, table, "", &stage, |_| {}).await?;
    let (update, insert) = sql::merge_dimension(schema, table);
    let changed = session.exec(&step, &update).await? + session.exec(&step, &insert).await?;
    session.exec(&step, &sql::drop_stage(table)).await?;
    Ok(changed)
}

/// Replaces the fact rows of `years` (None: all) with the warehouse's. Returns each
/// year's (rows, total in cents) as sent.
async fn send_facts(
    session: &Session,
    ctx: &SessionContext,
    bulk: &mut Bulk<'_>,
    flavor: Flavor,
    schema: &str,
    years: Option<&[i32]>,
) -> Result<BTreeMap<i32, (i64, i128)>, PublishError> {
    let table = Table::Transaction;
    let filter = match years {
        Some(years) => format!(" WHERE fiscal_year {}", sql::years_in(years)),
        None => String::new(),
    };
    let mut figures: BTreeMap<i32, (i64, i128)> = BTreeMap::new();
    let tally = |batch: &RecordBatch| {
        let year = batch.column(1).as_primitive::<Int32Type>();
        let amount = batch.column(6).as_primitive::<Decimal128Type>();
        for i in 0..batch.num_rows() {
            let f = figures.entry(year.value(i)).or_default();
            f.0 += 1;
            f.1 += amount.value(i);
        }
    };
    let step = "replacing the fact rows";
    match bulk {
        Bulk::Stdin => {
            // Sending every year: the foreign keys are checked once, in bulk, after the
            // rows are in (a join per key) rather than by a trigger per row, which
            // takes most of a large COPY's time. The target's own key definitions are
            // put back as they were, in the same transaction.
            let keys: Vec<(String, String)> = match years {
                Some(_) => Vec::new(),
                None => session
                    .rows(step, &sql::fact_foreign_keys(schema))
                    .await?
                    .iter()
                    .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                    .collect(),
            };
            if !keys.is_empty() {
                session
                    .exec(step, &sql::drop_constraints(schema, &keys))
                    .await?;
            }
            session
                .exec(step, &sql::delete_years(schema, years))
                .await?;
            let into = sql::qualified(schema, table.name());
            send_rows(session, ctx, bulk, table, &filter, &into, tally).await?;
            if !keys.is_empty() {
                session
                    .exec(
                        "checking the foreign keys",
                        &sql::add_constraints(schema, &keys),
                    )
                    .await?;
            }
        }
        Bulk::S3 { .. } => {
            session
                .exec(step, &sql::create_stage(flavor, schema, table))
                .await?;
            let stage = sql::quoted(&sql::stage_name(table));
            send_rows(session, ctx, bulk, table, &filter, &stage, tally).await?;
            session
                .exec(step, &sql::delete_years(schema, years))
                .await?;
            session
                .exec(step, &sql::insert_facts_from_stage(schema))
                .await?;
            session.exec(step, &sql::drop_stage(table)).await?;
        }
    }
    // Years asked for that no longer have rows stay out of the state.
    Ok(figures)
}

/// The row `meta.publishes` gets for a publish that ended with `outcome`.
pub fn record(
    target: &Target,
    options: &Options,
    started_micros: i64,
    outcome: &Result<Report, PublishError>,
) -> PublishRecord {
    let finished = chrono::Utc::now().timestamp_micros();
    let (load_id, years, rows, status, error) = match outcome {
        Ok(r) => (
            Some(r.load_id),
            r.years
                .iter()
                .map(|y| y.to_string())
                .collect::<Vec<_>>()
                .join(","),
            r.rows as i64,
            if r.up_to_date {
                PublishStatus::UpToDate
            } else {
                PublishStatus::Published
            },
            None,
        ),
        Err(e) => (
            None,
            String::new(),
            0,
            PublishStatus::Failed,
            Some(e.to_string()),
        ),
    };
    PublishRecord {
        publish_id: 0,
        target: target.to_string(),
        target_schema: options.schema.clone(),
        load_id,
        years,
        rows,
        seconds: (finished - started_micros) as f64 / 1e6,
        status,
        started: started_micros,
        finished,
        error,
    }
}

/// Publishes, then records the outcome in `meta.publishes` (a failure too).
pub async fn publish_and_record(
    warehouse: &Warehouse,
    target: &Target,
    options: &Options,
) -> Result<Report, PublishError> {
    let started = chrono::Utc::now().timestamp_micros();
    let outcome = publish(warehouse, target, options).await;
    let row = record(target, options, started, &outcome);
    if let Err(e) = warehouse.record_publish(row).await {
        tracing::warn!("publish to {target}: could not record it in meta.publishes: {e}");
    }
    outcome
}

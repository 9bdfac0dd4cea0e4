//! The loader: read → conform → model → commit.
//!
//! A load reads its raw file **twice**, streaming both times, so memory does not grow
//! with the file: the *scan* checks every row, counts the codes each name carries
//! (rule 6 needs the whole file) and collects the distinct dimension members; the
//! *write* re-reads the file and streams fact batches straight into the Delta writer.
//!
//! Commits, in this order, one Delta commit each: new dimension members (append-only,
//! so readers of the old facts are unaffected), the facts (replacing exactly the fiscal
//! years the file contains — the publish point of the data), the quarantined rows, and
//! the `meta.loads` row. A crash anywhere leaves every table at a committed version; a
//! crash before the `meta.loads` row only means the next load of the file redoes it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ahash::AHashMap;
use arrow::array::{ArrayRef, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use citybooks_model::conform::{conform_row, Row, REVENUE_ID, SPENDING_ID};
use citybooks_model::{CodeChooser, FundMember, Member, ProgramMember, Table, TypeMember};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{col, lit, LogicalPlanBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::csvsource::{Hashing, Next, Records};
use crate::error::{Result, WarehouseError};
use crate::failpoint;
use crate::loads::{ints, strings, LoadRecord, DISCARDED, FAILED, HELD, LOADED, UNCHANGED};
use crate::shrink::{shrinking_years, YearSize};
use crate::tables::{Input, Warehouse, WriteMode};
use citybooks_store::{Lease, Waited};

/// The name of the lease every load takes in the store (`leases/writer/`).
pub const WRITER_LEASE: &str = "writer";

/// How a load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadStatus {
    /// Data committed (possibly with quarantined rows).
    Loaded,
    /// The content was already the warehouse's: nothing changed.
    Unchanged,
    /// Nothing could be loaded; the reason is in `error`, bad rows in quarantine.
    Failed,
    /// It would have shrunk a fiscal year past `[load] max_shrink_percent`: nothing was
    /// replaced; the reason is in `hold` (see [`Warehouse::release`]).
    Held,
    /// A held load was let go without loading it ([`Warehouse::release`]).
    Discarded,
}

/// A row that went to `meta.quarantine`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantinedRow {
    pub line: u64,
    pub field: Option<String>,
    pub reason: String,
    pub raw: String,
}

/// What a load did, for the terminal, `.load.json` files and tests.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub load_id: i64,
    pub status: LoadStatus,
    /// The raw file, relative to the store root.
    pub source_file: String,
    pub content_hash: String,
    pub dialect: Option<String>,
    pub bytes: u64,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_quarantined: u64,
    pub years_replaced: Vec<i32>,
    pub data_as_of: Option<String>,
    /// Every name rule 6 conformed, as a sentence.
    pub conformed: Vec<String>,
    /// New members per dimension table.
    pub new_members: BTreeMap<String, usize>,
    /// The first quarantined rows (all of them are in `meta.quarantine`).
    pub quarantine_sample: Vec<QuarantinedRow>,
    pub error: Option<String>,
    /// Why the load was held, and how to release it.
    pub hold: Option<String>,
    pub seconds: f64,
    /// How long the load waited for the writer lease, and for which other loads.
    pub lease_wait: Waited,
}

/// How many quarantined rows a report repeats (the table has them all).
const SAMPLE: usize = 20;

/// Distinct dimension members of one file, found by a byte key so the hot loop
/// allocates only for members it has not seen.
struct Interner<M> {
    map: AHashMap<Box<[u8]>, u32>,
    members: Vec<(M, u64)>,
}

impl<M> Interner<M> {
    fn new() -> Self {
        Interner {
            map: AHashMap::new(),
            members: Vec::new(),
        }
    }

    fn intern(&mut self, key: &[u8], make: impl FnOnce() -> M) -> u32 {
        if let Some(&i) = self.map.get(key) {
            self.members[i as usize].1 += 1;
            return i;
        }
        let i = self.members.len() as u32;
        self.members.push((make(), 1));
        self.map.insert(key.into(), i);
        i
    }

    fn get(&self, key: &[u8]) -> Option<u32> {
        self.map.get(key).copied()
    }
}

fn key_of(buf: &mut Vec<u8>, parts: &[&str]) {
    buf.clear();
    for p in parts {
        buf.extend_from_slice(p.as_bytes());
        buf.push(0x1f);
    }
}

fn program_key(buf: &mut Vec<u8>, r: &Row) {
    key_of(
        buf,
        &[
            r.related_govt_units,
            r.organization_group,
            r.department_code,
            r.department,
            r.program_code,
            r.program,
        ],
    );
    // The key is internal: the integer code goes in as its bytes, no formatting.
    buf.extend_from_slice(&r.organization_group_code.to_le_bytes());
}

fn type_key(buf: &mut Vec<u8>, r: &Row) {
    key_of(
        buf,
        &[
            r.character_code,
            r.character,
            r.object_code,
            r.object,
            r.sub_object_code,
            r.sub_object,
        ],
    );
}

fn fund_key(buf: &mut Vec<u8>, r: &Row) {
    key_of(
        buf,
        &[
            r.fund_type_code,
            r.fund_type,
            r.fund_code,
            r.fund,
            r.fund_category_code,
            r.fund_category,
        ],
    );
}

/// What the scan learnt about a file.
struct Scan {
    dialect: String,
    hash: String,
    bytes: u64,
    rows_read: u64,
    rows_ok: u64,
    years: BTreeSet<i32>,
    /// Rows and gross amount per fiscal year, for the shrink guard.
    year_sizes: BTreeMap<i32, YearSize>,
    data_as_of: Option<String>,
    programs: Interner<ProgramMember>,
    types: Interner<TypeMember>,
    funds: Interner<FundMember>,
    quarantine: Vec<QuarantinedRow>,
}

fn progress_bar(total: u64, phase: &str, show: bool) -> ProgressBar {
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>6} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(phase.to_string());
    bar
}

fn tick(bar: &ProgressBar, bytes: &AtomicU64, rows: u64, started: Instant) {
    bar.set_position(bytes.load(Ordering::Relaxed));
    let rate = rows as f64 / started.elapsed().as_secs_f64().max(1e-9);
    bar.set_message(format!("{rows} rows, {rate:.0} rows/s"));
}

/// The first pass: validate, count, collect members, hash.
fn scan(reader: Box<dyn Read + Send>, file: &str, total: u64, show: bool) -> Result<Scan> {
    let hashing = Hashing::new(reader, true);
    let counter = hashing.counter();
    let mut recs = Records::open(hashing, file)?;
    let mut s = Scan {
        dialect: recs.header.dialect.to_string(),
        hash: String::new(),
        bytes: 0,
        rows_read: 0,
        rows_ok: 0,
        years: BTreeSet::new(),
        year_sizes: BTreeMap::new(),
        data_as_of: None,
        programs: Interner::new(),
        types: Interner::new(),
        funds: Interner::new(),
        quarantine: Vec::new(),
    };
    let bar = progress_bar(total, "scan", show);
    let started = Instant::now();
    let mut key = Vec::with_capacity(256);
    loop {
        let line = match recs.next_record()? {
            Next::End => break,
            Next::Bad { line, reason, raw } => {
                s.rows_read += 1;
                s.quarantine.push(QuarantinedRow {
                    line,
                    field: None,
                    reason,
                    raw,
                });
                continue;
            }
            Next::Row { line } => line,
        };
        s.rows_read += 1;
        if s.rows_read.is_multiple_of(16384) {
            tick(&bar, &counter, s.rows_read, started);
        }
        let conformed = recs.row().map_err(|reason| (None, reason)).and_then(|raw| {
            conform_row(&raw).map_err(|e| (e.field().map(|f| f.to_string()), e.to_string()))
        });
        match conformed {
            Err((field, reason)) => s.quarantine.push(QuarantinedRow {
                line,
                field,
                reason,
                raw: recs.current_raw(),
            }),
            Ok(row) => {
                s.rows_ok += 1;
                s.years.insert(row.fiscal_year);
                let size = s.year_sizes.entry(row.fiscal_year).or_default();
                size.rows += 1;
                size.gross_cents += row.amount.abs();
                if s.data_as_of.is_none() {
                    s.data_as_of = row.data_as_of.map(str::to_string);
                }
                program_key(&mut key, &row);
                s.programs.intern(&key, || row.program_member());
                type_key(&mut key, &row);
                s.types.intern(&key, || row.type_member());
                fund_key(&mut key, &row);
                s.funds.intern(&key, || row.fund_member());
            }
        }
    }
    bar.finish_and_clear();
    let hashing = recs.into_hashing();
    s.bytes = counter.load(Ordering::Relaxed);
    let digest = hashing.finish();
    s.hash = hex::encode(digest);
    Ok(s)
}

/// Dimension ids for the members of one file.
struct Keys {
    program: Vec<i32>,
    types: Vec<i32>,
    fund: Vec<i32>,
}

/// The facts stream: batches built by the write pass, read by the Delta writer.
#[derive(Debug)]
struct ChannelStream {
    schema: SchemaRef,
    rx: Mutex<
        Option<tokio::sync::mpsc::Receiver<std::result::Result<RecordBatch, DataFusionError>>>,
    >,
}

impl PartitionStream for ChannelStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rx = self.rx.lock().ok().and_then(|mut g| g.take());
        let stream = futures::stream::unfold(rx, |rx| async move {
            match rx {
                Some(mut rx) => rx.recv().await.map(|b| (b, Some(rx))),
                None => Some((
                    Err(DataFusionError::Execution(
                        "the facts stream was already consumed".into(),
                    )),
                    None,
                )),
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// Everything the write pass needs, moved to its blocking thread.
struct WritePass {
    file: String,
    keys: Keys,
    programs: Interner<ProgramMember>,
    types: Interner<TypeMember>,
    funds: Interner<FundMember>,
    load_id: i64,
    first_transaction_id: i64,
    batch_rows: usize,
    total: u64,
    show: bool,
}

impl WritePass {
    /// The second pass: re-read, build fact batches, send them to the writer.
    fn run(
        self,
        reader: Box<dyn Read + Send>,
        tx: tokio::sync::mpsc::Sender<std::result::Result<RecordBatch, DataFusionError>>,
    ) -> Result<u64> {
        let hashing = Hashing::new(reader, false);
        let counter = hashing.counter();
        let mut recs = Records::open(hashing, &self.file)?;
        let bar = progress_bar(self.total, "write", self.show);
        let started = Instant::now();
        let mut key = Vec::with_capacity(256);
        let mut next_id = self.first_transaction_id;
        let mut batch = FactBatch::with_capacity(self.batch_rows);
        let mut written = 0u64;
        let mut batches_sent = 0u64;
        loop {
            let line = match recs.next_record()? {
                Next::End => break,
                Next::Bad { .. } => continue,
                Next::Row { line } => line,
            };
            let Ok(raw) = recs.row() else { continue };
            let Ok(row) = conform_row(&raw) else { continue };
            let missing = || {
                WarehouseError::Other(format!("{}, line {line}: the file changed between the two passes of the load; load it again", self.file))
            };
            program_key(&mut key, &row);
            let p = self.programs.get(&key).ok_or_else(missing)?;
            type_key(&mut key, &row);
            let t = self.types.get(&key).ok_or_else(missing)?;
            fund_key(&mut key, &row);
            let f = self.funds.get(&key).ok_or_else(missing)?;
            batch.push(
                next_id,
                &row,
                [
                    self.keys.program[p as usize],
                    self.keys.types[t as usize],
                    self.keys.fund[f as usize],
                ],
                line,
            );
            next_id += 1;
            written += 1;
            if batch.len() >= self.batch_rows {
                send(
                    &tx,
                    batch.finish(self.load_id, &self.file)?,
                    &mut batches_sent,
                )?;
                tick(&bar, &counter, written, started);
            }
        }
        if batch.len() > 0 {
            send(
                &tx,
                batch.finish(self.load_id, &self.file)?,
                &mut batches_sent,
            )?;
        }
        bar.finish_and_clear();
        Ok(written)
    }
}

/// Hands a batch to the Delta writer (blocking while it is busy: back-pressure).
fn send(
    tx: &tokio::sync::mpsc::Sender<std::result::Result<RecordBatch, DataFusionError>>,
    batch: RecordBatch,
    sent: &mut u64,
) -> Result<()> {
    tx.blocking_send(Ok(batch))
        .map_err(|_| WarehouseError::Other("the Delta writer stopped early".into()))?;
    *sent += 1;
    if *sent == 1 {
        failpoint::hit("mid-facts");
    }
    Ok(())
}

/// Columns of `report.transaction` under construction.
struct FactBatch {
    transaction_id: Vec<i64>,
    fiscal_year: Vec<i32>,
    program_id: Vec<i32>,
    type_id: Vec<i32>,
    fund_id: Vec<i32>,
    finance_id: Vec<i32>,
    amount: Vec<i128>,
    source_line: Vec<i64>,
    /// Index into `as_of_values` per row: files carry one or a few timestamps, so each
    /// distinct one is kept once per batch.
    data_as_of: Vec<Option<u32>>,
    as_of_values: Vec<String>,
}

impl FactBatch {
    fn with_capacity(n: usize) -> Self {
        FactBatch {
            transaction_id: Vec::with_capacity(n),
            fiscal_year: Vec::with_capacity(n),
            program_id: Vec::with_capacity(n),
            type_id: Vec::with_capacity(n),
            fund_id: Vec::with_capacity(n),
            finance_id: Vec::with_capacity(n),
            amount: Vec::with_capacity(n),
            source_line: Vec::with_capacity(n),
            data_as_of: Vec::with_capacity(n),
            as_of_values: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.transaction_id.len()
    }

    fn push(&mut self, id: i64, row: &Row, [p, t, f]: [i32; 3], line: u64) {
        self.transaction_id.push(id);
        self.fiscal_year.push(row.fiscal_year);
        self.program_id.push(p);
        self.type_id.push(t);
        self.fund_id.push(f);
        self.finance_id.push(row.finance_id);
        self.amount.push(row.amount);
        self.source_line.push(line as i64);
        let index = row
            .data_as_of
            .map(|v| match self.as_of_values.iter().rposition(|s| s == v) {
                Some(i) => i as u32,
                None => {
                    self.as_of_values.push(v.to_string());
                    (self.as_of_values.len() - 1) as u32
                }
            });
        self.data_as_of.push(index);
    }

    fn finish(&mut self, load_id: i64, file: &str) -> Result<RecordBatch> {
        let n = self.len();
        let amount = Decimal128Array::from(std::mem::take(&mut self.amount))
            .with_precision_and_scale(
                citybooks_model::money::PRECISION,
                citybooks_model::money::SCALE,
            )?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(std::mem::take(&mut self.transaction_id))),
            Arc::new(Int32Array::from(std::mem::take(&mut self.fiscal_year))),
            Arc::new(Int32Array::from(std::mem::take(&mut self.program_id))),
            Arc::new(Int32Array::from(std::mem::take(&mut self.type_id))),
            Arc::new(Int32Array::from(std::mem::take(&mut self.fund_id))),
            Arc::new(Int32Array::from(std::mem::take(&mut self.finance_id))),
            Arc::new(amount),
            Arc::new(Int64Array::from(vec![load_id; n])),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(file, n))),
            Arc::new(Int64Array::from(std::mem::take(&mut self.source_line))),
            Arc::new(
                self.data_as_of
                    .iter()
                    .map(|i| i.map(|i| self.as_of_values[i as usize].as_str()))
                    .collect::<StringArray>(),
            ),
        ];
        let cap = self.transaction_id.capacity().max(n);
        *self = FactBatch::with_capacity(cap);
        Ok(RecordBatch::try_new(Table::Transaction.schema(), columns)?)
    }
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn int_arr(v: Vec<i32>) -> ArrayRef {
    Arc::new(Int32Array::from(v))
}

fn str_arr<'a>(v: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

/// New rows of a dimension table, built from the members' attributes in schema order.
fn dimension_batch<M: Member>(rows: &[(i32, M)]) -> Result<RecordBatch> {
    let schema = M::TABLE.schema();
    let attributes: Vec<Vec<String>> = rows.iter().map(|(_, m)| m.attributes()).collect();
    let mut columns = vec![int_arr(rows.iter().map(|r| r.0).collect())];
    for (i, field) in schema.fields().iter().skip(1).enumerate() {
        let values = attributes.iter().map(|a| a[i].as_str());
        columns.push(match field.data_type() {
            arrow::datatypes::DataType::Int32 => {
                int_arr(values.map(|v| v.parse().unwrap_or_default()).collect())
            }
            _ => str_arr(values),
        });
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The rows of a dimension table as (id, member).
fn parse_members<M: Member>(b: &RecordBatch) -> Result<Vec<(i32, M)>> {
    let schema = M::TABLE.schema();
    let id = ids(b, schema.field(0).name())?;
    let columns: Vec<Vec<Option<String>>> = schema
        .fields()
        .iter()
        .skip(1)
        .map(|f| strings(b, f.name()))
        .collect::<Result<_>>()?;
    (0..b.num_rows())
        .map(|r| {
            let values: Vec<String> = columns
                .iter()
                .map(|c| c[r].clone().unwrap_or_default())
                .collect();
            let member = M::from_attributes(&values).ok_or_else(|| {
                WarehouseError::Other(format!(
                    "{}: row {} does not fit its schema",
                    M::TABLE.qualified_name(),
                    id[r]
                ))
            })?;
            Ok((id[r], member))
        })
        .collect()
}

fn quarantine_batch(load_id: i64, file: &str, rows: &[QuarantinedRow]) -> Result<RecordBatch> {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![load_id; rows.len()])),
        str_arr(rows.iter().map(|_| file)),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.line as i64).collect::<Vec<_>>(),
        )),
        Arc::new(
            rows.iter()
                .map(|r| r.field.as_deref())
                .collect::<StringArray>(),
        ),
        str_arr(rows.iter().map(|r| r.reason.as_str())),
        str_arr(rows.iter().map(|r| r.raw.as_str())),
    ];
    Ok(RecordBatch::try_new(Table::Quarantine.schema(), cols)?)
}

async fn query_batches(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// The largest value of `column` in the rows of `sql` (0 when there are none).
pub(crate) async fn max_of(ctx: &SessionContext, sql: &str, column: &str) -> Result<i64> {
    let batches = query_batches(ctx, sql).await?;
    Ok(batches
        .iter()
        .map(|b| ints(b, column))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .flatten()
        .max()
        .unwrap_or(0))
}

/// Existing members of a dimension, by member, and the largest id in use.
async fn existing<M: Member>(ctx: &SessionContext) -> Result<(HashMap<M, i32>, i32)> {
    let sql = format!("select * from {}", M::TABLE.qualified_name());
    let mut map = HashMap::new();
    let mut max = 0;
    for b in query_batches(ctx, &sql).await? {
        for (id, m) in parse_members::<M>(&b)? {
            max = max.max(id);
            map.insert(m, id);
        }
    }
    Ok((map, max))
}

fn ids(b: &RecordBatch, name: &str) -> Result<Vec<i32>> {
    Ok(ints(b, name)?
        .into_iter()
        .map(|v| v.unwrap_or_default() as i32)
        .collect())
}

/// Gives every conformed member an id: its existing one, or the next free one (in
/// the order the file first mentions them). Returns ids per interned member and the
/// new rows for the dimension table.
fn assign<M: Clone + std::hash::Hash + Eq>(
    interned: &Interner<M>,
    conform: impl Fn(&M) -> M,
    existing: &mut HashMap<M, i32>,
    mut max: i32,
) -> (Vec<i32>, Vec<(i32, M)>) {
    let mut keys = Vec::with_capacity(interned.members.len());
    let mut new = Vec::new();
    for (m, _) in &interned.members {
        let c = conform(m);
        let id = match existing.get(&c) {
            Some(id) => *id,
            None => {
                max += 1;
                existing.insert(c.clone(), max);
                new.push((max, c));
                max
            }
        };
        keys.push(id);
    }
    (keys, new)
}

/// The earlier load whose content and effect this file repeats, if any: same content
/// hash, and no later load replaced any of its fiscal years.
fn repeats<'a>(loads: &'a [LoadRecord], hash: &str) -> Option<&'a LoadRecord> {
    let last = loads
        .iter()
        .rev()
        .find(|l| l.is_loaded() && l.content_hash == hash)?;
    let years: BTreeSet<i32> = last.years().into_iter().collect();
    let overwritten = loads
        .iter()
        .filter(|l| l.is_loaded() && l.load_id > last.load_id)
        .any(|l| l.years().iter().any(|y| years.contains(y)));
    (!overwritten).then_some(last)
}

/// Rows and gross amount per fiscal year of `years` in the warehouse now.
async fn year_sizes(
    ctx: &SessionContext,
    years: &BTreeSet<i32>,
) -> Result<BTreeMap<i32, YearSize>> {
    if years.is_empty() {
        return Ok(BTreeMap::new());
    }
    let list = years
        .iter()
        .map(|y| y.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!("select fiscal_year, count(*) as n, sum(abs(amount)) as gross from report.transaction where fiscal_year in ({list}) group by fiscal_year");
    let mut sizes = BTreeMap::new();
    for b in query_batches(ctx, &sql).await? {
        let years = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Int32)?;
        let years = years
            .as_any()
            .downcast_ref::<Int32Array>()
            .ok_or_else(|| WarehouseError::Other("fiscal_year is not an integer".into()))?;
        let rows = ints(&b, "n")?;
        let gross = b
            .column(2)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .ok_or_else(|| WarehouseError::Other("the gross amount is not a decimal".into()))?;
        for (i, n) in rows.iter().enumerate() {
            sizes.insert(
                years.value(i),
                YearSize {
                    rows: n.unwrap_or(0).max(0) as u64,
                    gross_cents: if arrow::array::Array::is_null(gross, i) {
                        0
                    } else {
                        gross.value(i)
                    },
                },
            );
        }
    }
    Ok(sizes)
}

/// Where `citybooks load` keeps a file it was given: `raw/cli/<UTC time>-<name>`.
fn raw_cli_path(name: &str) -> String {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
    format!("raw/cli/{stamp}-{name}")
}

fn years_text(years: &BTreeSet<i32>) -> String {
    years
        .iter()
        .map(|y| y.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl Warehouse {
    /// This warehouse, replacing the fiscal years of every file it loads even when that
    /// shrinks one past `[load] max_shrink_percent` (`citybooks load --replace-years`).
    pub fn replacing_years(mut self) -> Warehouse {
        self.replace_years = true;
        self
    }

    /// Settles held load `load_id`: loads its raw file anyway (its fiscal years are
    /// replaced, as a new load), or with `discard` records that it was let go.
    pub async fn release(
        &self,
        load_id: i64,
        discard: bool,
        show_progress: bool,
    ) -> Result<LoadReport> {
        let loads = self.loads().await?;
        let held = loads
            .iter()
            .find(|l| l.load_id == load_id)
            .ok_or(WarehouseError::NoSuchLoad(load_id))?;
        if !held.is_held() {
            return Err(WarehouseError::Other(format!(
                "load {load_id} was not held (its status: {})",
                held.status
            )));
        }
        if !crate::loads::waiting(&loads)
            .iter()
            .any(|l| l.load_id == load_id)
        {
            return Err(WarehouseError::Other(format!(
                "held load {load_id} was already released or discarded (see meta.loads)"
            )));
        }
        if !discard {
            return self
                .clone()
                .replacing_years()
                .load_object(&held.source_file, false, show_progress)
                .await;
        }
        let clock = Instant::now();
        let started = now_micros();
        let ttl = std::time::Duration::from_secs(self.config.lease_secs.max(1));
        let lease = self
            .store()
            .acquire_lease(
                WRITER_LEASE,
                &format!("discard of held load {load_id}"),
                ttl,
                |holder| tracing::warn!("waiting for the writer lease, held by {holder}"),
            )
            .await?;
        let result = async {
            let ctx = self.session(None).await?;
            let max_load = max_of(&ctx, "select max(load_id) as m from meta.loads", "m").await?;
            let report = LoadReport {
                load_id: max_load + 1,
                status: LoadStatus::Discarded,
                source_file: held.source_file.clone(),
                content_hash: held.content_hash.clone(),
                dialect: Some(held.dialect.clone()),
                bytes: 0,
                rows_read: 0,
                rows_loaded: 0,
                rows_quarantined: 0,
                years_replaced: Vec::new(),
                data_as_of: held.data_as_of.clone(),
                conformed: Vec::new(),
                new_members: BTreeMap::new(),
                quarantine_sample: Vec::new(),
                error: None,
                hold: Some(format!("held load {load_id} let go without loading it")),
                seconds: 0.0,
                lease_wait: lease.waited.clone(),
            };
            self.end_early(&lease, report, BTreeMap::new(), started, clock)
                .await
        }
        .await;
        lease.release().await;
        result.map(|mut r: LoadReport| {
            r.seconds = clock.elapsed().as_secs_f64();
            r
        })
    }

    /// Loads a local file: copies it into the store under `raw/cli/`, then loads it.
    pub async fn load_path(&self, path: &Path, show_progress: bool) -> Result<LoadReport> {
        if !path.is_file() {
            return Err(WarehouseError::Io {
                file: path.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "upload.csv".into());
        let rel = raw_cli_path(&name);
        self.store().put_file(&rel, path).await?;
        failpoint::hit("after-raw");
        self.load_object(&rel, true, show_progress).await
    }

    /// Loads a source given as a local path or an `s3://` URL.
    pub async fn load_source(&self, source: &str, show_progress: bool) -> Result<LoadReport> {
        if let Some(rel) = self.store().relative(source) {
            return self.load_object(&rel, false, show_progress).await;
        }
        if source.starts_with("s3://") {
            let reader = self.store().foreign_reader(source).await?;
            let name = source
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("upload.csv")
                .to_string();
            return self.load_reader(reader, &name, show_progress).await;
        }
        self.load_path(Path::new(source), show_progress).await
    }

    /// Stores `reader` under `raw/cli/<time>-<name>` and loads it.
    pub async fn load_reader<R: tokio::io::AsyncRead + Unpin>(
        &self,
        reader: R,
        name: &str,
        show_progress: bool,
    ) -> Result<LoadReport> {
        let rel = raw_cli_path(name);
        self.store().put_stream(&rel, reader, |_| {}).await?;
        failpoint::hit("after-raw");
        self.load_object(&rel, true, show_progress).await
    }

    /// Loads a raw file already in the store. `copied` says the file was stored for this
    /// load alone, so a no-op load may remove it again (its content is in the store
    /// under the earlier load's name).
    pub async fn load_object(
        &self,
        rel: &str,
        copied: bool,
        show_progress: bool,
    ) -> Result<LoadReport> {
        let clock = Instant::now();
        let started = now_micros();
        let total = self.store().size(rel).await?;
        let store = self.store().clone();
        let (file, file2) = (rel.to_string(), rel.to_string());
        let scanned = tokio::task::spawn_blocking(move || {
            let reader = store.blocking_reader(&file)?;
            scan(reader, &file, total, show_progress)
        })
        .await
        .map_err(|e| WarehouseError::Other(format!("the scan of {file2} stopped: {e}")))?;
        // Everything from here reads ids and members and commits: one writer at a time
        // on the store, whichever process or host it runs in.
        let ttl = std::time::Duration::from_secs(self.config.lease_secs.max(1));
        let lease = self
            .store()
            .acquire_lease(WRITER_LEASE, &format!("load of {rel}"), ttl, |holder| {
                tracing::warn!("{rel}: waiting for the writer lease, held by {holder}")
            })
            .await?;
        let result = self
            .load_scanned(
                rel,
                copied,
                show_progress,
                total,
                scanned,
                &lease,
                clock,
                started,
            )
            .await;
        lease.release().await;
        result
    }

    /// The part of a load that holds the writer lease: decide ids and members from the
    /// warehouse as it is now, commit, record.
    #[allow(clippy::too_many_arguments)]
    async fn load_scanned(
        &self,
        rel: &str,
        copied: bool,
        show_progress: bool,
        total: u64,
        scanned: Result<Scan>,
        lease: &Lease,
        clock: Instant,
        started: i64,
    ) -> Result<LoadReport> {
        let mut report = LoadReport {
            load_id: 0,
            status: LoadStatus::Failed,
            source_file: rel.to_string(),
            content_hash: String::new(),
            dialect: None,
            bytes: total,
            rows_read: 0,
            rows_loaded: 0,
            rows_quarantined: 0,
            years_replaced: Vec::new(),
            data_as_of: None,
            conformed: Vec::new(),
            new_members: BTreeMap::new(),
            quarantine_sample: Vec::new(),
            error: None,
            hold: None,
            seconds: 0.0,
            lease_wait: lease.waited.clone(),
        };
        let loads = self.loads().await?;
        let ctx = self.session(None).await?;
        let max_load = max_of(&ctx, "select max(load_id) as m from meta.loads union all select max(load_id) as m from report.transaction union all select max(load_id) as m from meta.quarantine", "m").await?;
        let load_id = max_load + 1;
        report.load_id = load_id;
        let mut scan = match scanned {
            Ok(s) => s,
            Err(e @ (WarehouseError::Header { .. } | WarehouseError::Csv { .. })) => {
                // Nothing loadable: record the attempt; the raw file stays in the store.
                report.error = Some(e.to_string());
                return self
                    .end_early(lease, report, BTreeMap::new(), started, clock)
                    .await;
            }
            Err(e) => return Err(e),
        };
        failpoint::hit("after-scan");
        report.content_hash = scan.hash.clone();
        report.dialect = Some(scan.dialect.clone());
        report.bytes = scan.bytes;
        report.rows_read = scan.rows_read;
        report.rows_quarantined = scan.quarantine.len() as u64;
        report.data_as_of = scan.data_as_of.clone();
        report.quarantine_sample = scan.quarantine.iter().take(SAMPLE).cloned().collect();

        if let Some(prev) = repeats(&loads, &scan.hash) {
            if copied && prev.source_file != rel {
                self.store().delete(rel).await?;
                report.source_file = prev.source_file.clone();
            }
            report.status = LoadStatus::Unchanged;
            report.rows_quarantined = 0;
            report.quarantine_sample.clear();
            report.years_replaced = prev.years();
            return self
                .end_early(lease, report, BTreeMap::new(), started, clock)
                .await;
        }

        let mut versions: BTreeMap<String, i64> = BTreeMap::new();
        if scan.rows_ok == 0 {
            report.error = Some(format!(
                "{rel}: nothing could be loaded: {} of {} rows quarantined (see meta.quarantine, load {load_id})",
                scan.quarantine.len(),
                scan.rows_read
            ));
            if !scan.quarantine.is_empty() {
                let v = self
                    .quarantine(lease, load_id, rel, &scan.quarantine, &loads)
                    .await?;
                versions.insert(Table::Quarantine.qualified_name(), v);
            }
            return self
                .end_early(lease, report, versions, started, clock)
                .await;
        }

        if !self.replace_years {
            let before = year_sizes(&ctx, &scan.years).await?;
            let shrunk = shrinking_years(&before, &scan.year_sizes, self.config.max_shrink_percent);
            if !shrunk.is_empty() {
                report.status = LoadStatus::Held;
                report.hold = Some(format!(
                    "{}; nothing was replaced. Load it anyway with `citybooks release {load_id}` (or `citybooks load --confirm {load_id}`), or let it go with `citybooks release {load_id} --discard`",
                    shrunk.join("; ")
                ));
                return self
                    .end_early(lease, report, BTreeMap::new(), started, clock)
                    .await;
            }
        }

        // Rule 6 over the distinct members, then stable keys.
        let mut chooser = CodeChooser::new();
        for (m, n) in &scan.programs.members {
            chooser.observe_program(m, *n);
        }
        for (m, n) in &scan.types.members {
            chooser.observe_type(m, *n);
        }
        for (m, n) in &scan.funds.members {
            chooser.observe_fund(m, *n);
        }
        report.conformed = chooser.decide().iter().map(|c| c.to_string()).collect();

        let (mut prog_map, prog_max) = existing::<ProgramMember>(&ctx).await?;
        let (mut type_map, type_max) = existing::<TypeMember>(&ctx).await?;
        let (mut fund_map, fund_max) = existing::<FundMember>(&ctx).await?;
        let (prog_keys, new_progs) = assign(
            &scan.programs,
            |m| chooser.conform_program(m),
            &mut prog_map,
            prog_max,
        );
        let (type_keys, new_types) = assign(
            &scan.types,
            |m| chooser.conform_type(m),
            &mut type_map,
            type_max,
        );
        let (fund_keys, new_funds) = assign(
            &scan.funds,
            |m| chooser.conform_fund(m),
            &mut fund_map,
            fund_max,
        );
        let finance_exists =
            max_of(&ctx, "select count(*) as m from report.finance", "m").await? > 0;

        let dims: Vec<(Table, usize, Option<RecordBatch>)> = vec![
            (
                Table::Program,
                new_progs.len(),
                (!new_progs.is_empty())
                    .then(|| dimension_batch(&new_progs))
                    .transpose()?,
            ),
            (
                Table::Type,
                new_types.len(),
                (!new_types.is_empty())
                    .then(|| dimension_batch(&new_types))
                    .transpose()?,
            ),
            (
                Table::Fund,
                new_funds.len(),
                (!new_funds.is_empty())
                    .then(|| dimension_batch(&new_funds))
                    .transpose()?,
            ),
        ];
        for (table, n, batch) in dims {
            report.new_members.insert(table.qualified_name(), n);
            if let Some(b) = batch {
                let v = self
                    .commit(
                        lease,
                        table,
                        Input::Batches(vec![b]),
                        WriteMode::Append,
                        load_id,
                    )
                    .await?;
                versions.insert(table.qualified_name(), v);
            }
        }
        if !finance_exists {
            let b = RecordBatch::try_new(
                Table::Finance.schema(),
                vec![
                    int_arr(vec![SPENDING_ID, REVENUE_ID]),
                    str_arr(["Spending", "Revenue"].into_iter()),
                ],
            )?;
            let v = self
                .commit(
                    lease,
                    Table::Finance,
                    Input::Batches(vec![b]),
                    WriteMode::Append,
                    load_id,
                )
                .await?;
            versions.insert(Table::Finance.qualified_name(), v);
            report
                .new_members
                .insert(Table::Finance.qualified_name(), 2);
        }
        failpoint::hit("after-dimensions");

        // The facts: streamed from the second pass into one replacing commit.
        let first_transaction_id = max_of(
            &ctx,
            "select max(transaction_id) as m from report.transaction",
            "m",
        )
        .await?
            + 1;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let schema = Table::Transaction.schema();
        let stream = ChannelStream {
            schema: schema.clone(),
            rx: Mutex::new(Some(rx)),
        };
        let provider = StreamingTable::try_new(schema, vec![Arc::new(stream)])?;
        let plan = LogicalPlanBuilder::scan(
            "incoming_facts",
            datafusion::datasource::provider_as_source(Arc::new(provider)),
            None,
        )?
        .build()?;
        let pass = WritePass {
            file: rel.to_string(),
            keys: Keys {
                program: prog_keys,
                types: type_keys,
                fund: fund_keys,
            },
            programs: std::mem::replace(&mut scan.programs, Interner::new()),
            types: std::mem::replace(&mut scan.types, Interner::new()),
            funds: std::mem::replace(&mut scan.funds, Interner::new()),
            load_id,
            first_transaction_id,
            batch_rows: self.config.batch_rows.max(1024),
            total,
            show: show_progress,
        };
        let store = self.store().clone();
        let file = rel.to_string();
        let producer = tokio::task::spawn_blocking(move || {
            let err_tx = tx.clone();
            let result = store
                .blocking_reader(&file)
                .map_err(WarehouseError::from)
                .and_then(|r| pass.run(r, tx));
            if let Err(e) = &result {
                let _ = err_tx.blocking_send(Err(DataFusionError::External(e.to_string().into())));
            }
            result
        });
        let predicate =
            col("fiscal_year").in_list(scan.years.iter().map(|y| lit(*y)).collect(), false);
        let committed = self
            .commit(
                lease,
                Table::Transaction,
                Input::Plan(plan),
                WriteMode::Replace(predicate),
                load_id,
            )
            .await;
        let produced = producer
            .await
            .map_err(|e| WarehouseError::Other(format!("the write pass of {rel} stopped: {e}")))?;
        let written = produced?;
        let v = committed?;
        versions.insert(Table::Transaction.qualified_name(), v);
        failpoint::hit("after-facts");
        if written != scan.rows_ok {
            return Err(WarehouseError::Other(format!(
                "{rel}: the scan accepted {} rows but the write pass wrote {written}; the file changed during the load",
                scan.rows_ok
            )));
        }

        if !scan.quarantine.is_empty() {
            let v = self
                .quarantine(lease, load_id, rel, &scan.quarantine, &loads)
                .await?;
            versions.insert(Table::Quarantine.qualified_name(), v);
        }
        failpoint::hit("after-quarantine");

        report.status = LoadStatus::Loaded;
        report.rows_loaded = written;
        report.years_replaced = scan.years.iter().copied().collect();
        let versions = self.versions_now(versions).await?;
        self.record(lease, &report, &scan.years, started, versions)
            .await?;
        failpoint::hit("after-loads");
        report.seconds = clock.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Commits the quarantined rows of load `load_id`. The commit also removes rows of
    /// loads that crashed before their `meta.loads` row (ids above the last recorded
    /// load), so a load redone after a crash leaves its bad rows once.
    async fn quarantine(
        &self,
        lease: &Lease,
        load_id: i64,
        rel: &str,
        rows: &[QuarantinedRow],
        loads: &[LoadRecord],
    ) -> Result<i64> {
        let b = quarantine_batch(load_id, rel, rows)?;
        let last_recorded = loads.iter().map(|l| l.load_id).max().unwrap_or(0);
        let orphans = col("load_id").gt(lit(last_recorded));
        self.commit(
            lease,
            Table::Quarantine,
            Input::Batches(vec![b]),
            WriteMode::Replace(orphans),
            load_id,
        )
        .await
    }

    /// The versions after this load: what it committed, and the current version of
    /// every table it did not touch.
    async fn versions_now(&self, mut versions: BTreeMap<String, i64>) -> Result<String> {
        for table in Table::ALL {
            if table == Table::Loads || versions.contains_key(&table.qualified_name()) {
                continue;
            }
            if let Some(t) = self.table(table).await? {
                if let Some(v) = t.version() {
                    versions.insert(table.qualified_name(), v as i64);
                }
            }
        }
        serde_json::to_string(&versions).map_err(|e| WarehouseError::Other(e.to_string()))
    }

    /// Ends a load that replaces no fiscal year (nothing loadable, unchanged, held):
    /// records it in `meta.loads` with `committed` (what it did commit, e.g. its
    /// quarantined rows) and the versions of every other table, and returns its report.
    async fn end_early(
        &self,
        lease: &Lease,
        mut report: LoadReport,
        committed: BTreeMap<String, i64>,
        started: i64,
        clock: Instant,
    ) -> Result<LoadReport> {
        let versions = self.versions_now(committed).await?;
        self.record(lease, &report, &BTreeSet::new(), started, versions)
            .await?;
        report.seconds = clock.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Appends the load's row to `meta.loads`.
    async fn record(
        &self,
        lease: &Lease,
        report: &LoadReport,
        years: &BTreeSet<i32>,
        started: i64,
        versions: String,
    ) -> Result<()> {
        let status = match report.status {
            LoadStatus::Loaded => LOADED.to_string(),
            LoadStatus::Unchanged => UNCHANGED.to_string(),
            LoadStatus::Failed => format!("{FAILED}: {}", report.error.clone().unwrap_or_default()),
            LoadStatus::Held => format!("{HELD}: {}", report.hold.clone().unwrap_or_default()),
            LoadStatus::Discarded => {
                format!("{DISCARDED}: {}", report.hold.clone().unwrap_or_default())
            }
        };
        let row = LoadRecord {
            load_id: report.load_id,
            source_file: report.source_file.clone(),
            content_hash: report.content_hash.clone(),
            dialect: report.dialect.clone().unwrap_or_default(),
            status,
            rows_read: report.rows_read as i64,
            rows_loaded: report.rows_loaded as i64,
            rows_quarantined: report.rows_quarantined as i64,
            years_replaced: years_text(years),
            data_as_of: report.data_as_of.clone(),
            conformed: serde_json::to_string(&report.conformed).unwrap_or_else(|_| "[]".into()),
            table_versions: versions,
            started,
            finished: now_micros(),
        };
        let batch = LoadRecord::to_batch(&[row])?;
        self.commit(
            lease,
            Table::Loads,
            Input::Batches(vec![batch]),
            WriteMode::Append,
            report.load_id,
        )
        .await?;
        Ok(())
    }
}

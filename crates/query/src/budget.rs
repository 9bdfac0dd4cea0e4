//! What one query may take from the server: memory, disk for spilling, and a slot
//! among the queries running at once (like Redshift's workload management).
//!
//! - **Memory.** Every query gets its own DataFusion memory pool ([`QueryPool`]) of
//!   `[sql] query_memory_mib`, drawn from one pool for the whole server of
//!   `[sql] server_memory_mib`. Operators that can spill (sorts, grouped aggregates)
//!   spill to disk when their pool is full (at most `[sql] query_spill_mib` per
//!   query); the others fail the query with [`DataFusionError::ResourcesExhausted`]
//!   and a sentence naming the setting — SQLSTATE 53200 on the wire, HTTP 507.
//! - **Values the pool cannot see.** The pool counts what operators hold (hash tables,
//!   sort buffers, aggregate states), not the batches between them. The functions that
//!   can turn a short input into a huge output in one call (`repeat`, `lpad`, `rpad`,
//!   `replace`, `array_repeat`, `range`, `generate_series`) are replaced by bounded
//!   ones ([`Budget::install`]) that check the size of what they would build before
//!   building it: no more than the query's memory per batch, and no single value
//!   larger than a batch's share of it (`query_memory_mib` / 8,192 rows: 128 KiB by
//!   default), since a constant value is copied into every row of a batch.
//! - **The whole process.** Not every operator tells the pool what it holds, and
//!   the batches between operators are not counted at all. The binary counts its
//!   heap ([`CountingAllocator`]); a watchdog ([`Budget::spawn_watchdog`]) stops every
//!   running ad-hoc query (53200) when the heap passes `[sql] memory_stop_mib`.
//! - **Slots.** Ad-hoc queries (psql and every PostgreSQL client, `POST /api/sql`)
//!   take one of `[sql] max_concurrent_queries` slots and wait at most
//!   `[sql] queue_timeout_secs` for one ([`Budget::slot`]); the dashboard's own
//!   requests do not queue behind them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use citybooks_store::config::SqlConfig;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::{MemoryLimit, MemoryPool, MemoryReservation};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::stop_points::{InsertStopPoints, Stops};

const MIB: usize = 1 << 20;

/// The limits of `[sql]`, shared by every query of one server.
#[derive(Debug, Clone)]
pub struct Budget {
    server: Arc<ServerPool>,
    query_bytes: usize,
    spill_bytes: u64,
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    queue_timeout: Duration,
    stop_bytes: usize,
    watched: Arc<Watched>,
    stops: Arc<Stops>,
}

/// The running ad-hoc queries the watchdog may stop.
#[derive(Debug, Default)]
struct Watched {
    next: AtomicU64,
    tokens: Mutex<HashMap<u64, CancellationToken>>,
}

/// An ad-hoc query under the watchdog: its token fires when the watchdog stops it.
/// Dropping it ends the watch.
#[derive(Debug)]
pub struct Watch {
    id: u64,
    pub stopped: CancellationToken,
    watched: Arc<Watched>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.watched
            .tokens
            .lock()
            .expect("watched queries")
            .remove(&self.id);
    }
}

/// What the watchdog's stop says to the query's client.
pub fn stopped_for_memory(stop_mib: usize) -> String {
    format!("out of memory: the server's memory passed {stop_mib} MiB ([sql] memory_stop_mib) and every running query was stopped; try again")
}

/// Heap bytes of the process, counted by [`CountingAllocator`] when the binary
/// installs it (0 otherwise).
static HEAP: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes it holds for the process: what the
/// memory watchdog reads. Installed by the `citybooks` binary (`#[global_allocator]`).
pub struct CountingAllocator;

// SAFETY: every call is passed to the system allocator unchanged; only a counter is
// added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                HEAP.fetch_add(new_size - layout.size(), Ordering::Relaxed);
            } else {
                HEAP.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Heap bytes the process holds now (0 without [`CountingAllocator`]).
pub fn heap_bytes() -> usize {
    HEAP.load(Ordering::Relaxed)
}

/// A query waited longer than `[sql] queue_timeout_secs` for a slot.
#[derive(Debug, thiserror::Error)]
#[error("{max} queries are already running ([sql] max_concurrent_queries = {max}) and none finished within {} s ([sql] queue_timeout_secs); try again shortly", .waited.as_secs())]
pub struct QueueFull {
    pub max: usize,
    pub waited: Duration,
}

impl Budget {
    /// The limits `[sql]` sets.
    pub fn from_config(sql: &SqlConfig) -> Budget {
        Budget::new(
            sql.query_memory_mib,
            sql.server_memory_mib,
            sql.query_spill_mib,
            sql.max_concurrent_queries,
            Duration::from_secs(sql.queue_timeout_secs),
        )
        .with_memory_stop(sql.memory_stop_mib)
    }

    /// Stops the running ad-hoc queries when the heap passes `mib` (0: never).
    pub fn with_memory_stop(mut self, mib: usize) -> Budget {
        self.stop_bytes = mib.saturating_mul(MIB);
        self.stops = Arc::new(Stops::new(stopped_for_memory(mib)));
        self
    }

    /// The heap size at which the watchdog stops queries, in MiB (0: never).
    pub fn memory_stop_mib(&self) -> usize {
        self.stop_bytes / MIB
    }

    /// Puts an ad-hoc query under the watchdog.
    pub fn watch(&self) -> Watch {
        let id = self.watched.next.fetch_add(1, Ordering::Relaxed);
        let stopped = CancellationToken::new();
        self.watched
            .tokens
            .lock()
            .expect("watched queries")
            .insert(id, stopped.clone());
        Watch {
            id,
            stopped,
            watched: self.watched.clone(),
        }
    }

    /// Watches the heap (every 20 ms) and stops every watched query when it passes
    /// `[sql] memory_stop_mib`; then waits a second for their memory to come back.
    /// A thread of its own: the query runtime's workers may all be busy computing.
    pub fn spawn_watchdog(&self) -> Option<std::thread::JoinHandle<()>> {
        if self.stop_bytes == 0 {
            return None;
        }
        let (limit, watched, stops) = (self.stop_bytes, self.watched.clone(), self.stops.clone());
        tracing::info!(
            heap_mib = heap_bytes() / MIB,
            limit_mib = limit / MIB,
            "memory watchdog: running queries stop when the heap passes [sql] memory_stop_mib"
        );
        let watchdog = std::thread::Builder::new()
            .name("memory-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(20));
                let heap = heap_bytes();
                if heap <= limit {
                    continue;
                }
                let tokens: Vec<CancellationToken> = watched
                    .tokens
                    .lock()
                    .expect("watched queries")
                    .values()
                    .cloned()
                    .collect();
                tracing::warn!(
                    heap_mib = heap / MIB,
                    limit_mib = limit / MIB,
                    queries = tokens.len(),
                    "the heap passed [sql] memory_stop_mib: stopping the running queries"
                );
                // The stop points end the plans' streams at their next batch; the
                // tokens end the statements of clients waiting between batches.
                stops.stop();
                for t in tokens {
                    t.cancel();
                }
                std::thread::sleep(Duration::from_secs(1));
            });
        match watchdog {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::error!("the memory watchdog could not start: {e}");
                None
            }
        }
    }

    /// Limits in MiB; a server total below one query's memory is raised to it, and
    /// at least one query may run.
    pub fn new(
        query_mib: usize,
        server_mib: usize,
        spill_mib: usize,
        max_concurrent: usize,
        queue_timeout: Duration,
    ) -> Budget {
        let query_bytes = query_mib.max(1).saturating_mul(MIB);
        let server_bytes = server_mib.saturating_mul(MIB).max(query_bytes);
        let max_concurrent = max_concurrent.max(1);
        Budget {
            server: Arc::new(ServerPool {
                limit: server_bytes,
                used: AtomicUsize::new(0),
            }),
            query_bytes,
            spill_bytes: (spill_mib as u64).saturating_mul(MIB as u64),
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            queue_timeout,
            stop_bytes: 0,
            watched: Arc::default(),
            stops: Arc::default(),
        }
    }

    /// Bytes one query's operators may hold.
    pub fn query_bytes(&self) -> usize {
        self.query_bytes
    }

    /// Bytes all queries' operators hold now.
    pub fn server_reserved(&self) -> usize {
        self.server.used.load(Ordering::Relaxed)
    }

    /// Slots free now.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Waits for a slot for an ad-hoc query; the query holds it until the permit is
    /// dropped (after its last row).
    pub async fn slot(&self) -> Result<OwnedSemaphorePermit, QueueFull> {
        let waiting = self.slots.clone().acquire_owned();
        match tokio::time::timeout(self.queue_timeout, waiting).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(QueueFull {
                max: self.max_concurrent,
                waited: self.queue_timeout,
            }),
        }
    }

    /// A session for one query (or one connection's queries, one at a time): `ctx`'s
    /// tables, functions and settings — the same catalog, so new loads show in both —
    /// with a memory pool and a spill allowance of its own.
    pub fn session(&self, ctx: &SessionContext) -> DfResult<SessionContext> {
        let state = ctx.state();
        let pool = QueryPool {
            limit: self.query_bytes,
            used: AtomicUsize::new(0),
            server: self.server.clone(),
        };
        let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_max_temp_directory_size(self.spill_bytes),
            )
            .build_arc()?;
        let mut state = SessionStateBuilder::new_from_existing(state).with_runtime_env(runtime);
        if self.stop_bytes > 0 {
            state = state.with_physical_optimizer_rule(Arc::new(InsertStopPoints {
                stops: self.stops.clone(),
            }));
        }
        Ok(SessionContext::new_with_state(state.build()))
    }

    /// Replaces the functions that can build a huge value from a small input with
    /// bounded ones (see the module doc).
    pub fn install(&self, ctx: &SessionContext) {
        for name in Amplifier::NAMES {
            if let Ok(inner) = ctx.udf(name) {
                let bounded = Bounded {
                    inner,
                    kind: Amplifier::of(name),
                    limit: self.query_bytes,
                };
                ctx.register_udf(ScalarUDF::new_from_impl(bounded));
            }
        }
    }
}

/// Whether `e` (or what caused it) is a query that ran out of its memory.
pub fn out_of_memory(e: &DataFusionError) -> bool {
    matches!(e.find_root(), DataFusionError::ResourcesExhausted(_))
}

/// The memory every query of the server holds together.
#[derive(Debug)]
struct ServerPool {
    limit: usize,
    used: AtomicUsize,
}

/// Adds `additional` to `used` unless that passes `limit`.
fn try_add(used: &AtomicUsize, additional: usize, limit: usize) -> bool {
    used.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
        now.checked_add(additional).filter(|total| *total <= limit)
    })
    .is_ok()
}

/// One query's memory pool: at most `limit` bytes, and only while the server's pool
/// has them.
#[derive(Debug)]
pub struct QueryPool {
    limit: usize,
    used: AtomicUsize,
    server: Arc<ServerPool>,
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "query pool: {} of {} MiB",
            self.used.load(Ordering::Relaxed) / MIB,
            self.limit / MIB
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "citybooks query pool"
    }

    fn grow(&self, _reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::SeqCst);
        self.server.used.fetch_add(additional, Ordering::SeqCst);
    }

    fn shrink(&self, _reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::SeqCst);
        self.server.used.fetch_sub(shrink, Ordering::SeqCst);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        if !try_add(&self.used, additional, self.limit) {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the query needs more than its {} MiB of memory ([sql] query_memory_mib; {} wanted {} MiB more); narrow it with a filter, fewer columns or an aggregate",
                self.limit / MIB,
                reservation.consumer().name(),
                additional.div_ceil(MIB),
            )));
        }
        if !try_add(&self.server.used, additional, self.server.limit) {
            self.used.fetch_sub(additional, Ordering::SeqCst);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the queries running now hold the server's {} MiB of query memory ([sql] server_memory_mib); try again when fewer run",
                self.server.limit / MIB
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

/// How a bounded function's output size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Amplifier {
    /// `repeat(text, n)`: `len(text) * n` bytes.
    Repeat,
    /// `lpad(text, n [, fill])`, `rpad(...)`: `n` characters of up to 4 bytes.
    Pad,
    /// `replace(text, from, to)`: every match of `from` (every gap when empty) grows
    /// by `len(to)`.
    Replace,
    /// `array_repeat(value, n)`: `n` elements of at least 8 bytes.
    ArrayRepeat,
    /// `range(start, stop [, step])`, `generate_series(...)` as arrays: 8 bytes per
    /// element.
    Series,
}

impl Amplifier {
    const NAMES: [&'static str; 7] = [
        "repeat",
        "lpad",
        "rpad",
        "replace",
        "array_repeat",
        "range",
        "generate_series",
    ];

    fn of(name: &str) -> Amplifier {
        match name {
            "repeat" => Amplifier::Repeat,
            "lpad" | "rpad" => Amplifier::Pad,
            "replace" => Amplifier::Replace,
            "array_repeat" => Amplifier::ArrayRepeat,
            _ => Amplifier::Series,
        }
    }

    /// An upper bound of the bytes each row of one call over `args` builds (`None`:
    /// unknown, the arguments are not of the expected types; the function itself
    /// then decides).
    fn row_bytes(self, args: &[ColumnarValue], rows: usize) -> Option<Vec<u128>> {
        let column = |i: usize| -> Option<ArrayRef> { args.get(i)?.to_array(rows).ok() };
        let mut sizes = Vec::with_capacity(rows);
        match self {
            Amplifier::Repeat | Amplifier::Pad | Amplifier::ArrayRepeat => {
                let (first, counts) = (column(0)?, int64s(&column(1)?)?);
                for (i, n) in counts.iter().enumerate() {
                    let per = match self {
                        Amplifier::Repeat => text_len(&first, i)? as u128,
                        Amplifier::Pad => 4,
                        _ => 8,
                    };
                    sizes.push((n.unwrap_or(0).max(0) as u128).saturating_mul(per));
                }
            }
            Amplifier::Replace => {
                let (text, from, to) = (column(0)?, column(1)?, column(2)?);
                for i in 0..rows {
                    let len = text_len(&text, i)? as u128;
                    let from_len = text_len(&from, i)? as u128;
                    let to_len = text_len(&to, i)? as u128;
                    // An empty `from` matches in every gap.
                    let matches = len.checked_div(from_len).unwrap_or(len + 1);
                    sizes.push(len + matches.saturating_mul(to_len));
                }
            }
            Amplifier::Series => {
                let first = int64s(&column(0)?)?;
                if args.len() < 2 {
                    // range(stop): from 0.
                    for stop in first {
                        sizes.push(stop.unwrap_or(0).max(0) as u128 * 8);
                    }
                    return Some(sizes);
                }
                let stop = int64s(&column(1)?)?;
                let step = match args.len() {
                    2 => None,
                    _ => Some(int64s(&column(2)?)?),
                };
                for i in 0..rows {
                    let (Some(a), Some(b)) = (first[i], stop[i]) else {
                        sizes.push(0);
                        continue;
                    };
                    let step = step.as_ref().and_then(|s| s[i]).unwrap_or(1);
                    let span = (b as i128 - a as i128).unsigned_abs();
                    let count = span / step.unsigned_abs().max(1) as u128 + 1;
                    sizes.push(count.saturating_mul(8));
                }
            }
        }
        Some(sizes)
    }
}

/// The values of an integer column as i64 (None for anything else).
fn int64s(array: &ArrayRef) -> Option<Vec<Option<i64>>> {
    let array = arrow::compute::cast(array, &DataType::Int64).ok()?;
    let array = array.as_primitive::<Int64Type>();
    Some(array.iter().collect())
}

/// The byte length of row `i` of a text column (0 for null; None if not text).
fn text_len(array: &ArrayRef, i: usize) -> Option<usize> {
    if array.is_null(i) {
        return Some(0);
    }
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(i).len()),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(i).len()),
        DataType::Utf8View => Some(array.as_string_view().value(i).len()),
        _ => None,
    }
}

/// A function that refuses to build more than `limit` bytes in one call.
#[derive(Debug)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    kind: Amplifier,
    limit: usize,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner && self.kind == other.kind && self.limit == other.limit
    }
}

impl Eq for Bounded {}

impl std::hash::Hash for Bounded {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.kind.hash(state);
        self.limit.hash(state);
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(
        &self,
        args: ReturnFieldArgs,
    ) -> DfResult<arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        // A value is copied into every row of a batch when it is a constant (the
        // optimizer folds `repeat('y', 100000)` once, then the projection repeats it):
        // one value may take a batch's share of the query's memory.
        let batch = args.config_options.execution.batch_size.get().max(1) as u128;
        let value_limit = self.limit as u128 / batch;
        if let Some(sizes) = self.kind.row_bytes(&args.args, rows) {
            let largest = sizes.iter().copied().max().unwrap_or(0);
            let total = sizes.iter().fold(0u128, |t, s| t.saturating_add(*s));
            if largest > value_limit {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "{}() would build a value of {} KiB; one value may take at most {} KiB (the query's {} MiB of memory, [sql] query_memory_mib, over a batch of {batch} rows)",
                    self.inner.name(),
                    largest.div_ceil(1024),
                    value_limit / 1024,
                    self.limit / MIB,
                )));
            }
            if total > self.limit as u128 {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "{}() would build {} MiB in one batch of {rows} rows, more than the query's {} MiB of memory ([sql] query_memory_mib)",
                    self.inner.name(),
                    total.div_ceil(MIB as u128),
                    self.limit / MIB,
                )));
            }
        }
        self.inner.invoke_with_args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(query_mib: usize, server_mib: usize) -> Budget {
        Budget::new(query_mib, server_mib, 512, 2, Duration::from_millis(50))
    }

    async fn run(ctx: &SessionContext, sql: &str) -> DfResult<usize> {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }

    #[tokio::test]
    async fn a_query_past_its_memory_fails_with_a_sentence_and_the_next_one_runs() {
        let b = budget(16, 64);
        let base = SessionContext::new();
        b.install(&base);
        let ctx = b.session(&base).unwrap();
        // array_agg of 2 M strings of 100 bytes: ~200 MiB of aggregate state.
        let err = run(
            &ctx,
            "select array_agg(repeat('y', 100)) from generate_series(1, 2000000)",
        )
        .await
        .unwrap_err();
        assert!(out_of_memory(&err), "{err}");
        assert!(err.to_string().contains("query_memory_mib"), "{err}");
        // A failed query gives its memory back (its spawned tasks end soon after).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while b.server_reserved() != 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(b.server_reserved(), 0, "memory held after the failed query");
        assert_eq!(run(&ctx, "select 1").await.unwrap(), 1);
        // A sort of ~200 MiB of text in 128 MiB spills instead of failing (each
        // sorting partition keeps 10 MiB for its merge: sort_spill_reservation_bytes).
        let ctx = budget(128, 256).session(&base).unwrap();
        let sorted = ctx
            .sql("select v from (select repeat('x', 200) || cast(value as varchar) as v from generate_series(1, 1000000)) order by v desc")
            .await
            .unwrap();
        let plan = sorted.create_physical_plan().await.unwrap();
        let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
            .await
            .unwrap();
        assert_eq!(
            batches.iter().map(|b| b.num_rows()).sum::<usize>(),
            1_000_000
        );
        let mut spilled = 0;
        datafusion::physical_plan::accept(plan.as_ref(), &mut SpillCount(&mut spilled)).unwrap();
        assert!(spilled > 0, "the sort did not spill");
    }

    /// Adds up the spill counts of a plan's operators.
    struct SpillCount<'a>(&'a mut usize);

    impl datafusion::physical_plan::ExecutionPlanVisitor for SpillCount<'_> {
        type Error = DataFusionError;
        fn pre_visit(
            &mut self,
            plan: &dyn datafusion::physical_plan::ExecutionPlan,
        ) -> DfResult<bool> {
            *self.0 += plan.metrics().and_then(|m| m.spill_count()).unwrap_or(0);
            Ok(true)
        }
    }

    #[tokio::test]
    async fn amplifying_functions_are_checked_before_they_build() {
        let b = budget(16, 64);
        let ctx = SessionContext::new();
        b.install(&ctx);
        for sql in [
            "select length(repeat('y', 100000000))",
            "select length(lpad('y', 100000000))",
            "select length(rpad('y', 100000000, 'z'))",
            "select length(replace(repeat('y', 1000000), 'y', repeat('z', 100)))",
            "select cardinality(array_repeat(1, 100000000))",
            "select cardinality(range(1, 100000000))",
            "select cardinality(generate_series(1, 100000000))",
            "select cardinality(range(100000000))",
        ] {
            let err = run(&ctx, sql).await.unwrap_err();
            assert!(out_of_memory(&err), "{sql}: {err}");
        }
        // What fits still works, with the inner function's results.
        let small = ctx
            .sql("select repeat('ab', 3) as r, lpad('7', 3, '0') as p, replace('a-b', '-', '+') as x, cardinality(range(1, 10)) as n")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&small)
            .unwrap()
            .to_string();
        assert!(text.contains("ababab") && text.contains("007") && text.contains("a+b"));
        assert!(text.contains("| 9 "), "{text}");
    }

    #[tokio::test]
    async fn the_server_pool_bounds_queries_together() {
        let b = budget(16, 16);
        let base = SessionContext::new();
        let one = b.session(&base).unwrap();
        let pool = one.runtime_env().memory_pool.clone();
        let first =
            datafusion::execution::memory_pool::MemoryConsumer::new("first").register(&pool);
        first.try_grow(12 * MIB).unwrap();
        let two = b.session(&base).unwrap();
        let other = datafusion::execution::memory_pool::MemoryConsumer::new("second")
            .register(&two.runtime_env().memory_pool);
        let err = other.try_grow(8 * MIB).unwrap_err();
        assert!(err.to_string().contains("server_memory_mib"), "{err}");
        drop(first);
        other.try_grow(8 * MIB).unwrap();
        assert_eq!(b.server_reserved(), 8 * MIB);
    }

    #[tokio::test]
    async fn slots_queue_and_time_out_with_a_sentence() {
        let b = budget(16, 16);
        let first = b.slot().await.unwrap();
        let _second = b.slot().await.unwrap();
        let err = b.slot().await.unwrap_err();
        assert!(
            err.to_string().contains("max_concurrent_queries = 2"),
            "{err}"
        );
        drop(first);
        let _third = b.slot().await.unwrap();
    }
}

//! Where a running ad-hoc query sees the memory watchdog's stop.
//!
//! The watchdog ([`crate::budget::Budget::spawn_watchdog`]) stops queries by firing
//! their tokens, and the front doors end the client's statement when a token fires.
//! But a token is only seen when the task that runs the query gives control back to
//! tokio, and an operator that makes many rows out of few — a join, above all a cross
//! join — can go on emitting batches from what it already holds without ever doing so:
//! measured before this module, a three-way cross join under `array_agg` kept the heap
//! growing from the stop at 1 GiB to 2.8 GiB over seven more seconds (RELIABILITY.md).
//!
//! So every operator whose output is not bounded by its input (joins, unnest, a
//! recursive query) gets a [`StopPoint`] above it: each batch it passes up first checks
//! the watchdog's stop counter, and once that moved since the stream started, the
//! stream ends with [`DataFusionError::ResourcesExhausted`] (SQLSTATE 53200). The check
//! is one atomic load per batch. The rule runs after DataFusion's own, in ad-hoc
//! sessions only ([`crate::budget::Budget::session`]); the dashboard's fixed queries are
//! not stopped by the watchdog.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::config::ConfigOptions;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{Stream, StreamExt};

/// The watchdog's stops so far: a stream that started before the last one ends.
#[derive(Debug, Default)]
pub struct Stops {
    count: AtomicU64,
    /// What the stopped query's client reads.
    message: String,
}

impl Stops {
    /// No stop yet; `message` is the error a stopped stream ends with.
    pub fn new(message: String) -> Stops {
        Stops {
            count: AtomicU64::new(0),
            message,
        }
    }

    /// Stops every stream that started before now.
    pub fn stop(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    fn now(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Whether a batch can leave `plan` that is larger than what came in: joins (their
/// output is up to the product of their inputs), unnest and recursive queries.
fn grows(plan: &dyn ExecutionPlan) -> bool {
    let name = plan.name();
    name.ends_with("JoinExec") || name == "UnnestExec" || name == "RecursiveQueryExec"
}

/// The physical optimizer rule that puts a [`StopPoint`] above every operator that
/// [`grows`].
#[derive(Debug)]
pub struct InsertStopPoints {
    pub stops: Arc<Stops>,
}

impl PhysicalOptimizerRule for InsertStopPoints {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if !grows(node.as_ref()) {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(Arc::new(StopPoint {
                input: node,
                stops: self.stops.clone(),
            }) as Arc<dyn ExecutionPlan>))
        })
        .data()
    }

    fn name(&self) -> &str {
        "citybooks_stop_points"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Passes its input's batches up unchanged until the watchdog stops the query.
#[derive(Debug)]
pub struct StopPoint {
    input: Arc<dyn ExecutionPlan>,
    stops: Arc<Stops>,
}

impl DisplayAs for StopPoint {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StopPoint: [sql] memory_stop_mib")
    }
}

impl ExecutionPlan for StopPoint {
    fn name(&self) -> &str {
        "StopPoint"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children.pop().unwrap_or_else(|| self.input.clone());
        Ok(Arc::new(StopPoint {
            input,
            stops: self.stops.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let started = self.stops.now();
        let input = self.input.execute(partition, context)?;
        Ok(Box::pin(Stoppable {
            input: Some(input),
            stops: self.stops.clone(),
            started,
            schema: self.input.schema(),
        }))
    }
}

/// The stream of a [`StopPoint`]: `None` once it ended with the stop's error.
struct Stoppable {
    input: Option<SendableRecordBatchStream>,
    stops: Arc<Stops>,
    started: u64,
    schema: SchemaRef,
}

impl Stream for Stoppable {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.input.is_some() && self.stops.now() != self.started {
            // Dropping the input here lets go of what the operators below hold.
            self.input = None;
            return Poll::Ready(Some(Err(DataFusionError::ResourcesExhausted(
                self.stops.message.clone(),
            ))));
        }
        match self.input.as_mut() {
            Some(input) => input.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

impl RecordBatchStream for Stoppable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    /// A cross join ends within a batch per partition once the counter moves, with the
    /// message.
    #[tokio::test]
    async fn a_cross_join_ends_at_its_next_batch_after_a_stop() {
        let stops = Arc::new(Stops::new("stopped for memory".into()));
        let ctx = SessionContext::new();
        let state = datafusion::execution::session_state::SessionStateBuilder::new_from_existing(
            ctx.state(),
        )
        .with_physical_optimizer_rule(Arc::new(InsertStopPoints {
            stops: stops.clone(),
        }))
        .build();
        let ctx = SessionContext::new_with_state(state);
        let sql = "select a.value + b.value from generate_series(1, 100000) a, generate_series(1, 100000) b";
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let shown = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(false)
            .to_string();
        assert!(shown.contains("StopPoint"), "{shown}");
        let mut stream = datafusion::physical_plan::execute_stream(plan, ctx.task_ctx()).unwrap();
        // Rows flow before the stop...
        for _ in 0..3 {
            assert!(stream.next().await.unwrap().is_ok());
        }
        stops.stop();
        // ...and what was already computed above the stop point (a channel of the
        // repartition may hold a batch per partition) is followed by the error.
        let mut passed = 0;
        let err = loop {
            match stream
                .next()
                .await
                .expect("the stream ended without the stop")
            {
                Ok(_) => {
                    passed += 1;
                    assert!(passed <= 4, "{passed} batches after the stop");
                }
                Err(e) => break e,
            }
        };
        assert!(
            crate::budget::out_of_memory(&err) && err.to_string().contains("stopped for memory"),
            "{err}"
        );
        // Each partition's stop point ends its part with the same error: no rows
        // come after it.
        while let Some(item) = stream.next().await {
            assert!(item.is_err(), "rows after the stop");
        }
    }

    /// A query planned after a stop runs to its end.
    #[tokio::test]
    async fn a_stop_before_the_start_does_not_stop_the_query() {
        let stops = Arc::new(Stops::new("stopped".into()));
        stops.stop();
        let state = datafusion::execution::session_state::SessionStateBuilder::new_from_existing(
            SessionContext::new().state(),
        )
        .with_physical_optimizer_rule(Arc::new(InsertStopPoints { stops }))
        .build();
        let ctx = SessionContext::new_with_state(state);
        let rows = ctx
            .sql("select count(*) from generate_series(1, 300) a, generate_series(1, 300) b")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let n = rows[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        assert_eq!(n.value(0), 90_000);
    }
}

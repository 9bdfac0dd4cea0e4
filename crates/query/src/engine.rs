//! Which engine answers a query: DataFusion in this process, or a Ballista cluster.
//!
//! With [`Engine::Ballista`] a session is an ordinary DataFusion session whose query
//! planner ([`Routing`]) decides per statement:
//! - a plan that reads only `report.*` tables (Parquet listings over the Delta
//!   snapshot's files, see [`TableScans::Files`]) goes to the cluster: Ballista's own
//!   planner turns it into a `DistributedQueryExec`, which sends the optimised logical
//!   plan to the scheduler and streams the result back from the executors;
//! - everything else — `pg_catalog`, `information_schema`, `meta.*`, `SELECT 1`, a
//!   plan that mixes them with `report.*` — runs here, as with the embedded engine.
//!
//! Before a plan goes to the cluster the scheduler's port is tried (one TCP connect):
//! an unreachable scheduler is an error that names it, or, with `[query] fallback =
//! "embedded"`, a warning and a local run. A cluster job whose result stream is
//! dropped before its end (statement timeout, a cancel request, a client that went
//! away) is cancelled on the scheduler ([`CancelOnDrop`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ballista_core::config::BALLISTA_CLIENT_PULL;
use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::planner::BallistaQueryPlanner;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::CancelJobParams;
use citybooks_store::config::QueryConfig;
use citybooks_warehouse::{TableScans, Warehouse, WarehouseError};
use datafusion::catalog::Session;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::source_as_provider;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::SessionContext;
use datafusion_proto::protobuf::LogicalPlanNode;
use futures::StreamExt;

use crate::QueryError;

/// Where queries run.
#[derive(Debug, Clone)]
pub enum Engine {
    /// DataFusion in this process, over delta-rs' table providers.
    Embedded,
    /// A Ballista cluster for `report.*`; see the module doc.
    Ballista(Arc<Cluster>),
}

/// A Ballista scheduler as the client sees it.
#[derive(Debug)]
pub struct Cluster {
    /// `df://host:port`, as configured.
    pub url: String,
    host: String,
    port: u16,
    /// Run locally while the scheduler cannot be reached.
    pub fallback_embedded: bool,
    /// Plans sent to the cluster, and plans run here because it could not be reached.
    sent: AtomicU64,
    fell_back: AtomicU64,
}

/// The scheduler could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("the Ballista scheduler {url} cannot be reached ({reason}); start it (`citybooks scheduler`) or set [query] fallback = \"embedded\" to run queries in this process meanwhile")]
pub struct SchedulerUnreachable {
    pub url: String,
    pub reason: String,
}

/// Whether `e` (or what caused it) is an unreachable scheduler.
pub fn cluster_unreachable(e: &DataFusionError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<SchedulerUnreachable>() {
            return true;
        }
        cause = c.source();
    }
    false
}

impl Cluster {
    /// Parses `df://host:port` (port 50050 when left out).
    pub fn new(url: &str, fallback_embedded: bool) -> Result<Cluster, QueryError> {
        let bad = |why: &str| {
            QueryError::Config(format!(
                "[query] scheduler = {url:?}: {why}; write df://HOST:PORT, e.g. df://localhost:50050"
            ))
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        Ok(Cluster {
            url: url.to_string(),
            host,
            port: parsed.port().unwrap_or(50050),
            fallback_embedded,
            sent: AtomicU64::new(0),
            fell_back: AtomicU64::new(0),
        })
    }

    /// How many plans went to the cluster, and how many ran here instead because the
    /// scheduler could not be reached (`[query] fallback`), since this process started.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.fell_back.load(Ordering::Relaxed),
        )
    }

    /// The gRPC endpoint of the scheduler.
    fn grpc_url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// Tries the scheduler's port (a TCP connect, 3 s at most).
    pub async fn reachable(&self) -> Result<(), SchedulerUnreachable> {
        let connect = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
        let reason = match tokio::time::timeout(Duration::from_secs(3), connect).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 3 s".to_string(),
        };
        Err(SchedulerUnreachable {
            url: self.url.clone(),
            reason,
        })
    }

    /// Asks the scheduler to cancel `job_id` (best effort: a failure is logged).
    async fn cancel(&self, job_id: String) {
        let result = async {
            let mut client = SchedulerGrpcClient::connect(self.grpc_url()).await?;
            client
                .cancel_job(CancelJobParams {
                    job_id: job_id.clone(),
                })
                .await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }
        .await;
        match result {
            Ok(()) => tracing::info!(job_id, "cancelled the cluster job"),
            Err(e) => tracing::warn!(job_id, "could not cancel the cluster job: {e}"),
        }
    }
}

impl Engine {
    /// The engine `[query]` names.
    pub fn from_config(config: &QueryConfig) -> Result<Engine, QueryError> {
        let fallback = match config.fallback.as_deref() {
            None => false,
            Some("embedded") => true,
            Some(other) => {
                return Err(QueryError::Config(format!(
                    "[query] fallback = {other:?}: leave it unset (fail while the scheduler is away) or use \"embedded\""
                )))
            }
        };
        match config.engine.as_str() {
            "embedded" => Ok(Engine::Embedded),
            "ballista" => Ok(Engine::Ballista(Arc::new(Cluster::new(
                &config.scheduler,
                fallback,
            )?))),
            other => Err(QueryError::Config(format!(
                "[query] engine = {other:?}: use \"embedded\" or \"ballista\""
            ))),
        }
    }

    /// How this engine's sessions read the `report` tables.
    pub fn scans(&self) -> TableScans {
        match self {
            Engine::Embedded => TableScans::Delta,
            Engine::Ballista(_) => TableScans::Files,
        }
    }

    /// How a long-running server's sessions read the `report` tables: as
    /// [`Engine::scans`] says, and with the embedded engine their most-read columns
    /// held in memory, up to `hold_mib` MiB (`[sql] table_memory_mib`; 0: none). A
    /// cluster's executors read the files themselves, so nothing is held for them.
    pub fn server_scans(&self, hold_mib: usize) -> TableScans {
        match self {
            Engine::Embedded if hold_mib > 0 => TableScans::Memory {
                max_bytes: hold_mib.saturating_mul(1 << 20),
            },
            _ => self.scans(),
        }
    }

    /// A session over the warehouse (as of `as_of_load`), planned by this engine.
    pub async fn session(
        &self,
        warehouse: &Warehouse,
        as_of_load: Option<i64>,
    ) -> Result<SessionContext, WarehouseError> {
        self.session_scanning(warehouse, as_of_load, self.scans())
            .await
    }

    /// [`Engine::session`], its `report` tables read as `scans` says.
    pub async fn session_scanning(
        &self,
        warehouse: &Warehouse,
        as_of_load: Option<i64>,
        scans: TableScans,
    ) -> Result<SessionContext, WarehouseError> {
        let Engine::Ballista(cluster) = self else {
            return warehouse.session_scanning(as_of_load, scans).await;
        };
        let ctx = ballista_context(cluster.clone())?;
        warehouse.register_tables(&ctx, as_of_load, scans).await?;
        Ok(ctx)
    }
}

fn ballista_context(cluster: Arc<Cluster>) -> DfResult<SessionContext> {
    // Ballista 55's adaptive planner (on by default) loses the sort order of a union
    // of aggregates under ORDER BY (a SanityCheckPlan error on the scheduler, and the
    // job then never finishes): plan each job's stages up front instead.
    //
    // The client pulls the job's status (every 50 ms) instead of having it pushed: a
    // pulled job's id is known from its submission on, so a dropped stream can cancel
    // it (a pushed job's id arrives with its first status, which may be its last).
    let config = Warehouse::session_config()
        .upgrade_for_ballista()
        .with_ballista_adaptive_query_planner(false)
        .set_bool(BALLISTA_CLIENT_PULL, true);
    let remote = BallistaQueryPlanner::<LogicalPlanNode>::with_extension(
        cluster.grpc_url(),
        config.ballista_config(),
        config.ballista_logical_extension_codec(),
    );
    let routing = Routing {
        remote,
        local: DefaultPhysicalPlanner::default(),
        cluster: cluster.clone(),
    };
    let config = config.with_ballista_query_planner(Arc::new(routing));
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build()
        .upgrade_for_ballista(cluster.grpc_url())?;
    let ctx = SessionContext::new_with_state(state);
    Warehouse::add_rules(&ctx, false);
    Ok(ctx)
}

/// The query planner of a Ballista session: see the module doc.
pub struct Routing {
    remote: BallistaQueryPlanner<LogicalPlanNode>,
    local: DefaultPhysicalPlanner,
    cluster: Arc<Cluster>,
}

impl fmt::Debug for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routing")
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// Whether every table `plan` reads (subqueries included) can be read by the cluster,
/// and it reads at least one.
pub fn runs_on_cluster(plan: &LogicalPlan) -> DfResult<bool> {
    let (mut cluster, mut local) = (false, false);
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            match source_as_provider(&scan.source) {
                Ok(p) if shippable(p.as_ref())? => cluster = true,
                _ => local = true,
            }
        }
        Ok(if local {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(cluster && !local)
}

/// A provider the cluster can read: a Parquet listing, or a view (any provider that
/// is a logical plan, such as the fact table's union of years) of such.
fn shippable(provider: &dyn TableProvider) -> DfResult<bool> {
    if provider.is::<ListingTable>() {
        return Ok(true);
    }
    match provider.get_logical_plan() {
        Some(plan) => runs_on_cluster(&plan),
        None => Ok(false),
    }
}

#[async_trait]
impl QueryPlanner for Routing {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        state: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if !runs_on_cluster(plan)? {
            return self.local.create_physical_plan(plan, state).await;
        }
        if let Err(e) = self.cluster.reachable().await {
            if self.cluster.fallback_embedded {
                tracing::warn!("{e}; running the query in this process ([query] fallback)");
                self.cluster.fell_back.fetch_add(1, Ordering::Relaxed);
                return self.local.create_physical_plan(plan, state).await;
            }
            return Err(DataFusionError::External(Box::new(e)));
        }
        let exec = self.remote.create_physical_plan(plan, state).await?;
        self.cluster.sent.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(CancelOnDrop {
            input: exec,
            cluster: self.cluster.clone(),
        }))
    }
}

/// Runs a cluster plan; when its stream is dropped before the end, cancels the job.
#[derive(Debug)]
pub struct CancelOnDrop {
    input: Arc<dyn ExecutionPlan>,
    cluster: Arc<Cluster>,
}

impl DisplayAs for CancelOnDrop {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CancelOnDrop: scheduler={}", self.cluster.url)
    }
}

impl ExecutionPlan for CancelOnDrop {
    fn name(&self) -> &str {
        "CancelOnDrop"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(CancelOnDrop {
            input: children.into_iter().next().unwrap_or(self.input.clone()),
            cluster: self.cluster.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let stream = self.input.execute(partition, context)?;
        let schema = stream.schema();
        let guard = JobGuard {
            job: self
                .input
                .downcast_ref::<DistributedQueryExec<LogicalPlanNode>>()
                .cloned(),
            cluster: self.cluster.clone(),
        };
        let stream =
            futures::stream::unfold((stream, guard), |(mut stream, mut guard)| async move {
                match stream.next().await {
                    Some(item) => Some((item, (stream, guard))),
                    None => {
                        guard.disarm();
                        None
                    }
                }
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Cancels its cluster job when dropped before the job's stream ended.
struct JobGuard {
    job: Option<DistributedQueryExec<LogicalPlanNode>>,
    cluster: Arc<Cluster>,
}

impl JobGuard {
    /// The job ended: nothing to cancel.
    fn disarm(&mut self) {
        self.job = None;
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        let Some(job) = self.job.take() else {
            return;
        };
        tracing::debug!(job_id = ?job.job_id(), "a cluster result stream was dropped before its end");
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no runtime to cancel the cluster job from");
            return;
        };
        let cluster = self.cluster.clone();
        // The scheduler hands out the job id once it accepted the job: wait for it if
        // the stream was dropped right after submitting (a job whose submission was
        // itself cut short never gets an id, and cannot be cancelled from here).
        runtime.spawn(async move {
            for _ in 0..300 {
                if let Some(id) = job.job_id() {
                    cluster.cancel(id.to_string()).await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_urls_and_engine_names_are_checked() {
        let c = Cluster::new("df://sched.internal:6000", false).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("sched.internal", 6000));
        assert_eq!(Cluster::new("df://localhost", false).unwrap().port, 50050);
        let err = Cluster::new("localhost:50050", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("df://HOST:PORT"), "{err}");
        let bad = QueryConfig {
            engine: "spark".into(),
            ..Default::default()
        };
        let err = Engine::from_config(&bad).unwrap_err().to_string();
        assert!(err.contains("\"embedded\" or \"ballista\""), "{err}");
        let bad = QueryConfig {
            engine: "ballista".into(),
            fallback: Some("yes".into()),
            ..Default::default()
        };
        assert!(Engine::from_config(&bad).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_scheduler_is_named() {
        // A port nobody listens on: bind one, then let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Cluster::new(&format!("df://127.0.0.1:{port}"), false).unwrap();
        let err = c.reachable().await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("df://127.0.0.1:{port}")) && err.contains("citybooks scheduler"),
            "{err}"
        );
    }
}

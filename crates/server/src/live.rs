//! The warehouse as the servers see it: one DataFusion session shared by every
//! connection and request, whose tables follow new loads without a restart.
//!
//! Every load ends with a commit to `meta.loads` ([`Warehouse::generation`]). Before a
//! query, [`Live::context`] compares that marker with the one the session was built
//! at (at most once per `check_interval`) and re-registers the tables when it moved.
//! Queries already running keep the snapshot they planned with.
//!
//! Each connection or ad-hoc request runs on its own session over the shared one
//! ([`Live::query_session`]): the same tables, with a memory pool of its own (see
//! [`citybooks_query::budget`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use citybooks_query::budget::Budget;
use citybooks_query::Engine;
use citybooks_warehouse::{TableScans, Warehouse, WarehouseError};
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::PgCatalogContextProvider;
use tokio::sync::Mutex;

/// How often, at most, a query looks for a new load.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);

struct Seen {
    generation: String,
    checked: Instant,
}

/// The shared, self-refreshing session.
pub struct Live {
    warehouse: Warehouse,
    engine: Engine,
    /// How the tables are read (with the embedded engine, held in memory).
    scans: TableScans,
    ctx: Arc<SessionContext>,
    seen: Mutex<Seen>,
    check_interval: Duration,
    budget: Budget,
}

impl Live {
    /// Opens the session on the warehouse as it is now, planned by `engine`, with the
    /// `pg_catalog` schema PostgreSQL clients look in (`roles` in its `pg_roles`);
    /// queries get what `budget` allows. With the embedded engine the tables' most-read
    /// columns are held in memory, up to `hold_mib` MiB (see
    /// [`citybooks_warehouse::held`]).
    pub async fn open(
        warehouse: Warehouse,
        engine: Engine,
        roles: impl PgCatalogContextProvider,
        budget: Budget,
        hold_mib: usize,
    ) -> Result<Arc<Live>, WarehouseError> {
        let generation = warehouse.generation().await?;
        let scans = engine.server_scans(hold_mib);
        let ctx = engine.session_scanning(&warehouse, None, scans).await?;
        let ctx = crate::pgcompat::install(ctx, roles)
            .await
            .map_err(|e| WarehouseError::Internal(format!("setting up pg_catalog: {e}")))?;
        budget.install(&ctx);
        Ok(Arc::new(Live {
            warehouse,
            engine,
            scans,
            ctx: Arc::new(ctx),
            seen: Mutex::new(Seen {
                generation,
                checked: Instant::now(),
            }),
            check_interval: CHECK_INTERVAL,
            budget,
        }))
    }

    /// The engine that plans the session's queries.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The warehouse.
    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// The session without looking for new loads (for handlers that refresh through
    /// [`Live::context`] first).
    pub fn session(&self) -> Arc<SessionContext> {
        self.ctx.clone()
    }

    /// The session, with the tables of the newest load.
    pub async fn context(&self) -> Result<Arc<SessionContext>, WarehouseError> {
        self.refresh(false).await?;
        Ok(self.ctx.clone())
    }

    /// What each query may take.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// A session of its own for one connection or request, over the shared one (its
    /// tables follow new loads too), with its own memory pool. Looks for a new load
    /// first.
    pub async fn query_session(&self) -> Result<SessionContext, WarehouseError> {
        self.refresh(false).await?;
        self.budget
            .session(&self.ctx)
            .map_err(|e| WarehouseError::Internal(format!("setting up a query session: {e}")))
    }

    /// The load generation the session shows now (see [`Warehouse::generation`]).
    pub async fn generation(&self) -> String {
        self.seen.lock().await.generation.clone()
    }

    /// Looks for a new load now (`force`) or when the last look is older than the
    /// check interval; re-registers the tables if there is one. Returns whether it did.
    /// A query that arrives while the tables are re-registered waits for them, so
    /// that once a load has been seen no query answers without it (holding the tables
    /// in memory makes that wait the time to read their columns, once per load).
    pub async fn refresh(&self, force: bool) -> Result<bool, WarehouseError> {
        let mut seen = self.seen.lock().await;
        if !force && seen.checked.elapsed() < self.check_interval {
            return Ok(false);
        }
        let generation = self.warehouse.generation().await?;
        seen.checked = Instant::now();
        if generation == seen.generation {
            return Ok(false);
        }
        self.warehouse
            .register_tables(&self.ctx, None, self.scans)
            .await?;
        tracing::info!(%generation, "new load: tables refreshed");
        seen.generation = generation;
        Ok(true)
    }
}

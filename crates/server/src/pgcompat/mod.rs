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
//! - [`rewrite`](fn@rewrite) turns the PostgreSQL forms DataFusion cannot plan into
//!   equivalent ones, per statement and connection: `current_user`/`session_user`
//!   become the login, `ARRAY(subquery)` an `array_agg` subquery, `LIKE ... ESCAPE 'c'`
//!   a pattern with backslash escapes, `generate_subscripts(a, 1)` the list of
//!   subscripts.
//! - [`UntypedLiterals`] reads a quoted literal compared with a boolean as PostgreSQL
//!   does (`indisprimary = 'f'`), where DataFusion would refuse `Boolean = Utf8`.
//! - Savepoints are accepted and do nothing ([`is_savepoint`]): every transaction
//!   here is read-only, so there is nothing to roll back to.
//!
//! The files, one concern each:
//!
//! - `mod.rs`: the version, [`install`];
//! - `keys.rs`: the star schema's primary and foreign keys, with the oids the
//!   catalog gives their tables, constraints and indexes;
//! - `overlay.rs`: [`KeyOverlay`], the schema provider that serves it as
//!   `pg_catalog`, and the overlaid tables (`pg_constraint`, `pg_index`, `pg_class`,
//!   `pg_attribute`, `pg_description`, `pg_user`, ...) with their batch helpers;
//! - `constraint_views.rs`: information_schema's constraint views;
//! - `functions.rs`: the catalog functions and the settings `current_setting` and
//!   `pg_settings` show;
//! - `rewrite.rs`: [`rewrite`](fn@rewrite) and [`is_savepoint`];
//! - `untyped_literals.rs`: [`UntypedLiterals`].
//!
//! [`Table::description`]: citybooks_model::schema::Table::description
//! [`Table::column_description`]: citybooks_model::schema::Table::column_description

use std::sync::Arc;

use citybooks_warehouse::CATALOG;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::PgCatalogContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;

mod constraint_views;
mod functions;
mod keys;
mod overlay;
mod rewrite;
mod untyped_literals;

pub use overlay::KeyOverlay;
pub use rewrite::{is_savepoint, rewrite};
pub use untyped_literals::UntypedLiterals;

use overlay::OverlaySchema;

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
    for udf in functions::functions(overlay.state.clone()) {
        ctx.register_udf(udf);
    }
    Ok(ctx)
}

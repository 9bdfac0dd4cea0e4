//! citybooks' query servers, run by `citybooks serve` beside the SFTP drop-box:
//! - [`pg`]: the PostgreSQL wire protocol (port 5439) for psql, drivers and BI tools;
//! - [`pgcompat`]: what PostgreSQL clients expect beyond datafusion-postgres
//!   (`pg_catalog` with the star schema's keys, statement rewrites);
//! - [`sqlstate`]: every SQLSTATE the wire answers with, by name;
//! - [`http`]: the HTTP API (port 8080) and the embedded web dashboard, one concern per
//!   file (router, errors, middleware, SQL, dashboard routes, status, assets);
//! - [`explore`]: the SQL of the explorer's drill-downs;
//! - [`live`]: the one DataFusion session both share, following new loads;
//! - [`sqlusers`]: the SQL users and their SCRAM verifiers;
//! - [`metrics`]: Prometheus counters and latency histograms.

pub mod explore;
pub mod http;
pub mod live;
pub mod metrics;
pub mod pg;
pub mod pgcompat;
pub mod rows;
pub mod sqlstate;
pub mod sqlusers;

pub use http::{keep_warm, router, HttpOptions};
pub use live::Live;
pub use metrics::Metrics;
pub use pg::{tls_acceptor, PgOptions, PgServer, PgServerError};
pub use sqlusers::{SqlUserError, SqlUsers};

//! The warehouse: Delta Lake tables in the project's store, and the loader that fills
//! them from the Controller's CSV exports.
//!
//! * [`tables`] — where each table lives, how a load commits to it, and the DataFusion
//!   session that sees them all (optionally as of an earlier load: Delta time travel).
//! * [`held`] — for a long-running server, the columns aggregates read held decoded in
//!   memory (bounded; any other column read from Parquet).
//! * [`preagg`] — the optimizer rule every session gets: facts aggregated by their keys
//!   before the dimensions are joined, to the same digits.
//! * [`loader`] — one module per step: scan (both dialects, streamed; rules 1–5 of
//!   `citybooks-model`) → decide (unchanged, nothing loadable, held) → dimensions
//!   (rule 6, stable keys) → facts (exact, streamed into one commit) → quarantine →
//!   record (`meta.loads`), one Delta commit per table.
//! * [`status`] — the SQL of `citybooks status`: loads, rows per table, facts per fiscal
//!   year, quarantine.
//! * [`loads`] — the rows of `meta.loads` (a [`LoadStatus`] and its reasons) and what
//!   they decide (idempotent reloads, held loads); older stores still read.
//! * [`error`] — [`WarehouseError`]: variants a caller can match (the file changed
//!   during its load, a release of a load that is not held, stored data that does not
//!   read, an internal fault, ...).
//! * [`shrink`] — the guard that holds a load which would shrink a fiscal year.
//! * [`housekeeping`] — compaction and checkpoints every ten commits of a table, and
//!   `citybooks vacuum` (compaction, checkpoints, removal of files past the retention).
//!
//! This crate never prints; the binary shows what it returns.

pub mod changes;
pub mod csvsource;
mod delta_s3;
pub mod error;
pub mod failpoint;
pub mod held;
pub mod housekeeping;
pub mod lineage;
pub mod lineindex;
pub mod loader;
pub mod loads;
pub mod preagg;
pub mod publishes;
pub mod quality;
pub mod shrink;
pub mod status;
pub mod tables;

pub use error::WarehouseError;
pub use loader::{LoadReport, LoadStatus, QuarantinedRow};
pub use loads::LoadRecord;
pub use publishes::{PublishRecord, PublishStatus};
pub use tables::{TableScans, Warehouse, CATALOG};

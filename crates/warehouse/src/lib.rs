//! The warehouse: Delta Lake tables in the project's store, and the loader that fills
//! them from the Controller's CSV exports.
//!
//! * [`tables`] — where each table lives, how a load commits to it, and the DataFusion
//!   session that sees them all (optionally as of an earlier load: Delta time travel).
//! * [`loader`] — read (both dialects, streamed) → conform (rules 1–7 of
//!   `citybooks-model`) → model (stable dimension keys, exact facts, quarantine) →
//!   commit (dimensions, facts, quarantine, `meta.loads`, one Delta commit each).
//! * [`loads`] — the rows of `meta.loads` and what they decide (idempotent reloads).
//! * [`shrink`] — the guard that holds a load which would shrink a fiscal year.
//! * [`housekeeping`] — compaction and checkpoints every ten commits of a table, and
//!   `citybooks vacuum` (compaction, checkpoints, removal of files past the retention).
//!
//! This crate never prints; the binary shows what it returns.

pub mod csvsource;
pub mod error;
pub mod failpoint;
pub mod housekeeping;
pub mod loader;
pub mod loads;
pub mod publishes;
pub mod shrink;
pub mod tables;

pub use error::WarehouseError;
pub use loader::{LoadReport, LoadStatus, QuarantinedRow};
pub use loads::LoadRecord;
pub use publishes::PublishRecord;
pub use tables::{TableScans, Warehouse, CATALOG};

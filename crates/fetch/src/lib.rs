//! citybooks' client of a Socrata open-data portal (DataSF by default): downloads the
//! Spending and Revenue data set page by page into the store, resumably and all or
//! nothing, then hands the file to the warehouse's loader; and the scheduled refresh
//! `citybooks serve` runs.
//!
//! The portal behaviour relied on, from Socrata's SODA 2.0 documentation:
//! - <https://dev.socrata.com/docs/paging.html>: `$limit` (at most 50,000 on 2.0
//!   endpoints) and `$offset` page through results; results have no implicit order, so
//!   paging needs `$order`, at least `$order=:id`, for a stable order;
//! - <https://dev.socrata.com/docs/queries/>: `$where` filters (SoQL), `$select` with
//!   `count(*)` aggregates; `/resource/<id>.csv` answers CSV with a header row, every
//!   field quoted, and `/resource/<id>.json` JSON;
//! - <https://dev.socrata.com/docs/app-tokens.html>: an app token goes in the
//!   `X-App-Token` header; without one, requests are throttled (HTTP 429);
//! - <https://dev.socrata.com/docs/response-codes.html>: errors are 4xx/5xx with a JSON
//!   body `{"code": ..., "error": true, "message": ...}`.
//!
//! `tests/peers/socrata_server.py` copies exactly this behaviour (and breaks it on
//! purpose) for the tests.

pub mod download;
pub mod schedule;
pub mod soda;

pub use download::{fetch, FetchError, FetchOutcome, Progress};
pub use schedule::{RefreshStatus, Schedule};
pub use soda::{Query, Years};

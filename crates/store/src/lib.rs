//! The project and its object store.
//!
//! A citybooks *project* is a folder holding `citybooks.toml`; its *store* is where
//! everything else lives — raw uploads under `raw/` and the Delta tables under
//! `warehouse/` — either a local folder (the default, `store/` beside the config) or
//! `s3://bucket/prefix` on AWS S3 or any S3-compatible server.
//!
//! This crate is the only one that knows which kind of store a project uses: the rest
//! of citybooks asks [`Store`] for URLs, object paths, readers and writers, and for
//! the writer [`Lease`] that lets several processes share one store.

pub mod config;
pub mod lease;
pub mod project;
pub mod store;

pub use config::{Config, ConfigError};
pub use lease::{Holder, Lease, LeaseLost, Waited};
pub use project::{Project, ProjectError, CONFIG_FILE};
pub use store::{s3_client, Store, StoreError};

//! What can go wrong in the warehouse, with what a user needs to act on it.

use citybooks_model::HeaderError;

/// An error of the warehouse.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("{file}, line 1: {source}")]
    Header {
        file: String,
        #[source]
        source: HeaderError,
    },
    #[error("{file}, line {line}: {message}")]
    Csv {
        file: String,
        line: u64,
        message: String,
    },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] citybooks_store::StoreError),
    #[error("Delta table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: deltalake::DeltaTableError,
    },
    #[error("query engine: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),
    #[error("no load {0} in meta.loads; `citybooks status` lists the loads")]
    NoSuchLoad(i64),
    #[error(transparent)]
    LeaseLost(#[from] citybooks_store::LeaseLost),
    #[error("{0}")]
    Other(String),
}

impl From<arrow::error::ArrowError> for WarehouseError {
    fn from(e: arrow::error::ArrowError) -> Self {
        WarehouseError::Engine(e.into())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = WarehouseError> = std::result::Result<T, E>;

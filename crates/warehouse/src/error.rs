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
    /// Nothing to compare or show: no load has loaded data yet.
    #[error("no load has loaded data yet: `citybooks load FILE.csv` or `citybooks fetch`")]
    NothingLoaded,
    /// A line the load's raw file does not have.
    #[error("load {load_id} ({file}) has lines 1 to {lines}; there is no line {line}")]
    NoSuchLine {
        load_id: i64,
        file: String,
        line: u64,
        lines: u64,
    },
    #[error(transparent)]
    LeaseLost(#[from] citybooks_store::LeaseLost),
    /// The raw file changed while it was being loaded (its two passes disagree):
    /// nothing of this load is recorded; loading it again is safe.
    #[error("{file}: {detail}; the file changed during the load: load it again")]
    SourceChanged { file: String, detail: String },
    /// `citybooks release` of a load that was not held.
    #[error("load {load_id} was not held (its status: {status})")]
    NotHeld { load_id: i64, status: String },
    /// `citybooks release` of a held load that was already released or discarded.
    #[error("held load {0} was already released or discarded (see meta.loads)")]
    AlreadySettled(i64),
    /// Something the store holds does not read as citybooks wrote it.
    /// `what`: the table or column at fault.
    #[error("{what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// A fault of citybooks itself (a task that stopped, a value it cannot encode):
    /// nothing the user did or can fix by changing input.
    #[error("internal error: {0}")]
    Internal(String),
}

impl WarehouseError {
    /// Whether the raw file itself cannot be read as a ledger (its header or its CSV):
    /// the load is recorded as failed, nothing else happens.
    pub fn is_unreadable_input(&self) -> bool {
        matches!(
            self,
            WarehouseError::Header { .. } | WarehouseError::Csv { .. }
        )
    }

    /// Stored data (of a table, or a column) that does not read as citybooks wrote it.
    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        WarehouseError::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

impl From<arrow::error::ArrowError> for WarehouseError {
    fn from(e: arrow::error::ArrowError) -> Self {
        WarehouseError::Engine(e.into())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = WarehouseError> = std::result::Result<T, E>;

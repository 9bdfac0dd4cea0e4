//! The citybooks domain, with no I/O: the two export dialects of the Controller's
//! Spending and Revenue ledger, the conformance rules of the original model, the Arrow
//! schemas of the `report` and `meta` tables, exact money and fiscal years.
//!
//! Everything that knows what a column of the ledger *means* lives here, once. The
//! loader (`citybooks-warehouse`), the query engine and the tests all read these
//! definitions; none of them spells a column name of their own.
//!
//! This crate must not touch files, the network or the object store.

pub mod conform;
pub mod dialect;
pub mod fiscal;
pub mod money;
pub mod schema;

pub use conform::{
    CodeChoice, CodeChooser, ConformError, FundMember, Level, Member, ProgramMember, RawRow, Row,
    TypeMember,
};
pub use dialect::{Dialect, Field, HeaderError, HeaderMap};
pub use money::{format_cents, format_count, parse_amount, MoneyError};
pub use schema::Table;

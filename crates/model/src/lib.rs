//! The citybooks domain, with no I/O: the two export dialects of the Controller's
//! Spending and Revenue ledger, the conformance rules of the original model, the Arrow
//! schemas of the `report` and `meta` tables, exact money and fiscal years.
//!
//! What a column of the ledger *means* lives here: the loader (`citybooks-warehouse`),
//! the query engine and the tests read these definitions. Not yet once: the levels of
//! the three hierarchies (program, type, fund) are spelled here in their member
//! types, their `Row` accessors and the code chooser, and again in the loader's member
//! keys (`loader/scan.rs`) and the explorer's levels (`citybooks-server`'s
//! `explore.rs`, the dashboard's `explore.js`).
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

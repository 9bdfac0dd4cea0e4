//! The citybooks domain, with no I/O: the two export dialects of the Controller's
//! Spending and Revenue ledger, the conformance rules of the original model, the Arrow
//! schemas of the `report` and `meta` tables, exact money and fiscal years.
//!
//! What a column of the ledger *means* lives here, once: [`ledger`] describes the
//! hierarchies (program, type, fund), their levels, name and code columns,
//! placeholders and checks; the dialects, the conformance rules, the code chooser, the
//! dimension schemas, the loader's members and the explorer's levels are derived from
//! that description.
//!
//! This crate must not touch files, the network or the object store.

pub mod conform;
pub mod dialect;
pub mod fiscal;
pub mod ledger;
pub mod money;
pub mod schema;

pub use conform::{CodeChoice, CodeChooser, ConformError, Member, RawRow, Row};
pub use dialect::{Dialect, HeaderError, HeaderMap};
pub use ledger::{ledger, Field, Layout, Ledger};
pub use money::{format_cents, format_change, format_count, parse_amount, MoneyError};
pub use schema::Table;

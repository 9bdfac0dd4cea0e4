//! The two export dialects of the ledger, recognised by header names.
//!
//! * **Portal** — the DataSF portal's CSV export: human headers such as
//!   `Organization Group Code`, unquoted where possible, amounts that may carry thousands
//!   separators. Older exports put `Revenue or Spending` second and spell the second
//!   column `Related Gov't Units` or `Related Government Units`.
//! * **API** — `/resource/bpnb-jwfb.csv`: every field quoted, snake_case headers, plus
//!   the `data_as_of` and `data_loaded_at` timestamps.
//!
//! Columns are matched by name, never by position (conformance rule 7 falls out of the
//! normalisation: every header becomes snake_case).

use std::fmt;

pub use crate::ledger::Field;
use crate::ledger::{ledger, Ledger};

impl Ledger {
    /// Recognises a header cell of either dialect (rule 7: names become snake_case),
    /// by a column's name, its portal header, or an older spelling.
    pub fn field_from_header(&self, header: &str) -> Option<Field> {
        let key = snake_case(header);
        self.fields().find(|f| {
            let c = self.column(*f);
            c.name == key || c.aliases.contains(&key.as_str())
        })
    }
}

/// Turns a header such as `"Related Gov't Units"` or `\u{feff}Fiscal Year` into
/// `related_govt_units` / `fiscal_year`: apostrophes vanish, every other run of
/// non-alphanumerics becomes one underscore, letters become lowercase.
pub fn snake_case(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    let mut pending_sep = false;
    for c in header.trim_start_matches('\u{feff}').chars() {
        if c == '\'' || c == '\u{2019}' {
            continue;
        }
        if c.is_alphanumeric() {
            if pending_sep && !out.is_empty() {
                out.push('_');
            }
            pending_sep = false;
            // A lowercase form can carry a mark that is not alphanumeric ('İ' is 'i' and
            // a combining dot above): keep only what is, so the name stays snake_case.
            out.extend(c.to_lowercase().filter(|l| l.is_alphanumeric()));
        } else {
            pending_sep = true;
        }
    }
    out
}

/// Which export a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Human headers (`Fiscal Year`, `Organization Group Code`, ...).
    Portal,
    /// snake_case headers of `/resource/bpnb-jwfb.csv`.
    Api,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::Portal => "portal",
            Dialect::Api => "api",
        })
    }
}

/// A header that cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the header has no column {missing}; expected the columns of the portal or API export (DOMAIN.md), found: {found}")]
    MissingColumn { missing: String, found: String },
    #[error("column {name:?} appears twice in the header (positions {first} and {second})")]
    DuplicateColumn {
        name: String,
        first: usize,
        second: usize,
    },
    #[error("the file is empty: no header line")]
    Empty,
}

/// Where each field sits in one file's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMap {
    /// `positions[field.index()]` is the record index of the field, if present.
    positions: Vec<Option<usize>>,
    /// Number of columns of the header; every record must have as many.
    pub width: usize,
    pub dialect: Dialect,
    /// Header cells that are not ledger columns; they are ignored.
    pub ignored: Vec<String>,
}

impl HeaderMap {
    /// Recognises a header line, given as its cells.
    pub fn from_headers<'a>(cells: impl IntoIterator<Item = &'a str>) -> Result<Self, HeaderError> {
        let ledger = ledger();
        let mut positions = vec![None; ledger.width()];
        let mut ignored = Vec::new();
        let mut width = 0;
        let mut human = 0usize;
        let mut raw_cells = Vec::new();
        for (i, cell) in cells.into_iter().enumerate() {
            width = i + 1;
            let cell = cell.trim_start_matches('\u{feff}').trim();
            raw_cells.push(cell.to_string());
            if cell.chars().any(|c| c.is_uppercase() || c == ' ') {
                human += 1;
            }
            match ledger.field_from_header(cell) {
                Some(field) => {
                    if let Some(first) = positions[field.index()] {
                        return Err(HeaderError::DuplicateColumn {
                            name: cell.to_string(),
                            first: first + 1,
                            second: i + 1,
                        });
                    }
                    positions[field.index()] = Some(i);
                }
                None => ignored.push(cell.to_string()),
            }
        }
        if width == 0 || (width == 1 && raw_cells[0].is_empty()) {
            return Err(HeaderError::Empty);
        }
        let missing: Vec<&str> = ledger
            .fields()
            .filter(|f| ledger.required(*f) && positions[f.index()].is_none())
            .map(|f| f.name())
            .collect();
        if !missing.is_empty() {
            return Err(HeaderError::MissingColumn {
                missing: missing.join(", "),
                found: raw_cells.join(", "),
            });
        }
        let dialect = if human * 2 > width {
            Dialect::Portal
        } else {
            Dialect::Api
        };
        Ok(HeaderMap {
            positions,
            width,
            dialect,
            ignored,
        })
    }

    /// Record index of `field`, if the file has it.
    pub fn position(&self, field: Field) -> Option<usize> {
        self.positions[field.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str) -> Field {
        ledger().field(name).unwrap()
    }

    fn headers(portal: bool, take: usize) -> Vec<&'static str> {
        let l = ledger();
        l.columns[..take]
            .iter()
            .map(|c| if portal { c.header } else { c.name })
            .collect()
    }

    #[test]
    fn portal_and_api_headers_map_to_the_same_fields() {
        let l = ledger();
        for f in l.fields() {
            assert_eq!(l.field_from_header(l.column(f).header), Some(f), "{f}");
            assert_eq!(l.field_from_header(f.name()), Some(f), "{f}");
        }
    }

    #[test]
    fn older_spellings_of_related_units_are_recognised() {
        let l = ledger();
        for h in [
            "Related Gov't Units",
            "Related Government Units",
            "RELATED GOVT UNITS",
        ] {
            assert_eq!(
                l.field_from_header(h),
                Some(field("related_govt_units")),
                "{h}"
            );
        }
        assert_eq!(
            l.field_from_header("\u{feff}Fiscal Year"),
            Some(l.fiscal_year)
        );
    }

    /// Found by fuzz/fuzz_targets/header_dialect.rs: 'İ' lowercases to "i\u{307}",
    /// whose combining dot is not alphanumeric, so the result was not snake_case and a
    /// second pass changed it ("ai\u{307}b" -> "ai_b").
    #[test]
    fn snake_case_gives_snake_case_and_is_idempotent() {
        assert_eq!(snake_case("İl Kodu"), "il_kodu");
        for header in ["aİb", "İ", "Fiscal İYear"] {
            let once = snake_case(header);
            assert_eq!(snake_case(&once), once, "{header:?}");
            assert!(
                once.chars().all(|c| c == '_' || c.is_alphanumeric()),
                "{once:?}"
            );
        }
    }

    #[test]
    fn header_in_any_order_with_dialect_detected() {
        let mut portal = headers(true, 22);
        portal.swap(1, 20); // older exports put Revenue or Spending second
        let map = HeaderMap::from_headers(portal.iter().copied()).unwrap();
        assert_eq!(map.dialect, Dialect::Portal);
        assert_eq!(map.position(ledger().revenue_or_spending), Some(1));
        assert_eq!(map.position(ledger().data_as_of), None);

        let api = headers(false, 24);
        let map = HeaderMap::from_headers(api.iter().copied()).unwrap();
        assert_eq!(map.dialect, Dialect::Api);
        assert_eq!(map.width, 24);
    }

    #[test]
    fn missing_and_duplicate_columns_are_named() {
        let cells = headers(false, 21);
        let err = HeaderMap::from_headers(cells.iter().copied()).unwrap_err();
        assert!(err.to_string().contains("no column amount"), "{err}");
        let mut cells = headers(false, 24);
        cells.push("Amount");
        let err = HeaderMap::from_headers(cells.iter().copied()).unwrap_err();
        assert!(
            matches!(
                err,
                HeaderError::DuplicateColumn {
                    first: 22,
                    second: 25,
                    ..
                }
            ),
            "{err}"
        );
    }
}

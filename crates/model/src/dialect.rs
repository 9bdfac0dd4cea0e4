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

/// A column of the ledger, in either dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    FiscalYear,
    RelatedGovtUnits,
    OrganizationGroupCode,
    OrganizationGroup,
    DepartmentCode,
    Department,
    ProgramCode,
    Program,
    CharacterCode,
    Character,
    ObjectCode,
    Object,
    SubObjectCode,
    SubObject,
    FundTypeCode,
    FundType,
    FundCode,
    Fund,
    FundCategoryCode,
    FundCategory,
    RevenueOrSpending,
    Amount,
    DataAsOf,
    DataLoadedAt,
}

impl Field {
    /// Every field, in the order of the API export.
    pub const ALL: [Field; 24] = [
        Field::FiscalYear,
        Field::RelatedGovtUnits,
        Field::OrganizationGroupCode,
        Field::OrganizationGroup,
        Field::DepartmentCode,
        Field::Department,
        Field::ProgramCode,
        Field::Program,
        Field::CharacterCode,
        Field::Character,
        Field::ObjectCode,
        Field::Object,
        Field::SubObjectCode,
        Field::SubObject,
        Field::FundTypeCode,
        Field::FundType,
        Field::FundCode,
        Field::Fund,
        Field::FundCategoryCode,
        Field::FundCategory,
        Field::RevenueOrSpending,
        Field::Amount,
        Field::DataAsOf,
        Field::DataLoadedAt,
    ];

    /// Number of fields; `Field as usize` indexes arrays of this length.
    pub const COUNT: usize = Self::ALL.len();

    /// The snake_case name (the API export's header, and the warehouse's column name).
    pub fn snake_name(self) -> &'static str {
        match self {
            Field::FiscalYear => "fiscal_year",
            Field::RelatedGovtUnits => "related_govt_units",
            Field::OrganizationGroupCode => "organization_group_code",
            Field::OrganizationGroup => "organization_group",
            Field::DepartmentCode => "department_code",
            Field::Department => "department",
            Field::ProgramCode => "program_code",
            Field::Program => "program",
            Field::CharacterCode => "character_code",
            Field::Character => "character",
            Field::ObjectCode => "object_code",
            Field::Object => "object",
            Field::SubObjectCode => "sub_object_code",
            Field::SubObject => "sub_object",
            Field::FundTypeCode => "fund_type_code",
            Field::FundType => "fund_type",
            Field::FundCode => "fund_code",
            Field::Fund => "fund",
            Field::FundCategoryCode => "fund_category_code",
            Field::FundCategory => "fund_category",
            Field::RevenueOrSpending => "revenue_or_spending",
            Field::Amount => "amount",
            Field::DataAsOf => "data_as_of",
            Field::DataLoadedAt => "data_loaded_at",
        }
    }

    /// The portal export's human header.
    pub fn portal_name(self) -> &'static str {
        match self {
            Field::FiscalYear => "Fiscal Year",
            Field::RelatedGovtUnits => "Related Govt Units",
            Field::OrganizationGroupCode => "Organization Group Code",
            Field::OrganizationGroup => "Organization Group",
            Field::DepartmentCode => "Department Code",
            Field::Department => "Department",
            Field::ProgramCode => "Program Code",
            Field::Program => "Program",
            Field::CharacterCode => "Character Code",
            Field::Character => "Character",
            Field::ObjectCode => "Object Code",
            Field::Object => "Object",
            Field::SubObjectCode => "Sub-object Code",
            Field::SubObject => "Sub-object",
            Field::FundTypeCode => "Fund Type Code",
            Field::FundType => "Fund Type",
            Field::FundCode => "Fund Code",
            Field::Fund => "Fund",
            Field::FundCategoryCode => "Fund Category Code",
            Field::FundCategory => "Fund Category",
            Field::RevenueOrSpending => "Revenue or Spending",
            Field::Amount => "Amount",
            Field::DataAsOf => "Data As Of",
            Field::DataLoadedAt => "Data Loaded At",
        }
    }

    /// Whether a file must have this column to be loadable.
    pub fn required(self) -> bool {
        !matches!(self, Field::DataAsOf | Field::DataLoadedAt)
    }

    /// Recognises a header cell of either dialect (rule 7: names become snake_case).
    pub fn from_header(header: &str) -> Option<Field> {
        let key = snake_case(header);
        let key = match key.as_str() {
            "related_government_units" => "related_govt_units",
            "subobject" => "sub_object",
            "subobject_code" => "sub_object_code",
            other => other,
        };
        Field::ALL.into_iter().find(|f| f.snake_name() == key)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.snake_name())
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
    /// `positions[field as usize]` is the record index of the field, if present.
    positions: [Option<usize>; Field::COUNT],
    /// Number of columns of the header; every record must have as many.
    pub width: usize,
    pub dialect: Dialect,
    /// Header cells that are not ledger columns; they are ignored.
    pub ignored: Vec<String>,
}

impl HeaderMap {
    /// Recognises a header line, given as its cells.
    pub fn from_headers<'a>(cells: impl IntoIterator<Item = &'a str>) -> Result<Self, HeaderError> {
        let mut positions = [None; Field::COUNT];
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
            match Field::from_header(cell) {
                Some(field) => {
                    if let Some(first) = positions[field as usize] {
                        return Err(HeaderError::DuplicateColumn {
                            name: cell.to_string(),
                            first: first + 1,
                            second: i + 1,
                        });
                    }
                    positions[field as usize] = Some(i);
                }
                None => ignored.push(cell.to_string()),
            }
        }
        if width == 0 || (width == 1 && raw_cells[0].is_empty()) {
            return Err(HeaderError::Empty);
        }
        let missing: Vec<&str> = Field::ALL
            .iter()
            .filter(|f| f.required() && positions[**f as usize].is_none())
            .map(|f| f.snake_name())
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
        self.positions[field as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_and_api_headers_map_to_the_same_fields() {
        for f in Field::ALL {
            assert_eq!(Field::from_header(f.portal_name()), Some(f), "{f}");
            assert_eq!(Field::from_header(f.snake_name()), Some(f), "{f}");
        }
    }

    #[test]
    fn older_spellings_of_related_units_are_recognised() {
        for h in [
            "Related Gov't Units",
            "Related Government Units",
            "RELATED GOVT UNITS",
        ] {
            assert_eq!(Field::from_header(h), Some(Field::RelatedGovtUnits), "{h}");
        }
        assert_eq!(
            Field::from_header("\u{feff}Fiscal Year"),
            Some(Field::FiscalYear)
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
        let mut portal: Vec<&str> = Field::ALL[..22].iter().map(|f| f.portal_name()).collect();
        portal.swap(1, 20); // older exports put Revenue or Spending second
        let map = HeaderMap::from_headers(portal.iter().copied()).unwrap();
        assert_eq!(map.dialect, Dialect::Portal);
        assert_eq!(map.position(Field::RevenueOrSpending), Some(1));
        assert_eq!(map.position(Field::DataAsOf), None);

        let api: Vec<&str> = Field::ALL.iter().map(|f| f.snake_name()).collect();
        let map = HeaderMap::from_headers(api.iter().copied()).unwrap();
        assert_eq!(map.dialect, Dialect::Api);
        assert_eq!(map.width, 24);
    }

    #[test]
    fn missing_and_duplicate_columns_are_named() {
        let cells: Vec<&str> = Field::ALL[..21].iter().map(|f| f.snake_name()).collect();
        let err = HeaderMap::from_headers(cells.iter().copied()).unwrap_err();
        assert!(err.to_string().contains("no column amount"), "{err}");
        let mut cells: Vec<&str> = Field::ALL.iter().map(|f| f.snake_name()).collect();
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

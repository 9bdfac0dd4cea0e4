//! Fiscal years: San Francisco's runs July 1 to June 30, named by the year it ends in
//! (fiscal year 2025 is 2024-07-01 to 2025-06-30).

/// Earliest fiscal year the warehouse accepts.
pub const MIN_YEAR: i32 = 1900;
/// Latest fiscal year the warehouse accepts.
pub const MAX_YEAR: i32 = 2200;

/// Parses a fiscal-year field: `2025`, `"2025"`, and `2025.0` (a spreadsheet artefact).
pub fn parse_fiscal_year(text: &str) -> Option<i32> {
    let t = text.trim();
    let t = t.strip_suffix(".0").unwrap_or(t);
    if t.is_empty() || t.len() > 4 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = t.parse().ok()?;
    (MIN_YEAR..=MAX_YEAR).contains(&year).then_some(year)
}

/// The fiscal year a calendar date falls in.
pub fn fiscal_year_of(year: i32, month: u32) -> i32 {
    if month >= 7 {
        year + 1
    } else {
        year
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_years() {
        assert_eq!(parse_fiscal_year("2025"), Some(2025));
        assert_eq!(parse_fiscal_year(" 1999 "), Some(1999));
        assert_eq!(parse_fiscal_year("2025.0"), Some(2025));
        for bad in ["", "FY25", "20251", "-2025", "1800", "25.5"] {
            assert_eq!(parse_fiscal_year(bad), None, "{bad}");
        }
    }

    #[test]
    fn july_starts_the_next_fiscal_year() {
        assert_eq!(fiscal_year_of(2024, 7), 2025);
        assert_eq!(fiscal_year_of(2025, 6), 2025);
    }

    proptest! {
        #[test]
        fn every_year_in_range_round_trips(y in MIN_YEAR..=MAX_YEAR) {
            prop_assert_eq!(parse_fiscal_year(&y.to_string()), Some(y));
        }
    }
}

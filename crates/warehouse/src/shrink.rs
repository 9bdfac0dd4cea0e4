//! The shrink guard: a load replaces whole fiscal years, so a file that holds only part
//! of a year (a test upload, a truncated export, a correction of one line) would
//! replace that year with less. A load that would take a year's rows or its gross
//! amount (the sum of |amount|, which a mix of revenue and spending cannot cancel)
//! down by more than `[load] max_shrink_percent` is held instead (see the loader).
//! A normal weekly file grows the current year and restates past ones by small
//! amounts: it never trips it.

use std::collections::BTreeMap;

use citybooks_model::{format_cents, format_count};

/// One fiscal year's size: fact rows and gross amount in cents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct YearSize {
    pub rows: u64,
    pub gross_cents: i128,
}

/// How far `after` shrinks from `before`, in percent (0 when it grows or `before` is 0).
fn shrink_percent(before: f64, after: f64) -> f64 {
    if before <= 0.0 || after >= before {
        0.0
    } else {
        (before - after) / before * 100.0
    }
}

/// The fiscal years a load would shrink by more than `max_percent` (of rows or of
/// gross amount), each as a sentence; empty when the load may go ahead. Years the
/// warehouse does not have yet cannot shrink.
pub fn shrinking_years(
    before: &BTreeMap<i32, YearSize>,
    after: &BTreeMap<i32, YearSize>,
    max_percent: u32,
) -> Vec<String> {
    let max = f64::from(max_percent);
    after
        .iter()
        .filter_map(|(year, new)| {
            let old = before.get(year)?;
            let rows = shrink_percent(old.rows as f64, new.rows as f64);
            let gross = shrink_percent(old.gross_cents as f64, new.gross_cents as f64);
            (rows > max || gross > max).then(|| {
                format!(
                    "fiscal year {year} would go from {} rows to {} (-{rows:.1}%) and from ${} to ${} gross (-{gross:.1}%), more than [load] max_shrink_percent = {max_percent}",
                    format_count(old.rows),
                    format_count(new.rows),
                    format_cents(old.gross_cents),
                    format_cents(new.gross_cents),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Year, rows and gross in whole dollars.
    fn sizes(entries: &[(i32, u64, i128)]) -> BTreeMap<i32, YearSize> {
        entries
            .iter()
            .map(|&(y, rows, dollars)| {
                let gross_cents = dollars * 100;
                (y, YearSize { rows, gross_cents })
            })
            .collect()
    }

    #[test]
    fn a_one_row_file_of_a_full_year_is_held_with_a_sentence() {
        let before = sizes(&[(2024, 30_000, 9_000_000), (2025, 27_412, 8_000_000)]);
        let after = sizes(&[(2025, 1, 12)]);
        let found = shrinking_years(&before, &after, 20);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("fiscal year 2025 would go from 27,412 rows to 1 (-100.0%)"),
            "{}",
            found[0]
        );
        assert!(found[0].contains("$8000000.00 to $12.00"), "{}", found[0]);
    }

    #[test]
    fn a_weekly_file_that_grows_the_year_and_restates_a_little_goes_ahead() {
        let before = sizes(&[(2024, 30_000, 9_000_000), (2025, 20_000, 5_000_000)]);
        // 2025 grows; 2024 is restated: 2% fewer rows, 5% less gross.
        let after = sizes(&[(2024, 29_400, 8_550_000), (2025, 21_204, 5_412_000)]);
        assert!(shrinking_years(&before, &after, 20).is_empty());
        // A year new to the warehouse cannot shrink.
        assert!(shrinking_years(&before, &sizes(&[(2026, 1, 1)]), 20).is_empty());
    }

    #[test]
    fn rows_or_gross_alone_trip_it_and_the_limit_is_exclusive() {
        let before = sizes(&[(2025, 1000, 1_000)]);
        // Same rows, a quarter of the gross gone (amounts zeroed by a bad export).
        let zeroed = sizes(&[(2025, 1000, 750)]);
        assert_eq!(shrinking_years(&before, &zeroed, 20).len(), 1);
        // Exactly 20% fewer rows is allowed; 100 never holds.
        let fifth = sizes(&[(2025, 800, 1_000)]);
        assert!(shrinking_years(&before, &fifth, 20).is_empty());
        assert!(shrinking_years(&before, &sizes(&[(2025, 1, 0)]), 100).is_empty());
    }
}

//! Header and dialect recognition (`citybooks_model::dialect`).
//!
//! The input is a header line: its cells split on `,` (and on `\n`, so a corpus entry
//! can also be one cell per line). Oracle:
//! * `snake_case` never panics and gives a snake_case name: only alphanumerics that
//!   lowercase to themselves and single `_` between them, and applying it again
//!   changes nothing;
//! * `field_from_header(h) == field_from_header(snake_case(h))` (recognition goes
//!   through the normalisation only), and every field's two names are recognised;
//! * `HeaderMap::from_headers` never panics; when it accepts, every required field has
//!   a distinct position inside the width, the width is the number of cells, the
//!   ignored cells are exactly the unrecognised ones, and the dialect follows the
//!   rule (portal when more than half the cells look human); when it refuses a
//!   duplicate, the positions are in order and inside the header;
//! * the order of the cells does not change whether a header is accepted, nor which
//!   column each field maps to.

#![no_main]

use citybooks_model::dialect::snake_case;
use citybooks_model::{ledger, Dialect, HeaderError, HeaderMap};
use libfuzzer_sys::fuzz_target;

fn check_snake(cell: &str) {
    let s = snake_case(cell);
    assert!(
        !s.starts_with('_') && !s.ends_with('_'),
        "{cell:?} -> {s:?}"
    );
    assert!(!s.contains("__"), "{cell:?} -> {s:?}");
    for c in s.chars() {
        assert!(
            c == '_' || (c.is_alphanumeric() && c.to_lowercase().eq([c])),
            "{cell:?} -> {s:?}: {c:?}"
        );
    }
    assert_eq!(
        snake_case(&s),
        s,
        "snake_case is not idempotent on {cell:?}"
    );
    assert_eq!(
        ledger().field_from_header(cell),
        ledger().field_from_header(&s),
        "{cell:?} vs {s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let cells: Vec<&str> = text.split([',', '\n']).collect();
    for cell in &cells {
        check_snake(cell);
    }
    let result = HeaderMap::from_headers(cells.iter().copied());
    match &result {
        Ok(map) => {
            assert_eq!(map.width, cells.len());
            let mut seen = vec![false; map.width];
            let mut found = 0;
            for f in ledger().fields() {
                match map.position(f) {
                    Some(i) => {
                        assert!(i < map.width);
                        assert!(!seen[i], "two fields at column {i}");
                        seen[i] = true;
                        assert_eq!(
                            ledger()
                                .field_from_header(cells[i].trim_start_matches('\u{feff}').trim()),
                            Some(f)
                        );
                        found += 1;
                    }
                    None => assert!(!ledger().required(f), "{f} is required"),
                }
            }
            assert_eq!(found + map.ignored.len(), map.width);
            let human = cells
                .iter()
                .map(|c| c.trim_start_matches('\u{feff}').trim())
                .filter(|c| c.chars().any(|ch| ch.is_uppercase() || ch == ' '))
                .count();
            let want = if human * 2 > map.width {
                Dialect::Portal
            } else {
                Dialect::Api
            };
            assert_eq!(map.dialect, want);
        }
        Err(HeaderError::DuplicateColumn { first, second, .. }) => {
            assert!(first < second && *second <= cells.len());
        }
        Err(HeaderError::Empty) => {
            assert!(cells.len() == 1 && cells[0].trim_start_matches('\u{feff}').trim().is_empty());
        }
        Err(HeaderError::MissingColumn { missing, .. }) => assert!(!missing.is_empty()),
    }

    // Reversing the cells: accepted alike, each field at the mirrored column.
    let reversed = HeaderMap::from_headers(cells.iter().rev().copied());
    assert_eq!(result.is_ok(), reversed.is_ok(), "{cells:?}");
    if let (Ok(a), Ok(b)) = (&result, &reversed) {
        for f in ledger().fields() {
            assert_eq!(a.position(f).map(|i| a.width - 1 - i), b.position(f), "{f}");
        }
    }

    // The two names of every field are recognised (cheap; keeps the oracle honest).
    if data.is_empty() {
        let ledger = ledger();
        for f in ledger.fields() {
            assert_eq!(ledger.field_from_header(f.name()), Some(f));
            assert_eq!(ledger.field_from_header(ledger.column(f).header), Some(f));
        }
    }
});

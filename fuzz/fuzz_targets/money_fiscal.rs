//! Money and fiscal-year parsing (`citybooks_model::money`, `citybooks_model::fiscal`).
//!
//! Oracle, for any text:
//! * `parse_amount` never panics; what it accepts is within `numeric(20,2)`, and
//!   `format_cents` of it parses back to the same cents (and formats the same again);
//! * on plain decimals (`-?[0-9]+(\.[0-9]*)?`, at most two non-zero decimals) it agrees
//!   with a reference parser written independently;
//! * adding surrounding spaces, a `$`, or turning `-x` into `(x)` does not change the
//!   value;
//! * `parse_fiscal_year` never panics; a year it accepts is in range, its decimal text
//!   parses back to it, and the text held those digits;
//! * for the first 16 bytes read as an `i128` of cents: `format_cents` then
//!   `parse_amount` gives the cents back inside the range, and an overflow error
//!   outside it.

#![no_main]

use citybooks_model::fiscal::{fiscal_year_of, parse_fiscal_year, MAX_YEAR, MIN_YEAR};
use citybooks_model::money::{MoneyError, MAX_CENTS};
use citybooks_model::{format_cents, parse_amount};
use libfuzzer_sys::fuzz_target;

/// A reference parser for plain decimals only; `None` when the text is not one.
fn reference(text: &str) -> Option<Result<i128, ()>> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 2 && frac[2..].bytes().any(|b| b != b'0') {
        return Some(Err(()));
    }
    let int = int.trim_start_matches('0');
    if int.len() > 18 {
        return Some(Err(()));
    }
    let whole: i128 = if int.is_empty() {
        0
    } else {
        int.parse().unwrap()
    };
    let mut cents = whole * 100;
    let f = frac.as_bytes();
    if let Some(d) = f.first() {
        cents += i128::from(d - b'0') * 10;
    }
    if let Some(d) = f.get(1) {
        cents += i128::from(d - b'0');
    }
    Some(Ok(if negative { -cents } else { cents }))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    match parse_amount(text) {
        Ok(cents) => {
            assert!(cents.abs() <= MAX_CENTS, "{text:?} -> {cents}");
            let formatted = format_cents(cents);
            assert_eq!(
                parse_amount(&formatted),
                Ok(cents),
                "{text:?} -> {formatted}"
            );
            assert_eq!(format_cents(parse_amount(&formatted).unwrap()), formatted);
            // Decorations that must not change the value.
            let core = text.trim();
            assert_eq!(parse_amount(&format!("  {core}\t")), Ok(cents), "{text:?}");
            if !core.starts_with(['$', '(', '-', '+']) {
                assert_eq!(parse_amount(&format!("${core}")), Ok(cents), "{text:?}");
                assert_eq!(parse_amount(&format!("({core})")), Ok(-cents), "{text:?}");
                assert_eq!(parse_amount(&format!("-{core}")), Ok(-cents), "{text:?}");
            }
        }
        Err(e) => {
            let _ = e.to_string();
            if text.trim().is_empty() {
                assert_eq!(e, MoneyError::Empty);
            }
        }
    }
    if let Some(want) = reference(text) {
        match want {
            Ok(c) if c.abs() <= MAX_CENTS => {
                assert_eq!(parse_amount(text), Ok(c), "{text:?}")
            }
            _ => assert!(parse_amount(text).is_err(), "{text:?}"),
        }
    }

    if let Some(year) = parse_fiscal_year(text) {
        assert!((MIN_YEAR..=MAX_YEAR).contains(&year), "{text:?} -> {year}");
        assert_eq!(parse_fiscal_year(&year.to_string()), Some(year));
        assert!(text.contains(&year.to_string()), "{text:?} -> {year}");
        for month in 1..=12 {
            let fy = fiscal_year_of(year, month);
            assert!(fy == year || fy == year + 1);
        }
    }

    if data.len() >= 16 {
        let cents = i128::from_le_bytes(data[..16].try_into().unwrap());
        let text = format_cents(cents);
        if cents.unsigned_abs() <= MAX_CENTS as u128 {
            assert_eq!(parse_amount(&text), Ok(cents), "{text}");
        } else {
            assert!(
                matches!(parse_amount(&text), Err(MoneyError::Overflow(_))),
                "{text}"
            );
        }
        // The same cents scaled into range.
        let small = cents % (MAX_CENTS + 1);
        assert_eq!(parse_amount(&format_cents(small)), Ok(small));
    }
});

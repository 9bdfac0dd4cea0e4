//! Exact money: amounts are integer cents (`i128`), stored as Arrow `Decimal128(20, 2)`.
//!
//! The ledger's amounts are signed decimals with at most two places. Summing them as
//! floating point loses cents over hundreds of thousands of rows, so they never pass
//! through `f64`: the text is parsed straight into cents.

/// Precision and scale of every amount column (`numeric(20,2)` in the original ERD).
pub const PRECISION: u8 = 20;
/// Digits after the decimal point.
pub const SCALE: i8 = 2;
/// The largest magnitude `numeric(20,2)` holds, in cents.
pub const MAX_CENTS: i128 = 10i128.pow(PRECISION as u32) - 1;

/// Why a text is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("empty amount")]
    Empty,
    #[error("{0:?} is not an amount: unexpected character {1:?}")]
    BadChar(String, char),
    #[error("{0:?} is not an amount: no digits")]
    NoDigits(String),
    #[error("{0:?} has fractions of a cent (more than two non-zero decimals)")]
    SubCent(String),
    #[error("{0:?} does not fit numeric(20,2)")]
    Overflow(String),
    #[error("{0:?} is not an amount: misplaced thousands separator")]
    BadSeparator(String),
}

/// Parses an amount into cents.
///
/// Accepts an optional sign (`-`, `+`, or accounting parentheses), an optional `$`
/// before or after the sign, thousands separators between digits (`1,234.56`),
/// surrounding spaces, and up to two decimals (further decimals must be zeros:
/// `12.500` is fine, `12.345` is not).
pub fn parse_amount(text: &str) -> Result<i128, MoneyError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(MoneyError::Empty);
    }
    let (negative, rest) = split_sign(text, trimmed)?;
    let mut digits = Digits::new(text);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.digit(c as i128 - '0' as i128)?,
            ',' if digits.decimals.is_none() => digits.thousands_separator()?,
            '.' if digits.decimals.is_none() => digits.decimal_point()?,
            other => return Err(MoneyError::BadChar(text.to_string(), other)),
        }
    }
    let cents = digits.cents()?;
    Ok(if negative { -cents } else { cents })
}

/// The sign of a trimmed amount (`-`, `+` or accounting parentheses, with a `$` before
/// or after it) and the digits after it.
fn split_sign<'a>(text: &str, trimmed: &'a str) -> Result<(bool, &'a str), MoneyError> {
    let bad = |c: char| MoneyError::BadChar(text.to_string(), c);
    let mut rest = trimmed;
    let mut negative = false;
    let mut parens = false;
    if let Some(inner) = rest.strip_prefix('(') {
        rest = inner.strip_suffix(')').ok_or_else(|| bad('('))?;
        parens = true;
        negative = true;
    }
    rest = rest.trim_start_matches('$').trim_start();
    if let Some(r) = rest.strip_prefix('-') {
        if parens {
            return Err(bad('-'));
        }
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    Ok((negative, rest.strip_prefix('$').unwrap_or(rest)))
}

/// The digits of an amount read so far, as cents, with what the separators allow next.
struct Digits<'a> {
    /// The whole amount, for errors.
    text: &'a str,
    cents: i128,
    digits: usize,
    /// Digits after the decimal point (None: no point yet).
    decimals: Option<u32>,
    prev_digit: bool,
    /// Digits since the last thousands separator (None: none yet).
    group_len: Option<usize>,
}

impl<'a> Digits<'a> {
    fn new(text: &'a str) -> Digits<'a> {
        Digits {
            text,
            cents: 0,
            digits: 0,
            decimals: None,
            prev_digit: false,
            group_len: None,
        }
    }

    fn overflow(&self) -> MoneyError {
        MoneyError::Overflow(self.text.to_string())
    }

    fn bad_separator(&self) -> MoneyError {
        MoneyError::BadSeparator(self.text.to_string())
    }

    fn shift_in(&mut self, d: i128) -> Result<(), MoneyError> {
        self.cents = self
            .cents
            .checked_mul(10)
            .and_then(|v| v.checked_add(d))
            .ok_or_else(|| self.overflow())?;
        Ok(())
    }

    /// A digit: before the point, in the cents, or a third decimal that must be zero.
    fn digit(&mut self, d: i128) -> Result<(), MoneyError> {
        match self.decimals {
            None => {
                self.shift_in(d)?;
                if let Some(g) = self.group_len.as_mut() {
                    *g += 1;
                }
            }
            Some(n) if n < 2 => {
                self.shift_in(d)?;
                self.decimals = Some(n + 1);
            }
            Some(_) if d != 0 => return Err(MoneyError::SubCent(self.text.to_string())),
            Some(_) => {}
        }
        self.digits += 1;
        self.prev_digit = true;
        Ok(())
    }

    /// `,` between groups of three digits.
    fn thousands_separator(&mut self) -> Result<(), MoneyError> {
        if !self.prev_digit || self.group_len.is_some_and(|g| g != 3) {
            return Err(self.bad_separator());
        }
        self.group_len = Some(0);
        self.prev_digit = false;
        Ok(())
    }

    /// `.`, after a complete group of three when there were separators.
    fn decimal_point(&mut self) -> Result<(), MoneyError> {
        if self.group_len.is_some_and(|g| g != 3) || (self.group_len.is_some() && !self.prev_digit)
        {
            return Err(self.bad_separator());
        }
        self.decimals = Some(0);
        self.prev_digit = false;
        Ok(())
    }

    /// The amount in cents, once every character is read.
    fn cents(self) -> Result<i128, MoneyError> {
        if self.digits == 0 {
            return Err(MoneyError::NoDigits(self.text.to_string()));
        }
        if self.group_len.is_some_and(|g| g != 3) {
            return Err(self.bad_separator());
        }
        let scale_up = 2 - self.decimals.unwrap_or(0).min(2);
        let cents = self
            .cents
            .checked_mul(10i128.pow(scale_up))
            .ok_or_else(|| self.overflow())?;
        if cents > MAX_CENTS {
            return Err(self.overflow());
        }
        Ok(cents)
    }
}

/// Formats cents as a plain decimal with two places: `-1234.50`.
pub fn format_cents(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A change of money as a sentence says it: a sign, then dollars rounded to what a
/// reader takes in (`+$41.2M`, `−$3.1K`, `+$512.40`; `$0.00` for none).
pub fn format_change(cents: i128) -> String {
    let sign = match cents.signum() {
        1 => "+",
        -1 => "\u{2212}",
        _ => "",
    };
    let dollars = cents.unsigned_abs() as f64 / 100.0;
    let shown = match dollars {
        d if d >= 1e9 => format!("{:.1}B", d / 1e9),
        d if d >= 1e6 => format!("{:.1}M", d / 1e6),
        d if d >= 1e4 => format!("{:.1}K", d / 1e3),
        d => format!("{d:.2}"),
    };
    format!("{sign}${shown}")
}

/// A count with thousands separators, as reports print it: `27412` as `27,412`.
pub fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn changes_read_as_people_say_them() {
        use super::format_change;
        assert_eq!(format_change(4_123_456_789), "+$41.2M");
        assert_eq!(format_change(-3_100_000), "\u{2212}$31.0K");
        assert_eq!(format_change(51_240), "+$512.40");
        assert_eq!(format_change(0), "$0.00");
        assert_eq!(format_change(-250_000_000_000), "\u{2212}$2.5B");
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1000), "1,000");
        assert_eq!(format_count(27_412), "27,412");
        assert_eq!(format_count(1_234_567), "1,234,567");
    }

    #[test]
    fn accepts_the_shapes_of_both_exports() {
        let cases = [
            ("2169166.5", 216916650),
            ("-10242888.26", -1024288826),
            ("1,234.56", 123456),
            ("$1,234.56", 123456),
            ("-$1,234", -123400),
            ("$-1,234", -123400),
            ("(1,234.50)", -123450),
            (" 42 ", 4200),
            ("+7.", 700),
            (".5", 50),
            ("0", 0),
            ("12.500", 1250),
            ("1,000,000.00", 100000000),
        ];
        for (text, cents) in cases {
            assert_eq!(parse_amount(text), Ok(cents), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_money() {
        for text in [
            "",
            "abc",
            "1.2.3",
            "12.345",
            "1,23",
            "1,2345.00",
            ",123",
            "12-",
            "--1",
            "1e5",
            "$",
            "(-1)",
        ] {
            assert!(parse_amount(text).is_err(), "{text:?} should be rejected");
        }
        assert!(matches!(
            parse_amount("123456789012345678901"),
            Err(MoneyError::Overflow(_))
        ));
        assert_eq!(parse_amount("999999999999999999.99"), Ok(MAX_CENTS));
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(cents in -MAX_CENTS..=MAX_CENTS) {
            prop_assert_eq!(parse_amount(&format_cents(cents)), Ok(cents));
        }

        #[test]
        fn thousands_separators_and_dollar_signs_do_not_change_the_value(cents in -(10i128.pow(15))..10i128.pow(15)) {
            let plain = format_cents(cents.abs());
            let (int, frac) = plain.split_once('.').unwrap();
            let mut grouped = String::new();
            for (i, c) in int.chars().enumerate() {
                if i > 0 && (int.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(c);
            }
            let sign = if cents < 0 { "-" } else { "" };
            let text = format!("{sign}${grouped}.{frac}");
            prop_assert_eq!(parse_amount(&text), Ok(cents));
        }

        #[test]
        fn never_panics_on_any_text(text in ".{0,40}") {
            let _ = parse_amount(&text);
        }

        #[test]
        fn exact_sums_do_not_drift(values in proptest::collection::vec(-10i128.pow(12)..10i128.pow(12), 0..200)) {
            let parsed: i128 = values.iter().map(|c| parse_amount(&format_cents(*c)).unwrap()).sum();
            prop_assert_eq!(parsed, values.iter().sum::<i128>());
        }
    }
}

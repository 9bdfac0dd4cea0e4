//! The conformance of one row (`citybooks_model::conform`): rules 1–5 on a `RawRow`,
//! then rule 6 (`CodeChooser`) on its members.
//!
//! The input is one record: its fields, in the API export's column order, separated by
//! `|` (or a tab). Oracle:
//! * `conform_row` never panics, and `RawRow::new` and `RawRow::from_pairs` give the
//!   same result;
//! * a conformed row's amount is `parse_amount` of the raw amount, within
//!   `numeric(20,2)`, and `format_cents` of it parses back to the same cents; its fiscal
//!   year is `parse_fiscal_year` of the raw year, in range, and its decimal text parses
//!   back to it; every integer column's text parses back to it;
//! * every member value of a conformed row is non-empty and trimmed, the finance id is
//!   1 or 2 and every yes/no column is Yes or No;
//! * each hierarchy's member has its table's columns, and rule 6 with one row keeps
//!   every code as it is (and conforming twice changes nothing).

#![no_main]

use citybooks_model::conform::{conform_row, REVENUE_ID, SPENDING_ID};
use citybooks_model::fiscal::{parse_fiscal_year, MAX_YEAR, MIN_YEAR};
use citybooks_model::ledger::{Kind, MAX_COLUMNS};
use citybooks_model::money::MAX_CENTS;
use citybooks_model::{format_cents, ledger, parse_amount, CodeChooser, RawRow, Table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ledger = ledger();
    let fields_of: Vec<_> = ledger.fields().collect();
    let mut fields = [""; MAX_COLUMNS];
    let mut pairs = Vec::new();
    for (i, v) in text.split(['|', '\t']).enumerate().take(ledger.width()) {
        fields[i] = v;
        pairs.push((fields_of[i], v));
    }
    let raw = RawRow::new(fields);
    let from_pairs = RawRow::from_pairs(&pairs);
    for f in ledger.fields() {
        assert_eq!(raw.get(f), from_pairs.get(f));
        assert_eq!(raw.get(f), raw.get(f).trim());
    }
    let result = conform_row(&raw);
    assert_eq!(result, conform_row(&from_pairs));
    let Ok(row) = result else {
        if let Err(e) = &result {
            let _ = (e.to_string(), e.field());
        }
        return;
    };

    // Amount: exact, in range, and round-trips through its text.
    assert_eq!(parse_amount(raw.get(ledger.amount)), Ok(row.amount));
    assert!(row.amount.abs() <= MAX_CENTS);
    assert_eq!(parse_amount(&format_cents(row.amount)), Ok(row.amount));
    // Fiscal year: in range, and round-trips through its text.
    assert_eq!(
        parse_fiscal_year(raw.get(ledger.fiscal_year)),
        Some(row.fiscal_year)
    );
    assert!((MIN_YEAR..=MAX_YEAR).contains(&row.fiscal_year));
    assert_eq!(
        parse_fiscal_year(&row.fiscal_year.to_string()),
        Some(row.fiscal_year)
    );
    assert!(row.finance_id == SPENDING_ID || row.finance_id == REVENUE_ID);
    for layout in &ledger.layouts {
        let member = row.member(layout);
        assert_eq!(
            member.0.len() + 1,
            Table::dimension(layout).schema().fields().len()
        );
        for (column, v) in layout.columns.iter().zip(row.member_values(layout)) {
            assert!(!v.is_empty(), "{} is empty", column.name);
            assert_eq!(*v, v.trim(), "{} is not trimmed", column.name);
            match column.kind {
                Kind::Integer => assert!(v.parse::<i32>().is_ok(), "{}: {v:?}", column.name),
                Kind::YesNo => assert!(*v == "Yes" || *v == "No"),
                Kind::Text | Kind::Code => {}
            }
        }
        for (column, v) in layout.columns.iter().zip(&member.0) {
            if column.kind == Kind::Integer {
                assert_eq!(v.parse::<i32>().map(|n| n.to_string()).as_ref(), Ok(v));
            }
        }

        // Rule 6 with a single row has nothing to choose between.
        let mut chooser = CodeChooser::new();
        chooser.observe_member(layout, &member, 1);
        let report = chooser.decide();
        assert!(report.is_empty(), "{report:?}");
        assert_eq!(chooser.conform(layout, &member), member);
        // Two rows of the same names with another code at the finest level: the more
        // frequent code wins.
        let (_, code) = layout.level_positions(layout.hierarchy.levels.len() - 1);
        let mut other = member.clone();
        other.0[code].push('x');
        let mut chooser = CodeChooser::new();
        chooser.observe_member(layout, &member, 2);
        chooser.observe_member(layout, &other, 1);
        let report = chooser.decide();
        assert_eq!(report.len(), 1, "{report:?}");
        let _ = report[0].to_string();
        assert_eq!(chooser.conform(layout, &other), member);
        assert_eq!(
            chooser.conform(layout, &chooser.conform(layout, &other)),
            member
        );
    }
    if let Some(d) = row.data_as_of {
        assert!(!d.is_empty());
    }
});

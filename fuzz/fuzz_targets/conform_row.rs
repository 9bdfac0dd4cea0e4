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
//!   back to it; the organization group code's text parses back to it;
//! * every name and code of a conformed row is non-empty and trimmed, the finance id is
//!   1 or 2 and related-government-units is Yes or No;
//! * the three members round-trip through their attributes, and rule 6 with one row
//!   keeps every code as it is (and conforming twice changes nothing).

#![no_main]

use citybooks_model::conform::{conform_row, REVENUE_ID, SPENDING_ID};
use citybooks_model::fiscal::{parse_fiscal_year, MAX_YEAR, MIN_YEAR};
use citybooks_model::money::MAX_CENTS;
use citybooks_model::{
    format_cents, parse_amount, CodeChooser, Field, FundMember, Member, ProgramMember, RawRow,
    TypeMember,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut fields = [""; Field::COUNT];
    let mut pairs = Vec::new();
    for (i, v) in text.split(['|', '\t']).enumerate().take(Field::COUNT) {
        fields[i] = v;
        pairs.push((Field::ALL[i], v));
    }
    let raw = RawRow::new(fields);
    let from_pairs = RawRow::from_pairs(&pairs);
    for f in Field::ALL {
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
    assert_eq!(parse_amount(raw.get(Field::Amount)), Ok(row.amount));
    assert!(row.amount.abs() <= MAX_CENTS);
    assert_eq!(parse_amount(&format_cents(row.amount)), Ok(row.amount));
    // Fiscal year: in range, and round-trips through its text.
    assert_eq!(
        parse_fiscal_year(raw.get(Field::FiscalYear)),
        Some(row.fiscal_year)
    );
    assert!((MIN_YEAR..=MAX_YEAR).contains(&row.fiscal_year));
    assert_eq!(
        parse_fiscal_year(&row.fiscal_year.to_string()),
        Some(row.fiscal_year)
    );
    assert_eq!(
        row.organization_group_code.to_string().parse::<i32>(),
        Ok(row.organization_group_code)
    );
    assert!(row.finance_id == SPENDING_ID || row.finance_id == REVENUE_ID);
    assert!(row.related_govt_units == "Yes" || row.related_govt_units == "No");
    for (name, v) in [
        ("organization_group", row.organization_group),
        ("department_code", row.department_code),
        ("department", row.department),
        ("program_code", row.program_code),
        ("program", row.program),
        ("character_code", row.character_code),
        ("character", row.character),
        ("object_code", row.object_code),
        ("object", row.object),
        ("sub_object_code", row.sub_object_code),
        ("sub_object", row.sub_object),
        ("fund_type_code", row.fund_type_code),
        ("fund_type", row.fund_type),
        ("fund_code", row.fund_code),
        ("fund", row.fund),
        ("fund_category_code", row.fund_category_code),
        ("fund_category", row.fund_category),
    ] {
        assert!(!v.is_empty(), "{name} is empty");
        assert_eq!(v, v.trim(), "{name} is not trimmed");
    }
    if let Some(d) = row.data_as_of {
        assert!(!d.is_empty());
    }

    // Members round-trip through their attributes.
    let (p, t, f) = (row.program_member(), row.type_member(), row.fund_member());
    assert_eq!(
        ProgramMember::from_attributes(&p.attributes()),
        Some(p.clone())
    );
    assert_eq!(
        TypeMember::from_attributes(&t.attributes()),
        Some(t.clone())
    );
    assert_eq!(
        FundMember::from_attributes(&f.attributes()),
        Some(f.clone())
    );

    // Rule 6 with a single row has nothing to choose between.
    let mut chooser = CodeChooser::new();
    chooser.observe_program(&p, 1);
    chooser.observe_type(&t, 1);
    chooser.observe_fund(&f, 1);
    let report = chooser.decide();
    assert!(report.is_empty(), "{report:?}");
    assert_eq!(chooser.conform_program(&p), p);
    assert_eq!(chooser.conform_type(&t), t);
    assert_eq!(chooser.conform_fund(&f), f);
    // Two rows of the same names with another code: the more frequent code wins.
    let mut other = f.clone();
    other.fund_code.push('x');
    let mut chooser = CodeChooser::new();
    chooser.observe_fund(&f, 2);
    chooser.observe_fund(&other, 1);
    let report = chooser.decide();
    assert_eq!(report.len(), 1, "{report:?}");
    let _ = report[0].to_string();
    assert_eq!(chooser.conform_fund(&other), f);
    assert_eq!(chooser.conform_fund(&chooser.conform_fund(&other)), f);
});

//! The conformance rules of the original model (DOMAIN.md), in one place.
//!
//! | rule | what | where |
//! | --- | --- | --- |
//! | 1 | `related_govt_units` becomes `Yes` / `No` | [`conform_row`] |
//! | 2 | a row with no department is quarantined (never dropped silently) | [`conform_row`] |
//! | 3 | missing program / code become `No Program` / `No Program Code` | [`conform_row`] |
//! | 4 | missing character, object, object code, NKEY sub-object become `No ...` | [`conform_row`] |
//! | 5 | missing fund category / code become `No Fund Category` / `No Fund Category Code` | [`conform_row`] |
//! | 6 | within one parent, one name has one code: the most frequent (ties: the smallest) | [`CodeChooser`] |
//! | 7 | column names become snake_case | [`crate::dialect`] |
//!
//! Rules 1–5 work on one row; rule 6 needs the code frequencies of the whole file, so
//! the loader counts distinct dimension tuples first and conforms them afterwards.
//!
//! Decisions of ours beyond the original rules, applied the same way: every other
//! missing name or code of the program, type and fund hierarchies becomes
//! `No <Level>` / `No <Level> Code`; organization group codes are integers (`01` = `1`);
//! fund category codes lose the `.0` artefact (`1.0` = `1`); fields are trimmed.

use std::collections::HashMap;
use std::fmt;

use crate::dialect::Field;
use crate::fiscal::parse_fiscal_year;
use crate::ledger::{ledger, Column, Kind, Layout, Missing, FIXED, MAX_COLUMNS};
use crate::money::{parse_amount, MoneyError};

/// `finance_id` of spending rows (the original ERD's numbering).
pub const SPENDING_ID: i32 = 1;
/// `finance_id` of revenue rows.
pub const REVENUE_ID: i32 = 2;

/// The fields of one CSV record, by [`Field`], before any rule.
#[derive(Debug, Clone, Copy)]
pub struct RawRow<'a> {
    fields: [&'a str; MAX_COLUMNS],
}

impl<'a> RawRow<'a> {
    /// A row from its fields, indexed by [`Field::index`] (absent fields empty).
    pub fn new(fields: [&'a str; MAX_COLUMNS]) -> Self {
        RawRow { fields }
    }

    /// Builds a row from `(field, value)` pairs; absent fields are empty.
    pub fn from_pairs(pairs: &[(Field, &'a str)]) -> Self {
        let mut fields = [""; MAX_COLUMNS];
        for (f, v) in pairs {
            fields[f.index()] = v;
        }
        RawRow { fields }
    }

    /// The trimmed value of `field` (empty when absent).
    pub fn get(&self, field: Field) -> &'a str {
        self.fields[field.index()].trim()
    }
}

/// Why a row cannot be loaded; it goes to `meta.quarantine` with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConformError {
    #[error("expected {expected} fields as in the header, found {found}")]
    WrongFieldCount { expected: usize, found: usize },
    #[error("no {name} (rule 2): {name} and {code} are both required")]
    NoMember {
        name: &'static str,
        code: &'static str,
    },
    #[error("fiscal_year {0:?} is not a year")]
    BadFiscalYear(String),
    #[error("amount: {0}")]
    BadAmount(MoneyError),
    #[error("revenue_or_spending {0:?} is neither Revenue nor Spending")]
    BadRevenueOrSpending(String),
    #[error("{column} {value:?} is neither Yes nor No")]
    BadYesNo { column: &'static str, value: String },
    #[error("{column} {value:?} is not an integer")]
    BadInteger { column: &'static str, value: String },
    #[error("no {}: {column} is required", .label.to_lowercase())]
    Required {
        label: &'static str,
        column: &'static str,
    },
}

impl ConformError {
    /// The column at fault, if one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ConformError::WrongFieldCount { .. } => None,
            ConformError::NoMember { name, .. } => Some(name),
            ConformError::BadFiscalYear(_) => Some(FIXED.fiscal_year.name),
            ConformError::BadAmount(_) => Some(FIXED.amount.name),
            ConformError::BadRevenueOrSpending(_) => Some(FIXED.revenue_or_spending.name),
            ConformError::BadYesNo { column, .. }
            | ConformError::BadInteger { column, .. }
            | ConformError::Required { column, .. } => Some(column),
        }
    }
}

/// A member of a dimension, without its id: its values in the table's column order
/// after the id ([`Layout::columns`]; integers as their decimal text).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member(pub Vec<String>);

impl Member {
    /// The value of the member's column `name` in `layout`.
    pub fn get(&self, layout: &Layout, name: &str) -> Option<&str> {
        let i = layout.columns.iter().position(|c| c.name == name)?;
        Some(self.0[i].as_str())
    }
}

/// One row after rules 1–5, borrowing the record's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    pub fiscal_year: i32,
    pub finance_id: i32,
    /// Exact amount in cents.
    pub amount: i128,
    pub data_as_of: Option<&'a str>,
    /// Every hierarchy's member values, hierarchy after hierarchy, each in its table's
    /// column order ([`Layout::values`]).
    values: [&'a str; MAX_COLUMNS],
}

impl<'a> Row<'a> {
    /// The values of the member of hierarchy `layout`, before rule 6.
    pub fn member_values(&self, layout: &Layout) -> &[&'a str] {
        &self.values[layout.values.clone()]
    }

    /// The member of hierarchy `layout` this row belongs to, before rule 6.
    pub fn member(&self, layout: &Layout) -> Member {
        Member(
            self.member_values(layout)
                .iter()
                .zip(&layout.columns)
                .map(|(v, c)| match c.kind {
                    // One text per integer: `01` and `1` are one member.
                    Kind::Integer => v.parse::<i64>().map_or(v.to_string(), |n| n.to_string()),
                    _ => v.to_string(),
                })
                .collect(),
        )
    }

    /// The value of the column `name` (snake_case), after rules 1–5.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        ledger().layouts.iter().find_map(|l| {
            let i = l.columns.iter().position(|c| c.name == name)?;
            Some(self.values[l.values.start + i])
        })
    }
}

/// One column's value after its rule: trimmed, its placeholder when empty, checked.
fn conform_value<'a>(column: &Column, value: &'a str) -> Result<&'a str, ConformError> {
    if value.is_empty() {
        return match column.missing {
            Missing::Placeholder(p) => Ok(p),
            Missing::Refuse if column.kind == Kind::Integer => Err(ConformError::BadInteger {
                column: column.name,
                value: String::new(),
            }),
            Missing::Refuse if column.kind == Kind::YesNo => Err(ConformError::BadYesNo {
                column: column.name,
                value: String::new(),
            }),
            Missing::Refuse => Err(ConformError::Required {
                label: column.name_words(),
                column: column.name,
            }),
        };
    }
    match column.kind {
        Kind::Text => Ok(value),
        Kind::Code => Ok(value.strip_suffix(".0").unwrap_or(value)),
        Kind::Integer => {
            let digits = value.strip_suffix(".0").unwrap_or(value);
            digits
                .parse::<i32>()
                .map(|_| digits)
                .map_err(|_| ConformError::BadInteger {
                    column: column.name,
                    value: value.to_string(),
                })
        }
        // Rule 1.
        Kind::YesNo => {
            if value.eq_ignore_ascii_case("no") || value.eq_ignore_ascii_case("n") {
                Ok("No")
            } else if value.eq_ignore_ascii_case("yes") || value.eq_ignore_ascii_case("y") {
                Ok("Yes")
            } else {
                Err(ConformError::BadYesNo {
                    column: column.name,
                    value: value.to_string(),
                })
            }
        }
    }
}

impl Column {
    /// The column's name in words, as an error message says it: `organization group`.
    pub fn name_words(&self) -> &'static str {
        ledger()
            .layouts
            .iter()
            .flat_map(|l| l.hierarchy.levels)
            .find(|l| l.name.name == self.name)
            .map_or(self.name, |l| l.label)
    }
}

/// Rules 1–5 on one row, for the ledger in use.
pub fn conform_row<'a>(raw: &RawRow<'a>) -> Result<Row<'a>, ConformError> {
    let ledger = ledger();
    let fiscal_year = parse_fiscal_year(raw.get(ledger.fiscal_year))
        .ok_or_else(|| ConformError::BadFiscalYear(raw.get(ledger.fiscal_year).to_string()))?;
    // Rule 2, level by level.
    for layout in &ledger.layouts {
        for (i, level) in layout.hierarchy.levels.iter().enumerate() {
            let (name, code) = layout.level_positions(i);
            if level.required
                && raw.get(layout.fields[name]).is_empty()
                && raw.get(layout.fields[code]).is_empty()
            {
                return Err(ConformError::NoMember {
                    name: level.name.name,
                    code: level.code.name,
                });
            }
        }
    }
    let amount = parse_amount(raw.get(ledger.amount)).map_err(ConformError::BadAmount)?;
    let rs = raw.get(ledger.revenue_or_spending);
    let finance_id = if rs.eq_ignore_ascii_case("spending") {
        SPENDING_ID
    } else if rs.eq_ignore_ascii_case("revenue") {
        REVENUE_ID
    } else {
        return Err(ConformError::BadRevenueOrSpending(rs.to_string()));
    };
    // Rules 1, 3, 4 and 5: each column by its description.
    // Checked in the source's column order (the reverse of a member's), so a row
    // with several faults is refused for the first one in the file.
    let mut values = [""; MAX_COLUMNS];
    for layout in &ledger.layouts {
        for (j, (column, field)) in layout.columns.iter().zip(&layout.fields).enumerate().rev() {
            values[layout.values.start + j] = conform_value(column, raw.get(*field))?;
        }
    }
    let data_as_of = Some(raw.get(ledger.data_as_of)).filter(|s| !s.is_empty());
    Ok(Row {
        fiscal_year,
        finance_id,
        amount,
        data_as_of,
        values,
    })
}

/// One name that carried several codes inside its parent, and the code it now has.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CodeChoice {
    /// Where the level sits in the ledger (hierarchy, level): the report's order.
    pub rank: (usize, usize),
    /// The level's name column: `department`.
    pub level: &'static str,
    /// Names of the ancestors, top first.
    pub parent: Vec<String>,
    pub name: String,
    pub chosen: String,
    /// Every code seen, with its row count, most frequent first.
    pub codes: Vec<(String, u64)>,
}

impl fmt::Display for CodeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = self.parent.join(" / ");
        if !path.is_empty() {
            path.push_str(" / ");
        }
        let seen: Vec<String> = self
            .codes
            .iter()
            .map(|(c, n)| format!("{c} ({n} rows)"))
            .collect();
        write!(
            f,
            "{}: {}{:?} had codes {} -> {}",
            self.level,
            path,
            self.name,
            seen.join(", "),
            self.chosen
        )
    }
}

/// (hierarchy, level) of the ledger, and the names from the top down to the member.
type PathKey = ((usize, usize), Vec<String>);

/// Rule 6: counts the codes each name carries inside its parent, then picks one code
/// per name — the most frequent by rows, ties broken by the smallest code.
#[derive(Debug, Default)]
pub struct CodeChooser {
    counts: HashMap<PathKey, HashMap<String, u64>>,
    chosen: HashMap<PathKey, String>,
}

impl CodeChooser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `rows` rows have `code` for the name at the end of `path`, at
    /// level `level` (0 = the broadest) of hierarchy number `hierarchy`.
    pub fn observe(
        &mut self,
        hierarchy: usize,
        level: usize,
        path: &[&str],
        code: &str,
        rows: u64,
    ) {
        let key = (
            (hierarchy, level),
            path.iter().map(|s| s.to_string()).collect(),
        );
        *self
            .counts
            .entry(key)
            .or_default()
            .entry(code.to_string())
            .or_default() += rows;
    }

    /// Records a member of hierarchy `layout` seen on `rows` rows: each level's code
    /// under the names of the levels above it.
    pub fn observe_member(&mut self, layout: &Layout, m: &Member, rows: u64) {
        let h = layout.number;
        let mut path: Vec<&str> = Vec::new();
        for level in 0..layout.hierarchy.levels.len() {
            let (name, code) = layout.level_positions(level);
            path.push(&m.0[name]);
            self.observe(h, level, &path, &m.0[code], rows);
        }
    }

    /// Decides every name's code; returns the names that had more than one, sorted.
    pub fn decide(&mut self) -> Vec<CodeChoice> {
        let ledger = ledger();
        let mut report = Vec::new();
        for (key, codes) in &self.counts {
            let mut ranked: Vec<(String, u64)> =
                codes.iter().map(|(c, n)| (c.clone(), *n)).collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let chosen = ranked[0].0.clone();
            if ranked.len() > 1 {
                let mut parent = key.1.clone();
                let name = parent.pop().unwrap_or_default();
                let (h, l) = key.0;
                report.push(CodeChoice {
                    rank: key.0,
                    level: ledger.layouts[h].hierarchy.levels[l].name.name,
                    parent,
                    name,
                    chosen: chosen.clone(),
                    codes: ranked,
                });
            }
            self.chosen.insert(key.clone(), chosen);
        }
        report.sort();
        report
    }

    /// The member with its codes conformed (after [`CodeChooser::decide`]).
    pub fn conform(&self, layout: &Layout, m: &Member) -> Member {
        let h = layout.number;
        let mut out = m.clone();
        let mut path: Vec<String> = Vec::new();
        for level in 0..layout.hierarchy.levels.len() {
            let (name, code) = layout.level_positions(level);
            path.push(m.0[name].clone());
            if let Some(chosen) = self.chosen.get(&((h, level), path.clone())) {
                out.0[code] = chosen.clone();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field named `name` in the ledger in use.
    #[allow(non_snake_case)]
    fn F(name: &str) -> Field {
        ledger().field(name).unwrap()
    }

    fn layout(id: &str) -> &'static Layout {
        ledger().hierarchy(id).unwrap()
    }

    fn base() -> Vec<(Field, &'static str)> {
        vec![
            (F("fiscal_year"), "2025"),
            (F("related_govt_units"), "NO"),
            (F("organization_group_code"), "01"),
            (F("organization_group"), "Public Protection"),
            (F("department_code"), "ADP"),
            (F("department"), "ADP Adult Probation"),
            (F("program_code"), "OPR"),
            (F("program"), "Operating"),
            (F("character_code"), "ELS"),
            (F("character"), "Transfer Adjustment-Source"),
            (F("object_code"), "999988"),
            (F("object"), "ELIMSC TRANSFER ADJ-SOURC CITY"),
            (F("sub_object_code"), "999988"),
            (F("sub_object"), "ELIMSC TRANSFER ADJ-SOURC CITY"),
            (F("fund_type_code"), "GEN_FUND"),
            (F("fund_type"), "General Fund"),
            (F("fund_code"), "GEN_FUND~10000"),
            (F("fund"), "GF Annual Account Ctrl"),
            (F("fund_category_code"), "1"),
            (F("fund_category"), "Operating"),
            (F("revenue_or_spending"), "Revenue"),
            (F("amount"), "-10242888.26"),
        ]
    }

    fn with(changes: &[(Field, &'static str)]) -> Result<Row<'static>, ConformError> {
        let mut pairs = base();
        for (f, v) in changes {
            pairs.retain(|(g, _)| g != f);
            pairs.push((*f, v));
        }
        conform_row(&RawRow::from_pairs(&pairs))
    }

    #[test]
    fn rule1_related_govt_units_become_yes_or_no() {
        for (raw, want) in [
            ("NO", "No"),
            ("No", "No"),
            ("YES", "Yes"),
            ("yes", "Yes"),
            (" Yes ", "Yes"),
        ] {
            assert_eq!(
                with(&[(F("related_govt_units"), raw)])
                    .unwrap()
                    .value("related_govt_units"),
                Some(want)
            );
        }
        assert_eq!(
            with(&[(F("related_govt_units"), "maybe")]),
            Err(ConformError::BadYesNo {
                column: "related_govt_units",
                value: "maybe".into()
            })
        );
    }

    #[test]
    fn rule2_no_department_is_refused_with_reason() {
        let err = with(&[(F("department"), ""), (F("department_code"), "")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no department (rule 2): department and department_code are both required"
        );
        assert_eq!(err.field(), Some("department"));
    }

    #[test]
    fn rule3_missing_program_gets_placeholders() {
        let row = with(&[(F("program"), ""), (F("program_code"), " ")]).unwrap();
        assert_eq!(
            (
                row.value("program").unwrap(),
                row.value("program_code").unwrap()
            ),
            ("No Program", "No Program Code")
        );
    }

    #[test]
    fn rule4_missing_type_names_get_placeholders() {
        let row = with(&[
            (F("character_code"), "NKE"),
            (F("character"), ""),
            (F("object"), ""),
            (F("object_code"), ""),
            (F("sub_object_code"), "NKEY"),
            (F("sub_object"), ""),
        ])
        .unwrap();
        assert_eq!(row.value("character").unwrap(), "No Character");
        assert_eq!(
            (
                row.value("object").unwrap(),
                row.value("object_code").unwrap()
            ),
            ("No Object", "No Object Code")
        );
        assert_eq!(
            (
                row.value("sub_object").unwrap(),
                row.value("sub_object_code").unwrap()
            ),
            ("No Sub Object", "NKEY")
        );
        assert_eq!(row.value("character_code").unwrap(), "NKE");
    }

    #[test]
    fn rule5_missing_fund_category_gets_placeholders() {
        let row = with(&[(F("fund_category"), ""), (F("fund_category_code"), "")]).unwrap();
        assert_eq!(
            (
                row.value("fund_category").unwrap(),
                row.value("fund_category_code").unwrap()
            ),
            ("No Fund Category", "No Fund Category Code")
        );
        assert_eq!(
            with(&[(F("fund_category_code"), "1.0")])
                .unwrap()
                .value("fund_category_code"),
            Some("1")
        );
    }

    #[test]
    fn rule6_most_frequent_code_wins_ties_go_to_the_smallest() {
        let mut chooser = CodeChooser::new();
        let funds = layout("fund");
        // fund_category, fund_category_code, fund, fund_code, fund_type, fund_type_code
        let fund = |code: &str| {
            Member(
                [
                    "Operating",
                    "1",
                    "Sustainable Streets",
                    code,
                    "Enterprise Funds",
                    "ENT_FUND",
                ]
                .map(String::from)
                .to_vec(),
            )
        };
        chooser.observe_member(funds, &fund("ENT_FUND~SU_STREETS"), 56);
        chooser.observe_member(funds, &fund("ENT_FUND~STBL_ST"), 3);
        // A tie inside another parent: the smallest code wins.
        chooser.observe(0, 1, &["Public Protection", "Police"], "POL", 5);
        chooser.observe(0, 1, &["Public Protection", "Police"], "PD", 5);
        // The same name under a different parent is a different member: no conflict.
        chooser.observe(0, 2, &["A", "B", "Operating"], "OPR", 1);
        chooser.observe(0, 2, &["A", "C", "Operating"], "OPX", 1);
        let report = chooser.decide();
        assert_eq!(report.len(), 2, "{report:?}");
        assert_eq!(report[0].level, "department");
        assert_eq!(report[0].chosen, "PD");
        assert_eq!(report[1].chosen, "ENT_FUND~SU_STREETS");
        assert_eq!(
            report[1].codes,
            vec![
                ("ENT_FUND~SU_STREETS".into(), 56),
                ("ENT_FUND~STBL_ST".into(), 3)
            ]
        );
        assert_eq!(
            chooser
                .conform(funds, &fund("ENT_FUND~STBL_ST"))
                .get(funds, "fund_code"),
            Some("ENT_FUND~SU_STREETS")
        );
        assert!(report[1].to_string().contains("Sustainable Streets"));
    }

    #[test]
    fn members_are_in_their_tables_column_order() {
        let row = with(&[(F("organization_group_code"), "01.0")]).unwrap();
        let program = layout("organization");
        let p = row.member(program);
        let names = &crate::Table::dimension(program).column_names()[1..];
        assert_eq!(names.len(), p.0.len());
        assert_eq!(names[5], "organization_group_code");
        assert_eq!(p.0[5], "1");
        assert_eq!(p.get(program, "department"), Some("ADP Adult Probation"));
        assert_eq!(row.member(layout("fund")).0[0], "Operating");
    }

    #[test]
    fn organization_group_codes_are_integers() {
        assert_eq!(
            with(&[(F("organization_group_code"), "01")])
                .unwrap()
                .member(layout("organization"))
                .get(layout("organization"), "organization_group_code"),
            Some("1")
        );
        assert_eq!(
            with(&[(F("organization_group_code"), "7")])
                .unwrap()
                .value("organization_group_code"),
            Some("7")
        );
        assert!(matches!(
            with(&[(F("organization_group_code"), "x")]),
            Err(ConformError::BadInteger {
                column: "organization_group_code",
                ..
            })
        ));
    }

    #[test]
    fn bad_year_amount_and_finance_name_the_field() {
        assert_eq!(
            with(&[(F("fiscal_year"), "FY25")]).unwrap_err().field(),
            Some("fiscal_year")
        );
        assert_eq!(
            with(&[(F("amount"), "1.2.3")]).unwrap_err().field(),
            Some("amount")
        );
        assert_eq!(
            with(&[(F("revenue_or_spending"), "Both")])
                .unwrap_err()
                .field(),
            Some("revenue_or_spending")
        );
        assert_eq!(
            with(&[(F("revenue_or_spending"), "SPENDING")])
                .unwrap()
                .finance_id,
            SPENDING_ID
        );
    }
}

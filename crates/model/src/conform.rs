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
use crate::money::{parse_amount, MoneyError};

/// `finance_id` of spending rows (the original ERD's numbering).
pub const SPENDING_ID: i32 = 1;
/// `finance_id` of revenue rows.
pub const REVENUE_ID: i32 = 2;

/// The fields of one CSV record, by [`Field`], before any rule.
#[derive(Debug, Clone, Copy)]
pub struct RawRow<'a> {
    fields: [&'a str; Field::COUNT],
}

impl<'a> RawRow<'a> {
    /// A row from its fields, indexed by `Field as usize` (absent fields empty).
    pub fn new(fields: [&'a str; Field::COUNT]) -> Self {
        RawRow { fields }
    }

    /// Builds a row from `(field, value)` pairs; absent fields are empty.
    pub fn from_pairs(pairs: &[(Field, &'a str)]) -> Self {
        let mut fields = [""; Field::COUNT];
        for (f, v) in pairs {
            fields[*f as usize] = v;
        }
        RawRow { fields }
    }

    /// The trimmed value of `field` (empty when absent).
    pub fn get(&self, field: Field) -> &'a str {
        self.fields[field as usize].trim()
    }
}

/// Why a row cannot be loaded; it goes to `meta.quarantine` with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConformError {
    #[error("expected {expected} fields as in the header, found {found}")]
    WrongFieldCount { expected: usize, found: usize },
    #[error("no department (rule 2): department and department_code are both required")]
    NoDepartment,
    #[error("fiscal_year {0:?} is not a year")]
    BadFiscalYear(String),
    #[error("amount: {0}")]
    BadAmount(MoneyError),
    #[error("revenue_or_spending {0:?} is neither Revenue nor Spending")]
    BadRevenueOrSpending(String),
    #[error("related_govt_units {0:?} is neither Yes nor No")]
    BadRelatedGovtUnits(String),
    #[error("organization_group_code {0:?} is not an integer")]
    BadOrganizationGroupCode(String),
    #[error("no organization group: organization_group is required")]
    NoOrganizationGroup,
}

impl ConformError {
    /// The field at fault, if one is.
    pub fn field(&self) -> Option<Field> {
        match self {
            ConformError::WrongFieldCount { .. } => None,
            ConformError::NoDepartment => Some(Field::Department),
            ConformError::BadFiscalYear(_) => Some(Field::FiscalYear),
            ConformError::BadAmount(_) => Some(Field::Amount),
            ConformError::BadRevenueOrSpending(_) => Some(Field::RevenueOrSpending),
            ConformError::BadRelatedGovtUnits(_) => Some(Field::RelatedGovtUnits),
            ConformError::BadOrganizationGroupCode(_) => Some(Field::OrganizationGroupCode),
            ConformError::NoOrganizationGroup => Some(Field::OrganizationGroup),
        }
    }
}

/// A member of `report.program`, without its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProgramMember {
    pub program: String,
    pub program_code: String,
    pub department: String,
    pub department_code: String,
    pub organization_group: String,
    pub organization_group_code: i32,
    pub related_govt_units: String,
}

/// A member of `report.type`, without its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeMember {
    pub sub_object: String,
    pub sub_object_code: String,
    pub object: String,
    pub object_code: String,
    pub character: String,
    pub character_code: String,
}

/// A member of `report.fund`, without its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FundMember {
    pub fund_category: String,
    pub fund_category_code: String,
    pub fund: String,
    pub fund_code: String,
    pub fund_type: String,
    pub fund_type_code: String,
}

/// A dimension member: its table, and its attributes in the table's column order
/// after the id (integers as their decimal text). The loader builds and reads every
/// dimension table through this one description.
pub trait Member: Clone + Eq + std::hash::Hash {
    /// The dimension table the member belongs to.
    const TABLE: crate::schema::Table;
    /// The attributes, in column order after the id.
    fn attributes(&self) -> Vec<String>;
    /// The member from its attributes, as [`Member::attributes`] gives them.
    fn from_attributes(values: &[String]) -> Option<Self>;
}

impl Member for ProgramMember {
    const TABLE: crate::schema::Table = crate::schema::Table::Program;
    fn attributes(&self) -> Vec<String> {
        vec![
            self.program.clone(),
            self.program_code.clone(),
            self.department.clone(),
            self.department_code.clone(),
            self.organization_group.clone(),
            self.organization_group_code.to_string(),
            self.related_govt_units.clone(),
        ]
    }
    fn from_attributes(v: &[String]) -> Option<Self> {
        let [program, program_code, department, department_code, organization_group, og_code, related_govt_units] =
            v
        else {
            return None;
        };
        Some(ProgramMember {
            program: program.clone(),
            program_code: program_code.clone(),
            department: department.clone(),
            department_code: department_code.clone(),
            organization_group: organization_group.clone(),
            organization_group_code: og_code.parse().ok()?,
            related_govt_units: related_govt_units.clone(),
        })
    }
}

impl Member for TypeMember {
    const TABLE: crate::schema::Table = crate::schema::Table::Type;
    fn attributes(&self) -> Vec<String> {
        vec![
            self.sub_object.clone(),
            self.sub_object_code.clone(),
            self.object.clone(),
            self.object_code.clone(),
            self.character.clone(),
            self.character_code.clone(),
        ]
    }
    fn from_attributes(v: &[String]) -> Option<Self> {
        let [sub_object, sub_object_code, object, object_code, character, character_code] = v
        else {
            return None;
        };
        Some(TypeMember {
            sub_object: sub_object.clone(),
            sub_object_code: sub_object_code.clone(),
            object: object.clone(),
            object_code: object_code.clone(),
            character: character.clone(),
            character_code: character_code.clone(),
        })
    }
}

impl Member for FundMember {
    const TABLE: crate::schema::Table = crate::schema::Table::Fund;
    fn attributes(&self) -> Vec<String> {
        vec![
            self.fund_category.clone(),
            self.fund_category_code.clone(),
            self.fund.clone(),
            self.fund_code.clone(),
            self.fund_type.clone(),
            self.fund_type_code.clone(),
        ]
    }
    fn from_attributes(v: &[String]) -> Option<Self> {
        let [fund_category, fund_category_code, fund, fund_code, fund_type, fund_type_code] = v
        else {
            return None;
        };
        Some(FundMember {
            fund_category: fund_category.clone(),
            fund_category_code: fund_category_code.clone(),
            fund: fund.clone(),
            fund_code: fund_code.clone(),
            fund_type: fund_type.clone(),
            fund_type_code: fund_type_code.clone(),
        })
    }
}

/// One row after rules 1–5, borrowing the record's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    pub fiscal_year: i32,
    pub related_govt_units: &'static str,
    pub organization_group_code: i32,
    pub organization_group: &'a str,
    pub department_code: &'a str,
    pub department: &'a str,
    pub program_code: &'a str,
    pub program: &'a str,
    pub character_code: &'a str,
    pub character: &'a str,
    pub object_code: &'a str,
    pub object: &'a str,
    pub sub_object_code: &'a str,
    pub sub_object: &'a str,
    pub fund_type_code: &'a str,
    pub fund_type: &'a str,
    pub fund_code: &'a str,
    pub fund: &'a str,
    pub fund_category_code: &'a str,
    pub fund_category: &'a str,
    pub finance_id: i32,
    /// Exact amount in cents.
    pub amount: i128,
    pub data_as_of: Option<&'a str>,
}

impl Row<'_> {
    /// The program member this row belongs to, before rule 6.
    pub fn program_member(&self) -> ProgramMember {
        ProgramMember {
            program: self.program.to_string(),
            program_code: self.program_code.to_string(),
            department: self.department.to_string(),
            department_code: self.department_code.to_string(),
            organization_group: self.organization_group.to_string(),
            organization_group_code: self.organization_group_code,
            related_govt_units: self.related_govt_units.to_string(),
        }
    }

    /// The type member this row belongs to, before rule 6.
    pub fn type_member(&self) -> TypeMember {
        TypeMember {
            sub_object: self.sub_object.to_string(),
            sub_object_code: self.sub_object_code.to_string(),
            object: self.object.to_string(),
            object_code: self.object_code.to_string(),
            character: self.character.to_string(),
            character_code: self.character_code.to_string(),
        }
    }

    /// The fund member this row belongs to, before rule 6.
    pub fn fund_member(&self) -> FundMember {
        FundMember {
            fund_category: self.fund_category.to_string(),
            fund_category_code: self.fund_category_code.to_string(),
            fund: self.fund.to_string(),
            fund_code: self.fund_code.to_string(),
            fund_type: self.fund_type.to_string(),
            fund_type_code: self.fund_type_code.to_string(),
        }
    }
}

fn or<'a>(value: &'a str, default: &'static str) -> &'a str {
    if value.is_empty() {
        default
    } else {
        value
    }
}

/// Rules 1–5 on one row.
pub fn conform_row<'a>(raw: &RawRow<'a>) -> Result<Row<'a>, ConformError> {
    use Field as F;
    let fiscal_year = parse_fiscal_year(raw.get(F::FiscalYear))
        .ok_or_else(|| ConformError::BadFiscalYear(raw.get(F::FiscalYear).to_string()))?;
    // Rule 2.
    let (department, department_code) = (raw.get(F::Department), raw.get(F::DepartmentCode));
    if department.is_empty() && department_code.is_empty() {
        return Err(ConformError::NoDepartment);
    }
    let amount = parse_amount(raw.get(F::Amount)).map_err(ConformError::BadAmount)?;
    let rs = raw.get(F::RevenueOrSpending);
    let finance_id = if rs.eq_ignore_ascii_case("spending") {
        SPENDING_ID
    } else if rs.eq_ignore_ascii_case("revenue") {
        REVENUE_ID
    } else {
        return Err(ConformError::BadRevenueOrSpending(rs.to_string()));
    };
    // Rule 1.
    let rgu = raw.get(F::RelatedGovtUnits);
    let related_govt_units = if rgu.eq_ignore_ascii_case("no") || rgu.eq_ignore_ascii_case("n") {
        "No"
    } else if rgu.eq_ignore_ascii_case("yes") || rgu.eq_ignore_ascii_case("y") {
        "Yes"
    } else {
        return Err(ConformError::BadRelatedGovtUnits(rgu.to_string()));
    };
    let og_text = raw.get(F::OrganizationGroupCode);
    let organization_group_code = og_text
        .strip_suffix(".0")
        .unwrap_or(og_text)
        .parse::<i32>()
        .map_err(|_| ConformError::BadOrganizationGroupCode(og_text.to_string()))?;
    let organization_group = raw.get(F::OrganizationGroup);
    if organization_group.is_empty() {
        return Err(ConformError::NoOrganizationGroup);
    }
    let fc_code = raw.get(F::FundCategoryCode);
    let fund_category_code = fc_code.strip_suffix(".0").unwrap_or(fc_code);
    let sub_object_code = raw.get(F::SubObjectCode);
    let sub_object = match raw.get(F::SubObject) {
        "" if sub_object_code == "NKEY" => "No Sub Object",
        s => or(s, "No Sub Object"),
    };
    let data_as_of = Some(raw.get(F::DataAsOf)).filter(|s| !s.is_empty());
    Ok(Row {
        fiscal_year,
        related_govt_units,
        organization_group_code,
        organization_group,
        department_code: or(department_code, "No Department Code"),
        department: or(department, "No Department"),
        // Rule 3.
        program_code: or(raw.get(F::ProgramCode), "No Program Code"),
        program: or(raw.get(F::Program), "No Program"),
        // Rule 4.
        character_code: or(raw.get(F::CharacterCode), "No Character Code"),
        character: or(raw.get(F::Character), "No Character"),
        object_code: or(raw.get(F::ObjectCode), "No Object Code"),
        object: or(raw.get(F::Object), "No Object"),
        sub_object_code: or(sub_object_code, "No Sub Object Code"),
        sub_object,
        fund_type_code: or(raw.get(F::FundTypeCode), "No Fund Type Code"),
        fund_type: or(raw.get(F::FundType), "No Fund Type"),
        fund_code: or(raw.get(F::FundCode), "No Fund Code"),
        fund: or(raw.get(F::Fund), "No Fund"),
        // Rule 5.
        fund_category_code: or(fund_category_code, "No Fund Category Code"),
        fund_category: or(raw.get(F::FundCategory), "No Fund Category"),
        finance_id,
        amount,
        data_as_of,
    })
}

/// A level of a hierarchy that has a name and a code (rule 6 works level by level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    OrganizationGroup,
    Department,
    Program,
    Character,
    Object,
    SubObject,
    FundType,
    Fund,
    FundCategory,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::OrganizationGroup => "organization_group",
            Level::Department => "department",
            Level::Program => "program",
            Level::Character => "character",
            Level::Object => "object",
            Level::SubObject => "sub_object",
            Level::FundType => "fund_type",
            Level::Fund => "fund",
            Level::FundCategory => "fund_category",
        })
    }
}

/// One name that carried several codes inside its parent, and the code it now has.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CodeChoice {
    pub level: Level,
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

/// Rule 6: counts the codes each name carries inside its parent, then picks one code
/// per name — the most frequent by rows, ties broken by the smallest code.
#[derive(Debug, Default)]
pub struct CodeChooser {
    /// (level, ancestor names + own name) -> code -> rows.
    counts: HashMap<(Level, Vec<String>), HashMap<String, u64>>,
    chosen: HashMap<(Level, Vec<String>), String>,
}

impl CodeChooser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `rows` rows have `code` for the name at the end of `path`.
    pub fn observe(&mut self, level: Level, path: &[&str], code: &str, rows: u64) {
        let key = (level, path.iter().map(|s| s.to_string()).collect());
        *self
            .counts
            .entry(key)
            .or_default()
            .entry(code.to_string())
            .or_default() += rows;
    }

    /// Records a program member seen on `rows` rows.
    pub fn observe_program(&mut self, m: &ProgramMember, rows: u64) {
        let og_code = m.organization_group_code.to_string();
        let og = m.organization_group.as_str();
        let dept = m.department.as_str();
        self.observe(Level::OrganizationGroup, &[og], &og_code, rows);
        self.observe(Level::Department, &[og, dept], &m.department_code, rows);
        self.observe(
            Level::Program,
            &[og, dept, &m.program],
            &m.program_code,
            rows,
        );
    }

    /// Records a type member seen on `rows` rows.
    pub fn observe_type(&mut self, m: &TypeMember, rows: u64) {
        let (ch, ob) = (m.character.as_str(), m.object.as_str());
        self.observe(Level::Character, &[ch], &m.character_code, rows);
        self.observe(Level::Object, &[ch, ob], &m.object_code, rows);
        self.observe(
            Level::SubObject,
            &[ch, ob, &m.sub_object],
            &m.sub_object_code,
            rows,
        );
    }

    /// Records a fund member seen on `rows` rows.
    pub fn observe_fund(&mut self, m: &FundMember, rows: u64) {
        let (ft, fu) = (m.fund_type.as_str(), m.fund.as_str());
        self.observe(Level::FundType, &[ft], &m.fund_type_code, rows);
        self.observe(Level::Fund, &[ft, fu], &m.fund_code, rows);
        self.observe(
            Level::FundCategory,
            &[ft, fu, &m.fund_category],
            &m.fund_category_code,
            rows,
        );
    }

    /// Decides every name's code; returns the names that had more than one, sorted.
    pub fn decide(&mut self) -> Vec<CodeChoice> {
        let mut report = Vec::new();
        for (key, codes) in &self.counts {
            let mut ranked: Vec<(String, u64)> =
                codes.iter().map(|(c, n)| (c.clone(), *n)).collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let chosen = ranked[0].0.clone();
            if ranked.len() > 1 {
                let mut parent = key.1.clone();
                let name = parent.pop().unwrap_or_default();
                report.push(CodeChoice {
                    level: key.0,
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

    fn code(&self, level: Level, path: &[&str], seen: &str) -> String {
        let key = (
            level,
            path.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        );
        self.chosen
            .get(&key)
            .cloned()
            .unwrap_or_else(|| seen.to_string())
    }

    /// The program member with its codes conformed (after [`CodeChooser::decide`]).
    pub fn conform_program(&self, m: &ProgramMember) -> ProgramMember {
        let og = m.organization_group.as_str();
        let dept = m.department.as_str();
        let og_code = self.code(
            Level::OrganizationGroup,
            &[og],
            &m.organization_group_code.to_string(),
        );
        ProgramMember {
            organization_group_code: og_code.parse().unwrap_or(m.organization_group_code),
            department_code: self.code(Level::Department, &[og, dept], &m.department_code),
            program_code: self.code(Level::Program, &[og, dept, &m.program], &m.program_code),
            ..m.clone()
        }
    }

    /// The type member with its codes conformed.
    pub fn conform_type(&self, m: &TypeMember) -> TypeMember {
        let (ch, ob) = (m.character.as_str(), m.object.as_str());
        TypeMember {
            character_code: self.code(Level::Character, &[ch], &m.character_code),
            object_code: self.code(Level::Object, &[ch, ob], &m.object_code),
            sub_object_code: self.code(
                Level::SubObject,
                &[ch, ob, &m.sub_object],
                &m.sub_object_code,
            ),
            ..m.clone()
        }
    }

    /// The fund member with its codes conformed.
    pub fn conform_fund(&self, m: &FundMember) -> FundMember {
        let (ft, fu) = (m.fund_type.as_str(), m.fund.as_str());
        FundMember {
            fund_type_code: self.code(Level::FundType, &[ft], &m.fund_type_code),
            fund_code: self.code(Level::Fund, &[ft, fu], &m.fund_code),
            fund_category_code: self.code(
                Level::FundCategory,
                &[ft, fu, &m.fund_category],
                &m.fund_category_code,
            ),
            ..m.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Field as F;

    fn base() -> Vec<(Field, &'static str)> {
        vec![
            (F::FiscalYear, "2025"),
            (F::RelatedGovtUnits, "NO"),
            (F::OrganizationGroupCode, "01"),
            (F::OrganizationGroup, "Public Protection"),
            (F::DepartmentCode, "ADP"),
            (F::Department, "ADP Adult Probation"),
            (F::ProgramCode, "OPR"),
            (F::Program, "Operating"),
            (F::CharacterCode, "ELS"),
            (F::Character, "Transfer Adjustment-Source"),
            (F::ObjectCode, "999988"),
            (F::Object, "ELIMSC TRANSFER ADJ-SOURC CITY"),
            (F::SubObjectCode, "999988"),
            (F::SubObject, "ELIMSC TRANSFER ADJ-SOURC CITY"),
            (F::FundTypeCode, "GEN_FUND"),
            (F::FundType, "General Fund"),
            (F::FundCode, "GEN_FUND~10000"),
            (F::Fund, "GF Annual Account Ctrl"),
            (F::FundCategoryCode, "1"),
            (F::FundCategory, "Operating"),
            (F::RevenueOrSpending, "Revenue"),
            (F::Amount, "-10242888.26"),
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
                with(&[(F::RelatedGovtUnits, raw)])
                    .unwrap()
                    .related_govt_units,
                want
            );
        }
        assert_eq!(
            with(&[(F::RelatedGovtUnits, "maybe")]),
            Err(ConformError::BadRelatedGovtUnits("maybe".into()))
        );
    }

    #[test]
    fn rule2_no_department_is_refused_with_reason() {
        let err = with(&[(F::Department, ""), (F::DepartmentCode, "")]).unwrap_err();
        assert_eq!(err, ConformError::NoDepartment);
        assert_eq!(err.field(), Some(F::Department));
    }

    #[test]
    fn rule3_missing_program_gets_placeholders() {
        let row = with(&[(F::Program, ""), (F::ProgramCode, " ")]).unwrap();
        assert_eq!(
            (row.program, row.program_code),
            ("No Program", "No Program Code")
        );
    }

    #[test]
    fn rule4_missing_type_names_get_placeholders() {
        let row = with(&[
            (F::CharacterCode, "NKE"),
            (F::Character, ""),
            (F::Object, ""),
            (F::ObjectCode, ""),
            (F::SubObjectCode, "NKEY"),
            (F::SubObject, ""),
        ])
        .unwrap();
        assert_eq!(row.character, "No Character");
        assert_eq!(
            (row.object, row.object_code),
            ("No Object", "No Object Code")
        );
        assert_eq!(
            (row.sub_object, row.sub_object_code),
            ("No Sub Object", "NKEY")
        );
        assert_eq!(row.character_code, "NKE");
    }

    #[test]
    fn rule5_missing_fund_category_gets_placeholders() {
        let row = with(&[(F::FundCategory, ""), (F::FundCategoryCode, "")]).unwrap();
        assert_eq!(
            (row.fund_category, row.fund_category_code),
            ("No Fund Category", "No Fund Category Code")
        );
        assert_eq!(
            with(&[(F::FundCategoryCode, "1.0")])
                .unwrap()
                .fund_category_code,
            "1"
        );
    }

    #[test]
    fn rule6_most_frequent_code_wins_ties_go_to_the_smallest() {
        let mut chooser = CodeChooser::new();
        let fund = |code: &str| FundMember {
            fund_category: "Operating".into(),
            fund_category_code: "1".into(),
            fund: "Sustainable Streets".into(),
            fund_code: code.into(),
            fund_type: "Enterprise Funds".into(),
            fund_type_code: "ENT_FUND".into(),
        };
        chooser.observe_fund(&fund("ENT_FUND~SU_STREETS"), 56);
        chooser.observe_fund(&fund("ENT_FUND~STBL_ST"), 3);
        // A tie inside another parent: the smallest code wins.
        chooser.observe(
            Level::Department,
            &["Public Protection", "Police"],
            "POL",
            5,
        );
        chooser.observe(Level::Department, &["Public Protection", "Police"], "PD", 5);
        // The same name under a different parent is a different member: no conflict.
        chooser.observe(Level::Program, &["A", "B", "Operating"], "OPR", 1);
        chooser.observe(Level::Program, &["A", "C", "Operating"], "OPX", 1);
        let report = chooser.decide();
        assert_eq!(report.len(), 2, "{report:?}");
        assert_eq!(report[0].level, Level::Department);
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
            chooser.conform_fund(&fund("ENT_FUND~STBL_ST")).fund_code,
            "ENT_FUND~SU_STREETS"
        );
        assert!(report[1].to_string().contains("Sustainable Streets"));
    }

    #[test]
    fn members_round_trip_through_their_attributes_in_schema_order() {
        let row = with(&[]).unwrap();
        let p = row.program_member();
        assert_eq!(
            ProgramMember::from_attributes(&p.attributes()),
            Some(p.clone())
        );
        let t = row.type_member();
        assert_eq!(TypeMember::from_attributes(&t.attributes()), Some(t));
        let f = row.fund_member();
        assert_eq!(FundMember::from_attributes(&f.attributes()), Some(f));
        let names: Vec<String> = ProgramMember::TABLE
            .schema()
            .fields()
            .iter()
            .skip(1)
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names[5], "organization_group_code");
        assert_eq!(p.attributes()[5], "1");
    }

    #[test]
    fn organization_group_codes_are_integers() {
        assert_eq!(
            with(&[(F::OrganizationGroupCode, "01")])
                .unwrap()
                .organization_group_code,
            1
        );
        assert_eq!(
            with(&[(F::OrganizationGroupCode, "7")])
                .unwrap()
                .organization_group_code,
            7
        );
        assert!(matches!(
            with(&[(F::OrganizationGroupCode, "x")]),
            Err(ConformError::BadOrganizationGroupCode(_))
        ));
    }

    #[test]
    fn bad_year_amount_and_finance_name_the_field() {
        assert_eq!(
            with(&[(F::FiscalYear, "FY25")]).unwrap_err().field(),
            Some(F::FiscalYear)
        );
        assert_eq!(
            with(&[(F::Amount, "1.2.3")]).unwrap_err().field(),
            Some(F::Amount)
        );
        assert_eq!(
            with(&[(F::RevenueOrSpending, "Both")]).unwrap_err().field(),
            Some(F::RevenueOrSpending)
        );
        assert_eq!(
            with(&[(F::RevenueOrSpending, "SPENDING")])
                .unwrap()
                .finance_id,
            SPENDING_ID
        );
    }
}

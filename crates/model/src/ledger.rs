//! The one description of a ledger: its hierarchies, their levels, and the name and
//! code column of each level — what an empty value becomes, which values are refused,
//! and what each column means. Everything else about a hierarchy is derived from it:
//! the source columns a header may name ([`crate::dialect`]), rules 1–5 and the
//! members of each row ([`crate::conform`]), rule 6's parents ([`crate::CodeChooser`]),
//! the dimension tables and the fact table's keys ([`crate::schema`]), and the
//! explorer's drill-down levels (`citybooks-server`, served to the dashboard).
//!
//! [`SAN_FRANCISCO`] describes the Controller's Spending and Revenue ledger
//! (DOMAIN.md). A process loads one ledger: [`ledger`] is the one in use, San
//! Francisco's unless [`install`] chose another before first use (a test of ours loads
//! a made-up ledger with a different hierarchy this way).
//!
//! Adding a level is one more [`Level`] in a hierarchy's list; adding a hierarchy is
//! one more [`Hierarchy`]. The columns every ledger has — fiscal year, revenue or
//! spending, amount, and the export's timestamps — are not hierarchies and live in
//! [`FIXED`].

use std::ops::Range;
use std::sync::OnceLock;

/// How a column's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text, trimmed.
    Text,
    /// A code that spreadsheets may have turned into a number: a trailing `.0` is
    /// dropped (`1.0` = `1`).
    Code,
    /// An integer (stored as `int`); a trailing `.0` is dropped and leading zeros do
    /// not count (`01` = `1`). Anything else sends the row to quarantine.
    Integer,
    /// `Yes` or `No` in any case (also `Y` / `N`); anything else is refused (rule 1).
    YesNo,
}

/// What an empty value of a column becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// This placeholder (rules 3–5: `No Program`, `No Fund Category Code`, ...).
    Placeholder(&'static str),
    /// Nothing: the row goes to quarantine (`no organization group`).
    Refuse,
}

/// One column of the source files and of the warehouse.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// snake_case: the API export's header and the warehouse's column name.
    pub name: &'static str,
    /// The portal export's human header.
    pub header: &'static str,
    /// Older spellings of the header, snake_cased (`related_government_units`).
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    pub missing: Missing,
    /// What the column holds (SQL clients show it as the column's comment).
    pub description: &'static str,
}

/// One level of a hierarchy: a name and a code (rule 6 keeps one code per name inside
/// its parent, the levels above it).
#[derive(Debug, Clone, Copy)]
pub struct Level {
    /// As the dashboard labels it: `Organization group`.
    pub label: &'static str,
    pub name: Column,
    pub code: Column,
    /// Rule 2: a row must name this level, by its name or its code; a row with
    /// neither goes to quarantine.
    pub required: bool,
}

/// One hierarchy: a dimension table of the star schema, its levels top first, and
/// attributes of its members that are not levels.
#[derive(Debug, Clone, Copy)]
pub struct Hierarchy {
    /// `h=` in the dashboard's URLs and the API: `organization`.
    pub id: &'static str,
    /// The dimension table in `report`: `program`; its key is `<table>_id`.
    pub table: &'static str,
    /// The table's alias in the SQL the explorer shows: `p`.
    pub alias: &'static str,
    /// What the table holds (the table's comment).
    pub description: &'static str,
    /// Levels, the broadest first.
    pub levels: &'static [Level],
    /// Further columns of a member (`related_govt_units`), after the levels.
    pub attributes: &'static [Column],
}

/// A ledger: its name and its hierarchies.
#[derive(Debug, Clone, Copy)]
pub struct Description {
    pub name: &'static str,
    pub hierarchies: &'static [Hierarchy],
}

/// A text column whose empty value becomes `placeholder`.
pub const fn text(
    name: &'static str,
    header: &'static str,
    placeholder: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        header,
        aliases: &[],
        kind: Kind::Text,
        missing: Missing::Placeholder(placeholder),
        description,
    }
}

/// A level that a row need not name (its placeholders stand in).
pub const fn level(label: &'static str, name: Column, code: Column) -> Level {
    Level {
        label,
        name,
        code,
        required: false,
    }
}

/// The Controller's Spending and Revenue ledger (DOMAIN.md).
pub static SAN_FRANCISCO: Description = Description {
    name: "San Francisco Spending and Revenue",
    hierarchies: &[
        Hierarchy {
            id: "organization",
            table: "program",
            alias: "p",
            description: "Who spends or receives: organization group > department > program (the program hierarchy of San Francisco's Spending and Revenue ledger).",
            levels: &[
                Level {
                    label: "Organization group",
                    name: Column {
                        missing: Missing::Refuse,
                        ..text("organization_group", "Organization Group", "", "Organization group name (7 groups).")
                    },
                    code: Column {
                        kind: Kind::Integer,
                        missing: Missing::Refuse,
                        ..text("organization_group_code", "Organization Group Code", "", "Organization group code (1 to 7).")
                    },
                    required: false,
                },
                Level {
                    required: true,
                    ..level(
                        "Department",
                        text("department", "Department", "No Department", "Department name."),
                        text("department_code", "Department Code", "No Department Code", "Department code."),
                    )
                },
                level(
                    "Program",
                    text("program", "Program", "No Program", "Program name; 'No Program' where the source had none."),
                    text("program_code", "Program Code", "No Program Code", "Program code; 'No Program Code' where the source had none."),
                ),
            ],
            attributes: &[Column {
                aliases: &["related_government_units"],
                kind: Kind::YesNo,
                missing: Missing::Refuse,
                ..text("related_govt_units", "Related Govt Units", "", "Yes for entities related to but separate from the City (e.g. the Community College District), else No.")
            }],
        },
        Hierarchy {
            id: "type",
            table: "type",
            alias: "ty",
            description: "What the money is for: character > object > sub-object (the type hierarchy; character is the broadest, e.g. Salaries, Property Taxes).",
            levels: &[
                level(
                    "Character",
                    text("character", "Character", "No Character", "Character: the broadest level of the type hierarchy."),
                    text("character_code", "Character Code", "No Character Code", "Character code."),
                ),
                level(
                    "Object",
                    text("object", "Object", "No Object", "Object: the middle level of the type hierarchy."),
                    text("object_code", "Object Code", "No Object Code", "Object code."),
                ),
                level(
                    "Sub-object",
                    Column {
                        aliases: &["subobject"],
                        ..text("sub_object", "Sub-object", "No Sub Object", "Sub-object: the finest level of the type hierarchy.")
                    },
                    Column {
                        aliases: &["subobject_code"],
                        ..text("sub_object_code", "Sub-object Code", "No Sub Object Code", "Sub-object code.")
                    },
                ),
            ],
            attributes: &[],
        },
        Hierarchy {
            id: "fund",
            table: "fund",
            alias: "fu",
            description: "Which fund: fund type > fund > fund category.",
            levels: &[
                level(
                    "Fund type",
                    text("fund_type", "Fund Type", "No Fund Type", "Fund type: the broadest level of the fund hierarchy."),
                    text("fund_type_code", "Fund Type Code", "No Fund Type Code", "Fund type code."),
                ),
                level(
                    "Fund",
                    text("fund", "Fund", "No Fund", "Fund name."),
                    text("fund_code", "Fund Code", "No Fund Code", "Fund code."),
                ),
                level(
                    "Fund category",
                    text("fund_category", "Fund Category", "No Fund Category", "Fund category: the finest level of the fund hierarchy."),
                    Column {
                        kind: Kind::Code,
                        ..text("fund_category_code", "Fund Category Code", "No Fund Category Code", "Fund category code.")
                    },
                ),
            ],
            attributes: &[],
        },
    ],
};

/// The columns every ledger has, whatever its hierarchies.
pub struct Fixed {
    pub fiscal_year: Column,
    pub revenue_or_spending: Column,
    pub amount: Column,
    /// Optional: the API export's timestamps.
    pub data_as_of: Column,
    pub data_loaded_at: Column,
}

/// The fixed columns' names and headers.
pub const FIXED: Fixed = Fixed {
    fiscal_year: text("fiscal_year", "Fiscal Year", "", ""),
    revenue_or_spending: text("revenue_or_spending", "Revenue or Spending", "", ""),
    amount: text("amount", "Amount", "", ""),
    data_as_of: text("data_as_of", "Data As Of", "", ""),
    data_loaded_at: text("data_loaded_at", "Data Loaded At", "", ""),
};

/// A column of the source files: its place in [`Ledger::columns`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Field(pub(crate) u16);

impl Field {
    /// The position in [`Ledger::columns`]; indexes arrays of [`Ledger::width`].
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The snake_case name in the ledger in use.
    pub fn name(self) -> &'static str {
        ledger().columns[self.index()].name
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The most source columns a ledger may have.
pub const MAX_COLUMNS: usize = 64;

/// Where one hierarchy's columns are, derived from its [`Hierarchy`].
#[derive(Debug, Clone)]
pub struct Layout {
    pub hierarchy: &'static Hierarchy,
    /// Its place in [`Ledger::layouts`] (and in the ledger's description).
    pub number: usize,
    /// `<table>_id`.
    pub key: &'static str,
    /// The key's comment: `Key of report.<table>.`
    pub key_description: &'static str,
    /// Its range in a row's member values ([`crate::Row::member_values`]).
    pub values: Range<usize>,
    /// The member's columns in table order: levels finest first, name then code,
    /// then the attributes.
    pub columns: Vec<Column>,
    /// The source field of each of `columns`.
    pub fields: Vec<Field>,
}

impl Layout {
    /// Positions in a member's values of the name and the code of level `level`
    /// (0 = the broadest).
    pub fn level_positions(&self, level: usize) -> (usize, usize) {
        let from_finest = self.hierarchy.levels.len() - 1 - level;
        (2 * from_finest, 2 * from_finest + 1)
    }
}

/// A [`Description`] with everything derived from it, built once per process.
#[derive(Debug)]
pub struct Ledger {
    pub description: &'static Description,
    /// Every source column, in the API export's order: fiscal year; each hierarchy's
    /// attributes, then its levels broadest first, code before name; revenue or
    /// spending; amount; the optional timestamps.
    pub columns: Vec<Column>,
    pub layouts: Vec<Layout>,
    pub fiscal_year: Field,
    pub revenue_or_spending: Field,
    pub amount: Field,
    pub data_as_of: Field,
    pub data_loaded_at: Field,
}

/// Why a description cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the ledger has {0} source columns; at most {MAX_COLUMNS} are supported")]
    TooWide(usize),
    #[error("column {0} appears twice in the ledger description")]
    Duplicate(String),
    #[error("hierarchy {0} has no levels")]
    NoLevels(String),
    #[error("a ledger is already in use ({0}); install one before anything reads it")]
    AlreadyInstalled(&'static str),
}

impl Ledger {
    /// Derives columns and layouts from `description`.
    pub fn new(description: &'static Description) -> Result<Ledger, LedgerError> {
        let mut columns = vec![FIXED.fiscal_year];
        for h in description.hierarchies {
            if h.levels.is_empty() {
                return Err(LedgerError::NoLevels(h.id.to_string()));
            }
            columns.extend(h.attributes.iter().copied());
            for l in h.levels {
                columns.extend([l.code, l.name]);
            }
        }
        columns.extend([
            FIXED.revenue_or_spending,
            FIXED.amount,
            FIXED.data_as_of,
            FIXED.data_loaded_at,
        ]);
        if columns.len() > MAX_COLUMNS {
            return Err(LedgerError::TooWide(columns.len()));
        }
        for (i, c) in columns.iter().enumerate() {
            if columns[..i].iter().any(|d| d.name == c.name) {
                return Err(LedgerError::Duplicate(c.name.to_string()));
            }
        }
        let field =
            |name: &str| Field(columns.iter().position(|c| c.name == name).unwrap_or(0) as u16);
        let mut layouts = Vec::new();
        let mut start = 0;
        for (number, h) in description.hierarchies.iter().enumerate() {
            let mut member: Vec<Column> = Vec::new();
            for l in h.levels.iter().rev() {
                member.extend([l.name, l.code]);
            }
            member.extend(h.attributes.iter().copied());
            let fields = member.iter().map(|c| field(c.name)).collect();
            let end = start + member.len();
            layouts.push(Layout {
                hierarchy: h,
                number,
                // Built once per process (the ledger is static): leaked, not lost.
                key: Box::leak(format!("{}_id", h.table).into_boxed_str()),
                key_description: Box::leak(format!("Key of report.{}.", h.table).into_boxed_str()),
                values: start..end,
                columns: member,
                fields,
            });
            start = end;
        }
        Ok(Ledger {
            description,
            fiscal_year: field(FIXED.fiscal_year.name),
            revenue_or_spending: field(FIXED.revenue_or_spending.name),
            amount: field(FIXED.amount.name),
            data_as_of: field(FIXED.data_as_of.name),
            data_loaded_at: field(FIXED.data_loaded_at.name),
            columns,
            layouts,
        })
    }

    /// Number of source columns.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Every source field, in [`Ledger::columns`] order.
    pub fn fields(&self) -> impl Iterator<Item = Field> {
        (0..self.columns.len() as u16).map(Field)
    }

    /// The column of `field`.
    pub fn column(&self, field: Field) -> &Column {
        &self.columns[field.index()]
    }

    /// The field named `name` (snake_case).
    pub fn field(&self, name: &str) -> Option<Field> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .map(|i| Field(i as u16))
    }

    /// Whether a file must have this column to be loadable.
    pub fn required(&self, field: Field) -> bool {
        field != self.data_as_of && field != self.data_loaded_at
    }

    /// The hierarchy whose `h=` id is `id`.
    pub fn hierarchy(&self, id: &str) -> Option<&Layout> {
        self.layouts.iter().find(|l| l.hierarchy.id == id)
    }

    /// Number of member values of a row: every hierarchy's columns.
    pub fn member_width(&self) -> usize {
        self.layouts.last().map_or(0, |l| l.values.end)
    }
}

static IN_USE: OnceLock<Ledger> = OnceLock::new();

/// The ledger this process loads and serves: San Francisco's unless [`install`] chose
/// another first.
pub fn ledger() -> &'static Ledger {
    IN_USE.get_or_init(|| Ledger::new(&SAN_FRANCISCO).expect("San Francisco's ledger is valid"))
}

/// Chooses the ledger of this process; only before anything has read [`ledger`].
pub fn install(description: &'static Description) -> Result<&'static Ledger, LedgerError> {
    let built = Ledger::new(description)?;
    IN_USE
        .set(built)
        .map_err(|_| LedgerError::AlreadyInstalled(ledger().description.name))?;
    Ok(ledger())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_francisco_columns_are_the_api_export_in_order() {
        let l = ledger();
        let names: Vec<&str> = l.columns.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "fiscal_year",
                "related_govt_units",
                "organization_group_code",
                "organization_group",
                "department_code",
                "department",
                "program_code",
                "program",
                "character_code",
                "character",
                "object_code",
                "object",
                "sub_object_code",
                "sub_object",
                "fund_type_code",
                "fund_type",
                "fund_code",
                "fund",
                "fund_category_code",
                "fund_category",
                "revenue_or_spending",
                "amount",
                "data_as_of",
                "data_loaded_at"
            ]
        );
        let program = l.hierarchy("organization").unwrap();
        assert_eq!(program.key, "program_id");
        // A member's columns are its table's after the key (schema.rs checks those
        // against the original ERD).
        let member: Vec<&str> = program.columns.iter().map(|c| c.name).collect();
        assert_eq!(member, crate::Table::dimension(program).column_names()[1..]);
        assert_eq!(program.level_positions(0), (4, 5));
        assert_eq!(l.member_width(), 7 + 6 + 6);
    }

    #[test]
    fn a_description_with_a_repeated_column_is_refused() {
        static TWICE: Description = Description {
            name: "twice",
            hierarchies: &[Hierarchy {
                id: "a",
                table: "a",
                alias: "a",
                description: "",
                levels: &[level(
                    "A",
                    text("amount", "Amount", "No A", ""),
                    text("a_code", "A Code", "No A Code", ""),
                )],
                attributes: &[],
            }],
        };
        assert!(matches!(Ledger::new(&TWICE), Err(LedgerError::Duplicate(c)) if c == "amount"));
    }
}

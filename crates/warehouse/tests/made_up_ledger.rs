//! A ledger that is not San Francisco's, described in one place and loaded: the
//! hierarchies are data ([`citybooks_model::ledger`]), so a fourth hierarchy, a level
//! more or a level less is a change to the description and nothing else.
//!
//! Its own test binary: a process loads one ledger, chosen before first use.

use std::path::Path;

use citybooks_model::ledger::{
    install, level, text, Column, Description, Hierarchy, Kind, Missing,
};
use citybooks_model::Table;
use citybooks_store::config::{LoadConfig, StoreConfig};
use citybooks_store::Store;
use citybooks_warehouse::{LoadStatus, Warehouse};

/// A small county: departments > divisions (no organization group), a type hierarchy
/// of two levels, a fund hierarchy of one, and a fourth hierarchy that San Francisco's
/// ledger does not have — the project a payment belongs to, with an integer phase.
static COUNTY: Description = Description {
    name: "Made-up County ledger",
    hierarchies: &[
        Hierarchy {
            id: "organization",
            table: "division",
            alias: "dv",
            description: "Department > division.",
            levels: &[
                citybooks_model::ledger::Level {
                    required: true,
                    ..level(
                        "Department",
                        text("department", "Department", "No Department", "Department."),
                        text(
                            "department_code",
                            "Department Code",
                            "No Department Code",
                            "Its code.",
                        ),
                    )
                },
                level(
                    "Division",
                    text("division", "Division", "No Division", "Division."),
                    text(
                        "division_code",
                        "Division Code",
                        "No Division Code",
                        "Its code.",
                    ),
                ),
            ],
            attributes: &[],
        },
        Hierarchy {
            id: "type",
            table: "account",
            alias: "ac",
            description: "Account class > account.",
            levels: &[
                level(
                    "Class",
                    text("class", "Class", "No Class", "Account class."),
                    text("class_code", "Class Code", "No Class Code", "Its code."),
                ),
                level(
                    "Account",
                    text("account", "Account", "No Account", "Account."),
                    text(
                        "account_code",
                        "Account Code",
                        "No Account Code",
                        "Its code.",
                    ),
                ),
            ],
            attributes: &[],
        },
        Hierarchy {
            id: "fund",
            table: "fund",
            alias: "fu",
            description: "Fund.",
            levels: &[level(
                "Fund",
                text("fund", "Fund", "No Fund", "Fund."),
                text("fund_code", "Fund Code", "No Fund Code", "Its code."),
            )],
            attributes: &[],
        },
        Hierarchy {
            id: "project",
            table: "project",
            alias: "pj",
            description: "Project > phase.",
            levels: &[
                level(
                    "Project",
                    text("project", "Project", "No Project", "Capital project."),
                    text(
                        "project_code",
                        "Project Code",
                        "No Project Code",
                        "Its code.",
                    ),
                ),
                level(
                    "Phase",
                    text("phase", "Phase", "No Phase", "Phase of the project."),
                    Column {
                        kind: Kind::Integer,
                        missing: Missing::Refuse,
                        ..text("phase_code", "Phase Code", "", "Phase number.")
                    },
                ),
            ],
            attributes: &[],
        },
    ],
};

const LEDGER: &str = "\
fiscal_year,department_code,department,division_code,division,class_code,class,account_code,account,fund_code,fund,project_code,project,phase_code,phase,revenue_or_spending,amount
2025,PW,Public Works,ST,Streets,SAL,Salaries,5010,Regular pay,GF,General Fund,P1,Bridge,1,Design,Spending,1000.10
2025,PW,Public Works,ST,Streets,SAL,Salaries,5010,Regular pay,GF,General Fund,P1,Bridge,01,Design,Spending,-0.10
2025,PW,Public Works,ST,Streets,SAL,Salaries,5011,Regular pay,GF,General Fund,P1,Bridge,2,Build,Spending,250.00
2025,PW,Public Works,,,TAX,Taxes,4000,Property tax,GF,General Fund,,,3,Close-out,Revenue,99.99
2024,PW,Public Works,ST,Streets,SAL,Salaries,5010,Regular pay,GF,General Fund,P1,Bridge,x,Design,Spending,5.00
2024,,,ST,Streets,SAL,Salaries,5010,Regular pay,GF,General Fund,P1,Bridge,1,Design,Spending,7.00
";

#[tokio::test]
async fn a_made_up_ledger_with_a_fourth_hierarchy_loads() {
    let ledger = install(&COUNTY).unwrap();
    assert_eq!(ledger.layouts.len(), 4);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("county.csv");
    std::fs::write(&file, LEDGER).unwrap();
    let store = Store::open(&StoreConfig::default(), Some(dir.path().join("store"))).unwrap();
    let wh = Warehouse::new(store, LoadConfig::default());
    let report = wh.load_path(Path::new(&file), false).await.unwrap();
    assert_eq!(report.status, LoadStatus::Loaded, "{report:?}");
    assert_eq!((report.rows_read, report.rows_loaded), (6, 4));

    let ctx = wh.session(None).await.unwrap();
    let sql = |q: &'static str| {
        let ctx = ctx.clone();
        async move {
            let batches = ctx.sql(q).await.unwrap().collect().await.unwrap();
            // Each row as its cells joined by `|`, trimmed: "1|Design|1".
            let table = arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string();
            let rows: Vec<String> = table
                .lines()
                .filter(|l| l.starts_with("| "))
                .skip(1)
                .map(|l| {
                    let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                    cells.join("|")
                })
                .collect();
            rows
        }
    };
    // The dimension tables are the description's, named and shaped by it.
    let names: Vec<String> = Table::dimensions().map(|t| t.qualified_name()).collect();
    assert_eq!(
        names,
        [
            "report.division",
            "report.account",
            "report.fund",
            "report.project"
        ]
    );
    let projects = sql("select project_id, phase, phase_code, project, project_code from report.project order by project_id").await;
    assert_eq!(
        projects,
        [
            "1|Design|1|Bridge|P1",
            "2|Build|2|Bridge|P1",
            "3|Close-out|3|No Project|No Project Code"
        ]
    );
    // `1` and `01` are one phase: its two rows share the key.
    let facts = sql(
        "select p.phase, d.division, a.account_code, count(*) as n, sum(t.amount) as total \
         from report.transaction t \
         join report.project p on t.project_id = p.project_id \
         join report.division d on t.division_id = d.division_id \
         join report.account a on t.account_id = a.account_id \
         group by p.phase, d.division, a.account_code order by total desc",
    )
    .await;
    assert_eq!(
        facts,
        [
            "Design|Streets|5010|2|1000.00",
            // Rule 6 gave "Regular pay" its most frequent code.
            "Build|Streets|5010|1|250.00",
            "Close-out|No Division|4000|1|99.99"
        ]
    );
    // Rule 6 over the made-up hierarchy: "Regular pay" under Salaries had two codes.
    assert!(
        report
            .conformed
            .iter()
            .any(|c| c.starts_with("account: Salaries / \"Regular pay\"") && c.ends_with("-> 5010")),
        "{:?}",
        report.conformed
    );
    // The description's checks quarantine with the column's name: an integer that is
    // not one, and a row naming no department (rule 2).
    let quarantine = sql("select line, field, reason from meta.quarantine order by line").await;
    assert_eq!(
        quarantine,
        [
            "6|phase_code|phase_code \"x\" is not an integer",
            "7|department|no department (rule 2): department and department_code are both required"
        ]
    );
}

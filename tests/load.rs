//! End-to-end tests of `citybooks load` and `citybooks query` on the real sample.

mod common;

use std::collections::BTreeMap;

use common::*;

/// Sum per organization group × revenue/spending straight from the raw CSV, in cents.
fn raw_sums(header: &[String], rows: &[Vec<String>]) -> BTreeMap<(String, String), i128> {
    let (og, rs, amount) = (
        col(header, "organization_group"),
        col(header, "revenue_or_spending"),
        col(header, "amount"),
    );
    let mut sums = BTreeMap::new();
    for r in rows {
        *sums.entry((r[og].clone(), r[rs].clone())).or_insert(0) += cents(&r[amount]);
    }
    sums
}

/// A history of two fiscal years: the sample (2025), and its first 700 rows as 2024.
fn history(header: &[String], rows: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut history = rows.to_vec();
    history.extend(in_year(header, &rows[..700], 2024));
    history
}

fn sql_sums(p: &Project) -> BTreeMap<(String, String), i128> {
    p.rows(
        "select p.organization_group, f.revenue_or_spending, sum(t.amount) from report.transaction t \
         join report.program p on t.program_id = p.program_id join report.finance f on t.finance_id = f.finance_id \
         group by 1, 2",
    )
    .into_iter()
    .map(|r| ((r[0].clone(), r[1].clone()), cents(&r[2])))
    .collect()
}

#[test]
fn sample_sums_per_group_equal_the_raw_csv_to_the_cent() {
    let p = Project::new();
    let reports = p.load(&[&sample_path()]);
    assert_eq!(reports[0]["status"], "loaded");
    assert_eq!(reports[0]["rows_loaded"], 2186);
    assert_eq!(reports[0]["rows_quarantined"], 0);
    let (header, rows) = sample_records();
    let want = raw_sums(&header, &rows);
    assert_eq!(sql_sums(&p), want);
    // The sum is exact: the decimal type survives to the result.
    let total: i128 = want.values().sum();
    assert_eq!(
        cents(&p.value("select sum(amount) from report.transaction")),
        total
    );
    assert_eq!(
        p.value("select arrow_typeof(sum(amount)) from report.transaction"),
        "Decimal128(30, 2)"
    );
    // Lineage on every fact row.
    let lineage = p.rows("select min(source_line), max(source_line), count(distinct source_file), min(data_as_of), min(load_id) from report.transaction");
    assert_eq!(lineage[0][0], "2");
    assert_eq!(lineage[0][1], "2187");
    assert_eq!(lineage[0][2], "1");
    assert_eq!(lineage[0][3], "2026-09-20T23:05:20.000");
    assert_eq!(lineage[0][4], "1");
}

#[test]
fn the_original_users_query_runs_verbatim() {
    let p = Project::new();
    p.load(&[&sample_path()]);
    let rows = p.rows(
        "select f.revenue_or_spending, avg(t.amount) as average_amount\nfrom report.transaction as t\njoin report.finance as f on t.finance_id = f.finance_id\ngroup by f.revenue_or_spending\norder by f.revenue_or_spending;",
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0], "Revenue");
    assert_eq!(rows[1][0], "Spending");
    // Each average equals the raw CSV's sum over its count, computed here in integers:
    // the printed decimal is the exact quotient cut to its last printed place.
    let (header, records) = sample_records();
    let (side, amount) = (col(&header, "revenue_or_spending"), col(&header, "amount"));
    for row in &rows {
        let of_side: Vec<&Vec<String>> = records.iter().filter(|r| r[side] == row[0]).collect();
        let (sum_cents, count) = (
            of_side.iter().map(|r| cents(&r[amount])).sum::<i128>(),
            of_side.len() as i128,
        );
        assert!(count > 0);
        let printed = &row[1];
        let places = printed.split_once('.').map_or(0, |(_, f)| f.len()) as u32;
        assert!(places >= 2, "{printed}");
        let printed_scaled: i128 = printed.replace('.', "").parse().unwrap();
        let exact_scaled = sum_cents * 10i128.pow(places - 2);
        // |printed − sum/count| < one unit of the last place.
        assert!(
            (printed_scaled * count - exact_scaled).abs() < count,
            "{}: average {printed}, the raw CSV gives {sum_cents} cents / {count}",
            row[0]
        );
    }
}

/// The sample rewritten into the portal dialect: human headers in another order
/// (`Revenue or Spending` second, as older exports), `Related Gov't Units`, CRLF, a BOM,
/// thousands separators and `$` in amounts, no timestamps, quotes only where needed.
fn portal_rewrite() -> Vec<u8> {
    let (header, rows) = sample_records();
    let human = |h: &str| -> String {
        match h {
            "related_govt_units" => "Related Gov't Units".into(),
            "sub_object_code" => "Sub-object Code".into(),
            "sub_object" => "Sub-object".into(),
            other => other
                .split('_')
                .enumerate()
                .map(|(i, w)| {
                    if i > 0 && w == "or" {
                        return w.to_string();
                    }
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    };
    let mut order: Vec<usize> = (0..22).collect();
    order.retain(|&i| i != 20);
    order.insert(1, 20); // revenue_or_spending second
    order.reverse(); // and everything else reversed
    let amount = col(&header, "amount");
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    w.write_record(order.iter().map(|&i| human(&header[i])))
        .unwrap();
    for r in &rows {
        let rec: Vec<String> = order
            .iter()
            .map(|&i| {
                if i == amount {
                    with_separators(&r[i])
                } else {
                    r[i].clone()
                }
            })
            .collect();
        w.write_record(&rec).unwrap();
    }
    let mut out = vec![0xEF, 0xBB, 0xBF];
    out.extend(w.into_inner().unwrap());
    out
}

fn with_separators(amount: &str) -> String {
    let (neg, a) = match amount.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", amount),
    };
    let (int, frac) = a
        .split_once('.')
        .map(|(i, f)| (i, format!(".{f}")))
        .unwrap_or((a, String::new()));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{neg}${grouped}{frac}")
}

#[test]
fn portal_dialect_with_bom_crlf_and_separators_loads_the_same_warehouse() {
    let api = Project::new();
    api.load(&[&sample_path()]);
    let portal = Project::new();
    let text = portal_rewrite();
    assert!(
        String::from_utf8_lossy(&text).contains("\"$1,"),
        "the rewrite has thousands separators"
    );
    let f = portal.file("portal.csv", &text);
    let reports = portal.load(&[&f]);
    assert_eq!(reports[0]["dialect"], "portal");
    assert_eq!(reports[0]["rows_loaded"], 2186, "{:?}", reports[0]);
    assert_eq!(sql_sums(&portal), sql_sums(&api));
    for table in [
        "report.program",
        "report.type",
        "report.fund",
        "report.finance",
    ] {
        let sql = format!("select * from {table} order by 1");
        assert_eq!(portal.rows(&sql), api.rows(&sql), "{table}");
    }
    assert_eq!(
        portal.value("select count(data_as_of) from report.transaction"),
        "0"
    );
}

#[test]
fn conformance_rules_apply_end_to_end() {
    let (header, rows) = sample_records();
    let c = |n: &str| col(&header, n);
    let mut rows: Vec<Vec<String>> = rows.into_iter().take(6).collect();
    // Rule 1: YES/NO; rule 3: no program; rule 4: NKE/NKEY without names; rule 5: no fund category.
    rows[0][c("related_govt_units")] = "YES".into();
    rows[1][c("program")] = String::new();
    rows[1][c("program_code")] = String::new();
    for n in ["character", "object", "object_code", "sub_object"] {
        rows[2][c(n)] = String::new();
    }
    rows[2][c("character_code")] = "NKE".into();
    rows[2][c("sub_object_code")] = "NKEY".into();
    rows[3][c("fund_category")] = String::new();
    rows[3][c("fund_category_code")] = String::new();
    rows[4][c("fund_category_code")] = "1.0".into();
    rows[4][c("organization_group_code")] = "1".into();
    // Rule 2: no department -> quarantined, not dropped.
    rows[5][c("department")] = String::new();
    rows[5][c("department_code")] = String::new();
    let p = Project::new();
    let f = p.file("rules.csv", &api_csv(&header, &rows));
    let r = &p.load(&[&f])[0];
    assert_eq!(
        (r["rows_loaded"].as_u64(), r["rows_quarantined"].as_u64()),
        (Some(5), Some(1))
    );
    let q = p.rows("select line, field, reason from meta.quarantine");
    assert_eq!(
        q,
        vec![vec![
            "7".to_string(),
            "department".into(),
            "no department (rule 2): department and department_code are both required".into()
        ]]
    );
    let rgu = p.rows("select distinct related_govt_units from report.program order by 1");
    assert_eq!(rgu, vec![vec!["No".to_string()], vec!["Yes".to_string()]]);
    assert_eq!(p.value("select count(*) from report.program where program = 'No Program' and program_code = 'No Program Code'"), "1");
    assert_eq!(
        p.rows("select character, object, object_code, sub_object from report.type where character_code = 'NKE'"),
        vec![vec!["No Character".to_string(), "No Object".into(), "No Object Code".into(), "No Sub Object".into()]]
    );
    assert_eq!(p.value("select count(*) from report.fund where fund_category = 'No Fund Category' and fund_category_code = 'No Fund Category Code'"), "1");
    assert_eq!(
        p.value("select count(*) from report.fund where fund_category_code like '%.0'"),
        "0"
    );
    assert_eq!(
        p.value("select count(distinct organization_group_code) from report.program"),
        "1"
    );
    // Rule 7: snake_case columns.
    let cols = p.rows("select column_name from information_schema.columns where table_schema = 'report' and column_name <> lower(column_name)");
    assert!(cols.is_empty(), "{cols:?}");
}

#[test]
fn rule6_picks_the_most_frequent_code_and_reports_it() {
    let p = Project::new();
    let r = &p.load(&[&sample_path()])[0];
    let conformed: Vec<String> = r["conformed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(conformed.len(), 1, "{conformed:?}");
    assert!(
        conformed[0].contains("Sustainable Streets")
            && conformed[0].ends_with("-> ENT_FUND~SU_STREETS"),
        "{}",
        conformed[0]
    );
    assert_eq!(
        p.value(
            "select count(distinct fund_code) from report.fund where fund = 'Sustainable Streets'"
        ),
        "1"
    );
    // The choice is in meta.loads too.
    assert!(p
        .value("select conformed from meta.loads")
        .contains("ENT_FUND~STBL_ST (3 rows)"));
}

#[test]
fn dimension_keys_are_stable_across_overlapping_loads() {
    let (header, rows) = sample_records();
    let c = |n: &str| col(&header, n);
    let p = Project::new();
    let first: Vec<Vec<String>> = rows[..1500].to_vec();
    let f1 = p.file("first.csv", &api_csv(&header, &first));
    p.load(&[&f1]);
    let before = p.rows("select * from report.program order by program_id");
    let types_before = p.rows("select * from report.type order by type_id");
    // The second file overlaps (rows 1000..), adds members, and is another fiscal year.
    let mut second: Vec<Vec<String>> = rows[1000..].to_vec();
    for r in &mut second {
        r[c("fiscal_year")] = "2024".into();
    }
    second[0][c("program")] = "A Brand New Program".into();
    let f2 = p.file("second.csv", &api_csv(&header, &second));
    let r = &p.load(&[&f2])[0];
    assert!(r["new_members"]["report.program"].as_u64().unwrap() >= 1);
    let after = p.rows("select * from report.program order by program_id");
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "existing members keep their ids"
    );
    let types_after = p.rows("select * from report.type order by type_id");
    assert_eq!(&types_after[..types_before.len()], &types_before[..]);
    let max_before: i64 = before.last().unwrap()[0].parse().unwrap();
    let new: Vec<&Vec<String>> = after
        .iter()
        .filter(|r| r[1] == "A Brand New Program")
        .collect();
    assert_eq!(new.len(), 1);
    assert!(new[0][0].parse::<i64>().unwrap() > max_before);
    // Reloading the first file renumbers nothing either.
    let f1b = p.file("first-again.csv", &api_csv(&header, &rows[..1499]));
    p.load(&[&f1b]);
    assert_eq!(
        p.rows("select * from report.program order by program_id"),
        after
    );
}

#[test]
fn reloading_the_same_content_is_a_recorded_no_op() {
    let p = Project::new();
    p.load(&[&sample_path()]);
    let before = p.fingerprint();
    let versions = p.value("select table_versions from meta.loads where load_id = 1");
    let copy = p.file("renamed-copy.csv", sample_text().as_bytes());
    let r = &p.load(&[&copy])[0];
    assert_eq!(r["status"], "unchanged");
    assert_eq!(p.fingerprint(), before);
    let loads = p
        .rows("select load_id, status, content_hash, rows_loaded from meta.loads order by load_id");
    assert_eq!(loads.len(), 2);
    assert_eq!(loads[1][1], "unchanged");
    assert_eq!(loads[0][2], loads[1][2]);
    assert_eq!(loads[1][3], "0");
    assert_eq!(
        p.value("select table_versions from meta.loads where load_id = 2"),
        versions
    );
    // Only one raw copy is kept for the same content.
    let raw: Vec<_> = std::fs::read_dir(p.dir.join("store/raw/cli"))
        .unwrap()
        .collect();
    assert_eq!(raw.len(), 1);
}

#[test]
fn a_file_replaces_exactly_the_fiscal_years_it_contains() {
    let (header, rows) = sample_records();
    let amount = col(&header, "amount");
    let p = Project::new();
    let h = p.file("history.csv", &api_csv(&header, &history(&header, &rows)));
    p.load(&[&h]);
    let y2024 =
        p.rows("select count(*), sum(amount) from report.transaction where fiscal_year = 2024");
    assert_eq!(y2024[0][0], "700");
    // This week's file: 2025 only, fewer rows, one amount revised.
    let mut weekly: Vec<Vec<String>> = rows[..300].to_vec();
    weekly[0][amount] = "1.23".into();
    let w = p.file("weekly.csv", &api_csv(&header, &weekly));
    // 2186 rows down to 300 is past the shrink guard: forced here (see
    // a_load_that_would_shrink_a_year_is_held_until_released).
    let out = p.ok(&["load", "--json", "--replace-years", w.to_str().unwrap()]);
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["years_replaced"], serde_json::json!([2025]));
    assert_eq!(
        p.rows("select count(*), sum(amount) from report.transaction where fiscal_year = 2024"),
        y2024
    );
    let want: i128 = weekly.iter().map(|r| cents(&r[amount])).sum();
    let got =
        p.rows("select count(*), sum(amount) from report.transaction where fiscal_year = 2025");
    assert_eq!(got[0][0], "300");
    assert_eq!(cents(&got[0][1]), want);
    // Time travel: as of load 1 the old 2025 is back.
    let old = p.rows_as_of(
        "select count(*) from report.transaction where fiscal_year = 2025",
        Some(1),
    );
    assert_eq!(old[0][0], "2186");
    assert_eq!(
        p.rows_as_of("select count(*) from meta.loads", Some(1))[0][0],
        "1"
    );
}

#[test]
fn what_a_load_changed_is_reported_and_compared_exactly() {
    let (header, rows) = sample_records();
    let (amount, side) = (col(&header, "amount"), col(&header, "revenue_or_spending"));
    let p = Project::new();
    let h = p.file("history.csv", &api_csv(&header, &history(&header, &rows)));
    let first = p.load(&[&h]);
    let said = first[0]["changes"].as_str().unwrap();
    assert!(
        said.contains("fiscal year 2024 new: ") && said.contains("fiscal year 2025 new: "),
        "{said}"
    );
    // This week: 2025 restated, one amount revised and a row fewer.
    let mut weekly = rows[1..].to_vec();
    weekly[0][amount] = "1.23".into();
    let w = p.file("weekly.csv", &api_csv(&header, &weekly));
    let out = p.ok(&["load", "--json", w.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let said = report["changes"].as_str().unwrap();
    assert!(
        said.starts_with("fiscal year 2025 restated: ") && !said.contains("2024"),
        "{said}"
    );
    let text = p.ok(&["load", "--replace-years", h.to_str().unwrap()]);
    assert!(text.contains("what changed: "), "{text}");

    // Load 2 against load 1, by organization: only 2025, exact against the raw files.
    let changes = |extra: &[&str]| {
        let args = [
            &["changes", "--from-load", "1", "--to-load", "2"][..],
            extra,
        ]
        .concat();
        p.ok(&args)
    };
    let json = changes(&["--format", "json", "--top", "1000"]);
    let c: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (c["from_load"].as_i64(), c["to_load"].as_i64()),
        (Some(1), Some(2))
    );
    let years = c["years"].as_array().unwrap();
    assert_eq!(years.len(), 1, "{json}");
    let y = &years[0];
    assert_eq!(y["fiscal_year"], 2025);
    assert_eq!(
        (y["rows_before"].as_u64(), y["rows_after"].as_u64()),
        (Some(rows.len() as u64), Some(weekly.len() as u64))
    );
    let total = |rs: &[Vec<String>], which: &str| -> i128 {
        rs.iter()
            .filter(|r| r[side] == which)
            .map(|r| cents(&r[amount]))
            .sum()
    };
    assert_eq!(
        cents(y["spending_before"].as_str().unwrap()),
        total(&rows, "Spending")
    );
    assert_eq!(
        cents(y["spending_after"].as_str().unwrap()),
        total(&weekly, "Spending")
    );
    assert_eq!(
        cents(y["revenue_after"].as_str().unwrap()),
        total(&weekly, "Revenue")
    );
    let (before, after) = (raw_sums(&header, &rows), raw_sums(&header, &weekly));
    let expected: BTreeMap<(String, String), i128> = before
        .keys()
        .chain(after.keys())
        .map(|k| {
            (
                k.clone(),
                after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0),
            )
        })
        .filter(|(_, d)| *d != 0)
        .collect();
    let got: BTreeMap<(String, String), i128> = y["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["depth"] == 0)
        .map(|m| {
            let key = (
                m["path"][0].as_str().unwrap().to_string(),
                m["side"].as_str().unwrap().to_string(),
            );
            (key, cents(m["difference"].as_str().unwrap()))
        })
        .collect();
    assert_eq!(got, expected);
    // The same as CSV and as a table.
    let csv_text = changes(&["--format", "csv"]);
    assert!(
        csv_text.starts_with("fiscal_year,level,path,side,before,after,difference\n"),
        "{csv_text}"
    );
    let spending = format!(
        "2025,total,,Spending,{},{},",
        y["spending_before"].as_str().unwrap(),
        y["spending_after"].as_str().unwrap()
    );
    assert!(csv_text.contains(&spending), "{csv_text}");
    let table = changes(&["--by", "fund"]);
    assert!(
        table.contains("changes from load 1 to load 2 (by fund)")
            && table.contains("fiscal year 2025 restated"),
        "{table}"
    );
    let bad = p.run(&["changes", "--by", "colour"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("organization, type, fund"),
        "{bad:?}"
    );
}

#[test]
fn a_loads_quality_counts_its_reasons_and_placeholders_and_flags_jumps() {
    let (header, rows) = sample_records();
    let [group, group_code, program, program_code] = [
        "organization_group",
        "organization_group_code",
        "program",
        "program_code",
    ]
    .map(|c| col(&header, c));
    let p = Project::new();
    p.load(&[&sample_path()]);
    let no_program =
        |rs: &[Vec<String>]| rs.iter().filter(|r| r[program].is_empty()).count() as u64;
    let first = p.ok(&["status", "--load", "1", "--json"]);
    let q: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        (q["rows_read"].as_u64(), q["rows_quarantined"].as_u64()),
        (Some(rows.len() as u64), Some(0))
    );
    assert!(q["flags"].as_array().unwrap().is_empty());
    // This week's export lost the organization group of 30 rows and the program of 40.
    let mut weekly = rows.clone();
    for r in weekly.iter_mut().skip(100).take(30) {
        r[group].clear();
        r[group_code].clear();
    }
    for r in weekly.iter_mut().skip(500).take(40) {
        r[program].clear();
        r[program_code].clear();
    }
    let w = p.file("weekly.csv", &api_csv(&header, &weekly));
    p.load(&[&w]);
    let out = p.ok(&["status", "--load", "latest", "--json"]);
    let q: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(q["load_id"], 2);
    assert_eq!(q["previous"], 1);
    assert_eq!(q["rows_quarantined"], 30);
    let reasons = q["quarantine"].as_array().unwrap();
    assert_eq!(
        reasons
            .iter()
            .map(|r| r["rows"].as_u64().unwrap())
            .sum::<u64>(),
        30
    );
    let lines: Vec<u64> = reasons
        .iter()
        .flat_map(|r| {
            r["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["line"].as_u64().unwrap())
        })
        .collect();
    // Data row i is on line i + 2 (line 1 is the header).
    assert_eq!(lines.iter().min(), Some(&102));
    assert_eq!(lines.len(), 30);
    let got = |placeholder: &str| -> u64 {
        q["placeholders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["placeholder"] == placeholder)
            .map_or(0, |x| x["rows"].as_u64().unwrap())
    };
    assert_eq!(
        got("No Program"),
        no_program(&weekly[..100]) + no_program(&weekly[130..])
    );
    assert!(got("No Program") >= 40);
    let flags: Vec<&str> = q["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        flags
            .iter()
            .any(|f| f.starts_with("quarantined rows went from 0.00% of the rows read to 1.37%")),
        "{flags:?}"
    );
    assert!(
        flags
            .iter()
            .any(|f| f.contains("placeholder \"No Program\" in program.program")),
        "{flags:?}"
    );
    let text = p.ok(&["status", "--load", "2"]);
    assert!(
        text.contains("FLAG: quarantined rows went from")
            && text.contains("rows given a placeholder:"),
        "{text}"
    );
    let missing = p.run(&["status", "--load", "9"]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no load 9 in meta.loads"),
        "{missing:?}"
    );
}

#[test]
fn a_load_that_would_shrink_a_year_is_held_until_released() {
    let (header, rows) = sample_records();
    let (fy, amount) = (col(&header, "fiscal_year"), col(&header, "amount"));
    let p = Project::new();
    p.load(&[&sample_path()]);
    let before = p.fingerprint();
    let year = rows[0][fy].clone();
    let in_year = rows.iter().filter(|r| r[fy] == year).count();

    // A one-row file of a year the warehouse holds: held, nothing replaced, exit 3.
    let one = p.file("one-row.csv", &api_csv(&header, &rows[..1]));
    let out = p.run(&["load", "--json", one.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "held");
    let held = report["load_id"].as_i64().unwrap();
    let hold = report["hold"].as_str().unwrap();
    assert!(
        hold.contains(&format!(
            "fiscal year {year} would go from {} rows to 1",
            citybooks_model::format_count(in_year as u64)
        )) && hold.contains(&format!("citybooks release {held}")),
        "{hold}"
    );
    assert_eq!(p.fingerprint(), before, "a held load changes nothing");
    let status = p.ok(&["status"]);
    assert!(
        status.contains("held loads") && status.contains(&format!("load {held} ")),
        "{status}"
    );
    // Another one-row file of the year (another row): held too; the text report says so.
    let other: Vec<Vec<String>> = rows
        .iter()
        .skip(1)
        .filter(|r| r[fy] == year)
        .take(1)
        .cloned()
        .collect();
    let again = p.file("another-row.csv", &api_csv(&header, &other));
    let out = p.run(&["load", again.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("HELD"));
    let second = held + 1;

    // Released: the year is that one row now.
    let out = p.ok(&["release", "--json", &held.to_string()]);
    let released: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(released["status"], "loaded", "{out}");
    let got = p.rows(&format!(
        "select count(*), sum(amount) from report.transaction where fiscal_year = {year}"
    ));
    assert_eq!(got[0][0], "1");
    assert_eq!(cents(&got[0][1]), cents(&rows[0][amount]));
    // Twice is refused with a sentence.
    let out = p.run(&["release", &held.to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already released"));

    // The second hold is let go: nothing loaded, and no held load is left.
    let out = p.ok(&["release", "--discard", &second.to_string()]);
    assert!(out.contains("discarded"), "{out}");
    assert!(!p.ok(&["status"]).contains("held loads"));

    // The whole year back: it grows, so it is not held; --replace-years forces the rest.
    let r = &p.load(&[&sample_path()])[0];
    assert_eq!(r["status"], "loaded");
    assert_eq!(p.fingerprint(), before);
    let out = p.ok(&["load", "--json", "--replace-years", one.to_str().unwrap()]);
    assert!(
        out.contains("\"status\":\"unchanged\"") || out.contains("\"status\":\"loaded\""),
        "{out}"
    );

    // A weekly file that grows the year and restates a few amounts is never held.
    let mut weekly = rows.clone();
    weekly.extend(rows.iter().take(50).cloned());
    for r in weekly.iter_mut().take(20) {
        r[amount] = "1.00".into();
    }
    let w = p.file("weekly.csv", &api_csv(&header, &weekly));
    assert_eq!(p.load(&[&w])[0]["status"], "loaded");
}

#[test]
fn vacuum_removes_what_no_recent_version_needs_and_keeps_the_warehouse() {
    let (header, rows) = sample_records();
    let amount = col(&header, "amount");
    let p = Project::new();
    p.load(&[&sample_path()]);
    // Two restatements of the year: each leaves the replaced files behind.
    for cents in ["1.00", "2.00"] {
        let mut restated = rows.clone();
        restated[0][amount] = cents.into();
        let f = p.file(
            &format!("restated-{cents}.csv"),
            &api_csv(&header, &restated),
        );
        assert_eq!(p.load(&[&f])[0]["status"], "loaded");
    }
    let before = p.fingerprint();
    let facts = p.dir.join("store/warehouse/report/transaction");
    let parquet = |dir: &std::path::Path| -> usize {
        let mut n = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let path = e.unwrap().path();
                if path.is_dir() {
                    if !path.ends_with("_delta_log") {
                        stack.push(path);
                    }
                } else if path.extension().is_some_and(|x| x == "parquet") {
                    n += 1;
                }
            }
        }
        n
    };
    let files = parquet(&facts);
    let loads = p.dir.join("store/warehouse/meta/loads");
    assert_eq!(parquet(&loads), 3, "one small file per load");
    // Within the default retention (a week) nothing goes, but the loads' three small
    // records are compacted into one file (the three stay for time travel).
    let out = p.ok(&["vacuum"]);
    assert!(out.contains("report.transaction: removed 0 "), "{out}");
    assert!(
        out.contains(
            "meta.loads: removed 0 unreferenced data files, compacted 3 small files into 1"
        ),
        "{out}"
    );
    assert_eq!(parquet(&facts), files);
    assert_eq!(parquet(&loads), 4);
    // A dry run with no retention counts the two replaced versions' files, removes none.
    let dry = p.ok(&["vacuum", "--retention-hours", "0", "--dry-run"]);
    let would: usize = dry
        .lines()
        .find(|l| l.starts_with("report.transaction: would remove "))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{dry}"));
    assert!(would >= 2, "{dry}");
    assert_eq!(parquet(&facts), files);
    let out = p.ok(&["vacuum", "--retention-hours", "0"]);
    assert!(out.contains("log checkpointed"), "{out}");
    assert_eq!(parquet(&facts), files - would);
    // The three small files the first vacuum compacted go now that no retention
    // protects them: one file of meta.loads is left.
    assert!(
        out.contains("meta.loads: removed 3 unreferenced data files, log checkpointed"),
        "{out}"
    );
    assert_eq!(parquet(&loads), 1);
    // The warehouse is the same, and the next load works on the checkpointed logs.
    assert_eq!(p.fingerprint(), before);
    assert_eq!(p.load(&[&sample_path()])[0]["status"], "loaded");
    assert!(p
        .dir
        .join("store/warehouse/report/transaction/_delta_log")
        .read_dir()
        .unwrap()
        .any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("checkpoint")));
}

#[test]
fn every_tenth_commit_compacts_and_checkpoints_and_no_history_is_dropped() {
    let p = Project::new();
    p.load(&[&sample_path()]);
    let total = "select sum(amount) from report.transaction";
    let first = p.value(total);
    let (header, mut rows) = sample_records();
    rows[0][col(&header, "amount")] = "1.00".into();
    let restated = p.file("restated.csv", &api_csv(&header, &rows));
    // Load 2 restates the year; loads 3..=11 find it unchanged, and each still ends
    // with a meta.loads commit: versions 0..=10. The tenth commit compacts the table's
    // eleven small files into one (version 11) and checkpoints the log there.
    for _ in 0..10 {
        p.load(&[&restated]);
    }
    let log = p.dir.join("store/warehouse/meta/loads/_delta_log");
    let has = |name: &str| log.join(name).exists();
    assert!(has("00000000000000000011.checkpoint.parquet"));
    assert!(!has("00000000000000000010.checkpoint.parquet"));
    let compaction = std::fs::read_to_string(log.join("00000000000000000011.json")).unwrap();
    assert!(
        compaction.contains("OPTIMIZE") && compaction.contains("compact"),
        "{compaction}"
    );
    assert_eq!(p.value("select count(*) from meta.loads"), "11");
    // The log keeps its first commit, and time travel to load 1 reads it.
    assert!(has("00000000000000000000.json"));
    assert_eq!(p.rows_as_of(total, Some(1))[0][0], first);
    assert_ne!(p.value(total), first);
}

#[test]
fn bad_rows_are_quarantined_with_file_line_and_reason() {
    let (header, rows) = sample_records();
    let c = |n: &str| col(&header, n);
    let mut good: Vec<Vec<String>> = rows[..5].to_vec();
    good[1][c("program")] = "Line\nbreak".into(); // a quoted field spanning two lines
    let mut text = String::from_utf8(api_csv(&header, &good)).unwrap();
    // Line numbers: header 1, rows 2..=7 (row 2 of data spans lines 3-4).
    let mut bad_amount = rows[5].clone();
    bad_amount[c("amount")] = "12.3.4".into();
    let mut bad_year = rows[6].clone();
    bad_year[c("fiscal_year")] = "FY25".into();
    text.push_str(
        String::from_utf8(api_csv(&header, &[bad_amount]))
            .unwrap()
            .lines()
            .nth(1)
            .unwrap(),
    );
    text.push('\n');
    text.push_str("\"2025\",\"NO\",\"too few fields\"\n");
    text.push_str(
        String::from_utf8(api_csv(&header, &[bad_year]))
            .unwrap()
            .lines()
            .nth(1)
            .unwrap(),
    );
    text.push('\n');
    let p = Project::new();
    let f = p.file("mixed.csv", text.as_bytes());
    let out = p.run(&["load", f.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "a load with quarantined rows still commits"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("line 8, field amount"), "{stdout}");
    let q =
        p.rows("select line, field, reason, raw, source_file from meta.quarantine order by line");
    let lines: Vec<&str> = q.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(lines, ["8", "9", "10"]);
    assert_eq!(q[0][1], "amount");
    assert!(q[0][2].contains("12.3.4"));
    assert!(q[0][3].contains("12.3.4"), "the raw text is kept");
    assert_eq!(q[1][1], "");
    assert!(q[1][2].contains("expected 24 fields"), "{}", q[1][2]);
    assert_eq!(q[2][1], "fiscal_year");
    assert!(q[0][4].starts_with("raw/cli/") && q[0][4].ends_with("-mixed.csv"));
    assert_eq!(p.value("select count(*) from report.transaction"), "5");
    assert_eq!(
        p.value(
            "select rows_read || '/' || rows_loaded || '/' || rows_quarantined from meta.loads"
        ),
        "8/5/3"
    );
}

#[test]
fn a_file_with_nothing_loadable_fails_clearly_and_keeps_everything() {
    let p = Project::new();
    p.load(&[&sample_path()]);
    let before = p.fingerprint();
    // Not a ledger at all.
    let f = p.file("notes.csv", b"name,value\nx,1\n");
    let out = p.run(&["load", f.to_str().unwrap()]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("notes.csv, line 1: the header has no column fiscal_year"),
        "{stdout}"
    );
    // Every row bad.
    let (header, rows) = sample_records();
    let mut bad = rows[..3].to_vec();
    for r in &mut bad {
        r[col(&header, "amount")] = "n/a".into();
    }
    let f = p.file("allbad.csv", &api_csv(&header, &bad));
    let out = p.run(&["load", f.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing could be loaded"));
    assert_eq!(p.fingerprint(), before);
    // As of a failed load, the warehouse is what it was then.
    assert_eq!(
        p.rows_as_of("select count(*) from report.transaction", Some(2))[0][0],
        "2186"
    );
    assert_eq!(p.value("select count(*) from meta.quarantine"), "3");
    assert_eq!(
        p.value("select count(*) from meta.loads where status = 'failed'"),
        "2"
    );
    // The reasons have a column of their own: the header's, and the counts of the
    // file whose every row was quarantined.
    let errors = p.rows("select error from meta.loads where status = 'failed' order by load_id");
    assert!(
        errors[0][0].contains("the header has no column fiscal_year"),
        "{errors:?}"
    );
    assert!(
        errors[1][0].contains("nothing could be loaded: 3 of 3 rows quarantined"),
        "{errors:?}"
    );
    // The raw files stay in the store.
    assert_eq!(
        std::fs::read_dir(p.dir.join("store/raw/cli"))
            .unwrap()
            .count(),
        3
    );
}

#[test]
fn query_formats_and_the_read_only_gate() {
    let p = Project::new();
    p.load(&[&sample_path()]);
    let json = p.ok(&[
        "query",
        "--format",
        "json",
        "select finance_id, revenue_or_spending from report.finance order by 1",
    ]);
    assert_eq!(
        json.lines().next().unwrap(),
        r#"{"finance_id":1,"revenue_or_spending":"Spending"}"#
    );
    let table = p.ok(&["query", "select count(*) as n from report.transaction"]);
    assert!(
        table.contains("| n    |") && table.contains("| 2186 |"),
        "{table}"
    );
    let out = p.tmp.path().join("t.parquet");
    p.ok(&[
        "query",
        "--format",
        "parquet",
        "--output",
        out.to_str().unwrap(),
        "select * from report.transaction",
    ]);
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&out).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 2186);
    for sql in [
        "drop table report.fund",
        "insert into report.finance values (3, 'x')",
        "create table x as select 1",
        "set datafusion.execution.batch_size = 1",
    ] {
        let o = p.run(&["query", sql]);
        assert!(!o.status.success(), "{sql} must be refused");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("read-only"),
            "{sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = p.run(&["query", "select nope from report.fund"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));
}

#[test]
fn status_demo_and_destroy() {
    let p = Project::new();
    p.load(&[&sample_path()]);
    let status = p.ok(&["status"]);
    assert!(status.contains("report.transaction | 2186"), "{status}");
    assert!(status.contains("| 2025        | 2186"), "{status}");
    let o = p.run(&["destroy"]);
    assert!(
        !o.status.success(),
        "destroy without a terminal needs --yes"
    );
    p.ok(&["destroy", "--yes"]);
    assert!(p.ok(&["status"]).contains("no loads yet"));
    assert!(p.dir.join("citybooks.toml").exists());

    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(
        std::process::Command::new(BIN)
            .current_dir(tmp.path())
            .args(["demo", "--no-serve"]),
        "citybooks demo --no-serve",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for title in [
        "Percentage of transactions by organization group",
        "Distribution of taxes as revenue",
        "Net profit by organization group",
        "Top 10 fund types by maximum spending",
        "the original users' query",
    ] {
        assert!(text.contains(title), "demo prints {title}");
    }
    assert!(text.contains("Public Works, Transportation & Commerce"));
    assert!(tmp.path().join("citybooks-demo/citybooks.toml").exists());
}

#[test]
fn configuration_errors_name_the_key() {
    let p = Project::new();
    std::fs::write(
        p.dir.join("citybooks.toml"),
        "[store]\nurl = \"store\"\nbukcet = 1\n",
    )
    .unwrap();
    let o = p.run(&["status"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bukcet"));
    std::fs::write(p.dir.join("citybooks.toml"), "").unwrap();
    let o = p
        .cmd()
        .env("CITYBOOKS_STORE_URL", "elsewhere")
        .args(["load", sample_path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(p
        .dir
        .join("elsewhere/warehouse/report/transaction/_delta_log")
        .exists());
    let o = p
        .cmd()
        .env("CITYBOOKS_STORE_URLL", "x")
        .arg("status")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("CITYBOOKS_STORE_URLL"));
    let o = std::process::Command::new(BIN)
        .current_dir(p.tmp.path())
        .arg("status")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a citybooks project"));
}

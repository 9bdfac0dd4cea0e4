//! The dashboard: the explorer's sums against the sample, the browser tests, and
//! `citybooks demo`.

use super::*;

/// An explorer answer's rows as name -> amount in cents.
fn amounts_by_name(view: &serde_json::Value) -> BTreeMap<String, i128> {
    view["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                cents(r["amount"].as_str().unwrap()),
            )
        })
        .collect()
}

#[test]
fn the_explorer_sums_equal_the_sample() {
    let (_p, s) = served(&[]);
    let (header, rows) = sample_records();
    let [group, dept, side, related, amount] = [
        "organization_group",
        "department",
        "revenue_or_spending",
        "related_govt_units",
        "amount",
    ]
    .map(|c| col(&header, c));
    // OpenBook's default: spending, related government units excluded.
    let mut expected: BTreeMap<String, i128> = BTreeMap::new();
    let mut with_related: i128 = 0;
    for r in &rows {
        if r[side] == "Spending" {
            with_related += cents(&r[amount]);
            if r[related].eq_ignore_ascii_case("no") {
                *expected.entry(r[group].clone()).or_default() += cents(&r[amount]);
            }
        }
    }
    let (status, view) = http_get(&s, "/api/explore?year=2025&side=Spending&h=organization");
    assert_eq!(status, 200, "{view}");
    let got = amounts_by_name(&view);
    assert_eq!(got, expected);
    assert_eq!(
        cents(view["total"].as_str().unwrap()),
        expected.values().sum::<i128>()
    );
    let (_, all) = http_get(
        &s,
        "/api/explore?year=2025&side=Spending&h=organization&related=include",
    );
    assert_eq!(cents(all["total"].as_str().unwrap()), with_related);

    // One level down.
    let first = view["rows"][0]["name"].as_str().unwrap().to_string();
    let mut depts: BTreeMap<String, i128> = BTreeMap::new();
    for r in &rows {
        if r[side] == "Spending" && r[related].eq_ignore_ascii_case("no") && r[group] == first {
            *depts.entry(r[dept].clone()).or_default() += cents(&r[amount]);
        }
    }
    let q: String = url_encode(&first);
    let (_, down) = http_get(
        &s,
        &format!("/api/explore?year=2025&side=Spending&h=organization&path={q}"),
    );
    assert_eq!(down["column"], "department");
    let got = amounts_by_name(&down);
    assert_eq!(got, depts);
    let (_, trend) = http_get(
        &s,
        &format!("/api/trend?side=Spending&h=organization&path={q}"),
    );
    assert_eq!(
        cents(trend["rows"][0]["amount"].as_str().unwrap()),
        depts.values().sum::<i128>()
    );
    let (status, bad) = http_get(&s, "/api/explore?h=colour");
    assert_eq!(status, 400);
    assert!(bad["error"]
        .as_str()
        .unwrap()
        .contains("organization, type or fund"));
    // The page's hierarchy picker and breadcrumbs come from the ledger's description.
    let (status, list) = http_get(&s, "/api/hierarchies");
    assert_eq!(status, 200);
    let levels = |i: usize| -> Vec<String> {
        list["hierarchies"][i]["levels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["column"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list["hierarchies"][1]["id"], "type");
    assert_eq!(levels(0), ["organization_group", "department", "program"]);
    assert_eq!(levels(2), ["fund_type", "fund", "fund_category"]);
    assert_eq!(
        list["hierarchies"][0]["levels"][0]["label"],
        "Organization group"
    );
}

#[test]
fn the_rows_behind_a_number_add_up_and_lead_to_their_original_lines() {
    let (_p, s) = served(&[]);
    let (header, records) = sample_records();
    let [group, side, related, amount] = [
        "organization_group",
        "revenue_or_spending",
        "related_govt_units",
        "amount",
    ]
    .map(|c| col(&header, c));
    let sum = |rows: &[serde_json::Value], i: usize| -> i128 {
        rows.iter().map(|r| cents(r[i].as_str().unwrap())).sum()
    };

    // A bar of the explorer: its rows count and sum to the bar, and to the raw CSV.
    let (_, view) = http_get(&s, "/api/explore?year=2025&side=Spending&h=organization");
    let bar = &view["rows"][0];
    let name = bar["name"].as_str().unwrap();
    let mine: Vec<&Vec<String>> = records
        .iter()
        .filter(|r| {
            r[side] == "Spending" && r[related].eq_ignore_ascii_case("no") && r[group] == name
        })
        .collect();
    let filter = format!(
        "year=2025&side=Spending&h=organization&path={}",
        url_encode(name)
    );
    let (status, rows) = http_get(&s, &format!("/api/rows?{filter}&limit=1000"));
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows["total_rows"], bar["transactions"]);
    assert_eq!(rows["total_rows"].as_u64().unwrap(), mine.len() as u64);
    assert_eq!(rows["total_amount"], bar["amount"]);
    let expected: i128 = mine.iter().map(|r| cents(&r[amount])).sum();
    assert_eq!(cents(rows["total_amount"].as_str().unwrap()), expected);
    let columns: Vec<&str> = rows["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let at = |name: &str| columns.iter().position(|c| *c == name).unwrap();
    for lineage in [
        "load_id",
        "source_file",
        "source_line",
        "data_as_of",
        "program",
        "fund",
    ] {
        assert!(columns.contains(&lineage), "{columns:?}");
    }
    let page = rows["rows"].as_array().unwrap();
    if page.len() as u64 == rows["total_rows"].as_u64().unwrap() {
        assert_eq!(sum(page, at("amount")), expected);
    }
    // Largest first by default; pages do not overlap; any column sorts.
    let amounts: Vec<i128> = page
        .iter()
        .map(|r| cents(r[at("amount")].as_str().unwrap()))
        .collect();
    assert!(amounts.windows(2).all(|w| w[0] >= w[1]), "{amounts:?}");
    let (_, first) = http_get(&s, &format!("/api/rows?{filter}&limit=3&sort=source_line"));
    let (_, second) = http_get(
        &s,
        &format!("/api/rows?{filter}&limit=3&offset=3&sort=source_line"),
    );
    let lines = |v: &serde_json::Value| -> Vec<i64> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[at("source_line")].as_i64().unwrap())
            .collect()
    };
    let (a, b) = (lines(&first), lines(&second));
    assert!(
        a.len() == 3 && a.windows(2).all(|w| w[0] < w[1]) && a[2] < b[0],
        "{a:?} {b:?}"
    );
    // The CSV download holds every row.
    let csv_text = ureq::get(&s.url(&format!("/api/rows?{filter}&format=csv")))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let amount_at = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "amount")
        .unwrap();
    let downloaded: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(downloaded.len(), mine.len());
    assert_eq!(
        downloaded
            .iter()
            .map(|r| cents(&r[amount_at]))
            .sum::<i128>(),
        expected
    );

    // A slice of an original chart: the organization groups' transaction counts.
    let (_, chart) = http_get(&s, "/api/charts/transactions_by_organization_group");
    let slice = &chart["rows"][0];
    let key = slice[0].as_str().unwrap();
    let (_, behind) = http_get(
        &s,
        &format!(
            "/api/rows?chart=transactions_by_organization_group&key={}",
            url_encode(key)
        ),
    );
    assert_eq!(behind["total_rows"], slice[1], "{behind}");
    assert_eq!(
        behind["total_rows"].as_u64().unwrap(),
        records.iter().filter(|r| r[group] == key).count() as u64
    );
    // The histogram's bins: each bin's rows are its count.
    let (_, bins) = http_get(&s, "/api/charts/tax_revenue_distribution");
    for bin in bins["rows"].as_array().unwrap() {
        let (_, behind) = http_get(
            &s,
            &format!("/api/rows?chart=tax_revenue_distribution&key={}", bin[0]),
        );
        assert_eq!(behind["total_rows"], bin[3], "bin {bin}: {behind}");
    }

    // Any row's original line, as the raw file holds it, read by a byte range.
    let sample = sample_text();
    let lines_of_file: Vec<&str> = sample.lines().collect();
    for row in page.iter().take(5) {
        let (load, line) = (
            row[at("load_id")].as_i64().unwrap(),
            row[at("source_line")].as_i64().unwrap(),
        );
        let (status, found) = http_get(&s, &format!("/api/source-line?load={load}&line={line}"));
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["text"], lines_of_file[line as usize - 1]);
        assert_eq!(found["header"], lines_of_file[0]);
        let (start, end) = (
            found["start"].as_u64().unwrap(),
            found["end"].as_u64().unwrap(),
        );
        assert_eq!(
            &sample.as_bytes()[start as usize..end as usize],
            lines_of_file[line as usize - 1].as_bytes()
        );
    }
    let (status, missing) = http_get(&s, "/api/source-line?load=1&line=999999");
    assert_eq!(status, 404, "{missing}");
    assert!(missing["error"]
        .as_str()
        .unwrap()
        .contains("there is no line 999999"));
    let (status, _) = http_get(&s, "/api/source-line?load=99&line=2");
    assert_eq!(status, 404);
    let (status, bad) = http_get(&s, &format!("/api/rows?{filter}&sort=colour"));
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("sort"), "{bad}");
}

#[test]
fn what_changed_is_served_as_json_and_as_an_atom_feed() {
    let (p, s) = served(&[]);
    let (status, first) = http_get(&s, "/api/changes");
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["from_load"].is_null(), first["to_load"].as_i64()),
        (true, Some(1))
    );
    assert!(
        first["summary"]
            .as_str()
            .unwrap()
            .starts_with("fiscal year 2025 new: "),
        "{first}"
    );
    // A weekly file that restates 2025: one amount revised, a row fewer.
    let (header, rows) = sample_records();
    let amount = col(&header, "amount");
    let mut weekly = rows[1..].to_vec();
    weekly[0][amount] = "1.23".into();
    let w = p.file("weekly.csv", &api_csv(&header, &weekly));
    p.ok(&["load", w.to_str().unwrap()]);
    let (status, c) = http_get(&s, "/api/changes?by=fund&top=5");
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        (
            c["from_load"].as_i64(),
            c["to_load"].as_i64(),
            c["by"].as_str()
        ),
        (Some(1), Some(2), Some("fund"))
    );
    let y = &c["years"][0];
    assert_eq!(
        (y["rows_before"].as_u64(), y["rows_after"].as_u64()),
        (Some(rows.len() as u64), Some(weekly.len() as u64))
    );
    let moved = cents(y["spending_after"].as_str().unwrap())
        + cents(y["revenue_after"].as_str().unwrap())
        - cents(y["spending_before"].as_str().unwrap())
        - cents(y["revenue_before"].as_str().unwrap());
    let raw: i128 = weekly.iter().map(|r| cents(&r[amount])).sum::<i128>()
        - rows.iter().map(|r| cents(&r[amount])).sum::<i128>();
    assert_eq!(moved, raw);
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .starts_with("fiscal year 2025 restated: "),
        "{c}"
    );
    assert!(
        y["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["depth"] == 0)
            .count()
            <= 5 * 2
    );
    assert_eq!(http_get(&s, "/api/changes?by=colour").0, 400);
    assert_eq!(http_get(&s, "/api/changes?from=99").0, 404);
    // The rows of a change as they were after each load, as JSON and as CSV.
    let all = "/api/rows?year=2025&side=Spending&related=include&h=organization";
    let spending = |rs: &[Vec<String>]| {
        let side = col(&header, "revenue_or_spending");
        rs.iter().filter(|r| r[side] == "Spending").count() as u64
    };
    for (load, rs) in [(1, &rows), (2, &weekly)] {
        let (status, then) = http_get(&s, &format!("{all}&as_of_load={load}&limit=1"));
        assert_eq!(status, 200, "{then}");
        assert_eq!(then["total_rows"].as_u64(), Some(spending(rs)));
        let csv_text = ureq::get(&s.url(&format!("{all}&as_of_load={load}&format=csv")))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        assert_eq!(csv_text.lines().count() as u64, 1 + spending(rs));
    }

    let feed = ureq::get(&s.url("/feed.xml")).call().unwrap();
    assert_eq!(feed.content_type(), "application/atom+xml");
    let xml = feed.into_string().unwrap();
    assert_eq!(xml.matches("<entry>").count(), 2, "{xml}");
    assert!(
        xml.contains("<title>Load 2: loaded ") && xml.contains("fiscal year 2025 restated: "),
        "{xml}"
    );
    assert!(xml.contains("fiscal year 2025 new: "), "{xml}");
}

/// A JSON number or a decimal in a string, as f64.
fn number(v: &serde_json::Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn the_four_original_charts_equal_a_computation_over_the_raw_csv() {
    let (_p, s) = served(&[]);
    let (header, rows) = sample_records();
    let [group, side, character, fund_type, amount] = [
        "organization_group",
        "revenue_or_spending",
        "character",
        "fund_type",
        "amount",
    ]
    .map(|c| col(&header, c));
    let chart = |id: &str| -> Vec<serde_json::Value> {
        let (status, body) = http_get(&s, &format!("/api/charts/{id}"));
        assert_eq!(status, 200, "{id}: {body}");
        body["rows"].as_array().unwrap().clone()
    };

    // 1. Transactions by organization group: counts, and shares of all rows to 0.01 %,
    // most transactions first.
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &rows {
        *counts.entry(&r[group]).or_default() += 1;
    }
    let got = chart("transactions_by_organization_group");
    assert_eq!(got.len(), counts.len());
    let mut order: Vec<(&str, u64)> = counts.iter().map(|(k, v)| (*k, *v)).collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (g, (name, count)) in got.iter().zip(&order) {
        assert_eq!(
            (g[0].as_str().unwrap(), g[1].as_u64().unwrap()),
            (*name, *count)
        );
        let exact = 100.0 * *count as f64 / rows.len() as f64;
        let shown = number(&g[2]);
        assert!(
            (shown - exact).abs() <= 0.005 + 1e-9,
            "{name}: {shown} % vs {exact} %"
        );
    }

    // 2. The tax revenue histogram: ten equal bins from the smallest to the largest
    // tax amount, each counting its amounts (the top one closed), in exact integers.
    let taxes: Vec<i128> = rows
        .iter()
        .filter(|r| r[side] == "Revenue" && r[character].ends_with("Taxes"))
        .map(|r| cents(&r[amount]))
        .collect();
    assert!(taxes.len() > 10, "the sample has tax revenue");
    let (lo, hi) = (*taxes.iter().min().unwrap(), *taxes.iter().max().unwrap());
    let mut bins = [0u64; 10];
    for a in &taxes {
        bins[((10 * (a - lo)) / (hi - lo)).min(9) as usize] += 1;
    }
    let got = chart("tax_revenue_distribution");
    assert_eq!(got.len(), 10);
    for (i, bin) in got.iter().enumerate() {
        assert_eq!(bin[0].as_i64().unwrap(), i as i64);
        assert_eq!(bin[3].as_u64().unwrap(), bins[i], "bin {i}");
        for (edge, at) in [(i, 1), (i + 1, 2)] {
            let exact = (lo as f64 + edge as f64 * (hi - lo) as f64 / 10.0) / 100.0;
            let shown = number(&bin[at]);
            assert!(
                (shown - exact).abs() <= 0.005 + 1e-6,
                "bin {i}: {shown} vs {exact}"
            );
        }
    }
    assert_eq!(bins.iter().sum::<u64>(), taxes.len() as u64);

    // 3. Net by organization group: revenue minus spending, exact to the cent, lowest
    // first.
    let mut net: BTreeMap<&str, i128> = BTreeMap::new();
    for r in &rows {
        let sign = if r[side] == "Revenue" { 1 } else { -1 };
        *net.entry(&r[group]).or_default() += sign * cents(&r[amount]);
    }
    let got = chart("net_by_organization_group");
    let shown: Vec<(String, i128)> = got
        .iter()
        .map(|g| {
            (
                g[0].as_str().unwrap().to_string(),
                cents(g[1].as_str().unwrap()),
            )
        })
        .collect();
    let mut want: Vec<(String, i128)> = net.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    want.sort_by_key(|(_, v)| *v);
    assert_eq!(
        shown.iter().map(|x| x.1).collect::<Vec<_>>(),
        want.iter().map(|x| x.1).collect::<Vec<_>>()
    );
    assert_eq!(
        shown.into_iter().collect::<BTreeMap<_, _>>(),
        want.into_iter().collect::<BTreeMap<_, _>>()
    );

    // 4. The ten fund types with the largest single spending amount, largest first.
    let mut max: BTreeMap<&str, i128> = BTreeMap::new();
    for r in rows.iter().filter(|r| r[side] == "Spending") {
        let m = max.entry(&r[fund_type]).or_insert(i128::MIN);
        *m = (*m).max(cents(&r[amount]));
    }
    let mut want: Vec<(String, i128)> = max.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    want.truncate(10);
    let got: Vec<(String, i128)> = chart("top_fund_types_by_max_spending")
        .iter()
        .map(|g| {
            (
                g[0].as_str().unwrap().to_string(),
                cents(g[1].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn the_dashboard_passes_its_browser_tests() {
    let browser = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    if !have_peer(
        "chromium and playwright-core",
        Command::new("node")
            .current_dir(browser)
            .args(["-e", "require('playwright-core'); require('fs').accessSync(process.env.CHROMIUM || '/usr/bin/chromium')"]),
        "apt-get install chromium && npm ci --prefix tests/browser",
    ) {
        return;
    }
    let (p, s) = served(&[]);
    // A second fiscal year, so the year filter and the trend have two to show: the
    // sample's first 1,500 of its 2,186 rows as fiscal year 2024 (other totals than 2025's).
    let (header, rows) = sample_records();
    let earlier = in_year(&header, &rows[..1500], 2024);
    let f = p.file("fy2024.csv", &api_csv(&header, &earlier));
    let out = p.run(&["load", "--json", f.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    // A one-row file of the sample's year: held by the shrink guard, so the page must
    // say so (and its figures stay the sample's).
    let one = p.file("one-row.csv", &api_csv(&header, &rows[..1]));
    let held = p.run(&["load", "--json", one.to_str().unwrap()]);
    assert_eq!(held.status.code(), Some(3), "{}", text(&held));
    let report: serde_json::Value = serde_json::from_slice(&held.stdout).unwrap();
    assert_eq!(report["status"], "held");
    let held_id = report["load_id"].to_string();
    let shot = std::env::var("CITYBOOKS_SCREENSHOT").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join("citybooks-dashboard.png")
            .display()
            .to_string()
    });
    let out = Command::new("node")
        .arg(format!("{browser}/e2e.mjs"))
        .args(["--base", &s.url(""), "--screenshot", &shot])
        .args(["--held-load", &held_id, "--changed-year", "2024"])
        .output()
        .unwrap();
    println!("{}", text(&out));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn demo_serves_the_dashboard_and_psql() {
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = Command::new(BIN);
    demo.current_dir(tmp.path()).arg("demo");
    let guard = Served::start(demo);
    assert!(
        guard.banner.contains("Net profit by organization group"),
        "{}",
        guard.banner
    );
    assert!(guard
        .banner
        .contains(&format!("dashboard: http://127.0.0.1:{}/", guard.http)));
    let line = guard
        .banner
        .lines()
        .find(|l| l.contains("PGPASSWORD="))
        .expect("the psql line");
    assert!(line.contains(&format!("-p {}", guard.sql)), "{line}");
    let page = ureq::get(&guard.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(page.contains("/assets/echarts.min.js"));
    if have_psql() {
        let password = line
            .split("PGPASSWORD=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        let out = psql(
            guard.sql,
            "demo",
            Some(password),
            &["-A", "-t", "-c", "select count(*) from report.transaction"],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "2186",
            "{}",
            text(&out)
        );
    }
}

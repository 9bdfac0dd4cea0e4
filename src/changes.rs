//! `citybooks changes`: what changed between two loads, as a table a person reads or as
//! CSV. (JSON is the warehouse's own serialisation.)

use citybooks_model::{format_cents, format_change, format_count};
use citybooks_warehouse::changes::Changes;

/// The changes as a person reads them: a sentence per year, its totals, its members.
pub fn print(c: &Changes) {
    let from = c
        .from_load
        .map_or("an empty warehouse".to_string(), |id| format!("load {id}"));
    println!("changes from {from} to load {} (by {})", c.to_load, c.by);
    if c.years.is_empty() {
        println!("  no fiscal year was replaced between them");
    }
    for y in &c.years {
        println!("\n{}", y.sentence());
        for (side, before, after) in [
            ("revenue", y.revenue_before, y.revenue_after),
            ("spending", y.spending_before, y.spending_after),
        ] {
            println!(
                "  {side:<9}{:>20} → {:>20}  ({})",
                format_cents(before),
                format_cents(after),
                format_change(after - before)
            );
        }
        println!(
            "  rows     {:>20} → {:>20}  ({} added, {} removed, {} changed at the grain)",
            format_count(y.rows_before),
            format_count(y.rows_after),
            format_count(y.rows_added),
            format_count(y.rows_removed),
            format_count(y.rows_changed)
        );
        for m in &y.members {
            println!(
                "  {:<20} {:<50} {:<9}{:>18} → {:>18}  {:>14}",
                m.level,
                m.path.last().map(String::as_str).unwrap_or(""),
                m.side,
                format_cents(m.before),
                format_cents(m.after),
                format_cents(m.difference)
            );
        }
    }
}

/// The changes as CSV: a row per year and side (level `total`), then per member.
pub fn csv(c: &Changes) -> String {
    let field = |s: &str| match s.contains([',', '"', '\n']) {
        true => format!("\"{}\"", s.replace('"', "\"\"")),
        false => s.to_string(),
    };
    let mut out = String::from("fiscal_year,level,path,side,before,after,difference\n");
    for y in &c.years {
        for (side, before, after) in [
            ("Revenue", y.revenue_before, y.revenue_after),
            ("Spending", y.spending_before, y.spending_after),
        ] {
            out.push_str(&format!(
                "{},total,,{side},{},{},{}\n",
                y.fiscal_year,
                format_cents(before),
                format_cents(after),
                format_cents(after - before)
            ));
        }
        for m in &y.members {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                y.fiscal_year,
                m.level,
                field(&m.path.join(" / ")),
                m.side,
                format_cents(m.before),
                format_cents(m.after),
                format_cents(m.difference)
            ));
        }
    }
    out
}

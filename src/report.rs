//! `citybooks status --load N`: the quality of one load as a person reads it.

use citybooks_model::format_count;
use citybooks_warehouse::quality::Quality;

pub fn print_quality(q: &Quality) {
    println!("load {}: {} {}", q.load_id, q.status, q.source_file);
    if let Some(reason) = &q.reason {
        println!("  {reason}");
    }
    let years: Vec<String> = q.years_replaced.iter().map(|y| y.to_string()).collect();
    println!(
        "  rows read {}, loaded {}, quarantined {}; fiscal years replaced: {}",
        format_count(q.rows_read as u64),
        format_count(q.rows_loaded as u64),
        format_count(q.rows_quarantined as u64),
        if years.is_empty() {
            "none".into()
        } else {
            years.join(", ")
        }
    );
    match q.previous {
        Some(prev) => println!("  compared with load {prev}, the previous load of the same source"),
        None => println!("  no earlier load of the same source to compare with"),
    }
    for flag in &q.flags {
        println!("  FLAG: {flag}");
    }
    if !q.quarantine.is_empty() {
        println!("\nquarantined, by reason:");
    }
    for r in &q.quarantine {
        let lines: Vec<String> = r.lines.iter().map(|l| l.line.to_string()).collect();
        let more = if r.rows as usize > r.lines.len() {
            ", ..."
        } else {
            ""
        };
        println!(
            "  {:>7}  {}  (lines {}{more})",
            format_count(r.rows),
            r.reason,
            lines.join(", ")
        );
    }
    if !q.placeholders.is_empty() {
        println!("\nrows given a placeholder:");
    }
    for p in &q.placeholders {
        println!(
            "  {:>7}  {}.{} = {:?}",
            format_count(p.rows),
            p.table,
            p.column,
            p.placeholder
        );
    }
    if !q.conformed.is_empty() {
        println!("\nconformed (rule 6):");
    }
    for c in &q.conformed {
        println!("  {c}");
    }
}

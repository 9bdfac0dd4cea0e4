//! The scan: the first pass over the raw file. It checks and conforms every row
//! (rules 1–5), sets bad rows aside with their reason, counts rows and gross amount
//! per fiscal year, collects each dimension's distinct members with their row counts
//! (rule 6 needs the whole file), and hashes the content.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ahash::AHashMap;
use citybooks_model::conform::conform_row;
use citybooks_model::{ledger, Member};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::QuarantinedRow;
use crate::csvsource::{Hashing, Next, Records};
use crate::error::Result;
use crate::lineindex::LineIndex;
use crate::shrink::YearSize;

/// Distinct dimension members of one file, found by a byte key so the hot loop
/// allocates only for members it has not seen.
pub(super) struct Interner<M> {
    map: AHashMap<Box<[u8]>, u32>,
    /// Each member with its row count, in the order the file first mentions them.
    pub members: Vec<(M, u64)>,
}

impl<M> Interner<M> {
    pub(super) fn new() -> Self {
        Interner {
            map: AHashMap::new(),
            members: Vec::new(),
        }
    }

    fn intern(&mut self, key: &[u8], make: impl FnOnce() -> M) -> u32 {
        if let Some(&i) = self.map.get(key) {
            self.members[i as usize].1 += 1;
            return i;
        }
        let i = self.members.len() as u32;
        self.members.push((make(), 1));
        self.map.insert(key.into(), i);
        i
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<u32> {
        self.map.get(key).copied()
    }
}

/// The interning key of a member: its values, each ended by a unit separator (a
/// byte no ledger text holds).
pub(super) fn member_key(buf: &mut Vec<u8>, values: &[&str]) {
    buf.clear();
    for v in values {
        buf.extend_from_slice(v.as_bytes());
        buf.push(0x1f);
    }
}

/// What the scan learnt about a file.
pub(super) struct Scan {
    pub dialect: String,
    pub hash: String,
    pub bytes: u64,
    pub rows_read: u64,
    pub rows_ok: u64,
    pub years: BTreeSet<i32>,
    /// Rows and gross amount per fiscal year, for the shrink guard.
    pub year_sizes: BTreeMap<i32, YearSize>,
    pub data_as_of: Option<String>,
    /// The distinct members of each hierarchy, in the ledger's order.
    pub members: Vec<Interner<Member>>,
    pub quarantine: Vec<QuarantinedRow>,
    /// Where the file's lines start, for reading one line back later.
    pub lines: LineIndex,
}

pub(super) fn progress_bar(total: u64, phase: &str, show: bool) -> ProgressBar {
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>6} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(phase.to_string());
    bar
}

pub(super) fn tick(bar: &ProgressBar, bytes: &AtomicU64, rows: u64, started: Instant) {
    bar.set_position(bytes.load(Ordering::Relaxed));
    let rate = rows as f64 / started.elapsed().as_secs_f64().max(1e-9);
    bar.set_message(format!("{rows} rows, {rate:.0} rows/s"));
}

/// The first pass: validate, count, collect members, hash.
pub(super) fn scan(
    reader: Box<dyn Read + Send>,
    file: &str,
    total: u64,
    show: bool,
) -> Result<Scan> {
    let hashing = Hashing::new(reader, true);
    let counter = hashing.counter();
    let mut recs = Records::open(hashing, file)?;
    let mut s = Scan {
        dialect: recs.header.dialect.to_string(),
        hash: String::new(),
        bytes: 0,
        rows_read: 0,
        rows_ok: 0,
        years: BTreeSet::new(),
        year_sizes: BTreeMap::new(),
        data_as_of: None,
        members: ledger().layouts.iter().map(|_| Interner::new()).collect(),
        quarantine: Vec::new(),
        lines: LineIndex::default(),
    };
    let bar = progress_bar(total, "scan", show);
    let started = Instant::now();
    let mut key = Vec::with_capacity(256);
    loop {
        let line = match recs.next_record()? {
            Next::End => break,
            Next::Bad { line, reason, raw } => {
                s.rows_read += 1;
                s.quarantine.push(QuarantinedRow {
                    line,
                    field: None,
                    reason,
                    raw,
                });
                continue;
            }
            Next::Row { line } => line,
        };
        s.rows_read += 1;
        if s.rows_read.is_multiple_of(16384) {
            tick(&bar, &counter, s.rows_read, started);
        }
        let conformed = recs.row().map_err(|reason| (None, reason)).and_then(|raw| {
            conform_row(&raw).map_err(|e| (e.field().map(|f| f.to_string()), e.to_string()))
        });
        match conformed {
            Err((field, reason)) => s.quarantine.push(QuarantinedRow {
                line,
                field,
                reason,
                raw: recs.current_raw(),
            }),
            Ok(row) => {
                s.rows_ok += 1;
                s.years.insert(row.fiscal_year);
                let size = s.year_sizes.entry(row.fiscal_year).or_default();
                size.rows += 1;
                size.gross_cents += row.amount.abs();
                if s.data_as_of.is_none() {
                    s.data_as_of = row.data_as_of.map(str::to_string);
                }
                for (layout, members) in ledger().layouts.iter().zip(&mut s.members) {
                    member_key(&mut key, row.member_values(layout));
                    members.intern(&key, || row.member(layout));
                }
            }
        }
    }
    bar.finish_and_clear();
    let hashing = recs.into_hashing();
    s.bytes = counter.load(Ordering::Relaxed);
    let (digest, lines) = hashing.finish().expect("the scan hashes");
    s.hash = hex::encode(digest);
    s.lines = lines;
    Ok(s)
}

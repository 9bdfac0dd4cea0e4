//! Streaming CSV records of either dialect, with the line each one starts on.
//!
//! Memory stays flat whatever the file size: one record buffer is reused. A UTF-8 byte
//! order mark is skipped, CRLF and LF both end records, quotes are optional.

use std::collections::VecDeque;
use std::io::Read;

use citybooks_model::ledger::MAX_COLUMNS;
use citybooks_model::{ledger, HeaderMap, RawRow};
use sha2::{Digest, Sha256};

use crate::error::{Result, WarehouseError};
use crate::lineindex::{LineIndex, LineIndexer};

/// A reader that feeds every byte it passes through a SHA-256 and a line index
/// ([`LineIndexer`]), and counts them.
pub struct Hashing<R> {
    inner: R,
    hasher: Option<(Sha256, LineIndexer)>,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Hashing<R> {
    /// With `hash`, the reader hashes and indexes what it reads; without, it counts.
    pub fn new(inner: R, hash: bool) -> Self {
        Hashing {
            inner,
            hasher: hash.then(|| (Sha256::new(), LineIndexer::default())),
            bytes: Default::default(),
        }
    }

    /// The SHA-256 of everything read and its line index (None if this reader does
    /// not hash).
    pub fn finish(self) -> Option<([u8; 32], LineIndex)> {
        self.hasher
            .map(|(h, lines)| (h.finalize().into(), lines.finish()))
    }

    /// A counter of the bytes read so far, readable from another thread.
    pub fn counter(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.bytes.clone()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some((h, lines)) = self.hasher.as_mut() {
            h.update(&buf[..n]);
            lines.feed(&buf[..n]);
        }
        self.bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Skips a leading UTF-8 byte order mark and turns CRLF into LF, so record line
/// numbers count lines the same way for both line endings (the CSV reader would
/// otherwise place a record after a CRLF on the line before it).
struct Normalize<R> {
    inner: R,
    started: bool,
    /// Bytes read ahead at the start (a BOM that was not one).
    pending: Vec<u8>,
    /// A `\r` ending the previous chunk, held until we know whether `\n` follows.
    held_cr: bool,
    /// Bytes handed out so far, the last of them, and whether the input has ended.
    delivered: u64,
    last: Option<u8>,
    eof: bool,
    /// Offsets of the `\r` bytes handed out in the last read (and the byte before it).
    /// The CSV reader ends a record at a lone `\r` too, and such a record's line does
    /// not end with it; [`Records::start_line`] asks [`Normalize::cr_at`] about each
    /// record's last byte.
    crs: VecDeque<u64>,
}

impl<R: Read> Normalize<R> {
    fn new(inner: R) -> Self {
        Normalize {
            inner,
            started: false,
            pending: Vec::new(),
            held_cr: false,
            delivered: 0,
            last: None,
            eof: false,
            crs: VecDeque::new(),
        }
    }

    /// Whether the byte handed out at `offset` was a `\r`. Offsets must be asked in
    /// increasing order: the ones before `offset` are forgotten.
    fn cr_at(&mut self, offset: u64) -> bool {
        while self.crs.front().is_some_and(|&o| o < offset) {
            self.crs.pop_front();
        }
        self.crs.front() == Some(&offset)
    }

    /// Whether the stream ends at `offset` without a final newline.
    fn ends_unterminated_at(&self, offset: u64) -> bool {
        self.eof && offset == self.delivered && self.last != Some(b'\n')
    }

    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.started {
            self.started = true;
            let mut head = [0u8; 3];
            let mut got = 0;
            while got < 3 {
                let n = self.inner.read(&mut head[got..])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            if head[..got] != [0xEF, 0xBB, 0xBF] {
                self.pending = head[..got].to_vec();
            }
        }
        if !self.pending.is_empty() {
            let n = self.pending.len().min(buf.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl<R: Read> Read for Normalize<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.read_normalized(buf)?;
        if n == 0 {
            self.eof = !buf.is_empty();
        } else {
            // The CSV reader reads again only once it has consumed (and returned the
            // records of) everything before, but for the last byte: memory stays flat.
            let floor = self.delivered.saturating_sub(1);
            while self.crs.front().is_some_and(|&o| o < floor) {
                self.crs.pop_front();
            }
            let base = self.delivered;
            self.crs
                .extend(memchr::memchr_iter(b'\r', &buf[..n]).map(|i| base + i as u64));
            self.delivered += n as u64;
            self.last = Some(buf[n - 1]);
        }
        Ok(n)
    }
}

impl<R: Read> Normalize<R> {
    fn read_normalized(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            // Room for a held '\r' in front of what we read.
            let start = usize::from(self.held_cr);
            if buf.len() <= start {
                return Ok(0);
            }
            let n = self.fill(&mut buf[start..])?;
            if n == 0 {
                // End of input: a held '\r' was not part of a CRLF.
                if self.held_cr {
                    self.held_cr = false;
                    buf[0] = b'\r';
                    return Ok(1);
                }
                return Ok(0);
            }
            if self.held_cr {
                buf[0] = b'\r';
                self.held_cr = false;
            }
            let end = start + n;
            // Most exports end lines with LF only: then there is nothing to rewrite.
            let Some(first_cr) = memchr::memchr(b'\r', &buf[..end]) else {
                return Ok(end);
            };
            let mut out = first_cr;
            let mut i = first_cr;
            while i < end {
                let b = buf[i];
                if b == b'\r' {
                    if i + 1 == end {
                        self.held_cr = true;
                        i += 1;
                        continue;
                    }
                    if buf[i + 1] == b'\n' {
                        i += 1;
                        continue;
                    }
                }
                buf[out] = b;
                out += 1;
                i += 1;
            }
            if out > 0 {
                return Ok(out);
            }
        }
    }
}

/// One file's records.
pub struct Records<R: Read> {
    reader: csv::Reader<Normalize<Hashing<R>>>,
    /// The file's name as reports show it.
    pub file: String,
    pub header: HeaderMap,
    record: csv::ByteRecord,
}

/// What [`Records::next_record`] found.
pub enum Next {
    /// A record with as many fields as the header; [`Records::row`] reads it.
    Row {
        line: u64,
    },
    /// A record that cannot be a row; the reason says why.
    Bad {
        line: u64,
        reason: String,
        raw: String,
    },
    End,
}

impl<R: Read> Records<R> {
    /// Reads the header line and recognises the dialect.
    pub fn open(inner: Hashing<R>, file: &str) -> Result<Self> {
        let bom = Normalize::new(inner);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(1 << 20)
            .from_reader(bom);
        let mut record = csv::ByteRecord::new();
        let got = reader
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(file, e))?;
        let cells: Vec<String> = if got {
            record
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect()
        } else {
            Vec::new()
        };
        let header =
            HeaderMap::from_headers(cells.iter().map(String::as_str)).map_err(|source| {
                WarehouseError::Header {
                    file: file.to_string(),
                    source,
                }
            })?;
        Ok(Records {
            reader,
            file: file.to_string(),
            header,
            record,
        })
    }

    /// The hashing reader underneath (to finish the hash at the end).
    pub fn into_hashing(self) -> Hashing<R> {
        self.reader.into_inner().inner
    }

    /// Advances to the next record.
    pub fn next_record(&mut self) -> Result<Next> {
        loop {
            let more = self
                .reader
                .read_byte_record(&mut self.record)
                .map_err(|e| csv_error(&self.file, e))?;
            if !more {
                return Ok(Next::End);
            }
            let line = self.start_line();
            if self.record.len() == self.header.width {
                return Ok(Next::Row { line });
            }
            // A blank line is not a row: skip it, as every CSV reader does.
            if self.record.len() == 1 && self.record[0].iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            return Ok(Next::Bad {
                line,
                reason: format!(
                    "expected {} fields as in the header, found {}",
                    self.header.width,
                    self.record.len()
                ),
                raw: self.current_raw(),
            });
        }
    }

    /// The line the current record starts on. The CSV reader's own record position
    /// counts skipped blank lines into the record, so it is derived from the end: the
    /// reader's line after the record, less the newlines inside its fields, less its
    /// terminator when that is a line feed (not for a last record at end of file, nor
    /// for a record ended by a lone `\r`, which the CSV reader also takes as an end).
    fn start_line(&mut self) -> u64 {
        let end = self.reader.position().line();
        let end_byte = self.reader.position().byte();
        let embedded = memchr::memchr_iter(b'\n', self.record.as_slice()).count() as u64;
        let source = self.reader.get_mut();
        let unterminated =
            source.ends_unterminated_at(end_byte) || (end_byte > 0 && source.cr_at(end_byte - 1));
        let terminated = u64::from(!unterminated);
        end.saturating_sub(embedded + terminated).max(1)
    }

    /// The ledger fields of the current record, or why they are not text.
    pub fn row(&self) -> std::result::Result<RawRow<'_>, String> {
        let mut fields = [""; MAX_COLUMNS];
        for f in ledger().fields() {
            if let Some(i) = self.header.position(f) {
                fields[f.index()] = std::str::from_utf8(&self.record[i])
                    .map_err(|_| format!("{f} (column {}) is not valid UTF-8", i + 1))?;
            }
        }
        Ok(RawRow::new(fields))
    }

    /// The raw text of the current record, re-encoded as a CSV line.
    pub fn current_raw(&self) -> String {
        raw_text(&self.record)
    }
}

fn csv_error(file: &str, e: csv::Error) -> WarehouseError {
    WarehouseError::Csv {
        file: file.to_string(),
        line: e.position().map(|p| p.line()).unwrap_or(0),
        message: e.to_string(),
    }
}

/// The record as a CSV line (quoted where needed), for `meta.quarantine.raw`.
pub fn raw_text(record: &csv::ByteRecord) -> String {
    let mut out = Vec::new();
    {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(&mut out);
        let _ = w.write_byte_record(record);
        let _ = w.flush();
    }
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each record: its line, and its fields or why it is bad.
    type Collected = Vec<(u64, Result<Vec<String>, String>)>;

    fn collect(text: &[u8]) -> (HeaderMap, Collected) {
        let mut recs = Records::open(Hashing::new(text, true), "t.csv").unwrap();
        let mut out = Vec::new();
        loop {
            match recs.next_record().unwrap() {
                Next::End => break,
                Next::Row { line } => {
                    let row = recs.row().unwrap();
                    out.push((
                        line,
                        Ok(ledger().fields().map(|f| row.get(f).to_string()).collect()),
                    ))
                }
                Next::Bad { line, reason, .. } => out.push((line, Err(reason))),
            }
        }
        (recs.header.clone(), out)
    }

    /// A reader that hands out one byte per call: the worst case for look-ahead.
    struct OneByte<'a>(&'a [u8]);

    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.split_first() {
                Some((b, rest)) if !buf.is_empty() => {
                    buf[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn normalize_drops_the_bom_and_crlf_but_keeps_lone_cr() {
        for input in [&b"\xEF\xBB\xBFa\r\nb\rc\r\n\r"[..], b"a\r\nb\rc\r\n\r"] {
            let mut out = Vec::new();
            Normalize::new(OneByte(input))
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, b"a\nb\rc\n\r");
            let mut out = Vec::new();
            Normalize::new(input).read_to_end(&mut out).unwrap();
            assert_eq!(out, b"a\nb\rc\n\r");
        }
        let mut out = Vec::new();
        Normalize::new(OneByte(b"\xEF\xBB"))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"\xEF\xBB");
    }

    /// The API dialect's header, and a valid row of it.
    fn api_header() -> String {
        let names: Vec<&str> = ledger().columns[..22].iter().map(|c| c.name).collect();
        names.join(",")
    }
    const API_ROW: &str =
        "2025,No,1,G,D,Dept,P,Prog,C,Char,O,Obj,S,Sub,FT,FType,F,Fund,1,Cat,Spending,1";

    /// Found by fuzz/fuzz_targets/csv_records.rs: the CSV reader also ends a record at
    /// a lone `\r`, and such a record was placed on the line before its own (the first
    /// row of `"header\nrow\rrow\n"` on line 1, the header's).
    #[test]
    fn a_record_ended_by_a_lone_cr_keeps_its_line() {
        // Line 2 holds two records (a lone CR ends the first); line 3 ends in CR CR LF.
        let text = format!(
            "{}\n{API_ROW}\r{API_ROW}\n{API_ROW}\r\r\n{API_ROW}",
            api_header()
        );
        let (_, rows) = collect(text.as_bytes());
        let lines: Vec<u64> = rows.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 2, 3, 4]);
        assert!(rows.iter().all(|(_, r)| r.is_ok()));
    }

    /// Found by fuzz/fuzz_targets/csv_records.rs, not fixed yet: when the input ends
    /// with a line feed inside a quoted field that never closes (a truncated export),
    /// that line feed is counted both inside the field and as the record's terminator,
    /// so the last record is placed one line too early (here on line 2, not 3).
    /// Telling it from a closed `"...\n"\n` needs the reader's quote state at the end.
    #[test]
    #[ignore = "known bug, see fuzz/README.md: a last record with an unclosed quote"]
    fn a_last_record_with_an_unclosed_quote_keeps_its_line() {
        let text = format!("{}\n{API_ROW}\n2025,\"open\n", api_header());
        let (_, rows) = collect(text.as_bytes());
        let lines: Vec<u64> = rows.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 3]);
    }

    #[test]
    fn bom_crlf_quotes_and_line_numbers() {
        let names: Vec<&str> = ledger().columns[..22].iter().map(|c| c.header).collect();
        let row = "2025,No,1,G,D,Dept,P,Prog,C,Char,O,Obj,S,Sub,FT,FType,F,Fund,1,Cat,Spending,\"1,234.56\"";
        let text = format!(
            "\u{feff}{}\r\n{row}\r\n\r\n2025,short\r\n\n\n{row}",
            names.join(",")
        );
        let (header, rows) = collect(text.as_bytes());
        assert_eq!(header.dialect, citybooks_model::Dialect::Portal);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1.as_ref().unwrap()[21], "1,234.56");
        assert_eq!(rows[1].0, 4);
        assert!(rows[1].1.as_ref().unwrap_err().contains("found 2"));
        assert_eq!(rows[2].0, 7, "a last record without a newline");
    }

    proptest::proptest! {
        /// Any field text, in any column order, quoted always or only where needed, with
        /// LF or CRLF, reads back exactly — and the line numbers count embedded newlines.
        #[test]
        fn fields_round_trip_through_any_quoting(
            values in proptest::collection::vec(proptest::collection::vec("[ -~\n\u{e9}\u{2019}]{0,12}", 24), 1..6),
            seed in 0u64..1000,
            always in proptest::bool::ANY,
            crlf in proptest::bool::ANY,
            final_newline in proptest::bool::ANY,
            blank_after_header in proptest::bool::ANY,
        ) {
            let mut order: Vec<usize> = (0..24).collect();
            // A deterministic shuffle of the columns.
            let mut x = seed;
            for i in (1..order.len()).rev() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (x >> 33) as usize % (i + 1));
            }
            let style = if always { csv::QuoteStyle::Always } else { csv::QuoteStyle::Necessary };
            let term = if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') };
            let mut w = csv::WriterBuilder::new().quote_style(style).terminator(term).from_writer(Vec::new());
            w.write_record(order.iter().map(|&i| ledger().columns[i].name)).unwrap();
            for row in &values {
                w.write_record(order.iter().map(|&i| row[i].as_str())).unwrap();
            }
            let mut bytes = w.into_inner().unwrap();
            if !final_newline {
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
            }
            let mut expected_line = 2u64;
            if blank_after_header {
                let header_end = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
                bytes.splice(header_end..header_end, b"\n".iter().copied());
                expected_line += 1;
            }
            let mut recs = Records::open(Hashing::new(&bytes[..], false), "p.csv").unwrap();
            for row in &values {
                match recs.next_record().unwrap() {
                    Next::Row { line } => {
                        proptest::prop_assert_eq!(line, expected_line);
                        let got = recs.row().unwrap();
                        for (i, f) in ledger().fields().enumerate() {
                            proptest::prop_assert_eq!(got.get(f), row[i].trim());
                        }
                    }
                    _ => proptest::prop_assert!(false, "expected a row"),
                }
                expected_line += 1 + row.iter().map(|v| v.matches('\n').count() as u64).sum::<u64>();
            }
            proptest::prop_assert!(matches!(recs.next_record().unwrap(), Next::End));
        }
    }
}

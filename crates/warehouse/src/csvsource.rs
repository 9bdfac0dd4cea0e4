//! Streaming CSV records of either dialect, with the line each one starts on.
//!
//! Memory stays flat whatever the file size: one record buffer is reused. A UTF-8 byte
//! order mark is skipped, CRLF and LF both end records, quotes are optional.

use std::io::Read;

use citybooks_model::{Field, HeaderMap, RawRow};
use sha2::{Digest, Sha256};

use crate::error::{Result, WarehouseError};

/// A reader that feeds every byte it passes through a SHA-256 and counts them.
pub struct Hashing<R> {
    inner: R,
    hasher: Option<Sha256>,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R, hash: bool) -> Self {
        Hashing {
            inner,
            hasher: hash.then(Sha256::new),
            bytes: Default::default(),
        }
    }

    /// The hash state, if this reader hashes.
    pub fn into_hasher(self) -> Option<Sha256> {
        self.hasher
    }

    /// A counter of the bytes read so far, readable from another thread.
    pub fn counter(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.bytes.clone()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Skips a leading UTF-8 byte order mark.
struct SkipBom<R> {
    inner: R,
    checked: bool,
    pending: Vec<u8>,
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.checked {
            self.checked = true;
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

/// One file's records.
pub struct Records<R: Read> {
    reader: csv::Reader<SkipBom<Hashing<R>>>,
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
        let bom = SkipBom {
            inner,
            checked: false,
            pending: Vec::new(),
        };
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
            let line = self.record.position().map(|p| p.line()).unwrap_or(0);
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

    /// The ledger fields of the current record, or why they are not text.
    pub fn row(&self) -> std::result::Result<RawRow<'_>, String> {
        let mut fields = [""; Field::COUNT];
        for f in Field::ALL {
            if let Some(i) = self.header.position(f) {
                fields[f as usize] = std::str::from_utf8(&self.record[i])
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

    fn collect(text: &[u8]) -> (HeaderMap, Vec<(u64, Result<Vec<String>, String>)>) {
        let mut recs = Records::open(Hashing::new(text, true), "t.csv").unwrap();
        let mut out = Vec::new();
        loop {
            match recs.next_record().unwrap() {
                Next::End => break,
                Next::Row { line } => {
                    let row = recs.row().unwrap();
                    out.push((
                        line,
                        Ok(Field::ALL.iter().map(|f| row.get(*f).to_string()).collect()),
                    ))
                }
                Next::Bad { line, reason, .. } => out.push((line, Err(reason))),
            }
        }
        (recs.header.clone(), out)
    }

    #[test]
    fn bom_crlf_quotes_and_line_numbers() {
        let names: Vec<&str> = citybooks_model::Field::ALL[..22]
            .iter()
            .map(|f| f.portal_name())
            .collect();
        let row = "2025,No,1,G,D,Dept,P,Prog,C,Char,O,Obj,S,Sub,FT,FType,F,Fund,1,Cat,Spending,\"1,234.56\"";
        let text = format!(
            "\u{feff}{}\r\n{row}\r\n\r\n2025,short\r\n{row}\r\n",
            names.join(",")
        );
        let (header, rows) = collect(text.as_bytes());
        assert_eq!(header.dialect, citybooks_model::Dialect::Portal);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1.as_ref().unwrap()[21], "1,234.56");
        assert_eq!(rows[1].0, 4);
        assert!(rows[1].1.as_ref().unwrap_err().contains("found 2"));
        assert_eq!(rows[2].0, 5);
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
            w.write_record(order.iter().map(|&i| Field::ALL[i].snake_name())).unwrap();
            for row in &values {
                w.write_record(order.iter().map(|&i| row[i].as_str())).unwrap();
            }
            let bytes = w.into_inner().unwrap();
            let mut recs = Records::open(Hashing::new(&bytes[..], false), "p.csv").unwrap();
            let mut expected_line = 2u64;
            for row in &values {
                match recs.next_record().unwrap() {
                    Next::Row { line } => {
                        proptest::prop_assert_eq!(line, expected_line);
                        let got = recs.row().unwrap();
                        for (i, f) in Field::ALL.iter().enumerate() {
                            proptest::prop_assert_eq!(got.get(*f), row[i].trim());
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

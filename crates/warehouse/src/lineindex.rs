//! Where the lines of a raw file start, so that the original text of any line — the
//! line a fact or a quarantined row came from (`source_line`) — is read with one ranged
//! GET of a few kilobytes instead of a scan of the file.
//!
//! The loader's first pass builds the index from the bytes it already reads (it counts
//! newlines beside the SHA-256) and keeps it in the store as
//! `index/lines/<sha256>.json`, by content: a file loaded twice shares one index. A
//! file loaded before citybooks kept indexes gets one on its first lookup.
//!
//! Lines are counted as the loader counts them: a line ends at `\n` (a `\r` before it
//! belongs to the line's ending), so `source_line` numbers and the index agree for
//! both line endings; a record whose quoted fields hold newlines starts on one line and
//! spans the next ones.

use serde::{Deserialize, Serialize};

/// Every this many lines the index keeps where a line starts: a lookup reads at most
/// this many lines (tens of kilobytes of the ledger) to find one.
pub const STRIDE: u64 = 256;

/// The index of one raw file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineIndex {
    pub stride: u64,
    /// The file's length in bytes.
    pub bytes: u64,
    /// Its lines (a last line without a newline counts).
    pub lines: u64,
    /// `starts[k]`: the byte where line `k * stride + 1` starts.
    pub starts: Vec<u64>,
}

/// Where to read a line: the bytes `start..end` hold the start of line `line`, after
/// `skip` newlines from `start`. Its record may run past `end` (quoted newlines);
/// [`LineIndex::after`] says how far to read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub skip: u64,
    pub end: u64,
}

impl LineIndex {
    /// Where the index of the file with SHA-256 `hash` (hex) is kept in the store.
    pub fn path(hash: &str) -> String {
        format!("index/lines/{hash}.json")
    }

    /// Where line `line` (1 = the header) starts; None past the last line.
    pub fn span(&self, line: u64) -> Option<Span> {
        if line == 0 || line > self.lines {
            return None;
        }
        let k = ((line - 1) / self.stride) as usize;
        Some(Span {
            start: *self.starts.get(k)?,
            skip: (line - 1) % self.stride,
            end: self.after(k + 1),
        })
    }

    /// The end of the chunk `k` strides from the start (the file's end past the last).
    pub fn after(&self, k: usize) -> u64 {
        self.starts.get(k).copied().unwrap_or(self.bytes)
    }
}

/// Builds a [`LineIndex`] from the bytes of a file, in order, a buffer at a time.
#[derive(Debug)]
pub struct LineIndexer {
    stride: u64,
    bytes: u64,
    newlines: u64,
    ends_with_newline: bool,
    starts: Vec<u64>,
}

impl Default for LineIndexer {
    fn default() -> Self {
        LineIndexer::with_stride(STRIDE)
    }
}

impl LineIndexer {
    pub fn with_stride(stride: u64) -> Self {
        LineIndexer {
            stride: stride.max(1),
            bytes: 0,
            newlines: 0,
            ends_with_newline: false,
            starts: vec![0],
        }
    }

    /// The next bytes of the file.
    pub fn feed(&mut self, buf: &[u8]) {
        for i in memchr::memchr_iter(b'\n', buf) {
            self.newlines += 1;
            if self.newlines.is_multiple_of(self.stride) {
                self.starts.push(self.bytes + i as u64 + 1);
            }
        }
        self.bytes += buf.len() as u64;
        if let Some(&last) = buf.last() {
            self.ends_with_newline = last == b'\n';
        }
    }

    pub fn finish(mut self) -> LineIndex {
        let unterminated = self.bytes > 0 && !self.ends_with_newline;
        // A newline that ends the file on a stride starts no line.
        if self.starts.last() == Some(&self.bytes) && self.starts.len() > 1 {
            self.starts.pop();
        }
        LineIndex {
            stride: self.stride,
            bytes: self.bytes,
            lines: self.newlines + u64::from(unterminated),
            starts: self.starts,
        }
    }
}

/// The record that starts `skip` newlines into `chunk`: its bytes without the line
/// ending. None when the chunk ends before the record does (read further), or has fewer
/// lines than `skip`.
pub fn record_in(chunk: &[u8], skip: u64, chunk_ends_file: bool) -> Option<&[u8]> {
    let mut at = 0usize;
    for _ in 0..skip {
        at += memchr::memchr(b'\n', &chunk[at..])? + 1;
    }
    let rest = &chunk[at..];
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(rest);
    let mut record = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut record).ok()? {
        return None;
    }
    let end = (reader.position().byte() as usize).min(rest.len());
    // A record the chunk cuts short reads as if complete, up to the chunk's end. One
    // that ends before the chunk does was ended by the parser itself (with a byte to
    // look ahead at); one that reaches the chunk's end is only sure at the file's end.
    // (Counting quotes is not enough: a quote inside an unquoted field is text; the
    // fuzz target line_index found that.)
    if end >= rest.len() && !chunk_ends_file {
        return None;
    }
    let mut text = &rest[..end];
    while let Some(t) = text
        .strip_suffix(b"\n")
        .or_else(|| text.strip_suffix(b"\r"))
    {
        text = t;
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(text: &str, stride: u64, buffer: usize) -> LineIndex {
        let mut ix = LineIndexer::with_stride(stride);
        for chunk in text.as_bytes().chunks(buffer) {
            ix.feed(chunk);
        }
        ix.finish()
    }

    /// The line as the index finds it, reading chunk after chunk as a store would.
    fn line(text: &str, ix: &LineIndex, n: u64) -> Option<String> {
        let span = ix.span(n)?;
        let mut end = span.end;
        let mut k = ((n - 1) / ix.stride) as usize + 1;
        loop {
            let chunk = &text.as_bytes()[span.start as usize..end as usize];
            if let Some(r) = record_in(chunk, span.skip, end == ix.bytes) {
                return Some(String::from_utf8(r.to_vec()).unwrap());
            }
            if end == ix.bytes {
                return None;
            }
            k += 1;
            end = ix.after(k);
        }
    }

    #[test]
    fn every_line_is_found_whatever_the_stride_and_buffer() {
        let text = "h1,h2\na,1\nb,\"two\nlines\"\nc,3\r\nd,4\n\ne,5";
        let expected = [
            (1, "h1,h2"),
            (2, "a,1"),
            (3, "b,\"two\nlines\""),
            (5, "c,3"),
            (6, "d,4"),
            (8, "e,5"),
        ];
        for stride in [1, 2, 3, 256] {
            for buffer in [1, 4, 1000] {
                let ix = index(text, stride, buffer);
                assert_eq!(ix.lines, 8, "stride {stride} buffer {buffer}");
                assert_eq!(ix.bytes, text.len() as u64);
                for (n, want) in expected {
                    assert_eq!(
                        line(text, &ix, n).as_deref(),
                        Some(want),
                        "line {n}, stride {stride}, buffer {buffer}"
                    );
                }
                assert_eq!(ix.span(9), None);
                assert_eq!(ix.span(0), None);
            }
        }
    }

    /// Found by the fuzz target: a quote inside an unquoted field makes the quotes of a
    /// line even while the next field's quotes are still open.
    #[test]
    fn a_record_is_whole_only_when_the_parser_ends_it() {
        let text = "x\"y,\"z\nw\"\nlast\n";
        for stride in [1, 2, 3] {
            for buffer in [1, 5, 100] {
                let ix = index(text, stride, buffer);
                assert_eq!(line(text, &ix, 1).as_deref(), Some("x\"y,\"z\nw\""));
                assert_eq!(line(text, &ix, 3).as_deref(), Some("last"));
            }
        }
    }

    #[test]
    fn a_file_ending_with_a_newline_on_a_stride_has_no_empty_last_line() {
        let ix = index("a\nb\n", 2, 3);
        assert_eq!(ix.lines, 2);
        assert_eq!(ix.starts, vec![0]);
        assert_eq!(line("a\nb\n", &ix, 2).as_deref(), Some("b"));
    }

    #[test]
    fn a_line_is_read_from_its_stride_only() {
        let text: String = (1..=1000).map(|i| format!("row {i},{i}\n")).collect();
        let ix = index(&text, 256, 4096);
        assert_eq!(ix.starts.len(), 4);
        let span = ix.span(700).unwrap();
        assert_eq!(span.skip, 699 % 256);
        assert!(span.end - span.start <= 256 * 13);
        assert_eq!(line(&text, &ix, 700).as_deref(), Some("row 700,700"));
    }
}

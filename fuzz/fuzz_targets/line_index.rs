//! The line index (`citybooks_warehouse::lineindex`): where lines start, and the record
//! read back from a chunk of the file.
//!
//! Oracle: indexing any bytes, fed in any buffer sizes, never panics and gives the same
//! index; the index counts the newlines (and an unterminated last line); every line's
//! span starts exactly where that line starts (after its `skip` newlines); reading a
//! line's record chunk by chunk, as `Warehouse::source_line` does, gives the same text
//! whatever the stride, and that text starts at the line's first byte.

#![no_main]

use citybooks_warehouse::lineindex::{record_in, LineIndex, LineIndexer};
use libfuzzer_sys::fuzz_target;

fn index(data: &[u8], stride: u64, buffer: usize) -> LineIndex {
    let mut ix = LineIndexer::with_stride(stride);
    for chunk in data.chunks(buffer.max(1)) {
        ix.feed(chunk);
    }
    ix.finish()
}

/// Line `line` read through the index, growing the chunk stride by stride.
fn read(data: &[u8], ix: &LineIndex, line: u64) -> Option<(usize, Vec<u8>)> {
    let span = ix.span(line)?;
    let mut k = ((line - 1) / ix.stride) as usize + 1;
    let mut end = span.end;
    loop {
        let chunk = &data[span.start as usize..end as usize];
        if let Some(r) = record_in(chunk, span.skip, end == ix.bytes) {
            let at = r.as_ptr() as usize - data.as_ptr() as usize;
            return Some((at, r.to_vec()));
        }
        if end == ix.bytes {
            return None;
        }
        k += 1;
        end = ix.after(k);
    }
}

fuzz_target!(|input: (u8, u8, &[u8])| {
    let (stride, buffer, data) = input;
    let stride = u64::from(stride % 8) + 1;
    let a = index(data, stride, usize::from(buffer) + 1);
    let b = index(data, stride, data.len().max(1));
    assert_eq!(a, b, "the buffer sizes changed the index");
    let newlines = data.iter().filter(|&&c| c == b'\n').count() as u64;
    let unterminated = u64::from(!data.is_empty() && data.last() != Some(&b'\n'));
    assert_eq!(a.lines, newlines + unterminated);
    assert_eq!(a.bytes, data.len() as u64);
    let wide = index(data, 64, data.len().max(1));
    // Where each line starts, by counting.
    let mut starts = vec![0usize];
    starts.extend(data.iter().enumerate().filter(|(_, &c)| c == b'\n').map(|(i, _)| i + 1));
    for line in 1..=a.lines.min(200) {
        let span = a.span(line).expect("a line of the file");
        let mut at = span.start as usize;
        for _ in 0..span.skip {
            at += data[at..].iter().position(|&c| c == b'\n').expect("skip within the file") + 1;
        }
        assert_eq!(at, starts[(line - 1) as usize], "line {line} starts elsewhere");
        let here = read(data, &a, line);
        assert_eq!(here, read(data, &wide, line), "line {line} reads differently by stride");
        if let Some((first, _)) = here {
            assert_eq!(first, at, "line {line}'s record starts off its line");
        }
    }
    assert_eq!(a.span(a.lines + 1), None);
});

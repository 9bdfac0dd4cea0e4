//! Where a number comes from: the original line of the raw file behind any fact or
//! quarantined row (`load_id`, `source_line`), read from the store by a byte range
//! through the file's [`LineIndex`].

use std::io::Read;

use serde::Serialize;

use crate::error::{Result, WarehouseError};
use crate::lineindex::{record_in, LineIndex, LineIndexer};
use crate::tables::Warehouse;

/// One line of a raw file as it stands in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceLine {
    pub load_id: i64,
    /// The raw file, relative to the store.
    pub file: String,
    pub dialect: String,
    pub line: u64,
    /// The bytes of the record in the file: `start..end` (its line ending excluded).
    pub start: u64,
    pub end: u64,
    /// The record's original text (a record with quoted newlines spans several lines).
    pub text: String,
    /// The file's header line, which names the record's fields.
    pub header: String,
}

impl Warehouse {
    /// Line `line` (1 = the header) of the raw file load `load_id` read.
    pub async fn source_line(&self, load_id: i64, line: u64) -> Result<SourceLine> {
        let loads = self.loads().await?;
        let load = loads
            .iter()
            .find(|l| l.load_id == load_id)
            .ok_or(WarehouseError::NoSuchLoad(load_id))?;
        let file = load.source_file.clone();
        let index = self.line_index(&file, &load.content_hash).await?;
        let no_line = || WarehouseError::NoSuchLine {
            load_id,
            file: file.clone(),
            line,
            lines: index.lines,
        };
        let (start, end, text) = self
            .read_line(&file, &index, line)
            .await?
            .ok_or_else(no_line)?;
        let (_, _, header) = self
            .read_line(&file, &index, 1)
            .await?
            .ok_or_else(no_line)?;
        Ok(SourceLine {
            load_id,
            file,
            dialect: load.dialect.clone(),
            line,
            start,
            end,
            text,
            header,
        })
    }

    /// The line index of `file` (SHA-256 `hash`, empty when the load never read the
    /// file whole): the one the load kept, or built now by reading the file once and
    /// kept for the next lookup.
    pub async fn line_index(&self, file: &str, hash: &str) -> Result<LineIndex> {
        let kept = LineIndex::path(hash);
        if !hash.is_empty() {
            if let Ok(bytes) = self.store().get(&kept).await {
                if let Ok(index) = serde_json::from_slice::<LineIndex>(&bytes) {
                    return Ok(index);
                }
            }
        }
        let store = self.store().clone();
        let rel = file.to_string();
        let index = tokio::task::spawn_blocking(move || -> Result<LineIndex> {
            let mut reader = store.blocking_reader(&rel)?;
            let mut indexer = LineIndexer::default();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = reader.read(&mut buf).map_err(|source| WarehouseError::Io {
                    file: rel.clone(),
                    source,
                })?;
                if n == 0 {
                    return Ok(indexer.finish());
                }
                indexer.feed(&buf[..n]);
            }
        })
        .await
        .map_err(|e| WarehouseError::Internal(format!("indexing the lines of {file}: {e}")))??;
        if !hash.is_empty() {
            self.keep_line_index(hash, &index).await;
        }
        Ok(index)
    }

    /// Keeps `index` in the store for the file with SHA-256 `hash`. A failure only
    /// costs the next lookup a read of the file, so it is logged, not returned.
    pub(crate) async fn keep_line_index(&self, hash: &str, index: &LineIndex) {
        let path = LineIndex::path(hash);
        let kept = match serde_json::to_vec(index) {
            Ok(json) => {
                self.store()
                    .put_stream(&path, json.as_slice(), |_| {})
                    .await
            }
            Err(e) => {
                tracing::warn!("encoding the line index {path}: {e}");
                return;
            }
        };
        if let Err(e) = kept {
            tracing::warn!("keeping the line index {path}: {e}");
        }
    }

    /// The record starting on `line` of `file`: its byte range and text. Reads the
    /// index's chunk of the line, and the next chunks only while the record runs on.
    async fn read_line(
        &self,
        file: &str,
        index: &LineIndex,
        line: u64,
    ) -> Result<Option<(u64, u64, String)>> {
        let Some(span) = index.span(line) else {
            return Ok(None);
        };
        let mut next = ((line - 1) / index.stride) as usize + 1;
        let mut end = span.end;
        loop {
            let chunk = self.store().get_range(file, span.start..end).await?;
            let at_end = end >= index.bytes;
            if let Some(record) = record_in(&chunk, span.skip, at_end) {
                let offset = record.as_ptr() as usize - chunk.as_ptr() as usize;
                let start = span.start + offset as u64;
                let text = String::from_utf8_lossy(record).into_owned();
                return Ok(Some((start, start + record.len() as u64, text)));
            }
            if at_end {
                return Ok(None);
            }
            next += 1;
            end = index.after(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use citybooks_store::config::{LoadConfig, StoreConfig};
    use citybooks_store::Store;

    use super::*;

    /// The real sample as a Windows export with a byte order mark, and one record (on a
    /// stride's last line) whose quoted program name holds a line break: each record's
    /// text by the line it starts on.
    fn awkward_sample() -> (String, BTreeMap<u64, String>) {
        let sample = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/datasf-fy2025-sample.csv"),
        )
        .unwrap();
        let mut records: Vec<String> = sample.lines().map(str::to_string).collect();
        // Line 256's program name (its 8th field) gets a second line.
        let mut fields: Vec<String> = records[255].split("\",\"").map(str::to_string).collect();
        fields[7].push_str("\r\nand more");
        records[255] = fields.join("\",\"");
        let mut by_line = BTreeMap::new();
        let mut line = 1;
        for r in &records {
            by_line.insert(line, r.clone());
            line += 1 + r.matches('\n').count() as u64;
        }
        let text = format!("\u{feff}{}\r\n", records.join("\r\n"));
        (text, by_line)
    }

    #[tokio::test]
    async fn every_fact_leads_to_its_original_record_by_a_byte_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::default(), Some(dir.path().join("store"))).unwrap();
        let wh = Warehouse::new(store.clone(), LoadConfig::default());
        let (text, by_line) = awkward_sample();
        let file = dir.path().join("windows.csv");
        std::fs::write(&file, &text).unwrap();
        let report = wh.load_path(&file, false).await.unwrap();
        let kept = LineIndex::path(&report.content_hash);
        assert!(
            store.exists(&kept).await.unwrap(),
            "the load keeps the index"
        );

        let ctx = wh.session(None).await.unwrap();
        let lines: Vec<i64> = ctx
            .sql("select source_line from report.transaction order by source_line")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(lines.len() as u64, report.rows_loaded);
        assert!(lines.contains(&256) && lines.contains(&258), "{lines:?}");
        let raw = store.get(&report.source_file).await.unwrap();
        // Every 25th row, and every row around the record that spans two strides.
        let some = lines
            .iter()
            .filter(|l| *l % 25 == 0 || (250..=262).contains(*l));
        for &line in some {
            let found = wh.source_line(report.load_id, line as u64).await.unwrap();
            assert_eq!(found.text, by_line[&(line as u64)], "line {line}");
            assert_eq!(
                &raw[found.start as usize..found.end as usize],
                found.text.as_bytes()
            );
            assert!(
                found.header.ends_with("\"data_loaded_at\""),
                "{}",
                found.header
            );
        }
        let spanning = wh.source_line(report.load_id, 256).await.unwrap();
        assert!(
            spanning.text.contains("\r\nand more\""),
            "{}",
            spanning.text
        );

        // A load from before indexes were kept: the first lookup builds the index.
        store.delete(&kept).await.unwrap();
        let again = wh.source_line(report.load_id, 258).await.unwrap();
        assert_eq!(again.text, by_line[&258]);
        assert!(store.exists(&kept).await.unwrap());

        let last = *by_line.keys().last().unwrap() + 1;
        assert!(matches!(
            wh.source_line(report.load_id, last).await,
            Err(WarehouseError::NoSuchLine { .. })
        ));
        assert!(matches!(
            wh.source_line(report.load_id + 1, 2).await,
            Err(WarehouseError::NoSuchLoad(_))
        ));
    }
}

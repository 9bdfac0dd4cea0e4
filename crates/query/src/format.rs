//! Result formats: an aligned table for people, CSV / JSON lines / Parquet for tools.

use std::io::Write;
use std::str::FromStr;

use arrow::array::RecordBatch;

use crate::{QueryError, QueryResult};

/// How `citybooks query` writes its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Parquet,
    /// Arrow IPC file format.
    Arrow,
}

impl OutputFormat {
    /// The HTTP content type of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Table => "text/plain; charset=utf-8",
            OutputFormat::Csv => "text/csv; charset=utf-8",
            OutputFormat::Json => "application/x-ndjson",
            OutputFormat::Parquet => "application/vnd.apache.parquet",
            OutputFormat::Arrow => "application/vnd.apache.arrow.file",
        }
    }

    /// The file extension of this format.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Table => "txt",
            OutputFormat::Csv => "csv",
            OutputFormat::Json => "jsonl",
            OutputFormat::Parquet => "parquet",
            OutputFormat::Arrow => "arrow",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(OutputFormat::Table),
            "csv" => Ok(OutputFormat::Csv),
            "json" => Ok(OutputFormat::Json),
            "parquet" => Ok(OutputFormat::Parquet),
            "arrow" => Ok(OutputFormat::Arrow),
            other => Err(format!(
                "unknown format {other:?}: use table, csv, json, parquet or arrow"
            )),
        }
    }
}

fn out_err(e: impl std::fmt::Display) -> QueryError {
    QueryError::Output(e.to_string())
}

/// Writes a query result to `out` in `format`.
pub fn write_batches<W: Write + Send>(
    result: &QueryResult,
    format: OutputFormat,
    out: W,
) -> Result<(), QueryError> {
    let mut out = out;
    let batches = &result.batches;
    match format {
        OutputFormat::Table => {
            let text = if batches.is_empty() {
                let empty = RecordBatch::new_empty(result.schema.clone());
                arrow::util::pretty::pretty_format_batches(&[empty]).map_err(out_err)?
            } else {
                arrow::util::pretty::pretty_format_batches(batches).map_err(out_err)?
            };
            writeln!(out, "{text}").map_err(out_err)?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" }).map_err(out_err)?;
        }
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(result.schema.clone()))
                    .map_err(out_err)?;
            }
            for b in batches {
                w.write(b).map_err(out_err)?;
            }
        }
        OutputFormat::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(out_err)?;
            w.finish().map_err(out_err)?;
        }
        OutputFormat::Parquet => {
            let mut w = parquet::arrow::ArrowWriter::try_new(out, result.schema.clone(), None)
                .map_err(out_err)?;
            for b in batches {
                w.write(b).map_err(out_err)?;
            }
            w.close().map_err(out_err)?;
        }
        OutputFormat::Arrow => {
            let mut w =
                arrow::ipc::writer::FileWriter::try_new(out, &result.schema).map_err(out_err)?;
            for b in batches {
                w.write(b).map_err(out_err)?;
            }
            w.finish().map_err(out_err)?;
        }
    }
    Ok(())
}

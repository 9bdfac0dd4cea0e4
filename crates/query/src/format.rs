//! Result formats: an aligned table for people, CSV / JSON lines / Parquet for tools,
//! and the JSON of the HTTP API ([`result_json`]).

use std::io::Write;
use std::str::FromStr;

use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, UInt64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{json, Value};

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
    if format == OutputFormat::Table {
        let text = if batches.is_empty() {
            let empty = RecordBatch::new_empty(result.schema.clone());
            arrow::util::pretty::pretty_format_batches(&[empty]).map_err(out_err)?
        } else {
            arrow::util::pretty::pretty_format_batches(batches).map_err(out_err)?
        };
        writeln!(out, "{text}").map_err(out_err)?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" }).map_err(out_err)?;
        return Ok(());
    }
    let mut w = BatchWriter::new(format, &result.schema, out)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()
}

/// Rows of a Parquet row group written by [`BatchWriter`]: bounds what a streamed
/// Parquet download holds before it can send anything.
const PARQUET_ROW_GROUP_ROWS: usize = 65_536;

/// A result written batch by batch in one of the file formats (CSV, JSON lines,
/// Parquet, Arrow IPC), so a download can leave while the query still runs.
pub struct BatchWriter<W: Write + Send> {
    inner: Inner<W>,
    /// CSV writes its header with the first batch: an empty result still needs one.
    empty: Option<RecordBatch>,
}

enum Inner<W: Write + Send> {
    Csv(arrow::csv::Writer<W>),
    Json(arrow::json::LineDelimitedWriter<W>),
    Parquet(parquet::arrow::ArrowWriter<W>),
    Arrow(arrow::ipc::writer::FileWriter<W>),
}

impl<W: Write + Send> BatchWriter<W> {
    /// Starts a file of `format` (not [`OutputFormat::Table`], which needs every row
    /// to align its columns) with `schema`.
    pub fn new(format: OutputFormat, schema: &SchemaRef, out: W) -> Result<Self, QueryError> {
        let inner = match format {
            OutputFormat::Table => {
                return Err(QueryError::Output(
                    "the table format is written whole, not batch by batch".into(),
                ))
            }
            OutputFormat::Csv => Inner::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(out),
            ),
            OutputFormat::Json => Inner::Json(arrow::json::LineDelimitedWriter::new(out)),
            OutputFormat::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP_ROWS))
                    .build();
                Inner::Parquet(
                    parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(props))
                        .map_err(out_err)?,
                )
            }
            OutputFormat::Arrow => {
                Inner::Arrow(arrow::ipc::writer::FileWriter::try_new(out, schema).map_err(out_err)?)
            }
        };
        Ok(BatchWriter {
            inner,
            empty: Some(RecordBatch::new_empty(schema.clone())),
        })
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), QueryError> {
        self.empty = None;
        match &mut self.inner {
            Inner::Csv(w) => w.write(batch).map_err(out_err),
            Inner::Json(w) => w.write(batch).map_err(out_err),
            Inner::Parquet(w) => w.write(batch).map_err(out_err),
            Inner::Arrow(w) => w.write(batch).map_err(out_err),
        }
    }

    /// Ends the file (footers, the header of an empty CSV).
    pub fn finish(mut self) -> Result<(), QueryError> {
        if let (Some(empty), Inner::Csv(w)) = (self.empty.take(), &mut self.inner) {
            w.write(&empty).map_err(out_err)?;
        }
        match self.inner {
            Inner::Csv(_) => Ok(()),
            Inner::Json(mut w) => w.finish().map_err(out_err),
            Inner::Parquet(w) => w.close().map(|_| ()).map_err(out_err),
            Inner::Arrow(mut w) => w.finish().map_err(out_err),
        }
    }
}

/// A result as the HTTP API and the dashboard read it: column names and types, rows
/// as arrays, whether the rows were cut at the limit, and how long it took.
pub fn result_json(result: &QueryResult, truncated: bool, elapsed: Duration) -> Value {
    let columns: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let mut rows: Vec<Vec<Value>> = Vec::with_capacity(result.num_rows());
    for batch in &result.batches {
        let columns: Vec<Vec<Value>> = batch.columns().iter().map(column_json).collect();
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
        }
    }
    json!({
        "columns": columns,
        "row_count": rows.len(),
        "rows": rows,
        "truncated": truncated,
        "elapsed_ms": (elapsed.as_secs_f64() * 1e5).round() / 100.0,
    })
}

/// One column as JSON values: numbers for integers and floats, exact strings for
/// decimals (a JSON number would lose cents beyond 2^53), text for the rest.
pub fn column_json(array: &ArrayRef) -> Vec<Value> {
    // Null where the array is null, else `value(i)`.
    let each = |value: &dyn Fn(usize) -> Value| -> Vec<Value> {
        (0..array.len())
            .map(|i| {
                if array.is_null(i) {
                    Value::Null
                } else {
                    value(i)
                }
            })
            .collect()
    };
    let cast = |to: &DataType| arrow::compute::cast(array, to).expect("numbers widen losslessly");
    match array.data_type() {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let a = cast(&DataType::Int64);
            let a = a.as_primitive::<Int64Type>();
            each(&|i| json!(a.value(i)))
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let a = cast(&DataType::UInt64);
            let a = a.as_primitive::<UInt64Type>();
            each(&|i| json!(a.value(i)))
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let a = cast(&DataType::Float64);
            let a = a.as_primitive::<Float64Type>();
            each(&|i| serde_json::Number::from_f64(a.value(i)).map_or(Value::Null, Value::Number))
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            each(&|i| json!(a.value(i)))
        }
        _ => {
            let options = FormatOptions::default();
            match ArrayFormatter::try_new(array.as_ref(), &options) {
                Ok(f) => each(&|i| Value::String(f.value(i).to_string())),
                Err(_) => vec![Value::Null; array.len()],
            }
        }
    }
}

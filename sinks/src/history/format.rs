//! Rendering query results: an aligned table, CSV, a JSON array, NDJSON.
//!
//! Instants print as RFC 3339 in UTC (`2026-03-16T08:00:12.406358Z`) in
//! every format: top-level timestamp columns are cast to UTC first (a
//! change of label only), whatever zone a query gave them. CSV cannot hold
//! nested values, so maps, lists and structs are written there as the table
//! prints them (`{port: 29653}`); JSON writes them as objects and arrays,
//! and nulls explicitly.
//!
//! A truncated result says so in its own format: a last line under the
//! table, a `#` comment line after the CSV, a last element
//! `{"truncated": true, "rows": N}` of the JSON array or the NDJSON lines.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches_with_schema;

/// Output formats of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// An aligned table (what a terminal shows).
    #[default]
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
        }
    }

    /// The media type of the rendered output (for an HTTP answer).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Table => "text/plain; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "table" | "text" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            _ => Err(format!("unknown format `{s}` (table, csv, json, ndjson)")),
        }
    }
}

/// Casts top-level timestamp columns to UTC (same instants).
pub(super) fn utc_timestamps(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let utc = |t: &DataType| match t {
        DataType::Timestamp(unit, tz) if tz.as_deref() != Some("UTC") => {
            Some(DataType::Timestamp(*unit, Some("UTC".into())))
        }
        _ => None,
    };
    if !schema.fields().iter().any(|f| utc(f.data_type()).is_some()) {
        return Ok((Arc::clone(schema), batches.to_vec()));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match utc(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    let out_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let columns = b
            .columns()
            .iter()
            .zip(out_schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(Arc::clone(c))
                } else {
                    cast(c, f.data_type())
                }
            })
            .collect::<Result<Vec<ArrayRef>, ArrowError>>()?;
        out.push(RecordBatch::try_new(Arc::clone(&out_schema), columns)?);
    }
    Ok((out_schema, out))
}

/// Renders batches; `truncated` is `Some(rows)` when the result was cut
/// at `rows`.
pub(super) fn render(
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    truncated: Option<usize>,
) -> Result<String, ArrowError> {
    let (schema, batches) = utc_timestamps(schema, batches)?;
    let mut out = match format {
        Format::Table => {
            let mut s =
                pretty_format_batches_with_schema(Arc::clone(&schema), &batches)?.to_string();
            s.push('\n');
            s
        }
        Format::Csv => csv(&schema, &batches)?,
        Format::Json => json_array(&batches)?,
        Format::Ndjson => ndjson(&batches)?,
    };
    if let Some(rows) = truncated {
        match format {
            Format::Table => out.push_str(&format!(
                "truncated: the result has more than {rows} rows; these are the first {rows}\n"
            )),
            Format::Csv => out.push_str(&format!(
                "# truncated: the result has more than {rows} rows; these are the first {rows}\n"
            )),
            Format::Json => {
                let marker = format!("{{\"truncated\":true,\"rows\":{rows}}}");
                if out.trim_end() == "[]" {
                    out = format!("[{marker}]\n");
                } else if let Some(end) = out.rfind(']') {
                    out.replace_range(end.., &format!(",{marker}]\n"));
                }
            }
            Format::Ndjson => out.push_str(&format!("{{\"truncated\":true,\"rows\":{rows}}}\n")),
        }
    }
    Ok(out)
}

fn csv(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, ArrowError> {
    use datafusion::arrow::csv::WriterBuilder;
    let (schema, batches) = flatten_nested(schema, batches)?;
    let mut buf = Vec::new();
    {
        let mut w = WriterBuilder::new().with_header(true).build(&mut buf);
        if batches.iter().all(|b| b.num_rows() == 0) {
            w.write(&RecordBatch::new_empty(Arc::clone(&schema)))?;
        }
        for b in &batches {
            if b.num_rows() > 0 {
                w.write(b)?;
            }
        }
    }
    String::from_utf8(buf).map_err(|e| ArrowError::CsvError(e.to_string()))
}

/// Nested columns as the text the table shows (CSV has no nesting).
fn flatten_nested(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let nested = |t: &DataType| t.is_nested();
    if !schema.fields().iter().any(|f| nested(f.data_type())) {
        return Ok((Arc::clone(schema), batches.to_vec()));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if nested(f.data_type()) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let out_schema = Arc::new(Schema::new(fields));
    let options = FormatOptions::default();
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(b.num_columns());
        for c in b.columns() {
            if !nested(c.data_type()) {
                columns.push(Arc::clone(c));
                continue;
            }
            let fmt = ArrayFormatter::try_new(c.as_ref(), &options)?;
            let mut s = StringBuilder::new();
            for i in 0..c.len() {
                if c.is_null(i) {
                    s.append_null();
                } else {
                    s.append_value(fmt.value(i).to_string());
                }
            }
            columns.push(Arc::new(s.finish()));
        }
        out.push(RecordBatch::try_new(Arc::clone(&out_schema), columns)?);
    }
    Ok((out_schema, out))
}

fn json_array(batches: &[RecordBatch]) -> Result<String, ArrowError> {
    use datafusion::arrow::json::WriterBuilder;
    use datafusion::arrow::json::writer::JsonArray;
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok("[]\n".to_string());
    }
    let mut buf = Vec::new();
    {
        let mut w = WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, JsonArray>(&mut buf);
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    buf.push(b'\n');
    String::from_utf8(buf).map_err(|e| ArrowError::JsonError(e.to_string()))
}

fn ndjson(batches: &[RecordBatch]) -> Result<String, ArrowError> {
    use datafusion::arrow::json::WriterBuilder;
    use datafusion::arrow::json::writer::LineDelimited;
    let mut buf = Vec::new();
    {
        let mut w = WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, LineDelimited>(&mut buf);
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    String::from_utf8(buf).map_err(|e| ArrowError::JsonError(e.to_string()))
}

//! The `incidents_latest` table: the newest version of each incident,
//! stored rather than computed at query time.
//!
//! Design choice: copy-on-write, one file per day. A view over `incidents`
//! (`row_number() OVER (PARTITION BY day, id ORDER BY version DESC, ...)`)
//! sorts every version a query reads, and over a month of a fleet's
//! history that sort is most of the query (BENCHMARKS.md). Instead, every
//! flush rewrites, for each day it wrote incidents to, that day's latest
//! file: the current file's rows and the flush's new versions, one row per
//! id (highest `version`, then `ordinal`). Every version of an id lives in
//! one day, so a day's file is the whole answer for that day, and a query
//! on `incidents_latest` is a plain scan, pruned by `day` and statistics
//! like any table.
//!
//! The new file is named by a batch range that contains the current one's
//! (`<first of the current>-<this batch>`), so the `HEAD` commit that makes
//! the flush visible also hides the file it replaces, in the same atomic
//! step ([`super::store`]); compaction's garbage collection deletes the old
//! file after the grace period, and never merges these files (a day has
//! one). The cost is on the write side: a flush reads and rewrites one file
//! per day it touches, as large as that day's incidents (not versions).

use std::path::Path;

use datafusion::arrow::array::{AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{
    SortColumn, SortOptions, concat_batches, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;

use super::Error;
use super::schema::Table;
use super::store::{self, FileMeta, FileName, Pending, Result, Store, Tuning, visible};

/// Of the rows of `incidents` (in any order, any number of versions per
/// id), the newest per id: highest `version`, then highest `ordinal`.
/// Sorted by `id` (so by the table's sort columns). `schema` is the
/// batches' (any with those three columns).
pub(super) fn newest(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<RecordBatch, ArrowError> {
    let all = concat_batches(schema, batches)?;
    let column = |name: &str| {
        all.column_by_name(name)
            .cloned()
            .ok_or_else(|| ArrowError::SchemaError(format!("no column `{name}`")))
    };
    let id = column("id")?;
    let newest_first = Some(SortOptions {
        descending: true,
        nulls_first: false,
    });
    let order = lexsort_to_indices(
        &[
            SortColumn {
                values: id.clone(),
                options: None,
            },
            SortColumn {
                values: column("version")?,
                options: newest_first,
            },
            SortColumn {
                values: column("ordinal")?,
                options: newest_first,
            },
        ],
        None,
    )?;
    let ids = id
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError("`id` is not text".to_string()))?;
    let mut keep = Vec::new();
    let mut previous: Option<&str> = None;
    for &row in order.values() {
        let this = ids.value(row as usize);
        if previous != Some(this) {
            keep.push(row);
            previous = Some(this);
        }
    }
    take_record_batch(&all, &UInt32Array::from(keep))
}

/// What a flush adds to one day of `incidents_latest`.
pub(super) struct DayUpdate<'a> {
    pub day: &'a str,
    /// The flush's rows of `incidents` for the day.
    pub versions: &'a [RecordBatch],
    /// The batch `HEAD` holds now: which latest file is current.
    pub committed: u64,
    /// The flush's batch number.
    pub batch: u64,
    pub seq_max: Option<u64>,
    pub ordinal_max: Option<u64>,
}

/// Writes the day's new latest file under its temporary name (the flush
/// publishes and commits it with its other files). Returns the file and
/// its rows.
pub(super) fn write_day(
    store: &Store,
    update: &DayUpdate<'_>,
    tuning: &Tuning,
) -> Result<(Pending, usize)> {
    let table = Table::Latest;
    let day = update.day;
    let dir = store.ensure_day_dir(table, day)?;
    let current = visible(&store.day_files(table, day)?.data, update.committed);
    let mut batches = Vec::new();
    for n in &current {
        batches.extend(read(&dir.join(n.to_string()))?);
    }
    batches.extend(update.versions.iter().cloned());
    let schema = table.file_schema();
    let rows = newest(&schema, &batches).map_err(|source| Error::Arrow {
        what: format!("finding the newest versions of {day}"),
        source,
    })?;
    let name = FileName {
        first: current
            .iter()
            .map(|n| n.first)
            .min()
            .unwrap_or(update.batch),
        last: update.batch,
        level: 0,
    };
    let n = rows.num_rows();
    let meta = FileMeta::new(table, day, name, n, update.seq_max, update.ordinal_max);
    let pending = store.write_file(&dir, name, &schema, &[rows], &meta, tuning)?;
    Ok((pending, n))
}

fn read(path: &Path) -> Result<Vec<RecordBatch>> {
    store::read_file(path).map(|(batches, _)| batches)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
            Field::new("ordinal", DataType::Int64, false),
        ]))
    }

    fn rows(rows: &[(&str, i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("rows")
    }

    fn triples(b: &RecordBatch) -> Vec<(String, i64, i64)> {
        let ids = b.column(0).as_string::<i32>();
        let versions = b
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let ordinals = b
            .column(2)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        (0..b.num_rows())
            .map(|i| {
                (
                    ids.value(i).to_string(),
                    versions.value(i),
                    ordinals.value(i),
                )
            })
            .collect()
    }

    #[test]
    fn keeps_the_highest_version_then_ordinal_per_id() {
        // b's resolved line repeats version 2 (the higher ordinal wins); c's
        // versions come out of order across batches.
        let current = rows(&[("b", 1, 1), ("c", 3, 7), ("a", 1, 0)]);
        let flushed = rows(&[("b", 2, 4), ("c", 2, 5), ("b", 2, 9), ("d", 1, 8)]);
        let got = newest(&schema(), &[current, flushed]).expect("newest");
        let want = [("a", 1, 0), ("b", 2, 9), ("c", 3, 7), ("d", 1, 8)];
        assert_eq!(triples(&got), want.map(|(i, v, o)| (i.to_string(), v, o)));
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert_eq!(newest(&schema(), &[]).expect("newest").num_rows(), 0);
    }
}

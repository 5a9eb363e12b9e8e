//! Compaction: merging a day's small files so frequent flushes do not
//! degrade queries forever.
//!
//! `serve` flushes every few seconds, each flush one small file per table
//! and day. Two rules keep the number of files per day small:
//!
//! - **Tiers**, after every flush: when the newest `fanout` files of a day
//!   have the same level (a flush writes level 0), they are merged into one
//!   file of the next level. Like a base-`fanout` counter, a day being
//!   written holds at most `fanout - 1` files per level, and each row is
//!   rewritten once per level (log_fanout of the flushes a day gets).
//! - **Settled days**: once a day's newest file is older than `settle`, all
//!   its files are merged into one.
//!
//! A merge takes a run of *adjacent* visible files (in batch order), so its
//! output's batch range contains exactly its inputs' ranges: renaming the
//! output into place is what hides the inputs (see [`super::store`]), and a
//! crash at any step leaves every row visible exactly once. Inputs are
//! deleted once the output is older than `grace`, so a query that listed
//! them first can finish (keep `grace` above the query timeout). Rows are
//! sorted by `(id, ordinal)` in the output: an incident's versions
//! together, in order.
//!
//! `incidents_latest` is never merged: it has one file per day, replaced
//! at every flush ([`super::latest`]); its replaced files are deleted here
//! like merged inputs.
//!
//! A merge reads its inputs whole (the files of one table and one day);
//! memory is bounded by the size of a day.

use std::path::Path;
use std::time::{Duration, SystemTime};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{
    SortColumn, concat_batches, lexsort_to_indices, take_record_batch,
};

use super::Error;
use super::schema::Table;
use super::store::{self, FileMeta, FileName, Result, visible};
use super::writer::HistoryWriter;

/// When to merge files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Files of one level merged together.
    pub fanout: usize,
    /// A day whose newest file is older than this is merged into one file.
    pub settle: Duration,
    /// Superseded files are deleted once their replacement is this old.
    pub grace: Duration,
    /// Whether [`HistoryWriter::flush`] compacts the days it wrote.
    pub on_flush: bool,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            fanout: 8,
            settle: Duration::from_secs(3600),
            grace: Duration::from_secs(300),
            on_flush: true,
        }
    }
}

impl CompactionPolicy {
    /// Never compacts on its own (explicit calls only).
    pub fn manual() -> CompactionPolicy {
        CompactionPolicy {
            on_flush: false,
            ..CompactionPolicy::default()
        }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Merges (each writes one file).
    pub merges: usize,
    /// Files merged.
    pub files_in: usize,
    /// Rows rewritten.
    pub rows: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Superseded files deleted.
    pub removed: usize,
}

impl CompactStats {
    fn add(&mut self, o: &CompactStats) {
        self.merges += o.merges;
        self.files_in += o.files_in;
        self.rows += o.rows;
        self.bytes += o.bytes;
        self.removed += o.removed;
    }
}

/// Where [`HistoryWriter::compact_day_until`] stops, as a crash there
/// would.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CompactStep {
    /// The merged file written and fsynced under its temporary name.
    Written,
    /// The merged file renamed into place (inputs superseded, still on
    /// disk); `HEAD`'s generation not bumped.
    Renamed,
    /// Generation bumped; superseded inputs not deleted.
    Committed,
}

/// Compacts by the writer's policy: the given days (all when `None`).
pub(super) fn run(
    w: &mut HistoryWriter,
    days: Option<&[String]>,
    stop: Option<CompactStep>,
) -> Result<CompactStats> {
    let policy = w.policy.clone();
    let mut stats = CompactStats::default();
    let mut merged = false;
    for table in Table::APPENDED {
        let all = w.store().days(table)?;
        for day in all.iter().filter(|d| days.is_none_or(|ds| ds.contains(d))) {
            // Tiers. Each merge leaves fewer visible files; a merge that
            // does not (a store changed under us) ends the pass.
            let mut files = usize::MAX;
            loop {
                let vis = visible_files(w, table, day)?;
                let Some(last) = vis.last() else { break };
                let run = vis
                    .iter()
                    .rev()
                    .take_while(|n| n.level == last.level)
                    .count();
                if run < policy.fanout.max(2) || vis.len() >= files {
                    break;
                }
                files = vis.len();
                let inputs = &vis[vis.len() - run..];
                let s = merge(w, table, day, inputs, last.level + 1, stop)?;
                stats.add(&s);
                merged = true;
                if stop.is_some() {
                    return Ok(stats);
                }
            }
            // Settled days.
            let vis = visible_files(w, table, day)?;
            if vis.len() > 1 && newest_age(w, table, day, &vis) >= policy.settle {
                let level = vis.iter().map(|n| n.level).max().unwrap_or(0) + 1;
                let s = merge(w, table, day, &vis, level, stop)?;
                stats.add(&s);
                merged = true;
                if stop.is_some() {
                    return Ok(stats);
                }
            }
        }
    }
    if merged {
        w.bump_generation()?;
    }
    stats.removed += collect_garbage(w, policy.grace)?;
    Ok(stats)
}

/// Merges all the files of one day, per table, into one.
pub(super) fn run_day(
    w: &mut HistoryWriter,
    day: &str,
    stop: Option<CompactStep>,
) -> Result<CompactStats> {
    let mut stats = CompactStats::default();
    for table in Table::APPENDED {
        let vis = visible_files(w, table, day)?;
        if vis.len() < 2 {
            continue;
        }
        let level = vis.iter().map(|n| n.level).max().unwrap_or(0) + 1;
        let s = merge(w, table, day, &vis, level, stop)?;
        stats.add(&s);
        if stop.is_some_and(|s| s < CompactStep::Committed) {
            return Ok(stats);
        }
    }
    if stats.merges > 0 {
        w.bump_generation()?;
    }
    if stop.is_some() {
        return Ok(stats);
    }
    stats.removed += collect_garbage(w, w.policy.grace)?;
    Ok(stats)
}

fn visible_files(w: &HistoryWriter, table: Table, day: &str) -> Result<Vec<FileName>> {
    let files = w.store().day_files(table, day)?;
    Ok(visible(&files.data, w.head().batch))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn age(path: &Path) -> Duration {
    modified(path)
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or(Duration::ZERO)
}

fn newest_age(w: &HistoryWriter, table: Table, day: &str, vis: &[FileName]) -> Duration {
    let dir = w.store().day_dir(table, day);
    vis.iter()
        .map(|n| age(&dir.join(n.to_string())))
        .min()
        .unwrap_or(Duration::ZERO)
}

/// Merges adjacent visible files into one, sorted by `(id, ordinal)`.
fn merge(
    w: &HistoryWriter,
    table: Table,
    day: &str,
    inputs: &[FileName],
    level: u32,
    stop: Option<CompactStep>,
) -> Result<CompactStats> {
    let (Some(first), Some(last)) = (inputs.first(), inputs.last()) else {
        return Ok(CompactStats::default());
    };
    let dir = w.store().day_dir(table, day);
    let schema = table.file_schema();
    let mut batches = Vec::new();
    let mut seq_max = None;
    let mut ordinal_max = None;
    for n in inputs {
        let (b, meta) = store::read_file(&dir.join(n.to_string()))?;
        if let Some(m) = meta {
            seq_max = seq_max.max(m.seq_max);
            ordinal_max = ordinal_max.max(m.ordinal_max);
        }
        batches.extend(b);
    }
    let arrow = |what: &str| {
        let what = format!("{what} {} of {day}", table.name());
        move |source| Error::Arrow { what, source }
    };
    let all = concat_batches(&schema, &batches).map_err(arrow("merging"))?;
    drop(batches);
    let sorted = sort(&all, table).map_err(arrow("sorting"))?;
    drop(all);
    let rows = sorted.num_rows();
    let name = FileName {
        first: first.first,
        last: last.last,
        level,
    };
    let meta = FileMeta::new(table, day, name, rows, seq_max, ordinal_max);
    let pending = w
        .store()
        .write_file(&dir, name, &schema, &[sorted], &meta, &w.tuning)?;
    let stats = CompactStats {
        merges: 1,
        files_in: inputs.len(),
        rows,
        bytes: pending.bytes,
        removed: 0,
    };
    if stop == Some(CompactStep::Written) {
        return Ok(stats);
    }
    if let Err(e) = pending.publish().and_then(|()| store::sync_dir(&dir)) {
        let _ = pending.discard();
        return Err(e);
    }
    tracing::debug!(table = table.name(), day = %day, files = inputs.len(), rows, level, "history merged files");
    Ok(stats)
}

fn sort(
    batch: &RecordBatch,
    table: Table,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let columns: Vec<SortColumn> = table
        .sort_columns()
        .iter()
        .filter_map(|c| batch.column_by_name(c))
        .map(|values| SortColumn {
            values: values.clone(),
            options: None,
        })
        .collect();
    if columns.is_empty() {
        return Ok(batch.clone());
    }
    let indices = lexsort_to_indices(&columns, None)?;
    take_record_batch(batch, &indices)
}

/// Deletes superseded files whose replacement is older than `grace`.
fn collect_garbage(w: &HistoryWriter, grace: Duration) -> Result<usize> {
    let mut removed = 0;
    for table in Table::ALL {
        for day in w.store().days(table)? {
            let files = w.store().day_files(table, &day)?;
            let vis = visible(&files.data, w.head().batch);
            let dir = w.store().day_dir(table, &day);
            let mut here = 0;
            for n in files.data.iter().filter(|n| !vis.contains(n)) {
                // Not visible and committed: superseded by a visible file.
                if n.last > w.head().batch {
                    continue;
                }
                let Some(by) = vis.iter().find(|v| v.contains(n)) else {
                    continue;
                };
                if age(&dir.join(by.to_string())) >= grace {
                    store::remove(&dir.join(n.to_string()))?;
                    here += 1;
                }
            }
            if here > 0 {
                store::sync_dir(&dir)?;
                removed += here;
            }
        }
    }
    Ok(removed)
}

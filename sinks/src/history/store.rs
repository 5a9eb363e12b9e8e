//! The store on disk: directories, file names, the `HEAD` commit record,
//! crash-safe file writes, and which files a reader may see.
//!
//! ```text
//! <dir>/HEAD                                   the commit record (see below)
//! <dir>/LOCK                                   held by the one writer
//! <dir>/<table>/day=YYYY-MM-DD/<first>-<last>-l<level>.parquet
//! <dir>/<table>/day=YYYY-MM-DD/.<name>.tmp     being written: never read
//! ```
//!
//! A file is named by the range of flush *batches* its rows came from: a
//! flush writes `n-n-l0` files (one per table and day it touches), a
//! compaction of files `a-…` … `…-b` writes `a-b-l<k>`. `HEAD` holds the
//! number of the last committed batch, the store's generation (bumped on
//! every change of the visible file set), the next row ordinal, the highest
//! outbox sequence number stored, and the incidents still live (for their
//! partition day).
//!
//! A reader sees exactly the files that are
//! 1. named like data files (temporary files start with `.`),
//! 2. committed: their last batch is at or below `HEAD`'s batch, and
//! 3. not superseded: no other file of the same directory covers a range
//!    that contains theirs.
//!
//! Why this is crash-safe. Every file is written under a temporary name,
//! fsynced, renamed, and its directory fsynced, so a visible name always
//! holds a whole file. A flush renames its files while their batch is still
//! above `HEAD` (so invisible), then commits by replacing `HEAD` (written
//! the same way; the rename is the atomic step): all the flush's files, in
//! every table and day, become visible at once, or (crash before the
//! rename) none does, and the next writer deletes them before it reuses the
//! batch number. A compaction writes its output under a name whose range
//! contains its inputs' ranges: the rename that makes the output visible is
//! the same atomic step that hides the inputs, so no row is ever visible
//! twice or missing, whether a crash comes before the rename (the temporary
//! file is deleted at the next open) or after it (the inputs are hidden and
//! deleted later). Inputs stay on disk for a grace period after they are
//! superseded, so a query that listed them before the switch can finish.
//! Ranges in one directory are disjoint or nested by construction: a
//! compaction only merges a run of adjacent visible files, and batch
//! numbers only grow.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::{KeyValue, SortingColumn};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde::{Deserialize, Serialize};

use super::Error;
use super::schema::{DAY, Table, is_day};

pub(super) type Result<T, E = Error> = std::result::Result<T, E>;

/// The key of the Parquet key-value metadata entry every file carries.
pub(super) const META_KEY: &str = "epicenter.history";
/// The version of the layout and schemas (2: `incidents_latest` stored;
/// 3: `incidents` and `incidents_latest` have a `cluster` column).
pub(super) const FORMAT: u32 = 3;

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A data file's name: the batches its rows came from, and how many
/// compactions made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct FileName {
    pub first: u64,
    pub last: u64,
    pub level: u32,
}

impl FileName {
    pub(super) fn parse(name: &str) -> Option<FileName> {
        let stem = name.strip_suffix(".parquet")?;
        let (range, level) = stem.rsplit_once("-l")?;
        let (first, last) = range.split_once('-')?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(first) || !all_digits(last) || !all_digits(level) {
            return None;
        }
        let n = FileName {
            first: first.parse().ok()?,
            last: last.parse().ok()?,
            level: level.parse().ok()?,
        };
        (n.first <= n.last).then_some(n)
    }

    pub(super) fn contains(&self, other: &FileName) -> bool {
        self != other && self.first <= other.first && other.last <= self.last
    }
}

impl std::fmt::Display for FileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:012}-{:012}-l{}.parquet",
            self.first, self.last, self.level
        )
    }
}

/// Of the data files of one directory, those a reader sees (committed and
/// not superseded), in range order.
pub(super) fn visible(names: &[FileName], committed: u64) -> Vec<FileName> {
    let mut names: Vec<FileName> = names
        .iter()
        .copied()
        .filter(|n| n.last <= committed)
        .collect();
    // Containing ranges first: a file is hidden when one seen before it
    // reaches as far.
    names.sort_by(|a, b| a.first.cmp(&b.first).then(b.last.cmp(&a.last)));
    names.dedup();
    let mut out = Vec::with_capacity(names.len());
    let mut reach: Option<u64> = None;
    for n in names {
        if reach.is_some_and(|r| n.last <= r) {
            continue;
        }
        reach = Some(n.last);
        out.push(n);
    }
    out
}

/// What a file's key-value metadata says about it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct FileMeta {
    pub format: u32,
    pub table: String,
    pub day: String,
    pub first: u64,
    pub last: u64,
    pub level: u32,
    pub rows: u64,
    /// The highest outbox sequence number of its rows.
    #[serde(default)]
    pub seq_max: Option<u64>,
    /// The highest row ordinal of its rows.
    #[serde(default)]
    pub ordinal_max: Option<u64>,
}

impl FileMeta {
    /// The metadata of a file named `name` of `table` and `day`, written
    /// by this build.
    pub(super) fn new(
        table: Table,
        day: &str,
        name: FileName,
        rows: usize,
        seq_max: Option<u64>,
        ordinal_max: Option<u64>,
    ) -> FileMeta {
        FileMeta {
            format: FORMAT,
            table: table.name().to_string(),
            day: day.to_string(),
            first: name.first,
            last: name.last,
            level: name.level,
            rows: rows as u64,
            seq_max,
            ordinal_max,
        }
    }
}

/// An incident whose last stored change was not terminal: later versions
/// go to the same partition day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Live {
    pub day: String,
    /// When its last version was recorded (µs), to forget the ones that
    /// never end.
    pub recorded_at: i64,
}

/// The commit record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Head {
    pub generation: u64,
    pub batch: u64,
    pub next_ordinal: u64,
    pub last_seq: Option<u64>,
    pub live: BTreeMap<String, Live>,
}

#[derive(Serialize, Deserialize)]
struct HeadLine {
    format: u32,
    generation: u64,
    batch: u64,
    next_ordinal: u64,
    last_seq: Option<u64>,
    live: usize,
}

impl Head {
    /// `HEAD` is a JSON line (what a reader needs), then one line per live
    /// incident (`id<TAB>day<TAB>recorded µs`, what the writer needs).
    fn to_bytes(&self) -> Vec<u8> {
        let line = HeadLine {
            format: FORMAT,
            generation: self.generation,
            batch: self.batch,
            next_ordinal: self.next_ordinal,
            last_seq: self.last_seq,
            live: self.live.len(),
        };
        let mut out = serde_json::to_vec(&line).unwrap_or_default();
        out.push(b'\n');
        for (id, l) in &self.live {
            let _ = writeln!(out, "{id}\t{}\t{}", l.day, l.recorded_at);
        }
        out
    }
}

/// The part of `HEAD` a reader needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Commit {
    pub generation: u64,
    pub batch: u64,
}

/// The store's directory and its operations (no state of its own).
#[derive(Clone, Debug)]
pub(super) struct Store {
    dir: PathBuf,
}

impl Store {
    pub(super) fn new(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn head_path(&self) -> PathBuf {
        self.dir.join("HEAD")
    }

    pub(super) fn table_dir(&self, table: Table) -> PathBuf {
        self.dir.join(table.name())
    }

    pub(super) fn day_dir(&self, table: Table, day: &str) -> PathBuf {
        self.table_dir(table).join(format!("{DAY}={day}"))
    }

    /// Reads the commit (first line of `HEAD`); `None` if there is none.
    pub(super) fn read_commit(&self) -> Result<Option<Commit>> {
        let path = self.head_path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let mut line = String::new();
        BufReader::new(file)
            .read_line(&mut line)
            .map_err(io(&path))?;
        let h = parse_head_line(&path, &line)?;
        Ok(Some(Commit {
            generation: h.generation,
            batch: h.batch,
        }))
    }

    /// Reads all of `HEAD`; `None` if there is none.
    pub(super) fn read_head(&self) -> Result<Option<Head>> {
        let path = self.head_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let mut lines = text.lines();
        let h = parse_head_line(&path, lines.next().unwrap_or(""))?;
        let mut live = BTreeMap::new();
        for (n, l) in lines.enumerate() {
            let mut f = l.split('\t');
            let (Some(id), Some(day), Some(at)) = (f.next(), f.next(), f.next()) else {
                return Err(Error::Head {
                    path,
                    reason: format!("line {}: not `id<TAB>day<TAB>time`", n + 2),
                });
            };
            let recorded_at = at.parse().map_err(|_| Error::Head {
                path: path.clone(),
                reason: format!("line {}: `{at}` is not a time in µs", n + 2),
            })?;
            if !is_day(day) {
                return Err(Error::Head {
                    path,
                    reason: format!("line {}: `{day}` is not a day", n + 2),
                });
            }
            live.insert(
                id.to_string(),
                Live {
                    day: day.to_string(),
                    recorded_at,
                },
            );
        }
        Ok(Some(Head {
            generation: h.generation,
            batch: h.batch,
            next_ordinal: h.next_ordinal,
            last_seq: h.last_seq,
            live,
        }))
    }

    /// Replaces `HEAD` atomically (temporary file, fsync, rename, fsync of
    /// the directory).
    pub(super) fn write_head(&self, head: &Head) -> Result<()> {
        let path = self.head_path();
        let tmp = self.dir.join(".HEAD.tmp");
        {
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&head.to_bytes()).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&self.dir)
    }

    /// Creates the directory of a table's day (and syncs its parents when
    /// it was new).
    pub(super) fn ensure_day_dir(&self, table: Table, day: &str) -> Result<PathBuf> {
        let dir = self.day_dir(table, day);
        if dir.is_dir() {
            return Ok(dir);
        }
        let table_dir = self.table_dir(table);
        let table_new = !table_dir.is_dir();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        sync_dir(&table_dir)?;
        if table_new {
            sync_dir(&self.dir)?;
        }
        Ok(dir)
    }

    /// The day directories of a table, sorted.
    pub(super) fn days(&self, table: Table) -> Result<Vec<String>> {
        let dir = self.table_dir(table);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut days = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name();
            let Some(day) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&format!("{DAY}=")))
            else {
                continue;
            };
            if is_day(day) && entry.path().is_dir() {
                days.push(day.to_string());
            }
        }
        days.sort();
        Ok(days)
    }

    /// What is in one day directory: data files and temporary files.
    pub(super) fn day_files(&self, table: Table, day: &str) -> Result<DayFiles> {
        let dir = self.day_dir(table, day);
        let mut out = DayFiles::default();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.starts_with('.') && name.ends_with(".tmp") {
                out.temporary.push(entry.path());
            } else if let Some(n) = FileName::parse(&name) {
                out.data.push(n);
            }
        }
        out.data.sort();
        Ok(out)
    }

    /// Writes `batches` as a Parquet file named `name` in `dir` under a
    /// temporary name, fsynced. [`Pending::publish`] renames it.
    pub(super) fn write_file(
        &self,
        dir: &Path,
        name: FileName,
        schema: &SchemaRef,
        batches: &[RecordBatch],
        meta: &FileMeta,
        tuning: &Tuning,
    ) -> Result<Pending> {
        let final_path = dir.join(name.to_string());
        let tmp = dir.join(format!(".{name}.tmp"));
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let props = tuning.writer_properties(schema, meta);
        let parquet = |source| Error::Parquet {
            path: tmp.clone(),
            source,
        };
        let mut writer =
            ArrowWriter::try_new(file, Arc::clone(schema), Some(props)).map_err(parquet)?;
        for b in batches {
            writer.write(b).map_err(parquet)?;
        }
        writer.finish().map_err(parquet)?;
        writer.inner().sync_all().map_err(io(&tmp))?;
        let bytes = writer.bytes_written() as u64;
        drop(writer);
        Ok(Pending {
            tmp,
            path: final_path,
            bytes,
        })
    }
}

fn parse_head_line(path: &Path, line: &str) -> Result<HeadLine> {
    let h: HeadLine = serde_json::from_str(line.trim_end()).map_err(|e| Error::Head {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if h.format != FORMAT {
        return Err(Error::Head {
            path: path.to_path_buf(),
            reason: format!(
                "format {} (this build reads format {FORMAT}); move the history directory aside \
                 (the build that wrote it still reads it with `epicenter query --history DIR`) \
                 and a new one starts, or turn sinks.history off",
                h.format
            ),
        });
    }
    Ok(h)
}

/// The contents of one day directory.
#[derive(Debug, Default)]
pub(super) struct DayFiles {
    /// Data files, by name (range order).
    pub data: Vec<FileName>,
    /// Files being written, or left by a crash.
    pub temporary: Vec<PathBuf>,
}

/// A file written under its temporary name, not yet visible.
#[derive(Debug)]
pub(super) struct Pending {
    pub tmp: PathBuf,
    pub path: PathBuf,
    pub bytes: u64,
}

impl Pending {
    /// Gives the file its name (the caller fsyncs the directory).
    pub(super) fn publish(&self) -> Result<()> {
        fs::rename(&self.tmp, &self.path).map_err(io(&self.path))
    }

    /// Removes whichever of the two names exists.
    pub(super) fn discard(&self) -> Result<()> {
        for p in [&self.tmp, &self.path] {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(p)(e)),
            }
        }
        Ok(())
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

pub(super) fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Reads a data file back (for compaction and recovery).
pub(super) fn read_file(path: &Path) -> Result<(Vec<RecordBatch>, Option<FileMeta>)> {
    let parquet = |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet)?;
    let meta = file_meta(builder.metadata().file_metadata().key_value_metadata());
    let reader = builder
        .with_batch_size(64 * 1024)
        .build()
        .map_err(parquet)?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| Error::Arrow {
            what: format!("reading {}", path.display()),
            source: e,
        })?);
    }
    Ok((batches, meta))
}

/// Reads only a data file's metadata.
pub(super) fn read_meta(path: &Path) -> Result<Option<FileMeta>> {
    let file = File::open(path).map_err(io(path))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| Error::Parquet {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(file_meta(
        builder.metadata().file_metadata().key_value_metadata(),
    ))
}

fn file_meta(kv: Option<&Vec<KeyValue>>) -> Option<FileMeta> {
    let v = kv?.iter().find(|k| k.key == META_KEY)?.value.as_deref()?;
    serde_json::from_str(v).ok()
}

/// How files are laid out inside: the knobs the bench tunes.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Rows per row group (the unit DataFusion splits a scan by).
    pub row_group_rows: usize,
    /// Rows per data page (the unit the page index prunes).
    pub page_rows: usize,
    pub compression: Compression,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            row_group_rows: 128 * 1024,
            page_rows: 8 * 1024,
            compression: Compression::ZSTD(ZstdLevel::default()),
        }
    }
}

impl Tuning {
    fn writer_properties(&self, schema: &SchemaRef, meta: &FileMeta) -> WriterProperties {
        let sorting: Vec<SortingColumn> = Table::ALL
            .iter()
            .find(|t| t.name() == meta.table)
            .map(|t| t.sort_columns())
            .unwrap_or(&[])
            .iter()
            .filter_map(|c| schema.index_of(c).ok())
            .filter_map(|i| i32::try_from(i).ok())
            .map(|column_idx| SortingColumn {
                column_idx,
                descending: false,
                nulls_first: false,
            })
            .collect();
        WriterProperties::builder()
            .set_compression(self.compression)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(self.row_group_rows.max(1)))
            .set_data_page_row_count_limit(self.page_rows.max(1))
            .set_sorting_columns(Some(sorting))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                META_KEY.to_string(),
                serde_json::to_string(meta).unwrap_or_default(),
            )]))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(first: u64, last: u64) -> FileName {
        FileName {
            first,
            last,
            level: 0,
        }
    }

    /// A store of the format before the `cluster` column is refused with
    /// the way out, not read wrongly.
    #[test]
    fn another_format_is_refused_with_what_to_do() {
        let line =
            r#"{"format":2,"generation":1,"batch":1,"next_ordinal":1,"last_seq":null,"live":0}"#;
        let e = parse_head_line(Path::new("history/HEAD"), line)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("format 2 (this build reads format 3)"), "{e}");
        assert!(e.contains("move the history directory aside"), "{e}");
    }

    #[test]
    fn names_round_trip() {
        let f = FileName {
            first: 3,
            last: 17,
            level: 2,
        };
        assert_eq!(f.to_string(), "000000000003-000000000017-l2.parquet");
        assert_eq!(FileName::parse(&f.to_string()), Some(f));
        for bad in [
            ".000000000003-000000000017-l2.parquet.tmp",
            "000000000017-000000000003-l0.parquet",
            "x-1-l0.parquet",
            "1-2-l0.parq",
            "part-0.parquet",
        ] {
            assert_eq!(FileName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn readers_see_committed_files_not_superseded() {
        // 1..=4 compacted into 1-4 (inputs still on disk), 5 and 6 flushed,
        // 7 written but not committed.
        let files = [
            n(1, 1),
            n(2, 2),
            n(3, 3),
            n(4, 4),
            n(1, 4),
            n(5, 5),
            n(6, 6),
            n(7, 7),
        ];
        assert_eq!(visible(&files, 6), vec![n(1, 4), n(5, 5), n(6, 6)]);
        // Before the compaction's rename.
        assert_eq!(visible(&files[..4], 4), files[..4].to_vec());
        // A second compaction over the first one's output.
        let files = [n(1, 4), n(5, 5), n(6, 6), n(1, 6), n(2, 2)];
        assert_eq!(visible(&files, 6), vec![n(1, 6)]);
    }
}

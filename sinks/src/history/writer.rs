//! [`HistoryWriter`]: appends incident versions to the store and commits
//! them, one flush at a time.
//!
//! Appends go straight into Arrow builders, one set per partition day. A
//! flush writes one file per table and day, all under the next batch
//! number, renames them (still invisible: their batch is above `HEAD`'s),
//! and commits by replacing `HEAD` (see [`super::store`] for why that is
//! atomic). A failed flush keeps its rows for the next one and removes what
//! it wrote; if even that fails the writer refuses to go on (reopening it
//! recovers the store). The same commit replaces the `incidents_latest`
//! file of every day the flush wrote incidents to ([`super::latest`]).
//!
//! The partition day of an incident is the UTC day of its `opened_at` when
//! it was first stored, and stays that: a merge can move `opened_at`
//! earlier, but every version of an id lives in one partition, so the
//! newest version of each incident can be found day by day and a `day`
//! filter prunes `incidents_latest` too. The days of incidents still live
//! are kept in `HEAD` so this holds across restarts.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use correlate::EventTime;
use datafusion::arrow::array::RecordBatch;

use super::Error;
use super::compact::{self, CompactStats, CompactionPolicy};
use super::latest;
use super::schema::{Stamp, Table, TableRows, day_of};
use super::store::{self, FileMeta, FileName, Head, Live, Pending, Result, Store, Tuning};
use crate::change::{ChangeKind, IncidentChange};

/// Live incidents not updated for this long are forgotten (their next
/// version, if any, is partitioned by its own `opened_at`).
const LIVE_FOR_US: i64 = 30 * 86_400 * 1_000_000;

/// What a flush wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Files written (one per table and day touched, `incidents_latest`
    /// included).
    pub files: usize,
    /// Rows written, all tables together (a day's `incidents_latest` file
    /// counts all its rows).
    pub rows: usize,
    pub bytes: u64,
    /// Incident versions (rows of `incidents`).
    pub versions: usize,
}

/// Where [`HistoryWriter::flush_until`] stops, as a crash there would.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FlushStep {
    /// Every file written and fsynced under its temporary name.
    Written,
    /// Every file renamed to its name; `HEAD` not replaced yet.
    Renamed,
    /// Committed (a whole flush).
    Committed,
}

/// The rows of one day, per table.
struct DayRows([TableRows; 4]);

impl DayRows {
    fn new() -> DayRows {
        DayRows(TableRows::appended())
    }
}

/// Appends incident versions to the store.
pub struct HistoryWriter {
    store: Store,
    /// Held for the writer's life: one writer per store.
    _lock: File,
    signal_sources: BTreeMap<String, String>,
    /// What `HEAD` says now.
    head: Head,
    /// `HEAD`'s live incidents plus what is buffered.
    live: BTreeMap<String, Live>,
    next_ordinal: u64,
    max_seq: Option<u64>,
    days: BTreeMap<String, DayRows>,
    buffered: usize,
    /// Batches of a flush that failed, written by the next one.
    unflushed: Vec<(String, Table, RecordBatch)>,
    unflushed_versions: usize,
    poisoned: Option<String>,
    skipped: u64,
    pub(super) tuning: Tuning,
    pub(super) policy: CompactionPolicy,
}

impl std::fmt::Debug for HistoryWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryWriter")
            .field("dir", &self.store.dir())
            .field("batch", &self.head.batch)
            .field("last_seq", &self.head.last_seq)
            .field("buffered", &self.buffered)
            .finish_non_exhaustive()
    }
}

impl HistoryWriter {
    /// Opens (creating) the store at `dir`. `signal_sources` names the
    /// source(s) of each signal id (`k8s-event`, `pod,k8s-event`), for the
    /// `incident_signals` table.
    ///
    /// Takes the store's lock (one writer per directory), then recovers
    /// from a crash: deletes temporary files and the files of a flush that
    /// never committed. Superseded files are left for [`Self::compact`].
    pub fn open(dir: &Path, signal_sources: BTreeMap<String, String>) -> Result<HistoryWriter> {
        fs::create_dir_all(dir).map_err(store::io(dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(store::io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked { path: lock_path });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(store::io(&lock_path)(e)),
        }
        let store = Store::new(dir);
        let head = match store.read_head()? {
            Some(h) => h,
            None => {
                let h = rebuild_head(&store)?;
                store.write_head(&h)?;
                h
            }
        };
        recover(&store, &head)?;
        Ok(HistoryWriter {
            live: head.live.clone(),
            next_ordinal: head.next_ordinal,
            max_seq: head.last_seq,
            head,
            store,
            _lock: lock,
            signal_sources,
            days: BTreeMap::new(),
            buffered: 0,
            unflushed: Vec::new(),
            unflushed_versions: 0,
            poisoned: None,
            skipped: 0,
            tuning: Tuning::default(),
            policy: CompactionPolicy::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// The highest outbox sequence number stored (committed; read from
    /// `HEAD` at open, then kept): changes at or below it are already in
    /// the store. Buffered changes count once flushed.
    pub fn last_seq(&self) -> Option<u64> {
        self.head.last_seq
    }

    /// Sets how [`Self::flush`] compacts after each commit (and what
    /// [`Self::compact`] does).
    pub fn set_compaction(&mut self, policy: CompactionPolicy) {
        self.policy = policy;
    }

    /// Sets the layout of the files written from now on.
    pub fn set_tuning(&mut self, tuning: Tuning) {
        self.tuning = tuning;
    }

    /// Buffers one incident version; `recorded_at` is when it was recorded
    /// (wall time in serve, event time in replay); `seq` its outbox sequence
    /// number, if it came through the outbox.
    ///
    /// A change whose `seq` is at or below one already stored or buffered
    /// is a redelivery: it is skipped, and `false` returned.
    pub fn append(
        &mut self,
        change: &IncidentChange,
        recorded_at: EventTime,
        seq: Option<u64>,
    ) -> bool {
        if let (Some(s), Some(max)) = (seq, self.max_seq)
            && s <= max
        {
            self.skipped += 1;
            tracing::debug!(seq = s, stored = max, id = %change.incident.id, "history skips a change already stored");
            return false;
        }
        let id = &change.incident.id;
        let day = match self.live.get(id) {
            Some(l) => l.day.clone(),
            None => day_of(change.incident.opened_at),
        };
        if matches!(change.change, ChangeKind::Resolved | ChangeKind::Merged) {
            self.live.remove(id);
        } else {
            self.live.insert(
                id.clone(),
                Live {
                    day: day.clone(),
                    recorded_at: recorded_at.as_micros(),
                },
            );
        }
        let stamp = Stamp {
            recorded_at,
            seq,
            ordinal: self.next_ordinal,
        };
        self.next_ordinal += 1;
        if seq.is_some() {
            self.max_seq = seq.max(self.max_seq);
        }
        let sources = |signal: &str| {
            self.signal_sources
                .get(signal)
                .cloned()
                .unwrap_or_else(|| "unknown".to_string())
        };
        let rows = self.days.entry(day).or_insert_with(DayRows::new);
        for t in &mut rows.0 {
            t.append(change, stamp, &sources);
        }
        self.buffered += 1;
        true
    }

    /// Incident versions appended and not yet committed.
    pub fn buffered(&self) -> usize {
        self.buffered + self.unflushed_versions
    }

    /// Changes skipped by [`Self::append`] as already stored.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Writes what is buffered (one file per table and day, each written to
    /// a temporary name, synced, renamed) and commits it. Nothing is visible
    /// half-written. Then compacts by the policy (see [`super::compact`]);
    /// a compaction error is logged, not returned: the rows are stored.
    pub fn flush(&mut self) -> Result<FlushStats> {
        let (stats, days) = self.flush_until(FlushStep::Committed)?;
        if !days.is_empty() && self.policy.on_flush {
            match compact::run(self, None, None) {
                Ok(c) if c.merges > 0 => {
                    tracing::debug!(
                        merges = c.merges,
                        files = c.files_in,
                        rows = c.rows,
                        "history compacted"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "history compaction failed"),
            }
        }
        Ok(stats)
    }

    /// [`Self::flush`] without the compaction, stopping at `step` as a crash
    /// there would (for crash tests). Returns the days written.
    #[doc(hidden)]
    pub fn flush_until(&mut self, step: FlushStep) -> Result<(FlushStats, Vec<String>)> {
        if let Some(why) = &self.poisoned {
            return Err(Error::Poisoned {
                path: self.store.dir().to_path_buf(),
                reason: why.clone(),
            });
        }
        self.take_buffered()?;
        if self.unflushed.is_empty() {
            return Ok((FlushStats::default(), Vec::new()));
        }
        let batch = self.head.batch + 1;
        let name = FileName {
            first: batch,
            last: batch,
            level: 0,
        };
        // (day, table) → batches, in table order.
        let mut groups: BTreeMap<(String, Table), Vec<RecordBatch>> = BTreeMap::new();
        for (day, table, b) in &self.unflushed {
            groups
                .entry((day.clone(), *table))
                .or_default()
                .push(b.clone());
        }
        let mut stats = FlushStats {
            versions: self.unflushed_versions,
            ..FlushStats::default()
        };
        let mut pending: Vec<Pending> = Vec::new();
        let mut dirs: Vec<PathBuf> = Vec::new();
        let written = (|| -> Result<()> {
            for ((day, table), batches) in &groups {
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                let dir = self.store.ensure_day_dir(*table, day)?;
                let meta = FileMeta::new(
                    *table,
                    day,
                    name,
                    rows,
                    self.max_seq,
                    self.next_ordinal.checked_sub(1),
                );
                let p = self.store.write_file(
                    &dir,
                    name,
                    &table.file_schema(),
                    batches,
                    &meta,
                    &self.tuning,
                )?;
                stats.files += 1;
                stats.rows += rows;
                stats.bytes += p.bytes;
                pending.push(p);
                dirs.push(dir);
            }
            for ((day, table), versions) in &groups {
                if *table != Table::Incidents {
                    continue;
                }
                let update = latest::DayUpdate {
                    day,
                    versions,
                    committed: self.head.batch,
                    batch,
                    seq_max: self.max_seq,
                    ordinal_max: self.next_ordinal.checked_sub(1),
                };
                let (p, rows) = latest::write_day(&self.store, &update, &self.tuning)?;
                stats.files += 1;
                stats.rows += rows;
                stats.bytes += p.bytes;
                dirs.push(self.store.day_dir(Table::Latest, day));
                pending.push(p);
            }
            if step == FlushStep::Written {
                return Ok(());
            }
            for p in &pending {
                p.publish()?;
            }
            for d in &dirs {
                store::sync_dir(d)?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            self.abandon(&pending, &e);
            return Err(e);
        }
        if step < FlushStep::Committed {
            return Ok((stats, Vec::new()));
        }
        let mut head = Head {
            generation: self.head.generation + 1,
            batch,
            next_ordinal: self.next_ordinal,
            last_seq: self.max_seq,
            live: self.live.clone(),
        };
        let newest = head.live.values().map(|l| l.recorded_at).max();
        if let Some(newest) = newest {
            head.live
                .retain(|_, l| l.recorded_at >= newest.saturating_sub(LIVE_FOR_US));
        }
        if let Err(e) = self.store.write_head(&head) {
            // Whether HEAD was replaced is unknown: reopening decides.
            self.poisoned = Some(format!("committing batch {batch}: {e}"));
            return Err(e);
        }
        self.live.clone_from(&head.live);
        self.head = head;
        self.unflushed.clear();
        self.unflushed_versions = 0;
        let days: Vec<String> = groups.keys().map(|(d, _)| d.clone()).collect();
        let mut days_unique = days;
        days_unique.dedup();
        Ok((stats, days_unique))
    }

    /// Moves the builders' rows into `unflushed`.
    fn take_buffered(&mut self) -> Result<()> {
        for (day, rows) in std::mem::take(&mut self.days) {
            for mut t in rows.0 {
                if t.is_empty() {
                    continue;
                }
                let table = t.table();
                let b = t.finish().map_err(|e| Error::Arrow {
                    what: format!("building the {} rows of {day}", table.name()),
                    source: e,
                })?;
                self.unflushed.push((day.clone(), table, b));
            }
        }
        self.unflushed_versions += self.buffered;
        self.buffered = 0;
        Ok(())
    }

    /// Removes the files of a failed flush; if that fails too, the batch
    /// number cannot be reused safely and the writer stops.
    fn abandon(&mut self, pending: &[Pending], cause: &Error) {
        tracing::warn!(error = %cause, files = pending.len(), "history flush failed; rows kept for the next flush");
        for p in pending {
            if let Err(e) = p.discard() {
                self.poisoned = Some(format!("removing a file of a failed flush: {e}"));
            }
        }
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    pub(super) fn head(&self) -> &Head {
        &self.head
    }

    /// Bumps `HEAD`'s generation: the visible files changed (compaction).
    pub(super) fn bump_generation(&mut self) -> Result<()> {
        let mut head = self.head.clone();
        head.generation += 1;
        self.store.write_head(&head)?;
        self.head = head;
        Ok(())
    }

    /// Merges small files by the policy: every day of every table.
    pub fn compact(&mut self) -> Result<CompactStats> {
        compact::run(self, None, None)
    }

    /// Merges all of a day's files into one per table, whatever the policy.
    pub fn compact_day(&mut self, day: &str) -> Result<CompactStats> {
        compact::run_day(self, day, None)
    }

    /// [`Self::compact_day`], stopping at `step` as a crash there would
    /// (for crash tests).
    #[doc(hidden)]
    pub fn compact_day_until(
        &mut self,
        day: &str,
        step: compact::CompactStep,
    ) -> Result<CompactStats> {
        compact::run_day(self, day, Some(step))
    }
}

/// Deletes temporary files and files of batches `HEAD` does not cover.
fn recover(store: &Store, head: &Head) -> Result<()> {
    for table in Table::ALL {
        for day in store.days(table)? {
            let files = store.day_files(table, &day)?;
            let mut removed = 0usize;
            for tmp in &files.temporary {
                store::remove(tmp)?;
                removed += 1;
            }
            let dir = store.day_dir(table, &day);
            for n in files.data.iter().filter(|n| n.last > head.batch) {
                store::remove(&dir.join(n.to_string()))?;
                removed += 1;
            }
            if removed > 0 {
                tracing::info!(table = table.name(), day = %day, files = removed, "history removed files of an interrupted write");
                store::sync_dir(&dir)?;
            }
        }
    }
    Ok(())
}

/// A store without `HEAD`: new (nothing to read), or its `HEAD` lost: then
/// every data file counts as committed and the numbers come from the
/// files' metadata.
fn rebuild_head(store: &Store) -> Result<Head> {
    let mut head = Head::default();
    let mut files = 0usize;
    for table in Table::ALL {
        for day in store.days(table)? {
            let f = store.day_files(table, &day)?;
            for n in &f.data {
                files += 1;
                head.batch = head.batch.max(n.last);
                let path = store.day_dir(table, &day).join(n.to_string());
                if let Some(m) = store::read_meta(&path)? {
                    head.last_seq = head.last_seq.max(m.seq_max);
                    if let Some(o) = m.ordinal_max {
                        head.next_ordinal = head.next_ordinal.max(o + 1);
                    }
                }
            }
        }
    }
    if files > 0 {
        head.generation = 1;
        tracing::warn!(dir = %store.dir().display(), files, batch = head.batch, "history HEAD missing: rebuilt from the files");
    }
    Ok(head)
}

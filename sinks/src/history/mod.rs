//! The incident history. (Placeholder: being written; see the issue.)
//!
//! Interface the binary relies on:
//! - [`HistoryWriter`]: append incident changes, flush them as Parquet
//!   files (partitioned by day) under a directory, atomically.
//! - [`Sql`]: read-only DataFusion SQL over that directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use correlate::EventTime;

use crate::change::IncidentChange;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a flush wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub files: usize,
    pub rows: usize,
    pub bytes: u64,
}

/// Appends incident versions to the store.
#[derive(Debug)]
pub struct HistoryWriter {
    dir: PathBuf,
    #[allow(dead_code)]
    signal_sources: BTreeMap<String, String>,
    buffered: usize,
    last_seq: Option<u64>,
}

impl HistoryWriter {
    /// Opens (creating) the store at `dir`. `signal_sources` names the
    /// source(s) of each signal id (`k8s-event`, `pod,k8s-event`), for the
    /// `incident_signals` table.
    pub fn open(dir: &Path, signal_sources: BTreeMap<String, String>) -> Result<HistoryWriter> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(HistoryWriter {
            dir: dir.to_path_buf(),
            signal_sources,
            buffered: 0,
            last_seq: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The highest outbox sequence number stored (read from the files at
    /// open, then kept): changes at or below it are already in the store.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Buffers one incident version; `recorded_at` is when it was recorded
    /// (wall time in serve, event time in replay); `seq` its outbox sequence
    /// number, if it came through the outbox.
    pub fn append(&mut self, _change: &IncidentChange, _recorded_at: EventTime, seq: Option<u64>) {
        self.buffered += 1;
        if seq.is_some() {
            self.last_seq = seq.max(self.last_seq);
        }
    }

    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Writes what is buffered (one file per table and day, each written to
    /// a temporary name, synced, renamed). Nothing is visible half-written.
    pub fn flush(&mut self) -> Result<FlushStats> {
        self.buffered = 0;
        Ok(FlushStats::default())
    }
}

/// Limits of one query.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    pub timeout: Duration,
    pub memory: usize,
    pub max_rows: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: Duration::from_secs(30),
            memory: 512 << 20,
            max_rows: 100_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Not a read-only query over the store (DDL, DML, COPY, files).
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Invalid(String),
    #[error("query took longer than {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] Error),
}

/// Output formats of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Csv,
    /// A JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// Read-only SQL over a history directory.
#[derive(Debug)]
pub struct Sql {
    #[allow(dead_code)]
    dir: PathBuf,
    #[allow(dead_code)]
    limits: QueryLimits,
}

impl Sql {
    pub async fn open(dir: &Path, limits: QueryLimits) -> Result<Sql> {
        Ok(Sql {
            dir: dir.to_path_buf(),
            limits,
        })
    }

    /// Runs one read-only query; the result rendered in `format`.
    pub async fn query(&self, _sql: &str, _format: Format) -> Result<String, QueryError> {
        Err(QueryError::Invalid("not implemented yet".to_string()))
    }
}

//! Streams for machines: every change of every incident, in order, as
//! NDJSON on stdout or in a file, on a Kafka topic, or into the history.
//!
//! Design choice: a stream sink takes a *batch* of change documents (the
//! JSON the pipeline rendered once) and returns only when the whole batch
//! is durable where it goes: written and flushed (stdout), written and
//! synced (files), acknowledged by the brokers (Kafka), in a Parquet file
//! that is renamed into place (history). The outbox deletes the batch only
//! then, so a crash repeats at most the last batch: at-least-once, in order.
//! The history skips what it already holds by outbox sequence number, so it
//! stores every version exactly once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use correlate::EventTime;

use crate::change::IncidentChange;
use crate::history::HistoryWriter;
use crate::kafka::KafkaSink;
use crate::notify::DeliveryError;

/// One change in a batch: its outbox sequence number, incident id and JSON.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub seq: u64,
    pub incident: &'a str,
    pub json: &'a [u8],
}

/// Every stream sink epicenter has.
#[derive(Debug)]
pub enum StreamSink {
    Stdout,
    File(FileSink),
    Kafka(KafkaSink),
    History(HistorySink),
}

impl StreamSink {
    pub fn kind(&self) -> &'static str {
        match self {
            StreamSink::Stdout => "stdout",
            StreamSink::File(_) => "file",
            StreamSink::Kafka(_) => "kafka",
            StreamSink::History(_) => "history",
        }
    }

    /// Delivers the batch, all of it or none (as far as a retry can tell).
    pub async fn deliver(&self, batch: &[Item<'_>]) -> Result<(), DeliveryError> {
        match self {
            StreamSink::Stdout => write_lines(&mut std::io::stdout().lock(), batch)
                .map_err(|e| DeliveryError::retry(format!("writing to stdout: {e}"))),
            StreamSink::File(f) => f.append(batch),
            StreamSink::Kafka(k) => {
                let pairs: Vec<(String, Vec<u8>)> = batch
                    .iter()
                    .map(|i| (i.incident.to_string(), i.json.to_vec()))
                    .collect();
                k.deliver(&pairs)
                    .await
                    .map_err(|e| DeliveryError::retry(e.to_string()))
            }
            StreamSink::History(h) => h.store(batch).await,
        }
    }
}

fn write_lines(out: &mut impl Write, batch: &[Item<'_>]) -> std::io::Result<()> {
    for i in batch {
        out.write_all(i.json)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// NDJSON appended to a file, synced after every batch.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: Mutex<File>,
}

impl FileSink {
    pub fn open(path: &Path) -> std::io::Result<FileSink> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    fn append(&self, batch: &[Item<'_>]) -> Result<(), DeliveryError> {
        let mut f = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let mut buf = Vec::with_capacity(batch.iter().map(|i| i.json.len() + 1).sum());
        for i in batch {
            buf.extend_from_slice(i.json);
            buf.push(b'\n');
        }
        f.write_all(&buf)
            .and_then(|()| f.sync_data())
            .map_err(|e| DeliveryError::retry(format!("{}: {e}", self.path.display())))
    }
}

/// The history as a stream sink: each batch becomes Parquet files (see
/// [`crate::history`]); changes it already stores (by outbox sequence
/// number, after a crash) are skipped by the writer. A writer that stopped
/// after a failed commit is reopened, which reads what was committed.
#[derive(Clone)]
pub struct HistorySink {
    writer: Arc<Mutex<Option<HistoryWriter>>>,
    dir: PathBuf,
    signal_sources: std::collections::BTreeMap<String, String>,
    /// Wall clock for `recorded_at`, injected.
    clock: crate::outbox::Clock,
}

impl std::fmt::Debug for HistorySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistorySink")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl HistorySink {
    pub fn new(
        writer: HistoryWriter,
        signal_sources: std::collections::BTreeMap<String, String>,
        clock: crate::outbox::Clock,
    ) -> HistorySink {
        HistorySink {
            dir: writer.dir().to_path_buf(),
            writer: Arc::new(Mutex::new(Some(writer))),
            signal_sources,
            clock,
        }
    }

    async fn store(&self, batch: &[Item<'_>]) -> Result<(), DeliveryError> {
        let mut changes = Vec::with_capacity(batch.len());
        for i in batch {
            match serde_json::from_slice::<IncidentChange>(i.json) {
                Ok(c) => changes.push((i.seq, c)),
                // Rendered by the pipeline from the same type: cannot fail
                // unless the state directory was tampered with.
                Err(e) => {
                    return Err(DeliveryError::permanent(format!(
                        "change {} of incident {} is not an incident change: {e}",
                        i.seq, i.incident
                    )));
                }
            }
        }
        let sink = self.clone();
        let now = EventTime::from_micros((self.clock)());
        tokio::task::spawn_blocking(move || sink.write(&changes, now))
            .await
            .map_err(|e| DeliveryError::retry(format!("history writer task: {e}")))?
    }

    fn write(
        &self,
        changes: &[(u64, IncidentChange)],
        now: EventTime,
    ) -> Result<(), DeliveryError> {
        let mut slot = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            let w = HistoryWriter::open(&self.dir, self.signal_sources.clone())
                .map_err(|e| DeliveryError::retry(format!("history: reopening: {e}")))?;
            *slot = Some(w);
        }
        let Some(w) = slot.as_mut() else {
            return Err(DeliveryError::retry("history: no writer"));
        };
        for (seq, c) in changes {
            w.append(c, now, Some(*seq));
        }
        match w.flush() {
            Ok(_) => Ok(()),
            Err(e) => {
                if matches!(e, crate::history::Error::Poisoned { .. }) {
                    // Reopened at the next attempt: what HEAD says is stored
                    // is stored, the rest comes again from the outbox.
                    *slot = None;
                }
                Err(DeliveryError::retry(format!("history: {e}")))
            }
        }
    }
}

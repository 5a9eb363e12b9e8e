//! The journal: a write-ahead log of the deliveries a source acknowledged.
//!
//! A push source answers its sender (the webhook receiver answers
//! Alertmanager `200`), and the sender forgets what it sent. That answer
//! must mean the records will be processed even if the process dies the
//! next instant, so the source appends the delivery here and answers only
//! once it is on disk. The journal then hands it to the pipeline.
//!
//! ```text
//!  receiver ─append─► writer thread: encode, write, fdatasync (one per batch) ─► reply Ok(seq)
//!                                        └────────────► Intake (in sequence order) ─► pipeline
//!  pipeline: checkpoint covers seq N ─► covered(N) ─► segments wholly ≤ N deleted
//!  start: records after the checkpoint's N are replayed before anything new
//! ```
//!
//! Design choices:
//!
//! - **Group commit.** One thread writes; concurrent appends that arrive
//!   while it syncs are written and synced together, so the cost of an
//!   fsync is shared by every request waiting on it.
//! - **Sequence numbers, in order.** Each delivery gets the next sequence
//!   number and reaches the intake in that order, so the pipeline's
//!   checkpoint can say "everything up to N is in this state" with one
//!   number, and a restart replays exactly the rest.
//! - **Segments, deleted whole.** Records go to `journal/<first seq>.wal`
//!   files; a new one starts past [`Settings::segment_bytes`] and after a
//!   checkpoint covered all of the current one. Truncation is a file
//!   deletion, never a rewrite.
//! - **Torn tails are expected, corruption is not.** A crash can leave a
//!   partial record at the end of a segment (never acknowledged: its sync
//!   did not return); it is cut off on open. A damaged record followed by an
//!   intact one is refused with the file, the offset and how to recover.
//! - **Failures are answers.** A write or sync that fails (disk full, a
//!   read-only filesystem) is undone (the file is cut back to its last good
//!   length), refused to the callers (the receiver answers 503 with
//!   `Retry-After`) and reported by [`Journal::failure`]; while failing the
//!   writer probes the directory every second and clears the failure by
//!   itself once a write and a sync work again.
//!
//! Record format, little-endian: `magic u32 | length u32 | crc32 u32 |
//! seq u64 | payload`, where the CRC covers `seq` and the payload, and the
//! payload is the delivery in postcard.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{Delivery, Intake, StreamId, WeakIntake};

const MAGIC: u32 = u32::from_le_bytes(*b"EPJ1");
/// The largest sequence number a journal can reach (2^62: 146 000 years at
/// a million appends a second). A larger one was not written by us; with
/// it refused, the writer's `seq + 1` cannot overflow.
pub const MAX_SEQ: u64 = 1 << 62;
/// magic, length, crc, seq.
const HEADER: usize = 4 + 4 + 4 + 8;
/// The largest payload a record may claim (a delivery is bounded by the
/// receiver's body limit; this only keeps a damaged length from allocating
/// gigabytes).
const MAX_PAYLOAD: u32 = 256 << 20;
const SUFFIX: &str = "wal";
/// How often a failing journal probes the directory, and an idle one looks
/// whether it was closed.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Requests written together at most.
const MAX_BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("journal {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "journal {path}: damaged record at byte {offset} ({reason}), with intact records after it; \
         the deliveries it holds were acknowledged and are not yet in the checkpoint. \
         To start anyway, move {path} out of the journal directory (its deliveries are then lost)"
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error(
        "journal {path}: the record at byte {offset} claims sequence number {seq}, beyond what any \
         journal reaches ({MAX_SEQ}): the file is damaged. To start anyway, move {path} out of the \
         journal directory (its deliveries are then lost)"
    )]
    ImpossibleSequence {
        path: PathBuf,
        offset: u64,
        seq: u64,
    },
    #[error("journal {path}: record {seq} does not decode: {reason}")]
    Decode {
        path: PathBuf,
        seq: u64,
        reason: String,
    },
    #[error("journal: cannot start the writer thread: {0}")]
    Thread(io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an append was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Too many appends are waiting: the caller sheds load.
    #[error("the journal is saturated")]
    Full,
    /// The journal has stopped (shutdown).
    #[error("the journal is closed")]
    Closed,
    /// The write or the sync failed (disk full, read-only filesystem).
    #[error("the journal cannot write: {0}")]
    Failed(String),
}

/// Where and how the journal writes.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: PathBuf,
    /// A segment grows to about this size before the next one starts.
    pub segment_bytes: u64,
    /// Appends waiting for the writer before [`AppendError::Full`].
    pub max_waiting: usize,
}

impl Settings {
    pub fn new(dir: impl Into<PathBuf>) -> Settings {
        Settings {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            max_waiting: 4096,
        }
    }
}

/// A delivery as the journal stores it.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    source: &'a str,
    stream: &'a str,
    ordered: bool,
    #[serde(borrow)]
    lines: Vec<std::borrow::Cow<'a, str>>,
}

/// The source names deliveries carry (`Delivery::source` is static).
fn static_source(name: &str) -> &'static str {
    match name {
        super::alertmanager::SOURCE => super::alertmanager::SOURCE,
        super::kubernetes::SOURCE => super::kubernetes::SOURCE,
        super::kafka::SOURCE => super::kafka::SOURCE,
        _ => "journal",
    }
}

fn encode_record(seq: u64, d: &Delivery, out: &mut Vec<u8>) -> Result<(), String> {
    let stored = Stored {
        source: d.source,
        stream: d.stream.as_str(),
        ordered: d.ordered,
        lines: d
            .lines
            .iter()
            .map(|l| std::borrow::Cow::Borrowed(l.as_str()))
            .collect(),
    };
    let payload = postcard::to_stdvec(&stored).map_err(|e| e.to_string())?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_PAYLOAD)
        .ok_or_else(|| format!("a delivery of {} bytes is too large", payload.len()))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(&payload);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

fn decode_payload(path: &Path, seq: u64, payload: &[u8]) -> Result<Delivery> {
    let stored: Stored<'_> = postcard::from_bytes(payload).map_err(|e| Error::Decode {
        path: path.to_path_buf(),
        seq,
        reason: e.to_string(),
    })?;
    let mut d = Delivery::new(
        static_source(stored.source),
        StreamId::new(stored.stream),
        stored.lines.into_iter().map(|l| l.into_owned()).collect(),
    );
    d.ordered = stored.ordered;
    d.journal = Some(seq);
    Ok(d)
}

/// One record read from a segment, or why there is none at `offset`.
enum Next {
    Record {
        seq: u64,
        payload: Vec<u8>,
        end: u64,
    },
    /// Clean end of the file.
    End,
    /// Not a whole, intact record.
    Bad(String),
}

fn read_record(r: &mut impl Read, offset: u64) -> io::Result<Next> {
    let mut header = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match r.read(&mut header[got..])? {
            0 if got == 0 => return Ok(Next::End),
            0 => return Ok(Next::Bad(format!("a header cut short after {got} bytes"))),
            n => got += n,
        }
    }
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if word(0) != MAGIC {
        return Ok(Next::Bad("no record marker".to_string()));
    }
    let len = word(4);
    if len > MAX_PAYLOAD {
        return Ok(Next::Bad(format!("a length of {len} bytes")));
    }
    let crc = word(8);
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&header[12..20]);
    let seq = u64::from_le_bytes(seq_bytes);
    let mut payload = vec![0u8; len as usize];
    let mut got = 0;
    while got < payload.len() {
        match r.read(&mut payload[got..])? {
            0 => {
                return Ok(Next::Bad(format!(
                    "a payload cut short after {got} of {len} bytes"
                )));
            }
            n => got += n,
        }
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&seq_bytes);
    h.update(&payload);
    if h.finalize() != crc {
        return Ok(Next::Bad("a checksum mismatch".to_string()));
    }
    Ok(Next::Record {
        seq,
        payload,
        end: offset + HEADER as u64 + u64::from(len),
    })
}

/// Rewrites the checksum of every record of `segment` whose marker and
/// length are whole, up to the first that is not; how many it rewrote.
///
/// For fuzzing only: it lets mutated bytes reach the decoding of the
/// payloads that the checksums guard (`src/fuzzing.rs`). Replay never
/// reseals.
pub fn reseal(segment: &mut [u8]) -> usize {
    let mut at = 0;
    let mut sealed = 0;
    while let Some(header) = segment.get(at..at + HEADER) {
        let word =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let len = word(4);
        if word(0) != MAGIC || len > MAX_PAYLOAD {
            break;
        }
        let end = at + HEADER + len as usize;
        let Some(payload) = segment.get(at + HEADER..end) else {
            break;
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&header[12..20]);
        h.update(payload);
        let crc = h.finalize();
        segment[at + 8..at + 12].copy_from_slice(&crc.to_le_bytes());
        sealed += 1;
        at = end;
    }
    sealed
}

/// Whether an intact record starts anywhere in `bytes` past its first byte.
fn intact_record_in(bytes: &[u8]) -> bool {
    let marker = MAGIC.to_le_bytes();
    (1..bytes.len().saturating_sub(HEADER - 1)).any(|i| {
        bytes[i..].starts_with(&marker)
            && matches!(read_record(&mut &bytes[i..], 0), Ok(Next::Record { .. }))
    })
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The segments in `dir`, by first sequence number.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(SUFFIX)?.strip_suffix('.'))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.{SUFFIX}"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What opening found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The sequence number the checkpoint covers.
    pub covered: u64,
    /// Records after the covered sequence number, to replay.
    pub to_replay: u64,
    /// Bytes of a torn record cut off the end of the last segment.
    pub torn_bytes: u64,
    /// The next sequence number.
    pub next_seq: u64,
}

/// The records of the journal after a sequence number, read one by one
/// (the journal may be larger than memory after a long outage).
#[derive(Debug)]
pub struct Replay {
    segments: Vec<PathBuf>,
    after: u64,
    current: Option<(PathBuf, io::BufReader<File>, u64)>,
}

impl Iterator for Replay {
    type Item = Result<Delivery>;

    fn next(&mut self) -> Option<Result<Delivery>> {
        loop {
            if self.current.is_none() {
                if self.segments.is_empty() {
                    return None;
                }
                let path = self.segments.remove(0);
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) => return Some(Err(io_err(&path)(e))),
                };
                self.current = Some((path, io::BufReader::with_capacity(1 << 20, file), 0));
            }
            let (path, reader, offset) = self.current.as_mut()?;
            match read_record(reader, *offset) {
                Ok(Next::Record { seq, payload, end }) => {
                    *offset = end;
                    if seq > self.after {
                        return Some(decode_payload(path, seq, &payload));
                    }
                }
                // Open checked every segment and cut the torn tail.
                Ok(Next::End | Next::Bad(_)) => self.current = None,
                Err(e) => {
                    let path = path.clone();
                    self.current = None;
                    return Some(Err(io_err(&path)(e)));
                }
            }
        }
    }
}

/// Shared between the handle and the writer thread.
#[derive(Debug, Default)]
struct Shared {
    /// The reason appends fail now, if they do.
    failure: Mutex<Option<String>>,
    /// Highest sequence number a checkpoint covers.
    covered: AtomicU64,
    /// Bytes in the journal now.
    bytes: AtomicU64,
    appended: AtomicU64,
    syncs: AtomicU64,
    closed: AtomicBool,
}

struct Request {
    delivery: Delivery,
    reply: oneshot::Sender<Result<u64, AppendError>>,
}

/// The handle sources append through; cheap to clone.
#[derive(Clone, Debug)]
pub struct Journal {
    tx: mpsc::SyncSender<Request>,
    shared: Arc<Shared>,
    /// To tell a saturated pipeline before appending.
    intake: WeakIntake,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").finish_non_exhaustive()
    }
}

/// What the journal says about itself, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStatus {
    pub bytes: u64,
    pub appended: u64,
    pub syncs: u64,
    pub failing: bool,
}

impl Journal {
    /// Opens (creating) the journal in `settings.dir`: checks every
    /// segment, cuts a torn tail, deletes segments `covered` (the
    /// checkpoint's sequence number) makes useless. Returns the records to
    /// replay before anything new, and what it found; nothing is written
    /// until [`Journal::start`].
    pub fn open(settings: &Settings, covered: u64) -> Result<(Replay, Opened)> {
        let dir = &settings.dir;
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let segs = segments(dir)?;
        let mut opened = Opened {
            covered,
            ..Opened::default()
        };
        let mut last_seq: Option<u64> = None;
        let mut keep = Vec::new();
        for (i, (_, path)) in segs.iter().enumerate() {
            let is_last = i + 1 == segs.len();
            let bytes = fs::read(path).map_err(io_err(path))?;
            let mut offset = 0u64;
            let mut max_here: Option<u64> = None;
            loop {
                let mut rest = &bytes[offset as usize..];
                match read_record(&mut rest, offset).map_err(io_err(path))? {
                    Next::Record { seq, end, .. } => {
                        if seq > MAX_SEQ {
                            return Err(Error::ImpossibleSequence {
                                path: path.clone(),
                                offset,
                                seq,
                            });
                        }
                        max_here = Some(seq);
                        if seq > covered {
                            opened.to_replay += 1;
                        }
                        offset = end;
                    }
                    Next::End => break,
                    Next::Bad(reason) => {
                        // A tail no intact record follows is a write that
                        // never completed (a crash, or a failed write the
                        // writer could not cut back): never acknowledged.
                        let tail = &bytes[offset as usize..];
                        if intact_record_in(tail) {
                            return Err(Error::Corrupt {
                                path: path.clone(),
                                offset,
                                reason,
                            });
                        }
                        tracing::warn!(
                            path = %path.display(),
                            offset,
                            bytes = tail.len(),
                            %reason,
                            "journal: cutting off a torn record (never acknowledged)"
                        );
                        opened.torn_bytes = tail.len() as u64;
                        let f = File::options()
                            .write(true)
                            .open(path)
                            .map_err(io_err(path))?;
                        f.set_len(offset).map_err(io_err(path))?;
                        f.sync_all().map_err(io_err(path))?;
                        break;
                    }
                }
            }
            last_seq = last_seq.max(max_here);
            if max_here.is_some_and(|m| m <= covered) || (max_here.is_none() && !is_last) {
                fs::remove_file(path).map_err(io_err(path))?;
            } else {
                keep.push(path.clone());
            }
        }
        sync_dir(dir).map_err(io_err(dir))?;
        // `covered` comes from a checkpoint, which refuses one beyond
        // MAX_SEQ; saturating all the same, so no input can panic here.
        opened.next_seq = last_seq.unwrap_or(0).max(covered).saturating_add(1);
        Ok((
            Replay {
                segments: keep,
                after: covered,
                current: None,
            },
            opened,
        ))
    }

    /// Starts the writer thread, which appends from `opened.next_seq` on
    /// and hands every appended delivery to `intake`. Call after the replay
    /// was taken in. The thread ends when every handle is dropped.
    pub fn start(settings: Settings, opened: &Opened, intake: Intake) -> Result<Journal> {
        let (tx, rx) = mpsc::sync_channel(settings.max_waiting.max(1));
        let shared = Arc::new(Shared::default());
        shared.covered.store(opened.covered, Ordering::Relaxed);
        let writer = Writer {
            bytes: segments(&settings.dir)?
                .iter()
                .map(|(_, p)| fs::metadata(p).map_or(0, |m| m.len()))
                .sum(),
            settings,
            shared: shared.clone(),
            next_seq: opened.next_seq,
            file: None,
            buf: Vec::with_capacity(1 << 20),
        };
        shared.bytes.store(writer.bytes, Ordering::Relaxed);
        let weak = intake.downgrade();
        std::thread::Builder::new()
            .name("epicenter-journal".to_string())
            .spawn(move || writer.run(&rx, intake))
            .map_err(Error::Thread)?;
        Ok(Journal {
            tx,
            shared,
            intake: weak,
        })
    }

    /// Appends `delivery` and waits until it is on disk; its sequence
    /// number. The delivery then reaches the pipeline through the intake.
    /// A saturated pipeline (no room in the intake) is [`AppendError::Full`]
    /// at once: the sender retries rather than waits.
    pub async fn append(&self, delivery: Delivery) -> Result<u64, AppendError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(AppendError::Closed);
        }
        if self.intake.room() == 0 {
            return Err(AppendError::Full);
        }
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Request { delivery, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(AppendError::Full),
            Err(TrySendError::Disconnected(_)) => return Err(AppendError::Closed),
        }
        answer.await.unwrap_or(Err(AppendError::Closed))
    }

    /// A checkpoint now covers every record up to `seq`: segments holding
    /// nothing newer may go (the writer deletes them).
    pub fn covered(&self, seq: u64) {
        self.shared.covered.fetch_max(seq, Ordering::Relaxed);
    }

    /// Refuses appends from now on (shutdown); what was acknowledged is
    /// kept. The writer then lets go of the intake (within a second), so
    /// the pipeline's drain can end.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
    }

    /// Why appends fail now (disk full, read-only), if they do.
    pub fn failure(&self) -> Option<String> {
        self.shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn status(&self) -> JournalStatus {
        let s = &self.shared;
        JournalStatus {
            bytes: s.bytes.load(Ordering::Relaxed),
            appended: s.appended.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
            failing: self.failure().is_some(),
        }
    }
}

/// The segment being appended to.
struct Segment {
    path: PathBuf,
    file: File,
    /// Bytes known to be whole records.
    len: u64,
    /// Highest sequence number in it.
    last: Option<u64>,
}

struct Writer {
    settings: Settings,
    shared: Arc<Shared>,
    next_seq: u64,
    file: Option<Segment>,
    buf: Vec<u8>,
    bytes: u64,
}

impl Writer {
    /// Writes until every handle is gone or the journal is closed; then
    /// refuses what is still waiting and lets go of the intake.
    fn run(mut self, rx: &mpsc::Receiver<Request>, intake: Intake) {
        loop {
            let first = match rx.recv_timeout(PROBE_EVERY) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    if self.shared.closed.load(Ordering::Relaxed) {
                        break;
                    }
                    if self.failing() {
                        self.probe();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.write_batch(batch, &intake);
            self.drop_covered();
        }
        drop(intake);
        while let Ok(r) = rx.try_recv() {
            let _ = r.reply.send(Err(AppendError::Closed));
        }
        self.drop_covered();
        if let Some(seg) = self.file.take() {
            let _ = seg.file.sync_all();
        }
    }

    fn failing(&self) -> bool {
        self.shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn set_failure(&self, reason: Option<String>) {
        let mut f = self
            .shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match (&*f, &reason) {
            (None, Some(r)) => {
                tracing::error!(reason = %r, "journal: cannot write: refusing deliveries until it can")
            }
            (Some(_), None) => tracing::info!("journal: writing again"),
            _ => {}
        }
        *f = reason;
    }

    fn write_batch(&mut self, batch: Vec<Request>, intake: &Intake) {
        self.buf.clear();
        let mut accepted = Vec::with_capacity(batch.len());
        let mut seq = self.next_seq;
        for r in batch {
            match encode_record(seq, &r.delivery, &mut self.buf) {
                Ok(()) => {
                    accepted.push((seq, r));
                    seq += 1;
                }
                Err(e) => {
                    let _ = r.reply.send(Err(AppendError::Failed(e)));
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        let started = Instant::now();
        let bytes = std::mem::take(&mut self.buf);
        let written = self.append(&bytes, seq - 1);
        self.buf = bytes;
        match written {
            Ok(()) => {
                self.next_seq = seq;
                self.set_failure(None);
                self.shared.syncs.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .appended
                    .fetch_add(accepted.len() as u64, Ordering::Relaxed);
                tracing::trace!(
                    records = accepted.len(),
                    micros = started.elapsed().as_micros() as u64,
                    "journal: batch synced"
                );
                for (seq, r) in accepted {
                    let mut d = r.delivery;
                    d.journal = Some(seq);
                    let _ = r.reply.send(Ok(seq));
                    // After shutdown the pipeline is gone: the record is on
                    // disk and is replayed at the next start.
                    if intake.blocking_send(d).is_err() {
                        self.shared.closed.store(true, Ordering::Relaxed);
                    }
                }
            }
            Err(e) => {
                let reason = e.to_string();
                self.set_failure(Some(reason.clone()));
                for (_, r) in accepted {
                    let _ = r.reply.send(Err(AppendError::Failed(reason.clone())));
                }
            }
        }
    }

    /// Writes `bytes` (records up to `last`) to the current segment and
    /// syncs; on failure cuts the segment back to its last good length.
    fn append(&mut self, bytes: &[u8], last: u64) -> io::Result<()> {
        let roll = self
            .file
            .as_ref()
            .is_some_and(|s| s.len >= self.settings.segment_bytes);
        if roll {
            self.close_segment()?;
        }
        if self.file.is_none() {
            self.file = Some(self.open_segment()?);
        }
        let Some(seg) = self.file.as_mut() else {
            return Err(io::Error::other("no segment"));
        };
        let result = seg
            .file
            .write_all(bytes)
            .and_then(|()| seg.file.sync_data());
        match result {
            Ok(()) => {
                seg.len += bytes.len() as u64;
                seg.last = Some(last);
                self.bytes += bytes.len() as u64;
                self.shared.bytes.store(self.bytes, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                // Undo what may have reached the file; if even that fails,
                // the segment is abandoned (a fresh one starts next time;
                // open cuts the garbage off its end).
                let undone = seg
                    .file
                    .set_len(seg.len)
                    .and_then(|()| seg.file.seek(SeekFrom::Start(seg.len)).map(|_| ()));
                if undone.is_err() {
                    self.file = None;
                }
                Err(e)
            }
        }
    }

    fn open_segment(&self) -> io::Result<Segment> {
        let path = segment_path(&self.settings.dir, self.next_seq);
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        let len = file.seek(SeekFrom::End(0))?;
        sync_dir(&self.settings.dir)?;
        Ok(Segment {
            path,
            file,
            len,
            last: None,
        })
    }

    fn close_segment(&mut self) -> io::Result<()> {
        if let Some(seg) = self.file.take() {
            seg.file.sync_all()?;
        }
        Ok(())
    }

    /// Deletes segments a checkpoint covers entirely; the current one too,
    /// once everything in it is covered (the next append starts a new one).
    fn drop_covered(&mut self) {
        let covered = self.shared.covered.load(Ordering::Relaxed);
        if let Some(seg) = &self.file
            && seg.last.is_some_and(|l| l <= covered)
        {
            self.file = None;
        }
        let Ok(segs) = segments(&self.settings.dir) else {
            return;
        };
        let current = self.file.as_ref().map(|s| s.path.clone());
        let mut removed = false;
        for (i, (_, path)) in segs.iter().enumerate() {
            if Some(path) == current.as_ref() {
                continue;
            }
            // A segment's records end where the next one starts.
            let next_first = segs.get(i + 1).map_or(self.next_seq, |(f, _)| *f);
            if next_first.saturating_sub(1) <= covered {
                let len = fs::metadata(path).map_or(0, |m| m.len());
                if fs::remove_file(path).is_ok() {
                    self.bytes = self.bytes.saturating_sub(len);
                    removed = true;
                }
            }
        }
        if removed {
            self.shared.bytes.store(self.bytes, Ordering::Relaxed);
            let _ = sync_dir(&self.settings.dir);
        }
    }

    /// While failing: can the directory take a write and a sync again?
    fn probe(&mut self) {
        let path = self.settings.dir.join(".probe");
        let works = (|| -> io::Result<()> {
            let mut f = File::create(&path)?;
            f.write_all(&[0u8; 64 << 10])?;
            f.sync_all()?;
            Ok(())
        })();
        let _ = fs::remove_file(&path);
        self.drop_covered();
        if works.is_ok() {
            self.set_failure(None);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn delivery(n: usize) -> Delivery {
        let mut d = Delivery::new(
            super::super::alertmanager::SOURCE,
            StreamId::new("alertmanager"),
            vec![format!("{{\"n\":{n}}}")],
        );
        d.ordered = false;
        d
    }

    fn lines(d: &Delivery) -> Vec<String> {
        d.lines.clone()
    }

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        let d = delivery(7);
        encode_record(42, &d, &mut buf).unwrap();
        match read_record(&mut buf.as_slice(), 0).unwrap() {
            Next::Record { seq, payload, end } => {
                assert_eq!(seq, 42);
                assert_eq!(end, buf.len() as u64);
                let back = decode_payload(Path::new("x"), seq, &payload).unwrap();
                assert_eq!(lines(&back), lines(&d));
                assert_eq!(back.source, "alertmanager");
                assert!(!back.ordered);
                assert_eq!(back.journal, Some(42));
            }
            _ => panic!("not read back"),
        }
    }

    #[test]
    fn every_damage_is_caught_by_the_record_itself() {
        let mut buf = Vec::new();
        encode_record(1, &delivery(1), &mut buf).unwrap();
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(
                !matches!(
                    read_record(&mut bad.as_slice(), 0).unwrap(),
                    Next::Record { .. }
                ),
                "flipped byte {i} went unnoticed"
            );
        }
        for cut in 1..buf.len() {
            assert!(matches!(
                read_record(&mut &buf[..cut], 0).unwrap(),
                Next::Bad(_)
            ));
        }
    }

    #[test]
    fn reseal_makes_damaged_payloads_readable_up_to_the_first_broken_frame() {
        let mut segment = Vec::new();
        for n in 1..=3 {
            encode_record(n, &delivery(n as usize), &mut segment).unwrap();
        }
        let whole = segment.len();
        let last = segment.len() - 1;
        segment[last] ^= 0x01; // the last payload's last byte: its checksum fails
        segment.extend_from_slice(b"EPJ1 torn");
        assert_eq!(
            reseal(&mut segment),
            3,
            "three whole frames, then a torn one"
        );
        let mut r = segment.as_slice();
        let mut offset = 0;
        for _ in 0..3 {
            match read_record(&mut r, offset).unwrap() {
                Next::Record { end, .. } => offset = end,
                _ => panic!("a resealed record does not read"),
            }
        }
        assert_eq!(offset, whole as u64);
        assert_eq!(reseal(&mut b"no journal".to_vec()), 0);
    }
}

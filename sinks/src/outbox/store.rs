//! The outbox's tables in the state directory (redb: copy-on-write B-trees,
//! ACID transactions, crash-safe without a log of our own).
//!
//! | table      | key                    | value                                 |
//! |------------|------------------------|---------------------------------------|
//! | `queue`    | (target, seq)          | [`Entry`]: one delivery to make       |
//! | `pending`  | (target, incident)     | seq of its undelivered notification   |
//! | `receipts` | (target, incident)     | [`Receipt`] of the last delivered one |
//! | `told`     | incident               | [`Told`]: what people were last told  |
//! | `deferred` | incident               | [`Deferred`]: a throttled update      |
//! | `dead`     | (target, seq)          | [`DeadLetter`]                        |
//! | `sent`     | (incident, at, target) | [`Sent`]: one delivery that landed    |
//! | `docs`     | seq                    | refcount (u32 LE) + change JSON       |
//! | `meta`     | name                   | u64 (`next_seq`)                      |
//!
//! Values are postcard (small, fast, serde); payloads inside them are the
//! JSON documents sinks deliver, so nothing is re-rendered after a restart.
//! A change goes to every stream target: its JSON is stored once in `docs`
//! and the stream entries point at it (counted), so three streams do not
//! write it three times.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Error, Result};
use crate::notify::Receipt;
use crate::notify::policy::{Told, WallMicros};

pub(super) const QUEUE: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("queue");
pub(super) const PENDING: TableDefinition<'_, (&str, &str), u64> = TableDefinition::new("pending");
pub(super) const RECEIPTS: TableDefinition<'_, (&str, &str), &[u8]> =
    TableDefinition::new("receipts");
pub(super) const TOLD: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("told");
pub(super) const DEFERRED: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("deferred");
pub(super) const DEAD: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("dead");
pub(super) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
pub(super) const DOCS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("docs");
pub(super) const SENT: TableDefinition<'_, (&str, u64, &str), &[u8]> = TableDefinition::new("sent");

/// At most this many deliveries are logged per incident (the oldest go).
pub(super) const SENT_PER_INCIDENT: usize = 100;

pub(super) const NEXT_SEQ: &str = "next_seq";

/// One delivery to make to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Entry {
    pub(super) incident: String,
    /// Bumped when a newer notification is folded into this one, so a
    /// delivery of the older content does not delete the newer.
    pub(super) revision: u32,
    /// Failed attempts so far.
    pub(super) failures: u32,
    /// An attempt may have landed (timed out, or the process died in it):
    /// ask the service before sending again.
    pub(super) in_doubt: bool,
    pub(super) enqueued_at: WallMicros,
    /// Not before this time.
    pub(super) next_at: WallMicros,
    pub(super) last_error: Option<String>,
    /// JSON of a `Notification` (notifiers); empty for streams, whose
    /// `IncidentChange` is the shared document `doc`.
    pub(super) payload: Vec<u8>,
    pub(super) doc: Option<u64>,
}

/// A shared document: its reference count, then its JSON.
pub(super) fn doc_value(refs: u32, json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + json.len());
    v.extend_from_slice(&refs.to_le_bytes());
    v.extend_from_slice(json);
    v
}

pub(super) fn doc_parts(v: &[u8]) -> Result<(u32, &[u8])> {
    match v.split_first_chunk::<4>() {
        Some((refs, json)) => Ok((u32::from_le_bytes(*refs), json)),
        None => Err(Error::Corrupt {
            what: "shared document".to_string(),
            reason: "shorter than its reference count".to_string(),
        }),
    }
}

/// Drops one reference to document `seq`, deleting it with the last.
pub(super) fn release_doc(docs: &mut redb::Table<'_, u64, &'static [u8]>, seq: u64) -> Result<()> {
    let current = docs.get(seq)?.map(|v| v.value().to_vec());
    let Some(bytes) = current else {
        return Ok(());
    };
    let (refs, json) = doc_parts(&bytes)?;
    if refs <= 1 {
        docs.remove(seq)?;
    } else {
        docs.insert(seq, doc_value(refs - 1, json).as_slice())?;
    }
    Ok(())
}

/// A throttled update waiting for its time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Deferred {
    pub(super) due: WallMicros,
    /// The incident's latest change (JSON), decided again when due.
    pub(super) change: Vec<u8>,
}

/// One notification that reached its target, as the incident page lists
/// it: kept while the incident's `told` is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub target: String,
    /// `opened`, `updated`, `resolved`.
    pub event: String,
    /// The notification's number for the incident (1 = the first).
    pub sequence: u32,
    /// It edited the message an earlier one left (Slack, ntfy), rather
    /// than posting a new one.
    pub edited: bool,
    /// Found already delivered when asked after a crash: not sent again.
    pub recovered: bool,
    pub at: WallMicros,
}

/// Logs `sent` for `incident`, dropping the oldest beyond
/// [`SENT_PER_INCIDENT`].
pub(super) fn log_sent(
    table: &mut redb::Table<'_, (&'static str, u64, &'static str), &'static [u8]>,
    incident: &str,
    sent: &Sent,
) -> Result<()> {
    let at = u64::try_from(sent.at).unwrap_or(0);
    table.insert(
        (incident, at, sent.target.as_str()),
        encode(sent)?.as_slice(),
    )?;
    let keys: Vec<(u64, String)> = {
        let mut v = Vec::new();
        for item in table.range((incident, 0, "")..=(incident, u64::MAX, "\u{10FFFF}"))? {
            let (k, _) = item?;
            let (_, at, target) = k.value();
            v.push((at, target.to_string()));
        }
        v
    };
    for (at, target) in keys
        .iter()
        .take(keys.len().saturating_sub(SENT_PER_INCIDENT))
    {
        table.remove((incident, *at, target.as_str()))?;
    }
    Ok(())
}

/// The deliveries logged for `incident`, oldest first.
pub(super) fn sent_for(txn: &redb::ReadTransaction, incident: &str) -> Result<Vec<Sent>> {
    let table = txn.open_table(SENT)?;
    let mut v = Vec::new();
    for item in table.range((incident, 0, "")..=(incident, u64::MAX, "\u{10FFFF}"))? {
        let (_, val) = item?;
        v.push(decode(val.value(), "sent")?);
    }
    Ok(v)
}

/// Forgets the deliveries logged for `incident`.
pub(super) fn forget_sent(
    table: &mut redb::Table<'_, (&'static str, u64, &'static str), &'static [u8]>,
    incident: &str,
) -> Result<()> {
    table.retain_in(
        (incident, 0, "")..=(incident, u64::MAX, "\u{10FFFF}"),
        |_, _| false,
    )?;
    Ok(())
}

/// A delivery given up on, kept for people to look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub target: String,
    pub seq: u64,
    pub incident: String,
    pub failures: u32,
    pub enqueued_at: WallMicros,
    pub dead_at: WallMicros,
    pub error: String,
    /// The JSON that was not delivered.
    pub payload: Vec<u8>,
}

pub(super) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(|e| Error::Encode(e.to_string()))
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Corrupt {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

pub(super) fn decode_receipt(bytes: &[u8]) -> Result<Receipt> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        what: "receipt".to_string(),
        reason: e.to_string(),
    })
}

pub(super) fn decode_told(bytes: &[u8]) -> Result<Told> {
    decode(bytes, "told")
}

/// Creates every table, so readers never meet a missing one.
pub(super) fn create_tables(db: &redb::Database) -> Result<()> {
    let txn = db.begin_write()?;
    {
        txn.open_table(QUEUE)?;
        txn.open_table(PENDING)?;
        txn.open_table(RECEIPTS)?;
        txn.open_table(TOLD)?;
        txn.open_table(DEFERRED)?;
        txn.open_table(DEAD)?;
        txn.open_table(META)?;
        txn.open_table(DOCS)?;
        txn.open_table(SENT)?;
    }
    txn.commit()?;
    Ok(())
}

/// The first entries of `target`'s queue, in order.
pub(super) fn head(db: &redb::Database, target: &str, n: usize) -> Result<Vec<(u64, Entry)>> {
    let txn = db.begin_read()?;
    let queue = txn.open_table(QUEUE)?;
    let docs = txn.open_table(DOCS)?;
    let mut out = Vec::new();
    for item in queue.range((target, 0)..=(target, u64::MAX))?.take(n) {
        let (k, v) = item?;
        let mut e: Entry = decode(v.value(), "queue entry")?;
        if let Some(d) = e.doc {
            // The shared change document, materialised for delivery.
            if let Some(v) = docs.get(d)? {
                e.payload = doc_parts(v.value())?.1.to_vec();
            }
        }
        out.push((k.value().1, e));
    }
    Ok(out)
}

/// Entries and the oldest enqueue time, per target; and the highest seq
/// anywhere (queue or dead letters).
pub(super) struct Census {
    pub(super) pending: Vec<(String, u64, Option<WallMicros>)>,
    pub(super) dead: Vec<(String, u64)>,
    pub(super) max_seq: Option<u64>,
}

pub(super) fn census(db: &redb::Database) -> Result<Census> {
    let txn = db.begin_read()?;
    let queue = txn.open_table(QUEUE)?;
    let dead = txn.open_table(DEAD)?;
    let docs = txn.open_table(DOCS)?;
    let mut pending: Vec<(String, u64, Option<WallMicros>)> = Vec::new();
    let mut max_seq: Option<u64> = None;
    for item in queue.iter()? {
        let (k, v) = item?;
        let (target, seq) = k.value();
        max_seq = max_seq.max(Some(seq));
        match pending.last_mut() {
            Some((t, n, _)) if t == target => *n += 1,
            _ => {
                let e: Entry = decode(v.value(), "queue entry")?;
                pending.push((target.to_string(), 1, Some(e.enqueued_at)));
            }
        }
    }
    let mut dead_counts: Vec<(String, u64)> = Vec::new();
    for item in dead.iter()? {
        let (k, _) = item?;
        let (target, seq) = k.value();
        max_seq = max_seq.max(Some(seq));
        match dead_counts.last_mut() {
            Some((t, n)) if t == target => *n += 1,
            _ => dead_counts.push((target.to_string(), 1)),
        }
    }
    if let Some(last) = docs.last()? {
        max_seq = max_seq.max(Some(last.0.value()));
    }
    Ok(Census {
        pending,
        dead: dead_counts,
        max_seq,
    })
}

pub(super) fn read_meta(db: &redb::Database, key: &str) -> Result<Option<u64>> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    Ok(meta.get(key)?.map(|v| v.value()))
}

pub(super) fn dead_letters(
    db: &redb::Database,
    target: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>> {
    let txn = db.begin_read()?;
    let dead = txn.open_table(DEAD)?;
    let mut out = Vec::new();
    for item in dead
        .range((target, 0)..=(target, u64::MAX))?
        .rev()
        .take(limit)
    {
        let (_, v) = item?;
        out.push(decode(v.value(), "dead letter")?);
    }
    Ok(out)
}

/// The receipt `target` holds for `incident`.
pub(super) fn receipt(
    db: &redb::Database,
    target: &str,
    incident: &str,
) -> Result<Option<Receipt>> {
    let txn = db.begin_read()?;
    let receipts = txn.open_table(RECEIPTS)?;
    receipts
        .get((target, incident))?
        .map(|v| decode_receipt(v.value()))
        .transpose()
}

/// The earliest due time of a deferred update.
pub(super) fn next_due(db: &redb::Database) -> Result<Option<WallMicros>> {
    let txn = db.begin_read()?;
    let deferred = txn.open_table(DEFERRED)?;
    let mut due: Option<WallMicros> = None;
    for item in deferred.iter()? {
        let (_, v) = item?;
        let d: Deferred = decode(v.value(), "deferred update")?;
        due = Some(due.map_or(d.due, |x: WallMicros| x.min(d.due)));
    }
    Ok(due)
}

//! The delivery task of one target: take the head of its queue, deliver,
//! then delete it, or schedule the retry, or dead-letter it.
//!
//! A notification's entry is marked *in doubt* durably before its notifier
//! is called, when the notifier can tell afterwards whether it landed
//! (Slack): a crash or a timeout in the call then leads to
//! [`Notifier::recover`] before anything is sent again, so a restart never
//! posts a second message for the same update. A notification's
//! acknowledgement (and the receipt it leaves) is committed durably, so a
//! crash after it never sends it again; a crash between the service's
//! answer and that commit leaves the entry in doubt (Slack, recovered) or
//! sends it again where that is harmless (ntfy replaces by sequence id;
//! webhooks carry the same `Idempotency-Key`). Stream acknowledgements
//! commit without fsync: streams are at-least-once and the history skips
//! by sequence number.

use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redb::{Durability, ReadableTable};

use super::store::{self, DeadLetter, Entry};
use super::{Inner, Result, Sink, Tables, TargetState};
use crate::notify::{DeliveryError, Event, Notification, Notifier, Receipt};
use crate::stream::{Item, StreamSink};

/// The longest a task sleeps before looking again (new work wakes it
/// sooner; a clock moved by a test is noticed within this).
const POLL: Duration = Duration::from_secs(1);

pub(super) async fn run(inner: Arc<Inner>, i: usize) {
    let target = &inner.targets[i];
    loop {
        if inner.stopped.load(Ordering::Relaxed) {
            return;
        }
        let woken = target.wake.notified();
        let head = inner
            .store
            .get()
            .and_then(|db| store::head(&db, &target.name, target.max_batch));
        inner.observe(&head);
        let head = match head {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(target_name = %target.name, error = %e, "outbox: cannot read the queue");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        {
            let mut oldest = target
                .counters
                .oldest
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *oldest = head.first().map(|(_, e)| e.enqueued_at);
        }
        let Some((_, first)) = head.first() else {
            if inner.draining.load(Ordering::Relaxed) {
                return;
            }
            let _ = tokio::time::timeout(POLL, woken).await;
            continue;
        };
        let now = (inner.clock)();
        if first.next_at > now {
            let wait = Duration::from_micros(u64::try_from(first.next_at - now).unwrap_or(0));
            tokio::time::sleep(wait.min(POLL)).await;
            continue;
        }
        let draining = inner.draining.load(Ordering::Relaxed);
        if let Sink::Stream(_) = target.sink
            && !draining
            && head.len() < target.max_batch
            && !target.linger.is_zero()
        {
            let age = Duration::from_micros(u64::try_from(now - first.enqueued_at).unwrap_or(0));
            if age < target.linger {
                let _ = tokio::time::timeout((target.linger - age).min(POLL), woken).await;
                continue;
            }
        }
        if let Some(limiter) = &target.limiter {
            limiter.until_ready().await;
        }
        let outcome = match &target.sink {
            Sink::Stream(s) => deliver_stream(&inner, i, s, head).await,
            Sink::Notify(n) => match head.into_iter().next() {
                Some((seq, entry)) => deliver_notification(&inner, i, n, seq, entry).await,
                None => Ok(()),
            },
        };
        inner.observe(&outcome);
        if let Err(e) = outcome {
            tracing::error!(target_name = %target.name, error = %e, "outbox: cannot record a delivery");
            tokio::time::sleep(POLL).await;
        }
    }
}

async fn deliver_stream(
    inner: &Arc<Inner>,
    i: usize,
    sink: &StreamSink,
    head: Vec<(u64, Entry)>,
) -> Result<()> {
    let now = (inner.clock)();
    let ready: Vec<&(u64, Entry)> = head.iter().take_while(|(_, e)| e.next_at <= now).collect();
    // After a permanent failure the head goes alone, so only the entry at
    // fault is dead-lettered.
    let ready = if head.first().is_some_and(|(_, e)| e.failures > 0) {
        &ready[..ready.len().min(1)]
    } else {
        &ready[..]
    };
    let items: Vec<Item<'_>> = ready
        .iter()
        .map(|(seq, e)| Item {
            seq: *seq,
            incident: &e.incident,
            json: &e.payload,
        })
        .collect();
    let result = sink.deliver(&items).await;
    let seqs: Vec<u64> = ready.iter().map(|(s, _)| *s).collect();
    let first = ready.first().map(|(s, e)| (*s, e.clone()));
    let inner2 = inner.clone();
    blocking(move || match (result, first) {
        (Ok(()), _) => inner2.ack_stream(i, &seqs),
        (Err(e), Some((seq, entry))) => inner2.fail(i, seq, entry, &e, false),
        (Err(_), None) => Ok(()),
    })
    .await
}

async fn deliver_notification(
    inner: &Arc<Inner>,
    i: usize,
    notifier: &Notifier,
    seq: u64,
    entry: Entry,
) -> Result<()> {
    let target = &inner.targets[i];
    let n: Notification = match serde_json::from_slice(&entry.payload) {
        Ok(n) => n,
        Err(e) => {
            let inner2 = inner.clone();
            let err = DeliveryError::permanent(format!("unreadable notification: {e}"));
            return blocking(move || inner2.fail(i, seq, entry, &err, false)).await;
        }
    };
    let receipt = store::receipt(&*inner.store.get()?, &target.name, &entry.incident)?;
    // What the delivery log will say of it once it lands.
    let note = Note {
        event: n.event,
        sequence: n.sequence,
        edited: matches!(receipt, Some(Receipt::Slack { .. } | Receipt::Ntfy { .. })),
        recovered: false,
    };
    if entry.in_doubt && notifier.needs_recovery() {
        match notifier.recover(&n, receipt.as_ref()).await {
            Ok(Some(found)) => {
                tracing::info!(target_name = %target.name, incident = %entry.incident, sequence = n.sequence, "in-doubt notification found delivered: not sent again");
                target.counters.recovered.fetch_add(1, Ordering::Relaxed);
                let inner2 = inner.clone();
                let note = Note {
                    recovered: true,
                    ..note
                };
                return blocking(move || inner2.ack_notification(i, seq, &entry, &found, note))
                    .await;
            }
            Ok(None) => {}
            // Slack cannot be asked now: the doubt stays, ask again later.
            Err(e) => {
                let inner2 = inner.clone();
                return blocking(move || inner2.fail(i, seq, entry, &e, true)).await;
            }
        }
    }
    if notifier.needs_recovery() {
        let inner2 = inner.clone();
        let marked = entry.clone();
        blocking(move || inner2.mark_in_doubt(i, seq, marked)).await?;
    }
    let result = notifier.deliver(&n, receipt.as_ref()).await;
    let inner2 = inner.clone();
    blocking(move || match result {
        Ok(r) => inner2.ack_notification(i, seq, &entry, &r, note),
        Err(e) => {
            if let Some(p) = e.progress() {
                inner2.keep_receipt(i, &entry.incident, p)?;
            }
            inner2.fail(i, seq, entry, &e, false)
        }
    })
    .await
}

/// What a delivered notification was, for the delivery log.
#[derive(Debug, Clone, Copy)]
struct Note {
    event: Event,
    sequence: u32,
    edited: bool,
    recovered: bool,
}

/// While the store fails (disk full), tries to reopen it every second, so
/// the outbox resumes by itself when space returns.
pub(super) async fn heal(inner: Arc<Inner>) {
    loop {
        let drained = inner.drain_wake.notified();
        tokio::pin!(drained);
        drained.as_mut().enable();
        if inner.draining.load(Ordering::Relaxed) || inner.stopped.load(Ordering::Relaxed) {
            return;
        }
        if tokio::time::timeout(POLL, drained).await.is_ok() {
            return;
        }
        if !inner.failing() {
            continue;
        }
        let inner2 = inner.clone();
        match tokio::task::spawn_blocking(move || inner2.reopen()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => tracing::debug!("outbox: store still in use, reopening later"),
            Ok(Err(e)) => tracing::warn!(error = %e, "outbox: cannot reopen the store yet"),
            Err(e) => tracing::error!(error = %e, "outbox: reopen task failed"),
        }
    }
}

/// Runs a store write off the async threads.
async fn blocking(f: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| super::Error::Task(e.to_string()))?
}

/// Releases throttled updates as they fall due.
pub(super) async fn release_deferred(inner: Arc<Inner>) {
    loop {
        if inner.draining.load(Ordering::Relaxed) || inner.stopped.load(Ordering::Relaxed) {
            return;
        }
        let wait = match inner.store.get().and_then(|db| store::next_due(&db)) {
            Ok(Some(due)) => {
                let now = (inner.clock)();
                Duration::from_micros(u64::try_from(due - now).unwrap_or(0)).min(POLL)
            }
            Ok(None) => POLL,
            Err(e) => {
                tracing::error!(error = %e, "outbox: cannot read deferred updates");
                POLL
            }
        };
        if !wait.is_zero() {
            let woken = inner.deferred_wake.notified();
            let _ = tokio::time::timeout(wait, woken).await;
            continue;
        }
        let inner2 = inner.clone();
        if let Err(e) = blocking(move || inner2.release_due()).await {
            tracing::error!(error = %e, "outbox: cannot release deferred updates");
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Inner {
    fn target(&self, i: usize) -> &TargetState {
        &self.targets[i]
    }

    fn ack_stream(&self, i: usize, seqs: &[u64]) -> Result<()> {
        let target = self.target(i);
        let db = self.store.get()?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)?;
        {
            let mut queue = txn.open_table(store::QUEUE)?;
            let mut docs = txn.open_table(store::DOCS)?;
            for &seq in seqs {
                let removed = queue
                    .remove((target.name.as_str(), seq))?
                    .map(|v| store::decode::<Entry>(v.value(), "queue entry"))
                    .transpose()?;
                if let Some(d) = removed.and_then(|e| e.doc) {
                    store::release_doc(&mut docs, d)?;
                }
            }
        }
        txn.commit()?;
        let n = seqs.len() as u64;
        target.counters.delivered.fetch_add(n, Ordering::Relaxed);
        target.counters.pending.fetch_sub(
            n.min(target.counters.pending.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        target.room.notify_waiters();
        Ok(())
    }

    /// Durably marks an entry in doubt before its notifier is called.
    fn mark_in_doubt(&self, i: usize, seq: u64, entry: Entry) -> Result<()> {
        let target = self.target(i);
        let db = self.store.get()?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut queue = txn.open_table(store::QUEUE)?;
            let current = queue
                .get((target.name.as_str(), seq))?
                .map(|v| store::decode::<Entry>(v.value(), "queue entry"))
                .transpose()?;
            let mut e = current.unwrap_or(entry);
            e.in_doubt = true;
            queue.insert((target.name.as_str(), seq), store::encode(&e)?.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    fn keep_receipt(&self, i: usize, incident: &str, receipt: &Receipt) -> Result<()> {
        let target = self.target(i);
        let json = serde_json::to_vec(receipt).map_err(|e| super::Error::Encode(e.to_string()))?;
        let db = self.store.get()?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut receipts = txn.open_table(store::RECEIPTS)?;
            receipts.insert((target.name.as_str(), incident), json.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The notification is delivered: keep what it left, log it, and
    /// delete the entry unless a newer notification was folded into it
    /// meanwhile.
    fn ack_notification(
        &self,
        i: usize,
        seq: u64,
        delivered: &Entry,
        receipt: &Receipt,
        note: Note,
    ) -> Result<()> {
        let closes = note.event == Event::Resolved;
        let target = self.target(i);
        let name = target.name.as_str();
        let id = delivered.incident.as_str();
        let json = serde_json::to_vec(receipt).map_err(|e| super::Error::Encode(e.to_string()))?;
        let mut removed = false;
        let db = self.store.get()?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut t = Tables::open(&txn)?;
            let sent = store::Sent {
                target: name.to_string(),
                event: note.event.as_str().to_string(),
                sequence: note.sequence,
                edited: note.edited,
                recovered: note.recovered,
                at: (self.clock)(),
            };
            store::log_sent(&mut t.sent, id, &sent)?;
            let current = t
                .queue
                .get((name, seq))?
                .map(|v| store::decode::<Entry>(v.value(), "queue entry"))
                .transpose()?;
            match current {
                Some(mut e) if e.revision != delivered.revision => {
                    // Newer content arrived during the delivery: it goes next,
                    // as an update of what was just delivered.
                    e.failures = 0;
                    e.in_doubt = false;
                    e.last_error = None;
                    t.queue.insert((name, seq), store::encode(&e)?.as_slice())?;
                    t.receipts.insert((name, id), json.as_slice())?;
                }
                _ => {
                    t.queue.remove((name, seq))?;
                    if t.pending.get((name, id))?.map(|v| v.value()) == Some(seq) {
                        t.pending.remove((name, id))?;
                    }
                    if closes {
                        t.receipts.remove((name, id))?;
                    } else {
                        t.receipts.insert((name, id), json.as_slice())?;
                    }
                    removed = true;
                }
            }
        }
        txn.commit()?;
        target.counters.delivered.fetch_add(1, Ordering::Relaxed);
        if removed {
            let c = &target.counters.pending;
            c.fetch_sub(1.min(c.load(Ordering::Relaxed)), Ordering::Relaxed);
            target.room.notify_waiters();
        }
        tracing::debug!(target_name = %name, incident = %id, seq, "delivered");
        Ok(())
    }

    /// A failed attempt: schedule the retry, or give up. `still_in_doubt`:
    /// an earlier attempt may have landed and nobody could tell yet (the
    /// failure was in asking), so the retry must ask first.
    fn fail(
        &self,
        i: usize,
        seq: u64,
        entry: Entry,
        error: &DeliveryError,
        still_in_doubt: bool,
    ) -> Result<()> {
        let target = self.target(i);
        let name = target.name.as_str();
        let now = (self.clock)();
        target
            .counters
            .failed_attempts
            .fetch_add(1, Ordering::Relaxed);
        *target
            .counters
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
        let db = self.store.get()?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)?;
        let dead;
        {
            let mut t = Tables::open(&txn)?;
            // The stored entry (it may have gained newer content meanwhile).
            let mut e = t
                .queue
                .get((name, seq))?
                .map(|v| store::decode::<Entry>(v.value(), "queue entry"))
                .transpose()?
                .unwrap_or(entry);
            e.failures = e.failures.saturating_add(1);
            e.last_error = Some(error.to_string());
            let (retry_after, in_doubt) = match error {
                DeliveryError::Retry {
                    retry_after,
                    in_doubt,
                    ..
                } => (*retry_after, *in_doubt),
                DeliveryError::Permanent { .. } => (None, false),
            };
            e.in_doubt = in_doubt || still_in_doubt;
            let too_long = target.retry.give_up_after.is_some_and(|g| {
                now.saturating_sub(e.enqueued_at)
                    >= i64::try_from(g.as_micros()).unwrap_or(i64::MAX)
            });
            dead = error.is_permanent() || too_long;
            if dead {
                t.queue.remove((name, seq))?;
                if t.pending
                    .get((name, e.incident.as_str()))?
                    .map(|v| v.value())
                    == Some(seq)
                {
                    t.pending.remove((name, e.incident.as_str()))?;
                }
                let letter = DeadLetter {
                    target: name.to_string(),
                    seq,
                    incident: e.incident.clone(),
                    failures: e.failures,
                    enqueued_at: e.enqueued_at,
                    dead_at: now,
                    error: error.to_string(),
                    payload: match e.doc {
                        Some(d) => {
                            let json = t
                                .docs
                                .get(d)?
                                .map(|v| v.value().to_vec())
                                .unwrap_or_default();
                            store::release_doc(&mut t.docs, d)?;
                            store::doc_parts(&json)
                                .map(|(_, j)| j.to_vec())
                                .unwrap_or_default()
                        }
                        None => e.payload.clone(),
                    },
                };
                t.dead
                    .insert((name, seq), store::encode(&letter)?.as_slice())?;
                tracing::error!(
                    target_name = %name,
                    incident = %e.incident,
                    seq,
                    failures = e.failures,
                    permanent = error.is_permanent(),
                    error = %error,
                    "delivery given up: dead-lettered"
                );
            } else {
                let wait = target.retry.delay(e.failures, retry_after);
                e.next_at = now.saturating_add(i64::try_from(wait.as_micros()).unwrap_or(i64::MAX));
                t.queue.insert((name, seq), store::encode(&e)?.as_slice())?;
                tracing::warn!(
                    target_name = %name,
                    incident = %e.incident,
                    seq,
                    failures = e.failures,
                    in_doubt,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %error,
                    "delivery failed"
                );
            }
        }
        txn.commit()?;
        if dead {
            let c = &target.counters;
            c.pending
                .fetch_sub(1.min(c.pending.load(Ordering::Relaxed)), Ordering::Relaxed);
            c.dead.fetch_add(1, Ordering::Relaxed);
            c.dead_lettered.fetch_add(1, Ordering::Relaxed);
            target.room.notify_waiters();
        }
        Ok(())
    }
}

//! The engine thread: deliveries in, incident changes out.
//!
//! One thread owns the decoder and the engine (both synchronous and
//! single-owner by design) and runs this loop on its own: take a delivery,
//! decode its lines exactly as `replay` does, push the events, move the
//! per-stream watermark, send the changes to the outbox. A tick every
//! quarter second moves the watermark with the wall clock (idle streams),
//! publishes metrics and, every checkpoint interval, flushes the outbox and
//! writes a checkpoint, after which source positions may be committed.
//!
//! On shutdown the loop keeps taking deliveries until every source has let
//! go of the intake (or the grace period ends), then flushes and writes a
//! final checkpoint: nothing accepted is dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use correlate::incident::Change;
use correlate::{Engine, Event, EventTime, IncidentReport, IncidentUpdate, Origin};
use ingest::source::{Delivery, Position};
use ingest::{Decoded, Decoder};
use rustc_hash::FxHashMap;
use sinks::change::{ChangeKind, IncidentChange};
use sinks::outbox::{Outbox, Outgoing};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::checkpoint::{Checkpoint, StateDir};
use super::metrics::{ChangeLabels, EngineView, Metrics, SourceLabels};
use super::watermark::Watermarks;
use crate::replay::recycle;

const TICK: Duration = Duration::from_millis(250);
/// How long shutdown waits for sources to hand over what they hold.
const DRAIN_GRACE: Duration = Duration::from_secs(20);
/// Decode errors logged one by one before only every 1000th is.
const LOGGED_ERRORS: u64 = 20;

/// The wall clock, in event-time units; injected so tests can drive it.
pub(crate) type Clock = Box<dyn Fn() -> EventTime + Send>;

pub(crate) fn wall_clock() -> Clock {
    Box::new(|| {
        let us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        EventTime::from_micros(us)
    })
}

/// Kafka positions processed, per (topic, partition).
pub(crate) type Positions = BTreeMap<(String, i32), i64>;

pub(crate) fn positions_list(p: &Positions) -> Vec<Position> {
    p.iter()
        .map(|((topic, partition), offset)| Position {
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
        })
        .collect()
}

#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) checkpoint_interval: Duration,
}

pub(crate) struct Pipeline {
    decoder: Decoder,
    engine: Engine,
    watermarks: Watermarks,
    metrics: Arc<Metrics>,
    outbox: Outbox,
    state: StateDir,
    /// Positions processed, and those restored (records at or below them
    /// were already in the checkpointed state).
    positions: Positions,
    restored: Positions,
    committed: watch::Sender<Vec<Position>>,
    clock: Clock,
    settings: Settings,
    records: u64,
    decode_errors: u64,
    events: Vec<Event<'static>>,
    /// The version of each incident last sent out.
    emitted: FxHashMap<usize, u32>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("records", &self.records)
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        checkpoint: Checkpoint,
        watermarks: Watermarks,
        metrics: Arc<Metrics>,
        outbox: Outbox,
        state: StateDir,
        committed: watch::Sender<Vec<Position>>,
        clock: Clock,
        settings: Settings,
    ) -> Pipeline {
        let mut watermarks = watermarks;
        let now = clock();
        watermarks.resume_from(
            checkpoint.engine.watermark(),
            checkpoint.engine.max_time(),
            now,
        );
        // What the checkpoint holds was sent before it was written.
        let emitted = checkpoint
            .engine
            .store()
            .iter()
            .enumerate()
            .map(|(i, inc)| (i, inc.version))
            .collect();
        Pipeline {
            emitted,
            decoder: checkpoint.decoder,
            engine: checkpoint.engine,
            watermarks,
            metrics,
            outbox,
            state,
            restored: checkpoint.positions.clone(),
            positions: checkpoint.positions,
            committed,
            clock,
            settings,
            records: 0,
            decode_errors: 0,
            events: Vec::with_capacity(8),
        }
    }

    /// Runs until the intake is closed and drained (after `cancel`), then
    /// writes the final checkpoint. Err if that checkpoint could not be made.
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Delivery>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut next_checkpoint = Instant::now() + self.settings.checkpoint_interval;
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        loop {
            let grace = async {
                match drain_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                d = rx.recv() => match d {
                    Some(d) => self.handle(d).await,
                    None => break,
                },
                _ = tick.tick() => {
                    self.on_tick().await;
                    if Instant::now() >= next_checkpoint {
                        self.checkpoint().await;
                        next_checkpoint = Instant::now() + self.settings.checkpoint_interval;
                    }
                }
                () = cancel.cancelled(), if drain_deadline.is_none() => {
                    tracing::info!("draining: waiting for sources to hand over what they hold");
                    drain_deadline = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                }
                () = grace => {
                    tracing::warn!("drain grace period over: closing the intake");
                    rx.close();
                    drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                }
            }
        }
        self.on_tick().await;
        if self.checkpoint().await {
            tracing::info!(records = self.records, "drained and checkpointed");
            Ok(())
        } else {
            anyhow::bail!("the final checkpoint could not be written (see the log)")
        }
    }

    async fn handle(&mut self, d: Delivery) {
        let now = (self.clock)();
        let updates = self.ingest(&d, now);
        let batch = self.render(&updates);
        if !batch.is_empty() {
            let latency = d.received.elapsed();
            for _ in &batch {
                self.metrics.observe_latency(latency);
            }
        }
        self.deliver(batch).await;
    }

    /// Hands changes to the outbox. A store that fails (a full disk) is
    /// retried until it works: the pipeline stalls, the intake fills, and
    /// sources shed load at the edge; nothing is dropped.
    async fn deliver(&self, batch: Vec<Outgoing>) {
        if batch.is_empty() {
            return;
        }
        self.outbox.wait_for_room().await;
        let mut wait = Duration::from_millis(100);
        while let Err(e) = self.outbox.enqueue(&batch) {
            self.metrics.outbox_errors.inc();
            tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot queue incident changes in the outbox");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    async fn on_tick(&mut self) {
        let now = (self.clock)();
        let watermark = self.watermarks.watermark(now);
        let updates = self.engine.advance(watermark);
        let mut batch = self.render(&updates);
        batch.extend(self.refresh());
        self.deliver(batch).await;
        self.publish(now);
    }

    /// Decodes and correlates one delivery; the incident changes it caused.
    fn ingest(&mut self, d: &Delivery, now: EventTime) -> Vec<IncidentUpdate> {
        if let Some(p) = &d.position
            && self
                .restored
                .get(&(p.topic.clone(), p.partition))
                .is_some_and(|&done| p.offset <= done)
        {
            tracing::debug!(stream = %d.stream, offset = p.offset, "already in the restored state: skipped");
            return Vec::new();
        }
        let labels = SourceLabels {
            source: d.source.to_string(),
        };
        self.metrics
            .records
            .get_or_create(&labels)
            .inc_by(d.lines.len() as u64);
        // The source's decode-error series exists (0) from its first
        // records on, so rates and ratios over it work before any error.
        let decode_errors = self.metrics.decode_errors.get_or_create(&labels).clone();
        let mut updates = Vec::new();
        let mut events: Vec<Event<'static>> = std::mem::take(&mut self.events);
        for (i, line) in d.lines.iter().enumerate() {
            self.records += 1;
            let origin = Origin {
                file: 0,
                line: self.records,
            };
            let mut evs = recycle(std::mem::take(&mut events));
            let result = self
                .decoder
                .interpret(ingest::parse(line), origin, &mut evs);
            match result {
                Ok(Decoded::Duplicate { time } | Decoded::Unchanged { time }) => {
                    updates.extend(self.engine.observe(time));
                    self.watermarks.observe(&d.stream, d.ordered, time, now);
                }
                Ok(_) => {
                    for ev in &evs {
                        updates.extend(self.engine.push(ev));
                        self.watermarks.observe(&d.stream, d.ordered, ev.time, now);
                    }
                }
                Err(e) => {
                    self.decode_errors += 1;
                    decode_errors.inc();
                    if self.decode_errors <= LOGGED_ERRORS
                        || self.decode_errors.is_multiple_of(1000)
                    {
                        tracing::warn!(source = d.source, stream = %d.stream, record = i, position = ?d.position, error = %e, total = self.decode_errors, "record skipped");
                    }
                }
            }
            events = recycle(evs);
        }
        self.events = events;
        if let Some(p) = &d.position {
            self.positions
                .insert((p.topic.clone(), p.partition), p.offset);
        }
        updates.extend(self.engine.advance(self.watermarks.watermark(now)));
        updates
    }

    /// One line per changed incident (the latest state), counted by rule.
    /// An announced incident folded into another gets a last `merged` line
    /// naming the survivor, so a sink updating messages in place can close it.
    fn render(&mut self, updates: &[IncidentUpdate]) -> Vec<Outgoing> {
        let store = self.engine.store();
        let mut latest: Vec<(usize, Change)> = Vec::new();
        let mut merged: Vec<usize> = Vec::new();
        for u in updates {
            if u.change == Change::Merged {
                let folded = store.get(u.incident);
                if folded.status != correlate::Status::Pending && !merged.contains(&u.incident) {
                    merged.push(u.incident);
                }
                continue;
            }
            let root = store.find(u.incident);
            match latest.iter_mut().find(|(i, _)| *i == root) {
                Some((_, c)) if *c == Change::Opened => {}
                Some((_, c)) => *c = u.change,
                None => latest.push((root, u.change)),
            }
        }
        let mut changes = Changes {
            metrics: &self.metrics,
            emitted: &mut self.emitted,
            out: Vec::with_capacity(latest.len() + merged.len()),
        };
        for idx in merged {
            let survivor = store.get(store.find(idx));
            changes.push(idx, store.get(idx), Change::Merged, Some(&survivor.id));
        }
        for (idx, change) in latest {
            let inc = store.get(idx);
            if inc.is_reported() {
                changes.push(idx, inc, change, None);
            }
        }
        changes.out
    }

    /// Incidents that changed without a change of their own (more records
    /// on known members: the signal count, last_seen), sent at most once a
    /// tick.
    fn refresh(&mut self) -> Vec<Outgoing> {
        let store = self.engine.store();
        let mut changes = Changes {
            metrics: &self.metrics,
            emitted: &mut self.emitted,
            out: Vec::new(),
        };
        for (idx, inc) in store.iter().enumerate() {
            if inc.is_reported() && changes.emitted.get(&idx) != Some(&inc.version) {
                changes.push(idx, inc, Change::Updated, None);
            }
        }
        changes.out
    }

    fn publish(&self, now: EventTime) {
        let watermark = self.engine.watermark();
        let lag = if watermark == EventTime::MIN {
            0.0
        } else {
            now.since(watermark).as_secs_f64()
        };
        self.metrics.publish(EngineView {
            stats: self.engine.stats().clone(),
            gauges: self.engine.gauges(),
            signals: self.engine.signal_counts(),
            watermark_lag: lag,
            streams: self.watermarks.streams(),
            decoder_objects: self.decoder.topology().len(),
        });
    }

    /// Makes the outbox durable, writes the state, then publishes the
    /// positions it covers (the Kafka source commits them). False if it
    /// failed.
    async fn checkpoint(&mut self) -> bool {
        let started = Instant::now();
        if let Err(e) = self.outbox.sync() {
            self.metrics.checkpoint_failures.inc();
            tracing::error!(error = %e, "checkpoint skipped: the outbox cannot be made durable");
            return false;
        }
        match self
            .state
            .write(&self.engine, &self.decoder, &self.positions)
        {
            Ok(bytes) => {
                self.metrics.checkpoints.inc();
                self.metrics
                    .checkpoint_bytes
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
                self.metrics.observe_checkpoint(started.elapsed());
                self.committed.send_replace(positions_list(&self.positions));
                tracing::debug!(
                    bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "checkpoint written"
                );
                true
            }
            Err(e) => {
                self.metrics.checkpoint_failures.inc();
                tracing::error!(error = %e, "checkpoint failed: positions not committed");
                false
            }
        }
    }
}

/// Renders incident changes and remembers the version each was sent at.
struct Changes<'a> {
    metrics: &'a Metrics,
    emitted: &'a mut FxHashMap<usize, u32>,
    out: Vec<Outgoing>,
}

impl Changes<'_> {
    fn push(
        &mut self,
        idx: usize,
        inc: &correlate::Incident,
        change: Change,
        merged_into: Option<&str>,
    ) {
        self.emitted.insert(idx, inc.version);
        let report = IncidentReport::new(inc);
        let change = ChangeKind::from(change);
        self.metrics
            .incidents
            .get_or_create(&ChangeLabels {
                rule: report.rule.clone(),
                change: change.as_str(),
            })
            .inc();
        let id = report.id.clone();
        match Outgoing::new(IncidentChange {
            change,
            merged_into: merged_into.map(str::to_string),
            incident: report,
        }) {
            Ok(o) => self.out.push(o),
            Err(e) => {
                tracing::error!(incident = %id, error = %e, "cannot render incident")
            }
        }
    }
}

//! The engine thread: deliveries in, incident changes out.
//!
//! One thread owns the decoders and the engines, one of each per cluster
//! (synchronous and single-owner by design), and runs this loop on its
//! own: take a delivery, decode its lines exactly as `replay` does (each
//! record with its cluster's decoder: the one it names, else its source's),
//! push the events to that cluster's engine, move that cluster's per-stream
//! watermark, send the changes to the outbox. Each cluster has watermarks
//! of its own: one cluster's lagging shipper (an edge site an hour behind)
//! holds back only that cluster's incidents, never another's. A tick every
//! quarter second moves the watermark with the wall clock (idle streams),
//! publishes metrics and, every checkpoint interval, flushes the outbox and
//! writes a checkpoint, after which source positions may be committed.
//!
//! With sharded state (`sources.kafka.shared_state`), each cluster first
//! met in a Kafka partition belongs to that partition: its state is
//! checkpointed in the partition's shared directory and its notifications
//! go through the partition's outbox ([`super::shards`]). A rebalance's
//! hand-over comes down the intake in order with the records: a revoked
//! partition's clusters are told what changed, checkpointed and let go; an
//! assigned one's are restored, once the last owner has let go, before
//! any of its records.
//!
//! On start, the deliveries the journal holds past the checkpoint (webhook
//! bodies acknowledged before a crash) are processed before anything new.
//!
//! On shutdown the loop keeps taking deliveries until every source has let
//! go of the intake (or the grace period ends), then flushes and writes a
//! final checkpoint: nothing accepted is dropped. If the outbox cannot
//! store changes (a full disk) until the shutdown's deadline, the loop gives
//! up *without* a checkpoint: the checkpoint before, the journal and the
//! Kafka offsets then replay what is missing at the next start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use correlate::incident::Change;
use correlate::{Clusters, Event, EventTime, IncidentReport, IncidentUpdate, Lane, Origin, Span};
use ingest::Decoded;
use ingest::source::journal::Replay;
use ingest::source::{Delivery, Handover, Journal, Position, alertmanager, kafka, kubernetes};
use rustc_hash::FxHashMap;
use sinks::change::{ChangeKind, IncidentChange};
use sinks::outbox::{Outbox, Outgoing};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::checkpoint::{Checkpoint, StateDir};
use super::faults::Faults;
use super::metrics::{ChangeLabels, EngineView, Metrics, SourceLabels};
use super::shards::{Partition, Shards};
use super::watermark::Watermarks;
use crate::decoding::Decoding;
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

/// The cluster of records that name none, by the source they came from
/// (`sources.<source>.cluster`; for Kafka, per topic over the source's).
/// A journaled delivery keeps its source, so the configured name applies
/// when it is replayed.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceClusters {
    pub(crate) alertmanager: Option<String>,
    pub(crate) kubernetes: Option<String>,
    pub(crate) kafka: Option<String>,
    pub(crate) kafka_topics: BTreeMap<String, String>,
}

impl SourceClusters {
    fn of(&self, d: &Delivery) -> Option<&str> {
        let name = match d.source {
            alertmanager::SOURCE => self.alertmanager.as_ref(),
            kubernetes::SOURCE => self.kubernetes.as_ref(),
            kafka::SOURCE => d
                .position
                .as_ref()
                .and_then(|p| self.kafka_topics.get(&p.topic))
                .or(self.kafka.as_ref()),
            _ => None,
        };
        name.map(String::as_str)
    }
}

/// Incident changes, by the lane of the cluster they happened in.
type LaneUpdates = Vec<(Lane, Vec<IncidentUpdate>)>;

fn collect(out: &mut LaneUpdates, lane: Lane, updates: Vec<IncidentUpdate>) {
    if updates.is_empty() {
        return;
    }
    match out.iter_mut().find(|(l, _)| *l == lane) {
        Some((_, u)) => u.extend(updates),
        None => out.push((lane, updates)),
    }
}

#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) checkpoint_interval: Duration,
    /// From the shutdown signal, how long a failing outbox is retried
    /// before the pipeline gives up (without a checkpoint).
    pub(crate) give_up_after: Duration,
    /// Records dated further than this past the wall clock are processed
    /// at the wall clock's time (counted, logged): one bad timestamp must
    /// not move event time (`engine.max_ahead`).
    pub(crate) max_ahead: Span,
    pub(crate) clusters: SourceClusters,
    /// The Kafka partitions' shared state, when sharded.
    pub(crate) shards: Option<Shards>,
}

/// Rendered changes, by the outbox that notifies for them: the replica's
/// own, or an owned partition's (which moves with the partition).
#[derive(Default)]
struct Outgoings {
    own: Vec<Outgoing>,
    shards: Vec<(Partition, Vec<Outgoing>)>,
}

impl Outgoings {
    fn add(&mut self, owner: Option<&Partition>, out: Vec<Outgoing>) {
        if out.is_empty() {
            return;
        }
        match owner {
            None => self.own.extend(out),
            Some(p) => match self.shards.iter_mut().find(|(q, _)| q == p) {
                Some((_, v)) => v.extend(out),
                None => self.shards.push((p.clone(), out)),
            },
        }
    }

    fn len(&self) -> usize {
        self.own.len() + self.shards.iter().map(|(_, v)| v.len()).sum::<usize>()
    }
}

pub(crate) struct Pipeline {
    decoding: Decoding,
    clusters: Clusters,
    /// Each lane's (cluster's) watermarks.
    watermarks: Vec<Watermarks>,
    /// Each lane's owner: the Kafka partition whose shared state holds it
    /// (sharded), or none (the replica's own state directory).
    owner: Vec<Option<Partition>>,
    shards: Option<Shards>,
    /// What a new cluster's watermarks start as.
    fresh_watermarks: Watermarks,
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
    /// The version of each incident last sent out, by id (indexes move
    /// when resolved incidents retire).
    emitted: FxHashMap<String, u32>,
    /// Retired incidents already forgotten in `emitted`.
    retired_seen: u64,
    /// Records dated ahead of the wall clock, clamped to it.
    clamped: u64,
    journal: Journal,
    /// Journal records up to this sequence number are in the engine.
    journal_done: u64,
    faults: Faults,
    /// Set on shutdown: past it a failing outbox is given up.
    give_up_at: Option<Instant>,
}

/// Where a record of a delivery came from, for [`Pipeline::ingest_part`].
struct Part<'a> {
    d: &'a Delivery,
    /// Its place in the delivery, for the log.
    record: usize,
    origin: Origin,
    /// The cluster of records that name none: the source's.
    fallback: Option<&'a str>,
    now: EventTime,
    decode_errors: &'a prometheus_client::metrics::counter::Counter,
}

/// Changes that could not be stored: no checkpoint may be written after.
#[derive(Debug)]
struct NotStored;

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
        mut settings: Settings,
        journal: Journal,
        faults: Faults,
    ) -> Pipeline {
        let now = clock();
        let lanes = checkpoint
            .clusters
            .iter()
            .map(|engine| {
                let mut w = watermarks.clone();
                w.resume_from(engine.watermark(), engine.max_time(), now);
                w
            })
            .collect();
        // What the checkpoint holds was sent before it was written.
        let emitted = checkpoint
            .clusters
            .iter()
            .flat_map(|e| e.store().iter())
            .filter(|inc| inc.is_reported())
            .map(|inc| (inc.id.clone(), inc.version))
            .collect();
        Pipeline {
            emitted,
            owner: vec![None; checkpoint.clusters.len()],
            shards: settings.shards.take(),
            decoding: checkpoint.decoding,
            clusters: checkpoint.clusters,
            watermarks: lanes,
            fresh_watermarks: watermarks,
            metrics,
            outbox,
            state,
            restored: checkpoint.positions.clone(),
            positions: checkpoint.positions,
            journal_done: checkpoint.journal,
            journal,
            faults,
            give_up_at: None,
            committed,
            clock,
            settings,
            records: 0,
            decode_errors: 0,
            events: Vec::with_capacity(8),
            retired_seen: 0,
            clamped: 0,
        }
    }

    /// Processes what the journal holds past the checkpoint, then runs
    /// until the intake is closed and drained (after `cancel`), then writes
    /// the final checkpoint. Err if that checkpoint could not be made.
    pub(crate) async fn run(
        mut self,
        replay: Replay,
        mut rx: mpsc::Receiver<Delivery>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut replayed = 0u64;
        for d in replay {
            let d = d?;
            if self.handle(d).await.is_err() {
                anyhow::bail!(
                    "stopped while replaying the journal: the outbox could not store changes"
                );
            }
            replayed += 1;
        }
        if replayed > 0 {
            tracing::info!(
                deliveries = replayed,
                "journal replayed: acknowledged deliveries the last checkpoint did not hold"
            );
        }
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
            let stored = tokio::select! {
                d = rx.recv() => match d {
                    Some(d) => self.handle(d).await,
                    None => break,
                },
                _ = tick.tick() => {
                    let stored = self.on_tick().await;
                    if stored.is_ok() && Instant::now() >= next_checkpoint {
                        self.checkpoint().await;
                        next_checkpoint = Instant::now() + self.settings.checkpoint_interval;
                    }
                    stored
                }
                () = cancel.cancelled(), if drain_deadline.is_none() => {
                    tracing::info!("draining: waiting for sources to hand over what they hold");
                    drain_deadline = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                    self.give_up_at = Some(Instant::now() + self.settings.give_up_after);
                    Ok(())
                }
                () = grace => {
                    tracing::warn!("drain grace period over: closing the intake");
                    rx.close();
                    drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                    Ok(())
                }
            };
            if stored.is_err() {
                anyhow::bail!(
                    "stopped before the outbox could store every incident change; the last checkpoint, \
                     the journal and the Kafka offsets replay the rest at the next start"
                );
            }
        }
        if self.on_tick().await.is_err() {
            anyhow::bail!(
                "the outbox could not store the last incident changes; they are replayed at the next start"
            );
        }
        let written = self.checkpoint().await;
        if let Some(shards) = self.shards.as_mut() {
            shards.close().await;
        }
        if written {
            tracing::info!(records = self.records, "drained and checkpointed");
            Ok(())
        } else {
            anyhow::bail!("the final checkpoint could not be written (see the log)")
        }
    }

    async fn handle(&mut self, d: Delivery) -> Result<(), NotStored> {
        if let Some(handover) = d.handover {
            return self.hand_over(handover).await;
        }
        let now = (self.clock)();
        let updates = self.ingest(&d, now);
        let mut batch = Outgoings::default();
        for (lane, ups) in &updates {
            let out = self.render(*lane, ups);
            batch.add(self.owner[*lane].as_ref(), out);
        }
        let latency = d.received.elapsed();
        for _ in 0..batch.len() {
            self.metrics.observe_latency(latency);
        }
        self.deliver(batch).await
    }

    /// A rebalance: revoked partitions' clusters leave, assigned ones'
    /// arrive. Unsharded, there is nothing to move (the group's offsets
    /// are all that changes hands).
    async fn hand_over(&mut self, handover: Handover) -> Result<(), NotStored> {
        if self.shards.is_none() {
            return Ok(());
        }
        match handover {
            Handover::Assigned(partitions) => {
                for p in partitions {
                    self.acquire(p).await;
                }
            }
            Handover::Revoked(partitions) => {
                for p in partitions {
                    self.release(p).await?;
                }
            }
        }
        Ok(())
    }

    /// Takes over a partition: waits for its last owner to let go, opens
    /// its outbox and restores its clusters.
    async fn acquire(&mut self, p: Partition) {
        let Some(shards) = self.shards.as_ref() else {
            return;
        };
        if shards.owns(&p) {
            return;
        }
        let started = Instant::now();
        let dir = match shards.lock(&p).await {
            Ok(dir) => dir,
            Err(e) => {
                self.faults
                    .fatal(format!("cannot take over partition {}-{}: {e}", p.0, p.1));
                return;
            }
        };
        let waited = started.elapsed();
        let checkpoint = match dir.load(
            self.clusters.rules().clone(),
            self.clusters.config().clone(),
            self.decoding.empty_like(),
        ) {
            Ok(c) => c,
            Err(e) => {
                // One unreadable partition must not stop every replica it
                // moves to: set aside, loudly, and start it empty.
                let aside = super::checkpoint::set_aside(dir.dir());
                tracing::error!(topic = %p.0, partition = p.1, error = %e, set_aside = ?aside, "partition state unreadable: its clusters start empty here");
                let decoding = self.decoding.empty_like();
                super::checkpoint::Checkpoint {
                    clusters: correlate::Clusters::new(
                        self.clusters.rules().clone(),
                        self.clusters.config().clone(),
                    ),
                    decoding,
                    positions: Positions::new(),
                    journal: 0,
                }
            }
        };
        let shards = self.shards.as_mut().expect("checked above");
        if let Err(e) = shards.adopt(p.clone(), dir).await {
            self.faults.fatal(format!(
                "cannot open partition {}-{}'s outbox: {}",
                p.0,
                p.1,
                crate::describe(&e)
            ));
            return;
        }
        let now = (self.clock)();
        let mut moved = 0usize;
        let decoders = checkpoint.decoding.into_decoders();
        for (engine, (name, decoder)) in
            checkpoint.clusters.into_engines().into_iter().zip(decoders)
        {
            if self.decoding.find(name.as_deref()).is_some() {
                tracing::error!(
                    topic = %p.0,
                    partition = p.1,
                    cluster = name.as_deref().unwrap_or("(unnamed)"),
                    "this replica already holds the cluster (its records also came through another \
                     partition or source: key records by cluster): the partition's state of it is dropped"
                );
                continue;
            }
            let reported: Vec<(String, u32)> = engine
                .store()
                .iter()
                .filter(|i| i.is_reported())
                .map(|i| (i.id.clone(), i.version))
                .collect();
            let mut w = self.fresh_watermarks.clone();
            w.resume_from(engine.watermark(), engine.max_time(), now);
            if engine.max_time() != EventTime::MIN {
                // The partition is the cluster's stream: it holds the
                // watermark where it was, as if it had never moved, until
                // it goes idle (a hand-over is not a silence).
                w.observe(&kafka::stream_id(&p.0, p.1), true, engine.max_time(), now);
            }
            let Ok(lane) = self.clusters.insert(engine) else {
                continue;
            };
            let decoder_lane = self.decoding.insert(name.as_deref(), decoder);
            debug_assert_eq!(lane, decoder_lane, "decoders and engines share lanes");
            self.watermarks.push(w);
            self.owner.push(Some(p.clone()));
            self.emitted.extend(reported);
            moved += 1;
        }
        if let Some(&offset) = checkpoint.positions.get(&p) {
            self.positions.insert(p.clone(), offset);
            self.restored.insert(p.clone(), offset);
        }
        self.metrics
            .handovers
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            topic = %p.0,
            partition = p.1,
            clusters = moved,
            offset = ?checkpoint.positions.get(&p),
            waited_ms = waited.as_millis() as u64,
            ms = started.elapsed().as_millis() as u64,
            "partition taken over: its clusters resume here"
        );
    }

    /// Lets a revoked partition go: its clusters' last changes told, its
    /// outbox closed, their state checkpointed in its directory, then
    /// unlocked for the next owner.
    async fn release(&mut self, p: Partition) -> Result<(), NotStored> {
        if !self.shards.as_ref().is_some_and(|s| s.owns(&p)) {
            return Ok(());
        }
        let started = Instant::now();
        let mut batch = Outgoings::default();
        self.refresh(&mut batch);
        self.deliver(batch).await?;
        let Some(dir) = (match self.shards.as_mut() {
            Some(s) => s.release(&p).await,
            None => None,
        }) else {
            return Ok(());
        };
        let lanes: Vec<Lane> = self.lanes_of(Some(&p)).collect();
        let positions: Positions = self
            .positions
            .get(&p)
            .map(|&o| Positions::from([(p.clone(), o)]))
            .unwrap_or_default();
        match dir.write_lanes(
            &self.clusters,
            &self.decoding,
            lanes.iter().copied(),
            &positions,
            0,
        ) {
            Ok(bytes) => {
                tracing::info!(
                    topic = %p.0,
                    partition = p.1,
                    clusters = lanes.len(),
                    bytes,
                    offset = ?positions.get(&p),
                    ms = started.elapsed().as_millis() as u64,
                    "partition handed over: its clusters' state is checkpointed for the next owner"
                );
            }
            Err(e) => {
                self.metrics.checkpoint_failures.inc();
                tracing::error!(topic = %p.0, partition = p.1, error = %e, "partition state not checkpointed at hand-over: its next owner resumes from the last checkpoint and reads the partition again from there");
            }
        }
        drop(dir);
        for &lane in lanes.iter().rev() {
            let engine = self.clusters.remove(lane);
            self.decoding.remove(lane);
            self.watermarks.remove(lane);
            self.owner.remove(lane);
            for inc in engine.store().iter() {
                self.emitted.remove(inc.id.as_str());
            }
        }
        self.positions.remove(&p);
        self.restored.remove(&p);
        Ok(())
    }

    /// Hands changes to the outbox. A store that fails with an I/O error (a
    /// full disk) is retried until it works: the pipeline stalls, the intake
    /// fills, and sources shed load at the edge (the webhook answers 503);
    /// nothing is dropped. Any other failure is fatal (the restart checks
    /// the store). During shutdown, past the deadline, it gives up.
    ///
    /// A partition's changes are streamed by the replica's own outbox and
    /// notified by the partition's.
    async fn deliver(&mut self, batch: Outgoings) -> Result<(), NotStored> {
        let Outgoings { mut own, shards } = batch;
        for (_, out) in &shards {
            own.extend(out.iter().map(Outgoing::streams_only));
        }
        let outbox = self.outbox.clone();
        self.store(&outbox, own).await?;
        for (p, out) in shards {
            let Some(outbox) = self
                .shards
                .as_ref()
                .and_then(|s| s.get(&p))
                .map(|s| s.outbox.clone())
            else {
                continue;
            };
            self.store(&outbox, out).await?;
        }
        Ok(())
    }

    async fn store(&mut self, outbox: &Outbox, batch: Vec<Outgoing>) -> Result<(), NotStored> {
        if batch.is_empty() {
            return Ok(());
        }
        outbox.wait_for_room().await;
        let mut wait = Duration::from_millis(100);
        while let Err(e) = outbox.enqueue(&batch) {
            self.metrics.outbox_errors.inc();
            if !e.is_io() {
                self.faults
                    .fatal(format!("the outbox refused incident changes: {e}"));
                return Err(NotStored);
            }
            if self.give_up_at.is_some_and(|at| Instant::now() >= at) {
                tracing::error!(error = %e, "shutting down: the outbox still cannot store incident changes; giving up");
                return Err(NotStored);
            }
            tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot queue incident changes in the outbox");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            if let Err(e) = outbox.reopen() {
                tracing::debug!(error = %e, "outbox not reopened yet");
            }
        }
        Ok(())
    }

    async fn on_tick(&mut self) -> Result<(), NotStored> {
        let now = (self.clock)();
        let mut batch = Outgoings::default();
        for lane in 0..self.clusters.len() {
            let watermark = self.watermarks[lane].watermark(now);
            let updates = self.clusters.engine_mut(lane).advance(watermark);
            let out = self.render(lane, &updates);
            batch.add(self.owner[lane].as_ref(), out);
        }
        self.refresh(&mut batch);
        let stored = self.deliver(batch).await;
        self.forget_retired();
        self.publish(now);
        stored
    }

    /// Drops what `emitted` remembers of incidents that left the engine.
    fn forget_retired(&mut self) {
        let retired = self
            .clusters
            .iter()
            .map(|e| e.gauges().retired_incidents)
            .sum();
        if retired == self.retired_seen {
            return;
        }
        self.retired_seen = retired;
        let live: rustc_hash::FxHashSet<&str> = self
            .clusters
            .iter()
            .flat_map(|e| e.store().iter())
            .map(|i| i.id.as_str())
            .collect();
        self.emitted.retain(|id, _| live.contains(id.as_str()));
        self.emitted.shrink_to_fit();
    }

    /// A time past `now` by more than the bound becomes `now`.
    fn guard_time(&mut self, time: EventTime, now: EventTime, d: &Delivery) -> EventTime {
        if time <= now.saturating_add(self.settings.max_ahead) {
            return time;
        }
        self.clamped += 1;
        self.metrics
            .records_clamped
            .get_or_create(&SourceLabels {
                source: d.source.to_string(),
            })
            .inc();
        if self.clamped <= LOGGED_ERRORS || self.clamped.is_multiple_of(1000) {
            tracing::warn!(source = d.source, stream = %d.stream, time = %time, now = %now, total = self.clamped, "record dated ahead of the wall clock: processed at the wall clock's time");
        }
        now
    }

    /// Decodes and correlates one delivery; the incident changes it caused,
    /// by cluster.
    fn ingest(&mut self, d: &Delivery, now: EventTime) -> LaneUpdates {
        if let Some(p) = &d.position {
            let key = (p.topic.clone(), p.partition);
            if self
                .restored
                .get(&key)
                .is_some_and(|&done| p.offset <= done)
            {
                tracing::debug!(stream = %d.stream, offset = p.offset, "already in the restored state: skipped");
                return LaneUpdates::new();
            }
            if self.shards.as_ref().is_some_and(|s| !s.owns(&key)) {
                // Read before a revocation took it away: its owner reads
                // it again from the last checkpoint.
                tracing::debug!(stream = %d.stream, offset = p.offset, "a partition this replica does not own: skipped");
                return LaneUpdates::new();
            }
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
        let fallback: Option<String> = self.settings.clusters.of(d).map(str::to_owned);
        let mut updates = LaneUpdates::new();
        let mut fed: Vec<Lane> = Vec::new();
        for (i, line) in d.lines.iter().enumerate() {
            self.records += 1;
            let origin = Origin {
                file: 0,
                line: self.records,
            };
            let mut parsed = ingest::parse(line);
            let others = self.decoding.split(&mut parsed);
            let part = Part {
                d,
                record: i,
                origin,
                fallback: fallback.as_deref(),
                now,
                decode_errors: &decode_errors,
            };
            let lane = self.ingest_part(&part, parsed, &mut updates);
            fed.extend(lane.filter(|l| !fed.contains(l)));
            for p in others {
                let lane = self.ingest_part(&part, Ok(p), &mut updates);
                fed.extend(lane.filter(|l| !fed.contains(l)));
            }
        }
        if let Some(p) = &d.position {
            self.positions
                .insert((p.topic.clone(), p.partition), p.offset);
        }
        if let Some(seq) = d.journal {
            self.journal_done = self.journal_done.max(seq);
        }
        // The engines of the clusters this delivery fed move to their new
        // watermarks now; every other one at the next tick.
        for lane in fed {
            let watermark = self.watermarks[lane].watermark(now);
            let advanced = self.clusters.engine_mut(lane).advance(watermark);
            collect(&mut updates, lane, advanced);
        }
        updates
    }

    /// Decodes one record (or one cluster's part of an Alertmanager body)
    /// with its cluster's decoder and correlates it in that cluster.
    fn ingest_part(
        &mut self,
        part: &Part<'_>,
        parsed: ingest::Result<ingest::Parsed<'_>>,
        updates: &mut LaneUpdates,
    ) -> Option<Lane> {
        let d = part.d;
        let now = part.now;
        let cluster = parsed.as_ref().ok().and_then(ingest::Parsed::cluster);
        let (lane, new) = match self.decoding.lane(cluster.or(part.fallback)) {
            Ok(lane) => lane,
            Err(e) => {
                self.decode_errors += 1;
                part.decode_errors.inc();
                if self.decode_errors <= LOGGED_ERRORS || self.decode_errors.is_multiple_of(1000) {
                    tracing::warn!(source = d.source, stream = %d.stream, record = part.record, position = ?d.position, error = %e, total = self.decode_errors, "record skipped");
                }
                return None;
            }
        };
        if new {
            let (engine_lane, _) = self.clusters.lane(self.decoding.cluster(lane));
            debug_assert_eq!(engine_lane, lane, "decoders and engines share lanes");
            self.watermarks.push(self.fresh_watermarks.clone());
            // Sharded, a cluster first met in a partition belongs to it.
            let owner = match (&self.shards, &d.position) {
                (Some(_), Some(p)) => Some((p.topic.clone(), p.partition)),
                _ => None,
            };
            self.owner.push(owner);
            tracing::info!(
                cluster = self.decoding.cluster(lane).unwrap_or("(unnamed)"),
                clusters = self.clusters.len(),
                "a new cluster: its own decoder and engine"
            );
        }
        let mut evs = recycle(std::mem::take(&mut self.events));
        let result = self
            .decoding
            .decoder(lane)
            .interpret(parsed, part.origin, &mut evs);
        match result {
            Ok(Decoded::Duplicate { time } | Decoded::Unchanged { time }) => {
                let time = self.guard_time(time, now, d);
                let ups = self.clusters.engine_mut(lane).observe(time);
                collect(updates, lane, ups);
                self.watermarks[lane].observe(&d.stream, d.ordered, time, now);
            }
            Ok(_) => {
                for ev in &mut evs {
                    ev.time = self.guard_time(ev.time, now, d);
                    let ups = self.clusters.engine_mut(lane).push(ev);
                    collect(updates, lane, ups);
                    self.watermarks[lane].observe(&d.stream, d.ordered, ev.time, now);
                }
            }
            Err(e) => {
                self.decode_errors += 1;
                part.decode_errors.inc();
                if self.decode_errors <= LOGGED_ERRORS || self.decode_errors.is_multiple_of(1000) {
                    tracing::warn!(source = d.source, stream = %d.stream, record = part.record, position = ?d.position, error = %e, total = self.decode_errors, "record skipped");
                }
            }
        }
        for rejected in self.decoding.decoder(lane).take_rejected() {
            self.decode_errors += 1;
            part.decode_errors.inc();
            if self.decode_errors <= LOGGED_ERRORS || self.decode_errors.is_multiple_of(1000) {
                tracing::warn!(source = d.source, stream = %d.stream, record = part.record, fingerprint = rejected.fingerprint.as_deref().unwrap_or("none"), error = %rejected.error, total = self.decode_errors, "alert skipped (the other alerts of its body were processed)");
            }
        }
        self.events = recycle(evs);
        Some(lane)
    }

    /// One line per changed incident (the latest state), counted by rule.
    /// An announced incident folded into another gets a last `merged` line
    /// naming the survivor, so a sink updating messages in place can close it.
    fn render(&mut self, lane: Lane, updates: &[IncidentUpdate]) -> Vec<Outgoing> {
        let store = self.clusters.engine(lane).store();
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
            changes.push(store.get(idx), Change::Merged, Some(&survivor.id));
        }
        for (idx, change) in latest {
            let inc = store.get(idx);
            if inc.is_reported() {
                changes.push(inc, change, None);
            }
        }
        changes.out
    }

    /// Incidents that changed without a change of their own (more records
    /// on known members: the signal count, last_seen), sent at most once a
    /// tick.
    fn refresh(&mut self, batch: &mut Outgoings) {
        for (lane, engine) in self.clusters.iter().enumerate() {
            let mut changes = Changes {
                metrics: &self.metrics,
                emitted: &mut self.emitted,
                out: Vec::new(),
            };
            for inc in engine.store().iter() {
                if inc.is_reported() && changes.emitted.get(inc.id.as_str()) != Some(&inc.version) {
                    changes.push(inc, Change::Updated, None);
                }
            }
            batch.add(self.owner[lane].as_ref(), changes.out);
        }
    }

    fn publish(&self, now: EventTime) {
        // The slowest cluster's: the one a lag alert is about.
        let watermark = self
            .clusters
            .iter()
            .map(correlate::Engine::watermark)
            .filter(|w| *w != EventTime::MIN)
            .min()
            .unwrap_or(EventTime::MIN);
        let lag = if watermark == EventTime::MIN {
            0.0
        } else {
            now.since(watermark).as_secs_f64()
        };
        self.metrics.publish(EngineView {
            stats: self.clusters.stats(),
            gauges: self.clusters.gauges(),
            signals: self.clusters.signal_counts(),
            watermark_lag: lag,
            streams: self.watermarks.iter().map(Watermarks::streams).sum(),
            decoder_objects: self.decoding.iter().map(|(_, d)| d.topology().len()).sum(),
            clusters: self.clusters.len(),
        });
    }

    /// Makes the outbox durable, writes the state, then publishes the
    /// positions it covers (the Kafka source commits them). False if it
    /// failed.
    /// Sharded, each owned partition's clusters are checkpointed in its own
    /// directory (with its offset), after its outbox is durable too.
    async fn checkpoint(&mut self) -> bool {
        let started = Instant::now();
        let synced = std::iter::once(&self.outbox)
            .chain(
                self.shards
                    .iter()
                    .flat_map(|s| s.iter().map(|(_, s)| &s.outbox)),
            )
            .try_for_each(Outbox::sync);
        if let Err(e) = synced {
            self.metrics.checkpoint_failures.inc();
            tracing::error!(error = %e, "checkpoint skipped: the outbox cannot be made durable");
            self.faults.condition(
                "checkpoint",
                Some(format!("the outbox cannot be made durable: {e}")),
            );
            return false;
        }
        match self.write_state() {
            Ok(bytes) => {
                self.faults.condition("checkpoint", None);
                self.journal.covered(self.journal_done);
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
                self.faults.condition(
                    "checkpoint",
                    Some(format!("cannot write the checkpoint: {e}")),
                );
                false
            }
        }
    }

    /// The lanes `owner` holds (`None`: the replica's own).
    fn lanes_of<'a>(&'a self, owner: Option<&'a Partition>) -> impl Iterator<Item = Lane> + 'a {
        (0..self.owner.len()).filter(move |&l| self.owner[l].as_ref() == owner)
    }

    /// The replica's own lanes in its state directory, each owned
    /// partition's in the partition's; the bytes written.
    fn write_state(&self) -> Result<usize, super::checkpoint::StateError> {
        let Some(shards) = &self.shards else {
            return self.state.write_lanes(
                &self.clusters,
                &self.decoding,
                0..self.clusters.len(),
                &self.positions,
                self.journal_done,
            );
        };
        let own_positions: Positions = self
            .positions
            .iter()
            .filter(|(p, _)| !shards.owns(p))
            .map(|(p, o)| (p.clone(), *o))
            .collect();
        let mut bytes = self.state.write_lanes(
            &self.clusters,
            &self.decoding,
            self.lanes_of(None),
            &own_positions,
            self.journal_done,
        )?;
        for (p, shard) in shards.iter() {
            let positions: Positions = self
                .positions
                .get(p)
                .map(|&o| Positions::from([(p.clone(), o)]))
                .unwrap_or_default();
            bytes += shard.dir.write_lanes(
                &self.clusters,
                &self.decoding,
                self.lanes_of(Some(p)),
                &positions,
                0,
            )?;
        }
        Ok(bytes)
    }
}

/// Renders incident changes and remembers the version each was sent at.
struct Changes<'a> {
    metrics: &'a Metrics,
    emitted: &'a mut FxHashMap<String, u32>,
    out: Vec<Outgoing>,
}

impl Changes<'_> {
    fn push(&mut self, inc: &correlate::Incident, change: Change, merged_into: Option<&str>) {
        match self.emitted.get_mut(inc.id.as_str()) {
            Some(v) => *v = inc.version,
            None => {
                self.emitted.insert(inc.id.clone(), inc.version);
            }
        }
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

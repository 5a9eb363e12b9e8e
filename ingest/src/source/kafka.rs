//! The Kafka source: topics of contract-shaped records, read with a consumer
//! group, at least once.
//!
//! Each message holds one JSON document of the replay contract (a watch
//! event, an Alertmanager body, a Vector or Fluent Bit log record), or
//! several separated by newlines; they become the lines of a [`Delivery`] on
//! stream `kafka/<topic>/<partition>`, whose [`Position`] is the offset of
//! the last message in it.
//!
//! Design choices:
//!
//! - **Commit what is durable, nothing else.** Auto-commit and the automatic
//!   offset store are off. The pipeline publishes the positions its last
//!   checkpoint covers (engine state saved, incidents in the outbox) on a
//!   `watch` channel; the source commits `offset + 1` for those of its
//!   assigned partitions (asynchronously; a failure is logged and the next
//!   checkpoint commits again). A crash re-reads at most what came after the
//!   last checkpoint, and `resume` (the checkpoint's own positions) seeks
//!   past what the checkpoint covers when the group's committed offset is
//!   older, so even that is rarely read twice. A partition revoked in a
//!   rebalance before its records were checkpointed is not committed by
//!   this member: its new owner reads them again (at least once).
//! - **Batches of what is already there.** After one message arrives, the
//!   source takes whatever else librdkafka has buffered, without waiting,
//!   up to `max_batch` lines in one partition (or `4 × max_batch` in all),
//!   and sends one delivery per partition. A quiet topic costs no latency;
//!   a busy one gets large deliveries.
//! - **Backpressure by not polling.** [`Intake::send`] waits for room; while
//!   it waits the consumer is not polled, so librdkafka stops fetching once
//!   its prefetch queue is full (`queued.max.messages.kbytes`). Commits keep
//!   being served while the source waits. A pipeline stuck for longer than
//!   `max.poll.interval.ms` (5 min by default) makes the consumer leave the
//!   group; it rejoins when polled again and resumes from the committed
//!   offsets.
//! - **Bad input is counted, never fatal.** A message that is empty or not
//!   UTF-8 is counted (`rejected{reason="malformed"}`) and logged with
//!   topic, partition and offset; its offset still advances the delivery's
//!   position (a delivery may then carry no lines) so the commit moves past
//!   it. Lines that are not valid JSON are the decoder's to report.
//!
//! - **Rebalances are handed over in order.** Each assignment and
//!   revocation the group makes is sent down the intake as a
//!   [`Handover`] delivery, after every record read from a revoked
//!   partition and before any record of a newly assigned one, so the
//!   pipeline can move a partition's state with it (sharded state,
//!   `sources.kafka.shared_state`).
//!
//! A broker that disappears: librdkafka reports all brokers down, the
//! source's health turns disconnected with the error recorded (`/readyz`,
//! `epicenter_source_up`), and nothing is consumed or committed;
//! librdkafka reconnects with backoff, and when the broker answers again
//! (seen in the statistics it emits every 5 s, or in the next message) the
//! source is connected again and continues from where it was. Records
//! already handed to the pipeline stay there; records not yet handed over
//! are not committed, so they are read again. Nothing accepted is dropped.
//!
//! Option values (`sasl.password`, ...) may be secrets: they are never
//! logged, and [`Settings`]'s `Debug` shows only their names.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use serde::Deserialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::{Delivery, Handover, Health, Intake, Position, SourceHealth, StreamId};

/// The source's name in deliveries and health.
pub const SOURCE: &str = "kafka";

/// How often librdkafka reports statistics (broker states), unless the
/// options set `statistics.interval.ms`.
const STATS_INTERVAL_MS: &str = "5000";

/// How long to wait for the group's committed offsets when partitions are
/// assigned and there are checkpoint positions to compare them with.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(10);

/// After shutdown is requested, how long to wait for the pipeline's final
/// checkpoint positions before committing what is known and leaving.
const FINAL_COMMIT_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka source: no topics configured")]
    NoTopics,
    #[error("kafka source: max_batch must be at least 1")]
    NoBatch,
    #[error("kafka source: creating the consumer: {0}")]
    Create(#[source] KafkaError),
    #[error("kafka source: subscribing to {topics}: {source}")]
    Subscribe {
        topics: String,
        #[source]
        source: KafkaError,
    },
    #[error("kafka source: fatal consumer error: {0}")]
    Fatal(#[source] KafkaError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What to consume and how.
#[derive(Clone)]
pub struct Settings {
    /// `bootstrap.servers`: `host:port[,host:port...]`.
    pub brokers: String,
    pub topics: Vec<String>,
    /// The consumer group (`group.id`).
    pub group: String,
    /// Extra librdkafka properties (`security.protocol`, `sasl.*`,
    /// `fetch.max.bytes`...), applied over the source's defaults except
    /// those at-least-once relies on (`enable.auto.commit`,
    /// `enable.auto.offset.store`, `group.id`, `bootstrap.servers`). Values
    /// may be secrets and are never logged.
    pub options: BTreeMap<String, String>,
    /// Most lines per delivery from one partition.
    pub max_batch: usize,
}

impl Settings {
    /// Settings with no extra options and deliveries of up to 1024 lines.
    pub fn new(brokers: impl Into<String>, topics: Vec<String>, group: impl Into<String>) -> Self {
        Settings {
            brokers: brokers.into(),
            topics,
            group: group.into(),
            options: BTreeMap::new(),
            max_batch: 1024,
        }
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("session.timeout.ms", "10000")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", STATS_INTERVAL_MS)
            // The new group protocol (KIP-848) is not served by every
            // Kafka-protocol broker; the classic one is.
            .set("group.protocol", "classic");
        for (key, value) in &self.options {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        config
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("group", &self.group)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

/// The stream of one partition: `kafka/<topic>/<partition>`.
pub fn stream_id(topic: &str, partition: i32) -> StreamId {
    StreamId::new(format!("kafka/{topic}/{partition}"))
}

/// Consumes `settings.topics` until `cancel` fires or the pipeline closes
/// its intake.
///
/// - `resume`: the positions the pipeline restored from its last checkpoint
///   (already processed); on assignment the consumer starts after them when
///   the group's committed offset is older.
/// - `committed`: positions the pipeline has made durable (published after
///   each checkpoint); the source commits `offset + 1` for each.
///
/// On cancellation the source drops its intake handle at once, then waits
/// (at most 10 s) for the pipeline to drop the `committed` sender, keeping
/// the last positions published (the final checkpoint's), commits them
/// synchronously (unless the brokers are unreachable: the next start
/// resumes from the checkpoint anyway) and leaves the group.
///
/// Errors only for configuration, subscription and fatal client errors; a
/// broker that is away is waited for (see the module documentation).
pub async fn run(
    settings: Settings,
    intake: Intake,
    health: Health,
    cancel: CancellationToken,
    resume: Vec<Position>,
    committed: watch::Receiver<Vec<Position>>,
) -> Result<()> {
    if settings.topics.is_empty() {
        return Err(Error::NoTopics);
    }
    if settings.max_batch == 0 {
        return Err(Error::NoBatch);
    }
    let health = health.register(SOURCE);
    let context = Context::new(health.clone(), &resume);
    let consumer: StreamConsumer<Context> = settings
        .client_config()
        .set_log_level(RDKafkaLogLevel::Info)
        .create_with_context(context)
        .map_err(Error::Create)?;
    let consumer = Arc::new(consumer);
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| Error::Subscribe {
            topics: settings.topics.join(","),
            source,
        })?;
    tracing::info!(
        brokers = %settings.brokers,
        topics = %settings.topics.join(","),
        group = %settings.group,
        resume = resume.len(),
        "kafka source subscribed"
    );

    let mut source = Source {
        // The only handle: the consumer closes (blocking) where `finish`
        // drops it, off the async threads.
        consumer,
        health,
        topics: settings.topics.clone(),
        max_batch: settings.max_batch,
        committed,
        commits_open: true,
    };
    let result = source.consume(&intake, &cancel).await;
    drop(intake);
    source.finish().await;
    result
}

/// The running source: the consumer and what it commits.
struct Source {
    consumer: Arc<StreamConsumer<Context>>,
    health: Arc<SourceHealth>,
    topics: Vec<String>,
    max_batch: usize,
    committed: watch::Receiver<Vec<Position>>,
    /// False once the pipeline dropped the `committed` sender.
    commits_open: bool,
}

impl Source {
    /// The main loop: messages into deliveries, published positions into
    /// commits. Returns when cancelled or when the intake is closed.
    async fn consume(&mut self, intake: &Intake, cancel: &CancellationToken) -> Result<()> {
        let mut batches = Batches::new(self.max_batch);
        let mut out: Vec<Delivery> = Vec::new();
        let rebalanced = self.consumer.context().rebalanced.clone();
        loop {
            {
                let consumer = self.consumer.clone();
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Ok(()),
                    changed = self.committed.changed(), if self.commits_open => {
                        self.on_committed(changed.is_ok());
                        continue;
                    }
                    first = consumer.recv() => {
                        self.take(first, &mut batches, &mut out)?;
                        // Whatever else is already buffered, without waiting.
                        while !batches.full() {
                            match consumer.recv().now_or_never() {
                                Some(next) => self.take(next, &mut batches, &mut out)?,
                                None => break,
                            }
                        }
                    }
                    // A rebalance while no message came (its callback runs
                    // inside `recv`): hand it over now, not with the next
                    // message, or a revoked partition's state would wait.
                    () = rebalanced.notified() => self.take_handovers(&mut batches, &mut out),
                }
            }
            out.extend(batches.drain());
            for delivery in out.drain(..) {
                let lines = delivery.lines.len() as u64;
                if !self.send(intake, delivery, cancel).await {
                    return Ok(());
                }
                self.health.add_records(lines);
            }
        }
    }

    /// Rebalances since the last look, in order after what was read
    /// before them.
    fn take_handovers(&self, batches: &mut Batches, out: &mut Vec<Delivery>) {
        let handovers = self.consumer.context().take_handovers();
        if handovers.is_empty() {
            return;
        }
        out.extend(batches.drain());
        out.extend(
            handovers
                .into_iter()
                .map(|h| Delivery::handover(SOURCE, StreamId::new("kafka"), h)),
        );
    }

    /// Adds one polled message (or error) to the batches, after the
    /// rebalances that came before it.
    fn take(
        &self,
        polled: KafkaResult<BorrowedMessage<'_>>,
        batches: &mut Batches,
        out: &mut Vec<Delivery>,
    ) -> Result<()> {
        self.take_handovers(batches, out);
        match polled {
            Ok(message) => {
                self.consumer.context().broker_answered();
                batches.push(&message, &self.health);
                Ok(())
            }
            Err(KafkaError::MessageConsumptionFatal(code)) => {
                let e = KafkaError::MessageConsumptionFatal(code);
                self.health.set_error(&e);
                self.health.set_connected(false);
                tracing::error!(error = %e, "kafka consumer failed");
                Err(Error::Fatal(e))
            }
            Err(e) => {
                // Broker and partition errors: librdkafka retries by itself,
                // and the context's error callback has already recorded and
                // logged this one.
                tracing::debug!(error = %e, "kafka consumer error");
                Ok(())
            }
        }
    }

    /// Waits for room in the intake, serving commits meanwhile. False when
    /// cancelled or the pipeline is gone (the delivery is then not
    /// committed, and will be read again).
    async fn send(
        &mut self,
        intake: &Intake,
        delivery: Delivery,
        cancel: &CancellationToken,
    ) -> bool {
        let send = intake.send(delivery);
        tokio::pin!(send);
        loop {
            tokio::select! {
                biased;
                sent = &mut send => return sent.is_ok(),
                () = cancel.cancelled() => return false,
                changed = self.committed.changed(), if self.commits_open => {
                    self.on_committed(changed.is_ok());
                }
            }
        }
    }

    fn on_committed(&mut self, open: bool) {
        if !open {
            self.commits_open = false;
            return;
        }
        let positions = self.committed.borrow_and_update().clone();
        if let Some(offsets) = self.offsets(&positions)
            && let Err(e) = self.consumer.commit(&offsets, CommitMode::Async)
        {
            self.health.set_error(&e);
            tracing::warn!(error = %e, "kafka offset commit failed");
        }
    }

    /// `offset + 1` of each position in our topics and current assignment
    /// (a partition now owned by another member is its to commit).
    fn offsets(&self, positions: &[Position]) -> Option<TopicPartitionList> {
        let assignment = self.consumer.assignment().ok()?;
        let mut tpl = TopicPartitionList::new();
        for p in positions {
            let ours = self.topics.contains(&p.topic)
                && assignment.find_partition(&p.topic, p.partition).is_some();
            if ours {
                // Cannot fail for a positive offset.
                let _ =
                    tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.offset + 1));
            }
        }
        (tpl.count() > 0).then_some(tpl)
    }

    /// After cancellation: commit the pipeline's final positions (waiting a
    /// bounded time for it to publish them and drop the sender), then
    /// commit synchronously and leave the group, off the async threads
    /// (both block).
    async fn finish(mut self) {
        let grace = tokio::time::sleep(FINAL_COMMIT_GRACE);
        tokio::pin!(grace);
        while self.commits_open {
            tokio::select! {
                changed = self.committed.changed() => {
                    if changed.is_ok() {
                        // Keep the latest; it is committed below.
                        self.committed.borrow_and_update();
                    } else {
                        self.commits_open = false;
                    }
                }
                () = &mut grace => {
                    tracing::warn!("kafka source: no final checkpoint positions within the grace period; committing the last ones published");
                    break;
                }
            }
        }
        let positions = self.committed.borrow().clone();
        let mut offsets = self.offsets(&positions);
        if offsets.is_some() && !self.consumer.context().broker_up.load(Ordering::Relaxed) {
            // A synchronous commit would wait out librdkafka's retries for
            // nothing; the next start resumes from the checkpoint anyway.
            tracing::warn!("kafka brokers unreachable at shutdown: final offset commit skipped");
            offsets = None;
        }
        let consumer = self.consumer;
        let health = self.health;
        let left = tokio::task::spawn_blocking(move || {
            if let Some(offsets) = offsets
                && let Err(e) = consumer.commit(&offsets, CommitMode::Sync)
            {
                health.set_error(&e);
                tracing::warn!(error = %e, "kafka final offset commit failed");
            }
            health.set_connected(false);
            // Dropping the last handle closes the consumer: it leaves the
            // group (a revocation, so the partitions move on at once).
            drop(consumer);
        })
        .await;
        if let Err(e) = left {
            tracing::warn!(error = %e, "kafka source: closing the consumer failed");
        }
        tracing::info!("kafka source stopped");
    }
}

/// Lines taken from messages, grouped per partition, in arrival order.
struct Batches {
    max_batch: usize,
    total: usize,
    full: bool,
    open: Vec<Batch>,
}

struct Batch {
    topic: String,
    partition: i32,
    lines: Vec<String>,
    last_offset: i64,
    received: Instant,
}

impl Batches {
    fn new(max_batch: usize) -> Batches {
        Batches {
            max_batch,
            total: 0,
            full: false,
            open: Vec::new(),
        }
    }

    /// A partition's batch is full, or all of them hold `4 × max_batch`.
    fn full(&self) -> bool {
        self.full || self.total >= self.max_batch.saturating_mul(4)
    }

    fn push(&mut self, message: &BorrowedMessage<'_>, health: &SourceHealth) {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        let index = match self
            .open
            .iter()
            .position(|b| b.partition == partition && b.topic == topic)
        {
            Some(i) => i,
            None => {
                self.open.push(Batch {
                    topic: topic.to_owned(),
                    partition,
                    lines: Vec::new(),
                    last_offset: offset,
                    received: Instant::now(),
                });
                self.open.len() - 1
            }
        };
        let batch = &mut self.open[index];
        batch.last_offset = offset;
        let before = batch.lines.len();
        match split_payload(message.payload(), &mut batch.lines) {
            Ok(()) => {}
            Err(reason) => {
                health.reject("malformed");
                tracing::warn!(
                    topic,
                    partition,
                    offset,
                    reason,
                    "malformed kafka message skipped"
                );
            }
        }
        self.total += batch.lines.len() - before;
        self.full |= batch.lines.len() >= self.max_batch;
    }

    /// One delivery per partition touched, and a fresh start.
    fn drain(&mut self) -> impl Iterator<Item = Delivery> + use<> {
        self.total = 0;
        self.full = false;
        std::mem::take(&mut self.open)
            .into_iter()
            .map(|b| Delivery {
                stream: stream_id(&b.topic, b.partition),
                source: SOURCE,
                position: Some(Position {
                    topic: b.topic,
                    partition: b.partition,
                    offset: b.last_offset,
                }),
                lines: b.lines,
                ordered: true,
                received: b.received,
                journal: None,
                handover: None,
            })
    }
}

/// Appends the documents of one message (one per non-blank line) to
/// `lines`; the reason when there are none or the payload is not text.
pub(crate) fn split_payload(
    payload: Option<&[u8]>,
    lines: &mut Vec<String>,
) -> std::result::Result<(), &'static str> {
    let bytes = match payload {
        Some(b) if !b.is_empty() => b,
        _ => return Err("empty payload"),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| "payload is not UTF-8")?;
    let before = lines.len();
    if memchr::memchr(b'\n', bytes).is_none() {
        if !text.trim().is_empty() {
            lines.push(text.to_owned());
        }
    } else {
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if !line.trim().is_empty() {
                lines.push(line.to_owned());
            }
        }
    }
    if lines.len() == before {
        return Err("blank payload");
    }
    Ok(())
}

/// librdkafka's callbacks: health, logs, and where assigned partitions
/// start.
struct Context {
    health: Arc<SourceHealth>,
    /// Checkpoint positions, by topic and partition.
    resume: HashMap<(String, i32), i64>,
    /// A broker answered since the last "all brokers down".
    broker_up: AtomicBool,
    /// "All brokers down" reports since a broker last answered.
    down_reports: AtomicU64,
    assigned: Mutex<Vec<(String, i32)>>,
    /// Rebalances not yet handed to the pipeline, in order.
    handovers: Mutex<Vec<Handover>>,
    /// Woken when a rebalance adds to `handovers`.
    rebalanced: Arc<Notify>,
}

impl Context {
    fn new(health: Arc<SourceHealth>, resume: &[Position]) -> Context {
        Context {
            health,
            resume: resume
                .iter()
                .map(|p| ((p.topic.clone(), p.partition), p.offset))
                .collect(),
            broker_up: AtomicBool::new(false),
            down_reports: AtomicU64::new(0),
            assigned: Mutex::new(Vec::new()),
            handovers: Mutex::new(Vec::new()),
            rebalanced: Arc::new(Notify::new()),
        }
    }

    fn hand_over(&self, handover: Handover) {
        self.handovers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handover);
        self.rebalanced.notify_one();
    }

    fn take_handovers(&self) -> Vec<Handover> {
        std::mem::take(
            &mut *self
                .handovers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn assigned(&self) -> std::sync::MutexGuard<'_, Vec<(String, i32)>> {
        self.assigned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connected: a broker answers and the group gave us partitions.
    fn refresh(&self) {
        let up = self.broker_up.load(Ordering::Relaxed) && !self.assigned().is_empty();
        self.health.set_connected(up);
    }

    fn set_broker_up(&self, up: bool) {
        if self.broker_up.swap(up, Ordering::Relaxed) != up {
            if up {
                self.down_reports.store(0, Ordering::Relaxed);
                tracing::info!("kafka broker reachable");
            }
            self.refresh();
        }
    }

    /// A message arrived: cheap when nothing changed.
    fn broker_answered(&self) {
        if !self.broker_up.load(Ordering::Relaxed) {
            self.set_broker_up(true);
        }
    }

    /// Where each newly assigned partition starts: after its checkpoint
    /// position when the group's committed offset is older (or absent).
    fn apply_resume(&self, consumer: &BaseConsumer<Context>, tpl: &mut TopicPartitionList) {
        let wanted: Vec<(String, i32, i64)> = tpl
            .elements()
            .iter()
            .filter_map(|e| {
                let next = self.resume.get(&(e.topic().to_owned(), e.partition()))? + 1;
                Some((e.topic().to_owned(), e.partition(), next))
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        let committed = match consumer.committed_offsets(tpl.clone(), COMMITTED_TIMEOUT) {
            Ok(c) => Some(c),
            Err(e) => {
                // Starting after the checkpoint can at worst re-read what
                // another member committed past it: never a loss.
                tracing::warn!(error = %e, "kafka committed offsets unavailable; resuming after the checkpoint");
                None
            }
        };
        for (topic, partition, next) in wanted {
            let group = committed
                .as_ref()
                .and_then(|c| c.find_partition(&topic, partition))
                .map(|e| e.offset());
            if let Some(Offset::Offset(c)) = group
                && c >= next
            {
                continue;
            }
            match tpl.set_partition_offset(&topic, partition, Offset::Offset(next)) {
                Ok(()) => {
                    tracing::info!(topic = %topic, partition, offset = next, "kafka partition resumes after the checkpoint");
                }
                Err(e) => {
                    tracing::warn!(topic = %topic, partition, error = %e, "kafka resume position not applied");
                }
            }
        }
    }
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, message, "librdkafka");
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility, message, "librdkafka");
            }
            RDKafkaLogLevel::Notice => {
                tracing::info!(target: "librdkafka", facility, message, "librdkafka");
            }
            RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", facility, message, "librdkafka");
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.health.set_error(format!("{error}: {reason}"));
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            // librdkafka says so after every failed reconnect, many times
            // a second: the first of an outage is logged, then every 100th.
            let reports = self.down_reports.fetch_add(1, Ordering::Relaxed) + 1;
            if reports == 1 || reports.is_multiple_of(100) {
                tracing::warn!(error = %error, reason, reports, "kafka brokers unreachable");
            }
            self.set_broker_up(false);
        } else {
            tracing::warn!(error = %error, reason, "kafka client error");
        }
    }

    fn stats_raw(&self, statistics: &[u8]) {
        match serde_json::from_slice::<Stats>(statistics) {
            // Real brokers (node id ≥ 0), not the bootstrap entries or the
            // logical coordinator.
            Ok(stats) => self.set_broker_up(
                stats
                    .brokers
                    .values()
                    .any(|b| b.nodeid >= 0 && b.state == "UP"),
            ),
            Err(e) => tracing::debug!(error = %e, "kafka statistics not understood"),
        }
    }
}

/// The topic and partition of each element.
fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// The part of librdkafka's statistics the source reads.
#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    brokers: HashMap<String, BrokerStats>,
}

#[derive(Deserialize)]
struct BrokerStats {
    state: String,
    nodeid: i32,
}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Context>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.apply_resume(consumer, tpl);
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                match assigned {
                    Ok(()) => {
                        let mut now = self.assigned();
                        if !cooperative && !now.is_empty() {
                            // An eager assignment replaces the last one.
                            self.hand_over(Handover::Revoked(std::mem::take(&mut *now)));
                        }
                        let partitions = partitions(tpl);
                        if !partitions.is_empty() {
                            self.hand_over(Handover::Assigned(partitions));
                        }
                        for e in tpl.elements() {
                            now.push((e.topic().to_owned(), e.partition()));
                            tracing::info!(
                                topic = e.topic(),
                                partition = e.partition(),
                                "kafka partition assigned"
                            );
                        }
                    }
                    Err(e) => {
                        self.health.set_error(&e);
                        tracing::warn!(error = %e, "kafka partition assignment failed");
                    }
                }
                // The coordinator answered.
                self.broker_up.store(true, Ordering::Relaxed);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = revoked {
                    tracing::warn!(error = %e, "kafka partition revocation failed");
                }
                let mut now = self.assigned();
                let gone: Vec<(String, i32)> = if cooperative {
                    let (gone, kept) = std::mem::take(&mut *now)
                        .into_iter()
                        .partition(|(t, p)| tpl.find_partition(t, *p).is_some());
                    *now = kept;
                    gone
                } else {
                    std::mem::take(&mut *now)
                };
                if !gone.is_empty() {
                    self.hand_over(Handover::Revoked(gone));
                }
                tracing::info!(partitions = tpl.count(), "kafka partitions revoked");
            }
            other => {
                let code = RDKafkaErrorCode::from(other);
                self.health.set_error(format!("rebalance: {code}"));
                tracing::warn!(error = %code, "kafka rebalance failed");
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "kafka unassign failed");
                }
                let gone = std::mem::take(&mut *self.assigned());
                if !gone.is_empty() {
                    self.hand_over(Handover::Revoked(gone));
                }
            }
        }
        self.refresh();
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(partitions = offsets.count(), "kafka offsets committed"),
            Err(e) => {
                self.health.set_error(&e);
                tracing::warn!(error = %e, partitions = offsets.count(), "kafka offset commit failed; the next checkpoint commits again");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn split(payload: &[u8]) -> std::result::Result<Vec<String>, &'static str> {
        let mut lines = Vec::new();
        split_payload(Some(payload), &mut lines).map(|()| lines)
    }

    #[test]
    fn one_document_is_one_line() {
        assert_eq!(split(br#"{"a":1}"#).unwrap(), [r#"{"a":1}"#]);
    }

    #[test]
    fn several_documents_split_on_newlines_and_blank_lines_go() {
        assert_eq!(
            split(b"{\"a\":1}\r\n\n  \n{\"b\":2}\n").unwrap(),
            [r#"{"a":1}"#, r#"{"b":2}"#]
        );
    }

    #[test]
    fn empty_blank_and_binary_payloads_are_refused() {
        let mut lines = Vec::new();
        assert_eq!(split_payload(None, &mut lines), Err("empty payload"));
        assert_eq!(split(b""), Err("empty payload"));
        assert_eq!(split(b" \n\r\n"), Err("blank payload"));
        assert_eq!(split(b"{\"a\":\"\xff\"}"), Err("payload is not UTF-8"));
    }

    #[test]
    fn settings_debug_hides_option_values() {
        let mut s = Settings::new("b:9092", vec!["t".into()], "g");
        s.options.insert("sasl.password".into(), "hunter2".into());
        let shown = format!("{s:?}");
        assert!(shown.contains("sasl.password"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn at_least_once_settings_win_over_options() {
        let mut s = Settings::new("b:9092", vec!["t".into()], "g");
        s.options.insert("enable.auto.commit".into(), "true".into());
        s.options.insert("fetch.max.bytes".into(), "1000000".into());
        let c = s.client_config();
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("fetch.max.bytes"), Some("1000000"));
    }
}

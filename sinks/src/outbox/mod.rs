//! The durable outbox: every delivery epicenter makes goes through it.
//!
//! The pipeline hands each batch of incident changes to [`Outbox::enqueue`],
//! which, in one transaction of the embedded store (`outbox.redb` in the
//! state directory), queues the change for every stream target (stdout,
//! files, Kafka, the history), asks the notification [`Policy`] what people
//! should be told, routes the notifications ([`Route`]) to their receivers'
//! notifier targets, and remembers what was told. One task per target then
//! delivers its queue in order: retries with exponential backoff and jitter
//! (or the service's `Retry-After`), a per-target rate limit, a dead letter
//! after the give-up time or at once for a permanent error, counters for
//! `/metrics`.
//!
//! Design choices:
//! - **Durable before it is visible, cheap while it streams.** Enqueues
//!   commit without fsync; [`Outbox::sync`] (called before every engine
//!   checkpoint) makes them durable, so a checkpoint never covers a change
//!   the outbox could lose, and a crash loses only changes the restored
//!   engine will form again.
//! - **Idempotent notifications.** A notification is queued once per
//!   receiver target, keyed by incident. A newer one for the same incident
//!   folds into a queued older one (a person gets the latest state, not a
//!   backlog). Before a notifier is called the entry is durably marked in
//!   doubt; after a crash or a timeout the notifier is asked whether the
//!   attempt landed (Slack: the message metadata) before it is sent again.
//!   What the last delivery left (the Slack `ts`, the ntfy sequence id) is
//!   kept per (target, incident), so updates edit the same message.
//! - **Told by content.** The policy compares every change with what was
//!   last told, kept in the same transaction as the queue: changes the
//!   engine forms again after a restart tell nobody anything twice.
//! - **Head-of-line per target.** A target delivers in order (an update
//!   never overtakes its opening); a failing target delays only itself.
//! - **Exactly once to people, as far as a crash allows.** A notification's
//!   delivery is committed durably (fsync) before the next one starts, and
//!   a durable commit makes every earlier one durable too: after a crash
//!   the outbox never holds an older picture than what people were told.
//!   The window left is between the service's answer and that fsync.
//! - **I/O failures are survived.** A failed write (disk full) is reported
//!   ([`Outbox::failure`]); the store is reopened once it can be, and the
//!   batches taken since the last sync, which the reopen may lose, are
//!   applied again (their notifications are decided again against what was
//!   durably told, so nothing is told twice).

mod backoff;
mod handle;
mod store;
mod worker;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Durability, ReadableDatabase, ReadableTable};
use tokio::sync::Notify;

use self::handle::Handle;

pub use self::backoff::RetrySettings;
pub use self::store::{DeadLetter, Sent};
use self::store::{Deferred, Entry};
use crate::change::IncidentChange;
use crate::notify::policy::{self, Decision, Policy, PolicySettings, Told, WallMicros};
use crate::notify::route::{Labels, Route};
use crate::notify::{Event, Notification, Notifier};
use crate::stream::StreamSink;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("outbox {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("outbox store: {0}")]
    Store(#[from] Box<redb::Error>),
    #[error("outbox: {what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("outbox: cannot encode an entry: {0}")]
    Encode(String),
    #[error("outbox: two targets are named `{0}`")]
    DuplicateTarget(String),
    #[error("outbox: receiver `{receiver}` names target `{target}`, which does not exist")]
    UnknownTarget { receiver: String, target: String },
    #[error("outbox: the route names receiver `{0}`, which does not exist")]
    UnknownReceiver(String),
    #[error("outbox task: {0}")]
    Task(String),
}

macro_rules! store_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::Store(Box::new(e.into()))
            }
        }
    )*};
}
store_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O failure of the store (disk full, read-only): retry, the
    /// outbox reopens the store once it can. Anything else will not get
    /// better by retrying.
    pub fn is_io(&self) -> bool {
        handle::is_io(self)
    }
}

/// Wall-clock microseconds since the Unix epoch; injected so tests decide
/// what time it is.
pub type Clock = Arc<dyn Fn() -> WallMicros + Send + Sync>;

pub fn wall_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    })
}

/// Where a target delivers.
#[derive(Debug)]
pub enum Sink {
    /// Every change, in batches.
    Stream(StreamSink),
    /// The notifications routed to it, one at a time.
    Notify(Notifier),
}

/// At most `burst` deliveries at once, then one per `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub every: Duration,
    pub burst: NonZeroU32,
}

/// One place deliveries go.
#[derive(Debug)]
pub struct Target {
    /// Unique, stable across restarts (queued entries are keyed by it):
    /// `stdout`, `kafka`, `history`, `slack/oncall`, ...
    pub name: String,
    pub sink: Sink,
    pub retry: RetrySettings,
    pub rate: Option<RateLimit>,
    /// Streams: changes per delivery.
    pub max_batch: usize,
    /// Streams: how long a batch may wait to fill (the history writes
    /// fewer, larger files).
    pub linger: Duration,
}

impl Target {
    /// A stream target with the stream defaults.
    pub fn stream(name: impl Into<String>, sink: StreamSink) -> Target {
        Target {
            name: name.into(),
            sink: Sink::Stream(sink),
            retry: RetrySettings::stream(),
            rate: None,
            max_batch: 512,
            linger: Duration::ZERO,
        }
    }

    /// A notifier target with the notifier defaults.
    pub fn notifier(name: impl Into<String>, notifier: Notifier) -> Target {
        Target {
            name: name.into(),
            sink: Sink::Notify(notifier),
            retry: RetrySettings::notifier(),
            rate: None,
            max_batch: 1,
            linger: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The store file (`<state_dir>/outbox.redb`).
    pub path: PathBuf,
    pub policy: PolicySettings,
    pub route: Route,
    /// Receiver name -> the targets it delivers to.
    pub receivers: BTreeMap<String, Vec<String>>,
    /// Entries a target may have queued before [`Outbox::wait_for_room`]
    /// holds the pipeline back.
    pub max_pending: u64,
    /// How long closed incidents' memories are kept (so a replay after a
    /// crash stays quiet).
    pub told_retention: Duration,
}

impl Settings {
    pub fn new(path: impl Into<PathBuf>) -> Settings {
        Settings {
            path: path.into(),
            policy: PolicySettings::default(),
            route: Route::default(),
            receivers: BTreeMap::new(),
            max_pending: 100_000,
            told_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// One incident change as the pipeline rendered it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub change: IncidentChange,
    /// `change` as JSON, what stream targets deliver.
    pub json: Vec<u8>,
    /// Whether the policy may notify people of it. Off where another
    /// outbox notifies (a Kafka partition's, which moves with the
    /// partition): this one then only streams it.
    pub notify: bool,
}

impl Outgoing {
    pub fn new(change: IncidentChange) -> Result<Outgoing> {
        let json = serde_json::to_vec(&change).map_err(|e| Error::Encode(e.to_string()))?;
        Ok(Outgoing {
            change,
            json,
            notify: true,
        })
    }

    /// The same change, for stream targets only.
    pub fn streams_only(&self) -> Outgoing {
        Outgoing {
            notify: false,
            ..self.clone()
        }
    }
}

/// Counters of one target, since the process started.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) delivered: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) recovered: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) pending: AtomicU64,
    pub(crate) dead: AtomicU64,
    pub(crate) oldest: Mutex<Option<WallMicros>>,
    pub(crate) last_error: Mutex<Option<String>>,
}

/// A target's state, for `/metrics` and the API.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetStatus {
    pub name: String,
    /// `stdout`, `file`, `kafka`, `history`, `slack`, `ntfy`, `webhook`.
    pub kind: &'static str,
    pub pending: u64,
    pub dead: u64,
    /// Age of the oldest queued delivery, in seconds (0 when none).
    pub oldest_pending_seconds: f64,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub dead_lettered: u64,
    /// In-doubt attempts found delivered on asking the service.
    pub recovered: u64,
    /// Notifications folded into one already queued.
    pub coalesced: u64,
    pub last_error: Option<String>,
}

/// What the policy decided, since the process started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyStatus {
    pub opened: u64,
    pub updated: u64,
    pub resolved: u64,
    /// Changes that told nobody anything.
    pub quiet: u64,
    /// Updates held back by the throttle.
    pub deferred: u64,
    /// Notifications with no receiver (no route matched one).
    pub unrouted: u64,
}

#[derive(Debug, Default)]
struct PolicyCounters {
    opened: AtomicU64,
    updated: AtomicU64,
    resolved: AtomicU64,
    quiet: AtomicU64,
    deferred: AtomicU64,
    unrouted: AtomicU64,
}

pub(crate) struct TargetState {
    pub(crate) name: String,
    pub(crate) sink: Sink,
    pub(crate) retry: RetrySettings,
    pub(crate) limiter: Option<governor::DefaultDirectRateLimiter>,
    pub(crate) max_batch: usize,
    pub(crate) linger: Duration,
    pub(crate) wake: Notify,
    pub(crate) room: Notify,
    pub(crate) counters: Counters,
}

impl std::fmt::Debug for TargetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetState")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) store: Handle,
    pub(crate) targets: Vec<TargetState>,
    policy: Policy,
    route: Route,
    /// Receiver -> indexes of its targets.
    receivers: BTreeMap<String, Vec<usize>>,
    max_pending: u64,
    told_retention: Duration,
    next_seq: Mutex<u64>,
    pub(crate) clock: Clock,
    policy_counters: PolicyCounters,
    /// Set by [`Outbox::shutdown`]: deliver what is queued, then stop.
    pub(crate) draining: AtomicBool,
    pub(crate) stopped: AtomicBool,
    pub(crate) deferred_wake: Notify,
    /// Woken (every waiter) when the outbox starts draining: the healing
    /// task's wait ends at once, so a shutdown (or a Kafka partition's
    /// hand-over) is not held for its poll interval.
    pub(crate) drain_wake: Notify,
    /// When closed incidents' memories were last pruned.
    last_prune: Mutex<WallMicros>,
    /// Batches enqueued since the last sync: a reopen after an I/O failure
    /// may lose them, so they are applied again.
    unsynced: Mutex<Vec<Vec<Outgoing>>>,
    /// Why the store fails now (disk full), if it does.
    failure: Mutex<Option<String>>,
    /// Serializes enqueue, sync and reopen, so what `unsynced` holds and
    /// the order batches are applied in stay what the pipeline made.
    batches: Mutex<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.store.path())
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

/// What the notifiers remember of one incident ([`Outbox::notified`]).
#[derive(Debug, Clone, Default)]
pub struct Notified {
    /// The last notification the policy decided on, if any.
    pub told: Option<Told>,
    /// Each notifier target's receipt for it.
    pub receipts: Vec<TargetReceipt>,
    /// The deliveries that landed, oldest first (at most 100).
    pub sent: Vec<Sent>,
}

/// A notifier target's receipt for an incident.
#[derive(Debug, Clone)]
pub struct TargetReceipt {
    pub target: String,
    /// `slack`, `ntfy`, `webhook`.
    pub kind: &'static str,
    pub receipt: crate::notify::Receipt,
}

/// The handle the pipeline and the operational endpoints hold.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl Outbox {
    /// Opens (creating) the store at `settings.path`, checks that routes,
    /// receivers and targets agree, and counts what is queued. Nothing is
    /// delivered until [`Outbox::start`].
    pub fn open(settings: Settings, targets: Vec<Target>, clock: Clock) -> Result<Outbox> {
        let mut names: Vec<&str> = Vec::new();
        for t in &targets {
            if names.contains(&t.name.as_str()) {
                return Err(Error::DuplicateTarget(t.name.clone()));
            }
            names.push(&t.name);
        }
        let mut receivers = BTreeMap::new();
        for (receiver, target_names) in &settings.receivers {
            let mut idx = Vec::new();
            for t in target_names {
                match names.iter().position(|n| n == t) {
                    Some(i) => idx.push(i),
                    None => {
                        return Err(Error::UnknownTarget {
                            receiver: receiver.clone(),
                            target: t.clone(),
                        });
                    }
                }
            }
            receivers.insert(receiver.clone(), idx);
        }
        for r in settings.route.all_receivers() {
            if !receivers.contains_key(r) {
                return Err(Error::UnknownReceiver(r.to_string()));
            }
        }
        if let Some(dir) = settings.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Open {
                path: settings.path.clone(),
                source: Box::new(redb::Error::Io(e)),
            })?;
        }
        let db = handle::open(&settings.path)?;
        store::create_tables(&db)?;
        let census = store::census(&db)?;
        let next_seq = store::read_meta(&db, store::NEXT_SEQ)?
            .unwrap_or(0)
            .max(census.max_seq.map_or(0, |s| s + 1));
        let targets: Vec<TargetState> = targets
            .into_iter()
            .map(|t| {
                let counters = Counters::default();
                if let Some((_, n, oldest)) = census.pending.iter().find(|(n, ..)| *n == t.name) {
                    counters.pending.store(*n, Ordering::Relaxed);
                    *counters
                        .oldest
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = *oldest;
                }
                if let Some((_, n)) = census.dead.iter().find(|(n, _)| *n == t.name) {
                    counters.dead.store(*n, Ordering::Relaxed);
                }
                TargetState {
                    limiter: t.rate.and_then(|r| {
                        governor::Quota::with_period(r.every)
                            .map(|q| governor::RateLimiter::direct(q.allow_burst(r.burst)))
                    }),
                    name: t.name,
                    sink: t.sink,
                    retry: t.retry,
                    max_batch: t.max_batch.max(1),
                    linger: t.linger,
                    wake: Notify::new(),
                    room: Notify::new(),
                    counters,
                }
            })
            .collect();
        for (name, n, _) in &census.pending {
            if !targets.iter().any(|t| &t.name == name) {
                tracing::warn!(target_name = %name, entries = n, "outbox holds deliveries for a target no longer configured: kept, not delivered");
            }
        }
        Ok(Outbox {
            inner: Arc::new(Inner {
                store: Handle::new(settings.path, db),
                targets,
                policy: Policy::new(settings.policy),
                route: settings.route,
                receivers,
                max_pending: settings.max_pending.max(1),
                told_retention: settings.told_retention,
                next_seq: Mutex::new(next_seq),
                clock,
                policy_counters: PolicyCounters::default(),
                draining: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                deferred_wake: Notify::new(),
                drain_wake: Notify::new(),
                last_prune: Mutex::new(0),
                unsynced: Mutex::new(Vec::new()),
                failure: Mutex::new(None),
                batches: Mutex::new(()),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        self.inner.store.path()
    }

    /// Why the store fails now (a write failed: disk full, read-only), if
    /// it does. Cleared by the next write that works.
    pub fn failure(&self) -> Option<String> {
        self.inner
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// After an I/O failure: reopens the store and applies again what was
    /// taken since the last sync, then syncs. `Ok(false)` while a delivery
    /// still holds the store (try again shortly).
    pub fn reopen(&self) -> Result<bool> {
        self.inner.reopen()
    }

    /// Starts one delivery task per target and the task that releases
    /// throttled updates, on the current tokio runtime.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..inner.targets.len() {
                tasks.spawn(worker::run(inner.clone(), i));
            }
            tasks.spawn(worker::release_deferred(inner.clone()));
            tasks.spawn(worker::heal(inner.clone()));
            while let Some(r) = tasks.join_next().await {
                if let Err(e) = r {
                    tracing::error!(error = %e, "outbox task failed");
                }
            }
        })
    }

    /// Queues a batch of changes: every stream target gets each; the
    /// policy and the routes decide the notifications. Not yet durable (see
    /// [`Outbox::sync`]); delivery tasks are woken.
    pub fn enqueue(&self, batch: &[Outgoing]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let _batches = self
            .inner
            .batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let result = self.inner.apply(batch);
        self.inner.observe(&result);
        result?;
        self.inner
            .unsynced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(batch.to_vec());
        Ok(())
    }

    /// Makes everything enqueued so far durable (one fsync).
    pub fn sync(&self) -> Result<()> {
        let _batches = self
            .inner
            .batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let result = self.inner.sync_store();
        self.inner.observe(&result);
        result?;
        self.inner
            .unsynced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(())
    }

    /// Waits while any target has more than `max_pending` deliveries
    /// queued: a sink that is down holds the pipeline back instead of
    /// filling the disk.
    pub async fn wait_for_room(&self) {
        loop {
            let full = self
                .inner
                .targets
                .iter()
                .find(|t| t.counters.pending.load(Ordering::Relaxed) >= self.inner.max_pending);
            let Some(t) = full else { return };
            if self.inner.stopped.load(Ordering::Relaxed) {
                return;
            }
            let room = t.room.notified();
            if t.counters.pending.load(Ordering::Relaxed) < self.inner.max_pending {
                continue;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), room).await;
        }
    }

    /// Delivers what is queued for up to `grace`, then stops the delivery
    /// tasks and makes the store durable. What is left is delivered after
    /// the next start.
    pub async fn shutdown(
        &self,
        grace: Duration,
        tasks: tokio::task::JoinHandle<()>,
    ) -> Result<()> {
        let inner = &self.inner;
        inner.draining.store(true, Ordering::Relaxed);
        for t in &inner.targets {
            t.wake.notify_one();
        }
        inner.deferred_wake.notify_one();
        inner.drain_wake.notify_waiters();
        let abort = tasks.abort_handle();
        if tokio::time::timeout(grace, tasks).await.is_err() {
            let left: u64 = inner
                .targets
                .iter()
                .map(|t| t.counters.pending.load(Ordering::Relaxed))
                .sum();
            tracing::warn!(
                left,
                "outbox drain grace over: the rest is delivered after restart"
            );
            inner.stopped.store(true, Ordering::Relaxed);
            abort.abort();
        }
        self.sync()
    }

    /// Every target's state.
    pub fn status(&self) -> Vec<TargetStatus> {
        let now = (self.inner.clock)();
        self.inner
            .targets
            .iter()
            .map(|t| {
                let c = &t.counters;
                let oldest = *c.oldest.lock().unwrap_or_else(PoisonError::into_inner);
                TargetStatus {
                    name: t.name.clone(),
                    kind: match &t.sink {
                        Sink::Stream(s) => s.kind(),
                        Sink::Notify(n) => n.kind(),
                    },
                    pending: c.pending.load(Ordering::Relaxed),
                    dead: c.dead.load(Ordering::Relaxed),
                    oldest_pending_seconds: oldest
                        .filter(|_| c.pending.load(Ordering::Relaxed) > 0)
                        .map_or(0.0, |o| (now - o).max(0) as f64 / 1e6),
                    delivered: c.delivered.load(Ordering::Relaxed),
                    failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
                    dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
                    recovered: c.recovered.load(Ordering::Relaxed),
                    coalesced: c.coalesced.load(Ordering::Relaxed),
                    last_error: c
                        .last_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone(),
                }
            })
            .collect()
    }

    pub fn policy_status(&self) -> PolicyStatus {
        let c = &self.inner.policy_counters;
        PolicyStatus {
            opened: c.opened.load(Ordering::Relaxed),
            updated: c.updated.load(Ordering::Relaxed),
            resolved: c.resolved.load(Ordering::Relaxed),
            quiet: c.quiet.load(Ordering::Relaxed),
            deferred: c.deferred.load(Ordering::Relaxed),
            unrouted: c.unrouted.load(Ordering::Relaxed),
        }
    }

    /// Change documents still held for stream targets that have not
    /// delivered them (each stored once, whatever the number of streams).
    pub fn held_documents(&self) -> Result<u64> {
        let db = self.inner.store.get()?;
        let txn = db.begin_read()?;
        Ok(redb::ReadableTableMetadata::len(
            &txn.open_table(store::DOCS)?,
        )?)
    }

    /// What the notifiers remember of `incident`: what the policy last
    /// told (how many notifications, when, whether it is closed), each
    /// notifier target's receipt (the message it edits in place) and each
    /// delivery that landed. Kept while the incident is open and
    /// `told_retention` after.
    pub fn notified(&self, incident: &str) -> Result<Notified> {
        let db = self.inner.store.get()?;
        let txn = db.begin_read()?;
        let told = txn
            .open_table(store::TOLD)?
            .get(incident)?
            .map(|v| store::decode_told(v.value()))
            .transpose()?;
        let table = txn.open_table(store::RECEIPTS)?;
        let mut receipts = Vec::new();
        for t in &self.inner.targets {
            if let Sink::Notify(n) = &t.sink
                && let Some(v) = table.get((t.name.as_str(), incident))?
            {
                receipts.push(TargetReceipt {
                    target: t.name.clone(),
                    kind: n.kind(),
                    receipt: store::decode_receipt(v.value())?,
                });
            }
        }
        let sent = store::sent_for(&txn, incident)?;
        Ok(Notified {
            told,
            receipts,
            sent,
        })
    }

    /// The newest dead letters of `target`.
    pub fn dead_letters(&self, target: &str, limit: usize) -> Result<Vec<DeadLetter>> {
        store::dead_letters(&*self.inner.store.get()?, target, limit)
    }

    /// Releases throttled updates that are due (the background task calls
    /// this; tests call it to move time on).
    pub fn release_due(&self) -> Result<()> {
        self.inner.release_due()
    }
}

/// The tables one write transaction touches.
pub(crate) struct Tables<'t> {
    pub(crate) queue: redb::Table<'t, (&'static str, u64), &'static [u8]>,
    pub(crate) pending: redb::Table<'t, (&'static str, &'static str), u64>,
    pub(crate) receipts: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub(crate) told: redb::Table<'t, &'static str, &'static [u8]>,
    pub(crate) deferred: redb::Table<'t, &'static str, &'static [u8]>,
    pub(crate) dead: redb::Table<'t, (&'static str, u64), &'static [u8]>,
    pub(crate) meta: redb::Table<'t, &'static str, u64>,
    pub(crate) docs: redb::Table<'t, u64, &'static [u8]>,
    pub(crate) sent: redb::Table<'t, (&'static str, u64, &'static str), &'static [u8]>,
}

impl<'t> Tables<'t> {
    pub(crate) fn open(txn: &'t redb::WriteTransaction) -> Result<Tables<'t>> {
        Ok(Tables {
            queue: txn.open_table(store::QUEUE)?,
            pending: txn.open_table(store::PENDING)?,
            receipts: txn.open_table(store::RECEIPTS)?,
            told: txn.open_table(store::TOLD)?,
            deferred: txn.open_table(store::DEFERRED)?,
            dead: txn.open_table(store::DEAD)?,
            meta: txn.open_table(store::META)?,
            docs: txn.open_table(store::DOCS)?,
            sent: txn.open_table(store::SENT)?,
        })
    }
}

impl Inner {
    /// Notes whether a store operation worked: an I/O failure is the
    /// outbox's failure until a write works again.
    pub(crate) fn observe<T>(&self, result: &Result<T>) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Err(e) if handle::is_io(e) => {
                if failure.is_none() {
                    tracing::error!(path = %self.store.path().display(), error = %e, "outbox: the store cannot write; reopening it once it can");
                }
                *failure = Some(e.to_string());
            }
            Ok(_) if failure.is_some() => {
                tracing::info!(path = %self.store.path().display(), "outbox: the store writes again");
                *failure = None;
            }
            _ => {}
        }
    }

    fn failing(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn sync_store(&self) -> Result<()> {
        let db = self.store.get()?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    }

    /// See [`Outbox::reopen`].
    pub(crate) fn reopen(&self) -> Result<bool> {
        let _batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.store.reopen()? {
            return Ok(false);
        }
        let db = self.store.get()?;
        let census = store::census(&db)?;
        for t in &self.targets {
            let (n, oldest) = census
                .pending
                .iter()
                .find(|(name, ..)| *name == t.name)
                .map_or((0, None), |(_, n, o)| (*n, *o));
            t.counters.pending.store(n, Ordering::Relaxed);
            *t.counters
                .oldest
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = oldest;
        }
        {
            let mut seq = self.next_seq.lock().unwrap_or_else(PoisonError::into_inner);
            *seq = (*seq).max(census.max_seq.map_or(0, |s| s + 1));
        }
        let batches =
            std::mem::take(&mut *self.unsynced.lock().unwrap_or_else(PoisonError::into_inner));
        let mut applied = Ok(());
        for b in &batches {
            applied = self.apply(b);
            if applied.is_err() {
                break;
            }
        }
        let result = applied.and_then(|()| self.sync_store());
        self.observe(&result);
        if let Err(e) = result {
            // Everything again at the next reopen (streams may see some twice).
            *self.unsynced.lock().unwrap_or_else(PoisonError::into_inner) = batches;
            return Err(e);
        }
        tracing::info!(reapplied = batches.len(), "outbox: store reopened");
        for t in &self.targets {
            t.wake.notify_one();
        }
        Ok(true)
    }

    /// One transaction of [`Outbox::enqueue`].
    fn apply(&self, batch: &[Outgoing]) -> Result<()> {
        let now = (self.clock)();
        let mut woken = vec![false; self.targets.len()];
        let mut added = vec![0u64; self.targets.len()];
        let db = self.store.get()?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)?;
        {
            let mut t = Tables::open(&txn)?;
            let mut seq = self.next_seq.lock().unwrap_or_else(PoisonError::into_inner);
            let mut next = *seq;
            let streams = u32::try_from(
                self.targets
                    .iter()
                    .filter(|t| matches!(t.sink, Sink::Stream(_)))
                    .count(),
            )
            .unwrap_or(u32::MAX);
            for o in batch {
                let doc = next;
                if streams > 0 {
                    t.docs
                        .insert(doc, store::doc_value(streams, &o.json).as_slice())?;
                    next += 1;
                }
                for (i, target) in self.targets.iter().enumerate() {
                    if matches!(target.sink, Sink::Stream(_)) {
                        let entry = Entry {
                            incident: o.change.incident.id.clone(),
                            revision: 0,
                            failures: 0,
                            in_doubt: false,
                            enqueued_at: now,
                            next_at: now,
                            last_error: None,
                            payload: Vec::new(),
                            doc: Some(doc),
                        };
                        t.queue.insert(
                            (target.name.as_str(), next),
                            store::encode(&entry)?.as_slice(),
                        )?;
                        next += 1;
                        woken[i] = true;
                        added[i] += 1;
                    }
                }
                if o.notify {
                    self.notify(
                        &mut t, &o.change, &o.json, now, &mut next, &mut woken, &mut added,
                    )?;
                }
            }
            t.meta.insert(store::NEXT_SEQ, next)?;
            drop(t);
            txn.commit()?;
            *seq = next;
        }
        self.publish(&added, &woken, now);
        self.deferred_wake.notify_one();
        Ok(())
    }

    /// After a commit: counts what was queued per target and wakes the
    /// targets that have something new to send.
    fn publish(&self, added: &[u64], woken: &[bool], now: WallMicros) {
        for (i, target) in self.targets.iter().enumerate() {
            if added[i] > 0 {
                let before = target
                    .counters
                    .pending
                    .fetch_add(added[i], Ordering::Relaxed);
                if before == 0 {
                    let mut oldest = target
                        .counters
                        .oldest
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    oldest.get_or_insert(now);
                }
            }
            if woken[i] {
                target.wake.notify_one();
            }
        }
    }

    fn has_notifiers(&self) -> bool {
        self.targets
            .iter()
            .any(|t| matches!(t.sink, Sink::Notify(_)))
    }

    /// The policy's decision on one change, and the notifications it
    /// queues.
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        t: &mut Tables<'_>,
        change: &IncidentChange,
        json: &[u8],
        now: WallMicros,
        next: &mut u64,
        woken: &mut [bool],
        added: &mut [u64],
    ) -> Result<()> {
        if !self.has_notifiers() {
            return Ok(());
        }
        let id = change.incident.id.as_str();
        let told = t
            .told
            .get(id)?
            .map(|v| store::decode_told(v.value()))
            .transpose()?;
        let c = &self.policy_counters;
        match self.policy.decide(told.as_ref(), change, now) {
            Decision::Quiet => {
                c.quiet.fetch_add(1, Ordering::Relaxed);
                // A deferred update is decided again on the latest state.
                let held = t.deferred.get(id)?.map(|v| v.value().to_vec());
                if let Some(d) = held {
                    let mut d: Deferred = store::decode(&d, "deferred update")?;
                    d.change = json.to_vec();
                    t.deferred.insert(id, store::encode(&d)?.as_slice())?;
                }
            }
            Decision::Defer { due } => {
                c.deferred.fetch_add(1, Ordering::Relaxed);
                let d = Deferred {
                    due,
                    change: json.to_vec(),
                };
                t.deferred.insert(id, store::encode(&d)?.as_slice())?;
            }
            Decision::Send { notification, told } => {
                match notification.event {
                    Event::Opened => &c.opened,
                    Event::Updated => &c.updated,
                    Event::Resolved => &c.resolved,
                }
                .fetch_add(1, Ordering::Relaxed);
                t.told.insert(id, store::encode(&told)?.as_slice())?;
                t.deferred.remove(id)?;
                self.route_notification(t, &notification, now, next, woken, added)?;
            }
        }
        Ok(())
    }

    /// Queues `n` for every target of every receiver its routes reach (and,
    /// when it ends the incident, for every target that announced it).
    fn route_notification(
        &self,
        t: &mut Tables<'_>,
        n: &Notification,
        now: WallMicros,
        next: &mut u64,
        woken: &mut [bool],
        added: &mut [u64],
    ) -> Result<()> {
        let labels = Labels::of(&n.incident);
        let mut chosen: Vec<usize> = Vec::new();
        for r in self.route.receivers(&labels) {
            for &i in self.receivers.get(r).map_or(&[][..], Vec::as_slice) {
                if !chosen.contains(&i) {
                    chosen.push(i);
                }
            }
        }
        let id = n.incident.id.as_str();
        for (i, target) in self.targets.iter().enumerate() {
            let Sink::Notify(_) = target.sink else {
                continue;
            };
            if chosen.contains(&i) {
                continue;
            }
            // Whoever announced an incident hears how it ended, or of any
            // update, even when its labels no longer route there.
            if t.receipts.get((target.name.as_str(), id))?.is_some() {
                chosen.push(i);
            }
        }
        if chosen.is_empty() {
            self.policy_counters
                .unrouted
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        for i in chosen {
            let target = &self.targets[i];
            let name = target.name.as_str();
            // A notification of this incident still queued: the newer state
            // folds into it.
            let queued = t.pending.get((name, id))?.map(|v| v.value());
            let queued = match queued {
                Some(seq) => t.queue.get((name, seq))?.map(|v| (seq, v.value().to_vec())),
                None => None,
            };
            if let Some((seq, bytes)) = queued {
                let mut entry: Entry = store::decode(&bytes, "queue entry")?;
                let older: Notification =
                    serde_json::from_slice(&entry.payload).map_err(|e| Error::Corrupt {
                        what: format!("queued notification {name}/{seq}"),
                        reason: e.to_string(),
                    })?;
                let merged = policy::coalesce(&older, n.clone());
                entry.payload =
                    serde_json::to_vec(&merged).map_err(|e| Error::Encode(e.to_string()))?;
                entry.revision = entry.revision.wrapping_add(1);
                t.queue
                    .insert((name, seq), store::encode(&entry)?.as_slice())?;
                target.counters.coalesced.fetch_add(1, Ordering::Relaxed);
                woken[i] = true;
                continue;
            }
            let entry = Entry {
                incident: id.to_string(),
                revision: 0,
                failures: 0,
                in_doubt: false,
                enqueued_at: now,
                next_at: now,
                last_error: None,
                payload: serde_json::to_vec(n).map_err(|e| Error::Encode(e.to_string()))?,
                doc: None,
            };
            t.queue
                .insert((name, *next), store::encode(&entry)?.as_slice())?;
            t.pending.insert((name, id), *next)?;
            *next += 1;
            woken[i] = true;
            added[i] += 1;
        }
        Ok(())
    }

    /// Decides again on every deferred update that is due; prunes the
    /// memories of incidents closed longer than the retention.
    fn release_due(&self) -> Result<()> {
        let now = (self.clock)();
        let due: Vec<(String, Deferred)> = {
            let db = self.store.get()?;
            let txn = db.begin_read()?;
            let deferred = txn.open_table(store::DEFERRED)?;
            let mut v = Vec::new();
            for item in redb::ReadableTable::iter(&deferred)? {
                let (k, val) = item?;
                let d: Deferred = store::decode(val.value(), "deferred update")?;
                if d.due <= now {
                    v.push((k.value().to_string(), d));
                }
            }
            v
        };
        if due.is_empty() {
            return Ok(());
        }
        let mut woken = vec![false; self.targets.len()];
        let mut added = vec![0u64; self.targets.len()];
        let db = self.store.get()?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)?;
        {
            let mut t = Tables::open(&txn)?;
            let mut seq = self.next_seq.lock().unwrap_or_else(PoisonError::into_inner);
            let mut next = *seq;
            for (id, d) in due {
                t.deferred.remove(id.as_str())?;
                let change: IncidentChange = match serde_json::from_slice(&d.change) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(incident = %id, error = %e, "deferred update unreadable: dropped");
                        continue;
                    }
                };
                self.notify(
                    &mut t, &change, &d.change, now, &mut next, &mut woken, &mut added,
                )?;
            }
            self.prune_told(&mut t, now)?;
            t.meta.insert(store::NEXT_SEQ, next)?;
            drop(t);
            txn.commit()?;
            *seq = next;
        }
        self.publish(&added, &woken, now);
        Ok(())
    }

    /// Forgets incidents closed longer than the retention (at most hourly).
    fn prune_told(&self, t: &mut Tables<'_>, now: WallMicros) -> Result<()> {
        {
            let mut last = self
                .last_prune
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if now.saturating_sub(*last) < 3_600_000_000 {
                return Ok(());
            }
            *last = now;
        }
        let keep = i64::try_from(self.told_retention.as_micros()).unwrap_or(i64::MAX);
        let old: Vec<String> = {
            let mut v = Vec::new();
            for item in t.told.iter()? {
                let (k, val) = item?;
                let told: Told = store::decode_told(val.value())?;
                if told.closed && now.saturating_sub(told.at) > keep {
                    v.push(k.value().to_string());
                }
            }
            v
        };
        for id in old {
            t.told.remove(id.as_str())?;
            store::forget_sent(&mut t.sent, &id)?;
        }
        Ok(())
    }
}

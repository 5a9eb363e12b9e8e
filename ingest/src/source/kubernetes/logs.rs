//! Pod logs: follow the containers of selected pods through the log API and
//! hand each line on as a Vector `kubernetes_logs` record.
//!
//! A pod watch per selector (and namespace) finds the pods; the manager
//! decides, from each pod's container statuses, which containers have a log
//! worth reading, and a follower task per container reads it with
//! `follow=true&timestamps=true`. Each line becomes
//! `{"message","timestamp","kubernetes":{"pod_name","pod_namespace",
//! "container_name","pod_node_name","pod_uid","pod_labels","pod_owner"}}` on
//! the stream `kubernetes/logs/<namespace>/<pod>/<container>`.
//!
//! Design choices:
//!
//! - **Resume by timestamp.** The follower remembers the timestamp of the
//!   last line it delivered (per pod uid and container, across reconnects
//!   and container restarts) and reopens with `sinceTime` floored to the
//!   second (the API's resolution); lines at or before the remembered one
//!   are skipped, so a dropped connection neither repeats nor loses lines.
//!   A line cut off by a dropped connection is read again whole.
//! - **Instances, not connections.** A container's log ends when its
//!   instance exits; the manager reopens when the pod shows a new instance
//!   (a restart: a new container ID), reads an exited instance it has not
//!   read to its end once (a crash-looping sidecar's last words), and
//!   reconnects with backoff while the container is still running.
//! - **A cap on open streams.** At most `max_streams` logs are open at once
//!   over all selectors; a container beyond it waits for a free slot and is
//!   counted once (`max_streams` rejection, one warning per source).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{AsyncBufReadExt, AsyncReadExt, StreamExt, stream};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::LogParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{PodLogSettings, SOURCE};
use crate::source::{Delivery, Health, Intake, SourceHealth, StreamId};

/// Lines per delivery at most.
const BATCH: usize = 256;
/// The longest log line taken; the rest of a longer one is dropped (and
/// counted: `oversized_log_line`).
const MAX_LINE: u64 = 256 << 10;
/// Reconnect delays while a container runs but its log stream keeps ending.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Checks a label selector's syntax as the API server reads it:
/// comma-separated `key`, `!key`, `key=value`, `key==value`, `key!=value`,
/// `key in (a,b)`, `key notin (a,b)`. The empty selector selects all.
pub fn check_label_selector(selector: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut start = 0;
    let mut terms = Vec::new();
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced ')'")?,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    terms.push(&selector[start..]);
    if terms.len() == 1 && terms[0].trim().is_empty() {
        return Ok(());
    }
    terms.into_iter().try_for_each(|t| check_term(t.trim()))
}

fn check_term(term: &str) -> Result<(), String> {
    let bad = |what: &str| Err(format!("`{term}`: {what}"));
    if term.is_empty() {
        return bad("empty term");
    }
    if let Some(key) = term.strip_prefix('!') {
        return check_key(key.trim()).or_else(|e| bad(&e));
    }
    for op in ["!=", "==", "="] {
        if let Some((key, value)) = term.split_once(op) {
            check_key(key.trim()).or_else(|e| bad(&e))?;
            return check_value(value.trim()).or_else(|e| bad(&e));
        }
    }
    let mut words = term.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    let rest = words.next().unwrap_or_default().trim();
    check_key(key).or_else(|e| bad(&e))?;
    if rest.is_empty() {
        return Ok(());
    }
    let set = rest
        .strip_prefix("notin")
        .or_else(|| rest.strip_prefix("in"))
        .map(str::trim)
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.strip_suffix(')'));
    let Some(set) = set else {
        return bad("expected `=`, `==`, `!=`, `in (...)` or `notin (...)`");
    };
    set.split(',')
        .try_for_each(|v| check_value(v.trim()))
        .or_else(|e| bad(&e))
}

fn check_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            let prefix_ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !prefix_ok {
                return Err(format!("invalid key prefix `{prefix}`"));
            }
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Err("missing key".into());
    }
    check_value(name).map_err(|_| format!("invalid key `{key}`"))
}

fn check_value(value: &str) -> Result<(), String> {
    let ok = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && value
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .last()
            .is_none_or(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!("invalid value `{value}`"))
    }
}

/// What a log record says about its pod.
#[derive(Debug)]
struct PodMeta {
    namespace: String,
    name: String,
    uid: String,
    node: Option<String>,
    labels: BTreeMap<String, String>,
    /// `Kind/name` of the controller, as Vector writes it.
    owner: Option<String>,
}

impl PodMeta {
    fn of(pod: &Pod) -> Option<PodMeta> {
        Some(PodMeta {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
            uid: pod.metadata.uid.clone()?,
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            owner: pod
                .owner_references()
                .iter()
                .find(|o| o.controller == Some(true))
                .map(|o| format!("{}/{}", o.kind, o.name)),
        })
    }
}

/// The Vector `kubernetes_logs` record of one line.
#[derive(Serialize)]
struct Record<'a> {
    message: &'a str,
    timestamp: &'a str,
    kubernetes: RecordPod<'a>,
}

#[derive(Serialize)]
struct RecordPod<'a> {
    pod_name: &'a str,
    pod_namespace: &'a str,
    container_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_node_name: Option<&'a str>,
    pod_uid: &'a str,
    pod_labels: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_owner: Option<&'a str>,
}

/// One line read from a log.
enum Read {
    /// A whole line, or the last one of a log that ended without a newline.
    Line(Vec<u8>),
    /// The first [`MAX_LINE`] bytes of a longer line; the rest was skipped.
    Oversized(Vec<u8>),
}

/// The lines of a log, as they arrive; ends at the end of the log, or after
/// an error.
fn read_lines<R>(reader: R) -> impl futures::Stream<Item = std::io::Result<Read>>
where
    R: futures::AsyncBufRead + Unpin,
{
    stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buf = Vec::with_capacity(256);
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) => None,
            Ok(n) if n as u64 == MAX_LINE && !buf.ends_with(b"\n") => {
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    match (&mut reader)
                        .take(MAX_LINE)
                        .read_until(b'\n', &mut rest)
                        .await
                    {
                        Ok(0) => break,
                        Ok(_) if rest.ends_with(b"\n") => break,
                        Ok(_) => {}
                        Err(e) => return Some((Err(e), None)),
                    }
                }
                Some((Ok(Read::Oversized(buf)), Some(reader)))
            }
            Ok(_) => Some((Ok(Read::Line(buf)), Some(reader))),
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// A followed container: pod uid and container name.
type Key = (String, String);

/// The latest instance of a container that has a log: its container ID, and
/// whether it runs.
fn instance(status: &ContainerStatus) -> (Option<String>, bool) {
    let state = status.state.as_ref();
    if let Some(running) = state.and_then(|s| s.running.as_ref()) {
        let id = status.container_id.clone();
        // A running container without an ID yet still has a log.
        return (
            id.or_else(|| running.started_at.as_ref().map(|t| t.0.to_string())),
            true,
        );
    }
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        return (
            t.container_id.clone().or(status.container_id.clone()),
            false,
        );
    }
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    (last.and_then(|t| t.container_id.clone()), false)
}

/// One followed container, as the manager knows it.
#[derive(Debug)]
struct Tracked {
    pod: Arc<PodMeta>,
    /// The pod watch (selector and namespace) that found it.
    watch: usize,
    /// The latest instance the pod's status shows, and whether it runs.
    instance: Option<String>,
    running: bool,
    /// The instance whose log was read to its end.
    done: Option<String>,
    /// Timestamp of the last line delivered.
    last: Option<jiff::Timestamp>,
    /// The follower task now reading (or waiting to), by serial number.
    follower: Option<Running>,
    /// Reconnects in a row without a new line.
    failures: u32,
    /// Counted once when it had to wait for a stream slot.
    capped: Arc<AtomicBool>,
    stream: StreamId,
}

#[derive(Debug)]
struct Running {
    serial: u64,
    /// The instance the status showed when the follower started.
    instance: Option<String>,
    cancel: CancellationToken,
    wake: Arc<Notify>,
}

/// What a follower task reports when its stream ends.
#[derive(Debug)]
struct Ended {
    key: Key,
    serial: u64,
    last: Option<jiff::Timestamp>,
    /// Lines delivered by this connection.
    delivered: u64,
    error: Option<String>,
}

/// Shared by the manager and its followers.
struct Shared {
    client: Client,
    intake: Intake,
    health: Arc<SourceHealth>,
    permits: Arc<Semaphore>,
    max_streams: usize,
    /// One warning when the cap is first reached.
    warned: AtomicBool,
    backlog: Option<Duration>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("max_streams", &self.max_streams)
            .field("free", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

/// The pod log source: its pod watches and container followers.
#[derive(Debug)]
pub(super) struct Follower {
    shared: Arc<Shared>,
    settings: PodLogSettings,
    namespaces: Vec<String>,
    cancel: CancellationToken,
}

/// One pod watch of the manager: a selector in one namespace (or all).
#[derive(Debug)]
struct PodWatch {
    selector: usize,
    /// Pod uids listed since the watch's last `Init`, until `InitDone`.
    listing: Option<HashSet<String>>,
    /// The initial list is done, and no error since without a change
    /// delivered after it.
    live: bool,
}

impl Follower {
    pub(super) fn new(
        client: Client,
        settings: PodLogSettings,
        namespaces: &[String],
        intake: Intake,
        health: &Health,
        cancel: CancellationToken,
    ) -> Follower {
        let max_streams = settings.max_streams.max(1);
        Follower {
            shared: Arc::new(Shared {
                client,
                intake,
                health: health.register(format!("{SOURCE}/logs")),
                permits: Arc::new(Semaphore::new(max_streams)),
                max_streams,
                warned: AtomicBool::new(false),
                backlog: settings.backlog,
            }),
            settings,
            namespaces: namespaces.to_vec(),
            cancel,
        }
    }

    /// Watches the selected pods and follows their containers until
    /// cancelled.
    pub(super) async fn run(self) {
        let mut watches = Vec::new();
        let mut streams = Vec::new();
        for (i, sel) in self.settings.selectors.iter().enumerate() {
            let scopes: Vec<Option<&str>> = match &sel.namespace {
                Some(ns) => vec![Some(ns.as_str())],
                None if self.namespaces.is_empty() => vec![None],
                None => self.namespaces.iter().map(|n| Some(n.as_str())).collect(),
            };
            for ns in scopes {
                let api: Api<Pod> = match ns {
                    Some(ns) => Api::namespaced(self.shared.client.clone(), ns),
                    None => Api::all(self.shared.client.clone()),
                };
                let mut config = watcher::Config::default();
                if !sel.labels.trim().is_empty() {
                    config = config.labels(&sel.labels);
                }
                let w = watches.len();
                watches.push(PodWatch {
                    selector: i,
                    listing: None,
                    live: false,
                });
                streams.push(
                    watcher(api, config)
                        .default_backoff()
                        .map(move |e| (w, e))
                        .boxed(),
                );
            }
        }
        let mut manager = Manager {
            shared: self.shared,
            settings: self.settings,
            watches,
            tracked: HashMap::new(),
            followers: JoinSet::new(),
            serial: 0,
            cancel: self.cancel,
        };
        let mut pods = stream::select_all(streams);
        loop {
            tokio::select! {
                () = manager.cancel.cancelled() => break,
                Some(done) = manager.followers.join_next(), if !manager.followers.is_empty() => {
                    match done {
                        Ok(ended) => manager.ended(ended),
                        Err(e) => tracing::error!(source = SOURCE, error = %e, "log follower failed"),
                    }
                }
                next = pods.next() => match next {
                    Some((w, event)) => manager.pod_event(w, event),
                    None => break,
                },
            }
        }
        // Followers stop with the same token; wait for them.
        while manager.followers.join_next().await.is_some() {}
    }
}

struct Manager {
    shared: Arc<Shared>,
    settings: PodLogSettings,
    watches: Vec<PodWatch>,
    tracked: HashMap<Key, Tracked>,
    followers: JoinSet<Ended>,
    serial: u64,
    cancel: CancellationToken,
}

impl Manager {
    fn pod_event(&mut self, w: usize, event: watcher::Result<watcher::Event<Pod>>) {
        match event {
            Ok(watcher::Event::Init) => self.watches[w].listing = Some(HashSet::new()),
            Ok(watcher::Event::InitApply(pod)) => {
                if let (Some(listing), Some(uid)) =
                    (&mut self.watches[w].listing, &pod.metadata.uid)
                {
                    listing.insert(uid.clone());
                }
                self.observe(w, &pod);
            }
            Ok(watcher::Event::InitDone) => {
                let listed = self.watches[w].listing.take().unwrap_or_default();
                let gone: Vec<Key> = self
                    .tracked
                    .iter()
                    .filter(|(k, t)| t.watch == w && !listed.contains(&k.0))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in gone {
                    self.forget(&key);
                }
                self.live(w);
            }
            Ok(watcher::Event::Apply(pod)) => {
                self.live(w);
                self.observe(w, &pod);
            }
            Ok(watcher::Event::Delete(pod)) => {
                self.live(w);
                if let Some(uid) = &pod.metadata.uid {
                    let gone: Vec<Key> = self
                        .tracked
                        .keys()
                        .filter(|k| &k.0 == uid)
                        .cloned()
                        .collect();
                    for key in gone {
                        self.forget(&key);
                    }
                }
            }
            Err(e) => {
                if matches!(&e, watcher::Error::WatchError(s) if s.code == 410) {
                    tracing::info!(
                        source = SOURCE,
                        "pod watch for logs expired (410 Gone), relisting"
                    );
                    return;
                }
                self.watches[w].live = false;
                self.shared.health.set_connected(false);
                self.shared.health.set_error(&e);
                tracing::warn!(source = SOURCE, selector = %self.settings.selectors[self.watches[w].selector].labels, error = %e, "pod watch for logs failed");
            }
        }
    }

    /// The pod watch `w` works (again): the source is connected when all do.
    fn live(&mut self, w: usize) {
        if !self.watches[w].live {
            self.watches[w].live = true;
            if self.watches.iter().all(|w| w.live) {
                self.shared.health.set_connected(true);
            }
        }
    }

    /// Stops following a container.
    fn forget(&mut self, key: &Key) {
        if let Some(t) = self.tracked.remove(key)
            && let Some(f) = t.follower
        {
            f.cancel.cancel();
        }
    }

    /// A pod as its watch `w` shows it now.
    fn observe(&mut self, w: usize, pod: &Pod) {
        let Some(meta) = PodMeta::of(pod) else { return };
        let selector = &self.settings.selectors[self.watches[w].selector];
        let status = pod.status.as_ref();
        let statuses = status
            .and_then(|s| s.init_container_statuses.as_ref())
            .into_iter()
            .flatten()
            .chain(
                status
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .flatten(),
            );
        let wanted: Vec<(String, Option<String>, bool)> = statuses
            .filter(|c| {
                selector
                    .container
                    .as_ref()
                    .is_none_or(|want| *want == c.name)
            })
            .map(|c| {
                let (id, running) = instance(c);
                (c.name.clone(), id, running)
            })
            .collect();
        let meta = Arc::new(meta);
        for (container, id, running) in wanted {
            let key = (meta.uid.clone(), container);
            let t = self.tracked.entry(key.clone()).or_insert_with(|| Tracked {
                stream: StreamId::new(format!(
                    "{SOURCE}/logs/{}/{}/{}",
                    meta.namespace, meta.name, key.1
                )),
                pod: meta.clone(),
                watch: w,
                instance: None,
                running: false,
                done: None,
                last: None,
                follower: None,
                failures: 0,
                capped: Arc::new(AtomicBool::new(false)),
            });
            // Another selector follows it already.
            if t.watch != w {
                continue;
            }
            t.pod = meta.clone();
            if t.instance != id {
                // A new instance: read it now, even if a reconnect was
                // waiting out its backoff.
                t.failures = 0;
                if let Some(f) = &t.follower {
                    f.wake.notify_one();
                }
            }
            t.instance = id;
            t.running = running;
            self.consider(&key, Duration::ZERO);
        }
    }

    /// Starts a follower for `key` if its container has a log to read and
    /// none is reading it.
    fn consider(&mut self, key: &Key, delay: Duration) {
        let Some(t) = self.tracked.get_mut(key) else {
            return;
        };
        let readable = t.instance.is_some() && (t.running || t.done != t.instance);
        if t.follower.is_some() || !readable {
            return;
        }
        self.serial += 1;
        let cancel = self.cancel.child_token();
        let wake = Arc::new(Notify::new());
        t.follower = Some(Running {
            serial: self.serial,
            instance: t.instance.clone(),
            cancel: cancel.clone(),
            wake: wake.clone(),
        });
        let job = Job {
            key: key.clone(),
            serial: self.serial,
            pod: t.pod.clone(),
            stream: t.stream.clone(),
            last: t.last,
            delay,
            wake,
            capped: t.capped.clone(),
            shared: self.shared.clone(),
            cancel,
        };
        self.followers.spawn(job.run());
    }

    /// A follower's stream ended: decide whether and when to read again.
    fn ended(&mut self, ended: Ended) {
        let Some(t) = self.tracked.get_mut(&ended.key) else {
            return;
        };
        let Some(running) = t.follower.take_if(|f| f.serial == ended.serial) else {
            return;
        };
        t.last = t.last.max(ended.last);
        if let Some(error) = &ended.error {
            self.shared.health.set_error(error);
            tracing::warn!(stream = %t.stream, error = %error, "pod log stream failed");
        }
        let delay = if ended.error.is_none() && !t.running && t.instance == running.instance {
            // The instance exited and its log was read to the end.
            t.done = t.instance.clone();
            t.failures = 0;
            Duration::ZERO
        } else if !t.running && t.instance != running.instance {
            // A newer instance exited meanwhile: read it at once.
            t.failures = 0;
            Duration::ZERO
        } else {
            // Still running: a dropped connection, an error, or the pod
            // update announcing the exit has not arrived yet.
            t.failures = if ended.delivered > 0 {
                1
            } else {
                t.failures + 1
            };
            let doublings = t.failures.saturating_sub(1).min(8);
            (RETRY_MIN * 2u32.pow(doublings)).min(RETRY_MAX)
        };
        let key = ended.key;
        self.consider(&key, delay);
    }
}

/// One connection to one container's log.
struct Job {
    key: Key,
    serial: u64,
    pod: Arc<PodMeta>,
    stream: StreamId,
    last: Option<jiff::Timestamp>,
    delay: Duration,
    wake: Arc<Notify>,
    capped: Arc<AtomicBool>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl Job {
    async fn run(mut self) -> Ended {
        let mut delivered = 0;
        let error = self.follow(&mut delivered).await.err();
        Ended {
            key: self.key,
            serial: self.serial,
            last: self.last,
            delivered,
            error,
        }
    }

    /// Waits out the delay and for a stream slot, then reads the log until
    /// it ends, fails or the job is cancelled.
    async fn follow(&mut self, delivered: &mut u64) -> Result<(), String> {
        if !self.delay.is_zero() {
            tokio::select! {
                () = self.cancel.cancelled() => return Ok(()),
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.delay) => {}
            }
        }
        let permits = self.shared.permits.clone();
        let _permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !self.capped.swap(true, Ordering::Relaxed) {
                    self.shared.health.reject("max_streams");
                }
                if !self.shared.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(stream = %self.stream, max_streams = self.shared.max_streams, "pod log stream cap reached; further containers wait for a free slot");
                }
                tokio::select! {
                    () = self.cancel.cancelled() => return Ok(()),
                    p = permits.acquire_owned() => p.map_err(|e| e.to_string())?,
                }
            }
        };
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.pod.namespace);
        let params = LogParams {
            container: Some(self.key.1.clone()),
            follow: true,
            timestamps: true,
            // The API takes whole seconds: resume from the second of the last
            // line and skip what was read.
            since_time: self
                .last
                .and_then(|t| jiff::Timestamp::from_second(t.as_second()).ok()),
            since_seconds: match self.last {
                None => self.shared.backlog.map(|b| b.as_secs().max(1) as i64),
                Some(_) => None,
            },
            ..LogParams::default()
        };
        let reader = tokio::select! {
            () = self.cancel.cancelled() => return Ok(()),
            r = api.log_stream(&self.pod.name, &params) => r.map_err(|e| e.to_string())?,
        };
        // The lines that are ready together make one delivery.
        let mut chunks = std::pin::pin!(read_lines(Box::pin(reader)).ready_chunks(BATCH));
        let mut lines = Vec::new();
        loop {
            let chunk = tokio::select! {
                () = self.cancel.cancelled() => return Ok(()),
                chunk = chunks.next() => chunk,
            };
            let Some(chunk) = chunk else {
                return Ok(());
            };
            let mut failed = None;
            for read in chunk {
                match read {
                    Ok(Read::Line(raw)) => self.line(&raw, &mut lines),
                    Ok(Read::Oversized(head)) => {
                        self.shared.health.reject("oversized_log_line");
                        tracing::warn!(stream = %self.stream, max_bytes = MAX_LINE, "log line too long, the rest dropped");
                        self.line(&head, &mut lines);
                    }
                    // A line cut off by a dropped connection is not taken:
                    // the reconnection reads it again, whole.
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
            if !self.flush(&mut lines, delivered).await {
                return Ok(());
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }

    /// Turns one log line (`<RFC 3339 time> <text>\n`) into a record, unless
    /// it was delivered before.
    fn line(&mut self, raw: &[u8], out: &mut Vec<String>) {
        let text = String::from_utf8_lossy(raw);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let (stamp, message) = text.split_once(' ').unwrap_or((text, ""));
        let Ok(time) = stamp.parse::<jiff::Timestamp>() else {
            self.shared.health.reject("malformed_log_line");
            tracing::warn!(stream = %self.stream, line = %text.chars().take(80).collect::<String>(), "log line without a timestamp, skipped");
            return;
        };
        if self.last.is_some_and(|last| time <= last) {
            return;
        }
        self.last = Some(time);
        let pod = &*self.pod;
        let record = Record {
            message,
            timestamp: stamp,
            kubernetes: RecordPod {
                pod_name: &pod.name,
                pod_namespace: &pod.namespace,
                container_name: &self.key.1,
                pod_node_name: pod.node.as_deref(),
                pod_uid: &pod.uid,
                pod_labels: &pod.labels,
                pod_owner: pod.owner.as_deref(),
            },
        };
        match serde_json::to_string(&record) {
            Ok(line) => out.push(line),
            Err(e) => {
                self.shared.health.reject("unserializable");
                tracing::warn!(stream = %self.stream, error = %e, "log record not serializable, skipped");
            }
        }
    }

    /// Delivers the pending lines; `false` when the pipeline is shut down or
    /// the job cancelled.
    async fn flush(&self, lines: &mut Vec<String>, delivered: &mut u64) -> bool {
        if lines.is_empty() {
            return true;
        }
        let batch = std::mem::take(lines);
        let n = batch.len() as u64;
        let delivery = Delivery::new(SOURCE, self.stream.clone(), batch);
        tokio::select! {
            () = self.cancel.cancelled() => false,
            sent = self.shared.intake.send(delivery) => {
                if sent.is_ok() {
                    self.shared.health.add_records(n);
                    *delivered += n;
                }
                sent.is_ok()
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_are_checked() {
        for ok in [
            "",
            "app=vault",
            "app==vault,tier!=web",
            "app.kubernetes.io/name=csi-node, !legacy",
            "env in (prod, staging),tier notin (web)",
            "release",
            "app=",
        ] {
            assert_eq!(check_label_selector(ok), Ok(()), "{ok}");
        }
        for bad in [
            "=vault",
            "app=va lue",
            "app in prod",
            "env in (prod",
            "a,,b",
            "-app=x",
            "app=x)",
        ] {
            assert!(check_label_selector(bad).is_err(), "{bad}");
        }
    }
}

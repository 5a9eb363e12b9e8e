//! A local API server for the Kubernetes sources' tests: list and watch as
//! kube's client speaks them, pod logs, driven by a recorded stream.
//!
//! The recording is NDJSON in the replay contract's shapes: watch events of
//! Pods, Nodes, core/v1 Events, PersistentVolumeClaims, PersistentVolumes
//! and the object graph's kinds (Services, EndpointSlices, webhook
//! configurations, StorageClasses, workloads, ResourceQuotas,
//! PodDisruptionBudgets: [`RESOURCES`], each at its API group's path), and
//! Vector log records. Each line is one *step*; step
//! `i` gets resourceVersion `BASE + i + 1` (log steps take one too, as any
//! write in the cluster would), overriding what the recording says. The test
//! *releases* steps; released steps are the cluster's history:
//!
//! - **list** (`GET /api/v1/pods`, `/api/v1/namespaces/NS/pods`, ...): the
//!   objects as of the latest released step, without `kind`/`apiVersion` per
//!   item, `metadata.resourceVersion` of the list; `limit` and `continue` are
//!   honoured (the continue token pins the list's resourceVersion), and
//!   [`Options::max_page`] makes pages smaller than asked, as a server may.
//! - **watch** (`watch=true`): a chunked stream of watch-event lines after
//!   `resourceVersion`, waiting for further releases; `BOOKMARK` events when
//!   `allowWatchBookmarks` is set and the cluster moved on without a change
//!   to this resource; `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`).
//!   [`ApiServer::expire`] scripts a `410 Gone`: once the given step is
//!   released, a watch from before it gets an `ERROR` event with a Status of
//!   code 410 (what the API server sends) and ends, and so does any new watch
//!   from before it: the client must relist.
//! - **metadata only**: a request that accepts
//!   `application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`
//!   (kube's `Api<PartialObjectMeta<K>>`) gets `meta.k8s.io/v1`
//!   `PartialObjectMetadata` objects: the metadata alone, no kind of their
//!   own, as the API server sends them.
//! - **events.k8s.io/v1**: the same Events converted as the API server does
//!   (involvedObject → regarding, message → note, ...), or 404 when
//!   [`Options::events_v1`] is off.
//! - **pod logs** (`/api/v1/namespaces/NS/pods/NAME/log?container=C`): the
//!   released log lines of that container as `<timestamp> <text>` with
//!   `timestamps=true`, from `sinceTime` (whole seconds, lines at or after
//!   it); `follow=true` keeps the stream open for further releases.
//!   `sinceSeconds` is logged but not applied: it counts back from the wall
//!   clock, and recordings keep their own times.
//!   [`ApiServer::cut_log`] breaks a log connection (half a line, then an
//!   error) and [`ApiServer::end_log`] ends it cleanly (the container exited).
//!
//! Every request is logged ([`ApiServer::requests`]) so tests can check what
//! the client asked for.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::stream;
use serde_json::{Value, json};
use tokio::sync::watch;

/// resourceVersion of the cluster before the first step.
pub const BASE: u64 = 1000;

/// The kinds of object the fixture serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Events,
    Pods,
    Nodes,
    Claims,
    Volumes,
    Services,
    EndpointSlices,
    ValidatingWebhooks,
    MutatingWebhooks,
    StorageClasses,
    Deployments,
    ReplicaSets,
    StatefulSets,
    DaemonSets,
    Jobs,
    CronJobs,
    Quotas,
    PodDisruptionBudgets,
}

/// Each resource: its kind, its API (`v1` is the core group) and plural.
const RESOURCES: &[(Resource, &str, &str, &str)] = &[
    (Resource::Events, "Event", "v1", "events"),
    (Resource::Pods, "Pod", "v1", "pods"),
    (Resource::Nodes, "Node", "v1", "nodes"),
    (
        Resource::Claims,
        "PersistentVolumeClaim",
        "v1",
        "persistentvolumeclaims",
    ),
    (
        Resource::Volumes,
        "PersistentVolume",
        "v1",
        "persistentvolumes",
    ),
    (Resource::Services, "Service", "v1", "services"),
    (
        Resource::EndpointSlices,
        "EndpointSlice",
        "discovery.k8s.io/v1",
        "endpointslices",
    ),
    (
        Resource::ValidatingWebhooks,
        "ValidatingWebhookConfiguration",
        "admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
    ),
    (
        Resource::MutatingWebhooks,
        "MutatingWebhookConfiguration",
        "admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
    ),
    (
        Resource::StorageClasses,
        "StorageClass",
        "storage.k8s.io/v1",
        "storageclasses",
    ),
    (
        Resource::Deployments,
        "Deployment",
        "apps/v1",
        "deployments",
    ),
    (
        Resource::ReplicaSets,
        "ReplicaSet",
        "apps/v1",
        "replicasets",
    ),
    (
        Resource::StatefulSets,
        "StatefulSet",
        "apps/v1",
        "statefulsets",
    ),
    (Resource::DaemonSets, "DaemonSet", "apps/v1", "daemonsets"),
    (Resource::Jobs, "Job", "batch/v1", "jobs"),
    (Resource::CronJobs, "CronJob", "batch/v1", "cronjobs"),
    (Resource::Quotas, "ResourceQuota", "v1", "resourcequotas"),
    (
        Resource::PodDisruptionBudgets,
        "PodDisruptionBudget",
        "policy/v1",
        "poddisruptionbudgets",
    ),
];

impl Resource {
    fn entry(self) -> &'static (Resource, &'static str, &'static str, &'static str) {
        RESOURCES
            .iter()
            .find(|e| e.0 == self)
            .expect("every resource is in RESOURCES")
    }

    fn of_kind(kind: &str) -> Option<Resource> {
        RESOURCES.iter().find(|e| e.1 == kind).map(|e| e.0)
    }

    /// The resource served at `api` (`v1`, `apps/v1`, ...) as `plural`.
    fn of_path(api: &str, plural: &str) -> Option<Resource> {
        RESOURCES
            .iter()
            .find(|e| e.2 == api && e.3 == plural)
            .map(|e| e.0)
    }

    pub fn kind(self) -> &'static str {
        self.entry().1
    }

    pub fn api_version(self) -> &'static str {
        self.entry().2
    }

    /// The path of its collection in all namespaces (or cluster-wide).
    pub fn path(self) -> String {
        let (_, _, api, plural) = self.entry();
        match *api {
            "v1" => format!("/api/v1/{plural}"),
            api => format!("/apis/{api}/{plural}"),
        }
    }
}

/// One line of a recording.
#[derive(Clone, Debug)]
pub enum Step {
    Watch {
        resource: Resource,
        type_: String,
        /// The object, `metadata.resourceVersion` set to the step's.
        object: Value,
    },
    Log {
        namespace: String,
        pod: String,
        container: String,
        timestamp: String,
        text: String,
    },
}

/// A recorded stream: its lines as written, and the steps they are.
#[derive(Clone, Debug)]
pub struct Recording {
    pub lines: Vec<String>,
    pub steps: Vec<Step>,
}

pub fn rv(step: usize) -> u64 {
    BASE + step as u64 + 1
}

impl Recording {
    pub fn load(path: &Path) -> Recording {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Recording::parse(&text)
    }

    pub fn parse(text: &str) -> Recording {
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        let steps = lines
            .iter()
            .enumerate()
            .map(|(i, l)| Step::parse(i, l).unwrap_or_else(|| panic!("step {i}: {l}")))
            .collect();
        Recording { lines, steps }
    }

    /// The leading steps that are the cluster's state when the sources
    /// start: ADDED objects other than Events.
    pub fn initial(&self) -> usize {
        self.steps
            .iter()
            .take_while(|s| {
                matches!(s, Step::Watch { resource, type_, .. }
                    if type_ == "ADDED" && *resource != Resource::Events)
            })
            .count()
    }

    /// The index of the first step whose line contains `needle`.
    pub fn find(&self, needle: &str) -> usize {
        self.lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no step with {needle:?}"))
    }
}

impl Step {
    fn parse(i: usize, line: &str) -> Option<Step> {
        let v: Value = serde_json::from_str(line).ok()?;
        if let Some(object) = v.get("object") {
            let mut object = object.clone();
            let resource = Resource::of_kind(object["kind"].as_str()?)?;
            object["metadata"]["resourceVersion"] = json!(rv(i).to_string());
            return Some(Step::Watch {
                resource,
                type_: v["type"].as_str()?.to_owned(),
                object,
            });
        }
        let k = v.get("kubernetes")?;
        Some(Step::Log {
            namespace: k["pod_namespace"].as_str()?.to_owned(),
            pod: k["pod_name"].as_str()?.to_owned(),
            container: k["container_name"].as_str()?.to_owned(),
            timestamp: v["timestamp"].as_str()?.to_owned(),
            text: v["message"].as_str()?.to_owned(),
        })
    }

    /// Whether `line`, as a source delivered it, carries this step: the
    /// object at this step's resourceVersion, or this log line.
    pub fn carried_by(&self, i: usize, line: &Value) -> bool {
        match self {
            Step::Watch { resource, .. } => {
                line["object"]["kind"] == resource.kind()
                    && line["object"]["metadata"]["resourceVersion"].as_str()
                        == Some(rv(i).to_string().as_str())
            }
            Step::Log {
                pod,
                container,
                timestamp,
                ..
            } => {
                let k = &line["kubernetes"];
                k["pod_name"] == pod.as_str()
                    && k["container_name"] == container.as_str()
                    && line["timestamp"] == timestamp.as_str()
            }
        }
    }
}

/// How the fixture behaves.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Serve events.k8s.io/v1 (else 404 there).
    pub events_v1: bool,
    /// Largest page of a list, whatever `limit` asks.
    pub max_page: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            events_v1: true,
            max_page: None,
        }
    }
}

/// A request as the fixture saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// The `Accept` header, if any.
    pub accept: Option<String>,
}

impl Request {
    /// Asked for metadata only (`PartialObjectMetadata`), as kube does for
    /// `Api<PartialObjectMeta<K>>`.
    pub fn is_metadata_only(&self) -> bool {
        self.accept
            .as_deref()
            .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
    }

    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
    }
}

#[derive(Debug, Default)]
struct World {
    steps: Vec<Step>,
    released: usize,
    options: Options,
    /// Scripted 410s: once this step is released, watches from before it
    /// are expired.
    expire_at: HashMap<Resource, usize>,
    /// Bumped to end the open watches of a resource.
    watch_generation: HashMap<Resource, u64>,
    /// Lists wait while held.
    hold_lists: bool,
    /// Lists of these resources fail with 500.
    failing: HashSet<Resource>,
    /// Log connections to break after a step (by index) was sent: cut
    /// (error) or ended (clean).
    log_breaks: HashMap<usize, LogBreak>,
    /// Held cut connections fail once this is set.
    snap: bool,
    requests: Vec<Request>,
    bookmarks: u64,
    open_logs: usize,
    max_open_logs: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LogBreak {
    Cut,
    End,
    /// After a cut's half line: fail once [`ApiServer::snap_logs`] says.
    Hold,
}

impl World {
    fn current_rv(&self) -> u64 {
        BASE + self.released as u64
    }

    /// The objects of `resource` as of `at` (a resourceVersion), in
    /// (namespace, name) order.
    fn objects_at(&self, resource: Resource, at: u64) -> Vec<&Value> {
        let mut out: BTreeMap<(&str, &str), &Value> = BTreeMap::new();
        let upto = ((at - BASE) as usize).min(self.released);
        for step in &self.steps[..upto] {
            let Step::Watch {
                resource: r,
                type_,
                object,
            } = step
            else {
                continue;
            };
            if *r != resource {
                continue;
            }
            let meta = &object["metadata"];
            let key = (
                meta["namespace"].as_str().unwrap_or_default(),
                meta["name"].as_str().unwrap_or_default(),
            );
            if type_ == "DELETED" {
                out.remove(&key);
            } else {
                out.insert(key, object);
            }
        }
        out.into_values().collect()
    }
}

struct Shared {
    world: Mutex<World>,
    changed: watch::Sender<u64>,
}

impl Shared {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the world and wakes every waiting stream.
    fn change(&self, f: impl FnOnce(&mut World)) {
        f(&mut self.world());
        self.changed.send_modify(|v| *v += 1);
    }
}

/// The running fixture; stops when dropped.
pub struct ApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    kubeconfig: tempfile::NamedTempFile,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl ApiServer {
    /// Serves `recording` on 127.0.0.1 (a free port), nothing released yet.
    pub async fn start(recording: &Recording, options: Options) -> ApiServer {
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            world: Mutex::new(World {
                steps: recording.steps.clone(),
                options,
                ..World::default()
            }),
            changed,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fixture");
        let addr = listener.local_addr().expect("fixture address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let kubeconfig = tempfile::NamedTempFile::new().expect("temp kubeconfig");
        std::fs::write(
            kubeconfig.path(),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fixture\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: fixture\n  context:\n    cluster: fixture\n    user: tester\ncurrent-context: fixture\nusers:\n- name: tester\n  user:\n    token: not-a-secret\n"
            ),
        )
        .expect("write kubeconfig");
        ApiServer {
            shared,
            addr,
            kubeconfig,
            server,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.kubeconfig.path().to_path_buf()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes steps `..n` the cluster's history.
    pub fn release(&self, n: usize) {
        self.shared
            .change(|w| w.released = w.released.max(n).min(w.steps.len()));
    }

    /// Appends a step (a line of a recording) to the script; its index.
    pub fn push_step(&self, line: &str) -> usize {
        let mut at = 0;
        self.shared.change(|w| {
            at = w.steps.len();
            let step = Step::parse(at, line).unwrap_or_else(|| panic!("not a step: {line}"));
            w.steps.push(step);
        });
        at
    }

    pub fn released(&self) -> usize {
        self.shared.world().released
    }

    /// Once `step` is released, watches of `resource` from before it are
    /// expired (410 Gone).
    pub fn expire(&self, resource: Resource, step: usize) {
        self.shared.change(|w| {
            w.expire_at.insert(resource, step);
        });
    }

    /// Ends the open watches of `resource`, as a server-side timeout would.
    pub fn end_watches(&self, resource: Resource) {
        self.shared
            .change(|w| *w.watch_generation.entry(resource).or_default() += 1);
    }

    pub fn hold_lists(&self, hold: bool) {
        self.shared.change(|w| w.hold_lists = hold);
    }

    /// Lists of `resource` fail with 500 while `fail` is set.
    pub fn fail_lists(&self, resource: Resource, fail: bool) {
        self.shared.change(|w| {
            if fail {
                w.failing.insert(resource);
            } else {
                w.failing.remove(&resource);
            }
        });
    }

    /// Breaks the log connection that sends log step `step`, right after it:
    /// half of a line is sent, then the connection is held until
    /// [`ApiServer::snap_logs`] breaks it (so that what came before surely
    /// reached the client).
    pub fn cut_log(&self, step: usize) {
        self.shared.change(|w| {
            w.log_breaks.insert(step, LogBreak::Cut);
        });
    }

    /// Breaks the connections held by [`ApiServer::cut_log`].
    pub fn snap_logs(&self) {
        self.shared.change(|w| w.snap = true);
    }

    /// Ends the log connection that sends log step `step` right after it,
    /// as the container's exit does.
    pub fn end_log(&self, step: usize) {
        self.shared.change(|w| {
            w.log_breaks.insert(step, LogBreak::End);
        });
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.world().requests.clone()
    }

    pub fn bookmarks(&self) -> u64 {
        self.shared.world().bookmarks
    }

    pub fn max_open_logs(&self) -> usize {
        self.shared.world().max_open_logs
    }

    pub fn open_logs(&self) -> usize {
        self.shared.world().open_logs
    }
}

/// Where a request goes.
enum Route {
    Collection {
        resource: Resource,
        namespace: Option<String>,
        events_v1: bool,
    },
    Log {
        namespace: String,
        pod: String,
    },
}

fn route(path: &str) -> Option<Route> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let collection = |api: &str, plural: &str, namespace: Option<&str>| {
        let events_v1 = api == "events.k8s.io/v1";
        let resource = if events_v1 {
            (plural == "events").then_some(Resource::Events)?
        } else {
            Resource::of_path(api, plural)?
        };
        Some(Route::Collection {
            resource,
            namespace: namespace.map(str::to_owned),
            events_v1,
        })
    };
    match parts.as_slice() {
        ["api", "v1", plural] => collection("v1", plural, None),
        ["api", "v1", "namespaces", ns, "pods", pod, "log"] => Some(Route::Log {
            namespace: (*ns).to_owned(),
            pod: (*pod).to_owned(),
        }),
        ["api", "v1", "namespaces", ns, plural] => collection("v1", plural, Some(ns)),
        ["apis", group, version, plural] => collection(&format!("{group}/{version}"), plural, None),
        ["apis", group, version, "namespaces", ns, plural] => {
            collection(&format!("{group}/{version}"), plural, Some(ns))
        }
        _ => None,
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn error(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        status(code.as_u16(), reason, message).to_string(),
    )
        .into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .map(str::to_owned);
    shared.world().requests.push(Request {
        path: uri.path().to_owned(),
        query: query.clone(),
        accept: accept.clone(),
    });
    match route(uri.path()) {
        Some(Route::Collection {
            resource,
            namespace,
            events_v1,
        }) => {
            if events_v1 && !shared.world().options.events_v1 {
                return error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "the server could not find the requested resource",
                );
            }
            let req = Request {
                path: uri.path().to_owned(),
                query,
                accept,
            };
            let view = View {
                resource,
                namespace,
                selector: req.query.get("labelSelector").cloned().unwrap_or_default(),
                events_v1,
                metadata_only: req.is_metadata_only(),
            };
            if req.is_watch() {
                watch_response(shared, view, &req)
            } else {
                list(shared, view, &req).await
            }
        }
        Some(Route::Log { namespace, pod }) => log(shared, namespace, pod, &query),
        None => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

/// What one list or watch shows of a resource.
#[derive(Clone)]
struct View {
    resource: Resource,
    namespace: Option<String>,
    selector: String,
    events_v1: bool,
    /// Objects as `meta.k8s.io/v1` `PartialObjectMetadata`.
    metadata_only: bool,
}

impl View {
    /// The `apiVersion` of what this view shows.
    fn api_version(&self) -> &'static str {
        if self.metadata_only {
            "meta.k8s.io/v1"
        } else if self.events_v1 {
            "events.k8s.io/v1"
        } else {
            self.resource.api_version()
        }
    }

    /// The `kind` of a list of what this view shows.
    fn list_kind(&self) -> String {
        if self.metadata_only {
            "PartialObjectMetadataList".to_owned()
        } else {
            format!("{}List", self.resource.kind())
        }
    }

    fn shows(&self, object: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && object["metadata"]["namespace"] != ns.as_str()
        {
            return false;
        }
        selects(&self.selector, &object["metadata"]["labels"])
    }

    /// The object as this API version shows it.
    fn render(&self, object: &Value) -> Value {
        if self.metadata_only {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": object["metadata"]})
        } else if self.events_v1 {
            to_events_v1(object)
        } else {
            object.clone()
        }
    }
}

/// A label selector of `k=v`, `k==v`, `k!=v`, `k`, `!k` terms.
fn selects(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            let label = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
            if let Some((k, v)) = term.split_once("!=") {
                label(k) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                label(k) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                label(k).is_none()
            } else {
                label(term).is_some()
            }
        })
}

/// A core/v1 Event as events.k8s.io/v1 shows it.
fn to_events_v1(e: &Value) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("kind".into(), json!("Event"));
    for (from, to) in [
        ("metadata", "metadata"),
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
        ("action", "action"),
        ("reason", "reason"),
        ("involvedObject", "regarding"),
        ("related", "related"),
        ("message", "note"),
        ("type", "type"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ] {
        if let Some(v) = e.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    Value::Object(out)
}

async fn list(shared: Arc<Shared>, view: View, req: &Request) -> Response {
    // Held lists wait (the source's health must not say connected yet).
    let mut changed = shared.changed.subscribe();
    loop {
        changed.borrow_and_update();
        if !shared.world().hold_lists {
            break;
        }
        if changed.changed().await.is_err() {
            break;
        }
    }
    let world = shared.world();
    if world.failing.contains(&view.resource) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "etcdserver: request timed out",
        );
    }
    // The continue token pins the list's resourceVersion: `rv:offset`.
    let (at, offset) = match req.query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => match token
            .split_once(':')
            .and_then(|(a, o)| Some((a.parse::<u64>().ok()?, o.parse::<usize>().ok()?)))
        {
            Some(t) => t,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "invalid continue token",
                );
            }
        },
        None => (world.current_rv(), 0),
    };
    let items: Vec<&Value> = world
        .objects_at(view.resource, at)
        .into_iter()
        .filter(|o| view.shows(o))
        .collect();
    let limit = req
        .query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0)
        .unwrap_or(usize::MAX)
        .min(world.options.max_page.unwrap_or(usize::MAX));
    let end = offset.saturating_add(limit).min(items.len());
    let page: Vec<Value> = items[offset.min(end)..end]
        .iter()
        .map(|o| {
            let mut o = view.render(o);
            // List items carry no kind or apiVersion.
            if let Some(m) = o.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            o
        })
        .collect();
    let mut metadata = json!({"resourceVersion": at.to_string()});
    if end < items.len() {
        metadata["continue"] = json!(format!("{at}:{end}"));
    }
    let kind = view.list_kind();
    let api_version = view.api_version();
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": page})
            .to_string(),
    )
        .into_response()
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn gone() -> Value {
    json!({"type": "ERROR", "object": status(410, "Expired", "too old resource version")})
}

/// A watch stream's position.
struct Watching {
    shared: Arc<Shared>,
    view: View,
    bookmarks: bool,
    /// The resourceVersion delivered up to.
    cursor: u64,
    generation: u64,
    changed: watch::Receiver<u64>,
    done: bool,
}

impl Watching {
    /// The next line, waiting for releases; `None` when the watch ends.
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        loop {
            self.changed.borrow_and_update();
            {
                let mut world = self.shared.world();
                let resource = self.view.resource;
                if world.watch_generation.get(&resource).copied().unwrap_or(0) != self.generation {
                    return None;
                }
                if let Some(&at) = world.expire_at.get(&resource)
                    && world.released > at
                    && self.cursor < rv(at)
                {
                    self.done = true;
                    return Some(line(&gone()));
                }
                let from = (self.cursor - BASE) as usize;
                let next = (from..world.released).find_map(|i| match &world.steps[i] {
                    Step::Watch {
                        resource: r,
                        type_,
                        object,
                    } if *r == resource && self.view.shows(object) => Some((i, type_, object)),
                    _ => None,
                });
                if let Some((i, type_, object)) = next {
                    self.cursor = rv(i);
                    return Some(line(
                        &json!({"type": type_, "object": self.view.render(object)}),
                    ));
                }
                let now = world.current_rv();
                if self.bookmarks && self.cursor < now {
                    self.cursor = now;
                    world.bookmarks += 1;
                    let kind = if self.view.metadata_only {
                        "PartialObjectMetadata"
                    } else {
                        resource.kind()
                    };
                    return Some(line(&json!({"type": "BOOKMARK", "object": {
                        "kind": kind, "apiVersion": self.view.api_version(),
                        "metadata": {"resourceVersion": now.to_string()}}})));
                }
            }
            self.changed.changed().await.ok()?;
        }
    }
}

fn watch_response(shared: Arc<Shared>, view: View, req: &Request) -> Response {
    let requested = req
        .query
        .get("resourceVersion")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&v| v > 0);
    let (cursor, generation, expired) = {
        let world = shared.world();
        let cursor = requested.unwrap_or_else(|| world.current_rv()).max(BASE);
        let expired = world
            .expire_at
            .get(&view.resource)
            .is_some_and(|&at| world.released > at && cursor < rv(at));
        let generation = world
            .watch_generation
            .get(&view.resource)
            .copied()
            .unwrap_or(0);
        (cursor, generation, expired)
    };
    let body = if expired {
        Body::from(line(&gone()))
    } else {
        let state = Watching {
            changed: shared.changed.subscribe(),
            shared,
            bookmarks: req
                .query
                .get("allowWatchBookmarks")
                .is_some_and(|b| b == "true"),
            view,
            cursor,
            generation,
            done: false,
        };
        let lines = stream::unfold(state, |mut s| async move {
            let next = s.next().await?;
            Some((Ok::<_, Infallible>(next), s))
        });
        Body::from_stream(lines)
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A log connection's position; counts itself open until dropped.
struct Following {
    shared: Arc<Shared>,
    namespace: String,
    pod: String,
    container: String,
    since: Option<jiff::Timestamp>,
    follow: bool,
    timestamps: bool,
    /// The next step index to look at.
    next: usize,
    changed: watch::Receiver<u64>,
    /// What to do after the line just sent.
    then: Option<LogBreak>,
}

impl Drop for Following {
    fn drop(&mut self) {
        let mut world = self.shared.world();
        world.open_logs = world.open_logs.saturating_sub(1);
    }
}

impl Following {
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        match self.then.take() {
            Some(LogBreak::End) => return None,
            Some(LogBreak::Cut) => {
                // Half a line (a time far ahead: taking it would lose every
                // later line), held until the test snaps the connection.
                self.then = Some(LogBreak::Hold);
                return Some(Ok(Bytes::from_static(b"9999-12-31T00:00:00Z half a li")));
            }
            Some(LogBreak::Hold) => loop {
                self.changed.borrow_and_update();
                if self.shared.world().snap {
                    self.then = Some(LogBreak::End);
                    // An error ends the body without its last chunk: the
                    // client sees a broken connection.
                    return Some(Err(std::io::Error::other("connection reset")));
                }
                self.changed.changed().await.ok()?;
            },
            None => {}
        }
        loop {
            self.changed.borrow_and_update();
            {
                let mut world = self.shared.world();
                while self.next < world.released {
                    let i = self.next;
                    self.next += 1;
                    let Step::Log {
                        namespace,
                        pod,
                        container,
                        timestamp,
                        text,
                    } = &world.steps[i]
                    else {
                        continue;
                    };
                    if (namespace, pod, container) != (&self.namespace, &self.pod, &self.container)
                    {
                        continue;
                    }
                    let at: jiff::Timestamp = timestamp.parse().ok()?;
                    if self.since.is_some_and(|s| at < s) {
                        continue;
                    }
                    let text = if self.timestamps {
                        format!("{timestamp} {text}\n")
                    } else {
                        format!("{text}\n")
                    };
                    // A break happens once: the reconnection reads on.
                    self.then = world.log_breaks.remove(&i);
                    return Some(Ok(Bytes::from(text)));
                }
            }
            if !self.follow {
                return None;
            }
            self.changed.changed().await.ok()?;
        }
    }
}

fn log(
    shared: Arc<Shared>,
    namespace: String,
    pod: String,
    query: &BTreeMap<String, String>,
) -> Response {
    let Some(container) = query.get("container").cloned() else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "a container name must be specified",
        );
    };
    let since = match query.get("sinceTime") {
        Some(t) => match t.parse::<jiff::Timestamp>() {
            Ok(t) if t.subsec_nanosecond() == 0 => Some(t),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "sinceTime: whole seconds, RFC 3339",
                );
            }
        },
        None => None,
    };
    {
        let mut world = shared.world();
        world.open_logs += 1;
        world.max_open_logs = world.max_open_logs.max(world.open_logs);
    }
    let state = Following {
        changed: shared.changed.subscribe(),
        shared,
        namespace,
        pod,
        container,
        since,
        follow: query.get("follow").is_some_and(|f| f == "true"),
        timestamps: query.get("timestamps").is_some_and(|t| t == "true"),
        next: 0,
        then: None,
    };
    let lines = stream::unfold(state, |mut s| async move {
        let next = s.next().await?;
        Some((next, s))
    });
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// A delivered line: its stream, the line parsed, its text.
pub type Line = (String, Value, String);

#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<Line>>,
    arrived: tokio::sync::Notify,
}

/// Lines delivered by the sources, in arrival order, for tests to wait on.
#[derive(Clone, Default)]
pub struct Collected {
    inner: Arc<Lines>,
}

impl Collected {
    /// Drains `rx` into the collection until it closes.
    pub fn spawn(mut rx: tokio::sync::mpsc::Receiver<ingest::source::Delivery>) -> Collected {
        let c = Collected::default();
        let inner = c.clone();
        tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                {
                    let mut lines = inner.lines_mut();
                    for l in d.lines {
                        let v: Value = serde_json::from_str(&l).expect("sources deliver JSON");
                        lines.push((d.stream.to_string(), v, l));
                    }
                }
                inner.inner.arrived.notify_waiters();
            }
        });
        c
    }

    fn lines_mut(&self) -> MutexGuard<'_, Vec<Line>> {
        self.inner
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// (stream, parsed line, line text) so far.
    pub fn lines(&self) -> Vec<Line> {
        self.lines_mut().clone()
    }

    pub fn texts(&self) -> Vec<String> {
        self.lines_mut().iter().map(|(_, _, t)| t.clone()).collect()
    }

    /// Waits until `done` holds for the lines so far. Panics (naming
    /// `what`) when nothing satisfies it for a long while: a hang guard, not
    /// a timing assertion.
    pub async fn until(&self, what: &str, done: impl Fn(&[Line]) -> bool) {
        let wait = async {
            loop {
                let notified = self.inner.arrived.notified();
                if done(&self.lines_mut()) {
                    return;
                }
                // Also poll now and then: some conditions are outside the lines.
                let _ = tokio::time::timeout(std::time::Duration::from_millis(50), notified).await;
            }
        };
        if tokio::time::timeout(std::time::Duration::from_secs(60), wait)
            .await
            .is_err()
        {
            panic!(
                "gave up waiting for {what}; lines so far: {:#?}",
                self.texts()
            );
        }
    }
}

/// Waits until `cond` holds, polling; panics naming `what` after a long
/// while (a hang guard).
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let wait = async {
        while !cond() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .is_err()
    {
        panic!("gave up waiting for {what}");
    }
}

/// Releases the steps from `from` one at a time, each once the previous one
/// reached the collector: the deliveries then arrive in the recording's
/// order. `before` runs before each release (scripted actions).
pub async fn pace(
    server: &ApiServer,
    recording: &Recording,
    collected: &Collected,
    from: usize,
    mut before: impl FnMut(usize),
) {
    for i in from..recording.steps.len() {
        before(i);
        server.release(i + 1);
        let step = &recording.steps[i];
        collected
            .until(&format!("step {i}: {}", recording.lines[i]), |lines| {
                lines.iter().any(|(_, v, _)| step.carried_by(i, v))
            })
            .await;
    }
}

pub fn streams_of(lines: &[Line]) -> HashSet<String> {
    lines.iter().map(|(s, _, _)| s.clone()).collect()
}

//! The Kubernetes sources: watches of Events, Pods, Nodes (and optionally
//! PersistentVolumeClaims and PersistentVolumes, and the other kinds of the
//! object graph) and pod logs, through the API server with kube's client.
//!
//! Each watch is a `kube::runtime::watcher` (initial list, resume from the
//! last resourceVersion, relist after `410 Gone`, bookmarks, the default
//! backoff) on its own [`StreamId`] (`kubernetes/pods`, or
//! `kubernetes/pods/<namespace>` when namespaces are configured). Every
//! object it yields becomes one line of the replay contract's watch-event
//! shape, `{"type":"ADDED|MODIFIED|DELETED","object":{...}}`: the decoders
//! stay the one definition of what a record means, and a live stream can be
//! recorded and replayed as it was.
//!
//! Design choices:
//!
//! - **Relists are not deduplicated here.** A relist re-sends every object;
//!   the decoder already drops an Event whose uid and count it has seen and a
//!   Pod or Node whose state did not change, so no duplicate signal arises,
//!   and the source keeps no copy of the cluster (only the identity of the
//!   Pods, Nodes and storage objects it delivered, to report as `DELETED`
//!   those a relist no longer has).
//! - **Event time from the objects, or from the wall clock.** With
//!   [`Settings::stamp_observed_at`] (the live default) the lines of every
//!   object watch but Events' (Pods, Nodes, claims, volumes, the graph's
//!   kinds) carry `observedAt` (now, RFC 3339), as a recorder writes them:
//!   a change of a months-old object is an edge of now, not of its
//!   creation. Without it, event time comes from the objects exactly as
//!   `replay` of the bare objects computes it (deterministic, what the
//!   tests use).
//! - **events.k8s.io/v1 first.** The Events watch uses the events.k8s.io/v1
//!   API, and core/v1 Events when the API server answers 404 for it.
//! - **One health entry per watch**, connected once its initial list is done
//!   and until a watch error; errors are kept as the entry's last error.
//! - **The graph's kinds are optional** ([`Settings::graph`]): one watch
//!   per kind (per namespace for namespaced kinds when namespaces are
//!   configured; StorageClasses, webhook configurations and
//!   PersistentVolumes cluster-wide), each on its stream
//!   (`kubernetes/services`, `kubernetes/storageclasses`, ...), their
//!   deletions across relists reported like Pods'. Only what
//!   `decode/object.rs` reads is kept: workloads, ResourceQuotas and
//!   PodDisruptionBudgets are watched metadata-only (their owner chain is all
//!   the graph takes from them), webhook configurations lose their
//!   `caBundle`s. Endpoints are not watched: EndpointSlices say the same.
//!   The watcher keeps no store: memory is a batch of objects in flight,
//!   and the identity (uid, namespace, name) of each object delivered.
//!
//! Pod logs (see [`PodLogSettings`]) follow selected containers through the
//! log API, one stream per container.

mod events;
mod logs;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

use std::fmt::Debug;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    Node, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Health, Intake};
use watch::{Trim, Watch};

pub use logs::check_label_selector;

/// The source name in deliveries and metrics.
pub const SOURCE: &str = "kubernetes";

/// What the Kubernetes sources watch. Plain values: the service's config
/// file is parsed into them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// A kubeconfig file; `None`: in-cluster config, then `$KUBECONFIG` or
    /// `~/.kube/config` (kube's `Config::infer`).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; `None`: its current context.
    pub context: Option<String>,
    /// Namespaces to watch (Events, Pods, claims, the graph's namespaced
    /// kinds); empty: all.
    pub namespaces: Vec<String>,
    pub events: bool,
    pub pods: bool,
    pub nodes: bool,
    /// Watch PersistentVolumeClaims and PersistentVolumes (topology only:
    /// pod → claim → volume → CSI driver).
    pub volumes: bool,
    /// Watch the object graph's kinds (`decode/object.rs`): Services,
    /// EndpointSlices, Validating- and MutatingWebhookConfigurations,
    /// StorageClasses, PersistentVolumeClaims and PersistentVolumes (as
    /// `volumes`), Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs,
    /// CronJobs, ResourceQuotas, PodDisruptionBudgets. One watch per kind.
    pub graph: bool,
    /// Stamp Pod and Node lines with `observedAt` = now (see the module docs).
    pub stamp_observed_at: bool,
    pub pod_logs: Option<PodLogSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            kubeconfig: None,
            context: None,
            namespaces: Vec::new(),
            events: true,
            pods: true,
            nodes: true,
            volumes: false,
            graph: false,
            stamp_observed_at: true,
            pod_logs: None,
        }
    }
}

/// Which pod logs to follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodLogSettings {
    pub selectors: Vec<LogSelector>,
    /// Log streams open at once, over all selectors. Containers beyond it
    /// wait for a free slot and are counted (`max_streams` rejections).
    pub max_streams: usize,
    /// On first opening a container's log, read only this far back
    /// (`sinceSeconds`; default 10 minutes: enough for a crash-looping
    /// container's last words, not hours of history that would only be late
    /// records after a restart of the service); `None`: from the container's
    /// start. Reconnections always resume after the last line read.
    pub backlog: Option<Duration>,
}

impl Default for PodLogSettings {
    fn default() -> Self {
        PodLogSettings {
            selectors: Vec::new(),
            max_streams: 100,
            backlog: Some(Duration::from_secs(600)),
        }
    }
}

/// Pods (and containers) whose logs are followed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSelector {
    /// `None`: every namespace (or the configured ones, see
    /// [`Settings::namespaces`]).
    pub namespace: Option<String>,
    /// A label selector, e.g. `app=vault,tier!=web`; empty selects every pod.
    pub labels: String,
    /// `None`: every container of the selected pods.
    pub container: Option<String>,
}

/// Why the Kubernetes sources could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read kubeconfig {path}: {source}")]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("no Kubernetes configuration found: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    #[error("pod log selector {labels:?}: {message}")]
    Selector { labels: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Settings {
    /// Whether PersistentVolumeClaims and PersistentVolumes are watched:
    /// for the topology (`volumes`) or the graph.
    pub fn watches_volumes(&self) -> bool {
        self.volumes || self.graph
    }
}

/// The client the settings ask for: the given kubeconfig (and context), or
/// kube's inference (in-cluster, then `$KUBECONFIG`, `~/.kube/config`).
pub async fn client(settings: &Settings) -> Result<Client> {
    let options = KubeConfigOptions {
        context: settings.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &settings.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|source| Error::ReadKubeconfig {
                    path: path.clone(),
                    source,
                })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        None if settings.context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

/// Runs the configured watches and pod log followers, one task each, until
/// `cancel` fires (or the pipeline shuts down). Errors only when the client
/// cannot be built or a selector is invalid; once running, failures are
/// retried with backoff and reported through `health`.
pub async fn run(
    settings: Settings,
    intake: Intake,
    health: Health,
    cancel: CancellationToken,
) -> Result<()> {
    let client = client(&settings).await?;
    run_with_client(client, settings, intake, health, cancel).await
}

/// [`run`] with a client built by the caller.
pub async fn run_with_client(
    client: Client,
    settings: Settings,
    intake: Intake,
    health: Health,
    cancel: CancellationToken,
) -> Result<()> {
    if let Some(logs) = &settings.pod_logs {
        for s in &logs.selectors {
            check_label_selector(&s.labels).map_err(|message| Error::Selector {
                labels: s.labels.clone(),
                message,
            })?;
        }
    }
    let mut tasks = JoinSet::new();
    let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    };
    let name = |resource: &str, ns: &Option<String>| match ns {
        Some(ns) => format!("{SOURCE}/{resource}/{ns}"),
        None => format!("{SOURCE}/{resource}"),
    };
    let config = || watcher::Config::default();
    let mut spawn = Spawn {
        tasks: &mut tasks,
        client: &client,
        intake: &intake,
        health: &health,
        cancel: &cancel,
        stamp: settings.stamp_observed_at,
    };

    for ns in &scopes {
        if settings.events {
            let watch = Watch::new(name("events", ns), false, &intake, &health, &cancel);
            spawn
                .tasks
                .spawn(events::run(client.clone(), ns.clone(), watch, config()));
        }
        if settings.pods {
            spawn.namespaced::<Pod>(ns);
        }
        if settings.watches_volumes() {
            spawn.namespaced::<PersistentVolumeClaim>(ns);
        }
        if settings.graph {
            spawn.namespaced::<Service>(ns);
            spawn.namespaced::<EndpointSlice>(ns);
            spawn.namespaced::<PartialObjectMeta<Deployment>>(ns);
            spawn.namespaced::<PartialObjectMeta<ReplicaSet>>(ns);
            spawn.namespaced::<PartialObjectMeta<StatefulSet>>(ns);
            spawn.namespaced::<PartialObjectMeta<DaemonSet>>(ns);
            spawn.namespaced::<PartialObjectMeta<Job>>(ns);
            spawn.namespaced::<PartialObjectMeta<CronJob>>(ns);
            spawn.namespaced::<PartialObjectMeta<ResourceQuota>>(ns);
            spawn.namespaced::<PartialObjectMeta<PodDisruptionBudget>>(ns);
        }
    }
    if settings.nodes {
        spawn.cluster::<Node>();
    }
    if settings.watches_volumes() {
        spawn.cluster::<PersistentVolume>();
    }
    if settings.graph {
        spawn.cluster::<StorageClass>();
        spawn.cluster::<ValidatingWebhookConfiguration>();
        spawn.cluster::<MutatingWebhookConfiguration>();
    }
    if let Some(logs) = settings.pod_logs.filter(|l| !l.selectors.is_empty()) {
        let follower = logs::Follower::new(
            client.clone(),
            logs,
            &settings.namespaces,
            intake.clone(),
            &health,
            cancel.clone(),
        );
        tasks.spawn(follower.run());
    }

    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done
            && e.is_panic()
        {
            tracing::error!(source = SOURCE, error = %e, "kubernetes source task panicked");
        }
    }
    Ok(())
}

/// Starts object watches: one task per watch, on the stream named after
/// the resource (`kubernetes/<plural>`, `/<namespace>` appended when
/// scoped), reporting deletions across relists, lines stamped with
/// `observedAt` when the settings say so.
struct Spawn<'a> {
    tasks: &'a mut JoinSet<()>,
    client: &'a Client,
    intake: &'a Intake,
    health: &'a Health,
    cancel: &'a CancellationToken,
    stamp: bool,
}

impl Spawn<'_> {
    fn watch<K>(&mut self, namespace: Option<&str>, api: Api<K>)
    where
        K: Trim + Clone + DeserializeOwned + Serialize + Debug + Send + 'static,
        K::DynamicType: Default,
    {
        let plural = K::plural(&K::DynamicType::default()).into_owned();
        let name = match namespace {
            Some(ns) => format!("{SOURCE}/{plural}/{ns}"),
            None => format!("{SOURCE}/{plural}"),
        };
        let watch = Watch::new(name, self.stamp, self.intake, self.health, self.cancel);
        self.tasks.spawn(
            watch
                .tracking_deletions()
                .run(api, watcher::Config::default()),
        );
    }

    /// A namespaced kind, in `namespace` or in all.
    fn namespaced<K>(&mut self, namespace: &Option<String>)
    where
        K: Trim<Scope = NamespaceResourceScope>,
        K: Clone + DeserializeOwned + Serialize + Debug + Send + 'static,
        K::DynamicType: Default,
    {
        let api = scoped::<K>(self.client, namespace.as_deref());
        self.watch(namespace.as_deref(), api);
    }

    /// A cluster-scoped kind.
    fn cluster<K>(&mut self)
    where
        K: Trim<Scope = ClusterResourceScope>,
        K: Clone + DeserializeOwned + Serialize + Debug + Send + 'static,
        K::DynamicType: Default,
    {
        self.watch(None, Api::<K>::all(self.client.clone()));
    }
}

/// An API for `K` in one namespace, or in all.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

//! The configuration file as written: every key optional, unknown keys
//! refused, every value wrapped in [`Spanned`] so validation can say where
//! it is. Nothing here is checked beyond YAML types; `super` validates.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

pub(super) type Text = Spanned<String>;
pub(super) type Count = Spanned<u64>;
pub(super) type Flag = Spanned<bool>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// Rule directories, relative to the config file, added to the
    /// built-in pack in order (a later definition of an id replaces it).
    #[serde(default)]
    pub(super) rules: Vec<Text>,
    /// `false` leaves the built-in pack out: only `rules:` are loaded.
    #[serde(default)]
    pub(super) builtin_rules: Option<Flag>,
    #[serde(default)]
    pub(super) engine: Option<RawEngine>,
    /// Address of the HTTP server (receiver, health, metrics).
    #[serde(default)]
    pub(super) listen: Option<Text>,
    #[serde(default)]
    pub(super) state_dir: Option<Text>,
    #[serde(default)]
    pub(super) pipeline: Option<RawPipeline>,
    #[serde(default)]
    pub(super) sources: Option<RawSources>,
    #[serde(default)]
    pub(super) sinks: Option<RawSinks>,
    #[serde(default)]
    pub(super) notify: Option<super::notify::RawNotify>,
    #[serde(default)]
    pub(super) outbox: Option<RawOutbox>,
    #[serde(default)]
    pub(super) api: Option<RawApi>,
    /// Limits of the HTTP server (receiver, API, health, metrics).
    #[serde(default)]
    pub(super) http: Option<RawHttp>,
    /// Where people reach this epicenter (links in notifications).
    #[serde(default)]
    pub(super) external_url: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbox {
    /// Deliveries a sink may have queued before the pipeline waits.
    #[serde(default)]
    pub(super) max_pending: Option<Count>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    /// Bearer token for `/api/v1/query` and `/api/v1/incidents`.
    #[serde(default)]
    pub(super) token: Option<Text>,
    #[serde(default)]
    pub(super) query_timeout: Option<Text>,
    #[serde(default)]
    pub(super) max_rows: Option<Count>,
    #[serde(default)]
    pub(super) query_memory: Option<Text>,
    /// SQL without a token on a non-loopback address (off by default).
    #[serde(default)]
    pub(super) allow_anonymous_sql: Option<Flag>,
    /// Queries running at once; more are answered 429.
    #[serde(default)]
    pub(super) max_concurrent_queries: Option<Count>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    #[serde(default)]
    pub(super) max_connections: Option<Count>,
    /// A request's head must arrive within this; idle connections close
    /// after it.
    #[serde(default)]
    pub(super) header_timeout: Option<Text>,
    /// A request must be read and answered within this.
    #[serde(default)]
    pub(super) request_timeout: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEngine {
    #[serde(default)]
    pub(super) lateness: Option<Text>,
    #[serde(default)]
    pub(super) max_buffered: Option<Count>,
    #[serde(default)]
    pub(super) max_held_entries: Option<Count>,
    #[serde(default)]
    pub(super) max_held_bytes: Option<Count>,
    #[serde(default)]
    pub(super) max_tracked_pods: Option<Count>,
    /// Records dated further ahead (of the wall clock in serve, of the
    /// stream in replay) do not move event time.
    #[serde(default)]
    pub(super) max_ahead: Option<Text>,
    /// How long serve keeps a resolved incident in the engine.
    #[serde(default)]
    pub(super) retention: Option<Text>,
    /// Clusters correlated at most (an engine and a decoder each).
    #[serde(default)]
    pub(super) max_clusters: Option<Count>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPipeline {
    /// Deliveries queued between the sources and the engine.
    #[serde(default)]
    pub(super) queue: Option<Count>,
    #[serde(default)]
    pub(super) idle_timeout: Option<Text>,
    #[serde(default)]
    pub(super) checkpoint_interval: Option<Text>,
    /// SIGTERM to exit, at most (below the pod's grace period).
    #[serde(default)]
    pub(super) shutdown_timeout: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSources {
    #[serde(default)]
    pub(super) alertmanager: Option<RawAlertmanager>,
    #[serde(default)]
    pub(super) kubernetes: Option<RawKubernetes>,
    #[serde(default)]
    pub(super) kafka: Option<Spanned<RawKafkaSource>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlertmanager {
    #[serde(default)]
    pub(super) enabled: Option<Flag>,
    /// Bearer token Alertmanager must send; `${VAR}` reads the environment.
    #[serde(default)]
    pub(super) token: Option<Text>,
    #[serde(default)]
    pub(super) max_body: Option<Text>,
    /// The cluster of the alerts that name none (no `cluster` label).
    #[serde(default)]
    pub(super) cluster: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKubernetes {
    #[serde(default)]
    pub(super) enabled: Option<Flag>,
    /// The name of the cluster the watches read.
    #[serde(default)]
    pub(super) cluster: Option<Text>,
    #[serde(default)]
    pub(super) kubeconfig: Option<Text>,
    #[serde(default)]
    pub(super) context: Option<Text>,
    #[serde(default)]
    pub(super) namespaces: Vec<Text>,
    #[serde(default)]
    pub(super) events: Option<Flag>,
    #[serde(default)]
    pub(super) pods: Option<Flag>,
    #[serde(default)]
    pub(super) nodes: Option<Flag>,
    #[serde(default)]
    pub(super) volumes: Option<Flag>,
    /// The object graph's kinds (Services, EndpointSlices, webhook
    /// configurations, StorageClasses, claims, volumes, workloads, quotas,
    /// PodDisruptionBudgets).
    #[serde(default)]
    pub(super) graph: Option<Flag>,
    #[serde(default)]
    pub(super) stamp_observed_at: Option<Flag>,
    #[serde(default)]
    pub(super) pod_logs: Option<Spanned<RawPodLogs>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPodLogs {
    #[serde(default)]
    pub(super) max_streams: Option<Count>,
    /// How far back a container's log is read when first opened.
    #[serde(default)]
    pub(super) backlog: Option<Text>,
    #[serde(default)]
    pub(super) select: Vec<RawLogSelector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogSelector {
    #[serde(default)]
    pub(super) namespace: Option<Text>,
    /// A label selector: `app=vault,tier!=web`.
    #[serde(default)]
    pub(super) labels: Option<Text>,
    #[serde(default)]
    pub(super) container: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKafkaSource {
    #[serde(default)]
    pub(super) enabled: Option<Flag>,
    #[serde(default)]
    pub(super) brokers: Option<Text>,
    #[serde(default)]
    pub(super) topics: Vec<Text>,
    #[serde(default)]
    pub(super) group: Option<Text>,
    #[serde(default)]
    pub(super) max_batch: Option<Count>,
    /// librdkafka properties; values may use `${VAR}`.
    #[serde(default)]
    pub(super) options: BTreeMap<String, Text>,
    /// The cluster of records that name none; per topic in
    /// `topic_clusters`.
    #[serde(default)]
    pub(super) cluster: Option<Text>,
    #[serde(default)]
    pub(super) topic_clusters: BTreeMap<String, Text>,
    /// A directory every replica of the group mounts (a ReadWriteMany
    /// volume): each partition's clusters' state and outbox, which move
    /// with the partition on a rebalance.
    #[serde(default)]
    pub(super) shared_state: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSinks {
    #[serde(default)]
    pub(super) stdout: Option<RawStdout>,
    #[serde(default)]
    pub(super) file: Option<Spanned<RawFileSink>>,
    #[serde(default)]
    pub(super) kafka: Option<Spanned<RawKafkaSink>>,
    #[serde(default)]
    pub(super) history: Option<RawHistory>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFileSink {
    #[serde(default)]
    pub(super) enabled: Option<Flag>,
    /// NDJSON appended here; relative to the config file.
    #[serde(default)]
    pub(super) path: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHistory {
    #[serde(default)]
    pub(super) enabled: Option<Flag>,
    /// Default: `history` in the state directory.
    #[serde(default)]
    pub(super) dir: Option<Text>,
    /// How long changes may wait to be written together.
    #[serde(default)]
    pub(super) flush_interval: Option<Text>,
    /// Changes written at most in one go.
    #[serde(default)]
    pub(super) max_rows: Option<Count>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStdout {
    #[serde(default)]
    pub(super) enabled: Option<Flag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKafkaSink {
    #[serde(default)]
    pub(super) enabled: Option<Flag>,
    #[serde(default)]
    pub(super) brokers: Option<Text>,
    #[serde(default)]
    pub(super) topic: Option<Text>,
    #[serde(default)]
    pub(super) options: BTreeMap<String, Text>,
}

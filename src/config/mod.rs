//! The configuration file (`--config FILE`, `epicenter config check FILE`):
//! parsed as written ([`raw`]), then validated into typed settings
//! ([`check`]); every error is reported at once, with file:line:col.
//!
//! Every key is optional: an empty file is a valid config (the built-in rule
//! pack, the Alertmanager receiver on `0.0.0.0:9095`, incidents on stdout).
//! Secrets come from the environment with `${VAR}` in the values that take
//! them (`token`, Kafka `options`); their values never appear in messages
//! or logs.

mod check;
mod notify;
mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use correlate::EngineConfig;
use ingest::source::kubernetes::{self, LogSelector, PodLogSettings};
use ingest::source::{alertmanager, kafka};
use serde_saphyr::{Location, Spanned};

use self::check::{Checker, Env};
pub(crate) use self::notify::{NotifierConfig, NotifyConfig};
use self::raw::{RawConfig, RawKafkaSink, RawKafkaSource, RawKubernetes, RawSinks};

/// How long `serve` keeps a resolved incident in the engine by default
/// (`engine.retention`; replay keeps every incident to report it).
const DEFAULT_RETENTION: correlate::Span = correlate::Span::from_secs(3600);
/// How far ahead of the wall clock (serve) or of the stream (replay) a
/// record may be dated and still move event time (`engine.max_ahead`).
pub(crate) const DEFAULT_MAX_AHEAD: correlate::Span = correlate::Span::from_secs(600);

fn span_of(d: Duration) -> correlate::Span {
    correlate::Span::from_micros(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Validated settings.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) rules: Vec<PathBuf>,
    /// Load the built-in pack before `rules` (`builtin_rules`, default true).
    pub(crate) builtin_rules: bool,
    pub(crate) engine: EngineConfig,
    /// Clusters correlated at most (`engine.max_clusters`): records of one
    /// more are reported and skipped.
    pub(crate) max_clusters: usize,
    pub(crate) serve: ServeConfig,
}

/// What only `serve` reads.
#[derive(Debug)]
pub(crate) struct ServeConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) state_dir: PathBuf,
    pub(crate) queue: usize,
    /// A stream silent this long stops holding the watermark back.
    pub(crate) idle_timeout: Duration,
    pub(crate) checkpoint_interval: Duration,
    pub(crate) alertmanager: Option<alertmanager::Settings>,
    pub(crate) kubernetes: Option<kubernetes::Settings>,
    pub(crate) kafka: Option<kafka::Settings>,
    /// `sources.kafka.shared_state/<group>`: where each partition's state
    /// lives, for whichever replica owns it (sharded state).
    pub(crate) shared_state: Option<PathBuf>,
    pub(crate) stdout: bool,
    pub(crate) file_sink: Option<PathBuf>,
    pub(crate) kafka_sink: Option<KafkaSinkConfig>,
    pub(crate) history: Option<HistoryConfig>,
    pub(crate) notify: NotifyConfig,
    /// Deliveries a target may have queued before the pipeline waits.
    pub(crate) outbox_max_pending: u64,
    pub(crate) api: ApiConfig,
    pub(crate) http: HttpConfig,
    pub(crate) external_url: Option<String>,
    /// SIGTERM to exit, at most: the drain, the final checkpoint and the
    /// outbox's grace fit in it, or what is left is given up (the journal
    /// and the outbox keep it for the next start).
    pub(crate) shutdown_timeout: Duration,
    /// The cluster of records that name none, by source.
    pub(crate) clusters: crate::serve::SourceClusters,
}

/// The incident history (`sinks.history`).
#[derive(Debug, Clone)]
pub(crate) struct HistoryConfig {
    pub(crate) dir: PathBuf,
    pub(crate) flush_interval: Duration,
    pub(crate) max_rows: usize,
}

/// `/api/v1/*`.
#[derive(Debug, Clone)]
pub(crate) struct ApiConfig {
    pub(crate) token: Option<String>,
    pub(crate) limits: sinks::history::QueryLimits,
    /// SQL without a token when listening beyond loopback.
    pub(crate) allow_anonymous_sql: bool,
    pub(crate) max_concurrent_queries: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token: None,
            limits: sinks::history::QueryLimits::default(),
            allow_anonymous_sql: false,
            max_concurrent_queries: 2,
        }
    }
}

/// The HTTP server's limits (`http`).
#[derive(Debug, Clone)]
pub(crate) struct HttpConfig {
    pub(crate) max_connections: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) request_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 9095)),
            state_dir: PathBuf::from("epicenter-state"),
            queue: 1024,
            idle_timeout: Duration::from_secs(30),
            checkpoint_interval: Duration::from_secs(10),
            alertmanager: Some(alertmanager::Settings::default()),
            kubernetes: None,
            kafka: None,
            shared_state: None,
            stdout: true,
            file_sink: None,
            kafka_sink: None,
            history: Some(HistoryConfig {
                dir: PathBuf::from("epicenter-state/history"),
                flush_interval: Duration::from_secs(5),
                max_rows: 50_000,
            }),
            notify: NotifyConfig::default(),
            outbox_max_pending: 100_000,
            api: ApiConfig::default(),
            http: HttpConfig::default(),
            external_url: None,
            shutdown_timeout: Duration::from_secs(45),
            clusters: crate::serve::SourceClusters::default(),
        }
    }
}

/// librdkafka properties; values may be secrets, so `Debug` shows keys only.
#[derive(Clone, Default)]
pub(crate) struct KafkaOptions(pub(crate) BTreeMap<String, String>);

impl fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct KafkaSinkConfig {
    pub(crate) brokers: String,
    pub(crate) topic: String,
    pub(crate) options: KafkaOptions,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rules: Vec::new(),
            builtin_rules: true,
            engine: EngineConfig {
                retention: Some(DEFAULT_RETENTION),
                max_ahead: Some(DEFAULT_MAX_AHEAD),
                ..EngineConfig::default()
            },
            max_clusters: crate::decoding::DEFAULT_MAX_CLUSTERS,
            serve: ServeConfig::default(),
        }
    }
}

impl Config {
    pub(crate) fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read config: {e}", path.display()))?;
        Config::parse(
            &path.display().to_string(),
            &text,
            path.parent().unwrap_or(Path::new(".")),
            &|name| std::env::var(name).ok(),
        )
    }

    /// Parses and validates `text` (named `name` in messages); relative
    /// paths are taken from `base`, `${VAR}` from `env`.
    pub(crate) fn parse(name: &str, text: &str, base: &Path, env: Env<'_>) -> Result<Config> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            match serde_saphyr::from_str(text) {
                Ok(r) => r,
                Err(e) => bail!("{}", correlate::rules::yaml_error_in(name, text, &e)),
            }
        };
        let mut c = Checker::new(name, env);
        let config = validate(&mut c, &raw, base);
        if !c.errors.is_empty() {
            bail!("{}", c.errors.join("\n"));
        }
        Ok(config)
    }
}

/// The config (`--config`, else the defaults) and its rules: the built-in
/// pack (unless the config or `no_builtin` leaves it out), the config's
/// `rules:`, then `extra_rules` (`--rules`); `Ok(Err(code))` when the rules
/// do not load (every error is printed).
pub(crate) fn load_with_rules(
    config: Option<&Path>,
    extra_rules: &[PathBuf],
    no_builtin: bool,
) -> Result<Result<(Config, crate::rules_cmd::Loaded), std::process::ExitCode>> {
    let config = match config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let mut dirs = config.rules.clone();
    dirs.extend(extra_rules.iter().cloned());
    match crate::rules_cmd::load(&dirs, config.builtin_rules && !no_builtin) {
        Ok(rules) => Ok(Ok((config, rules))),
        Err(errors) => {
            eprintln!("{errors}");
            Ok(Err(std::process::ExitCode::from(2)))
        }
    }
}

/// `epicenter config check FILE`: the config and the rules it names.
pub(crate) fn check(path: &Path) -> Result<std::process::ExitCode> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(std::process::ExitCode::from(2));
        }
    };
    let rules = match crate::rules_cmd::load(&config.rules, config.builtin_rules) {
        Ok(r) => r.rules,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(std::process::ExitCode::from(2));
        }
    };
    let s = &config.serve;
    let mut sources = Vec::new();
    if s.alertmanager.is_some() {
        sources.push("alertmanager");
    }
    if s.kubernetes.is_some() {
        sources.push("kubernetes");
    }
    if s.kafka.is_some() {
        sources.push("kafka");
    }
    let mut sinks = Vec::new();
    if s.stdout {
        sinks.push("stdout");
    }
    if s.file_sink.is_some() {
        sinks.push("file");
    }
    if s.kafka_sink.is_some() {
        sinks.push("kafka");
    }
    if s.history.is_some() {
        sinks.push("history");
    }
    let notifiers: Vec<String> = s.notify.targets.iter().map(|t| t.name.clone()).collect();
    eprintln!(
        "{}: ok ({} signals, {} correlations, {} absences; listen {}; sources: {}; sinks: {}; notifiers: {})",
        path.display(),
        rules.signals.len(),
        rules.correlations.len(),
        rules.absences.len(),
        s.listen,
        if sources.is_empty() {
            "none".to_string()
        } else {
            sources.join(", ")
        },
        if sinks.is_empty() {
            "none".to_string()
        } else {
            sinks.join(", ")
        },
        if notifiers.is_empty() {
            "none".to_string()
        } else {
            notifiers.join(", ")
        },
    );
    Ok(std::process::ExitCode::SUCCESS)
}

fn validate(c: &mut Checker<'_>, raw: &RawConfig, base: &Path) -> Config {
    let mut engine = Config::default().engine;
    let mut max_clusters = crate::decoding::DEFAULT_MAX_CLUSTERS;
    if let Some(e) = &raw.engine {
        if let Some(l) = c.span(e.lateness.as_ref(), "engine.lateness") {
            engine.lateness = l;
        }
        if let Some(d) = c.duration(e.max_ahead.as_ref(), "engine.max_ahead") {
            engine.max_ahead = Some(span_of(d));
        }
        if let Some(d) = c.duration(e.retention.as_ref(), "engine.retention") {
            engine.retention = Some(span_of(d));
        }
        let counts = [
            (
                &e.max_buffered,
                "engine.max_buffered",
                &mut engine.max_buffered,
            ),
            (
                &e.max_held_entries,
                "engine.max_held_entries",
                &mut engine.max_held_entries,
            ),
            (
                &e.max_held_bytes,
                "engine.max_held_bytes",
                &mut engine.max_held_bytes,
            ),
            (
                &e.max_tracked_pods,
                "engine.max_tracked_pods",
                &mut engine.max_tracked_pods,
            ),
        ];
        for (v, field, slot) in counts {
            if let Some(n) = c.count(v.as_ref(), field) {
                *slot = n;
            }
        }
        if let Some(n) = c.count(e.max_clusters.as_ref(), "engine.max_clusters") {
            max_clusters = n;
        }
    }

    let mut serve = ServeConfig::default();
    if let Some(a) = c.addr(raw.listen.as_ref(), "listen") {
        serve.listen = a;
    }
    if let Some(d) = c.text(raw.state_dir.as_ref(), "state_dir") {
        serve.state_dir = base.join(d);
    }
    if let Some(h) = serve.history.as_mut() {
        h.dir = serve.state_dir.join("history");
    }
    if let Some(u) = &raw.external_url {
        let v = u.value.trim().trim_end_matches('/');
        if reqwest::Url::parse(v).is_ok_and(|p| p.host().is_some()) {
            serve.external_url = Some(v.to_string());
        } else {
            c.error(
                u.referenced,
                "external_url",
                "not a URL (e.g. https://epicenter.example.com)",
            );
        }
    }
    if let Some(o) = &raw.outbox
        && let Some(n) = c.count(o.max_pending.as_ref(), "outbox.max_pending")
    {
        serve.outbox_max_pending = n as u64;
    }
    if let Some(a) = &raw.api {
        if let Some(t) = &a.token {
            serve.api.token = c.expand(t, "api.token");
        }
        if let Some(d) = c.duration(a.query_timeout.as_ref(), "api.query_timeout") {
            serve.api.limits.timeout = d;
        }
        if let Some(n) = c.count(a.max_rows.as_ref(), "api.max_rows") {
            serve.api.limits.max_rows = n;
        }
        if let Some(m) = c.size(a.query_memory.as_ref(), "api.query_memory") {
            serve.api.limits.memory = m;
        }
        if let Some(f) = &a.allow_anonymous_sql {
            serve.api.allow_anonymous_sql = f.value;
        }
        if let Some(n) = c.count(
            a.max_concurrent_queries.as_ref(),
            "api.max_concurrent_queries",
        ) {
            serve.api.max_concurrent_queries = n;
        }
    }
    if let Some(h) = &raw.http {
        if let Some(n) = c.count(h.max_connections.as_ref(), "http.max_connections") {
            serve.http.max_connections = n;
        }
        if let Some(d) = c.duration(h.header_timeout.as_ref(), "http.header_timeout") {
            serve.http.header_timeout = d;
        }
        if let Some(d) = c.duration(h.request_timeout.as_ref(), "http.request_timeout") {
            serve.http.request_timeout = d;
        }
    }
    if let Some(p) = &raw.pipeline {
        if let Some(q) = c.count(p.queue.as_ref(), "pipeline.queue") {
            serve.queue = q;
        }
        if let Some(d) = c.duration(p.idle_timeout.as_ref(), "pipeline.idle_timeout") {
            serve.idle_timeout = d;
        }
        if let Some(d) = c.duration(
            p.checkpoint_interval.as_ref(),
            "pipeline.checkpoint_interval",
        ) {
            serve.checkpoint_interval = d;
        }
        if let Some(d) = c.duration(p.shutdown_timeout.as_ref(), "pipeline.shutdown_timeout") {
            serve.shutdown_timeout = d;
        }
    }
    if let Some(s) = &raw.sources {
        if let Some(a) = &s.alertmanager {
            serve.alertmanager = Checker::flag(a.enabled.as_ref(), true).then(|| {
                let mut settings = alertmanager::Settings::default();
                if let Some(t) = &a.token {
                    settings.token = c.expand(t, "sources.alertmanager.token");
                }
                if let Some(m) = c.size(a.max_body.as_ref(), "sources.alertmanager.max_body") {
                    settings.max_body = m;
                }
                settings
            });
            serve.clusters.alertmanager =
                c.cluster(a.cluster.as_ref(), "sources.alertmanager.cluster");
        }
        if let Some(k) = &s.kubernetes {
            serve.kubernetes = kubernetes(c, k, base);
            serve.clusters.kubernetes = c.cluster(k.cluster.as_ref(), "sources.kubernetes.cluster");
        }
        if let Some(k) = &s.kafka {
            serve.kafka = kafka_source(c, k);
            let kafka = &k.value;
            if let (Some(settings), Some(dir)) = (
                &serve.kafka,
                c.text(kafka.shared_state.as_ref(), "sources.kafka.shared_state"),
            ) {
                serve.shared_state = Some(base.join(dir).join(&settings.group));
            }
            serve.clusters.kafka = c.cluster(kafka.cluster.as_ref(), "sources.kafka.cluster");
            for (topic, name) in &kafka.topic_clusters {
                let field = format!("sources.kafka.topic_clusters.{topic}");
                if !kafka.topics.iter().any(|t| t.value == *topic) {
                    c.error(
                        name.referenced,
                        &field,
                        format_args!("`{topic}` is not one of sources.kafka.topics"),
                    );
                    continue;
                }
                if let Some(name) = c.cluster(Some(name), &field) {
                    serve.clusters.kafka_topics.insert(topic.clone(), name);
                }
            }
        }
    }
    if let Some(s) = &raw.sinks {
        sinks(c, s, base, &mut serve);
    }
    if let Some(n) = &raw.notify {
        serve.notify = notify::validate(c, n, serve.external_url.as_deref());
    }

    Config {
        rules: raw.rules.iter().map(|r| base.join(&r.value)).collect(),
        builtin_rules: Checker::flag(raw.builtin_rules.as_ref(), true),
        engine,
        max_clusters,
        serve,
    }
}

fn kubernetes(c: &mut Checker<'_>, k: &RawKubernetes, base: &Path) -> Option<kubernetes::Settings> {
    if !Checker::flag(k.enabled.as_ref(), true) {
        return None;
    }
    let pod_logs = k.pod_logs.as_ref().map(|l| {
        if l.value.select.is_empty() {
            c.error(
                l.referenced,
                "sources.kubernetes.pod_logs.select",
                "name at least one selector (namespace, labels, container)",
            );
        }
        let l = &l.value;
        let field = "sources.kubernetes.pod_logs";
        let selectors = l
            .select
            .iter()
            .map(|s| {
                let labels = s
                    .labels
                    .as_ref()
                    .map(|l| l.value.clone())
                    .unwrap_or_default();
                if let Some(raw) = &s.labels
                    && let Err(e) = kubernetes::check_label_selector(&raw.value)
                {
                    c.error(raw.referenced, &format!("{field}.select.labels"), e);
                }
                LogSelector {
                    namespace: s.namespace.as_ref().map(|n| n.value.clone()),
                    labels,
                    container: s.container.as_ref().map(|n| n.value.clone()),
                }
            })
            .collect();
        PodLogSettings {
            selectors,
            max_streams: c
                .count(
                    l.max_streams.as_ref(),
                    "sources.kubernetes.pod_logs.max_streams",
                )
                .unwrap_or(100),
            backlog: c
                .duration(l.backlog.as_ref(), "sources.kubernetes.pod_logs.backlog")
                .or(PodLogSettings::default().backlog),
        }
    });
    let graph = Checker::flag(k.graph.as_ref(), false);
    if graph && let Some(v) = k.volumes.as_ref().filter(|v| !v.value) {
        c.error(
            v.referenced,
            "sources.kubernetes.volumes",
            "the graph watches claims and volumes: remove `volumes: false` or set `graph: false`",
        );
    }
    Some(kubernetes::Settings {
        kubeconfig: k.kubeconfig.as_ref().map(|p| base.join(&p.value)),
        context: c.text(k.context.as_ref(), "sources.kubernetes.context"),
        namespaces: k.namespaces.iter().map(|n| n.value.clone()).collect(),
        events: Checker::flag(k.events.as_ref(), true),
        pods: Checker::flag(k.pods.as_ref(), true),
        nodes: Checker::flag(k.nodes.as_ref(), true),
        volumes: Checker::flag(k.volumes.as_ref(), false),
        graph,
        stamp_observed_at: Checker::flag(k.stamp_observed_at.as_ref(), true),
        pod_logs,
    })
}

fn options(c: &mut Checker<'_>, raw: &BTreeMap<String, raw::Text>, section: &str) -> KafkaOptions {
    let mut out = BTreeMap::new();
    for (key, value) in raw {
        if let Some(v) = c.expand(value, &format!("{section}.options.{key}")) {
            out.insert(key.clone(), v);
        }
    }
    KafkaOptions(out)
}

fn kafka_source(c: &mut Checker<'_>, raw: &Spanned<RawKafkaSource>) -> Option<kafka::Settings> {
    let (k, at) = (&raw.value, raw.referenced);
    if !Checker::flag(k.enabled.as_ref(), true) {
        return None;
    }
    let brokers = required(
        c,
        k.brokers.as_ref(),
        at,
        "sources.kafka.brokers",
        "host:9092",
    );
    if k.topics.is_empty() {
        c.error(at, "sources.kafka.topics", "name at least one topic");
    }
    let topics = k
        .topics
        .iter()
        .filter_map(|t| c.text(Some(t), "sources.kafka.topics"))
        .collect();
    Some(kafka::Settings {
        brokers: brokers.unwrap_or_default(),
        topics,
        group: c
            .text(k.group.as_ref(), "sources.kafka.group")
            .unwrap_or_else(|| "epicenter".to_string()),
        max_batch: c
            .count(k.max_batch.as_ref(), "sources.kafka.max_batch")
            .unwrap_or(1024),
        options: options(c, &k.options, "sources.kafka").0,
    })
}

fn sinks(c: &mut Checker<'_>, s: &RawSinks, base: &Path, serve: &mut ServeConfig) {
    if let Some(o) = &s.stdout {
        serve.stdout = Checker::flag(o.enabled.as_ref(), true);
    }
    if let Some(f) = &s.file
        && Checker::flag(f.value.enabled.as_ref(), true)
    {
        let path = required(
            c,
            f.value.path.as_ref(),
            f.referenced,
            "sinks.file.path",
            "incidents.ndjson",
        );
        serve.file_sink = path.map(|p| base.join(p));
    }
    if let Some(h) = &s.history {
        if Checker::flag(h.enabled.as_ref(), true) {
            let mut history = serve.history.clone().unwrap_or(HistoryConfig {
                dir: serve.state_dir.join("history"),
                flush_interval: Duration::from_secs(5),
                max_rows: 50_000,
            });
            if let Some(d) = c.text(h.dir.as_ref(), "sinks.history.dir") {
                history.dir = base.join(d);
            }
            if let Some(d) = c.duration(h.flush_interval.as_ref(), "sinks.history.flush_interval") {
                history.flush_interval = d;
            }
            if let Some(n) = c.count(h.max_rows.as_ref(), "sinks.history.max_rows") {
                history.max_rows = n;
            }
            serve.history = Some(history);
        } else {
            serve.history = None;
        }
    }
    if let Some(k) = &s.kafka {
        serve.kafka_sink = kafka_sink(c, k);
    }
}

fn kafka_sink(c: &mut Checker<'_>, raw: &Spanned<RawKafkaSink>) -> Option<KafkaSinkConfig> {
    let (k, at) = (&raw.value, raw.referenced);
    if !Checker::flag(k.enabled.as_ref(), true) {
        return None;
    }
    let brokers = required(
        c,
        k.brokers.as_ref(),
        at,
        "sinks.kafka.brokers",
        "host:9092",
    );
    let topic = required(c, k.topic.as_ref(), at, "sinks.kafka.topic", "incidents");
    Some(KafkaSinkConfig {
        brokers: brokers.unwrap_or_default(),
        topic: topic.unwrap_or_default(),
        options: options(c, &k.options, "sinks.kafka"),
    })
}

/// A value that must be there; a missing one is reported at the section.
fn required(
    c: &mut Checker<'_>,
    v: Option<&raw::Text>,
    section: Location,
    field: &str,
    example: &str,
) -> Option<String> {
    if v.is_none() {
        c.error(section, field, format_args!("required (e.g. `{example}`)"));
    }
    c.text(v, field)
}

#[cfg(test)]
mod tests;

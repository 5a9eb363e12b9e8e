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

/// Validated settings.
#[derive(Debug, Default)]
pub(crate) struct Config {
    pub(crate) rules: Vec<PathBuf>,
    pub(crate) engine: EngineConfig,
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
    pub(crate) stdout: bool,
    pub(crate) file_sink: Option<PathBuf>,
    pub(crate) kafka_sink: Option<KafkaSinkConfig>,
    pub(crate) history: Option<HistoryConfig>,
    pub(crate) notify: NotifyConfig,
    /// Deliveries a target may have queued before the pipeline waits.
    pub(crate) outbox_max_pending: u64,
    pub(crate) api: ApiConfig,
    pub(crate) external_url: Option<String>,
}

/// The incident history (`sinks.history`).
#[derive(Debug, Clone)]
pub(crate) struct HistoryConfig {
    pub(crate) dir: PathBuf,
    pub(crate) flush_interval: Duration,
    pub(crate) max_rows: usize,
}

/// `/api/v1/*`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ApiConfig {
    pub(crate) token: Option<String>,
    pub(crate) limits: sinks::history::QueryLimits,
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
            external_url: None,
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
                Err(e) => bail!("{}", correlate::rules::yaml_error(name, &e)),
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

/// The config (`--config`, else the defaults) and its rules plus `extra_rules`
/// (`--rules`); `Ok(Err(code))` when the rules do not load (every error is
/// printed).
pub(crate) fn load_with_rules(
    config: Option<&Path>,
    extra_rules: &[PathBuf],
) -> Result<Result<(Config, std::sync::Arc<correlate::rules::RuleSet>), std::process::ExitCode>> {
    let config = match config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let mut dirs = config.rules.clone();
    dirs.extend(extra_rules.iter().cloned());
    match crate::rules_cmd::load(&dirs) {
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
    let rules = match crate::rules_cmd::load(&config.rules) {
        Ok(r) => r,
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
    let mut engine = EngineConfig::default();
    if let Some(e) = &raw.engine {
        if let Some(l) = c.span(e.lateness.as_ref(), "engine.lateness") {
            engine.lateness = l;
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
        }
        if let Some(k) = &s.kubernetes {
            serve.kubernetes = kubernetes(c, k, base);
        }
        if let Some(k) = &s.kafka {
            serve.kafka = kafka_source(c, k);
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
        engine,
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
    Some(kubernetes::Settings {
        kubeconfig: k.kubeconfig.as_ref().map(|p| base.join(&p.value)),
        context: c.text(k.context.as_ref(), "sources.kubernetes.context"),
        namespaces: k.namespaces.iter().map(|n| n.value.clone()).collect(),
        events: Checker::flag(k.events.as_ref(), true),
        pods: Checker::flag(k.pods.as_ref(), true),
        nodes: Checker::flag(k.nodes.as_ref(), true),
        volumes: Checker::flag(k.volumes.as_ref(), false),
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

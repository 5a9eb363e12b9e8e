//! The outbox as `serve` configures it: one target per configured sink
//! (stdout, file, Kafka, the history) and per notifier of every receiver,
//! the policy and routes of `notify:`, the store in the state directory.
//! With sharded state, each owned Kafka partition has an outbox of its own
//! in its shared directory holding only the notifiers (what people were
//! told moves with the partition's clusters); the replica's own outbox
//! then streams every change and notifies for the other clusters.

use std::path::Path;

use anyhow::{Context, Result};
use sinks::history::HistoryWriter;
use sinks::notify::Notifier;
use sinks::notify::ntfy::NtfyNotifier;
use sinks::notify::slack::SlackNotifier;
use sinks::notify::webhook::WebhookNotifier;
use sinks::outbox::{self, Clock, Outbox, Settings, Target};
use sinks::stream::{FileSink, HistorySink, StreamSink};

use crate::config::{NotifierConfig, ServeConfig};

/// Opens the outbox in `state_dir` with every configured target.
pub(crate) fn open(
    serve: &ServeConfig,
    state_dir: &Path,
    signal_sources: std::collections::BTreeMap<String, String>,
    clock: Clock,
) -> Result<Outbox> {
    let mut targets = Vec::new();
    if serve.stdout {
        targets.push(Target::stream("stdout", StreamSink::Stdout));
    }
    if let Some(path) = &serve.file_sink {
        let f = FileSink::open(path).with_context(|| format!("sinks.file: {}", path.display()))?;
        targets.push(Target::stream("file", StreamSink::File(f)));
    }
    if let Some(k) = &serve.kafka_sink {
        let sink = sinks::kafka::KafkaSink::new(&k.brokers, &k.topic, &k.options.0)
            .context("sinks.kafka")?;
        targets.push(Target::stream("kafka", StreamSink::Kafka(sink)));
    }
    if let Some(h) = &serve.history {
        let writer = HistoryWriter::open(&h.dir, signal_sources.clone())
            .with_context(|| format!("sinks.history: {}", h.dir.display()))?;
        let mut t = Target::stream(
            "history",
            StreamSink::History(HistorySink::new(writer, signal_sources, clock.clone())),
        );
        t.linger = h.flush_interval;
        t.max_batch = h.max_rows;
        targets.push(t);
    }
    targets.extend(notifier_targets(serve)?);
    let path = state_dir.join("outbox.redb");
    if !path.exists() && state_dir.join("checkpoint").exists() {
        tracing::warn!(
            path = %path.display(),
            "the outbox is missing though a checkpoint is there: what people were told is forgotten, \
             and open incidents may be announced again"
        );
    }
    let outbox =
        Outbox::open(settings(serve, path), targets, clock).context("cannot open the outbox")?;
    for t in outbox.status() {
        if t.pending > 0 || t.dead > 0 {
            tracing::info!(target_name = %t.name, pending = t.pending, dead = t.dead, "outbox resumed");
        }
    }
    Ok(outbox)
}

/// Opens a Kafka partition's outbox in its shared directory: the
/// notifiers only (streams go through the replica's own outbox).
pub(crate) fn open_partition(serve: &ServeConfig, dir: &Path, clock: Clock) -> Result<Outbox> {
    let path = dir.join("outbox.redb");
    let outbox = Outbox::open(
        settings(serve, path.clone()),
        notifier_targets(serve)?,
        clock,
    )
    .with_context(|| format!("cannot open the partition's outbox {}", path.display()))?;
    for t in outbox.status() {
        if t.pending > 0 || t.dead > 0 {
            tracing::info!(target_name = %t.name, pending = t.pending, dead = t.dead, outbox = %path.display(), "partition outbox resumed");
        }
    }
    Ok(outbox)
}

fn settings(serve: &ServeConfig, path: std::path::PathBuf) -> Settings {
    let mut settings = Settings::new(path);
    settings.policy = serve.notify.policy.clone();
    settings.route = serve.notify.route.clone();
    settings.receivers = serve.notify.receivers.clone();
    settings.max_pending = serve.outbox_max_pending;
    settings
}

/// One target per notifier of `notify.targets`.
fn notifier_targets(serve: &ServeConfig) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for n in &serve.notify.targets {
        let notifier = match &n.notifier {
            NotifierConfig::Slack(s) => Notifier::Slack(
                SlackNotifier::new(s.clone()).with_context(|| format!("notifier {}", n.name))?,
            ),
            NotifierConfig::Ntfy(s) => Notifier::Ntfy(
                NtfyNotifier::new(s.clone()).with_context(|| format!("notifier {}", n.name))?,
            ),
            NotifierConfig::Webhook(s) => Notifier::Webhook(
                WebhookNotifier::new(s.clone()).with_context(|| format!("notifier {}", n.name))?,
            ),
        };
        let mut t = Target::notifier(n.name.clone(), notifier);
        t.retry = n.retry.clone();
        t.rate = n.rate;
        targets.push(t);
    }
    Ok(targets)
}

/// Each signal's source(s), for the history's `incident_signals` table.
pub(crate) fn signal_sources(
    rules: &correlate::rules::RuleSet,
) -> std::collections::BTreeMap<String, String> {
    rules
        .signals
        .iter()
        .map(|s| {
            let sources: Vec<&str> = s.sources.iter().map(|x| x.as_str()).collect();
            (s.id.clone(), sources.join(","))
        })
        .collect()
}

pub(crate) fn wall_clock() -> Clock {
    outbox::wall_clock()
}

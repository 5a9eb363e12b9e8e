//! `/metrics`: what the service says about itself, in the Prometheus /
//! OpenMetrics text format (prometheus-client).
//!
//! Two kinds of metric live here. Counters the pipeline bumps as it works
//! (decode errors, incident changes, latency, checkpoints) are ordinary
//! prometheus-client metrics. State that others own (source health, engine
//! counters and sizes, watermark) is read at scrape time by collectors from
//! a [`EngineView`] the pipeline publishes about once a second, so the
//! engine thread never takes a lock per record.
//!
//! Ingest-to-incident latency is recorded in an hdrhistogram (exact
//! quantiles, exposed as `..._latency_seconds{quantile=...}` gauges) and in a
//! bucketed Prometheus histogram (aggregatable across replicas).

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use correlate::{EngineGauges, EngineStats};
use hdrhistogram::Histogram as Hdr;
use ingest::source::Health;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SourceLabels {
    pub(crate) source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ChangeLabels {
    pub(crate) rule: String,
    pub(crate) change: &'static str,
}

/// What the pipeline publishes about the engine for scrapes.
#[derive(Debug, Default, Clone)]
pub(crate) struct EngineView {
    pub(crate) stats: EngineStats,
    pub(crate) gauges: EngineGauges,
    /// Signals classified so far, per signal id.
    pub(crate) signals: Vec<(String, u64)>,
    /// Wall time less watermark, in seconds.
    pub(crate) watermark_lag: f64,
    pub(crate) streams: usize,
    pub(crate) decoder_objects: usize,
    /// Clusters correlated (one engine each).
    pub(crate) clusters: usize,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) records: Family<SourceLabels, Counter>,
    pub(crate) decode_errors: Family<SourceLabels, Counter>,
    pub(crate) records_clamped: Family<SourceLabels, Counter>,
    pub(crate) incidents: Family<ChangeLabels, Counter>,
    latency: Histogram,
    latency_hdr: Arc<Mutex<Hdr<u64>>>,
    pub(crate) checkpoints: Counter,
    pub(crate) checkpoint_failures: Counter,
    pub(crate) checkpoint_bytes: Gauge,
    checkpoint_seconds: Histogram,
    /// Sharded: time to take over an assigned partition (waiting for its
    /// last owner, restoring its clusters, opening its outbox).
    pub(crate) handovers: Histogram,
    /// Batches of changes the outbox could not take (retried).
    pub(crate) outbox_errors: Counter,
    outbox: Arc<Mutex<Option<sinks::outbox::Outbox>>>,
    journal: Arc<Mutex<Option<ingest::source::Journal>>>,
    view: Arc<Mutex<EngineView>>,
}

impl Metrics {
    pub(crate) fn new(health: Health) -> Metrics {
        let mut registry = Registry::with_prefix("epicenter");
        let records = Family::<SourceLabels, Counter>::default();
        registry.register(
            "records",
            "Records taken into the pipeline, by source",
            records.clone(),
        );
        let decode_errors = Family::<SourceLabels, Counter>::default();
        registry.register(
            "decode_errors",
            "Records the decoders refused (malformed, wrong shape), by source",
            decode_errors.clone(),
        );
        let records_clamped = Family::<SourceLabels, Counter>::default();
        registry.register(
            "records_clamped",
            "Records dated further ahead of the wall clock than engine.max_ahead, processed at the wall clock's time, by source",
            records_clamped.clone(),
        );
        let incidents = Family::<ChangeLabels, Counter>::default();
        registry.register(
            "incident_changes",
            "Incident changes (opened, updated, resolved, merged), by rule",
            incidents.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "ingest_to_incident_seconds",
            "Wall time from receiving a record to the incident change it caused",
            latency.clone(),
        );
        // 1 µs to 1 h at 3 significant figures: about 200 KiB.
        let latency_hdr = Arc::new(Mutex::new(
            Hdr::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid"),
        ));
        let checkpoints = Counter::default();
        registry.register(
            "checkpoints",
            "State checkpoints written",
            checkpoints.clone(),
        );
        let checkpoint_failures = Counter::default();
        registry.register(
            "checkpoint_failures",
            "State checkpoints that could not be written",
            checkpoint_failures.clone(),
        );
        let checkpoint_bytes = Gauge::default();
        registry.register(
            "checkpoint_bytes",
            "Size of the latest checkpoint",
            checkpoint_bytes.clone(),
        );
        let checkpoint_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "checkpoint_seconds",
            "Time to flush the sinks and write a checkpoint",
            checkpoint_seconds.clone(),
        );
        let handovers = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        registry.register(
            "partition_takeover_seconds",
            "Sharded state: time from a Kafka partition's assignment to its clusters resuming here (the last owner letting go, the checkpoint read, the outbox opened)",
            handovers.clone(),
        );
        let outbox_errors = Counter::default();
        registry.register(
            "outbox_errors",
            "Batches of incident changes the outbox could not store (retried)",
            outbox_errors.clone(),
        );
        let outbox = Arc::new(Mutex::new(None));
        registry.register_collector(Box::new(OutboxCollector(outbox.clone())));
        let journal = Arc::new(Mutex::new(None));
        registry.register_collector(Box::new(JournalCollector(journal.clone())));
        let view = Arc::new(Mutex::new(EngineView::default()));
        registry.register_collector(Box::new(HealthCollector(health)));
        registry.register_collector(Box::new(EngineCollector {
            view: view.clone(),
            latency: latency_hdr.clone(),
        }));
        Metrics {
            registry,
            records,
            decode_errors,
            records_clamped,
            incidents,
            latency,
            latency_hdr,
            checkpoints,
            checkpoint_failures,
            checkpoint_bytes,
            checkpoint_seconds,
            handovers,
            outbox_errors,
            outbox,
            journal,
            view,
        }
    }

    /// Reads the journal's state at every scrape.
    pub(crate) fn watch_journal(&self, journal: ingest::source::Journal) {
        *self.journal.lock().unwrap_or_else(PoisonError::into_inner) = Some(journal);
    }

    /// Reads the outbox's state at every scrape.
    pub(crate) fn watch_outbox(&self, outbox: sinks::outbox::Outbox) {
        *self.outbox.lock().unwrap_or_else(PoisonError::into_inner) = Some(outbox);
    }

    pub(crate) fn observe_latency(&self, d: Duration) {
        self.latency.observe(d.as_secs_f64());
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency_hdr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(us);
    }

    pub(crate) fn observe_checkpoint(&self, d: Duration) {
        self.checkpoint_seconds.observe(d.as_secs_f64());
    }

    pub(crate) fn publish(&self, view: EngineView) {
        *self.view.lock().unwrap_or_else(PoisonError::into_inner) = view;
    }

    /// The text exposition.
    pub(crate) fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(8 << 10);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Source health, read at scrape time.
#[derive(Debug)]
struct HealthCollector(Health);

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let sources = self.0.sources();
        let mut up = encoder.encode_descriptor(
            "source_up",
            "1 when the source is connected (watch listed, consumer assigned, receiver listening)",
            None,
            MetricType::Gauge,
        )?;
        for s in &sources {
            ConstGauge::new(i64::from(s.is_connected()))
                .encode(up.encode_family(&[("source", s.name.as_str())])?)?;
        }
        let mut rejected = encoder.encode_descriptor(
            "source_rejected",
            "Inputs a source refused before the pipeline (malformed, unauthorized, too_large, saturated, ...)",
            None,
            MetricType::Counter,
        )?;
        for s in &sources {
            for (reason, n) in s.rejected() {
                ConstCounter::new(n).encode(
                    rejected.encode_family(&[("source", s.name.as_str()), ("reason", reason)])?,
                )?;
            }
        }
        Ok(())
    }
}

/// The journal of acknowledged deliveries, read at scrape time.
#[derive(Debug)]
struct JournalCollector(Arc<Mutex<Option<ingest::source::Journal>>>);

impl Collector for JournalCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(journal) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return Ok(());
        };
        let s = journal.status();
        gauge(
            &mut e,
            "journal_bytes",
            "Bytes of acknowledged deliveries the journal holds (until a checkpoint covers them)",
            s.bytes as f64,
        )?;
        counter(
            &mut e,
            "journal_appended",
            "Deliveries appended to the journal (acknowledged once synced)",
            s.appended,
        )?;
        counter(
            &mut e,
            "journal_syncs",
            "Journal syncs (each acknowledges every delivery written since the one before)",
            s.syncs,
        )?;
        gauge(
            &mut e,
            "journal_failing",
            "1 while the journal cannot write (disk full, read-only): deliveries are refused with 503",
            f64::from(u8::from(s.failing)),
        )
    }
}

/// The outbox's targets and the notification policy, read at scrape time.
#[derive(Debug)]
struct OutboxCollector(Arc<Mutex<Option<sinks::outbox::Outbox>>>);

impl Collector for OutboxCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(outbox) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return Ok(());
        };
        let targets = outbox.status();
        type Field = fn(&sinks::outbox::TargetStatus) -> f64;
        let gauges: [(&str, &str, Field); 3] = [
            ("outbox_pending", "Deliveries queued, by sink", |t| {
                t.pending as f64
            }),
            (
                "outbox_oldest_pending_seconds",
                "Age of the oldest queued delivery, by sink (0 when none)",
                |t| t.oldest_pending_seconds,
            ),
            (
                "outbox_dead_letters",
                "Deliveries given up on and kept, by sink",
                |t| t.dead as f64,
            ),
        ];
        for (name, help, f) in gauges {
            let mut fam = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for t in &targets {
                ConstGauge::new(f(t))
                    .encode(fam.encode_family(&[("sink", t.name.as_str()), ("kind", t.kind)])?)?;
            }
        }
        type Count = fn(&sinks::outbox::TargetStatus) -> u64;
        let counters: [(&str, &str, Count); 5] = [
            ("outbox_delivered", "Deliveries made, by sink", |t| {
                t.delivered
            }),
            (
                "sink_failures",
                "Failed delivery attempts (retried or dead-lettered), by sink",
                |t| t.failed_attempts,
            ),
            (
                "outbox_dead_lettered",
                "Deliveries dead-lettered since start, by sink",
                |t| t.dead_lettered,
            ),
            (
                "outbox_recovered",
                "In-doubt notifications found delivered on asking the service (not sent twice), by sink",
                |t| t.recovered,
            ),
            (
                "outbox_coalesced",
                "Notifications folded into one already queued for the same incident, by sink",
                |t| t.coalesced,
            ),
        ];
        for (name, help, f) in counters {
            let mut fam = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for t in &targets {
                ConstCounter::new(f(t))
                    .encode(fam.encode_family(&[("sink", t.name.as_str()), ("kind", t.kind)])?)?;
            }
        }
        let p = outbox.policy_status();
        let mut sent = e.encode_descriptor(
            "notifications",
            "Notifications decided, by event (opened, updated, resolved)",
            None,
            MetricType::Counter,
        )?;
        for (event, n) in [
            ("opened", p.opened),
            ("updated", p.updated),
            ("resolved", p.resolved),
        ] {
            ConstCounter::new(n).encode(sent.encode_family(&[("event", event)])?)?;
        }
        let mut held = e.encode_descriptor(
            "notifications_suppressed",
            "Incident changes that told nobody: quiet (nothing a person acts on), deferred (throttled), unrouted (no receiver)",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in [
            ("quiet", p.quiet),
            ("deferred", p.deferred),
            ("unrouted", p.unrouted),
        ] {
            ConstCounter::new(n).encode(held.encode_family(&[("reason", reason)])?)?;
        }
        Ok(())
    }
}

/// Engine counters and sizes, and latency quantiles, read at scrape time.
#[derive(Debug)]
struct EngineCollector {
    view: Arc<Mutex<EngineView>>,
    latency: Arc<Mutex<Hdr<u64>>>,
}

fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> fmt::Result {
    ConstCounter::new(v).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: f64) -> fmt::Result {
    ConstGauge::new(v).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for EngineCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let v = self
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let s = &v.stats;
        counter(
            &mut e,
            "engine_records",
            "Records (events) the engine took",
            s.records,
        )?;
        counter(
            &mut e,
            "engine_late_signals",
            "Signals that arrived behind the watermark (processed unordered)",
            s.late,
        )?;
        counter(
            &mut e,
            "engine_released_early",
            "Signals released before the watermark because the reorder buffer was full",
            s.released_early,
        )?;
        counter(
            &mut e,
            "engine_unattached_effects",
            "Effects whose cause never appeared within their window",
            s.unattached_effects,
        )?;
        counter(
            &mut e,
            "engine_evicted_effects",
            "Held effects evicted at the state cap",
            s.evicted_effects,
        )?;
        counter(
            &mut e,
            "engine_retired_incidents",
            "Resolved incidents that left the engine after engine.retention (they stay in the history)",
            v.gauges.retired_incidents,
        )?;
        let mut signals = e.encode_descriptor(
            "signals",
            "Signals classified, by signal id",
            None,
            MetricType::Counter,
        )?;
        for (id, n) in &v.signals {
            ConstCounter::new(*n).encode(signals.encode_family(&[("signal", id.as_str())])?)?;
        }
        let g = &v.gauges;
        let sizes = [
            ("buffered", g.buffered),
            ("held_effects", g.held_effects),
            ("held_bytes", g.held_bytes),
            ("states", g.states),
            ("tracked_pods", g.tracked_pods),
            ("incidents", g.incidents),
            ("streams", v.streams),
            ("decoder_objects", v.decoder_objects),
        ];
        let mut state = e.encode_descriptor(
            "state_size",
            "Size of held state, by part (entries; held_bytes in bytes)",
            None,
            MetricType::Gauge,
        )?;
        for (part, n) in sizes {
            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
                .encode(state.encode_family(&[("part", part)])?)?;
        }
        gauge(
            &mut e,
            "clusters",
            "Clusters correlated, each with its own decoder and engine",
            v.clusters as f64,
        )?;
        gauge(
            &mut e,
            "watermark_lag_seconds",
            "Wall clock less the watermark: how far behind event time is final",
            v.watermark_lag,
        )?;
        let hdr = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        let mut q = e.encode_descriptor(
            "ingest_to_incident_latency_seconds",
            "Quantiles of ingest-to-incident latency since start (hdrhistogram)",
            None,
            MetricType::Gauge,
        )?;
        for quantile in [0.5, 0.9, 0.99, 0.999] {
            let mut label = String::new();
            let _ = write!(label, "{quantile}");
            let secs = if hdr.is_empty() {
                0.0
            } else {
                hdr.value_at_quantile(quantile) as f64 / 1e6
            };
            ConstGauge::new(secs).encode(q.encode_family(&[("quantile", label.as_str())])?)?;
        }
        Ok(())
    }
}

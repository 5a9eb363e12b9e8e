//! The [`Decoder`]: one NDJSON line in, zero or more [`Event`]s out.
//!
//! Each line is parsed once into one struct of the optional fields of every
//! shape and dispatched by which fields it has:
//!
//! | shape | detected by | events |
//! | --- | --- | --- |
//! | watch event | `object` (+ `type`) | as its object |
//! | bare object | `kind` (+ `apiVersion` or `metadata`) | Event → `k8s-event`; Pod → `pod`, Node → `node` on a transition; PersistentVolumeClaim, PersistentVolume → none (topology only) |
//! | Alertmanager v4 body | `alerts` / `version` | one `alert` per new alert delivery |
//! | Vector log | `kubernetes` + `message` | one `log` |
//! | Fluent Bit log | `kubernetes` + `log` | one `log` |
//!
//! Named fields ([`Event::fields`]) set per source (details in each
//! submodule's docs):
//!
//! | source | fields |
//! | --- | --- |
//! | `k8s-event` | `component`, `count`, `action` (if any), `repeat` (`true` for an update of an Event uid already seen), `csi_drivers` (see below) |
//! | `pod` | `previous`, `phase`, `status_reason` (if any), `restarts`, `last_reason` / `exit_code` / `last_message` (if any), `containers`, `owner_kind` (if owned), `scheduled`, `csi_drivers` (see below) |
//! | `node` | `previous`, `ready_status`, `pressure`, `unschedulable` |
//! | `alert` | `status`, `fingerprint`, `receiver`, `description` (each if any) |
//! | `log` | `stream` (if any) |
//!
//! `csi_drivers`: on records about a Pod whose claims are bound to CSI
//! volumes, the drivers those volumes need, sorted and comma-joined
//! (`ebs.csi.aws.com,nfs.csi.k8s.io`); absent when no PersistentVolumeClaim
//! and PersistentVolume records taught the topology (see `volume`). A rule
//! joins on it through a capture, e.g. `fields: {csi_drivers:
//! '(?P<driver>[^,]+)'}`.
//!
//! The decoder is stateful (see the crate docs): the state tables are keyed
//! by stable hashes and bounded by [`Limits`].

mod alert;
mod cluster;
mod error;
mod k8s_event;
mod log;
mod node;
mod object;
mod owners;
mod pod;
mod snapshot;
mod times;
mod volume;
mod wire;

use std::borrow::Cow;
use std::ops::Range;

use correlate::{Event, EventTime, Origin, Span};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

pub use alert::readable_alerts;
pub use error::{DecodeError, Result};
pub use snapshot::{DecoderSnapshot, FORMAT_VERSION};

use crate::bounded::Bounded;
use crate::topology::Topology;
use k8s_event::EventSeen;
use node::NodeSeen;
use pod::PodSeen;
use wire::{Record, Str, non_empty};

/// Bounds of the decoder's state tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Pods and Nodes remembered (topology cache, last states); also the
    /// bound of each storage table (pod claims, claims, volumes).
    pub max_objects: usize,
    /// Kubernetes Event uids and alert deliveries remembered for dedupe.
    pub max_occurrences: usize,
    /// How long (event time) an Event uid or an alert delivery is
    /// remembered at least (at most twice as long): a relist or an
    /// Alertmanager repeat within it is a duplicate, and the tables hold
    /// what two horizons brought rather than growing to their bound.
    pub occurrence_horizon: Span,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_objects: 200_000,
            max_occurrences: 500_000,
            occurrence_horizon: Span::from_secs(24 * 3600),
        }
    }
}

/// What one line yielded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// This many events were pushed (0 for a watch BOOKMARK, an Event's
    /// DELETED, an empty alert list, a PersistentVolumeClaim or
    /// PersistentVolume).
    Events(usize),
    /// Nothing new: a relist replay of a Kubernetes Event already seen with
    /// this count and time, or a redelivery of every alert of the body. The
    /// record's event time still counts: it moves the watermark.
    Duplicate { time: EventTime },
    /// A Pod or Node record whose summary state did not change (a heartbeat);
    /// its event time still moves the watermark.
    Unchanged { time: EventTime },
    /// An empty or whitespace-only line.
    Blank,
}

/// Counters of what the decoder saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeStats {
    pub lines: u64,
    pub blank: u64,
    pub errors: u64,
    /// Kubernetes Event records (core/v1 and events.k8s.io/v1).
    pub k8s_events: u64,
    pub pods: u64,
    pub nodes: u64,
    /// Records of the other kinds of objects (claims, volumes, Services,
    /// EndpointSlices, webhook configurations...: the object graph).
    pub volumes: u64,
    pub alert_bodies: u64,
    /// Alerts inside the bodies.
    pub alerts: u64,
    pub vector_logs: u64,
    pub fluent_bit_logs: u64,
    /// Events pushed.
    pub events: u64,
    /// Kubernetes Event replays and alert redeliveries (per alert) dropped.
    pub duplicates: u64,
    /// Pod and Node records without a transition.
    pub unchanged: u64,
    /// Entries dropped from the bounded tables.
    pub evictions: u64,
}

/// Decodes input lines into events, remembering what it needs to report
/// transitions and drop repeats. See the module docs.
#[derive(Debug)]
pub struct Decoder {
    topology: Topology,
    events: Bounded<EventSeen>,
    pods: Bounded<PodSeen>,
    nodes: Bounded<NodeSeen>,
    alerts: Bounded<()>,
    /// The last content of each graph object (not checkpointed: see
    /// [`object`]).
    objects: Bounded<u64>,
    stats: DecodeStats,
    /// Parts of the last records that could not be read while the rest of
    /// the record was (an unreadable alert of a webhook body).
    rejected: Vec<Rejected>,
    /// Rejected parts since the decoder was made (not checkpointed).
    rejected_total: u64,
}

/// A part of a record that could not be read while the rest of it was: one
/// alert of an Alertmanager body. The caller reports it with the record's
/// place; its events were not formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The alert's fingerprint, when it has a readable one.
    pub fingerprint: Option<String>,
    /// What is wrong, with the part's path (`alerts[1].startsAt: ...`).
    pub error: DecodeError,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

/// Where a record sits: its origin, the watch event's `observedAt`, and the
/// path prefix of its fields in error messages (`object.` inside a watch event).
#[derive(Clone, Copy, Debug)]
struct Ctx {
    origin: Origin,
    observed_at: Option<EventTime>,
    prefix: &'static str,
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder {
            topology: Topology::new(limits.max_objects),
            events: Bounded::new(limits.max_occurrences).with_horizon(limits.occurrence_horizon),
            pods: Bounded::new(limits.max_objects),
            nodes: Bounded::new(limits.max_objects),
            alerts: Bounded::new(limits.max_occurrences).with_horizon(limits.occurrence_horizon),
            objects: Bounded::new(limits.max_objects),
            stats: DecodeStats::default(),
            rejected: Vec::new(),
            rejected_total: 0,
        }
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// The parts of the records interpreted since the last call that could
    /// not be read (the rest of each record was); see [`Rejected`].
    pub fn take_rejected(&mut self) -> Vec<Rejected> {
        if self.rejected.is_empty() {
            return Vec::new();
        }
        self.rejected_total += self.rejected.len() as u64;
        std::mem::take(&mut self.rejected)
    }

    /// Parts rejected since the decoder was made.
    pub fn rejected_total(&self) -> u64 {
        self.rejected_total + self.rejected.len() as u64
    }

    /// The Pods learnt so far.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Decodes one NDJSON line (without its newline) and pushes the events it
    /// yields, borrowing from `line`, onto `out`. On error nothing is pushed
    /// and no state changes. The same as [`parse`] then [`Decoder::interpret`].
    pub fn decode<'a>(
        &mut self,
        line: &'a str,
        origin: Origin,
        out: &mut Vec<Event<'a>>,
    ) -> Result<Decoded> {
        self.interpret(parse(line), origin, out)
    }

    /// The stateful half of [`Decoder::decode`]: turns a parsed line into
    /// events, against what this decoder remembers (last Pod and Node states,
    /// Event counts, alert deliveries, topology). Lines must be interpreted
    /// in input order; [`parse`] may run ahead on other threads.
    pub fn interpret<'a>(
        &mut self,
        parsed: Result<Parsed<'a>>,
        origin: Origin,
        out: &mut Vec<Event<'a>>,
    ) -> Result<Decoded> {
        self.stats.lines += 1;
        let start = out.len();
        let result = parsed.and_then(|p| match p.0 {
            ParsedLine::Blank => Ok(Decoded::Blank),
            ParsedLine::Record { line, record } => self.dispatch(line, record, origin, out),
        });
        match result {
            Ok(Decoded::Events(n)) => self.stats.events += n as u64,
            // Counted where they are dropped: per Event record, per alert.
            Ok(Decoded::Duplicate { .. }) => {}
            Ok(Decoded::Unchanged { .. }) => self.stats.unchanged += 1,
            Ok(Decoded::Blank) => self.stats.blank += 1,
            Err(_) => {
                out.truncate(start);
                self.stats.errors += 1;
            }
        }
        self.stats.evictions = self.topology.evicted()
            + self.events.evicted()
            + self.pods.evicted()
            + self.nodes.evicted()
            + self.alerts.evicted();
        result
    }

    fn dispatch<'a>(
        &mut self,
        line: &'a str,
        mut rec: Box<Record<'a>>,
        origin: Origin,
        out: &mut Vec<Event<'a>>,
    ) -> Result<Decoded> {
        if let Some(object) = rec.object.take() {
            let deleted = match non_empty(&rec.type_).map(|t| t.as_ref()) {
                Some("ADDED" | "MODIFIED") => false,
                Some("DELETED") => true,
                Some("BOOKMARK") => return Ok(Decoded::Events(0)),
                Some(other) => {
                    return Err(DecodeError::Unsupported {
                        path: "type".into(),
                        value: other.into(),
                        expected: "ADDED, MODIFIED, DELETED or BOOKMARK",
                    });
                }
                None => return Err(DecodeError::missing("", "type")),
            };
            let ctx = Ctx {
                origin,
                observed_at: times::parse_opt("", "observedAt", &rec.observed_at)?,
                prefix: "object.",
            };
            return self.object(object, deleted, ctx, out);
        }
        if rec.kind.is_some() && (rec.api_version.is_some() || rec.metadata.is_some()) {
            let ctx = Ctx {
                origin,
                observed_at: times::parse_opt("", "observedAt", &rec.observed_at)?,
                prefix: "",
            };
            return self.object(rec, false, ctx, out);
        }
        if rec.alerts.is_some() || rec.version.is_some() {
            self.stats.alert_bodies += 1;
            return self.alertmanager(rec, origin, out);
        }
        if rec.kubernetes.is_some() && (rec.message.is_some() || rec.log.is_some()) {
            return self.log(rec, origin, out);
        }
        Err(DecodeError::unrecognised(line))
    }

    /// A Kubernetes object, bare or from a watch event.
    fn object<'a>(
        &mut self,
        rec: Box<Record<'a>>,
        deleted: bool,
        ctx: Ctx,
        out: &mut Vec<Event<'a>>,
    ) -> Result<Decoded> {
        let kind = non_empty(&rec.kind).ok_or_else(|| DecodeError::missing(ctx.prefix, "kind"))?;
        match kind.as_ref() {
            "Event" => {
                self.stats.k8s_events += 1;
                self.k8s_event(rec, deleted, ctx, out)
            }
            "Pod" => {
                self.stats.pods += 1;
                self.pod(rec, deleted, ctx, out)
            }
            "Node" => {
                self.stats.nodes += 1;
                self.node(rec, deleted, ctx, out)
            }
            "PersistentVolumeClaim" | "PersistentVolume" => {
                self.stats.volumes += 1;
                let storage = if kind.as_ref() == "PersistentVolumeClaim" {
                    volume::StorageKind::Claim
                } else {
                    volume::StorageKind::Volume
                };
                let kind = kind.clone();
                self.volume(&rec, storage, deleted, ctx)?;
                self.graph_object(rec, kind, deleted, ctx, out)
            }
            other if object::GRAPH_KINDS.contains(&other) => {
                self.stats.volumes += 1;
                let kind = kind.clone();
                self.graph_object(rec, kind, deleted, ctx, out)
            }
            other => Err(DecodeError::Unsupported {
                path: format!("{}kind", ctx.prefix),
                value: other.into(),
                expected: "Event, Pod, Node, or an object of the graph (Service, EndpointSlice, Endpoints, a webhook configuration, StorageClass, PersistentVolumeClaim, PersistentVolume, a workload, ResourceQuota, PodDisruptionBudget)",
            }),
        }
    }
}

/// A line parsed from JSON, not yet interpreted: the stateless half of
/// decoding, which may run on any thread (see [`Decoder::interpret`]).
#[derive(Debug)]
pub struct Parsed<'a>(ParsedLine<'a>);

#[derive(Debug)]
enum ParsedLine<'a> {
    Blank,
    Record {
        line: &'a str,
        record: Box<Record<'a>>,
    },
}

/// Parses one NDJSON line into its wire record, borrowing from `line`.
pub fn parse(line: &str) -> Result<Parsed<'_>> {
    let trimmed = line.trim_start();
    let Some(&first) = trimmed.as_bytes().first() else {
        return Ok(Parsed(ParsedLine::Blank));
    };
    if first != b'{' {
        return Err(not_an_object(line, first));
    }
    let record: Record<'_> =
        serde_json::from_str(line).map_err(|e| DecodeError::from_json(&e, line))?;
    Ok(Parsed(ParsedLine::Record {
        line,
        record: Box::new(record),
    }))
}

/// The error for a line that does not start with `{`.
fn not_an_object(line: &str, first: u8) -> DecodeError {
    if let Err(e) = serde_json::from_str::<IgnoredAny>(line) {
        return DecodeError::from_json(&e, line);
    }
    DecodeError::NotObject {
        found: match first {
            b'[' => "an array",
            b'"' => "a string",
            b't' | b'f' => "a boolean",
            b'n' => "null",
            _ => "a number",
        },
    }
}

/// `s[range]`, borrowed when `s` is.
fn slice<'a>(s: &Cow<'a, str>, range: Range<usize>) -> Cow<'a, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(&b[range]),
        Cow::Owned(o) => Cow::Owned(o[range].to_owned()),
    }
}

/// `n` as a field value: numbers 0..=9 without an allocation.
fn num<'a>(n: u64) -> Cow<'a, str> {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match usize::try_from(n).ok().and_then(|i| DIGITS.get(i)) {
        Some(d) => Cow::Borrowed(d),
        None => Cow::Owned(n.to_string()),
    }
}

fn flag<'a>(b: bool) -> Cow<'a, str> {
    Cow::Borrowed(if b { "true" } else { "false" })
}

/// Takes a string field out of the record (no copy).
fn take<'a>(s: &mut Option<Str<'a>>) -> Option<Cow<'a, str>> {
    s.take().map(|s| s.0)
}

/// Takes a non-empty string field out of the record.
fn take_non_empty<'a>(s: &mut Option<Str<'a>>) -> Option<Cow<'a, str>> {
    take(s).filter(|s| !s.is_empty())
}

//! Checkpoint and restore of the engine's whole state.
//!
//! [`Engine::snapshot`] copies everything the engine holds into an owned
//! [`EngineSnapshot`]: the reorder buffer, watermark and clocks, entity
//! states, log activity, every rule's correlation or absence state (held
//! effects, cause groups, episodes), the incident store with its merge
//! structure, the counters and the housekeeping deadlines.
//! [`Engine::restore`] builds an engine from one, under the rule pack in
//! force *now*, and [`EngineSnapshot::to_bytes`] / [`from_bytes`] carry it
//! to and from disk ([`crate::checkpoint`] format).
//!
//! The design choices:
//!
//! - **Rules and signals by id, with fingerprints.** Inside the engine a
//!   signal is an index into the rule set; in a snapshot every signal and
//!   rule is named by its string id with its fingerprint
//!   ([`RuleSet::signal_fingerprint`]), and the state refers to those tables.
//!   Restoring under an edited pack maps by id: the state of a rule or signal
//!   that is gone, or whose definition changed, is dropped and listed in the
//!   [`RestoreReport`] (with what was discarded), never silently; rules new
//!   in the pack start empty; incidents already formed stay whatever their
//!   rule became (they are history).
//! - **Off the hot path.** Nothing here runs during `push`; the engine only
//!   keeps two counters for the held effects of rules dropped at a restore,
//!   so its totals stay monotonic. `snapshot` needs the engine (it clones the
//!   state); serialising the snapshot does not, and may run elsewhere.
//! - **Deterministic bytes.** Hash maps are written sorted, so the same state
//!   always gives the same bytes, and a restored engine snapshots to exactly
//!   the bytes it was restored from.
//! - **Restore validates.** Every incident index, effect index and merge link
//!   is checked (merge chains must end), so a snapshot that decodes but does
//!   not hold together is a [`RestoreError`], not a later panic.
//!
//! [`from_bytes`]: EngineSnapshot::from_bytes

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use super::absence::{AbsenceState, Evidence, Silent};
use super::activity::{Activity, PodActivity};
use super::correlation::{CorrelationState, Group};
use super::join::{Joiner, hit_bytes};
use super::reorder::{Entry, OrderKey};
use super::{Engine, EngineConfig, EngineStats, Item};
use crate::checkpoint::{self, FormatError, Kind};
use crate::classify::Hit;
use crate::graph::{Graph, GraphSnapshot};
use crate::incident::{
    AbsenceFacts, Incident, IncidentIdx, IncidentStore, Member, Role, RuleKind, RuleRef, Status,
};
use crate::model::{Entity, Origin, Owner, Severity};
use crate::rules::template::Template;
use crate::rules::{RuleSet, SignalId};
use crate::time::{EventTime, Span};

/// The schema version of [`EngineSnapshot`] bytes. Bump it with any change
/// to a type below (the golden test in `ingest/tests/checkpoint.rs` fails
/// until you do).
///
/// 2: the object graph follows the rest (1 is still read, with no graph).
pub const FORMAT_VERSION: u16 = 2;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("checkpoint state is inconsistent: {0}")]
    Inconsistent(String),
}

pub(crate) type Result<T, E = RestoreError> = std::result::Result<T, E>;

fn inconsistent(what: impl Into<String>) -> RestoreError {
    RestoreError::Inconsistent(what.into())
}

/// What a piece of state belonged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StateKind {
    Signal,
    Correlation,
    Absence,
}

/// Why a rule's or signal's state was dropped at restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DropReason {
    /// No rule of that id in the pack any more.
    Removed,
    /// Same id, different definition (fingerprint).
    Changed,
}

/// State of one rule or signal dropped at restore, with what it held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DroppedState {
    pub kind: StateKind,
    pub id: String,
    pub reason: DropReason,
    /// Signals of it waiting in the reorder buffer (signals only).
    pub buffered_signals: u64,
    /// Entities in its state (state signals only).
    pub entity_states: u64,
    /// Effects held for a cause (rules only).
    pub held_effects: u64,
    /// Cause groups, or 1 for an absence rule's open episode (rules only).
    pub groups: u64,
}

/// What [`Engine::restore`] could not carry over. Empty when the rule pack
/// is the one the snapshot was taken under.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    pub dropped: Vec<DroppedState>,
    /// Ids of firing incidents whose rule's state was dropped: they stay,
    /// but only their quiet period (if any) will resolve them now.
    pub orphaned_incidents: Vec<String>,
    /// Rules and signals new in the pack: they start empty.
    pub added: Vec<(StateKind, String)>,
}

impl RestoreReport {
    /// Nothing dropped, nothing new: the same pack.
    pub fn is_clean(&self) -> bool {
        self.dropped.is_empty() && self.orphaned_incidents.is_empty() && self.added.is_empty()
    }
}

/// A rule or signal as the snapshot names it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Mark {
    id: String,
    fingerprint: u64,
}

/// Everything an [`Engine`] holds, owned and serialisable. Opaque: its
/// schema is [`FORMAT_VERSION`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EngineSnapshot {
    core: SnapshotCore,
    /// Since format 2: appended, so format 1 is `core` alone.
    graph: GraphSnapshot,
    /// Since format 2: per absence rule (parallel to `core.absences`), when
    /// an absent signal was last about each entity.
    spoken: Vec<Vec<(String, i64)>>,
}

impl std::ops::Deref for EngineSnapshot {
    type Target = SnapshotCore;
    fn deref(&self) -> &SnapshotCore {
        &self.core
    }
}

impl std::ops::DerefMut for EngineSnapshot {
    fn deref_mut(&mut self) -> &mut SnapshotCore {
        &mut self.core
    }
}

/// What format 1 held.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotCore {
    /// Index = the signal's index in the rule set it was taken under.
    signals: Vec<Mark>,
    correlations: Vec<Mark>,
    absences: Vec<Mark>,
    watermark: i64,
    clock: i64,
    max_time: i64,
    next_quiet_check: i64,
    next_housekeeping: i64,
    stats: EngineStats,
    retired_dropped: u64,
    retired_evicted: u64,
    reorder_seq: u64,
    /// Sorted by (key, seq): the order they leave in.
    reorder: Vec<Queued>,
    states: Vec<(String, u32)>,
    activity: ActivitySnap,
    /// Parallel to `correlations` / `absences`.
    correlation_states: Vec<CorrelationSnap>,
    absence_states: Vec<AbsenceSnap>,
    store: StoreSnap,
    /// The strings of entities and hit attributes, each once.
    strings: Vec<String>,
    /// Owner chains and attribute lists (pairs of string ids), each once.
    lists: Vec<Vec<(u32, u32)>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Queued {
    time: i64,
    class: u8,
    content: u64,
    seq: u64,
    item: ItemSnap,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum ItemSnap {
    Transition {
        key: String,
        states: Vec<u32>,
        time: i64,
    },
    Signal(HitSnap),
}

/// Strings are ids into [`EngineSnapshot::strings`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct EntitySnap {
    kind: u32,
    namespace: Option<u32>,
    name: u32,
    uid: Option<u32>,
    node: Option<u32>,
    /// A list of (kind, name) in [`EngineSnapshot::lists`].
    owners: u32,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct HitSnap {
    signal: u32,
    time: i64,
    entity: EntitySnap,
    /// A list of (name, value) in [`EngineSnapshot::lists`].
    attributes: u32,
    summary: u32,
    severity: Severity,
    occurrence: Option<u64>,
    repeat: bool,
    origin: (u32, u64),
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ActivitySnap {
    pods: Vec<(u64, EntitySnap, Vec<i64>)>,
    members: Vec<(String, Vec<(String, u64)>)>,
    evicted: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct JoinerSnap {
    index: Vec<(u32, String, Vec<String>)>,
    held: Vec<(u32, String, Vec<HitSnap>)>,
    dropped: u64,
    evicted: u64,
    evicted_logged: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct GroupSnap {
    key: String,
    incident: u64,
    first: i64,
    last_cause: i64,
    count: u32,
    occurrences: Vec<u64>,
    causes: Vec<String>,
    effects: Vec<String>,
    joins: Vec<(u32, String)>,
    resolved_causes: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct CorrelationSnap {
    groups: Vec<GroupSnap>,
    joiner: JoinerSnap,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct EvidenceSnap {
    workload: String,
    times: Vec<i64>,
    first: i64,
    entities: Vec<(String, HitSnap)>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct AbsenceSnap {
    in_state: Vec<(i64, String)>,
    state_of: Vec<(String, i64, EntitySnap, String)>,
    last_absent: Option<i64>,
    evidence: Vec<EvidenceSnap>,
    incident: Option<u64>,
    /// (workload, pod, since)
    silent: Option<(String, u64, i64)>,
    window: Option<(i64, i64)>,
    reported_silences: Vec<(u64, i64)>,
    resolved_at: Option<i64>,
    last_left: Option<i64>,
    members: Vec<String>,
    joiner: JoinerSnap,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum RuleRefSnap {
    /// Index into the snapshot's `correlations` / `absences`.
    Correlation(u32),
    Absence(u32),
    Retired(RuleKind),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct MemberSnap {
    entity: EntitySnap,
    signal: String,
    role: Role,
    first: i64,
    last: i64,
    records: u64,
    joined_by: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct FactsSnap {
    absent: Vec<String>,
    since: i64,
    until: i64,
    held_for: i64,
    silent_since: Option<i64>,
    lines_before_silence: Option<u64>,
    evidence_records: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct IncidentSnap {
    id: String,
    rule: RuleRefSnap,
    rule_id: String,
    description: String,
    status: Status,
    severity: Severity,
    opened_at: Option<i64>,
    first_seen: i64,
    last_seen: i64,
    resolved_at: Option<i64>,
    resolved_by: Option<String>,
    root: EntitySnap,
    root_signal: String,
    root_summary: String,
    summary_rank: u64,
    attributes: Vec<(String, String)>,
    causes: Vec<(String, MemberSnap)>,
    affected: Vec<(String, MemberSnap)>,
    signals: u64,
    window_before: i64,
    window_after: i64,
    absence: Option<FactsSnap>,
    merged_from: Vec<(String, String)>,
    merged_into: Option<u64>,
    version: u32,
    title: Template,
    summary: Template,
    quiet: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct StoreSnap {
    incidents: Vec<IncidentSnap>,
    by_root: Vec<(String, Vec<u64>)>,
    by_affected: Vec<(String, Vec<u64>)>,
}

impl EngineSnapshot {
    /// The snapshot in the checkpoint format (header, version, checksum).
    pub fn to_bytes(&self) -> Result<Vec<u8>, FormatError> {
        checkpoint::encode(Kind::Engine, FORMAT_VERSION, self)
    }

    /// Reads [`EngineSnapshot::to_bytes`] output. Anything else, a damaged
    /// file or another format version, is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<EngineSnapshot, FormatError> {
        match checkpoint::decode(Kind::Engine, FORMAT_VERSION, bytes) {
            Err(FormatError::UnsupportedVersion { found: 1, .. }) => {
                let core: SnapshotCore = checkpoint::decode(Kind::Engine, 1, bytes)?;
                let spoken = vec![Vec::new(); core.absences.len()];
                Ok(EngineSnapshot {
                    core,
                    graph: GraphSnapshot::default(),
                    spoken,
                })
            }
            other => other,
        }
    }

    /// The engine's watermark when the snapshot was taken.
    pub fn watermark(&self) -> EventTime {
        EventTime::from_micros(self.watermark)
    }

    /// The newest event time the engine had seen.
    pub fn max_time(&self) -> EventTime {
        EventTime::from_micros(self.max_time)
    }

    /// Incidents in the store (pending, firing, resolved, merged).
    pub fn incidents(&self) -> usize {
        self.store.incidents.len()
    }
}

// ---------------------------------------------------------------- snapshot

fn micros(t: EventTime) -> i64 {
    t.as_micros()
}

fn time(us: i64) -> EventTime {
    EventTime::from_micros(us)
}

fn opt_time(t: Option<EventTime>) -> Option<i64> {
    t.map(EventTime::as_micros)
}

fn idx(i: IncidentIdx) -> u64 {
    i as u64
}

/// Strings of entities and attributes, each written once: held effects
/// repeat the same kinds, namespaces, nodes and attribute values by the
/// million. Ids are given in the order of a traversal that visits
/// everything sorted, so the same state always numbers them the same.
struct Interner<'e> {
    ids: FxHashMap<&'e str, u32>,
    strings: Vec<&'e str>,
    list_ids: FxHashMap<Vec<(u32, u32)>, u32>,
    lists: Vec<Vec<(u32, u32)>>,
    scratch: Vec<(u32, u32)>,
}

impl<'e> Interner<'e> {
    /// For about `n` entities (a name each, most of them distinct).
    fn with_capacity(n: usize) -> Self {
        Interner {
            ids: FxHashMap::with_capacity_and_hasher(n, Default::default()),
            strings: Vec::with_capacity(n),
            list_ids: FxHashMap::default(),
            lists: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn id(&mut self, s: &'e str) -> u32 {
        let next = self.strings.len() as u32;
        let id = *self.ids.entry(s).or_insert(next);
        if id == next {
            self.strings.push(s);
        }
        id
    }

    /// The id of the list of string pairs `pairs` yields.
    fn list(&mut self, pairs: impl Iterator<Item = (&'e str, &'e str)>) -> u32 {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend(pairs.map(|(a, b)| (self.id(a), self.id(b))));
        let id = match self.list_ids.get(scratch.as_slice()) {
            Some(id) => *id,
            None => {
                let id = self.lists.len() as u32;
                self.lists.push(scratch.clone());
                self.list_ids.insert(scratch.clone(), id);
                id
            }
        };
        self.scratch = scratch;
        id
    }

    fn entity(&mut self, e: &'e Entity<'_>) -> EntitySnap {
        EntitySnap {
            kind: self.id(&e.kind),
            namespace: e.namespace.as_deref().map(|s| self.id(s)),
            name: self.id(&e.name),
            uid: e.uid.as_deref().map(|s| self.id(s)),
            node: e.node.as_deref().map(|s| self.id(s)),
            owners: self.list(e.owners.iter().map(|o| (&*o.kind, &*o.name))),
        }
    }

    fn hit(&mut self, h: &'e Hit) -> HitSnap {
        HitSnap {
            signal: h.signal.0,
            time: micros(h.time),
            entity: self.entity(&h.entity),
            attributes: self.list(h.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            summary: self.id(&h.summary),
            severity: h.severity,
            occurrence: h.occurrence,
            repeat: h.repeat,
            origin: (h.origin.file, h.origin.line),
        }
    }

    fn joiner(&mut self, j: &'e Joiner) -> JoinerSnap {
        let mut index: Vec<(u32, String, Vec<String>)> = j
            .index
            .iter()
            .map(|((ei, k), gs)| (*ei as u32, k.clone(), gs.clone()))
            .collect();
        index.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut held: Vec<(&(usize, String), &VecDeque<Hit>)> = j.held.iter().collect();
        held.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let held = held
            .into_iter()
            .map(|((ei, k), q)| {
                let hits = q.iter().map(|h| self.hit(h)).collect();
                (*ei as u32, k.clone(), hits)
            })
            .collect();
        JoinerSnap {
            index,
            held,
            dropped: j.dropped,
            evicted: j.evicted,
            evicted_logged: j.evicted_logged,
        }
    }

    fn correlation(&mut self, c: &'e CorrelationState) -> CorrelationSnap {
        let mut groups: Vec<GroupSnap> = c
            .groups
            .iter()
            .map(|(key, g)| GroupSnap {
                key: key.clone(),
                incident: idx(g.incident),
                first: micros(g.first),
                last_cause: micros(g.last_cause),
                count: g.count,
                occurrences: sorted(g.occurrences.iter().copied()),
                causes: sorted(g.causes.iter().cloned()),
                effects: sorted(g.effects.iter().cloned()),
                joins: sorted(g.joins.iter().map(|(ei, k)| (*ei as u32, k.clone()))),
                resolved_causes: sorted(g.resolved_causes.iter().cloned()),
            })
            .collect();
        groups.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        CorrelationSnap {
            groups,
            joiner: self.joiner(&c.joiner),
        }
    }

    fn absence(&mut self, a: &'e AbsenceState) -> AbsenceSnap {
        AbsenceSnap {
            in_state: a
                .in_state
                .iter()
                .map(|(t, k)| (micros(*t), k.clone()))
                .collect(),
            state_of: a
                .state_of
                .iter()
                .map(|(k, (t, e, s))| (k.clone(), micros(*t), self.entity(e), s.clone()))
                .collect(),
            last_absent: opt_time(a.last_absent),
            evidence: a
                .evidence
                .iter()
                .map(|(w, ev)| EvidenceSnap {
                    workload: w.clone(),
                    times: ev.times.iter().copied().map(micros).collect(),
                    first: micros(ev.first),
                    entities: ev
                        .entities
                        .iter()
                        .map(|(k, h)| (k.clone(), self.hit(h)))
                        .collect(),
                })
                .collect(),
            incident: a.incident.map(idx),
            silent: a
                .silent
                .as_ref()
                .map(|(w, s)| (w.clone(), s.pod, micros(s.since))),
            window: a.window.map(|(f, t)| (micros(f), micros(t))),
            reported_silences: a
                .reported_silences
                .iter()
                .map(|(p, t)| (*p, micros(*t)))
                .collect(),
            resolved_at: opt_time(a.resolved_at),
            last_left: opt_time(a.last_left),
            members: a.members.iter().cloned().collect(),
            joiner: self.joiner(&a.joiner),
        }
    }

    fn activity(&mut self, a: &'e Activity) -> ActivitySnap {
        let mut pods: Vec<(&u64, &PodActivity)> = a.pods.iter().collect();
        pods.sort_unstable_by_key(|p| *p.0);
        let pods = pods
            .into_iter()
            .map(|(h, p)| {
                let times = p.times.iter().copied().map(micros).collect();
                (*h, self.entity(&p.entity), times)
            })
            .collect();
        let mut members: Vec<(String, Vec<(String, u64)>)> = a
            .members
            .iter()
            .map(|(w, m)| (w.clone(), m.iter().cloned().collect()))
            .collect();
        members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        ActivitySnap {
            pods,
            members,
            evicted: a.evicted,
        }
    }

    fn member(&mut self, m: &'e Member) -> MemberSnap {
        MemberSnap {
            entity: self.entity(&m.entity),
            signal: m.signal.clone(),
            role: m.role,
            first: micros(m.first),
            last: micros(m.last),
            records: m.records,
            joined_by: m.joined_by.clone(),
        }
    }

    fn incident(&mut self, i: &'e Incident) -> IncidentSnap {
        let mut members = |m: &'e BTreeMap<String, Member>| -> Vec<(String, MemberSnap)> {
            m.iter().map(|(k, m)| (k.clone(), self.member(m))).collect()
        };
        let causes = members(&i.causes);
        let affected = members(&i.affected);
        IncidentSnap {
            id: i.id.clone(),
            rule: match i.rule {
                RuleRef::Correlation(ci) => RuleRefSnap::Correlation(ci as u32),
                RuleRef::Absence(ai) => RuleRefSnap::Absence(ai as u32),
                RuleRef::Retired(kind) => RuleRefSnap::Retired(kind),
            },
            rule_id: i.rule_id.clone(),
            description: i.description.clone(),
            status: i.status,
            severity: i.severity,
            opened_at: opt_time(i.opened_at),
            first_seen: micros(i.first_seen),
            last_seen: micros(i.last_seen),
            resolved_at: opt_time(i.resolved_at),
            resolved_by: i.resolved_by.clone(),
            root: self.entity(&i.root),
            root_signal: i.root_signal.clone(),
            root_summary: i.root_summary.clone(),
            summary_rank: i.summary_rank as u64,
            attributes: i
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            causes,
            affected,
            signals: i.signals,
            window_before: i.window_before.as_micros(),
            window_after: i.window_after.as_micros(),
            absence: i.absence.as_ref().map(|f| FactsSnap {
                absent: f.absent.clone(),
                since: micros(f.since),
                until: micros(f.until),
                held_for: f.held_for.as_micros(),
                silent_since: opt_time(f.silent_since),
                lines_before_silence: f.lines_before_silence,
                evidence_records: f.evidence_records,
            }),
            merged_from: i.merged_from.clone(),
            merged_into: i.merged_into.map(idx),
            version: i.version,
            title: i.title.clone(),
            summary: i.summary.clone(),
            quiet: i.quiet.as_micros(),
        }
    }

    fn store(&mut self, s: &'e IncidentStore) -> StoreSnap {
        StoreSnap {
            incidents: s.incidents.iter().map(|i| self.incident(i)).collect(),
            by_root: index_snap(&s.by_root),
            by_affected: index_snap(&s.by_affected),
        }
    }
}

fn sorted<T: Ord + Clone>(it: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = it.collect();
    v.sort_unstable();
    v
}

fn index_snap(m: &FxHashMap<String, Vec<IncidentIdx>>) -> Vec<(String, Vec<u64>)> {
    let mut v: Vec<(String, Vec<u64>)> = m
        .iter()
        .map(|(k, is)| (k.clone(), is.iter().copied().map(idx).collect()))
        .collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v
}

impl Engine {
    /// A copy of the engine's whole state. Take it between calls (every call
    /// hands back the incident updates it caused, so none is pending).
    pub fn snapshot(&self) -> EngineSnapshot {
        debug_assert!(
            self.store.updates.is_empty(),
            "every call hands its updates back"
        );
        let rules = &self.rules;
        let held: usize = self.joiners().map(|j| j.held_entries).sum();
        let mut st = Interner::with_capacity(
            held + self.reorder.len() + self.activity.len() + self.store.len() + 64,
        );
        let mut queued: Vec<&Entry<Item>> = self.reorder.heap.iter().map(|Reverse(e)| e).collect();
        queued.sort_unstable_by_key(|e| (e.key, e.seq));
        let reorder: Vec<Queued> = queued
            .into_iter()
            .map(|e| Queued {
                time: micros(e.key.time),
                class: e.key.class,
                content: e.key.content,
                seq: e.seq,
                item: match &e.item {
                    Item::Transition { key, states, time } => ItemSnap::Transition {
                        key: key.clone(),
                        states: states.iter().map(|s| s.0).collect(),
                        time: micros(*time),
                    },
                    Item::Signal(hit) => ItemSnap::Signal(st.hit(hit)),
                },
            })
            .collect();
        let activity = st.activity(&self.activity);
        let correlation_states = self
            .correlations
            .iter()
            .map(|c| st.correlation(c))
            .collect();
        let absence_states = self.absences.iter().map(|a| st.absence(a)).collect();
        let store = st.store(&self.store);
        let core = SnapshotCore {
            signals: (0..rules.signals.len())
                .map(|i| {
                    let id = SignalId(i as u32);
                    Mark {
                        id: rules.signal(id).id.clone(),
                        fingerprint: rules.signal_fingerprint(id),
                    }
                })
                .collect(),
            correlations: (0..rules.correlations.len())
                .map(|ci| Mark {
                    id: rules.correlations[ci].id.clone(),
                    fingerprint: rules.correlation_fingerprint(ci),
                })
                .collect(),
            absences: (0..rules.absences.len())
                .map(|ai| Mark {
                    id: rules.absences[ai].id.clone(),
                    fingerprint: rules.absence_fingerprint(ai),
                })
                .collect(),
            watermark: micros(self.watermark),
            clock: micros(self.clock),
            max_time: micros(self.max_time),
            next_quiet_check: micros(self.next_quiet_check),
            next_housekeeping: micros(self.next_housekeeping),
            stats: self.stats.clone(),
            retired_dropped: self.retired_dropped,
            retired_evicted: self.retired_evicted,
            reorder_seq: self.reorder.seq,
            reorder,
            states: sorted(self.states.iter().map(|(k, s)| (k.clone(), s.0))),
            activity,
            correlation_states,
            absence_states,
            store,
            strings: st.strings.iter().map(|s| (*s).to_string()).collect(),
            lists: st.lists,
        };
        EngineSnapshot {
            core,
            graph: self.graph.snapshot(),
            spoken: self
                .absences
                .iter()
                .map(|a| {
                    a.spoken
                        .iter()
                        .map(|(k, t)| (k.clone(), micros(*t)))
                        .collect()
                })
                .collect(),
        }
    }

    /// An engine in the state `snap` describes, under `rules` and `config`
    /// (which may differ from those it was taken under: see the module docs
    /// and the [`RestoreReport`]). Limits take effect from the next record.
    pub fn restore(
        rules: Arc<RuleSet>,
        config: EngineConfig,
        snap: EngineSnapshot,
    ) -> Result<(Engine, RestoreReport)> {
        Restorer::new(rules, config, &snap)?.run(snap)
    }
}

// ----------------------------------------------------------------- restore

/// String `id` of the snapshot's table.
fn text(strings: &[String], id: u32) -> Result<String> {
    strings
        .get(id as usize)
        .cloned()
        .ok_or_else(|| inconsistent(format!("string {id} of {}", strings.len())))
}

/// The string pairs of list `id` of the snapshot's table.
fn pairs(t: &Tables, id: u32) -> Result<Vec<(String, String)>> {
    let list = t
        .lists
        .get(id as usize)
        .ok_or_else(|| inconsistent(format!("list {id} of {}", t.lists.len())))?;
    list.iter()
        .map(|(a, b)| Ok((text(&t.strings, *a)?, text(&t.strings, *b)?)))
        .collect()
}

/// The snapshot's string and list tables.
#[derive(Default)]
struct Tables {
    strings: Vec<String>,
    lists: Vec<Vec<(u32, u32)>>,
}

fn entity(e: EntitySnap, t: &Tables) -> Result<Entity<'static>> {
    let strings = &t.strings;
    let s = |id: u32| text(strings, id).map(Cow::Owned);
    let o = |id: Option<u32>| id.map(s).transpose();
    // `into_owned` gives the same borrowed well-known kinds as classifying
    // did, so held-state byte estimates come out the same.
    Ok(Entity {
        kind: s(e.kind)?,
        namespace: o(e.namespace)?,
        name: s(e.name)?,
        uid: o(e.uid)?,
        node: o(e.node)?,
        owners: pairs(t, e.owners)?
            .into_iter()
            .map(|(kind, name)| Owner {
                kind: Cow::Owned(kind),
                name: Cow::Owned(name),
            })
            .collect(),
    }
    .into_owned())
}

/// Old rule-set indexes -> new ones, and what was dropped.
struct Restorer {
    rules: Arc<RuleSet>,
    config: EngineConfig,
    /// Old signal index -> new id, if kept.
    signals: Vec<Option<SignalId>>,
    /// Old rule index -> new index of the same id (kept or not), and kept.
    correlations: Vec<(Option<usize>, bool)>,
    absences: Vec<(Option<usize>, bool)>,
    report: RestoreReport,
    /// Index into `report.dropped` of each dropped signal.
    dropped_signal: FxHashMap<u32, usize>,
    /// Unattached and evicted effects of the joiners dropped.
    retired: (u64, u64),
    /// The snapshot's string and list tables.
    tables: Tables,
}

/// Maps old marks to the rules of the same id, kept when the fingerprint matches.
fn map_marks(
    marks: &[Mark],
    kind: StateKind,
    find: impl Fn(&str) -> Option<usize>,
    fingerprint: impl Fn(usize) -> u64,
    dropped: &mut Vec<DroppedState>,
) -> Vec<(Option<usize>, bool)> {
    marks
        .iter()
        .map(|m| {
            let new = find(&m.id);
            let kept = new.is_some_and(|n| fingerprint(n) == m.fingerprint);
            if !kept {
                dropped.push(DroppedState {
                    kind,
                    id: m.id.clone(),
                    reason: if new.is_some() {
                        DropReason::Changed
                    } else {
                        DropReason::Removed
                    },
                    buffered_signals: 0,
                    entity_states: 0,
                    held_effects: 0,
                    groups: 0,
                });
            }
            (new, kept)
        })
        .collect()
}

fn check_incident(i: u64, n: usize, what: &str) -> Result<IncidentIdx> {
    usize::try_from(i)
        .ok()
        .filter(|i| *i < n)
        .ok_or_else(|| inconsistent(format!("{what} names incident {i} of {n}")))
}

impl Restorer {
    fn new(rules: Arc<RuleSet>, config: EngineConfig, snap: &EngineSnapshot) -> Result<Restorer> {
        if snap.correlation_states.len() != snap.correlations.len()
            || snap.absence_states.len() != snap.absences.len()
        {
            return Err(inconsistent(format!(
                "{} correlation and {} absence states for {} and {} rules",
                snap.correlation_states.len(),
                snap.absence_states.len(),
                snap.correlations.len(),
                snap.absences.len()
            )));
        }
        let mut report = RestoreReport::default();
        let signals: Vec<Option<SignalId>> = map_marks(
            &snap.signals,
            StateKind::Signal,
            |id| rules.signal_id(id).map(|s| s.0 as usize),
            |i| rules.signal_fingerprint(SignalId(i as u32)),
            &mut report.dropped,
        )
        .into_iter()
        .map(|(new, kept)| new.filter(|_| kept).map(|n| SignalId(n as u32)))
        .collect();
        let dropped_signal = report
            .dropped
            .iter()
            .enumerate()
            .filter_map(|(di, d)| {
                snap.signals
                    .iter()
                    .position(|m| m.id == d.id)
                    .map(|si| (si as u32, di))
            })
            .collect();
        let correlations = map_marks(
            &snap.correlations,
            StateKind::Correlation,
            |id| rules.correlations.iter().position(|c| c.id == id),
            |ci| rules.correlation_fingerprint(ci),
            &mut report.dropped,
        );
        let absences = map_marks(
            &snap.absences,
            StateKind::Absence,
            |id| rules.absences.iter().position(|a| a.id == id),
            |ai| rules.absence_fingerprint(ai),
            &mut report.dropped,
        );
        let known = |marks: &[Mark], id: &str| marks.iter().any(|m| m.id == id);
        report.added.extend(
            rules
                .signals
                .iter()
                .filter(|s| !known(&snap.signals, &s.id))
                .map(|s| (StateKind::Signal, s.id.clone())),
        );
        report.added.extend(
            rules
                .correlations
                .iter()
                .filter(|c| !known(&snap.correlations, &c.id))
                .map(|c| (StateKind::Correlation, c.id.clone())),
        );
        report.added.extend(
            rules
                .absences
                .iter()
                .filter(|a| !known(&snap.absences, &a.id))
                .map(|a| (StateKind::Absence, a.id.clone())),
        );
        Ok(Restorer {
            rules,
            config,
            signals,
            correlations,
            absences,
            report,
            dropped_signal,
            retired: (0, 0),
            tables: Tables::default(),
        })
    }

    fn signal(&self, old: u32) -> Option<SignalId> {
        self.signals.get(old as usize).copied().flatten()
    }

    /// Counts a piece of state of a dropped signal.
    fn count_signal(&mut self, old: u32, f: impl FnOnce(&mut DroppedState)) {
        if let Some(&di) = self.dropped_signal.get(&old) {
            f(&mut self.report.dropped[di]);
        }
    }

    /// The hit, or `None` when its signal was dropped.
    fn hit(&self, h: HitSnap) -> Result<Option<Hit>> {
        let Some(signal) = self.signal(h.signal) else {
            return Ok(None);
        };
        let s = |id: u32| text(&self.tables.strings, id);
        Ok(Some(Hit {
            signal,
            time: time(h.time),
            entity: entity(h.entity, &self.tables)?,
            attributes: pairs(&self.tables, h.attributes)?,
            summary: s(h.summary)?,
            severity: h.severity,
            occurrence: h.occurrence,
            repeat: h.repeat,
            origin: Origin {
                file: h.origin.0,
                line: h.origin.1,
            },
        }))
    }

    fn run(mut self, snap: EngineSnapshot) -> Result<(Engine, RestoreReport)> {
        let EngineSnapshot {
            core: mut snap,
            graph,
            mut spoken,
        } = snap;
        if spoken.len() != snap.absences.len() {
            return Err(inconsistent(format!(
                "{} absence memories for {} absence rules",
                spoken.len(),
                snap.absences.len()
            )));
        }
        self.tables = Tables {
            strings: std::mem::take(&mut snap.strings),
            lists: std::mem::take(&mut snap.lists),
        };
        let mut engine = Engine::new(self.rules.clone(), self.config.clone());
        engine.graph = Graph::restore(graph, self.config.max_graph_edges)
            .ok_or_else(|| inconsistent("an object graph edge to no object".to_string()))?;
        let old_correlations = snap.correlations;
        let old_absences = snap.absences;
        engine.store = self.store(snap.store, &old_correlations, &old_absences)?;
        let n = engine.store.incidents.len();
        engine.watermark = time(snap.watermark);
        engine.clock = time(snap.clock);
        engine.max_time = time(snap.max_time);
        engine.next_quiet_check = time(snap.next_quiet_check);
        engine.next_housekeeping = time(snap.next_housekeeping);
        engine.stats = snap.stats;
        engine.retired_dropped = snap.retired_dropped;
        engine.retired_evicted = snap.retired_evicted;

        // The reorder buffer: signals of dropped signals go.
        let mut heap = BinaryHeap::with_capacity(snap.reorder.len());
        for q in snap.reorder {
            let item = match q.item {
                ItemSnap::Transition { key, states, time } => {
                    let states = states
                        .into_iter()
                        .filter_map(|s| {
                            let new = self.signal(s);
                            if new.is_none() {
                                self.count_signal(s, |d| d.buffered_signals += 1);
                            }
                            new
                        })
                        .collect();
                    Item::Transition {
                        key,
                        states,
                        time: self::time(time),
                    }
                }
                ItemSnap::Signal(h) => {
                    let old = h.signal;
                    match self.hit(h)? {
                        Some(hit) => Item::Signal(Box::new(hit)),
                        None => {
                            self.count_signal(old, |d| d.buffered_signals += 1);
                            continue;
                        }
                    }
                }
            };
            heap.push(Reverse(Entry {
                key: OrderKey {
                    time: time(q.time),
                    class: q.class,
                    content: q.content,
                },
                seq: q.seq,
                item,
            }));
        }
        engine.reorder.heap = heap;
        engine.reorder.seq = snap.reorder_seq;

        engine.states = FxHashMap::default();
        for (key, s) in snap.states {
            match self.signal(s) {
                Some(new) => {
                    engine.states.insert(key, new);
                }
                None => self.count_signal(s, |d| d.entity_states += 1),
            }
        }
        engine.activity = activity(snap.activity, self.config.max_tracked_pods, &self.tables)?;

        let caps = (self.config.max_held_entries, self.config.max_held_bytes);
        let mut by_new: Vec<Option<CorrelationState>> =
            (0..self.rules.correlations.len()).map(|_| None).collect();
        for (old, state) in snap.correlation_states.into_iter().enumerate() {
            let (new, kept) = self.correlations[old];
            match new.filter(|_| kept) {
                Some(ci) => {
                    let effects = self.rules.correlations[ci].effects.len();
                    by_new[ci] = Some(self.correlation(state, caps, effects, n)?);
                }
                None => self.drop_correlation(&old_correlations[old].id, &state, &engine.store),
            }
        }
        engine.correlations = by_new
            .into_iter()
            .map(|s| s.unwrap_or_else(|| CorrelationState::with_caps(caps.0, caps.1)))
            .collect();

        let mut by_new: Vec<Option<AbsenceState>> =
            (0..self.rules.absences.len()).map(|_| None).collect();
        for (old, state) in snap.absence_states.into_iter().enumerate() {
            let (new, kept) = self.absences[old];
            match new.filter(|_| kept) {
                Some(ai) => {
                    let effects = self.rules.absences[ai].effects.len();
                    let mut a = self.absence(state, caps, effects, n)?;
                    a.spoken = std::mem::take(&mut spoken[old])
                        .into_iter()
                        .map(|(k, t)| (k, time(t)))
                        .collect();
                    by_new[ai] = Some(a);
                }
                None => self.drop_absence(&old_absences[old].id, &state, &engine.store),
            }
        }
        engine.absences = by_new
            .into_iter()
            .map(|s| s.unwrap_or_else(|| AbsenceState::with_caps(caps.0, caps.1)))
            .collect();

        if self.retired != (0, 0) {
            engine.retired_dropped += self.retired.0;
            engine.retired_evicted += self.retired.1;
            engine.count_held();
        }
        self.report.orphaned_incidents.sort_unstable();
        self.report.orphaned_incidents.dedup();
        Ok((engine, self.report))
    }

    fn dropped_rule(&mut self, kind: StateKind, id: &str) -> Option<&mut DroppedState> {
        self.report
            .dropped
            .iter_mut()
            .find(|d| d.kind == kind && d.id == id)
    }

    /// An incident the rule's dropped state was driving, if it is firing.
    fn orphan(&mut self, store: &IncidentStore, i: u64) {
        let Some(i) = usize::try_from(i).ok().filter(|i| *i < store.len()) else {
            return;
        };
        let inc = store.get(store.find(i));
        if inc.status == Status::Firing {
            self.report.orphaned_incidents.push(inc.id.clone());
        }
    }

    fn drop_correlation(&mut self, id: &str, state: &CorrelationSnap, store: &IncidentStore) {
        self.retire_joiner(&state.joiner);
        let held: usize = state.joiner.held.iter().map(|(_, _, q)| q.len()).sum();
        if let Some(d) = self.dropped_rule(StateKind::Correlation, id) {
            d.held_effects = held as u64;
            d.groups = state.groups.len() as u64;
        }
        for g in &state.groups {
            self.orphan(store, g.incident);
        }
    }

    fn drop_absence(&mut self, id: &str, state: &AbsenceSnap, store: &IncidentStore) {
        self.retire_joiner(&state.joiner);
        let held: usize = state.joiner.held.iter().map(|(_, _, q)| q.len()).sum();
        if let Some(d) = self.dropped_rule(StateKind::Absence, id) {
            d.held_effects = held as u64;
            d.groups = u64::from(state.incident.is_some());
        }
        if let Some(i) = state.incident {
            self.orphan(store, i);
        }
    }

    /// A dropped joiner's counts stay in the engine's totals; what it held
    /// will never meet its cause.
    fn retire_joiner(&mut self, j: &JoinerSnap) {
        let held: usize = j.held.iter().map(|(_, _, q)| q.len()).sum();
        self.retired.0 += j.dropped + held as u64;
        self.retired.1 += j.evicted;
    }
}

fn activity(a: ActivitySnap, max_pods: usize, tables: &Tables) -> Result<Activity> {
    let mut out = Activity::with_cap(max_pods);
    out.pods = a
        .pods
        .into_iter()
        .map(|(h, e, times)| {
            let p = PodActivity {
                entity: entity(e, tables)?,
                times: times.into_iter().map(time).collect(),
            };
            Ok((h, p))
        })
        .collect::<Result<_>>()?;
    out.members = a
        .members
        .into_iter()
        .map(|(w, m)| (w, m.into_iter().collect()))
        .collect();
    out.evicted = a.evicted;
    Ok(out)
}

impl Restorer {
    fn joiner(
        &self,
        j: JoinerSnap,
        caps: (usize, usize),
        effects: usize,
        what: &str,
    ) -> Result<Joiner> {
        let mut out = Joiner::with_caps(caps.0, caps.1);
        let effect = |ei: u32| -> Result<usize> {
            (ei as usize)
                .lt(&effects)
                .then_some(ei as usize)
                .ok_or_else(|| inconsistent(format!("{what}: effect {ei} of {effects}")))
        };
        for (ei, key, groups) in j.index {
            out.index.insert((effect(ei)?, key), groups);
        }
        for (ei, key, hits) in j.held {
            let ei = effect(ei)?;
            let mut q = VecDeque::with_capacity(hits.len());
            for h in hits {
                q.extend(self.hit(h)?);
            }
            if q.is_empty() {
                continue;
            }
            out.held_entries += q.len();
            out.held_bytes += q.iter().map(hit_bytes).sum::<usize>();
            out.held.insert((ei, key), q);
        }
        out.dropped = j.dropped;
        out.evicted = j.evicted;
        out.evicted_logged = j.evicted_logged;
        Ok(out)
    }

    fn correlation(
        &self,
        c: CorrelationSnap,
        caps: (usize, usize),
        effects: usize,
        n: usize,
    ) -> Result<CorrelationState> {
        let mut out = CorrelationState::with_caps(caps.0, caps.1);
        out.joiner = self.joiner(c.joiner, caps, effects, "correlation joiner")?;
        for g in c.groups {
            let incident = check_incident(g.incident, n, "a cause group")?;
            let joins = g
                .joins
                .into_iter()
                .map(|(ei, k)| {
                    (ei as usize)
                        .lt(&effects)
                        .then_some((ei as usize, k))
                        .ok_or_else(|| inconsistent(format!("a group joins effect {ei}")))
                })
                .collect::<Result<FxHashSet<(usize, String)>>>()?;
            out.groups.insert(
                g.key,
                Group {
                    incident,
                    first: time(g.first),
                    last_cause: time(g.last_cause),
                    count: g.count,
                    occurrences: g.occurrences.into_iter().collect(),
                    causes: g.causes.into_iter().collect(),
                    effects: g.effects.into_iter().collect(),
                    joins,
                    resolved_causes: g.resolved_causes.into_iter().collect(),
                },
            );
        }
        Ok(out)
    }

    fn absence(
        &self,
        a: AbsenceSnap,
        caps: (usize, usize),
        effects: usize,
        n: usize,
    ) -> Result<AbsenceState> {
        let mut out = AbsenceState::with_caps(caps.0, caps.1);
        out.joiner = self.joiner(a.joiner, caps, effects, "absence joiner")?;
        out.in_state = a.in_state.into_iter().map(|(t, k)| (time(t), k)).collect();
        out.state_of = a
            .state_of
            .into_iter()
            .map(|(k, t, e, s)| Ok((k, (time(t), entity(e, &self.tables)?, s))))
            .collect::<Result<_>>()?;
        out.last_absent = a.last_absent.map(time);
        out.evidence = a
            .evidence
            .into_iter()
            .map(|ev| {
                let mut entities = BTreeMap::new();
                for (k, h) in ev.entities {
                    if let Some(h) = self.hit(h)? {
                        entities.insert(k, h);
                    }
                }
                let e = Evidence {
                    times: ev.times.into_iter().map(time).collect(),
                    first: time(ev.first),
                    entities,
                };
                Ok((ev.workload, e))
            })
            .collect::<Result<_>>()?;
        out.incident = a
            .incident
            .map(|i| check_incident(i, n, "an absence episode"))
            .transpose()?;
        out.silent = a.silent.map(|(w, pod, since)| {
            (
                w,
                Silent {
                    pod,
                    since: time(since),
                },
            )
        });
        out.window = a.window.map(|(f, t)| (time(f), time(t)));
        out.reported_silences = a
            .reported_silences
            .into_iter()
            .map(|(p, t)| (p, time(t)))
            .collect::<BTreeSet<_>>();
        out.resolved_at = a.resolved_at.map(time);
        out.last_left = a.last_left.map(time);
        out.members = a.members.into_iter().collect();
        Ok(out)
    }

    /// The incident store, its rule references mapped by id.
    fn store(
        &self,
        s: StoreSnap,
        correlations: &[Mark],
        absences: &[Mark],
    ) -> Result<IncidentStore> {
        let n = s.incidents.len();
        let mut store = IncidentStore {
            cluster: self.config.cluster.as_deref().map(Arc::from),
            ..IncidentStore::default()
        };
        for i in s.incidents {
            let rule = match i.rule {
                RuleRefSnap::Correlation(ci) => {
                    let mark = correlations
                        .get(ci as usize)
                        .ok_or_else(|| inconsistent(format!("incident of correlation {ci}")))?;
                    self.rules
                        .correlations
                        .iter()
                        .position(|c| c.id == mark.id)
                        .map_or(
                            RuleRef::Retired(RuleKind::Correlation),
                            RuleRef::Correlation,
                        )
                }
                RuleRefSnap::Absence(ai) => {
                    let mark = absences
                        .get(ai as usize)
                        .ok_or_else(|| inconsistent(format!("incident of absence {ai}")))?;
                    self.rules
                        .absences
                        .iter()
                        .position(|a| a.id == mark.id)
                        .map_or(RuleRef::Retired(RuleKind::Absence), RuleRef::Absence)
                }
                RuleRefSnap::Retired(kind) => RuleRef::Retired(kind),
            };
            let members = |m: Vec<(String, MemberSnap)>| -> Result<BTreeMap<String, Member>> {
                m.into_iter()
                    .map(|(k, m)| {
                        let m = Member {
                            entity: entity(m.entity, &self.tables)?,
                            signal: m.signal,
                            role: m.role,
                            first: time(m.first),
                            last: time(m.last),
                            records: m.records,
                            joined_by: m.joined_by,
                        };
                        Ok((k, m))
                    })
                    .collect()
            };
            store.incidents.push(Incident {
                id: i.id,
                cluster: store.cluster.clone(),
                rule,
                rule_id: i.rule_id,
                description: i.description,
                status: i.status,
                severity: i.severity,
                opened_at: i.opened_at.map(time),
                first_seen: time(i.first_seen),
                last_seen: time(i.last_seen),
                resolved_at: i.resolved_at.map(time),
                resolved_by: i.resolved_by,
                root: entity(i.root, &self.tables)?,
                root_signal: i.root_signal,
                root_summary: i.root_summary,
                summary_rank: usize::try_from(i.summary_rank).unwrap_or(usize::MAX),
                attributes: i.attributes.into_iter().collect(),
                causes: members(i.causes)?,
                affected: members(i.affected)?,
                signals: i.signals,
                window_before: Span::from_micros(i.window_before),
                window_after: Span::from_micros(i.window_after),
                absence: i.absence.map(|f| AbsenceFacts {
                    absent: f.absent,
                    since: time(f.since),
                    until: time(f.until),
                    held_for: Span::from_micros(f.held_for),
                    silent_since: f.silent_since.map(time),
                    lines_before_silence: f.lines_before_silence,
                    evidence_records: f.evidence_records,
                }),
                merged_from: i.merged_from,
                merged_into: i
                    .merged_into
                    .map(|m| check_incident(m, n, "a merged incident"))
                    .transpose()?,
                version: i.version,
                title: i.title,
                summary: i.summary,
                quiet: Span::from_micros(i.quiet),
            });
        }
        check_merge_chains(&store)?;
        let index = |v: Vec<(String, Vec<u64>)>| -> Result<FxHashMap<String, Vec<IncidentIdx>>> {
            v.into_iter()
                .map(|(k, is)| {
                    let is = is
                        .into_iter()
                        .map(|i| check_incident(i, n, "the incident index"))
                        .collect::<Result<Vec<_>>>()?;
                    Ok((k, is))
                })
                .collect()
        };
        store.by_root = index(s.by_root)?;
        store.by_affected = index(s.by_affected)?;
        Ok(store)
    }
}

/// Every merge chain ends (`IncidentStore::find` would loop on a cycle).
fn check_merge_chains(store: &IncidentStore) -> Result<()> {
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let n = store.incidents.len();
    let mut mark = vec![0u8; n];
    let mut path = Vec::new();
    for start in 0..n {
        let mut i = start;
        path.clear();
        loop {
            match mark[i] {
                DONE => break,
                OPEN => return Err(inconsistent(format!("incident {i} is merged into itself"))),
                _ => {}
            }
            mark[i] = OPEN;
            path.push(i);
            match store.incidents[i].merged_into {
                Some(next) => i = next,
                None => break,
            }
        }
        for &p in &path {
            mark[p] = DONE;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{Event, Source};
    use crate::rules::{RuleSource, compile};

    const PACK: &str = r"
signals:
  - id: plugin-backoff
    match: {source: k8s-event, reason: [BackOff]}
  - id: mount-failed
    match: {source: k8s-event, reason: [FailedMount]}
correlations:
  - id: plugin-down
    cause: {signals: [plugin-backoff]}
    effects: [{signals: [mount-failed], join: [node]}]
    title: 'plugin down on {node_names}'
";

    fn rules() -> Arc<RuleSet> {
        Arc::new(
            compile(&[RuleSource {
                name: "pack.yaml".into(),
                text: PACK.into(),
            }])
            .unwrap(),
        )
    }

    fn event(
        secs: i64,
        reason: &'static str,
        name: &'static str,
        node: &'static str,
    ) -> Event<'static> {
        let mut e = Event::new(
            EventTime::from_micros(secs * 1_000_000),
            Source::K8sEvent,
            Entity {
                kind: "Pod".into(),
                namespace: Some("ns".into()),
                name: name.into(),
                node: Some(node.into()),
                ..Entity::default()
            },
        );
        e.reason = reason.into();
        e
    }

    /// An engine with an open incident, a cause group and held effects.
    fn snapshot() -> EngineSnapshot {
        let config = EngineConfig {
            lateness: Span::ZERO,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(rules(), config);
        engine.push(&event(100, "FailedMount", "app-1", "n1"));
        engine.push(&event(110, "BackOff", "plugin-1", "n1"));
        engine.push(&event(120, "FailedMount", "app-2", "n2"));
        engine.push(&event(130, "FailedMount", "app-3", "n1"));
        let snap = engine.snapshot();
        assert_eq!(snap.store.incidents.len(), 1);
        assert_eq!(snap.correlation_states[0].groups.len(), 1);
        assert_eq!(snap.correlation_states[0].joiner.held.len(), 1);
        snap
    }

    fn restore(snap: EngineSnapshot) -> Result<(Engine, RestoreReport)> {
        let config = EngineConfig::default();
        Engine::restore(rules(), config, snap)
    }

    #[test]
    fn restores_what_it_took() {
        let snap = snapshot();
        let bytes = snap.to_bytes().unwrap();
        let (engine, report) = restore(EngineSnapshot::from_bytes(&bytes).unwrap()).unwrap();
        assert!(report.is_clean());
        assert_eq!(engine.snapshot().to_bytes().unwrap(), bytes);
        assert_eq!(engine.gauges().held_effects, 1);
    }

    #[test]
    fn state_that_does_not_hold_together_is_an_error_not_a_panic() {
        type Breakage = (&'static str, fn(&mut EngineSnapshot));
        let broken: [Breakage; 8] = [
            ("group incident", |s| {
                s.correlation_states[0].groups[0].incident = 7;
            }),
            ("merge cycle", |s| {
                s.store.incidents[0].merged_into = Some(0)
            }),
            ("merge target", |s| {
                s.store.incidents[0].merged_into = Some(9)
            }),
            ("held effect index", |s| {
                s.correlation_states[0].joiner.held[0].0 = 3;
            }),
            ("index entry", |s| {
                s.store.by_root.push(("x".into(), vec![5]));
            }),
            ("rule tables", |s| {
                s.correlation_states.clear();
            }),
            ("string table", |s| s.strings.truncate(1)),
            ("list table", |s| s.lists.clear()),
        ];
        for (what, f) in broken {
            let mut snap = snapshot();
            f(&mut snap);
            assert!(
                matches!(restore(snap), Err(RestoreError::Inconsistent(_))),
                "{what}"
            );
        }
    }

    #[test]
    fn an_incident_of_a_removed_rule_stays_as_history() {
        let snap = snapshot();
        let without = Arc::new(
            compile(&[RuleSource {
                name: "pack.yaml".into(),
                text: PACK[..PACK.find("correlations:").unwrap()].into(),
            }])
            .unwrap(),
        );
        let (engine, report) = Engine::restore(without, EngineConfig::default(), snap).unwrap();
        assert_eq!(report.dropped.len(), 1);
        assert_eq!(report.dropped[0].held_effects, 1);
        assert_eq!(report.orphaned_incidents.len(), 1);
        let inc = engine.incidents()[0].clone();
        assert_eq!(inc.rule, RuleRef::Retired(RuleKind::Correlation));
        assert_eq!(report.orphaned_incidents[0], inc.id);
        // The held effect it dropped is counted, not lost.
        assert_eq!(engine.stats().unattached_effects, 1);
    }
}

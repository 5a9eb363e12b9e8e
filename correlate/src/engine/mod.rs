//! The windowed correlation engine.
//!
//! [`Engine::push`] takes one record; [`Engine::advance`] moves the
//! watermark. Both return the incident changes they caused. Inside, every
//! record is classified at once, and its signals wait in a reorder buffer
//! until the watermark (the newest event time seen, less the allowed
//! lateness) passes them; they then leave in event-time order, so rules see
//! one ordered stream however the input was shuffled within the lateness
//! bound. Before each released signal the engine *ticks* to its time:
//! absence rules are evaluated and quiet incidents resolve, at exactly the
//! event time their condition dictates.
//!
//! Held state is bounded: the reorder buffer releases early past its cap
//! (no loss, counted), effects waiting for a cause are evicted oldest
//! first past the entry and byte caps (counted and logged), and resolved
//! incidents leave the store after [`EngineConfig::retention`].
//!
//! Time cannot be hijacked: when the engine moves its own watermark, a
//! record dated far ahead of the stream is held by the time guard
//! (`guard.rs`) until other records confirm the stream moved on, or
//! processed at the stream's time (see [`GuardStats`]).

mod absence;
mod activity;
mod correlation;
mod guard;
mod join;
mod reorder;
mod retire;
mod snapshot;

pub use guard::GuardStats;

pub use snapshot::{
    DropReason, DroppedState, EngineSnapshot, FORMAT_VERSION, RestoreError, RestoreReport,
    StateKind,
};

use std::hash::Hasher;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHasher};
use serde::{Deserialize, Serialize};

use self::absence::AbsenceState;
use self::activity::Activity;
use self::correlation::CorrelationState;
use self::guard::{TimeGuard, Verdict};
use self::reorder::{OrderKey, Reorder};
use crate::classify::{Classifier, Hit};
use crate::graph::{Graph, GraphStats};
use crate::incident::{Incident, IncidentStore, IncidentUpdate, entity_key};
use crate::model::{Entity, Event, Source};
use crate::rules::{RuleSet, SignalId};
use crate::time::{EventTime, Span};

/// Limits and timing of an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How far behind the newest record a record may arrive and still be
    /// ordered correctly.
    pub lateness: Span,
    /// Signals waiting in the reorder buffer before it releases early.
    pub max_buffered: usize,
    /// Effects held for a cause not yet seen, per rule: entries and bytes.
    pub max_held_entries: usize,
    pub max_held_bytes: usize,
    /// Pods whose log activity is tracked for silent-peer rules.
    pub max_tracked_pods: usize,
    /// Who moves the watermark. `false` (replay): the engine itself, to the
    /// newest event time seen less `lateness`. `true` (serve): only
    /// [`Engine::advance`], called with a watermark the caller keeps per
    /// stream; records behind it are still late.
    pub external_watermark: bool,
    /// How far ahead of the stream a record may be dated and still move
    /// event time when the engine moves its own watermark: past it, the
    /// record waits for others to confirm the stream moved on, or is
    /// processed at the stream's time (the time guard). `None`: no guard.
    /// With an external watermark the caller applies the bound against its
    /// own clock. The guard's held records (at most two) are not part of a
    /// snapshot: use it where the engine is not checkpointed (replay).
    pub max_ahead: Option<Span>,
    /// How long a resolved incident stays in the engine after it resolved
    /// (in event time); `None` keeps every incident (replay, which reports
    /// them all at the end). An incident that left can no longer be merged
    /// into (it could not anyway: only firing incidents merge).
    pub retention: Option<Span>,
    /// Edges the object graph holds at most (least recently seen evicted).
    pub max_graph_edges: usize,
    /// An edge no record has stated for this long leaves the graph (its
    /// object is gone, or quiet: a signal's own entity still carries its
    /// node and owners).
    pub graph_ttl: Span,
    /// The cluster this engine correlates, when named: every incident
    /// carries it, and it is part of the incident's id. One engine holds
    /// one cluster; many clusters are many engines, so no entity, window,
    /// join or absence ever spans two.
    pub cluster: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lateness: Span::from_secs(120),
            max_buffered: 1_000_000,
            max_held_entries: 200_000,
            max_held_bytes: 64 << 20,
            max_tracked_pods: 100_000,
            external_watermark: false,
            max_ahead: None,
            retention: None,
            max_graph_edges: 1_000_000,
            graph_ttl: Span::from_secs(24 * 3600),
            cluster: None,
        }
    }
}

/// Counters the engine keeps about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    pub records: u64,
    pub signals: u64,
    /// Signals that arrived behind the watermark: processed at once, unordered.
    pub late: u64,
    /// Signals released before the watermark because the buffer was full.
    pub released_early: u64,
    /// Effects dropped because no cause appeared within their window.
    pub unattached_effects: u64,
    /// Effects evicted because held state reached its cap.
    pub evicted_effects: u64,
    pub tracked_pods_over_cap: u64,
}

/// Live state sizes, for metrics and the memory budget.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EngineGauges {
    pub buffered: usize,
    pub held_effects: usize,
    pub held_bytes: usize,
    pub states: usize,
    pub tracked_pods: usize,
    pub incidents: usize,
    /// Incidents that left the engine after their retention, since it
    /// started (not checkpointed).
    pub retired_incidents: u64,
    /// The object graph: objects, edges, and edges evicted at its cap.
    pub graph: GraphStats,
}

#[derive(Debug)]
enum Item {
    /// A Pod or Node changed state: `states` are the state signals it is in now.
    Transition {
        key: String,
        states: Vec<SignalId>,
        time: EventTime,
    },
    /// Boxed: the reorder heap moves its entries at every level of a push
    /// and a pop, and a hit is 240 bytes where the box is 8.
    Signal(Box<Hit>),
}

/// The correlation engine. Synchronous, deterministic, clock-free.
#[derive(Debug)]
pub struct Engine {
    rules: Arc<RuleSet>,
    classifier: Classifier,
    config: EngineConfig,
    reorder: Reorder<Item>,
    /// Everything at or before this has been processed.
    watermark: EventTime,
    /// The last instant ticked to.
    clock: EventTime,
    max_time: EventTime,
    /// Entity key -> the state signal it is in.
    states: FxHashMap<String, SignalId>,
    activity: Activity,
    track_activity: bool,
    correlations: Vec<CorrelationState>,
    absences: Vec<AbsenceState>,
    store: IncidentStore,
    stats: EngineStats,
    /// Signals classified, by `SignalId` (for metrics; not checkpointed).
    per_signal: Vec<u64>,
    next_quiet_check: EventTime,
    next_housekeeping: EventTime,
    /// Unattached and evicted effects of rules whose state a restore
    /// dropped, so the totals in `stats` never go down.
    retired_dropped: u64,
    retired_evicted: u64,
    hits: Vec<Hit>,
    /// Holds records dated far ahead of the stream (own watermark only).
    guard: Option<TimeGuard>,
    /// Incidents retired since the engine started.
    retired_incidents: u64,
    /// Which object depends on which, as the records say.
    graph: Graph,
}

/// How often held state is swept, in event time.
const HOUSEKEEPING_EVERY: Span = Span::from_secs(30);

impl Engine {
    pub fn new(rules: Arc<RuleSet>, config: EngineConfig) -> Engine {
        let track_activity = rules.absences.iter().any(|a| a.silent_peer.is_some());
        let activity = Activity::with_cap(config.max_tracked_pods);
        let per_signal = vec![0; rules.signals.len()];
        Engine {
            classifier: Classifier::new(rules.clone()),
            correlations: rules
                .correlations
                .iter()
                .map(|_| {
                    CorrelationState::with_caps(config.max_held_entries, config.max_held_bytes)
                })
                .collect(),
            absences: rules
                .absences
                .iter()
                .map(|_| AbsenceState::with_caps(config.max_held_entries, config.max_held_bytes))
                .collect(),
            rules,
            reorder: Reorder::default(),
            watermark: EventTime::MIN,
            clock: EventTime::MIN,
            max_time: EventTime::MIN,
            states: FxHashMap::default(),
            activity,
            track_activity,
            store: IncidentStore {
                cluster: config.cluster.as_deref().map(Arc::from),
                ..IncidentStore::default()
            },
            stats: EngineStats::default(),
            per_signal,
            next_quiet_check: EventTime::MAX,
            next_housekeeping: EventTime::MIN,
            retired_dropped: 0,
            retired_evicted: 0,
            hits: Vec::new(),
            guard: config
                .max_ahead
                .filter(|_| !config.external_watermark)
                .map(TimeGuard::new),
            retired_incidents: 0,
            graph: Graph::with_cap(config.max_graph_edges),
            config,
        }
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Takes one record. Returns the incident changes it caused (usually
    /// none: a record's signals wait for the watermark).
    pub fn push(&mut self, event: &Event<'_>) -> Vec<IncidentUpdate> {
        let Some(guard) = self.guard.as_mut() else {
            self.accept(event);
            return std::mem::take(&mut self.store.updates);
        };
        let verdict = guard.admit(event.time);
        self.release_settled(false);
        match verdict {
            Verdict::Pass => self.accept(event),
            Verdict::Hold => {
                let owned = event.clone().into_owned();
                if let Some(g) = self.guard.as_mut() {
                    g.hold(owned);
                }
            }
        }
        std::mem::take(&mut self.store.updates)
    }

    /// Processes the records the time guard has settled.
    fn release_settled(&mut self, finish: bool) {
        while let Some(event) = self.guard.as_mut().and_then(|g| g.next_settled(finish)) {
            self.accept(&event);
        }
    }

    /// Classifies one record and queues its signals.
    fn accept(&mut self, event: &Event<'_>) {
        self.stats.records += 1;
        self.graph.learn(event);
        self.max_time = self.max_time.max(event.time);
        if self.track_activity && event.source == Source::Log {
            self.activity.observe(event);
        }
        let mut hits = std::mem::take(&mut self.hits);
        self.classifier.classify(event, &mut hits);
        if matches!(event.source, Source::Pod | Source::Node) {
            let states: Vec<SignalId> = hits
                .iter()
                .filter(|h| self.rules.signal(h.signal).state)
                .map(|h| h.signal)
                .collect();
            let key = entity_key(&event.entity);
            let order = OrderKey {
                time: event.time,
                class: 0,
                content: content_hash(&key, ""),
            };
            self.enqueue(
                order,
                Item::Transition {
                    key,
                    states,
                    time: event.time,
                },
            );
        }
        for hit in hits.drain(..) {
            self.stats.signals += 1;
            if let Some(n) = self.per_signal.get_mut(hit.signal.0 as usize) {
                *n += 1;
            }
            let order = OrderKey {
                time: hit.time,
                class: 1,
                content: hit_hash(&hit),
            };
            self.enqueue(order, Item::Signal(Box::new(hit)));
        }
        self.hits = hits;
        self.self_advance();
    }

    /// A record that formed no event (a heartbeat, a relist replay) still
    /// says event time has reached `time`: the watermark follows it, unless
    /// the time guard finds it far ahead of the stream.
    pub fn observe(&mut self, time: EventTime) -> Vec<IncidentUpdate> {
        if let Some(guard) = self.guard.as_mut() {
            let verdict = guard.admit_observation(time);
            self.release_settled(false);
            if verdict == Verdict::Hold {
                return std::mem::take(&mut self.store.updates);
            }
        }
        self.max_time = self.max_time.max(time);
        self.self_advance();
        std::mem::take(&mut self.store.updates)
    }

    /// Moves the watermark to the newest event time less the lateness,
    /// unless the caller drives it.
    fn self_advance(&mut self) {
        if !self.config.external_watermark {
            self.release(self.max_time.saturating_sub(self.config.lateness));
        }
    }

    /// Moves the watermark: everything at or before `watermark` is final.
    pub fn advance(&mut self, watermark: EventTime) -> Vec<IncidentUpdate> {
        self.release(watermark);
        std::mem::take(&mut self.store.updates)
    }

    /// End of input: releases everything held and evaluates the rules at the
    /// newest event time seen.
    pub fn finish(&mut self) -> Vec<IncidentUpdate> {
        self.release_settled(true);
        self.release(self.max_time);
        // What is still held will never meet its cause.
        let held: usize = self.joiners().map(|j| j.held_entries).sum();
        self.count_held();
        self.stats.unattached_effects += held as u64;
        std::mem::take(&mut self.store.updates)
    }

    pub fn store(&self) -> &IncidentStore {
        &self.store
    }

    /// The incidents to report, in order of `opened_at` (then id).
    pub fn incidents(&self) -> Vec<&Incident> {
        let mut v: Vec<&Incident> = self.store.iter().filter(|i| i.is_reported()).collect();
        v.sort_by(|a, b| a.opened_at.cmp(&b.opened_at).then_with(|| a.id.cmp(&b.id)));
        v
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// What the time guard held and clamped (all zero with an external
    /// watermark, where the caller guards time).
    pub fn guard_stats(&self) -> GuardStats {
        self.guard
            .as_ref()
            .map(TimeGuard::stats)
            .unwrap_or_default()
    }

    /// Signals classified since the engine started, per signal id.
    pub fn signal_counts(&self) -> Vec<(String, u64)> {
        self.rules
            .signals
            .iter()
            .zip(&self.per_signal)
            .map(|(def, n)| (def.id.to_string(), *n))
            .collect()
    }

    pub fn gauges(&self) -> EngineGauges {
        EngineGauges {
            buffered: self.reorder.len(),
            held_effects: self.joiners().map(|j| j.held_entries).sum(),
            held_bytes: self.joiners().map(|j| j.held_bytes).sum(),
            states: self.states.len(),
            tracked_pods: self.activity.len(),
            incidents: self.store.len(),
            retired_incidents: self.retired_incidents,
            graph: self.graph.stats(),
        }
    }

    /// The object graph, for tests and the bench's bytes-per-edge figure.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The effect joiners of every rule.
    fn joiners(&self) -> impl Iterator<Item = &join::Joiner> {
        let correlations = self.correlations.iter().map(|c| &c.joiner);
        correlations.chain(self.absences.iter().map(|a| &a.joiner))
    }

    pub fn watermark(&self) -> EventTime {
        self.watermark
    }

    /// The newest event time seen.
    pub fn max_time(&self) -> EventTime {
        self.max_time
    }

    fn enqueue(&mut self, order: OrderKey, item: Item) {
        if order.time < self.watermark {
            // Later than the lateness bound: still counted, processed now.
            self.stats.late += 1;
            self.process(item);
            return;
        }
        self.reorder.push(order, item);
        while self.reorder.len() > self.config.max_buffered {
            if let Some((k, item)) = self.reorder.pop_oldest() {
                self.stats.released_early += 1;
                self.tick(k.time);
                self.process(item);
                self.watermark = self.watermark.max(k.time);
            }
        }
    }

    fn release(&mut self, upto: EventTime) {
        if upto <= self.watermark {
            return;
        }
        while let Some((k, item)) = self.reorder.pop_until(upto) {
            self.tick(k.time);
            self.process(item);
        }
        self.tick(upto);
        self.watermark = upto;
    }

    /// Brings time-driven rules up to `t`.
    fn tick(&mut self, t: EventTime) {
        if t < self.clock {
            return;
        }
        self.clock = t;
        let seen = self.store.updates.len();
        for (ai, a) in self.absences.iter_mut().enumerate() {
            a.evaluate(
                &self.rules,
                ai,
                t,
                &self.activity,
                &self.graph,
                &mut self.store,
            );
        }
        for (ci, c) in self.correlations.iter().enumerate() {
            c.tick_holds(&self.rules, ci, t, &mut self.store);
        }
        self.note_updates(seen);
        if t >= self.next_quiet_check {
            self.store.resolve_quiet(t);
            self.next_quiet_check = self
                .store
                .iter()
                .filter(|i| i.is_reported() && i.status == crate::incident::Status::Firing)
                .map(|i| i.last_seen.saturating_add(i.quiet))
                .min()
                .unwrap_or(EventTime::MAX);
        }
        if t >= self.next_housekeeping {
            self.housekeep(t);
            self.next_housekeeping = t.saturating_add(HOUSEKEEPING_EVERY);
        }
    }

    fn housekeep(&mut self, t: EventTime) {
        for (ci, c) in self.correlations.iter_mut().enumerate() {
            c.housekeep(&self.rules.correlations[ci], t, &self.store);
        }
        for (ai, a) in self.absences.iter_mut().enumerate() {
            a.housekeep(&self.rules.absences[ai], t);
        }
        self.stats.tracked_pods_over_cap = self.activity.evicted;
        // An edge that ended stays while a late record could still ask
        // for it.
        let horizon = self.rules.horizon().max(self.config.lateness);
        self.graph.sweep(
            t.saturating_sub(horizon),
            t.saturating_sub(self.config.graph_ttl),
        );
        self.count_held();
        if let Some(keep) = self.config.retention {
            self.retire(t.saturating_sub(keep));
        }
    }

    /// Brings the counters of dropped and evicted effects up to date, and
    /// logs new evictions once per rule and sweep.
    fn count_held(&mut self) {
        let joiners = self
            .correlations
            .iter_mut()
            .map(|c| &mut c.joiner)
            .zip(self.rules.correlations.iter().map(|d| &d.id))
            .chain(
                self.absences
                    .iter_mut()
                    .map(|a| &mut a.joiner)
                    .zip(self.rules.absences.iter().map(|d| &d.id)),
            );
        let (mut dropped, mut evicted) = (self.retired_dropped, self.retired_evicted);
        for (j, rule) in joiners {
            dropped += j.dropped;
            evicted += j.evicted;
            if j.evicted > j.evicted_logged {
                let new = j.evicted - j.evicted_logged;
                tracing::warn!(rule = %rule, evicted = new, held = j.held_entries, "held effects over cap: oldest evicted");
                j.evicted_logged = j.evicted;
            }
        }
        self.stats.unattached_effects = dropped;
        self.stats.evicted_effects = evicted;
    }

    fn process(&mut self, item: Item) {
        let seen = self.store.updates.len();
        match item {
            Item::Transition { key, states, time } => {
                let keep = self.states.get(&key).is_some_and(|s| states.contains(s));
                if !keep && let Some(old) = self.states.remove(&key) {
                    for &ai in &self.rules.uses[old.0 as usize].as_absence_condition {
                        self.absences[ai].leave_state(&key, time);
                    }
                }
            }
            Item::Signal(hit) => self.process_signal(&hit),
        }
        self.note_updates(seen);
    }

    /// An incident that opened may have a quiet deadline earlier than the one
    /// remembered (deadlines of known incidents only move later).
    fn note_updates(&mut self, seen: usize) {
        for u in &self.store.updates[seen..] {
            let inc = self.store.get(self.store.find(u.incident));
            if inc.status == crate::incident::Status::Firing {
                let deadline = inc.last_seen.saturating_add(inc.quiet);
                self.next_quiet_check = self.next_quiet_check.min(deadline);
            }
        }
    }

    fn process_signal(&mut self, hit: &Hit) {
        let rules = self.rules.clone();
        let def = rules.signal(hit.signal);
        let uses = &rules.uses[hit.signal.0 as usize];
        if def.state {
            let key = entity_key(&hit.entity);
            let is_new = self.states.get(&key).is_none_or(|s| *s != hit.signal);
            if is_new {
                self.states.insert(key.clone(), hit.signal);
                for &ai in &uses.as_absence_condition {
                    let duration = rules.absences[ai].duration;
                    self.absences[ai].enter_state(&key, hit.time, &hit.entity, &def.id, duration);
                }
            }
        } else {
            for &ai in &uses.as_absence_condition {
                self.absences[ai].on_evidence(&rules, hit, &mut self.store);
            }
        }
        for &ai in &uses.as_absent {
            self.absences[ai].saw_absent(hit);
        }
        for &ci in &uses.as_cause {
            self.correlations[ci].on_cause(&rules, ci, hit, &self.graph, &mut self.store);
        }
        for &(ci, ei) in &uses.as_effect {
            self.correlations[ci].on_effect(&rules, ci, ei, hit, &self.graph, &mut self.store);
        }
        for &ci in &uses.as_resolve {
            self.correlations[ci].on_resolve(&rules, ci, hit, &mut self.store);
        }
        for &(ai, ei) in &uses.as_absence_effect {
            self.absences[ai].on_effect(&rules, ai, ei, hit, &self.graph, &mut self.store);
        }
        for &ai in &uses.as_absence_resolve {
            self.absences[ai].on_resolve(&rules, hit, &mut self.store);
        }
    }
}

fn content_hash(a: &str, b: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(a.as_bytes());
    h.write_u8(0);
    h.write(b.as_bytes());
    h.finish()
}

fn hit_hash(hit: &Hit) -> u64 {
    let mut h = FxHasher::default();
    h.write_u32(hit.signal.0);
    write_entity(&mut h, &hit.entity);
    h.write(hit.summary.as_bytes());
    for (k, v) in &hit.attributes {
        h.write(k.as_bytes());
        h.write_u8(0);
        h.write(v.as_bytes());
        h.write_u8(0);
    }
    h.write_u64(hit.occurrence.unwrap_or(0));
    h.write_u8(u8::from(hit.repeat));
    h.finish()
}

fn write_entity(h: &mut FxHasher, e: &Entity<'_>) {
    h.write(e.kind.as_bytes());
    h.write_u8(0);
    h.write(e.namespace.as_deref().unwrap_or("").as_bytes());
    h.write_u8(0);
    h.write(e.name.as_bytes());
    h.write_u8(0);
}

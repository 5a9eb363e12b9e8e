//! Absence rules: an incident for something that did NOT happen.
//!
//! Two shapes: entities held in a state signal for `for` while the `absent`
//! signals stay unseen (pods Pending, no scheduling events), and a busy peer
//! that falls silent while its workload's other members report the
//! condition (a stuck leader whose followers time out).
//!
//! Both are evaluated at every tick, and the time an incident opens is
//! computed from the facts (the k-th entity crossing `for`, the silent
//! peer's last line plus `quiet`), not from when a watermark happened to
//! arrive: the same records give the same `opened_at` in any order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rustc_hash::FxHashSet;

use super::activity::Activity;
use super::correlation::{member, merge_attributes, root_entity};
use super::join::{Joiner, Side, describe_tie, tie_keys};
use crate::classify::Hit;
use crate::graph::Graph;
use crate::incident::{
    AbsenceFacts, Incident, IncidentIdx, IncidentStore, Member, Role, RuleRef, Status, entity_key,
};
use crate::model::Entity;
use crate::rules::{AbsenceDef, RuleSet, SilentPeerDef};
use crate::time::{EventTime, Span};

/// Where the incident's root sits, for joins.
const GROUP: &str = "";

#[derive(Debug)]
pub(super) struct Evidence {
    pub(super) times: VecDeque<EventTime>,
    pub(super) first: EventTime,
    pub(super) entities: BTreeMap<String, Hit>,
}

#[derive(Debug)]
pub(super) struct Silent {
    pub(super) pod: u64,
    pub(super) since: EventTime,
}

#[derive(Debug, Default)]
pub(crate) struct AbsenceState {
    /// Entities in a condition state: (since, key) in order, and key -> entity.
    pub(super) in_state: BTreeSet<(EventTime, String)>,
    pub(super) state_of: BTreeMap<String, (EventTime, Entity<'static>, String)>,
    pub(super) last_absent: Option<EventTime>,
    /// Condition evidence by workload key.
    pub(super) evidence: BTreeMap<String, Evidence>,
    pub(super) incident: Option<IncidentIdx>,
    /// The workload an open silent-peer incident is about, and its peer.
    pub(super) silent: Option<(String, Silent)>,
    pub(super) window: Option<(EventTime, EventTime)>,
    /// Episodes already reported, so a resolved incident is not re-opened on
    /// the same facts: the silent peer and its last line; for state rules,
    /// when the last incident resolved.
    pub(super) reported_silences: BTreeSet<(u64, EventTime)>,
    pub(super) resolved_at: Option<EventTime>,
    /// When an entity last left the condition state.
    pub(super) last_left: Option<EventTime>,
    /// Condition entities already in the open incident (it may have been
    /// merged into another, so the store cannot say).
    pub(super) members: BTreeSet<String>,
    /// When an absent signal was last about each entity, for `for`: an
    /// entity spoken of just before its state record arrived (the two come
    /// from different watches) is excused as well.
    pub(super) spoken: BTreeMap<String, EventTime>,
    pub(crate) joiner: Joiner,
}

impl AbsenceState {
    pub(crate) fn with_caps(max_entries: usize, max_bytes: usize) -> AbsenceState {
        AbsenceState {
            joiner: Joiner::with_caps(max_entries, max_bytes),
            ..AbsenceState::default()
        }
    }

    pub(crate) fn enter_state(
        &mut self,
        key: &str,
        since: EventTime,
        entity: &Entity<'static>,
        signal: &str,
        duration: Span,
    ) {
        if self.state_of.contains_key(key) {
            return;
        }
        if self
            .spoken
            .get(key)
            .is_some_and(|t| since.saturating_sub(duration) <= *t)
        {
            return;
        }
        self.in_state.insert((since, key.to_string()));
        self.state_of
            .insert(key.to_string(), (since, entity.clone(), signal.to_string()));
    }

    pub(crate) fn leave_state(&mut self, key: &str, t: EventTime) {
        if let Some((since, _, _)) = self.state_of.remove(key) {
            self.in_state.remove(&(since, key.to_string()));
            self.last_left = Some(t);
        }
    }

    /// A signal the rule wants absent: the condition must hold anew after
    /// it, and the entity it is about no longer counts toward the
    /// condition until it leaves its state (a Pending pod the scheduler
    /// has spoken about is not waiting on a silent scheduler; the scheduler
    /// speaks of it again only minutes later).
    pub(crate) fn saw_absent(&mut self, hit: &Hit) {
        let t = hit.time;
        self.last_absent = Some(self.last_absent.map_or(t, |l| l.max(t)));
        let key = entity_key(&hit.entity);
        if let Some((since, _, _)) = self.state_of.remove(&key) {
            self.in_state.remove(&(since, key.clone()));
        }
        let last = self.spoken.entry(key).or_insert(t);
        *last = (*last).max(t);
    }

    pub(crate) fn on_evidence(&mut self, rules: &RuleSet, hit: &Hit, store: &mut IncidentStore) {
        let wkey = entity_key(&hit.entity.workload());
        let ev = self
            .evidence
            .entry(wkey.clone())
            .or_insert_with(|| Evidence {
                times: VecDeque::new(),
                first: hit.time,
                entities: BTreeMap::new(),
            });
        let pos = ev
            .times
            .iter()
            .rposition(|x| *x <= hit.time)
            .map_or(0, |p| p + 1);
        ev.times.insert(pos, hit.time);
        ev.entities
            .entry(entity_key(&hit.entity))
            .or_insert_with(|| hit.clone());
        if let (Some(inc), Some((w, _))) = (self.incident, &self.silent)
            && *w == wkey
            && store.is_live(inc)
        {
            let signal = &rules.signal(hit.signal).id;
            store.add(
                inc,
                &entity_key(&hit.entity),
                member(hit, signal, Role::Evidence, Vec::new()),
                false,
                hit.time,
            );
        }
    }

    pub(crate) fn on_effect(
        &mut self,
        rules: &RuleSet,
        ai: usize,
        ei: usize,
        hit: &Hit,
        graph: &Graph,
        store: &mut IncidentStore,
    ) {
        let def = &rules.absences[ai];
        let keys = tie_keys(
            &def.effects[ei],
            Side::Effect,
            &hit.entity,
            &hit.attributes,
            graph,
            hit.time,
        );
        let live = self.incident.filter(|i| store.is_live(*i));
        let in_window = self
            .window
            .is_some_and(|(from, _)| hit.time >= from.saturating_sub(def.before));
        let tied = keys.iter().find(|k| !self.joiner.targets(ei, k).is_empty());
        if let (Some(inc), true, Some(key)) = (live, in_window, tied) {
            attach(rules, def, ei, inc, key, hit, store);
        } else {
            for jk in keys {
                self.joiner.hold(ei, jk, hit.clone());
            }
        }
    }

    pub(crate) fn on_resolve(&mut self, rules: &RuleSet, hit: &Hit, store: &mut IncidentStore) {
        if let Some(inc) = self.incident {
            let signal = &rules.signal(hit.signal).id;
            store.resolve(inc, hit.time, format!("resolved by {signal}"));
            self.closed(hit.time);
        }
    }

    /// The open incident ended at `t`: remember the episode it reported.
    fn closed(&mut self, t: EventTime) {
        self.incident = None;
        self.window = None;
        if let Some((_, s)) = self.silent.take() {
            self.reported_silences.insert((s.pod, s.since));
        }
        self.resolved_at = Some(t);
    }

    /// Brings the rule up to event time `t`.
    pub(crate) fn evaluate(
        &mut self,
        rules: &RuleSet,
        ai: usize,
        t: EventTime,
        activity: &Activity,
        graph: &Graph,
        store: &mut IncidentStore,
    ) {
        let def = &rules.absences[ai];
        if let Some(lookback) = def.silent_peer.as_ref().map(|s| s.lookback) {
            let horizon = t.saturating_sub(lookback);
            for ev in self.evidence.values_mut() {
                while ev.times.front().is_some_and(|x| *x < horizon) {
                    ev.times.pop_front();
                }
            }
            self.evidence.retain(|_, ev| !ev.times.is_empty());
        }
        if let Some(inc) = self.incident {
            if !store.is_live(inc) {
                self.closed(store.get(store.find(inc)).resolved_at.unwrap_or(t));
            } else {
                self.update_open(def, inc, t, activity, store);
                return;
            }
        }
        if def.silent_peer.is_some() {
            self.try_open_silent(rules, ai, t, activity, graph, store);
        } else if def.duration > Span::ZERO {
            self.try_open_state(rules, ai, t, graph, store);
        }
    }

    fn update_open(
        &mut self,
        def: &AbsenceDef,
        inc: IncidentIdx,
        t: EventTime,
        activity: &Activity,
        store: &mut IncidentStore,
    ) {
        if let Some((_, silent)) = &self.silent {
            if let Some(again) = activity.first_after(silent.pod, silent.since, t) {
                store.resolve(inc, again, "the silent peer logs again".to_string());
                self.closed(again);
            }
            return;
        }
        if def.duration == Span::ZERO {
            return;
        }
        if self.in_state.is_empty() {
            let at = self.last_left.unwrap_or(t);
            let why = "no entity is in the condition state any more".to_string();
            store.resolve(inc, at, why);
            self.closed(at);
            return;
        }
        // Entities that have now held the state for `for` join the incident.
        let cutoff = t.saturating_sub(def.duration);
        let known: Vec<(String, Entity<'static>, EventTime, String)> = self
            .in_state
            .iter()
            .take_while(|(since, _)| *since <= cutoff)
            .filter(|(_, key)| !self.members.contains(key))
            .filter_map(|(since, key)| {
                self.state_of
                    .get(key)
                    .map(|(_, e, s)| (key.clone(), e.clone(), *since, s.clone()))
            })
            .collect();
        for (key, entity, since, signal) in known {
            let m = condition_member(entity, signal, since, since.saturating_add(def.duration));
            store.add(inc, &key, m, true, since.saturating_add(def.duration));
            self.members.insert(key);
        }
    }

    fn try_open_state(
        &mut self,
        rules: &RuleSet,
        ai: usize,
        t: EventTime,
        graph: &Graph,
        store: &mut IncidentStore,
    ) {
        let def = &rules.absences[ai];
        let k = def.min_entities as usize;
        let Some((since_k, _)) = self.in_state.iter().nth(k - 1) else {
            return;
        };
        let mut at = since_k.saturating_add(def.duration);
        if !def.absent.is_empty()
            && let Some(l) = self.last_absent
        {
            at = at.max(l.saturating_add(def.duration));
        }
        if at > t {
            return;
        }
        // Entities still held since before the last incident resolved were
        // reported then; a new incident needs the condition to form anew.
        if self.resolved_at.is_some_and(|r| at <= r) {
            return;
        }
        let window_from = at.saturating_sub(def.duration);
        let members: Vec<(String, Entity<'static>, EventTime, String)> = self
            .in_state
            .iter()
            .take_while(|(since, _)| *since <= window_from)
            .filter_map(|(since, key)| {
                self.state_of
                    .get(key)
                    .map(|(_, e, s)| (key.clone(), e.clone(), *since, s.clone()))
            })
            .collect();
        let Some((_, first_entity, first_since, first_signal)) = members.first().cloned() else {
            return;
        };
        let root = root_entity(&def.root, &first_entity, &[]);
        let facts = AbsenceFacts {
            absent: def
                .absent
                .iter()
                .map(|s| rules.signal(*s).id.clone())
                .collect(),
            since: window_from,
            until: at,
            held_for: def.duration,
            ..AbsenceFacts::default()
        };
        let summary = format!(
            "{} entities in {} for over {} with no {} since {}",
            members.len(),
            first_signal,
            def.duration,
            if facts.absent.is_empty() {
                "change".to_string()
            } else {
                facts.absent.join(" or ")
            },
            window_from
        );
        let idx = store.insert(new_incident(
            def,
            ai,
            root,
            first_signal,
            summary,
            first_since,
            Some(facts),
        ));
        self.members.clear();
        for (key, entity, since, signal) in members {
            let m = condition_member(entity, signal, since, since.saturating_add(def.duration));
            store.add(idx, &key, m, true, at);
            self.members.insert(key);
        }
        self.open(rules, def, idx, (window_from, at), graph, store);
    }

    fn try_open_silent(
        &mut self,
        rules: &RuleSet,
        ai: usize,
        t: EventTime,
        activity: &Activity,
        graph: &Graph,
        store: &mut IncidentStore,
    ) {
        let def = &rules.absences[ai];
        let Some(sp) = &def.silent_peer else { return };
        let min = def.min_count.max(1) as usize;
        let mut found: Option<(EventTime, String, u64, String, EventTime, u64, Span)> = None;
        for (wkey, ev) in &self.evidence {
            if ev.times.len() < min {
                continue;
            }
            let kth = ev.times[min - 1];
            for (pkey, pod) in activity.members(wkey) {
                if ev.entities.contains_key(&pkey) {
                    continue;
                }
                let Some(last) = activity.last_before(pod, t) else {
                    continue;
                };
                if self.reported_silences.contains(&(pod, last)) {
                    continue;
                }
                // Fell silent as the peers started to complain, not long before.
                if last > ev.first.saturating_add(sp.quiet)
                    || last < ev.first.saturating_sub(sp.lookback)
                {
                    continue;
                }
                let lines = activity.lines_in(pod, last, sp.lookback);
                if lines < u64::from(sp.min_lines) {
                    continue;
                }
                let quiet = expected_quiet(sp, lines);
                if t.since(last) < quiet {
                    continue;
                }
                let cand = (last, pkey, pod, wkey.clone(), kth, lines, quiet);
                if found
                    .as_ref()
                    .is_none_or(|f| (cand.0, &cand.1) < (f.0, &f.1))
                {
                    found = Some(cand);
                }
            }
        }
        let Some((last, _pkey, pod, wkey, kth, lines, quiet)) = found else {
            return;
        };
        let Some(entity) = activity.entity(pod).cloned() else {
            return;
        };
        let at = last.saturating_add(quiet).max(kth);
        let evidence = &self.evidence[&wkey];
        let facts = AbsenceFacts {
            absent: vec![format!("log lines from {}", entity.name)],
            since: last,
            until: at,
            held_for: quiet,
            silent_since: Some(last),
            lines_before_silence: Some(lines),
            evidence_records: Some(evidence.times.len() as u64),
        };
        let root = root_entity(&def.root, &entity, &[]);
        let first_hit = evidence.entities.values().min_by_key(|h| h.time).cloned();
        let signal = first_hit
            .as_ref()
            .map(|h| rules.signal(h.signal).id.clone())
            .unwrap_or_default();
        let summary = format!(
            "{} logged {} lines in the {} before {}, then nothing for {}, while its peers reported {} ({} records)",
            entity.name,
            lines,
            sp.lookback,
            last,
            at.since(last),
            signal,
            evidence.times.len()
        );
        let idx = store.insert(new_incident(
            def,
            ai,
            root,
            signal,
            summary,
            last,
            Some(facts),
        ));
        let hits: Vec<Hit> = evidence.entities.values().cloned().collect();
        for h in &hits {
            let sig = &rules.signal(h.signal).id;
            let records = evidence.times.len() as u64 / hits.len().max(1) as u64;
            let mut m = member(h, sig, Role::Evidence, Vec::new());
            m.records = records.max(1);
            store.add(idx, &entity_key(&h.entity), m, false, at);
            merge_attributes(store.get_mut(idx), &h.attributes);
        }
        self.silent = Some((wkey, Silent { pod, since: last }));
        self.open(rules, def, idx, (last, at), graph, store);
    }

    /// Opens the incident, registers the root for effect joins and takes the
    /// effects already held.
    fn open(
        &mut self,
        rules: &RuleSet,
        def: &AbsenceDef,
        idx: IncidentIdx,
        (from, at): (EventTime, EventTime),
        graph: &Graph,
        store: &mut IncidentStore,
    ) {
        self.incident = Some(idx);
        self.window = Some((from, at));
        store.open(idx, at);
        let root = store.get(idx).root.clone();
        let attrs: Vec<(String, String)> = store
            .get(idx)
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let since = from.saturating_sub(def.before);
        for (ei, e) in def.effects.iter().enumerate() {
            let mut taken = FxHashSet::default();
            for jk in tie_keys(e, Side::Cause, &root, &attrs, graph, at) {
                self.joiner.register(ei, &jk, GROUP);
                for h in self.joiner.take(ei, &jk, since) {
                    if taken.insert((h.time, h.signal, entity_key(&h.entity))) {
                        attach(rules, def, ei, idx, &jk, &h, store);
                    }
                }
            }
        }
    }

    pub(crate) fn housekeep(&mut self, def: &AbsenceDef, t: EventTime) {
        self.joiner
            .expire(t.saturating_sub(def.before.max(def.duration)));
        // Only what could still excuse a state entered from now on.
        let horizon = t.saturating_sub(def.duration).saturating_sub(def.duration);
        self.spoken.retain(|_, at| *at >= horizon);
    }
}

fn attach(
    rules: &RuleSet,
    def: &AbsenceDef,
    ei: usize,
    inc: IncidentIdx,
    key: &str,
    hit: &Hit,
    store: &mut IncidentStore,
) {
    let via = describe_tie(&def.effects[ei], key, hit);
    let signal = &rules.signal(hit.signal).id;
    store.add(
        inc,
        &entity_key(&hit.entity),
        member(hit, signal, Role::Effect, via),
        false,
        hit.time,
    );
}

/// How long a peer must be silent, from how busy it was: three of its usual
/// gaps between lines (a leader logging every five seconds is silent after
/// [`MIN_QUIET`], one logging every minute after the rule's `quiet`), never
/// less than [`MIN_QUIET`] nor more than `quiet`.
fn expected_quiet(sp: &SilentPeerDef, lines: u64) -> Span {
    let gap = Span::from_micros(sp.lookback.as_micros() / lines.max(1) as i64);
    let derived = Span::from_micros(gap.as_micros().saturating_mul(QUIET_GAPS));
    derived.max(MIN_QUIET).min(sp.quiet)
}

/// Silence shorter than this is never a silent peer (a GC pause, a log
/// shipper's flush).
const MIN_QUIET: Span = Span::from_secs(30);

/// How many of a peer's usual gaps make a silence.
const QUIET_GAPS: i64 = 3;

fn condition_member(
    entity: Entity<'static>,
    signal: String,
    since: EventTime,
    crossed: EventTime,
) -> Member {
    Member {
        entity,
        signal,
        role: Role::Condition,
        first: since,
        last: crossed,
        records: 1,
        joined_by: Vec::new(),
    }
}

fn new_incident(
    def: &AbsenceDef,
    ai: usize,
    root: Entity<'static>,
    signal: String,
    summary: String,
    first_seen: EventTime,
    facts: Option<AbsenceFacts>,
) -> Incident {
    Incident {
        id: String::new(),
        cluster: None,
        rule: RuleRef::Absence(ai),
        rule_id: def.id.clone(),
        description: def.description.clone(),
        status: Status::Pending,
        severity: def.severity,
        opened_at: None,
        first_seen,
        last_seen: first_seen,
        resolved_at: None,
        resolved_by: None,
        root,
        root_signal: signal,
        root_summary: summary,
        summary_rank: 0,
        attributes: BTreeMap::new(),
        causes: BTreeMap::new(),
        affected: BTreeMap::new(),
        signals: 0,
        window_before: def.before,
        window_after: def.after,
        absence: facts,
        merged_from: Vec::new(),
        merged_into: None,
        version: 0,
        title: def.title.clone(),
        summary: def.summary.clone(),
        // A state condition ends when no entity is left in the state, not
        // when records stop: a pod stuck Terminating says nothing new.
        quiet: if def.silent_peer.is_none() && def.duration > Span::ZERO {
            Span::FOREVER
        } else {
            def.resolve.quiet
        },
    }
}

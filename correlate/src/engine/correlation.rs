//! Correlation rules: causes gather into groups (one per `group_by` value),
//! each group backed by an incident that opens once the rule's thresholds
//! are met; effects join a group through the rule's join values inside its
//! window, or wait until a cause appears.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use super::join::{Joiner, Side, describe_tie, select_hit, tie_keys};
use crate::classify::Hit;
use crate::graph::Graph;
use crate::incident::{
    Incident, IncidentIdx, IncidentStore, Member, Role, RuleRef, Status, entity_key,
};
use crate::model::Entity;
use crate::rules::{CorrelationDef, RootDef, RuleSet};
use crate::time::{EventTime, Span};

#[derive(Debug)]
pub(super) struct Group {
    pub(super) incident: IncidentIdx,
    pub(super) first: EventTime,
    pub(super) last_cause: EventTime,
    /// Distinct occurrences of the cause (a repeated Event counts once).
    pub(super) count: u32,
    pub(super) occurrences: FxHashSet<u64>,
    pub(super) causes: FxHashSet<String>,
    pub(super) effects: FxHashSet<String>,
    pub(super) joins: FxHashSet<(usize, String)>,
    pub(super) resolved_causes: FxHashSet<String>,
}

/// Where an effect lands: rule, effect, group, and the key that tied it.
#[derive(Clone, Copy, Debug)]
struct Slot<'g> {
    ci: usize,
    ei: usize,
    group: &'g str,
    key: &'g str,
}

#[derive(Debug, Default)]
pub(crate) struct CorrelationState {
    pub(super) groups: FxHashMap<String, Group>,
    pub(crate) joiner: Joiner,
}

/// Where an incident's root is, from the hit that formed it.
pub(crate) fn root_entity(
    root: &RootDef,
    entity: &Entity<'static>,
    attrs: &[(String, String)],
) -> Entity<'static> {
    match root {
        RootDef::Entity => entity.clone(),
        RootDef::Workload => entity.workload(),
        RootDef::Node => match &entity.node {
            Some(n) => Entity {
                kind: Cow::Borrowed("Node"),
                name: n.clone(),
                node: Some(n.clone()),
                ..Entity::default()
            },
            None => entity.clone(),
        },
        RootDef::Synthetic {
            kind,
            name,
            namespace,
        } => {
            let lookup = |v: &str| -> Option<Cow<'_, str>> {
                attrs
                    .iter()
                    .find(|(k, _)| k == v)
                    .map(|(_, val)| Cow::Owned(val.clone()))
                    .or_else(|| match v {
                        "namespace" => entity.namespace.clone(),
                        "node" => entity.node.clone(),
                        "root" => Some(entity.name.clone()),
                        _ => None,
                    })
            };
            Entity {
                kind: Cow::Owned(kind.clone()),
                name: Cow::Owned(name.render(lookup)),
                namespace: namespace.as_ref().map(|n| Cow::Owned(n.render(lookup))),
                ..Entity::default()
            }
        }
    }
}

pub(crate) fn member(hit: &Hit, signal: &str, role: Role, joined_by: Vec<String>) -> Member {
    Member {
        entity: hit.entity.clone(),
        signal: signal.to_string(),
        role,
        first: hit.time,
        last: hit.time,
        records: 1,
        joined_by,
    }
}

impl CorrelationState {
    pub(crate) fn with_caps(max_entries: usize, max_bytes: usize) -> CorrelationState {
        CorrelationState {
            joiner: Joiner::with_caps(max_entries, max_bytes),
            ..CorrelationState::default()
        }
    }

    pub(crate) fn on_cause(
        &mut self,
        rules: &RuleSet,
        ci: usize,
        hit: &Hit,
        graph: &Graph,
        store: &mut IncidentStore,
    ) {
        let def = &rules.correlations[ci];
        let Some(gkey) = select_hit(&def.group_by, hit) else {
            return;
        };
        let t = hit.time;
        let fresh = self.groups.get(&gkey).is_some_and(|g| {
            store.is_live(g.incident)
                && t <= g
                    .last_cause
                    .saturating_add(def.after.max(def.resolve.quiet))
        });
        if !fresh {
            let incident = store.insert(new_incident(rules, ci, def, hit));
            self.groups.insert(
                gkey.clone(),
                Group {
                    incident,
                    first: t,
                    last_cause: t,
                    count: 0,
                    occurrences: FxHashSet::default(),
                    causes: FxHashSet::default(),
                    effects: FxHashSet::default(),
                    joins: FxHashSet::default(),
                    resolved_causes: FxHashSet::default(),
                },
            );
        }
        let Some(g) = self.groups.get_mut(&gkey) else {
            return;
        };
        let repeat = match hit.occurrence {
            // Once the threshold is met the count no longer decides
            // anything: repeats need no telling apart, and remembering
            // every occurrence of a group that stays live for months (a
            // registry down, Events with new uids all along) would grow
            // without bound.
            Some(_) if g.count >= def.min_count => {
                if !g.occurrences.is_empty() {
                    g.occurrences = FxHashSet::default();
                }
                false
            }
            Some(o) => !g.occurrences.insert(o) && hit.repeat,
            None => false,
        };
        if !repeat {
            g.count += 1;
        }
        g.last_cause = g.last_cause.max(t);
        g.first = g.first.min(t);
        let key = entity_key(&hit.entity);
        g.causes.insert(key.clone());
        g.resolved_causes.remove(&key);
        let signal = &rules.signal(hit.signal).id;
        let idx = store.find(g.incident);
        merge_attributes(store.get_mut(idx), &hit.attributes);
        store
            .get_mut(idx)
            .offer_summary(&hit.summary, &hit.attributes);
        store.add(
            g.incident,
            &key,
            member(hit, signal, Role::Cause, Vec::new()),
            true,
            t,
        );

        // Register what this cause offers to effects, and take any effect
        // that arrived first.
        let since = g.first.saturating_sub(def.before);
        let mut pulled = Vec::new();
        for (ei, e) in def.effects.iter().enumerate() {
            for jk in tie_keys(e, Side::Cause, &hit.entity, &hit.attributes, graph, t) {
                if g.joins.insert((ei, jk.clone())) {
                    self.joiner.register(ei, &jk, &gkey);
                }
                for h in self.joiner.take(ei, &jk, since) {
                    pulled.push((ei, jk.clone(), h));
                }
            }
        }
        // An effect held under several keys (a Service's pods) is pulled
        // once.
        let mut seen = FxHashSet::default();
        pulled.retain(|(ei, _, h)| seen.insert((*ei, h.time, h.signal, entity_key(&h.entity))));
        for (ei, key, h) in pulled {
            self.attach(
                rules,
                Slot {
                    ci,
                    ei,
                    group: &gkey,
                    key: &key,
                },
                &h,
                t,
                store,
            );
        }
        self.check_open(rules, def, &gkey, t, store);
    }

    pub(crate) fn on_effect(
        &mut self,
        rules: &RuleSet,
        ci: usize,
        ei: usize,
        hit: &Hit,
        graph: &Graph,
        store: &mut IncidentStore,
    ) {
        let def = &rules.correlations[ci];
        let t = hit.time;
        let keys = tie_keys(
            &def.effects[ei],
            Side::Effect,
            &hit.entity,
            &hit.attributes,
            graph,
            t,
        );
        let mut targets: Vec<(String, String)> = Vec::new();
        for jk in &keys {
            for g in self.joiner.targets(ei, jk) {
                let live = self.groups.get(g.as_str()).is_some_and(|g| {
                    store.is_live(g.incident)
                        && t >= g.first.saturating_sub(def.before)
                        && t <= g.last_cause.saturating_add(def.after)
                });
                if live && !targets.iter().any(|(tg, _)| tg == g) {
                    targets.push((g.clone(), jk.clone()));
                }
            }
        }
        if targets.is_empty() {
            for jk in keys {
                self.joiner.hold(ei, jk, hit.clone());
            }
            return;
        }
        for (g, key) in targets {
            self.attach(
                rules,
                Slot {
                    ci,
                    ei,
                    group: &g,
                    key: &key,
                },
                hit,
                t,
                store,
            );
        }
    }

    fn attach(
        &mut self,
        rules: &RuleSet,
        slot: Slot<'_>,
        hit: &Hit,
        now: EventTime,
        store: &mut IncidentStore,
    ) {
        let Slot {
            ci,
            ei,
            group: gkey,
            key: tie,
        } = slot;
        let def = &rules.correlations[ci];
        let Some(g) = self.groups.get_mut(gkey) else {
            return;
        };
        let key = entity_key(&hit.entity);
        if g.causes.contains(&key) {
            store.touch(g.incident, hit.time);
            return;
        }
        g.effects.insert(key.clone());
        let idx = store.find(g.incident);
        merge_effect_attributes(store.get_mut(idx), &hit.attributes);
        let via = describe_tie(&def.effects[ei], tie, hit);
        let signal = &rules.signal(hit.signal).id;
        store.add(
            g.incident,
            &key,
            member(hit, signal, Role::Effect, via),
            false,
            now,
        );
        self.check_open(rules, def, gkey, now, store);
    }

    fn check_open(
        &self,
        rules: &RuleSet,
        def: &CorrelationDef,
        gkey: &str,
        t: EventTime,
        store: &mut IncidentStore,
    ) {
        let Some(g) = self.groups.get(gkey) else {
            return;
        };
        if store.get(g.incident).status == Status::Pending
            && g.count >= def.min_count
            && distinct_causes(def, g, store) >= def.min_entities as usize
            && g.effects.len() >= def.min_effects as usize
            && held_until(rules, def, g, store).is_some_and(|h| h <= t)
        {
            store.open(g.incident, t);
        }
    }

    /// Opens the pending incidents whose causes have now lasted the rule's
    /// `hold`, at the instant they did.
    pub(crate) fn tick_holds(
        &self,
        rules: &RuleSet,
        ci: usize,
        t: EventTime,
        store: &mut IncidentStore,
    ) {
        let def = &rules.correlations[ci];
        if def.hold == Span::ZERO {
            return;
        }
        for g in self.groups.values() {
            if store.get(store.find(g.incident)).status != Status::Pending
                || g.count < def.min_count
                || distinct_causes(def, g, store) < def.min_entities as usize
                || g.effects.len() < def.min_effects as usize
            {
                continue;
            }
            if let Some(at) = held_until(rules, def, g, store)
                && at <= t
            {
                store.open(g.incident, at);
            }
        }
    }

    /// A resolving signal: the incident resolves once every cause entity
    /// has shown one after its last cause signal.
    pub(crate) fn on_resolve(
        &mut self,
        rules: &RuleSet,
        ci: usize,
        hit: &Hit,
        store: &mut IncidentStore,
    ) {
        let def = &rules.correlations[ci];
        let Some(gkey) = select_hit(&def.group_by, hit) else {
            return;
        };
        let Some(g) = self.groups.get_mut(&gkey) else {
            return;
        };
        let key = entity_key(&hit.entity);
        if g.causes.contains(&key) {
            g.resolved_causes.insert(key);
        }
        // A cause that ended within its hold never opened anything: the
        // group stays pending (and a later cause holds afresh).
        let pending = store.get(store.find(g.incident)).status == Status::Pending;
        if !g.causes.is_empty()
            && g.resolved_causes.len() == g.causes.len()
            && store.is_live(g.incident)
            && !(pending && def.hold > Span::ZERO)
        {
            let signal = &rules.signal(hit.signal).id;
            store.resolve(
                g.incident,
                hit.time,
                format!("resolved by {signal} on every cause"),
            );
        }
    }

    /// Drops expired held effects and dead groups; returns effects dropped.
    pub(crate) fn housekeep(&mut self, def: &CorrelationDef, t: EventTime, store: &IncidentStore) {
        self.joiner.expire(t.saturating_sub(def.before));
        let keep_for = def
            .after
            .max(def.resolve.quiet)
            .max(def.before)
            .max(def.hold);
        // A group whose incident never opened and whose causes are older
        // than anything that could still open it is gone (a pod that
        // crashed once, grouped by a name that never comes back): held
        // state stays flat.
        self.groups.retain(|_, g| {
            let recent = g.last_cause.saturating_add(keep_for) > t;
            recent || store.get(store.find(g.incident)).status == Status::Firing
        });
        let groups = &self.groups;
        self.joiner.retain_groups(|g| groups.contains_key(g));
    }
}

/// The group's cause entities as `min_entities` counts them: themselves,
/// or their distinct workloads, nodes, namespaces.
fn distinct_causes(def: &CorrelationDef, g: &Group, store: &IncidentStore) -> usize {
    if def.count_by == crate::rules::Selector::Entity {
        return g.causes.len();
    }
    let inc = store.get(store.find(g.incident));
    let values: FxHashSet<String> = g
        .causes
        .iter()
        .filter_map(|c| inc.causes.get(c))
        .filter_map(|m| super::join::select(&def.count_by, &m.entity, &[]))
        .collect();
    values.len()
}

/// When the group's causes will have lasted the rule's `hold`: the earliest
/// cause entity still unresolved, from its latest cause record. Only a
/// state (a NotReady node) is held: a record that already says how long
/// its condition lasted (an alert past its `for:`) counts at once. `None`
/// when every cause has ended. Without a hold, at once.
fn held_until(
    rules: &RuleSet,
    def: &CorrelationDef,
    g: &Group,
    store: &IncidentStore,
) -> Option<EventTime> {
    if def.hold == Span::ZERO {
        return Some(EventTime::MIN);
    }
    let inc = store.get(store.find(g.incident));
    let is_state = |signal: &str| {
        rules
            .signal_id(signal)
            .is_some_and(|id| rules.signal(id).state)
    };
    g.causes
        .iter()
        .filter(|c| !g.resolved_causes.contains(*c))
        .filter_map(|c| inc.causes.get(c))
        .map(|m| {
            if is_state(&m.signal) {
                m.last.saturating_add(def.hold)
            } else {
                m.first
            }
        })
        .min()
}

pub(crate) fn merge_attributes(inc: &mut Incident, attrs: &[(String, String)]) {
    for (k, v) in attrs {
        inc.attributes.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// An effect's attributes, kept apart from the root's.
fn merge_effect_attributes(inc: &mut Incident, attrs: &[(String, String)]) {
    for (k, v) in attrs {
        inc.attributes
            .entry(crate::incident::effect_attribute(k))
            .or_insert_with(|| v.clone());
    }
}

fn new_incident(rules: &RuleSet, ci: usize, def: &CorrelationDef, hit: &Hit) -> Incident {
    let root = root_entity(&def.root, &hit.entity, &hit.attributes);
    Incident {
        id: String::new(),
        cluster: None,
        rule: RuleRef::Correlation(ci),
        rule_id: def.id.clone(),
        description: def.description.clone(),
        status: Status::Pending,
        severity: def.severity,
        opened_at: None,
        first_seen: hit.time,
        last_seen: hit.time,
        resolved_at: None,
        resolved_by: None,
        root,
        root_signal: rules.signal(hit.signal).id.clone(),
        root_summary: hit.summary.clone(),
        summary_rank: crate::incident::summary_rank(&hit.attributes),
        attributes: BTreeMap::new(),
        causes: BTreeMap::new(),
        affected: BTreeMap::new(),
        signals: 0,
        window_before: def.before,
        window_after: def.after,
        absence: None,
        merged_from: Vec::new(),
        merged_into: None,
        version: 0,
        title: def.title.clone(),
        summary: def.summary.clone(),
        quiet: def.resolve.quiet,
    }
}

//! Incidents: one per root cause, however many rules and records point at it.
//!
//! The [`IncidentStore`] owns every incident the engine has formed, pending
//! (a cause seen, its condition not yet met), firing or resolved. Incidents
//! that turn out to share a root cause are merged: two incidents with the
//! same root entity become one, and an incident whose root (or cause) is in
//! another's blast radius folds into that one, whose root is further
//! upstream. Merged incidents forward to their survivor (a union-find), so
//! later signals of either land in the same place.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::Hasher;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHasher};
use serde::{Deserialize, Serialize};

use crate::model::{Entity, Severity};
use crate::rules::template::Template;
use crate::time::{EventTime, Span};

/// Index of an incident in the store.
pub type IncidentIdx = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Formed but its condition is not met yet: never reported.
    Pending,
    Firing,
    Resolved,
}

/// Which rule formed an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleRef {
    Correlation(usize),
    Absence(usize),
    /// A rule no longer in the rule set: the incident was restored from a
    /// checkpoint taken under an older pack, and is history.
    Retired(RuleKind),
}

/// The two kinds of incident rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Correlation,
    Absence,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Correlation => "correlation",
            RuleKind::Absence => "absence",
        }
    }
}

impl RuleRef {
    pub fn kind(self) -> RuleKind {
        match self {
            RuleRef::Correlation(_) => RuleKind::Correlation,
            RuleRef::Absence(_) => RuleKind::Absence,
            RuleRef::Retired(kind) => kind,
        }
    }
}

/// Why an entity is part of an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// It showed the cause signal (a crash-looping plugin pod).
    Cause,
    /// It showed an effect joined to the cause.
    Effect,
    /// It reported the condition of an absence rule (standbys logging errors).
    Evidence,
    /// It is in the state an absence rule measures (a Pending pod).
    Condition,
    /// It was the root of an incident merged into this one.
    Merged,
}

/// One entity's part in an incident.
#[derive(Clone, Debug, Serialize)]
pub struct Member {
    pub entity: Entity<'static>,
    pub signal: String,
    pub role: Role,
    pub first: EventTime,
    pub last: EventTime,
    pub records: u64,
    /// The join values that tied it to the cause: `node = k8s-node1`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub joined_by: Vec<String>,
}

/// What an absence rule found missing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbsenceFacts {
    /// Signals that were not seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<String>,
    /// The window in which nothing of them was seen.
    pub since: EventTime,
    pub until: EventTime,
    /// How long the condition had to hold.
    pub held_for: Span,
    /// For a silent peer: its last line, and how busy it had been.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silent_since: Option<EventTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines_before_silence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_records: Option<u64>,
}

/// An incident, as the engine holds it.
#[derive(Clone, Debug)]
pub struct Incident {
    pub id: String,
    /// The cluster it happened in, when the engine's cluster is named
    /// ([`EngineConfig::cluster`](crate::EngineConfig::cluster)).
    pub cluster: Option<Arc<str>>,
    pub rule: RuleRef,
    pub rule_id: String,
    pub description: String,
    pub status: Status,
    pub severity: Severity,
    pub opened_at: Option<EventTime>,
    pub first_seen: EventTime,
    pub last_seen: EventTime,
    pub resolved_at: Option<EventTime>,
    pub resolved_by: Option<String>,
    pub root: Entity<'static>,
    pub root_signal: String,
    pub root_summary: String,
    /// How specific `root_summary` is: the attributes its signal captured.
    /// A more specific cause (one that names the port) replaces a vaguer one.
    pub summary_rank: usize,
    pub attributes: BTreeMap<String, String>,
    /// Entities that showed the cause (or, for absence rules, the condition).
    pub causes: BTreeMap<String, Member>,
    /// The blast radius: entities that showed effects.
    pub affected: BTreeMap<String, Member>,
    pub signals: u64,
    pub window_before: Span,
    pub window_after: Span,
    pub absence: Option<AbsenceFacts>,
    /// Incidents folded into this one: (id, rule).
    pub merged_from: Vec<(String, String)>,
    pub merged_into: Option<IncidentIdx>,
    /// How many times it changed since it opened.
    pub version: u32,
    pub title: Template,
    pub summary: Template,
    pub quiet: Span,
}

/// How specific a hit's summary is: the attributes it captured, beyond the
/// container every record of a container carries.
pub(crate) fn summary_rank(attrs: &[(String, String)]) -> usize {
    attrs.iter().filter(|(k, _)| k != "container").count()
}

impl Incident {
    /// Offers a cause's summary as the incident's root summary.
    pub(crate) fn offer_summary(&mut self, summary: &str, attrs: &[(String, String)]) {
        let rank = summary_rank(attrs);
        if rank > self.summary_rank {
            self.root_summary = summary.to_string();
            self.summary_rank = rank;
        }
    }

    /// Everything that names an entity of this incident, root included.
    fn member_keys(&self) -> impl Iterator<Item = &String> {
        self.causes.keys().chain(self.affected.keys())
    }

    /// The blast radius as incidents fold by it: every member, and the
    /// workload of each cause that has one (a Deployment whose Pods are
    /// this incident's causes is part of it: the graph's owner edge). Not
    /// the workloads of effects: one Pod of a DaemonSet on a NotReady node
    /// does not put the DaemonSet in that node's blast radius.
    fn blast_keys(&self) -> Vec<String> {
        let causes = self
            .causes
            .iter()
            .flat_map(|(k, m)| [Some(k.clone()), member_workload(m)]);
        let effects = self.affected.keys().map(|k| Some(k.clone()));
        let mut keys: Vec<String> = causes.chain(effects).flatten().collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Opened once and not folded into another. An incident resolved
    /// before it ever opened (its cause ended below the rule's thresholds)
    /// was never news.
    pub fn is_reported(&self) -> bool {
        self.merged_into.is_none() && self.status != Status::Pending && self.opened_at.is_some()
    }

    /// A hash of rule, root and first sighting, and of the cluster when
    /// one is named: the same outage in two clusters is two incidents, and
    /// an unnamed cluster keeps the ids it always had.
    fn stable_id(&self) -> String {
        let mut h = FxHasher::default();
        if let Some(cluster) = &self.cluster {
            h.write(cluster.as_bytes());
            h.write_u8(0);
        }
        h.write(self.rule_id.as_bytes());
        h.write_u8(0);
        h.write(entity_key(&self.root).as_bytes());
        h.write_u8(0);
        h.write_i64(self.first_seen.as_micros());
        format!("{:016x}", h.finish())
    }

    fn add_member(map: &mut BTreeMap<String, Member>, key: String, m: Member) -> bool {
        match map.get_mut(&key) {
            Some(existing) => {
                existing.first = existing.first.min(m.first);
                existing.last = existing.last.max(m.last);
                existing.records += m.records;
                false
            }
            None => {
                map.insert(key, m);
                true
            }
        }
    }

    /// Renders a template of this incident.
    pub fn render(&self, t: &Template) -> String {
        t.render(|var| self.var(var))
    }

    fn var(&self, var: &str) -> Option<Cow<'_, str>> {
        if let Some(v) = self.attributes.get(var) {
            return Some(Cow::Borrowed(v));
        }
        // A detail only the effects carry (the driver kubelet names) may
        // still fill a title.
        if let Some(v) = self.attributes.get(&effect_attribute(var)) {
            return Some(Cow::Borrowed(v));
        }
        let reported: Vec<&Member> = self.reported_affected().collect();
        let v: Cow<'_, str> = match var {
            "root" => Cow::Borrowed(&self.root.name),
            "root_kind" => Cow::Borrowed(&self.root.kind),
            "namespace" => Cow::Borrowed(self.root.namespace.as_deref()?),
            "node" => Cow::Borrowed(
                self.root
                    .node
                    .as_deref()
                    .or_else(|| self.causes.values().find_map(|m| m.entity.node.as_deref()))?,
            ),
            "workload" => Cow::Owned(self.root.workload().name.into_owned()),
            "cause_summary" => Cow::Borrowed(&self.root_summary),
            "causes" => Cow::Owned(self.causes.len().to_string()),
            "affected" => Cow::Owned(reported.len().to_string()),
            "affected_names" => {
                Cow::Owned(name_list(reported.iter().map(|m| m.entity.name.as_ref())))
            }
            "effects" => Cow::Owned(
                reported
                    .iter()
                    .filter(|m| m.role == Role::Effect)
                    .count()
                    .to_string(),
            ),
            "effect_names" => Cow::Owned(name_list(
                reported
                    .iter()
                    .filter(|m| m.role == Role::Effect)
                    .map(|m| m.entity.name.as_ref()),
            )),
            "nodes" => Cow::Owned(self.nodes().len().to_string()),
            "node_names" => Cow::Owned(name_list(self.nodes().into_iter())),
            "namespaces" => Cow::Owned(self.namespaces(&reported).len().to_string()),
            "namespace_names" => Cow::Owned(name_list(self.namespaces(&reported).into_iter())),
            "signals" => Cow::Owned(self.signals.to_string()),
            "window" => Cow::Owned(format!("-{}/+{}", self.window_before, self.window_after)),
            "duration" => Cow::Owned(self.absence.as_ref()?.held_for.to_string()),
            "absent" => Cow::Owned(self.absence.as_ref()?.absent.join(" or ")),
            "quiet" => Cow::Owned(
                self.absence
                    .as_ref()
                    .and_then(|a| Some(a.until.since(a.silent_since?)))?
                    .to_string(),
            ),
            _ => return None,
        };
        Some(v)
    }

    /// The affected entities as reported: never the root itself.
    pub fn reported_affected(&self) -> impl Iterator<Item = &Member> {
        let root = entity_key(&self.root);
        let mut all: Vec<(&String, &Member)> = self
            .causes
            .iter()
            .chain(self.affected.iter())
            .filter(move |(k, _)| **k != root)
            .collect();
        all.sort_by(|a, b| a.1.first.cmp(&b.1.first).then_with(|| a.0.cmp(b.0)));
        all.dedup_by(|a, b| a.0 == b.0);
        all.into_iter().map(|(_, m)| m)
    }

    fn nodes(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .root
            .node
            .as_deref()
            .into_iter()
            .chain(
                self.causes
                    .values()
                    .filter_map(|m| m.entity.node.as_deref()),
            )
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn namespaces<'m>(&'m self, reported: &[&'m Member]) -> Vec<&'m str> {
        let mut v: Vec<&str> = reported
            .iter()
            .filter_map(|m| m.entity.namespace.as_deref())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// `a, b, c and 4 more`.
fn name_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    const SHOWN: usize = 3;
    let names: Vec<&str> = names.collect();
    let mut s = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// The key of a member's workload, when it has an owner.
fn member_workload(m: &Member) -> Option<String> {
    (!m.entity.owners.is_empty()).then(|| entity_key(&m.entity.workload()))
}

/// What marks an attribute that came from an effect in
/// [`Incident::attributes`]: the root's attributes are its causes' alone
/// (routes and labels are built from them), and an effect's only fill a
/// template placeholder no cause has.
const EFFECT_ATTRIBUTE: char = '\u{1f}';

/// The key under which an effect's attribute `name` is kept.
pub(crate) fn effect_attribute(name: &str) -> String {
    format!("{EFFECT_ATTRIBUTE}{name}")
}

impl Incident {
    /// The root cause's attributes: what its cause signals captured.
    pub fn root_attributes(&self) -> BTreeMap<String, String> {
        self.attributes
            .iter()
            .filter(|(k, _)| !k.starts_with(EFFECT_ATTRIBUTE))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The key an entity is known by inside the engine: kind-qualified, so a
/// DaemonSet and its Pod of a similar name never collide.
pub fn entity_key(e: &Entity<'_>) -> String {
    match &e.namespace {
        Some(ns) => format!("{}/{}/{}", e.kind, ns, e.name),
        None => format!("{}/{}", e.kind, e.name),
    }
}

/// A change the engine reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Opened,
    Updated,
    Resolved,
    /// Folded into another incident (the survivor is updated too).
    Merged,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncidentUpdate {
    pub incident: IncidentIdx,
    pub change: Change,
    /// Event time of the change.
    pub at: EventTime,
}

/// Every incident the engine formed, with the indexes merging needs.
#[derive(Debug, Default)]
pub struct IncidentStore {
    pub(crate) incidents: Vec<Incident>,
    /// The engine's cluster, given to every incident it forms.
    pub(crate) cluster: Option<Arc<str>>,
    /// Root entity keys of reported incidents.
    pub(crate) by_root: FxHashMap<String, Vec<IncidentIdx>>,
    /// Member (cause and affected) entity keys of reported incidents.
    pub(crate) by_affected: FxHashMap<String, Vec<IncidentIdx>>,
    pub(crate) updates: Vec<IncidentUpdate>,
}

impl IncidentStore {
    pub fn get(&self, idx: IncidentIdx) -> &Incident {
        &self.incidents[idx]
    }

    pub fn len(&self) -> usize {
        self.incidents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.iter()
    }

    /// The incident `idx` forwards to.
    pub fn find(&self, mut idx: IncidentIdx) -> IncidentIdx {
        while let Some(next) = self.incidents[idx].merged_into {
            idx = next;
        }
        idx
    }

    pub(crate) fn insert(&mut self, mut incident: Incident) -> IncidentIdx {
        incident.cluster.clone_from(&self.cluster);
        self.incidents.push(incident);
        self.incidents.len() - 1
    }

    pub(crate) fn get_mut(&mut self, idx: IncidentIdx) -> &mut Incident {
        &mut self.incidents[idx]
    }

    /// Is the incident `idx` forwards to still collecting (pending or firing)?
    pub(crate) fn is_live(&self, idx: IncidentIdx) -> bool {
        self.incidents[self.find(idx)].status != Status::Resolved
    }

    /// Adds a member; a new affected entity of a reported incident may pull
    /// in the incidents rooted at it.
    pub(crate) fn add(
        &mut self,
        idx: IncidentIdx,
        key: &str,
        member: Member,
        as_cause: bool,
        at: EventTime,
    ) {
        let own = idx;
        let idx = self.find(idx);
        // A folded incident's causes are part of the survivor's blast radius.
        let as_cause = as_cause && idx == own;
        let inc = &mut self.incidents[idx];
        inc.signals += member.records;
        inc.first_seen = inc.first_seen.min(member.first);
        inc.last_seen = inc.last_seen.max(member.last);
        let map = if as_cause {
            &mut inc.causes
        } else {
            &mut inc.affected
        };
        let workload = member_workload(&member).filter(|_| as_cause);
        let new = Incident::add_member(map, key.to_string(), member);
        if inc.status == Status::Firing {
            inc.version += 1;
            let root = entity_key(&inc.root);
            if new && key != root {
                let keys: Vec<String> = std::iter::once(key.to_string())
                    .chain(workload.filter(|w| *w != root))
                    .collect();
                for k in &keys {
                    self.by_affected.entry(k.clone()).or_default().push(idx);
                }
                self.updates.push(IncidentUpdate {
                    incident: idx,
                    change: Change::Updated,
                    at,
                });
                for k in &keys {
                    self.absorb_rooted_at(idx, k, at);
                }
                // An incident whose last uncovered cause this member was.
                let covered: Vec<IncidentIdx> = self
                    .covered_by(idx)
                    .into_iter()
                    .filter(|&o| self.incidents[o].causes.contains_key(key))
                    .collect();
                for other in covered {
                    if self.find(other) != self.find(idx) {
                        self.merge(other, self.find(idx), at);
                    }
                }
            }
        }
    }

    /// Counts records that add no entity (a repeat on a known member).
    pub(crate) fn touch(&mut self, idx: IncidentIdx, at: EventTime) {
        let idx = self.find(idx);
        let inc = &mut self.incidents[idx];
        inc.signals += 1;
        inc.last_seen = inc.last_seen.max(at);
    }

    pub(crate) fn open(&mut self, idx: IncidentIdx, at: EventTime) {
        let inc = &mut self.incidents[idx];
        if inc.status != Status::Pending || inc.merged_into.is_some() {
            return;
        }
        inc.status = Status::Firing;
        inc.opened_at = Some(at);
        inc.id = inc.stable_id();
        tracing::debug!(incident = %inc.id, rule = %inc.rule_id, root = %inc.root.name, at = %at, "incident opened");
        let root_key = entity_key(&inc.root);
        let member_keys: Vec<String> = inc
            .blast_keys()
            .into_iter()
            .filter(|k| *k != root_key)
            .collect();
        self.updates.push(IncidentUpdate {
            incident: idx,
            change: Change::Opened,
            at,
        });
        // Same root, or this root is in someone's blast radius: fold.
        let mut into: Option<IncidentIdx> = None;
        let same_root = self.by_root.get(&root_key).into_iter().flatten();
        let upstream = self.by_affected.get(&root_key).into_iter().flatten();
        for &other in same_root.chain(upstream) {
            let other = self.find(other);
            if other != idx && self.incidents[other].status == Status::Firing {
                into = Some(into.map_or(other, |i: IncidentIdx| i.min(other)));
            }
        }
        // The same entity showing the cause of two incidents is one failure
        // described twice (a claim that waits for its provisioner and fails
        // to provision): the two are one incident.
        if into.is_none() {
            let causes: Vec<String> = self.incidents[idx]
                .causes
                .keys()
                .filter(|k| **k != root_key)
                .cloned()
                .collect();
            for key in &causes {
                for &other in self.by_affected.get(key).into_iter().flatten() {
                    let other = self.find(other);
                    if other != idx
                        && self.incidents[other].status == Status::Firing
                        && self.incidents[other].causes.contains_key(key)
                        && self.another_rule(other, idx)
                    {
                        into = Some(into.map_or(other, |i: IncidentIdx| i.min(other)));
                    }
                }
            }
        }
        self.by_root.entry(root_key).or_default().push(idx);
        for key in &member_keys {
            self.by_affected.entry(key.clone()).or_default().push(idx);
        }
        // Incidents rooted in this one's blast radius fold into it.
        for key in &member_keys {
            self.absorb_rooted_at(idx, key, at);
        }
        // Every cause of this incident is already a member of another: it
        // is a symptom of that one (objects blocked by a webhook whose
        // backend another incident names), and folds into it.
        if into.is_none() {
            into = self.covering(idx);
        }
        // And the other way: incidents whose causes this one holds.
        if into.is_none() {
            for other in self.covered_by(idx) {
                self.merge(other, idx, at);
            }
        }
        if let Some(other) = into {
            let (survivor, folded) = self.survivor(other, idx);
            self.merge(folded, survivor, at);
        }
    }

    /// The causes of `idx` but its root.
    fn cause_keys(&self, idx: IncidentIdx) -> Vec<String> {
        let inc = &self.incidents[idx];
        let root = entity_key(&inc.root);
        inc.causes.keys().filter(|k| **k != root).cloned().collect()
    }

    /// A firing incident whose members hold every cause of `idx`.
    fn covering(&self, idx: IncidentIdx) -> Option<IncidentIdx> {
        let causes = self.cause_keys(idx);
        let first = causes.first()?;
        self.by_affected
            .get(first)
            .into_iter()
            .flatten()
            .map(|&o| self.find(o))
            .filter(|&o| o != idx && self.incidents[o].status == Status::Firing)
            .filter(|&o| self.another_rule(o, idx))
            .find(|&o| {
                let other = &self.incidents[o];
                causes
                    .iter()
                    .all(|k| other.causes.contains_key(k) || other.affected.contains_key(k))
            })
    }

    /// Firing incidents every cause of which is a member of `idx`.
    fn covered_by(&self, idx: IncidentIdx) -> Vec<IncidentIdx> {
        let inc = &self.incidents[idx];
        let mut out: Vec<IncidentIdx> = inc
            .member_keys()
            .filter_map(|k| self.by_affected.get(k))
            .flatten()
            .map(|&o| self.find(o))
            .filter(|&o| o != idx && self.incidents[o].status == Status::Firing)
            .filter(|&o| self.another_rule(o, idx))
            .filter(|&o| {
                let causes = self.cause_keys(o);
                !causes.is_empty()
                    && causes
                        .iter()
                        .all(|k| inc.causes.contains_key(k) || inc.affected.contains_key(k))
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether two incidents come from different correlations. Within one
    /// correlation its `group_by` says what tells two failures apart (two
    /// claims full on one node are two incidents, though the alerts of both
    /// come from that node's kubelet), so a shared or covered cause folds
    /// only incidents of different rules: two descriptions of one failure.
    fn another_rule(&self, a: IncidentIdx, b: IncidentIdx) -> bool {
        self.incidents[a].rule_id != self.incidents[b].rule_id
    }

    /// Of two incidents with the same root cause, the one that explains more
    /// survives (more affected entities, then the earlier one).
    fn survivor(&self, a: IncidentIdx, b: IncidentIdx) -> (IncidentIdx, IncidentIdx) {
        let (ia, ib) = (&self.incidents[a], &self.incidents[b]);
        if entity_key(&ia.root) != entity_key(&ib.root) {
            // `a` holds b's root among its members: a is upstream.
            return (a, b);
        }
        let rank = |i: &Incident| (i.affected.len(), std::cmp::Reverse(i.opened_at));
        if rank(ib) > rank(ia) { (b, a) } else { (a, b) }
    }

    fn absorb_rooted_at(&mut self, idx: IncidentIdx, key: &str, at: EventTime) {
        let Some(rooted) = self.by_root.get(key).cloned() else {
            return;
        };
        for other in rooted {
            let other = self.find(other);
            let target = self.find(idx);
            if other == target || self.incidents[other].status != Status::Firing {
                continue;
            }
            // Never fold an incident into one rooted in its own blast radius.
            let target_root = entity_key(&self.incidents[target].root);
            if self.incidents[other].blast_keys().contains(&target_root)
                && entity_key(&self.incidents[other].root) != target_root
            {
                continue;
            }
            self.merge(other, target, at);
        }
    }

    fn merge(&mut self, folded: IncidentIdx, survivor: IncidentIdx, at: EventTime) {
        let f = self.incidents[folded].clone();
        tracing::debug!(folded = %f.id, into = %self.incidents[survivor].id, "incidents merged");
        let s = &mut self.incidents[survivor];
        let survivor_root = entity_key(&s.root);
        for (k, m) in f.causes.iter().chain(f.affected.iter()) {
            if *k != survivor_root {
                Incident::add_member(&mut s.affected, k.clone(), m.clone());
            }
        }
        let f_root = entity_key(&f.root);
        if f_root != survivor_root {
            Incident::add_member(
                &mut s.affected,
                f_root,
                Member {
                    entity: f.root.clone(),
                    signal: f.root_signal.clone(),
                    role: Role::Merged,
                    first: f.first_seen,
                    last: f.last_seen,
                    records: 0,
                    joined_by: vec![format!("root of {} incident {}", f.rule_id, f.id)],
                },
            );
        }
        // A folded incident about another root is a symptom: its causes'
        // attributes are the survivor's effects' (they fill titles only).
        let same_root = entity_key(&f.root) == survivor_root;
        for (k, v) in &f.attributes {
            let key = if same_root || k.starts_with(EFFECT_ATTRIBUTE) {
                k.clone()
            } else {
                effect_attribute(k)
            };
            s.attributes.entry(key).or_insert_with(|| v.clone());
        }
        s.signals += f.signals;
        s.first_seen = s.first_seen.min(f.first_seen);
        s.last_seen = s.last_seen.max(f.last_seen);
        if let (Some(a), Some(b)) = (s.opened_at, f.opened_at) {
            s.opened_at = Some(a.min(b));
        }
        // A more specific account of the same root replaces the summary; a
        // folded incident about another root (a symptom) never does.
        if entity_key(&f.root) == survivor_root
            && (f.summary_rank, std::cmp::Reverse(f.first_seen))
                > (s.summary_rank, std::cmp::Reverse(s.first_seen))
        {
            s.root_summary = f.root_summary.clone();
            s.summary_rank = f.summary_rank;
        }
        s.severity = s.severity.max(f.severity);
        s.merged_from.push((f.id.clone(), f.rule_id.clone()));
        s.merged_from.extend(f.merged_from.iter().cloned());
        s.version += 1;
        self.incidents[folded].merged_into = Some(survivor);
        let root = entity_key(&self.incidents[survivor].root);
        let keys: Vec<String> = self.incidents[survivor]
            .blast_keys()
            .into_iter()
            .filter(|k| *k != root)
            .collect();
        for k in keys {
            self.by_affected.entry(k).or_default().push(survivor);
        }
        self.updates.push(IncidentUpdate {
            incident: folded,
            change: Change::Merged,
            at,
        });
        self.updates.push(IncidentUpdate {
            incident: survivor,
            change: Change::Updated,
            at,
        });
    }

    pub(crate) fn resolve(&mut self, idx: IncidentIdx, at: EventTime, why: String) {
        let idx = self.find(idx);
        let inc = &mut self.incidents[idx];
        if inc.status == Status::Resolved {
            return;
        }
        let was_firing = inc.status == Status::Firing;
        inc.status = Status::Resolved;
        inc.resolved_at = Some(at);
        inc.resolved_by = Some(why);
        if was_firing {
            self.updates.push(IncidentUpdate {
                incident: idx,
                change: Change::Resolved,
                at,
            });
        }
    }

    /// Reported incidents whose quiet period has passed by `t`.
    pub(crate) fn resolve_quiet(&mut self, t: EventTime) {
        let due: Vec<(IncidentIdx, EventTime)> = self
            .incidents
            .iter()
            .enumerate()
            .filter(|(_, i)| i.status == Status::Firing && i.merged_into.is_none())
            .filter_map(|(idx, i)| {
                let at = i.last_seen.saturating_add(i.quiet);
                (at <= t).then_some((idx, at))
            })
            .collect();
        for (idx, at) in due {
            let quiet = self.incidents[idx].quiet;
            self.resolve(idx, at, format!("quiet: no new signal for {quiet}"));
        }
    }
}

//! OLD's incidents against NEW's: which are the same incident, which only
//! one pack formed, and what changed in those both formed.
//!
//! Pairing, in three passes, each over what the previous left: the same id
//! (the same rule, root entity and first event time); the same rule and
//! root entity (kind, namespace, name), in order of `opened_at`; the same
//! rule, overlapping in time and sharing an entity (the root or the blast
//! radius), the most shared first: an edited `root:` or `group_by:` changes
//! the root, not the failure. What is left is *removed* (only in OLD) or
//! *new* (only in NEW).

use std::collections::BTreeSet;

use correlate::report::EntityRef;
use correlate::{EventTime, IncidentReport, Severity, Span, Status};
use rustc_hash::FxHashMap;
use serde::{Serialize, Serializer};

use super::notify::Sent;

type RootKey<'a> = (&'a str, &'a str, Option<&'a str>, &'a str);

/// One incident as a pack formed it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Found {
    pub(crate) id: String,
    pub(crate) rule: String,
    pub(crate) title: String,
    pub(crate) severity: Severity,
    pub(crate) status: Status,
    pub(crate) root: EntityRef,
    pub(crate) opened_at: EventTime,
    pub(crate) first_seen: EventTime,
    pub(crate) last_seen: EventTime,
    /// `opened_at - first_seen`: how long after its first record the
    /// incident opened.
    #[serde(rename = "detection_delay_seconds", serialize_with = "seconds")]
    pub(crate) delay: Span,
    /// The blast radius, as `Kind namespace/name`.
    #[serde(rename = "affected", serialize_with = "count")]
    pub(crate) affected: BTreeSet<String>,
    pub(crate) notifications: Sent,
    #[serde(skip)]
    pub(crate) report: IncidentReport,
}

impl Found {
    pub(crate) fn new(report: IncidentReport, notifications: Sent) -> Found {
        Found {
            id: report.id.clone(),
            rule: report.rule.clone(),
            title: report.title.clone(),
            severity: report.severity,
            status: report.status,
            root: report.root_cause.entity.clone(),
            opened_at: report.opened_at,
            first_seen: report.first_seen,
            last_seen: report.last_seen,
            delay: report.opened_at.since(report.first_seen),
            affected: report.affected.iter().map(|a| key(&a.entity)).collect(),
            notifications,
            report,
        }
    }

    /// `Kind namespace/name` of the root.
    pub(crate) fn root_key(&self) -> String {
        key(&self.root)
    }

    /// Rule and root entity (kind, namespace, name).
    fn root_of_rule(&self) -> RootKey<'_> {
        (
            &self.rule,
            &self.root.kind,
            self.root.namespace.as_deref(),
            &self.root.name,
        )
    }

    fn entities(&self) -> BTreeSet<String> {
        let mut all = self.affected.clone();
        all.insert(self.root_key());
        all
    }
}

/// `Kind namespace/name` (no node: the node is where, not who).
pub(crate) fn key(e: &EntityRef) -> String {
    match e.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(ns) => format!("{} {ns}/{}", e.kind, e.name),
        None => format!("{} {}", e.kind, e.name),
    }
}

fn seconds<S: Serializer>(span: &Span, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(span.as_secs_f64())
}

fn count<S: Serializer>(set: &BTreeSet<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(set.len() as u64)
}

/// What became of an incident from OLD to NEW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Verdict {
    /// Only OLD formed it.
    Removed,
    /// Only NEW formed it.
    New,
    /// Both did, differently.
    Changed,
    Unchanged,
}

/// An old and a new value.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Was<T> {
    pub(crate) old: T,
    pub(crate) new: T,
}

/// What differs between the two versions of one incident; every field is
/// absent (JSON) or empty when it is the same.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Changes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<Was<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) severity: Option<Was<Severity>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<Was<Status>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) root: Option<Was<EntityRef>>,
    /// Entities in NEW's blast radius only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) affected_added: Vec<String>,
    /// Entities in OLD's blast radius only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) affected_removed: Vec<String>,
    /// NEW's `opened_at` less OLD's: positive when NEW opened later.
    #[serde(
        rename = "opened_at_shift_seconds",
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_seconds"
    )]
    pub(crate) opened_shift: Option<Span>,
    #[serde(
        rename = "detection_delay_seconds",
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_was_seconds"
    )]
    pub(crate) delay: Option<Was<Span>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) notifications: Option<Was<Sent>>,
}

fn opt_seconds<S: Serializer>(span: &Option<Span>, s: S) -> Result<S::Ok, S::Error> {
    match span {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

fn opt_was_seconds<S: Serializer>(w: &Option<Was<Span>>, s: S) -> Result<S::Ok, S::Error> {
    match w {
        Some(w) => Was {
            old: w.old.as_secs_f64(),
            new: w.new.as_secs_f64(),
        }
        .serialize(s),
        None => s.serialize_none(),
    }
}

impl Changes {
    fn between(old: &Found, new: &Found) -> Changes {
        fn was<T: PartialEq + Clone>(old: &T, new: &T) -> Option<Was<T>> {
            (old != new).then(|| Was {
                old: old.clone(),
                new: new.clone(),
            })
        }
        Changes {
            title: was(&old.title, &new.title),
            severity: was(&old.severity, &new.severity),
            status: was(&old.status, &new.status),
            root: was(&old.root, &new.root),
            affected_added: new.affected.difference(&old.affected).cloned().collect(),
            affected_removed: old.affected.difference(&new.affected).cloned().collect(),
            opened_shift: (old.opened_at != new.opened_at)
                .then(|| new.opened_at.since(old.opened_at)),
            delay: was(&old.delay, &new.delay),
            notifications: was(&old.notifications, &new.notifications),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.severity.is_none()
            && self.status.is_none()
            && self.root.is_none()
            && self.affected_added.is_empty()
            && self.affected_removed.is_empty()
            && self.opened_shift.is_none()
            && self.delay.is_none()
            && self.notifications.is_none()
    }

    /// NEW detects it later after its first record than OLD did.
    pub(crate) fn slower(&self) -> bool {
        self.delay.as_ref().is_some_and(|d| d.new > d.old)
    }
}

/// One incident of either pack, or both.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Entry {
    pub(crate) verdict: Verdict,
    pub(crate) old: Option<Found>,
    pub(crate) new: Option<Found>,
    #[serde(skip_serializing_if = "Changes::is_empty")]
    pub(crate) changes: Changes,
    /// Detected later after its first record under NEW.
    pub(crate) slower: bool,
}

impl Entry {
    /// NEW's version if there is one, else OLD's.
    pub(crate) fn latest(&self) -> Option<&Found> {
        self.new.as_ref().or(self.old.as_ref())
    }

    fn order_key(&self) -> (EventTime, String, String, String) {
        let opened = [&self.old, &self.new]
            .iter()
            .filter_map(|f| f.as_ref().map(|f| f.opened_at))
            .min()
            .unwrap_or(EventTime::MIN);
        match self.latest() {
            Some(f) => (opened, f.rule.clone(), f.root_key(), f.id.clone()),
            None => (opened, String::new(), String::new(), String::new()),
        }
    }
}

/// Pairs OLD's incidents with NEW's; one entry per incident or pair, in
/// order of `opened_at` (then rule, root, id).
pub(crate) fn diff(mut old: Vec<Found>, mut new: Vec<Found>) -> Vec<Entry> {
    let order = |a: &Found, b: &Found| a.opened_at.cmp(&b.opened_at).then(a.id.cmp(&b.id));
    old.sort_by(order);
    new.sort_by(order);
    let mut pair: Vec<Option<usize>> = vec![None; old.len()];
    let mut taken = vec![false; new.len()];

    // The same id.
    let by_id: FxHashMap<&str, usize> = new
        .iter()
        .enumerate()
        .map(|(j, n)| (n.id.as_str(), j))
        .collect();
    for (i, o) in old.iter().enumerate() {
        if let Some(&j) = by_id.get(o.id.as_str())
            && !taken[j]
        {
            pair[i] = Some(j);
            taken[j] = true;
        }
    }
    // The same rule and root, in order of opening.
    let mut by_root: FxHashMap<RootKey<'_>, Vec<usize>> = FxHashMap::default();
    for (j, n) in new.iter().enumerate().rev() {
        if !taken[j] {
            by_root.entry(n.root_of_rule()).or_default().push(j);
        }
    }
    for (i, o) in old.iter().enumerate() {
        if pair[i].is_some() {
            continue;
        }
        // Reversed above: the earliest is last.
        if let Some(j) = by_root.get_mut(&o.root_of_rule()).and_then(Vec::pop) {
            pair[i] = Some(j);
            taken[j] = true;
        }
    }
    // The same rule, at the same time, about the same entities.
    let mut by_rule: FxHashMap<&str, Vec<usize>> = FxHashMap::default();
    for (j, n) in new.iter().enumerate() {
        if !taken[j] {
            by_rule.entry(n.rule.as_str()).or_default().push(j);
        }
    }
    for (i, o) in old.iter().enumerate() {
        if pair[i].is_some() {
            continue;
        }
        let Some(candidates) = by_rule.get(o.rule.as_str()) else {
            continue;
        };
        let mine = o.entities();
        let best = candidates
            .iter()
            .copied()
            .filter(|&j| {
                !taken[j] && new[j].first_seen <= o.last_seen && o.first_seen <= new[j].last_seen
            })
            .map(|j| (new[j].entities().intersection(&mine).count(), j))
            .filter(|(shared, _)| *shared > 0)
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        if let Some((_, j)) = best {
            pair[i] = Some(j);
            taken[j] = true;
        }
    }

    let mut entries = Vec::with_capacity(old.len().max(new.len()));
    let mut new: Vec<Option<Found>> = new.into_iter().map(Some).collect();
    for (o, p) in old.into_iter().zip(pair) {
        let paired = p.and_then(|j| new.get_mut(j).and_then(Option::take));
        entries.push(match paired {
            Some(n) => {
                let changes = Changes::between(&o, &n);
                Entry {
                    verdict: if changes.is_empty() {
                        Verdict::Unchanged
                    } else {
                        Verdict::Changed
                    },
                    slower: changes.slower(),
                    changes,
                    old: Some(o),
                    new: Some(n),
                }
            }
            None => Entry {
                verdict: Verdict::Removed,
                old: Some(o),
                new: None,
                changes: Changes::default(),
                slower: false,
            },
        });
    }
    for n in new.into_iter().flatten() {
        entries.push(Entry {
            verdict: Verdict::New,
            old: None,
            new: Some(n),
            changes: Changes::default(),
            slower: false,
        });
    }
    entries.sort_by_cached_key(Entry::order_key);
    entries
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// An incident of `rule` rooted at `Kind/ns/name`, opened `opened`
    /// seconds after 10:00 (first seen at 10:00), affecting `affected`.
    fn found(id: &str, rule: &str, root: (&str, &str), opened: i64, affected: &[&str]) -> Found {
        let at = |s: i64| format!("2026-04-02T10:{:02}:{:02}Z", s / 60, s % 60);
        let affected: Vec<serde_json::Value> = affected
            .iter()
            .map(|n| {
                serde_json::json!({"kind": "Pod", "namespace": "ns", "name": n, "node": null,
                    "signal": "s", "role": "effect"})
            })
            .collect();
        let report: IncidentReport = serde_json::from_value(serde_json::json!({
            "id": id, "rule": rule, "title": format!("{rule} at {}", root.1),
            "severity": "warning", "status": "firing",
            "opened_at": at(opened), "first_seen": at(0), "last_seen": at(600),
            "root_cause": {"signal": "s", "summary": "", "attributes": {},
                "entity": {"kind": root.0, "namespace": "ns", "name": root.1, "node": null}},
            "affected": affected, "signals": 1, "version": 1,
            "explanation": {"rule": rule, "kind": "correlation",
                "window": {"before": "5m", "after": "30m"}, "ties": []}
        }))
        .unwrap();
        Found::new(report, Sent::default())
    }

    fn verdicts(entries: &[Entry]) -> Vec<(Verdict, String)> {
        entries
            .iter()
            .map(|e| (e.verdict, e.latest().unwrap().id.clone()))
            .collect()
    }

    #[test]
    fn the_same_incident_is_unchanged_and_the_others_removed_or_new() {
        let old = vec![
            found("a", "r1", ("Pod", "x"), 10, &["p1"]),
            found("b", "r2", ("Pod", "y"), 20, &["p2"]),
        ];
        let new = vec![
            found("a", "r1", ("Pod", "x"), 10, &["p1"]),
            found("c", "r3", ("Pod", "z"), 30, &["p3"]),
        ];
        let e = diff(old, new);
        assert_eq!(
            verdicts(&e),
            vec![
                (Verdict::Unchanged, "a".to_string()),
                (Verdict::Removed, "b".to_string()),
                (Verdict::New, "c".to_string()),
            ]
        );
        assert!(e.iter().all(|e| !e.slower));
    }

    #[test]
    fn a_later_opening_of_the_same_root_is_changed_and_slower() {
        // Another first record (another id), the same rule and root.
        let old = vec![found("a", "r", ("Node", "n1"), 45, &["p1", "p2"])];
        let new = vec![found("a2", "r", ("Node", "n1"), 120, &["p1", "p3"])];
        let e = diff(old, new);
        assert_eq!(e.len(), 1);
        let c = &e[0].changes;
        assert_eq!(e[0].verdict, Verdict::Changed);
        assert!(e[0].slower);
        assert_eq!(c.opened_shift, Some(Span::from_secs(75)));
        assert_eq!(c.affected_added, vec!["Pod ns/p3".to_string()]);
        assert_eq!(c.affected_removed, vec!["Pod ns/p2".to_string()]);
        assert!(c.title.is_none() && c.root.is_none());
    }

    #[test]
    fn a_moved_root_pairs_by_rule_time_and_shared_entities() {
        // `root: workload` became `root: entity`: the same failure.
        let old = vec![found("a", "r", ("Deployment", "web"), 10, &["p1", "p2"])];
        let new = vec![
            found("b", "r", ("Pod", "p9"), 10, &["p7"]),
            found("c", "r", ("Pod", "p1"), 10, &["p2"]),
        ];
        let e = diff(old, new);
        assert_eq!(
            verdicts(&e),
            vec![
                (Verdict::Changed, "c".to_string()),
                (Verdict::New, "b".to_string()),
            ],
            "same time and rule: by root"
        );
        let changed = &e[0].changes;
        let root = changed.root.as_ref().unwrap();
        assert_eq!(
            (root.old.name.as_str(), root.new.name.as_str()),
            ("web", "p1")
        );
        assert!(changed.title.is_some());
    }
}

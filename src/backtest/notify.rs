//! What people would have been told: the outbox's notification policy
//! (`sinks::notify::policy`) run over the incident changes one engine forms,
//! with event time as the policy's clock.
//!
//! Changes are formed per engine step as `serve`'s pipeline forms them
//! (`src/serve/pipeline.rs`, `render`): the latest change per surviving
//! incident (an opening stays an opening), and a `merged` change for an
//! announced incident folded into another. The policy decides on each as
//! the outbox does: a throttled update is *deferred* to the end of the
//! throttle and decided again then on the incident's latest state; what was
//! deferred when the input ends is decided at its due time, as a running
//! service would. Routes and receivers are not modelled: a notification is
//! one decision to tell, whoever hears it, and a notification still queued
//! for a slow receiver that absorbs a newer one counts twice here.

use std::collections::BTreeSet;

use correlate::incident::Change;
use correlate::{Engine, EventTime, IncidentReport, IncidentUpdate};
use rustc_hash::FxHashMap;
use serde::Serialize;
use sinks::change::{ChangeKind, IncidentChange};
use sinks::notify::Event;
use sinks::notify::policy::{Decision, Policy, Told, WallMicros};

/// Notifications of one incident, by what they told.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) opened: u32,
    pub(crate) updated: u32,
    pub(crate) resolved: u32,
}

/// `{"opened": 1, "updated": 2, "resolved": 1, "total": 4}`.
impl Serialize for Sent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Sent", 4)?;
        st.serialize_field("opened", &self.opened)?;
        st.serialize_field("updated", &self.updated)?;
        st.serialize_field("resolved", &self.resolved)?;
        st.serialize_field("total", &self.total())?;
        st.end()
    }
}

impl Sent {
    pub(crate) fn total(self) -> u32 {
        self.opened + self.updated + self.resolved
    }

    pub(crate) fn add(&mut self, other: Sent) {
        self.opened += other.opened;
        self.updated += other.updated;
        self.resolved += other.resolved;
    }

    /// "3 (1 opened, 1 updated, 1 resolved)", or "none".
    pub(crate) fn describe(self) -> String {
        if self.total() == 0 {
            return "none".to_string();
        }
        let parts: Vec<String> = [
            (self.opened, "opened"),
            (self.updated, "updated"),
            (self.resolved, "resolved"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        format!("{} ({})", self.total(), parts.join(", "))
    }
}

/// The policy's memory, per incident id, as the outbox keeps it.
#[derive(Debug)]
pub(crate) struct Notifier {
    policy: Policy,
    told: FxHashMap<String, Told>,
    /// Throttled updates: due time and the latest change, per incident.
    deferred: FxHashMap<String, (WallMicros, IncidentChange)>,
    /// The same, in the order they fall due.
    due: BTreeSet<(WallMicros, String)>,
    sent: FxHashMap<String, Sent>,
}

impl Notifier {
    pub(crate) fn new(policy: Policy) -> Notifier {
        Notifier {
            policy,
            told: FxHashMap::default(),
            deferred: FxHashMap::default(),
            due: BTreeSet::new(),
            sent: FxHashMap::default(),
        }
    }

    /// Decides on the changes one engine step formed.
    pub(crate) fn apply(&mut self, engine: &Engine, updates: &[IncidentUpdate]) {
        if updates.is_empty() {
            return;
        }
        let store = engine.store();
        let mut latest: Vec<(usize, Change, EventTime)> = Vec::new();
        let mut merged: Vec<(usize, EventTime)> = Vec::new();
        for u in updates {
            if u.change == Change::Merged {
                let folded = store.get(u.incident);
                if folded.status != correlate::Status::Pending
                    && !merged.iter().any(|(i, _)| *i == u.incident)
                {
                    merged.push((u.incident, u.at));
                }
                continue;
            }
            let root = store.find(u.incident);
            match latest.iter_mut().find(|(i, ..)| *i == root) {
                Some((_, c, at)) => {
                    if *c != Change::Opened {
                        *c = u.change;
                    }
                    *at = (*at).max(u.at);
                }
                None => latest.push((root, u.change, u.at)),
            }
        }
        for (idx, at) in merged {
            let folded = store.get(idx);
            // Nothing was told of it: folding it in tells nothing either
            // (and a deferred update always has a `told`).
            if self.told.get(&folded.id).is_none_or(|t| t.closed) {
                continue;
            }
            let survivor = store.get(store.find(idx));
            self.decide(
                IncidentChange {
                    change: ChangeKind::Merged,
                    merged_into: Some(survivor.id.clone()),
                    incident: IncidentReport::new(folded),
                },
                at.as_micros(),
            );
        }
        for (idx, change, at) in latest {
            let inc = store.get(idx);
            if !inc.is_reported() || self.told.get(&inc.id).is_some_and(|t| t.closed) {
                continue;
            }
            self.decide(
                IncidentChange {
                    change: ChangeKind::from(change),
                    merged_into: None,
                    incident: IncidentReport::new(inc),
                },
                at.as_micros(),
            );
        }
    }

    /// The input ended: what is still deferred is decided at its due time.
    pub(crate) fn finish(&mut self) {
        self.release(WallMicros::MAX);
    }

    /// Decides on a change at `now`, after what fell due before it.
    fn decide(&mut self, change: IncidentChange, now: WallMicros) {
        self.release(now);
        self.decide_now(change, now);
    }

    fn decide_now(&mut self, change: IncidentChange, now: WallMicros) {
        let id = change.incident.id.clone();
        match self.policy.decide(self.told.get(&id), &change, now) {
            Decision::Quiet => {
                // A deferred update is decided again on the latest state.
                if let Some(held) = self.deferred.get_mut(&id) {
                    held.1 = change;
                }
            }
            Decision::Defer { due } => {
                if let Some((old, _)) = self.deferred.remove(&id) {
                    self.due.remove(&(old, id.clone()));
                }
                self.due.insert((due, id.clone()));
                self.deferred.insert(id, (due, change));
            }
            Decision::Send { notification, told } => {
                let sent = self.sent.entry(id.clone()).or_default();
                match notification.event {
                    Event::Opened => sent.opened += 1,
                    Event::Updated => sent.updated += 1,
                    Event::Resolved => sent.resolved += 1,
                }
                if let Some((old, _)) = self.deferred.remove(&id) {
                    self.due.remove(&(old, id.clone()));
                }
                self.told.insert(id, told);
            }
        }
    }

    /// Decides again on every deferred update due by `now`, in due order.
    fn release(&mut self, now: WallMicros) {
        while let Some((due, id)) = self.due.first().cloned() {
            if due > now {
                break;
            }
            self.due.remove(&(due, id.clone()));
            if let Some((_, change)) = self.deferred.remove(&id) {
                self.decide_now(change, due);
            }
        }
    }

    /// What was sent about incident `id`.
    pub(crate) fn sent(&self, id: &str) -> Sent {
        self.sent.get(id).copied().unwrap_or_default()
    }

    /// Every notification, folded incidents' included.
    pub(crate) fn total(&self) -> Sent {
        let mut all = Sent::default();
        for s in self.sent.values() {
            all.add(*s);
        }
        all
    }
}

//! How busy each pod's logs are, for rules about a peer that falls silent.
//!
//! Every log line updates its pod's recent line times (a small sorted ring,
//! so arrival order within the lateness bound does not matter) and the
//! membership of its workload. Queries always ask "as of event time t", so
//! lines that arrived early but lie after t are not counted.

use std::collections::{BTreeSet, VecDeque};
use std::hash::Hasher;

use rustc_hash::{FxHashMap, FxHasher};

use crate::incident::entity_key;
use crate::model::{Entity, Event};
use crate::time::{EventTime, Span};

/// Lines remembered per pod: enough to judge "busy" over any lookback a rule
/// may ask for at the rates that matter.
const RING: usize = 64;

#[derive(Debug)]
pub(super) struct PodActivity {
    pub(super) entity: Entity<'static>,
    pub(super) times: VecDeque<EventTime>,
}

#[derive(Debug, Default)]
pub(crate) struct Activity {
    pub(super) pods: FxHashMap<u64, PodActivity>,
    /// Workload key -> its pods' hashes, in key order.
    pub(super) members: FxHashMap<String, BTreeSet<(String, u64)>>,
    pub(crate) max_pods: usize,
    pub(crate) evicted: u64,
}

fn pod_hash(e: &Entity<'_>) -> u64 {
    let mut h = FxHasher::default();
    h.write(e.namespace.as_deref().unwrap_or("").as_bytes());
    h.write_u8(0);
    h.write(e.name.as_bytes());
    h.finish()
}

impl Activity {
    pub(crate) fn with_cap(max_pods: usize) -> Activity {
        Activity {
            max_pods,
            ..Activity::default()
        }
    }

    pub(crate) fn observe(&mut self, ev: &Event<'_>) {
        let h = pod_hash(&ev.entity);
        if let Some(p) = self.pods.get_mut(&h) {
            insert_sorted(&mut p.times, ev.time);
            return;
        }
        if self.max_pods > 0 && self.pods.len() >= self.max_pods {
            self.evicted += 1;
            return;
        }
        let entity = ev.entity.clone().into_owned();
        let workload = entity_key(&entity.workload());
        self.members
            .entry(workload)
            .or_default()
            .insert((entity_key(&entity), h));
        let mut times = VecDeque::with_capacity(8);
        times.push_back(ev.time);
        self.pods.insert(h, PodActivity { entity, times });
    }

    /// The pods of a workload that have logged, in key order.
    pub(crate) fn members(&self, workload_key: &str) -> Vec<(String, u64)> {
        self.members
            .get(workload_key)
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn entity(&self, pod: u64) -> Option<&Entity<'static>> {
        self.pods.get(&pod).map(|p| &p.entity)
    }

    /// The pod's last line at or before `t`.
    pub(crate) fn last_before(&self, pod: u64, t: EventTime) -> Option<EventTime> {
        let p = self.pods.get(&pod)?;
        p.times.iter().rev().find(|x| **x <= t).copied()
    }

    /// Lines the pod logged in `[end - span, end]`.
    pub(crate) fn lines_in(&self, pod: u64, end: EventTime, span: Span) -> u64 {
        let start = end.saturating_sub(span);
        self.pods.get(&pod).map_or(0, |p| {
            p.times
                .iter()
                .filter(|x| **x >= start && **x <= end)
                .count() as u64
        })
    }

    /// The pod's first line in `(after, upto]`, if it logged again.
    pub(crate) fn first_after(
        &self,
        pod: u64,
        after: EventTime,
        upto: EventTime,
    ) -> Option<EventTime> {
        let p = self.pods.get(&pod)?;
        p.times.iter().find(|x| **x > after && **x <= upto).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.pods.len()
    }
}

fn insert_sorted(times: &mut VecDeque<EventTime>, t: EventTime) {
    let pos = times.iter().rposition(|x| *x <= t).map_or(0, |p| p + 1);
    if pos == 0 && times.len() >= RING {
        return; // older than everything remembered
    }
    times.insert(pos, t);
    if times.len() > RING {
        times.pop_front();
    }
}

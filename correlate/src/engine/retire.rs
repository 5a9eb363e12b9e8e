//! Retention: resolved incidents leave the engine.
//!
//! The store is a vector indexed by [`IncidentIdx`] (a union-find: folded
//! incidents forward to their survivor), so an incident cannot simply be
//! removed. Retiring compacts it: every incident that may still matter is
//! kept, in its order, and every index that points into the store (the
//! forwarding links, the root and member indexes, the pending updates,
//! cause groups, absence rules) is rewritten. What may still matter:
//!
//! - an incident a rule's state still names (an absence rule, a cause group
//!   whose incident is not resolved before the cutoff: groups of incidents
//!   resolved before it are dropped first, they take nothing any more);
//! - an incident whose survivor is firing, pending and named by a rule's
//!   state, or resolved after the cutoff;
//! - an incident a change not yet returned to the caller names (it
//!   resolved in the same step as the cutoff passed it);
//! - every incident on the forwarding chain of one kept.
//!
//! Everything else is resolved before the cutoff (it can never change
//! again: only firing incidents merge or take members), or pending with no
//! rule state left to open it. Order is kept, so the output of the engine
//! stays deterministic.

use rustc_hash::FxHashSet;

use super::Engine;
use crate::incident::{IncidentIdx, IncidentStore, Status};
use crate::time::EventTime;

impl Engine {
    /// Retires incidents resolved before `cutoff`.
    pub(super) fn retire(&mut self, cutoff: EventTime) {
        // A cause group whose incident resolved takes no effect and resolves
        // nothing any more (both ask whether its incident is live); kept a
        // while by housekeeping, it would keep its incident here too.
        let store = &self.store;
        let gone = |i: IncidentIdx| {
            let inc = store.get(store.find(i));
            inc.status == Status::Resolved && inc.resolved_at.is_some_and(|at| at < cutoff)
        };
        for c in &mut self.correlations {
            let before = c.groups.len();
            c.groups.retain(|_, g| !gone(g.incident));
            if c.groups.len() != before {
                let groups = &c.groups;
                c.joiner.retain_groups(|g| groups.contains_key(g));
            }
        }
        let mut named: FxHashSet<IncidentIdx> = FxHashSet::default();
        for c in &self.correlations {
            named.extend(c.groups.values().map(|g| g.incident));
        }
        named.extend(self.absences.iter().filter_map(|a| a.incident));
        let Some(remap) = self.store.retire(cutoff, &named) else {
            return;
        };
        let moved = |i: IncidentIdx| remap[i].unwrap_or(i);
        for c in &mut self.correlations {
            for g in c.groups.values_mut() {
                g.incident = moved(g.incident);
            }
        }
        for a in &mut self.absences {
            a.incident = a.incident.map(moved);
        }
        let retired = remap.iter().filter(|r| r.is_none()).count() as u64;
        self.retired_incidents += retired;
        tracing::debug!(
            retired,
            kept = self.store.len(),
            "resolved incidents retired"
        );
    }
}

impl IncidentStore {
    /// Compacts the store (see the module docs); the new index of each old
    /// one (`None`: retired), or `None` when nothing was retired.
    pub(crate) fn retire(
        &mut self,
        cutoff: EventTime,
        named: &FxHashSet<IncidentIdx>,
    ) -> Option<Vec<Option<IncidentIdx>>> {
        let n = self.incidents.len();
        // A change not yet handed to the caller keeps its incident until
        // it is: an incident may resolve and pass the cutoff in one step
        // (a record hours after the last), and its resolution must still
        // be told.
        let reporting: FxHashSet<IncidentIdx> = self
            .updates
            .iter()
            .flat_map(|u| [u.incident, self.find(u.incident)])
            .collect();
        let survives = |i: IncidentIdx| {
            let inc = &self.incidents[i];
            reporting.contains(&i)
                || match inc.status {
                    Status::Firing => true,
                    Status::Pending => named.contains(&i),
                    Status::Resolved => inc.resolved_at.is_none_or(|at| at >= cutoff),
                }
        };
        let mut keep = vec![false; n];
        for i in 0..n {
            if keep[i] || !(named.contains(&i) || survives(self.find(i))) {
                continue;
            }
            let mut j = i;
            loop {
                keep[j] = true;
                match self.incidents[j].merged_into {
                    Some(next) if !keep[next] => j = next,
                    _ => break,
                }
            }
        }
        if keep.iter().all(|k| *k) {
            return None;
        }
        let mut remap: Vec<Option<IncidentIdx>> = vec![None; n];
        let mut next = 0;
        for (i, k) in keep.iter().enumerate() {
            if *k {
                remap[i] = Some(next);
                next += 1;
            }
        }
        let old = std::mem::take(&mut self.incidents);
        self.incidents = old
            .into_iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(mut inc, _)| {
                // A kept incident's survivor is kept (the chain is closed).
                inc.merged_into = inc.merged_into.and_then(|s| remap[s]);
                inc
            })
            .collect();
        for index in [&mut self.by_root, &mut self.by_affected] {
            index.retain(|_, list| {
                list.retain_mut(|i| match remap[*i] {
                    Some(new) => {
                        *i = new;
                        true
                    }
                    None => false,
                });
                !list.is_empty()
            });
            index.shrink_to_fit();
        }
        self.updates.retain_mut(|u| match remap[u.incident] {
            Some(new) => {
                u.incident = new;
                true
            }
            None => false,
        });
        Some(remap)
    }
}

//! Two engines fed the same decoded records: the records are read and
//! decoded once (`replay`'s [`Replayer`](crate::replay::Replayer), the
//! costly half), and each event is pushed to the OLD pack's engine, then to
//! the NEW pack's. Each engine's incident changes go to its own
//! notification policy. Each pack has an engine per cluster, as replay
//! does.

use std::sync::Arc;

use correlate::rules::RuleSet;
use correlate::{Clusters, EngineConfig, Event, EventTime, Lane};
use sinks::notify::policy::Policy;

use super::notify::Notifier;
use crate::replay::Correlate;

/// One pack's engines (one per cluster) and what their incidents would
/// have told.
#[derive(Debug)]
pub(crate) struct Side {
    pub(crate) clusters: Clusters,
    pub(crate) notifier: Notifier,
}

impl Side {
    fn new(rules: Arc<RuleSet>, config: EngineConfig, policy: Policy) -> Side {
        Side {
            clusters: Clusters::new(rules, config),
            notifier: Notifier::new(policy),
        }
    }

    /// Flushes every window, and decides what was still deferred.
    fn finish(&mut self) {
        for lane in 0..self.clusters.len() {
            let updates = self.clusters.engine_mut(lane).finish();
            self.notifier.apply(self.clusters.engine(lane), &updates);
        }
        self.notifier.finish();
    }
}

impl Correlate for Side {
    fn add_cluster(&mut self, cluster: Option<&str>) {
        self.clusters.lane(cluster);
    }

    #[inline]
    fn observe(&mut self, lane: Lane, time: EventTime) {
        let updates = self.clusters.engine_mut(lane).observe(time);
        self.notifier.apply(self.clusters.engine(lane), &updates);
    }

    #[inline]
    fn push(&mut self, lane: Lane, event: &Event<'_>) {
        let updates = self.clusters.engine_mut(lane).push(event);
        self.notifier.apply(self.clusters.engine(lane), &updates);
    }
}

/// OLD and NEW, fed in step.
#[derive(Debug)]
pub(crate) struct Pair {
    pub(crate) old: Side,
    pub(crate) new: Side,
}

impl Pair {
    pub(crate) fn new(
        old: Arc<RuleSet>,
        new: Arc<RuleSet>,
        config: &EngineConfig,
        policy: &Policy,
    ) -> Pair {
        Pair {
            old: Side::new(old, config.clone(), policy.clone()),
            new: Side::new(new, config.clone(), policy.clone()),
        }
    }

    pub(crate) fn finish(&mut self) {
        self.old.finish();
        self.new.finish();
    }
}

impl Correlate for Pair {
    fn add_cluster(&mut self, cluster: Option<&str>) {
        self.old.add_cluster(cluster);
        self.new.add_cluster(cluster);
    }

    #[inline]
    fn observe(&mut self, lane: Lane, time: EventTime) {
        self.old.observe(lane, time);
        self.new.observe(lane, time);
    }

    #[inline]
    fn push(&mut self, lane: Lane, event: &Event<'_>) {
        self.old.push(lane, event);
        self.new.push(lane, event);
    }
}

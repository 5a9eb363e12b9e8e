//! Two engines fed the same decoded records: the records are read and
//! decoded once (`replay`'s [`Replayer`](crate::replay::Replayer), the
//! costly half), and each event is pushed to the OLD pack's engine, then to
//! the NEW pack's. Each engine's incident changes go to its own
//! notification policy.

use std::sync::Arc;

use correlate::rules::RuleSet;
use correlate::{Engine, EngineConfig, Event, EventTime};
use sinks::notify::policy::Policy;

use super::notify::Notifier;
use crate::replay::Correlate;

/// One pack's engine and what its incidents would have told.
#[derive(Debug)]
pub(crate) struct Side {
    pub(crate) engine: Engine,
    pub(crate) notifier: Notifier,
}

impl Side {
    fn new(rules: Arc<RuleSet>, config: EngineConfig, policy: Policy) -> Side {
        Side {
            engine: Engine::new(rules, config),
            notifier: Notifier::new(policy),
        }
    }

    /// Flushes every window, and decides what was still deferred.
    fn finish(&mut self) {
        let updates = self.engine.finish();
        self.notifier.apply(&self.engine, &updates);
        self.notifier.finish();
    }
}

impl Correlate for Side {
    #[inline]
    fn observe(&mut self, time: EventTime) {
        let updates = self.engine.observe(time);
        self.notifier.apply(&self.engine, &updates);
    }

    #[inline]
    fn push(&mut self, event: &Event<'_>) {
        let updates = self.engine.push(event);
        self.notifier.apply(&self.engine, &updates);
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
    #[inline]
    fn observe(&mut self, time: EventTime) {
        self.old.observe(time);
        self.new.observe(time);
    }

    #[inline]
    fn push(&mut self, event: &Event<'_>) {
        self.old.push(event);
        self.new.push(event);
    }
}

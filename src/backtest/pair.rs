//! Two engines fed the same decoded records: the records are read and
//! decoded once (`replay`'s [`Replayer`](crate::replay::Replayer), the
//! costly half), and each event is pushed to the OLD pack's engine, then to
//! the NEW pack's. When both packs classify alike (the same signals: a
//! change to correlations or absence rules only), each record is also
//! classified once, and both engines take its hits. Each engine's incident
//! changes go to its own notification policy.
//!
//! Feeding NEW's engine on a thread of its own was tried and was slower on
//! two cores: the reader thread and the first engine already fill both
//! (BENCHMARKS.md, "Backtest").

use std::sync::Arc;

use correlate::rules::RuleSet;
use correlate::{Engine, EngineConfig, Event, EventTime, Hit};
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

impl Side {
    #[inline]
    fn push_classified(&mut self, event: &Event<'_>, hits: &[Hit]) {
        let updates = self.engine.push_classified(event, hits);
        self.notifier.apply(&self.engine, &updates);
    }
}

/// OLD and NEW, fed in step.
#[derive(Debug)]
pub(crate) struct Pair {
    pub(crate) old: Side,
    pub(crate) new: Side,
    /// Both packs classify alike: each record is classified once, by OLD's
    /// classifier, into `hits`.
    shared: bool,
    hits: Vec<Hit>,
}

impl Pair {
    pub(crate) fn new(
        old: Arc<RuleSet>,
        new: Arc<RuleSet>,
        config: &EngineConfig,
        policy: &Policy,
    ) -> Pair {
        let old = Side::new(old, config.clone(), policy.clone());
        let new = Side::new(new, config.clone(), policy.clone());
        let shared = old
            .engine
            .classifier()
            .classifies_like(new.engine.classifier());
        Pair {
            old,
            new,
            shared,
            hits: Vec::new(),
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
        if !self.shared {
            self.old.push(event);
            self.new.push(event);
            return;
        }
        self.hits.clear();
        self.old.engine.classifier().classify(event, &mut self.hits);
        self.old.push_classified(event, &self.hits);
        self.new.push_classified(event, &self.hits);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::BufReader;
    use std::path::Path;

    use correlate::IncidentReport;

    use super::*;
    use crate::replay::Replayer;

    /// Every incident of both sides, as replay prints them, and how many
    /// notifications each side would send.
    fn run(pack: &Arc<RuleSet>, inputs: &[&str], shared: bool) -> Vec<String> {
        let mut pair = Pair::new(
            pack.clone(),
            pack.clone(),
            &EngineConfig::default(),
            &Policy::default(),
        );
        assert!(pair.shared, "one pack on both sides classifies alike");
        pair.shared = shared;
        let mut replayer = Replayer::with(pair);
        for input in inputs {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(input);
            let file = BufReader::new(std::fs::File::open(&path).unwrap());
            replayer.feed(input, file, None).unwrap();
        }
        let (mut pair, ..) = replayer.into_parts();
        pair.finish();
        let mut out = Vec::new();
        for side in [&pair.old, &pair.new] {
            for inc in side.engine.incidents() {
                out.push(serde_json::to_string(&IncidentReport::new(inc)).unwrap());
            }
            out.push(format!("{:?}", side.notifier.total()));
        }
        out
    }

    /// Hits classified once and given to both engines form exactly what
    /// each engine classifying on its own forms.
    #[test]
    fn one_classification_for_both_forms_what_two_form() {
        let pack = crate::rules_cmd::load(&[], true).unwrap().rules;
        let inputs = [
            "examples/nfs-csi-cascade.ndjson",
            "tests/scenarios/combo-cert-and-bad-rollout/input.ndjson",
            "tests/scenarios/combo-dns-and-diskpressure/input.ndjson",
        ];
        let alone = run(&pack, &inputs, false);
        assert!(alone.len() > 4, "the inputs form incidents: {alone:?}");
        assert_eq!(run(&pack, &inputs, true), alone);
    }

    /// Packs classify alike only with the same signals, and the same of
    /// them read for their summaries.
    #[test]
    fn packs_classify_alike_only_with_the_same_signals_read_the_same_way() {
        let compile = |text: &str| {
            Arc::new(
                correlate::rules::compile(&[correlate::rules::RuleSource {
                    name: "t.yaml".into(),
                    text: text.into(),
                }])
                .unwrap(),
            )
        };
        let signals = "signals:\n  - id: oom\n    match: {source: pod, reason: OOMKilled}\n  - id: evicted\n    match: {source: pod, reason: Evicted}\n";
        let cause = |s: &str| {
            format!(
                "{signals}correlations:\n  - id: c\n    cause: {{signals: [{s}]}}\n    min_effects: 0\n    title: t\n"
            )
        };
        let like = |a: &str, b: &str| {
            let (a, b) = (compile(a), compile(b));
            Engine::new(a, EngineConfig::default())
                .classifier()
                .classifies_like(Engine::new(b, EngineConfig::default()).classifier())
        };
        let retitled = cause("oom").replace("title: t", "title: other");
        assert!(like(&cause("oom"), &retitled));
        // `evicted` becomes a cause: its hits now carry a summary.
        assert!(!like(&cause("oom"), &cause("evicted")));
        let edited = cause("oom").replace("reason: Evicted", "reason: Preempted");
        assert!(!like(&cause("oom"), &edited));
    }
}

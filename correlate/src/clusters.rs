//! Many clusters: one [`Engine`] per cluster, in the order they were met.
//!
//! The cluster is the unit of correlation: no cascade crosses two clusters,
//! and every rule stays correct when one engine sees all of a cluster's
//! records. So a cluster is not a key threaded through the engine's
//! indexes: it is an engine of its own. Entities, the object graph,
//! windows, joins and absence state are per cluster by construction (the
//! same pod name in two clusters is two entities), and each engine's
//! incidents carry its cluster's name, which their ids include. An engine
//! with no name is the one unnamed cluster: its incidents, ids and output
//! are what they were before clusters existed.
//!
//! What is read across clusters is here too, with one order for all:
//! incidents by `opened_at`, then cluster, then id, whichever order the
//! clusters' records came in.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::engine::GuardStats;
use crate::rules::RuleSet;
use crate::{Engine, EngineConfig, EngineGauges, EngineStats, Incident};

/// A cluster's place among [`Clusters`].
pub type Lane = usize;

/// An engine per cluster.
#[derive(Debug)]
pub struct Clusters {
    rules: Arc<RuleSet>,
    config: EngineConfig,
    engines: Vec<Engine>,
    named: FxHashMap<Box<str>, Lane>,
    unnamed: Option<Lane>,
}

impl Clusters {
    /// No cluster yet; each is added when first met ([`Clusters::lane`]),
    /// with `config` and its name.
    pub fn new(rules: Arc<RuleSet>, config: EngineConfig) -> Clusters {
        Clusters {
            rules,
            config,
            engines: Vec::new(),
            named: FxHashMap::default(),
            unnamed: None,
        }
    }

    /// The lane of `cluster` (`None`: the unnamed one), if it was met.
    pub fn find(&self, cluster: Option<&str>) -> Option<Lane> {
        match cluster {
            None => self.unnamed,
            Some(name) => self.named.get(name).copied(),
        }
    }

    /// The lane of `cluster`, and whether it is new (an engine was added).
    pub fn lane(&mut self, cluster: Option<&str>) -> (Lane, bool) {
        if let Some(lane) = self.find(cluster) {
            return (lane, false);
        }
        let config = EngineConfig {
            cluster: cluster.map(str::to_owned),
            ..self.config.clone()
        };
        (self.add(Engine::new(self.rules.clone(), config)), true)
    }

    /// Adds an engine restored elsewhere (a checkpoint), under the cluster
    /// its config names. Err with the engine when that cluster is here
    /// already.
    pub fn insert(&mut self, engine: Engine) -> Result<Lane, Box<Engine>> {
        if self.find(engine.config().cluster.as_deref()).is_some() {
            return Err(Box::new(engine));
        }
        Ok(self.add(engine))
    }

    /// `engine` as the next lane, under the cluster its config names (not
    /// here yet).
    fn add(&mut self, engine: Engine) -> Lane {
        let lane = self.engines.len();
        match &engine.config().cluster {
            None => self.unnamed = Some(lane),
            Some(name) => {
                self.named.insert(name.as_str().into(), lane);
            }
        }
        self.engines.push(engine);
        lane
    }

    /// Takes a cluster's engine out (its state moves to another replica);
    /// the lanes after it move down by one, in the same order.
    pub fn remove(&mut self, lane: Lane) -> Engine {
        let engine = self.engines.remove(lane);
        self.reindex();
        engine
    }

    /// Every engine, in lane order, to move them elsewhere.
    pub fn into_engines(self) -> Vec<Engine> {
        self.engines
    }

    fn reindex(&mut self) {
        self.named.clear();
        self.unnamed = None;
        for (lane, engine) in self.engines.iter().enumerate() {
            match &engine.config().cluster {
                None => self.unnamed = Some(lane),
                Some(name) => {
                    self.named.insert(name.as_str().into(), lane);
                }
            }
        }
    }

    /// Every cluster's engine started afresh, in the same lanes (state
    /// that cannot be trusted is dropped, the clusters stay).
    pub fn reset(&mut self) {
        for e in &mut self.engines {
            let config = e.config().clone();
            *e = Engine::new(self.rules.clone(), config);
        }
    }

    pub fn engine(&self, lane: Lane) -> &Engine {
        &self.engines[lane]
    }

    pub fn engine_mut(&mut self, lane: Lane) -> &mut Engine {
        &mut self.engines[lane]
    }

    /// Every cluster's engine, in lane order.
    pub fn iter(&self) -> impl Iterator<Item = &Engine> {
        self.engines.iter()
    }

    pub fn len(&self) -> usize {
        self.engines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.engines.is_empty()
    }

    /// Every cluster's reported incidents, by `opened_at`, then cluster
    /// (the unnamed one first), then id: one order whatever the order the
    /// clusters were met in. With one cluster, [`Engine::incidents`].
    pub fn incidents(&self) -> Vec<&Incident> {
        if let [one] = self.engines.as_slice() {
            return one.incidents();
        }
        let mut v: Vec<&Incident> = self.engines.iter().flat_map(Engine::incidents).collect();
        v.sort_by(|a, b| {
            a.opened_at
                .cmp(&b.opened_at)
                .then_with(|| a.cluster.cmp(&b.cluster))
                .then_with(|| a.id.cmp(&b.id))
        });
        v
    }

    /// The engines' counters, summed.
    pub fn stats(&self) -> EngineStats {
        let mut sum = EngineStats::default();
        for s in self.engines.iter().map(Engine::stats) {
            sum.records += s.records;
            sum.signals += s.signals;
            sum.late += s.late;
            sum.released_early += s.released_early;
            sum.unattached_effects += s.unattached_effects;
            sum.evicted_effects += s.evicted_effects;
            sum.tracked_pods_over_cap += s.tracked_pods_over_cap;
        }
        sum
    }

    /// The engines' state sizes, summed.
    pub fn gauges(&self) -> EngineGauges {
        let mut sum = EngineGauges::default();
        for g in self.engines.iter().map(Engine::gauges) {
            sum.buffered += g.buffered;
            sum.held_effects += g.held_effects;
            sum.held_bytes += g.held_bytes;
            sum.states += g.states;
            sum.tracked_pods += g.tracked_pods;
            sum.incidents += g.incidents;
            sum.retired_incidents += g.retired_incidents;
            sum.graph.nodes += g.graph.nodes;
            sum.graph.edges += g.graph.edges;
            sum.graph.evicted += g.graph.evicted;
        }
        sum
    }

    /// The time guards' counters, summed.
    pub fn guard_stats(&self) -> GuardStats {
        let mut sum = GuardStats::default();
        for g in self.engines.iter().map(Engine::guard_stats) {
            sum.clamped += g.clamped;
            sum.confirmed += g.confirmed;
            sum.ignored += g.ignored;
            sum.held += g.held;
        }
        sum
    }

    /// Signals classified so far, per signal id, over every cluster (the
    /// engines share one rule pack, so one order).
    pub fn signal_counts(&self) -> Vec<(String, u64)> {
        let mut engines = self.engines.iter();
        let Some(first) = engines.next() else {
            return Vec::new();
        };
        let mut sum = first.signal_counts();
        for e in engines {
            for ((_, n), (_, m)) in sum.iter_mut().zip(e.signal_counts()) {
                *n += m;
            }
        }
        sum
    }

    /// The newest event time any cluster's engine has seen.
    pub fn max_time(&self) -> crate::EventTime {
        self.engines
            .iter()
            .map(Engine::max_time)
            .max()
            .unwrap_or(crate::EventTime::MIN)
    }

    /// The rule pack every cluster's engine runs.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// The configuration every new cluster's engine gets (its name aside).
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(c: &Clusters) -> Vec<Option<String>> {
        c.iter().map(|e| e.config().cluster.clone()).collect()
    }

    #[test]
    fn a_removed_lane_moves_the_later_ones_down_and_each_name_finds_its_own() {
        let mut c = Clusters::new(Arc::new(RuleSet::default()), EngineConfig::default());
        for name in [Some("a"), None, Some("b"), Some("c")] {
            c.lane(name);
        }
        let gone = c.remove(1);
        assert_eq!(gone.config().cluster, None);
        assert_eq!(
            names(&c),
            [Some("a".into()), Some("b".into()), Some("c".into())]
        );
        assert_eq!(c.find(None), None);
        assert_eq!(c.find(Some("a")), Some(0));
        assert_eq!(c.find(Some("b")), Some(1));
        assert_eq!(c.find(Some("c")), Some(2));
        // The removed cluster comes back as the last lane.
        assert_eq!(c.insert(gone).ok(), Some(3));
        assert_eq!(c.find(None), Some(3));
        assert!(
            c.insert(Engine::new(c.rules().clone(), c.config().clone()))
                .is_err()
        );
    }
}

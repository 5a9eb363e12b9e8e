//! A decoder per cluster, and which cluster each record goes to.
//!
//! The decoder remembers Pod and Node states, Event counts, alert
//! deliveries and the topology, so like the engine it is per cluster:
//! lane `i` here is lane `i` of the [`correlate::Clusters`] it feeds. A
//! record's cluster is read from the parsed record
//! ([`ingest::Parsed::cluster`]), else given by where it came from
//! (`replay --cluster`, a source's configured name).

use correlate::Lane;
use ingest::{DecodeStats, Decoder, Limits, Parsed};
use rustc_hash::FxHashMap;

/// The default of `engine.max_clusters`.
pub(crate) const DEFAULT_MAX_CLUSTERS: usize = 1000;

/// A record of one cluster more than `engine.max_clusters` allows: a bad
/// or hostile `cluster` field must not grow state without bound. Its
/// records are reported, never correlated with another cluster's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cluster `{name}` would be one more than engine.max_clusters ({max}): its records are skipped"
)]
pub(crate) struct TooManyClusters {
    pub(crate) name: String,
    pub(crate) max: usize,
}

#[derive(Debug)]
pub(crate) struct Decoding {
    /// Each lane's cluster and decoder.
    decoders: Vec<(Option<Box<str>>, Decoder)>,
    named: FxHashMap<Box<str>, Lane>,
    unnamed: Option<Lane>,
    /// Alertmanager bodies split by cluster: each part was counted as a
    /// line (and a body) by its decoder.
    split_parts: u64,
    /// Each new decoder's bounds.
    limits: Limits,
    /// Clusters at most (`engine.max_clusters`).
    max: usize,
}

impl Default for Decoding {
    fn default() -> Decoding {
        Decoding::new(Limits::default(), DEFAULT_MAX_CLUSTERS)
    }
}

impl Decoding {
    /// No cluster yet; each new one's decoder bounded by `limits`, at most
    /// `max_clusters` of them.
    pub(crate) fn new(limits: Limits, max_clusters: usize) -> Decoding {
        Decoding {
            decoders: Vec::new(),
            named: FxHashMap::default(),
            unnamed: None,
            split_parts: 0,
            limits,
            max: max_clusters.max(1),
        }
    }

    /// The lane of `cluster` (`None`: the unnamed one), and whether it is
    /// new: a cluster met for the first time gets a fresh decoder, and
    /// what the lanes feed must add it too. Err past `max_clusters`.
    pub(crate) fn lane(&mut self, cluster: Option<&str>) -> Result<(Lane, bool), TooManyClusters> {
        match self.find(cluster) {
            Some(lane) => Ok((lane, false)),
            None if self.decoders.len() >= self.max => Err(TooManyClusters {
                name: cluster.unwrap_or("(unnamed)").to_string(),
                max: self.max,
            }),
            None => Ok((self.insert(cluster, Decoder::new(self.limits)), true)),
        }
    }

    /// Adds a restored decoder as the next lane (a checkpoint's clusters,
    /// in their order).
    pub(crate) fn insert(&mut self, cluster: Option<&str>, decoder: Decoder) -> Lane {
        let lane = self.decoders.len();
        self.decoders.push((cluster.map(Into::into), decoder));
        match cluster {
            None => self.unnamed = Some(lane),
            Some(name) => {
                self.named.insert(name.into(), lane);
            }
        }
        lane
    }

    /// Takes a cluster's decoder out (its state moves to another replica);
    /// the lanes after it move down by one, as [`correlate::Clusters::remove`]
    /// moves the engines'.
    pub(crate) fn remove(&mut self, lane: Lane) -> (Option<Box<str>>, Decoder) {
        let removed = self.decoders.remove(lane);
        self.named.clear();
        self.unnamed = None;
        for (lane, (cluster, _)) in self.decoders.iter().enumerate() {
            match cluster {
                None => self.unnamed = Some(lane),
                Some(name) => {
                    self.named.insert(name.clone(), lane);
                }
            }
        }
        removed
    }

    /// Every lane's cluster and decoder, in lane order, to move them
    /// elsewhere.
    pub(crate) fn into_decoders(self) -> Vec<(Option<Box<str>>, Decoder)> {
        self.decoders
    }

    /// The lane of `cluster`, if it was met.
    pub(crate) fn find(&self, cluster: Option<&str>) -> Option<Lane> {
        match cluster {
            None => self.unnamed,
            Some(name) => self.named.get(name).copied(),
        }
    }

    /// No cluster yet, with the same bounds (a partition's state read on
    /// its own before its clusters join these).
    pub(crate) fn empty_like(&self) -> Decoding {
        Decoding::new(self.limits, self.max)
    }

    /// The bounds of each decoder.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    pub(crate) fn cluster(&self, lane: Lane) -> Option<&str> {
        self.decoders[lane].0.as_deref()
    }

    /// A lane's cluster and decoder.
    pub(crate) fn get(&self, lane: Lane) -> (Option<&str>, &Decoder) {
        let (cluster, decoder) = &self.decoders[lane];
        (cluster.as_deref(), decoder)
    }

    pub(crate) fn decoder(&mut self, lane: Lane) -> &mut Decoder {
        &mut self.decoders[lane].1
    }

    /// Every lane's cluster and decoder, in lane order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Option<&str>, &Decoder)> {
        self.decoders.iter().map(|(c, d)| (c.as_deref(), d))
    }

    /// An Alertmanager body holding several clusters' alerts, split
    /// ([`Parsed::split_by_cluster`]): the other clusters' parts.
    pub(crate) fn split<'l>(&mut self, parsed: &mut ingest::Result<Parsed<'l>>) -> Vec<Parsed<'l>> {
        let Ok(p) = parsed else {
            return Vec::new();
        };
        let parts = p.split_by_cluster();
        self.split_parts += parts.len() as u64;
        parts
    }

    /// Every decoder's counters, summed; a split body counts once.
    pub(crate) fn stats(&self) -> DecodeStats {
        let mut sum = DecodeStats::default();
        for d in self.decoders.iter().map(|(_, d)| d.stats()) {
            sum.lines += d.lines;
            sum.blank += d.blank;
            sum.errors += d.errors;
            sum.k8s_events += d.k8s_events;
            sum.pods += d.pods;
            sum.nodes += d.nodes;
            sum.volumes += d.volumes;
            sum.alert_bodies += d.alert_bodies;
            sum.alerts += d.alerts;
            sum.vector_logs += d.vector_logs;
            sum.fluent_bit_logs += d.fluent_bit_logs;
            sum.events += d.events;
            sum.duplicates += d.duplicates;
            sum.unchanged += d.unchanged;
            sum.evictions += d.evictions;
        }
        sum.lines = sum.lines.saturating_sub(self.split_parts);
        sum.alert_bodies = sum.alert_bodies.saturating_sub(self.split_parts);
        sum
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_lane_moves_the_later_ones_down_as_the_engines_do() {
        let mut d = Decoding::default();
        for name in [Some("a"), None, Some("b")] {
            d.lane(name).unwrap();
        }
        let (name, _) = d.remove(0);
        assert_eq!(name.as_deref(), Some("a"));
        assert_eq!(d.find(None), Some(0));
        assert_eq!(d.find(Some("b")), Some(1));
        assert_eq!(d.find(Some("a")), None);
        assert_eq!(d.get(1).0, Some("b"));
        // Met again, it is a new lane at the end.
        assert_eq!(d.lane(Some("a")).unwrap(), (2, true));
    }
}

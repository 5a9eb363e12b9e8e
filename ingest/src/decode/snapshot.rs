//! Checkpoint and restore of the [`Decoder`]'s memory: the topology cache,
//! the last state of each Pod and Node, each Kubernetes Event's count and
//! time, the alert deliveries seen, and the counters.
//!
//! Without it a restarted `serve` would take the relist of every Event it
//! had already seen for new occurrences, every redelivered Alertmanager body
//! for new alerts, and every Pod for a first sighting.
//!
//! The design choice: the bounded tables are saved generation by
//! generation ([`crate::bounded::Bounded`]), keyed by the same stable hashes
//! they use in memory, so a restored decoder evicts exactly what the
//! uninterrupted one would have. The bytes use [`correlate::checkpoint`]'s
//! format (header, version, checksum); tables are written sorted, so the
//! same state always gives the same bytes. Restoring cannot fail: any
//! decoded snapshot is a valid decoder state.

use std::borrow::Cow;

use correlate::checkpoint::{self, FormatError, Kind};
use correlate::{EventTime, Owner};
use serde::{Deserialize, Serialize};

use super::k8s_event::EventSeen;
use super::node::{NodeSeen, NodeState};
use super::pod::PodSeen;
use super::{DecodeStats, Decoder, Limits};
use crate::bounded::Bounded;
use crate::topology::{ClaimInfo, PodClaims, PodInfo, Topology, VolumeInfo};

/// The schema version of [`DecoderSnapshot`] bytes. Bump it with any change
/// to a type below (the golden test in `ingest/tests/checkpoint.rs` fails
/// until you do).
pub const FORMAT_VERSION: u16 = 2;

/// One bounded table: its two generations and its eviction count.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Table<V> {
    young: Vec<(u64, V)>,
    old: Vec<(u64, V)>,
    evicted: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct PodInfoSnap {
    namespace: String,
    name: String,
    uid: String,
    node: Option<String>,
    owners: Vec<(String, String)>,
    containers: Vec<String>,
}

/// Everything a [`Decoder`] remembers, owned and serialisable. Opaque: its
/// schema is [`FORMAT_VERSION`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DecoderSnapshot {
    topology: Table<PodInfoSnap>,
    /// (namespace, pod, claims)
    pod_claims: Table<(String, String, Vec<String>)>,
    /// (namespace, claim, volume)
    claims: Table<(String, String, String)>,
    /// (volume, CSI driver)
    volumes: Table<(String, Option<String>)>,
    /// (count, event time in µs)
    events: Table<(u64, i64)>,
    /// (state, restarts)
    pods: Table<(String, u64)>,
    /// (state: 0 Ready, 1 NotReady, 2 Deleted; pressure bits; unschedulable)
    nodes: Table<(u8, u8, bool)>,
    alerts: Table<()>,
    stats: DecodeStats,
}

impl DecoderSnapshot {
    /// The snapshot in the checkpoint format (header, version, checksum).
    pub fn to_bytes(&self) -> Result<Vec<u8>, FormatError> {
        checkpoint::encode(Kind::Decoder, FORMAT_VERSION, self)
    }

    /// Reads [`DecoderSnapshot::to_bytes`] output. Anything else, a damaged
    /// file or another format version, is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<DecoderSnapshot, FormatError> {
        checkpoint::decode(Kind::Decoder, FORMAT_VERSION, bytes)
    }
}

fn table<V, S>(map: &Bounded<V>, f: impl Fn(&V) -> S) -> Table<S> {
    let [young, old] = map.generations();
    let list = |g: Vec<(u64, &V)>| g.into_iter().map(|(k, v)| (k, f(v))).collect();
    Table {
        young: list(young),
        old: list(old),
        evicted: map.evicted(),
    }
}

fn bounded<S, V>(capacity: usize, t: Table<S>, f: impl Fn(S) -> V) -> Bounded<V> {
    let list = |g: Vec<(u64, S)>| g.into_iter().map(|(k, s)| (k, f(s))).collect();
    Bounded::from_generations(capacity, list(t.young), list(t.old), t.evicted)
}

fn pod_info_snap(p: &PodInfo) -> PodInfoSnap {
    PodInfoSnap {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        uid: p.uid.clone(),
        node: p.node.clone(),
        owners: p
            .owners
            .iter()
            .map(|o| (o.kind.to_string(), o.name.to_string()))
            .collect(),
        containers: p.containers.clone(),
    }
}

fn pod_info(p: PodInfoSnap) -> PodInfo {
    PodInfo {
        namespace: p.namespace,
        name: p.name,
        uid: p.uid,
        node: p.node,
        owners: p
            .owners
            .into_iter()
            .map(|(kind, name)| {
                Owner {
                    kind: Cow::Owned(kind),
                    name: Cow::Owned(name),
                }
                .into_owned()
            })
            .collect(),
        containers: p.containers,
    }
}

fn node_state(n: u8) -> NodeState {
    match n {
        0 => NodeState::Ready,
        1 => NodeState::NotReady,
        _ => NodeState::Deleted,
    }
}

fn node_code(s: NodeState) -> u8 {
    match s {
        NodeState::Ready => 0,
        NodeState::NotReady => 1,
        NodeState::Deleted => 2,
    }
}

impl Decoder {
    /// A copy of everything the decoder remembers.
    pub fn snapshot(&self) -> DecoderSnapshot {
        let (pods, pod_claims, claims, volumes) = self.topology.tables();
        DecoderSnapshot {
            topology: table(pods, pod_info_snap),
            pod_claims: table(pod_claims, |p| {
                (p.namespace.clone(), p.name.clone(), p.claims.clone())
            }),
            claims: table(claims, |c| {
                (c.namespace.clone(), c.name.clone(), c.volume.clone())
            }),
            volumes: table(volumes, |v| (v.name.clone(), v.driver.clone())),
            events: table(&self.events, |e| (e.count, e.time.as_micros())),
            pods: table(&self.pods, |p| (p.state.to_string(), p.restarts)),
            nodes: table(&self.nodes, |n| {
                (node_code(n.state), n.pressure, n.unschedulable)
            }),
            alerts: table(&self.alerts, |()| ()),
            stats: self.stats.clone(),
        }
    }

    /// A decoder that remembers what `snap` holds, bounded by `limits`
    /// (with smaller limits than it was taken under, the surplus counts as
    /// evicted).
    pub fn restore(limits: Limits, snap: DecoderSnapshot) -> Decoder {
        let max = limits.max_objects;
        Decoder {
            topology: Topology::from_tables(
                bounded(max, snap.topology, pod_info),
                bounded(max, snap.pod_claims, |(namespace, name, claims)| {
                    PodClaims {
                        namespace,
                        name,
                        claims,
                    }
                }),
                bounded(max, snap.claims, |(namespace, name, volume)| ClaimInfo {
                    namespace,
                    name,
                    volume,
                }),
                bounded(max, snap.volumes, |(name, driver)| VolumeInfo {
                    name,
                    driver,
                }),
            ),
            events: bounded(limits.max_occurrences, snap.events, |(count, time)| {
                EventSeen {
                    count,
                    time: EventTime::from_micros(time),
                }
            })
            .with_horizon(limits.occurrence_horizon),
            pods: bounded(limits.max_objects, snap.pods, |(state, restarts)| PodSeen {
                state: state.into_boxed_str(),
                restarts,
            }),
            nodes: bounded(
                limits.max_objects,
                snap.nodes,
                |(state, pressure, unschedulable)| NodeSeen {
                    state: node_state(state),
                    pressure,
                    unschedulable,
                },
            ),
            alerts: bounded(limits.max_occurrences, snap.alerts, |()| ())
                .with_horizon(limits.occurrence_horizon),
            // Not checkpointed: the first record of each object after a
            // restart is stated again, and the graph absorbs it.
            objects: Bounded::new(max),
            stats: snap.stats,
            rejected: Vec::new(),
            rejected_total: 0,
        }
    }
}

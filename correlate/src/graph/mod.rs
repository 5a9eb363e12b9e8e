//! The object graph: which object depends on which, as the records tell it.
//!
//! A cascade travels along dependencies: a Pod runs on a Node and belongs
//! to a ReplicaSet of a Deployment; it mounts claims bound to volumes of a
//! StorageClass served by a provisioner; a Service routes to its Pods; an
//! admission webhook calls a Service; a client resolves names through the
//! cluster DNS Service. Rules join an effect to its cause through these
//! edges (`via:`, [`path`]) instead of a shared label.
//!
//! Nodes are objects named by their engine key (`Kind/namespace/name`, or
//! `Kind/name` when cluster-scoped: [`crate::incident::entity_key`]).
//! Edges are learned from what records say ([`Graph::learn`]): every Pod
//! record (node, owner chain, claims), objects of other kinds when a source
//! watches them ([`Source::Object`]: Services' ClusterIPs, EndpointSlices'
//! backends, webhook configurations' Services, claims' volumes and classes,
//! classes' provisioners), and alerts that name a Service and a Pod.
//! Streams that carry none of them still join: a path starts from what the
//! signal's own entity says (its node, its owners) before it asks the graph.
//!
//! Time: an edge holds from when it was learned until its object is
//! deleted or the edge replaced (a StatefulSet pod rescheduled on another
//! node); a lookup at time `t` takes, for a one-valued relation, the edge in
//! force at `t` (the earliest known when `t` precedes them all: graphs are
//! often learned after the failure they explain), for a many-valued one
//! every edge not ended before `t`.
//!
//! Bounds: at most `max_edges` edges ([`Graph::with_cap`]); past it the
//! least recently seen are evicted (counted). Ended edges are dropped once
//! older than the engine's horizon ([`Graph::sweep`]).

pub mod path;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::incident::entity_key;
use crate::model::{Event, Source};
use crate::time::EventTime;

/// A relation between two objects, read from `from` to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Rel {
    /// An object's controller (Pod → ReplicaSet → Deployment, Job → CronJob).
    Owner,
    /// A Pod → the Node it runs on.
    Node,
    /// A Pod → a PersistentVolumeClaim it mounts.
    Claim,
    /// A PersistentVolumeClaim → the PersistentVolume bound to it.
    Volume,
    /// A claim or a volume → its StorageClass.
    StorageClass,
    /// A StorageClass or a volume → its provisioner (CSI driver).
    Provisioner,
    /// A Service → a Pod it routes to.
    Backend,
    /// An admission webhook or a ClusterIP → the Service it names.
    Service,
}

impl Rel {
    /// A relation with at most one target at a time.
    fn single(self) -> bool {
        !matches!(self, Rel::Claim | Rel::Backend)
    }

    /// The relation an `Object` record's field states, by the field's name.
    pub fn from_field(name: &str) -> Option<Rel> {
        Some(match name {
            "owner" => Rel::Owner,
            "node" => Rel::Node,
            "claim" => Rel::Claim,
            "volume" => Rel::Volume,
            "storage_class" => Rel::StorageClass,
            "provisioner" => Rel::Provisioner,
            "backend" => Rel::Backend,
            "service" => Rel::Service,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Edge {
    rel: Rel,
    to: u32,
    since: EventTime,
    seen: EventTime,
    until: Option<EventTime>,
}

impl Edge {
    fn open(&self) -> bool {
        self.until.is_none()
    }
}

/// What the graph holds and has dropped, for metrics and the bench.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphStats {
    pub nodes: usize,
    pub edges: usize,
    /// Edges evicted at the cap, least recently seen first.
    pub evicted: u64,
}

/// The object graph. See the module documentation.
#[derive(Clone, Debug)]
pub struct Graph {
    names: Vec<Box<str>>,
    ids: FxHashMap<Box<str>, u32>,
    out: Vec<Vec<Edge>>,
    /// Reverse index: `to` → (relation, `from`); validity is the out edge's.
    inc: Vec<Vec<(Rel, u32)>>,
    edges: usize,
    max_edges: usize,
    evicted: u64,
}

impl Default for Graph {
    fn default() -> Self {
        Graph::with_cap(usize::MAX)
    }
}

/// The relations a record states, before they are applied.
type Stated = Vec<(Rel, String)>;

impl Graph {
    pub fn with_cap(max_edges: usize) -> Graph {
        Graph {
            names: Vec::new(),
            ids: FxHashMap::default(),
            out: Vec::new(),
            inc: Vec::new(),
            edges: 0,
            max_edges: max_edges.max(1),
            evicted: 0,
        }
    }

    pub fn stats(&self) -> GraphStats {
        GraphStats {
            nodes: self.names.len(),
            edges: self.edges,
            evicted: self.evicted,
        }
    }

    fn intern(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(key.into());
        self.ids.insert(key.into(), id);
        self.out.push(Vec::new());
        self.inc.push(Vec::new());
        id
    }

    /// The node of an object key, when the graph knows it.
    pub fn id(&self, key: &str) -> Option<u32> {
        self.ids.get(key).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// States `from -rel-> to` at `t`. A one-valued relation to another
    /// target ends the previous edge at `t`.
    pub fn link(&mut self, from: &str, rel: Rel, to: &str, t: EventTime) {
        let (f, to) = (self.intern(from), self.intern(to));
        self.link_ids(f, rel, to, t);
    }

    fn link_ids(&mut self, f: u32, rel: Rel, to: u32, t: EventTime) {
        let edges = &mut self.out[f as usize];
        if let Some(e) = edges
            .iter_mut()
            .find(|e| e.rel == rel && e.to == to && e.open())
        {
            e.seen = e.seen.max(t);
            return;
        }
        if rel.single() {
            for e in edges.iter_mut().filter(|e| e.rel == rel && e.open()) {
                e.until = Some(t.max(e.since));
            }
        }
        edges.push(Edge {
            rel,
            to,
            since: t,
            seen: t,
            until: None,
        });
        self.inc[to as usize].push((rel, f));
        self.edges += 1;
        if self.edges > self.max_edges {
            self.evict();
        }
    }

    /// States that `from`'s `rel` edges are exactly `tos` from `t` on
    /// (an EndpointSlice's backends, a Pod's claims).
    pub fn replace(&mut self, from: &str, rel: Rel, tos: &[String], t: EventTime) {
        let f = self.intern(from);
        let ids: Vec<u32> = tos.iter().map(|k| self.intern(k)).collect();
        for e in self.out[f as usize]
            .iter_mut()
            .filter(|e| e.rel == rel && e.open() && !ids.contains(&e.to))
        {
            e.until = Some(t.max(e.since));
        }
        for to in ids {
            self.link_ids(f, rel, to, t);
        }
    }

    /// Ends every edge out of `from` at `t`: the object was deleted.
    pub fn close(&mut self, from: &str, t: EventTime) {
        if let Some(f) = self.id(from) {
            for e in self.out[f as usize].iter_mut().filter(|e| e.open()) {
                e.until = Some(t.max(e.since));
            }
        }
    }

    /// The targets of `from`'s `rel` edges in force at `at`.
    pub fn targets(&self, from: u32, rel: Rel, at: EventTime) -> Vec<u32> {
        let edges = self.out[from as usize].iter().filter(|e| e.rel == rel);
        if rel.single() {
            let in_force = edges
                .clone()
                .filter(|e| e.since <= at && e.until.is_none_or(|u| at < u))
                .max_by_key(|e| e.since);
            // Before anything was learned: the earliest edge. After an
            // object ended: nothing.
            let chosen =
                in_force.or_else(|| edges.min_by_key(|e| e.since).filter(|e| at < e.since));
            chosen.map(|e| e.to).into_iter().collect()
        } else {
            edges
                .filter(|e| e.until.is_none_or(|u| at < u))
                .map(|e| e.to)
                .collect()
        }
    }

    /// The objects with a `rel` edge to `to` in force at `at` (a Service's
    /// reverse: the Services of a Pod; a Node's Pods).
    pub fn sources(&self, to: u32, rel: Rel, at: EventTime) -> Vec<u32> {
        let mut out: Vec<u32> = self.inc[to as usize]
            .iter()
            .filter(|(r, _)| *r == rel)
            .map(|&(_, f)| f)
            .filter(|&f| self.targets(f, rel, at).contains(&to))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Learns what a record says about the graph. Cheap for records that
    /// say nothing new: only Pod, Object and alert records are read, and a
    /// Pod's known edges are refreshed in place.
    pub fn learn(&mut self, e: &Event<'_>) {
        let t = e.time;
        match e.source {
            Source::Pod => {
                let pod = entity_key(&e.entity);
                if e.reason == "Deleted" {
                    self.close(&pod, t);
                    return;
                }
                self.learn_placement(&pod, e, t);
                if let Some(claims) = e.field("claims") {
                    let ns = e.entity.namespace.as_deref().unwrap_or_default();
                    let keys: Vec<String> = claims
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(|c| format!("PersistentVolumeClaim/{ns}/{c}"))
                        .collect();
                    self.replace(&pod, Rel::Claim, &keys, t);
                }
            }
            Source::Object => {
                let obj = entity_key(&e.entity);
                if e.reason == "Deleted" {
                    self.close(&obj, t);
                    // A webhook configuration's webhooks go with it (a
                    // deletion seen in a relist names none of them).
                    if let Some(id) = self.id(&obj) {
                        let webhooks: Vec<String> = self
                            .sources(id, Rel::Owner, t)
                            .into_iter()
                            .map(|w| self.name(w).to_string())
                            .filter(|w| w.starts_with("Webhook/"))
                            .collect();
                        for w in webhooks {
                            self.close(&w, t);
                        }
                    }
                    return;
                }
                self.learn_placement(&obj, e, t);
                let mut stated: Stated = Vec::new();
                for (name, value) in &e.fields {
                    if let Some(rel) = Rel::from_field(name) {
                        stated.push((rel, value.to_string()));
                    } else if *name == "cluster_ip" && !value.is_empty() && value != "None" {
                        self.link(&format!("IP/{value}"), Rel::Service, &obj, t);
                    }
                }
                // An object record is the object's whole state: its
                // many-valued relations are exactly what it lists.
                for rel in [Rel::Claim, Rel::Backend] {
                    let tos: Vec<String> = stated
                        .iter()
                        .filter(|(r, _)| *r == rel)
                        .map(|(_, k)| k.clone())
                        .collect();
                    self.replace(&obj, rel, &tos, t);
                }
                for (rel, to) in stated.into_iter().filter(|(r, _)| r.single()) {
                    self.link(&obj, rel, &to, t);
                }
            }
            Source::Node if e.reason == "Deleted" => {
                self.close(&entity_key(&e.entity), t);
            }
            Source::Alert => {
                // kube-state-metrics and blackbox alerts name the Service
                // and the Pod behind it: a Service edge seen in the wild.
                if let (Some(ns), Some(svc), Some(pod)) =
                    (e.label("namespace"), e.label("service"), e.label("pod"))
                    && !svc.is_empty()
                    && !pod.is_empty()
                {
                    self.link(
                        &format!("Service/{ns}/{svc}"),
                        Rel::Backend,
                        &format!("Pod/{ns}/{pod}"),
                        t,
                    );
                }
            }
            _ => {}
        }
    }

    /// The node and owner chain an object's record names.
    fn learn_placement(&mut self, key: &str, e: &Event<'_>, t: EventTime) {
        if let Some(node) = &e.entity.node
            && e.entity.kind != "Node"
        {
            self.link(key, Rel::Node, &format!("Node/{node}"), t);
        }
        let mut child = key.to_string();
        for o in &e.entity.owners {
            let owner = match &e.entity.namespace {
                Some(ns) => format!("{}/{ns}/{}", o.kind, o.name),
                None => format!("{}/{}", o.kind, o.name),
            };
            self.link(&child, Rel::Owner, &owner, t);
            child = owner;
        }
    }

    /// Drops edges ended before `ended_before` or last stated before
    /// `unseen_since`, and compacts the node table when it holds nodes no
    /// edge touches.
    pub fn sweep(&mut self, ended_before: EventTime, unseen_since: EventTime) {
        let mut removed = 0;
        for edges in &mut self.out {
            let n = edges.len();
            edges.retain(|e| e.until.is_none_or(|u| u >= ended_before) && e.seen >= unseen_since);
            removed += n - edges.len();
        }
        if removed > 0 {
            self.edges -= removed;
            self.compact();
        }
    }

    /// Evicts the least recently seen tenth of the edges (at least one).
    fn evict(&mut self) {
        let mut seen: Vec<EventTime> = self.out.iter().flatten().map(|e| e.seen).collect();
        let k = (seen.len() / 10).max(1).min(seen.len() - 1);
        let (_, cut, _) = seen.select_nth_unstable(k);
        let cut = *cut;
        let mut removed = 0;
        for edges in &mut self.out {
            let n = edges.len();
            edges.retain(|e| e.seen >= cut);
            removed += n - edges.len();
        }
        self.edges -= removed;
        self.evicted += removed as u64;
        self.compact();
    }

    /// Renumbers the nodes that some edge still touches and rebuilds the
    /// reverse index.
    fn compact(&mut self) {
        let mut used = vec![false; self.names.len()];
        for (f, edges) in self.out.iter().enumerate() {
            if !edges.is_empty() {
                used[f] = true;
            }
            for e in edges {
                used[e.to as usize] = true;
            }
        }
        let mut remap = vec![u32::MAX; self.names.len()];
        let mut names = Vec::new();
        let mut out = Vec::new();
        for (old, keep) in used.iter().enumerate() {
            if *keep {
                remap[old] = names.len() as u32;
                names.push(std::mem::take(&mut self.names[old]));
                out.push(std::mem::take(&mut self.out[old]));
            }
        }
        for edges in &mut out {
            for e in edges.iter_mut() {
                e.to = remap[e.to as usize];
            }
        }
        self.names = names;
        self.out = out;
        self.rebuild_index();
    }

    fn rebuild_index(&mut self) {
        self.ids = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        self.inc = vec![Vec::new(); self.names.len()];
        for (f, edges) in self.out.iter().enumerate() {
            for e in edges {
                self.inc[e.to as usize].push((e.rel, f as u32));
            }
        }
        self.edges = self.out.iter().map(Vec::len).sum();
    }

    /// The graph as owned data for a checkpoint.
    pub fn snapshot(&self) -> GraphSnapshot {
        GraphSnapshot {
            names: self.names.iter().map(|n| n.to_string()).collect(),
            out: self.out.clone(),
            evicted: self.evicted,
        }
    }

    /// The graph a checkpoint holds; `None` when it is inconsistent (an
    /// edge to a node that does not exist).
    pub fn restore(snap: GraphSnapshot, max_edges: usize) -> Option<Graph> {
        let n = snap.names.len();
        if snap.out.len() != n || snap.out.iter().flatten().any(|e| e.to as usize >= n) {
            return None;
        }
        let mut g = Graph::with_cap(max_edges);
        g.names = snap.names.into_iter().map(Into::into).collect();
        g.out = snap.out;
        g.evicted = snap.evicted;
        g.rebuild_index();
        Some(g)
    }

    /// Bytes the graph holds, as an allocator rounds them: for the bench's
    /// bytes-per-edge figure.
    pub fn held_bytes(&self) -> usize {
        use std::mem::size_of;
        let names: usize = self
            .names
            .iter()
            .map(|n| n.len().div_ceil(16) * 16 + 16)
            .sum();
        let out: usize = self
            .out
            .iter()
            .map(|v| v.capacity() * size_of::<Edge>())
            .sum();
        let inc: usize = self
            .inc
            .iter()
            .map(|v| v.capacity() * size_of::<(Rel, u32)>())
            .sum();
        let tables = self.names.len()
            * (size_of::<Box<str>>() * 2 + size_of::<u32>() + 2 * size_of::<Vec<Edge>>());
        // The key table holds a second copy of each name.
        names * 2 + out + inc + tables
    }
}

/// The graph in a checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GraphSnapshot {
    names: Vec<String>,
    out: Vec<Vec<Edge>>,
    evicted: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

//! What the decoder has learnt about the cluster's objects, to enrich records
//! that only name them.
//!
//! A Kubernetes Event names its Pod, a log record names its pod and node, an
//! alert names a pod: none of them says which Deployment or DaemonSet the pod
//! belongs to. Every Pod record refreshes its entry here (namespace, name →
//! uid, node, owner chain, containers) so that those records can be joined by
//! workload and node. Bounded by [`crate::Limits::max_objects`].
//! (Later also PVC → PV → CSI driver.)

use std::borrow::Cow;

use correlate::Owner;

use crate::bounded::Bounded;
use crate::hash::{Domain, stable_hash};

/// One Pod as last seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: Option<String>,
    /// Nearest owner first (ReplicaSet, then Deployment).
    pub owners: Vec<Owner<'static>>,
    /// Init containers then containers, in spec order.
    pub containers: Vec<String>,
}

/// A Pod record's view, borrowed from the line, to refresh the cache with.
#[derive(Clone, Copy, Debug)]
pub struct PodView<'v, 'a> {
    pub namespace: &'v str,
    pub name: &'v str,
    pub uid: &'v str,
    pub node: Option<&'v str>,
    pub owners: &'v [Owner<'a>],
    pub containers: &'v [&'v str],
}

/// The cache of Pods by namespace and name.
#[derive(Debug)]
pub struct Topology {
    pods: Bounded<PodInfo>,
}

fn pod_key(namespace: &str, name: &str) -> u64 {
    stable_hash(Domain::PodName, &[namespace.as_bytes(), name.as_bytes()])
}

impl Topology {
    /// A cache of at most `max_objects` pods.
    pub fn new(max_objects: usize) -> Self {
        Topology {
            pods: Bounded::new(max_objects),
        }
    }

    /// The pod `namespace/name`, if it was seen (and not evicted).
    pub fn pod(&mut self, namespace: &str, name: &str) -> Option<&PodInfo> {
        self.pods
            .get_mut(pod_key(namespace, name))
            .map(|p| &*p)
            // A hash collision is not the pod asked for.
            .filter(|p| p.namespace == namespace && p.name == name)
    }

    /// Records what a Pod record says; copies only what changed.
    pub fn observe_pod(&mut self, view: PodView<'_, '_>) {
        let key = pod_key(view.namespace, view.name);
        match self.pods.get_mut(key) {
            Some(info) if info.namespace == view.namespace && info.name == view.name => {
                if info.uid != view.uid {
                    view.uid.clone_into(&mut info.uid);
                }
                if info.node.as_deref() != view.node {
                    info.node = view.node.map(str::to_owned);
                }
                if info.owners != view.owners {
                    info.owners = view.owners.iter().map(|o| o.clone().into_owned()).collect();
                }
                if info.containers != view.containers {
                    info.containers = view.containers.iter().map(|&c| c.to_owned()).collect();
                }
            }
            _ => self.pods.insert(
                key,
                PodInfo {
                    namespace: view.namespace.to_owned(),
                    name: view.name.to_owned(),
                    uid: view.uid.to_owned(),
                    node: view.node.map(str::to_owned),
                    owners: view.owners.iter().map(|o| o.clone().into_owned()).collect(),
                    containers: view.containers.iter().map(|&c| c.to_owned()).collect(),
                },
            ),
        }
    }

    /// Pods currently cached.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pods dropped to keep the bound, so far.
    pub fn evicted(&self) -> u64 {
        self.pods.evicted()
    }

    /// The cache's generations, for a checkpoint (see [`Bounded`]).
    pub(crate) fn generations(&self) -> [Vec<(u64, &PodInfo)>; 2] {
        self.pods.generations()
    }

    /// A cache of at most `max_objects` pods, from saved generations.
    pub(crate) fn from_generations(
        max_objects: usize,
        young: Vec<(u64, PodInfo)>,
        old: Vec<(u64, PodInfo)>,
        evicted: u64,
    ) -> Self {
        Topology {
            pods: Bounded::from_generations(max_objects, young, old, evicted),
        }
    }
}

/// `cached` as a string of lifetime `'a`: borrowed from `line` when `line`
/// (text of the record being decoded) starts with it, which is the common
/// case for generated names (a pod `web-7d4f9-x2x` starts with its
/// ReplicaSet's and Deployment's names); copied otherwise.
pub(crate) fn lend<'a>(cached: &str, line: &Cow<'a, str>) -> Cow<'a, str> {
    match line {
        Cow::Borrowed(s) if s.starts_with(cached) => Cow::Borrowed(&s[..cached.len()]),
        _ => Cow::Owned(cached.to_owned()),
    }
}

/// `kind` without an allocation when it is one of the usual controller kinds.
pub(crate) fn static_kind<'a>(kind: &str) -> Cow<'a, str> {
    const KINDS: [&str; 9] = [
        "ReplicaSet",
        "Deployment",
        "DaemonSet",
        "StatefulSet",
        "Job",
        "CronJob",
        "Node",
        "ReplicationController",
        "Pod",
    ];
    match KINDS.iter().find(|&&k| k == kind) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(kind.to_owned()),
    }
}

impl PodInfo {
    /// This pod's owners as owners of a record about the pod named
    /// `pod_name` (text of that record), borrowing where possible.
    pub(crate) fn owners_for<'a>(&self, pod_name: &Cow<'a, str>) -> Vec<Owner<'a>> {
        self.owners
            .iter()
            .map(|o| Owner {
                kind: static_kind(&o.kind),
                name: lend(&o.name, pod_name),
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lends_prefixes_and_refreshes_entries() {
        let mut topo = Topology::new(10);
        let owners = [Owner {
            kind: "DaemonSet".into(),
            name: "csi-nfs-node".into(),
        }];
        let view = PodView {
            namespace: "nfs-csi",
            name: "csi-nfs-node-nnftf",
            uid: "u1",
            node: Some("k8s-node1"),
            owners: &owners,
            containers: &["nfs", "liveness-probe"],
        };
        topo.observe_pod(view);
        topo.observe_pod(PodView {
            node: Some("k8s-node2"),
            ..view
        });
        assert_eq!(topo.len(), 1);
        let pod = topo.pod("nfs-csi", "csi-nfs-node-nnftf").unwrap();
        assert_eq!(pod.node.as_deref(), Some("k8s-node2"));
        let line = Cow::Borrowed("csi-nfs-node-nnftf");
        let lent = pod.owners_for(&line);
        assert!(matches!(lent[0].name, Cow::Borrowed("csi-nfs-node")));
        assert!(matches!(lent[0].kind, Cow::Borrowed("DaemonSet")));
        assert!(topo.pod("nfs-csi", "other").is_none());
    }
}

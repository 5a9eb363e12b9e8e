//! What the decoder has learnt about the cluster's objects, to enrich records
//! that only name them.
//!
//! A Kubernetes Event names its Pod, a log record names its pod and node, an
//! alert names a pod: none of them says which Deployment or DaemonSet the pod
//! belongs to. Every Pod record refreshes its entry here (namespace, name →
//! uid, node, owner chain, containers) so that those records can be joined by
//! workload and node. Bounded by [`crate::Limits::max_objects`].
//!
//! Storage is a second, optional chain: a Pod's claims (`spec.volumes`),
//! PersistentVolumeClaim → its bound PersistentVolume, PersistentVolume → its
//! CSI driver. Fed only when PVC and PV records arrive; then
//! [`Topology::csi_drivers`] names the drivers a pod's volumes need, so that
//! an Event about a pod that cannot mount can be joined to a failing driver.
//! Each table has the same bound as the pods'.

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
    /// Pod (namespace, name) → its claims; only pods that have claims.
    pod_claims: Bounded<PodClaims>,
    /// Claim (namespace, name) → bound volume.
    claims: Bounded<ClaimInfo>,
    /// Volume name → CSI driver.
    volumes: Bounded<VolumeInfo>,
}

/// The claims a Pod's volumes use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodClaims {
    pub namespace: String,
    pub name: String,
    /// Claim names, in spec order.
    pub claims: Vec<String>,
}

/// A PersistentVolumeClaim and the volume bound to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimInfo {
    pub namespace: String,
    pub name: String,
    pub volume: String,
}

/// A PersistentVolume and the CSI driver serving it (`None` for in-tree and
/// local volumes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    pub driver: Option<String>,
}

fn pod_key(namespace: &str, name: &str) -> u64 {
    stable_hash(Domain::PodName, &[namespace.as_bytes(), name.as_bytes()])
}

fn claim_key(namespace: &str, name: &str) -> u64 {
    stable_hash(Domain::Claim, &[namespace.as_bytes(), name.as_bytes()])
}

fn volume_key(name: &str) -> u64 {
    stable_hash(Domain::Volume, &[name.as_bytes()])
}

impl Topology {
    /// A cache of at most `max_objects` pods.
    pub fn new(max_objects: usize) -> Self {
        Topology {
            pods: Bounded::new(max_objects),
            pod_claims: Bounded::new(max_objects),
            claims: Bounded::new(max_objects),
            volumes: Bounded::new(max_objects),
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

    /// Records the claims of the pod `namespace/name` (its
    /// `spec.volumes[].persistentVolumeClaim.claimName`, and
    /// `<pod>-<volume>` for generic ephemeral volumes). Pods without claims
    /// take no room.
    pub fn observe_pod_claims(&mut self, namespace: &str, name: &str, claims: &[&str]) {
        let key = stable_hash(Domain::PodClaims, &[namespace.as_bytes(), name.as_bytes()]);
        match self.pod_claims.get_mut(key) {
            Some(info) if info.namespace == namespace && info.name == name => {
                if info.claims != claims {
                    info.claims = claims.iter().map(|&c| c.to_owned()).collect();
                }
            }
            _ if claims.is_empty() => {}
            _ => self.pod_claims.insert(
                key,
                PodClaims {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    claims: claims.iter().map(|&c| c.to_owned()).collect(),
                },
            ),
        }
    }

    /// Records a PersistentVolumeClaim and the volume it is bound to
    /// (`None`: not bound, or deleted).
    pub fn observe_claim(&mut self, namespace: &str, name: &str, volume: Option<&str>) {
        let key = claim_key(namespace, name);
        match (self.claims.get_mut(key), volume) {
            (Some(info), Some(volume)) if info.namespace == namespace && info.name == name => {
                if info.volume != volume {
                    volume.clone_into(&mut info.volume);
                }
            }
            (Some(info), None) if info.namespace == namespace && info.name == name => {
                info.volume.clear();
            }
            (_, Some(volume)) => self.claims.insert(
                key,
                ClaimInfo {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    volume: volume.to_owned(),
                },
            ),
            (_, None) => {}
        }
    }

    /// Records a PersistentVolume and its CSI driver.
    pub fn observe_volume(&mut self, name: &str, driver: Option<&str>) {
        let key = volume_key(name);
        match self.volumes.get_mut(key) {
            Some(info) if info.name == name => {
                if info.driver.as_deref() != driver {
                    info.driver = driver.map(str::to_owned);
                }
            }
            _ => self.volumes.insert(
                key,
                VolumeInfo {
                    name: name.to_owned(),
                    driver: driver.map(str::to_owned),
                },
            ),
        }
    }

    /// The volume bound to the claim `namespace/name`, if known.
    pub fn claim_volume(&mut self, namespace: &str, name: &str) -> Option<&str> {
        self.claims
            .get_mut(claim_key(namespace, name))
            .map(|c| &*c)
            .filter(|c| c.namespace == namespace && c.name == name && !c.volume.is_empty())
            .map(|c| c.volume.as_str())
    }

    /// The CSI driver of the volume `name`, if known.
    pub fn volume_driver(&mut self, name: &str) -> Option<&str> {
        self.volumes
            .get_mut(volume_key(name))
            .map(|v| &*v)
            .filter(|v| v.name == name)
            .and_then(|v| v.driver.as_deref())
    }

    /// The CSI drivers the volumes of the pod `namespace/name` need, sorted,
    /// comma-joined; `None` when none is known (no claims, claims not bound
    /// or not seen, volumes not seen or not CSI).
    pub fn csi_drivers(&mut self, namespace: &str, name: &str) -> Option<String> {
        let key = stable_hash(Domain::PodClaims, &[namespace.as_bytes(), name.as_bytes()]);
        let pod = self
            .pod_claims
            .get_mut(key)
            .filter(|p| p.namespace == namespace && p.name == name)?;
        let mut drivers: Vec<String> = Vec::new();
        for claim in &pod.claims {
            let volume = self
                .claims
                .get_mut(claim_key(namespace, claim))
                .filter(|c| c.namespace == namespace && c.name == *claim && !c.volume.is_empty());
            let Some(volume) = volume else { continue };
            let driver = self
                .volumes
                .get_mut(volume_key(&volume.volume))
                .filter(|v| v.name == volume.volume)
                .and_then(|v| v.driver.as_deref());
            if let Some(driver) = driver
                && !drivers.iter().any(|d| d == driver)
            {
                drivers.push(driver.to_owned());
            }
        }
        drivers.sort_unstable();
        (!drivers.is_empty()).then(|| drivers.join(","))
    }

    /// Pods currently cached.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries (pods, pod claims, claims, volumes) dropped to keep the
    /// bounds, so far.
    pub fn evicted(&self) -> u64 {
        self.pods.evicted()
            + self.pod_claims.evicted()
            + self.claims.evicted()
            + self.volumes.evicted()
    }

    /// The cache's tables, for a checkpoint (see [`Bounded`]).
    pub(crate) fn tables(&self) -> Tables<'_> {
        (&self.pods, &self.pod_claims, &self.claims, &self.volumes)
    }

    /// A cache from restored tables.
    pub(crate) fn from_tables(
        pods: Bounded<PodInfo>,
        pod_claims: Bounded<PodClaims>,
        claims: Bounded<ClaimInfo>,
        volumes: Bounded<VolumeInfo>,
    ) -> Self {
        Topology {
            pods,
            pod_claims,
            claims,
            volumes,
        }
    }
}

/// Pods, pod claims, claims and volumes.
pub(crate) type Tables<'a> = (
    &'a Bounded<PodInfo>,
    &'a Bounded<PodClaims>,
    &'a Bounded<ClaimInfo>,
    &'a Bounded<VolumeInfo>,
);

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

    #[test]
    fn resolves_a_pods_claims_to_their_csi_drivers() {
        let mut topo = Topology::new(10);
        assert_eq!(topo.csi_drivers("shop", "db-0"), None);
        topo.observe_pod_claims("shop", "db-0", &["data-db-0", "logs-db-0", "scratch"]);
        topo.observe_pod_claims("shop", "web-1", &[]);
        // Claims and volumes arrive in any order; unknown ones are skipped.
        topo.observe_volume("pv-2", Some("nfs.example.com"));
        assert_eq!(topo.csi_drivers("shop", "db-0"), None);
        topo.observe_claim("shop", "data-db-0", Some("pv-1"));
        topo.observe_claim("shop", "logs-db-0", Some("pv-2"));
        topo.observe_claim("shop", "scratch", None);
        assert_eq!(
            topo.csi_drivers("shop", "db-0").as_deref(),
            Some("nfs.example.com")
        );
        topo.observe_volume("pv-1", Some("block.example.com"));
        assert_eq!(
            topo.csi_drivers("shop", "db-0").as_deref(),
            Some("block.example.com,nfs.example.com")
        );
        // A volume rebound, a claim released.
        topo.observe_volume("pv-1", None);
        topo.observe_claim("shop", "logs-db-0", None);
        assert_eq!(topo.csi_drivers("shop", "db-0"), None);
        assert_eq!(topo.csi_drivers("shop", "web-1"), None);
        assert_eq!(topo.csi_drivers("other", "db-0"), None);
    }

    #[test]
    fn storage_tables_stay_bounded() {
        let mut topo = Topology::new(4);
        for i in 0..50 {
            let name = format!("c{i}");
            topo.observe_claim("ns", &name, Some(&name));
            topo.observe_volume(&name, Some("d"));
            topo.observe_pod_claims("ns", &name, &[&name]);
        }
        assert!(topo.evicted() >= 3 * 46);
        assert_eq!(topo.csi_drivers("ns", "c49").as_deref(), Some("d"));
        assert_eq!(topo.csi_drivers("ns", "c0"), None);
    }
}

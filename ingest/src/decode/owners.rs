//! Owner chains: which controllers stand above a pod, nearest first.
//!
//! A pod names only its direct owner; the chain above it is inferred from
//! the names Kubernetes generates: a ReplicaSet is `<deployment>-<pod-template-hash>`,
//! a CronJob's Job is `<cronjob>-<scheduled minute>` (8 or more digits), a
//! StatefulSet's pod is `<statefulset>-<ordinal>`, a DaemonSet's pod
//! `<daemonset>-<5 random characters>`. Names are sliced, not copied: the
//! owners of a record borrow from it.

use std::borrow::Cow;

use correlate::Owner;

use super::slice;
use super::wire::{OwnerRef, WellKnownLabels, non_empty};

fn prefix<'a>(s: &Cow<'a, str>, len: usize) -> Cow<'a, str> {
    slice(s, 0..len)
}

fn owner<'a>(kind: &'static str, name: Cow<'a, str>) -> Owner<'a> {
    Owner {
        kind: Cow::Borrowed(kind),
        name,
    }
}

/// Length of `name` without a trailing `-<suffix>` whose suffix satisfies `ok`
/// (`None` when there is no such suffix or nothing would be left).
fn strip_suffix_len(name: &str, ok: impl Fn(&str) -> bool) -> Option<usize> {
    let dash = name.rfind('-')?;
    (dash > 0 && ok(&name[dash + 1..])).then_some(dash)
}

fn is_generated(suffix: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&suffix.len())
        && suffix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The Deployment a ReplicaSet `rs` belongs to: `rs` without its
/// `-<pod-template-hash>` (the label's value when known, else a trailing
/// 5 to 10 character `[a-z0-9]` segment).
fn deployment_len(rs: &str, pod_template_hash: Option<&str>) -> Option<usize> {
    if let Some(hash) = pod_template_hash.filter(|h| !h.is_empty()) {
        let base = rs.strip_suffix(hash)?.strip_suffix('-')?;
        return (!base.is_empty()).then_some(base.len());
    }
    strip_suffix_len(rs, |s| is_generated(s, 5, 10))
}

/// The CronJob a Job `job` was created by, when it ends in `-<8+ digits>`.
fn cronjob_len(job: &str) -> Option<usize> {
    strip_suffix_len(job, |s| {
        s.len() >= 8 && s.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The StatefulSet of a pod `<name>-<ordinal>`.
fn statefulset_len(pod: &str) -> Option<usize> {
    strip_suffix_len(pod, |s| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The chain starting at the direct owner `kind`/`name`.
pub(crate) fn chain<'a>(
    kind: Cow<'a, str>,
    name: Cow<'a, str>,
    pod_template_hash: Option<&str>,
) -> Vec<Owner<'a>> {
    let above = match kind.as_ref() {
        "ReplicaSet" => {
            deployment_len(&name, pod_template_hash).map(|n| owner("Deployment", prefix(&name, n)))
        }
        "Job" => cronjob_len(&name).map(|n| owner("CronJob", prefix(&name, n))),
        _ => None,
    };
    let mut out = Vec::with_capacity(1 + usize::from(above.is_some()));
    out.push(Owner { kind, name });
    out.extend(above);
    out
}

/// From a Pod's `ownerReferences`: the controller reference (else the first).
pub(crate) fn from_refs<'a>(
    refs: &[OwnerRef<'a>],
    pod_template_hash: Option<&str>,
) -> Vec<Owner<'a>> {
    let direct = refs
        .iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first());
    match direct.and_then(|r| Some((non_empty(&r.kind)?, non_empty(&r.name)?))) {
        Some((kind, name)) => chain(kind.clone(), name.clone(), pod_template_hash),
        None => Vec::new(),
    }
}

/// From Vector's `pod_owner`, `Kind/name`.
pub(crate) fn from_pod_owner<'a>(
    pod_owner: &Cow<'a, str>,
    pod_template_hash: Option<&str>,
) -> Vec<Owner<'a>> {
    let Some(slash) = pod_owner.find('/') else {
        return Vec::new();
    };
    if slash == 0 || slash + 1 == pod_owner.len() {
        return Vec::new();
    }
    let (kind, name) = match pod_owner {
        Cow::Borrowed(s) => (Cow::Borrowed(&s[..slash]), Cow::Borrowed(&s[slash + 1..])),
        Cow::Owned(s) => (
            Cow::Owned(s[..slash].to_owned()),
            Cow::Owned(s[slash + 1..].to_owned()),
        ),
    };
    chain(kind, name, pod_template_hash)
}

/// From a pod's name and the labels its controller stamps on it, when
/// nothing better is known: `statefulset.kubernetes.io/pod-name` → StatefulSet,
/// `pod-template-hash` → ReplicaSet and Deployment, `pod-template-generation`
/// → DaemonSet, `job-name` → Job (and CronJob).
pub(crate) fn from_labels<'a>(pod: &Cow<'a, str>, labels: &WellKnownLabels<'a>) -> Vec<Owner<'a>> {
    if non_empty(&labels.statefulset_pod_name).is_some()
        && let Some(n) = statefulset_len(pod)
    {
        return vec![owner("StatefulSet", prefix(pod, n))];
    }
    if let Some(hash) = non_empty(&labels.pod_template_hash) {
        // `<deployment>-<hash>-<random>`: the ReplicaSet ends after the hash.
        let needle_end = pod
            .match_indices(hash.as_ref())
            .map(|(i, _)| i + hash.len())
            .find(|&end| pod[..end - hash.len()].ends_with('-') && pod[end..].starts_with('-'));
        if let Some(end) = needle_end {
            return chain(Cow::Borrowed("ReplicaSet"), prefix(pod, end), Some(hash));
        }
    }
    if non_empty(&labels.pod_template_generation).is_some()
        && let Some(n) = strip_suffix_len(pod, |s| is_generated(s, 5, 5))
    {
        return vec![owner("DaemonSet", prefix(pod, n))];
    }
    if let Some(job) = non_empty(&labels.job_name) {
        return chain(Cow::Borrowed("Job"), job.clone(), None);
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::wire::Str;

    fn names(owners: &[Owner<'_>]) -> Vec<String> {
        owners
            .iter()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect()
    }

    fn s(text: &str) -> Option<Str<'_>> {
        Some(Str(Cow::Borrowed(text)))
    }

    fn oref<'a>(kind: &'a str, name: &'a str, controller: Option<bool>) -> OwnerRef<'a> {
        OwnerRef {
            kind: s(kind),
            name: s(name),
            controller,
        }
    }

    #[test]
    fn replicaset_implies_its_deployment() {
        let refs = [oref("ReplicaSet", "paperless-ngx-hqhk6sqdj", Some(true))];
        assert_eq!(
            names(&from_refs(&refs, Some("hqhk6sqdj"))),
            [
                "ReplicaSet/paperless-ngx-hqhk6sqdj",
                "Deployment/paperless-ngx"
            ]
        );
        // Without the label: a trailing 5-10 character segment.
        assert_eq!(
            names(&from_refs(&refs, None)),
            [
                "ReplicaSet/paperless-ngx-hqhk6sqdj",
                "Deployment/paperless-ngx"
            ]
        );
        // A label that does not match the name: no guess.
        assert_eq!(
            names(&from_refs(&refs, Some("zzzzzzz"))),
            ["ReplicaSet/paperless-ngx-hqhk6sqdj"]
        );
        // Upper case or too long is not a generated hash.
        assert_eq!(
            names(&chain("ReplicaSet".into(), "web-Blue".into(), None)),
            ["ReplicaSet/web-Blue"]
        );
        assert_eq!(
            names(&chain("ReplicaSet".into(), "abcdefghijk".into(), None)),
            ["ReplicaSet/abcdefghijk"]
        );
    }

    #[test]
    fn prefers_the_controller_reference() {
        let refs = [
            oref("ConfigMap", "x", None),
            oref("StatefulSet", "vault", Some(true)),
        ];
        assert_eq!(names(&from_refs(&refs, None)), ["StatefulSet/vault"]);
        let refs = [oref("DaemonSet", "csi-nfs-node", None)];
        assert_eq!(names(&from_refs(&refs, None)), ["DaemonSet/csi-nfs-node"]);
        assert!(from_refs(&[], None).is_empty());
    }

    #[test]
    fn cronjob_jobs_end_in_eight_or_more_digits() {
        assert_eq!(
            names(&chain("Job".into(), "nextcloud-cron-29560790".into(), None)),
            ["Job/nextcloud-cron-29560790", "CronJob/nextcloud-cron"]
        );
        assert_eq!(
            names(&chain("Job".into(), "migrate-1234567".into(), None)),
            ["Job/migrate-1234567"]
        );
    }

    #[test]
    fn vector_pod_owner_borrows_from_the_record() {
        let owner = Cow::Borrowed("ReplicaSet/forgejo-hqqcrgfk9");
        let owners = from_pod_owner(&owner, None);
        assert_eq!(
            names(&owners),
            ["ReplicaSet/forgejo-hqqcrgfk9", "Deployment/forgejo"]
        );
        assert!(owners.iter().all(|o| matches!(o.name, Cow::Borrowed(_))));
        assert_eq!(
            names(&from_pod_owner(&"DaemonSet/csi-nfs-node".into(), None)),
            ["DaemonSet/csi-nfs-node"]
        );
        assert!(from_pod_owner(&"nonsense".into(), None).is_empty());
        assert!(from_pod_owner(&"Kind/".into(), None).is_empty());
    }

    #[test]
    fn labels_infer_the_controller() {
        let sts = WellKnownLabels {
            statefulset_pod_name: s("vault-2"),
            ..Default::default()
        };
        assert_eq!(
            names(&from_labels(&"vault-2".into(), &sts)),
            ["StatefulSet/vault"]
        );
        let rs = WellKnownLabels {
            pod_template_hash: s("hqqcrgfk9"),
            ..Default::default()
        };
        assert_eq!(
            names(&from_labels(&"forgejo-hqqcrgfk9-vdrsc".into(), &rs)),
            ["ReplicaSet/forgejo-hqqcrgfk9", "Deployment/forgejo"]
        );
        let ds = WellKnownLabels {
            pod_template_generation: s("3"),
            ..Default::default()
        };
        assert_eq!(
            names(&from_labels(&"crowdsec-agent-2h7gj".into(), &ds)),
            ["DaemonSet/crowdsec-agent"]
        );
        let job = WellKnownLabels {
            job_name: s("backup-29560790"),
            ..Default::default()
        };
        assert_eq!(
            names(&from_labels(&"backup-29560790-x7k2p".into(), &job)),
            ["Job/backup-29560790", "CronJob/backup"]
        );
        assert!(from_labels(&"loner".into(), &WellKnownLabels::default()).is_empty());
    }
}

//! Pod objects → state transitions, [`Source::Pod`].
//!
//! Each Pod record is summarised into one state (the event's `reason`),
//! first match wins: `Deleted` (watch DELETED), `Terminating`
//! (deletionTimestamp), `Succeeded` / `Failed`, `Pending` (not scheduled), a
//! container's waiting reason (`CrashLoopBackOff`, `ErrImagePull`... before
//! `ContainerCreating` / `PodInitializing`; init containers first), a running
//! pod's container's terminated reason (`OOMKilled`, `Error`...), `Running`
//! (Ready), else `NotReady`. An event is emitted when the pod is first seen,
//! when its state changes, or when its restart count rises; otherwise the
//! record is [`Decoded::Unchanged`].
//!
//! Fields set: `previous` (last state, `""` when first seen), `phase`,
//! `status_reason` (the pod's `status.reason`, e.g. `Evicted`, when present),
//! `restarts` (sum of restart counts), `last_reason` / `exit_code` /
//! `last_message` (the container's `lastState.terminated`, when present),
//! `containers` (init and regular container names, comma-joined, spec order),
//! `owner_kind` (outermost owner, when owned), `scheduled` (`true`/`false`),
//! `claims` (the claims its volumes use, comma-joined, when it has any),
//! `csi_drivers` (when the topology knows CSI volumes behind the pod's
//! claims). Every record refreshes the pod's claims in the topology:
//! `spec.volumes[].persistentVolumeClaim.claimName`, and `<pod>-<volume>` for
//! a generic ephemeral volume.
//! `container` is the container the state comes from, else the one with the
//! most restarts. Labels are the pod's labels. Severity is warning for a
//! failing state (a waiting reason other than `ContainerCreating` /
//! `PodInitializing`, a terminated reason other than `Completed`, `Failed`),
//! else info.

use std::borrow::Cow;

use correlate::{Entity, Event, Severity, Source};

use super::error::{DecodeError, Result};
use super::wire::{
    ContainerStatus, Labels, ObjectStatus, Record, StatusField, WellKnownLabels, non_empty,
};
use super::{Ctx, Decoded, Decoder, flag, num, owners, times};
use crate::hash::{Domain, stable_hash};
use crate::topology::PodView;

/// Waiting reasons of a container that is merely on its way.
const ROUTINE_WAITING: [&str; 2] = ["ContainerCreating", "PodInitializing"];

/// Last summary of a Pod: a change of state or more restarts is a transition.
#[derive(Clone, Debug)]
pub(super) struct PodSeen {
    pub(super) state: Box<str>,
    pub(super) restarts: u64,
}

/// The summary of one Pod record.
struct Summary<'s, 'a> {
    state: Cow<'a, str>,
    /// The container the state comes from.
    from: Option<&'s ContainerStatus<'a>>,
    message: Option<Cow<'a, str>>,
    failing: bool,
}

fn summarise<'s, 'a>(
    deleted: bool,
    terminating: bool,
    scheduled: bool,
    status: &'s ObjectStatus<'a>,
) -> Summary<'s, 'a> {
    let simple = |state: &'static str, failing| Summary {
        state: Cow::Borrowed(state),
        from: None,
        message: None,
        failing,
    };
    let phase = status.phase.as_ref().map_or("", |p| p.as_str());
    let condition = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_.as_ref().is_some_and(|t| t.as_str() == kind))
    };
    if deleted {
        return simple("Deleted", false);
    }
    if terminating {
        return simple("Terminating", false);
    }
    match phase {
        "Succeeded" => return simple("Succeeded", false),
        "Failed" => {
            return Summary {
                message: non_empty(&status.message).cloned(),
                ..simple("Failed", true)
            };
        }
        "Pending" if !scheduled => {
            let unschedulable = condition("PodScheduled")
                .filter(|c| c.status.as_ref().is_some_and(|s| s.as_str() == "False"));
            return Summary {
                message: unschedulable.and_then(|c| non_empty(&c.message).cloned()),
                ..simple("Pending", false)
            };
        }
        _ => {}
    }
    let all = || {
        status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
    };
    let waiting = |c: &'s ContainerStatus<'a>| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        Some((c, non_empty(&w.reason)?, w))
    };
    let chosen = all()
        .filter_map(waiting)
        .find(|(_, reason, _)| !ROUTINE_WAITING.contains(&reason.as_ref()))
        .or_else(|| all().filter_map(waiting).next());
    if let Some((c, reason, w)) = chosen {
        return Summary {
            state: reason.clone(),
            from: Some(c),
            message: non_empty(&w.message).cloned(),
            failing: !ROUTINE_WAITING.contains(&reason.as_ref()),
        };
    }
    if phase == "Running" {
        let terminated = status.container_statuses.iter().flatten().find_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            Some((c, t))
        });
        if let Some((c, t)) = terminated {
            let reason = non_empty(&t.reason)
                .cloned()
                .unwrap_or(Cow::Borrowed("Terminated"));
            return Summary {
                failing: reason != "Completed",
                state: reason,
                from: Some(c),
                message: non_empty(&t.message).cloned(),
            };
        }
        let ready = condition("Ready")
            .is_some_and(|c| c.status.as_ref().is_some_and(|s| s.as_str() == "True"));
        if ready {
            return simple("Running", false);
        }
    }
    let not_ready =
        condition("Ready").filter(|c| c.status.as_ref().is_none_or(|s| s.as_str() != "True"));
    Summary {
        message: not_ready.and_then(|c| non_empty(&c.message).cloned()),
        ..simple("NotReady", false)
    }
}

impl Decoder {
    pub(super) fn pod<'a>(
        &mut self,
        mut rec: Box<Record<'a>>,
        deleted: bool,
        ctx: Ctx,
        out: &mut Vec<Event<'a>>,
    ) -> Result<Decoded> {
        let p = ctx.prefix;
        let meta = rec
            .metadata
            .take()
            .ok_or_else(|| DecodeError::missing(p, "metadata"))?;
        let name = non_empty(&meta.name)
            .cloned()
            .ok_or_else(|| DecodeError::missing(p, "metadata.name"))?;
        let namespace = non_empty(&meta.namespace)
            .cloned()
            .ok_or_else(|| DecodeError::missing(p, "metadata.namespace"))?;
        let uid = non_empty(&meta.uid).cloned();
        let status = match rec.status.take().map(|b| *b) {
            Some(StatusField::Object(s)) => *s,
            None => ObjectStatus::default(),
            Some(StatusField::Text(_)) => {
                return Err(DecodeError::Invalid {
                    path: format!("{p}status"),
                    message: "a string, expected the Pod's status object".into(),
                });
            }
        };
        let spec = rec.spec.take().unwrap_or_default();
        // Only the owner-naming labels are read for every record; all of
        // them only for a transition. A malformed label object is not worth
        // losing the record for.
        let well_known: WellKnownLabels<'a> = meta
            .labels
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default();

        let time = match ctx.observed_at {
            Some(t) => t,
            None => {
                let conditions = status.conditions.iter().flatten();
                times::newest(
                    p,
                    conditions
                        .map(|c| ("status.conditions.lastTransitionTime", &c.last_transition_time))
                        .chain([("metadata.creationTimestamp", &meta.creation_timestamp)]),
                )?
                .ok_or_else(|| {
                    DecodeError::no_time(p, "observedAt, status.conditions.lastTransitionTime, metadata.creationTimestamp")
                })?
            }
        };

        let terminating =
            times::parse_opt(p, "metadata.deletionTimestamp", &meta.deletion_timestamp)?.is_some();

        let node = non_empty(&spec.node_name).cloned();
        let pod_owners = owners::from_refs(
            meta.owner_references.as_deref().unwrap_or_default(),
            non_empty(&well_known.pod_template_hash).map(|h| h.as_ref()),
        );
        let container_names: Vec<&str> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter().flatten())
            .filter_map(|c| non_empty(&c.name).map(|n| n.as_ref()))
            .collect();
        self.topology.observe_pod(PodView {
            namespace: &namespace,
            name: &name,
            uid: uid.as_deref().unwrap_or_default(),
            node: node.as_deref(),
            owners: &pod_owners,
            containers: &container_names,
        });

        let mut claims: Vec<Cow<'_, str>> = Vec::new();
        for v in spec.volumes.iter().flatten() {
            let claim = v.persistent_volume_claim.as_ref();
            if let Some(c) = claim.and_then(|c| non_empty(&c.claim_name)) {
                claims.push(Cow::Borrowed(c.as_ref()));
            } else if v.ephemeral.is_some()
                && let Some(volume) = non_empty(&v.name)
            {
                claims.push(Cow::Owned(format!("{name}-{volume}")));
            }
        }
        let claims: Vec<&str> = claims.iter().map(|c| c.as_ref()).collect();
        self.topology.observe_pod_claims(&namespace, &name, &claims);

        let summary = summarise(deleted, terminating, node.is_some(), &status);
        let restarts: u64 = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .filter_map(|c| c.restart_count)
            .sum();

        let key = match &uid {
            Some(uid) => stable_hash(Domain::Pod, &[uid.as_bytes()]),
            None => stable_hash(Domain::Pod, &[namespace.as_bytes(), name.as_bytes()]),
        };
        let previous = match self.pods.get_mut(key) {
            Some(seen) if *seen.state == *summary.state && restarts <= seen.restarts => {
                return Ok(Decoded::Unchanged { time });
            }
            Some(seen) => {
                let previous = std::mem::replace(&mut seen.state, summary.state.as_ref().into());
                seen.restarts = seen.restarts.max(restarts);
                Cow::Owned(previous.into_string())
            }
            None => {
                self.pods.insert(
                    key,
                    PodSeen {
                        state: summary.state.as_ref().into(),
                        restarts,
                    },
                );
                Cow::Borrowed("")
            }
        };

        // The container the record is about: the state's, else the one that
        // restarted most.
        let subject = summary.from.or_else(|| {
            status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten())
                .filter(|c| c.restart_count.unwrap_or(0) > 0)
                .max_by_key(|c| c.restart_count.unwrap_or(0))
        });
        let last = subject
            .and_then(|c| c.last_state.as_ref())
            .and_then(|s| s.terminated.as_ref());

        let mut fields = Vec::with_capacity(10);
        fields.push(("previous", previous));
        fields.push((
            "phase",
            status
                .phase
                .as_ref()
                .map(|p| p.0.clone())
                .unwrap_or_default(),
        ));
        if let Some(reason) = non_empty(&status.reason) {
            fields.push(("status_reason", reason.clone()));
        }
        fields.push(("restarts", num(restarts)));
        if let Some(last) = last {
            if let Some(reason) = non_empty(&last.reason) {
                fields.push(("last_reason", reason.clone()));
            }
            if let Some(code) = last.exit_code {
                fields.push(("exit_code", Cow::Owned(code.to_string())));
            }
            if let Some(message) = non_empty(&last.message) {
                fields.push(("last_message", message.clone()));
            }
        }
        fields.push((
            "containers",
            match container_names.as_slice() {
                [] => Cow::Borrowed(""),
                [one] => spec_name(&spec, one),
                many => Cow::Owned(many.join(",")),
            },
        ));
        if let Some(top) = pod_owners.last() {
            fields.push(("owner_kind", top.kind.clone()));
        }
        fields.push(("scheduled", flag(node.is_some())));
        if let Some(drivers) = self.topology.csi_drivers(&namespace, &name) {
            fields.push(("csi_drivers", Cow::Owned(drivers)));
        }
        if !claims.is_empty() {
            fields.push(("claims", Cow::Owned(claims.join(","))));
        }

        let labels: Labels<'a> = meta
            .labels
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default();
        let container = subject.and_then(|c| non_empty(&c.name).cloned());
        let severity = if summary.failing {
            Severity::Warning
        } else {
            Severity::Info
        };
        let message = summary.message.unwrap_or_default();
        let reason = summary.state;
        out.push(Event {
            time,
            source: Source::Pod,
            entity: Entity {
                kind: Cow::Borrowed("Pod"),
                namespace: Some(namespace),
                name,
                uid,
                node,
                owners: pod_owners,
            },
            reason,
            message,
            container,
            severity,
            labels: labels.0,
            fields,
            occurrence: None,
            origin: ctx.origin,
        });
        Ok(Decoded::Events(1))
    }
}

/// The single container name as a string of the record (borrowed).
fn spec_name<'a>(spec: &super::wire::Spec<'a>, name: &str) -> Cow<'a, str> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter().flatten())
        .find_map(|c| {
            c.name
                .as_ref()
                .filter(|n| n.as_str() == name)
                .map(|n| n.0.clone())
        })
        .unwrap_or_else(|| Cow::Owned(name.to_owned()))
}

//! Objects of other kinds → [`Source::Object`] events: what they say about
//! the object graph (`correlate::graph`).
//!
//! | kind | entity | fields (each value an object key) |
//! | --- | --- | --- |
//! | Service | the Service | `cluster_ip` (the address, `clusterIP`) |
//! | EndpointSlice | the slice | `service` (label `kubernetes.io/service-name`), `backend` per endpoint whose `targetRef` is a Pod |
//! | Endpoints | its Service | `backend` per address (ready or not) whose `targetRef` is a Pod |
//! | Validating/MutatingWebhookConfiguration | one `Webhook` per webhook (owned by the configuration) | `service` (`clientConfig.service`) |
//! | StorageClass | the class | `provisioner` |
//! | PersistentVolumeClaim | the claim | `storage_class`, `volume` |
//! | PersistentVolume | the volume | `storage_class`, `provisioner` (its CSI driver) |
//! | Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ResourceQuota, PodDisruptionBudget | the object, with its owner chain | none |
//!
//! `reason` is `Present`, or `Deleted` for a watch DELETED. Event time is
//! `observedAt`, else `metadata.creationTimestamp`. A record that says
//! nothing new about its object (a relist, a status-only change) is
//! [`Decoded::Unchanged`]: the last content hash of each object is kept in a
//! bounded table that is not checkpointed (after a restart the first record
//! of each object is stated again, which the graph absorbs).
//!
//! Claims and volumes also keep feeding the topology (`super::volume`).

use std::borrow::Cow;

use correlate::{Entity, Event, Owner, Severity, Source};

use super::error::{DecodeError, Result};
use super::wire::{Endpoint, Labels, Record, non_empty};
use super::{Ctx, Decoded, Decoder, owners, times};
use crate::hash::{Domain, stable_hash};

/// The kinds read for the graph, as `object` dispatches them.
pub(crate) const GRAPH_KINDS: &[&str] = &[
    "Service",
    "EndpointSlice",
    "Endpoints",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "StorageClass",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ResourceQuota",
    "PodDisruptionBudget",
];

/// The key of an object in the engine: `Kind/namespace/name` or `Kind/name`.
fn key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// The Pods behind endpoints, as object keys.
fn backends<'e>(
    endpoints: impl Iterator<Item = &'e Endpoint<'e>>,
    namespace: &str,
) -> Vec<Cow<'static, str>> {
    let mut out: Vec<Cow<'static, str>> = endpoints
        .filter_map(|e| e.target_ref.as_ref())
        .filter(|r| non_empty(&r.kind).is_some_and(|k| k.as_ref() == "Pod"))
        .filter_map(|r| {
            let name = non_empty(&r.name)?;
            let ns = non_empty(&r.namespace).map_or(namespace, |n| n.as_ref());
            Some(Cow::Owned(key("Pod", Some(ns), name)))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl Decoder {
    /// One object of a kind in [`GRAPH_KINDS`].
    pub(super) fn graph_object<'a>(
        &mut self,
        mut rec: Box<Record<'a>>,
        kind: Cow<'a, str>,
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
        let namespace = non_empty(&meta.namespace).cloned();
        let time = match ctx.observed_at {
            Some(t) => t,
            None => times::parse_opt(p, "metadata.creationTimestamp", &meta.creation_timestamp)?
                .ok_or_else(|| DecodeError::no_time(p, "observedAt, metadata.creationTimestamp"))?,
        };
        let ns = namespace.as_deref();
        let spec = rec.spec.take();
        let mut fields: Vec<(&'static str, Cow<'a, str>)> = Vec::new();
        let mut entity_kind = kind;
        let entity_name = name.clone();
        match entity_kind.as_ref() {
            "Service" => {
                if let Some(ip) = spec.as_ref().and_then(|s| non_empty(&s.cluster_ip)) {
                    fields.push(("cluster_ip", ip.clone()));
                }
            }
            "EndpointSlice" => {
                let ns = ns.ok_or_else(|| DecodeError::missing(p, "metadata.namespace"))?;
                let labels: Labels<'a> = meta
                    .labels
                    .and_then(|raw| serde_json::from_str(raw.get()).ok())
                    .unwrap_or_default();
                if let Some((_, svc)) = labels
                    .0
                    .iter()
                    .find(|(k, _)| k == "kubernetes.io/service-name")
                {
                    fields.push(("service", Cow::Owned(key("Service", Some(ns), svc))));
                }
                for b in backends(rec.endpoints.iter().flatten(), ns) {
                    fields.push(("backend", b));
                }
            }
            "Endpoints" => {
                let ns = ns.ok_or_else(|| DecodeError::missing(p, "metadata.namespace"))?;
                entity_kind = Cow::Borrowed("Service");
                let all = rec.subsets.iter().flatten().flat_map(|s| {
                    s.addresses
                        .iter()
                        .flatten()
                        .chain(s.not_ready_addresses.iter().flatten())
                });
                for b in backends(all, ns) {
                    fields.push(("backend", b));
                }
            }
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration" => {
                let config_kind = entity_kind.to_string();
                return Ok(self.webhooks(rec, &config_kind, &name, deleted, time, ctx, out));
            }
            "StorageClass" => {
                if let Some(prov) = non_empty(&rec.provisioner) {
                    fields.push(("provisioner", Cow::Owned(key("Provisioner", None, prov))));
                }
            }
            "PersistentVolumeClaim" | "PersistentVolume" => {
                if let Some(s) = &spec {
                    if let Some(class) = non_empty(&s.storage_class_name) {
                        fields.push((
                            "storage_class",
                            Cow::Owned(key("StorageClass", None, class)),
                        ));
                    }
                    if let Some(v) = non_empty(&s.volume_name) {
                        fields.push(("volume", Cow::Owned(key("PersistentVolume", None, v))));
                    }
                    if let Some(d) = s.csi.as_ref().and_then(|c| non_empty(&c.driver)) {
                        fields.push(("provisioner", Cow::Owned(key("Provisioner", None, d))));
                    }
                }
            }
            _ => {}
        }
        let owners = meta
            .owner_references
            .as_deref()
            .map(|refs| owners::from_refs(refs, None))
            .unwrap_or_default();
        let changed =
            self.object_changed(&entity_kind, ns, &entity_name, deleted, &fields, &owners);
        if !changed {
            return Ok(Decoded::Unchanged { time });
        }
        out.push(object_event(
            time,
            Entity {
                kind: entity_kind,
                namespace,
                name: entity_name,
                uid: non_empty(&meta.uid).cloned(),
                node: None,
                owners,
            },
            deleted,
            fields,
            ctx,
        ));
        Ok(Decoded::Events(1))
    }

    /// One `Webhook` event per webhook of a configuration.
    #[allow(clippy::too_many_arguments)] // the parts of one record
    fn webhooks<'a>(
        &mut self,
        rec: Box<Record<'a>>,
        kind: &str,
        config: &str,
        deleted: bool,
        time: correlate::EventTime,
        ctx: Ctx,
        out: &mut Vec<Event<'a>>,
    ) -> Decoded {
        let mut n = 0;
        for w in rec.webhooks.into_iter().flatten() {
            let Some(name) = non_empty(&w.name).cloned() else {
                continue;
            };
            let mut fields = Vec::new();
            if let Some(svc) = w.client_config.as_ref().and_then(|c| c.service.as_ref())
                && let (Some(ns), Some(svc)) = (non_empty(&svc.namespace), non_empty(&svc.name))
            {
                fields.push(("service", Cow::Owned(key("Service", Some(ns), svc))));
            }
            let owners = vec![Owner {
                kind: Cow::Owned(kind.to_string()),
                name: Cow::Owned(config.to_string()),
            }];
            if !self.object_changed("Webhook", None, &name, deleted, &fields, &owners) {
                continue;
            }
            let entity = Entity {
                kind: Cow::Borrowed("Webhook"),
                namespace: None,
                name,
                uid: None,
                node: None,
                owners,
            };
            out.push(object_event(time, entity, deleted, fields, ctx));
            n += 1;
        }
        // A configuration deleted in a relist comes with its name alone:
        // the graph ends the webhooks it owns.
        if deleted && n == 0 && self.object_changed(kind, None, config, true, &[], &[]) {
            let entity = Entity {
                kind: Cow::Owned(kind.to_string()),
                namespace: None,
                name: Cow::Owned(config.to_string()),
                uid: None,
                node: None,
                owners: Vec::new(),
            };
            out.push(object_event(time, entity, true, Vec::new(), ctx));
            n += 1;
        }
        if n == 0 {
            Decoded::Unchanged { time }
        } else {
            Decoded::Events(n)
        }
    }

    /// Whether a record says something new about its object; remembers it.
    fn object_changed(
        &mut self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        deleted: bool,
        fields: &[(&'static str, Cow<'_, str>)],
        owners: &[Owner<'_>],
    ) -> bool {
        let id = stable_hash(
            Domain::Object,
            &[
                kind.as_bytes(),
                namespace.unwrap_or_default().as_bytes(),
                name.as_bytes(),
            ],
        );
        let mut parts: Vec<&[u8]> = vec![if deleted { b"deleted" } else { b"present" }];
        for (k, v) in fields {
            parts.push(k.as_bytes());
            parts.push(v.as_bytes());
        }
        for o in owners {
            parts.push(o.kind.as_bytes());
            parts.push(o.name.as_bytes());
        }
        let content = stable_hash(Domain::Object, &parts);
        match self.objects.get_mut(id) {
            Some(last) if *last == content => false,
            Some(last) => {
                *last = content;
                true
            }
            None => {
                self.objects.insert(id, content);
                true
            }
        }
    }
}

fn object_event<'a>(
    time: correlate::EventTime,
    entity: Entity<'a>,
    deleted: bool,
    fields: Vec<(&'static str, Cow<'a, str>)>,
    ctx: Ctx,
) -> Event<'a> {
    Event {
        time,
        source: Source::Object,
        entity,
        reason: Cow::Borrowed(if deleted { "Deleted" } else { "Present" }),
        message: Cow::Borrowed(""),
        container: None,
        severity: Severity::Info,
        labels: Vec::new(),
        fields,
        occurrence: None,
        origin: ctx.origin,
    }
}

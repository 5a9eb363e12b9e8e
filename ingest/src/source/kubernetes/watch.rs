//! One watch: a `kube::runtime::watcher` stream turned into deliveries of
//! watch-event lines on one stream.
//!
//! The watcher does the protocol (list in pages, watch from the list's
//! resourceVersion, bookmarks, relist after `410 Gone`, reconnects) and the
//! default backoff paces its retries. Here each object becomes a line:
//! `InitApply` (the initial list and every relist) → `ADDED`, `Apply` →
//! `MODIFIED` (the watcher does not tell ADDED from MODIFIED after the list;
//! the decoder treats them alike), `Delete` → `DELETED`. The objects that are
//! ready together go out as one delivery. Each object is trimmed first
//! ([`Trim`]): `managedFields` and the `last-applied-configuration`
//! annotation always (no decoder reads them and they are often most of an
//! object), webhook configurations' `caBundle`s too. Kinds whose metadata is
//! all the decoder reads are watched metadata-only
//! (`PartialObjectMeta<K>`: the API server sends no spec or status) and
//! their lines say the kind's own `apiVersion` and `kind`, as replay reads
//! them.
//!
//! A relist does not say what was deleted while the watch was away: an
//! object missing from it is simply gone. For Pods, Nodes and storage
//! objects (whose state the decoder remembers) the watch keeps the uid,
//! namespace and name of what it delivered, and after a relist reports each
//! vanished object as a `DELETED` line of its identity alone, stamped
//! `observedAt` = now (the deletion has no time of its own).

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{
    Event as CoreEvent, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{PartialObjectMeta, TypeMeta};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::SOURCE;
use crate::source::{Delivery, Health, Intake, SourceHealth, StreamId};

/// Objects per delivery at most.
const BATCH: usize = 256;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Where a watch's lines go, and what it reports about itself.
#[derive(Clone, Debug)]
pub(super) struct Watch {
    stream: StreamId,
    /// Add `observedAt` (now) to each line.
    stamp: bool,
    intake: Intake,
    health: Arc<SourceHealth>,
    cancel: CancellationToken,
    /// Report objects that vanish across a relist.
    track_deletions: bool,
}

/// What a watch delivered, by uid: (namespace, name).
#[derive(Debug, Default)]
struct Known {
    objects: HashMap<String, (Option<String>, String)>,
    /// Uids listed since the last `Init`, until `InitDone`.
    listing: Option<HashSet<String>>,
    listed_once: bool,
}

impl Known {
    fn seen<K: Resource>(&mut self, object: &K, deleted: bool) {
        let meta = object.meta();
        let Some(uid) = meta.uid.clone() else { return };
        if deleted {
            self.objects.remove(&uid);
            return;
        }
        if let Some(listing) = &mut self.listing {
            listing.insert(uid.clone());
        }
        let name = meta.name.clone().unwrap_or_default();
        self.objects.insert(uid, (meta.namespace.clone(), name));
    }

    /// After a list: the objects delivered before that it no longer has.
    fn listed(&mut self) -> Vec<(String, Option<String>, String)> {
        let listing = self.listing.take().unwrap_or_default();
        let relist = std::mem::replace(&mut self.listed_once, true);
        let mut gone = Vec::new();
        self.objects.retain(|uid, (ns, name)| {
            let keep = listing.contains(uid);
            if !keep && relist {
                gone.push((uid.clone(), ns.take(), std::mem::take(name)));
            }
            keep
        });
        gone.sort();
        gone
    }
}

/// The line of one watch event, as the replay contract reads it.
#[derive(Serialize)]
struct Line<'a, K> {
    #[serde(rename = "type")]
    type_: &'static str,
    object: &'a K,
    #[serde(rename = "observedAt", skip_serializing_if = "Option::is_none")]
    observed_at: Option<&'a str>,
}

/// The watch-event line for `object`.
pub(super) fn render<K: Serialize>(
    type_: &'static str,
    object: &K,
    observed_at: Option<&str>,
) -> serde_json::Result<String> {
    serde_json::to_string(&Line {
        type_,
        object,
        observed_at,
    })
}

/// The `DELETED` line of an object known only by its identity.
fn vanished<K: Resource>(uid: &str, namespace: Option<&str>, name: &str, now: &str) -> String
where
    K::DynamicType: Default,
{
    let dt = K::DynamicType::default();
    let mut metadata = serde_json::json!({"name": name, "uid": uid});
    if let Some(ns) = namespace {
        metadata["namespace"] = ns.into();
    }
    serde_json::json!({
        "type": "DELETED",
        "object": {"apiVersion": K::api_version(&dt), "kind": K::kind(&dt), "metadata": metadata},
        "observedAt": now,
    })
    .to_string()
}

/// Drops what no decoder reads and what makes objects large.
fn slim(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED);
    }
}

/// What a watch drops from an object before it becomes a line: what no
/// decoder reads and what makes objects large. Every watched type says
/// what it keeps; by default all but [`slim`]'s metadata.
pub(super) trait Trim: Resource {
    fn trim(&mut self) {
        slim(self.meta_mut());
    }
}

impl Trim for Event {}
impl Trim for CoreEvent {}
impl Trim for Pod {}
impl Trim for Node {}
impl Trim for PersistentVolumeClaim {}
impl Trim for PersistentVolume {}
impl Trim for Service {}
impl Trim for EndpointSlice {}
impl Trim for StorageClass {}

/// A webhook's `caBundle` (a PEM bundle, base64) is most of its
/// configuration; the decoder reads each webhook's name and Service.
impl Trim for ValidatingWebhookConfiguration {
    fn trim(&mut self) {
        slim(&mut self.metadata);
        for w in self.webhooks.iter_mut().flatten() {
            w.client_config.ca_bundle = None;
        }
    }
}

impl Trim for MutatingWebhookConfiguration {
    fn trim(&mut self) {
        slim(&mut self.metadata);
        for w in self.webhooks.iter_mut().flatten() {
            w.client_config.ca_bundle = None;
        }
    }
}

/// A metadata-only object: the API server calls it
/// `meta.k8s.io/v1 PartialObjectMetadata`; its line names `K`, whose
/// object it is.
impl<K: Resource<DynamicType = ()>> Trim for PartialObjectMeta<K> {
    fn trim(&mut self) {
        slim(&mut self.metadata);
        self.types = Some(TypeMeta::resource::<K>());
    }
}

impl Watch {
    /// A watch named `name` (its stream and health entry), registered now,
    /// not yet connected.
    pub(super) fn new(
        name: String,
        stamp: bool,
        intake: &Intake,
        health: &Health,
        cancel: &CancellationToken,
    ) -> Watch {
        Watch {
            health: health.register(name.clone()),
            stream: StreamId::new(name),
            stamp,
            intake: intake.clone(),
            cancel: cancel.clone(),
            track_deletions: false,
        }
    }

    /// Reports objects that vanish across a relist (see the module docs).
    pub(super) fn tracking_deletions(mut self) -> Watch {
        self.track_deletions = true;
        self
    }

    pub(super) fn health(&self) -> &Arc<SourceHealth> {
        &self.health
    }

    pub(super) fn stream(&self) -> &StreamId {
        &self.stream
    }

    pub(super) fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Watches `api` until cancelled or the pipeline shuts down.
    pub(super) async fn run<K>(self, api: Api<K>, config: watcher::Config)
    where
        K: Trim + Clone + DeserializeOwned + Serialize + Debug + Send + 'static,
        K::DynamicType: Default,
    {
        let _ = self.run_until(api, config, |_| false).await;
    }

    /// Watches `api` until cancelled, the pipeline shuts down, or `give_up`
    /// says an error is final: then that error is returned.
    pub(super) async fn run_until<K>(
        &self,
        api: Api<K>,
        config: watcher::Config,
        give_up: impl Fn(&watcher::Error) -> bool,
    ) -> Option<watcher::Error>
    where
        K: Trim + Clone + DeserializeOwned + Serialize + Debug + Send + 'static,
        K::DynamicType: Default,
    {
        let mut known = self.track_deletions.then(Known::default);
        let events = watcher(api, config).default_backoff().ready_chunks(BATCH);
        let mut events = std::pin::pin!(events);
        loop {
            let batch = tokio::select! {
                () = self.cancel.cancelled() => return None,
                batch = events.next() => batch,
            };
            // The watcher retries for ever; its stream does not end.
            let batch = batch?;
            let observed_at = self.stamp.then(|| jiff::Timestamp::now().to_string());
            let mut lines = Vec::with_capacity(batch.len());
            // The initial list is done, or the watch delivers again after
            // an error (a resumed watch has no InitDone).
            let mut live = false;
            for event in batch {
                let (type_, mut object) = match event {
                    Ok(watcher::Event::Init) => {
                        tracing::debug!(stream = %self.stream, "listing");
                        if let Some(k) = &mut known {
                            k.listing = Some(HashSet::new());
                        }
                        continue;
                    }
                    Ok(watcher::Event::InitDone) => {
                        live = true;
                        if let Some(k) = &mut known {
                            let gone = k.listed();
                            if !gone.is_empty() {
                                tracing::info!(stream = %self.stream, count = gone.len(), "objects deleted while relisting");
                            }
                            let now = jiff::Timestamp::now().to_string();
                            lines.extend(gone.into_iter().map(|(uid, ns, name)| {
                                vanished::<K>(&uid, ns.as_deref(), &name, &now)
                            }));
                        }
                        continue;
                    }
                    Ok(watcher::Event::InitApply(o)) => ("ADDED", o),
                    Ok(watcher::Event::Apply(o)) => {
                        live = true;
                        ("MODIFIED", o)
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        live = true;
                        ("DELETED", o)
                    }
                    Err(e) if give_up(&e) => return Some(e),
                    Err(e) => {
                        self.failed(&e);
                        continue;
                    }
                };
                if let Some(k) = &mut known {
                    k.seen(&object, type_ == "DELETED");
                }
                object.trim();
                match render(type_, &object, observed_at.as_deref()) {
                    Ok(line) => lines.push(line),
                    Err(e) => {
                        self.health.reject("unserializable");
                        tracing::warn!(stream = %self.stream, object = %object.name_any(), error = %e, "object not serializable, skipped");
                    }
                }
            }
            if !lines.is_empty() && !self.deliver(lines).await {
                return None;
            }
            if live {
                if !self.health.is_connected() {
                    tracing::info!(stream = %self.stream, "watch connected");
                }
                self.health.set_connected(true);
            }
        }
    }

    /// A watcher error: the watcher retries after a backoff. A relist after
    /// `410 Gone` is routine; anything else marks the watch disconnected
    /// until its next list completes or it delivers a change again.
    fn failed(&self, e: &watcher::Error) {
        if let watcher::Error::WatchError(status) = e
            && status.code == 410
        {
            tracing::info!(stream = %self.stream, "watch expired (410 Gone), relisting");
            return;
        }
        self.health.set_connected(false);
        self.health.set_error(e);
        tracing::warn!(stream = %self.stream, error = %e, "watch failed");
    }

    /// Hands `lines` to the pipeline, waiting for room; `false` when the
    /// pipeline is shut down or the watch cancelled.
    async fn deliver(&self, lines: Vec<String>) -> bool {
        let n = lines.len() as u64;
        let delivery = Delivery::new(SOURCE, self.stream.clone(), lines);
        tokio::select! {
            () = self.cancel.cancelled() => false,
            sent = self.intake.send(delivery) => {
                if sent.is_ok() {
                    self.health.add_records(n);
                }
                sent.is_ok()
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::events::v1::Event;

    use super::*;

    #[test]
    fn lines_carry_api_version_and_kind_and_are_slimmed() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web-1", "namespace": "shop",
                "annotations": {LAST_APPLIED: "{}", "keep": "me"},
                "managedFields": [{"manager": "kubectl"}]
            },
            "spec": {"containers": [{"name": "web"}]}
        }))
        .unwrap();
        pod.trim();
        let line = render("ADDED", &pod, Some("2026-04-02T10:00:00Z")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "ADDED");
        assert_eq!(v["observedAt"], "2026-04-02T10:00:00Z");
        assert_eq!(v["object"]["apiVersion"], "v1");
        assert_eq!(v["object"]["kind"], "Pod");
        assert_eq!(v["object"]["metadata"]["annotations"]["keep"], "me");
        assert!(
            v["object"]["metadata"]["annotations"]
                .get(LAST_APPLIED)
                .is_none()
        );
        assert!(v["object"]["metadata"].get("managedFields").is_none());

        let event = Event::default();
        let line = render("MODIFIED", &event, None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["object"]["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v["object"]["kind"], "Event");
        assert!(v.get("observedAt").is_none());
    }
}

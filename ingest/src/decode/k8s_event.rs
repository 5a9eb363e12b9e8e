//! Kubernetes Events (core/v1 and events.k8s.io/v1) → [`Source::K8sEvent`].
//!
//! Fields set: `component` (the reporting component or controller),
//! `count` (occurrences so far, at least 1), `action` (when present),
//! `repeat` (`true` when this Event uid was seen before: an update of the
//! same ongoing occurrence, never a new signal), `csi_drivers` (about a Pod
//! whose claims are bound to CSI volumes, when the topology knows them).
//!
//! The entity is the involved object (`regarding`); a Node has no namespace
//! (its Events live in `default`) and is its own node; a Pod takes its node
//! and owners from the topology cache, else the node from the reporting
//! kubelet. Event time is the newest of the Event's timestamps. A record with
//! the same uid and neither a higher count nor a newer time is a relist replay:
//! [`Decoded::Duplicate`].

use std::borrow::Cow;
use std::ops::Range;

use correlate::{Entity, Event, EventTime, Severity, Source};

use super::error::{DecodeError, Result};
use super::wire::{ObjectRef, Record, non_empty};
use super::{Ctx, Decoded, Decoder, flag, num, owners, slice, take, take_non_empty, times};
use crate::hash::{Domain, stable_hash};
use crate::topology::lend;

/// Where `name` is in `spec.containers{name}` (also init and ephemeral
/// containers).
pub(crate) fn container_range(field_path: &str) -> Option<Range<usize>> {
    let inner = [
        "spec.containers{",
        "spec.initContainers{",
        "spec.ephemeralContainers{",
    ]
    .into_iter()
    .find(|p| field_path.starts_with(p))?
    .len();
    let end = field_path.len().checked_sub(1)?;
    (field_path.ends_with('}') && end > inner).then_some(inner..end)
}

/// Last count and time of a Kubernetes Event occurrence.
#[derive(Clone, Copy, Debug)]
pub(super) struct EventSeen {
    pub(super) count: u64,
    pub(super) time: EventTime,
}

impl Decoder {
    pub(super) fn k8s_event<'a>(
        &mut self,
        mut rec: Box<Record<'a>>,
        deleted: bool,
        ctx: Ctx,
        out: &mut Vec<Event<'a>>,
    ) -> Result<Decoded> {
        let p = ctx.prefix;
        let new_api = rec
            .api_version
            .as_ref()
            .is_some_and(|v| v.as_str().starts_with("events.k8s.io/"));
        let (target_field, target) = match (rec.regarding.take(), rec.involved_object.take()) {
            (Some(r), _) => ("regarding", r),
            (None, Some(i)) => ("involvedObject", i),
            (None, None) => {
                return Err(DecodeError::missing(
                    p,
                    if new_api {
                        "regarding"
                    } else {
                        "involvedObject"
                    },
                ));
            }
        };
        let ObjectRef {
            kind,
            namespace,
            name,
            uid,
            field_path,
        } = *target;
        let kind = non_empty(&kind)
            .cloned()
            .ok_or_else(|| DecodeError::missing(p, &format!("{target_field}.kind")))?;
        let name = non_empty(&name)
            .cloned()
            .ok_or_else(|| DecodeError::missing(p, &format!("{target_field}.name")))?;

        let meta = rec.metadata.take().unwrap_or_default();
        let time = times::newest(
            p,
            [
                (
                    "series.lastObservedTime",
                    rec.series.as_ref().map_or(&None, |s| &s.last_observed_time),
                ),
                (
                    "deprecatedSeries.lastObservedTime",
                    rec.deprecated_series
                        .as_ref()
                        .map_or(&None, |s| &s.last_observed_time),
                ),
                ("lastTimestamp", &rec.last_timestamp),
                ("deprecatedLastTimestamp", &rec.deprecated_last_timestamp),
                ("eventTime", &rec.event_time),
                ("firstTimestamp", &rec.first_timestamp),
                ("deprecatedFirstTimestamp", &rec.deprecated_first_timestamp),
                ("metadata.creationTimestamp", &meta.creation_timestamp),
            ],
        )?
        .or(ctx.observed_at)
        .ok_or_else(|| {
            DecodeError::no_time(
                p,
                "series.lastObservedTime, lastTimestamp, eventTime, firstTimestamp, \
                 metadata.creationTimestamp, observedAt",
            )
        })?;

        let occurrence = match (non_empty(&meta.uid), non_empty(&meta.name)) {
            (Some(uid), _) => stable_hash(Domain::K8sEvent, &[uid.as_bytes()]),
            (None, Some(ev_name)) => {
                let ns = non_empty(&meta.namespace).map_or("", |s| s.as_ref());
                stable_hash(Domain::K8sEvent, &[ns.as_bytes(), ev_name.as_bytes()])
            }
            (None, None) => return Err(DecodeError::missing(p, "metadata.uid")),
        };
        if deleted {
            // Events are deleted by their TTL: nothing happened.
            return Ok(Decoded::Events(0));
        }

        let count = [
            rec.count,
            rec.series.as_ref().and_then(|s| s.count),
            rec.deprecated_count,
            rec.deprecated_series.as_ref().and_then(|s| s.count),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(1)
        .max(1);

        // Dedupe: the same uid with neither a higher count nor a newer time.
        self.events.age(time);
        let repeat = match self.events.get_mut(occurrence) {
            Some(seen) if count <= seen.count && time <= seen.time => {
                self.stats.duplicates += 1;
                return Ok(Decoded::Duplicate { time });
            }
            Some(seen) => {
                seen.count = seen.count.max(count);
                seen.time = seen.time.max(time);
                true
            }
            None => {
                self.events.insert(occurrence, EventSeen { count, time });
                false
            }
        };

        let source = rec.source.take().unwrap_or_default();
        let deprecated_source = rec.deprecated_source.take().unwrap_or_default();
        let component = [
            non_empty(&source.component),
            non_empty(&rec.reporting_controller),
            non_empty(&rec.reporting_component),
            non_empty(&deprecated_source.component),
        ]
        .into_iter()
        .flatten()
        .next()
        .cloned();
        let kubelet_host = || {
            non_empty(&source.host)
                .or_else(|| non_empty(&deprecated_source.host))
                .or_else(|| {
                    let by_kubelet = component.as_deref() == Some("kubelet");
                    non_empty(&rec.reporting_instance).filter(|_| by_kubelet)
                })
                .cloned()
        };

        let mut csi_drivers = None;
        let mut entity = Entity {
            kind,
            namespace: None,
            name,
            uid: non_empty(&uid).cloned(),
            node: None,
            owners: Vec::new(),
        };
        match entity.kind.as_ref() {
            "Node" => entity.node = Some(entity.name.clone()),
            "Pod" => {
                entity.namespace = non_empty(&namespace).cloned();
                let host = kubelet_host();
                let cached = entity
                    .namespace
                    .as_deref()
                    .and_then(|ns| self.topology.pod(ns, &entity.name));
                match cached {
                    Some(pod) => {
                        entity.owners = pod.owners_for(&entity.name);
                        entity.node = match (&pod.node, host) {
                            (Some(cached), Some(host)) => Some(lend(cached, &host)),
                            (Some(cached), None) => Some(Cow::Owned(cached.clone())),
                            (None, host) => host,
                        };
                    }
                    None => entity.node = host,
                }
                csi_drivers = entity
                    .namespace
                    .as_deref()
                    .and_then(|ns| self.topology.csi_drivers(ns, &entity.name));
            }
            "ReplicaSet" | "Job" => {
                entity.namespace = non_empty(&namespace).cloned();
                // The controllers above: a ReplicaSet's Deployment, a Job's CronJob.
                entity.owners =
                    owners::chain(entity.kind.clone(), entity.name.clone(), None).split_off(1);
            }
            _ => entity.namespace = non_empty(&namespace).cloned(),
        }

        let container =
            non_empty(&field_path).and_then(|fp| container_range(fp).map(|r| slice(fp, r)));
        let message = if new_api {
            take(&mut rec.note).or_else(|| take(&mut rec.message))
        } else {
            take(&mut rec.message).or_else(|| take(&mut rec.note))
        };
        let severity = match rec.type_.as_ref().map(|t| t.as_str()) {
            Some("Warning") => Severity::Warning,
            _ => Severity::Info,
        };

        let mut fields = Vec::with_capacity(5);
        if let Some(component) = component {
            fields.push(("component", component));
        }
        fields.push(("count", num(count)));
        if let Some(action) = take_non_empty(&mut rec.action) {
            fields.push(("action", action));
        }
        fields.push(("repeat", flag(repeat)));
        if let Some(drivers) = csi_drivers {
            fields.push(("csi_drivers", Cow::Owned(drivers)));
        }

        out.push(Event {
            time,
            source: Source::K8sEvent,
            entity,
            reason: take(&mut rec.reason).unwrap_or_default(),
            message: message.unwrap_or_default(),
            container,
            severity,
            labels: Vec::new(),
            fields,
            occurrence: Some(occurrence),
            origin: ctx.origin,
        });
        Ok(Decoded::Events(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_time_of(line: &str) -> Option<EventTime> {
        let rec: Box<Record<'_>> = serde_json::from_str(line).ok()?;
        let mut out = Vec::new();
        let mut decoder = Decoder::default();
        decoder
            .k8s_event(
                rec,
                false,
                Ctx {
                    origin: correlate::Origin::default(),
                    observed_at: None,
                    prefix: "",
                },
                &mut out,
            )
            .ok()?;
        out.first().map(|e| e.time)
    }

    #[test]
    fn container_from_field_path() {
        let name = |fp: &'static str| container_range(fp).map(|r| &fp[r]);
        assert_eq!(
            name("spec.containers{liveness-probe}"),
            Some("liveness-probe")
        );
        assert_eq!(name("spec.initContainers{init-db}"), Some("init-db"));
        assert_eq!(name("spec.containers{}"), None);
        assert_eq!(name("spec.containers{x"), None);
        assert_eq!(name("metadata.name"), None);
    }

    fn time(line: &str) -> String {
        event_time_of(line)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn event_time_is_the_newest_timestamp() {
        let base = r#""kind":"Event","metadata":{"uid":"u","creationTimestamp":"2026-03-16T08:00:00Z"},"involvedObject":{"kind":"Pod","namespace":"n","name":"p"}"#;
        // Scheduler: only eventTime and series.
        assert_eq!(
            time(&format!(
                r#"{{{base},"firstTimestamp":null,"lastTimestamp":null,"eventTime":"2026-03-16T08:00:01.5Z","series":{{"count":2,"lastObservedTime":"2026-03-16T08:00:12.25Z"}}}}"#
            )),
            "2026-03-16T08:00:12.25Z"
        );
        // Kubelet: lastTimestamp beats firstTimestamp and creation.
        assert_eq!(
            time(&format!(
                r#"{{{base},"firstTimestamp":"2026-03-16T08:00:01Z","lastTimestamp":"2026-03-16T08:00:15Z","eventTime":null}}"#
            )),
            "2026-03-16T08:00:15Z"
        );
        // events.k8s.io: deprecated timestamps count too.
        assert_eq!(
            time(&format!(
                r#"{{{base},"deprecatedLastTimestamp":"2026-03-16T08:00:20Z"}}"#
            )),
            "2026-03-16T08:00:20Z"
        );
        // Nothing but the creation timestamp.
        assert_eq!(time(&format!("{{{base}}}")), "2026-03-16T08:00:00Z");
    }
}

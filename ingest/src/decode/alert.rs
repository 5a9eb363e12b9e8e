//! Alertmanager v4 webhook bodies → one [`Source::Alert`] event per alert.
//!
//! `reason` is the `alertname`, `message` the `summary` annotation (else
//! `description`, else `message`), severity the `severity` label
//! (critical/error/page → critical, warning → warning, else info), labels all
//! the alert's labels. Fields set: `status` (firing/resolved), `fingerprint`
//! and `receiver` (when present), `description` (the annotation, when the
//! message is the summary). `container` is the
//! `container` label of an alert about a Pod.
//!
//! The entity comes from the labels, first match: `pod` → Pod; `daemonset`,
//! `deployment`, `statefulset`, `job_name`, `cronjob` → that workload;
//! `node` → Node; `service` → Service; `namespace` → Namespace; else kind
//! `Alert` named after the alertname. `node` is the `node` label, else (for a
//! Pod) the topology cache's, which also lends the Pod's owners.
//!
//! Event time is `startsAt` when firing, `endsAt` when resolved; the
//! occurrence is the fingerprint (else the sorted labels). Alertmanager
//! repeats its notifications: a delivery of the same (fingerprint, startsAt,
//! status) again is dropped, and a body of only such is [`Decoded::Duplicate`].
//!
//! Alerts are read one by one: a body whose alerts are partly unreadable (a
//! `startsAt` that is no time, labels that are not a map) yields the events
//! of the others, and each bad one is a [`Rejected`] part (with its path and
//! fingerprint) for the caller to count and report. Only a body with no
//! readable alert at all is an error.

use std::borrow::Cow;

use correlate::{Entity, Event, EventTime, Severity, Source};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{DecodeError, Result};
use super::wire::{Alert, Labels, Record, Str, non_empty};
use super::{Decoded, Decoder, Rejected, take_non_empty, times};
use crate::hash::{Domain, stable_hash};

const WORKLOAD_LABELS: [(&str, &str); 5] = [
    ("daemonset", "DaemonSet"),
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("job_name", "Job"),
    ("cronjob", "CronJob"),
];

fn severity_of(label: Option<&str>) -> Severity {
    match label.map(str::to_ascii_lowercase).as_deref() {
        Some("critical" | "error" | "page") => Severity::Critical,
        Some("warning") => Severity::Warning,
        _ => Severity::Info,
    }
}

/// The entity an alert is about, from its labels.
fn entity_of<'a>(labels: &Labels<'a>, alertname: &Cow<'a, str>) -> Entity<'a> {
    let get = |key: &str| labels.get(key).filter(|v| !v.is_empty()).cloned();
    let namespace = get("namespace");
    let node = get("node");
    let make = |kind: &'static str, name: Cow<'a, str>, namespace: Option<Cow<'a, str>>| Entity {
        kind: Cow::Borrowed(kind),
        namespace,
        name,
        uid: None,
        node: node.clone(),
        owners: Vec::new(),
    };
    if let Some(pod) = get("pod") {
        return make("Pod", pod, namespace);
    }
    for (label, kind) in WORKLOAD_LABELS {
        if let Some(name) = get(label) {
            return make(kind, name, namespace);
        }
    }
    if let Some(name) = node.clone() {
        return make("Node", name, None);
    }
    if let Some(service) = get("service") {
        return make("Service", service, namespace);
    }
    if let Some(ns) = namespace {
        return make("Namespace", ns, None);
    }
    make("Alert", alertname.clone(), None)
}

/// The occurrence of an alert: its fingerprint, else its sorted labels.
fn occurrence_of(fingerprint: Option<&str>, labels: &[(Cow<'_, str>, Cow<'_, str>)]) -> u64 {
    if let Some(fp) = fingerprint {
        return stable_hash(Domain::Alert, &[fp.as_bytes()]);
    }
    let mut sorted: Vec<&(Cow<'_, str>, Cow<'_, str>)> = labels.iter().collect();
    sorted.sort();
    let parts: Vec<&[u8]> = sorted
        .iter()
        .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()])
        .collect();
    stable_hash(Domain::Alert, &parts)
}

/// One alert, checked, before any state changes.
struct Checked<'a> {
    alert: Alert<'a>,
    status: Cow<'a, str>,
    time: EventTime,
    occurrence: u64,
    delivery: u64,
}

/// Reads alert `i` of a body from its JSON, and checks it.
fn read<'a>(
    i: usize,
    raw: &'a RawValue,
    body_status: Option<&Cow<'a, str>>,
) -> Result<Checked<'a>> {
    let alert: Alert<'a> =
        serde_json::from_str(raw.get()).map_err(|e| {
            match DecodeError::from_json(&e, raw.get()) {
                DecodeError::WrongType {
                    path,
                    message,
                    column,
                } => DecodeError::WrongType {
                    path: if path == "record" {
                        format!("alerts[{i}]")
                    } else {
                        format!("alerts[{i}].{path}")
                    },
                    message,
                    column,
                },
                other => DecodeError::Invalid {
                    path: format!("alerts[{i}]"),
                    message: other.to_string(),
                },
            }
        })?;
    check(i, alert, body_status)
}

/// The fingerprint of an alert that could not be read, if it has one.
fn fingerprint_of(raw: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Fingerprint<'a> {
        #[serde(borrow)]
        fingerprint: Option<Str<'a>>,
    }
    serde_json::from_str::<Fingerprint<'_>>(raw.get())
        .ok()?
        .fingerprint
        .map(|f| f.as_str().to_string())
        .filter(|f| !f.is_empty())
}

/// Whether a webhook body has an alert the decoder can read: `Err` with the
/// reasons when it has alerts and none is readable (the receiver refuses
/// such a body with 400; one with some readable alerts is taken).
pub fn readable_alerts(text: &str) -> std::result::Result<(), String> {
    let parsed = super::parse(text).map_err(|e| e.to_string())?;
    let super::ParsedLine::Record { record, .. } = parsed.0 else {
        return Err("an empty body".to_string());
    };
    let alerts = record.alerts.as_deref().unwrap_or_default();
    let status = match record.status.as_deref() {
        Some(super::wire::StatusField::Text(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let mut reasons = Vec::new();
    for (i, raw) in alerts.iter().enumerate() {
        match read(i, raw, status.as_ref()) {
            Ok(_) => return Ok(()),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    match reasons.len() {
        0 => Ok(()),
        1..=3 => Err(format!("no readable alert: {}", reasons.join("; "))),
        n => Err(format!(
            "no readable alert: {} and {} more",
            reasons[..3].join("; "),
            n - 3
        )),
    }
}

fn check<'a>(
    i: usize,
    mut alert: Alert<'a>,
    body_status: Option<&Cow<'a, str>>,
) -> Result<Checked<'a>> {
    let path = |field: &str| format!("alerts[{i}].{field}");
    let status = take_non_empty(&mut alert.status)
        .or_else(|| body_status.cloned())
        .ok_or_else(|| DecodeError::Missing {
            path: path("status"),
        })?;
    let (field, value) = match status.as_ref() {
        "firing" => ("startsAt", &alert.starts_at),
        "resolved" => ("endsAt", &alert.ends_at),
        other => {
            return Err(DecodeError::Unsupported {
                path: path("status"),
                value: other.into(),
                expected: "firing or resolved",
            });
        }
    };
    let time = times::parse_opt("", &path(field), value)?
        .ok_or_else(|| DecodeError::Missing { path: path(field) })?;
    if alert.labels.is_none() {
        return Err(DecodeError::Missing {
            path: path("labels"),
        });
    }
    let labels = alert.labels.as_ref().map_or(&[][..], |l| &l.0[..]);
    let occurrence = occurrence_of(non_empty(&alert.fingerprint).map(|f| f.as_ref()), labels);
    let starts_at = alert.starts_at.as_ref().map_or("", |s| s.as_str());
    let delivery = stable_hash(
        Domain::AlertDelivery,
        &[
            &occurrence.to_le_bytes(),
            starts_at.as_bytes(),
            status.as_bytes(),
        ],
    );
    Ok(Checked {
        alert,
        status,
        time,
        occurrence,
        delivery,
    })
}

impl Decoder {
    pub(super) fn alertmanager<'a>(
        &mut self,
        mut rec: Box<Record<'a>>,
        origin: correlate::Origin,
        out: &mut Vec<Event<'a>>,
    ) -> Result<Decoded> {
        match non_empty(&rec.version).map(|v| v.as_ref()) {
            Some("4") => {}
            Some(other) => {
                return Err(DecodeError::Unsupported {
                    path: "version".into(),
                    value: other.into(),
                    expected: "\"4\"",
                });
            }
            None => return Err(DecodeError::missing("", "version")),
        }
        let alerts = rec
            .alerts
            .take()
            .ok_or_else(|| DecodeError::missing("", "alerts"))?;
        let receiver = take_non_empty(&mut rec.receiver);
        let body_status = match rec.status.take().map(|b| *b) {
            Some(super::wire::StatusField::Text(s)) if !s.is_empty() => Some(s),
            _ => None,
        };
        self.stats.alerts += alerts.len() as u64;
        let mut checked = Vec::with_capacity(alerts.len());
        let mut bad = Vec::new();
        let places = rec.alert_places.take();
        for (i, raw) in alerts.into_iter().enumerate() {
            let place = places.as_ref().and_then(|p| p.get(i).copied()).unwrap_or(i);
            match read(place, raw, body_status.as_ref()) {
                Ok(c) => checked.push(c),
                Err(error) => bad.push(Rejected {
                    fingerprint: fingerprint_of(raw),
                    error,
                }),
            }
        }
        if checked.is_empty()
            && let Some(first) = bad.first()
        {
            // Nothing readable: the record is malformed as a whole.
            return Err(match bad.len() {
                1 => first.error.clone(),
                n => DecodeError::Invalid {
                    path: "alerts".to_string(),
                    message: format!("no readable alert ({}; and {} more)", first.error, n - 1),
                },
            });
        }
        self.rejected.extend(bad);
        let total = checked.len();
        let newest = checked.iter().map(|c| c.time).max();
        let mut pushed = 0;
        for Checked {
            alert,
            status,
            time,
            occurrence,
            delivery,
        } in checked
        {
            self.alerts.age(time);
            if self.alerts.get_mut(delivery).is_some() {
                self.stats.duplicates += 1;
                continue;
            }
            self.alerts.insert(delivery, ());
            out.push(self.alert_event(alert, status, time, occurrence, receiver.as_ref(), origin));
            pushed += 1;
        }
        if let Some(time) = newest
            && total > 0
            && pushed == 0
        {
            return Ok(Decoded::Duplicate { time });
        }
        Ok(Decoded::Events(pushed))
    }

    fn alert_event<'a>(
        &mut self,
        mut alert: Alert<'a>,
        status: Cow<'a, str>,
        time: EventTime,
        occurrence: u64,
        receiver: Option<&Cow<'a, str>>,
        origin: correlate::Origin,
    ) -> Event<'a> {
        let labels = alert.labels.take().unwrap_or_default();
        let alertname = labels.get("alertname").cloned().unwrap_or_default();
        let mut entity = entity_of(&labels, &alertname);
        if entity.kind == "Pod"
            && let Some(ns) = entity.namespace.as_deref()
            && let Some(pod) = self.topology.pod(ns, &entity.name)
        {
            entity.owners = pod.owners_for(&entity.name);
            if entity.node.is_none() {
                entity.node = pod.node.clone().map(Cow::Owned);
            }
        }
        let mut annotations = alert.annotations.take().unwrap_or_default();
        let summary = take_non_empty(&mut annotations.summary);
        let description = take_non_empty(&mut annotations.description);
        let mut fields = Vec::with_capacity(4);
        fields.push(("status", status));
        if let Some(fp) = take_non_empty(&mut alert.fingerprint) {
            fields.push(("fingerprint", fp));
        }
        if let Some(receiver) = receiver {
            fields.push(("receiver", receiver.clone()));
        }
        let message = match (summary, description) {
            (Some(summary), Some(description)) => {
                // The summary is the message; the description often names
                // the object and the detail: keep it for the rules.
                fields.push(("description", description));
                summary
            }
            (Some(text), None) | (None, Some(text)) => text,
            (None, None) => take_non_empty(&mut annotations.message).unwrap_or_default(),
        };
        // A Pod's alerts name its container; on other alerts the label is
        // usually the exporter's own container.
        let container = labels
            .get("container")
            .filter(|c| !c.is_empty() && entity.kind == "Pod")
            .cloned();
        Event {
            time,
            source: Source::Alert,
            entity,
            severity: severity_of(labels.get("severity").map(|s| s.as_ref())),
            reason: alertname,
            message,
            container,
            labels: labels.0,
            fields,
            occurrence: Some(occurrence),
            origin,
        }
    }
}

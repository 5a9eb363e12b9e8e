//! An incident as an Alertmanager v4 webhook body, so tools that take
//! Alertmanager's webhooks (PagerDuty and Opsgenie bridges, chat relays,
//! custom receivers) can sit behind epicenter unchanged.
//!
//! One group per incident with one alert in it: `groupKey` and the alert's
//! `fingerprint` are derived from the incident id alone, so they stay the
//! same while the incident's labels change (a raised severity, new
//! attributes) and a receiver that deduplicates or threads by them sees one
//! alert from opening to resolution. Labels are what receivers route on:
//! `alertname` (the rule), `severity`, `incident_id`, where the root is
//! (`namespace`, `node`, `root_kind`, `root_name`, `root_signal`) and the
//! root cause's attributes, names made valid Prometheus label names (an
//! attribute whose name is taken by one of these becomes `attr_<name>`).
//! Annotations carry what people read: `summary` (the title),
//! `description` (the root cause), `blast_radius`, the reasons of an
//! update, and the links (`runbook_url`, `dashboard_url`, `<title>_url`).
//!
//! The keys, their order and their JSON types are Alertmanager's
//! (`notify/webhook.Message`, `template.Data`); a test holds the body
//! against a real one.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::notify::http::truncate;
use crate::notify::ntfy::blast::BlastRadius;
use crate::notify::{Event, Notification, Reason};

/// Alertmanager's `endsAt` of an alert still firing.
pub const NOT_ENDED: &str = "0001-01-01T00:00:00Z";
/// Longest label value kept (receivers index labels).
const LABEL_VALUE_LIMIT: usize = 1024;
/// Longest annotation kept.
const ANNOTATION_LIMIT: usize = 4096;
/// Pods named in the blast radius annotation.
const NAMED: usize = 10;

/// Alertmanager's webhook `Message`, in its key order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerMessage {
    pub receiver: String,
    pub status: &'static str,
    pub alerts: Vec<Alert>,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub version: &'static str,
    pub group_key: String,
    pub truncated_alerts: u64,
}

/// Alertmanager's `template.Alert`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: &'static str,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// The body for `n`; `external_url` is epicenter's own address.
pub fn message(
    n: &Notification,
    receiver: &str,
    external_url: Option<&str>,
) -> AlertmanagerMessage {
    let r = &n.incident;
    let resolved = n.event == Event::Resolved;
    let status = if resolved { "resolved" } else { "firing" };
    let labels = labels(n);
    let annotations = annotations(n);
    let base = external_url.map(|u| u.trim_end_matches('/').to_string());
    let ends_at = if resolved {
        r.resolved_at.unwrap_or(r.last_seen).to_string()
    } else {
        NOT_ENDED.to_string()
    };
    let alert = Alert {
        status,
        labels: labels.clone(),
        annotations: annotations.clone(),
        starts_at: r.opened_at.to_string(),
        ends_at,
        generator_url: base
            .as_deref()
            .map(|b| incident_url(b, &r.id))
            .unwrap_or_default(),
        fingerprint: fingerprint(&r.id),
    };
    let group_labels: BTreeMap<String, String> = [
        ("alertname".to_string(), r.rule.clone()),
        ("incident_id".to_string(), r.id.clone()),
    ]
    .into();
    AlertmanagerMessage {
        receiver: receiver.to_string(),
        status,
        alerts: vec![alert],
        group_key: group_key(&group_labels),
        group_labels,
        common_labels: labels,
        common_annotations: annotations,
        external_url: base.unwrap_or_default(),
        version: "4",
        truncated_alerts: 0,
    }
}

/// Where epicenter serves incident `id`: the alert's `generatorURL`.
pub fn incident_url(base: &str, id: &str) -> String {
    format!("{}/api/v1/incidents/{id}", base.trim_end_matches('/'))
}

/// 16 hex digits, the same for every notification of the incident.
pub fn fingerprint(incident_id: &str) -> String {
    let digest = Sha256::digest(format!("epicenter/incident/{incident_id}").as_bytes());
    hex::encode(&digest[..8])
}

/// Alertmanager's form: `{}:{alertname="...", incident_id="..."}` (the
/// route's matchers, empty here, then the group labels).
fn group_key(group_labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = group_labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{}}:{{{}}}", inner.join(", "))
}

fn labels(n: &Notification) -> BTreeMap<String, String> {
    let r = &n.incident;
    let root = &r.root_cause.entity;
    let mut labels = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        if !v.is_empty() {
            labels.insert(k.to_string(), truncate(v, LABEL_VALUE_LIMIT).into_owned());
        }
    };
    put("alertname", &r.rule);
    put("severity", r.severity.as_str());
    put("incident_id", &r.id);
    if let Some(cluster) = &r.cluster {
        put("cluster", cluster);
    }
    if let Some(ns) = &root.namespace {
        put("namespace", ns);
    }
    if let Some(node) = &root.node {
        put("node", node);
    }
    put("root_kind", &root.kind);
    put("root_name", &root.name);
    put("root_signal", &r.root_cause.signal);
    for (raw, value) in &r.root_cause.attributes {
        let Some(name) = label_name(raw) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let name = if labels.contains_key(&name) {
            format!("attr_{name}")
        } else {
            name
        };
        labels
            .entry(name)
            .or_insert_with(|| truncate(value, LABEL_VALUE_LIMIT).into_owned());
    }
    labels
}

/// `raw` as a Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not the
/// reserved `__` prefix); `None` when nothing of it is left.
pub fn label_name(raw: &str) -> Option<String> {
    let mapped: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let trimmed = mapped.trim_start_matches('_');
    if trimmed.is_empty() {
        return None;
    }
    let mut name = if mapped.starts_with("__") {
        trimmed.to_string()
    } else {
        mapped
    };
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    Some(name)
}

fn annotations(n: &Notification) -> BTreeMap<String, String> {
    let r = &n.incident;
    let mut a = BTreeMap::new();
    let mut put = |k: String, v: &str| {
        if !v.is_empty() {
            a.entry(k)
                .or_insert_with(|| truncate(v, ANNOTATION_LIMIT).into_owned());
        }
    };
    put("summary".to_string(), &r.title);
    put("description".to_string(), &r.root_cause.summary);
    let blast = BlastRadius::of(r);
    let mut radius = blast.headline();
    if !blast.pods.is_empty() {
        let named: Vec<&str> = blast.pods.iter().take(NAMED).map(String::as_str).collect();
        radius.push_str(": ");
        radius.push_str(&named.join(", "));
        if blast.pods.len() > NAMED {
            radius.push_str(&format!(" and {} more", blast.pods.len() - NAMED));
        }
    }
    put("blast_radius".to_string(), &radius);
    let changes: Vec<String> = n
        .reasons
        .iter()
        .filter(|r| !matches!(r, Reason::Opened))
        .map(ToString::to_string)
        .collect();
    put("reasons".to_string(), &changes.join("; "));
    for link in &n.links {
        let title = link.title.to_ascii_lowercase();
        let key = if title.contains("runbook") {
            "runbook_url".to_string()
        } else if title.contains("dashboard") {
            "dashboard_url".to_string()
        } else {
            match label_name(&title) {
                Some(name) => format!("{name}_url"),
                None => continue,
            }
        };
        put(key, &link.url);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_follow_prometheus() {
        assert_eq!(label_name("port").as_deref(), Some("port"));
        assert_eq!(label_name("exit.code").as_deref(), Some("exit_code"));
        assert_eq!(label_name("9lives").as_deref(), Some("_9lives"));
        assert_eq!(label_name("__reserved").as_deref(), Some("reserved"));
        assert_eq!(label_name("a-b/c").as_deref(), Some("a_b_c"));
        assert_eq!(label_name("ключ"), None);
        assert_eq!(label_name(""), None);
    }

    #[test]
    fn group_keys_look_like_alertmanagers() {
        let labels: BTreeMap<String, String> = [
            ("alertname".to_string(), "disk-full".to_string()),
            ("incident_id".to_string(), "ab\"c".to_string()),
        ]
        .into();
        assert_eq!(
            group_key(&labels),
            r#"{}:{alertname="disk-full", incident_id="ab\"c"}"#
        );
        assert_eq!(fingerprint("x"), fingerprint("x"));
        assert_eq!(fingerprint("x").len(), 16);
        assert_ne!(fingerprint("x"), fingerprint("y"));
    }
}

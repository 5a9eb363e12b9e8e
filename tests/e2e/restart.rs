//! A restart resumes from the checkpoint: open incidents are neither
//! forgotten nor announced again, and deliveries already seen before the
//! restart (Alertmanager repeats) form no new signals.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::support::{Serve, wait_for};
use serde_json::{Value, json};

const CONFIG: &str =
    "engine: {lateness: 1s}\npipeline: {checkpoint_interval: 1s, idle_timeout: 1s}\n";

fn rules_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/serve/rules")
        .display()
        .to_string()
}

/// An Alertmanager body: the node alert (firing or resolved) and, while
/// firing, a pod alert on that node.
pub(crate) fn body(starts_at: &str, resolved_at: Option<&str>) -> String {
    let status = if resolved_at.is_some() {
        "resolved"
    } else {
        "firing"
    };
    let mut alerts = vec![json!({
        "status": status,
        "labels": {"alertname": "KubeNodeNotReady", "node": "worker-2", "severity": "critical"},
        "annotations": {"summary": "Node is not ready."},
        "startsAt": starts_at,
        "endsAt": resolved_at.unwrap_or("0001-01-01T00:00:00Z"),
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": "0f1e2d3c4b5a6978",
    })];
    if resolved_at.is_none() {
        alerts.push(json!({
            "status": "firing",
            "labels": {"alertname": "KubePodNotReady", "namespace": "shop", "pod": "cart-0",
                       "node": "worker-2", "severity": "warning"},
            "annotations": {"summary": "Pod has been in a non-ready state for more than 15 minutes."},
            "startsAt": starts_at,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example/graph",
            "fingerprint": "8796a5b4c3d2e1f0",
        }));
    }
    json!({
        "receiver": "epicenter", "status": status, "alerts": alerts,
        "groupLabels": {"node": "worker-2"}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093", "version": "4",
        "groupKey": "{}:{node=\"worker-2\"}", "truncatedAlerts": 0,
    })
    .to_string()
}

fn changes(serve: &Serve) -> Vec<Value> {
    serve
        .changes()
        .into_iter()
        .filter(|c| c["rule"] == "test-node-alert-storm")
        .collect()
}

#[test]
fn a_restart_resumes_open_incidents_without_announcing_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir();
    let started = jiff::Timestamp::now().to_string();

    let first = Serve::start(dir.path(), CONFIG, &["--no-builtin", "--rules", &rules]);
    first.post_alerts(body(&started, None));
    let opened = wait_for("the incident to open", || {
        changes(&first)
            .into_iter()
            .find(|c| c["change"] == "opened")
    });
    let (status, stderr) = first.terminate();
    assert!(status.success(), "{stderr}");

    let second = Serve::start(dir.path(), CONFIG, &["--no-builtin", "--rules", &rules]);
    // Alertmanager repeats the same notification after the restart: the
    // restored decoder knows it.
    second.post_alerts(body(&started, None));
    wait_for("the repeat to be taken", || {
        (second.metric(r#"epicenter_records_total{source="alertmanager"}"#) >= 1.0).then_some(())
    });
    let resolved_at = jiff::Timestamp::now().to_string();
    second.post_alerts(body(&started, Some(&resolved_at)));
    let resolved = wait_for("the restored incident to resolve", || {
        changes(&second)
            .into_iter()
            .find(|c| c["change"] == "resolved")
    });
    assert_eq!(resolved["id"], opened["id"], "the same incident, resumed");
    assert_eq!(
        resolved["affected"][0]["name"], "cart-0",
        "its blast radius kept"
    );
    let seen: Vec<String> = changes(&second)
        .iter()
        .map(|c| c["change"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        !seen.iter().any(|c| c == "opened"),
        "announced again after the restart: {seen:?}"
    );
    assert_eq!(
        second.metric(r#"epicenter_signals_total{signal="test-node-not-ready"}"#),
        0.0,
        "the repeated firing alert formed a new signal"
    );
    let (status, stderr) = second.terminate();
    assert!(status.success(), "{stderr}");
}

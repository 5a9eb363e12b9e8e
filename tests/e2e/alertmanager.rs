//! A real Alertmanager (Debian's prometheus-alertmanager) delivering to
//! `epicenter serve`: alerts pushed to Alertmanager's API arrive as
//! signals, grouped and repeated the way Alertmanager sends them, form one
//! incident, and its resolution resolves it. Then the documented answers to
//! bad requests, and a clean drain on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::support::{Alertmanager, Serve, wait_for};
use serde_json::{Value, json};

const TOKEN: &str = "test-token-5b1e";

fn rules_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/serve/rules")
        .display()
        .to_string()
}

fn alertmanager_config(receiver_url: &str) -> String {
    format!(
        r#"route:
  receiver: epicenter
  group_by: [node]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: epicenter
    webhook_configs:
      - url: {receiver_url}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {TOKEN}
"#
    )
}

fn node_alert(ends_at: Option<&str>) -> Value {
    let mut a = json!({
        "labels": {"alertname": "KubeNodeNotReady", "node": "worker-7", "severity": "critical",
                   "job": "kube-state-metrics", "condition": "Ready", "status": "true"},
        "annotations": {"summary": "Node is not ready.",
                        "description": "worker-7 has been unready for more than 15 minutes."},
    });
    if let Some(t) = ends_at {
        a["endsAt"] = json!(t);
    }
    a
}

fn changes_of(serve: &Serve, change: &str) -> Vec<Value> {
    serve
        .changes()
        .into_iter()
        .filter(|c| c["change"] == change && c["rule"] == "test-node-alert-storm")
        .collect()
}

#[test]
fn a_real_alertmanager_delivers_grouped_and_repeated_alerts_that_form_one_incident() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &format!(
            "engine: {{lateness: 1s}}\npipeline: {{checkpoint_interval: 1s, idle_timeout: 1s}}\nsources:\n  alertmanager: {{token: {TOKEN}}}\n"
        ),
        &["--no-builtin", "--rules", &rules_dir()],
    );
    let am = Alertmanager::start(
        dir.path(),
        &alertmanager_config(&format!("{}/api/v1/alertmanager", serve.base)),
    );

    // A node goes down and a pod on it stops being ready: one group (by node).
    am.push(&json!([
        node_alert(None),
        {
            "labels": {"alertname": "KubePodNotReady", "namespace": "payments",
                       "pod": "ledger-6d9f7c8b5-x2k4q", "node": "worker-7", "severity": "warning"},
            "annotations": {"summary": "Pod has been in a non-ready state for more than 15 minutes."},
        },
    ]));

    let opened = wait_for("the incident to open", || {
        changes_of(&serve, "opened").into_iter().next()
    });
    assert_eq!(opened["root_cause"]["entity"]["kind"], "Node");
    assert_eq!(opened["root_cause"]["entity"]["name"], "worker-7");
    assert_eq!(opened["severity"], "critical");

    // Alertmanager repeats the group every repeat_interval: more deliveries,
    // no more signals, still one incident.
    wait_for("Alertmanager to repeat the notification", || {
        (serve.metric(r#"epicenter_records_total{source="alertmanager"}"#) >= 3.0).then_some(())
    });
    assert_eq!(
        serve.metric(r#"epicenter_signals_total{signal="test-node-not-ready"}"#),
        1.0
    );
    assert_eq!(
        serve.metric(r#"epicenter_signals_total{signal="test-pod-not-ready"}"#),
        1.0
    );
    let affected = wait_for("the pod to be listed as affected", || {
        serve
            .changes()
            .into_iter()
            .rev()
            .find(|c| c["rule"] == "test-node-alert-storm")
            .filter(|c| c["affected"].as_array().is_some_and(|a| !a.is_empty()))
    });
    assert_eq!(affected["affected"][0]["name"], "ledger-6d9f7c8b5-x2k4q");
    assert_eq!(affected["id"], opened["id"], "updated in place, same id");
    assert_eq!(changes_of(&serve, "opened").len(), 1);

    // The node recovers: Alertmanager sends the resolution (send_resolved).
    let now = jiff::Timestamp::now().to_string();
    am.push(&json!([node_alert(Some(&now))]));
    let resolved = wait_for("the incident to resolve", || {
        changes_of(&serve, "resolved").into_iter().next()
    });
    assert_eq!(resolved["id"], opened["id"]);
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(
        serve.metric(r#"epicenter_signals_total{signal="test-node-ready-again"}"#),
        1.0
    );
    assert_eq!(
        serve.metric(
            r#"epicenter_incident_changes_total{rule="test-node-alert-storm",change="opened"}"#
        ),
        1.0
    );

    // Nothing went wrong on the way.
    assert_eq!(
        serve.metric(r#"epicenter_decode_errors_total{source="alertmanager"}"#),
        0.0
    );
    drop(am);
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "exit {status:?}\n{stderr}");
    assert!(stderr.contains("drained and checkpointed"), "{stderr}");
}

#[test]
fn bad_requests_get_the_documented_answers_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &format!("sources:\n  alertmanager: {{token: {TOKEN}, max_body: 1KiB}}\n"),
        &["--no-builtin", "--rules", &rules_dir()],
    );
    let url = format!("{}/api/v1/alertmanager", serve.base);
    let client = testkit::blocking_client();
    let post = |body: String, token: &str| {
        let r = client
            .post(&url)
            .bearer_auth(token)
            .body(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let small = r#"{"version":"4","status":"firing","receiver":"r","alerts":[]}"#.to_string();
    assert_eq!(post(small.clone(), "wrong").0, 401);
    assert_eq!(post(small.clone(), TOKEN).0, 200);
    let (status, reason) = post("{\"version\":\"4\",".to_string(), TOKEN);
    assert_eq!(status, 400);
    assert!(reason.contains("EOF while parsing"), "{reason}");
    assert_eq!(post(format!("{small:<2048}"), TOKEN).0, 413);
    assert_eq!(serve.get("/nowhere").unwrap().0, 404);

    let rejected = |reason: &str| {
        serve.metric(&format!(
            r#"epicenter_source_rejected_total{{source="alertmanager",reason="{reason}"}}"#
        ))
    };
    assert_eq!(rejected("unauthorized"), 1.0);
    assert_eq!(rejected("malformed"), 1.0);
    assert_eq!(rejected("too_large"), 1.0);
    assert_eq!(
        serve.metric(r#"epicenter_records_total{source="alertmanager"}"#),
        1.0
    );

    let (code, body) = serve.get("/readyz").unwrap();
    assert_eq!(code, 200, "{body}");
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "exit {status:?}\n{stderr}");
}

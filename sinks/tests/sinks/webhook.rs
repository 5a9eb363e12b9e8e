//! The webhook notifier over real HTTP against testkit's receiver.
//!
//! What is checked: both bodies arrive as documented (the incident document
//! exactly as `epicenter replay` prints it; an Alertmanager v4 body with
//! every key of a real Alertmanager body, with the same JSON types, and
//! labels a Prometheus receiver accepts); the signature verifies with an
//! HMAC computed here, independently of the notifier, and fails with a
//! wrong secret, a changed body or a stale timestamp; the idempotency key
//! is the same on every attempt of a notification and different across
//! notifications; statuses split into delivered, retry and permanent; a
//! timeout is a retry in doubt, a refused connection a retry that is not.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use correlate::IncidentReport;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use sinks::notify::webhook::{
    WebhookFormat, WebhookNotifier, WebhookSettings, alertmanager::NOT_ENDED, verify_signature,
};
use sinks::notify::{DeliveryError, Event, Link, Notification, Reason, Receipt, Secret};
use testkit::webhook::{Answer, WebhookReceiver};

const SECRET: &str = "whsec-3f9a1c";
const PATIENCE: Duration = Duration::from_secs(30);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> IncidentReport {
    let path = fixtures().join("incidents").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn all_fixtures() -> Vec<(String, IncidentReport)> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join("incidents"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 12, "fixtures missing: {names:?}");
    names
        .into_iter()
        .map(|n| (n.clone(), fixture(&n)))
        .collect()
}

const NFS: &str = "nw-nfs-csi-cascade-892aeef396b372f7.json";

fn note(
    event: Event,
    sequence: u32,
    reasons: Vec<Reason>,
    incident: &IncidentReport,
) -> Notification {
    Notification {
        event,
        sequence,
        reasons,
        links: vec![
            Link {
                title: "Runbook".to_string(),
                url: "https://runbooks.example/csi".to_string(),
            },
            Link {
                title: "Grafana dashboard".to_string(),
                url: "https://grafana.example/d/csi".to_string(),
            },
            Link {
                title: "Logs".to_string(),
                url: "https://logs.example/?q=csi".to_string(),
            },
        ],
        incident: incident.clone(),
    }
}

fn opened(i: &IncidentReport) -> Notification {
    note(Event::Opened, 1, vec![Reason::Opened], i)
}

fn updated(i: &IncidentReport) -> Notification {
    note(
        Event::Updated,
        2,
        vec![Reason::BlastRadius { from: 5, to: 22 }],
        i,
    )
}

fn resolved(i: &IncidentReport) -> Notification {
    let mut i = i.clone();
    i.resolved_at.get_or_insert(i.last_seen);
    note(Event::Resolved, 3, vec![Reason::Resolved], &i)
}

fn notifier(url: &str, format: WebhookFormat, timeout: Duration) -> WebhookNotifier {
    WebhookNotifier::new(WebhookSettings {
        url: url.to_string(),
        format,
        secret: Some(Secret::new(SECRET)),
        headers: vec![("Authorization".to_string(), Secret::new("Bearer rcv-token"))],
        receiver: "oncall".to_string(),
        external_url: Some("https://epicenter.example/".to_string()),
        timeout,
    })
    .unwrap()
}

fn hmac_hex(secret: &[u8], payload: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_incident_body_is_the_notification_around_the_replay_document() {
    let receiver = WebhookReceiver::start();
    let hook = notifier(&receiver.url(), WebhookFormat::Incident, PATIENCE);
    let incident = fixture(NFS);
    let n = updated(&incident);
    assert_eq!(hook.deliver(&n, None).await.unwrap(), Receipt::Sent);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("idempotency-key"),
        Some(format!("{}:2", incident.id).as_str())
    );
    assert_eq!(r.header("x-epicenter-event"), Some("updated"));
    assert_eq!(r.header("authorization"), Some("Bearer rcv-token"));
    let body = r.json().unwrap();
    assert_eq!(body["version"], "1");
    assert_eq!(body["event"], "updated");
    assert_eq!(body["sequence"], 2);
    assert_eq!(
        body["reasons"],
        serde_json::json!([{"kind": "blast_radius", "from": 5, "to": 22}])
    );
    assert_eq!(body["links"][0]["url"], "https://runbooks.example/csi");
    // The incident exactly as replay prints it (the fixture is that output).
    let printed: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("incidents").join(NFS)).unwrap(),
    )
    .unwrap();
    assert_eq!(body["incident"], printed);
}

#[tokio::test]
async fn the_signature_verifies_and_fails_as_it_must() {
    let receiver = WebhookReceiver::start();
    let hook = notifier(&receiver.url(), WebhookFormat::Alertmanager, PATIENCE);
    hook.deliver(&opened(&fixture(NFS)), None).await.unwrap();
    let r = receiver.requests().pop().unwrap();
    let header = r.header("x-epicenter-signature").unwrap().to_string();
    let sig = r.signature().unwrap();
    // An HMAC of our own over `<t>.<body>` matches what was sent.
    assert_eq!(
        sig.v1,
        [hmac_hex(SECRET.as_bytes(), &sig.signed_payload(&r.body))]
    );
    let now = unix_now();
    assert!(
        (now - sig.t).abs() <= 300,
        "signed now: t={} now={now}",
        sig.t
    );

    assert!(verify_signature(
        SECRET.as_bytes(),
        &header,
        &r.body,
        sig.t,
        300
    ));
    assert!(verify_signature(
        SECRET.as_bytes(),
        &header,
        &r.body,
        sig.t + 300,
        300
    ));
    assert!(
        !verify_signature(b"whsec-wrong", &header, &r.body, sig.t, 300),
        "wrong secret"
    );
    assert!(
        !verify_signature(SECRET.as_bytes(), &header, &r.body, sig.t + 301, 300),
        "stale"
    );
    let mut tampered = r.body.clone();
    tampered.extend_from_slice(b" ");
    assert!(
        !verify_signature(SECRET.as_bytes(), &header, &tampered, sig.t, 300),
        "changed body"
    );
    let forged = format!("t={},v1={}", sig.t + 100, sig.v1[0]);
    assert!(
        !verify_signature(SECRET.as_bytes(), &forged, &r.body, sig.t + 100, 300),
        "moved time"
    );
}

/// JSON type names, for comparing shapes.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `real` is in `ours` with the same JSON type, recursively
/// (arrays by their first element; maps of labels and annotations by the
/// type of their values).
fn same_shape(real: &Value, ours: &Value, at: &str, missing: &mut Vec<String>) {
    if kind(real) != kind(ours) {
        missing.push(format!(
            "{at}: {} in the real body, {} in ours",
            kind(real),
            kind(ours)
        ));
        return;
    }
    match (real, ours) {
        (Value::Object(r), Value::Object(o)) => {
            let is_map = [
                "labels",
                "annotations",
                "groupLabels",
                "commonLabels",
                "commonAnnotations",
            ]
            .iter()
            .any(|m| at.ends_with(m));
            for (k, rv) in r {
                if is_map {
                    if let Some(ov) = o.values().next() {
                        same_shape(rv, ov, &format!("{at}.*"), missing);
                    }
                    continue;
                }
                match o.get(k) {
                    Some(ov) => same_shape(rv, ov, &format!("{at}.{k}"), missing),
                    None => missing.push(format!("{at}.{k}: missing")),
                }
            }
        }
        (Value::Array(r), Value::Array(o)) => {
            if let (Some(rv), Some(ov)) = (r.first(), o.first()) {
                same_shape(rv, ov, &format!("{at}[0]"), missing);
            } else if !r.is_empty() {
                missing.push(format!("{at}: empty"));
            }
        }
        _ => {}
    }
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

#[tokio::test]
async fn the_alertmanager_body_has_the_shape_of_a_real_one() {
    let real: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("nw-alertmanager-v4-body.json")).unwrap(),
    )
    .unwrap();
    let receiver = WebhookReceiver::start();
    let hook = notifier(&receiver.url(), WebhookFormat::Alertmanager, PATIENCE);
    let incident = fixture(NFS);
    for n in [opened(&incident), updated(&incident), resolved(&incident)] {
        hook.deliver(&n, None).await.unwrap();
    }
    let bodies: Vec<Value> = receiver
        .requests()
        .iter()
        .map(|r| r.json().unwrap())
        .collect();
    for body in &bodies {
        let mut missing = Vec::new();
        same_shape(&real, body, "$", &mut missing);
        assert!(missing.is_empty(), "{missing:#?}\n{body:#}");
    }

    let open = &bodies[0];
    assert_eq!(open["version"], "4");
    assert_eq!(open["status"], "firing");
    assert_eq!(open["receiver"], "oncall");
    assert_eq!(open["externalURL"], "https://epicenter.example");
    assert_eq!(open["truncatedAlerts"], 0);
    let alerts = open["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    let labels = &alert["labels"];
    for (k, v) in [
        ("alertname", "csi-driver-unavailable"),
        ("severity", "critical"),
        ("incident_id", incident.id.as_str()),
        ("namespace", "nfs-csi"),
        ("root_kind", "DaemonSet"),
        ("root_name", "csi-nfs-node"),
        ("root_signal", "csi-sidecar-port-conflict"),
        ("port", "29653"),
        ("container", "liveness-probe"),
    ] {
        assert_eq!(labels[k], v, "label {k}");
    }
    assert!(labels.get("node").is_none(), "the root has no node");
    let annotations = &alert["annotations"];
    assert_eq!(annotations["summary"], incident.title);
    assert_eq!(annotations["description"], incident.root_cause.summary);
    assert!(annotations["blast_radius"].as_str().unwrap().starts_with(
        "22 pods across 17 namespaces and 4 nodes: calibre/calibre-web-69lnzv7jfp-l7wtk"
    ));
    assert_eq!(annotations["runbook_url"], "https://runbooks.example/csi");
    assert_eq!(
        annotations["dashboard_url"],
        "https://grafana.example/d/csi"
    );
    assert_eq!(annotations["logs_url"], "https://logs.example/?q=csi");
    assert_eq!(alert["startsAt"], incident.opened_at.to_string());
    assert_eq!(alert["endsAt"], NOT_ENDED);
    assert_eq!(
        alert["generatorURL"],
        format!("https://epicenter.example/api/v1/incidents/{}", incident.id)
    );
    let fingerprint = alert["fingerprint"].as_str().unwrap();
    assert!(fingerprint.len() == 16 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(open["commonLabels"], *labels);
    assert_eq!(open["groupLabels"]["incident_id"], incident.id);

    // One alert from opening to resolution.
    for body in &bodies[1..] {
        assert_eq!(body["groupKey"], open["groupKey"]);
        assert_eq!(body["alerts"][0]["fingerprint"], fingerprint);
        assert_eq!(body["alerts"][0]["startsAt"], alert["startsAt"]);
    }
    assert_eq!(
        bodies[1]["alerts"][0]["annotations"]["reasons"],
        "blast radius grew from 5 to 22 entities"
    );
    let done = &bodies[2];
    assert_eq!(done["status"], "resolved");
    assert_eq!(done["alerts"][0]["status"], "resolved");
    assert_eq!(done["alerts"][0]["endsAt"], incident.last_seen.to_string());
}

#[tokio::test]
async fn every_fixture_is_delivered_in_both_formats_with_valid_labels() {
    let receiver = WebhookReceiver::start();
    for format in [WebhookFormat::Incident, WebhookFormat::Alertmanager] {
        let hook = notifier(&receiver.url(), format, PATIENCE);
        for (name, incident) in all_fixtures() {
            for n in [opened(&incident), resolved(&incident)] {
                assert_eq!(
                    hook.deliver(&n, None)
                        .await
                        .unwrap_or_else(|e| panic!("{name}: {e}")),
                    Receipt::Sent
                );
                let body = receiver.requests().pop().unwrap().json().unwrap();
                match format {
                    WebhookFormat::Incident => {
                        let back: IncidentReport =
                            serde_json::from_value(body["incident"].clone()).unwrap();
                        assert_eq!(back.id, incident.id, "{name}");
                        assert_eq!(back.affected.len(), incident.affected.len(), "{name}");
                    }
                    WebhookFormat::Alertmanager => {
                        let alert = &body["alerts"][0];
                        for map in ["labels", "annotations"] {
                            for (k, v) in alert[map].as_object().unwrap() {
                                assert!(is_label_name(k), "{name}: {map} name {k:?}");
                                let v = v.as_str().unwrap();
                                assert!(!v.is_empty() && v.len() <= 4096, "{name}: {k}");
                            }
                        }
                    }
                }
            }
        }
    }
    // The pathological incident's attributes: renamed, never clobbering.
    let hook = notifier(&receiver.url(), WebhookFormat::Alertmanager, PATIENCE);
    let weird = fixture("nw-pathological-huge-unicode.json");
    hook.deliver(&opened(&weird), None).await.unwrap();
    let body = receiver.requests().pop().unwrap().json().unwrap();
    let labels = &body["alerts"][0]["labels"];
    assert_eq!(labels["namespace"], "nfs-csi", "the root's namespace wins");
    assert_eq!(labels["attr_namespace"], "attribute-that-collides");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["attr_severity"], "attribute-that-collides-too");
    assert_eq!(labels["exit_code"], "137");
    assert_eq!(labels["_9lives"], "nine");
    assert_eq!(labels["reserved"], "r");
    assert!(labels["a_b_c"].as_str().unwrap().len() <= 1024);
    assert!(labels.get("empty").is_none());
}

#[tokio::test]
async fn the_idempotency_key_is_per_notification_not_per_attempt() {
    let receiver = WebhookReceiver::start();
    let hook = notifier(&receiver.url(), WebhookFormat::Incident, PATIENCE);
    let incident = fixture(NFS);
    receiver.answer_next(2, Answer::Status(503));
    let first = opened(&incident);
    for _ in 0..2 {
        assert!(matches!(
            hook.deliver(&first, None).await,
            Err(DeliveryError::Retry { .. })
        ));
    }
    hook.deliver(&first, None).await.unwrap();
    hook.deliver(&updated(&incident), None).await.unwrap();
    let requests = receiver.requests();
    let keys: Vec<&str> = requests
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    let (one, two) = (format!("{}:1", incident.id), format!("{}:2", incident.id));
    assert_eq!(
        keys,
        [one.as_str(), one.as_str(), one.as_str(), two.as_str()]
    );
    assert_eq!(
        requests[0].body, requests[2].body,
        "a retry sends the same body"
    );
    assert_ne!(requests[2].body, requests[3].body);
}

#[tokio::test]
async fn statuses_are_delivered_retried_or_permanent() {
    let receiver = WebhookReceiver::start();
    let hook = notifier(&receiver.url(), WebhookFormat::Incident, PATIENCE);
    let n = opened(&fixture(NFS));
    let cases: Vec<(Answer, &str, Option<u64>)> = vec![
        (Answer::Status(200), "sent", None),
        (Answer::Status(202), "sent", None),
        (Answer::Status(204), "sent", None),
        (Answer::Status(500), "retry", None),
        (Answer::Status(502), "retry", None),
        (Answer::StatusRetryAfter(503, 30), "retry", Some(30)),
        (Answer::StatusRetryAfter(429, 12), "retry", Some(12)),
        (Answer::Status(408), "retry", None),
        (Answer::Status(400), "permanent", None),
        (Answer::Status(401), "permanent", None),
        (Answer::Status(403), "permanent", None),
        (Answer::Status(404), "permanent", None),
        (Answer::Status(410), "permanent", None),
        (Answer::Status(413), "permanent", None),
        (Answer::Status(422), "permanent", None),
    ];
    for (answer, want, wait) in cases {
        receiver.answer_next(1, answer);
        let got = hook.deliver(&n, None).await;
        match (want, got) {
            ("sent", Ok(Receipt::Sent)) => {}
            (
                "retry",
                Err(DeliveryError::Retry {
                    retry_after,
                    in_doubt,
                    reason,
                    ..
                }),
            ) => {
                assert_eq!(retry_after, wait.map(Duration::from_secs), "{answer:?}");
                assert!(!in_doubt, "{answer:?}: an answer is not in doubt");
                assert!(reason.starts_with("webhook: HTTP "), "{reason}");
            }
            ("permanent", Err(DeliveryError::Permanent { reason, .. })) => {
                assert!(reason.starts_with("webhook: HTTP 4"), "{reason}");
            }
            (want, got) => panic!("{answer:?}: want {want}, got {got:?}"),
        }
    }
}

#[tokio::test]
async fn a_timeout_is_in_doubt_and_a_refused_connection_is_not() {
    let receiver = WebhookReceiver::start();
    let hook = notifier(
        &receiver.url(),
        WebhookFormat::Incident,
        Duration::from_secs(1),
    );
    let n = opened(&fixture(NFS));
    receiver.answer_next(1, Answer::Delay(Duration::from_secs(10)));
    match hook.deliver(&n, None).await {
        Err(DeliveryError::Retry { in_doubt, .. }) => assert!(in_doubt),
        other => panic!("want a retry in doubt, got {other:?}"),
    }
    assert_eq!(receiver.requests().len(), 1, "the request landed");

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nobody = notifier(
        &format!("http://127.0.0.1:{port}/hook"),
        WebhookFormat::Incident,
        PATIENCE,
    );
    match nobody.deliver(&n, None).await {
        Err(DeliveryError::Retry {
            in_doubt, reason, ..
        }) => {
            assert!(!in_doubt, "never connected: {reason}");
            assert!(reason.starts_with("webhook: "), "{reason}");
        }
        other => panic!("want a retry, got {other:?}"),
    }
}

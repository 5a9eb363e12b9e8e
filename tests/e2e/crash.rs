//! kill -9 loses nothing that was acknowledged (issue 11, probe 1).
//!
//! Critical volume alerts are posted to serve's receiver; some are
//! processed and announced, the last ones are answered 200 an instant
//! before serve is killed with SIGKILL. Checkpoints are a minute apart, so
//! the engine's checkpoint holds none of it. After the restart every alert
//! that was answered 200 has its incident, the resolutions sent after the
//! restart close the incidents opened before the crash, and the webhook
//! receiver got every opening once (one delivery in flight at the kill may
//! come twice, with the same `Idempotency-Key`).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::webhook::WebhookReceiver;

use crate::support::{Serve, wait_for};

pub(crate) fn volume_alert(claim: &str, status: &str, at: &str) -> Value {
    json!({
        "status": status,
        "labels": {
            "alertname": "KubePersistentVolumeFillingUp",
            "severity": "critical",
            "namespace": "data",
            "persistentvolumeclaim": claim,
            "node": "worker-1",
        },
        "annotations": {
            "description": format!("The PersistentVolume claimed by {claim} in Namespace data is only 1.2% free."),
            "summary": "PersistentVolume is filling up.",
        },
        "startsAt": at,
        "endsAt": if status == "resolved" { at } else { "0001-01-01T00:00:00Z" },
        "fingerprint": format!("{:016x}", crc(claim)),
    })
}

fn crc(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(crate) fn body(alerts: &[Value]) -> String {
    json!({
        "receiver": "epicenter", "status": alerts[0]["status"], "alerts": alerts,
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093", "version": "4",
        "groupKey": "{}:{}", "truncatedAlerts": 0,
    })
    .to_string()
}

/// Posts until answered 200, as Alertmanager retries (a refused or broken
/// connection while serve is down or draining is retried).
pub(crate) fn post_until_ok(base: &str, body: &str) {
    let client = testkit::blocking_client();
    wait_for("the receiver to answer 200", || {
        client
            .post(format!("{base}/api/v1/alertmanager"))
            .body(body.to_string())
            .send()
            .ok()
            .filter(|r| r.status().as_u16() == 200)
            .map(|_| ())
    });
}

/// The latest state of each incident in the file sink, by id.
pub(crate) fn incidents(file: &std::path::Path) -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Ok(c) = serde_json::from_str::<Value>(line) else {
            continue; // the last line of a killed writer may be cut
        };
        out.insert(c["id"].as_str().unwrap().to_string(), c);
    }
    out
}

/// Claim name -> (status) of the volume-full incidents.
pub(crate) fn by_claim(file: &std::path::Path) -> BTreeMap<String, String> {
    incidents(file)
        .values()
        .filter(|c| c["rule"] == "volume-full" && c["change"] != "merged")
        .map(|c| {
            (
                c["root_cause"]["entity"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn kill_9_loses_no_acknowledged_alert_and_announces_each_incident_once() {
    let hook = WebhookReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("incidents.ndjson");
    let config = format!(
        "engine: {{lateness: 1s}}\n\
         pipeline: {{checkpoint_interval: 60s, idle_timeout: 1s}}\n\
         sinks: {{stdout: {{enabled: false}}, file: {{path: incidents.ndjson}}, history: {{enabled: false}}}}\n\
         notify:\n  throttle: 1h\n  receivers:\n    - name: ops\n      webhook: [{{url: '{}', timeout: 2s}}]\n",
        hook.url()
    );
    let now = || jiff::Timestamp::now().to_string();
    let claims: Vec<String> = (0..40).map(|i| format!("pgdata-{i:02}")).collect();
    let started: Vec<String> = claims.iter().map(|_| now()).collect();

    let first = Serve::start(dir.path(), &config, &[]);
    // Processed and announced before the crash.
    for (c, at) in claims[..25].iter().zip(&started) {
        post_until_ok(&first.base, &body(&[volume_alert(c, "firing", at)]));
    }
    wait_for("the first incidents to be announced", || {
        (hook.requests().len() >= 25).then_some(())
    });
    // Acknowledged an instant before the crash.
    for (c, at) in claims[25..].iter().zip(&started[25..]) {
        post_until_ok(&first.base, &body(&[volume_alert(c, "firing", at)]));
    }
    first.crash();

    let second = Serve::start(dir.path(), &config, &[]);
    // Every incident opened before the crash is known again: its
    // resolution closes it.
    for c in &claims[..10] {
        post_until_ok(&second.base, &body(&[volume_alert(c, "resolved", &now())]));
    }
    let expected: BTreeMap<String, String> = claims
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                c.clone(),
                if i < 10 { "resolved" } else { "firing" }.to_string(),
            )
        })
        .collect();
    let mut last = BTreeMap::new();
    let settled = (0..600).any(|_| {
        last = by_claim(&file);
        if last == expected {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        false
    });
    assert!(
        settled,
        "every acknowledged alert has its incident, every acknowledged resolution closed it:\n\
         missing or wrong: {:?}",
        expected
            .iter()
            .filter(|(c, s)| last.get(*c) != Some(*s))
            .collect::<Vec<_>>()
    );
    wait_for("the resolutions to be announced", || {
        let resolved = hook
            .requests()
            .iter()
            .filter(|r| r.header("x-epicenter-event") == Some("resolved"))
            .count();
        (resolved >= 10).then_some(())
    });
    let (status, stderr) = second.terminate();
    assert!(status.success(), "{stderr}");

    // Each incident announced once.
    let requests = hook.requests();
    let mut openings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in requests
        .iter()
        .filter(|r| r.header("x-epicenter-event") == Some("opened"))
    {
        let key = r.header("idempotency-key").unwrap().to_string();
        let incident = key.rsplit_once(':').unwrap().0.to_string();
        openings.entry(incident).or_default().push(key);
    }
    assert_eq!(openings.len(), claims.len(), "one opening per incident");
    for (incident, keys) in &openings {
        let distinct: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(
            distinct.len(),
            1,
            "{incident} announced as two openings: {keys:?}"
        );
    }
    let repeated: usize = openings.values().map(|k| k.len() - 1).sum();
    assert!(
        repeated <= 1,
        "{repeated} openings delivered twice (at most the one in flight at the kill)"
    );
}

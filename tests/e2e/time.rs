//! One far-future timestamp does not poison time (issue 11, probe 4).
//!
//! In replay a record dated 2100 (or 9999-12-31, valid RFC 3339) at the top
//! or in the middle of the shipped example changes nothing: it is held, then
//! processed at the stream's time, and said so. In serve a Watchdog alert
//! with `startsAt` in 2100 is processed at the wall clock's time: open
//! incidents stay open, the watermark never runs ahead of the wall clock,
//! and nothing of it survives a restart.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Serve, bin, root, wait_for};

/// A Normal Event (noise for every rule) dated `at`.
fn event_at(at: &str) -> String {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web-0.17f0", "namespace": "shop", "uid": "7d9e2f7c-0000-4000-8000-000000002100",
                     "creationTimestamp": at},
        "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-0"},
        "reason": "Pulled", "message": "Container image \"nginx:1.27\" already present on machine",
        "source": {"component": "kubelet", "host": "worker-1"},
        "firstTimestamp": at, "lastTimestamp": at, "count": 1, "type": "Normal",
    })
    .to_string()
}

fn replay(input: &Path) -> (String, String) {
    let out = bin()
        .arg("replay")
        .arg("--rules")
        .arg(root().join("rules"))
        .arg(input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_record_from_the_future_changes_nothing_in_replay() {
    let example = root().join("examples/nfs-csi-cascade.ndjson");
    let (plain, _) = replay(&example);
    assert!(plain.lines().count() >= 2, "{plain}");
    let text = std::fs::read_to_string(&example).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let dir = tempfile::tempdir().unwrap();
    for (name, at, position) in [
        ("top", "2100-01-01T00:00:00Z", 0),
        ("middle", "9999-12-31T23:59:59Z", lines.len() / 2),
    ] {
        let mut poisoned: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
        poisoned.insert(position, event_at(at));
        let path = dir.path().join(format!("{name}.ndjson"));
        std::fs::write(&path, poisoned.join("\n") + "\n").unwrap();
        let (out, stderr) = replay(&path);
        assert_eq!(out, plain, "{name}: the incidents changed");
        assert!(
            stderr.contains("1 records dated more than 10m ahead of the stream"),
            "{name}: {stderr}"
        );
        assert!(
            !stderr.contains("skipped"),
            "{name}: a valid time refused: {stderr}"
        );
    }
}

fn rules_dir() -> String {
    root().join("tests/serve/rules").display().to_string()
}

fn alert(name: &str, labels: Value, starts_at: &str) -> String {
    let mut l = labels;
    l["alertname"] = json!(name);
    json!({
        "receiver": "epicenter", "status": "firing", "version": "4",
        "alerts": [{"status": "firing", "labels": l, "annotations": {"summary": name},
                    "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": format!("{:0>16}", name.len())}],
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093", "groupKey": "{}", "truncatedAlerts": 0,
    })
    .to_string()
}

fn lag(serve: &Serve) -> f64 {
    serve.metric("epicenter_watermark_lag_seconds")
}

#[test]
fn an_alert_from_the_future_neither_resolves_incidents_nor_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = "engine: {lateness: 1s}\npipeline: {checkpoint_interval: 1s, idle_timeout: 1s}\n";
    let rules = rules_dir();
    let first = Serve::start(dir.path(), config, &["--no-builtin", "--rules", &rules]);
    let now = jiff::Timestamp::now().to_string();
    first.post_alerts(alert(
        "KubeNodeNotReady",
        json!({"node": "worker-2", "severity": "critical"}),
        &now,
    ));
    wait_for("the incident to open", || {
        first
            .changes()
            .iter()
            .any(|c| c["change"] == "opened")
            .then_some(())
    });
    first.post_alerts(alert(
        "Watchdog",
        json!({"severity": "none"}),
        "2100-01-01T00:00:00Z",
    ));
    wait_for("the future alert to be counted", || {
        (first.metric(r#"epicenter_records_clamped_total{source="alertmanager"}"#) == 1.0)
            .then_some(())
    });
    // Several ticks and a checkpoint later: nothing resolved, time sane.
    std::thread::sleep(Duration::from_secs(2));
    let changes: Vec<Value> = first.changes();
    assert!(
        changes.iter().all(|c| c["status"] == "firing"),
        "an incident resolved: {changes:#?}"
    );
    let l = lag(&first);
    assert!((0.0..60.0).contains(&l), "watermark lag {l}");
    let (status, stderr) = first.terminate();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("dated ahead of the wall clock"), "{stderr}");

    let second = Serve::start(dir.path(), config, &["--no-builtin", "--rules", &rules]);
    wait_for("a scrape with the engine published", || {
        (second.metric("epicenter_watermark_lag_seconds") != 0.0).then_some(())
    });
    let l = lag(&second);
    assert!(
        (0.0..60.0).contains(&l),
        "watermark lag after the restart {l}"
    );
    assert!(
        second.changes().iter().all(|c| c["change"] != "resolved"),
        "{:#?}",
        second.changes()
    );
}

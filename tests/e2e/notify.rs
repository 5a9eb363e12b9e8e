//! `epicenter serve` telling people, through a crash: records from a real
//! Kafka-protocol broker (tansu) form the incidents; Slack (the local Slack
//! of `testkit`, which checks what Slack checks) posts the opening but
//! answers after the client gave up, then rate-limits everything, and ntfy
//! refuses everything; the process is killed (SIGKILL) with notifications
//! pending in its outbox. After the restart, with both services healthy,
//! every notification is delivered exactly once: one Slack message per
//! incident, updated in place, and one ntfy notification per incident.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support::{Serve, wait_for};
use testkit::Tansu;
use testkit::ntfy::{Fault as NtfyFault, LocalNtfy};
use testkit::slack::{CHANNEL_ID, FakeSlack, FakeSlackOptions, Fault as SlackFault};

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nfs-csi-cascade.ndjson")
}

/// Incident id -> title, as `replay` forms them.
fn replay() -> BTreeMap<String, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_epicenter"))
        .args(["replay", "--lateness", "10s"])
        .arg(example())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                v["title"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pending(serve: &Serve, sink: &str, kind: &str) -> f64 {
    serve.metric(&format!(
        r#"epicenter_outbox_pending{{sink="{sink}",kind="{kind}"}}"#
    ))
}

#[test]
fn a_crash_with_a_pending_outbox_delivers_every_notification_exactly_once() {
    let tansu = Tansu::start();
    let bootstrap = tansu.bootstrap();
    let lines: Vec<String> = std::fs::read_to_string(example())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        testkit::create_topic(&bootstrap, "records", 1)
            .await
            .unwrap();
        let producer = testkit::producer(&bootstrap).unwrap();
        let records: Vec<(i32, Vec<u8>)> =
            lines.iter().map(|l| (0, l.clone().into_bytes())).collect();
        testkit::produce(&producer, "records", &records)
            .await
            .unwrap();
    });
    let expected = replay();
    assert!(!expected.is_empty());

    let slack = FakeSlack::start(FakeSlackOptions::default());
    // The first opening is posted but answered after the client's timeout:
    // in doubt. Everything after it is rate limited.
    slack.fault_on(
        "chat.postMessage",
        SlackFault::Delay(Duration::from_secs(6)),
        1,
    );
    slack.fault(SlackFault::RateLimited { retry_after: 1 }, 100_000);
    let ntfy = LocalNtfy::start();
    ntfy.fail_next(
        100_000,
        NtfyFault::TooManyRequests {
            retry_after: Some(1),
        },
    );

    let config = format!(
        "engine: {{lateness: 10s}}\npipeline: {{checkpoint_interval: 1s, idle_timeout: 1s}}\n\
         sources:\n  alertmanager: {{enabled: false}}\n  kafka: {{brokers: '{bootstrap}', topics: [records], group: epicenter-notify, max_batch: 1}}\n\
         notify:\n  throttle: 1s\n  receivers:\n    - name: ops\n\
         \x20     slack: [{{token: '{token}', channel: {CHANNEL_ID}, api_url: '{api}', timeout: 2s, rate_limit: 50/s}}]\n\
         \x20     ntfy: [{{server: '{ntfy}', topic: alerts, timeout: 2s, rate_limit: 50/s}}]\n",
        token = slack.token(),
        api = slack.api_url(),
        ntfy = ntfy.url(),
    );
    let dir = tempfile::tempdir().unwrap();
    let first = Serve::start(dir.path(), &config, &[]);
    wait_for(
        "every record taken, checkpointed, with notifications pending",
        || {
            let taken = first.metric(r#"epicenter_records_total{source="kafka"}"#);
            (taken >= lines.len() as f64
                && first.metric("epicenter_checkpoints_total") >= 3.0
                && pending(&first, "ops/slack/0", "slack") >= 1.0
                && pending(&first, "ops/ntfy/0", "ntfy") >= 1.0
                && !slack.messages(CHANNEL_ID).is_empty())
            .then_some(())
        },
    );
    first.crash();
    assert_eq!(
        slack.messages(CHANNEL_ID).len(),
        1,
        "before the crash only the late-answered opening got through"
    );
    assert!(ntfy.messages().is_empty());

    slack.clear_faults();
    ntfy.clear_faults();
    let second = Serve::start(dir.path(), &config, &[]);
    wait_for("the outbox to drain", || {
        (pending(&second, "ops/slack/0", "slack") == 0.0
            && pending(&second, "ops/ntfy/0", "ntfy") == 0.0
            && second
                .metric(r#"epicenter_outbox_delivered_total{sink="ops/slack/0",kind="slack"}"#)
                >= 1.0)
            .then_some(())
    });
    let recovered =
        second.metric(r#"epicenter_outbox_recovered_total{sink="ops/slack/0",kind="slack"}"#);
    let (status, stderr) = second.terminate();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        recovered, 1.0,
        "the in-doubt opening was found, not posted again"
    );

    // Slack: one message per incident, whatever happened to it.
    let messages = slack.messages(CHANNEL_ID);
    let mut per_incident: BTreeMap<String, usize> = BTreeMap::new();
    for m in messages.iter().filter(|m| m.thread_ts.is_none()) {
        let id = m.payload().unwrap()["incident_id"]
            .as_str()
            .unwrap()
            .to_string();
        *per_incident.entry(id).or_default() += 1;
        let mut sequences: Vec<u64> = m
            .replies
            .iter()
            .map(|r| r.payload().unwrap()["sequence"].as_u64().unwrap())
            .collect();
        let all = sequences.len();
        sequences.dedup();
        assert_eq!(sequences.len(), all, "a thread reply posted twice: {m:#?}");
    }
    assert!(
        per_incident.values().all(|&n| n == 1),
        "an incident posted twice: {per_incident:?}"
    );
    for (id, title) in &expected {
        assert_eq!(
            per_incident.get(id),
            Some(&1),
            "incident {id} ({title}) not on Slack"
        );
        let m = messages
            .iter()
            .find(|m| m.thread_ts.is_none() && m.payload().unwrap()["incident_id"] == id.as_str())
            .unwrap();
        assert!(
            m.all_text().contains(&title[..title.len().min(40)]),
            "the message of {id} does not show its latest title {title:?}: {}",
            m.all_text()
        );
    }

    // ntfy: one notification per incident on the phone.
    let shown = ntfy.phone("alerts");
    let mut ids: Vec<&str> = shown
        .iter()
        .map(|s| s.message.sequence_id.as_str())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        shown.len(),
        "an incident shown twice on the phone"
    );
    for id in expected.keys() {
        assert!(
            shown.iter().any(|s| s.message.sequence_id == *id),
            "incident {id} never reached ntfy: {shown:#?}"
        );
    }
}

//! A real Kafka-protocol broker (tansu) feeding `epicenter serve` and
//! receiving its incidents, with a crash (SIGKILL) in the middle: the
//! restarted service resumes from its checkpoint and the broker's committed
//! offsets, and the incidents are exactly those `replay` forms from the same
//! records. Nothing lost, nothing announced twice under another id.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{Serve, apply, latest, wait_for};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use serde_json::Value;
use testkit::Tansu;

const LATENESS: &str = "10s";

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nfs-csi-cascade.ndjson")
}

fn replay() -> BTreeMap<String, Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_epicenter"))
        .args(["replay", "--lateness", LATENESS])
        .arg(example())
        .output()
        .unwrap();
    assert!(out.status.success());
    latest(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap()),
    )
}

fn read_topic(bootstrap: &str, topic: &str) -> Vec<(String, Value)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "incident-reader")
        .set("group.protocol", "classic")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let mut quiet = 0;
    while quiet < 30 {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                quiet = 0;
                let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
                out.push((key, serde_json::from_slice(m.payload().unwrap()).unwrap()));
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None if out.is_empty() => {}
            None => quiet += 1,
        }
    }
    out
}

#[test]
fn kafka_in_and_out_with_a_crash_in_the_middle_loses_nothing() {
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
        testkit::create_topic(&bootstrap, "incidents", 1)
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

    // One record per delivery, as replay takes them: the same watermark
    // steps, so the same records are late in both.
    let config = format!(
        "engine: {{lateness: {LATENESS}}}\npipeline: {{checkpoint_interval: 1s, idle_timeout: 1s}}\n\
         sources:\n  alertmanager: {{enabled: false}}\n  kafka: {{brokers: '{bootstrap}', topics: [records], group: epicenter-e2e, max_batch: 1}}\n\
         sinks:\n  kafka: {{brokers: '{bootstrap}', topic: incidents}}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let first = Serve::start(dir.path(), &config, &[]);
    let half = lines.len() as f64 / 2.0;
    wait_for("the first half to be consumed and checkpointed", || {
        let taken = first.metric(r#"epicenter_records_total{source="kafka"}"#);
        (taken >= half && first.metric("epicenter_checkpoints_total") >= 2.0).then_some(())
    });
    let before_crash = first.changes();
    first.crash();

    let second = Serve::start(dir.path(), &config, &[]);
    let got = wait_for("every incident replay forms", || {
        let mut seen = latest(before_crash.clone());
        apply(&mut seen, second.changes());
        expected
            .iter()
            .all(|(id, want)| seen.get(id) == Some(want))
            .then(|| seen.clone())
    });
    let resumed = second.metric(r#"epicenter_records_total{source="kafka"}"#);
    assert!(
        resumed < lines.len() as f64,
        "the restart read everything again ({resumed} records): offsets were not committed"
    );
    let (status, stderr) = second.terminate();
    assert!(status.success(), "{stderr}");

    let extra: Vec<&String> = got
        .keys()
        .filter(|id| !expected.contains_key(*id))
        .collect();
    assert!(
        extra.is_empty(),
        "incidents replay does not form: {extra:?}"
    );

    // The incidents topic: keyed by incident id, the latest of each equal.
    let published = read_topic(&bootstrap, "incidents");
    let by_key = latest(published.iter().map(|(k, v)| {
        assert_eq!(v["id"].as_str(), Some(k.as_str()), "keyed by incident id");
        v.clone()
    }));
    assert_eq!(by_key, expected);
}

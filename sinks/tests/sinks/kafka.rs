//! The Kafka sink against a real Kafka-protocol broker (tansu, started per
//! test by `testkit`) and librdkafka's mock cluster.
//!
//! What is checked: incidents land keyed by their id and read back as
//! produced; a topic that does not exist and a broker that is gone are
//! errors naming an incident, returned within the delivery timeout rather
//! than hanging; the same sink delivers again once the broker is back.
//! The time limits only turn a hang into a failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::json;
use sinks::kafka::{Error, KafkaSink};

const PATIENCE: Duration = Duration::from_secs(90);

fn incidents(prefix: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}{i:04x}");
            let doc = json!({"id": id, "rule": "some-rule", "title": format!("incident {i}"), "status": "firing"});
            (id, serde_json::to_vec(&doc).unwrap())
        })
        .collect()
}

/// Every message of `topic` (all `partitions`), as (key, payload).
fn read_back(bootstrap: &str, topic: &str, partitions: i32, n: usize) -> Vec<(String, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "read back {} of {n}",
            out.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            out.push((key, m.payload().unwrap().to_vec()));
        }
    }
    out
}

fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_are_keyed_by_id_and_read_back_as_produced() {
    let broker = testkit::Tansu::start();
    let bootstrap = broker.bootstrap();
    testkit::create_topic(&bootstrap, "incidents", 3)
        .await
        .unwrap();
    let sink = KafkaSink::new(&bootstrap, "incidents", &BTreeMap::new()).unwrap();
    let batch = incidents("a", 50);
    tokio::time::timeout(PATIENCE, sink.deliver(&batch))
        .await
        .unwrap()
        .unwrap();
    // An empty batch is delivered at once.
    sink.deliver(&[]).await.unwrap();

    let bootstrap2 = bootstrap.clone();
    let mut got = tokio::task::spawn_blocking(move || read_back(&bootstrap2, "incidents", 3, 50))
        .await
        .unwrap();
    got.sort();
    let mut want = batch.clone();
    want.sort();
    assert_eq!(got, want);

    // The same incident again (an update) goes to the same partition.
    let update = vec![(batch[7].0.clone(), b"{\"status\":\"resolved\"}".to_vec())];
    sink.deliver(&update).await.unwrap();
    let bootstrap2 = bootstrap.clone();
    let got = tokio::task::spawn_blocking(move || read_back(&bootstrap2, "incidents", 3, 51))
        .await
        .unwrap();
    let versions: Vec<&Vec<u8>> = got
        .iter()
        .filter(|(k, _)| *k == batch[7].0)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        versions,
        [&batch[7].1, &update[0].1],
        "in order, one partition"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_an_error_naming_the_incident_not_a_hang() {
    let broker = testkit::Tansu::start();
    let bootstrap = broker.bootstrap();
    let sink = KafkaSink::new(
        &bootstrap,
        "no-such-topic",
        &options(&[("message.timeout.ms", "3000")]),
    )
    .unwrap();
    let batch = incidents("m", 3);
    let e = tokio::time::timeout(PATIENCE, sink.deliver(&batch))
        .await
        .expect("deliver must give up by itself")
        .unwrap_err();
    let Error::Delivery { id, topic, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(id, &batch[0].0);
    assert_eq!(topic, "no-such-topic");
    assert!(e.to_string().contains(&batch[0].0), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_broker_is_an_error_and_the_sink_delivers_again_after_its_restart() {
    let mut broker = testkit::Tansu::start();
    let bootstrap = broker.bootstrap();
    testkit::create_topic(&bootstrap, "incidents", 1)
        .await
        .unwrap();
    let sink = KafkaSink::new(
        &bootstrap,
        "incidents",
        &options(&[("message.timeout.ms", "3000")]),
    )
    .unwrap();
    sink.deliver(&incidents("before", 2)).await.unwrap();

    broker.kill();
    let lost = incidents("down", 2);
    let e = tokio::time::timeout(PATIENCE, sink.deliver(&lost))
        .await
        .expect("deliver must give up by itself")
        .unwrap_err();
    assert!(
        matches!(&e, Error::Delivery { id, .. } if *id == lost[0].0),
        "{e}"
    );

    broker.restart().unwrap();
    let after = incidents("after", 2);
    tokio::time::timeout(PATIENCE, sink.deliver(&after))
        .await
        .unwrap()
        .unwrap();
    let bootstrap2 = bootstrap.clone();
    let got = tokio::task::spawn_blocking(move || read_back(&bootstrap2, "incidents", 1, 4))
        .await
        .unwrap();
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys[..2], ["before0000", "before0001"]);
    assert!(keys.contains(&"after0000") && keys.contains(&"after0001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_is_acknowledged_in_full_by_the_mock_cluster() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("incidents", 4, 3).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    // A small local queue: the sink must wait for room, not fail.
    let sink = KafkaSink::new(
        &bootstrap,
        "incidents",
        &options(&[("queue.buffering.max.messages", "100")]),
    )
    .unwrap();
    let batch = incidents("big", 2000);
    tokio::time::timeout(PATIENCE, sink.deliver(&batch))
        .await
        .unwrap()
        .unwrap();
    let got = tokio::task::spawn_blocking(move || read_back(&bootstrap, "incidents", 4, 2000))
        .await
        .unwrap();
    assert_eq!(got.len(), 2000);
}

#[test]
fn a_bad_option_is_an_error_at_creation() {
    let e = KafkaSink::new("127.0.0.1:1", "t", &options(&[("no.such.property", "1")])).unwrap_err();
    assert!(matches!(e, Error::Create(_)), "{e}");
}

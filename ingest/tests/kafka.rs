//! The Kafka source against a real Kafka-protocol broker (tansu, started per
//! test by `testkit`) and against librdkafka's mock cluster for fast cases.
//!
//! What is checked: every line arrives once, in order per partition, with
//! the position of its last message; a new consumer of the same group starts
//! exactly after what was committed through the `committed` channel;
//! checkpoint positions win over older group commits and only those; a
//! killed broker turns the source's health disconnected without a panic,
//! and after a restart on the same port and data consumption continues with
//! nothing lost; malformed payloads are counted and skipped; multi-document
//! payloads are split; deliveries are per partition and bounded.
//!
//! The waits have generous limits that only turn a hang into a failure;
//! nothing here asserts how fast anything is.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use correlate::Origin;
use ingest::source::kafka::{self, Settings};
use ingest::source::{Delivery, Handover, Health, Intake, Position, SourceHealth};
use ingest::{Decoder, Limits};
use rdkafka::mocking::MockCluster;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Turns a hang into a failure; never a measure of speed.
const PATIENCE: Duration = Duration::from_secs(90);

/// A source running in its own task, and the pipeline's end of it.
struct Running {
    task: JoinHandle<kafka::Result<()>>,
    cancel: CancellationToken,
    committed: watch::Sender<Vec<Position>>,
    deliveries: mpsc::Receiver<Delivery>,
    health: Arc<SourceHealth>,
    /// The partitions the hand-overs received so far say are ours.
    owned: std::collections::BTreeSet<(String, i32)>,
}

fn settings(bootstrap: &str, topic: &str, group: &str, max_batch: usize) -> Settings {
    let mut s = Settings::new(bootstrap, vec![topic.to_owned()], group);
    s.max_batch = max_batch;
    s
}

async fn start(settings: Settings, resume: Vec<Position>, capacity: usize) -> Running {
    let (intake, deliveries) = Intake::bounded(capacity);
    let health = Health::default();
    let cancel = CancellationToken::new();
    let (committed, committed_rx) = watch::channel(Vec::new());
    let task = tokio::spawn(kafka::run(
        settings,
        intake,
        health.clone(),
        cancel.clone(),
        resume,
        committed_rx,
    ));
    // The source registers its health before its first await.
    let health = loop {
        if let Some(h) = health.sources().into_iter().next() {
            break h;
        }
        tokio::task::yield_now().await;
    };
    Running {
        task,
        cancel,
        committed,
        deliveries,
        health,
        owned: std::collections::BTreeSet::new(),
    }
}

impl Running {
    /// Receives deliveries until they hold `lines` lines in all; the
    /// rebalances' hand-overs are followed, not returned: a record comes
    /// only from a partition a hand-over assigned before it.
    async fn collect(&mut self, lines: usize) -> Vec<Delivery> {
        let mut got = Vec::new();
        let mut n = 0;
        while n < lines {
            let d = tokio::time::timeout(PATIENCE, self.deliveries.recv())
                .await
                .unwrap_or_else(|_| panic!("only {n} of {lines} lines arrived"))
                .expect("the source stopped");
            match &d.handover {
                Some(Handover::Assigned(ps)) => self.owned.extend(ps.iter().cloned()),
                Some(Handover::Revoked(ps)) => {
                    for p in ps {
                        assert!(self.owned.remove(p), "{p:?} revoked but never assigned");
                    }
                }
                None => {
                    let pos = d
                        .position
                        .as_ref()
                        .expect("a kafka delivery has a position");
                    assert!(
                        self.owned.contains(&(pos.topic.clone(), pos.partition)),
                        "a record of {}/{} before its partition was assigned",
                        pos.topic,
                        pos.partition
                    );
                }
            }
            if d.handover.is_some() {
                assert!(d.lines.is_empty() && d.position.is_none());
                continue;
            }
            n += d.lines.len();
            got.push(d);
        }
        assert_eq!(n, lines, "more lines than produced");
        got
    }

    /// Cancels the source, hands it the final positions like the pipeline
    /// does (publish, then drop the sender) and waits for it to finish.
    async fn stop(self, final_positions: Option<Vec<Position>>) {
        self.cancel.cancel();
        if let Some(p) = final_positions {
            self.committed.send_replace(p);
        }
        drop(self.committed);
        drop(self.deliveries);
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the source did not stop")
            .unwrap()
            .unwrap();
    }
}

fn counted(health: &SourceHealth) -> u64 {
    health.records.load(std::sync::atomic::Ordering::Relaxed)
}

/// Waits until `cond` holds, checking every 50 ms.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `per_partition` contract lines for each of `partitions`, each in its own
/// message: (partition, line).
fn lines(tag: &str, partitions: i32, per_partition: u64, from: u64) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for seq in from..from + per_partition {
        for p in 0..partitions {
            out.push((p, testkit::contract_line(&format!("{tag}{p}"), seq)));
        }
    }
    out
}

async fn produce(bootstrap: &str, topic: &str, lines: &[(i32, String)]) -> Vec<i64> {
    let producer = testkit::producer(bootstrap).unwrap();
    let records: Vec<(i32, Vec<u8>)> = lines
        .iter()
        .map(|(p, l)| (*p, l.clone().into_bytes()))
        .collect();
    testkit::produce(&producer, topic, &records).await.unwrap()
}

/// What arrived, per partition: (line, offset of the delivery's position),
/// after checking stream names, sources and that positions only grow.
fn by_partition(topic: &str, deliveries: &[Delivery]) -> BTreeMap<i32, Vec<String>> {
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for d in deliveries {
        let pos = d.position.clone().expect("a kafka delivery has a position");
        assert_eq!(pos.topic, topic);
        assert_eq!(d.stream, kafka::stream_id(topic, pos.partition));
        assert_eq!(
            d.stream.as_str(),
            format!("kafka/{topic}/{}", pos.partition)
        );
        assert_eq!(d.source, "kafka");
        if let Some(prev) = last.insert(pos.partition, pos.offset) {
            assert!(
                pos.offset > prev,
                "positions go back in partition {}",
                pos.partition
            );
        }
        out.entry(pos.partition)
            .or_default()
            .extend(d.lines.iter().cloned());
    }
    out
}

fn expected(lines: &[(i32, String)]) -> BTreeMap<i32, Vec<String>> {
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (p, l) in lines {
        out.entry(*p).or_default().push(l.clone());
    }
    out
}

/// One message per line: a delivery's position is the offset of its last
/// line, which is the number of lines of that partition before it.
fn check_positions_one_line_per_message(topic: &str, deliveries: &[Delivery], base: i64) {
    let mut seen: BTreeMap<i32, i64> = BTreeMap::new();
    for d in deliveries {
        let pos = d.position.clone().unwrap();
        assert_eq!(pos.topic, topic);
        let n = seen.entry(pos.partition).or_insert(base);
        *n += d.lines.len() as i64;
        assert_eq!(
            pos.offset,
            *n - 1,
            "position of a delivery in {}",
            pos.partition
        );
    }
}

fn positions(topic: &str, partitions: i32, offset: i64) -> Vec<Position> {
    (0..partitions)
        .map(|partition| Position {
            topic: topic.to_owned(),
            partition,
            offset,
        })
        .collect()
}

// ---------------------------------------------------------------- tansu

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_once_in_order_and_a_new_consumer_resumes_after_the_commit() {
    let broker = testkit::Tansu::start();
    let bootstrap = broker.bootstrap();
    let topic = "records";
    testkit::create_topic(&bootstrap, topic, 3).await.unwrap();
    let sent = lines("a", 3, 300, 0);
    let offsets = produce(&bootstrap, topic, &sent).await;
    assert!(offsets.iter().all(|o| (0..300).contains(o)));

    let mut src = start(settings(&bootstrap, topic, "g1", 64), Vec::new(), 8).await;
    let got = src.collect(sent.len()).await;
    assert_eq!(by_partition(topic, &got), expected(&sent));
    check_positions_one_line_per_message(topic, &got, 0);
    assert!(got.iter().all(|d| d.lines.len() <= 64));
    assert!(src.health.is_connected());
    // Counted once the intake took them, just after we could see them.
    until("records counted", || counted(&src.health) == 900).await;
    assert!(src.health.rejected().is_empty());

    // Every shape is one the decoders take.
    let mut decoder = Decoder::new(Limits::default());
    for (i, line) in got.iter().flat_map(|d| &d.lines).enumerate() {
        let mut events = Vec::new();
        let origin = Origin {
            file: 0,
            line: i as u64 + 1,
        };
        decoder
            .decode(line, origin, &mut events)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
    }

    // The pipeline checkpointed the first 200 records of each partition.
    src.committed.send_replace(positions(topic, 3, 199));
    src.stop(None).await;

    // A new consumer of the group starts right after the commit.
    let mut next = start(settings(&bootstrap, topic, "g1", 64), Vec::new(), 8).await;
    let got = next.collect(300).await;
    let want: Vec<(i32, String)> = sent
        .iter()
        .enumerate()
        .filter(|(i, _)| i / 3 >= 200)
        .map(|(_, l)| l.clone())
        .collect();
    assert_eq!(by_partition(topic, &got), expected(&want));
    check_positions_one_line_per_message(topic, &got, 200);
    next.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_checkpoint_published_at_shutdown_is_committed() {
    let broker = testkit::Tansu::start();
    let bootstrap = broker.bootstrap();
    let topic = "records";
    testkit::create_topic(&bootstrap, topic, 2).await.unwrap();
    let sent = lines("f", 2, 50, 0);
    produce(&bootstrap, topic, &sent).await;

    let mut src = start(settings(&bootstrap, topic, "g", 16), Vec::new(), 4).await;
    src.collect(100).await;
    // Published after cancellation, as the pipeline's last checkpoint is.
    src.stop(Some(positions(topic, 2, 39))).await;

    let mut next = start(settings(&bootstrap, topic, "g", 16), Vec::new(), 4).await;
    let got = next.collect(20).await;
    check_positions_one_line_per_message(topic, &got, 40);
    next.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_positions_win_only_over_older_group_commits() {
    let broker = testkit::Tansu::start();
    let bootstrap = broker.bootstrap();
    let topic = "records";
    testkit::create_topic(&bootstrap, topic, 2).await.unwrap();
    let sent = lines("r", 2, 100, 0);
    produce(&bootstrap, topic, &sent).await;

    // A group with nothing committed starts after the checkpoint.
    let mut fresh = start(
        settings(&bootstrap, topic, "fresh", 32),
        positions(topic, 2, 79),
        8,
    )
    .await;
    let got = fresh.collect(40).await;
    check_positions_one_line_per_message(topic, &got, 80);
    // Its group has now committed 60 (checkpoints can lag the stream).
    fresh.stop(Some(positions(topic, 2, 59))).await;

    // Checkpoint older than the group's commit: the commit wins.
    let mut behind = start(
        settings(&bootstrap, topic, "fresh", 32),
        positions(topic, 2, 29),
        8,
    )
    .await;
    let got = behind.collect(80).await;
    check_positions_one_line_per_message(topic, &got, 60);
    behind.stop(None).await;

    // Checkpoint newer than the group's commit (60): the checkpoint wins.
    let mut ahead = start(
        settings(&bootstrap, topic, "fresh", 32),
        positions(topic, 2, 89),
        8,
    )
    .await;
    let got = ahead.collect(20).await;
    check_positions_one_line_per_message(topic, &got, 90);
    ahead.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_is_reported_and_consumption_resumes_after_its_restart() {
    let mut broker = testkit::Tansu::start();
    let bootstrap = broker.bootstrap();
    let topic = "records";
    testkit::create_topic(&bootstrap, topic, 3).await.unwrap();
    let first = lines("k", 3, 400, 0);
    produce(&bootstrap, topic, &first).await;

    // A small intake: the source is mid-consumption, blocked on the
    // pipeline, when the broker dies.
    let mut src = start(settings(&bootstrap, topic, "g", 16), Vec::new(), 1).await;
    let mut got = src.collect(16).await;
    until("connected", || src.health.is_connected()).await;
    broker.kill();

    // Drain what the source had fetched; it must notice the broker is gone.
    let health = src.health.clone();
    let mut drained = 0;
    while health.is_connected() {
        if let Ok(Some(d)) =
            tokio::time::timeout(Duration::from_millis(200), src.deliveries.recv()).await
            && d.handover.is_none()
        {
            drained += d.lines.len();
            got.push(d);
        }
        assert!(!src.task.is_finished(), "the source stopped");
    }
    let error = health.last_error().expect("the error is recorded");
    println!("drained {drained} lines after the kill; recorded error: {error}");
    assert!(!src.task.is_finished());

    // Back on the same port and data: everything before and after arrives.
    broker.restart().unwrap();
    let second = lines("k", 3, 100, 400);
    produce(&bootstrap, topic, &second).await;
    let seen: usize = got.iter().map(|d| d.lines.len()).sum();
    got.extend(src.collect(first.len() + second.len() - seen).await);
    let mut all = first.clone();
    all.extend(second);
    assert_eq!(by_partition(topic, &got), expected(&all));
    check_positions_one_line_per_message(topic, &got, 0);
    until("connected again", || health.is_connected()).await;
    src.stop(None).await;
}

// ---------------------------------------------------------- mock cluster

fn mock(
    topic: &str,
    partitions: i32,
) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(topic, partitions, 1).unwrap();
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_are_counted_and_the_position_moves_past_them() {
    let cluster = mock("m", 1);
    let bootstrap = cluster.bootstrap_servers();
    let producer = testkit::producer(&bootstrap).unwrap();
    let good = |n| testkit::contract_line("m", n).into_bytes();
    let records = vec![
        (0, good(0)),
        (0, Vec::new()),
        (0, vec![b'{', 0xff, 0xfe, b'}']),
        (0, good(1)),
        (0, b"\n \r\n".to_vec()),
    ];
    let offsets = testkit::produce(&producer, "m", &records).await.unwrap();
    assert_eq!(offsets, [0, 1, 2, 3, 4]);

    let mut src = start(settings(&bootstrap, "m", "g", 100), Vec::new(), 8).await;
    let mut got = src.collect(2).await;
    // The last message is malformed: a delivery may carry only a position.
    while got.last().unwrap().position.as_ref().unwrap().offset < 4 {
        let d = tokio::time::timeout(PATIENCE, src.deliveries.recv())
            .await
            .unwrap()
            .unwrap();
        if d.handover.is_none() {
            got.push(d);
        }
    }
    let lines: Vec<String> = got.iter().flat_map(|d| d.lines.clone()).collect();
    assert_eq!(
        lines,
        [
            testkit::contract_line("m", 0),
            testkit::contract_line("m", 1)
        ]
    );
    assert_eq!(src.health.rejected(), [("malformed", 3)]);
    // Counted once the intake took them, just after we could see them.
    until("records counted", || counted(&src.health) == 2).await;
    src.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_of_several_documents_becomes_several_lines() {
    let cluster = mock("multi", 1);
    let bootstrap = cluster.bootstrap_servers();
    let producer = testkit::producer(&bootstrap).unwrap();
    let docs: Vec<String> = (0..3).map(|n| testkit::contract_line("d", n)).collect();
    let payload = format!("{}\n{}\r\n\n{}\n", docs[0], docs[1], docs[2]);
    let records = vec![
        (0, b"{\"single\":true}".to_vec()),
        (0, payload.into_bytes()),
    ];
    testkit::produce(&producer, "multi", &records)
        .await
        .unwrap();

    let mut src = start(settings(&bootstrap, "multi", "g", 100), Vec::new(), 8).await;
    let got = src.collect(4).await;
    let lines: Vec<String> = got.iter().flat_map(|d| d.lines.clone()).collect();
    assert_eq!(lines[0], "{\"single\":true}");
    assert_eq!(lines[1..], docs[..]);
    assert_eq!(got.last().unwrap().position.as_ref().unwrap().offset, 1);
    src.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_per_partition_bounded_and_never_wait_for_a_full_batch() {
    let cluster = mock("b", 3);
    let bootstrap = cluster.bootstrap_servers();
    let sent = lines("b", 3, 200, 0);
    produce(&bootstrap, "b", &sent).await;

    let mut src = start(settings(&bootstrap, "b", "g", 8), Vec::new(), 1024).await;
    let got = src.collect(sent.len()).await;
    assert_eq!(by_partition("b", &got), expected(&sent));
    check_positions_one_line_per_message("b", &got, 0);
    assert!(
        got.iter()
            .all(|d| !d.lines.is_empty() && d.lines.len() <= 8)
    );
    // Buffered records are batched, not sent one by one.
    assert!(got.len() < sent.len() / 2, "{} deliveries", got.len());

    // A lone record on a quiet topic still arrives (max_batch is 8).
    let late = vec![(1, testkit::contract_line("late", 0))];
    produce(&bootstrap, "b", &late).await;
    let got = src.collect(1).await;
    assert_eq!(got[0].lines, [late[0].1.clone()]);
    assert_eq!(got[0].position.as_ref().unwrap().offset, 200);
    src.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_going_down_and_up_flips_health_without_losing_records() {
    let cluster = mock("h", 1);
    let bootstrap = cluster.bootstrap_servers();
    let first = lines("h", 1, 20, 0);
    produce(&bootstrap, "h", &first).await;
    let mut src = start(settings(&bootstrap, "h", "g", 100), Vec::new(), 8).await;
    let mut got = src.collect(20).await;
    until("connected", || src.health.is_connected()).await;

    cluster.broker_down(1).unwrap();
    until("disconnected", || !src.health.is_connected()).await;
    assert!(src.health.last_error().is_some());

    cluster.broker_up(1).unwrap();
    let second = lines("h", 1, 20, 20);
    produce(&bootstrap, "h", &second).await;
    got.extend(src.collect(20).await);
    let mut all = first;
    all.extend(second);
    assert_eq!(by_partition("h", &got), expected(&all));
    until("connected again", || src.health.is_connected()).await;
    src.stop(None).await;
}

#[tokio::test]
async fn settings_without_topics_or_batch_are_refused() {
    let (intake, _rx) = Intake::bounded(1);
    let (_tx, committed) = watch::channel(Vec::new());
    let no_topics = Settings::new("127.0.0.1:1", Vec::new(), "g");
    let e = kafka::run(
        no_topics,
        intake.clone(),
        Health::default(),
        CancellationToken::new(),
        Vec::new(),
        committed.clone(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, kafka::Error::NoTopics));
    let mut no_batch = Settings::new("127.0.0.1:1", vec!["t".into()], "g");
    no_batch.max_batch = 0;
    let e = kafka::run(
        no_batch,
        intake,
        Health::default(),
        CancellationToken::new(),
        Vec::new(),
        committed,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, kafka::Error::NoBatch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_while_the_broker_is_away_does_not_hang() {
    let mut broker = testkit::Tansu::start();
    let bootstrap = broker.bootstrap();
    testkit::create_topic(&bootstrap, "records", 1)
        .await
        .unwrap();
    let sent = lines("s", 1, 10, 0);
    produce(&bootstrap, "records", &sent).await;
    let mut src = start(settings(&bootstrap, "records", "g", 100), Vec::new(), 8).await;
    src.collect(10).await;
    broker.kill();
    until("disconnected", || !src.health.is_connected()).await;
    // The final commit cannot reach the broker; the source still stops.
    src.stop(Some(positions("records", 1, 9))).await;
}

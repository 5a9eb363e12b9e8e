//! Kafka source throughput: how many contract records per second the Kafka
//! source (`ingest::source::kafka::run`) hands to a pipeline that only
//! drains its intake. Produces N records of 200-300 bytes (the four shapes
//! of `testkit::contract_line`: Vector and Fluent Bit logs, core/v1 Events,
//! Alertmanager bodies) round-robin into a 3-partition topic, then consumes
//! them `--rounds` times, each with a fresh consumer group, and reports
//! records/s from the first delivery to the last of each round (the group
//! join is reported apart).
//!
//! librdkafka's mock cluster keeps at most 5 MB (or 100 000 messages) per
//! partition and deletes older segments: against it N must stay under
//! ~50 000 records, hence the rounds. The run stops with an error if the
//! topic does not hold every record produced.
//!
//! `--raw` measures a bare rdkafka `StreamConsumer` receive loop over the
//! same topic instead (no lines, no batches, no intake): what librdkafka and
//! the broker allow, for comparison with the source's own cost.
//!
//! ```text
//! kafka [--broker mock|tansu] [--records N] [--rounds N] [--max-batch N] [--raw]
//! ```
#![allow(clippy::print_stdout)] // the report is the output

use std::process::ExitCode;
use std::time::{Duration, Instant};

use ingest::source::kafka::{self, Settings};
use ingest::source::{Health, Intake};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, Producer};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "bench";
const PARTITIONS: i32 = 3;

struct Args {
    broker: String,
    records: Option<u64>,
    rounds: Option<u64>,
    max_batch: usize,
    raw: bool,
}

fn parse_args() -> Option<Args> {
    let mut a = Args {
        broker: "mock".into(),
        records: None,
        rounds: None,
        max_batch: 1024,
        raw: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--raw" => a.raw = true,
            "--broker" => a.broker = args.next()?,
            "--records" => a.records = Some(args.next()?.replace('_', "").parse().ok()?),
            "--rounds" => a.rounds = Some(args.next()?.parse().ok()?),
            "--max-batch" => a.max_batch = args.next()?.parse().ok()?,
            _ => return None,
        }
    }
    matches!(a.broker.as_str(), "mock" | "tansu").then_some(a)
}

/// CPU seconds (user + system) of a process (`self` or a pid) so far.
fn cpu_seconds(process: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else {
        eprintln!(
            "usage: kafka [--broker mock|tansu] [--records N] [--rounds N] [--max-batch N] [--raw]"
        );
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kafka: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kafka: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: &Args) -> Result<(), String> {
    let tansu_broker = args.broker == "tansu";
    let records = args
        .records
        .unwrap_or(if tansu_broker { 300_000 } else { 45_000 });
    let rounds = args
        .rounds
        .unwrap_or(if tansu_broker { 3 } else { 10 })
        .max(1);
    // Keep the broker alive for the whole run.
    let mut tansu = None;
    let mut mock = None;
    let bootstrap = if tansu_broker {
        let broker = testkit::Tansu::try_start().map_err(|e| e.to_string())?;
        let b = broker.bootstrap();
        testkit::create_topic(&b, TOPIC, PARTITIONS)
            .await
            .map_err(|e| e.to_string())?;
        tansu = Some(broker);
        b
    } else {
        let cluster = MockCluster::new(1).map_err(|e| e.to_string())?;
        cluster
            .create_topic(TOPIC, PARTITIONS, 1)
            .map_err(|e| e.to_string())?;
        let b = cluster.bootstrap_servers();
        mock = Some(cluster);
        b
    };

    let t = Instant::now();
    let mut bytes = 0usize;
    let producer = testkit::producer(&bootstrap).map_err(|e| e.to_string())?;
    let chunk = 50_000u64;
    let mut seq = 0u64;
    while seq < records {
        let end = (seq + chunk).min(records);
        let batch: Vec<(i32, Vec<u8>)> = (seq..end)
            .map(|s| {
                let line = testkit::contract_line("b", s).into_bytes();
                bytes += line.len();
                ((s % PARTITIONS as u64) as i32, line)
            })
            .collect();
        testkit::produce(&producer, TOPIC, &batch)
            .await
            .map_err(|e| e.to_string())?;
        seq = end;
    }
    let produced = t.elapsed();
    check_retained(&producer, records)?;
    drop(producer);
    let n = records as f64;
    println!(
        "broker {}: produced {records} records ({:.0} bytes avg) in {:.2} s ({:.0} records/s)",
        args.broker,
        bytes as f64 / n,
        produced.as_secs_f64(),
        n / produced.as_secs_f64()
    );

    let broker_pid = tansu
        .as_ref()
        .and_then(testkit::Tansu::pid)
        .map(|p| p.to_string());
    let what = if args.raw {
        "raw StreamConsumer"
    } else {
        "kafka source"
    };
    let mut rates = Vec::new();
    let mut total_time = Duration::ZERO;
    let mut total_cpu = 0.0;
    for round in 0..rounds {
        let group = format!("bench-{round}");
        let cpu0 = cpu_seconds("self");
        let broker0 = broker_pid.as_deref().map_or(0.0, cpu_seconds);
        let (join, consume, deliveries) = if args.raw {
            raw(&bootstrap, &group, records).await?
        } else {
            source(&bootstrap, &group, records, args.max_batch).await?
        };
        let cpu = cpu_seconds("self") - cpu0;
        let broker_cpu = broker_pid.as_deref().map_or(0.0, cpu_seconds) - broker0;
        let rate = n / consume.as_secs_f64();
        rates.push(rate);
        total_time += consume;
        total_cpu += cpu;
        println!(
            "{what} round {round}: group join {:.2} s; {records} records in {:.3} s = {rate:.0} records/s ({:.1} MB/s), {deliveries} deliveries ({:.0} records each); CPU over join + consume: {cpu:.2} s here, {broker_cpu:.2} s in the broker process",
            join.as_secs_f64(),
            consume.as_secs_f64(),
            bytes as f64 / consume.as_secs_f64() / 1e6,
            n / deliveries.max(1) as f64,
        );
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{what}, broker {}: median {:.0} records/s (min {:.0}, max {:.0}) over {rounds} rounds of {records}; all rounds {:.0} records/s; CPU {:.2} µs per record (this process, join included)",
        args.broker,
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1],
        n * rounds as f64 / total_time.as_secs_f64(),
        total_cpu * 1e6 / (n * rounds as f64),
    );
    drop(mock);
    drop(tansu);
    Ok(())
}

/// Every record produced is still in the topic (the mock cluster deletes
/// old segments past 5 MB per partition).
fn check_retained(producer: &FutureProducer, records: u64) -> Result<(), String> {
    let mut held = 0;
    for p in 0..PARTITIONS {
        let (low, high) = producer
            .client()
            .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        if low > 0 {
            return Err(format!(
                "partition {p} starts at offset {low}: the broker deleted records; use fewer --records"
            ));
        }
        held += high;
    }
    if held as u64 != records {
        return Err(format!("the topic holds {held} records, not {records}"));
    }
    Ok(())
}

/// The source into a draining intake: (time to the first delivery, time
/// from the first delivery to the last record, deliveries).
async fn source(
    bootstrap: &str,
    group: &str,
    records: u64,
    max_batch: usize,
) -> Result<(Duration, Duration, u64), String> {
    let mut settings = Settings::new(bootstrap, vec![TOPIC.to_owned()], group);
    settings.max_batch = max_batch;
    let (intake, mut rx) = Intake::bounded(64);
    let cancel = CancellationToken::new();
    let (committed_tx, committed) = watch::channel(Vec::new());
    let start = Instant::now();
    let task = tokio::spawn(kafka::run(
        settings,
        intake,
        Health::default(),
        cancel.clone(),
        Vec::new(),
        committed,
    ));
    let mut first = None;
    let mut seen = 0u64;
    let mut deliveries = 0u64;
    while seen < records {
        let Some(d) = rx.recv().await else {
            return Err(format!("the source stopped after {seen} records"));
        };
        first.get_or_insert_with(Instant::now);
        seen += d.lines.len() as u64;
        deliveries += 1;
    }
    let end = Instant::now();
    cancel.cancel();
    drop(committed_tx);
    drop(rx);
    match task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(e.to_string()),
    }
    let first = first.unwrap_or(end);
    Ok((first - start, end - first, deliveries))
}

/// A bare receive loop, touching each payload once.
async fn raw(
    bootstrap: &str,
    group: &str,
    records: u64,
) -> Result<(Duration, Duration, u64), String> {
    use rdkafka::message::Message;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| e.to_string())?;
    consumer.subscribe(&[TOPIC]).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut first = None;
    let mut seen = 0u64;
    let mut bytes = 0usize;
    while seen < records {
        let m = consumer.recv().await.map_err(|e| e.to_string())?;
        first.get_or_insert_with(Instant::now);
        bytes += m.payload().map_or(0, <[u8]>::len);
        seen += 1;
    }
    let end = Instant::now();
    std::hint::black_box(bytes);
    let first = first.unwrap_or(end);
    Ok((first - start, end - first, seen))
}

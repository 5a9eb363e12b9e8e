//! Kafka end to end: records/s through `epicenter serve` itself, from a
//! topic to the engine (decoded, classified, correlated, checkpointed).
//!
//! Produces N contract records of 200-300 bytes (`testkit::contract_line`:
//! Vector and Fluent Bit logs, core/v1 Events, Alertmanager bodies)
//! round-robin into a topic of P partitions on librdkafka's mock cluster
//! (which keeps about 5 MB per partition, hence many partitions), starts the
//! release binary with a Kafka source on it (stdout sink off), and polls
//! `/metrics` every 10 ms: records/s is N over the time from the first
//! record counted to the last. The broker runs in this process, so its CPU
//! is not the service's; the serve process's CPU time is reported apart.
//!
//! With `--clusters C`, record `s` belongs to cluster `c<s mod C>` (a
//! `cluster` field) and is keyed by it, as the shippers' examples key: the
//! partition is the cluster's index modulo P, and serve correlates each
//! cluster with an engine of its own. C = P spreads the records over every
//! partition, as the unnamed run does.
//!
//! With `--handover`, the partitions' state is sharded
//! (`sources.kafka.shared_state`); once every record is in, a second
//! replica joins the group and the rebalance moves clusters to it: the
//! report adds the time from its start until every cluster is held again
//! (mostly the group protocol's: joining, the first replica's next
//! heartbeat), what each hand-over and each take-over of a partition with
//! state took (from the replicas' logs; the first replica takes back what
//! the eager protocol revoked from it) and the bytes of the partitions'
//! checkpoints that moved.
//!
//! ```text
//! serve_kafka [--records N] [--partitions P] [--clusters C] [--handover] [--bin target/release/epicenter]
//! ```
#![allow(clippy::print_stdout)] // the report is the output

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;

const TOPIC: &str = "records";

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|a| a != name);
    args.next()?;
    args.next()
}

/// One sample of serve's /metrics, by exact name and labels.
fn metric(port: u16, sample: &str) -> Option<f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve_kafka: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let records: u64 = arg("--records")
        .map_or(Ok(240_000), |v| v.parse())
        .map_err(|e| format!("--records: {e}"))?;
    let partitions: i32 = arg("--partitions")
        .map_or(Ok(16), |v| v.parse())
        .map_err(|e| format!("--partitions: {e}"))?;
    let clusters: u64 = arg("--clusters")
        .map_or(Ok(0), |v| v.parse())
        .map_err(|e| format!("--clusters: {e}"))?;
    let bin = arg("--bin").unwrap_or_else(|| "target/release/epicenter".to_string());

    let cluster = MockCluster::new(1).map_err(|e| e.to_string())?;
    cluster
        .create_topic(TOPIC, partitions, 1)
        .map_err(|e| e.to_string())?;
    let bootstrap = cluster.bootstrap_servers();
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let bytes = rt.block_on(async {
        let producer = testkit::producer(&bootstrap).map_err(|e| e.to_string())?;
        let mut bytes = 0usize;
        let mut seq = 0;
        while seq < records {
            let end = (seq + 50_000).min(records);
            let batch: Vec<(i32, Vec<u8>)> = (seq..end)
                .map(|s| {
                    let line = testkit::contract_line("e2e", s);
                    let (line, key) = match s.checked_rem(clusters) {
                        // `{"cluster":"c3",...}`: the field, and its key.
                        Some(c) => (format!("{{\"cluster\":\"c{c}\",{}", &line[1..]), c),
                        None => (line, s),
                    };
                    bytes += line.len();
                    ((key % partitions as u64) as i32, line.into_bytes())
                })
                .collect();
            testkit::produce(&producer, TOPIC, &batch)
                .await
                .map_err(|e| e.to_string())?;
            seq = end;
        }
        Ok::<_, String>(bytes)
    })?;
    println!(
        "produced {records} records ({:.0} bytes avg) into {partitions} partitions, {}",
        bytes as f64 / records as f64,
        match clusters {
            0 => "no cluster named".to_string(),
            c => format!("{c} clusters, keyed by cluster"),
        }
    );

    let handover = std::env::args().any(|a| a == "--handover");
    let shared = tempfile::tempdir().map_err(|e| e.to_string())?;
    let shared_state = if handover {
        format!(", shared_state: '{}'", shared.path().display())
    } else {
        String::new()
    };
    let start = |dir: &std::path::Path| -> Result<(u16, std::process::Child), String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let config = dir.join("epicenter.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\nstate_dir: state\nsources:\n  alertmanager: {{enabled: false}}\n  kafka: {{brokers: '{bootstrap}', topics: [{TOPIC}], group: bench{shared_state}}}\nsinks:\n  stdout: {{enabled: false}}\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("serve.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{bin}: {e}"))?;
        Ok((port, child))
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (port, mut child) = start(dir.path())?;
    let sample = r#"epicenter_records_total{source="kafka"}"#;
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut first, mut last) = (None, None);
    while Instant::now() < deadline {
        let n = metric(port, sample).unwrap_or(0.0);
        if n > 0.0 && first.is_none() {
            first = Some((Instant::now(), n));
        }
        if n >= records as f64 {
            last = Some(Instant::now());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let cpu = cpu_seconds(child.id());
    let errors = metric(port, r#"epicenter_decode_errors_total{source="kafka"}"#).unwrap_or(0.0);
    let engines = metric(port, "epicenter_clusters").unwrap_or(0.0);
    if handover && last.is_some() {
        report_handover(&start, port, engines, dir.path())?;
        let moved: u64 = std::fs::read_dir(shared.path().join("bench"))
            .map_err(|e| e.to_string())?
            .filter_map(|d| std::fs::metadata(d.ok()?.path().join("checkpoint")).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "partitions' checkpoints: {moved} bytes in all ({:.0} bytes a cluster)",
            moved as f64 / engines.max(1.0)
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let (Some((t0, n0)), Some(t1)) = (first, last) else {
        return Err("serve did not take every record within 5 minutes".to_string());
    };
    let secs = t1.duration_since(t0).as_secs_f64();
    println!(
        "serve took {records} records: {:.0} records/s ({:.2} s from the first count, {n0} already counted then); serve CPU {cpu:.2} s in all; decode errors {errors}; clusters {engines}",
        (records as f64 - n0) / secs,
        secs
    );
    Ok(())
}

/// Starts a serve replica with its state in a directory: its port and
/// process.
type Start<'a> = dyn Fn(&std::path::Path) -> Result<(u16, std::process::Child), String> + 'a;

/// A second replica joins; the time until every one of `clusters` is held
/// again, and the take-overs each replica measured.
fn report_handover(
    start: &Start<'_>,
    first: u16,
    clusters: f64,
    first_dir: &std::path::Path,
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let joined = Instant::now();
    let (port, mut child) = start(dir.path())?;
    let held = |p: u16| metric(p, "epicenter_clusters").unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut resumed = None;
    while Instant::now() < deadline {
        let second = held(port);
        if second >= 1.0 && held(first) + second >= clusters {
            resumed = Some(joined.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = held(port);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    // What each step took, from the replicas' logs.
    let mut handed = Vec::new();
    let mut taken = Vec::new();
    for d in [first_dir, dir.path()] {
        let log = std::fs::read_to_string(d.join("serve.log")).unwrap_or_default();
        for line in log.lines() {
            let ms = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("ms="))
                .and_then(|v| v.parse::<f64>().ok());
            match ms {
                Some(ms) if line.contains("partition handed over") => handed.push(ms),
                Some(ms)
                    if line.contains("partition taken over") && !line.contains("clusters=0") =>
                {
                    taken.push(ms)
                }
                _ => {}
            }
        }
    }
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        match (v.first(), v.last()) {
            (Some(lo), Some(hi)) => format!(
                "{} of them, {lo:.0}-{hi:.0} ms, median {:.0} ms",
                v.len(),
                v[v.len() / 2]
            ),
            _ => "none".to_string(),
        }
    };
    println!(
        "hand-overs (revoked: last changes told, outbox closed, checkpoint written): {}",
        summary(&mut handed)
    );
    println!(
        "take-overs of partitions with state (lock, checkpoint read, outbox opened): {}",
        summary(&mut taken)
    );
    let Some(resumed) = resumed else {
        return Err("the second replica did not take clusters over within 2 minutes".to_string());
    };
    println!(
        "a second replica joined: every cluster held again {:.2} s after its start ({second} clusters moved to it)",
        resumed.as_secs_f64(),
    );
    Ok(())
}

//! Chaos, scripted and repeatable (issue 11): `serve` under steady load from
//! its webhook receiver and from Kafka is killed with SIGKILL several times,
//! its notification target is down for a while (answering 503 with
//! `Retry-After`, so many retries happen in a short time), and its state
//! directory (a tmpfs, when the test may mount one) fills up and is freed.
//! Afterwards:
//!
//! - every alert answered 200 and every record produced to Kafka formed its
//!   incident, and every resolution answered 200 closed its incident;
//! - every incident was announced once (a kill can repeat the one delivery
//!   in flight, with the same `Idempotency-Key`: at most one per kill);
//! - nothing is stuck: nothing pending or dead-lettered, ready.
//!
//! `EPICENTER_CHAOS_SECONDS` sets how long the chaos lasts (CI: the
//! default, 40 s; by hand: 600 or more).
//!
//! Each start of serve joins a consumer group of its own (`chaos-N`) and
//! resumes from the positions in its checkpoint, which is the path under
//! test (positions in the checkpoint win over a group's commits). One
//! group for all starts tests tansu's group coordinator instead: a member
//! killed mid-join left the group without an assignment for good, with and
//! without static membership (`group.instance.id`, what the kafka overlay
//! sets for a real broker), in about one run in three under load.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::Tansu;
use testkit::webhook::{Answer, WebhookReceiver};

use crate::crash::{body, by_claim, volume_alert};
use crate::support::{Serve, free_port, wait_for};

fn chaos_seconds() -> u64 {
    std::env::var("EPICENTER_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

fn mount_tmpfs(at: &Path) -> bool {
    std::fs::create_dir_all(at).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success())
}

fn fill(at: &Path) {
    let mut f = std::fs::File::create(at.join("ballast")).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    while std::io::Write::write_all(&mut f, &chunk[..512]).is_ok() {}
}

/// What the load generators got acknowledged.
#[derive(Default)]
struct Acked {
    /// Claim -> "firing" or "resolved", as last acknowledged.
    webhook: BTreeMap<String, String>,
    kafka: BTreeSet<String>,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Posts until 200, as Alertmanager retries; false if told to stop first.
fn post(base: &str, body: &str, stop: &AtomicBool) -> bool {
    let client = testkit::blocking_client();
    loop {
        let ok = client
            .post(format!("{base}/api/v1/alertmanager"))
            .body(body.to_string())
            .timeout(Duration::from_secs(5))
            .send()
            .is_ok_and(|r| r.status().as_u16() == 200);
        if ok {
            return true;
        }
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kills_outages_and_a_full_disk_lose_nothing_and_announce_each_incident_once() {
    let tansu = Tansu::start();
    let bootstrap = tansu.bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(testkit::create_topic(&bootstrap, "records", 1))
        .unwrap();
    let hook = WebhookReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let tmpfs = mount_tmpfs(&state);
    if !tmpfs {
        eprintln!("chaos: cannot mount a tmpfs (needs root): no full-disk phase");
    }
    let file = dir.path().join("incidents.ndjson");
    let config = |start: usize| {
        format!(
            "engine: {{lateness: 1s}}\n\
         pipeline: {{checkpoint_interval: 2s, idle_timeout: 1s, shutdown_timeout: 10s}}\n\
         sources:\n  kafka: {{brokers: '{bootstrap}', topics: [records], group: chaos-{start}, max_batch: 20}}\n\
         sinks: {{stdout: {{enabled: false}}, file: {{path: incidents.ndjson}}, history: {{enabled: false}}}}\n\
         notify:\n  throttle: 1h\n  receivers:\n    - name: ops\n      webhook: [{{url: '{}', timeout: 2s}}]\n",
            hook.url()
        )
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut serve = Some(Serve::start_on(port, dir.path(), &config(0), &[]));

    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let webhook_load = {
        let (acked, stop, base) = (acked.clone(), stop.clone(), base);
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let claim = format!("wh-{i:05}");
                if !post(
                    &base,
                    &body(&[volume_alert(&claim, "firing", &now())]),
                    &stop,
                ) {
                    break;
                }
                acked.lock().unwrap().webhook.insert(claim, "firing".into());
                if i.is_multiple_of(4) && i >= 8 {
                    let old = format!("wh-{:05}", i - 8);
                    if !post(
                        &base,
                        &body(&[volume_alert(&old, "resolved", &now())]),
                        &stop,
                    ) {
                        break;
                    }
                    acked.lock().unwrap().webhook.insert(old, "resolved".into());
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    let kafka_load = {
        let (acked, stop, bootstrap) = (acked.clone(), stop.clone(), bootstrap.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let producer = testkit::producer(&bootstrap).unwrap();
            let mut j = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let claim = format!("kf-{j:05}");
                let line = body(&[volume_alert(&claim, "firing", &now())]);
                rt.block_on(testkit::produce(
                    &producer,
                    "records",
                    &[(0, line.into_bytes())],
                ))
                .unwrap();
                acked.lock().unwrap().kafka.insert(claim);
                j += 1;
                std::thread::sleep(Duration::from_millis(60));
            }
        })
    };

    // The chaos: a kill, an outage, a kill, a full disk, ... every few seconds.
    let until = Instant::now() + Duration::from_secs(chaos_seconds());
    let mut kills = 0;
    let mut step = 0;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_secs(4));
        match step % 4 {
            0 | 2 => {
                serve.take().unwrap().crash();
                kills += 1;
                serve = Some(Serve::start_on(port, dir.path(), &config(kills), &[]));
            }
            1 => hook.answer_next(30, Answer::StatusRetryAfter(503, 1)),
            _ if tmpfs => {
                fill(&state);
                std::thread::sleep(Duration::from_secs(3));
                std::fs::remove_file(state.join("ballast")).unwrap();
            }
            _ => {}
        }
        step += 1;
    }
    stop.store(true, Ordering::Relaxed);
    webhook_load.join().unwrap();
    kafka_load.join().unwrap();
    let serve = serve.unwrap();

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let mut expected: BTreeMap<String, String> = acked.webhook.clone();
    for c in &acked.kafka {
        expected.insert(c.clone(), "firing".into());
    }
    assert!(expected.len() > 50, "too little load: {}", expected.len());
    let deadline = Instant::now() + Duration::from_secs(120);
    let wrong = loop {
        let formed = by_claim(&file);
        let wrong: Vec<(String, String, Option<String>)> = expected
            .iter()
            .filter(|(c, s)| formed.get(*c) != Some(*s))
            .map(|(c, s)| (c.clone(), s.clone(), formed.get(c).cloned()))
            .collect();
        if wrong.is_empty() || Instant::now() > deadline {
            break wrong;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        wrong.is_empty(),
        "{} of {} acknowledged alerts without their incident (claim, wanted, got): {:?}\n\
         kafka records taken: {}; the last serve's log:\n{}",
        wrong.len(),
        expected.len(),
        &wrong[..wrong.len().min(20)],
        serve.metric(r#"epicenter_records_total{source="kafka"}"#),
        serve
            .stderr()
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    wait_for("nothing pending, ready", || {
        let pending = serve
            .metric(r#"epicenter_outbox_pending{sink="ops/webhook/0",kind="webhook"}"#)
            + serve.metric(r#"epicenter_outbox_pending{sink="file",kind="file"}"#);
        let ready = serve.get("/readyz").is_some_and(|(s, _)| s == 200);
        (pending == 0.0 && ready).then_some(())
    });
    assert_eq!(
        serve.metric(r#"epicenter_outbox_dead_letters{sink="ops/webhook/0",kind="webhook"}"#),
        0.0
    );
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "{stderr}");

    // Incident -> notification key -> (event, deliveries answered 200). An
    // opening still queued when the incident resolved is folded into the
    // resolution (one notification, the latest state): it is announced
    // either way.
    let told = crate::support::told(&hook);
    let incidents = crate::crash::incidents(&file);
    for (id, inc) in incidents.iter().filter(|(_, i)| i["rule"] == "volume-full") {
        let claim = inc["root_cause"]["entity"]["name"].as_str().unwrap();
        let keys = told
            .get(id)
            .unwrap_or_else(|| panic!("incident {id} of {claim} never announced"));
        let openings = keys.values().filter(|(e, _)| e == "opened").count();
        assert!(
            openings <= 1,
            "{claim} ({id}) announced {openings} times: {keys:?}"
        );
    }
    let repeated: usize = told
        .values()
        .flat_map(|k| k.values())
        .map(|(_, n)| n - 1)
        .sum();
    assert!(
        repeated <= kills,
        "{repeated} notifications delivered twice over {kills} kills"
    );
    if tmpfs {
        let _ = Command::new("umount").arg("-l").arg(&state).status();
    }
}

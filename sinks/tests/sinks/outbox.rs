//! The durable outbox end to end, over real HTTP to the local ntfy and
//! webhook receivers of `testkit`, and real files: what people hear for a
//! stream of incident changes, and that failing or slow endpoints, restarts
//! and throttling delay deliveries but never lose or repeat one.
//!
//! Waits poll with a deadline; the only timing asserted is a lower bound
//! (a retry never comes before the `Retry-After` the service asked for).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use correlate::{IncidentReport, Status};
use sinks::change::{ChangeKind, IncidentChange};
use sinks::notify::Notifier;
use sinks::notify::ntfy::{NtfyNotifier, NtfyPublish, NtfySettings};
use sinks::notify::route::{Matcher, Route};
use sinks::notify::webhook::{WebhookFormat, WebhookNotifier, WebhookSettings};
use sinks::outbox::{Clock, Outbox, Outgoing, RetrySettings, Settings, Target};
use sinks::stream::{FileSink, StreamSink};
use testkit::ntfy::{Fault, LocalNtfy};
use testkit::webhook::{Answer, WebhookReceiver};

const PATIENCE: Duration = Duration::from_secs(60);

fn incident(name: &str) -> IncidentReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/incidents")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn csi() -> IncidentReport {
    incident("core-csi-driver-unavailable.json")
}

/// A second incident, still firing.
fn stall() -> IncidentReport {
    let mut inc = incident("nw-simultaneous-reboot-scheduler-stall-02544c3fba751369.json");
    inc.status = Status::Firing;
    inc.resolved_at = None;
    inc
}

fn change(kind: ChangeKind, incident: IncidentReport) -> Outgoing {
    Outgoing::new(IncidentChange {
        change: kind,
        merged_into: None,
        incident,
    })
    .unwrap()
}

/// The incident with one more affected entity of a new kind of effect.
fn with_new_effect(mut inc: IncidentReport, signal: &str) -> IncidentReport {
    let mut a = inc.affected[0].clone();
    a.entity.name = format!("{signal}-pod");
    a.signal = signal.to_string();
    inc.affected.push(a);
    inc.version += 1;
    inc
}

fn resolved(mut inc: IncidentReport) -> IncidentReport {
    inc.status = Status::Resolved;
    inc.resolved_at = Some(inc.last_seen);
    inc.version += 1;
    inc
}

/// A clock tests move by hand (µs).
fn manual_clock(start: i64) -> (Clock, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(start));
    let read = now.clone();
    (Arc::new(move || read.load(Ordering::SeqCst)), now)
}

fn webhook(receiver: &WebhookReceiver) -> Notifier {
    Notifier::Webhook(
        WebhookNotifier::new(WebhookSettings {
            url: receiver.url(),
            format: WebhookFormat::Incident,
            secret: None,
            headers: Vec::new(),
            receiver: "test".to_string(),
            external_url: None,
            timeout: Duration::from_secs(2),
        })
        .unwrap(),
    )
}

fn ntfy(server: &LocalNtfy, topic: &str) -> Notifier {
    Notifier::Ntfy(
        NtfyNotifier::new(NtfySettings {
            server: server.url(),
            topic: topic.to_string(),
            auth: None,
            publish: NtfyPublish::Headers,
            tags: Vec::new(),
            timeout: Duration::from_secs(2),
        })
        .unwrap(),
    )
}

/// Fast retries, so failure tests do not wait for production backoff.
fn quick(mut t: Target) -> Target {
    t.retry = RetrySettings {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
        give_up_after: t.retry.give_up_after,
    };
    t
}

/// Settings with every notification to the one receiver `all` (made of
/// `targets`) and no throttle unless the test sets one.
fn settings(dir: &Path, targets: &[&str]) -> Settings {
    let mut s = Settings::new(dir.join("outbox.redb"));
    s.policy.throttle = Duration::ZERO;
    s.receivers.insert(
        "all".to_string(),
        targets.iter().map(|t| t.to_string()).collect(),
    );
    s.route = Route {
        receivers: vec!["all".to_string()],
        ..Route::default()
    };
    s
}

fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn wait_async<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn delivered(requests: &[testkit::webhook::Request]) -> Vec<serde_json::Value> {
    requests
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json().unwrap())
        .collect()
}

fn idle(outbox: &Outbox) -> bool {
    outbox.status().iter().all(|t| t.pending == 0)
}

fn lines(path: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_every_stream_in_order_and_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("changes.ndjson");
    let open = || {
        Outbox::open(
            Settings::new(dir.path().join("outbox.redb")),
            vec![Target::stream(
                "file",
                StreamSink::File(FileSink::open(&file).unwrap()),
            )],
            sinks::outbox::wall_clock(),
        )
        .unwrap()
    };
    let batches = [
        vec![
            change(ChangeKind::Opened, csi()),
            change(ChangeKind::Opened, stall()),
        ],
        vec![change(ChangeKind::Updated, with_new_effect(csi(), "x"))],
        vec![change(ChangeKind::Resolved, resolved(stall()))],
    ];
    let outbox = open();
    let tasks = outbox.start();
    for b in &batches {
        outbox.enqueue(b).unwrap();
    }
    let want: Vec<String> = batches
        .iter()
        .flatten()
        .map(|o| String::from_utf8(o.json.clone()).unwrap())
        .collect();
    wait_async("every change in the file", || {
        (lines(&file).len() >= want.len()).then_some(())
    })
    .await;
    outbox
        .shutdown(Duration::from_secs(5), tasks)
        .await
        .unwrap();
    assert_eq!(lines(&file), want, "every change, in order, once");
    drop(outbox);

    // A restart delivers nothing again: the deliveries were recorded.
    let outbox = open();
    assert!(idle(&outbox));
    let tasks = outbox.start();
    outbox
        .enqueue(&[change(ChangeKind::Updated, csi())])
        .unwrap();
    wait_async("the new change", || {
        (lines(&file).len() == want.len() + 1).then_some(())
    })
    .await;
    outbox
        .shutdown(Duration::from_secs(5), tasks)
        .await
        .unwrap();
    assert_eq!(lines(&file).len(), want.len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_stored_once_for_all_streams_and_released_when_all_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    let outbox = Outbox::open(
        Settings::new(dir.path().join("outbox.redb")),
        vec![
            Target::stream("a", StreamSink::File(FileSink::open(&a).unwrap())),
            Target::stream("b", StreamSink::File(FileSink::open(&b).unwrap())),
        ],
        sinks::outbox::wall_clock(),
    )
    .unwrap();
    outbox
        .enqueue(&[
            change(ChangeKind::Opened, csi()),
            change(ChangeKind::Opened, stall()),
        ])
        .unwrap();
    assert_eq!(
        outbox.held_documents().unwrap(),
        2,
        "one document per change, not per stream"
    );
    let tasks = outbox.start();
    wait_async("both streams", || {
        (lines(&a).len() == 2 && lines(&b).len() == 2).then_some(())
    })
    .await;
    wait_async("the documents released", || {
        (outbox.held_documents().unwrap() == 0).then_some(())
    })
    .await;
    outbox
        .shutdown(Duration::from_secs(5), tasks)
        .await
        .unwrap();
    assert_eq!(lines(&a), lines(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_hear_the_opening_the_news_and_the_end_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start();
    let outbox = Outbox::open(
        settings(dir.path(), &["hook"]),
        vec![Target::notifier("hook", webhook(&hook))],
        sinks::outbox::wall_clock(),
    )
    .unwrap();
    let tasks = outbox.start();
    let mut busier = csi();
    busier.signals += 100;
    busier.version += 1;
    let news = with_new_effect(busier.clone(), "mysql-cannot-lock-files");
    for c in [
        change(ChangeKind::Opened, csi()),
        change(ChangeKind::Updated, busier),
        change(ChangeKind::Updated, news.clone()),
        change(ChangeKind::Updated, news.clone()),
        change(ChangeKind::Resolved, resolved(news)),
    ] {
        // One at a time, as the pipeline's ticks hand them over.
        outbox.enqueue(&[c]).unwrap();
        wait_async("the outbox to deliver", || idle(&outbox).then_some(())).await;
    }
    outbox
        .shutdown(Duration::from_secs(5), tasks)
        .await
        .unwrap();
    let got = delivered(&hook.requests());
    let events: Vec<(&str, u64)> = got
        .iter()
        .map(|b| {
            (
                b["event"].as_str().unwrap(),
                b["sequence"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(events, [("opened", 1), ("updated", 2), ("resolved", 3)]);
    assert_eq!(
        got[1]["reasons"][0]["kind"], "new_effects",
        "the update says what is new: {}",
        got[1]["reasons"]
    );
    let p = outbox.policy_status();
    assert_eq!((p.opened, p.updated, p.resolved, p.quiet), (1, 1, 1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_delays_delivery_and_newer_news_folds_into_what_waits() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start();
    hook.answer_next(3, Answer::Status(503));
    let outbox = Outbox::open(
        settings(dir.path(), &["hook"]),
        vec![quick(Target::notifier("hook", webhook(&hook)))],
        sinks::outbox::wall_clock(),
    )
    .unwrap();
    // Queued before delivery starts: the three notifications fold into one.
    let news = with_new_effect(csi(), "vault-boltdb-timeout");
    outbox
        .enqueue(&[
            change(ChangeKind::Opened, csi()),
            change(ChangeKind::Updated, news.clone()),
            change(
                ChangeKind::Updated,
                with_new_effect(news, "mysql-cannot-lock-files"),
            ),
        ])
        .unwrap();
    let tasks = outbox.start();
    wait_async("the delivery after three refusals", || {
        (!delivered(&hook.requests()).is_empty()).then_some(())
    })
    .await;
    wait_async("an idle outbox", || idle(&outbox).then_some(())).await;
    outbox
        .shutdown(Duration::from_secs(5), tasks)
        .await
        .unwrap();
    let all = hook.requests();
    assert_eq!(all.len(), 4, "three refused, one delivered");
    let keys: Vec<&str> = all
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "every attempt is the same notification: {keys:?}"
    );
    let got = delivered(&all);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["event"], "opened", "still the opening");
    assert_eq!(got[0]["sequence"], 3, "of the newest state");
    assert_eq!(
        got[0]["incident"]["affected"].as_array().unwrap().len(),
        csi().affected.len() + 2
    );
    let status = &outbox.status()[0];
    assert_eq!(
        (status.failed_attempts, status.coalesced, status.dead),
        (3, 2, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_waits_as_long_as_the_service_asked() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start();
    hook.answer_next(1, Answer::StatusRetryAfter(429, 2));
    let outbox = Outbox::open(
        settings(dir.path(), &["hook"]),
        vec![quick(Target::notifier("hook", webhook(&hook)))],
        sinks::outbox::wall_clock(),
    )
    .unwrap();
    let tasks = outbox.start();
    outbox
        .enqueue(&[change(ChangeKind::Opened, csi())])
        .unwrap();
    let all = wait_async("the retry", || {
        let r = hook.requests();
        (r.len() >= 2).then_some(r)
    })
    .await;
    outbox
        .shutdown(Duration::from_secs(5), tasks)
        .await
        .unwrap();
    let gap = all[1].arrived.duration_since(all[0].arrived).unwrap();
    assert!(
        gap >= Duration::from_secs(2),
        "retried after {gap:?}, before the 2 s Retry-After (backoff alone would be 50 ms)"
    );
    assert_eq!((all[0].status, all[1].status), (429, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_is_dead_lettered_at_once_and_the_queue_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start();
    hook.answer_next(1, Answer::Status(400));
    let outbox = Outbox::open(
        settings(dir.path(), &["hook"]),
        vec![quick(Target::notifier("hook", webhook(&hook)))],
        sinks::outbox::wall_clock(),
    )
    .unwrap();
    let tasks = outbox.start();
    outbox
        .enqueue(&[
            change(ChangeKind::Opened, csi()),
            change(ChangeKind::Opened, stall()),
        ])
        .unwrap();
    wait_async("both handled", || idle(&outbox).then_some(())).await;
    outbox
        .shutdown(Duration::from_secs(5), tasks)
        .await
        .unwrap();
    let all = hook.requests();
    assert_eq!(all.iter().map(|r| r.status).collect::<Vec<_>>(), [400, 200]);
    let dead = outbox.dead_letters("hook", 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].incident, csi().id);
    assert!(dead[0].error.contains("400"), "{}", dead[0].error);
    let kept: serde_json::Value = serde_json::from_slice(&dead[0].payload).unwrap();
    assert_eq!(
        kept["incident"]["id"],
        csi().id.as_str(),
        "the notification is kept whole"
    );
    assert_eq!(outbox.status()[0].dead, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_failing_past_the_give_up_time_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start();
    hook.answer_next(1_000_000, Answer::Status(500));
    let (clock, now) = manual_clock(1_000_000_000_000);
    let mut target = quick(Target::notifier("hook", webhook(&hook)));
    target.retry.give_up_after = Some(Duration::from_secs(3600));
    let outbox = Outbox::open(settings(dir.path(), &["hook"]), vec![target], clock).unwrap();
    let tasks = outbox.start();
    outbox
        .enqueue(&[change(ChangeKind::Opened, csi())])
        .unwrap();
    // Time moves a second per look, so the retries come due.
    wait_async("a few failed attempts", || {
        now.fetch_add(1_000_000, Ordering::SeqCst);
        (hook.requests().len() >= 2).then_some(())
    })
    .await;
    assert_eq!(outbox.status()[0].dead, 0, "still trying within the hour");
    now.fetch_add(3_600_000_001, Ordering::SeqCst);
    wait_async("the dead letter", || {
        (outbox.status()[0].dead == 1).then_some(())
    })
    .await;
    outbox
        .shutdown(Duration::from_secs(5), tasks)
        .await
        .unwrap();
    assert_eq!(outbox.status()[0].pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_update_waits_and_then_tells_the_latest_state() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start();
    let (clock, now) = manual_clock(1_000_000_000_000);
    let mut s = settings(dir.path(), &["hook"]);
    s.policy.throttle = Duration::from_secs(300);
    let outbox = Outbox::open(s, vec![Target::notifier("hook", webhook(&hook))], clock).unwrap();
    let tasks = outbox.start();
    outbox
        .enqueue(&[change(ChangeKind::Opened, csi())])
        .unwrap();
    wait_async("the opening", || {
        (delivered(&hook.requests()).len() == 1).then_some(())
    })
    .await;
    now.fetch_add(60_000_000, Ordering::SeqCst);
    let first = with_new_effect(csi(), "vault-boltdb-timeout");
    let second = with_new_effect(first.clone(), "mysql-cannot-lock-files");
    outbox
        .enqueue(&[change(ChangeKind::Updated, first)])
        .unwrap();
    outbox
        .enqueue(&[change(ChangeKind::Updated, second.clone())])
        .unwrap();
    outbox.release_due().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        delivered(&hook.requests()).len(),
        1,
        "inside the throttle: held back"
    );
    assert_eq!(outbox.policy_status().deferred, 2);
    now.fetch_add(240_000_000, Ordering::SeqCst);
    outbox.release_due().unwrap();
    let got = wait_async("the deferred update", || {
        let d = delivered(&hook.requests());
        (d.len() == 2).then_some(d)
    })
    .await;
    outbox
        .shutdown(Duration::from_secs(5), tasks)
        .await
        .unwrap();
    assert_eq!(got[1]["event"], "updated");
    assert_eq!(
        got[1]["incident"]["affected"].as_array().unwrap().len(),
        second.affected.len(),
        "told on the latest state"
    );
    let signals: Vec<&str> = got[1]["reasons"][0]["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(signals, ["mysql-cannot-lock-files", "vault-boltdb-timeout"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_pick_receivers_and_whoever_announced_an_incident_hears_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start();
    let phone = LocalNtfy::start();
    let mut s = Settings::new(dir.path().join("outbox.redb"));
    s.policy.throttle = Duration::ZERO;
    s.receivers
        .insert("everyone".to_string(), vec!["hook".to_string()]);
    s.receivers
        .insert("pager".to_string(), vec!["phone".to_string()]);
    // Critical incidents page too; the rest only go to the webhook.
    s.route = Route {
        receivers: vec!["everyone".to_string()],
        routes: vec![
            Route {
                matchers: vec![Matcher::parse("severity = critical").unwrap()],
                receivers: vec!["pager".to_string()],
                continue_matching: true,
                routes: Vec::new(),
            },
            Route {
                matchers: vec![Matcher::parse("rule =~ .+").unwrap()],
                receivers: vec!["everyone".to_string()],
                continue_matching: false,
                routes: Vec::new(),
            },
        ],
        ..Route::default()
    };
    let outbox = Outbox::open(
        s,
        vec![
            Target::notifier("hook", webhook(&hook)),
            Target::notifier("phone", ntfy(&phone, "oncall")),
        ],
        sinks::outbox::wall_clock(),
    )
    .unwrap();
    let tasks = outbox.start();
    let critical = csi();
    assert_eq!(critical.severity, correlate::Severity::Critical);
    let mut warning = stall();
    warning.severity = correlate::Severity::Warning;
    outbox
        .enqueue(&[
            change(ChangeKind::Opened, critical.clone()),
            change(ChangeKind::Opened, warning.clone()),
        ])
        .unwrap();
    wait_async("the openings", || idle(&outbox).then_some(())).await;
    // Its severity drops before it ends: routes would no longer page, but
    // the phone that showed it must be told it is over.
    let mut ended = resolved(critical.clone());
    ended.severity = correlate::Severity::Warning;
    outbox
        .enqueue(&[change(ChangeKind::Resolved, ended)])
        .unwrap();
    wait_async("the resolution", || idle(&outbox).then_some(())).await;
    // The incident page's delivery log: each delivery that landed, per
    // target, the phone's resolution an edit of the notification it showed.
    let mut log: Vec<(String, String, u32, bool)> = outbox
        .notified(&critical.id)
        .unwrap()
        .sent
        .into_iter()
        .map(|s| (s.target, s.event, s.sequence, s.edited))
        .collect();
    log.sort();
    assert_eq!(
        log,
        [
            ("hook".to_string(), "opened".to_string(), 1, false),
            ("hook".to_string(), "resolved".to_string(), 2, false),
            ("phone".to_string(), "opened".to_string(), 1, false),
            ("phone".to_string(), "resolved".to_string(), 2, true),
        ]
    );
    assert_eq!(outbox.notified(&warning.id).unwrap().sent.len(), 1);
    outbox
        .shutdown(Duration::from_secs(5), tasks)
        .await
        .unwrap();

    let hooked: Vec<(String, String)> = delivered(&hook.requests())
        .iter()
        .map(|b| {
            (
                b["incident"]["id"].as_str().unwrap().to_string(),
                b["event"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        hooked,
        [
            (critical.id.clone(), "opened".to_string()),
            (warning.id.clone(), "opened".to_string()),
            (critical.id.clone(), "resolved".to_string())
        ]
    );
    let paged: Vec<String> = phone
        .messages()
        .iter()
        .map(|m| m.sequence_id.clone())
        .collect();
    assert!(paged.len() >= 2, "opening and resolution paged: {paged:?}");
    assert!(
        paged.iter().all(|s| s == &paged[0]),
        "one notification on the phone: {paged:?}"
    );
    assert!(phone.drawer("oncall").is_empty(), "cleared once resolved");
}

#[test]
fn a_restart_with_a_pending_outbox_delivers_every_notification_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let phone = LocalNtfy::start();
    phone.fail_next(1_000, Fault::ServerError);
    let open = |rt: &tokio::runtime::Runtime| {
        let _guard = rt.enter();
        Outbox::open(
            settings(dir.path(), &["phone"]),
            vec![quick(Target::notifier("phone", ntfy(&phone, "alerts")))],
            sinks::outbox::wall_clock(),
        )
        .unwrap()
    };
    // First life: the server refuses everything; the process stops with
    // the notifications still queued.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let outbox = open(&rt);
    let tasks = {
        let _guard = rt.enter();
        outbox.start()
    };
    outbox
        .enqueue(&[
            change(ChangeKind::Opened, csi()),
            change(ChangeKind::Opened, stall()),
        ])
        .unwrap();
    outbox
        .enqueue(&[change(ChangeKind::Resolved, resolved(stall()))])
        .unwrap();
    wait("refused attempts", || {
        (phone.refusals().len() >= 2).then_some(())
    });
    rt.block_on(outbox.shutdown(Duration::from_millis(100), tasks))
        .unwrap();
    drop(outbox);
    drop(rt);
    assert!(phone.messages().is_empty());

    // Second life: the server works again.
    phone.clear_faults();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let outbox = open(&rt);
    assert!(
        outbox.status()[0].pending >= 1,
        "the queue survived the restart"
    );
    let tasks = {
        let _guard = rt.enter();
        outbox.start()
    };
    wait("the queue to drain", || idle(&outbox).then_some(()));
    rt.block_on(outbox.shutdown(Duration::from_secs(5), tasks))
        .unwrap();
    let msgs = phone.messages();
    let csi_msgs = msgs.iter().filter(|m| m.sequence_id == csi().id).count();
    let stall_msgs = msgs.iter().filter(|m| m.sequence_id == stall().id).count();
    assert_eq!(csi_msgs, 1, "the CSI opening, once: {msgs:#?}");
    assert_eq!(
        stall_msgs, 1,
        "the stall's opening and end folded into one resolved message"
    );
    let shown: Vec<String> = phone
        .drawer("alerts")
        .iter()
        .map(|s| s.message.sequence_id.clone())
        .collect();
    assert_eq!(shown, [csi().id], "the ended one is cleared");
}

fn slack(fake: &testkit::slack::FakeSlack, timeout: Duration) -> Notifier {
    use sinks::notify::slack::{SlackNotifier, SlackSettings, SlackTarget};
    Notifier::Slack(
        SlackNotifier::new(SlackSettings {
            target: SlackTarget::Api {
                token: sinks::notify::Secret::new(fake.token()),
                channel: testkit::slack::CHANNEL_ID.to_string(),
                api_url: fake.api_url(),
            },
            mention: None,
            timeout,
        })
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_that_posts_but_answers_too_late_still_gets_each_message_once() {
    use testkit::slack::{CHANNEL_ID, FakeSlack, FakeSlackOptions, Fault as SlackFault};
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSlack::start(FakeSlackOptions::default());
    // The opening is posted, but its answer comes after the client gave up
    // (a timeout: in doubt); later, the same happens to the thread reply.
    fake.fault_on(
        "chat.postMessage",
        SlackFault::Delay(Duration::from_secs(3)),
        1,
    );
    let outbox = Outbox::open(
        settings(dir.path(), &["slack"]),
        vec![quick(Target::notifier(
            "slack",
            slack(&fake, Duration::from_millis(500)),
        ))],
        sinks::outbox::wall_clock(),
    )
    .unwrap();
    let tasks = outbox.start();
    outbox
        .enqueue(&[change(ChangeKind::Opened, csi())])
        .unwrap();
    wait_async("the opening", || idle(&outbox).then_some(())).await;
    fake.fault_on(
        "chat.postMessage",
        SlackFault::Delay(Duration::from_secs(3)),
        1,
    );
    outbox
        .enqueue(&[change(
            ChangeKind::Updated,
            with_new_effect(csi(), "vault-boltdb-timeout"),
        )])
        .unwrap();
    wait_async("the update", || idle(&outbox).then_some(())).await;
    outbox
        .shutdown(Duration::from_secs(5), tasks)
        .await
        .unwrap();

    let messages = fake.messages(CHANNEL_ID);
    let top: Vec<_> = messages.iter().filter(|m| m.thread_ts.is_none()).collect();
    assert_eq!(top.len(), 1, "one message for the incident: {messages:#?}");
    assert_eq!(top[0].edits.len(), 1, "updated in place once");
    assert_eq!(top[0].replies.len(), 1, "one thread reply for the update");
    let status = &outbox.status()[0];
    assert_eq!(
        status.recovered, 2,
        "both late answers were found delivered"
    );
    assert!(status.failed_attempts >= 2);
}

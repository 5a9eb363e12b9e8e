//! Notifications through the durable outbox: how many incident changes per
//! second `Outbox::enqueue` takes (the policy, the routes and one redb
//! transaction per batch, as the pipeline hands them over), and how many
//! notifications per second reach a service end to end (queue -> notifier
//! -> HTTP -> acknowledgement), against the local webhook receiver and the
//! local Slack of `testkit` on loopback.
//!
//! Every change opens a distinct incident (the policy's most expensive
//! path: a notification for every change). Rate limits are off, so the
//! figure is the outbox's own cost plus one loopback HTTP round trip per
//! notification; Slack's costs one fsync more (the in-doubt mark before
//! every post).
//!
//! `--enqueue-only` starts no delivery task: the enqueue rate alone, with
//! nothing else competing for the store and the cores.
//!
//! ```text
//! outbox [--notifications N] [--batch N] [--runs N] [--enqueue-only]
//! ```
#![allow(clippy::print_stdout)] // the report is the output

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use correlate::IncidentReport;
use sinks::change::{ChangeKind, IncidentChange};
use sinks::notify::Notifier;
use sinks::notify::route::Route;
use sinks::notify::slack::{SlackNotifier, SlackSettings, SlackTarget};
use sinks::notify::webhook::{WebhookFormat, WebhookNotifier, WebhookSettings};
use sinks::outbox::{Outbox, Outgoing, Settings, Target};
use sinks::stream::{FileSink, StreamSink};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    notifications: usize,
    batch: usize,
    runs: usize,
    enqueue_only: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        notifications: 20_000,
        batch: 64,
        runs: 3,
        enqueue_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--enqueue-only" {
            a.enqueue_only = true;
            continue;
        }
        let mut value = || {
            it.next()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--notifications" => a.notifications = value()?,
            "--batch" => a.batch = value()?.max(1),
            "--runs" => a.runs = value()?.max(1),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn base_incident() -> IncidentReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sinks/tests/fixtures/incidents/core-csi-driver-unavailable.json");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    match serde_json::from_str(&text) {
        Ok(i) => i,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// `n` openings of distinct incidents, rendered as the pipeline renders
/// them.
fn openings(n: usize) -> Vec<Outgoing> {
    let base = base_incident();
    (0..n)
        .map(|i| {
            let mut inc = base.clone();
            inc.id = format!("{i:016x}");
            match Outgoing::new(IncidentChange {
                change: ChangeKind::Opened,
                merged_into: None,
                incident: inc,
            }) {
                Ok(o) => o,
                Err(e) => panic!("{e}"),
            }
        })
        .collect()
}

struct Run {
    enqueue: Duration,
    /// `None` with `--enqueue-only`.
    delivered: Option<Duration>,
}

fn run(
    kind: &str,
    notifier: Notifier,
    batches: &[Vec<Outgoing>],
    n: usize,
    enqueue_only: bool,
) -> Result<Run, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut settings = Settings::new(dir.path().join("outbox.redb"));
    settings.policy.throttle = Duration::ZERO;
    settings
        .receivers
        .insert("all".to_string(), vec![kind.to_string()]);
    settings.route = Route {
        receivers: vec!["all".to_string()],
        ..Route::default()
    };
    settings.max_pending = u64::MAX;
    let file = FileSink::open(&dir.path().join("changes.ndjson")).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let _guard = rt.enter();
    let outbox = Outbox::open(
        settings,
        vec![
            Target::stream("file", StreamSink::File(file)),
            Target::notifier(kind, notifier),
        ],
        sinks::outbox::wall_clock(),
    )
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    if enqueue_only {
        for b in batches {
            outbox.enqueue(b).map_err(|e| e.to_string())?;
        }
        let t = started.elapsed();
        return Ok(Run {
            enqueue: t,
            delivered: None,
        });
    }
    let tasks = outbox.start();
    for b in batches {
        outbox.enqueue(b).map_err(|e| e.to_string())?;
    }
    outbox.sync().map_err(|e| e.to_string())?;
    let enqueue = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let s = outbox.status();
        let delivered: u64 = s
            .iter()
            .filter(|t| t.name == kind)
            .map(|t| t.delivered)
            .sum();
        if delivered as usize >= n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{kind}: only {delivered} of {n} delivered in 10 minutes"
            ));
        }
        if let Some(t) = s.iter().find(|t| t.dead > 0) {
            return Err(format!("{}: dead letters: {:?}", t.name, t.last_error));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let delivered = Some(started.elapsed());
    rt.block_on(outbox.shutdown(Duration::from_secs(10), tasks))
        .map_err(|e| e.to_string())?;
    Ok(Run { enqueue, delivered })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("outbox: {e}");
            return ExitCode::from(2);
        }
    };
    let hook = testkit::webhook::WebhookReceiver::start();
    let slack = testkit::slack::FakeSlack::start(testkit::slack::FakeSlackOptions::default());
    let changes = openings(a.notifications);
    let batches: Vec<Vec<Outgoing>> = changes.chunks(a.batch).map(<[Outgoing]>::to_vec).collect();
    println!(
        "outbox: {} openings of distinct incidents in batches of {}, {} runs (median)",
        a.notifications, a.batch, a.runs
    );
    for kind in ["webhook", "slack"] {
        let mut enq = Vec::new();
        let mut e2e = Vec::new();
        for _ in 0..a.runs {
            let notifier = match kind {
                "webhook" => WebhookNotifier::new(WebhookSettings {
                    url: hook.url(),
                    format: WebhookFormat::Incident,
                    secret: None,
                    headers: Vec::new(),
                    receiver: "bench".to_string(),
                    external_url: None,
                    timeout: Duration::from_secs(10),
                })
                .map(Notifier::Webhook)
                .map_err(|e| e.to_string()),
                _ => SlackNotifier::new(SlackSettings {
                    target: SlackTarget::Api {
                        token: sinks::notify::Secret::new(slack.token()),
                        channel: testkit::slack::CHANNEL_ID.to_string(),
                        api_url: slack.api_url(),
                    },
                    mention: None,
                    timeout: Duration::from_secs(10),
                })
                .map(Notifier::Slack)
                .map_err(|e| e.to_string()),
            };
            let r = notifier.and_then(|n| run(kind, n, &batches, a.notifications, a.enqueue_only));
            match r {
                Ok(r) => {
                    enq.push(a.notifications as f64 / r.enqueue.as_secs_f64());
                    if let Some(d) = r.delivered {
                        e2e.push(a.notifications as f64 / d.as_secs_f64());
                    }
                }
                Err(e) => {
                    eprintln!("outbox: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let delivered = if e2e.is_empty() {
            "no delivery task (--enqueue-only)".to_string()
        } else {
            format!("delivered {:>7.0} notifications/s end to end", median(e2e))
        };
        println!(
            "  {kind:8} enqueue {:>9.0} changes/s (policy + routes + queue, with a file stream)   {delivered}",
            median(enq)
        );
    }
    ExitCode::SUCCESS
}

//! The Kubernetes sources against a local API server (`apiserver/`): kube's
//! real client, configured from a kubeconfig, speaking list, watch and log
//! to a fixture driven by recorded streams.
//!
//! The decisive test: the sources, fed the recording of a CSI-driver
//! cascade, deliver lines that form the same incidents (and the same
//! signal count) as `replay` of the recording itself, across a `410 Gone`
//! relist of Pods and of Events, a watch that ends and resumes from a
//! bookmark, paged lists, pod logs, and either Events API. The others: pod
//! logs resume without duplicating or losing lines, the stream cap holds,
//! health says connected only after the initial list, and the object
//! graph's watches (`graph`) deliver what decodes as the recording does,
//! trimmed (workloads metadata-only), within the namespaces, and ask for
//! nothing when off.
#![allow(clippy::unwrap_used)]

mod apiserver;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apiserver::{ApiServer, Collected, Options, Recording, Resource, Step, eventually, pace};
use correlate::rules::{RuleSet, RuleSource, compile};
use correlate::{Engine, EngineConfig, EngineStats, IncidentReport, Origin, Source};
use ingest::source::kubernetes::{self, LogSelector, PodLogSettings, Settings};
use ingest::source::{Health, Intake};
use ingest::{DecodeStats, Decoded, Decoder};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn recording() -> Recording {
    Recording::load(&root().join("tests/apiserver/csi-cascade.ndjson"))
}

/// The shipped rule pack.
fn rules() -> Arc<RuleSet> {
    let dir = root().join("../rules");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".yaml") && !name.ends_with(".test.yaml")
        })
        .collect();
    paths.sort();
    let sources: Vec<RuleSource> = paths
        .iter()
        .map(|p| RuleSource {
            name: p.display().to_string(),
            text: std::fs::read_to_string(p).unwrap(),
        })
        .collect();
    Arc::new(compile(&sources).unwrap())
}

/// What the replay pipeline makes of some lines.
struct Outcome {
    reports: Vec<Value>,
    engine: EngineStats,
    decode: DecodeStats,
    /// `csi_drivers` of each FailedMount Event, by pod.
    csi_drivers: Vec<(String, Option<String>)>,
}

/// Decoder and engine over `lines`, in order, as `epicenter replay` runs
/// them (src/replay.rs), `finish()` at the end.
fn correlate<S: AsRef<str>>(lines: &[S]) -> Outcome {
    let mut decoder = Decoder::default();
    let mut engine = Engine::new(rules(), EngineConfig::default());
    let mut csi_drivers = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let mut events = Vec::new();
        let origin = Origin {
            file: 0,
            line: n as u64 + 1,
        };
        match decoder.decode(line.as_ref(), origin, &mut events) {
            Ok(Decoded::Duplicate { time } | Decoded::Unchanged { time }) => {
                engine.observe(time);
            }
            Ok(_) => {
                for ev in &events {
                    if ev.source == Source::K8sEvent && ev.reason == "FailedMount" {
                        let drivers = ev
                            .fields
                            .iter()
                            .find(|(k, _)| *k == "csi_drivers")
                            .map(|(_, v)| v.to_string());
                        csi_drivers.push((ev.entity.name.to_string(), drivers));
                    }
                    engine.push(ev);
                }
            }
            Err(e) => panic!("line {}: {e}: {}", n + 1, line.as_ref()),
        }
    }
    engine.finish();
    let reports = engine
        .incidents()
        .into_iter()
        .map(|i| serde_json::to_value(IncidentReport::new(i)).unwrap())
        .collect();
    Outcome {
        reports,
        engine: engine.stats().clone(),
        decode: decoder.stats().clone(),
        csi_drivers,
    }
}

fn settings(kubeconfig: &Path) -> Settings {
    Settings {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        stamp_observed_at: false,
        ..Settings::default()
    }
}

/// Runs the sources until `cancel`; the task's result.
fn start(
    settings: Settings,
    intake: Intake,
    health: &Health,
    cancel: &CancellationToken,
) -> tokio::task::JoinHandle<kubernetes::Result<()>> {
    tokio::spawn(kubernetes::run(
        settings,
        intake,
        health.clone(),
        cancel.clone(),
    ))
}

async fn stop(cancel: &CancellationToken, task: tokio::task::JoinHandle<kubernetes::Result<()>>) {
    cancel.cancel();
    let done = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the sources stop when cancelled");
    done.unwrap().unwrap();
}

fn list_requests(server: &ApiServer, path: &str) -> Vec<apiserver::Request> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path == path && !r.is_watch())
        .collect()
}

fn watch_requests(server: &ApiServer, path: &str) -> Vec<apiserver::Request> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path == path && r.is_watch())
        .collect()
}

async fn sources_match_replay(events_v1: bool) {
    let rec = recording();
    let server = ApiServer::start(
        &rec,
        Options {
            events_v1,
            max_page: Some(2),
        },
    )
    .await;
    let initial = rec.initial();
    server.release(initial);
    // Scripted: Pods expire when the CSI plugin starts crash-looping, Events
    // when a FailedMount repeats; the Nodes watch ends (a server timeout)
    // just before a node goes NotReady.
    server.expire(Resource::Pods, rec.find("CrashLoopBackOff"));
    server.expire(
        Resource::Events,
        rec.find(r#""lastTimestamp":"2026-04-02T10:01:52Z""#),
    );
    let node_down = rec.find("NodeStatusUnknown");

    let (intake, rx) = Intake::bounded(16);
    let collected = Collected::spawn(rx);
    let health = Health::default();
    let cancel = CancellationToken::new();
    let task = start(
        Settings {
            volumes: true,
            pod_logs: Some(PodLogSettings {
                selectors: vec![LogSelector {
                    namespace: Some("storage".into()),
                    labels: "app.kubernetes.io/name=blockstore-csi-node".into(),
                    container: None,
                }],
                max_streams: 16,
                backlog: None,
            }),
            ..settings(&server.kubeconfig())
        },
        intake,
        &health,
        &cancel,
    );

    // The initial lists, in whatever order the watches deliver them; then
    // every watch is connected.
    collected
        .until("the initial lists", |lines| {
            (0..initial).all(|i| lines.iter().any(|(_, v, _)| rec.steps[i].carried_by(i, v)))
        })
        .await;
    eventually("every source connected", || {
        health.sources().iter().all(|s| s.is_connected())
    })
    .await;

    // The rest one step at a time, in the recording's order.
    pace(&server, &rec, &collected, initial, |i| {
        if i == node_down {
            server.end_watches(Resource::Nodes);
        }
    })
    .await;
    stop(&cancel, task).await;

    let live_lines = collected.texts();
    let live = correlate(&live_lines);
    let replayed = correlate(&rec.lines);

    // The same incidents, byte for byte, and the same signals.
    assert!(
        !replayed.reports.is_empty(),
        "the recording forms incidents"
    );
    assert_eq!(
        serde_json::to_string_pretty(&live.reports).unwrap(),
        serde_json::to_string_pretty(&replayed.reports).unwrap()
    );
    // No record became a second event: relist replays were all dropped.
    // (How many signals were late may differ: the initial lists of
    // different watches interleave in any order.)
    assert_eq!(live.engine.signals, replayed.engine.signals);
    assert_eq!(live.engine.records, replayed.engine.records);

    // The cascade is the one incident it should be.
    let csi = replayed
        .reports
        .iter()
        .find(|r| r["rule"] == "csi-driver-unavailable")
        .expect("a CSI driver incident");
    assert_eq!(csi["root_cause"]["entity"]["kind"], "DaemonSet");
    assert_eq!(csi["root_cause"]["entity"]["name"], "blockstore-csi-node");
    let affected: Vec<&str> = csi["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(affected.contains(&"orders-db-0"), "{affected:?}");
    assert!(affected.contains(&"cart-6f8d9c7b5-9vhtm"), "{affected:?}");

    // The relists happened and re-sent objects; the decoder dropped them.
    assert!(
        list_requests(&server, "/api/v1/pods")
            .iter()
            .filter(|r| !r.query.contains_key("continue"))
            .count()
            >= 2
    );
    let events_path = if events_v1 {
        "/apis/events.k8s.io/v1/events"
    } else {
        "/api/v1/events"
    };
    assert!(
        list_requests(&server, events_path)
            .iter()
            .filter(|r| !r.query.contains_key("continue")
                && r.query.get("limit").map(String::as_str) != Some("1"))
            .count()
            >= 2,
        "events relisted"
    );
    assert!(live.decode.duplicates > replayed.decode.duplicates);
    assert!(live.decode.unchanged > replayed.decode.unchanged);
    assert!(live_lines.len() > rec.lines.len());

    // Lists came in pages.
    assert!(
        server
            .requests()
            .iter()
            .any(|r| !r.is_watch() && r.query.contains_key("continue"))
    );

    // The Nodes watch ended and resumed from a bookmark, without a relist.
    assert!(server.bookmarks() > 0);
    let node_lists = list_requests(&server, "/api/v1/nodes");
    assert_eq!(
        node_lists
            .iter()
            .filter(|r| !r.query.contains_key("continue"))
            .count(),
        1,
        "no relist of nodes"
    );
    let node_watches = watch_requests(&server, "/api/v1/nodes");
    assert!(node_watches.len() >= 2, "{node_watches:?}");
    assert!(
        node_watches
            .iter()
            .all(|r| r.query.get("allowWatchBookmarks").map(String::as_str) == Some("true"))
    );
    let list_rv: u64 = node_watches[0].query["resourceVersion"].parse().unwrap();
    let resumed_rv: u64 = node_watches[1].query["resourceVersion"].parse().unwrap();
    assert!(
        resumed_rv > list_rv,
        "resumed from a bookmark: {resumed_rv} > {list_rv}"
    );

    // Which Events API was used, and what the lines say.
    let event_api_versions: Vec<&str> = collected
        .lines()
        .iter()
        .filter(|(s, _, _)| s == "kubernetes/events")
        .map(
            |(_, v, _)| match v["object"]["apiVersion"].as_str().unwrap() {
                "events.k8s.io/v1" => "events.k8s.io/v1",
                _ => "v1",
            },
        )
        .collect();
    assert!(!event_api_versions.is_empty());
    let expected = if events_v1 { "events.k8s.io/v1" } else { "v1" };
    assert!(event_api_versions.iter().all(|v| *v == expected));
    assert!(watch_requests(&server, events_path).len() >= 2);
    if !events_v1 {
        // Asked for events.k8s.io/v1 first, got 404.
        assert!(!list_requests(&server, "/apis/events.k8s.io/v1/events").is_empty());
        assert!(watch_requests(&server, "/apis/events.k8s.io/v1/events").is_empty());
    }

    // The PVC/PV watches taught the topology the driver behind each claim.
    for (pod, drivers) in &live.csi_drivers {
        assert_eq!(
            drivers.as_deref(),
            Some("blockstore.csi.example.com"),
            "{pod}"
        );
    }
    assert!(live.csi_drivers.len() >= 2);

    // Pod logs arrived on their container's stream, Vector-shaped.
    let lines = collected.lines();
    assert!(lines.iter().any(|(s, v, _)| {
        s == "kubernetes/logs/storage/blockstore-csi-node-7xk2p/liveness-probe"
            && v["message"]
                .as_str()
                .unwrap()
                .contains("bind: address already in use")
            && v["kubernetes"]["pod_owner"] == "DaemonSet/blockstore-csi-node"
    }));
    for s in health.sources() {
        assert!(s.is_connected(), "{} connected", s.name);
        assert!(s.rejected().is_empty(), "{}: {:?}", s.name, s.rejected());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_form_the_same_incidents_as_replay() {
    sources_match_replay(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_events_k8s_io_the_core_events_form_the_same_incidents() {
    sources_match_replay(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_connected_only_after_the_initial_list() {
    let rec = recording();
    let server = ApiServer::start(&rec, Options::default()).await;
    let initial = rec.initial();
    server.release(initial);
    server.hold_lists(true);
    server.fail_lists(Resource::Nodes, true);

    let (intake, mut rx) = Intake::bounded(64);
    let health = Health::default();
    let cancel = CancellationToken::new();
    let task = start(
        Settings {
            events: false,
            ..settings(&server.kubeconfig())
        },
        intake,
        &health,
        &cancel,
    );
    let source = |name: &str| {
        health
            .sources()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap()
    };
    eventually("the pod list request", || {
        !list_requests(&server, "/api/v1/pods").is_empty()
    })
    .await;
    assert!(!source("kubernetes/pods").is_connected());
    assert!(rx.try_recv().is_err(), "nothing delivered before the list");

    server.hold_lists(false);
    eventually("pods connected", || {
        source("kubernetes/pods").is_connected()
    })
    .await;
    // Connected means the whole initial list is already queued.
    let pods = rec.steps[..initial]
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::Watch {
                    resource: Resource::Pods,
                    ..
                }
            )
        })
        .count();
    let mut delivered = Vec::new();
    while let Ok(d) = rx.try_recv() {
        if d.stream.as_str() == "kubernetes/pods" {
            delivered.extend(d.lines);
        }
    }
    assert_eq!(delivered.len(), pods);
    assert_eq!(
        source("kubernetes/pods")
            .records
            .load(std::sync::atomic::Ordering::Relaxed),
        pods as u64
    );

    // Nodes fail to list: not connected, the error kept.
    eventually("the node list error", || {
        source("kubernetes/nodes").last_error().is_some()
    })
    .await;
    let nodes = source("kubernetes/nodes");
    assert!(!nodes.is_connected());
    assert!(
        nodes
            .last_error()
            .unwrap()
            .contains("etcdserver: request timed out")
    );
    server.fail_lists(Resource::Nodes, false);
    eventually("nodes connected after the failure", || nodes.is_connected()).await;
    stop(&cancel, task).await;
}

/// A pod `name` in `apps` with one container `app` running as instance `id`
/// (restarted `restarts` times), labelled `app=<label>`, as a watch event.
fn app_pod(type_: &str, name: &str, label: &str, id: &str, restarts: u32) -> String {
    serde_json::json!({"type": type_, "object": {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps", "uid": format!("uid-{name}"),
                     "creationTimestamp": "2026-04-02T09:00:00Z",
                     "labels": {"app": label, "pod-template-hash": "5d8f7c9b6"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                         "name": format!("{label}-5d8f7c9b6"), "uid": "rs", "controller": true}]},
        "spec": {"nodeName": "worker-a", "containers": [{"name": "app", "image": "example/app:1"}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-04-02T09:00:05Z"}],
                   "containerStatuses": [{"name": "app", "ready": true, "restartCount": restarts,
                       "containerID": format!("containerd://{id}"),
                       "state": {"running": {"startedAt": "2026-04-02T09:00:04Z"}}}]}}})
    .to_string()
}

fn log_line(pod: &str, timestamp: &str, message: &str) -> String {
    serde_json::json!({"message": message, "timestamp": timestamp, "kubernetes": {
        "pod_name": pod, "pod_namespace": "apps", "container_name": "app",
        "pod_node_name": "worker-a", "pod_uid": format!("uid-{pod}"), "pod_labels": {}}})
    .to_string()
}

/// Follow container `app` of the pods in `apps` labelled `labels`; the first
/// read of a log from the container's start.
fn log_settings(server: &ApiServer, labels: &str, max_streams: usize) -> Settings {
    Settings {
        events: false,
        pods: false,
        nodes: false,
        pod_logs: Some(PodLogSettings {
            selectors: vec![LogSelector {
                namespace: Some("apps".into()),
                labels: labels.into(),
                container: Some("app".into()),
            }],
            max_streams,
            backlog: None,
        }),
        ..settings(&server.kubeconfig())
    }
}

fn messages(collected: &Collected) -> Vec<(String, String)> {
    collected
        .lines()
        .iter()
        .map(|(s, v, _)| (s.clone(), v["message"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_logs_resume_without_repeating_or_losing_lines() {
    let lines = [
        app_pod("ADDED", "ledger-0", "ledger", "instance-1", 0),
        app_pod("ADDED", "other-0", "other", "instance-9", 0),
        log_line("other-0", "2026-04-02T10:00:00.100Z", "not selected"),
        log_line("ledger-0", "2026-04-02T10:00:01.250000000Z", "line 1"),
        // Two lines within one second: sinceTime cannot tell them apart.
        log_line("ledger-0", "2026-04-02T10:00:02.100000000Z", "line 2"),
        log_line("ledger-0", "2026-04-02T10:00:02.700000000Z", "line 3"),
        log_line("ledger-0", "2026-04-02T10:00:03.000000001Z", "line 4"),
        // The container restarts: a new instance, more lines.
        app_pod("MODIFIED", "ledger-0", "ledger", "instance-2", 1),
        log_line(
            "ledger-0",
            "2026-04-02T10:00:09.500000000Z",
            "line 5 (second instance)",
        ),
        // Too long: its head is taken, the rest dropped and counted.
        log_line(
            "ledger-0",
            "2026-04-02T10:00:09.550000000Z",
            &"x".repeat(300 << 10),
        ),
        log_line("ledger-0", "2026-04-02T10:00:09.600000000Z", "line 6"),
    ];
    let rec = Recording::parse(&lines.join("\n"));
    let server = ApiServer::start(&rec, Options::default()).await;
    // The connection breaks after line 2 (mid-way through line 3), and ends
    // after line 4 as the container exits.
    server.cut_log(rec.find("line 2"));
    server.end_log(rec.find("line 4"));
    let restart = rec.find("instance-2");
    server.release(restart);

    let (intake, rx) = Intake::bounded(16);
    let collected = Collected::spawn(rx);
    let health = Health::default();
    let cancel = CancellationToken::new();
    let task = start(
        log_settings(&server, "app=ledger", 4),
        intake,
        &health,
        &cancel,
    );
    collected
        .until("lines 1-2", |l| {
            l.iter().any(|(_, v, _)| v["message"] == "line 2")
        })
        .await;
    server.snap_logs();
    collected
        .until("lines 3-4", |l| {
            l.iter().any(|(_, v, _)| v["message"] == "line 4")
        })
        .await;
    server.release(rec.steps.len());
    collected
        .until("line 6", |l| {
            l.iter().any(|(_, v, _)| v["message"] == "line 6")
        })
        .await;
    stop(&cancel, task).await;

    let stream = "kubernetes/logs/apps/ledger-0/app";
    let mut got = messages(&collected);
    let long = got.remove(5).1;
    let prefix = "2026-04-02T10:00:09.550000000Z ".len();
    assert_eq!(long, "x".repeat((256 << 10) - prefix));
    assert_eq!(
        got,
        [
            "line 1",
            "line 2",
            "line 3",
            "line 4",
            "line 5 (second instance)",
            "line 6"
        ]
        .map(|m| (stream.to_owned(), m.to_owned()))
    );
    let record = &collected.lines()[0].1;
    assert_eq!(record["timestamp"], "2026-04-02T10:00:01.250000000Z");
    assert_eq!(record["kubernetes"]["pod_uid"], "uid-ledger-0");
    assert_eq!(record["kubernetes"]["pod_node_name"], "worker-a");
    assert_eq!(record["kubernetes"]["pod_labels"]["app"], "ledger");
    assert_eq!(
        record["kubernetes"]["pod_owner"],
        "ReplicaSet/ledger-5d8f7c9b6"
    );

    let log_requests: Vec<apiserver::Request> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/log"))
        .collect();
    assert!(
        log_requests
            .iter()
            .all(|r| r.path == "/api/v1/namespaces/apps/pods/ledger-0/log")
    );
    assert!(log_requests.len() >= 3, "{log_requests:?}");
    let since: Vec<Option<&str>> = log_requests
        .iter()
        .map(|r| r.query.get("sinceTime").map(String::as_str))
        .collect();
    assert_eq!(since[0], None);
    // Resumed from the second of line 2, then of line 4.
    assert_eq!(since[1], Some("2026-04-02T10:00:02Z"));
    assert_eq!(since[2], Some("2026-04-02T10:00:03Z"));
    for r in &log_requests {
        assert_eq!(r.query.get("follow").map(String::as_str), Some("true"));
        assert_eq!(r.query.get("timestamps").map(String::as_str), Some("true"));
        assert_eq!(r.query.get("container").map(String::as_str), Some("app"));
    }
    let logs = health
        .sources()
        .into_iter()
        .find(|s| s.name == "kubernetes/logs")
        .unwrap();
    assert_eq!(logs.records.load(std::sync::atomic::Ordering::Relaxed), 7);
    assert_eq!(logs.rejected(), vec![("oversized_log_line", 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stream_cap_holds_and_waiting_containers_follow_later() {
    let mut lines = Vec::new();
    for pod in ["fleet-a", "fleet-b", "fleet-c"] {
        lines.push(app_pod("ADDED", pod, "fleet", &format!("{pod}-1"), 0));
    }
    for (n, pod) in ["fleet-a", "fleet-b", "fleet-c"].iter().enumerate() {
        lines.push(log_line(
            pod,
            &format!("2026-04-02T10:00:0{n}.5Z"),
            &format!("{pod} says hello"),
        ));
    }
    let rec = Recording::parse(&lines.join("\n"));
    let server = ApiServer::start(&rec, Options::default()).await;
    server.release(rec.steps.len());

    let (intake, rx) = Intake::bounded(16);
    let collected = Collected::spawn(rx);
    let health = Health::default();
    let cancel = CancellationToken::new();
    let mut fleet = log_settings(&server, "app=fleet", 2);
    if let Some(logs) = &mut fleet.pod_logs {
        // The default: a first read goes 10 minutes back.
        logs.backlog = PodLogSettings::default().backlog;
    }
    let task = start(fleet, intake, &health, &cancel);
    let logs = || {
        health
            .sources()
            .into_iter()
            .find(|s| s.name == "kubernetes/logs")
            .unwrap()
    };
    collected
        .until("two containers followed", |l| {
            apiserver::streams_of(l).len() == 2
        })
        .await;
    eventually("the third container counted", || {
        logs().rejected() == vec![("max_streams", 1)]
    })
    .await;
    assert_eq!(server.max_open_logs(), 2);
    assert_eq!(collected.lines().len(), 2);

    // A followed pod goes away: its slot goes to the waiting container.
    let followed = apiserver::streams_of(&collected.lines());
    let pods = ["fleet-a", "fleet-b", "fleet-c"];
    let stream = |p: &str| format!("kubernetes/logs/apps/{p}/app");
    let waiting = pods
        .into_iter()
        .find(|p| !followed.contains(&stream(p)))
        .unwrap();
    let leaving = pods
        .into_iter()
        .find(|p| followed.contains(&stream(p)))
        .unwrap();
    let mut deleted: Value = serde_json::from_str(&app_pod(
        "DELETED",
        leaving,
        "fleet",
        &format!("{leaving}-1"),
        0,
    ))
    .unwrap();
    deleted["object"]["metadata"]["deletionTimestamp"] = "2026-04-02T10:01:00Z".into();
    let step = server.push_step(&deleted.to_string());
    server.release(step + 1);
    collected
        .until("the waiting container followed", |l| {
            l.iter()
                .any(|(_, v, _)| v["kubernetes"]["pod_name"] == waiting)
        })
        .await;
    stop(&cancel, task).await;
    assert_eq!(collected.lines().len(), 3);
    assert_eq!(logs().rejected(), vec![("max_streams", 1)]);
    let log_requests: Vec<apiserver::Request> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/log"))
        .collect();
    assert_eq!(log_requests.len(), 3, "{log_requests:?}");
    for r in &log_requests {
        assert_eq!(r.query.get("sinceSeconds").map(String::as_str), Some("600"));
        assert!(!r.query.contains_key("sinceTime"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_while_the_watch_relists_is_reported_deleted() {
    let mut deleted: Value =
        serde_json::from_str(&app_pod("DELETED", "gone-0", "gone", "g-1", 0)).unwrap();
    deleted["object"]["metadata"]["deletionTimestamp"] = "2026-04-02T10:01:00Z".into();
    let lines = [
        app_pod("ADDED", "keep-0", "keep", "k-1", 0),
        app_pod("ADDED", "gone-0", "gone", "g-1", 0),
        // While the watch is expired: gone-0 goes, keep-0 restarts.
        deleted.to_string(),
        app_pod("MODIFIED", "keep-0", "keep", "k-2", 1),
    ];
    let rec = Recording::parse(&lines.join("\n"));
    let server = ApiServer::start(&rec, Options::default()).await;
    server.release(2);
    server.expire(Resource::Pods, 2);

    let (intake, rx) = Intake::bounded(16);
    let collected = Collected::spawn(rx);
    let health = Health::default();
    let cancel = CancellationToken::new();
    let task = start(
        Settings {
            events: false,
            nodes: false,
            ..settings(&server.kubeconfig())
        },
        intake,
        &health,
        &cancel,
    );
    collected.until("the initial list", |l| l.len() == 2).await;
    eventually("connected", || health.sources()[0].is_connected()).await;
    server.release(rec.steps.len());
    collected
        .until("the relist", |l| {
            l.iter().any(|(_, v, _)| v["type"] == "DELETED")
                && l.iter().any(|(_, v, _)| rec.steps[3].carried_by(3, v))
        })
        .await;
    stop(&cancel, task).await;

    // The deletion was never streamed: the watch missed it. The relist no
    // longer has gone-0, and the source says so.
    let lines = collected.lines();
    let gone: Vec<&Value> = lines
        .iter()
        .filter(|(_, v, _)| v["type"] == "DELETED")
        .map(|(_, v, _)| v)
        .collect();
    assert_eq!(gone.len(), 1, "{lines:#?}");
    assert_eq!(gone[0]["object"]["kind"], "Pod");
    assert_eq!(gone[0]["object"]["apiVersion"], "v1");
    assert_eq!(gone[0]["object"]["metadata"]["name"], "gone-0");
    assert_eq!(gone[0]["object"]["metadata"]["namespace"], "apps");
    assert_eq!(gone[0]["object"]["metadata"]["uid"], "uid-gone-0");
    assert!(
        gone[0]["observedAt"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );
    assert_eq!(list_requests(&server, "/api/v1/pods").len(), 2);

    // The decoder takes it as the pod's end.
    let mut decoder = Decoder::default();
    let mut states = Vec::new();
    for (_, _, text) in &lines {
        let mut events = Vec::new();
        decoder
            .decode(text, Origin::default(), &mut events)
            .unwrap();
        states.extend(
            events
                .iter()
                .map(|e| format!("{} {}", e.entity.name, e.reason)),
        );
    }
    // (Lists are in name order; keep-0's restart arrives with the relist.)
    assert_eq!(
        states,
        [
            "gone-0 Running",
            "keep-0 Running",
            "keep-0 Running",
            "gone-0 Deleted"
        ]
    );
}

fn graph_recording() -> Recording {
    Recording::load(&root().join("tests/apiserver/graph.ndjson"))
}

/// The graph's resources: the collections the `graph` watches read.
const GRAPH: &[Resource] = &[
    Resource::Services,
    Resource::EndpointSlices,
    Resource::ValidatingWebhooks,
    Resource::MutatingWebhooks,
    Resource::StorageClasses,
    Resource::Claims,
    Resource::Volumes,
    Resource::Deployments,
    Resource::ReplicaSets,
    Resource::StatefulSets,
    Resource::DaemonSets,
    Resource::Jobs,
    Resource::CronJobs,
    Resource::Quotas,
    Resource::PodDisruptionBudgets,
];

/// Workloads, quotas and budgets: only their metadata is read.
const METADATA_ONLY: &[Resource] = &[
    Resource::Deployments,
    Resource::ReplicaSets,
    Resource::StatefulSets,
    Resource::DaemonSets,
    Resource::Jobs,
    Resource::CronJobs,
    Resource::Quotas,
    Resource::PodDisruptionBudgets,
];

/// The `Source::Object` events of `lines` as the decoder makes them, in
/// order: `time kind/ns/name reason field=value...`.
fn object_events<S: AsRef<str>>(lines: &[S]) -> Vec<String> {
    let mut decoder = Decoder::default();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let mut events = Vec::new();
        decoder
            .decode(line.as_ref(), Origin::default(), &mut events)
            .unwrap_or_else(|e| panic!("line {}: {e}: {}", n + 1, line.as_ref()));
        for e in events.iter().filter(|e| e.source == Source::Object) {
            let fields: Vec<String> = e.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(format!(
                "{} {}/{}/{} {} {}",
                e.time,
                e.entity.kind,
                e.entity.namespace.as_deref().unwrap_or_default(),
                e.entity.name,
                e.reason,
                fields.join(" ")
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_watches_deliver_the_graphs_objects_and_they_decode_as_replay_does() {
    let rec = graph_recording();
    let server = ApiServer::start(
        &rec,
        Options {
            max_page: Some(2),
            ..Options::default()
        },
    )
    .await;
    let initial = rec.initial();
    server.release(initial);

    let (intake, rx) = Intake::bounded(16);
    let collected = Collected::spawn(rx);
    let health = Health::default();
    let cancel = CancellationToken::new();
    let task = start(
        Settings {
            graph: true,
            ..settings(&server.kubeconfig())
        },
        intake,
        &health,
        &cancel,
    );
    collected
        .until("the initial lists", |lines| {
            (0..initial).all(|i| lines.iter().any(|(_, v, _)| rec.steps[i].carried_by(i, v)))
        })
        .await;
    eventually("every watch connected", || {
        health.sources().iter().all(|s| s.is_connected())
    })
    .await;
    pace(&server, &rec, &collected, initial, |_| {}).await;
    stop(&cancel, task).await;

    // One watch per kind, each on its stream, all connected, none refused.
    let mut names: Vec<String> = health.sources().iter().map(|s| s.name.clone()).collect();
    names.sort();
    let mut want: Vec<String> = [
        "events",
        "pods",
        "nodes",
        "services",
        "endpointslices",
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
        "storageclasses",
        "persistentvolumeclaims",
        "persistentvolumes",
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
        "resourcequotas",
        "poddisruptionbudgets",
    ]
    .iter()
    .map(|r| format!("kubernetes/{r}"))
    .collect();
    want.sort();
    assert_eq!(names, want);
    for s in health.sources() {
        assert!(s.is_connected(), "{} connected", s.name);
        assert!(s.rejected().is_empty(), "{}: {:?}", s.name, s.rejected());
    }

    // A Service, an EndpointSlice, a ValidatingWebhookConfiguration and a
    // StorageClass: added, modified, deleted, on their streams.
    let lines = collected.lines();
    for (stream, kind) in [
        ("kubernetes/services", "Service"),
        ("kubernetes/endpointslices", "EndpointSlice"),
        (
            "kubernetes/validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
        ),
        ("kubernetes/storageclasses", "StorageClass"),
    ] {
        let types: Vec<&str> = lines
            .iter()
            .filter(|(s, v, _)| s == stream && v["object"]["kind"] == kind)
            .map(|(_, v, _)| v["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"], "{stream}");
    }

    // Trimmed: no managedFields, no last-applied configuration, no CA
    // bundle; what the decoder reads is there.
    let line_of = |kind: &str| {
        lines
            .iter()
            .find(|(_, v, _)| v["object"]["kind"] == kind)
            .map(|(_, v, t)| (v.clone(), t.clone()))
            .unwrap_or_else(|| panic!("no {kind} line"))
    };
    let (webhooks, text) = line_of("ValidatingWebhookConfiguration");
    let recorded = &rec.lines[rec.find("gatekeeper-webhook-service\"")];
    assert!(
        text.len() * 2 < recorded.len(),
        "{} of {}",
        text.len(),
        recorded.len()
    );
    assert!(
        !text.contains("managedFields") && !text.contains("caBundle"),
        "{text}"
    );
    assert!(!text.contains("last-applied-configuration"), "{text}");
    assert_eq!(
        webhooks["object"]["metadata"]["annotations"]["owner"],
        "platform"
    );
    assert_eq!(
        webhooks["object"]["webhooks"][0]["clientConfig"]["service"]["name"],
        "gatekeeper-webhook-service"
    );
    let (service, text) = line_of("Service");
    assert!(!text.contains("managedFields"), "{text}");
    assert_eq!(service["object"]["spec"]["clusterIP"], "10.96.0.10");

    // Workloads, quotas and budgets came metadata-only, and their lines
    // name their own kind, as replay reads them.
    let (deployment, text) = line_of("Deployment");
    assert_eq!(deployment["object"]["apiVersion"], "apps/v1");
    assert!(deployment["object"].get("spec").is_none(), "{text}");
    assert!(deployment["object"].get("status").is_none(), "{text}");
    assert!(!text.contains("managedFields"), "{text}");
    let (replicaset, _) = line_of("ReplicaSet");
    assert_eq!(
        replicaset["object"]["metadata"]["ownerReferences"][0]["name"],
        "coredns"
    );
    for r in GRAPH {
        let requests: Vec<apiserver::Request> = server
            .requests()
            .into_iter()
            .filter(|q| q.path == r.path())
            .collect();
        assert!(
            requests.iter().any(apiserver::Request::is_watch),
            "{r:?} watched: {requests:?}"
        );
        let metadata_only = METADATA_ONLY.contains(r);
        assert!(
            requests
                .iter()
                .all(|q| q.is_metadata_only() == metadata_only),
            "{r:?} metadata-only: {metadata_only}: {requests:?}"
        );
    }

    // The lines decode into the graph's records (fields: a prefix of
    // what is listed), the same as the
    // recording's own lines do (the watches interleave: compared sorted).
    let live = object_events(&collected.texts());
    let mut replayed = object_events(&rec.lines);
    let mut sorted = live.clone();
    sorted.sort();
    replayed.sort();
    assert_eq!(sorted, replayed);
    for want in [
        "Service/kube-system/kube-dns Present cluster_ip=10.96.0.10",
        "Service/kube-system/kube-dns Deleted",
        "EndpointSlice/kube-system/kube-dns-7xk2p Present service=Service/kube-system/kube-dns backend=Pod/kube-system/coredns-5d78c9869d-abcde",
        "EndpointSlice/kube-system/kube-dns-7xk2p Present service=Service/kube-system/kube-dns backend=Pod/kube-system/coredns-5d78c9869d-fghij",
        "EndpointSlice/kube-system/kube-dns-7xk2p Deleted",
        "Webhook//validation.gatekeeper.sh Present service=Service/gatekeeper-system/gatekeeper-webhook-service",
        "Webhook//validation.gatekeeper.sh Present service=Service/gatekeeper-system/gatekeeper-webhook-service-v2",
        "Webhook//validation.gatekeeper.sh Deleted",
        "Webhook//linkerd-proxy-injector.linkerd.io Present service=Service/linkerd/linkerd-proxy-injector",
        "StorageClass//gp3 Present provisioner=Provisioner/ebs.csi.aws.com",
        "StorageClass//gp3 Deleted",
        "Deployment/kube-system/coredns Present",
        "ReplicaSet/kube-system/coredns-5d78c9869d Present",
        "Job/db/backup-29012345 Present",
        "PodDisruptionBudget/db/postgres-pdb Present",
        "ResourceQuota/db/compute Present",
    ] {
        assert!(
            live.iter()
                .any(|e| e.split_once(' ').unwrap().1.starts_with(want)),
            "{want}: {live:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_watches_are_off_by_default_and_keep_to_the_namespaces() {
    let rec = graph_recording();
    let server = ApiServer::start(&rec, Options::default()).await;
    server.release(rec.initial());

    // Off (the default): no request for any of the graph's resources.
    let (intake, rx) = Intake::bounded(16);
    let _collected = Collected::spawn(rx);
    let health = Health::default();
    let cancel = CancellationToken::new();
    let task = start(settings(&server.kubeconfig()), intake, &health, &cancel);
    eventually("the default watches connected", || {
        let sources = health.sources();
        sources.len() == 3 && sources.iter().all(|s| s.is_connected())
    })
    .await;
    stop(&cancel, task).await;
    let graph_paths: Vec<String> = GRAPH.iter().map(|r| r.path()).collect();
    let asked: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert!(
        !asked.iter().any(|p| graph_paths
            .iter()
            .any(|g| p.ends_with(g.rsplit('/').next().unwrap()))),
        "{asked:?}"
    );

    // On, in one namespace: namespaced kinds there only, cluster-scoped
    // kinds cluster-wide.
    let server = ApiServer::start(&rec, Options::default()).await;
    server.release(rec.initial());
    let (intake, rx) = Intake::bounded(16);
    let collected = Collected::spawn(rx);
    let health = Health::default();
    let cancel = CancellationToken::new();
    let task = start(
        Settings {
            namespaces: vec!["kube-system".into()],
            events: false,
            pods: false,
            nodes: false,
            graph: true,
            ..settings(&server.kubeconfig())
        },
        intake,
        &health,
        &cancel,
    );
    eventually("the graph watches connected", || {
        let sources = health.sources();
        sources.len() == GRAPH.len() && sources.iter().all(|s| s.is_connected())
    })
    .await;
    collected
        .until("the kube-system objects and the cluster's", |lines| {
            [
                "Service",
                "EndpointSlice",
                "Deployment",
                "ReplicaSet",
                "DaemonSet",
            ]
            .iter()
            .chain(&[
                "StorageClass",
                "PersistentVolume",
                "ValidatingWebhookConfiguration",
                "MutatingWebhookConfiguration",
            ])
            .all(|k| lines.iter().any(|(_, v, _)| v["object"]["kind"] == *k))
        })
        .await;

    let cluster_scoped = [
        Resource::ValidatingWebhooks,
        Resource::MutatingWebhooks,
        Resource::StorageClasses,
        Resource::Volumes,
    ];
    let watched_at: Vec<String> = GRAPH
        .iter()
        .map(|r| {
            if cluster_scoped.contains(r) {
                r.path()
            } else {
                let (prefix, plural) = r
                    .path()
                    .rsplit_once('/')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .unwrap();
                format!("{prefix}/namespaces/kube-system/{plural}")
            }
        })
        .collect();
    // A source reports itself connected once its list is in; the watch that
    // follows the list may still be on its way, so wait for every one of
    // them before stopping (a deadline here fails the test, as it should).
    eventually("every graph resource watched where it belongs", || {
        let requests = server.requests();
        watched_at
            .iter()
            .all(|path| requests.iter().any(|q| q.path == *path && q.is_watch()))
    })
    .await;
    stop(&cancel, task).await;
    let requests = server.requests();
    for q in &requests {
        assert!(
            q.path.contains("/namespaces/kube-system/")
                || cluster_scoped.iter().any(|r| q.path == r.path()),
            "{} asked",
            q.path
        );
    }
    let lines = collected.lines();
    for (stream, v, _) in &lines {
        if let Some(ns) = v["object"]["metadata"]["namespace"].as_str() {
            assert_eq!(ns, "kube-system", "{v}");
            assert!(stream.ends_with("/kube-system"), "{stream}");
        } else {
            assert!(!stream.ends_with("/kube-system"), "{stream}");
        }
    }
    assert!(
        lines
            .iter()
            .any(|(s, _, _)| s == "kubernetes/services/kube-system")
    );
}

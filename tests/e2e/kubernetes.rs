//! `epicenter serve` watching a local API server (the fixture of
//! ingest/tests/apiserver: list/watch with resourceVersions, chunked watch
//! streams, bookmarks, scripted 410 Gone, pod logs) with kube's real client
//! and a kubeconfig pointing at it. Fed the recording step by step, serve
//! forms the incidents `replay` forms from the recording itself, and the
//! relists forced by 410 Gone add no signal. The same run checks deploy/'s
//! ClusterRole and dashboards against what serve did ([`crate::deploy`]),
//! with the object graph's watches off; a second serve, every watch on
//! (`graph: true`), checks that the ClusterRole allows all it asks for and
//! grants nothing it does not.

#![allow(clippy::unwrap_used)]

#[path = "../../ingest/tests/apiserver/mod.rs"]
#[allow(clippy::unwrap_used)]
mod apiserver;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::{Serve, latest, wait_for};
use apiserver::{ApiServer, Options, Recording, Resource};
use serde_json::Value;

const LATENESS: &str = "10s";

fn recording_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/apiserver/csi-cascade.ndjson")
}

/// Replay's incidents and signal count for the recording.
fn replay() -> (BTreeMap<String, Value>, f64) {
    let out = Command::new(env!("CARGO_BIN_EXE_epicenter"))
        .args(["replay", "--stats", "--lateness", LATENESS])
        .arg(recording_path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let signals = stderr
        .split_once(" signals (")
        .and_then(|(head, _)| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no signal count in {stderr}"));
    let incidents = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect::<Vec<Value>>();
    (latest(incidents), signals)
}

fn signals_total(serve: &Serve) -> f64 {
    let (_, text) = serve.get("/metrics").unwrap();
    text.lines()
        .filter(|l| l.starts_with("epicenter_signals_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn serve_watching_an_api_server_forms_the_incidents_replay_forms() {
    let rec = Recording::load(&recording_path());
    let (expected, replay_signals) = replay();
    assert!(!expected.is_empty());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(ApiServer::start(
        &rec,
        Options {
            events_v1: true,
            max_page: Some(2),
        },
    ));
    let initial = rec.initial();
    server.release(initial);
    server.expire(Resource::Pods, rec.find("CrashLoopBackOff"));
    server.expire(
        Resource::Events,
        rec.find(r#""lastTimestamp":"2026-04-02T10:01:52Z""#),
    );

    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "engine: {{lateness: {LATENESS}}}\npipeline: {{idle_timeout: 1s, checkpoint_interval: 1s}}\n\
         sources:\n  alertmanager: {{enabled: false}}\n  kubernetes:\n    kubeconfig: {}\n    stamp_observed_at: false\n    volumes: true\n\
         \x20   pod_logs:\n      select:\n        - {{namespace: storage, labels: app.kubernetes.io/name=blockstore-csi-node}}\n",
        server.kubeconfig().display()
    );
    let serve = Serve::start(dir.path(), &config, &[]);
    let records = |s: &Serve| s.metric(r#"epicenter_records_total{source="kubernetes"}"#);
    wait_for("the initial lists", || {
        (records(&serve) >= initial as f64).then_some(())
    });
    wait_for("every watch connected", || {
        serve.get("/readyz").filter(|(code, _)| *code == 200)
    });

    // The rest one step at a time, in the recording's order.
    for step in initial..rec.steps.len() {
        let before = records(&serve);
        server.release(step + 1);
        wait_for(&format!("step {step} to arrive"), || {
            (records(&serve) > before).then_some(())
        });
    }

    let got = wait_for("the incidents replay forms", || {
        let seen = latest(serve.changes());
        expected
            .iter()
            .all(|(id, want)| seen.get(id) == Some(want))
            .then_some(seen)
    });
    let extra: Vec<&String> = got
        .keys()
        .filter(|id| !expected.contains_key(*id))
        .collect();
    assert!(
        extra.is_empty(),
        "incidents replay does not form: {extra:?}"
    );
    assert_eq!(
        signals_total(&serve),
        replay_signals,
        "relists after 410 Gone must not add signals"
    );
    // What deploy/ promises about this serve: its ClusterRole allows every
    // request the sources made, its dashboards name only what it exports.
    let requests: Vec<(String, bool)> = server
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.is_watch()))
        .collect();
    crate::deploy::assert_cluster_role_covers(&requests, false);
    let (_, scrape) = serve.get("/metrics").unwrap();
    crate::deploy::assert_monitoring_names_exported(&scrape);
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "{stderr}");
    drop(server);
}

#[test]
fn serve_watching_the_graph_asks_for_exactly_what_the_cluster_role_grants() {
    let rec = Recording::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/apiserver/graph.ndjson"),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(ApiServer::start(&rec, Options::default()));
    let initial = rec.initial();
    server.release(initial);

    // Every watch on: the graph (claims and volumes with it), and the logs
    // of kube-system (coredns), as the cluster config has them.
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "engine: {{lateness: {LATENESS}}}\npipeline: {{idle_timeout: 1s, checkpoint_interval: 1s}}\n\
         sources:\n  alertmanager: {{enabled: false}}\n  kubernetes:\n    kubeconfig: {}\n    graph: true\n\
         \x20   pod_logs:\n      select:\n        - {{namespace: kube-system}}\n",
        server.kubeconfig().display()
    );
    let serve = Serve::start(dir.path(), &config, &[]);
    let records = |s: &Serve| s.metric(r#"epicenter_records_total{source="kubernetes"}"#);
    wait_for("the initial lists", || {
        (records(&serve) >= initial as f64).then_some(())
    });
    wait_for("every watch connected", || {
        serve.get("/readyz").filter(|(code, _)| *code == 200)
    });
    server.release(rec.steps.len());
    wait_for("the changes", || {
        (records(&serve) >= rec.steps.len() as f64).then_some(())
    });
    wait_for("the coredns log followed", || {
        server
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/log"))
            .then_some(())
    });
    for stream in [
        "services",
        "endpointslices",
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
        "storageclasses",
        "deployments",
        "poddisruptionbudgets",
    ] {
        assert_eq!(
            serve.metric(&format!(
                r#"epicenter_source_up{{source="kubernetes/{stream}"}}"#
            )),
            1.0,
            "{stream}"
        );
    }
    assert_eq!(
        serve.metric(r#"epicenter_decode_errors_total{source="kubernetes"}"#),
        0.0
    );
    let requests: Vec<(String, bool)> = server
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.is_watch()))
        .collect();
    crate::deploy::assert_cluster_role_covers(&requests, true);
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "{stderr}");
    drop(server);
}

//! Memory per object-graph edge: feeds `correlate::graph::Graph` the records
//! of a cluster as a source watching every graph kind would (each Pod on a
//! node, owned by a ReplicaSet of a Deployment, mounting one claim; each
//! claim of a class and bound to a volume; each Service's EndpointSlice
//! listing its Pods), then reports the edges, the graph's own estimate of
//! its bytes and the process RSS delta, per edge.
//!
//! ```text
//! graph [--pods N]      # default 200 000
//! ```
#![allow(clippy::print_stdout)] // the report is the output

use std::borrow::Cow;
use std::process::ExitCode;
use std::time::Instant;

use correlate::graph::Graph;
use correlate::{Entity, Event, EventTime, Owner, Source};

/// `VmRSS` of this process, in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

fn object<'a>(
    t: EventTime,
    kind: &'a str,
    ns: Option<&'a str>,
    name: String,
    fields: Vec<(&'static str, Cow<'a, str>)>,
) -> Event<'a> {
    let mut e = Event::new(
        t,
        Source::Object,
        Entity {
            kind: Cow::Borrowed(kind),
            namespace: ns.map(Cow::Borrowed),
            name: Cow::Owned(name),
            ..Entity::default()
        },
    );
    e.reason = Cow::Borrowed("Present");
    e.fields = fields;
    e
}

fn main() -> ExitCode {
    let mut pods: u64 = 200_000;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (
            flag.as_str(),
            args.next()
                .and_then(|v| v.replace('_', "").parse::<u64>().ok()),
        ) {
            ("--pods", Some(v)) => pods = v.max(1),
            _ => {
                eprintln!("usage: graph [--pods N]");
                return ExitCode::from(2);
            }
        }
    }
    let per_service = 10;
    let nodes = (pods / 30).max(1);
    let before = rss();
    let started = Instant::now();
    let mut g = Graph::default();
    let t = EventTime::from_micros(1_790_000_000_000_000);
    for i in 0..pods {
        let ns = format!("ns-{}", i % 200);
        let app = i / per_service;
        let mut e = Event::new(
            t,
            Source::Pod,
            Entity {
                kind: Cow::Borrowed("Pod"),
                namespace: Some(Cow::Owned(ns.clone())),
                name: Cow::Owned(format!("app-{app}-5d8f7c9b4-{i:05x}")),
                uid: None,
                node: Some(Cow::Owned(format!("node-{}", i % nodes))),
                owners: vec![
                    Owner {
                        kind: Cow::Borrowed("ReplicaSet"),
                        name: Cow::Owned(format!("app-{app}-5d8f7c9b4")),
                    },
                    Owner {
                        kind: Cow::Borrowed("Deployment"),
                        name: Cow::Owned(format!("app-{app}")),
                    },
                ],
            },
        );
        e.reason = Cow::Borrowed("Running");
        e.fields.push(("claims", Cow::Owned(format!("data-{i}"))));
        g.learn(&e);
        let claim = format!("data-{i}");
        g.learn(&object(
            t,
            "PersistentVolumeClaim",
            Some(&ns),
            claim,
            vec![
                ("storage_class", Cow::Borrowed("StorageClass/gp3")),
                (
                    "volume",
                    Cow::Owned(format!("PersistentVolume/pvc-{i:012x}")),
                ),
            ],
        ));
        if i % per_service == per_service - 1 {
            let backends: Vec<(&'static str, Cow<'_, str>)> = (0..per_service)
                .map(|k| {
                    (
                        "backend",
                        Cow::Owned(format!(
                            "Pod/{ns}/app-{app}-5d8f7c9b4-{:05x}",
                            i + 1 - per_service + k
                        )),
                    )
                })
                .chain([("service", Cow::Owned(format!("Service/{ns}/app-{app}")))])
                .collect();
            g.learn(&object(
                t,
                "EndpointSlice",
                Some(&ns),
                format!("app-{app}-x1"),
                backends,
            ));
        }
    }
    let took = started.elapsed();
    let after = rss();
    let s = g.stats();
    let edges = s.edges.max(1) as f64;
    println!(
        "pods {pods}: {} objects, {} edges in {:.2} s; graph estimate {:.0} bytes/edge; RSS delta {:.0} bytes/edge ({:.1} MiB)",
        s.nodes,
        s.edges,
        took.as_secs_f64(),
        g.held_bytes() as f64 / edges,
        after.saturating_sub(before) as f64 / edges,
        after.saturating_sub(before) as f64 / (1 << 20) as f64,
    );
    ExitCode::SUCCESS
}

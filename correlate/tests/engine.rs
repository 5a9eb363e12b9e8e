//! The engine's window semantics, from case files: each `engine/NAME.yaml`
//! holds rules, a compact list of events (times as minutes:seconds from a
//! fixed start) and the incidents that must form, with when they open, what
//! they hold and how they end.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use correlate::rules::{RuleSource, compile};
use correlate::{
    Engine, EngineConfig, Entity, Event, EventTime, IncidentReport, Origin, Owner, Severity,
    Source, Span,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    rules: String,
    #[serde(default)]
    lateness: Option<String>,
    #[serde(default)]
    max_held_entries: Option<usize>,
    events: Vec<TestEvent>,
    expect: Vec<Expect>,
    #[serde(default)]
    stats: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestEvent {
    /// `mm:ss` after the start.
    t: String,
    source: String,
    /// `Kind/namespace/name` or `Kind/name`.
    entity: String,
    #[serde(default)]
    node: Option<String>,
    /// `Kind/name` owners, nearest first.
    #[serde(default)]
    owners: Vec<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    container: Option<String>,
    /// A field, or a list for a field stated more than once (an object's
    /// relations: an EndpointSlice's backends).
    #[serde(default)]
    fields: BTreeMap<String, FieldValue>,
    #[serde(default)]
    occurrence: Option<u64>,
    #[serde(default)]
    repeat: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FieldValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    rule: String,
    /// `Kind/namespace/name` or `Kind/name`.
    root: String,
    opened_at: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    resolved_at: Option<String>,
    /// Affected entities, exactly, as `Kind/namespace/name`.
    #[serde(default)]
    affected: Option<Vec<String>>,
    #[serde(default)]
    signals: Option<u64>,
    #[serde(default)]
    title: Option<String>,
}

const START: i64 = 1_780_000_000_000_000;

fn at(mmss: &str) -> EventTime {
    let (m, s) = mmss.split_once(':').expect("mm:ss");
    let secs: f64 = s.parse().expect("seconds");
    let m: i64 = m.parse().expect("minutes");
    EventTime::from_micros(START + m * 60_000_000 + (secs * 1e6) as i64)
}

fn entity(spec: &str, node: Option<&str>, owners: &[String]) -> Entity<'static> {
    let parts: Vec<&str> = spec.split('/').collect();
    let (kind, namespace, name) = match parts.as_slice() {
        [k, n] => (*k, None, *n),
        [k, ns, n] => (*k, Some(*ns), *n),
        _ => panic!("bad entity {spec}"),
    };
    Entity {
        kind: Cow::Owned(kind.to_string()),
        namespace: namespace.map(|n| Cow::Owned(n.to_string())),
        name: Cow::Owned(name.to_string()),
        uid: None,
        node: node.map(|n| Cow::Owned(n.to_string())),
        owners: owners
            .iter()
            .map(|o| {
                let (k, n) = o.split_once('/').expect("Kind/name owner");
                Owner {
                    kind: Cow::Owned(k.to_string()),
                    name: Cow::Owned(n.to_string()),
                }
            })
            .collect(),
    }
}

fn event(e: &TestEvent, line: u64) -> Event<'static> {
    let source = Source::parse(&e.source).expect("source");
    let mut ev = Event::new(
        at(&e.t),
        source,
        entity(&e.entity, e.node.as_deref(), &e.owners),
    );
    ev.reason = Cow::Owned(e.reason.clone());
    ev.message = Cow::Owned(e.message.clone());
    ev.container = e.container.clone().map(Cow::Owned);
    ev.severity = Severity::Warning;
    ev.occurrence = e.occurrence;
    ev.origin = Origin { file: 0, line };
    let names: &[&'static str] = &[
        "containers",
        "scheduled",
        "last_reason",
        "repeat",
        "previous",
        "claims",
        "backend",
        "service",
        "cluster_ip",
        "storage_class",
        "provisioner",
        "volume",
    ];
    for (k, v) in &e.fields {
        let name = names
            .iter()
            .find(|n| **n == k)
            .unwrap_or_else(|| panic!("field {k} unknown to the test"));
        let values = match v {
            FieldValue::One(v) => std::slice::from_ref(v),
            FieldValue::Many(vs) => vs.as_slice(),
        };
        for v in values {
            ev.fields.push((name, Cow::Owned(v.clone())));
        }
    }
    if e.repeat {
        ev.fields.push(("repeat", Cow::Borrowed("true")));
    }
    ev
}

fn key(kind: &str, ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

fn run_case(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read case");
    let case: Case =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rules = compile(&[RuleSource {
        name: "rules".to_string(),
        text: case.rules.clone(),
    }])
    .unwrap_or_else(|e| panic!("{}: rules: {e}", path.display()));
    let mut config = EngineConfig::default();
    if let Some(l) = &case.lateness {
        config.lateness = Span::parse(l).expect("lateness");
    }
    if let Some(m) = case.max_held_entries {
        config.max_held_entries = m;
    }
    let mut engine = Engine::new(Arc::new(rules), config);
    for (i, e) in case.events.iter().enumerate() {
        engine.push(&event(e, i as u64 + 1));
    }
    engine.finish();
    let got: Vec<IncidentReport> = engine
        .incidents()
        .into_iter()
        .map(IncidentReport::new)
        .collect();
    let show = || {
        got.iter()
            .map(|g| serde_json::to_string(g).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        got.len(),
        case.expect.len(),
        "{}: {} incidents formed, {} expected:\n{}",
        path.display(),
        got.len(),
        case.expect.len(),
        show()
    );
    for (want, got) in case.expect.iter().zip(&got) {
        let ctx = format!("{}: incident {}", path.display(), want.rule);
        assert_eq!(got.rule, want.rule, "{ctx}:\n{}", show());
        let e = &got.root_cause.entity;
        assert_eq!(
            key(&e.kind, e.namespace.as_deref(), &e.name),
            want.root,
            "{ctx}: root"
        );
        assert_eq!(got.opened_at, at(&want.opened_at), "{ctx}: opened_at");
        if let Some(s) = &want.status {
            assert_eq!(
                serde_json::to_value(got.status).expect("status"),
                s.as_str(),
                "{ctx}: status"
            );
        }
        if let Some(r) = &want.resolved_at {
            assert_eq!(got.resolved_at, Some(at(r)), "{ctx}: resolved_at");
        }
        if let Some(a) = &want.affected {
            let mut have: Vec<String> = got
                .affected
                .iter()
                .map(|x| {
                    key(
                        &x.entity.kind,
                        x.entity.namespace.as_deref(),
                        &x.entity.name,
                    )
                })
                .collect();
            have.sort();
            let mut a = a.clone();
            a.sort();
            assert_eq!(have, a, "{ctx}: affected");
        }
        if let Some(n) = want.signals {
            assert_eq!(got.signals, n, "{ctx}: signals");
        }
        if let Some(t) = &want.title {
            assert_eq!(&got.title, t, "{ctx}: title");
        }
    }
    let stats = serde_json::to_value(engine.stats()).expect("stats");
    for (k, v) in &case.stats {
        assert_eq!(stats[k].as_u64(), Some(*v), "{}: stat {k}", path.display());
    }
}

#[test]
fn engine_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engine");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("engine dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 6, "too few engine cases");
    for p in paths {
        run_case(&p);
    }
}

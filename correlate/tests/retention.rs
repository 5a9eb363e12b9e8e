//! Retention: resolved incidents leave the engine after `retention`, and
//! nothing else changes. Two engines take the same long stream (thousands of
//! short incidents, some merging, over weeks of event time), one keeping
//! every incident, one retiring them: every incident change either reports
//! is the same, while the retiring engine's store and snapshot stay small.

use std::borrow::Cow;
use std::sync::Arc;

use correlate::incident::Change;
use correlate::rules::{RuleSource, compile};
use correlate::{
    Engine, EngineConfig, Entity, Event, EventTime, IncidentReport, IncidentUpdate, Owner, Source,
    Span,
};

const RULES: &str = r#"
signals:
  - id: oom
    match: {source: pod, reason: CrashLoopBackOff, fields: {last_reason: OOMKilled}}
  - id: mount
    match: {source: k8s-event, reason: FailedMount}
correlations:
  - id: oom-loop
    cause: {signals: [oom], group_by: workload, root: workload, min_count: 2}
    effects:
      - signals: [mount]
        join: [namespace]
    window: {before: 5m, after: 10m}
    min_effects: 0
    resolve: {quiet: 5m}
    title: '{root} OOM loop, {affected} affected'
"#;

const START: i64 = 1_780_000_000_000_000;
const MIN: i64 = 60_000_000;

fn pod(ns: &str, name: &str, workload: &str) -> Entity<'static> {
    Entity {
        kind: Cow::Borrowed("Pod"),
        namespace: Some(Cow::Owned(ns.to_string())),
        name: Cow::Owned(name.to_string()),
        uid: None,
        node: Some(Cow::Borrowed("n1")),
        owners: vec![Owner {
            kind: Cow::Borrowed("Deployment"),
            name: Cow::Owned(workload.to_string()),
        }],
    }
}

/// Incident k: two OOM kills of workload `w{k}` and a mount failure in its
/// namespace, 12 minutes apart from the next (some overlap: the windows
/// are longer).
fn stream(incidents: i64) -> Vec<Event<'static>> {
    stream_every(incidents, 12 * MIN)
}

/// As [`stream`], incident k at `k * every`.
fn stream_every(incidents: i64, every: i64) -> Vec<Event<'static>> {
    let mut out = Vec::new();
    for k in 0..incidents {
        let t = START + k * every;
        let ns = format!("ns{}", k % 7);
        let w = format!("w{k}");
        for (dt, name) in [(0, "a"), (MIN, "b")] {
            let mut e = Event::new(
                EventTime::from_micros(t + dt),
                Source::Pod,
                pod(&ns, &format!("{w}-{name}"), &w),
            );
            e.reason = Cow::Borrowed("CrashLoopBackOff");
            e.fields.push(("last_reason", Cow::Borrowed("OOMKilled")));
            out.push(e);
        }
        let mut m = Event::new(
            EventTime::from_micros(t + 2 * MIN),
            Source::K8sEvent,
            pod(&ns, &format!("app-{k}"), "app"),
        );
        m.reason = Cow::Borrowed("FailedMount");
        out.push(m);
    }
    out
}

/// Every change as a person would see it: (change, the report's JSON).
fn seen(engine: &Engine, updates: &[IncidentUpdate], out: &mut Vec<(String, String)>) {
    let store = engine.store();
    for u in updates {
        let inc = if u.change == Change::Merged {
            store.get(u.incident)
        } else {
            store.get(store.find(u.incident))
        };
        let report = serde_json::to_string(&IncidentReport::new(inc)).expect("json");
        out.push((format!("{:?}", u.change), report));
    }
}

fn run(
    retention: Option<Span>,
    events: &[Event<'static>],
) -> (Vec<(String, String)>, usize, usize) {
    let rules = Arc::new(
        compile(&[RuleSource {
            name: "rules".to_string(),
            text: RULES.to_string(),
        }])
        .expect("rules"),
    );
    let config = EngineConfig {
        lateness: Span::from_secs(30),
        retention,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(rules, config);
    let mut out = Vec::new();
    let mut most = 0;
    for e in events {
        let u = engine.push(e);
        seen(&engine, &u, &mut out);
        most = most.max(engine.store().len());
    }
    let u = engine.finish();
    seen(&engine, &u, &mut out);
    let snapshot = engine.snapshot().to_bytes().expect("snapshot").len();
    (out, most, snapshot)
}

#[test]
fn retired_incidents_leave_the_store_and_change_nothing_people_see() {
    // 3000 incidents over 25 days of event time.
    let events = stream(3000);
    let (kept, kept_most, kept_bytes) = run(None, &events);
    let (retired, retired_most, retired_bytes) = run(Some(Span::from_secs(3600)), &events);
    assert!(kept.len() > 6000, "{} changes", kept.len());
    assert_eq!(kept.len(), retired.len(), "as many changes");
    for (i, (a, b)) in kept.iter().zip(&retired).enumerate() {
        assert_eq!(a, b, "change {i} differs");
    }
    assert!(kept_most >= 3000, "{kept_most}");
    assert!(
        retired_most < 100,
        "the retiring store held {retired_most} incidents at most"
    );
    assert!(
        retired_bytes * 20 < kept_bytes,
        "snapshot {retired_bytes} bytes retiring, {kept_bytes} keeping"
    );
}

/// A record hours after the previous one moves event time past an
/// incident's resolution and past its retention in one step: the incident
/// resolves and would retire in the same call. Its resolution is still
/// reported (it once was dropped with the incident, and the resolved
/// notification with it: a stream quiet for longer than the retention, or
/// `serve` restarted from an old checkpoint).
#[test]
fn an_incident_resolved_and_retired_in_one_step_still_reports_its_resolution() {
    let events = stream_every(50, 3 * 60 * MIN);
    let (kept, _, _) = run(None, &events);
    let (retired, retired_most, _) = run(Some(Span::from_secs(3600)), &events);
    let resolved = |v: &[(String, String)]| v.iter().filter(|(c, _)| c == "Resolved").count();
    // The last one's quiet period is never reached: it stays firing.
    assert_eq!(resolved(&kept), 49, "every incident but the last resolves");
    assert_eq!(resolved(&retired), 49, "every resolution is reported");
    assert_eq!(kept, retired);
    assert!(retired_most < 10, "{retired_most}");
}

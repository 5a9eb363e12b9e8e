#![allow(clippy::unwrap_used)]

use correlate::report::Affected;

use super::*;

const MIN: i64 = 60_000_000;

fn incident() -> IncidentReport {
    serde_json::from_str(include_str!(
        "../../../tests/fixtures/incidents/core-csi-driver-unavailable.json"
    ))
    .unwrap()
}

fn change(kind: ChangeKind, incident: IncidentReport) -> IncidentChange {
    IncidentChange {
        change: kind,
        merged_into: None,
        incident,
    }
}

fn with_affected(mut inc: IncidentReport, extra: usize, signal: &str) -> IncidentReport {
    let template = inc.affected[0].clone();
    for i in 0..extra {
        let mut a: Affected = template.clone();
        a.entity.name = format!("extra-{signal}-{i}");
        a.signal = signal.to_string();
        inc.affected.push(a);
    }
    inc
}

fn sent(d: Decision) -> (Notification, Told) {
    match d {
        Decision::Send { notification, told } => (*notification, told),
        other => panic!("expected a notification, got {other:?}"),
    }
}

fn policy() -> Policy {
    Policy::new(PolicySettings {
        throttle: Duration::from_secs(300),
        ..PolicySettings::default()
    })
}

#[test]
fn an_opening_is_told_at_once_and_a_repeat_of_it_is_quiet() {
    let p = policy();
    let inc = incident();
    let (n, told) = sent(p.decide(None, &change(ChangeKind::Opened, inc.clone()), 0));
    assert_eq!((n.event, n.sequence), (Event::Opened, 1));
    assert_eq!(n.reasons, vec![Reason::Opened]);
    assert_eq!(told.affected, inc.affected.len());
    // More records on the same members: the change stream says so, people are not told.
    let mut more = inc;
    more.signals += 40;
    more.version += 3;
    assert_eq!(
        p.decide(Some(&told), &change(ChangeKind::Updated, more), 10 * MIN),
        Decision::Quiet
    );
}

#[test]
fn a_new_kind_of_effect_is_news_and_waits_for_the_throttle() {
    let p = policy();
    let (_, told) = sent(p.decide(None, &change(ChangeKind::Opened, incident()), 0));
    let grown = change(
        ChangeKind::Updated,
        with_affected(incident(), 1, "mysql-cannot-lock-files"),
    );
    assert_eq!(
        p.decide(Some(&told), &grown, MIN),
        Decision::Defer { due: 5 * MIN },
        "inside the throttle the update waits until it ends"
    );
    let (n, told2) = sent(p.decide(Some(&told), &grown, 5 * MIN));
    assert_eq!((n.event, n.sequence), (Event::Updated, 2));
    assert_eq!(
        n.reasons,
        vec![Reason::NewEffects {
            signals: vec!["mysql-cannot-lock-files".to_string()]
        }]
    );
    // Told once: the same state again is quiet.
    assert_eq!(p.decide(Some(&told2), &grown, 20 * MIN), Decision::Quiet);
}

#[test]
fn the_blast_radius_is_news_only_past_a_threshold() {
    let p = policy();
    let base = incident();
    let n0 = base.affected.len();
    assert!((10..25).contains(&n0), "fixture has {n0} affected");
    let (_, told) = sent(p.decide(None, &change(ChangeKind::Opened, base.clone()), 0));
    let below = with_affected(base.clone(), 24 - n0, base.affected[0].signal.as_str());
    assert_eq!(
        p.decide(Some(&told), &change(ChangeKind::Updated, below), 60 * MIN),
        Decision::Quiet
    );
    let past = with_affected(base.clone(), 25 - n0, base.affected[0].signal.as_str());
    let (n, _) = sent(p.decide(Some(&told), &change(ChangeKind::Updated, past), 60 * MIN));
    assert_eq!(n.reasons, vec![Reason::BlastRadius { from: n0, to: 25 }]);
}

#[test]
fn a_higher_severity_is_news_a_lower_one_is_not() {
    let p = policy();
    let mut warning = incident();
    warning.severity = Severity::Warning;
    let (_, told) = sent(p.decide(None, &change(ChangeKind::Opened, warning.clone()), 0));
    let mut info = warning;
    info.severity = Severity::Info;
    assert_eq!(
        p.decide(Some(&told), &change(ChangeKind::Updated, info), 60 * MIN),
        Decision::Quiet
    );
    let (n, _) = sent(p.decide(
        Some(&told),
        &change(ChangeKind::Updated, incident()),
        60 * MIN,
    ));
    assert_eq!(
        n.reasons,
        vec![Reason::SeverityRaised {
            from: Severity::Warning,
            to: Severity::Critical
        }]
    );
}

#[test]
fn a_resolution_never_waits_and_ends_the_conversation() {
    let p = policy();
    let (_, told) = sent(p.decide(None, &change(ChangeKind::Opened, incident()), 0));
    let mut resolved = incident();
    resolved.status = Status::Resolved;
    let (n, told) = sent(p.decide(
        Some(&told),
        &change(ChangeKind::Resolved, resolved.clone()),
        1,
    ));
    assert_eq!((n.event, n.sequence), (Event::Resolved, 2));
    assert_eq!(n.reasons, vec![Reason::Resolved]);
    assert!(told.closed);
    assert_eq!(
        p.decide(
            Some(&told),
            &change(ChangeKind::Updated, resolved),
            99 * MIN
        ),
        Decision::Quiet
    );
}

#[test]
fn folding_into_another_incident_closes_what_was_announced() {
    let p = policy();
    let mut merged = change(ChangeKind::Merged, incident());
    merged.merged_into = Some("00000000000000aa".to_string());
    assert_eq!(
        p.decide(None, &merged, 0),
        Decision::Quiet,
        "never announced"
    );
    let (_, told) = sent(p.decide(None, &change(ChangeKind::Opened, incident()), 0));
    let (n, told) = sent(p.decide(Some(&told), &merged, 1));
    assert_eq!(n.event, Event::Resolved);
    assert_eq!(
        n.reasons,
        vec![Reason::MergedInto {
            id: "00000000000000aa".to_string()
        }]
    );
    assert!(told.closed);
}

#[test]
fn an_incident_over_before_anyone_was_told_is_told_once() {
    let mut inc = incident();
    inc.status = Status::Resolved;
    let (n, told) = sent(policy().decide(None, &change(ChangeKind::Resolved, inc), 0));
    assert_eq!((n.event, n.sequence), (Event::Resolved, 1));
    assert_eq!(n.reasons, vec![Reason::Opened, Reason::Resolved]);
    assert!(told.closed);
}

#[test]
fn replaying_changes_already_told_tells_nothing_again() {
    // After a crash the engine resumes from a checkpoint older than the
    // outbox's memory and emits the same changes again.
    let p = policy();
    let steps = [
        change(ChangeKind::Opened, incident()),
        change(
            ChangeKind::Updated,
            with_affected(incident(), 1, "vault-boltdb-timeout"),
        ),
        change(
            ChangeKind::Updated,
            with_affected(incident(), 12, "vault-boltdb-timeout"),
        ),
    ];
    let mut told: Option<Told> = None;
    let mut sent_count = 0;
    for (i, c) in steps.iter().enumerate() {
        if let Decision::Send { told: t, .. } = p.decide(told.as_ref(), c, i as i64 * 10 * MIN) {
            told = Some(t);
            sent_count += 1;
        }
    }
    assert_eq!(sent_count, 3);
    for c in &steps {
        assert_eq!(p.decide(told.as_ref(), c, 99 * MIN), Decision::Quiet);
    }
}

#[test]
fn links_name_the_incident_url_encoded() {
    let p = Policy::new(PolicySettings {
        links: vec![LinkTemplate {
            title: "Runbook".to_string(),
            url: "https://runbooks.example/{rule}?kind={root_kind}&ns={namespace}&x={unknown}"
                .to_string(),
        }],
        ..PolicySettings::default()
    });
    let (n, _) = sent(p.decide(None, &change(ChangeKind::Opened, incident()), 0));
    let inc = incident();
    let ns = inc.root_cause.entity.namespace.clone().unwrap_or_default();
    assert_eq!(
        n.links[0].url,
        format!(
            "https://runbooks.example/csi-driver-unavailable?kind={}&ns={}&x={{unknown}}",
            inc.root_cause.entity.kind, ns
        )
    );
    assert_eq!(
        LinkTemplate::unknown_placeholders("https://x/{id}/{nope}/{rule}"),
        vec!["nope".to_string()]
    );
}

#[test]
fn queued_notifications_coalesce_into_the_newest_state() {
    let open = Notification {
        event: Event::Opened,
        sequence: 1,
        reasons: vec![Reason::Opened],
        links: Vec::new(),
        incident: incident(),
    };
    let update = Notification {
        event: Event::Updated,
        sequence: 2,
        reasons: vec![Reason::BlastRadius { from: 3, to: 30 }],
        links: Vec::new(),
        incident: with_affected(incident(), 2, "x"),
    };
    let merged = coalesce(&open, update.clone());
    assert_eq!((merged.event, merged.sequence), (Event::Opened, 2));
    assert_eq!(merged.reasons.len(), 2);
    assert_eq!(
        merged.incident.affected.len(),
        incident().affected.len() + 2
    );
    let resolved = Notification {
        event: Event::Resolved,
        sequence: 3,
        reasons: vec![Reason::Resolved],
        ..update.clone()
    };
    let merged = coalesce(&update, resolved);
    assert_eq!((merged.event, merged.sequence), (Event::Resolved, 3));
}

//! The ntfy notifier over real HTTP against testkit's local ntfy, which
//! checks what ntfy 2.16 checks and shows what a subscribed phone shows.
//!
//! What is checked: an incident is one notification on the phone from
//! opening to resolution (updates replace it by sequence id, the resolution
//! is published and then cleared), in both publishing modes; loudness
//! follows the severity and quiets down for updates; token and basic auth
//! work and a bad token is a permanent error carrying ntfy's own message;
//! 429, 500 and a timeout are retries (with the service's `Retry-After`,
//! in doubt after a timeout) and a retry does not add a notification;
//! every fixture incident (real replay output and a pathological one) is
//! accepted in every mode and event, within ntfy's limits, with the title
//! read back as written. The local ntfy is tested too: it refuses what
//! ntfy refuses, so passing against it means something.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use correlate::{IncidentReport, Severity};
use sinks::notify::ntfy::{
    MESSAGE_LIMIT, NtfyAuth, NtfyNotifier, NtfyPublish, NtfySettings, sequence_id,
};
use sinks::notify::{DeliveryError, Event, Link, Notification, Reason, Receipt, Secret};
use testkit::ntfy::{DismissKind, Fault, LocalNtfy, NtfyConfig, Via};

const TOPIC: &str = "epicenter-ops";
const PATIENCE: Duration = Duration::from_secs(30);

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/incidents")
}

fn fixture(name: &str) -> IncidentReport {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every incident fixture (this suite's and the other notifiers').
fn all_fixtures() -> Vec<(String, IncidentReport)> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 12, "fixtures missing: {names:?}");
    names
        .into_iter()
        .map(|n| (n.clone(), fixture(&n)))
        .collect()
}

const NFS: &str = "nw-nfs-csi-cascade-892aeef396b372f7.json";
const PATHOLOGICAL: &str = "nw-pathological-huge-unicode.json";

fn links() -> Vec<Link> {
    [
        ("Runbook", "https://runbooks.example/csi-driver-unavailable"),
        (
            "Dashboard",
            "https://grafana.example/d/csi?var-node=k8s-node1",
        ),
        (
            "Incident, in epicenter",
            "https://epicenter.example/api/v1/incidents/x",
        ),
        ("Logs", "https://logs.example/?q=csi"),
    ]
    .into_iter()
    .map(|(title, url)| Link {
        title: title.to_string(),
        url: url.to_string(),
    })
    .collect()
}

fn note(
    event: Event,
    sequence: u32,
    reasons: Vec<Reason>,
    incident: &IncidentReport,
) -> Notification {
    Notification {
        event,
        sequence,
        reasons,
        links: links(),
        incident: incident.clone(),
    }
}

fn opened(incident: &IncidentReport) -> Notification {
    note(Event::Opened, 1, vec![Reason::Opened], incident)
}

fn updated(incident: &IncidentReport) -> Notification {
    note(
        Event::Updated,
        2,
        vec![
            Reason::NewEffects {
                signals: vec!["storage-lock-failure".to_string()],
            },
            Reason::BlastRadius { from: 5, to: 22 },
        ],
        incident,
    )
}

fn resolved(incident: &IncidentReport) -> Notification {
    let mut incident = incident.clone();
    incident.resolved_at.get_or_insert(incident.last_seen);
    note(Event::Resolved, 3, vec![Reason::Resolved], &incident)
}

fn notifier(server: &LocalNtfy, publish: NtfyPublish, auth: Option<NtfyAuth>) -> NtfyNotifier {
    notifier_with_timeout(server, publish, auth, PATIENCE)
}

fn notifier_with_timeout(
    server: &LocalNtfy,
    publish: NtfyPublish,
    auth: Option<NtfyAuth>,
    timeout: Duration,
) -> NtfyNotifier {
    NtfyNotifier::new(NtfySettings {
        server: format!("{}/", server.url()),
        topic: TOPIC.to_string(),
        auth,
        publish,
        tags: vec!["prod".to_string(), "cluster-a".to_string()],
        timeout,
    })
    .unwrap()
}

fn sid_of(receipt: &Receipt) -> &str {
    match receipt {
        Receipt::Ntfy { sequence_id } => sequence_id,
        other => panic!("not an ntfy receipt: {other:?}"),
    }
}

async fn lifecycle_is_one_notification(publish: NtfyPublish, via: Via) {
    let server = LocalNtfy::start();
    let ntfy = notifier(&server, publish, None);
    let incident = fixture(NFS);

    // Open: one notification, loud, as the phone shows it.
    let receipt = ntfy.deliver(&opened(&incident), None).await.unwrap();
    assert_eq!(
        sid_of(&receipt),
        incident.id,
        "the incident id is the sequence id"
    );
    let phone = server.phone(TOPIC);
    assert_eq!(phone.len(), 1);
    let m = &phone[0].message;
    assert_eq!(m.via, via);
    assert_eq!(m.sequence_id, incident.id);
    assert_eq!(m.title.as_deref(), Some(incident.title.as_str()));
    assert_eq!(m.priority, 5, "critical opens urgent");
    assert_eq!(
        m.tags,
        [
            "rotating_light",
            "csi-driver-unavailable",
            "prod",
            "cluster-a"
        ]
    );
    assert!(m.markdown);
    assert!(
        m.message
            .starts_with("**Root cause:** DaemonSet `nfs-csi/csi-nfs-node`"),
        "{}",
        m.message
    );
    assert!(
        m.message
            .contains("liveness-probe on csi-nfs-node-nnftf cannot bind 127.0.0.1:29653")
    );
    assert!(m.message.contains("- port: `29653`"), "{}", m.message);
    assert!(
        m.message
            .contains("**Blast radius:** 22 pods across 17 namespaces and 4 nodes"),
        "{}",
        m.message
    );
    assert!(
        !m.message.contains("What changed"),
        "an opening has no changes"
    );
    assert_eq!(
        m.click.as_deref(),
        Some("https://runbooks.example/csi-driver-unavailable")
    );
    let labels: Vec<&str> = m.actions.iter().map(|a| a.label.as_str()).collect();
    assert_eq!(
        labels,
        ["Runbook", "Dashboard", "Incident, in epicenter"],
        "ntfy takes three"
    );
    assert!(m.actions.iter().all(|a| a.action == "view"));

    // Update: the same notification, replaced, not screaming.
    let receipt = ntfy
        .deliver(&updated(&incident), Some(&receipt))
        .await
        .unwrap();
    let phone = server.phone(TOPIC);
    assert_eq!(phone.len(), 1, "an update adds no notification");
    assert_eq!(phone[0].versions, 2);
    let m = &phone[0].message;
    assert_eq!(m.priority, 3);
    assert!(m.message.contains(
        "**What changed:** new kinds of effect: storage-lock-failure; blast radius grew from 5 to 22 entities"
    ), "{}", m.message);

    // Resolve: the resolved state, then cleared from the drawer.
    let receipt = ntfy
        .deliver(&resolved(&incident), Some(&receipt))
        .await
        .unwrap();
    assert_eq!(sid_of(&receipt), incident.id);
    let phone = server.phone(TOPIC);
    assert_eq!(phone.len(), 1);
    assert_eq!(phone[0].versions, 3);
    assert!(phone[0].cleared, "the resolution is cleared");
    let m = &phone[0].message;
    assert_eq!(
        m.title.as_deref(),
        Some(format!("Resolved: {}", incident.title).as_str())
    );
    assert_eq!(m.priority, 2);
    assert_eq!(m.tags[0], "white_check_mark");
    assert!(
        m.message.contains("resolved 08:22:45Z after 22m32s"),
        "{}",
        m.message
    );
    assert!(server.drawer(TOPIC).is_empty());
    let dismissals = server.dismissals();
    assert_eq!(dismissals.len(), 1);
    assert_eq!(dismissals[0].kind, DismissKind::Clear);
    assert_eq!(dismissals[0].sequence_id, incident.id);
    assert!(
        dismissals[0].arrived >= server.messages()[2].arrived,
        "cleared after the resolved state"
    );
    assert_eq!(server.messages().len(), 3);
    assert!(server.refusals().is_empty(), "{:?}", server.refusals());
}

#[tokio::test]
async fn an_incident_is_one_notification_with_headers() {
    lifecycle_is_one_notification(NtfyPublish::Headers, Via::Headers).await;
}

#[tokio::test]
async fn an_incident_is_one_notification_with_json() {
    lifecycle_is_one_notification(NtfyPublish::Json, Via::Json).await;
}

#[tokio::test]
async fn loudness_follows_severity_and_its_raises() {
    let server = LocalNtfy::start();
    let ntfy = notifier(&server, NtfyPublish::Headers, None);
    let mut incident = fixture(NFS);
    for (i, (severity, priority, emoji)) in [
        (Severity::Critical, 5, "rotating_light"),
        (Severity::Warning, 4, "warning"),
        (Severity::Info, 3, "information_source"),
    ]
    .into_iter()
    .enumerate()
    {
        incident.id = format!("sev{i}");
        incident.severity = severity;
        ntfy.deliver(&opened(&incident), None).await.unwrap();
        let m = server.messages().pop().unwrap();
        assert_eq!(
            (m.priority, m.tags[0].as_str()),
            (priority, emoji),
            "{severity:?}"
        );
    }
    // A raise screams again; a plain update does not.
    incident.id = "raised".to_string();
    incident.severity = Severity::Critical;
    let raise = note(
        Event::Updated,
        2,
        vec![Reason::SeverityRaised {
            from: Severity::Warning,
            to: Severity::Critical,
        }],
        &incident,
    );
    ntfy.deliver(&raise, None).await.unwrap();
    assert_eq!(server.messages().pop().unwrap().priority, 5);
}

#[tokio::test]
async fn token_and_basic_auth_are_accepted_and_a_bad_token_is_permanent() {
    let server = LocalNtfy::start_with(NtfyConfig {
        tokens: vec!["tk_goodtoken0000000000000000000".to_string()],
        users: vec![("epicenter".to_string(), "pässwörd".to_string())],
        ..NtfyConfig::default()
    });
    let incident = fixture(NFS);
    let token = NtfyAuth::Token(Secret::new("tk_goodtoken0000000000000000000"));
    let basic = NtfyAuth::Basic {
        user: "epicenter".to_string(),
        password: Secret::new("pässwörd"),
    };
    for auth in [token, basic] {
        let ntfy = notifier(&server, NtfyPublish::Headers, Some(auth.clone()));
        ntfy.deliver(&resolved(&incident), None)
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e}"));
    }
    assert_eq!(server.messages().len(), 2);
    assert_eq!(server.dismissals().len(), 2);

    let bad = notifier(
        &server,
        NtfyPublish::Headers,
        Some(NtfyAuth::Token(Secret::new("tk_wrong"))),
    );
    let e = bad.deliver(&opened(&incident), None).await.unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    assert!(
        e.to_string().contains("401") && e.to_string().contains("unauthorized (ntfy error 40101"),
        "{e}"
    );

    let anonymous = notifier(&server, NtfyPublish::Json, None);
    let e = anonymous
        .deliver(&opened(&incident), None)
        .await
        .unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    assert!(
        e.to_string().contains("403") && e.to_string().contains("forbidden"),
        "{e}"
    );
    assert_eq!(server.messages().len(), 2, "nothing published without auth");
    let codes: Vec<u32> = server.refusals().iter().map(|r| r.code).collect();
    assert_eq!(codes, [40101, 40301]);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retries() {
    let server = LocalNtfy::start();
    let ntfy = notifier(&server, NtfyPublish::Headers, None);
    let incident = fixture(NFS);
    let n = opened(&incident);

    server.fail_next(
        1,
        Fault::TooManyRequests {
            retry_after: Some(7),
        },
    );
    server.fail_next(1, Fault::TooManyRequests { retry_after: None });
    server.fail_next(1, Fault::ServerError);
    let mut seen = Vec::new();
    for _ in 0..3 {
        match ntfy.deliver(&n, None).await.unwrap_err() {
            DeliveryError::Retry {
                retry_after,
                in_doubt,
                reason,
                ..
            } => {
                assert!(!in_doubt, "{reason}");
                seen.push((retry_after, reason));
            }
            e => panic!("not a retry: {e:?}"),
        }
    }
    assert_eq!(seen[0].0, Some(Duration::from_secs(7)));
    assert!(
        seen[0].1.contains("limit reached: too many requests"),
        "{}",
        seen[0].1
    );
    assert_eq!(seen[1].0, None);
    assert!(seen[2].1.contains("500"), "{}", seen[2].1);
    ntfy.deliver(&n, None).await.unwrap();
    assert_eq!(server.phone(TOPIC).len(), 1);
}

#[tokio::test]
async fn a_clear_that_fails_is_retried_with_the_receipt_as_progress() {
    let server = LocalNtfy::start();
    let ntfy = notifier(&server, NtfyPublish::Headers, None);
    let incident = fixture(NFS);
    let n = resolved(&incident);
    ntfy.deliver(&opened(&incident), None).await.unwrap();
    // The resolved publication passes, the clear after it meets a 500.
    server.fail_next(1, Fault::Delay(Duration::ZERO));
    server.fail_next(1, Fault::ServerError);
    let e = ntfy.deliver(&n, None).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Retry { .. }), "{e:?}");
    assert_eq!(
        e.progress(),
        Some(&Receipt::Ntfy {
            sequence_id: incident.id.clone()
        })
    );
    assert!(server.dismissals().is_empty());
    // The retry publishes the resolution again (quietly) and clears it.
    ntfy.deliver(&n, e.progress()).await.unwrap();
    let phone = server.phone(TOPIC);
    assert_eq!(phone.len(), 1);
    assert!(phone[0].cleared);
    assert_eq!(server.messages().last().unwrap().priority, 2);
}

#[tokio::test]
async fn a_timeout_is_in_doubt_and_its_retry_adds_no_notification() {
    let server = LocalNtfy::start();
    let impatient = notifier_with_timeout(&server, NtfyPublish::Json, None, Duration::from_secs(1));
    let incident = fixture(NFS);
    let n = opened(&incident);
    server.fail_next(1, Fault::Delay(Duration::from_secs(5)));
    match impatient.deliver(&n, None).await.unwrap_err() {
        DeliveryError::Retry { in_doubt, .. } => assert!(in_doubt, "a timeout may have landed"),
        e => panic!("not a retry: {e:?}"),
    }
    assert_eq!(
        server.messages().len(),
        1,
        "the attempt landed all the same"
    );
    // The retry replaces it: the phone shows one notification.
    let patient = notifier(&server, NtfyPublish::Json, None);
    patient.deliver(&n, None).await.unwrap();
    assert_eq!(server.messages().len(), 2);
    let phone = server.phone(TOPIC);
    assert_eq!(phone.len(), 1);
    assert_eq!(phone[0].versions, 2);
}

#[tokio::test]
async fn a_server_without_sequence_ids_is_a_permanent_error_saying_so() {
    let server = LocalNtfy::start();
    // A path ntfy does not route: what a server before 2.16 answers for
    // `/<topic>/<sequence id>`.
    let ntfy = NtfyNotifier::new(NtfySettings {
        server: format!("{}/old", server.url()),
        topic: TOPIC.to_string(),
        auth: None,
        publish: NtfyPublish::Headers,
        tags: vec![],
        timeout: PATIENCE,
    })
    .unwrap();
    let e = ntfy
        .deliver(&opened(&fixture(NFS)), None)
        .await
        .unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    assert!(
        e.to_string().contains("404") && e.to_string().contains("ntfy 2.16"),
        "{e}"
    );
}

#[tokio::test]
async fn an_id_ntfy_would_refuse_gets_a_valid_stable_sequence_id() {
    let server = LocalNtfy::start();
    let ntfy = notifier(&server, NtfyPublish::Headers, None);
    let mut incident = fixture(NFS);
    incident.id = "cluster-a/incident:42 ü".to_string();
    let receipt = ntfy.deliver(&opened(&incident), None).await.unwrap();
    let sid = sid_of(&receipt).to_string();
    assert_eq!(sid, sequence_id(&incident.id));
    assert_ne!(sid, incident.id);
    ntfy.deliver(&updated(&incident), Some(&receipt))
        .await
        .unwrap();
    let phone = server.phone(TOPIC);
    assert_eq!(phone.len(), 1);
    assert_eq!(phone[0].message.sequence_id, sid);
}

/// Every fixture, opened, updated and resolved, in both modes: accepted,
/// within the limits, the title read back as written, the root cause
/// first.
#[tokio::test]
async fn every_fixture_incident_is_accepted_within_limits() {
    let server = LocalNtfy::start();
    for publish in [NtfyPublish::Headers, NtfyPublish::Json] {
        let ntfy = notifier(&server, publish, None);
        for (name, incident) in all_fixtures() {
            for n in [opened(&incident), updated(&incident), resolved(&incident)] {
                let before = server.messages().len();
                ntfy.deliver(&n, None)
                    .await
                    .unwrap_or_else(|e| panic!("{name} {:?} {publish:?}: {e}", n.event));
                let m = server.messages().pop().unwrap();
                assert_eq!(server.messages().len(), before + 1);
                let want = ntfy.render(&n);
                assert!(
                    m.message.len() <= MESSAGE_LIMIT,
                    "{name}: {} bytes",
                    m.message.len()
                );
                assert_eq!(
                    m.message, want.message,
                    "{name}: the body arrives as rendered"
                );
                assert_eq!(m.title.as_deref(), Some(want.title.as_str()), "{name}");
                assert!(m.title.as_deref().unwrap().len() <= 250, "{name}");
                assert!(m.markdown);
                assert!(
                    m.message.starts_with("**Root cause:**"),
                    "{name}: {}",
                    m.message
                );
                assert!(m.message.contains("**Blast radius:**"), "{name}");
                assert!(
                    m.message.contains(&format!("incident `{}`", incident.id)),
                    "{name}: the footer survives"
                );
            }
        }
    }
    assert!(server.refusals().is_empty(), "{:?}", server.refusals());
}

#[tokio::test]
async fn the_pathological_incident_is_cut_to_fit_but_keeps_its_shape() {
    let server = LocalNtfy::start();
    let ntfy = notifier(&server, NtfyPublish::Headers, None);
    let incident = fixture(PATHOLOGICAL);
    assert!(incident.affected.len() >= 3000 && incident.root_cause.summary.len() >= 5000);
    ntfy.deliver(&opened(&incident), None).await.unwrap();
    let m = server.messages().pop().unwrap();
    let title = m.title.unwrap();
    assert!(
        title.starts_with("Пакет «nfs.csi.k8s.io» недоступен — 节点"),
        "{title}"
    );
    assert!(title.ends_with('…'), "cut: {title}");
    assert!(m.message.len() <= MESSAGE_LIMIT);
    assert!(
        m.message
            .contains("**Blast radius:** 3000 pods, 60 nodes across 300 namespaces and 60 nodes"),
        "{}",
        m.message
    );
    assert!(
        m.message.contains("more"),
        "long lists say how many are left out"
    );
    // Markdown in the summary is shown, not interpreted.
    assert!(
        m.message
            .contains("\\*cannot\\* bind \\`127.0.0.1:29653\\`"),
        "{}",
        m.message
    );
    assert!(!m.message.contains("\n# not a heading"));
}

/// The local ntfy refuses what ntfy refuses: these requests must fail, or
/// the tests above prove nothing.
#[tokio::test]
async fn the_local_ntfy_refuses_what_ntfy_refuses() {
    let server = LocalNtfy::start();
    let http = sinks::notify::http::client(PATIENCE).unwrap();
    let base = server.url();
    let cases: Vec<(reqwest::RequestBuilder, u16, u32)> = vec![
        (http.post(format!("{base}/ok")).body("x".repeat(MESSAGE_LIMIT + 1)), 400, 40014),
        (http.post(format!("{base}/ok")).header("X-Priority", "6").body("x"), 400, 40007),
        (http.post(format!("{base}/ok")).header("Priority", "urgentish").body("x"), 400, 40007),
        (http.post(format!("{base}/ok")).header("X-Sequence-ID", "a:b").body("x"), 400, 40049),
        (http.post(format!("{base}/ok/a.b")).body("x"), 404, 40401),
        (http.post(format!("{base}/{}", "t".repeat(65))).body("x"), 404, 40401),
        (http.post(format!("{base}/docs")).body("x"), 400, 40010),
        (
            http.post(format!("{base}/ok")).header(
                "X-Actions",
                "view, a, https://a; view, b, https://b; view, c, https://c; view, d, https://d",
            ).body("x"),
            400,
            40018,
        ),
        (http.post(format!("{base}/ok")).header("X-Actions", "view, no url").body("x"), 400, 40018),
        (http.post(format!("{base}/")).body("not json"), 400, 40017),
        (http.post(format!("{base}/")).body(r#"{"topic":"ok","priority":9}"#), 400, 40007),
        (http.post(format!("{base}/")).body(r#"{"topic":"a/b"}"#), 400, 40009),
        (http.post(format!("{base}/")).body(format!(r#"{{"topic":"ok","message":"{}"}}"#, "x".repeat(2 * MESSAGE_LIMIT))), 413, 41303),
        (http.put(format!("{base}/ok/a.b/clear")), 404, 40401),
    ];
    for (i, (req, status, code)) in cases.into_iter().enumerate() {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "case {i}");
        let doc: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(doc["code"], code, "case {i}: {doc}");
        assert_eq!(doc["http"], status, "case {i}: {doc}");
        assert!(doc["error"].is_string(), "case {i}: {doc}");
    }
    assert!(server.messages().is_empty());

    // And takes what ntfy takes: aliases, a Cloudflare priority, Q words.
    let resp = http
        .put(format!("{base}/ok"))
        .header("t", "=?utf-8?q?caf=C3=A9?=")
        .header("Priority", "u=3, i")
        .header("p", "high")
        .header("ta", "a, b,,c")
        .header("md", "true")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m = server.messages().pop().unwrap();
    assert_eq!(m.title.as_deref(), Some("café"));
    assert_eq!(
        (m.priority, m.tags.as_slice(), m.markdown),
        (4, &["a", "b", "c"].map(String::from)[..], true)
    );
    assert_eq!(m.message, "triggered");
}

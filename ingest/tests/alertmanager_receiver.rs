//! The Alertmanager receiver over real HTTP: every answer Alertmanager can
//! get, and what reaches the pipeline through the journal. (The end-to-end
//! test with a real Alertmanager is in the binary's tests/e2e/alertmanager.rs.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ingest::source::alertmanager::{self, PATH, Settings};
use ingest::source::journal::{self, Journal};
use ingest::source::{Delivery, Health, Intake, SourceHealth};
use tokio::sync::mpsc;

const BODY: &str = include_str!("receiver/alertmanager_body.json");

struct Receiver {
    url: String,
    rx: mpsc::Receiver<Delivery>,
    health: Arc<SourceHealth>,
    client: reqwest::Client,
    journal: Journal,
    _dir: tempfile::TempDir,
}

async fn start(settings: Settings, queue: usize) -> Receiver {
    let dir = tempfile::tempdir().unwrap();
    let (intake, rx) = Intake::bounded(queue);
    let js = journal::Settings::new(dir.path().join("journal"));
    let (_, opened) = Journal::open(&js, 0).unwrap();
    let journal = Journal::start(js, &opened, intake).unwrap();
    let health = Health::default().register("alertmanager");
    let app = alertmanager::router(&settings, journal.clone(), health.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}{PATH}"),
        rx,
        health,
        client: testkit::http_client(),
        journal,
        _dir: dir,
    }
}

impl Receiver {
    async fn post(&self, body: &str, token: Option<&str>) -> (u16, String, Option<String>) {
        self.post_with(body, token.map(|t| format!("Bearer {t}")))
            .await
    }

    /// Posts with this `Authorization` header, as written.
    async fn post_with(
        &self,
        body: &str,
        authorization: Option<String>,
    ) -> (u16, String, Option<String>) {
        let mut req = self.client.post(&self.url).body(body.to_string());
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (status, resp.text().await.unwrap(), retry)
    }

    /// The next delivery the journal handed on.
    async fn next(&mut self) -> Delivery {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("a delivery in time")
            .expect("the intake is open")
    }

    fn rejected(&self, reason: &str) -> u64 {
        self.health
            .rejected()
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

#[tokio::test]
async fn a_v4_body_is_journaled_unchanged_and_answered_200() {
    let mut r = start(Settings::default(), 4).await;
    let (status, _, _) = r.post(BODY, None).await;
    assert_eq!(status, 200);
    assert_eq!(r.journal.status().appended, 1, "on disk before the answer");
    let d = r.next().await;
    assert_eq!(d.lines, [BODY.to_string()]);
    assert_eq!(d.source, "alertmanager");
    assert_eq!(d.journal, Some(1));
    assert!(!d.ordered, "alert times never hold the watermark back");
    assert_eq!(
        r.health.records.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401_and_nothing_is_queued() {
    let settings = Settings {
        token: Some("s3cret".to_string()),
        ..Settings::default()
    };
    let mut r = start(settings, 4).await;
    assert_eq!(r.post(BODY, None).await.0, 401);
    assert_eq!(r.post(BODY, Some("s3cre")).await.0, 401);
    assert_eq!(r.post(BODY, Some("s3cret!")).await.0, 401);
    assert_eq!(r.post_with(BODY, Some("Basic s3cret".into())).await.0, 401);
    assert_eq!(r.post_with(BODY, Some("s3cret".into())).await.0, 401);
    assert!(r.rx.try_recv().is_err());
    assert_eq!(r.rejected("unauthorized"), 5);
    assert_eq!(r.post(BODY, Some("s3cret")).await.0, 200);
    r.next().await;
    // The scheme is case-insensitive (RFC 9110 11.1), the token is not.
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let (status, ..) = r.post_with(BODY, Some(format!("{scheme} s3cret"))).await;
        assert_eq!(status, 200, "{scheme}");
        r.next().await;
    }
    assert_eq!(r.post_with(BODY, Some("bearer S3CRET".into())).await.0, 401);
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let settings = Settings {
        max_body: 1024,
        ..Settings::default()
    };
    let mut r = start(settings, 4).await;
    let (status, _, _) = r.post(BODY, None).await;
    assert!(BODY.len() > 1024);
    assert_eq!(status, 413);
    assert_eq!(r.rejected("too_large"), 1);
    assert!(r.rx.try_recv().is_err());
}

#[tokio::test]
async fn malformed_bodies_are_400_with_the_reason() {
    let mut r = start(Settings::default(), 4).await;
    let cases = [
        (
            r#"{"version":"4","alerts":[{"status":"firing""#,
            "EOF while parsing",
        ),
        (r#"{"version":"4"}"#, "missing field `alerts`"),
        (
            r#"{"version":"4","alerts":[{"status":"firing","labels":{}}]}"#,
            "no readable alert: alerts[0].startsAt: missing",
        ),
        (
            &BODY.replacen(r#""version":"4""#, r#""version":"3""#, 1),
            "version \"3\" is not supported",
        ),
        ("not json", "expected ident at line 1 column 2"),
    ];
    for (body, reason) in cases {
        let (status, text, _) = r.post(body, None).await;
        assert_eq!(status, 400, "{body}");
        assert!(text.contains(reason), "{text:?} should say {reason:?}");
    }
    assert_eq!(r.rejected("malformed"), 5);
    assert!(r.rx.try_recv().is_err());
}

#[tokio::test]
async fn a_body_with_some_unreadable_alerts_is_taken_for_the_others() {
    let mut r = start(Settings::default(), 4).await;
    let mixed = r#"{"version":"4","status":"firing","alerts":[
        {"status":"firing","labels":{"alertname":"KubePodCrashLooping","pod":"web-1","namespace":"shop"},"startsAt":"2026-03-16T08:00:00Z","fingerprint":"a1"},
        {"status":"firing","labels":{"alertname":"KubePodCrashLooping","pod":"web-2","namespace":"shop"},"startsAt":"garbage","fingerprint":"b2"}]}"#;
    let (status, text, _) = r.post(mixed, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(r.next().await.lines, [mixed.to_string()]);
    assert_eq!(r.rejected("malformed"), 0);
}

#[tokio::test]
async fn a_saturated_pipeline_is_503_with_retry_after_and_then_takes_the_retry() {
    let mut r = start(Settings::default(), 1).await;
    assert_eq!(r.post(BODY, None).await.0, 200);
    // Handed on: the intake (room for one) is full now.
    tokio::time::timeout(Duration::from_secs(10), async {
        while r.rx.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let (status, _, retry) = r.post(BODY, None).await;
    assert_eq!(status, 503);
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(r.rejected("saturated"), 1);
    // The pipeline takes the first body; Alertmanager's retry now fits.
    r.next().await;
    assert_eq!(r.post(BODY, None).await.0, 200);
    r.next().await;
    assert!(r.rx.try_recv().is_err(), "the refused body was not queued");
    assert_eq!(r.journal.status().appended, 2);
}

#[tokio::test]
async fn a_closed_journal_is_503() {
    let r = start(Settings::default(), 4).await;
    r.journal.close();
    let (status, text, retry) = r.post(BODY, None).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
    assert!(text.contains("shutting down"), "{text}");
    assert_eq!(r.rejected("shutting_down"), 1);
}

#[tokio::test]
async fn a_journal_that_cannot_write_is_503_storage_and_nothing_is_acknowledged() {
    let mut r = start(Settings::default(), 4).await;
    let dir = r._dir.path().join("journal");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"in the way").unwrap();
    let (status, text, retry) = r.post(BODY, None).await;
    assert_eq!((status, retry.as_deref()), (503, Some("5")), "{text}");
    assert!(text.contains("cannot store the alerts durably"), "{text}");
    assert_eq!(r.rejected("storage"), 1);
    assert!(r.rx.try_recv().is_err());
}

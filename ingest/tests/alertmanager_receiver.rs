//! The Alertmanager receiver over real HTTP: every answer Alertmanager can
//! get, and what reaches the pipeline. (The end-to-end test with a real
//! Alertmanager is in the binary's tests/e2e/alertmanager.rs.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use ingest::source::alertmanager::{self, PATH, Settings};
use ingest::source::{Delivery, Health, Intake, SourceHealth};
use tokio::sync::mpsc;

const BODY: &str = include_str!("receiver/alertmanager_body.json");

struct Receiver {
    url: String,
    rx: mpsc::Receiver<Delivery>,
    health: Arc<SourceHealth>,
    client: reqwest::Client,
}

async fn start(settings: Settings, queue: usize) -> Receiver {
    let (intake, rx) = Intake::bounded(queue);
    let health = Health::default().register("alertmanager");
    let app = alertmanager::router(&settings, intake, health.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}{PATH}"),
        rx,
        health,
        client: testkit::http_client(),
    }
}

impl Receiver {
    async fn post(&self, body: &str, token: Option<&str>) -> (u16, String, Option<String>) {
        let mut req = self.client.post(&self.url).body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (status, resp.text().await.unwrap(), retry)
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
async fn a_v4_body_is_queued_unchanged_and_answered_200() {
    let mut r = start(Settings::default(), 4).await;
    let (status, _, _) = r.post(BODY, None).await;
    assert_eq!(status, 200);
    let d = r.rx.try_recv().expect("queued before the answer");
    assert_eq!(d.lines, [BODY.to_string()]);
    assert_eq!(d.source, "alertmanager");
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
    assert!(r.rx.try_recv().is_err());
    assert_eq!(r.rejected("unauthorized"), 3);
    assert_eq!(r.post(BODY, Some("s3cret")).await.0, 200);
    assert!(r.rx.try_recv().is_ok());
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
            "missing field `startsAt`",
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
async fn a_saturated_pipeline_is_503_with_retry_after_and_then_takes_the_retry() {
    let mut r = start(Settings::default(), 1).await;
    assert_eq!(r.post(BODY, None).await.0, 200);
    let (status, _, retry) = r.post(BODY, None).await;
    assert_eq!(status, 503);
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(r.rejected("saturated"), 1);
    // The pipeline takes the first body; Alertmanager's retry now fits.
    r.rx.recv().await.unwrap();
    assert_eq!(r.post(BODY, None).await.0, 200);
    r.rx.recv().await.unwrap();
    assert!(r.rx.try_recv().is_err(), "the refused body was not queued");
}

#[tokio::test]
async fn a_closed_pipeline_is_503() {
    let mut r = start(Settings::default(), 4).await;
    r.rx.close();
    let (status, text, retry) = r.post(BODY, None).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
    assert!(text.contains("shutting down"), "{text}");
    assert_eq!(r.rejected("shutting_down"), 1);
}

//! The operational endpoints: `/healthz` (the process answers and nothing
//! fatal happened: a dead engine thread is not healthy), `/readyz` (rules
//! loaded, state restored, every source connected, the journal, the outbox
//! and checkpoints can write) and `/metrics`. The source routes (the
//! Alertmanager receiver) are merged in beside them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ingest::source::{Health, Journal};
use serde::Serialize;
use sinks::outbox::Outbox;

use super::faults::Faults;
use super::metrics::Metrics;

#[derive(Clone, Debug)]
pub(crate) struct Ops {
    pub(crate) health: Health,
    pub(crate) metrics: Arc<Metrics>,
    /// Set once rules are loaded, state restored and the pipeline runs.
    pub(crate) started: Arc<AtomicBool>,
    pub(crate) faults: Faults,
    pub(crate) journal: Journal,
    pub(crate) outbox: Outbox,
}

pub(crate) fn router(ops: Ops) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ops)
}

async fn healthz(State(ops): State<Ops>) -> Response {
    match ops.faults.fatal_reason() {
        None => "ok\n".into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("fatal: {reason}\n"),
        )
            .into_response(),
    }
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    pipeline: bool,
    sources: Vec<SourceReadiness>,
    /// What keeps the service from taking work now (disk full, a fatal
    /// error), by part.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<Problem>,
}

#[derive(Serialize)]
struct Problem {
    part: &'static str,
    reason: String,
}

#[derive(Serialize)]
struct SourceReadiness {
    name: String,
    connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn readyz(State(ops): State<Ops>) -> Response {
    let sources: Vec<SourceReadiness> = ops
        .health
        .sources()
        .iter()
        .map(|s| SourceReadiness {
            name: s.name.clone(),
            connected: s.is_connected(),
            error: s.last_error(),
        })
        .collect();
    let pipeline = ops.started.load(Ordering::Relaxed);
    let mut problems: Vec<Problem> = ops
        .faults
        .conditions()
        .into_iter()
        .map(|(part, reason)| Problem { part, reason })
        .collect();
    if let Some(reason) = ops.journal.failure() {
        problems.push(Problem {
            part: "journal",
            reason,
        });
    }
    if let Some(reason) = ops.outbox.failure() {
        problems.push(Problem {
            part: "outbox",
            reason,
        });
    }
    if let Some(reason) = ops.faults.fatal_reason() {
        problems.push(Problem {
            part: "fatal",
            reason,
        });
    }
    let ready = pipeline && problems.is_empty() && sources.iter().all(|s| s.connected);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(Readiness {
            ready,
            pipeline,
            sources,
            problems,
        }),
    )
        .into_response()
}

async fn metrics(State(ops): State<Ops>) -> Response {
    match ops.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    struct Parts {
        ops: Ops,
        _dir: tempfile::TempDir,
    }

    fn parts() -> Parts {
        let dir = tempfile::tempdir().unwrap();
        let (intake, _rx) = ingest::source::Intake::bounded(4);
        let js = ingest::source::journal::Settings::new(dir.path().join("journal"));
        let (_, opened) = Journal::open(&js, 0).unwrap();
        let journal = Journal::start(js, &opened, intake).unwrap();
        let outbox = Outbox::open(
            sinks::outbox::Settings::new(dir.path().join("outbox.redb")),
            Vec::new(),
            sinks::outbox::wall_clock(),
        )
        .unwrap();
        let health = Health::default();
        Parts {
            ops: Ops {
                metrics: Arc::new(Metrics::new(health.clone())),
                health,
                started: Arc::new(AtomicBool::new(true)),
                faults: Faults::default(),
                journal,
                outbox,
            },
            _dir: dir,
        }
    }

    async fn get(ops: &Ops, path: &str) -> (StatusCode, String) {
        let r = router(ops.clone())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_fatal_fault_fails_health_and_readiness_at_once() {
        let p = parts();
        assert_eq!(get(&p.ops, "/healthz").await.0, StatusCode::OK);
        assert_eq!(get(&p.ops, "/readyz").await.0, StatusCode::OK);
        p.ops
            .faults
            .fatal("thread epicenter-engine panicked: index out of range".to_string());
        let (status, body) = get(&p.ops, "/healthz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("epicenter-engine panicked"), "{body}");
        let (status, body) = get(&p.ops, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains(r#""part":"fatal""#), "{body}");
    }

    #[tokio::test]
    async fn a_condition_fails_readiness_only_while_it_holds() {
        let p = parts();
        p.ops.faults.condition(
            "checkpoint",
            Some("cannot write the checkpoint: No space left on device".to_string()),
        );
        assert_eq!(get(&p.ops, "/healthz").await.0, StatusCode::OK, "alive");
        let (status, body) = get(&p.ops, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("No space left on device"), "{body}");
        p.ops.faults.condition("checkpoint", None);
        assert_eq!(get(&p.ops, "/readyz").await.0, StatusCode::OK);
    }

    #[test]
    fn a_panic_anywhere_is_fatal() {
        let faults = Faults::default();
        faults.install_panic_hook();
        let _ = std::thread::Builder::new()
            .name("epicenter-outbox".to_string())
            .spawn(|| panic!("redb: index out of range"))
            .unwrap()
            .join();
        let reason = faults.fatal_reason().expect("fatal");
        assert!(
            reason.contains("thread epicenter-outbox panicked: redb: index out of range"),
            "{reason}"
        );
        let _ = std::panic::take_hook();
    }
}

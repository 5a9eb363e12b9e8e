//! The operational endpoints: `/healthz` (the process answers), `/readyz`
//! (rules loaded, state restored, every source connected) and `/metrics`.
//! The source routes (the Alertmanager receiver) are merged in beside them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ingest::source::Health;
use serde::Serialize;

use super::metrics::Metrics;

#[derive(Clone, Debug)]
pub(crate) struct Ops {
    pub(crate) health: Health,
    pub(crate) metrics: Arc<Metrics>,
    /// Set once rules are loaded, state restored and the pipeline runs.
    pub(crate) started: Arc<AtomicBool>,
}

pub(crate) fn router(ops: Ops) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ops)
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    pipeline: bool,
    sources: Vec<SourceReadiness>,
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
    let ready = pipeline && sources.iter().all(|s| s.connected);
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

//! The Alertmanager webhook receiver: `POST /api/v1/alertmanager`.
//!
//! Takes the v4 body exactly as Alertmanager's `webhook_config` sends it and
//! queues it, unchanged, for the pipeline (the alert decoder makes the
//! events). The answers follow what Alertmanager does with them: 200 once the
//! body is queued; 503 with `Retry-After` when the pipeline is saturated or
//! shutting down (Alertmanager retries with backoff); 400 for a body it
//! should never send again (malformed JSON, not a v4 body), with the reason;
//! 401 for a missing or wrong bearer token (`http_config.authorization`);
//! 413 for a body over the limit. Every refusal is counted by reason in the
//! source's [`SourceHealth`].
//!
//! Duplicates are expected: Alertmanager repeats notifications and HA peers
//! each deliver the same group. They are queued like any body; the decoder
//! drops a delivery of an alert already seen with the same (fingerprint,
//! startsAt, status), so a duplicate forms no new signal.

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Delivery, Intake, SourceHealth, StreamId, TrySendError};

/// Where Alertmanager posts.
pub const PATH: &str = "/api/v1/alertmanager";

/// The source name in metrics and deliveries.
pub const SOURCE: &str = "alertmanager";

/// What the receiver accepts.
#[derive(Clone)]
pub struct Settings {
    /// The bearer token Alertmanager must present; `None` accepts any caller.
    pub token: Option<String>,
    /// The largest body taken, in bytes.
    pub max_body: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token: None,
            max_body: 4 << 20,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_body", &self.max_body)
            .finish()
    }
}

#[derive(Clone)]
struct Receiver {
    /// `Bearer <token>`, as the header must read.
    expected: Option<Arc<[u8]>>,
    intake: Intake,
    health: Arc<SourceHealth>,
    stream: StreamId,
}

/// The receiver's routes, to be merged into the server's router.
pub fn router(settings: &Settings, intake: Intake, health: Arc<SourceHealth>) -> Router {
    let receiver = Receiver {
        expected: settings
            .token
            .as_ref()
            .map(|t| Arc::from(format!("Bearer {t}").into_bytes())),
        intake,
        health,
        stream: StreamId::new(SOURCE),
    };
    Router::new()
        .route(PATH, post(receive))
        .layer(DefaultBodyLimit::max(settings.max_body))
        .with_state(receiver)
}

/// The parts of a v4 body the receiver insists on; the decoder reads the rest.
#[derive(Deserialize)]
struct Body {
    version: String,
    alerts: Vec<AlertShape>,
}

#[derive(Deserialize)]
#[allow(dead_code, reason = "fields are read only to require them")]
struct AlertShape {
    status: IgnoredAny,
    labels: IgnoredAny,
    #[serde(rename = "startsAt")]
    starts_at: IgnoredAny,
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(expected) = &r.expected {
        let given = headers
            .get(header::AUTHORIZATION)
            .map_or(&[][..], HeaderValue::as_bytes);
        if !same_secret(given, expected) {
            r.health.reject("unauthorized");
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong bearer token\n",
            )
                .into_response();
        }
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            r.health.reject("too_large");
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{}\n", e.body_text()),
            )
                .into_response();
        }
        Err(e) => {
            r.health.reject("unreadable");
            return (e.status(), format!("{}\n", e.body_text())).into_response();
        }
    };
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(e) => return bad_request(&r, format!("body is not UTF-8: {e}")),
    };
    let alerts = match serde_json::from_str::<Body>(text) {
        Ok(b) if b.version == "4" => b.alerts.len(),
        Ok(b) => {
            return bad_request(
                &r,
                format!(
                    "webhook version {:?} is not supported (want \"4\")",
                    b.version
                ),
            );
        }
        Err(e) => return bad_request(&r, format!("not an Alertmanager v4 body: {e}")),
    };
    let mut delivery = Delivery::new(SOURCE, r.stream.clone(), vec![text.to_string()]);
    delivery.ordered = false;
    match r.intake.try_send(delivery) {
        Ok(()) => {
            r.health.add_records(1);
            tracing::debug!(alerts, "alertmanager body queued");
            (StatusCode::OK, "ok\n").into_response()
        }
        Err(e) => {
            let (reason, message) = match e {
                TrySendError::Full(_) => ("saturated", "pipeline saturated, retry later\n"),
                TrySendError::Closed(_) => ("shutting_down", "shutting down, retry later\n"),
            };
            r.health.reject(reason);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                message,
            )
                .into_response()
        }
    }
}

fn bad_request(r: &Receiver, reason: String) -> Response {
    r.health.reject("malformed");
    tracing::warn!(source = SOURCE, %reason, "webhook body refused");
    (StatusCode::BAD_REQUEST, reason + "\n").into_response()
}

/// Compares a presented secret with the expected one in time independent of
/// where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(given, expected).into()
}

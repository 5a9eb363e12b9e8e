//! The Alertmanager webhook receiver: `POST /api/v1/alertmanager`.
//!
//! Takes the v4 body exactly as Alertmanager's `webhook_config` sends it and
//! appends it, unchanged, to the [`Journal`], which hands it to the pipeline
//! (the alert decoder makes the events). The answers follow what
//! Alertmanager does with them: 200 once the body is on disk (a crash the
//! next instant loses nothing: the journal replays it); 503 with
//! `Retry-After` when the journal is saturated, cannot write (disk full,
//! read-only) or the service is shutting down (Alertmanager retries with
//! backoff); 400 for a body it should never send again (malformed JSON, not
//! a v4 body, no alert the decoder could read), with the reason; 401 for a
//! missing or wrong bearer token (`http_config.authorization`; the scheme is
//! case-insensitive, as HTTP says); 413 for a body over the limit. Every
//! refusal is counted by reason in the source's [`SourceHealth`].
//!
//! A body with some alerts the decoder cannot read (a `startsAt` that is no
//! time) is taken: its valid alerts are processed, the others counted and
//! logged with their fingerprint by the decoder.
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

use super::journal::AppendError;
use super::{Delivery, Journal, SourceHealth, StreamId};

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
    /// The token the `Authorization: Bearer` header must carry.
    expected: Option<Arc<str>>,
    journal: Journal,
    health: Arc<SourceHealth>,
    stream: StreamId,
}

/// The receiver's routes, to be merged into the server's router.
pub fn router(settings: &Settings, journal: Journal, health: Arc<SourceHealth>) -> Router {
    let receiver = Receiver {
        expected: settings.token.as_deref().map(Arc::from),
        journal,
        health,
        stream: StreamId::new(SOURCE),
    };
    Router::new()
        .route(PATH, post(receive))
        .layer(DefaultBodyLimit::max(settings.max_body))
        .with_state(receiver)
}

/// The parts of a v4 body the receiver insists on; the decoder reads the
/// rest, alert by alert.
#[derive(Deserialize)]
struct Body {
    version: String,
    alerts: Vec<IgnoredAny>,
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(expected) = &r.expected {
        let given = headers.get(header::AUTHORIZATION);
        if !bearer_matches(given, expected) {
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
        Ok(b) if b.version == "4" => {
            if let Err(reason) = crate::decode::readable_alerts(text) {
                return bad_request(&r, reason);
            }
            b.alerts.len()
        }
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
    match r.journal.append(delivery).await {
        Ok(seq) => {
            r.health.add_records(1);
            tracing::debug!(alerts, seq, "alertmanager body stored");
            (StatusCode::OK, "ok\n").into_response()
        }
        Err(e) => {
            let (reason, retry, message) = match e {
                AppendError::Full => (
                    "saturated",
                    "1",
                    "pipeline saturated, retry later\n".to_string(),
                ),
                AppendError::Closed => (
                    "shutting_down",
                    "1",
                    "shutting down, retry later\n".to_string(),
                ),
                AppendError::Failed(why) => (
                    "storage",
                    "5",
                    format!("cannot store the alerts durably ({why}), retry later\n"),
                ),
            };
            r.health.reject(reason);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, retry)],
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

/// Whether an `Authorization` header carries `Bearer <expected>`: the
/// scheme in any case (RFC 9110: schemes are case-insensitive), the token
/// compared in time independent of where it differs.
pub fn bearer_matches(header: Option<&HeaderValue>, expected: &str) -> bool {
    let given = header.map_or(&[][..], HeaderValue::as_bytes);
    let token = match given.iter().position(|b| *b == b' ') {
        Some(i) if given[..i].eq_ignore_ascii_case(b"bearer") => given[i + 1..].trim_ascii(),
        _ => return false,
    };
    subtle::ConstantTimeEq::ct_eq(token, expected.as_bytes()).into()
}

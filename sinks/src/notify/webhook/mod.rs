//! Generic webhooks: one JSON POST per notification.
//!
//! Every request carries `Idempotency-Key: <incident id>:<sequence>` (the
//! same on every attempt of a notification, restarts included, and
//! different for every notification: a receiver that stores the keys it has
//! seen acts once per notification however often the outbox retries), and
//! `X-Epicenter-Event: opened|updated|resolved` to route on without parsing
//! the body. With a secret, `X-Epicenter-Signature` signs the body with the
//! time ([`signature`]). Configured headers (`Authorization`) are sent too;
//! they cannot replace these.
//!
//! Two bodies ([`WebhookFormat`]): epicenter's own, the notification around
//! the incident document as `epicenter replay` prints it, or an
//! Alertmanager v4 body ([`alertmanager`]).
//!
//! Design choice: any 2xx is delivered and nothing is read back; other
//! answers are classified by status as for every notifier (`408`, `429`,
//! `5xx` worth retrying, after `Retry-After` if given; other `4xx`
//! permanent), and a timeout after the request was sent is in doubt, which
//! the idempotency key makes safe to retry.

pub mod alertmanager;
pub mod signature;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use correlate::IncidentReport;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use super::http::{classify_status, classify_transport, truncate};
use super::{DeliveryError, Event, Link, Notification, Reason, Receipt, Secret};
pub use signature::{SIGNATURE_HEADER, sign, verify_signature};

/// The header naming the notification's event.
pub const EVENT_HEADER: &str = "X-Epicenter-Event";
/// The header with [`Notification::idempotency_key`].
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The `version` of the [`WebhookFormat::Incident`] body.
pub const INCIDENT_BODY_VERSION: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Http(#[from] super::http::Error),
    #[error("webhook URL `{0}` is not an http:// or https:// URL")]
    Url(String),
    #[error("webhook header `{0}`: not a valid HTTP header name")]
    HeaderName(String),
    #[error("webhook header `{0}`: its value is not a valid HTTP header value")]
    HeaderValue(String),
    #[error("webhook header `{0}` is set by epicenter and cannot be configured")]
    ReservedHeader(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookFormat {
    /// The notification: the incident as in the replay contract, with
    /// `event`, `sequence`, `reasons` and `links`.
    #[default]
    Incident,
    /// An Alertmanager v4 webhook body, so tools that take Alertmanager's
    /// webhooks can sit behind epicenter.
    Alertmanager,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: String,
    pub format: WebhookFormat,
    /// Key of the HMAC-SHA256 signature header.
    pub secret: Option<Secret>,
    /// Extra headers (`Authorization`), values secret.
    pub headers: Vec<(String, Secret)>,
    /// The `receiver` of Alertmanager bodies.
    pub receiver: String,
    /// epicenter's own address, the `externalURL` of Alertmanager bodies.
    pub external_url: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct WebhookNotifier {
    settings: WebhookSettings,
    /// The configured headers, checked.
    extra: HeaderMap,
    client: reqwest::Client,
}

/// The [`WebhookFormat::Incident`] body.
#[derive(Debug, Serialize)]
pub struct IncidentBody<'a> {
    pub version: &'static str,
    pub event: Event,
    pub sequence: u32,
    pub reasons: &'a [Reason],
    pub links: &'a [Link],
    pub incident: &'a IncidentReport,
}

impl<'a> IncidentBody<'a> {
    pub fn of(n: &'a Notification) -> IncidentBody<'a> {
        IncidentBody {
            version: INCIDENT_BODY_VERSION,
            event: n.event,
            sequence: n.sequence,
            reasons: &n.reasons,
            links: &n.links,
            incident: &n.incident,
        }
    }
}

impl WebhookNotifier {
    pub fn new(settings: WebhookSettings) -> Result<WebhookNotifier> {
        let host = settings
            .url
            .strip_prefix("https://")
            .or_else(|| settings.url.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
            return Err(Error::Url(settings.url));
        }
        let mut extra = HeaderMap::new();
        for (name, value) in &settings.headers {
            let header =
                HeaderName::try_from(name.as_str()).map_err(|_| Error::HeaderName(name.clone()))?;
            let reserved = [
                CONTENT_TYPE.as_str(),
                IDEMPOTENCY_HEADER,
                EVENT_HEADER,
                SIGNATURE_HEADER,
            ];
            if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                return Err(Error::ReservedHeader(name.clone()));
            }
            let mut value = HeaderValue::try_from(value.expose())
                .map_err(|_| Error::HeaderValue(name.clone()))?;
            value.set_sensitive(true);
            extra.append(header, value);
        }
        let client = super::http::client(settings.timeout)?;
        Ok(WebhookNotifier {
            settings,
            extra,
            client,
        })
    }

    /// The body `n` is sent as.
    pub fn body(&self, n: &Notification) -> Result<Vec<u8>, DeliveryError> {
        let encoded = match self.settings.format {
            WebhookFormat::Incident => serde_json::to_vec(&IncidentBody::of(n)),
            WebhookFormat::Alertmanager => serde_json::to_vec(&alertmanager::message(
                n,
                &self.settings.receiver,
                self.settings.external_url.as_deref(),
            )),
        };
        encoded.map_err(|e| DeliveryError::permanent(format!("webhook: cannot encode body: {e}")))
    }

    pub async fn deliver(
        &self,
        n: &Notification,
        _receipt: Option<&Receipt>,
    ) -> Result<Receipt, DeliveryError> {
        let body = self.body(n)?;
        let mut headers = self.extra.clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(EVENT_HEADER, HeaderValue::from_static(n.event.as_str()));
        let key = n.idempotency_key();
        headers.insert(
            IDEMPOTENCY_HEADER,
            HeaderValue::try_from(key.as_str()).map_err(|_| {
                DeliveryError::permanent(format!(
                    "webhook: the idempotency key `{key}` is not a valid header value"
                ))
            })?,
        );
        if let Some(secret) = &self.settings.secret {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let value = sign(secret.expose().as_bytes(), t, &body);
            if let Ok(v) = HeaderValue::try_from(value) {
                headers.insert(SIGNATURE_HEADER, v);
            }
        }
        let sent = self
            .client
            .post(&self.settings.url)
            .headers(headers)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => {
                let e = classify_transport(&e);
                return Err(e.map_reason(|r| format!("webhook: {r}")));
            }
        };
        let status = resp.status();
        if status.is_success() {
            tracing::debug!(
                sink = "webhook",
                incident = %n.incident.id,
                sequence = n.sequence,
                event = n.event.as_str(),
                status = status.as_u16(),
                "notification delivered"
            );
            return Ok(Receipt::Sent);
        }
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        match classify_status(status, &headers, &text) {
            Some(e) => {
                Err(e.map_reason(|_| {
                    format!("webhook: HTTP {status}: {}", truncate(text.trim(), 300))
                }))
            }
            None => Ok(Receipt::Sent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, headers: Vec<(&str, &str)>) -> WebhookSettings {
        WebhookSettings {
            url: url.to_string(),
            format: WebhookFormat::Incident,
            secret: None,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), Secret::new(v)))
                .collect(),
            receiver: "epicenter".to_string(),
            external_url: None,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn settings_are_checked_at_start() {
        assert!(WebhookNotifier::new(settings("https://hooks.example/x", vec![])).is_ok());
        assert!(matches!(
            WebhookNotifier::new(settings("hooks.example/x", vec![])),
            Err(Error::Url(_))
        ));
        assert!(matches!(
            WebhookNotifier::new(settings("https://h.example", vec![("bad name", "v")])),
            Err(Error::HeaderName(_))
        ));
        assert!(matches!(
            WebhookNotifier::new(settings("https://h.example", vec![("X-Token", "a\nb")])),
            Err(Error::HeaderValue(_))
        ));
        assert!(matches!(
            WebhookNotifier::new(settings(
                "https://h.example",
                vec![("idempotency-key", "x")]
            )),
            Err(Error::ReservedHeader(_))
        ));
    }
}

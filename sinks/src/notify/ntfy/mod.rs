//! ntfy: one push notification per incident, updated in place.
//!
//! Every notification of an incident is published with the same sequence id
//! (the incident id, [`ids::sequence_id`]), so ntfy's clients replace the
//! notification instead of adding one (ntfy ≥ 2.16, "Updating + deleting
//! notifications"). The resolution is published the same way and then
//! cleared (`PUT /<topic>/<sequence id>/clear`): marked read and dismissed
//! from the drawer, still readable in the app.
//!
//! Two ways to publish, as ntfy has them: [`NtfyPublish::Headers`] posts
//! the Markdown body to `/<topic>/<sequence id>` with the fields as
//! `X-Title`, `X-Priority`, ... headers (non-ASCII values RFC 2047-encoded,
//! which ntfy decodes); [`NtfyPublish::Json`] posts one JSON document to the
//! server root. The `X-` names are used because a proxy in front of ntfy
//! (Cloudflare) sets the HTTP `Priority` header of RFC 9218, which ntfy then
//! ignores.
//!
//! Design choice: one attempt per call, as every notifier. Publishing again
//! with the same sequence id replaces the notification, so a retry of an
//! attempt that may have landed is harmless (the outbox needs no recovery
//! step); a resolution whose clear failed is published again, at low
//! priority, before the clear is retried.

pub mod blast;
mod header;
pub mod ids;
pub mod message;

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};

use super::http::{classify_status, classify_transport};
use super::{DeliveryError, Event, Notification, Receipt, Secret};
pub use ids::sequence_id;
pub use message::{MAX_ACTIONS, MESSAGE_LIMIT, NtfyMessage, ViewAction};

/// ntfy reads a JSON publication of at most twice the message limit.
pub const JSON_BODY_LIMIT: usize = 2 * MESSAGE_LIMIT;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Http(#[from] super::http::Error),
    #[error(
        "ntfy topic `{0}` is not one ntfy accepts: 1 to 64 of A-Z, a-z, 0-9, `_` and `-`, and not one of its own paths (docs, static, file, app, metrics, account, settings, signup, login, v1)"
    )]
    Topic(String),
    #[error("ntfy server `{0}` is not an http:// or https:// URL")]
    Server(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub enum NtfyAuth {
    /// An access token (`tk_...`): `Authorization: Bearer`.
    Token(Secret),
    Basic {
        user: String,
        password: Secret,
    },
}

/// How a message is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NtfyPublish {
    /// `POST /<topic>/<sequence id>` with the body as the message and
    /// `X-Title`, `X-Priority`, `X-Tags`, `X-Click`, `X-Markdown`,
    /// `X-Actions` headers (ntfy's `Title`, `Priority`, ... by their `X-`
    /// names).
    #[default]
    Headers,
    /// `POST /` with a JSON body (`topic`, `sequence_id`, `title`, ...).
    Json,
}

#[derive(Debug, Clone)]
pub struct NtfySettings {
    /// The server: `https://ntfy.sh`.
    pub server: String,
    pub topic: String,
    pub auth: Option<NtfyAuth>,
    pub publish: NtfyPublish,
    /// Tags added to every message (besides the severity's).
    pub tags: Vec<String>,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct NtfyNotifier {
    settings: NtfySettings,
    /// The server without a trailing `/`.
    base: String,
    client: reqwest::Client,
}

/// A JSON publication (ntfy's `publishMessage`).
#[derive(Debug, Serialize)]
struct JsonPublication<'a> {
    topic: &'a str,
    sequence_id: &'a str,
    title: &'a str,
    message: &'a str,
    priority: u8,
    tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    click: Option<&'a str>,
    markdown: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<JsonAction<'a>>,
}

#[derive(Debug, Serialize)]
struct JsonAction<'a> {
    action: &'a str,
    label: &'a str,
    url: &'a str,
}

/// ntfy's error document: `{"code":40101,"http":401,"error":"unauthorized","link":"..."}`.
#[derive(Debug, Deserialize)]
struct NtfyError {
    #[serde(default)]
    code: Option<u32>,
    error: String,
    #[serde(default)]
    link: Option<String>,
}

impl NtfyNotifier {
    pub fn new(settings: NtfySettings) -> Result<NtfyNotifier> {
        if !ids::is_valid_topic(&settings.topic) {
            return Err(Error::Topic(settings.topic));
        }
        let base = settings.server.trim_end_matches('/').to_string();
        let host = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"));
        if host.is_none_or(str::is_empty) {
            return Err(Error::Server(settings.server));
        }
        let client = super::http::client(settings.timeout)?;
        Ok(NtfyNotifier {
            settings,
            base,
            client,
        })
    }

    /// What `n` looks like on ntfy.
    pub fn render(&self, n: &Notification) -> NtfyMessage {
        message::render(n, &self.settings.tags, MESSAGE_LIMIT)
    }

    pub async fn deliver(
        &self,
        n: &Notification,
        receipt: Option<&Receipt>,
    ) -> Result<Receipt, DeliveryError> {
        let sid = match receipt {
            Some(Receipt::Ntfy { sequence_id }) if ids::is_valid_id(sequence_id) => {
                sequence_id.clone()
            }
            _ => ids::sequence_id(&n.incident.id),
        };
        let msg = self.render(n);
        self.publish(&msg, &sid).await?;
        let delivered = Receipt::Ntfy {
            sequence_id: sid.clone(),
        };
        tracing::debug!(
            sink = "ntfy",
            incident = %n.incident.id,
            sequence_id = %sid,
            event = n.event.as_str(),
            priority = msg.priority,
            "notification published"
        );
        if n.event == Event::Resolved {
            self.clear(&sid)
                .await
                .map_err(|e| e.with_progress(delivered.clone()))?;
            tracing::debug!(sink = "ntfy", incident = %n.incident.id, sequence_id = %sid, "notification cleared");
        }
        Ok(delivered)
    }

    async fn publish(&self, msg: &NtfyMessage, sid: &str) -> Result<(), DeliveryError> {
        let request = match self.settings.publish {
            NtfyPublish::Headers => self.header_request(msg, sid),
            NtfyPublish::Json => self.json_request(msg, sid)?,
        };
        self.send("publish", request).await
    }

    fn header_request(&self, msg: &NtfyMessage, sid: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/{}/{sid}", self.base, self.settings.topic);
        let mut req = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "text/markdown; charset=utf-8")
            .header("X-Title", header::encode(&msg.title))
            .header("X-Priority", msg.priority.to_string())
            .header("X-Tags", header::encode(&msg.tags.join(",")))
            .header("X-Markdown", "yes")
            .body(msg.message.clone());
        if let Some(click) = &msg.click {
            req = req.header("X-Click", header::encode(click));
        }
        if !msg.actions.is_empty() {
            let actions: Vec<String> = msg
                .actions
                .iter()
                .map(|a| format!("view, {}, {}", quote(&a.label), quote(&a.url)))
                .collect();
            req = req.header("X-Actions", header::encode(&actions.join("; ")));
        }
        req
    }

    fn json_request(
        &self,
        msg: &NtfyMessage,
        sid: &str,
    ) -> Result<reqwest::RequestBuilder, DeliveryError> {
        let actions = || {
            msg.actions
                .iter()
                .map(|a| JsonAction {
                    action: "view",
                    label: &a.label,
                    url: &a.url,
                })
                .collect::<Vec<_>>()
        };
        let mut message = std::borrow::Cow::Borrowed(msg.message.as_str());
        let body = loop {
            let body = to_json(&JsonPublication {
                topic: &self.settings.topic,
                sequence_id: sid,
                title: &msg.title,
                message: &message,
                priority: msg.priority,
                tags: &msg.tags,
                click: msg.click.as_deref(),
                markdown: true,
                actions: actions(),
            })?;
            if body.len() <= JSON_BODY_LIMIT {
                break body;
            }
            // JSON escaping can push a message at the limit over ntfy's
            // limit for the whole document: give the message less room.
            let over = body.len() - JSON_BODY_LIMIT;
            let room = message.len().saturating_sub(over + 16);
            if room == 0 {
                return Err(DeliveryError::permanent(format!(
                    "ntfy publish: the JSON document is over ntfy's {JSON_BODY_LIMIT} bytes without a message"
                )));
            }
            message = super::http::truncate(&message, room).into_owned().into();
        };
        Ok(self
            .client
            .post(format!("{}/", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(body))
    }

    async fn clear(&self, sid: &str) -> Result<(), DeliveryError> {
        let url = format!("{}/{}/{sid}/clear", self.base, self.settings.topic);
        self.send("clear", self.client.put(url)).await
    }

    async fn send(&self, op: &str, req: reqwest::RequestBuilder) -> Result<(), DeliveryError> {
        let req = match &self.settings.auth {
            Some(NtfyAuth::Token(token)) => req.bearer_auth(token.expose()),
            Some(NtfyAuth::Basic { user, password }) => {
                req.basic_auth(user, Some(password.expose()))
            }
            None => req,
        };
        let resp = req.send().await.map_err(|e| {
            let e = classify_transport(&e);
            e.map_reason(|reason| format!("ntfy {op}: {reason}"))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        let Some(e) = classify_status(status, &headers, &body) else {
            return Ok(());
        };
        let detail = match serde_json::from_str::<NtfyError>(&body) {
            Ok(err) => {
                let mut s = err.error;
                if let Some(code) = err.code {
                    s.push_str(&format!(" (ntfy error {code}"));
                    if let Some(link) = err.link.filter(|l| !l.is_empty()) {
                        s.push_str(&format!(", {link}"));
                    }
                    s.push(')');
                }
                s
            }
            Err(_) => super::http::truncate(body.trim(), 300).into_owned(),
        };
        let hint = if status == reqwest::StatusCode::NOT_FOUND {
            " (updating notifications by sequence id needs ntfy 2.16 or later)"
        } else {
            ""
        };
        Err(e.map_reason(|_| format!("ntfy {op}: HTTP {status}: {detail}{hint}")))
    }
}

fn to_json(doc: &JsonPublication<'_>) -> Result<String, DeliveryError> {
    serde_json::to_string(doc)
        .map_err(|e| DeliveryError::permanent(format!("ntfy publish: cannot encode JSON: {e}")))
}

/// A field of the `X-Actions` header: quoted when it holds a separator
/// (ntfy's parser takes `"..."` and `'...'`).
fn quote(s: &str) -> String {
    if !s.contains([',', ';', '"', '\'']) {
        return s.to_string();
    }
    if s.contains('"') {
        if s.contains('\'') {
            return format!("\"{}\"", s.replace('"', "'"));
        }
        return format!("'{s}'");
    }
    format!("\"{s}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(topic: &str, server: &str) -> NtfySettings {
        NtfySettings {
            server: server.to_string(),
            topic: topic.to_string(),
            auth: None,
            publish: NtfyPublish::Headers,
            tags: vec![],
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn settings_are_checked_as_ntfy_would() {
        assert!(NtfyNotifier::new(settings("alerts", "https://ntfy.sh/")).is_ok());
        assert!(matches!(
            NtfyNotifier::new(settings("a/b", "https://ntfy.sh")),
            Err(Error::Topic(_))
        ));
        assert!(matches!(
            NtfyNotifier::new(settings("alerts", "ntfy.sh")),
            Err(Error::Server(_))
        ));
    }

    #[test]
    fn action_fields_are_quoted_when_they_hold_separators() {
        assert_eq!(quote("Runbook"), "Runbook");
        assert_eq!(quote("a, b"), "\"a, b\"");
        assert_eq!(quote("say \"hi\""), "'say \"hi\"'");
        assert_eq!(quote("it's \"x\""), "\"it's 'x'\"");
    }
}

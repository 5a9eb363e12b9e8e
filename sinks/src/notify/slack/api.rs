//! The Slack Web API calls the notifier makes, and what Slack's answers
//! mean for a retry.
//!
//! Slack answers nearly everything with HTTP 200 and
//! `{"ok": false, "error": "<code>"}`, so the HTTP status alone says little:
//! the code decides. Rate limits (`ratelimited`, HTTP 429 with
//! `Retry-After`) and Slack's own transient failures are worth a retry;
//! a bad token, a missing scope or channel, a refused payload are not, and
//! the error names the method and the code so a person can fix the config.
//! `internal_error` and `fatal_error` are documented as "some aspect of the
//! operation may have succeeded": for a call that posts, they are *in
//! doubt*, like a timeout after the request was sent. A call that replaces
//! (`chat.update`) or reads is never in doubt: repeating it is harmless.
//!
//! Writes go as JSON (`application/json; charset=utf-8`, the token as a
//! bearer header); reads as GET with query parameters, the only form every
//! read method accepts.

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use crate::notify::http;
use crate::notify::{DeliveryError, Secret};

/// Codes worth a retry: Slack is busy or briefly down.
const TRANSIENT: [&str; 6] = [
    "ratelimited",
    "rate_limited",
    "message_limit_exceeded",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
];

/// Codes after which the operation may have been carried out.
const MAYBE_DONE: [&str; 2] = ["internal_error", "fatal_error"];

/// Whether a call posts something (a retry after an unclear answer could
/// post it twice) or can be repeated harmlessly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Effect {
    Posts,
    Idempotent,
}

/// A failed call: Slack's error code when it gave one (callers act on a
/// few: `message_not_found`, `thread_not_found`, `missing_scope`), and
/// what it means for the delivery.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) code: Option<String>,
    pub(super) error: Box<DeliveryError>,
}

impl Failure {
    fn new(code: Option<String>, error: DeliveryError) -> Failure {
        Failure {
            code,
            error: Box::new(error),
        }
    }

    pub(super) fn into_error(self) -> DeliveryError {
        *self.error
    }

    pub(super) fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// The Web API at `base` (`https://slack.com/api`) with a bot token.
#[derive(Clone, Copy, Debug)]
pub(super) struct Api<'a> {
    pub(super) client: &'a reqwest::Client,
    pub(super) base: &'a str,
    pub(super) token: &'a Secret,
}

impl Api<'_> {
    fn url(&self, method: &str) -> Result<Url, Failure> {
        let raw = format!("{}/{method}", self.base.trim_end_matches('/'));
        Url::parse(&raw).map_err(|e| {
            Failure::new(
                None,
                DeliveryError::permanent(format!("slack: bad api_url `{}`: {e}", self.base)),
            )
        })
    }

    /// A write method with a JSON body.
    pub(super) async fn post(
        &self,
        method: &str,
        body: &Value,
        effect: Effect,
    ) -> Result<Value, Failure> {
        let url = self.url(method)?;
        let bytes = serde_json::to_vec(body).map_err(|e| {
            Failure::new(
                None,
                DeliveryError::permanent(format!("slack {method}: cannot encode: {e}")),
            )
        })?;
        let sent = self
            .client
            .post(url)
            .bearer_auth(self.token.expose())
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(bytes)
            .send()
            .await;
        answer(method, effect, sent).await
    }

    /// A read method with query parameters.
    pub(super) async fn get(
        &self,
        method: &str,
        params: &[(&str, &str)],
    ) -> Result<Value, Failure> {
        let mut url = self.url(method)?;
        url.query_pairs_mut().extend_pairs(params);
        let sent = self
            .client
            .get(url)
            .bearer_auth(self.token.expose())
            .send()
            .await;
        answer(method, Effect::Idempotent, sent).await
    }
}

async fn answer(
    method: &str,
    effect: Effect,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<Value, Failure> {
    let response = match sent {
        Ok(r) => r,
        Err(e) => return Err(transport(method, effect, &e)),
    };
    let status = response.status();
    let headers = response.headers().clone();
    match response.text().await {
        Ok(body) => classify(method, effect, status, &headers, &body),
        // The answer was cut off: the call was received, its outcome unknown.
        Err(e) => Err(transport(method, effect, &e)),
    }
}

fn transport(method: &str, effect: Effect, e: &reqwest::Error) -> Failure {
    let error = http::classify_transport(e);
    let in_doubt =
        effect == Effect::Posts && matches!(error, DeliveryError::Retry { in_doubt: true, .. });
    Failure::new(
        None,
        reword(error, &format!("slack {method}: "), Some(in_doubt)),
    )
}

/// What an answer of Slack's means. Pure, for tests.
pub(super) fn classify(
    method: &str,
    effect: Effect,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> Result<Value, Failure> {
    let prefix = format!("slack {method}: ");
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Failure::new(
            Some("ratelimited".into()),
            DeliveryError::Retry {
                reason: format!("{prefix}ratelimited (HTTP 429)"),
                retry_after: http::retry_after(headers),
                in_doubt: false,
                progress: None,
            },
        ));
    }
    let json: Option<Value> = serde_json::from_str(body).ok();
    if let Some(v) = json.filter(|v| v.get("ok").is_some_and(Value::is_boolean)) {
        if v["ok"] == Value::Bool(true) {
            if let Some(w) = v.get("warning").and_then(Value::as_str) {
                tracing::debug!(sink = "slack", method, warning = w, "slack warned");
            }
            return Ok(v);
        }
        let code = v["error"].as_str().unwrap_or("unknown_error").to_string();
        let reason = format!("{prefix}{code}{}", detail(&code, &v));
        let error = if TRANSIENT.contains(&code.as_str()) {
            DeliveryError::Retry {
                reason,
                retry_after: http::retry_after(headers),
                in_doubt: false,
                progress: None,
            }
        } else if MAYBE_DONE.contains(&code.as_str()) {
            DeliveryError::Retry {
                reason,
                retry_after: http::retry_after(headers),
                in_doubt: effect == Effect::Posts,
                progress: None,
            }
        } else {
            DeliveryError::permanent(reason)
        };
        return Err(Failure::new(Some(code), error));
    }
    // Not Slack's JSON: a proxy or load balancer answered.
    let posts = effect == Effect::Posts;
    let error = match http::classify_status(status, headers, body) {
        Some(e) => {
            let maybe_done = posts && matches!(status.as_u16(), 500 | 502 | 504);
            let in_doubt = matches!(e, DeliveryError::Retry { .. }) && maybe_done;
            reword(e, &prefix, Some(in_doubt))
        }
        None => DeliveryError::Retry {
            reason: format!(
                "{prefix}unexpected answer (HTTP {status}): {}",
                http::truncate(body.trim(), 200)
            ),
            retry_after: None,
            in_doubt: posts,
            progress: None,
        },
    };
    Err(Failure::new(None, error))
}

/// What Slack said beyond the code: the scope it wanted, the block it
/// refused.
fn detail(code: &str, v: &Value) -> String {
    if code == "missing_scope" {
        let needed = v["needed"].as_str().unwrap_or("?");
        let provided = v["provided"].as_str().unwrap_or("?");
        return format!(" (needed: {needed}; the token has: {provided})");
    }
    let mut parts: Vec<&str> = Vec::new();
    for list in [&v["errors"], &v["response_metadata"]["messages"]] {
        if let Some(items) = list.as_array() {
            parts.extend(items.iter().filter_map(Value::as_str));
        }
    }
    if parts.is_empty() {
        return String::new();
    }
    format!(": {}", http::truncate(&parts.join("; "), 400))
}

/// The same error with its reason prefixed and, if given, its in-doubt flag.
fn reword(e: DeliveryError, prefix: &str, in_doubt: Option<bool>) -> DeliveryError {
    match e {
        DeliveryError::Retry {
            reason,
            retry_after,
            in_doubt: was,
            progress,
        } => DeliveryError::Retry {
            reason: format!("{prefix}{reason}"),
            retry_after,
            in_doubt: in_doubt.unwrap_or(was),
            progress,
        },
        DeliveryError::Permanent { reason, progress } => DeliveryError::Permanent {
            reason: format!("{prefix}{reason}"),
            progress,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::header::RETRY_AFTER;

    use super::*;

    fn slack(code: &str, effect: Effect) -> DeliveryError {
        let body = format!(r#"{{"ok":false,"error":"{code}"}}"#);
        classify(
            "chat.postMessage",
            effect,
            StatusCode::OK,
            &HeaderMap::new(),
            &body,
        )
        .err()
        .map(Failure::into_error)
        .unwrap_or_else(|| DeliveryError::permanent("accepted"))
    }

    #[test]
    fn slack_codes_split_into_retry_and_permanent() {
        for code in [
            "ratelimited",
            "rate_limited",
            "service_unavailable",
            "request_timeout",
            "internal_error",
            "fatal_error",
        ] {
            assert!(
                matches!(slack(code, Effect::Posts), DeliveryError::Retry { .. }),
                "{code}"
            );
        }
        for code in [
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "token_revoked",
            "missing_scope",
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "invalid_blocks",
            "invalid_arguments",
            "msg_too_long",
            "no_text",
            "cant_update_message",
            "some_new_code",
        ] {
            let e = slack(code, Effect::Posts);
            assert!(e.is_permanent(), "{code}");
            let reason = e.to_string();
            assert!(
                reason.contains("chat.postMessage") && reason.contains(code),
                "{reason}"
            );
        }
    }

    #[test]
    fn only_posting_calls_are_in_doubt() {
        for code in ["internal_error", "fatal_error"] {
            assert!(matches!(
                slack(code, Effect::Posts),
                DeliveryError::Retry { in_doubt: true, .. }
            ));
            assert!(matches!(
                slack(code, Effect::Idempotent),
                DeliveryError::Retry {
                    in_doubt: false,
                    ..
                }
            ));
        }
        assert!(matches!(
            slack("ratelimited", Effect::Posts),
            DeliveryError::Retry {
                in_doubt: false,
                ..
            }
        ));
        let gateway = classify(
            "chat.postMessage",
            Effect::Posts,
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            "<html>bad gateway</html>",
        );
        assert!(matches!(
            gateway.err().map(Failure::into_error),
            Some(DeliveryError::Retry { in_doubt: true, .. })
        ));
        let busy = classify(
            "chat.postMessage",
            Effect::Posts,
            StatusCode::SERVICE_UNAVAILABLE,
            &HeaderMap::new(),
            "busy",
        );
        assert!(matches!(
            busy.err().map(Failure::into_error),
            Some(DeliveryError::Retry {
                in_doubt: false,
                ..
            })
        ));
    }

    #[test]
    fn http_429_waits_as_told() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "30".parse().expect("header"));
        let f = classify(
            "chat.update",
            Effect::Idempotent,
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            r#"{"ok":false,"error":"ratelimited"}"#,
        )
        .expect_err("an error");
        assert!(f.is("ratelimited"));
        assert!(matches!(
            *f.error,
            DeliveryError::Retry { retry_after: Some(d), .. } if d == Duration::from_secs(30)
        ));
    }

    #[test]
    fn errors_say_what_slack_refused() {
        let body = r#"{"ok":false,"error":"invalid_blocks","errors":["must be less than 151 characters [json-pointer:/blocks/0/text/text]"]}"#;
        let f = classify(
            "chat.postMessage",
            Effect::Posts,
            StatusCode::OK,
            &HeaderMap::new(),
            body,
        )
        .expect_err("an error");
        assert!(
            f.error
                .to_string()
                .contains("json-pointer:/blocks/0/text/text"),
            "{}",
            f.error
        );
        let body = r#"{"ok":false,"error":"missing_scope","needed":"channels:history","provided":"chat:write"}"#;
        let f = classify(
            "conversations.history",
            Effect::Idempotent,
            StatusCode::OK,
            &HeaderMap::new(),
            body,
        )
        .expect_err("an error");
        assert!(
            f.error.to_string().contains("needed: channels:history"),
            "{}",
            f.error
        );
    }

    #[test]
    fn success_is_ok_true() {
        let v = classify(
            "chat.postMessage",
            Effect::Posts,
            StatusCode::OK,
            &HeaderMap::new(),
            r#"{"ok":true,"channel":"C1","ts":"1.000001"}"#,
        )
        .expect("ok");
        assert_eq!(v["ts"], "1.000001");
        let odd = classify(
            "chat.postMessage",
            Effect::Posts,
            StatusCode::OK,
            &HeaderMap::new(),
            "ok",
        );
        assert!(matches!(
            odd.err().map(Failure::into_error),
            Some(DeliveryError::Retry { in_doubt: true, .. })
        ));
    }
}

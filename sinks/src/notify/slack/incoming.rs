//! Incoming webhooks: one POST of `{text, blocks}` per notification.
//!
//! A webhook cannot update what it posted, so every notification is its
//! own message, and its answer is plain text: `200 ok`, or an error code
//! with a 4xx status (`400 invalid_payload`, `400 invalid_blocks`,
//! `403 action_prohibited`, `404 channel_not_found`, `404 no_service`,
//! `410 channel_is_archived`: permanent), `429` (retry after
//! `Retry-After`) or a 5xx (retry). The URL is the credential: errors never
//! show it.

use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use super::blocks::Message;
use crate::notify::http;
use crate::notify::{DeliveryError, Secret};

pub(super) async fn post(
    client: &reqwest::Client,
    url: &Secret,
    message: &Message,
) -> Result<(), DeliveryError> {
    let body = json!({
        "text": message.text,
        "blocks": message.blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    });
    let bytes = serde_json::to_vec(&body).map_err(|e| {
        DeliveryError::permanent(format!("slack incoming webhook: cannot encode: {e}"))
    })?;
    let sent = client
        .post(url.expose())
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(bytes)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => return Err(prefixed(http::classify_transport(&e.without_url()))),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    match http::classify_status(status, &headers, &text) {
        None => Ok(()),
        Some(e) => Err(prefixed(e)),
    }
}

fn prefixed(e: DeliveryError) -> DeliveryError {
    let prefix = "slack incoming webhook: ";
    match e {
        DeliveryError::Retry {
            reason,
            retry_after,
            in_doubt,
            progress,
        } => DeliveryError::Retry {
            reason: format!("{prefix}{reason}"),
            retry_after,
            in_doubt,
            progress,
        },
        DeliveryError::Permanent { reason, progress } => DeliveryError::Permanent {
            reason: format!("{prefix}{reason}"),
            progress,
        },
    }
}

//! Slack: one message per incident, always showing its latest state, and a
//! thread under it telling what changed.
//!
//! **Web API** (a bot token): the opening is a `chat.postMessage`; every
//! later notification replaces that message with `chat.update` (the
//! channel shows each incident once, as it is now) and adds a small thread
//! reply saying what changed; the resolution's reply is also broadcast to
//! the channel. Each message and reply carries Slack *message metadata*
//! (`event_type: epicenter_incident`, with the incident id and the
//! notification's sequence): that is how [`SlackNotifier::recover`] finds
//! out, after an attempt whose answer was lost, whether it landed, so a
//! retry never posts twice. A message someone deleted is posted again.
//!
//! **Incoming webhook**: post only; every notification is its own message
//! (updates and resolutions compact), and nothing can be recovered.
//!
//! Scopes the bot token needs: `chat:write` (post and update; the bot must
//! be a member of the channel), and for recovery `channels:history` (public
//! channel) or `groups:history` (private channel). If the channel is
//! configured by name rather than id (`C0123456789`), recovery also needs
//! `channels:read` / `groups:read` to find its id, or it is skipped. Without
//! the history scopes the notifier still delivers; recovery is skipped with
//! a warning (an in-doubt retry may then post twice).
//!
//! One attempt per call: retries, backoff and rate limits are the outbox's.

mod api;
pub mod blocks;
mod incoming;
pub mod kit;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use self::api::{Api, Effect, Failure};
use super::{DeliveryError, Event, Notification, Receipt, Secret};

/// The `event_type` of the metadata on every message and reply.
pub const METADATA_EVENT_TYPE: &str = "epicenter_incident";

/// Pages of `conversations.history` read looking for a message (newest
/// first). The message looked for was posted by a recent attempt, so it is
/// near the top; the bound keeps recovery cheap on a busy channel (and
/// Slack limits history reads of non-Marketplace apps to 15 messages a
/// request and one request a minute).
const HISTORY_PAGES: usize = 5;
/// Pages of `conversations.replies` read looking for a thread reply.
const REPLY_PAGES: usize = 5;
/// Pages of `conversations.list` read looking for a channel by name.
const LIST_PAGES: usize = 20;
const PAGE: &str = "100";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Http(#[from] super::http::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where Slack messages go.
#[derive(Debug, Clone)]
pub enum SlackTarget {
    /// The Web API with a bot token: `chat.postMessage` on open,
    /// `chat.update` of the same message as it changes, a thread reply per
    /// notified update.
    Api {
        token: Secret,
        /// Channel id (`C0123456789`) or name.
        channel: String,
        /// `https://slack.com/api` unless testing.
        api_url: String,
    },
    /// An incoming webhook: post only, one message per notification.
    Webhook { url: Secret },
}

#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub target: SlackTarget,
    /// Put before the opening message of critical incidents (`<!here>`),
    /// and before the update that makes one critical.
    pub mention: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct SlackNotifier {
    settings: SlackSettings,
    client: reqwest::Client,
    /// The configured channel's id, learned from Slack when it was
    /// configured by name (history reads take ids only).
    channel_id: Mutex<Option<String>>,
}

impl SlackNotifier {
    pub fn new(settings: SlackSettings) -> Result<SlackNotifier> {
        let client = super::http::client(settings.timeout)?;
        Ok(SlackNotifier {
            settings,
            client,
            channel_id: Mutex::new(None),
        })
    }

    /// Whether [`SlackNotifier::recover`] can tell if an in-doubt attempt
    /// landed (Web API only).
    pub fn can_recover(&self) -> bool {
        matches!(self.settings.target, SlackTarget::Api { .. })
    }

    /// One attempt to deliver `n`. `receipt` is what the last delivered
    /// notification of this incident left, or the `progress` of a failed
    /// attempt of this one.
    pub async fn deliver(
        &self,
        n: &Notification,
        receipt: Option<&Receipt>,
    ) -> Result<Receipt, DeliveryError> {
        let mention = self.settings.mention.as_deref();
        match &self.settings.target {
            SlackTarget::Webhook { url } => {
                incoming::post(&self.client, url, &blocks::standalone(n, mention)).await?;
                tracing::debug!(
                    sink = "slack",
                    incident = %n.incident.id,
                    sequence = n.sequence,
                    "posted through the incoming webhook"
                );
                Ok(Receipt::Sent)
            }
            SlackTarget::Api {
                token,
                channel,
                api_url,
            } => {
                let api = Api {
                    client: &self.client,
                    base: api_url,
                    token,
                };
                match receipt {
                    Some(Receipt::Slack {
                        channel: at,
                        ts,
                        replied,
                    }) => self.update(api, channel, at, ts, *replied, n).await,
                    _ => self.post(api, channel, n).await,
                }
            }
        }
    }

    /// After an attempt that may have landed (in doubt), whether `n` was
    /// delivered, and the receipt it left:
    /// - no receipt (the posting of the message): the newest message in the
    ///   channel's recent history whose metadata names this incident, with
    ///   `replied` = the sequence that message shows. If that is lower than
    ///   `n.sequence`, the message exists but `n` did not land: deliver `n`
    ///   with this receipt (it updates that message).
    /// - a receipt with `replied < n.sequence` (the thread reply): the
    ///   reply with this sequence in the thread, with `replied = n.sequence`;
    ///   if the message is gone, a replacement posted for this incident.
    ///
    /// `Ok(None)`: not found, deliver again. Without the history scopes the
    /// answer is `Ok(None)` with a warning. An `Err` means Slack could not
    /// be asked now (rate limited, down): ask again later.
    pub async fn recover(
        &self,
        n: &Notification,
        receipt: Option<&Receipt>,
    ) -> Result<Option<Receipt>, DeliveryError> {
        let SlackTarget::Api {
            token,
            channel,
            api_url,
        } = &self.settings.target
        else {
            return Ok(None);
        };
        let api = Api {
            client: &self.client,
            base: api_url,
            token,
        };
        match receipt {
            Some(
                r @ Receipt::Slack {
                    channel: at,
                    ts,
                    replied,
                },
            ) => {
                if *replied >= n.sequence {
                    return Ok(Some(r.clone()));
                }
                match find_reply(api, at, ts, n).await {
                    Ok(true) => Ok(Some(Receipt::Slack {
                        channel: at.clone(),
                        ts: ts.clone(),
                        replied: n.sequence,
                    })),
                    Ok(false) => Ok(None),
                    // The message was deleted: this attempt may have posted
                    // its replacement.
                    Err(f) if f.is("thread_not_found") => {
                        self.find_message(api, channel, n, Some(ts)).await
                    }
                    Err(f) => history_failed(f, n),
                }
            }
            _ => self.find_message(api, channel, n, None).await,
        }
    }

    /// Posts the incident's message.
    async fn post(
        &self,
        api: Api<'_>,
        channel: &str,
        n: &Notification,
    ) -> Result<Receipt, DeliveryError> {
        let msg = blocks::incident(n, self.settings.mention.as_deref());
        let body = json!({
            "channel": channel,
            "text": msg.text,
            "blocks": msg.blocks,
            "unfurl_links": false,
            "unfurl_media": false,
            "metadata": metadata(n),
        });
        let answer = api
            .post("chat.postMessage", &body, Effect::Posts)
            .await
            .map_err(Failure::into_error)?;
        let (Some(at), Some(ts)) = (answer["channel"].as_str(), answer["ts"].as_str()) else {
            return Err(DeliveryError::Retry {
                reason: "slack chat.postMessage: ok, but no channel or ts in the answer".into(),
                retry_after: None,
                in_doubt: true,
                progress: None,
            });
        };
        if !is_channel_id(channel) {
            self.remember_channel(at);
        }
        tracing::debug!(
            sink = "slack",
            incident = %n.incident.id,
            sequence = n.sequence,
            channel = at,
            ts,
            "posted the incident's message"
        );
        Ok(Receipt::Slack {
            channel: at.to_string(),
            ts: ts.to_string(),
            replied: n.sequence,
        })
    }

    /// Replaces the message with the incident as it is now, then replies in
    /// its thread with what changed (unless this notification's reply is
    /// already there).
    async fn update(
        &self,
        api: Api<'_>,
        channel: &str,
        at: &str,
        ts: &str,
        replied: u32,
        n: &Notification,
    ) -> Result<Receipt, DeliveryError> {
        let progress = Receipt::Slack {
            channel: at.to_string(),
            ts: ts.to_string(),
            replied,
        };
        if replied > n.sequence {
            // A later notification is already shown: replacing it with this
            // one would show an older state.
            tracing::debug!(
                sink = "slack",
                incident = %n.incident.id,
                sequence = n.sequence,
                replied,
                "skipped: a later notification is already delivered"
            );
            return Ok(progress);
        }
        let mention = self.settings.mention.as_deref();
        let msg = blocks::incident(n, mention);
        let body = json!({
            "channel": at,
            "ts": ts,
            "text": msg.text,
            "blocks": msg.blocks,
            "metadata": metadata(n),
        });
        match api.post("chat.update", &body, Effect::Idempotent).await {
            Ok(_) => {}
            Err(f) if f.is("message_not_found") => {
                tracing::warn!(
                    sink = "slack",
                    incident = %n.incident.id,
                    channel = at,
                    ts,
                    "the incident's message is gone (deleted?): posting a new one"
                );
                return self.post(api, channel, n).await;
            }
            Err(f) => return Err(f.into_error()),
        }
        if replied >= n.sequence {
            return Ok(progress);
        }
        let reply = blocks::reply(n, mention);
        let body = json!({
            "channel": at,
            "thread_ts": ts,
            "text": reply.text,
            "blocks": reply.blocks,
            "reply_broadcast": n.event == Event::Resolved,
            "unfurl_links": false,
            "unfurl_media": false,
            "metadata": metadata(n),
        });
        match api.post("chat.postMessage", &body, Effect::Posts).await {
            Ok(_) => {
                tracing::debug!(
                    sink = "slack",
                    incident = %n.incident.id,
                    sequence = n.sequence,
                    channel = at,
                    ts,
                    "updated the incident's message and replied in its thread"
                );
                Ok(Receipt::Slack {
                    channel: at.to_string(),
                    ts: ts.to_string(),
                    replied: n.sequence,
                })
            }
            // Deleted between the update and the reply: the retry's update
            // finds it gone and posts anew.
            Err(f) if f.is("thread_not_found") => Err(DeliveryError::Retry {
                reason: f.error.to_string(),
                retry_after: None,
                in_doubt: false,
                progress: Some(progress),
            }),
            Err(f) => Err(f.into_error().with_progress(progress)),
        }
    }

    /// The newest top-level message of this incident in the configured
    /// channel, skipping `not_ts` (a message known to be gone).
    async fn find_message(
        &self,
        api: Api<'_>,
        channel: &str,
        n: &Notification,
        not_ts: Option<&str>,
    ) -> Result<Option<Receipt>, DeliveryError> {
        let id = match self.channel_id(api, channel).await {
            Ok(Some(id)) => id,
            Ok(None) => {
                tracing::warn!(
                    sink = "slack",
                    channel,
                    "cannot look for a message: no channel of that name; configure the channel id"
                );
                return Ok(None);
            }
            Err(f) => return history_failed(f, n),
        };
        let params = [
            ("channel", id.as_str()),
            ("include_all_metadata", "true"),
            ("limit", PAGE),
        ];
        let found = pages(api, "conversations.history", &params, HISTORY_PAGES, |m| {
            let ts = m["ts"].as_str()?;
            let top_level = m["thread_ts"].as_str().is_none_or(|t| t == ts);
            if !top_level || not_ts == Some(ts) {
                return None;
            }
            let sequence = ours(m, &n.incident.id)?;
            Some((ts.to_string(), sequence))
        })
        .await;
        match found {
            Ok(Some((ts, sequence))) => {
                tracing::info!(
                    sink = "slack",
                    incident = %n.incident.id,
                    sequence = n.sequence,
                    found = sequence,
                    ts,
                    "recovered the incident's message"
                );
                Ok(Some(Receipt::Slack {
                    channel: id,
                    ts,
                    replied: sequence,
                }))
            }
            Ok(None) => Ok(None),
            Err(f) => history_failed(f, n),
        }
    }

    /// The configured channel's id: as configured, learned, or looked up by
    /// name.
    async fn channel_id(&self, api: Api<'_>, channel: &str) -> Result<Option<String>, Failure> {
        if is_channel_id(channel) {
            return Ok(Some(channel.to_string()));
        }
        if let Some(id) = self
            .channel_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(Some(id));
        }
        let name = channel.trim_start_matches('#');
        let params = [
            ("types", "public_channel,private_channel"),
            ("exclude_archived", "true"),
            ("limit", "1000"),
        ];
        let found = pages(api, "conversations.list", &params, LIST_PAGES, |c| {
            (c["name"].as_str() == Some(name))
                .then(|| c["id"].as_str().map(str::to_string))
                .flatten()
        })
        .await?;
        if let Some(id) = &found {
            self.remember_channel(id);
        }
        Ok(found)
    }

    fn remember_channel(&self, id: &str) {
        *self.channel_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.to_string());
    }
}

/// Whether the reply of `n` is in the thread of `ts`.
async fn find_reply(
    api: Api<'_>,
    channel: &str,
    ts: &str,
    n: &Notification,
) -> Result<bool, Failure> {
    let params = [
        ("channel", channel),
        ("ts", ts),
        ("include_all_metadata", "true"),
        ("limit", PAGE),
    ];
    let found = pages(api, "conversations.replies", &params, REPLY_PAGES, |m| {
        let is_reply = m["ts"].as_str() != Some(ts);
        (is_reply && ours(m, &n.incident.id) == Some(n.sequence)).then_some(())
    })
    .await?;
    Ok(found.is_some())
}

/// Reads up to `max` pages of a cursor-paginated read method and returns
/// the first item `visit` picks. A failure of the first page is the
/// caller's to handle; of a later one, the search stops there (better a
/// possible duplicate than a recovery that never finishes).
async fn pages<T>(
    api: Api<'_>,
    method: &str,
    params: &[(&str, &str)],
    max: usize,
    mut visit: impl FnMut(&Value) -> Option<T>,
) -> Result<Option<T>, Failure> {
    let list = if method == "conversations.list" {
        "channels"
    } else {
        "messages"
    };
    let mut cursor = String::new();
    for page in 0..max {
        let mut query: Vec<(&str, &str)> = params.to_vec();
        if !cursor.is_empty() {
            query.push(("cursor", &cursor));
        }
        let answer = match api.get(method, &query).await {
            Ok(v) => v,
            Err(f) if page == 0 => return Err(f),
            Err(f) => {
                tracing::warn!(
                    sink = "slack",
                    method,
                    pages = page,
                    error = %f.error,
                    "stopped searching"
                );
                return Ok(None);
            }
        };
        if let Some(found) = answer[list]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(&mut visit)
        {
            return Ok(Some(found));
        }
        match answer["response_metadata"]["next_cursor"].as_str() {
            Some(next) if !next.is_empty() => cursor = next.to_string(),
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// A history read failed: without the scopes, recovery is skipped (a
/// warning says which); otherwise Slack could not be asked now.
fn history_failed(f: Failure, n: &Notification) -> Result<Option<Receipt>, DeliveryError> {
    if f.is("missing_scope") {
        tracing::warn!(
            sink = "slack",
            incident = %n.incident.id,
            error = %f.error,
            "cannot check whether an in-doubt message landed: the token needs channels:history \
             (groups:history for a private channel) and, for a channel given by name, \
             channels:read / groups:read; retrying may post it twice"
        );
        return Ok(None);
    }
    Err(f.into_error())
}

/// The sequence of a message or reply of this incident, from its metadata.
fn ours(m: &Value, incident_id: &str) -> Option<u32> {
    let meta = &m["metadata"];
    if meta["event_type"].as_str() != Some(METADATA_EVENT_TYPE) {
        return None;
    }
    let payload = &meta["event_payload"];
    if payload["incident_id"].as_str() != Some(incident_id) {
        return None;
    }
    let sequence = &payload["sequence"];
    sequence
        .as_u64()
        .or_else(|| sequence.as_str().and_then(|s| s.parse().ok()))
        .and_then(|s| u32::try_from(s).ok())
}

/// The metadata every message and reply carries.
fn metadata(n: &Notification) -> Value {
    json!({
        "event_type": METADATA_EVENT_TYPE,
        "event_payload": {
            "incident_id": n.incident.id,
            "sequence": n.sequence,
            "rule": n.incident.rule,
            "status": n.incident.status,
            "event": n.event.as_str(),
        },
    })
}

/// Whether `s` is a conversation id (`C0123456789`, `G...` for old private
/// channels, `D...` for direct messages) rather than a name.
fn is_channel_id(s: &str) -> bool {
    s.len() >= 9
        && s.starts_with(['C', 'G', 'D'])
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_and_names_are_told_apart() {
        assert!(is_channel_id("C0123456789"));
        assert!(is_channel_id("G01ABCDEF2"));
        assert!(!is_channel_id("incidents"));
        assert!(!is_channel_id("#incidents"));
        assert!(!is_channel_id("C-ops"));
        assert!(!is_channel_id("Cops"));
    }

    #[test]
    fn metadata_names_the_incident_and_reads_back() {
        let m = json!({"metadata": {"event_type": METADATA_EVENT_TYPE,
            "event_payload": {"incident_id": "abc", "sequence": 4}}});
        assert_eq!(ours(&m, "abc"), Some(4));
        assert_eq!(ours(&m, "abd"), None);
        let other = json!({"metadata": {"event_type": "deploy", "event_payload": {"incident_id": "abc", "sequence": 4}}});
        assert_eq!(ours(&other, "abc"), None);
        assert_eq!(ours(&json!({"text": "no metadata"}), "abc"), None);
    }
}

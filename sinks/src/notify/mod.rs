//! Notifications for people: Slack, ntfy and webhooks.
//!
//! The change stream says everything that happens to an incident; a person
//! wants far less: the opening, the updates that change what they would do
//! (new kinds of effect, a blast radius that grew past a threshold, a higher
//! severity), and the resolution. [`policy`] decides which changes become a
//! [`Notification`] and throttles updates per incident; [`route`] picks the
//! receivers; each notifier renders a notification for its service and keeps a
//! [`Receipt`] (the Slack message's `ts`, the ntfy sequence id) so the next
//! notification of the same incident updates that message in place.
//!
//! Notifiers never retry and never sleep: they make one attempt and say how
//! it went ([`DeliveryError`] tells whether a retry can help, how long the
//! service asked to wait, and whether the attempt may have landed). Retries,
//! backoff, rate limits and idempotency across restarts are the durable
//! outbox's (`crate::outbox`).

pub mod http;
pub mod ntfy;
pub mod policy;
pub mod route;
pub mod slack;
pub mod webhook;

use std::fmt;
use std::time::Duration;

use correlate::{IncidentReport, Severity};
use serde::{Deserialize, Serialize};

/// What a notification tells about its incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// The first notification of an incident.
    Opened,
    /// It changed in a way a person cares about (see [`Reason`]).
    Updated,
    /// It ended: resolved, or folded into another incident.
    Resolved,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Opened => "opened",
            Event::Updated => "updated",
            Event::Resolved => "resolved",
        }
    }
}

/// Why a notification is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    Opened,
    /// Effects of kinds (signals) not seen before in this incident.
    NewEffects {
        signals: Vec<String>,
    },
    /// The number of affected entities crossed a threshold.
    BlastRadius {
        from: usize,
        to: usize,
    },
    SeverityRaised {
        from: Severity,
        to: Severity,
    },
    /// Another incident was folded into this one.
    Absorbed {
        id: String,
        rule: String,
    },
    Resolved,
    /// This incident was folded into another, which carries on.
    MergedInto {
        id: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Opened => f.write_str("opened"),
            Reason::NewEffects { signals } => {
                write!(f, "new kinds of effect: {}", signals.join(", "))
            }
            Reason::BlastRadius { from, to } => {
                write!(f, "blast radius grew from {from} to {to} entities")
            }
            Reason::SeverityRaised { from, to } => {
                write!(
                    f,
                    "severity raised from {} to {}",
                    from.as_str(),
                    to.as_str()
                )
            }
            Reason::Absorbed { id, rule } => write!(f, "absorbed incident {id} ({rule})"),
            Reason::Resolved => f.write_str("resolved"),
            Reason::MergedInto { id } => write!(f, "merged into incident {id}"),
        }
    }
}

/// A link shown with a notification (runbook, dashboard, the incident in
/// epicenter's API), rendered from the configured templates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub title: String,
    pub url: String,
}

/// One notification: the incident as it is now, and why it is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub event: Event,
    /// 1 for the opening, then +1 for each notification of this incident:
    /// the idempotency key of this notification is `(incident id, sequence)`.
    pub sequence: u32,
    pub reasons: Vec<Reason>,
    pub links: Vec<Link>,
    pub incident: IncidentReport,
}

impl Notification {
    /// `<incident id>:<sequence>`: the same for every attempt, restarts
    /// included, and different for every notification.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.incident.id, self.sequence)
    }
}

/// What a notifier keeps about an incident it told someone about, so the
/// next notification updates the same message instead of sending another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Receipt {
    /// A Slack message (Web API): where it is, and the last notification
    /// whose thread reply was posted.
    Slack {
        channel: String,
        ts: String,
        #[serde(default)]
        replied: u32,
    },
    /// An ntfy notification, updated and cleared by its sequence id.
    Ntfy { sequence_id: String },
    /// Delivered; nothing to update in place (webhooks, Slack incoming
    /// webhooks).
    Sent,
}

/// One failed attempt, and whether another can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// A timeout, a connection failure, a 5xx, a 408 or a 429: retry later,
    /// after `retry_after` if the service said so.
    #[error("{reason}")]
    Retry {
        reason: String,
        retry_after: Option<Duration>,
        /// The request may have been processed (a timeout after it was
        /// sent): before sending it again, ask the service whether it landed
        /// ([`Notifier::recover`]).
        in_doubt: bool,
        /// What was achieved before the failure (a message posted, its
        /// thread reply not): kept so the retry does not repeat it.
        progress: Option<Receipt>,
    },
    /// Will fail the same way again (a refused payload, a bad token, a
    /// missing channel): dead-lettered at once.
    #[error("{reason}")]
    Permanent {
        reason: String,
        progress: Option<Receipt>,
    },
}

impl DeliveryError {
    pub fn retry(reason: impl Into<String>) -> DeliveryError {
        DeliveryError::Retry {
            reason: reason.into(),
            retry_after: None,
            in_doubt: false,
            progress: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> DeliveryError {
        DeliveryError::Permanent {
            reason: reason.into(),
            progress: None,
        }
    }

    /// The same error, carrying what was achieved before it.
    pub fn with_progress(self, receipt: Receipt) -> DeliveryError {
        match self {
            DeliveryError::Retry {
                reason,
                retry_after,
                in_doubt,
                ..
            } => DeliveryError::Retry {
                reason,
                retry_after,
                in_doubt,
                progress: Some(receipt),
            },
            DeliveryError::Permanent { reason, .. } => DeliveryError::Permanent {
                reason,
                progress: Some(receipt),
            },
        }
    }

    /// The same error with its reason rewritten (a notifier naming itself
    /// and the service's own error text).
    pub fn map_reason(self, f: impl FnOnce(&str) -> String) -> DeliveryError {
        match self {
            DeliveryError::Retry {
                reason,
                retry_after,
                in_doubt,
                progress,
            } => DeliveryError::Retry {
                reason: f(&reason),
                retry_after,
                in_doubt,
                progress,
            },
            DeliveryError::Permanent { reason, progress } => DeliveryError::Permanent {
                reason: f(&reason),
                progress,
            },
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Permanent { .. })
    }

    pub fn progress(&self) -> Option<&Receipt> {
        match self {
            DeliveryError::Retry { progress, .. } | DeliveryError::Permanent { progress, .. } => {
                progress.as_ref()
            }
        }
    }
}

/// A configured value that must not be printed (tokens, passwords, HMAC
/// keys): `Debug` shows only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Every notifier epicenter has: one list the compiler checks.
#[derive(Debug)]
pub enum Notifier {
    Slack(slack::SlackNotifier),
    Ntfy(ntfy::NtfyNotifier),
    Webhook(webhook::WebhookNotifier),
}

impl Notifier {
    /// The kind, for metrics and logs: `slack`, `ntfy`, `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            Notifier::Slack(_) => "slack",
            Notifier::Ntfy(_) => "ntfy",
            Notifier::Webhook(_) => "webhook",
        }
    }

    /// One attempt to deliver `n`; `receipt` is what the last delivered
    /// notification of this incident left (None for the first).
    pub async fn deliver(
        &self,
        n: &Notification,
        receipt: Option<&Receipt>,
    ) -> Result<Receipt, DeliveryError> {
        match self {
            Notifier::Slack(s) => s.deliver(n, receipt).await,
            Notifier::Ntfy(s) => s.deliver(n, receipt).await,
            Notifier::Webhook(s) => s.deliver(n, receipt).await,
        }
    }

    /// After an attempt that may have landed (a timeout, a crash): whether
    /// `n` was in fact delivered, and the receipt it would have left.
    /// `Ok(None)`: not delivered (or the service cannot tell; then the
    /// retry is only as idempotent as the service allows).
    pub async fn recover(
        &self,
        n: &Notification,
        receipt: Option<&Receipt>,
    ) -> Result<Option<Receipt>, DeliveryError> {
        match self {
            Notifier::Slack(s) => s.recover(n, receipt).await,
            // Publishing again with the same sequence id replaces the
            // notification: a retry is idempotent by itself.
            Notifier::Ntfy(_) => Ok(None),
            // Webhook receivers deduplicate by the Idempotency-Key header.
            Notifier::Webhook(_) => Ok(None),
        }
    }

    /// Whether a retry after an in-doubt attempt needs [`Notifier::recover`]
    /// first (a second attempt would otherwise post a second message).
    pub fn needs_recovery(&self) -> bool {
        matches!(self, Notifier::Slack(s) if s.can_recover())
    }
}

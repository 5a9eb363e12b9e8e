//! Slack. (Placeholder: the notifier is being written; see the issue.)

use std::time::Duration;

use super::{DeliveryError, Notification, Receipt, Secret};

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
    /// Put before the opening message of critical incidents (`<!here>`).
    pub mention: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct SlackNotifier {
    settings: SlackSettings,
    #[allow(dead_code)]
    client: reqwest::Client,
}

impl SlackNotifier {
    pub fn new(settings: SlackSettings) -> Result<SlackNotifier> {
        let client = super::http::client(settings.timeout)?;
        Ok(SlackNotifier { settings, client })
    }

    pub fn can_recover(&self) -> bool {
        matches!(self.settings.target, SlackTarget::Api { .. })
    }

    pub async fn deliver(
        &self,
        _n: &Notification,
        _receipt: Option<&Receipt>,
    ) -> Result<Receipt, DeliveryError> {
        Err(DeliveryError::permanent("slack: not implemented yet"))
    }

    pub async fn recover(
        &self,
        _n: &Notification,
        _receipt: Option<&Receipt>,
    ) -> Result<Option<Receipt>, DeliveryError> {
        Ok(None)
    }
}

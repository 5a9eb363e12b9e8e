//! Generic webhooks. (Placeholder: the notifier is being written; see the issue.)

use std::time::Duration;

use super::{DeliveryError, Notification, Receipt, Secret};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Http(#[from] super::http::Error),
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
    #[allow(dead_code)]
    settings: WebhookSettings,
    #[allow(dead_code)]
    client: reqwest::Client,
}

impl WebhookNotifier {
    pub fn new(settings: WebhookSettings) -> Result<WebhookNotifier> {
        let client = super::http::client(settings.timeout)?;
        Ok(WebhookNotifier { settings, client })
    }

    pub async fn deliver(
        &self,
        _n: &Notification,
        _receipt: Option<&Receipt>,
    ) -> Result<Receipt, DeliveryError> {
        Err(DeliveryError::permanent("webhook: not implemented yet"))
    }
}

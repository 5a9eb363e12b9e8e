//! ntfy. (Placeholder: the notifier is being written; see the issue.)

use std::time::Duration;

use super::{DeliveryError, Notification, Receipt, Secret};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Http(#[from] super::http::Error),
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
    /// `Title`, `Priority`, `Tags`, `Click`, `Markdown` headers.
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
    #[allow(dead_code)]
    settings: NtfySettings,
    #[allow(dead_code)]
    client: reqwest::Client,
}

impl NtfyNotifier {
    pub fn new(settings: NtfySettings) -> Result<NtfyNotifier> {
        let client = super::http::client(settings.timeout)?;
        Ok(NtfyNotifier { settings, client })
    }

    pub async fn deliver(
        &self,
        _n: &Notification,
        _receipt: Option<&Receipt>,
    ) -> Result<Receipt, DeliveryError> {
        Err(DeliveryError::permanent("ntfy: not implemented yet"))
    }
}

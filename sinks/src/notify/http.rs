//! The HTTP client every notifier shares, and what an HTTP answer means for
//! a retry: 2xx delivered; 408, 429 and 5xx worth retrying (after
//! `Retry-After` when given); other 4xx permanent. A timeout after the
//! request was sent is *in doubt*: the service may have acted on it.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::DeliveryError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The longest `Retry-After` honoured; a service asking for more is retried
/// after this, so one bad header cannot park an outbox for a day.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// A client with rustls (ring), a per-request timeout and epicenter's
/// user agent. Installs ring as the process's TLS provider if none is.
pub fn client(timeout: Duration) -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("epicenter/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// `Retry-After` as seconds (`120`) or an HTTP date, capped.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
            let now = jiff::Timestamp::now();
            Duration::try_from(when.duration_since(now)).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What a non-success answer means; `None` for a success.
pub fn classify_status(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> Option<DeliveryError> {
    if status.is_success() {
        return None;
    }
    let reason = format!("HTTP {status}: {}", truncate(body.trim(), 300));
    let retryable = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error();
    Some(if retryable {
        DeliveryError::Retry {
            reason,
            retry_after: retry_after(headers),
            in_doubt: false,
            progress: None,
        }
    } else {
        DeliveryError::permanent(reason)
    })
}

/// What a transport failure means: a request that may have reached the
/// service (timed out waiting for the answer, connection cut mid-way) is
/// in doubt; one that never connected is not.
pub fn classify_transport(e: &reqwest::Error) -> DeliveryError {
    let in_doubt = !e.is_connect() && !e.is_builder();
    if e.is_builder() {
        return DeliveryError::permanent(format!("bad request: {e}"));
    }
    DeliveryError::Retry {
        reason: error_chain(e),
        retry_after: None,
        in_doubt,
        progress: None,
    }
}

/// An error with its sources: reqwest's own message hides the cause.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// At most `max` bytes of `s`, on a character boundary, with `…` if cut.
pub fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_caps_them() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "86400".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(RETRY_AFTER, "soon".parse().expect("header"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn statuses_split_into_retryable_and_permanent() {
        let h = HeaderMap::new();
        assert!(classify_status(StatusCode::OK, &h, "").is_none());
        for s in [429, 408, 500, 502, 503] {
            let e = classify_status(StatusCode::from_u16(s).expect("status"), &h, "x");
            assert!(matches!(e, Some(DeliveryError::Retry { .. })), "{s}");
        }
        for s in [400, 401, 403, 404, 413] {
            let e = classify_status(StatusCode::from_u16(s).expect("status"), &h, "x");
            assert!(matches!(e, Some(DeliveryError::Permanent { .. })), "{s}");
        }
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("héllo wörld", 100), "héllo wörld");
        let t = truncate("ééééé", 6);
        assert!(t.len() <= 6 && t.ends_with('…'), "{t}");
    }
}

//! The webhook signature: `X-Epicenter-Signature: t=<unix seconds>,v1=<hex>`.
//!
//! `v1` is the hex HMAC-SHA256, keyed with the configured secret, of
//! `<t>.<body>`: the timestamp is signed with the body, so a receiver that
//! checks it against its clock refuses a captured request replayed later.
//! The scheme is Stripe's, which receivers already know how to check; a
//! receiver accepts the request if any `v1` matches (several are sent while
//! a secret is rotated). [`verify_signature`] is the check, for receivers
//! written in Rust and for tests.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Epicenter-Signature";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], t: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value signing `body` at `t` (unix seconds).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(tag))
}

/// Whether `header` signs `body` with `secret` at a time within
/// `tolerance_secs` of `now_unix`. The MACs are compared in constant time;
/// a header that does not parse (no `t`, two `t`, no `v1`) fails.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> bool {
    let mut t: Option<i64> = None;
    let mut tags: Vec<&str> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            return false;
        };
        match k.trim() {
            "t" if t.is_none() => match v.trim().parse() {
                Ok(secs) => t = Some(secs),
                Err(_) => return false,
            },
            "t" => return false,
            "v1" => tags.push(v.trim()),
            _ => {}
        }
    }
    let Some(t) = t else {
        return false;
    };
    if tags.is_empty() || now_unix.abs_diff(t) > tolerance_secs.unsigned_abs() {
        return false;
    }
    let expected = mac(secret, t, body);
    let mut any = false;
    for tag in tags {
        if let Ok(bytes) = hex::decode(tag) {
            // Every candidate is checked: the time taken does not say which.
            any |= expected.clone().verify_slice(&bytes).is_ok();
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_body_and_time() {
        let body = br#"{"version":"1"}"#;
        let header = sign(b"s3cret", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify_signature(
            b"s3cret",
            &header,
            body,
            1_700_000_100,
            300
        ));
        assert!(!verify_signature(
            b"other",
            &header,
            body,
            1_700_000_100,
            300
        ));
        assert!(!verify_signature(
            b"s3cret",
            &header,
            b"{}",
            1_700_000_100,
            300
        ));
        assert!(!verify_signature(
            b"s3cret",
            &header,
            body,
            1_700_000_301,
            300
        ));
        assert!(!verify_signature(
            b"s3cret",
            &header,
            body,
            1_699_999_699,
            300
        ));
        let rotated = format!("{header},v1=00ff");
        assert!(verify_signature(
            b"s3cret",
            &rotated,
            body,
            1_700_000_000,
            300
        ));
        for bad in ["", "v1=ab", "t=1,t=1,v1=ab", "t=x,v1=ab", "garbage"] {
            assert!(!verify_signature(b"s3cret", bad, body, 1, 300), "{bad}");
        }
    }
}

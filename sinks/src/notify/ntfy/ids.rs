//! ntfy's names: topics and sequence ids.
//!
//! ntfy accepts both only as `^[-_A-Za-z0-9]{1,64}$` (its `topicRegex` and
//! `sequenceIDRegex`) and answers anything else with a 400 or a 404. The
//! sequence id of an incident is its id, which is 16 hex digits and so
//! valid as it is; an id that is not (longer, or with other characters) is
//! mapped to a valid one that still reads like it and cannot collide: the
//! cleaned prefix and a hash of the whole id.

use sha2::{Digest, Sha256};

/// The longest topic or sequence id ntfy accepts.
pub const MAX_ID: usize = 64;

/// Topic names ntfy keeps for its own paths (`disallowedTopics`).
const RESERVED_TOPICS: [&str; 10] = [
    "docs", "static", "file", "app", "metrics", "account", "settings", "signup", "login", "v1",
];

/// Whether ntfy takes `s` as a topic or a sequence id.
pub fn is_valid_id(s: &str) -> bool {
    (1..=MAX_ID).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether ntfy takes `topic` for publishing: valid, and not one of the
/// names it keeps for itself.
pub fn is_valid_topic(topic: &str) -> bool {
    is_valid_id(topic) && !RESERVED_TOPICS.contains(&topic)
}

/// The sequence id of the ntfy notification of incident `incident_id`.
pub fn sequence_id(incident_id: &str) -> String {
    if is_valid_id(incident_id) {
        return incident_id.to_string();
    }
    let digest = Sha256::digest(incident_id.as_bytes());
    let hash = hex::encode(&digest[..8]);
    let cleaned: String = incident_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_ID - hash.len() - 1)
        .collect();
    if cleaned.is_empty() {
        hash
    } else {
        format!("{cleaned}-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_ids_are_sequence_ids_and_others_are_made_valid() {
        assert_eq!(sequence_id("892aeef396b372f7"), "892aeef396b372f7");
        for id in ["", "inc:42/a b", "ключ", &"x".repeat(65), &"y".repeat(500)] {
            let sid = sequence_id(id);
            assert!(is_valid_id(&sid), "{id} -> {sid}");
            assert_eq!(sid, sequence_id(id), "stable");
        }
        assert_ne!(sequence_id("a:b"), sequence_id("a/b"), "no collision");
    }

    #[test]
    fn topics_follow_ntfy() {
        assert!(is_valid_topic("epicenter_alerts-1"));
        for bad in ["", "a/b", "docs", "ä", &"t".repeat(65)] {
            assert!(!is_valid_topic(bad), "{bad}");
        }
    }
}

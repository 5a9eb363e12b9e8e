//! Stable 64-bit hashes for occurrence ids and state-table keys.
//!
//! `FxHasher` fed byte slices with explicit separators: the same input gives
//! the same id in every run and on every platform (no random seed), which
//! the replay contract needs for byte-identical output.

use std::hash::Hasher;

use rustc_hash::FxHasher;

/// What a hash identifies; keeps ids of different tables apart.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Domain {
    K8sEvent = 1,
    Alert = 2,
    AlertDelivery = 3,
    Pod = 4,
    Node = 5,
    PodName = 6,
    Claim = 7,
    Volume = 8,
    PodClaims = 9,
    Object = 10,
}

/// Hash of `parts` (each followed by a 0xff separator, a byte no UTF-8 text
/// contains) in `domain`.
pub(crate) fn stable_hash(domain: Domain, parts: &[&[u8]]) -> u64 {
    let mut h = FxHasher::default();
    h.write_u8(domain as u8);
    for part in parts {
        h.write(part);
        h.write_u8(0xff);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_parts_and_domains() {
        let ab = stable_hash(Domain::Pod, &[b"ab", b"c"]);
        assert_ne!(ab, stable_hash(Domain::Pod, &[b"a", b"bc"]));
        assert_ne!(ab, stable_hash(Domain::Node, &[b"ab", b"c"]));
        assert_eq!(ab, stable_hash(Domain::Pod, &[b"ab", b"c"]));
    }
}

//! A literal prefilter for the message regexes of one source.
//!
//! Almost every record is noise, and almost every noise record is a log line
//! that no rule matches. Each message regex usually requires a literal (its
//! prefix `listen tcp`, its suffix `no space left on device`); the required
//! literals of all of a source's regexes go into one Aho-Corasick automaton,
//! and a single pass over a message says which regexes can possibly match.
//! Only those run. A regex with no usable literal is always a candidate.

use aho_corasick::{AhoCorasick, MatchKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor, Seq};

/// Literals per automaton: up to this many, `is_match` runs the vectorised
/// (Teddy) search, several times faster than the automaton's byte-at-a-time
/// scan it falls back to beyond it. A pack with more literals gets several
/// automatons, each a vectorised pass.
const PACKED: usize = 48;

/// Literals shorter than this are too common to be worth filtering on.
const MIN_LITERAL: usize = 3;
/// More patterns than this and candidate sets no longer fit the mask.
pub(crate) const MAX_PATTERNS: usize = 128;

/// The regexes that may match a message, as a bit per slot.
pub(crate) type Candidates = u128;

#[derive(Debug)]
pub(crate) struct Prefilter {
    /// Automatons of at most [`PACKED`] literals each, and for each of
    /// their patterns the regex slots that require it (a literal several
    /// regexes share is one pattern).
    automatons: Vec<(AhoCorasick, Vec<Candidates>)>,
    /// Slots with no literal to filter on: always candidates.
    always: Candidates,
}

/// The literals any match of `pattern` must contain, if it has a usable set.
fn required_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::parse(pattern).ok()?;
    let usable = |prefix: bool| -> Option<Seq> {
        let kind = if prefix {
            ExtractKind::Prefix
        } else {
            ExtractKind::Suffix
        };
        let mut seq = Extractor::new().kind(kind).extract(&hir);
        if prefix {
            seq.optimize_for_prefix_by_preference();
        } else {
            seq.optimize_for_suffix_by_preference();
        }
        (seq.is_finite() && seq.min_literal_len().is_some_and(|n| n >= MIN_LITERAL)).then_some(seq)
    };
    let seq = usable(true).or_else(|| usable(false))?;
    Some(
        seq.literals()?
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect(),
    )
}

impl Prefilter {
    /// Builds the prefilter for `patterns` (slot i is `patterns[i]`).
    /// `None` when there are more patterns than a candidate mask holds.
    pub(crate) fn new(patterns: &[&str]) -> Option<Prefilter> {
        if patterns.len() > MAX_PATTERNS {
            return None;
        }
        let mut by_literal: std::collections::BTreeMap<Vec<u8>, Candidates> =
            std::collections::BTreeMap::new();
        let mut always: Candidates = 0;
        for (slot, p) in patterns.iter().enumerate() {
            match required_literals(p) {
                Some(lits) => {
                    for l in lits {
                        *by_literal.entry(l).or_default() |= 1 << slot;
                    }
                }
                None => always |= 1 << slot,
            }
        }
        let entries: Vec<(Vec<u8>, Candidates)> = by_literal.into_iter().collect();
        let mut automatons = Vec::new();
        for chunk in entries.chunks(PACKED) {
            let (literals, slots_of): (Vec<&Vec<u8>>, Vec<Candidates>) =
                chunk.iter().map(|(l, s)| (l, *s)).unzip();
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(literals)
                .ok()?;
            automatons.push((ac, slots_of));
        }
        Some(Prefilter { automatons, always })
    }

    /// The slots whose regex may match `message`.
    pub(crate) fn candidates(&self, message: &str) -> Candidates {
        let mut found = self.always;
        // Most messages hold no literal at all: `is_match` answers that with
        // the automaton's vectorised prefilter; the overlapping scan, which
        // cannot use it, runs only when something is there.
        for (ac, slots_of) in &self.automatons {
            if ac.is_match(message) {
                for m in ac.find_overlapping_iter(message) {
                    found |= slots_of[m.pattern().as_usize()];
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_prefixes_or_suffixes_and_falls_back_to_always() {
        let f = Prefilter::new(&[
            r"listen (?:tcp|udp)[46]? \S*:(?P<port>\d+): bind: address already in use",
            r"(?P<path>/[^\s:]+): no space left on device",
            r"\d+\s+\w+",
        ])
        .expect("small set");
        assert_eq!(
            f.always, 0b100,
            "no literal of 3 bytes is required by the third"
        );
        assert_eq!(
            f.candidates("listen tcp 0.0.0.0:80: bind: address already in use"),
            0b101
        );
        assert_eq!(
            f.candidates("write /data/x: no space left on device"),
            0b110
        );
        assert_eq!(f.candidates("GET / 200"), 0b100);
    }
}

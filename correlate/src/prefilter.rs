//! A literal prefilter for the message regexes of one source.
//!
//! Almost every record is noise, and almost every noise record is a log line
//! that no rule matches. Each message regex requires some literals: any match
//! contains at least one of them. The literals of all of a source's regexes
//! are searched for in two stages:
//!
//! 1. a vectorised (Teddy) search over every literal, which rejects a
//!    message that holds none of them in one pass a few instructions per
//!    byte (`aho_corasick::packed`);
//! 2. on the few messages that hold one, an overlapping Aho-Corasick scan
//!    from the first literal found says which regexes can match.
//!
//! Only those regexes run. A regex with no usable literal is always a
//! candidate.
//!
//! The literals are chosen for rarity, not for the regex engine's own
//! prefilter: regex-syntax's literal optimisation shortens literals to few,
//! short ones (`https?://` becomes `http`), which are common words in logs.
//! Here each part of a pattern offers its literals (the whole pattern's
//! prefixes and suffixes, each piece of a concatenation, each branch of an
//! alternation), cut to [`LITERAL_BYTES`], and the set whose shortest literal
//! is longest wins.

use aho_corasick::{AhoCorasick, Input, MatchKind, packed};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, HirKind};

/// Literals are cut to this many bytes: long enough to be rare, short
/// enough that the branches of an alternation share literals.
const LITERAL_BYTES: usize = 12;
/// Literals shorter than this are too common to be worth filtering on.
const MIN_LITERAL: usize = 3;
/// A literal set larger than this is no longer a cheap filter.
const MAX_SET: usize = 16;
/// Literals per vectorised searcher: Teddy takes up to 64 with AVX2, fewer
/// without; balanced chunks of at most this many suit both.
const PACKED: usize = 48;
/// More patterns than this and candidate sets no longer fit the mask.
pub(crate) const MAX_PATTERNS: usize = 128;

/// The regexes that may match a message, as a bit per slot.
pub(crate) type Candidates = u128;

/// A set of literals one of which every match contains.
type Literals = Vec<Vec<u8>>;

#[derive(Debug)]
pub(crate) struct Prefilter {
    /// Stage 1: vectorised searchers over all literals, at most [`PACKED`]
    /// each. Empty when the machine has no Teddy: stage 2 then runs alone.
    rejecters: Vec<packed::Searcher>,
    /// Stage 2: every literal, for the overlapping scan.
    literals: AhoCorasick,
    /// For each literal, the regex slots that require it.
    slots_of: Vec<Candidates>,
    /// Slots with no literal to filter on: always candidates.
    always: Candidates,
}

/// How good a literal set is as a filter: its shortest literal (up to the
/// cut), then fewer literals.
fn quality(set: &Literals) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = set.iter().map(Vec::len).min().unwrap_or(0);
    (shortest, std::cmp::Reverse(set.len()))
}

/// Sorts, removes duplicates and literals that contain another (if the
/// longer occurs so does the shorter), and rejects sets that filter badly.
fn usable(mut set: Literals) -> Option<Literals> {
    set.sort();
    set.dedup();
    if set.is_empty() || set.iter().any(|l| l.len() < MIN_LITERAL) {
        return None;
    }
    let contains = |long: &[u8], short: &[u8]| {
        long.len() > short.len() && long.windows(short.len()).any(|w| w == short)
    };
    let minimal: Literals = set
        .iter()
        .filter(|l| !set.iter().any(|s| contains(l, s)))
        .cloned()
        .collect();
    (minimal.len() <= MAX_SET).then_some(minimal)
}

/// The prefixes or suffixes of every match of `hir`, cut to
/// [`LITERAL_BYTES`], when that set is finite and usable.
fn ends(hir: &Hir, kind: ExtractKind) -> Option<Literals> {
    let prefix = matches!(kind, ExtractKind::Prefix);
    let mut seq = Extractor::new().kind(kind).extract(hir);
    if prefix {
        seq.keep_first_bytes(LITERAL_BYTES);
    } else {
        seq.keep_last_bytes(LITERAL_BYTES);
    }
    usable(
        seq.literals()?
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect(),
    )
}

/// The best literal set every match of `hir` contains one of, if any.
fn required(hir: &Hir) -> Option<Literals> {
    let mut options: Vec<Literals> = Vec::new();
    options.extend(ends(hir, ExtractKind::Prefix));
    options.extend(ends(hir, ExtractKind::Suffix));
    match hir.kind() {
        HirKind::Capture(c) => options.extend(required(&c.sub)),
        HirKind::Repetition(r) if r.min >= 1 => options.extend(required(&r.sub)),
        // A match of the whole contains a match of every piece.
        HirKind::Concat(pieces) => options.extend(pieces.iter().filter_map(required)),
        // A match of the whole is a match of some branch.
        HirKind::Alternation(branches) => {
            let union: Option<Literals> =
                branches
                    .iter()
                    .map(required)
                    .try_fold(Vec::new(), |mut all, b| {
                        all.extend(b?);
                        Some(all)
                    });
            options.extend(union.and_then(usable));
        }
        _ => {}
    }
    // The first of equals wins: the whole pattern's ends over its pieces.
    options.into_iter().rev().max_by_key(quality)
}

/// The literals any match of `pattern` must contain, if it has a usable set.
fn required_literals(pattern: &str) -> Option<Literals> {
    required(&regex_syntax::parse(pattern).ok()?)
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
        let (literals, slots_of): (Vec<Vec<u8>>, Vec<Candidates>) = by_literal.into_iter().unzip();
        let chunks = literals.len().div_ceil(PACKED).max(1);
        let per_chunk = literals.len().div_ceil(chunks).max(1);
        let rejecters: Option<Vec<packed::Searcher>> = literals
            .chunks(per_chunk)
            .map(|chunk| packed::Config::new().builder().extend(chunk).build())
            .collect();
        let literals = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&literals)
            .ok()?;
        Some(Prefilter {
            rejecters: rejecters.unwrap_or_default(),
            literals,
            slots_of,
            always,
        })
    }

    /// The slots whose regex may match `message`.
    pub(crate) fn candidates(&self, message: &str) -> Candidates {
        let mut found = self.always;
        // Where the first literal starts: no literal starts before it.
        let from = if self.rejecters.is_empty() {
            0
        } else {
            match self
                .rejecters
                .iter()
                .filter_map(|r| r.find(message))
                .map(|m| m.start())
                .min()
            {
                Some(start) => start,
                None => return found,
            }
        };
        let input = Input::new(message).span(from..message.len());
        for m in self.literals.find_overlapping_iter(input) {
            found |= self.slots_of[m.pattern().as_usize()];
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literals(pattern: &str) -> Option<Vec<String>> {
        required_literals(pattern).map(|set| {
            set.into_iter()
                .map(|l| String::from_utf8(l).expect("ascii"))
                .collect()
        })
    }

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

    #[test]
    fn prefers_rare_literals_to_the_regex_engines_short_ones() {
        // regex-syntax would filter on `http`, common in any access log.
        assert_eq!(
            literals(r"https?://[a-z.]+:\d+/: (?P<error>connection refused|i/o timeout)"),
            Some(vec![" i/o timeout".into(), "tion refused".into()])
        );
        // Each branch of an alternation brings its own rarest end.
        assert_eq!(
            literals(r"(?P<e>/apis?/\S*: net/http: TLS handshake timeout|leader election lost)"),
            Some(vec!["hake timeout".into(), "lection lost".into()])
        );
        // Inside a concatenation, the piece with the longest literals.
        assert_eq!(
            literals(r"(?:\S+|x): x509: (?:certificate signed by|unknown authority) \d+"),
            Some(vec!["certificate ".into(), "unknown auth".into()])
        );
        assert_eq!(literals(r"[a-z]+ \d+"), None);
    }

    /// Every string value in a JSON or YAML document.
    fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }

    fn files(dir: &std::path::Path, suffix: &str, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                files(&path, suffix, out);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }

    /// The filter's one promise: a regex that matches is a candidate. Checked
    /// for every message regex of the shipped pack on every text of its rule
    /// tests and of the repository's scenarios (real error texts, and the
    /// noise around them).
    #[test]
    fn shipped_pack_candidates_cover_every_match() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut rule_files = Vec::new();
        files(&root.join("rules"), ".yaml", &mut rule_files);
        let (tests, packs): (Vec<_>, Vec<_>) = rule_files
            .into_iter()
            .partition(|p| p.to_string_lossy().contains(".test."));
        let sources: Vec<crate::rules::RuleSource> = packs
            .iter()
            .map(|p| crate::rules::RuleSource {
                name: p.display().to_string(),
                text: std::fs::read_to_string(p).expect("readable"),
            })
            .collect();
        let rules = crate::rules::compile(&sources).expect("the shipped pack compiles");
        let patterns: Vec<&regex::Regex> = rules
            .signals
            .iter()
            .filter_map(|s| s.message.as_ref())
            .collect();
        assert!(patterns.len() > 20, "the pack's message regexes");

        let mut texts = Vec::new();
        for test in &tests {
            let text = std::fs::read_to_string(test).expect("readable");
            let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("a YAML test file");
            strings(&doc, &mut texts);
        }
        let mut inputs = Vec::new();
        files(&root.join("tests/scenarios"), "input.ndjson", &mut inputs);
        for input in &inputs {
            for line in std::fs::read_to_string(input).expect("readable").lines() {
                let record: serde_json::Value = serde_json::from_str(line).expect("ndjson");
                strings(&record, &mut texts);
            }
        }

        // Messages, not names, times and uids; texts differing only in their
        // numbers (the scenarios' noise) filter alike.
        texts.retain(|t| t.contains(' '));
        for t in &mut texts {
            *t = t.replace(|c: char| c.is_ascii_digit(), "7");
        }
        texts.sort();
        texts.dedup();
        let mut matched = 0;
        for chunk in patterns.chunks(MAX_PATTERNS) {
            let as_str: Vec<&str> = chunk.iter().map(|r| r.as_str()).collect();
            let filter = Prefilter::new(&as_str).expect("fits the mask");
            for text in &texts {
                let candidates = filter.candidates(text);
                for (slot, regex) in chunk.iter().enumerate() {
                    if regex.is_match(text) {
                        matched += 1;
                        assert!(
                            candidates & (1 << slot) != 0,
                            "`{}` matches {text:?} but was not a candidate",
                            regex.as_str()
                        );
                    }
                }
            }
        }
        assert!(
            matched > 500,
            "the texts exercise the regexes: {matched} matches"
        );
    }

    #[test]
    fn finds_every_regex_whose_literals_overlap() {
        // The first requires ` i/o timeout`, the second `i/o timeout`: one
        // lies inside the other in a message, and both are found.
        let patterns = [r"lookup \S+ on \S+:53: i/o timeout", r"^i/o timeout"];
        let f = Prefilter::new(&patterns).expect("small set");
        assert_eq!(
            f.candidates("lookup db on 10.96.0.10:53: i/o timeout"),
            0b11
        );
        assert_eq!(f.candidates("i/o timeout"), 0b10);
        assert_eq!(f.candidates("all good"), 0);
    }
}

//! The fuzz targets (`fuzz/`, run by `cargo fuzz`) in every test run: each
//! target's corpus (`fuzz/corpus/<target>/`: the seeds from the repository's
//! own data, and every input a fuzz run found worth keeping or that once
//! crashed) is replayed through the same entry point, then mutated
//! (deterministically) for a few hundred more inputs. A quick smoke, not a
//! substitute for a fuzz run: see fuzz/README.md.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use crate::support::root;

/// Inputs beyond the corpus, per target (`EPICENTER_FUZZ_MUTATIONS`).
fn mutations() -> usize {
    std::env::var("EPICENTER_FUZZ_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

/// xorshift64*: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four of: flip a byte, insert one, delete a range, duplicate a
/// range, splice in part of another input.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.insert(at, rng.next() as u8),
            2 if !v.is_empty() => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 if !v.is_empty() => {
                let start = rng.below(v.len());
                let end = (start + 1 + rng.below(256)).min(v.len());
                let part = v[start..end].to_vec();
                let at = at.min(v.len());
                v.splice(at..at, part);
            }
            _ if !other.is_empty() => {
                let start = rng.below(other.len());
                let end = (start + 1 + rng.below(512)).min(other.len());
                let at = at.min(v.len());
                v.splice(at..at, other[start..end].iter().copied());
            }
            _ => {}
        }
    }
    v
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_fuzz_target_takes_its_corpus_and_mutations_of_it() {
    for target in epicenter::fuzzing::TARGETS {
        let files = corpus(target);
        assert!(
            files.len() >= 2,
            "fuzz/corpus/{target}: seed it (fuzz/README.md)"
        );
        for (path, bytes) in &files {
            eprintln!("{target}: {}", path.display());
            epicenter::fuzzing::run(target, bytes);
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
        for _ in 0..mutations() {
            let a = &files[rng.below(files.len())].1;
            let b = &files[rng.below(files.len())].1;
            let input = mutate(&mut rng, a, b);
            epicenter::fuzzing::run(target, &input);
        }
    }
}

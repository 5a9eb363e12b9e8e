//! `epicenter postmortem ID` against golden files: every stream the text
//! view is checked on (the shipped example, `tests/scenarios`, and the
//! shared scenarios when `../shared` is beside the checkout) is replayed
//! once into a history, then every incident replay printed gets a draft.
//! The drafts of one stream, joined by `\n---\n\n`, are
//! `tests/golden/postmortem/<name>.md`; `EPICENTER_BLESS=1` writes them.

use std::path::Path;

use crate::support::{bin, bless, golden_streams as streams, root};

/// Replays `input` into a fresh history, then drafts every incident
/// replay printed, in its order.
fn drafts(input: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let out = bin()
        .args(["replay", "--rules"])
        .arg(root().join("rules"))
        .arg("--history")
        .arg(&history)
        .arg(input)
        .output()
        .expect("run epicenter replay");
    assert!(out.status.success(), "{}: {out:?}", input.display());
    let ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    let mut parts = Vec::new();
    for id in &ids {
        let out = bin()
            .args(["postmortem", id, "--history"])
            .arg(&history)
            .output()
            .expect("run epicenter postmortem");
        assert!(out.status.success(), "{} {id}: {out:?}", input.display());
        parts.push(String::from_utf8(out.stdout).unwrap());
    }
    parts.join("\n---\n\n")
}

/// Every stream's drafts against its golden (or written when blessing);
/// every difference reported at once. The streams run on a few threads:
/// each is one replay and a draft per incident.
#[test]
fn postmortem_matches_the_goldens() {
    let golden_dir = root().join("tests/golden/postmortem");
    let streams = streams();
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get().min(8));
    let chunk = streams.len().div_ceil(threads).max(1);
    let results: Vec<(String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = streams
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(name, input)| (name.clone(), drafts(input)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut failures = Vec::new();
    for (name, got) in results {
        assert!(!got.contains('\u{1b}'), "{name}: terminal escapes");
        for line in got.lines() {
            assert_eq!(line, line.trim_end(), "{name}: trailing space");
        }
        let path = golden_dir.join(format!("{name}.md"));
        if bless() {
            std::fs::create_dir_all(&golden_dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Err(_) => failures.push(format!(
                "{name}: no golden {}; write it with EPICENTER_BLESS=1 cargo nextest run --test e2e postmortem",
                path.display()
            )),
            Ok(want) if want != got => failures.push(format!(
                "{name}: the post-mortem drafts differ from {}; if the change is intended, \
                 re-bless with EPICENTER_BLESS=1 cargo nextest run --test e2e postmortem\n\
                 --- got ---\n{got}",
                path.display()
            )),
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Goldens never hold terminal escapes, and every one belongs to a stream.
#[test]
fn postmortem_goldens_are_plain_and_none_is_stale() {
    if bless() {
        return;
    }
    let names: Vec<String> = streams().into_iter().map(|(n, _)| n).collect();
    let Ok(entries) = std::fs::read_dir(root().join("tests/golden/postmortem")) else {
        return;
    };
    for e in entries {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains('\u{1b}'),
            "{}: terminal escapes",
            path.display()
        );
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        // Shared goldens are only checked when ../shared is present.
        if !stem.starts_with("shared-") || names.iter().any(|n| n.starts_with("shared-")) {
            assert!(
                names.contains(&stem),
                "{}: no stream of that name (delete it)",
                path.display()
            );
        }
    }
}

/// An unknown incident exits 1, a missing history 2, each saying why.
#[test]
fn postmortem_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let out = bin()
        .args(["replay", "--rules"])
        .arg(root().join("rules"))
        .arg("--history")
        .arg(&history)
        .arg(root().join("tests/scenarios/nm-hpa-scale/input.ndjson"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = bin()
        .args(["postmortem", "0000000000000000", "--history"])
        .arg(&history)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no incident 0000000000000000"));

    let out = bin()
        .args(["postmortem", "0000000000000000", "--history"])
        .arg(dir.path().join("absent"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no incident history here"));
}

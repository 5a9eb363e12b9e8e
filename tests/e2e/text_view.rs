//! `epicenter replay --format text|markdown` against golden files: the
//! shipped example, every scenario under `tests/scenarios`, and the shared
//! scenarios when `../shared` is beside the checkout. The goldens are
//! `tests/golden/text/<name>.txt` and `tests/golden/markdown/<name>.md`;
//! `EPICENTER_BLESS=1` writes them from the current output instead.

use std::path::Path;

use crate::support::{bin, bless, golden_streams as streams, root};

fn render(input: &Path, format: &str) -> String {
    let out = bin()
        .args(["replay", "--format", format, "--rules"])
        .arg(root().join("rules"))
        .arg(input)
        .output()
        .expect("run epicenter");
    assert!(out.status.success(), "{}: {out:?}", input.display());
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Compares every stream's rendering with its golden (or writes them when
/// blessing); reports every difference at once.
fn check(format: &str, dir: &str, ext: &str) {
    let golden_dir = root().join("tests/golden").join(dir);
    let mut failures = Vec::new();
    for (name, input) in streams() {
        let got = render(&input, format);
        assert!(
            !got.contains('\u{1b}'),
            "{name}: colour codes when stdout is not a terminal"
        );
        for line in got.lines() {
            assert_eq!(line, line.trim_end(), "{name}: trailing space");
        }
        let path = golden_dir.join(format!("{name}.{ext}"));
        if bless() {
            std::fs::create_dir_all(&golden_dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Err(_) => failures.push(format!(
                "{name}: no golden {}; write it with EPICENTER_BLESS=1 cargo nextest run --test e2e text_view",
                path.display()
            )),
            Ok(want) if want != got => failures.push(format!(
                "{name}: --format {format} differs from {}; if the change is intended, \
                 re-bless with EPICENTER_BLESS=1 cargo nextest run --test e2e text_view\n\
                 --- got ---\n{got}",
                path.display()
            )),
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn text_matches_the_goldens() {
    check("text", "text", "txt");
}

#[test]
fn markdown_matches_the_goldens() {
    check("markdown", "markdown", "md");
}

/// Goldens never hold terminal escapes, and every one belongs to a stream.
#[test]
fn goldens_are_plain_and_none_is_stale() {
    if bless() {
        return;
    }
    let names: Vec<String> = streams().into_iter().map(|(n, _)| n).collect();
    for (dir, ext) in [("text", "txt"), ("markdown", "md")] {
        let Ok(entries) = std::fs::read_dir(root().join("tests/golden").join(dir)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains('\u{1b}'), "{}: colour codes", path.display());
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let is_ours = path.extension().is_some_and(|x| x == ext);
            // Shared goldens are only checked when ../shared is present.
            if is_ours
                && (!stem.starts_with("shared-") || names.iter().any(|n| n.starts_with("shared-")))
            {
                assert!(
                    names.contains(&stem),
                    "{}: no stream of that name (delete it)",
                    path.display()
                );
            }
        }
    }
}

/// The JSON output is still the default.
#[test]
fn json_is_the_default_format() {
    let input = root().join("examples/nfs-csi-cascade.ndjson");
    let default = bin()
        .args(["replay", "--rules"])
        .arg(root().join("rules"))
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(render(&input, "json").into_bytes(), default.stdout);
}

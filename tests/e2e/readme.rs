//! The README works on the shipped data: every `epicenter` command of its
//! `sh` blocks runs (with this build's binary first on PATH, from the
//! checkout, `/tmp/h` a fresh directory) and succeeds, and every statement
//! of its `sql` blocks returns at least one row over the history those
//! commands wrote from `examples/`. Lines that need a running `serve`, a
//! cluster or a placeholder (`...`, `[FLAGS]`) are skipped and named.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use crate::support::root;

/// The built `epicenter`.
fn bin_path() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_epicenter"))
}

/// The fenced blocks of `lang` in `text`, each as its lines.
fn blocks<'t>(text: &'t str, lang: &str) -> Vec<Vec<&'t str>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim() == format!("```{lang}") => current = Some(Vec::new()),
            Some(b) if line.trim() == "```" => {
                out.push(std::mem::take(b));
                current = None;
            }
            Some(b) => b.push(line),
            None => {}
        }
    }
    out
}

/// A command line a test can run here: `epicenter ...`, without a
/// placeholder, a running service or a cluster.
fn runnable(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("epicenter ")
        && !line.contains("...")
        && !line.contains("[--")
        && !line.contains("epicenter serve")
        && !line.contains("--config epicenter.yaml")
        && !line.contains("<id>")
}

#[test]
fn every_readme_command_and_query_works_on_the_examples() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let h = tempfile::tempdir().unwrap();
    let history = h.path().join("h");
    let bin_dir = bin_path().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    let mut skipped = Vec::new();
    for block in blocks(&readme, "sh") {
        for line in block {
            let command = line.split(" #").next().unwrap_or(line).trim();
            if !runnable(command) {
                if command.starts_with("epicenter ") {
                    skipped.push(command.to_string());
                }
                continue;
            }
            let command = command.replace("/tmp/h", &history.display().to_string());
            let out = Command::new("sh")
                .arg("-c")
                .arg(&command)
                .current_dir(root())
                .env("PATH", &path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "README: `{command}` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            if !command.contains(">/dev/null") {
                assert!(
                    !out.stdout.is_empty() || !out.stderr.is_empty(),
                    "README: `{command}` said nothing"
                );
            }
            ran += 1;
        }
    }
    assert!(
        ran >= 5,
        "only {ran} README commands ran; skipped: {skipped:?}"
    );
    assert!(history.is_dir(), "the README's replay wrote no history");

    let mut queries = 0;
    for block in blocks(&readme, "sql") {
        let text: String = block
            .iter()
            .filter(|l| !l.trim_start().starts_with("--"))
            .map(|l| format!("{l}\n"))
            .collect();
        for statement in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let out = Command::new(bin_path())
                .args(["query", "--format", "json", "--history"])
                .arg(&history)
                .arg(statement)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "README query failed:\n{statement}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rows: Vec<serde_json::Value> =
                serde_json::from_slice(&out.stdout).unwrap_or_default();
            assert!(
                !rows.is_empty(),
                "README query returns nothing on the examples:\n{statement}"
            );
            queries += 1;
        }
    }
    assert!(queries >= 3, "only {queries} README queries ran");
}

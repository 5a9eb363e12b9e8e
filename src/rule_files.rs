//! Finding and reading rule files: a directory's `*.yaml` / `*.yml` files
//! (rule tests, `*.test.yaml`, excluded), or the pack built into the binary.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use correlate::rules::{RulePack, RuleSource};

/// The shipped rule pack, compiled in so `epicenter replay FILE` works with
/// no flags and no files beside the binary.
pub(crate) const EMBEDDED: &[(&str, &str)] = &[
    ("rules/storage.yaml", include_str!("../rules/storage.yaml")),
    (
        "rules/workloads.yaml",
        include_str!("../rules/workloads.yaml"),
    ),
    ("rules/nodes.yaml", include_str!("../rules/nodes.yaml")),
    (
        "rules/scheduling.yaml",
        include_str!("../rules/scheduling.yaml"),
    ),
    ("rules/images.yaml", include_str!("../rules/images.yaml")),
    (
        "rules/consensus.yaml",
        include_str!("../rules/consensus.yaml"),
    ),
    ("rules/network.yaml", include_str!("../rules/network.yaml")),
    ("rules/alerts.yaml", include_str!("../rules/alerts.yaml")),
    (
        "rules/admission.yaml",
        include_str!("../rules/admission.yaml"),
    ),
    (
        "rules/certificates.yaml",
        include_str!("../rules/certificates.yaml"),
    ),
    (
        "rules/controlplane.yaml",
        include_str!("../rules/controlplane.yaml"),
    ),
    ("rules/quota.yaml", include_str!("../rules/quota.yaml")),
    (
        "rules/pressure.yaml",
        include_str!("../rules/pressure.yaml"),
    ),
    ("rules/cni.yaml", include_str!("../rules/cni.yaml")),
    ("rules/drains.yaml", include_str!("../rules/drains.yaml")),
    (
        "rules/dependencies.yaml",
        include_str!("../rules/dependencies.yaml"),
    ),
];

pub(crate) fn embedded() -> Vec<RuleSource> {
    EMBEDDED
        .iter()
        .map(|(name, text)| RuleSource {
            name: (*name).to_string(),
            text: (*text).to_string(),
        })
        .collect()
}

pub(crate) fn is_test_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".test.yaml") || n.ends_with(".test.yml"))
}

fn is_yaml(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// Entries whose names start with `.` are skipped, as Prometheus and most
/// config loaders do: a ConfigMap mounted as a directory holds each file
/// three times over (`name` → `..data/name` → `..<timestamp>/name`), and
/// editors leave `.name.swp`.
fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// The rule files (not tests) under `dir`, sorted, recursively.
pub(crate) fn rule_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.retain(|p| is_yaml(p) && !is_test_file(p));
    out.sort();
    Ok(out)
}

/// The rule test files under `dir`, sorted, recursively.
pub(crate) fn test_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.retain(|p| is_test_file(p));
    out.sort();
    Ok(out)
}

fn walk(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    for entry in
        std::fs::read_dir(path).with_context(|| format!("{}: cannot list", path.display()))?
    {
        let entry = entry.with_context(|| format!("{}: cannot list", path.display()))?;
        let p = entry.path();
        if is_hidden(&p) {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// The packs to compile, in order: the built-in one (unless `builtin` is
/// false), then one per directory (or file) of `dirs`.
pub(crate) fn load_packs(dirs: &[PathBuf], builtin: bool) -> Result<Vec<RulePack>> {
    if !builtin && dirs.is_empty() {
        anyhow::bail!(
            "no rules: without the built-in pack (--no-builtin, builtin_rules: false), name a rule directory (--rules DIR, rules: [DIR])"
        );
    }
    let mut packs = Vec::new();
    if builtin {
        packs.push(RulePack {
            name: correlate::rules::BUILTIN_PACK.to_string(),
            sources: embedded(),
        });
    }
    for dir in dirs {
        let mut sources = Vec::new();
        for path in rule_paths(dir)? {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("{}: cannot read rule file", path.display()))?;
            sources.push(RuleSource {
                name: path.display().to_string(),
                text,
            });
        }
        packs.push(RulePack {
            name: dir.display().to_string(),
            sources,
        });
    }
    Ok(packs)
}

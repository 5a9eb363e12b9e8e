//! `epicenter rules test`: rule test files, in the spirit of `promtool test
//! rules`. Each `*.test.yaml` lists cases: input records (NDJSON, inline or
//! in a file beside the test) and the incidents the rules must form, or
//! `expect: []` for input that must form none.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use correlate::rules::RuleSet;
use correlate::{EngineConfig, IncidentReport, Span};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::replay::Replayer;
use crate::{rule_files, rules_cmd};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    tests: Vec<Spanned<Case>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// NDJSON records, one per line.
    #[serde(default)]
    input: Option<String>,
    /// Or a file of them, relative to the test file.
    #[serde(default)]
    input_file: Option<String>,
    #[serde(default)]
    lateness: Option<String>,
    expect: Vec<Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    rule: String,
    #[serde(default)]
    root: Option<RootExpect>,
    /// Substrings the title or summary must contain (all of them).
    #[serde(default)]
    title_contains: Vec<String>,
    /// `namespace/name` (or `name`) keys that must be affected.
    #[serde(default)]
    affected: Vec<String>,
    /// Keys that must NOT be affected.
    #[serde(default)]
    not_affected: Vec<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    /// Root-cause attributes that must have these values.
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// The event time (RFC 3339) the incident must have opened at: when a
    /// rule detects, not only what.
    #[serde(default)]
    opened_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootExpect {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    name: String,
}

fn key(kind_ns: Option<&str>, name: &str) -> String {
    match kind_ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// What is wrong with `got` against `want`, if anything.
fn mismatch(want: &Expect, got: &IncidentReport) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(root) = &want.root {
        let e = &got.root_cause.entity;
        let matches = root.name == e.name
            && root.kind.as_ref().is_none_or(|k| *k == e.kind)
            && root
                .namespace
                .as_ref()
                .is_none_or(|ns| Some(ns.as_str()) == e.namespace.as_deref());
        if !matches {
            out.push(format!(
                "root is {} {}, expected {} {}",
                e.kind,
                key(e.namespace.as_deref(), &e.name),
                root.kind.as_deref().unwrap_or("*"),
                key(root.namespace.as_deref(), &root.name)
            ));
        }
    }
    for s in &want.title_contains {
        if !got.title.contains(s.as_str()) && !got.root_cause.summary.contains(s.as_str()) {
            out.push(format!("title {:?} does not contain {s:?}", got.title));
        }
    }
    let affected: Vec<String> = got
        .affected
        .iter()
        .map(|a| key(a.entity.namespace.as_deref(), &a.entity.name))
        .collect();
    for k in &want.affected {
        if !affected.contains(k) {
            out.push(format!(
                "{k} is not affected (affected: {})",
                affected.join(", ")
            ));
        }
    }
    for k in &want.not_affected {
        if affected.contains(k) {
            out.push(format!("{k} must not be affected"));
        }
    }
    if let Some(s) = &want.status {
        let got_s = serde_json::to_value(got.status).unwrap_or_default();
        if got_s.as_str() != Some(s.as_str()) {
            out.push(format!("status is {got_s}, expected {s}"));
        }
    }
    if let Some(want_at) = &want.opened_at {
        match correlate::EventTime::parse_rfc3339(want_at) {
            Some(t) if t == got.opened_at => {}
            Some(_) => out.push(format!(
                "opened at {}, expected {want_at}",
                serde_json::to_value(got.opened_at).unwrap_or_default()
            )),
            None => out.push(format!("opened_at {want_at:?} is not an RFC 3339 time")),
        }
    }
    if let Some(s) = &want.severity
        && got.severity.as_str() != s
    {
        out.push(format!(
            "severity is {}, expected {s}",
            got.severity.as_str()
        ));
    }
    for (k, v) in &want.attributes {
        if got.root_cause.attributes.get(k) != Some(v) {
            out.push(format!(
                "attribute {k} is {:?}, expected {v:?}",
                got.root_cause.attributes.get(k)
            ));
        }
    }
    out
}

fn run_case(rules: &Arc<RuleSet>, dir: &Path, case: &Case) -> Result<Vec<IncidentReport>> {
    let text = match (&case.input, &case.input_file) {
        (Some(t), None) => t.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(dir.join(f)).with_context(|| format!("input_file {f}"))?
        }
        _ => anyhow::bail!("a case needs exactly one of `input` and `input_file`"),
    };
    let mut config = EngineConfig::default();
    if let Some(l) = &case.lateness {
        config.lateness =
            Span::parse(l).with_context(|| format!("lateness `{l}` is not a duration"))?;
    }
    let mut replayer = Replayer::new(rules.clone(), config);
    replayer.feed(&case.name, Cursor::new(text), None)?;
    let malformed = replayer.malformed.count;
    let clusters = replayer.finish()?.clusters;
    anyhow::ensure!(malformed == 0, "{malformed} input lines did not decode");
    Ok(clusters
        .incidents()
        .into_iter()
        .map(IncidentReport::new)
        .collect())
}

#[allow(clippy::print_stdout)]
pub(crate) fn run(dirs: &[PathBuf], verbose: bool, builtin: bool) -> Result<ExitCode> {
    let (mut passed, mut failed) = (0u32, 0u32);
    for dir in dirs {
        // The directory's rules over the built-in pack, as serve loads them.
        let rules = match rules_cmd::load(std::slice::from_ref(dir), builtin) {
            Ok(r) => r.rules,
            Err(errors) => {
                eprintln!("{errors}");
                return Ok(ExitCode::from(2));
            }
        };
        let mut tested: std::collections::BTreeSet<String> = Default::default();
        for path in rule_files::test_paths(dir)? {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            let file: TestFile = serde_saphyr::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{}",
                    correlate::rules::yaml_error_in(&path.display().to_string(), &text, &e)
                )
            })?;
            let base = path.parent().unwrap_or(Path::new("."));
            for case in &file.tests {
                let at = format!("{}:{}", path.display(), case.referenced.line());
                let c = &case.value;
                let problems = match run_case(&rules, base, c) {
                    Err(e) => vec![crate::describe(&e)],
                    Ok(got) => {
                        let mut problems = Vec::new();
                        let mut used = vec![false; got.len()];
                        for want in &c.expect {
                            tested.insert(want.rule.clone());
                            let cands: Vec<usize> = (0..got.len())
                                .filter(|i| !used[*i] && got[*i].rule == want.rule)
                                .collect();
                            match cands
                                .iter()
                                .map(|i| (*i, mismatch(want, &got[*i])))
                                .min_by_key(|(_, m)| m.len())
                            {
                                Some((i, m)) if m.is_empty() => used[i] = true,
                                Some((i, m)) => {
                                    used[i] = true;
                                    problems.push(format!("{}: {}", want.rule, m.join("; ")));
                                }
                                None => problems.push(format!(
                                    "expected a {} incident, none formed",
                                    want.rule
                                )),
                            }
                        }
                        for (i, g) in got.iter().enumerate() {
                            if !used[i] {
                                problems
                                    .push(format!("unexpected {} incident: {}", g.rule, g.title));
                            }
                        }
                        if verbose && !problems.is_empty() {
                            for g in &got {
                                problems.push(format!(
                                    "  got: {}",
                                    serde_json::to_string(g).unwrap_or_default()
                                ));
                            }
                        }
                        problems
                    }
                };
                if problems.is_empty() {
                    passed += 1;
                    println!("ok   {at} {}", c.name);
                } else {
                    failed += 1;
                    println!("FAIL {at} {}", c.name);
                    for p in problems {
                        println!("     {p}");
                    }
                }
            }
        }
        // Every rule of the directory must be shown firing by some test.
        let own: std::collections::BTreeSet<String> = rule_files::rule_paths(dir)?
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        for id in rules
            .correlations
            .iter()
            .map(|c| (&c.id, &c.position))
            .chain(rules.absences.iter().map(|a| (&a.id, &a.position)))
            .filter(|(_, at)| own.contains(&at.file))
            .map(|(id, _)| id)
        {
            if !tested.contains(id) {
                failed += 1;
                println!(
                    "FAIL {}: rule {id} has no test where it fires",
                    dir.display()
                );
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

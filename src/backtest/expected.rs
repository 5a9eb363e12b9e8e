//! `--expected DIR`: expected incidents in the scenario format
//! (`../shared/scenarios/README.md`), matched with a pack's incidents as
//! `../shared/scenarios/check.py` matches them, and scored per rule.
//!
//! A scenario is a directory with `expected.json` and `input.ndjson`; DIR is
//! one, or holds them one level down (as `check.py` finds them). Matching,
//! per scenario, is check.py's: output incidents whose root matches are
//! paired with expected ones greedily (required first, then a title hit,
//! more `affected_must` hits, fewer false attributions, earlier output); a
//! required incident left unpaired is *wrong root* when a remaining output
//! incident shares its affected entities or decisive words (that incident
//! is taken), else *missing*. The scenario passes as check.py would pass it.
//!
//! Scores per rule (the rule of the output incident): *matched* incidents,
//! paired with an expected one by their root, of which *failed checks*
//! fail check.py's checks (the decisive detail missing from the title,
//! required entities missing, too many false attributions, detected too
//! late); *wrong root* and *unexpected* (paired with nothing) incidents;
//! *missed* expected incidents, under the rule whose incident took them
//! with the wrong root, or under `(none)`. A *correct* incident is matched
//! and passes the checks. Precision is correct / (matched + wrong root +
//! unexpected): of the incidents the rule formed, how many were what was
//! expected; recall is correct / (matched + wrong root + missed): of the
//! expected incidents that came to the rule (or to none), how many it
//! found as expected. An optional expected incident counts only when
//! matched. Precision counts every unexpected incident, even one check.py
//! tolerates under `max_incidents`; a scenario with every score at 1 fails
//! only on a `forbidden` title. *False attributions* are the affected
//! entities of matched incidents that the expectation neither requires nor
//! allows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use correlate::report::EntityRef;
use correlate::{EventTime, IncidentReport};
use regex::Regex;
use serde::Serialize;
use serde_json::Value;

/// One scenario: where its input is, what it expects.
#[derive(Debug)]
pub(crate) struct Scenario {
    pub(crate) name: String,
    pub(crate) input: PathBuf,
    expected: Expected,
}

#[derive(Debug)]
struct Expected {
    incidents: Vec<Want>,
    max_incidents: Option<usize>,
    forbidden: Vec<(String, Regex)>,
}

/// One expected incident.
#[derive(Debug)]
struct Want {
    what: String,
    roots: Vec<RootSpec>,
    title_any: Vec<String>,
    must: Vec<String>,
    may: BTreeSet<String>,
    may_regex: Vec<Regex>,
    max_false: usize,
    detect_from: Option<EventTime>,
    max_detect_seconds: Option<f64>,
    optional: bool,
}

#[derive(Debug)]
struct RootSpec {
    /// Lower case; empty: any kind.
    kinds: Vec<String>,
    /// `None`: not checked; else the accepted namespaces (`None`: none).
    namespace: Option<Vec<Option<String>>>,
    name_regex: Option<Regex>,
    node: Option<String>,
    /// As check.py says it in a reason.
    described: String,
}

/// The scenarios of `dir`: it, or its subdirectories holding
/// `expected.json`, sorted.
pub(crate) fn scenarios(dir: &Path) -> Result<Vec<Scenario>> {
    let dirs: Vec<PathBuf> = if dir.join("expected.json").is_file() {
        vec![dir.to_path_buf()]
    } else {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("--expected {}: cannot list", dir.display()))?;
        let mut v = Vec::new();
        for e in entries {
            let e = e.with_context(|| format!("--expected {}: cannot list", dir.display()))?;
            if e.path().join("expected.json").is_file() {
                v.push(e.path());
            }
        }
        v.sort();
        if v.is_empty() {
            bail!(
                "--expected {}: no expected.json here or one level down",
                dir.display()
            );
        }
        v
    };
    dirs.iter().map(|d| scenario(d)).collect()
}

fn scenario(dir: &Path) -> Result<Scenario> {
    let path = dir.join("expected.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let at = path.display().to_string();
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let name = v
        .get("scenario")
        .and_then(Value::as_str)
        .map_or(dir_name, str::to_string);
    let mut incidents = Vec::new();
    if let Some(list) = v.get("incidents").and_then(Value::as_array) {
        for (j, w) in list.iter().enumerate() {
            incidents.push(want(&at, j, w)?);
        }
    }
    let mut forbidden = Vec::new();
    if let Some(list) = v.get("forbidden").and_then(Value::as_array) {
        for f in list {
            if let Some(rx) = f.get("title_regex").and_then(Value::as_str)
                && !rx.is_empty()
            {
                forbidden.push((rx.to_string(), regex(&at, "forbidden.title_regex", rx)?));
            }
        }
    }
    Ok(Scenario {
        name,
        input: dir.join("input.ndjson"),
        expected: Expected {
            incidents,
            max_incidents: v
                .get("max_incidents")
                .and_then(Value::as_u64)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            forbidden,
        },
    })
}

fn regex(at: &str, field: &str, rx: &str) -> Result<Regex> {
    Regex::new(rx).with_context(|| format!("{at}: {field} `{rx}` is not a regex"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn want(at: &str, j: usize, w: &Value) -> Result<Want> {
    let specs: Vec<&Value> = match w.get("root") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(one) => vec![one],
    };
    let mut roots = Vec::new();
    for s in specs {
        roots.push(root_spec(at, s)?);
    }
    let mut may_regex = Vec::new();
    for rx in strings(w.get("affected_may_regex")) {
        may_regex.push(regex(at, "affected_may_regex", &rx)?);
    }
    Ok(Want {
        what: w
            .get("what")
            .and_then(Value::as_str)
            .map_or_else(|| format!("incident {}", j + 1), str::to_string),
        roots,
        title_any: strings(w.get("title_any")),
        must: strings(w.get("affected_must")),
        may: strings(w.get("affected_may")).into_iter().collect(),
        may_regex,
        max_false: w
            .get("max_false_affected")
            .and_then(Value::as_u64)
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        detect_from: w
            .get("detect_from")
            .and_then(Value::as_str)
            .and_then(EventTime::parse_rfc3339),
        max_detect_seconds: w.get("max_detect_seconds").and_then(Value::as_f64),
        optional: w.get("optional").is_some_and(truthy),
    })
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn root_spec(at: &str, s: &Value) -> Result<RootSpec> {
    let kinds: Vec<String> = strings(s.get("kinds"))
        .iter()
        .map(|k| k.to_lowercase())
        .collect();
    let namespace = s.get("namespace").map(|ns| match ns {
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
        other => vec![other.as_str().map(str::to_string)],
    });
    let rx = s.get("name_regex").and_then(Value::as_str).unwrap_or("");
    let name_regex = if rx.is_empty() {
        None
    } else {
        Some(regex(at, "root.name_regex", rx)?)
    };
    let node = s
        .get("node")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    // check.py's spec_str.
    let mut parts = vec![if kinds.is_empty() {
        "any kind".to_string()
    } else {
        strings(s.get("kinds")).join("|")
    }];
    if let Some(ns) = &namespace {
        parts.push(format!(
            "ns {}",
            ns.iter()
                .map(|x| x.as_deref().unwrap_or("(none)"))
                .collect::<Vec<_>>()
                .join("|")
        ));
    }
    if !rx.is_empty() {
        parts.push(format!("name~/{rx}/"));
    }
    if let Some(n) = &node {
        parts.push(format!("node {n}"));
    }
    Ok(RootSpec {
        kinds,
        namespace,
        name_regex,
        node,
        described: parts.join(" "),
    })
}

/// check.py's `entity_key`: `namespace/name`, or `name` when cluster-scoped.
fn entity_key(e: &EntityRef) -> Option<String> {
    if e.name.is_empty() {
        return None;
    }
    match e.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(ns) => Some(format!("{ns}/{}", e.name)),
        None => Some(e.name.clone()),
    }
}

/// An output incident as check.py reads it.
struct Out<'a> {
    /// 1-based position in the output.
    idx: usize,
    report: &'a IncidentReport,
    root_key: Option<String>,
    affected: Vec<String>,
    /// Title and summary, lower case.
    text: String,
}

impl<'a> Out<'a> {
    fn new(idx: usize, report: &'a IncidentReport) -> Out<'a> {
        let mut affected: Vec<String> = Vec::new();
        for a in &report.affected {
            if let Some(k) = entity_key(&a.entity)
                && !affected.contains(&k)
            {
                affected.push(k);
            }
        }
        Out {
            idx,
            report,
            root_key: entity_key(&report.root_cause.entity),
            affected,
            text: format!("{}\n{}", report.title, report.root_cause.summary).to_lowercase(),
        }
    }

    /// check.py's `describe`.
    fn describe(&self) -> String {
        let e = &self.report.root_cause.entity;
        let mut root = format!(
            "{} {}{}",
            if e.kind.is_empty() { "?" } else { &e.kind },
            e.namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .map(|n| format!("{n}/"))
                .unwrap_or_default(),
            if e.name.is_empty() { "?" } else { &e.name }
        );
        if let Some(n) = e.node.as_deref().filter(|n| !n.is_empty()) {
            root.push_str(&format!(" @{n}"));
        }
        format!(
            "#{} [{}] root={root} title={:?}",
            self.idx,
            self.report.rule,
            clip(&self.report.title, 100)
        )
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

fn root_matches(w: &Want, out: &Out<'_>) -> bool {
    let e = &out.report.root_cause.entity;
    w.roots.iter().any(|spec| {
        if !spec.kinds.is_empty() && !spec.kinds.contains(&e.kind.to_lowercase()) {
            return false;
        }
        if let Some(allowed) = &spec.namespace {
            let ns = e.namespace.clone().filter(|n| !n.is_empty());
            if !allowed.contains(&ns) {
                return false;
            }
        }
        if let Some(rx) = &spec.name_regex
            && !rx.is_match(&e.name)
        {
            return false;
        }
        if let (Some(want), Some(node)) = (&spec.node, e.node.as_deref().filter(|n| !n.is_empty()))
            && want != node
        {
            return false;
        }
        true
    })
}

/// How well one output incident fits one expected incident (check.py's
/// `Eval`).
struct Eval {
    root_ok: bool,
    title_ok: bool,
    must_missing: Vec<String>,
    must_hit: usize,
    false_affected: Vec<String>,
    detect_problem: Option<String>,
    idx: usize,
}

impl Eval {
    fn new(w: &Want, out: &Out<'_>) -> Eval {
        let title_ok = w.title_any.is_empty()
            || w.title_any
                .iter()
                .any(|s| out.text.contains(&s.to_lowercase()));
        let must_missing: Vec<String> = w
            .must
            .iter()
            .filter(|m| !out.affected.contains(m))
            .cloned()
            .collect();
        let false_affected: Vec<String> = out
            .affected
            .iter()
            .filter(|a| {
                !w.must.contains(a)
                    && !w.may.contains(*a)
                    && out.root_key.as_ref() != Some(*a)
                    && !w.may_regex.iter().any(|rx| rx.is_match(a))
            })
            .cloned()
            .collect();
        let detect_problem = match (w.max_detect_seconds, w.detect_from) {
            (Some(max), Some(from)) => {
                let delay = out.report.opened_at.since(from).as_secs_f64();
                (delay > max).then(|| {
                    format!(
                        "too slow: opened_at {} is {delay:.0}s after {from} (max {max}s)",
                        out.report.opened_at
                    )
                })
            }
            _ => None,
        };
        Eval {
            root_ok: root_matches(w, out),
            title_ok,
            must_hit: w.must.len() - must_missing.len(),
            must_missing,
            false_affected,
            detect_problem,
            idx: out.idx,
        }
    }

    fn score(&self) -> (bool, usize, i64, i64) {
        (
            self.title_ok,
            self.must_hit,
            -(self.false_affected.len() as i64),
            -(self.idx as i64),
        )
    }

    fn failures(&self, w: &Want, out: &Out<'_>) -> Vec<String> {
        let mut v = Vec::new();
        if !self.title_ok {
            v.push(format!(
                "title/summary names none of {:?}: {:?}",
                w.title_any,
                clip(&out.report.title, 120)
            ));
        }
        if !self.must_missing.is_empty() {
            let n = self.must_missing.len();
            v.push(format!(
                "missing {n} affected {}: {}{}",
                if n == 1 { "entity" } else { "entities" },
                self.must_missing
                    .iter()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                if n > 8 { " ..." } else { "" }
            ));
        }
        if self.false_affected.len() > w.max_false {
            v.push(format!(
                "{} false attributions (max {}): {}{}",
                self.false_affected.len(),
                w.max_false,
                self.false_affected
                    .iter()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                if self.false_affected.len() > 8 {
                    " ..."
                } else {
                    ""
                }
            ));
        }
        if let Some(p) = &self.detect_problem {
            v.push(p.clone());
        }
        v
    }
}

/// What one rule's incidents did against the expectations.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Tally {
    /// Incidents paired with an expected incident by their root.
    pub(crate) matched: u64,
    /// Incidents that took a required expected incident with the wrong root.
    pub(crate) wrong_root: u64,
    /// Incidents paired with nothing.
    pub(crate) unexpected: u64,
    /// Expected incidents not found (with no incident: under `(none)`).
    pub(crate) missed: u64,
    /// Matched incidents that check.py fails.
    pub(crate) failed_checks: u64,
    /// Affected entities of matched incidents neither required nor allowed.
    pub(crate) false_attributions: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.matched += o.matched;
        self.wrong_root += o.wrong_root;
        self.unexpected += o.unexpected;
        self.missed += o.missed;
        self.failed_checks += o.failed_checks;
        self.false_attributions += o.false_attributions;
    }

    /// Matched incidents that pass check.py's checks.
    fn correct(&self) -> u64 {
        self.matched.saturating_sub(self.failed_checks)
    }

    pub(crate) fn precision(&self) -> Option<f64> {
        let formed = self.matched + self.wrong_root + self.unexpected;
        (formed > 0).then(|| self.correct() as f64 / formed as f64)
    }

    pub(crate) fn recall(&self) -> Option<f64> {
        let expected = self.matched + self.wrong_root + self.missed;
        (expected > 0).then(|| self.correct() as f64 / expected as f64)
    }
}

/// The rule under which expected incidents no incident took are counted.
pub(crate) const NO_RULE: &str = "(none)";

/// One scenario checked against one pack's incidents.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Checked {
    pub(crate) scenario: String,
    pub(crate) passed: bool,
    /// Why it fails, as check.py says it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) reasons: Vec<String>,
    #[serde(skip)]
    pub(crate) rules: BTreeMap<String, Tally>,
}

impl Scenario {
    /// Matches `incidents` (in output order) with the expectations.
    pub(crate) fn check(&self, incidents: &[&IncidentReport]) -> Checked {
        let exp = &self.expected;
        let outs: Vec<Out<'_>> = incidents
            .iter()
            .enumerate()
            .map(|(i, r)| Out::new(i + 1, r))
            .collect();
        let evals: Vec<Vec<Eval>> = exp
            .incidents
            .iter()
            .map(|w| outs.iter().map(|o| Eval::new(w, o)).collect())
            .collect();
        let mut rules: BTreeMap<String, Tally> = BTreeMap::new();
        let mut reasons = Vec::new();

        // Pass 1: root matches; required expectations first, then the best fit.
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for (j, row) in evals.iter().enumerate() {
            for (i, ev) in row.iter().enumerate() {
                if ev.root_ok {
                    pairs.push((j, i));
                }
            }
        }
        let key = |&(j, i): &(usize, usize)| {
            let (t, m, f, x) = evals[j][i].score();
            (!exp.incidents[j].optional, t, m, f, x)
        };
        // Stable, as Python's sort: equal keys keep their order.
        pairs.sort_by_key(|p| std::cmp::Reverse(key(p)));
        let mut matched: Vec<Option<usize>> = vec![None; exp.incidents.len()];
        let mut used = vec![false; outs.len()];
        for (j, i) in pairs {
            if matched[j].is_some() || used[i] {
                continue;
            }
            matched[j] = Some(i);
            used[i] = true;
        }

        // Pass 2: required expectations without a root match.
        for (j, w) in exp.incidents.iter().enumerate() {
            if matched[j].is_some() || w.optional {
                continue;
            }
            let want = w
                .roots
                .iter()
                .map(|s| s.described.clone())
                .collect::<Vec<_>>()
                .join(" or ");
            let best = (0..outs.len())
                .filter(|&i| {
                    let ev = &evals[j][i];
                    !used[i] && (ev.must_hit > 0 || (ev.title_ok && !w.title_any.is_empty()))
                })
                .max_by_key(|&i| evals[j][i].score());
            match best {
                Some(i) => {
                    used[i] = true;
                    rules
                        .entry(outs[i].report.rule.clone())
                        .or_default()
                        .wrong_root += 1;
                    reasons.push(format!(
                        "wrong root for {:?}: expected {want}; closest output is {}",
                        w.what,
                        outs[i].describe()
                    ));
                    for f in evals[j][i].failures(w, &outs[i]) {
                        reasons.push(format!("  and {f}"));
                    }
                }
                None => {
                    rules.entry(NO_RULE.to_string()).or_default().missed += 1;
                    reasons.push(format!(
                        "missing incident {:?}: no output incident has root {want}",
                        w.what
                    ));
                }
            }
        }

        for (j, m) in matched.iter().enumerate() {
            let Some(i) = *m else { continue };
            let w = &exp.incidents[j];
            let ev = &evals[j][i];
            let t = rules.entry(outs[i].report.rule.clone()).or_default();
            t.matched += 1;
            t.false_attributions += ev.false_affected.len() as u64;
            let fails = ev.failures(w, &outs[i]);
            if !fails.is_empty() {
                t.failed_checks += 1;
                reasons.push(format!(
                    "{}incident {:?} matched {} but:",
                    if w.optional { "optional " } else { "" },
                    w.what,
                    outs[i].describe()
                ));
                reasons.extend(fails.into_iter().map(|f| format!("  {f}")));
            }
        }

        let unexpected: Vec<&Out<'_>> = outs.iter().filter(|o| !used[o.idx - 1]).collect();
        for o in &unexpected {
            rules.entry(o.report.rule.clone()).or_default().unexpected += 1;
        }
        if let Some(max) = exp.max_incidents
            && outs.len() > max
        {
            reasons.push(format!("too many incidents: {} > max {max}", outs.len()));
            for o in unexpected.iter().take(8) {
                reasons.push(format!("  unexpected {}", o.describe()));
            }
        }
        for (text, rx) in &exp.forbidden {
            for o in &outs {
                if rx.is_match(&o.report.title) || rx.is_match(&o.report.root_cause.summary) {
                    reasons.push(format!("forbidden title /{text}/ in {}", o.describe()));
                }
            }
        }
        Checked {
            scenario: self.name.clone(),
            passed: reasons.is_empty(),
            reasons,
            rules,
        }
    }
}

/// Scores per rule over several scenarios, and their sum.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Scores {
    pub(crate) rules: BTreeMap<String, Tally>,
    pub(crate) all: Tally,
    pub(crate) scenarios: Vec<Checked>,
}

impl Scores {
    pub(crate) fn add(&mut self, checked: Checked) {
        for (rule, t) in &checked.rules {
            self.rules.entry(rule.clone()).or_default().add(t);
            self.all.add(t);
        }
        self.scenarios.push(checked);
    }

    pub(crate) fn passed(&self) -> usize {
        self.scenarios.iter().filter(|c| c.passed).count()
    }
}

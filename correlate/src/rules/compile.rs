//! Raw rule files -> a validated [`RuleSet`]. Every check that can fail
//! records an error with its position and carries on, so one run of
//! `epicenter rules check` shows every problem.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde_saphyr::{Location, Spanned};

use super::compose::{self, Composition, RulePack};
use super::error::{Diagnostics, Position, RuleError, RuleErrors};
use super::raw;
use super::template::Template;
use super::{
    AbsenceDef, CorrelationDef, EffectDef, EntityScope, JoinDef, ResolveDef, RootDef, RuleSet,
    Selector, SignalDef, SignalId, SilentPeerDef, ViaDef,
};
use crate::model::{Severity, Source};
use crate::time::Span;

/// Placeholders every signal summary may use.
const SIGNAL_VARS: &[&str] = &[
    "name",
    "namespace",
    "node",
    "kind",
    "workload",
    "container",
    "reason",
    "message",
];

/// Placeholders the names of a root object (`root: {kind, name,
/// namespace}`) may use, beside the cause's attributes: the cause entity's
/// (`engine::correlation::root_entity`).
const ROOT_VARS: &[&str] = &["namespace", "node", "root"];

/// Placeholders every incident title and summary may use.
pub const INCIDENT_VARS: &[&str] = &[
    "root",
    "root_kind",
    "namespace",
    "node",
    "workload",
    "cause_summary",
    "causes",
    "affected",
    "affected_names",
    "effects",
    "effect_names",
    "nodes",
    "node_names",
    "namespaces",
    "namespace_names",
    "signals",
    "window",
    "duration",
    "absent",
    "quiet",
];

const DEFAULT_BEFORE: Span = Span::from_secs(10 * 60);
const DEFAULT_AFTER: Span = Span::from_secs(30 * 60);
const DEFAULT_QUIET: Span = Span::from_secs(15 * 60);
/// The longest window a rule may ask for: state is held at least this long.
const MAX_WINDOW: Span = Span::from_secs(24 * 3600);

/// A rule file's name and text.
#[derive(Debug, Clone)]
pub struct RuleSource {
    pub name: String,
    pub text: String,
}

pub(super) struct Parsed {
    pub(super) name: String,
    /// Which pack it came from (an index into the packs compiled).
    pub(super) pack: usize,
    pub(super) file: raw::RuleFile,
    /// The same file as plain data, to tell a rule from its copy.
    pub(super) plain: Option<serde_json::Value>,
}

/// Loads and validates rule files. All errors of all files are returned.
pub fn compile(sources: &[RuleSource]) -> Result<RuleSet, RuleErrors> {
    let pack = RulePack {
        name: String::new(),
        sources: sources.to_vec(),
    };
    compile_packs(std::slice::from_ref(&pack)).map(|(set, _)| set)
}

/// Loads and validates rule packs, in order: a signal or rule whose id a
/// later pack defines again is replaced by the later definition (see
/// [`super::compose`]). All errors of all files are returned.
pub fn compile_packs(packs: &[RulePack]) -> Result<(RuleSet, Composition), RuleErrors> {
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    for (pack, p) in packs.iter().enumerate() {
        for src in &p.sources {
            match serde_saphyr::from_str::<raw::RuleFile>(&src.text) {
                Ok(file) => parsed.push(Parsed {
                    name: src.name.clone(),
                    pack,
                    file,
                    plain: if packs.len() > 1 {
                        serde_saphyr::from_str::<serde_json::Value>(&src.text).ok()
                    } else {
                        None
                    },
                }),
                Err(e) => errors.push(yaml_error_in(&src.name, &src.text, &e)),
            }
        }
    }
    let composition = compose::drop_overridden(&mut parsed, packs);

    let mut set = RuleSet::default();
    let mut signal_ids: BTreeMap<String, (SignalId, Position)> = BTreeMap::new();
    let mut rule_ids: BTreeMap<String, Position> = BTreeMap::new();
    let mut invalid_signals: BTreeSet<String> = BTreeSet::new();
    // Of those, the ones whose regex did not compile: their attributes are
    // not known.
    let mut unknown_attributes: BTreeSet<String> = BTreeSet::new();

    // Pass 1: signals, so correlations in any file can name them.
    for p in &mut parsed {
        let mut diag = Diagnostics::new(&p.name);
        for rule in std::mem::take(&mut p.file.signals) {
            let id = rule.value.id.value.clone();
            let pos = diag.at(rule.value.id.referenced);
            check_id(&mut diag, &rule.value.id);
            if let Some((_, first)) = signal_ids.get(&id) {
                diag.error(
                    rule.value.id.referenced,
                    format!("signal `{id}` is already defined at {first}"),
                );
                continue;
            }
            match compile_signal(&mut diag, rule, pos.clone()) {
                Some(def) => {
                    let sid = SignalId(set.signals.len() as u32);
                    signal_ids.insert(id, (sid, pos));
                    set.signals.push(def);
                }
                // Its errors are reported; rules naming it are not "undefined".
                None => {
                    if diag.unsure {
                        unknown_attributes.insert(id.clone());
                    }
                    invalid_signals.insert(id);
                }
            }
        }
        errors.append(&mut diag.errors);
    }

    // Pass 2: correlations and absences.
    for p in &mut parsed {
        let mut diag = Diagnostics::new(&p.name);
        let lookup = SignalLookup {
            ids: &signal_ids,
            invalid: &invalid_signals,
            unknown_attributes: &unknown_attributes,
        };
        for rule in std::mem::take(&mut p.file.correlations) {
            let id = &rule.value.id;
            check_id(&mut diag, id);
            if let Some(first) = rule_ids.get(&id.value) {
                diag.error(
                    id.referenced,
                    format!("rule `{}` is already defined at {first}", id.value),
                );
                continue;
            }
            rule_ids.insert(id.value.clone(), diag.at(id.referenced));
            if let Some(def) = compile_correlation(&mut diag, &lookup, &set, rule) {
                set.correlations.push(def);
            }
        }
        for rule in std::mem::take(&mut p.file.absences) {
            let id = &rule.value.id;
            check_id(&mut diag, id);
            if let Some(first) = rule_ids.get(&id.value) {
                diag.error(
                    id.referenced,
                    format!("rule `{}` is already defined at {first}", id.value),
                );
                continue;
            }
            rule_ids.insert(id.value.clone(), diag.at(id.referenced));
            if let Some(def) = compile_absence(&mut diag, &lookup, &set, rule) {
                set.absences.push(def);
            }
        }
        errors.append(&mut diag.errors);
    }

    if errors.is_empty() {
        set.index();
        Ok((set, composition))
    } else {
        errors.sort();
        Err(RuleErrors(errors))
    }
}

/// A YAML (or shape) error of any file read with serde-saphyr, as one line
/// with its position: config files and rule tests report theirs the same way.
pub fn yaml_error(file: &str, e: &serde_saphyr::Error) -> RuleError {
    let loc = e.location().unwrap_or(Location::UNKNOWN);
    // The crate renders a snippet; the first line is the message itself.
    let rendered = e.to_string();
    let message = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid YAML")
        .trim()
        .trim_start_matches("error: ")
        .to_string();
    // The crate may prefix its own "line L column C: "; we say it once.
    let message = match message.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => {
            rest.to_string()
        }
        _ => message,
    };
    RuleError {
        position: Position {
            file: file.to_string(),
            line: loc.line(),
            column: loc.column(),
        },
        message,
    }
}

/// [`yaml_error`] of a file whose `text` is at hand: a value of the wrong
/// shape is said with its key, what the key expects and what was written.
pub fn yaml_error_in(file: &str, text: &str, e: &serde_saphyr::Error) -> RuleError {
    super::error::explain_shape(text, yaml_error(file, e))
}

fn check_id(diag: &mut Diagnostics<'_>, id: &Spanned<String>) {
    let ok = !id.value.is_empty()
        && id
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        diag.error(
            id.referenced,
            format!(
                "id `{}` must be non-empty and use only letters, digits, '-', '_' and '.'",
                id.value
            ),
        );
    }
}

struct SignalLookup<'a> {
    ids: &'a BTreeMap<String, (SignalId, Position)>,
    /// Signals defined with errors (already reported).
    invalid: &'a BTreeSet<String>,
    /// Of those, the ones whose captures are not known (a bad regex).
    unknown_attributes: &'a BTreeSet<String>,
}

impl SignalLookup<'_> {
    fn resolve(
        &self,
        diag: &mut Diagnostics<'_>,
        names: Spanned<raw::OneOrMany>,
    ) -> Option<Vec<SignalId>> {
        let loc = names.referenced;
        let names = names.value.into_vec();
        if names.is_empty() {
            diag.error(loc, "at least one signal is required");
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for n in names {
            match self.ids.get(&n) {
                Some((id, _)) => out.push(*id),
                None if self.invalid.contains(&n) => {
                    ok = false;
                    if self.unknown_attributes.contains(&n) {
                        diag.unsure = true;
                    }
                }
                None => {
                    let hint = closest(&n, self.ids.keys())
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default();
                    diag.error(loc, format!("undefined signal `{n}`{hint}"));
                    ok = false;
                    diag.unsure = true;
                }
            }
        }
        ok.then_some(out)
    }
}

/// The known name nearest to `name`, if it is near enough to be a typo.
fn closest<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let sub = prev[j] + usize::from(ca != *cb);
                cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    known
        .map(|k| (distance(name, k), k))
        .filter(|(d, _)| *d <= 2.max(name.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn regex(diag: &mut Diagnostics<'_>, s: &Spanned<String>) -> Option<Regex> {
    match Regex::new(&s.value) {
        Ok(r) => Some(r),
        Err(e) => {
            // regex's message draws the pattern with a caret over several
            // lines; its last line says what is wrong.
            let msg = e.to_string();
            let what = msg
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .trim_start_matches("error: ");
            diag.error(s.referenced, format!("invalid regex `{}`: {what}", s.value));
            // Its captures are unknown: placeholders naming them are not
            // errors of their own.
            diag.unsure = true;
            None
        }
    }
}

fn span(diag: &mut Diagnostics<'_>, s: &Spanned<String>, what: &str) -> Option<Span> {
    match Span::parse(&s.value) {
        Some(d) if d < Span::ZERO => {
            diag.error(s.referenced, format!("{what} `{}` is negative", s.value));
            None
        }
        Some(d) if d > MAX_WINDOW => {
            diag.error(
                s.referenced,
                format!(
                    "{what} `{}` is longer than the longest window epicenter holds ({MAX_WINDOW})",
                    s.value
                ),
            );
            None
        }
        Some(d) => Some(d),
        None => {
            diag.error(
                s.referenced,
                format!(
                    "{what} `{}` is not a duration (write e.g. `90s`, `5m`, `1h30m`)",
                    s.value
                ),
            );
            None
        }
    }
}

fn severity(
    diag: &mut Diagnostics<'_>,
    s: &Option<Spanned<String>>,
    default: Severity,
) -> Severity {
    match s {
        None => default,
        Some(s) => match Severity::parse(&s.value) {
            Some(sev) => sev,
            None => {
                diag.error(
                    s.referenced,
                    format!(
                        "unknown severity `{}` (one of critical, warning, info)",
                        s.value
                    ),
                );
                default
            }
        },
    }
}

fn template(
    diag: &mut Diagnostics<'_>,
    s: &Spanned<String>,
    builtins: &[&str],
    attributes: &BTreeSet<String>,
) -> Template {
    match Template::parse(&s.value) {
        Ok(t) => {
            for v in t.vars() {
                if !builtins.contains(&v) && !attributes.contains(v) {
                    // A record's placeholder where there is no one record.
                    let hint = if SIGNAL_VARS.contains(&v) && builtins != SIGNAL_VARS {
                        " (it is a record's, for a signal's summary: here `{cause_summary}` says what the cause was)"
                    } else {
                        ""
                    };
                    diag.follow_on(
                        s.referenced,
                        format!(
                            "unknown placeholder {{{v}}}: not an attribute of the signals this rule reads, nor one of {}{hint}",
                            builtins.join(", ")
                        ),
                    );
                }
            }
            t
        }
        Err(e) => {
            diag.error(s.referenced, format!("invalid template: {e}"));
            Template::default()
        }
    }
}

fn compile_signal(
    diag: &mut Diagnostics<'_>,
    rule: Spanned<raw::SignalRule>,
    position: Position,
) -> Option<SignalDef> {
    let before = diag.errors.len();
    diag.unsure = false;
    let r = rule.value;
    let m = r.matcher.value;

    let mut sources = Vec::new();
    let source_loc = m.source.referenced;
    for s in m.source.value.into_vec() {
        match Source::parse(&s) {
            Some(src) => sources.push(src),
            None => diag.error(
                source_loc,
                format!(
                    "unknown source `{s}` (one of {})",
                    Source::ALL.map(Source::as_str).join(", ")
                ),
            ),
        }
    }
    let message = m.message.as_ref().and_then(|s| regex(diag, s));
    let container = m.container.as_ref().and_then(|s| regex(diag, s));
    let name = m.name.as_ref().and_then(|s| regex(diag, s));
    let namespace = m.namespace.as_ref().and_then(|s| regex(diag, s));
    let labels: Vec<(String, Regex)> = m
        .labels
        .iter()
        .filter_map(|(k, v)| regex(diag, v).map(|r| (k.clone(), r)))
        .collect();
    let fields: Vec<(String, Regex)> = m
        .fields
        .iter()
        .filter_map(|(k, v)| regex(diag, v).map(|r| (k.clone(), r)))
        .collect();
    let extract: Vec<Regex> = r.extract.iter().filter_map(|e| regex(diag, e)).collect();
    let min_severity = m
        .severity
        .as_ref()
        .map(|s| severity(diag, &Some(s.clone()), Severity::Info));

    let entity = match r.entity.as_ref().map(|e| (e.value.as_str(), e.referenced)) {
        None | Some(("self", _)) => EntityScope::Itself,
        Some(("workload", _)) => EntityScope::Workload,
        Some(("node", _)) => EntityScope::Node,
        Some((other, loc)) => {
            diag.error(
                loc,
                format!("unknown entity `{other}` (one of self, workload, node)"),
            );
            EntityScope::Itself
        }
    };

    let mut attribute_names: BTreeSet<String> = r.attributes.keys().cloned().collect();
    // The classifier records the record's container as an attribute.
    attribute_names.insert("container".to_string());
    for re in [&message, &container, &name, &namespace]
        .into_iter()
        .flatten()
        .chain(labels.iter().map(|(_, r)| r))
        .chain(fields.iter().map(|(_, r)| r))
        .chain(extract.iter())
    {
        attribute_names.extend(re.capture_names().flatten().map(str::to_string));
    }
    let summary = match &r.summary {
        Some(s) => template(diag, s, SIGNAL_VARS, &attribute_names),
        None => Template::default(),
    };
    let sev = severity(diag, &r.severity, Severity::Warning);
    // A state ends at its entity's next transition; a workload or a node
    // named for a pod's record has no transitions of its own to end it.
    if r.state && entity != EntityScope::Itself {
        let at = r.entity.as_ref().map_or(r.id.referenced, |e| e.referenced);
        diag.error(
            at,
            "`state: true` needs the record's own entity (`entity: self`, the default): a state lasts until that Pod or Node changes again, which a workload or node named for it never does",
        );
    }

    if diag.errors.len() > before {
        return None;
    }
    Some(SignalDef {
        id: r.id.value,
        description: r.description.unwrap_or_default(),
        position,
        sources,
        kinds: m.kind.map(raw::OneOrMany::into_vec).unwrap_or_default(),
        reasons: m.reason.map(raw::OneOrMany::into_vec).unwrap_or_default(),
        message,
        container,
        name,
        namespace,
        min_severity,
        labels,
        fields,
        entity,
        summary,
        attributes: r.attributes.into_iter().collect(),
        extract,
        attribute_names,
        severity: sev,
        state: r.state,
    })
}

fn selector(
    diag: &mut Diagnostics<'_>,
    s: &str,
    loc: Location,
    attrs: &BTreeSet<String>,
) -> Option<Selector> {
    let sel = match s {
        "entity" => Selector::Entity,
        "workload" => Selector::Workload,
        "node" => Selector::Node,
        "namespace" => Selector::Namespace,
        "name" => Selector::Name,
        "kind" => Selector::Kind,
        "cluster" => Selector::Cluster,
        other if attrs.contains(other) => Selector::Attribute(other.to_string()),
        other => {
            let hint = closest(other, attrs.iter())
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            diag.follow_on(
                loc,
                format!(
                    "`{other}` is neither entity, workload, node, namespace, name, kind, cluster nor an attribute of the signals it reads{hint}"
                ),
            );
            return None;
        }
    };
    Some(sel)
}

/// A `via:` as written: one path both sides take, or one each; every path
/// parsed, and the attribute a path starts from must be one its side's
/// signals capture.
fn via(
    diag: &mut Diagnostics<'_>,
    v: Spanned<raw::JoinSpec>,
    cause_attrs: &BTreeSet<String>,
    effect_attrs: &BTreeSet<String>,
) -> Option<ViaDef> {
    let loc = v.referenced;
    let (c, e, shared) = match v.value {
        raw::JoinSpec::Same(s) => (s.clone(), s, true),
        raw::JoinSpec::Pair(raw::Pair { cause, effect }) => (cause, effect, false),
    };
    let mut path = |text: &str, side: &str, attrs: &BTreeSet<String>| {
        match crate::graph::path::Path::parse(text) {
            Ok(p) => {
                if let Some(a) = p.attribute()
                    && !attrs.contains(a)
                {
                    diag.follow_on(
                        loc,
                        format!("via {side} path `{text}` starts at `{{{a}}}`, but no {side} signal captures `{a}`"),
                    );
                    return None;
                }
                Some(p)
            }
            Err(err) => {
                diag.error(loc, format!("via {side} path `{text}`: {err}"));
                None
            }
        }
    };
    let cause = path(&c, "cause", cause_attrs);
    // One path both take is reported once.
    if shared && cause.is_none() {
        return None;
    }
    let effect = path(&e, "effect", effect_attrs);
    Some(ViaDef {
        cause: cause?,
        effect: effect?,
    })
}

/// A count of what must be seen: 1 unless written; 0 is a mistake (nothing
/// can be seen zero times and still open an incident).
fn at_least_one(diag: &mut Diagnostics<'_>, key: &str, v: Option<&Spanned<u32>>) -> u32 {
    match v {
        None => 1,
        Some(m) if m.value == 0 => {
            diag.error(
                m.referenced,
                format!("{key}: expected 1 or more, got `0` (the default is 1)"),
            );
            1
        }
        Some(m) => m.value,
    }
}

fn attributes_of(set: &RuleSet, ids: &[SignalId]) -> BTreeSet<String> {
    ids.iter()
        .flat_map(|id| set.signals[id.0 as usize].attribute_names.iter().cloned())
        .collect()
}

fn root(
    diag: &mut Diagnostics<'_>,
    spec: Option<Spanned<raw::RootSpec>>,
    attrs: &BTreeSet<String>,
) -> RootDef {
    let Some(spec) = spec else {
        return RootDef::Entity;
    };
    let loc = spec.referenced;
    match spec.value {
        raw::RootSpec::Named(n) => match n.as_str() {
            "entity" => RootDef::Entity,
            "workload" => RootDef::Workload,
            "node" => RootDef::Node,
            other => {
                diag.error(
                    loc,
                    format!("unknown root `{other}` (entity, workload, node, or {{kind, name}})"),
                );
                RootDef::Entity
            }
        },
        raw::RootSpec::Synthetic(raw::RootObject {
            kind,
            name,
            namespace,
        }) => {
            let mut parse = |text: &str| {
                let s = Spanned {
                    value: text.to_string(),
                    referenced: loc,
                    defined: loc,
                };
                template(diag, &s, ROOT_VARS, attrs)
            };
            RootDef::Synthetic {
                kind,
                name: parse(&name),
                namespace: namespace.map(|n| parse(&n)),
            }
        }
    }
}

fn resolve(
    diag: &mut Diagnostics<'_>,
    lookup: &SignalLookup<'_>,
    r: Option<Spanned<raw::Resolve>>,
) -> ResolveDef {
    let Some(r) = r else {
        return ResolveDef {
            quiet: DEFAULT_QUIET,
            signals: Vec::new(),
        };
    };
    ResolveDef {
        quiet: r
            .value
            .quiet
            .as_ref()
            .and_then(|q| span(diag, q, "quiet period"))
            .unwrap_or(DEFAULT_QUIET),
        signals: r
            .value
            .signals
            .and_then(|s| lookup.resolve(diag, s))
            .unwrap_or_default(),
    }
}

fn effects(
    diag: &mut Diagnostics<'_>,
    lookup: &SignalLookup<'_>,
    set: &RuleSet,
    raw_effects: Vec<Spanned<raw::Effect>>,
    cause_attrs: &BTreeSet<String>,
    all_attrs: &mut BTreeSet<String>,
) -> Vec<EffectDef> {
    let mut effects = Vec::new();
    for e in raw_effects {
        let eloc = e.referenced;
        let e = e.value;
        let signals = lookup.resolve(diag, e.signals).unwrap_or_default();
        let effect_attrs = attributes_of(set, &signals);
        all_attrs.extend(effect_attrs.iter().cloned());
        // A join or via that is written but wrong has its own error; the
        // missing-join error is for neither written.
        let written = !e.join.is_empty() || e.via.is_some();
        let mut join = Vec::new();
        for j in e.join {
            let jl = j.referenced;
            let (c, f) = match j.value {
                raw::JoinSpec::Same(s) => (s.clone(), s),
                raw::JoinSpec::Pair(raw::Pair { cause, effect }) => (cause, effect),
            };
            let cs = selector(diag, &c, jl, cause_attrs);
            let es = selector(diag, &f, jl, &effect_attrs);
            if let (Some(cause), Some(effect)) = (cs, es) {
                join.push(JoinDef { cause, effect });
            }
        }
        let via = e.via.and_then(|v| via(diag, v, cause_attrs, &effect_attrs));
        if !written {
            diag.error(
                eloc,
                "an effect needs a `join` (node, namespace, workload, entity, cluster, or {cause: attr, effect: attr}) or a `via` (a path through the object graph): say how it is tied to the cause",
            );
        }
        effects.push(EffectDef { signals, join, via });
    }
    effects
}

fn window(
    diag: &mut Diagnostics<'_>,
    w: Option<&Spanned<raw::Window>>,
    has_effects: bool,
) -> (Span, Span) {
    let Some(w) = w else {
        return (DEFAULT_BEFORE, DEFAULT_AFTER);
    };
    let before = w
        .value
        .before
        .as_ref()
        .and_then(|s| span(diag, s, "window.before"))
        .unwrap_or(DEFAULT_BEFORE);
    let after = w
        .value
        .after
        .as_ref()
        .and_then(|s| span(diag, s, "window.after"))
        .unwrap_or(DEFAULT_AFTER);
    if before == Span::ZERO && after == Span::ZERO && has_effects {
        diag.error(
            w.referenced,
            "impossible window: before and after are both 0, no effect can ever fall inside it",
        );
    }
    (before, after)
}

/// What every incident rule says about its incidents.
struct Presentation {
    title: Template,
    summary: Template,
    severity: Severity,
    resolve: ResolveDef,
}

#[allow(clippy::too_many_arguments)] // the four fields of a rule, plus context
fn presentation(
    diag: &mut Diagnostics<'_>,
    lookup: &SignalLookup<'_>,
    attrs: &BTreeSet<String>,
    default_severity: Severity,
    title: &Spanned<String>,
    summary: Option<&Spanned<String>>,
    sev: &Option<Spanned<String>>,
    res: Option<Spanned<raw::Resolve>>,
) -> Presentation {
    Presentation {
        title: template(diag, title, INCIDENT_VARS, attrs),
        summary: summary
            .map(|s| template(diag, s, INCIDENT_VARS, attrs))
            .unwrap_or_default(),
        severity: severity(diag, sev, default_severity),
        resolve: resolve(diag, lookup, res),
    }
}

fn compile_correlation(
    diag: &mut Diagnostics<'_>,
    lookup: &SignalLookup<'_>,
    set: &RuleSet,
    rule: Spanned<raw::CorrelationRule>,
) -> Option<CorrelationDef> {
    let before_errors = diag.errors.len();
    diag.unsure = false;
    let position = diag.at(rule.value.id.referenced);
    let r = rule.value;
    let cause = r.cause.value;
    let cause_signals = lookup.resolve(diag, cause.signals).unwrap_or_default();
    let cause_attrs = attributes_of(set, &cause_signals);
    let group_by = match &cause.group_by {
        None => Selector::Entity,
        Some(g) => selector(diag, &g.value, g.referenced, &cause_attrs).unwrap_or(Selector::Entity),
    };

    let mut all_attrs = cause_attrs.clone();
    let effects = effects(diag, lookup, set, r.effects, &cause_attrs, &mut all_attrs);
    let (before, after) = window(diag, r.window.as_ref(), !effects.is_empty());
    let min_effects = r.min_effects.as_ref().map_or(1, |m| m.value);
    if min_effects > 0 && effects.is_empty() {
        let loc = r
            .min_effects
            .as_ref()
            .map_or(r.title.referenced, |m| m.referenced);
        diag.error(
            loc,
            format!("min_effects is {min_effects} but the rule lists no effects"),
        );
    }
    let min_count = at_least_one(diag, "min_count", cause.min_count.as_ref());
    let min_entities = at_least_one(diag, "min_entities", cause.min_entities.as_ref());
    let root = root(diag, cause.root, &cause_attrs);
    let count_by = match &cause.count_by {
        None => Selector::Entity,
        Some(c) => match c.value.as_str() {
            "entity" => Selector::Entity,
            "workload" => Selector::Workload,
            "node" => Selector::Node,
            "namespace" => Selector::Namespace,
            other => {
                diag.error(
                    c.referenced,
                    format!("count_by `{other}`: cause entities are counted by entity, workload, node or namespace"),
                );
                Selector::Entity
            }
        },
    };
    let hold = cause
        .hold
        .as_ref()
        .and_then(|h| span(diag, h, "cause.hold"))
        .unwrap_or(Span::ZERO);
    let Presentation {
        title,
        summary,
        severity: sev,
        resolve,
    } = presentation(
        diag,
        lookup,
        &all_attrs,
        Severity::Warning,
        &r.title,
        r.summary.as_ref(),
        &r.severity,
        r.resolve,
    );

    if hold > Span::ZERO
        && resolve.signals.is_empty()
        && let Some(h) = &cause.hold
    {
        diag.error(
            h.referenced,
            "`hold` waits for a cause to end, but the rule has no `resolve.signals` that say it ended",
        );
    }
    if diag.errors.len() > before_errors {
        return None;
    }
    Some(CorrelationDef {
        id: r.id.value,
        description: r.description.unwrap_or_default(),
        position,
        cause_signals,
        group_by,
        root,
        min_count,
        min_entities,
        count_by,
        hold,
        effects,
        before,
        after,
        min_effects,
        severity: sev,
        title,
        summary,
        resolve,
    })
}

fn compile_absence(
    diag: &mut Diagnostics<'_>,
    lookup: &SignalLookup<'_>,
    set: &RuleSet,
    rule: Spanned<raw::AbsenceRule>,
) -> Option<AbsenceDef> {
    let before_errors = diag.errors.len();
    diag.unsure = false;
    let position = diag.at(rule.value.id.referenced);
    let r = rule.value;
    let when_loc = r.when.referenced;
    let when = r.when.value;
    let signals = lookup.resolve(diag, when.signals).unwrap_or_default();
    for id in &signals {
        let def = &set.signals[id.0 as usize];
        if when.duration.is_some() && !def.state {
            diag.error(
                when_loc,
                format!(
                    "`for:` measures how long a state lasts, but signal `{}` is not a state signal (add `state: true` to it)",
                    def.id
                ),
            );
        }
    }
    let attrs = attributes_of(set, &signals);
    let duration = when
        .duration
        .as_ref()
        .and_then(|d| span(diag, d, "for"))
        .unwrap_or(Span::ZERO);
    let min_entities = at_least_one(diag, "min_entities", when.min_entities.as_ref());
    let min_count = at_least_one(diag, "min_count", when.min_count.as_ref());
    let absent = match r.absent {
        Some(a) => lookup.resolve(diag, a).unwrap_or_default(),
        None => Vec::new(),
    };
    let silent_peer = r.silent_peer.map(|sp| {
        let sp = sp.value;
        SilentPeerDef {
            min_lines: sp.min_lines.as_ref().map_or(10, |m| m.value),
            lookback: sp
                .lookback
                .as_ref()
                .and_then(|l| span(diag, l, "lookback"))
                .unwrap_or(Span::from_secs(600)),
            quiet: span(diag, &sp.quiet, "quiet").unwrap_or(Span::from_secs(120)),
        }
    });
    // The engine opens an absence rule on a state held `for:` long, or on
    // a silent peer: with neither, `absent:` alone never fires.
    if silent_peer.is_none() && duration == Span::ZERO {
        let message = if absent.is_empty() {
            "an absence rule needs `silent_peer:` or a `for:` (how long the state must last): something must be missing"
        } else {
            "`absent:` alone never fires: an absence rule needs a `for:` (how long the state must last without them) or `silent_peer:`"
        };
        diag.error(when_loc, message);
    }
    if let Some(sp) = &silent_peer
        && sp.quiet > sp.lookback
    {
        diag.error(
            when_loc,
            format!(
                "impossible window: silent_peer.quiet ({}) is longer than its lookback ({})",
                sp.quiet, sp.lookback
            ),
        );
    }
    // An absence rule's root is named from the entity in the state (or the
    // silent peer), never from attributes.
    let root = root(diag, r.root, &BTreeSet::new());
    let mut all_attrs = attrs.clone();
    let effects = effects(diag, lookup, set, r.effects, &attrs, &mut all_attrs);
    let (before, after) = window(diag, r.window.as_ref(), !effects.is_empty());
    let Presentation {
        title,
        summary,
        severity: sev,
        resolve,
    } = presentation(
        diag,
        lookup,
        &all_attrs,
        Severity::Critical,
        &r.title,
        r.summary.as_ref(),
        &r.severity,
        r.resolve,
    );

    if diag.errors.len() > before_errors {
        return None;
    }
    Some(AbsenceDef {
        id: r.id.value,
        description: r.description.unwrap_or_default(),
        position,
        signals,
        min_entities,
        min_count,
        duration,
        absent,
        silent_peer,
        effects,
        before,
        after,
        severity: sev,
        root,
        title,
        summary,
        resolve,
    })
}

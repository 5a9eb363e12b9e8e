//! Rule files as written: the YAML shape, permissive in values, strict in
//! keys (`deny_unknown_fields`), every value that [`super::compile`] checks
//! carried with its position so its errors can say file:line:col.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// One rule file. Any of the three sections may be absent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleFile {
    #[serde(default)]
    pub(crate) signals: Vec<Spanned<SignalRule>>,
    #[serde(default)]
    pub(crate) correlations: Vec<Spanned<CorrelationRule>>,
    #[serde(default)]
    pub(crate) absences: Vec<Spanned<AbsenceRule>>,
}

/// A string or a list of strings: `reason: FailedMount` or `reason: [A, B]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `signals:` classify one record into a named signal.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignalRule {
    pub(crate) id: Spanned<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(rename = "match")]
    pub(crate) matcher: Spanned<Matcher>,
    /// What the signal is about: `self` (default), `workload`, `node`.
    #[serde(default)]
    pub(crate) entity: Option<Spanned<String>>,
    /// One line with `{attribute}` placeholders.
    #[serde(default)]
    pub(crate) summary: Option<Spanned<String>>,
    /// Fixed attributes, merged under the regex captures.
    #[serde(default)]
    pub(crate) attributes: BTreeMap<String, String>,
    /// Further regexes over the message, run only once the signal matched:
    /// their captures become attributes, and a regex that does not match
    /// does not stop the signal (the error text of a failed pull, say).
    #[serde(default)]
    pub(crate) extract: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) severity: Option<Spanned<String>>,
    /// For state signals (Pod/Node transitions): the signal lasts until the
    /// entity's next transition, so `for:` in absence rules can measure it.
    #[serde(default)]
    pub(crate) state: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Matcher {
    pub(crate) source: Spanned<OneOrMany>,
    #[serde(default)]
    pub(crate) kind: Option<OneOrMany>,
    #[serde(default)]
    pub(crate) reason: Option<OneOrMany>,
    #[serde(default)]
    pub(crate) message: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) container: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) name: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) namespace: Option<Spanned<String>>,
    /// Minimum record severity.
    #[serde(default)]
    pub(crate) severity: Option<Spanned<String>>,
    /// Label or field name -> regex (captures become attributes).
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub(crate) fields: BTreeMap<String, Spanned<String>>,
}

/// `correlations:` a cause and the effects it explains.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CorrelationRule {
    pub(crate) id: Spanned<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    pub(crate) cause: Spanned<Cause>,
    #[serde(default)]
    pub(crate) effects: Vec<Spanned<Effect>>,
    #[serde(default)]
    pub(crate) window: Option<Spanned<Window>>,
    #[serde(default)]
    pub(crate) min_effects: Option<Spanned<u32>>,
    #[serde(default)]
    pub(crate) severity: Option<Spanned<String>>,
    pub(crate) title: Spanned<String>,
    #[serde(default)]
    pub(crate) summary: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) resolve: Option<Spanned<Resolve>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cause {
    pub(crate) signals: Spanned<OneOrMany>,
    /// How causes form one incident: `entity` (default), `workload`, `node`,
    /// `namespace`, or an attribute name.
    #[serde(default)]
    pub(crate) group_by: Option<Spanned<String>>,
    /// What the incident names as root: `entity` (default), `workload`, or
    /// `{kind: K, name: "{attr}"}`.
    #[serde(default)]
    pub(crate) root: Option<Spanned<RootSpec>>,
    /// The cause must be seen at least this many times before it stands on
    /// its own (with `min_effects: 0`).
    #[serde(default)]
    pub(crate) min_count: Option<Spanned<u32>>,
    /// At least this many distinct cause entities (a registry outage is
    /// several pods failing, not one typo in one image).
    #[serde(default)]
    pub(crate) min_entities: Option<Spanned<u32>>,
    /// What `min_entities` counts: `entity` (default), `workload`, `node`,
    /// `namespace` (a registry outage is pods of several workloads failing,
    /// a bad image tag is one workload's).
    #[serde(default)]
    pub(crate) count_by: Option<Spanned<String>>,
    /// A cause must last this long (no `resolve.signals` on it meanwhile)
    /// before the incident opens: a NotReady blip is not an outage.
    #[serde(default)]
    pub(crate) hold: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RootSpec {
    Named(String),
    Synthetic(RootObject),
}

/// `root: {kind: K, name: N, namespace: NS}`: an entity no record is about.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RootObject {
    pub(crate) kind: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Effect {
    pub(crate) signals: Spanned<OneOrMany>,
    /// How an effect is tied to the cause: `node`, `namespace`, `workload`,
    /// `entity`, or `{cause: X, effect: Y}` pairs of attributes.
    #[serde(default)]
    pub(crate) join: Vec<Spanned<JoinSpec>>,
    /// How an effect is tied to the cause through the object graph: a path
    /// both take (`node`), or one each (`{cause: services, effect:
    /// '{service}'}`); tied when they reach a common object. With `join`
    /// as well, either ties.
    #[serde(default)]
    pub(crate) via: Option<Spanned<JoinSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum JoinSpec {
    Same(String),
    Pair(Pair),
}

/// `{cause: X, effect: Y}`: one value per side.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pair {
    pub(crate) cause: String,
    pub(crate) effect: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Window {
    #[serde(default)]
    pub(crate) before: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) after: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resolve {
    /// Resolved after this long without a new record.
    #[serde(default)]
    pub(crate) quiet: Option<Spanned<String>>,
    /// Resolved at once when one of these signals is seen on the root.
    #[serde(default)]
    pub(crate) signals: Option<Spanned<OneOrMany>>,
}

/// `absences:` a condition that holds while something else is missing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AbsenceRule {
    pub(crate) id: Spanned<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// The condition: at least `min_entities` entities in a state signal for
    /// `for`, or the evidence signal seen `min_count` times.
    pub(crate) when: Spanned<AbsenceCondition>,
    /// Signals that must NOT be seen while the condition holds.
    #[serde(default)]
    pub(crate) absent: Option<Spanned<OneOrMany>>,
    /// A peer of the evidence's entities (same workload) whose logs were
    /// busy and fell silent.
    #[serde(default)]
    pub(crate) silent_peer: Option<Spanned<SilentPeer>>,
    /// Effects joined to the root entity, as in correlations.
    #[serde(default)]
    pub(crate) effects: Vec<Spanned<Effect>>,
    #[serde(default)]
    pub(crate) window: Option<Spanned<Window>>,
    #[serde(default)]
    pub(crate) severity: Option<Spanned<String>>,
    /// The entity named as root when the condition is not about one entity.
    #[serde(default)]
    pub(crate) root: Option<Spanned<RootSpec>>,
    pub(crate) title: Spanned<String>,
    #[serde(default)]
    pub(crate) summary: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) resolve: Option<Spanned<Resolve>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AbsenceCondition {
    pub(crate) signals: Spanned<OneOrMany>,
    #[serde(default)]
    pub(crate) min_entities: Option<Spanned<u32>>,
    #[serde(default)]
    pub(crate) min_count: Option<Spanned<u32>>,
    #[serde(default, rename = "for")]
    pub(crate) duration: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SilentPeer {
    /// The peer logged at least this many lines in `lookback` before going quiet.
    #[serde(default)]
    pub(crate) min_lines: Option<Spanned<u32>>,
    #[serde(default)]
    pub(crate) lookback: Option<Spanned<String>>,
    /// How long without a line counts as silent.
    pub(crate) quiet: Spanned<String>,
}

/// `docs/rules.md` is the reference of this format: each of its tables of
/// keys names exactly the keys the loader accepts at that place, and no
/// other. The accepted keys come from the derived `Deserialize` impls above
/// (`serde_introspect`: the names serde matches, renames applied), and every
/// struct denies unknown fields, so nothing else is accepted (the object
/// forms of the untagged values, `root: {kind, name}` and `{cause: X,
/// effect: Y}`, are structs of their own for that). A new struct above
/// needs a line in `tables()` below.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod rules_reference {
    use std::collections::BTreeSet;

    use serde::de::DeserializeOwned;
    use serde_aux::serde_introspection::serde_introspect;

    use super::*;
    use crate::graph::path::{OBJECT_ATTRIBUTES, Step};
    use crate::model::Source;
    use crate::rules::{INCIDENT_VARS, RuleSource, compile};

    /// Tables of keys the rule-test runner reads (`src/rule_tests.rs`, in the
    /// `epicenter` crate, out of this one's reach): not checked here.
    const NOT_CHECKED_HERE: &[&str] = &[
        "Test file keys",
        "Test case keys",
        "Expectation keys",
        "Expected root keys",
    ];

    /// One table of keys in the doc: its heading, the keys the loader
    /// accepts there, and whether the struct rejects any other key.
    struct Table {
        heading: &'static str,
        accepted: Vec<String>,
        denies_unknown: bool,
    }

    fn derived<T: DeserializeOwned>(heading: &'static str) -> Table {
        Table {
            heading,
            accepted: serde_introspect::<T>()
                .iter()
                .map(|k| k.to_string())
                .collect(),
            denies_unknown: denies_unknown_fields::<T>(),
        }
    }

    fn tables() -> Vec<Table> {
        vec![
            derived::<RuleFile>("File keys"),
            derived::<SignalRule>("Signal keys"),
            derived::<Matcher>("Match keys"),
            derived::<CorrelationRule>("Correlation keys"),
            derived::<Cause>("Cause keys"),
            derived::<Effect>("Effect keys"),
            derived::<Pair>("Pair keys"),
            derived::<RootObject>("Root object keys"),
            derived::<Window>("Window keys"),
            derived::<Resolve>("Resolve keys"),
            derived::<AbsenceRule>("Absence keys"),
            derived::<AbsenceCondition>("When keys"),
            derived::<SilentPeer>("Silent peer keys"),
        ]
    }

    fn denies_unknown_fields<T: DeserializeOwned>() -> bool {
        match serde_saphyr::from_str::<T>("zz_not_a_key: 1\n") {
            Ok(_) => false,
            Err(e) => e.to_string().contains("unknown field"),
        }
    }

    fn doc() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/rules.md");
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The headings of `doc` with the lines of their sections (up to the
    /// next heading of any level); lines in code fences are never headings.
    fn sections(doc: &str) -> Vec<(String, Vec<&str>)> {
        let mut out: Vec<(String, Vec<&str>)> = Vec::new();
        let mut fenced = false;
        for line in doc.lines() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
            }
            if !fenced && line.starts_with('#') {
                let title = line.trim_start_matches('#').trim().to_string();
                out.push((title, Vec::new()));
            } else if let Some((_, lines)) = out.last_mut() {
                lines.push(line);
            }
        }
        out
    }

    /// The first column of the first table of a section: one name in
    /// backticks per row (`` `key` ``, `` `{placeholder}` ``).
    fn first_column(lines: &[&str]) -> Result<Vec<String>, String> {
        let rows: Vec<&str> = lines
            .iter()
            .map(|l| l.trim())
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .collect();
        if rows.len() < 3 {
            return Err("no table (a header row, a `---` row and one row per name)".into());
        }
        rows[2..]
            .iter()
            .map(|row| {
                let cell = row.split('|').nth(1).unwrap_or_default().trim();
                cell.strip_prefix('`')
                    .and_then(|c| c.strip_suffix('`'))
                    .filter(|c| !c.is_empty() && !c.contains('`'))
                    .map(str::to_string)
                    .ok_or_else(|| {
                        format!("row `{row}`: the first column must be one name in backticks")
                    })
            })
            .collect()
    }

    /// What differs between the names a section documents and the names
    /// the loader accepts there.
    fn compare(doc: &str, heading: &str, accepted: &[String], what: &str) -> Vec<String> {
        let all = sections(doc);
        let found: Vec<&(String, Vec<&str>)> = all.iter().filter(|(h, _)| h == heading).collect();
        let lines = match found.as_slice() {
            [(_, lines)] => lines,
            [] => return vec![format!("no section `{heading}` (it lists the {what})")],
            _ => return vec![format!("{} sections `{heading}`", found.len())],
        };
        let documented = match first_column(lines) {
            Ok(d) => d,
            Err(e) => return vec![format!("`{heading}`: {e}")],
        };
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for d in &documented {
            if !seen.insert(d.as_str()) {
                problems.push(format!("`{heading}` names `{d}` twice"));
            }
        }
        let accepted: BTreeSet<&str> = accepted.iter().map(String::as_str).collect();
        for a in accepted.difference(&seen) {
            problems.push(format!(
                "`{heading}`: the loader accepts `{a}`, the doc does not name it"
            ));
        }
        for d in seen.difference(&accepted) {
            problems.push(format!(
                "`{heading}` names `{d}`, which the loader does not accept"
            ));
        }
        problems
    }

    fn assert_no_problems(problems: &[String]) {
        assert!(
            problems.is_empty(),
            "docs/rules.md is out of step with the rule loader:\n  {}",
            problems.join("\n  ")
        );
    }

    #[test]
    fn doc_names_every_key_the_loader_accepts_and_no_other() {
        let doc = doc();
        let tables = tables();
        let mut problems = Vec::new();
        for t in &tables {
            assert!(
                !t.accepted.is_empty(),
                "no keys introspected for `{}`",
                t.heading
            );
            problems.extend(compare(&doc, t.heading, &t.accepted, "keys"));
        }
        // Every table of keys in the doc is one of the above.
        for (heading, _) in sections(&doc) {
            if heading.ends_with(" keys")
                && !tables.iter().any(|t| t.heading == heading)
                && !NOT_CHECKED_HERE.contains(&heading.as_str())
            {
                problems.push(format!(
                    "section `{heading}` is not a table of keys the loader knows"
                ));
            }
        }
        assert_no_problems(&problems);
    }

    #[test]
    fn every_rule_struct_denies_unknown_keys() {
        for t in tables() {
            assert!(
                t.denies_unknown,
                "the struct behind `{}` accepts unknown keys: add #[serde(deny_unknown_fields)]",
                t.heading
            );
        }
    }

    /// The object forms are read as objects, and a key they do not know
    /// is refused (it once was ignored: `root: {kind: K, nmae: N}` loaded).
    #[test]
    fn object_forms_read_and_refuse_unknown_keys() {
        let root: RootSpec =
            serde_saphyr::from_str("{kind: Registry, name: '{registry}', namespace: ns}").unwrap();
        let RootSpec::Synthetic(RootObject {
            kind,
            name,
            namespace,
        }) = root
        else {
            panic!("did not read as a root object");
        };
        assert_eq!(
            (kind.as_str(), name.as_str(), namespace.as_deref()),
            ("Registry", "{registry}", Some("ns"))
        );
        let JoinSpec::Pair(Pair { cause, effect }) =
            serde_saphyr::from_str("{cause: a, effect: b}").unwrap()
        else {
            panic!("did not read as a pair");
        };
        assert_eq!((cause.as_str(), effect.as_str()), ("a", "b"));
        assert!(serde_saphyr::from_str::<RootSpec>("{kind: K, nmae: n, name: n}").is_err());
        assert!(serde_saphyr::from_str::<JoinSpec>("{cause: a, effect: b, via: c}").is_err());
    }

    /// The built-in placeholders of a signal summary, in the loader's own
    /// words (the list is private to `compile`): the error for an unknown
    /// placeholder names them all.
    fn signal_summary_placeholders() -> Vec<String> {
        let probe = RuleSource {
            name: "probe.yaml".into(),
            text: "signals:\n  - id: probe\n    match: {source: log}\n    summary: '{zz_probe}'\n"
                .into(),
        };
        let err = compile(&[probe]).unwrap_err().to_string();
        let (_, list) = err
            .split_once("nor one of ")
            .unwrap_or_else(|| panic!("unexpected error for an unknown placeholder: {err}"));
        list.trim()
            .split(", ")
            .map(|v| format!("{{{v}}}"))
            .collect()
    }

    #[test]
    fn doc_names_every_placeholder_source_step_and_object_attribute() {
        let doc = doc();
        let braced = |names: &mut dyn Iterator<Item = &str>| -> Vec<String> {
            names.map(|n| format!("{{{n}}}")).collect()
        };
        let mut problems = Vec::new();
        problems.extend(compare(
            &doc,
            "Signal summary placeholders",
            &signal_summary_placeholders(),
            "placeholders of a signal summary",
        ));
        problems.extend(compare(
            &doc,
            "Incident placeholders",
            &braced(&mut INCIDENT_VARS.iter().copied()),
            "placeholders of incident titles and summaries",
        ));
        problems.extend(compare(
            &doc,
            "Sources",
            &Source::ALL.map(|s| s.as_str().to_string()),
            "sources",
        ));
        problems.extend(compare(
            &doc,
            "Path steps",
            &Step::ALL.map(|(n, _)| n.to_string()),
            "steps of a `via` path",
        ));
        problems.extend(compare(
            &doc,
            "Object attributes",
            &braced(&mut OBJECT_ATTRIBUTES.iter().map(|o| o.attribute)),
            "attributes a `via` path may start at",
        ));
        assert_no_problems(&problems);
    }
}

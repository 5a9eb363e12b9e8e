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
    Synthetic {
        kind: String,
        name: String,
        #[serde(default)]
        namespace: Option<String>,
    },
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
    Pair { cause: String, effect: String },
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

//! The rule language: YAML files a PrometheusRule author reads at once.
//!
//! Three kinds of rule, each compiled from [`raw`] (as written, with
//! positions) into the typed definitions here:
//!
//! - **signals** classify one record into a named signal, with regex named
//!   captures as attributes;
//! - **correlations** tie effect signals to a cause signal through a join
//!   (same node, namespace, workload, or equal attributes) inside a window
//!   that reaches before and after the cause;
//! - **absences** fire while a condition holds and something else is missing
//!   (no scheduling events; a busy peer gone silent).

mod compile;
mod compose;
mod error;
mod fingerprint;
mod raw;
pub mod template;

pub use compile::{INCIDENT_VARS, RuleSource, compile, compile_packs, yaml_error, yaml_error_in};
pub use compose::{BUILTIN_PACK, Composition, Override, RulePack};
pub use error::{Position, Result, RuleError, RuleErrors};
use regex::Regex;
use template::Template;

use crate::model::{Severity, Source};
use crate::time::Span;

/// Index of a signal definition in [`RuleSet::signals`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignalId(pub u32);

/// What a signal is about, relative to the record's entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityScope {
    Itself,
    Workload,
    Node,
}

#[derive(Debug)]
pub struct SignalDef {
    pub id: String,
    pub description: String,
    pub position: Position,
    pub sources: Vec<Source>,
    pub kinds: Vec<String>,
    pub reasons: Vec<String>,
    pub message: Option<Regex>,
    pub container: Option<Regex>,
    pub name: Option<Regex>,
    pub namespace: Option<Regex>,
    pub min_severity: Option<Severity>,
    pub labels: Vec<(String, Regex)>,
    pub fields: Vec<(String, Regex)>,
    pub entity: EntityScope,
    pub summary: Template,
    pub attributes: Vec<(String, String)>,
    /// Regexes whose captures add attributes, without filtering.
    pub extract: Vec<Regex>,
    /// Every attribute name this signal can carry (captures and fixed ones).
    pub attribute_names: std::collections::BTreeSet<String>,
    pub severity: Severity,
    pub state: bool,
}

/// A value read from a signal for grouping or joining.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    Entity,
    Workload,
    Node,
    Namespace,
    Name,
    Kind,
    /// The same value for everything: "anywhere in the cluster".
    Cluster,
    Attribute(String),
}

impl Selector {
    pub fn describe(&self) -> &str {
        match self {
            Selector::Entity => "entity",
            Selector::Workload => "workload",
            Selector::Node => "node",
            Selector::Namespace => "namespace",
            Selector::Name => "name",
            Selector::Kind => "kind",
            Selector::Cluster => "cluster",
            Selector::Attribute(a) => a,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinDef {
    pub cause: Selector,
    pub effect: Selector,
}

/// A join through the object graph: the path each side takes.
#[derive(Debug)]
pub struct ViaDef {
    pub cause: crate::graph::path::Path,
    pub effect: crate::graph::path::Path,
}

impl ViaDef {
    /// `node`, or `services ~ {service}` (cause ~ effect).
    pub fn describe(&self) -> String {
        if self.cause.text == self.effect.text {
            self.cause.text.clone()
        } else {
            format!("{} ~ {}", self.cause.text, self.effect.text)
        }
    }
}

#[derive(Debug)]
pub struct EffectDef {
    pub signals: Vec<SignalId>,
    pub join: Vec<JoinDef>,
    pub via: Option<ViaDef>,
}

/// What an incident names as its root cause.
#[derive(Debug)]
pub enum RootDef {
    /// The cause signal's own entity.
    Entity,
    /// The cause entity's outermost controller.
    Workload,
    /// The node the cause is on.
    Node,
    /// An entity that no record is about (a registry, the scheduler), named
    /// from the cause's attributes.
    Synthetic {
        kind: String,
        name: Template,
        namespace: Option<Template>,
    },
}

#[derive(Debug)]
pub struct ResolveDef {
    pub quiet: Span,
    pub signals: Vec<SignalId>,
}

#[derive(Debug)]
pub struct CorrelationDef {
    pub id: String,
    pub description: String,
    pub position: Position,
    pub cause_signals: Vec<SignalId>,
    pub group_by: Selector,
    pub root: RootDef,
    pub min_count: u32,
    pub min_entities: u32,
    /// What `min_entities` counts: distinct cause entities (`Entity`), or
    /// their workloads, nodes, namespaces.
    pub count_by: Selector,
    /// How long a cause entity must go without a resolving signal before
    /// the incident opens ([`Span::ZERO`]: at once).
    pub hold: Span,
    pub effects: Vec<EffectDef>,
    pub before: Span,
    pub after: Span,
    pub min_effects: u32,
    pub severity: Severity,
    pub title: Template,
    pub summary: Template,
    pub resolve: ResolveDef,
}

#[derive(Debug)]
pub struct SilentPeerDef {
    pub min_lines: u32,
    pub lookback: Span,
    pub quiet: Span,
}

#[derive(Debug)]
pub struct AbsenceDef {
    pub id: String,
    pub description: String,
    pub position: Position,
    pub signals: Vec<SignalId>,
    pub min_entities: u32,
    pub min_count: u32,
    pub duration: Span,
    pub absent: Vec<SignalId>,
    pub silent_peer: Option<SilentPeerDef>,
    pub effects: Vec<EffectDef>,
    pub before: Span,
    pub after: Span,
    pub severity: Severity,
    pub root: RootDef,
    pub title: Template,
    pub summary: Template,
    pub resolve: ResolveDef,
}

/// A validated rule set, ready for the classifier and the engine.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub signals: Vec<SignalDef>,
    pub correlations: Vec<CorrelationDef>,
    pub absences: Vec<AbsenceDef>,
    /// For each signal: the correlations reading it as cause / as effect
    /// (with the effect index), and the absences reading it.
    pub(crate) uses: Vec<SignalUses>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct SignalUses {
    pub(crate) as_cause: Vec<usize>,
    pub(crate) as_effect: Vec<(usize, usize)>,
    pub(crate) as_resolve: Vec<usize>,
    pub(crate) as_absence_condition: Vec<usize>,
    pub(crate) as_absent: Vec<usize>,
    pub(crate) as_absence_resolve: Vec<usize>,
    pub(crate) as_absence_effect: Vec<(usize, usize)>,
}

impl RuleSet {
    pub fn signal(&self, id: SignalId) -> &SignalDef {
        &self.signals[id.0 as usize]
    }

    pub fn signal_id(&self, name: &str) -> Option<SignalId> {
        self.signals
            .iter()
            .position(|s| s.id == name)
            .map(|i| SignalId(i as u32))
    }

    /// The longest span any rule looks back or ahead: how long the engine
    /// must keep a signal that might still join something.
    pub fn horizon(&self) -> Span {
        let c = self
            .correlations
            .iter()
            .flat_map(|c| [c.before, c.after, c.resolve.quiet]);
        let a = self.absences.iter().flat_map(|a| {
            [a.duration, a.resolve.quiet, a.before, a.after]
                .into_iter()
                .chain(a.silent_peer.iter().map(|s| s.lookback))
        });
        c.chain(a).max().unwrap_or(Span::ZERO)
    }

    fn index(&mut self) {
        let mut uses = vec![SignalUses::default(); self.signals.len()];
        for (ci, c) in self.correlations.iter().enumerate() {
            for s in &c.cause_signals {
                uses[s.0 as usize].as_cause.push(ci);
            }
            for (ei, e) in c.effects.iter().enumerate() {
                for s in &e.signals {
                    uses[s.0 as usize].as_effect.push((ci, ei));
                }
            }
            for s in &c.resolve.signals {
                uses[s.0 as usize].as_resolve.push(ci);
            }
        }
        for (ai, a) in self.absences.iter().enumerate() {
            for s in &a.signals {
                uses[s.0 as usize].as_absence_condition.push(ai);
            }
            for s in &a.absent {
                uses[s.0 as usize].as_absent.push(ai);
            }
            for s in &a.resolve.signals {
                uses[s.0 as usize].as_absence_resolve.push(ai);
            }
            for (ei, e) in a.effects.iter().enumerate() {
                for s in &e.signals {
                    uses[s.0 as usize].as_absence_effect.push((ai, ei));
                }
            }
        }
        self.uses = uses;
    }
}

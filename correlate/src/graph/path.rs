//! Paths through the graph: how a `via:` join reaches from a signal to the
//! objects its cause and its effect meet at.
//!
//! A path is a start and steps, written with dots: `node` (the signal's
//! node), `claims.storage_class.provisioner`, `services`, `{service}.pods`.
//! The start is the signal's entity, or an object named by one of its
//! attributes in braces (`{service}`: the Service `service_namespace/service`,
//! see [`OBJECT_ATTRIBUTES`]). A cause and an effect are tied when their
//! paths reach a common object.

use super::{Graph, Rel};
use crate::incident::entity_key;
use crate::model::Entity;
use crate::time::EventTime;

/// At most this many objects at any step: a path that fans out to a whole
/// cluster ties nothing in particular.
pub const MAX_FANOUT: usize = 256;

/// One step along the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// A Pod's Node (a Node is its own).
    Node,
    /// The nearest controller.
    Owner,
    /// The outermost controller (the object itself when it has none).
    Workload,
    /// A Service's Pods (its EndpointSlices' backends), a Node's Pods, a
    /// controller's Pods.
    Pods,
    /// The Services that route to a Pod.
    Services,
    /// A Pod's PersistentVolumeClaims.
    Claims,
    /// A claim's PersistentVolume.
    Volume,
    /// A claim's or a volume's StorageClass.
    StorageClass,
    /// A StorageClass's, a volume's or a claim's provisioner.
    Provisioner,
    /// The Service an admission webhook or a ClusterIP names.
    Service,
}

impl Step {
    pub const ALL: [(&'static str, Step); 10] = [
        ("node", Step::Node),
        ("owner", Step::Owner),
        ("workload", Step::Workload),
        ("pods", Step::Pods),
        ("services", Step::Services),
        ("claims", Step::Claims),
        ("volume", Step::Volume),
        ("storage_class", Step::StorageClass),
        ("provisioner", Step::Provisioner),
        ("service", Step::Service),
    ];

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.iter().find(|(n, _)| *n == s).map(|(_, st)| *st)
    }
}

/// An attribute that names an object: its kind, the attribute holding its
/// namespace, and whether it is namespaced (then the signal's own
/// namespace when that attribute is absent).
pub struct ObjectAttribute {
    pub attribute: &'static str,
    pub kind: &'static str,
    pub namespace_attribute: Option<&'static str>,
}

pub const OBJECT_ATTRIBUTES: &[ObjectAttribute] = &[
    ObjectAttribute {
        attribute: "service",
        kind: "Service",
        namespace_attribute: Some("service_namespace"),
    },
    ObjectAttribute {
        attribute: "claim",
        kind: "PersistentVolumeClaim",
        namespace_attribute: Some("claim_namespace"),
    },
    ObjectAttribute {
        attribute: "pod",
        kind: "Pod",
        namespace_attribute: Some("pod_namespace"),
    },
    ObjectAttribute {
        attribute: "webhook",
        kind: "Webhook",
        namespace_attribute: None,
    },
    ObjectAttribute {
        attribute: "storage_class",
        kind: "StorageClass",
        namespace_attribute: None,
    },
    ObjectAttribute {
        attribute: "provisioner",
        kind: "Provisioner",
        namespace_attribute: None,
    },
    ObjectAttribute {
        attribute: "driver",
        kind: "Provisioner",
        namespace_attribute: None,
    },
    ObjectAttribute {
        attribute: "volume",
        kind: "PersistentVolume",
        namespace_attribute: None,
    },
    ObjectAttribute {
        attribute: "node",
        kind: "Node",
        namespace_attribute: None,
    },
    ObjectAttribute {
        attribute: "resolver",
        kind: "IP",
        namespace_attribute: None,
    },
];

/// Where a path starts.
#[derive(Debug, PartialEq, Eq)]
pub enum Start {
    Entity,
    /// The object an attribute names (an entry of [`OBJECT_ATTRIBUTES`]).
    Attribute(&'static ObjectAttribute),
}

impl std::fmt::Debug for ObjectAttribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{}}}", self.attribute)
    }
}

impl PartialEq for ObjectAttribute {
    fn eq(&self, other: &Self) -> bool {
        self.attribute == other.attribute
    }
}

impl Eq for ObjectAttribute {}

/// A compiled path.
#[derive(Debug, PartialEq, Eq)]
pub struct Path {
    pub start: Start,
    pub steps: Vec<Step>,
    /// As written, for explanations.
    pub text: String,
}

/// Why a path does not parse.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("an empty path: write steps such as `node` or `{{service}}.pods`")]
    Empty,
    #[error("`{0}` is not a step (steps: {steps})", steps = step_names())]
    UnknownStep(String),
    #[error("`{{{0}}}` names no kind of object (attributes that do: {attrs})", attrs = attribute_names())]
    UnknownAttribute(String),
    #[error("`{{...}}` may only start a path, found it at `{0}`")]
    AttributeNotFirst(String),
}

fn step_names() -> String {
    Step::ALL
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn attribute_names() -> String {
    OBJECT_ATTRIBUTES
        .iter()
        .map(|a| a.attribute)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, PathError> {
        let text = text.trim();
        if text == "entity" {
            return Ok(Path {
                start: Start::Entity,
                steps: Vec::new(),
                text: text.to_string(),
            });
        }
        let mut parts = text.split('.').map(str::trim).peekable();
        let mut start = Start::Entity;
        if let Some(first) = parts.peek()
            && let Some(attr) = first.strip_prefix('{').and_then(|a| a.strip_suffix('}'))
        {
            let known = OBJECT_ATTRIBUTES
                .iter()
                .find(|o| o.attribute == attr)
                .ok_or_else(|| PathError::UnknownAttribute(attr.to_string()))?;
            start = Start::Attribute(known);
            parts.next();
        }
        let mut steps = Vec::new();
        for p in parts {
            if p.is_empty() {
                return Err(PathError::Empty);
            }
            if p.starts_with('{') {
                return Err(PathError::AttributeNotFirst(p.to_string()));
            }
            steps.push(Step::parse(p).ok_or_else(|| PathError::UnknownStep(p.to_string()))?);
        }
        if start == Start::Entity && steps.is_empty() {
            return Err(PathError::Empty);
        }
        Ok(Path {
            start,
            steps,
            text: text.to_string(),
        })
    }

    /// The attributes the path reads (its start's name and namespace).
    pub fn attribute(&self) -> Option<&'static str> {
        match &self.start {
            Start::Entity => None,
            Start::Attribute(a) => Some(a.attribute),
        }
    }

    /// The objects the path reaches from a signal at `at`, as engine keys,
    /// sorted and without repeats. Empty when it reaches nothing the graph
    /// or the signal knows: an object an attribute names counts only once
    /// the graph knows it (a record stated it), so a join can tell "not
    /// connected" from "not known".
    pub fn eval(
        &self,
        graph: &Graph,
        entity: &Entity<'_>,
        attrs: &[(String, String)],
        at: EventTime,
    ) -> Vec<String> {
        let attr = |k: &str| {
            attrs
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let mut keys = match &self.start {
            Start::Entity => vec![entity_key(entity)],
            Start::Attribute(o) => {
                let Some(name) = attr(o.attribute) else {
                    return Vec::new();
                };
                match o.namespace_attribute {
                    None => vec![format!("{}/{name}", o.kind)],
                    Some(ns_attr) => {
                        let Some(ns) = attr(ns_attr).or(entity.namespace.as_deref()) else {
                            return Vec::new();
                        };
                        vec![format!("{}/{ns}/{name}", o.kind)]
                    }
                }
            }
        };
        if self.steps.is_empty() && self.start != Start::Entity {
            keys.retain(|k| graph.id(k).is_some());
        }
        for (i, step) in self.steps.iter().enumerate() {
            let mut next = Vec::new();
            for k in &keys {
                if i == 0
                    && self.start == Start::Entity
                    && let Some(v) = from_entity(*step, entity)
                {
                    next.push(v);
                    continue;
                }
                if let Some(id) = graph.id(k) {
                    next.extend(
                        follow(graph, *step, id, at)
                            .into_iter()
                            .map(|t| graph.name(t).to_string()),
                    );
                } else if *step == Step::Workload {
                    next.push(k.clone());
                }
            }
            next.sort_unstable();
            next.dedup();
            next.truncate(MAX_FANOUT);
            keys = next;
            if keys.is_empty() {
                break;
            }
        }
        keys
    }
}

/// What the signal's own entity says about a first step, before the graph.
fn from_entity(step: Step, e: &Entity<'_>) -> Option<String> {
    match step {
        Step::Node if e.kind == "Node" => Some(entity_key(e)),
        Step::Node => e.node.as_ref().map(|n| format!("Node/{n}")),
        Step::Owner => e.owners.first().map(|o| match &e.namespace {
            Some(ns) => format!("{}/{ns}/{}", o.kind, o.name),
            None => format!("{}/{}", o.kind, o.name),
        }),
        Step::Workload if !e.owners.is_empty() => Some(entity_key(&e.workload())),
        _ => None,
    }
}

fn kind_of(graph: &Graph, id: u32) -> &str {
    graph.name(id).split('/').next().unwrap_or_default()
}

/// One step from one object.
fn follow(graph: &Graph, step: Step, id: u32, at: EventTime) -> Vec<u32> {
    match step {
        Step::Node if kind_of(graph, id) == "Node" => vec![id],
        Step::Node => graph.targets(id, Rel::Node, at),
        Step::Owner => graph.targets(id, Rel::Owner, at),
        Step::Workload => {
            let mut cur = id;
            for _ in 0..4 {
                match graph.targets(cur, Rel::Owner, at).first() {
                    Some(&o) => cur = o,
                    None => break,
                }
            }
            vec![cur]
        }
        Step::Pods => match kind_of(graph, id) {
            "Service" => {
                let mut pods = graph.targets(id, Rel::Backend, at);
                for slice in graph.sources(id, Rel::Service, at) {
                    pods.extend(graph.targets(slice, Rel::Backend, at));
                }
                pods
            }
            "Node" => graph.sources(id, Rel::Node, at),
            _ => {
                let mut pods = Vec::new();
                let mut frontier = vec![id];
                for _ in 0..3 {
                    let mut next = Vec::new();
                    for o in frontier {
                        for c in graph.sources(o, Rel::Owner, at) {
                            if kind_of(graph, c) == "Pod" {
                                pods.push(c);
                            } else {
                                next.push(c);
                            }
                        }
                    }
                    frontier = next;
                }
                pods
            }
        },
        Step::Services => {
            let mut out = Vec::new();
            for s in graph.sources(id, Rel::Backend, at) {
                if kind_of(graph, s) == "Service" {
                    out.push(s);
                } else {
                    out.extend(graph.targets(s, Rel::Service, at));
                }
            }
            out
        }
        Step::Claims => graph.targets(id, Rel::Claim, at),
        Step::Volume => graph.targets(id, Rel::Volume, at),
        Step::StorageClass => {
            let direct = graph.targets(id, Rel::StorageClass, at);
            if !direct.is_empty() {
                return direct;
            }
            graph
                .targets(id, Rel::Volume, at)
                .into_iter()
                .flat_map(|v| graph.targets(v, Rel::StorageClass, at))
                .collect()
        }
        Step::Provisioner => {
            let direct = graph.targets(id, Rel::Provisioner, at);
            if !direct.is_empty() {
                return direct;
            }
            follow(graph, Step::StorageClass, id, at)
                .into_iter()
                .chain(graph.targets(id, Rel::Volume, at))
                .flat_map(|o| graph.targets(o, Rel::Provisioner, at))
                .collect()
        }
        Step::Service => graph.targets(id, Rel::Service, at),
    }
}

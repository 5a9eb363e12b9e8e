//! The normalised record every decoder produces and every rule reads.
//!
//! An [`Event`] borrows its text from the input line (`Cow<'a, str>`): the
//! classifier looks at every record, but only the few that become signals are
//! ever copied ([`Event::into_owned`]). Noise costs no allocation here.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::EventTime;

/// Where a record came from. Rules match on it first, so it also keys the
/// classifier's prefilters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A Kubernetes Event (core/v1 or events.k8s.io/v1).
    K8sEvent,
    /// A state transition derived from a Pod object.
    Pod,
    /// A state transition derived from a Node object.
    Node,
    /// One alert of an Alertmanager webhook body.
    Alert,
    /// One container log line.
    Log,
    /// The state of another kind of object (a Service, an EndpointSlice, a
    /// webhook configuration, a claim, a volume, a StorageClass...): what it
    /// says about the object graph. Its `fields` name the relations
    /// ([`crate::graph::Rel::from_field`]), each value an object key
    /// (`Kind/namespace/name`).
    Object,
}

impl Source {
    pub const ALL: [Source; 6] = [
        Source::K8sEvent,
        Source::Pod,
        Source::Node,
        Source::Alert,
        Source::Log,
        Source::Object,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::K8sEvent => "k8s-event",
            Source::Pod => "pod",
            Source::Node => "node",
            Source::Alert => "alert",
            Source::Log => "log",
            Source::Object => "object",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|src| src.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a record or an incident is. Ordered: `Info < Warning < Critical`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s.to_ascii_lowercase().as_str() {
            "info" | "normal" | "none" => Some(Severity::Info),
            "warning" | "warn" => Some(Severity::Warning),
            "critical" | "error" | "page" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A controller above an object in its owner chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Owner<'a> {
    pub kind: Cow<'a, str>,
    pub name: Cow<'a, str>,
}

/// An owned kind, without an allocation for the kinds records are about.
fn owned_kind(kind: Cow<'_, str>) -> Cow<'static, str> {
    const KINDS: &[&str] = &[
        "Pod",
        "Node",
        "Deployment",
        "ReplicaSet",
        "DaemonSet",
        "StatefulSet",
        "Job",
        "CronJob",
        "Namespace",
        "Service",
        "PersistentVolumeClaim",
        "PersistentVolume",
        "Alert",
    ];
    match KINDS.iter().find(|k| **k == kind.as_ref()) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(kind.into_owned()),
    }
}

impl Owner<'_> {
    pub fn into_owned(self) -> Owner<'static> {
        Owner {
            kind: owned_kind(self.kind),
            name: Cow::Owned(self.name.into_owned()),
        }
    }
}

/// The object a record is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Entity<'a> {
    pub kind: Cow<'a, str>,
    pub namespace: Option<Cow<'a, str>>,
    pub name: Cow<'a, str>,
    #[serde(skip)]
    pub uid: Option<Cow<'a, str>>,
    pub node: Option<Cow<'a, str>>,
    /// Nearest owner first: a Pod's ReplicaSet, then its Deployment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<Owner<'a>>,
}

impl<'a> Entity<'a> {
    pub fn into_owned(self) -> Entity<'static> {
        Entity {
            kind: owned_kind(self.kind),
            namespace: self.namespace.map(|s| Cow::Owned(s.into_owned())),
            name: Cow::Owned(self.name.into_owned()),
            uid: self.uid.map(|s| Cow::Owned(s.into_owned())),
            node: self.node.map(|s| Cow::Owned(s.into_owned())),
            owners: self.owners.into_iter().map(Owner::into_owned).collect(),
        }
    }

    /// The outermost controller (Deployment, DaemonSet, StatefulSet, CronJob),
    /// or `None` for an unowned object.
    pub fn top_owner(&self) -> Option<&Owner<'a>> {
        self.owners.last()
    }

    /// The entity of the outermost controller, in the same namespace, without
    /// a node (a DaemonSet spans nodes). The entity itself when unowned.
    pub fn workload(&self) -> Entity<'a> {
        match self.top_owner() {
            Some(owner) => Entity {
                kind: owner.kind.clone(),
                namespace: self.namespace.clone(),
                name: owner.name.clone(),
                uid: None,
                node: None,
                owners: Vec::new(),
            },
            None => self.clone(),
        }
    }

    /// `namespace/name`, or `name` for cluster-scoped entities: the key the
    /// contract's `affected` list is compared by.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// One normalised input record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event<'a> {
    /// Event time (see the replay contract for which field it comes from).
    pub time: EventTime,
    pub source: Source,
    pub entity: Entity<'a>,
    /// Event reason, the new state of a Pod or Node transition, or the alert name.
    pub reason: Cow<'a, str>,
    /// Event message, log line, state message, or alert summary/description.
    pub message: Cow<'a, str>,
    /// The container the record is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Cow<'a, str>>,
    /// Event type (`Normal` → info, `Warning` → warning), alert `severity`
    /// label, log stream (`stderr` stays info: only rules decide what matters).
    pub severity: Severity,
    /// Object or alert labels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Further named fields a rule may read (`previous`, `restarts`, `status`,
    /// `controller`...). Decoders document the names they set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(&'static str, Cow<'a, str>)>,
    /// Identity of the ongoing occurrence this record belongs to, when the
    /// source has one (a Kubernetes Event's uid, an alert's fingerprint):
    /// records sharing it are one signal, updated, never two.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurrence: Option<u64>,
    /// Where the record came from, for explanations and error messages.
    pub origin: Origin,
}

/// The place of a record in the input: file index and 1-based line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Origin {
    pub file: u32,
    pub line: u64,
}

impl<'a> Event<'a> {
    pub fn new(time: EventTime, source: Source, entity: Entity<'a>) -> Event<'a> {
        Event {
            time,
            source,
            entity,
            reason: Cow::Borrowed(""),
            message: Cow::Borrowed(""),
            container: None,
            severity: Severity::Info,
            labels: Vec::new(),
            fields: Vec::new(),
            occurrence: None,
            origin: Origin::default(),
        }
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref())
    }

    pub fn into_owned(self) -> Event<'static> {
        Event {
            time: self.time,
            source: self.source,
            entity: self.entity.into_owned(),
            reason: Cow::Owned(self.reason.into_owned()),
            message: Cow::Owned(self.message.into_owned()),
            container: self.container.map(|s| Cow::Owned(s.into_owned())),
            severity: self.severity,
            labels: self
                .labels
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
            fields: self
                .fields
                .into_iter()
                .map(|(k, v)| (k, Cow::Owned(v.into_owned())))
                .collect(),
            occurrence: self.occurrence,
            origin: self.origin,
        }
    }
}

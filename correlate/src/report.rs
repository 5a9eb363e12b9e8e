//! The incident as the replay contract prints it, plus the `explanation`
//! that says why epicenter believes it: the rule, the window, the join
//! values that tied each entity in, and for absence rules what was absent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::incident::{AbsenceFacts, Incident, Role, RuleKind, Status};
use crate::model::{Entity, Severity};
use crate::time::{EventTime, Span};

/// An entity as reported: kind, namespace, name, node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntityRef {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub node: Option<String>,
}

impl From<&Entity<'_>> for EntityRef {
    fn from(e: &Entity<'_>) -> Self {
        EntityRef {
            kind: e.kind.to_string(),
            namespace: e.namespace.as_deref().map(str::to_string),
            name: e.name.to_string(),
            node: e.node.as_deref().map(str::to_string),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootCause {
    pub signal: String,
    pub summary: String,
    pub entity: EntityRef,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affected {
    #[serde(flatten)]
    pub entity: EntityRef,
    pub signal: String,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tie {
    pub entity: String,
    pub signal: String,
    pub role: Role,
    pub first: EventTime,
    pub last: EventTime,
    pub records: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined_by: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub before: Span,
    pub after: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merged {
    pub id: String,
    pub rule: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub rule: String,
    pub kind: RuleKind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub window: Window,
    pub ties: Vec<Tie>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub absence: Option<AbsenceFacts>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<Merged>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
}

/// One output line of `epicenter replay`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentReport {
    pub id: String,
    /// The cluster, when records name one (absent otherwise: one unnamed
    /// cluster's output is what it always was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub rule: String,
    pub title: String,
    pub severity: Severity,
    pub status: Status,
    pub opened_at: EventTime,
    pub first_seen: EventTime,
    pub last_seen: EventTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<EventTime>,
    pub root_cause: RootCause,
    pub affected: Vec<Affected>,
    pub signals: u64,
    pub version: u32,
    pub explanation: Explanation,
}

impl IncidentReport {
    /// Distinct namespaces and nodes among the affected entities: the
    /// blast radius's spread, as the history and the web page count it.
    pub fn spread(&self) -> (usize, usize) {
        let namespaces: std::collections::BTreeSet<&str> = self
            .affected
            .iter()
            .filter_map(|a| a.entity.namespace.as_deref())
            .collect();
        let nodes: std::collections::BTreeSet<&str> = self
            .affected
            .iter()
            .filter_map(|a| a.entity.node.as_deref())
            .collect();
        (namespaces.len(), nodes.len())
    }

    /// The title as a notification heads it: with the cluster in front when
    /// one is named (`[edge-7] CSI driver ... unavailable`), so a page from
    /// one of many clusters says which.
    pub fn headline(&self) -> std::borrow::Cow<'_, str> {
        match &self.cluster {
            Some(c) => std::borrow::Cow::Owned(format!("[{c}] {}", self.title)),
            None => std::borrow::Cow::Borrowed(&self.title),
        }
    }

    pub fn new(inc: &Incident) -> IncidentReport {
        let summary = if inc.summary.is_empty() {
            inc.root_summary.clone()
        } else {
            inc.render(&inc.summary)
        };
        let affected: Vec<Affected> = inc
            .reported_affected()
            .map(|m| Affected {
                entity: EntityRef::from(&m.entity),
                signal: m.signal.clone(),
                role: m.role,
            })
            .collect();
        let mut ties: Vec<Tie> = inc
            .causes
            .iter()
            .chain(inc.affected.iter())
            .map(|(k, m)| Tie {
                entity: k.clone(),
                signal: m.signal.clone(),
                role: m.role,
                first: m.first,
                last: m.last,
                records: m.records,
                joined_by: m.joined_by.clone(),
            })
            .collect();
        ties.sort_by(|a, b| a.first.cmp(&b.first).then_with(|| a.entity.cmp(&b.entity)));
        IncidentReport {
            id: inc.id.clone(),
            cluster: inc.cluster.as_deref().map(str::to_owned),
            rule: inc.rule_id.clone(),
            title: inc.render(&inc.title),
            severity: inc.severity,
            status: inc.status,
            opened_at: inc.opened_at.unwrap_or(inc.first_seen),
            first_seen: inc.first_seen,
            last_seen: inc.last_seen,
            resolved_at: inc.resolved_at,
            root_cause: RootCause {
                signal: inc.root_signal.clone(),
                summary,
                entity: EntityRef::from(&inc.root),
                attributes: inc.root_attributes(),
            },
            affected,
            signals: inc.signals,
            version: inc.version,
            explanation: Explanation {
                rule: inc.rule_id.clone(),
                kind: inc.rule.kind(),
                description: inc.description.clone(),
                window: Window {
                    before: inc.window_before,
                    after: inc.window_after,
                },
                ties,
                absence: inc.absence.clone(),
                merged: inc
                    .merged_from
                    .iter()
                    .map(|(id, rule)| Merged {
                        id: id.clone(),
                        rule: rule.clone(),
                    })
                    .collect(),
                resolved_by: inc.resolved_by.clone(),
            },
        }
    }
}

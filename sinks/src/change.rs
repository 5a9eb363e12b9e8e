//! The change stream's document: an incident's latest state and what just
//! happened to it. `serve` writes one per change (stdout, Kafka, the
//! outbox); the outbox and the history read them back.

use correlate::IncidentReport;
use serde::{Deserialize, Serialize};

/// What happened to an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Opened,
    Updated,
    Resolved,
    /// Folded into another incident (`merged_into`); it ends here.
    Merged,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Opened => "opened",
            ChangeKind::Updated => "updated",
            ChangeKind::Resolved => "resolved",
            ChangeKind::Merged => "merged",
        }
    }
}

impl From<correlate::incident::Change> for ChangeKind {
    fn from(c: correlate::incident::Change) -> ChangeKind {
        use correlate::incident::Change;
        match c {
            Change::Opened => ChangeKind::Opened,
            Change::Updated => ChangeKind::Updated,
            Change::Resolved => ChangeKind::Resolved,
            Change::Merged => ChangeKind::Merged,
        }
    }
}

/// One line of the change stream: the `replay` incident plus `change`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IncidentChange {
    pub change: ChangeKind,
    /// For `merged`: the id of the incident that absorbed this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    #[serde(flatten)]
    pub incident: IncidentReport,
}

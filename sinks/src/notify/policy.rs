//! When a change is worth telling a person.
//!
//! An incident is announced when it opens, updated when it changes in a way
//! a person would act on (effects of a new kind, a blast radius past the
//! next threshold, a higher severity, another incident folded in), and
//! closed when it resolves or is folded into another. Anything else (one
//! more record, one more pod of a kind already reported) stays in the
//! change stream and the history.
//!
//! Design choice: the policy is a pure function of what was last told
//! ([`Told`]) and the incident now, with the wall clock passed in. Reasons
//! are always computed against the last notification, never against the
//! previous change, so replaying the same changes after a crash (the
//! engine resumes from an older checkpoint than the outbox) tells nothing
//! twice. Updates are throttled per incident: a significant update inside
//! the throttle is *deferred* to the moment the throttle ends, and then
//! reported against the latest state; openings and resolutions never wait.

use std::collections::BTreeSet;
use std::time::Duration;

use correlate::{IncidentReport, Severity, Status};
use serde::{Deserialize, Serialize};

use super::{Event, Link, Notification, Reason};
use crate::change::{ChangeKind, IncidentChange};

/// Wall-clock time in microseconds since the Unix epoch.
pub type WallMicros = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySettings {
    /// Least time between two update notifications of one incident.
    pub throttle: Duration,
    /// Affected-entity counts whose crossing is news, ascending.
    pub blast_radius_steps: Vec<usize>,
    /// Links shown with every notification.
    pub links: Vec<LinkTemplate>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            throttle: Duration::from_secs(5 * 60),
            blast_radius_steps: vec![5, 10, 25, 50, 100, 250, 500, 1000],
            links: Vec::new(),
        }
    }
}

/// A link whose URL names the incident: `{id}`, `{rule}`, `{namespace}`,
/// `{node}`, `{root_kind}`, `{root_name}` are replaced (URL-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTemplate {
    pub title: String,
    pub url: String,
}

/// What a placeholder's value keeps unescaped in a URL: RFC 3986's
/// unreserved characters.
const URL_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The placeholders a link template may use.
pub const LINK_PLACEHOLDERS: [&str; 6] =
    ["id", "rule", "namespace", "node", "root_kind", "root_name"];

impl LinkTemplate {
    fn render(&self, inc: &IncidentReport) -> Link {
        let root = &inc.root_cause.entity;
        let mut url = String::with_capacity(self.url.len() + 32);
        let mut rest = self.url.as_str();
        while let Some(open) = rest.find('{') {
            url.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                url.push_str(&rest[open..]);
                rest = "";
                break;
            };
            let value = match &after[..close] {
                "id" => Some(inc.id.as_str()),
                "rule" => Some(inc.rule.as_str()),
                "namespace" => Some(root.namespace.as_deref().unwrap_or("")),
                "node" => Some(root.node.as_deref().unwrap_or("")),
                "root_kind" => Some(root.kind.as_str()),
                "root_name" => Some(root.name.as_str()),
                _ => None,
            };
            match value {
                Some(v) => url.extend(percent_encoding::utf8_percent_encode(v, URL_VALUE)),
                None => url.push_str(&rest[open..open + close + 2]),
            }
            rest = &after[close + 1..];
        }
        url.push_str(rest);
        Link {
            title: self.title.clone(),
            url,
        }
    }

    /// Placeholders the template uses that [`LINK_PLACEHOLDERS`] does not
    /// know (checked when the config is read).
    pub fn unknown_placeholders(url: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = url;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else { break };
            let name = &after[..close];
            if !LINK_PLACEHOLDERS.contains(&name) {
                out.push(name.to_string());
            }
            rest = &after[close + 1..];
        }
        out
    }
}

/// What the last notification of an incident told (kept by the outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Told {
    /// The last notification's sequence number.
    pub sequence: u32,
    pub severity: Severity,
    /// Signals of the affected entities reported so far.
    pub effect_signals: BTreeSet<String>,
    pub affected: usize,
    /// Incidents reported as folded in.
    pub absorbed: BTreeSet<String>,
    /// When the last notification was decided.
    pub at: WallMicros,
    /// Resolved or folded into another: nothing more is told.
    pub closed: bool,
}

/// What to do with a change.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing a person needs to hear.
    Quiet,
    /// Send this notification; remember `told`.
    Send {
        notification: Box<Notification>,
        told: Told,
    },
    /// News, but inside the throttle: ask again at `due` with the latest
    /// state.
    Defer { due: WallMicros },
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    settings: PolicySettings,
}

impl Policy {
    pub fn new(settings: PolicySettings) -> Policy {
        let mut settings = settings;
        settings.blast_radius_steps.sort_unstable();
        settings.blast_radius_steps.dedup();
        Policy { settings }
    }

    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    /// Decides what `change` means for the people following its incident,
    /// given what they were last told.
    pub fn decide(
        &self,
        told: Option<&Told>,
        change: &IncidentChange,
        now: WallMicros,
    ) -> Decision {
        let inc = &change.incident;
        if told.is_some_and(|t| t.closed) {
            return Decision::Quiet;
        }
        if change.change == ChangeKind::Merged {
            // Folded into another incident: close what was announced.
            return match told {
                None => Decision::Quiet,
                Some(t) => self.send(
                    Some(t),
                    inc,
                    Event::Resolved,
                    vec![Reason::MergedInto {
                        id: change.merged_into.clone().unwrap_or_default(),
                    }],
                    now,
                    true,
                ),
            };
        }
        let Some(t) = told else {
            return match inc.status {
                Status::Pending => Decision::Quiet,
                Status::Firing => {
                    self.send(None, inc, Event::Opened, vec![Reason::Opened], now, false)
                }
                // Opened and resolved before anything was told: one
                // notification says both.
                Status::Resolved => self.send(
                    None,
                    inc,
                    Event::Resolved,
                    vec![Reason::Opened, Reason::Resolved],
                    now,
                    true,
                ),
            };
        };
        let mut reasons = self.news(t, inc);
        if inc.status == Status::Resolved {
            reasons.push(Reason::Resolved);
            return self.send(Some(t), inc, Event::Resolved, reasons, now, true);
        }
        if reasons.is_empty() {
            return Decision::Quiet;
        }
        let due = t.at.saturating_add(micros(self.settings.throttle));
        if now < due {
            return Decision::Defer { due };
        }
        self.send(Some(t), inc, Event::Updated, reasons, now, false)
    }

    /// What changed since `t` that a person acts on.
    fn news(&self, t: &Told, inc: &IncidentReport) -> Vec<Reason> {
        let mut reasons = Vec::new();
        let new: Vec<String> = effect_signals(inc)
            .into_iter()
            .filter(|s| !t.effect_signals.contains(s))
            .collect();
        if !new.is_empty() {
            reasons.push(Reason::NewEffects { signals: new });
        }
        let now = inc.affected.len();
        if self.step(now) > self.step(t.affected) {
            reasons.push(Reason::BlastRadius {
                from: t.affected,
                to: now,
            });
        }
        if inc.severity > t.severity {
            reasons.push(Reason::SeverityRaised {
                from: t.severity,
                to: inc.severity,
            });
        }
        for m in &inc.explanation.merged {
            if !t.absorbed.contains(&m.id) {
                reasons.push(Reason::Absorbed {
                    id: m.id.clone(),
                    rule: m.rule.clone(),
                });
            }
        }
        reasons
    }

    /// How many thresholds `affected` has reached.
    fn step(&self, affected: usize) -> usize {
        self.settings
            .blast_radius_steps
            .partition_point(|&s| s <= affected)
    }

    fn send(
        &self,
        told: Option<&Told>,
        inc: &IncidentReport,
        event: Event,
        reasons: Vec<Reason>,
        now: WallMicros,
        closed: bool,
    ) -> Decision {
        let sequence = told.map_or(1, |t| t.sequence.saturating_add(1));
        let told = Told {
            sequence,
            severity: told.map_or(inc.severity, |t| t.severity.max(inc.severity)),
            effect_signals: effect_signals(inc),
            affected: inc.affected.len(),
            absorbed: inc
                .explanation
                .merged
                .iter()
                .map(|m| m.id.clone())
                .collect(),
            at: now,
            closed,
        };
        Decision::Send {
            notification: Box::new(Notification {
                event,
                sequence,
                reasons,
                links: self.settings.links.iter().map(|l| l.render(inc)).collect(),
                incident: inc.clone(),
            }),
            told,
        }
    }
}

fn effect_signals(inc: &IncidentReport) -> BTreeSet<String> {
    inc.affected.iter().map(|a| a.signal.clone()).collect()
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Two notifications of one incident waiting for the same receiver become
/// one: the newer state, every reason of both, and an opening stays an
/// opening unless it already ended.
pub fn coalesce(older: &Notification, newer: Notification) -> Notification {
    let mut reasons = older.reasons.clone();
    for r in newer.reasons {
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    }
    let event = match (older.event, newer.event) {
        (Event::Opened, Event::Updated) => Event::Opened,
        (_, e) => e,
    };
    Notification {
        event,
        reasons,
        ..newer
    }
}

#[cfg(test)]
mod tests;

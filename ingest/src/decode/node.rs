//! Node objects → state transitions, [`Source::Node`].
//!
//! State (`reason`): `Ready` when the Ready condition is True, else
//! `NotReady` (message: the Ready condition's `reason: message`). An event is
//! emitted on first sight and when (state, pressure, unschedulable) changes;
//! status heartbeats are [`Decoded::Unchanged`]. A DELETED Node is `Deleted`.
//!
//! Fields set: `previous` (last state, `""` when first seen), `ready_status`
//! (the Ready condition's status: True, False, Unknown), `pressure` (the
//! MemoryPressure, DiskPressure, PIDPressure conditions that are True,
//! comma-joined, `""` if none), `unschedulable` (`true`/`false`), `joining`
//! (`true` while the node was created less than [`JOINING_FOR`] before the
//! record: a new node is NotReady until its network is up, which is not a
//! failure). Labels are the node's labels. Severity is warning when NotReady
//! or under pressure.

use std::borrow::Cow;

use correlate::{Entity, Event, Severity, Source};

use super::error::{DecodeError, Result};
use super::wire::{Labels, ObjectStatus, Record, StatusField, non_empty};
use super::{Ctx, Decoded, Decoder, flag, times};
use crate::hash::{Domain, stable_hash};

/// How long after its creation a node counts as joining.
pub(super) const JOINING_FOR: correlate::Span = correlate::Span::from_secs(10 * 60);

const PRESSURES: [&str; 3] = ["MemoryPressure", "DiskPressure", "PIDPressure"];

/// The `pressure` field for a bit set over [`PRESSURES`].
fn pressure_text(bits: u8) -> &'static str {
    match bits & 0b111 {
        0 => "",
        0b001 => "MemoryPressure",
        0b010 => "DiskPressure",
        0b011 => "MemoryPressure,DiskPressure",
        0b100 => "PIDPressure",
        0b101 => "MemoryPressure,PIDPressure",
        0b110 => "DiskPressure,PIDPressure",
        _ => "MemoryPressure,DiskPressure,PIDPressure",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NodeState {
    Ready,
    NotReady,
    Deleted,
}

impl NodeState {
    fn as_str(self) -> &'static str {
        match self {
            NodeState::Ready => "Ready",
            NodeState::NotReady => "NotReady",
            NodeState::Deleted => "Deleted",
        }
    }
}

/// Last summary of a Node: what a transition is a change of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct NodeSeen {
    pub(super) state: NodeState,
    pub(super) pressure: u8,
    pub(super) unschedulable: bool,
}

impl Decoder {
    pub(super) fn node<'a>(
        &mut self,
        mut rec: Box<Record<'a>>,
        deleted: bool,
        ctx: Ctx,
        out: &mut Vec<Event<'a>>,
    ) -> Result<Decoded> {
        let p = ctx.prefix;
        let meta = rec
            .metadata
            .take()
            .ok_or_else(|| DecodeError::missing(p, "metadata"))?;
        let name = non_empty(&meta.name)
            .cloned()
            .ok_or_else(|| DecodeError::missing(p, "metadata.name"))?;
        let status = match rec.status.take().map(|b| *b) {
            Some(StatusField::Object(s)) => *s,
            None => ObjectStatus::default(),
            Some(StatusField::Text(_)) => {
                return Err(DecodeError::Invalid {
                    path: format!("{p}status"),
                    message: "a string, expected the Node's status object".into(),
                });
            }
        };
        let conditions = status.conditions.as_deref().unwrap_or_default();
        let time = match ctx.observed_at {
            Some(t) => t,
            None => times::newest(
                p,
                conditions
                    .iter()
                    .flat_map(|c| {
                        [
                            ("status.conditions.lastHeartbeatTime", &c.last_heartbeat_time),
                            ("status.conditions.lastTransitionTime", &c.last_transition_time),
                        ]
                    })
                    .chain([("metadata.creationTimestamp", &meta.creation_timestamp)]),
            )?
            .ok_or_else(|| {
                DecodeError::no_time(
                    p,
                    "observedAt, status.conditions.lastHeartbeatTime, lastTransitionTime, metadata.creationTimestamp",
                )
            })?,
        };

        let ready_condition = conditions
            .iter()
            .find(|c| c.type_.as_ref().is_some_and(|t| t.as_str() == "Ready"));
        let ready_status = ready_condition
            .and_then(|c| non_empty(&c.status).cloned())
            .unwrap_or(Cow::Borrowed("Unknown"));
        let mut pressure = 0u8;
        for c in conditions {
            let is_true = c.status.as_ref().is_some_and(|s| s.as_str() == "True");
            if let Some(i) = c
                .type_
                .as_ref()
                .and_then(|t| PRESSURES.iter().position(|&p| p == t.as_str()))
                && is_true
            {
                pressure |= 1 << i;
            }
        }
        let unschedulable = rec
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        let state = match (deleted, ready_status.as_ref()) {
            (true, _) => NodeState::Deleted,
            (false, "True") => NodeState::Ready,
            (false, _) => NodeState::NotReady,
        };
        let seen = NodeSeen {
            state,
            pressure,
            unschedulable,
        };

        let key = stable_hash(Domain::Node, &[name.as_bytes()]);
        let previous = match self.nodes.get_mut(key) {
            Some(last) if *last == seen => return Ok(Decoded::Unchanged { time }),
            Some(last) => std::mem::replace(last, seen).state.as_str(),
            None => {
                self.nodes.insert(key, seen);
                ""
            }
        };
        // Labels are parsed only for a transition; a malformed label object
        // is not worth losing the transition for.
        let labels = meta
            .labels
            .and_then(|raw| serde_json::from_str::<Labels<'a>>(raw.get()).ok())
            .unwrap_or_default();

        let message = match ready_condition {
            _ if state == NodeState::Deleted => Cow::Borrowed(""),
            Some(c) if state == NodeState::NotReady => {
                match (non_empty(&c.reason), non_empty(&c.message)) {
                    (Some(r), Some(m)) => Cow::Owned(format!("{r}: {m}")),
                    (Some(r), None) => r.clone(),
                    (None, m) => m.cloned().unwrap_or_default(),
                }
            }
            Some(c) => non_empty(&c.message).cloned().unwrap_or_default(),
            None => Cow::Borrowed(""),
        };
        let severity = if state == NodeState::NotReady || pressure != 0 {
            Severity::Warning
        } else {
            Severity::Info
        };
        let joining = times::parse_opt(p, "metadata.creationTimestamp", &meta.creation_timestamp)
            .ok()
            .flatten()
            .is_some_and(|created| time <= created.saturating_add(JOINING_FOR));
        let fields = vec![
            ("previous", Cow::Borrowed(previous)),
            ("ready_status", ready_status),
            ("pressure", Cow::Borrowed(pressure_text(pressure))),
            ("unschedulable", flag(unschedulable)),
            ("joining", flag(joining)),
        ];
        out.push(Event {
            time,
            source: Source::Node,
            entity: Entity {
                kind: Cow::Borrowed("Node"),
                namespace: None,
                name: name.clone(),
                uid: non_empty(&meta.uid).cloned(),
                node: Some(name),
                owners: Vec::new(),
            },
            reason: Cow::Borrowed(state.as_str()),
            message,
            container: None,
            severity,
            labels: labels.0,
            fields,
            occurrence: None,
            origin: ctx.origin,
        });
        Ok(Decoded::Events(1))
    }
}

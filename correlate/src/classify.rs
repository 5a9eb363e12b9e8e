//! Records -> signals. Every record passes through here, so the hot path is
//! built to say "no" cheaply: candidate signals are looked up by source and
//! reason, and the message regexes of a source sit behind one literal
//! prefilter ([`crate::prefilter`]): a log line no rule can match costs one
//! vectorised literal search, and regexes (with captures) run only where a
//! required literal occurs.

use std::borrow::Cow;
use std::sync::Arc;

use regex::{Regex, RegexSet, SetMatches};
use rustc_hash::FxHashMap;

use crate::model::{Entity, Event, Origin, Severity, Source};
use crate::prefilter::{Candidates, Prefilter};
use crate::rules::{EntityScope, RuleSet, SignalDef, SignalId};
use crate::time::EventTime;

/// A record classified as a signal: the unit the engine correlates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub signal: SignalId,
    pub time: EventTime,
    pub entity: Entity<'static>,
    /// Attribute name -> value, sorted by name.
    pub attributes: Vec<(String, String)>,
    pub summary: String,
    pub severity: Severity,
    /// The ongoing occurrence this record continues, if any.
    pub occurrence: Option<u64>,
    /// True when the record continues an occurrence already seen (a repeated
    /// Kubernetes Event): it updates the signal, it is not a new one.
    pub repeat: bool,
    pub origin: Origin,
}

impl Hit {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.attributes[i].1.as_str())
    }
}

/// The signal definitions of one source, indexed for fast rejection.
#[derive(Debug, Default)]
struct SourceIndex {
    /// Signals that name reasons, by reason.
    by_reason: FxHashMap<String, Vec<SignalId>>,
    /// Signals that match any reason.
    any_reason: Vec<SignalId>,
    /// All message regexes of this source's signals, in one set.
    messages: Option<MessageFilter>,
    /// Signal id -> its index in `messages`, for this source's signals.
    message_slot: Vec<Option<usize>>,
}

/// Which message regexes of a source may match a message: a literal
/// prefilter, or for very many patterns one [`RegexSet`] pass.
#[derive(Debug)]
enum MessageFilter {
    Literals(Prefilter),
    Set(RegexSet),
}

/// The answer of a [`MessageFilter`] for one message.
#[derive(Debug)]
enum Possible {
    Mask(Candidates),
    Set(SetMatches),
}

impl Possible {
    fn has(&self, slot: usize) -> bool {
        match self {
            Possible::Mask(m) => m & (1 << slot) != 0,
            Possible::Set(m) => m.matched(slot),
        }
    }
}

impl MessageFilter {
    /// Which slots' regexes can match `message`.
    fn possible(&self, message: &str) -> Possible {
        match self {
            MessageFilter::Literals(f) => Possible::Mask(f.candidates(message)),
            MessageFilter::Set(set) => Possible::Set(set.matches(message)),
        }
    }
}

/// Classifies records into signals with a compiled [`RuleSet`].
#[derive(Debug)]
pub struct Classifier {
    rules: Arc<RuleSet>,
    sources: Vec<SourceIndex>,
    /// Per signal: is its summary read (is it a cause or evidence)?
    wants_summary: Vec<bool>,
}

impl Classifier {
    pub fn new(rules: Arc<RuleSet>) -> Classifier {
        let mut sources: Vec<SourceIndex> =
            Source::ALL.iter().map(|_| SourceIndex::default()).collect();
        let mut patterns: Vec<Vec<(SignalId, String)>> = vec![Vec::new(); Source::ALL.len()];
        for (i, def) in rules.signals.iter().enumerate() {
            let id = SignalId(i as u32);
            for src in &def.sources {
                let idx = &mut sources[src.index()];
                if def.reasons.is_empty() {
                    idx.any_reason.push(id);
                } else {
                    for r in &def.reasons {
                        idx.by_reason.entry(r.clone()).or_default().push(id);
                    }
                }
                if let Some(m) = &def.message {
                    patterns[src.index()].push((id, m.as_str().to_string()));
                }
            }
        }
        for (src, pats) in patterns.into_iter().enumerate() {
            if pats.is_empty() {
                continue;
            }
            let texts: Vec<&str> = pats.iter().map(|(_, p)| p.as_str()).collect();
            let filter = match Prefilter::new(&texts) {
                Some(f) => MessageFilter::Literals(f),
                // Each pattern compiled alone already, so the set compiles too.
                None => match RegexSet::new(&texts) {
                    Ok(set) => MessageFilter::Set(set),
                    Err(_) => continue,
                },
            };
            let mut slots = vec![None; rules.signals.len()];
            for (slot, (id, _)) in pats.iter().enumerate() {
                slots[id.0 as usize] = Some(slot);
            }
            sources[src].message_slot = slots;
            sources[src].messages = Some(filter);
        }
        let wants_summary = rules
            .uses
            .iter()
            .map(|u| !u.as_cause.is_empty() || !u.as_absence_condition.is_empty())
            .collect();
        Classifier {
            rules,
            sources,
            wants_summary,
        }
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Appends the signals `event` is an instance of to `out`, in rule order.
    pub fn classify(&self, event: &Event<'_>, out: &mut Vec<Hit>) {
        let idx = &self.sources[event.source.index()];
        let by_reason = idx.by_reason.get(event.reason.as_ref());
        if by_reason.is_none() && idx.any_reason.is_empty() {
            return;
        }
        let by_reason: &[SignalId] = by_reason.map_or(&[], Vec::as_slice);
        let candidates = || idx.any_reason.iter().chain(by_reason).copied();
        let slot = |id: SignalId| idx.message_slot.get(id.0 as usize).copied().flatten();
        // One pass over the message for every candidate that has a regex.
        let possible: Option<Possible> = match &idx.messages {
            Some(filter) if candidates().any(|c| slot(c).is_some()) => {
                let possible = filter.possible(&event.message);
                if candidates().all(|c| slot(c).is_some_and(|s| !possible.has(s))) {
                    return;
                }
                Some(possible)
            }
            _ => None,
        };
        for id in candidates() {
            if let Some(slot) = slot(id)
                && !possible.as_ref().is_some_and(|p| p.has(slot))
            {
                continue;
            }
            let def = self.rules.signal(id);
            if let Some(hit) = match_signal(id, def, self.wants_summary[id.0 as usize], event) {
                out.push(hit);
            }
        }
    }
}

/// Checks every condition of `def` but the message prefilter, and builds the hit.
fn match_signal(id: SignalId, def: &SignalDef, wants_summary: bool, ev: &Event<'_>) -> Option<Hit> {
    if !def.kinds.is_empty() && !def.kinds.iter().any(|k| k == ev.entity.kind.as_ref()) {
        return None;
    }
    if def.min_severity.is_some_and(|s| ev.severity < s) {
        return None;
    }
    let mut attrs: Vec<(String, String)> = def.attributes.clone();
    let mut capture = |re: &Regex, text: &str| -> bool {
        let Some(caps) = re.captures(text) else {
            return false;
        };
        for name in re.capture_names().flatten() {
            if let Some(m) = caps.name(name) {
                set_attr(&mut attrs, name, m.as_str());
            }
        }
        true
    };
    let entity_checks = [
        (&def.container, ev.container.as_deref().unwrap_or("")),
        (&def.name, ev.entity.name.as_ref()),
        (&def.namespace, ev.entity.namespace.as_deref().unwrap_or("")),
    ];
    for (re, text) in entity_checks {
        if let Some(re) = re
            && !capture(re, text)
        {
            return None;
        }
    }
    for (key, re) in &def.labels {
        if !capture(re, ev.label(key).unwrap_or("")) {
            return None;
        }
    }
    for (key, re) in &def.fields {
        if !capture(re, ev.field(key).unwrap_or("")) {
            return None;
        }
    }
    if let Some(re) = &def.message
        && !capture(re, &ev.message)
    {
        return None;
    }
    for re in &def.extract {
        capture(re, &ev.message);
    }
    if let Some(c) = &ev.container
        && !attrs.iter().any(|(k, _)| k == "container")
    {
        attrs.push(("container".to_string(), c.to_string()));
    }
    attrs.sort_by(|a, b| a.0.cmp(&b.0));

    // The uid is not read past classification: not worth a copy per signal.
    let without_uid = || Entity {
        uid: None,
        ..ev.entity.clone()
    };
    let entity = match def.entity {
        EntityScope::Itself => without_uid().into_owned(),
        EntityScope::Workload => ev.entity.workload().into_owned(),
        EntityScope::Node => match &ev.entity.node {
            Some(node) => Entity {
                kind: Cow::Borrowed("Node"),
                name: Cow::Owned(node.to_string()),
                node: Some(Cow::Owned(node.to_string())),
                ..Entity::default()
            },
            None => without_uid().into_owned(),
        },
    };
    // Only a cause's summary is ever read (it may become the root summary);
    // effects, held by the thousand, skip rendering one.
    let summary = if !wants_summary {
        String::new()
    } else if def.summary.is_empty() {
        default_summary(ev)
    } else {
        def.summary.render(|var| {
            signal_var(ev, var).or_else(|| {
                attrs
                    .binary_search_by(|(k, _)| k.as_str().cmp(var))
                    .ok()
                    .map(|i| Cow::Owned(attrs[i].1.clone()))
            })
        })
    };
    Some(Hit {
        signal: id,
        time: ev.time,
        entity,
        attributes: attrs,
        summary,
        severity: def.severity,
        occurrence: ev.occurrence,
        repeat: ev.field("repeat") == Some("true"),
        origin: ev.origin,
    })
}

fn set_attr(attrs: &mut Vec<(String, String)>, name: &str, value: &str) {
    match attrs.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value.to_string(),
        None => attrs.push((name.to_string(), value.to_string())),
    }
}

fn signal_var<'e>(ev: &'e Event<'_>, var: &str) -> Option<Cow<'e, str>> {
    let v: &str = match var {
        "name" => &ev.entity.name,
        "namespace" => ev.entity.namespace.as_deref()?,
        "node" => ev.entity.node.as_deref()?,
        "kind" => &ev.entity.kind,
        "workload" => return Some(Cow::Owned(ev.entity.workload().name.into_owned())),
        "container" => ev.container.as_deref()?,
        "reason" => &ev.reason,
        "message" => &ev.message,
        _ => return None,
    };
    Some(Cow::Borrowed(v))
}

fn default_summary(ev: &Event<'_>) -> String {
    const MAX: usize = 240;
    let mut s = if ev.reason.is_empty() {
        ev.message.to_string()
    } else if ev.message.is_empty() {
        ev.reason.to_string()
    } else {
        format!("{}: {}", ev.reason, ev.message)
    };
    if s.len() > MAX {
        let mut cut = MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

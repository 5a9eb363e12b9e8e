//! A post-mortem draft for one incident: `epicenter postmortem ID`.
//!
//! After an outage somebody writes the post-mortem by hand: a summary in
//! words, the impact, a timeline, the root cause and how it spread, how it
//! was detected, then open questions and follow-ups. Most of the first half
//! is already in the history: every stored version of the incident says
//! what broke, what it took down, when each signal first showed and how
//! each effect was tied to the cause. [`draft`] writes that half as
//! Markdown in the shape SREs use, and leaves the second half as checklists
//! for people (clearly marked "to be filled").
//!
//! Design choice: the draft is a pure function of the stored versions. No
//! language model and no clock: every time in it comes from the incident,
//! so the same history gives the same draft, byte for byte, and a draft can
//! be diffed and golden-tested. It reuses the text view's helpers (labels,
//! escaping, times) so the two read alike, and every list is capped ("and
//! N more") so a 1,000-pod incident stays one readable page. Workload names
//! are guessed from pod names only where Kubernetes' naming makes them
//! obvious (`name-<hash>-<suffix>`, `name-<suffix>`, `name-<ordinal>`).

use std::collections::{BTreeMap, BTreeSet};

use correlate::incident::Role;
use correlate::report::Tie;
use correlate::{EventTime, IncidentReport, Status};

use crate::change::{ChangeKind, IncidentChange};
use crate::render::{
    Clock, Out, absence_sentences, capped, clean, code, day_of, entity_label, key_label,
    kinds_phrase, md, merge_ties, plural, sentence, status_str,
};

/// Names listed per line at most.
const MAX_NAMES: usize = 8;
/// Groups (join paths, namespaces, workloads, alerts) listed at most.
const MAX_GROUPS: usize = 12;
/// Signals given their own timeline row at most.
const MAX_SIGNALS: usize = 10;
/// A run of more `updated` versions than this is shown as its first and
/// last.
const MAX_RUN: usize = 2;

/// The post-mortem draft of one incident from its stored versions (in
/// store order, as [`crate::history::Sql::documents`] returns them); the
/// newest version is the incident as it stands. Never panics, whatever the
/// versions hold; an empty slice gives a short note.
pub fn draft(versions: &[IncidentChange]) -> String {
    let Some(newest) = versions.last() else {
        return "# Post-mortem: unknown incident\n\n\
                The history holds no version of this incident: there is nothing to draft from.\n"
            .to_string();
    };
    let facts = Facts::new(newest);
    let mut out = Out::default();
    header(&mut out, &facts);
    summary(&mut out, &facts);
    impact(&mut out, &facts);
    timeline(&mut out, &facts, versions);
    chain(&mut out, &facts);
    detection(&mut out, &facts, versions.len());
    questions(&mut out, &facts);
    out.finish()
}

/// What the sections share, computed once from the newest version.
struct Facts<'a> {
    r: &'a IncidentReport,
    change: ChangeKind,
    merged_into: Option<String>,
    clock: Clock,
    /// The earliest tie (the first symptom), if any.
    first_tie: Option<&'a Tie>,
    /// When the first symptom showed: the earliest tie, else `first_seen`.
    start: EventTime,
    /// The entities that took the damage (not those that showed the cause).
    damage: Entities,
    /// The entities that showed the cause (and roots of merged incidents).
    cause_side: Entities,
    /// Alertmanager alerts tied in: signal → (first time, entities).
    alerts: Vec<Alert>,
}

struct Alert {
    signal: String,
    first: Option<EventTime>,
    entities: BTreeSet<String>,
}

impl<'a> Facts<'a> {
    fn new(newest: &'a IncidentChange) -> Facts<'a> {
        let r = &newest.incident;
        let first_tie = r
            .explanation
            .ties
            .iter()
            .min_by(|a, b| a.first.cmp(&b.first).then_with(|| a.entity.cmp(&b.entity)));
        let start = first_tie.map_or(r.first_seen, |t| t.first);
        let mut damage = Entities::default();
        let mut cause_side = Entities::default();
        for a in &r.affected {
            let e = &a.entity;
            let target = if matches!(a.role, Role::Cause | Role::Merged) {
                &mut cause_side
            } else {
                &mut damage
            };
            target.add(&e.kind, e.namespace.as_deref(), &e.name, e.node.as_deref());
        }
        let root = &r.root_cause.entity;
        if !root.kind.is_empty() || !root.name.is_empty() {
            cause_side.add(
                &root.kind,
                root.namespace.as_deref(),
                &root.name,
                root.node.as_deref(),
            );
        }
        // Alerts: from the ties (with times), then any only in `affected`.
        let mut alerts: BTreeMap<String, Alert> = BTreeMap::new();
        for t in r
            .explanation
            .ties
            .iter()
            .filter(|t| t.signal.starts_with("alert-"))
        {
            let a = alerts.entry(t.signal.clone()).or_insert_with(|| Alert {
                signal: t.signal.clone(),
                first: None,
                entities: BTreeSet::new(),
            });
            a.first = Some(a.first.map_or(t.first, |f| f.min(t.first)));
            a.entities.insert(key_label(&t.entity));
        }
        for a in r.affected.iter().filter(|a| a.signal.starts_with("alert-")) {
            let entry = alerts.entry(a.signal.clone()).or_insert_with(|| Alert {
                signal: a.signal.clone(),
                first: None,
                entities: BTreeSet::new(),
            });
            if entry.entities.is_empty() {
                entry.entities.insert(entity_label(&a.entity));
            }
        }
        let mut alerts: Vec<Alert> = alerts.into_values().collect();
        alerts.sort_by(|a, b| {
            (a.first.is_none(), a.first, &a.signal).cmp(&(b.first.is_none(), b.first, &b.signal))
        });
        Facts {
            r,
            change: newest.change,
            merged_into: newest.merged_into.as_deref().map(clean),
            clock: Clock { day: day_of(start) },
            first_tie,
            start,
            damage,
            cause_side,
            alerts,
        }
    }

    fn at(&self, t: EventTime) -> String {
        self.clock.at(t)
    }

    /// The end of the incident as far as the history knows: its
    /// resolution, else its last record.
    fn end(&self) -> EventTime {
        self.r.resolved_at.unwrap_or(self.r.last_seen)
    }

    fn resolved(&self) -> bool {
        self.r.status == Status::Resolved && self.r.resolved_at.is_some()
    }

    /// "22m45s" from the first symptom to the end.
    fn duration(&self) -> String {
        self.end().since(self.start).to_string()
    }

    fn root(&self) -> String {
        let label = entity_label(&self.r.root_cause.entity);
        if label.trim().is_empty() {
            "an unidentified entity".to_string()
        } else {
            label.trim().to_string()
        }
    }

    /// The cause signal as code.
    fn signal(&self) -> String {
        let s = clean(&self.r.root_cause.signal);
        if s.is_empty() {
            "an unnamed signal".to_string()
        } else {
            code(&s)
        }
    }

    fn first_alert(&self) -> Option<(&Alert, EventTime)> {
        self.alerts.iter().find_map(|a| a.first.map(|at| (a, at)))
    }
}

/// Distinct entities, by kind, namespace and node.
#[derive(Default)]
struct Entities {
    /// (kind, namespace, name) → node.
    all: BTreeMap<(String, Option<String>, String), Option<String>>,
}

impl Entities {
    fn add(&mut self, kind: &str, ns: Option<&str>, name: &str, node: Option<&str>) {
        let ns = ns.filter(|n| !n.is_empty()).map(clean);
        let node = node.filter(|n| !n.is_empty() && kind != "Node").map(clean);
        let slot = self
            .all
            .entry((clean(kind), ns, clean(name)))
            .or_insert(None);
        if slot.is_none() {
            *slot = node;
        }
    }

    fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    fn kinds(&self) -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for (kind, _, _) in self.all.keys() {
            *kinds.entry(kind.clone()).or_default() += 1;
        }
        kinds
    }

    /// Namespace → entities, largest first.
    fn namespaces(&self) -> Vec<(String, usize)> {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for (_, ns, _) in self.all.keys() {
            if let Some(ns) = ns {
                *m.entry(ns.clone()).or_default() += 1;
            }
        }
        by_count(m)
    }

    /// Node → entities, by node name.
    fn nodes(&self) -> Vec<(String, usize)> {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for node in self.all.values().flatten() {
            *m.entry(node.clone()).or_default() += 1;
        }
        m.into_iter().collect()
    }

    /// `namespace/name` of the entities of `kind`, sorted.
    fn names(&self, kind: &str) -> Vec<String> {
        self.all
            .keys()
            .filter(|(k, _, _)| k == kind)
            .map(|(_, ns, name)| qualified(ns.as_deref(), name))
            .collect()
    }

    /// "18 pods, 1 Service in 16 namespaces on 4 nodes".
    fn phrase(&self) -> String {
        let mut s = kinds_phrase(&self.kinds());
        let ns = self.namespaces().len();
        if ns > 0 {
            s.push_str(&format!(
                " in {ns} {}",
                plural(ns, "namespace", "namespaces")
            ));
        }
        let nodes = self.nodes().len();
        if nodes > 0 {
            s.push_str(&format!(" on {nodes} {}", plural(nodes, "node", "nodes")));
        }
        s
    }

    /// Workloads guessed from pod names (and workload entities), with
    /// their pods; and how many pods had no recognisable name.
    fn workloads(&self) -> (Vec<(String, usize)>, usize) {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        let mut unknown = 0;
        for (kind, ns, name) in self.all.keys() {
            if kind == "Pod" {
                match workload_of(name) {
                    Some(w) => *m.entry(qualified(ns.as_deref(), &w)).or_default() += 1,
                    None => unknown += 1,
                }
            } else if WORKLOAD_KINDS.contains(&kind.as_str()) {
                m.entry(qualified(ns.as_deref(), name)).or_default();
            }
        }
        (by_count(m), unknown)
    }
}

const WORKLOAD_KINDS: [&str; 6] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
];

/// The characters of Kubernetes' generated name suffixes and template
/// hashes (no vowels, no 0, 1, 3).
const GENERATED: &str = "bcdfghjklmnpqrstvwxz2456789";

fn generated(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.chars().all(|c| GENERATED.contains(c))
}

/// The workload a pod name obviously belongs to: `web-7d9f8b6c5d-x2x4z`
/// (Deployment), `node-agent-x2x4z` (DaemonSet, Job), `db-0`
/// (StatefulSet); `None` when the name says nothing.
fn workload_of(pod: &str) -> Option<String> {
    let (head, suffix) = pod.rsplit_once('-')?;
    if head.is_empty() {
        return None;
    }
    if !suffix.is_empty() && suffix.len() <= 4 && suffix.chars().all(|c| c.is_ascii_digit()) {
        return Some(head.to_string());
    }
    if !generated(suffix, 5, 5) {
        return None;
    }
    match head.rsplit_once('-') {
        Some((base, hash)) if !base.is_empty() && generated(hash, 6, 10) => Some(base.to_string()),
        _ => Some(head.to_string()),
    }
}

fn qualified(ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

fn by_count(m: BTreeMap<String, usize>) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// "a (3), b (2) and 4 more".
fn counted(v: &[(String, usize)], max: usize) -> String {
    let items: Vec<String> = v.iter().map(|(n, c)| format!("{n} ({c})")).collect();
    capped(&items, max)
}

fn codec(s: &str) -> String {
    code(&clean(s))
}

fn header(out: &mut Out, f: &Facts<'_>) {
    let r = f.r;
    let title = clean(&r.title);
    let title = if title.is_empty() {
        format!("incident {}", clean(&r.id))
    } else {
        title
    };
    out.line(format!("# Post-mortem: {}", md(&title)));
    out.blank();
    out.line(
        "> Draft written by `epicenter postmortem` from the stored incident alone. \
         The facts come from the engine; every item marked *to be filled* is for people.",
    );
    out.blank();
    out.line("| Field | Value |");
    out.line("| --- | --- |");
    out.line(format!(
        "| Incident | {} (rule {}) |",
        codec(&r.id),
        codec(&r.rule)
    ));
    if let Some(c) = &r.cluster {
        out.line(format!("| Cluster | {} |", codec(c)));
    }
    out.line(format!(
        "| Date | {} (UTC) |",
        f.clock.day.as_deref().unwrap_or("unknown")
    ));
    out.line(format!("| Severity | {} |", r.severity.as_str()));
    out.line(format!("| Status | {} |", md(&status_phrase(f))));
    out.line(format!("| Duration | {} |", md(&duration_phrase(f))));
    let affected = if f.damage.is_empty() {
        "none beyond the entities that showed the cause".to_string()
    } else {
        f.damage.phrase()
    };
    out.line(format!("| Affected | {} |", md(&affected)));
    out.line("| Post-mortem status | Draft |");
    out.blank();
}

fn status_phrase(f: &Facts<'_>) -> String {
    if f.change == ChangeKind::Merged {
        return match &f.merged_into {
            Some(into) => format!("merged into {into} (its post-mortem covers this one)"),
            None => "merged into another incident".to_string(),
        };
    }
    match f.r.resolved_at {
        Some(at) if f.r.status == Status::Resolved => format!("resolved at {}", f.at(at)),
        _ => format!(
            "{} (still firing at its last record, {})",
            status_str(f.r.status),
            f.at(f.r.last_seen)
        ),
    }
}

fn duration_phrase(f: &Facts<'_>) -> String {
    if f.change == ChangeKind::Merged {
        format!("{} (first symptom to the merge)", f.duration())
    } else if f.resolved() {
        format!("{} (first symptom to resolution)", f.duration())
    } else {
        format!(
            "{} so far (first symptom to last record, ongoing)",
            f.duration()
        )
    }
}

fn summary(out: &mut Out, f: &Facts<'_>) {
    let r = f.r;
    out.line("## Summary");
    out.blank();
    let mut p = Vec::new();
    let summary = clean(&r.root_cause.summary);
    if summary.is_empty() {
        p.push(format!("{} failed.", md(&f.root())));
    } else {
        p.push(format!(
            "{} failed: {}",
            md(&f.root()),
            md(&sentence(&summary))
        ));
    }
    if f.damage.is_empty() {
        p.push("No entity beyond the ones that showed the cause is known to be affected.".into());
    } else {
        p.push(format!("It took down {}.", md(&f.damage.phrase())));
    }
    let when = format!("The first symptom showed at {} UTC", f.at(f.start));
    let how_long = if f.change == ChangeKind::Merged {
        match &f.merged_into {
            Some(into) => format!(
                "{when}; the incident was then merged into {} at {}, which carries it from there.",
                codec(into),
                f.at(r.last_seen)
            ),
            None => format!("{when}; the incident was then merged into another one."),
        }
    } else if f.resolved() {
        let by = r
            .explanation
            .resolved_by
            .as_deref()
            .map(clean)
            .filter(|b| !b.is_empty())
            .map(|b| format!(" ({})", md(&b)))
            .unwrap_or_default();
        format!(
            "{when}; it was resolved at {}{by}, {} later; the last record was at {}.",
            f.at(f.end()),
            f.duration(),
            f.at(r.last_seen)
        )
    } else {
        format!(
            "{when}; it was still firing at {}, its last record, {} later.",
            f.at(r.last_seen),
            f.duration()
        )
    };
    p.push(how_long);
    let mut detected = format!(
        "epicenter detected it with rule {} and opened the incident at {}, {} after the first record",
        codec(&r.rule),
        f.at(r.opened_at),
        r.opened_at.since(r.first_seen)
    );
    match f.first_alert() {
        Some((a, at)) => detected.push_str(&format!(
            "; the first Alertmanager alert ({}) fired at {}, {} after the first symptom.",
            codec(&a.signal),
            f.at(at),
            at.since(f.start)
        )),
        None => detected.push_str("; no Alertmanager alert is tied to it."),
    }
    p.push(detected);
    out.line(p.join(" "));
    out.blank();
}

fn impact(out: &mut Out, f: &Facts<'_>) {
    out.line("## Impact");
    out.blank();
    let d = &f.damage;
    let pods = d.names("Pod");
    if pods.is_empty() {
        out.line("- **Pods**: none");
    } else {
        out.line(format!(
            "- **Pods**: {}: {}",
            pods.len(),
            md(&capped(&pods, MAX_NAMES))
        ));
    }
    let mut others = d.kinds();
    others.remove("Pod");
    if !others.is_empty() {
        let names: Vec<String> = d
            .all
            .keys()
            .filter(|(k, _, _)| k != "Pod")
            .map(|(k, ns, name)| format!("{k} {}", qualified(ns.as_deref(), name)))
            .collect();
        out.line(format!(
            "- **Other entities**: {}: {}",
            md(&kinds_phrase(&others)),
            md(&capped(&names, MAX_NAMES))
        ));
    }
    let (workloads, unknown) = d.workloads();
    if !workloads.is_empty() {
        let mut line = format!(
            "- **Workloads** (guessed from pod names): {}: {}",
            workloads.len(),
            md(&counted(&workloads, MAX_GROUPS))
        );
        if unknown > 0 {
            line.push_str(&format!(
                "; {unknown} {} with no recognisable workload name",
                plural(unknown, "pod", "pods")
            ));
        }
        out.line(line);
    }
    let namespaces = d.namespaces();
    if !namespaces.is_empty() {
        out.line(format!(
            "- **Namespaces**: {}: {}",
            namespaces.len(),
            md(&counted(&namespaces, MAX_GROUPS))
        ));
    }
    let nodes = d.nodes();
    if !nodes.is_empty() {
        out.line(format!(
            "- **Nodes**: {}: {}",
            nodes.len(),
            md(&counted(&nodes, MAX_GROUPS))
        ));
    }
    if !f.cause_side.is_empty() {
        out.line(format!(
            "- **Cause side** (the root and what showed the cause): {}",
            md(&f.cause_side.phrase())
        ));
    }
    out.line(format!("- **Duration**: {}", md(&duration_phrase(f))));
    if f.alerts.is_empty() {
        out.line("- **User-facing alerts that fired**: none tied to this incident");
    } else {
        out.line(format!(
            "- **User-facing alerts that fired**: {}",
            f.alerts.len()
        ));
        for a in f.alerts.iter().take(MAX_GROUPS) {
            let names: Vec<String> = a.entities.iter().cloned().collect();
            let when = a
                .first
                .map(|t| format!(", first at {}", f.at(t)))
                .unwrap_or_default();
            out.line(format!(
                "  - {} on {}{when}",
                codec(&a.signal),
                md(&capped(&names, MAX_NAMES))
            ));
        }
        if f.alerts.len() > MAX_GROUPS {
            out.line(format!("  - and {} more", f.alerts.len() - MAX_GROUPS));
        }
    }
    out.line("- **User impact**: *to be filled* (which services were down for whom)");
    out.line("- **Data loss**: *to be filled*");
    out.blank();
}

/// One timeline row: time, order at equal times, text (Markdown).
type Row = (EventTime, u8, String);

/// One signal's first appearance.
struct SignalFirst {
    first: EventTime,
    entity: String,
    entities: BTreeSet<String>,
    records: u64,
}

fn timeline(out: &mut Out, f: &Facts<'_>, versions: &[IncidentChange]) {
    let r = f.r;
    let mut rows: Vec<Row> = Vec::new();
    let cause_tie = r
        .explanation
        .ties
        .iter()
        .filter(|t| t.role == Role::Cause)
        .min_by(|a, b| a.first.cmp(&b.first).then_with(|| a.entity.cmp(&b.entity)));

    // First appearance of each signal (the cause's always shown).
    let mut signals: BTreeMap<String, SignalFirst> = BTreeMap::new();
    for t in merge_ties(&r.explanation.ties) {
        let s = signals
            .entry(t.signal.clone())
            .or_insert_with(|| SignalFirst {
                first: t.first,
                entity: t.entity.clone(),
                entities: BTreeSet::new(),
                records: 0,
            });
        if (t.first, &t.entity) < (s.first, &s.entity) {
            s.first = t.first;
            s.entity = t.entity.clone();
        }
        s.records += t.records;
        s.entities.insert(t.entity);
    }
    let mut firsts: Vec<(String, SignalFirst)> = signals.into_iter().collect();
    firsts.sort_by(|a, b| a.1.first.cmp(&b.1.first).then_with(|| a.0.cmp(&b.0)));
    let root_signal = r.root_cause.signal.as_str();
    let (mut shown, mut rest): (Vec<_>, Vec<_>) = firsts
        .into_iter()
        .enumerate()
        .partition(|(i, (sig, _))| *i < MAX_SIGNALS || *sig == root_signal);
    if shown.len() > MAX_SIGNALS {
        // The cause's signal took a place: give the last other one back.
        if let Some(pos) = shown.iter().rposition(|(_, (sig, _))| *sig != root_signal) {
            rest.insert(0, shown.remove(pos));
        }
    }
    let mut symptom_said = false;
    let mut cause_said = false;
    for (_, (sig, sf)) in &shown {
        let SignalFirst {
            first,
            entity,
            entities,
            records,
        } = sf;
        let is = |t: Option<&Tie>| {
            t.is_some_and(|t| t.signal == *sig && t.first == *first && t.entity == *entity)
        };
        let symptom = is(f.first_tie);
        let cause = is(cause_tie);
        symptom_said |= symptom;
        cause_said |= cause;
        let label = match (symptom, cause) {
            (true, true) => "**first symptom**, from the root cause: ",
            (true, false) => "**first symptom**: ",
            (false, true) => "root cause's first record: ",
            _ => "",
        };
        let mut what = format!(
            "{label}first {}{}: {}",
            codec(sig),
            if *sig == root_signal {
                " (the cause's signal)"
            } else {
                ""
            },
            md(&key_label(entity))
        );
        let more = entities.len().saturating_sub(1);
        if more > 0 {
            what.push_str(&format!(
                " and {more} more {}",
                plural(more, "entity", "entities")
            ));
        }
        if *records > 0 {
            what.push_str(&format!(
                ", {records} {}",
                plural(*records as usize, "record", "records")
            ));
        }
        rows.push((*first, if cause { 1 } else { 2 }, what));
    }
    if let Some((_, (_, SignalFirst { first, .. }))) = rest.first() {
        let names: Vec<String> = rest.iter().map(|(_, (s, _))| codec(s)).collect();
        rows.push((
            *first,
            2,
            format!(
                "{} more {} first seen from here on: {}",
                rest.len(),
                plural(rest.len(), "signal", "signals"),
                capped(&names, 3)
            ),
        ));
    }
    match f.first_tie {
        Some(t) if !symptom_said => rows.push((
            t.first,
            0,
            format!(
                "**first symptom**: {} on {}",
                codec(&t.signal),
                md(&key_label(&t.entity))
            ),
        )),
        None => rows.push((r.first_seen, 0, "first record".to_string())),
        Some(t) => {
            let absence_then = r.explanation.absence.as_ref().is_some_and(|a| {
                [Some(a.since), a.silent_since]
                    .into_iter()
                    .flatten()
                    .any(|at| f.at(at) == f.at(r.first_seen))
            });
            if r.first_seen < t.first && f.at(r.first_seen) != f.at(t.first) && !absence_then {
                rows.push((r.first_seen, 0, "first record".to_string()));
            }
        }
    }
    if let Some(a) = &r.explanation.absence {
        if let Some(at) = a
            .silent_since
            .filter(|at| *at != a.since || a.absent.is_empty())
        {
            rows.push((at, 0, "last line before the silence".to_string()));
        }
        let absent = if a.absent.is_empty() {
            "the expected signals".to_string()
        } else {
            let names: Vec<String> = a.absent.iter().map(|s| codec(s)).collect();
            capped(&names, MAX_NAMES)
        };
        rows.push((
            a.since,
            0,
            format!("absent from here on: {absent} (held for {})", a.held_for),
        ));
    }
    if let Some(t) = cause_tie.filter(|_| !cause_said) {
        rows.push((
            t.first,
            1,
            format!(
                "root cause's first record: {} on {}",
                codec(&t.signal),
                md(&key_label(&t.entity))
            ),
        ));
    }

    rows.extend(version_rows(versions));
    if !versions.iter().any(|v| v.change == ChangeKind::Opened) {
        rows.push((
            r.opened_at,
            3,
            format!("incident opened ({})", r.severity.as_str()),
        ));
    }
    let still = if f.resolved() || f.change == ChangeKind::Merged {
        ""
    } else {
        " (still firing)"
    };
    rows.push((r.last_seen, 6, format!("last record{still}")));
    if let Some(at) = r.resolved_at
        && !versions.iter().any(|v| v.change == ChangeKind::Resolved)
    {
        rows.push((at, 7, resolved_text(r, None)));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));

    out.line("## Timeline");
    out.blank();
    let day = f
        .clock
        .day
        .as_ref()
        .map(|d| format!(", {d}"))
        .unwrap_or_default();
    out.line(format!("| Time (UTC{day}) | Event |"));
    out.line("| --- | --- |");
    for (at, _, what) in rows {
        out.line(format!("| {} | {what} |", md(&f.at(at))));
    }
    out.line("| - | notifications: see the outbox (`GET /api/v1/outbox`) |");
    out.blank();
}

fn resolved_text(r: &IncidentReport, version: Option<u32>) -> String {
    let v = version.map_or(String::new(), |v| format!(" (version {v})"));
    match r
        .explanation
        .resolved_by
        .as_deref()
        .map(clean)
        .filter(|b| !b.is_empty())
    {
        Some(b) => format!("**resolved**{v}: {}", md(&b)),
        None => format!("**resolved**{v}"),
    }
}

/// The stored versions as rows: opened, updates (runs collapsed), merges
/// in, resolution, merged away.
fn version_rows(versions: &[IncidentChange]) -> Vec<Row> {
    let mut rows = Vec::new();
    let size = |r: &IncidentReport| {
        let n = r.affected.len();
        format!(
            "{n} affected {}, {} {}",
            plural(n, "entity", "entities"),
            r.signals,
            plural(r.signals as usize, "signal", "signals")
        )
    };
    let mut merged_seen: BTreeSet<&str> = BTreeSet::new();
    let mut opened = false;
    let mut i = 0;
    while i < versions.len() {
        let v = &versions[i];
        let r = &v.incident;
        let mut new_merges: Vec<String> = Vec::new();
        for m in &r.explanation.merged {
            if merged_seen.insert(m.id.as_str()) {
                new_merges.push(format!("{} ({})", codec(&m.id), codec(&m.rule)));
            }
        }
        let merge_row = |rows: &mut Vec<Row>, at: EventTime, merges: &[String]| {
            if !merges.is_empty() {
                rows.push((
                    at,
                    4,
                    format!(
                        "{} {} merged into this one: {}",
                        plural(merges.len(), "incident", "incidents"),
                        plural(merges.len(), "was", "were"),
                        capped(merges, MAX_NAMES)
                    ),
                ));
            }
        };
        match v.change {
            ChangeKind::Opened => {
                let absorbing = if new_merges.is_empty() {
                    String::new()
                } else {
                    format!(", absorbing {}", capped(&new_merges, 3))
                };
                let (at, what) = if opened {
                    (r.last_seen, "opened again")
                } else {
                    (r.opened_at, "**incident opened**")
                };
                opened = true;
                rows.push((
                    at,
                    3,
                    format!(
                        "{what} (version {}, {}): {}{absorbing}",
                        r.version,
                        r.severity.as_str(),
                        size(r)
                    ),
                ));
                i += 1;
            }
            ChangeKind::Updated => {
                let mut end = i;
                while end + 1 < versions.len() && versions[end + 1].change == ChangeKind::Updated {
                    end += 1;
                }
                let run = end - i + 1;
                merge_row(&mut rows, r.last_seen, &new_merges);
                if run <= MAX_RUN {
                    for u in &versions[i..=end] {
                        rows.push((
                            u.incident.last_seen,
                            4,
                            format!(
                                "updated to version {}: {}",
                                u.incident.version,
                                size(&u.incident)
                            ),
                        ));
                    }
                } else {
                    let (a, b) = (&versions[i].incident, &versions[end].incident);
                    rows.push((
                        a.last_seen,
                        4,
                        format!(
                            "updated to version {} (first of {run} updates): {}",
                            a.version,
                            size(a)
                        ),
                    ));
                    rows.push((
                        b.last_seen,
                        4,
                        format!(
                            "updated to version {} (last of {run} updates): {}",
                            b.version,
                            size(b)
                        ),
                    ));
                }
                // Merges inside the run are still reported.
                for u in &versions[i + 1..=end] {
                    let mut merges = Vec::new();
                    for m in &u.incident.explanation.merged {
                        if merged_seen.insert(m.id.as_str()) {
                            merges.push(format!("{} ({})", codec(&m.id), codec(&m.rule)));
                        }
                    }
                    merge_row(&mut rows, u.incident.last_seen, &merges);
                }
                i = end + 1;
            }
            ChangeKind::Resolved => {
                merge_row(&mut rows, r.last_seen, &new_merges);
                rows.push((
                    r.resolved_at.unwrap_or(r.last_seen),
                    7,
                    resolved_text(r, Some(r.version)),
                ));
                i += 1;
            }
            ChangeKind::Merged => {
                merge_row(&mut rows, r.last_seen, &new_merges);
                let into = v
                    .merged_into
                    .as_deref()
                    .map_or("another incident".to_string(), codec);
                rows.push((
                    r.last_seen,
                    5,
                    format!("**merged into** {into} (version {})", r.version),
                ));
                i += 1;
            }
        }
    }
    rows
}

fn chain(out: &mut Out, f: &Facts<'_>) {
    let r = f.r;
    let e = &r.explanation;
    out.line("## Root cause chain");
    out.blank();
    let summary = clean(&r.root_cause.summary);
    if summary.is_empty() {
        out.line(format!("**{}**", md(&f.root())));
    } else {
        out.line(format!("**{}**: {}", md(&f.root()), md(&summary)));
    }
    out.blank();
    let attrs: Vec<String> = r
        .root_cause
        .attributes
        .iter()
        .map(|(k, v)| format!("{} {}", md(&clean(k)), md(&clean(v))))
        .collect();
    let attrs = if attrs.is_empty() {
        String::new()
    } else {
        format!(" ({})", capped(&attrs, MAX_NAMES))
    };
    out.line(format!("1. **Cause signal**: {}{attrs}", f.signal()));
    let mut rule = format!(
        "2. **Rule** {} ({}, window {} before to {} after the cause)",
        codec(&e.rule),
        e.kind.as_str(),
        e.window.before,
        e.window.after
    );
    let description = clean(&e.description);
    if description.is_empty() {
        rule.push('.');
    } else {
        rule.push_str(&format!(": {}", md(&sentence(&description))));
    }
    out.line(rule);

    let ties = merge_ties(&e.ties);
    let (cause, effects): (Vec<&Tie>, Vec<&Tie>) = ties.iter().partition(|t| t.role == Role::Cause);
    let mut n = 3;
    if !cause.is_empty() {
        let g = join_groups(&cause, |_| "showed the cause".to_string());
        for (_, line) in g.iter().take(1) {
            out.line(format!("{n}. **Showed the cause**: {line}"));
        }
        n += 1;
    }
    if effects.is_empty() {
        out.line(format!(
            "{n}. **Tied in**: no effect is tied to the cause yet."
        ));
    } else {
        let groups = join_groups(&effects, |t| {
            if t.joined_by.is_empty() {
                "no join value recorded".to_string()
            } else {
                t.joined_by
                    .iter()
                    .map(|j| clean(j))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        });
        out.line(format!(
            "{n}. **Tied in**, by join path ({} {}):",
            groups.len(),
            plural(groups.len(), "path", "paths")
        ));
        for (key, line) in groups.iter().take(MAX_GROUPS) {
            out.line(format!("   - {}: {line}", md(key)));
        }
        if groups.len() > MAX_GROUPS {
            out.line(format!(
                "   - and {} more join paths",
                groups.len() - MAX_GROUPS
            ));
        }
    }
    n += 1;
    if !e.merged.is_empty() {
        let list: Vec<String> = e
            .merged
            .iter()
            .map(|m| format!("{} ({})", codec(&m.id), md(&clean(&m.rule))))
            .collect();
        out.line(format!(
            "{n}. **Merged incidents**: {}",
            capped(&list, MAX_NAMES)
        ));
        n += 1;
    }
    if let Some(a) = &e.absence {
        let facts = absence_sentences(a, &f.clock)
            .iter()
            .map(|s| md(s))
            .collect::<Vec<_>>()
            .join(" ");
        out.line(format!("{n}. **Absence**: {facts}"));
    }
    out.blank();
}

/// Ties grouped by `key`: (key, "6 pods (signal 4, other 2): a, b and 4
/// more"), largest group first.
fn join_groups(ties: &[&Tie], key: impl Fn(&Tie) -> String) -> Vec<(String, String)> {
    type Group = (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>);
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for t in ties {
        let g = groups.entry(key(t)).or_default();
        g.0.insert(clean(&t.entity));
        g.1.entry(clean(&t.signal))
            .or_default()
            .insert(clean(&t.entity));
    }
    let mut v: Vec<(String, Group)> = groups.into_iter().collect();
    v.sort_by(|a, b| b.1.0.len().cmp(&a.1.0.len()).then_with(|| a.0.cmp(&b.0)));
    v.into_iter()
        .map(|(k, (entities, signals))| {
            let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
            let mut names = Vec::new();
            for e in &entities {
                let (kind, rest) = e.split_once('/').unwrap_or(("entity", e.as_str()));
                *kinds.entry(kind.to_string()).or_default() += 1;
                names.push(rest.to_string());
            }
            let sigs: Vec<String> = signals
                .iter()
                .map(|(s, es)| format!("{} {}", codec(s), es.len()))
                .collect();
            let line = format!(
                "{} ({}): {}",
                md(&kinds_phrase(&kinds)),
                capped(&sigs, MAX_NAMES),
                md(&capped(&names, MAX_NAMES))
            );
            (k, line)
        })
        .collect()
}

fn detection(out: &mut Out, f: &Facts<'_>, stored: usize) {
    let r = f.r;
    out.line("## Detection");
    out.blank();
    out.line(format!(
        "- **Time to announce**: {} (first record {}, incident opened {})",
        r.opened_at.since(r.first_seen),
        f.at(r.first_seen),
        f.at(r.opened_at)
    ));
    out.line(format!(
        "- **Detected by**: epicenter rule {}; *to be filled*: did a person or another monitor notice first?",
        codec(&r.rule)
    ));
    match f.first_alert() {
        Some((a, at)) => {
            let lead = at.since(r.opened_at);
            let compare = if lead.as_micros() > 0 {
                format!("{lead} after epicenter opened the incident")
            } else {
                format!(
                    "{} before epicenter opened the incident",
                    r.opened_at.since(at)
                )
            };
            out.line(format!(
                "- **First Alertmanager alert**: {} at {}, {} after the first symptom ({compare})",
                codec(&a.signal),
                f.at(at),
                at.since(f.start)
            ));
        }
        None => out.line("- **First Alertmanager alert**: none tied to this incident"),
    }
    let entities: std::collections::BTreeSet<&str> = r
        .explanation
        .ties
        .iter()
        .map(|t| t.entity.as_str())
        .collect();
    out.line(format!(
        "- **Noise suppressed**: {} {} from {} {} -> 1 incident -> {stored} stored {}",
        r.signals,
        plural(r.signals as usize, "signal", "signals"),
        entities.len(),
        plural(entities.len(), "entity", "entities"),
        plural(stored, "version", "versions")
    ));
    out.blank();
}

fn questions(out: &mut Out, f: &Facts<'_>) {
    let r = f.r;
    let root = md(&f.root());
    out.line("## Open questions (to be filled)");
    out.blank();
    out.line(format!(
        "- [ ] Why did {root} fail ({})? What changed shortly before {}?",
        f.signal(),
        f.at(f.start)
    ));
    if !f.damage.is_empty() {
        out.line(format!(
            "- [ ] Why could one failure take down {}? Could they have degraded more gracefully?",
            md(&f.damage.phrase())
        ));
    }
    match f.first_alert() {
        Some((a, at)) => out.line(format!(
            "- [ ] Was the alerting adequate? The first alert ({}) fired at {}, {} after the first symptom; epicenter opened the incident at {}.",
            codec(&a.signal),
            f.at(at),
            at.since(f.start),
            f.at(r.opened_at)
        )),
        None => out.line(format!(
            "- [ ] Was the alerting adequate? No Alertmanager alert fired for it; epicenter opened the incident at {}.",
            f.at(r.opened_at)
        )),
    }
    if f.resolved() {
        out.line("- [ ] What resolved it: a fix by a person, or did it recover on its own?");
    } else if f.change != ChangeKind::Merged {
        out.line(format!(
            "- [ ] Is it over? The incident was still firing at its last record ({}): what was done to recover, and when?",
            f.at(r.last_seen)
        ));
    }
    if !r.explanation.merged.is_empty() {
        let ids: Vec<String> = r.explanation.merged.iter().map(|m| codec(&m.id)).collect();
        out.line(format!(
            "- [ ] Do the merged incidents ({}) really share this cause?",
            capped(&ids, MAX_NAMES)
        ));
    }
    out.line("- [ ] Which users noticed, and did anyone report it before the alerts?");
    out.line("- [ ] Was any data lost or corrupted?");
    out.blank();

    out.line("## Follow-ups (to be filled)");
    out.blank();
    out.line(format!(
        "- [ ] Preventive: stop {root} failing this way again. Owner: *to be filled*. Due: *to be filled*."
    ));
    out.line(format!(
        "- [ ] Detective: alert on {} directly, before it cascades. Owner: *to be filled*. Due: *to be filled*.",
        f.signal()
    ));
    out.line(
        "- [ ] Mitigative: reduce the blast radius (spread, redundancy, graceful degradation). Owner: *to be filled*. Due: *to be filled*.",
    );
    out.line(
        "- [ ] Runbook: write down how this was diagnosed and recovered. Owner: *to be filled*.",
    );
    out.line("- [ ] Review this draft, fill in the items above and set its status. Owner: *to be filled*.");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use correlate::report::{Affected, EntityRef};

    /// A bare version: no title, no ties, nothing affected.
    fn bare(change: &str, version: u32) -> IncidentChange {
        serde_json::from_value(serde_json::json!({
            "change": change,
            "id": "x1",
            "rule": "r",
            "title": "",
            "severity": "critical",
            "status": "firing",
            "opened_at": "2026-03-16T08:00:10Z",
            "first_seen": "2026-03-16T08:00:00Z",
            "last_seen": "2026-03-16T08:00:20Z",
            "root_cause": {
                "signal": "",
                "summary": "",
                "entity": {"kind": "", "namespace": null, "name": "", "node": null},
                "attributes": {}
            },
            "affected": [],
            "signals": 0,
            "version": version,
            "explanation": {
                "rule": "r",
                "kind": "correlation",
                "window": {"before": "10m", "after": "1h"},
                "ties": []
            }
        }))
        .unwrap()
    }

    fn pod(name: &str, node: &str) -> (Affected, Tie) {
        let at = EventTime::parse_rfc3339("2026-03-16T08:01:00Z").unwrap();
        (
            Affected {
                entity: EntityRef {
                    kind: "Pod".into(),
                    namespace: Some(format!("ns-{name}")),
                    name: name.into(),
                    node: Some(node.into()),
                },
                signal: "stuck".into(),
                role: Role::Effect,
            },
            Tie {
                entity: format!("Pod/ns-{name}/{name}"),
                signal: "stuck".into(),
                role: Role::Effect,
                first: at,
                last: at,
                records: 2,
                joined_by: vec![format!("same node = {node}")],
            },
        )
    }

    fn check_plain(text: &str) {
        assert!(text.ends_with('\n'));
        assert!(!text.contains('\u{1b}'));
        for line in text.lines() {
            assert_eq!(line, line.trim_end(), "trailing space: {line:?}");
        }
    }

    #[test]
    fn nothing_stored_is_a_short_note() {
        let text = draft(&[]);
        assert!(text.starts_with("# Post-mortem: unknown incident\n"));
        check_plain(&text);
    }

    #[test]
    fn an_empty_or_odd_report_never_panics() {
        let empty = bare("opened", 0);
        let text = draft(std::slice::from_ref(&empty));
        check_plain(&text);
        assert!(text.contains("# Post-mortem: incident x1"));
        assert!(text.contains("| - | notifications: see the outbox"));

        // Times out of order, a resolution without a time, control
        // characters and Markdown in the fields, a merge with no target.
        let mut odd = bare("merged", 3);
        odd.incident.title = "a\u{1b}[31m | *b*\nc".into();
        odd.incident.last_seen = EventTime::from_micros(i64::MIN);
        odd.incident.opened_at = EventTime::from_micros(i64::MAX);
        odd.incident.status = Status::Resolved;
        odd.incident.root_cause.summary = "x\ty".into();
        let (a, mut t) = pod("", "");
        t.joined_by.clear();
        t.entity = "no-slash".into();
        odd.incident.affected.push(a);
        odd.incident.explanation.ties.push(t);
        let resolved = bare("resolved", 4);
        let text = draft(&[resolved, bare("updated", 5), odd]);
        check_plain(&text);
        assert!(text.contains("a \\[31m \\| \\*b\\* c"), "{text}");
    }

    #[test]
    fn updates_collapse_to_the_first_and_last() {
        let mut versions = vec![bare("opened", 1)];
        for v in 2..=30 {
            versions.push(bare("updated", v));
        }
        versions.push(bare("resolved", 30));
        let text = draft(&versions);
        check_plain(&text);
        assert!(
            text.contains("updated to version 2 (first of 29 updates)"),
            "{text}"
        );
        assert!(
            text.contains("updated to version 30 (last of 29 updates)"),
            "{text}"
        );
        assert!(!text.contains("version 15"), "{text}");
        assert!(text.contains("**resolved** (version 30)"), "{text}");
        assert!(text.contains("31 stored versions"), "{text}");

        // Two updates stay as they are.
        let text = draft(&[bare("opened", 1), bare("updated", 2), bare("updated", 3)]);
        assert!(text.contains("updated to version 2: "), "{text}");
        assert!(text.contains("updated to version 3: "), "{text}");
    }

    #[test]
    fn lists_cap_for_a_thousand_pods() {
        let mut v = bare("opened", 1);
        for i in 0..1000 {
            let (a, t) = pod(
                &format!("web-7d9f8b6c5d-x{i:04}"),
                &format!("node{}", i % 50),
            );
            v.incident.affected.push(a);
            v.incident.explanation.ties.push(t);
        }
        let text = draft(&[v]);
        check_plain(&text);
        assert!(text.lines().count() < 100, "{} lines", text.lines().count());
        assert!(text.contains("- **Pods**: 1000: "), "{text}");
        assert!(text.contains(" and 992 more"), "{text}");
        assert!(text.contains("and 38 more join paths"), "{text}");
        assert!(
            text.contains("1000 pods in 1000 namespaces on 50 nodes"),
            "{text}"
        );
    }

    #[test]
    fn workloads_only_when_the_name_says_so() {
        assert_eq!(
            workload_of("calibre-web-69lnzv7jfp-l7wtk").as_deref(),
            Some("calibre-web")
        );
        assert_eq!(
            workload_of("csi-nfs-node-nnftf").as_deref(),
            Some("csi-nfs-node")
        );
        assert_eq!(
            workload_of("mysql-cluster-1").as_deref(),
            Some("mysql-cluster")
        );
        assert_eq!(workload_of("standalone"), None);
        assert_eq!(workload_of("my-app-proxy"), None);
        assert_eq!(workload_of("-0"), None);
    }

    #[test]
    fn alerts_are_the_user_facing_ones() {
        let mut v = bare("opened", 1);
        let (mut a, mut t) = pod("api-0", "n1");
        a.signal = "alert-target-down".into();
        t.signal = "alert-target-down".into();
        v.incident.affected.push(a);
        v.incident.explanation.ties.push(t);
        let text = draft(&[v]);
        assert!(
            text.contains("- **User-facing alerts that fired**: 1\n  - `alert-target-down` on Pod ns-api-0/api-0, first at 08:01:00"),
            "{text}"
        );
        assert!(text.contains("the first Alertmanager alert (`alert-target-down`) fired at 08:01:00, 0s after the first symptom"), "{text}");
    }
}

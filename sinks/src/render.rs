//! Incidents for people reading a terminal or a ticket: `epicenter replay
//! --format text|markdown`.
//!
//! An [`IncidentReport`] is built for machines: every member, every tie of
//! every signal. Someone on call needs the cause in the first lines, the
//! damage counted rather than listed, a few moments in time, and the
//! reasons said once each. Both renderings show the same sections in the
//! same order: title and header, root cause (entity, summary, the decisive
//! attributes), blast radius (grouped by namespace, then node), timeline,
//! and why epicenter believes it (the explanation as sentences).
//!
//! Design choice: one view is computed from the report ([`View`]), then
//! written out as plain text or as Markdown, so the two never disagree on
//! what is shown; `serve`'s web page renders the same view ([`view`]) as
//! HTML. Every list is capped (names per group, groups, timeline
//! lines, entity sentences) with "and N more": a 1,000-pod incident reads
//! like an 18-pod one. Output is a pure function of the report (sorted
//! maps, no clock), every line is trimmed, control characters from the
//! input are replaced (no terminal escapes leak from a log line), and colour
//! comes only from [`anstyle`] when the caller asks for it.

use std::collections::{BTreeMap, BTreeSet};

use anstyle::{AnsiColor, Style};
use correlate::incident::{AbsenceFacts, Role};
use correlate::report::{Affected, EntityRef, Tie};
use correlate::{EventTime, IncidentReport, Severity, Status};

/// At most this many names per group (a node's pods in a namespace).
const MAX_NAMES: usize = 10;
/// At most this many namespace groups (and nodes per namespace).
const MAX_GROUPS: usize = 12;
/// At most this many timeline lines.
const MAX_TIMELINE: usize = 10;
/// At most this many entity sentences in the explanation.
const MAX_SENTENCES: usize = 15;

/// The incident as plain text; `colour` adds ANSI styles to the title and
/// the severity (pass `stdout().is_terminal()`).
pub fn text(report: &IncidentReport, colour: bool) -> String {
    let v = View::new(report);
    let mut out = Out::default();
    let (title_style, sev_style) = if colour {
        (Style::new().bold(), severity_style(report.severity))
    } else {
        (Style::new(), Style::new())
    };
    out.line(styled(title_style, &v.title));
    let cluster = v
        .cluster
        .as_ref()
        .map_or(String::new(), |c| format!("  cluster: {c}"));
    out.line(format!(
        "id: {}{cluster}  rule: {}  severity: {}  status: {}",
        v.id,
        v.rule,
        styled(sev_style, v.severity),
        v.status
    ));
    out.line(
        v.times
            .iter()
            .map(|(k, t)| format!("{k}: {t}"))
            .collect::<Vec<_>>()
            .join("  "),
    );
    out.blank();

    out.line(format!("Root cause: {}", v.root.entity));
    if !v.root.summary.is_empty() {
        out.line(format!("  {}", v.root.summary));
    }
    for (k, val) in &v.root.attributes {
        out.line(format!("  {k}: {val}"));
    }
    out.line(format!("  cause signal: {}", v.root.signal));
    if let Some(side) = &v.root.shown_by {
        out.line(format!("  shown by: {}", side.summary));
        text_groups(&mut out, side, "    ");
    }
    out.blank();

    out.line(format!("Blast radius: {}", v.radius.summary));
    if let Some(by_node) = &v.radius.by_node {
        out.line(format!("  by node: {by_node}"));
    }
    text_groups(&mut out, &v.radius, "  ");
    out.blank();

    out.line(format!("Timeline (UTC{})", v.day_note()));
    for (at, what) in &v.timeline {
        out.line(format!("  {at:<8}  {what}"));
    }
    out.blank();

    out.line("Why epicenter believes it");
    for s in &v.why {
        out.line(format!("  {s}"));
    }
    out.finish()
}

/// The incident as Markdown: a `#` title, `##` sections, a table for the
/// timeline and bullet lists elsewhere.
pub fn markdown(report: &IncidentReport) -> String {
    let v = View::new(report);
    let mut out = Out::default();
    out.line(format!("# {}", md(&v.title)));
    out.blank();
    let cluster = v
        .cluster
        .as_ref()
        .map_or(String::new(), |c| format!(", cluster {}", code(c)));
    out.line(format!(
        "- id {}{cluster}, rule {}, severity **{}**, status {}",
        code(&v.id),
        code(&v.rule),
        v.severity,
        v.status
    ));
    out.line(format!(
        "- {}",
        v.times
            .iter()
            .map(|(k, t)| format!("{k} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.blank();

    out.line("## Root cause");
    out.blank();
    out.line(format!("**{}**", md(&v.root.entity)));
    out.blank();
    if !v.root.summary.is_empty() {
        out.line(md(&v.root.summary));
        out.blank();
    }
    for (k, val) in &v.root.attributes {
        out.line(format!("- **{}**: {}", md(k), md(val)));
    }
    out.line(format!("- **cause signal**: {}", code(&v.root.signal)));
    if let Some(side) = &v.root.shown_by {
        out.line(format!("- **shown by**: {}", md(&side.summary)));
        md_groups(&mut out, side, "  ");
    }
    out.blank();

    out.line("## Blast radius");
    out.blank();
    out.line(format!("{}.", md(&v.radius.summary)));
    if v.radius.by_node.is_some() || !v.radius.groups.is_empty() {
        out.blank();
    }
    if let Some(by_node) = &v.radius.by_node {
        out.line(format!("- **by node**: {}", md(by_node)));
    }
    md_groups(&mut out, &v.radius, "");
    out.blank();

    out.line("## Timeline");
    out.blank();
    out.line(format!("| Time (UTC{}) | Event |", v.day_note()));
    out.line("| --- | --- |");
    for (at, what) in &v.timeline {
        out.line(format!("| {} | {} |", md(at), md(what)));
    }
    out.blank();

    out.line("## Why epicenter believes it");
    out.blank();
    for s in &v.why {
        out.line(format!("- {}", md(s)));
    }
    out.finish()
}

fn severity_style(s: Severity) -> Style {
    let colour = match s {
        Severity::Critical => AnsiColor::Red,
        Severity::Warning => AnsiColor::Yellow,
        Severity::Info => AnsiColor::Cyan,
    };
    Style::new().bold().fg_color(Some(colour.into()))
}

/// `text` in `style`; plain when the style is empty (no escape codes).
fn styled(style: Style, text: &str) -> String {
    if style == Style::new() {
        text.to_string()
    } else {
        format!("{}{text}{}", style.render(), style.render_reset())
    }
}

fn text_groups(out: &mut Out, g: &Grouped, indent: &str) {
    for group in &g.groups {
        match &group.layout {
            Layout::Line(names) => {
                out.line(format!(
                    "{indent}{}: {}: {names}",
                    group.namespace, group.counts
                ));
            }
            Layout::PerNode(nodes) => {
                out.line(format!("{indent}{}: {}", group.namespace, group.counts));
                for n in nodes {
                    out.line(format!("{indent}  {}: {}", n.node_label(), n.names));
                }
            }
        }
    }
    if let Some(more) = &g.more_groups {
        out.line(format!("{indent}{more}"));
    }
}

fn md_groups(out: &mut Out, g: &Grouped, indent: &str) {
    for group in &g.groups {
        let head = format!(
            "{indent}- **{}**: {}",
            md(&group.namespace),
            md(&group.counts)
        );
        match &group.layout {
            Layout::Line(names) => out.line(format!("{head}: {}", md(names))),
            Layout::PerNode(nodes) => {
                out.line(head);
                for n in nodes {
                    out.line(format!(
                        "{indent}  - {}: {}",
                        md(&n.node_label()),
                        md(&n.names)
                    ));
                }
            }
        }
    }
    if let Some(more) = &g.more_groups {
        out.line(format!("{indent}- {}", md(more)));
    }
}

/// Lines being written: trimmed, at most one blank line in a row, none at
/// the end, a final newline.
#[derive(Debug, Default)]
pub(crate) struct Out {
    text: String,
}

impl Out {
    pub(crate) fn line(&mut self, s: impl AsRef<str>) {
        self.text.push_str(s.as_ref().trim_end());
        self.text.push('\n');
    }

    pub(crate) fn blank(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with("\n\n") {
            self.text.push('\n');
        }
    }

    pub(crate) fn finish(mut self) -> String {
        while self.text.ends_with("\n\n") {
            self.text.pop();
        }
        if !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        self.text
    }
}

/// What both renderings show, computed once; the web page (`serve`)
/// renders the same view as HTML.
#[derive(Debug)]
pub struct View {
    pub title: String,
    pub id: String,
    /// The cluster, when named.
    pub cluster: Option<String>,
    pub rule: String,
    pub severity: &'static str,
    pub status: &'static str,
    pub times: Vec<(&'static str, String)>,
    /// The UTC day of the first record (`2026-03-16`), when known.
    pub day: Option<String>,
    pub root: RootView,
    pub radius: Grouped,
    /// (time as the clock says it, what happened), in time order.
    pub timeline: Vec<(String, String)>,
    /// The explanation as sentences.
    pub why: Vec<String>,
}

/// The view of `report` both renderings are written from.
pub fn view(report: &IncidentReport) -> View {
    View::new(report)
}

#[derive(Debug)]
pub struct RootView {
    pub entity: String,
    pub summary: String,
    pub signal: String,
    pub attributes: Vec<(String, String)>,
    /// The members that showed the cause (and roots of merged incidents).
    pub shown_by: Option<Grouped>,
}

/// Entities grouped by namespace, then node, with counts.
#[derive(Debug, Default)]
pub struct Grouped {
    /// "18 pods in 16 namespaces on 4 nodes".
    pub summary: String,
    /// "k8s-node1 4, k8s-node2 4, ..." when on more than one node.
    pub by_node: Option<String>,
    pub groups: Vec<Group>,
    /// "and 4 more namespaces (9 entities)".
    pub more_groups: Option<String>,
}

#[derive(Debug)]
pub struct Group {
    pub namespace: String,
    /// "6 pods, 1 Deployment on 4 nodes", "1 pod on k8s-node1".
    pub counts: String,
    pub layout: Layout,
}

#[derive(Debug)]
pub enum Layout {
    /// One line of names (one node, or too many to list per node).
    Line(String),
    /// A line per node (when the namespace has few entities).
    PerNode(Vec<NodeGroup>),
}

#[derive(Debug)]
pub struct NodeGroup {
    pub node: Option<String>,
    pub names: String,
}

impl NodeGroup {
    pub fn node_label(&self) -> String {
        self.node.clone().unwrap_or_else(|| "no node".to_string())
    }
}

impl View {
    fn new(r: &IncidentReport) -> View {
        let day = day_of(r.first_seen);
        let clock = Clock { day: day.clone() };
        let mut times = vec![
            ("opened", clean(&r.opened_at.to_string())),
            ("first seen", clean(&r.first_seen.to_string())),
            ("last seen", clean(&r.last_seen.to_string())),
        ];
        if let Some(at) = r.resolved_at {
            times.push(("resolved", clean(&at.to_string())));
        }
        let (cause_side, damage): (Vec<&Affected>, Vec<&Affected>) = r
            .affected
            .iter()
            .partition(|a| matches!(a.role, Role::Cause | Role::Merged));
        let shown_by = (!cause_side.is_empty()).then(|| group(&cause_side));
        let mut radius = group(&damage);
        if damage.is_empty() {
            radius.summary = if cause_side.is_empty() {
                "no entity is affected".to_string()
            } else {
                "none beyond the entities that showed the cause".to_string()
            };
        }
        View {
            title: clean(&r.title),
            id: clean(&r.id),
            cluster: r.cluster.as_deref().map(clean),
            rule: clean(&r.rule),
            severity: r.severity.as_str(),
            status: status_str(r.status),
            times,
            day,
            root: RootView {
                entity: entity_label(&r.root_cause.entity),
                summary: clean(&r.root_cause.summary),
                signal: clean(&r.root_cause.signal),
                attributes: r
                    .root_cause
                    .attributes
                    .iter()
                    .map(|(k, v)| (clean(k), clean(v)))
                    .collect(),
                shown_by,
            },
            radius,
            timeline: timeline(r, &clock),
            why: why(r, &clock),
        }
    }

    /// ", 2026-03-16" for the heading of the timeline.
    pub fn day_note(&self) -> String {
        self.day
            .as_ref()
            .map(|d| format!(", {d}"))
            .unwrap_or_default()
    }
}

pub(crate) fn status_str(s: Status) -> &'static str {
    match s {
        Status::Pending => "pending",
        Status::Firing => "firing",
        Status::Resolved => "resolved",
    }
}

/// Replaces control characters (newlines, tabs, terminal escapes) with
/// spaces, so every field stays on its line and nothing styles a terminal.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Markdown text: the characters that would format escaped.
pub(crate) fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An inline code span that holds any text (a longer fence than any run of
/// backticks inside).
pub(crate) fn code(s: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    if longest == 0 {
        return format!("`{s}`");
    }
    let fence = "`".repeat(longest + 1);
    format!("{fence} {s} {fence}")
}

/// `Kind namespace/name on node`.
pub fn entity_label(e: &EntityRef) -> String {
    let mut s = clean(&e.kind);
    s.push(' ');
    if let Some(ns) = e.namespace.as_deref().filter(|n| !n.is_empty()) {
        s.push_str(&clean(ns));
        s.push('/');
    }
    s.push_str(&clean(&e.name));
    if let Some(node) = e.node.as_deref().filter(|n| !n.is_empty()) {
        // A Node's node is itself.
        if !(e.kind == "Node" && node == e.name) {
            s.push_str(" on ");
            s.push_str(&clean(node));
        }
    }
    s
}

/// An engine key (`Pod/ns/name`, `Node/name`) as people write it.
pub fn key_label(key: &str) -> String {
    let key = clean(key);
    match key.split_once('/') {
        Some((kind, rest)) => format!("{kind} {rest}"),
        None => key,
    }
}

pub fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn entities(n: usize) -> String {
    format!("{n} {}", plural(n, "entity", "entities"))
}

/// "1 pod", "18 pods", "2 Services", "1 Deployment".
fn kind_count(kind: &str, n: usize) -> String {
    let word = match kind {
        "Pod" => "pod".to_string(),
        "Node" => "node".to_string(),
        k => k.to_string(),
    };
    if n == 1 {
        return format!("1 {word}");
    }
    let many = if let Some(stem) = word.strip_suffix('y') {
        format!("{stem}ies")
    } else if word.ends_with('s') || word.ends_with('x') {
        format!("{word}es")
    } else {
        format!("{word}s")
    };
    format!("{n} {many}")
}

/// "6 pods, 1 Deployment": kinds by count, most first.
pub fn kinds_phrase(kinds: &BTreeMap<String, usize>) -> String {
    let mut v: Vec<(&String, &usize)> = kinds.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| kind_count(k, **n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "a, b, c" or "a, ..., j and 5 more".
pub fn capped(names: &[String], max: usize) -> String {
    if names.len() <= max {
        return names.join(", ");
    }
    format!("{} and {} more", names[..max].join(", "), names.len() - max)
}

/// Groups entities by namespace, then node, once each.
fn group(members: &[&Affected]) -> Grouped {
    let mut seen = BTreeSet::new();
    // namespace → node → (kind, name); kinds per namespace.
    type Nodes = BTreeMap<Option<String>, Vec<(String, String)>>;
    let mut tree: BTreeMap<Option<String>, Nodes> = BTreeMap::new();
    let mut kinds: BTreeMap<Option<String>, BTreeMap<String, usize>> = BTreeMap::new();
    let mut all_kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for a in members {
        let e = &a.entity;
        let ns = e.namespace.as_deref().filter(|n| !n.is_empty()).map(clean);
        let (kind, name) = (clean(&e.kind), clean(&e.name));
        // A Node is not "on" a node: it is one.
        let node = e
            .node
            .as_deref()
            .filter(|n| !n.is_empty() && kind != "Node")
            .map(clean);
        if !seen.insert((kind.clone(), ns.clone(), name.clone())) {
            continue;
        }
        if let Some(n) = &node {
            *per_node.entry(n.clone()).or_default() += 1;
        }
        *all_kinds.entry(kind.clone()).or_default() += 1;
        *kinds
            .entry(ns.clone())
            .or_default()
            .entry(kind.clone())
            .or_default() += 1;
        tree.entry(ns)
            .or_default()
            .entry(node)
            .or_default()
            .push((kind, name));
    }
    let namespaces = tree.keys().filter(|k| k.is_some()).count();
    let mut summary = kinds_phrase(&all_kinds);
    if namespaces > 0 {
        summary.push_str(&format!(
            " in {namespaces} {}",
            plural(namespaces, "namespace", "namespaces")
        ));
    }
    if !per_node.is_empty() {
        summary.push_str(&format!(
            " on {} {}",
            per_node.len(),
            plural(per_node.len(), "node", "nodes")
        ));
    }
    let by_node = (per_node.len() > 1).then(|| node_counts(&per_node));

    let mut groups: Vec<(usize, Option<String>, Nodes)> = tree
        .into_iter()
        .map(|(ns, nodes)| (nodes.values().map(Vec::len).sum(), ns, nodes))
        .collect();
    // Largest namespaces first; then by name, cluster-scoped last.
    groups.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.is_none().cmp(&b.1.is_none()))
            .then_with(|| a.1.cmp(&b.1))
    });
    let more_groups = (groups.len() > MAX_GROUPS).then(|| {
        let rest = &groups[MAX_GROUPS..];
        let n: usize = rest.iter().map(|g| g.0).sum();
        format!(
            "and {} more {} ({})",
            rest.len(),
            plural(rest.len(), "namespace", "namespaces"),
            entities(n)
        )
    });
    let groups = groups
        .into_iter()
        .take(MAX_GROUPS)
        .map(|(count, ns, nodes)| {
            let ns_kinds = kinds.get(&ns).cloned().unwrap_or_default();
            // Names say their kind when the namespace holds several (pods
            // stay bare).
            let label = |(kind, name): (String, String)| {
                if ns_kinds.len() > 1 && kind != "Pod" {
                    format!("{kind} {name}")
                } else {
                    name
                }
            };
            let on_nodes: BTreeMap<String, usize> = nodes
                .iter()
                .filter_map(|(n, v)| n.clone().map(|n| (n, v.len())))
                .collect();
            let mut counts = kinds_phrase(&ns_kinds);
            let layout = if nodes.len() == 1 {
                let (node, names) = nodes.into_iter().next().unwrap_or_default();
                let mut names: Vec<String> = names.into_iter().map(label).collect();
                names.sort();
                if let Some(n) = &node {
                    counts.push_str(&format!(" on {n}"));
                }
                Layout::Line(capped(&names, MAX_NAMES))
            } else {
                counts.push_str(&format!(
                    " on {} {}",
                    on_nodes.len(),
                    plural(on_nodes.len(), "node", "nodes")
                ));
                if count > MAX_NAMES {
                    // Too many to list per node: node counts, then names.
                    counts.push_str(&format!(" ({})", node_counts(&on_nodes)));
                    let mut names: Vec<String> = nodes.into_values().flatten().map(label).collect();
                    names.sort();
                    Layout::Line(capped(&names, MAX_NAMES))
                } else {
                    // Known nodes first, then the entities without one.
                    let mut per_node: Vec<NodeGroup> = nodes
                        .into_iter()
                        .map(|(node, names)| {
                            let mut names: Vec<String> = names.into_iter().map(label).collect();
                            names.sort();
                            NodeGroup {
                                node,
                                names: names.join(", "),
                            }
                        })
                        .collect();
                    per_node.sort_by_key(|n| n.node.is_none());
                    Layout::PerNode(per_node)
                }
            };
            Group {
                namespace: ns.unwrap_or_else(|| "cluster-scoped".to_string()),
                counts,
                layout,
            }
        })
        .collect();
    Grouped {
        summary,
        by_node,
        groups,
        more_groups,
    }
}

/// "k8s-node1 4, k8s-node2 3" (capped).
fn node_counts(per_node: &BTreeMap<String, usize>) -> String {
    let v: Vec<String> = per_node.iter().map(|(n, c)| format!("{n} {c}")).collect();
    capped(&v, MAX_NAMES)
}

/// Times in the timeline and the sentences: `08:01:02` on the day of the
/// first record, the date too on another day.
#[derive(Debug)]
pub struct Clock {
    pub day: Option<String>,
}

impl Clock {
    pub fn at(&self, t: EventTime) -> String {
        match jiff::Timestamp::from_microsecond(t.as_micros()) {
            Ok(ts) => {
                let day = ts.strftime("%Y-%m-%d").to_string();
                let time = ts.strftime("%H:%M:%S").to_string();
                if self.day.as_deref() == Some(day.as_str()) {
                    time
                } else {
                    format!("{day} {time}")
                }
            }
            Err(_) => clean(&t.to_string()),
        }
    }
}

pub fn day_of(t: EventTime) -> Option<String> {
    jiff::Timestamp::from_microsecond(t.as_micros())
        .ok()
        .map(|ts| ts.strftime("%Y-%m-%d").to_string())
}

/// Signals with their first appearance.
type Firsts<'a> = Vec<(&'a str, SignalFirst)>;

/// One signal's first appearance.
#[derive(Debug)]
struct SignalFirst {
    first: EventTime,
    entity: String,
    entities: BTreeSet<String>,
    records: u64,
}

/// The moments that matter, in time order, at most [`MAX_TIMELINE`].
fn timeline(r: &IncidentReport, clock: &Clock) -> Vec<(String, String)> {
    // (time, order at equal times, text)
    let mut fixed: Vec<(EventTime, u8, String)> = Vec::new();
    let ties = &r.explanation.ties;
    let earliest_tie = ties.iter().map(|t| t.first).min();
    // Unless a signal's first line says it (at the same second).
    if earliest_tie.is_none_or(|t| r.first_seen < t && clock.at(r.first_seen) != clock.at(t)) {
        fixed.push((r.first_seen, 0, "first record".to_string()));
    }
    fixed.push((
        r.opened_at,
        3,
        format!("incident opened ({})", r.severity.as_str()),
    ));
    if let Some(a) = &r.explanation.absence {
        if let Some(at) = a
            .silent_since
            .filter(|at| *at != a.since || a.absent.is_empty())
        {
            fixed.push((at, 2, "last line before the silence".to_string()));
        }
        if !a.absent.is_empty() {
            fixed.push((a.since, 2, format!("no more {}", clean_list(&a.absent))));
        }
    }
    fixed.push((r.last_seen, 4, "last record".to_string()));
    if let Some(at) = r.resolved_at {
        let by = r
            .explanation
            .resolved_by
            .as_deref()
            .map(clean)
            .filter(|b| !b.is_empty());
        let what = match by {
            Some(b) if b.starts_with("resolved") => b,
            Some(b) => format!("resolved: {b}"),
            None => "resolved".to_string(),
        };
        fixed.push((at, 5, what));
    }

    let ties = merge_ties(ties);
    let mut signals: BTreeMap<&str, SignalFirst> = BTreeMap::new();
    for t in &ties {
        let s = signals
            .entry(t.signal.as_str())
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
        s.entities.insert(t.entity.clone());
        s.records += t.records;
    }
    let mut firsts: Vec<(&str, SignalFirst)> = signals.into_iter().collect();
    firsts.sort_by(|a, b| a.1.first.cmp(&b.1.first).then_with(|| a.0.cmp(b.0)));
    let room = MAX_TIMELINE.saturating_sub(fixed.len()).max(1);
    // The cause's signal is always shown, then the earliest others.
    let (mut kept, mut left): (Firsts<'_>, Firsts<'_>) = firsts
        .into_iter()
        .partition(|(sig, _)| *sig == r.root_cause.signal);
    let others = if kept.len() + left.len() > room {
        room.saturating_sub(kept.len() + 1)
    } else {
        left.len()
    };
    let rest = left.split_off(others.min(left.len()));
    kept.extend(left);
    let mut moments = fixed;
    for (sig, f) in &kept {
        let is_root = *sig == r.root_cause.signal;
        let root = if is_root { " (the cause)" } else { "" };
        let mut what = format!("first {}{root}: {}", clean(sig), key_label(&f.entity));
        let others = f.entities.len() - 1;
        if others > 0 {
            what.push_str(&format!(
                " and {}",
                entities(others).replacen(' ', " more ", 1)
            ));
        }
        if f.records > 0 {
            what.push_str(&format!(
                ", {} {}",
                f.records,
                plural(f.records as usize, "record", "records")
            ));
        }
        moments.push((f.first, if is_root { 1 } else { 2 }, what));
    }
    if let Some((_, f)) = rest.first() {
        let names: Vec<String> = rest.iter().map(|(s, _)| clean(s)).collect();
        moments.push((
            f.first,
            2,
            format!(
                "{} more {} first seen from here on: {}",
                rest.len(),
                plural(rest.len(), "signal", "signals"),
                capped(&names, 3)
            ),
        ));
    }
    moments.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    moments
        .into_iter()
        .map(|(at, _, what)| (clock.at(at), what))
        .collect()
}

fn clean_list(v: &[String]) -> String {
    v.iter().map(|s| clean(s)).collect::<Vec<_>>().join(", ")
}

/// The explanation as sentences: the rule, absence facts, merged incidents,
/// then one sentence per entity (its signals joined), capped.
fn why(r: &IncidentReport, clock: &Clock) -> Vec<String> {
    let e = &r.explanation;
    let mut out = Vec::new();
    let mut rule = format!(
        "Rule {} ({}, window {} before to {} after the cause)",
        clean(&e.rule),
        e.kind.as_str(),
        e.window.before,
        e.window.after
    );
    let description = clean(&e.description);
    if description.is_empty() {
        rule.push_str(" matched.");
    } else {
        rule.push_str(": ");
        rule.push_str(&sentence(&description));
    }
    out.push(rule);
    if let Some(a) = &e.absence {
        out.extend(absence_sentences(a, clock));
    }
    if !e.merged.is_empty() {
        let list: Vec<String> = e
            .merged
            .iter()
            .map(|m| format!("{} ({})", clean(&m.id), clean(&m.rule)))
            .collect();
        out.push(format!(
            "Merged into this incident: {}.",
            capped(&list, MAX_NAMES)
        ));
    }

    // The entities that showed the cause first (at most half the
    // sentences when others wait), then the others, each in time order.
    let (causes, others): (Vec<Vec<Tie>>, Vec<Vec<Tie>>) = ties_by_entity(&e.ties)
        .into_iter()
        .partition(|ties| ties.iter().any(|t| t.role == Role::Cause));
    let cause_room = if others.is_empty() {
        MAX_SENTENCES
    } else {
        (MAX_SENTENCES / 2).max(MAX_SENTENCES.saturating_sub(others.len()))
    };
    let shown_causes = causes.len().min(cause_room);
    let shown_others = others.len().min(MAX_SENTENCES - shown_causes);
    for ties in causes[..shown_causes].iter().chain(&others[..shown_others]) {
        out.push(entity_sentence(ties, clock));
    }
    let left: Vec<&Vec<Tie>> = causes[shown_causes..]
        .iter()
        .chain(&others[shown_others..])
        .collect();
    if !left.is_empty() {
        let mut per_signal: BTreeMap<&str, usize> = BTreeMap::new();
        for ties in &left {
            if let Some(t) = ties.first() {
                *per_signal.entry(t.signal.as_str()).or_default() += 1;
            }
        }
        let mut v: Vec<(&str, usize)> = per_signal.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let list: Vec<String> = v.iter().map(|(s, n)| format!("{} {n}", clean(s))).collect();
        let rest = left.len();
        out.push(format!(
            "And {rest} more {} joined the same way ({}).",
            plural(rest, "entity", "entities"),
            capped(&list, MAX_NAMES)
        ));
    }
    if e.ties.is_empty() {
        out.push("No entity is tied to it yet.".to_string());
    }
    out
}

/// "Ends with a full stop."
pub(crate) fn sentence(s: &str) -> String {
    if s.ends_with(['.', '!', '?']) {
        s.to_string()
    } else {
        format!("{s}.")
    }
}

pub(crate) fn absence_sentences(a: &AbsenceFacts, clock: &Clock) -> Vec<String> {
    let mut out = Vec::new();
    let absent = if a.absent.is_empty() {
        "the expected signals".to_string()
    } else {
        clean_list(&a.absent)
    };
    out.push(format!(
        "Absent from {} to {}: {absent}; the condition had to hold for {}.",
        clock.at(a.since),
        clock.at(a.until),
        a.held_for
    ));
    if let Some(at) = a.silent_since {
        let lines = a
            .lines_before_silence
            .map(|n| format!(" after {n} {}", plural(n as usize, "line", "lines")))
            .unwrap_or_default();
        out.push(format!(
            "The peer has been silent since {}{lines}.",
            clock.at(at)
        ));
    }
    if let Some(n) = a.evidence_records {
        out.push(format!(
            "{n} {} support it.",
            plural(n as usize, "evidence record", "evidence records")
        ));
    }
    out
}

/// Ties grouped by entity, entities in order of their first tie.
fn ties_by_entity(ties: &[Tie]) -> Vec<Vec<Tie>> {
    let mut order: Vec<String> = Vec::new();
    let mut map: BTreeMap<String, Vec<Tie>> = BTreeMap::new();
    for t in merge_ties(ties) {
        let v = map.entry(t.entity.clone()).or_default();
        if v.is_empty() {
            order.push(t.entity.clone());
        }
        v.push(t);
    }
    order.into_iter().filter_map(|k| map.remove(&k)).collect()
}

/// One tie per entity, signal and role: a merged incident can bring the
/// same member twice. The same records seen twice are not counted twice
/// (the larger count is kept); the span covers both.
pub fn merge_ties(ties: &[Tie]) -> Vec<Tie> {
    let mut out: Vec<Tie> = Vec::new();
    let mut at: BTreeMap<(&str, &str, u8), usize> = BTreeMap::new();
    for t in ties {
        let key = (t.entity.as_str(), t.signal.as_str(), role_rank(t.role));
        match at.get(&key) {
            Some(&i) => {
                let m = &mut out[i];
                m.first = m.first.min(t.first);
                m.last = m.last.max(t.last);
                m.records = m.records.max(t.records);
                for j in &t.joined_by {
                    if !m.joined_by.contains(j) {
                        m.joined_by.push(j.clone());
                    }
                }
            }
            None => {
                at.insert(key, out.len());
                out.push(t.clone());
            }
        }
    }
    out
}

fn role_rank(role: Role) -> u8 {
    match role {
        Role::Cause => 0,
        Role::Effect => 1,
        Role::Evidence => 2,
        Role::Condition => 3,
        Role::Merged => 4,
    }
}

fn role_verb(role: Role) -> &'static str {
    match role {
        Role::Cause => "showed the cause",
        Role::Effect => "joined",
        Role::Evidence => "gave evidence",
        Role::Condition => "is in the condition",
        Role::Merged => "was the root of a merged incident",
    }
}

/// "Pod calibre/web-1 joined (csi-driver-not-registered, 3 records from
/// 08:01:02 to 08:05:10): same node = k8s-node1."
fn entity_sentence(ties: &[Tie], clock: &Clock) -> String {
    let entity = ties
        .first()
        .map(|t| key_label(&t.entity))
        .unwrap_or_default();
    let mut verbs: Vec<&str> = Vec::new();
    let mut joined: Vec<String> = Vec::new();
    let mut signals: Vec<String> = Vec::new();
    for t in ties {
        let verb = role_verb(t.role);
        if !verbs.contains(&verb) {
            verbs.push(verb);
        }
        for j in &t.joined_by {
            let j = clean(j);
            if !joined.contains(&j) {
                joined.push(j);
            }
        }
        signals.push(signal_phrase(t, clock));
    }
    let mut s = format!("{entity} {} ({})", verbs.join(" and "), signals.join("; "));
    if !joined.is_empty() {
        s.push_str(": ");
        s.push_str(&joined.join(", "));
    }
    s.push('.');
    s
}

/// "csi-driver-not-registered, 3 records from 08:01:02 to 08:05:10".
fn signal_phrase(t: &Tie, clock: &Clock) -> String {
    let (first, last) = (clock.at(t.first), clock.at(t.last));
    let span = if first == last {
        format!("at {first}")
    } else {
        format!("from {first} to {last}")
    };
    let signal = clean(&t.signal);
    if t.records == 0 {
        format!("{signal}, {span}")
    } else {
        format!(
            "{signal}, {} {} {span}",
            t.records,
            plural(t.records as usize, "record", "records")
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use correlate::incident::{AbsenceFacts, RuleKind};
    use correlate::report::{Explanation, Merged, RootCause, Window};
    use correlate::{EventTime, IncidentReport, Severity, Span, Status};

    use super::*;

    fn t(secs: i64) -> EventTime {
        // 2026-03-16T08:00:00Z
        EventTime::from_micros((1_773_648_000 + secs) * 1_000_000)
    }

    fn entity(kind: &str, ns: Option<&str>, name: &str, node: Option<&str>) -> EntityRef {
        EntityRef {
            kind: kind.to_string(),
            namespace: ns.map(str::to_string),
            name: name.to_string(),
            node: node.map(str::to_string),
        }
    }

    fn pod(ns: &str, name: &str, node: &str, role: Role) -> Affected {
        Affected {
            entity: entity("Pod", Some(ns), name, Some(node)),
            signal: "csi-driver-not-registered".to_string(),
            role,
        }
    }

    fn tie(entity: &str, signal: &str, role: Role, first: i64, joined: &[&str]) -> Tie {
        Tie {
            entity: entity.to_string(),
            signal: signal.to_string(),
            role,
            first: t(first),
            last: t(first + 60),
            records: 3,
            joined_by: joined.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn report(affected: Vec<Affected>, ties: Vec<Tie>) -> IncidentReport {
        IncidentReport {
            id: "abc123".to_string(),
            cluster: None,
            rule: "csi-driver-unavailable".to_string(),
            title: "CSI driver unavailable".to_string(),
            severity: Severity::Critical,
            status: Status::Firing,
            opened_at: t(12),
            first_seen: t(0),
            last_seen: t(600),
            resolved_at: None,
            root_cause: RootCause {
                signal: "csi-sidecar-port-conflict".to_string(),
                summary: "liveness-probe cannot bind 127.0.0.1:29653".to_string(),
                entity: entity("DaemonSet", Some("nfs-csi"), "csi-nfs-node", None),
                attributes: BTreeMap::from([("port".to_string(), "29653".to_string())]),
            },
            affected,
            signals: 10,
            version: 1,
            explanation: Explanation {
                rule: "csi-driver-unavailable".to_string(),
                kind: RuleKind::Correlation,
                description: "A CSI plugin is down".to_string(),
                window: Window {
                    before: Span::from_secs(600),
                    after: Span::from_secs(3600),
                },
                ties,
                absence: None,
                merged: Vec::new(),
                resolved_by: None,
            },
        }
    }

    fn well_formed(s: &str) {
        assert!(s.ends_with('\n'), "{s}");
        assert!(!s.ends_with("\n\n"), "{s}");
        for l in s.lines() {
            assert_eq!(l, l.trim_end(), "trailing space in {l:?}");
        }
        assert!(!s.contains('\u{1b}'));
    }

    /// A named cluster is said where a person reads first: the id line of
    /// the text and Markdown renderings, the headline notifications use.
    #[test]
    fn a_named_cluster_is_said_up_front() {
        let mut r = report(vec![pod("a", "p", "n1", Role::Effect)], Vec::new());
        assert!(!text(&r, false).contains("cluster:"));
        assert_eq!(r.headline(), r.title);
        r.cluster = Some("edge-7".to_string());
        let t = text(&r, false);
        assert!(t.lines().nth(1).unwrap().contains("cluster: edge-7"), "{t}");
        assert!(markdown(&r).contains("cluster `edge-7`"));
        assert!(r.headline().starts_with("[edge-7] CSI driver unavailable"));
        let pm = crate::postmortem::draft(&[crate::change::IncidentChange {
            change: crate::change::ChangeKind::Opened,
            merged_into: None,
            incident: r,
        }]);
        assert!(pm.contains("| Cluster | `edge-7` |"), "{pm}");
    }

    #[test]
    fn root_cause_is_in_the_first_five_lines() {
        let r = report(vec![pod("a", "p", "n1", Role::Effect)], Vec::new());
        let s = text(&r, false);
        well_formed(&s);
        let head: Vec<&str> = s.lines().take(5).collect();
        assert_eq!(head[0], "CSI driver unavailable");
        assert!(
            head.contains(&"Root cause: DaemonSet nfs-csi/csi-nfs-node"),
            "{s}"
        );
    }

    #[test]
    fn blast_radius_is_grouped_by_namespace_then_node_and_capped() {
        let mut affected = Vec::new();
        for i in 0..1000 {
            let ns = format!("ns{:02}", i % 20);
            affected.push(pod(
                &ns,
                &format!("pod-{i:04}"),
                &format!("node{}", (i / 20) % 4),
                Role::Effect,
            ));
        }
        affected.push(pod("nfs-csi", "plugin", "node1", Role::Cause));
        let r = report(affected, Vec::new());
        let s = text(&r, false);
        well_formed(&s);
        assert!(
            s.contains("Blast radius: 1000 pods in 20 namespaces on 4 nodes\n"),
            "{s}"
        );
        assert!(
            s.contains("  by node: node0 260, node1 260, node2 240, node3 240\n"),
            "{s}"
        );
        // Each namespace: 50 pods on 4 nodes, counted per node, 10 named.
        assert!(
            s.contains(
                "  ns00: 50 pods on 4 nodes (node0 13, node1 13, node2 12, node3 12): pod-0000, \
                 pod-0020, pod-0040, pod-0060, pod-0080, pod-0100, pod-0120, pod-0140, pod-0160, \
                 pod-0180 and 40 more\n"
            ),
            "{s}"
        );
        assert!(
            s.contains("  and 8 more namespaces (400 entities)\n"),
            "{s}"
        );
        // The cause side is counted apart.
        assert!(
            s.contains("  shown by: 1 pod in 1 namespace on 1 node\n"),
            "{s}"
        );
        assert!(s.contains("    nfs-csi: 1 pod on node1: plugin\n"), "{s}");
        assert!(s.lines().count() < 80, "{s}");
        let m = markdown(&r);
        well_formed(&m);
        assert!(
            m.contains("- **ns00**: 50 pods on 4 nodes (node0 13, "),
            "{m}"
        );
        assert!(
            m.contains("- and 8 more namespaces (400 entities)\n"),
            "{m}"
        );
    }

    #[test]
    fn capped_lists_say_how_many_more() {
        let names: Vec<String> = (0..13).map(|i| format!("n{i}")).collect();
        assert_eq!(capped(&names[..2], 10), "n0, n1");
        assert_eq!(
            capped(&names, 10),
            "n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 3 more"
        );
    }

    #[test]
    fn each_entity_is_said_once_with_its_signals_joined() {
        let ties = vec![
            tie(
                "Pod/nfs-csi/plugin",
                "port-bind-conflict",
                Role::Cause,
                0,
                &[],
            ),
            tie(
                "Pod/nfs-csi/plugin",
                "csi-sidecar-port-conflict",
                Role::Cause,
                0,
                &[],
            ),
            tie(
                "Pod/calibre/web",
                "csi-driver-not-registered",
                Role::Effect,
                62,
                &["same node = k8s-node1"],
            ),
            // A merged incident brings the same member again.
            tie(
                "Pod/calibre/web",
                "csi-driver-not-registered",
                Role::Effect,
                62,
                &["same node = k8s-node1"],
            ),
            tie(
                "Pod/calibre/web",
                "storage-lock-failure",
                Role::Effect,
                70,
                &["same node = k8s-node1"],
            ),
        ];
        let r = report(Vec::new(), ties);
        for s in [text(&r, false), markdown(&r)] {
            well_formed(&s);
            assert_eq!(s.matches("Pod calibre/web joined").count(), 1, "{s}");
            assert_eq!(s.matches("Pod nfs-csi/plugin showed").count(), 1, "{s}");
            assert_eq!(s.matches("same node = k8s-node1").count(), 1, "{s}");
        }
        let s = text(&r, false);
        assert!(
            s.contains(
                "  Pod calibre/web joined (csi-driver-not-registered, 3 records from 08:01:02 \
                 to 08:02:02; storage-lock-failure, 3 records from 08:01:10 to 08:02:10): \
                 same node = k8s-node1.\n"
            ),
            "{s}"
        );
        assert!(s.contains("Blast radius: no entity is affected\n"), "{s}");
    }

    #[test]
    fn entity_sentences_are_capped() {
        let ties: Vec<Tie> = (0..40)
            .map(|i| {
                tie(
                    &format!("Pod/ns/p{i:02}"),
                    "csi-driver-not-registered",
                    Role::Effect,
                    i,
                    &["same node = n"],
                )
            })
            .collect();
        let r = report(Vec::new(), ties);
        let s = text(&r, false);
        assert_eq!(s.matches(" joined (").count(), MAX_SENTENCES, "{s}");
        assert!(
            s.contains(
                "And 25 more entities joined the same way (csi-driver-not-registered 25).\n"
            ),
            "{s}"
        );
        let timeline: Vec<&str> = s
            .split("Timeline")
            .nth(1)
            .unwrap()
            .split("\n\n")
            .next()
            .unwrap()
            .lines()
            .skip(1)
            .collect();
        assert!(timeline.len() <= MAX_TIMELINE, "{s}");
    }

    #[test]
    fn the_timeline_is_capped_and_in_order() {
        let ties: Vec<Tie> = (0..30)
            .map(|i| {
                tie(
                    &format!("Pod/ns/p{i}"),
                    &format!("sig-{i:02}"),
                    Role::Effect,
                    i * 10,
                    &[],
                )
            })
            .collect();
        let mut r = report(Vec::new(), ties);
        // The cause's signal is the last to appear: still shown.
        r.root_cause.signal = "sig-29".to_string();
        let tl = timeline(
            &r,
            &Clock {
                day: day_of(r.first_seen),
            },
        );
        assert!(tl.len() <= MAX_TIMELINE, "{tl:?}");
        let mut sorted = tl.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            tl.iter().map(|x| &x.0).collect::<Vec<_>>(),
            sorted.iter().map(|x| &x.0).collect::<Vec<_>>()
        );
        assert!(
            tl.iter()
                .any(|(_, w)| w.contains("more signals first seen")),
            "{tl:?}"
        );
        assert!(
            tl.iter()
                .any(|(_, w)| w.starts_with("first sig-29 (the cause): ")),
            "{tl:?}"
        );
    }

    #[test]
    fn nothing_panics_on_an_empty_or_odd_report() {
        let mut r = report(Vec::new(), Vec::new());
        r.root_cause.entity = entity("Node", None, "", None);
        r.root_cause.summary = "line one\nline two\u{1b}[31m".to_string();
        r.root_cause.attributes.clear();
        r.title = "a | b `c`".to_string();
        r.first_seen = EventTime::MIN;
        r.opened_at = EventTime::MAX;
        r.resolved_at = Some(EventTime::MIN);
        r.status = Status::Resolved;
        r.explanation.description = String::new();
        r.explanation.absence = Some(AbsenceFacts::default());
        r.explanation.merged = vec![Merged {
            id: "m1".to_string(),
            rule: "r".to_string(),
        }];
        r.affected = vec![
            Affected {
                entity: entity("Node", None, "n1", Some("n1")),
                signal: "s".to_string(),
                role: Role::Condition,
            },
            Affected {
                entity: entity("Service", Some(""), "svc", None),
                signal: "s".to_string(),
                role: Role::Evidence,
            },
        ];
        for colour in [false, true] {
            let s = text(&r, colour);
            assert!(s.ends_with('\n'));
            assert!(!s.contains("line one\n"), "{s}");
        }
        well_formed(&text(&r, false));
        let m = markdown(&r);
        well_formed(&m);
        assert!(m.starts_with("# a \\| b \\`c\\`\n"), "{m}");
    }

    #[test]
    fn colour_only_when_asked() {
        let r = report(Vec::new(), Vec::new());
        assert!(!text(&r, false).contains('\u{1b}'));
        let s = text(&r, true);
        assert!(s.contains('\u{1b}'));
        assert!(s.lines().next().unwrap().contains("CSI driver unavailable"));
    }

    #[test]
    fn markdown_escapes_table_cells() {
        let mut r = report(
            Vec::new(),
            vec![tie("Pod/ns/p", "a|b", Role::Effect, 5, &[])],
        );
        r.explanation.ties[0].signal = "a|b".to_string();
        let m = markdown(&r);
        assert!(m.contains("first a\\|b"), "{m}");
        assert!(m.contains("## Root cause\n"));
        assert!(m.contains("## Blast radius\n"));
        assert!(m.contains("## Timeline\n"));
        assert!(m.contains("## Why epicenter believes it\n"));
    }

    #[test]
    fn causes_are_said_first_and_effects_still_get_room() {
        let mut ties: Vec<Tie> = (0..30)
            .map(|i| {
                tie(
                    &format!("Pod/ns/e{i:02}"),
                    "effect-sig",
                    Role::Effect,
                    i,
                    &[],
                )
            })
            .collect();
        ties.extend((0..30).map(|i| {
            tie(
                &format!("Pod/ns/c{i:02}"),
                "cause-sig",
                Role::Cause,
                100 + i,
                &[],
            )
        }));
        let r = report(Vec::new(), ties);
        let s = text(&r, false);
        let why: Vec<&str> = s
            .split("Why epicenter believes it\n")
            .nth(1)
            .unwrap()
            .lines()
            .collect();
        assert!(why[1].starts_with("  Pod ns/c00 showed the cause"), "{s}");
        assert_eq!(s.matches(" showed the cause (").count(), 7, "{s}");
        assert_eq!(s.matches(" joined (").count(), 8, "{s}");
        assert!(
            s.contains("And 45 more entities joined the same way (cause-sig 23, effect-sig 22).\n"),
            "{s}"
        );
    }
}

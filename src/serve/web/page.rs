//! The pages as HTML: pure functions of what the history answered (no I/O,
//! no clock but the `now` they are given), so they are unit-tested.
//!
//! Every piece of incident text goes through maud's escaping (`(expr)`);
//! nothing is written with `PreEscaped` but the asset links. The words are
//! [`sinks::render::View`]'s, the same as `epicenter show` prints; what only
//! a page can show (the timeline's lanes, the blast radius as a tree that
//! folds) is computed here from the report.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use correlate::incident::Role;
use correlate::{EventTime, IncidentReport};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use sinks::notify::Receipt;
use sinks::outbox::{Notified, Sent};
use sinks::render::{self, Clock, Grouped, Layout};

/// At most this many names in one node's list of the tree.
const MAX_LIST: usize = 200;
/// At most this many lanes in the timeline.
const MAX_LANES: usize = 16;
/// At most this many join ticks drawn in one lane.
const MAX_TICKS: usize = 200;
/// Namespaces of the tree start unfolded up to this many entities in all.
const OPEN_UP_TO: usize = 40;

/// Assets are linked with the version, so a new build is fetched anew.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One row of the list (`incidents_latest`, as the API answers it).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) cluster: Option<String>,
    pub(crate) rule: String,
    pub(crate) title: String,
    pub(crate) severity: String,
    pub(crate) status: String,
    pub(crate) root_kind: String,
    pub(crate) root_namespace: Option<String>,
    pub(crate) root_name: String,
    pub(crate) opened_at: String,
    pub(crate) resolved_at: Option<String>,
    pub(crate) affected: i64,
    pub(crate) affected_namespaces: i64,
    pub(crate) affected_nodes: i64,
}

/// One stored version of an incident (`incidents`, in append order).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Version {
    pub(crate) version: i64,
    pub(crate) change: String,
    pub(crate) recorded_at: String,
}

/// The list's filters, as the form sends them (empty means any).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct Filters {
    pub(crate) status: String,
    pub(crate) severity: String,
    pub(crate) cluster: String,
    pub(crate) namespace: String,
    pub(crate) rule: String,
    /// How many incidents at most (default [`LIST_DEFAULT`], at most
    /// [`LIST_MAX`]); anything else reads as the default.
    pub(crate) limit: String,
}

/// The list shows this many incidents unless asked for more.
pub(crate) const LIST_DEFAULT: usize = 200;
/// The list shows at most this many incidents.
pub(crate) const LIST_MAX: usize = 1000;

impl Filters {
    /// How many incidents the list shows.
    pub(crate) fn limit(&self) -> usize {
        self.limit
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .map_or(LIST_DEFAULT, |n| n.min(LIST_MAX))
    }

    /// The query string that gives these filters back (`?status=firing`).
    pub(crate) fn query(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("status", &self.status),
            ("severity", &self.severity),
            ("cluster", &self.cluster),
            ("namespace", &self.namespace),
            ("rule", &self.rule),
            ("limit", &self.limit),
        ] {
            let v = v.trim();
            if !v.is_empty() {
                parts.push(format!("{k}={}", encode(v)));
            }
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    fn any(&self) -> bool {
        !self.query().is_empty()
    }
}

/// A URL component, percent-encoded.
pub(crate) fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The link to an incident's page.
pub(crate) fn incident_href(id: &str) -> String {
    format!("/incidents/{}", encode(id))
}

/// `2026-03-16 08:00:12 UTC`.
fn utc(t: EventTime) -> String {
    jiff::Timestamp::from_microsecond(t.as_micros())
        .map(|ts| ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// A stored time (RFC 3339) as people read it; as stored when unreadable.
fn stored_time(s: &str) -> (Option<EventTime>, String) {
    match EventTime::parse_rfc3339(s) {
        Some(t) => (Some(t), utc(t)),
        None => (None, render::clean(s)),
    }
}

/// "45 s ago", "12 min ago", "3 h ago", "266 days ago".
pub(crate) fn age(now: EventTime, t: EventTime) -> String {
    let secs = now.as_micros().saturating_sub(t.as_micros()) / 1_000_000;
    match secs {
        i64::MIN..5 => "just now".to_string(),
        5..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..172_800 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// The page around `body`: header, skip link, main.
fn layout(title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · epicenter" }
                link rel="stylesheet" href={ "/assets/style.css?v=" (VERSION) };
                link rel="icon" type="image/svg+xml" href={ "/assets/favicon.svg?v=" (VERSION) };
                script src={ "/assets/app.js?v=" (VERSION) } defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "epicenter" }
                    nav aria-label="Main" {
                        a href="/" { "Incidents" }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

fn severity_badge(s: &str) -> Markup {
    let class = match s {
        "critical" => "badge sev-critical",
        "warning" => "badge sev-warning",
        _ => "badge sev-info",
    };
    html! { span class=(class) { (s) } }
}

fn status_badge(s: &str) -> Markup {
    let class = match s {
        "firing" => "badge st-firing",
        "resolved" => "badge st-resolved",
        _ => "badge st-other",
    };
    html! { span class=(class) { (s) } }
}

/// "25 entities · 17 namespaces · 4 nodes": every entity tied to the
/// incident (the history's `affected`, those that showed the cause
/// included), the same count the incident page gives its tree.
fn radius_counts(r: &Row) -> String {
    let n = |v: i64| usize::try_from(v).unwrap_or(0);
    entity_counts(
        n(r.affected),
        n(r.affected_namespaces),
        n(r.affected_nodes),
        " · ",
    )
}

/// `entities`, then the namespaces and nodes when there are any, joined
/// by `sep`.
fn entity_counts(entities: usize, namespaces: usize, nodes: usize, sep: &str) -> String {
    let mut s = format!(
        "{entities} {}",
        render::plural(entities, "entity", "entities")
    );
    if namespaces > 0 {
        let _ = write!(
            s,
            "{sep}{namespaces} {}",
            render::plural(namespaces, "namespace", "namespaces")
        );
    }
    if nodes > 0 {
        let _ = write!(s, "{sep}{nodes} {}", render::plural(nodes, "node", "nodes"));
    }
    s
}

/// What the list says of `r`'s blast radius, counted as the history
/// counts it (distinct namespaces and nodes among all affected entities).
fn report_counts(r: &IncidentReport) -> String {
    let (namespaces, nodes) = r.spread();
    entity_counts(r.affected.len(), namespaces, nodes, ", ")
}

fn root_label(r: &Row) -> String {
    let mut s = render::clean(&r.root_kind);
    s.push(' ');
    if let Some(ns) = r.root_namespace.as_deref().filter(|n| !n.is_empty()) {
        s.push_str(&render::clean(ns));
        s.push('/');
    }
    s.push_str(&render::clean(&r.root_name));
    s
}

/// The list's rows (the body of its table; also what the page polls).
pub(crate) fn rows(rows: &[Row], now: EventTime) -> Markup {
    html! {
        @for r in rows {
            @let (opened, opened_text) = stored_time(&r.opened_at);
            tr data-id=(r.id) {
                td.badges data-label="Status" { (status_badge(&r.status)) }
                td.badges data-label="Severity" { (severity_badge(&r.severity)) }
                td.title data-label="Incident" {
                    a href=(incident_href(&r.id)) { (render::clean(&r.title)) }
                    div.sub {
                        @if let Some(c) = r.cluster.as_deref().filter(|c| !c.is_empty()) {
                            span.cluster { (render::clean(c)) } " · "
                        }
                        span.mono { (r.id) } " · " (render::clean(&r.rule))
                    }
                }
                td data-label="Root" { (root_label(r)) }
                td data-label="Blast radius" { (radius_counts(r)) }
                td.age data-label="Opened" {
                    @match opened {
                        Some(t) => time datetime=(t.to_string()) title=(opened_text) { (age(now, t)) },
                        None => (opened_text),
                    }
                    @if let Some(res) = &r.resolved_at {
                        @let (_, text) = stored_time(res);
                        div.sub { "resolved " (text) }
                    }
                }
            }
        }
        @if rows.is_empty() {
            tr.empty { td colspan="6" { "No incident matches." } }
        }
    }
}

fn select(name: &str, label: &str, current: &str, options: &[&str]) -> Markup {
    html! {
        label for=(name) { (label) }
        select id=(name) name=(name) {
            option value="" selected[current.is_empty()] { "any" }
            @for o in options {
                option value=(o) selected[current == *o] { (o) }
            }
        }
    }
}

/// `GET /`: the incidents, newest first, with filters; `note` says why
/// there are none to show (the history is off or failed).
pub(crate) fn list(filters: &Filters, found: &[Row], now: EventTime, note: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Incidents" }
        form.filters method="get" action="/" role="search" aria-label="Filter incidents" {
            div { (select("status", "Status", &filters.status, &["firing", "resolved"])) }
            div { (select("severity", "Severity", &filters.severity, &["critical", "warning", "info"])) }
            div {
                label for="cluster" { "Cluster" }
                input id="cluster" type="text" name="cluster" value=(filters.cluster) autocomplete="off" spellcheck="false";
            }
            div {
                label for="namespace" { "Namespace" }
                input id="namespace" type="text" name="namespace" value=(filters.namespace) autocomplete="off" spellcheck="false";
            }
            div {
                label for="rule" { "Rule" }
                input id="rule" type="text" name="rule" value=(filters.rule) autocomplete="off" spellcheck="false";
            }
            div.actions {
                button type="submit" { "Filter" }
                @if filters.any() { a href="/" { "Clear" } }
            }
        }
        @if let Some(n) = note {
            p.note role="alert" { (n) }
        }
        p.live id="live" role="status" aria-live="polite" {
            (found.len()) " " (render::plural(found.len(), "incident", "incidents")) ", newest first."
        }
        @if found.len() >= filters.limit() && filters.limit() < LIST_MAX {
            p.more {
                "Older incidents are not shown. "
                a href={ "/" (Filters { limit: LIST_MAX.to_string(), ..filters.clone() }.query()) } {
                    "Show up to " (LIST_MAX)
                }
                " or narrow the filters."
            }
        }
        div.table-wrap {
            table.incidents data-poll={ "/web/incidents" (filters.query()) } {
                caption.visually-hidden { "Incidents, newest first" }
                thead {
                    tr {
                        th scope="col" { "Status" }
                        th scope="col" { "Severity" }
                        th scope="col" { "Incident" }
                        th scope="col" { "Root" }
                        th scope="col" { "Blast radius" }
                        th scope="col" { "Opened" }
                    }
                }
                tbody id="rows" { (rows(found, now)) }
            }
        }
    };
    layout("Incidents", &body)
}

/// One signal's lane in the timeline.
#[derive(Debug)]
struct Lane {
    signal: String,
    role: Role,
    is_root: bool,
    first: EventTime,
    last: EventTime,
    entities: BTreeSet<String>,
    records: u64,
    /// When each entity first showed it.
    joins: Vec<EventTime>,
}

fn role_word(role: Role) -> &'static str {
    match role {
        Role::Cause => "cause",
        Role::Effect => "effect",
        Role::Evidence => "evidence",
        Role::Condition => "condition",
        Role::Merged => "merged",
    }
}

fn lanes(r: &IncidentReport) -> Vec<Lane> {
    let mut by_signal: BTreeMap<String, Lane> = BTreeMap::new();
    for t in render::merge_ties(&r.explanation.ties) {
        let lane = by_signal.entry(t.signal.clone()).or_insert_with(|| Lane {
            signal: render::clean(&t.signal),
            role: t.role,
            is_root: t.signal == r.root_cause.signal,
            first: t.first,
            last: t.last,
            entities: BTreeSet::new(),
            records: 0,
            joins: Vec::new(),
        });
        lane.first = lane.first.min(t.first);
        lane.last = lane.last.max(t.last);
        if t.role == Role::Cause {
            lane.role = Role::Cause;
        }
        if lane.entities.insert(t.entity.clone()) {
            lane.joins.push(t.first);
        }
        lane.records += t.records;
    }
    let mut v: Vec<Lane> = by_signal.into_values().collect();
    // The cause first, then in order of appearance.
    v.sort_by(|a, b| {
        b.is_root
            .cmp(&a.is_root)
            .then(a.first.cmp(&b.first))
            .then_with(|| a.signal.cmp(&b.signal))
    });
    v
}

/// The x of `t` on a 0..1000 axis from `t0` over `span` µs.
fn x(t: EventTime, t0: EventTime, span: i64) -> f64 {
    let d = t.as_micros().saturating_sub(t0.as_micros()) as f64;
    (d / span as f64 * 1000.0).clamp(0.0, 1000.0)
}

/// The cascade as lanes, one per signal: a bar from its first to its last
/// record, a tick where each entity joined, the cause's first record
/// marked, lines where the incident opened and resolved. The bars are
/// drawn (SVG, hidden from screen readers); the same facts are in words.
fn timeline(r: &IncidentReport, clock: &Clock, announced: Option<EventTime>) -> Markup {
    let all = lanes(r);
    if all.is_empty() {
        return html! { p { "No signal is tied to it yet." } };
    }
    let t0 = all
        .iter()
        .map(|l| l.first)
        .fold(r.first_seen, EventTime::min);
    let t1 = all
        .iter()
        .map(|l| l.last)
        .fold(r.last_seen.max(r.opened_at), EventTime::max)
        .max(r.resolved_at.unwrap_or(EventTime::MIN));
    // The first delivery, when it falls near the records (a history
    // replayed long after its records was announced at another time).
    let near = (t1.as_micros() - t0.as_micros()).max(600_000_000);
    let announced =
        announced.filter(|a| *a >= t0 && a.as_micros() <= t1.as_micros().saturating_add(near));
    let t1 = t1.max(announced.unwrap_or(EventTime::MIN));
    let span = t1.as_micros().saturating_sub(t0.as_micros()).max(1_000_000);
    let opened = x(r.opened_at, t0, span);
    let announced_x = announced.map(|t| x(t, t0, span));
    let resolved = r.resolved_at.map(|t| x(t, t0, span));
    let more = all.len().saturating_sub(MAX_LANES);
    html! {
        div.lanes {
            div.axis aria-hidden="true" {
                span { (clock.at(t0)) }
                span { (clock.at(t1)) }
            }
            ol.lane-list {
                @for l in all.iter().take(MAX_LANES) {
                    @let from = x(l.first, t0, span);
                    @let width = (x(l.last, t0, span) - from).max(3.0);
                    li.lane.root[l.is_root] {
                        div.lane-label {
                            span.signal { (l.signal) }
                            " "
                            @if l.is_root {
                                span.badge.role-root { "root cause" }
                            } @else {
                                span class={ "badge role-" (role_word(l.role)) } { (role_word(l.role)) }
                            }
                            div.sub {
                                (clock.at(l.first))
                                @if l.last != l.first { " to " (clock.at(l.last)) }
                                " · " (l.entities.len()) " " (render::plural(l.entities.len(), "entity", "entities"))
                                " · " (l.records) " " (render::plural(usize::try_from(l.records).unwrap_or(usize::MAX), "record", "records"))
                            }
                        }
                        svg.lane-bar viewBox="0 0 1000 24" preserveAspectRatio="none" aria-hidden="true" focusable="false" {
                            rect.track x="0" y="10" width="1000" height="4" {}
                            rect.bar x=(format!("{from:.1}")) y="7" width=(format!("{width:.1}")) height="10" {}
                            @for j in l.joins.iter().take(MAX_TICKS) {
                                rect.tick x=(format!("{:.1}", x(*j, t0, span))) y="3" width="1.5" height="18" {}
                            }
                            @if l.is_root {
                                rect.root-mark x=(format!("{:.1}", (from - 2.0).max(0.0))) y="0" width="5" height="24" {}
                            }
                            rect.opened x=(format!("{opened:.1}")) y="0" width="2" height="24" {}
                            @if let Some(a) = announced_x {
                                rect.announced x=(format!("{a:.1}")) y="0" width="2" height="24" {}
                            }
                            @if let Some(res) = resolved {
                                rect.resolved x=(format!("{res:.1}")) y="0" width="2" height="24" {}
                            }
                        }
                    }
                }
            }
            @if more > 0 {
                p.sub { "and " (more) " more " (render::plural(more, "signal", "signals")) }
            }
            p.legend aria-hidden="true" {
                span.key.key-root {} " the cause's first record  "
                span.key.key-tick {} " an entity joined  "
                span.key.key-opened {} " opened " (clock.at(r.opened_at))
                @if let Some(t) = announced { "  " span.key.key-announced {} " announced " (clock.at(t)) }
                @if let Some(t) = r.resolved_at { "  " span.key.key-resolved {} " resolved " (clock.at(t)) }
            }
        }
    }
}

/// A namespace of the blast radius: its nodes and their entities.
#[derive(Debug, Default)]
struct TreeNs {
    count: usize,
    kinds: BTreeMap<String, usize>,
    nodes: BTreeMap<Option<String>, Vec<String>>,
}

/// Entities by namespace, then node, once each, largest namespace first.
fn tree(members: &[&correlate::report::Affected]) -> Vec<(String, TreeNs)> {
    let mut seen = BTreeSet::new();
    let mut by_ns: BTreeMap<Option<String>, TreeNs> = BTreeMap::new();
    for a in members {
        let e = &a.entity;
        let ns = e
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .map(render::clean);
        let kind = render::clean(&e.kind);
        let name = render::clean(&e.name);
        if !seen.insert((kind.clone(), ns.clone(), name.clone())) {
            continue;
        }
        let node = e
            .node
            .as_deref()
            .filter(|n| !n.is_empty() && kind != "Node")
            .map(render::clean);
        let t = by_ns.entry(ns).or_default();
        t.count += 1;
        *t.kinds.entry(kind.clone()).or_default() += 1;
        let label = if kind == "Pod" {
            name
        } else {
            format!("{kind} {name}")
        };
        t.nodes.entry(node).or_default().push(label);
    }
    let mut v: Vec<(Option<String>, TreeNs)> = by_ns.into_iter().collect();
    v.sort_by(|a, b| {
        b.1.count
            .cmp(&a.1.count)
            .then_with(|| a.0.is_none().cmp(&b.0.is_none()))
            .then_with(|| a.0.cmp(&b.0))
    });
    v.into_iter()
        .map(|(ns, mut t)| {
            for names in t.nodes.values_mut() {
                names.sort();
            }
            (ns.unwrap_or_else(|| "cluster-scoped".to_string()), t)
        })
        .collect()
}

fn names_list(names: &[String]) -> Markup {
    html! {
        ul.names {
            @for n in names.iter().take(MAX_LIST) { li { (n) } }
            @if names.len() > MAX_LIST {
                li.sub { "and " (names.len() - MAX_LIST) " more" }
            }
        }
    }
}

/// Namespaces, then nodes, then names; a namespace on one node lists its
/// names at once.
fn tree_branch(namespaces: &[(String, TreeNs)], open: bool) -> Markup {
    html! {
        ul {
            @for (ns, t) in namespaces {
                li {
                    details open[open] {
                        @if let (1, Some((node, names))) = (t.nodes.len(), t.nodes.iter().next()) {
                            summary {
                                span.ns { (ns) } " · " (render::kinds_phrase(&t.kinds))
                                @if let Some(n) = node { " on " span.node { (n) } }
                            }
                            (names_list(names))
                        } @else {
                            summary {
                                span.ns { (ns) } " · " (render::kinds_phrase(&t.kinds))
                                " on " (t.nodes.len()) " nodes"
                            }
                            ul {
                                @for (node, names) in &t.nodes {
                                    li {
                                        details open[open] {
                                            summary {
                                                @match node {
                                                    Some(n) => { "node " span.node { (n) } },
                                                    None => "no node",
                                                }
                                                " · " (names.len())
                                            }
                                            (names_list(names))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The blast radius as a tree that folds: the root, then the entities
/// that showed the cause, then the damage by namespace and node.
fn blast_radius(r: &IncidentReport, v: &render::View) -> Markup {
    let (cause_side, damage): (Vec<_>, Vec<_>) = r
        .affected
        .iter()
        .partition(|a| matches!(a.role, Role::Cause | Role::Merged));
    let causes = tree(&cause_side);
    let damaged = tree(&damage);
    let open = damage.len() <= OPEN_UP_TO;
    html! {
        p { "Tied to it: " (report_counts(r)) ". Affected: " (v.radius.summary) "." }
        @if let Some(by_node) = &v.radius.by_node {
            p.sub { "By node: " (by_node) }
        }
        div.tree {
            details open {
                summary { "Root: " strong { (v.root.entity) } " · " (report_counts(r)) }
                ul {
                    @if !causes.is_empty() {
                        li {
                            details {
                                summary {
                                    "Showed the cause: "
                                    (v.root.shown_by.as_ref().map_or(String::new(), |g| g.summary.clone()))
                                }
                                (tree_branch(&causes, true))
                            }
                        }
                    }
                    @if !damaged.is_empty() {
                        li {
                            details.affected open {
                                summary { "Affected: " (v.radius.summary) }
                                (tree_branch(&damaged, open))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn grouped_words(g: &Grouped) -> Markup {
    html! {
        ul {
            @for group in &g.groups {
                li {
                    strong { (group.namespace) } ": " (group.counts)
                    @match &group.layout {
                        Layout::Line(names) => { ": " (names) },
                        Layout::PerNode(nodes) => {
                            ul { @for n in nodes { li { (n.node_label()) ": " (n.names) } } }
                        },
                    }
                }
            }
            @if let Some(more) = &g.more_groups { li { (more) } }
        }
    }
}

/// Other incidents of the same rule and root in the 30 days before.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Seen {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) status: String,
    pub(crate) opened_at: String,
}

fn receipt_words(r: &Receipt) -> String {
    match r {
        Receipt::Slack {
            channel,
            ts,
            replied,
        } => {
            let mut s = format!("Slack message {ts} in {channel}, edited in place at each update");
            if *replied > 0 {
                let _ = write!(s, "; thread replies up to notification {replied}");
            }
            s
        }
        Receipt::Ntfy { sequence_id } => {
            format!("ntfy notification {sequence_id}, replaced at each update")
        }
        Receipt::Sent => "delivered (nothing to edit in place)".to_string(),
    }
}

/// What the outbox remembers having told people of the incident.
fn notifications(n: &Notified) -> Markup {
    html! {
        @match &n.told {
            None => p {
                "No notification is remembered for it: none was sent (no route matched, or the \
                 policy kept quiet), or its last was longer ago than the outbox keeps them."
            },
            Some(t) => p {
                (t.sequence) " "
                (render::plural(usize::try_from(t.sequence).unwrap_or(usize::MAX), "notification", "notifications"))
                " sent, the last decided at " (utc(EventTime::from_micros(t.at)))
                @if t.closed { "; closed (resolved or merged): nothing more will be sent" }
                "."
            },
        }
        @if !n.receipts.is_empty() {
            ul {
                @for r in &n.receipts {
                    li { span.mono { (r.target) } " (" (r.kind) "): " (receipt_words(&r.receipt)) }
                }
            }
        }
        @if !n.sent.is_empty() {
            table.sent {
                caption { "Deliveries that landed, oldest first" }
                thead { tr { th scope="col" { "When (UTC)" } th scope="col" { "Target" } th scope="col" { "What" } } }
                tbody {
                    @for s in &n.sent {
                        tr {
                            td.mono { (utc(EventTime::from_micros(s.at))) }
                            td.mono { (s.target) }
                            td { (sent_words(s)) }
                        }
                    }
                }
            }
        }
    }
}

/// "#2 updated: edited in place".
fn sent_words(s: &Sent) -> String {
    let how = if s.recovered {
        "found delivered after a restart, not sent again"
    } else if s.edited {
        "edited in place"
    } else {
        "sent"
    };
    format!("#{} {}: {how}", s.sequence, s.event)
}

/// `GET /incidents/{id}`.
pub(crate) fn incident(
    r: &IncidentReport,
    versions: &[Version],
    seen: &[Seen],
    notified: &Notified,
) -> Markup {
    let v = render::view(r);
    let clock = Clock { day: v.day.clone() };
    let announced = notified
        .sent
        .iter()
        .map(|s| EventTime::from_micros(s.at))
        .min();
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/" { "Incidents" } " / " span.mono { (v.id) } }
        h1 { (v.title) }
        p.meta {
            (status_badge(v.status)) " " (severity_badge(v.severity))
            @if let Some(c) = &v.cluster {
                " cluster " strong.cluster { (c) } " ·"
            }
            " rule " span.mono { (v.rule) } " · id " span.mono { (v.id) }
        }
        dl.times {
            @for (k, t) in &v.times {
                div { dt { (k) } dd { (t) } }
            }
        }
        p.links {
            a href={ (incident_href(&r.id)) "/postmortem.md" } { "Post-mortem draft (Markdown)" }
            " · "
            a href={ "/api/v1/incidents/" (encode(&r.id)) } { "JSON" }
        }

        section aria-labelledby="root-h" {
            h2 id="root-h" { "Root cause" }
            p.root { strong { (v.root.entity) } }
            @if !v.root.summary.is_empty() { p { (v.root.summary) } }
            dl.attrs {
                @for (k, val) in &v.root.attributes { div { dt { (k) } dd.mono { (val) } } }
                div { dt { "cause signal" } dd.mono { (v.root.signal) } }
            }
            @if let Some(side) = &v.root.shown_by {
                details.shown {
                    summary { "Shown by " (side.summary) }
                    (grouped_words(side))
                }
            }
        }

        section aria-labelledby="timeline-h" {
            h2 id="timeline-h" { "Timeline" }
            (timeline(r, &clock, announced))
            h3 { "Moments (UTC" (v.day_note()) ")" }
            ol.moments {
                @for (at, what) in &v.timeline {
                    li { span.at.mono { (at) } " " (what) }
                }
                @if let Some(a) = announced {
                    li { span.at.mono { (clock.at(a)) } " first notification delivered (" (notified.sent.len()) " "
                        (render::plural(notified.sent.len(), "delivery", "deliveries")) " in all, below)" }
                }
            }
            @if !versions.is_empty() {
                details.versions open[versions.len() <= 5] {
                    summary { "Versions in the history (" (versions.len()) ")" }
                    ol.moments {
                    @for ver in versions {
                        li {
                            span.at.mono { (stored_time(&ver.recorded_at).1) }
                            " version " (ver.version) ": " (render::clean(&ver.change))
                        }
                    }
                    }
                }
            }
        }

        section aria-labelledby="radius-h" {
            h2 id="radius-h" { "Blast radius" }
            (blast_radius(r, &v))
        }

        section aria-labelledby="why-h" {
            h2 id="why-h" { "Why epicenter believes it" }
            ul.why { @for s in &v.why { li { (s) } } }
        }

        section aria-labelledby="notify-h" {
            h2 id="notify-h" { "Notifications" }
            (notifications(notified))
        }

        section aria-labelledby="seen-h" {
            h2 id="seen-h" { "Seen before" }
            @if seen.is_empty() {
                p { "No other incident of this rule with this root in the 30 days before." }
            } @else {
                ul {
                    @for s in seen {
                        li {
                            a href=(incident_href(&s.id)) { (render::clean(&s.title)) }
                            " · " (status_badge(&s.status)) " · opened " (stored_time(&s.opened_at).1)
                        }
                    }
                }
            }
        }
    };
    layout(&v.title, &body)
}

/// The login form (the API's token, kept in a cookie).
pub(crate) fn login(next: &str, failed: bool) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        @if failed { p.note role="alert" { "That token is not the API's token." } }
        form.login method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label for="token" { "API token" }
            input id="token" type="password" name="token" autocomplete="current-password" required autofocus;
            button type="submit" { "Sign in" }
        }
        p.sub { "The token is api.token from the configuration; it is kept in a cookie for this site only." }
    };
    layout("Sign in", &body)
}

/// A page that only says something (not found, the history is off).
pub(crate) fn message(title: &str, text: &str) -> Markup {
    let body = html! {
        h1 { (title) }
        p { (text) }
        p { a href="/" { "All incidents" } }
    };
    layout(title, &body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use correlate::incident::RuleKind;
    use correlate::report::{Affected, EntityRef, Explanation, RootCause, Tie, Window};
    use correlate::{Severity, Span, Status};

    use super::*;

    fn t(secs: i64) -> EventTime {
        EventTime::from_micros((1_773_648_000 + secs) * 1_000_000)
    }

    fn report(pods: usize, evil: &str) -> IncidentReport {
        let affected = (0..pods)
            .map(|i| Affected {
                entity: EntityRef {
                    kind: "Pod".to_string(),
                    namespace: Some(format!("ns{:02}", i % 20)),
                    name: format!("pod-{i:04}{evil}"),
                    node: Some(format!("node{}", i % 4)),
                },
                signal: "csi-driver-not-registered".to_string(),
                role: Role::Effect,
            })
            .collect();
        let ties = (0..pods)
            .map(|i| Tie {
                entity: format!("Pod/ns{:02}/pod-{i:04}", i % 20),
                signal: "csi-driver-not-registered".to_string(),
                role: Role::Effect,
                first: t(60 + i as i64),
                last: t(600),
                records: 2,
                joined_by: vec!["same node".to_string()],
            })
            .chain([Tie {
                entity: "Pod/nfs-csi/plugin".to_string(),
                signal: "csi-sidecar-port-conflict".to_string(),
                role: Role::Cause,
                first: t(0),
                last: t(500),
                records: 9,
                joined_by: Vec::new(),
            }])
            .collect();
        IncidentReport {
            id: "abc123".to_string(),
            cluster: None,
            rule: "csi-driver-unavailable".to_string(),
            title: format!("CSI driver unavailable {evil}"),
            severity: Severity::Critical,
            status: Status::Firing,
            opened_at: t(12),
            first_seen: t(0),
            last_seen: t(600),
            resolved_at: None,
            root_cause: RootCause {
                signal: "csi-sidecar-port-conflict".to_string(),
                summary: format!("liveness-probe cannot bind {evil}"),
                entity: EntityRef {
                    kind: "DaemonSet".to_string(),
                    namespace: Some("nfs-csi".to_string()),
                    name: "csi-nfs-node".to_string(),
                    node: None,
                },
                attributes: BTreeMap::from([("port".to_string(), evil.to_string())]),
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

    const EVIL: &str = "<script>alert(1)</script>\"'&";

    #[test]
    fn incident_text_is_escaped() {
        let html = incident(&report(3, EVIL), &[], &[], &Notified::default()).into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        // Attributes too: a title link, a seen-before id.
        let seen = [Seen {
            id: "x\"><img src=x onerror=alert(1)>".to_string(),
            title: EVIL.to_string(),
            status: "firing".to_string(),
            opened_at: "2026-03-01T00:00:00Z".to_string(),
        }];
        let html = incident(&report(1, ""), &[], &seen, &Notified::default()).into_string();
        assert!(!html.contains("<img"), "{html}");
        let row = Row {
            id: "\"><b>".to_string(),
            title: EVIL.to_string(),
            ..Row::default()
        };
        let html = rows(&[row], t(0)).into_string();
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
    }

    #[test]
    fn a_thousand_pod_incident_renders_folded_and_whole() {
        let r = report(1000, "");
        let html = incident(&r, &[], &[], &Notified::default()).into_string();
        // Every pod is in the tree (folded), each once.
        assert_eq!(html.matches("<li>pod-0").count(), 1000);
        assert!(
            html.contains("1000 pods in 20 namespaces on 4 nodes"),
            "{}",
            &html[..2000]
        );
        // Too many to unfold: namespaces start closed.
        assert!(!html.contains("<details open><summary><span class=\"ns\">"));
        // One lane per signal, the cause's first, ticks capped.
        assert_eq!(html.matches("<li class=\"lane").count(), 2);
        assert!(html.matches("class=\"tick\"").count() <= MAX_TICKS + 1);
        assert!(html.len() < 400_000, "{}", html.len());
    }

    #[test]
    fn a_small_incident_unfolds_and_marks_the_root() {
        let html = incident(&report(3, ""), &[], &[], &Notified::default()).into_string();
        assert!(html.contains("<li class=\"lane root\">"), "{html}");
        assert!(html.contains("class=\"root-mark\""), "{html}");
        assert!(
            html.contains("<details open><summary><span class=\"ns\">"),
            "{html}"
        );
        assert!(html.contains("Why epicenter believes it"));
        assert!(html.contains("href=\"/incidents/abc123/postmortem.md\""));
    }

    #[test]
    fn filters_round_trip_as_a_query_string() {
        let f = Filters {
            status: "firing".to_string(),
            namespace: "a b&c".to_string(),
            ..Filters::default()
        };
        assert_eq!(f.query(), "?status=firing&namespace=a%20b%26c");
        assert_eq!(Filters::default().query(), "");
        let html = list(&f, &[], t(0), None).into_string();
        assert!(
            html.contains("data-poll=\"/web/incidents?status=firing&amp;namespace=a%20b%26c\""),
            "{html}"
        );
        assert!(html.contains("No incident matches."));
    }

    #[test]
    fn the_list_shows_200_unless_asked_and_never_more_than_1000() {
        let with = |limit: &str| Filters {
            limit: limit.to_string(),
            ..Filters::default()
        };
        assert_eq!(with("").limit(), LIST_DEFAULT);
        assert_eq!(with("abc").limit(), LIST_DEFAULT);
        assert_eq!(with("0").limit(), LIST_DEFAULT);
        assert_eq!(with("50").limit(), 50);
        assert_eq!(with("99999").limit(), LIST_MAX);
        // A full page offers the older ones; a page that is not full does not.
        let full: Vec<Row> = (0..2).map(|_| Row::default()).collect();
        let html = list(&with("2"), &full, t(0), None).into_string();
        assert!(html.contains("href=\"/?limit=1000\""), "{html}");
        let html = list(&with("3"), &full, t(0), None).into_string();
        assert!(!html.contains("Older incidents are not shown"), "{html}");
    }

    #[test]
    fn notifications_say_what_the_outbox_remembers() {
        use sinks::notify::policy::Told;
        use sinks::outbox::TargetReceipt;
        let html = incident(&report(1, ""), &[], &[], &Notified::default()).into_string();
        assert!(html.contains("No notification is remembered"), "{html}");
        let notified = Notified {
            told: Some(Told {
                sequence: 3,
                severity: correlate::Severity::Critical,
                effect_signals: Default::default(),
                affected: 1,
                absorbed: Default::default(),
                at: t(60).as_micros(),
                closed: false,
            }),
            receipts: vec![TargetReceipt {
                target: "ops/slack/0".to_string(),
                kind: "slack",
                receipt: Receipt::Slack {
                    channel: "C0<b>".to_string(),
                    ts: "1773648060.000100".to_string(),
                    replied: 2,
                },
            }],
            sent: vec![
                Sent {
                    target: "ops/slack/0".to_string(),
                    event: "opened".to_string(),
                    sequence: 1,
                    edited: false,
                    recovered: false,
                    at: t(0).as_micros(),
                },
                Sent {
                    target: "ops/slack/0".to_string(),
                    event: "updated".to_string(),
                    sequence: 2,
                    edited: true,
                    recovered: false,
                    at: t(30).as_micros(),
                },
            ],
        };
        let html = incident(&report(1, ""), &[], &[], &notified).into_string();
        assert!(
            html.contains("3 notifications sent, the last decided at 2026-03-16 08:01:00 UTC."),
            "{html}"
        );
        assert!(
            html.contains("Slack message 1773648060.000100 in C0&lt;b&gt;, edited in place"),
            "{html}"
        );
        let opened = html.find("#1 opened: sent").expect("the first delivery");
        let updated = html.find("#2 updated: edited in place").expect("the edit");
        assert!(opened < updated, "oldest first: {html}");
        assert!(
            html.contains("first notification delivered (2 deliveries in all, below)"),
            "{html}"
        );
        assert!(
            html.contains("class=\"announced\""),
            "marked on the lanes: {html}"
        );
    }

    #[test]
    fn ages_read_in_words() {
        assert_eq!(age(t(10), t(10)), "just now");
        assert_eq!(age(t(130), t(10)), "2 min ago");
        assert_eq!(age(t(7300), t(0)), "2 h ago");
        assert_eq!(age(t(3 * 86_400), t(0)), "3 days ago");
    }
}

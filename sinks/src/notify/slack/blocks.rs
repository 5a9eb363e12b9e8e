//! What a person reads in Slack: pure functions from a [`Notification`] to
//! a [`Message`] (the fallback `text` notifications and screen readers use,
//! and the Block Kit `blocks` people see). No I/O: the layout is tested on
//! its own, against every limit.
//!
//! The layout answers, in order, what an on-call engineer asks first:
//! what broke and the detail that decides the fix (header with severity,
//! the root cause's entity and summary, its attributes: port, driver,
//! error, image), how far it spread (pods, namespaces, nodes, the most hit
//! named, the rest counted), since when (timeline, in the reader's own
//! time zone through Slack's `<!date>`), where to look (the links as
//! buttons) and, last and small, which rule and incident this is.
//!
//! Three shapes: [`incident`] is the one message of an incident (Web API:
//! posted at the opening, replaced by `chat.update` as it changes);
//! [`reply`] is the small thread reply that says what changed;
//! [`standalone`] is one message per notification for incoming webhooks,
//! where nothing can be updated (updates and resolutions compact).
//!
//! All user text (titles, summaries, names, attributes) is escaped for
//! mrkdwn; only the configured mention is passed through, as it is meant
//! to ping.

use std::collections::{HashMap, HashSet};

use correlate::incident::Role;
use correlate::report::{Affected, EntityRef};
use correlate::{EventTime, IncidentReport, Severity, Span, Status};
use serde_json::Value;

use super::kit::{Blocks, code, cut, cut_mrkdwn, escape, limits};
use crate::notify::{Event, Notification, Reason};

/// A rendered Slack message: `text` and `blocks` of `chat.postMessage`,
/// `chat.update` or an incoming webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The fallback (notifications, screen readers, clients without Block
    /// Kit), mrkdwn, at most [`limits::MESSAGE_TEXT`] characters.
    pub text: String,
    pub blocks: Vec<Value>,
}

/// Named entities shown per list (namespaces, nodes, affected); the rest
/// are counted.
const TOP: usize = 5;
/// Characters of a name shown in a list.
const NAME: usize = 80;
/// Characters of the root cause summary in the incident message.
const SUMMARY: usize = 2400;
/// Characters of the summary in compact messages.
const SHORT_SUMMARY: usize = 300;
/// Characters of an attribute's value.
const ATTRIBUTE: usize = 500;
/// Reasons listed before "and N more".
const REASONS: usize = 20;
/// Signals named in a "new kinds of effect" reason.
const SIGNALS: usize = 10;
/// Attributes priority: the details that usually decide the fix first.
const DECISIVE: [&str; 12] = [
    "error",
    "reason",
    "port",
    "address",
    "driver",
    "image",
    "container",
    "volume",
    "volumes",
    "node",
    "exit_code",
    "message",
];

/// The incident's one message, as it is now.
pub fn incident(n: &Notification, mention: Option<&str>) -> Message {
    let inc = &n.incident;
    let mention = mention.filter(|_| opens_critical(n));
    let mut b = Blocks::new();
    if let Some(m) = mention {
        b.section(&format!("{} :rotating_light: *critical incident*", raw(m)));
    }
    b.header(&headline(n, ""));
    if is_ended(n) {
        b.section(&resolution(n));
    }
    b.section(&root_cause(inc, SUMMARY));
    b.fields(&attribute_fields(inc));
    if !inc.explanation.description.trim().is_empty() {
        b.context(&[escape(&cut(inc.explanation.description.trim(), 500))]);
    }
    if n.event == Event::Updated
        && let Some(latest) = latest_change(n)
    {
        b.context(&[latest]);
    }
    b.divider();
    b.section(&Radius::of(inc).section());
    b.context(&timeline(inc));
    b.buttons(&n.links);
    b.context(&footer(n));
    Message {
        text: fallback(n, mention),
        blocks: b.finish(),
    }
}

/// The thread reply of an update or the resolution: what changed, and the
/// incident in one line.
pub fn reply(n: &Notification, mention: Option<&str>) -> Message {
    let mention = mention.filter(|_| raises_to_critical(n));
    let mut b = Blocks::new();
    let body = if is_ended(n) {
        resolution(n)
    } else {
        changes(n).unwrap_or_else(|| "*Update*".to_string())
    };
    b.section(&with_mention(mention, body));
    b.context(&summary_line(n));
    let text = if is_ended(n) {
        format!("{} {}", status_emoji(n), escape(&ended_text(n)))
    } else {
        let reasons: Vec<String> = n
            .reasons
            .iter()
            .take(REASONS)
            .map(ToString::to_string)
            .collect();
        let what = if reasons.is_empty() {
            "updated".to_string()
        } else {
            reasons.join("; ")
        };
        format!("Update: {}", escape(&what))
    };
    Message {
        text: cut_mrkdwn(&with_mention(mention, text), limits::MESSAGE_TEXT),
        blocks: b.finish(),
    }
}

/// One message per notification (incoming webhooks): the opening in
/// full, updates and the resolution compact.
pub fn standalone(n: &Notification, mention: Option<&str>) -> Message {
    if n.event == Event::Opened {
        return incident(n, mention);
    }
    let inc = &n.incident;
    let mention = mention.filter(|_| raises_to_critical(n));
    let mut b = Blocks::new();
    if let Some(m) = mention {
        b.section(&format!("{} :rotating_light: *now critical*", raw(m)));
    }
    if is_ended(n) {
        b.header(&headline(n, ""));
        b.section(&resolution(n));
        b.section(&root_cause(inc, SHORT_SUMMARY));
        b.context(&timeline(inc));
    } else {
        b.header(&headline(n, "Update: "));
        if let Some(changes) = changes(n) {
            b.section(&changes);
        }
        b.section(&root_cause(inc, SHORT_SUMMARY));
        b.context(&summary_line(n));
    }
    b.buttons(&n.links);
    b.context(&footer(n));
    let text = if is_ended(n) {
        fallback(n, mention)
    } else {
        cut_mrkdwn(
            &with_mention(
                mention,
                format!(
                    "{} Update [{}]: {}",
                    status_emoji(n),
                    inc.severity.as_str(),
                    escape(&inc.headline())
                ),
            ),
            limits::MESSAGE_TEXT,
        )
    };
    Message {
        text,
        blocks: b.finish(),
    }
}

/// The opening of a critical incident: the one that pings.
fn opens_critical(n: &Notification) -> bool {
    n.event == Event::Opened && n.incident.severity == Severity::Critical
}

/// An update that made the incident critical pings too.
fn raises_to_critical(n: &Notification) -> bool {
    n.reasons.iter().any(|r| {
        matches!(
            r,
            Reason::SeverityRaised {
                to: Severity::Critical,
                ..
            }
        )
    })
}

fn is_ended(n: &Notification) -> bool {
    n.event == Event::Resolved || n.incident.status == Status::Resolved
}

fn merged_into(n: &Notification) -> Option<&str> {
    n.reasons.iter().find_map(|r| match r {
        Reason::MergedInto { id } => Some(id.as_str()),
        _ => None,
    })
}

/// The configured mention, as given (it is mrkdwn meant to ping), bounded.
fn raw(mention: &str) -> String {
    cut(mention.trim(), 200)
}

fn with_mention(mention: Option<&str>, text: String) -> String {
    match mention {
        Some(m) => format!("{} {text}", raw(m)),
        None => text,
    }
}

fn status_emoji(n: &Notification) -> &'static str {
    if merged_into(n).is_some() {
        ":twisted_rightwards_arrows:"
    } else if is_ended(n) {
        ":white_check_mark:"
    } else {
        match n.incident.severity {
            Severity::Critical => ":red_circle:",
            Severity::Warning => ":large_orange_circle:",
            Severity::Info => ":large_blue_circle:",
        }
    }
}

/// The header: plain text, so not escaped.
fn headline(n: &Notification, prefix: &str) -> String {
    let state = if merged_into(n).is_some() {
        "Merged: "
    } else if is_ended(n) {
        "Resolved: "
    } else {
        prefix
    };
    format!(
        "{} {state}{}",
        status_emoji(n),
        n.incident.headline().trim()
    )
}

fn fallback(n: &Notification, mention: Option<&str>) -> String {
    let inc = &n.incident;
    let text = if merged_into(n).is_some() {
        format!("{} Merged: {}", status_emoji(n), escape(&inc.headline()))
    } else if is_ended(n) {
        format!("{} Resolved: {}", status_emoji(n), escape(&inc.headline()))
    } else {
        format!(
            "{} [{}] {}",
            status_emoji(n),
            inc.severity.as_str(),
            escape(&inc.headline())
        )
    };
    cut_mrkdwn(&with_mention(mention, text), limits::MESSAGE_TEXT)
}

/// How long it lasted: first seen to resolved (or to last seen while it
/// goes on).
fn lasted(inc: &IncidentReport) -> Span {
    let end = inc.resolved_at.unwrap_or(inc.last_seen);
    let d = end.since(inc.first_seen);
    if d < Span::ZERO { Span::ZERO } else { d }
}

fn ended_text(n: &Notification) -> String {
    let inc = &n.incident;
    match merged_into(n) {
        Some(id) => format!("Merged into incident {id}: {}", inc.headline()),
        None => format!("Resolved after {}: {}", lasted(inc), inc.headline()),
    }
}

fn resolution(n: &Notification) -> String {
    let inc = &n.incident;
    let mut s = match merged_into(n) {
        Some(id) => format!(
            ":twisted_rightwards_arrows: *Merged* into incident {}, which carries on (after {})",
            code(id, 64),
            lasted(inc)
        ),
        None => format!(":white_check_mark: *Resolved* after {}", lasted(inc)),
    };
    if let Some(by) = inc
        .explanation
        .resolved_by
        .as_deref()
        .filter(|b| !b.trim().is_empty())
    {
        s.push_str(" · ");
        s.push_str(&escape(&cut(by.trim(), 300)));
    }
    s
}

fn entity(e: &EntityRef) -> String {
    let name = match e.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        Some(ns) => format!("{}/{}", cut(ns, NAME), cut(&e.name, NAME * 2)),
        None => cut(&e.name, NAME * 2),
    };
    let mut s = format!("{} {}", escape(&cut(&e.kind, NAME)), code(&name, NAME * 3));
    if let Some(node) = e.node.as_deref()
        && e.kind != "Node"
        && !node.is_empty()
    {
        s.push_str(" on ");
        s.push_str(&code(node, NAME));
    }
    s
}

/// The root cause: entity and signal, then the summary as a quote.
fn root_cause(inc: &IncidentReport, summary_max: usize) -> String {
    let rc = &inc.root_cause;
    let mut s = format!(
        "*Root cause:* {} · signal {}",
        entity(&rc.entity),
        code(&rc.signal, NAME)
    );
    let summary = rc.summary.trim();
    if !summary.is_empty() {
        let summary = cut(summary, summary_max);
        for line in summary.lines().filter(|l| !l.trim().is_empty()) {
            s.push_str("\n>");
            s.push_str(&escape(line));
        }
    }
    s
}

/// The root cause's attributes as fields, the decisive ones first.
fn attribute_fields(inc: &IncidentReport) -> Vec<String> {
    let attrs = &inc.root_cause.attributes;
    let mut keys: Vec<&String> = attrs.keys().collect();
    keys.sort_by_key(|k| {
        let rank = DECISIVE
            .iter()
            .position(|d| d.eq_ignore_ascii_case(k))
            .unwrap_or(DECISIVE.len());
        (rank, k.as_str())
    });
    let field = |k: &String| {
        format!(
            "*{}*\n{}",
            escape(&cut(k, 100)),
            code(&attrs[k.as_str()], ATTRIBUTE)
        )
    };
    if keys.len() <= limits::FIELDS {
        return keys.into_iter().map(field).collect();
    }
    let shown = limits::FIELDS - 1;
    let mut out: Vec<String> = keys[..shown].iter().map(|k| field(k)).collect();
    let rest: Vec<String> = keys[shown..].iter().map(|k| escape(&cut(k, 40))).collect();
    out.push(format!(
        "*and {} more*\n{}",
        rest.len(),
        cut_mrkdwn(&rest.join(", "), limits::FIELD_TEXT - 100)
    ));
    out
}

/// A reason, for people.
fn reason(r: &Reason, inc: &IncidentReport) -> String {
    match r {
        Reason::Opened => "Opened".to_string(),
        Reason::NewEffects { signals } => {
            let named: Vec<String> = signals
                .iter()
                .take(SIGNALS)
                .map(|s| code(s, NAME))
                .collect();
            format!("New kinds of effect: {}", and_more(&named, signals.len()))
        }
        Reason::BlastRadius { from, to } => {
            format!("Blast radius grew from {from} to *{to}* affected")
        }
        Reason::SeverityRaised { from, to } => {
            format!(
                "Severity raised from {} to *{}*",
                from.as_str(),
                to.as_str()
            )
        }
        Reason::Absorbed { id, rule } => format!(
            "Absorbed incident {} (rule {}): the same root cause",
            code(id, 64),
            code(rule, NAME)
        ),
        Reason::Resolved => format!("Resolved after {}", lasted(inc)),
        Reason::MergedInto { id } => {
            format!("Merged into incident {}, which carries on", code(id, 64))
        }
    }
}

/// "What changed" as a list, or None without reasons.
fn changes(n: &Notification) -> Option<String> {
    if n.reasons.is_empty() {
        return None;
    }
    let mut s = String::from("*What changed*");
    for r in n.reasons.iter().take(REASONS) {
        s.push_str("\n• ");
        s.push_str(&reason(r, &n.incident));
    }
    if n.reasons.len() > REASONS {
        s.push_str(&format!(
            "\n• _and {} more changes_",
            n.reasons.len() - REASONS
        ));
    }
    Some(s)
}

/// The latest change in one line, for the incident message.
fn latest_change(n: &Notification) -> Option<String> {
    let reasons: Vec<String> = n
        .reasons
        .iter()
        .take(3)
        .map(|r| reason(r, &n.incident))
        .collect();
    if reasons.is_empty() {
        return None;
    }
    let more = n.reasons.len().saturating_sub(3);
    let tail = if more > 0 {
        format!(" (and {more} more)")
    } else {
        String::new()
    };
    Some(format!(
        "*Latest change* (notification #{}): {}{tail}",
        n.sequence,
        reasons.join("; ")
    ))
}

/// When, in the reader's time zone, with a UTC fallback.
fn when(t: EventTime) -> String {
    match jiff::Timestamp::from_microsecond(t.as_micros()) {
        Ok(ts) if ts.as_second() >= 0 => format!(
            "<!date^{}^{{date_short_pretty}} {{time_secs}}|{}>",
            ts.as_second(),
            ts.strftime("%Y-%m-%d %H:%M:%S UTC")
        ),
        _ => escape(&t.to_string()),
    }
}

fn timeline(inc: &IncidentReport) -> Vec<String> {
    let status = match inc.status {
        Status::Resolved => "resolved",
        Status::Firing => "firing",
        Status::Pending => "pending",
    };
    let mut out = vec![
        format!("*{}* · {status}", inc.severity.as_str()),
        format!("first seen {}", when(inc.first_seen)),
        format!("opened {}", when(inc.opened_at)),
        format!("last seen {}", when(inc.last_seen)),
    ];
    match inc.resolved_at {
        Some(at) => {
            out.push(format!("resolved {}", when(at)));
            out.push(format!("lasted *{}*", lasted(inc)));
        }
        None => out.push(format!("going on for *{}*", lasted(inc))),
    }
    out
}

/// The incident in one line (thread replies, compact updates).
fn summary_line(n: &Notification) -> Vec<String> {
    let inc = &n.incident;
    vec![
        Radius::of(inc).counts(),
        format!("{} signals", inc.signals),
        format!("last seen {}", when(inc.last_seen)),
        format!("notification #{}", n.sequence),
    ]
}

fn footer(n: &Notification) -> Vec<String> {
    let inc = &n.incident;
    vec![
        format!("rule {}", code(&inc.rule, NAME)),
        format!("incident {}", code(&inc.id, 64)),
        format!("{} signals", inc.signals),
        format!("notification #{}", n.sequence),
    ]
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        return format!("{n} {one}");
    }
    let many = if one.ends_with('s') || one.ends_with('x') || one.ends_with("ch") {
        format!("{one}es")
    } else if let Some(stem) = one.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{one}s")
    };
    format!("{n} {many}")
}

/// `a, b, c and 7 more`: the names shown out of `total`.
fn and_more(shown: &[String], total: usize) -> String {
    let rest = total.saturating_sub(shown.len());
    let list = shown.join(", ");
    if rest == 0 {
        list
    } else {
        format!("{list} and {rest} more")
    }
}

/// The blast radius: affected entities counted by kind, namespace and node.
#[derive(Debug)]
struct Radius<'a> {
    total: usize,
    pods: usize,
    /// Other kinds than pods and nodes, most numerous first.
    kinds: Vec<(&'a str, usize)>,
    namespaces: Vec<(&'a str, usize)>,
    nodes: Vec<(&'a str, usize)>,
    /// Effects and conditions first (what is hurt), then the rest.
    named: Vec<&'a Affected>,
}

fn ranked(counts: HashMap<&str, usize>) -> Vec<(&str, usize)> {
    let mut v: Vec<(&str, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    v
}

impl<'a> Radius<'a> {
    fn of(inc: &'a IncidentReport) -> Radius<'a> {
        let mut seen = HashSet::new();
        let mut pods = 0;
        let mut kinds: HashMap<&str, usize> = HashMap::new();
        let mut namespaces: HashMap<&str, usize> = HashMap::new();
        let mut nodes: HashMap<&str, usize> = HashMap::new();
        let mut named: Vec<&Affected> = Vec::new();
        for a in &inc.affected {
            let e = &a.entity;
            if !seen.insert((e.kind.as_str(), e.namespace.as_deref(), e.name.as_str())) {
                continue;
            }
            named.push(a);
            match e.kind.as_str() {
                "Pod" => pods += 1,
                "Node" => {}
                kind => *kinds.entry(kind).or_default() += 1,
            }
            if let Some(ns) = e.namespace.as_deref().filter(|ns| !ns.is_empty()) {
                *namespaces.entry(ns).or_default() += 1;
            }
            let node = if e.kind == "Node" {
                Some(e.name.as_str())
            } else {
                e.node.as_deref()
            };
            if let Some(node) = node.filter(|n| !n.is_empty()) {
                *nodes.entry(node).or_default() += 1;
            }
        }
        // Stable: in the report's order within each group.
        named.sort_by_key(|a| !matches!(a.role, Role::Effect | Role::Condition));
        Radius {
            total: seen.len(),
            pods,
            kinds: ranked(kinds),
            namespaces: ranked(namespaces),
            nodes: ranked(nodes),
            named,
        }
    }

    /// "18 pods · 9 namespaces · 4 nodes".
    fn counts(&self) -> String {
        let mut parts = Vec::new();
        if self.pods > 0 {
            parts.push(plural(self.pods, "pod"));
        }
        for (kind, n) in self.kinds.iter().take(3) {
            parts.push(plural(*n, &cut(kind, NAME)));
        }
        if self.kinds.len() > 3 {
            let rest: usize = self.kinds[3..].iter().map(|k| k.1).sum();
            parts.push(format!("{rest} other"));
        }
        if !self.namespaces.is_empty() {
            parts.push(plural(self.namespaces.len(), "namespace"));
        }
        if !self.nodes.is_empty() {
            parts.push(plural(self.nodes.len(), "node"));
        }
        if parts.is_empty() {
            return "nothing else affected".to_string();
        }
        escape(&parts.join(" · "))
    }

    fn section(&self) -> String {
        let mut s = format!("*Blast radius:* {}", self.counts());
        if self.total == 0 {
            return s;
        }
        let list = |items: &[(&str, usize)]| {
            let v: Vec<String> = items
                .iter()
                .take(TOP)
                .map(|(name, n)| format!("{} ({n})", code(name, NAME)))
                .collect();
            and_more(&v, items.len())
        };
        if !self.namespaces.is_empty() {
            s.push_str("\n*Namespaces:* ");
            s.push_str(&list(&self.namespaces));
        }
        if !self.nodes.is_empty() {
            s.push_str("\n*Nodes:* ");
            s.push_str(&list(&self.nodes));
        }
        let named: Vec<String> = self
            .named
            .iter()
            .take(TOP)
            .map(|a| {
                let e = &a.entity;
                let name = match e.namespace.as_deref().filter(|ns| !ns.is_empty()) {
                    Some(ns) => format!("{}/{}", cut(ns, NAME / 2), cut(&e.name, NAME)),
                    None => cut(&e.name, NAME),
                };
                if e.kind == "Pod" {
                    code(&name, NAME * 2)
                } else {
                    format!("{} {}", escape(&cut(&e.kind, NAME)), code(&name, NAME * 2))
                }
            })
            .collect();
        s.push_str("\n*Affected:* ");
        s.push_str(&and_more(&named, self.named.len()));
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::notify::Link;

    /// A small incident, or one past every limit (`big`).
    fn report(big: bool) -> IncidentReport {
        let n = if big { 3000 } else { 3 };
        let long = |s: &str, len: usize| format!("{s}{}", "x".repeat(len));
        let affected: Vec<Value> = (0..n)
            .map(|i| {
                serde_json::json!({
                    "kind": "Pod",
                    "namespace": if big { long(&format!("ns{}-<&>", i % 300), 200) } else { format!("ns{i}") },
                    "name": if big { long(&format!("pod{i}-<&>"), 250) } else { format!("pod{i}") },
                    "node": format!("node{}", i % 7),
                    "signal": "s",
                    "role": "effect",
                })
            })
            .collect();
        let attributes: serde_json::Map<String, Value> = (0..if big { 40 } else { 2 })
            .map(|i| {
                (
                    if big {
                        long(&format!("k{i}<&>"), 300)
                    } else {
                        format!("k{i}")
                    },
                    Value::String(if big { long("v<&>`", 5000) } else { "v".into() }),
                )
            })
            .collect();
        let title = if big {
            long("T <&> ", 1000)
        } else {
            "Title & <more>".into()
        };
        let summary = if big {
            "<!channel> & <x> ".repeat(400)
        } else {
            "summary".into()
        };
        serde_json::from_value(serde_json::json!({
            "id": "abc", "rule": if big { long("rule", 500) } else { "rule".into() },
            "title": title, "severity": "critical", "status": "firing",
            "opened_at": "2026-03-16T08:00:12Z", "first_seen": "2026-03-16T08:00:00Z",
            "last_seen": "2026-03-16T08:22:45Z",
            "root_cause": {"signal": "sig", "summary": summary,
                "entity": {"kind": "DaemonSet", "namespace": "ns", "name": "ds", "node": null},
                "attributes": attributes},
            "affected": affected, "signals": 42, "version": 3,
            "explanation": {"rule": "rule", "kind": "correlation",
                "window": {"before": "5m", "after": "30m"}, "ties": []}
        }))
        .unwrap()
    }

    fn notification(event: Event, big: bool) -> Notification {
        let mut reasons = vec![
            Reason::NewEffects {
                signals: (0..if big { 500 } else { 2 })
                    .map(|i| format!("sig-{i}"))
                    .collect(),
            },
            Reason::BlastRadius { from: 4, to: 22 },
            Reason::SeverityRaised {
                from: Severity::Warning,
                to: Severity::Critical,
            },
        ];
        if big {
            reasons.extend((0..200).map(|i| Reason::Absorbed {
                id: format!("id{i}"),
                rule: "r".repeat(300),
            }));
        }
        if event == Event::Resolved {
            reasons = vec![Reason::Resolved];
        }
        let links = (0..if big { 60 } else { 2 })
            .map(|i| Link {
                title: format!(
                    "link {i} {}",
                    if big { "t".repeat(300) } else { String::new() }
                ),
                url: format!(
                    "https://example.com/{i}/{}",
                    if big { "u".repeat(3500) } else { String::new() }
                ),
            })
            .chain(big.then(|| Link {
                title: "fits".into(),
                url: "https://example.com/fits".into(),
            }))
            .collect();
        let mut incident = report(big);
        if event == Event::Resolved {
            incident.status = Status::Resolved;
            incident.resolved_at = EventTime::parse_rfc3339("2026-03-16T08:30:00Z");
        }
        Notification {
            event,
            sequence: 3,
            reasons,
            links,
            incident,
        }
    }

    fn text_of(v: &Value) -> &str {
        v["text"].as_str().unwrap_or_default()
    }

    fn len(s: &str) -> usize {
        s.chars().count()
    }

    /// Every message shape, of a small and a pathological incident.
    fn all_messages() -> Vec<(String, Message)> {
        let mut out = Vec::new();
        for big in [false, true] {
            for event in [Event::Opened, Event::Updated, Event::Resolved] {
                let n = notification(event, big);
                let m = Some("<!here>");
                let tag = format!("{}{}", event.as_str(), if big { " big" } else { "" });
                out.push((format!("incident {tag}"), incident(&n, m)));
                out.push((format!("reply {tag}"), reply(&n, m)));
                out.push((format!("standalone {tag}"), standalone(&n, m)));
            }
        }
        out
    }

    fn blocks_of<'a>(m: &'a Message, kind: &str) -> Vec<&'a Value> {
        m.blocks.iter().filter(|b| b["type"] == kind).collect()
    }

    #[test]
    fn limit_blocks_per_message() {
        for (tag, m) in all_messages() {
            assert!(!m.blocks.is_empty(), "{tag}");
            assert!(
                m.blocks.len() <= limits::BLOCKS,
                "{tag}: {}",
                m.blocks.len()
            );
        }
    }

    #[test]
    fn limit_top_level_text() {
        for (tag, m) in all_messages() {
            assert!(!m.text.is_empty(), "{tag}");
            assert!(
                len(&m.text) <= limits::MESSAGE_TEXT,
                "{tag}: {}",
                len(&m.text)
            );
        }
    }

    #[test]
    fn limit_header_text() {
        for (tag, m) in all_messages() {
            for h in blocks_of(&m, "header") {
                assert_eq!(h["text"]["type"], "plain_text");
                assert!(len(text_of(&h["text"])) <= limits::HEADER_TEXT, "{tag}");
            }
        }
    }

    #[test]
    fn limit_section_text_and_fields() {
        let mut saw_fields = false;
        for (tag, m) in all_messages() {
            for s in blocks_of(&m, "section") {
                if let Some(t) = s.get("text") {
                    let t = text_of(t);
                    assert!(
                        !t.is_empty() && len(t) <= limits::SECTION_TEXT,
                        "{tag}: {}",
                        len(t)
                    );
                }
                if let Some(fields) = s.get("fields").and_then(Value::as_array) {
                    saw_fields = true;
                    assert!(
                        !fields.is_empty() && fields.len() <= limits::FIELDS,
                        "{tag}"
                    );
                    for f in fields {
                        assert!(len(text_of(f)) <= limits::FIELD_TEXT, "{tag}");
                    }
                }
            }
        }
        assert!(saw_fields);
    }

    #[test]
    fn limit_context_elements() {
        for (tag, m) in all_messages() {
            for c in blocks_of(&m, "context") {
                let elements = c["elements"].as_array().unwrap();
                assert!(
                    !elements.is_empty() && elements.len() <= limits::CONTEXT_ELEMENTS,
                    "{tag}"
                );
                for e in elements {
                    assert!(len(text_of(e)) <= limits::CONTEXT_TEXT, "{tag}");
                }
            }
        }
    }

    #[test]
    fn limit_buttons() {
        let mut saw = 0;
        for (tag, m) in all_messages() {
            for a in blocks_of(&m, "actions") {
                let elements = a["elements"].as_array().unwrap();
                assert!(elements.len() <= limits::ACTIONS_ELEMENTS, "{tag}");
                for b in elements {
                    saw += 1;
                    assert!(len(text_of(&b["text"])) <= limits::BUTTON_TEXT, "{tag}");
                    assert!(
                        len(b["url"].as_str().unwrap()) <= limits::BUTTON_URL,
                        "{tag}"
                    );
                }
            }
        }
        assert!(saw > 0);
    }

    #[test]
    fn user_text_is_escaped_and_cannot_ping() {
        // Every mrkdwn text (plain_text is shown as is, so not escaped).
        fn mrkdwn_texts<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(o) => {
                    if o.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                        out.extend(o.get("text").and_then(Value::as_str));
                    }
                    o.values().for_each(|v| mrkdwn_texts(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| mrkdwn_texts(v, out)),
                _ => {}
            }
        }
        for (tag, m) in all_messages() {
            let mut texts = vec![m.text.as_str()];
            let blocks = Value::Array(m.blocks.clone());
            mrkdwn_texts(&blocks, &mut texts);
            assert!(texts.len() > 3, "{tag}");
            for t in texts {
                assert!(
                    !t.contains("<!channel>"),
                    "{tag}: a summary pinged the channel"
                );
                assert!(!t.contains("<&>") && !t.contains("<x>"), "{tag}: {t}");
            }
        }
        let m = incident(&notification(Event::Opened, false), None);
        assert!(m.text.contains("Title &amp; &lt;more&gt;"), "{}", m.text);
    }

    #[test]
    fn critical_openings_carry_the_mention_and_nothing_else_does() {
        let open = incident(&notification(Event::Opened, false), Some("<!here>"));
        assert!(open.text.starts_with("<!here> "), "{}", open.text);
        assert!(text_of(&open.blocks[0]["text"]).starts_with("<!here>"));
        let mut warning = notification(Event::Opened, false);
        warning.incident.severity = Severity::Warning;
        assert!(!incident(&warning, Some("<!here>")).text.contains("<!here>"));
        let update = incident(&notification(Event::Updated, false), Some("<!here>"));
        assert!(!update.text.contains("<!here>"));
        // Raised to critical: the thread reply pings.
        let reply = reply(&notification(Event::Updated, false), Some("<!here>"));
        assert!(reply.text.starts_with("<!here> "), "{}", reply.text);
    }

    #[test]
    fn resolved_reads_as_resolved() {
        let n = notification(Event::Resolved, false);
        let m = incident(&n, None);
        assert!(m.text.contains("Resolved"), "{}", m.text);
        assert!(text_of(&m.blocks[0]["text"]).contains("Resolved"));
        let r = reply(&n, None);
        assert!(
            text_of(&r.blocks[0]["text"]).contains("*Resolved* after 30m"),
            "{:?}",
            r.blocks[0]
        );
    }

    #[test]
    fn blast_radius_counts_and_names_the_top_few() {
        let r = report(false);
        let radius = Radius::of(&r);
        assert_eq!(radius.counts(), "3 pods · 3 namespaces · 3 nodes");
        let big = report(true);
        let s = Radius::of(&big).section();
        assert!(s.contains("3000 pods · 300 namespaces · 7 nodes"), "{s}");
        assert!(s.contains(" and 2995 more"), "{s}");
        assert!(s.contains("(10) and 295 more"), "{s}");
    }

    #[test]
    fn decisive_attributes_come_first() {
        let mut r = report(false);
        r.root_cause.attributes = [("aaa", "1"), ("port", "29653"), ("error", "in use")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let f = attribute_fields(&r);
        assert!(f[0].starts_with("*error*"), "{f:?}");
        assert!(f[1].starts_with("*port*"), "{f:?}");
    }

    #[test]
    fn plurals_read_right() {
        assert_eq!(plural(1, "pod"), "1 pod");
        assert_eq!(plural(2, "Ingress"), "2 Ingresses");
        assert_eq!(plural(2, "NetworkPolicy"), "2 NetworkPolicies");
        assert_eq!(plural(2, "Gateway"), "2 Gateways");
    }
}

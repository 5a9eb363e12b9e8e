//! What an ntfy notification of an incident says, and how loud it is.
//!
//! A phone shows the title, the first lines and the tags' emoji; the body is
//! Markdown (ntfy renders it in its apps) in the order a person on call
//! reads it: the root cause with its decisive detail (the summary and the
//! attributes the rule captured), what changed since the last notification,
//! the blast radius in numbers with the most affected named, the timeline,
//! and the rule and incident ids to look it up.
//!
//! Loudness follows the severity when an incident opens (critical 5,
//! warning 4, info 3) and when it is raised; other updates replace the
//! notification at the default priority (3) so they do not scream again,
//! and the resolution is low (2): no sound, no vibration.
//!
//! Design choice: the message always fits ntfy's limit (4096 bytes by
//! default; a larger body would become an attachment or be refused). It is
//! rendered with generous caps on every part first, then with tighter ones
//! until it fits, and only as a last resort cut at the end, so a huge
//! incident loses the tail of its lists before it loses its root cause.

use std::fmt::Write as _;

use correlate::{EventTime, Severity};

use super::blast::BlastRadius;
use crate::notify::http::truncate;
use crate::notify::{Event, Notification, Reason};

/// ntfy's default `message-size-limit`, in bytes.
pub const MESSAGE_LIMIT: usize = 4096;
/// Longer titles are cut: a phone shows one or two lines of it.
pub const TITLE_LIMIT: usize = 250;
/// ntfy refuses more than three action buttons.
pub const MAX_ACTIONS: usize = 3;
/// Button labels are short on every client.
const LABEL_LIMIT: usize = 40;

/// ntfy's priorities.
pub const PRIORITY_URGENT: u8 = 5;
pub const PRIORITY_HIGH: u8 = 4;
pub const PRIORITY_DEFAULT: u8 = 3;
pub const PRIORITY_LOW: u8 = 2;

/// One notification, rendered for ntfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtfyMessage {
    pub title: String,
    /// Markdown, at most [`MESSAGE_LIMIT`] bytes.
    pub message: String,
    pub priority: u8,
    /// The severity's emoji tag first, then the rule, then configured tags.
    pub tags: Vec<String>,
    /// Opened when the notification is tapped: the first link.
    pub click: Option<String>,
    /// `view` buttons, at most [`MAX_ACTIONS`].
    pub actions: Vec<ViewAction>,
}

/// A button that opens a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewAction {
    pub label: String,
    pub url: String,
}

/// Renders `n` for ntfy, with `extra_tags` after the severity and rule tags,
/// the message within `limit` bytes.
pub fn render(n: &Notification, extra_tags: &[String], limit: usize) -> NtfyMessage {
    let links = n.links.iter().filter(|l| is_http(&l.url));
    NtfyMessage {
        title: title(n),
        message: body(n, limit),
        priority: priority(n),
        tags: tags(n, extra_tags),
        click: links.clone().next().map(|l| l.url.clone()),
        actions: links
            .take(MAX_ACTIONS)
            .map(|l| ViewAction {
                label: truncate(&one_line(&l.title), LABEL_LIMIT).into_owned(),
                url: l.url.clone(),
            })
            .collect(),
    }
}

pub fn priority(n: &Notification) -> u8 {
    match n.event {
        Event::Opened => severity_priority(n.incident.severity),
        Event::Updated => n
            .reasons
            .iter()
            .filter_map(|r| match r {
                Reason::SeverityRaised { to, .. } => Some(severity_priority(*to)),
                _ => None,
            })
            .max()
            .unwrap_or(PRIORITY_DEFAULT),
        Event::Resolved => PRIORITY_LOW,
    }
}

fn severity_priority(s: Severity) -> u8 {
    match s {
        Severity::Critical => PRIORITY_URGENT,
        Severity::Warning => PRIORITY_HIGH,
        Severity::Info => PRIORITY_DEFAULT,
    }
}

/// The emoji short code of the state (ntfy shows it before the title).
fn emoji(n: &Notification) -> &'static str {
    if n.event == Event::Resolved {
        return "white_check_mark";
    }
    match n.incident.severity {
        Severity::Critical => "rotating_light",
        Severity::Warning => "warning",
        Severity::Info => "information_source",
    }
}

/// Tags without commas (ntfy splits the header on them), each once.
pub fn tags(n: &Notification, extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let all = [emoji(n), n.incident.rule.as_str()]
        .into_iter()
        .chain(extra.iter().map(String::as_str));
    for tag in all {
        let tag = one_line(&tag.replace(',', " "));
        if !tag.is_empty() && !out.contains(&tag) {
            out.push(tag);
        }
    }
    out
}

pub fn title(n: &Notification) -> String {
    let merged = n
        .reasons
        .iter()
        .any(|r| matches!(r, Reason::MergedInto { .. }));
    let prefix = match n.event {
        Event::Resolved if merged => "Merged: ",
        Event::Resolved => "Resolved: ",
        _ => "",
    };
    let title = format!("{prefix}{}", one_line(&n.incident.headline()));
    truncate(&title, TITLE_LIMIT).into_owned()
}

/// How much of each part a rendering keeps.
#[derive(Debug, Clone, Copy)]
struct Caps {
    summary: usize,
    attributes: usize,
    value: usize,
    names: usize,
    name: usize,
    reasons: usize,
}

/// From generous to terse: the first that fits is sent.
const LEVELS: [Caps; 4] = [
    Caps {
        summary: 1500,
        attributes: 12,
        value: 200,
        names: 5,
        name: 80,
        reasons: 600,
    },
    Caps {
        summary: 1000,
        attributes: 8,
        value: 120,
        names: 4,
        name: 64,
        reasons: 400,
    },
    Caps {
        summary: 600,
        attributes: 5,
        value: 80,
        names: 3,
        name: 48,
        reasons: 250,
    },
    Caps {
        summary: 300,
        attributes: 3,
        value: 48,
        names: 2,
        name: 40,
        reasons: 150,
    },
];

/// The Markdown body within `limit` bytes.
pub fn body(n: &Notification, limit: usize) -> String {
    let blast = BlastRadius::of(&n.incident);
    let mut last = String::new();
    for caps in &LEVELS {
        last = render_body(n, &blast, caps);
        if last.len() <= limit {
            return last;
        }
    }
    truncate(&last, limit).into_owned()
}

fn render_body(n: &Notification, blast: &BlastRadius, caps: &Caps) -> String {
    let r = &n.incident;
    let rc = &r.root_cause;
    let mut out = String::with_capacity(2048);

    // Root cause: what, where, and the detail that decides what to do.
    let e = &rc.entity;
    let name = match &e.namespace {
        Some(ns) => format!("{ns}/{}", e.name),
        None => e.name.clone(),
    };
    let _ = write!(
        out,
        "**Root cause:** {} {}",
        inline(&e.kind),
        code(&truncate(&name, caps.name))
    );
    if let Some(node) = &e.node {
        let _ = write!(out, " on {}", code(&truncate(node, caps.name)));
    }
    let _ = write!(out, " · {}\n\n", inline(&rc.signal));
    if !rc.summary.trim().is_empty() {
        out.push_str(&paragraph(&truncate(&one_line(&rc.summary), caps.summary)));
        out.push_str("\n\n");
    }
    let attributes: Vec<_> = rc
        .attributes
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if !attributes.is_empty() {
        for (k, v) in attributes.iter().take(caps.attributes) {
            let _ = writeln!(
                out,
                "- {}: {}",
                inline(&truncate(k, caps.name)),
                code(&truncate(&one_line(v), caps.value))
            );
        }
        if attributes.len() > caps.attributes {
            let _ = writeln!(
                out,
                "- and {} more",
                super::blast::count(attributes.len() - caps.attributes, "attribute")
            );
        }
        out.push('\n');
    }

    // What changed: the reasons of an update (the opening needs none).
    let changes: Vec<String> = n
        .reasons
        .iter()
        .filter(|r| !matches!(r, Reason::Opened | Reason::Resolved))
        .map(ToString::to_string)
        .collect();
    if !changes.is_empty() {
        let _ = write!(
            out,
            "**What changed:** {}\n\n",
            inline(&truncate(&one_line(&changes.join("; ")), caps.reasons))
        );
    }

    // Blast radius: the numbers, then the most affected by name.
    let _ = write!(out, "**Blast radius:** {}\n\n", inline(&blast.headline()));
    let mut lists = String::new();
    if !blast.pods.is_empty() {
        let names: Vec<String> = blast
            .pods
            .iter()
            .take(caps.names)
            .map(|p| code(&truncate(p, caps.name)))
            .collect();
        let _ = writeln!(
            lists,
            "- pods: {}",
            and_more(&names, blast.pods.len() - names.len())
        );
    }
    for (label, counts) in [("namespaces", &blast.namespaces), ("nodes", &blast.nodes)] {
        if counts.is_empty() {
            continue;
        }
        let names: Vec<String> = counts
            .iter()
            .take(caps.names)
            .map(|(name, k)| format!("{} ({k})", code(&truncate(name, caps.name))))
            .collect();
        let _ = writeln!(
            lists,
            "- {label}: {}",
            and_more(&names, counts.len() - names.len())
        );
    }
    if !lists.is_empty() {
        out.push_str(&lists);
        out.push('\n');
    }

    // Timeline.
    let day = date(r.first_seen);
    let mut steps = vec![
        format!("first seen {}", time(r.first_seen, &day)),
        format!("opened {}", time(r.opened_at, &day)),
        format!("last seen {}", time(r.last_seen, &day)),
    ];
    if let Some(at) = r.resolved_at {
        steps.push(format!(
            "resolved {} after {}",
            time(at, &day),
            at.since(r.opened_at)
        ));
    }
    let _ = write!(out, "**Timeline:** {}", steps.join(" · "));
    if !day.is_empty() {
        let _ = write!(out, " ({day})");
    }
    out.push_str("\n\n");

    // Where to look it up.
    let _ = write!(
        out,
        "{} · rule {} · incident {} · {} · version {}",
        r.severity.as_str(),
        code(&truncate(&r.rule, caps.name)),
        code(&truncate(&r.id, caps.name)),
        super::blast::count(usize::try_from(r.signals).unwrap_or(usize::MAX), "signal"),
        r.version
    );
    out
}

fn and_more(names: &[String], more: usize) -> String {
    let list = names.join(", ");
    if more == 0 {
        list
    } else {
        format!("{list} and {more} more")
    }
}

/// `2026-03-16` of an instant (empty outside the calendar).
fn date(t: EventTime) -> String {
    jiff::Timestamp::from_microsecond(t.as_micros())
        .map(|ts| ts.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// `08:00:12Z`, with the date when it is not `day`.
fn time(t: EventTime, day: &str) -> String {
    match jiff::Timestamp::from_microsecond(t.as_micros()) {
        Ok(ts) if date(t) == day => ts.strftime("%H:%M:%SZ").to_string(),
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        Err(_) => t.to_string(),
    }
}

fn is_http(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// Control characters and runs of white space as one space.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Text that Markdown shows as it is: the characters that would start
/// emphasis, code, links, HTML, tables or strike-through escaped.
fn inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '|' | '~' | '#'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// [`inline`] text that starts a line: a leading `-`, `+`, `=` or `1.`
/// would make it a list or a heading.
fn paragraph(s: &str) -> String {
    let mut out = inline(s);
    if out.starts_with(['-', '+', '=']) {
        out.insert(0, '\\');
    } else {
        let digits = out.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && out[digits..].starts_with(['.', ')']) {
            out.insert(digits, '\\');
        }
    }
    out
}

/// A code span, or escaped text when `s` has a backtick of its own.
fn code(s: &str) -> String {
    if s.is_empty() || s.contains('`') {
        inline(s)
    } else {
        format!("`{s}`")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pathological() -> Notification {
        let incident = serde_json::from_str(include_str!(
            "../../../tests/fixtures/incidents/nw-pathological-huge-unicode.json"
        ))
        .unwrap();
        Notification {
            event: Event::Updated,
            sequence: 2,
            reasons: vec![Reason::BlastRadius { from: 10, to: 3060 }],
            links: vec![],
            incident,
        }
    }

    #[test]
    fn tighter_limits_drop_detail_before_the_root_cause() {
        let n = pathological();
        let mut sizes = Vec::new();
        for limit in [MESSAGE_LIMIT, 2500, 1800, 1200, 300] {
            let body = body(&n, limit);
            assert!(body.len() <= limit, "{limit}: {}", body.len());
            assert!(body.starts_with("**Root cause:** DaemonSet `nfs-csi/csi-nfs-node`"));
            if limit >= 1800 {
                // A terser level fits whole: nothing is cut at the end.
                assert!(body.ends_with("version 156"), "{limit}: {body}");
                assert!(body.contains("**Blast radius:** 3000 pods"), "{limit}");
            }
            sizes.push(body.len());
        }
        assert!(sizes.windows(2).all(|w| w[0] > w[1]), "{sizes:?}");
    }

    #[test]
    fn markdown_specials_are_escaped_and_lines_are_safe() {
        assert_eq!(inline("a*b_c`d"), "a\\*b\\_c\\`d");
        assert_eq!(paragraph("- not a list"), "\\- not a list");
        assert_eq!(paragraph("12. not a list"), "12\\. not a list");
        assert_eq!(code("a`b"), "a\\`b");
        assert_eq!(code("nfs-csi/x"), "`nfs-csi/x`");
        assert_eq!(one_line(" a\n\tb  c\u{7}d "), "a b c d");
    }
}

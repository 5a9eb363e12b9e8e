//! Which receivers hear about an incident: Alertmanager's routing tree.
//!
//! A route has matchers, receivers, child routes and `continue`. The root
//! matches every incident. An incident that matches a route descends into
//! its children in order: every matching child routes it, until one that
//! matches without `continue`; if no child matches, the route's own
//! receivers take it. Matchers are Alertmanager's: `label = value`,
//! `label != value`, `label =~ regex`, `label !~ regex`, regexes anchored
//! at both ends.
//!
//! Design choice: an incident is not an alert, so its labels are derived
//! (see [`Labels::of`]), and some are multi-valued: `namespace` holds the
//! root's namespace and every affected one, because "page the payments team
//! when their namespace is in the blast radius" is the routing people ask
//! for. `=` and `=~` hold when any value matches, `!=` and `!~` when none
//! does.

use std::collections::BTreeMap;

use correlate::IncidentReport;
use regex::Regex;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("`{0}` is not a matcher (label=value, label!=value, label=~regex, label!~regex)")]
    Syntax(String),
    #[error("`{label}` is not a label name (letters, digits and _, not starting with a digit)")]
    Label { label: String },
    #[error("bad regex in `{matcher}`: {reason}")]
    Regex { matcher: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The labels every incident has; the root cause's attributes add theirs
/// (`driver`, `port`, `image`, ...) under their own names unless one of
/// these takes it.
pub const BUILTIN_LABELS: [&str; 10] = [
    "cluster",
    "rule",
    "severity",
    "status",
    "kind",
    "namespace",
    "root_namespace",
    "root_kind",
    "root_name",
    "node",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Re,
    NotRe,
}

/// One `label op value` test.
#[derive(Debug, Clone)]
pub struct Matcher {
    label: String,
    op: Op,
    value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Parses `label=value`, `label != "value"`, `label=~"re.*"`, ...
    pub fn parse(text: &str) -> Result<Matcher> {
        let syntax = || Error::Syntax(text.to_string());
        let at = text.find(['=', '!']).ok_or_else(syntax)?;
        let label = text[..at].trim();
        let rest = &text[at..];
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (Op::Re, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (Op::NotRe, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (Op::Ne, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (Op::Eq, v)
        } else {
            return Err(syntax());
        };
        if !is_label_name(label) {
            return Err(Error::Label {
                label: label.to_string(),
            });
        }
        let value = unquote(value.trim()).ok_or_else(syntax)?;
        let regex = match op {
            Op::Re | Op::NotRe => {
                Some(
                    Regex::new(&format!("^(?:{value})$")).map_err(|e| Error::Regex {
                        matcher: text.to_string(),
                        reason: e.to_string(),
                    })?,
                )
            }
            Op::Eq | Op::Ne => None,
        };
        Ok(Matcher {
            label: label.to_string(),
            op,
            value,
            regex,
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let values = labels.get(&self.label);
        let hit = |v: &str| match &self.regex {
            Some(re) => re.is_match(v),
            None => v == self.value,
        };
        // An absent label reads as the empty string, as in Alertmanager.
        let any = if values.is_empty() {
            hit("")
        } else {
            values.iter().any(|v| hit(v))
        };
        match self.op {
            Op::Eq | Op::Re => any,
            Op::Ne | Op::NotRe => !any,
        }
    }
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value as written: bare, or in double quotes with `\"` and `\\`.
fn unquote(v: &str) -> Option<String> {
    let Some(inner) = v.strip_prefix('"') else {
        return (!v.contains('"')).then(|| v.to_string());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// An incident's labels for routing; a label may hold several values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, Vec<String>>);

impl Labels {
    pub fn of(inc: &IncidentReport) -> Labels {
        let mut l = Labels::default();
        let root = &inc.root_cause.entity;
        if let Some(cluster) = &inc.cluster {
            l.add("cluster", cluster);
        }
        l.add("rule", &inc.rule);
        l.add("severity", inc.severity.as_str());
        l.add(
            "status",
            match inc.status {
                correlate::Status::Pending => "pending",
                correlate::Status::Firing => "firing",
                correlate::Status::Resolved => "resolved",
            },
        );
        l.add("kind", inc.explanation.kind.as_str());
        l.add("root_kind", &root.kind);
        l.add("root_name", &root.name);
        if let Some(ns) = &root.namespace {
            l.add("root_namespace", ns);
            l.add("namespace", ns);
        }
        if let Some(node) = &root.node {
            l.add("node", node);
        }
        for a in &inc.affected {
            if let Some(ns) = &a.entity.namespace {
                l.add("namespace", ns);
            }
        }
        for (k, v) in &inc.root_cause.attributes {
            if !BUILTIN_LABELS.contains(&k.as_str()) {
                l.add(k, v);
            }
        }
        l
    }

    fn add(&mut self, k: &str, v: &str) {
        let values = self.0.entry(k.to_string()).or_default();
        if !values.iter().any(|x| x == v) {
            values.push(v.to_string());
        }
    }

    pub fn get(&self, k: &str) -> &[String] {
        self.0.get(k).map_or(&[], Vec::as_slice)
    }
}

/// A node of the routing tree.
#[derive(Debug, Clone, Default)]
pub struct Route {
    pub matchers: Vec<Matcher>,
    /// Receiver names.
    pub receivers: Vec<String>,
    /// Keep looking at the next siblings after this one matched.
    pub continue_matching: bool,
    pub routes: Vec<Route>,
}

impl Route {
    /// The receivers of an incident with `labels`, each once, in routing
    /// order. The route itself is taken to match (the root always does).
    pub fn receivers(&self, labels: &Labels) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect(labels, &mut out);
        out
    }

    fn collect<'a>(&'a self, labels: &Labels, out: &mut Vec<&'a str>) {
        let mut matched = false;
        for child in &self.routes {
            if child.matchers.iter().all(|m| m.matches(labels)) {
                matched = true;
                child.collect(labels, out);
                if !child.continue_matching {
                    break;
                }
            }
        }
        if !matched {
            for r in &self.receivers {
                if !out.contains(&r.as_str()) {
                    out.push(r);
                }
            }
        }
    }

    /// Every receiver name the tree mentions (checked against the
    /// configured receivers when the config is read).
    pub fn all_receivers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.receivers.iter().map(String::as_str).collect();
        for c in &self.routes {
            out.extend(c.all_receivers());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn incident() -> IncidentReport {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/incidents/core-csi-driver-unavailable.json"
        ))
        .unwrap()
    }

    fn route(matchers: &[&str], receivers: &[&str], cont: bool, routes: Vec<Route>) -> Route {
        Route {
            matchers: matchers
                .iter()
                .map(|m| Matcher::parse(m).unwrap())
                .collect(),
            receivers: receivers.iter().map(|s| s.to_string()).collect(),
            continue_matching: cont,
            routes,
        }
    }

    #[test]
    fn matchers_parse_as_alertmanager_writes_them() {
        for (text, ok) in [
            ("severity=critical", true),
            ("severity = \"critical\"", true),
            ("rule=~\"csi-.*\"", true),
            ("namespace!~kube-.*", true),
            ("rule != port-conflict", true),
            ("severity", false),
            ("9lives=x", false),
            ("rule=~\"(\"", false),
            ("rule=\"unterminated", false),
        ] {
            assert_eq!(Matcher::parse(text).is_ok(), ok, "{text}");
        }
    }

    #[test]
    fn labels_come_from_the_incident() {
        let inc = incident();
        let l = Labels::of(&inc);
        assert_eq!(l.get("rule"), ["csi-driver-unavailable"]);
        assert_eq!(l.get("severity"), ["critical"]);
        assert_eq!(
            l.get("driver"),
            [inc.root_cause.attributes["driver"].clone()]
        );
        let namespaces = l.get("namespace");
        assert!(
            namespaces.len() > 3,
            "root and blast radius: {namespaces:?}"
        );
        for a in &inc.affected {
            if let Some(ns) = &a.entity.namespace {
                assert!(namespaces.contains(ns));
            }
        }
    }

    #[test]
    fn multi_valued_labels_match_any_and_exclude_all() {
        let inc = incident();
        let l = Labels::of(&inc);
        let affected_ns = inc.affected[0].entity.namespace.clone().unwrap();
        assert!(
            Matcher::parse(&format!("namespace={affected_ns}"))
                .unwrap()
                .matches(&l)
        );
        assert!(
            !Matcher::parse(&format!("namespace!={affected_ns}"))
                .unwrap()
                .matches(&l)
        );
        assert!(Matcher::parse("namespace!~nowhere-.*").unwrap().matches(&l));
        // Regexes are anchored: a fragment does not match.
        assert!(!Matcher::parse("rule=~driver").unwrap().matches(&l));
        assert!(Matcher::parse("rule=~.*driver.*").unwrap().matches(&l));
        // An absent label is the empty string.
        assert!(Matcher::parse("team=\"\"").unwrap().matches(&l));
        assert!(!Matcher::parse("team=payments").unwrap().matches(&l));
    }

    #[test]
    fn a_cluster_routes_to_its_own_receivers() {
        let tree = route(
            &[],
            &["default"],
            false,
            vec![route(
                &["cluster=~edge-.*"],
                &["edge-oncall"],
                false,
                vec![],
            )],
        );
        let mut inc = incident();
        assert_eq!(
            tree.receivers(&Labels::of(&inc)),
            ["default"],
            "no cluster named"
        );
        inc.cluster = Some("edge-7".to_string());
        assert_eq!(tree.receivers(&Labels::of(&inc)), ["edge-oncall"]);
        inc.cluster = Some("core".to_string());
        assert_eq!(tree.receivers(&Labels::of(&inc)), ["default"]);
    }

    #[test]
    fn the_tree_routes_like_alertmanager() {
        let l = Labels::of(&incident());
        let tree = route(
            &[],
            &["default"],
            false,
            vec![
                route(&["severity=critical"], &["pager"], true, vec![]),
                route(&["rule=~csi-.*"], &["storage"], false, vec![]),
                route(&["severity=critical"], &["never-reached"], false, vec![]),
            ],
        );
        assert_eq!(tree.receivers(&l), ["pager", "storage"]);
        // No child matches: the parent's receivers.
        let tree = route(
            &[],
            &["default"],
            false,
            vec![route(&["severity=info"], &["quiet"], false, vec![])],
        );
        assert_eq!(tree.receivers(&l), ["default"]);
        // A matching child with children of its own that do not match: its receivers.
        let tree = route(
            &[],
            &["default"],
            false,
            vec![route(
                &["severity=critical"],
                &["oncall"],
                false,
                vec![route(&["rule=nothing"], &["x"], false, vec![])],
            )],
        );
        assert_eq!(tree.receivers(&l), ["oncall"]);
        assert_eq!(tree.all_receivers(), ["default", "oncall", "x"]);
    }
}

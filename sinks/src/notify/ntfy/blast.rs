//! The blast radius of an incident in numbers a person takes in at a
//! glance: how many pods (and other kinds), in how many namespaces, on how
//! many nodes, and the most affected of each.
//!
//! Counted over `IncidentReport::affected`, each entity once (an entity can
//! be listed with several signals). The webhook's Alertmanager body uses the
//! same figures, so every receiver states the same blast radius.

use std::collections::{BTreeMap, HashSet};

use correlate::IncidentReport;
use correlate::incident::Role;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlastRadius {
    /// Distinct affected entities.
    pub entities: usize,
    /// Entities per kind, most first (`Pod` first on a tie).
    pub kinds: Vec<(String, usize)>,
    /// Affected pods as `namespace/name`: those showing effects (or the
    /// condition, or the evidence) first, the root's own last, each group in
    /// report order.
    pub pods: Vec<String>,
    /// Entities per namespace, most first.
    pub namespaces: Vec<(String, usize)>,
    /// Entities per node (an entity's node, or a Node itself), most first.
    pub nodes: Vec<(String, usize)>,
}

impl BlastRadius {
    pub fn of(report: &IncidentReport) -> BlastRadius {
        let mut seen = HashSet::new();
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        let mut namespaces: BTreeMap<&str, usize> = BTreeMap::new();
        let mut nodes: BTreeMap<&str, usize> = BTreeMap::new();
        let mut pods = Vec::new();
        for a in &report.affected {
            let e = &a.entity;
            if !seen.insert((e.kind.as_str(), e.namespace.as_deref(), e.name.as_str())) {
                continue;
            }
            *kinds.entry(&e.kind).or_default() += 1;
            if let Some(ns) = e.namespace.as_deref() {
                *namespaces.entry(ns).or_default() += 1;
            }
            let node = e
                .node
                .as_deref()
                .or((e.kind == "Node").then_some(e.name.as_str()));
            if let Some(node) = node {
                *nodes.entry(node).or_default() += 1;
            }
            if e.kind == "Pod" {
                let name = match &e.namespace {
                    Some(ns) => format!("{ns}/{}", e.name),
                    None => e.name.clone(),
                };
                pods.push((a.role, name));
            }
        }
        // The root cause is named already: its own pods go last.
        pods.sort_by_key(|(role, _)| matches!(role, Role::Cause | Role::Merged));
        let pods = pods.into_iter().map(|(_, name)| name).collect();
        let mut kinds = ranked(kinds);
        // Pods first among equals: they are what people count.
        kinds.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| (b.0 == "Pod").cmp(&(a.0 == "Pod")))
        });
        BlastRadius {
            entities: seen.len(),
            kinds,
            pods,
            namespaces: ranked(namespaces),
            nodes: ranked(nodes),
        }
    }

    /// `22 pods across 11 namespaces and 4 nodes`; `nothing affected` for
    /// an empty radius.
    pub fn headline(&self) -> String {
        if self.entities == 0 {
            return "nothing affected".to_string();
        }
        let mut s = self
            .kinds
            .iter()
            .map(|(kind, n)| count(*n, &kind.to_lowercase()))
            .collect::<Vec<_>>()
            .join(", ");
        let places: Vec<String> = [
            (self.namespaces.len(), "namespace"),
            (self.nodes.len(), "node"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| count(n, what))
        .collect();
        if !places.is_empty() {
            s.push_str(" across ");
            s.push_str(&places.join(" and "));
        }
        s
    }
}

fn ranked(counts: BTreeMap<&str, usize>) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    // Stable: equal counts keep the name order.
    v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    v
}

/// `1 pod`, `3 pods`, `2 registries`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    let plural = if let Some(stem) = noun.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'o', 'u'])
    {
        format!("{stem}ies")
    } else if noun.ends_with(['s', 'x']) || noun.ends_with("sh") || noun.ends_with("ch") {
        format!("{noun}es")
    } else {
        format!("{noun}s")
    };
    format!("{n} {plural}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(count(1, "pod"), "1 pod");
        assert_eq!(count(2, "pod"), "2 pods");
        assert_eq!(count(2, "registry"), "2 registries");
        assert_eq!(count(2, "gateway"), "2 gateways");
        assert_eq!(count(3, "ingress"), "3 ingresses");
    }
}

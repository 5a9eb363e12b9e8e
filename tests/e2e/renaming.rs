//! Rules describe a failure's shape, never a cluster's names: every
//! namespace and node of a stream renamed, the stream forms the same
//! incidents (rule, severity, status, root, blast radius, timing), with the
//! new names. The invariant "rules never name a cluster's pods, nodes,
//! namespaces or drivers" of docs/ARCHITECTURE.md, checked on every cascade
//! the repository holds and on the shared scenarios.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::support::{bin, every_stream, root};

/// The namespaces and nodes a stream names, and every `name` it carries.
#[derive(Default)]
struct Names {
    namespaces: BTreeSet<String>,
    nodes: BTreeSet<String>,
    names: BTreeSet<String>,
}

impl Names {
    fn read(&mut self, v: &Value) {
        match v {
            Value::Object(map) => {
                let is_node = map.get("kind").and_then(Value::as_str) == Some("Node");
                for (k, x) in map {
                    if let Some(s) = x.as_str() {
                        match k.as_str() {
                            "namespace" | "pod_namespace" | "namespace_name" => {
                                self.namespaces.insert(s.to_owned());
                            }
                            "nodeName" | "pod_node_name" | "host" => {
                                self.nodes.insert(s.to_owned());
                            }
                            "name" if is_node => {
                                self.nodes.insert(s.to_owned());
                            }
                            "name" => {
                                self.names.insert(s.to_owned());
                            }
                            _ => {}
                        }
                    }
                    if is_node
                        && k == "metadata"
                        && let Some(n) = x.get("name").and_then(Value::as_str)
                    {
                        self.nodes.insert(n.to_owned());
                    }
                    self.read(x);
                }
            }
            Value::Array(items) => items.iter().for_each(|x| self.read(x)),
            _ => {}
        }
    }

    /// Old name -> new name. Kubernetes' own namespaces (`default`,
    /// `kube-*`) stay: they are the platform's, and rules may know them. A
    /// namespace that is also some object's name (a Deployment `freedify` in
    /// namespace `freedify`) stays too: renaming it would rename the
    /// object, which is not the namespace's doing.
    fn renames(&self) -> BTreeMap<String, String> {
        let namespaces = self.namespaces.iter().filter(|n| {
            !n.is_empty() && *n != "default" && !n.starts_with("kube-") && !self.names.contains(*n)
        });
        let mut out = BTreeMap::new();
        for (i, n) in namespaces.enumerate() {
            out.insert(n.clone(), format!("tenant{i}x"));
        }
        for (i, n) in self.nodes.iter().filter(|n| !n.is_empty()).enumerate() {
            out.entry(n.clone())
                .or_insert_with(|| format!("worker{i}x"));
        }
        out
    }
}

/// `text` with every name renamed: a dotted name (`ip-10-0-0-1.ec2.internal`)
/// wherever it occurs, any other where it is a whole word of letters,
/// digits, `-` and `_` (so `mysql` is renamed in `mysql.svc`, not in
/// `mysql-0`).
fn rename(text: &str, renames: &BTreeMap<String, String>) -> String {
    let mut text = text.to_owned();
    for (old, new) in renames.iter().filter(|(o, _)| o.contains('.')) {
        text = text.replace(old.as_str(), new);
    }
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    for c in text.chars().chain(std::iter::once('\0')) {
        if word_char(c) {
            word.push(c);
            continue;
        }
        match renames.get(&word) {
            Some(new) => out.push_str(new),
            None => out.push_str(&word),
        }
        word.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

fn renamed_value(v: &Value, renames: &BTreeMap<String, String>) -> Value {
    match v {
        Value::String(s) => Value::String(rename(s, renames)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|x| renamed_value(x, renames)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, x)| (k.clone(), renamed_value(x, renames)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn replay(input: &Path) -> Vec<Value> {
    let out = bin()
        .args(["replay", "--rules"])
        .arg(root().join("rules"))
        .arg(input)
        .output()
        .expect("run epicenter");
    assert!(out.status.success(), "{}: {out:?}", input.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What an incident found, apart from its wording: ids hash names, and
/// lists in a title are in name order, so both change with the names.
fn found(incident: &Value, renames: &BTreeMap<String, String>) -> String {
    let name = |v: &Value| rename(v.as_str().unwrap_or_default(), renames);
    let root = &incident["root_cause"]["entity"];
    let affected: BTreeSet<(String, String, String)> = incident["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (name(&a["kind"]), name(&a["namespace"]), name(&a["name"])))
        .collect();
    format!(
        "{} {} {} root {}/{}/{} on {} opened {} first {} affected {affected:?}",
        incident["rule"],
        incident["severity"],
        incident["status"],
        root["kind"],
        name(&root["namespace"]),
        name(&root["name"]),
        name(&root["node"]),
        incident["opened_at"],
        incident["first_seen"],
    )
}

#[test]
fn renaming_namespaces_and_nodes_changes_only_the_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut renamed_streams = 0;
    for input in every_stream() {
        let text = std::fs::read_to_string(&input).unwrap();
        let records: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let mut names = Names::default();
        records.iter().for_each(|r| names.read(r));
        let renames = names.renames();
        if renames.is_empty() {
            continue;
        }
        renamed_streams += 1;
        let moved = dir.path().join("renamed.ndjson");
        let body: String = text
            .lines()
            .map(|l| match serde_json::from_str::<Value>(l) {
                Ok(v) => renamed_value(&v, &renames).to_string() + "\n",
                // Not JSON (the scenarios carry such lines on purpose).
                Err(_) => format!("{l}\n"),
            })
            .collect();
        std::fs::write(&moved, body).unwrap();

        let mut want: Vec<String> = replay(&input).iter().map(|i| found(i, &renames)).collect();
        let mut got: Vec<String> = replay(&moved)
            .iter()
            .map(|i| found(i, &BTreeMap::new()))
            .collect();
        want.sort();
        got.sort();
        assert_eq!(
            got,
            want,
            "{}: renaming {} namespaces and nodes changed what was found",
            input.display(),
            renames.len()
        );
    }
    assert!(
        renamed_streams >= 30,
        "only {renamed_streams} streams renamed"
    );
}

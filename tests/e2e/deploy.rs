//! What `deploy/` promises, checked against the code: the ClusterRole
//! covers every request the Kubernetes sources make and grants nothing
//! they do not ask for, with the object graph's watches on and off (the
//! requests come from `serve` watching the local API server, in
//! `kubernetes.rs`), the
//! dashboard and the alerting rules name only metrics `serve` exports, the
//! kustomize rule pack is the shipped one, and the layouts' configs load.
//! (Rendering and schema validation of the manifests, amtool and promtool:
//! `scripts/check-deploy.sh`.)

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{bin, root};

/// Runs `epicenter <args> <path>`, which must succeed; its output.
fn epicenter_ok(args: &[&str], path: &Path) -> String {
    // What the kafka overlay's pods get from the downward API.
    let out = bin()
        .args(args)
        .arg(path)
        .env("POD_NAME", "epicenter-0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "epicenter {} {}: {text}",
        args.join(" "),
        path.display()
    );
    text
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The documents of a YAML file.
fn yaml_documents(path: &str) -> Vec<Value> {
    read(path)
        .split("\n---")
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        })
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

/// One permission: API group, resource (with subresource), verb.
type Permission = (String, String, String);

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What the shipped ClusterRole grants.
fn granted() -> BTreeSet<Permission> {
    let docs = yaml_documents("deploy/kustomize/shared/rbac.yaml");
    let role = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole")
        .expect("a ClusterRole in rbac.yaml");
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

/// The permission a request to the API server needs, as the API server's
/// authorizer derives it from the path and the `watch` parameter; `None`
/// for the discovery paths every authenticated client may read.
fn needed(path: &str, watch: bool) -> Option<Permission> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["version"] | ["api"] | ["apis"] | ["api", _] | ["apis", _] | ["apis", _, _] => {
            return None;
        }
        ["api", "v1", rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => ((*group).to_string(), rest),
        _ => panic!("a request the RBAC check cannot classify: {path}"),
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        rest => rest,
    };
    let (resource, verb) = match rest {
        [plural] => ((*plural).to_string(), if watch { "watch" } else { "list" }),
        [plural, _name] => ((*plural).to_string(), if watch { "watch" } else { "get" }),
        [plural, _name, sub] => (format!("{plural}/{sub}"), "get"),
        _ => panic!("a request the RBAC check cannot classify: {path}"),
    };
    Some((group, resource, verb.to_string()))
}

/// Granted though a server that serves `events.k8s.io/v1` (as the local
/// one does) never sees them asked for: the Events source's fallback on
/// clusters without that API.
const FALLBACKS: &[(&str, &str)] = &[("", "events")];

/// What only the object graph's watches (`sources.kubernetes.graph`) ask
/// for: granted, but asked for only when the graph is on. (Claims and
/// volumes are the `volumes` watches' too.)
const GRAPH: &[(&str, &str)] = &[
    ("", "services"),
    ("discovery.k8s.io", "endpointslices"),
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
    ),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
    ),
    ("storage.k8s.io", "storageclasses"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("", "resourcequotas"),
    ("policy", "poddisruptionbudgets"),
];

/// Every request (path, is a watch) of a serve whose Kubernetes sources
/// ran with every watch on (`graph`) or with the graph off is allowed by
/// the ClusterRole, and every resource it grants was asked for (nothing
/// granted that no source uses, but for [`FALLBACKS`], and for [`GRAPH`]
/// when the graph is off: then none of it was asked for).
pub(crate) fn assert_cluster_role_covers(requests: &[(String, bool)], graph: bool) {
    let granted = granted();
    let needed: BTreeSet<Permission> = requests
        .iter()
        .filter_map(|(path, watch)| needed(path, *watch))
        .collect();
    assert!(!needed.is_empty(), "no API request to check");
    let missing: Vec<&Permission> = needed.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "the ClusterRole (deploy/kustomize/shared/rbac.yaml) lacks {missing:?}"
    );
    let used: BTreeSet<(&str, &str)> = needed
        .iter()
        .map(|(g, r, _)| (g.as_str(), r.as_str()))
        .collect();
    if !graph {
        let asked: Vec<&(&str, &str)> = GRAPH.iter().filter(|p| used.contains(p)).collect();
        assert!(
            asked.is_empty(),
            "the graph is off, yet asked for {asked:?}"
        );
    }
    let unused: Vec<&Permission> = granted
        .iter()
        .filter(|(g, r, _)| !used.contains(&(g.as_str(), r.as_str())))
        .filter(|(g, r, _)| !FALLBACKS.contains(&(g.as_str(), r.as_str())))
        .filter(|(g, r, _)| graph || !GRAPH.contains(&(g.as_str(), r.as_str())))
        .collect();
    assert!(
        unused.is_empty(),
        "the ClusterRole grants what no source asked for: {unused:?}"
    );
}

/// The metric names a scrape of `/metrics` shows, with the suffixes their
/// types add (`_total`, `_bucket`, `_sum`, `_count`).
fn exported(scrape: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (Some(name), Some(kind)) = (it.next(), it.next()) else {
                continue;
            };
            out.insert(name.to_string());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["_sum", "_count"],
                _ => &[],
            };
            for s in suffixes {
                out.insert(format!("{name}{s}"));
            }
        } else if !line.starts_with('#')
            && let Some(name) = line.split(['{', ' ']).next()
            && !name.is_empty()
        {
            out.insert(name.to_string());
        }
    }
    out
}

/// `epicenter_*` names in PromQL expressions.
fn referenced(exprs: &[String]) -> BTreeSet<String> {
    let name = regex::Regex::new(r"\bepicenter_[a-z0-9_]*[a-z0-9]").unwrap();
    exprs
        .iter()
        .flat_map(|e| name.find_iter(e).map(|m| m.as_str().to_string()))
        .collect()
}

/// Every `expr` string anywhere in a JSON document (Grafana targets).
fn exprs_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => exprs_in(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs_in(v, out)),
        _ => {}
    }
}

fn dashboard_exprs() -> Vec<String> {
    let mut out = Vec::new();
    let dir = root().join("deploy/examples/grafana");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboard in {}", dir.display());
    for f in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        exprs_in(&doc, &mut out);
    }
    out
}

fn alert_exprs() -> Vec<String> {
    let mut out = Vec::new();
    for doc in yaml_documents("deploy/examples/prometheusrule.yaml") {
        for group in doc["spec"]["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                out.push(rule["expr"].as_str().unwrap().to_string());
            }
        }
    }
    out
}

/// The dashboard's and the alerting rules' expressions name only metrics
/// the scrape shows.
pub(crate) fn assert_monitoring_names_exported(scrape: &str) {
    let exported = exported(scrape);
    for (what, exprs) in [
        ("deploy/examples/grafana", dashboard_exprs()),
        ("deploy/examples/prometheusrule.yaml", alert_exprs()),
    ] {
        assert!(!exprs.is_empty(), "{what}: no expressions");
        let names = referenced(&exprs);
        assert!(!names.is_empty(), "{what} names no epicenter metric");
        let unknown: Vec<&String> = names.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{what} names metrics serve does not export: {unknown:?}\nexported: {exported:?}"
        );
    }
}

#[test]
fn the_permission_check_derives_what_the_api_server_would() {
    let p = |g: &str, r: &str, v: &str| Some((g.to_string(), r.to_string(), v.to_string()));
    assert_eq!(needed("/api/v1/pods", false), p("", "pods", "list"));
    assert_eq!(
        needed("/api/v1/namespaces/a/pods", true),
        p("", "pods", "watch")
    );
    assert_eq!(
        needed("/api/v1/namespaces/a/pods/p/log", false),
        p("", "pods/log", "get")
    );
    assert_eq!(
        needed("/apis/events.k8s.io/v1/events", true),
        p("events.k8s.io", "events", "watch")
    );
    assert_eq!(needed("/api/v1/nodes/n", false), p("", "nodes", "get"));
    assert_eq!(
        needed("/apis/apps/v1/namespaces/a/replicasets", true),
        p("apps", "replicasets", "watch")
    );
    assert_eq!(
        needed("/apis/storage.k8s.io/v1/storageclasses", false),
        p("storage.k8s.io", "storageclasses", "list")
    );
    assert_eq!(needed("/version", false), None);
    // Least privilege: nothing the sources do not read, secrets least of all;
    // reading is all they do.
    let granted = granted();
    assert!(!granted.contains(&("".into(), "secrets".into(), "get".into())));
    for (g, r, v) in &granted {
        assert!(
            ["get", "list", "watch"].contains(&v.as_str()),
            "{g}/{r}: {v} granted"
        );
    }
    for (g, r) in GRAPH {
        for v in ["get", "list", "watch"] {
            assert!(
                granted.contains(&(g.to_string(), r.to_string(), v.to_string())),
                "{g}/{r}: {v} not granted"
            );
        }
    }
}

#[test]
fn the_scrape_parser_knows_the_suffixes_of_each_type() {
    let scrape = "# TYPE epicenter_records counter\nepicenter_records_total{source=\"a\"} 1\n\
                  # TYPE epicenter_x_seconds histogram\n# TYPE epicenter_up gauge\n";
    let names = exported(scrape);
    for n in [
        "epicenter_records_total",
        "epicenter_x_seconds_bucket",
        "epicenter_x_seconds_count",
        "epicenter_up",
    ] {
        assert!(names.contains(n), "{n}: {names:?}");
    }
    assert!(!names.contains("epicenter_up_total"));
    let refs =
        referenced(&["sum(rate(epicenter_records_total[5m])) / on() epicenter_up".to_string()]);
    assert_eq!(
        refs,
        BTreeSet::from(["epicenter_records_total".into(), "epicenter_up".into()])
    );
}

#[test]
fn the_kustomize_rule_pack_is_the_shipped_one() {
    let names = |dir: &str| -> BTreeSet<String> {
        std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".yaml"))
            .collect()
    };
    let shipped = names("rules");
    assert_eq!(names("deploy/kustomize/shared/rules"), shipped);
    for f in &shipped {
        assert!(
            read(&format!("rules/{f}")) == read(&format!("deploy/kustomize/shared/rules/{f}")),
            "deploy/kustomize/shared/rules/{f} differs from rules/{f}: \
             cp rules/*.yaml deploy/kustomize/shared/rules/"
        );
    }
    let kustomization = read("deploy/kustomize/shared/kustomization.yaml");
    for f in &shipped {
        assert!(
            kustomization.contains(&format!("- rules/{f}")),
            "deploy/kustomize/shared/kustomization.yaml does not list rules/{f}"
        );
    }
}

#[test]
fn every_layouts_config_loads() {
    let dir = tempfile::tempdir().unwrap();
    for config in [
        "deploy/kustomize/shared/config/epicenter.yaml",
        "deploy/kustomize/overlays/kafka/config/epicenter.yaml",
    ] {
        // The container's paths, here.
        let text = read(config)
            .replace(
                "/etc/epicenter/rules",
                &root()
                    .join("deploy/kustomize/shared/rules")
                    .display()
                    .to_string(),
            )
            .replace(
                "/var/lib/epicenter",
                &dir.path().join("state").display().to_string(),
            );
        // Named after the layout's file, so a failure says which.
        let file = dir.path().join(config.replace('/', "_"));
        std::fs::write(&file, text).unwrap();
        epicenter_ok(&["config", "check"], &file);
    }
}

#[test]
fn the_rule_pack_loads_once_from_a_configmap_mount() {
    // What kubelet makes of a ConfigMap mounted as a directory: the files
    // in a timestamped directory, `..data` pointing at it, and each name a
    // link through `..data`.
    let dir = tempfile::tempdir().unwrap();
    let stamped = dir.path().join("..2026_12_02_10_00_00.000000001");
    std::fs::create_dir(&stamped).unwrap();
    std::os::unix::fs::symlink(stamped.file_name().unwrap(), dir.path().join("..data")).unwrap();
    let shipped = root().join("deploy/kustomize/shared/rules");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let name = entry.unwrap().file_name();
        std::fs::copy(shipped.join(&name), stamped.join(&name)).unwrap();
        std::os::unix::fs::symlink(Path::new("..data").join(&name), dir.path().join(&name))
            .unwrap();
    }
    let check = |path: &Path| {
        epicenter_ok(&["rules", "check"], path).replace(&path.display().to_string(), "DIR")
    };
    assert_eq!(check(dir.path()), check(&shipped));
}

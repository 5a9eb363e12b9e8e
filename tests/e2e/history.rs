//! The incident history through the binary: `replay --history` writes it,
//! `epicenter query` answers SQL over it (and refuses anything but reading
//! it), and `serve` stores what it forms and answers the same over HTTP.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Serve, bin, root, volume_alerts, wait_for};
use serde_json::Value;

/// The shipped example and the shared scenarios (when beside the checkout).
fn streams() -> Vec<PathBuf> {
    let mut v = vec![root().join("examples/nfs-csi-cascade.ndjson")];
    if let Ok(dirs) = std::fs::read_dir(root().join("../shared/scenarios")) {
        let mut more: Vec<PathBuf> = dirs
            .filter_map(|d| d.ok())
            .map(|d| d.path().join("input.ndjson"))
            .filter(|p| p.is_file())
            .collect();
        more.sort();
        v.extend(more);
    }
    v
}

/// Every key of `v`, at any depth, but those of `attributes` (which the
/// rules name).
fn keys(v: &Value, into: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                into.insert(k.clone());
                if k != "attributes" {
                    keys(x, into);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys(x, into)),
        _ => {}
    }
}

#[test]
fn every_key_of_the_document_is_in_its_reference() {
    let doc = std::fs::read_to_string(root().join("docs/incident-document.md")).unwrap();
    let mut streams = streams();
    let ours = root().join("tests/scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&ours)
        .unwrap()
        .filter_map(|d| d.ok())
        .map(|d| d.path().join("input.ndjson"))
        .filter(|p| p.is_file())
        .collect();
    dirs.sort();
    streams.extend(dirs);
    let mut seen = std::collections::BTreeSet::new();
    let out = bin()
        .args(["replay", "--rules"])
        .arg(root().join("rules"))
        .args(&streams)
        .output()
        .unwrap();
    assert!(out.status.success());
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        keys(&serde_json::from_str(line).unwrap(), &mut seen);
    }
    // Absence rules and merges put their keys in: the streams have both.
    for must in ["absence", "held_for", "merged", "joined_by", "resolved_at"] {
        assert!(seen.contains(must), "no stream shows `{must}` any more");
    }
    // The words of the reference's code spans: `explanation.ties[].first`
    // names explanation, ties and first.
    let named: std::collections::BTreeSet<&str> = doc
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|span| span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .collect();
    let missing: Vec<&String> = seen
        .iter()
        .filter(|k| !named.contains(k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/incident-document.md does not name {missing:?}"
    );
}

fn query(history: &Path, sql: &str, format: &str) -> Output {
    bin()
        .args(["query", "--format", format, "--history"])
        .arg(history)
        .arg(sql)
        .output()
        .unwrap()
}

fn json_rows(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_replayed_history_answers_sql_with_what_replay_printed() {
    for stream in streams() {
        let dir = tempfile::tempdir().unwrap();
        let out = bin()
            .args(["replay", "--rules"])
            .arg(root().join("rules"))
            .arg("--history")
            .arg(dir.path())
            .arg(&stream)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: BTreeMap<String, Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["id"].as_str().unwrap().to_string(), v)
            })
            .collect();
        let rows = json_rows(&query(
            dir.path(),
            "SELECT id, rule, title, status, signals, affected, opened_at FROM incidents_latest \
             WHERE change <> 'merged' ORDER BY id",
            "json",
        ));
        let stored: BTreeMap<String, &Value> = rows
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_string(), r))
            .collect();
        assert_eq!(
            stored.keys().collect::<Vec<_>>(),
            printed.keys().collect::<Vec<_>>(),
            "{}: the history's incidents are replay's",
            stream.display()
        );
        for (id, p) in &printed {
            let s = stored[id];
            for k in ["rule", "title", "status", "signals", "opened_at"] {
                assert_eq!(s[k], p[k], "{}: {id}: {k}", stream.display());
            }
            assert_eq!(
                s["affected"].as_u64().unwrap() as usize,
                p["affected"].as_array().unwrap().len(),
                "{}: {id}: affected",
                stream.display()
            );
        }
        // Every version is a row: at least one per incident, and the latest
        // is the highest.
        let versions = json_rows(&query(
            dir.path(),
            "SELECT id, max(version) AS v, count(*) AS n FROM incidents GROUP BY id",
            "json",
        ));
        for v in versions {
            assert!(v["n"].as_u64().unwrap() >= 1);
        }
    }
}

#[test]
fn the_three_readme_questions_have_answers() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("replay")
        .arg("--history")
        .arg(dir.path())
        .arg(root().join("examples/nfs-csi-cascade.ndjson"))
        .output()
        .unwrap();
    assert!(out.status.success());
    // Incidents by root cause (the example's month).
    let by_cause = json_rows(&query(
        dir.path(),
        "SELECT root_signal, count(*) AS incidents FROM incidents_latest \
         WHERE day >= '2026-03-01' AND change <> 'merged' GROUP BY root_signal ORDER BY incidents DESC, root_signal",
        "json",
    ));
    let total: u64 = by_cause
        .iter()
        .map(|r| r["incidents"].as_u64().unwrap())
        .sum();
    // The CSI driver's node plugin and controller failing together are one
    // outage; MetalLB's speaker is the other.
    assert_eq!(total, 2, "{by_cause:?}");
    // Mean time to resolve per rule: the example's incidents are all firing.
    let mttr = json_rows(&query(
        dir.path(),
        "SELECT rule, count(*) AS resolved FROM incidents_latest WHERE resolved_at IS NOT NULL GROUP BY rule",
        "json",
    ));
    assert!(mttr.is_empty(), "{mttr:?}");
    // Namespaces most often in a blast radius: the CSI cascade crosses many.
    let ns = json_rows(&query(
        dir.path(),
        "SELECT e.namespace, count(DISTINCT e.id) AS incidents FROM incidents_latest l \
         JOIN incident_entities e ON e.day = l.day AND e.ordinal = l.ordinal \
         WHERE e.role = 'affected' AND e.namespace IS NOT NULL AND l.change <> 'merged' \
         GROUP BY e.namespace ORDER BY incidents DESC, e.namespace",
        "json",
    ));
    assert!(ns.len() >= 5, "{ns:?}");
    let csv = query(
        dir.path(),
        "SELECT rule FROM incidents_latest ORDER BY rule LIMIT 1",
        "csv",
    );
    assert!(csv.status.success());
    assert!(String::from_utf8(csv.stdout).unwrap().starts_with("rule\n"));
}

/// `epicenter show ID` reads the incident back from the history and says
/// exactly what `replay --format text|markdown` said of it; `--format json`
/// is the document replay printed (plus `change`).
#[test]
fn show_reads_an_incident_back_as_replay_rendered_it() {
    let dir = tempfile::tempdir().unwrap();
    let example = root().join("examples/nfs-csi-cascade.ndjson");
    let replay = |format: &str| {
        let out = bin()
            .args(["replay", "--rules"])
            .arg(root().join("rules"))
            .args(["--format", format, "--history"])
            .arg(dir.path())
            .arg(&example)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let json = replay("json");
    let incidents: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(incidents.len() >= 2, "{json}");
    let show = |id: &str, format: &str| {
        let out = bin()
            .args(["show", id, "--format", format, "--history"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for (format, separator) in [("text", "\n"), ("markdown", "\n---\n\n")] {
        let replayed = replay(format);
        let shown: Vec<String> = incidents
            .iter()
            .map(|i| show(i["id"].as_str().unwrap(), format))
            .collect();
        assert_eq!(shown.join(separator), replayed, "{format}");
    }
    let id = incidents[0]["id"].as_str().unwrap();
    let mut stored: Value = serde_json::from_str(&show(id, "json")).unwrap();
    assert!(stored["change"].is_string(), "{stored}");
    stored.as_object_mut().unwrap().remove("change");
    assert_eq!(stored, incidents[0]);
    let missing = bin()
        .args(["show", "0000000000000000", "--history"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no incident 0000000000000000"));
}

/// The schema is documented by the binary itself, without a history.
#[test]
fn query_lists_the_tables_and_describes_each() {
    let run = |args: &[&str]| bin().arg("query").args(args).output().unwrap();
    let tables = run(&["--tables"]);
    assert!(tables.status.success(), "{tables:?}");
    let tables = String::from_utf8(tables.stdout).unwrap();
    for name in [
        "incidents",
        "incident_entities",
        "incident_signals",
        "incident_documents",
        "incidents_latest",
    ] {
        assert!(
            tables.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name}: {tables}"
        );
        let described = run(&["--describe", name]);
        assert!(described.status.success(), "{described:?}");
        let text = String::from_utf8(described.stdout).unwrap();
        assert!(text.lines().any(|l| l.starts_with("id ")), "{text}");
        assert!(text.lines().any(|l| l.starts_with("day ")), "{text}");
    }
    let nope = run(&["--describe", "passwd"]);
    assert_eq!(nope.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nope.stderr).contains("no table `passwd`"));
}

#[test]
fn queries_that_would_write_or_read_files_are_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("replay")
        .arg("--history")
        .arg(dir.path())
        .arg(root().join("examples/nfs-csi-cascade.ndjson"))
        .output()
        .unwrap();
    assert!(out.status.success());
    for sql in [
        "DROP TABLE incidents",
        "INSERT INTO incidents SELECT * FROM incidents",
        "COPY incidents TO '/tmp/stolen.csv'",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/'",
        "SELECT * FROM '/etc/passwd'",
        "SELECT 1; SELECT 2",
    ] {
        let out = query(dir.path(), sql, "table");
        assert_eq!(out.status.code(), Some(2), "{sql}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refused"), "{sql}: {err}");
    }
    assert!(!Path::new("/tmp/stolen.csv").exists());
    // A history that is not there is an error that says so.
    let out = query(&dir.path().join("nowhere"), "SELECT 1", "table");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn serve_stores_what_it_forms_and_answers_sql_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let config = "pipeline: {checkpoint_interval: 1s, idle_timeout: 1s}\n\
                  sinks:\n  history: {flush_interval: 200ms}\n\
                  api: {token: 'sql-token'}\n";
    let serve = Serve::start(dir.path(), config, &[]);
    let client = testkit::blocking_client();
    for body in volume_alerts() {
        let r = client
            .post(format!("{}/api/v1/alertmanager", serve.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let get = |path: &str, token: Option<&str>| {
        let mut r = client.get(format!("{}{path}", serve.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let incidents = wait_for("the incident in the history", || {
        let (status, body) = get("/api/v1/incidents?status=firing", Some("sql-token"));
        assert_eq!(status, 200, "{body}");
        let v: Vec<Value> = serde_json::from_str(&body).unwrap();
        (!v.is_empty()).then_some(v)
    });
    assert_eq!(incidents[0]["rule"], "volume-full");
    let id = incidents[0]["id"].as_str().unwrap().to_string();
    let (status, one) = get(&format!("/api/v1/incidents/{id}"), Some("sql-token"));
    assert_eq!(status, 200, "{one}");
    // The whole document, as replay prints it: entities and explanation,
    // not a row of counts.
    let one: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["id"], id.as_str());
    assert_eq!(one["root_cause"]["signal"], "alert-volume-full", "{one}");
    assert!(!one["affected"].as_array().unwrap().is_empty(), "{one}");
    assert_eq!(one["explanation"]["rule"], "volume-full", "{one}");
    assert!(!one["explanation"]["ties"].as_array().unwrap().is_empty());
    let (status, body) = get(
        &format!("/api/v1/incidents/{id}?version=999"),
        Some("sql-token"),
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        get("/api/v1/incidents/0000000000000000", Some("sql-token")).0,
        404
    );
    // The list's filters: severity and node, checked, then applied.
    let (status, body) = get("/api/v1/incidents?severity=loud", Some("sql-token"));
    assert_eq!(status, 400, "{body}");
    let severity = one["severity"].as_str().unwrap();
    let (_, body) = get(
        &format!("/api/v1/incidents?severity={severity}"),
        Some("sql-token"),
    );
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&body).unwrap().len(),
        1,
        "{body}"
    );
    let (_, body) = get("/api/v1/incidents?node=no-such-node", Some("sql-token"));
    assert!(
        serde_json::from_str::<Vec<Value>>(&body)
            .unwrap()
            .is_empty(),
        "{body}"
    );

    let sql = "SELECT change, version FROM incidents ORDER BY ordinal";
    let (status, body) = get(
        &format!("/api/v1/query?format=json&sql={}", urlencode(sql)),
        Some("sql-token"),
    );
    assert_eq!(status, 200, "{body}");
    let changes: Vec<Value> = serde_json::from_str(&body).unwrap();
    let kinds: Vec<&str> = changes
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"opened"), "{kinds:?}");
    // Any stored version, not only the newest.
    let opened = &changes[0]["version"];
    let first = get(
        &format!("/api/v1/incidents/{id}?version={opened}"),
        Some("sql-token"),
    );
    assert_eq!(first.0, 200, "{}", first.1);
    let first: Value = serde_json::from_str(&first.1).unwrap();
    assert_eq!(
        (&first["version"], &first["change"]),
        (opened, &Value::from("opened"))
    );

    let (status, body) = get(
        &format!("/api/v1/query?sql={}", urlencode("DELETE FROM incidents")),
        Some("sql-token"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("refused"), "{body}");
    assert_eq!(
        get("/api/v1/incidents", None).0,
        401,
        "the API wants its token"
    );
    assert_eq!(get("/api/v1/incidents", Some("wrong")).0, 401);
    let (status, outbox) = get("/api/v1/outbox", Some("sql-token"));
    assert_eq!(status, 200);
    let outbox: Value = serde_json::from_str(&outbox).unwrap();
    assert!(
        outbox["sinks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["sink"] == "history" && s["delivered"].as_u64().unwrap() >= 1),
        "{outbox}"
    );
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "{stderr}");

    // What serve stored is there for `epicenter query` after it stopped.
    let rows = json_rows(&query(
        &dir.path().join("state/history"),
        "SELECT id, status FROM incidents_latest",
        "json",
    ));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], id.as_str());
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

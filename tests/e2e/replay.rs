//! `epicenter replay` end to end, through the built binary: determinism,
//! invariance to shuffling within the lateness bound, and the contract's
//! answers to bad input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use correlate::Origin;
use ingest::{Decoder, Limits};
use proptest::prelude::*;

use crate::support::{bin, root};

fn replay(input: &Path) -> Output {
    bin()
        .arg("replay")
        .arg("--rules")
        .arg(root().join("rules"))
        .arg(input)
        .output()
        .expect("run epicenter")
}

/// The streams to test on: the shipped example, and the shared scenarios
/// when they are beside the checkout (as in CI).
fn streams() -> Vec<PathBuf> {
    let mut v = vec![root().join("examples/nfs-csi-cascade.ndjson")];
    let shared = root().join("../shared/scenarios");
    if let Ok(dirs) = std::fs::read_dir(&shared) {
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

#[test]
fn output_is_byte_identical_across_runs() {
    for s in streams() {
        let a = replay(&s);
        let b = replay(&s);
        assert!(a.status.success(), "{}: {:?}", s.display(), a);
        assert_eq!(a.stdout, b.stdout, "{}: two runs differ", s.display());
    }
}

/// `--stats` speaks words, not debug dumps, and counts the incidents it
/// printed (it once counted those folded into others too).
#[test]
fn stats_count_the_incidents_printed_in_plain_words() {
    for s in streams() {
        let out = bin()
            .args(["replay", "--stats", "--rules"])
            .arg(root().join("rules"))
            .arg(&s)
            .output()
            .expect("run epicenter");
        assert!(out.status.success(), "{}: {out:?}", s.display());
        let printed = String::from_utf8_lossy(&out.stdout).lines().count();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("; {printed} incidents printed, ")),
            "{}: {printed} printed, stats say {stderr}",
            s.display()
        );
        for debug_dump in ["{", "Stats", "Gauges"] {
            assert!(!stderr.contains(debug_dump), "{}: {stderr}", s.display());
        }
    }
}

#[test]
fn the_example_forms_the_expected_incidents() {
    let out = replay(&root().join("examples/nfs-csi-cascade.ndjson"));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let incidents: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let csi = incidents
        .iter()
        .find(|i| {
            i["rule"] == "csi-driver-unavailable"
                && i["root_cause"]["entity"]["kind"] == "DaemonSet"
        })
        .expect("a CSI incident rooted at the node plugin DaemonSet");
    assert!(
        csi["title"]
            .as_str()
            .is_some_and(|t| t.contains("29653") && t.contains("nfs.csi.k8s.io"))
    );
    let affected: Vec<&str> = csi["affected"]
        .as_array()
        .expect("affected")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(
        affected.contains(&"vault-2"),
        "vault-2 is in the blast radius: {affected:?}"
    );
    assert!(affected.len() >= 15);
    assert!(
        incidents.iter().any(|i| i["rule"] == "port-conflict"
            && i["title"].as_str().is_some_and(|t| t.contains("7946")))
    );
}

/// Which object a line is about, and its event time, for the shuffle.
fn object_and_time(decoder: &mut Decoder, line: &str, n: u64) -> Option<(String, i64)> {
    let mut out = Vec::new();
    decoder
        .decode(line, Origin { file: 0, line: n }, &mut out)
        .ok()?;
    let ev = out.first()?;
    let id = match ev.occurrence {
        Some(o) if ev.source != correlate::Source::Pod => format!("occ/{o}"),
        _ => format!(
            "{}/{}/{}/{}",
            ev.source,
            ev.entity.kind,
            ev.entity.namespace.as_deref().unwrap_or(""),
            ev.entity.name
        ),
    };
    Some((id, ev.time.as_micros()))
}

/// Reorders lines by event time plus a jitter below `max_jitter_us`,
/// keeping every object's own records in their order. No line can become
/// later than the lateness bound: whatever precedes a line has an event
/// time at most `max_jitter_us` after it.
fn shuffle(lines: &[String], seed: u64, max_jitter_us: i64) -> Vec<String> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut decoder = Decoder::new(Limits::default());
    let mut keyed: Vec<(i64, usize)> = Vec::with_capacity(lines.len());
    let mut by_object: HashMap<String, Vec<usize>> = HashMap::new();
    let mut last_key = i64::MIN;
    for (i, l) in lines.iter().enumerate() {
        let key = match object_and_time(&mut decoder, l, i as u64 + 1) {
            Some((obj, t)) => {
                by_object.entry(obj).or_default().push(i);
                t + (next() % max_jitter_us as u64) as i64
            }
            None => last_key,
        };
        last_key = key;
        keyed.push((key, i));
    }
    // Within each object, hand its sorted keys back in original order.
    for idxs in by_object.values() {
        let mut keys: Vec<i64> = idxs.iter().map(|i| keyed[*i].0).collect();
        keys.sort_unstable();
        for (i, k) in idxs.iter().zip(keys) {
            keyed[*i].0 = k;
        }
    }
    keyed.sort_by_key(|(k, i)| (*k, *i));
    keyed.into_iter().map(|(_, i)| lines[i].clone()).collect()
}

/// The first place two JSON documents differ, as a path and both values.
fn first_difference(path: &str, a: &serde_json::Value, b: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some(format!("{path}: {} items vs {}", x.len(), y.len()));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (p, q))| first_difference(&format!("{path}[{i}]"), p, q))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

fn incidents_of(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("incident json"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    /// Shuffling the input within the lateness bound forms the same
    /// incidents: same ids, roots, blast radius, open times.
    #[test]
    fn shuffling_within_lateness_forms_the_same_incidents(seed in any::<u64>()) {
        let dir = tempfile::tempdir().expect("tempdir");
        for s in streams() {
            let text = std::fs::read_to_string(&s).expect("read stream");
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            let shuffled = shuffle(&lines, seed, 50_000_000);
            let path = dir.path().join("shuffled.ndjson");
            std::fs::write(&path, shuffled.join("\n")).expect("write shuffled");
            let want = serde_json::Value::Array(incidents_of(&replay(&s).stdout));
            let got = serde_json::Value::Array(incidents_of(&replay(&path).stdout));
            let diff = first_difference("incidents", &got, &want);
            prop_assert!(diff.is_none(), "{} shuffled with seed {seed}: {}", s.display(), diff.unwrap_or_default());
        }
    }
}

/// Alertmanager HA peers and watch relists deliver the same record again:
/// every Kubernetes Event and every Alertmanager body given twice must form
/// exactly the same incidents, byte for byte.
#[test]
fn duplicate_deliveries_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    for s in streams() {
        let text = std::fs::read_to_string(&s).expect("read stream");
        let mut doubled = String::with_capacity(text.len() * 2);
        let mut repeated = 0;
        for line in text.lines() {
            doubled.push_str(line);
            doubled.push('\n');
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            let object = v.get("object").unwrap_or(&v);
            if v["version"] == "4" || object["kind"] == "Event" {
                doubled.push_str(line);
                doubled.push('\n');
                repeated += 1;
            }
        }
        assert!(repeated > 0, "{}: nothing to repeat", s.display());
        let path = dir.path().join("doubled.ndjson");
        std::fs::write(&path, doubled).expect("write");
        assert_eq!(
            replay(&path).stdout,
            replay(&s).stdout,
            "{}: {repeated} repeated deliveries changed the incidents",
            s.display()
        );
    }
}

#[test]
fn malformed_lines_are_reported_with_file_and_line_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.ndjson");
    let good =
        std::fs::read_to_string(root().join("examples/nfs-csi-cascade.ndjson")).expect("example");
    let mut text = String::from("{\"type\": \"ADDED\", \"object\": \n");
    text.push_str("not json at all\n");
    text.push_str("{\"alerts\": 5, \"version\": \"4\"}\n");
    text.push_str(&good);
    std::fs::write(&path, text).expect("write");
    let out = replay(&path);
    assert_eq!(out.status.code(), Some(0), "malformed lines are not fatal");
    let err = String::from_utf8_lossy(&out.stderr);
    let name = path.display().to_string();
    for line in 1..=3 {
        assert!(
            err.contains(&format!("{name}:{line}: ")),
            "line {line} reported: {err}"
        );
    }
    assert!(err.contains("3 malformed lines skipped"), "{err}");
    assert_eq!(
        out.stdout,
        replay(&root().join("examples/nfs-csi-cascade.ndjson")).stdout,
        "the good lines still form the same incidents"
    );
}

#[test]
fn unreadable_files_and_bad_rules_exit_2() {
    let out = bin()
        .args(["replay", "/nonexistent/input.ndjson"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/input.ndjson"));

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "signals:\n  - id: x\n    match: {source: logs}\n",
    )
    .expect("write rule");
    let out = bin()
        .arg("replay")
        .arg("--rules")
        .arg(dir.path())
        .arg(root().join("examples/nfs-csi-cascade.ndjson"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:3:21: unknown source `logs`"),
        "{err}"
    );

    let out = bin()
        .args(["replay", "--lateness", "soon", "x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "a bad flag is exit 2");
}

#[test]
fn rules_check_reports_errors_and_passes_the_shipped_pack() {
    let ok = bin()
        .arg("rules")
        .arg("check")
        .arg(root().join("rules"))
        .output()
        .expect("run");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("r.yaml"),
        "signals:\n  - id: x\n    match: {source: pod, mesage: a}\n",
    )
    .expect("write");
    let bad = bin()
        .arg("rules")
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("r.yaml:3:26: unknown field `mesage`"));
}

#[test]
fn a_rule_directory_adds_to_the_built_in_pack_and_replaces_by_id() {
    let example = root().join("examples/nfs-csi-cascade.ndjson");
    let replay = |args: &[&std::ffi::OsStr]| {
        let out = bin()
            .arg("replay")
            .args(args)
            .arg(&example)
            .output()
            .expect("run");
        (
            out.status.code(),
            incidents_of(&out.stdout),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (_, builtin, quiet) = replay(&[]);
    assert!(quiet.is_empty(), "{quiet}");

    // A copy of the shipped pack beside the built-in one changes nothing
    // and says nothing.
    let (code, same, said) = replay(&["--rules".as_ref(), root().join("rules").as_os_str()]);
    assert_eq!(code, Some(0));
    assert_eq!(same, builtin);
    assert!(said.is_empty(), "a copy is not an override: {said}");

    // A directory with one edited rule: only its incidents change, and
    // the replacement is said once, with both places.
    let mine = tempfile::tempdir().expect("tempdir");
    let storage = std::fs::read_to_string(root().join("rules/storage.yaml")).expect("read");
    let edited = storage.replacen(
        "title: 'CSI driver {driver} unavailable",
        "title: 'Ours: CSI driver {driver} down",
        1,
    );
    assert_ne!(edited, storage);
    let edited_at = format!("{}", mine.path().join("storage.yaml").display());
    std::fs::write(mine.path().join("storage.yaml"), &edited).expect("write");
    let (code, ours, said) = replay(&["--rules".as_ref(), mine.path().as_os_str()]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(ours.len(), builtin.len(), "the built-in rules still run");
    let titles = |v: &[serde_json::Value]| -> Vec<String> {
        v.iter()
            .map(|i| i["title"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let changed: Vec<String> = titles(&ours)
        .into_iter()
        .filter(|t| !titles(&builtin).contains(t))
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(
        changed[0].starts_with("Ours: CSI driver nfs.csi.k8s.io down"),
        "{changed:?}"
    );
    let notes: Vec<&str> = said.lines().collect();
    assert_eq!(notes.len(), 1, "{said}");
    assert!(
        notes[0].starts_with(&format!("note: {edited_at}:176:9: correlation `csi-driver-unavailable` replaces the built-in one (rules/storage.yaml:176:9)")),
        "{said}"
    );

    // Without the built-in pack the directory stands alone.
    let (code, alone, said) = replay(&[
        "--no-builtin".as_ref(),
        "--rules".as_ref(),
        mine.path().as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{said}");
    assert!(alone.len() < ours.len(), "{}", titles(&alone).join("\n"));
    let (code, _, said) = replay(&["--no-builtin".as_ref()]);
    assert_eq!(code, Some(2));
    assert!(
        said.contains("no rules: without the built-in pack"),
        "{said}"
    );
}

#[test]
fn the_shipped_rule_tests_pass() {
    let out = bin()
        .arg("rules")
        .arg("test")
        .arg(root().join("rules"))
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}

#[test]
fn every_shipped_rule_file_is_embedded_in_the_binary() {
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("rules"))
        .expect("rules")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml") && !n.ends_with(".test.yaml"))
        .collect();
    on_disk.sort();
    let src = std::fs::read_to_string(root().join("src/rule_files.rs")).expect("rule_files.rs");
    for f in on_disk {
        assert!(
            src.contains(&format!("\"rules/{f}\"")),
            "rules/{f} is not in EMBEDDED (src/rule_files.rs)"
        );
    }
    // And the built-in pack behaves like the files.
    let example = root().join("examples/nfs-csi-cascade.ndjson");
    let embedded = bin().arg("replay").arg(&example).output().expect("run");
    assert_eq!(embedded.stdout, replay(&example).stdout);
}

/// The incident document is two-way: sinks that read it back (the outbox,
/// the history) see what `replay` printed, field for field.
#[test]
fn replay_output_reads_back_as_incident_reports() {
    for s in streams() {
        let out = replay(&s);
        for line in String::from_utf8(out.stdout).expect("utf-8").lines() {
            let report: correlate::IncidentReport = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", s.display()));
            let again = serde_json::to_string(&report).expect("serializes");
            assert_eq!(again, line, "{}: a report does not round-trip", s.display());
        }
    }
}

#[test]
fn an_unreadable_alert_costs_only_itself() {
    let good = crate::crash::volume_alert("pgdata-0", "firing", "2026-03-16T08:00:00Z");
    let mut bad = crate::crash::volume_alert("pgdata-1", "firing", "garbage");
    bad["fingerprint"] = serde_json::json!("badbadbadbadbad1");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("alerts.ndjson");
    std::fs::write(&input, crate::crash::body(&[bad, good]) + "\n").unwrap();
    let out = replay(&input);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let incidents: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(incidents.len(), 1, "{stdout}");
    assert_eq!(incidents[0]["root_cause"]["entity"]["name"], "pgdata-0");
    assert!(
        stderr.contains("alerts.ndjson:1: alerts[0].startsAt: invalid RFC 3339 timestamp \"garbage\" (fingerprint badbadbadbadbad1)"),
        "{stderr}"
    );
    assert!(stderr.contains("1 unreadable alerts"), "{stderr}");
}

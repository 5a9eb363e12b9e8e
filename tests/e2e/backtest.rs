//! `epicenter backtest` end to end, through the built binary: a removed
//! correlation, an edited hold, the shared scenarios' expected incidents,
//! `--fail-on`, the same pack on both sides, and the three output formats.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{bin, root};

fn example() -> PathBuf {
    root().join("examples/nfs-csi-cascade.ndjson")
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = bin();
    c.arg("backtest");
    for a in args {
        c.arg(a);
    }
    c.output().expect("run epicenter")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{out:?}"
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A copy of the shipped pack (rules/*.yaml) without the correlation `id`,
/// to load with `--no-builtin`.
fn pack_without(id: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let start = format!("\n  - id: {id}\n");
    let mut removed = 0;
    for entry in std::fs::read_dir(root().join("rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let mut text = std::fs::read_to_string(&path).unwrap();
        if let Some(at) = text.find(&start) {
            let body = at + start.len();
            // Up to the next list item, or the next top-level key.
            let end = text[body..]
                .match_indices('\n')
                .map(|(i, _)| body + i)
                .find(|&i| {
                    let next = &text[i + 1..];
                    next.starts_with("  - ") || next.starts_with(|c: char| c.is_alphanumeric())
                })
                .unwrap_or(text.len());
            text.replace_range(at..end, "");
            removed += 1;
        }
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    assert_eq!(removed, 1, "`{id}` is defined once in rules/");
    dir
}

/// The entries of the only run.
fn entries(doc: &Value) -> Vec<Value> {
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{doc}");
    runs[0]["incidents"].as_array().unwrap().clone()
}

fn entry<'a>(entries: &'a [Value], rule: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["old"]["rule"] == rule || e["new"]["rule"] == rule)
        .unwrap_or_else(|| panic!("no incident of {rule} in {entries:?}"))
}

#[test]
fn a_removed_correlation_is_reported_removed_with_its_notifications() {
    // What the shipped pack tells about the MetalLB incident, alone.
    let same = json(&run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &"built-in",
        &"--format",
        &"json",
        &example(),
    ]));
    let before = entry(&entries(&same), "port-conflict")["old"]["notifications"].clone();
    assert!(before["opened"] == 1, "announced once: {before}");

    let new = pack_without("port-conflict");
    let args: [&dyn AsRef<std::ffi::OsStr>; 8] = [
        &"--rules",
        &"built-in",
        &"--against",
        &new.path(),
        &"--no-builtin",
        &"--format",
        &"json",
        &example(),
    ];
    let doc = json(&run(&args));
    let all = entries(&doc);
    let gone = entry(&all, "port-conflict");
    assert_eq!(gone["verdict"], "removed", "{gone}");
    assert!(gone["new"].is_null());
    assert_eq!(gone["old"]["root"]["name"], "speaker");
    assert_eq!(gone["old"]["notifications"], before, "its count under OLD");
    let counts = &doc["runs"][0]["counts"];
    assert_eq!(counts["removed"], 1, "{counts}");
    assert_eq!(
        doc["new"]["correlations"].as_u64().unwrap() + 1,
        doc["old"]["correlations"].as_u64().unwrap()
    );
    // Compression: the same records and signals, fewer incidents.
    let r = &doc["runs"][0];
    assert_eq!(r["old"]["signals"], r["new"]["signals"]);
    assert_eq!(r["old"]["incidents"], 2);
    assert_eq!(r["new"]["incidents"], 1);
    assert!(r["records"].as_u64().unwrap() > 3000, "{r}");

    // The same in words.
    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &new.path(),
        &"--no-builtin",
        &example(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let removed = text
        .split("Removed (only in OLD):")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    let total = before["total"].as_u64().unwrap();
    assert!(
        removed.contains("port-conflict: DaemonSet metallb-system/speaker"),
        "{text}"
    );
    assert!(
        removed.contains(&format!("notifications: {total} (1 opened")),
        "{text}"
    );
    assert!(text.contains("1 removed, 0 new, "), "{text}");
}

#[test]
fn a_longer_hold_is_reported_slower_with_its_detection_delay() {
    let input = root().join("tests/backtest/nodes-not-ready.ndjson");
    let pack = root().join("tests/backtest/hold-2m");
    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &pack,
        &"--format",
        &"json",
        &input,
    ]);
    let doc = json(&out);
    assert!(out.status.success(), "no --fail-on, exit 0: {out:?}");
    let all = entries(&doc);
    assert_eq!(all.len(), 1, "{all:?}");
    let e = &all[0];
    assert_eq!(e["verdict"], "changed", "{e}");
    assert_eq!(e["slower"], true);
    assert_eq!(e["old"]["detection_delay_seconds"], 45.0);
    assert_eq!(e["new"]["detection_delay_seconds"], 120.0);
    let c = &e["changes"];
    assert_eq!(c["detection_delay_seconds"]["old"], 45.0, "{c}");
    assert_eq!(c["detection_delay_seconds"]["new"], 120.0, "{c}");
    assert_eq!(c["opened_at_shift_seconds"], 75.0, "{c}");
    assert_eq!(e["old"]["opened_at"], "2026-04-02T10:01:45Z");
    assert_eq!(e["new"]["opened_at"], "2026-04-02T10:03:00Z");
    assert!(
        stderr(&out).contains("correlation `nodes-not-ready` replaces the built-in one"),
        "{}",
        stderr(&out)
    );

    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &pack,
        &"--fail-on",
        &"removed,slower",
        &input,
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("0 removed, 0 new, 1 changed (1 slower)"),
        "{text}"
    );
    assert!(
        text.contains("nodes-not-ready: Node pool-e-2 (slower)"),
        "{text}"
    );
    assert!(
        text.contains("detection delay 45s -> 2m (slower); opened 1m15s later"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("backtest failed (--fail-on removed,slower): 1 slower"),
        "{}",
        stderr(&out)
    );
}

/// check.py's verdict per scenario for a replay command, or None without
/// python3.
fn check_py(scenarios: &Path, cmd: &str) -> Option<Vec<(String, bool)>> {
    let out = Command::new("python3")
        .arg(root().join("../shared/scenarios/check.py"))
        .arg(scenarios)
        .arg("--cmd")
        .arg(cmd)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let verdicts: Vec<(String, bool)> = text
        .lines()
        .filter_map(|l| {
            let (pass, rest) = if let Some(r) = l.strip_prefix("PASS ") {
                (true, r)
            } else {
                (false, l.strip_prefix("FAIL ")?)
            };
            Some((rest.split(':').next()?.to_string(), pass))
        })
        .collect();
    assert!(!verdicts.is_empty(), "check.py said nothing: {out:?}");
    Some(verdicts)
}

fn verdicts(scores: &Value) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = scores["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["scenario"].as_str().unwrap().to_string(),
                s["passed"] == true,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn expected_incidents_give_precision_and_recall_per_rule() {
    let shared = root().join("../shared/scenarios");
    if !shared.join("check.py").is_file() {
        eprintln!("skipped: {} is not beside the checkout", shared.display());
        return;
    }
    let bin = env!("CARGO_BIN_EXE_epicenter");
    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &"built-in",
        &"--expected",
        &shared,
        &"--format",
        &"json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let doc = json(&out);
    let e = &doc["expected"];
    let n = e["scenarios"].as_u64().unwrap();
    assert!(n >= 6, "{e}");
    assert_eq!(doc["runs"].as_array().unwrap().len() as u64, n);

    // The verdicts are check.py's, scenario by scenario.
    let mut by_check = check_py(&shared, &format!("{bin} replay"));
    if let Some(v) = by_check.as_mut() {
        v.sort();
        assert_eq!(verdicts(&e["old"]), *v);
        assert_eq!(verdicts(&e["new"]), *v);
    }
    if by_check.is_none_or(|v| v.iter().all(|(_, pass)| *pass)) {
        for side in ["old", "new"] {
            let rules = e[side]["rules"].as_array().unwrap();
            assert!(rules.len() >= 5, "{rules:?}");
            for r in rules.iter().chain([&e[side]["all"]]) {
                assert_eq!(r["precision"], 1.0, "{r}");
                assert_eq!(r["recall"], 1.0, "{r}");
                assert_eq!(r["missed"], 0, "{r}");
            }
        }
    }

    // A pack without the MetalLB correlation misses an expected incident.
    let new = pack_without("port-conflict");
    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &new.path(),
        &"--no-builtin",
        &"--expected",
        &shared,
        &"--format",
        &"json",
    ]);
    let doc = json(&out);
    let e = &doc["expected"];
    let missing = e["new"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "(none)")
        .unwrap_or_else(|| panic!("no (none) row: {e}"));
    assert_eq!(missing["missed"], 1, "{missing}");
    assert_eq!(missing["recall"], 0.0, "{missing}");
    assert!(e["new"]["all"]["recall"].as_f64().unwrap() < 1.0);
    assert!(
        !e["new"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule"] == "port-conflict")
    );
    if let Some(mut v) = check_py(
        &shared,
        &format!("{bin} replay --no-builtin --rules {}", new.path().display()),
    ) {
        v.sort();
        assert_eq!(verdicts(&e["new"]), v, "NEW's verdicts are check.py's");
        assert!(v.iter().any(|(_, pass)| !pass));
    }

    // A scenario OLD passes and NEW fails is what `--fail-on failing`
    // catches; the other way round, nothing newly fails.
    let failing = |old: &Path, new: &Path| {
        run(&[
            &"--rules",
            &old,
            &"--against",
            &new,
            &"--no-builtin",
            &"--expected",
            &shared,
            &"--fail-on",
            &"failing",
        ])
    };
    let builtin = root().join("rules");
    let out = failing(&builtin, new.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("backtest failed (--fail-on failing): 1 failing"),
        "{out:?}"
    );
    let out = failing(new.path(), &builtin);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // In words and in Markdown.
    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &new.path(),
        &"--no-builtin",
        &"--expected",
        &shared,
    ]);
    let text = stdout(&out);
    assert!(text.contains("Expected incidents ("), "{text}");
    assert!(
        text.contains(&format!(
            "Scenarios that pass: OLD {n} of {n}, NEW {} of {n}",
            n - 1
        )),
        "{text}"
    );
    assert!(
        text.contains("NEW fails nfs-csi-port-conflict-cascade:"),
        "{text}"
    );
    assert!(text.contains("missing incident"), "{text}");
    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &new.path(),
        &"--no-builtin",
        &"--expected",
        &shared,
        &"--format",
        &"markdown",
    ]);
    let md = stdout(&out);
    assert!(md.contains("#### Expected incidents"), "{md}");
    assert!(md.contains("| rule | OLD precision | OLD recall | OLD false attributions | NEW precision | NEW recall | NEW false attributions |"), "{md}");
    assert!(
        md.contains("| `port-conflict` | 1.00 | 1.00 | 0 | - | - | - |"),
        "{md}"
    );
}

/// The repository's own scenarios, in the same format: the verdicts are
/// check.py's there too.
#[test]
fn expected_verdicts_are_check_py_verdicts_on_the_generated_scenarios() {
    let scenarios = root().join("tests/scenarios");
    let doc = json(&run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &"built-in",
        &"--expected",
        &scenarios,
        &"--format",
        &"json",
    ]));
    let e = &doc["expected"];
    assert!(e["scenarios"].as_u64().unwrap() >= 30, "{e}");
    if root().join("../shared/scenarios/check.py").is_file()
        && let Some(mut v) = check_py(
            &scenarios,
            &format!("{} replay", env!("CARGO_BIN_EXE_epicenter")),
        )
    {
        v.sort();
        assert_eq!(verdicts(&e["old"]), v);
    }
    // Scenarios with nothing to find: no incident, and nothing unexpected.
    assert_eq!(e["old"]["all"]["unexpected"], 0, "{}", e["old"]["all"]);
}

#[test]
fn fail_on_exits_1_on_what_it_names_and_0_otherwise() {
    let new = pack_without("port-conflict");
    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &new.path(),
        &"--no-builtin",
        &"--fail-on",
        &"removed",
        &example(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("backtest failed (--fail-on removed): 1 removed"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("Removed (only in OLD):"));

    // Nothing new: `--fail-on new` passes the same comparison.
    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &new.path(),
        &"--no-builtin",
        &"--fail-on",
        &"new",
        &example(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // The same pack on both sides: every kind passes.
    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &root().join("rules"),
        &"--fail-on",
        &"removed,new,changed,slower",
        &example(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!stderr(&out).contains("failed"), "{}", stderr(&out));
}

#[test]
fn bad_flags_and_inputs_exit_2_with_a_message() {
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--fail-on".into(),
                "removed,bogus".into(),
                example().display().to_string(),
            ],
            "bogus",
        ),
        (vec![], "no input"),
        (
            vec!["/nonexistent/input.ndjson".into()],
            "/nonexistent/input.ndjson",
        ),
        (
            vec!["--expected".into(), "/nonexistent/scenarios".into()],
            "/nonexistent/scenarios",
        ),
        (
            vec![
                "--lateness".into(),
                "soon".into(),
                example().display().to_string(),
            ],
            "soon",
        ),
        (
            vec![
                "--expected".into(),
                root().join("tests/scenarios").display().to_string(),
                example().display().to_string(),
            ],
            "name no FILE",
        ),
    ];
    for (extra, said) in cases {
        let mut c = bin();
        c.args(["backtest", "--rules", "built-in", "--against", "built-in"])
            .args(&extra);
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {out:?}");
        assert!(stderr(&out).contains(said), "{extra:?}: {}", stderr(&out));
    }
    // A side that does not load.
    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &"/nonexistent/rules",
        &example(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("--against"), "{}", stderr(&out));
    // Both sides are required.
    let out = bin()
        .args(["backtest", "--rules", "built-in"])
        .arg(example())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("--against"), "{}", stderr(&out));
}

#[test]
fn the_same_pack_on_both_sides_differs_in_nothing_in_every_format() {
    let rules = root().join("rules");
    let text = run(&[&"--rules", &"built-in", &"--against", &rules, &example()]);
    assert!(text.status.success(), "{text:?}");
    let t = stdout(&text);
    assert!(t.starts_with("OLD: built-in ("), "{t}");
    assert!(
        t.contains("No differences: 2 incidents, the same under both packs."),
        "{t}"
    );
    assert!(!t.contains("Removed") && !t.contains("Changed:"), "{t}");
    assert!(
        t.contains("Stages (records -> signals -> incidents -> notifications):"),
        "{t}"
    );
    assert!(
        t.contains("Detection delay (opened_at - first_seen):"),
        "{t}"
    );
    assert!(!t.contains('\x1b'), "no colour off a terminal: {t}");

    let md = stdout(&run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &rules,
        &"--format",
        &"markdown",
        &example(),
    ]));
    assert!(md.starts_with("### epicenter backtest\n"), "{md}");
    assert!(
        md.contains("**No differences: 2 incidents, the same under both packs.**"),
        "{md}"
    );
    assert!(md.contains("|  | records | signals | incidents | notifications |\n| --- | ---: | ---: | ---: | ---: |\n| **OLD** | "), "{md}");
    assert!(md.contains("| rule | root | OLD | NEW |"), "{md}");
    assert!(!md.contains("**Removed"), "{md}");

    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &rules,
        &"--format",
        &"json",
        &example(),
    ]);
    let doc = json(&out);
    for k in ["old", "new", "policy", "runs", "totals", "fail_on"] {
        assert!(doc.get(k).is_some(), "{k} missing: {doc}");
    }
    assert!(doc.get("expected").is_none(), "only with --expected");
    assert_eq!(doc["policy"]["throttle_seconds"], 300.0);
    let counts = &doc["totals"]["counts"];
    assert_eq!(
        *counts,
        serde_json::json!({"removed": 0, "new": 0, "changed": 0, "slower": 0, "unchanged": 2})
    );
    let all = entries(&doc);
    for e in &all {
        assert_eq!(e["verdict"], "unchanged", "{e}");
        assert!(e.get("changes").is_none(), "{e}");
        assert_eq!(e["old"], e["new"], "{e}");
        let i = &e["old"];
        for k in [
            "id",
            "rule",
            "title",
            "severity",
            "status",
            "root",
            "opened_at",
            "first_seen",
            "last_seen",
            "detection_delay_seconds",
            "affected",
            "notifications",
        ] {
            assert!(i.get(k).is_some(), "{k} missing: {i}");
        }
        let n = &i["notifications"];
        assert_eq!(
            n["total"].as_u64(),
            Some(
                n["opened"].as_u64().unwrap()
                    + n["updated"].as_u64().unwrap()
                    + n["resolved"].as_u64().unwrap()
            )
        );
    }

    // The incidents are replay's: same ids, same times.
    let replay = bin().arg("replay").arg(example()).output().unwrap();
    let replayed: Vec<Value> = String::from_utf8(replay.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replayed.len(), all.len());
    for (r, e) in replayed.iter().zip(&all) {
        for k in ["id", "rule", "title", "opened_at", "first_seen"] {
            assert_eq!(r[k], e["old"][k], "{k}");
        }
        assert_eq!(
            r["affected"].as_array().unwrap().len() as u64,
            e["old"]["affected"].as_u64().unwrap()
        );
    }

    // Deterministic: two runs, the same bytes.
    let again = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &rules,
        &"--format",
        &"json",
        &example(),
    ]);
    assert_eq!(out.stdout, again.stdout);
}

/// `--config`'s `notify:` decides what is told: a throttle longer than the
/// stream (22 minutes) leaves one update per incident at most, the one
/// deferred to the end of the throttle.
#[test]
fn the_configured_policy_decides_the_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("epicenter.yaml");
    std::fs::write(
        &config,
        "notify:\n  throttle: 1h\n  blast_radius_steps: [100]\n",
    )
    .unwrap();
    let doc = json(&run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &"built-in",
        &"--config",
        &config,
        &"--format",
        &"json",
        &example(),
    ]));
    assert_eq!(doc["policy"]["throttle_seconds"], 3600.0);
    assert_eq!(
        doc["policy"]["blast_radius_steps"],
        serde_json::json!([100])
    );
    let defaults = json(&run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &"built-in",
        &"--format",
        &"json",
        &example(),
    ]));
    let throttled = entries(&doc);
    for (t, d) in throttled.iter().zip(entries(&defaults)) {
        let (t, d) = (&t["old"]["notifications"], &d["old"]["notifications"]);
        assert_eq!(t["opened"], 1, "{t}");
        assert!(t["updated"].as_u64().unwrap() <= 1, "{t}");
        assert!(
            t["total"].as_u64().unwrap() <= d["total"].as_u64().unwrap(),
            "{t} {d}"
        );
    }
    // A config that does not load is exit 2.
    std::fs::write(&config, "notify:\n  throttle: soon\n").unwrap();
    let out = run(&[
        &"--rules",
        &"built-in",
        &"--against",
        &"built-in",
        &"--config",
        &config,
        &example(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("notify.throttle"), "{}", stderr(&out));
}

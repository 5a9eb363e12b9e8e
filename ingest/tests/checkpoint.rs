//! Checkpoint and restore of the decoder and the engine, data-driven.
//!
//! Every stream we have (the shared scenarios when they are beside the
//! checkout, or `EPICENTER_SCENARIOS`; `examples/*.ndjson`; every rule test
//! case of `rules/tests/`, inline or `input_file`) runs through the replay
//! pipeline (parse → `Decoder::interpret` → `Engine::push` / `observe` →
//! `finish`) with the shipped rule pack: once uninterrupted, and again cut
//! at many points. At each cut both states are snapshot, written to bytes,
//! read back and restored into a fresh decoder and engine, which carry on.
//! The incident reports must be byte-identical, and so must every incident
//! update along the way (nothing re-announced, nothing forgotten), the
//! engine's counters and gauges, and the decoder's counters.
//!
//! Also: a restored engine snapshots to the bytes it came from; a rule
//! removed or changed between checkpoint and restore is reported and the
//! rest carries on; damaged bytes and other format versions are errors; a
//! relisted Event and a redelivered alert body after a restore are
//! duplicates; and checkpoints of this format version stay readable (the
//! golden files in `tests/cases/checkpoint/`, `UPDATE_GOLDEN=1` rewrites
//! them: only together with a bump of `FORMAT_VERSION`).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use correlate::checkpoint::FormatError;
use correlate::engine::{DropReason, StateKind};
use correlate::incident::Change;
use correlate::rules::{RuleSet, RuleSource, compile};
use correlate::{
    Engine, EngineConfig, EngineSnapshot, EventTime, IncidentReport, Origin, RestoreReport, Span,
};
use ingest::{Decoded, Decoder, DecoderSnapshot, Limits};
use serde::Deserialize;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The rule files of the shipped pack (tests excluded), sorted.
fn pack_sources() -> Vec<RuleSource> {
    let dir = root().join("rules");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (name.ends_with(".yaml") || name.ends_with(".yml"))
                && !name.ends_with(".test.yaml")
                && !name.ends_with(".test.yml")
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| RuleSource {
            name: p.display().to_string(),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .collect()
}

fn compile_pack(sources: &[RuleSource]) -> Arc<RuleSet> {
    Arc::new(compile(sources).unwrap_or_else(|e| panic!("rule pack does not load: {e}")))
}

#[derive(Debug)]
struct Stream {
    name: String,
    lines: Vec<String>,
    lateness: Option<Span>,
}

fn file_stream(path: &Path) -> Stream {
    let text = std::fs::read_to_string(path).unwrap();
    Stream {
        name: path.display().to_string(),
        lines: text.lines().map(str::to_string).collect(),
        lateness: None,
    }
}

#[derive(Deserialize)]
struct TestFile {
    tests: Vec<TestCase>,
}

#[derive(Deserialize)]
struct TestCase {
    name: String,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    input_file: Option<String>,
    #[serde(default)]
    lateness: Option<String>,
}

/// Every stream: scenarios, examples, rule test cases.
fn streams() -> Vec<Stream> {
    let mut out = Vec::new();
    let scenarios = std::env::var_os("EPICENTER_SCENARIOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/scenarios"));
    match std::fs::read_dir(&scenarios) {
        Ok(dirs) => {
            let mut paths: Vec<PathBuf> = dirs
                .map(|d| d.unwrap().path().join("input.ndjson"))
                .filter(|p| p.is_file())
                .collect();
            paths.sort();
            out.extend(paths.iter().map(|p| file_stream(p)));
        }
        Err(_) => println!("no scenarios at {}: skipped", scenarios.display()),
    }
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    examples.sort();
    out.extend(examples.iter().map(|p| file_stream(p)));
    let tests_dir = root().join("rules/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&tests_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".test.yaml")))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let file: TestFile = serde_saphyr::from_str(&text).unwrap();
        for case in file.tests {
            let input = match (&case.input, &case.input_file) {
                (Some(i), None) => i.clone(),
                (None, Some(p)) => std::fs::read_to_string(tests_dir.join(p)).unwrap(),
                _ => panic!("{}: {}: needs input or input_file", f.display(), case.name),
            };
            out.push(Stream {
                name: format!("{}: {}", f.display(), case.name),
                lines: input.lines().map(str::to_string).collect(),
                lateness: case.lateness.as_deref().map(|l| Span::parse(l).unwrap()),
            });
        }
    }
    out
}

/// What a run produced: everything that must not depend on cuts.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    reports: Vec<String>,
    updates: Vec<(usize, Change, EventTime)>,
    engine: String,
    decoder: String,
}

/// The replay pipeline, with checkpoints.
struct Pipeline {
    rules: Arc<RuleSet>,
    config: EngineConfig,
    decoder: Decoder,
    engine: Engine,
    updates: Vec<(usize, Change, EventTime)>,
    checkpoints: usize,
}

impl Pipeline {
    fn new(rules: Arc<RuleSet>, config: EngineConfig) -> Pipeline {
        Pipeline {
            engine: Engine::new(rules.clone(), config.clone()),
            rules,
            config,
            decoder: Decoder::new(Limits::default()),
            updates: Vec::new(),
            checkpoints: 0,
        }
    }

    fn note(&mut self, updates: Vec<correlate::IncidentUpdate>) {
        self.updates
            .extend(updates.into_iter().map(|u| (u.incident, u.change, u.at)));
    }

    fn feed(&mut self, n: usize, line: &str) {
        let mut events = Vec::new();
        let origin = Origin {
            file: 0,
            line: n as u64 + 1,
        };
        match self.decoder.decode(line, origin, &mut events) {
            Ok(Decoded::Duplicate { time } | Decoded::Unchanged { time }) => {
                let u = self.engine.observe(time);
                self.note(u);
            }
            Ok(_) => {
                for ev in &events {
                    let u = self.engine.push(ev);
                    self.note(u);
                }
            }
            Err(_) => {}
        }
    }

    /// Snapshot both, to bytes and back, restore under `rules`.
    fn checkpoint_under(&mut self, rules: Arc<RuleSet>) -> RestoreReport {
        let engine_bytes = self.engine.snapshot().to_bytes().unwrap();
        let decoder_bytes = self.decoder.snapshot().to_bytes().unwrap();
        let snap = EngineSnapshot::from_bytes(&engine_bytes).unwrap();
        let (engine, report) = Engine::restore(rules.clone(), self.config.clone(), snap).unwrap();
        let decoder = Decoder::restore(
            Limits::default(),
            DecoderSnapshot::from_bytes(&decoder_bytes).unwrap(),
        );
        if Arc::ptr_eq(&rules, &self.rules) {
            // A restored state is the state it came from, to the byte.
            assert!(
                engine.snapshot().to_bytes().unwrap() == engine_bytes,
                "a restored engine snapshots to other bytes"
            );
            assert!(
                decoder.snapshot().to_bytes().unwrap() == decoder_bytes,
                "a restored decoder snapshots to other bytes"
            );
        }
        self.engine = engine;
        self.decoder = decoder;
        self.rules = rules;
        self.checkpoints += 1;
        report
    }

    fn checkpoint(&mut self) {
        let report = self.checkpoint_under(self.rules.clone());
        assert!(report.is_clean(), "same pack, yet {report:?}");
    }

    fn finish(mut self) -> Outcome {
        let u = self.engine.finish();
        self.note(u);
        Outcome {
            reports: self
                .engine
                .incidents()
                .into_iter()
                .map(|i| serde_json::to_string(&IncidentReport::new(i)).unwrap())
                .collect(),
            updates: self.updates,
            engine: format!("{:?} {:?}", self.engine.stats(), self.engine.gauges()),
            decoder: format!("{:?}", self.decoder.stats()),
        }
    }
}

fn config_for(s: &Stream) -> EngineConfig {
    let mut c = EngineConfig::default();
    if let Some(l) = s.lateness {
        c.lateness = l;
    }
    c
}

/// Runs `s`, checkpointing before the lines `cut` says (and, for `n`,
/// after the last one, before `finish`).
fn run(rules: &Arc<RuleSet>, s: &Stream, cut: impl Fn(usize) -> bool) -> Outcome {
    let mut p = Pipeline::new(rules.clone(), config_for(s));
    for (n, line) in s.lines.iter().enumerate() {
        if cut(n) {
            p.checkpoint();
        }
        p.feed(n, line);
    }
    if cut(s.lines.len()) {
        p.checkpoint();
    }
    p.finish()
}

#[test]
fn restored_runs_match_uninterrupted_runs_byte_for_byte() {
    let rules = compile_pack(&pack_sources());
    let streams = streams();
    assert!(streams.len() > 40, "only {} streams found", streams.len());
    let mut incidents = 0;
    for s in &streams {
        let n = s.lines.len();
        let whole = run(&rules, s, |_| false);
        incidents += whole.reports.len();
        // Every line for short streams; for long ones every k-th line for
        // a few k (one of them prime, so cuts fall in every phase), and
        // always at the start and at the end.
        let ks: Vec<usize> = if n <= 200 {
            vec![1, 7]
        } else {
            vec![n / 30, 397]
        };
        for k in ks {
            let k = k.max(1);
            let cut = run(&rules, s, |i| i % k == 0 || i == n);
            assert_eq!(
                cut, whole,
                "{}: checkpoint every {k} lines changes the outcome",
                s.name
            );
        }
    }
    assert!(
        incidents > 10,
        "only {incidents} incidents: the test proves little"
    );
}

/// The shipped pack's text without the correlation or absence `id`.
fn without_rule(sources: &[RuleSource], id: &str) -> Vec<RuleSource> {
    let head = format!("  - id: {id}");
    let mut found = false;
    let out = sources
        .iter()
        .map(|s| {
            let mut text = String::new();
            let mut skipping = false;
            for line in s.text.lines() {
                if line == head {
                    skipping = true;
                    found = true;
                    continue;
                }
                if skipping
                    && (line.starts_with("  - ")
                        || line.starts_with(|c: char| c.is_ascii_alphabetic()))
                {
                    skipping = false;
                }
                if !skipping {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            // A section left without items is an empty list, not null.
            let lines: Vec<&str> = text.lines().collect();
            let mut fixed = String::new();
            for (i, line) in lines.iter().enumerate() {
                let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty());
                let empty = line.ends_with(':')
                    && !line.starts_with(' ')
                    && next.is_none_or(|n| !n.starts_with(' '));
                fixed.push_str(line);
                fixed.push_str(if empty { " []\n" } else { "\n" });
            }
            RuleSource {
                name: s.name.clone(),
                text: fixed,
            }
        })
        .collect();
    assert!(found, "no rule {id} in the pack");
    out
}

/// The pack with rule `id`'s title edited.
fn with_title_edited(sources: &[RuleSource], id: &str) -> Vec<RuleSource> {
    let head = format!("  - id: {id}");
    sources
        .iter()
        .map(|s| {
            let mut text = String::new();
            let mut inside = false;
            for line in s.text.lines() {
                if line.starts_with("  - ") {
                    inside = line == head;
                }
                match line.strip_prefix("    title: '") {
                    Some(rest) if inside => {
                        text.push_str("    title: 'edited ");
                        text.push_str(rest);
                    }
                    _ => text.push_str(line),
                }
                text.push('\n');
            }
            RuleSource {
                name: s.name.clone(),
                text,
            }
        })
        .collect()
}

fn example() -> Stream {
    file_stream(&root().join("examples/nfs-csi-cascade.ndjson"))
}

/// Runs the example with one checkpoint at line `at`, restored under `after`.
fn run_switching(
    before: &Arc<RuleSet>,
    after: &Arc<RuleSet>,
    s: &Stream,
    at: usize,
) -> (RestoreReport, Outcome) {
    let mut p = Pipeline::new(before.clone(), config_for(s));
    let mut report = None;
    for (n, line) in s.lines.iter().enumerate() {
        if n == at {
            report = Some(p.checkpoint_under(after.clone()));
        }
        p.feed(n, line);
    }
    if at >= s.lines.len() {
        report = Some(p.checkpoint_under(after.clone()));
    }
    (report.unwrap(), p.finish())
}

#[test]
fn a_rule_removed_or_changed_before_restore_is_reported_and_the_rest_goes_on() {
    let sources = pack_sources();
    let full = compile_pack(&sources);
    let s = example();
    let whole = run(&full, &s, |_| false);
    let reported: Vec<serde_json::Value> = whole
        .reports
        .iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect();
    let used = reported[0]["rule"].as_str().unwrap().to_string();
    let unused = full
        .correlations
        .iter()
        .map(|c| c.id.clone())
        .find(|id| {
            !whole
                .reports
                .iter()
                .any(|r| r.contains(&format!("\"{id}\"")))
        })
        .unwrap();

    // A rule that formed nothing, removed mid-stream: reported, same output.
    let reduced = compile_pack(&without_rule(&sources, &unused));
    let (report, out) = run_switching(&full, &reduced, &s, s.lines.len() / 2);
    assert_eq!(report.dropped.len(), 1, "{report:?}");
    let d = &report.dropped[0];
    assert_eq!(
        (d.kind, d.id.as_str(), d.reason),
        (StateKind::Correlation, unused.as_str(), DropReason::Removed)
    );
    assert!(report.added.is_empty() && report.orphaned_incidents.is_empty());
    assert_eq!(out.reports, whole.reports);

    // The same rule edited: reported as changed, same output.
    let edited = compile_pack(&with_title_edited(&sources, &unused));
    let (report, out) = run_switching(&full, &edited, &s, s.lines.len() / 2);
    let d: Vec<_> = report
        .dropped
        .iter()
        .map(|d| (d.kind, d.id.as_str(), d.reason))
        .collect();
    assert_eq!(
        d,
        [(StateKind::Correlation, unused.as_str(), DropReason::Changed)]
    );
    assert_eq!(out.reports, whole.reports);

    // Restoring the reduced state under the full pack: the rule is new.
    let (report, _) = run_switching(&reduced, &full, &s, 10);
    assert_eq!(report.added, [(StateKind::Correlation, unused)]);

    // The rule that formed the incidents, removed at the end: its incidents
    // stay (history), listed as orphaned while firing.
    let reduced = compile_pack(&without_rule(&sources, &used));
    let (report, out) = run_switching(&full, &reduced, &s, s.lines.len());
    let d = &report.dropped[0];
    assert_eq!(
        (d.id.as_str(), d.reason),
        (used.as_str(), DropReason::Removed)
    );
    assert!(d.groups > 0, "{report:?}");
    let firing: Vec<&str> = reported
        .iter()
        .filter(|r| r["rule"] == used.as_str() && r["status"] == "firing")
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for id in &firing {
        assert!(
            report.orphaned_incidents.iter().any(|o| o == id),
            "{report:?}"
        );
    }
    assert_eq!(out.reports.len(), whole.reports.len());
    for (a, b) in out.reports.iter().zip(&whole.reports) {
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(a).unwrap(),
            serde_json::from_str(b).unwrap(),
        );
        assert_eq!(a["id"], b["id"]);
        assert_eq!(a["rule"], b["rule"]);
        assert_eq!(a["explanation"]["kind"], b["explanation"]["kind"]);
    }
}

const EVENT: &str = r#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"web-1.ev1","namespace":"shop","uid":"ev-web-1-backoff","creationTimestamp":"2026-01-10T10:00:00Z"},"involvedObject":{"kind":"Pod","name":"web-1","namespace":"shop"},"reason":"BackOff","message":"Back-off restarting failed container app in pod web-1","source":{"component":"kubelet","host":"node-a"},"firstTimestamp":"2026-01-10T10:00:00Z","lastTimestamp":"2026-01-10T10:02:00Z","count":4,"type":"Warning"}"#;
const ALERTS: &str = r#"{"version":"4","status":"firing","receiver":"epicenter","groupKey":"{}:{alertname=\"KubePodCrashLooping\"}","alerts":[{"status":"firing","labels":{"alertname":"KubePodCrashLooping","namespace":"shop","pod":"web-1","container":"app","severity":"warning"},"annotations":{"summary":"Pod is crash looping."},"startsAt":"2026-01-10T10:01:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"a1b2c3d4"}]}"#;

#[test]
fn a_relisted_event_and_a_redelivered_alert_body_after_restore_are_duplicates() {
    let rules = compile_pack(&pack_sources());
    let mut p = Pipeline::new(rules, EngineConfig::default());
    p.feed(0, EVENT);
    p.feed(1, ALERTS);
    let signals = p.engine.stats().signals;
    p.checkpoint();
    let decode = |d: &mut Decoder, line: &str| {
        let mut out = Vec::new();
        d.decode(line, Origin::default(), &mut out).unwrap()
    };
    let t = |s: &str| EventTime::parse_rfc3339(s).unwrap();
    assert_eq!(
        decode(&mut p.decoder, EVENT),
        Decoded::Duplicate {
            time: t("2026-01-10T10:02:00Z")
        }
    );
    assert_eq!(
        decode(&mut p.decoder, ALERTS),
        Decoded::Duplicate {
            time: t("2026-01-10T10:01:00Z")
        }
    );
    // Through the pipeline: no new signal.
    p.feed(2, EVENT);
    p.feed(3, ALERTS);
    assert_eq!(p.engine.stats().signals, signals);
    // A decoder that forgot would have taken both for new.
    let mut fresh = Decoder::default();
    assert_eq!(decode(&mut fresh, EVENT), Decoded::Events(1));
    assert_eq!(decode(&mut fresh, ALERTS), Decoded::Events(1));
}

/// A small pack of its own for the golden checkpoint, so that edits of the
/// shipped pack do not change it.
const GOLDEN_PACK: &str = r#"
signals:
  - id: plugin-crashloop
    match: {source: pod, reason: [CrashLoopBackOff]}
    summary: '{container} on {node} is crash-looping'
  - id: driver-missing
    match:
      source: k8s-event
      reason: [FailedMount]
      message: 'driver name (?P<driver>[A-Za-z0-9._-]+) not found'
  - id: pod-pending
    match: {source: pod, reason: [Pending]}
    state: true
  - id: pod-scheduled
    match: {source: k8s-event, reason: [Scheduled]}
correlations:
  - id: plugin-down
    cause: {signals: [plugin-crashloop], group_by: workload, root: workload}
    effects: [{signals: [driver-missing], join: [node]}]
    title: 'driver {driver} down on {node_names}'
absences:
  - id: stall
    when: {signals: [pod-pending], min_entities: 2, for: 5m}
    absent: [pod-scheduled]
    root: {kind: Component, namespace: kube-system, name: kube-scheduler}
    title: '{affected} pods pending'
"#;

fn golden_rules() -> Arc<RuleSet> {
    compile_pack(&[RuleSource {
        name: "golden.yaml".into(),
        text: GOLDEN_PACK.into(),
    }])
}

/// The state after `lines` lines of the example, as bytes.
fn state_bytes(rules: &Arc<RuleSet>, lines: usize) -> (Vec<u8>, Vec<u8>) {
    let s = example();
    let mut p = Pipeline::new(rules.clone(), config_for(&s));
    for (n, line) in s.lines.iter().enumerate().take(lines) {
        p.feed(n, line);
    }
    (
        p.engine.snapshot().to_bytes().unwrap(),
        p.decoder.snapshot().to_bytes().unwrap(),
    )
}

#[test]
fn damaged_bytes_and_other_versions_are_errors() {
    let (engine, decoder) = state_bytes(&compile_pack(&pack_sources()), 400);
    let e = |b: &[u8]| EngineSnapshot::from_bytes(b).unwrap_err();
    let d = |b: &[u8]| DecoderSnapshot::from_bytes(b).unwrap_err();
    assert!(matches!(e(&[]), FormatError::NotACheckpoint { .. }));
    assert!(matches!(
        d(b"not a checkpoint at all, clearly"),
        FormatError::NotACheckpoint { .. }
    ));
    assert!(matches!(e(&decoder), FormatError::WrongKind { .. }));
    assert!(matches!(d(&engine), FormatError::WrongKind { .. }));
    let mut future = engine.clone();
    future[6..8].copy_from_slice(&(correlate::engine::FORMAT_VERSION + 1).to_le_bytes());
    let err = e(&future);
    assert!(matches!(err, FormatError::UnsupportedVersion { .. }));
    assert!(err.to_string().contains("not supported"), "{err}");
    let mut future = decoder.clone();
    future[6..8].copy_from_slice(&(ingest::decode::FORMAT_VERSION + 1).to_le_bytes());
    assert!(matches!(d(&future), FormatError::UnsupportedVersion { .. }));
    for len in [engine.len() - 1, engine.len() / 2, 21, 19] {
        assert!(EngineSnapshot::from_bytes(&engine[..len]).is_err());
    }
    let mut longer = engine.clone();
    longer.push(0);
    assert!(matches!(e(&longer), FormatError::Length { .. }));
    // A flipped bit anywhere in the payload is caught by the checksum.
    for at in (20..engine.len()).step_by(engine.len() / 97 + 1) {
        let mut bad = engine.clone();
        bad[at] ^= 0x10;
        assert!(matches!(e(&bad), FormatError::Checksum { .. }), "byte {at}");
    }
    for at in (20..decoder.len()).step_by(decoder.len() / 97 + 1) {
        let mut bad = decoder.clone();
        bad[at] ^= 0x01;
        assert!(matches!(d(&bad), FormatError::Checksum { .. }), "byte {at}");
    }
}

/// Checkpoints written by this format version stay readable, and say the
/// same thing when written again.
#[test]
fn checkpoints_of_this_format_version_stay_readable() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/checkpoint");
    let rules = golden_rules();
    let (engine, decoder) = state_bytes(&rules, usize::MAX);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("engine.bin"), &engine).unwrap();
        std::fs::write(dir.join("decoder.bin"), &decoder).unwrap();
    }
    let hint = "a snapshot type changed: bump its FORMAT_VERSION, then UPDATE_GOLDEN=1 \
                cargo test -p ingest --test checkpoint";
    let golden_engine = std::fs::read(dir.join("engine.bin")).unwrap();
    let golden_decoder = std::fs::read(dir.join("decoder.bin")).unwrap();
    let snap = EngineSnapshot::from_bytes(&golden_engine).unwrap_or_else(|e| panic!("{e}: {hint}"));
    let (restored, report) = Engine::restore(rules, EngineConfig::default(), snap).unwrap();
    assert!(report.is_clean(), "{report:?}: {hint}");
    let dsnap =
        DecoderSnapshot::from_bytes(&golden_decoder).unwrap_or_else(|e| panic!("{e}: {hint}"));
    let restored_decoder = Decoder::restore(Limits::default(), dsnap);
    assert!(
        restored.snapshot().to_bytes().unwrap() == golden_engine && engine == golden_engine,
        "engine checkpoint bytes changed: {hint}"
    );
    assert!(
        restored_decoder.snapshot().to_bytes().unwrap() == golden_decoder
            && decoder == golden_decoder,
        "decoder checkpoint bytes changed: {hint}"
    );
}

/// An engine checkpoint of format 1 (before the object graph) is still
/// read: the same state, with an empty graph that records fill again.
#[test]
fn engine_checkpoints_of_format_1_are_still_read() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/checkpoint");
    let rules = golden_rules();
    let v1 = std::fs::read(dir.join("engine-v1.bin")).unwrap();
    let snap = EngineSnapshot::from_bytes(&v1).expect("format 1 reads");
    let (restored, report) = Engine::restore(rules.clone(), EngineConfig::default(), snap).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(restored.gauges().graph.edges, 0);
    // The same incidents as the engine that wrote today's golden file
    // (format 1 kept the effects' attributes with the root's: those stay as
    // they were, so they are not compared).
    let v2 = std::fs::read(dir.join("engine.bin")).unwrap();
    let (now, _) = Engine::restore(
        rules,
        EngineConfig::default(),
        EngineSnapshot::from_bytes(&v2).unwrap(),
    )
    .unwrap();
    let reports = |e: &Engine| -> Vec<String> {
        e.incidents()
            .into_iter()
            .map(|i| {
                let r = correlate::IncidentReport::new(i);
                let affected: Vec<String> =
                    r.affected.iter().map(|a| a.entity.name.clone()).collect();
                format!(
                    "{} {} {} {:?} {affected:?}",
                    r.id, r.rule, r.title, r.status
                )
            })
            .collect()
    };
    assert_eq!(reports(&restored), reports(&now));
    assert!(!reports(&now).is_empty());
}

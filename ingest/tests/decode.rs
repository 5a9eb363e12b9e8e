//! Data-driven decoder tests (one test binary).
//!
//! - `cases/*.ndjson`: every line is decoded by one fresh [`Decoder`] per
//!   file; the outcome of each line (its events, or duplicate / unchanged /
//!   blank, or the error) is rendered as one JSON line, followed by a last
//!   line with the decoder's stats, and compared with `*.expected.ndjson`.
//!   `UPDATE_GOLDEN=1 cargo test -p ingest --test decode` rewrites the
//!   goldens: read the diff, they are the spec.
//! - Every line of the acceptance scenarios (`/work/shared/scenarios`, or
//!   `EPICENTER_SCENARIOS`) decodes without a panic, the only errors are the
//!   journal records the contract does not ingest, and every source yields
//!   events.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use correlate::{Event, Origin, Source};
use ingest::{Decoded, Decoder, Limits, Lines};
use serde_json::{Value, json};

fn render_event(e: &Event<'_>) -> Value {
    let owners: Vec<String> = e
        .entity
        .owners
        .iter()
        .map(|o| format!("{}/{}", o.kind, o.name))
        .collect();
    let labels: serde_json::Map<String, Value> = e
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    // A field stated more than once (an object's relations) is a list.
    let mut fields: serde_json::Map<String, Value> = serde_json::Map::new();
    for (k, v) in &e.fields {
        match fields.get_mut(*k) {
            None => {
                fields.insert(k.to_string(), json!(v));
            }
            Some(Value::Array(vs)) => vs.push(json!(v)),
            Some(one) => *one = json!([one.clone(), v]),
        }
    }
    let mut out = json!({
        "time": e.time.to_string(),
        "source": e.source.as_str(),
        "entity": {
            "kind": e.entity.kind,
            "namespace": e.entity.namespace,
            "name": e.entity.name,
            "uid": e.entity.uid,
            "node": e.entity.node,
            "owners": owners,
        },
        "reason": e.reason,
        "message": e.message,
        "severity": e.severity.as_str(),
        "fields": fields,
    });
    let obj = out.as_object_mut().unwrap();
    if let Some(c) = &e.container {
        obj.insert("container".into(), json!(c));
    }
    if !labels.is_empty() {
        obj.insert("labels".into(), Value::Object(labels));
    }
    if let Some(o) = e.occurrence {
        obj.insert("occurrence".into(), json!(format!("{o:016x}")));
    }
    out
}

fn render(line: u64, result: &ingest::Result<Decoded>, events: &[Event<'_>]) -> Value {
    match result {
        Ok(Decoded::Events(n)) => {
            assert_eq!(
                *n,
                events.len(),
                "line {line}: Events(n) must count the pushed events"
            );
            json!({"line": line, "events": events.iter().map(render_event).collect::<Vec<_>>()})
        }
        Ok(Decoded::Duplicate { time }) => {
            json!({"line": line, "outcome": "duplicate", "time": time.to_string()})
        }
        Ok(Decoded::Unchanged { time }) => {
            json!({"line": line, "outcome": "unchanged", "time": time.to_string()})
        }
        Ok(Decoded::Blank) => json!({"line": line, "outcome": "blank"}),
        Err(e) => {
            assert!(events.is_empty(), "line {line}: an error must push nothing");
            json!({"line": line, "error": e.to_string()})
        }
    }
}

fn decode_case(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let mut decoder = Decoder::new(Limits::default());
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let n = i as u64 + 1;
        let mut events = Vec::new();
        let result = decoder.decode(line, Origin { file: 0, line: n }, &mut events);
        for e in &events {
            assert_eq!(e.origin.line, n);
        }
        let mut rendered = render(n, &result, &events);
        let rejected: Vec<Value> = decoder
            .take_rejected()
            .into_iter()
            .map(|r| json!({"fingerprint": r.fingerprint, "error": r.error.to_string()}))
            .collect();
        if !rejected.is_empty() {
            rendered
                .as_object_mut()
                .unwrap()
                .insert("rejected".into(), Value::Array(rejected));
        }
        out.push_str(&rendered.to_string());
        out.push('\n');
    }
    out.push_str(&json!({ "stats": decoder.stats() }).to_string());
    out.push('\n');
    out
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

#[test]
fn golden_cases() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut inputs: Vec<PathBuf> = fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".ndjson") && !name.ends_with(".expected.ndjson")
        })
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 8,
        "expected the case files, found {inputs:?}"
    );

    let mut failures = Vec::new();
    for input in &inputs {
        let got = decode_case(input);
        let expected_path = input.with_extension("expected.ndjson");
        if update {
            fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!(
                "{} is missing: run with UPDATE_GOLDEN=1",
                expected_path.display()
            )
        });
        if got != expected {
            let (i, (g, e)) = got
                .lines()
                .zip(expected.lines().chain(std::iter::repeat("<end of file>")))
                .enumerate()
                .find(|(_, (g, e))| g != e)
                .unwrap_or((0, ("<line counts differ>", "")));
            failures.push(format!(
                "{}: output line {}\n  got:      {g}\n  expected: {e}",
                input.file_name().unwrap().to_string_lossy(),
                i + 1
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatch (UPDATE_GOLDEN=1 to accept):\n{}",
        failures.join("\n")
    );
}

/// Decodes one scenario stream: (events per source, errors as (line, message)).
fn decode_stream(path: &Path) -> (BTreeMap<&'static str, usize>, Vec<(u64, String)>) {
    let file = fs::File::open(path).unwrap();
    let mut lines = Lines::new(std::io::BufReader::new(file));
    let mut decoder = Decoder::default();
    let mut per_source = BTreeMap::new();
    let mut errors = Vec::new();
    while let Some(next) = lines.next_line() {
        let (n, line) = next.unwrap();
        let mut events = Vec::new();
        if let Err(e) = decoder.decode(line, Origin { file: 0, line: n }, &mut events) {
            errors.push((n, e.to_string()));
        }
        for e in &events {
            *per_source.entry(e.source.as_str()).or_default() += 1;
        }
    }
    (per_source, errors)
}

#[test]
fn every_scenario_line_decodes() {
    let dir = std::env::var_os("EPICENTER_SCENARIOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/scenarios"));
    let Ok(entries) = fs::read_dir(&dir) else {
        println!("no scenarios at {}: skipped", dir.display());
        return;
    };
    let mut scenarios: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path().join("input.ndjson"))
        .filter(|p| p.exists())
        .collect();
    scenarios.sort();
    assert!(scenarios.len() >= 6, "found {scenarios:?}");
    for input in &scenarios {
        let name = input
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let (per_source, errors) = decode_stream(input);
        println!("{name}: {per_source:?}, {} errors", errors.len());
        // The shared streams carry no object of the graph's other kinds.
        for source in Source::ALL.into_iter().filter(|s| *s != Source::Object) {
            assert!(
                per_source.get(source.as_str()).copied().unwrap_or(0) > 0,
                "{name}: no {source} events"
            );
        }
        if name == "simultaneous-reboot-scheduler-stall" {
            assert_eq!(errors.len(), 11, "{name}: {errors:?}");
            for (n, e) in &errors {
                assert!(
                    e.starts_with("unrecognised record: keys [_HOSTNAME, "),
                    "{name}:{n}: unexpected error {e}"
                );
            }
        } else {
            assert!(errors.is_empty(), "{name}: {errors:?}");
        }
    }
}

#[test]
fn tables_stay_bounded_and_count_evictions() {
    let limits = Limits {
        max_objects: 4,
        max_occurrences: 4,
        ..Limits::default()
    };
    let mut decoder = Decoder::new(limits);
    let pod = |i: u32| {
        format!(
            r#"{{"type":"ADDED","object":{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p{i}","namespace":"n","uid":"u{i}"}},"spec":{{"nodeName":"k8s-node1"}},"status":{{"phase":"Running"}}}},"observedAt":"2026-03-16T08:00:00Z"}}"#
        )
    };
    for i in 0..20 {
        let line = pod(i);
        let mut out = Vec::new();
        assert_eq!(
            decoder.decode(&line, Origin::default(), &mut out),
            Ok(Decoded::Events(1))
        );
    }
    assert!(decoder.topology().len() <= 4);
    assert!(decoder.stats().evictions > 0);
    // p0 was evicted: seen again, it is a first sight again, not Unchanged.
    let line = pod(0);
    let mut out = Vec::new();
    assert_eq!(
        decoder.decode(&line, Origin::default(), &mut out),
        Ok(Decoded::Events(1))
    );
    // p0 was just refreshed: now it is a heartbeat.
    assert!(matches!(
        decoder.decode(&line, Origin::default(), &mut out),
        Ok(Decoded::Unchanged { .. })
    ));
}

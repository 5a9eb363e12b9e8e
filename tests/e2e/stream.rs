//! `epicenter replay --stream`: an incident is written as soon as it is
//! final, before the input ends, and the lines are the ones a plain replay
//! prints at the end.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use regex::Regex;
use serde_json::Value;

use crate::support::{PATIENCE, bin, every_stream, root};

/// `replay [--stream]` of `input`, with the shipped pack.
fn replay(input: &Path, stream: bool) -> Vec<u8> {
    run_replay(input, if stream { &["--stream"] } else { &[] }).stdout
}

fn run_replay(input: &Path, flags: &[&str]) -> std::process::Output {
    let out = bin()
        .args(["replay", "--rules"])
        .arg(root().join("rules"))
        .args(flags)
        .arg(input)
        .output()
        .expect("run epicenter");
    assert!(out.status.success(), "{}: {out:?}", input.display());
    out
}

fn sorted_lines(out: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(out)
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

/// The same records, `days` later: every date of 1970 or after moves (the
/// zero time Alertmanager writes for "no end" stays), and every uid gets a
/// suffix, so a copy is new objects rather than repeats of the first.
fn shifted(text: &str, days: i64, copy: usize) -> String {
    let date = Regex::new(r"(\d{4})-(\d{2})-(\d{2})T").unwrap();
    let uid = Regex::new(r#""uid":"([^"]*)""#).unwrap();
    let text = date.replace_all(text, |c: &regex::Captures<'_>| {
        let d: jiff::civil::Date = c[0].trim_end_matches('T').parse().unwrap();
        if d.year() < 1970 {
            return c[0].to_owned();
        }
        let moved = d.checked_add(jiff::Span::new().days(days)).unwrap();
        format!("{moved}T")
    });
    uid.replace_all(&text, |c: &regex::Captures<'_>| {
        format!(r#""uid":"{}-{copy}""#, &c[1])
    })
    .into_owned()
}

/// Several cascades one after another, weeks apart: the earlier ones
/// resolve (quiet) while the later ones are read. Each input's dates are
/// moved so that it starts after the previous one ended.
fn one_after_another(inputs: &[PathBuf]) -> String {
    let date = Regex::new(r"\d{4}-\d{2}-\d{2}T").unwrap();
    let mut out = String::new();
    let mut next: Option<jiff::civil::Date> = None;
    for (i, path) in inputs.iter().enumerate() {
        let text = std::fs::read_to_string(path).unwrap();
        let dates: Vec<jiff::civil::Date> = date
            .find_iter(&text)
            .filter_map(|m| m.as_str().trim_end_matches('T').parse().ok())
            .filter(|d: &jiff::civil::Date| d.year() >= 1970)
            .collect();
        let (first, last) = (dates.iter().min().unwrap(), dates.iter().max().unwrap());
        let start = next.unwrap_or(*first);
        let days = (start - *first).get_days() as i64;
        out.push_str(&shifted(&text, days, i));
        if !out.ends_with('\n') {
            out.push('\n');
        }
        let end = last.checked_add(jiff::Span::new().days(days)).unwrap();
        next = Some(end.checked_add(jiff::Span::new().days(14)).unwrap());
    }
    out
}

/// Every cascade the repository holds, one after another: the streamed
/// lines are the plain ones, in the order the incidents settled.
#[test]
fn streamed_lines_are_the_lines_of_a_plain_replay() {
    let dir = tempfile::tempdir().unwrap();
    let week = dir.path().join("one-after-another.ndjson");
    std::fs::write(&week, one_after_another(&every_stream())).unwrap();
    let plain = replay(&week, false);
    let run = run_replay(&week, &["--stream", "--stats"]);
    let streamed = run.stdout;
    // What was written and settled left the engine as the stream moved
    // on: a replay that follows a recording for weeks stays small.
    let stats = String::from_utf8_lossy(&run.stderr);
    let let_go: u64 = stats
        .split(" settled incidents and candidates were let go")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no incident was let go: {stats}"));
    assert!(let_go >= 10, "{stats}");
    assert_eq!(
        sorted_lines(&plain),
        sorted_lines(&streamed),
        "--stream wrote other lines"
    );
    // Many incidents resolved long before the end, so they were written
    // before the ones that came later, and every incident that resolved was
    // written before every one still firing at the end.
    let incidents: Vec<Value> = String::from_utf8_lossy(&streamed)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let resolved = incidents
        .iter()
        .filter(|i| i["status"] == "resolved")
        .count();
    assert!(resolved >= 10, "only {resolved} incidents resolved");
    assert!(
        incidents[..resolved]
            .iter()
            .all(|i| i["status"] == "resolved"),
        "a firing incident came before a resolved one"
    );
    assert!(
        incidents[resolved..]
            .iter()
            .all(|i| i["status"] == "firing"),
        "the incidents still firing come last"
    );
}

/// The point of streaming: with the input still open, the incidents of the
/// first cascade arrive once a later record moved event time past their
/// resolution; the rest follow when the input ends.
#[test]
fn a_resolved_incident_is_written_while_the_input_is_still_open() {
    let example = root().join("examples/nfs-csi-cascade.ndjson");
    let text = one_after_another(&[example.clone(), example]);
    let lines: Vec<&str> = text.lines().collect();
    let half = lines.len() / 2;
    let second_starts = first_date(lines[half]);

    let mut child = Command::new(env!("CARGO_BIN_EXE_epicenter"))
        .args(["replay", "--stream", "--rules"])
        .arg(root().join("rules"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run epicenter");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // The first copy and the second: the second's records move event time
    // weeks past the first's, which resolves.
    for l in &lines {
        writeln!(stdin, "{l}").unwrap();
    }
    stdin.flush().unwrap();
    let first = rx
        .recv_timeout(PATIENCE)
        .expect("no incident written while the input was open");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["status"], "resolved", "{first}");
    assert!(
        first["last_seen"].as_str().unwrap() < second_starts.as_str(),
        "the first incident written is of the first cascade: {first}"
    );

    drop(stdin);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let mut streamed = vec![first.to_string()];
    streamed.extend(rx.try_iter());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twice.ndjson");
    std::fs::write(&file, &text).unwrap();
    let plain = replay(&file, false);
    assert_eq!(
        replay(&file, true),
        replay(&file, true),
        "two streamed runs differ"
    );
    let mut plain: Vec<Value> = String::from_utf8_lossy(&plain)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut streamed: Vec<Value> = streamed
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_id = |a: &Value, b: &Value| a["id"].as_str().cmp(&b["id"].as_str());
    plain.sort_by(by_id);
    streamed.sort_by(by_id);
    assert_eq!(plain, streamed);
}

/// The first date-time of a line (RFC 3339 text compares in time order
/// within one format).
fn first_date(line: &str) -> String {
    let re = Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}").unwrap();
    re.find_iter(line)
        .map(|m| m.as_str().to_owned())
        .find(|d| !d.starts_with("0001"))
        .unwrap()
}

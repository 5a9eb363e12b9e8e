//! The incident history end to end: changes built from real replay output
//! (`fixtures/history/changes.ndjson`, see `make_changes.py` there) are
//! written into a store in a temporary directory, then read back with SQL.
//!
//! - `cases/*.sql` run against the store and must print `cases/*.csv`
//!   (answers computed by the fixture script from the changes, not by the
//!   store), before and after compaction;
//! - crashes are simulated at every step of a flush and of a compaction
//!   (the writer stops where a crash would and is dropped, then the store is
//!   reopened): every row stays visible exactly once;
//! - `refused.tsv` lists statements the SQL guard must refuse, with what
//!   the refusal must say.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use correlate::EventTime;
use sinks::change::{ChangeKind, IncidentChange};
use sinks::history::{
    CompactStep, CompactionPolicy, FlushStep, Format, HistoryWriter, QueryError, QueryLimits, Sql,
    Table,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/history")
}

fn changes() -> Vec<IncidentChange> {
    let text = std::fs::read_to_string(fixtures().join("changes.ndjson")).unwrap();
    text.lines()
        .enumerate()
        .map(|(n, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("changes.ndjson:{}: {e}", n + 1))
        })
        .collect()
}

fn sources() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(fixtures().join("signal_sources.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// When a change was recorded: as the fixture script says.
fn recorded_at(c: &IncidentChange) -> EventTime {
    match (c.change, c.incident.resolved_at) {
        (ChangeKind::Resolved, Some(t)) => t,
        _ => c.incident.last_seen,
    }
}

fn open(dir: &Path) -> HistoryWriter {
    let mut w = HistoryWriter::open(dir, sources()).unwrap();
    w.set_compaction(CompactionPolicy::manual());
    w
}

/// Appends `changes[range]` (line n has outbox seq n + 1), flushing every
/// `every` changes.
fn write(
    w: &mut HistoryWriter,
    all: &[IncidentChange],
    range: std::ops::Range<usize>,
    every: usize,
) {
    for i in range {
        w.append(&all[i], recorded_at(&all[i]), Some(i as u64 + 1));
        if (i + 1) % every == 0 {
            w.flush().unwrap();
        }
    }
    w.flush().unwrap();
}

fn store(every: usize) -> (tempfile::TempDir, HistoryWriter) {
    let dir = tempfile::tempdir().unwrap();
    let all = changes();
    let mut w = open(dir.path());
    write(&mut w, &all, 0..all.len(), every);
    (dir, w)
}

async fn sql(dir: &Path) -> Sql {
    Sql::open(dir, QueryLimits::default()).await.unwrap()
}

async fn csv(s: &Sql, query: &str) -> String {
    s.query(query, Format::Csv)
        .await
        .unwrap_or_else(|e| panic!("{query}\n{e}"))
}

/// Every row of every table, in a canonical order: what "no row lost, none
/// twice" compares.
async fn everything(dir: &Path) -> String {
    let s = sql(dir).await;
    let mut out = String::new();
    for q in [
        "SELECT * FROM incidents ORDER BY ordinal",
        "SELECT * FROM incident_entities ORDER BY ordinal, role DESC, entity_kind, namespace, name",
        "SELECT * FROM incident_signals ORDER BY ordinal, entity, signal",
    ] {
        out.push_str(&csv(&s, q).await);
    }
    // incidents_latest is what its definition over incidents says, whatever
    // flushes, compactions and crashes wrote it.
    let defined = csv(
        &s,
        "SELECT * EXCLUDE (newest) FROM (SELECT *, row_number() OVER \
           (PARTITION BY id ORDER BY version DESC, ordinal DESC) AS newest FROM incidents) \
         WHERE newest = 1 ORDER BY id",
    )
    .await;
    let stored = csv(&s, "SELECT * FROM incidents_latest ORDER BY id").await;
    assert_eq!(stored, defined, "incidents_latest in {}", dir.display());
    out.push_str(&stored);
    out
}

fn cases() -> Vec<(String, String, String)> {
    let dir = fixtures().join("cases");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "the cases are missing");
    names
        .into_iter()
        .map(|p| {
            let sql = std::fs::read_to_string(&p).unwrap();
            let expected = std::fs::read_to_string(p.with_extension("csv")).unwrap();
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            (name, sql, expected)
        })
        .collect()
}

async fn check_cases(dir: &Path, when: &str) {
    let s = sql(dir).await;
    let mut failed = Vec::new();
    for (name, query, expected) in cases() {
        let got = csv(&s, &query).await;
        if got != expected {
            failed.push(format!(
                "{name} ({when}):\n{query}\nexpected:\n{expected}\ngot:\n{got}"
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_queries_answer_as_expected_before_and_after_compaction() {
    let (dir, mut w) = store(5);
    check_cases(dir.path(), "small files").await;
    let days = days(dir.path());
    assert!(days.len() >= 5, "{days:?}");
    for d in &days {
        w.compact_day(d).unwrap();
    }
    check_cases(dir.path(), "compacted").await;
}

fn days(dir: &Path) -> Vec<String> {
    let mut d: Vec<String> = std::fs::read_dir(dir.join("incidents"))
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("day="))
                .map(str::to_string)
        })
        .collect();
    d.sort();
    d
}

#[tokio::test]
async fn every_refusal_is_refused_with_what_it_refused() {
    let (dir, _w) = store(10);
    let s = sql(dir.path()).await;
    let text = std::fs::read_to_string(fixtures().join("refused.tsv")).unwrap();
    let mut checked = 0;
    let mut failed = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (statement, expected) = line.split_once('\t').unwrap();
        match s.query(statement, Format::Csv).await {
            Err(QueryError::Refused(why)) if why.contains(expected) => {}
            other => failed.push(format!(
                "{statement}\n  expected refused: {expected}\n  got {other:?}"
            )),
        }
        checked += 1;
    }
    assert!(checked >= 40, "{checked}");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // Nothing was written anywhere a refused statement named.
    assert!(!Path::new("/tmp/out.csv").exists() && !Path::new("/tmp/x.csv").exists());
    // The store is intact and still answers.
    assert_eq!(
        csv(&s, "SELECT count(*) AS n FROM incidents").await,
        "n\n51\n"
    );
}

#[tokio::test]
async fn read_only_queries_that_are_allowed() {
    let (dir, _w) = store(10);
    let s = sql(dir.path()).await;
    for (q, expected) in [
        ("VALUES (1, 'a')", "column1,column2\n1,a\n"),
        (
            "WITH x AS (SELECT 1 AS a) SELECT a + 1 AS b FROM x",
            "b\n2\n",
        ),
        (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
            "table_name\nincident_documents\nincident_entities\nincident_signals\nincidents\nincidents_latest\n",
        ),
        (
            "SELECT count(*) AS n FROM incidents WHERE id IN (SELECT id FROM incidents_latest WHERE change = 'merged')",
            "n\n14\n",
        ),
    ] {
        assert_eq!(csv(&s, q).await, expected, "{q}");
    }
    let explained = csv(
        &s,
        "EXPLAIN SELECT * FROM incidents WHERE day = '2026-04-19'",
    )
    .await;
    assert!(explained.contains("physical_plan"), "{explained}");
    let analyzed = csv(
        &s,
        "EXPLAIN ANALYZE SELECT id FROM incidents WHERE day = '2026-04-19'",
    )
    .await;
    assert!(analyzed.contains("output_rows"), "{analyzed}");
}

/// The files a plan reads, from the `DataSourceExec` lines of EXPLAIN.
fn files_read(plan: &str) -> Vec<String> {
    let mut files: Vec<String> = plan
        .lines()
        .filter(|l| l.contains("DataSourceExec"))
        .flat_map(|l| {
            l.split(['[', ']', ',', ' '])
                .filter(|w| w.ends_with(".parquet"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_day_filter_reads_only_that_day() {
    let (dir, _w) = store(5);
    let s = sql(dir.path()).await;
    let all = files_read(&s.explain("SELECT id FROM incidents").await.unwrap());
    let one = files_read(
        &s.explain("SELECT id FROM incidents WHERE day = '2026-04-19'")
            .await
            .unwrap(),
    );
    assert!(all.len() > one.len(), "{all:?}");
    assert!(!one.is_empty());
    assert!(
        one.iter()
            .all(|f| f.starts_with("incidents/day=2026-04-19/")),
        "{one:?}"
    );
    // incidents_latest too: one file, of the day asked for.
    let latest = files_read(
        &s.explain("SELECT rule FROM incidents_latest WHERE day >= '2026-06-01'")
            .await
            .unwrap(),
    );
    assert_eq!(latest.len(), 1, "{latest:?}");
    assert!(
        latest[0].starts_with("incidents_latest/day=2026-06-04/"),
        "{latest:?}"
    );
    // And both sides of a join on day.
    let joined = files_read(
        &s.explain(
            "SELECT e.name FROM incidents_latest l JOIN incident_entities e \
               ON e.day = l.day AND e.ordinal = l.ordinal WHERE l.day = '2026-03-16'",
        )
        .await
        .unwrap(),
    );
    assert!(joined.iter().any(|f| f.starts_with("incident_entities/")));
    assert!(
        joined.iter().all(|f| f.contains("/day=2026-03-16/")),
        "{joined:?}"
    );
}

#[tokio::test]
async fn last_seq_survives_reopen_and_redeliveries_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let all = changes();
    let mut w = open(dir.path());
    assert_eq!(w.last_seq(), None);
    write(&mut w, &all, 0..30, 7);
    assert_eq!(w.last_seq(), Some(30));
    // Buffered is not stored.
    w.append(&all[30], recorded_at(&all[30]), Some(31));
    assert_eq!(w.last_seq(), Some(30));
    assert_eq!(w.buffered(), 1);
    drop(w);

    let mut w = open(dir.path());
    assert_eq!(w.last_seq(), Some(30));
    assert_eq!(w.buffered(), 0);
    // The outbox resends from its last acknowledged change: the writer
    // skips what it stores already.
    for (i, c) in all.iter().enumerate().skip(20) {
        let fresh = w.append(c, recorded_at(c), Some(i as u64 + 1));
        assert_eq!(fresh, i >= 30, "seq {}", i + 1);
    }
    assert_eq!(w.skipped(), 10);
    w.flush().unwrap();
    assert_eq!(w.last_seq(), Some(all.len() as u64));
    drop(w);
    assert_eq!(open(dir.path()).last_seq(), Some(all.len() as u64));
    let (reference, _w) = store(7);
    assert_eq!(
        everything(dir.path()).await,
        everything(reference.path()).await
    );
}

#[tokio::test]
async fn changes_without_seq_leave_last_seq_alone() {
    let dir = tempfile::tempdir().unwrap();
    let all = changes();
    let mut w = open(dir.path());
    for c in &all[..5] {
        assert!(w.append(c, recorded_at(c), None));
    }
    let stats = w.flush().unwrap();
    assert_eq!(stats.versions, 5);
    assert!(
        stats.files >= 3 && stats.rows > 5 && stats.bytes > 0,
        "{stats:?}"
    );
    assert_eq!(w.last_seq(), None);
    drop(w);
    assert_eq!(open(dir.path()).last_seq(), None);
}

#[tokio::test]
async fn leftover_temporary_and_uncommitted_files_are_invisible_then_removed() {
    let (dir, w) = store(5);
    drop(w);
    let expected = everything(dir.path()).await;
    let day = dir.path().join("incidents/day=2026-04-19");
    let real = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    // A half-written file under a temporary name, a whole one too, and a
    // whole file of a batch that never committed (crash before HEAD).
    std::fs::write(
        day.join(".000000000099-000000000099-l0.parquet.tmp"),
        b"PAR1 half",
    )
    .unwrap();
    std::fs::copy(&real, day.join(".000000000098-000000000098-l0.parquet.tmp")).unwrap();
    let uncommitted = day.join("000000000099-000000000099-l0.parquet");
    std::fs::copy(&real, &uncommitted).unwrap();
    // And something that is not ours at all.
    std::fs::write(day.join("notes.txt"), b"hello").unwrap();
    assert_eq!(everything(dir.path()).await, expected);

    let w = open(dir.path());
    let left: Vec<String> = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(!left.iter().any(|n| n.ends_with(".tmp")), "{left:?}");
    assert!(!uncommitted.exists());
    assert!(left.contains(&"notes.txt".to_string()));
    drop(w);
    assert_eq!(everything(dir.path()).await, expected);
}

#[tokio::test]
async fn a_flush_interrupted_at_any_step_loses_nothing_and_shows_nothing_twice() {
    let all = changes();
    let (reference, _r) = store(9);
    let expected = everything(reference.path()).await;
    for step in [FlushStep::Written, FlushStep::Renamed] {
        let dir = tempfile::tempdir().unwrap();
        let mut w = open(dir.path());
        write(&mut w, &all, 0..25, 9);
        let committed = everything(dir.path()).await;
        for (i, c) in all.iter().enumerate().skip(25) {
            w.append(c, recorded_at(c), Some(i as u64 + 1));
        }
        w.flush_until(step).unwrap();
        // The crash: the writer goes away where it stopped.
        drop(w);
        assert_eq!(
            everything(dir.path()).await,
            committed,
            "{step:?}: before reopening"
        );
        let mut w = open(dir.path());
        assert_eq!(w.last_seq(), Some(25), "{step:?}");
        assert_eq!(
            everything(dir.path()).await,
            committed,
            "{step:?}: reopened"
        );
        // The outbox redelivers everything after last_seq.
        let from = w.last_seq().unwrap() as usize;
        for (i, c) in all.iter().enumerate().skip(from) {
            assert!(w.append(c, recorded_at(c), Some(i as u64 + 1)));
        }
        w.flush().unwrap();
        drop(w);
        assert_eq!(
            everything(dir.path()).await,
            expected,
            "{step:?}: after redelivery"
        );
    }
}

#[tokio::test]
async fn compaction_keeps_every_row_exactly_once() {
    let (dir, mut w) = store(2);
    let expected = everything(dir.path()).await;
    let flushed = appended_files(dir.path()).len();
    // Tiers (fanout 8): days written in more than 8 flushes are merged.
    let stats = w.compact().unwrap();
    assert!(stats.merges > 0 && stats.files_in >= 8, "{stats:?}");
    assert_eq!(stats.removed, 0, "inputs stay for the grace period");
    assert_eq!(everything(dir.path()).await, expected);
    // A day at a time, whatever the policy.
    for d in days(dir.path()) {
        w.compact_day(&d).unwrap();
    }
    assert_eq!(everything(dir.path()).await, expected);
    assert!(appended_files(dir.path()).len() > flushed);
    // Past the grace period the superseded files go.
    w.set_compaction(CompactionPolicy {
        grace: Duration::ZERO,
        ..CompactionPolicy::manual()
    });
    let stats = w.compact().unwrap();
    assert!(stats.removed >= flushed, "{stats:?}");
    for (dir_name, files) in per_dir(dir.path()) {
        assert_eq!(files.len(), 1, "{dir_name}: {files:?}");
    }
    assert_eq!(everything(dir.path()).await, expected);
    drop(w);
    assert_eq!(everything(dir.path()).await, expected);
    assert_eq!(open(dir.path()).last_seq(), Some(changes().len() as u64));
}

#[tokio::test]
async fn a_compaction_interrupted_at_any_step_loses_nothing_and_shows_nothing_twice() {
    let (reference, _r) = store(2);
    let expected = everything(reference.path()).await;
    for step in [
        CompactStep::Written,
        CompactStep::Renamed,
        CompactStep::Committed,
    ] {
        let (dir, mut w) = store(2);
        let stats = w.compact_day_until("2026-06-04", step).unwrap();
        assert_eq!(
            stats.merges,
            // A merge per appended table once committed.
            if step == CompactStep::Committed {
                Table::APPENDED.len()
            } else {
                1
            },
            "{step:?}"
        );
        drop(w);
        assert_eq!(
            everything(dir.path()).await,
            expected,
            "{step:?}: after the crash"
        );
        let mut w = open(dir.path());
        assert_eq!(everything(dir.path()).await, expected, "{step:?}: reopened");
        w.set_compaction(CompactionPolicy {
            grace: Duration::ZERO,
            ..CompactionPolicy::manual()
        });
        w.compact_day("2026-06-04").unwrap();
        w.compact().unwrap();
        assert_eq!(
            everything(dir.path()).await,
            expected,
            "{step:?}: compacted again"
        );
        for (d, files) in per_dir(dir.path()) {
            if d.ends_with("day=2026-06-04") {
                assert_eq!(files.len(), 1, "{step:?} {d}: {files:?}");
            }
        }
        assert!(
            data_files(dir.path()).iter().all(|f| !f.ends_with(".tmp")),
            "{step:?}"
        );
    }
}

#[tokio::test]
async fn tiers_bound_the_files_of_a_day_written_in_small_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let all = changes();
    let mut w = HistoryWriter::open(dir.path(), sources()).unwrap();
    w.set_compaction(CompactionPolicy {
        fanout: 3,
        grace: Duration::ZERO,
        ..CompactionPolicy::default()
    });
    // One change per flush, the way a quiet serve writes.
    write(&mut w, &all, 0..all.len(), 1);
    let (reference, _r) = store(all.len());
    assert_eq!(
        everything(dir.path()).await,
        everything(reference.path()).await
    );
    // 51 flushes; with fanout 3 a day holds at most 2 files per level.
    for (d, files) in per_dir(dir.path()) {
        assert!(files.len() <= 6, "{d}: {} files: {files:?}", files.len());
    }
    let flushes = all.len();
    assert!(
        appended_files(dir.path()).len() < flushes,
        "{}",
        appended_files(dir.path()).len()
    );
}

/// Files of the tables compaction merges (`incidents_latest` has one per
/// day, replaced at each flush).
fn appended_files(dir: &Path) -> Vec<String> {
    per_dir(dir)
        .into_iter()
        .filter(|(d, _)| !d.starts_with("incidents_latest/"))
        .flat_map(|(_, files)| files)
        .collect()
}

fn data_files(dir: &Path) -> Vec<String> {
    per_dir(dir).into_values().flatten().collect()
}

/// Data file names per day directory, every table.
fn per_dir(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for table in [
        "incidents",
        "incident_entities",
        "incident_signals",
        "incidents_latest",
    ] {
        let Ok(days) = std::fs::read_dir(dir.join(table)) else {
            continue;
        };
        for d in days {
            let d = d.unwrap().path();
            let files: Vec<String> = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with(".parquet") || n.ends_with(".tmp"))
                .collect();
            out.insert(
                d.strip_prefix(dir).unwrap().to_string_lossy().to_string(),
                files,
            );
        }
    }
    out
}

#[tokio::test]
async fn formats_render_the_same_rows() {
    let (dir, _w) = store(10);
    let s = sql(dir.path()).await;
    let q = "SELECT id, version, opened_at, resolved_at, root_attributes, affected \
             FROM incidents_latest WHERE id IN ('572c3fa291f7566f', 'd18fe8dfafe1f02d') ORDER BY id";
    let table = s.query(q, Format::Table).await.unwrap();
    assert!(table.contains("| 572c3fa291f7566f | 119 "), "{table}");
    assert!(table.contains("2026-06-04T20:07:05.200Z"), "{table}");
    assert!(table.contains("port: 7946"), "{table}");

    let c = s.query(q, Format::Csv).await.unwrap();
    let mut lines = c.lines();
    assert_eq!(
        lines.next(),
        Some("id,version,opened_at,resolved_at,root_attributes,affected")
    );
    assert!(
        lines.next().unwrap().starts_with(
            "572c3fa291f7566f,119,2026-06-04T20:00:39.484947Z,2026-06-04T20:07:05.200Z,"
        )
    );

    let json: serde_json::Value =
        serde_json::from_str(&s.query(q, Format::Json).await.unwrap()).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], "572c3fa291f7566f");
    assert_eq!(rows[0]["resolved_at"], "2026-06-04T20:07:05.200Z");
    assert_eq!(rows[1]["resolved_at"], serde_json::Value::Null);
    assert_eq!(rows[1]["root_attributes"]["port"], "7946");
    assert_eq!(rows[1]["version"], 23);

    let nd = s.query(q, Format::Ndjson).await.unwrap();
    let objs: Vec<serde_json::Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs, *rows);

    // Zones given by a query print as UTC too.
    assert_eq!(
        csv(
            &s,
            "SELECT arrow_cast(opened_at, 'Timestamp(Microsecond, Some(\"+02:00\"))') AS t \
                 FROM incidents_latest WHERE id = '572c3fa291f7566f'"
        )
        .await,
        "t\n2026-06-04T20:00:39.484947Z\n"
    );
    // Empty results keep their header.
    assert_eq!(
        csv(&s, "SELECT id FROM incidents WHERE false").await,
        "id\n"
    );
    assert_eq!(
        s.query("SELECT id FROM incidents WHERE false", Format::Json)
            .await
            .unwrap(),
        "[]\n"
    );
    assert!(
        s.query("SELECT id FROM incidents WHERE false", Format::Table)
            .await
            .unwrap()
            .contains("| id |")
    );
    for (name, f) in [
        ("table", Format::Table),
        ("csv", Format::Csv),
        ("json", Format::Json),
        ("ndjson", Format::Ndjson),
    ] {
        assert_eq!(name.parse::<Format>().unwrap(), f);
    }
    assert!("xml".parse::<Format>().is_err());
}

#[tokio::test]
async fn a_long_result_is_cut_and_says_so() {
    let (dir, _w) = store(10);
    let s = Sql::open(
        dir.path(),
        QueryLimits {
            max_rows: 3,
            ..QueryLimits::default()
        },
    )
    .await
    .unwrap();
    let q = "SELECT ordinal FROM incidents ORDER BY ordinal";
    let out = s.execute(q).await.unwrap();
    assert!(out.truncated);
    assert_eq!(out.rows, 3);
    let c = s.query(q, Format::Csv).await.unwrap();
    assert_eq!(
        c,
        "ordinal\n0\n1\n2\n# truncated: the result has more than 3 rows; these are the first 3\n"
    );
    let t = s.query(q, Format::Table).await.unwrap();
    assert!(
        t.ends_with("truncated: the result has more than 3 rows; these are the first 3\n"),
        "{t}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&s.query(q, Format::Json).await.unwrap()).unwrap();
    assert_eq!(j.as_array().unwrap().len(), 4);
    assert_eq!(j[3], serde_json::json!({"truncated": true, "rows": 3}));
    let nd = s.query(q, Format::Ndjson).await.unwrap();
    assert_eq!(nd.lines().last(), Some(r#"{"truncated":true,"rows":3}"#));
    // Exactly at the cap is not truncated.
    let out = s
        .execute("SELECT ordinal FROM incidents ORDER BY ordinal LIMIT 3")
        .await
        .unwrap();
    assert!(!out.truncated);
}

#[tokio::test]
async fn a_slow_query_times_out() {
    let (dir, _w) = store(10);
    let s = Sql::open(
        dir.path(),
        QueryLimits {
            timeout: Duration::from_millis(20),
            ..QueryLimits::default()
        },
    )
    .await
    .unwrap();
    // 51^5 rows to sum: far longer than 20 ms on any machine.
    let r = s
        .query(
            "SELECT sum(a.ordinal * b.ordinal + c.ordinal * d.ordinal + e.ordinal) \
             FROM incidents a, incidents b, incidents c, incidents d, incidents e",
            Format::Csv,
        )
        .await;
    assert!(matches!(r, Err(QueryError::Timeout(_))), "{r:?}");
    // The next query still runs (within a generous limit).
    let s = Sql::open(dir.path(), QueryLimits::default()).await.unwrap();
    assert_eq!(
        csv(&s, "SELECT count(*) AS n FROM incidents").await,
        "n\n51\n"
    );
}

#[tokio::test]
async fn a_query_beyond_its_memory_fails_without_spilling() {
    let (dir, _w) = store(10);
    let s = Sql::open(
        dir.path(),
        QueryLimits {
            memory: 256 << 10,
            ..QueryLimits::default()
        },
    )
    .await
    .unwrap();
    let r = s
        .query(
            "SELECT a.title, b.title, c.root_summary FROM incidents a, incidents b, incidents c \
             ORDER BY a.title, b.root_summary, c.title",
            Format::Csv,
        )
        .await;
    match r {
        Err(QueryError::Memory(why)) => assert!(why.contains("memory"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_empty_or_missing_store_has_empty_tables() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not/yet");
    let s = sql(&missing).await;
    assert_eq!(
        csv(&s, "SELECT count(*) AS n FROM incidents_latest").await,
        "n\n0\n"
    );
    assert_eq!(
        csv(&s, "SELECT count(*) AS n FROM incident_entities e JOIN incidents i ON e.ordinal = i.ordinal").await,
        "n\n0\n"
    );
    // A writer appears later: the same Sql sees what it commits.
    let all = changes();
    let mut w = open(&missing);
    write(&mut w, &all, 0..10, 100);
    assert_eq!(
        csv(&s, "SELECT count(*) AS n FROM incidents").await,
        "n\n10\n"
    );
    write(&mut w, &all, 10..20, 100);
    assert_eq!(
        csv(&s, "SELECT count(*) AS n FROM incidents").await,
        "n\n20\n"
    );
}

#[tokio::test]
async fn one_writer_per_store() {
    let dir = tempfile::tempdir().unwrap();
    let _w = open(dir.path());
    match HistoryWriter::open(dir.path(), sources()) {
        Err(e) => assert!(e.to_string().contains("another writer"), "{e}"),
        Ok(_) => panic!("a second writer opened the store"),
    }
}

#[tokio::test]
async fn a_lost_head_is_rebuilt_from_the_files() {
    let (dir, w) = store(5);
    drop(w);
    let expected = everything(dir.path()).await;
    std::fs::remove_file(dir.path().join("HEAD")).unwrap();
    let w = open(dir.path());
    assert_eq!(w.last_seq(), Some(changes().len() as u64));
    drop(w);
    assert_eq!(everything(dir.path()).await, expected);
}

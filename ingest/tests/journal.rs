//! The journal of acknowledged deliveries, on real files: what was
//! acknowledged is replayed after a restart, in order, and only what the
//! checkpoint does not cover; a torn tail is cut, damage elsewhere refused;
//! covered segments go; a directory that cannot be written refuses appends
//! and recovers by itself.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use ingest::source::journal::{self, AppendError, Journal, Settings};
use ingest::source::{Delivery, Intake, StreamId};
use tokio::sync::mpsc;

fn delivery(n: usize) -> Delivery {
    let mut d = Delivery::new(
        ingest::source::alertmanager::SOURCE,
        StreamId::new("alertmanager"),
        vec![format!(r#"{{"version":"4","alerts":[],"n":{n}}}"#)],
    );
    d.ordered = false;
    d
}

fn n_of(d: &Delivery) -> usize {
    let v: serde_json::Value = serde_json::from_str(&d.lines[0]).unwrap();
    v["n"].as_u64().unwrap() as usize
}

/// Opens the journal in `dir` after `covered`; the deliveries to replay and
/// a running journal feeding a fresh intake.
fn open(
    dir: &Path,
    covered: u64,
    settings: impl FnOnce(&mut Settings),
) -> (Vec<Delivery>, Journal, mpsc::Receiver<Delivery>) {
    let mut s = Settings::new(dir);
    settings(&mut s);
    let (replay, opened) = Journal::open(&s, covered).unwrap();
    let replayed: Vec<Delivery> = replay.map(Result::unwrap).collect();
    assert_eq!(replayed.len() as u64, opened.to_replay);
    let (intake, rx) = Intake::bounded(1024);
    let j = Journal::start(s, &opened, intake).unwrap();
    (replayed, j, rx)
}

async fn append_all(j: &Journal, range: std::ops::Range<usize>) -> Vec<u64> {
    let mut seqs = Vec::new();
    for n in range {
        seqs.push(j.append(delivery(n)).await.unwrap());
    }
    seqs
}

fn segments(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn what_was_acknowledged_is_replayed_in_order_after_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (replayed, j, mut rx) = open(&dir, 0, |_| {});
    assert!(replayed.is_empty());
    let seqs = append_all(&j, 0..10).await;
    assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
    // Each reached the intake, in order, with its sequence number.
    for (n, seq) in seqs.iter().enumerate() {
        let d = rx.recv().await.unwrap();
        assert_eq!((n_of(&d), d.journal), (n, Some(*seq)));
    }
    drop(j);
    drop(rx);
    // A restart whose checkpoint covers the first 4.
    let (replayed, j, _rx) = open(&dir, 4, |_| {});
    let got: Vec<(usize, Option<u64>, bool)> = replayed
        .iter()
        .map(|d| (n_of(d), d.journal, d.ordered))
        .collect();
    let want: Vec<(usize, Option<u64>, bool)> =
        (4..10).map(|n| (n, Some(n as u64 + 1), false)).collect();
    assert_eq!(got, want);
    assert!(replayed.iter().all(|d| d.source == "alertmanager"));
    // New appends continue the sequence.
    assert_eq!(j.append(delivery(10)).await.unwrap(), 11);
}

#[tokio::test]
async fn a_torn_record_at_the_end_is_cut_off_and_appends_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (_, j, _rx) = open(&dir, 0, |_| {});
    append_all(&j, 0..3).await;
    drop(j);
    // A crash in the middle of writing a fourth record.
    let seg = dir.join(&segments(&dir)[0]);
    let len = std::fs::metadata(&seg).unwrap().len();
    let mut bytes = std::fs::read(&seg).unwrap();
    let whole = bytes.clone();
    bytes.extend_from_slice(&whole[..(whole.len() / 3) - 7]);
    std::fs::write(&seg, &bytes).unwrap();
    let (replayed, j, _rx) = open(&dir, 0, |_| {});
    assert_eq!(replayed.iter().map(n_of).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        len,
        "the torn tail is gone"
    );
    assert_eq!(j.append(delivery(3)).await.unwrap(), 4);
    drop(j);
    let (replayed, _, _rx) = open(&dir, 0, |_| {});
    assert_eq!(replayed.iter().map(n_of).collect::<Vec<_>>(), [0, 1, 2, 3]);
}

/// A closed journal in `dir` holding three records in one segment: that
/// segment's path and bytes.
async fn three_records(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let (_, j, _rx) = open(dir, 0, |_| {});
    append_all(&j, 0..3).await;
    drop(j);
    let seg = dir.join(&segments(dir)[0]);
    let bytes = std::fs::read(&seg).unwrap();
    (seg, bytes)
}

/// The refusal names the segment and says how to start anyway.
fn assert_names_the_way_out(text: &str, seg: &Path) {
    assert!(text.contains(&seg.display().to_string()), "{text}");
    assert!(text.contains("move"), "says how to recover: {text}");
}

#[tokio::test]
async fn damage_before_intact_records_is_refused_with_the_place_and_the_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (seg, mut bytes) = three_records(&dir).await;
    bytes[30] ^= 0xff; // inside the first record's payload
    std::fs::write(&seg, &bytes).unwrap();
    let err = Journal::open(&Settings::new(&dir), 0).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, journal::Error::Corrupt { offset: 0, .. }),
        "{text}"
    );
    assert_names_the_way_out(&text, &seg);
}

/// Found by the journal fuzz target: a whole record claiming the last
/// sequence number overflowed `seq + 1` (a panic in debug builds, a wrap
/// to sequence 0 in release).
#[tokio::test]
async fn an_impossible_sequence_number_is_refused_with_the_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (seg, mut bytes) = three_records(&dir).await;
    let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let second = 20 + len;
    bytes[second + 12..second + 20].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(journal::reseal(&mut bytes), 3, "checksums made right");
    std::fs::write(&seg, &bytes).unwrap();
    let err = Journal::open(&Settings::new(&dir), 0).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, journal::Error::ImpossibleSequence { offset, seq: u64::MAX, .. } if offset == second as u64),
        "{text}"
    );
    assert_names_the_way_out(&text, &seg);
}

#[tokio::test]
async fn segments_a_checkpoint_covers_are_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    // Tiny segments: a new one after every record.
    let (_, j, _rx) = open(&dir, 0, |s| s.segment_bytes = 1);
    append_all(&j, 0..5).await;
    assert_eq!(segments(&dir).len(), 5);
    j.covered(3);
    // The writer deletes once it has written its next batch.
    j.append(delivery(5)).await.unwrap();
    let left = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let left = segments(&dir);
            if left.len() <= 3 {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("covered segments deleted");
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left[0].starts_with("00000000000000000004"), "{left:?}");
    drop(j);
    // A restart after a checkpoint of everything replays nothing and keeps
    // no segment.
    let (replayed, _, _rx) = open(&dir, 6, |_| {});
    assert!(replayed.is_empty());
    assert!(segments(&dir).is_empty(), "{:?}", segments(&dir));
}

#[tokio::test]
async fn a_directory_that_cannot_be_written_refuses_appends_and_recovers_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (_, j, mut rx) = open(&dir, 0, |_| {});
    j.covered(0);
    // Nothing can be created where the journal's directory was.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    match j.append(delivery(0)).await {
        Err(AppendError::Failed(why)) => assert!(!why.is_empty()),
        other => panic!("appended where nothing can be written: {other:?}"),
    }
    assert!(j.failure().is_some());
    assert!(
        rx.try_recv().is_err(),
        "nothing refused reaches the pipeline"
    );
    // Space (here: the directory) returns; the writer's probe notices.
    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while j.failure().is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the failure clears by itself");
    assert_eq!(j.append(delivery(1)).await.unwrap(), 1);
    assert_eq!(n_of(&rx.recv().await.unwrap()), 1);
}

#[tokio::test]
async fn a_closed_journal_refuses_and_lets_go_of_the_intake() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, j, mut rx) = open(&tmp.path().join("journal"), 0, |_| {});
    j.append(delivery(0)).await.unwrap();
    j.close();
    assert_eq!(j.append(delivery(1)).await, Err(AppendError::Closed));
    assert_eq!(n_of(&rx.recv().await.unwrap()), 0);
    // The writer drops its sender: the pipeline's drain ends.
    let end = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
}

//! Damaged or missing state is met with words, never a panic (issue 11,
//! probes 2 and 9).
//!
//! A used `outbox.redb` with 64 bytes flipped past offset 4096, or with 16
//! pages zeroed, is either refused at start with the file, the reason and
//! the way out, or repaired by redb's integrity check and then works; serve
//! never panics on it. A checkpoint missing beside an outbox is said
//! loudly, not passed over.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::crash::{body, post_until_ok, volume_alert};
use crate::support::{Serve, bin, wait_for};

const CONFIG: &str = "engine: {lateness: 1s}\npipeline: {checkpoint_interval: 1s, idle_timeout: 1s}\n\
                      sinks: {history: {enabled: false}}\n";

/// Leaves a used state directory in `dir`.
fn used_state(dir: &Path) {
    let serve = Serve::start(dir, CONFIG, &[]);
    for i in 0..20 {
        let at = jiff::Timestamp::now().to_string();
        post_until_ok(
            &serve.base,
            &body(&[volume_alert(&format!("claim-{i}"), "firing", &at)]),
        );
    }
    wait_for("the incidents", || {
        (serve.changes().len() >= 20).then_some(())
    });
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "{stderr}");
}

/// Starts serve on `dir`'s state: the exit status and stderr if it stops
/// on its own within a few seconds, else `None` (it runs).
fn start_or_refuse(dir: &Path) -> Option<(std::process::ExitStatus, String)> {
    let path = dir.join("epicenter.yaml");
    let port = crate::support::free_port();
    std::fs::write(
        &path,
        format!("listen: 127.0.0.1:{port}\nstate_dir: state\n{CONFIG}"),
    )
    .unwrap();
    let mut child = bin()
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = testkit::blocking_client();
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return Some((status, stderr));
        }
        if client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            // It runs: it must also work.
            let at = jiff::Timestamp::now().to_string();
            post_until_ok(
                &format!("http://127.0.0.1:{port}"),
                &body(&[volume_alert("claim-after", "firing", &at)]),
            );
            wait_for("the alert to be processed", || {
                let text = client
                    .get(format!("http://127.0.0.1:{port}/metrics"))
                    .send()
                    .ok()?
                    .text()
                    .ok()?;
                text.contains(
                    r#"epicenter_incident_changes_total{rule="volume-full",change="opened"}"#,
                )
                .then_some(())
            });
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("serve neither refused nor became ready");
}

fn damage(dir: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let path = dir.join("state/outbox.redb");
    let mut bytes = std::fs::read(&path).unwrap();
    f(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
}

fn refused_or_repaired(dir: &Path, what: &str) {
    match start_or_refuse(dir) {
        None => {} // repaired by the integrity check, and working
        Some((status, stderr)) => {
            assert!(!status.success(), "{what}: exit 0 after refusing: {stderr}");
            assert_ne!(status.code(), Some(101), "{what}: a panic: {stderr}");
            assert!(!stderr.contains("panicked"), "{what}: a panic: {stderr}");
            assert!(
                stderr.contains("outbox.redb"),
                "{what}: names the file: {stderr}"
            );
            assert!(stderr.contains("corrupt"), "{what}: says why: {stderr}");
            assert!(
                stderr.contains("move it aside"),
                "{what}: says how out: {stderr}"
            );
            // Moving it aside as told gets the service back.
            let state = dir.join("state");
            std::fs::rename(state.join("outbox.redb"), state.join("outbox.redb.bad")).unwrap();
            assert!(
                start_or_refuse(dir).is_none(),
                "{what}: not back after moving it aside"
            );
        }
    }
}

#[test]
fn flipped_bytes_in_the_outbox_are_refused_or_repaired_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    used_state(dir.path());
    damage(dir.path(), |b| {
        for x in &mut b[4096 + 64..4096 + 128] {
            *x ^= 0xa5;
        }
    });
    refused_or_repaired(dir.path(), "64 bytes flipped");
}

#[test]
fn zeroed_pages_in_the_outbox_are_refused_or_repaired_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    used_state(dir.path());
    damage(dir.path(), |b| {
        let end = b.len().min(8192 + 16 * 4096);
        b[8192..end].fill(0);
    });
    refused_or_repaired(dir.path(), "16 pages zeroed");
}

#[test]
fn a_zeroed_outbox_header_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    used_state(dir.path());
    damage(dir.path(), |b| b[..4096].fill(0));
    let (status, stderr) = start_or_refuse(dir.path()).expect("refused");
    assert!(!status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("outbox.redb") && stderr.contains("move it aside"),
        "{stderr}"
    );
    // Said once, not once per wrapping context.
    assert_eq!(stderr.matches("move it aside").count(), 1, "{stderr}");
}

#[test]
fn a_missing_checkpoint_beside_other_state_is_said_loudly() {
    let dir = tempfile::tempdir().unwrap();
    used_state(dir.path());
    std::fs::remove_file(dir.path().join("state/checkpoint")).unwrap();
    let serve = Serve::start(dir.path(), CONFIG, &[]);
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("no checkpoint, though the state directory holds state"),
        "{stderr}"
    );
}

#[test]
fn a_missing_outbox_beside_a_checkpoint_is_said_loudly() {
    let dir = tempfile::tempdir().unwrap();
    used_state(dir.path());
    std::fs::remove_file(dir.path().join("state/outbox.redb")).unwrap();
    let serve = Serve::start(dir.path(), CONFIG, &[]);
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("the outbox is missing though a checkpoint is there"),
        "{stderr}"
    );
}

//! A full disk is survived (issue 11, probe 3): serve's state directory is
//! a small tmpfs; a burst of alerts arrives and the filesystem fills up in
//! the middle of it. Deliveries are then refused with 503 and
//! `Retry-After`, `/readyz` says why, and once space returns everything
//! resumes by itself: every alert that was answered 200 forms its incident.
//! SIGTERM with the disk full finishes within the shutdown timeout, and a
//! restart after it loses nothing acknowledged.
//!
//! Mounting a tmpfs needs root (CI runs as root); elsewhere the test says so
//! and passes without running.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::crash::{body, by_claim, post_until_ok, volume_alert};
use crate::support::{Serve, wait_for};

/// A tmpfs mounted for the test, unmounted after it.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    /// Writes a ballast file until the filesystem is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("ballast")).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
        // What a partial chunk can still take.
        while std::io::Write::write_all(&mut f, &chunk[..512]).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("ballast")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

const CONFIG: &str = "engine: {lateness: 1s}\n\
    pipeline: {checkpoint_interval: 1s, idle_timeout: 1s, shutdown_timeout: 10s}\n\
    sinks: {stdout: {enabled: false}, file: {path: incidents.ndjson}, history: {enabled: false}}\n";

/// Posts once; the status and body.
fn post(base: &str, body: &str) -> (u16, String, Option<String>) {
    match testkit::blocking_client()
        .post(format!("{base}/api/v1/alertmanager"))
        .body(body.to_string())
        .send()
    {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (status, r.text().unwrap_or_default(), retry)
        }
        Err(e) => (0, e.to_string(), None),
    }
}

fn alert(claim: &str) -> String {
    body(&[volume_alert(
        claim,
        "firing",
        &jiff::Timestamp::now().to_string(),
    )])
}

#[test]
fn a_full_disk_refuses_deliveries_then_resumes_by_itself_losing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("state"), "6m") else {
        eprintln!("diskfull: cannot mount a tmpfs (needs root): not run");
        return;
    };
    let file = dir.path().join("incidents.ndjson");
    let serve = Serve::start(dir.path(), CONFIG, &[]);
    let mut acknowledged: Vec<String> = Vec::new();
    for i in 0..10 {
        let claim = format!("before-{i}");
        post_until_ok(&serve.base, &alert(&claim));
        acknowledged.push(claim);
    }
    // A burst, and the disk fills up in the middle of it.
    let mut refused = 0;
    for i in 0..60 {
        if i == 20 {
            disk.fill();
        }
        let claim = format!("burst-{i}");
        let (status, text, retry) = post(&serve.base, &alert(&claim));
        match status {
            200 => acknowledged.push(claim),
            503 => {
                refused += 1;
                assert!(retry.is_some(), "503 without Retry-After: {text}");
            }
            other => panic!("answered {other} on a full disk: {text}"),
        }
    }
    assert!(refused > 0, "a full disk refused nothing");
    let (status, readiness) = serve.get("/readyz").unwrap();
    assert_eq!(status, 503, "ready on a full disk: {readiness}");
    assert!(readiness.contains("No space left on device"), "{readiness}");

    disk.free();
    wait_for("ready again once space returned", || {
        serve.get("/readyz").filter(|(s, _)| *s == 200)
    });
    for i in 0..10 {
        let claim = format!("after-{i}");
        post_until_ok(&serve.base, &alert(&claim));
        acknowledged.push(claim);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let formed = by_claim(&file);
        let missing: Vec<&String> = acknowledged
            .iter()
            .filter(|c| !formed.contains_key(*c))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        missing.is_empty(),
        "acknowledged, never formed: {missing:?}"
    );

    // SIGTERM with the disk full again: it finishes within the timeout.
    disk.fill();
    for i in 0..5 {
        let claim = format!("last-{i}");
        if post(&serve.base, &alert(&claim)).0 == 200 {
            acknowledged.push(claim);
        }
    }
    let stopping = Instant::now();
    let (status, stderr) = serve.terminate();
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "SIGTERM took {took:?} on a full disk: {stderr}"
    );
    let _ = status;
    disk.free();
    let again = Serve::start(dir.path(), CONFIG, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let formed = by_claim(&file);
        let missing: Vec<&String> = acknowledged
            .iter()
            .filter(|c| !formed.contains_key(*c))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the restart, acknowledged and never formed: {missing:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, stderr) = again.terminate();
    assert!(status.success(), "{stderr}");
}

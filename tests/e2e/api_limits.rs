//! Queries cannot hurt the service (issue 11, probe 5): SQL from the API
//! runs in a child process with hard limits. A query that builds a 1.5 GB
//! string is refused, one that unnests 50 million rows or joins 10^10 rows
//! ends within its timeout, the service's memory does not follow any of
//! them, and `/healthz` answers meanwhile. SQL needs a token beyond
//! loopback, and only so many queries run at once.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::support::{Serve, bin, root};

fn replayed_history(dir: &std::path::Path) {
    let out = bin()
        .args(["replay", "--rules"])
        .arg(root().join("rules"))
        .arg("--history")
        .arg(dir.join("state/history"))
        .arg(root().join("examples/nfs-csi-cascade.ndjson"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn query(serve: &Serve, sql: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let url =
        reqwest::Url::parse_with_params(&format!("{}/api/v1/query", serve.base), &[("sql", sql)])
            .unwrap();
    let r = testkit::blocking_client()
        .get(url)
        .timeout(Duration::from_secs(60))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().unwrap(), started.elapsed())
}

const LIMITS: &str = "api: {query_memory: 256MiB, query_timeout: 10s, max_concurrent_queries: 2}\n";

/// Ten billion rows: low memory, runs until its timeout.
const ENDLESS: &str = "SELECT count(*) AS n FROM (SELECT unnest(range(1, 100000)) AS a) x \
                       CROSS JOIN (SELECT unnest(range(1, 100000)) AS b) y";

#[test]
fn hostile_queries_stay_within_their_limits_and_the_service_stays_responsive() {
    let dir = tempfile::tempdir().unwrap();
    replayed_history(dir.path());
    let serve = Serve::start(dir.path(), LIMITS, &[]);
    let (status, body, _) = query(&serve, "SELECT count(*) AS n FROM incidents_latest");
    assert_eq!(status, 200, "{body}");

    let rss_before = serve.rss();
    let probe = {
        let base = serve.base.clone();
        std::thread::spawn(move || {
            // /healthz, every 100 ms while the hostile queries run: the
            // slowest answer.
            let client = testkit::blocking_client();
            let mut slowest = Duration::ZERO;
            for _ in 0..60 {
                let t = Instant::now();
                let r = client.get(format!("{base}/healthz")).send().unwrap();
                assert_eq!(r.status().as_u16(), 200);
                slowest = slowest.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(100));
            }
            slowest
        })
    };
    let (status, body, took) = query(&serve, "SELECT length(repeat('x', 1500000000)) AS n");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("memory"), "{body}");
    assert!(
        took < Duration::from_secs(10),
        "not cut off by its memory limit: {took:?}"
    );
    let (status, body, took) = query(&serve, "SELECT unnest(range(1, 50000000)) AS x");
    assert!(matches!(status, 200 | 400 | 504), "{status} {body}");
    assert!(
        took < Duration::from_secs(14),
        "not within its timeout: {took:?}"
    );
    let (status, body, took) = query(&serve, ENDLESS);
    assert_eq!(status, 504, "{body}");
    assert!(
        took < Duration::from_secs(14),
        "not within its timeout: {took:?}"
    );
    let slowest = probe.join().unwrap();
    assert!(
        slowest < Duration::from_secs(2),
        "/healthz stalled {slowest:?} during hostile queries"
    );
    let rss_after = serve.rss();
    assert!(
        rss_after < rss_before + (200 << 20),
        "the service's memory followed the query: {rss_before} -> {rss_after} bytes"
    );
    // And it still answers queries.
    let (status, body, _) = query(&serve, "SELECT count(*) AS n FROM incidents_latest");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn only_so_many_queries_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    replayed_history(dir.path());
    let serve = std::sync::Arc::new(Serve::start(dir.path(), LIMITS, &[]));
    let running: Vec<_> = (0..2)
        .map(|_| {
            let s = serve.clone();
            std::thread::spawn(move || query(&s, ENDLESS).0)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    let (status, body, _) = query(&serve, "SELECT 1");
    assert_eq!(status, 429, "{body}");
    for r in running {
        assert_eq!(r.join().unwrap(), 504);
    }
    let (status, body, _) = query(&serve, "SELECT 1 AS one");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn sql_beyond_loopback_needs_a_token_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    replayed_history(dir.path());
    let port = crate::support::free_port();
    let path = dir.path().join("open.yaml");
    let serve_on = |extra: &str| {
        std::fs::write(
            &path,
            format!("listen: 0.0.0.0:{port}\nstate_dir: state\n{extra}"),
        )
        .unwrap();
        let child = bin()
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        crate::support::wait_for("serve to answer", || {
            testkit::blocking_client()
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .ok()
        });
        child
    };
    let ask = |token: Option<&str>| {
        let url = reqwest::Url::parse_with_params(
            &format!("http://127.0.0.1:{port}/api/v1/query"),
            &[("sql", "SELECT 1 AS one")],
        )
        .unwrap();
        let mut r = testkit::blocking_client().get(url);
        if let Some(t) = token {
            r = r.header("authorization", format!("bearer {t}"));
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let mut child = serve_on("");
    let (status, body) = ask(None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("api.token"), "{body}");
    child.kill().unwrap();
    child.wait().unwrap();

    let mut child = serve_on("api: {token: s3cret}\n");
    assert_eq!(ask(None).0, 401);
    let (status, body) = ask(Some("s3cret"));
    assert_eq!(status, 200, "lower-case scheme taken: {body}");
    child.kill().unwrap();
    child.wait().unwrap();

    let mut child = serve_on("api: {allow_anonymous_sql: true}\n");
    assert_eq!(ask(None).0, 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

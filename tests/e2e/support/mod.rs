//! Shared by the integration tests of `epicenter serve`: run the real binary
//! with a config in a temporary directory, scrape it, stop it with SIGTERM;
//! start real peers (Alertmanager) it talks to.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen in well under a
/// second or two; a guard against hanging, not a measurement.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// The built `epicenter`, to run with arguments.
pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_epicenter"))
}

/// The repository's root (the binary crate's manifest directory).
pub(crate) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every cascade the repository holds: the examples and the scenario
/// streams, and the shared scenarios when they are beside the checkout (as
/// in CI); sorted.
pub(crate) fn every_stream() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    for dir in [
        root().join("tests/scenarios"),
        root().join("../shared/scenarios"),
    ] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        v.extend(
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("input.ndjson")))
                .filter(|p| p.is_file()),
        );
    }
    v.sort();
    v
}

/// A port free on loopback now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns Some, or panics after [`PATIENCE`] saying what
/// was awaited.
pub(crate) fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Finds a program on PATH (or fails the test with how to install it).
pub(crate) fn program(names: &[&str], install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "{} not found on PATH: {install} (scripts/test.sh installs it)",
        names.join(" or ")
    );
}

/// The fields of an incident that are final once its records are in.
pub(crate) fn essence(i: &serde_json::Value) -> serde_json::Value {
    let mut e = serde_json::Map::new();
    for k in [
        "id",
        "rule",
        "title",
        "root_cause",
        "affected",
        "first_seen",
        "opened_at",
        "signals",
    ] {
        e.insert(k.to_string(), i[k].clone());
    }
    serde_json::Value::Object(e)
}

/// Applies incident changes (or replay's incidents) to the latest state by
/// id; a `merged` change removes the incident.
pub(crate) fn apply(
    state: &mut std::collections::BTreeMap<String, serde_json::Value>,
    changes: impl IntoIterator<Item = serde_json::Value>,
) {
    for c in changes {
        let id = c["id"].as_str().unwrap().to_string();
        if c["change"] == "merged" {
            state.remove(&id);
        } else {
            state.insert(id, essence(&c));
        }
    }
}

/// The latest state of each incident, by id.
pub(crate) fn latest(
    changes: impl IntoIterator<Item = serde_json::Value>,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut out = std::collections::BTreeMap::new();
    apply(&mut out, changes);
    out
}

/// What a webhook receiver was told, as delivered (answered 200):
/// incident -> idempotency key -> (event, deliveries). The same key twice
/// is one notification delivered twice.
pub(crate) fn told(
    hook: &testkit::webhook::WebhookReceiver,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, (String, usize)>> {
    let mut told: std::collections::BTreeMap<_, std::collections::BTreeMap<_, _>> =
        std::collections::BTreeMap::new();
    for r in hook.requests().iter().filter(|r| r.status == 200) {
        let key = r.header("idempotency-key").unwrap().to_string();
        let event = r.header("x-epicenter-event").unwrap().to_string();
        let incident = key.rsplit_once(':').unwrap().0.to_string();
        told.entry(incident)
            .or_default()
            .entry(key)
            .or_insert((event, 0))
            .1 += 1;
    }
    told
}

/// A running `epicenter serve`.
pub(crate) struct Serve {
    child: Child,
    pub(crate) base: String,
    pub(crate) dir: PathBuf,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    client: reqwest::blocking::Client,
}

impl Serve {
    /// Starts serve with `config` (YAML; `listen` and `state_dir` are added)
    /// in `dir`, and waits until /healthz answers.
    pub(crate) fn start(dir: &Path, config: &str, args: &[&str]) -> Serve {
        Serve::start_on(free_port(), dir, config, args)
    }

    /// As [`Serve::start`], listening on `port` (a restart on the same
    /// address, as a Service would give it).
    pub(crate) fn start_on(port: u16, dir: &Path, config: &str, args: &[&str]) -> Serve {
        let path = dir.join("epicenter.yaml");
        std::fs::write(
            &path,
            format!("listen: 127.0.0.1:{port}\nstate_dir: state\n{config}"),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_epicenter"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .args(args)
            .env_remove("EPICENTER_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let serve = Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            stdout,
            stderr,
            client: testkit::blocking_client(),
        };
        wait_for("serve to answer /healthz", || {
            serve.get("/healthz").filter(|(s, _)| *s == 200)
        });
        serve
    }

    /// Posts an Alertmanager webhook body; it must be acknowledged (200).
    pub(crate) fn post_alerts(&self, body: String) {
        let r = self
            .client
            .post(format!("{}/api/v1/alertmanager", self.base))
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    }

    pub(crate) fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .ok()?;
        Some((r.status().as_u16(), r.text().ok()?))
    }

    /// A sample from /metrics, by its exact name and labels as printed
    /// (`epicenter_records_total{source="alertmanager"}`); 0 when absent.
    pub(crate) fn metric(&self, sample: &str) -> f64 {
        let (_, text) = self.get("/metrics").unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// Incident changes printed so far (stdout sink), parsed.
    pub(crate) fn changes(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the process now, in bytes.
    pub(crate) fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .map_or(0, |kb| kb.trim().parse::<u64>().unwrap() * 1024)
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// SIGKILL: a crash, no drain, no final checkpoint.
    pub(crate) fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }

    /// SIGTERM, then the exit status (the drain must finish in time).
    pub(crate) fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = wait_for("serve to exit after SIGTERM", || {
            self.child.try_wait().unwrap()
        });
        // Let the reader threads take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (status, self.stderr())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(l) => sink.lock().unwrap().push(l),
                Err(_) => return,
            }
        }
    });
    lines
}

/// A real Alertmanager (Debian's prometheus-alertmanager) on loopback.
pub(crate) struct Alertmanager {
    child: Child,
    pub(crate) base: String,
}

impl Alertmanager {
    pub(crate) fn start(dir: &Path, config: &str) -> Alertmanager {
        let bin = program(
            &["prometheus-alertmanager", "alertmanager"],
            "apt-get install prometheus-alertmanager",
        );
        let port = free_port();
        let cfg = dir.join("alertmanager.yml");
        std::fs::write(&cfg, config).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let am = Alertmanager {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = testkit::blocking_client();
        wait_for("alertmanager to be ready", || {
            client
                .get(format!("{}/-/ready", am.base))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        });
        am
    }

    /// Pushes alerts through Alertmanager's own API, as Prometheus does.
    pub(crate) fn push(&self, alerts: &serde_json::Value) {
        let r = testkit::blocking_client()
            .post(format!("{}/api/v2/alerts", self.base))
            .json(alerts)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "alertmanager refused: {r:?}");
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (golden name, input stream): the example, the scenarios, the shared
/// scenarios prefixed `shared-`.
pub(crate) fn golden_streams() -> Vec<(String, PathBuf)> {
    let mut v = vec![(
        "nfs-csi-cascade".to_string(),
        root().join("examples/nfs-csi-cascade.ndjson"),
    )];
    v.extend(scenarios(&root().join("tests/scenarios"), ""));
    v.extend(scenarios(&root().join("../shared/scenarios"), "shared-"));
    v
}

/// Every `<dir>/*/input.ndjson`, named by its directory, sorted.
fn scenarios(dir: &Path, prefix: &str) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("input.ndjson").is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (format!("{prefix}{name}"), p.join("input.ndjson"))
        })
        .collect();
    v.sort();
    v
}

/// `EPICENTER_BLESS=1`: golden tests write their files instead of comparing.
pub(crate) fn bless() -> bool {
    std::env::var_os("EPICENTER_BLESS").is_some_and(|v| v == "1")
}

/// Alertmanager bodies: a claim fills up (then its alert resolves; the
/// incident ends only after its quiet period, longer than the tests that
/// post them).
pub(crate) fn volume_alerts() -> Vec<String> {
    std::fs::read_to_string(root().join("rules/tests/fixtures/alerts-volume-freed.ndjson"))
        .expect("the volume alerts fixture")
        .lines()
        .map(str::to_string)
        .collect()
}

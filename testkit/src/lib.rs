//! # testkit: a real Kafka-protocol broker for tests and benches
//!
//! [`Tansu`] starts a [tansu](https://github.com/tansu-io/tansu) broker (an
//! Apache-Kafka-compatible broker written in Rust, sqlite storage) as a child
//! process on a free port, in its own temporary directory, and can kill it
//! and start it again on the same port and data. [`create_topic`] and
//! [`produce`] are the few client calls tests need, and work as well against
//! librdkafka's mock cluster (`rdkafka::mocking::MockCluster`).
//!
//! Design choice: a process per test, not a shared broker. Every test owns
//! its topics, groups and broker lifetime (some kill it), so tests can run in
//! parallel without seeing each other; tansu starts in well under a second.
//! The broker's quirks on these machines (`../shared/notes/kafka-broker.md`)
//! are handled here once: one port in both URLs, a relative sqlite path in
//! the working directory, its environment variables cleared, no topic
//! auto-creation.

pub mod ntfy;
pub mod slack;
pub mod webhook;

use std::fmt;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

/// An HTTP client for tests. reqwest is built without a TLS provider of
/// its own (the binary and the sinks install rustls' ring provider); tests
/// install it here before building a client.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A blocking HTTP client for tests (see [`http_client`]).
pub fn blocking_client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::new()
}

/// How to install the broker, named in the error when it is missing.
pub const INSTALL: &str = "cargo install tansu --locked --no-default-features --features libsql";

/// Environment variables tansu reads that would override its flags.
const TANSU_ENV: [&str; 6] = [
    "STORAGE_ENGINE",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "CLUSTER_ID",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// How long a started broker may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the `tansu` broker is not installed (looked at $TANSU, $PATH and ~/.cargo/bin): install it with `{INSTALL}`"
    )]
    NotInstalled,
    #[error("broker io: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the broker did not accept connections on port {port} within {READY_WITHIN:?}; its log:\n{log}"
    )]
    NotReady { port: u16, log: String },
    #[error("the broker exited at start ({status}); its log:\n{log}")]
    Exited { status: String, log: String },
    #[error("kafka client: {0}")]
    Kafka(#[from] KafkaError),
    #[error("creating topic {topic}: {error}")]
    CreateTopic { topic: String, error: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A tansu broker running as a child process; killed on drop.
pub struct Tansu {
    binary: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    starts: u32,
}

impl fmt::Debug for Tansu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tansu")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl Tansu {
    /// Starts a broker, or panics with a message saying how to install it:
    /// the entry point for tests.
    pub fn start() -> Tansu {
        Tansu::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a broker on a free port in a fresh temporary directory.
    pub fn try_start() -> Result<Tansu> {
        let binary = find_binary().ok_or(Error::NotInstalled)?;
        let dir = tempfile::Builder::new().prefix("tansu-").tempdir()?;
        let port = free_port()?;
        let mut broker = Tansu {
            binary,
            dir,
            port,
            child: None,
            starts: 0,
        };
        broker.spawn()?;
        Ok(broker)
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's process id while it runs (for CPU accounting).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the broker (SIGKILL: no goodbye to its clients) and waits for
    /// it to exit. Its data stays for [`Tansu::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and data directory.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// What the broker printed (every start, oldest first).
    pub fn log(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.starts {
            let path = self.log_path(n);
            if let Ok(text) = std::fs::read_to_string(&path) {
                out.push_str(&text);
            }
        }
        out
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.dir.path().join(format!("broker-{start}.log"))
    }

    fn spawn(&mut self) -> Result<()> {
        self.starts += 1;
        let log = File::create(self.log_path(self.starts))?;
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(&self.binary);
        cmd.arg("broker")
            .arg("--listener-url")
            .arg(&url)
            .arg("--advertised-listener-url")
            .arg(&url)
            // Relative: an absolute sqlite path breaks tansu's startup.
            .arg("--storage-engine")
            .arg("sqlite://tansu.db")
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for var in TANSU_ENV {
            cmd.env_remove(var);
        }
        let mut child = cmd.spawn()?;
        let deadline = Instant::now() + READY_WITHIN;
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port);
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(Error::Exited {
                    status: status.to_string(),
                    log: self.log(),
                });
            }
            if TcpStream::connect_timeout(&addr.into(), Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::NotReady {
                    port: self.port,
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TANSU") {
        let path = PathBuf::from(path);
        return is_file(&path).then_some(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin").join("tansu"));
    on_path.chain(cargo_home).find(|p| is_file(p))
}

fn is_file(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file()).unwrap_or(false)
}

/// A port nobody listens on now (the broker must be told its port: with
/// port 0 it would advertise port 0).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Creates `topic` with `partitions` partitions (tansu does not create
/// topics on first use).
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&new], &opts).await? {
        if let Err((topic, code)) = result {
            return Err(Error::CreateTopic {
                topic,
                error: code.to_string(),
            });
        }
    }
    Ok(())
}

/// A producer for test data: acks from the leader, lz4 (tansu's sqlite
/// storage breaks on snappy), batches of up to 5 ms.
pub fn producer(bootstrap: &str) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()?)
}

/// Produces each `(partition, payload)` in order and waits until every one
/// is acknowledged; returns their offsets.
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    records: &[(i32, Vec<u8>)],
) -> Result<Vec<i64>> {
    let mut pending = Vec::with_capacity(records.len());
    for (partition, payload) in records {
        let mut record = FutureRecord::<(), _>::to(topic)
            .partition(*partition)
            .payload(payload.as_slice());
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    let mut offsets = Vec::with_capacity(pending.len());
    for delivery in pending {
        match delivery.await {
            Ok(Ok(d)) => offsets.push(d.offset),
            Ok(Err((e, _))) => return Err(e.into()),
            Err(_) => return Err(KafkaError::Canceled.into()),
        }
    }
    Ok(offsets)
}

/// A contract-shaped record, about 200-300 bytes, unique for `(tag, seq)`:
/// in turn a Vector log record, a Fluent Bit log record, a core/v1 Event
/// (bare object) and an Alertmanager v4 body. Names are made up.
pub fn contract_line(tag: &str, seq: u64) -> String {
    let time = stamp(seq);
    let pod = format!("web-{tag}-{}", seq % 7);
    match seq % 4 {
        0 => format!(
            r#"{{"kubernetes":{{"container_name":"app","pod_name":"{pod}","pod_namespace":"team-a","pod_node_name":"node-{n}","pod_uid":"uid-{tag}-{seq}","pod_labels":{{"app":"web"}}}},"message":"GET /health 200 seq={tag}/{seq}","stream":"stdout","timestamp":"{time}"}}"#,
            n = seq % 3
        ),
        1 => format!(
            r#"{{"log":"level=info msg=\"request served\" seq={tag}/{seq}\n","stream":"stderr","time":"{time}","kubernetes":{{"pod_name":"{pod}","namespace_name":"team-a","pod_id":"uid-{tag}-{seq}","labels":{{"app":"web"}},"host":"node-{n}","container_name":"app"}}}}"#,
            n = seq % 3
        ),
        2 => format!(
            r#"{{"apiVersion":"v1","kind":"Event","metadata":{{"name":"{pod}.{seq:x}","namespace":"team-a","uid":"ev-{tag}-{seq}"}},"involvedObject":{{"kind":"Pod","namespace":"team-a","name":"{pod}"}},"reason":"Pulled","message":"image pulled seq={tag}/{seq}","type":"Normal","count":1,"lastTimestamp":"{time}"}}"#
        ),
        _ => format!(
            r#"{{"version":"4","status":"firing","receiver":"ops","alerts":[{{"status":"firing","labels":{{"alertname":"HighLatency","namespace":"team-a","pod":"{pod}","severity":"warning"}},"annotations":{{"summary":"latency seq={tag}/{seq}"}},"startsAt":"{time}","endsAt":"0001-01-01T00:00:00Z","fingerprint":"{tag}{seq:x}"}}]}}"#
        ),
    }
}

/// An RFC 3339 time `seq` milliseconds after 2026-01-01T00:00:00Z (within
/// the day).
fn stamp(seq: u64) -> String {
    let secs = seq / 1000;
    format!(
        "2026-01-01T{:02}:{:02}:{:02}.{:03}Z",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        seq % 1000
    )
}

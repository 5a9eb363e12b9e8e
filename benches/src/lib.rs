//! # epicenter-benches: synthetic input streams
//!
//! A deterministic generator of replay-contract NDJSON (`contract/replay.md`)
//! for the criterion benches, the end-to-end measurement (`bin/gen.rs`) and
//! the held-state memory probe (`bin/held.rs`). The record shapes are the
//! ones of `shared/scenarios/*/input.ndjson`, with their sizes: Kubernetes
//! Events (core/v1 and events.k8s.io/v1, watch events and bare objects), Pod
//! and Node watch events with `observedAt`, Alertmanager v4 bodies, Vector and
//! Fluent Bit log records.
//!
//! A stream is a cluster of `nodes` nodes and `namespaces` namespaces of
//! `pods_per_namespace` pods each (plus system and CSI DaemonSets), seen
//! through a [`Mix`] of shapes. Event time advances at [`Config::rate`]
//! records per second from [`Config::start`]; each record's time lags the
//! clock by a jitter under [`Config::max_jitter`] seconds (most by under two
//! seconds), so lines arrive out of order within a bound below the default
//! lateness.
//!
//! One record in `1 + noise_per_failure` is a failure record that the shipped
//! rules classify, drawn from the *episode* of its event time (one every
//! [`Config::episode_secs`]): a CSI node plugin down on two nodes (its
//! `liveness-probe` sidecar cannot bind its port, the plugin pod
//! crash-loops, pods there fail `FailedMount` with "driver name ... not found
//! in the list of registered CSI drivers", applications there cannot lock
//! their files), a DaemonSet whose pods cannot bind a host port on three
//! nodes, and a registry answering `manifest unknown`. The names differ from
//! the scenarios'. The rest is healthy noise as the scenarios describe it.
//!
//! The random source is an inline SplitMix64: the same [`Config`] gives the
//! same lines on every machine.

use std::fmt::{self, Write as _};

/// SplitMix64: small, fast, and good enough to pick names and shapes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// Index into `weights`, drawn in proportion to them.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut r = self.below(total.max(1) as usize) as u32;
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }

    /// Lowercase hex, `n` digits.
    pub fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(n);
        while s.len() < n {
            let mut x = self.next_u64();
            for _ in 0..16.min(n - s.len()) {
                s.push(HEX[(x & 15) as usize] as char);
                x >>= 4;
            }
        }
        s
    }

    /// A version 4 UUID.
    pub fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-4{}-{}{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            ["8", "9", "a", "b"][self.below(4)],
            &h[17..20],
            &h[20..32]
        )
    }

    /// A generated-name suffix as Kubernetes makes them (no vowels).
    pub fn k8s_suffix(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..n)
            .map(|_| ALPHABET[self.below(ALPHABET.len())] as char)
            .collect()
    }
}

/// Which shapes a stream is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Kubernetes Events only: core/v1 and events.k8s.io/v1, watch and bare.
    K8sEvents,
    /// Container logs only: Vector and Fluent Bit (the shipper differs per node).
    Logs,
    /// Everything, in the proportions of a real recorder: the initial LIST of
    /// Nodes and Pods, then mostly logs, Events, Pod and Node heartbeats, alerts.
    Mixed,
}

impl Mix {
    pub const ALL: [Mix; 3] = [Mix::K8sEvents, Mix::Logs, Mix::Mixed];

    pub fn as_str(self) -> &'static str {
        match self {
            Mix::K8sEvents => "k8s-events",
            Mix::Logs => "logs",
            Mix::Mixed => "mixed",
        }
    }

    pub fn parse(s: &str) -> Option<Mix> {
        Mix::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One input shape of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    CoreEventWatch,
    CoreEventBare,
    EventsV1Watch,
    EventsV1Bare,
    PodWatch,
    NodeWatch,
    Alertmanager,
    VectorLog,
    FluentBitLog,
}

impl Shape {
    pub const ALL: [Shape; 9] = [
        Shape::CoreEventWatch,
        Shape::CoreEventBare,
        Shape::EventsV1Watch,
        Shape::EventsV1Bare,
        Shape::PodWatch,
        Shape::NodeWatch,
        Shape::Alertmanager,
        Shape::VectorLog,
        Shape::FluentBitLog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Shape::CoreEventWatch => "event-v1-watch",
            Shape::CoreEventBare => "event-v1-bare",
            Shape::EventsV1Watch => "events.k8s.io-watch",
            Shape::EventsV1Bare => "events.k8s.io-bare",
            Shape::PodWatch => "pod-watch",
            Shape::NodeWatch => "node-watch",
            Shape::Alertmanager => "alertmanager",
            Shape::VectorLog => "vector-log",
            Shape::FluentBitLog => "fluent-bit-log",
        }
    }

    fn is_event(self) -> bool {
        matches!(
            self,
            Shape::CoreEventWatch
                | Shape::CoreEventBare
                | Shape::EventsV1Watch
                | Shape::EventsV1Bare
        )
    }
}

/// Everything a stream depends on.
#[derive(Clone, Debug)]
pub struct Config {
    pub mix: Mix,
    pub seed: u64,
    pub namespaces: usize,
    pub pods_per_namespace: usize,
    pub nodes: usize,
    /// Noise records per failure record; `None`: no failure records at all.
    pub noise_per_failure: Option<f64>,
    /// Records per second of event time.
    pub rate: f64,
    /// Largest lag of a record's time behind the stream clock, in seconds (< 60).
    pub max_jitter: f64,
    /// Event time of the first record, Unix seconds.
    pub start: i64,
    /// Length of a failure episode, seconds of event time.
    pub episode_secs: i64,
    /// Only records of this shape (noise and failures of that shape).
    pub only: Option<Shape>,
    /// The mixed stream opens with the initial LIST (ADDED for every Node and Pod).
    pub initial_list: bool,
}

/// 2026-05-17T04:30:00Z.
pub const DEFAULT_START: i64 = 1_778_992_200;

impl Config {
    pub fn new(mix: Mix, seed: u64) -> Config {
        Config {
            mix,
            seed,
            namespaces: 40,
            pods_per_namespace: 12,
            nodes: 24,
            noise_per_failure: Some(5.0),
            rate: 1000.0,
            max_jitter: 45.0,
            start: DEFAULT_START,
            episode_secs: 600,
            only: None,
            initial_list: true,
        }
    }
}

/// `records` lines of `mix`, with the default [`Config`] (5 noise records per
/// failure record, 1000 records per second of event time).
pub fn generate(mix: Mix, records: usize, seed: u64) -> Vec<String> {
    Generator::new(Config::new(mix, seed))
        .take(records)
        .collect()
}

/// `records` lines of one shape, healthy noise only.
pub fn generate_shape(shape: Shape, records: usize, seed: u64) -> Vec<String> {
    let mix = match shape {
        s if s.is_event() => Mix::K8sEvents,
        Shape::VectorLog | Shape::FluentBitLog => Mix::Logs,
        _ => Mix::Mixed,
    };
    let cfg = Config {
        noise_per_failure: None,
        only: Some(shape),
        ..Config::new(mix, seed)
    };
    Generator::new(cfg).take(records).collect()
}

/// `records` lines of `mix`, failure records only (every one matches a rule).
pub fn generate_failures(mix: Mix, records: usize, seed: u64) -> Vec<String> {
    let cfg = Config {
        noise_per_failure: Some(0.0),
        initial_list: false,
        ..Config::new(mix, seed)
    };
    Generator::new(cfg).take(records).collect()
}

/// `records` lines of `mix`, healthy noise only.
pub fn generate_noise(mix: Mix, records: usize, seed: u64) -> Vec<String> {
    let cfg = Config {
        noise_per_failure: None,
        ..Config::new(mix, seed)
    };
    Generator::new(cfg).take(records).collect()
}

// ---------------------------------------------------------------------------
// Time formatting.

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// RFC 3339 in UTC, with 0, 3, 6 or 9 fractional digits (the last three of 9
/// from `nanos`).
#[derive(Clone, Copy, Debug)]
struct Ts {
    micros: i64,
    digits: u8,
    nanos: u16,
}

fn ts(micros: i64, digits: u8) -> Ts {
    Ts {
        micros,
        digits,
        nanos: (micros.rem_euclid(997) as u16) % 1000,
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.micros.div_euclid(1_000_000);
        let us = self.micros.rem_euclid(1_000_000);
        let (y, m, d) = civil(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        )?;
        match self.digits {
            0 => {}
            3 => write!(f, ".{:03}", us / 1000)?,
            6 => write!(f, ".{us:06}")?,
            _ => write!(f, ".{us:06}{:03}", self.nanos)?,
        }
        f.write_str("Z")
    }
}

/// Common Log Format time: `17/May/2026:04:30:05 +0000`.
fn clf(micros: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = micros.div_euclid(1_000_000);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// klog header: `I0517 04:30:05.123456`.
fn klog(level: char, micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let (_, m, d) = civil(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{level}{m:02}{d:02} {:02}:{:02}:{:02}.{:06}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        micros.rem_euclid(1_000_000)
    )
}

/// A JSON string literal, quoted and escaped.
struct J<'a>(&'a str);

impl fmt::Display for J<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        let mut start = 0;
        let s = self.0;
        for (i, b) in s.bytes().enumerate() {
            let esc = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\t' => "\\t",
                b'\r' => "\\r",
                _ => continue,
            };
            f.write_str(&s[start..i])?;
            f.write_str(esc)?;
            start = i + 1;
        }
        f.write_str(&s[start..])?;
        f.write_char('"')
    }
}

// ---------------------------------------------------------------------------
// The cluster.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
        }
    }
}

/// How a workload logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    Web,
    Go,
    Json,
    Postgres,
    Exporter,
    Klog,
}

#[derive(Debug)]
struct NodeInfo {
    name: String,
    ip: String,
    uid: String,
    boot_id: String,
    machine_id: String,
    /// Vector ships this node's logs, else Fluent Bit.
    vector: bool,
    created: i64,
}

#[derive(Debug)]
struct Workload {
    ns: String,
    name: String,
    kind: Kind,
    /// Containers: (name, image).
    containers: Vec<(String, String)>,
    /// pod-template-hash (Deployment) or controller-revision-hash.
    hash: String,
    uid: String,
    rs_uid: String,
    flavor: Flavor,
    /// Port-conflict message of the DaemonSets that fail that way.
    bind_message: Option<&'static str>,
}

#[derive(Debug)]
struct PodInfo {
    workload: usize,
    name: String,
    uid: String,
    node: usize,
    ip: String,
    ready: bool,
    restarts: u32,
    container_ids: Vec<String>,
    image_digests: Vec<String>,
    created: i64,
    changed: i64,
}

/// A CSI driver whose node plugin fails in some episodes.
#[derive(Debug)]
struct CsiDriver {
    driver: &'static str,
    ns: &'static str,
    daemonset: &'static str,
    plugin: &'static str,
    image: &'static str,
    port: u16,
}

const CSI_DRIVERS: [CsiDriver; 3] = [
    CsiDriver {
        driver: "smb.csi.k8s.io",
        ns: "csi-smb",
        daemonset: "csi-smb-node",
        plugin: "smb",
        image: "registry.k8s.io/sig-storage/smbplugin:v1.16.0",
        port: 29643,
    },
    CsiDriver {
        driver: "rbd.csi.ceph.com",
        ns: "ceph-csi-rbd",
        daemonset: "ceph-csi-rbd-nodeplugin",
        plugin: "csi-rbdplugin",
        image: "quay.io/cephcsi/cephcsi:v3.11.0",
        port: 29633,
    },
    CsiDriver {
        driver: "cephfs.csi.ceph.com",
        ns: "ceph-csi-cephfs",
        daemonset: "ceph-csi-cephfs-nodeplugin",
        plugin: "csi-cephfsplugin",
        image: "quay.io/cephcsi/cephcsi:v3.11.0",
        port: 29632,
    },
];

/// DaemonSets whose pods lose a host port in some episodes:
/// (namespace, name, container, image, log line).
const PORT_DAEMONSETS: [(&str, &str, &str, &str, &str); 2] = [
    (
        "kube-system",
        "kube-vip-ds",
        "kube-vip",
        "ghcr.io/kube-vip/kube-vip:v0.8.0",
        r#"time="{T}" level=fatal msg="listen tcp 0.0.0.0:2112: bind: address already in use""#,
    ),
    (
        "observability",
        "otel-agent",
        "otel-collector",
        "otel/opentelemetry-collector-contrib:0.99.0",
        r#"Error: cannot start pipelines: failed to start "otlp" receiver: listen tcp 0.0.0.0:4317: bind: address already in use"#,
    ),
];

/// Registries that answer `manifest unknown` in some episodes.
const REGISTRIES: [&str; 2] = ["harbor.lab.internal", "registry.corp.example:5000"];

const APPS: [&str; 40] = [
    "nextcloud",
    "immich",
    "gitea",
    "grafana",
    "paperless",
    "vaultwarden",
    "jellyfin",
    "homeassistant",
    "miniflux",
    "outline",
    "plausible",
    "n8n",
    "mealie",
    "linkding",
    "photoprism",
    "wikijs",
    "mattermost",
    "keycloak",
    "harbor",
    "minio",
    "authelia",
    "redis",
    "rabbitmq",
    "kafka",
    "loki",
    "tempo",
    "mimir",
    "argocd",
    "cert-manager",
    "external-dns",
    "uptime-kuma",
    "navidrome",
    "audiobookshelf",
    "firefly",
    "bookstack",
    "hedgedoc",
    "matrix",
    "searxng",
    "woodpecker",
    "tandoor",
];

const FLAVORS: [Flavor; 4] = [Flavor::Web, Flavor::Go, Flavor::Json, Flavor::Web];

#[derive(Debug)]
struct Cluster {
    nodes: Vec<NodeInfo>,
    workloads: Vec<Workload>,
    pods: Vec<PodInfo>,
    /// Application (non-DaemonSet) pods of each node.
    app_pods_on: Vec<Vec<usize>>,
    /// Pods of each workload.
    pods_of: Vec<Vec<usize>>,
    /// Application pods of each application namespace, in namespace order.
    app_pods_of_ns: Vec<Vec<usize>>,
    /// Workload index of each CSI driver's plugin DaemonSet.
    csi: Vec<usize>,
    /// Workload index of each port-conflict DaemonSet.
    port_ds: Vec<usize>,
    /// CronJobs: (namespace, name, uid).
    cronjobs: Vec<(String, String, String)>,
}

impl Cluster {
    fn build(cfg: &Config, rng: &mut Rng) -> Cluster {
        let t0 = cfg.start * 1_000_000;
        let nodes: Vec<NodeInfo> = (0..cfg.nodes.max(1))
            .map(|i| NodeInfo {
                name: format!("wrk-{:02}", i + 1),
                ip: format!("10.42.{}.{}", i / 200, 10 + i % 200),
                uid: rng.uuid(),
                boot_id: rng.uuid(),
                machine_id: rng.hex(32),
                vector: i % 2 == 0,
                created: t0 - 86_400_000_000 * (80 + rng.below(200) as i64),
            })
            .collect();
        let mut workloads = Vec::new();
        let mut add = |ns: &str,
                       name: &str,
                       kind: Kind,
                       containers: Vec<(String, String)>,
                       flavor: Flavor,
                       bind: Option<&'static str>,
                       rng: &mut Rng| {
            workloads.push(Workload {
                ns: ns.to_string(),
                name: name.to_string(),
                kind,
                containers,
                hash: {
                    let extra = if kind == Kind::Deployment {
                        rng.below(2)
                    } else {
                        0
                    };
                    rng.k8s_suffix(9 + extra)
                },
                uid: rng.uuid(),
                rs_uid: rng.uuid(),
                flavor,
                bind_message: bind,
            });
            workloads.len() - 1
        };
        let c = |name: &str, image: &str| (name.to_string(), image.to_string());
        add(
            "monitoring",
            "prometheus-node-exporter",
            Kind::DaemonSet,
            vec![c(
                "node-exporter",
                "quay.io/prometheus/node-exporter:v1.7.0",
            )],
            Flavor::Exporter,
            None,
            rng,
        );
        add(
            "kube-system",
            "node-local-dns",
            Kind::DaemonSet,
            vec![c(
                "node-cache",
                "registry.k8s.io/dns/k8s-dns-node-cache:1.23.0",
            )],
            Flavor::Klog,
            None,
            rng,
        );
        let csi: Vec<usize> = CSI_DRIVERS
            .iter()
            .map(|d| {
                add(
                    d.ns,
                    d.daemonset,
                    Kind::DaemonSet,
                    vec![
                        c(
                            "liveness-probe",
                            "registry.k8s.io/sig-storage/livenessprobe:v2.12.0",
                        ),
                        c(
                            "node-driver-registrar",
                            "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.10.0",
                        ),
                        c(d.plugin, d.image),
                    ],
                    Flavor::Klog,
                    None,
                    rng,
                )
            })
            .collect();
        let port_ds: Vec<usize> = PORT_DAEMONSETS
            .iter()
            .map(|(ns, name, container, image, msg)| {
                add(
                    ns,
                    name,
                    Kind::DaemonSet,
                    vec![c(container, image)],
                    Flavor::Go,
                    Some(*msg),
                    rng,
                )
            })
            .collect();
        let first_app = port_ds.iter().max().map_or(0, |i| i + 1);
        let mut cronjobs = Vec::new();
        for i in 0..cfg.namespaces {
            let app = APPS[i % APPS.len()];
            let ns = if i < APPS.len() {
                app.to_string()
            } else {
                format!("{app}-{}", i / APPS.len() + 1)
            };
            let image = |suffix: &str| {
                format!(
                    "ghcr.io/selfhosted/{app}{suffix}:v{}.{}.{}",
                    1 + i % 4,
                    i % 13,
                    i % 7
                )
            };
            let flavor = FLAVORS[i % FLAVORS.len()];
            add(
                &ns,
                app,
                Kind::Deployment,
                vec![c(app, &image(""))],
                flavor,
                None,
                rng,
            );
            if cfg.pods_per_namespace >= 3 {
                add(
                    &ns,
                    &format!("{app}-worker"),
                    Kind::Deployment,
                    vec![c("worker", &image("-worker"))],
                    Flavor::Json,
                    None,
                    rng,
                );
                add(
                    &ns,
                    &format!("{app}-postgres"),
                    Kind::StatefulSet,
                    vec![c("postgres", "docker.io/library/postgres:16.2")],
                    Flavor::Postgres,
                    None,
                    rng,
                );
            }
            if i % 3 == 0 {
                cronjobs.push((ns.clone(), format!("{app}-backup"), rng.uuid()));
            }
        }
        let mut cluster = Cluster {
            app_pods_on: vec![Vec::new(); nodes.len()],
            pods_of: vec![Vec::new(); workloads.len()],
            app_pods_of_ns: Vec::new(),
            nodes,
            workloads,
            pods: Vec::new(),
            csi,
            port_ds,
            cronjobs,
        };
        // DaemonSet pods: one per node.
        for w in 0..first_app {
            for n in 0..cluster.nodes.len() {
                cluster.add_pod(w, n, None, t0, rng);
            }
        }
        // Application pods: the first Deployment gets two thirds, then the
        // worker Deployment, and one or two database replicas.
        let ppn = cfg.pods_per_namespace.max(1);
        let mut w = first_app;
        while w < cluster.workloads.len() {
            let group = if ppn >= 3 { 3 } else { 1 };
            let db = if ppn >= 6 { 2 } else { usize::from(ppn >= 3) };
            let main = if ppn >= 3 { (ppn - db) * 2 / 3 } else { ppn };
            let worker = ppn.saturating_sub(db + main);
            let counts = [main, worker, db];
            for (k, &count) in counts.iter().enumerate().take(group) {
                for r in 0..count {
                    let node = rng.below(cluster.nodes.len());
                    let ordinal = (cluster.workloads[w + k].kind == Kind::StatefulSet).then_some(r);
                    cluster.add_pod(w + k, node, ordinal, t0, rng);
                }
            }
            let mut in_ns: Vec<usize> = (w..w + group)
                .flat_map(|k| cluster.pods_of[k].iter().copied())
                .collect();
            in_ns.sort_unstable();
            cluster.app_pods_of_ns.push(in_ns);
            w += group;
        }
        cluster
    }

    fn add_pod(&mut self, w: usize, node: usize, ordinal: Option<usize>, t0: i64, rng: &mut Rng) {
        let wl = &self.workloads[w];
        let name = match (wl.kind, ordinal) {
            (Kind::StatefulSet, Some(o)) => format!("{}-{o}", wl.name),
            (Kind::Deployment, _) => format!("{}-{}-{}", wl.name, wl.hash, rng.k8s_suffix(5)),
            _ => format!("{}-{}", wl.name, rng.k8s_suffix(5)),
        };
        let created = t0 - 3_600_000_000 * (2 + rng.below(24 * 30) as i64);
        let n = wl.containers.len();
        let idx = self.pods.len();
        self.pods.push(PodInfo {
            workload: w,
            name,
            uid: rng.uuid(),
            node,
            ip: if wl.kind == Kind::DaemonSet {
                self.nodes[node].ip.clone()
            } else {
                format!("10.10.{}.{}", node, 2 + rng.below(250))
            },
            ready: true,
            restarts: 0,
            container_ids: (0..n).map(|_| rng.hex(64)).collect(),
            image_digests: (0..n).map(|_| rng.hex(64)).collect(),
            created,
            changed: created + 20_000_000,
        });
        self.pods_of[w].push(idx);
        if wl.kind != Kind::DaemonSet {
            self.app_pods_on[node].push(idx);
        }
    }

    /// The pod of DaemonSet `w` on `node`.
    fn ds_pod(&self, w: usize, node: usize) -> usize {
        self.pods_of[w]
            .iter()
            .copied()
            .find(|&p| self.pods[p].node == node)
            .unwrap_or(self.pods_of[w][0])
    }
}

// ---------------------------------------------------------------------------
// Kubernetes Events.

/// Everything of one Kubernetes Event occurrence but its last time and count.
#[derive(Clone, Debug)]
struct EventSpec {
    shape: Shape,
    ns: String,
    name: String,
    uid: String,
    obj_kind: &'static str,
    obj_api: &'static str,
    obj_name: String,
    obj_uid: String,
    field_path: Option<String>,
    reason: &'static str,
    message: String,
    warning: bool,
    component: &'static str,
    host: Option<String>,
    action: Option<&'static str>,
    first: i64,
    count: u32,
}

/// The failure kinds, each matching a shipped rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// FailedMount: CSI driver not registered (csi-driver-not-registered).
    FailedMount,
    /// liveness-probe cannot bind (csi-sidecar-port-conflict, port-bind-conflict).
    CsiPortLog,
    /// CSI plugin pod crash-loops (csi-plugin-crashloop).
    CsiPodCrash,
    /// A DaemonSet cannot bind its host port (port-bind-conflict).
    PortConflictLog,
    /// An application cannot lock its data files (storage-lock-failure).
    StorageLock,
    /// An image pull fails with manifest unknown (image-pull-failed).
    ImagePull,
}

impl Failure {
    fn shape_kind(self) -> ShapeKind {
        match self {
            Failure::FailedMount | Failure::ImagePull => ShapeKind::Event,
            Failure::CsiPodCrash => ShapeKind::Pod,
            Failure::CsiPortLog | Failure::PortConflictLog | Failure::StorageLock => ShapeKind::Log,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ShapeKind {
    Event,
    Pod,
    Node,
    Alert,
    Log,
}

fn shape_kind(s: Shape) -> ShapeKind {
    match s {
        Shape::PodWatch => ShapeKind::Pod,
        Shape::NodeWatch => ShapeKind::Node,
        Shape::Alertmanager => ShapeKind::Alert,
        Shape::VectorLog | Shape::FluentBitLog => ShapeKind::Log,
        _ => ShapeKind::Event,
    }
}

/// The stream: an iterator of NDJSON lines (without newline).
#[derive(Debug)]
pub struct Generator {
    cfg: Config,
    rng: Rng,
    cluster: Cluster,
    /// Stream clock, microseconds.
    clock: i64,
    resource_version: u64,
    /// Initial LIST still to emit: nodes then pods.
    initial: usize,
    /// Recent Events that may repeat (count + 1).
    recent: Vec<EventSpec>,
    /// FailedMount Events of the current episode, which kubelet repeats.
    mounts: Vec<EventSpec>,
    mounts_episode: i64,
    /// Recent alerts that may be notified again: (name, labels, startsAt, fingerprint).
    alerts: Vec<(String, String, i64, String)>,
    line: String,
}

impl Generator {
    pub fn new(cfg: Config) -> Generator {
        let mut rng = Rng::new(cfg.seed);
        let cluster = Cluster::build(&cfg, &mut rng);
        let initial = if cfg.mix == Mix::Mixed && cfg.only.is_none() && cfg.initial_list {
            cluster.nodes.len() + cluster.pods.len()
        } else {
            0
        };
        Generator {
            clock: cfg.start * 1_000_000,
            cfg,
            rng,
            cluster,
            resource_version: 50_300_000,
            initial,
            recent: Vec::new(),
            mounts: Vec::new(),
            mounts_episode: -1,
            alerts: Vec::new(),
            line: String::with_capacity(4096),
        }
    }

    /// The number of pods of the cluster.
    pub fn pods(&self) -> usize {
        self.cluster.pods.len()
    }

    /// The next line.
    pub fn next_line(&mut self) -> String {
        self.tick();
        self.line.clear();
        let total = self.cluster.nodes.len() + self.cluster.pods.len();
        if self.initial > 0 {
            let i = total - self.initial;
            self.initial -= 1;
            let t = self.clock;
            if i < self.cluster.nodes.len() {
                self.node_record(i, t, "ADDED");
            } else {
                self.pod_record(i - self.cluster.nodes.len(), t, "ADDED");
            }
            return self.line.clone();
        }
        let t = self.jittered();
        let failure = match self.cfg.noise_per_failure {
            Some(noise) => self.rng.chance(1.0 / (1.0 + noise.max(0.0))),
            None => false,
        };
        if failure && let Some(f) = self.pick_failure() {
            self.failure(f, t);
        } else {
            let shape = self.pick_shape();
            self.noise(shape, t);
        }
        self.line.clone()
    }

    fn tick(&mut self) {
        let mean = 1e6 / self.cfg.rate.max(1e-3);
        self.clock += (mean * 2.0 * self.rng.unit()) as i64;
    }

    /// The clock less a jitter: most under two seconds, some up to `max_jitter`.
    fn jittered(&mut self) -> i64 {
        let max = self.cfg.max_jitter.clamp(0.0, 59.0);
        let j = if self.rng.chance(0.9) {
            self.rng.unit() * max.min(2.0)
        } else {
            self.rng.unit() * max
        };
        self.clock - (j * 1e6) as i64
    }

    fn episode(&self) -> i64 {
        (self.clock / 1_000_000 - self.cfg.start).div_euclid(self.cfg.episode_secs.max(1))
    }

    fn rv(&mut self) -> u64 {
        self.resource_version += 1 + self.rng.below(7) as u64;
        self.resource_version
    }

    fn pick_shape(&mut self) -> Shape {
        if let Some(s) = self.cfg.only {
            return s;
        }
        const EVENT_SHAPES: [Shape; 4] = [
            Shape::CoreEventWatch,
            Shape::CoreEventBare,
            Shape::EventsV1Watch,
            Shape::EventsV1Bare,
        ];
        const EVENT_WEIGHTS: [u32; 4] = [50, 20, 20, 10];
        match self.cfg.mix {
            Mix::K8sEvents => EVENT_SHAPES[self.rng.weighted(&EVENT_WEIGHTS)],
            Mix::Logs => {
                if self.rng.chance(0.5) {
                    Shape::VectorLog
                } else {
                    Shape::FluentBitLog
                }
            }
            Mix::Mixed => match self.rng.weighted(&[55, 25, 12, 6, 2]) {
                0 => Shape::VectorLog, // the node decides the shipper
                1 => EVENT_SHAPES[self.rng.weighted(&EVENT_WEIGHTS)],
                2 => Shape::PodWatch,
                3 => Shape::NodeWatch,
                _ => Shape::Alertmanager,
            },
        }
    }

    fn pick_failure(&mut self) -> Option<Failure> {
        use Failure::*;
        let (kinds, weights): (&[Failure], &[u32]) = match self.cfg.mix {
            Mix::K8sEvents => (&[FailedMount, ImagePull], &[70, 30]),
            Mix::Logs => (&[CsiPortLog, PortConflictLog, StorageLock], &[20, 50, 30]),
            Mix::Mixed => (
                &[
                    FailedMount,
                    CsiPortLog,
                    CsiPodCrash,
                    PortConflictLog,
                    StorageLock,
                    ImagePull,
                ],
                &[40, 12, 5, 25, 10, 8],
            ),
        };
        let candidates: Vec<(Failure, u32)> = kinds
            .iter()
            .zip(weights)
            .filter(|(f, _)| {
                self.cfg
                    .only
                    .is_none_or(|s| shape_kind(s) == f.shape_kind())
            })
            .map(|(f, w)| (*f, *w))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let ws: Vec<u32> = candidates.iter().map(|c| c.1).collect();
        Some(candidates[self.rng.weighted(&ws)].0)
    }

    /// The shape of an Event record.
    fn event_shape(&mut self) -> Shape {
        match self.cfg.only {
            Some(s) if s.is_event() => s,
            _ => [
                Shape::CoreEventWatch,
                Shape::CoreEventBare,
                Shape::EventsV1Watch,
                Shape::EventsV1Bare,
            ][self.rng.weighted(&[50, 20, 20, 10])],
        }
    }

    fn noise(&mut self, shape: Shape, t: i64) {
        match shape_kind(shape) {
            ShapeKind::Event => self.noise_event(shape, t),
            ShapeKind::Pod => {
                let p = self.rng.below(self.cluster.pods.len());
                // A readiness blip now and then: NotReady, later Ready again.
                if self.rng.chance(0.03) {
                    let pod = &mut self.cluster.pods[p];
                    pod.ready = !pod.ready;
                    pod.changed = t;
                } else if !self.cluster.pods[p].ready && self.rng.chance(0.5) {
                    let pod = &mut self.cluster.pods[p];
                    pod.ready = true;
                    pod.changed = t;
                }
                self.pod_record(p, t, "MODIFIED");
            }
            ShapeKind::Node => {
                let n = self.rng.below(self.cluster.nodes.len());
                self.node_record(n, t, "MODIFIED");
            }
            ShapeKind::Alert => self.alert_record(t),
            ShapeKind::Log => {
                let p = self.rng.below(self.cluster.pods.len());
                let msg = self.noise_log_message(p, t);
                self.log_record(shape, p, 0, &msg, t, false);
            }
        }
    }

    fn failure(&mut self, f: Failure, t: i64) {
        let ep = self.episode();
        let nodes = self.cluster.nodes.len();
        let csi_nodes = [(ep as usize * 5) % nodes, (ep as usize * 5 + 1) % nodes];
        let csi = (ep as usize) % CSI_DRIVERS.len();
        match f {
            Failure::FailedMount => {
                if self.mounts_episode != ep {
                    self.mounts.clear();
                    self.mounts_episode = ep;
                }
                if !self.mounts.is_empty() && self.rng.chance(0.4) {
                    let i = self.rng.below(self.mounts.len());
                    let mut spec = self.mounts[i].clone();
                    spec.count += 1;
                    self.mounts[i].count += 1;
                    spec.shape = self.event_shape().with_watch(spec.shape);
                    self.event_record(&spec, t);
                    return;
                }
                let node = csi_nodes[self.rng.below(2)];
                let Some(p) = self.pick_app_pod(node) else {
                    return self.noise(Shape::CoreEventWatch, t);
                };
                let vol = self.rng.uuid();
                let message = format!(
                    "MountVolume.SetUp failed for volume \"pvc-{vol}\" : kubernetes.io/csi: mounter.SetUpAt failed to get CSI client: driver name {} not found in the list of registered CSI drivers",
                    CSI_DRIVERS[csi].driver
                );
                let shape = self.event_shape();
                let spec =
                    self.pod_event(shape, p, None, "FailedMount", message, true, "kubelet", t);
                self.event_record(&spec, t);
                self.mounts.push(spec);
                if self.mounts.len() > 256 {
                    self.mounts.swap_remove(0);
                }
            }
            Failure::ImagePull => {
                // Three namespaces pull from the failing registry.
                let registry = REGISTRIES[(ep as usize) % REGISTRIES.len()];
                let namespaces = self.cluster.app_pods_of_ns.len();
                let ns = (ep as usize * 3 + self.rng.below(3)) % namespaces.max(1);
                let p = match self.cluster.app_pods_of_ns.get(ns) {
                    Some(pods) if !pods.is_empty() => pods[self.rng.below(pods.len())],
                    _ => self.pick_app_pod_anywhere(),
                };
                let pod = &self.cluster.pods[p];
                let wl = &self.cluster.workloads[pod.workload];
                let (container, _) = &wl.containers[0];
                let image = format!("{registry}/{}/{}:v2.{}.0", wl.ns, container, ep % 9);
                let message = format!(
                    "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found: manifest unknown"
                );
                let field_path = Some(format!("spec.containers{{{container}}}"));
                let shape = self.event_shape();
                let spec =
                    self.pod_event(shape, p, field_path, "Failed", message, true, "kubelet", t);
                self.event_record(&spec, t);
            }
            Failure::CsiPortLog => {
                let node = csi_nodes[self.rng.below(2)];
                let p = self.cluster.ds_pod(self.cluster.csi[csi], node);
                let msg = format!(
                    "{}       1 main.go:157] failed to start http server with error: listen tcp 127.0.0.1:{}: bind: address already in use",
                    klog('F', t),
                    CSI_DRIVERS[csi].port
                );
                let shape = self.log_shape(node);
                self.log_record(shape, p, 0, &msg, t, true);
            }
            Failure::CsiPodCrash => {
                let node = csi_nodes[self.rng.below(2)];
                let p = self.cluster.ds_pod(self.cluster.csi[csi], node);
                let pod = &mut self.cluster.pods[p];
                pod.restarts += 1;
                pod.changed = t;
                self.pod_record(p, t, "MODIFIED");
            }
            Failure::PortConflictLog => {
                let which = (ep as usize) % self.cluster.port_ds.len();
                let node = (ep as usize * 7 + self.rng.below(3)) % nodes;
                let w = self.cluster.port_ds[which];
                let p = self.cluster.ds_pod(w, node);
                let template = self.cluster.workloads[w].bind_message.unwrap_or("");
                let msg = template.replace("{T}", &ts(t, 0).to_string());
                let shape = self.log_shape(node);
                self.log_record(shape, p, 0, &msg, t, true);
            }
            Failure::StorageLock => {
                let node = csi_nodes[self.rng.below(2)];
                let p = match self.pick_app_pod(node) {
                    Some(p) => p,
                    None => self.pick_app_pod_anywhere(),
                };
                let msg = match self.rng.below(3) {
                    0 => format!(
                        "{} 0 [ERROR] InnoDB: Unable to lock ./ibdata1 error: 11",
                        ts(t, 0).to_string().replace('T', " ").trim_end_matches('Z')
                    ),
                    1 => format!(
                        "{{\"level\":\"error\",\"ts\":\"{}\",\"msg\":\"failed to open bolt file: timeout\",\"path\":\"/data/index.db\"}}",
                        ts(t, 3)
                    ),
                    _ => format!(
                        "{} UTC [{}] ERROR:  could not open file \"base/16384/2601\": Stale file handle",
                        ts(t, 3).to_string().replace('T', " ").trim_end_matches('Z'),
                        100 + self.rng.below(9000)
                    ),
                };
                let shape = self.log_shape(self.cluster.pods[p].node);
                self.log_record(shape, p, 0, &msg, t, true);
            }
        }
    }

    fn pick_app_pod(&mut self, node: usize) -> Option<usize> {
        let on = &self.cluster.app_pods_on[node];
        if on.is_empty() {
            return None;
        }
        let i = self.rng.below(on.len());
        Some(on[i])
    }

    fn pick_app_pod_anywhere(&mut self) -> usize {
        loop {
            let p = self.rng.below(self.cluster.pods.len());
            if self.cluster.workloads[self.cluster.pods[p].workload].kind != Kind::DaemonSet {
                return p;
            }
        }
    }

    fn log_shape(&self, node: usize) -> Shape {
        match self.cfg.only {
            Some(s @ (Shape::VectorLog | Shape::FluentBitLog)) => s,
            _ if self.cluster.nodes[node].vector => Shape::VectorLog,
            _ => Shape::FluentBitLog,
        }
    }

    // -- Events -------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn pod_event(
        &mut self,
        shape: Shape,
        p: usize,
        field_path: Option<String>,
        reason: &'static str,
        message: String,
        warning: bool,
        component: &'static str,
        t: i64,
    ) -> EventSpec {
        let pod = &self.cluster.pods[p];
        let ns = self.cluster.workloads[pod.workload].ns.clone();
        let host = (component == "kubelet").then(|| self.cluster.nodes[pod.node].name.clone());
        let name = format!("{}.{}", pod.name, self.rng.hex(16));
        EventSpec {
            shape,
            ns,
            name,
            uid: self.rng.uuid(),
            obj_kind: "Pod",
            obj_api: "v1",
            obj_name: pod.name.clone(),
            obj_uid: pod.uid.clone(),
            field_path,
            reason,
            message,
            warning,
            component,
            host,
            action: None,
            first: t,
            count: 1,
        }
    }

    fn noise_event(&mut self, shape: Shape, t: i64) {
        // Repeats of a recent occurrence (same uid, higher count).
        if !self.recent.is_empty() && self.rng.chance(0.05) {
            let i = self.rng.below(self.recent.len());
            self.recent[i].count += 1;
            let mut spec = self.recent[i].clone();
            spec.shape = shape.with_watch(spec.shape);
            return self.event_record(&spec, t);
        }
        let spec = match self.rng.weighted(&[60, 14, 6, 8, 4]) {
            0 => {
                let p = self.pick_app_pod_anywhere();
                let pod = &self.cluster.pods[p];
                let wl = &self.cluster.workloads[pod.workload];
                let (container, image) = wl.containers[0].clone();
                let node = self.cluster.nodes[pod.node].name.clone();
                let (ns, pod_name, ip) = (wl.ns.clone(), pod.name.clone(), pod.ip.clone());
                let fp = Some(format!("spec.containers{{{container}}}"));
                match self.rng.weighted(&[14, 14, 18, 18, 18, 10, 8]) {
                    0 => {
                        let mut s = self.pod_event(
                            shape,
                            p,
                            None,
                            "Scheduled",
                            format!("Successfully assigned {ns}/{pod_name} to {node}"),
                            false,
                            "default-scheduler",
                            t,
                        );
                        s.action = Some("Binding");
                        s
                    }
                    1 => self.pod_event(
                        shape,
                        p,
                        fp,
                        "Pulling",
                        format!("Pulling image \"{image}\""),
                        false,
                        "kubelet",
                        t,
                    ),
                    2 => {
                        let msg = if self.rng.chance(0.7) {
                            format!("Container image \"{image}\" already present on machine")
                        } else {
                            format!(
                                "Successfully pulled image \"{image}\" in {}.{:03}s ({}.{:03}s including waiting). Image size: {} bytes.",
                                1 + self.rng.below(9),
                                self.rng.below(1000),
                                2 + self.rng.below(9),
                                self.rng.below(1000),
                                20_000_000 + self.rng.below(400_000_000)
                            )
                        };
                        self.pod_event(shape, p, fp, "Pulled", msg, false, "kubelet", t)
                    }
                    3 => self.pod_event(
                        shape,
                        p,
                        fp,
                        "Created",
                        format!("Created container {container}"),
                        false,
                        "kubelet",
                        t,
                    ),
                    4 => self.pod_event(
                        shape,
                        p,
                        fp,
                        "Started",
                        format!("Started container {container}"),
                        false,
                        "kubelet",
                        t,
                    ),
                    5 => self.pod_event(
                        shape,
                        p,
                        fp,
                        "Killing",
                        format!("Stopping container {container}"),
                        false,
                        "kubelet",
                        t,
                    ),
                    _ => {
                        let msg = format!(
                            "Readiness probe failed: Get \"http://{ip}:8080/healthz\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                        );
                        self.pod_event(shape, p, fp, "Unhealthy", msg, true, "kubelet", t)
                    }
                }
            }
            1 => {
                // A rollout step of a Deployment or its ReplicaSet.
                let p = self.pick_app_pod_anywhere();
                let w = self.cluster.pods[p].workload;
                let wl = &self.cluster.workloads[w];
                let rs = format!("{}-{}", wl.name, wl.hash);
                let (kind, api, name, uid, reason, message, component) =
                    if self.rng.chance(0.5) && wl.kind == Kind::Deployment {
                        let up = self.rng.chance(0.5);
                        (
                            "Deployment",
                            "apps/v1",
                            wl.name.clone(),
                            wl.uid.clone(),
                            "ScalingReplicaSet",
                            format!(
                                "Scaled {} replica set {rs} to {}",
                                if up { "up" } else { "down" },
                                1 + self.rng.below(3)
                            ),
                            "deployment-controller",
                        )
                    } else if wl.kind == Kind::Deployment {
                        (
                            "ReplicaSet",
                            "apps/v1",
                            rs,
                            wl.rs_uid.clone(),
                            "SuccessfulCreate",
                            format!("Created pod: {}", self.cluster.pods[p].name),
                            "replicaset-controller",
                        )
                    } else {
                        (
                            "StatefulSet",
                            "apps/v1",
                            wl.name.clone(),
                            wl.uid.clone(),
                            "SuccessfulCreate",
                            format!(
                                "create Pod {} in StatefulSet {} successful",
                                self.cluster.pods[p].name, wl.name
                            ),
                            "statefulset-controller",
                        )
                    };
                let ns = wl.ns.clone();
                self.object_event(
                    shape, &ns, kind, api, &name, &uid, reason, message, component, t,
                )
            }
            2 if !self.cluster.cronjobs.is_empty() => {
                let (ns, cj, uid) = self.rng.pick(&self.cluster.cronjobs).clone();
                let job = format!("{cj}-{}", 29_649_000 + (t / 60_000_000) % 100_000);
                let (reason, message) = if self.rng.chance(0.5) {
                    ("SuccessfulCreate", format!("Created job {job}"))
                } else {
                    (
                        "SawCompletedJob",
                        format!("Saw completed job: {job}, condition: Complete"),
                    )
                };
                self.object_event(
                    shape,
                    &ns,
                    "CronJob",
                    "batch/v1",
                    &cj,
                    &uid,
                    reason,
                    message,
                    "cronjob-controller",
                    t,
                )
            }
            3 => {
                let p = self.pick_app_pod_anywhere();
                let pod = &self.cluster.pods[p];
                let node = self.cluster.nodes[pod.node].name.clone();
                let msg =
                    format!("Pod sandbox changed, it will be killed and re-created. (node {node})");
                let mut s =
                    self.pod_event(shape, p, None, "SandboxChanged", msg, false, "kubelet", t);
                if self.rng.chance(0.5) {
                    s.reason = "Completed";
                    s.message = "Job completed".to_string();
                    s.component = "job-controller";
                    s.host = None;
                }
                s
            }
            _ => {
                let n = self.rng.below(self.cluster.nodes.len());
                let node = &self.cluster.nodes[n];
                let (name, uid) = (node.name.clone(), node.uid.clone());
                let (reason, message) = if self.rng.chance(0.5) {
                    (
                        "NodeHasSufficientMemory",
                        format!("Node {name} status is now: NodeHasSufficientMemory"),
                    )
                } else {
                    (
                        "RegisteredNode",
                        format!("Node {name} event: Registered Node {name} in Controller"),
                    )
                };
                let component = if reason == "RegisteredNode" {
                    "node-controller"
                } else {
                    "kubelet"
                };
                let mut s = self.object_event(
                    shape, "default", "Node", "v1", &name, &uid, reason, message, component, t,
                );
                if component == "kubelet" {
                    s.host = Some(name);
                }
                s
            }
        };
        self.event_record(&spec, t);
        if self.recent.len() < 64 {
            self.recent.push(spec);
        } else {
            let i = self.rng.below(64);
            self.recent[i] = spec;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn object_event(
        &mut self,
        shape: Shape,
        ns: &str,
        kind: &'static str,
        api: &'static str,
        name: &str,
        uid: &str,
        reason: &'static str,
        message: String,
        component: &'static str,
        t: i64,
    ) -> EventSpec {
        EventSpec {
            shape,
            ns: ns.to_string(),
            name: format!("{name}.{}", self.rng.hex(16)),
            uid: self.rng.uuid(),
            obj_kind: kind,
            obj_api: api,
            obj_name: name.to_string(),
            obj_uid: uid.to_string(),
            field_path: None,
            reason,
            message,
            warning: false,
            component,
            host: None,
            action: None,
            first: t,
            count: 1,
        }
    }

    fn event_record(&mut self, e: &EventSpec, t: i64) {
        let rv = self.rv();
        let obj_rv = 47_000_000 + rv % 1_000_000;
        let last = t.max(e.first);
        let created = ts(e.first, 0);
        let watch = matches!(e.shape, Shape::CoreEventWatch | Shape::EventsV1Watch);
        let s = &mut self.line;
        if watch {
            let kind = if e.count > 1 { "MODIFIED" } else { "ADDED" };
            let _ = write!(s, r#"{{"type":"{kind}","object":"#);
        }
        let typ = if e.warning { "Warning" } else { "Normal" };
        let fp = |s: &mut String| {
            if let Some(fp) = &e.field_path {
                let _ = write!(s, r#","fieldPath":{}"#, J(fp));
            }
        };
        let object_ref = |s: &mut String| {
            let _ = write!(
                s,
                r#"{{"kind":"{}","namespace":{},"name":{},"uid":"{}","apiVersion":"{}","resourceVersion":"{obj_rv}""#,
                e.obj_kind,
                J(&e.ns),
                J(&e.obj_name),
                e.obj_uid,
                e.obj_api
            );
            fp(s);
            s.push('}');
        };
        let host = e.host.as_deref();
        match e.shape {
            Shape::CoreEventWatch | Shape::CoreEventBare => {
                let _ = write!(
                    s,
                    r#"{{"apiVersion":"v1","kind":"Event","metadata":{{"name":{},"namespace":{},"uid":"{}","resourceVersion":"{rv}","creationTimestamp":"{created}"}},"involvedObject":"#,
                    J(&e.name),
                    J(&e.ns),
                    e.uid
                );
                object_ref(s);
                let _ = write!(
                    s,
                    r#","reason":"{}","message":{},"source":{{"#,
                    e.reason,
                    J(&e.message)
                );
                let mut first_field = true;
                if e.component != "default-scheduler" {
                    let _ = write!(s, r#""component":"{}""#, e.component);
                    first_field = false;
                }
                if let Some(h) = host {
                    let _ = write!(
                        s,
                        r#"{}"host":{}"#,
                        if first_field { "" } else { "," },
                        J(h)
                    );
                }
                s.push('}');
                if e.component == "default-scheduler" {
                    let _ = write!(
                        s,
                        r#","firstTimestamp":null,"lastTimestamp":null,"type":"{typ}","eventTime":"{}","action":"Binding","reportingComponent":"default-scheduler","reportingInstance":"default-scheduler-{}"}}"#,
                        ts(last, 6),
                        host.unwrap_or("wrk-01")
                    );
                } else {
                    let _ = write!(
                        s,
                        r#","firstTimestamp":"{created}","lastTimestamp":"{}","count":{},"type":"{typ}","eventTime":null,"reportingComponent":"{}","reportingInstance":{}}}"#,
                        ts(last, 0),
                        e.count,
                        e.component,
                        J(host.unwrap_or(""))
                    );
                }
            }
            _ => {
                let event_time = if e.component == "default-scheduler" {
                    format!("\"{}\"", ts(last, 6))
                } else {
                    "null".to_string()
                };
                let _ = write!(
                    s,
                    r#"{{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{{"name":{},"namespace":{},"uid":"{}","resourceVersion":"{rv}","creationTimestamp":"{created}"}},"eventTime":{event_time},"#,
                    J(&e.name),
                    J(&e.ns),
                    e.uid
                );
                if e.count > 1 {
                    let _ = write!(
                        s,
                        r#""series":{{"count":{},"lastObservedTime":"{}"}},"#,
                        e.count,
                        ts(last, 6)
                    );
                }
                let _ = write!(
                    s,
                    r#""reportingController":"{}","reportingInstance":{},"#,
                    e.component,
                    J(host.unwrap_or(""))
                );
                if let Some(a) = e.action {
                    let _ = write!(s, r#""action":"{a}","#);
                }
                let _ = write!(s, r#""reason":"{}","regarding":"#, e.reason);
                object_ref(s);
                let _ = write!(
                    s,
                    r#","note":{},"type":"{typ}","deprecatedSource":{{"component":"{}""#,
                    J(&e.message),
                    e.component
                );
                if let Some(h) = host {
                    let _ = write!(s, r#","host":{}"#, J(h));
                }
                let _ = write!(
                    s,
                    r#"}},"deprecatedFirstTimestamp":"{created}","deprecatedLastTimestamp":"{}","deprecatedCount":{}}}"#,
                    ts(last, 0),
                    e.count
                );
            }
        }
        if watch {
            let _ = write!(s, r#","observedAt":"{}"}}"#, ts(last + 150_000, 6));
        }
    }

    // -- Pods and Nodes -----------------------------------------------------

    fn pod_record(&mut self, p: usize, t: i64, watch_type: &str) {
        let rv = self.rv();
        let pod = &self.cluster.pods[p];
        let wl = &self.cluster.workloads[pod.workload];
        let node = &self.cluster.nodes[pod.node];
        let csi = self.cluster.csi.contains(&pod.workload);
        // A CSI plugin pod with restarts crash-loops its liveness-probe.
        let crashing = csi && pod.restarts > 0 && t - pod.changed < 600_000_000;
        let ready = pod.ready && !crashing;
        let s = &mut self.line;
        let _ = write!(
            s,
            r#"{{"type":"{watch_type}","object":{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":{},"generateName":{},"namespace":{},"uid":"{}","resourceVersion":"{rv}","creationTimestamp":"{}","labels":{{"app.kubernetes.io/name":{},"app.kubernetes.io/instance":{},"#,
            J(&pod.name),
            J(&format!(
                "{}-",
                pod.name.rsplit_once('-').map_or(pod.name.as_str(), |x| x.0)
            )),
            J(&wl.ns),
            pod.uid,
            ts(pod.created, 0),
            J(&wl.name),
            J(&wl.name),
        );
        let (owner_kind, owner_name, owner_uid) = match wl.kind {
            Kind::Deployment => {
                let _ = write!(s, r#""pod-template-hash":"{}"}}"#, wl.hash);
                ("ReplicaSet", format!("{}-{}", wl.name, wl.hash), &wl.rs_uid)
            }
            Kind::StatefulSet => {
                let _ = write!(
                    s,
                    r#""controller-revision-hash":"{}-{}","statefulset.kubernetes.io/pod-name":{}}}"#,
                    wl.name,
                    wl.hash,
                    J(&pod.name)
                );
                ("StatefulSet", wl.name.clone(), &wl.uid)
            }
            Kind::DaemonSet => {
                let _ = write!(
                    s,
                    r#""controller-revision-hash":"{}","pod-template-generation":"3"}}"#,
                    wl.hash
                );
                ("DaemonSet", wl.name.clone(), &wl.uid)
            }
        };
        let _ = write!(
            s,
            r#","ownerReferences":[{{"apiVersion":"apps/v1","kind":"{owner_kind}","name":{},"uid":"{owner_uid}","controller":true,"blockOwnerDeletion":true}}]}},"spec":{{"containers":["#,
            J(&owner_name)
        );
        for (i, (c, image)) in wl.containers.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                r#"{{"name":{},"image":{},"imagePullPolicy":"IfNotPresent"}}"#,
                J(c),
                J(image)
            );
        }
        let host_network = wl.kind == Kind::DaemonSet;
        let _ = write!(
            s,
            r#"],"restartPolicy":"Always","schedulerName":"default-scheduler","serviceAccountName":{},"terminationGracePeriodSeconds":30,"volumes":[{{"name":"kube-api-access-{}","projected":{{"defaultMode":420}}}}],"nodeName":{},"#,
            J(&wl.name),
            &pod.uid[..5],
            J(&node.name)
        );
        if host_network {
            s.push_str(r#""hostNetwork":true,"dnsPolicy":"ClusterFirstWithHostNet"},"#);
        } else {
            s.push_str(r#""dnsPolicy":"ClusterFirst"},"#);
        }
        let started = ts(pod.created + 20_000_000, 0);
        let changed = ts(pod.changed, 0);
        let (ready_status, ready_extra) = if ready {
            ("True", String::new())
        } else {
            let c = &wl.containers[0].0;
            (
                "False",
                format!(
                    r#","reason":"ContainersNotReady","message":"containers with unready status: [{c}]""#
                ),
            )
        };
        let _ = write!(
            s,
            r#""status":{{"phase":"Running","conditions":[{{"type":"PodReadyToStartContainers","status":"True","lastProbeTime":null,"lastTransitionTime":"{started}"}},{{"type":"Initialized","status":"True","lastProbeTime":null,"lastTransitionTime":"{started}"}},{{"type":"Ready","status":"{ready_status}","lastProbeTime":null,"lastTransitionTime":"{changed}"{ready_extra}}},{{"type":"ContainersReady","status":"{ready_status}","lastProbeTime":null,"lastTransitionTime":"{changed}"{ready_extra}}},{{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"{started}"}}],"hostIP":"{}","hostIPs":[{{"ip":"{}"}}],"podIP":"{}","podIPs":[{{"ip":"{}"}}],"startTime":"{}","containerStatuses":["#,
            node.ip,
            node.ip,
            pod.ip,
            pod.ip,
            ts(pod.created, 0)
        );
        for (i, (c, image)) in wl.containers.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let repo = image.rsplit_once(':').map_or(image.as_str(), |x| x.0);
            let digest = &pod.image_digests[i];
            let cid = &pod.container_ids[i];
            if crashing && i == 0 {
                let _ = write!(
                    s,
                    r#"{{"name":{},"image":{},"state":{{"waiting":{{"reason":"CrashLoopBackOff","message":"back-off {}s restarting failed container={c} pod={}_{}({})"}}}},"imageID":"{repo}@sha256:{digest}","containerID":"containerd://{cid}","started":false,"lastState":{{"terminated":{{"exitCode":255,"reason":"Error","startedAt":"{}","finishedAt":"{changed}","containerID":"containerd://{cid}"}}}},"ready":false,"restartCount":{}}}"#,
                    J(c),
                    J(image),
                    10u32 << pod.restarts.min(5),
                    pod.name,
                    wl.ns,
                    pod.uid,
                    ts(pod.changed - 2_000_000, 0),
                    pod.restarts
                );
            } else {
                let _ = write!(
                    s,
                    r#"{{"name":{},"image":{},"state":{{"running":{{"startedAt":"{started}"}}}},"imageID":"{repo}@sha256:{digest}","containerID":"containerd://{cid}","started":true,"lastState":{{}},"ready":{ready},"restartCount":0}}"#,
                    J(c),
                    J(image),
                );
            }
        }
        let _ = write!(
            s,
            r#"],"qosClass":"Burstable"}}}},"observedAt":"{}"}}"#,
            ts(t, 6)
        );
    }

    fn node_record(&mut self, n: usize, t: i64, watch_type: &str) {
        let rv = self.rv();
        let node = &self.cluster.nodes[n];
        let hb = ts(t - 500_000, 0);
        let since = ts(node.created + 3_600_000_000, 0);
        let name = &node.name;
        let cond = |kind: &str, status: &str, reason: &str, message: &str| {
            format!(
                r#"{{"type":"{kind}","status":"{status}","lastHeartbeatTime":"{hb}","lastTransitionTime":"{since}","reason":"{reason}","message":"{message}"}}"#
            )
        };
        let _ = write!(
            self.line,
            r#"{{"type":"{watch_type}","object":{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}","uid":"{}","resourceVersion":"{rv}","creationTimestamp":"{}","labels":{{"beta.kubernetes.io/arch":"amd64","beta.kubernetes.io/os":"linux","kubernetes.io/arch":"amd64","kubernetes.io/hostname":"{name}","kubernetes.io/os":"linux","node.kubernetes.io/instance-type":"m6i.2xlarge"}},"annotations":{{"node.alpha.kubernetes.io/ttl":"0","volumes.kubernetes.io/controller-managed-attach-detach":"true"}}}},"spec":{{"podCIDR":"10.10.{n}.0/24","podCIDRs":["10.10.{n}.0/24"]}},"status":{{"addresses":[{{"type":"InternalIP","address":"{}"}},{{"type":"Hostname","address":"{name}"}}],"allocatable":{{"cpu":"8","ephemeral-storage":"95491281146","memory":"32725260Ki","pods":"110"}},"capacity":{{"cpu":"8","ephemeral-storage":"103612624Ki","memory":"32827660Ki","pods":"110"}},"conditions":[{},{},{},{}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":10250}}}},"nodeInfo":{{"architecture":"amd64","bootID":"{}","containerRuntimeVersion":"containerd://1.7.13","kernelVersion":"6.8.0-31-generic","kubeProxyVersion":"v1.30.1","kubeletVersion":"v1.30.1","machineID":"{}","operatingSystem":"linux","osImage":"Ubuntu 24.04 LTS","systemUUID":"{}"}}}}}},"observedAt":"{}"}}"#,
            node.uid,
            ts(node.created, 0),
            node.ip,
            cond(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available"
            ),
            cond(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure"
            ),
            cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available"
            ),
            cond(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status"
            ),
            node.boot_id,
            node.machine_id,
            node.uid,
            ts(t, 6)
        );
    }

    // -- Alerts -------------------------------------------------------------

    fn alert_record(&mut self, t: i64) {
        const WATCHDOG_DESC: &str = "This is an alert meant to ensure that the entire alerting pipeline is functional.\nThis alert is always firing, therefore it should always be firing in Alertmanager\nand always fire against a receiver. There are integrations with various notification\nmechanisms that send a notification when this alert is not firing.";
        let (name, labels, starts, fingerprint, summary, desc, receiver) = if self.rng.chance(0.4) {
            (
                "Watchdog".to_string(),
                r#""alertname":"Watchdog","prometheus":"monitoring/prometheus","severity":"none""#.to_string(),
                (self.cfg.start - 4 * 86_400) * 1_000_000 + 834_000,
                "141573e1f6690741".to_string(),
                "An alert that should always be firing to certify that Alertmanager is working as expected.".to_string(),
                WATCHDOG_DESC.to_string(),
                "deadmanssnitch",
            )
        } else if !self.alerts.is_empty() && self.rng.chance(0.5) {
            // A repeat notification of a recent alert.
            let (name, labels, starts, fp) = self.rng.pick(&self.alerts).clone();
            (
                name,
                labels,
                starts,
                fp,
                "Processes experience elevated CPU throttling.".to_string(),
                "Some containers of a pod experience CPU throttling above 25%.".to_string(),
                "default",
            )
        } else {
            let p = self.pick_app_pod_anywhere();
            let pod = &self.cluster.pods[p];
            let wl = &self.cluster.workloads[pod.workload];
            let labels = format!(
                r#""alertname":"CPUThrottlingHigh","container":{},"namespace":{},"pod":{},"prometheus":"monitoring/prometheus","severity":"info""#,
                J(&wl.containers[0].0),
                J(&wl.ns),
                J(&pod.name)
            );
            let fp = self.rng.hex(16);
            let a = ("CPUThrottlingHigh".to_string(), labels, t, fp);
            if self.alerts.len() < 32 {
                self.alerts.push(a.clone());
            } else {
                let i = self.rng.below(32);
                self.alerts[i] = a.clone();
            }
            (
                a.0,
                a.1,
                a.2,
                a.3,
                "Processes experience elevated CPU throttling.".to_string(),
                "Some containers of a pod experience CPU throttling above 25%.".to_string(),
                "default",
            )
        };
        let annotations = format!(
            r#"{{"description":{},"runbook_url":"https://runbooks.prometheus-operator.dev/runbooks/general/{}","summary":{}}}"#,
            J(&desc),
            name.to_lowercase(),
            J(&summary)
        );
        let _ = write!(
            self.line,
            r#"{{"receiver":"{receiver}","status":"firing","alerts":[{{"status":"firing","labels":{{{labels}}},"annotations":{annotations},"startsAt":"{}","endsAt":"0001-01-01T00:00:00Z","generatorURL":"https://prometheus.lab.internal/graph?g0.expr=vector%281%29&g0.tab=1","fingerprint":"{fingerprint}"}}],"groupLabels":{{"alertname":"{name}"}},"commonLabels":{{{labels}}},"commonAnnotations":{annotations},"externalURL":"https://alertmanager.lab.internal","version":"4","groupKey":{},"truncatedAlerts":0}}"#,
            ts(starts, 3),
            J(&format!(
                "{{}}/{{alertname=\"{name}\"}}:{{alertname=\"{name}\"}}"
            ))
        );
    }

    // -- Logs ---------------------------------------------------------------

    fn noise_log_message(&mut self, p: usize, t: i64) -> String {
        let pod = &self.cluster.pods[p];
        let wl = &self.cluster.workloads[pod.workload];
        let flavor = wl.flavor;
        let ns = wl.ns.clone();
        let r = &mut self.rng;
        // Benign warnings and errors, as healthy clusters have them.
        if r.chance(0.04) {
            return match r.below(4) {
                0 => format!("http: TLS handshake error from 10.10.{}.{}:{}: EOF", r.below(24), r.below(250), 30_000 + r.below(30_000)),
                1 => format!(
                    "[ERROR] plugin/errors: 2 api.github.com. AAAA: read udp 10.10.0.{}:{}->1.1.1.1:53: i/o timeout",
                    2 + r.below(200),
                    30_000 + r.below(30_000)
                ),
                2 => format!("time=\"{}\" level=warning msg=\"Unable to resolve client IP\" ip=10.10.{}.{}", ts(t, 0), r.below(24), r.below(250)),
                _ => "WARN  [o.a.k.c.NetworkClient] [Consumer clientId=app-1, groupId=app] Connection to node -1 (kafka-bootstrap/10.96.0.12:9092) could not be established. Broker may not be available.".to_string(),
            };
        }
        const PATHS: [&str; 8] = [
            "/api/v1/items?page=2",
            "/healthz",
            "/metrics",
            "/static/js/main.8f3a2c1d.js",
            "/api/v2/notifications",
            "/login",
            "/api/v1/search?q=backup&limit=25",
            "/favicon.ico",
        ];
        const AGENTS: [&str; 4] = [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
            "kube-probe/1.30",
            "Prometheus/2.51.2",
        ];
        match flavor {
            Flavor::Web => format!(
                "10.10.{}.{} - - [{}] \"{} {} HTTP/1.1\" {} {} \"-\" \"{}\"",
                r.below(24),
                r.below(250),
                clf(t),
                if r.chance(0.85) { "GET" } else { "POST" },
                r.pick(&PATHS),
                [200, 200, 200, 304, 302, 404][r.below(6)],
                100 + r.below(40_000),
                r.pick(&AGENTS)
            ),
            Flavor::Go => format!(
                "time=\"{}\" level=info msg=\"{}\" component=controller namespace={ns} duration={}.{}ms",
                ts(t, 0),
                [
                    "reconciled object",
                    "sync loop completed",
                    "refreshed leases",
                    "watch channel renewed"
                ][r.below(4)],
                r.below(90),
                r.below(10)
            ),
            Flavor::Json => format!(
                "{{\"level\":\"info\",\"ts\":\"{}\",\"logger\":\"http\",\"msg\":\"handled request\",\"method\":\"GET\",\"path\":\"{}\",\"status\":200,\"duration_ms\":{}.{},\"request_id\":\"{}\"}}",
                ts(t, 3),
                r.pick(&PATHS),
                r.below(200),
                r.below(10),
                r.hex(16)
            ),
            Flavor::Postgres => format!(
                "{} UTC [{}] LOG:  checkpoint complete: wrote {} buffers ({}.{}%); 0 WAL file(s) added, 0 removed, 1 recycled; write={}.{:03} s, sync=0.004 s, total={}.{:03} s",
                ts(t, 3).to_string().replace('T', " ").trim_end_matches('Z'),
                60 + r.below(200),
                r.below(500),
                r.below(3),
                r.below(10),
                r.below(30),
                r.below(1000),
                r.below(30),
                r.below(1000)
            ),
            Flavor::Exporter => format!(
                "ts={} caller=node_exporter.go:117 level=info collector={}",
                ts(t, 3),
                [
                    "cpu",
                    "diskstats",
                    "filesystem",
                    "meminfo",
                    "netdev",
                    "loadavg"
                ][r.below(6)]
            ),
            Flavor::Klog => format!(
                "[INFO] 10.10.{}.{}:{} - {} \"A IN {}.{ns}.svc.cluster.local. udp 56 false 512\" NOERROR qr,aa,rd 98 0.000{}s",
                r.below(24),
                r.below(250),
                30_000 + r.below(30_000),
                r.below(65_536),
                ["api", "db", "cache", "web"][r.below(4)],
                100 + r.below(900)
            ),
        }
    }

    /// A log record of container `c` of pod `p`.
    fn log_record(&mut self, shape: Shape, p: usize, c: usize, msg: &str, t: i64, stderr: bool) {
        let pod = &self.cluster.pods[p];
        let wl = &self.cluster.workloads[pod.workload];
        let node = &self.cluster.nodes[pod.node];
        // In the mixed stream the node decides the shipper.
        let shape = match (self.cfg.only, self.cfg.mix) {
            (None, Mix::Mixed) => {
                if node.vector {
                    Shape::VectorLog
                } else {
                    Shape::FluentBitLog
                }
            }
            _ => shape,
        };
        let (container, image) = &wl.containers[c.min(wl.containers.len() - 1)];
        let stream = if stderr || self.rng.chance(0.1) {
            "stderr"
        } else {
            "stdout"
        };
        let cid = &pod.container_ids[c.min(pod.container_ids.len() - 1)];
        let s = &mut self.line;
        let labels = |s: &mut String, key: &str| {
            let _ = write!(
                s,
                r#""{key}":{{"app.kubernetes.io/name":{},"app.kubernetes.io/instance":{},"#,
                J(&wl.name),
                J(&wl.name)
            );
            match wl.kind {
                Kind::Deployment => {
                    let _ = write!(s, r#""pod-template-hash":"{}"}}"#, wl.hash);
                }
                Kind::StatefulSet => {
                    let _ = write!(
                        s,
                        r#""controller-revision-hash":"{}-{}"}}"#,
                        wl.name, wl.hash
                    );
                }
                Kind::DaemonSet => {
                    let _ = write!(
                        s,
                        r#""controller-revision-hash":"{}","pod-template-generation":"3"}}"#,
                        wl.hash
                    );
                }
            }
        };
        if shape == Shape::VectorLog {
            let owner = match wl.kind {
                Kind::Deployment => format!("ReplicaSet/{}-{}", wl.name, wl.hash),
                k => format!("{}/{}", k.as_str(), wl.name),
            };
            let _ = write!(
                s,
                r#"{{"file":"/var/log/pods/{}_{}_{}/{container}/0.log","kubernetes":{{"container_id":"containerd://{cid}","container_image":{},"container_name":{},"pod_ip":"{}","#,
                wl.ns,
                pod.name,
                pod.uid,
                J(image),
                J(container),
                pod.ip
            );
            labels(s, "pod_labels");
            let _ = write!(
                s,
                r#","pod_name":{},"pod_namespace":{},"pod_node_name":{},"pod_owner":{},"pod_uid":"{}"}},"message":{},"source_type":"kubernetes_logs","stream":"{stream}","timestamp":"{}"}}"#,
                J(&pod.name),
                J(&wl.ns),
                J(&node.name),
                J(&owner),
                pod.uid,
                J(msg),
                ts(t, 9)
            );
        } else {
            let _ = write!(
                s,
                r#"{{"log":{},"stream":"{stream}","time":"{}","kubernetes":{{"pod_name":{},"namespace_name":{},"pod_id":"{}","#,
                J(&format!("{msg}\n")),
                ts(t, 9),
                J(&pod.name),
                J(&wl.ns),
                pod.uid
            );
            labels(s, "labels");
            let _ = write!(
                s,
                r#","host":{},"pod_ip":"{}","container_name":{},"docker_id":"{cid}","container_image":{}}}}}"#,
                J(&node.name),
                pod.ip,
                J(container),
                J(image)
            );
        }
    }
}

impl Shape {
    /// Keeps an Event's API group but takes the watch/bare form of `self`
    /// when `self` is an Event shape.
    fn with_watch(self, original: Shape) -> Shape {
        let v1 = matches!(original, Shape::CoreEventWatch | Shape::CoreEventBare);
        let watch = matches!(self, Shape::CoreEventWatch | Shape::EventsV1Watch);
        match (v1, watch) {
            (true, true) => Shape::CoreEventWatch,
            (true, false) => Shape::CoreEventBare,
            (false, true) => Shape::EventsV1Watch,
            (false, false) => Shape::EventsV1Bare,
        }
    }
}

impl Iterator for Generator {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        Some(self.next_line())
    }
}

/// A core/v1 watch event: `FailedMount` of pod `i` (namespace `i % 40`) on
/// node `i % nodes`, kubelet has no CSI driver `smb.csi.k8s.io`, at `micros`.
/// The effect signal `csi-driver-not-registered`; with no CSI plugin failure
/// anywhere it waits for a cause (see `bin/held.rs`).
pub fn failed_mount_line(i: u64, nodes: u64, micros: i64) -> String {
    let ns = APPS[(i % APPS.len() as u64) as usize];
    let node = i % nodes.max(1);
    let mut rng = Rng::new(i);
    let pod = format!("{ns}-{}-{}", rng.k8s_suffix(10), rng.k8s_suffix(5));
    let t = ts(micros, 0);
    format!(
        r#"{{"type":"ADDED","object":{{"apiVersion":"v1","kind":"Event","metadata":{{"name":"{pod}.{}","namespace":"{ns}","uid":"{}","resourceVersion":"{}","creationTimestamp":"{t}"}},"involvedObject":{{"kind":"Pod","namespace":"{ns}","name":"{pod}","uid":"{}","apiVersion":"v1","resourceVersion":"48308770"}},"reason":"FailedMount","message":"MountVolume.SetUp failed for volume \"pvc-{}\" : kubernetes.io/csi: mounter.SetUpAt failed to get CSI client: driver name smb.csi.k8s.io not found in the list of registered CSI drivers","source":{{"component":"kubelet","host":"node-{node:05}"}},"firstTimestamp":"{t}","lastTimestamp":"{t}","count":1,"type":"Warning","eventTime":null,"reportingComponent":"kubelet","reportingInstance":"node-{node:05}"}},"observedAt":"{}"}}"#,
        rng.hex(16),
        rng.uuid(),
        50_000_000 + i,
        rng.uuid(),
        rng.uuid(),
        ts(micros + 120_000, 6)
    )
}

/// Owned events of `lines`, decoded with a fresh decoder (lines that yield
/// nothing, such as Pod heartbeats and relist replays, are skipped).
pub fn decode_owned(lines: &[String]) -> Vec<correlate::Event<'static>> {
    let mut decoder = ingest::Decoder::default();
    let mut out = Vec::with_capacity(lines.len());
    let mut evs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        evs.clear();
        let origin = correlate::Origin {
            file: 0,
            line: i as u64 + 1,
        };
        if decoder.decode(line, origin, &mut evs).is_ok() {
            out.extend(evs.drain(..).map(correlate::Event::into_owned));
        }
    }
    out
}

/// The shipped rule pack: `rules/*.yaml` of the workspace (rule tests,
/// `*.test.yaml`, excluded), compiled.
pub fn shipped_rules() -> std::sync::Arc<correlate::rules::RuleSet> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.retain(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.contains(".test.")
    });
    paths.sort();
    let sources: Vec<correlate::rules::RuleSource> = paths
        .iter()
        .filter_map(|p| {
            Some(correlate::rules::RuleSource {
                name: p.display().to_string(),
                text: std::fs::read_to_string(p).ok()?,
            })
        })
        .collect();
    assert!(!sources.is_empty(), "no rule files in {}", dir.display());
    match correlate::rules::compile(&sources) {
        Ok(rules) => std::sync::Arc::new(rules),
        Err(e) => panic!("the shipped rules do not compile: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn time_formatting() {
        assert_eq!(
            ts(DEFAULT_START * 1_000_000, 0).to_string(),
            "2026-05-17T04:30:00Z"
        );
        assert_eq!(
            ts(DEFAULT_START * 1_000_000 + 1_500, 6).to_string(),
            "2026-05-17T04:30:00.001500Z"
        );
        assert_eq!(clf(DEFAULT_START * 1_000_000), "17/May/2026:04:30:00 +0000");
        assert_eq!(
            klog('F', DEFAULT_START * 1_000_000 + 7),
            "F0517 04:30:00.000007"
        );
    }

    #[test]
    fn deterministic() {
        assert_eq!(generate(Mix::Mixed, 500, 7), generate(Mix::Mixed, 500, 7));
        assert_ne!(generate(Mix::Mixed, 500, 7), generate(Mix::Mixed, 500, 8));
    }

    #[test]
    fn every_line_decodes() {
        for mix in Mix::ALL {
            let lines = generate(mix, 20_000, 1);
            let mut d = ingest::Decoder::default();
            let mut evs = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                serde_json::from_str::<serde_json::Value>(l).unwrap();
                evs.clear();
                let origin = correlate::Origin {
                    file: 0,
                    line: i as u64,
                };
                if let Err(e) = d.decode(l, origin, &mut evs) {
                    panic!("{mix} line {i}: {e}\n{l}");
                }
            }
        }
        for shape in Shape::ALL {
            for l in generate_shape(shape, 300, 2) {
                let mut d = ingest::Decoder::default();
                let mut evs = Vec::new();
                d.decode(&l, correlate::Origin::default(), &mut evs)
                    .unwrap();
            }
        }
    }

    #[test]
    fn failures_match_rules() {
        let rules = shipped_rules();
        let classifier = correlate::Classifier::new(rules);
        for mix in Mix::ALL {
            let events = decode_owned(&generate_failures(mix, 2_000, 3));
            let mut hits = Vec::new();
            let matched = events
                .iter()
                .filter(|e| {
                    hits.clear();
                    classifier.classify(e, &mut hits);
                    !hits.is_empty()
                })
                .count();
            assert!(
                matched * 10 >= events.len() * 9,
                "{mix}: {matched} of {}",
                events.len()
            );
        }
    }
}

//! Many clusters in one stream: each is correlated on its own. Records name
//! their cluster with a `cluster` field (an Alertmanager alert with its
//! `cluster` label); `replay --cluster NAME` names the cluster of records
//! that name none.
//!
//! The invariant: replaying clusters' records interleaved, in any order
//! that keeps each cluster's own order, forms for each cluster exactly the
//! incidents that replaying that cluster alone forms (ids, roots, blast
//! radius, timing, every byte), and the whole output is the same whatever
//! the interleaving.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use serde_json::Value;

use crate::support::{bin, essence, every_stream, root};

fn replay(input: &Path, cluster: Option<&str>) -> String {
    let mut cmd = bin();
    cmd.arg("replay").arg("--rules").arg(root().join("rules"));
    if let Some(c) = cluster {
        cmd.arg("--cluster").arg(c);
    }
    let out = cmd.arg(input).output().expect("run epicenter");
    assert!(
        out.status.success(),
        "replay {}: {}",
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Output lines by the cluster they name (`""`: none).
fn by_cluster(out: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in out.lines() {
        let v: Value = serde_json::from_str(line).expect("incident json");
        let cluster = v["cluster"].as_str().unwrap_or_default().to_owned();
        map.entry(cluster).or_default().push(line.to_owned());
    }
    map
}

/// A line given to `cluster`: a `cluster` field, or on an Alertmanager
/// body a `cluster` label on each alert when `as_label`.
fn name_cluster(line: &str, cluster: &str, as_label: bool) -> Value {
    let mut v: Value = serde_json::from_str(line).expect("stream line");
    if as_label && let Some(alerts) = v.get_mut("alerts").and_then(Value::as_array_mut) {
        for a in alerts {
            a["labels"]["cluster"] = Value::from(cluster);
        }
        return v;
    }
    v["cluster"] = Value::from(cluster);
    v
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read stream")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The NFS outage in clusters `a` and `b` at once, record by record, with
/// each pair of Alertmanager bodies sent as one body whose alerts name
/// their cluster by label (Alertmanager not grouping by `cluster`).
#[test]
fn the_nfs_example_in_two_clusters_is_two_incidents_per_outage() {
    let example = root().join("examples/nfs-csi-cascade.ndjson");
    let dir = tempfile::tempdir().unwrap();
    let mut both = String::new();
    let mut mixed_bodies = 0;
    for line in lines(&example) {
        let a = name_cluster(&line, "a", true);
        let b = name_cluster(&line, "b", true);
        if let (Some(aa), Some(ba)) = (a["alerts"].as_array(), b["alerts"].as_array()) {
            let mut body = a.clone();
            body["alerts"] = Value::from([aa.clone(), ba.clone()].concat());
            both.push_str(&body.to_string());
            both.push('\n');
            mixed_bodies += 1;
            continue;
        }
        for v in [a, b] {
            both.push_str(&v.to_string());
            both.push('\n');
        }
    }
    assert!(mixed_bodies > 0, "the example has Alertmanager bodies");
    let path = dir.path().join("a-and-b.ndjson");
    std::fs::write(&path, both).unwrap();

    let together = by_cluster(&replay(&path, None));
    let unnamed = replay(&example, None);
    let outages = unnamed.lines().count();
    assert!(outages >= 2, "the example is {outages} incidents");
    for c in ["a", "b"] {
        let alone = replay(&example, Some(c));
        assert_eq!(
            together[c].join("\n"),
            alone.trim_end(),
            "cluster {c} among two differs from {c} alone"
        );
        // The unnamed replay finds the same, but for the name and the ids.
        for (named, plain) in together[c].iter().zip(unnamed.lines()) {
            let named: Value = serde_json::from_str(named).unwrap();
            let plain: Value = serde_json::from_str(plain).unwrap();
            assert_eq!(named["cluster"], c);
            assert_ne!(
                named["id"], plain["id"],
                "a named cluster's ids are its own"
            );
            let (mut named, plain) = (essence(&named), essence(&plain));
            named["id"] = plain["id"].clone();
            assert_eq!(named, plain);
        }
    }
    assert_eq!(together.len(), 2, "nothing unnamed: {:?}", together.keys());
    assert_eq!(together["a"].len(), outages);
    let ids = |c: &str| -> Vec<String> {
        together[c]
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].to_string())
            .collect()
    };
    let (ia, ib) = (ids("a"), ids("b"));
    assert!(
        ia.iter().all(|i| !ib.contains(i)),
        "{ia:?} and {ib:?} share ids"
    );
}

/// One order of the streams' lines that keeps each stream's own order.
fn interleave(streams: &[Vec<String>], seed: u64) -> Vec<String> {
    let mut at = vec![0usize; streams.len()];
    let mut state = seed | 1;
    let mut out = Vec::new();
    loop {
        let open: Vec<usize> = (0..streams.len())
            .filter(|&i| at[i] < streams[i].len())
            .collect();
        if open.is_empty() {
            return out;
        }
        // xorshift: a stream picked at random, then a run of its lines.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let i = open[(state % open.len() as u64) as usize];
        let run = 1 + (state >> 32) as usize % 40;
        let end = (at[i] + run).min(streams[i].len());
        out.extend_from_slice(&streams[i][at[i]..end]);
        at[i] = end;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    /// Three cascades of the repository in one stream: two named by a
    /// field (one of them with its alerts named by label), one naming
    /// none. Each cluster's incidents are those of the cascade alone, and
    /// two interleavings give the same output byte for byte.
    #[test]
    fn interleaved_clusters_form_each_clusters_incidents_alone(seed in any::<u64>()) {
        let all = every_stream();
        let n = all.len() as u64;
        let picked = [seed % n, (seed / n) % n, (seed / n / n) % n].map(|i| &all[i as usize]);
        let dir = tempfile::tempdir().unwrap();
        let names = [Some("east"), Some("west"), None];
        let mut named: Vec<Vec<String>> = Vec::new();
        for (path, cluster) in picked.iter().zip(names) {
            let ls = lines(path);
            named.push(match cluster {
                Some(c) => ls.iter().map(|l| name_cluster(l, c, c == "west").to_string()).collect(),
                None => ls,
            });
        }
        let merged = dir.path().join("merged.ndjson");
        std::fs::write(&merged, interleave(&named, seed).join("\n")).unwrap();
        let out = replay(&merged, None);
        let got = by_cluster(&out);
        for (path, cluster) in picked.iter().zip(names) {
            let alone = replay(path, cluster);
            let key = cluster.unwrap_or_default();
            let mine = got.get(key).map(|v| v.join("\n")).unwrap_or_default();
            prop_assert_eq!(
                mine,
                alone.trim_end().to_owned(),
                "{} as cluster {:?} among others (seed {})",
                path.display(),
                cluster,
                seed
            );
        }
        let other = dir.path().join("other.ndjson");
        std::fs::write(&other, interleave(&named, seed.rotate_left(17) ^ 0x9e37).join("\n")).unwrap();
        prop_assert_eq!(out, replay(&other, None), "the interleaving changed the output");
    }
}

/// A `cluster` field is input: a shipper gone wrong (a pod name in it, a
/// timestamp) must not grow engines without bound. Past
/// `engine.max_clusters` the records of a new cluster are reported with
/// file and line and skipped; the clusters within the bound are untouched.
#[test]
fn clusters_past_the_bound_are_reported_and_skipped() {
    let example = root().join("examples/nfs-csi-cascade.ndjson");
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for (i, line) in lines(&example).iter().enumerate() {
        // a, b, then a third cluster from the 100th record on.
        for c in ["a", "b"] {
            text.push_str(&name_cluster(line, c, false).to_string());
            text.push('\n');
        }
        if i >= 99 {
            text.push_str(&name_cluster(line, &format!("noise-{i}"), false).to_string());
            text.push('\n');
        }
    }
    let path = dir.path().join("many.ndjson");
    std::fs::write(&path, text).unwrap();
    let config = dir.path().join("epicenter.yaml");
    std::fs::write(&config, "engine: {max_clusters: 2}\n").unwrap();
    let out = bin()
        .arg("replay")
        .arg("--rules")
        .arg(root().join("rules"))
        .arg("--config")
        .arg(&config)
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let name = path.display().to_string();
    assert!(
        err.contains(&format!(
            "{name}:201: cluster `noise-99` would be one more than engine.max_clusters (2)"
        )),
        "{err}"
    );
    let found = by_cluster(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(found.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(
        found["a"].join("\n"),
        replay(&example, Some("a")).trim_end()
    );
}

#[test]
fn an_empty_cluster_name_is_refused() {
    let out = bin()
        .args(["replay", "--cluster", ""])
        .arg(root().join("examples/nfs-csi-cascade.ndjson"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be empty"));
}

mod serve {
    //! `serve` with clusters: a source's configured name for records that
    //! name none, an alert's `cluster` label for the rest; each cluster's
    //! state in the checkpoint, so a restart resumes every one of them.

    use serde_json::{Value, json};

    use crate::support::{Serve, root, wait_for};

    const CONFIG: &str = "engine: {lateness: 1s}\npipeline: {checkpoint_interval: 1s, idle_timeout: 1s}\n\
                          sources: {alertmanager: {cluster: home}}\n";

    fn rules() -> String {
        root().join("tests/serve/rules").display().to_string()
    }

    /// The restart test's body (the node alert and, while firing, a pod
    /// alert on that node), each alert labelled `cluster` when one is given.
    fn body(cluster: Option<&str>, starts_at: &str, resolved_at: Option<&str>) -> String {
        let mut body: Value =
            serde_json::from_str(&crate::restart::body(starts_at, resolved_at)).unwrap();
        if let Some(c) = cluster {
            for a in body["alerts"].as_array_mut().unwrap() {
                a["labels"]["cluster"] = json!(c);
            }
        }
        body.to_string()
    }

    fn storm(serve: &Serve, change: &str) -> Vec<Value> {
        serve
            .changes()
            .into_iter()
            .filter(|c| c["rule"] == "test-node-alert-storm" && c["change"] == change)
            .collect()
    }

    #[test]
    fn each_cluster_is_its_own_incident_and_a_restart_resumes_both() {
        let dir = tempfile::tempdir().unwrap();
        let rules = rules();
        let args = ["--no-builtin", "--rules", rules.as_str()];
        let started = jiff::Timestamp::now().to_string();

        let first = Serve::start(dir.path(), CONFIG, &args);
        // The same outage in the configured cluster and in one an alert
        // label names: the same fingerprints, two clusters.
        first.post_alerts(body(None, &started, None));
        first.post_alerts(body(Some("edge"), &started, None));
        let opened = wait_for("an incident in each cluster", || {
            let o = storm(&first, "opened");
            (o.len() >= 2).then_some(o)
        });
        let mut clusters: Vec<&str> = opened
            .iter()
            .map(|c| c["cluster"].as_str().unwrap())
            .collect();
        clusters.sort_unstable();
        assert_eq!(clusters, ["edge", "home"], "{opened:?}");
        assert_ne!(opened[0]["id"], opened[1]["id"]);
        assert_eq!(first.metric("epicenter_clusters"), 2.0);
        // The history keeps the cluster; the API and the page filter by it.
        let listed = wait_for("the history to list edge's incident", || {
            let (code, body) = first.get("/api/v1/incidents?cluster=edge")?;
            let rows: Vec<Value> = serde_json::from_str(&body).ok()?;
            (code == 200 && !rows.is_empty()).then_some(rows)
        });
        assert!(listed.iter().all(|r| r["cluster"] == "edge"), "{listed:?}");
        let (_, page) = first.get("/?cluster=home").unwrap();
        assert!(
            page.contains("value=\"home\""),
            "the filter is kept in the form"
        );
        let (status, stderr) = first.terminate();
        assert!(status.success(), "{stderr}");

        let second = Serve::start(dir.path(), CONFIG, &args);
        assert_eq!(
            second.metric("epicenter_clusters"),
            2.0,
            "both clusters restored"
        );
        let resolved_at = jiff::Timestamp::now().to_string();
        second.post_alerts(body(Some("edge"), &started, Some(&resolved_at)));
        let resolved = wait_for("the edge incident to resolve", || {
            storm(&second, "resolved").into_iter().next()
        });
        let edge = opened.iter().find(|c| c["cluster"] == "edge").unwrap();
        assert_eq!(resolved["id"], edge["id"], "the same incident, resumed");
        assert_eq!(resolved["cluster"], "edge");
        assert!(
            storm(&second, "opened").is_empty(),
            "announced again after the restart"
        );
        // Resolving edge's node resolved nothing in home.
        std::thread::sleep(std::time::Duration::from_secs(2));
        assert_eq!(
            storm(&second, "resolved").len(),
            1,
            "{:?}",
            second.changes()
        );
        let (status, stderr) = second.terminate();
        assert!(status.success(), "{stderr}");
    }
}

mod kafka {
    //! Clusters through a real Kafka-protocol broker (tansu): each
    //! cluster's event time is its own.

    use serde_json::Value;
    use testkit::Tansu;
    use testkit::webhook::WebhookReceiver;

    use super::{lines, name_cluster};
    use crate::support::{Serve, latest, root, wait_for};

    /// Cluster `slow`'s shipper is an hour behind and still sending; cluster
    /// `nfs`'s outage must be announced all the same. With one watermark
    /// for all clusters, `nfs`'s records would wait in the reorder buffer
    /// until `slow`'s partition went idle (ten minutes here).
    #[test]
    fn a_lagging_cluster_holds_back_only_itself() {
        let tansu = Tansu::start();
        let bootstrap = tansu.bootstrap();
        let example = lines(&root().join("examples/nfs-csi-cascade.ndjson"));
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            testkit::create_topic(&bootstrap, "records", 2)
                .await
                .unwrap();
        });
        let config = format!(
            "engine: {{lateness: 10s}}\npipeline: {{checkpoint_interval: 1s, idle_timeout: 10m}}\n\
             sources:\n  alertmanager: {{enabled: false}}\n  kafka: {{brokers: '{bootstrap}', topics: [records], group: lag-e2e}}\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let serve = Serve::start(dir.path(), &config, &[]);
        // One record of `slow`, an hour before the outage: its partition's
        // newest time, and it stays active (idle_timeout 10m).
        let slow_line = name_cluster(&shifted(&example[0], -1), "slow", false).to_string();
        let nfs: Vec<(i32, Vec<u8>)> = example
            .iter()
            .map(|l| (1, name_cluster(l, "nfs", false).to_string().into_bytes()))
            .collect();
        let producer = rt.block_on(async { testkit::producer(&bootstrap).unwrap() });
        rt.block_on(testkit::produce(
            &producer,
            "records",
            &[(0, slow_line.into_bytes())],
        ))
        .unwrap();
        wait_for("slow's record to be taken", || {
            (serve.metric("epicenter_clusters") >= 1.0).then_some(())
        });
        rt.block_on(testkit::produce(&producer, "records", &nfs))
            .unwrap();
        let opened = wait_for("nfs's outage to be announced", || {
            serve
                .changes()
                .into_iter()
                .find(|c| c["cluster"] == "nfs" && c["rule"] == "csi-driver-unavailable")
        });
        assert_eq!(opened["change"], "opened");
        // Metrics are published every quarter second.
        wait_for("both clusters counted", || {
            (serve.metric("epicenter_clusters") == 2.0).then_some(())
        });
        let (status, stderr) = serve.terminate();
        assert!(status.success(), "{stderr}");
    }

    /// Scale-out by cluster with sharded state: three replicas in one
    /// consumer group over six clusters' records, each cluster keyed to a
    /// partition of its own (as the shippers' examples key). A third of the
    /// way in, one replica is killed with SIGKILL: its partitions, and with
    /// them its clusters' state and outbox, move to the others. Two thirds
    /// in, a fourth replica joins and takes partitions over from the
    /// others, handed over at the rebalance. Together the replicas form
    /// exactly what `replay` forms per cluster (ids, roots, blast radius),
    /// and the local webhook receiver hears each incident opened once.
    #[test]
    fn replicas_move_clusters_through_a_kill_and_a_join_and_form_what_replay_forms() {
        // librdkafka's mock cluster, not tansu: tansu's group coordinator
        // never gave a killed member's partitions to the others (the
        // surviving members rejoined and took back only their own).
        let broker = rdkafka::mocking::MockCluster::new(1).unwrap();
        broker.create_topic("records", 6, 1).unwrap();
        let bootstrap = broker.bootstrap_servers();
        let hook = WebhookReceiver::start();
        let example = lines(&root().join("examples/nfs-csi-cascade.ndjson"));
        let clusters: Vec<String> = (0..6).map(|i| format!("site-{i}")).collect();
        let rt = tokio::runtime::Runtime::new().unwrap();
        // Every line of the example in each cluster, interleaved, in three
        // parts; each cluster's stream ends an hour after its last record
        // (the end of input, for the watermark).
        let mut tail = example.last().unwrap().clone();
        tail = shifted(&tail, 1);
        let third = example.len() / 3;
        let parts: Vec<&[String]> = vec![
            &example[..third],
            &example[third..2 * third],
            &example[2 * third..],
        ];
        let mut produce: Vec<Vec<(i32, Vec<u8>)>> = vec![Vec::new(); 3];
        let mut merged = String::new();
        for (k, part) in parts.iter().enumerate() {
            let ended: Vec<&String> = if k == 2 {
                part.iter().chain(std::iter::once(&tail)).collect()
            } else {
                part.iter().collect()
            };
            for line in ended {
                for (p, c) in clusters.iter().enumerate() {
                    let named = name_cluster(line, c, false).to_string();
                    merged.push_str(&named);
                    merged.push('\n');
                    produce[k].push((i32::try_from(p).unwrap(), named.into_bytes()));
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let merged_path = dir.path().join("merged.ndjson");
        std::fs::write(&merged_path, merged).unwrap();
        let out = crate::support::bin()
            .args(["replay", "--lateness", "10s"])
            .arg(&merged_path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let expected = latest(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap()),
        );
        assert!(
            expected.len() >= 12,
            "two outages per cluster: {}",
            expected.len()
        );

        // Event time moves with the records only (idle streams would move
        // it with the wall clock while the test waits between parts).
        let shared = dir.path().join("shared");
        let config = format!(
            "engine: {{lateness: 10s}}\npipeline: {{checkpoint_interval: 1s, idle_timeout: 10m}}\n\
             sources:\n  alertmanager: {{enabled: false}}\n  kafka: {{brokers: '{bootstrap}', topics: [records], group: fleet-e2e, max_batch: 20, shared_state: '{}'}}\n\
             notify:\n  throttle: 1h\n  receivers:\n    - name: ops\n      webhook: [{{url: '{}', timeout: 2s}}]\n",
            shared.display(),
            hook.url()
        );
        let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut replicas: Vec<Serve> = dirs[..3]
            .iter()
            .map(|d| Serve::start(d.path(), &config, &[]))
            .collect();
        let holding = |r: &Serve| r.metric(r#"epicenter_source_up{source="kafka"}"#) == 1.0;
        wait_for("every replica to hold partitions", || {
            replicas.iter().all(holding).then_some(())
        });
        let records = |rs: &[Serve]| -> f64 {
            rs.iter()
                .map(|r| r.metric(r#"epicenter_records_total{source="kafka"}"#))
                .sum()
        };
        let send = |k: usize| {
            rt.block_on(async {
                let producer = testkit::producer(&bootstrap).unwrap();
                testkit::produce(&producer, "records", &produce[k])
                    .await
                    .unwrap();
            });
        };

        // Part one, then a kill -9 once it is in and checkpointed.
        send(0);
        let part_one = produce[0].len() as f64;
        wait_for("the replicas to take part one", || {
            (records(&replicas) >= part_one).then_some(())
        });
        let checkpoints: Vec<f64> = replicas
            .iter()
            .map(|r| r.metric("epicenter_checkpoints_total"))
            .collect();
        wait_for("a checkpoint after part one", || {
            replicas
                .iter()
                .zip(&checkpoints)
                .all(|(r, &c)| r.metric("epicenter_checkpoints_total") > c)
                .then_some(())
        });
        let victim = replicas
            .iter()
            .position(|r| r.metric("epicenter_clusters") >= 1.0)
            .expect("a replica holding clusters");
        let victim = replicas.remove(victim);
        let mut seen = std::collections::BTreeMap::new();
        crate::support::apply(&mut seen, victim.changes());
        let killed_at = std::time::Instant::now();
        victim.crash();

        // Part two: the survivors take the victim's partitions over (after
        // the group's session timeout) with their state.
        send(1);
        wait_for("the survivors to hold all six clusters", || {
            let held: f64 = replicas
                .iter()
                .map(|r| r.metric("epicenter_clusters"))
                .sum();
            (held == 6.0).then_some(())
        });
        eprintln!(
            "clusters of the killed replica resumed {:.1} s after the kill",
            killed_at.elapsed().as_secs_f64()
        );

        // A fourth replica joins: partitions are handed over to it.
        let joined_at = std::time::Instant::now();
        replicas.push(Serve::start(dirs[3].path(), &config, &[]));
        wait_for("the new replica to take clusters over", || {
            (replicas[2].metric("epicenter_clusters") >= 1.0).then_some(())
        });
        eprintln!(
            "the joining replica held clusters {:.1} s after it started",
            joined_at.elapsed().as_secs_f64()
        );
        send(2);

        let got = wait_for("the replicas to form every incident replay forms", || {
            let mut now = seen.clone();
            for r in &replicas {
                crate::support::apply(&mut now, r.changes());
            }
            expected
                .iter()
                .all(|(id, want)| now.get(id) == Some(want))
                .then_some(now)
        });
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "incidents replay does not form"
        );
        assert!(
            replicas[2].metric(r#"epicenter_records_total{source="kafka"}"#) > 0.0,
            "the joining replica read nothing"
        );

        // Notifications: each incident opened once, across the kill and
        // the hand-overs. A notification the victim had sent and not yet
        // recorded when it was killed may be sent again (the window
        // between the receiver's answer and the outbox's fsync): at most
        // one, for the one kill.
        wait_for("every incident announced", || {
            let told = crate::support::told(&hook);
            expected
                .keys()
                .all(|id| {
                    told.get(id)
                        .is_some_and(|k| k.values().any(|(e, _)| e == "opened"))
                })
                .then_some(())
        });
        let told = crate::support::told(&hook);
        for (id, keys) in &told {
            let openings = keys.values().filter(|(e, _)| e == "opened").count();
            assert!(openings <= 1, "{id} announced {openings} times: {keys:?}");
        }
        let repeated: usize = told
            .values()
            .flat_map(|k| k.values())
            .map(|(_, n)| n - 1)
            .sum();
        assert!(
            repeated <= 1,
            "{repeated} notifications delivered twice: {told:?}"
        );
        for r in replicas {
            let (status, stderr) = r.terminate();
            assert!(status.success(), "{stderr}");
        }
    }

    /// The line with every RFC 3339 time in it `hours` later.
    fn shifted(line: &str, hours: i64) -> String {
        let mut v: Value = serde_json::from_str(line).unwrap();
        shift_times(&mut v, hours);
        v.to_string()
    }

    fn shift_times(v: &mut Value, hours: i64) {
        match v {
            Value::String(s) => {
                if let Ok(t) = s.parse::<jiff::Timestamp>() {
                    *s = (t + jiff::SignedDuration::from_hours(hours)).to_string();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| shift_times(i, hours)),
            Value::Object(map) => map.values_mut().for_each(|i| shift_times(i, hours)),
            _ => {}
        }
    }
}

use std::borrow::Cow;

use super::path::{Path, PathError};
use super::*;
use crate::model::{Entity, Owner};

fn t(s: i64) -> EventTime {
    EventTime::from_micros(s * 1_000_000)
}

fn pod<'a>(
    ns: &'a str,
    name: &'a str,
    node: Option<&'a str>,
    owners: &[(&'a str, &'a str)],
) -> Entity<'a> {
    Entity {
        kind: Cow::Borrowed("Pod"),
        namespace: Some(Cow::Borrowed(ns)),
        name: Cow::Borrowed(name),
        uid: None,
        node: node.map(Cow::Borrowed),
        owners: owners
            .iter()
            .map(|(k, n)| Owner {
                kind: Cow::Borrowed(k),
                name: Cow::Borrowed(n),
            })
            .collect(),
    }
}

fn object<'a>(
    time: EventTime,
    kind: &'a str,
    ns: Option<&'a str>,
    name: &'a str,
    fields: &[(&'static str, &'a str)],
) -> Event<'a> {
    let mut e = Event::new(
        time,
        Source::Object,
        Entity {
            kind: Cow::Borrowed(kind),
            namespace: ns.map(Cow::Borrowed),
            name: Cow::Borrowed(name),
            ..Entity::default()
        },
    );
    e.reason = Cow::Borrowed("Present");
    e.fields = fields
        .iter()
        .map(|(k, v)| (*k, Cow::Borrowed(*v)))
        .collect();
    e
}

fn eval(
    g: &Graph,
    path: &str,
    e: &Entity<'_>,
    attrs: &[(&str, &str)],
    at: EventTime,
) -> Vec<String> {
    let attrs: Vec<(String, String)> = attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Path::parse(path).unwrap().eval(g, e, &attrs, at)
}

#[test]
fn a_pod_record_states_its_node_owners_and_claims() {
    let mut g = Graph::default();
    let mut e = Event::new(
        t(0),
        Source::Pod,
        pod("db", "pg-0", Some("n1"), &[("StatefulSet", "pg")]),
    );
    e.fields
        .push(("claims", Cow::Borrowed("data-pg-0,wal-pg-0")));
    g.learn(&e);
    let id = g.id("Pod/db/pg-0").unwrap();
    let names = |ids: Vec<u32>| {
        ids.into_iter()
            .map(|i| g.name(i).to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(g.targets(id, Rel::Node, t(1))), ["Node/n1"]);
    assert_eq!(
        names(g.targets(id, Rel::Owner, t(1))),
        ["StatefulSet/db/pg"]
    );
    assert_eq!(
        names(g.targets(id, Rel::Claim, t(1))),
        [
            "PersistentVolumeClaim/db/data-pg-0",
            "PersistentVolumeClaim/db/wal-pg-0"
        ]
    );
    // The node's pods, the other way round.
    let n1 = g.id("Node/n1").unwrap();
    assert_eq!(names(g.sources(n1, Rel::Node, t(1))), ["Pod/db/pg-0"]);
}

#[test]
fn a_one_valued_edge_is_read_at_the_time_asked() {
    // A StatefulSet pod rescheduled: n1 until 100 s, n2 after.
    let mut g = Graph::default();
    g.link("Pod/db/pg-0", Rel::Node, "Node/n1", t(10));
    g.link("Pod/db/pg-0", Rel::Node, "Node/n2", t(100));
    let e = pod("db", "pg-0", None, &[]);
    assert_eq!(eval(&g, "node", &e, &[], t(50)), ["Node/n1"]);
    assert_eq!(eval(&g, "node", &e, &[], t(150)), ["Node/n2"]);
    // Before anything was learned: the earliest edge (graphs are often
    // learned after the failure they explain).
    assert_eq!(eval(&g, "node", &e, &[], t(0)), ["Node/n1"]);
}

#[test]
fn a_deleted_object_ends_its_edges_but_earlier_records_still_resolve() {
    let mut g = Graph::default();
    g.link("Pod/web/a", Rel::Node, "Node/n1", t(10));
    g.close("Pod/web/a", t(60));
    let e = pod("web", "a", None, &[]);
    assert_eq!(eval(&g, "node", &e, &[], t(30)), ["Node/n1"]);
    assert!(eval(&g, "node", &e, &[], t(61)).is_empty());
}

#[test]
fn the_entity_speaks_before_the_graph() {
    // A log line carries its node and owners: no graph needed.
    let g = Graph::default();
    let e = pod(
        "shop",
        "web-5c7f9-abcde",
        Some("n3"),
        &[("ReplicaSet", "web-5c7f9"), ("Deployment", "web")],
    );
    assert_eq!(eval(&g, "node", &e, &[], t(0)), ["Node/n3"]);
    assert_eq!(eval(&g, "workload", &e, &[], t(0)), ["Deployment/shop/web"]);
    assert_eq!(
        eval(&g, "owner", &e, &[], t(0)),
        ["ReplicaSet/shop/web-5c7f9"]
    );
    assert_eq!(
        eval(&g, "entity", &e, &[], t(0)),
        ["Pod/shop/web-5c7f9-abcde"]
    );
}

#[test]
fn a_webhook_reaches_the_pods_behind_its_service() {
    let mut g = Graph::default();
    g.learn(&object(
        t(0),
        "ValidatingWebhookConfiguration",
        None,
        "gatekeeper",
        &[("service", "Service/gk/webhook-svc")],
    ));
    // An EndpointSlice of the Service lists two backends; a later version one.
    g.learn(&object(
        t(0),
        "EndpointSlice",
        Some("gk"),
        "webhook-svc-x1",
        &[
            ("service", "Service/gk/webhook-svc"),
            ("backend", "Pod/gk/ctrl-a"),
            ("backend", "Pod/gk/ctrl-b"),
        ],
    ));
    let blocked = pod("team-a", "api-6d5f", None, &[]);
    let attrs = [("service", "webhook-svc"), ("service_namespace", "gk")];
    assert_eq!(
        eval(&g, "{service}.pods", &blocked, &attrs, t(5)),
        ["Pod/gk/ctrl-a", "Pod/gk/ctrl-b"]
    );
    // The cause side: a backend's Services.
    let ctrl = pod("gk", "ctrl-a", Some("n1"), &[]);
    assert_eq!(
        eval(&g, "services", &ctrl, &[], t(5)),
        ["Service/gk/webhook-svc"]
    );
    g.learn(&object(
        t(20),
        "EndpointSlice",
        Some("gk"),
        "webhook-svc-x1",
        &[
            ("service", "Service/gk/webhook-svc"),
            ("backend", "Pod/gk/ctrl-b"),
        ],
    ));
    assert_eq!(
        eval(&g, "{service}.pods", &blocked, &attrs, t(30)),
        ["Pod/gk/ctrl-b"]
    );
    assert!(eval(&g, "services", &ctrl, &[], t(30)).is_empty());
}

#[test]
fn a_deleted_webhook_configuration_ends_its_webhooks() {
    let mut g = Graph::default();
    let mut hook = object(
        t(0),
        "Webhook",
        None,
        "check.gk.sh",
        &[("service", "Service/gk/hook")],
    );
    hook.entity.owners = vec![Owner {
        kind: Cow::Borrowed("ValidatingWebhookConfiguration"),
        name: Cow::Borrowed("gk-config"),
    }];
    g.learn(&hook);
    let blocked = pod("shop", "web-1", None, &[]);
    let attrs = [("webhook", "check.gk.sh")];
    assert_eq!(
        eval(&g, "{webhook}.service", &blocked, &attrs, t(5)),
        ["Service/gk/hook"]
    );
    let mut gone = object(
        t(10),
        "ValidatingWebhookConfiguration",
        None,
        "gk-config",
        &[],
    );
    gone.reason = Cow::Borrowed("Deleted");
    g.learn(&gone);
    assert!(eval(&g, "{webhook}.service", &blocked, &attrs, t(20)).is_empty());
    assert_eq!(
        eval(&g, "{webhook}.service", &blocked, &attrs, t(5)),
        ["Service/gk/hook"]
    );
}

#[test]
fn a_claim_reaches_its_provisioner_through_its_class() {
    let mut g = Graph::default();
    g.learn(&object(
        t(0),
        "StorageClass",
        None,
        "fast",
        &[("provisioner", "Provisioner/ebs.csi.aws.com")],
    ));
    g.learn(&object(
        t(0),
        "PersistentVolumeClaim",
        Some("db"),
        "data-0",
        &[("storage_class", "StorageClass/fast")],
    ));
    let mut p = Event::new(t(1), Source::Pod, pod("db", "pg-0", None, &[]));
    p.fields.push(("claims", Cow::Borrowed("data-0")));
    g.learn(&p);
    let e = pod("db", "pg-0", None, &[]);
    assert_eq!(
        eval(&g, "claims.storage_class.provisioner", &e, &[], t(2)),
        ["Provisioner/ebs.csi.aws.com"]
    );
    assert_eq!(
        eval(&g, "claims.provisioner", &e, &[], t(2)),
        ["Provisioner/ebs.csi.aws.com"]
    );
    // Named in a message instead: `{storage_class}` starts there.
    let attrs = [("storage_class", "fast")];
    assert_eq!(
        eval(&g, "{storage_class}.provisioner", &e, &attrs, t(2)),
        ["Provisioner/ebs.csi.aws.com"]
    );
}

#[test]
fn a_cluster_ip_names_its_service() {
    let mut g = Graph::default();
    g.learn(&object(
        t(0),
        "Service",
        Some("kube-system"),
        "kube-dns",
        &[("cluster_ip", "10.96.0.10")],
    ));
    let client = pod("shop", "cart-1", None, &[]);
    let attrs = [("resolver", "10.96.0.10")];
    assert_eq!(
        eval(&g, "{resolver}.service", &client, &attrs, t(1)),
        ["Service/kube-system/kube-dns"]
    );
}

#[test]
fn an_attribute_the_signal_lacks_reaches_nothing() {
    let g = Graph::default();
    let e = pod("a", "b", None, &[]);
    assert!(eval(&g, "{service}.pods", &e, &[], t(0)).is_empty());
    assert!(eval(&g, "claims", &e, &[], t(0)).is_empty());
}

#[test]
fn paths_that_do_not_parse_say_why() {
    assert_eq!(Path::parse(""), Err(PathError::Empty));
    assert_eq!(Path::parse("node..pods"), Err(PathError::Empty));
    assert_eq!(
        Path::parse("nodes"),
        Err(PathError::UnknownStep("nodes".into()))
    );
    assert_eq!(
        Path::parse("{colour}.pods"),
        Err(PathError::UnknownAttribute("colour".into()))
    );
    assert_eq!(
        Path::parse("pods.{service}"),
        Err(PathError::AttributeNotFirst("{service}".into()))
    );
}

#[test]
fn the_cap_evicts_the_least_recently_seen() {
    let mut g = Graph::with_cap(100);
    for i in 0..300 {
        g.link(&format!("Pod/ns/p{i}"), Rel::Node, "Node/n1", t(i));
    }
    let s = g.stats();
    assert!(s.edges <= 100, "{s:?}");
    assert!(s.evicted >= 200, "{s:?}");
    // The newest survive.
    assert!(g.id("Pod/ns/p299").is_some());
    assert!(g.id("Pod/ns/p0").is_none());
    // The reverse index agrees with what is left.
    let n1 = g.id("Node/n1").unwrap();
    assert_eq!(g.sources(n1, Rel::Node, t(400)).len(), s.edges);
}

#[test]
fn ended_edges_leave_at_the_sweep_and_a_snapshot_restores_the_rest() {
    let mut g = Graph::default();
    g.link("Pod/a/x", Rel::Node, "Node/n1", t(0));
    g.link("Pod/a/y", Rel::Node, "Node/n1", t(0));
    g.close("Pod/a/x", t(10));
    g.sweep(t(100), t(0));
    assert_eq!(g.stats().edges, 1);
    // Unseen for long: gone too.
    let mut h = g.clone();
    h.sweep(t(100), t(1));
    assert_eq!(h.stats().edges, 0);
    assert_eq!(g.stats().edges, 1);
    assert!(g.id("Pod/a/x").is_none());
    let back = Graph::restore(g.snapshot(), usize::MAX).unwrap();
    let e = pod("a", "y", None, &[]);
    assert_eq!(eval(&back, "node", &e, &[], t(200)), ["Node/n1"]);
    assert_eq!(back.stats(), g.stats());
}

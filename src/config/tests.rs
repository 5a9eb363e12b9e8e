#![allow(clippy::unwrap_used)]

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("s3cret".to_string()),
        "KAFKA_PASSWORD" => Some("hunter2".to_string()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config> {
    Config::parse("c.yaml", text, Path::new("/etc/epicenter"), &env)
}

fn errors(text: &str) -> String {
    parse(text).expect_err("must be refused").to_string()
}

#[test]
fn an_empty_file_is_the_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.serve.listen, "0.0.0.0:9095".parse().unwrap());
    assert!(c.serve.alertmanager.is_some() && c.serve.stdout);
    assert!(c.serve.kubernetes.is_none() && c.serve.kafka.is_none());
    assert!(c.rules.is_empty(), "the built-in pack");
}

#[test]
fn the_shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/epicenter.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = Config::parse("epicenter.yaml", &text, path.parent().unwrap(), &env).unwrap();
    assert_eq!(c.serve.listen, "127.0.0.1:9095".parse().unwrap());
    assert!(c.serve.kubernetes.is_none(), "disabled in the example");
    assert_eq!(c.serve.idle_timeout, Duration::from_secs(30));
}

#[test]
fn reports_unknown_keys_and_bad_values_with_positions() {
    let msg = errors("engine:\n  latenes: 2m\n");
    assert!(msg.starts_with("c.yaml:2:3:"), "{msg}");
    let msg = errors(
        "engine:\n  lateness: soon\n  max_buffered: 0\nlisten: here\npipeline:\n  idle_timeout: 0s\nsources:\n  alertmanager:\n    max_body: lots\n",
    );
    for want in [
        "c.yaml:2:13: engine.lateness",
        "c.yaml:3:17: engine.max_buffered: must be at least 1",
        "c.yaml:4:9: listen: `here` is not an address",
        "c.yaml:6:17: pipeline.idle_timeout: must be more than zero",
        "c.yaml:9:15: sources.alertmanager.max_body: `lots` is not a size",
    ] {
        assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
    }
}

#[test]
fn safety_settings_are_read_and_checked() {
    let c = parse(
        "engine: {max_ahead: 5m, retention: 30m}\npipeline: {shutdown_timeout: 20s}\n\
         http: {max_connections: 8, header_timeout: 2s, request_timeout: 3s}\n\
         api: {allow_anonymous_sql: true, max_concurrent_queries: 4}\n",
    )
    .unwrap();
    assert_eq!(c.engine.max_ahead, Some(correlate::Span::from_secs(300)));
    assert_eq!(c.engine.retention, Some(correlate::Span::from_secs(1800)));
    assert_eq!(c.serve.shutdown_timeout, Duration::from_secs(20));
    assert_eq!(c.serve.http.max_connections, 8);
    assert_eq!(c.serve.http.header_timeout, Duration::from_secs(2));
    assert_eq!(c.serve.http.request_timeout, Duration::from_secs(3));
    assert!(c.serve.api.allow_anonymous_sql);
    assert_eq!(c.serve.api.max_concurrent_queries, 4);
    let d = parse("").unwrap();
    assert_eq!(d.engine.max_ahead, Some(correlate::Span::from_secs(600)));
    assert_eq!(d.engine.retention, Some(correlate::Span::from_secs(3600)));
    assert!(!d.serve.api.allow_anonymous_sql);
    let msg = errors("engine: {max_ahead: 0s}\nhttp: {max_connections: 0, header_timeout: soon}\n");
    for want in [
        "c.yaml:1:21: engine.max_ahead: must be more than zero",
        "c.yaml:2:25: http.max_connections: must be at least 1",
        "c.yaml:2:44: http.header_timeout: `soon` is not a duration",
    ] {
        assert!(
            msg.contains(want),
            "missing {want:?} in:
{msg}"
        );
    }
}

#[test]
fn secrets_come_from_the_environment_and_stay_out_of_messages() {
    let c = parse(
        "sources:\n  alertmanager: {token: '${TOKEN}'}\n  kafka:\n    brokers: k:9092\n    topics: [t]\n    options: {sasl.password: 'pw-${KAFKA_PASSWORD}', literal: 'a$$b'}\n",
    )
    .unwrap();
    let am = c.serve.alertmanager.as_ref().unwrap();
    assert_eq!(am.token.as_deref(), Some("s3cret"));
    assert!(
        !format!("{am:?}").contains("s3cret"),
        "Debug redacts the token"
    );
    let kafka = c.serve.kafka.as_ref().unwrap();
    assert_eq!(kafka.options["sasl.password"], "pw-hunter2");
    assert_eq!(kafka.options["literal"], "a$b");
    assert!(
        !format!("{kafka:?}").contains("hunter2"),
        "Debug shows option keys only"
    );

    let msg = errors("sources:\n  alertmanager:\n    token: ${MISSING}\n");
    assert!(
        msg.contains(
            "c.yaml:3:12: sources.alertmanager.token: environment variable `MISSING` is not set"
        ),
        "{msg}"
    );
}

#[test]
fn required_fields_are_reported_at_their_section() {
    let msg = errors("sources:\n  kafka:\n    group: g\nsinks:\n  kafka: {brokers: b}\n");
    for want in [
        "c.yaml:3:5: sources.kafka.brokers: required",
        "c.yaml:3:5: sources.kafka.topics: name at least one topic",
        "c.yaml:5:10: sinks.kafka.topic: required",
    ] {
        assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
    }
}

#[test]
fn resolves_paths_against_the_config_file() {
    let c = parse("rules: [rules]\nstate_dir: state\nengine: {lateness: 30s}\n").unwrap();
    assert_eq!(c.rules, [PathBuf::from("/etc/epicenter/rules")]);
    assert_eq!(c.serve.state_dir, PathBuf::from("/etc/epicenter/state"));
    assert_eq!(c.engine.lateness, correlate::Span::from_secs(30));
    assert!(c.builtin_rules, "the built-in pack comes first by default");
    let alone = parse("rules: [rules]\nbuiltin_rules: false\n").unwrap();
    assert!(!alone.builtin_rules);
    let msg = errors("builtin_rules: nope\n");
    assert!(msg.contains("c.yaml:1:16"), "{msg}");
}

#[test]
fn kubernetes_log_selectors_are_checked_where_they_are_written() {
    let msg = errors(
        "sources:\n  kubernetes:\n    pod_logs:\n      select:\n        - labels: 'app in (a,b'\n",
    );
    assert!(
        msg.contains("c.yaml:5:19: sources.kubernetes.pod_logs.select.labels: unbalanced"),
        "{msg}"
    );
    let c = parse(
        "sources:\n  kubernetes:\n    namespaces: [a]\n    pod_logs:\n      backlog: 10m\n      select:\n        - {labels: app=vault, container: vault}\n",
    )
    .unwrap();
    let k = c.serve.kubernetes.unwrap();
    assert_eq!(k.namespaces, ["a"]);
    let logs = k.pod_logs.unwrap();
    assert_eq!(logs.selectors[0].labels, "app=vault");
    assert_eq!(logs.backlog, Some(Duration::from_secs(600)));
}

const NOTIFY: &str = r#"
external_url: https://epicenter.example.com/
notify:
  throttle: 2m
  blast_radius_steps: [3, 30]
  links:
    - {title: Runbook, url: "https://wiki/{rule}"}
  route:
    receiver: ops
    routes:
      - matchers: ['severity = "critical"', 'namespace =~ "prod-.*"']
        receiver: pager
        continue: true
  receivers:
    - name: ops
      slack:
        - {token: "${TOKEN}", channel: C0123, mention: "<!here>"}
        - {webhook_url: "https://hooks.slack.com/services/T/B/${TOKEN}"}
    - name: pager
      ntfy:
        - {server: "https://ntfy.example.com/", topic: oncall, user: bot, password: "${TOKEN}", publish: json, rate_limit: 30/m, burst: 2}
      webhook:
        - {url: "https://bridge.example.com/hook", format: alertmanager, secret: "${TOKEN}", headers: {Authorization: "Bearer ${TOKEN}"}, give_up_after: 1h, timeout: 3s}
"#;

#[test]
fn notifications_are_configured_with_receivers_routes_and_secrets() {
    let c = parse(NOTIFY).unwrap();
    let n = &c.serve.notify;
    assert_eq!(n.policy.throttle, Duration::from_secs(120));
    assert_eq!(n.policy.blast_radius_steps, [3, 30]);
    let names: Vec<&str> = n.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ops/slack/0",
            "ops/slack/1",
            "pager/ntfy/0",
            "pager/webhook/0"
        ]
    );
    assert_eq!(n.receivers["pager"], ["pager/ntfy/0", "pager/webhook/0"]);
    assert_eq!(n.route.receivers, ["ops"]);
    assert_eq!(n.route.routes[0].receivers, ["pager"]);
    assert!(n.route.routes[0].continue_matching);
    let ntfy = &n.targets[2];
    let rate = ntfy.rate.unwrap();
    assert_eq!((rate.every, rate.burst.get()), (Duration::from_secs(2), 2));
    let hook = &n.targets[3];
    assert_eq!(hook.retry.give_up_after, Some(Duration::from_secs(3600)));
    match &hook.notifier {
        NotifierConfig::Webhook(w) => {
            assert_eq!(w.secret.as_ref().unwrap().expose(), "s3cret");
            assert_eq!(
                w.external_url.as_deref(),
                Some("https://epicenter.example.com")
            );
            assert_eq!(w.timeout, Duration::from_secs(3));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !format!("{n:?}").contains("s3cret"),
        "secrets never appear in Debug"
    );
}

#[test]
fn notification_mistakes_are_reported_where_they_are() {
    let msg = errors(
        r#"notify:
  links:
    - {title: Runbook, url: "https://wiki/{rulez}"}
  route:
    receiver: nobody
    routes:
      - matchers: ['severity', 'rule =~ "("']
        receiver: ops
  receivers:
    - name: ops
      slack:
        - {channel: C1}
        - {token: t, webhook_url: "https://x"}
      ntfy:
        - {topic: "bad topic!", publish: carrier-pigeon, rate_limit: fast}
      webhook:
        - {url: "ftp://x", format: xml}
    - name: ops
      ntfy: [{topic: t}]
"#,
    );
    for want in [
        "c.yaml:3:29: notify.links.url: unknown placeholder {rulez}",
        "c.yaml:5:15: notify.route.receiver: no receiver is named `nobody`",
        "c.yaml:7:20: notify.route.routes.matchers: `severity` is not a matcher",
        "c.yaml:7:32: notify.route.routes.matchers: bad regex",
        "c.yaml:12:11: notify.receivers[ops].slack: give token and channel",
        "notify.receivers[ops].slack: give either token (and channel) or webhook_url, not both",
        "c.yaml:15:19: notify.receivers[ops].ntfy.topic: ntfy topics are 1 to 64",
        "notify.receivers[ops].ntfy.publish: `carrier-pigeon` is not headers or json",
        "c.yaml:15:70: notify.receivers[ops].ntfy.rate_limit: `fast` is not a rate",
        "c.yaml:17:17: notify.receivers[ops].webhook.url: not an http(s) URL",
        "notify.receivers[ops].webhook.format: `xml` is not incident or alertmanager",
        "notify.receivers.name: receiver `ops` is defined twice",
    ] {
        assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
    }
}

#[test]
fn the_graph_watches_are_off_by_default_and_include_the_volumes() {
    let k = parse("sources:\n  kubernetes: {volumes: true}\n")
        .unwrap()
        .serve
        .kubernetes
        .unwrap();
    assert!(k.volumes && !k.graph);
    let k = parse("sources:\n  kubernetes:\n    graph: true\n")
        .unwrap()
        .serve
        .kubernetes
        .unwrap();
    assert!(k.graph && !k.volumes && k.watches_volumes());
    let msg = errors("sources:\n  kubernetes:\n    graph: true\n    volumes: false\n");
    assert!(
        msg.contains("c.yaml:4:14: sources.kubernetes.volumes: the graph watches claims"),
        "{msg}"
    );
}

#[test]
fn shared_state_is_per_consumer_group_and_needs_a_path() {
    let c = parse(
        "sources:\n  kafka: {brokers: 'k:9092', topics: [t], group: fleet, shared_state: shared}\n",
    )
    .unwrap();
    assert_eq!(
        c.serve.shared_state.as_deref(),
        Some(Path::new("/etc/epicenter/shared/fleet"))
    );
    assert!(
        parse("sources:\n  kafka: {brokers: 'k:9092', topics: [t]}\n")
            .unwrap()
            .serve
            .shared_state
            .is_none()
    );
    let msg = errors("sources:\n  kafka: {brokers: 'k:9092', topics: [t], shared_state: ' '}\n");
    assert!(
        msg.contains("c.yaml:2:") && msg.contains("sources.kafka.shared_state: must not be empty"),
        "{msg}"
    );
}

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

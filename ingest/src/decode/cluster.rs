//! Which cluster a record belongs to.
//!
//! A record names its cluster with a top-level `cluster` field, which a
//! shipper adds (Vector's `remap`, Fluent Bit's `record_modifier`, a Kafka
//! producer). An Alertmanager alert names it with its `cluster` label
//! (Prometheus' external label of that name), which wins over the body's
//! field: one body may carry the alerts of several clusters when
//! Alertmanager does not group by `cluster`, and such a body is split into
//! one body per cluster ([`Parsed::split_by_cluster`]). A record that names
//! none belongs to whatever its source says (a configured name, `replay
//! --cluster`), or to the one unnamed cluster.
//!
//! Design choice: the cluster is read from the parsed record, before the
//! stateful half of decoding, because that half is per cluster: each
//! cluster has its own decoder (Pod and Node states, the topology) and its
//! own engine, so the same pod name in two clusters is two entities.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::wire::{Record, Str, non_empty};
use super::{Parsed, ParsedLine};

/// An alert's `cluster` label, and nothing else of it.
#[derive(Deserialize)]
struct ClusterLabel<'a> {
    #[serde(borrow)]
    labels: Option<OnlyCluster<'a>>,
}

#[derive(Deserialize)]
struct OnlyCluster<'a> {
    #[serde(borrow)]
    cluster: Option<Str<'a>>,
}

/// The alert's `cluster` label, when it has a non-empty one. An alert that
/// cannot be read is left to the decoder, which reports it where it is.
fn label_of<'a>(raw: &'a RawValue) -> Option<Cow<'a, str>> {
    let read: ClusterLabel<'a> = serde_json::from_str(raw.get()).ok()?;
    read.labels
        .and_then(|l| l.cluster)
        .map(|s| s.0)
        .filter(|s| !s.is_empty())
}

impl<'a> Parsed<'a> {
    /// The cluster the record names (its `cluster` field, or after
    /// [`Parsed::split_by_cluster`] its alerts' `cluster` label); `None`
    /// when it names none.
    pub fn cluster(&self) -> Option<&str> {
        match &self.0 {
            ParsedLine::Blank => None,
            ParsedLine::Record { record, .. } => non_empty(&record.cluster).map(AsRef::as_ref),
        }
    }

    /// Gives an Alertmanager body's alerts the cluster their `cluster`
    /// label names. When they name more than one, the alerts of the first
    /// cluster (in body order; alerts without the label count as the
    /// body's own cluster) stay in this record and every other cluster's
    /// alerts are returned as bodies of their own, in order of first
    /// appearance. Any other record is left as it is, and nothing is
    /// returned (nor allocated).
    pub fn split_by_cluster(&mut self) -> Vec<Parsed<'a>> {
        let ParsedLine::Record { line, record } = &mut self.0 else {
            return Vec::new();
        };
        let Some(alerts) = &record.alerts else {
            return Vec::new();
        };
        let labels: Vec<Option<Cow<'a, str>>> = alerts.iter().map(|raw| label_of(raw)).collect();
        let own = non_empty(&record.cluster).cloned();
        let cluster_of = |label: &Option<Cow<'a, str>>| label.clone().or_else(|| own.clone());
        let mut groups: Vec<(Option<Cow<'a, str>>, Vec<usize>)> = Vec::new();
        for (i, label) in labels.iter().enumerate() {
            let cluster = cluster_of(label);
            match groups.iter_mut().find(|(c, _)| *c == cluster) {
                Some((_, places)) => places.push(i),
                None => groups.push((cluster, vec![i])),
            }
        }
        if groups.len() <= 1 {
            if let Some((Some(cluster), _)) = groups.pop() {
                record.cluster = Some(Str(cluster));
            }
            return Vec::new();
        }
        let all = record.alerts.take().unwrap_or_default();
        let line: &'a str = line;
        let mut bodies: Vec<Parsed<'a>> = groups
            .into_iter()
            .map(|(cluster, places)| {
                let body = Record {
                    cluster: cluster.map(Str),
                    version: record.version.clone(),
                    receiver: record.receiver.clone(),
                    status: record.status.as_deref().and_then(|s| match s {
                        super::wire::StatusField::Text(t) => {
                            Some(Box::new(super::wire::StatusField::Text(t.clone())))
                        }
                        super::wire::StatusField::Object(_) => None,
                    }),
                    alerts: Some(places.iter().map(|&i| all[i]).collect()),
                    alert_places: Some(places),
                    ..Record::default()
                };
                Parsed(ParsedLine::Record {
                    line,
                    record: Box::new(body),
                })
            })
            .collect();
        *self = bodies.remove(0);
        bodies
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::parse;

    fn alert(name: &str, cluster: Option<&str>) -> String {
        let label = cluster.map_or(String::new(), |c| format!(r#","cluster":"{c}""#));
        format!(
            r#"{{"status":"firing","labels":{{"alertname":"{name}"{label}}},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"{name}"}}"#
        )
    }

    fn body(cluster: Option<&str>, alerts: &[String]) -> String {
        let field = cluster.map_or(String::new(), |c| format!(r#""cluster":"{c}","#));
        format!(
            r#"{{{field}"version":"4","status":"firing","receiver":"r","alerts":[{}]}}"#,
            alerts.join(",")
        )
    }

    #[test]
    fn a_record_names_its_cluster_with_a_field() {
        let line = r#"{"cluster":"eu-1","kubernetes":{"pod_name":"p"},"message":"x"}"#;
        let mut p = parse(line).unwrap();
        assert!(p.split_by_cluster().is_empty());
        assert_eq!(p.cluster(), Some("eu-1"));
        let p = parse(r#"{"cluster":"","kubernetes":{"pod_name":"p"},"message":"x"}"#).unwrap();
        assert_eq!(p.cluster(), None, "an empty name names no cluster");
    }

    #[test]
    fn alerts_of_one_cluster_give_the_body_that_cluster() {
        let line = body(None, &[alert("A", Some("b")), alert("B", Some("b"))]);
        let mut p = parse(&line).unwrap();
        assert!(p.split_by_cluster().is_empty());
        assert_eq!(p.cluster(), Some("b"));
    }

    #[test]
    fn an_alerts_label_wins_over_the_bodys_field_and_mixed_bodies_split() {
        let line = body(
            Some("own"),
            &[
                alert("A", Some("x")),
                alert("B", None),
                alert("C", Some("y")),
                alert("D", Some("x")),
            ],
        );
        let mut p = parse(&line).unwrap();
        let rest = p.split_by_cluster();
        assert_eq!(p.cluster(), Some("x"));
        let names: Vec<_> = rest.iter().map(|r| r.cluster()).collect();
        assert_eq!(names, [Some("own"), Some("y")]);
        let places = |p: &super::Parsed<'_>| match &p.0 {
            super::ParsedLine::Record { record, .. } => record.alert_places.clone().unwrap(),
            super::ParsedLine::Blank => unreachable!(),
        };
        assert_eq!(places(&p), [0, 3]);
        assert_eq!(places(&rest[0]), [1]);
        assert_eq!(places(&rest[1]), [2]);
    }

    #[test]
    fn a_split_body_decodes_each_alert_once_and_errors_name_the_alert_as_sent() {
        let bad = r#"{"status":"firing","labels":{"alertname":"Bad","cluster":"y"},"startsAt":"yesterday"}"#;
        let line = body(
            None,
            &[
                alert("A", Some("x")),
                bad.to_string(),
                alert("C", Some("y")),
            ],
        );
        let mut p = parse(&line).unwrap();
        let rest = p.split_by_cluster();
        assert_eq!(rest.len(), 1);
        let mut decoder = super::super::Decoder::new(super::super::Limits::default());
        let origin = correlate::Origin { file: 0, line: 1 };
        let mut out = Vec::new();
        decoder.interpret(Ok(p), origin, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        let mut out = Vec::new();
        let rest = rest.into_iter().next().unwrap();
        decoder.interpret(Ok(rest), origin, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        let rejected = decoder.take_rejected();
        assert_eq!(rejected.len(), 1);
        assert!(
            rejected[0].error.to_string().contains("alerts[1]"),
            "{}",
            rejected[0].error
        );
    }
}

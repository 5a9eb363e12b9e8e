//! Container log records (Vector `kubernetes_logs`, Fluent Bit kubernetes
//! filter) → [`Source::Log`].
//!
//! The entity is the Pod (namespace, name, uid, node); `container` the
//! container; `message` the log text without one trailing newline; severity
//! info (only rules decide what a line means). Fields set: `stream`
//! (stdout/stderr, when present).
//!
//! Owners come from the topology cache when the pod is known, else from
//! Vector's `pod_owner`, else from the pod's labels (StatefulSet pod-name
//! label, pod-template-hash, pod-template-generation, job-name). This is the
//! hot path: the text is borrowed from the line whenever it has no JSON
//! escapes besides the trailing `\n`, and only those few labels are read.

use std::borrow::Cow;

use correlate::{Entity, Event, Severity, Source};
use serde_json::value::RawValue;

use super::error::{DecodeError, Result};
use super::wire::{Record, non_empty};
use super::{Decoded, Decoder, owners, take, take_non_empty, times};

/// `text` without one trailing `\n` (and then `\r`).
fn trim_newline(text: Cow<'_, str>) -> Cow<'_, str> {
    let keep = {
        let t = text.strip_suffix('\n').unwrap_or(&text);
        t.strip_suffix('\r').unwrap_or(t).len()
    };
    match text {
        Cow::Borrowed(b) => Cow::Borrowed(&b[..keep]),
        Cow::Owned(mut o) => {
            o.truncate(keep);
            Cow::Owned(o)
        }
    }
}

/// Fluent Bit's `log`, raw JSON: borrowed from the line when the only escape
/// is the trailing `\n` (or `\r\n`) that is trimmed anyway, decoded otherwise.
pub(crate) fn log_text<'a>(raw: &'a RawValue) -> Result<Cow<'a, str>> {
    let json = raw.get();
    if let Some(inner) = json.strip_prefix('"').and_then(|j| j.strip_suffix('"')) {
        let t = inner.strip_suffix("\\n").unwrap_or(inner);
        let t = t.strip_suffix("\\r").unwrap_or(t);
        if !t.contains('\\') {
            return Ok(Cow::Borrowed(t));
        }
    }
    let text: String = serde_json::from_str(json).map_err(|e| DecodeError::Invalid {
        path: "log".into(),
        message: e.to_string(),
    })?;
    Ok(trim_newline(Cow::Owned(text)))
}

impl Decoder {
    pub(super) fn log<'a>(
        &mut self,
        mut rec: Box<Record<'a>>,
        origin: correlate::Origin,
        out: &mut Vec<Event<'a>>,
    ) -> Result<Decoded> {
        let mut k8s = rec.kubernetes.take().unwrap_or_default();
        let vector = rec.message.is_some();
        let (text, time, namespace, node, uid) = if vector {
            self.stats.vector_logs += 1;
            let time = times::parse_opt("", "timestamp", &rec.timestamp)?
                .ok_or_else(|| DecodeError::missing("", "timestamp"))?;
            (
                trim_newline(take(&mut rec.message).unwrap_or_default()),
                time,
                take_non_empty(&mut k8s.pod_namespace)
                    .ok_or_else(|| DecodeError::missing("", "kubernetes.pod_namespace"))?,
                take_non_empty(&mut k8s.pod_node_name),
                take_non_empty(&mut k8s.pod_uid),
            )
        } else {
            self.stats.fluent_bit_logs += 1;
            let time = match (&rec.time, &rec.at_timestamp) {
                (Some(t), _) => times::parse_stamp("", "time", t)?,
                (None, Some(t)) => times::parse_stamp("", "@timestamp", t)?,
                (None, None) => return Err(DecodeError::missing("", "time")),
            };
            let text = match rec.log {
                Some(raw) => log_text(raw)?,
                None => Cow::Borrowed(""),
            };
            (
                text,
                time,
                take_non_empty(&mut k8s.namespace_name)
                    .ok_or_else(|| DecodeError::missing("", "kubernetes.namespace_name"))?,
                take_non_empty(&mut k8s.host),
                take_non_empty(&mut k8s.pod_id),
            )
        };
        let name = take_non_empty(&mut k8s.pod_name)
            .ok_or_else(|| DecodeError::missing("", "kubernetes.pod_name"))?;

        let mut entity = Entity {
            kind: Cow::Borrowed("Pod"),
            namespace: None,
            name,
            uid,
            node,
            owners: Vec::new(),
        };
        match self.topology.pod(&namespace, &entity.name) {
            Some(pod) => {
                entity.owners = pod.owners_for(&entity.name);
                if entity.node.is_none() {
                    entity.node = pod.node.clone().map(Cow::Owned);
                }
            }
            None => {
                let labels = k8s
                    .pod_labels
                    .take()
                    .or_else(|| k8s.labels.take())
                    .unwrap_or_default();
                let hash = non_empty(&labels.pod_template_hash).map(|h| h.as_ref());
                entity.owners = match non_empty(&k8s.pod_owner) {
                    Some(owner) => owners::from_pod_owner(owner, hash),
                    None => owners::from_labels(&entity.name, &labels),
                };
            }
        }
        entity.namespace = Some(namespace);

        let fields = match take_non_empty(&mut rec.stream) {
            Some(stream) => vec![("stream", stream)],
            None => Vec::new(),
        };
        out.push(Event {
            time,
            source: Source::Log,
            entity,
            reason: Cow::Borrowed(""),
            message: text,
            container: take_non_empty(&mut k8s.container_name),
            severity: Severity::Info,
            labels: Vec::new(),
            fields,
            occurrence: None,
            origin,
        });
        Ok(Decoded::Events(1))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn text(json: &str) -> Cow<'_, str> {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        log_text(raw).unwrap()
    }

    #[test]
    fn log_text_borrows_unless_escaped() {
        assert!(matches!(
            text(r#""plain line\n""#),
            Cow::Borrowed("plain line")
        ));
        assert!(matches!(text(r#""crlf\r\n""#), Cow::Borrowed("crlf")));
        assert!(matches!(
            text(r#""no newline""#),
            Cow::Borrowed("no newline")
        ));
        assert_eq!(text(r#""say \"hi\"\n""#), "say \"hi\"");
        // An escaped backslash before `n` is text, not a newline.
        assert_eq!(text(r#""path C:\\n""#), "path C:\\n");
        assert_eq!(text(r#""two\n\n""#), "two\n");
        assert!(log_text(serde_json::from_str::<&RawValue>("5").unwrap()).is_err());
    }

    #[test]
    fn trims_one_newline() {
        assert_eq!(trim_newline(Cow::Borrowed("a\r\n")), "a");
        assert_eq!(trim_newline(Cow::Owned("a\n\n".into())), "a\n");
        assert_eq!(trim_newline(Cow::Borrowed("a")), "a");
    }
}

//! The input records as serde sees them: one [`Record`] with the optional
//! fields of every shape, parsed once per line, strings borrowed from it.
//!
//! Field names that two shapes share never conflict in type except `status`
//! (an Alertmanager string, a Pod or Node object: [`StatusField`]). A watch
//! event's `object` is itself a [`Record`], so a bare object and a watched one
//! take the same path. Nested parts only some records need (labels, log text)
//! stay raw JSON slices until asked for.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON string, borrowed from the line unless it holds escapes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'a> Str<'a> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// `Some(text)` when the optional string is present and not empty.
pub(crate) fn non_empty<'s, 'a>(s: &'s Option<Str<'a>>) -> Option<&'s Cow<'a, str>> {
    s.as_ref().map(|s| &s.0).filter(|s| !s.is_empty())
}

/// A JSON object of string values (labels), in input order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Labels<'a>(pub(crate) Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Labels<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Labels<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string labels")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<Str<'de>, Option<Str<'de>>>()? {
                    out.push((k.0, v.map(|v| v.0).unwrap_or_default()));
                }
                Ok(Labels(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Labels<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&Cow<'a, str>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// The few pod labels the decoders read (owner inference), picked out of a
/// label object without copying the rest.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct WellKnownLabels<'a> {
    #[serde(borrow, rename = "pod-template-hash")]
    pub(crate) pod_template_hash: Option<Str<'a>>,
    #[serde(borrow, rename = "statefulset.kubernetes.io/pod-name")]
    pub(crate) statefulset_pod_name: Option<Str<'a>>,
    #[serde(borrow, rename = "pod-template-generation")]
    pub(crate) pod_template_generation: Option<Str<'a>>,
    #[serde(borrow, rename = "job-name")]
    pub(crate) job_name: Option<Str<'a>>,
}

/// A timestamp that is an RFC 3339 string or a number of epoch seconds
/// (Fluent Bit's `time`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Stamp<'a> {
    Text(Cow<'a, str>),
    EpochSeconds(f64),
}

impl<'de: 'a, 'a> Deserialize<'de> for Stamp<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Stamp<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 string or a number of epoch seconds")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Stamp::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Stamp::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Stamp::EpochSeconds(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Stamp::EpochSeconds(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Stamp::EpochSeconds(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

/// `status`: an Alertmanager body's `"firing"`, or a Pod's or Node's status
/// object.
#[derive(Debug)]
pub(crate) enum StatusField<'a> {
    Text(Cow<'a, str>),
    Object(Box<ObjectStatus<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for StatusField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status string or a status object")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(StatusField::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StatusField::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                ObjectStatus::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|s| StatusField::Object(Box::new(s)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Every input shape's top-level fields (and a watched object's).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record<'a> {
    /// The cluster the record comes from, where a shipper names it (any
    /// shape; see `super::cluster`).
    #[serde(borrow)]
    pub(crate) cluster: Option<Str<'a>>,

    // Watch event.
    /// The watch type (`ADDED`...), or an Event's type (`Normal`, `Warning`).
    #[serde(borrow, rename = "type")]
    pub(crate) type_: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) object: Option<Box<Record<'a>>>,
    #[serde(borrow)]
    pub(crate) observed_at: Option<Str<'a>>,

    // Any Kubernetes object.
    #[serde(borrow)]
    pub(crate) api_version: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) metadata: Option<Box<Metadata<'a>>>,

    // core/v1 Event.
    #[serde(borrow)]
    pub(crate) involved_object: Option<Box<ObjectRef<'a>>>,
    #[serde(borrow)]
    pub(crate) reason: Option<Str<'a>>,
    /// An Event's message, or a Vector log record's text.
    #[serde(borrow)]
    pub(crate) message: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) source: Option<Box<EventSource<'a>>>,
    #[serde(borrow)]
    pub(crate) first_timestamp: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) last_timestamp: Option<Str<'a>>,
    pub(crate) count: Option<u64>,
    #[serde(borrow)]
    pub(crate) event_time: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) series: Option<Box<Series<'a>>>,
    #[serde(borrow)]
    pub(crate) action: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) reporting_component: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) reporting_instance: Option<Str<'a>>,

    // events.k8s.io/v1 Event.
    #[serde(borrow)]
    pub(crate) regarding: Option<Box<ObjectRef<'a>>>,
    #[serde(borrow)]
    pub(crate) note: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) reporting_controller: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) deprecated_source: Option<Box<EventSource<'a>>>,
    #[serde(borrow)]
    pub(crate) deprecated_first_timestamp: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) deprecated_last_timestamp: Option<Str<'a>>,
    pub(crate) deprecated_count: Option<u64>,
    #[serde(borrow)]
    pub(crate) deprecated_series: Option<Box<Series<'a>>>,

    // Pod, Node.
    #[serde(borrow)]
    pub(crate) spec: Option<Box<Spec<'a>>>,
    /// A Pod's or Node's status; an Alertmanager body's status.
    #[serde(borrow)]
    pub(crate) status: Option<Box<StatusField<'a>>>,

    // Alertmanager webhook body.
    #[serde(borrow)]
    pub(crate) version: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) receiver: Option<Str<'a>>,
    /// Each alert's JSON, read alert by alert: one malformed alert must not
    /// cost the others of its body.
    #[serde(borrow)]
    pub(crate) alerts: Option<Vec<&'a RawValue>>,
    /// For a body split by cluster: each alert's place in the body it came
    /// from, so an error still names `alerts[i]` as sent.
    #[serde(skip)]
    pub(crate) alert_places: Option<Vec<usize>>,

    // Objects read for the object graph (see `super::object`).
    /// A StorageClass's provisioner.
    #[serde(borrow)]
    pub(crate) provisioner: Option<Str<'a>>,
    /// An admission webhook configuration's webhooks.
    #[serde(borrow)]
    pub(crate) webhooks: Option<Vec<Webhook<'a>>>,
    /// An EndpointSlice's endpoints.
    #[serde(borrow)]
    pub(crate) endpoints: Option<Vec<Endpoint<'a>>>,
    /// A core/v1 Endpoints' subsets.
    #[serde(borrow)]
    pub(crate) subsets: Option<Vec<Subset<'a>>>,

    // Log records.
    #[serde(borrow)]
    pub(crate) kubernetes: Option<Box<Kubernetes<'a>>>,
    #[serde(borrow)]
    pub(crate) stream: Option<Str<'a>>,
    /// Vector's event time.
    #[serde(borrow)]
    pub(crate) timestamp: Option<Str<'a>>,
    /// Fluent Bit's log text, raw: see [`super::log::log_text`].
    #[serde(borrow)]
    pub(crate) log: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) time: Option<Stamp<'a>>,
    #[serde(borrow, rename = "@timestamp")]
    pub(crate) at_timestamp: Option<Stamp<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Metadata<'a> {
    #[serde(borrow)]
    pub(crate) name: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) namespace: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) uid: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) creation_timestamp: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) deletion_timestamp: Option<Str<'a>>,
    /// Kept raw: only Pods read them, and Nodes only when they change.
    #[serde(borrow)]
    pub(crate) labels: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) owner_references: Option<Vec<OwnerRef<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OwnerRef<'a> {
    #[serde(borrow)]
    pub(crate) kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) name: Option<Str<'a>>,
    pub(crate) controller: Option<bool>,
}

/// `involvedObject` / `regarding`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectRef<'a> {
    #[serde(borrow)]
    pub(crate) kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) namespace: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) name: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) uid: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) field_path: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventSource<'a> {
    #[serde(borrow)]
    pub(crate) component: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) host: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Series<'a> {
    pub(crate) count: Option<u64>,
    #[serde(borrow)]
    pub(crate) last_observed_time: Option<Str<'a>>,
}

/// A Pod's, Node's, PersistentVolumeClaim's or PersistentVolume's spec (the
/// fields read of each).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Spec<'a> {
    #[serde(borrow)]
    pub(crate) node_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) init_containers: Option<Vec<Named<'a>>>,
    #[serde(borrow)]
    pub(crate) containers: Option<Vec<Named<'a>>>,
    pub(crate) unschedulable: Option<bool>,
    /// A Pod's volumes (only their claims are read).
    #[serde(borrow)]
    pub(crate) volumes: Option<Vec<PodVolume<'a>>>,
    /// A PersistentVolumeClaim's bound volume.
    #[serde(borrow)]
    pub(crate) volume_name: Option<Str<'a>>,
    /// A PersistentVolume's CSI source.
    #[serde(borrow)]
    pub(crate) csi: Option<CsiSource<'a>>,
    /// A PersistentVolume's claim.
    #[serde(borrow)]
    pub(crate) claim_ref: Option<Box<ObjectRef<'a>>>,
    /// A claim's or a volume's StorageClass.
    #[serde(borrow)]
    pub(crate) storage_class_name: Option<Str<'a>>,
    /// A Service's ClusterIP.
    #[serde(borrow, rename = "clusterIP")]
    pub(crate) cluster_ip: Option<Str<'a>>,
}

/// One webhook of a Validating/MutatingWebhookConfiguration.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Webhook<'a> {
    #[serde(borrow)]
    pub(crate) name: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) client_config: Option<ClientConfig<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ClientConfig<'a> {
    #[serde(borrow)]
    pub(crate) service: Option<ServiceRef<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ServiceRef<'a> {
    #[serde(borrow)]
    pub(crate) namespace: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) name: Option<Str<'a>>,
}

/// One endpoint of an EndpointSlice (only the Pod behind it is read).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Endpoint<'a> {
    #[serde(borrow)]
    pub(crate) target_ref: Option<ObjectRef<'a>>,
}

/// One subset of a core/v1 Endpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Subset<'a> {
    #[serde(borrow)]
    pub(crate) addresses: Option<Vec<Endpoint<'a>>>,
    #[serde(borrow)]
    pub(crate) not_ready_addresses: Option<Vec<Endpoint<'a>>>,
}

/// One of a Pod's `spec.volumes`: a claim, or a generic ephemeral volume
/// (whose claim is named `<pod>-<volume>`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodVolume<'a> {
    #[serde(borrow)]
    pub(crate) name: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) persistent_volume_claim: Option<ClaimSource<'a>>,
    pub(crate) ephemeral: Option<de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClaimSource<'a> {
    #[serde(borrow)]
    pub(crate) claim_name: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CsiSource<'a> {
    #[serde(borrow)]
    pub(crate) driver: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Named<'a> {
    #[serde(borrow)]
    pub(crate) name: Option<Str<'a>>,
}

/// A Pod's or a Node's status (the fields read of either).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectStatus<'a> {
    #[serde(borrow)]
    pub(crate) phase: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) reason: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) message: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) conditions: Option<Vec<Condition<'a>>>,
    #[serde(borrow)]
    pub(crate) init_container_statuses: Option<Vec<ContainerStatus<'a>>>,
    #[serde(borrow)]
    pub(crate) container_statuses: Option<Vec<ContainerStatus<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Condition<'a> {
    #[serde(borrow, rename = "type")]
    pub(crate) type_: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) status: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) reason: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) message: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) last_transition_time: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) last_heartbeat_time: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContainerStatus<'a> {
    #[serde(borrow)]
    pub(crate) name: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) state: Option<ContainerState<'a>>,
    #[serde(borrow)]
    pub(crate) last_state: Option<ContainerState<'a>>,
    pub(crate) restart_count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ContainerState<'a> {
    #[serde(borrow)]
    pub(crate) waiting: Option<StateDetail<'a>>,
    #[serde(borrow)]
    pub(crate) terminated: Option<StateDetail<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StateDetail<'a> {
    #[serde(borrow)]
    pub(crate) reason: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) message: Option<Str<'a>>,
    pub(crate) exit_code: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Alert<'a> {
    #[serde(borrow)]
    pub(crate) status: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) labels: Option<Labels<'a>>,
    #[serde(borrow)]
    pub(crate) annotations: Option<Annotations<'a>>,
    #[serde(borrow)]
    pub(crate) starts_at: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) ends_at: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) fingerprint: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Annotations<'a> {
    #[serde(borrow)]
    pub(crate) summary: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) description: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) message: Option<Str<'a>>,
}

/// The `kubernetes` object of a Vector or Fluent Bit log record.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Kubernetes<'a> {
    #[serde(borrow)]
    pub(crate) pod_name: Option<Str<'a>>,
    /// Vector.
    #[serde(borrow)]
    pub(crate) pod_namespace: Option<Str<'a>>,
    /// Fluent Bit.
    #[serde(borrow)]
    pub(crate) namespace_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) container_name: Option<Str<'a>>,
    /// Vector.
    #[serde(borrow)]
    pub(crate) pod_node_name: Option<Str<'a>>,
    /// Fluent Bit.
    #[serde(borrow)]
    pub(crate) host: Option<Str<'a>>,
    /// Vector.
    #[serde(borrow)]
    pub(crate) pod_uid: Option<Str<'a>>,
    /// Fluent Bit.
    #[serde(borrow)]
    pub(crate) pod_id: Option<Str<'a>>,
    /// Vector: `Kind/name` of the pod's controller.
    #[serde(borrow)]
    pub(crate) pod_owner: Option<Str<'a>>,
    /// Vector.
    #[serde(borrow)]
    pub(crate) pod_labels: Option<WellKnownLabels<'a>>,
    /// Fluent Bit.
    #[serde(borrow)]
    pub(crate) labels: Option<WellKnownLabels<'a>>,
}

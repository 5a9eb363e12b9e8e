//! The Events watch: events.k8s.io/v1, or core/v1 Events when the API
//! server does not serve events.k8s.io/v1.
//!
//! Which API to use is decided by asking: a list of one events.k8s.io/v1
//! Event. 404 means the API is absent (an old or trimmed-down API server),
//! and the watch uses core/v1; any other failure is retried with backoff,
//! since it says nothing about the API. If events.k8s.io/v1 later answers
//! 404 to a list (the API was turned off), the watch falls back then. Both
//! APIs are views of the same objects; the decoder reads both shapes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::runtime::watcher;
use kube::{Api, Client};

use super::watch::Watch;

const RETRY_MIN: Duration = Duration::from_millis(800);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Whether the API server answered 404: the resource or API is absent.
fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// `Ok(true)` when events.k8s.io/v1 serves Events, `Ok(false)` when it is
/// absent.
async fn has_events_v1(client: &Client, namespace: Option<&str>) -> kube::Result<bool> {
    match api::<Event>(client, namespace)
        .list(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Watches Events in `namespace` (all when `None`) until cancelled.
pub(super) async fn run(
    client: Client,
    namespace: Option<String>,
    watch: Watch,
    config: watcher::Config,
) {
    let ns = namespace.as_deref();
    let mut delay = RETRY_MIN;
    let v1 = loop {
        match has_events_v1(&client, ns).await {
            Ok(v1) => break v1,
            Err(e) => {
                watch.health().set_connected(false);
                watch.health().set_error(&e);
                tracing::warn!(stream = %watch.stream(), error = %e, "cannot reach the events API");
                tokio::select! {
                    () = watch.cancel().cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    };
    if v1 {
        tracing::info!(stream = %watch.stream(), api = "events.k8s.io/v1", "watching events");
        let gone = watch
            .run_until(
                api::<Event>(&client, ns),
                config.clone(),
                |e| matches!(e, watcher::Error::InitialListFailed(e) if not_found(e)),
            )
            .await;
        if gone.is_none() {
            return;
        }
    }
    tracing::info!(stream = %watch.stream(), api = "v1", "watching events (no events.k8s.io/v1)");
    watch.run(api::<CoreEvent>(&client, ns), config).await;
}

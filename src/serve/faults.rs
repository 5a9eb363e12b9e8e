//! What is wrong with the service now, for `/healthz`, `/readyz` and the
//! decision to stop.
//!
//! Two kinds of fault:
//!
//! - **Fatal**: a panic anywhere in the process (the engine thread, a
//!   delivery task, the journal's writer) or an error that ends the engine.
//!   The process cannot be trusted to process what it accepts: `/healthz`
//!   and `/readyz` fail at once, the main task is woken to drain (bounded)
//!   and exit non-zero, so Kubernetes restarts it, and the restart resumes
//!   from the checkpoint and the journal.
//! - **Conditions**: a part that cannot do its work for now and recovers by
//!   itself (the journal or the outbox cannot write: disk full; checkpoints
//!   fail). `/readyz` fails with the reasons while any holds, so load
//!   balancers and Alertmanager go elsewhere or retry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    fatal: Mutex<Option<String>>,
    conditions: Mutex<BTreeMap<&'static str, String>>,
    woken: Notify,
}

/// Cheap to clone; one per process.
#[derive(Clone, Debug, Default)]
pub(crate) struct Faults(Arc<Inner>);

impl Faults {
    /// Makes every panic of the process fatal (after the default hook has
    /// printed it).
    pub(crate) fn install_panic_hook(&self) {
        let faults = self.clone();
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("unnamed");
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            faults.fatal(format!("thread {name} panicked: {what}{at}"));
        }));
    }

    /// The process must stop: the first reason is kept.
    pub(crate) fn fatal(&self, reason: String) {
        {
            let mut f = self.0.fatal.lock().unwrap_or_else(PoisonError::into_inner);
            if f.is_some() {
                return;
            }
            tracing::error!(%reason, "fatal: draining and exiting so the service restarts");
            *f = Some(reason);
        }
        self.0.woken.notify_waiters();
        self.0.woken.notify_one();
    }

    pub(crate) fn fatal_reason(&self) -> Option<String> {
        self.0
            .fatal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns once something was fatal.
    pub(crate) async fn wait_fatal(&self) {
        loop {
            let woken = self.0.woken.notified();
            if self.fatal_reason().is_some() {
                return;
            }
            woken.await;
        }
    }

    /// Sets (`Some`) or clears (`None`) the condition `what`.
    pub(crate) fn condition(&self, what: &'static str, reason: Option<String>) {
        let mut c = self
            .0
            .conditions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match reason {
            Some(r) => {
                c.insert(what, r);
            }
            None => {
                c.remove(what);
            }
        }
    }

    /// Every condition holding now, by part.
    pub(crate) fn conditions(&self) -> Vec<(&'static str, String)> {
        self.0
            .conditions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_fatal_reason_is_kept() {
        let f = Faults::default();
        assert_eq!(f.fatal_reason(), None);
        f.fatal("engine died".to_string());
        f.fatal("and then something else".to_string());
        assert_eq!(f.fatal_reason().as_deref(), Some("engine died"));
    }

    #[test]
    fn conditions_come_and_go() {
        let f = Faults::default();
        f.condition("journal", Some("No space left on device".to_string()));
        f.condition("checkpoint", Some("No space left on device".to_string()));
        assert_eq!(f.conditions().len(), 2);
        f.condition("journal", None);
        assert_eq!(
            f.conditions(),
            vec![("checkpoint", "No space left on device".to_string())]
        );
    }

    #[tokio::test]
    async fn waiting_for_a_fatal_fault_returns_once_one_is_set() {
        let f = Faults::default();
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { f.wait_fatal().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        f.fatal("boom".to_string());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
    }
}

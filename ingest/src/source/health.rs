//! What each source says about itself: connected or not, records taken,
//! records refused. Read by `/readyz` and `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The health of one source (or one part of it: a watch, a consumer).
#[derive(Debug)]
pub struct SourceHealth {
    pub name: String,
    connected: AtomicBool,
    /// Records handed to the pipeline.
    pub records: AtomicU64,
    /// Inputs refused before reaching the pipeline, by reason.
    rejected: Mutex<Vec<(&'static str, u64)>>,
    last_error: Mutex<Option<String>>,
}

impl SourceHealth {
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn add_records(&self, n: u64) {
        self.records.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts an input refused for `reason` (a short, fixed label such as
    /// `malformed`, `unauthorized`, `too_large`, `saturated`).
    pub fn reject(&self, reason: &'static str) {
        let mut r = self.rejected.lock().unwrap_or_else(PoisonError::into_inner);
        match r.iter_mut().find(|(k, _)| *k == reason) {
            Some((_, n)) => *n += 1,
            None => r.push((reason, 1)),
        }
    }

    pub fn rejected(&self) -> Vec<(&'static str, u64)> {
        self.rejected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Remembers the latest error (shown by `/readyz`).
    #[allow(clippy::needless_pass_by_value)] // callers hand over the error they hold
    pub fn set_error(&self, error: impl ToString) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Every source's health; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Health {
    sources: Arc<Mutex<Vec<Arc<SourceHealth>>>>,
}

impl Health {
    /// Registers a source, not yet connected.
    pub fn register(&self, name: impl Into<String>) -> Arc<SourceHealth> {
        let h = Arc::new(SourceHealth {
            name: name.into(),
            connected: AtomicBool::new(false),
            records: AtomicU64::new(0),
            rejected: Mutex::new(Vec::new()),
            last_error: Mutex::new(None),
        });
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(h.clone());
        h
    }

    pub fn sources(&self) -> Vec<Arc<SourceHealth>> {
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

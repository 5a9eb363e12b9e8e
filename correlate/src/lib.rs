//! # correlate: epicenter's domain and engine
//!
//! Everything epicenter knows about Kubernetes failures lives here: the
//! normalised [`Event`], the rule language ([`rules`]), the [`Classifier`]
//! that turns records into signals, and the windowed correlation
//! [`Engine`] that folds signals into root-cause incidents.
//!
//! The design choice that shapes the crate: **no IO and no clock**. Time
//! arrives as event time on records and as watermarks handed to
//! [`Engine::advance`]; the engine's whole state is explicit in its structs.
//! The same input therefore gives the same incidents, byte for byte, in
//! replay, in tests and in the live service, and every window semantic can be
//! tested without sleeping.

pub mod checkpoint;
pub mod classify;
pub mod clusters;
pub mod engine;
pub mod graph;
pub mod incident;
pub mod model;
mod prefilter;
pub mod report;
pub mod rules;
pub mod time;

pub use classify::{Classifier, Hit};
pub use clusters::{Clusters, Lane};
pub use engine::{Engine, EngineConfig, EngineGauges, EngineSnapshot, EngineStats, RestoreReport};
pub use incident::{Incident, IncidentUpdate, Status};
pub use model::{Entity, Event, Origin, Owner, Severity, Source};
pub use report::IncidentReport;
pub use time::{EventTime, Span};

//! # sinks: where incidents go
//!
//! Every sink takes [`correlate::IncidentReport`]s, the contract-shaped view
//! of an incident, so what a person reads in Slack, what a pipeline reads
//! from Kafka and what `epicenter replay` prints are one document.
//!
//! Design choice: sinks never see engine internals and never depend on
//! `ingest`; the binary wires the two ends together.

pub mod kafka;
pub mod ndjson;

//! # sinks: where incidents go
//!
//! Every sink takes [`correlate::IncidentReport`]s, the contract-shaped view
//! of an incident, so what a person reads in Slack, what a pipeline reads
//! from Kafka, what the history stores and what `epicenter replay` prints
//! are one document.
//!
//! - Streams for machines: [`stream`] (stdout, files) and [`kafka`] take
//!   every change ([`change::IncidentChange`]).
//! - Notifications for people: [`notify`] decides which changes are worth a
//!   message, routes them and renders them for Slack, ntfy and webhooks.
//! - [`outbox`]: the durable queue in the state directory every delivery
//!   goes through: retries with backoff and jitter, rate limits, dead
//!   letters, and idempotency across restarts.
//! - [`render`]: one incident as text or Markdown for people on call
//!   (`epicenter replay --format text|markdown`).
//! - [`history`]: every incident version as Parquet, queried with
//!   read-only SQL (DataFusion).
//! - [`postmortem`]: a Markdown post-mortem draft from an incident's stored
//!   versions (`epicenter postmortem ID`).
//!
//! Design choice: sinks never see engine internals and never depend on
//! `ingest`; the binary wires the two ends together.

pub mod change;
pub mod history;
pub mod kafka;
pub mod notify;
pub mod outbox;
pub mod postmortem;
pub mod render;
pub mod stream;

//! # ingest: epicenter's inputs
//!
//! Turns the input lines of the replay contract (`contract/replay.md`) into
//! [`correlate::Event`]s: Kubernetes watch events and bare objects (core/v1 and
//! events.k8s.io/v1 Events, Pods, Nodes), Alertmanager v4 webhook bodies and
//! container log records from Vector or Fluent Bit. Each NDJSON line is
//! detected by its shape ([`Decoder::decode`]); [`file::Lines`] reads the
//! lines themselves.
//!
//! Two design choices shape the crate:
//!
//! - **Borrowed decoding.** A line is parsed once into one struct of optional
//!   fields whose strings borrow from the line (`Cow<'a, str>`, raw JSON
//!   slices for nested parts only some records need), and the events it
//!   yields keep borrowing from it. Most records are noise (healthy logs,
//!   heartbeats): they cost a parse and no string copies.
//! - **Stateful, per-object transitions.** Pods and Nodes arrive as full
//!   objects again and again; the [`Decoder`] remembers the last summary state
//!   of each and emits an event only when it changes. Likewise it remembers
//!   each Kubernetes Event's count and each alert delivery, so relist replays
//!   and notification repeats are dropped, and a topology cache
//!   ([`topology::Topology`]) of Pods lends node and owners to the Events,
//!   logs and alerts about them. Every table is bounded ([`Limits`]).

mod bounded;
pub mod decode;
pub mod file;
mod hash;
pub mod source;
pub mod topology;

pub use decode::{
    DecodeError, DecodeStats, Decoded, Decoder, DecoderSnapshot, Limits, Parsed, Rejected, Result,
    parse,
};
pub use file::{LineError, Lines};
pub use topology::Topology;

//! Live sources: the outside world, feeding the one pipeline.
//!
//! Every source turns what it receives into lines of the replay contract (a
//! watch event, an Alertmanager body, a log record: JSON text) and hands them
//! to the pipeline through an [`Intake`] as a [`Delivery`]. The pipeline
//! decodes them with the same [`crate::Decoder`] `replay` uses, so a live
//! stream and its recording form the same incidents.
//!
//! Design choices:
//!
//! - **Lines, not objects.** A source never builds [`correlate::Event`]s
//!   itself: the decoders stay the single definition of what a record means,
//!   and a live delivery can be written to a file and replayed as it was.
//! - **Bounded, with backpressure.** The intake is a bounded queue. Sources
//!   that can wait (watches, Kafka) await room; the webhook receiver, which
//!   must answer, refuses with 503 when it is full, and Alertmanager retries.
//! - **Acknowledged means durable.** A source that answers its sender (the
//!   webhook receiver) appends what it accepted to the [`Journal`] and
//!   answers once that is on disk; a restart replays what the last
//!   checkpoint did not cover. Sources that can re-read (watches relist,
//!   Kafka resumes from committed offsets) need no journal.
//! - **Streams for watermarks.** Each delivery names the [`StreamId`] it
//!   belongs to (a watch, a Kafka partition): event time is roughly ordered
//!   within a stream, not across streams, so the pipeline keeps a watermark
//!   per stream.

pub mod alertmanager;
mod health;
mod intake;
pub mod journal;
pub mod kafka;
pub mod kubernetes;

pub use health::{Health, SourceHealth};
pub use intake::{Closed, Delivery, Handover, Intake, Position, StreamId, WeakIntake};
pub use journal::Journal;

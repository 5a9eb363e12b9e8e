//! The sinks' integration tests, as one test binary (each would otherwise
//! link DataFusion, librdkafka and the HTTP stack on its own): the notifiers
//! and the outbox over real HTTP to testkit's local services, the Kafka sink
//! against a real Kafka-protocol broker, the history over real Parquet files.

#![allow(clippy::unwrap_used)]

mod history;
mod kafka;
mod ntfy;
mod outbox;
mod slack;
mod webhook;

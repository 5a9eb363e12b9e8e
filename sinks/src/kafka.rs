//! The Kafka sink: incidents produced to a topic, keyed by incident id.
//!
//! Design choice: [`KafkaSink::deliver`] returns only once the broker has
//! acknowledged every message of the batch (`acks=all`, idempotent
//! producer), or with an error naming the first incident that was not
//! delivered. The pipeline calls it before each checkpoint, so a checkpoint
//! never covers an incident the topic does not have. Delivery is bounded
//! (`message.timeout.ms`, 30 s unless the options say otherwise, plus up to
//! `reconnect.backoff.max.ms`, 1 s, for librdkafka to notice): a broker
//! that is away, or a topic that does not exist, is an error after that
//! long, never a hang; the pipeline keeps the incidents and tries again,
//! with a fresh producer. Keys make a topic's partitions carry all updates of one incident
//! in order; a retried batch can produce an incident twice, and a consumer
//! keeps the last message per key (log compaction does the same).
//!
//! Option values may be secrets: they are never logged.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

/// How long librdkafka may try to deliver one message, unless the options
/// set `message.timeout.ms` (or its alias `delivery.timeout.ms`).
const MESSAGE_TIMEOUT_MS: &str = "30000";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka sink: creating the producer: {0}")]
    Create(#[source] KafkaError),
    #[error("kafka sink: incident {id} not delivered to {topic}: {source}")]
    Delivery {
        id: String,
        topic: String,
        #[source]
        source: Box<KafkaError>,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A producer of incidents to one topic.
pub struct KafkaSink {
    /// To build a fresh producer after a failed delivery.
    config: ClientConfig,
    producer: Mutex<FutureProducer<Logs>>,
    topic: String,
}

impl fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// A sink producing to `topic` on `brokers` (`bootstrap.servers`).
    /// `options` are extra librdkafka properties (`security.protocol`,
    /// `sasl.*`, `compression.type`, `message.timeout.ms`...), applied over
    /// the defaults; `acks=all` and `enable.idempotence=true`, which
    /// [`KafkaSink::deliver`]'s promise rests on, cannot be overridden.
    ///
    /// Connects lazily: a broker that is away is an error of `deliver`.
    pub fn new(
        brokers: &str,
        topic: impl Into<String>,
        options: &BTreeMap<String, String>,
    ) -> Result<KafkaSink> {
        let mut config = ClientConfig::new();
        config
            .set("compression.type", "lz4")
            .set("message.timeout.ms", MESSAGE_TIMEOUT_MS)
            // librdkafka notices expired messages when a broker thread
            // wakes; with a broker away that is after a reconnect backoff
            // (10 s at most by default). 1 s keeps the bound close.
            .set("reconnect.backoff.max.ms", "1000")
            .set("linger.ms", "5");
        for (key, value) in options {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set_log_level(RDKafkaLogLevel::Info);
        let producer = config.create_with_context(Logs).map_err(Error::Create)?;
        Ok(KafkaSink {
            config,
            producer: Mutex::new(producer),
            topic: topic.into(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Produces each `(incident id, JSON)` keyed by the id, and returns when
    /// all are acknowledged; otherwise the error of the first (in batch
    /// order) that was not, after every message has an outcome.
    ///
    /// After a failure the sink replaces its producer: librdkafka's
    /// idempotent producer handles timed-out messages by bumping its epoch,
    /// which some brokers refuse for good, and some of its idempotence
    /// errors are fatal to the producer; a fresh one starts clean.
    pub async fn deliver(&self, batch: &[(String, Vec<u8>)]) -> Result<()> {
        let producer = self.producer();
        let result = self.produce(&producer, batch).await;
        if result.is_err() {
            self.renew(producer);
        }
        result
    }

    fn producer(&self) -> FutureProducer<Logs> {
        self.producer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the producer that failed (unless another delivery already
    /// did); the old one is closed off the async threads, since closing
    /// blocks.
    fn renew(&self, failed: FutureProducer<Logs>) {
        let fresh = match self.config.create_with_context(Logs) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "kafka sink: new producer not created; keeping the old one");
                return;
            }
        };
        let old = {
            let mut current = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
            if !std::ptr::eq(current.client(), failed.client()) {
                return;
            }
            std::mem::replace(&mut *current, fresh)
        };
        tracing::info!(topic = %self.topic, "kafka sink: producer replaced after a failed delivery");
        drop(tokio::task::spawn_blocking(move || drop((old, failed))));
    }

    async fn produce(
        &self,
        producer: &FutureProducer<Logs>,
        batch: &[(String, Vec<u8>)],
    ) -> Result<()> {
        let mut pending: VecDeque<(usize, DeliveryFuture)> = VecDeque::with_capacity(batch.len());
        let mut first_error: Option<(usize, KafkaError)> = None;
        for (i, (id, json)) in batch.iter().enumerate() {
            let mut record = FutureRecord::to(&self.topic)
                .key(id.as_str())
                .payload(json.as_slice());
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push_back((i, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The local queue is full: wait for the oldest
                        // message in flight, or a moment if none is ours.
                        record = back;
                        match pending.pop_front() {
                            Some((j, delivery)) => note(&mut first_error, j, delivery.await),
                            None => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                    Err((e, _)) => {
                        note_error(&mut first_error, i, e);
                        break;
                    }
                }
            }
        }
        for (j, delivery) in pending {
            note(&mut first_error, j, delivery.await);
        }
        match first_error {
            None => Ok(()),
            Some((i, source)) => Err(Error::Delivery {
                id: batch[i].0.clone(),
                topic: self.topic.clone(),
                source: Box::new(source),
            }),
        }
    }
}

/// Keeps the error of the earliest message in batch order (`Err(_)`: the
/// producer went away before answering).
fn note<Canceled>(
    first: &mut Option<(usize, KafkaError)>,
    index: usize,
    outcome: std::result::Result<OwnedDeliveryResult, Canceled>,
) {
    match outcome {
        Ok(Ok(_)) => {}
        Ok(Err((e, _))) => note_error(first, index, e),
        Err(_) => note_error(first, index, KafkaError::Canceled),
    }
}

fn note_error(first: &mut Option<(usize, KafkaError)>, index: usize, error: KafkaError) {
    if first.as_ref().is_none_or(|(i, _)| index < *i) {
        *first = Some((index, error));
    }
}

/// librdkafka's logs into `tracing`, with structured fields.
#[derive(Clone, Copy, Debug)]
struct Logs;

impl ClientContext for Logs {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, message, "librdkafka");
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility, message, "librdkafka");
            }
            RDKafkaLogLevel::Notice => {
                tracing::info!(target: "librdkafka", facility, message, "librdkafka");
            }
            RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", facility, message, "librdkafka");
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "kafka producer error");
    }
}

//! The pipeline's entry: a bounded queue of [`Delivery`]s.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// One independently ordered stream of records: a watch, a Kafka partition,
/// the webhook receiver. Watermarks are kept per stream.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId(Arc<str>);

impl StreamId {
    pub fn new(name: impl Into<Arc<str>>) -> StreamId {
        StreamId(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a delivery came from, for sources that resume from a position:
/// the Kafka offset of the last record in the delivery.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Records from one stream, in the order the stream gave them.
#[derive(Debug)]
pub struct Delivery {
    pub stream: StreamId,
    /// The source's name in the config (`kubernetes`, `alertmanager`,
    /// `kafka`), for per-source metrics.
    pub source: &'static str,
    /// One JSON document per line, in a shape of the replay contract.
    pub lines: Vec<String>,
    pub position: Option<Position>,
    /// Whether event time is roughly ordered within the stream (a watch, a
    /// partition): then the stream holds the watermark back until it has
    /// been idle. A push source whose records may carry old times (an
    /// Alertmanager repeat of a day-old alert) says `false` and never holds
    /// it back; its records behind the watermark are processed as late.
    pub ordered: bool,
    /// When the source received the records: the start of the
    /// ingest-to-incident latency.
    pub received: Instant,
    /// The journal's sequence number, for a delivery a source acknowledged
    /// through the [`super::journal::Journal`]: a checkpoint that covers it
    /// lets the journal forget it.
    pub journal: Option<u64>,
    /// A Kafka rebalance: partitions this replica now owns, or no longer
    /// owns. Carried in the intake (with no lines) so that it is ordered
    /// with the records: everything read from a partition before it was
    /// revoked comes before its revocation, and nothing read after its
    /// assignment comes before that.
    pub handover: Option<Handover>,
}

/// Partitions that changed hands in a consumer-group rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// Now ours: restore their clusters' state before their records.
    Assigned(Vec<(String, i32)>),
    /// No longer ours: checkpoint their clusters' state and let it go.
    Revoked(Vec<(String, i32)>),
}

impl Delivery {
    pub fn new(source: &'static str, stream: StreamId, lines: Vec<String>) -> Delivery {
        Delivery {
            stream,
            source,
            lines,
            position: None,
            ordered: true,
            received: Instant::now(),
            journal: None,
            handover: None,
        }
    }

    /// A rebalance's hand-over, as a delivery of no lines on `stream`.
    pub fn handover(source: &'static str, stream: StreamId, handover: Handover) -> Delivery {
        Delivery {
            handover: Some(handover),
            ..Delivery::new(source, stream, Vec::new())
        }
    }
}

/// The pipeline has stopped taking records (shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline is shut down")]
pub struct Closed;

/// A handle on the pipeline's bounded queue; cheap to clone.
#[derive(Clone, Debug)]
pub struct Intake {
    tx: mpsc::Sender<Delivery>,
}

impl Intake {
    /// A queue holding up to `capacity` deliveries, and its receiving end.
    pub fn bounded(capacity: usize) -> (Intake, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Intake { tx }, rx)
    }

    /// Waits for room, then queues the delivery.
    pub async fn send(&self, delivery: Delivery) -> Result<(), Closed> {
        self.tx.send(delivery).await.map_err(|_| Closed)
    }

    /// Waits for room, then queues the delivery; for threads outside the
    /// async runtime (the journal's writer).
    pub fn blocking_send(&self, delivery: Delivery) -> Result<(), Closed> {
        self.tx.blocking_send(delivery).map_err(|_| Closed)
    }

    /// Deliveries that fit in the queue now.
    pub fn room(&self) -> usize {
        self.tx.capacity()
    }

    /// A handle that can tell the room left but does not keep the queue
    /// open (the pipeline's drain ends when every sender is gone).
    pub fn downgrade(&self) -> WeakIntake {
        WeakIntake {
            tx: self.tx.downgrade(),
        }
    }
}

/// See [`Intake::downgrade`].
#[derive(Clone, Debug)]
pub struct WeakIntake {
    tx: mpsc::WeakSender<Delivery>,
}

impl WeakIntake {
    /// Deliveries that fit in the queue now (0 once it is gone).
    pub fn room(&self) -> usize {
        self.tx.upgrade().map_or(0, |tx| tx.capacity())
    }
}

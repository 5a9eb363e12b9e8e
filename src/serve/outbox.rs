//! Where incident changes leave the pipeline: one task that delivers them,
//! in order, to every configured sink, and answers flush requests once
//! everything queued before them is delivered.
//!
//! Delivery is retried until it succeeds (a Kafka outage stalls the outbox,
//! the bounded queue stalls the pipeline, and the webhook answers 503: load
//! is shed at the edge, where senders retry, never by dropping incidents).
//! A checkpoint flushes first, so it never covers an undelivered change.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::metrics::{Metrics, SourceLabels};

/// One incident change, rendered.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// The incident id: the Kafka key, the message to update in place.
    pub(crate) id: String,
    pub(crate) json: Vec<u8>,
}

#[derive(Debug)]
enum Msg {
    Send(Vec<Outgoing>),
    Flush(oneshot::Sender<()>),
}

/// The pipeline's handle on the delivery task.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Msg>,
}

/// The sinks the task delivers to.
#[derive(Debug, Default)]
pub(crate) struct Sinks {
    pub(crate) stdout: bool,
    pub(crate) kafka: Option<sinks::kafka::KafkaSink>,
}

/// Batches of changes queued before the pipeline waits.
const QUEUE: usize = 256;
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

impl Outbox {
    pub(crate) fn start(sinks: Sinks, metrics: Arc<Metrics>) -> (Outbox, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(deliver(rx, sinks, metrics));
        (Outbox { tx }, task)
    }

    /// Queues changes (waits while the queue is full).
    pub(crate) async fn send(&self, batch: Vec<Outgoing>) {
        if !batch.is_empty() && self.tx.send(Msg::Send(batch)).await.is_err() {
            tracing::error!("outbox task is gone: incident changes not delivered");
        }
    }

    /// Returns once everything queued so far is delivered; false if the
    /// delivery task is gone.
    pub(crate) async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_err() {
            return false;
        }
        rx.await.is_ok()
    }
}

async fn deliver(mut rx: mpsc::Receiver<Msg>, sinks: Sinks, metrics: Arc<Metrics>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Flush(done) => {
                let _ = done.send(());
            }
            Msg::Send(batch) => {
                if sinks.stdout {
                    write_stdout(&batch);
                }
                if let Some(kafka) = &sinks.kafka {
                    let pairs: Vec<(String, Vec<u8>)> = batch
                        .iter()
                        .map(|o| (o.id.clone(), o.json.clone()))
                        .collect();
                    let mut wait = RETRY_FIRST;
                    while let Err(e) = kafka.deliver(&pairs).await {
                        metrics
                            .sink_failures
                            .get_or_create(&SourceLabels {
                                source: "kafka".to_string(),
                            })
                            .inc();
                        tracing::warn!(sink = "kafka", error = %e, retry_in_ms = wait.as_millis() as u64, "incident delivery failed");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(RETRY_MAX);
                    }
                }
            }
        }
    }
}

fn write_stdout(batch: &[Outgoing]) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for o in batch {
        let ok = out.write_all(&o.json).and_then(|()| out.write_all(b"\n"));
        if let Err(e) = ok {
            tracing::error!(sink = "stdout", error = %e, "cannot write incident");
            return;
        }
    }
    let _ = out.flush();
}

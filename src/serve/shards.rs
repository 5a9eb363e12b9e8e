//! Sharded state: the Kafka partitions this replica owns, each with its
//! clusters' state and its outbox in a directory every replica of the
//! group mounts (`sources.kafka.shared_state`).
//!
//! The shippers key records by cluster, so a cluster's records are in one
//! partition, and the partition is the unit that moves between replicas
//! when the consumer group rebalances. Its directory,
//! `<shared_state>/<group>/<topic>-<partition>/`, holds what moves with
//! it:
//!
//! - `checkpoint`: the engine and decoder state of the clusters first met
//!   in that partition, and the partition's offset they cover (the
//!   checkpoint format of the replica's own state directory);
//! - `outbox.redb`: the outbox of the notifiers, with what people were
//!   told about those clusters' incidents and the receipts that let an
//!   update edit the same message. The next owner's policy compares every
//!   change it forms again with what the last owner told: nothing is told
//!   twice, and what was queued and not yet sent is sent by the next
//!   owner;
//! - `lock`: held by the owner. A new owner waits for it, so it never reads
//!   state the last owner is still writing; a killed owner's lock goes
//!   with its process.
//!
//! Design choice: a shared directory over a compacted state topic in
//! Kafka. The outbox must move with the state for notifications to stay
//! exactly once, and it is a transactional store (redb) that a topic
//! would have to re-implement; the checkpoint files are already atomic
//! (write, fsync, rename) and the lock is the plain file lock the state
//! directory uses. The cost is a ReadWriteMany volume (NFS, CephFS, EFS)
//! shared by the replicas; a checkpoint of a few megabytes a cluster
//! moves in milliseconds over it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sinks::outbox::Outbox;

use super::checkpoint::{StateDir, StateError};

/// A Kafka partition: topic and number.
pub(crate) type Partition = (String, i32);

/// How long a revoked partition's outbox may keep delivering what it
/// holds before it is closed (the rest is delivered by the next owner).
const REVOKE_GRACE: Duration = Duration::from_secs(2);
/// Between two tries of a lock another replica holds.
const LOCK_RETRY: Duration = Duration::from_millis(50);
/// How long a partition's outbox file may stay open elsewhere after its
/// lock was released (the last owner's delivery tasks letting go).
const OUTBOX_RETRY_FOR: Duration = Duration::from_secs(10);

/// Opens a partition's outbox (the notifiers) in its directory.
pub(crate) type OpenOutbox = Box<dyn Fn(&Path) -> anyhow::Result<Outbox> + Send>;

/// One owned partition: its locked directory and its running outbox.
pub(crate) struct Shard {
    pub(crate) dir: StateDir,
    pub(crate) outbox: Outbox,
    tasks: tokio::task::JoinHandle<()>,
}

/// The partitions this replica owns now.
pub(crate) struct Shards {
    root: PathBuf,
    open_outbox: OpenOutbox,
    owned: BTreeMap<Partition, Shard>,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("root", &self.root)
            .field("owned", &self.owned.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Shards {
    /// No partition owned yet; their directories under `root`.
    pub(crate) fn new(root: PathBuf, open_outbox: OpenOutbox) -> Shards {
        Shards {
            root,
            open_outbox,
            owned: BTreeMap::new(),
        }
    }

    /// `<root>/<topic>-<partition>`.
    pub(crate) fn dir_of(&self, p: &Partition) -> PathBuf {
        self.root.join(format!("{}-{}", p.0, p.1))
    }

    pub(crate) fn owns(&self, p: &Partition) -> bool {
        self.owned.contains_key(p)
    }

    pub(crate) fn get(&self, p: &Partition) -> Option<&Shard> {
        self.owned.get(p)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Partition, &Shard)> {
        self.owned.iter()
    }

    /// Locks a newly assigned partition's directory, waiting while the
    /// last owner still holds it (it is checkpointing what it had).
    pub(crate) async fn lock(&self, p: &Partition) -> Result<StateDir, StateError> {
        let dir = self.dir_of(p);
        let started = Instant::now();
        let mut said = Instant::now();
        loop {
            match StateDir::open(&dir) {
                Err(StateError::Locked(_)) => {
                    if said.elapsed() >= Duration::from_secs(5) {
                        said = Instant::now();
                        tracing::warn!(
                            topic = %p.0,
                            partition = p.1,
                            waited_s = started.elapsed().as_secs(),
                            "partition state still locked by its last owner: waiting"
                        );
                    }
                    tokio::time::sleep(LOCK_RETRY).await;
                }
                other => return other,
            }
        }
    }

    /// Opens the outbox of a partition whose directory is locked, and
    /// starts delivering what it holds.
    pub(crate) async fn adopt(&mut self, p: Partition, dir: StateDir) -> anyhow::Result<()> {
        let started = Instant::now();
        let outbox = loop {
            match (self.open_outbox)(dir.dir()) {
                Ok(o) => break o,
                // The last owner's delivery tasks may hold the file a
                // moment after its lock went.
                Err(e) if started.elapsed() < OUTBOX_RETRY_FOR => {
                    tracing::debug!(error = %e, "partition outbox not open yet: retrying");
                    tokio::time::sleep(LOCK_RETRY).await;
                }
                Err(e) => return Err(e),
            }
        };
        let tasks = outbox.start();
        self.owned.insert(p, Shard { dir, outbox, tasks });
        Ok(())
    }

    /// Stops a revoked partition's outbox (after a short grace for what it
    /// is sending) and makes it durable; the directory stays locked until
    /// the returned one is dropped, after its checkpoint is written.
    pub(crate) async fn release(&mut self, p: &Partition) -> Option<StateDir> {
        let shard = self.owned.remove(p)?;
        if let Err(e) = shard.outbox.shutdown(REVOKE_GRACE, shard.tasks).await {
            tracing::error!(topic = %p.0, partition = p.1, error = %e, "partition outbox not closed cleanly; its next owner recovers it");
        }
        Some(shard.dir)
    }

    /// At shutdown: every outbox stopped and durable (checkpoints were
    /// written before), every lock released.
    pub(crate) async fn close(&mut self) {
        let owned = std::mem::take(&mut self.owned);
        let closing = owned.into_iter().map(|(p, shard)| async move {
            if let Err(e) = shard.outbox.shutdown(REVOKE_GRACE, shard.tasks).await {
                tracing::error!(topic = %p.0, partition = p.1, error = %e, "partition outbox not closed cleanly; its next owner recovers it");
            }
            drop(shard.dir);
        });
        futures::future::join_all(closing).await;
    }
}
